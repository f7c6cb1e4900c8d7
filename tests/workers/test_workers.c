/*
 * Integration and fault tests of the worker protocol (issue 4): a real gateway, real
 * workers (build/wsgw-echo and this binary re-executed as the test worker of
 * tests/lib/wtproc.h), real client sockets. docs/PROTOCOL.md is the contract.
 */
#include <check.h>
#include <errno.h>
#include <arpa/inet.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include "tests/lib/wstest.h"
#include "tests/lib/wtenv.h"
#include "wsgw/protocol.h"

/* A test worker's reply "w<id> c<conn> <f>|<payload>", parsed. */
struct reply {
	unsigned wid;
	unsigned long long conn;
	char flag;
	const uint8_t *payload;
	size_t len;
};

static int reply_parse(const struct wt_frame *m, struct reply *r)
{
	int off = 0;
	char buf[64];
	size_t n = m->len < sizeof(buf) - 1 ? m->len : sizeof(buf) - 1;

	memcpy(buf, m->payload, n);
	buf[n] = 0;
	if (sscanf(buf, "w%u c%llu %c|%n", &r->wid, &r->conn, &r->flag, &off) != 3 || !off)
		return -1;
	r->payload = m->payload + off;
	r->len = m->len - (size_t)off;
	return 0;
}

/* Reads one message from c and asserts it is the test worker's reply carrying exactly
 * payload; fills r. */
static void expect_reply(struct wt_conn *c, const void *payload, size_t len, struct reply *r,
			 int timeout_ms, const char *what)
{
	struct wt_frame m;
	int rc = wt_read_message(c, &m, timeout_ms);

	ck_assert_msg(rc == 0, "%s: no reply: %s (%s)", what, strerror(-rc), c->err);
	ck_assert_msg(m.opcode == WT_TEXT || m.opcode == WT_BINARY,
		      "%s: got opcode %d (close code %d) instead of a reply", what, m.opcode,
		      m.opcode == WT_CLOSE ? wt_close_code(&m) : 0);
	ck_assert_msg(reply_parse(&m, r) == 0, "%s: reply without worker tag: %.*s", what,
		      (int)(m.len < 80 ? m.len : 80), (const char *)m.payload);
	ck_assert_msg(r->len == len && !memcmp(r->payload, payload, len),
		      "%s: reply payload differs: expected %.*s, got %.*s", what,
		      (int)(len < 60 ? len : 60), (const char *)payload,
		      (int)(r->len < 60 ? r->len : 60), (const char *)r->payload);
	r->payload = NULL; /* points into m */
	wt_frame_free(&m);
}

/* Asserts nothing at all (no message, no close, no EOF) arrives on c within ms. */
static void expect_silence(struct wt_conn *c, int ms, const char *what)
{
	struct wt_frame m;
	int rc = wt_read_message(c, &m, ms);

	if (rc == 0) {
		ck_abort_msg("%s: expected nothing, got opcode %d, %zu bytes: %.*s", what,
			     m.opcode, m.len, (int)(m.len < 60 ? m.len : 60),
			     (const char *)m.payload);
	}
	ck_assert_msg(rc == -ETIMEDOUT, "%s: expected nothing, got %s (%s)", what,
		      strerror(-rc), c->err);
}

static void send_text(struct wt_conn *c, const char *s)
{
	WT_OK(c, wt_send_frame(c, WT_TEXT, 1, s, strlen(s)));
}

/* ---- 1. two workers, many clients ----------------------------------------- */

#define T1_CONNS 100
#define T1_MSGS 50
#define T1_BURST 10

START_TEST(test_two_workers_many_clients)
{
	static struct wt_conn c[T1_CONNS];
	static struct reply first[T1_CONNS];
	struct wt_env e;
	struct wt_proc w1, w2;
	char msg[64];

	wt_env_init(&e);
	WT_ENV_GW_START(&e, "--route", "/=chat", NULL);
	int id1 = wt_env_worker(&e, &w1, 1, "chat", "w1");
	int id2 = wt_env_worker(&e, &w2, 1, "chat", "w2");

	for (int i = 0; i < T1_CONNS; i++)
		WT_EXPECT_OPEN(&c[i], "127.0.0.1", e.gw.port, "/room");
	/* Bursts of T1_BURST messages per connection, connections interleaved. */
	for (int b = 0; b < T1_MSGS / T1_BURST; b++) {
		for (int i = 0; i < T1_CONNS; i++)
			for (int k = 0; k < T1_BURST; k++) {
				snprintf(msg, sizeof(msg), "conn %d msg %d", i, b * T1_BURST + k);
				send_text(&c[i], msg);
			}
		for (int i = 0; i < T1_CONNS; i++)
			for (int k = 0; k < T1_BURST; k++) {
				struct reply r;
				int seq = b * T1_BURST + k;

				snprintf(msg, sizeof(msg), "conn %d msg %d", i, seq);
				expect_reply(&c[i], msg, strlen(msg), &r, -1, msg);
				if (seq == 0) {
					first[i] = r;
					ck_assert_msg(r.flag == 'o', "conn %d: worker saw no OPEN before its first message (flag %c)",
						      i, r.flag);
				}
				ck_assert_msg(r.wid == first[i].wid && r.conn == first[i].conn,
					      "conn %d msg %d answered by worker %u for conn %llu, earlier by worker %u for conn %llu",
					      i, seq, r.wid, r.conn, first[i].wid, first[i].conn);
			}
	}
	/* Exactly once: nothing more is pending on any connection. */
	wt_sleep_ms(100);
	for (int i = 0; i < T1_CONNS; i++)
		expect_silence(&c[i], 0, "after all echoes");

	int on1 = 0, on2 = 0;
	for (int i = 0; i < T1_CONNS; i++) {
		for (int j = 0; j < i; j++)
			ck_assert_msg(first[i].conn != first[j].conn,
				      "conns %d and %d got the same connection id %llu", i, j,
				      first[i].conn);
		on1 += first[i].wid == (unsigned)id1;
		on2 += first[i].wid == (unsigned)id2;
	}
	printf("two workers: %d connections on worker %d, %d on worker %d\n", on1, id1, on2, id2);
	ck_assert_int_eq(on1 + on2, T1_CONNS);
	/* Least connections, connections opened one after the other: an even split. */
	ck_assert_msg(on1 >= T1_CONNS * 4 / 10 && on2 >= T1_CONNS * 4 / 10,
		      "connections not spread: %d on worker %d, %d on worker %d", on1, id1, on2, id2);

	/* Each worker gets CLOSE exactly once per connection it served. */
	for (int i = 0; i < T1_CONNS; i++) {
		WT_OK(&c[i], wt_send_close(&c[i], 1000, NULL, 0));
		WT_EXPECT_CLOSE_EOF(&c[i], 1000);
		wt_close(&c[i]);
	}
	for (int i = 0; i < T1_CONNS; i++) {
		const char *log = first[i].wid == (unsigned)id1 ? w1.log_path : w2.log_path;
		char needle[64];

		snprintf(needle, sizeof(needle), "close %llu 1000\n", first[i].conn);
		ck_assert_msg(wt_wait_file(log, needle, 3000), "worker never got CLOSE for conn %llu",
			      first[i].conn);
		ck_assert_int_eq(wt_count_file(log, needle), 1);
	}
	wt_env_worker_stop(&w1);
	wt_env_worker_stop(&w2);
	wt_env_done(&e);
}
END_TEST

