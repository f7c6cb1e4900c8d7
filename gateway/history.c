#include "gateway/history.h"
#include "gateway/budget.h"
#include "gateway/log.h"
#include "wsgw/protocol.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct hist_msg {
	uint64_t offset;
	uint32_t at;     /* loop ms when it was published */
	uint8_t op, stamp;
	uint32_t n;
	uint8_t p[];
};

struct hist {
	struct hist *next;   /* the bucket's chain */
	uint64_t epoch;
	uint64_t last;       /* the last offset given */
	uint32_t max, ttl_ms; /* the rule, as of the last publish */
	uint32_t last_at;
	uint32_t head, count, cap; /* ring of the kept messages, oldest at head */
	struct hist_msg **ring;
	uint8_t len;
	uint8_t name[WSGW_TOPIC_MAX];
};

static struct hist **buckets;
static size_t n_buckets;
static unsigned long n_hist, n_msgs;
static uint64_t last_epoch;

/* FNV-1a, as the topic index. */
static size_t hash_name(const void *name, size_t n)
{
	const uint8_t *p = name;
	uint64_t h = 0xcbf29ce484222325ull;
	for (size_t i = 0; i < n; i++)
		h = (h ^ p[i]) * 0x100000001b3ull;
	return (size_t)(h ^ h >> 31);
}

static struct hist **slot_of(const void *name, size_t n)
{
	if (!n_buckets)
		return NULL;
	struct hist **pp = &buckets[hash_name(name, n) & (n_buckets - 1)];
	for (; *pp; pp = &(*pp)->next)
		if ((*pp)->len == n && memcmp((*pp)->name, name, n) == 0)
			return pp;
	return pp;
}

static struct hist *find(const void *name, size_t n)
{
	struct hist **pp = slot_of(name, n);
	return pp ? *pp : NULL;
}

/* Doubles the table when it is fuller than two per bucket; on OOM it stays as it is. */
static void grow(void)
{
	if (n_buckets && n_hist < 2 * n_buckets)
		return;
	size_t nb = n_buckets ? 2 * n_buckets : 64;
	struct hist **b = calloc(nb, sizeof(*b));
	if (!b)
		return;
	for (size_t i = 0; i < n_buckets; i++)
		for (struct hist *h = buckets[i], *next; h; h = next) {
			next = h->next;
			struct hist **pp = &b[hash_name(h->name, h->len) & (nb - 1)];
			h->next = *pp;
			*pp = h;
		}
	free(buckets);
	buckets = b;
	n_buckets = nb;
}

