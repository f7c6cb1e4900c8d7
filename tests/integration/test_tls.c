/*
 * TLS listeners (",tls"): real clients (this suite's OpenSSL client, `openssl s_client`),
 * the versions and ALPN a browser meets, peers that do not speak TLS or stall in the
 * handshake, and the certificate reloaded on SIGHUP under open connections. The
 * conformance suites run over TLS too (make check: WT_TLS=1).
 */
#include "tests/lib/wstest.h"
#include "tests/lib/wtproc.h"
#include "tests/lib/wttls.h"

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static struct wt_gw gw;

static void start_tls(const char *cert, const char *key)
{
	WT_GW_START(&gw, "--listen", "127.0.0.1:0,tls", "--tls-cert", cert, "--tls-key", key,
		    "--admin", "127.0.0.1:0", "--handshake-timeout", "1", NULL);
}

static double metric(const char *series)
{
	static char resp[65536];
	wt_http_get(wt_gw_admin_port(&gw), "/metrics", resp, sizeof(resp));
	return wt_metric(resp, series);
}

static void echo_once(struct wt_conn *c, const char *text)
{
	WT_OK(c, wt_send_frame(c, WT_TEXT, 1, text, strlen(text)));
	WT_EXPECT_MESSAGE(c, WT_TEXT, text, strlen(text));
}

/* Runs `openssl s_client` against the gateway with the extra options; its output in out. */
static void s_client(const char *const *opts, char *out, size_t cap)
{
	char dir[128], log[192], port[16];
	const char *argv[24] = { "/usr/bin/openssl", "s_client", "-connect", NULL, "-CAfile",
				 wt_tls_file("ca.pem"), "-servername", "localhost" };
	int n = 8;
	snprintf(port, sizeof(port), "127.0.0.1:%d", gw.port);
	argv[3] = port;
	for (; *opts && n < 23; opts++)
		argv[n++] = *opts;
	argv[n] = NULL;
	ck_assert_int_eq(wt_dir_new(dir, sizeof(dir)), 0);
	snprintf(log, sizeof(log), "%s/s_client.log", dir);
	struct wt_proc p;
	ck_assert_int_eq(wt_proc_spawn(&p, argv, log), 0);
	/* stdin is /dev/null: it closes as soon as the handshake is over. */
	ck_assert_msg(wt_proc_reap(&p, 10000) == 0, "openssl s_client did not finish");
	int fd = open(log, O_RDONLY | O_CLOEXEC);
	ssize_t r = fd >= 0 ? read(fd, out, cap - 1) : -1;
	out[r > 0 ? r : 0] = 0;
	if (fd >= 0)
		close(fd);
	wt_dir_remove(dir);
}

START_TEST(test_versions_alpn_and_metrics)
{
	static char out[32768];
	struct wt_conn c;
	char cn[64];

	start_tls(wt_tls_file("cert.pem"), wt_tls_file("key.pem"));
	/* This suite's client: TLS 1.3 by default, the certificate verified for 127.0.0.1. */
	WT_EXPECT_OPEN(&c, "127.0.0.1", gw.port, "/");
	ck_assert_str_eq(wt_tls_version(c.tls), "TLSv1.3");
	ck_assert_int_eq(wt_tls_peer_cn(c.tls, cn, sizeof(cn)), 0);
	ck_assert_str_eq(cn, "localhost");
	echo_once(&c, "over TLS 1.3");

	/* A browser's offer: h2 and http/1.1; WebSocket needs HTTP/1.1. TLS 1.2 still works. */
	const char *tls12[] = { "-tls1_2", "-alpn", "h2,http/1.1", NULL };
	s_client(tls12, out, sizeof(out));
	ck_assert_msg(strstr(out, "New, TLSv1.2,"), "s_client -tls1_2: %s", out);
	ck_assert_msg(strstr(out, "ALPN protocol: http/1.1"), "no ALPN http/1.1: %s", out);
	ck_assert_msg(strstr(out, "Verify return code: 0 (ok)"), "not verified: %s", out);
	const char *tls13[] = { "-tls1_3", "-alpn", "http/1.1", NULL };
	s_client(tls13, out, sizeof(out));
	ck_assert_msg(strstr(out, "New, TLSv1.3,"), "s_client -tls1_3: %s", out);

	/* TLS 1.1 is refused, logged, counted. */
	const char *tls11[] = { "-tls1_1", "-cipher", "DEFAULT:@SECLEVEL=0", NULL };
	s_client(tls11, out, sizeof(out));
	ck_assert_msg(!strstr(out, "New, TLSv1"), "TLS 1.1 was accepted: %s", out);
	ck_assert(wt_gw_log_contains(&gw, "TLS handshake failed"));

	echo_once(&c, "still there");
	ck_assert_int_eq((int)metric("wsgw_tls_handshakes_total"), 3);
	ck_assert_int_eq((int)metric("wsgw_tls_handshake_failures_total"), 1);
	wt_close(&c);
	WT_GW_STOP(&gw);
}
END_TEST