/* ---- 2. a worker crashes under load --------------------------------------- */

#define T2_CONNS 200 /* also the most lc_round() handles */
#define T2_INFLIGHT 2
#define T2_SIZE 32

struct lc {
	struct wt_conn c;
	uint32_t sent, next, lost;
	uint32_t kill_seq;      /* messages below it may be lost (0: none may be) */
};

static void lc_send(struct lc *l, int idx)
{
	char buf[T2_SIZE + 1];

	memset(buf, '.', sizeof(buf));
	/* "cIIII sSSSSSSSS" then padding, T2_SIZE bytes in all. */
	snprintf(buf, 16, "c%04d s%08" PRIu32, idx % 10000, l->sent % 100000000);
	buf[15] = ' ';
	WT_OK(&l->c, wt_send_frame(&l->c, WT_BINARY, 1, buf, T2_SIZE));
	l->sent++;
}

/* Reads every echo already buffered or readable on l. */
static void lc_drain(struct lc *l, int idx)
{
	for (;;) {
		struct wt_frame m;
		int rc = wt_read_message(&l->c, &m, 0);
		int ci;
		uint32_t s;
		char text[T2_SIZE + 1];

		if (rc == -ETIMEDOUT)
			return;
		ck_assert_msg(rc == 0, "conn %d: %s (%s) after %u sent, %u echoed", idx,
			      strerror(-rc), l->c.err, l->sent, l->next);
		ck_assert_msg(m.opcode == WT_BINARY, "conn %d: opcode %d (close code %d)", idx,
			      m.opcode, m.opcode == WT_CLOSE ? wt_close_code(&m) : 0);
		memcpy(text, m.payload, m.len < T2_SIZE ? m.len : T2_SIZE);
		text[m.len < T2_SIZE ? m.len : T2_SIZE] = 0;
		ck_assert_msg(m.len == T2_SIZE && sscanf(text, "c%d s%" SCNu32, &ci, &s) == 2 &&
			      ci == idx, "conn %d: foreign echo %.*s", idx, (int)m.len,
			      (const char *)m.payload);
		ck_assert_msg(s >= l->next && s < l->sent,
			      "conn %d: echo of msg %u out of order or twice (next expected %u, sent %u)",
			      idx, s, l->next, l->sent);
		ck_assert_msg(s <= l->kill_seq || s == l->next,
			      "conn %d: msgs %u..%u lost although msg %u was sent after the kill at %u",
			      idx, l->next, s - 1, s - 1, l->kill_seq);
		l->lost += s - l->next;
		l->next = s + 1;
		wt_frame_free(&m);
	}
}

/* One round: top up each connection's window, then read what arrives within wait_ms. */
static void lc_round(struct lc *l, int n, int sending, int wait_ms)
{
	static struct pollfd pf[T2_CONNS];

	for (int i = 0; i < n; i++) {
		/* Messages below kill_seq may never come back: they do not hold the window. */
		uint32_t base = l[i].next > l[i].kill_seq ? l[i].next : l[i].kill_seq;

		if (sending && l[i].sent - base < T2_INFLIGHT)
			lc_send(&l[i], i);
		pf[i] = (struct pollfd){ .fd = l[i].c.fd, .events = POLLIN };
	}
	if (poll(pf, (nfds_t)n, wait_ms) < 0)
		return;
	for (int i = 0; i < n; i++)
		if (pf[i].revents)
			lc_drain(&l[i], i);
}

