/*
 * The pools in the loop (gateway/pool.h): their creation, and what they do at each step
 * of an iteration — workers' commands dispatched, then at the end of the batch each dead
 * worker's hand-over, waiting connections adopted, held records retried, paused clients
 * resumed, rings published — and the orphans' deadline.
 */
#include "gateway/conn.h"
#include "gateway/log.h"
#include "gateway/pool_int.h"
#include "gateway/stats.h"
#include "gateway/waker.h"
#include "wsgw/protocol.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void resume_later(struct pools *ps, uint64_t id)
{
	if (ps->n_resume == ps->cap_resume) {
		size_t cap = ps->cap_resume ? 2 * ps->cap_resume : 256;
		uint64_t *v = realloc(ps->resume, cap * sizeof(*v));
		if (!v) {
			log_error(ENOMEM, "conn %llu stays paused", (unsigned long long)id);
			return;
		}
		ps->resume = v;
		ps->cap_resume = cap;
	}
	ps->resume[ps->n_resume++] = id;
}

static void resume_waiting(struct pools *ps, struct worker *w)
{
	uint64_t *ids;
	size_t n;
	wk_take_waiting(w, &ids, &n);
	for (size_t i = 0; i < n; i++)
		resume_later(ps, ids[i]);
	free(ids);
}

/* Records go to the worker of their connection now, or wait with it in its pool. */
static void replay(struct pools *ps, struct wk_list *list)
{
	struct wk_held *h;
	while ((h = wk_list_pop(list))) {
		struct conn *c = conn_lookup_here(h->conn);
		struct worker *w = c && (c->flags & CONN_WORKER) ? pool__worker_of(ps, c) : NULL;
		if (w) {
			struct tr_rec r = { .type = h->type, .flags = h->flags, .conn = h->conn,
					    .a = h->body, .na = h->len };
			if (pool__push(ps, w, &r)) {
				stats.records_dropped++;
				log_error(ENOMEM, "a record of conn %llu handed over", (unsigned long long)h->conn);
			}
		} else if (c && (c->flags & CONN_WORKER)) {
			wk_list_append(&pool__of(ps, c)->pending, h);
			continue;
		}
		wk_held_free(h);
	}
}

/* Records meant for the dead worker's connections: every moved connection gets a fresh
 * OPEN(resumed) first, and GONE or ERROR were answers for the dead worker only. */
static void keep_for_others(void *arg, const struct shm_rec *r)
{
	if (r->type != WSGW_MESSAGE && r->type != WSGW_CLOSE)
		return;
	struct tr_rec t = { .type = r->type, .flags = r->flags, .conn = r->conn,
			    .a = r->payload, .na = r->len };
	struct wk_held *h = wk_held_new(&t);
	if (h)
		wk_list_append(arg, h);
	else
		stats.records_dropped++;
}

static void repin(struct conn *c, void *arg)
{
	struct walk *x = arg;
	struct worker *dead = x->w;
	if (c->worker != dead->slot)
		return;
	dead->conns--;
	c->worker = POOL_NO_WORKER;
	if (!(c->flags & CONN_WORKER))
		return;
	struct worker *w = pool__least_loaded(x->ps, dead->pool);
	if (!w) {
		if (dead->pool->orphans++ == 0)
			dead->pool->orphan_deadline = loop_now(x->ps->loop) + x->ps->cfg->orphan_ms;
		return;
	}
	pool__pin(c, w);
	pool__send_open(x->ps, w, c, c->state == CONN_AUTHORIZING ? WSGW_F_AUTHORIZE : WSGW_F_RESUMED);
}

static void detach(struct pools *ps, struct worker *w)
{
	ps->slots[w->slot] = NULL;
	for (unsigned i = 0; i < ps->n_att; i++)
		if (ps->att[i] == w) {
			ps->att[i] = ps->att[--ps->n_att];
			break;
		}
	ps->dying--;
}

/* The one place a worker's death is handled. */
static void hand_over(struct pools *ps, struct worker *w)
{
	struct pool *p = w->pool;
	/* What it sent before dying still counts. */
	rcu_read_lock();
	pool__poll_worker(ps, w);
	rcu_read_unlock();
	w->tr->ops->flush(w->tr);
	struct wk_list left = { 0 };
	w->tr->ops->salvage(w->tr, keep_for_others, &left);
	struct wk_held *h;
	while ((h = wk_list_pop(&w->held))) {
		struct shm_rec r = { .payload = h->body, .len = h->len, .type = h->type,
				     .flags = h->flags, .conn = h->conn };
		keep_for_others(&left, &r);
		wk_held_free(h);
	}
	size_t n_left = left.n;
	unsigned moved = w->conns;
	detach(ps, w);
	struct walk x = { ps, w, p };
	conn_for_each(repin, &x);
	rcu_read_lock();
	replay(ps, &left);
	rcu_read_unlock();
	/* Clients paused on the dead worker read again, from their new owner. */
	resume_waiting(ps, w);
	stats.worker_deaths++;
	stats.records_handed_over += n_left;
	log_warn(0, "worker %u (pool %s, pid %d) gone: %s; %u connections moved%s, %zu unconsumed records handed over",
		 w->id, p->name, (int)w->pid, w->why, moved,
		 p->workers ? "" : " to waiting (no worker left)", n_left);
	wk_free(w);
}

