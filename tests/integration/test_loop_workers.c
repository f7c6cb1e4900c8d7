/*
 * --loops 2 with shm workers, against the real gateway and real libwsgw workers (the test
 * worker of tests/lib/wtproc.h, which answers "w<worker> c<conn> <o|r>|<message>"): each
 * worker is attached to one loop, every loop gets one, a connection is served by a worker
 * of the loop that owns it and keeps its messages in order; when a loop's last worker of
 * the pool dies its clients move to the other loop's and carry on; a publish reaches the
 * subscribers of every loop, in one order; and a subscriber that moves takes what was
 * queued for it and gets what was published on its way. Built with TSan, the gateway's
 * exit status tells whether the loops raced (make check-tsan).
 */
#include "tests/lib/wstest.h"
#include "tests/lib/wtadmin.h"
#include "tests/lib/wtenv.h"
#include "tests/lib/wtproc.h"

#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#define NCONN 40
#define NMSG 100
#define NPUB 200

static struct wt_env env;
static struct wt_proc wk[2];
static int wid[2];       /* worker ids, by worker */
static int wloop[2];     /* the loop each is attached to */
static struct wt_conn conns[NCONN];
static char body[1 << 20];

/* The loop /workers says worker id is attached to, or -1. */
static int loop_of_worker(const char *json, int id)
{
	char key[32];
	snprintf(key, sizeof(key), "{\"id\":%d,", id);
	const char *p = strstr(json, key);
	if (!p || !(p = strstr(p, "\"loop\":")))
		return -1;
	return atoi(p + 7);
}

/* Writes (mode "w") or appends ("a") text to the config file at path. */
static void put_conf(const char *path, const char *mode, const char *text)
{
	FILE *f = fopen(path, mode);
	ck_assert_ptr_nonnull(f);
	fputs(text, f);
	ck_assert_int_eq(fclose(f), 0);
}

static const char *admin(const char *path)
{
	const char *b;
	ck_assert_int_eq(wt_admin_get(wt_admin_port(&env.gw), path, NULL, body, sizeof(body), &b), 200);
	return b;
}

/* The gateway with two loops and two test workers of pool tw on /w. */
static void start(void)
{
	wt_env_init(&env);
	WT_ENV_GW_START(&env, "--loops", "2", "--spread-workers", "yes", "--route", "/w=tw", "--admin",
			"127.0.0.1:0", NULL);
	wid[0] = wt_env_worker(&env, &wk[0], WT_WORKER_TEST, "tw", "w0");
	wid[1] = wt_env_worker(&env, &wk[1], WT_WORKER_TEST, "tw", "w1");
	const char *w = admin("/workers");
	for (int i = 0; i < 2; i++)
		wloop[i] = loop_of_worker(w, wid[i]);
	ck_assert_msg(wloop[0] >= 0 && wloop[1] >= 0 && wloop[0] != wloop[1],
		      "each loop gets a worker: %.400s", w);
	for (int i = 0; i < NCONN; i++)
		WT_EXPECT_OPEN(&conns[i], "127.0.0.1", env.gw.port, "/w");
}

static void stop(void)
{
	wt_close_all();
	for (int i = 0; i < 2; i++)
		if (wk[i].pid)
			wt_env_worker_stop(&wk[i]);
	wt_env_gw_stop(&env);
	wt_env_done(&env);
}

/* The worker id an answer names ("w<id> c..."). */
static int answer_worker(const struct wt_frame *m)
{
	ck_assert_msg(m->len > 1 && ((const char *)m->payload)[0] == 'w', "not an answer: %.*s",
		      (int)m->len, (const char *)m->payload);
	return atoi((const char *)m->payload + 1);
}

/* Every connection sends NMSG numbered messages tagged tag, before any is read. */
static void send_round(const char *tag)
{
	char m[48];
	for (int k = 0; k < NMSG; k++)
		for (int i = 0; i < NCONN; i++) {
			int n = snprintf(m, sizeof(m), "%s %d msg %d", tag, i, k);
			WT_OK(&conns[i], wt_send_frame(&conns[i], 1, 1, m, (size_t)n));
		}
}

/* The answers to send_round(tag): each in order, from one worker per connection (*by[i]),
 * whose flag is flag. */
