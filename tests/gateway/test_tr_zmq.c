/* Tests of gateway/tr_zmq.c: the zmq transport's window of unacknowledged records, its
 * ACKs and its salvage, through a real ROUTER and DEALER (inproc). */
#include "gateway/tr_zmq.h"
#include "wsgw/protocol.h"

#include <check.h>
#include <endian.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#define REQUIRE_MSG(cond, ...) do { if (!(cond)) ck_abort_msg(__VA_ARGS__); } while (0)

static void *ctx, *router, *dealer;
static const char IDENT[] = "worker-1";
static struct tr *t;
static int sent_flag;

/* A ROUTER as control.c has it (mandatory routing), a DEALER attached to it, and a
 * transport to the dealer with the window given. */
static void pair_up(uint32_t records, uint64_t bytes)
{
	int one = 1;
	char ep[64];
	static int seq;

	snprintf(ep, sizeof(ep), "inproc://trzmq-%d", seq++);
	ctx = zmq_ctx_new();
	router = zmq_socket(ctx, ZMQ_ROUTER);
	dealer = zmq_socket(ctx, ZMQ_DEALER);
	ck_assert(router && dealer);
	ck_assert_int_eq(zmq_setsockopt(router, ZMQ_ROUTER_MANDATORY, &one, sizeof(one)), 0);
	ck_assert_int_eq(zmq_bind(router, ep), 0);
	ck_assert_int_eq(zmq_setsockopt(dealer, ZMQ_ROUTING_ID, IDENT, strlen(IDENT)), 0);
	ck_assert_int_eq(zmq_connect(dealer, ep), 0);
	/* The router knows the dealer once it has heard from it, as with a worker's HELLO. */
	ck_assert_int_eq(zmq_send(dealer, "HELLO", 5, 0), 5);
	char id[32], body[8];
	ck_assert_int_eq(zmq_recv(router, id, sizeof(id), 0), (int)strlen(IDENT));
	ck_assert_int_eq(zmq_recv(router, body, sizeof(body), 0), 5);
	struct tr_zmq_window win = { records, bytes };
	ck_assert_int_eq(tr_zmq_new(router, (const uint8_t *)IDENT, strlen(IDENT), &sent_flag, &win, &t), 0);
}

static void pair_down(void)
{
	int zero = 0;
	t->ops->free(t); /* with whatever it still keeps: the sanitizer run sees no leak */
	zmq_setsockopt(router, ZMQ_LINGER, &zero, sizeof(zero));
	zmq_setsockopt(dealer, ZMQ_LINGER, &zero, sizeof(zero));
	zmq_close(router);
	zmq_close(dealer);
	zmq_ctx_term(ctx);
}

static int push(uint16_t type, uint64_t conn, const void *p, size_t n)
{
	struct tr_rec r = { .type = type, .conn = conn, .a = p, .na = n };
	return t->ops->push(t, &r);
}

static int push_msg(uint64_t conn, size_t n)
{
	static char payload[1 << 16];
	ck_assert_uint_le(n, sizeof(payload));
	snprintf(payload, sizeof(payload), "m%llu", (unsigned long long)conn);
	return push(WSGW_MESSAGE, conn, payload, n);
}

/* The next whole message on the dealer (within 5 s): its verb, and its id frame if any. */
static void next_on_dealer(char *verb, size_t cap, uint64_t *conn)
{
	zmq_pollitem_t it = { .socket = dealer, .events = ZMQ_POLLIN };
	ck_assert_int_eq(zmq_poll(&it, 1, 5000), 1);
	int more = 1, i = 0;
	*conn = 0;
	while (more) {
		zmq_msg_t m;
		zmq_msg_init(&m);
		ck_assert_int_ge(zmq_msg_recv(&m, dealer, 0), 0);
		size_t n = zmq_msg_size(&m);
		if (i == 0) {
			ck_assert_uint_lt(n, cap);
			memcpy(verb, zmq_msg_data(&m), n);
			verb[n] = 0;
		} else if (i == 1 && n == 8) {
			uint64_t be;
			memcpy(&be, zmq_msg_data(&m), 8);
			*conn = be64toh(be);
		}
		more = zmq_msg_more(&m);
		zmq_msg_close(&m);
		i++;
	}
}

