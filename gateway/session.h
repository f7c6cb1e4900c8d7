/*
 * An open client connection: the read loop, RFC 6455 frames both ways, the close
 * handshake, and whole messages to and from the route's pool. It owns the pools (the
 * layer below, which reaches it only through struct pool_conn_ops) and is the loop's
 * handler of client connections (struct loop_conn_ops). The HTTP upgrade before all this
 * is gateway/upgrade.c. Loop thread only.
 */
#ifndef WSGW_SESSION_H
#define WSGW_SESSION_H

#include "gateway/config.h"
#include "gateway/loop.h"

struct conn;
struct pools;
struct sess;

/* Creates the session layer of loop l and the pools of cfg's routes beneath it. Returns
 * 0 and *out, or -errno (logged). */
int sess_new(struct loop *l, const struct gw_config *cfg, struct sess **out);
/* Frees the pools and the session layer (connections must be gone). */
void sess_free(struct sess *s);
/* The pools, for the control channel and reloads. */
struct pools *sess_pools(struct sess *s);

/* Takes a new accepted connection: handshake state and deadline. 0 or -ENOMEM. */
int sess_start(struct sess *s, struct conn *c);
/* Begins an orderly close from our side (the drain: code 1001). */
void sess_close(struct sess *s, struct conn *c, unsigned code, const char *reason);

#endif
