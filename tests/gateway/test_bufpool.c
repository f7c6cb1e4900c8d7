/* Tests of gateway/bufpool.c: size classes, reuse, and the bounds on what it keeps. */
#include "gateway/bufpool.h"

#include <check.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

START_TEST(test_classes)
{
	/* Powers of two and the halfway points, from 4 KiB: never less than asked, never
	 * more than half again (a third of the buffer at most is rounding). */
	static const size_t want[][2] = {
		{ 1, 4096 }, { 4096, 4096 }, { 4097, 6144 }, { 6144, 6144 }, { 6145, 8192 },
		{ 65536, 65536 }, { 65546, 98304 }, { 98305, 131072 }, { (1u << 20) + 333, 3u << 19 },
		{ 16u << 20, 16u << 20 }, { (16u << 20) + 1, 24u << 20 },
	};
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		size_t cap;
		void *p = bp_get(want[i][0], &cap);
		ck_assert_ptr_nonnull(p);
		ck_assert_uint_eq(cap, want[i][1]);
		memset(p, 0xab, cap); /* all of it is ours (ASan checks) */
		bp_put(p, cap);
	}
	for (size_t n = 1; n < (24u << 20); n = n * 5 / 4 + 1) {
		size_t cap;
		void *p = bp_get(n, &cap);
		ck_assert_uint_ge(cap, n);
		ck_assert_uint_le(cap, n < 4096 ? 4096 : n + n / 2);
		bp_put(p, cap);
	}
	/* Past the last class: exactly what was asked, from malloc, and freed on put. */
	size_t cap;
	void *p = bp_get((24u << 20) + 1, &cap);
	ck_assert_uint_eq(cap, (24u << 20) + 1);
	bp_put(p, cap);
	bp_drain();
}
END_TEST

START_TEST(test_reuse)
{
	/* What goes back comes out again for the next buffer of its class: no malloc. */
	size_t cap, cap2;
	void *a = bp_get(65546, &cap);
	bp_put(a, cap);
	void *b = bp_get(70000, &cap2);
	ck_assert_ptr_eq(a, b);
	ck_assert_uint_eq(cap, cap2);
	bp_put(b, cap2);
	bp_put(NULL, 0); /* nothing */
	bp_drain();
}
END_TEST

START_TEST(test_bounds)
{
	/* A burst of 200 buffers of one class: 64 are kept. Of 16 MiB ones one is kept; and
	 * never more than BP_CACHE_MAX in all. */
	void *p[200];
	size_t cap;
	ck_assert_uint_eq(bp_cached(), 0);
	for (int i = 0; i < 200; i++)
		ck_assert_ptr_nonnull(p[i] = bp_get(8192, &cap));
	for (int i = 0; i < 200; i++)
		bp_put(p[i], cap);
	ck_assert_uint_eq(bp_cached(), 64 * 8192);
	for (int i = 0; i < 64; i++)
		p[i] = bp_get(8000, &cap);
	ck_assert_uint_eq(bp_cached(), 0);
	for (int i = 0; i < 64; i++)
		bp_put(p[i], cap);
	void *big[3];
	for (int i = 0; i < 3; i++)
		big[i] = bp_get(16u << 20, &cap);
	for (int i = 0; i < 3; i++)
		bp_put(big[i], cap);
	ck_assert_uint_eq(bp_cached(), 64 * 8192 + (16u << 20));
	/* 2 MiB ones: four kept per class at most, and the allowance holds. */
	void *m[8];
	for (int i = 0; i < 8; i++)
		m[i] = bp_get((2u << 20) - 100, &cap);
	for (int i = 0; i < 8; i++)
		bp_put(m[i], cap);
	ck_assert_uint_eq(bp_cached(), 64 * 8192 + (16u << 20) + 4 * (2u << 20));
	void *l[40];
	for (int i = 0; i < 40; i++)
		l[i] = bp_get(400000, &cap);
	for (int i = 0; i < 40; i++)
		bp_put(l[i], cap);
	ck_assert_uint_le(bp_cached(), BP_CACHE_MAX);
	bp_drain();
	ck_assert_uint_eq(bp_cached(), 0);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("bufpool");
	TCase *tc = tcase_create("bufpool");
	tcase_add_test(tc, test_classes);
	tcase_add_test(tc, test_reuse);
	tcase_add_test(tc, test_bounds);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_ENV);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
