#include "gateway/door.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The buckets count milli-handshakes: one of rate R refills R per ms and holds 1000 R. */
struct ent {
	uint8_t addr[16];
	uint8_t v6;
	uint8_t used;
	uint32_t conns;
	uint32_t next;   /* the hash chain, or the free list: slot numbers, 0 ends */
	uint32_t last;   /* when tokens was brought up to date */
	int64_t tokens;
};

static struct {
	unsigned max_per_ip, rate, rate_per_ip;
	struct ent *e;       /* slot s is e[s - 1] */
	uint32_t n, cap;     /* slots ever used, allocated */
	uint32_t free;
	uint32_t *heads;
	uint32_t nheads;     /* a power of two, twice cap */
	unsigned long live;
	uint32_t sweep;
	int64_t all_tokens;
	uint32_t all_last;
	int all_init;
} D;

/* Everything in D, for every loop thread (door.h says why one lock). Outside D, so that
 * door_reset's memset leaves it be. */
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

void door_set_limits(unsigned max_per_ip, unsigned rate, unsigned rate_per_ip)
{
	pthread_mutex_lock(&lock);
	if (rate != D.rate)
		D.all_init = 0;
	D.max_per_ip = max_per_ip;
	D.rate = rate;
	D.rate_per_ip = rate_per_ip;
	pthread_mutex_unlock(&lock);
}

static uint32_t hash(const uint8_t *a)
{
	uint32_t h = 2166136261u; /* FNV-1a */
	for (int i = 0; i < 16; i++)
		h = (h ^ a[i]) * 16777619u;
	return h;
}

static int grow(void)
{
	uint32_t cap = D.cap ? 2 * D.cap : 256;
	struct ent *e = realloc(D.e, (size_t)cap * sizeof(*e));
	if (!e)
		return -1;
	D.e = e;
	D.cap = cap;
	uint32_t *h = calloc((size_t)cap * 2, sizeof(*h));
	if (!h)
		return -1;
	free(D.heads);
	D.heads = h;
	D.nheads = cap * 2;
	/* Free entries are on the free list, untouched; used ones join the new chains. */
	for (uint32_t s = 1; s <= D.n; s++) {
		struct ent *x = &D.e[s - 1];
		if (!x->used)
			continue;
		uint32_t b = hash(x->addr) & (D.nheads - 1);
		x->next = D.heads[b];
		D.heads[b] = s;
	}
	return 0;
}

static void refill(int64_t *tokens, uint32_t *last, unsigned rate, uint32_t now)
{
	int64_t full = (int64_t)rate * 1000;
	*tokens += (int64_t)(uint32_t)(now - *last) * rate;
	if (*tokens > full)
		*tokens = full;
	*last = now;
}

/* Takes one handshake from a bucket, or says in how many seconds there is one. */
static int take(int64_t *tokens, uint32_t *last, unsigned rate, uint32_t now, unsigned *retry_s)
{
	refill(tokens, last, rate, now);
	if (*tokens >= 1000) {
		*tokens -= 1000;
		return 1;
	}
	int64_t ms = (1000 - *tokens + rate - 1) / rate;
	*retry_s = (unsigned)((ms + 999) / 1000);
	if (*retry_s < 1)
		*retry_s = 1;
	return 0;
}

static uint32_t lookup(const uint8_t *key, uint8_t v6, uint32_t now)
{
	if (!D.nheads && grow())
		return 0;
	uint32_t b = hash(key) & (D.nheads - 1);
	for (uint32_t s = D.heads[b]; s; s = D.e[s - 1].next)
		if (D.e[s - 1].v6 == v6 && memcmp(D.e[s - 1].addr, key, 16) == 0)
			return s;
	uint32_t s = D.free;
	if (s) {
		D.free = D.e[s - 1].next;
	} else {
		if (D.n == D.cap && grow())
			return 0;
		s = ++D.n;
		b = hash(key) & (D.nheads - 1);
	}
	struct ent *x = &D.e[s - 1];
	memcpy(x->addr, key, 16);
	x->v6 = v6;
	x->used = 1;
	x->conns = 0;
	x->last = now;
	x->tokens = (int64_t)D.rate_per_ip * 1000;
	x->next = D.heads[b];
	D.heads[b] = s;
	D.live++;
	return s;
}

static void release(uint32_t s)
{
	struct ent *x = &D.e[s - 1];
	uint32_t *p = &D.heads[hash(x->addr) & (D.nheads - 1)];
	while (*p != s)
		p = &D.e[*p - 1].next;
	*p = x->next;
	x->used = 0;
	x->next = D.free;
	D.free = s;
	D.live--;
}

