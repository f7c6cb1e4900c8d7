#include "gateway/server.h"
#include "gateway/admin.h"
#include "gateway/budget.h"
#include "gateway/bufpool.h"
#include "gateway/clog.h"
#include "gateway/cluster.h"
#include "gateway/conn.h"
#include "gateway/door.h"
#include "gateway/control.h"
#include "gateway/frame.h"
#include "gateway/handshake.h"
#include "gateway/handover_run.h"
#include "gateway/history.h"
#include "gateway/hsresp.h"
#include "gateway/listener.h"
#include "gateway/log.h"
#include "gateway/loop.h"
#include "gateway/loops.h"
#include "gateway/outq.h"
#include "gateway/pool.h"
#include "gateway/report.h"
#include "gateway/rundir.h"
#include "gateway/sdnotify.h"
#include "gateway/session.h"
#include "gateway/stats.h"
#include "gateway/supervise.h"
#include "gateway/tls.h"
#include "gateway/topics.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>
#include <urcu.h>

/* How long the workers the gateway runs get to exit after SIGTERM. */
#define WORKER_STOP_MS 5000

/* Kept free below the fd limit for listeners, the log, and the reserve fd. */
#define FD_HEADROOM 32

/* The gateway: every part, wired together. */
struct server {
	struct loop_src sig;  /* the signalfd */
	int sigfd;
	struct gw_config *cfg;
	struct loop *loop;
	struct sess *sess;
	struct lps *lps;      /* the loops: loop and sess are its loop 0 */
	struct lsn *lsn;
	struct ctl *ctl;
	struct admin *admin;
	struct clu *clu;      /* with --cluster */
	struct tls_srv *tls;  /* the certificate of ",tls" listeners; NULL without one */
	unsigned fd_conns;    /* what the fd limit allows */
	unsigned max_conns;
	int draining;
	uint32_t drain_deadline;
	uint32_t drain_start;
	unsigned drain_rate;      /* as it was when the drain began */
	uint64_t *drain_ids;      /* the clients to close, in turn; NULL once all were */
	size_t drain_n, drain_i, drain_cap;
	struct sup *sup;          /* the workers the gateway runs */
	struct rpt_src rpt;       /* what the admin endpoint reports reads */
	int workers_stopping;
	uint32_t workers_deadline;
	struct rundir rundir; /* the runtime directory's lock, held while workers may attach */
	int upgraded;         /* a new process took over: what stays here drains */
};

static void set_limits(struct server *s)
{
	const struct gw_config *cfg = s->cfg;
	bud_set_limit(cfg->memory_budget);
	bud_set_kind_limit(BUD_ASSEMBLY, cfg->max_assembly);
	door_set_limits(cfg->max_conns_per_ip, cfg->handshake_rate, cfg->handshake_rate_per_ip);
	s->max_conns = cfg->max_conns && cfg->max_conns < s->fd_conns ? cfg->max_conns : s->fd_conns;
	if (s->lps)
		lps_set_max_conns(s->lps, s->max_conns);
	loop_set_config(s->loop);
}

static void on_accept(void *arg, int fd, const struct sockaddr *peer, int tls)
{
	struct server *s = arg;
	lps_accept(s->lps, fd, peer, tls);
}

static void drain_collect(struct conn *c, void *arg)
{
	struct server *s = arg;
	/* A connection handed to a new process at an upgrade is dead here already; one in its
	 * handshake then follows it once open (gateway/handover_run.c), or times out. Those
	 * of other loops are theirs to judge when their turn comes (lps_close). */
	int mine = conn_loop(c) == 0;
	if (mine && (c->state == CONN_DEAD || (c->state == CONN_HANDSHAKE && ho_late_active())))
		return;
	/* The other loops still add the connections handed to them before the drain began,
	 * so there may be more than were counted. */
	if (s->drain_n == s->drain_cap) {
		size_t cap = 2 * s->drain_cap + 64;
		uint64_t *v = realloc(s->drain_ids, cap * sizeof(*v));
		if (!v) {
			(void)lps_close(s->lps, c->id, WS_CLOSE_GOING_AWAY, "server shutting down", 1);
			return; /* no room to wait for its turn: now */
		}
		s->drain_ids = v;
		s->drain_cap = cap;
	}
	s->drain_ids[s->drain_n++] = c->id;
}

