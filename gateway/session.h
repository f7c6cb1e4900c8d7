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

/* Where the connections of a worker route go when this loop has no worker for it
 * (gateway/loops.h): pick says whether another loop serves the pool (an index) and
 * chooses it; move then takes c, its request read (or, when this loop's last worker of
 * its pool died, open and waiting for one, with what the pools kept for it), out of this
 * loop and posts it there: 0; or -ENOMEM, and c stays here (closed, if epoll_ctl failed
 * too), held still the caller's. */
struct pool_held;
struct sess_home {
	int (*pick)(void *arg, unsigned pool);
	int (*move)(void *arg, struct conn *c, struct pool_held *held);
	void *arg;
};

/* Creates the session layer of loop l and the pools of cfg's routes beneath it; workers
 * 0: the pools take no workers (their routes' requests go where home picks). Returns 0
 * and *out, or -errno (logged). */
int sess_new(struct loop *l, const struct gw_config *cfg, int workers, struct sess **out);
/* Other loops serve worker routes too (before the first connection). */
void sess_set_home(struct sess *s, const struct sess_home *home);
/* Frees the pools and the session layer (connections must be gone). */
void sess_free(struct sess *s);
/* The pools, for the control channel and reloads. */
struct pools *sess_pools(struct sess *s);

/* Takes a new accepted connection: handshake state and deadline. 0 or -ENOMEM. */
int sess_start(struct sess *s, struct conn *c);
/* Takes a connection another loop moved here (sess_home) and routes its request; or one
 * past its handshake whose worker died there, with what was kept for it (held, taken):
 * it waits here for one of this loop's workers. */
void sess_arrive(struct sess *s, struct conn *c, struct pool_held *held);
/* Takes a connection another loop moved here only to close it in its handshake (the
 * drain began while it moved). */
void sess_turn_away(struct sess *s, struct conn *c, const char *reason);
/* Takes an open connection another loop moved here as it was: what it had queued goes
 * out, and it is read again (also what OpenSSL read ahead of it there). When it cannot be
 * added to the epoll set it is closed. */
void sess_adopt(struct sess *s, struct conn *c);
/* Begins an orderly close from our side (the drain: code 1001). */
void sess_close(struct sess *s, struct conn *c, unsigned code, const char *reason);

#endif
