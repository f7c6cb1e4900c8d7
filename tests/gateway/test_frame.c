/* gateway/frame.c: headers, unmasking and the client frame parser. */
#include "gateway/frame.h"
#include "gateway/utf8.h"

#include <check.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

/* Check's ck_assert* writes a checkpoint to its parent on every success (a
 * syscall); loops over millions of bytes use this, which costs nothing unless
 * it fails. */
#define REQUIRE(cond) do { if (!(cond)) ck_abort_msg("%s:%d: %s", __FILE__, __LINE__, #cond); } while (0)
#define REQUIRE_MSG(cond, ...) do { if (!(cond)) ck_abort_msg(__VA_ARGS__); } while (0)

static const uint8_t KEY[4] = { 0x37, 0xfa, 0x21, 0x3d };
static const uint64_t NOLIMIT = UINT64_MAX;

/* ---- input at the end of a page followed by a PROT_NONE page ---- */

static uint8_t *guard_base;
static size_t guard_span, page;

static void guard_setup(void)
{
	page = (size_t)sysconf(_SC_PAGESIZE);
	guard_span = 2u << 20;
	guard_base = mmap(NULL, guard_span + page, PROT_READ | PROT_WRITE,
			  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ck_assert_ptr_ne(guard_base, MAP_FAILED);
	ck_assert_int_eq(mprotect(guard_base + guard_span, page, PROT_NONE), 0);
}

static void guard_teardown(void)
{
	munmap(guard_base, guard_span + page);
}

static uint8_t *at_page_end(const uint8_t *p, size_t n)
{
	uint8_t *dst = guard_base + guard_span - n;

	REQUIRE(n <= guard_span);
	memmove(dst, p, n);
	return dst;
}

/* ---- client frames, masked by a bytewise reference XOR ---- */

static size_t mk(uint8_t *o, unsigned op, int fin, const void *payload, size_t len)
{
	size_t h = ws_frame_header(o, op, fin, len, KEY);
	const uint8_t *src = payload;

	for (size_t i = 0; i < len; i++)
		o[h + i] = src[i] ^ KEY[i & 3];
	return h + len;
}

static size_t mk_str(uint8_t *o, unsigned op, int fin, const char *s)
{
	return mk(o, op, fin, s, strlen(s));
}

static size_t mk_close(uint8_t *o, unsigned code, const char *reason, size_t rlen)
{
	uint8_t body[WS_CONTROL_MAX];

	body[0] = (uint8_t)(code >> 8);
	body[1] = (uint8_t)code;
	memcpy(body + 2, reason, rlen);
	return mk(o, WS_OP_CLOSE, 1, body, 2 + rlen);
}

/* ---- the recorder: callbacks checked on the fly, outputs normalised ---- */

/*
 * Whole messages and control frames are appended to `log` in one format, so a
 * byte-at-a-time feed and a one-shot feed can be compared with memcmp even
 * though their data pieces differ.
 */
struct rec {
	uint8_t *log;
	size_t log_len, log_cap;
	uint8_t *msg;		/* current message being assembled */
	size_t msg_len, msg_cap;
	int in_msg;
	unsigned msg_op;
	unsigned data_calls, control_calls, messages;
	int stop_with;		/* returned by the callbacks when non-zero */
	/* the last data call, for tests that look at single pieces */
	int last_first, last_last;
	size_t last_len;
	uint8_t *last_p;
	/* the last control call */
	unsigned c_op, c_code;
	size_t c_len, c_reason_len;
	uint8_t c_payload[WS_CONTROL_MAX], c_reason[WS_CONTROL_MAX];
	int keep_payload;	/* assemble messages (off for the 4 GiB frame) */
};

static void grow(uint8_t **p, size_t *cap, size_t need)
{
	if (need <= *cap)
		return;
	while (*cap < need)
		*cap = *cap ? *cap * 2 : 256;
	*p = realloc(*p, *cap);
	REQUIRE(*p != NULL);
}

static void log_put(struct rec *r, const void *p, size_t n)
{
	grow(&r->log, &r->log_cap, r->log_len + n);
	if (n)
		memcpy(r->log + r->log_len, p, n);
	r->log_len += n;
}

static void log_u64(struct rec *r, uint64_t v)
{
	log_put(r, &v, sizeof(v));
}

static int on_data(void *ud, unsigned op, uint8_t *p, size_t len, int first, int last)
{
	struct rec *r = ud;

	r->data_calls++;
	REQUIRE(op == WS_OP_TEXT || op == WS_OP_BINARY);
	/* first exactly at the start, and op stable over the message */
	REQUIRE(!!first == !r->in_msg);
	if (first) {
		r->in_msg = 1;
		r->msg_op = op;
		r->msg_len = 0;
	}
	REQUIRE(op == r->msg_op);
	if (r->keep_payload) {
		grow(&r->msg, &r->msg_cap, r->msg_len + len);
		if (len)
			memcpy(r->msg + r->msg_len, p, len);
	}
	r->msg_len += len;
	r->last_first = first, r->last_last = last, r->last_len = len, r->last_p = p;
	if (last) {
		/* A delivered text message is always whole valid UTF-8. */
		if (op == WS_OP_TEXT && r->keep_payload)
			REQUIRE(utf8_validate(UTF8_ACCEPT, r->msg, r->msg_len) == UTF8_ACCEPT);
		log_put(r, "M", 1);
		log_u64(r, op);
		log_u64(r, r->msg_len);
		if (r->keep_payload)
			log_put(r, r->msg, r->msg_len);
		r->in_msg = 0;
		r->messages++;
	}
	return r->stop_with;
}

static int on_control(void *ud, unsigned op, uint8_t *p, size_t len, unsigned code,
		      const uint8_t *reason, size_t reason_len)
{
	struct rec *r = ud;

	r->control_calls++;
	REQUIRE(op == WS_OP_CLOSE || op == WS_OP_PING || op == WS_OP_PONG);
	REQUIRE(len <= WS_CONTROL_MAX);
	r->c_op = op, r->c_code = code, r->c_len = len, r->c_reason_len = reason_len;
	memcpy(r->c_payload, p, len);
	if (reason_len)
		memcpy(r->c_reason, reason, reason_len);
	if (op != WS_OP_CLOSE)
		REQUIRE(code == 0 && reason == NULL && reason_len == 0);
	log_put(r, "C", 1);
	log_u64(r, op);
	log_u64(r, code);
	log_u64(r, len);
	log_put(r, p, len);
	log_u64(r, reason_len);
	return r->stop_with;
}

static const struct ws_rx_ops ops = { on_data, on_control };

static void rec_init(struct rec *r)
{
	memset(r, 0, sizeof(*r));
	r->keep_payload = 1;
}

static void rec_free(struct rec *r)
{
	free(r->log);
	free(r->msg);
}

/* One call on in[0..n) placed at page end. */
static ssize_t feed1(struct ws_rx *rx, struct rec *r, const uint8_t *in, size_t n, uint64_t max)
{
	return ws_rx_feed(rx, at_page_end(in, n), n, max, &ops, r);
}

/*
 * Feeds in[0..n) the way the gateway does: `chunk` new bytes per read (0 =
 * random 1..40), the unconsumed tail kept and passed again in front of the
 * next bytes, every call's input at page end. Returns 0 when the stream is
 * consumed, else the error and, in *at, how many input bytes had been read.
 */
static ssize_t feed_stream(struct ws_rx *rx, struct rec *r, const uint8_t *in, size_t n,
			   size_t chunk, uint64_t max, size_t *at)
{
	static uint8_t pend[2u << 20];
	size_t plen = 0, off = 0;
	uint32_t rng = 12345;

	while (off < n) {
		size_t k = chunk;

		if (!k) {
			rng = rng * 1103515245u + 12345u;
			k = 1 + (rng >> 16) % 40;
		}
		if (k > n - off)
			k = n - off;
		REQUIRE((plen + k) <= sizeof(pend));
		memcpy(pend + plen, in + off, k);
		plen += k;
		off += k;

		uint8_t *buf = at_page_end(pend, plen);
		ssize_t rc = ws_rx_feed(rx, buf, plen, max, &ops, r);

		if (rc < 0) {
			if (at)
				*at = off;
			return rc;
		}
		REQUIRE((size_t)rc <= plen);
		/* The tail is bounded and untouched (still masked), as documented. */
		REQUIRE((plen - (size_t)rc) <= WS_RX_TAIL_MAX);
		REQUIRE(memcmp(buf + rc, pend + rc, plen - (size_t)rc) == 0);
		memmove(pend, pend + rc, plen - (size_t)rc);
		plen -= (size_t)rc;
	}
	REQUIRE(plen == 0);
	if (at)
		*at = off;
	return 0;
}

/* ---- header writing ---- */

static uint64_t parse_len(const uint8_t *h, size_t *hlen)
{
	uint64_t len = h[1] & 0x7f;

	*hlen = 2;
	if (len == 126) {
		len = (uint64_t)h[2] << 8 | h[3];
		*hlen = 4;
	} else if (len == 127) {
		len = 0;
		for (int i = 0; i < 8; i++)
			len = len << 8 | h[2 + i];
		*hlen = 10;
	}
	return len;
}

START_TEST(test_header_roundtrip)
{
	static const uint64_t lens[] = { 0, 1, 125, 126, 127, 65535, 65536, 1ull << 32,
					 (1ull << 63) - 1 };
	static const size_t want_hlen[] = { 2, 2, 2, 4, 4, 4, 10, 10, 10 };
	uint8_t h[WS_FRAME_HDR_MAX];

	for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
		for (int masked = 0; masked < 2; masked++) {
			size_t n = ws_frame_header(h, WS_OP_BINARY, 1, lens[i], masked ? KEY : NULL), hl;

			ck_assert_uint_eq(n, want_hlen[i] + (masked ? 4 : 0));
			ck_assert_uint_eq(h[0], 0x82);
			ck_assert_uint_eq(!!(h[1] & 0x80), masked);
			ck_assert_uint_eq(parse_len(h, &hl), lens[i]);
			ck_assert_uint_eq(hl, want_hlen[i]);
			if (masked)
				ck_assert_int_eq(memcmp(h + hl, KEY, 4), 0);
		}
	}
	ws_frame_header(h, WS_OP_TEXT, 0, 5, NULL);
	ck_assert_uint_eq(h[0], 0x01);
	ws_frame_header(h, WS_OP_CLOSE, 1, 2, NULL);
	ck_assert_uint_eq(h[0], 0x88);
	ws_frame_header(h, WS_OP_PONG, 1, 0, NULL);
	ck_assert_uint_eq(h[0], 0x8a);
	ck_assert_uint_eq(h[1], 0x00);
}
END_TEST

