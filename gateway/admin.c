#include "gateway/admin.h"
#include "gateway/conn.h"
#include "gateway/log.h"
#include "gateway/pool.h"
#include "gateway/server.h"
#include "gateway/stats.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#define ADMIN_CONNS 16
#define ADMIN_REQ_MAX 1024
#define ADMIN_TIMEOUT_MS 5000

struct admin_conn {
	uint8_t kind; /* EP_ADMIN */
	uint8_t listener;
	int fd;
	uint32_t since;
	size_t len;
	char req[ADMIN_REQ_MAX];
};

static struct {
	struct admin_conn lsn;
	struct admin_conn conns[ADMIN_CONNS];
	int epfd;
	int draining;
} A = { .lsn.fd = -1 };

int admin_init(const struct cfg_listen *l, int epfd)
{
	A.epfd = epfd;
	for (int i = 0; i < ADMIN_CONNS; i++)
		A.conns[i].fd = -1;
	int fd = socket(l->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	int one = 1;
	if (fd >= 0)
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (fd < 0 || bind(fd, (const struct sockaddr *)&l->addr, l->len) < 0 || listen(fd, 64) < 0) {
		int err = errno;
		log_error(err, "admin endpoint on %s", l->text);
		if (fd >= 0)
			close(fd);
		return -err;
	}
	A.lsn.kind = EP_ADMIN;
	A.lsn.listener = 1;
	A.lsn.fd = fd;
	struct epoll_event ev = { .events = EPOLLIN, .data.ptr = &A.lsn };
	if (epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
		int err = errno;
		log_error(err, "epoll_ctl(ADD, admin listener)");
		return -err;
	}
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	getsockname(fd, (struct sockaddr *)&ss, &len);
	/* Port 0 picks a free port: the log names the real one. */
	unsigned port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
						      : ((struct sockaddr_in *)&ss)->sin_port);
	log_info("admin endpoint on port %u of %s (/metrics, /healthz)", port, l->text);
	return 0;
}

static void drop(struct admin_conn *a)
{
	close(a->fd);
	a->fd = -1;
}

static void respond(struct admin_conn *a)
{
	static char body[8192];
	char head[256];
	int status = 200, n;
	const char *type = "text/plain; charset=utf-8";
	if (strncmp(a->req, "GET /metrics ", 13) == 0 || strncmp(a->req, "GET /metrics?", 13) == 0) {
		n = stats_format(body, sizeof(body), conn_count(), pool_live_workers());
		type = "text/plain; version=0.0.4; charset=utf-8";
		if (n < 0)
			status = 500, n = snprintf(body, sizeof(body), "metrics do not fit\n");
	} else if (strncmp(a->req, "GET /healthz ", 13) == 0) {
		status = A.draining ? 503 : 200;
		n = snprintf(body, sizeof(body), A.draining ? "draining\n" : "ok\n");
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

static void on_accept(void)
{
	for (;;) {
		int fd = accept4(A.lsn.fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN)
				log_warn(errno, "accept4 on the admin endpoint");
			return;
		}
		struct admin_conn *slot = NULL;
		for (int i = 0; i < ADMIN_CONNS && !slot; i++)
			if (A.conns[i].fd < 0)
				slot = &A.conns[i];
		if (!slot) {
			log_warn(0, "admin endpoint: %d requests pending already, refusing one", ADMIN_CONNS);
			close(fd);
			continue;
		}
		slot->kind = EP_ADMIN;
		slot->listener = 0;
		slot->fd = fd;
		slot->len = 0;
		slot->since = srv_now();
		struct epoll_event ev = { .events = EPOLLIN, .data.ptr = slot };
		if (epoll_ctl(A.epfd, EPOLL_CTL_ADD, fd, &ev) < 0)
			drop(slot);
	}
}

void admin_on_event(void *ptr)
{
	struct admin_conn *a = ptr;
	if (a->listener) {
		on_accept();
		return;
	}
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
		respond(a);
}

void admin_set_draining(void)
{
	A.draining = 1;
}

void admin_tick(uint32_t now)
{
	for (int i = 0; i < ADMIN_CONNS; i++)
		if (A.conns[i].fd >= 0 && now - A.conns[i].since > ADMIN_TIMEOUT_MS)
			drop(&A.conns[i]);
}

void admin_shutdown(void)
{
	for (int i = 0; i < ADMIN_CONNS; i++)
		if (A.conns[i].fd >= 0)
			drop(&A.conns[i]);
	if (A.lsn.fd >= 0)
		close(A.lsn.fd);
	A.lsn.fd = -1;
}