static void read_round(int *by, char flag, const char *tag)
{
	char m[48];
	for (int i = 0; i < NCONN; i++)
		for (int k = 0; k < NMSG; k++) {
			struct wt_frame f;
			ck_assert_int_eq(wt_read_message(&conns[i], &f, 5000), 0);
			int n = snprintf(m, sizeof(m), "%c|%s %d msg %d", flag, tag, i, k);
			const char *bar = memchr(f.payload, '|', f.len);
			ck_assert_msg(bar && f.len - (size_t)(bar - 1 - (const char *)f.payload) == (size_t)n &&
					      !memcmp(bar - 1, m, (size_t)n),
				      "conn %d answer %d: %.*s, want ...%s", i, k, (int)f.len,
				      (const char *)f.payload, m);
			int w = answer_worker(&f);
			if (k == 0)
				by[i] = w;
			ck_assert_int_eq(w, by[i]);
			wt_frame_free(&f);
		}
}

static void rounds_in_order(int *by, char flag, const char *tag)
{
	send_round(tag);
	read_round(by, flag, tag);
}

/* The loop /connections says owns the connection the worker answered for on conns[i]. */
static void expect_served_on_own_loop(const int *by)
{
	const char *b = admin("/connections");
	int on[2] = { 0, 0 };
	for (const char *p = b; (p = strstr(p, "{\"id\":")); p++) {
		const char *w = strstr(p, "\"worker\":"), *l = strstr(p, "\"loop\":");
		ck_assert_ptr_nonnull(w);
		ck_assert_ptr_nonnull(l);
		int worker = atoi(w + 9), loop = atoi(l + 7);
		int which = worker == wid[0] ? 0 : worker == wid[1] ? 1 : -1;
		ck_assert_msg(which >= 0 && wloop[which] == loop,
			      "a connection of loop %d pinned to worker %d (of loop %d)", loop, worker,
			      which >= 0 ? wloop[which] : -1);
		on[loop]++;
	}
	ck_assert_int_eq(on[0] + on[1], NCONN);
	ck_assert_msg(on[0] >= NCONN / 2 - 1 && on[1] >= NCONN / 2 - 1, "spread %d / %d", on[0], on[1]);
	int served[2] = { 0, 0 };
	for (int i = 0; i < NCONN; i++)
		served[by[i] == wid[1]]++;
	ck_assert_int_eq(served[0], on[wloop[0]]);
}

START_TEST(a_worker_on_every_loop_in_order)
{
	int by[NCONN];
	start();
	rounds_in_order(by, 'o', "conn");
	expect_served_on_own_loop(by);
	stop();
}
END_TEST

/* SIGKILL of one loop's only worker (loop 1's, then loop 0's): its clients wait, move to
 * the other loop, and its worker takes them (OPEN resumed); none is closed, and what they
 * send after the death is answered. */
START_TEST(a_loops_clients_move_when_its_worker_dies)
{
	int by[NCONN];
	start();
	rounds_in_order(by, 'o', "before");
	int dead = wloop[0] == _i % 2 ? 0 : 1, left = !dead;
	pid_t pid = wk[dead].pid;
	ck_assert_int_eq(wt_proc_kill(&wk[dead], SIGKILL), 0);
	ck_assert_int_eq(wt_proc_reap(&wk[dead], 5000), 0);
	ck_assert(wt_wait_gone(env.gw.log_path, "tw", pid, 5000));
	ck_assert(wt_wait_file(env.gw.log_path, "moved to another loop's", 5000));
	/* The moved ones are answered "r" (resumed), the others "o": one round each way. */
	char m[48];
	for (int i = 0; i < NCONN; i++) {
		int n = snprintf(m, sizeof(m), "after %d", i);
		WT_OK(&conns[i], wt_send_frame(&conns[i], 1, 1, m, (size_t)n));
	}
	int moved = 0;
	for (int i = 0; i < NCONN; i++) {
		struct wt_frame f;
		ck_assert_int_eq(wt_read_message(&conns[i], &f, 5000), 0);
		ck_assert_int_eq(answer_worker(&f), wid[left]);
		const char *bar = memchr(f.payload, '|', f.len);
		ck_assert_ptr_nonnull(bar);
		ck_assert_int_eq(bar[-1], by[i] == wid[dead] ? 'r' : 'o');
		moved += by[i] == wid[dead];
		wt_frame_free(&f);
	}
	ck_assert_int_ge(moved, NCONN / 2 - 1);
	const char *b = admin("/connections");
	ck_assert_msg(!strstr(b, wloop[dead] ? "\"loop\":1," : "\"loop\":0,"),
		      "a connection stayed on the dead worker's loop: %.300s", b);
	ck_assert_msg(strstr(b, "\"total\":40,"), "%.200s", b);
	stop();
}
END_TEST

