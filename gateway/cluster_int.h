/*
 * What the cluster's files share (gateway/cluster.h is what the rest of the gateway sees).
 * Nothing else includes this. From the bottom up, each calling only those below it:
 *
 *   clu_scripts.c  the Lua scripts Redis runs for us
 *   clu_redis.c    hiredis on the loop: the event adapter, sending, Redis's protocol
 *   clu_pend.c     what must not be lost: publishes and commands held, parked, in flight
 *   clu_topic.c    topic channels: subscribed while wanted, publishes, what they bring
 *   clu_node.c     other gateways' connections (forwarded commands, GONE), presence, QUERY
 *   clu_recover.c  SUBSCRIBE since: the history in Redis Streams, read without a gap
 *   cluster.c      life: connecting, registering, outages, the loop's hooks, leaving
 *
 * Loop thread only. What arrives goes up through struct clu_ops (k->ops).
 */
#ifndef WSGW_CLUSTER_INT_H
#define WSGW_CLUSTER_INT_H

#include "gateway/cluster.h"
#include "wsgw/protocol.h"

#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <stddef.h>
#include <stdint.h>

/*
 * Redis names (one cluster per Redis server: pub/sub ignores database numbers):
 *   wsgw:t:TOPIC     channel: the topic's messages
 *   wsgw:n:NODE      channel: commands for a gateway's connections, and GONE answers
 *   wsgw:hm:TOPIC    hash: the topic's history epoch (e) and last offset (o)
 *   wsgw:hs:TOPIC    stream: its last messages (fields o: offset, m: the channel message)
 *   wsgw:p:TOPIC     hash: node -> that gateway's share of the topic's subscribers
 *   wsgw:pe:TOPIC    sorted set: node -> when that share expires (ms, Redis's clock)
 *   wsgw:node:NODE   string: the token of the gateway that holds the node id
 *   wsgw:nodes       sorted set: node -> when its registration expires; and a channel
 *                    on which a gateway's new registration is announced (its node id)
 *
 * A topic's channel message: u8 'w', u8 version 1, u8 flags (MF_*), u8 0, u16 origin node,
 * u64 origin sequence, u64 connection left out (little-endian), then "OFFSET EPOCH " in
 * decimal ("0 0 " without history), then the payload. A node channel's: u8 'w', u8 1,
 * u8 kind ('F' a forwarded command, 'G' a GONE), u8 0, u16 origin node, u16 record type,
 * u16 record flags, u16 0, u32 origin worker, u64 connection, then the record's body.
 */
#define PFX "wsgw:"
#define MSG_HDR 22
#define NODE_HDR 24
enum { MF_BINARY = 1, MF_STAMP = 2, MF_LOCAL_DONE = 4 };

/* ---- clu_scripts.c ---- */

enum { S_PUBLISH, S_RECOVER, S_PRES_SET, S_PRES_GET, S_REGISTER, S_READY, N_SCRIPTS };
extern const char *const clu__scripts[N_SCRIPTS];

/* ---- the state ---- */

/* One connection to Redis: hiredis's context and its fd in the loop. */
struct rconn {
	struct loop_src src; /* first: the loop's tag */
	struct clu *k;
	redisAsyncContext *ac; /* NULL: none (hiredis freed it, or we did) */
	int fd;
	uint32_t events;       /* what hiredis wants: EPOLLIN, EPOLLOUT */
	int in_loop;
	const char *name;
};

enum { OP_NONE, OP_SUB, OP_UNSUB };

struct pend;
struct recq;

/* A buffered live message (for recoveries in progress). */
struct bmsg {
	struct bmsg *next;
	struct top_msg m;
	uint8_t p[];
};

/* A topic's channel, while this gateway has a use for it. */
struct chan {
	struct chan *hnext;   /* the table's chain */
	struct chan *dnext;   /* the presence list */
	unsigned refs;        /* entries pointing at it */
	uint8_t want;         /* it has local subscribers */
	uint8_t last_op;      /* OP_*: the last (UN)SUBSCRIBE sent on this connection */
	uint8_t dirty;        /* its presence must be written */
	uint8_t buf_lost;     /* the live buffer overflowed: recoveries in progress are not whole */
	uint32_t ops_pending; /* (UN)SUBSCRIBE confirmations still to come */
	unsigned recovering;
	struct pend *wait_head, *wait_tail; /* publishes waiting for the subscription */
	struct pend *echo_head, *echo_tail; /* sent, before the subscription brings them back */
	struct recq *rwait;                 /* recoveries waiting for the subscription */
	struct bmsg *buf_head, *buf_tail;
	size_t buf_n;
	uint8_t len;
	uint8_t name[WSGW_TOPIC_MAX];
};

