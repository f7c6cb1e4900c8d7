#include "gateway/admin.h"
#include "gateway/log.h"
#include "gateway/stats.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <stdlib.h>
#include <unistd.h>

#define ADMIN_CONNS 16
#define ADMIN_REQ_MAX 1024
#define ADMIN_TIMEOUT_MS 5000

struct admin_conn {
	struct loop_src src;
	struct admin *owner;
	int fd;
	uint32_t since;
	size_t len;
	char req[ADMIN_REQ_MAX];
};

struct admin {
	struct admin_conn lsn;
	struct admin_conn conns[ADMIN_CONNS];
	struct loop *loop;
	admin_gauges_fn *gauges;
	void *arg;
	int draining;
};

static void on_listener(struct loop_src *src, uint32_t events);
static void on_conn(struct loop_src *src, uint32_t events);
static void tick(void *arg);

int admin_new(struct loop *lp, const struct cfg_listen *l, admin_gauges_fn *gauges, void *arg,
	      struct admin **out)
{
	struct admin *A = calloc(1, sizeof(*A));
	if (!A)
		return -ENOMEM;
	A->loop = lp;
	A->gauges = gauges;
	A->arg = arg;
	A->lsn.fd = -1;
	for (int i = 0; i < ADMIN_CONNS; i++)
		A->conns[i].fd = -1;
	int fd = socket(l->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	int one = 1;
	if (fd >= 0)
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (fd < 0 || bind(fd, (const struct sockaddr *)&l->addr, l->len) < 0 || listen(fd, 64) < 0) {
		int err = errno;
		log_error(err, "admin endpoint on %s", l->text);
		if (fd >= 0)
			close(fd);
		free(A);
		return -err;
	}
	A->lsn.owner = A;
	A->lsn.fd = fd;
	A->lsn.src.fn = on_listener;
	int rc = loop_add(lp, fd, EPOLLIN, &A->lsn.src);
	if (rc) {
		admin_free(A);
		return rc;
	}
	struct loop_hooks h = { .arg = A, .tick = tick };
	loop_add_hooks(lp, &h);
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	getsockname(fd, (struct sockaddr *)&ss, &len);
	/* Port 0 picks a free port: the log names the real one. */
	unsigned port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
						      : ((struct sockaddr_in *)&ss)->sin_port);
	log_info("admin endpoint on port %u of %s (/metrics, /healthz)", port, l->text);
	*out = A;
	return 0;
}

static void drop(struct admin_conn *a)
{
	close(a->fd);
	a->fd = -1;
}

static void respond(struct admin *A, struct admin_conn *a)
{
	static char body[16384]; /* the metrics: about 7.3 KiB with the cluster's */
	char head[256];
	int status = 200, n;
	const char *type = "text/plain; charset=utf-8";
	if (strncmp(a->req, "GET /metrics ", 13) == 0 || strncmp(a->req, "GET /metrics?", 13) == 0) {
		struct admin_gauges g = { 0, 0 };
		A->gauges(A->arg, &g);
		n = stats_format(body, sizeof(body), g.conns, g.workers);
		type = "text/plain; version=0.0.4; charset=utf-8";
		if (n < 0)
			status = 500, n = snprintf(body, sizeof(body), "metrics do not fit\n");
	} else if (strncmp(a->req, "GET /healthz ", 13) == 0) {
		status = A->draining ? 503 : 200;
		n = snprintf(body, sizeof(body), A->draining ? "draining\n" : "ok\n");
	} else {
		status = 404;
		n = snprintf(body, sizeof(body), "GET /metrics or /healthz\n");
	}
	int hl = snprintf(head, sizeof(head),
			  "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %d\r\nConnection: close\r\n\r\n",
			  status, status == 200 ? "OK" : status == 404 ? "Not Found" : "Service Unavailable",
			  type, n);
	struct iovec iov[2] = { { head, (size_t)hl }, { body, (size_t)n } };
	/* A fresh socket's send buffer takes a few KiB at once; a reader that cannot take
	 * even that gets a truncated answer rather than a stuck loop. */
	ssize_t w = writev(a->fd, iov, 2);
	(void)w;
	shutdown(a->fd, SHUT_WR);
	drop(a);
}

static void on_listener(struct loop_src *src, uint32_t events)
{
	struct admin *A = ((struct admin_conn *)src)->owner;
	(void)events;
	for (;;) {
		int fd = accept4(A->lsn.fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN)
				log_warn(errno, "accept4 on the admin endpoint");
			return;
		}
		struct admin_conn *slot = NULL;
		for (int i = 0; i < ADMIN_CONNS && !slot; i++)
			if (A->conns[i].fd < 0)
				slot = &A->conns[i];
		if (!slot) {
			log_warn(0, "admin endpoint: %d requests pending already, refusing one", ADMIN_CONNS);
			close(fd);
			continue;
		}
		slot->owner = A;
		slot->fd = fd;
		slot->len = 0;
		slot->since = loop_now(A->loop);
		slot->src.fn = on_conn;
		if (loop_add(A->loop, fd, EPOLLIN, &slot->src))
			drop(slot);
	}
}

static void on_conn(struct loop_src *src, uint32_t events)
{
	struct admin_conn *a = (struct admin_conn *)src;
	(void)events;
	if (a->fd < 0)
		return; /* closed earlier in this batch */
	ssize_t r = read(a->fd, a->req + a->len, sizeof(a->req) - 1 - a->len);
	if (r < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (r <= 0) {
		drop(a);
		return;
	}
	a->len += (size_t)r;
	a->req[a->len] = 0;
	if (strstr(a->req, "\r\n\r\n") || a->len == sizeof(a->req) - 1)
		respond(a->owner, a);
}

void admin_set_draining(struct admin *A)
{
	A->draining = 1;
}

static void tick(void *arg)
{
	struct admin *A = arg;
	uint32_t now = loop_now(A->loop);
	for (int i = 0; i < ADMIN_CONNS; i++)
		if (A->conns[i].fd >= 0 && now - A->conns[i].since > ADMIN_TIMEOUT_MS)
			drop(&A->conns[i]);
}

void admin_free(struct admin *A)
{
	if (!A)
		return;
	for (int i = 0; i < ADMIN_CONNS; i++)
		if (A->conns[i].fd >= 0)
			drop(&A->conns[i]);
	if (A->lsn.fd >= 0)
		close(A->lsn.fd);
	free(A);
}