/* Every client subscribes; clients on both loops publish at once: each subscriber,
 * whatever its loop, gets every message once, all in the same order. */
START_TEST(a_publish_reaches_every_loop_in_one_order)
{
	int by[NCONN];
	start();
	rounds_in_order(by, 'o', "hi");
	for (int i = 0; i < NCONN; i++) {
		WT_OK(&conns[i], wt_send_frame(&conns[i], 1, 1, "sub:room", 8));
		struct wt_frame f;
		ck_assert_int_eq(wt_read_message(&conns[i], &f, 5000), 0);
		wt_frame_free(&f);
	}
	char m[48];
	for (int k = 0; k < NPUB; k++) {
		int from = k % NCONN;
		int n = snprintf(m, sizeof(m), "pub:room:P%d from %d", k, from);
		WT_OK(&conns[from], wt_send_frame(&conns[from], 1, 1, m, (size_t)n));
	}
	static int order[NPUB];
	for (int i = 0; i < NCONN; i++) {
		int seen[NPUB] = { 0 };
		for (int next = 0; next < NPUB;) {
			struct wt_frame f;
			ck_assert_msg(wt_read_message(&conns[i], &f, 5000) == 0,
				      "subscriber %d: message %d never came", i, next);
			const char *p = (const char *)f.payload;
			if (p[0] != 'w') { /* not a publisher's own answer */
				int k = p[0] == 'P' ? atoi(p + 1) : -1;
				ck_assert_msg(k >= 0 && k < NPUB && !seen[k]++, "subscriber %d: %.*s (twice?)",
					      i, (int)f.len, p);
				if (i == 0)
					order[next] = k;
				ck_assert_msg(order[next] == k, "subscriber %d got P%d where subscriber 0 got P%d",
					      i, k, order[next]);
				next++;
			}
			wt_frame_free(&f);
		}
	}
	stop();
}
END_TEST

/* Both workers die: every client waits, on its own loop. A new worker is attached to
 * loop 0; loop 1's clients move to it, and it takes all of them (OPEN resumed). */
START_TEST(waiting_clients_of_every_loop_go_to_a_new_worker)
{
	int by[NCONN];
	start();
	rounds_in_order(by, 'o', "before");
	for (int i = 0; i < 2; i++) {
		pid_t pid = wk[i].pid;
		ck_assert_int_eq(wt_proc_kill(&wk[i], SIGKILL), 0);
		ck_assert_int_eq(wt_proc_reap(&wk[i], 5000), 0);
		ck_assert(wt_wait_gone(env.gw.log_path, "tw", pid, 5000));
	}
	char m[48];
	for (int i = 0; i < NCONN; i++) { /* kept for them while they wait */
		int n = snprintf(m, sizeof(m), "waiting %d", i);
		WT_OK(&conns[i], wt_send_frame(&conns[i], 1, 1, m, (size_t)n));
	}
	int fresh = wt_env_worker(&env, &wk[0], WT_WORKER_TEST, "tw", "w2");
	ck_assert_int_eq(loop_of_worker(admin("/workers"), fresh), 0);
	for (int i = 0; i < NCONN; i++) {
		struct wt_frame f;
		ck_assert_msg(wt_read_message(&conns[i], &f, 5000) == 0, "client %d was not answered", i);
		int n = snprintf(m, sizeof(m), "r|waiting %d", i);
		const char *bar = memchr(f.payload, '|', f.len);
		ck_assert_int_eq(answer_worker(&f), fresh);
		ck_assert_msg(bar && f.len - (size_t)(bar - 1 - (const char *)f.payload) == (size_t)n &&
				      !memcmp(bar - 1, m, (size_t)n),
			      "client %d: %.*s", i, (int)f.len, (const char *)f.payload);
		wt_frame_free(&f);
	}
	const char *b = admin("/connections");
	ck_assert_msg(!strstr(b, "\"loop\":1,"), "a client stayed on loop 1: %.300s", b);
	stop();
}
END_TEST

/* POST /upgrade?path=BIN on the gateway's admin port: the status, the body in out. */
static int post_upgrade(char *out, size_t cap, const char **b)
{
	char bin[256], req[512];
	wt_build_path(bin, sizeof(bin), "wsgw");
	snprintf(req, sizeof(req), "POST /upgrade?path=%s HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n", bin);
	return wt_admin_raw(wt_admin_port(&env.gw), req, out, cap, b);
}

