/*
 * --loops N against the real gateway: connections of a built-in route spread over the
 * loops by count, each keeps its messages in order, one whose request names a worker
 * route moves to loop 0, whose are the workers, with the frames that came behind its
 * request, a TLS listener's handshakes spread too, and the operator's kick, /connections,
 * a reload and the drain reach every loop (test_loop_workers: workers on every loop).
 * Built with TSan, the gateway's exit status tells whether the loops raced (make
 * check-tsan).
 */
#include "tests/lib/wstest.h"
#include "tests/lib/wtadmin.h"
#include "tests/lib/wtenv.h"
#include "tests/lib/wtproc.h"
#include "tests/lib/wttls.h"

#include <check.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define NCONN 40
#define NMSG 200

static struct wt_gw gw;
static struct wt_conn conns[NCONN];
static char resp[1 << 20];

static void teardown(void)
{
	wt_close_all();
	if (gw.pid)
		wt_gw_stop(&gw, 10000);
	unsetenv("WT_GW_WORKER");
}

static double metric(const char *series)
{
	const char *body;
	ck_assert_int_eq(wt_admin_get(wt_admin_port(&gw), "/metrics", NULL, resp, sizeof(resp), &body), 200);
	return wt_prom_value(body, series);
}

static void open_all(const char *path)
{
	for (int i = 0; i < NCONN; i++)
		WT_EXPECT_OPEN(&conns[i], "127.0.0.1", gw.port, path);
}

/* Every connection sends NMSG numbered messages before reading any: the answers must
 * come back whole and in order on each. */
static void echo_in_order(void)
{
	char m[32];
	for (int k = 0; k < NMSG; k++)
		for (int i = 0; i < NCONN; i++) {
			int n = snprintf(m, sizeof(m), "conn %d msg %d", i, k);
			WT_OK(&conns[i], wt_send_frame(&conns[i], 1, 1, m, (size_t)n));
		}
	for (int i = 0; i < NCONN; i++)
		for (int k = 0; k < NMSG; k++) {
			int n = snprintf(m, sizeof(m), "conn %d msg %d", i, k);
			WT_EXPECT_MESSAGE(&conns[i], 1, m, (size_t)n);
		}
}

START_TEST(spread_by_count_in_order)
{
	WT_GW_START(&gw, "--loops", "3", "--route", "/=echo", "--admin", "127.0.0.1:0", NULL);
	open_all("/");
	/* Accepted one after the other, each goes to the loop with the fewest. */
	for (int l = 0; l < 3; l++) {
		char series[64];
		snprintf(series, sizeof(series), "wsgw_loop_connections{loop=\"%d\"}", l);
		double n = metric(series);
		ck_assert_msg(n >= NCONN / 3 && n <= NCONN / 3 + 1, "loop %d owns %.0f of %d", l, n, NCONN);
	}
	echo_in_order();
	ck_assert_double_eq(metric("wsgw_messages_in_total"), NCONN * NMSG);
	WT_GW_STOP(&gw);
}
END_TEST

/* Opens c on path with the request and a first frame sent together: in one write, or
 * (split) in two, which over TLS are two records, corked into one segment so the gateway
 * reads both at once and OpenSSL holds the second while the first moves the connection.
 * The frame's echo must come back. */
static void open_with_early_frame(struct wt_conn *c, const char *path, int i, int split)
{
	char req[1024], both[1200];
	WT_OK(c, wt_connect(c, "127.0.0.1", gw.port));
	int n = wt_request_build(c, req, sizeof(req), path, NULL);
	ck_assert_int_gt(n, 0);
	size_t flen;
	char first[32];
	int fl = snprintf(first, sizeof(first), "early %d", i);
	uint8_t *f = wt_frame_encode(&(struct wt_frame_spec){ .opcode = 1, .fin = 1,
						.payload = first, .len = (size_t)fl }, &flen);
	if (split) {
		int on = 1, off = 0;
		ck_assert_int_eq(setsockopt(c->fd, IPPROTO_TCP, TCP_CORK, &on, sizeof(on)), 0);
		WT_OK(c, wt_send_raw(c, req, (size_t)n));
		WT_OK(c, wt_send_raw(c, f, flen));
		ck_assert_int_eq(setsockopt(c->fd, IPPROTO_TCP, TCP_CORK, &off, sizeof(off)), 0);
	} else {
		memcpy(both, req, (size_t)n);
		memcpy(both + n, f, flen);
		WT_OK(c, wt_send_raw(c, both, (size_t)n + flen));
	}
	free(f);
	struct wt_http r;
	WT_EXPECT_HTTP(c, &r, 101);
	WT_EXPECT_MESSAGE(c, 1, first, (size_t)fl);
}