/* Masked frames of each boundary length parse back to the same payload. */
START_TEST(test_parse_lengths)
{
	static const size_t lens[] = { 0, 1, 125, 126, 127, 65535, 65536 };
	size_t max = 65536 + WS_FRAME_HDR_MAX;
	uint8_t *payload = malloc(65536), *frame = malloc(max);

	for (size_t i = 0; i < 65536; i++)
		payload[i] = (uint8_t)(i * 7 + 3);
	for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
		struct ws_rx rx = { 0 };
		struct rec r;
		size_t n = mk(frame, WS_OP_BINARY, 1, payload, lens[i]);

		rec_init(&r);
		ck_assert_int_eq(feed1(&rx, &r, frame, n, NOLIMIT), (ssize_t)n);
		ck_assert_uint_eq(r.messages, 1);
		ck_assert_uint_eq(r.data_calls, 1);
		ck_assert_uint_eq(r.msg_len, lens[i]);
		ck_assert(lens[i] == 0 || memcmp(r.msg, payload, lens[i]) == 0);
		ck_assert(r.last_first && r.last_last);
		/* The same frame unmasked, as a server would write it, is refused. */
		n = ws_frame_header(frame, WS_OP_BINARY, 1, lens[i], NULL);
		memcpy(frame + n, payload, lens[i]);
		memset(&rx, 0, sizeof(rx));
		ck_assert_int_eq(feed1(&rx, &r, frame, n + lens[i], NOLIMIT), -WS_CLOSE_PROTOCOL);
		rec_free(&r);
	}
	free(payload);
	free(frame);
}
END_TEST

