#include "gateway/loops_int.h"
#include "gateway/budget.h"
#include "gateway/bufpool.h"
#include "gateway/clog.h"
#include "gateway/conn.h"
#include "gateway/deflate.h"
#include "gateway/door.h"
#include "gateway/frame.h"
#include "gateway/log.h"
#include "gateway/outq.h"
#include "gateway/pool.h"
#include "gateway/session.h"
#include "gateway/stats.h"
#include "gateway/tls.h"

#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <urcu.h>

/* What loop 0 hands another loop: an accepted socket (with its TLS state, made on loop 0,
 * where a reload swaps the certificate), or a connection to close. */
struct hand {
	struct lp *p;
	int fd;
	struct tls_conn *tls;
	struct sockaddr_storage peer;
};

struct close_req {
	struct lp *p;
	uint64_t id;
	unsigned code;
	int drain;               /* counted in wsgw_drained_total */
	unsigned hops;           /* loops it has followed its connection to */
	char reason[64];
};

/* Whether the drain began. A read-modify-write, as lps_drain's exchange: the two meet in
 * draining's order of modification, so either this reads the drain's 1, or the drain's
 * exchange reads what this wrote and everything this thread did before it (a join to the
 * map) is seen by the drain's look that follows. No fence: ThreadSanitizer models these. */
int lps__draining(struct lps *x)
{
	return __atomic_fetch_or(&x->draining, 0, __ATOMIC_ACQ_REL);
}

/* c has just joined loop p, in its epoll set and the map: either the drain's look at the
 * map finds it, or this sees the drain and closes it. */
void lps__drain_gate(struct lp *p, struct conn *c)
{
	if (lps__draining(p->x))
		sess_close(p->sess, c, WS_CLOSE_GOING_AWAY, "server shutting down");
}

/* As listener.c gave it: the connection starts on loop p (with tls, its TLS state, or
 * NULL on a plain listener). */
static void accept_on(struct lp *p, int fd, const struct sockaddr *peer, struct tls_conn *tls)
{
	struct conn *c = conn_new(fd);
	c->tls = tls;
	if (conn_count() > __atomic_load_n(&p->x->max_conns, __ATOMIC_RELAXED))
		c->flags |= CONN_REJECT_503;
	unsigned retry;
	c->door = (uint8_t)door_enter(peer, loop_now(p->loop), &c->ip, &c->port, &retry);
	c->retry_s = (uint8_t)(retry > 255 ? 255 : retry);
	if (sess_start(p->sess, c)) {
		log_error(ENOMEM, "new connection");
		loop_close(p->loop, c, "out of memory");
		return;
	}
	if (loop_add_conn(p->loop, c)) {
		loop_close(p->loop, c, "epoll_ctl failed");
		return;
	}
	lps__drain_gate(p, c);
}

static void take_hand(struct loop *l, void *arg)
{
	struct hand *h = arg;
	(void)l;
	accept_on(h->p, h->fd, (const struct sockaddr *)&h->peer, h->tls);
	__atomic_sub_fetch(&h->p->handed, 1, __ATOMIC_RELAXED);
	free(h);
}

unsigned long lps__owns(struct lp *p)
{
	return loop_conns(p->loop) + __atomic_load_n(&p->handed, __ATOMIC_RELAXED);
}

/* The loop with the fewest connections. */
static struct lp *least_loaded(struct lps *x)
{
	struct lp *best = &x->lp[0];
	unsigned long best_n = lps__owns(best);
	for (unsigned i = 1; i < x->n; i++) {
		struct lp *p = &x->lp[i];
		unsigned long n = lps__owns(p);
		if (n < best_n) {
			best = p;
			best_n = n;
		}
	}
	return best;
}