enum { PK_PUB, PK_FWD, PK_GONE };

/* A command for Redis that must not be lost silently: a publish, a forwarded command, a
 * GONE. Held while Redis is away, or waiting for its channel, then sent; kept until Redis
 * answered (and, for a publish to a topic with local subscribers, brought it back). */
struct pend {
	struct pend *next;          /* held, wait or echo list */
	struct pend *snext, *sprev; /* the sent list, in send order */
	struct chan *ch;
	uint64_t seq;
	uint8_t kind;
	uint8_t history;            /* through the publish script */
	uint8_t replied;            /* 1: answered; 2: the connection went first */
	uint8_t in_echo;
	uint8_t local_done;         /* its local subscribers have it */
	unsigned worker;            /* FWD: for GONE */
	uint64_t offset, epoch;     /* the script's answer */
	struct top_msg m;           /* PUB: pointing into cmd */
	uint8_t *flags_at;          /* the message header's flags byte, in cmd */
	const uint8_t *body;        /* FWD: the record body, in cmd */
	size_t blen;
	uint16_t rtype;
	size_t len;
	char cmd[];                 /* the command, in Redis's protocol */
};

/* A recovery (SUBSCRIBE since), until Redis answers. */
struct recq {
	struct recq *next;
	struct chan *ch;
	unsigned worker;
	uint64_t conn, since, epoch;
	uint32_t max;
};

enum { ST_DOWN, ST_CONNECTING, ST_REGISTERING, ST_SETTLING, ST_UP };

struct clu {
	struct loop *loop;
	const struct cfg_cluster *cc;
	const struct gw_config *cfg;
	const struct clu_ops *ops;
	void *arg;
	redisCallbackFn *on_sub; /* cluster.c's: every reply of the subscriber connection */
	unsigned node;
	char node_s[8];
	char node_chan[24];
	char token[40];
	uint64_t first_id;
	char sha[N_SCRIPTS][41];
	struct rconn cmd, sub;
	int state;
	int broken;
	char why[160];
	uint32_t state_at;
	uint32_t next_try, backoff;
	unsigned attempts;
	int outage;            /* an outage was logged and not yet ended */
	uint32_t down_at;
	uint64_t dropped_at_down, held_at_down;
	uint32_t next_ping, ping_sent;
	uint32_t next_refresh, next_presence, next_settle;
	int settle_sent, claim_refused;
	int drop_logged;
	uint64_t seq;
	struct chan **tab;
	size_t n_tab, n_chan;
	struct chan *dirty;
	struct pend *held_head, *held_tail;
	size_t n_held;
	struct pend sent;      /* sentinel of the sent list */
	size_t n_pend;         /* held, waiting and sent (held: at most cc->hold) */
	uint8_t known[(CLU_NODE_MAX + 8) / 8]; /* nodes seen alive: waited for after an outage */
	/* Redis pub/sub is at most once: a publish Redis confirmed may die in its buffers for
	 * the other gateways when it is killed (it writes this gateway's replies first). The
	 * confirmations of the last two reads are therefore not trusted when the connection
	 * breaks soon after them. */
	uint64_t read_gen;
	struct {
		uint64_t gen;
		unsigned n;
		uint32_t at;
	} recent[2];
	unsigned rng;
};

/* ---- small helpers ---- */

