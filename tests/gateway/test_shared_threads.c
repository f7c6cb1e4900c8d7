/*
 * The process-wide modules every loop thread writes (--loops): the counters of
 * gateway/stats.h, the memory budget, the door. Threads count, charge and enter while the
 * main thread reports, as the admin endpoint does on loop 0; at the end the reports must
 * add up to exactly what the threads did. The name ends in _threads so that
 * `make check-tsan` runs it too: the exact sums catch a lost update, TSan a race that
 * happened not to lose one.
 *
 * WSGW_THREADS_ITER overrides the iterations per thread (200000).
 */
#include "gateway/budget.h"
#include "gateway/door.h"
#include "gateway/stats.h"
#include "tests/lib/wtproc.h"

#include <check.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define REQUIRE_MSG(cond, ...) do { if (!(cond)) ck_abort_msg(__VA_ARGS__); } while (0)

#define THREADS 4
#define HOLD 50         /* connections each thread keeps open to the shared address */
#define LIMIT (8u << 10) /* the budget: below what 8 held charges per thread come to */
#define MAX_REQ 1024u   /* the largest charge */

/* The threads' view: what each did, and what went wrong (no ck_assert off the main
 * thread: check's reports are not made for several threads at once). */
struct worker {
	pthread_t tid;
	int idx;
	int stays;      /* publishes and waits for the main thread's look, then stops */
	uint64_t bytes_in, rejected, refused, held;
	uint64_t max_total; /* the highest budget total it saw right after a charge */
	uint32_t shared[HOLD];
	const char *err;
};

static unsigned iter;
static struct worker W[THREADS];
static atomic_int running;
static pthread_barrier_t published, looked;
static const uint8_t shared_key[16] = { 10, 0, 0, 1 };

static uint64_t next_rand(uint64_t *x)
{
	*x ^= *x << 13, *x ^= *x >> 7, *x ^= *x << 17;
	return *x;
}

static void *work(void *arg)
{
	struct worker *w = arg;
	uint64_t rnd = 0x9e3779b97f4a7c15ull * (uint64_t)(w->idx + 1);
	size_t charged[8] = { 0 };
	unsigned n_charged = 0;

	/* Thread 0 is the main thread's case: no start, a slot taken by its first publish. */
	if (w->idx != 0 && stats_thread_start() != 0)
		w->err = "stats_thread_start found no slot";
	if (w->stays)
		stats.cluster_up = 1;
	else
		stats.cluster_holding = 5;
	for (unsigned i = 0; i < iter; i++) {
		stats.messages_in++;
		uint64_t n = next_rand(&rnd) % 100;
		stats.bytes_in += n;
		w->bytes_in += n;
		if (i % 16 == 0) {
			stats_rejected(400);
			w->rejected++;
		}
		/* The budget: charges of up to MAX_REQ, at most 8 held, refusals counted. */
		size_t sz = 1 + next_rand(&rnd) % MAX_REQ;
		if (n_charged == 8) {
			bud_credit(BUD_OUTBOUND, charged[--n_charged]);
		} else if (bud_room(BUD_OUTBOUND, sz)) {
			bud_charge(BUD_OUTBOUND, sz);
			charged[n_charged++] = (size_t)sz;
			uint64_t t = bud_total();
			if (t > w->max_total)
				w->max_total = t;
		} else {
			w->refused++;
		}
		/* The door: an address of its own entered and left, and HOLD connections to the
		 * one all threads share, kept. */
		if (i % 4 == 0) {
			uint8_t key[16] = { 192, 168, (uint8_t)w->idx, (uint8_t)(i / 4 % 64) };
			uint32_t slot;
			unsigned retry;
			if (door_enter_key(0, key, 1000 + i, &slot, &retry) != DOOR_OK || !slot)
				w->err = "door_enter_key refused an address of its own";
			door_leave(slot);
		}
		if (i % (iter / HOLD) == 0 && i / (iter / HOLD) < HOLD) {
			uint32_t *slot = &w->shared[i / (iter / HOLD)];
			unsigned retry;
			if (door_enter_key(0, shared_key, 1000 + i, slot, &retry) != DOOR_OK)
				w->err = "the shared address refused under its cap";
		}
		if (i % 64 == 0)
			stats_publish();
	}
	for (unsigned k = 0; k < n_charged; k++)
		w->held += charged[k];
	if (w->stays) {
		stats_publish();
		pthread_barrier_wait(&published);
		pthread_barrier_wait(&looked);
	}
	stats_thread_stop();
	atomic_fetch_sub(&running, 1);
	return NULL;
}

