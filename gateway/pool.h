/* Worker pools: which worker serves a connection, moving records between connections and
 * workers' rings, and what happens when a worker dies. Loop thread only.
 *
 * Every route names a pool. The pool "echo" is built in (messages come straight back);
 * any other pool is served by the workers that attach to it over the control channel. */
#ifndef WSGW_POOL_H
#define WSGW_POOL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "gateway/config.h"

struct conn;
struct worker;
struct ctl_link;
struct shm_rec;

#define POOL_NO_WORKER 0xffffu

/* Builds the pools the routes name and the gateway's doorbell. Returns 0 or -errno. */
int pool_init(const struct gw_config *cfg);
/* Detaches every worker and removes every segment. */
void pool_shutdown(void);

/* The pool (an index, stable for the gateway's life) that route serves. */
int pool_for_route(unsigned route);
/* 1 when the pool is the built-in echo. */
int pool_is_echo(unsigned pool);
/* SIGHUP: maps the routes of cfg to pools, adding the pools it names. Returns 0, or
 * -EINVAL with *why (a first worker pool needs a restart; too many pools); nothing changed. */
int pool_routes_update(const struct gw_config *cfg, const char **why);

/* --- connections (session.c) --- */

/* Pins c (in pool c->pool) to the pool's least-loaded worker and sends it OPEN with the
 * given fields (pool takes a copy, kept for OPEN(resumed) after a worker death).
 * Returns 0, or -EAGAIN when the pool has no live worker (the client gets 503). */
int pool_open(struct conn *c, const uint8_t *fields, size_t n, int authorize);
/* Adds a field to the copy kept for c (e.g. ":protocol" once agreed). */
void pool_add_field(struct conn *c, const char *name, const char *val, size_t vlen);
/* Hands a whole client message to c's worker. Returns 0 or -ENOMEM. */
int pool_message(struct conn *c, unsigned op, const uint8_t *p, size_t n);
/* Tells c's worker the client is gone; only the first call per connection sends CLOSE.
 * Also frees what the pool kept for c. */
void pool_closed(struct conn *c, unsigned code, const char *reason);
/* 1 when c must not be read now: its worker's ring is full or its pool has no worker.
 * The pool resumes reading c (sess_resume) when that changes. */
int pool_blocked(struct conn *c);

/* --- the loop (server.c) --- */

/* Consumes every worker's to-gateway ring. Returns the number of records handled. */
int pool_poll(void);
/* End of an event batch: wakes the workers that got records, retries held-back records. */
void pool_flush(void);
/* Before sleeping: 1 when a ring has records (then do not sleep). Announces the sleep on
 * the gateway's doorbell otherwise; pool_wakeup() withdraws it. */
int pool_prepare_sleep(void);
void pool_wakeup(void);
/* The eventfd that becomes readable when a worker rings the gateway's doorbell. */
int pool_bell_fd(void);
/* Longest the loop may sleep (ms) given held-back records and orphan deadlines; -1: any. */
int pool_timeout_ms(void);
/* Periodic: orphan deadlines. */
void pool_tick(void);

/* --- workers (control.c) --- */

struct pool_welcome {
	unsigned id;
	char segment[64];
	char bell[64];
	uint64_t to_worker_bytes, to_gateway_bytes;
};

/* Attaches a new worker to pool `name`. link NULL: the shm transport, a segment is created
 * (named in *out); else the zmq transport through link. Returns the worker, or NULL with
 * *why set ("unknown pool", ...). */
struct worker *pool_attach(const char *name, pid_t pid, struct ctl_link *link,
			   struct pool_welcome *out, const char **why);
/* After WELCOME went out: the connections waiting in w's pool move to w (OPEN resumed)
 * with the messages held for them, in order. */
void pool_adopt_orphans(struct worker *w);
/* A command from w (SEND, CLOSE, ACCEPT, REJECT) as a record: from its ring, or decoded
 * from ZeroMQ frames by control.c. Call with rcu_read_lock held. */
void pool_command(struct worker *w, const struct shm_rec *r);
/* The worker is gone (crash, missed heartbeats, BYE, a corrupt ring): its connections move
 * to the rest of its pool with OPEN(resumed) and its unconsumed records follow them, in
 * order; its segment is removed. w stays allocated until pool_worker_free. */
void pool_worker_gone(struct worker *w, const char *why);
/* Workers attached now, in all pools. */
unsigned pool_live_workers(void);
/* 0 once pool_worker_gone ran (control.c then drops the worker). */
int pool_worker_alive(const struct worker *w);
/* Frees w (calling pool_worker_gone first if it still lives). Control channel only. */
void pool_worker_free(struct worker *w);
unsigned pool_worker_id(const struct worker *w);
/* 1 for a worker on the zmq transport. */
int pool_worker_is_zmq(const struct worker *w);

#endif
