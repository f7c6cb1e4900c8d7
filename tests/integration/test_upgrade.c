/*
 * The live upgrade (docs/UPGRADE.md) against real processes: `wsgw ctl upgrade` under
 * steady echo load, several times in a row, must close no client and lose, duplicate or
 * reorder no message; messages and frames split across the hand-over complete; a new
 * binary that cannot start, reads another format version, or dies half way leaves every
 * connection with the old gateway.
 *
 * The new gateways are children of the old ones, not of this test: the test makes itself
 * their subreaper so it can reap them, and writes every pid it learns to a file that the
 * unchecked teardown (in Check's parent) reads, so none outlives a failed test.
 */
#include "tests/lib/wstest.h"
#include "tests/lib/wtadmin.h"
#include "tests/lib/wtctl.h"
#include "tests/lib/wtenv.h"
#include "tests/lib/wtproc.h"
#include "tests/lib/wttls.h"

#include <check.h>
#include <errno.h>
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zlib.h>

#define REQUIRE(cond, ...) do { if (!(cond)) ck_abort_msg(__VA_ARGS__); } while (0)

static struct wt_gw gw;
static char pids_path[96];
static pid_t serving; /* the gateway that serves now */

static void note_pid(pid_t pid)
{
	FILE *f = fopen(pids_path, "a");
	if (f) {
		fprintf(f, "%d\n", (int)pid);
		fclose(f);
	}
}

/* Check's parent, after each case: the gateways the case's upgrades started, by pid,
 * if they are still a wsgw, and the process groups it noted (as -pgid). */
static void kill_noted(void)
{
	FILE *f = fopen(pids_path, "r");
	int pid;
	while (f && fscanf(f, "%d", &pid) == 1) {
		if (pid < -1) {
			kill(pid, SIGKILL); /* a process group of our own making (make run's) */
			continue;
		}
		char p[64], cmd[256] = "";
		snprintf(p, sizeof(p), "/proc/%d/cmdline", pid);
		FILE *c = fopen(p, "r");
		if (c) {
			size_t n = fread(cmd, 1, sizeof(cmd) - 1, c);
			cmd[n] = 0;
			fclose(c);
		}
		if (strstr(cmd, "wsgw"))
			kill(pid, SIGKILL);
	}
	if (f)
		fclose(f);
	unlink(pids_path);
}

static void setup(void)
{
	snprintf(pids_path, sizeof(pids_path), "/tmp/wsgw-test-upgrade.%d.pids", (int)getpid());
	unlink(pids_path);
	struct rlimit rl;
	getrlimit(RLIMIT_NOFILE, &rl);
	rl.rlim_cur = rl.rlim_max;
	setrlimit(RLIMIT_NOFILE, &rl);
}

static void case_setup(void)
{
	prctl(PR_SET_CHILD_SUBREAPER, 1);
	unsetenv("WSGW_HANDOVER_TEST_VERSION");
	unsetenv("WSGW_HANDOVER_TEST_CRASH");
}

/* `wsgw ctl upgrade [path]`, started now, finished by ctl_wait. */
struct ctl_run {
	pid_t pid;
	int fd;
	char path[96];
	char out[4096];
};

