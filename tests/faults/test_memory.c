/*
 * Memory and resource attacks (issue "Trust nothing a worker or client sends"): clients
 * and workers that try to make the gateway hold memory without limit, or hold its
 * handshake slots, against a real gateway. Each asserts the gateway's RSS stays within a
 * bound computed from the limits given, and that everyone else is served meanwhile.
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

#define MIB (1024 * 1024)

/* The gateway's RSS growth since base, in MiB. */
static long grown_mib(pid_t pid, long base_kib)
{
	long now = wt_proc_rss_kib(pid);

	ck_assert_msg(now > 0, "cannot read the gateway's RSS");
	return (now - base_kib) / 1024;
}

/* Asserts the growth is within bound MiB: the memory limits' whole point. Under
 * sanitizers the quarantine of freed memory dominates RSS, so only the behaviour is
 * checked there. */
#define EXPECT_GROWN_BELOW(grown, bound, ...) do { \
		if (!wt_sanitized()) \
			ck_assert_msg((grown) < (bound), __VA_ARGS__); \
	} while (0)

/* A frame on its own, masked, as wt_send_spec would send it; caller frees. */
static uint8_t *frame(int opcode, int fin, size_t len, size_t *out_len)
{
	uint8_t *p = malloc(len ? len : 1);

	memset(p, 'a', len);
	struct wt_frame_spec s = { .opcode = opcode, .fin = fin, .payload = p, .len = len };
	uint8_t *f = wt_frame_encode(&s, out_len);
	free(p);
	return f;
}

/* ---- partial messages past the budget --------------------------------------- */

#define P_CLIENTS 200
#define P_PART (512 * 1024)
#define P_BUDGET (16 * MIB)

START_TEST(test_partial_messages)
{
	static struct wt_conn c[P_CLIENTS], ok[5];
	struct wt_gw gw;
	char budget[32];
	size_t fl;

	snprintf(budget, sizeof(budget), "%d", P_BUDGET);
	WT_GW_START(&gw, "--route", "/=echo", "--memory-budget", budget, NULL);
	long base = wt_proc_rss_kib(gw.pid);
	uint8_t *part = frame(WT_TEXT, 0, P_PART, &fl);
	/* Each client starts a message and never finishes it. */
	for (int i = 0; i < P_CLIENTS; i++) {
		WT_EXPECT_OPEN(&c[i], "127.0.0.1", gw.port, "/");
		c[i].timeout_ms = 2000;
		WT_OK(&c[i], wt_send_raw(&c[i], part, fl));
	}
	free(part);
	int closed = 0, held = 0;
	for (int i = 0; i < P_CLIENTS; i++) {
		struct wt_frame f;
		int rc = wt_read_frame(&c[i], &f, 300);
		if (rc == 0 && f.opcode == WT_CLOSE) {
			ck_assert_int_eq(wt_close_code(&f), 1009);
			closed++;
		} else if (rc == -ETIMEDOUT) {
			held++;
		}
		if (rc == 0)
			wt_frame_free(&f);
	}
	long grown = grown_mib(gw.pid, base);
	printf("partial messages: %d clients held %d KiB each, %d closed with 1009; RSS grew %ld MiB (budget %d MiB, %d MiB asked for)\n",
	       held, P_PART / 1024, closed, grown, P_BUDGET / MIB, P_CLIENTS * P_PART / MIB);
	ck_assert_msg(held > 0 && held * P_PART <= P_BUDGET + P_PART, "%d held", held);
	ck_assert_int_eq(held + closed, P_CLIENTS);
	EXPECT_GROWN_BELOW(grown, P_BUDGET / MIB + 16, "RSS grew %ld MiB with a %d MiB budget",
			   grown, P_BUDGET / MIB);
	/* Nothing else is affected: whole messages need no assembly. */
	for (int i = 0; i < 5; i++)
		WT_EXPECT_OPEN(&ok[i], "127.0.0.1", gw.port, "/");
	wt_echo_round(ok, 5, 0, "while held");
	ck_assert(wt_gw_log_contains(&gw, "--memory-budget"));
	wt_close_all();
	WT_GW_STOP(&gw);
}
END_TEST