/* Closes the clients whose turn has come: drain-rate per second since the drain began,
 * the first one at once. */
static void drain_step(struct server *s)
{
	uint32_t now = loop_now(s->loop);
	uint64_t due = s->drain_rate ? (uint64_t)(now - s->drain_start) * s->drain_rate / 1000 + 1
				     : s->drain_n;
	while (s->drain_i < s->drain_n && s->drain_i < due)
		(void)lps_close(s->lps, s->drain_ids[s->drain_i++], WS_CLOSE_GOING_AWAY,
				"server shutting down", 1); /* gone meanwhile: nothing to close */
	if (s->drain_i == s->drain_n && s->drain_ids) {
		free(s->drain_ids);
		s->drain_ids = NULL;
		s->drain_deadline = now + s->cfg->close_ms + 1000;
		if (s->drain_rate)
			log_info("drain: every client was sent close 1001");
	}
}

static void start_drain(struct server *s)
{
	if (s->draining)
		return;
	s->draining = 1;
	/* A new process being started would take listeners this one closes now. */
	if (!s->upgraded)
		ho_upgrade_cancel();
	lsn_close(s->lsn);
	lps_drain(s->lps);
	s->drain_rate = s->cfg->drain_rate;
	s->drain_start = loop_now(s->loop);
	s->drain_cap = conn_count() ? conn_count() : 1; /* grows if more are found (drain_collect) */
	s->drain_n = s->drain_i = 0;
	s->drain_ids = malloc(s->drain_cap * sizeof(*s->drain_ids));
	if (!s->drain_ids) {
		log_error(ENOMEM, "drain: the clients that cannot wait in turn are closed at once");
		s->drain_cap = 0;
	}
	conn_for_each_all(drain_collect, s);
	unsigned long n = s->drain_n;
	if (s->drain_rate)
		log_info("draining %lu connections (close 1001), %u per second: about %lu s", n,
			 s->drain_rate, n / s->drain_rate + 1);
	else
		log_info("draining %lu connections (close 1001)", n);
	/* Until the last close is sent, then close-timeout + 1 s for the handshakes. */
	s->drain_deadline = s->drain_start + (uint32_t)(s->drain_rate ? 1000 * (n / s->drain_rate + 1) : 0) +
			    s->cfg->close_ms + 1000;
	drain_step(s);
}

/* Settings bound to sockets, segments or threads made at start keep their value, each
 * with a line saying so. */
static void keep_fixed(struct gw_config *next, const struct gw_config *cur)
{
#define KEEP(field, name)                                                                      \
	if (memcmp(&next->field, &cur->field, sizeof(cur->field)) != 0) {                      \
		log_warn(0, "SIGHUP: %s changed; it takes effect after a restart", name);      \
		memcpy(&next->field, &cur->field, sizeof(cur->field));                         \
	}
	int listen_changed = next->n_listen != cur->n_listen;
	for (int i = 0; i < cur->n_listen && !listen_changed; i++)
		listen_changed = cur->listen[i].len != next->listen[i].len || cur->listen[i].tls != next->listen[i].tls ||
				 memcmp(&cur->listen[i].addr, &next->listen[i].addr, cur->listen[i].len);
	if (listen_changed)
		log_warn(0, "SIGHUP: [listen] changed; it takes effect after a restart");
	next->n_listen = cur->n_listen;
	memcpy(next->listen, cur->listen, sizeof(cur->listen));
	if (next->admin.len != cur->admin.len || memcmp(&next->admin.addr, &cur->admin.addr, cur->admin.len))
		log_warn(0, "SIGHUP: [admin] address changed; it takes effect after a restart");
	next->admin = cur->admin;
	KEEP(static_dir, "[gateway] static") /* its directory is opened at start */
	KEEP(static_max, "[gateway] static-max")
	KEEP(control, "[gateway] control")
	KEEP(runtime_dir, "[gateway] runtime-dir")
	KEEP(ring_bytes, "[gateway] ring-size")
	KEEP(zmq_window, "[gateway] zmq-window") /* the control socket's high-water mark follows it */
	KEEP(socket_mode, "[gateway] socket-mode")
	KEEP(gid, "[gateway] group")
	KEEP(curve_secret, "[gateway] curve-secret-key")
	KEEP(curve_clients, "[gateway] curve-clients")
	KEEP(heartbeat_ms, "[gateway] heartbeat")
	KEEP(max_message, "[limits] max-message") /* rings are sized for it */
	KEEP(max_header, "[limits] max-header")   /* and for the OPEN it makes */
	KEEP(forward, "[gateway] forward-header")
	KEEP(n_forward, "[gateway] forward-header")
	KEEP(cluster, "[cluster] redis, node-id, ttl or hold")
	KEEP(loops, "[gateway] loops")
#undef KEEP
	/* Routes resolved their limits against the max-message kept. */
	for (int i = 0; i < next->n_routes; i++)
		if (next->routes[i].lim.max_message > next->max_message)
			next->routes[i].lim.max_message = next->max_message;
	next->lim.max_message = next->max_message;
}

