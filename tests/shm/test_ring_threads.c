/*
 * The stress test with threads instead of processes, so ThreadSanitizer
 * (`make check-tsan`) can check the ring's memory ordering: it does not see
 * across processes. Records carry sequence numbers, derived lengths and
 * contents, and a checksum; pauses force both sides through the futex path.
 *
 *  - one ring, a producer thread and a consumer thread;
 *  - the gateway pump's scheme: two rings with their own producer threads,
 *    one consumer thread sleeping on one doorbell shared by both rings.
 *
 * WSGW_THREADS_RECORDS overrides the records per ring (2 million).
 */
#include <check.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "shm/ring.h"
#include "shm/segment.h"

#define PAUSE_EVERY (1u << 18)
#define PAUSE_NS 3000000L
#define SPIN 200
#define WAIT_MS 20000 /* a wait this long means a lost wake-up */

static uint64_t splitmix64(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ull;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

static uint32_t gen_len(uint64_t seq, uint32_t max)
{
	uint64_t r = splitmix64(seq * 2 + 1);

	if ((r & 1023) == 0)
		return (uint32_t)((r >> 12) % (max + 1));
	return (uint32_t)((r >> 12) % 129);
}

/* Content: 8-byte words of an xorshift stream seeded by seq; the checksum
 * (in flags) is the folded sum of those words. */
static uint16_t gen_payload(uint64_t seq, unsigned char *p, uint32_t len, bool check, bool *ok)
{
	uint64_t x = splitmix64(seq ^ 0x5eed), sum = 0;

	for (uint32_t i = 0; i < len; i += 8) {
		uint32_t n = len - i < 8 ? len - i : 8;
		uint64_t got = 0;

		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		if (check) {
			memcpy(&got, p + i, n);
			if (got != (n == 8 ? x : x & (~0ull >> (64 - 8 * n))))
				*ok = false;
		} else {
			memcpy(p + i, &x, n);
		}
		sum = sum * 31 + (n == 8 ? x : x & (~0ull >> (64 - 8 * n)));
	}
	return (uint16_t)(sum ^ sum >> 16 ^ sum >> 32 ^ sum >> 48);
}

static void pause_briefly(void)
{
	struct timespec ts = { 0, PAUSE_NS };

	nanosleep(&ts, NULL);
}

struct producer {
	struct shm_ring r;
	uint64_t n;
	uint64_t salt; /* tells the rings' records apart */
	int err;
	pthread_t tid;
};

static void *produce(void *arg)
{
	struct producer *pr = arg;
	uint32_t max = shm_ring_max_payload(&pr->r);
	uint64_t seq = 0;

	while (seq < pr->n) {
		for (unsigned b = 0; b < 32 && seq < pr->n; b++) {
			uint64_t id = seq + pr->salt;
			uint32_t len = gen_len(id, max);
			void *p;
			int err = shm_ring_reserve(&pr->r, len, &p);

			if (err == -ENOBUFS) {
				shm_ring_notify(&pr->r);
				err = shm_ring_wait_space(&pr->r, len, SPIN, WAIT_MS);
				if (err) {
					pr->err = err;
					return NULL;
				}
				continue;
			}
			if (err) {
				pr->err = err;
				return NULL;
			}
			shm_ring_commit(&pr->r, 1, gen_payload(id, p, len, false, NULL), id, len);
			if (++seq % PAUSE_EVERY == 0) {
				shm_ring_notify(&pr->r);
				pause_briefly();
			}
		}
		shm_ring_notify(&pr->r);
	}
	return NULL;
}

/* Consumes one batch of ring r; *seq counts records, salt identifies them.
 * Returns records taken, or -errno. */
static int consume_batch(struct shm_ring *r, uint64_t *seq, uint64_t salt)
{
	uint32_t max = shm_ring_max_payload(r);
	struct shm_ring_iter it;
	struct shm_rec rec;
	int got, taken = 0;

	got = shm_ring_peek(r, &it);
	if (got <= 0)
		return got;
	while ((got = shm_ring_next(&it, &rec)) == 1) {
		uint64_t id = *seq + salt;
		bool ok = true;

		if (rec.conn != id)
			return -EILSEQ;
		if (rec.len != gen_len(id, max))
			return -EBADMSG;
		if (gen_payload(id, (void *)rec.payload, rec.len, true, &ok) != rec.flags || !ok)
			return -EBADMSG;
		++*seq;
		taken++;
	}
	if (got < 0)
		return got;
	shm_ring_release(r, &it);
	return taken;
}

static uint64_t records(void)
{
	const char *s = getenv("WSGW_THREADS_RECORDS");

	return s ? strtoull(s, NULL, 10) : 2000000;
}

static const struct shm_seg_opts opts = {
	.capacity = { 1 << 15, 1 << 15 }, .mode = 0600, .gid = (gid_t)-1,
};

START_TEST(test_two_threads_one_ring)
{
	struct shm_seg *seg;
	struct producer pr = { .n = records(), .salt = 0 };
	struct shm_ring c;
	uint64_t seq = 0, batches = 0;

	ck_assert_int_eq(shm_seg_create_memfd("threads", &opts, &seg), 0);
	ck_assert_int_eq(shm_seg_ring(seg, SHM_SEG_TO_WORKER, SHM_RING_PRODUCER, &pr.r), 0);
	ck_assert_int_eq(shm_seg_ring(seg, SHM_SEG_TO_WORKER, SHM_RING_CONSUMER, &c), 0);
	ck_assert_int_eq(pthread_create(&pr.tid, NULL, produce, &pr), 0);
	while (seq < pr.n) {
		int got = consume_batch(&c, &seq, 0);

		ck_assert_msg(got >= 0, "consumer at %llu: %s", (unsigned long long)seq,
			      strerror(-got));
		if (got == 0) {
			got = shm_ring_wait_data(&c, SPIN, WAIT_MS);
			ck_assert_msg(got == 0, "wait_data: %s", strerror(-got));
			continue;
		}
		batches++;
		if (seq / PAUSE_EVERY != (seq - (uint64_t)got) / PAUSE_EVERY)
			pause_briefly();
	}
	ck_assert_int_eq(pthread_join(pr.tid, NULL), 0);
	ck_assert_int_eq(pr.err, 0);
	fprintf(stderr, "threads: %llu records in %llu batches; consumer %llu sleeps, "
		"producer %llu sleeps\n", (unsigned long long)seq, (unsigned long long)batches,
		(unsigned long long)c.sleeps, (unsigned long long)pr.r.sleeps);
	if (pr.n >= 2 * PAUSE_EVERY) {
		ck_assert_uint_gt(c.sleeps, 0);
		ck_assert_uint_gt(pr.r.sleeps, 0);
		ck_assert_uint_gt(c.wakes, 0);
		ck_assert_uint_gt(pr.r.wakes, 0);
	}
	shm_seg_close(seg);
}
END_TEST

START_TEST(test_shared_doorbell_pump)
{
	struct shm_seg *seg[2];
	struct producer pr[2];
	struct shm_ring c[2];
	struct shm_doorbell *db;
	uint64_t seq[2] = { 0, 0 }, sleeps = 0;
	uint64_t n = records() / 2;

	db = aligned_alloc(SHM_CACHELINE, sizeof(*db));
	ck_assert_ptr_nonnull(db);
	memset(db, 0, sizeof(*db));
	for (int i = 0; i < 2; i++) {
		memset(&pr[i], 0, sizeof(pr[i]));
		pr[i].n = n;
		pr[i].salt = (uint64_t)i << 40;
		ck_assert_int_eq(shm_seg_create_memfd("pump", &opts, &seg[i]), 0);
		ck_assert_int_eq(shm_seg_ring(seg[i], SHM_SEG_TO_GATEWAY, SHM_RING_PRODUCER,
					      &pr[i].r), 0);
		ck_assert_int_eq(shm_seg_ring(seg[i], SHM_SEG_TO_GATEWAY, SHM_RING_CONSUMER,
					      &c[i]), 0);
		shm_ring_set_data_doorbell(&pr[i].r, db);
		shm_ring_set_data_doorbell(&c[i], db);
	}
	for (int i = 0; i < 2; i++)
		ck_assert_int_eq(pthread_create(&pr[i].tid, NULL, produce, &pr[i]), 0);
	while (seq[0] < n || seq[1] < n) {
		int total = 0;

		for (int i = 0; i < 2; i++) {
			int got = consume_batch(&c[i], &seq[i], pr[i].salt);

			ck_assert_msg(got >= 0, "ring %d at %llu: %s", i,
				      (unsigned long long)seq[i], strerror(-got));
			total += got;
		}
		if (total)
			continue;
		/* The pump's sleep: announce, re-check every ring, sleep. */
		uint32_t s = shm_doorbell_prepare(db);

		if (shm_ring_pending(&c[0]) || shm_ring_pending(&c[1])) {
			shm_doorbell_cancel(db);
			continue;
		}
		sleeps++;
		ck_assert_int_eq(shm_doorbell_sleep(db, s, WAIT_MS), 0);
	}
	for (int i = 0; i < 2; i++) {
		ck_assert_int_eq(pthread_join(pr[i].tid, NULL), 0);
		ck_assert_int_eq(pr[i].err, 0);
		shm_seg_close(seg[i]);
	}
	fprintf(stderr, "pump: 2 x %llu records, %llu sleeps\n", (unsigned long long)n,
		(unsigned long long)sleeps);
	if (n >= 2 * PAUSE_EVERY)
		ck_assert_uint_gt(sleeps, 0);
	free(db);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("shm_ring_threads");
	TCase *tc = tcase_create("threads");
	SRunner *sr;
	int failed;

	tcase_add_test(tc, test_two_threads_one_ring);
	tcase_add_test(tc, test_shared_doorbell_pump);
	tcase_set_timeout(tc, 240);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
