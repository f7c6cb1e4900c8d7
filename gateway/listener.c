#include "gateway/listener.h"
#include "gateway/log.h"
#include "gateway/stats.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

/* The pause at the fd limit doubles from the first to the last while it lasts. */
#define PAUSE_FIRST_MS 50
#define PAUSE_MAX_MS 1000
/* Connections shed per retry at most, so one retry never holds the loop for long. */
#define SHED_MAX 1024

struct lsn_sock {
	struct loop_src src;
	struct lsn *owner;
	int fd;
	int tls; /* its clients speak TLS */
	char text[80];
};

struct lsn {
	struct loop *loop;
	lsn_accept_fn *fn;
	void *arg;
	struct lsn_sock socks[CFG_MAX_LISTEN];
	int n;
	int reserve_fd;   /* given up to shed connections at the fd limit */
	int at_limit;     /* an episode at the fd limit: from the first EMFILE to an accept */
	int paused;       /* not accepting until resume_at */
	uint32_t resume_at, pause_ms, paused_since;
	unsigned long shed; /* connections shed in this episode */
};

static void shed_pending(struct lsn *s, struct lsn_sock *k)
{
	if (s->reserve_fd < 0)
		return;
	close(s->reserve_fd);
	for (int i = 0; i < SHED_MAX; i++) {
		int fd = accept4(k->fd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0)
			break;
		close(fd);
		s->shed++;
	}
	s->reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
}

static void set_events(struct lsn *s, uint32_t events)
{
	for (int i = 0; i < s->n; i++)
		loop_mod(s->loop, s->socks[i].fd, events, &s->socks[i].src);
}

static void pause_accepting(struct lsn *s, struct lsn_sock *k, int err)
{
	uint32_t now = loop_now(s->loop);
	if (!s->at_limit) {
		s->at_limit = 1;
		s->paused_since = now;
		s->pause_ms = PAUSE_FIRST_MS;
		s->shed = 0;
		stats.accept_pauses++;
		log_warn(err, "accept4 on %s: at the file descriptor limit; pausing accepts, shedding waiting connections",
			 k->text);
	} else if (s->pause_ms < PAUSE_MAX_MS) {
		s->pause_ms *= 2;
	}
	unsigned long before = s->shed;
	for (int i = 0; i < s->n; i++)
		shed_pending(s, &s->socks[i]);
	stats.accept_shed += s->shed - before;
	s->paused = 1;
	s->resume_at = now + s->pause_ms;
	/* Disarmed: a connection arriving now must not wake the loop until resume_at. */
	set_events(s, 0);
}

static void on_accept(struct loop_src *src, uint32_t events);

static void resume_accepting(struct lsn *s)
{
	s->paused = 0;
	set_events(s, EPOLLIN | EPOLLET);
	/* Re-arming reports what is pending now, but accept at once: the retry is the point. */
	for (int i = 0; i < s->n && !s->paused; i++)
		on_accept(&s->socks[i].src, EPOLLIN);
}

static void on_accept(struct loop_src *src, uint32_t events)
{
	struct lsn_sock *k = (struct lsn_sock *)src;
	struct lsn *s = k->owner;
	(void)events;
	if (s->paused)
		return;
	for (;;) {
		struct sockaddr_storage ss;
		socklen_t sl = sizeof(ss);
		int fd = accept4(k->fd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			switch (errno) {
			case EINTR:
				continue;
			case EAGAIN:
				return;
			case EMFILE:
			case ENFILE:
				pause_accepting(s, k, errno);
				return;
			case ECONNABORTED:
			case EPROTO:
				log_debug("accept4 on %s: %s", k->text, strerror(errno));
				continue;
			default:
				/* ENOBUFS, ENOMEM: the kernel is short; retry on the next edge. */
				log_error(errno, "accept4 on %s", k->text);
				return;
			}
		}
		if (s->at_limit) {
			s->at_limit = 0;
			log_info("accepting again after %u ms at the file descriptor limit; %lu connections shed",
				 loop_now(s->loop) - s->paused_since, s->shed);
		}
		int one = 1;
		/* Small frames are the norm: Nagle would hold each echo for an ACK. */
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		stats.accepted++;
		s->fn(s->arg, fd, (const struct sockaddr *)&ss, k->tls);
	}
}

static int poll_pause(void *arg)
{
	struct lsn *s = arg;
	if (s->paused && (int32_t)(loop_now(s->loop) - s->resume_at) >= 0)
		resume_accepting(s);
	return 0;
}

static int pause_timeout(void *arg)
{
	struct lsn *s = arg;
	if (!s->paused)
		return -1;
	int32_t left = (int32_t)(s->resume_at - loop_now(s->loop));
	return left > 0 ? left : 0;
}

static int open_one(struct lsn *s, const struct cfg_listen *cl, struct lsn_sock *k)
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
		snprintf(k->text, sizeof(k->text), "[%s]:%u", host, ntohs(a->sin6_port));
	} else {
		const struct sockaddr_in *a = (const struct sockaddr_in *)&ss;
		inet_ntop(AF_INET, &a->sin_addr, host, sizeof(host));
		snprintf(k->text, sizeof(k->text), "%s:%u", host, ntohs(a->sin_port));
	}
	k->owner = s;
	k->fd = fd;
	k->tls = cl->tls;
	k->src.fn = on_accept;
	int rc = loop_add(s->loop, fd, EPOLLIN | EPOLLET, &k->src);
	if (rc) {
		close(fd);
		return rc;
	}
	log_info("listening on %s%s", k->text, k->tls ? " (TLS)" : "");
	return 0;
}

int lsn_open(struct loop *l, const struct gw_config *cfg, lsn_accept_fn *fn, void *arg,
	     struct lsn **out)
{
	struct lsn *s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->loop = l;
	s->fn = fn;
	s->arg = arg;
	s->reserve_fd = -1;
	for (int i = 0; i < cfg->n_listen; i++) {
		int rc = open_one(s, &cfg->listen[i], &s->socks[s->n]);
		if (rc) {
			lsn_free(s);
			return rc;
		}
		s->n++;
	}
	s->reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	struct loop_hooks h = { .arg = s, .poll = poll_pause, .timeout_ms = pause_timeout };
	loop_add_hooks(l, &h);
	*out = s;
	return 0;
}

void lsn_close(struct lsn *s)
{
	for (int i = 0; i < s->n; i++) {
		loop_del(s->loop, s->socks[i].fd);
		close(s->socks[i].fd);
	}
	s->n = 0;
	s->paused = 0;
}

void lsn_free(struct lsn *s)
{
	if (!s)
		return;
	lsn_close(s);
	if (s->reserve_fd >= 0)
		close(s->reserve_fd);
	free(s);
}

int lsn_count(const struct lsn *s)
{
	return s ? s->n : 0;
}

const char *lsn_address(const struct lsn *s, int i)
{
	return s->socks[i].text;
}