START_TEST(test_worker_crash_under_load)
{
	static struct lc l[T2_CONNS];
	struct wt_env e;
	struct wt_proc w1, w2;

	wt_env_init(&e);
	WT_ENV_GW_START(&e, "--route", "/=chat", NULL);
	wt_env_worker(&e, &w1, 0, "chat", "echo1");
	wt_env_worker(&e, &w2, 0, "chat", "echo2");
	memset(l, 0, sizeof(l));
	for (int i = 0; i < T2_CONNS; i++)
		WT_EXPECT_OPEN(&l[i].c, "127.0.0.1", e.gw.port, "/");

	int64_t end = wt_now_ms() + 800;
	while (wt_now_ms() < end)
		lc_round(l, T2_CONNS, 1, 5);
	uint32_t before = 0;
	for (int i = 0; i < T2_CONNS; i++)
		before += l[i].next;

	pid_t dead = w1.pid;
	ck_assert_int_eq(wt_proc_kill(&w1, SIGKILL), 0);
	/* Reaped: from here on the dead worker cannot consume anything. */
	ck_assert_int_eq(wt_proc_reap(&w1, 5000), 0);
	for (int i = 0; i < T2_CONNS; i++)
		l[i].kill_seq = l[i].sent;

	end = wt_now_ms() + 1000;
	while (wt_now_ms() < end)
		lc_round(l, T2_CONNS, 1, 5);
	/* Drain: the last message of each connection was sent after the kill. */
	end = wt_now_ms() + 10000;
	for (;;) {
		int pending = 0;

		for (int i = 0; i < T2_CONNS; i++)
			pending += l[i].next != l[i].sent;
		if (!pending)
			break;
		if (wt_now_ms() > end) {
			for (int i = 0; i < T2_CONNS; i++)
				if (l[i].next != l[i].sent)
					fprintf(stderr, "conn %d: sent %u, echoed up to %u, kill at %u\n",
						i, l[i].sent, l[i].next, l[i].kill_seq);
			wt_gw_dump_log(&e.gw, 20);
			ck_abort_msg("%d connections still miss echoes of messages sent after the kill",
				     pending);
		}
		lc_round(l, T2_CONNS, 0, 20);
	}
	uint32_t lost = 0, total = 0, after = 0;
	for (int i = 0; i < T2_CONNS; i++) {
		lost += l[i].lost;
		total += l[i].sent;
		after += l[i].sent - l[i].kill_seq;
		ck_assert_msg(l[i].c.fd >= 0 && !l[i].c.eof, "conn %d was closed", i);
	}
	ck_assert_msg(wt_wait_gone(e.gw.log_path, "chat", dead, 3000),
		      "the gateway never logged worker pid %d gone", (int)dead);
	printf("worker crash: %u messages sent (%u echoed before the kill, %u sent after it), "
	       "%u lost with the dead worker (bound 256)\n", total, before, after, lost);
	ck_assert_msg(lost <= 256, "%u messages lost: more than the dead worker's last batch (256)",
		      lost);
	for (int i = 0; i < T2_CONNS; i++)
		wt_close(&l[i].c);
	wt_env_worker_stop(&w2);
	wt_env_done(&e);
}
END_TEST

/* ---- 3. worker restart; orphan timeout ----------------------------------- */

#define T3_CONNS 10

START_TEST(test_worker_restart)
{
	struct wt_conn c[T3_CONNS];
	struct reply r[T3_CONNS], r2;
	struct wt_env e;
	struct wt_proc a, b;
	char msg[64];

	wt_env_init(&e);
	WT_ENV_GW_START(&e, "--route", "/=chat", "--orphan-timeout", "10", NULL);
	int ida = wt_env_worker(&e, &a, 1, "chat", "a");
	for (int i = 0; i < T3_CONNS; i++) {
		WT_EXPECT_OPEN(&c[i], "127.0.0.1", e.gw.port, "/");
		send_text(&c[i], "hello");
		expect_reply(&c[i], "hello", 5, &r[i], -1, "before the crash");
		ck_assert_int_eq(r[i].wid, ida);
	}
	pid_t dead = a.pid;
	ck_assert_int_eq(wt_proc_kill(&a, SIGKILL), 0);
	ck_assert_int_eq(wt_proc_reap(&a, 5000), 0);
	ck_assert_msg(wt_wait_gone(e.gw.log_path, "chat", dead, 3000), "no 'gone' for pid %d",
		      (int)dead);
	/* No worker: these wait in the gateway (or in TCP) for the next one. */
	for (int i = 0; i < T3_CONNS; i++)
		for (int k = 0; k < 3; k++) {
			snprintf(msg, sizeof(msg), "while away %d", k);
			send_text(&c[i], msg);
		}
	wt_sleep_ms(300);
	for (int i = 0; i < T3_CONNS; i++)
		expect_silence(&c[i], 0, "no worker");

	int idb = wt_env_worker(&e, &b, 1, "chat", "b");
	for (int i = 0; i < T3_CONNS; i++)
		for (int k = 0; k < 3; k++) {
			snprintf(msg, sizeof(msg), "while away %d", k);
			expect_reply(&c[i], msg, strlen(msg), &r2, -1, msg);
			ck_assert_int_eq(r2.wid, idb);
			ck_assert_msg(r2.conn == r[i].conn, "conn %d changed id %llu -> %llu", i,
				      r[i].conn, r2.conn);
			ck_assert_msg(r2.flag == 'r',
				      "conn %d: the new worker did not get OPEN(resumed) before the message (flag %c)",
				      i, r2.flag);
		}
	for (int i = 0; i < T3_CONNS; i++) {
		char needle[160];
		struct sockaddr_in me;
		socklen_t len = sizeof(me);

		/* OPEN(resumed) carries what the first OPEN did: the path, and the client's own
		 * address (asked of the socket again: the gateway keeps no copy of it). */
		ck_assert_int_eq(getsockname(c[i].fd, (struct sockaddr *)&me, &len), 0);
		snprintf(needle, sizeof(needle), "open %llu resumed=1 authorize=0 path=/ peer=127.0.0.1:%u\n",
			 r[i].conn, (unsigned)ntohs(me.sin_port));
		ck_assert_msg(wt_count_file(b.log_path, needle) == 1, "no '%s' in %s", needle, b.log_path);
		send_text(&c[i], "after");
		expect_reply(&c[i], "after", 5, &r2, -1, "after the restart");
		ck_assert_int_eq(r2.wid, idb);
		wt_close(&c[i]);
	}
	wt_env_worker_stop(&b);
	wt_env_done(&e);
}
END_TEST

