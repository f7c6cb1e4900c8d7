/*
 * The topic reference workers through a real gateway: build/wsgw-broadcast (its publish,
 * --sendmany and --sends modes) and build/wsgw-chat (rooms, counts, notices, bad input, a
 * chat worker killed and replaced under its clients). Real processes, real sockets.
 */
#include <check.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tests/lib/wstest.h"
#include "tests/lib/wtenv.h"
#include "tests/lib/wtproc.h"
#include "workers/chat/chatmsg.h"
#include "wsgw/worker.h"

static void start_worker(struct wt_env *e, struct wt_proc *p, const char *prog,
			 const char *pool, const char *mode, const char *name)
{
	const char *build = getenv("WSGW_BUILD");
	char path[512], log[256];
	snprintf(path, sizeof(path), "%s/%s", build && *build ? build : "build", prog);
	snprintf(log, sizeof(log), "%s/%s.log", e->dir, name);
	const char *argv[] = { path, "--control", e->control, "--pool", pool, mode, NULL };
	ck_assert_int_eq(wt_proc_spawn(p, argv, log), 0);
	int id = wt_wait_attached(e->gw.log_path, pool, p->pid, WT_ATTACH_MS);
	if (id < 0)
		wt_dump(name, log, 20);
	ck_assert_msg(id > 0, "%s did not attach to pool %s", prog, pool);
}

/* The value of an unlabelled /metrics line of the gateway, or -1. */
static long metric(int admin_port, const char *name)
{
	struct wt_conn c;
	static char buf[32768];
	char req[] = "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n";
	size_t len = 0;
	if (wt_connect(&c, "127.0.0.1", admin_port) < 0 || wt_send_raw(&c, req, strlen(req)) < 0) {
		wt_close(&c);
		return -1;
	}
	int64_t deadline = wt_now_ms() + 3000;
	while (len < sizeof(buf) - 1 && wt_now_ms() < deadline) {
		struct pollfd pf = { .fd = c.fd, .events = POLLIN };
		if (poll(&pf, 1, 100) <= 0)
			continue;
		ssize_t r = read(c.fd, buf + len, sizeof(buf) - 1 - len);
		if (r <= 0)
			break;
		len += (size_t)r;
	}
	buf[len] = 0;
	wt_close(&c);
	char key[128];
	snprintf(key, sizeof(key), "\n%s ", name);
	const char *p = strstr(buf, key);
	return p ? strtol(p + strlen(key), NULL, 10) : -1;
}

static int admin_port(struct wt_env *e)
{
	char line[256];
	int port = -1;
	ck_assert(wt_wait_file(e->gw.log_path, "admin endpoint on port ", 5000));
	FILE *f = fopen(e->gw.log_path, "re");
	ck_assert_ptr_nonnull(f);
	while (fgets(line, sizeof(line), f)) {
		const char *p = strstr(line, "admin endpoint on port ");
		if (p)
			port = atoi(p + strlen("admin endpoint on port "));
	}
	fclose(f);
	ck_assert_int_gt(port, 0);
	return port;
}

static void wait_metric(int port, const char *name, long want)
{
	long v = -1;
	for (int i = 0; i < 250 && (v = metric(port, name)) != want; i++)
		wt_sleep_ms(20);
	ck_assert_msg(v == want, "%s is %ld, expected %ld", name, v, want);
}

/* ---- wsgw-broadcast ------------------------------------------------------ */

#define B_CLIENTS 40
#define B_MSGS 5

/* Every client sends B_MSGS messages "c<i>-<k>"; every client must receive every one of
 * them (its own included) exactly once, each sender's in the order sent. */
