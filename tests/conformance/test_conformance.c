/*
 * Conformance: RFC 6455 cases modelled on the Autobahn TestSuite sections
 * 1-7 and 9, run against a real build/wsgw and its built-in echo pool.
 * docs/CONFORMANCE.md lists every case and what it checks.
 *
 * A case sends frames (in one write, frame by frame, or octet by octet),
 * then asserts the exact answer: the echoed messages and pongs in order,
 * then either the close code the gateway must fail the connection with, or
 * -- for valid traffic -- a clean close we start (1000 echoed), which also
 * proves nothing unexpected arrived in between. TCP must be closed after.
 */
#include "tests/lib/wstest.h"

#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static struct wt_gw gw;

static void setup_default(void)
{
	WT_GW_START(&gw, NULL);
}

static void setup_16mib(void)
{
	WT_GW_START(&gw, "--max-message", "16777216", NULL);
}

static void teardown(void)
{
	WT_GW_STOP(&gw);
}

static void open_c(struct wt_conn *c)
{
	WT_EXPECT_OPEN(c, "127.0.0.1", gw.port, "/");
}


/* ---- case scripts ---------------------------------------------------------- */

struct fr {
	int op, fin, rsv;
	const void *p;
	size_t len;
};

struct ex {
	int op;
	const void *p;
	size_t len;
};

enum chop { ONE_WRITE, FRAME_WISE, OCTET_WISE };

/* A string literal with its length (embedded NULs included). */
#define S(lit) (lit), (sizeof(lit) - 1)

static uint8_t *encode_all(const struct fr *f, int n, size_t *total, size_t *ends)
{
	size_t cap = 0, off = 0;
	uint8_t *buf;

	for (int i = 0; i < n; i++)
		cap += f[i].len + 14;
	buf = malloc(cap ? cap : 1);
	ck_assert_ptr_nonnull(buf);
	for (int i = 0; i < n; i++) {
		struct wt_frame_spec s = { .opcode = f[i].op, .fin = f[i].fin, .rsv = f[i].rsv,
					   .payload = f[i].p, .len = f[i].len };
		size_t l;
		uint8_t *e = wt_frame_encode(&s, &l);

		memcpy(buf + off, e, l);
		off += l;
		free(e);
		if (ends)
			ends[i] = off;
	}
	*total = off;
	return buf;
}

/*
 * Sends the frames. When the gateway is expected to fail the connection,
 * writes after the violating frame may find the socket closed: lenient
 * accepts EPIPE/ECONNRESET then.
 */
static void send_frames(struct wt_conn *c, const struct fr *f, int n, enum chop how, int lenient)
{
	size_t total, ends[64];
	int rc = 0;

	ck_assert_int_le(n, 64);
	uint8_t *buf = encode_all(f, n, &total, ends);

	switch (how) {
	case ONE_WRITE:
		rc = wt_send_raw(c, buf, total);
		break;
	case FRAME_WISE:
		for (int i = 0; i < n && rc == 0; i++) {
			size_t start = i ? ends[i - 1] : 0;

			rc = wt_send_raw(c, buf + start, ends[i] - start);
			if (i + 1 < n)
				wt_sleep_ms(10);
		}
		break;
	case OCTET_WISE:
		rc = wt_send_chunked(c, buf, total, 1, 0);
		break;
	}
	free(buf);
	if (lenient && (rc == -EPIPE || rc == -ECONNRESET))
		rc = 0;
	WT_OK(c, rc);
}

static void expect_all(struct wt_conn *c, const struct ex *e, int n)
{
	for (int i = 0; i < n; i++)
		WT_EXPECT_MESSAGE(c, e[i].op, e[i].p, e[i].len);
}

/* Our clean close: proves nothing else was queued, and the gateway closes TCP. */
static void close_clean(struct wt_conn *c)
{
	WT_OK(c, wt_send_close(c, 1000, NULL, 0));
	WT_EXPECT_CLOSE_EOF(c, 1000);
}

/* Valid traffic: the expected answers, then a clean close. */
static void run_ok(const struct fr *f, int nf, enum chop how, const struct ex *e, int ne)
{
	struct wt_conn c;

	open_c(&c);
	send_frames(&c, f, nf, how, 0);
	expect_all(&c, e, ne);
	close_clean(&c);
	wt_close(&c);
}

/* A violation: the answers before it, then close with code and TCP EOF. */
static void run_fail(const struct fr *f, int nf, enum chop how, const struct ex *e, int ne,
		     int code)
{
	struct wt_conn c;

	open_c(&c);
	send_frames(&c, f, nf, how, 1);
	if (wt_worker_mode() && ne) {
		/* Through a worker the gateway fails the connection as soon as it parses the
		 * violation, while the worker's answers to the valid messages before it are
		 * still on their way: a prefix of them may come before the close (Autobahn's
		 * "non-strict"), and each one that comes must be right. */
		for (int i = 0;; i++) {
			struct wt_frame m;
			WT_OK(&c, wt_read_message(&c, &m, wt_timeout_ms()));
			if (m.opcode == WT_CLOSE) {
				ck_assert_msg(wt_close_code(&m) == code, "expected close %d, got %d",
					      code, wt_close_code(&m));
				wt_frame_free(&m);
				break;
			}
			ck_assert_msg(i < ne && m.opcode == e[i].op && m.len == e[i].len &&
					      memcmp(m.payload, e[i].p, m.len) == 0,
				      "answer %d before the close is not the expected echo", i);
			wt_frame_free(&m);
		}
		WT_EXPECT_EOF(&c);
	} else {
		expect_all(&c, e, ne);
		WT_EXPECT_CLOSE_EOF(&c, code);
	}
	wt_close(&c);
}

#define N(a) ((int)(sizeof(a) / sizeof((a)[0])))

/* ---- 1 framing ------------------------------------------------------------ */

static void echo_len(int op, size_t len, size_t chop)
{
	struct wt_conn c;
	char *p = malloc(len ? len : 1);
	size_t n;

	wt_fill(p, len, (unsigned)len, op == WT_TEXT);
	struct wt_frame_spec s = { .opcode = op, .fin = 1, .payload = p, .len = len };
	uint8_t *b = wt_frame_encode(&s, &n);

	open_c(&c);
	WT_OK(&c, wt_send_chunked(&c, b, n, chop, 0));
	WT_EXPECT_MESSAGE(&c, op, p, len);
	close_clean(&c);
	wt_close(&c);
	free(b);
	free(p);
}

#define FRAMING_CASES(X) \
	X(case_1_1_1_text_len_0, WT_TEXT, 0, 0) \
	X(case_1_1_2_text_len_125, WT_TEXT, 125, 0) \
	X(case_1_1_3_text_len_126, WT_TEXT, 126, 0) \
	X(case_1_1_4_text_len_127, WT_TEXT, 127, 0) \
	X(case_1_1_5_text_len_128, WT_TEXT, 128, 0) \
	X(case_1_1_6_text_len_65535, WT_TEXT, 65535, 0) \
	X(case_1_1_7_text_len_65536, WT_TEXT, 65536, 0) \
	X(case_1_1_8_text_len_65536_chops_997, WT_TEXT, 65536, 997) \
	X(case_1_2_1_binary_len_0, WT_BINARY, 0, 0) \
	X(case_1_2_2_binary_len_125, WT_BINARY, 125, 0) \
	X(case_1_2_3_binary_len_126, WT_BINARY, 126, 0) \
	X(case_1_2_4_binary_len_127, WT_BINARY, 127, 0) \
	X(case_1_2_5_binary_len_128, WT_BINARY, 128, 0) \
	X(case_1_2_6_binary_len_65535, WT_BINARY, 65535, 0) \
	X(case_1_2_7_binary_len_65536, WT_BINARY, 65536, 0) \
	X(case_1_2_8_binary_len_65536_chops_997, WT_BINARY, 65536, 997)

#define X(name, op, len, chop) START_TEST(name) { echo_len(op, len, chop); } END_TEST
FRAMING_CASES(X)
#undef X