/*
 * A 2^32-byte frame streamed through one 1 MiB buffer: first piece, the
 * pieces in between, and the last piece with its content checked. Nothing
 * near 4 GiB is allocated.
 */
START_TEST(test_parse_4gib)
{
	const uint64_t total = 1ull << 32;
	const size_t chunk = 1u << 20;
	uint8_t *buf = guard_base + guard_span - chunk, h[WS_FRAME_HDR_MAX];
	struct ws_rx rx = { 0 };
	struct rec r;
	size_t hl = ws_frame_header(h, WS_OP_BINARY, 1, total, KEY);
	uint64_t done = 0;

	rec_init(&r);
	r.keep_payload = 0;
	REQUIRE(hl == 14);
	/* A limit one byte short refuses it at the header. */
	REQUIRE(feed1(&rx, &r, h, hl, total - 1) == -WS_CLOSE_TOO_BIG);
	memset(&rx, 0, sizeof(rx));
	/* The header alone: consumed, no data call yet. */
	REQUIRE(feed1(&rx, &r, h, hl, total) == (ssize_t)hl);
	REQUIRE(r.data_calls == 0);
	while (done < total) {
		int edge = done == 0 || done + chunk == total;

		if (edge) {
			/* Payload byte i is (i & 0xff) on the wire, before masking. */
			for (size_t i = 0; i < chunk; i++)
				buf[i] = (uint8_t)(done + i) ^ KEY[i & 3];
		}
		REQUIRE(ws_rx_feed(&rx, buf, chunk, total, &ops, &r) == (ssize_t)chunk);
		REQUIRE(r.last_p == buf);
		REQUIRE(r.last_len == chunk);
		REQUIRE(r.last_first == (done == 0));
		REQUIRE(r.last_last == (done + chunk == total));
		if (edge) {
			for (size_t i = 0; i < chunk; i++)
				REQUIRE(buf[i] == (uint8_t)(done + i));
		}
		done += chunk;
	}
	REQUIRE(r.data_calls == (total / chunk));
	REQUIRE(r.messages == 1);
	REQUIRE(r.msg_len == total);
	rec_free(&r);
}
END_TEST

/* ---- protocol errors, each rule on its own, each at the first byte that proves it ---- */

/* Feeds raw bytes one more at a time; the error must come at exactly `at` bytes. */
static void expect_error_at(const uint8_t *in, size_t n, size_t at, ssize_t err,
			    uint64_t max, const char *what)
{
	for (size_t k = 1; k <= n; k++) {
		struct ws_rx rx = { 0 };
		struct rec r;
		ssize_t rc;

		rec_init(&r);
		rc = feed1(&rx, &r, in, k, max);
		if (k < at)
			REQUIRE_MSG(rc >= 0, "%s: error %zd with only %zu bytes", what, rc, k);
		else
			REQUIRE_MSG(rc == err, "%s: %zu bytes give %zd, want %zd", what, k, rc, err);
		/* Valid prefixes of a text payload may be delivered; the bad piece never. */
		if (k >= at)
			REQUIRE_MSG(r.data_calls == 0 && r.control_calls == 0, "%s: callback ran", what);
		rec_free(&r);
	}
}

#define MASKED 0x80
#define K4 0x37, 0xfa, 0x21, 0x3d

START_TEST(test_err_unmasked)
{
	static const uint8_t f[] = { 0x81, 0x05, 'h', 'e', 'l', 'l', 'o' };
	expect_error_at(f, sizeof(f), 2, -WS_CLOSE_PROTOCOL, NOLIMIT, "unmasked text");
	static const uint8_t p[] = { 0x89, 0x00 };
	expect_error_at(p, sizeof(p), 2, -WS_CLOSE_PROTOCOL, NOLIMIT, "unmasked ping");
}
END_TEST

START_TEST(test_err_rsv)
{
	for (unsigned rsv = 0x10; rsv <= 0x40; rsv <<= 1) {
		uint8_t f[] = { (uint8_t)(0x81 | rsv), MASKED | 1, K4, 'x' };
		expect_error_at(f, sizeof(f), 1, -WS_CLOSE_PROTOCOL, NOLIMIT, "RSV bit on text");
		uint8_t c[] = { (uint8_t)(0x89 | rsv), MASKED, K4 };
		expect_error_at(c, sizeof(c), 1, -WS_CLOSE_PROTOCOL, NOLIMIT, "RSV bit on ping");
	}
}
END_TEST

START_TEST(test_err_reserved_opcode)
{
	static const unsigned ops_bad[] = { 3, 4, 5, 6, 7, 0xb, 0xc, 0xd, 0xe, 0xf };

	for (size_t i = 0; i < sizeof(ops_bad) / sizeof(ops_bad[0]); i++) {
		uint8_t f[] = { (uint8_t)(0x80 | ops_bad[i]), MASKED, K4 };
		expect_error_at(f, sizeof(f), 1, -WS_CLOSE_PROTOCOL, NOLIMIT, "reserved opcode");
	}
}
END_TEST