/* ---- clients that never read ---------------------------------------------- */

#define N_FLOOD 100
#define N_READERS 20
#define N_BUDGET (32 * MIB)

START_TEST(test_never_reading_clients)
{
	static struct wt_conn flood[N_FLOOD], rd[N_READERS];
	struct wt_gw gw;
	char budget[32];
	size_t fl;

	snprintf(budget, sizeof(budget), "%d", N_BUDGET);
	WT_GW_START(&gw, "--route", "/=echo", "--memory-budget", budget, NULL);
	for (int i = 0; i < N_READERS; i++)
		WT_EXPECT_OPEN(&rd[i], "127.0.0.1", gw.port, "/");
	long base = wt_proc_rss_kib(gw.pid);
	/* 8 MiB of messages, echoed to a client that reads none of them: more than the kernel
	 * buffers of both ends take, so the rest would stay in the gateway. */
	uint8_t *one = frame(WT_BINARY, 1, 32 * 1024, &fl);
	uint8_t *burst = malloc(256 * fl);
	for (int k = 0; k < 256; k++)
		memcpy(burst + (size_t)k * fl, one, fl);
	free(one);
	for (int i = 0; i < N_FLOOD; i++) {
		/* A small receive buffer: the echoes it does not read stay in the gateway. */
		wt_set_rcvbuf(4096);
		WT_EXPECT_OPEN(&flood[i], "127.0.0.1", gw.port, "/");
		wt_set_rcvbuf(0);
		flood[i].timeout_ms = 200; /* as much as the gateway takes before it pauses */
		wt_send_raw(&flood[i], burst, 256 * fl);
		if (i % 20 == 19)
			wt_echo_round(rd, N_READERS, i, "during the flood");
	}
	free(burst);
	wt_sleep_ms(500);
	for (int r = 0; r < 5; r++)
		wt_echo_round(rd, N_READERS, 1000 + r, "after the flood");
	long grown = grown_mib(gw.pid, base);
	/* The budget stops them, as their echoes queue (1008) or as their next message would
	 * have to be assembled (1009), whichever comes first. */
	int closed = wt_gw_log_contains(&gw, "--memory-budget");
	printf("never-reading clients: %d flooders asked for %d MiB of echoes; RSS grew %ld MiB (budget %d MiB); readers kept every echo\n",
	       N_FLOOD, N_FLOOD * 8, grown, N_BUDGET / MIB);
	ck_assert_msg(closed, "no flooder was closed for the budget");
	EXPECT_GROWN_BELOW(grown, N_BUDGET / MIB + 32, "RSS grew %ld MiB with a %d MiB budget",
			   grown, N_BUDGET / MIB);
	wt_close_all();
	WT_GW_STOP(&gw);
}
END_TEST

/* ---- a worker that floods commands and never takes its ring ---------------- */

#define W_SHARE (1 * MIB)