START_TEST(case_1_3_1_unmasked_frame)
{
	struct wt_conn c;
	struct wt_frame_spec s = { .opcode = WT_TEXT, .fin = 1, .unmasked = 1,
				   .payload = "Hello", .len = 5 };

	open_c(&c);
	WT_OK(&c, wt_send_spec(&c, &s));
	WT_EXPECT_CLOSE_EOF(&c, 1002);
	wt_close(&c);
}
END_TEST

START_TEST(case_1_3_2_length_msb_set)
{
	struct wt_conn c;
	struct wt_frame_spec s = { .opcode = WT_BINARY, .fin = 1, .len_bytes = 8,
				   .len_override = 0x8000000000000010ull };

	open_c(&c);
	WT_OK(&c, wt_send_spec(&c, &s));
	/* RFC 6455 5.2: the most significant bit MUST be 0; it is also over any max. */
	WT_EXPECT_CLOSE_EOF(&c, 1002, 1009);
	wt_close(&c);
}
END_TEST

/* ---- 2 pings and pongs -------------------------------------------------------- */

static const uint8_t bin8[] = { 0x00, 0xff, 0xfe, 0xfd, 0xfc, 0xfb, 0x00, 0xff };
static char pay125[125], pay126[126];

static void fill_pays(void)
{
	memset(pay125, 0xfe, sizeof(pay125));
	memset(pay126, 0xfe, sizeof(pay126));
}

START_TEST(case_2_1_ping_empty)
{
	struct fr f[] = { { WT_PING, 1, 0, S("") } };
	struct ex e[] = { { WT_PONG, S("") } };

	run_ok(f, N(f), ONE_WRITE, e, N(e));
}
END_TEST

START_TEST(case_2_2_ping_text_payload)
{
	struct fr f[] = { { WT_PING, 1, 0, S("Hello, world!") } };
	struct ex e[] = { { WT_PONG, S("Hello, world!") } };

	run_ok(f, N(f), ONE_WRITE, e, N(e));
}
END_TEST

START_TEST(case_2_3_ping_binary_payload)
{
	struct fr f[] = { { WT_PING, 1, 0, bin8, sizeof(bin8) } };
	struct ex e[] = { { WT_PONG, bin8, sizeof(bin8) } };

	run_ok(f, N(f), ONE_WRITE, e, N(e));
}
END_TEST

START_TEST(case_2_4_ping_125)
{
	fill_pays();
	struct fr f[] = { { WT_PING, 1, 0, pay125, 125 } };
	struct ex e[] = { { WT_PONG, pay125, 125 } };

	run_ok(f, N(f), ONE_WRITE, e, N(e));
}
END_TEST

START_TEST(case_2_5_ping_126_is_1002)
{
	fill_pays();
	struct fr f[] = { { WT_PING, 1, 0, pay126, 126 } };

	run_fail(f, N(f), ONE_WRITE, NULL, 0, 1002);
}
END_TEST

START_TEST(case_2_6_ping_125_octet_wise)
{
	fill_pays();
	struct fr f[] = { { WT_PING, 1, 0, pay125, 125 } };
	struct ex e[] = { { WT_PONG, pay125, 125 } };

	run_ok(f, N(f), OCTET_WISE, e, N(e));
}
END_TEST

START_TEST(case_2_7_unsolicited_pong_empty)
{
	struct fr f[] = { { WT_PONG, 1, 0, S("") } };

	run_ok(f, N(f), ONE_WRITE, NULL, 0);
}
END_TEST

START_TEST(case_2_8_unsolicited_pong_payload)
{
	struct fr f[] = { { WT_PONG, 1, 0, S("unsolicited pong payload") } };

	run_ok(f, N(f), ONE_WRITE, NULL, 0);
}
END_TEST

START_TEST(case_2_9_unsolicited_pong_then_ping)
{
	struct fr f[] = { { WT_PONG, 1, 0, S("unsolicited pong payload") },
			  { WT_PING, 1, 0, S("ping payload") } };
	struct ex e[] = { { WT_PONG, S("ping payload") } };

	run_ok(f, N(f), ONE_WRITE, e, N(e));
}
END_TEST

static void ten_pings(enum chop how)
{
	char pl[10][16];
	struct fr f[10];
	struct ex e[10];

	for (int i = 0; i < 10; i++) {
		int n = snprintf(pl[i], sizeof(pl[i]), "payload-%d", i);

		f[i] = (struct fr){ WT_PING, 1, 0, pl[i], (size_t)n };
		e[i] = (struct ex){ WT_PONG, pl[i], (size_t)n };
	}
	run_ok(f, 10, how, e, 10);
}

START_TEST(case_2_10_ten_pings)
{
	ten_pings(ONE_WRITE);
}
END_TEST

START_TEST(case_2_11_ten_pings_octet_wise)
{
	ten_pings(OCTET_WISE);
}
END_TEST

/* ---- 3 reserved bits ----------------------------------------------------------- */

START_TEST(case_3_1_text_rsv1)
{
	struct fr f[] = { { WT_TEXT, 1, 4, S("Hello, world!") } };

	run_fail(f, N(f), ONE_WRITE, NULL, 0, 1002);
}
END_TEST

static void rsv_after_echo(int rsv, enum chop how)
{
	struct fr f[] = { { WT_TEXT, 1, 0, S("Hello, world!") },
			  { WT_TEXT, 1, rsv, S("Hello, world!") },
			  { WT_PING, 1, 0, S("") } };
	struct ex e[] = { { WT_TEXT, S("Hello, world!") } };

	run_fail(f, N(f), how, e, N(e), 1002);
}

START_TEST(case_3_2_text_rsv2_after_echo)
{
	rsv_after_echo(2, ONE_WRITE);
}
END_TEST

START_TEST(case_3_3_text_rsv3_frame_wise)
{
	rsv_after_echo(3, FRAME_WISE);
}
END_TEST

START_TEST(case_3_4_text_rsv4_octet_wise)
{
	rsv_after_echo(1, OCTET_WISE);
}
END_TEST

START_TEST(case_3_5_binary_rsv5)
{
	struct fr f[] = { { WT_BINARY, 1, 5, bin8, sizeof(bin8) } };

	run_fail(f, N(f), ONE_WRITE, NULL, 0, 1002);
}
END_TEST

START_TEST(case_3_6_ping_rsv6)
{
	struct fr f[] = { { WT_PING, 1, 6, bin8, sizeof(bin8) } };

	run_fail(f, N(f), ONE_WRITE, NULL, 0, 1002);
}
END_TEST

START_TEST(case_3_7_close_rsv7)
{
	struct fr f[] = { { WT_CLOSE, 1, 7, S("\x03\xe8") } };

	run_fail(f, N(f), ONE_WRITE, NULL, 0, 1002);
}
END_TEST

/* ---- 4 opcodes ---------------------------------------------------------------- */

static void reserved_opcode(int op, int with_payload, int after_echo, enum chop how)
{
	struct fr lone = { op, 1, 0, with_payload ? "reserved opcode payload" : "",
			   with_payload ? 23 : 0 };
	struct fr f[] = { { WT_TEXT, 1, 0, S("Hello, world!") }, lone, { WT_PING, 1, 0, S("") } };
	struct ex e[] = { { WT_TEXT, S("Hello, world!") } };

	if (after_echo)
		run_fail(f, N(f), how, e, N(e), 1002);
	else
		run_fail(&lone, 1, how, NULL, 0, 1002);
}

