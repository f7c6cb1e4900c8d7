#include "gateway/pool_int.h"
#include "gateway/budget.h"
#include "gateway/conn.h"
#include "gateway/log.h"
#include "gateway/openf.h"
#include "gateway/stats.h"
#include "gateway/tr_shm.h"
#include "gateway/topics.h"
#include "gateway/tr_zmq.h"
#include "gateway/waker.h"
#include "shm/fdpass.h"
#include "wsgw/protocol.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct pool *pool__of(struct pools *ps, const struct conn *c)
{
	return &ps->pools[c->pool];
}

struct worker *pool__worker_of(struct pools *ps, const struct conn *c)
{
	return c->worker == POOL_NO_WORKER ? NULL : ps->slots[c->worker];
}

int pool_is_echo(const struct pools *ps, unsigned pool)
{
	return ps->pools[pool].echo;
}

int pool_serves_workers(const struct pools *ps)
{
	return ps->waker != NULL;
}

unsigned pool_for_route(const struct pools *ps, unsigned route)
{
	return ps->route_pool[route];
}

int pool__map_routes(struct pools *ps, const struct gw_config *cfg, int have_control,
		      const char **why)
{
	uint8_t map[CFG_MAX_ROUTES];
	unsigned n = ps->n_pools;
	struct pool added[MAX_POOLS];
	for (int r = 0; r < cfg->n_routes; r++) {
		const char *name = cfg->routes[r].pool;
		unsigned found = n;
		for (unsigned i = 0; i < n && found == n; i++)
			if (!strcmp(i < ps->n_pools ? ps->pools[i].name : added[i - ps->n_pools].name, name))
				found = i;
		if (found == n) {
			int echo = strcmp(name, "echo") == 0;
			if (!echo && !have_control) {
				*why = "a worker pool needs the control channel, which starts only with the gateway";
				return -EINVAL;
			}
			if (n == MAX_POOLS) {
				*why = "too many pools";
				return -EINVAL;
			}
			struct pool *p = &added[n - ps->n_pools];
			memset(p, 0, sizeof(*p));
			snprintf(p->name, sizeof(p->name), "%s", name);
			p->echo = echo;
			n++;
		}
		map[r] = (uint8_t)found;
	}
	/* Only the name and kind: the rest of a slot never used is zero, and other loops
	 * read its worker count (pool_live_in). */
	for (unsigned i = ps->n_pools; i < n; i++) {
		memcpy(ps->pools[i].name, added[i - ps->n_pools].name, sizeof(ps->pools[i].name));
		ps->pools[i].echo = added[i - ps->n_pools].echo;
	}
	ps->n_pools = n;
	memcpy(ps->route_pool, map, sizeof(map));
	return 0;
}

int pool_routes_update(struct pools *ps, const struct gw_config *cfg, const char **why)
{
	/* A loop that takes no workers maps every route (loop 0 said whether it could take a
	 * new worker pool): its requests for one move to a loop with its workers. */
	return pool__map_routes(ps, cfg, ps->waker != NULL || !ps->takes_workers, why);
}

/* --- records to workers --- */

/* Pushes r to w; a broken transport fails the worker (r is held and handed on). */
int pool__push(struct pools *ps, struct worker *w, const struct tr_rec *r)
{
	int rc = wk_push(w, r);
	if (rc == -EIO) {
		pool_worker_fail(ps, w, "its channel broke");
		return 0;
	}
	/* Held records grow only while the worker does not take what it is sent (its
	 * clients are paused meanwhile): past its share it is a worker that will not. */
	if (rc == 0 && w->state == WK_ALIVE && w->held.bytes > ps->cfg->worker_memory) {
		stats.workers_over_share++;
		log_warn(0, "worker %u (pool %s): %zu bytes held for it, over --worker-memory %llu: dropped",
			 w->id, w->pool->name, w->held.bytes, (unsigned long long)ps->cfg->worker_memory);
		pool_worker_fail(ps, w, "over its memory share: it does not take the records it is sent");
	}
	return rc;
}