START_TEST(test_err_control_too_long)
{
	/* 126 in the 7-bit field of a ping: refused at the second byte. */
	uint8_t f[8 + 126] = { 0x89, MASKED | 126, 0x00, 126, K4 };
	expect_error_at(f, sizeof(f), 2, -WS_CLOSE_PROTOCOL, NOLIMIT, "ping of 126 bytes");
	uint8_t c[] = { 0x88, MASKED | 127, 0, 0, 0, 0, 0, 0, 0, 2, K4, 0x03, 0xe8 };
	expect_error_at(c, sizeof(c), 2, -WS_CLOSE_PROTOCOL, NOLIMIT, "close with 64-bit length");

	/* 125 is fine. */
	uint8_t ok[WS_FRAME_HDR_MAX + 125], body[125];
	struct ws_rx rx = { 0 };
	struct rec r;

	memset(body, 'p', sizeof(body));
	size_t n = mk(ok, WS_OP_PING, 1, body, 125);
	rec_init(&r);
	ck_assert_int_eq(feed1(&rx, &r, ok, n, NOLIMIT), (ssize_t)n);
	ck_assert_uint_eq(r.control_calls, 1);
	ck_assert_uint_eq(r.c_len, 125);
	ck_assert_int_eq(memcmp(r.c_payload, body, 125), 0);
	rec_free(&r);
}
END_TEST

START_TEST(test_err_control_fragmented)
{
	static const uint8_t f[] = { 0x09, MASKED, K4 };
	expect_error_at(f, sizeof(f), 1, -WS_CLOSE_PROTOCOL, NOLIMIT, "ping without FIN");
	static const uint8_t c[] = { 0x08, MASKED, K4 };
	expect_error_at(c, sizeof(c), 1, -WS_CLOSE_PROTOCOL, NOLIMIT, "close without FIN");
}
END_TEST

START_TEST(test_err_cont_without_message)
{
	static const uint8_t f[] = { 0x80, MASKED | 1, K4, 'x' };
	expect_error_at(f, sizeof(f), 1, -WS_CLOSE_PROTOCOL, NOLIMIT, "CONT first");

	/* CONT after a message that ended is just as wrong. */
	uint8_t s[64];
	size_t n = mk_str(s, WS_OP_TEXT, 1, "done");
	size_t at;
	struct ws_rx rx = { 0 };
	struct rec r;

	n += mk_str(s + n, WS_OP_CONT, 1, "more");
	rec_init(&r);
	ck_assert_int_eq(feed_stream(&rx, &r, s, n, 1, NOLIMIT, &at), -WS_CLOSE_PROTOCOL);
	ck_assert_uint_eq(at, 4 + 6 + 1);
	ck_assert_uint_eq(r.messages, 1);
	rec_free(&r);
}
END_TEST

START_TEST(test_err_data_inside_fragmented)
{
	for (unsigned op = WS_OP_TEXT; op <= WS_OP_BINARY; op++) {
		uint8_t s[64];
		size_t n = mk_str(s, WS_OP_TEXT, 0, "part"), first = n, at;
		struct ws_rx rx = { 0 };
		struct rec r;

		n += mk_str(s + n, op, 1, "new");
		rec_init(&r);
		ck_assert_int_eq(feed_stream(&rx, &r, s, n, 1, NOLIMIT, &at), -WS_CLOSE_PROTOCOL);
		ck_assert_uint_eq(at, first + 1);
		rec_free(&r);
	}
}
END_TEST

START_TEST(test_err_length_top_bit)
{
	static const uint8_t f[] = { 0x82, MASKED | 127, 0x80, 0, 0, 0, 0, 0, 0, 0, K4 };
	expect_error_at(f, sizeof(f), 10, -WS_CLOSE_PROTOCOL, NOLIMIT, "64-bit length, top bit");
	static const uint8_t g[] = { 0x82, MASKED | 127, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, K4 };
	expect_error_at(g, sizeof(g), 10, -WS_CLOSE_PROTOCOL, NOLIMIT, "64-bit length, all ones");
}
END_TEST

START_TEST(test_err_non_minimal_length)
{
	static const uint8_t a[] = { 0x82, MASKED | 126, 0x00, 125, K4 };
	expect_error_at(a, sizeof(a), 4, -WS_CLOSE_PROTOCOL, NOLIMIT, "16-bit length 125");
	static const uint8_t b[] = { 0x82, MASKED | 126, 0x00, 0x00, K4 };
	expect_error_at(b, sizeof(b), 4, -WS_CLOSE_PROTOCOL, NOLIMIT, "16-bit length 0");
	static const uint8_t c[] = { 0x82, MASKED | 127, 0, 0, 0, 0, 0, 0, 0xff, 0xff, K4 };
	expect_error_at(c, sizeof(c), 10, -WS_CLOSE_PROTOCOL, NOLIMIT, "64-bit length 65535");
	static const uint8_t d[] = { 0x82, MASKED | 127, 0, 0, 0, 0, 0, 0, 0, 5, K4 };
	expect_error_at(d, sizeof(d), 10, -WS_CLOSE_PROTOCOL, NOLIMIT, "64-bit length 5");
	/* The smallest lengths of each form are accepted (headers only). */
	static const uint8_t ok16[] = { 0x82, MASKED | 126, 0x00, 126, K4 };
	static const uint8_t ok64[] = { 0x82, MASKED | 127, 0, 0, 0, 0, 0, 1, 0, 0, K4 };
	struct ws_rx rx = { 0 };
	struct rec r;

	rec_init(&r);
	ck_assert_int_eq(feed1(&rx, &r, ok16, sizeof(ok16), NOLIMIT), 8);
	memset(&rx, 0, sizeof(rx));
	ck_assert_int_eq(feed1(&rx, &r, ok64, sizeof(ok64), NOLIMIT), 14);
	rec_free(&r);
}
END_TEST

/* ---- close frames ---- */

