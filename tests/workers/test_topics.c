/*
 * Topics and fan-out through a real gateway (docs/PROTOCOL.md, "topics"): the workers are
 * raw control-channel peers (tests/lib/wtctl.h), so every frame and record is the test's
 * own, on both transports; the clients are real WebSocket connections.
 */
#include <check.h>
#include <endian.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "tests/lib/wtctl.h"
#include "tests/lib/wtenv.h"
#include "wsgw/protocol.h"

/* ---- a raw zmq worker ---------------------------------------------------- */

struct rw {
	struct wt_ctl ctl;
	uint64_t *conns;  /* ids of the OPENs it got, in order */
	size_t n, cap;
};

static void rw_attach(struct rw *r, const char *control, const char *pool)
{
	struct wt_ctl_msg m;

	memset(r, 0, sizeof(*r));
	ck_assert_int_eq(wt_ctl_connect(&r->ctl, control), 0);
	ck_assert_int_eq(wt_ctl_hello(&r->ctl, pool, "zmq", &m, 5000), 0);
	wt_ctl_msg_free(&m);
}

static uint64_t frame_id(const struct wt_ctl_msg *m, int i)
{
	uint64_t be = 0;

	if (m->n > i && m->len[i] == 8)
		memcpy(&be, m->f[i], 8);
	return be64toh(be);
}

/* Takes every OPEN waiting (until none arrives for ms). */
static void rw_take_opens(struct rw *r, int ms)
{
	struct wt_ctl_msg m;

	while (wt_ctl_recv(&r->ctl, &m, ms) == 0) {
		if (wt_ctl_frame_is(&m, 0, "OPEN")) {
			if (r->n == r->cap) {
				r->cap = r->cap ? 2 * r->cap : 64;
				r->conns = realloc(r->conns, r->cap * sizeof(*r->conns));
			}
			r->conns[r->n++] = frame_id(&m, 1);
		}
		wt_ctl_msg_free(&m);
	}
}

static void rw_verb_id_str(struct rw *r, const char *verb, uint64_t id, const char *s)
{
	uint64_t be = htobe64(id);
	const char *f[] = { verb, (const char *)&be, s };
	size_t l[] = { strlen(verb), 8, strlen(s) };

	ck_assert_int_eq(wt_ctl_send(&r->ctl, 3, f, l), 0);
}

static void rw_publish(struct rw *r, const char *topic, const char *payload, uint64_t exclude)
{
	uint64_t be = htobe64(exclude);
	const char *f[] = { "PUBLISH", topic, "text", payload, (const char *)&be };
	size_t l[] = { 7, strlen(topic), 4, strlen(payload), 8 };

	ck_assert_int_eq(wt_ctl_send(&r->ctl, exclude ? 5 : 4, f, l), 0);
}

static void rw_done(struct rw *r)
{
	const char *bye[] = { "BYE" };

	wt_ctl_send(&r->ctl, 1, bye, NULL);
	wt_ctl_close(&r->ctl);
	free(r->conns);
}

/* Which client an OPEN was for: the test sends each client's index as its path. */
static int client_of(struct wt_conn *c, int n, uint64_t id, const uint64_t *ids)
{
	for (int i = 0; i < n; i++)
		if (ids[i] == id)
			return i;
	(void)c;
	return -1;
}

/* ---- 1,000 subscribers over two workers ---------------------------------- */

#define T1_CLIENTS 1000
#define T1_MSGS 20

static void raise_nofile(void)
{
	struct rlimit rl;

	getrlimit(RLIMIT_NOFILE, &rl);
	rl.rlim_cur = rl.rlim_max;
	setrlimit(RLIMIT_NOFILE, &rl);
}

