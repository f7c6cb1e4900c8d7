/* --static through a real gateway: plain GET and HEAD get files on the WebSocket port, the
 * upgrade beside them is unchanged, a path out of the directory gets 404, other methods
 * 405, /metrics only with --admin, and without --static a plain GET is still a 400. */
#include <check.h>
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tests/lib/wstest.h"

static struct wt_gw gw;
static char top[64], root[96];

static void setup(void)
{
	char p[160];
	snprintf(top, sizeof(top), "/tmp/wsgw-sthttp.XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(top));
	snprintf(root, sizeof(root), "%s/www", top);
	ck_assert_int_eq(mkdir(root, 0700), 0);
	snprintf(p, sizeof(p), "%s/index.html", root);
	FILE *f = fopen(p, "w");
	fputs("<title>demo</title>\n", f);
	fclose(f);
	snprintf(p, sizeof(p), "%s/secret", top);
	f = fopen(p, "w");
	fputs("outside\n", f);
	fclose(f);
}

static void teardown(void)
{
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", top);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", top);
}

/* Sends a raw request and reads the whole answer, to the EOF that Connection: close
 * promises (bounded): the head into r, the body into body. Checks that Content-Length is
 * the body's length, or that a HEAD's answer has no body. */
static int request(const char *req, struct wt_http *r, char *body, size_t cap)
{
	struct wt_conn c;
	static char all[65536];
	size_t len = 0;
	WT_OK(&c, wt_connect(&c, "127.0.0.1", gw.port));
	WT_OK(&c, wt_send_raw(&c, req, strlen(req)));
	int64_t deadline = wt_now_ms() + 5000;
	int eof = 0;
	while (len < sizeof(all) - 1 && wt_now_ms() < deadline) {
		struct pollfd pf = { .fd = c.fd, .events = POLLIN };
		if (poll(&pf, 1, 100) <= 0)
			continue;
		ssize_t k = read(c.fd, all + len, sizeof(all) - 1 - len);
		if (k <= 0) {
			eof = 1;
			break;
		}
		len += (size_t)k;
	}
	all[len] = 0;
	wt_close(&c);
	ck_assert_msg(eof, "no EOF after the answer to %s", req);
	char *end = strstr(all, "\r\n\r\n");
	ck_assert_msg(end, "no HTTP head in the answer to %s: %s", req, all);
	memset(r, 0, sizeof(*r));
	r->head_len = (size_t)(end + 4 - all);
	memcpy(r->head, all, r->head_len);
	ck_assert_int_eq(sscanf(all, "HTTP/1.1 %d", &r->status), 1);
	size_t blen = len - r->head_len;
	char v[32];
	/* (The handshake's own error answers carry a body even for HEAD, as before --static.) */
	if (!strncmp(req, "HEAD", 4) && r->status != 405)
		ck_assert_uint_eq(blen, 0);
	else if (wt_http_header(r, "Content-Length", v, sizeof(v)))
		ck_assert_uint_eq(strtoul(v, NULL, 10), blen);
	if (body)
		snprintf(body, cap, "%.*s", (int)blen, end + 4);
	return r->status;
}

