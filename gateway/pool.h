/*
 * Worker pools: which worker serves a connection; client messages to workers and their
 * commands back to clients; attaching, death and hand-over. Loop thread only.
 *
 * Every route names a pool. The pool "echo" is built in (the session layer answers
 * itself); any other is served by the workers that attach over the control channel.
 * Commands reach the session layer only through struct pool_conn_ops.
 *
 * A worker's death is marked where it is noticed (pool_worker_fail) and handled once, at
 * the end of the batch (the loop's flush): what it sent last is read, its connections
 * move to the rest of its pool with OPEN(resumed), the records it never consumed follow
 * them in order, the clients it had paused read again, and it is freed, here.
 */
#ifndef WSGW_POOL_H
#define WSGW_POOL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "gateway/config.h"
#include "gateway/handover.h"
#include "gateway/loop.h"

struct conn;
struct pools;
struct top_msg;
struct shm_rec;
struct worker;

#define POOL_NO_WORKER 0xffffu

/* The session layer, as workers' commands and the pools' decisions reach it. */
struct pool_conn_ops {
	/* A message (op WS_OP_TEXT or WS_OP_BINARY) for the client. */
	void (*send)(void *arg, struct conn *c, unsigned op, const void *p, size_t n);
	/* The worker closes the client: code and reason (n bytes, not NUL-terminated). */
	void (*close)(void *arg, struct conn *c, unsigned code, const char *reason, size_t n);
	/* An authorizing client is let in: ACCEPT's fields (docs/PROTOCOL.md). */
	void (*accept)(void *arg, struct conn *c, const void *fields, size_t n);
	/* An authorizing client is refused with an HTTP status. */
	void (*reject)(void *arg, struct conn *c, unsigned status, const char *reason, size_t n);
	/* c was paused because its worker could not take more: read it again. */
	void (*resume)(void *arg, struct conn *c);
	/* c waited for a worker longer than --orphan-timeout: close it with 1013. */
	void (*expire)(void *arg, struct conn *c);
	/* A message for every subscriber of its topic but m->exclude and those whose
	 * subscription skips it (top_skips). Called with rcu_read_lock held. */
	void (*publish)(void *arg, const struct top_msg *m);
	/* A message of the topic's history for c alone (what it missed), whatever its
	 * subscription skips. */
	void (*replay)(void *arg, struct conn *c, const struct top_msg *m);
	/* One message for each of the connections. */
	void (*send_many)(void *arg, struct conn *const *conns, size_t count, unsigned op,
			  const void *p, size_t n);
	/* Whether another loop has a live worker of pool (an index), where the connections
	 * waiting here for one should go (move: c waits for a worker; call pool_release).
	 * NULL: one loop. */
	int (*elsewhere)(void *arg, unsigned pool);
	void (*move)(void *arg, struct conn *c);
};

/* Builds the pools the routes of cfg name; with a worker pool among them and workers 1,
 * also the gateway's doorbell and the loop hooks that move records (workers 0: a loop
 * that serves only the built-in pools). Returns 0 and *out, or -errno (logged). */
int pool_new(struct loop *l, const struct gw_config *cfg, int workers,
	     const struct pool_conn_ops *ops, void *arg, struct pools **out);
/* Frees every worker and segment. */
void pool_free(struct pools *ps);
/* Joins the pools to the cluster k (gateway/cluster.h): workers' commands for other
 * gateways go through it, and what other gateways send comes back through the pools. */
struct clu;
void pool_set_cluster(struct pools *ps, struct clu *k);

/* 1 when some pool is served by workers (the control channel is needed). */
int pool_serves_workers(const struct pools *ps);
/* The pool (an index, stable for the gateway's life) that route serves. */
unsigned pool_for_route(const struct pools *ps, unsigned route);
/* 1 when the pool is the built-in echo. */
int pool_is_echo(const struct pools *ps, unsigned pool);
/* SIGHUP: maps the routes of cfg to pools, adding the pools it names. Returns 0, or
 * -EINVAL with *why (a first worker pool needs a restart; too many pools); nothing changed. */
int pool_routes_update(struct pools *ps, const struct gw_config *cfg, const char **why);

/* --- connections (the session layer) --- */

/* Pins c (in pool c->pool) to the pool's least-loaded worker and sends it OPEN with the
 * given fields (copied, and kept for OPEN(resumed) after a worker death). Returns 0,
 * -EAGAIN (the pool has no live worker), -ENOMEM, or -EMSGSIZE (the OPEN can never fit the
 * worker's ring); c is not pinned on error. */
int pool_open(struct pools *ps, struct conn *c, const uint8_t *fields, size_t n, int authorize)
	__attribute__((warn_unused_result));
/* Adds a field to the copy kept for c (":protocol" once agreed). */
void pool_add_field(struct pools *ps, struct conn *c, const char *name, const char *val,
		    size_t vlen);
/* Hands a whole client message to c's worker (or keeps it while c waits for one).
 * Returns 0, -ENOMEM, or -EMSGSIZE (it can never fit the worker's ring). */
