/*
 * Fault tests: workers and clients that do what they must not, and a gateway that must
 * keep serving everyone else (issue "Workers fail, clients don't"). Real gateway, real
 * workers, real sockets; hostile workers speak the control channel by hand (wtctl.h).
 */
#include <check.h>
#include <dirent.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <endian.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tests/lib/wtadmin.h"
#include "tests/lib/wtctl.h"
#include "tests/lib/wtenv.h"
#include "wsgw/protocol.h"

/* An idle gateway sleeps until its next sweep: a handful of wake-ups a second, not one
 * per millisecond (a stuck "poll for ring space" flag). */
static void expect_idle(struct wt_gw *gw, const char *what)
{
	long a = wt_proc_wakeups(gw->pid);
	wt_sleep_ms(1000);
	long b = wt_proc_wakeups(gw->pid);

	ck_assert_msg(a >= 0 && b >= 0, "cannot read the gateway's context switches");
	printf("%s: %ld wake-ups in 1 s while idle\n", what, b - a);
	ck_assert_msg(b - a < 100, "%s: the idle gateway woke %ld times in 1 s (busy polling)", what,
		      b - a);
}

/* ---- 1. a worker corrupts its to-gateway ring ------------------------------ */

#define C1_HEALTHY 20
#define C1_VICTIMS 5

static const char *const corruptions[] = {
	"a record with a bad length",
	"random records",
	"the head moved backwards",
	"the head moved forwards past the capacity",
};

static void corrupt(struct wt_shm_peer *h, int how)
{
	struct shm_ring *r = &h->to_gw;
	uint64_t tail = atomic_load(&r->ctl->tail);

	switch (how) {
	case 0: {
		struct shm_rec_hdr bad = { .len = 0x7fffffffu, .type = WSGW_SEND, .conn = 1 };

		memcpy(r->data + (tail & r->mask), &bad, sizeof(bad));
		atomic_store(&r->ctl->head, tail + 64);
		break;
	}
	case 1:
		srandom(42);
		for (uint64_t i = 0; i < 4096; i++)
			r->data[(tail + i) & r->mask] = (unsigned char)random();
		atomic_store(&r->ctl->head, tail + 4096);
		break;
	case 2:
		atomic_store(&r->ctl->head, tail - 64);
		break;
	default:
		atomic_store(&r->ctl->head, tail + r->cap + 4096);
	}
	wt_shm_peer_ring(h);
}

START_TEST(test_corrupt_ring)
{
	static struct wt_conn ok[C1_HEALTHY], victim[C1_VICTIMS];
	struct wt_env e;
	struct wt_proc a;
	struct wt_shm_peer h;

	wt_env_init(&e);
	WT_ENV_GW_START(&e, "--route", "/=p", NULL);
	wt_env_worker(&e, &a, WT_WORKER_ECHO, "p", "healthy");
	for (int i = 0; i < C1_HEALTHY; i++)
		WT_EXPECT_OPEN(&ok[i], "127.0.0.1", e.gw.port, "/");
	wt_echo_round(ok, C1_HEALTHY, 0, "before");

	ck_assert_int_eq(wt_shm_peer_attach(&h, e.control, "p"), 0);
	/* The hostile worker has no connections: the next ones are pinned to it. */
	for (int i = 0; i < C1_VICTIMS; i++) {
		WT_EXPECT_OPEN(&victim[i], "127.0.0.1", e.gw.port, "/");
		WT_OK(&victim[i], wt_send_frame(&victim[i], WT_TEXT, 1, "unread", 6));
	}
	wt_sleep_ms(100);
	corrupt(&h, _i);
	int noticed = wt_wait_file(e.gw.log_path, "corrupt", 3000);
	wt_gw_expect_alive(&e.gw);
	ck_assert_msg(noticed, "the gateway did not log that the ring was corrupt (%s)",
		      corruptions[_i]);

	for (int round = 1; round <= 10; round++)
		wt_echo_round(ok, C1_HEALTHY, round, "after");
	/* The hostile worker's clients moved to the healthy one, their message with them. */
	for (int i = 0; i < C1_VICTIMS; i++)
		WT_EXPECT_MESSAGE(&victim[i], WT_TEXT, "unread", 6);
	wt_echo_round(victim, C1_VICTIMS, 1, "moved");
	wt_gw_expect_alive(&e.gw);
	printf("corrupt ring (%s): %d + %d clients kept every connection and message\n",
	       corruptions[_i], C1_HEALTHY, C1_VICTIMS);
	wt_shm_peer_close(&h);
	wt_env_worker_stop(&a);
	wt_env_done(&e);
}
END_TEST

/* ---- 1b. a worker tries to shrink or grow what the gateway maps ---------- */

START_TEST(test_truncate_segment)
{
	static struct wt_conn ok[C1_HEALTHY], victim[C1_VICTIMS];
	struct wt_env e;
	struct wt_proc a;
	struct wt_shm_peer h;
	static const off_t sizes[] = { 0, 1, 4097, 1 << 30 };

	wt_env_init(&e);
	WT_ENV_GW_START(&e, "--route", "/=p", NULL);
	wt_env_worker(&e, &a, WT_WORKER_ECHO, "p", "healthy");
	for (int i = 0; i < C1_HEALTHY; i++)
		WT_EXPECT_OPEN(&ok[i], "127.0.0.1", e.gw.port, "/");
	ck_assert_int_eq(wt_shm_peer_attach(&h, e.control, "p"), 0);
	for (int i = 0; i < C1_VICTIMS; i++)
		WT_EXPECT_OPEN(&victim[i], "127.0.0.1", e.gw.port, "/");
	/* The segment and the doorbell page are sealed memfds: no size change is allowed. */
	for (int f = 0; f < 2; f++)
		for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
			errno = 0;
			ck_assert_msg(ftruncate(h.fds[f], sizes[i]) < 0 && errno == EPERM,
				      "ftruncate(%s, %lld) was allowed (%s)", f ? "doorbell" : "segment",
				      (long long)sizes[i], strerror(errno));
		}
	ck_assert_msg(fcntl(h.fds[0], F_ADD_SEALS, F_SEAL_WRITE) < 0 && errno == EPERM,
		      "the seals can still be changed");
	/* Its own mapping is its own business: unmapping it changes nothing for the gateway. */
	ck_assert_int_eq(munmap(shm_seg_base(h.seg), shm_seg_header(h.seg)->seg_size), 0);
	for (int i = 0; i < C1_VICTIMS; i++)
		WT_OK(&victim[i], wt_send_frame(&victim[i], WT_TEXT, 1, "to a worker that unmapped", 25));
	wt_echo_round(ok, C1_HEALTHY, 1, "after");
	wt_gw_expect_alive(&e.gw);
	/* It never answers, so it dies of silence; its clients move on with their messages. */
	wt_ctl_close(&h.ctl);
	for (int i = 0; i < C1_VICTIMS; i++)
		WT_EXPECT_MESSAGE_T(&victim[i], WT_TEXT, "to a worker that unmapped", 25, 10000);
	wt_gw_expect_alive(&e.gw);
	wt_shm_peer_close(&h); /* unmapping what is no longer mapped is harmless */
	wt_env_worker_stop(&a);
	wt_env_done(&e);
}
END_TEST

