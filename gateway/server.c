#include "gateway/server.h"
#include "gateway/admin.h"
#include "gateway/conn.h"
#include "gateway/control.h"
#include "gateway/frame.h"
#include "gateway/handshake.h"
#include "gateway/log.h"
#include "gateway/pool.h"
#include "gateway/rundir.h"
#include "gateway/sdnotify.h"
#include "gateway/session.h"
#include "gateway/stats.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define RBUF_CAP (256u << 10)
#define MAX_EVENTS 256
/* Kept free below the fd limit for listeners, the log, and the reserve fd. */
#define FD_HEADROOM 32

struct listener {
	uint8_t kind; /* EP_LISTENER */
	int fd;
	char text[80];
};

struct sigsrc {
	uint8_t kind; /* EP_SIGNAL */
	int fd;
};

static struct {
	struct gw_config *cfg;
	int epfd;
	struct listener listeners[CFG_MAX_LISTEN];
	int n_listeners;
	struct sigsrc sig;
	struct sigsrc bell;   /* EP_BELL: a worker rang while the loop slept */
	int workers;          /* some route names a worker pool */
	int reserve_fd;       /* closed to accept-and-shed when the fd limit is reached */
	unsigned max_conns;
	unsigned fd_conns;    /* what the fd limit allows */
	uint8_t *rbuf;        /* WS_RX_TAIL_MAX + RBUF_CAP bytes, shared by all connections */
	struct conn *marked;  /* end-of-batch list, through conn->flush_next */
	struct timespec start;
	uint32_t now;
	uint32_t next_sweep;
	uint32_t sweep_ms;
	int draining;
	uint32_t drain_deadline;
	struct rundir rundir; /* the runtime directory's lock, held while workers may attach */
} L;

const struct gw_config *srv_cfg(void)
{
	return L.cfg;
}

uint32_t srv_now(void)
{
	return L.now;
}

uint8_t *srv_rbuf(size_t *cap)
{
	*cap = RBUF_CAP;
	return L.rbuf;
}

static void update_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	L.now = (uint32_t)((ts.tv_sec - L.start.tv_sec) * 1000 + (ts.tv_nsec - L.start.tv_nsec) / 1000000);
}

void srv_mark(struct conn *c)
{
	if (c->flags & CONN_IN_FLUSH)
		return;
	c->flags |= CONN_IN_FLUSH;
	c->flush_next = L.marked;
	L.marked = c;
}

/* Arms (on != 0) or disarms EPOLLOUT for c. */
static void srv_want_write(struct conn *c, int on)
{
	if (!!(c->flags & CONN_POLLOUT) == !!on)
		return;
	struct epoll_event ev = { .events = EPOLLIN | EPOLLRDHUP | EPOLLET | (on ? EPOLLOUT : 0),
				  .data.ptr = c };
	if (epoll_ctl(L.epfd, EPOLL_CTL_MOD, c->fd, &ev) < 0) {
		log_error(errno, "epoll_ctl(MOD, fd=%d)", c->fd);
		srv_close(c, "epoll_ctl failed");
		return;
	}
	c->flags ^= CONN_POLLOUT;
}

void srv_close(struct conn *c, const char *reason)
{
	if (c->state == CONN_DEAD)
		return;
	log_debug("conn %llu: closed (%s)", (unsigned long long)c->id, reason);
	sess_on_closed(c);
	close(c->fd); /* also removes it from the epoll set */
	c->fd = -1;
	c->state = CONN_DEAD;
	srv_mark(c);
}

/* Flushes every marked connection once per event batch, so many frames queued by one
 * read leave in one writev; releases the ones that died during the batch. */
static void end_of_batch(void)
{
	struct conn *c;
	while ((c = L.marked)) {
		L.marked = c->flush_next;
		c->flags &= (uint8_t)~CONN_IN_FLUSH;
		if (c->state == CONN_DEAD) {
			conn_release(c);
			continue;
		}
		int rc = outq_flush(&c->out, c->fd);
		if (rc < 0) {
			srv_close(c, strerror(-rc));
		} else if (rc > 0) {
			srv_want_write(c, 1);
		} else {
			srv_want_write(c, 0);
			sess_on_drained(c);
		}
	}
}

static void accept_shed(struct listener *l)
{
	/* At the fd limit: free the reserve fd, take the oldest pending connection and close
	 * it, so clients see a reset instead of hanging in the backlog (libuv's trick). */
	if (L.reserve_fd < 0)
		return;
	close(L.reserve_fd);
	int fd = accept4(l->fd, NULL, NULL, SOCK_CLOEXEC);
	if (fd >= 0)
		close(fd);
	L.reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
}