START_TEST(test_worker_flood_shm)
{
	static struct wt_conn ok[10];
	struct wt_env e;
	struct wt_proc a;
	struct wt_shm_peer h;
	char share[32];
	static uint8_t body[1024];

	snprintf(share, sizeof(share), "%d", W_SHARE);
	wt_env_init(&e);
	WT_ENV_GW_START(&e, "--route", "/=p", "--worker-memory", share, "--max-message", "4096",
			"--ring-size", "65536", NULL);
	wt_env_worker(&e, &a, WT_WORKER_ECHO, "p", "healthy");
	for (int i = 0; i < 10; i++)
		WT_EXPECT_OPEN(&ok[i], "127.0.0.1", e.gw.port, "/");
	ck_assert_int_eq(wt_shm_peer_attach(&h, e.control, "p"), 0);
	long base = wt_proc_rss_kib(e.gw.pid);
	/* SENDs for connections that do not exist: each earns a GONE in a ring it never reads. */
	int64_t end = wt_now_ms() + 5000;
	uint64_t sent = 0;
	while (wt_now_ms() < end && !wt_gw_log_contains(&e.gw, "over --worker-memory")) {
		for (int k = 0; k < 64; k++) {
			if (shm_ring_push(&h.to_gw, WSGW_SEND, 0, 0x7fff000000000000ull + sent, body,
					  sizeof(body)))
				break;
			sent++;
		}
		shm_ring_notify(&h.to_gw);
		wt_shm_peer_ring(&h);
		wt_sleep_ms(1);
	}
	long grown = grown_mib(e.gw.pid, base);
	printf("shm flood: %llu SENDs to unknown ids; RSS grew %ld MiB; the worker was dropped: %d\n",
	       (unsigned long long)sent, grown, wt_gw_log_contains(&e.gw, "over --worker-memory"));
	ck_assert_msg(wt_gw_log_contains(&e.gw, "over --worker-memory"),
		      "the flooding worker was not dropped within 5 s");
	EXPECT_GROWN_BELOW(grown, 16, "RSS grew %ld MiB for a worker share of 1 MiB", grown);
	wt_echo_round(ok, 10, 0, "after the flood");
	wt_gw_expect_alive(&e.gw);
	wt_shm_peer_close(&h);
	wt_close_all();
	wt_env_worker_stop(&a);
	wt_env_done(&e);
}
END_TEST

START_TEST(test_worker_flood_zmq)
{
	struct wt_env e;
	struct wt_ctl r;
	struct wt_ctl_msg m;
	char share[32];

	snprintf(share, sizeof(share), "%d", W_SHARE);
	wt_env_init(&e);
	WT_ENV_GW_START(&e, "--route", "/=p", "--worker-memory", share, NULL);
	ck_assert_int_eq(wt_ctl_connect(&r, e.control), 0);
	ck_assert_int_eq(wt_ctl_hello(&r, "p", "zmq", &m, 5000), 0);
	wt_ctl_msg_free(&m);
	long base = wt_proc_rss_kib(e.gw.pid);
	int64_t end = wt_now_ms() + 8000;
	uint64_t sent = 0;
	while (wt_now_ms() < end && !wt_gw_log_contains(&e.gw, "over --worker-memory")) {
		for (int k = 0; k < 1000; k++) {
			uint64_t be = htobe64(0x7fff000000000000ull + sent);
			const char *f[] = { "SEND", (const char *)&be, "text", "x" };
			size_t l[] = { 4, 8, 4, 1 };
			if (wt_ctl_send(&r, 4, f, l))
				break;
			sent++;
		}
		wt_sleep_ms(2);
	}
	long grown = grown_mib(e.gw.pid, base);
	printf("zmq flood: %llu SENDs to unknown ids, no GONE read; RSS grew %ld MiB\n",
	       (unsigned long long)sent, grown);
	ck_assert_msg(wt_gw_log_contains(&e.gw, "over --worker-memory"),
		      "the flooding zmq worker was not dropped within 8 s");
	EXPECT_GROWN_BELOW(grown, 32, "RSS grew %ld MiB", grown);
	wt_gw_expect_alive(&e.gw);
	wt_ctl_close(&r);
	wt_env_done(&e);
}
END_TEST

/* ---- a zmq frame larger than any command --------------------------------- */