void lps_accept(struct lps *x, int fd, const struct sockaddr *peer, int tls_listener)
{
	struct tls_conn *tls = NULL;
	if (tls_listener && !(tls = tls_conn_new(x->tls, fd))) {
		log_error(ENOMEM, "new TLS connection");
		close(fd);
		return;
	}
	/* A TLS handshake is the costliest thing a connection asks of its loop, whatever its
	 * route: it is done where there is room, even when the route then moves it to loop 0. */
	int spread = (x->builtin || x->spread_workers || tls) && !x->gathered;
	struct lp *p = spread ? least_loaded(x) : &x->lp[0];
	if (p->index == 0) {
		accept_on(p, fd, peer, tls);
		return;
	}
	struct hand *h = malloc(sizeof(*h));
	if (h) {
		h->p = p;
		h->fd = fd;
		h->tls = tls;
		memcpy(&h->peer, peer, peer->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6)
								  : sizeof(struct sockaddr_in));
		__atomic_add_fetch(&p->handed, 1, __ATOMIC_RELAXED);
		if (loop_post(p->loop, take_hand, h) == 0)
			return;
		__atomic_sub_fetch(&p->handed, 1, __ATOMIC_RELAXED);
		free(h);
	}
	accept_on(&x->lp[0], fd, peer, tls); /* no memory to hand it over: it stays here */
}

void lps_set_max_conns(struct lps *x, unsigned max_conns)
{
	__atomic_store_n(&x->max_conns, max_conns, __ATOMIC_RELAXED);
}

/* --- closing by id --- */

/* 1 when it was open here and is closing now. */
static int close_here(struct lp *p, uint64_t id, unsigned code, const char *reason, int drain)
{
	rcu_read_lock();
	struct conn *c = conn_lookup_here(id);
	int open = c && c->state != CONN_DEAD;
	if (open) {
		if (drain)
			stats.drained++;
		else
			clog_info(c, "%s with %u (%s)", reason, code, ws_close_name(code));
		sess_close(p->sess, c, code, reason);
	}
	rcu_read_unlock();
	return open;
}

/* Where id is: the index of its loop, CONN_MOVING | k on its way to loop k, or
 * CONN_NO_LOOP for no such connection (or none of x's loops). */
static unsigned where(const struct lps *x, uint64_t id)
{
	rcu_read_lock();
	struct conn *c = conn_lookup(id);
	unsigned k = c ? conn_loop(c) : CONN_NO_LOOP;
	rcu_read_unlock();
	return (k & ~CONN_MOVING) < x->n ? k : CONN_NO_LOOP;
}

/* A connection may move between the look that chose a loop for its close and that loop's
 * turn (its worker died, a balance, a subscriber going to a loop with a worker): the close
 * follows it, a bounded number of times, as nothing moves a connection for ever. */
#define CLOSE_HOPS 16

static void take_close(struct loop *l, void *arg);

static int post_close(struct lps *x, unsigned k, struct close_req *r)
{
	r->p = &x->lp[k];
	return loop_post(r->p->loop, take_close, r);
}

static void take_close(struct loop *l, void *arg)
{
	struct close_req *r = arg;
	struct lps *x = r->p->x;
	(void)l;
	unsigned k = close_here(r->p, r->id, r->code, r->reason, r->drain) ? r->p->index
									   : where(x, r->id);
	/* Closed here, or here and dead already, or gone: done. */
	if (k == r->p->index || k == CONN_NO_LOOP) {
		free(r);
		return;
	}
	if (++r->hops > CLOSE_HOPS || post_close(x, k & ~CONN_MOVING, r)) {
		log_warn(0, "conn %llu: the close with %u (%s) was not delivered: %s",
			 (unsigned long long)r->id, r->code, r->reason,
			 r->hops > CLOSE_HOPS ? "it kept moving between loops" : "out of memory");
		free(r);
	}
}

void lps_drain(struct lps *x)
{
	(void)__atomic_exchange_n(&x->draining, 1, __ATOMIC_ACQ_REL); /* before the look: lps__draining */
}

int lps_close(struct lps *x, uint64_t id, unsigned code, const char *reason, int drain)
{
	unsigned k = where(x, id);
	if (k == CONN_NO_LOOP)
		return -ENOENT;
	if (k == 0)
		return close_here(&x->lp[0], id, code, reason, drain) ? 0 : -ENOENT;
	struct close_req *r = malloc(sizeof(*r));
	if (!r)
		return -ENOMEM;
	*r = (struct close_req){ .id = id, .code = code, .drain = drain };
	snprintf(r->reason, sizeof(r->reason), "%s", reason);
	if (post_close(x, k & ~CONN_MOVING, r)) {
		free(r);
		return -ENOMEM;
	}
	return 0;
}

/* --- gathering every connection on loop 0 --- */

struct gather {
	struct loop *l;
	struct conn **v;
	size_t n, cap;
	int failed;
	int keep_workers;
};