/* What arrives on a TLS port that is not TLS, or not all of it: each is closed (plain
 * HTTP with a 400 saying why), at the handshake deadline at the latest, logged, and a
 * client in the middle of its conversation meets none of it. */
START_TEST(test_non_tls_and_stalled_peers)
{
	struct wt_conn ok, plain, junk, silent, partial;
	char buf[512];

	start_tls(wt_tls_file("cert.pem"), wt_tls_file("key.pem"));
	WT_EXPECT_OPEN(&ok, "127.0.0.1", gw.port, "/");
	echo_once(&ok, "before");

	WT_OK(&silent, wt_connect_tcp(&silent, "127.0.0.1", gw.port));
	WT_OK(&partial, wt_connect_tcp(&partial, "127.0.0.1", gw.port));
	/* The first bytes of a ClientHello: a record of 200 bytes announced, 21 sent. */
	static const unsigned char hello[] = { 0x16, 0x03, 0x01, 0x00, 0xc8, 0x01, 0x00, 0x00,
		0xc4, 0x03, 0x03, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10 };
	WT_OK(&partial, wt_send_raw(&partial, hello, sizeof(hello)));

	WT_OK(&plain, wt_connect_tcp(&plain, "127.0.0.1", gw.port));
	const char *req = "GET / HTTP/1.1\r\nHost: localhost\r\n\r\n";
	WT_OK(&plain, wt_send_raw(&plain, req, strlen(req)));
	struct wt_http r;
	ck_assert_int_eq(wt_http_read(&plain, &r), 400);
	WT_EXPECT_EOF(&plain);

	WT_OK(&junk, wt_connect_tcp(&junk, "127.0.0.1", gw.port));
	wt_fill(buf, sizeof(buf), 7, 0);
	buf[0] = 0x17; /* not a handshake record */
	WT_OK(&junk, wt_send_raw(&junk, buf, sizeof(buf)));
	WT_EXPECT_EOF(&junk);

	/* While the two stalled ones wait for their deadline (1 s), the client talks on. */
	for (int i = 0; i < 10; i++) {
		char m[32];
		snprintf(m, sizeof(m), "during %d", i);
		echo_once(&ok, m);
		wt_sleep_ms(100);
	}
	ck_assert_int_eq(wt_wait_eof(&silent, 5000), 0);
	ck_assert_int_eq(wt_wait_eof(&partial, 5000), 0);
	ck_assert_int_eq(wt_count_file(gw.log_path, "TLS handshake not complete within --handshake-timeout"), 2);
	ck_assert(wt_gw_log_contains(&gw, "plain HTTP sent to a TLS port"));
	echo_once(&ok, "after");
	ck_assert_int_eq((int)metric("wsgw_tls_handshake_failures_total"), 4);
	ck_assert_int_eq((int)metric("wsgw_rejected_total{status=\"400\"}"), 1);
	wt_close(&silent);
	wt_close(&partial);
	wt_close(&plain);
	wt_close(&junk);
	wt_close(&ok);
	WT_GW_STOP(&gw);
}
END_TEST