/* A live upgrade with messages in flight on both loops: every worker follows to the new
 * gateway on the loop it had, attached once; every answer comes in order from the worker
 * that served the connection before, and each connection stays on its loop. */
START_TEST(an_upgrade_hands_over_every_loop)
{
	int by[NCONN], after[NCONN];
	char out[4096];
	const char *b;
	prctl(PR_SET_CHILD_SUBREAPER, 1); /* the new gateway is the old one's child */
	start();
	rounds_in_order(by, 'o', "before");
	send_round("across");
	ck_assert_int_eq(post_upgrade(out, sizeof(out), &b), 200);
	int pid = 0;
	const char *p = strstr(b, "\"pid\":");
	ck_assert_msg(strstr(b, "\"upgraded\":true") && p && (pid = atoi(p + 6)) > 0, "%s", b);
	ck_assert_int_eq(wt_gw_wait(&env.gw, 10000), 0);
	int st = env.gw.status;
	ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "the old gateway exited with %d", st);
	env.gw.pid = pid;
	wt_track_gateway(pid);
	read_round(after, 'o', "across");
	for (int i = 0; i < NCONN; i++)
		ck_assert_msg(after[i] == by[i], "conn %d: worker %d before, %d after", i, by[i], after[i]);
	rounds_in_order(after, 'o', "after");
	const char *w = admin("/workers");
	for (int i = 0; i < 2; i++) {
		ck_assert_int_eq(loop_of_worker(w, wid[i]), wloop[i]);
		ck_assert_int_eq(wt_count_attached(env.gw.log_path, "tw", wk[i].pid), 1);
	}
	expect_served_on_own_loop(by);
	stop();
}
END_TEST

/* The new gateway's config has one loop: it cannot take loop 1's worker, so the upgrade is
 * refused with the reason and nothing moves; the clients go on where they were. */
START_TEST(an_upgrade_to_fewer_loops_is_refused)
{
	int by[NCONN], after[NCONN];
	char path[256], out[4096];
	const char *b;
	wt_env_init(&env);
	snprintf(path, sizeof(path), "%s/wsgw.conf", env.dir);
	put_conf(path, "w", "[gateway]\nloops = 2\nspread-workers = yes\n[route /w]\npool = tw\n");
	WT_ENV_GW_START(&env, "--config", path, "--admin", "127.0.0.1:0", NULL);
	wid[0] = wt_env_worker(&env, &wk[0], WT_WORKER_TEST, "tw", "w0");
	wid[1] = wt_env_worker(&env, &wk[1], WT_WORKER_TEST, "tw", "w1");
	const char *w = admin("/workers");
	for (int i = 0; i < 2; i++)
		wloop[i] = loop_of_worker(w, wid[i]);
	for (int i = 0; i < NCONN; i++)
		WT_EXPECT_OPEN(&conns[i], "127.0.0.1", env.gw.port, "/w");
	rounds_in_order(by, 'o', "before");
	put_conf(path, "w", "[gateway]\nloops = 1\nspread-workers = yes\n[route /w]\npool = tw\n");
	send_round("across");
	int code = post_upgrade(out, sizeof(out), &b);
	if (code != 500 || !strstr(b, "on a loop this configuration"))
		wt_dump("gateway", env.gw.log_path, 30);
	ck_assert_int_eq(code, 500);
	ck_assert_msg(strstr(b, "on a loop this configuration does not serve workers on"), "%s", b);
	ck_assert_msg(strstr(b, ") on loop 1: "), "the answer names the worker's loop: %s", b);
	read_round(after, 'o', "across");
	rounds_in_order(after, 'o', "after");
	for (int i = 0; i < NCONN; i++)
		ck_assert_int_eq(after[i], by[i]);
	expect_served_on_own_loop(by);
	stop();
}
END_TEST

/* A SIGHUP that adds a worker pool reaches every loop's route map (spread-workers off, so
 * only loop 0 takes workers): a request for the new route read on loop 1 goes to the new
 * pool's worker. */
