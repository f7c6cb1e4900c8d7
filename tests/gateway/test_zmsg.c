/* Tests of gateway/zmsg.c: the zmq transport's codec, with real frames and sockets. */
#include "gateway/zmsg.h"
#include "wsgw/protocol.h"

#include <check.h>
#include <endian.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define REQUIRE_MSG(cond, ...) do { if (!(cond)) ck_abort_msg(__VA_ARGS__); } while (0)

static const uint64_t MAXMSG = 1000;

/* ---- frames to commands ---- */

static zmq_msg_t fr[80];
static int nfr;

static void frames_reset(void)
{
	for (int i = 0; i < nfr; i++)
		zmq_msg_close(&fr[i]);
	nfr = 0;
}

static void f_bytes(const void *p, size_t n)
{
	ck_assert_int_lt(nfr, 80);
	ck_assert_int_eq(zmq_msg_init_size(&fr[nfr], n), 0);
	if (n)
		memcpy(zmq_msg_data(&fr[nfr]), p, n);
	nfr++;
}

static void f_str(const char *s)
{
	f_bytes(s, strlen(s));
}

static void f_id(uint64_t id)
{
	uint64_t be = htobe64(id);
	f_bytes(&be, 8);
}

/* The frames given, then decoded. */
#define FRAMES(...) do { \
		frames_reset(); \
		const char *const v_[] = { __VA_ARGS__ }; \
		for (size_t i_ = 0; i_ < sizeof(v_) / sizeof(v_[0]); i_++) \
			f_str(v_[i_]); \
	} while (0)

static struct zmsg_cmd cmd;
static const char *why;

static int decode(void)
{
	why = NULL;
	int rc = zmsg_decode(fr, nfr, MAXMSG, &cmd, &why);
	if (rc == 0)
		REQUIRE_MSG(why == NULL, "decoded, yet why = %s", why);
	else
		REQUIRE_MSG(rc != -EINVAL || (why && *why), "-EINVAL without a reason");
	return rc;
}

/* Decoding fails with -EINVAL and a reason that contains want. */
static void refused(const char *want, const char *what)
{
	int rc = decode();
	REQUIRE_MSG(rc == -EINVAL, "%s: decoded (rc %d)", what, rc);
	REQUIRE_MSG(strstr(why, want), "%s: reason '%s' lacks '%s'", what, why, want);
}

static void teardown(void)
{
	frames_reset();
}

START_TEST(test_decode_send)
{
	static const uint8_t bin[] = { 0, 1, 2, 0xff, 0 };

	frames_reset();
	f_str("SEND");
	f_id(0x0102030405060708ull);
	f_str("text");
	f_str("hello");
	ck_assert_int_eq(decode(), 0);
	ck_assert_uint_eq(cmd.rec.type, WSGW_SEND);
	ck_assert_uint_eq(cmd.rec.flags, 0);
	ck_assert_uint_eq(cmd.rec.conn, 0x0102030405060708ull);
	ck_assert_uint_eq(cmd.rec.len, 5);
	/* Not copied: it points into the payload frame. */
	ck_assert_ptr_eq(cmd.rec.payload, zmq_msg_data(&fr[3]));
	zmsg_cmd_free(&cmd);

	frames_reset();
	f_str("SEND");
	f_id(UINT64_MAX);
	f_str("binary");
	f_bytes(bin, sizeof(bin));
	ck_assert_int_eq(decode(), 0);
	ck_assert_uint_eq(cmd.rec.type, WSGW_SEND);
	ck_assert_uint_eq(cmd.rec.flags, WSGW_F_BINARY);
	ck_assert_uint_eq(cmd.rec.conn, UINT64_MAX);
	ck_assert_uint_eq(cmd.rec.len, sizeof(bin));
	ck_assert_mem_eq(cmd.rec.payload, bin, sizeof(bin));
	zmsg_cmd_free(&cmd);

	/* Empty, and exactly --max-message. */
	static uint8_t big[1001];
	for (size_t n = 0; n <= MAXMSG + 1; n += MAXMSG) {
		frames_reset();
		f_str("SEND");
		f_id(1);
		f_str("binary");
		f_bytes(big, n);
		if (n <= MAXMSG) {
			ck_assert_int_eq(decode(), 0);
			ck_assert_uint_eq(cmd.rec.len, n);
			zmsg_cmd_free(&cmd);
		}
	}
	frames_reset();
	f_str("SEND");
	f_id(1);
	f_str("text");
	f_bytes(big, MAXMSG + 1);
	refused("max-message", "SEND of max_message + 1");
}
END_TEST

