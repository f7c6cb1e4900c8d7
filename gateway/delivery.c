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

/* A message for this gateway's subscribers: a worker's PUBLISH here (counted where it was
 * taken, commands.c), or one that Redis brought from any gateway. */
static void on_publish(void *arg, const struct top_msg *m)
{
	struct topic *t = top_find(m->topic, m->tlen);
	if (!t)
		return;
	uint8_t buf[STAMP_BUF], *own = NULL;
	const void *p = m->p;
	size_t n = m->n;
	if (m->stamp && !(p = stamped(m, buf, sizeof(buf), &n, &own))) {
		log_error(ENOMEM, "stamping a message of %zu bytes", m->n);
		stats.publish_dropped += top_count(t);
		return;
	}
	struct fan f = { .s = arg, .op = m->op, .p = p, .n = n, .tag = top_id(t) };
	/* From the last: a subscriber closed on the way leaves the array by swapping the last
	 * one into its place, which has been served already. */
	for (unsigned i = top_count(t); i-- > 0;) {
		if (i >= top_count(t))
			continue;
		struct conn *c = top_conn(t, i);
		if (c->id != m->exclude && !top_skips(top_after(t, i), m->offset))
			fan_one(&f, c);
	}
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
};

int sess_new(struct loop *l, const struct gw_config *cfg, const struct sess_home *home,
	     struct sess **out)
{
	struct sess *s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->u.loop = l;
	s->cfg = loop_cfg(l);
	if (home) {
		s->home = *home;
		s->u.away = 1;
	}
	int rc = pool_new(l, cfg, !home, &pool_ops, s, &s->u.ps);
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
		if (!home) /* once, not per loop */
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
	pool_free(s->u.ps);
	stc_free(s->u.stc);
	free(s);
}

struct pools *sess_pools(struct sess *s)
{
	return s->u.ps;
}

