/*
 * Several gateways joined through Redis (gateway/cluster.h, docs/SCALING.md): a real
 * redis-server on a loopback port the test picked, without persistence; real gateways;
 * raw zmq workers (tests/lib/wtctl.h) so that every frame is the test's own; real
 * WebSocket clients. Nothing here asserts a speed: every wait is a bounded poll.
 */
#include <check.h>
#include <endian.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "tests/lib/wtctl.h"
#include "tests/lib/wtenv.h"
#include "tests/lib/wtredis.h"
#include "wsgw/protocol.h"

#define MAX_GW 3
#define TTL_S 2

/* ---- a raw zmq worker that acknowledges what it is sent ----------------------- */

struct rw {
	struct wt_ctl ctl;
	uint64_t counted;
	uint64_t *opens;
	size_t n_opens, cap;
};

static void rw_attach(struct rw *r, const char *control)
{
	struct wt_ctl_msg m;

	memset(r, 0, sizeof(*r));
	ck_assert_int_eq(wt_ctl_connect(&r->ctl, control), 0);
	ck_assert_int_eq(wt_ctl_hello(&r->ctl, "p", "zmq", &m, 5000), 0);
	wt_ctl_msg_free(&m);
}

static uint64_t frame_id(const struct wt_ctl_msg *m, int i)
{
	uint64_t be = 0;

	if (m->n > i && m->len[i] == 8)
		memcpy(&be, m->f[i], 8);
	return be64toh(be);
}

/* One message within ms; OPEN, MESSAGE, CLOSE and GONE are counted and acknowledged at
 * once, and OPENs remembered. */
static int rw_recv(struct rw *r, struct wt_ctl_msg *m, int ms)
{
	int rc = wt_ctl_recv(&r->ctl, m, ms);

	if (rc)
		return rc;
	if (wt_ctl_frame_is(m, 0, "OPEN") || wt_ctl_frame_is(m, 0, "MESSAGE") ||
	    wt_ctl_frame_is(m, 0, "CLOSE") || wt_ctl_frame_is(m, 0, "GONE")) {
		char num[24];
		snprintf(num, sizeof(num), "%llu", (unsigned long long)++r->counted);
		const char *f[] = { "ACK", num };
		ck_assert_int_eq(wt_ctl_send(&r->ctl, 2, f, NULL), 0);
	}
	if (wt_ctl_frame_is(m, 0, "OPEN")) {
		if (r->n_opens == r->cap) {
			r->cap = r->cap ? 2 * r->cap : 64;
			r->opens = realloc(r->opens, r->cap * sizeof(*r->opens));
		}
		r->opens[r->n_opens++] = frame_id(m, 1);
	}
	return 0;
}

/* The next message whose verb is verb (others are taken and dropped). */
static int rw_expect(struct rw *r, const char *verb, struct wt_ctl_msg *m, int ms)
{
	for (int64_t end = wt_now_ms() + ms; wt_now_ms() < end;) {
		int64_t left = end - wt_now_ms();
		if (rw_recv(r, m, left > 0 ? (int)left : 0))
			return -ETIMEDOUT;
		if (wt_ctl_frame_is(m, 0, verb))
			return 0;
		wt_ctl_msg_free(m);
	}
	return -ETIMEDOUT;
}

static void rw_send(struct rw *r, int n, const char *const *f, const size_t *l)
{
	ck_assert_int_eq(wt_ctl_send(&r->ctl, n, f, l), 0);
}

static void rw_verb_id(struct rw *r, const char *verb, uint64_t id, const char *s, const char *extra)
{
	uint64_t be = htobe64(id);
	const char *f[] = { verb, (const char *)&be, s, extra };
	size_t l[] = { strlen(verb), 8, s ? strlen(s) : 0, extra ? strlen(extra) : 0 };

	rw_send(r, s ? (extra ? 4 : 3) : 2, f, l);
}

static void rw_publish(struct rw *r, const char *topic, const char *type, const char *payload,
		       uint64_t exclude)
{
	uint64_t be = htobe64(exclude);
	const char *f[] = { "PUBLISH", topic, type, payload, (const char *)&be };
	size_t l[] = { 7, strlen(topic), strlen(type), strlen(payload), 8 };

	rw_send(r, exclude ? 5 : 4, f, l);
}

/* QUERY: the subscriber count; the ids when listed (ids may be NULL); with position, the
 * offset and epoch. */
static long rw_query(struct rw *r, const char *topic, uint64_t *ids, size_t *nids,
		     uint64_t *offset, uint64_t *epoch)
{
	struct wt_ctl_msg m;
	uint64_t be = htobe64(77);
	const char *f[] = { "QUERY", (const char *)&be, topic, "position" };
	size_t l[] = { 5, 8, strlen(topic), 8 };

	rw_send(r, offset ? 4 : 3, f, l);
	ck_assert_int_eq(rw_expect(r, "TOPIC", &m, 10000), 0);
	ck_assert_int_eq(m.n, offset ? 7 : 5);
	long count = atol(m.f[3]);
	if (ids) {
		*nids = m.len[4] / 8;
		for (size_t i = 0; i < *nids; i++) {
			memcpy(&be, m.f[4] + 8 * i, 8);
			ids[i] = be64toh(be);
		}
	}
	if (offset) {
		*offset = strtoull(m.f[5], NULL, 10);
		*epoch = strtoull(m.f[6], NULL, 10);
	}
	wt_ctl_msg_free(&m);
	return count;
}

