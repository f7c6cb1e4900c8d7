/*
 * The admin endpoint ([admin] address): a small HTTP/1.0 and 1.1 server parsed with
 * llhttp, for Prometheus, load balancers and `wsgw ctl`.
 *
 *   GET|HEAD /metrics                 Prometheus text
 *   GET|HEAD /healthz                 200 "ok" while serving with every pool's workers;
 *                                     503 and what is missing otherwise
 *   GET|HEAD /status, /workers        JSON
 *   GET|HEAD /connections[?route=PREFIX][&limit=N]   JSON
 *   GET|HEAD /config[?format=json]    the settings in force
 *   POST /connections/ID/close[?code=N]   close one client (default 1008)
 *   POST /drain, POST /reload
 *
 * Another method gets 405 with Allow; with [admin] token set, every request but one for
 * /healthz needs "Authorization: Bearer TOKEN" (401 otherwise). Every answer closes its
 * connection. Served by the loop thread, at most 16 requests at a time, each cut after
 * 5 s; what it reports comes from its owner's callbacks.
 */
#ifndef WSGW_ADMIN_H
#define WSGW_ADMIN_H

#include <stddef.h>
#include <stdint.h>

#include "gateway/config.h"
#include "gateway/loop.h"

struct admin;

/* What the endpoint asks its owner. The writers return the length written into out, or
 * -ENOSPC (asked again with more room). */
struct admin_ops {
	int (*metrics)(void *arg, char *out, size_t cap);
	/* *ok 1: serving (200), 0: not (503; the body says why). */
	int (*healthz)(void *arg, char *out, size_t cap, int *ok);
	int (*status)(void *arg, char *out, size_t cap);
	int (*workers)(void *arg, char *out, size_t cap);
	/* route NULL: every route; limit 0: every connection. */
	int (*connections)(void *arg, const char *route, unsigned long limit, char *out, size_t cap);
	int (*config)(void *arg, int json, char *out, size_t cap);
	/* 0, -ENOENT (no such connection). */
	int (*kick)(void *arg, uint64_t conn, unsigned code);
	void (*drain)(void *arg);
	/* 0, or -EINVAL with the reason in why. */
	int (*reload)(void *arg, char *why, size_t cap);
};

/* Listens on cfg->admin and joins the loop; reads cfg->admin_token at each request (it
 * may change at a reload). Returns 0 and *out, or -errno (logged). */
int admin_new(struct loop *l, const struct gw_config *cfg, const struct admin_ops *ops,
	      void *arg, struct admin **out);
/* Closes the listener and every admin connection. NULL is a no-op. */
void admin_free(struct admin *a);

#endif
