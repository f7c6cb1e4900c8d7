/*
 * What must not be lost silently: a publish, a command forwarded to another gateway's
 * connection, a GONE. An entry is held while Redis is away, parked while its channel's
 * subscription is not confirmed, then sent; it is kept until Redis answered and, for a
 * publish whose topic has subscribers here, until the channel brought it back: when the
 * connection breaks first, those subscribers get it from here (cluster.c's teardown).
 */
#include "gateway/cluster_int.h"
#include "gateway/budget.h"
#include "gateway/log.h"
#include "gateway/stats.h"
#include "wsgw/protocol.h"

#include <stdlib.h>

struct pend *clu__pend_new(struct clu *k, size_t len)
{
	size_t size = sizeof(struct pend) + len;
	if ((clu__holding(k) && k->n_held >= k->cc->hold) || !bud_room(BUD_CLUSTER, size))
		return NULL;
	struct pend *e = calloc(1, size);
	if (!e)
		return NULL;
	bud_charge(BUD_CLUSTER, size);
	k->n_pend++;
	return e;
}

void clu__pend_free(struct clu *k, struct pend *e)
{
	if (e->ch)
		e->ch->refs--;
	bud_credit(BUD_CLUSTER, sizeof(*e) + e->len);
	k->n_pend--;
	free(e);
}

static void sent_link(struct clu *k, struct pend *e)
{
	e->sprev = k->sent.sprev;
	e->snext = &k->sent;
	k->sent.sprev->snext = e;
	k->sent.sprev = e;
}

void clu__pend_unlink(struct pend *e)
{
	e->sprev->snext = e->snext;
	e->snext->sprev = e->sprev;
	e->snext = e->sprev = NULL;
}

static void pend_done(struct clu *k, struct pend *e)
{
	if (e->replied && !e->in_echo) {
		clu__pend_unlink(e);
		clu__pend_free(k, e);
	}
}

void clu__pend_add(struct pend **head, struct pend **tail, struct pend *e)
{
	e->next = NULL;
	if (*tail)
		(*tail)->next = e;
	else
		*head = e;
	*tail = e;
}

void clu__pend_hold(struct clu *k, struct pend *e)
{
	clu__pend_add(&k->held_head, &k->held_tail, e);
	k->n_held++;
	stats.cluster_holding = k->n_held;
}

/* This gateway's subscribers get e now (Redis is away, or will not bring it back). */
void clu__pend_local(struct clu *k, struct pend *e)
{
	if (e->kind != PK_PUB || e->local_done)
		return;
	e->local_done = 1;
	*e->flags_at |= MF_LOCAL_DONE;
	struct top_msg m = e->m;
	m.offset = e->offset;
	m.epoch = e->epoch;
	k->ops->deliver(k->arg, &m);
}

static void on_pub_reply(redisAsyncContext *ac, void *reply, void *priv);

/* Sends e, or parks it behind its channel's subscription. */
void clu__pend_send(struct clu *k, struct pend *e)
{
	if (e->kind == PK_PUB && e->ch && e->ch->want && !e->local_done && !clu__confirmed(e->ch)) {
		/* Its subscribers here must see it come back: not before the channel is ours. */
		clu__pend_add(&e->ch->wait_head, &e->ch->wait_tail, e);
		return;
	}
	if (clu__redis_send(&k->cmd, on_pub_reply, e, e->cmd, e->len)) {
		/* The connection is going: its teardown will hold or deliver e. */
		clu__pend_local(k, e);
		clu__pend_hold(k, e);
		return;
	}
	sent_link(k, e);
	if (e->kind == PK_PUB && e->ch && e->ch->want && !e->local_done) {
		e->in_echo = 1;
		clu__pend_add(&e->ch->echo_head, &e->ch->echo_tail, e);
	}
}

