#include "gateway/topics.h"
#include "gateway/conn.h"
#include "gateway/handoff.h"
#include "gateway/log.h"
#include "wsgw/protocol.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <urcu.h>
#include <urcu/rculfhash.h>

/* A subscription: on its topic's array (at idx) and on its connection's list. */
struct top_sub {
	struct conn *c;
	struct topic *t;
	uint32_t idx;
	struct top_sub *next; /* the connection's next subscription */
	uint64_t after;       /* top_skips */
};

struct topic {
	struct cds_lfht_node node;
	struct rcu_head rcu;
	uint64_t id;
	uint32_t n, cap;
	struct top_sub **subs;
	uint8_t len;
	uint8_t name[WSGW_TOPIC_MAX];
};

static struct cds_lfht *index_;
/* Every loop subscribes its own connections and walks the subscribers of what it
 * publishes (gateway/loops.h): one lock over the subscriber arrays and counts. Recursive,
 * because a subscriber that closes in the middle of a walk leaves its topics then. */
static pthread_mutex_t mu;
static unsigned long n_topics, n_subs;
static uint64_t next_id = 1;
static void (*watch)(void *arg, const uint8_t *name, size_t n, unsigned count);
static void *watch_arg;

void top_set_watch(void (*fn)(void *arg, const uint8_t *name, size_t n, unsigned count),
		   void *arg)
{
	watch = fn;
	watch_arg = arg;
}

size_t top_stamp(char *buf, uint64_t offset, uint64_t epoch)
{
	return (size_t)snprintf(buf, WSGW_STAMP_MAX + 1, "%llu,%llu ", (unsigned long long)offset,
				(unsigned long long)epoch);
}

/* FNV-1a: topics are short; one pass per publish. */
static unsigned long hash_name(const void *name, size_t n)
{
	const uint8_t *p = name;
	uint64_t h = 0xcbf29ce484222325ull;
	for (size_t i = 0; i < n; i++)
		h = (h ^ p[i]) * 0x100000001b3ull;
	return (unsigned long)(h ^ h >> 31);
}

struct key {
	const void *name;
	size_t n;
};

static int match(struct cds_lfht_node *node, const void *k)
{
	const struct topic *t = caa_container_of(node, struct topic, node);
	const struct key *key = k;
	return t->len == key->n && memcmp(t->name, key->name, key->n) == 0;
}

int top_init(void)
{
	pthread_mutexattr_t a;
	pthread_mutexattr_init(&a);
	pthread_mutexattr_settype(&a, PTHREAD_MUTEX_RECURSIVE);
	pthread_mutex_init(&mu, &a);
	pthread_mutexattr_destroy(&a);
	index_ = cds_lfht_new(64, 64, 0, CDS_LFHT_AUTO_RESIZE | CDS_LFHT_ACCOUNTING, NULL);
	return index_ ? 0 : -ENOMEM;
}

void top_lock(void)
{
	pthread_mutex_lock(&mu);
}

void top_unlock(void)
{
	pthread_mutex_unlock(&mu);
}

void top_destroy(void)
{
	if (!index_)
		return;
	rcu_barrier();
	if (cds_lfht_destroy(index_, NULL))
		log_warn(0, "cds_lfht_destroy: topics left");
	index_ = NULL;
	pthread_mutex_destroy(&mu);
}

struct topic *top_find(const void *name, size_t n)
{
	struct key k = { name, n };
	struct cds_lfht_iter it;
	cds_lfht_lookup(index_, hash_name(name, n), match, &k, &it);
	struct cds_lfht_node *node = cds_lfht_iter_get_node(&it);
	return node ? caa_container_of(node, struct topic, node) : NULL;
}

uint64_t top_id(const struct topic *t)
{
	return t->id;
}

unsigned top_count(const struct topic *t)
{
	return t->n;
}

struct conn *top_conn(const struct topic *t, unsigned i)
{
	return t->subs[i]->c;
}

uint64_t top_after(const struct topic *t, unsigned i)
{
	return t->subs[i]->after;
}

int top_set_after(struct conn *c, const void *name, size_t n, uint64_t after)
{
	int rc = -ENOENT;
	top_lock();
	for (struct top_sub *s = c->subs; s && rc; s = s->next)
		if (s->t->len == n && memcmp(s->t->name, name, n) == 0) {
			s->after = after;
			rc = 0;
		}
	top_unlock();
	return rc;
}

