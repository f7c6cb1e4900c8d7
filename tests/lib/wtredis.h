/*
 * wtredis: a real redis-server for the cluster tests, on a loopback port the test picked,
 * without persistence (--save '' --appendonly no), killed with the test if it dies
 * (tests/lib/wtproc.h), and a blocking hiredis client to look at what the gateways keep
 * in it. Every wait is bounded.
 */
#ifndef WTREDIS_H
#define WTREDIS_H

#include <hiredis/hiredis.h>

#include "tests/lib/wtproc.h"

struct wt_redis {
	struct wt_proc proc;
	int port;
	char dir[128];
	char url[64];           /* redis://127.0.0.1:PORT */
};

/* Starts redis-server on a free loopback port and waits until it answers PING. 0 or a
 * negative errno (its log on stderr). */
int wt_redis_start(struct wt_redis *r);
/* Starts it again on the same port (after wt_redis_kill): an empty Redis. */
int wt_redis_restart(struct wt_redis *r);
/* SIGKILL, and reaped. */
void wt_redis_kill(struct wt_redis *r);
/* Kills it and removes its directory. Idempotent. */
void wt_redis_stop(struct wt_redis *r);
/* One command (hiredis's format) on a connection of its own: the reply (the caller frees
 * it with freeReplyObject), or NULL when Redis does not answer within a second. */
redisReply *wt_redis_cmd(struct wt_redis *r, const char *fmt, ...);
/* An integer reply's value, or -1. */
long long wt_redis_int(struct wt_redis *r, const char *fmt, ...);

#endif