static void broadcast_round(struct wt_conn *c, int n)
{
	char msg[32];
	for (int k = 0; k < B_MSGS; k++)
		for (int i = 0; i < n; i++) {
			int len = snprintf(msg, sizeof(msg), "c%d-%d", i, k);
			WT_OK(&c[i], wt_send_frame(&c[i], WT_TEXT, 1, msg, (size_t)len));
		}
	for (int j = 0; j < n; j++) {
		int next[B_CLIENTS] = { 0 };
		for (int got = 0; got < n * B_MSGS; got++) {
			struct wt_frame m;
			int rc = wt_read_message(&c[j], &m, 5000);
			ck_assert_msg(rc == 0, "client %d: message %d of %d: %s", j, got, n * B_MSGS,
				      strerror(-rc));
			ck_assert_int_eq(m.opcode, WT_TEXT);
			int from, k;
			char z[64];
			snprintf(z, sizeof(z), "%.*s", (int)m.len, (const char *)m.payload);
			ck_assert_msg(sscanf(z, "c%d-%d", &from, &k) == 2 && from >= 0 && from < n,
				      "client %d got %s", j, z);
			ck_assert_msg(k == next[from], "client %d: from %d got %d, expected %d", j, from,
				      k, next[from]);
			next[from]++;
			wt_frame_free(&m);
		}
		struct wt_frame m;
		ck_assert_int_eq(wt_read_message(&c[j], &m, 50), -ETIMEDOUT); /* nothing twice */
	}
}

static void broadcast_test(const char *mode, int workers)
{
	static struct wt_conn c[B_CLIENTS];
	struct wt_env e;
	struct wt_proc w[2];
	wt_env_init(&e);
	WT_ENV_GW_START(&e, "--route", "/=bc", "--admin", "127.0.0.1:0", NULL);
	int port = admin_port(&e);
	for (int i = 0; i < workers; i++)
		start_worker(&e, &w[i], "wsgw-broadcast", "bc", mode, i ? "bc2" : "bc1");
	for (int i = 0; i < B_CLIENTS; i++)
		WT_EXPECT_OPEN(&c[i], "127.0.0.1", e.gw.port, "/");
	if (!mode)
		wait_metric(port, "wsgw_subscriptions", B_CLIENTS);
	else
		wt_sleep_ms(300); /* the OPENs reached the worker's member list */
	broadcast_round(c, B_CLIENTS);
	/* A client that leaves stops getting messages at once, and breaks no one else's. */
	wt_close(&c[B_CLIENTS - 1]);
	if (!mode)
		wait_metric(port, "wsgw_subscriptions", B_CLIENTS - 1);
	else
		wt_sleep_ms(300);
	broadcast_round(c, B_CLIENTS - 1);
	if (!mode)
		ck_assert_int_eq(metric(port, "wsgw_topics"), 1);
	printf("wsgw-broadcast %s, %d worker(s): %d clients got every message once, in order\n",
	       mode ? mode : "(publish)", workers, B_CLIENTS);
	wt_close_all();
	for (int i = 0; i < workers; i++)
		ck_assert_int_eq(wt_proc_stop(&w[i], 5000), 0);
	wt_env_done(&e);
}

/* Two workers: a publish from either reaches the subscribers pinned to both. */
START_TEST(broadcast_publish_two_workers)
{
	broadcast_test(NULL, 2);
}
END_TEST

START_TEST(broadcast_sendmany)
{
	broadcast_test("--sendmany", 1);
}
END_TEST

START_TEST(broadcast_sends)
{
	broadcast_test("--sends", 1);
}
END_TEST

/* wsgw-bench --mode fanout through wsgw-broadcast: every delivery checked, nothing lost;
 * and against an echo (no fan-out) it must fail, or it checks nothing. */
