/* Tests of loop_post and loop_call (gateway/loop.h): work posted from other threads runs on
 * the loop's thread, all of it, in the order each thread posted it, and loop_call returns
 * only once its work has run. Real threads and the loop's real eventfd; make check-tsan
 * runs it under ThreadSanitizer. */
#include "gateway/config.h"
#include "gateway/conn.h"
#include "gateway/loop.h"
#include "tests/lib/wtproc.h"

#include <check.h>
#include <pthread.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <urcu.h>

#define POSTERS 3
#define PER_POSTER 20000

static struct gw_config cfg;
static struct loop *L;
static pthread_t loop_thread;

/* Written on the loop's thread only. */
static unsigned long next_seq[POSTERS];
static unsigned long ran, out_of_order, wrong_thread;

struct item {
	unsigned poster;
	unsigned long seq;
};

static void *run(void *arg)
{
	(void)arg;
	rcu_register_thread(); /* the loop's sweep walks the connection map */
	loop_run(L);
	rcu_unregister_thread();
	return NULL;
}

static void take(struct loop *l, void *arg)
{
	struct item *it = arg;
	if (l != L || !pthread_equal(pthread_self(), loop_thread))
		wrong_thread++;
	if (it->seq != next_seq[it->poster])
		out_of_order++;
	next_seq[it->poster] = it->seq + 1;
	ran++;
	free(it);
}

static void *poster(void *arg)
{
	unsigned id = (unsigned)(uintptr_t)arg;
	for (unsigned long i = 0; i < PER_POSTER; i++) {
		struct item *it = malloc(sizeof(*it));
		ck_assert_ptr_nonnull(it);
		*it = (struct item){ id, i };
		ck_assert_int_eq(loop_post(L, take, it), 0);
	}
	return NULL;
}

struct snapshot {
	unsigned long ran, out_of_order, wrong_thread;
};

static void read_counts(struct loop *l, void *arg)
{
	(void)l;
	struct snapshot *s = arg;
	*s = (struct snapshot){ ran, out_of_order, wrong_thread };
}

static void stop(struct loop *l, void *arg)
{
	(void)arg;
	loop_stop(l);
}

START_TEST(posts_run_on_the_loop_in_order)
{
	cfg.handshake_ms = cfg.idle_ms = cfg.close_ms = cfg.heartbeat_ms = 40; /* sweeps too */
	ck_assert_int_eq(conn_map_init(), 0);
	L = loop_new_index(&cfg, 1);
	ck_assert_ptr_nonnull(L);
	ck_assert_int_eq(loop_index(L), 1);
	ck_assert_int_eq(pthread_create(&loop_thread, NULL, run, NULL), 0);
	pthread_t p[POSTERS];
	for (unsigned i = 0; i < POSTERS; i++)
		ck_assert_int_eq(pthread_create(&p[i], NULL, poster, (void *)(uintptr_t)i), 0);
	for (unsigned i = 0; i < POSTERS; i++)
		pthread_join(p[i], NULL);
	/* Posted after every poster's last: loop_call sees all of them done. */
	struct snapshot s;
	ck_assert_int_eq(loop_call(L, read_counts, &s), 0);
	ck_assert_uint_eq(s.ran, POSTERS * PER_POSTER);
	ck_assert_uint_eq(s.out_of_order, 0);
	ck_assert_uint_eq(s.wrong_thread, 0);
	ck_assert_int_eq(loop_post(L, stop, NULL), 0);
	pthread_join(loop_thread, NULL);
	loop_free(L);
	conn_map_destroy();
}
END_TEST

int main(void)
{
	Suite *s = suite_create("loop_threads");
	TCase *tc = tcase_create("loop_threads");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, posts_run_on_the_loop_in_order);
	suite_add_tcase(s, tc);
	return wt_run_suite(s);
}
