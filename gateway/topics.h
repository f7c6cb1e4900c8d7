/*
 * The topic index: which connections subscribe to which topics. Topics are byte strings
 * of 1 to WSGW_TOPIC_MAX bytes; a topic exists while it has a subscriber and costs nothing
 * otherwise. Like the connection map it is a liburcu RCU hash table, so any thread may
 * look topics up inside rcu_read_lock(); only the loop thread subscribes, unsubscribes and
 * walks subscribers (the subscriber array is changed in place).
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
/* Ends every subscription of c. */
void top_drop_conn(struct conn *c);

/* The topic, or NULL when nobody subscribes. Call with rcu_read_lock held; valid until
 * rcu_read_unlock, and its subscribers until the loop thread changes them. */
struct topic *top_find(const void *name, size_t n);
/* An id no other topic had in the life of the gateway (a name may come back as a new topic). */
uint64_t top_id(const struct topic *t);
/* Subscribers now, and the i-th of them (i < top_count). */
unsigned top_count(const struct topic *t);
struct conn *top_conn(const struct topic *t, unsigned i);

/* Topics and subscriptions in the index, for /metrics. */
unsigned long top_topics(void);
unsigned long top_subscriptions(void);

#endif