START_TEST(test_orphan_timeout)
{
	struct wt_conn c[T3_CONNS];
	struct wt_env e;
	struct wt_proc a;

	wt_env_init(&e);
	WT_ENV_GW_START(&e, "--route", "/=chat", "--orphan-timeout", "1", NULL);
	wt_env_worker(&e, &a, 0, "chat", "a");
	for (int i = 0; i < T3_CONNS; i++) {
		WT_EXPECT_OPEN(&c[i], "127.0.0.1", e.gw.port, "/");
		send_text(&c[i], "hello");
		WT_EXPECT_MESSAGE(&c[i], WT_TEXT, "hello", 5);
	}
	ck_assert_int_eq(wt_proc_kill(&a, SIGKILL), 0);
	ck_assert_int_eq(wt_proc_reap(&a, 5000), 0);
	int64_t t0 = wt_now_ms();
	for (int i = 0; i < T3_CONNS; i++)
		send_text(&c[i], "anyone?");
	for (int i = 0; i < T3_CONNS; i++) {
		struct wt_frame m;
		int rc = wt_read_message(&c[i], &m, 5000);

		ck_assert_msg(rc == 0, "conn %d: %s (%s) instead of close 1013", i, strerror(-rc),
			      c[i].err);
		ck_assert_msg(m.opcode == WT_CLOSE && wt_close_code(&m) == 1013,
			      "conn %d: opcode %d code %d instead of close 1013", i, m.opcode,
			      m.opcode == WT_CLOSE ? wt_close_code(&m) : 0);
		wt_frame_free(&m);
	}
	int64_t waited = wt_now_ms() - t0;
	printf("orphan timeout 1 s: clients closed with 1013 after %" PRId64 " ms\n", waited);
	/* The kill itself is noticed at once (pidfd); the timer runs from there. */
	ck_assert_msg(waited >= 800, "closed after %" PRId64 " ms, before --orphan-timeout 1", waited);
	for (int i = 0; i < T3_CONNS; i++) {
		WT_OK(&c[i], wt_send_close(&c[i], 1013, NULL, 0));
		WT_EXPECT_EOF(&c[i]);
		wt_close(&c[i]);
	}
	wt_env_done(&e);
}
END_TEST

/* ---- 4. the gateway restarts ---------------------------------------------- */

/* Waits for the worker to attach to the gateway in e and settle there, then checks that
 * T4_CLIENTS new clients get their echoes through it. Returns the worker id. */
#define T4_CLIENTS 5

static int t4_check_reattached(struct wt_env *e, struct wt_proc *w, int resets, const char *what)
{
	struct wt_conn c[T4_CLIENTS];
	struct reply r;
	char needle[32];

	int id = wt_wait_attached(e->gw.log_path, "chat", w->pid, 8000);
	snprintf(needle, sizeof(needle), "reset id ");
	int got_reset = 0;
	for (int64_t end = wt_now_ms() + 3000; wt_now_ms() < end; wt_sleep_ms(10))
		if ((got_reset = wt_count_file(w->log_path, needle)) >= resets)
			break;
	if (id < 0 || got_reset < resets) {
		wt_gw_dump_log(&e->gw, 20);
		wt_dump("worker", w->log_path, 20);
	}
	ck_assert_msg(id > 0, "%s: the worker did not reattach within 8 s", what);
	ck_assert_msg(got_reset >= resets, "%s: the worker reattached without WSGW_EV_RESET", what);
	/* Let queued HELLOs (if any) play out before judging which attachment is live. */
	wt_sleep_ms(300);
	id = wt_last_attached(e->gw.log_path, "chat", w->pid);
	int n = wt_count_attached(e->gw.log_path, "chat", w->pid);
	printf("gateway restart (%s): worker attached %d time(s) to the new gateway, last as %d\n",
	       what, n, id);
	for (int i = 0; i < T4_CLIENTS; i++) {
		WT_EXPECT_OPEN(&c[i], "127.0.0.1", e->gw.port, "/");
		send_text(&c[i], what);
		struct wt_frame m;
		int rc = wt_read_message(&c[i], &m, 3000);
		if (rc) {
			wt_gw_dump_log(&e->gw, 20);
			wt_dump("worker", w->log_path, 20);
		}
		ck_assert_msg(rc == 0, "%s: client %d got no echo through the reattached worker: %s",
			      what, i, strerror(-rc));
		ck_assert_msg(reply_parse(&m, &r) == 0 && r.len == strlen(what) &&
			      !memcmp(r.payload, what, r.len), "%s: bad echo %.*s", what,
			      (int)m.len, (const char *)m.payload);
		ck_assert_msg(r.wid == (unsigned)id && r.flag == 'o',
			      "%s: answered by worker %u (flag %c), the gateway's last attach says %d",
			      what, r.wid, r.flag, id);
		wt_frame_free(&m);
	}
	for (int i = 0; i < T4_CLIENTS; i++)
		wt_close(&c[i]);
	return id;
}