START_TEST(test_zmq_huge_frame)
{
	static struct wt_conn ok[5];
	struct wt_env e;
	struct wt_proc z;
	struct wt_ctl r;
	struct wt_ctl_msg m;

	wt_env_init(&e);
	WT_ENV_GW_START(&e, "--route", "/=p", NULL);
	wt_env_worker(&e, &z, WT_WORKER_ZMQ, "p", "healthy");
	for (int i = 0; i < 5; i++)
		WT_EXPECT_OPEN(&ok[i], "127.0.0.1", e.gw.port, "/");
	ck_assert_int_eq(wt_ctl_connect(&r, e.control), 0);
	ck_assert_int_eq(wt_ctl_hello(&r, "p", "zmq", &m, 5000), 0);
	wt_ctl_msg_free(&m);
	long base = wt_proc_rss_kib(e.gw.pid);
	size_t big = 100u * MIB;
	char *payload = malloc(big);
	memset(payload, 'x', big);
	uint64_t be = htobe64(1);
	const char *f[] = { "SEND", (const char *)&be, "text", payload };
	size_t l[] = { 4, 8, 4, big };
	ck_assert_int_eq(wt_ctl_send(&r, 4, f, l), 0);
	wt_sleep_ms(1500);
	free(payload);
	long grown = grown_mib(e.gw.pid, base);
	printf("a 100 MiB zmq frame: RSS grew %ld MiB\n", grown);
	EXPECT_GROWN_BELOW(grown, 20, "RSS grew %ld MiB for a frame the gateway refuses", grown);
	wt_echo_round(ok, 5, 0, "after the big frame");
	wt_gw_expect_alive(&e.gw);
	wt_ctl_close(&r);
	wt_close_all();
	wt_env_worker_stop(&z);
	wt_env_done(&e);
}
END_TEST

/* ---- slowloris ----------------------------------------------------------- */

#define S_CONNS 2000

START_TEST(test_slowloris)
{
	static struct wt_conn slow[S_CONNS], ok[10];
	struct wt_gw gw;
	char req[512];
	struct rlimit rl;

	/* This process needs a socket per slow client too. */
	getrlimit(RLIMIT_NOFILE, &rl);
	rl.rlim_cur = rl.rlim_max;
	setrlimit(RLIMIT_NOFILE, &rl);
	ck_assert_msg(rl.rlim_cur > S_CONNS + 100, "RLIMIT_NOFILE %llu is too small",
		      (unsigned long long)rl.rlim_cur);
	WT_GW_START(&gw, "--route", "/=echo", "--handshake-timeout", "2", NULL);
	int64_t start = wt_now_ms();
	for (int i = 0; i < S_CONNS; i++)
		WT_OK(&slow[i], wt_connect(&slow[i], "127.0.0.1", gw.port));
	ck_assert_int_gt(wt_request_build(&slow[0], req, sizeof(req), "/", NULL), 4);
	/* One byte a second each, never a whole request; new clients come and go meanwhile. */
	for (int sec = 0; sec < 4; sec++) {
		for (int i = 0; i < S_CONNS; i++)
			if (!slow[i].eof)
				wt_send_raw(&slow[i], req + sec, 1);
		for (int i = 0; i < 10; i++)
			WT_EXPECT_OPEN(&ok[i], "127.0.0.1", gw.port, "/");
		wt_echo_round(ok, 10, sec, "beside the slow clients");
		for (int i = 0; i < 10; i++)
			wt_close(&ok[i]);
		wt_sleep_ms(1000);
	}
	int cut = 0;
	for (int i = 0; i < S_CONNS; i++)
		cut += wt_wait_eof(&slow[i], 3000) == 0;
	printf("slowloris: %d of %d one-byte-a-second clients cut within %lld ms (handshake timeout 2 s); normal clients served meanwhile\n",
	       cut, S_CONNS, (long long)(wt_now_ms() - start));
	ck_assert_int_eq(cut, S_CONNS);
	wt_close_all();
	WT_GW_STOP(&gw);
}
END_TEST

static Suite *memory_suite(void)
{
	const struct wt_case cases[] = {
		{ "partial_messages", test_partial_messages, 30, 1 },
		{ "never_reading", test_never_reading_clients, 60, 1 },
		{ "worker_flood_shm", test_worker_flood_shm, 30, 1 },
		{ "worker_flood_zmq", test_worker_flood_zmq, 30, 1 },
		{ "zmq_huge_frame", test_zmq_huge_frame, 30, 1 },
		{ "slowloris", test_slowloris, 40, 1 },
	};
	return WT_SUITE("memory", cases);
}

int main(int argc, char **argv)
{
	if (argc > 1 && !strcmp(argv[1], "--as-zmq-worker"))
		return wt_zw_main(argc, argv);

	return wt_run_suite(memory_suite());
}
