/*
 * Supervision (gateway/supervise.c) with real processes: a supervised worker killed with
 * SIGKILL comes back within its backoff while its clients keep their connections and get
 * every message; one that exits at once is restarted with doubling delays up to its cap,
 * never in a tight loop; restart = on-failure leaves a clean exit alone; a reload adds and
 * retires instances; the gateway stops its workers when it stops, and workers it does not
 * run attach beside them as before.
 */
#include "tests/lib/wstest.h"
#include "tests/lib/wtenv.h"
#include "tests/lib/wtproc.h"

#include <check.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char conf[256];

static void write_conf(const struct wt_env *e, const char *workers)
{
	const char *b = getenv("WSGW_BUILD");
	char build[300];
	if (b && b[0] == '/')
		snprintf(build, sizeof(build), "%s", b);
	else
		snprintf(build, sizeof(build), "%s/%s", getcwd((char[256]){ 0 }, 256), b ? b : "build");
	snprintf(conf, sizeof(conf), "%s/wsgw.conf", e->dir);
	FILE *f = fopen(conf, "w");
	ck_assert_ptr_nonnull(f);
	fprintf(f, "[route /]\npool = demo\n[pool demo]\norphan-timeout = 30\n");
	/* "ECHO" in the workers' text is the echo worker's command line. */
	for (const char *p = workers; *p; p++) {
		if (!strncmp(p, "ECHO", 4)) {
			fprintf(f, "%s/wsgw-echo --control $WSGW_CONTROL --pool $WSGW_POOL", build);
			p += 3;
		} else {
			fputc(*p, f);
		}
	}
	fclose(f);
}

/* The pid of the n-th (from 1) "worker NAME[I] started (pid P" line, waiting for it. */
static pid_t started_pid(const struct wt_env *e, const char *inst, int n, int ms)
{
	char needle[128];
	snprintf(needle, sizeof(needle), "worker %s started (pid ", inst);
	for (int64_t end = wt_now_ms() + ms; wt_now_ms() < end; wt_sleep_ms(20)) {
		if (wt_count_file(e->gw.log_path, needle) < n)
			continue;
		FILE *f = fopen(e->gw.log_path, "r");
		char line[2048];
		int seen = 0;
		pid_t pid = 0;
		while (f && fgets(line, sizeof(line), f))
			if (strstr(line, needle) && ++seen == n)
				pid = (pid_t)atoi(strstr(line, needle) + strlen(needle));
		if (f)
			fclose(f);
		return pid;
	}
	return 0;
}

START_TEST(killed_worker_comes_back_and_clients_stay)
{
	struct wt_env e;
	static struct wt_conn c[10];
	wt_env_init(&e);
	write_conf(&e, "[worker echo]\npool = demo\ncommand = ECHO\nbackoff = 0.3\n");
	WT_ENV_GW_START(&e, "--config", conf, NULL);
	pid_t p1 = started_pid(&e, "echo[0]", 1, 5000);
	ck_assert_int_gt(p1, 0);
	ck_assert_int_gt(wt_wait_attached(e.gw.log_path, "demo", p1, WT_ATTACH_MS), 0);
	for (int i = 0; i < 10; i++)
		WT_EXPECT_OPEN(&c[i], "127.0.0.1", e.gw.port, "/");
	wt_echo_round(c, 10, 0, "before");
	int64_t killed = wt_now_ms();
	ck_assert_int_eq(kill(p1, SIGKILL), 0);
	/* Messages sent while it is gone wait for the next one. */
	for (int i = 0; i < 10; i++)
		WT_OK(&c[i], wt_send_frame(&c[i], WT_TEXT, 1, "meanwhile", 9));
	pid_t p2 = started_pid(&e, "echo[0]", 2, 10000);
	int64_t back = wt_now_ms();
	ck_assert_msg(p2 > 0 && p2 != p1, "not restarted");
	ck_assert_msg(wt_gw_log_contains(&e.gw, "was killed by signal 9 (Killed)") &&
		      wt_gw_log_contains(&e.gw, "restarting in 300 ms (restart 1)"), "no restart line");
	/* Within its backoff: not before it, and not long after. */
	ck_assert_msg(back - killed >= 250 && back - killed < 5000, "back after %lld ms", (long long)(back - killed));
	ck_assert_int_gt(wt_wait_attached(e.gw.log_path, "demo", p2, WT_ATTACH_MS), 0);
	for (int i = 0; i < 10; i++)
		WT_EXPECT_MESSAGE_T(&c[i], WT_TEXT, "meanwhile", 9, 10000);
	wt_echo_round(c, 10, 1, "after");
	wt_close_all();
	wt_env_gw_stop(&e);
	/* Stopped with the gateway, by its pid. */
	ck_assert_msg(kill(p2, 0) == -1 && errno == ESRCH, "worker %d outlived the gateway", (int)p2);
	wt_env_done(&e);
}
END_TEST

