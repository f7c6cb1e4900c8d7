/* Tests for gateway/static.c against a real directory tree made for each test: content
 * types, HEAD, the size cap, redirects, and every way out of the root we could think of
 * (dot segments plain and percent-encoded, links pointing out and in, hidden files, NUL,
 * backslashes, FIFOs), with no descriptor left open. */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gateway/static.h"

#define MAX 4096 /* the size cap of these tests */

static char top[64], root[96];
static struct stc *s;
static struct stc_resp r;

static void put(const char *rel, const char *text, size_t n)
{
	char p[256];
	snprintf(p, sizeof(p), "%s/%s", root, rel);
	FILE *f = fopen(p, "w");
	ck_assert_ptr_nonnull(f);
	ck_assert_uint_eq(fwrite(text, 1, n, f), n);
	fclose(f);
}

static void setup(void)
{
	char p[256], t[256];
	snprintf(top, sizeof(top), "/tmp/wsgw-static.XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(top));
	snprintf(root, sizeof(root), "%s/www", top);
	ck_assert_int_eq(mkdir(root, 0700), 0);
	snprintf(p, sizeof(p), "%s/secret", top);
	FILE *f = fopen(p, "w");
	fputs("outside the root\n", f);
	fclose(f);
	snprintf(p, sizeof(p), "%s/sub", root);
	ck_assert_int_eq(mkdir(p, 0700), 0);
	snprintf(p, sizeof(p), "%s/.git", root);
	ck_assert_int_eq(mkdir(p, 0700), 0);
	put("index.html", "<h1>home</h1>\n", 14);
	put("chat.js", "let x = 1;\n", 11);
	put("style.css", "p{}\n", 4);
	put("logo.PNG", "\x89PNG", 4);
	put("icon.svg", "<svg/>", 6);
	put("data.json", "{}", 2);
	put("favicon.ico", "ico", 3);
	put("notes.txt", "t", 1);
	put("blob.bin", "\x00\x01", 2);
	put("empty.html", "", 0);
	put("sub/index.html", "sub home", 8);
	put("sub/page.html", "sub page", 8);
	put("my file.html", "spaced", 6);
	put(".env", "SECRET=1", 8);
	put(".git/config", "[core]", 6);
	static char big[MAX + 1];
	memset(big, 'b', sizeof(big));
	put("exact.bin", big, MAX);
	put("big.bin", big, MAX + 1);
	/* Links: out of the root, to a file inside, to a directory inside. */
	snprintf(p, sizeof(p), "%s/out", root);
	snprintf(t, sizeof(t), "%s/secret", top);
	ck_assert_int_eq(symlink(t, p), 0);
	snprintf(p, sizeof(p), "%s/up", root);
	ck_assert_int_eq(symlink("..", p), 0);
	snprintf(p, sizeof(p), "%s/in.html", root);
	ck_assert_int_eq(symlink("index.html", p), 0);
	snprintf(p, sizeof(p), "%s/subl", root);
	ck_assert_int_eq(symlink("sub", p), 0);
	snprintf(p, sizeof(p), "%s/fifo", root);
	ck_assert_int_eq(mkfifo(p, 0600), 0);
	ck_assert_int_eq(stc_open(root, MAX, &s), 0);
	memset(&r, 0, sizeof(r));
}

static void teardown(void)
{
	stc_resp_free(&r);
	stc_free(s);
	char cmd[160];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", top);
	ck_assert_int_eq(system(cmd), 0);
}

static int get(int head, const char *path)
{
	stc_resp_free(&r);
	return stc_respond(s, head, path, strlen(path), &r);
}

/* The value of a header of the last response, or "" (static buffer). */
static const char *hdr(const char *name)
{
	static char v[256];
	char key[64];
	snprintf(key, sizeof(key), "\r\n%s: ", name);
	char head[sizeof(r.head) + 1];
	memcpy(head, r.head, r.head_len);
	head[r.head_len] = 0;
	const char *p = strstr(head, key);
	v[0] = 0;
	if (p) {
		p += strlen(key);
		size_t n = strcspn(p, "\r");
		snprintf(v, sizeof(v), "%.*s", (int)n, p);
	}
	return v;
}

static void expect_file(const char *path, const char *type, const char *body, size_t n)
{
	ck_assert_msg(get(0, path) == 200, "%s: %d", path, r.status);
	ck_assert_msg(!strncmp(r.head, "HTTP/1.1 200 OK\r\n", 17), "%s", r.head);
	ck_assert_str_eq(hdr("Content-Type"), type);
	char len[32];
	snprintf(len, sizeof(len), "%zu", n);
	ck_assert_str_eq(hdr("Content-Length"), len);
	ck_assert_str_eq(hdr("Connection"), "close");
	ck_assert_str_eq(hdr("X-Content-Type-Options"), "nosniff");
	ck_assert_uint_eq(r.body_len, n);
	ck_assert(n == 0 || (r.body && !memcmp(r.body, body, n)));
	ck_assert_msg(r.head_len >= 4 && !memcmp(r.head + r.head_len - 4, "\r\n\r\n", 4),
		      "the head ends with an empty line");
}

START_TEST(serves_files_with_their_types)
{
	expect_file("/", "text/html; charset=utf-8", "<h1>home</h1>\n", 14);
	expect_file("/index.html", "text/html; charset=utf-8", "<h1>home</h1>\n", 14);
	expect_file("/chat.js", "text/javascript; charset=utf-8", "let x = 1;\n", 11);
	expect_file("/style.css", "text/css; charset=utf-8", "p{}\n", 4);
	expect_file("/logo.PNG", "image/png", "\x89PNG", 4);
	expect_file("/icon.svg", "image/svg+xml", "<svg/>", 6);
	expect_file("/data.json", "application/json", "{}", 2);
	expect_file("/favicon.ico", "image/x-icon", "ico", 3);
	expect_file("/notes.txt", "text/plain; charset=utf-8", "t", 1);
	expect_file("/blob.bin", "application/octet-stream", "\x00\x01", 2);
	expect_file("/empty.html", "text/html; charset=utf-8", "", 0);
	expect_file("/sub/", "text/html; charset=utf-8", "sub home", 8);
	expect_file("/sub/page.html", "text/html; charset=utf-8", "sub page", 8);
	expect_file("/sub//page.html", "text/html; charset=utf-8", "sub page", 8);
	expect_file("/my%20file.html", "text/html; charset=utf-8", "spaced", 6);
	expect_file("/%69ndex.html", "text/html; charset=utf-8", "<h1>home</h1>\n", 14);
}
END_TEST

START_TEST(head_has_the_length_without_the_body)
{
	ck_assert_int_eq(get(1, "/chat.js"), 200);
	ck_assert_str_eq(hdr("Content-Length"), "11");
	ck_assert_str_eq(hdr("Content-Type"), "text/javascript; charset=utf-8");
	ck_assert_ptr_null(r.body);
	ck_assert_int_eq(get(1, "/nope"), 404);
	ck_assert_ptr_null(r.body);
	ck_assert_int_eq(get(1, "/big.bin"), 403);
	ck_assert_ptr_null(r.body);
}
END_TEST

START_TEST(size_cap)
{
	ck_assert_int_eq(get(0, "/exact.bin"), 200);
	ck_assert_uint_eq(r.body_len, MAX);
	ck_assert_int_eq(get(0, "/big.bin"), 403);
	ck_assert(!strncmp(r.head, "HTTP/1.1 403 Forbidden\r\n", 24));
	ck_assert_uint_lt(r.body_len, 100);
}
END_TEST

START_TEST(directories_redirect)
{
	ck_assert_int_eq(get(0, "/sub"), 301);
	ck_assert_str_eq(hdr("Location"), "/sub/");
	ck_assert(!strncmp(r.head, "HTTP/1.1 301 Moved Permanently\r\n", 32));
	ck_assert_int_eq(get(0, "/nope/"), 404);
	ck_assert_int_eq(get(0, "/index.html/"), 404);  /* a file is not a directory */
	ck_assert_int_eq(get(0, "/sub/nope.html"), 404);
}
END_TEST

START_TEST(never_out_of_the_root)
{
	static const char *const bad[] = {
		"/../secret", "/sub/../../secret", "/sub/../index.html", "/./index.html",
		"/..", "/.", "/%2e%2e/secret", "/%2E%2E/secret", "/%2e%2e%2fsecret",
		"/sub%2f..%2f..%2fsecret", "/.%2e/secret", "/sub/%2e%2e/%2e%2e/secret",
		"/..%5csecret", "/sub\\..\\..\\secret", "/index.html%00.png", "/%00",
		"/out", "/up/secret", "/up/www/index.html", "/in.html", "/subl/page.html",
		"/.env", "/.git/config", "/%2eenv", "/.git/", "/fifo",
		"//secret", "/%", "/%4", "/%zz", "/%g0", "index.html", "", "/nope",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int st = get(0, bad[i]);
		ck_assert_msg(st == 404, "%s: %d", bad[i], st);
		ck_assert_msg(!r.body || !memmem(r.body, r.body_len, "outside", 7), "%s leaked", bad[i]);
	}
	/* Longer than any path served. */
	static char longp[1200];
	longp[0] = '/';
	memset(longp + 1, 'a', sizeof(longp) - 2);
	ck_assert_int_eq(get(0, longp), 404);
}
END_TEST

static int open_fds(void)
{
	int n = 0;
	DIR *d = opendir("/proc/self/fd");
	while (d && readdir(d))
		n++;
	if (d)
		closedir(d);
	return n;
}

START_TEST(no_descriptor_left_open)
{
	static const char *const paths[] = {
		"/", "/sub/page.html", "/sub", "/big.bin", "/fifo", "/out", "/subl/page.html",
		"/sub/nope", "/index.html/", "/../secret",
	};
	int before = open_fds();
	for (int k = 0; k < 50; k++)
		for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++)
			get(k & 1, paths[i]);
	ck_assert_int_eq(open_fds(), before);
}
END_TEST