static void detach_one(struct conn *c, void *arg)
{
	struct gather *g = arg;
	if (c->state == CONN_DEAD || g->failed)
		return; /* a dead one is its loop's to free at the end of its batch */
	/* With spread-workers, one a worker of this loop serves (or is asked about) stays
	 * with it: the upgrade hands over every loop's workers and theirs. */
	if (g->keep_workers && c->state != CONN_HANDSHAKE && !(c->flags & CONN_ECHO))
		return;
	if (g->n == g->cap) {
		size_t cap = g->cap ? 2 * g->cap : 1024;
		struct conn **v = realloc(g->v, cap * sizeof(*v));
		if (!v) {
			g->failed = 1;
			return;
		}
		g->v = v;
		g->cap = cap;
	}
	loop_detach_conn(g->l, c, 0);
	g->v[g->n++] = c;
}

static void detach_all(struct loop *l, void *arg)
{
	struct gather *g = arg;
	g->l = l;
	conn_for_each(detach_one, g);
}

int lps_gather(struct lps *x)
{
	if (!lps_spreads(x))
		return 0;
	x->gathered = 1;
	unsigned long moved = 0;
	int rc = 0;
	for (unsigned i = 1; i < x->n; i++) {
		struct gather g = { .keep_workers = x->spread_workers };
		if (loop_call(x->lp[i].loop, detach_all, &g))
			rc = -ENOMEM;
		if (g.failed)
			rc = -ENOMEM;
		for (size_t k = 0; k < g.n; k++)
			sess_adopt(x->lp[0].sess, g.v[k]);
		moved += g.n;
		free(g.v);
	}
	log_info("%lu connections of the other %u loops moved to loop 0%s", moved, x->n - 1,
		 rc ? " (out of memory: some stayed)" : "");
	return rc;
}

void lps_spread(struct lps *x)
{
	x->gathered = 0;
	lps_balance(x);
}

/* --- spreading loop 0's connections --- */

struct handout {
	struct lp *p;            /* the loop that takes them */
	struct conn **v;
	size_t n;
};

static void take_conns(struct loop *l, void *arg)
{
	struct handout *h = arg;
	(void)l;
	for (size_t i = 0; i < h->n; i++)
		sess_adopt(h->p->sess, h->v[i]);
	free(h->v);
	free(h);
}

struct pick {
	struct conn **v;
	size_t n, want;
};

/* Open connections of built-in routes can live on any loop; others stay on loop 0. */
static void pick_one(struct conn *c, void *arg)
{
	struct pick *p = arg;
	if (p->n < p->want && c->state == CONN_OPEN && (c->flags & CONN_ECHO))
		p->v[p->n++] = c;
}

void lps_balance(struct lps *x)
{
	if (!lps_spreads(x) || x->gathered)
		return;
	unsigned long total = 0;
	for (unsigned i = 0; i < x->n; i++)
		total += lps__owns(&x->lp[i]);
	unsigned long share = total / x->n, here = loop_conns(x->lp[0].loop);
	if (here <= share + 1)
		return;
	struct pick p = { malloc((here - share) * sizeof(*p.v)), 0, here - share };
	if (!p.v)
		return; /* they stay: new connections still go to the emptiest loop */
	conn_for_each(pick_one, &p);
	size_t next = 0;
	unsigned long moved = 0;
	for (unsigned i = 1; i < x->n && next < p.n; i++) {
		struct lp *q = &x->lp[i];
		unsigned long has = lps__owns(q);
		size_t give = has < share ? share - has : 0;
		if (give > p.n - next)
			give = p.n - next;
		struct handout *h = give ? malloc(sizeof(*h)) : NULL;
		if (h && !(h->v = malloc(give * sizeof(*h->v)))) {
			free(h);
			h = NULL;
		}
		if (!h)
			continue;
		for (size_t k = 0; k < give; k++) {
			loop_detach_conn(x->lp[0].loop, p.v[next + k], q->index);
			h->v[k] = p.v[next + k];
		}
		h->n = give;
		h->p = q;
		if (loop_post(q->loop, take_conns, h)) { /* no memory: they come back here */
			h->p = &x->lp[0];
			take_conns(x->lp[0].loop, h);
			continue;
		}
		next += give;
		moved += give;
	}
	free(p.v);
	if (moved)
		log_info("%lu open connections moved from loop 0 to the other %u loops", moved, x->n - 1);
}

/* --- reload --- */