static void expect_on_dealer(const char *want_verb, uint64_t want_conn)
{
	char verb[16];
	uint64_t conn;
	next_on_dealer(verb, sizeof(verb), &conn);
	REQUIRE_MSG(!strcmp(verb, want_verb) && conn == want_conn, "got %s %llu, want %s %llu", verb,
		    (unsigned long long)conn, want_verb, (unsigned long long)want_conn);
}

/* What salvage gives, in order. */
struct got {
	int n;
	uint16_t type[64];
	uint64_t conn[64];
	char body[64][32];
	uint32_t len[64];
};

static void collect(void *arg, const struct shm_rec *r)
{
	struct got *g = arg;
	ck_assert_int_lt(g->n, 64);
	g->type[g->n] = r->type;
	g->conn[g->n] = r->conn;
	g->len[g->n] = r->len;
	snprintf(g->body[g->n], sizeof(g->body[0]), "%.*s", (int)r->len, (const char *)r->payload);
	g->n++;
}

START_TEST(test_window_of_records)
{
	pair_up(4, 1 << 20);
	ck_assert_ptr_nonnull(t->ops->ack);
	ck_assert_ptr_nonnull(t->ops->awaits_input);
	for (uint64_t i = 1; i <= 4; i++)
		ck_assert_int_eq(push_msg(i, 8), 0);
	ck_assert_int_eq(sent_flag, 1);
	ck_assert_int_eq(t->ops->awaits_input(t), 0);
	/* The fifth waits for an ACK: held by the caller, and no need to poll for room. */
	ck_assert_int_eq(push_msg(5, 8), -EAGAIN);
	ck_assert_int_eq(t->ops->awaits_input(t), 1);
	/* Every counted verb counts. */
	ck_assert_int_eq(push(WSGW_GONE, 5, NULL, 0), -EAGAIN);
	ck_assert_int_eq(push(WSGW_OPEN, 5, NULL, 0), -EAGAIN);
	ck_assert_int_eq(push(WSGW_CLOSE, 5, "\x03\xe8", 2), -EAGAIN);
	/* ERROR is neither counted nor kept: it passes a full window. */
	ck_assert_int_eq(push(WSGW_ERROR, 0, "bad", 3), 0);
	for (uint64_t i = 1; i <= 4; i++)
		expect_on_dealer("MESSAGE", i);
	expect_on_dealer("ERROR", 0);

	/* An ACK of 2 makes room for 2. */
	ck_assert_int_eq(t->ops->ack(t, 2), 0);
	ck_assert_int_eq(push_msg(5, 8), 0);
	ck_assert_int_eq(t->ops->awaits_input(t), 0);
	ck_assert_int_eq(push(WSGW_CLOSE, 6, "\x03\xe8", 2), 0);
	ck_assert_int_eq(push_msg(7, 8), -EAGAIN);
	/* More than was sent (6 counted so far): refused, and nothing changed. */
	ck_assert_int_eq(t->ops->ack(t, 7), -ERANGE);
	ck_assert_int_eq(t->ops->ack(t, UINT64_MAX), -ERANGE);
	ck_assert_int_eq(push_msg(7, 8), -EAGAIN);
	/* Repeated or older ACKs change nothing: cumulative counts may arrive merged. */
	ck_assert_int_eq(t->ops->ack(t, 2), 0);
	ck_assert_int_eq(t->ops->ack(t, 1), 0);
	ck_assert_int_eq(t->ops->ack(t, 0), 0);
	ck_assert_int_eq(push_msg(7, 8), -EAGAIN);
	/* All of it. */
	ck_assert_int_eq(t->ops->ack(t, 6), 0);
	struct got g = { 0 };
	t->ops->salvage(t, collect, &g);
	ck_assert_int_eq(g.n, 0);
	for (uint64_t i = 7; i <= 10; i++)
		ck_assert_int_eq(push_msg(i, 8), 0);
	ck_assert_int_eq(push_msg(11, 8), -EAGAIN);
	expect_on_dealer("MESSAGE", 5);
	expect_on_dealer("CLOSE", 6);
	for (uint64_t i = 7; i <= 10; i++)
		expect_on_dealer("MESSAGE", i);
	pair_down();
}
END_TEST