START_TEST(test_decode_send_malformed)
{
	FRAMES("SEND");
	refused("8-byte connection id", "SEND alone");
	FRAMES("SEND", "1234567", "text", "x");
	refused("8-byte connection id", "7-byte id");
	FRAMES("SEND", "123456789", "text", "x");
	refused("8-byte connection id", "9-byte id");
	FRAMES("SEND", "", "text", "x");
	refused("8-byte connection id", "empty id");

	static const char *const modes[] = { "TEXT", "", "bin", "binaryx", "text\0" };
	for (size_t i = 0; i < sizeof(modes) / sizeof(modes[0]); i++) {
		frames_reset();
		f_str("SEND");
		f_id(1);
		f_bytes(modes[i], i == 4 ? 5 : strlen(modes[i]));
		f_str("x");
		refused("malformed SEND", modes[i]);
	}
	/* Too few and too many frames. */
	frames_reset();
	f_str("SEND");
	f_id(1);
	f_str("text");
	refused("malformed SEND", "3 frames");
	f_str("x");
	f_str("y");
	refused("malformed SEND", "5 frames");
	ck_assert_int_eq(zmsg_decode(fr, 0, MAXMSG, &cmd, &why), -EINVAL);
}
END_TEST

/* CLOSE and REJECT share their shape: verb, id, number in range, reason <= 123 bytes. */
static void check_coded(const char *verb, uint16_t type, unsigned lo, unsigned hi)
{
	static char reason[125];
	char num[16];
	unsigned nums[] = { lo, lo + 1, (lo + hi) / 2, hi };

	memset(reason, 'r', sizeof(reason));
	for (size_t i = 0; i < 4; i++)
		for (size_t rl = 0; rl <= 123; rl += 123) {
			frames_reset();
			f_str(verb);
			f_id(77);
			snprintf(num, sizeof(num), "%u", nums[i]);
			f_str(num);
			f_bytes(reason, rl);
			REQUIRE_MSG(decode() == 0, "%s %s: %s", verb, num, why);
			REQUIRE_MSG(cmd.rec.type == type && cmd.rec.conn == 77 && cmd.rec.flags == 0,
				    "%s %s: wrong record", verb, num);
			REQUIRE_MSG(cmd.rec.len == 2 + rl, "%s: len %u", verb, cmd.rec.len);
			const uint8_t *p = cmd.rec.payload;
			REQUIRE_MSG((unsigned)(p[0] << 8 | p[1]) == nums[i], "%s %s: code in body", verb, num);
			REQUIRE_MSG(memcmp(p + 2, reason, rl) == 0, "%s: reason", verb);
			zmsg_cmd_free(&cmd);
		}

	char below[16], above[16];
	snprintf(below, sizeof(below), "%u", lo - 1);
	snprintf(above, sizeof(above), "%u", hi + 1);
	const char *bad[] = { below, above, "", "abc", "1000x", "-1000", "0", "99999999999999",
			      "4294968296" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		FRAMES(verb, "12345678", bad[i], "why");
		refused(verb, bad[i]);
	}
	snprintf(num, sizeof(num), "%u", lo);
	frames_reset();
	f_str(verb);
	f_id(1);
	f_str(num);
	f_bytes(reason, 124);
	refused(verb, "a reason of 124 bytes");
	FRAMES(verb, "12345678", num);
	refused(verb, "no reason frame");
	FRAMES(verb, "12345678", num, "a", "b");
	refused(verb, "5 frames");
	FRAMES(verb, "1234567", num, "a");
	refused("8-byte connection id", "7-byte id");
}

START_TEST(test_decode_close)
{
	check_coded("CLOSE", WSGW_CLOSE, 1000, 4999);
}
END_TEST