static void use_echo_worker(void)
{
	char worker[256];
	wt_build_path(worker, sizeof(worker), "wsgw-echo");
	setenv("WT_GW_WORKER", worker, 1);
}

START_TEST(worker_route_moves_to_loop_0)
{
	use_echo_worker();
	WT_GW_START(&gw, "--loops", "2", "--route", "/e=echo", "--route", "/w=conf", "--admin", "127.0.0.1:0",
		    "--static", "tests", NULL);
	/* Half on the built-in route first, so the worker route's requests are read on
	 * loop 1 as often as on loop 0. */
	for (int i = 0; i < NCONN / 2; i++)
		WT_EXPECT_OPEN(&conns[i], "127.0.0.1", gw.port, "/e");
	for (int i = NCONN / 2; i < NCONN; i++)
		open_with_early_frame(&conns[i], "/w", i, 0);
	ck_assert_double_eq(metric("wsgw_loop_connections{loop=\"0\"}") +
				    metric("wsgw_loop_connections{loop=\"1\"}"), NCONN);
	ck_assert_double_ge(metric("wsgw_loop_connections{loop=\"0\"}"), NCONN / 2);
	ck_assert_double_eq(metric("wsgw_pool_workers{pool=\"conf\"}"), 1);
	/* /metrics on the listener (with --static) is answered by loop 1, which owns the
	 * fewest now: it knows loop 0's worker. */
	for (int k = 0; k < 2; k++) {
		char page[1 << 15];
		wt_http_get(gw.port, "/metrics", page, sizeof(page));
		ck_assert_msg(strstr(page, "\nwsgw_workers 1\n"), "GET /metrics %d: %.300s", k, page);
	}
	echo_in_order();
	WT_GW_STOP(&gw);
}
END_TEST

/* The id of a connection /connections lists on route, the n-th. */
static unsigned long long listed_id(const char *body, int nth)
{
	const char *p = body;
	for (int i = 0; i <= nth; i++) {
		p = strstr(p, "{\"id\":");
		ck_assert_ptr_nonnull(p);
		p += 6;
	}
	return strtoull(p, NULL, 10);
}

