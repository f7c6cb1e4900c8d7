#include "shm/doorbell.h"

#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

/*
 * Why no lost wake-up (Dekker through one location): the waiter's
 * exchange(sleeping, 1) and the ringer's exchange(sleeping, 0) are both
 * acq_rel read-modify-writes of the same word, so one comes first in its
 * modification order.
 *  - Ringer first: the waiter's exchange reads the ringer's write or a later
 *    RMW in its release sequence (every write to `sleeping` is an RMW, so the
 *    sequence is never broken), synchronizes with it, and the waiter's
 *    re-check after prepare sees the work the ringer published before ringing.
 *  - Waiter first: the ringer reads 1, bumps seq and wakes. The waiter read
 *    seq before announcing, so either FUTEX_WAIT sees the bumped value and
 *    returns at once, or it is already queued and FUTEX_WAKE finds it.
 * Two RMWs instead of two seq_cst fences: same cost on x86 (a locked
 * instruction either way) and ThreadSanitizer understands them.
 */

uint32_t shm_doorbell_prepare(struct shm_doorbell *db)
{
	/* Read before announcing: any bump after this read makes FUTEX_WAIT
	 * return immediately. */
	uint32_t seq = atomic_load_explicit(&db->seq, memory_order_acquire);

	atomic_exchange_explicit(&db->sleeping, 1, memory_order_acq_rel);
	return seq;
}

void shm_doorbell_cancel(struct shm_doorbell *db)
{
	atomic_exchange_explicit(&db->sleeping, 0, memory_order_acq_rel);
}

static long futex(_Atomic uint32_t *uaddr, int op, uint32_t val, const struct timespec *ts)
{
	/* Non-private ops: the word is in a MAP_SHARED mapping of another
	 * process, so the kernel must key it by inode and offset. */
	return syscall(SYS_futex, (uint32_t *)uaddr, op, val, ts, NULL, 0);
}

int shm_doorbell_sleep(struct shm_doorbell *db, uint32_t seq, int timeout_ms)
{
	struct timespec ts, *tsp = NULL;
	int err = 0;

	if (timeout_ms >= 0) {
		ts.tv_sec = timeout_ms / 1000;
		ts.tv_nsec = (long)(timeout_ms % 1000) * 1000000L;
		tsp = &ts;
	}
	if (futex(&db->seq, FUTEX_WAIT, seq, tsp) < 0) {
		if (errno == ETIMEDOUT || errno == EINTR)
			err = -errno;
		/* EAGAIN: seq moved on since prepare, i.e. we were rung. */
	}
	shm_doorbell_cancel(db);
	return err;
}

int shm_doorbell_ring(struct shm_doorbell *db)
{
	if (!atomic_exchange_explicit(&db->sleeping, 0, memory_order_acq_rel))
		return 0;
	atomic_fetch_add_explicit(&db->seq, 1, memory_order_release);
	futex(&db->seq, FUTEX_WAKE, INT_MAX, NULL);
	return 1;
}

int shm_doorbell_ring_eventfd(struct shm_doorbell *db, int efd)
{
	/* The same exchange as shm_doorbell_ring: the argument above holds with the eventfd
	 * write in place of the futex wake (the waiter re-checks after announcing, and an
	 * epoll_wait begun after the write sees efd readable). */
	if (!atomic_exchange_explicit(&db->sleeping, 0, memory_order_acq_rel))
		return 0;
	(void)eventfd_write(efd, 1);
	return 1;
}