START_TEST(test_decode_reject)
{
	check_coded("REJECT", WSGW_REJECT, 400, 599);
}
END_TEST

/* ACCEPT, id, protocol, then the header frames given. */
static void accept_frames(const char *protocol, int n_headers, size_t header_len)
{
	static char h[9000];
	frames_reset();
	f_str("ACCEPT");
	f_id(5);
	f_str(protocol);
	for (int i = 0; i < n_headers; i++) {
		size_t n = snprintf(h, sizeof(h), "X-H%d: ", i);
		ck_assert_uint_ge(header_len, n);
		memset(h + n, 'v', header_len - n);
		f_bytes(h, header_len);
	}
}

/* The ACCEPT record's fields must be: protocol (when not empty), then each header frame
 * in order. */
static void check_accept_fields(const char *protocol, int n_headers)
{
	const uint8_t *p = cmd.rec.payload, *end = p + cmd.rec.len;
	struct wsgw_field f;

	ck_assert_uint_eq(cmd.rec.type, WSGW_ACCEPT);
	ck_assert_uint_eq(cmd.rec.conn, 5);
	if (protocol[0]) {
		ck_assert_int_eq(wsgw_field_next(&p, end, &f), 1);
		ck_assert_uint_eq(f.name_len, 8);
		ck_assert_mem_eq(f.name, "protocol", 8);
		ck_assert_uint_eq(f.value_len, strlen(protocol));
		ck_assert_mem_eq(f.value, protocol, f.value_len);
	}
	for (int i = 0; i < n_headers; i++) {
		REQUIRE_MSG(wsgw_field_next(&p, end, &f) == 1, "header %d missing", i);
		REQUIRE_MSG(f.name_len == 6 && memcmp(f.name, "header", 6) == 0, "header %d name", i);
		zmq_msg_t *m = &fr[3 + i];
		REQUIRE_MSG(f.value_len == zmq_msg_size(m) &&
			    memcmp(f.value, zmq_msg_data(m), f.value_len) == 0, "header %d value", i);
	}
	ck_assert_int_eq(wsgw_field_next(&p, end, &f), 0);
}

START_TEST(test_decode_accept)
{
	accept_frames("", 0, 0);
	ck_assert_int_eq(decode(), 0);
	ck_assert_uint_eq(cmd.rec.len, 0);
	check_accept_fields("", 0);
	zmsg_cmd_free(&cmd);

	accept_frames("chat.v1", 3, 20);
	ck_assert_int_eq(decode(), 0);
	check_accept_fields("chat.v1", 3);
	zmsg_cmd_free(&cmd);

	/* 64 headers of 8192 bytes in all (each counted with its CRLF) are the limit. */
	accept_frames("p", 64, 8192 / 64 - 2);
	ck_assert_int_eq(decode(), 0);
	check_accept_fields("p", 64);
	zmsg_cmd_free(&cmd);

	accept_frames("p", 65, 10);
	refused("64 headers", "65 headers");
	accept_frames("", 1, 8190);
	ck_assert_int_eq(decode(), 0);
	check_accept_fields("", 1);
	zmsg_cmd_free(&cmd);
	accept_frames("", 1, 8191);
	refused("8192 bytes", "one header of 8191 bytes + CRLF");
	accept_frames("", 64, 8192 / 64 - 2);
	f_bytes("", 0); /* a 65th, empty: over the count though not the bytes */
	refused("64 headers", "65th empty header");

	/* The subprotocol is bounded before it is copied (fuzz_zmsg found it unbounded). */
	static char proto[257];
	memset(proto, 'p', 255);
	proto[255] = 0;
	accept_frames(proto, 0, 0);
	ck_assert_int_eq(decode(), 0);
	check_accept_fields(proto, 0);
	zmsg_cmd_free(&cmd);
	proto[255] = 'p';
	accept_frames(proto, 0, 0);
	refused("subprotocol over 255 bytes", "a 256-byte subprotocol");

	FRAMES("ACCEPT", "12345678");
	refused("malformed ACCEPT", "no protocol frame");
	FRAMES("ACCEPT", "1234567", "p");
	refused("8-byte connection id", "7-byte id");
}
END_TEST