START_TEST(kick_list_reload_drain_reach_every_loop)
{
	char cfgpath[128];
	snprintf(cfgpath, sizeof(cfgpath), "/tmp/wsgw-test-loops-%d.conf", (int)getpid());
	FILE *f = fopen(cfgpath, "w");
	ck_assert_ptr_nonnull(f);
	fprintf(f, "[gateway]\nloops = 2\n[route /]\npool = echo\n");
	fclose(f);
	WT_GW_START(&gw, "--config", cfgpath, "--admin", "127.0.0.1:0", NULL);
	open_all("/");
	int port = wt_admin_port(&gw);
	const char *body;
	ck_assert_int_eq(wt_admin_get(port, "/connections", NULL, resp, sizeof(resp), &body), 200);
	ck_assert_msg(strstr(body, "\"total\":40,"), "/connections: %.300s", body);
	ck_assert_msg(strstr(body, "\"loop\":0,") && strstr(body, "\"loop\":1,"),
		      "/connections names both loops: %.300s", body);

	/* Every listed connection can be kicked, whichever loop owns it. */
	for (int k = 0; k < 4; k++) {
		unsigned long long id = listed_id(body, k);
		char req[256], out[4096];
		const char *b2;
		snprintf(req, sizeof(req), "POST /connections/%llu/close?code=4000 HTTP/1.1\r\nHost: x\r\n"
			 "Content-Length: 0\r\n\r\n", id);
		ck_assert_int_eq(wt_admin_raw(port, req, out, sizeof(out), &b2), 200);
	}
	int kicked = 0;
	for (int i = 0; i < NCONN; i++) {
		struct wt_frame fr;
		if (wt_read_frame(&conns[i], &fr, 100) == 0) {
			ck_assert_int_eq(fr.opcode, 8);
			ck_assert_int_eq(wt_close_code(&fr), 4000);
			wt_frame_free(&fr);
			wt_close(&conns[i]);
			kicked++;
		}
	}
	ck_assert_int_eq(kicked, 4);

	/* A reload's limit holds on every loop: a message over the new max-message closes
	 * each connection with 1009. */
	f = fopen(cfgpath, "w");
	ck_assert_ptr_nonnull(f);
	fprintf(f, "[gateway]\nloops = 2\n[route /]\npool = echo\nmax-message = 64\n");
	fclose(f);
	kill(gw.pid, SIGHUP);
	int64_t deadline = wt_now_ms() + 5000;
	while (!wt_gw_log_contains(&gw, "SIGHUP: reloaded") && wt_now_ms() < deadline)
		wt_sleep_ms(20);
	ck_assert(wt_gw_log_contains(&gw, "SIGHUP: reloaded"));
	wt_sleep_ms(100); /* the other loop takes the settings at its next iteration */
	char big[100];
	memset(big, 'x', sizeof(big));
	int open_left = 0;
	for (int i = 0; i < NCONN; i++) {
		if (conns[i].fd < 0)
			continue;
		if (open_left++ % 2)
			continue; /* the other half stays for the drain */
		WT_OK(&conns[i], wt_send_frame(&conns[i], 1, 1, big, sizeof(big)));
		WT_EXPECT_CLOSE(&conns[i], 1009);
		wt_close(&conns[i]);
	}

	/* SIGTERM: every connection left, on either loop, is sent 1001. */
	kill(gw.pid, SIGTERM);
	for (int i = 0; i < NCONN; i++) {
		if (conns[i].fd < 0)
			continue;
		WT_EXPECT_CLOSE(&conns[i], 1001);
		WT_OK(&conns[i], wt_send_close(&conns[i], 1001, NULL, 0));
		wt_close(&conns[i]);
	}
	ck_assert_int_eq(wt_gw_wait(&gw, 10000), 0);
	ck_assert_msg(WIFEXITED(gw.status) && WEXITSTATUS(gw.status) == 0, "gateway status %d", gw.status);
	gw.pid = 0;
	unlink(cfgpath);
}
END_TEST

#define NRACE 150

/* SIGTERM while connections are between loops: accepted on loop 0 and handed to loop 1,
 * or read there and moving back for the worker route. Each is either refused before its
 * upgrade or, once it got 101, sent 1001; none is upgraded after the drain looked and
 * then cut at its deadline without a close frame. Rounds, since the window is short. */
START_TEST(drain_reaches_connections_between_loops)
{
	static struct wt_conn race[NRACE];
	use_echo_worker();
	for (int round = 0; round < 4; round++) {
		WT_GW_START(&gw, "--loops", "2", "--route", "/e=echo", "--route", "/w=conf", NULL);
		/* Loop 1 first owns the fewest, so requests are read there and move. */
		WT_EXPECT_OPEN(&conns[0], "127.0.0.1", gw.port, "/e");
		char req[1024];
		for (int i = 0; i < NRACE; i++) {
			WT_OK(&race[i], wt_connect(&race[i], "127.0.0.1", gw.port));
			int n = wt_request_build(&race[i], req, sizeof(req), "/w", NULL);
			ck_assert_int_gt(n, 0);
			WT_OK(&race[i], wt_send_raw(&race[i], req, (size_t)n));
		}
		ck_assert_int_eq(kill(gw.pid, SIGTERM), 0);
		int upgraded = 0;
		for (int i = 0; i < NRACE; i++) {
			struct wt_http r;
			if (wt_http_read(&race[i], &r) != 101) {
				wt_close(&race[i]);
				continue; /* refused, or closed in its handshake: both fine */
			}
			upgraded++;
			struct wt_frame fr;
			int rc = wt_read_frame(&race[i], &fr, 5000);
			ck_assert_msg(rc == 0 && fr.opcode == 8 && wt_close_code(&fr) == 1001,
				      "round %d: connection %d upgraded but not sent 1001 (rc %d)", round, i, rc);
			wt_frame_free(&fr);
			WT_OK(&race[i], wt_send_close(&race[i], 1001, NULL, 0));
			wt_close(&race[i]);
		}
		WT_EXPECT_CLOSE(&conns[0], 1001);
		wt_close(&conns[0]);
		ck_assert_int_eq(wt_gw_wait(&gw, 10000), 0);
		ck_assert_msg(!wt_gw_log_contains(&gw, "drain deadline"), "round %d (%d upgraded)", round,
			      upgraded);
		gw.pid = 0;
	}
}
END_TEST

