/* wstest: gateway process control and a raw WebSocket client for tests. */
#include "tests/lib/wstest.h"
#include "tests/lib/wtproc.h"
#include "tests/lib/wttls.h"

#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define WT_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
#define WT_MAX_FRAME (256u << 20)
#define WT_START_MS 5000

int64_t wt_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int ms_left(int64_t deadline)
{
	int64_t d = deadline - wt_now_ms();

	return d < 0 ? 0 : (int)d;
}

void wt_sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000 };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

int wt_timeout_ms(void)
{
	const char *s = getenv("WT_TIMEOUT_MS");
	int v = s ? atoi(s) : 0;

	return v > 0 ? v : 5000;
}

static void set_err(struct wt_conn *c, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void set_err(struct wt_conn *c, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(c->err, sizeof(c->err), fmt, ap);
	va_end(ap);
}

/* Up to max bytes as printable text with \xNN escapes, for failure messages. */
static const char *show(const uint8_t *p, size_t n, size_t max, char *out, size_t cap)
{
	size_t o = 0;

	for (size_t i = 0; i < n && i < max && o + 5 < cap; i++) {
		if (p[i] >= 0x20 && p[i] < 0x7f && p[i] != '\\')
			out[o++] = (char)p[i];
		else
			o += (size_t)snprintf(out + o, cap - o, "\\x%02x", p[i]);
	}
	if (n > max && o + 4 < cap)
		o += (size_t)snprintf(out + o, cap - o, "...");
	out[o] = 0;
	return out;
}

static const char *opname(int op)
{
	static const char *const n[16] = {
		"CONT", "TEXT", "BINARY", "op3", "op4", "op5", "op6", "op7",
		"CLOSE", "PING", "PONG", "opB", "opC", "opD", "opE", "opF",
	};
	return n[op & 15];
}

static const char *errname(int rc)
{
	switch (rc) {
	case -ETIMEDOUT: return "timed out";
	case -EPIPE: return "TCP EOF";
	case -ECONNRESET: return "TCP reset";
	case -EPROTO: return "protocol error";
	default: return rc < 0 ? strerror(-rc) : "ok";
	}
}

/* ---- registries: what to clean up when a test exits early ------------- */

struct gw_entry {
	pid_t owner, pid;
	char dir[64], log_path[96];
};

static struct gw_entry gw_reg[8];
static int conn_fds[1024];
static pid_t conn_owner[1024];
static int atexit_done;

/* The gateway's dir is its runtime dir too: its lock file and control socket are there
 * beside the logs, so all of it goes. */
static void gw_files_remove(const char *dir, const char *log_path)
{
	if (dir[0])
		wt_dir_remove(dir);
	else if (log_path[0])
		unlink(log_path);
}

int wt_worker_mode(void)
{
	const char *w = getenv("WT_GW_WORKER");
	return w && *w;
}

static void worker_stop(struct wt_gw *gw, int sig)
{
	if (!gw->worker)
		return;
	kill(gw->worker, sig);
	while (waitpid(gw->worker, NULL, 0) < 0 && errno == EINTR)
		;
	gw->worker = 0;
}


static void dump_log(const char *log_path, int max_lines)
{
	FILE *f = fopen(log_path, "r");
	char *all = NULL;
	size_t n = 0, cap = 0;
	char buf[4096];
	size_t r;

	if (!f)
		return;
	while ((r = fread(buf, 1, sizeof(buf), f)) > 0) {
		if (n + r + 1 > cap) {
			cap = (n + r + 1) * 2;
			all = realloc(all, cap);
			if (!all)
				abort();
		}
		memcpy(all + n, buf, r);
		n += r;
	}
	fclose(f);
	if (!all)
		return;
	all[n] = 0;
	size_t start = n;
	int lines = 0;
	while (start > 0) {
		if (all[start - 1] == '\n' && start != n && ++lines >= max_lines)
			break;
		start--;
	}
	fprintf(stderr, "---- gateway log (%s, last %d lines) ----\n%s%s---- end ----\n",
		log_path, max_lines, all + start, n && all[n - 1] != '\n' ? "\n" : "");
	free(all);
}

static void on_exit_cleanup(void)
{
	pid_t me = getpid();

	for (size_t i = 0; i < sizeof(conn_fds) / sizeof(conn_fds[0]); i++)
		if (conn_fds[i] > 0 && conn_owner[i] == me)
			close(conn_fds[i]);
	for (size_t i = 0; i < sizeof(gw_reg) / sizeof(gw_reg[0]); i++) {
		struct gw_entry *e = &gw_reg[i];

		if (!e->pid || e->owner != me)
			continue;
		fprintf(stderr, "wstest: test exited with gateway pid %d still running: killing it\n",
			(int)e->pid);
		kill(e->pid, SIGKILL);
		waitpid(e->pid, NULL, 0);
		dump_log(e->log_path, 40);
		gw_files_remove(e->dir, e->log_path);
		e->pid = 0;
	}
}

static void reg_atexit(void)
{
	if (!atexit_done) {
		atexit(on_exit_cleanup);
		atexit_done = 1;
	}
}

static void gw_reg_add(const struct wt_gw *gw)
{
	reg_atexit();
	for (size_t i = 0; i < sizeof(gw_reg) / sizeof(gw_reg[0]); i++) {
		struct gw_entry *e = &gw_reg[i];

		/* An entry inherited from Check's parent process belongs to it. */
		if (e->pid && e->owner == getpid())
			continue;
		e->owner = getpid();
		e->pid = gw->pid;
		snprintf(e->dir, sizeof(e->dir), "%s", gw->dir);
		snprintf(e->log_path, sizeof(e->log_path), "%s", gw->log_path);
		return;
	}
}

static void gw_reg_del(pid_t pid)
{
	for (size_t i = 0; i < sizeof(gw_reg) / sizeof(gw_reg[0]); i++)
		if (gw_reg[i].pid == pid && gw_reg[i].owner == getpid())
			gw_reg[i].pid = 0;
}

static void conn_reg(int fd, int add)
{
	reg_atexit();
	for (size_t i = 0; i < sizeof(conn_fds) / sizeof(conn_fds[0]); i++) {
		if (add && (conn_fds[i] <= 0 || conn_owner[i] != getpid())) {
			conn_fds[i] = fd;
			conn_owner[i] = getpid();
			return;
		}
		if (!add && conn_fds[i] == fd && conn_owner[i] == getpid()) {
			conn_fds[i] = 0;
			return;
		}
	}
}

void wt_close_all(void)
{
	for (size_t i = 0; i < sizeof(conn_fds) / sizeof(conn_fds[0]); i++)
		if (conn_fds[i] > 0 && conn_owner[i] == getpid()) {
			close(conn_fds[i]);
			conn_fds[i] = 0;
		}
}

/* ---- gateway process --------------------------------------------------- */

static char *read_file(const char *path, size_t *len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	char *buf = NULL;
	size_t n = 0, cap = 0;

	if (fd < 0)
		return NULL;
	for (;;) {
		if (n + 4096 + 1 > cap) {
			cap = (n + 4096 + 1) * 2;
			buf = realloc(buf, cap);
			if (!buf)
				abort();
		}
		ssize_t r = read(fd, buf + n, cap - n - 1);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		n += (size_t)r;
	}
	close(fd);
	buf[n] = 0;
	*len = n;
	return buf;
}

void wt_gw_dump_log(const struct wt_gw *gw, int max_lines)
{
	dump_log(gw->log_path, max_lines);
}

int wt_gw_log_contains(const struct wt_gw *gw, const char *needle)
{
	size_t n;
	char *s = read_file(gw->log_path, &n);
	int found = s && strstr(s, needle);

	free(s);
	return found;
}

int wt_waitpid(pid_t pid, int *status, int timeout_ms)
{
	int64_t deadline = wt_now_ms() + timeout_ms;

	for (;;) {
		pid_t r = waitpid(pid, status, WNOHANG);

		if (r == pid)
			return 0;
		if (r < 0 && errno != EINTR)
			return -errno;
		if (wt_now_ms() >= deadline)
			return -ETIMEDOUT;
		wt_sleep_ms(2);
	}
}

int wt_gw_wait(struct wt_gw *gw, int timeout_ms)
{
	if (!gw->pid)
		return 0;
	int rc = wt_waitpid(gw->pid, &gw->status, timeout_ms);
	if (rc == 0) {
		gw_reg_del(gw->pid);
		gw->pid = 0;
	}
	return rc;
}

static void gw_kill(struct wt_gw *gw)
{
	worker_stop(gw, SIGKILL);
	if (!gw->pid)
		return;
	kill(gw->pid, SIGKILL);
	while (waitpid(gw->pid, &gw->status, 0) < 0 && errno == EINTR)
		;
	gw_reg_del(gw->pid);
	gw->pid = 0;
}

int wt_gw_stop(struct wt_gw *gw, int timeout_ms)
{
	int rc = 0;

	if (gw->pid) {
		kill(gw->pid, SIGTERM);
		if (wt_gw_wait(gw, timeout_ms) < 0) {
			gw_kill(gw);
			rc = -ETIMEDOUT;
		}
	}
	worker_stop(gw, SIGTERM);
	gw_files_remove(gw->dir, gw->log_path);
	gw->dir[0] = 0;
	gw->log_path[0] = 0;
	return rc < 0 ? rc : gw->status;
}

/* "127.0.0.1:0" → "127.0.0.1", "[::1]:0" → "[::1]": how the log names it. */
static void listen_host(const char *spec, char *out, size_t cap)
{
	const char *colon = strrchr(spec, ':');
	size_t n = colon ? (size_t)(colon - spec) : strlen(spec);

	if (n >= cap)
		n = cap - 1;
	memcpy(out, spec, n);
	out[n] = 0;
}

/* Ports of the ",tls" listeners of the gateways started here: wt_connect speaks TLS there. */
static int tls_ports[64];
static unsigned n_tls_ports;

static int is_tls_port(int port)
{
	for (unsigned i = 0; i < n_tls_ports; i++)
		if (tls_ports[i] == port)
			return 1;
	return 0;
}

static int parse_ports(struct wt_gw *gw, const char *const *listens)
{
	size_t n;
	char *log = read_file(gw->log_path, &n);
	int found = 0;
	const char *from = log;

	if (!log)
		return 0;
	/* The gateway logs its listeners in the order it was given them. */
	for (int i = 0; i < gw->nlisten; i++) {
		char pat[128], host[96];
		const char *p;

		listen_host(listens[i], host, sizeof(host));
		snprintf(pat, sizeof(pat), "listening on %s:", host);
		p = strstr(from, pat);
		if (p) {
			from = p + 1;
			gw->ports[i] = atoi(p + strlen(pat));
			if (strstr(listens[i], ",tls") && !is_tls_port(gw->ports[i]) &&
			    n_tls_ports < sizeof(tls_ports) / sizeof(tls_ports[0]))
				tls_ports[n_tls_ports++] = gw->ports[i];
			if (gw->ports[i] > 0)
				found++;
		}
	}
	free(log);
	gw->port = gw->ports[0];
	return found == gw->nlisten;
}

/*
 * A test that fails outside the harness (a plain ck_assert) ends with _exit()
 * and leaves its log dir behind. Dirs carry the test's pid: remove the ones
 * whose process is gone.
 */
static void gc_stale_dirs(const char *tmp)
{
	DIR *d = opendir(tmp);
	struct dirent *e;

	if (!d)
		return;
	while ((e = readdir(d))) {
		char path[512];
		int pid;

		if (sscanf(e->d_name, "wstest.%d.", &pid) != 1 || pid <= 0 ||
		    kill(pid, 0) == 0 || errno != ESRCH)
			continue;
		snprintf(path, sizeof(path), "%s/%s", tmp, e->d_name);
		wt_dir_remove(path);
	}
	closedir(d);
}

pid_t wt_spawn(const char *const *argv, int logfd)
{
	pid_t parent = getpid();

	fflush(NULL);
	pid_t pid = fork();
	if (pid != 0)
		return pid < 0 ? -errno : pid;
	/* A test killed by Check's timeout must not leave its child behind. */
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() != parent)
		_exit(127);
	int devnull = open("/dev/null", O_RDONLY);
	if (devnull < 0 || dup2(devnull, 0) < 0 || dup2(logfd, 1) < 0 || dup2(logfd, 2) < 0)
		_exit(127);
	/* The test's client sockets must not stay open in the child. */
	close_range(3, ~0u, 0);
	signal(SIGPIPE, SIG_DFL);
	execv(argv[0], (char *const *)argv);
	dprintf(2, "wstest: execv(%s): %s\n", argv[0], strerror(errno));
	_exit(127);
}