START_TEST(test_decode_unknown)
{
	static const char *const verbs[] = { "HELLO", "send", "OPEN", "MESSAGE", "", "SENDX", "SEN" };

	for (size_t i = 0; i < sizeof(verbs) / sizeof(verbs[0]); i++) {
		FRAMES(verbs[i], "12345678", "text", "x");
		refused("unknown verb", verbs[i]);
	}
}
END_TEST

static uint64_t ack_count;

/* ACK with these frames after the verb: decoded to want, or refused (want_ok 0). */
static void ack(int want_ok, uint64_t want, int n, ...)
{
	va_list ap;

	frames_reset();
	f_str("ACK");
	va_start(ap, n);
	for (int i = 0; i < n; i++) {
		const char *p = va_arg(ap, const char *);
		f_bytes(p, va_arg(ap, size_t));
	}
	va_end(ap);
	why = NULL;
	ack_count = 0xdeadbeef;
	int rc = zmsg_decode_ack(fr, nfr, &ack_count, &why);
	if (want_ok) {
		REQUIRE_MSG(rc == 0, "ACK %.*s: refused (%s)", n ? (int)zmq_msg_size(&fr[1]) : 0,
			    n ? (const char *)zmq_msg_data(&fr[1]) : "", why);
		ck_assert_uint_eq(ack_count, want);
	} else {
		REQUIRE_MSG(rc == -EINVAL && why && strstr(why, "malformed ACK"),
			    "ACK %.*s (%d frames): rc %d, why %s", n ? (int)zmq_msg_size(&fr[1]) : 0,
			    n ? (const char *)zmq_msg_data(&fr[1]) : "", n + 1, rc, why ? why : "-");
		ck_assert_uint_eq(ack_count, 0xdeadbeef); /* untouched */
	}
}

#define A(s) s, sizeof(s) - 1

START_TEST(test_decode_ack)
{
	ack(1, 0, 1, A("0"));
	ack(1, 32, 1, A("32"));
	ack(1, 32, 1, A("00032"));
	ack(1, 4294967296ull, 1, A("4294967296"));
	ack(1, UINT64_MAX, 1, A("18446744073709551615"));
	ack(1, 1, 1, A("00000000000000000001")); /* 20 digits */

	ack(0, 0, 0);                               /* no count */
	ack(0, 0, 1, A(""));
	ack(0, 0, 1, A("18446744073709551616"));    /* UINT64_MAX + 1 */
	ack(0, 0, 1, A("99999999999999999999"));
	ack(0, 0, 1, A("000000000000000000001"));   /* 21 digits */
	ack(0, 0, 1, A("-1"));
	ack(0, 0, 1, A("+1"));
	ack(0, 0, 1, A(" 1"));
	ack(0, 0, 1, A("1 "));
	ack(0, 0, 1, A("1x"));
	ack(0, 0, 1, A("0x10"));
	ack(0, 0, 1, A("1\0"));                    /* a NUL after the digits */
	ack(0, 0, 1, A("3.5"));
	ack(0, 0, 1, A("\x01\x02\x03\x04\x05\x06\x07\x08")); /* a binary count */
	ack(0, 0, 2, A("1"), A("2"));               /* too many frames */
	ack(0, 0, 2, A("1"), A(""));
	/* Every digit string that fits is read back as the number it spells. */
	char num[24];
	for (uint64_t v = 1; v && v < UINT64_MAX / 3; v = v * 3 + 1) {
		int len = snprintf(num, sizeof(num), "%llu", (unsigned long long)v);
		ack(1, v, 1, num, (size_t)len);
	}
}
END_TEST

