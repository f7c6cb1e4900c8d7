#include "gateway/report.h"
#include "gateway/budget.h"
#include "gateway/clog.h"
#include "gateway/conn.h"
#include "gateway/door.h"
#include "gateway/listener.h"
#include "gateway/loop.h"
#include "gateway/pool.h"
#include "gateway/loops.h"
#include "gateway/session.h"
#include "gateway/stats.h"
#include "gateway/supervise.h"
#include "gateway/tbuf.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>


/* A JSON string (also a valid Prometheus label value: both escape " and \). */

static int done(const struct tbuf *b)
{
	return b->full ? -ENOSPC : (int)b->len;
}

/* ---- /metrics ---- */

/* One metric family per pass over the workers: Prometheus wants a family's samples
 * together, after its HELP and TYPE. */
struct wfam {
	struct tbuf *b;
	const char *name;
	int what;
};

enum { W_CONNS, W_DEPTH, W_CAP, W_LAG_REC, W_LAG_AGE, W_HELD, W_HELD_BYTES, W_PAUSED };

/* ---- every loop's pools (each walked on its loop's thread) ---- */

struct on_pools {
	void (*fn)(struct pools *ps, void *arg);
	void *arg;
};

static void on_sess(struct sess *ss, void *arg)
{
	struct on_pools *o = arg;
	o->fn(sess_pools(ss), o->arg);
}

static void each_pools(const struct rpt_src *s, void (*fn)(struct pools *ps, void *arg), void *arg)
{
	struct on_pools o = { fn, arg };
	lps_each(s->lps, on_sess, &o);
}

/* Every loop's workers, asked of each loop once per report (their names are the pools'). */
struct workers {
	struct pool_worker_info *v;
	size_t n, cap;
	int failed;
};

static void add_worker(void *arg, const struct pool_worker_info *w)
{
	struct workers *x = arg;
	if (x->n == x->cap) {
		size_t cap = x->cap ? 2 * x->cap : 16;
		struct pool_worker_info *v = realloc(x->v, cap * sizeof(*v));
		if (!v) {
			x->failed = 1;
			return;
		}
		x->v = v;
		x->cap = cap;
	}
	x->v[x->n++] = *w;
}

static void workers_of(struct pools *ps, void *arg)
{
	pool_each_worker(ps, add_worker, arg);
}

/* 0, or -ENOMEM (nothing to free then). */
static int all_workers(const struct rpt_src *s, struct workers *x)
{
	*x = (struct workers){ NULL, 0, 0, 0 };
	each_pools(s, workers_of, x);
	if (!x->failed)
		return 0;
	free(x->v);
	return -ENOMEM;
}

/* Each pool's figures summed over the loops (every loop has the same pools, in the same
 * order; one that has not applied a reload yet lacks the newest). */
struct pool_sums {
	struct pool_info v[CFG_MAX_ROUTES];
	unsigned n, at;
};

static void add_pool(void *arg, const struct pool_info *p)
{
	struct pool_sums *x = arg;
	if (x->at == CFG_MAX_ROUTES)
		return;
	struct pool_info *v = &x->v[x->at++];
	if (x->at > x->n) {
		*v = *p;
		x->n = x->at;
		return;
	}
	v->workers += p->workers;
	v->orphans += p->orphans;
	v->pending += p->pending;
}

static void sum_pools(struct pools *ps, void *arg)
{
	struct pool_sums *x = arg;
	x->at = 0;
	pool_each(ps, add_pool, x);
}

static void sum_pools_all(const struct rpt_src *s, struct pool_sums *x)
{
	x->n = 0;
	each_pools(s, sum_pools, x);
}

static void each_pool(const struct rpt_src *s, void (*fn)(void *arg, const struct pool_info *p), void *arg)
{
	struct pool_sums x;
	sum_pools_all(s, &x);
	for (unsigned i = 0; i < x.n; i++)
		fn(arg, &x.v[i]);
}

static void worker_sample(void *arg, const struct pool_worker_info *w)
{
	struct wfam *f = arg;
	tbuf_put(f->b, "wsgw_worker_%s{pool=", f->name);
	tbuf_put_json(f->b, w->pool);
	tbuf_put(f->b, ",worker=\"%u\",transport=\"%s\"} ", w->id, w->transport);
	switch (f->what) {
	case W_CONNS: tbuf_put(f->b, "%u\n", w->conns); break;
	case W_DEPTH: tbuf_put(f->b, "%llu\n", (unsigned long long)w->lag_bytes); break;
	case W_CAP: tbuf_put(f->b, "%llu\n", (unsigned long long)w->lag_capacity); break;
	case W_LAG_REC: tbuf_put(f->b, "%llu\n", (unsigned long long)w->lag_records); break;
	case W_LAG_AGE: tbuf_put(f->b, "%.3f\n", w->lag_oldest_ms / 1000.0); break;
	case W_HELD: tbuf_put(f->b, "%zu\n", w->held); break;
	case W_HELD_BYTES: tbuf_put(f->b, "%zu\n", w->held_bytes); break;
	default: tbuf_put(f->b, "%zu\n", w->paused); break;
	}
}

