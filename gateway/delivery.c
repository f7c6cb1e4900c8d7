/*
 * What workers' commands do to client connections (the session layer's struct
 * pool_conn_ops): a message, a close, an ACCEPT or REJECT, and the fan-out of PUBLISH and
 * SENDMANY — framed once into a shared buffer every subscriber's queue points at, under
 * the route's policy for subscribers that fall behind. Also the session layer's creation.
 */
#include "gateway/budget.h"
#include "gateway/clog.h"
#include "gateway/conn.h"
#include "gateway/frame.h"
#include "gateway/log.h"
#include "gateway/pool.h"
#include "gateway/session_int.h"
#include "gateway/static.h"
#include "gateway/stats.h"
#include "gateway/topics.h"
#include "wsgw/protocol.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

/* --- the pools' callbacks: commands from c's worker --- */

static void on_send(void *arg, struct conn *c, unsigned op, const void *p, size_t n)
{
	if (c->state == CONN_OPEN)
		sess__send_frame(arg, c, op, p, n);
	else
		clog_debug(c, "SEND while closing, dropped");
}

/* A shared frame for c, under its route's policy for a subscriber past its share. Never
 * closes c's socket (its subscriptions must stay put while a publish walks them).
 * Returns 1 when it was queued. */
static int enqueue_shared(struct sess *s, struct conn *c, const struct outq_frame *f)
{
	if (c->state != CONN_OPEN)
		return 0;
	const struct cfg_conn_limits *lim = cfg_limits(s->cfg, c->route);
	unsigned policy = c->slow ? c->slow : lim->outbound_drop ? CFG_SLOW_DROP_NEWEST : CFG_SLOW_CLOSE;
	/* A ticker's subscriber wants the last value, not a backlog: one per topic. */
	if (policy == CFG_SLOW_LATEST && f->tag)
		stats.publish_dropped += outq_drop_unsent(&c->out, f->tag, 0, NULL);
	size_t cap = lim->max_outbound;
	int over = c->out.bytes + f->len > cap || (c->out.bytes && !bud_room(BUD_OUTBOUND, 0));
	/* Policies that take single frames out later keep one node per frame. */
	int single = policy == CFG_SLOW_DROP_OLDEST || policy == CFG_SLOW_LATEST;
	if (over && single) {
		size_t need = c->out.bytes + f->len > cap ? c->out.bytes + f->len - cap : 0;
		stats.publish_dropped += outq_drop_unsent(&c->out, 0, need, NULL);
		over = c->out.bytes + f->len > cap || (c->out.bytes && !bud_room(BUD_OUTBOUND, 0));
	}
	if (over) {
		if (policy != CFG_SLOW_CLOSE) {
			stats.publish_dropped++;
			return 0;
		}
		stats.closed_slow++;
		clog_warn(c, 0, "%zu bytes queued for a slow subscriber, over its share: close 1008",
			 c->out.bytes);
		outq_trim(&c->out);
		sess_close(s, c, WS_CLOSE_POLICY, "too slow");
		return 0;
	}
	if (!c->out.bytes)
		c->out_since = loop_now(s->u.loop);
	if (outq_append_frame(&c->out, f, !single)) {
		clog_error(c, ENOMEM, "queueing a published message");
		stats.publish_dropped++;
		return 0;
	}
	loop_mark(s->u.loop, c);
	return 1;
}


/* One frame for many connections: framed once into f, referenced by each queue. */
static int frame_shared(struct outq_frame *f, unsigned op, int rsv1, const void *p, size_t n,
			uint64_t tag)
{
	uint8_t hdr[WS_FRAME_HDR_MAX];
	size_t hlen = ws_frame_header(hdr, op, 1, n, NULL);
	if (rsv1)
		hdr[0] |= 0x40;
	if (outq_frame_new(f, hlen + n, tag)) {
		log_error(ENOMEM, "a message of %zu bytes for many connections", n);
		return -ENOMEM;
	}
	memcpy(f->data, hdr, hlen);
	if (n)
		memcpy(f->data + hlen, p, n);
	return 0;
}