START_TEST(test_gateway_restart)
{
	struct wt_conn c;
	struct reply r;
	struct wt_env e;
	struct wt_proc w;

	wt_env_init(&e);
	WT_ENV_GW_START(&e, "--route", "/=chat", "--heartbeat", "0.2", NULL);
	int id1 = wt_env_worker(&e, &w, 1, "chat", "w");
	WT_EXPECT_OPEN(&c, "127.0.0.1", e.gw.port, "/");
	send_text(&c, "one");
	expect_reply(&c, "one", 3, &r, -1, "first gateway");
	ck_assert_int_eq(r.wid, id1);
	wt_close(&c);

	/* A clean restart at once. */
	wt_env_gw_stop(&e);
	WT_ENV_GW_START(&e, "--route", "/=chat", "--heartbeat", "0.2", NULL);
	t4_check_reattached(&e, &w, 1, "stopped, restarted at once");

	/* A crash, and the new gateway comes up 2.5 s later (libwsgw retries HELLO each 1 s). */
	pid_t old = e.gw.pid;
	ck_assert_int_eq(kill(old, SIGKILL), 0);
	ck_assert_int_eq(wt_gw_wait(&e.gw, 5000), 0);
	wt_gw_stop(&e.gw, 0); /* removes its log and dir */
	/* Its segments were memfds: nothing of it is left in /dev/shm. */
	ck_assert_int_eq(wt_shm_count(old), 0);
	wt_sleep_ms(2500);
	WT_ENV_GW_START(&e, "--route", "/=chat", "--heartbeat", "0.2", NULL);
	t4_check_reattached(&e, &w, 2, "killed, restarted after 2.5 s");
	wt_env_worker_stop(&w);
	wt_env_done(&e);
}
END_TEST

/* ---- 5. refused HELLOs ---------------------------------------------------- */

/* Sends a multipart message from a fresh DEALER and returns the reply's frames, joined
 * with '|', in out; 0 or -ETIMEDOUT. */
static int zmq_ask(const char *endpoint, const char *const *frames, char *out, size_t cap)
{
	void *ctx = zmq_ctx_new();
	void *s = zmq_socket(ctx, ZMQ_DEALER);
	int linger = 0, rc = -ETIMEDOUT;
	size_t o = 0;

	zmq_setsockopt(s, ZMQ_LINGER, &linger, sizeof(linger));
	ck_assert_int_eq(zmq_connect(s, endpoint), 0);
	for (int i = 0; frames[i]; i++)
		zmq_send(s, frames[i], strlen(frames[i]), frames[i + 1] ? ZMQ_SNDMORE : 0);
	zmq_pollitem_t pi = { .socket = s, .events = ZMQ_POLLIN };
	out[0] = 0;
	if (zmq_poll(&pi, 1, 3000) == 1) {
		int more;
		do {
			zmq_msg_t m;
			size_t ml = sizeof(more);

			zmq_msg_init(&m);
			if (zmq_msg_recv(&m, s, 0) < 0)
				break;
			size_t n = zmq_msg_size(&m);
			if (o + n + 2 < cap) {
				if (o)
					out[o++] = '|';
				memcpy(out + o, zmq_msg_data(&m), n);
				o += n;
				out[o] = 0;
			}
			zmq_msg_close(&m);
			zmq_getsockopt(s, ZMQ_RCVMORE, &more, &ml);
		} while (more);
		rc = 0;
	}
	zmq_close(s);
	zmq_ctx_term(ctx);
	return rc;
}

START_TEST(test_hello_refused)
{
	struct wt_env e;
	struct wt_proc w;
	char pid[16], got[256];

	wt_env_init(&e);
	WT_ENV_GW_START(&e, "--route", "/=chat", NULL);

	char log[256];
	snprintf(log, sizeof(log), "%s/nope.log", e.dir);
	ck_assert_int_eq(wt_start_echo(&w, e.control, "nope", log), 0);
	ck_assert_msg(wt_proc_reap(&w, 5000) == 0, "wsgw-echo for an unknown pool did not exit");
	ck_assert_msg(WIFEXITED(w.status) && WEXITSTATUS(w.status) != 0,
		      "wsgw-echo for an unknown pool: status 0x%x, wanted a non-zero exit", w.status);
	ck_assert_msg(wt_count_file(log, "unknown pool") > 0, "no 'unknown pool' on stderr");

	snprintf(pid, sizeof(pid), "%d", (int)getpid());
	const char *v99[] = { "HELLO", "99", "chat", "shm", pid, NULL };
	ck_assert_int_eq(zmq_ask(e.control, v99, got, sizeof(got)), 0);
	ck_assert_str_eq(got, "ERROR|version mismatch");

	const char *early[] = { "HEARTBEAT", NULL };
	ck_assert_int_eq(zmq_ask(e.control, early, got, sizeof(got)), 0);
	ck_assert_str_eq(got, "ERROR|not attached");

	/* Version 1 named its segments; a version 1 worker cannot use what version 2 sends. */
	const char *v1[] = { "HELLO", "1", "chat", "shm", pid, NULL };
	ck_assert_int_eq(zmq_ask(e.control, v1, got, sizeof(got)), 0);
	ck_assert_str_eq(got, "ERROR|version mismatch");

	char version[8];
	snprintf(version, sizeof(version), "%d", WSGW_PROTOCOL_VERSION);
	const char *transport[] = { "HELLO", version, "chat", "pigeon", pid, NULL };
	ck_assert_int_eq(zmq_ask(e.control, transport, got, sizeof(got)), 0);
	ck_assert_str_eq(got, "ERROR|unknown transport");

	/* The gateway survived all of it and still serves nobody on chat: 503. */
	struct wt_conn c;
	char req[512];
	WT_OK(&c, wt_connect(&c, "127.0.0.1", e.gw.port));
	int n = wt_request_build(&c, req, sizeof(req), "/", NULL);
	WT_OK(&c, wt_send_raw(&c, req, (size_t)n));
	WT_EXPECT_HTTP(&c, NULL, 503);
	wt_close(&c);
	wt_env_done(&e);
}
END_TEST

/* ---- 6. a worker that stops reading --------------------------------------- */

#define T6_SIZE 4096
#define T6_STALL_MS 3000

static void t6_payload(uint8_t *p, uint32_t seq)
{
	wt_fill(p, T6_SIZE, seq, 0);
	memcpy(p, &seq, sizeof(seq));
}