/* ---- 2. BYE and HELLO bursts ---------------------------------------------- */

#define C2_CONNS 10

START_TEST(test_control_bursts)
{
	static struct wt_conn c[C2_CONNS];
	struct wt_env e;
	struct wt_proc z;
	struct wt_ctl r;
	struct wt_ctl_msg m;

	wt_env_init(&e);
	WT_ENV_GW_START(&e, "--route", "/=p", NULL);
	/* A live zmq worker: flushing its output once made the gateway read input. */
	wt_env_worker(&e, &z, WT_WORKER_ZMQ, "p", "zmq");
	for (int i = 0; i < C2_CONNS; i++)
		WT_EXPECT_OPEN(&c[i], "127.0.0.1", e.gw.port, "/");
	wt_echo_round(c, C2_CONNS, 0, "before");

	for (int round = 0; round < 5; round++) {
		const char *bye[] = { "BYE" };

		ck_assert_int_eq(wt_ctl_connect(&r, e.control), 0);
		ck_assert_int_eq(wt_ctl_hello(&r, "p", round % 2 ? "shm" : "zmq", &m, 5000), 0);
		wt_ctl_msg_free(&m);
		ck_assert_int_eq(wt_ctl_send(&r, 1, bye, NULL), 0);
		ck_assert_int_eq(wt_ctl_send(&r, 1, bye, NULL), 0);
		ck_assert_int_eq(wt_ctl_send(&r, 1, bye, NULL), 0);
		wt_sleep_ms(50);
		wt_ctl_close(&r);
		wt_gw_expect_alive(&e.gw);
	}
	/* Three HELLOs in one burst from one socket: each re-attaches; one attachment stays. */
	ck_assert_int_eq(wt_ctl_connect(&r, e.control), 0);
	char version[8], pid[16];
	snprintf(version, sizeof(version), "%d", WSGW_PROTOCOL_VERSION);
	snprintf(pid, sizeof(pid), "%d", (int)getpid());
	const char *hello[] = { "HELLO", version, "p", "zmq", pid };
	for (int i = 0; i < 3; i++)
		ck_assert_int_eq(wt_ctl_send(&r, 5, hello, NULL), 0);
	for (int i = 0; i < 3; i++) {
		ck_assert_int_eq(wt_ctl_recv_verb(&r, "WELCOME", &m, 5000), 0);
		wt_ctl_msg_free(&m);
	}
	wt_gw_expect_alive(&e.gw);
	wt_echo_round(c, C2_CONNS, 1, "after");
	const char *bye[] = { "BYE" };
	wt_ctl_send(&r, 1, bye, NULL);
	wt_ctl_close(&r);
	wt_env_worker_stop(&z);
	wt_env_done(&e);
}
END_TEST

/* ---- 3. SIGTERM of zmq workers under load, 30 times ------------------------- */

#define C3_CONNS 40
#define C3_KILLS 30

/* Reads whatever arrived for a client within ms: echoes of messages sent earlier. */
static void drain(struct wt_conn *c, int ms)
{
	struct wt_frame m;

	while (wt_read_message(c, &m, ms) == 0) {
		ck_assert_msg(m.opcode == WT_TEXT, "got opcode %d (close code %d) during the storm",
			      m.opcode, m.opcode == WT_CLOSE ? wt_close_code(&m) : 0);
		wt_frame_free(&m);
		ms = 0;
	}
}

START_TEST(test_sigterm_zmq_under_load)
{
	static struct wt_conn c[C3_CONNS];
	struct wt_env e;
	struct wt_proc z[2];
	char msg[64], name[32];

	wt_env_init(&e);
	WT_ENV_GW_START(&e, "--route", "/=p", NULL);
	wt_env_worker(&e, &z[0], WT_WORKER_ZMQ, "p", "z0");
	wt_env_worker(&e, &z[1], WT_WORKER_ZMQ, "p", "z1");
	for (int i = 0; i < C3_CONNS; i++)
		WT_EXPECT_OPEN(&c[i], "127.0.0.1", e.gw.port, "/");
	wt_echo_round(c, C3_CONNS, 0, "before");

	for (int k = 0; k < C3_KILLS; k++) {
		struct wt_proc *victim = &z[k % 2];

		for (int burst = 0; burst < 4; burst++)
			for (int i = 0; i < C3_CONNS; i++) {
				int len = snprintf(msg, sizeof(msg), "k%d b%d c%d", k, burst, i);

				WT_OK(&c[i], wt_send_frame(&c[i], WT_TEXT, 1, msg, (size_t)len));
			}
		/* It says BYE and exits at once: BYE and the pidfd arrive together. */
		ck_assert_int_eq(wt_proc_kill(victim, SIGTERM), 0);
		ck_assert_int_eq(wt_proc_reap(victim, 5000), 0);
		wt_gw_expect_alive(&e.gw);
		snprintf(name, sizeof(name), "z%d-%d", k % 2, k);
		wt_env_worker(&e, victim, WT_WORKER_ZMQ, "p", name);
		for (int i = 0; i < C3_CONNS; i++)
			drain(&c[i], 1);
	}
	for (int i = 0; i < C3_CONNS; i++)
		drain(&c[i], 200);
	wt_echo_round(c, C3_CONNS, 1, "after");
	wt_gw_expect_alive(&e.gw);
	expect_idle(&e.gw, "after 30 worker SIGTERMs");
	for (int i = 0; i < 2; i++)
		wt_env_worker_stop(&z[i]);
	wt_env_done(&e);
}
END_TEST