START_TEST(test_close_frames)
{
	uint8_t f[WS_FRAME_HDR_MAX + WS_CONTROL_MAX];
	struct ws_rx rx = { 0 };
	struct rec r;
	size_t n;

	/* Empty body: code 0 (1005 to the caller), no reason. */
	rec_init(&r);
	n = mk(f, WS_OP_CLOSE, 1, "", 0);
	ck_assert_int_eq(feed1(&rx, &r, f, n, NOLIMIT), (ssize_t)n);
	ck_assert_uint_eq(r.control_calls, 1);
	ck_assert_uint_eq(r.c_op, WS_OP_CLOSE);
	ck_assert_uint_eq(r.c_code, 0);
	ck_assert_uint_eq(r.c_reason_len, 0);
	rec_free(&r);

	/* 1-byte body: refused as soon as the header says so. */
	n = mk(f, WS_OP_CLOSE, 1, "\x03", 1);
	expect_error_at(f, n, 2, -WS_CLOSE_PROTOCOL, NOLIMIT, "close with 1-byte body");

	static const unsigned bad[] = { 0, 999, 1004, 1005, 1006, 1012, 1014, 1015, 1016,
					2999, 5000, 65535 };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		n = mk_close(f, bad[i], "", 0);
		expect_error_at(f, n, n, -WS_CLOSE_PROTOCOL, NOLIMIT, "invalid close code");
		n = mk_close(f, bad[i], "why", 3);
		expect_error_at(f, n, n, -WS_CLOSE_PROTOCOL, NOLIMIT, "invalid close code + reason");
	}

	static const unsigned good[] = { 1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011,
					 3000, 3999, 4000, 4999 };
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		n = mk_close(f, good[i], "", 0);
		memset(&rx, 0, sizeof(rx));
		rec_init(&r);
		ck_assert_int_eq(feed1(&rx, &r, f, n, NOLIMIT), (ssize_t)n);
		ck_assert_uint_eq(r.c_code, good[i]);
		ck_assert_uint_eq(r.c_len, 2);
		ck_assert_uint_eq(r.c_reason_len, 0);
		rec_free(&r);
	}

	/* 1000 with a valid reason, including multi-byte characters. */
	static const char reason[] = "bye \xc3\xa9t\xc3\xa9 \xf0\x9f\x98\x80";
	n = mk_close(f, 1000, reason, sizeof(reason) - 1);
	memset(&rx, 0, sizeof(rx));
	rec_init(&r);
	ck_assert_int_eq(feed1(&rx, &r, f, n, NOLIMIT), (ssize_t)n);
	ck_assert_uint_eq(r.c_code, 1000);
	ck_assert_uint_eq(r.c_len, 2 + sizeof(reason) - 1);
	ck_assert_uint_eq(r.c_reason_len, sizeof(reason) - 1);
	ck_assert_int_eq(memcmp(r.c_reason, reason, sizeof(reason) - 1), 0);
	rec_free(&r);

	/* The longest reason that fits: 123 bytes. */
	char longr[123];
	memset(longr, 'r', sizeof(longr));
	n = mk_close(f, 4000, longr, sizeof(longr));
	memset(&rx, 0, sizeof(rx));
	rec_init(&r);
	ck_assert_int_eq(feed1(&rx, &r, f, n, NOLIMIT), (ssize_t)n);
	ck_assert_uint_eq(r.c_reason_len, 123);
	rec_free(&r);

	/* 1000 with invalid reasons: bad byte, surrogate, truncated character. */
	n = mk_close(f, 1000, "ok\xff", 3);
	expect_error_at(f, n, n, -WS_CLOSE_BAD_DATA, NOLIMIT, "close reason with 0xff");
	n = mk_close(f, 1000, "\xed\xa0\x80", 3);
	expect_error_at(f, n, n, -WS_CLOSE_BAD_DATA, NOLIMIT, "close reason with a surrogate");
	n = mk_close(f, 1000, "cut \xe2\x82", 6);
	expect_error_at(f, n, n, -WS_CLOSE_BAD_DATA, NOLIMIT, "close reason cut mid-character");
}
END_TEST

START_TEST(test_close_code_valid)
{
	unsigned n = 0;

	for (unsigned c = 0; c < 70000; c++)
		n += (unsigned)ws_close_code_valid(c);
	/* 4 + 5 + 2000 codes, and the edges: */
	ck_assert_uint_eq(n, 4 + 5 + 2000);
	ck_assert(ws_close_code_valid(1000) && ws_close_code_valid(1003));
	ck_assert(!ws_close_code_valid(1004) && !ws_close_code_valid(1006));
	ck_assert(ws_close_code_valid(1007) && ws_close_code_valid(1011));
	ck_assert(!ws_close_code_valid(1012) && !ws_close_code_valid(2999));
	ck_assert(ws_close_code_valid(3000) && ws_close_code_valid(4999));
	ck_assert(!ws_close_code_valid(5000) && !ws_close_code_valid(999));
}
END_TEST

/* ---- UTF-8 in text messages ---- */

