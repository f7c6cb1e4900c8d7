/*
 * permessage-deflate (RFC 7692) conformance, modelled on the Autobahn TestSuite's sections
 * 12 (compressed messages of many sizes) and 13 (offers and their answers, every window,
 * with and without context takeover), plus what a peer must never get away with: RSV1 on
 * a control frame or a continuation, corrupt or truncated DEFLATE data, invalid UTF-8 once
 * inflated, and a bomb. The client side is zlib, in this file. Runs against the built-in
 * echo, or through a worker (WT_GW_WORKER), like tests/conformance/test_conformance.c.
 */
#include "tests/lib/wstest.h"

#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

static struct wt_gw gw;

static void setup(void)
{
	/* Through a worker when the suite runs in worker mode (pool "conf"). */
	if (wt_worker_mode())
		WT_GW_START(&gw, "--route", "/=conf", "--route", "/keep=conf,deflate=takeover",
			    "--route", "/off=conf,deflate=off", "--max-message", "1048576", NULL);
	else
		WT_GW_START(&gw, "--route", "/=echo", "--route", "/keep=echo,deflate=takeover",
			    "--route", "/off=echo,deflate=off", "--max-message", "1048576", NULL);
}

static void teardown(void)
{
	WT_GW_STOP(&gw);
}

/* ---- the client's side --------------------------------------------------------------- */

struct client {
	struct wt_conn c;
	char ext[512];          /* the answer's Sec-WebSocket-Extensions, "" when declined */
	int server_keeps;       /* no server_no_context_takeover in the answer */
	int client_keeps;       /* the client may keep its context */
	int server_bits, client_bits;
	z_stream def, inf;
};

/* The value of parameter name in the answer: 1 present (with *val when it has one). */
static int answer_has(const char *ext, const char *name, int *val)
{
	const char *p = strstr(ext, name);
	if (!p)
		return 0;
	if (val && p[strlen(name)] == '=')
		*val = atoi(p + strlen(name) + 1);
	return 1;
}

/* Opens path offering exactly offer (NULL: no extension header). Returns 1 when the gateway
 * agreed to permessage-deflate. */
static int open_with(struct client *k, const char *path, const char *offer)
{
	char req[2048], extra[1024] = "";
	struct wt_http r;

	memset(k, 0, sizeof(*k));
	if (offer)
		snprintf(extra, sizeof(extra), "Sec-WebSocket-Extensions: %s\r\n", offer);
	WT_OK(&k->c, wt_connect(&k->c, "127.0.0.1", gw.port));
	int n = wt_request_build(&k->c, req, sizeof(req), path, extra);
	WT_OK(&k->c, wt_send_raw(&k->c, req, (size_t)n));
	WT_EXPECT_HTTP(&k->c, &r, 101);
	ck_assert_int_eq(wt_http_check_upgrade(&k->c, &r), 0);
	if (!wt_http_header(&r, "Sec-WebSocket-Extensions", k->ext, sizeof(k->ext)))
		return 0;
	ck_assert_msg(!strncmp(k->ext, "permessage-deflate", 18), "answer: %s", k->ext);
	k->server_keeps = !answer_has(k->ext, "server_no_context_takeover", NULL);
	k->client_keeps = !answer_has(k->ext, "client_no_context_takeover", NULL);
	k->server_bits = k->client_bits = 15;
	answer_has(k->ext, "server_max_window_bits", &k->server_bits);
	answer_has(k->ext, "client_max_window_bits", &k->client_bits);
	ck_assert_int_eq(deflateInit2(&k->def, 6, Z_DEFLATED, -k->client_bits, 8, Z_DEFAULT_STRATEGY), Z_OK);
	ck_assert_int_eq(inflateInit2(&k->inf, -15), Z_OK);
	return 1;
}

static void close_client(struct client *k)
{
	if (k->ext[0]) {
		deflateEnd(&k->def);
		inflateEnd(&k->inf);
	}
	wt_close(&k->c);
}

/* Compresses one message as a client of k may: a fresh context unless it keeps it. */
static uint8_t *compress_msg(struct client *k, const void *p, size_t n, size_t *out_n)
{
	if (!k->client_keeps)
		deflateReset(&k->def);
	size_t cap = n + n / 8 + 64;
	uint8_t *out = malloc(cap);
	k->def.next_in = (Bytef *)p;
	k->def.avail_in = (uInt)n;
	k->def.next_out = out;
	k->def.avail_out = (uInt)cap;
	ck_assert_int_eq(deflate(&k->def, Z_SYNC_FLUSH), Z_OK);
	ck_assert_int_eq(k->def.avail_in, 0);
	*out_n = cap - k->def.avail_out;
	ck_assert(*out_n >= 4 && !memcmp(out + *out_n - 4, "\0\0\xff\xff", 4));
	*out_n -= 4;
	return out;
}

