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
	_Atomic uint64_t relays; /* futex rings the thread turned into eventfd writes */
};

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
	while (!atomic_load(&w->stop)) {
		syscall(SYS_futex, &db->seq, FUTEX_WAIT, seen, &tick, NULL, 0);
		uint32_t now = atomic_load_explicit(&db->seq, memory_order_acquire);
		if (now != seen && !atomic_load(&w->stop)) {
			seen = now;
			atomic_fetch_add_explicit(&w->relays, 1, memory_order_relaxed);
			if (eventfd_write(w->efd, 1) < 0)
				log_warn(errno, "write(eventfd)");
		}
	}
	return NULL;
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
		loop_del(w->loop, w->efd);
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