static void copy_file(const char *from, const char *to)
{
	char buf[8192];
	int in = open(from, O_RDONLY | O_CLOEXEC);
	int out = open(to, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	ck_assert(in >= 0 && out >= 0);
	ssize_t n;
	while ((n = read(in, buf, sizeof(buf))) > 0)
		ck_assert_int_eq(write(out, buf, (size_t)n), n);
	close(in);
	close(out);
}

static void expect_cn(const char *want)
{
	struct wt_conn c;
	char cn[64];
	WT_EXPECT_OPEN(&c, "127.0.0.1", gw.port, "/");
	ck_assert_int_eq(wt_tls_peer_cn(c.tls, cn, sizeof(cn)), 0);
	ck_assert_str_eq(cn, want);
	echo_once(&c, want);
	wt_close(&c);
}

/* A renewed certificate is served from the next connection on after SIGHUP; connections
 * made with the old one carry on; files that do not load change nothing. */
START_TEST(test_reload_on_sighup)
{
	char dir[128], cert[192], key[192];
	struct wt_conn old;

	ck_assert_int_eq(wt_dir_new(dir, sizeof(dir)), 0);
	snprintf(cert, sizeof(cert), "%s/cert.pem", dir);
	snprintf(key, sizeof(key), "%s/key.pem", dir);
	copy_file(wt_tls_file("cert.pem"), cert);
	copy_file(wt_tls_file("key.pem"), key);
	start_tls(cert, key);
	WT_EXPECT_OPEN(&old, "127.0.0.1", gw.port, "/");
	expect_cn("localhost");

	copy_file(wt_tls_file("cert2.pem"), cert);
	copy_file(wt_tls_file("key2.pem"), key);
	ck_assert_int_eq(kill(gw.pid, SIGHUP), 0);
	ck_assert(wt_wait_file(gw.log_path, "SIGHUP: reloaded", 5000));
	ck_assert(wt_wait_file(gw.log_path, "TLS: SIGHUP: reloaded", 5000));
	expect_cn("localhost2");
	echo_once(&old, "the old connection carries on");

	/* A key that does not match the certificate: refused, the renewed one stays. */
	copy_file(wt_tls_file("key.pem"), key);
	ck_assert_int_eq(kill(gw.pid, SIGHUP), 0);
	ck_assert(wt_wait_file(gw.log_path, "TLS certificate not reloaded; the old one stays", 5000));
	ck_assert(wt_gw_log_contains(&gw, "does not match"));
	expect_cn("localhost2");
	/* Garbage for a certificate: the same. */
	int fd = open(cert, O_WRONLY | O_TRUNC | O_CLOEXEC);
	ck_assert_int_eq(write(fd, "not a certificate\n", 18), 18);
	close(fd);
	ck_assert_int_eq(kill(gw.pid, SIGHUP), 0);
	ck_assert(wt_wait_file(gw.log_path, "loading --tls-cert", 5000));
	expect_cn("localhost2");
	echo_once(&old, "and on");
	wt_close(&old);
	WT_GW_STOP(&gw);
	wt_dir_remove(dir);
}
END_TEST

/* A gateway that cannot load its certificate does not start, and says why. */
START_TEST(test_bad_files_at_start)
{
	char dir[128], log[192];
	const char *build = getenv("WSGW_BUILD");
	char prog[256];
	snprintf(prog, sizeof(prog), "%s/wsgw", build && *build ? build : "build");
	ck_assert_int_eq(wt_dir_new(dir, sizeof(dir)), 0);
	snprintf(log, sizeof(log), "%s/gw.log", dir);
	struct {
		const char *cert, *key, *says;
	} cases[] = {
		{ "/nonexistent/cert.pem", wt_tls_file("key.pem"), "loading --tls-cert" },
		{ wt_tls_file("cert.pem"), wt_tls_file("key2.pem"), "does not match" },
		{ wt_tls_file("cert.pem"), NULL, "needs --tls-cert and --tls-key" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char *argv[] = { prog, "--listen", "127.0.0.1:0,tls", "--runtime-dir", dir,
				       "--tls-cert", cases[i].cert,
				       cases[i].key ? "--tls-key" : NULL, cases[i].key, NULL };
		struct wt_proc p;
		unlink(log);
		ck_assert_int_eq(wt_proc_spawn(&p, argv, log), 0);
		ck_assert_msg(wt_proc_reap(&p, 5000) == 0, "case %zu: the gateway started", i);
		ck_assert(WIFEXITED(p.status) && WEXITSTATUS(p.status) != 0);
		ck_assert_msg(wt_count_file(log, cases[i].says), "case %zu: no '%s' in the log", i,
			      cases[i].says);
	}
	unlink(log);
	wt_dir_remove(dir);
}
END_TEST

static Suite *tls_suite(void)
{
	Suite *s = suite_create("tls");
	TCase *tc = tcase_create("tls");
	tcase_set_timeout(tc, 60);
	tcase_add_unchecked_fixture(tc, wt_fixture_setup, wt_fixture_teardown);
	tcase_add_test(tc, test_versions_alpn_and_metrics);
	tcase_add_test(tc, test_non_tls_and_stalled_peers);
	tcase_add_test(tc, test_reload_on_sighup);
	tcase_add_test(tc, test_bad_files_at_start);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(tls_suite());
	srunner_run_all(sr, CK_ENV);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