enum door_verdict door_enter(const struct sockaddr *sa, uint32_t now, uint32_t *slot,
			     uint16_t *port, unsigned *retry_s)
{
	uint8_t key[16] = { 0 };
	uint8_t v6 = sa->sa_family == AF_INET6;
	if (v6) {
		const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)sa;
		memcpy(key, &a->sin6_addr, 16);
		*port = ntohs(a->sin6_port);
	} else {
		const struct sockaddr_in *a = (const struct sockaddr_in *)sa;
		memcpy(key, &a->sin_addr, 4);
		*port = ntohs(a->sin_port);
	}
	return door_enter_key(v6, key, now, slot, retry_s);
}

static enum door_verdict enter(uint8_t v6, const uint8_t key[16], uint32_t now, uint32_t *slot,
			       unsigned *retry_s)
{
	*retry_s = 0;
	uint32_t s = *slot = lookup(key, v6, now);
	if (!s)
		return DOOR_OK;
	struct ent *x = &D.e[s - 1];
	x->conns++;
	if (D.max_per_ip && x->conns > D.max_per_ip)
		return DOOR_IP_FULL;
	if (D.rate_per_ip && !take(&x->tokens, &x->last, D.rate_per_ip, now, retry_s))
		return DOOR_RATE_IP;
	if (D.rate) {
		if (!D.all_init) {
			D.all_init = 1;
			D.all_tokens = (int64_t)D.rate * 1000;
			D.all_last = now;
		}
		if (!take(&D.all_tokens, &D.all_last, D.rate, now, retry_s)) {
			/* Its own bucket gave a token that was not used. */
			if (D.rate_per_ip)
				x->tokens += 1000;
			return DOOR_RATE_ALL;
		}
	}
	return DOOR_OK;
}

enum door_verdict door_enter_key(uint8_t v6, const uint8_t key[16], uint32_t now, uint32_t *slot,
				 unsigned *retry_s)
{
	pthread_mutex_lock(&lock);
	enum door_verdict v = enter(v6, key, now, slot, retry_s);
	pthread_mutex_unlock(&lock);
	return v;
}

static int in_use(uint32_t s)
{
	return s && s <= D.n && D.e[s - 1].used;
}

void door_leave(uint32_t s)
{
	pthread_mutex_lock(&lock);
	if (in_use(s)) {
		struct ent *x = &D.e[s - 1];
		/* Without a rate per address there is nothing to remember of one with no
		 * connection; with one, door_tick frees it once its bucket is full again. */
		if (--x->conns == 0 && !D.rate_per_ip)
			release(s);
	}
	pthread_mutex_unlock(&lock);
}

void door_tick(uint32_t now)
{
	pthread_mutex_lock(&lock);
	for (int i = 0; i < 4096 && D.n; i++) {
		uint32_t s = D.sweep % D.n + 1;
		D.sweep++;
		struct ent *x = &D.e[s - 1];
		if (!x->used || x->conns)
			continue;
		refill(&x->tokens, &x->last, D.rate_per_ip, now);
		if (!D.rate_per_ip || x->tokens >= (int64_t)D.rate_per_ip * 1000)
			release(s);
	}
	pthread_mutex_unlock(&lock);
}

/* The address of slot s as text, and whether it is IPv6; -1 (and "-") for none. */
static int addr_of(uint32_t s, char *out, size_t cap)
{
	if (!in_use(s)) {
		snprintf(out, cap, "-");
		return -1;
	}
	char host[INET6_ADDRSTRLEN];
	inet_ntop(D.e[s - 1].v6 ? AF_INET6 : AF_INET, D.e[s - 1].addr, host, sizeof(host));
	snprintf(out, cap, "%s", host);
	return D.e[s - 1].v6;
}

void door_addr(uint32_t s, char *out, size_t cap)
{
	pthread_mutex_lock(&lock);
	addr_of(s, out, cap);
	pthread_mutex_unlock(&lock);
}

int door_key(uint32_t s, uint8_t *v6, uint8_t key[16])
{
	int rc = -1;
	pthread_mutex_lock(&lock);
	if (in_use(s)) {
		*v6 = D.e[s - 1].v6;
		memcpy(key, D.e[s - 1].addr, 16);
		rc = 0;
	}
	pthread_mutex_unlock(&lock);
	return rc;
}

void door_peer(uint32_t s, uint16_t port, char *out, size_t cap)
{
	char host[INET6_ADDRSTRLEN + 2];
	pthread_mutex_lock(&lock);
	int v6 = addr_of(s, host, sizeof(host));
	pthread_mutex_unlock(&lock);
	if (v6 < 0)
		snprintf(out, cap, "-");
	else
		snprintf(out, cap, v6 ? "[%s]:%u" : "%s:%u", host, port);
}

unsigned long door_addresses(void)
{
	pthread_mutex_lock(&lock);
	unsigned long n = D.live;
	pthread_mutex_unlock(&lock);
	return n;
}

void door_reset(void)
{
	pthread_mutex_lock(&lock);
	free(D.e);
	free(D.heads);
	memset(&D, 0, sizeof(D));
	pthread_mutex_unlock(&lock);
}
