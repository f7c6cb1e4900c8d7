/*
 * What concerns other gateways rather than topics. Their connections: a command (SEND,
 * CLOSE, SENDMANY) for a connection whose id carries another node is published on that
 * node's channel (wsgw:n:NODE), and one that no gateway takes is GONE. Presence: each
 * gateway keeps its share of a topic's subscribers (the count, and the ids when few) in
 * Redis with an expiry, so that a dead gateway's share goes by itself; QUERY adds up the
 * shares of the others.
 */
#include "gateway/cluster_int.h"
#include "gateway/conn.h"
#include "gateway/log.h"
#include "gateway/stats.h"
#include "wsgw/protocol.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <urcu.h>

/* A QUERY, until Redis answers. */
struct qreq {
	struct clu *k;
	unsigned worker;
	uint64_t qid;
	unsigned flags;
	uint8_t tlen;
	uint8_t topic[WSGW_TOPIC_MAX];
};

/* ---- commands for other gateways' connections ---- */

/* A message for a node's channel. */
static struct pend *node_pend(struct clu *k, unsigned node, char kind, uint16_t type,
			      uint16_t flags, unsigned worker, uint64_t conn, const void *body,
			      size_t blen)
{
	char chan[24];
	snprintf(chan, sizeof(chan), PFX "n:%u", node);
	size_t len = 16 + clu__resp_arg_size(7) + clu__resp_arg_size(strlen(chan)) +
		     clu__resp_arg_size(NODE_HDR + blen);
	struct pend *e = clu__pend_new(k, len);
	if (!e)
		return NULL;
	uint8_t h[NODE_HDR] = { 'w', 1, (uint8_t)kind, 0 };
	clu__put_le(h + 4, k->node, 2);
	clu__put_le(h + 6, type, 2);
	clu__put_le(h + 8, flags, 2);
	clu__put_le(h + 12, worker, 4);
	clu__put_le(h + 16, conn, 8);
	char *o = clu__resp_begin(e->cmd, 3);
	uint8_t *at;
	o = clu__resp_str(o, "PUBLISH");
	o = clu__resp_str(o, chan);
	o = clu__resp_parts(o, 2, (const void *[]){ h, body }, (size_t[]){ NODE_HDR, blen }, &at);
	e->len = (size_t)(o - e->cmd);
	e->kind = kind == 'F' ? PK_FWD : PK_GONE;
	e->worker = worker;
	e->m.exclude = conn; /* FWD: the connection, for GONE */
	e->body = at;
	e->blen = blen;
	e->rtype = type;
	return e;
}

void clu_forward(struct clu *k, unsigned worker, unsigned node, const struct shm_rec *r)
{
	struct pend *e = node_pend(k, node, 'F', r->type, r->flags, worker, r->conn, r->payload, r->len);
	if (!e) {
		clu__pend_dropped(k, "a command");
		return;
	}
	stats.cluster_forwarded++;
	clu__pend_out(k, e);
}

void clu_gone(struct clu *k, unsigned node, unsigned worker, uint64_t conn)
{
	struct pend *e = node_pend(k, node, 'G', WSGW_GONE, 0, worker, conn, NULL, 0);
	if (!e) {
		clu__pend_dropped(k, "a GONE");
		return;
	}
	clu__pend_out(k, e);
}

void clu__node_message(struct clu *k, const uint8_t *p, size_t n)
{
	if (n < NODE_HDR || p[0] != 'w' || p[1] != 1 || (p[2] != 'F' && p[2] != 'G')) {
		log_warn(0, "cluster: a malformed message on this gateway's channel: ignored");
		return;
	}
	unsigned node = (unsigned)(p[4] | p[5] << 8);
	unsigned worker = (unsigned)clu__le64(p + 12) & 0xffffffffu;
	uint64_t conn = clu__le64(p + 16);
	if (p[2] == 'G') {
		k->ops->gone(k->arg, worker, conn);
		return;
	}
	struct shm_rec r = { .type = (uint16_t)(p[6] | p[7] << 8), .flags = (uint16_t)(p[8] | p[9] << 8),
			     .conn = conn, .payload = p + NODE_HDR, .len = (uint32_t)(n - NODE_HDR) };
	stats.cluster_commands++;
	k->ops->command(k->arg, node, worker, &r);
}

/* ---- presence ---- */

