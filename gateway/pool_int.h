/*
 * What gateway/pool.c and gateway/pool_loop.c share: the pools' state and pool.c's
 * helpers that pool_loop.c uses (double underscore: internal to the two). Nothing else
 * includes this.
 */
#ifndef WSGW_POOL_INT_H
#define WSGW_POOL_INT_H

#include "gateway/pool.h"
#include "gateway/worker.h"

#define MAX_POOLS CFG_MAX_ROUTES
#define MAX_WORKERS 256

struct pool {
	char name[CFG_NAME_MAX];
	int echo;
	unsigned workers;       /* alive ones */
	unsigned long orphans;  /* connections waiting for a worker */
	uint32_t orphan_deadline;
	struct wk_list pending; /* their messages, in order */
};

struct pools {
	struct loop *loop;
	const struct gw_config *cfg;
	const struct pool_conn_ops *ops;
	void *arg;
	struct pool pools[MAX_POOLS];
	unsigned n_pools;
	uint8_t route_pool[CFG_MAX_ROUTES];
	struct worker *slots[MAX_WORKERS]; /* by conn->worker */
	struct worker *att[MAX_WORKERS];   /* the attached ones, alive or dying, in no order */
	unsigned n_att;
	unsigned next_id;
	unsigned *ids;                     /* atomic: where ids come from (&next_id, or loop 0's) */
	struct pool_dir dir;               /* told of each worker's death; gone NULL: nobody */
	unsigned dying;                    /* failed, hand-over not done yet */
	struct waker *waker;               /* NULL: no worker pool */
	int takes_workers;                 /* 0: a loop whose worker routes go to another */
	struct clu *clu;                   /* the cluster; NULL: this gateway alone */
	uint64_t *resume;                  /* connections to read again at the end of the batch */
	size_t n_resume, cap_resume;
};

/* What a walk over the connections needs: conn_for_each passes one pointer. */
struct walk {
	struct pools *ps;
	struct worker *w;
	struct pool *p;
};

/* Maps cfg's routes to pools, creating the pools they name. Pools are never removed: a
 * pool whose route went away keeps its workers and connections. Returns 0, or -EINVAL
 * with *why when cfg names a worker pool but there is no control channel to serve it, or
 * more pools than there is room for; nothing changes then. */
int pool__map_routes(struct pools *ps, const struct gw_config *cfg, int have_control,
		     const char **why);
struct pool *pool__of(struct pools *ps, const struct conn *c);
struct worker *pool__worker_of(struct pools *ps, const struct conn *c);
/* Pushes r to w; a broken transport fails the worker (r is held and handed on). Returns
 * 0, -ENOMEM or -EMSGSIZE. */
int pool__push(struct pools *ps, struct worker *w, const struct tr_rec *r);
/* OPEN of c (its kept fields) to w. */
int pool__send_open(struct pools *ps, struct worker *w, struct conn *c, uint16_t flags);
/* The live worker of p with the fewest connections, or NULL. */
struct worker *pool__least_loaded(struct pools *ps, struct pool *p);
/* The worker pool (not the built-in echo) named name[0..n), or NULL. */
struct pool *pool__named(struct pools *ps, const char *name, size_t n);
/* w, made for pool p, takes its slot: attached from now on. */
void pool__add_worker(struct pools *ps, struct pool *p, struct worker *w);
void pool__pin(struct conn *c, struct worker *w);
/* Dispatches w's waiting commands; a corrupt channel fails w. Returns how many. */
int pool__poll_worker(struct pools *ps, struct worker *w);


/* --- a live upgrade: what pool_ho.c and pool_ho_zmq.c share --- */

/* Appends the held records of a hand-over (ho_put_held's) to w's. 0, -EBADMSG, -ENOMEM. */
int pool__ho_held_in(struct worker *w, const struct ho_bytes *held);
/* w, imported, joins pool p. */
void pool__ho_adopted(struct pools *ps, struct pool *p, struct worker *w);
/* Whether the zmq worker w may be exported: it said MOVED and nothing it was sent is
 * unacknowledged. 0, or -EAGAIN / -EPROTO with why. */
int pool__ho_zmq_ready(const struct worker *w, char *why, size_t cap);

#endif