/* ---- 4. the fd limit ------------------------------------------------------ */

#define C4_SLOTS 20

static int count_fds(pid_t pid)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
	DIR *d = opendir(path);
	int n = 0;

	if (!d)
		return -1;
	while (readdir(d))
		n++;
	closedir(d);
	return n - 2;
}

START_TEST(test_fd_exhaustion)
{
	static struct wt_conn c[2 * C4_SLOTS], fresh[C4_SLOTS / 2];
	struct wt_gw gw;
	char req[512];

	WT_GW_START(&gw, "--route", "/=echo", NULL);
	int base = count_fds(gw.pid);
	ck_assert_int_gt(base, 0);
	struct rlimit rl = { (rlim_t)(base + C4_SLOTS), (rlim_t)(base + C4_SLOTS) };
	ck_assert_msg(prlimit(gw.pid, RLIMIT_NOFILE, &rl, NULL) == 0, "prlimit: %s", strerror(errno));

	/* Twice as many clients as there are fds: the later ones cannot be accepted. */
	int opened = 0;
	for (int i = 0; i < 2 * C4_SLOTS; i++) {
		WT_OK(&c[i], wt_connect(&c[i], "127.0.0.1", gw.port));
		int n = wt_request_build(&c[i], req, sizeof(req), "/", NULL);
		WT_OK(&c[i], wt_send_raw(&c[i], req, (size_t)n));
	}
	for (int i = 0; i < 2 * C4_SLOTS; i++) {
		struct wt_http r;
		c[i].timeout_ms = 300;
		if (wt_http_read(&c[i], &r) == 101)
			opened++;
	}
	printf("fd limit: %d of %d clients got 101 with %d fds free\n", opened, 2 * C4_SLOTS, C4_SLOTS);
	ck_assert_int_gt(opened, 0);
	ck_assert_int_lt(opened, 2 * C4_SLOTS);

	double t0 = wt_proc_cpu_s(gw.pid);
	wt_sleep_ms(2000);
	double used = wt_proc_cpu_s(gw.pid) - t0;
	printf("fd limit: the gateway used %.0f%% of a core while it could not accept\n", used * 50);
	ck_assert_msg(used < 0.2, "the gateway used %.2f s of CPU in 2 s at the fd limit", used);
	int lines = wt_count_file(gw.log_path, "accept");
	ck_assert_msg(lines <= 10, "%d log lines about accept errors in 2 s", lines);
	wt_gw_expect_alive(&gw);

	/* Clients leave: the gateway accepts again. */
	for (int i = 0; i < 2 * C4_SLOTS; i++)
		wt_close(&c[i]);
	/* Until the gateway retries (within a second), a new client may still be shed. */
	for (int i = 0; i < C4_SLOTS / 2; i++) {
		int64_t end = wt_now_ms() + 5000;
		int rc;
		while ((rc = wt_open(&fresh[i], "127.0.0.1", gw.port, "/")) != 0 && wt_now_ms() < end) {
			wt_close(&fresh[i]);
			wt_sleep_ms(100);
		}
		ck_assert_msg(rc == 0, "client %d not served after fds were freed: %s", i, fresh[i].err);
	}
	wt_echo_round(fresh, C4_SLOTS / 2, 0, "fresh");
	for (int i = 0; i < C4_SLOTS / 2; i++)
		wt_close(&fresh[i]);
	WT_GW_STOP(&gw);
}
END_TEST

/* ---- 5. an OPEN that would not fit the ring ------------------------------- */

START_TEST(test_ring_too_small_for_headers)
{
	char dir[128], log[192];
	int status;

	ck_assert_int_eq(wt_dir_new(dir, sizeof(dir)), 0);
	snprintf(log, sizeof(log), "%s/gw.log", dir);
	const char *build = getenv("WSGW_BUILD");
	char prog[512], control[200];
	snprintf(prog, sizeof(prog), "%s/wsgw", build && *build ? build : "build");
	snprintf(control, sizeof(control), "ipc://%s/control", dir);
	const char *argv[] = { prog, "--listen", "127.0.0.1:0", "--route", "/=p", "--control", control,
			       "--ring-size", "65536", "--max-header", "65536", "--max-message", "4096",
			       NULL };
	struct wt_proc p;
	ck_assert_int_eq(wt_proc_spawn(&p, argv, log), 0);
	ck_assert_msg(wt_proc_reap(&p, 5000) == 0, "a gateway whose ring cannot hold an OPEN started");
	status = p.status;
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 2, "exit status %d", status);
	ck_assert_msg(wt_count_file(log, "--max-header"), "the error does not name --max-header");
	wt_dir_remove(dir);

	/* Without --ring-size the ring is sized for the largest OPEN: one arrives whole. */
	struct wt_env e;
	struct wt_proc w;
	struct wt_conn c;
	static char extra[60 * 1024], req[64 * 1024];
	wt_env_init(&e);
	WT_ENV_GW_START(&e, "--route", "/=p", "--max-header", "65536", "--max-message", "4096", NULL);
	wt_env_worker(&e, &w, WT_WORKER_TEST, "p", "w");
	int n = snprintf(extra, sizeof(extra), "Cookie: ");
	memset(extra + n, 'k', sizeof(extra) - (size_t)n - 200);
	n = (int)sizeof(extra) - 200;
	n += snprintf(extra + n, sizeof(extra) - (size_t)n, "\r\n");
	WT_OK(&c, wt_connect(&c, "127.0.0.1", e.gw.port));
	int len = wt_request_build(&c, req, sizeof(req), "/big", extra);
	ck_assert_int_gt(len, 0);
	WT_OK(&c, wt_send_raw(&c, req, (size_t)len));
	WT_EXPECT_HTTP(&c, NULL, 101);
	{
		WT_OK(&c, wt_send_frame(&c, WT_TEXT, 1, "hi", 2));
		struct wt_frame m;
		WT_OK(&c, wt_read_message(&c, &m, -1));
		ck_assert_msg(m.len > 3 && memmem(m.payload, m.len, " o|hi", 5),
			      "the worker did not see the OPEN first: %.*s", (int)m.len, (char *)m.payload);
		wt_frame_free(&m);
	}
	wt_close(&c);
	wt_env_worker_stop(&w);
	wt_env_done(&e);
}
END_TEST

/* ---- 6. an ACCEPT with many headers; over-long commands ------------------- */