START_TEST(a_reload_adds_a_pool_on_every_loop)
{
	char path[256];
	wt_env_init(&env);
	snprintf(path, sizeof(path), "%s/wsgw.conf", env.dir);
	put_conf(path, "w", "[gateway]\nloops = 2\n[route /e]\npool = echo\n[route /w]\npool = tw\n");
	WT_ENV_GW_START(&env, "--config", path, "--admin", "127.0.0.1:0", NULL);
	put_conf(path, "a", "[route /n]\npool = fresh\n");
	ck_assert_int_eq(kill(env.gw.pid, SIGHUP), 0);
	ck_assert(wt_wait_file(env.gw.log_path, "SIGHUP: reloaded", 5000));
	wt_sleep_ms(100); /* the other loop takes the settings at its next iteration */
	ck_assert_msg(!wt_gw_log_contains(&env.gw, "routes not changed"), "a loop kept its old routes");
	wid[0] = wt_env_worker(&env, &wk[0], WT_WORKER_TEST, "fresh", "w0");
	/* Each built-in connection first, so that loop 1 owns the fewest when the next
	 * request comes: it reads every other /n request. */
	for (int i = 0; i < NCONN; i++) {
		WT_EXPECT_OPEN(&conns[i], "127.0.0.1", env.gw.port, i % 2 ? "/n" : "/e");
		WT_OK(&conns[i], wt_send_frame(&conns[i], 1, 1, "x", 1));
		struct wt_frame m;
		ck_assert_int_eq(wt_read_message(&conns[i], &m, 5000), 0);
		if (i % 2)
			ck_assert_int_eq(answer_worker(&m), wid[0]);
		else
			ck_assert(m.len == 1 && ((const char *)m.payload)[0] == 'x');
		wt_frame_free(&m);
	}
	stop();
}
END_TEST

#define NBIG 192
#define BIG 32000

/* Published message k: "P<k> " and then letters that depend on k and their place. */
static void big_msg(char *out, int k)
{
	int n = snprintf(out, 16, "P%d ", k);
	for (size_t i = (size_t)n; i < BIG; i++)
		out[i] = (char)('a' + (i * 7 + (size_t)k) % 26);
}

static void expect_big(const struct wt_frame *f, int k, const char *who)
{
	static char want[BIG];
	big_msg(want, k);
	ck_assert_msg(f->len == BIG && !memcmp(f->payload, want, BIG),
		      "%s: message %d is not what was published: %.12s... (%zu bytes)", who, k,
		      (const char *)f->payload, f->len);
}

/* Sends "x" on c: the answer's worker id, and the connection id in *cid. */
static int who_serves(struct wt_conn *c, unsigned long long *cid)
{
	struct wt_frame f;
	WT_OK(c, wt_send_frame(c, 1, 1, "x", 1));
	ck_assert_int_eq(wt_read_message(c, &f, 5000), 0);
	int w = answer_worker(&f);
	const char *p = memchr(f.payload, 'c', f.len);
	ck_assert_ptr_nonnull(p);
	*cid = strtoull(p + 1, NULL, 10);
	wt_frame_free(&f);
	return w;
}

/* The queued_bytes /connections reports for connection cid. */
static long queued_of(unsigned long long cid)
{
	char key[48];
	snprintf(key, sizeof(key), "{\"id\":%llu,", cid);
	const char *p = strstr(admin("/connections"), key), *q = p ? strstr(p, "\"queued_bytes\":") : NULL;
	ck_assert_msg(q, "no connection %llu in /connections", cid);
	return atol(q + 15);
}

static void subscribe(struct wt_conn *c)
{
	struct wt_frame f;
	WT_OK(c, wt_send_frame(c, 1, 1, "sub:t", 5));
	ck_assert_int_eq(wt_read_message(c, &f, 5000), 0);
	wt_frame_free(&f);
}

/* A subscriber that reads nothing, with megabytes of published messages queued, moves
 * when its loop's worker dies; the frames it queued are shared with another slow
 * subscriber that stays on that loop (another pool's). Both then get every message, whole
 * and in order, and each loop touches only its own frames' counts (ThreadSanitizer, make
 * check-tsan, saw both loops count the same references before the move copied them). */