/* Starts $WT_GW_WORKER on the gateway's control socket and waits (<= 5 s) for the
 * gateway to log its attach. */
static int worker_start(struct wt_gw *gw)
{
	char control[128], wlog[128];
	snprintf(control, sizeof(control), "ipc://%s/control", gw->dir);
	snprintf(wlog, sizeof(wlog), "%s/worker.log", gw->dir);
	int fd = open(wlog, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	const char *argv[] = { getenv("WT_GW_WORKER"), "--control", control, "--pool", "conf", NULL };
	pid_t pid = wt_spawn(argv, fd);
	close(fd);
	if (pid < 0)
		return pid;
	gw->worker = pid;
	int64_t deadline = wt_now_ms() + WT_START_MS;
	while (wt_now_ms() < deadline) {
		size_t n;
		char *log = read_file(gw->log_path, &n);
		int attached = log && strstr(log, "attached to pool conf");
		free(log);
		if (attached)
			return 0;
		wt_sleep_ms(10);
	}
	fprintf(stderr, "wstest: worker %s did not attach within %d ms\n", getenv("WT_GW_WORKER"),
		WT_START_MS);
	worker_stop(gw, SIGKILL);
	return -ETIMEDOUT;
}

int wt_gw_startv(struct wt_gw *gw, const char *const *args)
{
	const char *build = getenv("WSGW_BUILD");
	const char *tmp = getenv("TMPDIR");
	const char *argv[64];
	const char *listens[WT_MAX_LISTEN];
	char prog[512];
	int argc = 0, nargs = 0, has_listen = 0;

	memset(gw, 0, sizeof(*gw));
	snprintf(prog, sizeof(prog), "%s/wsgw", build && *build ? build : "build");
	int has_route = 0, conf_route = 0;
	for (nargs = 0; args && args[nargs]; nargs++) {
		if (!strcmp(args[nargs], "--listen"))
			has_listen = 1;
		if (!strcmp(args[nargs], "--route"))
			has_route = 1;
		if (nargs && !strcmp(args[nargs - 1], "--route") && strstr(args[nargs], "=conf"))
			conf_route = 1;
	}
	/* Routes of its own that name pool "conf" get the worker too. */
	int use_worker = wt_worker_mode() && (!has_route || conf_route);
	if (nargs + 12 > (int)(sizeof(argv) / sizeof(argv[0])))
		return -E2BIG;

	argv[argc++] = prog;
	if (!has_listen && wt_tls_mode()) {
		argv[argc++] = "--listen";
		argv[argc++] = "127.0.0.1:0,tls";
		argv[argc++] = "--tls-cert";
		argv[argc++] = wt_tls_file("cert.pem");
		argv[argc++] = "--tls-key";
		argv[argc++] = wt_tls_file("key.pem");
	} else if (!has_listen) {
		argv[argc++] = "--listen";
		argv[argc++] = "127.0.0.1:0";
	}
	for (int i = 0; i < nargs; i++)
		argv[argc++] = args[i];
	if (use_worker) {
		if (!has_route) {
			argv[argc++] = "--route";
			argv[argc++] = "/=conf";
		}
		argv[argc++] = "--runtime-dir";
		argv[argc++] = gw->dir; /* filled in below, before the fork */
	}
	argv[argc] = NULL;
	for (int i = 1; i + 1 < argc; i++)
		if (!strcmp(argv[i], "--listen") && gw->nlisten < WT_MAX_LISTEN)
			listens[gw->nlisten++] = argv[i + 1];

	if (!tmp || strlen(tmp) >= 32)
		tmp = "/tmp";
	gc_stale_dirs(tmp);
	snprintf(gw->dir, sizeof(gw->dir), "%s/wstest.%d.XXXXXX", tmp, (int)getpid());
	if (!mkdtemp(gw->dir)) {
		int e = errno;

		fprintf(stderr, "wstest: mkdtemp(%s): %s\n", gw->dir, strerror(e));
		gw->dir[0] = 0;
		return -e;
	}
	snprintf(gw->log_path, sizeof(gw->log_path), "%s/wsgw.log", gw->dir);

	int logfd = open(gw->log_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (logfd < 0) {
		int e = errno;

		fprintf(stderr, "wstest: open(%s): %s\n", gw->log_path, strerror(e));
		gw_files_remove(gw->dir, gw->log_path);
		return -e;
	}

	pid_t pid = wt_spawn(argv, logfd);
	if (pid < 0) {
		close(logfd);
		gw_files_remove(gw->dir, gw->log_path);
		return pid;
	}
	close(logfd);
	gw->pid = pid;
	gw_reg_add(gw);

	int64_t deadline = wt_now_ms() + WT_START_MS;
	for (;;) {
		if (parse_ports(gw, listens)) {
			if (!use_worker || worker_start(gw) == 0)
				return 0;
			break;
		}
		if (wt_gw_wait(gw, 0) == 0) {
			fprintf(stderr, "wstest: %s exited before listening (status 0x%x)\n",
				prog, gw->status);
			break;
		}
		if (wt_now_ms() >= deadline) {
			fprintf(stderr, "wstest: %s did not log 'listening on' for all %d listeners within %d ms\n",
				prog, gw->nlisten, WT_START_MS);
			break;
		}
		wt_sleep_ms(10);
	}
	gw_kill(gw);
	dump_log(gw->log_path, 40);
	gw_files_remove(gw->dir, gw->log_path);
	return -ESRCH;
}

int wt_gw_start(struct wt_gw *gw, ...)
{
	const char *args[60];
	int n = 0;
	va_list ap;

	va_start(ap, gw);
	for (const char *a; (a = va_arg(ap, const char *)) && n < 59;)
		args[n++] = a;
	va_end(ap);
	args[n] = NULL;
	return wt_gw_startv(gw, args);
}

/* ---- client connection -------------------------------------------------- */

static void conn_init(struct wt_conn *c)
{
	memset(c, 0, sizeof(*c));
	c->fd = -1;
	c->timeout_ms = wt_timeout_ms();
}

static int rcvbuf; /* wt_set_rcvbuf */

void wt_set_rcvbuf(int bytes)
{
	rcvbuf = bytes;
}

int wt_connect(struct wt_conn *c, const char *host, int port)
{
	int rc = wt_connect_tcp(c, host, port);

	if (rc == 0 && is_tls_port(port)) {
		c->tls = wt_tls_connect(c->fd, c->timeout_ms, c->err, sizeof(c->err));
		if (!c->tls) {
			wt_close(c);
			return -EPROTO;
		}
	}
	return rc;
}

int wt_connect_tcp(struct wt_conn *c, const char *host, int port)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICHOST };
	struct addrinfo *ai = NULL;
	char portstr[16];
	int fd, one = 1, rc;

	conn_init(c);
	snprintf(portstr, sizeof(portstr), "%d", port);
	rc = getaddrinfo(host, portstr, &hints, &ai);
	if (rc) {
		set_err(c, "getaddrinfo(%s): %s", host, gai_strerror(rc));
		return -EINVAL;
	}
	fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		rc = -errno;
		freeaddrinfo(ai);
		set_err(c, "socket: %s", strerror(-rc));
		return rc;
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	/* Before connect: the window it advertises is fixed by then. */
	if (rcvbuf)
		setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
	rc = connect(fd, ai->ai_addr, ai->ai_addrlen);
	freeaddrinfo(ai);
	if (rc < 0 && errno != EINPROGRESS) {
		rc = -errno;
		close(fd);
		set_err(c, "connect(%s:%d): %s", host, port, strerror(-rc));
		return rc;
	}
	if (rc < 0) {
		struct pollfd p = { .fd = fd, .events = POLLOUT };
		int err = 0;
		socklen_t el = sizeof(err);

		rc = poll(&p, 1, c->timeout_ms);
		if (rc == 0) {
			close(fd);
			set_err(c, "connect(%s:%d): timed out", host, port);
			return -ETIMEDOUT;
		}
		getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el);
		if (err) {
			close(fd);
			set_err(c, "connect(%s:%d): %s", host, port, strerror(err));
			return -err;
		}
	}
	c->fd = fd;
	conn_reg(fd, 1);
	return 0;
}

