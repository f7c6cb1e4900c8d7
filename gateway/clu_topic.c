/*
 * Topic channels. A gateway SUBSCRIBEs a topic's channel (wsgw:t:TOPIC) while it has local
 * subscribers (the topics index tells it: clu__chan_watch), so traffic follows interest.
 * A publish goes to the channel, through the history script when a --history rule covers
 * the topic, and every gateway subscribed, this one included, delivers what the channel
 * brings: one order per topic for every subscriber in the cluster.
 */
#include "gateway/cluster_int.h"
#include "gateway/budget.h"
#include "gateway/log.h"
#include "gateway/stats.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BUF_MAX 65536 /* live messages kept for recoveries in progress, per topic */

/* ---- the table of channels ---- */

struct chan *clu__chan_find(struct clu *k, const void *name, size_t n)
{
	if (!k->n_tab)
		return NULL;
	for (struct chan *ch = k->tab[clu__hash(name, n) & (k->n_tab - 1)]; ch; ch = ch->hnext)
		if (ch->len == n && memcmp(ch->name, name, n) == 0)
			return ch;
	return NULL;
}

static struct chan *chan_get(struct clu *k, const void *name, size_t n)
{
	struct chan *ch = clu__chan_find(k, name, n);
	if (ch)
		return ch;
	if (k->n_chan >= k->n_tab) {
		size_t nt = k->n_tab ? 2 * k->n_tab : 64;
		struct chan **t = calloc(nt, sizeof(*t));
		if (!t) {
			log_error(ENOMEM, "cluster: channel table");
			abort();
		}
		for (size_t i = 0; i < k->n_tab; i++)
			for (struct chan *c = k->tab[i], *next; c; c = next) {
				next = c->hnext;
				struct chan **pp = &t[clu__hash(c->name, c->len) & (nt - 1)];
				c->hnext = *pp;
				*pp = c;
			}
		free(k->tab);
		k->tab = t;
		k->n_tab = nt;
	}
	ch = calloc(1, sizeof(*ch));
	if (!ch) {
		log_error(ENOMEM, "cluster: a channel");
		abort();
	}
	ch->len = (uint8_t)n;
	memcpy(ch->name, name, n);
	struct chan **pp = &k->tab[clu__hash(name, n) & (k->n_tab - 1)];
	ch->hnext = *pp;
	*pp = ch;
	k->n_chan++;
	return ch;
}

void clu__chan_buf_clear(struct chan *ch)
{
	for (struct bmsg *b = ch->buf_head, *next; b; b = next) {
		next = b->next;
		bud_credit(BUD_CLUSTER, sizeof(*b) + b->m.n);
		free(b);
	}
	ch->buf_head = ch->buf_tail = NULL;
	ch->buf_n = 0;
	ch->buf_lost = 0;
}

void clu__chan_gc(struct clu *k)
{
	for (size_t i = 0; i < k->n_tab; i++)
		for (struct chan **pp = &k->tab[i], *ch; (ch = *pp);) {
			if (ch->want || ch->refs || ch->ops_pending || ch->last_op == OP_SUB ||
			    ch->dirty || ch->recovering || ch->wait_head || ch->echo_head || ch->rwait) {
				pp = &ch->hnext;
				continue;
			}
			*pp = ch->hnext;
			clu__chan_buf_clear(ch);
			free(ch);
			k->n_chan--;
		}
}

static void sub_cmd(struct clu *k, struct chan *ch, const char *verb)
{
	const void *parts[2] = { PFX "t:", ch->name };
	size_t lens[2] = { strlen(PFX "t:"), ch->len };
	char cmd[64 + WSGW_TOPIC_MAX], *o = clu__resp_begin(cmd, 2);
	o = clu__resp_str(o, verb);
	o = clu__resp_parts(o, 2, parts, lens, NULL);
	/* The callback is the same for every channel (hiredis keeps one per channel). */
	if (clu__redis_send(&k->sub, k->on_sub, k, cmd, (size_t)(o - cmd)) == 0) {
		ch->ops_pending++;
		ch->last_op = strcmp(verb, "SUBSCRIBE") == 0 ? OP_SUB : OP_UNSUB;
	}
}

void clu__chan_sync(struct clu *k, struct chan *ch)
{
	if (k->state == ST_DOWN || !k->sub.ac)
		return;
	if (ch->want && ch->last_op != OP_SUB)
		sub_cmd(k, ch, "SUBSCRIBE");
	else if (!ch->want && ch->last_op == OP_SUB)
		sub_cmd(k, ch, "UNSUBSCRIBE");
}

void clu__chan_dirty(struct clu *k, struct chan *ch)
{
	if (ch->dirty)
		return;
	ch->dirty = 1;
	ch->dnext = k->dirty;
	k->dirty = ch;
}

/* ---- messages ---- */

