/*
 * The topic index: which connections subscribe to which topics. Topics are byte strings
 * of 1 to WSGW_TOPIC_MAX bytes; a topic exists while it has a subscriber and costs nothing
 * otherwise. Like the connection map it is a liburcu RCU hash table, so any thread may
 * look topics up inside rcu_read_lock(); each loop subscribes and unsubscribes its own
 * connections, and walks subscribers under top_lock (the subscriber array is changed in
 * place).
 *
 * A connection's subscriptions hang off the connection (conn->subs) and end with it
 * (top_drop_conn, called when it closes).
 */
#ifndef WSGW_TOPICS_H
#define WSGW_TOPICS_H

#include <stddef.h>
#include <stdint.h>

struct conn;
struct topic;

/* A message for a topic's subscribers, as PUBLISH makes it and a gateway of the cluster
 * receives it. */
struct top_msg {
	const uint8_t *topic;
	size_t tlen;
	unsigned op;            /* WS_OP_TEXT or WS_OP_BINARY */
	const void *p;
	size_t n;
	uint64_t exclude;       /* a connection left out; 0: none */
	uint64_t offset, epoch; /* its place in the topic's history; 0, 0: none */
	int stamp;              /* subscribers get "OFFSET,EPOCH " before the payload */
};

/* Writes m's stamp into buf (WSGW_STAMP_MAX bytes) and returns its length. */
size_t top_stamp(char *buf, uint64_t offset, uint64_t epoch);

/* What a subscription's `after` says of a message at offset: 1 when the subscriber must
 * not get it. UINT64_MAX: nothing yet (its missed messages are being fetched); otherwise
 * a message of the history at or before `after` (it has been replayed). */
static inline int top_skips(uint64_t after, uint64_t offset)
{
	return after && (after == UINT64_MAX || (offset && offset <= after));
}

/* Creates the index. 0 or -ENOMEM. Call once, from the loop thread, after conn_map_init. */
int top_init(void);
/* Frees the index; every connection must have dropped its subscriptions. */
void top_destroy(void);

/* Subscribes c to the topic. Returns 0, 1 when it already was, -EINVAL (empty or over
 * WSGW_TOPIC_MAX bytes), -ENOMEM (nothing changed). */
int top_subscribe(struct conn *c, const void *name, size_t n)
	__attribute__((warn_unused_result));
/* Returns 0, or -ENOENT when c was not subscribed. */
int top_unsubscribe(struct conn *c, const void *name, size_t n);
/* Each subscription of c, newest first (a live upgrade's record of it). */
void top_each_sub(const struct conn *c, void (*fn)(void *arg, const uint8_t *name, size_t n,
						   uint64_t after), void *arg);
/* Ends every subscription of c. */
void top_drop_conn(struct conn *c);

/* With several loops, each changes the subscribers of its own connections: a walk over
 * a topic's subscribers (top_find to top_conn) holds this lock, which the changes take
 * too. It nests: a subscriber closing during the walk changes them. */
void top_lock(void);
void top_unlock(void);

/* The topic, or NULL when nobody subscribes. Call with rcu_read_lock held; valid until
 * rcu_read_unlock, and its subscribers while top_lock is held. */
struct topic *top_find(const void *name, size_t n);
/* An id no other topic had in the life of the gateway (a name may come back as a new topic). */
uint64_t top_id(const struct topic *t);
/* Subscribers now, and the i-th of them (i < top_count). */
unsigned top_count(const struct topic *t);
struct conn *top_conn(const struct topic *t, unsigned i);
/* The i-th subscription's `after` (top_skips); 0 for a new one. */
uint64_t top_after(const struct topic *t, unsigned i);
/* Sets c's `after` for the topic. 0, or -ENOENT when c does not subscribe to it. */
int top_set_after(struct conn *c, const void *name, size_t n, uint64_t after);

/* Who wants to know when a topic's subscriber count changes (the cluster: it subscribes
 * a Redis channel while the count is above 0, and keeps the count in Redis). fn is called
 * after each change, with the count now (0: the topic is gone); it must not change the
 * index. NULL: nobody. */
void top_set_watch(void (*fn)(void *arg, const uint8_t *name, size_t n, unsigned count),
		   void *arg);

/* Topics and subscriptions in the index, for /metrics. */
unsigned long top_topics(void);
unsigned long top_subscriptions(void);

#endif
