/*
 * The control channel: a ZeroMQ ROUTER where workers say HELLO, get WELCOME, trade
 * heartbeats and say BYE (docs/PROTOCOL.md); zmq-transport workers' commands arrive here
 * too and go to the pools decoded. It runs in the loop thread and never blocks. Its input
 * is read at one point only, the loop's poll step; the ROUTER's fd event just says to look.
 */
#ifndef WSGW_CONTROL_H
#define WSGW_CONTROL_H

#include "gateway/config.h"
#include "gateway/loop.h"

struct ctl;
struct pools;

/* Binds the ROUTER on cfg->control (creating an ipc:// endpoint's directory) and joins
 * the loop. Returns 0 and *out, or -errno (logged; nothing is left). */
int ctl_new(struct loop *l, const struct gw_config *cfg, struct pools *ps, struct ctl **out);
/* Closes the socket, forgets every worker, removes an ipc:// endpoint it bound. */
void ctl_free(struct ctl *k);

#endif