static int parse_u64_sp(const uint8_t **p, const uint8_t *end, uint64_t *v)
{
	const uint8_t *q = *p;
	uint64_t x = 0;
	if (q == end || *q < '0' || *q > '9')
		return -1;
	while (q < end && *q >= '0' && *q <= '9') {
		if (x > (UINT64_MAX - 9) / 10)
			return -1;
		x = x * 10 + (uint64_t)(*q++ - '0');
	}
	if (q == end || *q != ' ')
		return -1;
	*p = q + 1;
	*v = x;
	return 0;
}

int clu__chan_parse(const uint8_t *p, size_t n, struct clu_msg *m)
{
	const uint8_t *end = p + n;
	if (n < MSG_HDR || p[0] != 'w' || p[1] != 1)
		return -1;
	m->flags = p[2];
	m->node = (unsigned)(p[4] | p[5] << 8);
	m->seq = clu__le64(p + 6);
	m->exclude = clu__le64(p + 14);
	p += MSG_HDR;
	if (parse_u64_sp(&p, end, &m->offset) || parse_u64_sp(&p, end, &m->epoch))
		return -1;
	m->p = p;
	m->n = (size_t)(end - p);
	return 0;
}

static void put_msg_hdr(uint8_t *h, uint8_t flags, unsigned node, uint64_t seq, uint64_t exclude)
{
	h[0] = 'w';
	h[1] = 1;
	h[2] = flags;
	h[3] = 0;
	clu__put_le(h + 4, node, 2);
	clu__put_le(h + 6, seq, 8);
	clu__put_le(h + 14, exclude, 8);
}

/* Keeps a live message for the recoveries in progress on ch. */
static void buffer_live(struct clu *k, struct chan *ch, const struct top_msg *m)
{
	(void)k;
	if (ch->buf_n >= BUF_MAX || !bud_room(BUD_CLUSTER, sizeof(struct bmsg) + m->n)) {
		ch->buf_lost = 1;
		return;
	}
	struct bmsg *b = malloc(sizeof(*b) + m->n);
	if (!b) {
		ch->buf_lost = 1;
		return;
	}
	bud_charge(BUD_CLUSTER, sizeof(*b) + m->n);
	b->next = NULL;
	b->m = *m;
	b->m.topic = ch->name;
	b->m.p = b->p;
	if (m->n)
		memcpy(b->p, m->p, m->n);
	if (ch->buf_tail)
		ch->buf_tail->next = b;
	else
		ch->buf_head = b;
	ch->buf_tail = b;
	ch->buf_n++;
}

void clu__chan_message(struct clu *k, const uint8_t *topic, size_t tlen, const uint8_t *p,
		       size_t n)
{
	struct clu_msg pm;
	if (clu__chan_parse(p, n, &pm)) {
		log_warn(0, "cluster: a message on the channel of a topic that is not ours: ignored");
		return;
	}
	struct chan *ch = clu__chan_find(k, topic, tlen);
	if (pm.node == k->node && ch) {
		/* Ours, back: what was sent before it on this channel will not come any more. */
		while (ch->echo_head && ch->echo_head->seq <= pm.seq) {
			int it = ch->echo_head->seq == pm.seq;
			clu__pend_echo_pop(k, ch);
			if (it)
				break;
		}
	}
	if (pm.node == k->node && (pm.flags & MF_LOCAL_DONE))
		return;
	if (pm.node != k->node)
		stats.cluster_received++;
	struct top_msg m = { .topic = topic, .tlen = tlen,
			     .op = (pm.flags & MF_BINARY) ? 2 /* WS_OP_BINARY */ : 1 /* WS_OP_TEXT */,
			     .p = pm.p, .n = pm.n, .exclude = pm.exclude, .offset = pm.offset,
			     .epoch = pm.epoch, .stamp = !!(pm.flags & MF_STAMP) };
	k->ops->deliver(k->arg, &m);
	if (ch && ch->recovering)
		buffer_live(k, ch, &m);
}

struct chan *clu__chan_confirm(struct clu *k, const uint8_t *topic, size_t tlen)
{
	struct chan *ch = clu__chan_find(k, topic, tlen);
	if (!ch || !ch->ops_pending)
		return NULL;
	ch->ops_pending--;
	if (clu__confirmed(ch)) {
		/* What waited for the subscription goes now, in order. */
		struct pend *e;
		while ((e = ch->wait_head)) {
			ch->wait_head = e->next;
			if (!ch->wait_head)
				ch->wait_tail = NULL;
			clu__pend_send(k, e);
		}
		return ch;
	}
	if (ch->last_op == OP_UNSUB && !ch->ops_pending) {
		/* Unsubscribed: nothing sent before comes back now. */
		while (ch->echo_head)
			clu__pend_echo_pop(k, ch);
	}
	return NULL;
}

