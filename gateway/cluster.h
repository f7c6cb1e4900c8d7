/*
 * The cluster: several gateways joined through Redis (docs/SCALING.md). Redis is the
 * engine and nothing here is a protocol of its own beyond the bytes of a message:
 *
 * - Topics: a gateway SUBSCRIBEs the channel of a topic while it has local subscribers
 *   (so traffic follows interest, as in Centrifugo). A PUBLISH goes to Redis, and every
 *   gateway subscribed, this one included, delivers what the channel brings, in the order
 *   Redis gave it: one order per topic for every subscriber in the cluster. A topic with a
 *   --history rule is published by a script that numbers the message (its offset within
 *   the topic's epoch) and adds it to the topic's Redis Stream, atomically.
 * - Addressing: connection ids carry the gateway's node id in their top bits
 *   (clu_node_of); a command for another gateway's connection is published on that
 *   gateway's own channel, and an answer nobody takes (no gateway of that node) is GONE.
 * - Presence: each gateway keeps its share of a topic's subscribers (the count, and the
 *   ids when few) in Redis with an expiry, so that a dead gateway's share goes by itself.
 * - Faults: when Redis cannot be reached the gateway serves its own clients alone: a
 *   publish reaches its local subscribers at once and is held (bounded) for the others,
 *   or dropped and counted; it reconnects with backoff, subscribes again, and sends what
 *   it held once the other gateways have subscribed again too.
 *
 * hiredis's asynchronous API runs on the gateway's own epoll loop: each Redis connection
 * is a struct loop_src, its adapter hooks (addRead ... cleanup) set the fd's events; the
 * end-of-batch flush writes what commands queued, and the loop's hooks give the timers
 * (hiredis 0.14 has no scheduleTimer). Loop thread only. It sits below the pools: what it
 * receives reaches them through struct clu_ops.
 */
#ifndef WSGW_CLUSTER_H
#define WSGW_CLUSTER_H

#include <stddef.h>
#include <stdint.h>

#include "gateway/config.h"
#include "gateway/loop.h"
#include "gateway/topics.h"
#include "shm/ring.h"

struct clu;

/* A connection id: the node in the top 12 bits (0 without a cluster), then a counter that
 * starts at the microseconds since 2025 when the gateway starts (so a restarted gateway
 * never hands out an id of its previous life: it would have to open more than one
 * connection per microsecond to catch up). */
#define CLU_NODE_SHIFT 52
#define CLU_NODE_MAX 4095u
static inline unsigned clu_node_of(uint64_t id)
{
	return (unsigned)(id >> CLU_NODE_SHIFT);
}

/* What the cluster answers to a worker's question (QUERY, SUBSCRIBE since). */
struct clu_answer {
	unsigned worker;          /* the worker that asked */
	uint64_t conn;            /* QUERY: the id it chose; SUBSCRIBE: the connection */
	const uint8_t *topic;
	size_t tlen;
	unsigned flags;           /* QUERY: its flags */
	int status;               /* SUBSCRIBE: enum wsgw_recovery */
	uint64_t offset, epoch;   /* the topic's position (0, 0: none, or not known) */
	uint64_t count;           /* QUERY: subscribers on the other gateways */
	const uint64_t *ids;      /* their ids when nids == count, else not all of them */
	size_t nids;
	const struct top_msg *msgs; /* SUBSCRIBE: what the connection missed, oldest first */
	size_t n;
};

/* The pools, as what arrives from the cluster reaches them. */
struct clu_ops {
	/* A message for local subscribers (the frame-once fan-out). */
	void (*deliver)(void *arg, const struct top_msg *m);
	/* A command that another gateway's worker sent for one of this gateway's
	 * connections: r is the shm record (SEND, CLOSE, SENDMANY); GONE goes back with
	 * clu_gone(node, worker, id). */
	void (*command)(void *arg, unsigned node, unsigned worker, const struct shm_rec *r);
	/* The connection conn that worker (of this gateway) commanded exists nowhere. */
	void (*gone)(void *arg, unsigned worker, uint64_t conn);
	/* A QUERY's answer from the other gateways. */
	void (*topic)(void *arg, const struct clu_answer *a);
	/* A SUBSCRIBE since's answer: replay a->msgs to a->conn, then let its subscription
	 * take what comes after a->offset. */
	void (*recovered)(void *arg, const struct clu_answer *a);
};

/* Joins the cluster of cfg->cluster (which must have a url): picks the node id (logged
 * when derived), and starts connecting to Redis in the background: the gateway serves
 * alone until Redis answers. Returns 0 and *out, or -errno (logged). */
int clu_new(struct loop *l, const struct gw_config *cfg, struct clu **out);
/* Who receives what arrives (before the loop runs). */
void clu_set_ops(struct clu *k, const struct clu_ops *ops, void *arg);
/* Leaves: removes this gateway's presence and registration while Redis answers (at most
 * a short wait), and frees everything. */
void clu_free(struct clu *k);

/* This gateway's node id, and the first connection id it may hand out. */
unsigned clu_node(const struct clu *k);
uint64_t clu_first_id(const struct clu *k);
/* 1 while connected to Redis and subscribed. */
int clu_up(const struct clu *k);

/* A worker's PUBLISH (m->offset, m->epoch unset). Its local subscribers get it through
 * clu_ops.deliver: when Redis brings it back, or at once while Redis is away. */
void clu_publish(struct clu *k, const struct top_msg *m);
/* A worker's command (r: SEND or CLOSE of one of node's connections, or a SENDMANY whose
 * ids are all node's) for another gateway. */
void clu_forward(struct clu *k, unsigned worker, unsigned node, const struct shm_rec *r);
/* Tells node's worker that conn (of this gateway) does not exist. */
void clu_gone(struct clu *k, unsigned node, unsigned worker, uint64_t conn);
/* A worker's QUERY: answered through clu_ops.topic. Returns 0, or -EAGAIN when Redis is
 * away (answer from this gateway alone). */
int clu_query(struct clu *k, unsigned worker, uint64_t qid, const uint8_t *topic, size_t tlen,
	      unsigned flags);
/* A SUBSCRIBE since=OFFSET,EPOCH of conn, which subscribes now with `after` UINT64_MAX:
 * answered through clu_ops.recovered. Returns 0, or -EAGAIN when Redis is away
 * (WSGW_RECOVERY_UNAVAILABLE). */
int clu_recover(struct clu *k, unsigned worker, uint64_t conn, const uint8_t *topic,
		size_t tlen, uint64_t since, uint64_t epoch);

#endif