void wt_close(struct wt_conn *c)
{
	wt_tls_free(c->tls);
	c->tls = NULL;
	if (c->fd >= 0) {
		conn_reg(c->fd, 0);
		close(c->fd);
	}
	c->fd = -1;
	free(c->in);
	free(c->msg);
	c->in = c->msg = NULL;
	c->in_off = c->in_len = c->in_cap = c->msg_len = c->msg_cap = 0;
	c->msg_opcode = 0;
}

void wt_close_rst(struct wt_conn *c)
{
	struct linger l = { .l_onoff = 1, .l_linger = 0 };

	if (c->fd >= 0)
		setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
	wt_close(c);
}

static void in_reserve(struct wt_conn *c, size_t want)
{
	if (c->in_off && (c->in_off == c->in_len || c->in_cap - c->in_len < want)) {
		memmove(c->in, c->in + c->in_off, c->in_len - c->in_off);
		c->in_len -= c->in_off;
		c->in_off = 0;
	}
	if (c->in_cap - c->in_len < want) {
		size_t cap = c->in_cap ? c->in_cap : 65536;

		while (cap - c->in_len < want)
			cap *= 2;
		c->in = realloc(c->in, cap);
		if (!c->in)
			abort();
		c->in_cap = cap;
	}
}

/* One recv into the buffer: > 0 bytes, 0 would block, -EPIPE / -ECONNRESET. */
static int recv_some(struct wt_conn *c, size_t hint)
{
	ssize_t r;

	if (c->eof)
		return c->eof;
	in_reserve(c, hint > 65536 ? hint : 65536);
	if (c->tls) {
		r = wt_tls_recv(c->tls, c->in + c->in_len, c->in_cap - c->in_len);
		if (r > 0)
			c->in_len += (size_t)r;
		else if (r < 0)
			c->eof = (int)r;
		return (int)r;
	}
	do
		r = recv(c->fd, c->in + c->in_len, c->in_cap - c->in_len, 0);
	while (r < 0 && errno == EINTR);
	if (r > 0) {
		c->in_len += (size_t)r;
		return (int)r;
	}
	if (r == 0) {
		c->eof = -EPIPE;
		return c->eof;
	}
	if (errno == EAGAIN || errno == EWOULDBLOCK)
		return 0;
	c->eof = errno == ECONNRESET ? -ECONNRESET : -errno;
	return c->eof;
}