/* wsgw_messages_in_total from the Prometheus text. */
static uint64_t scraped_messages_in(void)
{
	static char buf[65536];
	int n = stats_format(buf, sizeof(buf), 0, 0);
	REQUIRE_MSG(n > 0, "stats_format: %d", n);
	const char *p = strstr(buf, "\nwsgw_messages_in_total ");
	REQUIRE_MSG(p, "no wsgw_messages_in_total");
	return strtoull(p + strlen("\nwsgw_messages_in_total "), NULL, 10);
}

static void expect_sums(uint64_t main_accepted)
{
	struct gw_stats s;
	uint64_t bytes = 0, rejected = 0;
	for (int i = 0; i < THREADS; i++)
		bytes += W[i].bytes_in, rejected += W[i].rejected;
	stats_sum(&s);
	ck_assert_uint_eq(s.messages_in, (uint64_t)THREADS * iter);
	ck_assert_uint_eq(s.bytes_in, bytes);
	ck_assert_uint_eq(s.rejected[0], rejected);
	ck_assert_uint_eq(s.accepted, main_accepted);
	ck_assert_uint_eq(scraped_messages_in(), (uint64_t)THREADS * iter);
}

START_TEST(test_threads_add_up)
{
	const char *env = getenv("WSGW_THREADS_ITER");
	iter = env ? (unsigned)strtoul(env, NULL, 10) : 200000;
	ck_assert_uint_ge(iter, HOLD * 4);
	door_reset();
	/* The shared address: the main thread's connection and every thread's HOLD, no more. */
	door_set_limits(THREADS * HOLD + 1, 0, 0);
	uint32_t main_slot, extra;
	unsigned retry;
	ck_assert_int_eq(door_enter_key(0, shared_key, 0, &main_slot, &retry), DOOR_OK);
	bud_set_shared(); /* as lps_new does before its threads start */
	bud_set_limit(LIMIT);

	/* The main thread counts too, and publishes: its own slot must not count twice. */
	stats.accepted += 3;
	stats_publish();

	ck_assert_int_eq(pthread_barrier_init(&published, NULL, THREADS / 2 + 1), 0);
	ck_assert_int_eq(pthread_barrier_init(&looked, NULL, THREADS / 2 + 1), 0);
	atomic_store(&running, THREADS);
	for (int i = 0; i < THREADS; i++) {
		W[i].idx = i;
		W[i].stays = i % 2;
		ck_assert_int_eq(pthread_create(&W[i].tid, NULL, work, &W[i]), 0);
	}

	/* Reports while they run: never backwards (a stop moves counts from its slot to the
	 * stopped threads' in one step), and the peer's name stays right. */
	uint64_t last = 0, reports = 0;
	int released = 0;
	while (atomic_load(&running) > 0) {
		uint64_t now = scraped_messages_in();
		REQUIRE_MSG(now >= last, "messages_in went back from %" PRIu64 " to %" PRIu64, last, now);
		last = now;
		char peer[64];
		door_peer(main_slot, 443, peer, sizeof(peer));
		ck_assert_str_eq(peer, "10.0.0.1:443");
		(void)door_addresses();
		(void)bud_total();
		reports++;
		if (!released && atomic_load(&running) == THREADS / 2) {
			/* Those that stop have; the others have published their last. */
			pthread_barrier_wait(&published);
			expect_sums(3);
			struct gw_stats s;
			stats_sum(&s);
			ck_assert_uint_eq(s.cluster_up, THREADS / 2);
			ck_assert_uint_eq(s.cluster_holding, 0);
			pthread_barrier_wait(&looked);
			released = 1;
		}
	}
	for (int i = 0; i < THREADS; i++) {
		ck_assert_int_eq(pthread_join(W[i].tid, NULL), 0);
		REQUIRE_MSG(!W[i].err, "thread %d: %s", i, W[i].err);
	}
	ck_assert(released);
	ck_assert_uint_gt(reports, 0);

	/* All stopped: everything they counted is kept, their gauges are not. */
	expect_sums(3);
	struct gw_stats s;
	stats_sum(&s);
	ck_assert_uint_eq(s.cluster_up, 0);
	ck_assert_uint_eq(s.cluster_holding, 0);

	/* The budget: what they still hold, their refusals, and no more over the limit than
	 * one request per thread. */
	uint64_t held = 0, refused = 0;
	for (int i = 0; i < THREADS; i++) {
		held += W[i].held, refused += W[i].refused;
		ck_assert_uint_le(W[i].max_total, LIMIT + THREADS * MAX_REQ);
	}
	ck_assert_uint_eq(bud_used(BUD_OUTBOUND), held);
	ck_assert_uint_eq(bud_total(), held);
	ck_assert_uint_eq(bud_refused(BUD_OUTBOUND), refused);
	ck_assert_uint_gt(refused, 0);

	/* The door: the shared address alone is left, at its cap exactly. */
	ck_assert_uint_eq(door_addresses(), 1);
	ck_assert_int_eq(door_enter_key(0, shared_key, 0, &extra, &retry), DOOR_IP_FULL);
	ck_assert_uint_eq(extra, main_slot);
	door_leave(extra);
	for (int i = 0; i < THREADS; i++)
		for (int k = 0; k < HOLD; k++) {
			ck_assert_uint_eq(W[i].shared[k], main_slot);
			door_leave(W[i].shared[k]);
		}
	ck_assert_uint_eq(door_addresses(), 1);
	door_leave(main_slot);
	ck_assert_uint_eq(door_addresses(), 0);
	pthread_barrier_destroy(&published);
	pthread_barrier_destroy(&looked);
}
END_TEST