/* A message for many: the plain frame, and compressed frames made once per window size
 * among the subscribers that agreed to permessage-deflate without context takeover. One
 * that keeps context gets its own compression (sess__send_frame). */
#define FAN_VARIANTS 2
struct fan {
	struct sess *s;
	unsigned op;
	const void *p;
	size_t n;
	uint64_t tag;
	struct outq_frame plain;
	struct outq_frame z[FAN_VARIANTS];
	uint8_t zbits[FAN_VARIANTS];
	int failed;
	unsigned long got;
};

static const struct outq_frame *fan_frame(struct fan *f, const struct conn *c)
{
	const struct pmd_cfg *dc = &f->s->cfg->deflate;
	if (c->pmd.on && f->n >= dc->min_size) {
		for (int i = 0; i < FAN_VARIANTS; i++) {
			if (f->z[i].blk && f->zbits[i] == c->pmd.server_bits)
				return &f->z[i];
			if (!f->z[i].blk) {
				const uint8_t *z;
				size_t zn;
				struct pmd_stream *none = NULL;
				if (pmd_deflate(&c->pmd, dc, &none, f->p, f->n, &z, &zn) || zn >= f->n)
					break; /* not worth it: everyone gets the plain frame */
				if (frame_shared(&f->z[i], f->op, 1, z, zn, f->tag))
					break;
				f->zbits[i] = c->pmd.server_bits;
				return &f->z[i];
			}
		}
	}
	if (!f->plain.blk && !f->failed && frame_shared(&f->plain, f->op, 0, f->p, f->n, f->tag))
		f->failed = 1;
	return f->plain.blk ? &f->plain : NULL;
}

static void fan_one(struct fan *f, struct conn *c)
{
	if (c->pmd.on && (c->pmd.takeover & 2)) {
		if (c->state == CONN_OPEN && sess__send_frame(f->s, c, f->op, f->p, f->n) == 0)
			f->got++;
		return;
	}
	const struct outq_frame *fr = fan_frame(f, c);
	if (!fr) {
		stats.publish_dropped++;
		return;
	}
	f->got += (unsigned long)enqueue_shared(f->s, c, fr);
}

static void fan_done(struct fan *f)
{
	stats.delivered += f->got;
	stats.messages_out += f->got;
	stats.bytes_out += f->got * f->n;
	outq_frame_put(&f->plain);
	for (int i = 0; i < FAN_VARIANTS; i++)
		outq_frame_put(&f->z[i]);
}

/* m's payload with its stamp in front, in buf when it fits, else malloc'ed (*own). NULL
 * on OOM. */
static const uint8_t *stamped(const struct top_msg *m, uint8_t *buf, size_t cap, size_t *n,
			      uint8_t **own)
{
	char st[WSGW_STAMP_MAX + 1];
	size_t sl = top_stamp(st, m->offset, m->epoch);
	uint8_t *out = buf;
	*own = NULL;
	if (sl + m->n > cap && !(out = *own = malloc(sl + m->n)))
		return NULL;
	memcpy(out, st, sl);
	if (m->n)
		memcpy(out + sl, m->p, m->n);
	*n = sl + m->n;
	return out;
}

#define STAMP_BUF 4096

/* --- a publish's subscribers on other loops (gateway/loops.h) ---
 *
 * The loop that publishes walks the topic's subscribers under top_lock and leaves each
 * other loop the message and the ids of its subscribers in that loop's inbox, under the
 * same lock. A loop delivers its inbox before it walks a topic itself: every subscriber,
 * whatever its loop, gets a topic's messages in the one order the lock gave them. */

struct far {
	struct far *next;
	unsigned op;
	uint64_t tag;
	size_t n, nids, cap;
	uint64_t *ids;
	uint8_t p[];
};