int pool__send_open(struct pools *ps, struct worker *w, struct conn *c, uint16_t flags)
{
	char peer[64];
	conn_peer(c, peer, sizeof(peer));
	uint8_t first[sizeof(peer) + 16];
	size_t rest_n = 0;
	const uint8_t *rest = c->fields ? of_bytes(c->fields, &rest_n) : NULL;
	struct tr_rec r = { .type = WSGW_OPEN, .flags = flags, .conn = c->id, .a = first,
			    .na = (size_t)(wsgw_field_put(first, ":peer", 5, peer, strlen(peer)) - first),
			    .b = rest, .nb = rest_n };
	int rc = pool__push(ps, w, &r);
	if (rc)
		log_error(-rc, "OPEN of conn %llu for worker %u", (unsigned long long)c->id, w->id);
	return rc;
}

struct worker *pool__least_loaded(struct pools *ps, struct pool *p)
{
	struct worker *best = NULL;
	for (unsigned i = 0; i < ps->n_att; i++) {
		struct worker *w = ps->att[i];
		if (w->state == WK_ALIVE && w->pool == p && (!best || w->conns < best->conns))
			best = w;
	}
	return best;
}

void pool__pin(struct conn *c, struct worker *w)
{
	c->worker = w->slot;
	w->conns++;
}

int pool_open(struct pools *ps, struct conn *c, const uint8_t *fields, size_t n, int authorize)
{
	struct worker *w = pool__least_loaded(ps, pool__of(ps, c));
	if (!w)
		return -EAGAIN;
	c->fields = of_get(fields, n);
	if (!c->fields)
		return -ENOMEM;
	pool__pin(c, w);
	c->flags |= CONN_WORKER;
	int rc = pool__send_open(ps, w, c, authorize ? WSGW_F_AUTHORIZE : 0);
	if (rc) {
		c->flags &= (uint8_t)~CONN_WORKER;
		c->worker = POOL_NO_WORKER;
		w->conns--;
		of_put(c->fields);
		c->fields = NULL;
	}
	return rc;
}

void pool_add_field(struct pools *ps, struct conn *c, const char *name, const char *val, size_t vlen)
{
	(void)ps;
	if (!c->fields)
		return; /* not a worker's connection */
	size_t n, nl = strlen(name), add = wsgw_field_size(nl, vlen);
	const uint8_t *old = of_bytes(c->fields, &n);
	uint8_t *f = malloc(n + add);
	struct of_set *set = NULL;
	if (f) {
		memcpy(f, old, n);
		wsgw_field_put(f + n, name, nl, val, vlen);
		set = of_get(f, n + add);
		free(f);
	}
	if (!set) {
		log_error(ENOMEM, "conn %llu: field %s not kept for a later OPEN(resumed)",
			  (unsigned long long)c->id, name);
		return;
	}
	of_put(c->fields);
	c->fields = set;
}

int pool_message(struct pools *ps, struct conn *c, unsigned op, const uint8_t *p, size_t n)
{
	struct tr_rec r = { .type = WSGW_MESSAGE, .flags = op == 2 /* WS_OP_BINARY */ ? WSGW_F_BINARY : 0,
			    .conn = c->id, .a = p, .na = n };
	struct worker *w = pool__worker_of(ps, c);
	if (w)
		return pool__push(ps, w, &r);
	if (!bud_room(BUD_HELD, sizeof(struct wk_held) + n))
		return -ENOBUFS;
	struct wk_held *h = wk_held_new(&r);
	if (!h)
		return -ENOMEM;
	wk_list_append(&pool__of(ps, c)->pending, h);
	return 0;
}

void pool_closed(struct pools *ps, struct conn *c, unsigned code, const char *reason)
{
	/* Its subscriptions end with it, as its worker sees it: a QUERY in answer to this
	 * CLOSE no longer counts it, whatever its TCP connection still does. */
	top_drop_conn(c);
	if (c->flags & CONN_WORKER) {
		c->flags &= (uint8_t)~CONN_WORKER;
		struct worker *w = pool__worker_of(ps, c);
		if (w) {
			uint8_t be[2] = { (uint8_t)(code >> 8), (uint8_t)code };
			struct tr_rec r = { .type = WSGW_CLOSE, .conn = c->id, .a = be, .na = 2,
					    .b = reason, .nb = strlen(reason) };
			if (pool__push(ps, w, &r)) {
				stats.records_dropped++;
				log_error(ENOMEM, "CLOSE of conn %llu for worker %u", (unsigned long long)c->id, w->id);
			}
			w->conns--;
		} else {
			pool__of(ps, c)->orphans--;
		}
	}
	c->worker = POOL_NO_WORKER;
	of_put(c->fields);
	c->fields = NULL;
}

