/*
 * Wake-ups over the shm transport (issue 15): the gateway's loop (gateway/loop.c) and
 * libwsgw's wsgw_wait spin for an adaptive budget (shm/spin.h) before they sleep. Spinning
 * is only worth it while work keeps coming: an idle gateway and worker must go back to
 * sleeping, and a sleeping side must still be woken when traffic resumes. A real gateway
 * and build/wsgw-echo, the spin ceilings at their largest so that a budget that never
 * shrinks, or a spin that never ends, shows.
 */
#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/lib/wstest.h"
#include "tests/lib/wtenv.h"
#include "tests/lib/wtproc.h"

#define CONNS 8
#define SPIN_MAX "1000" /* µs: the largest ceiling either side accepts */

/* The gateway and an echo worker, both allowed to spin SPIN_MAX µs; heartbeat in seconds
 * (it bounds how long either side sleeps: a quarter of it for the worker). */
static void start(struct wt_env *e, struct wt_proc *w, struct wt_conn *c, const char *hb)
{
	wt_env_init(e);
	WT_ENV_GW_START(e, "--route", "/=echo-pool", "--heartbeat", hb, "--wake-spin", SPIN_MAX, NULL);
	setenv("WSGW_WAKE_SPIN", SPIN_MAX, 1);
	wt_env_worker(e, w, WT_WORKER_ECHO, "echo-pool", "echo");
	unsetenv("WSGW_WAKE_SPIN");
	for (int i = 0; i < CONNS; i++)
		WT_EXPECT_OPEN(&c[i], "127.0.0.1", e->gw.port, "/");
}

static void stop(struct wt_env *e, struct wt_proc *w, struct wt_conn *c)
{
	for (int i = 0; i < CONNS; i++)
		wt_close(&c[i]);
	wt_env_worker_stop(w);
	wt_env_done(e);
}

/* Back-to-back rounds: the kind of traffic that grows both budgets. */
static void busy(struct wt_conn *c, int rounds, const char *what)
{
	for (int r = 0; r < rounds; r++)
		wt_echo_round(c, CONNS, r, what);
}

/*
 * (a) After traffic, an idle gateway and worker use no CPU to speak of: under 10% of a
 * core each over 2 s (a spinning side would use ~100%). With a 20 ms heartbeat the worker
 * waits in 5 ms slices and the gateway sweeps every 10 ms, so a budget of 1 ms that did
 * not shrink when waits time out would cost 10-20% and fail too.
 */
START_TEST(test_idle_uses_no_cpu)
{
	struct wt_env e;
	struct wt_proc w;
	struct wt_conn c[CONNS];

	memset(c, 0, sizeof(c));
	start(&e, &w, c, "0.02");
	busy(c, 300, "warm");
	wt_sleep_ms(200); /* the budgets shrink over the first idle waits */
	double g0 = wt_proc_cpu_s(e.gw.pid), w0 = wt_proc_cpu_s(w.pid);
	int64_t t0 = wt_now_ms();
	wt_sleep_ms(2000);
	double g1 = wt_proc_cpu_s(e.gw.pid), w1 = wt_proc_cpu_s(w.pid);
	double wall = (double)(wt_now_ms() - t0) / 1000.0;
	ck_assert_msg(g0 >= 0 && g1 >= 0 && w0 >= 0 && w1 >= 0, "cannot read /proc/PID/stat");
	printf("idle after traffic: gateway %.1f%%, worker %.1f%% of a core over %.1f s\n",
	       100 * (g1 - g0) / wall, 100 * (w1 - w0) / wall, wall);
	ck_assert_msg(g1 - g0 < 0.1 * wall, "the idle gateway used %.2f s of CPU in %.1f s",
		      g1 - g0, wall);
	ck_assert_msg(w1 - w0 < 0.1 * wall, "the idle worker used %.2f s of CPU in %.1f s",
		      w1 - w0, wall);
	/* And it still works. */
	wt_echo_round(c, CONNS, 0, "after idle");
	wt_gw_expect_alive(&e.gw);
	stop(&e, &w, c);
}
END_TEST

/*
 * (b) A side asleep after idleness is woken by the next message, not found by a timeout:
 * with a 10 s heartbeat the worker's sleeps last 2.5 s and the gateway's up to 1 s (its
 * sweep), so an echo within 500 ms, five times over, comes from the wake-up path on both
 * hops (gateway -> worker futex, worker -> the loop's eventfd). Normally it
 * takes well under a millisecond.
 */
