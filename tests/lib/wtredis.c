#include "tests/lib/wtredis.h"
#include "tests/lib/wstest.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static int free_port(void)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM, 0), port = -1;
	if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0 &&
	    getsockname(fd, (struct sockaddr *)&a, &len) == 0)
		port = ntohs(a.sin_port);
	if (fd >= 0)
		close(fd);
	return port;
}

static redisReply *vcmd(struct wt_redis *r, const char *fmt, va_list ap)
{
	struct timeval tv = { 1, 0 };
	redisContext *c = redisConnectWithTimeout("127.0.0.1", r->port, tv);
	redisReply *rep = NULL;
	if (c && !c->err) {
		redisSetTimeout(c, tv);
		rep = redisvCommand(c, fmt, ap);
	}
	if (c)
		redisFree(c);
	return rep;
}

redisReply *wt_redis_cmd(struct wt_redis *r, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	redisReply *rep = vcmd(r, fmt, ap);
	va_end(ap);
	return rep;
}

long long wt_redis_int(struct wt_redis *r, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	redisReply *rep = vcmd(r, fmt, ap);
	va_end(ap);
	long long v = rep && rep->type == REDIS_REPLY_INTEGER ? rep->integer : -1;
	if (rep)
		freeReplyObject(rep);
	return v;
}

static int launch(struct wt_redis *r)
{
	char port[16], log[192];
	snprintf(port, sizeof(port), "%d", r->port);
	snprintf(log, sizeof(log), "%s/redis.log", r->dir);
	const char *argv[] = { "/usr/bin/redis-server", "--port", port, "--bind", "127.0.0.1",
			       "--save", "", "--appendonly", "no", "--dir", r->dir, "--daemonize", "no",
			       NULL };
	int rc = wt_proc_spawn(&r->proc, argv, log);
	if (rc)
		return rc;
	for (int64_t end = wt_now_ms() + 5000; wt_now_ms() < end; wt_sleep_ms(20)) {
		redisReply *rep = wt_redis_cmd(r, "PING");
		int ok = rep && rep->type == REDIS_REPLY_STATUS && strcmp(rep->str, "PONG") == 0;
		if (rep)
			freeReplyObject(rep);
		if (ok)
			return 0;
		if (wt_proc_reap(&r->proc, 0) == 0)
			return -EADDRINUSE; /* it exited: the port was taken meanwhile */
	}
	wt_redis_kill(r);
	return -ETIMEDOUT;
}

int wt_redis_start(struct wt_redis *r)
{
	memset(r, 0, sizeof(*r));
	int rc = wt_dir_new(r->dir, sizeof(r->dir));
	for (int attempt = 0; rc == 0 && attempt < 5; attempt++) {
		r->port = free_port();
		if (r->port < 0)
			return -EADDRNOTAVAIL;
		snprintf(r->url, sizeof(r->url), "redis://127.0.0.1:%d", r->port);
		if ((rc = launch(r)) != -EADDRINUSE)
			break;
		rc = 0;
	}
	if (rc) {
		char path[192];
		snprintf(path, sizeof(path), "%s/redis.log", r->dir);
		fprintf(stderr, "redis-server did not start (%s); its log %s\n", strerror(-rc), path);
	}
	return rc;
}

int wt_redis_restart(struct wt_redis *r)
{
	return launch(r);
}

void wt_redis_kill(struct wt_redis *r)
{
	if (r->proc.pid) {
		wt_proc_kill(&r->proc, SIGKILL);
		wt_proc_reap(&r->proc, 5000);
	}
}

void wt_redis_stop(struct wt_redis *r)
{
	wt_redis_kill(r);
	if (r->dir[0])
		wt_dir_remove(r->dir);
	r->dir[0] = 0;
}