START_TEST(a_slow_subscriber_moves_with_its_queue)
{
	static struct wt_proc qk[2];
	static struct wt_conn q[8];
	static char m[BIG + 8];
	int qid[2];
	unsigned long long cid, s_id = 0;
	wt_env_init(&env);
	WT_ENV_GW_START(&env, "--loops", "2", "--spread-workers", "yes", "--route", "/w=tw", "--route",
			"/q=tq", "--admin", "127.0.0.1:0", NULL);
	wid[0] = wt_env_worker(&env, &wk[0], WT_WORKER_TEST, "tw", "w0");
	wid[1] = wt_env_worker(&env, &wk[1], WT_WORKER_TEST, "tw", "w1");
	qid[0] = wt_env_worker(&env, &qk[0], WT_WORKER_TEST, "tq", "q0");
	qid[1] = wt_env_worker(&env, &qk[1], WT_WORKER_TEST, "tq", "q1");
	const char *w = admin("/workers");
	for (int i = 0; i < 2; i++)
		wloop[i] = loop_of_worker(w, wid[i]);
	int q1 = loop_of_worker(w, qid[0]) == 1 ? qid[0] : qid[1];
	ck_assert_msg(wloop[0] != wloop[1] && loop_of_worker(w, q1) == 1, "each pool on each loop: %.400s", w);
	int dead = wloop[0] == 1 ? 0 : 1;
	struct wt_conn *slow = NULL, *other = NULL, *pub = NULL;
	for (int i = 0; i < NCONN && !slow; i++) {
		WT_EXPECT_OPEN(&conns[i], "127.0.0.1", env.gw.port, "/w");
		if (who_serves(&conns[i], &cid) == wid[dead]) {
			slow = &conns[i];
			s_id = cid;
		}
	}
	for (int i = 0; i < 8 && !pub; i++) {
		WT_EXPECT_OPEN(&q[i], "127.0.0.1", env.gw.port, "/q");
		if (who_serves(&q[i], &cid) == q1)
			*(other ? &pub : &other) = &q[i];
	}
	ck_assert_msg(slow && other && pub, "loop 1 serves a client of each pool");
	/* Little room in the kernel: most of what is published stays in the gateway's queues. */
	int small = 64 << 10;
	ck_assert_int_eq(setsockopt(slow->fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small)), 0);
	ck_assert_int_eq(setsockopt(other->fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small)), 0);
	subscribe(slow);
	subscribe(other);
	subscribe(pub);
	for (int k = 0; k < NBIG; k++) {
		memcpy(m, "pub:t:", 6);
		big_msg(m + 6, k);
		WT_OK(pub, wt_send_frame(pub, 1, 1, m, BIG + 6));
		for (int got = 0; got < 2; got++) { /* its answer and the published message */
			struct wt_frame f;
			ck_assert_int_eq(wt_read_message(pub, &f, 5000), 0);
			if (f.payload[0] == 'P')
				expect_big(&f, k, "the publisher");
			wt_frame_free(&f);
		}
	}
	ck_assert_msg(queued_of(s_id) > 0, "the slow subscriber has nothing queued: the test shows nothing");
	pid_t pid = wk[dead].pid;
	ck_assert_int_eq(wt_proc_kill(&wk[dead], SIGKILL), 0);
	ck_assert_int_eq(wt_proc_reap(&wk[dead], 5000), 0);
	ck_assert(wt_wait_gone(env.gw.log_path, "tw", pid, 5000));
	ck_assert(wt_wait_file(env.gw.log_path, "moved to another loop's", 5000));
	for (int k = 0; k < NBIG; k++) {
		struct wt_frame f;
		ck_assert_msg(wt_read_message(slow, &f, 10000) == 0, "the moved subscriber: %d never came", k);
		expect_big(&f, k, "the moved subscriber");
		wt_frame_free(&f);
		ck_assert_msg(wt_read_message(other, &f, 10000) == 0, "the one that stayed: %d never came", k);
		expect_big(&f, k, "the one that stayed");
		wt_frame_free(&f);
	}
	for (int i = 0; i < 2; i++)
		wt_env_worker_stop(&qk[i]);
	stop();
}
END_TEST

#define NSTREAM 4000
#define INFLIGHT 200
#define NSUB (NCONN + 160)

/* One publisher streams numbered messages to NSUB subscribers while loop 1's worker dies
 * and that loop's subscribers move to loop 0, the publisher's: a message published
 * while a subscriber is between the loops waits for it there. Every subscriber gets
 * every message, in order (they were counted in publish_dropped instead). */