struct pfam {
	struct tbuf *b;
	const struct rpt_src *s;
	int what;
};

static void pool_sample(void *arg, const struct pool_info *p)
{
	struct pfam *f = arg;
	if (p->echo)
		return;
	static const char *const names[] = { "workers", "orphans", "restarts_total" };
	tbuf_put(f->b, "wsgw_pool_%s{pool=", names[f->what]);
	tbuf_put_json(f->b, p->name);
	if (f->what == 0)
		tbuf_put(f->b, "} %u\n", p->workers);
	else if (f->what == 1)
		tbuf_put(f->b, "} %lu\n", p->orphans);
	else
		tbuf_put(f->b, "} %u\n", sup_pool_restarts(f->s->sup, p->name));
}

static void sup_sample(void *arg, const struct sup_info *i)
{
	struct pfam *f = arg;
	tbuf_put(f->b, "wsgw_supervised_%s{worker=", f->what ? "up" : "restarts_total");
	tbuf_put_json(f->b, i->name);
	tbuf_put(f->b, ",instance=\"%u\",pool=", i->instance);
	tbuf_put_json(f->b, i->pool);
	tbuf_put(f->b, "} %u\n", f->what ? (i->pid ? 1u : 0u) : i->restarts);
}

int rpt_metrics(const struct rpt_src *s, char *out, size_t cap)
{
	struct workers all;
	if (all_workers(s, &all))
		return -ENOMEM;
	int n = stats_format(out, cap, conn_count(), (unsigned)all.n);
	if (n < 0) {
		free(all.v);
		return n;
	}
	struct tbuf b = { out, cap, (size_t)n, 0 };
	tbuf_put(&b, "# HELP wsgw_loop_connections Client connections each event loop owns.\n"
		"# TYPE wsgw_loop_connections gauge\n");
	for (unsigned i = 0; i < lps_count(s->lps); i++)
		tbuf_put(&b, "wsgw_loop_connections{loop=\"%u\"} %lu\n", i, lps_conns(s->lps, i));
	static const struct { const char *name, *type, *help; } wf[] = {
		{ "connections", "gauge", "Clients pinned to the worker." },
		{ "ring_bytes", "gauge", "Bytes sent to the worker it has not consumed yet (shm: unread in its ring; zmq: unacknowledged)." },
		{ "ring_capacity_bytes", "gauge", "Its ring's size (shm) or window (zmq)." },
		{ "lag_records", "gauge", "Records sent to the worker it has not consumed yet." },
		{ "lag_oldest_seconds", "gauge", "How long the oldest of them has waited." },
		{ "held_records", "gauge", "Records held in the gateway behind its full channel." },
		{ "held_bytes", "gauge", "Their bytes." },
		{ "paused_clients", "gauge", "Clients not read until the held records are in." },
	};
	for (int i = 0; i < (int)(sizeof(wf) / sizeof(wf[0])); i++) {
		tbuf_put(&b, "# HELP wsgw_worker_%s %s\n# TYPE wsgw_worker_%s %s\n", wf[i].name, wf[i].help,
		    wf[i].name, wf[i].type);
		struct wfam f = { &b, wf[i].name, i };
		for (size_t k = 0; k < all.n; k++)
			worker_sample(&f, &all.v[k]);
	}
	static const char *const pf[][3] = {
		{ "workers", "gauge", "Workers attached to the pool." },
		{ "orphans", "gauge", "Connections of the pool waiting for a worker." },
		{ "restarts_total", "counter", "Restarts of the pool's supervised workers." },
	};
	struct pool_sums sums;
	sum_pools_all(s, &sums);
	for (int i = 0; i < 3; i++) {
		tbuf_put(&b, "# HELP wsgw_pool_%s %s\n# TYPE wsgw_pool_%s %s\n", pf[i][0], pf[i][2], pf[i][0], pf[i][1]);
		struct pfam f = { &b, s, i };
		for (unsigned k = 0; k < sums.n; k++)
			pool_sample(&f, &sums.v[k]);
	}
	tbuf_put(&b, "# HELP wsgw_supervised_restarts_total Restarts of a supervised worker instance.\n"
		"# TYPE wsgw_supervised_restarts_total counter\n");
	struct pfam f = { &b, s, 0 };
	sup_each(s->sup, sup_sample, &f);
	tbuf_put(&b, "# HELP wsgw_supervised_up 1 while the supervised instance runs.\n"
		"# TYPE wsgw_supervised_up gauge\n");
	f.what = 1;
	sup_each(s->sup, sup_sample, &f);
	tbuf_put(&b, "# HELP wsgw_client_addresses Client addresses with a connection (or a handshake bucket) now.\n"
		"# TYPE wsgw_client_addresses gauge\nwsgw_client_addresses %lu\n", door_addresses());
	free(all.v);
	return done(&b);
}