START_TEST(files_beside_the_upgrade)
{
	char dir[160];
	snprintf(dir, sizeof(dir), "%s", root);
	WT_GW_START(&gw, "--static", dir, NULL);
	struct wt_http r;
	char body[4096], v[128];
	ck_assert_int_eq(request("GET / HTTP/1.1\r\nHost: x\r\n\r\n", &r, body, sizeof(body)), 200);
	ck_assert_str_eq(wt_http_header(&r, "Content-Type", v, sizeof(v)), "text/html; charset=utf-8");
	ck_assert_str_eq(wt_http_header(&r, "Content-Length", v, sizeof(v)), "20");
	ck_assert_str_eq(wt_http_header(&r, "Connection", v, sizeof(v)), "close");
	ck_assert_str_eq(body, "<title>demo</title>\n");
	/* A browser's request, with its headers and keep-alive. */
	ck_assert_int_eq(request("GET /index.html?v=1 HTTP/1.1\r\nHost: 127.0.0.1\r\n"
				 "User-Agent: Mozilla/5.0\r\nAccept: text/html\r\n"
				 "Connection: keep-alive\r\n\r\n", &r, body, sizeof(body)), 200);
	ck_assert_str_eq(body, "<title>demo</title>\n");
	ck_assert_int_eq(request("HEAD /index.html HTTP/1.1\r\nHost: x\r\n\r\n", &r, NULL, 0), 200);
	ck_assert_str_eq(wt_http_header(&r, "Content-Length", v, sizeof(v)), "20");
	ck_assert_int_eq(request("GET /../secret HTTP/1.1\r\nHost: x\r\n\r\n", &r, body, sizeof(body)), 404);
	ck_assert_ptr_null(strstr(body, "outside"));
	ck_assert_int_eq(request("GET /%2e%2e/secret HTTP/1.1\r\nHost: x\r\n\r\n", &r, body, sizeof(body)), 404);
	ck_assert_int_eq(request("GET http://x/../secret HTTP/1.1\r\nHost: x\r\n\r\n", &r, body, sizeof(body)), 404);
	ck_assert_int_eq(request("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n", &r, NULL, 0), 405);
	ck_assert_int_eq(request("DELETE /index.html HTTP/1.1\r\nHost: x\r\n\r\n", &r, NULL, 0), 405);
	ck_assert_int_eq(request("GET / HTTP/1.1\r\n\r\n", &r, NULL, 0), 400); /* no Host */
	/* Not --admin: /metrics is a file like any other, and there is none. */
	ck_assert_int_eq(request("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", &r, NULL, 0), 404);
	/* The WebSocket on the same port and path is what it was. */
	struct wt_conn ws;
	WT_EXPECT_OPEN(&ws, "127.0.0.1", gw.port, "/");
	WT_OK(&ws, wt_send_frame(&ws, WT_TEXT, 1, "echo me", 7));
	WT_EXPECT_MESSAGE(&ws, WT_TEXT, "echo me", 7);
	/* HEAD with the upgrade headers is still a 405. */
	struct wt_conn h;
	char req[512];
	WT_OK(&h, wt_connect(&h, "127.0.0.1", gw.port));
	int n = wt_request_build(&h, req, sizeof(req), "/", NULL);
	memmove(req + 4, req + 3, (size_t)n - 3 + 1); /* "GET" -> "HEAD" */
	memcpy(req, "HEAD", 4);
	WT_OK(&h, wt_send_raw(&h, req, (size_t)n + 1));
	ck_assert_int_eq(wt_http_read(&h, &r), 405);
	wt_close(&h);
	wt_close(&ws);
	WT_GW_STOP(&gw);
}
END_TEST

START_TEST(metrics_with_admin)
{
	char dir[160];
	snprintf(dir, sizeof(dir), "%s", root);
	WT_GW_START(&gw, "--static", dir, "--admin", "127.0.0.1:0", NULL);
	struct wt_conn ws;
	WT_EXPECT_OPEN(&ws, "127.0.0.1", gw.port, "/");
	struct wt_http r;
	static char body[16384];
	char v[128];
	ck_assert_int_eq(request("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", &r, body, sizeof(body)), 200);
	ck_assert_str_eq(wt_http_header(&r, "Content-Type", v, sizeof(v)),
			 "text/plain; version=0.0.4; charset=utf-8");
	ck_assert_msg(strstr(body, "\nwsgw_connections 2\n"), "the WebSocket and this request: %s", body);
	ck_assert_msg(strstr(body, "wsgw_messages_in_total"), "%s", body);
	ck_assert_int_eq(request("HEAD /metrics HTTP/1.1\r\nHost: x\r\n\r\n", &r, NULL, 0), 200);
	wt_close(&ws);
	WT_GW_STOP(&gw);
}
END_TEST

START_TEST(off_by_default)
{
	WT_GW_START(&gw, NULL);
	struct wt_http r;
	ck_assert_int_eq(request("GET / HTTP/1.1\r\nHost: x\r\n\r\n", &r, NULL, 0), 400);
	ck_assert_int_eq(request("HEAD / HTTP/1.1\r\nHost: x\r\n\r\n", &r, NULL, 0), 405);
	WT_GW_STOP(&gw);
}
END_TEST

START_TEST(missing_directory_is_an_error_at_start)
{
	char dir[160];
	snprintf(dir, sizeof(dir), "%s/nowhere", top);
	const char *args[] = { "--static", dir, NULL };
	/* It may have said "listening" already; then it exits. */
	if (wt_gw_startv(&gw, args) == 0) {
		ck_assert_int_eq(wt_gw_wait(&gw, 5000), 0);
		ck_assert(WIFEXITED(gw.status) && WEXITSTATUS(gw.status) != 0);
		ck_assert(wt_gw_log_contains(&gw, "--static"));
		wt_gw_stop(&gw, 1000);
	}
}
END_TEST

int main(void)
{
	Suite *s = suite_create("static over HTTP");
	TCase *tc = tcase_create("gateway");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, files_beside_the_upgrade);
	tcase_add_test(tc, metrics_with_admin);
	tcase_add_test(tc, off_by_default);
	tcase_add_test(tc, missing_directory_is_an_error_at_start);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
