#include "gateway/waker.h"
#include "gateway/log.h"
#include "gateway/stats.h"
#include "shm/bell.h"

#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

struct waker {
	struct loop_src src; /* the eventfd; first, so on_bell finds the waker */
	struct loop *loop;
	struct shm_bell *bell;
	int efd;
	pthread_t thread;
	int started;
	int handed; /* a live upgrade gave the doorbell to another process: hands off it */
	atomic_int stop;
	atomic_int muted;    /* a flood: the eventfd out of the epoll set, the thread resting;
			      * written by the loop only */
	atomic_int flooded;  /* the thread saw a flood of futex rings: the loop is to mute */
	_Atomic uint64_t relays; /* futex rings the thread turned into eventfd writes */
	/* The flood guard (loop thread only): the window, and the last mute. */
	uint32_t win_start, win_bells; /* wake-ups through the eventfd in the window */
	uint64_t win_records;          /* and records the rings gave */
	uint32_t mute_until, mute_ms, heard_at;
};

/*
 * The flood guard. A worker wakes the loop only after publishing, so wake-ups come at most
 * about one per record (a few more when the loop took a record before its wake-up came).
 * One that rings with nothing behind it, as fast as it can, would keep the loop (or the
 * thread relaying its futex rings) busy for nothing and every other worker's clients
 * waiting behind it. Within FLOOD_WINDOW_MS, FLOOD_MIN futex rings relayed, or wake-ups
 * through the eventfd FLOOD_MIN / 2 more than the records the rings gave, mute the
 * doorbell for FLOOD_MUTE_MS (doubling while the flood goes on, up to FLOOD_MUTE_MAX_MS),
 * and the loop polls the rings every FLOOD_POLL_MS instead. The doorbell and the eventfd
 * are shared by the loop's workers: which one rings cannot be told.
 */
#define FLOOD_WINDOW_MS 100
#define FLOOD_MIN 2000
#define FLOOD_MUTE_MS 1000
#define FLOOD_MUTE_MAX_MS 8000
#define FLOOD_POLL_MS 1
#define FLOOD_REST_NS 10000000L /* the thread's naps while muted */

static uint32_t coarse_ms(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC_COARSE, &t);
	return (uint32_t)t.tv_sec * 1000u + (uint32_t)(t.tv_nsec / 1000000);
}

/* The compatibility path: workers that ring the futex (waker.h says which). */
static void *waker_main(void *arg)
{
	struct waker *w = arg;
	struct shm_doorbell *db = shm_bell_doorbell(w->bell);
	uint32_t seen = atomic_load_explicit(&db->seq, memory_order_acquire);
	/* Timed: stop_thread wakes the waiters without changing the word (another
	 * gateway's thread may wait on it too, and would take a change for a worker's
	 * ring), so a stop that comes between the check of `stop` and the wait is seen
	 * within a second. */
	const struct timespec tick = { 1, 0 };
	const struct timespec rest = { 0, FLOOD_REST_NS };
	uint32_t win_start = coarse_ms(), win_relays = 0;
	while (!atomic_load(&w->stop)) {
		if (atomic_load(&w->flooded) || atomic_load(&w->muted)) {
			/* Not waiting on the word, which the flood keeps changing. `seen` stays:
			 * a ring meanwhile is relayed once the mute ends. */
			nanosleep(&rest, NULL);
			continue;
		}
		syscall(SYS_futex, &db->seq, FUTEX_WAIT, seen, &tick, NULL, 0);
		uint32_t now = atomic_load_explicit(&db->seq, memory_order_acquire);
		if (now != seen && !atomic_load(&w->stop)) {
			seen = now;
			atomic_fetch_add_explicit(&w->relays, 1, memory_order_relaxed);
			uint32_t ms = coarse_ms();
			if (ms - win_start >= FLOOD_WINDOW_MS) {
				win_start = ms;
				win_relays = 0;
			}
			/* The loop mutes at its next iteration, which this write brings. */
			if (++win_relays >= FLOOD_MIN)
				atomic_store(&w->flooded, 1);
			if (eventfd_write(w->efd, 1) < 0)
				log_warn(errno, "write(eventfd)");
		}
	}
	return NULL;
}

static void mute(struct waker *w, uint32_t now, const char *what)
{
	/* Soon after the last mute ended: the same flood, longer. */
	int again = w->heard_at && now - w->heard_at < FLOOD_MUTE_MAX_MS;
	w->mute_ms = !again ? FLOOD_MUTE_MS
		     : 2 * w->mute_ms > FLOOD_MUTE_MAX_MS ? FLOOD_MUTE_MAX_MS : 2 * w->mute_ms;
	w->mute_until = now + w->mute_ms;
	loop_del(w->loop, w->efd);
	atomic_store(&w->muted, 1);
	stats.wake_floods++;
	if (again)
		log_debug("the wake-up flood goes on: doorbell muted for %u ms", w->mute_ms);
	else
		log_warn(0, "wake-ups flood loop %u: %s with nothing to deliver; it polls the rings every %d ms instead while this lasts (a worker misbehaves; the doorbell is shared, so which one cannot be told: see /workers)",
			 loop_index(w->loop), what, FLOOD_POLL_MS);
}

