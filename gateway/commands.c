/* Commands from workers (gateway/pool.h): read from a shm worker's ring, or decoded from a
 * zmq worker's messages by the control channel, and carried out here: to one connection
 * (SEND, CLOSE, ACCEPT, REJECT, SUBSCRIBE, UNSUBSCRIBE, STAT), to a topic (PUBLISH), to a
 * list (SENDMANY), or answered (QUERY). Every length in a body is the worker's and checked. */
#include "gateway/conn.h"
#include "gateway/log.h"
#include "gateway/pool_int.h"
#include "gateway/stats.h"
#include "gateway/topics.h"
#include "gateway/utf8.h"
#include "wsgw/protocol.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* An answer from the gateway itself; a dying worker is past answering. */
static void reply(struct pools *ps, struct worker *w, uint16_t type, uint64_t conn,
		  const void *body, size_t n)
{
	if (w->state != WK_ALIVE)
		return;
	struct tr_rec r = { .type = type, .conn = conn, .a = body, .na = n };
	if (pool__push(ps, w, &r))
		log_error(ENOMEM, "answer to worker %u", w->id);
}

static void refuse(struct pools *ps, struct worker *w, uint64_t conn, const char *text)
{
	stats.commands_refused++;
	log_warn(0, "worker %u: %s (conn %llu)", w->id, text, (unsigned long long)conn);
	reply(ps, w, WSGW_ERROR, conn, text, strlen(text));
}

static void gone(struct pools *ps, struct worker *w, uint64_t conn)
{
	stats.gone_sent++;
	reply(ps, w, WSGW_GONE, conn, NULL, 0);
}

/* The connection, when it exists and w may command it: it is pinned to w. */
static struct conn *owned(struct worker *w, uint64_t id)
{
	struct conn *c = conn_lookup(id);
	return c && c->worker == w->slot && (c->flags & CONN_WORKER) ? c : NULL;
}

static uint16_t be16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static uint32_t le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t le64(const uint8_t *p)
{
	return (uint64_t)le32(p) | (uint64_t)le32(p + 4) << 32;
}

