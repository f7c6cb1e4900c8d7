/* Tests of gateway/hsresp.c: the 101 and error responses, against a guard page. */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "gateway/hsresp.h"

/* n bytes that end where a PROT_NONE page begins: a write past them crashes. */
static char *guarded_end(size_t n)
{
	long page = sysconf(_SC_PAGESIZE);
	char *p = mmap(NULL, 2 * (size_t)page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	ck_assert(p != MAP_FAILED);
	ck_assert_int_eq(mprotect(p + page, (size_t)page, PROT_NONE), 0);
	return p + page - n;
}

START_TEST(test_accept_key)
{
	char out[29], longkey[200];

	ws_resp_accept_key("dGhlIHNhbXBsZSBub25jZQ==", 24, out);
	ck_assert_str_eq(out, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
	ws_resp_accept_key("x3JJHMbDL1EzLkh9GBhXDw==", 24, out);
	ck_assert_str_eq(out, "HSmrc0sMlYUkAGmm5OPpG2HaGWk=");
	/* expected from: openssl sha1 -binary | base64 */
	memset(longkey, 'k', sizeof(longkey));
	ws_resp_accept_key(longkey, sizeof(longkey), out);
	ck_assert_str_eq(out, "HXr7Nbki1tHdEVpq+a7G7IV4VJU=");
}
END_TEST

START_TEST(test_response_101)
{
	static const char want[] = "HTTP/1.1 101 Switching Protocols\r\n"
				   "Upgrade: websocket\r\n"
				   "Connection: Upgrade\r\n"
				   "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
				   "\r\n";
	static const char want_proto[] = "HTTP/1.1 101 Switching Protocols\r\n"
					 "Upgrade: websocket\r\n"
					 "Connection: Upgrade\r\n"
					 "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
					 "Sec-WebSocket-Protocol: chat\r\n"
					 "Set-Cookie: s=1\r\n"
					 "X-A: b\r\n"
					 "\r\n";
	struct ws_slice key = { "dGhlIHNhbXBsZSBub25jZQ==", 24 }, none = { NULL, 0 };
	char out[512];
	size_t cap;
	int r;

	r = ws_resp_101(out, sizeof(out), key, NULL, NULL);
	ck_assert_int_eq(r, sizeof(want) - 1);
	ck_assert(!memcmp(out, want, r));
	r = ws_resp_101(out, sizeof(out), key, "chat", "Set-Cookie: s=1\r\nX-A: b\r\n");
	ck_assert_int_eq(r, sizeof(want_proto) - 1);
	ck_assert(!memcmp(out, want_proto, r));
	for (cap = 0; cap < sizeof(want_proto) - 1; cap++)
		ck_assert_int_eq(ws_resp_101(out, cap, key, "chat",
						    "Set-Cookie: s=1\r\nX-A: b\r\n"), -ENOSPC);
	/* exactly fits: into a buffer ending at the guard page */
	{
		char *g = guarded_end(sizeof(want_proto) - 1);

		ck_assert_int_eq(ws_resp_101(g, sizeof(want_proto) - 1, key, "chat",
						    "Set-Cookie: s=1\r\nX-A: b\r\n"),
				 sizeof(want_proto) - 1);
		ck_assert(!memcmp(g, want_proto, sizeof(want_proto) - 1));
	}
	ck_assert_int_eq(ws_resp_101(out, sizeof(out), key, "ch\r\nX: y", NULL), -EINVAL);
	ck_assert_int_eq(ws_resp_101(out, sizeof(out), key, "", NULL), -EINVAL);
	ck_assert_int_eq(ws_resp_101(out, sizeof(out), key, NULL, "X-A: b"), -EINVAL);
	ck_assert_int_eq(ws_resp_101(out, sizeof(out), key, NULL, "X-A: b\r\n\r\nbody"),
			 -EINVAL);
	ck_assert_int_eq(ws_resp_101(out, sizeof(out), key, NULL, "X-A: b\nX-B: c\r\n"),
			 -EINVAL);
	ck_assert_int_eq(ws_resp_101(out, sizeof(out), key, NULL, "X-A: b\rX-B: c\r\n"),
			 -EINVAL);
	ck_assert_int_eq(ws_resp_101(out, sizeof(out), key, NULL, ""), sizeof(want) - 1);
	ck_assert_int_eq(ws_resp_101(out, sizeof(out), none, NULL, NULL), -EINVAL);
}
END_TEST

START_TEST(test_response_error)
{
	static const char want400[] = "HTTP/1.1 400 Bad Request\r\n"
				      "Connection: close\r\n"
				      "Content-Type: text/plain\r\n"
				      "Content-Length: 16\r\n"
				      "\r\n"
				      "400 Bad Request\n";
	static const int statuses[] = { 400, 401, 403, 404, 405, 408, 426, 429, 431, 500, 502,
					503, 504, 418, 599 };
	char out[512], *body, *cl;
	size_t i, cap;
	int r;

	r = ws_resp_error(out, sizeof(out), 400);
	ck_assert_int_eq(r, sizeof(want400) - 1);
	ck_assert(!memcmp(out, want400, r));

	r = ws_resp_error(out, sizeof(out), 426);
	ck_assert_int_gt(r, 0);
	out[r] = 0;
	ck_assert_ptr_nonnull(strstr(out, "HTTP/1.1 426 Upgrade Required\r\n"));
	ck_assert_ptr_nonnull(strstr(out, "\r\nSec-WebSocket-Version: 13\r\n"));
	r = ws_resp_error(out, sizeof(out), 405);
	out[r] = 0;
	ck_assert_ptr_nonnull(strstr(out, "\r\nAllow: GET\r\n"));

	for (i = 0; i < sizeof(statuses) / sizeof(statuses[0]); i++) {
		r = ws_resp_error(out, sizeof(out), statuses[i]);
		ck_assert_int_gt(r, 0);
		out[r] = 0;
		ck_assert_int_eq(atoi(out + 9), statuses[i]);
		ck_assert_ptr_nonnull(strstr(out, "\r\nConnection: close\r\n"));
		body = strstr(out, "\r\n\r\n");
		ck_assert_ptr_nonnull(body);
		body += 4;
		cl = strstr(out, "Content-Length: ");
		ck_assert_ptr_nonnull(cl);
		ck_assert_int_eq(atoi(cl + 16), strlen(body));
		ck_assert_int_eq(atoi(body), statuses[i]);
		for (cap = 0; cap < (size_t)r; cap++)
			ck_assert_int_eq(ws_resp_error(out, cap, statuses[i]), -ENOSPC);
		ck_assert_int_eq(ws_resp_error(out, r, statuses[i]), r);
	}
	ck_assert_int_eq(ws_resp_error(out, sizeof(out), 200), -EINVAL);
	ck_assert_int_eq(ws_resp_error(out, sizeof(out), 399), -EINVAL);
	ck_assert_int_eq(ws_resp_error(out, sizeof(out), 600), -EINVAL);
	ck_assert_int_eq(ws_resp_error(out, sizeof(out), -400), -EINVAL);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("hsresp");
	TCase *tc = tcase_create("responses");

	tcase_add_test(tc, test_accept_key);
	tcase_add_test(tc, test_response_101);
	tcase_add_test(tc, test_response_error);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_ENV);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