START_TEST(test_stalled_worker_backpressure)
{
	struct wt_env e;
	struct wt_proc s, ok;
	struct wt_conn a, b;
	struct reply r;
	static uint8_t pay[T6_SIZE];
	char stall[32];

	wt_env_init(&e);
	WT_ENV_GW_START(&e, "--route", "/a=stallp", "--route", "/b=okp", "--ring-size", "65536",
		     "--max-message", "16384", "--max-outbound", "67108864", "--heartbeat", "2",
		     NULL);
	wt_env_worker(&e, &s, 1, "stallp", "stall");
	wt_env_worker(&e, &ok, 0, "okp", "ok");
	WT_EXPECT_OPEN(&a, "127.0.0.1", e.gw.port, "/a");
	WT_EXPECT_OPEN(&b, "127.0.0.1", e.gw.port, "/b");
	send_text(&b, "b0");
	WT_EXPECT_MESSAGE(&b, WT_TEXT, "b0", 2);

	snprintf(stall, sizeof(stall), "stall:%d", T6_STALL_MS);
	send_text(&a, stall);
	expect_reply(&a, stall, strlen(stall), &r, -1, "stall order");
	int64_t t0 = wt_now_ms();

	/* Write until the kernel refuses more: the gateway must have stopped reading. */
	uint32_t nsent = 0;
	uint8_t *frame = NULL, *pend = NULL;
	size_t flen = 0, plen = 0, total = 0;
	int blocked = 0;
	while (wt_now_ms() - t0 < T6_STALL_MS / 2 && total < (64u << 20)) {
		if (!plen) {
			t6_payload(pay, nsent);
			free(frame);
			frame = wt_frame_encode(&(struct wt_frame_spec){ .opcode = WT_BINARY,
				.fin = 1, .payload = pay, .len = T6_SIZE }, &flen);
			pend = frame;
			plen = flen;
			nsent++;
		}
		ssize_t w = send(a.fd, pend, plen, MSG_DONTWAIT | MSG_NOSIGNAL);
		if (w > 0) {
			pend += w;
			plen -= (size_t)w;
			total += (size_t)w;
			continue;
		}
		ck_assert_msg(w < 0 && (errno == EAGAIN || errno == EINTR), "send: %s",
			      strerror(errno));
		struct pollfd pf = { .fd = a.fd, .events = POLLOUT };
		if (poll(&pf, 1, 300) == 0) {
			blocked = 1;
			break;
		}
	}
	printf("stalled worker: client blocked after %zu bytes (%u messages of %d) in %" PRId64 " ms\n",
	       total, nsent, T6_SIZE, wt_now_ms() - t0);
	ck_assert_msg(blocked, "the client could write %zu bytes in %" PRId64 " ms to a stalled pool: "
		      "the gateway kept reading", total, wt_now_ms() - t0);

	/* Meanwhile the other pool works normally. */
	int64_t worst = 0;
	for (int i = 0; i < 20; i++) {
		char m[16];
		int64_t t = wt_now_ms();

		snprintf(m, sizeof(m), "b%d", i + 1);
		send_text(&b, m);
		WT_EXPECT_MESSAGE_T(&b, WT_TEXT, m, strlen(m), 1000);
		if (wt_now_ms() - t > worst)
			worst = wt_now_ms() - t;
	}
	printf("stalled worker: other pool's round trips during the stall: worst %" PRId64 " ms\n",
	       worst);
	ck_assert_msg(wt_count_file(s.log_path, "stall done") == 0,
		      "the stall ended before the other pool was checked; widen T6_STALL_MS");
	ck_assert_msg(worst < 500, "another pool's client waited %" PRId64 " ms during the stall",
		      worst);

	/* The worker resumes: every message arrives, in order, exactly once. */
	if (plen)
		WT_OK(&a, wt_send_raw(&a, pend, plen));
	free(frame);
	for (uint32_t i = 0; i < nsent; i++) {
		char what[64];

		snprintf(what, sizeof(what), "message %u of %u after the stall", i, nsent);
		t6_payload(pay, i);
		expect_reply(&a, pay, T6_SIZE, &r, 10000, what);
	}
	expect_silence(&a, 100, "after all echoes");
	ck_assert_msg(wt_count_file(e.gw.log_path, ") gone") == 0,
		      "a worker was declared gone during the stall");
	wt_close(&a);
	wt_close(&b);
	wt_env_worker_stop(&s);
	wt_env_worker_stop(&ok);
	wt_env_done(&e);
}
END_TEST

/* ---- 7. SEND to a closed connection → GONE --------------------------------- */

START_TEST(test_send_to_closed_gets_gone)
{
	struct wt_env e;
	struct wt_proc w;
	struct wt_conn a, b;
	struct reply ra, rb;
	char needle[64];

	wt_env_init(&e);
	WT_ENV_GW_START(&e, "--route", "/=chat", NULL);
	wt_env_worker(&e, &w, 1, "chat", "w");
	WT_EXPECT_OPEN(&a, "127.0.0.1", e.gw.port, "/");
	WT_EXPECT_OPEN(&b, "127.0.0.1", e.gw.port, "/");
	send_text(&a, "a");
	expect_reply(&a, "a", 1, &ra, -1, "a");
	send_text(&b, "b");
	expect_reply(&b, "b", 1, &rb, -1, "b");

	WT_OK(&a, wt_send_close(&a, 1000, "bye", 3));
	WT_EXPECT_CLOSE_EOF(&a, 1000);
	wt_close(&a);
	snprintf(needle, sizeof(needle), "close %llu 1000\n", ra.conn);
	ck_assert_msg(wt_wait_file(w.log_path, needle, 3000), "no CLOSE for conn %llu", ra.conn);
	snprintf(needle, sizeof(needle), "gone %llu\n", ra.conn);
	ck_assert_msg(wt_wait_file(w.log_path, needle, 3000),
		      "the worker sent to closed conn %llu and got no GONE", ra.conn);
	/* The late message went nowhere: not to the other client either. */
	expect_silence(&b, 200, "another client");
	snprintf(needle, sizeof(needle), "close %llu ", ra.conn);
	ck_assert_int_eq(wt_count_file(w.log_path, needle), 1);
	wt_close(&b);
	wt_env_worker_stop(&w);
	wt_env_done(&e);
}
END_TEST