/* A thread's stop zeroes its copy: started again, it does not count its past twice. */
START_TEST(test_stop_then_start)
{
	stats.upgraded = 5;
	ck_assert_int_eq(stats_thread_start(), 0);
	stats_publish();
	stats_thread_stop();
	ck_assert_uint_eq(stats.upgraded, 0);
	ck_assert_int_eq(stats_thread_start(), 0);
	stats.upgraded += 2;
	stats_publish();
	struct gw_stats s;
	stats_sum(&s);
	ck_assert_uint_eq(s.upgraded, 7);
	stats_thread_stop();
	stats_sum(&s);
	ck_assert_uint_eq(s.upgraded, 7);
}
END_TEST

static pthread_barrier_t all_in, all_out;

static void *take_slot(void *arg)
{
	int *rc = arg;
	*rc = stats_thread_start();
	stats.accepted++;
	pthread_barrier_wait(&all_in);
	pthread_barrier_wait(&all_out);
	stats_thread_stop();
	return NULL;
}

/* Past STATS_MAX_THREADS a start says so; that thread's counts still arrive, at its stop. */
START_TEST(test_slots_run_out)
{
	enum { N = STATS_MAX_THREADS + 1 };
	pthread_t t[N];
	int rc[N], ok = 0, full = 0;
	ck_assert_int_eq(pthread_barrier_init(&all_in, NULL, N + 1), 0);
	ck_assert_int_eq(pthread_barrier_init(&all_out, NULL, N + 1), 0);
	for (int i = 0; i < N; i++)
		ck_assert_int_eq(pthread_create(&t[i], NULL, take_slot, &rc[i]), 0);
	pthread_barrier_wait(&all_in);
	for (int i = 0; i < N; i++) {
		ok += rc[i] == 0;
		full += rc[i] == -ENOSPC;
	}
	ck_assert_int_eq(ok + full, N);
	ck_assert_int_ge(full, 1);
	pthread_barrier_wait(&all_out);
	for (int i = 0; i < N; i++)
		ck_assert_int_eq(pthread_join(t[i], NULL), 0);
	struct gw_stats s;
	stats_sum(&s);
	ck_assert_uint_eq(s.accepted, N);
	pthread_barrier_destroy(&all_in);
	pthread_barrier_destroy(&all_out);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("shared_threads");
	TCase *tc = tcase_create("loops");

	tcase_add_test(tc, test_threads_add_up);
	tcase_add_test(tc, test_stop_then_start);
	tcase_add_test(tc, test_slots_run_out);
	tcase_set_timeout(tc, 240);
	suite_add_tcase(s, tc);
	return wt_run_suite(s);
}