/* A new epoch: the time in microseconds, and never one given before. */
static uint64_t new_epoch(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	uint64_t e = (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
	if (e <= last_epoch)
		e = last_epoch + 1;
	return last_epoch = e;
}

static void drop_oldest(struct hist *h)
{
	struct hist_msg *m = h->ring[h->head];
	bud_credit(BUD_HISTORY, sizeof(*m) + m->n);
	free(m);
	h->head = (h->head + 1) % h->cap;
	h->count--;
	n_msgs--;
}

static void clear(struct hist *h)
{
	while (h->count)
		drop_oldest(h);
}

/* Drops what is older than the rule allows. */
static void age(struct hist *h, uint32_t now)
{
	while (h->count && now - h->ring[h->head]->at > h->ttl_ms)
		drop_oldest(h);
}

static void free_hist(struct hist **pp)
{
	struct hist *h = *pp;
	*pp = h->next;
	clear(h);
	free(h->ring);
	free(h);
	n_hist--;
}

/* Room for one more in the ring, up to max (the oldest goes at max). 0 or -ENOMEM. */
static int make_room(struct hist *h)
{
	while (h->count && h->count >= h->max)
		drop_oldest(h);
	if (h->count < h->cap)
		return 0;
	uint32_t cap = h->cap ? 2 * h->cap : 8;
	if (cap > h->max)
		cap = h->max;
	struct hist_msg **r = malloc(cap * sizeof(*r));
	if (!r)
		return -ENOMEM;
	for (uint32_t i = 0; i < h->count; i++)
		r[i] = h->ring[(h->head + i) % h->cap];
	free(h->ring);
	h->ring = r;
	h->head = 0;
	h->cap = cap;
	return 0;
}

/* m at offset, published at loop time at, as h's newest. 0, or -ENOMEM / -ENOBUFS (the
 * budget) after clearing h: a gap, nothing before it may be replayed as if it were whole. */
static int keep(struct hist *h, const struct top_msg *m, uint64_t offset, uint32_t at)
{
	size_t size = sizeof(struct hist_msg) + m->n;
	struct hist_msg *e = NULL;
	int rc = !bud_room(BUD_HISTORY, size) ? -ENOBUFS : make_room(h);
	if (rc == 0 && !(e = malloc(size)))
		rc = -ENOMEM;
	if (rc) {
		clear(h);
		return rc;
	}
	bud_charge(BUD_HISTORY, size);
	e->offset = offset;
	e->at = at;
	e->op = (uint8_t)m->op;
	e->stamp = (uint8_t)!!m->stamp;
	e->n = (uint32_t)m->n;
	if (m->n)
		memcpy(e->p, m->p, m->n);
	h->ring[(h->head + h->count) % h->cap] = e;
	h->count++;
	n_msgs++;
	return 0;
}

/* A new, empty history for the topic, in its bucket. NULL when out of memory (logged). */
static struct hist *make(const void *topic, size_t n, uint64_t epoch)
{
	grow();
	struct hist **pp = slot_of(topic, n);
	struct hist *h = pp ? calloc(1, sizeof(*h)) : NULL;
	if (!h) {
		log_error(ENOMEM, "history of a topic");
		return NULL;
	}
	h->epoch = epoch;
	h->len = (uint8_t)n;
	memcpy(h->name, topic, n);
	*pp = h;
	n_hist++;
	return h;
}

int hist_append(const struct cfg_history *rule, const struct top_msg *m, uint32_t now,
		uint64_t *offset, uint64_t *epoch)
{
	*offset = *epoch = 0;
	struct hist *h = find(m->topic, m->tlen);
	if (h && !h->count && now - h->last_at > h->ttl_ms) {
		free_hist(slot_of(m->topic, m->tlen)); /* gone quiet: a new epoch */
		h = NULL;
	}
	if (!h && !(h = make(m->topic, m->tlen, new_epoch())))
		return -ENOMEM;
	h->max = rule->max;
	h->ttl_ms = rule->ttl_ms;
	h->last_at = now;
	*offset = ++h->last;
	*epoch = h->epoch;
	age(h, now);
	return keep(h, m, *offset, now);
}

int hist_since(const void *topic, size_t n, uint64_t since, uint64_t epoch, uint32_t now,
	       void (*fn)(void *arg, const struct top_msg *m), void *arg, uint64_t *offset,
	       uint64_t *epoch_now)
{
	struct hist *h = find(topic, n);
	*offset = *epoch_now = 0;
	if (!h)
		return WSGW_RECOVERY_EPOCH;
	age(h, now);
	*offset = h->last;
	*epoch_now = h->epoch;
	if (epoch != h->epoch || since > h->last)
		return WSGW_RECOVERY_EPOCH;
	uint64_t first = h->count ? h->ring[h->head]->offset : h->last + 1;
	if (since + 1 < first)
		return WSGW_RECOVERY_TRIMMED;
	for (uint32_t i = 0; i < h->count; i++) {
		const struct hist_msg *e = h->ring[(h->head + i) % h->cap];
		if (e->offset <= since)
			continue;
		struct top_msg m = { .topic = topic, .tlen = n, .op = e->op, .p = e->p, .n = e->n,
				     .offset = e->offset, .epoch = h->epoch, .stamp = e->stamp };
		fn(arg, &m);
	}
	return WSGW_RECOVERED;
}

void hist_position(const void *topic, size_t n, uint32_t now, uint64_t *offset, uint64_t *epoch)
{
	struct hist *h = find(topic, n);
	*offset = *epoch = 0;
	if (!h || (!h->count && now - h->last_at > h->ttl_ms))
		return;
	*offset = h->last;
	*epoch = h->epoch;
}

void hist_expire(uint32_t now)
{
	for (size_t i = 0; i < n_buckets; i++)
		for (struct hist **pp = &buckets[i]; *pp;) {
			age(*pp, now);
			if (!(*pp)->count && now - (*pp)->last_at > (*pp)->ttl_ms)
				free_hist(pp);
			else
				pp = &(*pp)->next;
		}
}

void hist_destroy(void)
{
	for (size_t i = 0; i < n_buckets; i++)
		while (buckets[i])
			free_hist(&buckets[i]);
	free(buckets);
	buckets = NULL;
	n_buckets = 0;
}

int hist_ho_each(uint32_t now, int (*topic)(void *arg, const struct hist_ho_topic *t),
		 int (*msg)(void *arg, const struct top_msg *m, uint32_t age_ms), void *arg)
{
	for (size_t i = 0; i < n_buckets; i++)
		for (struct hist *h = buckets[i]; h; h = h->next) {
			struct hist_ho_topic t = { h->name, h->len, h->epoch, h->last, now - h->last_at,
						   h->max, h->ttl_ms };
			int rc = topic(arg, &t);
			for (uint32_t k = 0; rc == 0 && k < h->count; k++) {
				const struct hist_msg *e = h->ring[(h->head + k) % h->cap];
				struct top_msg m = { .topic = h->name, .tlen = h->len, .op = e->op, .p = e->p,
						     .n = e->n, .offset = e->offset, .epoch = h->epoch,
						     .stamp = e->stamp };
				rc = msg(arg, &m, now - e->at);
			}
			if (rc)
				return rc;
		}
	return 0;
}

int hist_ho_adopt(const struct hist_ho_topic *t, uint32_t now)
{
	if (find(t->topic, t->tlen))
		return -EEXIST;
	struct hist *h = make(t->topic, t->tlen, t->epoch);
	if (!h)
		return -ENOMEM;
	h->last = t->last;
	h->max = t->max ? t->max : 1;
	h->ttl_ms = t->ttl_ms;
	h->last_at = now - t->quiet_ms;
	/* Epochs given here stay new: never one the old process gave. */
	if (t->epoch > last_epoch)
		last_epoch = t->epoch;
	return 0;
}

int hist_ho_adopt_msg(const struct top_msg *m, uint32_t age_ms, uint32_t now)
{
	struct hist *h = find(m->topic, m->tlen);
	uint64_t newest = h && h->count ? h->ring[(h->head + h->count - 1) % h->cap]->offset : 0;
	if (!h || m->offset <= newest || m->offset > h->last)
		return -EINVAL;
	return keep(h, m, m->offset, now - age_ms);
}

unsigned long hist_topics(void)
{
	return n_hist;
}

unsigned long hist_messages(void)
{
	return n_msgs;
}