static void put_le(uint8_t *p, uint64_t v, int bytes)
{
	for (int i = 0; i < bytes; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static unsigned op_of(const struct shm_rec *r)
{
	return (r->flags & WSGW_F_BINARY) ? 2 /* WS_OP_BINARY */ : 1 /* WS_OP_TEXT */;
}

/* A text message or a close reason a client gets must be UTF-8 (RFC 6455 8.1): a browser
 * fails the connection otherwise, so a worker's bad text is refused here, to the worker. */
static int utf8_ok(const uint8_t *p, size_t n)
{
	return utf8_validate(UTF8_ACCEPT, p, n) == UTF8_ACCEPT;
}

static int text_ok(struct pools *ps, struct worker *w, const struct shm_rec *r, const uint8_t *p,
		   size_t n, const char *verb)
{
	if (op_of(r) != 1 || utf8_ok(p, n))
		return 1;
	char why[64];
	snprintf(why, sizeof(why), "%s text is not valid UTF-8", verb);
	refuse(ps, w, r->conn, why);
	return 0;
}

/* PUBLISH: u8 topic length, topic, payload; the record's connection is the one left out. */
static void publish(struct pools *ps, struct worker *w, const struct shm_rec *r)
{
	const uint8_t *p = r->payload;
	if (r->len < 2 || p[0] == 0 || (size_t)1 + p[0] > r->len) {
		refuse(ps, w, r->conn, "malformed PUBLISH: want u8 topic length (1-255), topic, payload");
		return;
	}
	size_t plen = r->len - 1 - p[0];
	if (plen > ps->cfg->max_message) {
		refuse(ps, w, r->conn, "PUBLISH payload over --max-message");
		return;
	}
	if (!text_ok(ps, w, r, p + 1 + p[0], plen, "PUBLISH"))
		return;
	ps->ops->publish(ps->arg, p + 1, p[0], op_of(r), p + 1 + p[0], plen, r->conn);
}

/* SENDMANY: u32 count, count ids, payload. Ids that are not w's get GONE. */
static void send_many(struct pools *ps, struct worker *w, const struct shm_rec *r)
{
	const uint8_t *p = r->payload;
	uint32_t count = r->len >= 4 ? le32(p) : 0;
	if (r->len < 4 || count == 0 || (uint64_t)count * 8 > r->len - 4) {
		refuse(ps, w, r->conn, "malformed SENDMANY: want u32 count (>= 1), ids, payload");
		return;
	}
	size_t plen = r->len - 4 - (size_t)count * 8;
	if (plen > ps->cfg->max_message) {
		refuse(ps, w, r->conn, "SENDMANY payload over --max-message");
		return;
	}
	if (!text_ok(ps, w, r, p + 4 + (size_t)count * 8, plen, "SENDMANY"))
		return;
	struct conn **conns = malloc((size_t)count * sizeof(*conns));
	if (!conns) {
		log_error(ENOMEM, "SENDMANY of worker %u to %u connections", w->id, count);
		stats.records_dropped++;
		return;
	}
	size_t n = 0;
	for (uint32_t i = 0; i < count; i++) {
		uint64_t id = le64(p + 4 + (size_t)i * 8);
		struct conn *c = owned(w, id);
		if (c)
			conns[n++] = c;
		else
			gone(ps, w, id);
	}
	if (n)
		ps->ops->send_many(ps->arg, conns, n, op_of(r), p + 4 + (size_t)count * 8, plen);
	free(conns);
}

/* QUERY: the topic. Answered with TOPIC: the topic, the count, the ids when few. */
static void query(struct pools *ps, struct worker *w, const struct shm_rec *r)
{
	if (r->len == 0 || r->len > WSGW_TOPIC_MAX) {
		refuse(ps, w, r->conn, "malformed QUERY: want a topic of 1-255 bytes");
		return;
	}
	struct topic *t = top_find(r->payload, r->len);
	unsigned count = t ? top_count(t) : 0;
	unsigned listed = count <= WSGW_TOPIC_LIST_MAX ? count : 0;
	size_t n = 1 + r->len + 4 + (size_t)listed * 8;
	uint8_t *body = malloc(n), *q = body;
	if (!body) {
		log_error(ENOMEM, "TOPIC for worker %u", w->id);
		return;
	}
	*q++ = (uint8_t)r->len;
	memcpy(q, r->payload, r->len);
	q += r->len;
	put_le(q, count, 4);
	q += 4;
	for (unsigned i = 0; i < listed; i++, q += 8)
		put_le(q, top_conn(t, i)->id, 8);
	reply(ps, w, WSGW_TOPIC, r->conn, body, n);
	free(body);
}

static void stat_reply(struct pools *ps, struct worker *w, struct conn *c)
{
	uint8_t body[12];
	uint32_t age = c->out.bytes ? loop_now(ps->loop) - c->out_since : 0;
	put_le(body, c->out.bytes, 8);
	put_le(body + 8, age, 4);
	reply(ps, w, WSGW_STAT, c->id, body, sizeof(body));
}

static void subscription(struct pools *ps, struct worker *w, struct conn *c,
			 const struct shm_rec *r)
{
	int rc = r->type == WSGW_SUBSCRIBE ? top_subscribe(c, r->payload, r->len)
					   : top_unsubscribe(c, r->payload, r->len);
	if (rc == -EINVAL || (r->type == WSGW_UNSUBSCRIBE && (r->len == 0 || r->len > WSGW_TOPIC_MAX)))
		refuse(ps, w, r->conn, "malformed SUBSCRIBE or UNSUBSCRIBE: want a topic of 1-255 bytes");
	else if (rc == -ENOMEM)
		log_error(ENOMEM, "conn %llu: SUBSCRIBE", (unsigned long long)c->id);
}

void pool_command(struct pools *ps, struct worker *w, const struct shm_rec *r)
{
	switch (r->type) {
	case WSGW_PUBLISH:
		publish(ps, w, r);
		return;
	case WSGW_SENDMANY:
		send_many(ps, w, r);
		return;
	case WSGW_QUERY:
		query(ps, w, r);
		return;
	}
	/* A connection that closed, or that belongs to another worker, is not this worker's
	 * to touch: GONE, never a delivery to someone else. */
	struct conn *c = owned(w, r->conn);
	if (!c) {
		gone(ps, w, r->conn);
		return;
	}
	switch (r->type) {
	case WSGW_SEND:
		if (text_ok(ps, w, r, r->payload, r->len, "SEND"))
			ps->ops->send(ps->arg, c, op_of(r), r->payload, r->len);
		break;
	case WSGW_CLOSE:
		if (r->len < 2) {
			refuse(ps, w, r->conn, "CLOSE without a code");
			break;
		}
		if (!utf8_ok(r->payload + 2, r->len - 2)) {
			/* The close goes ahead: the worker asked for it; the reason stays out. */
			refuse(ps, w, r->conn, "CLOSE reason is not valid UTF-8: closed without it");
			ps->ops->close(ps->arg, c, be16(r->payload), "", 0);
			break;
		}
		ps->ops->close(ps->arg, c, be16(r->payload), (const char *)r->payload + 2, r->len - 2);
		break;
	case WSGW_ACCEPT:
		ps->ops->accept(ps->arg, c, r->payload, r->len);
		break;
	case WSGW_REJECT:
		if (r->len < 2) {
			refuse(ps, w, r->conn, "REJECT without a status");
			break;
		}
		ps->ops->reject(ps->arg, c, be16(r->payload), (const char *)r->payload + 2, r->len - 2);
		break;
	case WSGW_SUBSCRIBE:
	case WSGW_UNSUBSCRIBE:
		subscription(ps, w, c, r);
		break;
	case WSGW_STATQ:
		stat_reply(ps, w, c);
		break;
	default:
		refuse(ps, w, r->conn, "unknown record type");
	}
}

int pool_ack(struct pools *ps, struct worker *w, uint64_t n, const char **why)
{
	(void)ps;
	/* Only frees what the worker had: the held records go in at the batch's end. */
	switch (wk_ack(w, n)) {
	case 0:
		w->stall_since = 0; /* it acknowledges: whatever waits, it is not stuck */
		return 0;
	case -ERANGE:
		*why = "ACK of more records than were sent";
		return -EINVAL;
	default:
		*why = "ACK is for zmq workers";
		return -EINVAL;
	}
}

struct cmd_ctx {
	struct pools *ps;
	struct worker *w;
};

static void on_record(void *arg, const struct shm_rec *r)
{
	struct cmd_ctx *x = arg;
	pool_command(x->ps, x->w, r);
}

int pool__poll_worker(struct pools *ps, struct worker *w)
{
	if (w->broken || !w->tr->ops->poll)
		return 0;
	struct cmd_ctx x = { ps, w };
	int n = w->tr->ops->poll(w->tr, on_record, &x);
	if (n >= 0)
		return n;
	w->broken = 1;
	pool_worker_fail(ps, w, "corrupt to-gateway ring");
	return 0;
}