/* Every loop's session layer, for the publishes of the others. */
static struct sess *by_loop[LOOPS_MAX];

static void far_free(struct far *f)
{
	free(f->ids);
	free(f);
}

/* Adds id to the message for loop k (made on first use). 0, or -ENOMEM. */
static int far_add(struct far **v, unsigned k, const struct fan *m, uint64_t id)
{
	struct far *f = v[k];
	if (!f) {
		if (!(f = v[k] = malloc(sizeof(*f) + m->n)))
			return -ENOMEM;
		*f = (struct far){ .op = m->op, .tag = m->tag, .n = m->n };
		if (m->n)
			memcpy(f->p, m->p, m->n);
	}
	if (f->nids == f->cap) {
		size_t cap = f->cap ? 2 * f->cap : 16;
		uint64_t *ids = realloc(f->ids, cap * sizeof(*ids));
		if (!ids)
			return -ENOMEM;
		f->ids = ids;
		f->cap = cap;
	}
	f->ids[f->nids++] = id;
	return 0;
}

static void drain_posted(struct loop *l, void *arg);

/* Appends f to loop k's inbox (under top_lock), waking that loop for it. */
static void far_post(unsigned k, struct far *f)
{
	struct sess *to = by_loop[k];
	if (!to) { /* that loop has ended (the gateway stops) */
		stats.publish_dropped += f->nids;
		far_free(f);
		return;
	}
	pthread_mutex_lock(&to->in_mu);
	if (to->in_tail)
		to->in_tail->next = f;
	else
		to->in_head = f;
	to->in_tail = f;
	int nudge = !to->in_nudged;
	to->in_nudged = 1;
	pthread_mutex_unlock(&to->in_mu);
	if (nudge && loop_post(to->u.loop, drain_posted, to)) {
		/* It is delivered with the next message posted there, or before that loop's
		 * next publish. */
		log_error(ENOMEM, "waking loop %u for a publish", k);
		pthread_mutex_lock(&to->in_mu);
		to->in_nudged = 0;
		pthread_mutex_unlock(&to->in_mu);
	}
}

/* What other loops published for this loop's subscribers, in order. A subscriber that
 * moved on meanwhile (it waited for a worker) gets it where it is now; one still on its
 * way here keeps its share in the inbox, ahead of what comes later, until it arrives
 * (sess__take_inbox). Under top_lock. */
static void drain_inbox(struct sess *s)
{
	pthread_mutex_lock(&s->in_mu);
	struct far *f = s->in_head;
	s->in_head = s->in_tail = NULL;
	s->in_nudged = 0;
	pthread_mutex_unlock(&s->in_mu);
	if (!f)
		return;
	unsigned self = loop_index(s->u.loop);
	struct far *kept = NULL, *kept_last = NULL;
	rcu_read_lock();
	while (f) {
		struct far *next = f->next;
		struct fan m = { .s = s, .op = f->op, .p = f->p, .n = f->n, .tag = f->tag };
		struct far *on[LOOPS_MAX] = { NULL };
		for (size_t i = 0; i < f->nids; i++) {
			struct conn *c = conn_lookup(f->ids[i]);
			if (!c)
				continue; /* closed since */
			unsigned k = conn_loop(c), to = k & ~CONN_MOVING; /* moving: where it goes */
			if (k == self)
				fan_one(&m, c);
			else if (to >= LOOPS_MAX || far_add(on, to, &m, f->ids[i]))
				stats.publish_dropped++; /* no memory */
		}
		fan_done(&m);
		for (unsigned k = 0; k < LOOPS_MAX; k++)
			if (on[k] && k != self)
				far_post(k, on[k]);
		if (on[self]) {
			*(kept_last ? &kept_last->next : &kept) = on[self];
			kept_last = on[self];
		}
		far_free(f);
		f = next;
	}
	rcu_read_unlock();
	if (!kept)
		return;
	pthread_mutex_lock(&s->in_mu);
	kept_last->next = s->in_head;
	if (!s->in_head)
		s->in_tail = kept_last;
	s->in_head = kept;
	pthread_mutex_unlock(&s->in_mu);
}

