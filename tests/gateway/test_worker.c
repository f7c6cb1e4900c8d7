/* Tests of gateway/worker.c over the real shm transport (gateway/tr_shm.c): the to-worker
 * ring is read back as the worker reads it, from its own mapping of the segment. */
#include "gateway/tr_shm.h"
#include "gateway/worker.h"
#include "shm/bell.h"
#include "shm/segment.h"
#include "wsgw/protocol.h"

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define REQUIRE(cond) do { if (!(cond)) ck_abort_msg("%s:%d: %s", __FILE__, __LINE__, #cond); } while (0)

#define RING 4096u /* each ring: records of up to 2032 bytes */

static struct shm_bell *bell;
static struct worker *w;
static struct tr_shm_info info;
static struct shm_seg *wseg;    /* the worker's mapping */
static struct shm_ring wring;   /* the to-worker ring, as its consumer */

static struct worker *worker_new(unsigned id, uint64_t ring_bytes)
{
	struct tr_shm_opts o = { .worker_id = id, .ring_bytes = ring_bytes, .mode = 0600,
				 .bell = shm_bell_doorbell(bell) };
	struct worker *x = calloc(1, sizeof(*x));

	ck_assert_ptr_nonnull(x);
	x->id = id;
	x->state = WK_ALIVE;
	ck_assert_int_eq(tr_shm_new(&o, &x->tr, &info), 0);
	return x;
}

static void setup(void)
{
	ck_assert_int_eq(shm_bell_create(&bell), 0);
	w = worker_new(1, RING);
	ck_assert_uint_eq(info.to_worker_bytes, RING);
	ck_assert_uint_eq(info.to_gateway_bytes, RING);
	/* The worker's side: the segment as the descriptor the attach socket would pass. */
	ck_assert_int_eq(shm_seg_attach_fd(tr_shm_fd(w->tr), &wseg), 0);
	ck_assert_int_eq(shm_seg_ring(wseg, SHM_SEG_TO_WORKER, SHM_RING_CONSUMER, &wring), 0);
}

static void teardown(void)
{
	shm_seg_close(wseg);
	wk_free(w);
	shm_bell_close(bell);
}

/* Record i of a test's sequence: its size varies, its bytes say who it is. */
static size_t rec_len(unsigned i)
{
	return (size_t[]){ 500, 3, 1200, 0, 64, 900, 17 }[i % 7];
}

static void rec_fill(uint8_t *p, unsigned i)
{
	for (size_t k = 0; k < rec_len(i); k++)
		p[k] = (uint8_t)(i * 7 + k);
}

/* Pushes record i (as a header part and a body part, as pool.c's CLOSE does). */
static int push(unsigned i)
{
	static uint8_t buf[4096];
	size_t n = rec_len(i), split = n / 3;

	rec_fill(buf, i);
	struct tr_rec r = { .type = (uint16_t)(i % 3 ? WSGW_MESSAGE : WSGW_CLOSE),
			    .flags = (uint16_t)(i & 1), .conn = 1000 + i,
			    .a = buf, .na = split, .b = buf + split, .nb = n - split };
	return wk_push(w, &r);
}

static void check_rec(const struct shm_rec *r, unsigned i)
{
	static uint8_t want[4096];
	REQUIRE(r->conn == 1000 + i);
	REQUIRE(r->type == (i % 3 ? WSGW_MESSAGE : WSGW_CLOSE));
	REQUIRE(r->flags == (i & 1));
	REQUIRE(r->len == rec_len(i));
	rec_fill(want, i);
	REQUIRE(memcmp(r->payload, want, r->len) == 0);
}

/* Publishes what was pushed, then reads every visible record as the worker; checks they
 * continue the sequence at *next. Returns how many. */
static unsigned consume(unsigned *next)
{
	struct shm_ring_iter it;
	struct shm_rec r;
	unsigned n = 0;
	int rc;

	w->tr->ops->flush(w->tr);
	ck_assert_int_ge(shm_ring_peek(&wring, &it), 0);
	while ((rc = shm_ring_next(&it, &r)) == 1) {
		check_rec(&r, *next);
		(*next)++;
		n++;
	}
	ck_assert_int_eq(rc, 0);
	shm_ring_release(&wring, &it);
	return n;
}

START_TEST(test_push_in_order_across_a_full_ring)
{
	unsigned pushed = 0, next = 0;

	/* Fill the ring until a record is held... */
	while (!w->held.head) {
		REQUIRE(pushed < 100);
		ck_assert_int_eq(push(pushed++), 0);
	}
	unsigned in_ring = pushed - 1;
	/* ...then more, small ones included: they would fit, but they must wait behind it. */
	for (int k = 0; k < 20; k++)
		ck_assert_int_eq(push(pushed++), 0);
	ck_assert_uint_eq(w->held.n, pushed - in_ring);
	ck_assert_uint_eq(consume(&next), in_ring);

	/* Retry moves them in order while they fit; 1 only once none is left. */
	int rc, rounds = 0;
	while ((rc = wk_retry(w)) == 0) {
		REQUIRE(w->held.n > 0);
		REQUIRE(++rounds < 100);
		unsigned before = next;
		consume(&next);
		REQUIRE(next > before);
		/* New records keep going behind the held ones. */
		if (rounds == 1)
			ck_assert_int_eq(push(pushed++), 0);
	}
	ck_assert_int_eq(rc, 1);
	ck_assert_ptr_null(w->held.head);
	ck_assert_ptr_null(w->held.tail);
	ck_assert_uint_eq(w->held.n, 0);
	consume(&next);
	ck_assert_uint_eq(next, pushed);
	ck_assert_uint_gt(rounds, 0);

	/* Nothing held: retry has nothing to report, and pushes go straight to the ring. */
	ck_assert_int_eq(wk_retry(w), 0);
	ck_assert_int_eq(push(pushed++), 0);
	ck_assert_ptr_null(w->held.head);
	ck_assert_uint_eq(consume(&next), 1);
}
END_TEST

START_TEST(test_emsgsize_before_holding)
{
	static uint8_t big[RING];
	uint64_t max = w->tr->max_len;

	ck_assert_uint_eq(max, RING / 2 - 16);
	struct tr_rec r = { .type = WSGW_MESSAGE, .conn = 1, .a = big, .na = max - 10, .b = big,
			    .nb = 11 };
	ck_assert_int_eq(wk_push(w, &r), -EMSGSIZE);
	ck_assert_ptr_null(w->held.head);

	/* With records held, a record that can never fit is still refused, not held. */
	unsigned pushed = 0, next = 0;
	while (!w->held.head)
		ck_assert_int_eq(push(pushed++), 0);
	size_t held = w->held.n;
	ck_assert_int_eq(wk_push(w, &r), -EMSGSIZE);
	ck_assert_uint_eq(w->held.n, held);
	w->state = WK_DYING;
	ck_assert_int_eq(wk_push(w, &r), -EMSGSIZE);
	ck_assert_uint_eq(w->held.n, held);
	w->state = WK_ALIVE;

	/* Exactly the largest is taken, once there is room. */
	r.nb = 10;
	ck_assert_int_eq(wk_push(w, &r), 0);
	ck_assert_uint_eq(w->held.n, held + 1);
	consume(&next);
	while (wk_retry(w) == 0)
		consume(&next);
	struct shm_ring_iter it;
	struct shm_rec rec;
	w->tr->ops->flush(w->tr);
	ck_assert_int_gt(shm_ring_peek(&wring, &it), 0);
	while (next < pushed) {
		ck_assert_int_eq(shm_ring_next(&it, &rec), 1);
		check_rec(&rec, next++);
	}
	ck_assert_int_eq(shm_ring_next(&it, &rec), 1);
	ck_assert_uint_eq(rec.len, max);
	ck_assert_int_eq(shm_ring_next(&it, &rec), 0);
	shm_ring_release(&wring, &it);
}
END_TEST

START_TEST(test_dying_worker_holds_everything)
{
	unsigned next = 0;

	ck_assert_int_eq(push(0), 0);
	w->state = WK_DYING;
	for (unsigned i = 1; i < 6; i++)
		ck_assert_int_eq(push(i), 0);
	/* Only what was pushed while alive reached the ring. */
	ck_assert_uint_eq(consume(&next), 1);
	ck_assert_uint_eq(w->held.n, 5);
	unsigned i = 1;
	for (struct wk_held *h = w->held.head; h; h = h->next, i++) {
		struct shm_rec r = { .payload = h->body, .len = h->len, .type = h->type,
				     .flags = h->flags, .conn = h->conn };
		check_rec(&r, i);
	}
	ck_assert_uint_eq(i, 6);
	ck_assert_ptr_eq(w->held.tail->next, NULL);
}
END_TEST

static unsigned salvaged, salvage_next;

static void on_salvage(void *arg, const struct shm_rec *r)
{
	(void)arg;
	check_rec(r, salvage_next++);
	salvaged++;
}

START_TEST(test_salvage_returns_unconsumed_in_order)
{
	unsigned next = 0, pushed = 0;

	for (; pushed < 4; pushed++)
		ck_assert_int_eq(push(pushed), 0);
	/* The worker consumed these four. */
	ck_assert_uint_eq(consume(&next), 4);
	/* Then more were pushed, one batch not even published when it died. */
	for (; pushed < 7; pushed++)
		ck_assert_int_eq(push(pushed), 0);
	w->tr->ops->flush(w->tr);
	for (; pushed < 9; pushed++)
		ck_assert_int_eq(push(pushed), 0);
	salvage_next = 4;
	w->tr->ops->salvage(w->tr, on_salvage, NULL);
	ck_assert_uint_eq(salvaged, 5);
	ck_assert_uint_eq(salvage_next, 9);
}
END_TEST

START_TEST(test_broken_transport)
{
	unsigned pushed = 0;

	/* Fill the ring, so the next push must look at the worker's tail again... */
	while (!w->held.head)
		ck_assert_int_eq(push(pushed++), 0);
	wk_list_clear(&w->held);
	/* ...which the worker corrupted: past the head it can have seen. */
	atomic_store(&wring.ctl->tail, (uint64_t)1 << 40);
	static uint8_t big[RING / 2];
	struct tr_rec r = { .type = WSGW_MESSAGE, .conn = 4242, .a = big, .na = w->tr->max_len };
	ck_assert_int_eq(wk_push(w, &r), -EIO);
	/* The record is held, for the hand-over the caller starts by failing the worker. */
	ck_assert_uint_eq(w->held.n, 1);
	ck_assert_uint_eq(w->held.tail->conn, 4242);
	ck_assert_uint_eq(w->held.tail->len, w->tr->max_len);
	ck_assert_int_eq(wk_retry(w), -EIO);
	ck_assert_uint_eq(w->held.n, 1);
}
END_TEST

START_TEST(test_wait_and_take)
{
	uint64_t *ids;
	size_t n;

	wk_take_waiting(w, &ids, &n);
	ck_assert_ptr_null(ids);
	ck_assert_uint_eq(n, 0);
	/* Past the first allocation, to see the ids survive growing. */
	for (uint64_t i = 0; i < 300; i++)
		ck_assert_int_eq(wk_wait(w, 5000 + i), 0);
	ck_assert_uint_eq(w->n_waiting, 300);
	wk_take_waiting(w, &ids, &n);
	ck_assert_uint_eq(n, 300);
	for (uint64_t i = 0; i < 300; i++)
		REQUIRE(ids[i] == 5000 + i);
	free(ids);
	/* Taken means none left, and the worker can collect anew. */
	ck_assert_uint_eq(w->n_waiting, 0);
	ck_assert_ptr_null(w->waiting);
	wk_take_waiting(w, &ids, &n);
	ck_assert_ptr_null(ids);
	ck_assert_uint_eq(n, 0);
	ck_assert_int_eq(wk_wait(w, 9), 0);
	wk_take_waiting(w, &ids, &n);
	ck_assert_uint_eq(n, 1);
	ck_assert_uint_eq(ids[0], 9);
	free(ids);
	/* What is still waiting is freed with the worker (ASan would see a leak). */
	ck_assert_int_eq(wk_wait(w, 10), 0);
}
END_TEST

START_TEST(test_list_helpers)
{
	struct wk_list l = { 0 };
	static const char a[] = "head:", b[] = "body";

	ck_assert_ptr_null(wk_list_pop(&l));
	for (unsigned i = 0; i < 5; i++) {
		struct tr_rec r = { .type = WSGW_OPEN, .flags = (uint16_t)i, .conn = 70 + i,
				    .a = a, .na = 5, .b = i % 2 ? b : NULL, .nb = i % 2 ? 4 : 0 };
		struct wk_held *h = wk_held_new(&r);
		ck_assert_ptr_nonnull(h);
		ck_assert_uint_eq(h->len, i % 2 ? 9 : 5);
		ck_assert_mem_eq(h->body, i % 2 ? "head:body" : "head:", h->len);
		wk_list_append(&l, h);
		ck_assert_uint_eq(l.n, i + 1);
		ck_assert_ptr_eq(l.tail, h);
	}
	for (unsigned i = 0; i < 3; i++) {
		struct wk_held *h = wk_list_pop(&l);
		ck_assert_ptr_nonnull(h);
		ck_assert_uint_eq(h->conn, 70 + i);
		ck_assert_uint_eq(h->type, WSGW_OPEN);
		ck_assert_uint_eq(h->flags, i);
		ck_assert_ptr_null(h->next);
		free(h);
	}
	ck_assert_uint_eq(l.n, 2);
	struct wk_held *h = wk_list_pop(&l);
	free(h);
	h = wk_list_pop(&l);
	ck_assert_uint_eq(h->conn, 74);
	ck_assert_ptr_null(l.head);
	ck_assert_ptr_null(l.tail);
	ck_assert_uint_eq(l.n, 0);
	/* An emptied list takes records again. */
	wk_list_append(&l, h);
	ck_assert_ptr_eq(l.head, h);
	ck_assert_ptr_eq(l.tail, h);

	struct tr_rec empty = { .type = WSGW_GONE, .conn = 1 };
	wk_list_append(&l, wk_held_new(&empty));
	ck_assert_uint_eq(l.tail->len, 0);
	ck_assert_uint_eq(l.n, 2);
	wk_list_clear(&l);
	ck_assert_ptr_null(l.head);
	ck_assert_ptr_null(l.tail);
	ck_assert_uint_eq(l.n, 0);

	/* A body no record can have is refused before anything is read or allocated. */
	struct tr_rec huge = { .type = WSGW_MESSAGE, .a = a, .na = UINT32_MAX, .b = b, .nb = 1 };
	ck_assert_ptr_null(wk_held_new(&huge));
}
END_TEST

START_TEST(test_second_worker_segment)
{
	/* Each worker has a segment of its own, a sealed memfd of the size asked for. */
	struct tr_shm_info first = info;
	struct worker *x = worker_new(2, 65536);
	struct stat st;

	ck_assert_int_ne(tr_shm_fd(x->tr), tr_shm_fd(w->tr));
	ck_assert_uint_eq(info.to_worker_bytes, 65536);
	ck_assert_uint_eq(x->tr->max_len, 65536 / 2 - 16);
	ck_assert_int_eq(fstat(tr_shm_fd(x->tr), &st), 0);
	ck_assert_int_eq(fcntl(tr_shm_fd(x->tr), F_GET_SEALS),
			 F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL);
	ck_assert(ftruncate(tr_shm_fd(x->tr), 4096) < 0 && errno == EPERM);
	/* Freeing the worker closes the descriptor. */
	int fd = tr_shm_fd(x->tr);
	wk_free(x);
	ck_assert(fcntl(fd, F_GETFD) < 0 && errno == EBADF);
	info = first;
}
END_TEST

int main(void)
{
	Suite *s = suite_create("worker");
	TCase *tc = tcase_create("shm");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_push_in_order_across_a_full_ring);
	tcase_add_test(tc, test_emsgsize_before_holding);
	tcase_add_test(tc, test_dying_worker_holds_everything);
	tcase_add_test(tc, test_salvage_returns_unconsumed_in_order);
	tcase_add_test(tc, test_broken_transport);
	tcase_add_test(tc, test_wait_and_take);
	tcase_add_test(tc, test_list_helpers);
	tcase_add_test(tc, test_second_worker_segment);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