START_TEST(test_accept_many_headers)
{
	struct wt_env e;
	struct wt_ctl r;
	struct wt_ctl_msg m;
	struct wt_conn c;
	struct wt_http h;
	char req[1024], val[64];

	wt_env_init(&e);
	WT_ENV_GW_START(&e, "--route", "/a=authp,authorize", NULL);
	ck_assert_int_eq(wt_ctl_connect(&r, e.control), 0);
	ck_assert_int_eq(wt_ctl_hello(&r, "authp", "zmq", &m, 5000), 0);
	wt_ctl_msg_free(&m);

	WT_OK(&c, wt_connect(&c, "127.0.0.1", e.gw.port));
	int n = wt_request_build(&c, req, sizeof(req), "/a", NULL);
	WT_OK(&c, wt_send_raw(&c, req, (size_t)n));
	ck_assert_int_eq(wt_ctl_recv_verb(&r, "OPEN", &m, 5000), 0);
	char id[8];
	memcpy(id, m.f[1], 8);
	wt_ctl_msg_free(&m);

	static char hdr[40][32];
	const char *f[3 + 40];
	size_t l[3 + 40];
	f[0] = "ACCEPT", l[0] = 6;
	f[1] = id, l[1] = 8;
	f[2] = "", l[2] = 0;
	for (int i = 0; i < 40; i++) {
		snprintf(hdr[i], sizeof(hdr[i]), "X-H-%d: v%d", i, i);
		f[3 + i] = hdr[i], l[3 + i] = strlen(hdr[i]);
	}
	ck_assert_int_eq(wt_ctl_send(&r, 43, f, l), 0);
	WT_EXPECT_HTTP(&c, &h, 101);
	ck_assert_msg(wt_http_header(&h, "X-H-39", val, sizeof(val)) && !strcmp(val, "v39"),
		      "the 40th header is missing from the 101");
	wt_close(&c);

	/* A command with far too many frames is answered, not dropped in silence. */
	const char *big[100];
	for (int i = 0; i < 100; i++)
		big[i] = i == 0 ? "SEND" : "x";
	ck_assert_int_eq(wt_ctl_send(&r, 100, big, NULL), 0);
	ck_assert_msg(wt_ctl_recv_verb(&r, "ERROR", &m, 3000) == 0,
		      "no ERROR for a 100-frame command");
	printf("100-frame command: ERROR %s\n", m.n > 1 ? m.f[1] : "");
	wt_ctl_msg_free(&m);
	ck_assert(wt_count_file(e.gw.log_path, "frames"));
	wt_ctl_close(&r);
	wt_env_done(&e);
}
END_TEST

/* ---- 6b. text a client could not take: invalid UTF-8 from a worker --------- */

START_TEST(test_worker_invalid_utf8)
{
	struct wt_env e;
	struct wt_ctl r;
	struct wt_ctl_msg m;
	struct wt_conn c;
	char id[8];
	static const char bad[] = "ok \xed\xa0\x80 no"; /* a surrogate */

	wt_env_init(&e);
	WT_ENV_GW_START(&e, "--route", "/=p", NULL);
	ck_assert_int_eq(wt_ctl_connect(&r, e.control), 0);
	ck_assert_int_eq(wt_ctl_hello(&r, "p", "zmq", &m, 5000), 0);
	wt_ctl_msg_free(&m);
	WT_EXPECT_OPEN(&c, "127.0.0.1", e.gw.port, "/");
	ck_assert_int_eq(wt_ctl_recv_verb(&r, "OPEN", &m, 5000), 0);
	memcpy(id, m.f[1], 8);
	wt_ctl_msg_free(&m);
	const char *sub[] = { "SUBSCRIBE", id, "t" };
	size_t subl[] = { 9, 8, 1 };
	ck_assert_int_eq(wt_ctl_send(&r, 3, sub, subl), 0);

	/* SEND, PUBLISH and SENDMANY of bad text: each refused to the worker, and the client
	 * gets none of them; the same bytes as binary, and good text, go through. */
	const char *send[] = { "SEND", id, "text", bad };
	size_t sendl[] = { 4, 8, 4, sizeof(bad) - 1 };
	const char *pub[] = { "PUBLISH", "t", "text", bad };
	size_t publ[] = { 7, 1, 4, sizeof(bad) - 1 };
	const char *many[] = { "SENDMANY", "text", bad, id };
	size_t manyl[] = { 8, 4, sizeof(bad) - 1, 8 };
	const char *const *cmds[] = { send, pub, many };
	const size_t *lens[] = { sendl, publ, manyl };
	const int nf[] = { 4, 4, 4 };
	for (int i = 0; i < 3; i++) {
		ck_assert_int_eq(wt_ctl_send(&r, nf[i], cmds[i], lens[i]), 0);
		ck_assert_int_eq(wt_ctl_recv_verb(&r, "ERROR", &m, 3000), 0);
		ck_assert_msg(m.n > 1 && strstr(m.f[1], "not valid UTF-8"), "ERROR %s", m.n > 1 ? m.f[1] : "");
		wt_ctl_msg_free(&m);
	}
	const char *bin[] = { "SEND", id, "binary", bad };
	size_t binl[] = { 4, 8, 6, sizeof(bad) - 1 };
	ck_assert_int_eq(wt_ctl_send(&r, 4, bin, binl), 0);
	WT_EXPECT_MESSAGE(&c, WT_BINARY, bad, sizeof(bad) - 1);
	const char *good[] = { "SEND", id, "text", "fine" };
	size_t goodl[] = { 4, 8, 4, 4 };
	ck_assert_int_eq(wt_ctl_send(&r, 4, good, goodl), 0);
	WT_EXPECT_MESSAGE(&c, WT_TEXT, "fine", 4);

	/* CLOSE with a bad reason: the client is closed with the code, without the reason. */
	const char *cl[] = { "CLOSE", id, "4000", bad };
	size_t cll[] = { 5, 8, 4, sizeof(bad) - 1 };
	ck_assert_int_eq(wt_ctl_send(&r, 4, cl, cll), 0);
	struct wt_frame f;
	WT_OK(&c, wt_read_message(&c, &f, -1));
	ck_assert_int_eq(f.opcode, WT_CLOSE);
	ck_assert_int_eq(wt_close_code(&f), 4000);
	ck_assert_uint_eq(f.len, 2);
	wt_frame_free(&f);
	ck_assert_int_eq(wt_ctl_recv_verb(&r, "ERROR", &m, 3000), 0);
	wt_ctl_msg_free(&m);
	ck_assert_int_eq(wt_count_file(e.gw.log_path, "not valid UTF-8"), 4);
	wt_close(&c);
	wt_ctl_close(&r);
	wt_env_done(&e);
}
END_TEST

