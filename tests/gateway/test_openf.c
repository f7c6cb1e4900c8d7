/* Tests of gateway/openf.c: connections' OPEN fields, interned. */
#include "gateway/openf.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Equal fields share one set; different ones do not; each reference is dropped once and
 * the last frees the set. */
START_TEST(test_equal_fields_share)
{
	const uint8_t a[] = "path=/chat", b[] = "path=/chat", other[] = "path=/feed";
	struct of_set *x = of_get(a, sizeof(a));
	struct of_set *y = of_get(b, sizeof(b));
	struct of_set *z = of_get(other, sizeof(other));
	ck_assert_ptr_nonnull(x);
	ck_assert_ptr_eq(x, y);
	ck_assert_ptr_ne(x, z);
	ck_assert_uint_eq(of_count(), 2);
	size_t n;
	const uint8_t *p = of_bytes(x, &n);
	ck_assert_uint_eq(n, sizeof(a));
	ck_assert_mem_eq(p, a, n);
	of_put(x);
	ck_assert_uint_eq(of_count(), 2); /* y still holds it */
	ck_assert_mem_eq(of_bytes(y, &n), a, n);
	of_put(y);
	of_put(z);
	ck_assert_uint_eq(of_count(), 0);
	of_put(NULL);
	/* A prefix is not the same set, nor is the empty one. */
	x = of_get(a, 4);
	y = of_get(a, 0);
	ck_assert_ptr_ne(x, y);
	ck_assert_ptr_eq(of_get(a, 0), y);
	of_put(y);
	of_put(y);
	of_put(x);
	ck_assert_uint_eq(of_count(), 0);
}
END_TEST

/* Many distinct sets (the table grows past its first buckets) are each found again, and
 * removing them in another order than they came leaves the others findable. */
START_TEST(test_many_sets)
{
	enum { N = 5000 };
	static struct of_set *sets[N];
	char buf[32];
	for (int i = 0; i < N; i++) {
		int n = snprintf(buf, sizeof(buf), "query=token%d", i);
		sets[i] = of_get((const uint8_t *)buf, (size_t)n);
		ck_assert_ptr_nonnull(sets[i]);
	}
	ck_assert_uint_eq(of_count(), N);
	for (int i = 0; i < N; i += 2)
		of_put(sets[i]);
	for (int i = 1; i < N; i += 2) {
		int n = snprintf(buf, sizeof(buf), "query=token%d", i);
		struct of_set *again = of_get((const uint8_t *)buf, (size_t)n);
		if (again != sets[i])
			ck_abort_msg("set %d not found again", i);
		of_put(again);
		of_put(sets[i]);
	}
	ck_assert_uint_eq(of_count(), 0);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("openf");
	TCase *tc = tcase_create("openf");
	tcase_add_test(tc, test_equal_fields_share);
	tcase_add_test(tc, test_many_sets);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
