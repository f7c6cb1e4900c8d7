#include "gateway/conn.h"
#include "gateway/handoff.h"
#include "gateway/budget.h"
#include "gateway/bufpool.h"
#include "gateway/log.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>

/* Slab chunks are never returned: the high-water mark of connections stays mapped. */

#define SLAB_CHUNK (256u << 10)

static struct cds_lfht *map;
static uint64_t next_id = 1;  /* atomic: every loop makes connections */
static unsigned long live;    /* atomic */
/* Filled by call_rcu's thread after grace periods; the loop takes the whole list at once
 * into `ready`, so the lock is taken once per refill, not once per connection. (liburcu's
 * lock-free stack was tried: its push trips UBSan with a NULL member access.) */
static pthread_mutex_t freed_lock = PTHREAD_MUTEX_INITIALIZER;
static struct conn *freed;
/* The loop the calling thread runs: new connections are its, conn_for_each walks its. */
static _Thread_local unsigned this_loop;
/* Each loop thread carves and reuses on its own: only the freed list is shared. */
static _Thread_local struct conn *ready;
static _Thread_local uint8_t *chunk_next, *chunk_end;

static struct conn *slab_alloc(void)
{
	if (!ready) {
		pthread_mutex_lock(&freed_lock);
		ready = freed;
		freed = NULL;
		pthread_mutex_unlock(&freed_lock);
	}
	if (ready) {
		struct conn *c = ready;
		ready = c->free_next;
		return c;
	}
	if (chunk_next == chunk_end) {
		void *p = mmap(NULL, SLAB_CHUNK, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (p == MAP_FAILED)
			return NULL;
		chunk_next = p;
		chunk_end = chunk_next + SLAB_CHUNK / sizeof(struct conn) * sizeof(struct conn);
	}
	struct conn *c = (struct conn *)chunk_next;
	chunk_next += sizeof(struct conn);
	return c;
}

/* ids are sequential, so mix them before they pick buckets. */
static unsigned long hash_id(uint64_t id)
{
	id ^= id >> 33;
	id *= 0xff51afd7ed558ccdULL;
	id ^= id >> 33;
	return (unsigned long)id;
}

static int match_id(struct cds_lfht_node *node, const void *key)
{
	const struct conn *c = caa_container_of(node, struct conn, node);
	return c->id == *(const uint64_t *)key;
}

int conn_map_init(void)
{
	map = cds_lfht_new(1024, 1024, 0, CDS_LFHT_AUTO_RESIZE | CDS_LFHT_ACCOUNTING, NULL);
	return map ? 0 : -ENOMEM;
}

void conn_map_destroy(void)
{
	if (!map)
		return;
	/* Grace periods must be over before the table goes: rcu_barrier waits for frees. */
	rcu_barrier();
	if (cds_lfht_destroy(map, NULL))
		log_warn(0, "cds_lfht_destroy: table not empty");
	map = NULL;
}

void conn_set_first_id(uint64_t id)
{
	__atomic_store_n(&next_id, id, __ATOMIC_RELAXED);
}

static struct conn *conn_make(int fd, uint64_t id)
{
	struct conn *c = slab_alloc();
	if (c)
		memset(c, 0, sizeof(*c));
	if (!c) {
		log_error(ENOMEM, "conn_new");
		abort();
	}
	c->kind = EP_CONN;
	c->fd = fd;
	c->id = id;
	/* Before the map publishes it: another loop walking the map reads this first. */
	__atomic_store_n(&c->loop, (uint8_t)this_loop, __ATOMIC_RELEASE);
	cds_lfht_node_init(&c->node);
	rcu_read_lock();
	cds_lfht_add(map, hash_id(c->id), &c->node);
	rcu_read_unlock();
	__atomic_add_fetch(&live, 1, __ATOMIC_RELAXED);
	return c;
}

struct conn *conn_new(int fd)
{
	return conn_make(fd, __atomic_fetch_add(&next_id, 1, __ATOMIC_RELAXED));
}

struct conn *conn_adopt(int fd, uint64_t id)
{
	/* 0 is no id; the counter cannot go past UINT64_MAX. A cluster's ids carry the node
	 * in their top bits (conn_set_first_id), so any other id may be one of ours. */
	if (id == 0 || id == UINT64_MAX)
		return NULL;
	rcu_read_lock();
	int taken = conn_lookup(id) != NULL;
	rcu_read_unlock();
	if (taken)
		return NULL;
	conn_set_next_id(id + 1);
	return conn_make(fd, id);
}

uint64_t conn_next_id(void)
{
	return __atomic_load_n(&next_id, __ATOMIC_RELAXED);
}

void conn_set_next_id(uint64_t id)
{
	uint64_t cur = conn_next_id();
	while (id > cur && !__atomic_compare_exchange_n(&next_id, &cur, id, 0, __ATOMIC_RELAXED,
							__ATOMIC_RELAXED))
		;
}

static void free_rcu(struct rcu_head *head)
{
	struct conn *c = caa_container_of(head, struct conn, rcu);
	HANDOFF_ACQUIRE(c);
	pthread_mutex_lock(&freed_lock);
	c->free_next = freed;
	freed = c;
	pthread_mutex_unlock(&freed_lock);
}

void conn_release(struct conn *c)
{
	rcu_read_lock();
	int rc = cds_lfht_del(map, &c->node);
	rcu_read_unlock();
	if (rc)
		log_error(0, "conn %llu was not in the map", (unsigned long long)c->id);
	__atomic_sub_fetch(&live, 1, __ATOMIC_RELAXED);
	HANDOFF_RELEASE(c);
	call_rcu(&c->rcu, free_rcu);
}

struct conn *conn_lookup(uint64_t id)
{
	struct cds_lfht_iter it;
	cds_lfht_lookup(map, hash_id(id), match_id, &id, &it);
	struct cds_lfht_node *node = cds_lfht_iter_get_node(&it);
	return node ? caa_container_of(node, struct conn, node) : NULL;
}

static void each(int all, void (*fn)(struct conn *c, void *arg), void *arg)
{
	struct cds_lfht_iter it;
	rcu_read_lock();
	/* Not cds_lfht_for_each_entry: it applies container_of to the NULL that ends the
	 * walk, which UBSan rightly reports. */
	cds_lfht_first(map, &it);
	for (struct cds_lfht_node *n; (n = cds_lfht_iter_get_node(&it)) != NULL;) {
		cds_lfht_next(map, &it);
		struct conn *c = caa_container_of(n, struct conn, node);
		if (all || conn_loop(c) == this_loop)
			fn(c, arg);
	}
	rcu_read_unlock();
}

struct conn *conn_lookup_here(uint64_t id)
{
	struct conn *c = conn_lookup(id);
	return c && conn_loop(c) == this_loop ? c : NULL;
}

void conn_thread_loop(unsigned index)
{
	this_loop = index;
}

void conn_for_each(void (*fn)(struct conn *c, void *arg), void *arg)
{
	each(0, fn, arg);
}

void conn_for_each_all(void (*fn)(struct conn *c, void *arg), void *arg)
{
	each(1, fn, arg);
}

unsigned conn_loop(const struct conn *c)
{
	return __atomic_load_n(&c->loop, __ATOMIC_ACQUIRE);
}

unsigned long conn_count(void)
{
	return __atomic_load_n(&live, __ATOMIC_RELAXED);
}

int conn_msg_grow(struct conn *c, uint32_t cap)
{
	if (cap <= c->msg_cap)
		return 0;
	if (!bud_room(BUD_ASSEMBLY, cap - c->msg_cap))
		return -ENOBUFS;
	/* From the pool, as the frames are: assembling a message allocates nothing in
	 * steady state. */
	size_t got;
	uint8_t *m = bp_get(cap, &got);
	if (!m)
		return -ENOMEM;
	if (c->msg_len)
		memcpy(m, c->msg, c->msg_len);
	bp_put(c->msg, c->msg_cap);
	bud_charge(BUD_ASSEMBLY, got - c->msg_cap);
	c->msg = m;
	c->msg_cap = (uint32_t)got;
	return 0;
}

void conn_msg_free(struct conn *c)
{
	bud_credit(BUD_ASSEMBLY, c->msg_cap);
	bp_put(c->msg, c->msg_cap);
	c->msg = NULL;
	c->msg_len = c->msg_cap = 0;
}

void conn_peer(const struct conn *c, char *out, size_t cap)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	char host[INET6_ADDRSTRLEN] = "?";
	unsigned port = 0;
	if (getpeername(c->fd, (struct sockaddr *)&ss, &len) == 0) {
		if (ss.ss_family == AF_INET6) {
			const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)&ss;
			inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof(host));
			port = ntohs(a->sin6_port);
		} else {
			const struct sockaddr_in *a = (const struct sockaddr_in *)&ss;
			inet_ntop(AF_INET, &a->sin_addr, host, sizeof(host));
			port = ntohs(a->sin_port);
		}
	} else {
		ss.ss_family = AF_INET;
	}
	snprintf(out, cap, ss.ss_family == AF_INET6 ? "[%s]:%u" : "%s:%u", host, port);
}