/* Waits until more bytes arrive (hint: how many are still wanted). */
static int fill(struct wt_conn *c, int64_t deadline, size_t hint)
{
	for (;;) {
		int r = recv_some(c, hint);

		if (r != 0)
			return r;
		struct pollfd p = { .fd = c->fd, .events = POLLIN };
		int left = ms_left(deadline);

		if (left == 0)
			return -ETIMEDOUT;
		if (poll(&p, 1, left) < 0 && errno != EINTR)
			return -errno;
	}
}

int wt_send_raw(struct wt_conn *c, const void *buf, size_t len)
{
	const uint8_t *p = buf;
	int64_t deadline = wt_now_ms() + c->timeout_ms;

	if (c->fd < 0) {
		set_err(c, "send on a closed connection");
		return -EBADF;
	}
	while (len) {
		int want_read = 0;
		ssize_t w;

		if (c->tls) {
			w = wt_tls_send(c->tls, p, len, &want_read);
			if (w < 0)
				errno = (int)-w, w = -1;
		} else {
			w = send(c->fd, p, len, MSG_NOSIGNAL);
		}
		if (w > 0) {
			p += w;
			len -= (size_t)w;
			deadline = wt_now_ms() + c->timeout_ms;
			continue;
		}
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
			int e = errno;

			set_err(c, "send: %s (%zu bytes unsent)", strerror(e), len);
			return e == EPIPE ? -EPIPE : e == ECONNRESET ? -ECONNRESET : -e;
		}
		/*
		 * Keep reading while the send buffer is full: the gateway echoes
		 * while we send, and would stall on us otherwise.
		 */
		struct pollfd pf = { .fd = c->fd, .events = (want_read ? 0 : POLLOUT) | (c->eof ? 0 : POLLIN) };
		int left = ms_left(deadline);

		if (left == 0) {
			set_err(c, "send: no progress for %d ms (%zu bytes unsent)",
				c->timeout_ms, len);
			return -ETIMEDOUT;
		}
		if (poll(&pf, 1, left) < 0 && errno != EINTR)
			return -errno;
		if (pf.revents & POLLIN)
			recv_some(c, 0);
	}
	return 0;
}