/* ---- outbound cap: a worker sends faster than its client reads ------------ */

/* The client asks for 2000 x 16 KiB (32 MB, more than the kernel buffers hold) and reads
 * nothing for a while: the gateway's queue for it passes --max-outbound. */
static void flood_unread(struct wt_env *e, struct wt_proc *w, struct wt_conn *c, const char *policy)
{
	WT_ENV_GW_START(e, "--route", "/=chat", "--max-message", "65536", "--max-outbound", "262144",
		     "--outbound-policy", policy, NULL);
	wt_env_worker(e, w, 1, "chat", "w");
	WT_EXPECT_OPEN(c, "127.0.0.1", e->gw.port, "/");
	send_text(c, "flood:2000");
	ck_assert_msg(wt_wait_file(w->log_path, "flood ", 10000), "the worker did not flood");
}

START_TEST(test_outbound_policy_close)
{
	struct wt_env e;
	struct wt_proc w;
	struct wt_conn c;
	int got = 0, code = 0;

	wt_env_init(&e);
	flood_unread(&e, &w, &c, "close");
	for (;;) {
		struct wt_frame m;
		int rc = wt_read_message(&c, &m, 5000);

		ck_assert_msg(rc == 0, "no close 1008 after %d messages: %s", got, c.err);
		if (m.opcode == WT_CLOSE) {
			code = wt_close_code(&m);
			wt_frame_free(&m);
			break;
		}
		/* The echo of the request, then floods; or nothing: closing a client drops
		 * its queue, so the close frame is not stuck behind megabytes. */
		got += m.opcode == WT_BINARY && m.len == 16384;
		wt_frame_free(&m);
	}
	ck_assert_msg(code == 1008, "closed with %d, expected 1008", code);
	ck_assert_msg(got < 2000, "all 2000 messages arrived: the cap never applied");
	ck_assert(wt_gw_log_contains(&e.gw, "over --max-outbound: close 1008"));
	wt_close(&c);
	wt_env_worker_stop(&w);
	wt_env_done(&e);
}
END_TEST

START_TEST(test_outbound_policy_drop)
{
	struct wt_env e;
	struct wt_proc w;
	struct wt_conn c;
	struct reply r;
	int got = 0;

	wt_env_init(&e);
	flood_unread(&e, &w, &c, "drop");
	expect_reply(&c, "flood:2000", 10, &r, -1, "flood request echo");
	/* Drain what was queued; the connection stays open and works afterwards. */
	for (;;) {
		struct wt_frame m;
		int rc = wt_read_message(&c, &m, 1000);

		if (rc == -ETIMEDOUT)
			break;
		ck_assert_msg(rc == 0, "read after %d messages: %s", got, c.err);
		ck_assert_msg(m.opcode == WT_BINARY && m.len == 16384,
			      "expected a flooded message, got opcode %d (%zu bytes)", m.opcode, m.len);
		got++;
		wt_frame_free(&m);
	}
	printf("drop policy: %d of 2000 flooded messages delivered, the rest dropped\n", got);
	ck_assert_msg(got > 0 && got < 2000, "%d of 2000 arrived: expected some dropped", got);
	ck_assert(wt_gw_log_contains(&e.gw, "message dropped"));
	send_text(&c, "still here");
	expect_reply(&c, "still here", 10, &r, -1, "after the drops");
	wt_close(&c);
	wt_env_worker_stop(&w);
	wt_env_done(&e);
}
END_TEST

/* ---- 8. authorizing route ------------------------------------------------- */

START_TEST(test_authorize)
{
	struct wt_env e;
	struct wt_proc w;
	struct wt_conn c;
	struct wt_http h;
	struct reply r;
	char req[1024], val[128];
	int n;

	wt_env_init(&e);
	WT_ENV_GW_START(&e, "--route", "/auth=authp,authorize", "--authorize-timeout", "1", NULL);
	wt_env_worker(&e, &w, 1, "authp", "w");

	/* ACCEPT with a subprotocol */
	WT_OK(&c, wt_connect(&c, "127.0.0.1", e.gw.port));
	n = wt_request_build(&c, req, sizeof(req), "/auth/ok",
			     "Sec-WebSocket-Protocol: chat.v0, chat.v1\r\n");
	WT_OK(&c, wt_send_raw(&c, req, (size_t)n));
	WT_EXPECT_HTTP(&c, &h, 101);
	ck_assert_int_eq(wt_http_check_upgrade(&c, &h), 0);
	ck_assert_msg(wt_http_header(&h, "Sec-WebSocket-Protocol", val, sizeof(val)),
		      "101 without Sec-WebSocket-Protocol:\n%s", h.head);
	ck_assert_str_eq(val, "chat.v1");
	ck_assert_msg(wt_http_header(&h, "X-Test", val, sizeof(val)) && !strcmp(val, "yes"),
		      "101 without the worker's X-Test header:\n%s", h.head);
	send_text(&c, "in");
	expect_reply(&c, "in", 2, &r, -1, "accepted client");
	wt_close(&c);

	/* REJECT 403 */
	WT_OK(&c, wt_connect(&c, "127.0.0.1", e.gw.port));
	n = wt_request_build(&c, req, sizeof(req), "/auth/no", NULL);
	WT_OK(&c, wt_send_raw(&c, req, (size_t)n));
	WT_EXPECT_HTTP(&c, NULL, 403);
	wt_close(&c);

	/* no answer: 503 after --authorize-timeout */
	WT_OK(&c, wt_connect(&c, "127.0.0.1", e.gw.port));
	n = wt_request_build(&c, req, sizeof(req), "/auth/silent", NULL);
	int64_t t0 = wt_now_ms();
	WT_OK(&c, wt_send_raw(&c, req, (size_t)n));
	WT_EXPECT_HTTP(&c, NULL, 503);
	int64_t waited = wt_now_ms() - t0;
	printf("authorize: no answer → 503 after %" PRId64 " ms (--authorize-timeout 1)\n", waited);
	ck_assert_msg(waited >= 900, "503 after %" PRId64 " ms, before the 1 s timeout", waited);
	wt_close(&c);
	ck_assert_msg(wt_wait_file(w.log_path, " 1006\n", 2000),
		      "the worker got no CLOSE(1006) for the timed-out authorization");
	wt_env_worker_stop(&w);
	wt_env_done(&e);
}
END_TEST