static void unmute(struct waker *w, uint32_t now)
{
	/* Edge-triggered and never read, the eventfd is readable: one wake-up on adding,
	 * so nothing written meanwhile waits. */
	if (loop_add(w->loop, w->efd, EPOLLIN | EPOLLET, &w->src)) {
		w->mute_until = now + FLOOD_MUTE_MS; /* logged by loop_add; polled meanwhile */
		return;
	}
	w->win_start = now;
	w->win_bells = 0;
	w->win_records = 0;
	w->heard_at = now;
	atomic_store(&w->flooded, 0);
	atomic_store(&w->muted, 0);
	log_debug("wake-ups: the doorbell is heard again");
}

/* The loop registers the eventfd edge-triggered and never reads it: each write (a
 * worker's or the thread's) is a new edge, and the counter cannot overflow in practice.
 * The rings are polled at the top of every iteration, so there is nothing to do but
 * count. */
static void on_bell(struct loop_src *src, uint32_t events)
{
	struct waker *w = (struct waker *)src;
	(void)events;
	stats.worker_wakeups++;
	stats.futex_relays = atomic_load_explicit(&w->relays, memory_order_relaxed);
	w->win_bells++;
}

void waker_count(struct waker *w, unsigned records)
{
	if (w->handed)
		return;
	uint32_t now = loop_now(w->loop);
	if (atomic_load_explicit(&w->muted, memory_order_relaxed)) {
		if ((int32_t)(now - w->mute_until) >= 0)
			unmute(w, now);
		return;
	}
	if (now - w->win_start >= FLOOD_WINDOW_MS) {
		w->win_start = now;
		w->win_bells = 0;
		w->win_records = 0;
	}
	w->win_records += records;
	/* As soon as it is one: a flood wakes the loop hundreds of thousands of times a
	 * second. */
	if (atomic_load_explicit(&w->flooded, memory_order_relaxed))
		mute(w, now, "rings of the doorbell's futex, relayed by its thread,");
	else if (w->win_bells >= FLOOD_MIN / 2 + w->win_records)
		mute(w, now, "writes of its eventfd");
}

int waker_timeout_ms(const struct waker *w)
{
	return atomic_load_explicit(&w->muted, memory_order_relaxed) ? FLOOD_POLL_MS : -1;
}

int waker_new(struct loop *l, int inherit_bell_fd, int inherit_efd, struct waker **out)
{
	struct waker *w = calloc(1, sizeof(*w));
	if (!w) {
		if (inherit_efd > 0)
			close(inherit_efd);
		return -ENOMEM;
	}
	w->loop = l;
	w->efd = inherit_efd > 0 ? inherit_efd : -1;
	int rc = inherit_bell_fd > 0 ? shm_bell_adopt_fd(inherit_bell_fd, &w->bell)
				     : shm_bell_create(&w->bell);
	if (rc) {
		log_error(-rc, inherit_bell_fd > 0 ? "the doorbell page handed over"
						   : "the doorbell page (memfd_create)");
		goto fail;
	}
	if (w->efd < 0 && (w->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) < 0) {
		rc = -errno;
		log_error(errno, "eventfd");
		goto fail;
	}
	w->src.fn = on_bell;
	rc = loop_add(l, w->efd, EPOLLIN | EPOLLET, &w->src);
	if (rc)
		goto fail;
	w->win_start = loop_now(l);
	rc = -pthread_create(&w->thread, NULL, waker_main, w);
	if (rc) {
		log_error(-rc, "pthread_create(waker)");
		goto fail;
	}
	w->started = 1;
	*out = w;
	return 0;
fail:
	waker_free(w);
	return rc;
}

static void stop_thread(struct waker *w)
{
	if (w->started) {
		w->started = 0;
		atomic_store(&w->stop, 1);
		struct shm_doorbell *db = shm_bell_doorbell(w->bell);
		/* Every waiter, and the word unchanged: in a live upgrade the new gateway's
		 * thread waits on it too; a single wake could be its, leaving this thread
		 * asleep and the join below for ever, and a change would look to it like a
		 * worker's ring. It goes back to sleep; this one sees `stop`. */
		syscall(SYS_futex, &db->seq, FUTEX_WAKE, INT_MAX, NULL, NULL, 0);
		pthread_join(w->thread, NULL);
	}
}

static void close_efd(struct waker *w)
{
	if (w->efd >= 0) {
		if (!atomic_load(&w->muted))
			loop_del(w->loop, w->efd);
		atomic_store(&w->muted, 0); /* nothing left to poll for */
		close(w->efd);
		w->efd = -1;
	}
}

void waker_hand_off(struct waker *w)
{
	stop_thread(w);
	close_efd(w);
	w->handed = 1;
}

void waker_free(struct waker *w)
{
	if (!w)
		return;
	stop_thread(w);
	close_efd(w);
	shm_bell_close(w->bell);
	free(w);
}

struct shm_doorbell *waker_doorbell(struct waker *w)
{
	return shm_bell_doorbell(w->bell);
}

int waker_fd(const struct waker *w)
{
	return shm_bell_fd(w->bell);
}

int waker_efd(const struct waker *w)
{
	return w->efd;
}

/* After a hand-off the doorbell's one waiter is the new process: a word of ours would
 * tell its workers it is awake while it sleeps. */
void waker_prepare(struct waker *w)
{
	if (!w->handed)
		shm_doorbell_prepare(shm_bell_doorbell(w->bell));
}

void waker_cancel(struct waker *w)
{
	if (!w->handed)
		shm_doorbell_cancel(shm_bell_doorbell(w->bell));
}