START_TEST(test_window_of_bytes)
{
	pair_up(1000, 1000);
	ck_assert_int_eq(push_msg(1, 600), 0);
	ck_assert_int_eq(push_msg(2, 401), -EAGAIN); /* 1001 bytes */
	ck_assert_int_eq(t->ops->awaits_input(t), 1);
	ck_assert_int_eq(push_msg(2, 400), 0);       /* exactly 1000 */
	ck_assert_int_eq(push_msg(3, 0), 0);         /* no bytes: only the count binds */
	ck_assert_int_eq(push_msg(4, 1), -EAGAIN);
	ck_assert_int_eq(t->ops->ack(t, 1), 0);
	ck_assert_int_eq(push_msg(4, 600), 0);
	ck_assert_int_eq(t->ops->ack(t, 4), 0);
	/* One record larger than the whole window goes through an empty one, alone. */
	ck_assert_int_eq(push_msg(5, 5000), 0);
	ck_assert_int_eq(push_msg(6, 1), -EAGAIN);
	ck_assert_int_eq(push(WSGW_GONE, 6, NULL, 0), -EAGAIN); /* over-full, even for no bytes */
	ck_assert_int_eq(t->ops->ack(t, 4), 0);
	ck_assert_int_eq(push_msg(6, 1), -EAGAIN);
	ck_assert_int_eq(t->ops->ack(t, 5), 0);
	ck_assert_int_eq(push_msg(6, 1), 0);
	for (uint64_t i = 1; i <= 6; i++)
		expect_on_dealer("MESSAGE", i);
	pair_down();
}
END_TEST

START_TEST(test_salvage_gives_the_unacknowledged_in_order)
{
	pair_up(64, 1 << 20);
	struct got g = { 0 };
	/* Nothing sent: an ACK of 0 is fine, of 1 is not. */
	ck_assert_int_eq(t->ops->ack(t, 0), 0);
	ck_assert_int_eq(t->ops->ack(t, 1), -ERANGE);
	ck_assert_int_eq(push(WSGW_OPEN, 1, "", 0), 0);
	ck_assert_int_eq(push(WSGW_MESSAGE, 1, "one", 3), 0);
	ck_assert_int_eq(push(WSGW_ERROR, 0, "not kept", 8), 0);
	/* A body in two parts (a CLOSE: code, then reason) is kept whole. */
	struct tr_rec two = { .type = WSGW_MESSAGE, .flags = WSGW_F_BINARY, .conn = 2,
			      .a = "tw", .na = 2, .b = "o", .nb = 1 };
	ck_assert_int_eq(t->ops->push(t, &two), 0);
	struct tr_rec cl = { .type = WSGW_CLOSE, .conn = 1, .a = "\x03\xe9", .na = 2, .b = "bye", .nb = 3 };
	ck_assert_int_eq(t->ops->push(t, &cl), 0);
	ck_assert_int_eq(push(WSGW_GONE, 9, NULL, 0), 0);
	ck_assert_int_eq(t->ops->ack(t, 1), 0); /* the OPEN */
	t->ops->salvage(t, collect, &g);
	ck_assert_int_eq(g.n, 4);
	ck_assert_uint_eq(g.type[0], WSGW_MESSAGE);
	ck_assert_str_eq(g.body[0], "one");
	ck_assert_uint_eq(g.type[1], WSGW_MESSAGE);
	ck_assert_uint_eq(g.conn[1], 2);
	ck_assert_str_eq(g.body[1], "two");
	ck_assert_uint_eq(g.type[2], WSGW_CLOSE);
	ck_assert_uint_eq(g.len[2], 5);
	ck_assert_str_eq(g.body[2] + 2, "bye");
	ck_assert_uint_eq(g.type[3], WSGW_GONE);
	ck_assert_uint_eq(g.conn[3], 9);
	/* Salvage only reads: the same again, and an ACK still frees. */
	memset(&g, 0, sizeof(g));
	t->ops->salvage(t, collect, &g);
	ck_assert_int_eq(g.n, 4);
	ck_assert_int_eq(t->ops->ack(t, 3), 0);
	memset(&g, 0, sizeof(g));
	t->ops->salvage(t, collect, &g);
	ck_assert_int_eq(g.n, 2);
	ck_assert_uint_eq(g.type[0], WSGW_CLOSE);
	pair_down(); /* frees the two still kept */
}
END_TEST

