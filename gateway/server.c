#include "gateway/server.h"
#include "gateway/admin.h"
#include "gateway/budget.h"
#include "gateway/cluster.h"
#include "gateway/conn.h"
#include "gateway/control.h"
#include "gateway/frame.h"
#include "gateway/handshake.h"
#include "gateway/history.h"
#include "gateway/hsresp.h"
#include "gateway/listener.h"
#include "gateway/log.h"
#include "gateway/loop.h"
#include "gateway/pool.h"
#include "gateway/rundir.h"
#include "gateway/sdnotify.h"
#include "gateway/session.h"
#include "gateway/stats.h"
#include "gateway/topics.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <unistd.h>
#include <urcu.h>

/* Kept free below the fd limit for listeners, the log, and the reserve fd. */
#define FD_HEADROOM 32

/* The gateway: every part, wired together. */
struct server {
	struct loop_src sig;  /* the signalfd */
	int sigfd;
	struct gw_config *cfg;
	struct loop *loop;
	struct sess *sess;
	struct lsn *lsn;
	struct ctl *ctl;
	struct admin *admin;
	struct clu *clu;      /* with --cluster */
	unsigned fd_conns;    /* what the fd limit allows */
	unsigned max_conns;
	int draining;
	uint32_t drain_deadline;
	struct rundir rundir; /* the runtime directory's lock, held while workers may attach */
};

static void set_limits(struct server *s)
{
	const struct gw_config *cfg = s->cfg;
	bud_set_limit(cfg->memory_budget);
	s->max_conns = cfg->max_conns && cfg->max_conns < s->fd_conns ? cfg->max_conns : s->fd_conns;
	loop_set_config(s->loop);
}

static void on_accept(void *arg, int fd)
{
	struct server *s = arg;
	struct conn *c = conn_new(fd);
	if (conn_count() > s->max_conns)
		c->flags |= CONN_REJECT_503;
	if (sess_start(s->sess, c)) {
		log_error(ENOMEM, "new connection");
		loop_close(s->loop, c, "out of memory");
		return;
	}
	if (loop_add_conn(s->loop, c))
		loop_close(s->loop, c, "epoll_ctl failed");
}

static void drain_one(struct conn *c, void *arg)
{
	struct server *s = arg;
	sess_close(s->sess, c, WS_CLOSE_GOING_AWAY, "server shutting down");
}

static void start_drain(struct server *s)
{
	s->draining = 1;
	if (s->admin)
		admin_set_draining(s->admin);
	lsn_close(s->lsn);
	log_info("draining %lu connections (close 1001)", conn_count());
	conn_for_each(drain_one, s);
	s->drain_deadline = loop_now(s->loop) + s->cfg->close_ms + 1000;
}

/* Settings bound to sockets, segments or threads made at start keep their value. */
static void keep_fixed(struct gw_config *next, const struct gw_config *cur)
{
#define KEEP(field, name)                                                                      \
	if (memcmp(&next->field, &cur->field, sizeof(cur->field)) != 0) {                      \
		log_warn(0, "SIGHUP: %s changed; it takes effect after a restart", name);      \
		memcpy(&next->field, &cur->field, sizeof(cur->field));                         \
	}
	if (next->n_listen != cur->n_listen ||
	    memcmp(next->listen, cur->listen, sizeof(cur->listen[0]) * (size_t)cur->n_listen)) {
		log_warn(0, "SIGHUP: listen changed; it takes effect after a restart");
		next->n_listen = cur->n_listen;
		memcpy(next->listen, cur->listen, sizeof(cur->listen));
	}
	KEEP(admin, "admin")
	KEEP(control, "control")
	KEEP(runtime_dir, "runtime-dir")
	KEEP(ring_bytes, "ring-size")
	KEEP(zmq_window, "zmq-window") /* the control socket's high-water mark follows it */
	KEEP(socket_mode, "socket-mode")
	KEEP(gid, "group")
	KEEP(curve_secret, "curve-secret-key")
	KEEP(curve_clients, "curve-clients")
	KEEP(heartbeat_ms, "heartbeat")
	KEEP(max_message, "max-message") /* rings are sized for it */
	KEEP(max_header, "max-header")   /* and for the OPEN it makes */
	KEEP(forward, "forward")
	KEEP(n_forward, "forward")
	KEEP(cluster, "cluster")
#undef KEEP
}

/* SIGHUP: routes and limits from the config file and command line again; connections
 * stay. A file that does not parse changes nothing. */
