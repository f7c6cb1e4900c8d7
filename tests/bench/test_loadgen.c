/*
 * wsgw-bench's wss:// and permessage-deflate against a real build/wsgw (issue 11's figures
 * are only as good as these checks): echo over TLS verified against the test CA, echo with
 * --deflate and JSON payloads (plain, over TLS, through a worker), every echo checked and
 * none stranded; ingest and fanout over TLS; and the failures that must be failures: a CA
 * that did not sign the certificate, --deflate on a route with deflate=off. Counts only:
 * no assertion here depends on how fast anything ran.
 */
#include <check.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tests/lib/wstest.h"
#include "tests/lib/wtenv.h"
#include "tests/lib/wtproc.h"
#include "tests/lib/wttls.h"

#define MAX_ARGS 32

static struct wt_env env;

/* The gateway: ports[0] plain, ports[1] TLS; / echoes, /nd echoes without deflate, /w goes
 * to pool w, /bc to pool bc. */
static void gw_start(void)
{
	wt_env_init(&env);
	WT_ENV_GW_START(&env, "--listen", "127.0.0.1:0", "--listen", "127.0.0.1:0,tls",
			"--tls-cert", wt_tls_file("cert.pem"), "--tls-key", wt_tls_file("key.pem"),
			"--route", "/nd=echo,deflate=off", "--route", "/w=w", "--route", "/bc=bc",
			"--route", "/=echo", NULL);
	ck_assert_int_eq(env.gw.nlisten, 2);
}

/* Runs wsgw-bench against url (a %d in it takes the plain or the TLS port) with the
 * NULL-terminated arguments; its JSON line into json (none for a usage error, exit 2).
 * Returns the exit status. */
static int bench(char *json, size_t cap, int tls, const char *url, ...)
{
	const char *build = getenv("WSGW_BUILD");
	char prog[512], target[128], log[256], line[8192];
	const char *argv[MAX_ARGS];
	int argc = 0;
	va_list ap;

	snprintf(prog, sizeof(prog), "%s/wsgw-bench", build && *build ? build : "build");
	snprintf(target, sizeof(target), url, env.gw.ports[tls ? 1 : 0]);
	snprintf(log, sizeof(log), "%s/bench.out", env.dir);
	unlink(log);
	argv[argc++] = prog;
	argv[argc++] = "--target";
	argv[argc++] = target;
	argv[argc++] = "-q";
	va_start(ap, url);
	for (const char *a; (a = va_arg(ap, const char *)) && argc < MAX_ARGS - 1;)
		argv[argc++] = a;
	va_end(ap);
	argv[argc] = NULL;

	struct wt_proc p;
	ck_assert_int_eq(wt_proc_spawn(&p, argv, log), 0);
	ck_assert_msg(wt_proc_reap(&p, 60000) == 0, "wsgw-bench %s did not end", target);
	FILE *f = fopen(log, "re");
	ck_assert_ptr_nonnull(f);
	json[0] = 0;
	while (fgets(line, sizeof(line), f))
		if (line[0] == '{')
			snprintf(json, cap, "%s", line);
		else
			fputs(line, stderr); /* what it said on the way: a TLS failure's reason */
	fclose(f);
	int rc = WIFEXITED(p.status) ? WEXITSTATUS(p.status) : -1;
	ck_assert_msg(json[0] || rc == 2, "wsgw-bench %s printed no JSON (exit %d)", target, rc);
	return rc;
}

/* The number after "key": in the flat JSON object; fails the test when it is absent. */
static double num(const char *json, const char *key)
{
	char k[64];
	snprintf(k, sizeof(k), "\"%s\":", key);
	const char *p = strstr(json, k);
	ck_assert_msg(p, "no %s in %s", key, json);
	return strtod(p + strlen(k), NULL);
}

static int has(const char *json, const char *text)
{
	return strstr(json, text) != NULL;
}

/* Every connection opened, every echo came back and matched. */
static void expect_clean_echo(const char *json, int conns, const char *what)
{
	ck_assert_msg(has(json, "\"ok\":true"), "%s: %s", what, json);
	ck_assert_msg(num(json, "conns_open") == conns, "%s: %s", what, json);
	ck_assert_msg(num(json, "mismatches") == 0 && num(json, "stranded") == 0 &&
			      num(json, "protocol_errors") == 0 && num(json, "handshake_errors") == 0,
		      "%s: %s", what, json);
	ck_assert_msg(num(json, "msgs_rcvd") > 0, "%s: nothing echoed: %s", what, json);
	printf("%s: %.0f echoes checked\n", what, num(json, "msgs_rcvd"));
}

