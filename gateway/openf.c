#include "gateway/openf.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

struct of_set {
	struct of_set *next; /* in its bucket */
	uint64_t hash;
	uint32_t refs;
	uint32_t n;
	uint8_t p[];
};

/* Chained buckets, doubled when there are more sets than buckets. */
static struct of_set **buckets;
static size_t n_buckets, n_sets;
/* Every loop opens worker connections, and one may close where another opened it (it
 * moved to a loop with a worker): once per connection's open and close, never per message. */
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;

static uint64_t hash_of(const uint8_t *p, size_t n)
{
	uint64_t h = 0xcbf29ce484222325u; /* FNV-1a */
	for (size_t i = 0; i < n; i++)
		h = (h ^ p[i]) * 0x100000001b3u;
	return h;
}

static int grow(void)
{
	size_t nb = n_buckets ? n_buckets * 2 : 64;
	struct of_set **b = calloc(nb, sizeof(*b));
	if (!b)
		return -1;
	for (size_t i = 0; i < n_buckets; i++)
		for (struct of_set *s = buckets[i], *next; s; s = next) {
			next = s->next;
			s->next = b[s->hash & (nb - 1)];
			b[s->hash & (nb - 1)] = s;
		}
	free(buckets);
	buckets = b;
	n_buckets = nb;
	return 0;
}

static struct of_set *get(const uint8_t *p, size_t n)
{
	uint64_t h = hash_of(p, n);
	if (n_buckets)
		for (struct of_set *s = buckets[h & (n_buckets - 1)]; s; s = s->next)
			if (s->hash == h && s->n == n && !memcmp(s->p, p, n)) {
				s->refs++;
				return s;
			}
	/* A full table only gets slower: growing may fail and the set is still made. */
	if (n_sets >= n_buckets && grow() && !n_buckets)
		return NULL;
	struct of_set *s = malloc(sizeof(*s) + n);
	if (!s)
		return NULL;
	s->hash = h;
	s->refs = 1;
	s->n = (uint32_t)n;
	if (n)
		memcpy(s->p, p, n);
	s->next = buckets[h & (n_buckets - 1)];
	buckets[h & (n_buckets - 1)] = s;
	n_sets++;
	return s;
}

struct of_set *of_get(const uint8_t *p, size_t n)
{
	if (n > UINT32_MAX)
		return NULL;
	pthread_mutex_lock(&mu);
	struct of_set *s = get(p, n);
	pthread_mutex_unlock(&mu);
	return s;
}

void of_put(struct of_set *s)
{
	if (!s)
		return;
	pthread_mutex_lock(&mu);
	if (--s->refs == 0) {
		struct of_set **pp = &buckets[s->hash & (n_buckets - 1)];
		while (*pp != s)
			pp = &(*pp)->next;
		*pp = s->next;
		n_sets--;
		free(s);
	}
	pthread_mutex_unlock(&mu);
}

const uint8_t *of_bytes(const struct of_set *s, size_t *n)
{
	*n = s->n;
	return s->p;
}

size_t of_count(void)
{
	pthread_mutex_lock(&mu);
	size_t n = n_sets;
	pthread_mutex_unlock(&mu);
	return n;
}
