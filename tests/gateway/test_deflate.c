/* gateway/deflate.c's streams of a connection with context takeover, out of one process
 * and into another (a live upgrade, docs/UPGRADE.md): a client's own zlib streams, which
 * keep their context throughout, talk to the gateway's before and after their windows
 * were exported, the streams freed and made again from the windows. */
#include "gateway/deflate.h"

#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

/* Both keep context; windows of 2^10 to the client, 2^12 from it. */
static const struct pmd_params P = { .on = 1, .server_bits = 10, .client_bits = 12, .takeover = 3 };
static struct pmd_cfg cfg;

/* The client: a compressor and a decompressor that keep their context (RFC 7692 7.2). */
struct client {
	z_stream def, inf;
};

static void client_init(struct client *c)
{
	memset(c, 0, sizeof(*c));
	ck_assert_int_eq(deflateInit2(&c->def, 6, Z_DEFLATED, -12, 8, Z_DEFAULT_STRATEGY), Z_OK);
	ck_assert_int_eq(inflateInit2(&c->inf, -10), Z_OK);
}

static void client_done(struct client *c)
{
	deflateEnd(&c->def);
	inflateEnd(&c->inf);
}

/* A message compressed as a client does: sync flush, the 4-byte tail taken off. */
static size_t client_deflate(struct client *c, const char *m, size_t n, uint8_t *out, size_t cap)
{
	c->def.next_in = (Bytef *)m;
	c->def.avail_in = (uInt)n;
	c->def.next_out = out;
	c->def.avail_out = (uInt)cap;
	ck_assert_int_eq(deflate(&c->def, Z_SYNC_FLUSH), Z_OK);
	ck_assert_uint_eq(c->def.avail_in, 0);
	size_t got = cap - c->def.avail_out;
	ck_assert(got >= 4 && !memcmp(out + got - 4, "\x00\x00\xff\xff", 4));
	return got - 4;
}

/* The gateway's message inflated by the client: it must be want, byte for byte. */
static void client_inflate(struct client *c, const uint8_t *z, size_t zn, const char *want, size_t n)
{
	uint8_t in[8192], out[8192];
	ck_assert(zn + 4 <= sizeof(in));
	memcpy(in, z, zn);
	memcpy(in + zn, "\x00\x00\xff\xff", 4);
	c->inf.next_in = in;
	c->inf.avail_in = (uInt)zn + 4;
	c->inf.next_out = out;
	c->inf.avail_out = sizeof(out);
	ck_assert_int_eq(inflate(&c->inf, Z_SYNC_FLUSH), Z_OK);
	ck_assert_uint_eq(sizeof(out) - c->inf.avail_out, n);
	ck_assert(!memcmp(out, want, n));
}

static size_t message(char *m, size_t cap, int k)
{
	/* Repetitive across messages, so each refers back into the window. */
	int n = snprintf(m, cap, "{\"type\":\"update\",\"room\":\"lobby\",\"user\":\"someone\",\"seq\":%d,"
			 "\"text\":\"the same words again and again, message after message\"}", k);
	return (size_t)n;
}

/* One message each way; returns the size of the gateway's compressed echo. */
static size_t exchange(struct client *c, struct pmd_stream **ps, int k)
{
	char m[256];
	size_t n = message(m, sizeof(m), k);
	uint8_t z[1024];
	size_t zn = client_deflate(c, m, n, z, sizeof(z));
	const uint8_t *out;
	size_t on;
	ck_assert_int_eq(pmd_inflate(&P, ps, z, zn, 1 << 20, &out, &on), 0);
	ck_assert_uint_eq(on, n);
	ck_assert(!memcmp(out, m, n));
	ck_assert_int_eq(pmd_deflate(&P, &cfg, ps, (const uint8_t *)m, n, &out, &on), 0);
	client_inflate(c, out, on, m, n);
	return on;
}

/* Export, free, import: what the two processes do. */
static struct pmd_stream *move(struct pmd_stream *s, size_t *to_n, size_t *from_n)
{
	static uint8_t to[PMD_WINDOW_MAX], from[PMD_WINDOW_MAX];
	ck_assert(pmd_stream_movable(s));
	ck_assert_int_eq(pmd_stream_export(s, to, to_n, from, from_n), 0);
	pmd_stream_free(s);
	struct pmd_stream *t = NULL;
	ck_assert_int_eq(pmd_stream_import(&P, to, *to_n, from, *from_n, &t), 0);
	return t;
}

