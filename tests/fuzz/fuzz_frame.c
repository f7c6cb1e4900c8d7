/*
 * gateway/frame.c (ws_rx_feed) with gateway/utf8.c: the bytes a client sends after the
 * handshake.
 *
 * Input: [flags][3 chunk sizes][small max_msg][client stream]. Each stream is parsed with
 * a large and a small max_msg, once whole, once in chunks of the sizes given, once byte by
 * byte, the way the gateway feeds it (the unconsumed tail in front of the next read). The
 * callbacks check what frame.h promises; the three feeds must then agree on every
 * completed message, every control frame and the final result, because what a
 * connection gets must not depend on how the kernel split its reads.
 */
#include "gateway/frame.h"
#include "gateway/utf8.h"
#include "tests/fuzz/fuzz.h"

#include <stdbool.h>
#include <string.h>

#define STOP_AT_CLOSE (-4000) /* what the gateway's control callback returns on a close */

/*
 * Reference UTF-8 prefix check, built differently from the gateway's DFA so that both
 * would have to be wrong the same way: it assembles code points, and decides a partial
 * character by asking whether any completion of it is a valid code point.
 */
struct ref_utf8 {
	uint32_t cp;
	uint8_t need, len;
	bool bad;
};

static bool ref_range_ok(uint32_t lo, uint32_t hi, unsigned len)
{
	static const uint32_t min[5] = { 0, 0, 0x80, 0x800, 0x10000 };
	uint32_t vlo = min[len], vhi = len == 4 ? 0x10ffff : (1u << (5 * len + 1)) - 1;

	if (hi < vlo || lo > vhi)
		return false;
	if (lo < vlo)
		lo = vlo;
	if (hi > vhi)
		hi = vhi;
	return !(lo >= 0xd800 && hi <= 0xdfff); /* not only surrogates */
}

static void ref_utf8_feed(struct ref_utf8 *s, const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n && !s->bad; i++) {
		uint8_t b = p[i];

		if (!s->need) {
			if (b < 0x80)
				continue;
			if (b >= 0xc0 && b <= 0xdf)
				s->len = 2, s->cp = b & 0x1f;
			else if (b >= 0xe0 && b <= 0xef)
				s->len = 3, s->cp = b & 0x0f;
			else if (b >= 0xf0 && b <= 0xf7)
				s->len = 4, s->cp = b & 0x07;
			else {
				s->bad = true;
				break;
			}
			s->need = s->len - 1;
		} else {
			if ((b & 0xc0) != 0x80) {
				s->bad = true;
				break;
			}
			s->cp = s->cp << 6 | (b & 0x3f);
			s->need--;
		}
		uint32_t lo = s->cp << (6 * s->need), hi = lo | ((1u << (6 * s->need)) - 1);
		if (!ref_range_ok(lo, hi, s->len))
			s->bad = true;
	}
}

/* The close codes frame.h documents as valid, written out independently of frame.c. */
static bool ref_close_code_ok(unsigned c)
{
	return (c >= 1000 && c <= 1003) || (c >= 1007 && c <= 1011) || (c >= 3000 && c <= 4999);
}

struct bytes {
	uint8_t *p;
	size_t n, cap;
};

static void bytes_add(struct bytes *b, const void *p, size_t n)
{
	if (b->n + n > b->cap) {
		size_t cap = b->cap ? b->cap : 256;
		while (cap < b->n + n)
			cap *= 2;
		b->p = realloc(b->p, cap);
		FUZZ_CHECK(b->p);
		b->cap = cap;
	}
	if (n)
		memcpy(b->p + b->n, p, n);
	b->n += n;
}

struct run {
	uint64_t max_msg;
	bool stop_at_close;
	const uint8_t *buf; /* the feed in progress */
	size_t n;
	bool in_msg;
	unsigned op;
	struct ref_utf8 utf8;
	struct bytes msg; /* the message being assembled */
	struct bytes log; /* completed messages and control frames, in order */
	int returned;     /* what a callback last returned */
	ssize_t result;   /* 0, or the feed's negative return that ended the stream */
	size_t tail;      /* bytes left unconsumed at the end */
};

static void log_event(struct run *r, uint8_t kind, unsigned op, unsigned code, const void *p,
		      size_t n)
{
	uint8_t h[12] = { kind, (uint8_t)op, (uint8_t)(code >> 8), (uint8_t)code };
	uint64_t len = n;

	memcpy(h + 4, &len, 8);
	bytes_add(&r->log, h, sizeof(h));
	bytes_add(&r->log, p, n);
}

static bool inside_feed(const struct run *r, const uint8_t *p, size_t len)
{
	return p >= r->buf && p <= r->buf + r->n && len <= (size_t)(r->buf + r->n - p);
}

static int on_data(void *ud, unsigned op, uint8_t *p, size_t len, int first, int last)
{
	struct run *r = ud;

	FUZZ_CHECK(op == WS_OP_TEXT || op == WS_OP_BINARY);
	FUZZ_CHECK(inside_feed(r, p, len));
	/* first: exactly once per message, so exactly when no message is in progress. */
	FUZZ_CHECK(!!first == !r->in_msg);
	if (first) {
		r->op = op;
		r->msg.n = 0;
		memset(&r->utf8, 0, sizeof(r->utf8));
		r->in_msg = true;
	}
	FUZZ_CHECK(op == r->op);
	bytes_add(&r->msg, p, len);
	FUZZ_CHECK(r->msg.n <= r->max_msg);
	if (op == WS_OP_TEXT) {
		ref_utf8_feed(&r->utf8, p, len);
		FUZZ_CHECK(!r->utf8.bad);
		FUZZ_CHECK(!last || r->utf8.need == 0);
	}
	if (last) {
		log_event(r, 'M', op, 0, r->msg.p, r->msg.n);
		r->in_msg = false;
	}
	r->returned = 0;
	return 0;
}