#define OPCODE_CASES(X) \
	X(case_4_1_1_opcode_3, 3, 0, 0, ONE_WRITE) \
	X(case_4_1_2_opcode_4_payload, 4, 1, 0, ONE_WRITE) \
	X(case_4_1_3_opcode_5_after_echo, 5, 0, 1, ONE_WRITE) \
	X(case_4_1_4_opcode_6_payload_after_echo, 6, 1, 1, ONE_WRITE) \
	X(case_4_1_5_opcode_7_payload_octet_wise, 7, 1, 1, OCTET_WISE) \
	X(case_4_2_1_opcode_11, 11, 0, 0, ONE_WRITE) \
	X(case_4_2_2_opcode_12_payload, 12, 1, 0, ONE_WRITE) \
	X(case_4_2_3_opcode_13_after_echo, 13, 0, 1, ONE_WRITE) \
	X(case_4_2_4_opcode_14_payload_after_echo, 14, 1, 1, ONE_WRITE) \
	X(case_4_2_5_opcode_15_payload_octet_wise, 15, 1, 1, OCTET_WISE)

#define X(name, op, pl, ae, how) START_TEST(name) { reserved_opcode(op, pl, ae, how); } END_TEST
OPCODE_CASES(X)
#undef X

/* ---- 5 fragmentation -------------------------------------------------------------- */

START_TEST(case_5_1_ping_fragmented)
{
	struct fr f[] = { { WT_PING, 0, 0, S("fragment1") }, { WT_CONT, 1, 0, S("fragment2") } };

	run_fail(f, N(f), ONE_WRITE, NULL, 0, 1002);
}
END_TEST

START_TEST(case_5_2_pong_fragmented)
{
	struct fr f[] = { { WT_PONG, 0, 0, S("fragment1") }, { WT_CONT, 1, 0, S("fragment2") } };

	run_fail(f, N(f), ONE_WRITE, NULL, 0, 1002);
}
END_TEST

static void two_fragments(enum chop how)
{
	struct fr f[] = { { WT_TEXT, 0, 0, S("fragment1") }, { WT_CONT, 1, 0, S("fragment2") } };
	struct ex e[] = { { WT_TEXT, S("fragment1fragment2") } };

	run_ok(f, N(f), how, e, N(e));
}

START_TEST(case_5_3_text_two_fragments)
{
	two_fragments(ONE_WRITE);
}
END_TEST

START_TEST(case_5_4_text_two_fragments_frame_wise)
{
	two_fragments(FRAME_WISE);
}
END_TEST

START_TEST(case_5_5_text_two_fragments_octet_wise)
{
	two_fragments(OCTET_WISE);
}
END_TEST

static void ping_between_fragments(enum chop how)
{
	struct fr f[] = { { WT_TEXT, 0, 0, S("fragment1") }, { WT_PING, 1, 0, S("ping payload") },
			  { WT_CONT, 1, 0, S("fragment2") } };
	struct ex e[] = { { WT_PONG, S("ping payload") }, { WT_TEXT, S("fragment1fragment2") } };

	run_ok(f, N(f), how, e, N(e));
}

START_TEST(case_5_6_ping_between_fragments)
{
	ping_between_fragments(ONE_WRITE);
}
END_TEST

START_TEST(case_5_7_ping_between_fragments_frame_wise)
{
	ping_between_fragments(FRAME_WISE);
}
END_TEST

START_TEST(case_5_8_ping_between_fragments_octet_wise)
{
	ping_between_fragments(OCTET_WISE);
}
END_TEST

static void cont_without_start(int fin, enum chop how)
{
	struct fr f[] = { { WT_CONT, fin, 0, S("non-continuation payload") },
			  { WT_TEXT, 1, 0, S("Hello, world!") } };

	run_fail(f, N(f), how, NULL, 0, 1002);
}

START_TEST(case_5_9_cont_fin_without_start)
{
	cont_without_start(1, ONE_WRITE);
}
END_TEST

START_TEST(case_5_10_cont_fin_without_start_frame_wise)
{
	cont_without_start(1, FRAME_WISE);
}
END_TEST

START_TEST(case_5_11_cont_fin_without_start_octet_wise)
{
	cont_without_start(1, OCTET_WISE);
}
END_TEST

START_TEST(case_5_12_cont_nofin_without_start)
{
	cont_without_start(0, ONE_WRITE);
}
END_TEST

START_TEST(case_5_13_cont_nofin_without_start_frame_wise)
{
	cont_without_start(0, FRAME_WISE);
}
END_TEST

START_TEST(case_5_14_cont_nofin_without_start_octet_wise)
{
	cont_without_start(0, OCTET_WISE);
}
END_TEST

START_TEST(case_5_15_cont_after_finished_message)
{
	struct fr f[] = { { WT_TEXT, 0, 0, S("fragment1") }, { WT_CONT, 1, 0, S("fragment2") },
			  { WT_CONT, 0, 0, S("fragment3") }, { WT_TEXT, 1, 0, S("fragment4") } };
	struct ex e[] = { { WT_TEXT, S("fragment1fragment2") } };

	run_fail(f, N(f), ONE_WRITE, e, N(e), 1002);
}
END_TEST

START_TEST(case_5_16_cont_text_cont_twice)
{
	struct fr f[] = { { WT_CONT, 0, 0, S("fragment1") }, { WT_TEXT, 0, 0, S("fragment2") },
			  { WT_CONT, 1, 0, S("fragment3") }, { WT_CONT, 0, 0, S("fragment1") },
			  { WT_TEXT, 0, 0, S("fragment2") }, { WT_CONT, 1, 0, S("fragment3") } };

	run_fail(f, N(f), ONE_WRITE, NULL, 0, 1002);
}
END_TEST

START_TEST(case_5_17_cont_fin_text_cont_twice)
{
	struct fr f[] = { { WT_CONT, 1, 0, S("fragment1") }, { WT_TEXT, 0, 0, S("fragment2") },
			  { WT_CONT, 1, 0, S("fragment3") }, { WT_CONT, 1, 0, S("fragment1") },
			  { WT_TEXT, 0, 0, S("fragment2") }, { WT_CONT, 1, 0, S("fragment3") } };

	run_fail(f, N(f), ONE_WRITE, NULL, 0, 1002);
}
END_TEST

START_TEST(case_5_18_text_started_then_new_text)
{
	struct fr f[] = { { WT_TEXT, 0, 0, S("fragment1") }, { WT_TEXT, 1, 0, S("fragment2") } };

	run_fail(f, N(f), ONE_WRITE, NULL, 0, 1002);
}
END_TEST

START_TEST(case_5_18b_binary_started_then_new_binary)
{
	struct fr f[] = { { WT_BINARY, 0, 0, bin8, 4 }, { WT_BINARY, 1, 0, bin8 + 4, 4 } };

	run_fail(f, N(f), ONE_WRITE, NULL, 0, 1002);
}
END_TEST

static void five_fragments_two_pings(enum chop how)
{
	struct wt_conn c;
	struct fr a[] = { { WT_TEXT, 0, 0, S("fragment1") }, { WT_CONT, 0, 0, S("fragment2") },
			  { WT_PING, 1, 0, S("pongme 1!") } };
	struct fr b[] = { { WT_CONT, 0, 0, S("fragment3") }, { WT_PING, 1, 0, S("pongme 2!") },
			  { WT_CONT, 0, 0, S("fragment4") }, { WT_CONT, 1, 0, S("fragment5") } };

	open_c(&c);
	send_frames(&c, a, N(a), how, 0);
	/* The pong for the first ping comes while the message is still open. */
	WT_EXPECT_MESSAGE(&c, WT_PONG, "pongme 1!", sizeof("pongme 1!") - 1);
	wt_sleep_ms(100);
	send_frames(&c, b, N(b), how, 0);
	WT_EXPECT_MESSAGE(&c, WT_PONG, "pongme 2!", sizeof("pongme 2!") - 1);
	WT_EXPECT_MESSAGE(&c, WT_TEXT, "fragment1fragment2fragment3fragment4fragment5", 45);
	close_clean(&c);
	wt_close(&c);
}

START_TEST(case_5_19_fragments_pings_and_pause)
{
	five_fragments_two_pings(ONE_WRITE);
}
END_TEST

START_TEST(case_5_20_fragments_pings_and_pause_frame_wise)
{
	five_fragments_two_pings(FRAME_WISE);
}
END_TEST

/* ---- 6 UTF-8 ---------------------------------------------------------------------- */