static uint8_t *inflate_msg(struct client *k, const uint8_t *p, size_t n, size_t *out_n)
{
	static const uint8_t tail[4] = { 0, 0, 0xff, 0xff };
	size_t cap = 4 * n + (2u << 20), got = 0;
	uint8_t *out = malloc(cap);
	if (!k->server_keeps)
		inflateReset(&k->inf);
	for (int part = 0; part < 2; part++) {
		k->inf.next_in = (Bytef *)(part ? tail : p);
		k->inf.avail_in = (uInt)(part ? 4 : n);
		k->inf.next_out = out + got;
		k->inf.avail_out = (uInt)(cap - got);
		int rc = inflate(&k->inf, Z_SYNC_FLUSH);
		ck_assert_msg(rc == Z_OK || rc == Z_BUF_ERROR, "the gateway's DEFLATE data: inflate %d", rc);
		got = cap - k->inf.avail_out;
	}
	*out_n = got;
	return out;
}

static int compressed_echoes; /* echoes that came back with RSV1 */

/* Sends p as one message (compressed when asked, in frames of at most chunk bytes) and
 * expects the echo, whatever form the gateway chose for it. */
static void echo(struct client *k, int op, const void *p, size_t n, int compressed, size_t chunk)
{
	size_t wn = n;
	uint8_t *w = compressed ? compress_msg(k, p, n, &wn) : NULL;
	const uint8_t *src = w ? w : p;
	size_t off = 0;
	do {
		size_t len = wn - off < chunk ? wn - off : chunk;
		struct wt_frame_spec s = { .opcode = off ? WT_CONT : op, .fin = off + len == wn,
					   .rsv = off == 0 && compressed ? 4 : 0,
					   .payload = src + off, .len = len };
		WT_OK(&k->c, wt_send_spec(&k->c, &s));
		off += len;
	} while (off < wn);
	free(w);
	struct wt_frame m;
	WT_OK(&k->c, wt_read_message(&k->c, &m, -1));
	ck_assert_int_eq(m.opcode, op);
	size_t got_n = m.len;
	uint8_t *got = m.payload;
	if (m.rsv) {
		ck_assert_msg(m.rsv == 4 && k->ext[0], "RSV %d on an echo (extension '%s')", m.rsv, k->ext);
		compressed_echoes++;
		got = inflate_msg(k, m.payload, m.len, &got_n);
		free(m.payload);
	}
	ck_assert_msg(got_n == n && !memcmp(got, p, n), "echo of %zu bytes came back as %zu", n, got_n);
	free(got);
}

static void fill(uint8_t *p, size_t n, unsigned seed, int text)
{
	/* Words from a small vocabulary: compressible like JSON, with some noise. */
	static const char *const words[] = { "{\"id\":", "\"name\":", "\"value\":", "true", "false",
					     "null", "[1,2,3]", "\"chat\"", "}", " " };
	size_t i = 0;
	while (i < n) {
		seed = seed * 1103515245u + 12345u;
		const char *w = words[(seed >> 16) % 10];
		for (size_t j = 0; w[j] && i < n; j++)
			p[i++] = (uint8_t)w[j];
		if (!text && i < n)
			p[i++] = (uint8_t)(seed >> 8);
	}
}

/* ---- 12: compressed messages of many sizes -------------------------------------------- */

static const size_t sizes[] = { 0, 16, 64, 256, 1024, 4096, 16384, 65536, 131072, 262144 };

START_TEST(test_12_sizes)
{
	struct client k;
	int op = _i & 1 ? WT_BINARY : WT_TEXT;
	static uint8_t buf[262144];

	ck_assert(open_with(&k, "/", "permessage-deflate; client_max_window_bits"));
	compressed_echoes = 0;
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		fill(buf, sizes[i], (unsigned)i, op == WT_TEXT);
		echo(&k, op, buf, sizes[i], 1, _i & 2 ? 999 : SIZE_MAX);
		echo(&k, op, buf, sizes[i], 0, SIZE_MAX); /* uncompressed stays allowed */
	}
	/* Every echo of 64 bytes and more (--deflate-min-size) came back compressed. */
	ck_assert_int_eq(compressed_echoes, 2 * 8);
	WT_OK(&k.c, wt_send_close(&k.c, 1000, NULL, 0));
	WT_EXPECT_CLOSE_EOF(&k.c, 1000);
	close_client(&k);
}
END_TEST

/* ---- 13: offers, every window, context takeover ---------------------------------------- */