unsigned long top_topics(void)
{
	return __atomic_load_n(&n_topics, __ATOMIC_RELAXED);
}

unsigned long top_subscriptions(void)
{
	return __atomic_load_n(&n_subs, __ATOMIC_RELAXED);
}

static void free_topic(struct rcu_head *head)
{
	struct topic *t = caa_container_of(head, struct topic, rcu);
	HANDOFF_ACQUIRE(t);
	free(t->subs);
	free(t);
}

static int subscribe(struct conn *c, const void *name, size_t n)
{
	for (struct top_sub *s = c->subs; s; s = s->next)
		if (s->t->len == n && memcmp(s->t->name, name, n) == 0)
			return 1;
	rcu_read_lock();
	struct topic *t = top_find(name, n);
	struct topic *fresh = NULL;
	if (!t) {
		fresh = t = calloc(1, sizeof(*t));
		if (!t) {
			rcu_read_unlock();
			return -ENOMEM;
		}
		t->id = next_id++;
		t->len = (uint8_t)n;
		memcpy(t->name, name, n);
		cds_lfht_node_init(&t->node);
	}
	struct top_sub *s = malloc(sizeof(*s));
	if (s && t->n == t->cap) {
		uint32_t cap = t->cap ? 2 * t->cap : 4;
		struct top_sub **v = realloc(t->subs, cap * sizeof(*v));
		if (v) {
			t->subs = v;
			t->cap = cap;
		} else {
			free(s);
			s = NULL;
		}
	}
	if (!s) {
		rcu_read_unlock();
		if (fresh)
			free_topic(&fresh->rcu);
		return -ENOMEM;
	}
	if (fresh) {
		cds_lfht_add(index_, hash_name(name, n), &t->node);
		__atomic_store_n(&n_topics, n_topics + 1, __ATOMIC_RELAXED);
	}
	rcu_read_unlock();
	s->c = c;
	s->t = t;
	s->idx = t->n;
	s->after = 0;
	t->subs[t->n++] = s;
	s->next = c->subs;
	c->subs = s;
	__atomic_store_n(&n_subs, n_subs + 1, __ATOMIC_RELAXED);
	if (watch)
		watch(watch_arg, t->name, t->len, t->n);
	return 0;
}

int top_subscribe(struct conn *c, const void *name, size_t n)
{
	if (n == 0 || n > WSGW_TOPIC_MAX)
		return -EINVAL;
	top_lock();
	int rc = subscribe(c, name, n);
	top_unlock();
	return rc;
}

/* Removes s from its topic (the last subscriber takes its place) and frees the topic when
 * it was the last; s itself is the caller's to unlink and free. */
static void unlink_sub(struct top_sub *s)
{
	struct topic *t = s->t;
	struct top_sub *last = t->subs[--t->n];
	t->subs[s->idx] = last;
	last->idx = s->idx;
	__atomic_store_n(&n_subs, n_subs - 1, __ATOMIC_RELAXED);
	if (watch)
		watch(watch_arg, t->name, t->len, t->n);
	if (t->n)
		return;
	rcu_read_lock();
	cds_lfht_del(index_, &t->node);
	rcu_read_unlock();
	__atomic_store_n(&n_topics, n_topics - 1, __ATOMIC_RELAXED);
	HANDOFF_RELEASE(t);
	call_rcu(&t->rcu, free_topic);
}

int top_unsubscribe(struct conn *c, const void *name, size_t n)
{
	int rc = -ENOENT;
	top_lock();
	for (struct top_sub **pp = &c->subs, *s; (s = *pp); pp = &s->next) {
		if (s->t->len != n || memcmp(s->t->name, name, n) != 0)
			continue;
		*pp = s->next;
		unlink_sub(s);
		free(s);
		rc = 0;
		break;
	}
	top_unlock();
	return rc;
}

void top_drop_conn(struct conn *c)
{
	if (!c->subs)
		return; /* the common case: no lock taken */
	top_lock();
	struct top_sub *s;
	while ((s = c->subs)) {
		c->subs = s->next;
		unlink_sub(s);
		free(s);
	}
	top_unlock();
}

void top_each_sub(const struct conn *c, void (*fn)(void *arg, const uint8_t *name, size_t n,
						   uint64_t after), void *arg)
{
	top_lock();
	for (const struct top_sub *s = c->subs; s; s = s->next)
		fn(arg, s->t->name, s->t->len, s->after);
	top_unlock();
}