START_TEST(test_wakes_after_idle)
{
	struct wt_env e;
	struct wt_proc w;
	struct wt_conn c[CONNS];
	char msg[64];

	memset(c, 0, sizeof(c));
	start(&e, &w, c, "10");
	for (int round = 0; round < 5; round++) {
		busy(c, 100, "burst");
		wt_sleep_ms(300); /* longer than any budget: both sides sleep in the kernel now */
		int64_t t0 = wt_now_ms();
		for (int i = 0; i < CONNS; i++) {
			int len = snprintf(msg, sizeof(msg), "wake r%d c%d", round, i);
			WT_OK(&c[i], wt_send_frame(&c[i], WT_TEXT, 1, msg, (size_t)len));
			WT_EXPECT_MESSAGE_T(&c[i], WT_TEXT, msg, (size_t)len, 500);
		}
		printf("round %d: %d echoes after 300 ms idle in %lld ms\n", round, CONNS,
		       (long long)(wt_now_ms() - t0));
	}
	wt_gw_expect_alive(&e.gw);
	stop(&e, &w, c);
}
END_TEST

/*
 * (c) The worker wakes the sleeping loop itself, through the loop's eventfd it received at
 * attach (docs/SHM.md, "Waking the gateway"): /metrics counts the loop's wake-ups by the
 * eventfd, and none of them came through the waker thread (wsgw_futex_relays_total, the
 * futex rings it relays for workers without the eventfd, stays 0). Between rounds both
 * sides sleep in the kernel (no spinning, a 10 s heartbeat), and the worker answers 5 ms
 * after each message, so its answer finds the loop asleep, as at 20 K msgs/s over 1,000
 * connections. (An echo worker that answers at once may run before the loop goes to sleep
 * when waking it preempts the loop on its core: then no eventfd is needed, and one run of
 * make check saw none in 20 rounds.)
 */
START_TEST(test_worker_writes_eventfd)
{
	struct wt_env e;
	struct wt_proc w;
	struct wt_conn c;
	char msg[64], body[32768];

	memset(&c, 0, sizeof(c));
	wt_env_init(&e);
	WT_ENV_GW_START(&e, "--route", "/=echo-pool", "--heartbeat", "10", "--wake-spin", "0",
			"--admin", "127.0.0.1:0", NULL);
	setenv("WSGW_WAKE_SPIN", "0", 1);
	int id = wt_env_worker(&e, &w, WT_WORKER_TEST, "echo-pool", "tw");
	unsetenv("WSGW_WAKE_SPIN");
	int admin = wt_gw_admin_port(&e.gw);
	ck_assert_int_gt(admin, 0);
	WT_EXPECT_OPEN(&c, "127.0.0.1", e.gw.port, "/");
	enum { ROUNDS = 20 };
	for (int round = 0; round < ROUNDS; round++) {
		wt_sleep_ms(20);
		int len = snprintf(msg, sizeof(msg), "later:5 eventfd r%d", round);
		WT_OK(&c, wt_send_frame(&c, WT_TEXT, 1, msg, (size_t)len));
		struct wt_frame f;
		ck_assert_int_eq(wt_read_message(&c, &f, 2000), 0);
		char want[96];
		int wn = snprintf(want, sizeof(want), "w%d c", id);
		const char *bar = memchr(f.payload, '|', f.len);
		ck_assert_msg(f.len > (size_t)wn && !memcmp(f.payload, want, (size_t)wn) && bar &&
				      f.len - (size_t)(bar + 1 - (const char *)f.payload) == (size_t)len &&
				      !memcmp(bar + 1, msg, (size_t)len),
			      "round %d: %.*s", round, (int)f.len, (const char *)f.payload);
		wt_frame_free(&f);
	}
	wt_http_get(admin, "/metrics", body, sizeof(body));
	double wakes = wt_metric(body, "wsgw_worker_wakeups_total");
	double relays = wt_metric(body, "wsgw_futex_relays_total");
	printf("%d answers to a sleeping loop: %.0f eventfd wake-ups, %.0f relayed by the waker thread\n",
	       ROUNDS, wakes, relays);
	ck_assert_msg(wakes >= 1, "no wake-up of the loop by its eventfd (%.0f)", wakes);
	ck_assert_msg(relays == 0, "%.0f of the loop's wake-ups went through the waker thread's futex",
		      relays);
	wt_gw_expect_alive(&e.gw);
	wt_close(&c);
	wt_env_worker_stop(&w);
	wt_env_done(&e);
}
END_TEST

int main(int argc, char **argv)
{
	if (argc > 1 && !strcmp(argv[1], "--as-worker"))
		return wt_worker_main(argc, argv);
	const struct wt_case cases[] = {
		{ "idle", test_idle_uses_no_cpu, 30, 1 },
		{ "wakes", test_wakes_after_idle, 30, 1 },
		{ "eventfd", test_worker_writes_eventfd, 30, 1 },
	};
	return wt_run_suite(WT_SUITE("wake-ups", cases));
}