START_TEST(test_utf8_errors)
{
	uint8_t s[128];
	size_t n, n1, at;
	struct ws_rx rx;
	struct rec r;

	/* F4 | 90: invalid only once the next frame's first byte arrives. */
	n1 = mk(s, WS_OP_TEXT, 0, "ab\xf4", 3);
	n = n1 + mk(s + n1, WS_OP_CONT, 1, "\x90\x80\x80", 3);
	memset(&rx, 0, sizeof(rx));
	rec_init(&r);
	ck_assert_int_eq(feed1(&rx, &r, s, n1, NOLIMIT), (ssize_t)n1);
	ck_assert_uint_eq(r.data_calls, 1);	/* "ab\xf4" is a valid prefix so far */
	ck_assert_int_eq(feed1(&rx, &r, s + n1, 6, NOLIMIT), 6);	/* the CONT header */
	ck_assert_int_eq(feed1(&rx, &r, s + n1 + 6, 1, NOLIMIT), -WS_CLOSE_BAD_DATA);
	ck_assert_uint_eq(r.data_calls, 1);	/* the bad byte was never delivered */
	rec_free(&r);

	/* The same stream byte by byte fails exactly at that byte. */
	memset(&rx, 0, sizeof(rx));
	rec_init(&r);
	ck_assert_int_eq(feed_stream(&rx, &r, s, n, 1, NOLIMIT, &at), -WS_CLOSE_BAD_DATA);
	ck_assert_uint_eq(at, n1 + 7);
	rec_free(&r);

	/* Surrogate split between frames with a ping in between. */
	n1 = mk(s, WS_OP_TEXT, 0, "x\xed", 2);
	n1 += mk(s + n1, WS_OP_PING, 1, "", 0);
	n = n1 + mk(s + n1, WS_OP_CONT, 1, "\xa0\x80", 2);
	memset(&rx, 0, sizeof(rx));
	rec_init(&r);
	ck_assert_int_eq(feed_stream(&rx, &r, s, n, 1, NOLIMIT, &at), -WS_CLOSE_BAD_DATA);
	ck_assert_uint_eq(at, n1 + 7);
	ck_assert_uint_eq(r.control_calls, 1);
	rec_free(&r);

	/* Bad byte deep in a single frame, fed whole. */
	memset(&rx, 0, sizeof(rx));
	rec_init(&r);
	n = mk(s, WS_OP_TEXT, 1, "0123456789abcdef0123\xc0\x80", 22);
	ck_assert_int_eq(feed1(&rx, &r, s, n, NOLIMIT), -WS_CLOSE_BAD_DATA);
	ck_assert_uint_eq(r.data_calls, 0);
	rec_free(&r);

	/* A message that ends mid-character: at its last byte... */
	n = mk(s, WS_OP_TEXT, 1, "ab\xe2\x82", 4);
	expect_error_at(s, n, n, -WS_CLOSE_BAD_DATA, NOLIMIT, "text ends mid-character");
	/* ...or at an empty final frame. */
	n1 = mk(s, WS_OP_TEXT, 0, "ab\xe2\x82", 4);
	n = n1 + mk(s + n1, WS_OP_CONT, 1, "", 0);
	memset(&rx, 0, sizeof(rx));
	rec_init(&r);
	ck_assert_int_eq(feed_stream(&rx, &r, s, n, 1, NOLIMIT, &at), -WS_CLOSE_BAD_DATA);
	ck_assert_uint_eq(at, n);
	rec_free(&r);

	/* A character split across frames is fine, and binary is never checked. */
	n1 = mk(s, WS_OP_TEXT, 0, "\xf0\x9f", 2);
	n1 += mk(s + n1, WS_OP_CONT, 0, "\x98", 1);
	n = n1 + mk(s + n1, WS_OP_CONT, 1, "\x80!", 2);
	n += mk(s + n, WS_OP_BINARY, 1, "\xff\xc0\x80", 3);
	memset(&rx, 0, sizeof(rx));
	rec_init(&r);
	ck_assert_int_eq(feed_stream(&rx, &r, s, n, 1, NOLIMIT, &at), 0);
	ck_assert_uint_eq(r.messages, 2);
	rec_free(&r);
}
END_TEST

/* ---- message size ---- */

START_TEST(test_too_big)
{
	uint8_t s[512], big[200];
	size_t n, n1, at;
	struct ws_rx rx;
	struct rec r;

	memset(big, 'b', sizeof(big));
	/* 101 bytes against 100: refused at the second byte, before any payload. */
	n = mk(s, WS_OP_TEXT, 1, big, 101);
	expect_error_at(s, n, 2, -WS_CLOSE_TOO_BIG, 100, "frame over max_msg");
	/* With a 16-bit length, as soon as the length is complete. */
	n = mk(s, WS_OP_BINARY, 1, big, 200);
	expect_error_at(s, n, 4, -WS_CLOSE_TOO_BIG, 199, "16-bit frame over max_msg");
	/* Exactly max_msg passes. */
	memset(&rx, 0, sizeof(rx));
	rec_init(&r);
	n = mk(s, WS_OP_TEXT, 1, big, 100);
	ck_assert_int_eq(feed1(&rx, &r, s, n, 100), (ssize_t)n);
	ck_assert_uint_eq(r.messages, 1);
	rec_free(&r);

	/* Fragments add up: 60 + 40 passes, 60 + 41 fails at the second header. */
	n1 = mk(s, WS_OP_BINARY, 0, big, 60);
	n = n1 + mk(s + n1, WS_OP_CONT, 1, big, 40);
	memset(&rx, 0, sizeof(rx));
	rec_init(&r);
	ck_assert_int_eq(feed_stream(&rx, &r, s, n, 0, 100, &at), 0);
	ck_assert_uint_eq(r.messages, 1);
	rec_free(&r);
	n = n1 + mk(s + n1, WS_OP_CONT, 1, big, 41);
	memset(&rx, 0, sizeof(rx));
	rec_init(&r);
	ck_assert_int_eq(feed_stream(&rx, &r, s, n, 1, 100, &at), -WS_CLOSE_TOO_BIG);
	ck_assert_uint_eq(at, n1 + 2);
	rec_free(&r);

	/* The limit is per message: two 80-byte messages under 100 are fine, and
	 * control frames do not count. */
	n = mk(s, WS_OP_TEXT, 1, big, 80);
	n += mk(s + n, WS_OP_PING, 1, big, 125);
	n += mk(s + n, WS_OP_TEXT, 1, big, 80);
	memset(&rx, 0, sizeof(rx));
	rec_init(&r);
	ck_assert_int_eq(feed_stream(&rx, &r, s, n, 0, 100, &at), 0);
	ck_assert_uint_eq(r.messages, 2);
	rec_free(&r);
}
END_TEST

/* ---- fragmentation, empties, partial input ---- */

