/*
 * The cluster's life (gateway/cluster.h tells what the cluster does; cluster_int.h how its
 * files divide it): connecting to Redis and subscribing again, registering the node id,
 * outages (serving alone, holding, backing off, settling before sending what was held),
 * the loop's hooks that give hiredis its timers, and leaving.
 */
#include "gateway/cluster_int.h"
#include "gateway/log.h"
#include "gateway/stats.h"
#include "wsgw/protocol.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#define PING_MS 1000
#define DEAD_MS 3000          /* no PING answer, or no connection, within this: Redis is away */
#define SYNC_MS 10000         /* subscribing again must be done within this */
#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 5000
#define PRESENCE_MS 50        /* presence changes are written at most this often */
#define SETTLE_RETRY_MS 100

static void node_subscribed(struct clu *k);

/* Every message and (un)subscribe confirmation of the subscriber connection. */
static void on_sub(redisAsyncContext *ac, void *reply, void *priv)
{
	struct clu *k = priv;
	redisReply *r = reply;
	(void)ac;
	if (!r || r->type != REDIS_REPLY_ARRAY || r->elements < 3 ||
	    r->element[0]->type != REDIS_REPLY_STRING || r->element[1]->type != REDIS_REPLY_STRING) {
		if (clu__reply_is(r, REDIS_REPLY_ERROR))
			clu__redis_broken(k, "SUBSCRIBE: %s", r->str);
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
			clu__chan_message(k, name + tl, nlen - tl, (const uint8_t *)r->element[2]->str,
					 r->element[2]->len);
		else if (mine)
			clu__node_message(k, (const uint8_t *)r->element[2]->str, r->element[2]->len);
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
	struct chan *ch = topic ? clu__chan_confirm(k, name + tl, nlen - tl) : NULL;
	if (ch)
		clu__rec_send_waiting(k, ch);
}

/* ---- connection life ---- */

static void set_state(struct clu *k, int st)
{
	k->state = st;
	k->state_at = clu__now(k);
	stats.cluster_up = st == ST_UP;
}

static void on_init_reply(redisAsyncContext *ac, void *reply, void *priv)
{
	redisReply *r = reply;
	struct rconn *rc = ac->ev.data;
	(void)priv;
	if (clu__reply_is(r, REDIS_REPLY_ERROR))
		clu__redis_broken(rc->k, "Redis refused the connection's setup: %s", r->str);
}

static void go_up(struct clu *k)
{
	uint64_t held = stats.cluster_held - k->held_at_down, dropped = stats.cluster_dropped - k->dropped_at_down;
	size_t n = k->n_held;
	set_state(k, ST_UP);
	clu__pend_release(k);
	k->drop_logged = 0;
	if (k->outage) {
		k->outage = 0;
		log_info("cluster: Redis at %s:%u answers again after %.1f s: subscribed again to %zu "
			 "topics; %zu held messages sent (%llu held, %llu dropped during the outage)",
			 k->cc->host, k->cc->port, (clu__now(k) - k->down_at) / 1000.0, k->n_chan, n,
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
	int give_up = clu__due(clu__now(k), k->state_at + k->cc->ttl_ms);
	if ((r->type == REDIS_REPLY_ARRAY && r->elements == 0) || give_up) {
		if (give_up && r->type == REDIS_REPLY_ARRAY)
			log_warn(0, "cluster: %zu gateways did not subscribe again within --cluster-ttl: "
				 "the held messages go without them", r->elements);
		go_up(k);
		return;
	}
	k->next_settle = clu__now(k) + SETTLE_RETRY_MS;
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
	if (clu__redis_argv(&k->cmd, on_ready, k, argc, argv, lens) == 0)
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
		clu__redis_broken(k, "registration: %s", r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply");
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
				clu__chan_dirty(k, ch);
	if (k->held_head) {
		unsigned known = 0;
		for (unsigned n = 1; n <= CLU_NODE_MAX; n++)
			known += n != k->node && (k->known[n / 8] & (1u << (n % 8)));
		log_info("cluster: subscribed again; %zu held messages wait until the %u other gateways "
			 "known are subscribed again too (at most --cluster-ttl)", k->n_held, known);
		set_state(k, ST_SETTLING);
		k->next_settle = clu__now(k);
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
	clu__redis_argv(&k->cmd, on_register, k, 8, argv, lens);
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
	if (clu__redis_open(k, &k->cmd, "command") || clu__redis_open(k, &k->sub, "subscriber")) {
		clu__redis_broken(k, "%s", "out of memory"); /* unless the reason is set already */
		return;
	}
	set_state(k, ST_CONNECTING);
	k->ping_sent = 0;
	k->next_ping = clu__now(k) + PING_MS;
	char name[32], db[8];
	snprintf(name, sizeof(name), "wsgw-%u", k->node);
	snprintf(db, sizeof(db), "%u", k->cc->db);
	for (struct rconn *r = &k->cmd; r; r = r == &k->cmd ? &k->sub : NULL) {
		if (k->cc->password[0]) {
			const char *a[] = { "AUTH", k->cc->user, k->cc->password };
			if (k->cc->user[0]) {
				size_t l[] = { 4, strlen(a[1]), strlen(a[2]) };
				clu__redis_argv(r, on_init_reply, NULL, 3, a, l);
			} else {
				const char *b[] = { "AUTH", k->cc->password };
				size_t l[] = { 4, strlen(b[1]) };
				clu__redis_argv(r, on_init_reply, NULL, 2, b, l);
			}
		}
		const char *sn[] = { "CLIENT", "SETNAME", name };
		size_t snl[] = { 6, 7, strlen(name) };
		clu__redis_argv(r, on_init_reply, NULL, 3, sn, snl);
	}
	if (k->cc->db) {
		const char *a[] = { "SELECT", db };
		size_t l[] = { 6, strlen(db) };
		clu__redis_argv(&k->cmd, on_init_reply, NULL, 2, a, l);
	}
	for (int i = 0; i < N_SCRIPTS; i++) {
		const char *a[] = { "SCRIPT", "LOAD", clu__scripts[i] };
		size_t l[] = { 6, 4, strlen(clu__scripts[i]) };
		clu__redis_argv(&k->cmd, on_init_reply, NULL, 3, a, l);
	}
	/* Every topic with local subscribers, the announcements, then this gateway's own
	 * channel. */
	for (size_t i = 0; i < k->n_tab; i++)
		for (struct chan *ch = k->tab[i]; ch; ch = ch->hnext)
			clu__chan_sync(k, ch);
	const char *a[] = { "SUBSCRIBE", PFX "nodes", k->node_chan };
	size_t l[] = { 9, strlen(PFX "nodes"), strlen(k->node_chan) };
	clu__redis_argv(&k->sub, on_sub, k, 3, a, l);
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
		if (k->recent[i].n && clu__now(k) - k->recent[i].at < 1000)
			stats.cluster_unconfirmed += k->recent[i].n;
		k->recent[i].n = 0;
	}
	while (k->sent.snext != &k->sent) {
		struct pend *e = k->sent.snext;
		clu__pend_unlink(e);
		if (e->replied != 1)
			stats.cluster_unconfirmed++;
		if (e->in_echo)
			clu__pend_local(k, e);
		clu__pend_free(k, e);
	}
	struct pend *requeue_head = NULL, *requeue_tail = NULL;
	for (size_t i = 0; i < k->n_tab; i++)
		for (struct chan *ch = k->tab[i]; ch; ch = ch->hnext) {
			/* Waiting for their channel: here now, held for the others. */
			struct pend *e;
			while ((e = ch->wait_head)) {
				ch->wait_head = e->next;
				clu__pend_local(k, e);
				clu__pend_add(&requeue_head, &requeue_tail, e);
			}
			ch->wait_tail = NULL;
			struct recq *q;
			while ((q = ch->rwait)) {
				ch->rwait = q->next;
				clu__rec_fail(k, q);
			}
			ch->last_op = OP_NONE;
			ch->ops_pending = 0;
		}
	/* The held ones first (older), then those that waited. */
	for (struct pend *e = requeue_head, *next; e; e = next) {
		next = e->next;
		stats.cluster_held++;
		clu__pend_hold(k, e);
	}
	clu__chan_gc(k);
	k->broken = 0;
	k->settle_sent = 0;
	set_state(k, ST_DOWN);
	if (was >= ST_REGISTERING || (!k->outage && k->attempts == 1)) {
		if (!k->outage) {
			k->outage = 1;
			k->down_at = clu__now(k);
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
	k->next_try = clu__now(k) + k->backoff * 3 / 4 + (k->rng >> 8) % (k->backoff / 2 + 1);
}

/* ---------------------------------------------------------------- loop hooks */

static int hook_poll(void *arg)
{
	struct clu *k = arg;
	uint32_t now = clu__now(k);
	if (k->state != ST_DOWN && !k->broken) {
		if (k->state == ST_CONNECTING && clu__due(now, k->state_at + DEAD_MS) &&
		    (!k->cmd.ac || !(k->cmd.ac->c.flags & REDIS_CONNECTED) || !k->sub.ac ||
		     !(k->sub.ac->c.flags & REDIS_CONNECTED)))
			clu__redis_broken(k, "%s", "no connection within 3 s");
		else if (k->state < ST_SETTLING && !k->claim_refused && clu__due(now, k->state_at + SYNC_MS))
			clu__redis_broken(k, "%s", "subscribing again took longer than 10 s");
		else if (k->ping_sent && clu__due(now, k->ping_sent + DEAD_MS))
			clu__redis_broken(k, "%s", "no answer to PING within 3 s");
	}
	if (k->broken) {
		teardown(k);
		return 1;
	}
	if (k->state == ST_DOWN) {
		if (clu__due(now, k->next_try))
			start_connect(k);
		return 0;
	}
	if (clu__due(now, k->next_ping)) {
		k->next_ping = now + PING_MS;
		const char *a[] = { "PING" };
		size_t l[] = { 4 };
		if (!k->ping_sent && clu__redis_argv(&k->cmd, on_pong, k, 1, a, l) == 0)
			k->ping_sent = now ? now : 1;
	}
	if (clu__due(now, k->next_refresh) && k->state >= ST_REGISTERING) {
		k->next_refresh = now + k->cc->ttl_ms / 3;
		if (k->state != ST_REGISTERING || k->claim_refused)
			send_register(k);
		if (k->state == ST_UP)
			for (size_t i = 0; i < k->n_tab; i++)
				for (struct chan *ch = k->tab[i]; ch; ch = ch->hnext)
					if (ch->want)
						clu__chan_dirty(k, ch);
	}
	if (k->state == ST_SETTLING && !k->settle_sent && clu__due(now, k->next_settle))
		settle_check(k);
	if (k->state == ST_UP && k->dirty && clu__due(now, k->next_presence)) {
		k->next_presence = now + PRESENCE_MS;
		clu__node_presence(k);
	}
	return 0;
}

/* The end of a batch: what the batch queued for Redis is written now, not one epoll
 * round later. Nothing is read here. */
static void hook_flush(void *arg)
{
	struct clu *k = arg;
	clu__redis_flush(&k->cmd);
	clu__redis_flush(&k->sub);
	clu__chan_gc(k);
}

static int hook_timeout(void *arg)
{
	struct clu *k = arg;
	uint32_t now = clu__now(k);
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
	size_t h = clu__hash(host, strlen(host)) * 31 + clu__hash(cfg->listen[0].text, strlen(cfg->listen[0].text));
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
		clu__sha1_hex(clu__scripts[i], k->sha[i]);
	k->on_sub = on_sub;
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
	top_set_watch(clu__chan_watch, k);
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
		clu__pend_unlink(e);
		clu__pend_free(k, e);
	}
	struct pend *e;
	while ((e = k->held_head)) {
		k->held_head = e->next;
		clu__pend_free(k, e);
	}
	if (was_up)
		leave(k);
	for (size_t i = 0; i < k->n_tab; i++)
		for (struct chan *ch = k->tab[i], *next; ch; ch = next) {
			next = ch->hnext;
			while ((e = ch->wait_head)) {
				ch->wait_head = e->next;
				clu__pend_free(k, e);
			}
			struct recq *q;
			while ((q = ch->rwait)) {
				ch->rwait = q->next;
				free(q);
			}
			clu__chan_buf_clear(ch);
			free(ch);
		}
	free(k->tab);
	free(k);
}