void clu__pend_echo_pop(struct clu *k, struct chan *ch)
{
	struct pend *e = ch->echo_head;
	ch->echo_head = e->next;
	if (!ch->echo_head)
		ch->echo_tail = NULL;
	e->in_echo = 0;
	pend_done(k, e);
}

void clu__pend_dropped(struct clu *k, const char *what)
{
	stats.cluster_dropped++;
	if (!k->drop_logged) {
		k->drop_logged = 1;
		log_warn(0, "cluster: %s for other gateways: over --cluster-hold %u while Redis is "
			 "away (or over the memory budget); dropped, counted in wsgw_cluster_dropped_total",
			 what, k->cc->hold);
	}
}

static void on_pub_reply(redisAsyncContext *ac, void *reply, void *priv)
{
	struct pend *e = priv;
	redisReply *r = reply;
	struct clu *k = ((struct rconn *)ac->ev.data)->k;
	if (!r) {
		e->replied = 2; /* the teardown decides */
		return;
	}
	e->replied = 1;
	if (r->type == REDIS_REPLY_ERROR) {
		log_error(0, "cluster: Redis refused a %s: %s", e->kind == PK_PUB ? "publish" : "command",
			  r->str);
		stats.cluster_dropped++;
		if (e->in_echo) {
			/* It will not come back: its subscribers here get it now. Those after it
			 * may have come back already: this one is late, not lost. */
			struct chan *ch = e->ch;
			struct pend **pp = &ch->echo_head, *prev = NULL;
			while (*pp && *pp != e)
				prev = *pp, pp = &(*pp)->next;
			if (*pp) {
				*pp = e->next;
				if (ch->echo_tail == e)
					ch->echo_tail = prev;
			}
			e->in_echo = 0;
			clu__pend_local(k, e);
		}
		pend_done(k, e);
		return;
	}
	long long receivers = 0;
	if (e->history && r->type == REDIS_REPLY_ARRAY && r->elements == 3 &&
	    r->element[0]->type == REDIS_REPLY_STRING && r->element[1]->type == REDIS_REPLY_STRING) {
		e->offset = strtoull(r->element[0]->str, NULL, 10);
		e->epoch = strtoull(r->element[1]->str, NULL, 10);
		receivers = r->element[2]->integer;
	} else if (r->type == REDIS_REPLY_INTEGER) {
		receivers = r->integer;
	}
	stats.cluster_sent++;
	stats.cluster_receivers += (uint64_t)(receivers > 0 ? receivers : 0);
	if (k->recent[0].gen != k->read_gen) {
		k->recent[1] = k->recent[0];
		k->recent[0].gen = k->read_gen;
		k->recent[0].n = 0;
	}
	k->recent[0].n++;
	k->recent[0].at = clu__now(k);
	/* A command for a node no gateway serves: the connection exists nowhere. */
	if (e->kind == PK_FWD && receivers == 0) {
		if (e->rtype == WSGW_SENDMANY) {
			uint32_t count = e->blen >= 4 ? (uint32_t)(e->body[0] | e->body[1] << 8 |
								   e->body[2] << 16 | (uint32_t)e->body[3] << 24)
						      : 0;
			for (uint32_t i = 0; i < count && 4 + (size_t)(i + 1) * 8 <= e->blen; i++)
				k->ops->gone(k->arg, e->worker, clu__le64(e->body + 4 + (size_t)i * 8));
		} else {
			k->ops->gone(k->arg, e->worker, e->m.exclude);
		}
	}
	pend_done(k, e);
}

void clu__pend_out(struct clu *k, struct pend *e)
{
	if (clu__holding(k)) {
		stats.cluster_held++;
		clu__pend_hold(k, e);
	} else {
		clu__pend_send(k, e);
	}
}

void clu__pend_release(struct clu *k)
{
	struct pend *e;
	while ((e = k->held_head)) {
		k->held_head = e->next;
		if (!k->held_head)
			k->held_tail = NULL;
		k->n_held--;
		clu__pend_send(k, e);
	}
	stats.cluster_holding = 0;
}

