/*
 * `wsgw ctl`: the operator's client of the admin endpoint (gateway/admin.h). Not part of
 * the daemon: it runs in its own short-lived process and talks HTTP to a gateway.
 *
 *   wsgw ctl [--admin ADDR:PORT] [--token T] [--config FILE] [--json] COMMAND [ARGS]
 *     status | workers | connections [--route R] [--limit N] | kick CONN [CODE] |
 *     drain | reload | config
 *
 * The endpoint is --admin, else $WSGW_ADMIN, else the [admin] address of --config FILE,
 * else 127.0.0.1:9090; the token --token, else $WSGW_ADMIN_TOKEN, else the file's.
 */
#ifndef WSGW_WSCTL_H
#define WSGW_WSCTL_H

/* argv[0] is "ctl". Returns the exit status: 0, 1 (the gateway said no, or is not there),
 * 2 (usage). */
int wsctl_main(int argc, char **argv);

#endif
