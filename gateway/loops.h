/*
 * The event loops (--loops N). Loop 0 is the server's, on the main thread: it accepts,
 * and it alone serves the admin endpoint, the control channel and the cluster. Loops
 * 1..N-1 are threads, each with its own epoll set, read buffer, session layer and pools:
 * a connection goes to the loop that has the fewest. Each shm worker is attached to one
 * loop's pools (the loop with the fewest of its pool's workers), whose doorbell and rings
 * it uses; a request for a worker route read on a loop with no worker of that pool moves
 * to the loop with the fewest connections among those that have one, and the clients
 * waiting on a loop whose last worker of their pool died move the same way. zmq workers,
 * and with [cluster] every worker, are loop 0's. A plain listener's connections stay on
 * loop 0 when no route spreads; a TLS listener's always spread, so their handshakes do
 * (the TLS state is made on loop 0, where a reload swaps the certificate). Top layer,
 * beside gateway/server.c, which owns it; called from loop 0's thread only, but for the
 * callbacks it gives the loops (sess_home, pool_dir), which run on theirs.
 */
#ifndef WSGW_LOOPS_H
#define WSGW_LOOPS_H

#include <stdint.h>
#include <sys/socket.h>

#include "gateway/config.h"
#include "gateway/loop.h"

struct lps;
struct sess;
struct tls_srv;

/* Starts cfg->loops - 1 loop threads beside l0 and s0 (the server's loop and sessions),
 * each with a copy of cfg. tls: the listeners' certificate, or NULL. Returns 0 and *out,
 * or -errno (logged; none started). */
int lps_new(struct gw_config *cfg, struct loop *l0, struct sess *s0, struct tls_srv *tls,
	    struct lps **out);
/* Stops the threads, closing their connections, and frees everything. NULL is a no-op. */
void lps_free(struct lps *x);

/* A connection accepted on loop 0 (gateway/listener.h's callback) by a TLS listener or
 * not: it starts on the loop chosen for it. More than max_conns open: it is answered 503
 * once read. */
void lps_accept(struct lps *x, int fd, const struct sockaddr *peer, int tls_listener);
void lps_set_max_conns(struct lps *x, unsigned max_conns);

/* The drain begins: from now on a connection that joins a loop (handed to it as it was
 * accepted, or moving to loop 0 for a worker route) is closed in its handshake, as the
 * drain closes those it finds; it found none of these in any loop. Before the drain looks
 * at the connections. */
void lps_drain(struct lps *x);

/* Begins an orderly close of connection id with code on whichever loop owns it: the
 * operator's kick, or (drain 1) the drain, which counts it. Returns 0 (for another loop's,
 * or one moving between loops: asked of its loop, and it follows the connection if that
 * moves before its turn), -ENOENT (no such open connection), or -ENOMEM. */
int lps_close(struct lps *x, uint64_t id, unsigned code, const char *reason, int drain);

/* For the live upgrade, which runs on loop 0 and takes or gives every loop's workers
 * and their connections at once: lps_hold returns once loops 1..N-1 wait, serving
 * nothing (no client, no worker, no post) but lps_on's calls, until lps_release. 0, or
 * -ENOMEM (logged by no one; none waits). Only from a stretch of loop 0 that returns to
 * its loop after lps_release: a loop_call to a waiting loop (lps_each, a worker's attach)
 * would never return. */
int lps_hold(struct lps *x);
void lps_release(struct lps *x);
/* Runs fn on loop k's thread with k's sessions and waits for it: held, between lps_hold
 * and lps_release; otherwise as a loop_call (loop 0's: here). 0, -ENOENT (no loop k) or
 * -ENOMEM. */
int lps_on(struct lps *x, unsigned k, void (*fn)(struct sess *s, void *arg), void *arg);
/* 1 when shm workers are served by every loop (spread-workers with loops above 1). */
int lps_spreads_workers(const struct lps *x);

/* Moves the connections of loops 1..N-1 to loop 0 (the late hand-over of handshakes
 * under way is loop 0's), but with spread-workers those of worker routes past their
 * handshake, which stay with their loop's workers; keeps new ones on loop 0 until
 * lps_spread, which also sends the gathered ones back (lps_balance). Returns 0, or
 * -ENOMEM (logged): some stayed where they were. */
int lps_gather(struct lps *x);
void lps_spread(struct lps *x);

/* Moves open connections of built-in routes from loop 0 to the other loops until each
 * owns its share (after an upgrade took them all in, or one failed after lps_gather). */
void lps_balance(struct lps *x);

/* SIGHUP: the settings next (as loop 0 applies them) go to every other loop, which copies
 * them over its own and maps its connections' routes with map (old index -> new). */
void lps_reload(struct lps *x, const struct gw_config *next, const uint8_t *map);

/* Calls fn on each loop's thread in turn, waiting for each (loop 0's: here), with that
 * loop's sessions. For reports that read connections. */
void lps_each(struct lps *x, void (*fn)(struct sess *s, void *arg), void *arg);

/* The control channel: its shm workers are attached through the loops (struct ctl_dir;
 * with spread-workers to every loop), and it hears when one dies on another loop. */
struct ctl;
void lps_set_ctl(struct lps *x, struct ctl *k);

/* 1 when connections may be on loops other than 0. */
int lps_spreads(const struct lps *x);
/* The loops in all, and the connections loop i owns. */
unsigned lps_count(const struct lps *x);
unsigned long lps_conns(const struct lps *x, unsigned i);

#endif