START_TEST(wss_echo_verified_against_the_ca)
{
	char json[8192];
	gw_start();
	int rc = bench(json, sizeof(json), 1, "wss://127.0.0.1:%d/", "--mode", "echo", "-c", "20",
		       "-k", "4", "-s", "100", "-d", "1", "--ca", wt_tls_file("ca.pem"), NULL);
	ck_assert_msg(rc == 0, "exit %d: %s", rc, json);
	ck_assert_msg(has(json, "\"tls\":true") && has(json, "\"target\":\"wss://"), "%s", json);
	expect_clean_echo(json, 20, "wss:// echo, 100 B");
	/* Messages of many records each, and a text (JSON) payload. */
	rc = bench(json, sizeof(json), 1, "wss://127.0.0.1:%d/", "--mode", "echo", "-c", "4", "-k",
		   "3", "-s", "200000", "--json-payload", "-d", "1", "--ca", wt_tls_file("ca.pem"),
		   NULL);
	ck_assert_msg(rc == 0, "exit %d: %s", rc, json);
	expect_clean_echo(json, 4, "wss:// echo, 200 KB JSON");
	wt_env_done(&env);
}
END_TEST

/* cert2.pem is not the CA that signed the gateway's certificate: nothing may open. */
START_TEST(wss_with_the_wrong_ca_fails_every_handshake)
{
	char json[8192];
	gw_start();
	int rc = bench(json, sizeof(json), 1, "wss://127.0.0.1:%d/", "--mode", "echo", "-c", "5",
		       "-d", "0.5", "--ca", wt_tls_file("cert2.pem"), NULL);
	ck_assert_msg(rc == 1 && has(json, "\"ok\":false"), "exit %d: %s", rc, json);
	ck_assert_msg(num(json, "handshake_errors") == 5 && num(json, "conns_open") == 0, "%s", json);
	/* The plain port does not speak TLS either. */
	rc = bench(json, sizeof(json), 0, "wss://127.0.0.1:%d/", "--mode", "echo", "-c", "5", "-d",
		   "0.5", NULL);
	ck_assert_msg(rc == 1 && num(json, "handshake_errors") == 5, "exit %d: %s", rc, json);
	wt_env_done(&env);
}
END_TEST

/* The gateway compresses its echoes of 2 KiB JSON (it leaves messages under 64 B alone):
 * deflate_in_ratio < 1 proves the inflate path ran, on every echo checked. */
static void expect_compressed(const char *json, const char *what)
{
	ck_assert_msg(has(json, "\"deflate\":true"), "%s: %s", what, json);
	double in = num(json, "deflate_in_ratio"), out = num(json, "deflate_out_ratio");
	ck_assert_msg(in > 0 && in < 0.6 && out > 0 && out < 0.6,
		      "%s: JSON should compress both ways: in %.3f, out %.3f: %s", what, in, out, json);
}

START_TEST(deflate_echo_plain_tls_and_through_a_worker)
{
	char json[8192];
	struct wt_proc w;
	gw_start();
	wt_env_worker(&env, &w, WT_WORKER_ECHO, "w", "echo-w");
	static const struct {
		int tls;
		const char *url, *what;
	} runs[] = {
		{ 0, "ws://127.0.0.1:%d/", "deflate echo" },
		{ 1, "wss://127.0.0.1:%d/", "deflate echo over wss://" },
		{ 0, "ws://127.0.0.1:%d/w", "deflate echo through wsgw-echo" },
		{ 1, "wss://127.0.0.1:%d/w", "deflate echo through wsgw-echo over wss://" },
	};
	for (size_t i = 0; i < sizeof(runs) / sizeof(runs[0]); i++) {
		int rc = bench(json, sizeof(json), runs[i].tls, runs[i].url, "--mode", "echo", "-c",
			       "20", "-k", "2", "-s", "2048", "--json-payload", "--deflate", "-d",
			       "1", runs[i].tls ? "--ca" : "-q",
			       runs[i].tls ? wt_tls_file("ca.pem") : "-q", NULL);
		ck_assert_msg(rc == 0, "%s: exit %d: %s", runs[i].what, rc, json);
		expect_clean_echo(json, 20, runs[i].what);
		expect_compressed(json, runs[i].what);
	}
	/* Small binary messages: compressed by us, echoed uncompressed, still checked. */
	int rc = bench(json, sizeof(json), 0, "ws://127.0.0.1:%d/", "--mode", "echo", "-c", "20",
		       "-k", "8", "-s", "32", "--deflate", "-d", "1", NULL);
	ck_assert_msg(rc == 0, "exit %d: %s", rc, json);
	expect_clean_echo(json, 20, "deflate echo, 32 B binary");
	ck_assert_msg(num(json, "deflate_in_plain_kib") == 0, "%s", json);
	/* The rate mode's open loop with both. */
	rc = bench(json, sizeof(json), 1, "wss://127.0.0.1:%d/", "--mode", "rate", "-c", "20", "-r",
		   "2000", "-s", "512", "--json-payload", "--deflate", "-d", "1", NULL);
	ck_assert_msg(rc == 0, "rate: exit %d: %s", rc, json);
	expect_clean_echo(json, 20, "deflate rate over wss://");
	wt_env_worker_stop(&w);
	wt_env_done(&env);
}
END_TEST