int wt_send_chunked(struct wt_conn *c, const void *buf, size_t len, size_t chunk, int pause_ms)
{
	const uint8_t *p = buf;

	if (!chunk)
		chunk = len ? len : 1;
	while (len) {
		size_t n = len < chunk ? len : chunk;
		int rc = wt_send_raw(c, p, n);

		if (rc < 0)
			return rc;
		p += n;
		len -= n;
		if (len && pause_ms > 0)
			wt_sleep_ms(pause_ms);
	}
	return 0;
}

/* ---- HTTP ---------------------------------------------------------------- */

void wt_key_new(char key[32])
{
	unsigned char raw[16];

	if (getrandom(raw, sizeof(raw), 0) != sizeof(raw))
		for (size_t i = 0; i < sizeof(raw); i++)
			raw[i] = (unsigned char)rand();
	EVP_EncodeBlock((unsigned char *)key, raw, sizeof(raw));
}

void wt_accept_for(const char *key, char out[32])
{
	char buf[128];
	unsigned char md[SHA_DIGEST_LENGTH];
	int n = snprintf(buf, sizeof(buf), "%s" WT_GUID, key);

	SHA1((unsigned char *)buf, (size_t)n, md);
	EVP_EncodeBlock((unsigned char *)out, md, sizeof(md));
}

int wt_request_build(struct wt_conn *c, char *out, size_t cap, const char *path, const char *extra)
{
	wt_key_new(c->key);
	int n = snprintf(out, cap,
			 "GET %s HTTP/1.1\r\n"
			 "Host: 127.0.0.1\r\n"
			 "Upgrade: websocket\r\n"
			 "Connection: Upgrade\r\n"
			 "Sec-WebSocket-Key: %s\r\n"
			 "Sec-WebSocket-Version: 13\r\n"
			 "%s\r\n",
			 path, c->key, extra ? extra : "");
	return n < 0 || (size_t)n >= cap ? -ENOSPC : n;
}

static const char *memmem_crlf2(const uint8_t *p, size_t n)
{
	if (!p || n < 4)
		return NULL;
	return memmem(p, n, "\r\n\r\n", 4);
}

const char *wt_http_header(const struct wt_http *r, const char *name, char *out, size_t cap)
{
	size_t nl = strlen(name);
	const char *line = strstr(r->head, "\r\n");

	while (line) {
		line += 2;
		const char *end = strstr(line, "\r\n");

		if (!end || end == line)
			return NULL;
		if ((size_t)(end - line) > nl && !strncasecmp(line, name, nl) && line[nl] == ':') {
			const char *v = line + nl + 1;
			const char *ve = end;

			while (v < ve && (*v == ' ' || *v == '\t'))
				v++;
			while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
				ve--;
			size_t n = (size_t)(ve - v) < cap - 1 ? (size_t)(ve - v) : cap - 1;
			memcpy(out, v, n);
			out[n] = 0;
			return out;
		}
		line = end;
	}
	return NULL;
}

static int token_in(const char *list, const char *tok)
{
	size_t tl = strlen(tok);

	for (const char *p = list; *p;) {
		while (*p == ' ' || *p == '\t' || *p == ',')
			p++;
		const char *e = p;
		while (*e && *e != ',')
			e++;
		const char *te = e;
		while (te > p && (te[-1] == ' ' || te[-1] == '\t'))
			te--;
		if ((size_t)(te - p) == tl && !strncasecmp(p, tok, tl))
			return 1;
		p = e;
	}
	return 0;
}

int wt_http_read(struct wt_conn *c, struct wt_http *r)
{
	int64_t deadline = wt_now_ms() + c->timeout_ms;
	const char *end;
	char cl[32];

	memset(r, 0, sizeof(*r));
	c->body_to_eof = 0;
	while (!(end = memmem_crlf2(c->in + c->in_off, c->in_len - c->in_off))) {
		if (c->in_len - c->in_off > sizeof(r->head) - 1) {
			set_err(c, "HTTP response head over %zu bytes", sizeof(r->head) - 1);
			return -EPROTO;
		}
		int rc = fill(c, deadline, 0);
		if (rc < 0) {
			char s[200];

			set_err(c, "reading HTTP response: %s after %zu bytes '%s'", errname(rc),
				c->in_len - c->in_off,
				show(c->in + c->in_off, c->in_len - c->in_off, 40, s, sizeof(s)));
			return rc;
		}
	}
	r->head_len = (size_t)((const uint8_t *)end + 4 - (c->in + c->in_off));
	if (r->head_len > sizeof(r->head) - 1) {
		set_err(c, "HTTP response head over %zu bytes", sizeof(r->head) - 1);
		return -EPROTO;
	}
	memcpy(r->head, c->in + c->in_off, r->head_len);
	r->head[r->head_len] = 0;
	c->in_off += r->head_len;
	if (strncmp(r->head, "HTTP/1.", 7) || r->head[8] != ' ' ||
	    sscanf(r->head + 9, "%3d", &r->status) != 1 || r->status < 100) {
		char s[200];

		set_err(c, "not an HTTP response: '%s'",
			show((uint8_t *)r->head, r->head_len, 60, s, sizeof(s)));
		return -EPROTO;
	}
	if (r->status == 101)
		return r->status;
	if (wt_http_header(r, "Content-Length", cl, sizeof(cl))) {
		size_t body = strtoul(cl, NULL, 10);

		while (c->in_len - c->in_off < body) {
			int rc = fill(c, deadline, body);
			if (rc < 0) {
				set_err(c, "reading HTTP %d body of %zu bytes: %s", r->status,
					body, errname(rc));
				return rc;
			}
		}
		c->in_off += body;
	} else {
		c->body_to_eof = 1;
	}
	return r->status;
}

int wt_http_check_upgrade(struct wt_conn *c, const struct wt_http *r)
{
	char v[256], want[32];

	if (r->status != 101) {
		set_err(c, "expected 101, got %d", r->status);
		return -EPROTO;
	}
	if (!wt_http_header(r, "Upgrade", v, sizeof(v)) || !token_in(v, "websocket")) {
		set_err(c, "101 without 'Upgrade: websocket'");
		return -EPROTO;
	}
	if (!wt_http_header(r, "Connection", v, sizeof(v)) || !token_in(v, "upgrade")) {
		set_err(c, "101 without 'Connection: upgrade'");
		return -EPROTO;
	}
	wt_accept_for(c->key, want);
	if (!wt_http_header(r, "Sec-WebSocket-Accept", v, sizeof(v)) || strcmp(v, want)) {
		set_err(c, "101 with Sec-WebSocket-Accept '%s', want '%s'",
			wt_http_header(r, "Sec-WebSocket-Accept", v, sizeof(v)) ? v : "(none)", want);
		return -EPROTO;
	}
	return 0;
}

