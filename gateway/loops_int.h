#ifndef WSGW_LOOPS_INT_H
#define WSGW_LOOPS_INT_H

/* The loops' own state, for loops.c and its two parts beside it: loops_workers.c (shm
 * workers on every loop, and the connections that go where a worker is) and loops_hold.c
 * (the other loops held still for a live upgrade). Nothing else includes it. */

#include "gateway/loops.h"

#include <pthread.h>

struct conn;
struct pool_held;

struct lp {
	struct lps *x;
	unsigned index;
	struct loop *loop;
	struct sess *sess;
	struct gw_config *cfg;   /* loop 0: the server's; the others: their own copy */
	unsigned long handed;    /* atomic: posted by loop 0, not yet taken */
	unsigned move_to;        /* where pick sent the connection move takes next */
	pthread_t th;
	int running;
};

struct lps {
	unsigned n;
	int builtin;             /* a built-in route exists: plain listeners' connections spread */
	int spread;              /* builtin, or a TLS listener (its handshakes spread) */
	int gathered;            /* lps_gather: until lps_spread, every connection stays on loop 0 */
	int draining;            /* atomic: lps_drain; who joins a loop after it is turned away */
	unsigned max_conns;      /* atomic: a reload changes it while the others read it */
	int spread_workers;      /* shm workers are attached to every loop's pools */
	struct ctl *ctl;         /* the control channel (loop 0's), told of workers gone */
	struct hold *hold;       /* lps_hold until lps_release: the others run only lps_on's */
	struct tls_srv *tls;
	struct lp lp[LOOPS_MAX];
};

/* The connections p owns, counting those handed to it and not yet taken. */
unsigned long lps__owns(struct lp *p);
/* 1 once lps_drain began (ordered with it: gateway/loops.c). */
int lps__draining(struct lps *x);
/* c has just joined loop p: closed 1001 if the gateway drains meanwhile. */
void lps__drain_gate(struct lp *p, struct conn *c);
/* Runs fn(p's session, arg) on p's thread and waits for it: 0, or -ENOMEM. */
int lps__call(struct lp *p, void (*fn)(struct sess *s, void *arg), void *arg);
/* sess_home's pick and move (loops_workers.c). */
int lps__pick(void *arg, unsigned pool);
int lps__move(void *arg, struct conn *c, struct pool_held *held);
/* pool_dir.gone on loop p's thread (arg): the control channel, on loop 0's, forgets it. */
void lps__worker_gone(void *arg, unsigned id);

#endif
