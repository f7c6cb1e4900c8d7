/* Commands from workers (gateway/pool.h): read from a shm worker's ring, or decoded from a
 * zmq worker's messages by the control channel, and carried out here: to one connection
 * (SEND, CLOSE, ACCEPT, REJECT, SUBSCRIBE, UNSUBSCRIBE, STAT), to a topic (PUBLISH), to a
 * list (SENDMANY), or answered (QUERY). Every length in a body is the worker's and checked.
 * In a cluster, what concerns other gateways goes through gateway/cluster.h, and what
 * other gateways send for this one's connections comes back here (struct clu_ops). */
#include "gateway/clog.h"
#include "gateway/cluster.h"
#include "gateway/conn.h"
#include "gateway/history.h"
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
	struct conn *c = conn_lookup_here(id);
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

/* PUBLISH: u8 topic length, topic, payload; the record's connection is the one left out.
 * A topic with a --history rule numbers its messages: here, or in Redis for a cluster. */
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
	stats.published++;
	struct top_msg m = { .topic = p + 1, .tlen = p[0], .op = op_of(r), .p = p + 1 + p[0],
			     .n = plen, .exclude = r->conn, .stamp = !!(r->flags & WSGW_F_STAMP) };
	if (ps->clu) {
		clu_publish(ps->clu, &m);
		return;
	}
	const struct cfg_history *h = cfg_history_match(ps->cfg, m.topic, m.tlen);
	if (h && hist_append(h, &m, loop_now(ps->loop), &m.offset, &m.epoch))
		log_warn(0, "history of a topic: message %llu not kept (memory), the history starts after it",
			 (unsigned long long)m.offset);
	ps->ops->publish(ps->arg, &m);
}

/* The ids of a SENDMANY (body p, count of them) that belong to node, as a SENDMANY record
 * for that gateway. */
static void forward_many(struct pools *ps, struct worker *w, unsigned node, const uint8_t *p,
			 uint32_t count, size_t plen, const struct shm_rec *r)
{
	uint32_t k = 0;
	for (uint32_t i = 0; i < count; i++)
		k += clu_node_of(le64(p + 4 + (size_t)i * 8)) == node;
	uint8_t *body = malloc(4 + (size_t)k * 8 + plen);
	if (!body) {
		log_error(ENOMEM, "SENDMANY of worker %u for gateway %u", w->id, node);
		stats.records_dropped++;
		return;
	}
	put_le(body, k, 4);
	uint8_t *q = body + 4;
	for (uint32_t i = 0; i < count; i++)
		if (clu_node_of(le64(p + 4 + (size_t)i * 8)) == node) {
			memcpy(q, p + 4 + (size_t)i * 8, 8);
			q += 8;
		}
	memcpy(q, p + 4 + (size_t)count * 8, plen);
	struct shm_rec fr = { .type = WSGW_SENDMANY, .flags = r->flags, .payload = body,
			      .len = (uint32_t)(4 + (size_t)k * 8 + plen) };
	clu_forward(ps->clu, w->id, node, &fr);
	free(body);
}