START_TEST(test_frame_helpers)
{
	char buf[6];

	FRAMES("hello", "", "hell");
	f_bytes("a\0b", 3);
	ck_assert_int_eq(zmsg_frame_is(&fr[0], "hello"), 1);
	ck_assert_int_eq(zmsg_frame_is(&fr[0], "hell"), 0);
	ck_assert_int_eq(zmsg_frame_is(&fr[0], "hello!"), 0);
	ck_assert_int_eq(zmsg_frame_is(&fr[1], ""), 1);
	ck_assert_int_eq(zmsg_frame_str(&fr[0], buf, 6), 0);
	ck_assert_str_eq(buf, "hello");
	ck_assert_int_eq(zmsg_frame_str(&fr[0], buf, 5), -1); /* no room for the NUL */
	ck_assert_int_eq(zmsg_frame_str(&fr[1], buf, 1), 0);
	ck_assert_str_eq(buf, "");
	ck_assert_int_eq(zmsg_frame_str(&fr[3], buf, 6), -1); /* holds a NUL */
}
END_TEST

/* ---- records to frames, through a real ROUTER and DEALER ---- */

static void *ctx, *router, *dealer;
static const char IDENT[] = "worker-1";

/* A ROUTER as control.c has it (mandatory routing) and a DEALER attached to it; hwm 0
 * means ZeroMQ's default. */
static void pair_up(int hwm)
{
	int one = 1;
	char ep[64];
	static int seq;

	snprintf(ep, sizeof(ep), "inproc://zmsg-%d", seq++);
	ctx = zmq_ctx_new();
	router = zmq_socket(ctx, ZMQ_ROUTER);
	dealer = zmq_socket(ctx, ZMQ_DEALER);
	ck_assert(router && dealer);
	ck_assert_int_eq(zmq_setsockopt(router, ZMQ_ROUTER_MANDATORY, &one, sizeof(one)), 0);
	if (hwm) {
		ck_assert_int_eq(zmq_setsockopt(router, ZMQ_SNDHWM, &hwm, sizeof(hwm)), 0);
		ck_assert_int_eq(zmq_setsockopt(dealer, ZMQ_RCVHWM, &hwm, sizeof(hwm)), 0);
	}
	ck_assert_int_eq(zmq_bind(router, ep), 0);
	ck_assert_int_eq(zmq_setsockopt(dealer, ZMQ_ROUTING_ID, IDENT, strlen(IDENT)), 0);
	ck_assert_int_eq(zmq_connect(dealer, ep), 0);
	/* The router knows the dealer once it has heard from it, as with a worker's HELLO. */
	ck_assert_int_eq(zmq_send(dealer, "HELLO", 5, 0), 5);
	char id[32], body[8];
	ck_assert_int_eq(zmq_recv(router, id, sizeof(id), 0), (int)strlen(IDENT));
	ck_assert_mem_eq(id, IDENT, strlen(IDENT));
	ck_assert_int_eq(zmq_recv(router, body, sizeof(body), 0), 5);
}

static void pair_down(void)
{
	int zero = 0;
	zmq_setsockopt(router, ZMQ_LINGER, &zero, sizeof(zero));
	zmq_setsockopt(dealer, ZMQ_LINGER, &zero, sizeof(zero));
	zmq_close(router);
	zmq_close(dealer);
	zmq_ctx_term(ctx);
}

static int send_rec(const struct tr_rec *r)
{
	return zmsg_send_record(router, (const uint8_t *)IDENT, strlen(IDENT), r);
}

/* The next whole message on the dealer; fails if none arrives within 5 s. */
static int recv_msg(zmq_msg_t *m, int max)
{
	zmq_pollitem_t it = { .socket = dealer, .events = ZMQ_POLLIN };
	ck_assert_int_eq(zmq_poll(&it, 1, 5000), 1);
	int n = 0, more = 1;
	while (more) {
		ck_assert_int_lt(n, max);
		zmq_msg_init(&m[n]);
		ck_assert_int_ge(zmq_msg_recv(&m[n], dealer, 0), 0);
		more = zmq_msg_more(&m[n]);
		n++;
	}
	return n;
}

static int dealer_has_input(void)
{
	zmq_pollitem_t it = { .socket = dealer, .events = ZMQ_POLLIN };
	return zmq_poll(&it, 1, 0) == 1;
}

struct want {
	const void *p;
	size_t n;
};

#define S(s) { s, sizeof(s) - 1 }