START_TEST(test_unsent_is_not_counted)
{
	pair_up(4, 1 << 20);
	/* A transport to a peer the router does not know: the send fails with EHOSTUNREACH,
	 * reported as "no room now" — and that is not the window's doing, so it may be polled. */
	struct tr *nobody;
	int flag = 0;
	struct tr_zmq_window win = { 4, 1 << 20 };
	ck_assert_int_eq(tr_zmq_new(router, (const uint8_t *)"nobody", 6, &flag, &win, &nobody), 0);
	struct tr_rec r = { .type = WSGW_MESSAGE, .conn = 1, .a = "x", .na = 1 };
	ck_assert_int_eq(nobody->ops->push(nobody, &r), -EAGAIN);
	ck_assert_int_eq(nobody->ops->awaits_input(nobody), 0);
	ck_assert_int_eq(nobody->ops->ack(nobody, 1), -ERANGE);
	struct got g = { 0 };
	nobody->ops->salvage(nobody, collect, &g);
	ck_assert_int_eq(g.n, 0);
	nobody->ops->free(nobody);
	pair_down();
}
END_TEST

/* The worker's side, as the libraries do it: count what arrives, ACK every 16 handled and
 * whenever there is nothing to read. 20000 records through a window of 64 arrive once
 * each, in order, and the gateway's side never keeps more than the window. */
START_TEST(test_acked_stream_through_a_small_window)
{
	enum { N = 20000, WIN = 64 };
	pair_up(WIN, 1 << 20);
	uint64_t pushed = 0, got = 0, acked = 0, refused = 0;
	int spins = 0;
	while (got < N) {
		ck_assert_int_lt(++spins, 10 * N);
		while (pushed < N) {
			int rc = push_msg(pushed + 1, 16);
			if (rc == -EAGAIN) {
				refused++;
				ck_assert_int_eq(t->ops->awaits_input(t), 1);
				break;
			}
			ck_assert_int_eq(rc, 0);
			pushed++;
			ck_assert_uint_le(pushed - acked, WIN);
		}
		/* The worker reads one, or acknowledges when it has nothing to read. */
		zmq_pollitem_t it = { .socket = dealer, .events = ZMQ_POLLIN };
		if (zmq_poll(&it, 1, got - acked ? 0 : 5000) == 1) {
			char verb[16];
			uint64_t conn;
			next_on_dealer(verb, sizeof(verb), &conn);
			ck_assert_str_eq(verb, "MESSAGE");
			ck_assert_uint_eq(conn, got + 1);
			got++;
			if (got - acked < 16)
				continue;
		}
		acked = got; /* the gateway reads the ACK where control.c would */
		ck_assert_int_eq(t->ops->ack(t, acked), 0);
	}
	ck_assert_uint_eq(pushed, N);
	ck_assert_uint_gt(refused, 0);
	printf("acked stream: %d records through a window of %d, %llu refusals\n", N, WIN,
	       (unsigned long long)refused);
	pair_down();
}
END_TEST

int main(void)
{
	Suite *s = suite_create("tr_zmq");
	TCase *tc = tcase_create("window");

	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_window_of_records);
	tcase_add_test(tc, test_window_of_bytes);
	tcase_add_test(tc, test_salvage_gives_the_unacknowledged_in_order);
	tcase_add_test(tc, test_unsent_is_not_counted);
	tcase_add_test(tc, test_acked_stream_through_a_small_window);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