static void rw_done(struct rw *r)
{
	const char *bye[] = { "BYE" };

	wt_ctl_send(&r->ctl, 1, bye, NULL);
	wt_ctl_close(&r->ctl);
	free(r->opens);
}

/* ---- gateways ------------------------------------------------------------------ */

struct gw {
	struct wt_env e;
	struct rw w;
	int admin;
	char conf[128]; /* its config file, when [cluster] came from one */
};

/* The admin port, from the gateway's log. */
static int admin_port(const struct wt_gw *g)
{
	char line[512];
	int port = 0;
	FILE *f = fopen(g->log_path, "r");

	while (f && fgets(line, sizeof(line), f))
		if (strstr(line, "admin endpoint on port "))
			port = atoi(strstr(line, "on port ") + 8);
	if (f)
		fclose(f);
	return port;
}

/* Gateway i (node i + 1) of the cluster at redis (NULL: alone), with its worker; its
 * [cluster] settings on the command line, or in a config file. */
static void gw_start_how(struct gw *g, int i, const struct wt_redis *redis,
			 const char *const *extra, int file)
{
	const char *args[48];
	char node[16];
	int n = 0;

	snprintf(node, sizeof(node), "%d", i + 1);
	wt_env_init(&g->e);
	g->conf[0] = 0;
	args[n++] = "--control", args[n++] = g->e.control;
	args[n++] = "--runtime-dir", args[n++] = g->e.dir;
	args[n++] = "--route", args[n++] = "/=p";
	args[n++] = "--heartbeat", args[n++] = "30";
	args[n++] = "--admin", args[n++] = "127.0.0.1:0";
	if (redis && file) {
		snprintf(g->conf, sizeof(g->conf), "/tmp/wsgw-cluster-test.%d.%d.conf", (int)getpid(), i);
		FILE *f = fopen(g->conf, "w");
		ck_assert_ptr_nonnull(f);
		fprintf(f, "[cluster]\nredis = %s\nnode-id = %s\nttl = %d\n", redis->url, node, TTL_S);
		fclose(f);
		args[n++] = "--config", args[n++] = g->conf;
	} else if (redis) {
		args[n++] = "--cluster", args[n++] = redis->url;
		args[n++] = "--node-id", args[n++] = node;
		args[n++] = "--cluster-ttl", args[n++] = "2"; /* TTL_S */
	}
	while (extra && *extra)
		args[n++] = *extra++;
	args[n] = NULL;
	wt__gw_start(__FILE__, __LINE__, &g->e.gw, args);
	wt_track_gateway(g->e.gw.pid);
	/* Logged just after "listening on", which wt_gw_start waited for. */
	ck_assert(wt_wait_file(g->e.gw.log_path, "admin endpoint on port ", 5000));
	g->admin = admin_port(&g->e.gw);
	ck_assert_int_gt(g->admin, 0);
	if (redis)
		ck_assert_msg(wt_wait_file(g->e.gw.log_path, "cluster: joined as node", 10000),
			      "gateway %d did not join the cluster", i);
	rw_attach(&g->w, g->e.control);
}

static void gw_start(struct gw *g, int i, const struct wt_redis *redis, const char *const *extra)
{
	gw_start_how(g, i, redis, extra, 0);
}

static void gw_done(struct gw *g)
{
	rw_done(&g->w);
	wt_env_done(&g->e);
	if (g->conf[0])
		unlink(g->conf);
}