START_TEST(test_13_windows)
{
	/* Each window the client asks the server to use: the answer names one no larger,
	 * and the server's messages inflate with it. 8 is declined (zlib cannot honour it). */
	static uint8_t buf[65536];
	char offer[128];
	int bits = 8 + _i;
	struct client k;

	snprintf(offer, sizeof(offer), "permessage-deflate; server_max_window_bits=%d; client_max_window_bits", bits);
	int agreed = open_with(&k, "/", offer);
	if (bits == 8) {
		ck_assert_msg(!agreed, "server_max_window_bits=8 was accepted: %s", k.ext);
		close_client(&k);
		return;
	}
	ck_assert_msg(agreed, "declined %s", offer);
	ck_assert_int_le(k.server_bits, bits);
	inflateEnd(&k.inf);
	ck_assert_int_eq(inflateInit2(&k.inf, -k.server_bits), Z_OK);
	for (int i = 0; i < 8; i++) {
		fill(buf, sizeof(buf) >> i, (unsigned)(bits * 10 + i), 1);
		echo(&k, WT_TEXT, buf, sizeof(buf) >> i, 1, SIZE_MAX);
	}
	close_client(&k);
}
END_TEST

START_TEST(test_13_takeover)
{
	/* A route that keeps context both ways, and offers that forbid it. */
	static const struct {
		const char *path, *offer;
		int server_keeps, client_keeps;
	} cases[] = {
		{ "/keep", "permessage-deflate", 1, 1 },
		{ "/keep", "permessage-deflate; server_no_context_takeover", 0, 1 },
		{ "/keep", "permessage-deflate; client_no_context_takeover", 1, 0 },
		{ "/keep", "permessage-deflate; client_max_window_bits=9", 1, 1 },
		{ "/", "permessage-deflate", 0, 0 },
	};
	static uint8_t buf[8192];
	struct client k;

	ck_assert(open_with(&k, cases[_i].path, cases[_i].offer));
	ck_assert_int_eq(k.server_keeps, cases[_i].server_keeps);
	ck_assert_int_eq(k.client_keeps, cases[_i].client_keeps);
	if (strstr(cases[_i].offer, "client_max_window_bits=9")) {
		ck_assert_int_eq(k.client_bits, 9);
		deflateEnd(&k.def);
		ck_assert_int_eq(deflateInit2(&k.def, 6, Z_DEFLATED, -9, 8, Z_DEFAULT_STRATEGY), Z_OK);
	}
	/* The same message again and again: with context kept, each compresses against the
	 * last (and the gateway's inflater must follow). */
	fill(buf, sizeof(buf), 7, 1);
	for (int i = 0; i < 20; i++)
		echo(&k, WT_TEXT, buf, sizeof(buf) - (size_t)i * 100, 1, i % 3 ? SIZE_MAX : 1000);
	close_client(&k);
}
END_TEST

START_TEST(test_13_offers)
{
	/* Offers the gateway must decline one by one, taking the first it can accept. */
	static const struct {
		const char *offer;
		int agreed;
	} cases[] = {
		{ "permessage-deflate; no_such_param, permessage-deflate", 1 },
		{ "permessage-deflate; server_max_window_bits", 0 },          /* needs a value */
		{ "permessage-deflate; server_max_window_bits=16", 0 },
		{ "permessage-deflate; server_max_window_bits=09", 0 },
		{ "permessage-deflate; client_max_window_bits=7", 0 },
		{ "permessage-deflate; server_no_context_takeover; server_no_context_takeover", 0 },
		{ "permessage-deflate; client_no_context_takeover=1", 0 },
		{ "x-webkit-deflate-frame, permessage-deflate; client_max_window_bits", 1 },
		{ "permessage-deflate; server_max_window_bits=\"12\"", 1 },
		{ "foo; bar=1", 0 },
	};
	struct client k;

	int agreed = open_with(&k, "/", cases[_i].offer);
	ck_assert_msg(agreed == cases[_i].agreed, "offer '%s': %s (answer '%s')", cases[_i].offer,
		      agreed ? "accepted" : "declined", k.ext);
	static uint8_t buf[2048];
	fill(buf, sizeof(buf), 3, 1);
	echo(&k, WT_TEXT, buf, sizeof(buf), agreed, SIZE_MAX);
	close_client(&k);
	/* A route with deflate off never agrees. */
	ck_assert(!open_with(&k, "/off", "permessage-deflate"));
	close_client(&k);
}
END_TEST

/* ---- what a peer must never get away with ---------------------------------------------- */

static void expect_failure(struct client *k, const struct wt_frame_spec *spec, int code)
{
	WT_OK(&k->c, wt_send_spec(&k->c, spec));
	WT_EXPECT_CLOSE_EOF(&k->c, code);
}

