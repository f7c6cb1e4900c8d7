/*
 * SUBSCRIBE since=OFFSET,EPOCH in a cluster. A topic's history is a Redis Stream (its
 * messages) and a hash (its epoch and last offset), written by the publish script. The
 * history is read by a script only once the topic's channel is subscribed here; live
 * messages that arrive meanwhile are buffered (clu_topic.c), and the answer gives the
 * connection both, oldest first, so nothing is missed between the two.
 */
#include "gateway/cluster_int.h"
#include "gateway/log.h"
#include "wsgw/protocol.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Answers q (through clu_ops.recovered) and frees it: msgs, the script's reply when it
 * recovered, then the live messages buffered meanwhile that the history did not have. */
static void rec_answer(struct clu *k, struct recq *q, int status, uint64_t offset,
		       uint64_t epoch, const redisReply *msgs)
{
	struct chan *ch = q->ch;
	size_t nm = msgs ? msgs->elements - 3 : 0;
	struct top_msg *v = malloc((nm + ch->buf_n + 1) * sizeof(*v));
	size_t n = 0;
	if (!v) {
		log_error(ENOMEM, "cluster: a recovery");
		status = WSGW_RECOVERY_UNAVAILABLE;
	}
	for (size_t i = 0; v && i < nm; i++) {
		const redisReply *e = msgs->element[3 + i];
		struct clu_msg pm;
		if (e->type != REDIS_REPLY_STRING ||
		    clu__chan_parse((const uint8_t *)e->str, e->len, &pm)) {
			status = WSGW_RECOVERY_TRIMMED;
			n = 0;
			break;
		}
		v[n++] = (struct top_msg){ .topic = ch->name, .tlen = ch->len,
					   .op = (pm.flags & MF_BINARY) ? 2 : 1, .p = pm.p, .n = pm.n,
					   .offset = pm.offset, .epoch = pm.epoch,
					   .stamp = !!(pm.flags & MF_STAMP) };
	}
	if (status == WSGW_RECOVERED && ch->buf_lost)
		status = WSGW_RECOVERY_TRIMMED;
	if (status != WSGW_RECOVERED)
		n = 0; /* what was fetched is not the whole: the application resyncs */
	/* Then what came live meanwhile and was not in the history read. */
	for (struct bmsg *b = ch->buf_head; v && b; b = b->next)
		if (!b->m.offset || b->m.offset > offset)
			v[n++] = b->m;
	struct clu_answer a = { .worker = q->worker, .conn = q->conn, .topic = ch->name,
				.tlen = ch->len, .status = status, .offset = offset, .epoch = epoch,
				.msgs = v, .n = n };
	k->ops->recovered(k->arg, &a);
	free(v);
	if (--ch->recovering == 0)
		clu__chan_buf_clear(ch);
	ch->refs--;
	free(q);
}

static void on_recover(redisAsyncContext *ac, void *reply, void *priv)
{
	struct recq *q = priv;
	struct clu *k = ((struct rconn *)ac->ev.data)->k;
	redisReply *r = reply;
	if (!r || r->type != REDIS_REPLY_ARRAY || r->elements < 3 ||
	    r->element[0]->type != REDIS_REPLY_INTEGER || r->element[1]->type != REDIS_REPLY_STRING ||
	    r->element[2]->type != REDIS_REPLY_STRING) {
		if (r)
			log_error(0, "cluster: history read: %s",
				  r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply");
		rec_answer(k, q, WSGW_RECOVERY_UNAVAILABLE, 0, 0, NULL);
		return;
	}
	static const int st[] = { WSGW_RECOVERED, WSGW_RECOVERY_EPOCH, WSGW_RECOVERY_TRIMMED };
	long long s = r->element[0]->integer;
	rec_answer(k, q, s >= 0 && s <= 2 ? st[s] : WSGW_RECOVERY_UNAVAILABLE,
		   strtoull(r->element[1]->str, NULL, 10), strtoull(r->element[2]->str, NULL, 10),
		   s == 0 ? r : NULL);
}

static void rec_send(struct clu *k, struct recq *q)
{
	struct chan *ch = q->ch;
	char mk[8 + WSGW_TOPIC_MAX], sk[8 + WSGW_TOPIC_MAX], since[24], epoch[24], max[16];
	size_t mn = (size_t)sprintf(mk, PFX "hm:"), sn = (size_t)sprintf(sk, PFX "hs:");
	memcpy(mk + mn, ch->name, ch->len);
	memcpy(sk + sn, ch->name, ch->len);
	snprintf(since, sizeof(since), "%llu", (unsigned long long)q->since);
	snprintf(epoch, sizeof(epoch), "%llu", (unsigned long long)q->epoch);
	snprintf(max, sizeof(max), "%u", q->max);
	const char *argv[] = { "EVALSHA", k->sha[S_RECOVER], "2", mk, sk, since, epoch, max };
	size_t lens[] = { 7, 40, 1, mn + ch->len, sn + ch->len, strlen(since), strlen(epoch),
			  strlen(max) };
	if (clu__redis_argv(&k->cmd, on_recover, q, 8, argv, lens))
		rec_answer(k, q, WSGW_RECOVERY_UNAVAILABLE, 0, 0, NULL);
}

void clu__rec_send_waiting(struct clu *k, struct chan *ch)
{
	struct recq *q;
	while ((q = ch->rwait)) {
		ch->rwait = q->next;
		rec_send(k, q);
	}
}

int clu_recover(struct clu *k, unsigned worker, uint64_t conn, const uint8_t *topic,
		size_t tlen, uint64_t since, uint64_t epoch)
{
	const struct cfg_history *h = cfg_history_match(k->cfg, topic, tlen);
	struct chan *ch = clu__chan_find(k, topic, tlen);
	if (k->state != ST_UP || !h || !ch)
		return -EAGAIN;
	struct recq *q = malloc(sizeof(*q));
	if (!q)
		return -EAGAIN;
	*q = (struct recq){ .ch = ch, .worker = worker, .conn = conn, .since = since,
			    .epoch = epoch, .max = h->max };
	ch->refs++;
	ch->recovering++;
	if (clu__confirmed(ch)) {
		rec_send(k, q);
	} else {
		/* Live messages must reach us before the history is read: after SUBSCRIBE. */
		struct recq **pp = &ch->rwait;
		while (*pp)
			pp = &(*pp)->next;
		q->next = NULL;
		*pp = q;
	}
	return 0;
}

void clu__rec_fail(struct clu *k, struct recq *q)
{
	rec_answer(k, q, WSGW_RECOVERY_UNAVAILABLE, 0, 0, NULL);
}