/* A value of the gateway's /metrics, or -1. */
static long long metric(const struct gw *g, const char *name)
{
	static char resp[32768];
	struct wt_conn c;
	char req[128], key[128];
	size_t len = 0;

	if (wt_connect(&c, "127.0.0.1", g->admin) < 0)
		return -1;
	snprintf(req, sizeof(req), "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
	wt_send_raw(&c, req, strlen(req));
	for (int64_t end = wt_now_ms() + 5000; len < sizeof(resp) - 1 && wt_now_ms() < end;) {
		struct pollfd pf = { .fd = c.fd, .events = POLLIN };
		if (poll(&pf, 1, 100) <= 0)
			continue;
		ssize_t r = read(c.fd, resp + len, sizeof(resp) - 1 - len);
		if (r <= 0)
			break;
		len += (size_t)r;
	}
	resp[len] = 0;
	wt_close(&c);
	snprintf(key, sizeof(key), "\n%s ", name);
	const char *p = strstr(resp, key);
	return p ? atoll(p + strlen(key)) : -1;
}

static void raise_nofile(void)
{
	struct rlimit rl;

	getrlimit(RLIMIT_NOFILE, &rl);
	rl.rlim_cur = rl.rlim_max;
	setrlimit(RLIMIT_NOFILE, &rl);
}

/* Opens n clients on gateway g from index first, and learns their ids: each says its
 * index, which its worker sees in a MESSAGE. */
static void open_clients(struct gw *g, struct wt_conn *c, uint64_t *ids, int first, int n)
{
	char msg[16];
	struct wt_ctl_msg m;

	for (int i = first; i < first + n; i++) {
		WT_EXPECT_OPEN(&c[i], "127.0.0.1", g->e.gw.port, "/");
		int len = snprintf(msg, sizeof(msg), "%d", i);
		WT_OK(&c[i], wt_send_frame(&c[i], WT_TEXT, 1, msg, (size_t)len));
	}
	for (int got = 0; got < n;) {
		ck_assert_int_eq(rw_expect(&g->w, "MESSAGE", &m, 10000), 0);
		int i = atoi(m.f[3]);
		ck_assert(i >= first && i < first + n);
		ids[i] = frame_id(&m, 1);
		wt_ctl_msg_free(&m);
		got++;
	}
}

/* The next text message of c as a string (payload copied into out). */
static int read_text(struct wt_conn *c, char *out, size_t cap, int ms)
{
	struct wt_frame f;
	int rc = wt_read_message(c, &f, ms);

	if (rc)
		return rc;
	if (f.opcode != WT_TEXT) {
		int op = f.opcode;
		wt_frame_free(&f);
		return op == WT_CLOSE ? -EPIPE : -EPROTO;
	}
	size_t n = f.len < cap - 1 ? f.len : cap - 1;
	memcpy(out, f.payload, n);
	out[n] = 0;
	wt_frame_free(&f);
	return 0;
}

/* Waits until the topic has want subscribers in the whole cluster (QUERY on g) and every
 * gateway that has some subscribes its channel (nsub of them, Redis says). */
static void wait_subscribed(struct gw *g, struct wt_redis *redis, const char *topic, long want,
			    int nsub)
{
	long count = -1;
	long long numsub = -1;

	for (int64_t end = wt_now_ms() + 20000; wt_now_ms() < end; wt_sleep_ms(50)) {
		count = rw_query(&g->w, topic, NULL, NULL, NULL, NULL);
		if (redis) {
			redisReply *r = wt_redis_cmd(redis, "PUBSUB NUMSUB wsgw:t:%s", topic);
			numsub = r && r->type == REDIS_REPLY_ARRAY && r->elements == 2 ? r->element[1]->integer : -1;
			if (r)
				freeReplyObject(r);
		}
		if (count == want && (!redis || numsub == nsub))
			return;
	}
	ck_abort_msg("topic %s: %ld subscribers (want %ld), %lld gateways subscribed (want %d)", topic,
		     count, want, numsub, nsub);
}

/* ---- every publish from every side reaches every subscriber once, in order -------- */

#define T1_CLIENTS 1000
#define T1_MSGS 20

START_TEST(test_fanout)
{
	static struct wt_conn c[T1_CLIENTS];
	static uint64_t ids[T1_CLIENTS];
	static int seq0[MAX_GW * T1_MSGS], seq[MAX_GW * T1_MSGS];
	static struct gw g[MAX_GW];
	struct wt_redis redis;
	int ngw = _i == 0 ? 2 : 3;
	char msg[64];

	raise_nofile();
	ck_assert_int_eq(wt_redis_start(&redis), 0);
	/* The third gateway has its [cluster] in a config file. */
	for (int i = 0; i < ngw; i++)
		gw_start_how(&g[i], i, &redis, NULL, i == 2);
	/* Clients spread over the gateways, in blocks: gateway i has [i*share, (i+1)*share). */
	int share = T1_CLIENTS / ngw;
	for (int i = 0; i < ngw; i++) {
		int n = i == ngw - 1 ? T1_CLIENTS - i * share : share;
		open_clients(&g[i], c, ids, i * share, n);
		for (int k = i * share; k < i * share + n; k++)
			rw_verb_id(&g[i].w, "SUBSCRIBE", ids[k], "room", NULL);
		ck_assert_uint_eq(ids[i * share] >> 52, (uint64_t)i + 1); /* the node is in the id */
	}
	wait_subscribed(&g[0], &redis, "room", T1_CLIENTS, ngw);
	/* Every gateway's worker publishes, interleaved; the first publish leaves out a client
	 * of the last gateway. */
	uint64_t left_out = ids[T1_CLIENTS - 1];
	for (int k = 0; k < T1_MSGS; k++)
		for (int i = 0; i < ngw; i++) {
			snprintf(msg, sizeof(msg), "%d", i * 1000 + k);
			rw_publish(&g[i].w, "room", "text", msg, k == 0 && i == 0 ? left_out : 0);
		}
	int total = ngw * T1_MSGS;
	for (int x = 0; x < T1_CLIENTS; x++) {
		int next[MAX_GW] = { 0 };
		int want = x == T1_CLIENTS - 1 ? total - 1 : total;
		if (x == T1_CLIENTS - 1)
			next[0] = 1;
		for (int j = 0; j < want; j++) {
			int rc = read_text(&c[x], msg, sizeof(msg), 10000);
			ck_assert_msg(rc == 0, "client %d (gateway %d): message %d of %d: %s", x,
				      x / share < ngw ? x / share : ngw - 1, j, want, strerror(-rc));
			int v = atoi(msg), from = v / 1000, k = v % 1000;
			ck_assert_msg(from < ngw && k == next[from],
				      "client %d: %d from gateway %d where %d was due (a gap, a duplicate or out of order)",
				      x, k, from, next[from]);
			next[from]++;
			seq[j] = v;
		}
		/* One order for the topic, whichever gateway a subscriber is on. */
		if (x == 0)
			memcpy(seq0, seq, sizeof(seq));
		else
			for (int j = 0, j0 = 0; j < want; j++, j0++) {
				if (x == T1_CLIENTS - 1 && seq0[j0] == 0)
					j0++;
				ck_assert_msg(seq[j] == seq0[j0], "client %d saw %d where client 0 saw %d (message %d)",
					      x, seq[j], seq0[j0], j);
			}
	}
	struct wt_frame f;
	ck_assert_int_eq(wt_read_message(&c[0], &f, 300), -ETIMEDOUT);
	long long sent = metric(&g[0], "wsgw_cluster_sent_total");
	long long reached = metric(&g[0], "wsgw_cluster_receivers_total");
	printf("cluster fan-out, %d gateways%s: %d subscribers got %d messages each, once, in one order; "
	       "gateway 1: %lld publishes reached %lld gateways\n", ngw,
	       ngw > 2 ? " (the third from a config file)" : "", T1_CLIENTS, total, sent, reached);
	ck_assert_int_eq(sent, T1_MSGS);
	ck_assert_int_eq(reached, (long long)T1_MSGS * ngw); /* one message per subscribed gateway */
	/* PUBLISH commands of each gateway's own workers, not what Redis brought from all. */
	for (int i = 0; i < ngw; i++)
		ck_assert_int_eq(metric(&g[i], "wsgw_published_total"), T1_MSGS);
	wt_close_all();
	for (int i = 0; i < ngw; i++)
		gw_done(&g[i]);
	wt_redis_stop(&redis);
}
END_TEST

/* ---- SEND, CLOSE, SENDMANY to a connection of another gateway; GONE ---------------- */

static void rw_send_to(struct rw *r, uint64_t id, const char *text)
{
	rw_verb_id(r, "SEND", id, "text", text);
}

static void expect_gone(struct rw *r, uint64_t id)
{
	struct wt_ctl_msg m;

	ck_assert_int_eq(rw_expect(r, "GONE", &m, 10000), 0);
	ck_assert_uint_eq(frame_id(&m, 1), id);
	wt_ctl_msg_free(&m);
}

START_TEST(test_addressing)
{
	static struct gw g[2];
	static struct wt_conn c[3];
	uint64_t ids[3];
	struct wt_redis redis;
	struct wt_ctl_msg m;
	char msg[64];

	ck_assert_int_eq(wt_redis_start(&redis), 0);
	gw_start(&g[0], 0, &redis, NULL);
	gw_start(&g[1], 1, &redis, NULL);
	open_clients(&g[0], c, ids, 0, 1);
	open_clients(&g[1], c, ids, 1, 2);
	/* A worker of gateway 1 addresses clients of gateway 2, and the other way round. */
	rw_send_to(&g[0].w, ids[1], "from gateway 1");
	ck_assert_int_eq(read_text(&c[1], msg, sizeof(msg), 10000), 0);
	ck_assert_str_eq(msg, "from gateway 1");
	rw_send_to(&g[1].w, ids[0], "from gateway 2");
	ck_assert_int_eq(read_text(&c[0], msg, sizeof(msg), 10000), 0);
	ck_assert_str_eq(msg, "from gateway 2");
	/* SENDMANY: its own client and two of the other gateway, one message each. */
	uint8_t list[24];
	for (int i = 0; i < 3; i++) {
		uint64_t be = htobe64(ids[i]);
		memcpy(list + 8 * i, &be, 8);
	}
	const char *sm[] = { "SENDMANY", "text", "to all", (const char *)list };
	size_t sml[] = { 8, 4, 6, 24 };
	rw_send(&g[0].w, 4, sm, sml);
	for (int i = 0; i < 3; i++) {
		ck_assert_int_eq(read_text(&c[i], msg, sizeof(msg), 10000), 0);
		ck_assert_str_eq(msg, "to all");
	}
	/* CLOSE from gateway 1's worker: the client of gateway 2 gets the code. */
	uint64_t be = htobe64(ids[1]);
	const char *cl[] = { "CLOSE", (const char *)&be, "4001", "moved" };
	size_t cll[] = { 5, 8, 4, 5 };
	rw_send(&g[0].w, 4, cl, cll);
	WT_EXPECT_CLOSE(&c[1], 4001);
	WT_OK(&c[1], wt_send_close(&c[1], 4001, NULL, 0));
	ck_assert_int_eq(rw_expect(&g[1].w, "CLOSE", &m, 10000), 0);
	ck_assert_uint_eq(frame_id(&m, 1), ids[1]);
	wt_ctl_msg_free(&m);
	wt_close(&c[1]);
	/* It exists nowhere now: the gateway that had it answers GONE. */
	rw_send_to(&g[0].w, ids[1], "too late");
	expect_gone(&g[0].w, ids[1]);
	/* A node no gateway serves: GONE at once. */
	uint64_t nowhere = 7ull << 52 | 12345;
	rw_send_to(&g[0].w, nowhere, "nobody");
	expect_gone(&g[0].w, nowhere);
	/* SENDMANY with the closed one among live ones: GONE for it, the rest delivered. */
	rw_send(&g[0].w, 4, sm, sml);
	ck_assert_int_eq(read_text(&c[0], msg, sizeof(msg), 10000), 0);
	ck_assert_int_eq(read_text(&c[2], msg, sizeof(msg), 10000), 0);
	ck_assert_str_eq(msg, "to all");
	expect_gone(&g[0].w, ids[1]);
	ck_assert_int_eq(metric(&g[1], "wsgw_cluster_commands_total"), 5);
	/* Text that is not UTF-8 is refused to the worker as on its own gateway, never sent on
	 * to the other one; a CLOSE with such a reason goes without it. */
	static const char bad[] = "bad \xc3\x28 text";
	be = htobe64(ids[2]);
	const char *send_bad[] = { "SEND", (const char *)&be, "text", bad };
	size_t send_badl[] = { 4, 8, 4, sizeof(bad) - 1 };
	rw_send(&g[0].w, 4, send_bad, send_badl);
	ck_assert_int_eq(rw_expect(&g[0].w, "ERROR", &m, 10000), 0);
	ck_assert_msg(m.n > 1 && strstr(m.f[1], "not valid UTF-8"), "ERROR %s", m.n > 1 ? m.f[1] : "");
	wt_ctl_msg_free(&m);
	rw_send_to(&g[0].w, ids[2], "good text");
	ck_assert_int_eq(read_text(&c[2], msg, sizeof(msg), 10000), 0);
	ck_assert_str_eq(msg, "good text");
	const char *cl_bad[] = { "CLOSE", (const char *)&be, "4002", bad };
	size_t cl_badl[] = { 5, 8, 4, sizeof(bad) - 1 };
	rw_send(&g[0].w, 4, cl_bad, cl_badl);
	ck_assert_int_eq(rw_expect(&g[0].w, "ERROR", &m, 10000), 0);
	ck_assert_msg(m.n > 1 && strstr(m.f[1], "not valid UTF-8"), "ERROR %s", m.n > 1 ? m.f[1] : "");
	wt_ctl_msg_free(&m);
	struct wt_frame f;
	WT_OK(&c[2], wt_read_message(&c[2], &f, 10000));
	ck_assert_int_eq(f.opcode, WT_CLOSE);
	ck_assert_int_eq(wt_close_code(&f), 4002);
	ck_assert_uint_eq(f.len, 2);
	wt_frame_free(&f);
	printf("addressing: SEND, SENDMANY and CLOSE reached another gateway's clients; GONE for a "
	       "closed one and for a node nobody serves; bad UTF-8 refused at the source\n");
	wt_close_all();
	gw_done(&g[0]);
	gw_done(&g[1]);
	wt_redis_stop(&redis);
}
END_TEST

/* ---- presence across gateways; a gateway SIGKILLed --------------------------------- */

#define T3_A 30
#define T3_B 20

static int has_id(const uint64_t *v, size_t n, uint64_t id)
{
	for (size_t i = 0; i < n; i++)
		if (v[i] == id)
			return 1;
	return 0;
}

START_TEST(test_presence)
{
	static struct gw g[2];
	static struct wt_conn c[T3_A + T3_B];
	static uint64_t ids[T3_A + T3_B], got[2048];
	struct wt_redis redis;
	size_t n = 0;
	char msg[64];

	ck_assert_int_eq(wt_redis_start(&redis), 0);
	gw_start(&g[0], 0, &redis, NULL);
	gw_start(&g[1], 1, &redis, NULL);
	open_clients(&g[0], c, ids, 0, T3_A);
	open_clients(&g[1], c, ids, T3_A, T3_B);
	for (int i = 0; i < T3_A + T3_B; i++)
		rw_verb_id(&g[i < T3_A ? 0 : 1].w, "SUBSCRIBE", ids[i], "pres", NULL);
	/* Either gateway counts and lists them all (Redis has each one's share). */
	for (int side = 0; side < 2; side++) {
		long count = -1;
		for (int64_t end = wt_now_ms() + 10000; wt_now_ms() < end && count != T3_A + T3_B; wt_sleep_ms(50))
			count = rw_query(&g[side].w, "pres", got, &n, NULL, NULL);
		ck_assert_int_eq(count, T3_A + T3_B);
		ck_assert_uint_eq(n, T3_A + T3_B);
		for (int i = 0; i < T3_A + T3_B; i++)
			ck_assert_msg(has_id(got, n, ids[i]), "gateway %d does not list client %d", side + 1, i);
	}
	/* Gateway 2 dies without a word: its share goes within --cluster-ttl. */
	ck_assert_int_eq(kill(g[1].e.gw.pid, SIGKILL), 0);
	ck_assert_int_eq(wt_gw_wait(&g[1].e.gw, 5000), 0);
	int64_t t0 = wt_now_ms();
	long count = -1;
	while (wt_now_ms() - t0 < TTL_S * 1000 + 10000) {
		count = rw_query(&g[0].w, "pres", got, &n, NULL, NULL);
		if (count == T3_A)
			break;
		wt_sleep_ms(50);
	}
	int64_t gone_ms = wt_now_ms() - t0;
	ck_assert_int_eq(count, T3_A);
	ck_assert_uint_eq(n, T3_A);
	for (int i = 0; i < T3_A; i++)
		ck_assert(has_id(got, n, ids[i]));
	/* Stated: within --cluster-ttl of its last refresh; the margin is for a loaded machine. */
	ck_assert_msg(gone_ms <= TTL_S * 1000 + 3000, "the dead gateway's share stayed %lld ms",
		      (long long)gone_ms);
	/* Gateway 1 goes on. */
	rw_publish(&g[0].w, "pres", "text", "still here", 0);
	for (int i = 0; i < T3_A; i++) {
		ck_assert_int_eq(read_text(&c[i], msg, sizeof(msg), 10000), 0);
		ck_assert_str_eq(msg, "still here");
	}
	printf("presence: %d subscribers on two gateways counted and listed by both; a SIGKILLed "
	       "gateway's share was gone after %lld ms (--cluster-ttl %d s)\n",
	       T3_A + T3_B, (long long)gone_ms, TTL_S);
	for (int i = T3_A; i < T3_A + T3_B; i++)
		wt_close(&c[i]);
	wt_close_all();
	rw_done(&g[1].w);
	wt_env_done(&g[1].e);
	gw_done(&g[0]);
	wt_redis_stop(&redis);
}
END_TEST

/* ---- recovery: a client reconnects elsewhere with its last offset ------------------ */

/* "OFFSET,EPOCH payload" */
static void parse_stamp(const char *s, uint64_t *offset, uint64_t *epoch, const char **payload)
{
	char *end;

	*offset = strtoull(s, &end, 10);
	ck_assert_msg(*end == ',', "not stamped: %s", s);
	*epoch = strtoull(end + 1, &end, 10);
	ck_assert_msg(*end == ' ', "not stamped: %s", s);
	*payload = end + 1;
}

/* The RECOVERY for conn: the status word; replayed and the position if wanted. */
static void expect_recovery(struct rw *r, uint64_t conn, const char *status, long *replayed)
{
	struct wt_ctl_msg m;

	ck_assert_int_eq(rw_expect(r, "RECOVERY", &m, 10000), 0);
	ck_assert_int_eq(m.n, 7);
	ck_assert_uint_eq(frame_id(&m, 1), conn);
	ck_assert_msg(!strcmp(m.f[3], status), "RECOVERY %s, want %s", m.f[3], status);
	if (replayed)
		*replayed = atol(m.f[6]);
	wt_ctl_msg_free(&m);
}

static void since_frame(char *out, size_t cap, uint64_t offset, uint64_t epoch)
{
	snprintf(out, cap, "since=%llu,%llu", (unsigned long long)offset, (unsigned long long)epoch);
}

START_TEST(test_recovery)
{
	static struct gw g[2];
	static struct wt_conn c[4];
	uint64_t ids[4], offset = 0, epoch = 0, o, e;
	struct wt_redis redis;
	int cluster = _i == 1;
	const char *hist[] = { "--history", "news/=1000", "--history", "small/=5", NULL };
	char msg[128], since[64];
	const char *payload;

	if (cluster)
		ck_assert_int_eq(wt_redis_start(&redis), 0);
	gw_start(&g[0], 0, cluster ? &redis : NULL, hist);
	if (cluster)
		gw_start(&g[1], 1, &redis, hist);
	/* The other gateway of the cluster, or the same one alone. */
	struct gw *b = cluster ? &g[1] : &g[0];
	open_clients(&g[0], c, ids, 0, 1);
	rw_verb_id(&g[0].w, "SUBSCRIBE", ids[0], "news/1", NULL);
	wait_subscribed(b, cluster ? &redis : NULL, "news/1", 1, 1);
	for (int k = 0; k < 10; k++) {
		snprintf(msg, sizeof(msg), "m%d", k);
		rw_publish(&b->w, "news/1", "text,stamp", msg, 0);
	}
	for (int k = 0; k < 10; k++) {
		ck_assert_int_eq(read_text(&c[0], msg, sizeof(msg), 10000), 0);
		parse_stamp(msg, &o, &e, &payload);
		ck_assert_uint_eq(o, (uint64_t)k + 1);
		ck_assert_uint_gt(e, 0);
		epoch = e;
		offset = o;
		char want[16];
		snprintf(want, sizeof(want), "m%d", k);
		ck_assert_str_eq(payload, want);
	}
	/* The client goes; 100 are published meanwhile. */
	wt_close(&c[0]);
	struct wt_ctl_msg m;
	ck_assert_int_eq(rw_expect(&g[0].w, "CLOSE", &m, 10000), 0);
	wt_ctl_msg_free(&m);
	for (int k = 10; k < 110; k++) {
		snprintf(msg, sizeof(msg), "m%d", k);
		rw_publish(&g[0].w, "news/1", "text,stamp", msg, 0);
	}
	/* It comes back on the other gateway with its last offset; live messages keep coming
	 * from the first gateway while its missed ones are fetched. */
	for (int64_t end = wt_now_ms() + 10000; wt_now_ms() < end; wt_sleep_ms(20))
		if (rw_query(&b->w, "news/1", NULL, NULL, &o, &e) >= 0 && o == 110)
			break;
	ck_assert_uint_eq(o, 110);
	ck_assert_uint_eq(e, epoch);
	open_clients(b, c, ids, 1, 1);
	since_frame(since, sizeof(since), offset, epoch);
	rw_verb_id(&b->w, "SUBSCRIBE", ids[1], "news/1", since);
	for (int k = 110; k < 160; k++) {
		snprintf(msg, sizeof(msg), "m%d", k);
		rw_publish(&g[0].w, "news/1", "text,stamp", msg, 0);
	}
	long replayed = 0;
	expect_recovery(&b->w, ids[1], "recovered", &replayed);
	ck_assert_int_ge(replayed, 100);
	for (int k = 10; k < 160; k++) {
		int rc = read_text(&c[1], msg, sizeof(msg), 10000);
		ck_assert_msg(rc == 0, "message m%d: %s", k, strerror(-rc));
		parse_stamp(msg, &o, &e, &payload);
		char want[16];
		snprintf(want, sizeof(want), "m%d", k);
		ck_assert_msg(!strcmp(payload, want) && o == (uint64_t)k + 1,
			      "got %s where %s at offset %d was due", msg, want, k + 1);
	}
	struct wt_frame f;
	ck_assert_int_eq(wt_read_message(&c[1], &f, 300), -ETIMEDOUT);
	/* Then live, as any subscriber. */
	rw_publish(&g[0].w, "news/1", "text,stamp", "live", 0);
	ck_assert_int_eq(read_text(&c[1], msg, sizeof(msg), 10000), 0);
	parse_stamp(msg, &o, &e, &payload);
	ck_assert_str_eq(payload, "live");
	ck_assert_uint_eq(o, 161);

	/* A history of 5 cannot give 19 messages: the worker is told to resync. */
	for (int k = 0; k < 20; k++)
		rw_publish(&g[0].w, "small/x", "text", "s", 0);
	for (int64_t end = wt_now_ms() + 10000; wt_now_ms() < end; wt_sleep_ms(20))
		if (rw_query(&b->w, "small/x", NULL, NULL, &o, &e) >= 0 && o == 20)
			break;
	ck_assert_uint_eq(o, 20);
	open_clients(b, c, ids, 2, 2);
	since_frame(since, sizeof(since), 1, e);
	rw_verb_id(&b->w, "SUBSCRIBE", ids[2], "small/x", since);
	expect_recovery(&b->w, ids[2], "trimmed", NULL);
	since_frame(since, sizeof(since), 19, e + 1);
	rw_verb_id(&b->w, "SUBSCRIBE", ids[3], "small/x", since);
	expect_recovery(&b->w, ids[3], "epoch", NULL);
	since_frame(since, sizeof(since), 1, 1);
	rw_verb_id(&b->w, "SUBSCRIBE", ids[3], "no-history", since);
	expect_recovery(&b->w, ids[3], "none", NULL);
	/* Nothing missed: recovered, nothing replayed; and the subscription is live. */
	since_frame(since, sizeof(since), 20, e);
	rw_verb_id(&b->w, "UNSUBSCRIBE", ids[2], "small/x", NULL);
	rw_verb_id(&b->w, "SUBSCRIBE", ids[2], "small/x", since);
	expect_recovery(&b->w, ids[2], "recovered", &replayed);
	ck_assert_int_eq(replayed, 0);
	rw_publish(&g[0].w, "small/x", "text", "next", 0);
	for (int i = 2; i < 4; i++) {
		ck_assert_int_eq(read_text(&c[i], msg, sizeof(msg), 10000), 0);
		ck_assert_str_eq(msg, "next");
	}
	ck_assert_int_eq(wt_read_message(&c[2], &f, 300), -ETIMEDOUT);
	printf("recovery (%s): 100 missed messages and 50 published meanwhile arrived once, in "
	       "order, then live ones; trimmed, epoch and none told to the worker\n",
	       cluster ? "Redis, on the other gateway" : "memory, one gateway");
	wt_close_all();
	gw_done(&g[0]);
	if (cluster) {
		gw_done(&g[1]);
		wt_redis_stop(&redis);
	}
}
END_TEST

/* ---- Redis SIGKILLed and restarted under load -------------------------------------- */

#define T5_SUBS 20
#define T5_MSGS 4000

static void see(uint8_t *seen, const char *msg)
{
	int k = atoi(msg);

	ck_assert_msg(k >= 0 && k < T5_MSGS, "an unexpected message: %s", msg);
	seen[k]++;
}

START_TEST(test_redis_restart)
{
	static struct gw g[2];
	static struct wt_conn c[2 * T5_SUBS];
	static uint64_t ids[2 * T5_SUBS];
	static uint8_t seen[2 * T5_SUBS][T5_MSGS];
	struct wt_redis redis;
	char msg[64];

	/* The second time, a hold too small for the outage: the rest is dropped, and counted. */
	const char *small[] = { "--cluster-hold", "500", NULL };
	ck_assert_int_eq(wt_redis_start(&redis), 0);
	gw_start(&g[0], 0, &redis, _i ? small : NULL);
	gw_start(&g[1], 1, &redis, NULL);
	open_clients(&g[0], c, ids, 0, T5_SUBS);
	open_clients(&g[1], c, ids, T5_SUBS, T5_SUBS);
	for (int i = 0; i < 2 * T5_SUBS; i++)
		rw_verb_id(&g[i < T5_SUBS ? 0 : 1].w, "SUBSCRIBE", ids[i], "load", NULL);
	wait_subscribed(&g[0], &redis, "load", 2 * T5_SUBS, 2);
	/* A steady publisher on gateway 1; Redis dies a quarter in, is back at half. */
	int64_t killed_at = 0, back_at = 0;
	for (int k = 0; k < T5_MSGS; k++) {
		snprintf(msg, sizeof(msg), "%d", k);
		rw_publish(&g[0].w, "load", "text", msg, 0);
		if (k == T5_MSGS / 4) {
			wt_redis_kill(&redis);
			killed_at = wt_now_ms();
		} else if (k == T5_MSGS / 2) {
			ck_assert_int_eq(wt_redis_restart(&redis), 0);
			back_at = wt_now_ms();
		}
		if (k % 4 == 0)
			wt_sleep_ms(1);
		/* The clients read along, so that nothing waits in their sockets. */
		if (k % 200 == 0)
			for (int i = 0; i < 2 * T5_SUBS; i++)
				while (read_text(&c[i], msg, sizeof(msg), 0) == 0)
					see(seen[i], msg);
	}
	/* Both rejoin and send what they held. */
	for (int i = 0; i < 2; i++) {
		int64_t end = wt_now_ms() + 20000;
		while (wt_now_ms() < end && (metric(&g[i], "wsgw_cluster_up") != 1 ||
					     metric(&g[i], "wsgw_cluster_holding") != 0))
			wt_sleep_ms(50);
		ck_assert_int_eq(metric(&g[i], "wsgw_cluster_up"), 1);
		ck_assert_int_eq(metric(&g[i], "wsgw_cluster_holding"), 0);
		wt_gw_expect_alive(&g[i].e.gw);
	}
	for (int i = 0; i < 2 * T5_SUBS; i++)
		while (read_text(&c[i], msg, sizeof(msg), 1000) == 0)
			see(seen[i], msg);
	/* Gateway 1's own clients: every message, once (local delivery went on). Gateway 2's:
	 * each message at most once, and the same ones for all. */
	int missing = 0;
	for (int k = 0; k < T5_MSGS; k++) {
		for (int i = 0; i < T5_SUBS; i++)
			ck_assert_msg(seen[i][k] == 1, "client %d of gateway 1 got message %d %d times", i, k,
				      seen[i][k]);
		for (int i = T5_SUBS; i < 2 * T5_SUBS; i++) {
			ck_assert_msg(seen[i][k] <= 1, "client %d of gateway 2 got message %d twice", i, k);
			ck_assert_msg(seen[i][k] == seen[T5_SUBS][k], "gateway 2's clients differ on message %d", k);
		}
		missing += !seen[T5_SUBS][k];
	}
	long long held = metric(&g[0], "wsgw_cluster_held_total");
	long long dropped = metric(&g[0], "wsgw_cluster_dropped_total");
	long long unconfirmed = metric(&g[0], "wsgw_cluster_unconfirmed_total");
	printf("Redis killed after %d publishes and back after %lld ms (--cluster-hold %s): gateway 1's "
	       "clients got all %d; gateway 2's missed %d; gateway 1 counted %lld held, %lld dropped, "
	       "%lld unconfirmed\n", T5_MSGS / 4, (long long)(back_at - killed_at), _i ? "500" : "10000",
	       T5_MSGS, missing, held, dropped, unconfirmed);
	ck_assert_int_ge(metric(&g[0], "wsgw_cluster_outages_total"), 1);
	ck_assert_int_ge(metric(&g[1], "wsgw_cluster_outages_total"), 1);
	ck_assert_int_gt(held, 0);
	if (_i)
		ck_assert_int_gt(dropped, 0);
	else
		ck_assert_int_eq(dropped, 0);
	/* What the other side missed is what the publisher's gateway counted: every dropped one
	 * missed, and nothing else missed but what was in flight when Redis died. */
	if (missing < dropped || missing > dropped + unconfirmed)
		for (int i = 0; i < 2; i++)
			wt_gw_dump_log(&g[i].e.gw, 40);
	ck_assert_int_ge(missing, dropped);
	ck_assert_int_le(missing, dropped + unconfirmed);
	/* And the gateways go on together. */
	rw_publish(&g[1].w, "load", "text", "after", 0);
	for (int i = 0; i < 2 * T5_SUBS; i++) {
		ck_assert_int_eq(read_text(&c[i], msg, sizeof(msg), 10000), 0);
		ck_assert_str_eq(msg, "after");
	}
	wt_close_all();
	gw_done(&g[0]);
	gw_done(&g[1]);
	wt_redis_stop(&redis);
}
END_TEST

/* ---- without --cluster nothing needs Redis ---------------------------------------- */

START_TEST(test_alone)
{
	static struct gw g;
	static struct wt_conn c[2];
	uint64_t ids[2];
	char msg[64];

	gw_start(&g, 0, NULL, NULL);
	ck_assert(!wt_gw_log_contains(&g.e.gw, "cluster"));
	open_clients(&g, c, ids, 0, 2);
	ck_assert_uint_eq(ids[0] >> 52, 0); /* ids as ever: no node */
	rw_verb_id(&g.w, "SUBSCRIBE", ids[0], "t", NULL);
	rw_verb_id(&g.w, "SUBSCRIBE", ids[1], "t", NULL);
	wait_subscribed(&g, NULL, "t", 2, 0);
	rw_publish(&g.w, "t", "text,stamp", "x", 0);
	for (int i = 0; i < 2; i++) {
		ck_assert_int_eq(read_text(&c[i], msg, sizeof(msg), 10000), 0);
		ck_assert_str_eq(msg, "0,0 x"); /* no history: no place */
	}
	ck_assert_int_eq(metric(&g, "wsgw_cluster_up"), 0);
	ck_assert_int_eq(metric(&g, "wsgw_published_total"), 1); /* counted once */
	wt_close_all();
	gw_done(&g);
}
END_TEST

static Suite *cluster_suite(void)
{
	const struct wt_case cases[] = {
		{ "alone", test_alone, 30, 1 },
		{ "fanout", test_fanout, 240, 2 },
		{ "addressing", test_addressing, 60, 1 },
		{ "presence", test_presence, 60, 1 },
		{ "recovery", test_recovery, 60, 2 },
		{ "redis_restart", test_redis_restart, 120, 2 },
	};
	return WT_SUITE("cluster", cases);
}

int main(void)
{
	return wt_run_suite(cluster_suite());
}