static int bench_fanout(struct wt_env *e, const char *path, char *json, size_t cap)
{
	const char *build = getenv("WSGW_BUILD");
	char prog[512], target[64], log[256];
	snprintf(prog, sizeof(prog), "%s/wsgw-bench", build && *build ? build : "build");
	snprintf(target, sizeof(target), "127.0.0.1:%d%s", e->gw.port, path);
	snprintf(log, sizeof(log), "%s/bench.out", e->dir);
	const char *argv[] = { prog, "--target", target, "--mode", "fanout", "-c", "51", "-k", "4",
			       "-s", "64", "-d", "1", "-q", "--connect-timeout", "2", NULL };
	struct wt_proc p;
	ck_assert_int_eq(wt_proc_spawn(&p, argv, log), 0);
	ck_assert_int_eq(wt_proc_reap(&p, 30000), 0);
	FILE *f = fopen(log, "re");
	ck_assert_ptr_nonnull(f);
	json[0] = 0;
	char line[4096];
	while (fgets(line, sizeof(line), f))
		if (line[0] == '{')
			snprintf(json, cap, "%s", line);
	fclose(f);
	return WIFEXITED(p.status) ? WEXITSTATUS(p.status) : -1;
}

START_TEST(bench_fanout_checks_every_delivery)
{
	struct wt_env e;
	struct wt_proc w;
	char json[4096];
	wt_env_init(&e);
	WT_ENV_GW_START(&e, "--route", "/echo=echo", "--route", "/=bc", NULL);
	start_worker(&e, &w, "wsgw-broadcast", "bc", NULL, "bc");
	int rc = bench_fanout(&e, "/", json, sizeof(json));
	ck_assert_msg(rc == 0, "wsgw-bench exited %d: %s", rc, json);
	ck_assert_msg(strstr(json, "\"ok\":true") && strstr(json, "\"mismatches\":0,") &&
		      strstr(json, "\"stranded\":0,") && strstr(json, "\"ready\":51,"), "%s", json);
	long d = atol(strstr(json, "\"deliveries\":") + 13);
	ck_assert_msg(d > 51 * 100, "only %ld deliveries: %s", d, json);
	printf("wsgw-bench fanout through wsgw-broadcast: %ld deliveries checked\n", d);
	/* An echo delivers to the sender only: the others never get a probe. */
	rc = bench_fanout(&e, "/echo", json, sizeof(json));
	ck_assert_msg(rc == 1 && strstr(json, "\"ok\":false") && strstr(json, "\"ready\":1,"),
		      "against an echo: exit %d, %s", rc, json);
	ck_assert_int_eq(wt_proc_stop(&w, 5000), 0);
	wt_env_done(&e);
}
END_TEST

static void expect_quiet(struct wt_conn *c, const char *who);

/* ---- libwsgw's verbs, in this process, through the real gateway ----------- */

/* The next event of type on w within ms (others skipped); fails the test otherwise. */
static struct wsgw_event next_ev(struct wsgw_worker *w, int type, int ms)
{
	static struct wsgw_event ev[64];
	static int n, i;
	int64_t end = wt_now_ms() + ms;
	for (;;) {
		for (; i < n; i++)
			if (ev[i].type == type)
				return ev[i++];
		int64_t left = end - wt_now_ms();
		ck_assert_msg(left > 0, "no event of type %d within %d ms", type, ms);
		n = wsgw_wait(w, ev, 64, (int)left);
		i = 0;
		ck_assert_int_ge(n, 0);
	}
}