static void drain_posted(struct loop *l, void *arg)
{
	(void)l;
	top_lock(); /* as a walk: what it forwards keeps the order */
	drain_inbox(arg);
	top_unlock();
}

void sess__take_inbox(struct sess *s)
{
	pthread_mutex_lock(&s->in_mu);
	int empty = !s->in_head; /* what is posted from now on finds c here, as any other */
	pthread_mutex_unlock(&s->in_mu);
	if (!empty)
		drain_posted(s->u.loop, s);
}

/* A message for this gateway's subscribers: a worker's PUBLISH here (counted where it was
 * taken, commands.c), or one that Redis brought from any gateway. */
static void on_publish(void *arg, const struct top_msg *m)
{
	struct sess *s = arg;
	top_lock();
	if (s->home.pick)
		drain_inbox(s);
	struct topic *t = top_find(m->topic, m->tlen);
	if (!t) {
		top_unlock();
		return;
	}
	uint8_t buf[STAMP_BUF], *own = NULL;
	const void *p = m->p;
	size_t n = m->n;
	if (m->stamp && !(p = stamped(m, buf, sizeof(buf), &n, &own))) {
		log_error(ENOMEM, "stamping a message of %zu bytes", m->n);
		stats.publish_dropped += top_count(t);
		top_unlock();
		return;
	}
	struct fan f = { .s = s, .op = m->op, .p = p, .n = n, .tag = top_id(t) };
	unsigned self = loop_index(s->u.loop), hi = 0;
	struct far *far[LOOPS_MAX];
	/* From the last: a subscriber closed on the way leaves the array by swapping the last
	 * one into its place, which has been served already. */
	for (unsigned i = top_count(t); i-- > 0;) {
		if (i >= top_count(t))
			continue;
		struct conn *c = top_conn(t, i);
		if (c->id == m->exclude || top_skips(top_after(t, i), m->offset))
			continue;
		unsigned k = conn_loop(c);
		if (k == self) {
			fan_one(&f, c);
			continue;
		}
		k &= ~CONN_MOVING; /* on its way to k (here, too): it waits in k's inbox */
		for (; k < LOOPS_MAX && hi <= k; hi++)
			far[hi] = NULL;
		if (k >= LOOPS_MAX || far_add(far, k, &f, c->id))
			stats.publish_dropped++; /* no memory */
	}
	for (unsigned k = 0; k < hi; k++)
		if (far[k])
			far_post(k, far[k]);
	top_unlock();
	fan_done(&f);
	free(own);
}

static void on_replay(void *arg, struct conn *c, const struct top_msg *m)
{
	uint8_t buf[STAMP_BUF], *own = NULL;
	const void *p = m->p;
	size_t n = m->n;
	if (m->stamp && !(p = stamped(m, buf, sizeof(buf), &n, &own))) {
		log_error(ENOMEM, "stamping a message of %zu bytes", m->n);
		stats.publish_dropped++;
		return;
	}
	struct fan f = { .s = arg, .op = m->op, .p = p, .n = n };
	fan_one(&f, c);
	fan_done(&f);
	free(own);
}

static void on_send_many(void *arg, struct conn *const *conns, size_t count, unsigned op,
			 const void *p, size_t n)
{
	struct fan f = { .s = arg, .op = op, .p = p, .n = n };
	for (size_t i = 0; i < count; i++)
		fan_one(&f, conns[i]);
	fan_done(&f);
}

static void on_worker_close(void *arg, struct conn *c, unsigned code, const char *reason, size_t n)
{
	char why[WS_CONTROL_MAX - 1];
	if (n >= sizeof(why))
		n = sizeof(why) - 1;
	if (n)
		memcpy(why, reason, n);
	why[n] = 0;
	/* The worker may only send what a peer may (RFC 6455 7.4), 1000 when it did not. */
	if (!ws_close_code_valid(code))
		code = WS_CLOSE_NORMAL;
	sess_close(arg, c, code, why);
}