START_TEST(a_publish_while_subscribers_move_reaches_them)
{
	static struct wt_conn more[NSUB - NCONN], pubs[8];
	struct wt_conn *sub[NSUB], *pub = NULL;
	int by[NCONN], moves[NSUB], moving = 0;
	unsigned long long cid;
	char m[48];
	start();
	rounds_in_order(by, 'o', "hi");
	int dead = wloop[0] == 1 ? 0 : 1;
	for (int i = 0; i < NSUB; i++) {
		sub[i] = i < NCONN ? &conns[i] : &more[i - NCONN];
		if (i >= NCONN)
			WT_EXPECT_OPEN(sub[i], "127.0.0.1", env.gw.port, "/w");
		subscribe(sub[i]);
		moving += moves[i] = (i < NCONN ? by[i] : who_serves(sub[i], &cid)) == wid[dead];
	}
	/* Not a subscriber, and it reads its answers as it goes: a client that reads
	 * nothing stops being read (its output over the high mark). */
	for (int i = 0; i < 8 && !pub; i++) {
		WT_EXPECT_OPEN(&pubs[i], "127.0.0.1", env.gw.port, "/w");
		if (who_serves(&pubs[i], &cid) == wid[!dead])
			pub = &pubs[i];
	}
	ck_assert_msg(pub && moving > 0, "clients on both loops");
	pid_t pid = wk[dead].pid;
	for (int k = 0, answered = 0; answered < NSTREAM;) {
		if (k < NSTREAM && k - answered < INFLIGHT) {
			if (k == NSTREAM / 4)
				ck_assert_int_eq(wt_proc_kill(&wk[dead], SIGKILL), 0);
			int n = snprintf(m, sizeof(m), "pub:t:P%d", k++);
			WT_OK(pub, wt_send_frame(pub, 1, 1, m, (size_t)n));
			continue;
		}
		struct wt_frame f;
		ck_assert_int_eq(wt_read_message(pub, &f, 10000), 0);
		wt_frame_free(&f);
		answered++;
	}
	ck_assert_int_eq(wt_proc_reap(&wk[dead], 5000), 0);
	ck_assert(wt_wait_gone(env.gw.log_path, "tw", pid, 5000));
	ck_assert(wt_wait_file(env.gw.log_path, "moved to another loop's", 5000));
	for (int i = 0; i < NSUB; i++) {
		for (int next = 0; next < NSTREAM; next++) {
			struct wt_frame f;
			ck_assert_msg(wt_read_message(sub[i], &f, 10000) == 0, "subscriber %d (%s): P%d never came",
				      i, moves[i] ? "moved" : "stayed", next);
			char p[16] = ""; /* the payload is not a string */
			memcpy(p, f.payload, f.len < sizeof(p) - 1 ? f.len : sizeof(p) - 1);
			ck_assert_msg(p[0] == 'P' && atoi(p + 1) == next, "subscriber %d (%s): %s where P%d was next",
				      i, moves[i] ? "moved" : "stayed", p, next);
			wt_frame_free(&f);
		}
	}
	stop();
}
END_TEST

/* A permessage-deflate client on /w, its compressor's window 2^9. */
static void open_deflate(struct wt_conn *c)
{
	char req[1024];
	WT_OK(c, wt_connect(c, "127.0.0.1", env.gw.port));
	int n = wt_request_build(c, req, sizeof(req), "/w",
				 "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits=9\r\n");
	WT_OK(c, wt_send_raw(c, req, (size_t)n));
	struct wt_http h;
	ck_assert_int_eq(wt_http_read(c, &h), 101);
}

/* Work for c's loop: nmsg compressed messages, each inflating to a megabyte that its
 * worker answers and the loop compresses again. A few KiB on the wire. */
static void send_inflating(struct wt_conn *c, int nmsg)
{
	static uint8_t zeros[1000000], out[16384];
	z_stream z;
	memset(&z, 0, sizeof(z));
	ck_assert_int_eq(deflateInit2(&z, 9, Z_DEFLATED, -9, 8, Z_DEFAULT_STRATEGY), Z_OK);
	z.next_in = zeros;
	z.avail_in = sizeof(zeros);
	z.next_out = out;
	z.avail_out = sizeof(out);
	ck_assert_int_eq(deflate(&z, Z_SYNC_FLUSH), Z_OK);
	ck_assert(z.avail_in == 0 && z.avail_out > 0);
	struct wt_frame_spec f = { .opcode = WT_BINARY, .fin = 1, .rsv = 4, .payload = out,
				   .len = sizeof(out) - z.avail_out - 4 /* without 00 00 ff ff */ };
	deflateEnd(&z);
	for (int i = 0; i < nmsg; i++)
		WT_OK(c, wt_send_spec(c, &f));
}

/* The operator kicks the clients of loop 0's worker as it dies and they move to loop 1,
 * busy with a client's compressed megabytes: the kicks meet the clients between the loops.
 * Every kick is answered 200 and reaches its client (a kick found a moving client on no
 * loop, or was asked of the loop it had just left, and was lost). */