static void pres_write(struct clu *k, struct chan *ch)
{
	const void *pp[2] = { PFX "p:", ch->name }, *ep[2] = { PFX "pe:", ch->name };
	size_t pn[2] = { strlen(PFX "p:"), ch->len }, en[2] = { strlen(PFX "pe:"), ch->len };
	char ttl[16];
	snprintf(ttl, sizeof(ttl), "%u", k->cc->ttl_ms);
	if (!ch->want) {
		char cmd[64 + 2 * WSGW_TOPIC_MAX], *o = clu__resp_begin(cmd, 3);
		o = clu__resp_str(o, "HDEL");
		o = clu__resp_parts(o, 2, pp, pn, NULL);
		o = clu__resp_str(o, k->node_s);
		clu__redis_send(&k->cmd, NULL, NULL, cmd, (size_t)(o - cmd));
		o = clu__resp_begin(cmd, 3);
		o = clu__resp_str(o, "ZREM");
		o = clu__resp_parts(o, 2, ep, en, NULL);
		o = clu__resp_str(o, k->node_s);
		clu__redis_send(&k->cmd, NULL, NULL, cmd, (size_t)(o - cmd));
		return;
	}
	/* The share: u32 count, then the ids when there are few (little-endian). */
	rcu_read_lock();
	top_lock();
	struct topic *t = top_find(ch->name, ch->len);
	unsigned count = t ? top_count(t) : 0;
	unsigned listed = count <= WSGW_TOPIC_LIST_MAX ? count : 0;
	uint8_t *share = malloc(4 + (size_t)listed * 8);
	if (share) {
		clu__put_le(share, count, 4);
		for (unsigned i = 0; i < listed; i++)
			clu__put_le(share + 4 + (size_t)i * 8, top_conn(t, i)->id, 8);
	}
	top_unlock();
	rcu_read_unlock();
	if (!share) {
		log_error(ENOMEM, "cluster: presence");
		return;
	}
	size_t len = 64 + clu__resp_arg_size(40) +
		     2 * clu__resp_arg_size(strlen(PFX "pe:") + ch->len) +
		     clu__resp_arg_size(4 + (size_t)listed * 8) + 64;
	char *cmd = malloc(len);
	if (cmd) {
		char *o = clu__resp_begin(cmd, 8);
		o = clu__resp_str(o, "EVALSHA");
		o = clu__resp_str(o, k->sha[S_PRES_SET]);
		o = clu__resp_str(o, "2");
		o = clu__resp_parts(o, 2, pp, pn, NULL);
		o = clu__resp_parts(o, 2, ep, en, NULL);
		o = clu__resp_str(o, k->node_s);
		o = clu__resp_arg(o, share, 4 + (size_t)listed * 8);
		o = clu__resp_str(o, ttl);
		clu__redis_send(&k->cmd, NULL, NULL, cmd, (size_t)(o - cmd));
	}
	free(cmd);
	free(share);
}

void clu__node_presence(struct clu *k)
{
	struct chan *ch;
	while ((ch = k->dirty)) {
		k->dirty = ch->dnext;
		ch->dirty = 0;
		pres_write(k, ch);
	}
}

/* ---- QUERY: the other gateways' shares ---- */

static void on_query(redisAsyncContext *ac, void *reply, void *priv)
{
	struct qreq *q = priv;
	struct clu *k = q->k;
	redisReply *r = reply;
	(void)ac;
	struct clu_answer a = { .worker = q->worker, .conn = q->qid, .topic = q->topic,
				.tlen = q->tlen, .flags = q->flags };
	uint64_t *ids = NULL;
	if (r && r->type == REDIS_REPLY_ARRAY && r->elements == 3 &&
	    r->element[0]->type == REDIS_REPLY_ARRAY) {
		const redisReply *h = r->element[0];
		size_t cap = 0;
		int all = 1;
		for (size_t i = 0; i + 1 < h->elements; i += 2)
			if (h->element[i + 1]->type == REDIS_REPLY_STRING && h->element[i + 1]->len >= 4)
				cap += (h->element[i + 1]->len - 4) / 8;
		ids = cap ? malloc(cap * sizeof(*ids)) : NULL;
		for (size_t i = 0; i + 1 < h->elements; i += 2) {
			const redisReply *f = h->element[i], *v = h->element[i + 1];
			if (f->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING || v->len < 4 ||
			    (f->len == strlen(k->node_s) && memcmp(f->str, k->node_s, f->len) == 0))
				continue; /* this gateway's share is read from its own index */
			const uint8_t *s = (const uint8_t *)v->str;
			uint64_t c = (uint64_t)s[0] | (uint64_t)s[1] << 8 | (uint64_t)s[2] << 16 |
				     (uint64_t)s[3] << 24;
			a.count += c;
			size_t listed = (v->len - 4) / 8;
			if (listed != c || !ids)
				all = 0;
			for (size_t j = 0; ids && all && j < listed; j++)
				ids[a.nids++] = clu__le64(s + 4 + j * 8);
		}
		if (!all)
			a.nids = 0;
		a.ids = ids;
		if (r->element[1]->type == REDIS_REPLY_STRING)
			a.offset = strtoull(r->element[1]->str, NULL, 10);
		if (r->element[2]->type == REDIS_REPLY_STRING)
			a.epoch = strtoull(r->element[2]->str, NULL, 10);
	} else if (r) {
		log_error(0, "cluster: presence query: %s",
			  r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply");
	}
	/* Without an answer (Redis went away), this gateway's share alone. */
	k->ops->topic(k->arg, &a);
	free(ids);
	free(q);
}

int clu_query(struct clu *k, unsigned worker, uint64_t qid, const uint8_t *topic, size_t tlen,
	      unsigned flags)
{
	if (k->state != ST_UP)
		return -EAGAIN;
	struct qreq *q = malloc(sizeof(*q));
	if (!q)
		return -EAGAIN;
	*q = (struct qreq){ .k = k, .worker = worker, .qid = qid, .flags = flags, .tlen = (uint8_t)tlen };
	memcpy(q->topic, topic, tlen);
	char pk[8 + WSGW_TOPIC_MAX], ek[8 + WSGW_TOPIC_MAX], mk[8 + WSGW_TOPIC_MAX];
	size_t pn = (size_t)sprintf(pk, PFX "p:"), en = (size_t)sprintf(ek, PFX "pe:"),
	       mn = (size_t)sprintf(mk, PFX "hm:");
	memcpy(pk + pn, topic, tlen);
	memcpy(ek + en, topic, tlen);
	memcpy(mk + mn, topic, tlen);
	const char *argv[] = { "EVALSHA", k->sha[S_PRES_GET], "3", pk, ek, mk };
	size_t lens[] = { 7, 40, 1, pn + tlen, en + tlen, mn + tlen };
	if (clu__redis_argv(&k->cmd, on_query, q, 6, argv, lens)) {
		free(q);
		return -EAGAIN;
	}
	return 0;
}

