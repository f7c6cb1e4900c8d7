/*
 * Doorbell: the sleep/wake word pair one waiter sleeps on and any number of
 * ringers wake, in memory shared between processes (docs/SHM.md, "Sleeping").
 *
 * A waiter that found nothing to do:
 *
 *	uint32_t seq = shm_doorbell_prepare(db);
 *	if (work is available, checked again after prepare)
 *		shm_doorbell_cancel(db);
 *	else
 *		err = shm_doorbell_sleep(db, seq, timeout_ms);
 *
 * A ringer, after publishing work (once per batch, never per record):
 *
 *	shm_doorbell_ring(db);
 *
 * The ringer's syscall happens only when the waiter has announced that it
 * sleeps; on the busy path a ring is one atomic exchange on a cache line the
 * ringer already owns. A doorbell has at most one waiter; it may have many
 * ringers (e.g. every worker ringing the gateway pump's doorbell).
 */
#ifndef WSGW_SHM_DOORBELL_H
#define WSGW_SHM_DOORBELL_H

#include <stdatomic.h>
#include <stdint.h>

/* Cache-line padding for everything two processes write: 128 bytes, because
 * x86's adjacent-line prefetcher pulls lines in pairs. */
#define SHM_CACHELINE 128

/* Lives in shared memory; all zero is the initial state. Both words are only
 * ever modified with atomic read-modify-write operations (see doorbell.c). */
struct shm_doorbell {
	_Atomic uint32_t seq;      /* futex word: bumped by every wake */
	_Atomic uint32_t sleeping; /* 1: the waiter wants a wake */
} __attribute__((aligned(SHM_CACHELINE)));

_Static_assert(ATOMIC_INT_LOCK_FREE == 2, "cross-process atomics must be lock-free");

/*
 * Announces that the waiter is about to sleep and returns the value to pass
 * to shm_doorbell_sleep(). The caller must re-check for work after this call
 * and before sleeping (the check may use acquire loads); any work published
 * by a ringer whose shm_doorbell_ring() does not see the announcement is
 * visible to that re-check.
 */
uint32_t shm_doorbell_prepare(struct shm_doorbell *db);

/* Withdraws the announcement of shm_doorbell_prepare() (work was found). */
void shm_doorbell_cancel(struct shm_doorbell *db);

/*
 * Sleeps (non-private FUTEX_WAIT, works across processes) until rung, until
 * timeout_ms elapses (< 0: no limit) or a signal arrives, then withdraws the
 * announcement. Returns 0 when woken or when a ring happened since prepare
 * (the caller re-checks for work either way: wake-ups may be spurious),
 * -ETIMEDOUT, -EINTR.
 */
int shm_doorbell_sleep(struct shm_doorbell *db, uint32_t seq, int timeout_ms)
	__attribute__((warn_unused_result));

/*
 * Wakes the waiter if it announced a sleep. Call after publishing work
 * (after the release store that makes it visible). Returns 1 when a wake-up
 * syscall was made, 0 when the waiter was not sleeping.
 */
int shm_doorbell_ring(struct shm_doorbell *db);

/*
 * As shm_doorbell_ring, for a waiter that sleeps in epoll_wait on the eventfd efd instead
 * of on the futex (the gateway's loop: docs/SHM.md, "Waking the gateway"): when the waiter
 * announced a sleep, adds 1 to efd. seq is not bumped, so a thread on the futex (a waiter
 * of the other kind) is not woken. The write's errors are not the ringer's to handle (a
 * full counter, EAGAIN, still leaves efd readable). Returns 1 when a write was made.
 */
int shm_doorbell_ring_eventfd(struct shm_doorbell *db, int efd);

#endif