/* ---- 7. permissions by construction --------------------------------------- */

/* Starts the gateway on a control socket in dir; returns its exit status if it exits within
 * 2 s, or -1 while it runs (it is stopped then). */
static int gateway_in(const char *dir, const char *log)
{
	char prog[512], control[200];
	const char *build = getenv("WSGW_BUILD");
	snprintf(prog, sizeof(prog), "%s/wsgw", build && *build ? build : "build");
	snprintf(control, sizeof(control), "ipc://%s/control", dir);
	const char *argv[] = { prog, "--listen", "127.0.0.1:0", "--route", "/=p", "--control", control,
			       "--runtime-dir", dir, NULL };
	struct wt_proc p;
	ck_assert_int_eq(wt_proc_spawn(&p, argv, log), 0);
	if (wt_proc_reap(&p, 2000) == 0)
		return p.status;
	ck_assert(wt_wait_file(log, "control channel on", 3000));
	char sock[256];
	struct stat st;
	snprintf(sock, sizeof(sock), "%s/control", dir);
	ck_assert_int_eq(stat(sock, &st), 0);
	ck_assert_msg((st.st_mode & 0777) == 0600, "control socket mode 0%o under umask 000",
		      st.st_mode & 0777);
	snprintf(sock, sizeof(sock), "%s/control.fds", dir);
	ck_assert_int_eq(stat(sock, &st), 0);
	ck_assert_msg((st.st_mode & 0777) == 0600, "attach socket mode 0%o under umask 000",
		      st.st_mode & 0777);
	wt_proc_stop(&p, 5000);
	return -1;
}

START_TEST(test_permissions)
{
	char dir[128], log[192];

	ck_assert_int_eq(wt_dir_new(dir, sizeof(dir)), 0);
	snprintf(log, sizeof(log), "%s.log", dir);
	/* Whatever the umask, the sockets get the mode configured (0600 by default). */
	mode_t old = umask(0);
	ck_assert_int_eq(gateway_in(dir, log), -1);
	/* A runtime directory others may write to, or another user's, is refused. */
	ck_assert_int_eq(chmod(dir, 0777), 0);
	int st = gateway_in(dir, log);
	ck_assert_msg(st > 0 && WIFEXITED(st) && WEXITSTATUS(st) != 0,
		      "a gateway started in a world-writable runtime directory (status %d)", st);
	ck_assert(wt_count_file(log, "only its owner may write"));
	ck_assert_int_eq(chmod(dir, 0700), 0);
	ck_assert_int_eq(chown(dir, 65534, (gid_t)-1), 0);
	st = gateway_in(dir, log);
	ck_assert_msg(st > 0 && WIFEXITED(st) && WEXITSTATUS(st) != 0,
		      "a gateway started in another user's runtime directory (status %d)", st);
	ck_assert_int_eq(chown(dir, getuid(), (gid_t)-1), 0);
	umask(old);
	unlink(log);
	wt_dir_remove(dir);
}
END_TEST

/* ---- 8. zmq workers die with messages queued to them: nothing is lost ------ */

/* What one client sent (tagged "c<i> s<seq>") and what came back. Delivery to a dead
 * zmq worker's clients is at least once: each seq must come back, first deliveries in
 * order; a second delivery (the dead worker handled it but had not acknowledged it) is
 * counted, not failed. */
struct tally {
	int id, sent, last_first, dups, disorder;
	unsigned char got[4096];
};

static void tally_send(struct wt_conn *c, struct tally *t)
{
	char msg[48];
	int len = snprintf(msg, sizeof(msg), "c%d s%d", t->id, t->sent);

	ck_assert_int_lt(t->sent, (int)sizeof(t->got));
	WT_OK(c, wt_send_frame(c, WT_TEXT, 1, msg, (size_t)len));
	t->sent++;
}

/* Reads what arrived within ms (then without waiting) into t. */
static void tally_drain(struct wt_conn *c, struct tally *t, int ms)
{
	struct wt_frame m;

	while (wt_read_message(c, &m, ms) == 0) {
		int id = -1, seq = -1;
		char text[48];
		ck_assert_msg(m.opcode == WT_TEXT, "client %d: opcode %d (close code %d)", t->id,
			      m.opcode, m.opcode == WT_CLOSE ? wt_close_code(&m) : 0);
		/* The payload has no NUL after it: sscanf on it read the heap's next bytes as
		 * more digits ("c1 s2" taken for "c1 s27"), and failed now and then. */
		memcpy(text, m.payload, m.len < sizeof(text) ? m.len : 0);
		text[m.len < sizeof(text) ? m.len : 0] = 0;
		ck_assert_msg(m.len < 48 && sscanf(text, "c%d s%d", &id, &seq) == 2 &&
			      id == t->id && seq >= 0 && seq < t->sent,
			      "client %d: unexpected echo '%.*s'", t->id, (int)m.len, (char *)m.payload);
		if (t->got[seq]++ == 0) {
			t->disorder += seq < t->last_first;
			t->last_first = seq;
		} else {
			t->dups++;
		}
		wt_frame_free(&m);
		ms = 0;
	}
}

static int tally_missing(const struct tally *t)
{
	int n = 0;
	for (int i = 0; i < t->sent; i++)
		n += !t->got[i];
	return n;
}

/* Drains every client until all came back (within ms), then a little more for late
 * duplicates; sums the tallies. */
static void tally_finish(struct wt_conn *c, struct tally *t, int n, int ms, int *lost, int *dups,
			 int *disorder)
{
	int64_t end = wt_now_ms() + ms;
	int missing;

	do {
		missing = 0;
		for (int i = 0; i < n; i++) {
			tally_drain(&c[i], &t[i], 1);
			missing += tally_missing(&t[i]);
		}
	} while (missing && wt_now_ms() < end);
	for (int i = 0; i < n; i++)
		tally_drain(&c[i], &t[i], i ? 1 : 200);
	*lost = *dups = *disorder = 0;
	for (int i = 0; i < n; i++) {
		*lost += tally_missing(&t[i]);
		*dups += t[i].dups;
		*disorder += t[i].disorder;
	}
}