/* ---- 9. no worker at all --------------------------------------------------- */

START_TEST(test_no_worker_503)
{
	struct wt_env e;
	struct wt_conn c;
	char req[512];

	wt_env_init(&e);
	WT_ENV_GW_START(&e, "--route", "/=chat", NULL);
	WT_OK(&c, wt_connect(&c, "127.0.0.1", e.gw.port));
	int n = wt_request_build(&c, req, sizeof(req), "/", NULL);
	WT_OK(&c, wt_send_raw(&c, req, (size_t)n));
	WT_EXPECT_HTTP(&c, NULL, 503);
	wt_close(&c);
	wt_env_done(&e);
}
END_TEST

/* ---- 10. a live, busy worker is never taken for dead ----------------------- */

#define T10_CONNS 20
#define T10_MS 3000

/*
 * Short heartbeats under steady traffic, both sides healthy: the worker must stay attached
 * as it is (no "gone", no second attach) and every message must come back in order. With
 * --heartbeat 0.05 each side hears ~60 heartbeats in the run.
 */
START_TEST(test_busy_worker_stays_attached)
{
	static struct lc l[T10_CONNS];
	struct wt_env e;
	struct wt_proc w;

	wt_env_init(&e);
	WT_ENV_GW_START(&e, "--route", "/=chat", "--heartbeat", "0.05", NULL);
	wt_env_worker(&e, &w, 0, "chat", "echo");
	memset(l, 0, sizeof(l));
	for (int i = 0; i < T10_CONNS; i++)
		WT_EXPECT_OPEN(&l[i].c, "127.0.0.1", e.gw.port, "/");
	int64_t end = wt_now_ms() + T10_MS;
	while (wt_now_ms() < end) {
		lc_round(l, T10_CONNS, 1, 5);
		if (wt_count_file(e.gw.log_path, ") gone") ||
		    wt_count_attached(e.gw.log_path, "chat", w.pid) > 1)
			break;
	}
	/* Drain: nothing may be lost (kill_seq 0: no gap allowed). */
	end = wt_now_ms() + 5000;
	for (int pending = 1; pending && wt_now_ms() < end;) {
		pending = 0;
		for (int i = 0; i < T10_CONNS; i++)
			pending += l[i].next != l[i].sent;
		if (pending)
			lc_round(l, T10_CONNS, 0, 20);
	}
	uint32_t sent = 0, echoed = 0;
	for (int i = 0; i < T10_CONNS; i++) {
		sent += l[i].sent;
		echoed += l[i].next;
	}
	int attaches = wt_count_attached(e.gw.log_path, "chat", w.pid);
	int gone = wt_count_file(e.gw.log_path, ") gone");
	printf("busy worker, heartbeat 50 ms: %u messages sent, %u echoed, %d attach(es), %d gone\n",
	       sent, echoed, attaches, gone);
	if (attaches != 1 || gone)
		wt_gw_dump_log(&e.gw, 12);
	ck_assert_msg(attaches == 1 && gone == 0,
		      "a live worker was detached under traffic: it attached %d times, %d 'gone' lines",
		      attaches, gone);
	ck_assert_msg(sent == echoed, "%u of %u messages never came back", sent - echoed, sent);
	for (int i = 0; i < T10_CONNS; i++)
		wt_close(&l[i].c);
	wt_env_worker_stop(&w);
	wt_env_done(&e);
}
END_TEST

static Suite *workers_suite(void)
{
	const struct wt_case cases[] = {
		{ "two_workers", test_two_workers_many_clients, 20, 1 },
		{ "crash", test_worker_crash_under_load, 25, 1 },
		{ "restart", test_worker_restart, 15, 1 },
		{ "orphan", test_orphan_timeout, 15, 1 },
		{ "gateway_restart", test_gateway_restart, 25, 1 },
		{ "hello_refused", test_hello_refused, 15, 1 },
		{ "stall", test_stalled_worker_backpressure, 30, 1 },
		{ "gone", test_send_to_closed_gets_gone, 15, 1 },
		{ "authorize", test_authorize, 15, 1 },
		{ "no_worker", test_no_worker_503, 10, 1 },
		{ "busy_attached", test_busy_worker_stays_attached, 20, 1 },
		{ "outbound_close", test_outbound_policy_close, 30, 1 },
		{ "outbound_drop", test_outbound_policy_drop, 30, 1 },
	};
	return WT_SUITE("workers", cases);
}

int main(int argc, char **argv)
{
	if (argc > 1 && !strcmp(argv[1], "--as-worker"))
		return wt_worker_main(argc, argv);

	return wt_run_suite(workers_suite());
}