static void on_accept(struct listener *l)
{
	for (;;) {
		int fd = accept4(l->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			switch (errno) {
			case EINTR:
				continue;
			case EAGAIN:
				return;
			case EMFILE:
			case ENFILE:
				log_warn(errno, "accept4 on %s: shedding a connection", l->text);
				accept_shed(l);
				continue;
			case ECONNABORTED:
			case EPROTO:
				log_info("accept4 on %s: %s", l->text, strerror(errno));
				continue;
			default:
				log_error(errno, "accept4 on %s", l->text);
				return;
			}
		}
		int one = 1;
		/* Small frames are the norm: Nagle would hold each echo for an ACK. */
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		struct conn *c = conn_new(fd);
		stats.accepted++;
		if (conn_count() > L.max_conns)
			c->flags |= CONN_REJECT_503;
		if (sess_start(c)) {
			log_error(ENOMEM, "new connection");
			srv_close(c, "out of memory");
			continue;
		}
		struct epoll_event ev = { .events = EPOLLIN | EPOLLRDHUP | EPOLLET, .data.ptr = c };
		if (epoll_ctl(L.epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
			log_error(errno, "epoll_ctl(ADD, fd=%d)", fd);
			srv_close(c, "epoll_ctl failed");
		}
	}
}

static void on_conn_event(struct conn *c, uint32_t events)
{
	if (c->state == CONN_DEAD)
		return; /* closed earlier in this batch */
	/* Errors and hang-ups are handled by the read and write paths themselves. */
	if (events & (EPOLLOUT | EPOLLERR | EPOLLHUP))
		srv_mark(c);
	if (events & (EPOLLIN | EPOLLRDHUP | EPOLLERR | EPOLLHUP))
		sess_on_readable(c);
}

static void check_deadline(struct conn *c, void *arg)
{
	(void)arg;
	if (c->state != CONN_DEAD && (int32_t)(L.now - c->deadline) >= 0)
		sess_on_deadline(c);
}

static void drain_one(struct conn *c, void *arg)
{
	(void)arg;
	sess_close(c, WS_CLOSE_GOING_AWAY, "server shutting down");
}

static void force_close(struct conn *c, void *arg)
{
	(void)arg;
	srv_close(c, "drain deadline");
}

static void start_drain(void)
{
	L.draining = 1;
	admin_set_draining();
	for (int i = 0; i < L.n_listeners; i++) {
		epoll_ctl(L.epfd, EPOLL_CTL_DEL, L.listeners[i].fd, NULL);
		close(L.listeners[i].fd);
	}
	L.n_listeners = 0;
	log_info("draining %lu connections (close 1001)", conn_count());
	conn_for_each(drain_one, NULL);
	L.drain_deadline = L.now + L.cfg->close_ms + 1000;
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
	KEEP(shm_mode, "shm-mode")
	KEEP(socket_mode, "socket-mode")
	KEEP(gid, "group")
	KEEP(curve_secret, "curve-secret-key")
	KEEP(curve_clients, "curve-clients")
	KEEP(heartbeat_ms, "heartbeat")
	KEEP(max_message, "max-message") /* rings are sized for it */
#undef KEEP
}

static void set_limits(void)
{
	const struct gw_config *cfg = L.cfg;
	unsigned fd_conns = L.fd_conns;
	L.max_conns = cfg->max_conns && cfg->max_conns < fd_conns ? cfg->max_conns : fd_conns;
	/* Deadlines are checked by a sweep, a few times per shortest timeout. */
	unsigned shortest = cfg->handshake_ms;
	if (cfg->idle_ms < shortest)
		shortest = cfg->idle_ms;
	if (cfg->close_ms < shortest)
		shortest = cfg->close_ms;
	if (cfg->heartbeat_ms < shortest)
		shortest = cfg->heartbeat_ms;
	L.sweep_ms = shortest / 4 < 10 ? 10 : shortest / 4 > 1000 ? 1000 : shortest / 4;
}

/* SIGHUP: routes and limits from the config file and command line again; connections
 * stay. A file that does not parse changes nothing. */
static void reload(void)
{
	static struct gw_config next;
	if (cfg_reload(&next)) {
		log_error(0, "SIGHUP: the configuration does not parse (above); nothing changed");
		return;
	}
	keep_fixed(&next, L.cfg);
	const char *why = NULL;
	if (pool_routes_update(&next, &why)) {
		log_error(0, "SIGHUP: routes not changed: %s", why);
		next.n_routes = L.cfg->n_routes;
		memcpy(next.routes, L.cfg->routes, sizeof(next.routes));
	}
	*L.cfg = next;
	log_set_level((enum log_level)L.cfg->log_level);
	set_limits();
	log_info("SIGHUP: reloaded: %d routes, max %u connections, max outbound %zu bytes (%s)",
		 L.cfg->n_routes, L.max_conns, L.cfg->max_outbound,
		 L.cfg->outbound_drop ? "drop" : "close 1008");
}

static void on_signal(void)
{
	struct signalfd_siginfo si;
	while (read(L.sig.fd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
		switch (si.ssi_signo) {
		case SIGTERM:
		case SIGINT:
			if (!L.draining) {
				log_info("signal %d: stopping", (int)si.ssi_signo);
				sdn_stopping("draining");
				start_drain();
			}
			break;
		case SIGHUP:
			sdn_reloading();
			reload();
			sdn_ready("reloaded");
			break;
		}
	}
}

static int open_listener(const struct cfg_listen *cl, struct listener *l)
{
	int fd = socket(cl->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		log_error(errno, "socket(%s)", cl->text);
		return -errno;
	}
	int one = 1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (cl->addr.ss_family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
	if (bind(fd, (const struct sockaddr *)&cl->addr, cl->len) < 0 || listen(fd, 4096) < 0) {
		int err = errno;
		log_error(err, "listen on %s", cl->text);
		close(fd);
		return -err;
	}
	/* Port 0 picks a free port: log the real one, which tests and scripts read. */
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	getsockname(fd, (struct sockaddr *)&ss, &len);
	char host[INET6_ADDRSTRLEN];
	if (ss.ss_family == AF_INET6) {
		const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)&ss;
		inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof(host));
		snprintf(l->text, sizeof(l->text), "[%s]:%u", host, ntohs(a->sin6_port));
	} else {
		const struct sockaddr_in *a = (const struct sockaddr_in *)&ss;
		inet_ntop(AF_INET, &a->sin_addr, host, sizeof(host));
		snprintf(l->text, sizeof(l->text), "%s:%u", host, ntohs(a->sin_port));
	}
	l->kind = EP_LISTENER;
	l->fd = fd;
	struct epoll_event ev = { .events = EPOLLIN | EPOLLET, .data.ptr = l };
	if (epoll_ctl(L.epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
		int err = errno;
		log_error(err, "epoll_ctl(ADD, listener %s)", l->text);
		close(fd);
		return -err;
	}
	log_info("listening on %s", l->text);
	return 0;
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

static int setup(struct gw_config *cfg)
{
	L.cfg = cfg;
	log_set_level((enum log_level)cfg->log_level);
	L.reserve_fd = -1;
	L.sig.fd = -1;
	sdn_init();
	clock_gettime(CLOCK_MONOTONIC, &L.start);
	L.fd_conns = raise_fd_limit();
	set_limits();

	/* Blocked before any thread exists (liburcu starts some in conn_map_init): threads
	 * inherit the mask, so these signals reach only the loop's signalfd. */
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	sigprocmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);

	L.rbuf = malloc(WS_RX_TAIL_MAX + RBUF_CAP);
	L.epfd = epoll_create1(EPOLL_CLOEXEC);
	if (!L.rbuf || L.epfd < 0) {
		log_error(errno, "epoll_create1");
		return -errno;
	}
	/* Fixed costs are paid now, not by the first clients: the shared read buffer's pages,
	 * and OpenSSL's lazy provider loading (about 2 MiB), checked against RFC 6455 1.3. */
	memset(L.rbuf, 0, WS_RX_TAIL_MAX + RBUF_CAP);
	char accept[29];
	ws_hs_accept_key("dGhlIHNhbXBsZSBub25jZQ==", 24, accept);
	if (strcmp(accept, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=") != 0) {
		log_error(0, "SHA-1 self-test failed: OpenSSL gave %s", accept);
		return -EIO;
	}
	if (conn_map_init()) {
		log_error(ENOMEM, "connection map");
		return -ENOMEM;
	}
	L.sig.kind = EP_SIGNAL;
	L.sig.fd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
	struct epoll_event ev = { .events = EPOLLIN, .data.ptr = &L.sig };
	if (L.sig.fd < 0 || epoll_ctl(L.epfd, EPOLL_CTL_ADD, L.sig.fd, &ev) < 0) {
		log_error(errno, "signalfd");
		return -errno;
	}
	for (int i = 0; i < cfg->n_listen; i++) {
		int rc = open_listener(&cfg->listen[i], &L.listeners[L.n_listeners]);
		if (rc)
			return rc;
		L.n_listeners++;
	}
	L.reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (cfg->admin.len) {
		int arc = admin_init(&cfg->admin, L.epfd);
		if (arc)
			return arc;
	}
	int rc = pool_init(cfg);
	if (rc)
		return rc;
	for (int i = 0; i < cfg->n_routes; i++)
		L.workers |= !pool_is_echo((unsigned)pool_for_route((unsigned)i));
	if (!L.workers)
		return 0;
	L.bell.kind = EP_BELL;
	L.bell.fd = pool_bell_fd();
	struct epoll_event bev = { .events = EPOLLIN | EPOLLET, .data.ptr = &L.bell };
	if (epoll_ctl(L.epfd, EPOLL_CTL_ADD, L.bell.fd, &bev) < 0) {
		log_error(errno, "epoll_ctl(ADD, bell eventfd)");
		return -errno;
	}
	return ctl_init(cfg, L.epfd);
}

static void teardown(void)
{
	for (int i = 0; i < L.n_listeners; i++)
		close(L.listeners[i].fd);
	conn_for_each(force_close, NULL);
	end_of_batch();
	pool_flush();
	admin_shutdown();
	pool_shutdown(); /* first: control.c owns the worker structs pool.c still points to */
	ctl_shutdown();
	conn_map_destroy();
	if (L.sig.fd >= 0)
		close(L.sig.fd);
	if (L.reserve_fd >= 0)
		close(L.reserve_fd);
	if (L.epfd >= 0)
		close(L.epfd);
	free(L.rbuf);
	rundir_unlock(&L.rundir); /* last: the control socket is gone by now */
}

int srv_run(struct gw_config *cfg)
{
	/* Before anything else: a second gateway on this runtime directory must change nothing
	 * of the first's (ZeroMQ's bind would replace its control socket). */
	int rc = rundir_start(&L.rundir, cfg);
	if (rc)
		return rc;
	rcu_register_thread();
	rc = setup(cfg);
	if (rc)
		goto out;
	log_info("started: max %u connections, max message %llu bytes", L.max_conns,
		 (unsigned long long)cfg->max_message);
	sdn_ready("serving");
	struct epoll_event events[MAX_EVENTS];
	update_now();
	L.next_sweep = L.now + L.sweep_ms;
	for (;;) {
		/* Workers' answers first: they may free the rings the clients wait for. */
		int work = L.workers ? pool_poll() : 0;
		if (work)
			end_of_batch();
		if (L.workers)
			pool_flush();
		int timeout = (int32_t)(L.next_sweep - L.now);
		if (timeout < 0 || work)
			timeout = 0;
		int pt = L.workers ? pool_timeout_ms() : -1;
		if (pt >= 0 && pt < timeout)
			timeout = pt;
		/* Sleeping is announced on the doorbell so that a worker's next record wakes us. */
		if (timeout > 0 && L.workers && pool_prepare_sleep())
			timeout = 0;
		int n = epoll_wait(L.epfd, events, MAX_EVENTS, timeout);
		if (L.workers)
			pool_wakeup();
		if (n < 0 && errno != EINTR) {
			log_error(errno, "epoll_wait");
			rc = -errno;
			break;
		}
		update_now();
		for (int i = 0; i < n; i++) {
			uint8_t kind = *(uint8_t *)events[i].data.ptr;
			switch (kind) {
			case EP_CONN:
				on_conn_event(events[i].data.ptr, events[i].events);
				break;
			case EP_LISTENER:
				on_accept(events[i].data.ptr);
				break;
			case EP_SIGNAL:
				on_signal();
				break;
			case EP_CONTROL:
				ctl_on_event();
				break;
			case EP_PIDFD:
				ctl_on_pidfd(events[i].data.ptr);
				break;
			case EP_ADMIN:
				admin_on_event(events[i].data.ptr);
				break;
			default: /* EP_BELL: the rings are polled at the top of the loop */
				break;
			}
		}
		/* Workers first: they start on their records while the loop writes to clients. */
		if (L.workers)
			pool_flush();
		end_of_batch();
		if ((int32_t)(L.now - L.next_sweep) >= 0) {
			conn_for_each(check_deadline, NULL);
			admin_tick(L.now);
			sdn_tick(L.now);
			if (L.workers) {
				ctl_tick();
				pool_tick();
			}
			end_of_batch();
			L.next_sweep = L.now + L.sweep_ms;
		}
		if (L.draining) {
			if (conn_count() == 0)
				break;
			if ((int32_t)(L.now - L.drain_deadline) >= 0) {
				log_warn(0, "drain deadline: %lu connections closed without handshake",
					 conn_count());
				break;
			}
		}
	}
	log_info("stopped");
out:
	teardown();
	rcu_unregister_thread();
	return rc;
}
