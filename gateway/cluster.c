#include "gateway/cluster.h"
#include "gateway/budget.h"
#include "gateway/conn.h"
#include "gateway/log.h"
#include "gateway/stats.h"
#include "wsgw/protocol.h"

#include <errno.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>
#include <urcu.h>

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

#define PING_MS 1000
#define DEAD_MS 3000          /* no PING answer, or no connection, within this: Redis is away */
#define SYNC_MS 10000         /* subscribing again must be done within this */
#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 5000
#define PRESENCE_MS 50        /* presence changes are written at most this often */
#define SETTLE_RETRY_MS 100
#define BUF_MAX 65536         /* live messages kept for recoveries in progress, per topic */

/* The scripts: each runs atomically in Redis, so a publish is numbered, kept and sent as
 * one step, and a recovery reads a consistent history. TIME is Redis's own clock: the
 * gateways' clocks never meet. Numbers go out through string.format('%d'): Lua 5.1
 * prints doubles with 14 digits otherwise. */
#define LUA_NOW "local t = redis.call('TIME') local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) "
enum { S_PUBLISH, S_RECOVER, S_PRES_SET, S_PRES_GET, S_REGISTER, S_READY, N_SCRIPTS };
static const char *const scripts[N_SCRIPTS] = {
	/* KEYS meta, stream; ARGV channel, header, payload, max, age ms */
	[S_PUBLISH] =
	"local e = redis.call('HGET', KEYS[1], 'e') "
	"if not e then local t = redis.call('TIME') e = t[1] .. string.format('%06d', tonumber(t[2])) "
	"redis.call('HSET', KEYS[1], 'e', e) end "
	"local o = string.format('%d', redis.call('HINCRBY', KEYS[1], 'o', 1)) "
	"local msg = ARGV[2] .. o .. ' ' .. e .. ' ' .. ARGV[3] "
	"redis.call('XADD', KEYS[2], 'MAXLEN', ARGV[4], '*', 'o', o, 'm', msg) "
	LUA_NOW
	"redis.call('XTRIM', KEYS[2], 'MINID', string.format('%d', now - tonumber(ARGV[5]))) "
	"redis.call('PEXPIRE', KEYS[1], ARGV[5]) redis.call('PEXPIRE', KEYS[2], ARGV[5]) "
	"return {o, e, redis.call('PUBLISH', ARGV[1], msg)}",
	/* KEYS meta, stream; ARGV since, epoch, max. {status, offset, epoch, messages...} */
	[S_RECOVER] =
	"local e = redis.call('HGET', KEYS[1], 'e') "
	"local o = tonumber(redis.call('HGET', KEYS[1], 'o') or '0') "
	"if not e then return {1, '0', '0'} end "
	"local os = string.format('%d', o) "
	"local since = tonumber(ARGV[1]) "
	"if e ~= ARGV[2] or since > o then return {1, os, e} end "
	"if since == o then return {0, os, e} end "
	"local n = o - since "
	"if n > tonumber(ARGV[3]) then return {2, os, e} end "
	"local r = redis.call('XREVRANGE', KEYS[2], '+', '-', 'COUNT', n) "
	"if #r < n or tonumber(r[#r][2][2]) ~= since + 1 then return {2, os, e} end "
	"local out = {0, os, e} "
	"for i = #r, 1, -1 do out[#out + 1] = r[i][2][4] end "
	"return out",
	/* KEYS presence, expiries; ARGV node, share, ttl ms */
	[S_PRES_SET] =
	LUA_NOW
	"redis.call('HSET', KEYS[1], ARGV[1], ARGV[2]) "
	"redis.call('ZADD', KEYS[2], now + tonumber(ARGV[3]), ARGV[1]) "
	"redis.call('PEXPIRE', KEYS[1], ARGV[3]) redis.call('PEXPIRE', KEYS[2], ARGV[3]) "
	"return 1",
	/* KEYS presence, expiries, meta. {node, share, node, share, ...}, offset, epoch */
	[S_PRES_GET] =
	LUA_NOW
	"local dead = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now) "
	"for _, d in ipairs(dead) do redis.call('HDEL', KEYS[1], d) redis.call('ZREM', KEYS[2], d) end "
	"return {redis.call('HGETALL', KEYS[1]), redis.call('HGET', KEYS[3], 'o') or '0', "
	"redis.call('HGET', KEYS[3], 'e') or '0'}",
	/* KEYS node key, nodes; ARGV token, ttl ms, node. {1, live nodes} or {0}. A new
	 * registration is announced on the channel wsgw:nodes, so that the others know at
	 * once whom to wait for after an outage. */
	[S_REGISTER] =
	"local cur = redis.call('GET', KEYS[1]) "
	"if cur and cur ~= ARGV[1] then return {0} end "
	"if not cur then redis.call('PUBLISH', KEYS[2], ARGV[3]) end "
	"redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) "
	LUA_NOW
	"redis.call('ZADD', KEYS[2], now + tonumber(ARGV[2]), ARGV[3]) "
	"redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now) "
	"return {1, redis.call('ZRANGEBYSCORE', KEYS[2], now, '+inf')}",
	/* KEYS nodes; ARGV channel prefix, node... The nodes not registered, or registered
	 * but not subscribed to their own channel (which they subscribe last). */
	[S_READY] =
	LUA_NOW
	"local missing = {} "
	"for i = 2, #ARGV do "
	"local s = redis.call('ZSCORE', KEYS[1], ARGV[i]) "
	"local r = redis.call('PUBSUB', 'NUMSUB', ARGV[1] .. ARGV[i]) "
	"if not s or tonumber(s) < now or r[2] == 0 then missing[#missing + 1] = ARGV[i] end "
	"end "
	"return missing",
};

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

/* A QUERY, until Redis answers. */
struct qreq {
	struct clu *k;
	unsigned worker;
	uint64_t qid;
	unsigned flags;
	uint8_t tlen;
	uint8_t topic[WSGW_TOPIC_MAX];
};

enum { ST_DOWN, ST_CONNECTING, ST_REGISTERING, ST_SETTLING, ST_UP };