START_TEST(test_fragmented_with_ping)
{
	uint8_t s[256];
	size_t n = 0;
	struct ws_rx rx = { 0 };
	struct rec r;

	n += mk_str(s + n, WS_OP_TEXT, 0, "Hel");
	n += mk_str(s + n, WS_OP_PING, 1, "p1");
	n += mk_str(s + n, WS_OP_CONT, 0, "lo ");
	n += mk_str(s + n, WS_OP_PONG, 1, "");
	n += mk_str(s + n, WS_OP_CONT, 0, "");
	n += mk_str(s + n, WS_OP_CONT, 1, "w\xc3\xb6rld");
	rec_init(&r);
	ck_assert_int_eq(feed1(&rx, &r, s, n, NOLIMIT), (ssize_t)n);
	ck_assert_uint_eq(r.messages, 1);
	ck_assert_uint_eq(r.control_calls, 2);
	ck_assert_uint_eq(r.data_calls, 4);
	ck_assert_uint_eq(r.msg_len, 12);
	ck_assert_int_eq(memcmp(r.msg, "Hello w\xc3\xb6rld", 12), 0);

	/* The log holds ping, pong, then the message: control frames come in order. */
	struct rec want;
	rec_init(&want);
	on_control(&want, WS_OP_PING, (uint8_t *)"p1", 2, 0, NULL, 0);
	on_control(&want, WS_OP_PONG, (uint8_t *)"", 0, 0, NULL, 0);
	on_data(&want, WS_OP_TEXT, (uint8_t *)"Hello w\xc3\xb6rld", 12, 1, 1);
	ck_assert_uint_eq(r.log_len, want.log_len);
	ck_assert_int_eq(memcmp(r.log, want.log, want.log_len), 0);
	rec_free(&want);
	rec_free(&r);
}
END_TEST

START_TEST(test_empty_messages)
{
	uint8_t s[64];
	size_t n;
	struct ws_rx rx = { 0 };
	struct rec r;

	rec_init(&r);
	n = mk(s, WS_OP_TEXT, 1, "", 0);
	ck_assert_int_eq(feed1(&rx, &r, s, n, 0), (ssize_t)n);
	ck_assert_uint_eq(r.data_calls, 1);
	ck_assert(r.last_first && r.last_last);
	ck_assert_uint_eq(r.last_len, 0);

	/* Empty fragments: first once, last once. */
	n = mk(s, WS_OP_BINARY, 0, "", 0);
	n += mk(s + n, WS_OP_CONT, 0, "", 0);
	n += mk(s + n, WS_OP_CONT, 1, "", 0);
	ck_assert_int_eq(feed1(&rx, &r, s, n, 0), (ssize_t)n);
	ck_assert_uint_eq(r.data_calls, 4);
	ck_assert_uint_eq(r.messages, 2);
	ck_assert(!r.last_first && r.last_last);
	rec_free(&r);
}
END_TEST

START_TEST(test_partial_input)
{
	uint8_t s[64];
	size_t n;
	struct ws_rx rx = { 0 };
	struct rec r;

	rec_init(&r);
	/* A header is consumed only whole... */
	n = mk_str(s, WS_OP_BINARY, 1, "hello");
	for (size_t k = 0; k < 6; k++)
		ck_assert_int_eq(feed1(&rx, &r, s, k, NOLIMIT), 0);
	/* ...payload as far as it goes, phase kept between pieces. */
	ck_assert_int_eq(feed1(&rx, &r, s, 8, NOLIMIT), 8);
	ck_assert_uint_eq(r.last_len, 2);
	ck_assert(r.last_first && !r.last_last);
	ck_assert_int_eq(feed1(&rx, &r, s + 8, 3, NOLIMIT), 3);
	ck_assert(!r.last_first && r.last_last);
	ck_assert_int_eq(memcmp(r.msg, "hello", 5), 0);
	/* A control frame only once complete. */
	n = mk_str(s, WS_OP_PING, 1, "ping!");
	for (size_t k = 0; k < n; k++)
		ck_assert_int_eq(feed1(&rx, &r, s, k, NOLIMIT), 0);
	ck_assert_uint_eq(r.control_calls, 0);
	ck_assert_int_eq(feed1(&rx, &r, s, n, NOLIMIT), (ssize_t)n);
	ck_assert_uint_eq(r.control_calls, 1);
	ck_assert_int_eq(memcmp(r.c_payload, "ping!", 5), 0);
	rec_free(&r);
}
END_TEST

START_TEST(test_callback_stops)
{
	uint8_t s[64];
	size_t n;
	struct ws_rx rx = { 0 };
	struct rec r;

	rec_init(&r);
	r.stop_with = -4242;
	n = mk_str(s, WS_OP_TEXT, 1, "a");
	n += mk_str(s + n, WS_OP_TEXT, 1, "b");
	ck_assert_int_eq(feed1(&rx, &r, s, n, NOLIMIT), -4242);
	ck_assert_uint_eq(r.data_calls, 1);
	memset(&rx, 0, sizeof(rx));
	n = mk_str(s, WS_OP_PING, 1, "a");
	n += mk_str(s + n, WS_OP_TEXT, 1, "b");
	ck_assert_int_eq(feed1(&rx, &r, s, n, NOLIMIT), -4242);
	ck_assert_uint_eq(r.control_calls, 1);
	ck_assert_uint_eq(r.data_calls, 1);
	rec_free(&r);
}
END_TEST

/* ---- a long mixed stream, fed whole and in every chunking ---- */

static size_t build_stream(uint8_t *s)
{
	static uint8_t big[70000];
	size_t n = 0;

	for (size_t i = 0; i < sizeof(big); i++)
		big[i] = (uint8_t)('a' + i % 26);
	big[1000] = 0xc3, big[1001] = 0xa9;	/* a 2-byte character inside */
	n += mk_str(s + n, WS_OP_TEXT, 1, "hello");
	n += mk(s + n, WS_OP_BINARY, 1, "\x00\xff\x80", 3);
	n += mk_str(s + n, WS_OP_TEXT, 1, "");
	n += mk_str(s + n, WS_OP_PING, 1, "are you there");
	n += mk(s + n, WS_OP_TEXT, 0, big, 125);
	n += mk(s + n, WS_OP_CONT, 0, big + 125, 126);
	n += mk_str(s + n, WS_OP_PONG, 1, "yes");
	n += mk(s + n, WS_OP_CONT, 0, "", 0);
	n += mk(s + n, WS_OP_CONT, 1, big + 251, 70000 - 251);
	n += mk(s + n, WS_OP_BINARY, 1, big, 65535);
	n += mk(s + n, WS_OP_BINARY, 0, big, 65536);
	n += mk(s + n, WS_OP_PING, 1, big, 125);
	n += mk(s + n, WS_OP_CONT, 1, big, 1);
	n += mk_str(s + n, WS_OP_TEXT, 0, "\xe2\x82");
	n += mk_str(s + n, WS_OP_CONT, 1, "\xac euro");
	n += mk_close(s + n, 1000, "done \xe2\x9c\x93", 8);
	return n;
}