static int on_control(void *ud, unsigned op, uint8_t *p, size_t len, unsigned close_code,
		      const uint8_t *reason, size_t reason_len)
{
	struct run *r = ud;

	FUZZ_CHECK(op == WS_OP_CLOSE || op == WS_OP_PING || op == WS_OP_PONG);
	FUZZ_CHECK(len <= WS_CONTROL_MAX);
	FUZZ_CHECK(inside_feed(r, p, len));
	if (op == WS_OP_CLOSE && len) {
		struct ref_utf8 u = { 0 };

		FUZZ_CHECK(len >= 2);
		FUZZ_CHECK(close_code == ((unsigned)p[0] << 8 | p[1]));
		FUZZ_CHECK(ref_close_code_ok(close_code));
		FUZZ_CHECK(ws_close_code_valid(close_code));
		FUZZ_CHECK(reason == p + 2 && reason_len == len - 2);
		ref_utf8_feed(&u, reason, reason_len);
		FUZZ_CHECK(!u.bad && u.need == 0);
	} else {
		FUZZ_CHECK(close_code == 0 && reason == NULL && reason_len == 0);
	}
	log_event(r, 'C', op, close_code, p, len);
	r->returned = op == WS_OP_CLOSE && r->stop_at_close ? STOP_AT_CLOSE : 0;
	return r->returned;
}

static const struct ws_rx_ops ops = { on_data, on_control };

/* Feeds s[0..n) in chunks of chunk[0], chunk[1], ... (cycling; NULL: all at once), each
   chunk after the tail the previous feed left, in a buffer of exactly that size. */
static void run_stream(struct run *r, const uint8_t *s, size_t n, const size_t *chunk,
		       size_t nchunk)
{
	struct ws_rx rx;
	uint8_t tail[WS_RX_TAIL_MAX];
	size_t tl = 0, pos = 0, k = 0;

	memset(&rx, 0, sizeof(rx));
	r->result = 0;
	while (pos < n) {
		size_t c = chunk ? chunk[k++ % nchunk] : n - pos;

		if (c > n - pos)
			c = n - pos;
		size_t len = tl + c;
		uint8_t *b = malloc(len), *orig = malloc(len);
		FUZZ_CHECK(b && orig);
		memcpy(b, tail, tl);
		memcpy(b + tl, s + pos, c);
		memcpy(orig, b, len);
		pos += c;
		r->buf = b;
		r->n = len;
		r->returned = 0;
		ssize_t rc = ws_rx_feed(&rx, b, len, r->max_msg, &ops, r);
		if (rc < 0) {
			/* A callback's stop comes back unchanged; otherwise a close code. */
			if (r->returned)
				FUZZ_CHECK(rc == r->returned);
			else
				FUZZ_CHECK(rc == -WS_CLOSE_PROTOCOL || rc == -WS_CLOSE_BAD_DATA ||
					   rc == -WS_CLOSE_TOO_BIG);
			r->result = rc;
			free(b);
			free(orig);
			r->tail = 0;
			return;
		}
		FUZZ_CHECK((size_t)rc <= len);
		FUZZ_CHECK(len - (size_t)rc <= WS_RX_TAIL_MAX);
		FUZZ_CHECK(!memcmp(b + rc, orig + rc, len - (size_t)rc)); /* tail untouched */
		tl = len - (size_t)rc;
		memcpy(tail, b + rc, tl);
		free(b);
		free(orig);
	}
	r->tail = tl;
}

static void run_free(struct run *r)
{
	free(r->msg.p);
	free(r->log.p);
}

static void same(const struct run *a, const struct run *b)
{
	FUZZ_CHECK(a->result == b->result);
	FUZZ_CHECK(a->tail == b->tail);
	FUZZ_CHECK(a->log.n == b->log.n);
	FUZZ_CHECK(!a->log.n || !memcmp(a->log.p, b->log.p, a->log.n));
}

static void check_config(const uint8_t *s, size_t n, uint64_t max_msg, bool stop,
			 const size_t *chunk)
{
	static const size_t one = 1;
	struct run whole = { .max_msg = max_msg, .stop_at_close = stop };
	struct run split = whole, bytewise = whole;

	run_stream(&whole, s, n, NULL, 0);
	run_stream(&split, s, n, chunk, 3);
	run_stream(&bytewise, s, n, &one, 1);
	same(&whole, &split);
	same(&whole, &bytewise);
	run_free(&whole);
	run_free(&split);
	run_free(&bytewise);
}

/* ws_unmask against a bytewise XOR, at every phase and alignment the input picks. */
static void check_unmask(const uint8_t *s, size_t n, const uint8_t key[4], unsigned phase)
{
	uint8_t *a = malloc(n ? n : 1);

	FUZZ_CHECK(a);
	memcpy(a, s, n);
	ws_unmask(a, n, key, phase);
	for (size_t i = 0; i < n; i++)
		FUZZ_CHECK(a[i] == (s[i] ^ key[(i + phase) & 3]));
	free(a);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_in in = { data, size };
	uint8_t flags = fuzz_u8(&in);
	size_t chunk[3];
	uint64_t small;

	for (int i = 0; i < 3; i++)
		chunk[i] = (size_t)fuzz_u8(&in) + 1;
	small = fuzz_u8(&in);
	check_config(in.p, in.n, UINT64_MAX, flags & 1, chunk);
	check_config(in.p, in.n, small, flags & 1, chunk);
	if (in.n >= 4)
		check_unmask(in.p + 4, in.n - 4, in.p, flags >> 1);
	return 0;
}