int pool_blocked(struct pools *ps, struct conn *c)
{
	if (!(c->flags & CONN_WORKER))
		return 0;
	struct worker *w = pool__worker_of(ps, c);
	if (!w)
		return 1; /* waiting for a worker: adopted, and read again, when one attaches */
	if (w->state == WK_ALIVE && !w->held.head)
		return 0;
	/* Read again when the held records are in, or from the new worker after the death.
	 * Without the memory to remember that, it is read now: its records are held too. */
	return wk_wait(w, c->id) == 0;
}

/* --- attach, death, orphans --- */

struct pool *pool__named(struct pools *ps, const char *name, size_t n)
{
	for (unsigned i = 0; i < ps->n_pools; i++)
		if (!ps->pools[i].echo && strlen(ps->pools[i].name) == n && !memcmp(ps->pools[i].name, name, n))
			return &ps->pools[i];
	return NULL;
}

void pool__add_worker(struct pools *ps, struct pool *p, struct worker *w)
{
	ps->slots[w->slot] = w;
	ps->att[ps->n_att++] = w;
	/* Read by the other loops (pool_live_in), written here only. */
	__atomic_store_n(&p->workers, p->workers + 1, __ATOMIC_RELAXED);
}

struct worker *pool_attach(struct pools *ps, const char *name, pid_t pid,
			   const struct pool_link *link, struct pool_welcome *out, const char **why)
{
	struct pool *p = pool__named(ps, name, strlen(name));
	int slot = -1;
	for (int i = 0; i < MAX_WORKERS && slot < 0; i++)
		if (!ps->slots[i])
			slot = i;
	struct worker *w = p && slot >= 0 ? calloc(1, sizeof(*w)) : NULL;
	if (!w) {
		*why = !p ? "unknown pool" : slot < 0 ? "too many workers" : "out of memory";
		return NULL;
	}
	w->id = __atomic_fetch_add(ps->ids, 1, __ATOMIC_RELAXED);
	w->slot = (uint16_t)slot;
	w->pool = p;
	w->pid = pid;
	memset(out, 0, sizeof(*out));
	out->id = w->id;
	int rc;
	if (link->zmq) {
		struct tr_zmq_window win = { ps->cfg->zmq_window, ps->cfg->zmq_window_bytes };
		rc = tr_zmq_new(link->sock, link->ident, link->ilen, link->sent, &win, &w->tr);
	} else {
		struct tr_shm_opts o = { .worker_id = w->id, .ring_bytes = ps->cfg->ring_bytes,
					 .mode = 0600, .bell = waker_doorbell(ps->waker) };
		struct tr_shm_info info;
		rc = tr_shm_new(&o, &w->tr, &info);
		if (rc == 0)
			rc = shm_fdpass_token(w->token);
		if (rc == 0) {
			snprintf(out->token, sizeof(out->token), "%s", w->token);
			out->to_worker_bytes = info.to_worker_bytes;
			out->to_gateway_bytes = info.to_gateway_bytes;
		}
	}
	if (rc) {
		wk_free(w);
		*why = "cannot create its transport";
		return NULL;
	}
	w->adopt = p->orphans > 0;
	pool__add_worker(ps, p, w);
	stats.worker_attaches++;
	log_info("worker %u attached to pool %s (pid %d, %s transport, loop %u)", w->id, p->name, (int)pid,
		 link->zmq ? "zmq" : "shm", loop_index(ps->loop));
	return w;
}

int pool_shm_fds(struct pools *ps, const char *token, pid_t pid, int fds[3], const char **why)
{
	for (unsigned i = 0; i < ps->n_att; i++) {
		struct worker *w = ps->att[i];
		if (w->state != WK_ALIVE || !w->token[0] || strcmp(w->token, token) != 0)
			continue;
		/* The process that said HELLO, if it said who it is. */
		if (w->pid > 0 && pid != w->pid) {
			*why = "not the process that said HELLO";
			return -EPERM;
		}
		w->token[0] = 0; /* one use */
		fds[0] = tr_shm_fd(w->tr);
		fds[1] = waker_fd(ps->waker);
		fds[2] = waker_efd(ps->waker);
		return 0;
	}
	*why = "an unknown or used token";
	return -ENOENT;
}