/* Records the gateway handed from dead workers to new owners, from its log lines. */
static long handed_over(const char *log_path)
{
	char line[512];
	long n = 0, v;
	FILE *f = fopen(log_path, "re");

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		const char *p = strstr(line, "connections moved");
		if (p && (p = strchr(p, ',')) && sscanf(p, ", %ld unconsumed", &v) == 1)
			n += v;
	}
	fclose(f);
	return n;
}

#define C7_CONNS 40
#define C7_KILLS 10
#define C7_BURST 16
#define ZMQ_WINDOW 1024 /* the gateway's default --zmq-window */

START_TEST(test_sigkill_zmq_under_load)
{
	static struct wt_conn c[C7_CONNS];
	static struct tally t[C7_CONNS];
	struct wt_env e;
	struct wt_proc z[2];
	char name[32];
	int total = 0, lost, dups, disorder;

	memset(t, 0, sizeof(t));
	wt_env_init(&e);
	WT_ENV_GW_START(&e, "--route", "/=p", NULL);
	wt_env_worker(&e, &z[0], WT_WORKER_ZMQ, "p", "z0");
	wt_env_worker(&e, &z[1], WT_WORKER_ZMQ, "p", "z1");
	for (int i = 0; i < C7_CONNS; i++) {
		WT_EXPECT_OPEN(&c[i], "127.0.0.1", e.gw.port, "/");
		t[i].id = i;
	}
	for (int k = 0; k < C7_KILLS; k++) {
		struct wt_proc *victim = &z[k % 2];

		/* Sent back to back, then the kill at once: some are queued in ZeroMQ to the
		 * victim, some it has taken and not acknowledged, some it has answered. */
		for (int b = 0; b < C7_BURST; b++)
			for (int i = 0; i < C7_CONNS; i++)
				tally_send(&c[i], &t[i]);
		ck_assert_int_eq(wt_proc_kill(victim, SIGKILL), 0);
		ck_assert_int_eq(wt_proc_reap(victim, 5000), 0);
		wt_gw_expect_alive(&e.gw);
		snprintf(name, sizeof(name), "z%d-%d", k % 2, k);
		wt_env_worker(&e, victim, WT_WORKER_ZMQ, "p", name);
		for (int i = 0; i < C7_CONNS; i++)
			tally_drain(&c[i], &t[i], 1);
	}
	tally_finish(c, t, C7_CONNS, 10000, &lost, &dups, &disorder);
	for (int i = 0; i < C7_CONNS; i++)
		total += t[i].sent;
	printf("sigkill zmq: %d kills, %d messages: %d lost, %d delivered twice, %d out of order; %ld records handed over\n",
	       C7_KILLS, total, lost, dups, disorder, handed_over(e.gw.log_path));
	ck_assert_msg(lost == 0, "%d of %d messages lost with their zmq worker", lost, total);
	ck_assert_msg(disorder == 0, "%d first deliveries out of order", disorder);
	ck_assert_msg(dups <= C7_KILLS * ZMQ_WINDOW, "%d duplicates: more than a window per death", dups);
	wt_echo_round(c, C7_CONNS, 1, "after");
	wt_gw_expect_alive(&e.gw);
	for (int i = 0; i < 2; i++)
		wt_env_worker_stop(&z[i]);
	wt_env_done(&e);
}
END_TEST

/* ---- 9. SIGSTOP of a pool's only worker, then SIGCONT ------------------------ */

/* On both transports (_i & 1: zmq, else shm), stopped briefly (_i & 2: for less than
 * the three heartbeats that declare it dead) or until it is declared dead and a new one
 * takes its connections: every message comes back; after a brief stop exactly once. */
#define C8_CONNS 50
#define C8_MSGS 30

START_TEST(test_sigstop_worker)
{
	static struct wt_conn c[C8_CONNS];
	static struct tally t[C8_CONNS];
	struct wt_env e;
	struct wt_proc z0, z1;
	int lost, dups, disorder;
	enum wt_worker_kind kind = _i & 1 ? WT_WORKER_ZMQ : WT_WORKER_ECHO;
	int brief = _i & 2;
	const char *what = kind == WT_WORKER_ZMQ ? "zmq" : "shm";

	memset(t, 0, sizeof(t));
	wt_env_init(&e);
	WT_ENV_GW_START(&e, "--route", "/=p", "--heartbeat", brief ? "1" : "0.2", NULL);
	wt_env_worker(&e, &z0, kind, "p", "z0");
	for (int i = 0; i < C8_CONNS; i++) {
		WT_EXPECT_OPEN(&c[i], "127.0.0.1", e.gw.port, "/");
		t[i].id = i;
	}
	wt_echo_round(c, C8_CONNS, 0, "before");
	ck_assert_int_eq(wt_proc_kill(&z0, SIGSTOP), 0);
	/* 1500 messages to a stopped worker: in its ring, or a window's worth queued in
	 * ZeroMQ and the rest held by the gateway with their clients paused. */
	for (int m = 0; m < C8_MSGS; m++)
		for (int i = 0; i < C8_CONNS; i++)
			tally_send(&c[i], &t[i]);
	if (brief) {
		wt_sleep_ms(1000); /* a third of the time that would declare it dead */
	} else {
		ck_assert_msg(wt_wait_file(e.gw.log_path, "missed 3 heartbeats", 5000),
			      "the stopped worker was not declared dead");
		/* Its connections wait for a worker, with what it never took or acknowledged. */
		wt_env_worker(&e, &z1, kind, "p", "z1");
	}
	ck_assert_int_eq(wt_proc_kill(&z0, SIGCONT), 0);
	tally_finish(c, t, C8_CONNS, 10000, &lost, &dups, &disorder);
	printf("sigstop %s%s: %d messages to a stopped worker: %d lost, %d delivered twice, %d out of order; %ld records handed over\n",
	       what, brief ? " for 1 s" : " until dead", C8_CONNS * C8_MSGS, lost, dups, disorder,
	       handed_over(e.gw.log_path));
	ck_assert_msg(lost == 0, "%d of %d messages lost with the stopped %s worker", lost,
		      C8_CONNS * C8_MSGS, what);
	ck_assert_msg(disorder == 0, "%d first deliveries out of order", disorder);
	if (brief) {
		ck_assert_msg(!wt_gw_log_contains(&e.gw, "missed 3 heartbeats"),
			      "a worker stopped for 1 s was declared dead");
		ck_assert_msg(dups == 0, "%d duplicates after a brief stop", dups);
	} else {
		ck_assert_msg(dups <= ZMQ_WINDOW, "%d duplicates: more than its window", dups);
	}
	/* A woken dead worker's answers are refused, never delivered. */
	wt_echo_round(c, C8_CONNS, 1, "after");
	wt_gw_expect_alive(&e.gw);
	wt_env_worker_stop(&z0);
	if (!brief)
		wt_env_worker_stop(&z1);
	wt_env_done(&e);
}
END_TEST