START_TEST(libwsgw_verbs_through_the_gateway)
{
	struct wt_env e;
	struct wt_conn c[3];
	uint64_t id[3];
	wt_env_init(&e);
	WT_ENV_GW_START(&e, "--route", "/=lib", NULL);
	struct wsgw_worker *w;
	struct wsgw_options o = { .control = e.control, .pool = "lib", .attach_timeout_ms = 5000 };
	ck_assert_int_eq(wsgw_attach(&o, &w), 0);
	for (int i = 0; i < 3; i++) {
		WT_EXPECT_OPEN(&c[i], "127.0.0.1", e.gw.port, "/");
		id[i] = next_ev(w, WSGW_EV_OPEN, 5000).conn;
	}
	for (int i = 0; i < 3; i++)
		ck_assert_int_eq(wsgw_subscribe(w, id[i], "t\0x", 3), 0);
	ck_assert_int_eq(wsgw_query(w, "t\0x", 3, 4242), 0);
	struct wsgw_event ev = next_ev(w, WSGW_EV_TOPIC, 5000);
	const void *tp;
	size_t tl;
	uint32_t subs;
	uint64_t got[4];
	ck_assert_uint_eq(ev.conn, 4242);
	ck_assert_int_eq(wsgw_topic_info(&ev, &tp, &tl, &subs), 0);
	ck_assert_uint_eq(tl, 3);
	ck_assert_mem_eq(tp, "t\0x", 3);
	ck_assert_uint_eq(subs, 3);
	ck_assert_uint_eq(wsgw_topic_conns(&ev, got, 4), 3);
	for (int i = 0; i < 3; i++)
		ck_assert(got[0] == id[i] || got[1] == id[i] || got[2] == id[i]);

	ck_assert_int_eq(wsgw_publish(w, "t\0x", 3, 1, "\x01pub", 4, id[1]), 0);
	wsgw_flush(w);
	WT_EXPECT_MESSAGE(&c[0], WT_BINARY, "\x01pub", 4);
	WT_EXPECT_MESSAGE(&c[2], WT_BINARY, "\x01pub", 4);
	ck_assert_int_eq(wsgw_send_many(w, id, 2, 0, "many", 4), 0);
	ck_assert_int_eq(wsgw_unsubscribe(w, id[0], "t\0x", 3), 0);
	ck_assert_int_eq(wsgw_publish(w, "t\0x", 3, 0, "after", 5, 0), 0);
	wsgw_flush(w);
	WT_EXPECT_MESSAGE(&c[0], WT_TEXT, "many", 4);
	WT_EXPECT_MESSAGE(&c[1], WT_TEXT, "many", 4); /* not "\x01pub": it was left out */
	WT_EXPECT_MESSAGE(&c[1], WT_TEXT, "after", 5);
	WT_EXPECT_MESSAGE(&c[2], WT_TEXT, "after", 5);
	expect_quiet(&c[0], "c0 (unsubscribed)");

	ck_assert_int_eq(wsgw_stat(w, id[2]), 0);
	ev = next_ev(w, WSGW_EV_STAT, 5000);
	uint64_t queued = 1;
	uint32_t age = 1;
	ck_assert_uint_eq(ev.conn, id[2]);
	ck_assert_int_eq(wsgw_stat_info(&ev, &queued, &age), 0);
	ck_assert_uint_eq(queued, 0); /* a client that reads has nothing waiting */
	ck_assert_uint_eq(age, 0);
	ck_assert_int_eq(wsgw_stat(w, 999999), 0);
	ck_assert_uint_eq(next_ev(w, WSGW_EV_GONE, 5000).conn, 999999);
	for (int i = 0; i < 3; i++)
		wt_close(&c[i]);
	wsgw_detach(w);
	wt_close_all();
	wt_env_done(&e);
}
END_TEST

/* ---- wsgw-chat ----------------------------------------------------------- */

/* The next text message of c with its "time":N replaced by "time":T. */
static void next_json(struct wt_conn *c, char *out, size_t cap, const char *who)
{
	struct wt_frame m;
	int rc = wt_read_message(c, &m, 5000);
	ck_assert_msg(rc == 0, "%s: no message: %s", who, strerror(-rc));
	ck_assert_int_eq(m.opcode, WT_TEXT);
	size_t o = 0;
	for (size_t i = 0; i < m.len && o + 1 < cap; i++) {
		out[o++] = (char)m.payload[i];
		if (o >= 7 && !memcmp(out + o - 7, "\"time\":", 7)) {
			while (i + 1 < m.len && m.payload[i + 1] >= '0' && m.payload[i + 1] <= '9')
				i++;
			out[o++] = 'T';
		}
	}
	out[o] = 0;
	wt_frame_free(&m);
}