START_TEST(windows_move)
{
	pmd_cfg_default(&cfg);
	struct client c;
	client_init(&c);
	struct pmd_stream *s = NULL;
	size_t first = exchange(&c, &s, 0), to_n, from_n;
	for (int k = 1; k < 50; k++)
		exchange(&c, &s, k);
	for (int u = 0; u < 3; u++) {
		s = move(s, &to_n, &from_n);
		if (u == 1) {
			/* Moved again before a message: the compressor was not made yet, the
			 * window it was given goes on as it came. */
			size_t to_before = to_n;
			s = move(s, &to_n, &from_n);
			ck_assert_uint_eq(to_n, to_before);
		}
		/* Full windows: 2^12 bytes from the client (50 messages were more); to it, what
		 * zlib keeps of 2^10 since its last slide, no less than the 2^10 - 262 its
		 * matches may reach back. */
		ck_assert_uint_eq(from_n, 4096);
		ck_assert_msg(to_n >= 1024 - 262 && to_n <= 1024, "to_n %zu", to_n);
		/* The restored compressor refers back into its window: its first message is a
		 * fraction of what a compressor without context makes of it. */
		size_t z = exchange(&c, &s, 100 + u);
		ck_assert_msg(z * 3 < first, "%zu bytes after the move, %zu without context", z, first);
		for (int k = 0; k < 10; k++)
			exchange(&c, &s, 200 + 10 * u + k);
	}
	pmd_stream_free(s);
	client_done(&c);
}
END_TEST

/* A stream never made, or a direction that keeps no context, has nothing to carry: the
 * import makes no stream until the first compressed message, as for a new connection. */
START_TEST(nothing_to_carry)
{
	pmd_cfg_default(&cfg);
	uint8_t to[PMD_WINDOW_MAX], from[PMD_WINDOW_MAX];
	size_t to_n = 1, from_n = 1;
	ck_assert(pmd_stream_movable(NULL));
	ck_assert_int_eq(pmd_stream_export(NULL, to, &to_n, from, &from_n), 0);
	ck_assert_uint_eq(to_n + from_n, 0);
	struct pmd_stream *s = NULL;
	ck_assert_int_eq(pmd_stream_import(&P, to, 0, from, 0, &s), 0);
	ck_assert_ptr_null(s);
	/* Only the client keeps context: only the decompressor's window. */
	struct pmd_params p = P;
	p.takeover = 1;
	struct client c;
	client_init(&c);
	char m[256];
	size_t n = message(m, sizeof(m), 1);
	uint8_t z[1024];
	size_t zn = client_deflate(&c, m, n, z, sizeof(z));
	const uint8_t *out;
	size_t on;
	ck_assert_int_eq(pmd_inflate(&p, &s, z, zn, 1 << 20, &out, &on), 0);
	ck_assert_int_eq(pmd_stream_export(s, to, &to_n, from, &from_n), 0);
	ck_assert_uint_eq(to_n, 0);
	ck_assert_uint_eq(from_n, n);
	ck_assert(!memcmp(from, m, n));
	pmd_stream_free(s);
	client_done(&c);
}
END_TEST

/* Windows the agreed parameters do not allow are refused, and nothing is made. */
START_TEST(bad_windows)
{
	pmd_cfg_default(&cfg);
	static uint8_t w[PMD_WINDOW_MAX];
	struct pmd_stream *s = NULL;
	ck_assert_int_eq(pmd_stream_import(&P, w, 1025, w, 0, &s), -EINVAL);  /* over 2^10 */
	ck_assert_int_eq(pmd_stream_import(&P, w, 0, w, 4097, &s), -EINVAL);  /* over 2^12 */
	struct pmd_params p = P;
	p.takeover = 1; /* the gateway keeps no context: no compressor's window */
	ck_assert_int_eq(pmd_stream_import(&p, w, 10, w, 0, &s), -EINVAL);
	p.takeover = 2;
	ck_assert_int_eq(pmd_stream_import(&p, w, 0, w, 10, &s), -EINVAL);
	p = P;
	p.on = 0;
	ck_assert_int_eq(pmd_stream_import(&p, w, 10, w, 0, &s), -EINVAL);
	ck_assert_ptr_null(s);
	ck_assert_int_eq(pmd_stream_import(&P, w, 1024, w, 4096, &s), 0);
	ck_assert_ptr_nonnull(s);
	pmd_stream_free(s);
}
END_TEST

/* A stream a zlib call failed on is not at a message boundary: it cannot move (its
 * connection is failing anyway, and drains with the old process). */
START_TEST(failed_stream_is_not_movable)
{
	pmd_cfg_default(&cfg);
	struct client c;
	client_init(&c);
	struct pmd_stream *s = NULL;
	exchange(&c, &s, 1);
	ck_assert(pmd_stream_movable(s));
	static const uint8_t junk[] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };
	const uint8_t *out;
	size_t on;
	ck_assert_int_eq(pmd_inflate(&P, &s, junk, sizeof(junk), 1 << 20, &out, &on), -EBADMSG);
	ck_assert(!pmd_stream_movable(s));
	uint8_t to[PMD_WINDOW_MAX], from[PMD_WINDOW_MAX];
	size_t to_n, from_n;
	ck_assert_int_eq(pmd_stream_export(s, to, &to_n, from, &from_n), -EAGAIN);
	pmd_stream_free(s);
	client_done(&c);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("deflate");
	TCase *tc = tcase_create("streams");
	tcase_add_test(tc, windows_move);
	tcase_add_test(tc, nothing_to_carry);
	tcase_add_test(tc, bad_windows);
	tcase_add_test(tc, failed_stream_is_not_movable);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