/* SENDMANY: u32 count, count ids, payload. Ids that are not w's get GONE; in a cluster,
 * those of other gateways go to them, one SENDMANY per gateway. */
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
	unsigned self = ps->clu ? clu_node(ps->clu) : 0;
	size_t n = 0;
	for (uint32_t i = 0; i < count; i++) {
		uint64_t id = le64(p + 4 + (size_t)i * 8);
		unsigned node = clu_node_of(id);
		if (ps->clu && node != self) {
			/* The first id of each other gateway sends that gateway its share. */
			int first = 1;
			for (uint32_t j = 0; j < i && first; j++)
				first = clu_node_of(le64(p + 4 + (size_t)j * 8)) != node;
			if (first)
				forward_many(ps, w, node, p, count, plen, r);
			continue;
		}
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

/* TOPIC for w: this gateway's subscribers and the other gateways' (count, and their ids
 * when all are known), the ids listed when there are at most WSGW_TOPIC_LIST_MAX in all;
 * with WSGW_F_POSITION, the topic's position after them. */
static void answer_topic(struct pools *ps, struct worker *w, uint64_t qid, const uint8_t *topic,
			 size_t tlen, unsigned flags, uint64_t remote, const uint64_t *ids,
			 size_t nids, uint64_t offset, uint64_t epoch)
{
	top_lock();
	struct topic *t = top_find(topic, tlen);
	unsigned local = t ? top_count(t) : 0;
	uint64_t count = local + remote;
	int listed = count <= WSGW_TOPIC_LIST_MAX && nids == remote;
	int pos = !!(flags & WSGW_F_POSITION);
	size_t n = 1 + tlen + 4 + (listed ? (size_t)count * 8 : 0) + (pos ? 16 : 0);
	/* At most 8.5 KiB: on the stack, so that an answer is never lost to a failed malloc
	 * (the worker would wait for it). */
	uint8_t body[1 + WSGW_TOPIC_MAX + 4 + WSGW_TOPIC_LIST_MAX * 8 + 16], *q = body;
	*q++ = (uint8_t)tlen;
	memcpy(q, topic, tlen);
	q += tlen;
	put_le(q, count > UINT32_MAX ? UINT32_MAX : count, 4);
	q += 4;
	for (unsigned i = 0; listed && i < local; i++, q += 8)
		put_le(q, top_conn(t, i)->id, 8);
	top_unlock();
	for (size_t i = 0; listed && i < nids; i++, q += 8)
		put_le(q, ids[i], 8);
	if (pos) {
		put_le(q, offset, 8);
		put_le(q + 8, epoch, 8);
	}
	struct tr_rec rec = { .type = WSGW_TOPIC, .flags = (uint16_t)(pos ? WSGW_F_POSITION : 0),
			      .conn = qid, .a = body, .na = n };
	if (w->state == WK_ALIVE && pool__push(ps, w, &rec))
		log_error(ENOMEM, "answer to worker %u", w->id);
}

/* QUERY: the topic. Answered with TOPIC: the topic, the count, the ids when few; in a
 * cluster, once Redis said what the other gateways hold (or at once, alone, without it). */
static void query(struct pools *ps, struct worker *w, const struct shm_rec *r)
{
	if (r->len == 0 || r->len > WSGW_TOPIC_MAX) {
		refuse(ps, w, r->conn, "malformed QUERY: want a topic of 1-255 bytes");
		return;
	}
	if (ps->clu && clu_query(ps->clu, w->id, r->conn, r->payload, r->len, r->flags) == 0)
		return;
	uint64_t offset = 0, epoch = 0;
	if (!ps->clu)
		hist_position(r->payload, r->len, loop_now(ps->loop), &offset, &epoch);
	answer_topic(ps, w, r->conn, r->payload, r->len, r->flags, 0, NULL, 0, offset, epoch);
}

/* RECOVERY for w about c's subscription to topic. */
static void answer_recovery(struct pools *ps, struct worker *w, uint64_t conn, const uint8_t *topic,
			    size_t tlen, int status, uint64_t offset, uint64_t epoch, uint32_t replayed)
{
	uint8_t body[1 + 8 + 8 + 4 + 1 + WSGW_TOPIC_MAX];
	body[0] = (uint8_t)status;
	put_le(body + 1, offset, 8);
	put_le(body + 9, epoch, 8);
	put_le(body + 17, replayed, 4);
	body[21] = (uint8_t)tlen;
	memcpy(body + 22, topic, tlen);
	stats.recoveries[status < 5 ? status : 4]++;
	reply(ps, w, WSGW_RECOVERY, conn, body, 22 + tlen);
}

struct replay_ctx {
	struct pools *ps;
	struct conn *c;
	uint32_t n;
};

static void replay_one(void *arg, const struct top_msg *m)
{
	struct replay_ctx *x = arg;
	x->ps->ops->replay(x->ps->arg, x->c, m);
	x->n++;
}

/* SUBSCRIBE with since: u8 topic length, topic, u64 offset, u64 epoch. c subscribes, gets
 * what it missed after offset, then what comes live; w gets RECOVERY. */
static void subscribe_since(struct pools *ps, struct worker *w, struct conn *c,
			    const struct shm_rec *r)
{
	const uint8_t *p = r->payload;
	if (r->len < 2 || p[0] == 0 || r->len != (size_t)1 + p[0] + 16) {
		refuse(ps, w, r->conn, "malformed SUBSCRIBE since: want u8 topic length (1-255), topic, u64 offset, u64 epoch");
		return;
	}
	const uint8_t *topic = p + 1;
	size_t tlen = p[0];
	uint64_t since = le64(p + 1 + tlen), epoch = le64(p + 9 + tlen);
	if (top_subscribe(c, topic, tlen) < 0) {
		log_error(ENOMEM, "conn %llu: SUBSCRIBE", (unsigned long long)c->id);
		return;
	}
	if (!cfg_history_match(ps->cfg, topic, tlen)) {
		answer_recovery(ps, w, c->id, topic, tlen, WSGW_RECOVERY_NONE, 0, 0, 0);
		return;
	}
	if (ps->clu) {
		/* Live messages wait until the missed ones are in (clu_ops.recovered). */
		top_set_after(c, topic, tlen, UINT64_MAX);
		if (clu_recover(ps->clu, w->id, c->id, topic, tlen, since, epoch) == 0)
			return;
		top_set_after(c, topic, tlen, 0);
		answer_recovery(ps, w, c->id, topic, tlen, WSGW_RECOVERY_UNAVAILABLE, 0, 0, 0);
		return;
	}
	struct replay_ctx x = { ps, c, 0 };
	uint64_t offset, epoch_now;
	int st = hist_since(topic, tlen, since, epoch, loop_now(ps->loop), replay_one, &x, &offset,
			    &epoch_now);
	answer_recovery(ps, w, c->id, topic, tlen, st, offset, epoch_now, x.n);
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
	if (r->type == WSGW_SUBSCRIBE && (r->flags & WSGW_F_SINCE)) {
		subscribe_since(ps, w, c, r);
		return;
	}
	int rc = r->type == WSGW_SUBSCRIBE ? top_subscribe(c, r->payload, r->len)
					   : top_unsubscribe(c, r->payload, r->len);
	if (rc == -EINVAL || (r->type == WSGW_UNSUBSCRIBE && (r->len == 0 || r->len > WSGW_TOPIC_MAX)))
		refuse(ps, w, r->conn, "malformed SUBSCRIBE or UNSUBSCRIBE: want a topic of 1-255 bytes");
	else if (rc == -ENOMEM)
		clog_error(c, ENOMEM, "SUBSCRIBE");
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
	/* Another gateway's connection: that gateway carries the command out. (It has no
	 * owner there to check the worker against: any worker may address any connection of
	 * another gateway.) The command is checked here as it would be for a connection here,
	 * so that the answer comes from here and what goes on is valid. */
	if (ps->clu && (r->type == WSGW_SEND || r->type == WSGW_CLOSE) &&
	    clu_node_of(r->conn) != clu_node(ps->clu)) {
		unsigned node = clu_node_of(r->conn);
		if (r->type == WSGW_SEND) {
			if (text_ok(ps, w, r, r->payload, r->len, "SEND"))
				clu_forward(ps->clu, w->id, node, r);
		} else if (r->len < 2) {
			refuse(ps, w, r->conn, "CLOSE without a code");
		} else if (!utf8_ok(r->payload + 2, r->len - 2)) {
			refuse(ps, w, r->conn, "CLOSE reason is not valid UTF-8: closed without it");
			struct shm_rec code = *r;
			code.len = 2;
			clu_forward(ps->clu, w->id, node, &code);
		} else {
			clu_forward(ps->clu, w->id, node, r);
		}
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

/* --- what other gateways send (struct clu_ops) --- */

static void clu_deliver(void *arg, const struct top_msg *m)
{
	struct pools *ps = arg;
	rcu_read_lock();
	ps->ops->publish(ps->arg, m);
	rcu_read_unlock();
}

/* A connection another gateway's worker may address: open, and served by a worker. */
static struct conn *addressable(uint64_t id)
{
	struct conn *c = conn_lookup_here(id);
	return c && (c->flags & CONN_WORKER) ? c : NULL;
}

static void clu_command(void *arg, unsigned node, unsigned worker, const struct shm_rec *r)
{
	struct pools *ps = arg;
	rcu_read_lock();
	if (r->type == WSGW_SENDMANY) {
		const uint8_t *p = r->payload;
		uint32_t count = r->len >= 4 ? le32(p) : 0;
		struct conn **conns = count && (uint64_t)count * 8 <= r->len - 4
					      ? malloc((size_t)count * sizeof(*conns)) : NULL;
		size_t n = 0;
		for (uint32_t i = 0; conns && i < count; i++) {
			uint64_t id = le64(p + 4 + (size_t)i * 8);
			struct conn *c = addressable(id);
			if (c)
				conns[n++] = c;
			else
				clu_gone(ps->clu, node, worker, id);
		}
		if (n)
			ps->ops->send_many(ps->arg, conns, n, op_of(r), p + 4 + (size_t)count * 8,
					   r->len - 4 - (size_t)count * 8);
		free(conns);
		rcu_read_unlock();
		return;
	}
	struct conn *c = addressable(r->conn);
	if (!c)
		clu_gone(ps->clu, node, worker, r->conn);
	else if (r->type == WSGW_SEND)
		ps->ops->send(ps->arg, c, op_of(r), r->payload, r->len);
	else if (r->type == WSGW_CLOSE && r->len >= 2)
		ps->ops->close(ps->arg, c, be16(r->payload), (const char *)r->payload + 2, r->len - 2);
	rcu_read_unlock();
}

static void clu_gone_cb(void *arg, unsigned worker, uint64_t conn)
{
	struct pools *ps = arg;
	struct worker *w = pool_worker(ps, worker);
	if (w)
		gone(ps, w, conn);
}

static void clu_topic(void *arg, const struct clu_answer *a)
{
	struct pools *ps = arg;
	struct worker *w = pool_worker(ps, a->worker);
	if (!w)
		return;
	rcu_read_lock();
	answer_topic(ps, w, a->conn, a->topic, a->tlen, a->flags, a->count, a->ids, a->nids,
		     a->offset, a->epoch);
	rcu_read_unlock();
}

static void clu_recovered(void *arg, const struct clu_answer *a)
{
	struct pools *ps = arg;
	rcu_read_lock();
	struct conn *c = conn_lookup_here(a->conn);
	uint64_t after = a->offset;
	for (size_t i = 0; i < a->n; i++)
		if (a->msgs[i].offset > after)
			after = a->msgs[i].offset;
	/* Unsubscribed (or closed) meanwhile: nothing to replay, nobody to tell. */
	if (!c || c->state == CONN_DEAD || top_set_after(c, a->topic, a->tlen, after ? after : 0)) {
		rcu_read_unlock();
		return;
	}
	for (size_t i = 0; i < a->n; i++)
		ps->ops->replay(ps->arg, c, &a->msgs[i]);
	struct worker *w = pool_worker(ps, a->worker);
	if (w)
		answer_recovery(ps, w, a->conn, a->topic, a->tlen, a->status, a->offset, a->epoch,
				a->status == WSGW_RECOVERED ? (uint32_t)a->n : 0);
	rcu_read_unlock();
}

static const struct clu_ops clu_ops = {
	.deliver = clu_deliver,
	.command = clu_command,
	.gone = clu_gone_cb,
	.topic = clu_topic,
	.recovered = clu_recovered,
};

void pool_set_cluster(struct pools *ps, struct clu *k)
{
	ps->clu = k;
	clu_set_ops(k, &clu_ops, ps);
}
