/* gateway/utf8.c against an arithmetic reference decoder, split every way. */
#include "gateway/utf8.h"

#include <check.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* Check's ck_assert* writes a checkpoint to its parent on every success (a
 * syscall); loops over millions of bytes use this, which costs nothing unless
 * it fails. */
#define REQUIRE(cond) do { if (!(cond)) ck_abort_msg("%s:%d: %s", __FILE__, __LINE__, #cond); } while (0)
#define REQUIRE_MSG(cond, ...) do { if (!(cond)) ck_abort_msg(__VA_ARGS__); } while (0)

enum { R_ACCEPT, R_REJECT, R_PARTIAL };

/*
 * The reference decodes with arithmetic instead of a table: after each byte of
 * a sequence it asks whether any completion could still land in the code point
 * range of that sequence length, minus the surrogates. The first byte where
 * none can is where rejection is certain; *bad gets its index.
 */
static int ref_feasible(uint32_t min, uint32_t max, uint32_t lo, uint32_t hi)
{
	uint32_t a = min > lo ? min : lo, b = max < hi ? max : hi;

	if (a > b)
		return 0;
	return !(a >= 0xd800 && b <= 0xdfff);
}

static int ref_scan(const uint8_t *p, size_t n, size_t *bad)
{
	size_t i = 0;

	while (i < n) {
		uint32_t b = p[i], cp, lo, hi;
		unsigned len;

		if (b < 0x80) {
			i++;
			continue;
		}
		if (b < 0xc0)
			goto reject;
		if (b < 0xe0) {
			len = 2, cp = b & 0x1f, lo = 0x80, hi = 0x7ff;
		} else if (b < 0xf0) {
			len = 3, cp = b & 0x0f, lo = 0x800, hi = 0xffff;
		} else if (b < 0xf8) {
			len = 4, cp = b & 0x07, lo = 0x10000, hi = 0x10ffff;
		} else {
			goto reject;
		}
		for (unsigned k = 1; k <= len; k++) {
			unsigned rem = len - k;
			uint32_t min, max;

			if (k > 1) {
				if (i + k - 1 >= n)
					return R_PARTIAL;
				if ((p[i + k - 1] & 0xc0) != 0x80) {
					i += k - 1;
					goto reject;
				}
				cp = cp << 6 | (p[i + k - 1] & 0x3f);
			}
			min = cp << (6 * rem);
			max = min | ((1u << (6 * rem)) - 1);
			if (!ref_feasible(min, max, lo, hi)) {
				i += k - 1;
				goto reject;
			}
		}
		i += len;
	}
	return R_ACCEPT;
reject:
	*bad = i;
	return R_REJECT;
}

static int classify(uint32_t st)
{
	return st == UTF8_ACCEPT ? R_ACCEPT : st == UTF8_REJECT ? R_REJECT : R_PARTIAL;
}

/*
 * Input sits at the end of a page followed by a PROT_NONE page, so reading one
 * byte past it (the word-at-a-time ASCII path, say) crashes the test.
 */
static uint8_t *guard_base;
static size_t guard_span, page;