void clu__chan_watch(void *arg, const uint8_t *name, size_t n, unsigned count)
{
	struct clu *k = arg;
	struct chan *ch = count ? chan_get(k, name, n) : clu__chan_find(k, name, n);
	if (!ch)
		return;
	int want = count > 0;
	if (want != ch->want) {
		ch->want = (uint8_t)want;
		if (!want) {
			/* Nobody here waits for them to come back: send what waited. */
			struct pend *e;
			while ((e = ch->wait_head)) {
				ch->wait_head = e->next;
				if (!ch->wait_head)
					ch->wait_tail = NULL;
				clu__pend_send(k, e);
			}
		}
		clu__chan_sync(k, ch);
	}
	clu__chan_dirty(k, ch);
}

/* ---- publishing ---- */

void clu_publish(struct clu *k, const struct top_msg *m)
{
	const struct cfg_history *h = cfg_history_match(k->cfg, m->topic, m->tlen);
	uint8_t hdr[MSG_HDR];
	uint8_t flags = (uint8_t)((m->op == 2 ? MF_BINARY : 0) | (m->stamp ? MF_STAMP : 0));
	uint64_t seq = ++k->seq;
	put_msg_hdr(hdr, flags, k->node, seq, m->exclude);
	size_t tl = m->tlen, chl = strlen(PFX "t:") + tl;
	char max[16], age[16];
	size_t len;
	if (h) {
		snprintf(max, sizeof(max), "%u", h->max);
		snprintf(age, sizeof(age), "%u", h->ttl_ms);
		len = 32 + clu__resp_arg_size(7) + clu__resp_arg_size(40) + clu__resp_arg_size(1) +
		      2 * clu__resp_arg_size(strlen(PFX "hm:") + tl) + clu__resp_arg_size(chl) +
		      clu__resp_arg_size(MSG_HDR) + clu__resp_arg_size(m->n) +
		      clu__resp_arg_size(strlen(max)) + clu__resp_arg_size(strlen(age));
	} else {
		len = 16 + clu__resp_arg_size(7) + clu__resp_arg_size(chl) +
		      clu__resp_arg_size(MSG_HDR + 4 + m->n);
	}
	struct pend *e = clu__pend_new(k, len);
	if (!e) {
		/* Redis up, the memory budget full: nobody gets it, for a subscriber here getting
		 * it ahead of messages still on their way back would break the topic's order. */
		if (!clu__holding(k)) {
			clu__pend_dropped(k, "a publish");
			return;
		}
		clu__pend_dropped(k, "a publish held");
		k->ops->deliver(k->arg, m);
		return;
	}
	e->kind = PK_PUB;
	e->seq = seq;
	e->history = !!h;
	char *o;
	uint8_t *at;
	const void *chp[2] = { PFX "t:", m->topic };
	size_t chn[2] = { strlen(PFX "t:"), tl };
	if (h) {
		const void *mp[2] = { PFX "hm:", m->topic }, *sp[2] = { PFX "hs:", m->topic };
		size_t mn[2] = { strlen(PFX "hm:"), tl }, sn[2] = { strlen(PFX "hs:"), tl };
		o = clu__resp_begin(e->cmd, 10);
		o = clu__resp_str(o, "EVALSHA");
		o = clu__resp_str(o, k->sha[S_PUBLISH]);
		o = clu__resp_str(o, "2");
		o = clu__resp_parts(o, 2, mp, mn, NULL);
		o = clu__resp_parts(o, 2, sp, sn, NULL);
		o = clu__resp_parts(o, 2, chp, chn, &at);
		e->m.topic = at;
		o = clu__resp_parts(o, 1, (const void *[]){ hdr }, (size_t[]){ MSG_HDR }, &at);
		e->flags_at = at + 2;
		o = clu__resp_parts(o, 1, (const void *[]){ m->p }, (size_t[]){ m->n }, &at);
		e->m.p = at;
		o = clu__resp_str(o, max);
		o = clu__resp_str(o, age);
	} else {
		o = clu__resp_begin(e->cmd, 3);
		o = clu__resp_str(o, "PUBLISH");
		o = clu__resp_parts(o, 2, chp, chn, &at);
		e->m.topic = at;
		const void *parts[3] = { hdr, "0 0 ", m->p };
		size_t lens[3] = { MSG_HDR, 4, m->n };
		o = clu__resp_parts(o, 3, parts, lens, &at);
		e->flags_at = at - 4 - MSG_HDR + 2;
		e->m.p = at;
	}
	e->len = (size_t)(o - e->cmd);
	e->m.tlen = tl;
	e->m.op = m->op;
	e->m.n = m->n;
	e->m.exclude = m->exclude;
	e->m.stamp = m->stamp;
	e->ch = clu__chan_find(k, m->topic, tl);
	if (e->ch)
		e->ch->refs++;
	if (clu__holding(k)) {
		/* Redis is away (or what it held is not all out yet): here at once, and held for
		 * the other gateways. */
		clu__pend_local(k, e);
		stats.cluster_held++;
		clu__pend_hold(k, e);
		return;
	}
	clu__pend_send(k, e);
}