static void ctl_start(struct ctl_run *r, int admin, const char *bin)
{
	char prog[512], addr[64];
	const char *b = getenv("WSGW_BUILD");
	snprintf(prog, sizeof(prog), "%s/wsgw", b ? b : "build");
	snprintf(addr, sizeof(addr), "127.0.0.1:%d", admin);
	const char *argv[] = { prog, "ctl", "--admin", addr, "upgrade", bin, NULL };
	snprintf(r->path, sizeof(r->path), "/tmp/wsgw-test-upgrade-ctl.%d", (int)getpid());
	r->fd = open(r->path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	ck_assert(r->fd >= 0);
	unlink(r->path);
	r->pid = wt_spawn(argv, r->fd);
	ck_assert(r->pid > 0);
}

/* 1 once ctl exited (its status in *st and output in r->out), 0 while it runs. */
static int ctl_done(struct ctl_run *r, int *st)
{
	if (!r->pid)
		return 1;
	if (waitpid(r->pid, st, WNOHANG) != r->pid)
		return 0;
	r->pid = 0;
	lseek(r->fd, 0, SEEK_SET);
	ssize_t n = read(r->fd, r->out, sizeof(r->out) - 1);
	r->out[n > 0 ? n : 0] = 0;
	close(r->fd);
	return 1;
}

static int ctl_wait(struct ctl_run *r)
{
	int st = -1;
	for (int i = 0; i < 2000 && !ctl_done(r, &st); i++)
		wt_sleep_ms(10);
	REQUIRE(!r->pid, "wsgw ctl upgrade did not end within 20 s");
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* After a successful upgrade: the new pid from ctl's line; the old one exits by itself. */
static void upgraded(const struct ctl_run *r)
{
	int pid = 0;
	const char *p = strstr(r->out, "upgraded: pid ");
	REQUIRE(p && sscanf(p, "upgraded: pid %d", &pid) == 1 && pid > 0, "ctl said: %s", r->out);
	note_pid(pid);
	pid_t old = serving;
	serving = pid;
	/* The old one drains nothing and exits 0; reap it (ours, or orphaned to us). */
	int st = -1;
	if (old == gw.pid) { /* and forgotten, not killed at exit */
		REQUIRE(wt_gw_wait(&gw, 10000) == 0, "the old gateway %d did not exit", (int)old);
		st = gw.status;
	} else {
		REQUIRE(wt_waitpid(old, &st, 10000) == 0, "the old gateway %d did not exit", (int)old);
	}
	REQUIRE(WIFEXITED(st) && WEXITSTATUS(st) == 0, "the old gateway exited with %d", st);
}

static void stop_serving(void)
{
	if (serving && serving != gw.pid) {
		kill(serving, SIGTERM);
		int st = -1;
		REQUIRE(wt_waitpid(serving, &st, 10000) == 0, "gateway %d did not stop", (int)serving);
		REQUIRE(WIFEXITED(st) && WEXITSTATUS(st) == 0, "gateway %d exited with %d", (int)serving, st);
	}
	serving = 0;
	if (gw.pid)
		WT_GW_STOP(&gw);
}

/* ---- load ---- */

struct client {
	struct wt_conn c;
	unsigned sent, got;
};

/* One round: two messages to each client, then both echoes from each, in order. */
static void round_trip(struct client *cl, int n)
{
	char m[64];
	for (int i = 0; i < n; i++)
		for (int k = 0; k < 2; k++) {
			int len = snprintf(m, sizeof(m), "c%d m%u", i, cl[i].sent++);
			WT_OK(&cl[i].c, wt_send_frame(&cl[i].c, WT_TEXT, 1, m, (size_t)len));
		}
	for (int i = 0; i < n; i++)
		for (int k = 0; k < 2; k++) {
			struct wt_frame f;
			int rc = wt_read_message(&cl[i].c, &f, 10000);
			if (rc < 0)
				wt_dump("gateway", gw.log_path, 60);
			REQUIRE(rc >= 0, "client %d, message %u: %s", i, cl[i].got, cl[i].c.err);
			int len = snprintf(m, sizeof(m), "c%d m%u", i, cl[i].got++);
			REQUIRE(f.opcode == WT_TEXT && f.len == (size_t)len && !memcmp(f.payload, m, f.len),
				"client %d: expected '%s', got opcode %d '%.*s'", i, m, f.opcode, (int)f.len,
				(const char *)f.payload);
			wt_frame_free(&f);
		}
}

static struct client *open_clients_at(int port, int n)
{
	struct client *cl = calloc((size_t)n, sizeof(*cl));
	ck_assert(cl);
	for (int i = 0; i < n; i++)
		WT_EXPECT_OPEN(&cl[i].c, "127.0.0.1", port, "/");
	return cl;
}

static struct client *open_clients(int n)
{
	return open_clients_at(gw.port, n);
}

static void close_clients(struct client *cl, int n)
{
	for (int i = 0; i < n; i++) {
		WT_OK(&cl[i].c, wt_send_close(&cl[i].c, 1000, NULL, 0));
		WT_EXPECT_CLOSE(&cl[i].c, 1000);
		wt_close(&cl[i].c);
	}
	free(cl);
}

/* One `wsgw ctl upgrade [bin]` while the n clients echo, rounds before, during and after
 * it (bounded by count): its wait status, r holding what it said. */
static unsigned longest_round_ms; /* of the last ctl_under_load: the clients' longest pause */

static int ctl_under_load(int admin, const char *bin, struct client *cl, int n, struct ctl_run *r)
{
	ctl_start(r, admin, bin);
	int st = 0, rounds = 0;
	longest_round_ms = 0;
	while (!ctl_done(r, &st) && rounds < 10000) {
		int64_t t = wt_now_ms();
		round_trip(cl, n);
		if ((unsigned)(wt_now_ms() - t) > longest_round_ms)
			longest_round_ms = (unsigned)(wt_now_ms() - t);
		rounds++;
	}
	REQUIRE(!r->pid, "ctl still running after %d rounds", rounds);
	return st;
}

/* times upgrades in a row while the n clients echo, each followed by rounds_after rounds
 * and a settle_ms pause (then one more round) that lets workers see the new gateway. */
static void upgrade_times(int admin, struct client *cl, int n, int times, int rounds_after, int settle_ms)
{
	for (int u = 0; u < times; u++) {
		struct ctl_run r;
		int st = ctl_under_load(admin, NULL, cl, n, &r);
		REQUIRE(WIFEXITED(st) && WEXITSTATUS(st) == 0, "upgrade %d failed: %s", u, r.out);
		upgraded(&r);
		wt_track_gateway(serving);
		for (int k = 0; k < rounds_after; k++)
			round_trip(cl, n);
		if (settle_ms) {
			wt_sleep_ms(settle_ms);
			round_trip(cl, n);
		}
	}
}

/* Upgrades `times` times while n clients echo; each upgrade runs while rounds go on. */
static void upgrade_under_load(int n, int times)
{
	WT_GW_START(&gw, "--admin", "127.0.0.1:0", NULL);
	serving = gw.pid;
	int admin = wt_admin_port(&gw);
	ck_assert_int_gt(admin, 0);
	struct client *cl = open_clients(n);
	round_trip(cl, n);
	upgrade_times(admin, cl, n, times, 1, 0);
	for (int i = 0; i < n; i++)
		REQUIRE(cl[i].got == cl[i].sent, "client %d: %u sent, %u echoed", i, cl[i].sent, cl[i].got);
	close_clients(cl, n);
	stop_serving();
}

START_TEST(upgrade_200_clients_5_times)
{
	upgrade_under_load(200, 5);
}
END_TEST

START_TEST(upgrade_2000_clients_3_times)
{
	upgrade_under_load(2000, 3);
}
END_TEST

/* A message in fragments, a frame cut in its header and one cut in its payload: the old
 * gateway holds each part (assembly buffer, unparsed tail, parser state with the mask
 * phase), the new one gets the rest from the client and must echo each whole. */
START_TEST(partial_messages_across_the_handover)
{
	WT_GW_START(&gw, "--admin", "127.0.0.1:0", NULL);
	serving = gw.pid;
	int admin = wt_admin_port(&gw);
	struct wt_conn a, b, c;
	WT_EXPECT_OPEN(&a, "127.0.0.1", gw.port, "/");
	WT_EXPECT_OPEN(&b, "127.0.0.1", gw.port, "/");
	WT_EXPECT_OPEN(&c, "127.0.0.1", gw.port, "/");
	/* a: the first fragment of a text message ("héllo " ends mid-character: UTF-8 state). */
	static const char first[] = "h\xc3\xa9llo \xe2\x82", second[] = "\xac world";
	WT_OK(&a, wt_send_frame(&a, WT_TEXT, 0, first, sizeof(first) - 1));
	/* b: 3 bytes of a frame's header (kept as the unparsed tail). */
	char payload[300];
	wt_fill(payload, sizeof(payload), 7, 1);
	struct wt_frame_spec sb = { .opcode = WT_BINARY, .fin = 1, .payload = payload, .len = sizeof(payload) };
	size_t nb;
	uint8_t *fb = wt_frame_encode(&sb, &nb);
	WT_OK(&b, wt_send_raw(&b, fb, 3));
	/* c: a frame's header and 101 bytes of its payload (mask phase 1 of 4). */
	size_t nc;
	uint8_t *fc = wt_frame_encode(&sb, &nc);
	size_t cut = nc - sizeof(payload) + 101;
	WT_OK(&c, wt_send_raw(&c, fc, cut));
	wt_sleep_ms(100); /* the old gateway has read them */
	struct ctl_run r;
	ctl_start(&r, admin, NULL);
	ck_assert_int_eq(ctl_wait(&r), 0);
	upgraded(&r);
	WT_OK(&a, wt_send_frame(&a, WT_CONT, 1, second, sizeof(second) - 1));
	WT_OK(&b, wt_send_raw(&b, fb + 3, nb - 3));
	WT_OK(&c, wt_send_raw(&c, fc + cut, nc - cut));
	static const char whole[] = "h\xc3\xa9llo \xe2\x82\xac world";
	WT_EXPECT_MESSAGE(&a, WT_TEXT, whole, sizeof(whole) - 1);
	WT_EXPECT_MESSAGE(&b, WT_BINARY, payload, sizeof(payload));
	WT_EXPECT_MESSAGE(&c, WT_BINARY, payload, sizeof(payload));
	free(fb);
	free(fc);
	/* The new gateway still checks UTF-8 where the old left off: a bad continuation. */
	WT_OK(&a, wt_send_frame(&a, WT_TEXT, 0, "\xe2", 1));
	wt_sleep_ms(50);
	ctl_start(&r, admin, NULL);
	ck_assert_int_eq(ctl_wait(&r), 0);
	upgraded(&r);
	WT_OK(&a, wt_send_frame(&a, WT_CONT, 1, "A", 1));
	WT_EXPECT_CLOSE(&a, 1007);
	wt_close(&a);
	wt_close(&b);
	wt_close(&c);
	stop_serving();
}
END_TEST

/* Two upgrades to bin (NULL: the same binary) that fail, each while the n clients echo:
 * ctl says why (needle) and that this process keeps serving, and exits 1; the clients are
 * served throughout. */
static void fail_twice_under_load(int admin, const char *bin, struct client *cl, int n,
				  const char *needle)
{
	for (int t = 0; t < 2; t++) {
		struct ctl_run r;
		int st = ctl_under_load(admin, bin, cl, n, &r);
		REQUIRE(WIFEXITED(st) && WEXITSTATUS(st) == 1, "ctl exited with %d: %s", st, r.out);
		REQUIRE(strstr(r.out, needle), "ctl said '%s', not '%s'", r.out, needle);
		REQUIRE(strstr(r.out, "keeps serving"), "ctl said: %s", r.out);
		round_trip(cl, n);
	}
}

/* Each failure: ctl says why and exits 1, the same gateway serves every client on. */
static void failed_upgrade(const char *bin, const char *needle)
{
	WT_GW_START(&gw, "--admin", "127.0.0.1:0", NULL);
	serving = gw.pid;
	int admin = wt_admin_port(&gw);
	enum { N = 300 }; /* more than one batch of 253 */
	struct client *cl = open_clients(N);
	round_trip(cl, N);
	fail_twice_under_load(admin, bin, cl, N, needle);
	ck_assert(wt_gw_log_contains(&gw, "upgrade failed, this process keeps serving every connection"));
	ck_assert_int_eq(kill(gw.pid, 0), 0);
	close_clients(cl, N);
	stop_serving();
}

/* What cannot be handed over yet is refused before anything starts, with the reason, and
 * the gateway serves on: worker pools, and a gateway in a cluster (Redis need not answer:
 * the refusal comes first). */
static void refused_upgrade(const char *needle, const char *a1, const char *a2)
{
	WT_GW_START(&gw, "--admin", "127.0.0.1:0", "--route", "/=echo", a1, a2, NULL);
	serving = gw.pid;
	struct client *cl = open_clients(10);
	round_trip(cl, 10);
	struct ctl_run r;
	ctl_start(&r, wt_admin_port(&gw), NULL);
	int rc = ctl_wait(&r);
	REQUIRE(rc == 1, "ctl exited with %d: %s", rc, r.out);
	REQUIRE(strstr(r.out, needle), "ctl said '%s', not '%s'", r.out, needle);
	round_trip(cl, 10);
	ck_assert_int_eq(kill(gw.pid, 0), 0);
	close_clients(cl, 10);
	stop_serving();
}

/* ---- shm workers (docs/UPGRADE.md, "Workers") ---- */

/* A gateway with its own runtime directory and one worker pool "p" on "/", and one
 * worker of prog attached; its log is DIR/worker.log. */
static void worker_gateway(struct wt_env *e, struct wt_proc *w, const char *prog, const char *mode)
{
	wt_env_init(e);
	WT_GW_START(&gw, "--control", e->control, "--runtime-dir", e->dir, "--admin", "127.0.0.1:0",
		    "--route", "/=p", NULL);
	wt_track_gateway(gw.pid);
	serving = gw.pid;
	const char *build = getenv("WSGW_BUILD");
	char path[512], log[256];
	snprintf(path, sizeof(path), "%s/%s", build && *build ? build : "build", prog);
	snprintf(log, sizeof(log), "%s/worker.log", e->dir);
	const char *argv[] = { path, "--control", e->control, "--pool", "p", mode, NULL };
	ck_assert_int_eq(wt_proc_spawn(w, argv, log), 0);
	REQUIRE(wt_wait_attached(gw.log_path, "p", w->pid, WT_ATTACH_MS) > 0, "%s did not attach", prog);
}

/* The worker followed every upgrade without attaching again: one attach line in the
 * gateway log (the new gateways write to the same log), and in its own log exactly one
 * line per upgrade, the hand-over's. */
static void worker_followed(struct wt_env *e, struct wt_proc *w, int upgrades)
{
	char log[256];
	snprintf(log, sizeof(log), "%s/worker.log", e->dir);
	REQUIRE(kill(w->pid, 0) == 0, "the worker %d is gone", (int)w->pid);
	int att = wt_count_attached(gw.log_path, "p", w->pid);
	REQUIRE(att == 1, "the worker attached %d times", att);
	int moved = wt_count_file(log, "took this worker over");
	int lines = wt_count_file(log, "libwsgw");
	if (moved != upgrades || lines != upgrades)
		wt_dump("worker", log, 20);
	REQUIRE(moved == upgrades && lines == upgrades, "the worker logged %d hand-overs (%d libwsgw lines), not %d",
		moved, lines, upgrades);
}

/* The worker kept the loop's eventfd it got at attach, from the first gateway, and it
 * wakes the last one: that process counted wake-ups by the eventfd (its counters start at
 * its start), none of them relayed from the doorbell's futex. A new process that made an
 * eventfd of its own would count none: the worker would write one nobody watches. */
static void eventfd_followed(int admin)
{
	static char body[65536];
	wt_http_get(admin, "/metrics", body, sizeof(body));
	double wakes = wt_metric(body, "wsgw_worker_wakeups_total");
	double relays = wt_metric(body, "wsgw_futex_relays_total");
	REQUIRE(wakes >= 1 && relays == 0, "the last gateway: %.0f wake-ups by its eventfd, %.0f relayed",
		wakes, relays);
}

/* Clients of a shm worker (wsgw-echo) under steady echo load: three upgrades in a row;
 * no client closes, no message is lost, doubled or reordered, and the worker is the
 * same process throughout and never attaches again. */
START_TEST(shm_worker_follows_3_upgrades)
{
	struct wt_env e;
	struct wt_proc w;
	worker_gateway(&e, &w, "wsgw-echo", NULL);
	int admin = wt_admin_port(&gw);
	enum { N = 300 }; /* more than one batch */
	struct client *cl = open_clients(N);
	round_trip(cl, N);
	/* Rounds past the old process's exit and the worker's reconnect. */
	upgrade_times(admin, cl, N, 3, 20, 300);
	for (int i = 0; i < N; i++)
		REQUIRE(cl[i].got == cl[i].sent, "client %d: %u sent, %u echoed", i, cl[i].sent, cl[i].got);
	/* Heartbeats went on with the last gateway: well past 3 of them, the worker is still
	 * the same attachment. */
	wt_sleep_ms(1500);
	round_trip(cl, N);
	worker_followed(&e, &w, 3);
	ck_assert(wt_gw_log_contains(&gw, "taken over with its segment"));
	eventfd_followed(admin);
	close_clients(cl, N);
	stop_serving();
	ck_assert_int_eq(wt_proc_stop(&w, 5000), 0);
	wt_env_done(&e);
}
END_TEST

/* Topics: clients that wsgw-broadcast subscribed keep getting what is published after
 * the upgrade, each message once and in order, from the subscriptions the new process
 * rebuilt from the records. */
START_TEST(subscriptions_follow_the_upgrade)
{
	struct wt_env e;
	struct wt_proc w;
	worker_gateway(&e, &w, "wsgw-broadcast", NULL);
	int admin = wt_admin_port(&gw);
	enum { N = 20, M = 5 };
	struct wt_conn c[N];
	for (int i = 0; i < N; i++)
		WT_EXPECT_OPEN(&c[i], "127.0.0.1", gw.port, "/");
	wt_sleep_ms(300); /* the SUBSCRIBEs are in */
	unsigned next[N][N];
	memset(next, 0, sizeof(next));
	unsigned sent[N];
	memset(sent, 0, sizeof(sent));
	/* Each client publishes M messages "c<i>-<k>"; every client gets each once, each
	 * sender's in order. */
	for (int round = 0; round < 4; round++) {
		if (round == 2) {
			struct ctl_run r;
			ctl_start(&r, admin, NULL);
			ck_assert_int_eq(ctl_wait(&r), 0);
			upgraded(&r);
			wt_track_gateway(serving);
		}
		char m[32];
		for (int k = 0; k < M; k++)
			for (int i = 0; i < N; i++) {
				int len = snprintf(m, sizeof(m), "c%d-%u", i, sent[i]++);
				WT_OK(&c[i], wt_send_frame(&c[i], WT_TEXT, 1, m, (size_t)len));
			}
		for (int j = 0; j < N; j++) {
			for (int got = 0; got < N * M; got++) {
				struct wt_frame f;
				int rc = wt_read_message(&c[j], &f, 5000);
				REQUIRE(rc == 0, "round %d, client %d: message %d of %d: %s", round, j, got, N * M,
					c[j].err);
				int from;
				unsigned k;
				char z[64];
				snprintf(z, sizeof(z), "%.*s", (int)f.len, (const char *)f.payload);
				REQUIRE(sscanf(z, "c%d-%u", &from, &k) == 2 && from >= 0 && from < N,
					"client %d got %s", j, z);
				REQUIRE(k == next[j][from], "round %d: client %d: from %d got %u, expected %u", round,
					j, from, k, next[j][from]);
				next[j][from]++;
				wt_frame_free(&f);
			}
			struct wt_frame f;
			REQUIRE(wt_read_message(&c[j], &f, 30) == -ETIMEDOUT, "client %d: a message twice", j);
		}
	}
	worker_followed(&e, &w, 1);
	for (int i = 0; i < N; i++)
		wt_close(&c[i]);
	stop_serving();
	ck_assert_int_eq(wt_proc_stop(&w, 5000), 0);
	wt_env_done(&e);
}
END_TEST

/* A new binary that dies half way, or reads another format version: the old gateway
 * keeps serving the worker's clients, and the worker never noticed. */
static void worker_failed_upgrade(const char *needle)
{
	struct wt_env e;
	struct wt_proc w;
	worker_gateway(&e, &w, "wsgw-echo", NULL);
	int admin = wt_admin_port(&gw);
	enum { N = 300 };
	struct client *cl = open_clients(N);
	round_trip(cl, N);
	fail_twice_under_load(admin, NULL, cl, N, needle);
	wt_sleep_ms(1500); /* heartbeats: past three of them */
	round_trip(cl, N);
	ck_assert_int_eq(kill(gw.pid, 0), 0);
	worker_followed(&e, &w, 0);
	/* The control socket is still there: a second worker attaches. */
	struct wt_proc w2;
	char log[256];
	snprintf(log, sizeof(log), "%s/worker2.log", e.dir);
	ck_assert_int_eq(wt_start_echo(&w2, e.control, "p", log), 0);
	REQUIRE(wt_wait_attached(gw.log_path, "p", w2.pid, WT_ATTACH_MS) > 0, "a new worker did not attach");
	close_clients(cl, N);
	stop_serving();
	ck_assert_int_eq(wt_proc_stop(&w, 5000), 0);
	ck_assert_int_eq(wt_proc_stop(&w2, 5000), 0);
	wt_env_done(&e);
}

START_TEST(worker_new_binary_dies_half_way)
{
	setenv("WSGW_HANDOVER_TEST_CRASH", "1", 1);
	worker_failed_upgrade("exited with status 3 while taking the connections");
}
END_TEST

START_TEST(worker_new_binary_reads_another_version)
{
	setenv("WSGW_HANDOVER_TEST_VERSION", "1", 1); /* a binary of the first slice */
	worker_failed_upgrade("hand-over format version 4 is not one this binary reads (1..1)");
}
END_TEST

/* ---- zmq workers: the Python and Node libraries ---- */

/* The real library's echo example for pool, its output in DIR/NAME.log. */
static void lang_worker(struct wt_env *e, struct wt_proc *w, const char *lang, const char *pool)
{
	char log[256];
	snprintf(log, sizeof(log), "%s/%s.log", e->dir, pool);
	const char *py[] = { "/usr/bin/python3", "workers/python/examples/echo.py", "--control", e->control,
			     "--pool", pool, NULL };
	const char *nd[] = { "/usr/bin/env", "node", "workers/node/examples/echo.js", "--control", e->control, "--pool", pool,
			     NULL };
	ck_assert_int_eq(wt_proc_spawn(w, strcmp(lang, "python") ? nd : py, log), 0);
	if (wt_wait_attached(gw.log_path, pool, w->pid, 15000) <= 0) {
		wt_dump(lang, log, 20);
		ck_abort_msg("the %s worker did not attach", lang);
	}
}

/* A gateway with pool py (the Python library), nd (Node) and p (wsgw-echo, shm). */
static void zmq_gateway(struct wt_env *e, struct wt_proc *py, struct wt_proc *nd, struct wt_proc *shm)
{
	wt_env_init(e);
	WT_GW_START(&gw, "--control", e->control, "--runtime-dir", e->dir, "--admin", "127.0.0.1:0",
		    "--route", "/py=py", "--route", "/nd=nd", "--route", "/=p", NULL);
	wt_track_gateway(gw.pid);
	serving = gw.pid;
	lang_worker(e, py, "python", "py");
	lang_worker(e, nd, "node", "nd");
	char log[256];
	snprintf(log, sizeof(log), "%s/worker.log", e->dir);
	ck_assert_int_eq(wt_start_echo(shm, e->control, "p", log), 0);
	REQUIRE(wt_wait_attached(gw.log_path, "p", shm->pid, WT_ATTACH_MS) > 0, "wsgw-echo did not attach");
}

/* The worker is the same process, attached once (no HELLO since), and said nothing wrong. */
static void zmq_worker_stayed(struct wt_env *e, struct wt_proc *w, const char *pool)
{
	char log[256];
	snprintf(log, sizeof(log), "%s/%s.log", e->dir, pool);
	REQUIRE(kill(w->pid, 0) == 0, "the %s worker %d is gone", pool, (int)w->pid);
	int att = wt_count_attached(gw.log_path, pool, w->pid);
	int said = wt_count_file(log, "gateway says");
	if (att != 1 || said)
		wt_dump(pool, log, 20);
	REQUIRE(att == 1, "the %s worker attached %d times", pool, att);
	REQUIRE(said == 0, "the %s worker got %d ERRORs", pool, said);
}

static void stop_zmq_gateway(struct wt_env *e, struct wt_proc *py, struct wt_proc *nd, struct wt_proc *shm)
{
	stop_serving();
	wt_proc_stop(py, 5000);
	wt_proc_stop(nd, 5000);
	ck_assert_int_eq(wt_proc_stop(shm, 5000), 0);
	wt_env_done(e);
}

/* n clients of each of zmq_gateway's workers: the Python one's, the Node one's, the
 * shm one's, in that order. */
static struct client *zmq_clients(int n)
{
	struct client *cl = calloc(3 * (size_t)n, sizeof(*cl));
	ck_assert(cl);
	const char *paths[] = { "/py/c", "/nd/c", "/c" };
	for (int i = 0; i < 3 * n; i++)
		WT_EXPECT_OPEN(&cl[i].c, "127.0.0.1", gw.port, paths[i / n]);
	return cl;
}

/* Clients of a Python, a Node and a shm worker echo steadily through five upgrades in a
 * row: each succeeds, no client closes, every message comes back once and in order, and
 * each worker is the same process that attached once (it never said HELLO again). */
START_TEST(zmq_workers_follow_5_upgrades)
{
	struct wt_env e;
	struct wt_proc py, nd, shm;
	zmq_gateway(&e, &py, &nd, &shm);
	int admin = wt_admin_port(&gw);
	enum { N = 50 };
	struct client *cl = zmq_clients(N);
	round_trip(cl, 3 * N);
	for (int u = 0; u < 5; u++) {
		struct ctl_run r;
		int st = ctl_under_load(admin, NULL, cl, 3 * N, &r);
		REQUIRE(WIFEXITED(st) && WEXITSTATUS(st) == 0, "upgrade %d failed: %s", u, r.out);
		unsigned pause = longest_round_ms;
		upgraded(&r);
		wt_track_gateway(serving);
		/* Rounds past the old process's exit and the workers' reconnects; the pause lets
		 * libwsgw see each new gateway pid (it logs one line per upgrade). */
		for (int k = 0; k < 20; k++)
			round_trip(cl, 3 * N);
		wt_sleep_ms(300);
		round_trip(cl, 3 * N);
		fprintf(stderr, "zmq upgrade %d: %s  longest echo round meanwhile %u ms\n", u, r.out, pause);
	}
	for (int i = 0; i < 3 * N; i++)
		REQUIRE(cl[i].got == cl[i].sent, "client %d: %u sent, %u echoed", i, cl[i].sent, cl[i].got);
	/* Past three heartbeats with the last gateway: still the same attachments. */
	wt_sleep_ms(1500);
	round_trip(cl, 3 * N);
	zmq_worker_stayed(&e, &py, "py");
	zmq_worker_stayed(&e, &nd, "nd");
	worker_followed(&e, &shm, 5);
	ck_assert(wt_gw_log_contains(&gw, "taken over (zmq transport"));
	close_clients(cl, 3 * N);
	stop_zmq_gateway(&e, &py, &nd, &shm);
}
END_TEST

/* A zmq worker that is stopped (SIGSTOP) when the upgrade starts never says MOVED: the
 * upgrade fails after its 2 s with the reason, the old gateway keeps every connection,
 * and once the worker runs again it gets RESUME and its clients echo on, the same
 * attachment; then an upgrade succeeds. */
START_TEST(zmq_worker_stopped_at_upgrade)
{
	struct wt_env e;
	struct wt_proc py, nd, shm;
	zmq_gateway(&e, &py, &nd, &shm);
	int admin = wt_admin_port(&gw);
	enum { N = 20 };
	struct client *cl = zmq_clients(N);
	round_trip(cl, 3 * N);
	ck_assert_int_eq(kill(py.pid, SIGSTOP), 0);
	/* Messages for it meanwhile: held by the old gateway, delivered after RESUME. */
	char m[64];
	for (int i = 0; i < N; i++) {
		int len = snprintf(m, sizeof(m), "c%d m%u", i, cl[i].sent++);
		WT_OK(&cl[i].c, wt_send_frame(&cl[i].c, WT_TEXT, 1, m, (size_t)len));
	}
	struct ctl_run r;
	int64_t t0 = wt_now_ms();
	/* The other workers' clients echo on while it waits. */
	int st = ctl_under_load(admin, NULL, cl + N, 2 * N, &r);
	int64_t took = wt_now_ms() - t0;
	kill(py.pid, SIGCONT);
	REQUIRE(WIFEXITED(st) && WEXITSTATUS(st) == 1, "ctl exited with %d: %s", st, r.out);
	REQUIRE(strstr(r.out, "did not answer MOVE"), "ctl said '%s'", r.out);
	REQUIRE(took >= 1900 && took < 5000, "the upgrade gave up after %lld ms", (long long)took);
	ck_assert(wt_gw_log_contains(&gw, "upgrade failed, this process keeps serving every connection"));
	for (int i = 0; i < N; i++) {
		struct wt_frame f;
		int len = snprintf(m, sizeof(m), "c%d m%u", i, cl[i].got++);
		REQUIRE(wt_read_message(&cl[i].c, &f, 5000) == 0, "client %d: %s", i, cl[i].c.err);
		REQUIRE(f.len == (size_t)len && !memcmp(f.payload, m, f.len), "client %d got '%.*s', not '%s'", i,
			(int)f.len, (const char *)f.payload, m);
		wt_frame_free(&f);
	}
	ck_assert_int_eq(kill(gw.pid, 0), 0);
	round_trip(cl, 3 * N);
	zmq_worker_stayed(&e, &py, "py");
	/* It was resumed: a later upgrade moves it like the others. */
	st = ctl_under_load(admin, NULL, cl, 3 * N, &r);
	REQUIRE(WIFEXITED(st) && WEXITSTATUS(st) == 0, "the upgrade after SIGCONT failed: %s", r.out);
	upgraded(&r);
	wt_track_gateway(serving);
	for (int k = 0; k < 10; k++)
		round_trip(cl, 3 * N);
	for (int i = 0; i < 3 * N; i++)
		REQUIRE(cl[i].got == cl[i].sent, "client %d: %u sent, %u echoed", i, cl[i].sent, cl[i].got);
	zmq_worker_stayed(&e, &py, "py");
	zmq_worker_stayed(&e, &nd, "nd");
	close_clients(cl, 3 * N);
	stop_zmq_gateway(&e, &py, &nd, &shm);
}
END_TEST

/* A zmq worker with no routing id of its own (the test's raw zmq worker, as an older
 * library would be): the upgrade is refused, with the reason, and everyone serves on. */
START_TEST(zmq_worker_refuses)
{
	struct wt_env e;
	struct wt_proc w, z;
	worker_gateway(&e, &w, "wsgw-echo", NULL);
	char log[256];
	snprintf(log, sizeof(log), "%s/zmq.log", e.dir);
	ck_assert_int_eq(wt_zw_start(&z, e.control, "p", log), 0);
	REQUIRE(wt_wait_attached(gw.log_path, "p", z.pid, WT_ATTACH_MS) > 0, "the zmq worker did not attach");
	struct client *cl = open_clients(10);
	round_trip(cl, 10);
	struct ctl_run r;
	ctl_start(&r, wt_admin_port(&gw), NULL);
	int rc = ctl_wait(&r);
	REQUIRE(rc == 1, "ctl exited with %d: %s", rc, r.out);
	REQUIRE(strstr(r.out, "is a zmq worker that keeps no routing id of its own"), "ctl said '%s'", r.out);
	ck_assert(wt_gw_log_contains(&gw, "upgrade refused"));
	round_trip(cl, 10);
	worker_followed(&e, &w, 0);
	close_clients(cl, 10);
	stop_serving();
	wt_proc_stop(&z, 5000);
	ck_assert_int_eq(wt_proc_stop(&w, 5000), 0);
	wt_env_done(&e);
}
END_TEST

/* ---- topic history (no cluster: in memory) ---- */

/* A raw zmq worker of pool h: PUBLISH topic "text,stamp" payload. */
static void raw_publish(struct wt_ctl *w, const char *topic, const char *payload)
{
	const char *f[] = { "PUBLISH", topic, "text,stamp", payload };
	ck_assert_int_eq(wt_ctl_send(w, 4, f, NULL), 0);
}

/* QUERY topic position: the last offset and the epoch. */
static void raw_position(struct wt_ctl *w, const char *topic, uint64_t *offset, uint64_t *epoch)
{
	static const char qid[8] = { 0, 0, 0, 0, 0, 0, 0, 77 }; /* any id, 8 bytes */
	const char *f[] = { "QUERY", qid, topic, "position" };
	const size_t l[] = { 5, 8, strlen(topic), 8 };
	ck_assert_int_eq(wt_ctl_send(w, 4, f, l), 0);
	struct wt_ctl_msg m;
	ck_assert_int_eq(wt_ctl_recv_verb(w, "TOPIC", &m, 10000), 0);
	ck_assert_int_eq(m.n, 7);
	*offset = strtoull(m.f[5], NULL, 10);
	*epoch = strtoull(m.f[6], NULL, 10);
	wt_ctl_msg_free(&m);
}

/* The history a gateway keeps in memory moves with the upgrade: its position (offset and
 * epoch) is the same in the new process, and a client coming back with since=OFFSET,EPOCH
 * there gets what it missed, then what is published next, numbered on. (The publishing
 * worker is a raw one, which cannot follow an upgrade: it says BYE first, and another
 * attaches to the new process.) */
START_TEST(history_follows)
{
	struct wt_env e;
	wt_env_init(&e);
	WT_GW_START(&gw, "--control", e.control, "--runtime-dir", e.dir, "--admin", "127.0.0.1:0", "--route",
		    "/h=h", "--history", "news/=100", NULL);
	wt_track_gateway(gw.pid);
	serving = gw.pid;
	struct wt_ctl a, b;
	struct wt_ctl_msg m;
	ck_assert_int_eq(wt_ctl_connect(&a, e.control), 0);
	ck_assert_int_eq(wt_ctl_hello(&a, "h", "zmq", &m, 5000), 0);
	wt_ctl_msg_free(&m);
	char msg[32];
	for (int k = 0; k < 10; k++) {
		snprintf(msg, sizeof(msg), "m%d", k);
		raw_publish(&a, "news/1", msg);
	}
	uint64_t offset = 0, epoch = 0, o2, e2;
	for (int i = 0; i < 100 && offset < 10; i++)
		raw_position(&a, "news/1", &offset, &epoch);
	ck_assert_uint_eq(offset, 10);
	ck_assert_uint_gt(epoch, 0);
	const char *bye[] = { "BYE" };
	ck_assert_int_eq(wt_ctl_send(&a, 1, bye, NULL), 0);
	wt_sleep_ms(200);
	wt_ctl_close(&a);
	struct ctl_run r;
	ctl_start(&r, wt_admin_port(&gw), NULL);
	REQUIRE(ctl_wait(&r) == 0, "upgrade: %s", r.out);
	upgraded(&r);
	wt_track_gateway(serving);
	ck_assert_int_eq(wt_ctl_connect(&b, e.control), 0);
	ck_assert_int_eq(wt_ctl_hello(&b, "h", "zmq", &m, 5000), 0);
	wt_ctl_msg_free(&m);
	raw_position(&b, "news/1", &o2, &e2);
	ck_assert_uint_eq(o2, 10);
	ck_assert_uint_eq(e2, epoch);
	struct wt_conn c;
	WT_EXPECT_OPEN(&c, "127.0.0.1", gw.port, "/h");
	ck_assert_int_eq(wt_ctl_recv_verb(&b, "OPEN", &m, 5000), 0);
	char id[8];
	memcpy(id, m.f[1], 8);
	wt_ctl_msg_free(&m);
	char since[64];
	snprintf(since, sizeof(since), "since=3,%llu", (unsigned long long)epoch);
	const char *sub[] = { "SUBSCRIBE", id, "news/1", since };
	const size_t lens[] = { 9, 8, 6, strlen(since) };
	ck_assert_int_eq(wt_ctl_send(&b, 4, sub, lens), 0);
	ck_assert_int_eq(wt_ctl_recv_verb(&b, "RECOVERY", &m, 5000), 0);
	REQUIRE(m.n == 7 && !strcmp(m.f[3], "recovered") && atol(m.f[6]) == 7, "RECOVERY %s, %s replayed",
		m.n > 3 ? m.f[3] : "?", m.n > 6 ? m.f[6] : "?");
	wt_ctl_msg_free(&m);
	raw_publish(&b, "news/1", "m10");
	for (int k = 3; k <= 10; k++) {
		struct wt_frame f;
		REQUIRE(wt_read_message(&c, &f, 5000) == 0, "message m%d: %s", k, c.err);
		char want[64];
		int n = snprintf(want, sizeof(want), "%d,%llu m%d", k + 1, (unsigned long long)epoch, k);
		REQUIRE(f.len == (size_t)n && !memcmp(f.payload, want, f.len), "got '%.*s', want '%s'", (int)f.len,
			(const char *)f.payload, want);
		wt_frame_free(&f);
	}
	wt_close(&c);
	wt_ctl_close(&b);
	stop_serving();
	wt_env_done(&e);
}
END_TEST

/* The per-address limit still counts the connections that moved: the new process's door
 * knows each by the address the old one's carried, so a client over the limit is refused
 * after the upgrade as before it, and one that leaves makes room. */
START_TEST(door_counts_follow)
{
	WT_GW_START(&gw, "--admin", "127.0.0.1:0", "--max-conns-per-ip", "3", NULL);
	serving = gw.pid;
	struct wt_conn c[4];
	for (int i = 0; i < 3; i++)
		WT_EXPECT_OPEN(&c[i], "127.0.0.1", gw.port, "/");
	struct ctl_run r;
	ctl_start(&r, wt_admin_port(&gw), NULL);
	ck_assert_int_eq(ctl_wait(&r), 0);
	upgraded(&r);
	char req[1024];
	struct wt_http h;
	WT_OK(&c[3], wt_connect(&c[3], "127.0.0.1", gw.port));
	int n = wt_request_build(&c[3], req, sizeof(req), "/", NULL);
	WT_OK(&c[3], wt_send_raw(&c[3], req, (size_t)n));
	ck_assert_int_eq(wt_http_read(&c[3], &h), 503);
	wt_close(&c[3]);
	WT_OK(&c[0], wt_send_close(&c[0], 1000, NULL, 0));
	WT_EXPECT_CLOSE(&c[0], 1000);
	wt_close(&c[0]);
	int opened = 0;
	for (int i = 0; i < 100 && !opened; i++) {
		wt_sleep_ms(20);
		opened = wt_open(&c[0], "127.0.0.1", gw.port, "/") == 0;
		if (!opened)
			wt_close(&c[0]);
	}
	ck_assert_msg(opened, "no room after one of the three left");
	for (int i = 0; i < 3; i++)
		wt_close(&c[i]);
	stop_serving();
}
END_TEST

/* ---- the load: echo clients of workers, a publish stream, ten upgrades ---- */

struct load {
	struct client *echo;
	int n_echo;
	struct wt_conn *sub; /* sub[0] publishes */
	int n_sub;
	unsigned pub;        /* published so far: each subscriber expects them all, in order */
	unsigned round;
	int pause_ms;        /* the longest round */
};

/* One round: every echo client sends one message (one in 8 of them in two fragments, one
 * in 8 as a frame cut in two, the second part after the subscribers were read), sub[0]
 * publishes one, every subscriber reads it, every echo client reads its echo. */
static void load_round(struct load *L)
{
	int64_t t0 = wt_now_ms();
	char m[64];
	uint8_t *cut[L->n_echo];
	size_t cut_n[L->n_echo], cut_at[L->n_echo];
	for (int i = 0; i < L->n_echo; i++) {
		struct client *c = &L->echo[i];
		int len = snprintf(m, sizeof(m), "c%d m%u", i, c->sent++);
		unsigned kind = (unsigned)i + L->round;
		cut[i] = NULL;
		if (kind % 8 == 0) {
			WT_OK(&c->c, wt_send_frame(&c->c, WT_TEXT, 0, m, 3));
		} else if (kind % 8 == 1) {
			struct wt_frame_spec sp = { .opcode = WT_TEXT, .fin = 1, .payload = m, .len = (size_t)len };
			cut[i] = wt_frame_encode(&sp, &cut_n[i]);
			ck_assert_ptr_nonnull(cut[i]);
			cut_at[i] = 1 + (size_t)(i * 7) % (cut_n[i] - 1); /* in the header or the payload */
			WT_OK(&c->c, wt_send_raw(&c->c, cut[i], cut_at[i]));
		} else {
			WT_OK(&c->c, wt_send_frame(&c->c, WT_TEXT, 1, m, (size_t)len));
		}
	}
	int len = snprintf(m, sizeof(m), "p%u", L->pub++);
	WT_OK(&L->sub[0], wt_send_frame(&L->sub[0], WT_TEXT, 1, m, (size_t)len));
	for (int j = 0; j < L->n_sub; j++) {
		struct wt_frame f;
		REQUIRE(wt_read_message(&L->sub[j], &f, 10000) == 0, "subscriber %d, publish %u: %s", j, L->pub - 1,
			L->sub[j].err);
		REQUIRE(f.len == (size_t)len && !memcmp(f.payload, m, f.len), "subscriber %d: expected %s, got '%.*s'",
			j, m, (int)f.len, (const char *)f.payload);
		wt_frame_free(&f);
	}
	for (int i = 0; i < L->n_echo; i++) {
		struct client *c = &L->echo[i];
		unsigned kind = (unsigned)i + L->round;
		if (kind % 8 == 0) {
			int n = snprintf(m, sizeof(m), "c%d m%u", i, c->sent - 1);
			WT_OK(&c->c, wt_send_frame(&c->c, WT_CONT, 1, m + 3, (size_t)n - 3));
		} else if (cut[i]) {
			WT_OK(&c->c, wt_send_raw(&c->c, cut[i] + cut_at[i], cut_n[i] - cut_at[i]));
			free(cut[i]);
		}
	}
	for (int i = 0; i < L->n_echo; i++) {
		struct client *c = &L->echo[i];
		struct wt_frame f;
		REQUIRE(wt_read_message(&c->c, &f, 10000) >= 0, "client %d, message %u: %s", i, c->got, c->c.err);
		int n = snprintf(m, sizeof(m), "c%d m%u", i, c->got++);
		REQUIRE(f.opcode == WT_TEXT && f.len == (size_t)n && !memcmp(f.payload, m, f.len),
			"client %d: expected '%s', got '%.*s'", i, m, (int)f.len, (const char *)f.payload);
		wt_frame_free(&f);
	}
	L->round++;
	int ms = (int)(wt_now_ms() - t0);
	if (ms > L->pause_ms)
		L->pause_ms = ms;
}

/* 2,000 echo clients, half of a wsgw-echo worker (shm), half of the Python library's
 * echo (zmq), 1,000 subscribers of a wsgw-broadcast one with a stream published through
 * it, ten upgrades in a row while rounds go on: every upgrade succeeds, no client closes, every echo and every published message arrives once and
 * in order, the fragments and cut frames in flight at each hand-over complete, and the
 * workers follow without attaching again. */
START_TEST(ten_upgrades_under_worker_load)
{
	struct wt_env e;
	wt_env_init(&e);
	WT_GW_START(&gw, "--control", e.control, "--runtime-dir", e.dir, "--admin", "127.0.0.1:0", "--route",
		    "/e=e", "--route", "/z=z", "--route", "/b=b", NULL);
	wt_track_gateway(gw.pid);
	serving = gw.pid;
	const char *build = getenv("WSGW_BUILD");
	char echo[512], bc[512], elog[256], blog[256];
	snprintf(echo, sizeof(echo), "%s/wsgw-echo", build && *build ? build : "build");
	snprintf(bc, sizeof(bc), "%s/wsgw-broadcast", build && *build ? build : "build");
	snprintf(elog, sizeof(elog), "%s/echo.log", e.dir);
	snprintf(blog, sizeof(blog), "%s/broadcast.log", e.dir);
	struct wt_proc we, wb;
	const char *ea[] = { echo, "--control", e.control, "--pool", "e", NULL };
	const char *ba[] = { bc, "--control", e.control, "--pool", "b", NULL };
	ck_assert_int_eq(wt_proc_spawn(&we, ea, elog), 0);
	ck_assert_int_eq(wt_proc_spawn(&wb, ba, blog), 0);
	REQUIRE(wt_wait_attached(gw.log_path, "e", we.pid, WT_ATTACH_MS) > 0, "wsgw-echo did not attach");
	REQUIRE(wt_wait_attached(gw.log_path, "b", wb.pid, WT_ATTACH_MS) > 0, "wsgw-broadcast did not attach");
	struct wt_proc wz;
	lang_worker(&e, &wz, "python", "z");
	int admin = wt_admin_port(&gw);
	struct load L = { .n_echo = 2000, .n_sub = 1000 };
	L.echo = calloc((size_t)L.n_echo, sizeof(*L.echo));
	L.sub = calloc((size_t)L.n_sub, sizeof(*L.sub));
	ck_assert(L.echo && L.sub);
	for (int i = 0; i < L.n_echo; i++)
		WT_EXPECT_OPEN(&L.echo[i].c, "127.0.0.1", gw.port, i % 2 ? "/z" : "/e");
	for (int j = 0; j < L.n_sub; j++)
		WT_EXPECT_OPEN(&L.sub[j], "127.0.0.1", gw.port, "/b");
	wt_sleep_ms(500); /* the SUBSCRIBEs are in */
	load_round(&L);
	for (int u = 0; u < 10; u++) {
		struct ctl_run r;
		ctl_start(&r, admin, NULL);
		int st = 0, rounds = 0;
		while (!ctl_done(&r, &st) && rounds++ < 2000)
			load_round(&L);
		REQUIRE(!r.pid && WIFEXITED(st) && WEXITSTATUS(st) == 0, "upgrade %d failed: %s", u, r.out);
		REQUIRE(strstr(r.out, "it took 3000 connections"), "upgrade %d: %s", u, r.out);
		upgraded(&r);
		wt_track_gateway(serving);
		for (int k = 0; k < 3; k++)
			load_round(&L);
	}
	printf("ten upgrades: %u rounds, the longest %d ms\n", L.round, L.pause_ms);
	for (int i = 0; i < L.n_echo; i++)
		REQUIRE(L.echo[i].got == L.echo[i].sent, "client %d: %u sent, %u echoed", i, L.echo[i].sent,
			L.echo[i].got);
	for (int j = 0; j < L.n_sub; j++) {
		struct wt_frame f;
		REQUIRE(wt_read_message(&L.sub[j], &f, 20) == -ETIMEDOUT, "subscriber %d: a message twice", j);
	}
	REQUIRE(wt_count_attached(gw.log_path, "e", we.pid) == 1 && wt_count_attached(gw.log_path, "b", wb.pid) == 1 &&
			wt_count_attached(gw.log_path, "z", wz.pid) == 1,
		"a worker attached again");
	close_clients(L.echo, L.n_echo);
	for (int j = 0; j < L.n_sub; j++)
		wt_close(&L.sub[j]);
	free(L.sub);
	stop_serving();
	ck_assert_int_eq(wt_proc_stop(&we, 5000), 0);
	ck_assert_int_eq(wt_proc_stop(&wb, 5000), 0);
	ck_assert_int_eq(wt_proc_stop(&wz, 5000), 0);
	wt_env_done(&e);
}
END_TEST

/* ---- workers the gateway runs ([worker] sections) ---- */

/* The pids the gateway log says its [worker] instances were started with, in order. */
static int started_pids(const char *log, pid_t *pids, int max)
{
	FILE *f = fopen(log, "r");
	char line[2048];
	int n = 0;
	while (f && n < max && fgets(line, sizeof(line), f)) {
		const char *p = strstr(line, "] started (pid ");
		int pid;
		if (p && sscanf(p, "] started (pid %d", &pid) == 1)
			pids[n++] = pid;
	}
	if (f)
		fclose(f);
	return n;
}

/* 1 once pid ended within ms: reaped here (orphans come to this subreaper) or gone. */
static int ended(pid_t pid, int ms)
{
	for (int64_t end = wt_now_ms() + ms; wt_now_ms() < end; wt_sleep_ms(5)) {
		int st;
		if (waitpid(pid, &st, WNOHANG) == pid || (kill(pid, 0) < 0 && errno == ESRCH))
			return 1;
	}
	return 0;
}

/* Two instances of wsgw-echo the gateway runs: three upgrades while clients echo; the
 * instances are the same processes throughout (started once, taken over each time), the
 * newest gateway restarts one that dies as its own, and stops them when it stops. */
START_TEST(supervised_workers_follow)
{
	char prog[512];
	const char *b = getenv("WSGW_BUILD");
	snprintf(prog, sizeof(prog), "%s/wsgw-echo --pool p", b ? b : "build");
	struct wt_env e;
	wt_env_init(&e);
	char conf[256];
	snprintf(conf, sizeof(conf), "%s/wsgw.conf", e.dir);
	FILE *f = fopen(conf, "w");
	ck_assert_ptr_nonnull(f);
	fprintf(f, "[worker echo]\npool = p\ninstances = 2\nbackoff = 0.1\ncommand = %s\n", prog);
	fclose(f);
	WT_GW_START(&gw, "--config", conf, "--control", e.control, "--runtime-dir", e.dir, "--admin",
		    "127.0.0.1:0", "--route", "/=p", NULL);
	serving = gw.pid;
	for (int i = 0; i < 500 && wt_count_file(gw.log_path, "attached to pool p") < 2; i++)
		wt_sleep_ms(10);
	REQUIRE(wt_count_file(gw.log_path, "attached to pool p") == 2, "the two instances did not attach");
	int admin = wt_admin_port(&gw);
	enum { N = 100 };
	struct client *cl = open_clients(N);
	round_trip(cl, N);
	upgrade_times(admin, cl, N, 3, 10, 0);
	pid_t pids[8];
	REQUIRE(started_pids(gw.log_path, pids, 8) == 2, "instances were started again");
	int taken = wt_count_file(gw.log_path, "taken over, running for");
	REQUIRE(taken == 6, "%d instance take-overs logged, not 2 x 3", taken);
	REQUIRE(wt_count_file(gw.log_path, "attached to pool p") == 2, "an instance attached again");
	REQUIRE(kill(pids[0], 0) == 0 && kill(pids[1], 0) == 0, "an instance is gone");
	/* One dies: the gateway serving now starts another, its own child. */
	kill(pids[0], SIGKILL);
	REQUIRE(ended(pids[0], 5000), "the killed instance %d did not end", (int)pids[0]);
	for (int i = 0; i < 500 && started_pids(gw.log_path, pids, 8) < 3; i++)
		wt_sleep_ms(10);
	REQUIRE(started_pids(gw.log_path, pids, 8) == 3, "the instance was not restarted");
	ck_assert(wt_gw_log_contains(&gw, "ended (status unknown: the gateway this one replaced started it)"));
	REQUIRE(wt_wait_attached(gw.log_path, "p", pids[2], WT_ATTACH_MS) > 0, "the restarted instance did not attach");
	round_trip(cl, N);
	for (int i = 0; i < N; i++)
		REQUIRE(cl[i].got == cl[i].sent, "client %d: %u sent, %u echoed", i, cl[i].sent, cl[i].got);
	close_clients(cl, N);
	stop_serving();
	REQUIRE(ended(pids[1], 5000) && ended(pids[2], 5000), "the gateway did not stop its instances");
	wt_env_done(&e);
}
END_TEST

/* A port nobody listens on now (bound and released: free unless taken in between). */
static int free_port(void)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t n = sizeof(a);
	ck_assert(fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0 &&
		  getsockname(fd, (struct sockaddr *)&a, &n) == 0);
	close(fd);
	return ntohs(a.sin_port);
}

/* `make run` (workers/run-demo: a config file, [worker] sections) and `wsgw ctl upgrade`
 * with nothing but its admin address: the upgrades succeed while clients echo, the script
 * goes on after its gateway was replaced, and Ctrl-C (SIGINT to its process group) still
 * stops everything: the newest gateway and the workers it took over. */
START_TEST(make_run_upgrades)
{
	const char *b = getenv("WSGW_BUILD");
	int port = free_port(), admin = free_port();
	char listen[64], adm[64], log[128];
	snprintf(listen, sizeof(listen), "127.0.0.1:%d", port);
	snprintf(adm, sizeof(adm), "127.0.0.1:%d", admin);
	snprintf(log, sizeof(log), "/tmp/wsgw-test-make-run.%d.log", (int)getpid());
	setenv("BUILD", b && *b ? b : "build", 1);
	setenv("LISTEN", listen, 1);
	setenv("ADMIN", adm, 1);
	int fd = open(log, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	ck_assert(fd >= 0);
	/* setsid: its own process group, as a terminal's foreground job is. */
	const char *argv[] = { "/usr/bin/setsid", "workers/run-demo", NULL };
	pid_t demo = wt_spawn(argv, fd);
	close(fd);
	unsetenv("BUILD");
	unsetenv("LISTEN");
	unsetenv("ADMIN");
	ck_assert(demo > 0);
	note_pid(-demo); /* its whole group goes if the case fails half way */
	if (!wt_wait_file(log, "served by", 30000)) {
		wt_dump("make run", log, 40);
		ck_abort_msg("make run did not serve");
	}
	enum { N = 20 };
	struct client *cl = open_clients_at(port, N);
	round_trip(cl, N);
	int last = 0;
	for (int u = 0; u < 2; u++) {
		struct ctl_run r;
		int st = ctl_under_load(admin, NULL, cl, N, &r);
		const char *p = strstr(r.out, "upgraded: pid ");
		REQUIRE(WIFEXITED(st) && WEXITSTATUS(st) == 0 && p && sscanf(p, "upgraded: pid %d", &last) == 1,
			"upgrade %d failed: %s", u, r.out);
		note_pid(last);
		round_trip(cl, N);
	}
	wt_sleep_ms(200);
	round_trip(cl, N);
	REQUIRE(waitpid(demo, NULL, WNOHANG) == 0, "make run ended when its gateway was replaced");
	pid_t pids[8];
	int n = started_pids(log, pids, 8);
	REQUIRE(n == 2, "%d workers started, not the demo's 2", n);
	for (int i = 0; i < N; i++)
		REQUIRE(cl[i].got == cl[i].sent, "client %d: %u sent, %u echoed", i, cl[i].sent, cl[i].got);
	kill(-demo, SIGINT);
	int st = -1;
	REQUIRE(wt_waitpid(demo, &st, 20000) == 0, "make run did not stop on SIGINT");
	REQUIRE(ended(last, 5000), "the newest gateway %d did not stop", last);
	for (int i = 0; i < n; i++)
		REQUIRE(ended(pids[i], 5000), "worker %d did not stop", (int)pids[i]);
	for (int i = 0; i < N; i++)
		wt_close(&cl[i].c); /* the gateway closed them (1001) as it stopped */
	free(cl);
	unlink(log);
}
END_TEST

START_TEST(cluster_refuses)
{
	refused_upgrade("is in a cluster", "--cluster", "redis://127.0.0.1:1");
}
END_TEST

START_TEST(new_binary_fails_to_start)
{
	failed_upgrade("/bin/false", "exited with status 1 before it was ready");
}
END_TEST

START_TEST(new_binary_does_not_exist)
{
	failed_upgrade("/nonexistent/wsgw", "cannot start /nonexistent/wsgw");
}
END_TEST

START_TEST(new_binary_reads_another_version)
{
	setenv("WSGW_HANDOVER_TEST_VERSION", "99", 1); /* the new processes read only version 99 */
	failed_upgrade(NULL, "hand-over format version 4 is not one this binary reads (99..99)");
}
END_TEST

START_TEST(new_binary_dies_half_way)
{
	setenv("WSGW_HANDOVER_TEST_CRASH", "1", 1); /* exits after taking the first batch */
	failed_upgrade(NULL, "exited with status 3 while taking the connections");
}
END_TEST

/* SIGUSR2 does what ctl upgrade does. */
START_TEST(sigusr2_upgrades)
{
	WT_GW_START(&gw, "--admin", "127.0.0.1:0", NULL);
	serving = gw.pid;
	struct client *cl = open_clients(20);
	round_trip(cl, 20);
	kill(gw.pid, SIGUSR2);
	REQUIRE(wt_gw_wait(&gw, 10000) == 0 && WIFEXITED(gw.status) && WEXITSTATUS(gw.status) == 0,
		"the old gateway did not exit after SIGUSR2");
	char line[128];
	int pid = 0;
	ck_assert(wt_gw_log_contains(&gw, "upgrade: pid "));
	FILE *f = fopen(gw.log_path, "r");
	while (f && fgets(line, sizeof(line), f)) {
		const char *p = strstr(line, "msg=\"upgrade: pid ");
		if (p)
			sscanf(p, "msg=\"upgrade: pid %d", &pid);
	}
	if (f)
		fclose(f);
	ck_assert_int_gt(pid, 0);
	note_pid(pid);
	serving = pid;
	round_trip(cl, 20);
	close_clients(cl, 20);
	stop_serving();
}
END_TEST

/* With two loops the old one first moves loop 1's clients to loop 0, which hands them all
 * over, and the new one spreads them again; every client keeps echoing across it. */
START_TEST(loops_gather_then_upgrade)
{
	WT_GW_START(&gw, "--admin", "127.0.0.1:0", "--loops", "2", "--route", "/=echo", NULL);
	serving = gw.pid;
	struct client *cl = open_clients(20);
	round_trip(cl, 20);
	struct ctl_run r;
	ctl_start(&r, wt_admin_port(&gw), NULL);
	REQUIRE(ctl_wait(&r) == 0, "upgrade: %s", r.out);
	upgraded(&r);
	REQUIRE(wt_gw_log_contains(&gw, "msg=\"10 connections of the other 1 loops moved to loop 0\""),
		"the old gateway did not gather loop 1's 10 clients");
	/* The new one took all 20 on its loop 0 and gives loop 1 its share back. */
	REQUIRE(wt_gw_log_contains(&gw, "msg=\"10 open connections moved from loop 0 to the other 1 loops\""),
		"the new gateway did not spread its 20 clients");
	round_trip(cl, 20);
	close_clients(cl, 20);
	stop_serving();
}
END_TEST

/* Output the old gateway queued and could not write (the client does not read) moves as
 * bytes, the rest of a frame partly written first: the client then reads every echo. */
START_TEST(queued_output_moves)
{
	WT_GW_START(&gw, "--admin", "127.0.0.1:0", NULL);
	serving = gw.pid;
	int admin = wt_admin_port(&gw);
	wt_set_rcvbuf(4096);
	struct wt_conn c;
	WT_EXPECT_OPEN(&c, "127.0.0.1", gw.port, "/");
	wt_set_rcvbuf(0);
	enum { M = 512, SZ = 16384 }; /* 8 MiB: more than the sockets buffer (tcp_wmem max 4 MiB) */
	static char msg[SZ];
	for (int i = 0; i < M; i++) {
		wt_fill(msg, SZ, (unsigned)i, 0);
		WT_OK(&c, wt_send_frame(&c, WT_BINARY, 1, msg, SZ));
	}
	wt_sleep_ms(200); /* echoed into its queue as far as the gateway reads */
	struct ctl_run r;
	ctl_start(&r, admin, NULL);
	ck_assert_int_eq(ctl_wait(&r), 0);
	upgraded(&r);
	/* The old one said it handed output over: that is what this test is about. */
	ck_assert(wt_gw_log_contains(&gw, "took 1 connections and the listeners"));
	ck_assert(!wt_gw_log_contains(&gw, "(0 bytes queued"));
	for (int i = 0; i < M; i++) {
		wt_fill(msg, SZ, (unsigned)i, 0);
		WT_EXPECT_MESSAGE_T(&c, WT_BINARY, msg, SZ, 10000);
	}
	WT_OK(&c, wt_send_close(&c, 1000, NULL, 0));
	WT_EXPECT_CLOSE(&c, 1000);
	wt_close(&c);
	stop_serving();
}
END_TEST

/* permessage-deflate's agreed parameters move: compressed messages both ways go on. */
static void inflate_check(const struct wt_frame *f, const char *want, size_t n)
{
	z_stream z;
	memset(&z, 0, sizeof(z));
	ck_assert_int_eq(inflateInit2(&z, -15), Z_OK);
	uint8_t in[4096], out[4096];
	ck_assert(f->len + 4 <= sizeof(in));
	memcpy(in, f->payload, f->len);
	memcpy(in + f->len, "\x00\x00\xff\xff", 4);
	z.next_in = in;
	z.avail_in = (uInt)f->len + 4;
	z.next_out = out;
	z.avail_out = sizeof(out);
	int rc = inflate(&z, Z_SYNC_FLUSH);
	ck_assert(rc == Z_OK || rc == Z_STREAM_END);
	ck_assert_uint_eq(z.total_out, n);
	ck_assert(!memcmp(out, want, n));
	inflateEnd(&z);
}

static void deflate_round(struct wt_conn *c, const char *text, size_t n)
{
	/* Sent compressed (RSV1), as a client of no context takeover does. */
	z_stream z;
	memset(&z, 0, sizeof(z));
	ck_assert_int_eq(deflateInit2(&z, 6, Z_DEFLATED, -9, 8, Z_DEFAULT_STRATEGY), Z_OK);
	uint8_t out[4096];
	z.next_in = (Bytef *)text;
	z.avail_in = (uInt)n;
	z.next_out = out;
	z.avail_out = sizeof(out);
	ck_assert_int_eq(deflate(&z, Z_SYNC_FLUSH), Z_OK);
	size_t zn = sizeof(out) - z.avail_out - 4; /* without 00 00 ff ff */
	deflateEnd(&z);
	struct wt_frame_spec s = { .opcode = WT_TEXT, .fin = 1, .rsv = 4, .payload = out, .len = zn };
	WT_OK(c, wt_send_spec(c, &s));
	/* And uncompressed: both come back compressed (over --deflate-min-size). */
	WT_OK(c, wt_send_frame(c, WT_TEXT, 1, text, n));
	for (int k = 0; k < 2; k++) {
		struct wt_frame f;
		WT_OK(c, wt_read_frame(c, &f, 5000));
		ck_assert_int_eq(f.opcode, WT_TEXT);
		ck_assert_int_eq(f.rsv, 4);
		inflate_check(&f, text, n);
		wt_frame_free(&f);
	}
}

START_TEST(deflate_parameters_move)
{
	WT_GW_START(&gw, "--admin", "127.0.0.1:0", NULL);
	serving = gw.pid;
	int admin = wt_admin_port(&gw);
	struct wt_conn c;
	char req[1024], ext[256];
	WT_OK(&c, wt_connect(&c, "127.0.0.1", gw.port));
	int n = wt_request_build(&c, req, sizeof(req), "/",
				 "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits=9\r\n");
	WT_OK(&c, wt_send_raw(&c, req, (size_t)n));
	struct wt_http h;
	ck_assert_int_eq(wt_http_read(&c, &h), 101);
	ck_assert(wt_http_header(&h, "Sec-WebSocket-Extensions", ext, sizeof(ext)));
	ck_assert_msg(!strncmp(ext, "permessage-deflate", 18), "answer: %s", ext);
	char text[300];
	wt_fill(text, sizeof(text), 3, 1);
	deflate_round(&c, text, sizeof(text));
	for (int u = 0; u < 2; u++) {
		struct ctl_run r;
		ctl_start(&r, admin, NULL);
		ck_assert_int_eq(ctl_wait(&r), 0);
		upgraded(&r);
		deflate_round(&c, text, sizeof(text));
	}
	wt_close(&c);
	stop_serving();
}
END_TEST

/* ---- deflate with context takeover: the windows move ---- */

/* A client that keeps its context both ways (no *_no_context_takeover offered, windows of
 * 2^15): its own compressor and decompressor live across every upgrade, so each message it
 * sends refers back into what it sent before, and each echo into what it got before. */
struct keeper {
	struct wt_conn c;
	z_stream def, inf;
	uint8_t *z;     /* compressed, then inflated */
	size_t cap;
	size_t wire_in; /* the echoes' compressed bytes, in all */
};

static void keeper_open(struct keeper *k, const char *path)
{
	memset(k, 0, sizeof(*k));
	char req[1024], ext[256];
	WT_OK(&k->c, wt_connect(&k->c, "127.0.0.1", gw.port));
	int n = wt_request_build(&k->c, req, sizeof(req), path, "Sec-WebSocket-Extensions: permessage-deflate\r\n");
	WT_OK(&k->c, wt_send_raw(&k->c, req, (size_t)n));
	struct wt_http h;
	ck_assert_int_eq(wt_http_read(&k->c, &h), 101);
	ck_assert(wt_http_header(&h, "Sec-WebSocket-Extensions", ext, sizeof(ext)));
	/* Both keep context: the answer names neither no_context_takeover. */
	ck_assert_msg(!strncmp(ext, "permessage-deflate", 18) && !strstr(ext, "no_context_takeover"),
		      "answer: %s", ext);
	ck_assert_int_eq(deflateInit2(&k->def, 6, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY), Z_OK);
	ck_assert_int_eq(inflateInit2(&k->inf, -15), Z_OK);
	k->cap = 1 << 16;
	k->z = malloc(k->cap);
	ck_assert(k->z);
}

static void keeper_close(struct keeper *k)
{
	deflateEnd(&k->def);
	inflateEnd(&k->inf);
	free(k->z);
	wt_close(&k->c);
}

/* Message i: its number, then eight blocks of 125 random letters (the same blocks in
 * every message, in an order of its own). One alone hardly compresses (6 bits a letter);
 * with the context it is a few back-references into earlier messages (32 of them fill
 * the 32 KiB window). */
static size_t keeper_text(char *m, size_t cap, unsigned i)
{
	static char blocks[8][125];
	static int made;
	static const char abc[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_";
	unsigned x = 12345;
	for (int b = 0; !made && b < 8; b++)
		for (int c = 0; c < 125; c++) {
			x = x * 1103515245u + 12345u;
			blocks[b][c] = abc[(x >> 16) & 63];
		}
	made = 1;
	size_t n = (size_t)snprintf(m, cap, "seq %u:", i);
	for (unsigned b = 0; b < 8 && n + 125 <= cap; b++) {
		memcpy(m + n, blocks[(b * 3 + i) % 8], 125);
		n += 125;
	}
	return n;
}

/* Compresses m with the kept context; frags 2 sends it in two frames and returns after the
 * first (the caller sends the rest with keeper_rest). */
static uint8_t *pending_rest;
static size_t pending_n;

static void keeper_send(struct keeper *k, const char *m, size_t n, int split)
{
	k->def.next_in = (Bytef *)m;
	k->def.avail_in = (uInt)n;
	k->def.next_out = k->z;
	k->def.avail_out = (uInt)k->cap;
	ck_assert_int_eq(deflate(&k->def, Z_SYNC_FLUSH), Z_OK);
	size_t zn = k->cap - k->def.avail_out - 4; /* without 00 00 ff ff */
	if (!split) {
		struct wt_frame_spec sp = { .opcode = WT_TEXT, .fin = 1, .rsv = 4, .payload = k->z, .len = zn };
		WT_OK(&k->c, wt_send_spec(&k->c, &sp));
		return;
	}
	/* RSV1 on the first frame only (RFC 7692 6.1). */
	size_t half = zn / 2;
	struct wt_frame_spec sp = { .opcode = WT_TEXT, .fin = 0, .rsv = 4, .payload = k->z, .len = half };
	WT_OK(&k->c, wt_send_spec(&k->c, &sp));
	pending_n = zn - half;
	pending_rest = malloc(pending_n);
	ck_assert(pending_rest);
	memcpy(pending_rest, k->z + half, pending_n);
}

static void keeper_rest(struct keeper *k)
{
	struct wt_frame_spec sp = { .opcode = WT_CONT, .fin = 1, .payload = pending_rest, .len = pending_n };
	WT_OK(&k->c, wt_send_spec(&k->c, &sp));
	free(pending_rest);
	pending_rest = NULL;
}

/* The next echo: compressed (RSV1), and byte-exact m once inflated on the kept context. */
static void keeper_expect(struct keeper *k, const char *m, size_t n, unsigned i)
{
	struct wt_frame f;
	int rc = wt_read_frame(&k->c, &f, 10000);
	REQUIRE(rc == 0, "echo %u: %s", i, k->c.err);
	REQUIRE(f.opcode == WT_TEXT && f.rsv == 4 && f.fin, "echo %u: opcode %d rsv %d fin %d (a close: %d)", i,
		f.opcode, f.rsv, f.fin, f.opcode == 8 ? wt_close_code(&f) : 0);
	k->wire_in += f.len;
	uint8_t *in = malloc(f.len + 4);
	ck_assert(in);
	memcpy(in, f.payload, f.len);
	memcpy(in + f.len, "\x00\x00\xff\xff", 4);
	k->inf.next_in = in;
	k->inf.avail_in = (uInt)f.len + 4;
	k->inf.next_out = k->z;
	k->inf.avail_out = (uInt)k->cap;
	rc = inflate(&k->inf, Z_SYNC_FLUSH);
	REQUIRE(rc == Z_OK && k->inf.avail_in == 0, "echo %u: inflate says %d", i, rc);
	size_t got = k->cap - k->inf.avail_out;
	REQUIRE(got == n && !memcmp(k->z, m, n), "echo %u: %zu bytes, not the %zu sent", i, got, n);
	free(in);
	wt_frame_free(&f);
}

/* Messages [from, to) one at a time, each echo checked. */
static void keeper_rounds(struct keeper *k, unsigned from, unsigned to)
{
	char m[1200];
	for (unsigned i = from; i < to; i++) {
		size_t n = keeper_text(m, sizeof(m), i);
		keeper_send(k, m, n, 0);
		keeper_expect(k, m, n, i);
	}
}

/* One upgrade: it must say it took both connections, none kept. */
static void upgrade_takes(int admin, int conns)
{
	struct ctl_run r;
	ctl_start(&r, admin, NULL);
	ck_assert_int_eq(ctl_wait(&r), 0);
	char want[64];
	snprintf(want, sizeof(want), "took %d connections", conns);
	REQUIRE(strstr(r.out, want) && !strstr(r.out, "could not move"), "ctl said: %s", r.out);
	upgraded(&r);
}

/* A route with deflate=takeover and a client that keeps context both ways, through three
 * upgrades between messages and one while a compressed message is half sent: the
 * connection never closes, every echo inflates on the client's kept context to exactly
 * what it sent, in order, and each upgrade says it took the connection. A second client
 * whose streams were never made (no compressed message yet) moves too and then starts. */
START_TEST(deflate_takeover_moves)
{
	/* Windows of 2^15 both ways: the gateway's compressor can reach into the message
	 * before, and both windows the hand-over carries are full (32 KiB each). */
	WT_GW_START(&gw, "--admin", "127.0.0.1:0", "--deflate-window", "15", "--route",
		    "/keep=echo,deflate=takeover", NULL);
	serving = gw.pid;
	int admin = wt_admin_port(&gw);
	struct keeper k, fresh;
	keeper_open(&k, "/keep");
	keeper_open(&fresh, "/keep");
	unsigned i = 0;
	keeper_rounds(&k, i, i + 40); /* both windows full */
	i += 40;
	for (int u = 0; u < 3; u++) {
		upgrade_takes(admin, 2);
		/* The first echo after it refers back into the window the new process got: a
		 * compressor without it makes some 750 bytes of these 1,006. */
		size_t before = k.wire_in;
		keeper_rounds(&k, i, i + 1);
		REQUIRE(k.wire_in - before < 100, "the first echo after the upgrade: %zu bytes", k.wire_in - before);
		keeper_rounds(&k, i + 1, i + 10);
		i += 10;
	}
	/* Half a compressed message in the old process (the compressed bytes wait in its
	 * assembly buffer: the window is still as of the message's start), the rest to the
	 * new one. */
	char m[1200];
	size_t n = keeper_text(m, sizeof(m), i);
	keeper_send(&k, m, n, 1);
	wt_sleep_ms(100); /* the old gateway has read it */
	upgrade_takes(admin, 2);
	keeper_rest(&k);
	keeper_expect(&k, m, n, i++);
	keeper_rounds(&k, i, i + 10);
	keeper_rounds(&fresh, 0, 10);
	WT_OK(&k.c, wt_send_close(&k.c, 1000, NULL, 0));
	WT_EXPECT_CLOSE(&k.c, 1000);
	keeper_close(&k);
	keeper_close(&fresh);
	stop_serving();
}
END_TEST

/* Without kernel TLS a TLS connection's record state cannot leave the process: it stays
 * and gets close 1001 while the plain connections move. */
START_TEST(tls_connections_drain_others_move)
{
	WT_GW_START(&gw, "--listen", "127.0.0.1:0", "--listen", "127.0.0.1:0,tls", "--tls-cert",
		    wt_tls_file("cert.pem"), "--tls-key", wt_tls_file("key.pem"), "--admin", "127.0.0.1:0", NULL);
	serving = gw.pid;
	int admin = wt_admin_port(&gw);
	ck_assert_int_eq(gw.nlisten, 2);
	struct wt_conn p, t;
	WT_EXPECT_OPEN(&p, "127.0.0.1", gw.ports[0], "/");
	WT_EXPECT_OPEN(&t, "127.0.0.1", gw.ports[1], "/");
	ck_assert(t.tls != NULL);
	WT_OK(&t, wt_send_frame(&t, WT_TEXT, 1, "tls", 3));
	WT_EXPECT_MESSAGE(&t, WT_TEXT, "tls", 3);
	struct ctl_run r;
	ctl_start(&r, admin, NULL);
	ck_assert_int_eq(ctl_wait(&r), 0);
	ck_assert_msg(strstr(r.out, "took 1 connections; 1 connections could not move and drain with 1001"),
		      "ctl said: %s", r.out);
	WT_EXPECT_CLOSE(&t, 1001);
	WT_OK(&t, wt_send_close(&t, 1001, NULL, 0));
	upgraded(&r);
	wt_close(&t);
	WT_OK(&p, wt_send_frame(&p, WT_TEXT, 1, "plain", 5));
	WT_EXPECT_MESSAGE(&p, WT_TEXT, "plain", 5);
	/* The new process took the TLS listener too, and serves new TLS clients. */
	WT_EXPECT_OPEN(&t, "127.0.0.1", gw.ports[1], "/");
	WT_OK(&t, wt_send_frame(&t, WT_TEXT, 1, "tls2", 4));
	WT_EXPECT_MESSAGE(&t, WT_TEXT, "tls2", 4);
	wt_close(&t);
	wt_close(&p);
	stop_serving();
}
END_TEST

/* Under systemd (Type=notify, NotifyAccess=main) the old process names the new one
 * MAINPID before the new one can say READY=1, so systemd follows it. */
static int notify_read(int fd, char *all, size_t cap, const char *needle, int ms)
{
	int64_t end = wt_now_ms() + ms;
	size_t len = strlen(all);
	while (!strstr(all, needle) && wt_now_ms() < end) {
		struct pollfd p = { fd, POLLIN, 0 };
		if (poll(&p, 1, 50) == 1) {
			ssize_t n = recv(fd, all + len, cap - len - 2, 0);
			if (n > 0) {
				len += (size_t)n;
				all[len++] = '|';
				all[len] = 0;
			}
		}
	}
	return strstr(all, needle) != NULL;
}

START_TEST(systemd_follows_the_new_process)
{
	char path[108];
	snprintf(path, sizeof(path), "/tmp/wsgw-test-notify.%d", (int)getpid());
	unlink(path);
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	setenv("NOTIFY_SOCKET", path, 1);
	WT_GW_START(&gw, "--admin", "127.0.0.1:0", NULL);
	unsetenv("NOTIFY_SOCKET");
	serving = gw.pid;
	static char all[65536];
	all[0] = 0;
	char want[128];
	snprintf(want, sizeof(want), "READY=1\nMAINPID=%d", (int)gw.pid);
	ck_assert_msg(notify_read(fd, all, sizeof(all), want, 5000), "got: %s", all);
	struct wt_conn c;
	WT_EXPECT_OPEN(&c, "127.0.0.1", gw.port, "/");
	struct ctl_run r;
	ctl_start(&r, wt_admin_port(&gw), NULL);
	ck_assert_int_eq(ctl_wait(&r), 0);
	upgraded(&r);
	char moved[64], ready[64];
	snprintf(moved, sizeof(moved), "MAINPID=%d\nSTATUS=upgrading", (int)serving);
	snprintf(ready, sizeof(ready), "READY=1\nMAINPID=%d", (int)serving);
	ck_assert_msg(notify_read(fd, all, sizeof(all), ready, 5000), "got: %s", all);
	ck_assert_msg(strstr(all, moved) && strstr(all, moved) < strstr(all, ready), "got: %s", all);
	WT_OK(&c, wt_send_frame(&c, WT_TEXT, 1, "x", 1));
	WT_EXPECT_MESSAGE(&c, WT_TEXT, "x", 1);
	wt_close(&c);
	stop_serving();
	close(fd);
	unlink(path);
}
END_TEST

/* A new binary that never answers: the old one serves on while it waits (the wait is not
 * a pause), refuses a second upgrade meanwhile, and after 5 s kills it and keeps all. */
START_TEST(new_binary_hangs)
{
	char bin[96];
	snprintf(bin, sizeof(bin), "/tmp/wsgw-test-upgrade-hang.%d", (int)getpid());
	FILE *f = fopen(bin, "w");
	ck_assert(f);
	fputs("#!/bin/sh\nexec sleep 30\n", f);
	fclose(f);
	chmod(bin, 0700);
	WT_GW_START(&gw, "--admin", "127.0.0.1:0", NULL);
	serving = gw.pid;
	int admin = wt_admin_port(&gw);
	struct client *cl = open_clients(50);
	struct ctl_run r, r2;
	ctl_start(&r, admin, bin);
	int64_t t0 = wt_now_ms();
	int st, rounds = 0, second = 0;
	while (!ctl_done(&r, &st) && rounds < 100000) {
		round_trip(cl, 50);
		rounds++;
		if (!second && wt_now_ms() - t0 >= 1000) {
			second = 1;
			ctl_start(&r2, admin, NULL);
			REQUIRE(ctl_wait(&r2) == 1 && strstr(r2.out, "an upgrade is under way"), "second: %s", r2.out);
		}
	}
	REQUIRE(WIFEXITED(st) && WEXITSTATUS(st) == 1, "ctl: %s", r.out);
	REQUIRE(strstr(r.out, "no answer from the new process within 5 s"), "ctl said: %s", r.out);
	/* Clients were served all along: many rounds during the 5 s. */
	REQUIRE(second && rounds > 2 && wt_now_ms() - t0 >= 4500, "%d rounds", rounds);
	round_trip(cl, 50);
	close_clients(cl, 50);
	stop_serving();
	unlink(bin);
}
END_TEST

/* A client in the middle of its upgrade request at the hand-over: the old process finishes
 * its handshake and then hands it over too, so it is served by the new one. */
START_TEST(handshake_in_progress_follows)
{
	WT_GW_START(&gw, "--admin", "127.0.0.1:0", NULL);
	serving = gw.pid;
	int admin = wt_admin_port(&gw);
	struct wt_conn c, other;
	WT_EXPECT_OPEN(&other, "127.0.0.1", gw.port, "/");
	char req[1024];
	WT_OK(&c, wt_connect(&c, "127.0.0.1", gw.port));
	int n = wt_request_build(&c, req, sizeof(req), "/", NULL);
	ck_assert_int_gt(n, 40);
	WT_OK(&c, wt_send_raw(&c, req, 30));
	wt_sleep_ms(100);
	struct ctl_run r;
	ctl_start(&r, admin, NULL);
	ck_assert_int_eq(ctl_wait(&r), 0);
	ck_assert_msg(strstr(r.out, "took 1 connections"), "ctl said: %s", r.out);
	WT_OK(&c, wt_send_raw(&c, req + 30, (size_t)n - 30));
	struct wt_http h;
	ck_assert_int_eq(wt_http_read(&c, &h), 101);
	ck_assert_int_eq(wt_http_check_upgrade(&c, &h), 0);
	upgraded(&r); /* the old one exits once it has handed this one over too */
	ck_assert(wt_gw_log_contains(&gw, "took 1 connections that finished their handshake"));
	WT_OK(&c, wt_send_frame(&c, WT_TEXT, 1, "late", 4));
	WT_EXPECT_MESSAGE(&c, WT_TEXT, "late", 4);
	WT_OK(&other, wt_send_frame(&other, WT_TEXT, 1, "on", 2));
	WT_EXPECT_MESSAGE(&other, WT_TEXT, "on", 2);
	wt_close(&c);
	wt_close(&other);
	stop_serving();
}
END_TEST

int main(int argc, char **argv)
{
	if (argc > 1 && !strcmp(argv[1], "--as-zmq-worker"))
		return wt_zw_main(argc, argv);
	setup();
	Suite *s = suite_create("upgrade");
	TCase *tc = tcase_create("upgrade");
	tcase_add_unchecked_fixture(tc, NULL, kill_noted);
	tcase_add_unchecked_fixture(tc, wt_fixture_setup, wt_fixture_teardown);
	/* WT_ONLY=name: the cases whose name contains it (debugging one). */
	const char *only = getenv("WT_ONLY");
#define ADD(t) do { if (!only || strstr(#t, only)) tcase_add_test(tc, t); } while (0)
	tcase_add_checked_fixture(tc, case_setup, NULL);
	tcase_set_timeout(tc, 120);
	ADD(upgrade_200_clients_5_times);
	ADD(partial_messages_across_the_handover);
	ADD(new_binary_fails_to_start);
	ADD(shm_worker_follows_3_upgrades);
	ADD(subscriptions_follow_the_upgrade);
	ADD(worker_new_binary_dies_half_way);
	ADD(worker_new_binary_reads_another_version);
	ADD(supervised_workers_follow);
	ADD(make_run_upgrades);
	ADD(zmq_worker_refuses);
	ADD(zmq_workers_follow_5_upgrades);
	ADD(zmq_worker_stopped_at_upgrade);
	ADD(cluster_refuses);
	ADD(new_binary_does_not_exist);
	ADD(new_binary_reads_another_version);
	ADD(new_binary_dies_half_way);
	ADD(new_binary_hangs);
	ADD(sigusr2_upgrades);
	ADD(loops_gather_then_upgrade);
	ADD(queued_output_moves);
	ADD(door_counts_follow);
	ADD(history_follows);
	ADD(deflate_parameters_move);
	ADD(deflate_takeover_moves);
	ADD(tls_connections_drain_others_move);
	ADD(handshake_in_progress_follows);
	ADD(systemd_follows_the_new_process);
	ADD(upgrade_2000_clients_3_times);
	ADD(ten_upgrades_under_worker_load);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