/* Connections name their route by index: after a reload the index of the route with the
 * same prefix, or none (the global limits then apply to them). */
static uint8_t route_map[CFG_MAX_ROUTES];

static void remap_one(struct conn *c, void *arg)
{
	(void)arg;
	if (c->route < CFG_MAX_ROUTES)
		c->route = route_map[c->route];
}

static void remap_routes(const struct gw_config *cur, const struct gw_config *next)
{
	int moved = 0;
	for (int i = 0; i < CFG_MAX_ROUTES; i++) {
		route_map[i] = CFG_NO_ROUTE;
		for (int k = 0; i < cur->n_routes && k < next->n_routes; k++)
			if (!strcmp(cur->routes[i].prefix, next->routes[k].prefix))
				route_map[i] = (uint8_t)k;
		moved |= i < cur->n_routes && route_map[i] != i;
	}
	if (moved)
		conn_for_each(remap_one, NULL);
	/* The other loops map theirs when they take the settings (lps_reload). */
}

/* SIGHUP: routes and limits from the config file and command line again; connections
 * stay. A file that does not parse changes nothing. */
static int reload(struct server *s)
{
	static struct gw_config next;
	if (cfg_reload(&next)) {
		log_error(0, "SIGHUP: refused, the configuration in force is kept: %s", cfg_error());
		return -EINVAL;
	}
	keep_fixed(&next, s->cfg);
	const char *why = NULL;
	if (pool_routes_update(sess_pools(s->sess), &next, &why)) {
		log_error(0, "SIGHUP: routes not changed: %s", why);
		next.n_routes = s->cfg->n_routes;
		memcpy(next.routes, s->cfg->routes, sizeof(next.routes));
	}
	remap_routes(s->cfg, &next);
	lps_reload(s->lps, &next, route_map);
	if (s->tls)
		tls_srv_reload(s->tls, &next);
	*s->cfg = next;
	log_set_level((enum log_level)s->cfg->log_level);
	log_set_format((enum log_format)s->cfg->log_format);
	set_limits(s);
	if (!s->draining)
		sup_reload(s->sup);
	log_info("SIGHUP: reloaded: %d routes, max %u connections, max outbound %zu bytes (%s)",
		 s->cfg->n_routes, s->max_conns, s->cfg->max_outbound,
		 s->cfg->outbound_drop ? "drop" : "close 1008");
	return 0;
}

static int upgrade(struct server *s, const char *path, char *why, size_t cap);