struct reload {
	struct lp *p;
	struct gw_config cfg;
	uint8_t map[CFG_MAX_ROUTES];
};

static void remap_one(struct conn *c, void *arg)
{
	const uint8_t *map = arg;
	if (c->route < CFG_MAX_ROUTES)
		c->route = map[c->route];
}

static void take_reload(struct loop *l, void *arg)
{
	struct reload *r = arg;
	const char *why = NULL;
	if (pool_routes_update(sess_pools(r->p->sess), &r->cfg, &why))
		log_error(0, "SIGHUP: loop %u: routes not changed: %s", r->p->index, why);
	conn_for_each(remap_one, r->map);
	*r->p->cfg = r->cfg;
	loop_set_config(l);
	free(r);
}

void lps_reload(struct lps *x, const struct gw_config *next, const uint8_t *map)
{
	for (unsigned i = 1; i < x->n; i++) {
		struct reload *r = malloc(sizeof(*r));
		if (r) {
			r->p = &x->lp[i];
			r->cfg = *next;
			memcpy(r->map, map, sizeof(r->map));
		}
		if (!r || loop_post(x->lp[i].loop, take_reload, r)) {
			free(r);
			log_error(ENOMEM, "SIGHUP: loop %u keeps the settings it had", i);
		}
	}
}

/* --- reports --- */

struct each {
	void (*fn)(struct sess *s, void *arg);
	void *arg;
	struct sess *sess;
};

static void run_each(struct loop *l, void *arg)
{
	struct each *e = arg;
	(void)l;
	e->fn(e->sess, e->arg);
}

int lps__call(struct lp *p, void (*fn)(struct sess *s, void *arg), void *arg)
{
	struct each e = { fn, arg, p->sess };
	return loop_call(p->loop, run_each, &e);
}

void lps_each(struct lps *x, void (*fn)(struct sess *s, void *arg), void *arg)
{
	fn(x->lp[0].sess, arg);
	for (unsigned i = 1; i < x->n; i++)
		if (lps__call(&x->lp[i], fn, arg))
			log_error(ENOMEM, "loop %u left out of a report", i);
}

int lps_spreads_workers(const struct lps *x)
{
	return x->spread_workers;
}

int lps_spreads(const struct lps *x)
{
	return x->spread && x->n > 1;
}

unsigned lps_count(const struct lps *x)
{
	return x->n;
}

unsigned long lps_conns(const struct lps *x, unsigned i)
{
	return i < x->n ? loop_conns(x->lp[i].loop) : 0;
}

/* --- the threads --- */

static void *run(void *arg)
{
	struct lp *p = arg;
	rcu_register_thread();
	stats_thread_start();
	clog_set_config(p->cfg);
	int rc = loop_run(p->loop);
	if (rc)
		log_error(-rc, "loop %u stopped", p->index);
	loop_close_all(p->loop);
	stats_thread_stop();
	/* What the thread kept for reuse dies with it (its thread-local pointers would). */
	outq_thread_end();
	pmd_thread_end();
	bp_drain();
	rcu_unregister_thread();
	return NULL;
}

static void stop(struct loop *l, void *arg)
{
	(void)arg;
	loop_stop(l);
}

static void free_lp(struct lp *p)
{
	sess_free(p->sess);
	loop_free(p->loop);
	free(p->cfg);
}

void lps_free(struct lps *x)
{
	if (!x)
		return;
	/* Every thread stops before any loop is freed: a running one may still post to the
	 * others (a publish for their subscribers). */
	int kept = 0;
	for (unsigned i = 1; i < x->n; i++) {
		struct lp *p = &x->lp[i];
		if (!p->running)
			continue;
		if (loop_post(p->loop, stop, NULL)) {
			log_error(ENOMEM, "loop %u not stopped", i); /* it ends with the process */
			kept = 1;
			continue;
		}
		pthread_join(p->th, NULL);
		p->running = 0;
	}
	for (unsigned i = 1; i < x->n && !kept; i++)
		free_lp(&x->lp[i]);
	free(x);
}

static int has_builtin(const struct gw_config *cfg)
{
	if (cfg->static_dir[0])
		return 1;
	for (int i = 0; i < cfg->n_routes; i++)
		if (!strcmp(cfg->routes[i].pool, "echo"))
			return 1;
	return 0;
}