int pool_message(struct pools *ps, struct conn *c, unsigned op, const uint8_t *p, size_t n)
	__attribute__((warn_unused_result));
/* Tells c's worker the client is gone; only the first call per connection sends CLOSE.
 * Frees what the pools kept for c. */
void pool_closed(struct pools *ps, struct conn *c, unsigned code, const char *reason);
/* 1 when c must not be read now (its worker cannot take more, or it has none); the pools
 * resume it (pool_conn_ops.resume) when that changes. */
int pool_blocked(struct pools *ps, struct conn *c);

/* --- workers (the control channel) --- */

/* How a new worker is reached: the shm transport (zmq 0), or the zmq transport to ident
 * on the ROUTER sock (*sent set after each send; see gateway/tr_zmq.h). */
struct pool_link {
	int zmq;
	void *sock;
	const uint8_t *ident;
	size_t ilen;
	int *sent;
};

/* What WELCOME tells the worker. */
struct pool_welcome {
	unsigned id;
	char token[33];   /* shm: fetches the segment at the attach socket once; zmq: empty */
	uint64_t to_worker_bytes, to_gateway_bytes;
};

/* Attaches a new worker to pool `name`. Returns it, or NULL with *why ("unknown pool",
 * "too many workers", ...). Connections waiting in the pool move to it at the end of the
 * batch, after the caller's WELCOME went out. */
struct worker *pool_attach(struct pools *ps, const char *name, pid_t pid,
			   const struct pool_link *link, struct pool_welcome *out,
			   const char **why);
/* The attach socket's question: the segment's, the doorbell page's and the loop's eventfd
 * (still owned by the pools) of the live shm worker whose WELCOME carried token, asked by
 * process pid. A token works once. Returns 0, or -ENOENT / -EPERM with *why. */
int pool_shm_fds(struct pools *ps, const char *token, pid_t pid, int fds[3], const char **why);
/* The live worker with this id, or NULL (never attached, dead, or dying). */
struct worker *pool_worker(struct pools *ps, unsigned id);
/* A command (SEND, CLOSE, ACCEPT, REJECT) from w, as its ring carries it. Call with
 * rcu_read_lock held. */
void pool_command(struct pools *ps, struct worker *w, const struct shm_rec *r);
/* w's ACK (zmq transport): it has finished with the first n counted records it was sent
 * since WELCOME; their copies are freed and its window opens (the records held meanwhile
 * go in at the batch's end). Returns 0, or -EINVAL with *why: n is more than w was sent,
 * or w's transport takes no ACK; nothing changed. */
int pool_ack(struct pools *ps, struct worker *w, uint64_t n, const char **why)
	__attribute__((warn_unused_result));
/* w is dead (exited, silent, said BYE, corrupt, ...): it takes no more work and its
 * death is handled at the end of the batch. Idempotent. */
void pool_worker_fail(struct pools *ps, struct worker *w, const char *why);
/* Workers attached and alive now, in all pools. */
unsigned pool_live_workers(const struct pools *ps);

/* --- a live upgrade (gateway/pool_ho.c, docs/UPGRADE.md) --- */

/* Whether the workers can be handed over now: 0, or -EAGAIN (one is dying: its
 * connections are moving) with why. */
int pool_ho_check(struct pools *ps, char *why, size_t cap);
/* Sets *why when c, open on a worker route, cannot move with its worker (it waits for
 * one; its worker is dying). */
void pool_ho_conn_ok(struct pools *ps, const struct conn *c, const char **why);
/* The control socket's routing id of worker wid: 0, or -ENOENT. */
typedef int pool_ident_fn(void *arg, unsigned wid, const uint8_t **ident, size_t *len);
/* Where pool_ho_export appends: the WORKERS section's records, the shm workers'
 * segment fds (still the pools'), and how many records. */
struct pool_ho_out {
	struct ho_buf *sec;
	int *fds;
	int nfds, fds_cap;
	unsigned nrec;
};
/* The old side: appends a record per worker of ps (the pools of loop `loop`) with what
 * is held for it, plus a CLOSE 1001 for each of the kept connections pinned to it. Rings
 * are published first. Every zmq worker must have said MOVED (pool_ho_moved). Nothing
 * else changes. 0, or -errno with why (-E2BIG: more segments than out has room for). */
int pool_ho_export(struct pools *ps, unsigned loop, struct conn *const *kept, size_t n_kept,
		   pool_ident_fn *ident, void *arg, struct pool_ho_out *out, char *why, size_t cap)
	__attribute__((warn_unused_result));
/* The next worker id (shared by every loop's pools): the WORKERS section starts with it. */
unsigned pool_ho_next_id(const struct pools *ps);
/* The old side, after TAKEN: the kept connections lose their pin (their worker had its
 * CLOSE), every worker is freed without a word to it, and the doorbell and the eventfd are
 * the new process's (waker_hand_off). */
void pool_ho_forget(struct pools *ps, struct conn *const *kept, size_t n_kept);
/* The new side: a worker as the old process had it, with its segment's fd (taken, closed
 * on error). 0, or -errno with why. */