/* Receives one message and compares its frames with want. */
static void expect(const struct want *w, int n, const char *what)
{
	zmq_msg_t m[80];
	int got = recv_msg(m, 80);
	REQUIRE_MSG(got == n, "%s: %d frames, want %d", what, got, n);
	for (int i = 0; i < n; i++) {
		size_t sz = zmq_msg_size(&m[i]);
		REQUIRE_MSG(sz == w[i].n && (sz == 0 || memcmp(zmq_msg_data(&m[i]), w[i].p, sz) == 0),
			    "%s: frame %d is '%.*s' (%zu bytes), want '%.*s' (%zu bytes)", what, i,
			    (int)sz, (const char *)zmq_msg_data(&m[i]), sz, (int)w[i].n,
			    (const char *)w[i].p, w[i].n);
	}
	for (int i = 0; i < got; i++)
		zmq_msg_close(&m[i]);
}

static const uint8_t ID_BE[8] = { 0, 0, 0, 0, 0, 0, 0x30, 0x39 }; /* 12345 */

START_TEST(test_send_message_gone_error)
{
	pair_up(0);
	struct tr_rec r = { .type = WSGW_MESSAGE, .conn = 12345, .a = "hi there", .na = 8 };
	ck_assert_int_eq(send_rec(&r), 0);
	expect((struct want[]){ S("MESSAGE"), { ID_BE, 8 }, S("text"), S("hi there") }, 4, "text MESSAGE");

	static const uint8_t bin[] = { 0, 0xff, 0, 7 };
	r = (struct tr_rec){ .type = WSGW_MESSAGE, .flags = WSGW_F_BINARY, .conn = 12345, .a = bin,
			     .na = 4 };
	ck_assert_int_eq(send_rec(&r), 0);
	expect((struct want[]){ S("MESSAGE"), { ID_BE, 8 }, S("binary"), { bin, 4 } }, 4, "binary");

	r = (struct tr_rec){ .type = WSGW_MESSAGE, .conn = 12345 };
	ck_assert_int_eq(send_rec(&r), 0);
	expect((struct want[]){ S("MESSAGE"), { ID_BE, 8 }, S("text"), { "", 0 } }, 4, "empty");

	r = (struct tr_rec){ .type = WSGW_GONE, .conn = 12345 };
	ck_assert_int_eq(send_rec(&r), 0);
	expect((struct want[]){ S("GONE"), { ID_BE, 8 } }, 2, "GONE");

	r = (struct tr_rec){ .type = WSGW_ERROR, .conn = 12345, .a = "unknown verb", .na = 12 };
	ck_assert_int_eq(send_rec(&r), 0);
	expect((struct want[]){ S("ERROR"), S("unknown verb") }, 2, "ERROR");
	ck_assert(!dealer_has_input());
	pair_down();
}
END_TEST

START_TEST(test_send_close)
{
	pair_up(0);
	/* As pool.c sends it: the code in a, the reason in b. */
	static const uint8_t code[2] = { 0x03, 0xe9 }; /* 1001 */
	struct tr_rec r = { .type = WSGW_CLOSE, .conn = 12345, .a = code, .na = 2, .b = "going away",
			    .nb = 10 };
	ck_assert_int_eq(send_rec(&r), 0);
	expect((struct want[]){ S("CLOSE"), { ID_BE, 8 }, S("1001"), S("going away") }, 4, "CLOSE");
	r.b = NULL, r.nb = 0;
	ck_assert_int_eq(send_rec(&r), 0);
	expect((struct want[]){ S("CLOSE"), { ID_BE, 8 }, S("1001"), { "", 0 } }, 4, "no reason");
	pair_down();
}
END_TEST

/*
 * BUG (gateway/zmsg.c, zmsg_send_record): a record's body is a then b (transport.h), but
 * CLOSE takes its reason from b alone. A CLOSE that was held (worker.c's wk_retry behind
 * the high-water mark, a pool's pending list, a hand-over) comes back as one body in a,
 * so the zmq worker gets CLOSE, id, code, "" : the reason is lost.
 */