START_TEST(open_errors)
{
	struct stc *x = NULL;
	char p[160];
	snprintf(p, sizeof(p), "%s/nowhere", top);
	ck_assert_int_eq(stc_open(p, 0, &x), -ENOENT);
	snprintf(p, sizeof(p), "%s/secret", top);
	ck_assert_int_eq(stc_open(p, 0, &x), -ENOTDIR);
	ck_assert_ptr_null(x);
	stc_free(NULL);
}
END_TEST

START_TEST(bytes_responses)
{
	ck_assert_int_eq(stc_respond_bytes(0, 200, "text/plain", "abc", 3, &r), 200);
	ck_assert_str_eq(hdr("Content-Length"), "3");
	ck_assert_mem_eq(r.body, "abc", 3);
	stc_resp_free(&r);
	ck_assert_int_eq(stc_respond_bytes(1, 200, "text/plain", "abc", 3, &r), 200);
	ck_assert_str_eq(hdr("Content-Length"), "3");
	ck_assert_ptr_null(r.body);
	ck_assert_str_eq(stc_content_type("a.HTML", 6), "text/html; charset=utf-8");
	ck_assert_str_eq(stc_content_type("html", 4), "application/octet-stream");
	ck_assert_str_eq(stc_content_type(".js", 3), "application/octet-stream");
}
END_TEST

int main(void)
{
	Suite *su = suite_create("static");
	TCase *tc = tcase_create("files");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, serves_files_with_their_types);
	tcase_add_test(tc, head_has_the_length_without_the_body);
	tcase_add_test(tc, size_cap);
	tcase_add_test(tc, directories_redirect);
	tcase_add_test(tc, never_out_of_the_root);
	tcase_add_test(tc, no_descriptor_left_open);
	tcase_add_test(tc, open_errors);
	tcase_add_test(tc, bytes_responses);
	suite_add_tcase(su, tc);
	SRunner *sr = srunner_create(su);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