/* "Hello-µ@ßöäüàá-UTF-8!!" and "κόσμε" */
#define HELLO_UTF8 "Hello-\xc2\xb5@\xc3\x9f\xc3\xb6\xc3\xa4\xc3\xbc\xc3\xa0\xc3\xa1-UTF-8!!"
#define KOSME "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5"

START_TEST(case_6_1_1_empty_text)
{
	struct fr f[] = { { WT_TEXT, 1, 0, S("") } };
	struct ex e[] = { { WT_TEXT, S("") } };

	run_ok(f, N(f), ONE_WRITE, e, N(e));
}
END_TEST

START_TEST(case_6_1_2_three_empty_fragments)
{
	struct fr f[] = { { WT_TEXT, 0, 0, S("") }, { WT_CONT, 0, 0, S("") },
			  { WT_CONT, 1, 0, S("") } };
	struct ex e[] = { { WT_TEXT, S("") } };

	run_ok(f, N(f), ONE_WRITE, e, N(e));
}
END_TEST

START_TEST(case_6_1_3_empty_fragments_around_payload)
{
	struct fr f[] = { { WT_TEXT, 0, 0, S("") }, { WT_CONT, 0, 0, S("middle frame payload") },
			  { WT_CONT, 1, 0, S("") } };
	struct ex e[] = { { WT_TEXT, S("middle frame payload") } };

	run_ok(f, N(f), ONE_WRITE, e, N(e));
}
END_TEST

START_TEST(case_6_2_1_valid_utf8_one_frame)
{
	struct fr f[] = { { WT_TEXT, 1, 0, S(HELLO_UTF8) } };
	struct ex e[] = { { WT_TEXT, S(HELLO_UTF8) } };

	run_ok(f, N(f), ONE_WRITE, e, N(e));
}
END_TEST

START_TEST(case_6_2_2_valid_utf8_two_fragments_on_boundary)
{
	/* Split after "Hello-\xc2\xb5@\xc3\x9f\xc3\xb6": at a code point boundary. */
	static const char m[] = HELLO_UTF8;
	struct fr f[] = { { WT_TEXT, 0, 0, m, 13 }, { WT_CONT, 1, 0, m + 13, sizeof(m) - 1 - 13 } };
	struct ex e[] = { { WT_TEXT, S(HELLO_UTF8) } };

	run_ok(f, N(f), ONE_WRITE, e, N(e));
}
END_TEST

static void one_byte_fragments(const char *m, size_t n, int valid)
{
	struct wt_conn c;

	open_c(&c);
	for (size_t i = 0; i < n; i++) {
		int rc = wt_send_frame(&c, i ? WT_CONT : WT_TEXT, i + 1 == n, m + i, 1);

		if (!valid && (rc == -EPIPE || rc == -ECONNRESET))
			break;
		WT_OK(&c, rc);
	}
	if (valid) {
		WT_EXPECT_MESSAGE(&c, WT_TEXT, m, n);
		close_clean(&c);
	} else {
		WT_EXPECT_CLOSE_EOF(&c, 1007);
	}
	wt_close(&c);
}

START_TEST(case_6_2_3_valid_utf8_one_byte_fragments)
{
	one_byte_fragments(S(HELLO_UTF8), 1);
}
END_TEST

START_TEST(case_6_2_4_kosme_one_byte_fragments)
{
	one_byte_fragments(S(KOSME), 1);
}
END_TEST

START_TEST(case_6_2_5_valid_utf8_octet_wise_chops)
{
	struct fr f[] = { { WT_TEXT, 1, 0, S(KOSME HELLO_UTF8 "\xf0\x9f\x98\x80") } };
	struct ex e[] = { { WT_TEXT, S(KOSME HELLO_UTF8 "\xf0\x9f\x98\x80") } };

	run_ok(f, N(f), OCTET_WISE, e, N(e));
}
END_TEST

#define KOSME_BAD KOSME "\xed\xa0\x80" "edited"

START_TEST(case_6_3_1_invalid_utf8_one_frame)
{
	struct fr f[] = { { WT_TEXT, 1, 0, S(KOSME_BAD) } };

	run_fail(f, N(f), ONE_WRITE, NULL, 0, 1007);
}
END_TEST

START_TEST(case_6_3_2_invalid_utf8_one_byte_fragments)
{
	one_byte_fragments(S(KOSME_BAD), 0);
}
END_TEST

/*
 * Fail fast: the gateway must close on the first invalid byte, without the
 * rest of the message (which we never send).
 */
START_TEST(case_6_4_1_fail_fast_invalid_fragment)
{
	struct wt_conn c;

	open_c(&c);
	WT_OK(&c, wt_send_frame(&c, WT_TEXT, 0, S(KOSME)));
	WT_OK(&c, wt_send_frame(&c, WT_CONT, 0, S("\xf4\x90\x80\x80")));
	WT_EXPECT_CLOSE_EOF(&c, 1007);
	wt_close(&c);
}
END_TEST

START_TEST(case_6_4_2_fail_fast_sequence_split_over_fragments)
{
	struct wt_conn c;

	open_c(&c);
	WT_OK(&c, wt_send_frame(&c, WT_TEXT, 0, S(KOSME "\xf4")));
	WT_OK(&c, wt_send_frame(&c, WT_CONT, 0, S("\x90")));
	WT_EXPECT_CLOSE_EOF(&c, 1007);
	wt_close(&c);
}
END_TEST

static void fail_fast_inside_frame(size_t first, size_t second)
{
	static const char m[] = KOSME "\xf4\x90\x80\x80" "edited";
	struct wt_frame_spec s = { .opcode = WT_TEXT, .fin = 1, .payload = m, .len = sizeof(m) - 1 };
	struct wt_conn c;
	size_t n;
	uint8_t *b = wt_frame_encode(&s, &n);
	size_t h = n - s.len;

	open_c(&c);
	WT_OK(&c, wt_send_raw(&c, b, h + first));
	wt_sleep_ms(50);
	WT_OK(&c, wt_send_raw(&c, b + h + first, second));
	/* The rest of the frame ("edited") is never sent. */
	WT_EXPECT_CLOSE_EOF(&c, 1007);
	wt_close(&c);
	free(b);
}

START_TEST(case_6_4_3_fail_fast_inside_one_frame_chunks)
{
	fail_fast_inside_frame(11, 4);
}
END_TEST

START_TEST(case_6_4_4_fail_fast_inside_one_frame_split_sequence)
{
	fail_fast_inside_frame(12, 1);
}
END_TEST

