/*
 * Shm workers on every loop (spread-workers): the control channel's attach, failure, fds
 * and departure of a worker run on the thread of the loop it is attached to; and a worker
 * route's connection goes to a loop with a worker of its pool (sess_home's pick and move).
 */
#include "gateway/loops_int.h"
#include "gateway/conn.h"
#include "gateway/control.h"
#include "gateway/log.h"
#include "gateway/loop.h"
#include "gateway/pool.h"
#include "gateway/session.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

struct move {
	struct lp *to;
	struct conn *c;
	struct pool_held *held;  /* an open connection waiting for a worker: its records */
};

/* --- moving a worker route's connection to a loop with a worker --- */

static void arrive(struct loop *l, void *arg)
{
	struct move *m = arg;
	struct lps *x = m->to->x;
	(void)l;
	/* Moving, it was in no loop when the drain looked. */
	if (m->c->state == CONN_HANDSHAKE && lps__draining(x)) {
		sess_turn_away(m->to->sess, m->c, "server shutting down");
	} else {
		sess_arrive(m->to->sess, m->c, m->held);
		if (m->c->state == CONN_OPEN)
			lps__drain_gate(m->to, m->c);
	}
	free(m);
}

/* sess_home.pick: another loop has a live worker of pool (the one with the fewest
 * connections, remembered for move). */
int lps__pick(void *arg, unsigned pool)
{
	struct lp *p = arg;
	struct lps *x = p->x;
	struct lp *best = NULL;
	unsigned long best_n = 0;
	for (unsigned i = 0; i < x->n; i++) {
		struct lp *q = &x->lp[i];
		if (q == p || !pool_live_in(sess_pools(q->sess), pool))
			continue;
		unsigned long n = lps__owns(q);
		if (!best || n < best_n) {
			best = q;
			best_n = n;
		}
	}
	if (!best)
		return 0;
	p->move_to = best->index;
	return 1;
}

int lps__move(void *arg, struct conn *c, struct pool_held *held)
{
	struct lp *p = arg;
	struct lp *to = &p->x->lp[p->move_to];
	struct move *m = malloc(sizeof(*m));
	if (!m)
		return -ENOMEM;
	*m = (struct move){ to, c, held };
	loop_detach_conn(p->loop, c, to->index);
	if (loop_post(to->loop, arrive, m) == 0)
		return 0;
	free(m);
	if (loop_add_conn(p->loop, c))
		loop_close(p->loop, c, "epoll_ctl failed");
	return -ENOMEM;
}

/* --- shm workers on every loop (gateway/control.h's struct ctl_dir) --- */

struct attach_req {
	struct pools *ps;
	const char *pool;
	pid_t pid;
	struct pool_welcome *out;
	const char *why;
	int ok;
};

static void run_attach(struct loop *l, void *arg)
{
	struct attach_req *r = arg;
	struct pool_link link = { .zmq = 0 };
	(void)l;
	r->ok = pool_attach(r->ps, r->pool, r->pid, &link, r->out, &r->why) != NULL;
}

/* A new shm worker goes to the loop with the fewest live workers of its pool (the lowest
 * index first), and is attached to that loop's pools on its thread. */
static int dir_attach(void *arg, const char *pool, pid_t pid, struct pool_welcome *out,
		      const char **why, unsigned *loop)
{
	struct lps *x = arg;
	int idx = pool_index(sess_pools(x->lp[0].sess), pool);
	unsigned best = 0;
	for (unsigned i = 1; idx >= 0 && x->spread_workers && i < x->n; i++)
		if (pool_live_in(sess_pools(x->lp[i].sess), (unsigned)idx) <
		    pool_live_in(sess_pools(x->lp[best].sess), (unsigned)idx))
			best = i;
	struct attach_req r = { sess_pools(x->lp[best].sess), pool, pid, out, NULL, 0 };
	if (best == 0)
		run_attach(x->lp[0].loop, &r);
	else if (loop_call(x->lp[best].loop, run_attach, &r))
		r.why = "out of memory";
	*why = r.why;
	*loop = best;
	return r.ok ? 0 : -1;
}

struct fail_req {
	struct pools *ps;
	unsigned id;
	char why[96];
};

static void run_fail(struct loop *l, void *arg)
{
	struct fail_req *r = arg;
	(void)l;
	struct worker *w = pool_worker(r->ps, r->id);
	if (w)
		pool_worker_fail(r->ps, w, r->why);
	free(r);
}

static void dir_fail(void *arg, unsigned loop, unsigned id, const char *why)
{
	struct lps *x = arg;
	struct fail_req *r = malloc(sizeof(*r));
	if (r) {
		*r = (struct fail_req){ sess_pools(x->lp[loop].sess), id, "" };
		snprintf(r->why, sizeof(r->why), "%s", why);
		if (loop_post(x->lp[loop].loop, run_fail, r) == 0)
			return;
		free(r);
	}
	/* It stays attached there, forgotten by the control channel: its clients are served
	 * while it serves them, and its memory share fails it when it stops. */
	log_error(ENOMEM, "worker %u (loop %u) not failed (%s)", id, loop, why);
}

struct fds_req {
	struct pools *ps;
	const char *token;
	pid_t pid;
	int *fds;
	const char *why;
	int rc;
};

/* On the worker's loop, which may free the descriptors as soon as it runs again: copies. */
static void run_fds(struct loop *l, void *arg)
{
	struct fds_req *r = arg;
	int own[3];
	(void)l;
	r->rc = pool_shm_fds(r->ps, r->token, r->pid, own, &r->why);
	for (int i = 0; r->rc == 0 && i < 3; i++)
		if ((r->fds[i] = fcntl(own[i], F_DUPFD_CLOEXEC, 3)) < 0) {
			r->rc = -errno;
			r->why = "out of file descriptors";
			while (i-- > 0)
				close(r->fds[i]);
		}
}

static int dir_fds(void *arg, const char *token, pid_t pid, int fds[3], const char **why)
{
	struct lps *x = arg;
	struct fds_req r = { .token = token, .pid = pid, .fds = fds, .rc = -ENOENT };
	for (unsigned i = 0; i < x->n && r.rc == -ENOENT; i++) {
		r.ps = sess_pools(x->lp[i].sess);
		if (i == 0)
			run_fds(x->lp[0].loop, &r);
		else if (loop_call(x->lp[i].loop, run_fds, &r))
			r = (struct fds_req){ .rc = -ENOMEM, .why = "out of memory" };
	}
	*why = r.why;
	return r.rc;
}

struct gone {
	struct lps *x;
	unsigned id;
};

static void run_gone(struct loop *l, void *arg)
{
	struct gone *g = arg;
	(void)l;
	if (g->x->ctl)
		ctl_worker_gone(g->x->ctl, g->id);
	free(g);
}

void lps__worker_gone(void *arg, unsigned id)
{
	struct lp *p = arg;
	struct gone *g = malloc(sizeof(*g));
	if (g) {
		*g = (struct gone){ p->x, id };
		if (loop_post(p->x->lp[0].loop, run_gone, g) == 0)
			return;
		free(g);
	}
	log_error(ENOMEM, "worker %u (loop %u) gone, and the control channel not told: its heartbeats go on",
		  id, p->index);
}

void lps_set_ctl(struct lps *x, struct ctl *k)
{
	x->ctl = k;
	struct ctl_dir d = { x, dir_attach, dir_fail, dir_fds };
	ctl_set_dir(k, &d);
}

