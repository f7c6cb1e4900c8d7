#include "gateway/handover.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* Little-endian on the wire, whatever the host: the two processes share one host, but a
 * fixed byte order keeps the format a format. */

void ho_buf_free(struct ho_buf *b)
{
	free(b->p);
	b->p = NULL;
	b->len = b->cap = 0;
}

static int reserve(struct ho_buf *b, size_t n)
{
	if (b->cap - b->len >= n)
		return 0;
	size_t cap = b->cap ? b->cap : 256;
	while (cap - b->len < n) {
		if (cap > SIZE_MAX / 2)
			return -ENOMEM;
		cap *= 2;
	}
	uint8_t *p = realloc(b->p, cap);
	if (!p)
		return -ENOMEM;
	b->p = p;
	b->cap = cap;
	return 0;
}

static void w8(uint8_t *p, uint64_t v, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t r8(const uint8_t *p, unsigned n)
{
	uint64_t v = 0;
	for (unsigned i = 0; i < n; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

/* Encoding: every put reserves first, so a failed encoder leaves len unchanged when the
 * caller restores it (ho_put_conn does). */
static int put(struct ho_buf *b, uint64_t v, unsigned n)
{
	if (reserve(b, n))
		return -ENOMEM;
	w8(b->p + b->len, v, n);
	b->len += n;
	return 0;
}

static int put_bytes(struct ho_buf *b, const void *p, size_t n, unsigned lenw)
{
	if (put(b, n, lenw) || reserve(b, n))
		return -ENOMEM;
	if (n)
		memcpy(b->p + b->len, p, n);
	b->len += n;
	return 0;
}

/* Decoding: a cursor that fails once and stays failed. */
struct rd {
	const uint8_t *p;
	size_t n, off;
	int bad;
};

static uint64_t get(struct rd *r, unsigned n)
{
	if (r->bad || r->n - r->off < n) {
		r->bad = 1;
		return 0;
	}
	uint64_t v = r8(r->p + r->off, n);
	r->off += n;
	return v;
}

static struct ho_bytes get_bytes(struct rd *r, unsigned lenw, size_t max)
{
	struct ho_bytes s = { NULL, 0 };
	uint64_t n = get(r, lenw);
	if (r->bad || n > max || n > r->n - r->off) {
		r->bad = 1;
		return s;
	}
	s.p = r->p + r->off;
	s.n = (size_t)n;
	r->off += s.n;
	return s;
}

int ho_put_hdr_v(struct ho_buf *b, unsigned version, unsigned type, uint32_t len)
{
	if (reserve(b, HO_HDR))
		return -ENOMEM;
	uint8_t *p = b->p + b->len;
	memcpy(p, "WSGW", 4);
	w8(p + 4, version, 2);
	p[6] = (uint8_t)type;
	p[7] = 0;
	w8(p + 8, len, 4);
	b->len += HO_HDR;
	return 0;
}

int ho_put_hdr(struct ho_buf *b, unsigned type, uint32_t len)
{
	return ho_put_hdr_v(b, HO_VERSION, type, len);
}

int ho_get_hdr(const uint8_t *p, size_t n, struct ho_hdr *h)
{
	if (n < HO_HDR)
		return -EBADMSG;
	if (memcmp(p, "WSGW", 4) != 0)
		return -EPROTO;
	h->version = (unsigned)r8(p + 4, 2);
	h->type = p[6];
	h->len = (uint32_t)r8(p + 8, 4);
	if (h->len > HO_BODY_MAX || h->len != n - HO_HDR)
		return -EBADMSG;
	return 0;
}

int ho_version_ok(unsigned v)
{
	return v >= HO_VERSION_MIN && v <= HO_VERSION;
}

int ho_put_hello(struct ho_buf *b, const struct ho_hello *h)
{
	size_t at = b->len;
	if (put(b, h->pid, 4) || put(b, h->count, 4) || put(b, h->next_id, 8)) {
		b->len = at;
		return -ENOMEM;
	}
	return 0;
}

int ho_get_hello(const uint8_t *p, size_t n, struct ho_hello *h)
{
	struct rd r = { p, n, 0, 0 };
	h->pid = (uint32_t)get(&r, 4);
	h->count = (uint32_t)get(&r, 4);
	h->next_id = get(&r, 8);
	return r.bad || r.off != n ? -EBADMSG : 0;
}

int ho_put_batch(struct ho_buf *b, const struct ho_batch *h)
{
	size_t at = b->len;
	if (put(b, h->count, 4) || put(b, h->bytes, 8)) {
		b->len = at;
		return -ENOMEM;
	}
	return 0;
}

int ho_get_batch(const uint8_t *p, size_t n, struct ho_batch *h)
{
	struct rd r = { p, n, 0, 0 };
	h->count = (uint32_t)get(&r, 4);
	h->bytes = get(&r, 8);
	return r.bad || h->count > HO_FDS_MAX ? -EBADMSG : 0;
}

int ho_put_listen(struct ho_buf *b, const struct ho_listen *l)
{
	size_t at = b->len;
	if (put(b, l->admin, 1) || put(b, l->index, 1) || put(b, l->tls, 1)) {
		b->len = at;
		return -ENOMEM;
	}
	return 0;
}

int ho_get_listen(const uint8_t *p, size_t n, struct ho_listen *l, size_t *used)
{
	struct rd r = { p, n, 0, 0 };
	l->admin = (uint8_t)get(&r, 1);
	l->index = (uint8_t)get(&r, 1);
	l->tls = (uint8_t)get(&r, 1);
	if (r.bad || l->admin >= HO_L_KINDS || l->tls > 1)
		return -EBADMSG;
	*used = r.off;
	return 0;
}

/* A record starts with its own length, so a reader can step over one it cannot use:
 * rec_end fills it in for the record begun at `at` (or takes the record back when one of
 * its puts failed, rc != 0); rec_open reads it and gives the record's body to read. */
static int rec_end(struct ho_buf *b, size_t at, int rc)
{
	if (rc) {
		b->len = at;
		return -ENOMEM;
	}
	w8(b->p + at, b->len - at - 8, 8);
	return 0;
}

static int rec_open(const uint8_t *p, size_t n, struct rd *body, size_t *used)
{
	struct rd whole = { p, n, 0, 0 };
	uint64_t len = get(&whole, 8);
	if (whole.bad || len > n - 8)
		return -EBADMSG;
	*body = (struct rd){ p + 8, (size_t)len, 0, 0 };
	*used = 8 + (size_t)len;
	return 0;
}

int ho_put_conn(struct ho_buf *b, const struct ho_conn *c)
{
	if (c->route.n > HO_ROUTE_MAX || c->in.n > WS_RX_TAIL_MAX || c->msg.n > UINT32_MAX ||
	    c->fields.n > UINT32_MAX || c->win_to.n > HO_WINDOW_MAX || c->win_from.n > HO_WINDOW_MAX)
		return -EINVAL;
	size_t at = b->len;
	const struct ws_rx *x = &c->rx;
	int rc = put(b, 0, 8) || put(b, c->id, 8) || put(b, c->state, 1) || put(b, c->flags, 1) ||
		 put(b, c->pool, 1) || put(b, c->slow, 1) || put(b, c->worker, 2) ||
		 put(b, (uint32_t)c->deadline_ms, 4) || put_bytes(b, c->route.p, c->route.n, 1) ||
		 put_bytes(b, c->pmd, 4, 0) ||
		 put(b, x->remaining, 8) || put(b, x->msg_len, 8) || put(b, x->utf8, 4) ||
		 put_bytes(b, x->mask, 4, 0) || put(b, x->phase, 1) || put(b, x->frame_fin, 1) ||
		 put(b, x->msg_op, 1) || put(b, x->in_frame, 1) || put(b, x->started, 1) ||
		 put(b, x->rsv1_ok, 1) || put(b, x->compressed, 1) ||
		 put_bytes(b, c->in.p, c->in.n, 2) || put_bytes(b, c->msg.p, c->msg.n, 4) ||
		 put(b, c->out_started, 1) || put_bytes(b, c->out_head.p, c->out_head.n, 8) ||
		 put_bytes(b, c->out_rest.p, c->out_rest.n, 8) ||
		 put_bytes(b, c->fields.p, c->fields.n, 4) || put_bytes(b, c->subs.p, c->subs.n, 4);
	if (!rc && (c->win_to.n || c->win_from.n))
		rc = put(b, HO_E_WINDOWS, 1) || put(b, 4 + c->win_to.n + c->win_from.n, 4) ||
		     put_bytes(b, c->win_to.p, c->win_to.n, 2) ||
		     put_bytes(b, c->win_from.p, c->win_from.n, 2);
	if (!rc && c->peer_family) {
		size_t an = c->peer_family == 6 ? 16 : 4;
		rc = put(b, HO_E_PEER, 1) || put(b, 3 + an, 4) || put(b, c->peer_family, 1) ||
		     put(b, c->peer_port, 2) || put_bytes(b, c->peer_addr, an, 0);
	}
	if (!rc && c->loop)
		rc = put(b, HO_E_LOOP, 1) || put(b, 1, 4) || put(b, c->loop, 1);
	return rec_end(b, at, rc);
}

int ho_get_conn(const uint8_t *p, size_t n, struct ho_conn *c, size_t *used)
{
	struct rd r;
	size_t size;
	if (rec_open(p, n, &r, &size))
		return -EBADMSG;
	memset(c, 0, sizeof(*c));
	struct ws_rx *x = &c->rx;
	c->id = get(&r, 8);
	c->state = (uint8_t)get(&r, 1);
	c->flags = (uint8_t)get(&r, 1);
	c->pool = (uint8_t)get(&r, 1);
	c->slow = (uint8_t)get(&r, 1);
	c->worker = (uint16_t)get(&r, 2);
	c->deadline_ms = (int32_t)(uint32_t)get(&r, 4);
	c->route = get_bytes(&r, 1, HO_ROUTE_MAX);
	for (int i = 0; i < 4; i++)
		c->pmd[i] = (uint8_t)get(&r, 1);
	x->remaining = get(&r, 8);
	x->msg_len = get(&r, 8);
	x->utf8 = (uint32_t)get(&r, 4);
	for (int i = 0; i < 4; i++)
		x->mask[i] = (uint8_t)get(&r, 1);
	x->phase = (uint8_t)get(&r, 1);
	x->frame_fin = (uint8_t)get(&r, 1);
	x->msg_op = (uint8_t)get(&r, 1);
	x->in_frame = (uint8_t)get(&r, 1);
	x->started = (uint8_t)get(&r, 1);
	x->rsv1_ok = (uint8_t)get(&r, 1);
	x->compressed = (uint8_t)get(&r, 1);
	c->in = get_bytes(&r, 2, WS_RX_TAIL_MAX);
	c->msg = get_bytes(&r, 4, UINT32_MAX);
	c->out_started = (uint8_t)get(&r, 1);
	c->out_head = get_bytes(&r, 8, SIZE_MAX);
	c->out_rest = get_bytes(&r, 8, SIZE_MAX);
	c->fields = get_bytes(&r, 4, UINT32_MAX);
	if (!r.bad && r.off < r.n) /* version 1 ends before */
		c->subs = get_bytes(&r, 4, UINT32_MAX);
	/* Version 3: entries to the record's end (version 2 ends before). */
	int windows = 0, peers = 0, loops = 0;
	while (!r.bad && r.off < r.n) {
		unsigned tag = (unsigned)get(&r, 1);
		struct ho_bytes e = get_bytes(&r, 4, SIZE_MAX);
		if (!r.bad && tag == HO_E_LOOP) {
			if (e.n != 1 || loops++)
				r.bad = 1;
			else
				c->loop = e.p[0];
			continue;
		}
		if (!r.bad && tag == HO_E_PEER) {
			struct rd a = { e.p, e.n, 0, 0 };
			c->peer_family = (uint8_t)get(&a, 1);
			c->peer_port = (uint16_t)get(&a, 2);
			size_t an = c->peer_family == 6 ? 16 : 4;
			if (a.bad || (c->peer_family != 4 && c->peer_family != 6) || e.n != 3 + an || peers++)
				r.bad = 1;
			else
				memcpy(c->peer_addr, e.p + 3, an);
			continue;
		}
		if (r.bad || tag != HO_E_WINDOWS)
			continue; /* another's: a later minor addition, skipped */
		struct rd w = { e.p, e.n, 0, 0 };
		c->win_to = get_bytes(&w, 2, HO_WINDOW_MAX);
		c->win_from = get_bytes(&w, 2, HO_WINDOW_MAX);
		if (w.bad || w.off != w.n || windows++) /* twice: which one? */
			r.bad = 1;
	}
	if (r.bad || x->phase > 3 || x->msg_op > WS_OP_BINARY || c->out_started > 1 ||
	    (c->out_started && !c->out_head.n))
		return -EBADMSG;
	*used = size;
	return 0;
}

int ho_put_sub(struct ho_buf *b, const struct ho_sub *s)
{
	if (s->topic.n < 1 || s->topic.n > 255)
		return -EINVAL;
	size_t at = b->len;
	if (put_bytes(b, s->topic.p, s->topic.n, 1) || put(b, s->after, 8)) {
		b->len = at;
		return -ENOMEM;
	}
	return 0;
}

int ho_next_sub(const struct ho_bytes *subs, size_t *off, struct ho_sub *s)
{
	if (*off >= subs->n)
		return 0;
	struct rd r = { subs->p, subs->n, *off, 0 };
	s->topic = get_bytes(&r, 1, 255);
	s->after = get(&r, 8);
	if (r.bad || s->topic.n < 1)
		return -EBADMSG;
	*off = r.off;
	return 1;
}

int ho_put_worker(struct ho_buf *b, const struct ho_worker *w)
{
	if (w->pool.n > HO_POOL_MAX || w->ident.n > HO_IDENT_MAX || w->token.n > 64)
		return -EINVAL;
	size_t at = b->len;
	int rc = put(b, 0, 8) || put(b, w->id, 4) || put(b, w->pid, 4) || put(b, w->slot, 2) ||
		 put_bytes(b, w->pool.p, w->pool.n, 1) || put_bytes(b, w->ident.p, w->ident.n, 1) ||
		 put_bytes(b, w->token.p, w->token.n, 1) || put_bytes(b, w->held.p, w->held.n, 8) ||
		 put(b, w->zmq, 1) || put(b, w->counted, 8) || put(b, w->loop, 1);
	return rec_end(b, at, rc);
}

int ho_get_worker(const uint8_t *p, size_t n, struct ho_worker *w, size_t *used)
{
	struct rd r;
	size_t size;
	if (rec_open(p, n, &r, &size))
		return -EBADMSG;
	memset(w, 0, sizeof(*w));
	w->id = (uint32_t)get(&r, 4);
	w->pid = (uint32_t)get(&r, 4);
	w->slot = (uint16_t)get(&r, 2);
	w->pool = get_bytes(&r, 1, HO_POOL_MAX);
	w->ident = get_bytes(&r, 1, HO_IDENT_MAX);
	w->token = get_bytes(&r, 1, 64);
	w->held = get_bytes(&r, 8, SIZE_MAX);
	if (!r.bad && r.off < r.n) { /* version 2 ends before: a shm worker */
		w->zmq = (uint8_t)get(&r, 1);
		w->counted = get(&r, 8);
	}
	if (!r.bad && r.off < r.n) /* version 3 ends before: loop 0's */
		w->loop = (uint8_t)get(&r, 1);
	if (r.bad || !w->pool.n || !w->ident.n || w->zmq > 1 || (w->zmq && w->loop))
		return -EBADMSG;
	*used = size;
	return 0;
}

int ho_put_prog(struct ho_buf *b, const struct ho_prog *g)
{
	if (!g->name.n || g->name.n > HO_POOL_MAX)
		return -EINVAL;
	size_t at = b->len;
	int rc = put(b, 0, 8) || put_bytes(b, g->name.p, g->name.n, 1) || put(b, g->instance, 4) ||
		 put(b, g->pid, 4) || put(b, g->ran_ms, 4) || put(b, g->restarts, 4) || put(b, g->delay_ms, 4);
	return rec_end(b, at, rc);
}

int ho_get_prog(const uint8_t *p, size_t n, struct ho_prog *g, size_t *used)
{
	struct rd r;
	size_t size;
	if (rec_open(p, n, &r, &size))
		return -EBADMSG;
	g->name = get_bytes(&r, 1, HO_POOL_MAX);
	g->instance = (uint32_t)get(&r, 4);
	g->pid = (uint32_t)get(&r, 4);
	g->ran_ms = (uint32_t)get(&r, 4);
	g->restarts = (uint32_t)get(&r, 4);
	g->delay_ms = (uint32_t)get(&r, 4);
	if (r.bad || !g->name.n || !g->pid)
		return -EBADMSG;
	*used = size;
	return 0;
}

int ho_put_hist(struct ho_buf *b, const struct ho_hist *h)
{
	if (h->topic.n < 1 || h->topic.n > 255)
		return -EINVAL;
	size_t at = b->len;
	int rc = put(b, 0, 8) || put_bytes(b, h->topic.p, h->topic.n, 1) || put(b, h->epoch, 8) ||
		 put(b, h->last, 8) || put(b, h->quiet_ms, 4) || put(b, h->max, 4) || put(b, h->ttl_ms, 4) ||
		 put_bytes(b, h->msgs.p, h->msgs.n, 8);
	return rec_end(b, at, rc);
}

int ho_get_hist(const uint8_t *p, size_t n, struct ho_hist *h, size_t *used)
{
	struct rd r;
	size_t size;
	if (rec_open(p, n, &r, &size))
		return -EBADMSG;
	h->topic = get_bytes(&r, 1, 255);
	h->epoch = get(&r, 8);
	h->last = get(&r, 8);
	h->quiet_ms = (uint32_t)get(&r, 4);
	h->max = (uint32_t)get(&r, 4);
	h->ttl_ms = (uint32_t)get(&r, 4);
	h->msgs = get_bytes(&r, 8, SIZE_MAX);
	if (r.bad || !h->topic.n || !h->epoch)
		return -EBADMSG;
	*used = size;
	return 0;
}

int ho_put_hist_msg(struct ho_buf *b, const struct ho_hist_msg *m)
{
	if (m->payload.n > UINT32_MAX)
		return -EINVAL;
	size_t at = b->len;
	if (put(b, m->offset, 8) || put(b, m->age_ms, 4) || put(b, m->op, 1) || put(b, m->stamp, 1) ||
	    put_bytes(b, m->payload.p, m->payload.n, 4)) {
		b->len = at;
		return -ENOMEM;
	}
	return 0;
}

int ho_next_hist_msg(const struct ho_bytes *msgs, size_t *off, struct ho_hist_msg *m)
{
	if (*off >= msgs->n)
		return 0;
	struct rd r = { msgs->p, msgs->n, *off, 0 };
	m->offset = get(&r, 8);
	m->age_ms = (uint32_t)get(&r, 4);
	m->op = (uint8_t)get(&r, 1);
	m->stamp = (uint8_t)get(&r, 1);
	m->payload = get_bytes(&r, 4, UINT32_MAX);
	if (r.bad || !m->offset || (m->op != WS_OP_TEXT && m->op != WS_OP_BINARY) || m->stamp > 1)
		return -EBADMSG;
	*off = r.off;
	return 1;
}

int ho_put_held(struct ho_buf *b, const struct ho_held *h)
{
	if (h->body.n > UINT32_MAX)
		return -EINVAL;
	size_t at = b->len;
	if (put(b, h->type, 2) || put(b, h->flags, 2) || put(b, h->conn, 8) ||
	    put_bytes(b, h->body.p, h->body.n, 4)) {
		b->len = at;
		return -ENOMEM;
	}
	return 0;
}

int ho_next_held(const struct ho_bytes *held, size_t *off, struct ho_held *h)
{
	if (*off >= held->n)
		return 0;
	struct rd r = { held->p, held->n, *off, 0 };
	h->type = (uint16_t)get(&r, 2);
	h->flags = (uint16_t)get(&r, 2);
	h->conn = get(&r, 8);
	h->body = get_bytes(&r, 4, UINT32_MAX);
	if (r.bad)
		return -EBADMSG;
	*off = r.off;
	return 1;
}

int ho_put_u32(struct ho_buf *b, uint32_t v)
{
	return put(b, v, 4);
}

int ho_get_u32(const uint8_t *p, size_t n, uint32_t *v)
{
	struct rd r = { p, n, 0, 0 };
	*v = (uint32_t)get(&r, 4);
	return r.bad ? -EBADMSG : 0;
}