START_TEST(test_fanout_exactly_once_in_order)
{
	static struct wt_conn c[T1_CLIENTS];
	static uint64_t ids[T1_CLIENTS];
	struct wt_env e;
	struct rw a, b;
	char msg[64];

	raise_nofile();
	wt_env_init(&e);
	WT_ENV_GW_START(&e, "--route", "/=p", "--heartbeat", "10", NULL);
	rw_attach(&a, e.control, "p");
	rw_attach(&b, e.control, "p");
	for (int i = 0; i < T1_CLIENTS; i++)
		WT_EXPECT_OPEN(&c[i], "127.0.0.1", e.gw.port, "/");
	rw_take_opens(&a, 300);
	rw_take_opens(&b, 300);
	ck_assert_int_eq((int)(a.n + b.n), T1_CLIENTS);
	ck_assert_msg(a.n > 100 && b.n > 100, "pinned %zu / %zu", a.n, b.n);
	/* Each worker subscribes its own connections. */
	for (size_t i = 0; i < a.n; i++)
		rw_verb_id_str(&a, "SUBSCRIBE", a.conns[i], "room");
	for (size_t i = 0; i < b.n; i++)
		rw_verb_id_str(&b, "SUBSCRIBE", b.conns[i], "room");
	/* Which client has which id: each says hello and a worker's MESSAGE names it. */
	for (int i = 0; i < T1_CLIENTS; i++) {
		int n = snprintf(msg, sizeof(msg), "%d", i);
		WT_OK(&c[i], wt_send_frame(&c[i], WT_TEXT, 1, msg, (size_t)n));
	}
	int named = 0;
	for (struct rw *w = &a; w; w = w == &a ? &b : NULL) {
		struct wt_ctl_msg m;
		while (wt_ctl_recv(&w->ctl, &m, 500) == 0) {
			if (wt_ctl_frame_is(&m, 0, "MESSAGE") && m.n == 4) {
				ids[atoi(m.f[3])] = frame_id(&m, 1);
				named++;
			}
			wt_ctl_msg_free(&m);
		}
	}
	ck_assert_int_eq(named, T1_CLIENTS);
	/* Worker a publishes; the first message leaves client 0 out. */
	for (int k = 0; k < T1_MSGS; k++) {
		snprintf(msg, sizeof(msg), "m%d", k);
		rw_publish(&a, "room", msg, k == 0 ? ids[0] : 0);
	}
	for (int i = 0; i < T1_CLIENTS; i++)
		for (int k = i == 0 ? 1 : 0; k < T1_MSGS; k++) {
			snprintf(msg, sizeof(msg), "m%d", k);
			WT_EXPECT_MESSAGE(&c[i], WT_TEXT, msg, strlen(msg));
		}
	/* UNSUBSCRIBE and a close stop delivery at once; everyone else still gets it. */
	struct rw *owner5 = client_of(c, (int)a.n, ids[5], a.conns) >= 0 ? &a : &b;
	rw_verb_id_str(owner5, "UNSUBSCRIBE", ids[5], "room");
	wt_close(&c[6]);
	wt_sleep_ms(200);
	rw_publish(&b, "room", "after", 0);
	for (int i = 0; i < T1_CLIENTS; i++) {
		if (i == 5 || i == 6)
			continue;
		WT_EXPECT_MESSAGE(&c[i], WT_TEXT, "after", 5);
	}
	struct wt_frame f;
	ck_assert_int_eq(wt_read_message(&c[5], &f, 300), -ETIMEDOUT);
	printf("fan-out: %d subscribers over two workers got %d messages each, in order\n",
	       T1_CLIENTS, T1_MSGS);
	wt_close_all();
	rw_done(&a);
	rw_done(&b);
	wt_env_done(&e);
}
END_TEST

/* ---- the shm transport's records; QUERY, STAT, SENDMANY ----------------------- */

static void shm_push(struct wt_shm_peer *h, uint16_t type, uint16_t flags, uint64_t conn,
		     const void *p, size_t n)
{
	ck_assert_int_eq(shm_ring_push(&h->to_gw, type, flags, conn, p, (uint32_t)n), 0);
	shm_ring_notify(&h->to_gw);
	wt_shm_peer_ring(h);
}

/* The next record of type from the gateway (others are skipped), copied into out. */
static int shm_next(struct wt_shm_peer *h, uint16_t type, struct shm_rec *rec, uint8_t *out,
		    size_t cap, int ms)
{
	int64_t end = wt_now_ms() + ms;

	while (wt_now_ms() < end) {
		struct shm_ring_iter it;
		if (shm_ring_peek(&h->to_w, &it) > 0) {
			int found = 0;
			while (!found && shm_ring_next(&it, rec) == 1)
				if (rec->type == type) {
					memcpy(out, rec->payload, rec->len < cap ? rec->len : cap);
					found = 1;
				}
			shm_ring_release(&h->to_w, &it);
			if (found)
				return 0;
		}
		wt_sleep_ms(5);
	}
	return -ETIMEDOUT;
}