START_TEST(test_violations)
{
	struct client k;
	static uint8_t buf[4096];
	size_t zn;

	switch (_i) {
	case 0: /* RSV1 on a ping */
		ck_assert(open_with(&k, "/", "permessage-deflate"));
		expect_failure(&k, &(struct wt_frame_spec){ .opcode = WT_PING, .fin = 1, .rsv = 4 }, 1002);
		break;
	case 1: { /* RSV1 on a continuation */
		ck_assert(open_with(&k, "/", "permessage-deflate"));
		WT_OK(&k.c, wt_send_spec(&k.c, &(struct wt_frame_spec){ .opcode = WT_TEXT, .fin = 0,
			.payload = "ab", .len = 2 }));
		expect_failure(&k, &(struct wt_frame_spec){ .opcode = WT_CONT, .fin = 1, .rsv = 4,
			.payload = "cd", .len = 2 }, 1002);
		break;
	}
	case 2: /* RSV1 without the extension */
		ck_assert(!open_with(&k, "/", NULL));
		expect_failure(&k, &(struct wt_frame_spec){ .opcode = WT_TEXT, .fin = 1, .rsv = 4,
			.payload = "x", .len = 1 }, 1002);
		break;
	case 3: /* data that is not DEFLATE */
		ck_assert(open_with(&k, "/", "permessage-deflate"));
		expect_failure(&k, &(struct wt_frame_spec){ .opcode = WT_BINARY, .fin = 1, .rsv = 4,
			.payload = "\xff\xff\xff\xff\xff", .len = 5 }, 1007);
		break;
	case 4: { /* valid DEFLATE of invalid UTF-8 in a text message */
		ck_assert(open_with(&k, "/", "permessage-deflate"));
		uint8_t *z = compress_msg(&k, "hello \xc0\xaf world", 15, &zn);
		expect_failure(&k, &(struct wt_frame_spec){ .opcode = WT_TEXT, .fin = 1, .rsv = 4,
			.payload = z, .len = zn }, 1007);
		free(z);
		break;
	}
	case 5: { /* a bomb: a few KiB that would inflate to 64 MiB, past --max-message (1 MiB) */
		ck_assert(open_with(&k, "/", "permessage-deflate"));
		size_t big = 64u << 20;
		uint8_t *zeros = calloc(1, big);
		uint8_t *z = compress_msg(&k, zeros, big, &zn);
		free(zeros);
		ck_assert_uint_lt(zn, 128 * 1024);
		expect_failure(&k, &(struct wt_frame_spec){ .opcode = WT_BINARY, .fin = 1, .rsv = 4,
			.payload = z, .len = zn }, 1009);
		free(z);
		break;
	}
	default: { /* a compressed message cut short */
		ck_assert(open_with(&k, "/", "permessage-deflate"));
		fill(buf, sizeof(buf), 9, 0);
		uint8_t *z = compress_msg(&k, buf, sizeof(buf), &zn);
		WT_OK(&k.c, wt_send_spec(&k.c, &(struct wt_frame_spec){ .opcode = WT_BINARY, .fin = 1,
			.rsv = 4, .payload = z, .len = zn / 2 }));
		free(z);
		/* What it inflates to is not the message: never echoed as if it were. */
		struct wt_frame m;
		int rc = wt_read_message(&k.c, &m, -1);
		ck_assert_int_eq(rc, 0);
		if (m.opcode == WT_CLOSE) {
			ck_assert_int_eq(wt_close_code(&m), 1007);
		} else {
			size_t got_n;
			uint8_t *got = m.rsv ? inflate_msg(&k, m.payload, m.len, &got_n) : NULL;
			ck_assert(!got || got_n < sizeof(buf));
			free(got);
		}
		wt_frame_free(&m);
	}
	}
	close_client(&k);
	/* The gateway serves others as before. */
	ck_assert(open_with(&k, "/", "permessage-deflate"));
	echo(&k, WT_TEXT, "still here", 10, 1, SIZE_MAX);
	close_client(&k);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("deflate");
	struct {
		const char *name;
		const TTest *t;
		int loops;
	} cases[] = {
		{ "12_sizes", test_12_sizes, 4 },
		{ "13_windows", test_13_windows, 8 },
		{ "13_takeover", test_13_takeover, 5 },
		{ "13_offers", test_13_offers, 10 },
		{ "violations", test_violations, 7 },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		TCase *tc = tcase_create(cases[i].name);

		tcase_set_timeout(tc, 20);
		tcase_add_checked_fixture(tc, setup, teardown);
		tcase_add_loop_test(tc, cases[i].t, 0, cases[i].loops);
		suite_add_tcase(s, tc);
	}
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_ENV);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