static void on_accept(void *arg, struct conn *c, const void *fields, size_t n)
{
	struct sess *s = arg;
	if (c->state != CONN_AUTHORIZING)
		return;
	if (upg_accept(&s->u, c, fields, n))
		return;
	sess__early_frames(s, c);
	sess__resume(s, c);
}

static void on_reject(void *arg, struct conn *c, unsigned status, const char *reason, size_t n)
{
	struct sess *s = arg;
	if (c->state == CONN_AUTHORIZING)
		upg_reject(&s->u, c, status, reason, n);
}

static void on_expire(void *arg, struct conn *c)
{
	sess_close(arg, c, WS_CLOSE_TRY_AGAIN, "no worker available");
}

static int on_elsewhere(void *arg, unsigned pool)
{
	struct sess *s = arg;
	return s->home.pick && s->home.pick(s->home.arg, pool);
}

/* c waits for a worker, and the loop just picked has one. Under top_lock, as a walk:
 * what was published for c so far is queued here first, and each publish after the move
 * sees it on its way and leaves its share in the inbox of the loop it goes to. */
static void on_move(void *arg, struct conn *c)
{
	struct sess *s = arg;
	struct pool_held *held;
	top_lock();
	drain_inbox(s);
	/* The published frames it has queued share this loop's blocks, whose counts only
	 * this thread may touch: the other loop gets copies. */
	if (outq_unshare(&c->out) || pool_release(s->u.ps, c, &held))
		clog_error(c, ENOMEM, "its move to a loop with a worker: it waits here");
	else
		sess__move(s, c, held);
	top_unlock();
}

static const struct pool_conn_ops pool_ops = {
	.send = on_send,
	.close = on_worker_close,
	.accept = on_accept,
	.reject = on_reject,
	.resume = sess__resume,
	.expire = on_expire,
	.publish = on_publish,
	.replay = on_replay,
	.send_many = on_send_many,
	.elsewhere = on_elsewhere,
	.move = on_move,
};

int sess_new(struct loop *l, const struct gw_config *cfg, int workers, struct sess **out)
{
	struct sess *s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->u.loop = l;
	s->cfg = loop_cfg(l);
	pthread_mutex_init(&s->in_mu, NULL);
	int rc = pool_new(l, cfg, workers, &pool_ops, s, &s->u.ps);
	if (rc) {
		free(s);
		return rc;
	}
	if (cfg->static_dir[0]) {
		rc = stc_open(cfg->static_dir, cfg->static_max, &s->u.stc);
		if (rc) {
			log_error(-rc, "--static %s", cfg->static_dir);
			pool_free(s->u.ps);
			free(s);
			return rc;
		}
		if (!loop_index(l)) /* once, not per loop */
			log_info("static files from %s for plain GET and HEAD requests", cfg->static_dir);
	}
	loop_set_conn_ops(l, &sess__loop_ops, s);
	*out = s;
	return 0;
}

void sess_free(struct sess *s)
{
	if (!s)
		return;
	if (s->home.pick)
		by_loop[loop_index(s->u.loop)] = NULL;
	for (struct far *f = s->in_head, *next; f; f = next) {
		next = f->next;
		far_free(f);
	}
	pthread_mutex_destroy(&s->in_mu);
	pool_free(s->u.ps);
	stc_free(s->u.stc);
	free(s);
}

void sess_set_home(struct sess *s, const struct sess_home *home)
{
	by_loop[loop_index(s->u.loop)] = s;
	s->home = *home;
	s->u.elsewhere = home->pick;
	s->u.elsewhere_arg = home->arg;
}

struct pools *sess_pools(struct sess *s)
{
	return s->u.ps;
}