/* name, bytes, 1 if valid UTF-8 */
#define UTF8_CASES(X) \
	X(case_6_5_1_kosme, KOSME, 1) \
	X(case_6_5_2_ascii_and_nul, "a\0b", 1) \
	X(case_6_5_3_emoji, "\xf0\x9f\x98\x80", 1) \
	X(case_6_6_1_kosme_prefix_1, "\xce", 0) \
	X(case_6_6_2_kosme_prefix_2, "\xce\xba", 1) \
	X(case_6_6_3_kosme_prefix_3, "\xce\xba\xe1", 0) \
	X(case_6_6_4_kosme_prefix_4, "\xce\xba\xe1\xbd", 0) \
	X(case_6_6_5_kosme_prefix_5, "\xce\xba\xe1\xbd\xb9", 1) \
	X(case_6_6_6_kosme_prefix_6, "\xce\xba\xe1\xbd\xb9\xcf", 0) \
	X(case_6_6_7_kosme_prefix_7, "\xce\xba\xe1\xbd\xb9\xcf\x83", 1) \
	X(case_6_6_8_kosme_prefix_8, "\xce\xba\xe1\xbd\xb9\xcf\x83\xce", 0) \
	X(case_6_6_9_kosme_prefix_9, "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc", 1) \
	X(case_6_6_10_kosme_prefix_10, "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce", 0) \
	X(case_6_7_1_first_1_byte, "\x00", 1) \
	X(case_6_7_2_first_2_byte, "\xc2\x80", 1) \
	X(case_6_7_3_first_3_byte, "\xe0\xa0\x80", 1) \
	X(case_6_7_4_first_4_byte, "\xf0\x90\x80\x80", 1) \
	X(case_6_8_1_five_byte_form, "\xf8\x88\x80\x80\x80", 0) \
	X(case_6_8_2_six_byte_form, "\xfc\x84\x80\x80\x80\x80", 0) \
	X(case_6_9_1_last_1_byte, "\x7f", 1) \
	X(case_6_9_2_last_2_byte, "\xdf\xbf", 1) \
	X(case_6_9_3_last_3_byte, "\xef\xbf\xbf", 1) \
	X(case_6_9_4_last_4_byte_u10ffff, "\xf4\x8f\xbf\xbf", 1) \
	X(case_6_10_1_over_u10ffff_f7, "\xf7\xbf\xbf\xbf", 0) \
	X(case_6_10_2_five_byte_max, "\xfb\xbf\xbf\xbf\xbf", 0) \
	X(case_6_10_3_six_byte_max, "\xfd\xbf\xbf\xbf\xbf\xbf", 0) \
	X(case_6_11_1_ud7ff, "\xed\x9f\xbf", 1) \
	X(case_6_11_2_ue000, "\xee\x80\x80", 1) \
	X(case_6_11_3_ufffd, "\xef\xbf\xbd", 1) \
	X(case_6_11_4_u10ffff, "\xf4\x8f\xbf\xbf", 1) \
	X(case_6_11_5_u110000, "\xf4\x90\x80\x80", 0) \
	X(case_6_12_1_continuation_80, "\x80", 0) \
	X(case_6_12_2_continuation_bf, "\xbf", 0) \
	X(case_6_12_3_continuations_2, "\x80\xbf", 0) \
	X(case_6_12_4_continuations_3, "\x80\xbf\x80", 0) \
	X(case_6_12_5_continuations_4, "\x80\xbf\x80\xbf", 0) \
	X(case_6_12_6_continuation_after_ascii, "a\x80" "b", 0) \
	X(case_6_13_1_lonely_2_byte_start, "\xc0 \xc1 \xc2 ", 0) \
	X(case_6_13_2_lonely_3_byte_start, "\xe0 \xef ", 0) \
	X(case_6_13_3_lonely_4_byte_start, "\xf0 \xf4 ", 0) \
	X(case_6_13_4_lonely_5_byte_start, "\xf8 ", 0) \
	X(case_6_13_5_lonely_6_byte_start, "\xfc ", 0) \
	X(case_6_14_1_missing_last_2_byte, "\xc2", 0) \
	X(case_6_14_2_missing_last_3_byte, "\xe0\xa0", 0) \
	X(case_6_14_3_missing_last_4_byte, "\xf0\x90\x80", 0) \
	X(case_6_14_4_missing_last_3_byte_max, "\xef\xbf", 0) \
	X(case_6_14_5_missing_last_4_byte_max, "\xf4\x8f\xbf", 0) \
	X(case_6_14_6_missing_last_then_ascii, "\xe0\xa0" "a", 0) \
	X(case_6_15_1_concatenated_incomplete, "\xc2\xe0\xa0\xf0\x90\x80\xdf\xef\xbf\xf4\x8f\xbf", 0) \
	X(case_6_16_1_byte_fe, "\xfe", 0) \
	X(case_6_16_2_byte_ff, "\xff", 0) \
	X(case_6_16_3_bytes_fe_fe_ff_ff, "\xfe\xfe\xff\xff", 0) \
	X(case_6_17_1_overlong_slash_2, "\xc0\xaf", 0) \
	X(case_6_17_2_overlong_slash_3, "\xe0\x80\xaf", 0) \
	X(case_6_17_3_overlong_slash_4, "\xf0\x80\x80\xaf", 0) \
	X(case_6_17_4_overlong_max_2, "\xc1\xbf", 0) \
	X(case_6_17_5_overlong_max_3, "\xe0\x9f\xbf", 0) \
	X(case_6_17_6_overlong_max_4, "\xf0\x8f\xbf\xbf", 0) \
	X(case_6_17_7_overlong_nul_2, "\xc0\x80", 0) \
	X(case_6_17_8_overlong_nul_3, "\xe0\x80\x80", 0) \
	X(case_6_18_1_surrogate_d800, "\xed\xa0\x80", 0) \
	X(case_6_18_2_surrogate_db7f, "\xed\xad\xbf", 0) \
	X(case_6_18_3_surrogate_db80, "\xed\xae\x80", 0) \
	X(case_6_18_4_surrogate_dbff, "\xed\xaf\xbf", 0) \
	X(case_6_18_5_surrogate_dc00, "\xed\xb0\x80", 0) \
	X(case_6_18_6_surrogate_df80, "\xed\xbe\x80", 0) \
	X(case_6_18_7_surrogate_dfff, "\xed\xbf\xbf", 0) \
	X(case_6_19_1_surrogate_pair_d800_dc00, "\xed\xa0\x80\xed\xb0\x80", 0) \
	X(case_6_19_2_surrogate_pair_dbff_dfff, "\xed\xaf\xbf\xed\xbf\xbf", 0) \
	X(case_6_20_1_noncharacter_ufffe, "\xef\xbf\xbe", 1) \
	X(case_6_20_2_noncharacter_uffff, "\xef\xbf\xbf", 1) \
	X(case_6_20_3_noncharacter_ufdd0, "\xef\xb7\x90", 1) \
	X(case_6_20_4_noncharacter_u10fffe, "\xf4\x8f\xbf\xbe", 1)

static void utf8_case(const char *p, size_t n, int valid)
{
	struct fr f[] = { { WT_TEXT, 1, 0, p, n } };
	struct ex e[] = { { WT_TEXT, p, n } };

	/* The table itself must agree with the harness's validator. */
	ck_assert_int_eq(wt_utf8_valid((const uint8_t *)p, n), valid);
	if (valid)
		run_ok(f, 1, ONE_WRITE, e, 1);
	else
		run_fail(f, 1, ONE_WRITE, NULL, 0, 1007);
}

#define X(name, bytes, valid) START_TEST(name) { utf8_case(S(bytes), valid); } END_TEST
UTF8_CASES(X)
#undef X

/* ---- 7 close handling ------------------------------------------------------------ */

START_TEST(case_7_1_1_echo_then_close)
{
	struct fr f[] = { { WT_TEXT, 1, 0, S("Hello World!") } };
	struct ex e[] = { { WT_TEXT, S("Hello World!") } };

	run_ok(f, N(f), ONE_WRITE, e, N(e));
}
END_TEST

static void close_then(const struct fr *after, int nafter)
{
	struct fr f[8] = { { WT_CLOSE, 1, 0, S("\x03\xe8") } };

	for (int i = 0; i < nafter; i++)
		f[1 + i] = after[i];
	/* Anything after our close is ignored: only the close answer, then EOF. */
	run_fail(f, 1 + nafter, ONE_WRITE, NULL, 0, 1000);
}

START_TEST(case_7_1_2_close_twice)
{
	struct fr a[] = { { WT_CLOSE, 1, 0, S("\x03\xe8") } };

	close_then(a, N(a));
}
END_TEST

START_TEST(case_7_1_3_close_then_ping)
{
	struct fr a[] = { { WT_PING, 1, 0, S("Hello World!") } };

	close_then(a, N(a));
}
END_TEST

START_TEST(case_7_1_4_close_then_text)
{
	struct fr a[] = { { WT_TEXT, 1, 0, S("Hello World!") } };

	close_then(a, N(a));
}
END_TEST

START_TEST(case_7_1_5_close_inside_fragmented_message)
{
	struct fr f[] = { { WT_TEXT, 0, 0, S("fragment1") }, { WT_CLOSE, 1, 0, S("\x03\xe8") },
			  { WT_CONT, 1, 0, S("fragment2") } };

	run_fail(f, N(f), ONE_WRITE, NULL, 0, 1000);
}
END_TEST