static inline uint64_t clu__le64(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 7; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

static inline void clu__put_le(uint8_t *p, uint64_t v, int bytes)
{
	for (int i = 0; i < bytes; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static inline uint32_t clu__now(const struct clu *k)
{
	return loop_now(k->loop);
}

static inline int clu__due(uint32_t now, uint32_t at)
{
	return (int32_t)(now - at) >= 0;
}

static inline int clu__reply_is(const redisReply *r, int type)
{
	return r && r->type == type;
}

/* ch is subscribed, and Redis said so. */
static inline int clu__confirmed(const struct chan *ch)
{
	return ch->last_op == OP_SUB && ch->ops_pending == 0;
}

/* 1 when what is published now must be held: Redis is away, or what it held is not all
 * out yet (order). */
static inline int clu__holding(const struct clu *k)
{
	return k->state != ST_UP || k->held_head;
}

/* ---- clu_redis.c: hiredis on the loop ---- */

/* FNV-1a of a name, for the channel table and the derived node id. */
size_t clu__hash(const void *name, size_t n);
void clu__sha1_hex(const char *s, char out[41]);
/* Marks the connections broken (the first reason is kept); the teardown happens at the
 * next poll, outside hiredis's callbacks. fmt has one %s, for detail. */
void clu__redis_broken(struct clu *k, const char *fmt, const char *detail);
/* Starts connecting r (the loop sees its fd from now on). 0, -ENOMEM, or -EIO (marked
 * broken). */
int clu__redis_open(struct clu *k, struct rconn *r, const char *name);
/* Queues a command we formatted, or one of argv. 0, or -EIO: the connection is going. */
int clu__redis_send(struct rconn *r, redisCallbackFn *fn, void *priv, const char *cmd, size_t len);
int clu__redis_argv(struct rconn *r, redisCallbackFn *fn, void *priv, int argc, const char **argv,
		    const size_t *lens);
/* Writes what is queued on r, if it is connected and has something to write. */
void clu__redis_flush(struct rconn *r);

/* Redis's protocol, written into a buffer the caller sized with clu__resp_arg_size: a
 * command of argc arguments; an argument may be made of parts, and *at (may be NULL) gets
 * where its last part went. Each returns the end of what it wrote. */
size_t clu__resp_arg_size(size_t n);
char *clu__resp_begin(char *o, int argc);
char *clu__resp_parts(char *o, int parts, const void *const *p, const size_t *n, uint8_t **at);
char *clu__resp_arg(char *o, const void *p, size_t n);
char *clu__resp_str(char *o, const char *s);

/* ---- clu_pend.c: what must not be lost ---- */

/* An entry of len command bytes, counted against the budget. NULL when it would be held
 * past --cluster-hold, or the memory budget refuses it. */
struct pend *clu__pend_new(struct clu *k, size_t len);
void clu__pend_free(struct clu *k, struct pend *e);
/* Sends e (its reply comes to clu_pend.c), or parks it behind its channel's subscription;
 * held when the connection is going. */
void clu__pend_send(struct clu *k, struct pend *e);
/* Held while Redis is away (or what was held is not out), else sent. */
void clu__pend_out(struct clu *k, struct pend *e);
void clu__pend_hold(struct clu *k, struct pend *e);
/* Sends everything held, in order. */
void clu__pend_release(struct clu *k);
/* This gateway's subscribers get e's publish now (once). */
void clu__pend_local(struct clu *k, struct pend *e);
/* Takes the first entry off ch's echo list: its echo came, or never will. */
void clu__pend_echo_pop(struct clu *k, struct chan *ch);
void clu__pend_add(struct pend **head, struct pend **tail, struct pend *e);
void clu__pend_unlink(struct pend *e);
/* Counts a message the other gateways will never get (logged once per outage). */
void clu__pend_dropped(struct clu *k, const char *what);

/* ---- clu_topic.c: topic channels ---- */

/* A topic channel's message, parsed; p, n: the payload. */
struct clu_msg {
	uint8_t flags;
	unsigned node;
	uint64_t seq, exclude, offset, epoch;
	const uint8_t *p;
	size_t n;
};
int clu__chan_parse(const uint8_t *p, size_t n, struct clu_msg *m);
struct chan *clu__chan_find(struct clu *k, const void *name, size_t n);
/* Frees the channels nothing needs any more. Called where no channel is in use. */
void clu__chan_gc(struct clu *k);
/* Makes the Redis subscription follow the local subscribers, while connected. */
void clu__chan_sync(struct clu *k, struct chan *ch);
/* Its presence must be written. */
void clu__chan_dirty(struct clu *k, struct chan *ch);
void clu__chan_buf_clear(struct chan *ch);
/* The topics index's watcher (top_set_watch): a topic's local subscriber count changed. */
void clu__chan_watch(void *arg, const uint8_t *name, size_t n, unsigned count);
/* A message on a topic's channel. */
void clu__chan_message(struct clu *k, const uint8_t *topic, size_t tlen, const uint8_t *p, size_t n);
/* Redis confirmed a SUBSCRIBE or UNSUBSCRIBE of the topic's channel: what waited for it
 * goes. Returns the channel when it is now subscribed and confirmed, else NULL. */
struct chan *clu__chan_confirm(struct clu *k, const uint8_t *topic, size_t tlen);

/* ---- clu_node.c: other gateways' connections, and presence ---- */

/* A message on this gateway's own channel: a forwarded command or a GONE. */
void clu__node_message(struct clu *k, const uint8_t *p, size_t n);
/* Writes the presence of every channel marked dirty. */
void clu__node_presence(struct clu *k);

/* ---- clu_recover.c: SUBSCRIBE since ---- */

/* ch is subscribed: the recoveries that waited for it read the history now. */
void clu__rec_send_waiting(struct clu *k, struct chan *ch);
/* q cannot be answered from Redis: "unavailable" (q is freed). */
void clu__rec_fail(struct clu *k, struct recq *q);

#endif