START_TEST(a_kick_follows_a_client_moving_between_loops)
{
	enum { NKICK = 16 }; /* the admin's connections at once */
	static struct wt_conn dc[2];
	char req[NKICK][128], out[4096];
	int adm[NKICK], who[NKICK], n = 0;
	unsigned long long cid;
	start();
	int dead = wloop[0] == 0 ? 0 : 1; /* loop 0 runs the admin, and the kicks */
	/* New connections go to the loop with fewer: one of two is on loop 1. */
	struct wt_conn *busy = NULL;
	for (int i = 0; i < 2; i++) {
		open_deflate(&dc[i]);
		if (who_serves(&dc[i], &cid) == wid[!dead])
			busy = &dc[i];
	}
	ck_assert_msg(busy, "a client on the other loop");
	for (int i = 0; i < NCONN && n < NKICK; i++) {
		if (who_serves(&conns[i], &cid) != wid[dead])
			continue;
		snprintf(req[n], sizeof(req[n]), "POST /connections/%llu/close?code=4000 HTTP/1.1\r\n"
			 "Host: x\r\nContent-Length: 0\r\n\r", cid);
		adm[n] = wt_admin_open(wt_admin_port(&env.gw));
		ck_assert_int_ge(adm[n], 0);
		ck_assert_int_eq(write(adm[n], req[n], strlen(req[n])), (ssize_t)strlen(req[n]));
		who[n++] = i;
	}
	ck_assert_msg(n > 0, "loop 0's worker serves some clients");
	send_inflating(busy, 16);
	/* The last byte of each request goes once the clients left, loop 1 still busy. */
	pid_t pid = wk[dead].pid;
	ck_assert_int_eq(wt_proc_kill(&wk[dead], SIGKILL), 0);
	ck_assert_int_eq(wt_proc_reap(&wk[dead], 5000), 0);
	for (int64_t end = wt_now_ms() + 5000; !wt_count_file(env.gw.log_path, "moved to another loop's");)
		ck_assert_msg(wt_now_ms() < end, "loop 0's clients move");
	for (int k = 0; k < n; k++)
		ck_assert_int_eq(write(adm[k], "\n", 1), 1);
	for (int k = 0; k < n; k++) {
		const char *b;
		int status = wt_admin_answer(adm[k], out, sizeof(out), &b);
		ck_assert_msg(status == 200, "kick %d of %d: HTTP %d", k, n, status);
	}
	for (int k = 0; k < n; k++) {
		WT_EXPECT_CLOSE(&conns[who[k]], 4000);
		wt_close(&conns[who[k]]);
	}
	ck_assert(wt_wait_gone(env.gw.log_path, "tw", pid, 5000));
	stop();
}
END_TEST

int main(int argc, char **argv)
{
	if (argc > 1 && !strcmp(argv[1], "--as-worker"))
		return wt_worker_main(argc, argv);
	const struct wt_case cases[] = {
		{ "a_worker_on_every_loop_in_order", a_worker_on_every_loop_in_order, 60, 0 },
		{ "a_loops_clients_move_when_its_worker_dies", a_loops_clients_move_when_its_worker_dies, 60, 2 },
		{ "a_publish_reaches_every_loop_in_one_order", a_publish_reaches_every_loop_in_one_order, 60, 0 },
		{ "waiting_clients_of_every_loop_go_to_a_new_worker", waiting_clients_of_every_loop_go_to_a_new_worker, 60, 0 },
		{ "an_upgrade_hands_over_every_loop", an_upgrade_hands_over_every_loop, 60, 0 },
		{ "an_upgrade_to_fewer_loops_is_refused", an_upgrade_to_fewer_loops_is_refused, 60, 0 },
		{ "a_reload_adds_a_pool_on_every_loop", a_reload_adds_a_pool_on_every_loop, 60, 0 },
		{ "a_slow_subscriber_moves_with_its_queue", a_slow_subscriber_moves_with_its_queue, 60, 0 },
		{ "a_publish_while_subscribers_move_reaches_them", a_publish_while_subscribers_move_reaches_them, 120, 0 },
		{ "a_kick_follows_a_client_moving_between_loops", a_kick_follows_a_client_moving_between_loops, 60, 0 },
	};
	return wt_run_suite(WT_SUITE("loop_workers", cases));
}