#define EXPECT_JSON(c, want) do { \
		char got_[4096]; \
		next_json((c), got_, sizeof(got_), #c); \
		ck_assert_msg(!strcmp(got_, (want)), "%s: got %s\n expected %s", #c, got_, (want)); \
	} while (0)

static void say(struct wt_conn *c, const char *json)
{
	WT_OK(c, wt_send_frame(c, WT_TEXT, 1, json, strlen(json)));
}

static void expect_quiet(struct wt_conn *c, const char *who)
{
	struct wt_frame m;
	int rc = wt_read_message(c, &m, 200);
	if (rc == 0) {
		ck_abort_msg("%s: expected nothing, got %.*s", who, (int)m.len, (const char *)m.payload);
	}
	ck_assert_int_eq(rc, -ETIMEDOUT);
}

START_TEST(chat_rooms)
{
	struct wt_env e;
	struct wt_proc w1, w2;
	struct wt_conn a1, a2, b1;
	wt_env_init(&e);
	WT_ENV_GW_START(&e, "--route", "/chat=chat", NULL);
	/* Two chat workers: members of one room are pinned to both, and neither keeps lists. */
	start_worker(&e, &w1, "wsgw-chat", "chat", NULL, "chat1");
	start_worker(&e, &w2, "wsgw-chat", "chat", NULL, "chat2");
	WT_EXPECT_OPEN(&a1, "127.0.0.1", e.gw.port, "/chat");
	WT_EXPECT_OPEN(&a2, "127.0.0.1", e.gw.port, "/chat");
	WT_EXPECT_OPEN(&b1, "127.0.0.1", e.gw.port, "/chat");

	say(&a1, "{\"type\":\"join\",\"room\":\"a\",\"name\":\"ann\"}");
	EXPECT_JSON(&a1, "{\"type\":\"joined\",\"room\":\"a\",\"name\":\"ann\",\"time\":T}");
	EXPECT_JSON(&a1, "{\"type\":\"count\",\"room\":\"a\",\"members\":1}");
	say(&a2, "{\"type\":\"join\",\"room\":\"a\",\"name\":\"bob \\\"the\\\" \\u00e9\"}");
	for (struct wt_conn *c = &a1; c; c = c == &a1 ? &a2 : NULL) {
		EXPECT_JSON(c, "{\"type\":\"joined\",\"room\":\"a\",\"name\":\"bob \\\"the\\\" \xc3\xa9\",\"time\":T}");
		EXPECT_JSON(c, "{\"type\":\"count\",\"room\":\"a\",\"members\":2}");
	}
	say(&b1, "{\"type\":\"join\",\"room\":\"b\",\"name\":\"cy\"}");
	EXPECT_JSON(&b1, "{\"type\":\"joined\",\"room\":\"b\",\"name\":\"cy\",\"time\":T}");
	EXPECT_JSON(&b1, "{\"type\":\"count\",\"room\":\"b\",\"members\":1}");

	/* A message reaches the room but the sender, who gets its copy with "self". */
	say(&a1, "{\"type\":\"say\",\"room\":\"a\",\"text\":\"hi\\nthere <b>\"}");
	EXPECT_JSON(&a2, "{\"type\":\"message\",\"room\":\"a\",\"name\":\"ann\",\"text\":\"hi\\u000athere <b>\",\"time\":T}");
	EXPECT_JSON(&a1, "{\"type\":\"message\",\"room\":\"a\",\"name\":\"ann\",\"text\":\"hi\\u000athere <b>\",\"time\":T,\"self\":true}");
	expect_quiet(&b1, "b1 (another room)");

	say(&b1, "{\"type\":\"count\",\"room\":\"a\"}"); /* counting needs no membership */
	EXPECT_JSON(&b1, "{\"type\":\"count\",\"room\":\"a\",\"members\":2}");
	expect_quiet(&a1, "a1 (a count for b1 only)");

	/* One connection in two rooms, under two names. */
	say(&b1, "{\"type\":\"join\",\"room\":\"a\",\"name\":\"cy2\"}");
	for (struct wt_conn *c = &a1; c; c = c == &a1 ? &a2 : c == &a2 ? &b1 : NULL) {
		EXPECT_JSON(c, "{\"type\":\"joined\",\"room\":\"a\",\"name\":\"cy2\",\"time\":T}");
		EXPECT_JSON(c, "{\"type\":\"count\",\"room\":\"a\",\"members\":3}");
	}
	say(&a2, "{\"type\":\"leave\",\"room\":\"a\"}");
	for (struct wt_conn *c = &a1; c; c = c == &a1 ? &a2 : c == &a2 ? &b1 : NULL) {
		if (c != &a2) /* unsubscribed before the notice */
			EXPECT_JSON(c, "{\"type\":\"left\",\"room\":\"a\",\"name\":\"bob \\\"the\\\" \xc3\xa9\",\"time\":T}");
		if (c != &a2)
			EXPECT_JSON(c, "{\"type\":\"count\",\"room\":\"a\",\"members\":2}");
	}
	expect_quiet(&a2, "a2 (left)");
	say(&a2, "{\"type\":\"say\",\"room\":\"a\",\"text\":\"still here?\"}");
	EXPECT_JSON(&a2, "{\"type\":\"error\",\"error\":\"join the room first\"}");
	expect_quiet(&a1, "a1 (a2 is not in the room)");

	/* A client that goes away leaves every room it was in. */
	wt_close(&b1);
	EXPECT_JSON(&a1, "{\"type\":\"left\",\"room\":\"a\",\"name\":\"cy2\",\"time\":T}");
	EXPECT_JSON(&a1, "{\"type\":\"count\",\"room\":\"a\",\"members\":1}");
	wt_close(&a1);
	wt_close(&a2);
	wt_close_all();
	ck_assert_int_eq(wt_proc_stop(&w1, 5000), 0);
	ck_assert_int_eq(wt_proc_stop(&w2, 5000), 0);
	wt_env_done(&e);
}
END_TEST

START_TEST(chat_bad_input)
{
	struct wt_env e;
	struct wt_proc w;
	struct wt_conn a;
	wt_env_init(&e);
	WT_ENV_GW_START(&e, "--route", "/=chat", NULL);
	start_worker(&e, &w, "wsgw-chat", "chat", NULL, "chat");
	WT_EXPECT_OPEN(&a, "127.0.0.1", e.gw.port, "/");
	static const struct { const char *in, *why; } cases[] = {
		{ "not json", "bad JSON" },
		{ "{\"type\":\"join\",\"room\":\"r\"}", "no name" },
		{ "{\"type\":\"fly\",\"room\":\"r\"}", "unknown type" },
		{ "{\"type\":\"join\",\"room\":\"r\",\"name\":\"a\\u0000\"}", "control characters" },
		{ "{\"type\":\"count\",\"room\":{\"x\":1}}", "values are strings" },
		{ "{\"type\":\"leave\",\"room\":\"r\"}", "not in that room" },
	};
	char want[256];
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		say(&a, cases[i].in);
		snprintf(want, sizeof(want), "{\"type\":\"error\",\"error\":\"%s\"}", cases[i].why);
		EXPECT_JSON(&a, want);
	}
	WT_OK(&a, wt_send_frame(&a, WT_BINARY, 1, "{}", 2));
	EXPECT_JSON(&a, "{\"type\":\"error\",\"error\":\"messages are JSON text\"}");
	static char big[CHAT_MSG_MAX + 1];
	memset(big, ' ', sizeof(big));
	memcpy(big, "{\"type\":\"count\",\"room\":\"r\"}", 27);
	WT_OK(&a, wt_send_frame(&a, WT_TEXT, 1, big, sizeof(big)));
	EXPECT_JSON(&a, "{\"type\":\"error\",\"error\":\"message too long\"}");
	/* Still served. */
	say(&a, "{\"type\":\"count\",\"room\":\"r\"}");
	EXPECT_JSON(&a, "{\"type\":\"count\",\"room\":\"r\",\"members\":0}");
	wt_close(&a);
	wt_close_all();
	ck_assert_int_eq(wt_proc_stop(&w, 5000), 0);
	wt_env_done(&e);
}
END_TEST