START_TEST(case_7_1_6_large_message_then_close_then_ping)
{
	struct wt_conn c;
	size_t n = 256 * 1024;
	char *p = malloc(n);
	struct wt_frame fr;

	wt_fill(p, n, 716, 1);
	struct fr f[] = { { WT_TEXT, 1, 0, p, n }, { WT_CLOSE, 1, 0, S("\x03\xe8") },
			  { WT_PING, 1, 0, S("Hello World!") } };

	open_c(&c);
	send_frames(&c, f, N(f), ONE_WRITE, 1);
	/* The echo may or may not precede the close answer; nothing else may. */
	WT_OK(&c, wt_read_message(&c, &fr, -1));
	if (fr.opcode == WT_TEXT) {
		ck_assert_msg(fr.len == n && !memcmp(fr.payload, p, n),
			      "echo before close differs (len %zu)", fr.len);
		wt_frame_free(&fr);
		WT_EXPECT_CLOSE_EOF(&c, 1000);
	} else {
		ck_assert_msg(fr.opcode == WT_CLOSE && wt_close_code(&fr) == 1000,
			      "expected the echo or CLOSE 1000, got opcode %d code %d", fr.opcode,
			      fr.opcode == WT_CLOSE ? wt_close_code(&fr) : 0);
		wt_frame_free(&fr);
		WT_EXPECT_EOF(&c);
	}
	wt_close(&c);
	free(p);
}
END_TEST

static void close_payload(const void *p, size_t n, int code_a, int code_b)
{
	struct wt_conn c;

	open_c(&c);
	WT_OK(&c, wt_send_frame(&c, WT_CLOSE, 1, p, n));
	WT_EXPECT_CLOSE_EOF(&c, code_a, code_b);
	wt_close(&c);
}

START_TEST(case_7_3_1_close_empty)
{
	/* RFC 6455 7.4.1: 1005 must not be sent; an empty close or 1000 answers it. */
	close_payload("", 0, WT_CLOSE_EMPTY, 1000);
}
END_TEST

START_TEST(case_7_3_2_close_one_byte)
{
	close_payload("\x03", 1, 1002, 1002);
}
END_TEST

START_TEST(case_7_3_3_close_1000)
{
	close_payload("\x03\xe8", 2, 1000, 1000);
}
END_TEST

START_TEST(case_7_3_4_close_1000_reason)
{
	close_payload(S("\x03\xe8" "Hello World!"), 1000, 1000);
}
END_TEST

START_TEST(case_7_3_5_close_1000_reason_123)
{
	char p[125];

	p[0] = 0x03;
	p[1] = (char)0xe8;
	memset(p + 2, '*', 123);
	close_payload(p, sizeof(p), 1000, 1000);
}
END_TEST

START_TEST(case_7_3_6_close_1000_reason_124)
{
	char p[126];

	p[0] = 0x03;
	p[1] = (char)0xe8;
	memset(p + 2, '*', 124);
	close_payload(p, sizeof(p), 1002, 1002);
}
END_TEST

START_TEST(case_7_5_1_close_reason_invalid_utf8)
{
	close_payload(S("\x03\xe8" KOSME_BAD), 1007, 1007);
}
END_TEST

START_TEST(case_7_5_2_close_reason_truncated_utf8)
{
	close_payload(S("\x03\xe8" "ok\xe1\xbd"), 1007, 1007);
}
END_TEST

static void close_code(int code, int valid)
{
	uint8_t p[2] = { (uint8_t)(code >> 8), (uint8_t)code };

	if (valid)
		close_payload(p, 2, code, code);
	else
		close_payload(p, 2, 1002, 1002);
}

#define CLOSE_CODE_CASES(X) \
	X(case_7_7_1_code_1000, 1000, 1) \
	X(case_7_7_2_code_1001, 1001, 1) \
	X(case_7_7_3_code_1002, 1002, 1) \
	X(case_7_7_4_code_1003, 1003, 1) \
	X(case_7_7_5_code_1007, 1007, 1) \
	X(case_7_7_6_code_1008, 1008, 1) \
	X(case_7_7_7_code_1009, 1009, 1) \
	X(case_7_7_8_code_1010, 1010, 1) \
	X(case_7_7_9_code_1011, 1011, 1) \
	X(case_7_7_10_code_3000, 3000, 1) \
	X(case_7_7_11_code_3999, 3999, 1) \
	X(case_7_7_12_code_4000, 4000, 1) \
	X(case_7_7_13_code_4999, 4999, 1) \
	X(case_7_9_1_code_0, 0, 0) \
	X(case_7_9_2_code_999, 999, 0) \
	X(case_7_9_3_code_1004, 1004, 0) \
	X(case_7_9_4_code_1005, 1005, 0) \
	X(case_7_9_5_code_1006, 1006, 0) \
	X(case_7_9_6_code_1015, 1015, 0) \
	X(case_7_9_7_code_1016, 1016, 0) \
	X(case_7_9_8_code_1100, 1100, 0) \
	X(case_7_9_9_code_2000, 2000, 0) \
	X(case_7_9_10_code_2999, 2999, 0) \
	X(case_7_13_1_code_5000, 5000, 0) \
	X(case_7_13_2_code_65535, 65535, 0)

#define X(name, code, valid) START_TEST(name) { close_code(code, valid); } END_TEST
CLOSE_CODE_CASES(X)
#undef X

/* ---- 9 limits ----------------------------------------------------------------------- */

static void big_message(int op, size_t len)
{
	struct wt_conn c;
	char *p = malloc(len);

	wt_fill(p, len, (unsigned)len + (unsigned)op, op == WT_TEXT);
	open_c(&c);
	WT_OK(&c, wt_send_frame(&c, op, 1, p, len));
	WT_EXPECT_MESSAGE_T(&c, op, p, len, 30000);
	close_clean(&c);
	wt_close(&c);
	free(p);
}

#define BIG_CASES(X) \
	X(case_9_1_1_text_64k, WT_TEXT, 64u << 10) \
	X(case_9_1_2_text_256k, WT_TEXT, 256u << 10) \
	X(case_9_1_3_text_1m_at_max, WT_TEXT, 1u << 20) \
	X(case_9_2_1_binary_64k, WT_BINARY, 64u << 10) \
	X(case_9_2_2_binary_256k, WT_BINARY, 256u << 10) \
	X(case_9_2_3_binary_1m_at_max, WT_BINARY, 1u << 20)

/* These run on a gateway started with --max-message 16777216. */
#define BIG16_CASES(X) \
	X(case_9_1_4_text_4m, WT_TEXT, 4u << 20) \
	X(case_9_1_5_text_8m, WT_TEXT, 8u << 20) \
	X(case_9_1_6_text_16m_at_max, WT_TEXT, 16u << 20) \
	X(case_9_2_4_binary_4m, WT_BINARY, 4u << 20) \
	X(case_9_2_5_binary_8m, WT_BINARY, 8u << 20) \
	X(case_9_2_6_binary_16m_at_max, WT_BINARY, 16u << 20)

#define X(name, op, len) START_TEST(name) { big_message(op, len); } END_TEST
BIG_CASES(X)
BIG16_CASES(X)
#undef X

/* One 1 MiB message in fragments of frag bytes, all in one buffer. */
static void fragmented_big(int op, size_t frag)
{
	size_t len = 1u << 20, nf = len / frag, off = 0;
	char *p = malloc(len);
	uint8_t *buf = malloc(len + nf * 14);
	struct wt_conn c;

	wt_fill(p, len, (unsigned)frag, op == WT_TEXT);
	for (size_t i = 0; i < nf; i++) {
		struct wt_frame_spec s = { .opcode = i ? WT_CONT : op, .fin = i + 1 == nf,
					   .payload = p + i * frag, .len = frag };
		size_t l;
		uint8_t *e = wt_frame_encode(&s, &l);

		memcpy(buf + off, e, l);
		off += l;
		free(e);
	}
	open_c(&c);
	WT_OK(&c, wt_send_raw(&c, buf, off));
	WT_EXPECT_MESSAGE_T(&c, op, p, len, 30000);
	close_clean(&c);
	wt_close(&c);
	free(buf);
	free(p);
}