static void guard_setup(void)
{
	page = (size_t)sysconf(_SC_PAGESIZE);
	guard_span = 16 * page;
	guard_base = mmap(NULL, guard_span + page, PROT_READ | PROT_WRITE,
			  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ck_assert_ptr_ne(guard_base, MAP_FAILED);
	ck_assert_int_eq(mprotect(guard_base + guard_span, page, PROT_NONE), 0);
}

static void guard_teardown(void)
{
	munmap(guard_base, guard_span + page);
}

static const uint8_t *at_page_end(const uint8_t *p, size_t n)
{
	uint8_t *dst = guard_base + guard_span - n;

	REQUIRE(n <= guard_span);
	memcpy(dst, p, n);
	return dst;
}

/*
 * Validates p[0..n) whole, in two calls at every split point, and byte by
 * byte; all must agree with the reference, and byte by byte the state must
 * turn UTF8_REJECT exactly at the byte the reference names.
 */
static void check_all_ways(const uint8_t *src, size_t n, const char *what)
{
	const uint8_t *p = at_page_end(src, n);
	size_t bad = SIZE_MAX;
	int want = ref_scan(p, n, &bad);
	uint32_t whole = utf8_validate(UTF8_ACCEPT, p, n), st = UTF8_ACCEPT;

	REQUIRE_MSG(classify(whole) == want, "%s: whole gives %u, reference %d", what, whole, want);
	for (size_t k = 0; k <= n; k++) {
		uint32_t s = utf8_validate(utf8_validate(UTF8_ACCEPT, p, k), p + k, n - k);

		REQUIRE_MSG(s == whole, "%s: split at %zu gives %u, whole %u", what, k, s, whole);
	}
	for (size_t i = 0; i < n; i++) {
		st = utf8_validate(st, p + i, 1);
		REQUIRE_MSG((st == UTF8_REJECT) == (want == R_REJECT && i >= bad),
			      "%s: byte %zu (0x%02x) state %u, reference rejects at %zu",
			      what, i, p[i], st, bad);
		/* The prefix validated at once reaches the same state. */
		REQUIRE(utf8_validate(UTF8_ACCEPT, p, i + 1) == st);
	}
	REQUIRE(st == whole);
}

struct tcase_utf8 {
	const char *name;
	const char *s;
	size_t len;
	int want;
	size_t bad;	/* first byte where rejection is certain */
};

#define T(name, str, want, bad) { name, str, sizeof(str) - 1, want, bad }
static const struct tcase_utf8 cases[] = {
	T("empty", "", R_ACCEPT, 0),
	T("ascii", "Hello, world! 0123456789 abcdefghijklmnopqrstuvwxyz", R_ACCEPT, 0),
	T("nul", "\x00\x7f", R_ACCEPT, 0),
	T("2-byte", "\xc2\x80 \xc3\xa9t\xc3\xa9 \xdf\xbf", R_ACCEPT, 0),
	T("3-byte", "\xe0\xa0\x80 \xe2\x82\xac \xed\x9f\xbf \xee\x80\x80 \xef\xbf\xbd", R_ACCEPT, 0),
	T("U+FFFF", "\xef\xbf\xbf", R_ACCEPT, 0),
	T("4-byte", "\xf0\x90\x80\x80 \xf0\x9f\x98\x80 \xf3\xbf\xbf\xbf", R_ACCEPT, 0),
	T("U+10FFFF", "\xf4\x8f\xbf\xbf", R_ACCEPT, 0),
	T("mixed", "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5 ok \xf0\x9f\x8e\x89!", R_ACCEPT, 0),
	T("overlong C0 80", "\xc0\x80", R_REJECT, 0),
	T("overlong C1 BF", "ab\xc1\xbf", R_REJECT, 2),
	T("overlong E0 80 80", "\xe0\x80\x80", R_REJECT, 1),
	T("overlong E0 9F BF", "\xe0\x9f\xbf", R_REJECT, 1),
	T("overlong F0 80 80 80", "\xf0\x80\x80\x80", R_REJECT, 1),
	T("overlong F0 8F BF BF", "x\xf0\x8f\xbf\xbf", R_REJECT, 2),
	T("surrogate ED A0 80", "\xed\xa0\x80", R_REJECT, 1),
	T("surrogate ED BF BF", "\xed\xbf\xbf", R_REJECT, 1),
	T("surrogate pair", "\xed\xa0\x80\xed\xb0\x80", R_REJECT, 1),
	T("> U+10FFFF F4 90 80 80", "\xf4\x90\x80\x80", R_REJECT, 1),
	T("F5", "\xf5\x80\x80\x80", R_REJECT, 0),
	T("F7 BF BF BF", "\xf7\xbf\xbf\xbf", R_REJECT, 0),
	T("F8", "\xf8\x88\x80\x80\x80", R_REJECT, 0),
	T("FE FF", "\xfe\xff", R_REJECT, 0),
	T("lone continuation 80", "\x80", R_REJECT, 0),
	T("lone continuation BF after text", "abc\xbf", R_REJECT, 3),
	T("extra continuation", "\xc3\xa9\xa9", R_REJECT, 2),
	T("lead then ASCII", "\xc3" "a", R_REJECT, 1),
	T("3-byte lead then ASCII", "\xe2\x82" "a", R_REJECT, 2),
	T("4-byte lead then lead", "\xf0\x9f\x98\xf0", R_REJECT, 3),
	T("truncated 2", "\xc3", R_PARTIAL, 0),
	T("truncated 3/1", "ok\xe2", R_PARTIAL, 0),
	T("truncated 3/2", "\xe2\x82", R_PARTIAL, 0),
	T("truncated 4/3", "\xf4\x8f\xbf", R_PARTIAL, 0),
	T("fast path then bad", "0123456789abcdef0123456789abcdef\xff", R_REJECT, 32),
	T("fast path then 2-byte", "0123456789abcdef01234567\xc3\xa9" "0123456789abcdef", R_ACCEPT, 0),
};
#undef T

START_TEST(test_table)
{
	const struct tcase_utf8 *c = &cases[_i];
	size_t bad = SIZE_MAX;
	int ref = ref_scan((const uint8_t *)c->s, c->len, &bad);

	/* The reference itself must agree with the hand-written expectation. */
	ck_assert_msg(ref == c->want, "%s: reference says %d", c->name, ref);
	if (ref == R_REJECT)
		ck_assert_msg(bad == c->bad, "%s: reference rejects at %zu", c->name, bad);
	check_all_ways((const uint8_t *)c->s, c->len, c->name);
}
END_TEST

START_TEST(test_sticky_and_bad_state)
{
	ck_assert_uint_eq(utf8_validate(UTF8_REJECT, (const uint8_t *)"abc", 3), UTF8_REJECT);
	ck_assert_uint_eq(utf8_validate(UTF8_REJECT, NULL, 0), UTF8_REJECT);
	/* A garbage state from a caller's bug is a rejection, not an out-of-bounds read. */
	ck_assert_uint_eq(utf8_validate(7, (const uint8_t *)"a", 1), UTF8_REJECT);
	ck_assert_uint_eq(utf8_validate(0xffffffffu, (const uint8_t *)"a", 1), UTF8_REJECT);
	/* A partial state stays partial over an empty input. */
	uint32_t st = utf8_validate(UTF8_ACCEPT, (const uint8_t *)"\xe2", 1);
	ck_assert_uint_ne(st, UTF8_ACCEPT);
	ck_assert_uint_ne(st, UTF8_REJECT);
	ck_assert_uint_eq(utf8_validate(st, NULL, 0), st);
}
END_TEST

/* Every 1- and 2-byte string, every 3-byte string with a non-ASCII lead, and
 * 4-byte strings with leads F0..F7 against the reference, prefix by prefix. */
START_TEST(test_exhaustive_short)
{
	static const uint8_t tails[] = { 0x00, 0x41, 0x7f, 0x80, 0x8f, 0x90, 0x9f, 0xa0, 0xbf, 0xc0, 0xff };
	uint8_t b[4];
	size_t bad;
	unsigned mismatches = 0;

	for (unsigned x = 0; x < 0x10000; x++) {
		b[0] = (uint8_t)(x >> 8), b[1] = (uint8_t)x;
		for (size_t n = 1; n <= 2; n++) {
			bad = SIZE_MAX;
			mismatches += classify(utf8_validate(UTF8_ACCEPT, b, n)) != ref_scan(b, n, &bad);
		}
	}
	for (unsigned x = 0x800000; x < 0x1000000; x++) {
		b[0] = (uint8_t)(x >> 16), b[1] = (uint8_t)(x >> 8), b[2] = (uint8_t)x;
		bad = SIZE_MAX;
		mismatches += classify(utf8_validate(UTF8_ACCEPT, b, 3)) != ref_scan(b, 3, &bad);
	}
	for (unsigned x = 0xf00000; x < 0xf80000; x++) {
		b[0] = (uint8_t)(x >> 16), b[1] = (uint8_t)(x >> 8), b[2] = (uint8_t)x;
		for (size_t t = 0; t < sizeof(tails); t++) {
			b[3] = tails[t];
			bad = SIZE_MAX;
			mismatches += classify(utf8_validate(UTF8_ACCEPT, b, 4)) != ref_scan(b, 4, &bad);
		}
	}
	ck_assert_uint_eq(mismatches, 0);
}
END_TEST

static uint32_t rng_state;

static uint32_t rnd(void)
{
	/* xorshift32: reproducible from the seed printed on failure. */
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 17;
	rng_state ^= rng_state << 5;
	return rng_state;
}

static size_t put_cp(uint8_t *o, uint32_t cp)
{
	if (cp < 0x80) {
		o[0] = (uint8_t)cp;
		return 1;
	}
	if (cp < 0x800) {
		o[0] = (uint8_t)(0xc0 | cp >> 6), o[1] = (uint8_t)(0x80 | (cp & 0x3f));
		return 2;
	}
	if (cp < 0x10000) {
		o[0] = (uint8_t)(0xe0 | cp >> 12), o[1] = (uint8_t)(0x80 | ((cp >> 6) & 0x3f));
		o[2] = (uint8_t)(0x80 | (cp & 0x3f));
		return 3;
	}
	o[0] = (uint8_t)(0xf0 | cp >> 18), o[1] = (uint8_t)(0x80 | ((cp >> 12) & 0x3f));
	o[2] = (uint8_t)(0x80 | ((cp >> 6) & 0x3f)), o[3] = (uint8_t)(0x80 | (cp & 0x3f));
	return 4;
}

/* Mostly valid text with ASCII runs, so the errors land deep inside strings
 * and on both sides of the word-at-a-time path. */
static size_t random_text(uint8_t *o, size_t cap)
{
	static const uint8_t odd[] = { 0x80, 0x8f, 0x90, 0x9f, 0xa0, 0xbf, 0xc0, 0xc1, 0xc2, 0xdf,
				       0xe0, 0xe1, 0xec, 0xed, 0xee, 0xef, 0xf0, 0xf1, 0xf3, 0xf4,
				       0xf5, 0xf8, 0xfe, 0xff };
	size_t n = 0, want = rnd() % cap;
	int clean = rnd() % 3 == 0;	/* a third of the strings stay valid, but for the cut */

	while (n + 4 <= want) {
		uint32_t r = rnd() % 100;

		if (clean && r >= 80)
			r = 0;
		if (r < 40) {
			for (unsigned k = rnd() % 20; k && n < want; k--)
				o[n++] = (uint8_t)(0x20 + rnd() % 0x5f);
		} else if (r < 80) {
			static const uint32_t top[] = { 0x80, 0x800, 0x10000, 0x110000 };
			uint32_t cp = rnd() % top[rnd() % 4];

			n += put_cp(o + n, cp);
		} else if (r < 97) {
			n += put_cp(o + n, 0xd7f0 + rnd() % 0x820);	/* around the surrogates */
		} else {
			o[n++] = odd[rnd() % sizeof(odd)];
		}
	}
	/* Cut some strings short, which often splits the last character. */
	if (n && rnd() % 4 == 0)
		n -= 1 + rnd() % (n < 3 ? n : 3);
	return n;
}

START_TEST(test_random_vs_reference)
{
	uint8_t buf[512];
	unsigned counts[3] = { 0 };

	rng_state = 0x9e3779b9u;
	for (int iter = 0; iter < 4000; iter++) {
		uint32_t seed = rng_state;
		size_t n = random_text(buf, sizeof(buf)), bad = SIZE_MAX;
		const uint8_t *p = at_page_end(buf, n);
		int want = ref_scan(p, n, &bad);
		uint32_t st = UTF8_ACCEPT;
		size_t i = 0;

		counts[want]++;
		REQUIRE_MSG(classify(utf8_validate(UTF8_ACCEPT, p, n)) == want, "seed %u", seed);
		/* Random chunking; the reject must come in the chunk holding byte `bad`. */
		while (i < n) {
			size_t k = 1 + rnd() % 24;

			if (k > n - i)
				k = n - i;
			st = utf8_validate(st, p + i, k);
			if (want == R_REJECT && bad < i + k) {
				REQUIRE_MSG(st == UTF8_REJECT, "seed %u: not rejected by %zu", seed, i + k);
				break;
			}
			REQUIRE_MSG(st != UTF8_REJECT, "seed %u: rejected early at chunk %zu", seed, i);
			i += k;
		}
		if (want != R_REJECT)
			REQUIRE_MSG(classify(st) == want, "seed %u", seed);
		if (iter % 50 == 0)
			check_all_ways(buf, n, "random");
	}
	/* The generator must exercise all three outcomes, or the test proves little. */
	ck_assert_uint_gt(counts[R_ACCEPT], 200);
	ck_assert_uint_gt(counts[R_REJECT], 200);
	ck_assert_uint_gt(counts[R_PARTIAL], 20);
}
END_TEST

/* A bad or multi-byte character at every offset of an ASCII run, at page end. */
START_TEST(test_ascii_runs)
{
	uint8_t buf[80];

	for (size_t n = 1; n <= sizeof(buf); n++) {
		for (size_t at = 0; at < n; at++) {
			memset(buf, 'a', n);
			buf[at] = 0xff;
			const uint8_t *p = at_page_end(buf, n);
			size_t bad = SIZE_MAX;

			REQUIRE(ref_scan(p, n, &bad) == R_REJECT);
			REQUIRE(utf8_validate(UTF8_ACCEPT, p, n) == UTF8_REJECT);
			REQUIRE(utf8_validate(UTF8_ACCEPT, p, at) != UTF8_REJECT);
			if (at + 2 <= n) {
				buf[at] = 0xc3, buf[at + 1] = 0xa9;
				p = at_page_end(buf, n);
				REQUIRE(utf8_validate(UTF8_ACCEPT, p, n) == UTF8_ACCEPT);
				REQUIRE(utf8_validate(UTF8_ACCEPT, p, at + 1) != UTF8_ACCEPT);
			}
		}
		memset(buf, 'z', n);
		REQUIRE(utf8_validate(UTF8_ACCEPT, at_page_end(buf, n), n) == UTF8_ACCEPT);
	}
}
END_TEST

static Suite *utf8_suite(void)
{
	Suite *s = suite_create("utf8");
	TCase *tc = tcase_create("core");

	tcase_add_checked_fixture(tc, guard_setup, guard_teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_loop_test(tc, test_table, 0, sizeof(cases) / sizeof(cases[0]));
	tcase_add_test(tc, test_sticky_and_bad_state);
	tcase_add_test(tc, test_exhaustive_short);
	tcase_add_test(tc, test_random_vs_reference);
	tcase_add_test(tc, test_ascii_runs);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(utf8_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