/* The chat worker is killed (SIGKILL) and another takes its place: the clients stay
 * connected, keep their rooms (the gateway holds the subscriptions), are asked to resync
 * their names, and chat on. */
START_TEST(chat_worker_replaced)
{
	struct wt_env e;
	struct wt_proc w1, w2;
	struct wt_conn a, b;
	wt_env_init(&e);
	WT_ENV_GW_START(&e, "--route", "/=chat", NULL);
	start_worker(&e, &w1, "wsgw-chat", "chat", NULL, "chat1");
	WT_EXPECT_OPEN(&a, "127.0.0.1", e.gw.port, "/");
	WT_EXPECT_OPEN(&b, "127.0.0.1", e.gw.port, "/");
	say(&a, "{\"type\":\"join\",\"room\":\"r\",\"name\":\"ann\"}");
	EXPECT_JSON(&a, "{\"type\":\"joined\",\"room\":\"r\",\"name\":\"ann\",\"time\":T}");
	EXPECT_JSON(&a, "{\"type\":\"count\",\"room\":\"r\",\"members\":1}");
	say(&b, "{\"type\":\"join\",\"room\":\"r\",\"name\":\"bob\"}");
	for (struct wt_conn *c = &a; c; c = c == &a ? &b : NULL) {
		EXPECT_JSON(c, "{\"type\":\"joined\",\"room\":\"r\",\"name\":\"bob\",\"time\":T}");
		EXPECT_JSON(c, "{\"type\":\"count\",\"room\":\"r\",\"members\":2}");
	}
	ck_assert_int_eq(wt_proc_kill(&w1, SIGKILL), 0);
	ck_assert_int_eq(wt_proc_reap(&w1, 5000), 0);
	start_worker(&e, &w2, "wsgw-chat", "chat", NULL, "chat2");
	EXPECT_JSON(&a, "{\"type\":\"resync\"}");
	EXPECT_JSON(&b, "{\"type\":\"resync\"}");
	say(&a, "{\"type\":\"join\",\"room\":\"r\",\"name\":\"ann\",\"again\":true}");
	say(&b, "{\"type\":\"join\",\"room\":\"r\",\"name\":\"bob\",\"again\":true}");
	say(&a, "{\"type\":\"say\",\"room\":\"r\",\"text\":\"still here\"}");
	EXPECT_JSON(&a, "{\"type\":\"message\",\"room\":\"r\",\"name\":\"ann\",\"text\":\"still here\",\"time\":T,\"self\":true}");
	EXPECT_JSON(&b, "{\"type\":\"message\",\"room\":\"r\",\"name\":\"ann\",\"text\":\"still here\",\"time\":T}");
	say(&b, "{\"type\":\"count\",\"room\":\"r\"}");
	EXPECT_JSON(&b, "{\"type\":\"count\",\"room\":\"r\",\"members\":2}");
	expect_quiet(&a, "a (a rejoin makes no notice)");
	wt_close(&a);
	wt_close(&b);
	wt_close_all();
	ck_assert_int_eq(wt_proc_stop(&w2, 5000), 0);
	wt_env_done(&e);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("reference workers");
	TCase *tc = tcase_create("workers");
	tcase_add_unchecked_fixture(tc, wt_fixture_setup, wt_fixture_teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, broadcast_publish_two_workers);
	tcase_add_test(tc, broadcast_sendmany);
	tcase_add_test(tc, broadcast_sends);
	tcase_add_test(tc, bench_fanout_checks_every_delivery);
	tcase_add_test(tc, libwsgw_verbs_through_the_gateway);
	tcase_add_test(tc, chat_rooms);
	tcase_add_test(tc, chat_bad_input);
	tcase_add_test(tc, chat_worker_replaced);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