#define FRAG_CASES(X) \
	X(case_9_3_1_text_1m_frags_64, WT_TEXT, 64) \
	X(case_9_3_2_text_1m_frags_256, WT_TEXT, 256) \
	X(case_9_3_3_text_1m_frags_1k, WT_TEXT, 1024) \
	X(case_9_3_4_text_1m_frags_4k, WT_TEXT, 4096) \
	X(case_9_3_5_text_1m_frags_16k, WT_TEXT, 16384) \
	X(case_9_3_6_text_1m_frags_64k, WT_TEXT, 65536) \
	X(case_9_3_7_text_1m_frags_256k, WT_TEXT, 262144) \
	X(case_9_3_8_text_1m_frags_1m, WT_TEXT, 1048576) \
	X(case_9_4_1_binary_1m_frags_64, WT_BINARY, 64) \
	X(case_9_4_2_binary_1m_frags_256, WT_BINARY, 256) \
	X(case_9_4_3_binary_1m_frags_1k, WT_BINARY, 1024) \
	X(case_9_4_4_binary_1m_frags_4k, WT_BINARY, 4096) \
	X(case_9_4_5_binary_1m_frags_16k, WT_BINARY, 16384) \
	X(case_9_4_6_binary_1m_frags_64k, WT_BINARY, 65536) \
	X(case_9_4_7_binary_1m_frags_256k, WT_BINARY, 262144) \
	X(case_9_4_8_binary_1m_frags_1m, WT_BINARY, 1048576)

#define X(name, op, frag) START_TEST(name) { fragmented_big(op, frag); } END_TEST
FRAG_CASES(X)
#undef X

/* One 1 MiB frame written in chops of chop bytes. */
static void chopped_big(int op, size_t chop)
{
	size_t len = 1u << 20, n;
	char *p = malloc(len);
	struct wt_conn c;

	wt_fill(p, len, (unsigned)chop + 5, op == WT_TEXT);
	struct wt_frame_spec s = { .opcode = op, .fin = 1, .payload = p, .len = len };
	uint8_t *b = wt_frame_encode(&s, &n);

	open_c(&c);
	WT_OK(&c, wt_send_chunked(&c, b, n, chop, 0));
	WT_EXPECT_MESSAGE_T(&c, op, p, len, 30000);
	close_clean(&c);
	wt_close(&c);
	free(b);
	free(p);
}

#define CHOP_CASES(X) \
	X(case_9_5_1_text_1m_chops_64, WT_TEXT, 64) \
	X(case_9_5_2_text_1m_chops_128, WT_TEXT, 128) \
	X(case_9_5_3_text_1m_chops_256, WT_TEXT, 256) \
	X(case_9_5_4_text_1m_chops_512, WT_TEXT, 512) \
	X(case_9_5_5_text_1m_chops_1k, WT_TEXT, 1024) \
	X(case_9_5_6_text_1m_chops_2k, WT_TEXT, 2048) \
	X(case_9_6_1_binary_1m_chops_64, WT_BINARY, 64) \
	X(case_9_6_2_binary_1m_chops_128, WT_BINARY, 128) \
	X(case_9_6_3_binary_1m_chops_256, WT_BINARY, 256) \
	X(case_9_6_4_binary_1m_chops_512, WT_BINARY, 512) \
	X(case_9_6_5_binary_1m_chops_1k, WT_BINARY, 1024) \
	X(case_9_6_6_binary_1m_chops_2k, WT_BINARY, 2048)

#define X(name, op, chop) START_TEST(name) { chopped_big(op, chop); } END_TEST
CHOP_CASES(X)
#undef X

/* 1000 messages of len bytes, each sent after the previous echo arrived. */
static void round_trips(int op, size_t len)
{
	struct wt_conn c;
	char *p = malloc(len ? len : 1);

	open_c(&c);
	for (int i = 0; i < 1000; i++) {
		wt_fill(p, len, (unsigned)i, op == WT_TEXT);
		WT_OK(&c, wt_send_frame(&c, op, 1, p, len));
		WT_EXPECT_MESSAGE(&c, op, p, len);
	}
	close_clean(&c);
	wt_close(&c);
	free(p);
}

#define RTT_CASES(X) \
	X(case_9_7_1_text_1000_x_0, WT_TEXT, 0) \
	X(case_9_7_2_text_1000_x_16, WT_TEXT, 16) \
	X(case_9_7_3_text_1000_x_64, WT_TEXT, 64) \
	X(case_9_7_4_text_1000_x_256, WT_TEXT, 256) \
	X(case_9_7_5_text_1000_x_1k, WT_TEXT, 1024) \
	X(case_9_7_6_text_1000_x_4k, WT_TEXT, 4096) \
	X(case_9_8_1_binary_1000_x_0, WT_BINARY, 0) \
	X(case_9_8_2_binary_1000_x_16, WT_BINARY, 16) \
	X(case_9_8_3_binary_1000_x_64, WT_BINARY, 64) \
	X(case_9_8_4_binary_1000_x_256, WT_BINARY, 256) \
	X(case_9_8_5_binary_1000_x_1k, WT_BINARY, 1024) \
	X(case_9_8_6_binary_1000_x_4k, WT_BINARY, 4096)

#define X(name, op, len) START_TEST(name) { round_trips(op, len); } END_TEST
RTT_CASES(X)
#undef X

START_TEST(case_9_9_1_frame_over_max_is_1009)
{
	size_t len = (1u << 20) + 1;
	char *p = calloc(1, len);
	struct fr f[] = { { WT_BINARY, 1, 0, p, len } };

	run_fail(f, N(f), ONE_WRITE, NULL, 0, 1009);
	free(p);
}
END_TEST

START_TEST(case_9_9_2_fragments_over_max_is_1009)
{
	size_t len = 512u << 10;
	char *p = malloc(len);
	struct fr f[] = { { WT_TEXT, 0, 0, p, len }, { WT_CONT, 0, 0, p, len },
			  { WT_CONT, 1, 0, "x", 1 } };

	memset(p, 'a', len);
	run_fail(f, N(f), ONE_WRITE, NULL, 0, 1009);
	free(p);
}
END_TEST

START_TEST(case_9_9_3_fail_fast_frame_header_over_max)
{
	struct wt_conn c;
	static char p[1024];
	struct wt_frame_spec s = { .opcode = WT_BINARY, .fin = 1, .payload = p, .len = sizeof(p),
				   .len_override = 2u << 20 };
	size_t n;
	uint8_t *b = wt_frame_encode(&s, &n);

	open_c(&c);
	/* A header announcing 2 MiB and 1 KiB of it: the rest never comes. */
	WT_OK(&c, wt_send_raw(&c, b, n));
	WT_EXPECT_CLOSE_EOF(&c, 1009);
	wt_close(&c);
	free(b);
}
END_TEST

START_TEST(case_9_9_4_fail_fast_fragment_total_over_max)
{
	struct wt_conn c;
	size_t len = 1u << 20;
	char *p = calloc(1, len);
	struct wt_frame_spec s = { .opcode = WT_CONT, .fin = 1, .payload = p, .len = 16,
				   .len_override = 4096 };
	size_t n;
	uint8_t *b = wt_frame_encode(&s, &n);

	open_c(&c);
	WT_OK(&c, wt_send_frame(&c, WT_BINARY, 0, p, len));
	/* The message is at the max; a second fragment announces 4 KiB more. */
	WT_OK(&c, wt_send_raw(&c, b, n));
	WT_EXPECT_CLOSE_EOF(&c, 1009);
	wt_close(&c);
	free(b);
	free(p);
}
END_TEST