static void adopt_one(struct conn *c, void *arg)
{
	struct walk *x = arg;
	struct worker *w = x->w;
	if (c->worker != POOL_NO_WORKER || !(c->flags & CONN_WORKER) || pool__of(x->ps, c) != w->pool)
		return;
	pool__pin(c, w);
	w->pool->orphans--;
	pool__send_open(x->ps, w, c, c->state == CONN_AUTHORIZING ? WSGW_F_AUTHORIZE : WSGW_F_RESUMED);
	if (c->flags & CONN_READ_PAUSED)
		resume_later(x->ps, c->id);
}

/* The connections waiting in w's pool move to w, with the messages kept for them. */
static void adopt(struct pools *ps, struct worker *w)
{
	struct pool *p = w->pool;
	w->adopt = 0;
	if (!p->orphans)
		return;
	unsigned long n = p->orphans;
	struct walk x = { ps, w, p };
	conn_for_each(adopt_one, &x);
	struct wk_list pend = p->pending;
	memset(&p->pending, 0, sizeof(p->pending));
	rcu_read_lock();
	replay(ps, &pend);
	rcu_read_unlock();
	log_info("worker %u adopted %lu waiting connections", w->id, n);
}

static void move_orphan(struct conn *c, void *arg)
{
	struct walk *x = arg;
	if (pool__of(x->ps, c) == x->p && c->worker == POOL_NO_WORKER && (c->flags & CONN_WORKER) &&
	    c->state != CONN_DEAD && x->ps->ops->elsewhere(x->ps->arg, (unsigned)(x->p - x->ps->pools)))
		x->ps->ops->move(x->ps->arg, c);
}

/* Connections waiting for a worker that another loop has go there. */
static void move_orphans(struct pools *ps)
{
	if (!ps->ops->elsewhere)
		return;
	for (unsigned i = 0; i < ps->n_pools; i++) {
		struct pool *p = &ps->pools[i];
		if (!p->orphans || pool__least_loaded(ps, p) || !ps->ops->elsewhere(ps->arg, i))
			continue;
		unsigned long n = p->orphans;
		struct walk x = { ps, NULL, p };
		conn_for_each(move_orphan, &x);
		log_info("pool %s: %lu of %lu connections waiting for a worker moved to another loop's",
			 p->name, n - p->orphans, n);
	}
}

static void expire_orphan(struct conn *c, void *arg)
{
	struct walk *x = arg;
	if (pool__of(x->ps, c) == x->p && c->worker == POOL_NO_WORKER && (c->flags & CONN_WORKER))
		x->ps->ops->expire(x->ps->arg, c);
}

static void expire_orphans(struct pools *ps)
{
	for (unsigned i = 0; i < ps->n_pools; i++) {
		struct pool *p = &ps->pools[i];
		if (!p->orphans || (int32_t)(loop_now(ps->loop) - p->orphan_deadline) < 0)
			continue;
		log_warn(0, "pool %s: no worker within --orphan-timeout: closing %lu connections with 1013",
			 p->name, p->orphans);
		struct walk x = { ps, NULL, p };
		conn_for_each(expire_orphan, &x);
		size_t dropped = p->pending.n;
		wk_list_clear(&p->pending);
		stats.records_dropped += dropped;
		if (dropped)
			log_warn(0, "pool %s: %zu messages of the closed connections were never delivered",
				 p->name, dropped);
	}
}


/* --- the loop's hooks --- */

static int hook_poll(void *arg)
{
	struct pools *ps = arg;
	int n = 0;
	rcu_read_lock();
	for (unsigned i = 0; i < ps->n_att; i++)
		if (ps->att[i]->state == WK_ALIVE)
			n += pool__poll_worker(ps, ps->att[i]);
	rcu_read_unlock();
	waker_count(ps->waker, (unsigned)n);
	return n;
}

static void hook_flush(void *arg)
{
	struct pools *ps = arg;
	stats.workers_live = pool_live_workers(ps);
	while (ps->dying) {
		for (unsigned i = 0; i < ps->n_att; i++)
			if (ps->att[i]->state == WK_DYING) {
				hand_over(ps, ps->att[i]);
				break;
			}
	}
	for (unsigned i = 0; i < ps->n_att; i++) {
		struct worker *w = ps->att[i];
		if (w->state != WK_ALIVE)
			continue;
		if (w->adopt)
			adopt(ps, w);
		int rc = wk_retry(w);
		if (rc < 0) {
			pool_worker_fail(ps, w, "its channel broke");
		} else if (rc > 0) {
			if (w->quiet_hold)
				log_debug("worker %u (pool %s): acknowledged, resuming %zu clients", w->id,
					  w->pool->name, w->n_waiting);
			else
				log_info("worker %u (pool %s): room again, resuming %zu clients", w->id,
					 w->pool->name, w->n_waiting);
			w->quiet_hold = 0;
			resume_waiting(ps, w);
		}
	}
	move_orphans(ps);
	/* Taken whole: a resumed client may pause again and be listed anew meanwhile. */
	uint64_t *ids = ps->resume;
	size_t n = ps->n_resume;
	ps->resume = NULL;
	ps->n_resume = ps->cap_resume = 0;
	rcu_read_lock();
	for (size_t i = 0; i < n; i++) {
		struct conn *c = conn_lookup_here(ids[i]);
		if (c)
			ps->ops->resume(ps->arg, c);
	}
	rcu_read_unlock();
	free(ids);
	for (unsigned i = 0; i < ps->n_att; i++)
		ps->att[i]->tr->ops->flush(ps->att[i]->tr);
}