static int has_worker_pool(const struct gw_config *cfg)
{
	for (int i = 0; i < cfg->n_routes; i++)
		if (strcmp(cfg->routes[i].pool, "echo"))
			return 1;
	return 0;
}

static int has_tls_listener(const struct gw_config *cfg)
{
	for (int i = 0; i < cfg->n_listen; i++)
		if (cfg->listen[i].tls)
			return 1;
	return 0;
}

static void close_inherited(int *bell, int *efd)
{
	if (*bell > 0)
		close(*bell);
	if (*efd > 0)
		close(*efd);
	*bell = *efd = -1;
}

static int start(struct lps *x, unsigned i, struct gw_config *cfg)
{
	struct lp *p = &x->lp[i];
	*p = (struct lp){ .x = x, .index = i };
	if (!(p->cfg = malloc(sizeof(*p->cfg))))
		return -ENOMEM;
	*p->cfg = *cfg;
	/* What a live upgrade handed over for this loop's workers (the rest is loop 0's);
	 * without spread-workers its pools make no doorbell: closed. */
	p->cfg->inherit_bell_fd = cfg->inherit_loop_bell[i];
	p->cfg->inherit_efd = cfg->inherit_loop_efd[i];
	cfg->inherit_loop_bell[i] = cfg->inherit_loop_efd[i] = 0;
	if (!x->spread_workers)
		close_inherited(&p->cfg->inherit_bell_fd, &p->cfg->inherit_efd);
	if (!(p->loop = loop_new_index(p->cfg, i)))
		return -errno;
	int rc = sess_new(p->loop, p->cfg, x->spread_workers, &p->sess);
	if (rc)
		return rc;
	struct sess_home home = { lps__pick, lps__move, p };
	sess_set_home(p->sess, &home);
	pool_share_ids(sess_pools(p->sess), sess_pools(x->lp[0].sess));
	struct pool_dir dir = { p, lps__worker_gone };
	pool_set_dir(sess_pools(p->sess), &dir);
	rc = pthread_create(&p->th, NULL, run, p);
	if (rc) {
		log_error(rc, "pthread_create (loop %u)", i);
		return -rc;
	}
	p->running = 1;
	/* So that `top -H` and the tasks under /proc/PID/task tell the loops apart (loop 0 is
	 * the main thread). i < LOOPS_MAX: two digits. */
	char name[16];
	snprintf(name, sizeof(name), "wsgw-loop%u", i % 100u);
	pthread_setname_np(p->th, name);
	return 0;
}

int lps_new(struct gw_config *cfg, struct loop *l0, struct sess *s0, struct tls_srv *tls,
	    struct lps **out)
{
	struct lps *x = calloc(1, sizeof(*x));
	if (!x)
		return -ENOMEM;
	x->tls = tls;
	x->max_conns = ~0u;
	x->lp[0] = (struct lp){ .x = x, .index = 0, .loop = l0, .sess = s0, .cfg = cfg };
	x->n = 1;
	x->builtin = has_builtin(cfg);
	unsigned want = cfg->loops ? cfg->loops : 1;
	/* Workers' commands for other gateways go through the cluster, which is loop 0's. */
	x->spread_workers = want > 1 && cfg->spread_workers && has_worker_pool(cfg) && !cfg->cluster.url[0];
	x->spread = x->builtin || x->spread_workers || has_tls_listener(cfg);
	if (want > 1) {
		bud_set_shared();
		struct sess_home home = { lps__pick, lps__move, &x->lp[0] };
		sess_set_home(s0, &home);
	}
	for (unsigned i = 1; i < want; i++) {
		int rc = start(x, i, cfg);
		x->n = i + 1;
		if (rc) {
			lps_free(x);
			return rc;
		}
	}
	/* Handed over for loops this configuration does not have: their workers are
	 * refused (the old gateway keeps serving them). */
	for (unsigned i = want; i < LOOPS_MAX; i++)
		close_inherited(&cfg->inherit_loop_bell[i], &cfg->inherit_loop_efd[i]);
	if (want > 1)
		log_info("%u event loops%s", want,
			 x->spread_workers || x->builtin ? ""
			 : cfg->cluster.url[0] ? ": in a cluster, loop 0 serves the workers and their connections"
			 : x->spread ? ": every route is a worker route, so only TLS handshakes spread"
				     : ": every route is a worker route, so loop 0 serves every connection");
	*out = x;
	return 0;
}