START_TEST(case_9_10_1_many_small_frames_pipelined)
{
	/* 5000 one-byte text messages in one write, echoed in order. */
	struct wt_conn c;
	size_t off = 0;
	uint8_t *buf = malloc(5000 * 7);
	char ch;

	for (int i = 0; i < 5000; i++) {
		ch = (char)('a' + i % 26);
		struct wt_frame_spec s = { .opcode = WT_TEXT, .fin = 1, .payload = &ch, .len = 1 };
		size_t l;
		uint8_t *e = wt_frame_encode(&s, &l);

		memcpy(buf + off, e, l);
		off += l;
		free(e);
	}
	open_c(&c);
	WT_OK(&c, wt_send_raw(&c, buf, off));
	for (int i = 0; i < 5000; i++) {
		ch = (char)('a' + i % 26);
		WT_EXPECT_MESSAGE(&c, WT_TEXT, &ch, 1);
	}
	close_clean(&c);
	wt_close(&c);
	free(buf);
}
END_TEST

/* ---- suite ----------------------------------------------------------------------- */

#define ADD(name, ...) tcase_add_test(tc, name);

static TCase *section(Suite *s, const char *name, void (*setup)(void), int timeout)
{
	TCase *tc = tcase_create(name);

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, timeout);
	suite_add_tcase(s, tc);
	return tc;
}

static Suite *conformance_suite(void)
{
	Suite *s = suite_create("conformance");
	TCase *tc;

	tc = section(s, "1_framing", setup_default, 30);
	FRAMING_CASES(ADD)
	tcase_add_test(tc, case_1_3_1_unmasked_frame);
	tcase_add_test(tc, case_1_3_2_length_msb_set);

	tc = section(s, "2_pings", setup_default, 30);
	tcase_add_test(tc, case_2_1_ping_empty);
	tcase_add_test(tc, case_2_2_ping_text_payload);
	tcase_add_test(tc, case_2_3_ping_binary_payload);
	tcase_add_test(tc, case_2_4_ping_125);
	tcase_add_test(tc, case_2_5_ping_126_is_1002);
	tcase_add_test(tc, case_2_6_ping_125_octet_wise);
	tcase_add_test(tc, case_2_7_unsolicited_pong_empty);
	tcase_add_test(tc, case_2_8_unsolicited_pong_payload);
	tcase_add_test(tc, case_2_9_unsolicited_pong_then_ping);
	tcase_add_test(tc, case_2_10_ten_pings);
	tcase_add_test(tc, case_2_11_ten_pings_octet_wise);

	tc = section(s, "3_reserved_bits", setup_default, 30);
	tcase_add_test(tc, case_3_1_text_rsv1);
	tcase_add_test(tc, case_3_2_text_rsv2_after_echo);
	tcase_add_test(tc, case_3_3_text_rsv3_frame_wise);
	tcase_add_test(tc, case_3_4_text_rsv4_octet_wise);
	tcase_add_test(tc, case_3_5_binary_rsv5);
	tcase_add_test(tc, case_3_6_ping_rsv6);
	tcase_add_test(tc, case_3_7_close_rsv7);

	tc = section(s, "4_opcodes", setup_default, 30);
	OPCODE_CASES(ADD)

	tc = section(s, "5_fragmentation", setup_default, 30);
	tcase_add_test(tc, case_5_1_ping_fragmented);
	tcase_add_test(tc, case_5_2_pong_fragmented);
	tcase_add_test(tc, case_5_3_text_two_fragments);
	tcase_add_test(tc, case_5_4_text_two_fragments_frame_wise);
	tcase_add_test(tc, case_5_5_text_two_fragments_octet_wise);
	tcase_add_test(tc, case_5_6_ping_between_fragments);
	tcase_add_test(tc, case_5_7_ping_between_fragments_frame_wise);
	tcase_add_test(tc, case_5_8_ping_between_fragments_octet_wise);
	tcase_add_test(tc, case_5_9_cont_fin_without_start);
	tcase_add_test(tc, case_5_10_cont_fin_without_start_frame_wise);
	tcase_add_test(tc, case_5_11_cont_fin_without_start_octet_wise);
	tcase_add_test(tc, case_5_12_cont_nofin_without_start);
	tcase_add_test(tc, case_5_13_cont_nofin_without_start_frame_wise);
	tcase_add_test(tc, case_5_14_cont_nofin_without_start_octet_wise);
	tcase_add_test(tc, case_5_15_cont_after_finished_message);
	tcase_add_test(tc, case_5_16_cont_text_cont_twice);
	tcase_add_test(tc, case_5_17_cont_fin_text_cont_twice);
	tcase_add_test(tc, case_5_18_text_started_then_new_text);
	tcase_add_test(tc, case_5_18b_binary_started_then_new_binary);
	tcase_add_test(tc, case_5_19_fragments_pings_and_pause);
	tcase_add_test(tc, case_5_20_fragments_pings_and_pause_frame_wise);

	tc = section(s, "6_utf8", setup_default, 30);
	tcase_add_test(tc, case_6_1_1_empty_text);
	tcase_add_test(tc, case_6_1_2_three_empty_fragments);
	tcase_add_test(tc, case_6_1_3_empty_fragments_around_payload);
	tcase_add_test(tc, case_6_2_1_valid_utf8_one_frame);
	tcase_add_test(tc, case_6_2_2_valid_utf8_two_fragments_on_boundary);
	tcase_add_test(tc, case_6_2_3_valid_utf8_one_byte_fragments);
	tcase_add_test(tc, case_6_2_4_kosme_one_byte_fragments);
	tcase_add_test(tc, case_6_2_5_valid_utf8_octet_wise_chops);
	tcase_add_test(tc, case_6_3_1_invalid_utf8_one_frame);
	tcase_add_test(tc, case_6_3_2_invalid_utf8_one_byte_fragments);
	tcase_add_test(tc, case_6_4_1_fail_fast_invalid_fragment);
	tcase_add_test(tc, case_6_4_2_fail_fast_sequence_split_over_fragments);
	tcase_add_test(tc, case_6_4_3_fail_fast_inside_one_frame_chunks);
	tcase_add_test(tc, case_6_4_4_fail_fast_inside_one_frame_split_sequence);
	UTF8_CASES(ADD)

	tc = section(s, "7_close", setup_default, 30);
	tcase_add_test(tc, case_7_1_1_echo_then_close);
	tcase_add_test(tc, case_7_1_2_close_twice);
	tcase_add_test(tc, case_7_1_3_close_then_ping);
	tcase_add_test(tc, case_7_1_4_close_then_text);
	tcase_add_test(tc, case_7_1_5_close_inside_fragmented_message);
	tcase_add_test(tc, case_7_1_6_large_message_then_close_then_ping);
	tcase_add_test(tc, case_7_3_1_close_empty);
	tcase_add_test(tc, case_7_3_2_close_one_byte);
	tcase_add_test(tc, case_7_3_3_close_1000);
	tcase_add_test(tc, case_7_3_4_close_1000_reason);
	tcase_add_test(tc, case_7_3_5_close_1000_reason_123);
	tcase_add_test(tc, case_7_3_6_close_1000_reason_124);
	tcase_add_test(tc, case_7_5_1_close_reason_invalid_utf8);
	tcase_add_test(tc, case_7_5_2_close_reason_truncated_utf8);
	CLOSE_CODE_CASES(ADD)

	tc = section(s, "9_limits", setup_default, 60);
	BIG_CASES(ADD)
	FRAG_CASES(ADD)
	CHOP_CASES(ADD)
	RTT_CASES(ADD)
	tcase_add_test(tc, case_9_9_1_frame_over_max_is_1009);
	tcase_add_test(tc, case_9_9_2_fragments_over_max_is_1009);
	tcase_add_test(tc, case_9_9_3_fail_fast_frame_header_over_max);
	tcase_add_test(tc, case_9_9_4_fail_fast_fragment_total_over_max);
	tcase_add_test(tc, case_9_10_1_many_small_frames_pipelined);

	tc = section(s, "9_limits_16m", setup_16mib, 60);
	BIG16_CASES(ADD)
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(conformance_suite());
	int failed;

	srunner_run_all(sr, CK_ENV);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