int wt_open(struct wt_conn *c, const char *host, int port, const char *path)
{
	char req[1024];
	struct wt_http r;
	int rc = wt_connect(c, host, port);

	if (rc < 0)
		return rc;
	int n = wt_request_build(c, req, sizeof(req), path, NULL);
	if (n < 0)
		return n;
	rc = wt_send_raw(c, req, (size_t)n);
	if (rc < 0)
		return rc;
	rc = wt_http_read(c, &r);
	if (rc < 0)
		return rc;
	return wt_http_check_upgrade(c, &r);
}

/* ---- frames -------------------------------------------------------------- */

uint8_t *wt_frame_encode(const struct wt_frame_spec *s, size_t *out_len)
{
	uint64_t alen = s->len_override ? s->len_override : s->len;
	int lb = s->len_bytes;
	uint8_t *b, key[4];
	size_t h = 0;

	if (!lb)
		lb = alen < 126 ? 1 : alen < 65536 ? 2 : 8;
	b = malloc(14 + s->len);
	if (!b)
		abort();
	b[h++] = (uint8_t)((s->fin ? 0x80 : 0) | ((s->rsv & 7) << 4) | (s->opcode & 15));
	uint8_t mbit = s->unmasked ? 0 : 0x80;
	if (lb == 1) {
		b[h++] = (uint8_t)(mbit | (alen & 0x7f));
	} else if (lb == 2) {
		b[h++] = mbit | 126;
		b[h++] = (uint8_t)(alen >> 8);
		b[h++] = (uint8_t)alen;
	} else {
		b[h++] = mbit | 127;
		for (int i = 7; i >= 0; i--)
			b[h++] = (uint8_t)(alen >> (8 * i));
	}
	if (!s->unmasked) {
		if (getrandom(key, 4, 0) != 4)
			memcpy(key, "\x37\xfa\x21\x3d", 4);
		memcpy(b + h, key, 4);
		h += 4;
	}
	const uint8_t *p = s->payload;
	for (size_t i = 0; i < s->len; i++)
		b[h + i] = s->unmasked ? p[i] : p[i] ^ key[i & 3];
	*out_len = h + s->len;
	return b;
}

int wt_send_spec(struct wt_conn *c, const struct wt_frame_spec *s)
{
	size_t n;
	uint8_t *b = wt_frame_encode(s, &n);
	int rc = wt_send_raw(c, b, n);

	free(b);
	return rc;
}

int wt_send_frame(struct wt_conn *c, int opcode, int fin, const void *p, size_t len)
{
	struct wt_frame_spec s = { .opcode = opcode, .fin = fin, .payload = p, .len = len };

	return wt_send_spec(c, &s);
}

int wt_send_close(struct wt_conn *c, int code, const void *reason, size_t reason_len)
{
	uint8_t buf[2 + 256];
	size_t n = 0;

	if (code >= 0) {
		buf[0] = (uint8_t)(code >> 8);
		buf[1] = (uint8_t)code;
		n = 2;
		if (reason_len > sizeof(buf) - 2)
			reason_len = sizeof(buf) - 2;
		if (reason_len)
			memcpy(buf + 2, reason, reason_len);
		n += reason_len;
	}
	return wt_send_frame(c, WT_CLOSE, 1, buf, n);
}

void wt_frame_free(struct wt_frame *f)
{
	free(f->payload);
	f->payload = NULL;
	f->len = 0;
}

int wt_read_frame(struct wt_conn *c, struct wt_frame *f, int timeout_ms)
{
	int64_t deadline = wt_now_ms() + (timeout_ms < 0 ? c->timeout_ms : timeout_ms);
	size_t need = 2;

	memset(f, 0, sizeof(*f));
	for (;;) {
		const uint8_t *p = c->in + c->in_off;
		size_t avail = c->in_len - c->in_off;

		if (avail >= 2) {
			size_t h = 2;
			uint64_t len = p[1] & 0x7f;

			if (p[1] & 0x80) {
				set_err(c, "server frame %s is masked (RFC 6455 5.1 forbids it)",
					opname(p[0] & 15));
				return -EPROTO;
			}
			if (len == 126)
				h += 2;
			else if (len == 127)
				h += 8;
			if (avail >= h) {
				if (len == 126) {
					len = (uint64_t)p[2] << 8 | p[3];
				} else if (len == 127) {
					len = 0;
					for (int i = 0; i < 8; i++)
						len = len << 8 | p[2 + i];
				}
				if (len > WT_MAX_FRAME) {
					set_err(c, "server frame announces %llu bytes",
						(unsigned long long)len);
					return -EPROTO;
				}
				need = h + (size_t)len;
				if (avail >= need) {
					f->fin = !!(p[0] & 0x80);
					f->rsv = (p[0] >> 4) & 7;
					f->opcode = p[0] & 15;
					f->len = (size_t)len;
					f->payload = malloc(f->len ? f->len : 1);
					if (!f->payload)
						abort();
					memcpy(f->payload, p + h, f->len);
					c->in_off += need;
					return 0;
				}
			} else {
				need = h;
			}
		}
		int rc = fill(c, deadline, need - avail);
		if (rc < 0) {
			set_err(c, "waiting for a frame: %s (%zu of %zu bytes of the next frame buffered)",
				errname(rc), avail, need);
			return rc;
		}
	}
}