static void reload(struct server *s)
{
	static struct gw_config next;
	if (cfg_reload(&next)) {
		log_error(0, "SIGHUP: the configuration does not parse (above); nothing changed");
		return;
	}
	keep_fixed(&next, s->cfg);
	const char *why = NULL;
	if (pool_routes_update(sess_pools(s->sess), &next, &why)) {
		log_error(0, "SIGHUP: routes not changed: %s", why);
		next.n_routes = s->cfg->n_routes;
		memcpy(next.routes, s->cfg->routes, sizeof(next.routes));
	}
	*s->cfg = next;
	log_set_level((enum log_level)s->cfg->log_level);
	set_limits(s);
	log_info("SIGHUP: reloaded: %d routes, max %u connections, max outbound %zu bytes (%s)",
		 s->cfg->n_routes, s->max_conns, s->cfg->max_outbound,
		 s->cfg->outbound_drop ? "drop" : "close 1008");
}

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
		}
	}
}

/* The service manager's watchdog; the drain ends when the last connection is gone, or at
 * its deadline. */
static void tick(void *arg)
{
	struct server *s = arg;
	sdn_tick(loop_now(s->loop));
	if (s->cfg->n_history && !s->clu)
		hist_expire(loop_now(s->loop));
	if (!s->draining)
		return;
	if (conn_count() == 0) {
		loop_stop(s->loop);
	} else if ((int32_t)(loop_now(s->loop) - s->drain_deadline) >= 0) {
		log_warn(0, "drain deadline: %lu connections closed without handshake", conn_count());
		loop_stop(s->loop);
	}
}

static void gauges(void *arg, struct admin_gauges *g)
{
	struct server *s = arg;
	g->conns = conn_count();
	g->workers = pool_live_workers(sess_pools(s->sess));
}

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
	log_set_level((enum log_level)cfg->log_level);
	sdn_init();
	s->fd_conns = raise_fd_limit();

	/* Blocked before any thread exists (liburcu starts some in conn_map_init): threads
	 * inherit the mask, so these signals reach only the loop's signalfd. */
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
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
	if (rc == 0)
		rc = lsn_open(s->loop, cfg, on_accept, s, &s->lsn);
	if (rc == 0 && cfg->admin.len)
		rc = admin_new(s->loop, &cfg->admin, gauges, s, &s->admin);
	if (rc == 0)
		rc = sess_new(s->loop, cfg, &s->sess);
	if (rc == 0 && pool_serves_workers(sess_pools(s->sess)))
		rc = ctl_new(s->loop, cfg, sess_pools(s->sess), &s->ctl);
	if (rc == 0 && cfg->cluster.url[0] && (rc = clu_new(s->loop, cfg, &s->clu)) == 0) {
		conn_set_first_id(clu_first_id(s->clu));
		pool_set_cluster(sess_pools(s->sess), s->clu);
	}
	if (rc)
		return rc;
	struct loop_hooks h = { .arg = s, .tick = tick };
	return loop_add_hooks(s->loop, &h);
}

static void teardown(struct server *s)
{
	lsn_free(s->lsn);
	if (s->loop && s->sess)
		loop_close_all(s->loop);
	admin_free(s->admin);
	/* Before the pools: what Redis still answers reaches them. */
	clu_free(s->clu);
	hist_destroy();
	/* The pools first: zmq workers' transports name the control socket. */
	sess_free(s->sess);
	ctl_free(s->ctl);
	top_destroy();
	conn_map_destroy();
	if (s->sigfd >= 0)
		close(s->sigfd);
	loop_free(s->loop);
	rundir_unlock(&s->rundir); /* last: the sockets are gone by now */
}

int srv_run(struct gw_config *cfg)
{
	struct server s;
	memset(&s, 0, sizeof(s));
	/* Before anything else: a second gateway on this runtime directory must change nothing
	 * of the first's (ZeroMQ's bind would replace its control socket). */
	int rc = rundir_start(&s.rundir, cfg);
	if (rc)
		return rc;
	rcu_register_thread();
	rc = setup(&s, cfg);
	if (rc == 0) {
		log_info("started: max %u connections, max message %llu bytes, memory budget %llu bytes",
			 s.max_conns, (unsigned long long)cfg->max_message,
			 (unsigned long long)cfg->memory_budget);
		sdn_ready("serving");
		rc = loop_run(s.loop);
		log_info("stopped");
	}
	teardown(&s);
	rcu_unregister_thread();
	return rc;
}