START_TEST(test_send_close_held_form)
{
	pair_up(0);
	static const uint8_t body[] = { 0x03, 0xe9, 'g', 'o', 'i', 'n', 'g', ' ', 'a', 'w', 'a', 'y' };
	struct tr_rec r = { .type = WSGW_CLOSE, .conn = 12345, .a = body, .na = sizeof(body) };
	ck_assert_int_eq(send_rec(&r), 0);
	expect((struct want[]){ S("CLOSE"), { ID_BE, 8 }, S("1001"), S("going away") }, 4,
	       "CLOSE with its body in a");
	pair_down();
}
END_TEST

/*
 * BUG (gateway/zmsg.c, zmsg_send_record): same cause for every other type: MESSAGE, ERROR
 * and OPEN encode a alone, so a body given in two parts loses b. The shm transport
 * (tr_shm.c) sends a then b; records must mean the same on both.
 */
START_TEST(test_send_body_in_two_parts)
{
	pair_up(0);
	struct tr_rec r = { .type = WSGW_MESSAGE, .conn = 12345, .a = "hello, ", .na = 7, .b = "world",
			    .nb = 5 };
	ck_assert_int_eq(send_rec(&r), 0);
	expect((struct want[]){ S("MESSAGE"), { ID_BE, 8 }, S("text"), S("hello, world") }, 4,
	       "MESSAGE in two parts");
	pair_down();
}
END_TEST

START_TEST(test_send_open)
{
	uint8_t fields[256], *p = fields;

	pair_up(0);
	p = wsgw_field_put(p, ":peer", 5, "1.2.3.4:5678", 12);
	p = wsgw_field_put(p, ":path", 5, "/chat", 5);
	p = wsgw_field_put(p, "cookie", 6, "", 0);
	p = wsgw_field_put(p, "origin", 6, "http://o", 8);
	size_t n = (size_t)(p - fields);
	static const uint16_t flags[] = { 0, WSGW_F_RESUMED, WSGW_F_AUTHORIZE };
	static const struct want fl[] = { { "", 0 }, S("resumed"), S("authorize") };

	for (int i = 0; i < 3; i++) {
		struct tr_rec r = { .type = WSGW_OPEN, .flags = flags[i], .conn = 12345, .a = fields,
				    .na = n };
		ck_assert_int_eq(send_rec(&r), 0);
		expect((struct want[]){ S("OPEN"), { ID_BE, 8 }, fl[i], S(":peer"), S("1.2.3.4:5678"),
					S(":path"), S("/chat"), S("cookie"), { "", 0 }, S("origin"),
					S("http://o") }, 11, "OPEN");
	}
	/* The gateway sends :peer (read from the socket) apart from the fields it keeps: the
	 * fields come in two parts, each of whole fields, and read as one list. */
	size_t peer_n = wsgw_field_size(5, 12);
	struct tr_rec two = { .type = WSGW_OPEN, .conn = 12345, .a = fields, .na = peer_n,
			      .b = fields + peer_n, .nb = n - peer_n };
	ck_assert_int_eq(send_rec(&two), 0);
	expect((struct want[]){ S("OPEN"), { ID_BE, 8 }, { "", 0 }, S(":peer"), S("1.2.3.4:5678"),
				S(":path"), S("/chat"), S("cookie"), { "", 0 }, S("origin"),
				S("http://o") }, 11, "OPEN in two parts");
	two.nb = 0; /* :peer alone */
	ck_assert_int_eq(send_rec(&two), 0);
	expect((struct want[]){ S("OPEN"), { ID_BE, 8 }, { "", 0 }, S(":peer"), S("1.2.3.4:5678") },
	       5, "OPEN of :peer alone");
	/* No fields: the flags frame ends the message. */
	struct tr_rec r = { .type = WSGW_OPEN, .conn = 12345 };
	ck_assert_int_eq(send_rec(&r), 0);
	expect((struct want[]){ S("OPEN"), { ID_BE, 8 }, { "", 0 } }, 3, "OPEN without fields");
	ck_assert(!dealer_has_input());
	pair_down();
}
END_TEST

