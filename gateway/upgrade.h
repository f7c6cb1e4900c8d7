/*
 * The HTTP side of a connection: reading the upgrade request, routing it, answering 101
 * or an HTTP error, and the authorize round trip with a worker (ACCEPT/REJECT within
 * --authorize-timeout). Below the open session (gateway/session.c), above the pools.
 * Loop thread only.
 */
#ifndef WSGW_UPGRADE_H
#define WSGW_UPGRADE_H

#include <stddef.h>
#include <stdint.h>

#include "gateway/loop.h"
#include "gateway/pool.h"

struct conn;
struct stc;

/* What the upgrade code works with. */
struct upg_env {
	struct loop *loop;
	struct pools *ps;
	struct stc *stc; /* --static: plain GETs and HEADs get files from it; NULL when off */
	/* Other loops may serve a worker route that has no worker here: 1 when c's request
	 * moves to one of them (chosen then); NULL: one loop. */
	int (*elsewhere)(void *arg, unsigned pool);
	void *elsewhere_arg;
};

/* Sets up a new accepted connection: handshake state and deadline. 0 or -ENOMEM. */
int upg_start(const struct upg_env *u, struct conn *c);

enum upg_result {
	UPG_MORE,  /* the request is not complete: every byte was taken */
	UPG_OPEN,  /* 101 queued, c is CONN_OPEN; bytes after *used are the client's frames */
	UPG_WAIT,  /* c is CONN_AUTHORIZING; the bytes after the request are kept in c->msg */
	UPG_DONE,  /* answered with an HTTP error, or closed: drop the rest */
	UPG_MOVE,  /* (u->elsewhere) a worker route's request, routed no further: c goes to
	            * the loop chosen, the bytes after the request kept in c->msg */
};

/* Feeds request bytes (c in CONN_HANDSHAKE). */
enum upg_result upg_feed(const struct upg_env *u, struct conn *c, const uint8_t *buf, size_t n,
			 size_t *used);
/* Routes a request read on another loop (UPG_MOVE there) as upg_feed would have: UPG_OPEN
 * (the bytes after the request are still in c->msg), UPG_WAIT or UPG_DONE. */
enum upg_result upg_route(const struct upg_env *u, struct conn *c);
/* Answers status (400..599) and closes after it; logs the peer and why. */
void upg_error(const struct upg_env *u, struct conn *c, int status, const char *why);
/* The worker's ACCEPT for an authorizing c: answers 101 with its subprotocol and
 * headers. Returns 0 (c is CONN_OPEN, the frames that came behind the request are in
 * c->msg for the caller), or -1 (ACCEPT was unusable: 500 sent, the worker told). */
int upg_accept(const struct upg_env *u, struct conn *c, const void *fields, size_t n);
/* The worker's REJECT: answers status with its reason. */
void upg_reject(const struct upg_env *u, struct conn *c, unsigned status, const char *reason,
		size_t n);
/* The deadline of c in CONN_HANDSHAKE or CONN_AUTHORIZING passed. */
void upg_deadline(const struct upg_env *u, struct conn *c);
/* c closes before the upgrade finished: frees the handshake state. */
void upg_closing(struct conn *c);

#endif