/* ---- 10. a zmq worker that never acknowledges gets at most its window ------- */

#define C9_CONNS 10
#define C9_MSGS 200

/* Reads what the hand-made worker r is sent until nothing came for 300 ms (at most 5 s),
 * heartbeating; counts the counted verbs and checks each client's messages come in
 * order. Returns how many counted records arrived. */
static int take_all(struct wt_ctl *r, int *next, int *sent_cmds)
{
	struct wt_ctl_msg m;
	int counted = 0;
	int64_t end = wt_now_ms() + 5000, beat = 0;

	while (wt_now_ms() < end) {
		if (wt_now_ms() - beat >= 300) {
			const char *hb[] = { "HEARTBEAT" };
			wt_ctl_send(r, 1, hb, NULL);
			beat = wt_now_ms();
		}
		if (wt_ctl_recv(r, &m, 300))
			break;
		if (wt_ctl_frame_is(&m, 0, "OPEN") || wt_ctl_frame_is(&m, 0, "CLOSE") ||
		    wt_ctl_frame_is(&m, 0, "GONE")) {
			counted++;
		} else if (wt_ctl_frame_is(&m, 0, "MESSAGE")) {
			int cl = -1, seq = -1;
			counted++;
			ck_assert_msg(m.n == 4 && sscanf(m.f[3], "c%d s%d", &cl, &seq) == 2 && cl >= 0 &&
				      cl < C9_CONNS && seq == next[cl],
				      "out of order: %s (want c%d s%d)", m.n == 4 ? m.f[3] : "?", cl,
				      cl >= 0 && cl < C9_CONNS ? next[cl] : -1);
			next[cl]++;
			/* Answer the last one of each client: SENDs still flow. */
			if (seq == C9_MSGS - 1) {
				const char *f[] = { "SEND", m.f[1], "text", "done" };
				size_t l[] = { 4, 8, 4, 4 };
				wt_ctl_send(r, 4, f, l);
				(*sent_cmds)++;
			}
		}
		wt_ctl_msg_free(&m);
	}
	return counted;
}

static void send_ack(struct wt_ctl *r, const char *n)
{
	const char *f[] = { "ACK", n };
	ck_assert_int_eq(wt_ctl_send(r, 2, f, NULL), 0);
}

START_TEST(test_zmq_window)
{
	static struct wt_conn p[C9_CONNS], q[C9_CONNS];
	static struct tally t[C9_CONNS];
	struct wt_env e;
	struct wt_proc z;
	struct wt_ctl r;
	struct wt_ctl_msg m;
	int next[C9_CONNS] = { 0 }, cmds = 0;
	char num[24];

	memset(t, 0, sizeof(t));
	wt_env_init(&e);
	WT_ENV_GW_START(&e, "--route", "/p=p", "--route", "/q=q", "--log-level", "debug", NULL);
	wt_env_worker(&e, &z, WT_WORKER_ZMQ, "q", "healthy");
	ck_assert_int_eq(wt_ctl_connect(&r, e.control), 0);
	ck_assert_int_eq(wt_ctl_hello(&r, "p", "zmq", &m, 5000), 0);
	wt_ctl_msg_free(&m);
	for (int i = 0; i < C9_CONNS; i++) {
		WT_EXPECT_OPEN(&p[i], "127.0.0.1", e.gw.port, "/p");
		WT_EXPECT_OPEN(&q[i], "127.0.0.1", e.gw.port, "/q");
		t[i].id = i;
	}
	for (int k = 0; k < C9_MSGS; k++)
		for (int i = 0; i < C9_CONNS; i++)
			tally_send(&p[i], &t[i]);
	/* 10 OPENs and 2000 messages are waiting; the worker never acknowledged. */
	int got = take_all(&r, next, &cmds);
	printf("zmq window: a worker that never acknowledges got %d of %d records\n", got,
	       C9_CONNS * (C9_MSGS + 1));
	ck_assert_int_eq(got, ZMQ_WINDOW);
	ck_assert_msg(wt_count_file(e.gw.log_path, "window is full, pausing its clients"),
		      "the gateway did not pause the worker's clients");
	/* Nobody else notices, and the gateway sleeps while it waits for an ACK. */
	for (int round = 0; round < 5; round++)
		wt_echo_round(q, C9_CONNS, round, "other pool");
	wt_gw_expect_alive(&e.gw);
	expect_idle(&e.gw, "a full zmq window");
	/* Full for three heartbeat intervals with no ACK: the operator is told, once. */
	int64_t end = wt_now_ms() + 6000;
	while (!wt_count_file(e.gw.log_path, "with no ACK") && wt_now_ms() < end) {
		const char *hb[] = { "HEARTBEAT" };
		wt_ctl_send(&r, 1, hb, NULL);
		wt_sleep_ms(200);
	}
	ck_assert_msg(wt_count_file(e.gw.log_path, "with no ACK") == 1,
		      "no single warning about a window full for long");

	/* ACKs that are malformed or count more than was sent are refused; nothing moves. */
	int refused = wt_count_file(e.gw.log_path, "control: worker");
	send_ack(&r, "x");
	ck_assert_int_eq(wt_ctl_recv_verb(&r, "ERROR", &m, 3000), 0);
	ck_assert_msg(strstr(m.f[1], "malformed ACK"), "ERROR %s", m.f[1]);
	wt_ctl_msg_free(&m);
	snprintf(num, sizeof(num), "%d", ZMQ_WINDOW + 1);
	send_ack(&r, num);
	ck_assert_int_eq(wt_ctl_recv_verb(&r, "ERROR", &m, 3000), 0);
	ck_assert_msg(strstr(m.f[1], "more records than were sent"), "ERROR %s", m.f[1]);
	wt_ctl_msg_free(&m);
	ck_assert_int_eq(wt_count_file(e.gw.log_path, "control: worker") - refused, 2);
	ck_assert_int_eq(take_all(&r, next, &cmds), 0);

	/* Each ACK lets the next window in, in order, until everything has arrived. */
	int total = got, acks = 0;
	while (total < C9_CONNS * (C9_MSGS + 1) && acks < 10) {
		snprintf(num, sizeof(num), "%d", total);
		send_ack(&r, num);
		acks++;
		int more = take_all(&r, next, &cmds);
		ck_assert_int_le(more, ZMQ_WINDOW);
		ck_assert_int_gt(more, 0);
		total += more;
	}
	ck_assert_int_eq(total, C9_CONNS * (C9_MSGS + 1));
	for (int i = 0; i < C9_CONNS; i++)
		ck_assert_int_eq(next[i], C9_MSGS);
	ck_assert_msg(wt_count_file(e.gw.log_path, "acknowledged, resuming"),
		      "the paused clients were not resumed");
	ck_assert_int_eq(cmds, C9_CONNS);
	for (int i = 0; i < C9_CONNS; i++)
		WT_EXPECT_MESSAGE(&p[i], WT_TEXT, "done", 4);
	wt_echo_round(q, C9_CONNS, 9, "other pool, after");
	wt_gw_expect_alive(&e.gw);
	wt_ctl_close(&r);
	wt_env_worker_stop(&z);
	wt_env_done(&e);
}
END_TEST