START_TEST(test_send_unknown_type)
{
	pair_up(0);
	/* Commands have no zmq form towards a worker: refused, and nothing is sent. */
	struct tr_rec r = { .type = WSGW_SEND, .conn = 1, .a = "x", .na = 1 };
	ck_assert_int_eq(send_rec(&r), -EIO);
	r.type = 999;
	ck_assert_int_eq(send_rec(&r), -EIO);
	r.type = WSGW_GONE;
	ck_assert_int_eq(send_rec(&r), 0);
	/* The next message is the GONE, whole: no stray frame went before it. */
	static const uint8_t one[8] = { 0, 0, 0, 0, 0, 0, 0, 1 };
	expect((struct want[]){ S("GONE"), { one, 8 } }, 2, "GONE after refused records");
	pair_down();
}
END_TEST

START_TEST(test_send_unknown_peer)
{
	pair_up(0);
	struct tr_rec r = { .type = WSGW_GONE, .conn = 1 };
	ck_assert_int_eq(zmsg_send_record(router, (const uint8_t *)"nobody", 6, &r), -EAGAIN);
	/* The router is not left in the middle of a message: the next send is whole. */
	r.type = WSGW_ERROR, r.a = "e", r.na = 1;
	ck_assert_int_eq(send_rec(&r), 0);
	expect((struct want[]){ S("ERROR"), S("e") }, 2, "ERROR after an unknown peer");
	pair_down();
}
END_TEST

START_TEST(test_send_high_water_mark)
{
	char payload[100];
	int sent = 0, rc = 0;

	pair_up(4);
	memset(payload, 'x', sizeof(payload));
	for (int i = 0; i < 10000; i++) {
		struct tr_rec r = { .type = WSGW_MESSAGE, .conn = (uint64_t)i, .a = payload, .na = 100 };
		rc = send_rec(&r);
		if (rc)
			break;
		sent++;
	}
	ck_assert_int_eq(rc, -EAGAIN);
	ck_assert_int_gt(sent, 0);
	/* Everything queued arrives whole and in order; nothing of the refused one does. */
	for (int i = 0; i < sent; i++) {
		uint64_t be = htobe64((uint64_t)i);
		expect((struct want[]){ S("MESSAGE"), { &be, 8 }, S("text"), { payload, 100 } }, 4,
		       "queued MESSAGE");
	}
	ck_assert(!dealer_has_input());
	/* Room again: the record that was refused goes, once the router has heard that the
	 * dealer read (ZeroMQ tells it with a command, which polling processes). */
	struct tr_rec r = { .type = WSGW_MESSAGE, .conn = (uint64_t)sent, .a = payload, .na = 100 };
	for (int i = 0; i < 100 && (rc = send_rec(&r)) == -EAGAIN; i++) {
		zmq_pollitem_t it = { .socket = router, .events = ZMQ_POLLOUT };
		zmq_poll(&it, 1, 50);
	}
	ck_assert_int_eq(rc, 0);
	uint64_t be = htobe64((uint64_t)sent);
	expect((struct want[]){ S("MESSAGE"), { &be, 8 }, S("text"), { payload, 100 } }, 4, "retried");
	pair_down();
}
END_TEST

int main(void)
{
	Suite *s = suite_create("zmsg");
	TCase *tc = tcase_create("decode");

	tcase_add_checked_fixture(tc, NULL, teardown);
	tcase_add_test(tc, test_decode_send);
	tcase_add_test(tc, test_decode_send_malformed);
	tcase_add_test(tc, test_decode_close);
	tcase_add_test(tc, test_decode_reject);
	tcase_add_test(tc, test_decode_accept);
	tcase_add_test(tc, test_decode_unknown);
	tcase_add_test(tc, test_decode_ack);
	tcase_add_test(tc, test_frame_helpers);
	suite_add_tcase(s, tc);

	tc = tcase_create("send");
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_send_message_gone_error);
	tcase_add_test(tc, test_send_close);
	tcase_add_test(tc, test_send_close_held_form);
	tcase_add_test(tc, test_send_body_in_two_parts);
	tcase_add_test(tc, test_send_open);
	tcase_add_test(tc, test_send_unknown_type);
	tcase_add_test(tc, test_send_unknown_peer);
	tcase_add_test(tc, test_send_high_water_mark);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