struct worker *pool_worker(struct pools *ps, unsigned id)
{
	for (unsigned i = 0; i < ps->n_att; i++)
		if (ps->att[i]->id == id)
			return ps->att[i]->state == WK_ALIVE ? ps->att[i] : NULL;
	return NULL;
}

void pool_worker_fail(struct pools *ps, struct worker *w, const char *why)
{
	if (w->state != WK_ALIVE)
		return;
	w->state = WK_DYING;
	snprintf(w->why, sizeof(w->why), "%s", why);
	__atomic_store_n(&w->pool->workers, w->pool->workers - 1, __ATOMIC_RELAXED);
	ps->dying++;
	if (ps->dir.gone)
		ps->dir.gone(ps->dir.arg, w->id);
}

void pool_set_dir(struct pools *ps, const struct pool_dir *d)
{
	ps->dir = *d;
}

void pool_share_ids(struct pools *ps, struct pools *from)
{
	ps->ids = from->ids;
}

unsigned pool_live_in(const struct pools *ps, unsigned pool)
{
	return pool < MAX_POOLS ? __atomic_load_n(&ps->pools[pool].workers, __ATOMIC_RELAXED) : 0;
}

/* What the pools kept for a connection waiting for a worker, as it moves to another loop. */
struct pool_held {
	struct wk_list list;
};

int pool_release(struct pools *ps, struct conn *c, struct pool_held **out)
{
	struct pool *p = pool__of(ps, c);
	struct pool_held *h = calloc(1, sizeof(*h));
	if (!h)
		return -ENOMEM;
	struct wk_list rest = { 0 };
	struct wk_held *r;
	while ((r = wk_list_pop(&p->pending)))
		wk_list_append(r->conn == c->id ? &h->list : &rest, r);
	p->pending = rest;
	p->orphans--;
	*out = h;
	return 0;
}

void pool_receive(struct pools *ps, struct conn *c, struct pool_held *h)
{
	struct pool *p = pool__of(ps, c);
	if (p->orphans++ == 0)
		p->orphan_deadline = loop_now(ps->loop) + ps->cfg->orphan_ms;
	struct wk_held *r;
	while (h && (r = wk_list_pop(&h->list)))
		wk_list_append(&p->pending, r);
	free(h);
	struct worker *w = pool__least_loaded(ps, p);
	if (w)
		w->adopt = 1; /* at the batch's end, with the records kept for it */
}

void pool_held_free(struct pool_held *h)
{
	if (!h)
		return;
	wk_list_clear(&h->list);
	free(h);
}

int pool_index(const struct pools *ps, const char *name)
{
	const struct pool *p = pool__named((struct pools *)ps, name, strlen(name));
	return p ? (int)(p - ps->pools) : -1;
}

unsigned pool_live_workers(const struct pools *ps)
{
	unsigned n = 0;
	for (unsigned i = 0; i < ps->n_att; i++)
		n += ps->att[i]->state == WK_ALIVE;
	return n;
}

void pool_each(struct pools *ps, void (*fn)(void *arg, const struct pool_info *p), void *arg)
{
	for (unsigned i = 0; i < ps->n_pools; i++) {
		const struct pool *p = &ps->pools[i];
		struct pool_info info = { p->name, p->echo, p->workers, p->orphans, p->pending.n };
		fn(arg, &info);
	}
}

void pool_each_worker(struct pools *ps, void (*fn)(void *arg, const struct pool_worker_info *w),
		      void *arg)
{
	for (unsigned i = 0; i < ps->n_att; i++) {
		struct worker *w = ps->att[i];
		if (w->state != WK_ALIVE)
			continue;
		struct tr_stats st = { 0 };
		if (w->tr->ops->stats)
			w->tr->ops->stats(w->tr, &st);
		struct pool_worker_info info = { w->id, w->pool->name, w->pid, w->tr->ops->name, w->conns,
						 st.bytes, st.capacity, st.records, st.oldest_ms,
						 w->held.n, w->held.bytes, w->n_waiting, loop_index(ps->loop) };
		fn(arg, &info);
	}
}

const char *pool_conn_pool(const struct pools *ps, const struct conn *c)
{
	return c->route == 0xff ? "" : ps->pools[c->pool].name;
}

unsigned pool_conn_worker(const struct pools *ps, const struct conn *c)
{
	const struct worker *w = c->worker == POOL_NO_WORKER ? NULL : ps->slots[c->worker];
	return w ? w->id : 0;
}