static int hook_timeout(void *arg)
{
	struct pools *ps = arg;
	if (ps->dying || ps->n_resume)
		return 0;
	for (unsigned i = 0; i < ps->n_att; i++) {
		struct worker *w = ps->att[i];
		if (w->adopt)
			return 0;
		/* A worker that stops reading does not ring us when it resumes: poll for room.
		 * Not for a zmq window: the ACK that opens it wakes the loop by itself. */
		if (w->held.head && !wk_awaits_input(w))
			return 1;
	}
	return waker_timeout_ms(ps->waker); /* the doorbell muted by a flood: poll */
}

static int any_pending(struct pools *ps)
{
	for (unsigned i = 0; i < ps->n_att; i++) {
		struct worker *w = ps->att[i];
		if (w->state == WK_ALIVE && !w->broken && w->tr->ops->pending && w->tr->ops->pending(w->tr))
			return 1;
	}
	return 0;
}

static int hook_pending(void *arg)
{
	return any_pending(arg);
}

static int hook_sleep(void *arg)
{
	struct pools *ps = arg;
	waker_prepare(ps->waker);
	/* Re-checked after announcing: a record published before a ringer saw the
	 * announcement is visible here (shm/doorbell.c explains why). */
	if (any_pending(ps)) {
		waker_cancel(ps->waker);
		return 1;
	}
	return 0;
}

static void hook_wake(void *arg)
{
	struct pools *ps = arg;
	waker_cancel(ps->waker);
}

/* A full window is routine, but one that stays full means the worker never acknowledges
 * (written against a protocol without ACK?) or is stuck: its clients wait. Said once per
 * episode, after three heartbeat intervals. */
static void watch_windows(struct pools *ps)
{
	uint32_t now = loop_now(ps->loop) | 1; /* never 0, which means "not full" */
	for (unsigned i = 0; i < ps->n_att; i++) {
		struct worker *w = ps->att[i];
		if (w->state != WK_ALIVE || !wk_awaits_input(w)) {
			w->stall_since = 0;
			w->stall_logged = 0;
		} else if (!w->stall_since) {
			w->stall_since = now;
		} else if (!w->stall_logged && now - w->stall_since >= 3 * ps->cfg->heartbeat_ms) {
			w->stall_logged = 1;
			log_warn(0, "worker %u (pool %s): its window has been full for %u ms with no ACK; its %zu paused clients wait (a zmq worker must acknowledge, docs/PROTOCOL.md)",
				 w->id, w->pool->name, now - w->stall_since, w->n_waiting);
		}
	}
}

static void hook_tick(void *arg)
{
	expire_orphans(arg);
	watch_windows(arg);
}

int pool_new(struct loop *l, const struct gw_config *cfg, int workers,
	     const struct pool_conn_ops *ops, void *arg, struct pools **out)
{
	struct pools *ps = calloc(1, sizeof(*ps));
	if (!ps)
		return -ENOMEM;
	ps->loop = l;
	ps->cfg = cfg;
	ps->ops = ops;
	ps->arg = arg;
	ps->next_id = 1;
	ps->ids = &ps->next_id;
	ps->takes_workers = workers;
	const char *why;
	pool__map_routes(ps, cfg, 1, &why);
	int any = 0;
	for (unsigned i = 0; i < ps->n_pools; i++)
		any |= !ps->pools[i].echo;
	if (any && workers) {
		int rc = waker_new(l, cfg->inherit_bell_fd, cfg->inherit_efd, &ps->waker);
		if (rc) {
			free(ps);
			return rc;
		}
		struct loop_hooks h = { .arg = ps, .poll = hook_poll, .flush = hook_flush,
					.timeout_ms = hook_timeout, .pending = hook_pending, .sleep = hook_sleep,
					.wake = hook_wake, .tick = hook_tick };
		loop_add_hooks(l, &h);
	}
	*out = ps;
	return 0;
}

void pool_free(struct pools *ps)
{
	if (!ps)
		return;
	for (unsigned i = 0; i < ps->n_att; i++)
		wk_free(ps->att[i]);
	for (unsigned i = 0; i < ps->n_pools; i++)
		wk_list_clear(&ps->pools[i].pending);
	waker_free(ps->waker);
	free(ps->resume);
	free(ps);
}