START_TEST(test_stream_chunkings)
{
	static uint8_t s[300000];
	static const size_t chunks[] = { 1, 2, 3, 5, 7, 13, 64, 125, 139, 140, 4096, 0 };
	size_t n = build_stream(s), at;
	struct ws_rx rx = { 0 };
	struct rec whole, r;

	rec_init(&whole);
	ck_assert_int_eq(feed_stream(&rx, &whole, s, n, n, NOLIMIT, &at), 0);
	ck_assert_uint_eq(whole.messages, 7);
	ck_assert_uint_eq(whole.control_calls, 4);
	ck_assert_uint_eq(whole.c_code, 1000);
	for (size_t i = 0; i < sizeof(chunks) / sizeof(chunks[0]); i++) {
		memset(&rx, 0, sizeof(rx));
		rec_init(&r);
		ck_assert_int_eq(feed_stream(&rx, &r, s, n, chunks[i], NOLIMIT, &at), 0);
		ck_assert_uint_eq(r.log_len, whole.log_len);
		ck_assert_msg(memcmp(r.log, whole.log, whole.log_len) == 0, "chunk %zu differs", chunks[i]);
		/* State is back to idle: ready for the next message. */
		ck_assert_uint_eq(rx.in_frame, 0);
		ck_assert_uint_eq(rx.msg_op, 0);
		rec_free(&r);
	}
	rec_free(&whole);
}
END_TEST

/* ---- unmasking ---- */

START_TEST(test_unmask)
{
	uint8_t ref[300], buf[300];

	for (size_t len = 0; len <= 140; len++) {
		for (unsigned phase = 0; phase < 8; phase++) {
			for (size_t i = 0; i < len; i++)
				ref[i] = (uint8_t)(i * 31 + len);
			/* At page end, so every misalignment also tests the tail. */
			uint8_t *p = at_page_end(ref, len);
			ws_unmask(p, len, KEY, phase);
			for (size_t i = 0; i < len; i++)
				REQUIRE(p[i] == (ref[i] ^ KEY[(phase + i) & 3]));
			/* Unaligned starts inside a buffer; bytes around stay untouched. */
			for (size_t off = 1; off < 8 && off + len + 8 <= sizeof(buf); off++) {
				memset(buf, 0x5a, sizeof(buf));
				memcpy(buf + off, ref, len);
				ws_unmask(buf + off, len, KEY, phase);
				REQUIRE(buf[off - 1] == 0x5a);
				REQUIRE(buf[off + len] == 0x5a);
				for (size_t i = 0; i < len; i++)
					REQUIRE(buf[off + i] == (ref[i] ^ KEY[(phase + i) & 3]));
			}
		}
	}
	/* Split anywhere with the right phase == whole. */
	for (size_t i = 0; i < 100; i++)
		ref[i] = buf[i] = (uint8_t)(i ^ 0xa5);
	ws_unmask(ref, 100, KEY, 0);
	for (size_t k = 0; k <= 100; k++) {
		uint8_t t[100];

		for (size_t i = 0; i < 100; i++)
			t[i] = (uint8_t)(i ^ 0xa5);
		ws_unmask(t, k, KEY, 0);
		ws_unmask(t + k, 100 - k, KEY, (unsigned)k);
		REQUIRE(memcmp(t, ref, 100) == 0);
	}
}
END_TEST

START_TEST(test_rx_size)
{
	/* One per connection: keep it at half a cache line. */
	ck_assert_uint_le(sizeof(struct ws_rx), 32);
}
END_TEST

static Suite *frame_suite(void)
{
	Suite *s = suite_create("frame");
	TCase *tc = tcase_create("core");

	tcase_add_checked_fixture(tc, guard_setup, guard_teardown);
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_header_roundtrip);
	tcase_add_test(tc, test_parse_lengths);
	tcase_add_test(tc, test_err_unmasked);
	tcase_add_test(tc, test_err_rsv);
	tcase_add_test(tc, test_err_reserved_opcode);
	tcase_add_test(tc, test_err_control_too_long);
	tcase_add_test(tc, test_err_control_fragmented);
	tcase_add_test(tc, test_err_cont_without_message);
	tcase_add_test(tc, test_err_data_inside_fragmented);
	tcase_add_test(tc, test_err_length_top_bit);
	tcase_add_test(tc, test_err_non_minimal_length);
	tcase_add_test(tc, test_close_frames);
	tcase_add_test(tc, test_close_code_valid);
	tcase_add_test(tc, test_utf8_errors);
	tcase_add_test(tc, test_too_big);
	tcase_add_test(tc, test_fragmented_with_ping);
	tcase_add_test(tc, test_empty_messages);
	tcase_add_test(tc, test_partial_input);
	tcase_add_test(tc, test_callback_stops);
	tcase_add_test(tc, test_stream_chunkings);
	tcase_add_test(tc, test_unmask);
	tcase_add_test(tc, test_rx_size);
	suite_add_tcase(s, tc);

	/* Its own case: 4 GiB of unmasking takes a while under the sanitizers. */
	tc = tcase_create("4gib");
	tcase_add_checked_fixture(tc, guard_setup, guard_teardown);
	tcase_set_timeout(tc, 300);
	tcase_add_test(tc, test_parse_4gib);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(frame_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
