/*
 * The doorbell's waker thread (gateway/waker.c) with a second waker on the same page, as
 * during a live upgrade: the old and the new gateway each have a thread waiting on the
 * one futex word until the old one hands off.
 */
#include "gateway/config.h"
#include "gateway/loop.h"
#include "gateway/waker.h"
#include "shm/doorbell.h"

#include <check.h>
#include <limits.h>
#include <linux/futex.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static void sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
	nanosleep(&ts, NULL);
}

static atomic_int handed;

static void *hand_off(void *arg)
{
	waker_hand_off(arg);
	atomic_store(&handed, 1);
	return NULL;
}

/* One wake-up that a single waiter takes (the first in the futex queue: a's thread, which
 * then waits again behind b's). The hand-off must still end a's thread, whichever of the
 * two the kernel wakes: it used to wake one, b's, and wait for a's for ever. */
START_TEST(hand_off_beside_a_second_waker)
{
	static struct gw_config cfg;
	cfg.handshake_ms = cfg.idle_ms = cfg.close_ms = cfg.heartbeat_ms = 1000;
	struct loop *l = loop_new(&cfg);
	ck_assert_ptr_nonnull(l);
	struct waker *a, *b;
	ck_assert_int_eq(waker_new(l, 0, 0, &a), 0);
	sleep_ms(50);
	ck_assert_int_eq(waker_new(l, dup(waker_fd(a)), 0, &b), 0);
	sleep_ms(50);
	struct shm_doorbell *db = waker_doorbell(a);
	atomic_fetch_add(&db->seq, 1);
	syscall(SYS_futex, &db->seq, FUTEX_WAKE, 1, NULL, NULL, 0);
	sleep_ms(50);
	pthread_t t;
	ck_assert_int_eq(pthread_create(&t, NULL, hand_off, a), 0);
	for (int i = 0; i < 200 && !atomic_load(&handed); i++)
		sleep_ms(10);
	ck_assert_msg(atomic_load(&handed), "the hand-off did not end the waker's thread within 2 s");
	pthread_join(t, NULL);
	waker_free(b);
	waker_free(a);
	loop_free(l);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("waker");
	TCase *tc = tcase_create("waker");
	tcase_add_test(tc, hand_off_beside_a_second_waker);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