/* ---- /healthz ---- */

struct health {
	struct tbuf *b;
	const struct gw_config *cfg;
	int ok;
};

static int routed(const struct gw_config *cfg, const char *pool)
{
	for (int i = 0; i < cfg->n_routes; i++)
		if (!strcmp(cfg->routes[i].pool, pool))
			return 1;
	return 0;
}

static void pool_health(void *arg, const struct pool_info *p)
{
	struct health *h = arg;
	if (p->echo || !routed(h->cfg, p->name))
		return;
	const struct cfg_pool *cp = cfg_pool_find(h->cfg, p->name);
	unsigned need = cp ? cp->min_workers : 1;
	if (p->workers < need) {
		h->ok = 0;
		tbuf_put(h->b, "pool %s: %u workers, needs %u\n", p->name, p->workers, need);
	}
}

int rpt_healthz(const struct rpt_src *s, char *out, size_t cap, int *ok)
{
	struct tbuf b = { out, cap, 0, 0 };
	struct health h = { &b, s->cfg, 1 };
	if (*s->draining) {
		h.ok = 0;
		tbuf_put(&b, "draining\n");
	} else if (!lsn_count(s->lsn)) {
		h.ok = 0;
		tbuf_put(&b, "not listening\n");
	}
	each_pool(s, pool_health, &h);
	if (h.ok)
		tbuf_put(&b, "ok\n");
	*ok = h.ok;
	return done(&b);
}

/* ---- JSON ---- */

struct pstat {
	struct tbuf *b;
	const struct rpt_src *s;
	int first;
};

static void pool_json(void *arg, const struct pool_info *p)
{
	struct pstat *x = arg;
	const struct cfg_pool *cp = cfg_pool_find(x->s->cfg, p->name);
	tbuf_put(x->b, "%s{\"name\":", x->first ? "" : ",");
	tbuf_put_json(x->b, p->name);
	tbuf_put(x->b, ",\"builtin\":%s,\"workers\":%u,\"min_workers\":%u,\"orphans\":%lu,\"restarts\":%u}",
	    p->echo ? "true" : "false", p->workers, p->echo ? 0 : cp ? cp->min_workers : 1, p->orphans,
	    sup_pool_restarts(x->s->sup, p->name));
	x->first = 0;
}