START_TEST(deflate_against_a_route_without_it_fails_the_handshakes)
{
	char json[8192];
	gw_start();
	int rc = bench(json, sizeof(json), 0, "ws://127.0.0.1:%d/nd", "--mode", "echo", "-c", "10",
		       "--deflate", "-d", "0.5", NULL);
	ck_assert_msg(rc == 1 && has(json, "\"ok\":false"), "exit %d: %s", rc, json);
	ck_assert_msg(num(json, "handshake_errors") == 10 && num(json, "conns_open") == 0 &&
			      num(json, "msgs_sent") == 0, "%s", json);
	/* The same route without --deflate is fine: the refusal was the extension's. */
	rc = bench(json, sizeof(json), 0, "ws://127.0.0.1:%d/nd", "--mode", "echo", "-c", "10",
		   "-d", "0.5", NULL);
	ck_assert_msg(rc == 0, "exit %d: %s", rc, json);
	expect_clean_echo(json, 10, "echo on a deflate=off route");
	/* Ingest keeps its pre-masked frames: --deflate is a usage error there. */
	rc = bench(json, sizeof(json), 0, "ws://127.0.0.1:%d/", "--mode", "ingest", "--deflate",
		   NULL);
	ck_assert_msg(rc == 2, "ingest --deflate: exit %d", rc);
	wt_env_done(&env);
}
END_TEST

/* Ingest over TLS: a block write that OpenSSL holds must finish before a pong or the close
 * goes out, or the gateway sees a frame cut in two (1002, peer_closed). */
START_TEST(ingest_and_fanout_over_wss)
{
	char json[8192];
	struct wt_proc bc;
	gw_start();
	int rc = bench(json, sizeof(json), 1, "wss://127.0.0.1:%d/", "--mode", "ingest", "-c", "20",
		       "-s", "100", "-d", "0.5", "--drain-timeout", "20", NULL);
	ck_assert_msg(rc == 0, "ingest: exit %d: %s", rc, json);
	ck_assert_msg(num(json, "close_ok") == 20 && num(json, "peer_closed") == 0 &&
			      num(json, "protocol_errors") == 0 && num(json, "msgs_sent") > 0,
		      "ingest: %s", json);
	printf("ingest over wss://: %.0f messages, 20 close handshakes\n", num(json, "msgs_sent"));

	const char *build = getenv("WSGW_BUILD");
	char prog[512], log[256];
	snprintf(prog, sizeof(prog), "%s/wsgw-broadcast", build && *build ? build : "build");
	snprintf(log, sizeof(log), "%s/bc.log", env.dir);
	const char *argv[] = { prog, "--control", env.control, "--pool", "bc", NULL };
	ck_assert_int_eq(wt_proc_spawn(&bc, argv, log), 0);
	ck_assert(wt_wait_attached(env.gw.log_path, "bc", bc.pid, WT_ATTACH_MS) > 0);
	rc = bench(json, sizeof(json), 1, "wss://127.0.0.1:%d/bc", "--mode", "fanout", "-c", "21",
		   "-k", "4", "-s", "300", "--json-payload", "--deflate", "-d", "1",
		   "--connect-timeout", "5", NULL);
	ck_assert_msg(rc == 0, "fanout: exit %d: %s", rc, json);
	ck_assert_msg(num(json, "mismatches") == 0 && num(json, "stranded") == 0 &&
			      num(json, "ready") == 21 && num(json, "deliveries") > 0,
		      "fanout: %s", json);
	expect_compressed(json, "fanout");
	printf("fanout over wss:// with deflate: %.0f deliveries checked\n",
	       num(json, "deliveries"));
	wt_env_worker_stop(&bc);
	wt_env_done(&env);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("wsgw-bench");
	TCase *tc = tcase_create("tls and deflate");
	tcase_add_unchecked_fixture(tc, wt_fixture_setup, wt_fixture_teardown);
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, wss_echo_verified_against_the_ca);
	tcase_add_test(tc, wss_with_the_wrong_ca_fails_every_handshake);
	tcase_add_test(tc, deflate_echo_plain_tls_and_through_a_worker);
	tcase_add_test(tc, deflate_against_a_route_without_it_fails_the_handshakes);
	tcase_add_test(tc, ingest_and_fanout_over_wss);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
