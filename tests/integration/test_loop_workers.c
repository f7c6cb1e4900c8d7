/*
 * --loops 2 with workers, against the real gateway and real libwsgw workers (the test
 * worker of tests/lib/wtproc.h, which answers "w<worker> c<conn> <o|r>|<message>").
 */
#include "tests/lib/wstest.h"
#include "tests/lib/wtadmin.h"
#include "tests/lib/wtenv.h"
#include "tests/lib/wtproc.h"

#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define NCONN 40

static struct wt_env env;
static struct wt_proc wk[2];
static int wid[2];       /* worker ids, by worker */
static struct wt_conn conns[NCONN];

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

/* A SIGHUP that adds a worker pool reaches every loop's route map (only loop 0 takes
 * workers): a request for the new route read on loop 1 goes to the new pool's worker. */
START_TEST(a_reload_adds_a_pool_on_every_loop)
{
	char path[256];
	wt_env_init(&env);
	snprintf(path, sizeof(path), "%s/wsgw.conf", env.dir);
	FILE *f = fopen(path, "w");
	ck_assert_ptr_nonnull(f);
	fprintf(f, "[gateway]\nloops = 2\n[route /e]\npool = echo\n[route /w]\npool = tw\n");
	fclose(f);
	WT_ENV_GW_START(&env, "--config", path, "--admin", "127.0.0.1:0", NULL);
	f = fopen(path, "a");
	ck_assert_ptr_nonnull(f);
	fprintf(f, "[route /n]\npool = fresh\n");
	fclose(f);
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

int main(int argc, char **argv)
{
	if (argc > 1 && !strcmp(argv[1], "--as-worker"))
		return wt_worker_main(argc, argv);
	const struct wt_case cases[] = {
		{ "a_reload_adds_a_pool_on_every_loop", a_reload_adds_a_pool_on_every_loop, 60, 0 },
	};
	return wt_run_suite(WT_SUITE("loop_workers", cases));
}