/* ---- 10. a worker rings the doorbell with nothing to deliver -------------- */

/* A worker of another pool wakes the loop as fast as it can for C10_SECS, through the
 * doorbell's futex (_i 0) or the loop's eventfd (_i 1), with nothing in its ring, while
 * the healthy worker's clients echo now and then. The loop stops listening to the
 * doorbell and polls the rings: its wake-ups stay a few thousand (unguarded, tens of
 * thousands a second), the flood is logged, and every echo comes back. */
#define C10_SECS 2
#define C10_MAX_WAKEUPS 20000

START_TEST(test_wake_flood)
{
	static struct wt_conn ok[C1_HEALTHY];
	static char page[1 << 16];
	struct wt_env e;
	struct wt_proc a;
	struct wt_shm_peer h;
	const char *how = _i ? "eventfd" : "futex";

	wt_env_init(&e);
	WT_ENV_GW_START(&e, "--route", "/=p", "--route", "/x=q", "--heartbeat", "5",
			"--admin", "127.0.0.1:0", NULL);
	wt_env_worker(&e, &a, WT_WORKER_ECHO, "p", "healthy");
	for (int i = 0; i < C1_HEALTHY; i++)
		WT_EXPECT_OPEN(&ok[i], "127.0.0.1", e.gw.port, "/");
	ck_assert_int_eq(wt_shm_peer_attach(&h, e.control, "q"), 0);
	ck_assert_int_ge(h.fds[2], 0); /* the gateway passed its eventfd */

	pid_t flooder = fork();
	ck_assert_int_ge(flooder, 0);
	if (flooder == 0) {
		int64_t end = wt_now_ms() + C10_SECS * 1000;
		while (wt_now_ms() < end)
			for (int k = 0; k < 1000; k++)
				_i ? wt_shm_peer_wake(&h) : wt_shm_peer_ring(&h);
		_exit(0);
	}
	int rounds = 0;
	for (int64_t end = wt_now_ms() + C10_SECS * 1000; wt_now_ms() < end; rounds++) {
		wt_echo_round(ok, C1_HEALTHY, rounds, "during the flood");
		wt_sleep_ms(20); /* light traffic: the loop would sleep between rounds */
	}
	int st;
	ck_assert_int_eq(wt_waitpid(flooder, &st, 10000), 0);

	const char *body;
	ck_assert_int_eq(wt_admin_get(wt_admin_port(&e.gw), "/metrics", NULL, page, sizeof(page), &body), 200);
	double wakeups = wt_prom_value(body, "wsgw_worker_wakeups_total");
	double floods = wt_prom_value(body, "wsgw_worker_wake_floods_total");
	printf("wake flood (%s) for %d s: %.0f wake-ups, %.0f mutes, %d echo rounds of %d clients\n",
	       how, C10_SECS, wakeups, floods, rounds, C1_HEALTHY);
	ck_assert_msg(wt_count_file(e.gw.log_path, "wake-ups flood loop 0"), "the flood was not logged");
	ck_assert_msg(floods >= 1 && wakeups < C10_MAX_WAKEUPS, "%.0f wake-ups, %.0f mutes (%s)", wakeups,
		      floods, how);
	/* Heard again afterwards: an echo still comes back at once, and the gateway lives. */
	wt_sleep_ms(1200);
	wt_echo_round(ok, C1_HEALTHY, rounds + 1, "after the flood");
	wt_gw_expect_alive(&e.gw);
	wt_shm_peer_close(&h);
	wt_env_worker_stop(&a);
	wt_env_done(&e);
}
END_TEST

static Suite *faults_suite(void)
{
	const struct wt_case cases[] = {
		{ "corrupt_ring", test_corrupt_ring, 20, 4 },
		{ "truncate_segment", test_truncate_segment, 20, 1 },
		{ "control_bursts", test_control_bursts, 20, 1 },
		{ "sigterm_zmq", test_sigterm_zmq_under_load, 90, 1 },
		{ "fd_exhaustion", test_fd_exhaustion, 30, 1 },
		{ "ring_vs_header", test_ring_too_small_for_headers, 20, 1 },
		{ "accept_headers", test_accept_many_headers, 20, 1 },
		{ "invalid_utf8", test_worker_invalid_utf8, 20, 1 },
		{ "permissions", test_permissions, 20, 1 },
		{ "sigkill_zmq", test_sigkill_zmq_under_load, 90, 1 },
		{ "sigstop", test_sigstop_worker, 40, 4 },
		{ "zmq_window", test_zmq_window, 60, 1 },
		{ "wake_flood", test_wake_flood, 30, 2 },
	};
	return WT_SUITE("faults", cases);
}

int main(int argc, char **argv)
{
	if (argc > 1 && !strcmp(argv[1], "--as-zmq-worker"))
		return wt_zw_main(argc, argv);
	if (argc > 1 && !strcmp(argv[1], "--as-worker"))
		return wt_worker_main(argc, argv);

	return wt_run_suite(faults_suite());
}