START_TEST(quick_exit_backs_off)
{
	struct wt_env e;
	wt_env_init(&e);
	write_conf(&e, "[worker bad]\npool = demo\ncommand = sh -c 'exit 3'\nbackoff = 0.1\nbackoff-max = 0.8\n");
	WT_ENV_GW_START(&e, "--config", conf, NULL);
	wt_sleep_ms(3500);
	int starts = wt_count_file(e.gw.log_path, "worker bad[0] started");
	/* 100 + 200 + 400 + 800 + 800 ms ... : about 6 starts in 3.5 s, never dozens. */
	ck_assert_msg(starts >= 4 && starts <= 8, "%d starts in 3.5 s", starts);
	FILE *f = fopen(e.gw.log_path, "r");
	char line[2048];
	int delays[32], n = 0;
	while (f && fgets(line, sizeof(line), f) && n < 32) {
		char *p = strstr(line, "restarting in ");
		if (p && strstr(line, "worker bad[0]")) {
			ck_assert_msg(strstr(line, "exited with status 3"), "%s", line);
			delays[n++] = atoi(p + 14);
		}
	}
	if (f)
		fclose(f);
	ck_assert_int_ge(n, 4);
	static const int want[] = { 100, 200, 400, 800, 800, 800, 800, 800 };
	for (int i = 0; i < n && i < 8; i++)
		ck_assert_msg(delays[i] == want[i], "delay %d is %d ms, wanted %d", i, delays[i], want[i]);
	wt_env_done(&e);
}
END_TEST

START_TEST(on_failure_leaves_clean_exit)
{
	struct wt_env e;
	wt_env_init(&e);
	write_conf(&e, "[worker once]\npool = demo\ncommand = true\nrestart = on-failure\nbackoff = 0.1\n");
	WT_ENV_GW_START(&e, "--config", conf, NULL);
	ck_assert(wt_wait_file(e.gw.log_path, "worker once[0] exited with status 0", 5000));
	ck_assert(wt_wait_file(e.gw.log_path, "not restarted (restart = on-failure)", 1000));
	wt_sleep_ms(500);
	ck_assert_int_eq(wt_count_file(e.gw.log_path, "worker once[0] started"), 1);
	wt_env_done(&e);
}
END_TEST

START_TEST(reload_follows_workers_and_others_attach)
{
	struct wt_env e;
	struct wt_proc ext;
	static struct wt_conn c[4];
	wt_env_init(&e);
	write_conf(&e, "[worker echo]\npool = demo\ncommand = ECHO\n");
	WT_ENV_GW_START(&e, "--config", conf, NULL);
	pid_t p0 = started_pid(&e, "echo[0]", 1, 5000);
	ck_assert_int_gt(wt_wait_attached(e.gw.log_path, "demo", p0, WT_ATTACH_MS), 0);
	/* A worker the gateway does not run (systemd's, say) attaches beside it. */
	wt_env_worker(&e, &ext, WT_WORKER_ECHO, "demo", "external");
	for (int i = 0; i < 4; i++)
		WT_EXPECT_OPEN(&c[i], "127.0.0.1", e.gw.port, "/");
	wt_echo_round(c, 4, 0, "two");
	write_conf(&e, "[worker echo]\npool = demo\ncommand = ECHO\ninstances = 2\n");
	kill(e.gw.pid, SIGHUP);
	pid_t p1 = started_pid(&e, "echo[1]", 1, 5000);
	ck_assert_int_gt(p1, 0);
	ck_assert_int_gt(wt_wait_attached(e.gw.log_path, "demo", p1, WT_ATTACH_MS), 0);
	ck_assert_int_eq(started_pid(&e, "echo[0]", 2, 300), 0); /* the first one stays */
	write_conf(&e, "");
	kill(e.gw.pid, SIGHUP);
	ck_assert(wt_wait_gone(e.gw.log_path, "demo", p0, 5000));
	ck_assert(wt_wait_gone(e.gw.log_path, "demo", p1, 5000));
	ck_assert(wt_wait_file(e.gw.log_path, "SIGHUP: worker echo removed: stopping it", 1000));
	/* Their clients moved to the external worker and go on. */
	wt_echo_round(c, 4, 1, "one");
	wt_close_all();
	wt_env_worker_stop(&ext);
	wt_env_done(&e);
}
END_TEST

int main(int argc, char **argv)
{
	(void)argc, (void)argv;
	Suite *s = suite_create("supervise");
	TCase *tc = tcase_create("supervise");
	tcase_add_unchecked_fixture(tc, wt_fixture_setup, wt_fixture_teardown);
	tcase_set_timeout(tc, 90);
	tcase_add_test(tc, killed_worker_comes_back_and_clients_stay);
	tcase_add_test(tc, quick_exit_backs_off);
	tcase_add_test(tc, on_failure_leaves_clean_exit);
	tcase_add_test(tc, reload_follows_workers_and_others_attach);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_ENV);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