static void on_signal(struct loop_src *src, uint32_t events)
{
	struct server *s = (struct server *)src;
	struct signalfd_siginfo si;
	(void)events;
	while (read(s->sigfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
		switch (si.ssi_signo) {
		case SIGTERM:
		case SIGINT:
			if (!s->draining) {
				log_info("signal %d: stopping", (int)si.ssi_signo);
				sdn_stopping("draining");
				start_drain(s);
			}
			break;
		case SIGHUP:
			sdn_reloading();
			reload(s);
			sdn_ready("reloaded");
			break;
		case SIGUSR2: {
			char why[600];
			log_info("signal %d: upgrade", (int)si.ssi_signo);
			(void)upgrade(s, NULL, why, sizeof(why)); /* a refusal is logged there */
			break;
		}
		}
	}
}

/* The service manager's watchdog; the drain ends when the last connection is gone, or at
 * its deadline. */
static void drain_check(struct server *s)
{
	uint32_t now = loop_now(s->loop);
	int clients_gone = conn_count() == 0 && !s->drain_ids;
	if (!clients_gone && (int32_t)(now - s->drain_deadline) >= 0) {
		log_warn(0, "drain deadline: %lu connections closed without handshake", conn_count());
		clients_gone = 1;
	}
	if (!clients_gone)
		return;
	/* The workers the gateway runs served the draining clients until now. */
	if (!s->workers_stopping) {
		s->workers_stopping = 1;
		s->workers_deadline = now + WORKER_STOP_MS;
		sup_stop_all(s->sup);
	}
	if (sup_running(s->sup) == 0) {
		loop_stop(s->loop);
	} else if ((int32_t)(now - s->workers_deadline) >= 0) {
		log_warn(0, "%u workers still running %d ms after SIGTERM: SIGKILL", sup_running(s->sup),
			 WORKER_STOP_MS);
		sup_kill_all(s->sup);
		loop_stop(s->loop);
	}
}

static void tick(void *arg)
{
	struct server *s = arg;
	sdn_tick(loop_now(s->loop));
	if ((s->cfg->n_history || hist_topics()) && !s->clu) /* adopted ones expire too */
		hist_expire(loop_now(s->loop));
	door_tick(loop_now(s->loop));
	if (s->draining)
		drain_check(s);
}

/* The drain's next closes are due when the clock says so. */
static int hook_poll(void *arg)
{
	struct server *s = arg;
	if (s->drain_ids)
		drain_step(s);
	/* Every iteration, not at the next sweep: a stop with nothing left to close (the
	 * last client gone, the last worker reaped) ends at once, not up to a sweep later. */
	if (s->draining)
		drain_check(s);
	return 0;
}

static int hook_timeout(void *arg)
{
	struct server *s = arg;
	if (!s->drain_ids || !s->drain_rate)
		return -1;
	uint64_t at = (uint64_t)s->drain_i * 1000 / s->drain_rate;
	int64_t left = (int64_t)at - (int64_t)(uint32_t)(loop_now(s->loop) - s->drain_start);
	return left > 0 ? (int)left : 0;
}

/* --- the admin endpoint's questions --- */

static int a_metrics(void *arg, char *out, size_t cap)
{
	return rpt_metrics(&((struct server *)arg)->rpt, out, cap);
}

static int a_healthz(void *arg, char *out, size_t cap, int *ok)
{
	return rpt_healthz(&((struct server *)arg)->rpt, out, cap, ok);
}

static int a_status(void *arg, char *out, size_t cap)
{
	return rpt_status(&((struct server *)arg)->rpt, out, cap);
}

static int a_workers(void *arg, char *out, size_t cap)
{
	return rpt_workers(&((struct server *)arg)->rpt, out, cap);
}

static int a_connections(void *arg, const char *route, unsigned long limit, char *out, size_t cap)
{
	return rpt_connections(&((struct server *)arg)->rpt, route, limit, out, cap);
}

static int a_config(void *arg, int json, char *out, size_t cap)
{
	return cfg_format(((struct server *)arg)->cfg, json, out, cap);
}

static int a_kick(void *arg, uint64_t id, unsigned code)
{
	struct server *s = arg;
	return lps_close(s->lps, id, code, "closed by the operator", 0);
}

static void a_drain(void *arg)
{
	struct server *s = arg;
	if (!s->draining) {
		sdn_stopping("draining");
		start_drain(s);
	}
}

static int a_reload(void *arg, char *why, size_t cap)
{
	struct server *s = arg;
	sdn_reloading();
	int rc = reload(s);
	sdn_ready("reloaded");
	snprintf(why, cap, "%s", rc ? cfg_error() : "");
	return rc;
}

/* The live upgrade (docs/UPGRADE.md), begun here and ended in upgrade_done: on success
 * what could not move drains here with 1001 and this process exits once it is gone, as
 * after SIGTERM. */
static void upgrade_done(void *arg, int rc, const struct ho_result *r, const char *why)
{
	struct server *s = arg;
	char note[200] = "";
	if (rc == 0 && r->kept)
		snprintf(note, sizeof(note), "%lu connections could not move and drain with 1001", r->kept);
	admin_upgrade_done(s->admin, rc, r->pid, r->handed, rc ? why : note);
	if (rc)
		lps_spread(s->lps);
	if (rc == 0) {
		s->upgraded = 1;
		start_drain(s);
	}
}

static int upgrade(struct server *s, const char *path, char *why, size_t cap)
{
	if (s->draining) {
		snprintf(why, cap, s->upgraded ? "already upgraded: this process is on its way out"
					       : "the gateway is draining");
		return -EBUSY;
	}
	/* The hand-over runs on loop 0's thread: the connections of the others come here,
	 * but those their own loop's workers serve (spread-workers). */
	int rc = lps_gather(s->lps);
	if (rc) {
		snprintf(why, cap, "out of memory moving the other loops' connections to loop 0");
		lps_spread(s->lps);
		log_warn(0, "upgrade refused: %s", why);
		return rc;
	}
	struct ho_parts p = { s->cfg, s->loop, s->sess, s->lsn, s->admin, s->ctl, s->rundir.lock_fd, s->sup, s->lps };
	rc = ho_upgrade(&p, path, upgrade_done, s, why, cap);
	if (rc)
		lps_spread(s->lps);
	/* Whoever asked (SIGUSR2, POST /upgrade), what cannot move yet is said here. */
	if (rc == -EBUSY || rc == -EOPNOTSUPP || rc == -EAGAIN)
		log_warn(0, "upgrade refused: %s", why);
	return rc;
}

static int a_upgrade(void *arg, const char *path, char *why, size_t cap)
{
	return upgrade(arg, path, why, cap);
}

static const struct admin_ops admin_ops = {
	.metrics = a_metrics, .healthz = a_healthz, .status = a_status, .workers = a_workers,
	.connections = a_connections, .config = a_config, .kick = a_kick, .drain = a_drain,
	.reload = a_reload, .upgrade = a_upgrade,
};

/* Connections are bounded by file descriptors: take the hard limit. */
static unsigned raise_fd_limit(void)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		return 1024;
	rl.rlim_cur = rl.rlim_max;
	if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
		log_warn(errno, "setrlimit(RLIMIT_NOFILE, %llu)", (unsigned long long)rl.rlim_max);
	getrlimit(RLIMIT_NOFILE, &rl);
	unsigned long lim = rl.rlim_cur > 100000000 ? 100000000 : (unsigned long)rl.rlim_cur;
	if (lim < 1048576)
		log_info("fd limit %lu caps connections at %lu (raise the hard RLIMIT_NOFILE for more)",
			 lim, lim > FD_HEADROOM ? lim - FD_HEADROOM : 1);
	return lim > FD_HEADROOM ? (unsigned)(lim - FD_HEADROOM) : 1;
}