struct clu {
	struct loop *loop;
	const struct cfg_cluster *cc;
	const struct gw_config *cfg;
	const struct clu_ops *ops;
	void *arg;
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

static void on_sub(redisAsyncContext *ac, void *reply, void *priv);
static void send_recoveries(struct clu *k, struct chan *ch);

/* ---------------------------------------------------------------- small helpers */

static uint64_t le64(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 7; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

static void put_le(uint8_t *p, uint64_t v, int bytes)
{
	for (int i = 0; i < bytes; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static size_t hash_name(const void *name, size_t n)
{
	const uint8_t *p = name;
	uint64_t h = 0xcbf29ce484222325ull;
	for (size_t i = 0; i < n; i++)
		h = (h ^ p[i]) * 0x100000001b3ull;
	return (size_t)(h ^ h >> 31);
}

static uint32_t now_ms(const struct clu *k)
{
	return loop_now(k->loop);
}

static int due(uint32_t now, uint32_t at)
{
	return (int32_t)(now - at) >= 0;
}

/* Redis's protocol: a command of argc arguments; each argument may be made of parts. */
static size_t num_len(size_t v)
{
	size_t n = 1;
	while (v >= 10)
		v /= 10, n++;
	return n;
}

static size_t resp_arg_size(size_t n)
{
	return 1 + num_len(n) + 2 + n + 2;
}

static char *resp_begin(char *o, int argc)
{
	return o + sprintf(o, "*%d\r\n", argc);
}

/* An argument of the parts (p[i], n[i]); *at (may be NULL) gets where the last part went. */
static char *resp_parts(char *o, int parts, const void *const *p, const size_t *n, uint8_t **at)
{
	size_t len = 0;
	for (int i = 0; i < parts; i++)
		len += n[i];
	o += sprintf(o, "$%zu\r\n", len);
	for (int i = 0; i < parts; i++) {
		if (at && i == parts - 1)
			*at = (uint8_t *)o;
		if (n[i])
			memcpy(o, p[i], n[i]);
		o += n[i];
	}
	memcpy(o, "\r\n", 2);
	return o + 2;
}

static char *resp_arg(char *o, const void *p, size_t n)
{
	return resp_parts(o, 1, &p, &n, NULL);
}

static char *resp_str(char *o, const char *s)
{
	return resp_arg(o, s, strlen(s));
}

static void sha1_hex(const char *s, char out[41])
{
	unsigned char md[20];
	unsigned int n = 0;
	EVP_Digest(s, strlen(s), md, &n, EVP_sha1(), NULL);
	for (int i = 0; i < 20; i++)
		sprintf(out + 2 * i, "%02x", md[i]);
}

static int reply_is(const redisReply *r, int type)
{
	return r && r->type == type;
}

/* ---------------------------------------------------------------- the event adapter */

static void ev_update(struct rconn *r)
{
	struct loop *l = r->k->loop;
	if (!r->in_loop) {
		if (loop_add(l, r->fd, r->events, &r->src) == 0)
			r->in_loop = 1;
	} else {
		loop_mod(l, r->fd, r->events, &r->src);
	}
}

static void ev_set(struct rconn *r, uint32_t ev, int on)
{
	uint32_t want = on ? r->events | ev : r->events & ~ev;
	if (want == r->events && r->in_loop)
		return;
	r->events = want;
	ev_update(r);
}

static void ev_add_read(void *p)
{
	ev_set(p, EPOLLIN, 1);
}

static void ev_del_read(void *p)
{
	ev_set(p, EPOLLIN, 0);
}

static void ev_add_write(void *p)
{
	ev_set(p, EPOLLOUT, 1);
}

static void ev_del_write(void *p)
{
	ev_set(p, EPOLLOUT, 0);
}

/* hiredis is freeing the context: the fd is about to be closed. */
static void ev_cleanup(void *p)
{
	struct rconn *r = p;
	if (r->in_loop)
		loop_del(r->k->loop, r->fd);
	r->in_loop = 0;
	r->events = 0;
	r->ac = NULL;
}

/* Level-triggered: hiredis reads at most 16 KiB per call, and the rest brings it back. */
static void ev_event(struct loop_src *src, uint32_t events)
{
	struct rconn *r = (struct rconn *)src;
	if (r == &r->k->cmd)
		r->k->read_gen++;
	if (r->ac && (events & (EPOLLIN | EPOLLERR | EPOLLHUP)))
		redisAsyncHandleRead(r->ac);
	if (r->ac && (events & (EPOLLOUT | EPOLLERR | EPOLLHUP)))
		redisAsyncHandleWrite(r->ac);
}

static void mark_broken(struct clu *k, const char *fmt, const char *detail)
{
	if (k->broken)
		return;
	k->broken = 1;
	snprintf(k->why, sizeof(k->why), fmt, detail ? detail : "");
}

static void on_connect(const redisAsyncContext *ac, int status)
{
	struct rconn *r = ac->ev.data;
	if (status != REDIS_OK) {
		mark_broken(r->k, "connect: %s", ac->errstr);
		return;
	}
	redisEnableKeepAlive((redisContext *)&ac->c);
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
	struct rconn *r = ac->ev.data;
	(void)status;
	r->ac = NULL;
	mark_broken(r->k, "%s", ac->errstr[0] ? ac->errstr : "connection closed");
}

static int rconn_open(struct clu *k, struct rconn *r, const char *name)
{
	memset(r, 0, sizeof(*r));
	r->k = k;
	r->name = name;
	r->src.fn = ev_event;
	redisAsyncContext *ac = redisAsyncConnect(k->cc->host, (int)k->cc->port);
	if (!ac)
		return -ENOMEM;
	if (ac->err) {
		mark_broken(k, "connect: %s", ac->errstr);
		redisAsyncFree(ac);
		return -EIO;
	}
	r->ac = ac;
	r->fd = ac->c.fd;
	ac->ev.data = r;
	ac->ev.addRead = ev_add_read;
	ac->ev.delRead = ev_del_read;
	ac->ev.addWrite = ev_add_write;
	ac->ev.delWrite = ev_del_write;
	ac->ev.cleanup = ev_cleanup;
	redisAsyncSetDisconnectCallback(ac, on_disconnect);
	/* Asks for the first write event: the connect's completion. */
	redisAsyncSetConnectCallback(ac, on_connect);
	return 0;
}

/* Sends a command formatted by us. Returns 0, or -EIO (the connection is going). */
static int send_raw(struct rconn *r, redisCallbackFn *fn, void *priv, const char *cmd, size_t len)
{
	if (!r->ac || redisAsyncFormattedCommand(r->ac, fn, priv, cmd, len) != REDIS_OK)
		return -EIO;
	return 0;
}

static int send_argv(struct rconn *r, redisCallbackFn *fn, void *priv, int argc, const char **argv,
		     const size_t *lens)
{
	if (!r->ac || redisAsyncCommandArgv(r->ac, fn, priv, argc, argv, lens) != REDIS_OK)
		return -EIO;
	return 0;
}

/* ---------------------------------------------------------------- channels */

static struct chan *chan_find(struct clu *k, const void *name, size_t n)
{
	if (!k->n_tab)
		return NULL;
	for (struct chan *ch = k->tab[hash_name(name, n) & (k->n_tab - 1)]; ch; ch = ch->hnext)
		if (ch->len == n && memcmp(ch->name, name, n) == 0)
			return ch;
	return NULL;
}

static struct chan *chan_get(struct clu *k, const void *name, size_t n)
{
	struct chan *ch = chan_find(k, name, n);
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
				struct chan **pp = &t[hash_name(c->name, c->len) & (nt - 1)];
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
	struct chan **pp = &k->tab[hash_name(name, n) & (k->n_tab - 1)];
	ch->hnext = *pp;
	*pp = ch;
	k->n_chan++;
	return ch;
}

static int chan_confirmed(const struct chan *ch)
{
	return ch->last_op == OP_SUB && ch->ops_pending == 0;
}

static void buf_clear(struct chan *ch)
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

/* Frees channels nothing needs any more. Called where no channel is in use. */
static void chan_gc(struct clu *k)
{
	for (size_t i = 0; i < k->n_tab; i++)
		for (struct chan **pp = &k->tab[i], *ch; (ch = *pp);) {
			if (ch->want || ch->refs || ch->ops_pending || ch->last_op == OP_SUB ||
			    ch->dirty || ch->recovering || ch->wait_head || ch->echo_head || ch->rwait) {
				pp = &ch->hnext;
				continue;
			}
			*pp = ch->hnext;
			buf_clear(ch);
			free(ch);
			k->n_chan--;
		}
}

static void sub_cmd(struct clu *k, struct chan *ch, const char *verb)
{
	const void *parts[2] = { PFX "t:", ch->name };
	size_t lens[2] = { strlen(PFX "t:"), ch->len };
	char cmd[64 + WSGW_TOPIC_MAX], *o = resp_begin(cmd, 2);
	o = resp_str(o, verb);
	o = resp_parts(o, 2, parts, lens, NULL);
	/* The callback is the same for every channel (hiredis keeps one per channel). */
	if (send_raw(&k->sub, on_sub, k, cmd, (size_t)(o - cmd)) == 0) {
		ch->ops_pending++;
		ch->last_op = strcmp(verb, "SUBSCRIBE") == 0 ? OP_SUB : OP_UNSUB;
	}
}

/* Makes the Redis subscription follow the local subscribers, while connected. */
static void chan_sync(struct clu *k, struct chan *ch)
{
	if (k->state == ST_DOWN || !k->sub.ac)
		return;
	if (ch->want && ch->last_op != OP_SUB)
		sub_cmd(k, ch, "SUBSCRIBE");
	else if (!ch->want && ch->last_op == OP_SUB)
		sub_cmd(k, ch, "UNSUBSCRIBE");
}

static void mark_dirty(struct clu *k, struct chan *ch)
{
	if (ch->dirty)
		return;
	ch->dirty = 1;
	ch->dnext = k->dirty;
	k->dirty = ch;
}

/* ---------------------------------------------------------------- entries */

/* 1 when what is published now must be held: Redis is away, or what it held is not all
 * out yet (order). */
static int holding(const struct clu *k)
{
	return k->state != ST_UP || k->held_head;
}

/* An entry of len command bytes. NULL when it would be held past --cluster-hold, or the
 * memory budget refuses it. */
static struct pend *pend_new(struct clu *k, size_t len)
{
	size_t size = sizeof(struct pend) + len;
	if ((holding(k) && k->n_held >= k->cc->hold) || !bud_room(BUD_CLUSTER, size))
		return NULL;
	struct pend *e = calloc(1, size);
	if (!e)
		return NULL;
	bud_charge(BUD_CLUSTER, size);
	k->n_pend++;
	return e;
}

static void pend_free(struct clu *k, struct pend *e)
{
	if (e->ch)
		e->ch->refs--;
	bud_credit(BUD_CLUSTER, sizeof(*e) + e->len);
	k->n_pend--;
	free(e);
}

static void sent_link(struct clu *k, struct pend *e)
{
	e->sprev = k->sent.sprev;
	e->snext = &k->sent;
	k->sent.sprev->snext = e;
	k->sent.sprev = e;
}

static void sent_unlink(struct pend *e)
{
	e->sprev->snext = e->snext;
	e->snext->sprev = e->sprev;
	e->snext = e->sprev = NULL;
}

static void pend_done(struct clu *k, struct pend *e)
{
	if (e->replied && !e->in_echo) {
		sent_unlink(e);
		pend_free(k, e);
	}
}

static void list_add(struct pend **head, struct pend **tail, struct pend *e)
{
	e->next = NULL;
	if (*tail)
		(*tail)->next = e;
	else
		*head = e;
	*tail = e;
}

static void hold(struct clu *k, struct pend *e)
{
	list_add(&k->held_head, &k->held_tail, e);
	k->n_held++;
	stats.cluster_holding = k->n_held;
}

/* This gateway's subscribers get e now (Redis is away, or will not bring it back). */
static void deliver_local(struct clu *k, struct pend *e)
{
	if (e->kind != PK_PUB || e->local_done)
		return;
	e->local_done = 1;
	*e->flags_at |= MF_LOCAL_DONE;
	struct top_msg m = e->m;
	m.offset = e->offset;
	m.epoch = e->epoch;
	k->ops->deliver(k->arg, &m);
}

static void on_pub_reply(redisAsyncContext *ac, void *reply, void *priv);

/* Sends e, or parks it behind its channel's subscription. */
static void pend_send(struct clu *k, struct pend *e)
{
	if (e->kind == PK_PUB && e->ch && e->ch->want && !e->local_done && !chan_confirmed(e->ch)) {
		/* Its subscribers here must see it come back: not before the channel is ours. */
		list_add(&e->ch->wait_head, &e->ch->wait_tail, e);
		return;
	}
	if (send_raw(&k->cmd, on_pub_reply, e, e->cmd, e->len)) {
		/* The connection is going: its teardown will hold or deliver e. */
		deliver_local(k, e);
		hold(k, e);
		return;
	}
	sent_link(k, e);
	if (e->kind == PK_PUB && e->ch && e->ch->want && !e->local_done) {
		e->in_echo = 1;
		list_add(&e->ch->echo_head, &e->ch->echo_tail, e);
	}
}

/* Takes e off its channel's echo list (its echo came, or never will). */
static void echo_pop(struct clu *k, struct chan *ch)
{
	struct pend *e = ch->echo_head;
	ch->echo_head = e->next;
	if (!ch->echo_head)
		ch->echo_tail = NULL;
	e->in_echo = 0;
	pend_done(k, e);
}

/* ---------------------------------------------------------------- messages */

struct parsed {
	uint8_t flags;
	unsigned node;
	uint64_t seq, exclude, offset, epoch;
	const uint8_t *p;
	size_t n;
};

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

static int parse_msg(const uint8_t *p, size_t n, struct parsed *m)
{
	const uint8_t *end = p + n;
	if (n < MSG_HDR || p[0] != 'w' || p[1] != 1)
		return -1;
	m->flags = p[2];
	m->node = (unsigned)(p[4] | p[5] << 8);
	m->seq = le64(p + 6);
	m->exclude = le64(p + 14);
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
	put_le(h + 4, node, 2);
	put_le(h + 6, seq, 8);
	put_le(h + 14, exclude, 8);
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

static void on_topic_message(struct clu *k, const uint8_t *topic, size_t tlen, const uint8_t *p,
			     size_t n)
{
	struct parsed pm;
	if (parse_msg(p, n, &pm)) {
		log_warn(0, "cluster: a message on the channel of a topic that is not ours: ignored");
		return;
	}
	struct chan *ch = chan_find(k, topic, tlen);
	if (pm.node == k->node && ch) {
		/* Ours, back: what was sent before it on this channel will not come any more. */
		while (ch->echo_head && ch->echo_head->seq <= pm.seq) {
			int it = ch->echo_head->seq == pm.seq;
			echo_pop(k, ch);
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

static void on_node_message(struct clu *k, const uint8_t *p, size_t n)
{
	if (n < NODE_HDR || p[0] != 'w' || p[1] != 1 || (p[2] != 'F' && p[2] != 'G')) {
		log_warn(0, "cluster: a malformed message on this gateway's channel: ignored");
		return;
	}
	unsigned node = (unsigned)(p[4] | p[5] << 8);
	unsigned worker = (unsigned)le64(p + 12) & 0xffffffffu;
	uint64_t conn = le64(p + 16);
	if (p[2] == 'G') {
		k->ops->gone(k->arg, worker, conn);
		return;
	}
	struct shm_rec r = { .type = (uint16_t)(p[6] | p[7] << 8), .flags = (uint16_t)(p[8] | p[9] << 8),
			     .conn = conn, .payload = p + NODE_HDR, .len = (uint32_t)(n - NODE_HDR) };
	stats.cluster_commands++;
	k->ops->command(k->arg, node, worker, &r);
}

static void node_subscribed(struct clu *k);

/* Every message and (un)subscribe confirmation of the subscriber connection. */
static void on_sub(redisAsyncContext *ac, void *reply, void *priv)
{
	struct clu *k = priv;
	redisReply *r = reply;
	(void)ac;
	if (!r || r->type != REDIS_REPLY_ARRAY || r->elements < 3 ||
	    r->element[0]->type != REDIS_REPLY_STRING || r->element[1]->type != REDIS_REPLY_STRING) {
		if (reply_is(r, REDIS_REPLY_ERROR))
			mark_broken(k, "SUBSCRIBE: %s", r->str);
		return;
	}
	const char *kind = r->element[0]->str;
	const uint8_t *name = (const uint8_t *)r->element[1]->str;
	size_t nlen = r->element[1]->len, tl = strlen(PFX "t:");
	int topic = nlen > tl && memcmp(name, PFX "t:", tl) == 0;
	int mine = nlen == strlen(k->node_chan) && memcmp(name, k->node_chan, nlen) == 0;
	int nodes = nlen == strlen(PFX "nodes") && memcmp(name, PFX "nodes", nlen) == 0;
	if (strcmp(kind, "message") == 0) {
		if (r->element[2]->type != REDIS_REPLY_STRING)
			return;
		if (nodes) {
			unsigned long n = strtoul(r->element[2]->str, NULL, 10);
			if (n >= 1 && n <= CLU_NODE_MAX)
				k->known[n / 8] |= (uint8_t)(1u << (n % 8));
			return;
		}
		if (topic)
			on_topic_message(k, name + tl, nlen - tl, (const uint8_t *)r->element[2]->str,
					 r->element[2]->len);
		else if (mine)
			on_node_message(k, (const uint8_t *)r->element[2]->str, r->element[2]->len);
		return;
	}
	int sub = strcmp(kind, "subscribe") == 0;
	if (!sub && strcmp(kind, "unsubscribe") != 0)
		return;
	if (mine) {
		if (sub)
			node_subscribed(k);
		return;
	}
	struct chan *ch = topic ? chan_find(k, name + tl, nlen - tl) : NULL;
	if (!ch || !ch->ops_pending)
		return;
	ch->ops_pending--;
	if (chan_confirmed(ch)) {
		/* What waited for the subscription goes now, in order. */
		struct pend *e;
		while ((e = ch->wait_head)) {
			ch->wait_head = e->next;
			if (!ch->wait_head)
				ch->wait_tail = NULL;
			pend_send(k, e);
		}
		send_recoveries(k, ch);
	} else if (ch->last_op == OP_UNSUB && !ch->ops_pending) {
		/* Unsubscribed: nothing sent before comes back now. */
		while (ch->echo_head)
			echo_pop(k, ch);
	}
}

/* ---------------------------------------------------------------- publishing */

static void drop_count(struct clu *k, const char *what)
{
	stats.cluster_dropped++;
	if (!k->drop_logged) {
		k->drop_logged = 1;
		log_warn(0, "cluster: %s for other gateways: over --cluster-hold %u while Redis is "
			 "away (or over the memory budget); dropped, counted in wsgw_cluster_dropped_total",
			 what, k->cc->hold);
	}
}

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
		len = 32 + resp_arg_size(7) + resp_arg_size(40) + resp_arg_size(1) +
		      2 * resp_arg_size(strlen(PFX "hm:") + tl) + resp_arg_size(chl) +
		      resp_arg_size(MSG_HDR) + resp_arg_size(m->n) + resp_arg_size(strlen(max)) +
		      resp_arg_size(strlen(age));
	} else {
		len = 16 + resp_arg_size(7) + resp_arg_size(chl) + resp_arg_size(MSG_HDR + 4 + m->n);
	}
	struct pend *e = pend_new(k, len);
	if (!e) {
		/* Redis up, the memory budget full: nobody gets it, for a subscriber here getting
		 * it ahead of messages still on their way back would break the topic's order. */
		if (!holding(k)) {
			drop_count(k, "a publish");
			return;
		}
		drop_count(k, "a publish held");
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
		o = resp_begin(e->cmd, 10);
		o = resp_str(o, "EVALSHA");
		o = resp_str(o, k->sha[S_PUBLISH]);
		o = resp_str(o, "2");
		o = resp_parts(o, 2, mp, mn, NULL);
		o = resp_parts(o, 2, sp, sn, NULL);
		o = resp_parts(o, 2, chp, chn, &at);
		e->m.topic = at;
		o = resp_parts(o, 1, (const void *[]){ hdr }, (size_t[]){ MSG_HDR }, &at);
		e->flags_at = at + 2;
		o = resp_parts(o, 1, (const void *[]){ m->p }, (size_t[]){ m->n }, &at);
		e->m.p = at;
		o = resp_str(o, max);
		o = resp_str(o, age);
	} else {
		o = resp_begin(e->cmd, 3);
		o = resp_str(o, "PUBLISH");
		o = resp_parts(o, 2, chp, chn, &at);
		e->m.topic = at;
		const void *parts[3] = { hdr, "0 0 ", m->p };
		size_t lens[3] = { MSG_HDR, 4, m->n };
		o = resp_parts(o, 3, parts, lens, &at);
		e->flags_at = at - 4 - MSG_HDR + 2;
		e->m.p = at;
	}
	e->len = (size_t)(o - e->cmd);
	e->m.tlen = tl;
	e->m.op = m->op;
	e->m.n = m->n;
	e->m.exclude = m->exclude;
	e->m.stamp = m->stamp;
	e->ch = chan_find(k, m->topic, tl);
	if (e->ch)
		e->ch->refs++;
	if (holding(k)) {
		/* Redis is away (or what it held is not all out yet): here at once, and held for
		 * the other gateways. */
		deliver_local(k, e);
		stats.cluster_held++;
		hold(k, e);
		return;
	}
	pend_send(k, e);
}

static void on_pub_reply(redisAsyncContext *ac, void *reply, void *priv)
{
	struct pend *e = priv;
	redisReply *r = reply;
	struct clu *k = ((struct rconn *)ac->ev.data)->k;
	if (!r) {
		e->replied = 2; /* the teardown decides */
		return;
	}
	e->replied = 1;
	if (r->type == REDIS_REPLY_ERROR) {
		log_error(0, "cluster: Redis refused a %s: %s", e->kind == PK_PUB ? "publish" : "command",
			  r->str);
		stats.cluster_dropped++;
		if (e->in_echo) {
			/* It will not come back: its subscribers here get it now. Those after it
			 * may have come back already: this one is late, not lost. */
			struct chan *ch = e->ch;
			struct pend **pp = &ch->echo_head, *prev = NULL;
			while (*pp && *pp != e)
				prev = *pp, pp = &(*pp)->next;
			if (*pp) {
				*pp = e->next;
				if (ch->echo_tail == e)
					ch->echo_tail = prev;
			}
			e->in_echo = 0;
			deliver_local(k, e);
		}
		pend_done(k, e);
		return;
	}
	long long receivers = 0;
	if (e->history && r->type == REDIS_REPLY_ARRAY && r->elements == 3 &&
	    r->element[0]->type == REDIS_REPLY_STRING && r->element[1]->type == REDIS_REPLY_STRING) {
		e->offset = strtoull(r->element[0]->str, NULL, 10);
		e->epoch = strtoull(r->element[1]->str, NULL, 10);
		receivers = r->element[2]->integer;
	} else if (r->type == REDIS_REPLY_INTEGER) {
		receivers = r->integer;
	}
	stats.cluster_sent++;
	stats.cluster_receivers += (uint64_t)(receivers > 0 ? receivers : 0);
	if (k->recent[0].gen != k->read_gen) {
		k->recent[1] = k->recent[0];
		k->recent[0].gen = k->read_gen;
		k->recent[0].n = 0;
	}
	k->recent[0].n++;
	k->recent[0].at = now_ms(k);
	/* A command for a node no gateway serves: the connection exists nowhere. */
	if (e->kind == PK_FWD && receivers == 0) {
		if (e->rtype == WSGW_SENDMANY) {
			uint32_t count = e->blen >= 4 ? (uint32_t)(e->body[0] | e->body[1] << 8 |
								   e->body[2] << 16 | (uint32_t)e->body[3] << 24)
						      : 0;
			for (uint32_t i = 0; i < count && 4 + (size_t)(i + 1) * 8 <= e->blen; i++)
				k->ops->gone(k->arg, e->worker, le64(e->body + 4 + (size_t)i * 8));
		} else {
			k->ops->gone(k->arg, e->worker, e->m.exclude);
		}
	}
	pend_done(k, e);
}

/* A message on a node's channel. */
static struct pend *node_pend(struct clu *k, unsigned node, char kind, uint16_t type,
			      uint16_t flags, unsigned worker, uint64_t conn, const void *body,
			      size_t blen)
{
	char chan[24];
	snprintf(chan, sizeof(chan), PFX "n:%u", node);
	size_t len = 16 + resp_arg_size(7) + resp_arg_size(strlen(chan)) + resp_arg_size(NODE_HDR + blen);
	struct pend *e = pend_new(k, len);
	if (!e)
		return NULL;
	uint8_t h[NODE_HDR] = { 'w', 1, (uint8_t)kind, 0 };
	put_le(h + 4, k->node, 2);
	put_le(h + 6, type, 2);
	put_le(h + 8, flags, 2);
	put_le(h + 12, worker, 4);
	put_le(h + 16, conn, 8);
	char *o = resp_begin(e->cmd, 3);
	uint8_t *at;
	o = resp_str(o, "PUBLISH");
	o = resp_str(o, chan);
	o = resp_parts(o, 2, (const void *[]){ h, body }, (size_t[]){ NODE_HDR, blen }, &at);
	e->len = (size_t)(o - e->cmd);
	e->kind = kind == 'F' ? PK_FWD : PK_GONE;
	e->worker = worker;
	e->m.exclude = conn; /* FWD: the connection, for GONE */
	e->body = at;
	e->blen = blen;
	e->rtype = type;
	return e;
}

static void send_or_hold(struct clu *k, struct pend *e)
{
	if (holding(k)) {
		stats.cluster_held++;
		hold(k, e);
	} else {
		pend_send(k, e);
	}
}

void clu_forward(struct clu *k, unsigned worker, unsigned node, const struct shm_rec *r)
{
	struct pend *e = node_pend(k, node, 'F', r->type, r->flags, worker, r->conn, r->payload, r->len);
	if (!e) {
		drop_count(k, "a command");
		return;
	}
	stats.cluster_forwarded++;
	send_or_hold(k, e);
}

void clu_gone(struct clu *k, unsigned node, unsigned worker, uint64_t conn)
{
	struct pend *e = node_pend(k, node, 'G', WSGW_GONE, 0, worker, conn, NULL, 0);
	if (!e) {
		drop_count(k, "a GONE");
		return;
	}
	send_or_hold(k, e);
}

/* ---------------------------------------------------------------- presence */

static void pres_write(struct clu *k, struct chan *ch)
{
	const void *pp[2] = { PFX "p:", ch->name }, *ep[2] = { PFX "pe:", ch->name };
	size_t pn[2] = { strlen(PFX "p:"), ch->len }, en[2] = { strlen(PFX "pe:"), ch->len };
	char ttl[16];
	snprintf(ttl, sizeof(ttl), "%u", k->cc->ttl_ms);
	if (!ch->want) {
		char cmd[64 + 2 * WSGW_TOPIC_MAX], *o = resp_begin(cmd, 3);
		o = resp_str(o, "HDEL");
		o = resp_parts(o, 2, pp, pn, NULL);
		o = resp_str(o, k->node_s);
		send_raw(&k->cmd, NULL, NULL, cmd, (size_t)(o - cmd));
		o = resp_begin(cmd, 3);
		o = resp_str(o, "ZREM");
		o = resp_parts(o, 2, ep, en, NULL);
		o = resp_str(o, k->node_s);
		send_raw(&k->cmd, NULL, NULL, cmd, (size_t)(o - cmd));
		return;
	}
	/* The share: u32 count, then the ids when there are few (little-endian). */
	rcu_read_lock();
	struct topic *t = top_find(ch->name, ch->len);
	unsigned count = t ? top_count(t) : 0;
	unsigned listed = count <= WSGW_TOPIC_LIST_MAX ? count : 0;
	uint8_t *share = malloc(4 + (size_t)listed * 8);
	if (share) {
		put_le(share, count, 4);
		for (unsigned i = 0; i < listed; i++)
			put_le(share + 4 + (size_t)i * 8, top_conn(t, i)->id, 8);
	}
	rcu_read_unlock();
	if (!share) {
		log_error(ENOMEM, "cluster: presence");
		return;
	}
	size_t len = 64 + resp_arg_size(40) + 2 * resp_arg_size(strlen(PFX "pe:") + ch->len) +
		     resp_arg_size(4 + (size_t)listed * 8) + 64;
	char *cmd = malloc(len);
	if (cmd) {
		char *o = resp_begin(cmd, 8);
		o = resp_str(o, "EVALSHA");
		o = resp_str(o, k->sha[S_PRES_SET]);
		o = resp_str(o, "2");
		o = resp_parts(o, 2, pp, pn, NULL);
		o = resp_parts(o, 2, ep, en, NULL);
		o = resp_str(o, k->node_s);
		o = resp_arg(o, share, 4 + (size_t)listed * 8);
		o = resp_str(o, ttl);
		send_raw(&k->cmd, NULL, NULL, cmd, (size_t)(o - cmd));
	}
	free(cmd);
	free(share);
}

static void pres_flush(struct clu *k)
{
	struct chan *ch;
	while ((ch = k->dirty)) {
		k->dirty = ch->dnext;
		ch->dirty = 0;
		pres_write(k, ch);
	}
}

static void watch(void *arg, const uint8_t *name, size_t n, unsigned count)
{
	struct clu *k = arg;
	struct chan *ch = count ? chan_get(k, name, n) : chan_find(k, name, n);
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
				pend_send(k, e);
			}
		}
		chan_sync(k, ch);
	}
	mark_dirty(k, ch);
}

/* ---------------------------------------------------------------- queries and recovery */

static void on_query(redisAsyncContext *ac, void *reply, void *priv)
{
	struct qreq *q = priv;
	struct clu *k = q->k;
	redisReply *r = reply;
	(void)ac;
	struct clu_answer a = { .worker = q->worker, .conn = q->qid, .topic = q->topic,
				.tlen = q->tlen, .flags = q->flags };
	uint64_t *ids = NULL;
	if (r && r->type == REDIS_REPLY_ARRAY && r->elements == 3 &&
	    r->element[0]->type == REDIS_REPLY_ARRAY) {
		const redisReply *h = r->element[0];
		size_t cap = 0;
		int all = 1;
		for (size_t i = 0; i + 1 < h->elements; i += 2)
			if (h->element[i + 1]->type == REDIS_REPLY_STRING && h->element[i + 1]->len >= 4)
				cap += (h->element[i + 1]->len - 4) / 8;
		ids = cap ? malloc(cap * sizeof(*ids)) : NULL;
		for (size_t i = 0; i + 1 < h->elements; i += 2) {
			const redisReply *f = h->element[i], *v = h->element[i + 1];
			if (f->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING || v->len < 4 ||
			    (f->len == strlen(k->node_s) && memcmp(f->str, k->node_s, f->len) == 0))
				continue; /* this gateway's share is read from its own index */
			const uint8_t *s = (const uint8_t *)v->str;
			uint64_t c = (uint64_t)s[0] | (uint64_t)s[1] << 8 | (uint64_t)s[2] << 16 |
				     (uint64_t)s[3] << 24;
			a.count += c;
			size_t listed = (v->len - 4) / 8;
			if (listed != c || !ids)
				all = 0;
			for (size_t j = 0; ids && all && j < listed; j++)
				ids[a.nids++] = le64(s + 4 + j * 8);
		}
		if (!all)
			a.nids = 0;
		a.ids = ids;
		if (r->element[1]->type == REDIS_REPLY_STRING)
			a.offset = strtoull(r->element[1]->str, NULL, 10);
		if (r->element[2]->type == REDIS_REPLY_STRING)
			a.epoch = strtoull(r->element[2]->str, NULL, 10);
	} else if (r) {
		log_error(0, "cluster: presence query: %s", r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply");
	}
	/* Without an answer (Redis went away), this gateway's share alone. */
	k->ops->topic(k->arg, &a);
	free(ids);
	free(q);
}

int clu_query(struct clu *k, unsigned worker, uint64_t qid, const uint8_t *topic, size_t tlen,
	      unsigned flags)
{
	if (k->state != ST_UP)
		return -EAGAIN;
	struct qreq *q = malloc(sizeof(*q));
	if (!q)
		return -EAGAIN;
	*q = (struct qreq){ .k = k, .worker = worker, .qid = qid, .flags = flags, .tlen = (uint8_t)tlen };
	memcpy(q->topic, topic, tlen);
	char pk[8 + WSGW_TOPIC_MAX], ek[8 + WSGW_TOPIC_MAX], mk[8 + WSGW_TOPIC_MAX];
	size_t pn = (size_t)sprintf(pk, PFX "p:"), en = (size_t)sprintf(ek, PFX "pe:"),
	       mn = (size_t)sprintf(mk, PFX "hm:");
	memcpy(pk + pn, topic, tlen);
	memcpy(ek + en, topic, tlen);
	memcpy(mk + mn, topic, tlen);
	const char *argv[] = { "EVALSHA", k->sha[S_PRES_GET], "3", pk, ek, mk };
	size_t lens[] = { 7, 40, 1, pn + tlen, en + tlen, mn + tlen };
	if (send_argv(&k->cmd, on_query, q, 6, argv, lens)) {
		free(q);
		return -EAGAIN;
	}
	return 0;
}

static void rec_answer(struct clu *k, struct recq *q, int status, uint64_t offset,
		       uint64_t epoch, const redisReply *msgs)
{
	struct chan *ch = q->ch;
	size_t nm = msgs ? msgs->elements - 3 : 0;
	struct top_msg *v = malloc((nm + ch->buf_n + 1) * sizeof(*v));
	size_t n = 0;
	if (!v) {
		log_error(ENOMEM, "cluster: a recovery");
		status = WSGW_RECOVERY_UNAVAILABLE;
	}
	for (size_t i = 0; v && i < nm; i++) {
		const redisReply *e = msgs->element[3 + i];
		struct parsed pm;
		if (e->type != REDIS_REPLY_STRING || parse_msg((const uint8_t *)e->str, e->len, &pm)) {
			status = WSGW_RECOVERY_TRIMMED;
			n = 0;
			break;
		}
		v[n++] = (struct top_msg){ .topic = ch->name, .tlen = ch->len,
					   .op = (pm.flags & MF_BINARY) ? 2 : 1, .p = pm.p, .n = pm.n,
					   .offset = pm.offset, .epoch = pm.epoch,
					   .stamp = !!(pm.flags & MF_STAMP) };
	}
	if (status == WSGW_RECOVERED && ch->buf_lost)
		status = WSGW_RECOVERY_TRIMMED;
	if (status != WSGW_RECOVERED)
		n = 0; /* what was fetched is not the whole: the application resyncs */
	/* Then what came live meanwhile and was not in the history read. */
	for (struct bmsg *b = ch->buf_head; v && b; b = b->next)
		if (!b->m.offset || b->m.offset > offset)
			v[n++] = b->m;
	struct clu_answer a = { .worker = q->worker, .conn = q->conn, .topic = ch->name,
				.tlen = ch->len, .status = status, .offset = offset, .epoch = epoch,
				.msgs = v, .n = n };
	k->ops->recovered(k->arg, &a);
	free(v);
	if (--ch->recovering == 0)
		buf_clear(ch);
	ch->refs--;
	free(q);
}

static void on_recover(redisAsyncContext *ac, void *reply, void *priv)
{
	struct recq *q = priv;
	struct clu *k = ((struct rconn *)ac->ev.data)->k;
	redisReply *r = reply;
	if (!r || r->type != REDIS_REPLY_ARRAY || r->elements < 3 ||
	    r->element[0]->type != REDIS_REPLY_INTEGER || r->element[1]->type != REDIS_REPLY_STRING ||
	    r->element[2]->type != REDIS_REPLY_STRING) {
		if (r)
			log_error(0, "cluster: history read: %s", r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply");
		rec_answer(k, q, WSGW_RECOVERY_UNAVAILABLE, 0, 0, NULL);
		return;
	}
	static const int st[] = { WSGW_RECOVERED, WSGW_RECOVERY_EPOCH, WSGW_RECOVERY_TRIMMED };
	long long s = r->element[0]->integer;
	rec_answer(k, q, s >= 0 && s <= 2 ? st[s] : WSGW_RECOVERY_UNAVAILABLE,
		   strtoull(r->element[1]->str, NULL, 10), strtoull(r->element[2]->str, NULL, 10),
		   s == 0 ? r : NULL);
}

static void rec_send(struct clu *k, struct recq *q)
{
	struct chan *ch = q->ch;
	char mk[8 + WSGW_TOPIC_MAX], sk[8 + WSGW_TOPIC_MAX], since[24], epoch[24], max[16];
	size_t mn = (size_t)sprintf(mk, PFX "hm:"), sn = (size_t)sprintf(sk, PFX "hs:");
	memcpy(mk + mn, ch->name, ch->len);
	memcpy(sk + sn, ch->name, ch->len);
	snprintf(since, sizeof(since), "%llu", (unsigned long long)q->since);
	snprintf(epoch, sizeof(epoch), "%llu", (unsigned long long)q->epoch);
	snprintf(max, sizeof(max), "%u", q->max);
	const char *argv[] = { "EVALSHA", k->sha[S_RECOVER], "2", mk, sk, since, epoch, max };
	size_t lens[] = { 7, 40, 1, mn + ch->len, sn + ch->len, strlen(since), strlen(epoch), strlen(max) };
	if (send_argv(&k->cmd, on_recover, q, 8, argv, lens))
		rec_answer(k, q, WSGW_RECOVERY_UNAVAILABLE, 0, 0, NULL);
}

static void send_recoveries(struct clu *k, struct chan *ch)
{
	struct recq *q;
	while ((q = ch->rwait)) {
		ch->rwait = q->next;
		rec_send(k, q);
	}
}

int clu_recover(struct clu *k, unsigned worker, uint64_t conn, const uint8_t *topic,
		size_t tlen, uint64_t since, uint64_t epoch)
{
	const struct cfg_history *h = cfg_history_match(k->cfg, topic, tlen);
	struct chan *ch = chan_find(k, topic, tlen);
	if (k->state != ST_UP || !h || !ch)
		return -EAGAIN;
	struct recq *q = malloc(sizeof(*q));
	if (!q)
		return -EAGAIN;
	*q = (struct recq){ .ch = ch, .worker = worker, .conn = conn, .since = since,
			    .epoch = epoch, .max = h->max };
	ch->refs++;
	ch->recovering++;
	if (chan_confirmed(ch)) {
		rec_send(k, q);
	} else {
		/* Live messages must reach us before the history is read: after SUBSCRIBE. */
		struct recq **pp = &ch->rwait;
		while (*pp)
			pp = &(*pp)->next;
		q->next = NULL;
		*pp = q;
	}
	return 0;
}

/* ---------------------------------------------------------------- connection life */

static void set_state(struct clu *k, int st)
{
	k->state = st;
	k->state_at = now_ms(k);
	stats.cluster_up = st == ST_UP;
}

static void on_init_reply(redisAsyncContext *ac, void *reply, void *priv)
{
	redisReply *r = reply;
	struct rconn *rc = ac->ev.data;
	(void)priv;
	if (reply_is(r, REDIS_REPLY_ERROR))
		mark_broken(rc->k, "Redis refused the connection's setup: %s", r->str);
}

/* Sends everything queued for other gateways that waited for Redis, in order. */
static void release_held(struct clu *k)
{
	struct pend *e;
	while ((e = k->held_head)) {
		k->held_head = e->next;
		if (!k->held_head)
			k->held_tail = NULL;
		k->n_held--;
		pend_send(k, e);
	}
	stats.cluster_holding = 0;
}

static void go_up(struct clu *k)
{
	uint64_t held = stats.cluster_held - k->held_at_down, dropped = stats.cluster_dropped - k->dropped_at_down;
	size_t n = k->n_held;
	set_state(k, ST_UP);
	release_held(k);
	k->drop_logged = 0;
	if (k->outage) {
		k->outage = 0;
		log_info("cluster: Redis at %s:%u answers again after %.1f s: subscribed again to %zu "
			 "topics; %zu held messages sent (%llu held, %llu dropped during the outage)",
			 k->cc->host, k->cc->port, (now_ms(k) - k->down_at) / 1000.0, k->n_chan, n,
			 (unsigned long long)held, (unsigned long long)dropped);
	} else {
		log_info("cluster: joined as node %u through Redis at %s:%u", k->node, k->cc->host,
			 k->cc->port);
	}
}

static void on_ready(redisAsyncContext *ac, void *reply, void *priv)
{
	struct clu *k = priv;
	redisReply *r = reply;
	(void)ac;
	k->settle_sent = 0;
	if (!r || k->state != ST_SETTLING)
		return;
	int give_up = due(now_ms(k), k->state_at + k->cc->ttl_ms);
	if ((r->type == REDIS_REPLY_ARRAY && r->elements == 0) || give_up) {
		if (give_up && r->type == REDIS_REPLY_ARRAY)
			log_warn(0, "cluster: %zu gateways did not subscribe again within --cluster-ttl: "
				 "the held messages go without them", r->elements);
		go_up(k);
		return;
	}
	k->next_settle = now_ms(k) + SETTLE_RETRY_MS;
}

/* Before sending what it held, the gateway waits for the others it knew to be subscribed
 * again (or to be gone for good: --cluster-ttl), or they would miss it. */
static void settle_check(struct clu *k)
{
	const char *argv[2 + CLU_NODE_MAX];
	size_t lens[2 + CLU_NODE_MAX];
	static char nums[CLU_NODE_MAX + 1][6];
	int argc = 0;
	argv[argc] = "EVALSHA", lens[argc++] = 7;
	argv[argc] = k->sha[S_READY], lens[argc++] = 40;
	argv[argc] = "1", lens[argc++] = 1;
	argv[argc] = PFX "nodes", lens[argc++] = strlen(PFX "nodes");
	argv[argc] = PFX "n:", lens[argc++] = strlen(PFX "n:");
	for (unsigned n = 1; n <= CLU_NODE_MAX && argc < 2 + (int)CLU_NODE_MAX; n++)
		if (n != k->node && (k->known[n / 8] & (1u << (n % 8)))) {
			snprintf(nums[n], sizeof(nums[n]), "%u", n);
			argv[argc] = nums[n], lens[argc++] = strlen(nums[n]);
		}
	if (send_argv(&k->cmd, on_ready, k, argc, argv, lens) == 0)
		k->settle_sent = 1;
}

static void on_register(redisAsyncContext *ac, void *reply, void *priv)
{
	struct clu *k = priv;
	redisReply *r = reply;
	(void)ac;
	if (!r)
		return;
	if (r->type != REDIS_REPLY_ARRAY || r->elements < 1 || r->element[0]->type != REDIS_REPLY_INTEGER) {
		mark_broken(k, "registration: %s", r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply");
		return;
	}
	if (r->element[0]->integer == 0) {
		if (!k->claim_refused)
			log_error(0, "cluster: node id %u is held by another gateway (its registration has "
				  "not expired): this gateway stays alone until it is free; give each "
				  "gateway its own --node-id", k->node);
		k->claim_refused = 1;
		return;
	}
	if (k->claim_refused)
		log_info("cluster: node id %u is free again", k->node);
	k->claim_refused = 0;
	if (r->elements >= 2 && r->element[1]->type == REDIS_REPLY_ARRAY)
		for (size_t i = 0; i < r->element[1]->elements; i++) {
			const redisReply *e = r->element[1]->element[i];
			unsigned long n = e->type == REDIS_REPLY_STRING ? strtoul(e->str, NULL, 10) : 0;
			if (n >= 1 && n <= CLU_NODE_MAX)
				k->known[n / 8] |= (uint8_t)(1u << (n % 8));
		}
	if (k->state != ST_REGISTERING)
		return;
	/* Everything is subscribed again: its presence is written anew. */
	for (size_t i = 0; i < k->n_tab; i++)
		for (struct chan *ch = k->tab[i]; ch; ch = ch->hnext)
			if (ch->want)
				mark_dirty(k, ch);
	if (k->held_head) {
		unsigned known = 0;
		for (unsigned n = 1; n <= CLU_NODE_MAX; n++)
			known += n != k->node && (k->known[n / 8] & (1u << (n % 8)));
		log_info("cluster: subscribed again; %zu held messages wait until the %u other gateways "
			 "known are subscribed again too (at most --cluster-ttl)", k->n_held, known);
		set_state(k, ST_SETTLING);
		k->next_settle = now_ms(k);
	} else {
		go_up(k);
	}
}

static void send_register(struct clu *k)
{
	char ttl[16], key[32];
	snprintf(ttl, sizeof(ttl), "%u", k->cc->ttl_ms);
	snprintf(key, sizeof(key), PFX "node:%u", k->node);
	const char *argv[] = { "EVALSHA", k->sha[S_REGISTER], "2", key, PFX "nodes", k->token, ttl, k->node_s };
	size_t lens[8];
	for (int i = 0; i < 8; i++)
		lens[i] = strlen(argv[i]);
	send_argv(&k->cmd, on_register, k, 8, argv, lens);
}

/* The node channel is subscribed last: every topic channel is ours again. */
static void node_subscribed(struct clu *k)
{
	if (k->state != ST_CONNECTING)
		return;
	set_state(k, ST_REGISTERING);
	send_register(k);
}

static void on_pong(redisAsyncContext *ac, void *reply, void *priv)
{
	struct clu *k = priv;
	(void)ac;
	if (reply)
		k->ping_sent = 0;
}

static void start_connect(struct clu *k)
{
	k->attempts++;
	k->broken = 0;
	k->why[0] = 0;
	if (rconn_open(k, &k->cmd, "command") || rconn_open(k, &k->sub, "subscriber")) {
		mark_broken(k, "%s", "out of memory"); /* unless the reason is set already */
		return;
	}
	set_state(k, ST_CONNECTING);
	k->ping_sent = 0;
	k->next_ping = now_ms(k) + PING_MS;
	char name[32], db[8];
	snprintf(name, sizeof(name), "wsgw-%u", k->node);
	snprintf(db, sizeof(db), "%u", k->cc->db);
	for (struct rconn *r = &k->cmd; r; r = r == &k->cmd ? &k->sub : NULL) {
		if (k->cc->password[0]) {
			const char *a[] = { "AUTH", k->cc->user, k->cc->password };
			if (k->cc->user[0]) {
				size_t l[] = { 4, strlen(a[1]), strlen(a[2]) };
				send_argv(r, on_init_reply, NULL, 3, a, l);
			} else {
				const char *b[] = { "AUTH", k->cc->password };
				size_t l[] = { 4, strlen(b[1]) };
				send_argv(r, on_init_reply, NULL, 2, b, l);
			}
		}
		const char *sn[] = { "CLIENT", "SETNAME", name };
		size_t snl[] = { 6, 7, strlen(name) };
		send_argv(r, on_init_reply, NULL, 3, sn, snl);
	}
	if (k->cc->db) {
		const char *a[] = { "SELECT", db };
		size_t l[] = { 6, strlen(db) };
		send_argv(&k->cmd, on_init_reply, NULL, 2, a, l);
	}
	for (int i = 0; i < N_SCRIPTS; i++) {
		const char *a[] = { "SCRIPT", "LOAD", scripts[i] };
		size_t l[] = { 6, 4, strlen(scripts[i]) };
		send_argv(&k->cmd, on_init_reply, NULL, 3, a, l);
	}
	/* Every topic with local subscribers, the announcements, then this gateway's own
	 * channel. */
	for (size_t i = 0; i < k->n_tab; i++)
		for (struct chan *ch = k->tab[i]; ch; ch = ch->hnext)
			chan_sync(k, ch);
	const char *a[] = { "SUBSCRIBE", PFX "nodes", k->node_chan };
	size_t l[] = { 9, strlen(PFX "nodes"), strlen(k->node_chan) };
	send_argv(&k->sub, on_sub, k, 3, a, l);
}

/* Both connections go; what was in flight is delivered here or held; Redis is tried
 * again after a backoff. Called from the poll hook, outside hiredis's callbacks. */
static void teardown(struct clu *k)
{
	int was = k->state;
	for (struct rconn *r = &k->cmd; r; r = r == &k->cmd ? &k->sub : NULL)
		if (r->ac)
			redisAsyncFree(r->ac); /* answers every pending callback with NULL */
	/* What was sent: its subscribers here get what did not come back; for the others it
	 * is unconfirmed unless Redis answered. */
	for (size_t i = 0; i < k->n_tab; i++)
		for (struct chan *ch = k->tab[i]; ch; ch = ch->hnext)
			ch->echo_head = ch->echo_tail = NULL;
	for (int i = 0; i < 2; i++) {
		if (k->recent[i].n && now_ms(k) - k->recent[i].at < 1000)
			stats.cluster_unconfirmed += k->recent[i].n;
		k->recent[i].n = 0;
	}
	while (k->sent.snext != &k->sent) {
		struct pend *e = k->sent.snext;
		sent_unlink(e);
		if (e->replied != 1)
			stats.cluster_unconfirmed++;
		if (e->in_echo)
			deliver_local(k, e);
		pend_free(k, e);
	}
	struct pend *requeue_head = NULL, *requeue_tail = NULL;
	for (size_t i = 0; i < k->n_tab; i++)
		for (struct chan *ch = k->tab[i]; ch; ch = ch->hnext) {
			/* Waiting for their channel: here now, held for the others. */
			struct pend *e;
			while ((e = ch->wait_head)) {
				ch->wait_head = e->next;
				deliver_local(k, e);
				list_add(&requeue_head, &requeue_tail, e);
			}
			ch->wait_tail = NULL;
			struct recq *q;
			while ((q = ch->rwait)) {
				ch->rwait = q->next;
				rec_answer(k, q, WSGW_RECOVERY_UNAVAILABLE, 0, 0, NULL);
			}
			ch->last_op = OP_NONE;
			ch->ops_pending = 0;
		}
	/* The held ones first (older), then those that waited. */
	for (struct pend *e = requeue_head, *next; e; e = next) {
		next = e->next;
		stats.cluster_held++;
		hold(k, e);
	}
	chan_gc(k);
	k->broken = 0;
	k->settle_sent = 0;
	set_state(k, ST_DOWN);
	if (was >= ST_REGISTERING || (!k->outage && k->attempts == 1)) {
		if (!k->outage) {
			k->outage = 1;
			k->down_at = now_ms(k);
			k->held_at_down = stats.cluster_held;
			k->dropped_at_down = stats.cluster_dropped;
			if (was >= ST_REGISTERING)
				stats.cluster_outages++;
			log_warn(0, "cluster: Redis at %s:%u %s (%s): serving this gateway's clients alone, "
				 "holding up to %u messages for the others, trying again",
				 k->cc->host, k->cc->port, was >= ST_REGISTERING ? "lost" : "unreachable",
				 k->why, k->cc->hold);
		}
		k->backoff = BACKOFF_MIN_MS;
	} else {
		log_debug("cluster: Redis still unreachable (%s)", k->why);
		k->backoff = k->backoff * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : k->backoff * 2;
	}
	/* Jitter, so that gateways that lost Redis together do not come back together. */
	k->rng = k->rng * 1103515245u + 12345u;
	k->next_try = now_ms(k) + k->backoff * 3 / 4 + (k->rng >> 8) % (k->backoff / 2 + 1);
}

/* ---------------------------------------------------------------- loop hooks */

static int hook_poll(void *arg)
{
	struct clu *k = arg;
	uint32_t now = now_ms(k);
	if (k->state != ST_DOWN && !k->broken) {
		if (k->state == ST_CONNECTING && due(now, k->state_at + DEAD_MS) &&
		    (!k->cmd.ac || !(k->cmd.ac->c.flags & REDIS_CONNECTED) || !k->sub.ac ||
		     !(k->sub.ac->c.flags & REDIS_CONNECTED)))
			mark_broken(k, "%s", "no connection within 3 s");
		else if (k->state < ST_SETTLING && !k->claim_refused && due(now, k->state_at + SYNC_MS))
			mark_broken(k, "%s", "subscribing again took longer than 10 s");
		else if (k->ping_sent && due(now, k->ping_sent + DEAD_MS))
			mark_broken(k, "%s", "no answer to PING within 3 s");
	}
	if (k->broken) {
		teardown(k);
		return 1;
	}
	if (k->state == ST_DOWN) {
		if (due(now, k->next_try))
			start_connect(k);
		return 0;
	}
	if (due(now, k->next_ping)) {
		k->next_ping = now + PING_MS;
		const char *a[] = { "PING" };
		size_t l[] = { 4 };
		if (!k->ping_sent && send_argv(&k->cmd, on_pong, k, 1, a, l) == 0)
			k->ping_sent = now ? now : 1;
	}
	if (due(now, k->next_refresh) && k->state >= ST_REGISTERING) {
		k->next_refresh = now + k->cc->ttl_ms / 3;
		if (k->state != ST_REGISTERING || k->claim_refused)
			send_register(k);
		if (k->state == ST_UP)
			for (size_t i = 0; i < k->n_tab; i++)
				for (struct chan *ch = k->tab[i]; ch; ch = ch->hnext)
					if (ch->want)
						mark_dirty(k, ch);
	}
	if (k->state == ST_SETTLING && !k->settle_sent && due(now, k->next_settle))
		settle_check(k);
	if (k->state == ST_UP && k->dirty && due(now, k->next_presence)) {
		k->next_presence = now + PRESENCE_MS;
		pres_flush(k);
	}
	return 0;
}

/* The end of a batch: what the batch queued for Redis is written now, not one epoll
 * round later. Nothing is read here. */
static void hook_flush(void *arg)
{
	struct clu *k = arg;
	for (struct rconn *r = &k->cmd; r; r = r == &k->cmd ? &k->sub : NULL)
		if (r->ac && (r->events & EPOLLOUT) && (r->ac->c.flags & REDIS_CONNECTED))
			redisAsyncHandleWrite(r->ac);
	chan_gc(k);
}

static int hook_timeout(void *arg)
{
	struct clu *k = arg;
	uint32_t now = now_ms(k);
	if (k->broken)
		return 0;
	uint32_t at = k->state == ST_DOWN ? k->next_try : k->next_ping;
	if (k->state == ST_UP && k->dirty && (int32_t)(k->next_presence - at) < 0)
		at = k->next_presence;
	if (k->state == ST_SETTLING && !k->settle_sent && (int32_t)(k->next_settle - at) < 0)
		at = k->next_settle;
	if (k->state >= ST_REGISTERING && (int32_t)(k->next_refresh - at) < 0)
		at = k->next_refresh;
	int32_t d = (int32_t)(at - now);
	return d < 0 ? 0 : d;
}

/* ---------------------------------------------------------------- life */

static unsigned derive_node(const struct gw_config *cfg)
{
	char host[256] = "";
	gethostname(host, sizeof(host) - 1);
	size_t h = hash_name(host, strlen(host)) * 31 + hash_name(cfg->listen[0].text, strlen(cfg->listen[0].text));
	return (unsigned)(h % CLU_NODE_MAX) + 1;
}

int clu_new(struct loop *l, const struct gw_config *cfg, struct clu **out)
{
	struct clu *k = calloc(1, sizeof(*k));
	if (!k)
		return -ENOMEM;
	k->loop = l;
	k->cfg = cfg;
	k->cc = &cfg->cluster;
	k->node = k->cc->node_id ? k->cc->node_id : derive_node(cfg);
	if (!k->cc->node_id)
		log_info("cluster: node id %u, derived from the host name and %s (set --node-id to choose it)",
			 k->node, cfg->listen[0].text);
	snprintf(k->node_s, sizeof(k->node_s), "%u", k->node);
	snprintf(k->node_chan, sizeof(k->node_chan), PFX "n:%u", k->node);
	uint64_t rnd[2] = { 0, 0 };
	if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd))
		rnd[0] = (uint64_t)getpid() << 32 ^ (uint64_t)time(NULL);
	snprintf(k->token, sizeof(k->token), "%016llx%016llx", (unsigned long long)rnd[0],
		 (unsigned long long)rnd[1]);
	k->rng = (unsigned)rnd[0];
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	uint64_t us = ((uint64_t)ts.tv_sec - 1735689600u) * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
	k->first_id = (uint64_t)k->node << CLU_NODE_SHIFT | (us & ((1ull << CLU_NODE_SHIFT) - 1));
	for (int i = 0; i < N_SCRIPTS; i++)
		sha1_hex(scripts[i], k->sha[i]);
	k->sent.snext = k->sent.sprev = &k->sent;
	k->backoff = BACKOFF_MIN_MS;
	k->state = ST_DOWN;
	k->next_try = loop_now(l);
	struct loop_hooks h = { .arg = k, .poll = hook_poll, .flush = hook_flush,
				.timeout_ms = hook_timeout };
	int rc = loop_add_hooks(l, &h);
	if (rc) {
		log_error(-rc, "cluster: loop hooks");
		free(k);
		return rc;
	}
	top_set_watch(watch, k);
	*out = k;
	return 0;
}

void clu_set_ops(struct clu *k, const struct clu_ops *ops, void *arg)
{
	k->ops = ops;
	k->arg = arg;
}

unsigned clu_node(const struct clu *k)
{
	return k->node;
}

uint64_t clu_first_id(const struct clu *k)
{
	return k->first_id;
}

int clu_up(const struct clu *k)
{
	return k->state == ST_UP;
}

/* Leaving: this gateway's presence and registration go now rather than at their expiry
 * (a short blocking exchange: the loop has stopped). */
static void leave(struct clu *k)
{
	struct timeval tv = { 1, 0 };
	redisContext *c = redisConnectWithTimeout(k->cc->host, (int)k->cc->port, tv);
	if (!c || c->err) {
		if (c)
			redisFree(c);
		return;
	}
	redisSetTimeout(c, tv);
	int n = 0;
	if (k->cc->password[0]) {
		if (k->cc->user[0])
			redisAppendCommand(c, "AUTH %s %s", k->cc->user, k->cc->password);
		else
			redisAppendCommand(c, "AUTH %s", k->cc->password);
		n++;
	}
	if (k->cc->db) {
		redisAppendCommand(c, "SELECT %u", k->cc->db);
		n++;
	}
	for (size_t i = 0; i < k->n_tab; i++)
		for (struct chan *ch = k->tab[i]; ch; ch = ch->hnext) {
			redisAppendCommand(c, "HDEL " PFX "p:%b %s", ch->name, (size_t)ch->len, k->node_s);
			redisAppendCommand(c, "ZREM " PFX "pe:%b %s", ch->name, (size_t)ch->len, k->node_s);
			n += 2;
		}
	/* The registration only if it is still ours. */
	redisAppendCommand(c, "EVAL %s 2 " PFX "node:%u " PFX "nodes %s %s",
			   "if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) "
			   "redis.call('ZREM', KEYS[2], ARGV[2]) end return 1",
			   k->node, k->token, k->node_s);
	n++;
	for (int i = 0; i < n; i++) {
		void *r = NULL;
		if (redisGetReply(c, &r) != REDIS_OK)
			break;
		freeReplyObject(r);
	}
	redisFree(c);
}

void clu_free(struct clu *k)
{
	if (!k)
		return;
	top_set_watch(NULL, NULL);
	int was_up = k->state >= ST_REGISTERING && !k->claim_refused;
	for (struct rconn *r = &k->cmd; r; r = r == &k->cmd ? &k->sub : NULL)
		if (r->ac)
			redisAsyncFree(r->ac);
	while (k->sent.snext != &k->sent) {
		struct pend *e = k->sent.snext;
		sent_unlink(e);
		pend_free(k, e);
	}
	struct pend *e;
	while ((e = k->held_head)) {
		k->held_head = e->next;
		pend_free(k, e);
	}
	if (was_up)
		leave(k);
	for (size_t i = 0; i < k->n_tab; i++)
		for (struct chan *ch = k->tab[i], *next; ch; ch = next) {
			next = ch->hnext;
			while ((e = ch->wait_head)) {
				ch->wait_head = e->next;
				pend_free(k, e);
			}
			struct recq *q;
			while ((q = ch->rwait)) {
				ch->rwait = q->next;
				free(q);
			}
			buf_clear(ch);
			free(ch);
		}
	free(k->tab);
	free(k);
}