int wt_read_message(struct wt_conn *c, struct wt_frame *m, int timeout_ms)
{
	int64_t deadline = wt_now_ms() + (timeout_ms < 0 ? c->timeout_ms : timeout_ms);

	for (;;) {
		struct wt_frame f;
		int rc = wt_read_frame(c, &f, ms_left(deadline));

		if (rc < 0)
			return rc;
		if (f.opcode >= 8) {
			*m = f;
			return 0;
		}
		if (f.opcode != WT_CONT && f.opcode != WT_TEXT && f.opcode != WT_BINARY) {
			set_err(c, "server sent reserved opcode %d", f.opcode);
			wt_frame_free(&f);
			return -EPROTO;
		}
		if (f.opcode != WT_CONT && c->msg_opcode) {
			set_err(c, "server started a %s message inside a %s message",
				opname(f.opcode), opname(c->msg_opcode));
			wt_frame_free(&f);
			return -EPROTO;
		}
		if (f.opcode == WT_CONT && !c->msg_opcode) {
			set_err(c, "server sent a continuation frame without a message");
			wt_frame_free(&f);
			return -EPROTO;
		}
		if (f.opcode != WT_CONT && f.fin) {
			*m = f;
			return 0;
		}
		if (f.opcode != WT_CONT)
			c->msg_opcode = f.opcode;
		if (c->msg_cap - c->msg_len < f.len) {
			size_t cap = c->msg_cap ? c->msg_cap : 4096;

			while (cap - c->msg_len < f.len)
				cap *= 2;
			c->msg = realloc(c->msg, cap);
			if (!c->msg)
				abort();
			c->msg_cap = cap;
		}
		if (f.len)
			memcpy(c->msg + c->msg_len, f.payload, f.len);
		c->msg_len += f.len;
		if (f.fin) {
			free(f.payload);
			memset(m, 0, sizeof(*m));
			m->fin = 1;
			m->opcode = c->msg_opcode;
			m->len = c->msg_len;
			m->payload = malloc(m->len ? m->len : 1);
			if (!m->payload)
				abort();
			if (m->len)
				memcpy(m->payload, c->msg, m->len);
			c->msg_len = 0;
			c->msg_opcode = 0;
			return 0;
		}
		wt_frame_free(&f);
	}
}

int wt_close_code(const struct wt_frame *f)
{
	if (f->len == 0)
		return WT_CLOSE_EMPTY;
	if (f->len == 1)
		return -1;
	return f->payload[0] << 8 | f->payload[1];
}

int wt_wait_eof(struct wt_conn *c, int timeout_ms)
{
	int64_t deadline = wt_now_ms() + (timeout_ms < 0 ? c->timeout_ms : timeout_ms);

	for (;;) {
		size_t avail = c->in_len - c->in_off;

		if (avail && c->body_to_eof) {
			c->in_off = c->in_len;
			avail = 0;
		}
		if (avail) {
			char s[200];

			set_err(c, "expected TCP EOF, got %zu more bytes '%s'", avail,
				show(c->in + c->in_off, avail, 40, s, sizeof(s)));
			return -EPROTO;
		}
		int rc = fill(c, deadline, 0);
		if (rc == -EPIPE || rc == -ECONNRESET)
			return 0;
		if (rc < 0) {
			set_err(c, "expected TCP EOF: %s", errname(rc));
			return rc;
		}
	}
}

/* ---- UTF-8 and payloads ----------------------------------------------------- */

int wt_utf8_valid(const uint8_t *s, size_t n)
{
	size_t i = 0;

	while (i < n) {
		uint8_t b = s[i];
		uint32_t cp;
		int k;

		if (b < 0x80) {
			i++;
			continue;
		} else if (b >= 0xc2 && b <= 0xdf) {
			k = 1;
			cp = b & 0x1f;
		} else if (b >= 0xe0 && b <= 0xef) {
			k = 2;
			cp = b & 0x0f;
		} else if (b >= 0xf0 && b <= 0xf4) {
			k = 3;
			cp = b & 0x07;
		} else {
			return 0;
		}
		if (i + (size_t)k >= n)
			return 0;
		for (int j = 1; j <= k; j++) {
			if ((s[i + j] & 0xc0) != 0x80)
				return 0;
			cp = cp << 6 | (s[i + j] & 0x3f);
		}
		if ((k == 2 && cp < 0x800) || (k == 3 && cp < 0x10000) || cp > 0x10ffff ||
		    (cp >= 0xd800 && cp <= 0xdfff))
			return 0;
		i += (size_t)k + 1;
	}
	return 1;
}

void wt_fill(void *buf, size_t len, unsigned seed, int text)
{
	uint8_t *p = buf;
	uint32_t x = seed * 2654435761u + 1;

	for (size_t i = 0; i < len; i++) {
		x ^= x << 13;
		x ^= x >> 17;
		x ^= x << 5;
		p[i] = text ? (uint8_t)(' ' + x % 95) : (uint8_t)x;
	}
}

/* ---- assertions ------------------------------------------------------------ */

/*
 * Check's fork mode ends a failed test with _exit(): no atexit handler runs.
 * So before failing, show each running gateway's log tail (the other half of
 * the story) and stop it, and remove its files.
 */
static void fail_cleanup(void)
{
	pid_t me = getpid();

	for (size_t i = 0; i < sizeof(gw_reg) / sizeof(gw_reg[0]); i++) {
		struct gw_entry *e = &gw_reg[i];

		if (!e->pid || e->owner != me)
			continue;
		kill(e->pid, SIGKILL);
		waitpid(e->pid, NULL, 0);
		dump_log(e->log_path, 30);
		gw_files_remove(e->dir, e->log_path);
		e->pid = 0;
	}
}

static void wt_fail(const char *file, int line, const char *fmt, ...)
	__attribute__((format(printf, 3, 4), noreturn));
static void wt_fail(const char *file, int line, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	fail_cleanup();
	_ck_assert_failed(file, line, "wstest", "%s", msg);
}

void wt__expect_ok(const char *file, int line, struct wt_conn *c, int rc, const char *what)
{
	if (rc < 0)
		wt_fail(file, line, "%s: %s (%s)", what, errname(rc),
				  c ? c->err : "");
	_mark_point(file, line);
}

void wt__expect_http(const char *file, int line, struct wt_conn *c, struct wt_http *r, int status)
{
	struct wt_http local;
	char s[200];

	if (!r)
		r = &local;
	int rc = wt_http_read(c, r);
	if (rc < 0)
		wt_fail(file, line, "expected HTTP %d: %s", status, c->err);
	if (rc != status)
		wt_fail(file, line, "expected HTTP %d, got '%s'", status,
				  show((uint8_t *)r->head, r->head_len, 120, s, sizeof(s)));
	if (status == 101 && wt_http_check_upgrade(c, r) < 0)
		wt_fail(file, line, "bad 101: %s", c->err);
	_mark_point(file, line);
}

