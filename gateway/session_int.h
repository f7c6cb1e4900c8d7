/*
 * What gateway/session.c (the open session) and gateway/delivery.c (what workers' commands
 * do to connections) share. Nothing else includes this.
 */
#ifndef WSGW_SESSION_INT_H
#define WSGW_SESSION_INT_H

#include "gateway/session.h"
#include "gateway/upgrade.h"

#include <pthread.h>

struct sess {
	struct upg_env u;             /* the loop and the pools */
	const struct gw_config *cfg;  /* the loop's: changed in place on reload, never moved */
	uint32_t dropped_log_at;      /* --outbound-policy drop logs at most once a second */
	struct sess_home home;        /* move NULL: one loop */
	/* Other loops' publishes for subscribers here, in order (delivery.c). */
	pthread_mutex_t in_mu;
	struct far *in_head, *in_tail;
	int in_nudged;                /* a drain is posted to this loop */
};

/* The loop's callbacks for client connections (gateway/session.c). */
extern const struct loop_conn_ops sess__loop_ops;

/* Queues one unfragmented frame for c under its outbound share. Returns 0, or -1 when c
 * was closed or is closing for it. */
int sess__send_frame(struct sess *s, struct conn *c, unsigned op, const uint8_t *p, size_t n);
/* Parses frames of an open (or closing) c from buf; returns the bytes to keep. */
size_t sess__process_frames(struct sess *s, struct conn *c, uint8_t *buf, size_t n);
/* The frames a client sent right behind its request (kept in c->msg while its worker
 * authorized it, or while it moved to another loop), parsed now that c is open. */
void sess__early_frames(struct sess *s, struct conn *c);
/* Keeps the unparsed tail of a read for the next one. */
void sess__keep_tail(struct sess *s, struct conn *c, const uint8_t *tail, size_t n);
/* Reads c again after a pause (its output drained, or its worker took more). arg: the
 * struct sess (it is a struct pool_conn_ops callback too). */
void sess__resume(void *arg, struct conn *c);
/* c goes to the loop home picked: its request read, or open and waiting for a worker with
 * held (taken). Without memory for that, it stays: an open one waits for a worker here, a
 * handshake is closed. */
void sess__move(struct sess *s, struct conn *c, struct pool_held *held);
/* Delivers what other loops published for the connections that arrived here on the way
 * (delivery.c); top_lock must not be held. */
void sess__take_inbox(struct sess *s);

#endif