int pool_ho_import_worker(struct pools *ps, const struct ho_worker *hw, int fd, const char **why)
	__attribute__((warn_unused_result));
void pool_ho_set_next_id(struct pools *ps, unsigned id);
/* Pins an imported connection to the imported worker of slot; 0 or -ENOENT with why. */
int pool_ho_pin(struct pools *ps, struct conn *c, unsigned slot, const char **why)
	__attribute__((warn_unused_result));
/* Undoes pool_ho_pin without a word to the worker. */
void pool_ho_unpin(struct pools *ps, struct conn *c);
/* After TAKEN, on both sides: every segment names pid as its gateway. The old writes the
 * new one's before it can exit, so a worker never finds a gone pid there (it would
 * attach again); the new one writes its own. */
void pool_ho_name_gateway(struct pools *ps, pid_t pid);
/* The doorbell page's memfd to hand over; -1 without worker pools. */
int pool_ho_bell_fd(struct pools *ps);
/* The loop's eventfd, which the shm workers write, to hand over; -1 without worker pools. */
int pool_ho_efd(struct pools *ps);

/* zmq workers (gateway/pool_ho_zmq.c; the control channel speaks MOVE, MOVED, RESUME).
 * The old side, before MOVE goes to worker wid: from now on every record for it is held
 * (nothing more enters ZeroMQ). 0, or -ENOENT: no live zmq worker of that id. */
int pool_ho_hold(struct pools *ps, unsigned wid);
/* Its MOVED came: everything it was sent must be acknowledged. 0; -EPROTO with why (it
 * was not: the upgrade fails); -ENOENT: it was not being moved (a late MOVED). */
int pool_ho_moved(struct pools *ps, unsigned wid, char *why, size_t cap);
/* RESUME went out to it (the old side after a failed upgrade, or the new side once it
 * is back): its held records follow at the batch's end. */
void pool_ho_resumed(struct pools *ps, unsigned wid);
/* The new side: a zmq worker as the old process had it, reached through link, holding
 * everything until pool_ho_resumed. 0, or -errno with why. */
int pool_ho_import_zmq(struct pools *ps, const struct ho_worker *hw, const struct pool_link *link,
		       const char **why) __attribute__((warn_unused_result));

/* --- several loops (gateway/loops.h): every loop has its pools, and a shm worker is
 * attached to the pools of one loop --- */

/* Who hears that a worker failed: gone(arg, id) on the pools' thread, once per worker,
 * when it takes no more work. */
struct pool_dir {
	void *arg;
	void (*gone)(void *arg, unsigned id);
};
void pool_set_dir(struct pools *ps, const struct pool_dir *d);
/* ps numbers its workers from the counter of from (loop 0's): ids stay unique across the
 * loops. Before the first attach. */
void pool_share_ids(struct pools *ps, struct pools *from);
/* The live workers of pool (an index) now. Any thread: the index is the same on every
 * loop (they map the same routes), and the count one relaxed load. */
unsigned pool_live_in(const struct pools *ps, unsigned pool);
/* The index of the worker pool named name, or -1. */
int pool_index(const struct pools *ps, const char *name);
/* c waits for a worker (its pool has none here, pool_conn_ops.move) and moves to another
 * loop: it leaves ps, with the records kept for it in *out (for pool_receive there).
 * 0, or -ENOMEM (nothing changed: it waits here). */
struct pool_held;
int pool_release(struct pools *ps, struct conn *c, struct pool_held **out);
/* c, moved here, waits for a worker of its pool with the records held (NULL: none;
 * taken): the least-loaded one takes it at the end of the batch, as it takes waiting
 * connections when it attaches. */
void pool_receive(struct pools *ps, struct conn *c, struct pool_held *held);
void pool_held_free(struct pool_held *held);

/* --- reports (/metrics, /workers, /connections, /healthz) --- */

struct pool_info {
	const char *name;
	int echo;
	unsigned workers;        /* alive */
	unsigned long orphans;   /* connections waiting for a worker */
	size_t pending;          /* their messages kept meanwhile */
};
struct pool_worker_info {
	unsigned id;
	const char *pool;
	pid_t pid;
	const char *transport;   /* "shm", "zmq" */
	unsigned conns;
	uint64_t lag_bytes, lag_capacity, lag_records; /* sent, not consumed (transport.h) */
	uint32_t lag_oldest_ms;
	size_t held, held_bytes; /* records held behind its full channel */
	size_t paused;           /* clients not read until those are in */
	unsigned loop;           /* whose pools serve it */
};
void pool_each(struct pools *ps, void (*fn)(void *arg, const struct pool_info *p), void *arg);
void pool_each_worker(struct pools *ps, void (*fn)(void *arg, const struct pool_worker_info *w),
		      void *arg);
/* The pool of c and the id of its worker (0: none, or the built-in echo). */
const char *pool_conn_pool(const struct pools *ps, const struct conn *c);
unsigned pool_conn_worker(const struct pools *ps, const struct conn *c);

#endif