static int setup(struct server *s, struct gw_config *cfg)
{
	s->cfg = cfg;
	s->sigfd = -1;
	clog_set_config(cfg);
	log_set_level((enum log_level)cfg->log_level);
	log_set_format((enum log_format)cfg->log_format);
	sdn_init();
	s->fd_conns = raise_fd_limit();

	/* Blocked before any thread exists (liburcu starts some in conn_map_init): threads
	 * inherit the mask, so these signals reach only the loop's signalfd. */
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGUSR2);
	sigprocmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);

	s->loop = loop_new(cfg);
	if (!s->loop)
		return -errno;
	set_limits(s);
	/* OpenSSL's lazy provider loading (about 2 MiB) is paid now, not by the first
	 * client, and checked against RFC 6455 1.3. */
	char accept[29];
	ws_resp_accept_key("dGhlIHNhbXBsZSBub25jZQ==", 24, accept);
	if (strcmp(accept, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=") != 0) {
		log_error(0, "SHA-1 self-test failed: OpenSSL gave %s", accept);
		return -EIO;
	}
	if (conn_map_init() || top_init()) {
		log_error(ENOMEM, "connection map and topic index");
		return -ENOMEM;
	}
	s->sigfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
	if (s->sigfd < 0) {
		log_error(errno, "signalfd");
		return -errno;
	}
	s->sig.fn = on_signal;
	int rc = loop_add(s->loop, s->sigfd, EPOLLIN, &s->sig);
	/* The admin endpoint first: its log line comes before "listening on", which tells
	 * scripts and tests the gateway is up. It reads the parts only at requests. */
	if (rc == 0 && cfg->admin.len)
		rc = admin_new(s->loop, cfg, &admin_ops, s, &s->admin);
	for (int i = 0; rc == 0 && i < cfg->n_listen && !s->tls; i++)
		if (cfg->listen[i].tls)
			rc = tls_srv_new(cfg, &s->tls);
	if (rc == 0)
		rc = lsn_open(s->loop, cfg, on_accept, s, &s->lsn);
	if (rc == 0)
		rc = sess_new(s->loop, cfg, 1, &s->sess);
	if (rc == 0 && (rc = lps_new(cfg, s->loop, s->sess, s->tls, &s->lps)) == 0)
		lps_set_max_conns(s->lps, s->max_conns);
	if (rc == 0 && pool_serves_workers(sess_pools(s->sess)))
		rc = ctl_new(s->loop, cfg, sess_pools(s->sess), &s->ctl);
	if (rc == 0 && s->ctl)
		lps_set_ctl(s->lps, s->ctl);
	if (rc == 0 && cfg->cluster.url[0] && (rc = clu_new(s->loop, cfg, &s->clu)) == 0) {
		conn_set_first_id(clu_first_id(s->clu));
		pool_set_cluster(sess_pools(s->sess), s->clu);
	}
	if (rc == 0)
		rc = sup_new(s->loop, cfg, &s->sup);
	if (rc == 0) {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		s->rpt = (struct rpt_src){ cfg, s->loop, sess_pools(s->sess), s->lps, s->sup, s->lsn, &s->draining,
					   (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000 };
	}
	if (rc)
		return rc;
	struct loop_hooks h = { .arg = s, .tick = tick, .poll = hook_poll, .timeout_ms = hook_timeout };
	return loop_add_hooks(s->loop, &h);
}

static void teardown(struct server *s)
{
	lsn_free(s->lsn);
	lps_free(s->lps); /* the other loops' connections close first */
	sup_free(s->sup);
	free(s->drain_ids);
	if (s->loop && s->sess)
		loop_close_all(s->loop);
	admin_free(s->admin);
	/* Before the pools: what Redis still answers reaches them. */
	clu_free(s->clu);
	hist_destroy();
	/* The pools first: zmq workers' transports name the control socket. */
	sess_free(s->sess);
	ctl_free(s->ctl);
	tls_srv_free(s->tls);
	top_destroy();
	conn_map_destroy();
	door_reset();
	if (s->sigfd >= 0)
		close(s->sigfd);
	loop_free(s->loop);
	/* Loop 0's blocks kept for reuse, as the other loops' threads free theirs: LeakSanitizer
	 * cannot follow their links (unaligned, in the blocks' data) past the first. */
	outq_thread_end();
	bp_drain();
	rundir_unlock(&s->rundir); /* last: the sockets are gone by now */
}

int srv_run(struct gw_config *cfg)
{
	struct server s;
	memset(&s, 0, sizeof(s));
	/* Started by a live upgrade: the old gateway's listeners replace our binds, and its
	 * runtime directory's lock is ours too. */
	int chan = ho_inherit(cfg);
	if (chan < -1)
		return chan;
	/* Before anything else: a second gateway on this runtime directory must change nothing
	 * of the first's (a bind would replace its control socket). */
	int rc = rundir_start(&s.rundir, cfg);
	if (rc) {
		if (chan >= 0)
			close(chan); /* the old one sees EOF and keeps serving */
		return rc;
	}
	rcu_register_thread();
	rc = setup(&s, cfg);
	if (chan >= 0) {
		struct ho_parts p = { s.cfg, s.loop, s.sess, s.lsn, s.admin, s.ctl, s.rundir.lock_fd, s.sup, s.lps };
		if (rc == 0)
			rc = ho_take(&p, chan);
		else
			close(chan); /* the old one sees EOF and keeps serving */
	}
	if (rc == 0 && chan >= 0 && s.rundir.lock_fd >= 0)
		rundir_name_holder(&s.rundir); /* the old one is on its way out */
	if (rc == 0 && chan >= 0)
		lps_balance(s.lps); /* the old one handed every connection to loop 0 */
	if (rc == 0) {
		log_info("started: max %u connections, max message %llu bytes, memory budget %llu bytes",
			 s.max_conns, (unsigned long long)cfg->max_message,
			 (unsigned long long)cfg->memory_budget);
		sdn_ready("serving");
		/* Listening, with the control socket open: the workers can attach now. */
		sup_start(s.sup);
		rc = loop_run(s.loop);
		log_info("stopped");
	}
	teardown(&s);
	rcu_unregister_thread();
	return rc;
}