/* Points link at target, replacing what it was (a certificate renewed in place). */
static void relink(const char *target, const char *link)
{
	char tmp[256], abs[PATH_MAX];
	snprintf(tmp, sizeof(tmp), "%s.new", link);
	unlink(tmp);
	ck_assert_ptr_nonnull(realpath(target, abs));
	ck_assert_int_eq(symlink(abs, tmp), 0);
	ck_assert_int_eq(rename(tmp, link), 0);
}

static void expect_cn(struct wt_conn *c, const char *want)
{
	char cn[64];
	ck_assert_int_eq(wt_tls_peer_cn(c->tls, cn, sizeof(cn)), 0);
	ck_assert_str_eq(cn, want);
}

/* A TLS listener's handshakes run on every loop: its connections spread by count, a
 * worker route's move to loop 0 after the handshake with what OpenSSL read ahead behind
 * the request, and a reload's certificate serves the next connections, here all on loop 1. */
START_TEST(tls_handshakes_spread)
{
	char dir[128], cert[192], key[192];
	ck_assert_int_eq(wt_dir_new(dir, sizeof(dir)), 0);
	snprintf(cert, sizeof(cert), "%s/cert.pem", dir);
	snprintf(key, sizeof(key), "%s/key.pem", dir);
	relink(wt_tls_file("cert.pem"), cert);
	relink(wt_tls_file("key.pem"), key);
	use_echo_worker();
	WT_GW_START(&gw, "--loops", "2", "--listen", "127.0.0.1:0,tls", "--tls-cert", cert, "--tls-key", key,
		    "--route", "/e=echo", "--route", "/w=conf", "--admin", "127.0.0.1:0", NULL);
	for (int i = 0; i < NCONN / 2; i++) {
		WT_EXPECT_OPEN(&conns[i], "127.0.0.1", gw.port, "/e");
		expect_cn(&conns[i], "localhost");
	}
	ck_assert_double_eq(metric("wsgw_loop_connections{loop=\"1\"}"), NCONN / 4);
	/* Loop 1 owns the fewest from now on: it takes every handshake, and each connection
	 * moves to loop 0 once its request is read. */
	for (int i = NCONN / 2; i < NCONN; i++)
		open_with_early_frame(&conns[i], "/w", i, 1);
	ck_assert_double_eq(metric("wsgw_loop_connections{loop=\"0\"}"), NCONN / 4 + NCONN / 2);
	ck_assert_double_eq(metric("wsgw_loop_connections{loop=\"1\"}"), NCONN / 4);
	echo_in_order();

	relink(wt_tls_file("cert2.pem"), cert);
	relink(wt_tls_file("key2.pem"), key);
	ck_assert_int_eq(kill(gw.pid, SIGHUP), 0);
	ck_assert(wt_wait_file(gw.log_path, "TLS: SIGHUP: reloaded", 5000));
	struct wt_conn more[4];
	for (int i = 0; i < 4; i++) {
		WT_EXPECT_OPEN(&more[i], "127.0.0.1", gw.port, "/e");
		expect_cn(&more[i], "localhost2");
	}
	ck_assert_double_eq(metric("wsgw_loop_connections{loop=\"1\"}"), NCONN / 4 + 4);
	for (int i = 0; i < 4; i++) {
		WT_OK(&more[i], wt_send_frame(&more[i], 1, 1, "renewed", 7));
		WT_EXPECT_MESSAGE(&more[i], 1, "renewed", 7);
		wt_close(&more[i]);
	}
	echo_in_order();
	WT_GW_STOP(&gw);
	unlink(cert);
	unlink(key);
	wt_dir_remove(dir);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("loops");
	TCase *tc = tcase_create("loops");
	tcase_add_checked_fixture(tc, NULL, teardown);
	tcase_add_unchecked_fixture(tc, wt_fixture_setup, wt_fixture_teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, spread_by_count_in_order);
	tcase_add_test(tc, worker_route_moves_to_loop_0);
	tcase_add_test(tc, kick_list_reload_drain_reach_every_loop);
	tcase_add_test(tc, tls_handshakes_spread);
	tcase_add_test(tc, drain_reaches_connections_between_loops);
	suite_add_tcase(s, tc);
	return wt_run_suite(s);
}