void wt__expect_open(const char *file, int line, struct wt_conn *c, const char *host, int port,
		     const char *path)
{
	int rc = wt_open(c, host, port, path);

	if (rc < 0)
		wt_fail(file, line, "WebSocket to %s:%d%s: %s (%s)", host, port,
				  path, errname(rc), c->err);
	_mark_point(file, line);
}

static void describe_frame(const struct wt_frame *f, char *out, size_t cap)
{
	char s[200];

	if (f->opcode == WT_CLOSE)
		snprintf(out, cap, "CLOSE code %d reason '%s'", wt_close_code(f),
			 show(f->payload + (f->len > 2 ? 2 : f->len), f->len > 2 ? f->len - 2 : 0,
			      40, s, sizeof(s)));
	else
		snprintf(out, cap, "%s%s%s len %zu '%s'", opname(f->opcode),
			 f->fin ? "" : " (no FIN)", f->rsv ? " (RSV set)" : "", f->len,
			 show(f->payload, f->len, 40, s, sizeof(s)));
}

void wt__expect_message(const char *file, int line, struct wt_conn *c, int opcode,
			const void *p, size_t len, int timeout_ms)
{
	struct wt_frame m;
	char d[400];
	int rc = wt_read_message(c, &m, timeout_ms);

	if (rc < 0)
		wt_fail(file, line, "expected %s len %zu: %s",
				  opname(opcode), len, c->err);
	if (m.opcode != opcode || m.len != len || m.rsv ||
	    (len && memcmp(m.payload, p, len))) {
		size_t diff = 0;

		while (diff < len && diff < m.len && m.payload[diff] == ((const uint8_t *)p)[diff])
			diff++;
		describe_frame(&m, d, sizeof(d));
		wt_frame_free(&m);
		wt_fail(file, line, "expected %s len %zu, got %s (first difference at byte %zu)",
				  opname(opcode), len, d, diff);
	}
	wt_frame_free(&m);
	_mark_point(file, line);
}

void wt__expect_close(const char *file, int line, struct wt_conn *c, const int *codes,
		      int ncodes, int timeout_ms)
{
	struct wt_frame f;
	char want[160], d[400];
	size_t o = 0;
	int rc = wt_read_frame(c, &f, timeout_ms);

	want[0] = 0;
	for (int i = 0; i < ncodes && o + 12 < sizeof(want); i++)
		o += (size_t)snprintf(want + o, sizeof(want) - o, "%s%d", i ? "|" : "", codes[i]);
	if (rc < 0)
		wt_fail(file, line, "expected CLOSE %s: %s", want, c->err);
	describe_frame(&f, d, sizeof(d));
	if (f.opcode != WT_CLOSE || !f.fin || f.rsv) {
		wt_frame_free(&f);
		wt_fail(file, line, "expected CLOSE %s, got %s", want, d);
	}
	int code = wt_close_code(&f);
	int ok = 0;
	for (int i = 0; i < ncodes; i++)
		ok |= codes[i] == code;
	int reason_ok = f.len <= 2 || wt_utf8_valid(f.payload + 2, f.len - 2);
	wt_frame_free(&f);
	if (!ok)
		wt_fail(file, line, "expected CLOSE %s, got %s", want, d);
	if (!reason_ok)
		wt_fail(file, line, "close reason is not UTF-8: %s", d);
	_mark_point(file, line);
}

void wt__expect_eof(const char *file, int line, struct wt_conn *c, int timeout_ms)
{
	if (wt_wait_eof(c, timeout_ms) < 0)
		wt_fail(file, line, "%s", c->err);
	_mark_point(file, line);
}

void wt__gw_start(const char *file, int line, struct wt_gw *gw, const char *const *args)
{
	int rc = wt_gw_startv(gw, args);

	if (rc < 0)
		wt_fail(file, line, "starting the gateway failed: %s",
			rc == -ESRCH ? "it exited or did not log 'listening on' (its log is above)"
				     : strerror(-rc));
	_mark_point(file, line);
}

void wt__gw_stop(const char *file, int line, struct wt_gw *gw)
{
	char log_path[96];
	int st;

	snprintf(log_path, sizeof(log_path), "%s", gw->log_path);
	wt_close_all();
	/* Bounded: the drain waits up to --close-timeout (5 s) for clients. */
	if (gw->pid) {
		kill(gw->pid, SIGTERM);
		if (wt_gw_wait(gw, 10000) < 0) {
			gw_kill(gw);
			dump_log(log_path, 40);
			wt_gw_stop(gw, 0);
			wt_fail(file, line, "gateway did not exit within 10 s of SIGTERM (killed)");
		}
	}
	st = gw->status;
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
		dump_log(log_path, 40);
		wt_gw_stop(gw, 0);
		if (WIFSIGNALED(st))
			wt_fail(file, line, "gateway died of signal %d",
					  WTERMSIG(st));
		wt_fail(file, line, "gateway exited with status %d",
				  WEXITSTATUS(st));
	}
	wt_gw_stop(gw, 0);
	_mark_point(file, line);
}

/* ---- the admin endpoint -------------------------------------------------- */

int wt_gw_admin_port(const struct wt_gw *gw)
{
	char line[512];
	int port = 0;
	FILE *f = fopen(gw->log_path, "r");

	while (f && fgets(line, sizeof(line), f))
		if (strstr(line, "admin endpoint on port "))
			port = atoi(strstr(line, "on port ") + 8);
	if (f)
		fclose(f);
	return port;
}

void wt_http_get(int port, const char *path, char *out, size_t cap)
{
	struct wt_conn c;
	char req[128];
	size_t len = 0;

	WT_OK(&c, wt_connect(&c, "127.0.0.1", port));
	snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: x\r\n\r\n", path);
	WT_OK(&c, wt_send_raw(&c, req, strlen(req)));
	int64_t deadline = wt_now_ms() + 3000;
	while (len < cap - 1 && wt_now_ms() < deadline) {
		struct pollfd pf = { .fd = c.fd, .events = POLLIN };
		if (poll(&pf, 1, 100) <= 0)
			continue;
		ssize_t r = read(c.fd, out + len, cap - 1 - len);
		if (r <= 0)
			break;
		len += (size_t)r;
	}
	out[len] = 0;
	wt_close(&c);
}

double wt_metric(const char *text, const char *series)
{
	size_t n = strlen(series);

	for (const char *p = text; (p = strstr(p, series)); p += n)
		if ((p == text || p[-1] == '\n') && p[n] == ' ')
			return strtod(p + n + 1, NULL);
	return -1;
}