static void put_le(uint8_t *p, uint64_t v, int bytes)
{
	for (int i = 0; i < bytes; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get_le(const uint8_t *p, int bytes)
{
	uint64_t v = 0;

	for (int i = 0; i < bytes; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

#define T2_CLIENTS 10

START_TEST(test_shm_records)
{
	static struct wt_conn c[T2_CLIENTS];
	uint64_t ids[T2_CLIENTS];
	struct wt_env e;
	struct wt_shm_peer h;
	struct shm_rec rec;
	static uint8_t buf[1 << 16];

	wt_env_init(&e);
	WT_ENV_GW_START(&e, "--route", "/=p", "--heartbeat", "10", NULL);
	ck_assert_int_eq(wt_shm_peer_attach(&h, e.control, "p"), 0);
	for (int i = 0; i < T2_CLIENTS; i++) {
		WT_EXPECT_OPEN(&c[i], "127.0.0.1", e.gw.port, "/");
		ck_assert_int_eq(shm_next(&h, WSGW_OPEN, &rec, buf, sizeof(buf), 3000), 0);
		ids[i] = rec.conn;
		shm_push(&h, WSGW_SUBSCRIBE, 0, ids[i], "ticker", 6);
	}
	/* PUBLISH from the ring, binary, leaving client 3 out. */
	uint8_t pub[64] = { 6, 't', 'i', 'c', 'k', 'e', 'r' };
	memcpy(pub + 7, "\x01\x02\x03", 3);
	shm_push(&h, WSGW_PUBLISH, WSGW_F_BINARY, ids[3], pub, 10);
	for (int i = 0; i < T2_CLIENTS; i++)
		if (i != 3)
			WT_EXPECT_MESSAGE(&c[i], WT_BINARY, "\x01\x02\x03", 3);
	/* QUERY: the count and the ids. */
	shm_push(&h, WSGW_QUERY, 0, 4242, "ticker", 6);
	ck_assert_int_eq(shm_next(&h, WSGW_TOPIC, &rec, buf, sizeof(buf), 3000), 0);
	ck_assert_uint_eq(rec.conn, 4242);
	ck_assert_int_eq(buf[0], 6);
	ck_assert(!memcmp(buf + 1, "ticker", 6));
	ck_assert_uint_eq(get_le(buf + 7, 4), T2_CLIENTS);
	ck_assert_uint_eq(rec.len, 1 + 6 + 4 + 8 * T2_CLIENTS);
	for (int i = 0; i < T2_CLIENTS; i++) {
		int seen = 0;
		for (int k = 0; k < T2_CLIENTS; k++)
			seen += get_le(buf + 11 + 8 * k, 8) == ids[i];
		ck_assert_int_eq(seen, 1);
	}
	shm_push(&h, WSGW_QUERY, 0, 7, "nobody", 6);
	ck_assert_int_eq(shm_next(&h, WSGW_TOPIC, &rec, buf, sizeof(buf), 3000), 0);
	ck_assert_uint_eq(get_le(buf + 7, 4), 0);
	/* SENDMANY to three of them and to one id that is not this worker's: GONE for it. */
	uint8_t many[4 + 4 * 8 + 5];
	put_le(many, 4, 4);
	put_le(many + 4, ids[0], 8);
	put_le(many + 12, ids[1], 8);
	put_le(many + 20, 0x7fffffffffffull, 8);
	put_le(many + 28, ids[2], 8);
	memcpy(many + 36, "hello", 5);
	shm_push(&h, WSGW_SENDMANY, 0, 0, many, sizeof(many));
	for (int i = 0; i < 3; i++)
		WT_EXPECT_MESSAGE(&c[i], WT_TEXT, "hello", 5);
	ck_assert_int_eq(shm_next(&h, WSGW_GONE, &rec, buf, sizeof(buf), 3000), 0);
	ck_assert_uint_eq(rec.conn, 0x7fffffffffffull);
	/* STAT: nothing queued for a client that reads. */
	shm_push(&h, WSGW_STATQ, 0, ids[9], NULL, 0);
	ck_assert_int_eq(shm_next(&h, WSGW_STAT, &rec, buf, sizeof(buf), 3000), 0);
	ck_assert_uint_eq(rec.conn, ids[9]);
	ck_assert_uint_eq(rec.len, 12);
	ck_assert_uint_eq(get_le(buf, 8), 0);
	/* A client that closes: once its worker has CLOSE, the topic no longer counts it,
	 * though its TCP connection may linger (here the client keeps it open). */
	WT_OK(&c[5], wt_send_close(&c[5], 1000, NULL, 0));
	WT_EXPECT_CLOSE(&c[5], 1000);
	ck_assert_int_eq(shm_next(&h, WSGW_CLOSE, &rec, buf, sizeof(buf), 3000), 0);
	ck_assert_uint_eq(rec.conn, ids[5]);
	shm_push(&h, WSGW_QUERY, 0, 8, "ticker", 6);
	ck_assert_int_eq(shm_next(&h, WSGW_TOPIC, &rec, buf, sizeof(buf), 3000), 0);
	ck_assert_uint_eq(get_le(buf + 7, 4), T2_CLIENTS - 1);
	for (int k = 0; k < T2_CLIENTS - 1; k++)
		ck_assert_uint_ne(get_le(buf + 11 + 8 * k, 8), ids[5]);
	/* Malformed: a topic too long, a PUBLISH whose topic runs past the record. */
	static uint8_t longtopic[256];
	memset(longtopic, 'x', sizeof(longtopic));
	shm_push(&h, WSGW_SUBSCRIBE, 0, ids[0], longtopic, sizeof(longtopic));
	ck_assert_int_eq(shm_next(&h, WSGW_ERROR, &rec, buf, sizeof(buf), 3000), 0);
	uint8_t badpub[3] = { 200, 'a', 'b' };
	shm_push(&h, WSGW_PUBLISH, 0, 0, badpub, sizeof(badpub));
	ck_assert_int_eq(shm_next(&h, WSGW_ERROR, &rec, buf, sizeof(buf), 3000), 0);
	wt_gw_expect_alive(&e.gw);
	wt_close_all();
	wt_shm_peer_close(&h);
	wt_env_done(&e);
}
END_TEST

/* ---- slow subscribers under each policy ------------------------------------ */

/* More than the kernel's socket buffers take for a subscriber that does not read (about
 * 4 MiB of the gateway's send buffer): the rest meets the gateway's policy. */
#define T3_SLOW 50
#define T3_FAST 20
#define T3_MSGS 600
#define T3_SIZE 16384
#define T3_CAP (256 * 1024)

static const char *const policies[] = { "close", "drop-newest", "drop-oldest", "latest" };

START_TEST(test_slow_subscribers)
{
	static struct wt_conn slow[T3_SLOW], fast[T3_FAST];
	struct wt_env e;
	struct rw r;
	char route[64], cap[16];
	static char payload[T3_SIZE + 1];

	raise_nofile();
	snprintf(route, sizeof(route), "/=p,slow=%s", policies[_i]);
	snprintf(cap, sizeof(cap), "%d", T3_CAP);
	wt_env_init(&e);
	WT_ENV_GW_START(&e, "--route", route, "--max-outbound", cap, "--max-message", "32768",
			"--heartbeat", "10", NULL);
	rw_attach(&r, e.control, "p");
	/* Slow subscribers barely read: a small receive buffer keeps their backlog here. */
	wt_set_rcvbuf(4096);
	for (int i = 0; i < T3_SLOW; i++)
		WT_EXPECT_OPEN(&slow[i], "127.0.0.1", e.gw.port, "/");
	wt_set_rcvbuf(0);
	for (int i = 0; i < T3_FAST; i++)
		WT_EXPECT_OPEN(&fast[i], "127.0.0.1", e.gw.port, "/");
	rw_take_opens(&r, 300);
	ck_assert_int_eq((int)r.n, T3_SLOW + T3_FAST);
	for (size_t i = 0; i < r.n; i++)
		rw_verb_id_str(&r, "SUBSCRIBE", r.conns[i], "feed");
	wt_sleep_ms(100);
	long base = wt_proc_rss_kib(e.gw.pid);
	int got[T3_FAST] = { 0 };
	for (int k = 0; k < T3_MSGS; k++) {
		int n = snprintf(payload, sizeof(payload), "%06d", k);
		memset(payload + n, 'p', T3_SIZE - (size_t)n);
		payload[T3_SIZE] = 0;
		rw_publish(&r, "feed", payload, 0);
		/* The readers keep up; each gets every message, in order. */
		for (int i = 0; i < T3_FAST; i++)
			while (got[i] <= k) {
				struct wt_frame m;
				WT_OK(&fast[i], wt_read_message(&fast[i], &m, -1));
				ck_assert_int_eq(m.opcode, WT_TEXT);
				ck_assert_int_eq(atoi((const char *)m.payload), got[i]);
				got[i]++;
				wt_frame_free(&m);
			}
	}
	long grown = (wt_proc_rss_kib(e.gw.pid) - base) / 1024;
	/* Each slow subscriber may hold its share, plus the shared buffers once. */
	long bound = (long)T3_SLOW * T3_CAP / (1024 * 1024) + T3_MSGS * T3_SIZE / (1024 * 1024) + 16;
	int closed = 0;
	for (int i = 0; i < T3_SLOW; i++) {
		/* Read what they were given: what arrives must be in order, with gaps allowed.
		 * Where the policy says how it ends (close: the close; drop-oldest and latest:
		 * the newest message), until that comes, however slowly a loaded machine lets
		 * the gateway write (at most 10 s); drop-newest ends when 50 ms pass quietly. */
		int last = -1, n = 0, rc;
		struct wt_frame m;
		int64_t deadline = wt_now_ms() + 10000;
		for (;;) {
			rc = wt_read_message(&slow[i], &m, 50);
			if (rc == -ETIMEDOUT && _i != 1 && (_i == 0 || last != T3_MSGS - 1) &&
			    wt_now_ms() < deadline)
				continue;
			if (rc)
				break;
			if (m.opcode == WT_CLOSE) {
				ck_assert_int_eq(wt_close_code(&m), 1008);
				rc = -EPIPE;
				wt_frame_free(&m);
				break;
			}
			int seq = atoi((const char *)m.payload);
			ck_assert_msg(seq > last, "slow subscriber %d: %d after %d", i, seq, last);
			last = seq;
			n++;
			wt_frame_free(&m);
		}
		/* Closed: the close frame, or, once the close handshake timed out, the end. */
		closed += rc != -ETIMEDOUT;
		ck_assert_msg(n < T3_MSGS, "policy %s: slow subscriber %d got every message", policies[_i], i);
		if (_i >= 2) /* drop-oldest and latest keep the newest */
			ck_assert_msg(last == T3_MSGS - 1, "policy %s: slow subscriber %d ended at %d, not the newest",
				      policies[_i], i, last);
	}
	printf("slow subscribers (%s): readers got all %d messages; %d of %d slow ones closed; RSS grew %ld MiB (bound %ld)\n",
	       policies[_i], T3_MSGS, closed, T3_SLOW, grown, bound);
	if (_i == 0)
		ck_assert_int_eq(closed, T3_SLOW);
	else
		ck_assert_int_eq(closed, 0);
	if (!wt_sanitized())
		ck_assert_msg(grown < bound, "RSS grew %ld MiB", grown);
	wt_close_all();
	rw_done(&r);
	wt_env_done(&e);
}
END_TEST

/* ---- a publisher killed in the middle of a storm --------------------------------- */

#define T4_SUBS 50
#define T4_MAX "20000" /* publishes at most: what is read back is bounded */
#define T4_KILL_AT 100

/* Reads what arrived for subscriber i: each message must be the next sequence number. */
static void t4_read(struct wt_conn *c, int i, long *next, int ms)
{
	struct wt_frame m;

	while (wt_read_message(c, &m, ms) == 0) {
		ck_assert_int_eq(m.opcode, WT_TEXT);
		char num[24];
		size_t n = m.len < sizeof(num) - 1 ? m.len : sizeof(num) - 1;
		memcpy(num, m.payload, n);
		num[n] = 0;
		ck_assert_msg(atol(num) == next[i], "subscriber %d: %s where %ld was due (a gap or a duplicate)",
			      i, num, next[i]);
		next[i]++;
		wt_frame_free(&m);
		ms = 0;
	}
}

START_TEST(test_publisher_killed)
{
	static struct wt_conn c[T4_SUBS];
	static long next[T4_SUBS];
	struct wt_env e;
	struct rw r;
	struct wt_proc pub;
	char self[512], log[256];

	wt_env_init(&e);
	WT_ENV_GW_START(&e, "--route", "/=p", "--heartbeat", "10", NULL);
	rw_attach(&r, e.control, "p");
	for (int i = 0; i < T4_SUBS; i++)
		WT_EXPECT_OPEN(&c[i], "127.0.0.1", e.gw.port, "/");
	rw_take_opens(&r, 300);
	ck_assert_int_eq((int)r.n, T4_SUBS);
	for (size_t i = 0; i < r.n; i++)
		rw_verb_id_str(&r, "SUBSCRIBE", r.conns[i], "storm");
	wt_sleep_ms(100);
	ssize_t sl = readlink("/proc/self/exe", self, sizeof(self) - 1);
	ck_assert_int_gt(sl, 0);
	self[sl] = 0;
	snprintf(log, sizeof(log), "%s/publisher.log", e.dir);
	const char *argv[] = { self, "--as-zmq-worker", "--control", e.control, "--pool", "p",
			       "--publish", "storm", "--publish-max", T4_MAX, NULL };
	ck_assert_int_eq(wt_proc_spawn(&pub, argv, log), 0);
	ck_assert_int_gt(wt_wait_attached(e.gw.log_path, "p", pub.pid, 5000), 0);
	/* Killed once the storm reaches the subscribers, not after a time: what the gateway
	 * took by then, at most T4_MAX publishes, is what they must all get (on a fast machine
	 * it may have published all of them by then: the check holds either way). */
	for (int64_t end = wt_now_ms() + 10000; next[0] < T4_KILL_AT && wt_now_ms() < end;)
		for (int i = 0; i < T4_SUBS; i++)
			t4_read(&c[i], i, next, 0);
	ck_assert_int_ge(next[0], T4_KILL_AT);
	ck_assert_int_eq(wt_proc_kill(&pub, SIGKILL), 0);
	ck_assert_int_eq(wt_proc_reap(&pub, 5000), 0);
	/* Then everything the gateway still has for them, until none of them gets more for
	 * half a second. */
	for (int64_t quiet = wt_now_ms() + 500; wt_now_ms() < quiet;) {
		long before = 0, after = 0;
		for (int i = 0; i < T4_SUBS; i++) {
			before += next[i];
			t4_read(&c[i], i, next, 0);
			after += next[i];
		}
		if (after != before)
			quiet = wt_now_ms() + 500;
		else
			wt_sleep_ms(10);
	}
	/* Every publish the gateway took reached every subscriber: they all end alike. */
	for (int i = 1; i < T4_SUBS; i++)
		ck_assert_msg(next[i] == next[0], "subscriber %d got %ld messages, subscriber 0 %ld", i,
			      next[i], next[0]);
	printf("publisher killed mid-storm: each of %d subscribers got messages 0..%ld, no gap, no duplicate\n",
	       T4_SUBS, next[0] - 1);
	ck_assert_int_gt(next[0], 100);
	wt_gw_expect_alive(&e.gw);
	wt_close_all();
	rw_done(&r);
	wt_env_done(&e);
}
END_TEST

static Suite *topics_suite(void)
{
	const struct wt_case cases[] = {
		{ "fanout", test_fanout_exactly_once_in_order, 60, 1 },
		{ "shm_records", test_shm_records, 20, 1 },
		{ "slow_subscribers", test_slow_subscribers, 60, 4 },
		{ "publisher_killed", test_publisher_killed, 30, 1 },
	};
	return WT_SUITE("topics", cases);
}

int main(int argc, char **argv)
{
	if (argc > 1 && !strcmp(argv[1], "--as-zmq-worker"))
		return wt_zw_main(argc, argv);
	return wt_run_suite(topics_suite());
}