int rpt_status(const struct rpt_src *s, char *out, size_t cap)
{
	struct tbuf b = { out, cap, 0, 0 };
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	uint64_t now = (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
	int ok;
	char health[256];
	rpt_healthz(s, health, sizeof(health), &ok);
	struct pool_sums sums;
	sum_pools_all(s, &sums);
	unsigned workers = 0; /* alive, in every pool */
	for (unsigned i = 0; i < sums.n; i++)
		workers += sums.v[i].workers;
	tbuf_put(&b, "{\"version\":\"" "0.1.0" "\",\"pid\":%d,\"uptime_s\":%llu,\"healthy\":%s,\"draining\":%s,"
		"\"connections\":%lu,\"workers\":%u,\"supervised_running\":%u,\"config_file\":",
	    (int)getpid(), (unsigned long long)(now - s->started_ms) / 1000, ok ? "true" : "false",
	    *s->draining ? "true" : "false", conn_count(), workers, sup_running(s->sup));
	tbuf_put_json(&b, s->cfg->config_file);
	tbuf_put(&b, ",\"listen\":[");
	for (int i = 0; i < lsn_count(s->lsn); i++) {
		tbuf_put(&b, i ? "," : "");
		tbuf_put_json(&b, lsn_address(s->lsn, i));
	}
	tbuf_put(&b, "],\"routes\":[");
	for (int i = 0; i < s->cfg->n_routes; i++) {
		tbuf_put(&b, "%s{\"prefix\":", i ? "," : "");
		tbuf_put_json(&b, s->cfg->routes[i].prefix);
		tbuf_put(&b, ",\"pool\":");
		tbuf_put_json(&b, s->cfg->routes[i].pool);
		tbuf_put(&b, "}");
	}
	tbuf_put(&b, "],\"pools\":[");
	struct pstat x = { &b, s, 1 };
	for (unsigned i = 0; i < sums.n; i++)
		pool_json(&x, &sums.v[i]);
	tbuf_put(&b, "],\"memory_bytes\":%llu,\"memory_budget_bytes\":%llu}\n", (unsigned long long)bud_total(),
	    (unsigned long long)bud_limit());
	return done(&b);
}

struct wjson {
	struct tbuf *b;
	int first;
};

static void worker_json(void *arg, const struct pool_worker_info *w)
{
	struct wjson *x = arg;
	tbuf_put(x->b, "%s{\"id\":%u,\"pool\":", x->first ? "" : ",", w->id);
	tbuf_put_json(x->b, w->pool);
	tbuf_put(x->b, ",\"pid\":%d,\"transport\":\"%s\",\"loop\":%u,\"connections\":%u,\"lag_records\":%llu,"
		  "\"lag_bytes\":%llu,\"lag_oldest_ms\":%u,\"held_records\":%zu,\"paused_clients\":%zu}",
	    (int)w->pid, w->transport, w->loop, w->conns, (unsigned long long)w->lag_records,
	    (unsigned long long)w->lag_bytes, w->lag_oldest_ms, w->held, w->paused);
	x->first = 0;
}

static void sup_json(void *arg, const struct sup_info *i)
{
	struct wjson *x = arg;
	char last[96] = "";
	if (i->last_status >= 0) {
		int st = i->last_status;
		if (WIFEXITED(st))
			snprintf(last, sizeof(last), "exit %d", WEXITSTATUS(st));
		else if (WIFSIGNALED(st))
			snprintf(last, sizeof(last), "signal %d", WTERMSIG(st));
	}
	tbuf_put(x->b, "%s{\"name\":", x->first ? "" : ",");
	tbuf_put_json(x->b, i->name);
	tbuf_put(x->b, ",\"instance\":%u,\"pool\":", i->instance);
	tbuf_put_json(x->b, i->pool);
	tbuf_put(x->b, ",\"pid\":%d,\"running\":%s,\"restarts\":%u,\"next_restart_ms\":%u,\"backoff_ms\":%u,\"last_exit\":",
	    (int)i->pid, i->pid ? "true" : "false", i->restarts, i->next_ms, i->delay_ms);
	tbuf_put_json(x->b, last);
	tbuf_put(x->b, "}");
	x->first = 0;
}

int rpt_workers(const struct rpt_src *s, char *out, size_t cap)
{
	struct workers all;
	if (all_workers(s, &all))
		return -ENOMEM;
	struct tbuf b = { out, cap, 0, 0 };
	tbuf_put(&b, "{\"workers\":[");
	struct wjson x = { &b, 1 };
	for (size_t k = 0; k < all.n; k++)
		worker_json(&x, &all.v[k]);
	free(all.v);
	tbuf_put(&b, "],\"supervised\":[");
	x.first = 1;
	sup_each(s->sup, sup_json, &x);
	tbuf_put(&b, "]}\n");
	return done(&b);
}

struct cjson {
	struct tbuf *b;
	const struct rpt_src *s;
	struct pools *ps;      /* of the loop being walked */
	const char *route;
	unsigned long limit, total, shown;
};

static void conn_json(struct conn *c, void *arg)
{
	struct cjson *x = arg;
	const struct gw_config *cfg = x->s->cfg;
	const char *route = c->route < cfg->n_routes ? cfg->routes[c->route].prefix : "";
	if (x->route && strcmp(x->route, route))
		return;
	x->total++;
	if (x->limit && x->shown >= x->limit)
		return;
	static const char *const states[] = { "handshake", "authorizing", "open", "closing", "closing", "closed" };
	char peer[64];
	clog_peer(c, peer, sizeof(peer));
	tbuf_put(x->b, "%s{\"id\":%llu,\"peer\":", x->shown ? "," : "", (unsigned long long)c->id);
	tbuf_put_json(x->b, peer);
	tbuf_put(x->b, ",\"route\":");
	tbuf_put_json(x->b, route);
	tbuf_put(x->b, ",\"pool\":");
	tbuf_put_json(x->b, pool_conn_pool(x->ps, c));
	tbuf_put(x->b, ",\"worker\":%u,\"loop\":%u,\"state\":\"%s\",\"queued_bytes\":%zu}",
	    pool_conn_worker(x->ps, c), conn_loop(c), c->state < 6 ? states[c->state] : "?", c->out.bytes);
	x->shown++;
}

/* On each loop's thread in turn: its connections are read only there. */
static void loop_conns_json(struct sess *sess, void *arg)
{
	struct cjson *x = arg;
	x->ps = sess_pools(sess);
	conn_for_each(conn_json, x);
}

int rpt_connections(const struct rpt_src *s, const char *route, unsigned long limit, char *out,
		    size_t cap)
{
	struct tbuf b = { out, cap, 0, 0 };
	tbuf_put(&b, "{\"connections\":[");
	struct cjson x = { &b, s, s->ps, route, limit, 0, 0 };
	lps_each(s->lps, loop_conns_json, &x);
	tbuf_put(&b, "],\"total\":%lu,\"shown\":%lu}\n", x.total, x.shown);
	return done(&b);
}
