/*
 * Adaptive spinning before a sleep (docs/SHM.md, "Spinning before sleeping").
 *
 * Waking a sleeping side costs far more on a VM than a syscall (the hypervisor must wake
 * an idle vCPU: ~20-35 µs here), so a waiter that expects work soon should spin for it,
 * and one that is idle should sleep at once. A struct shm_spin is the budget one waiter
 * spins for before it sleeps; after every wait the waiter reports how the wait ended and
 * the budget adapts, the way Linux's haltpoll governor sizes its poll for idle vCPUs:
 *
 *  - work found while spinning: the budget stays;
 *  - the waiter slept and work came within max_ns of the start of the wait: spinning a
 *    little longer would have caught it, the budget doubles (from SHM_SPIN_START_NS) up
 *    to max_ns;
 *  - the wait outlasted max_ns (or timed out): spinning could not have helped and was
 *    wasted, the budget halves, and falls to min_ns below SHM_SPIN_START_NS.
 *
 * An idle waiter's budget so reaches min_ns within a few waits: a floor of a few µs catches
 * a batch that follows another within a µs or two for no CPU worth counting; 0 sleeps at
 * once. max_ns = 0 never spins. Process-local, one waiter per struct; no locks.
 *
 *	shm_spin_begin(&s, &t);
 *	for (unsigned i = 0; !work(); i++) {
 *		if (!shm_spin_more(&s, &t, i)) { sleep until woken or timed out; break; }
 *		shm_cpu_relax();
 *	}
 *	shm_spin_end(&s, &t, work_came);
 */
#ifndef WSGW_SHM_SPIN_H
#define WSGW_SHM_SPIN_H

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

/* First budget after a wait that spinning would have shortened. */
#define SHM_SPIN_START_NS 2000u
/* libwsgw's ceiling when $WSGW_WAKE_SPIN does not say: short enough that a worker fed every
 * 50 µs does not spend the gaps spinning (bench/RESULTS.md, "Issue 15: adaptive
 * wake-ups"); the gateway's [gateway] wake-spin defaults to 0. */
#define SHM_SPIN_DEFAULT_NS 20000u
/* Largest ceiling accepted: beyond it a sleep is cheaper than the spin. */
#define SHM_SPIN_MAX_NS 1000000u

struct shm_spin {
	uint32_t ns;       /* current budget */
	uint32_t min_ns;   /* floor */
	uint32_t max_ns;   /* ceiling; 0: never spin */
};

/* One wait in progress. */
struct shm_spin_wait {
	uint64_t start;    /* CLOCK_MONOTONIC ns at shm_spin_begin */
	uint64_t spin_end; /* start + the budget */
	bool sleeping;     /* shm_spin_more said stop */
};

static inline uint64_t shm_spin_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static inline void shm_cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#elif defined(__aarch64__)
	__asm__ __volatile__("yield" ::: "memory");
#else
	__asm__ __volatile__("" ::: "memory");
#endif
}

/* A budget between min_ns and max_ns (max_ns clamped to SHM_SPIN_MAX_NS, min_ns to
 * max_ns), starting at min_ns. */
void shm_spin_init(struct shm_spin *s, uint32_t min_ns, uint32_t max_ns);

/* Starts a wait: takes the time once. */
static inline void shm_spin_begin(const struct shm_spin *s, struct shm_spin_wait *t)
{
	t->sleeping = false;
	t->start = s->ns ? shm_spin_now_ns() : 0;
	t->spin_end = t->start + s->ns;
}

/* True while the budget allows another spin step; false once it is spent (the caller
 * then sleeps). Reads the clock only every few steps. */
static inline bool shm_spin_more(const struct shm_spin *s, struct shm_spin_wait *t, unsigned step)
{
	if (!s->ns || ((step & 7) == 7 && shm_spin_now_ns() >= t->spin_end)) {
		t->sleeping = true;
		if (!t->start)
			t->start = shm_spin_now_ns();
		return false;
	}
	return true;
}

/* A new ceiling (clamped likewise, and the floor and the budget to it). */
void shm_spin_set_max(struct shm_spin *s, uint32_t max_ns);

/* Ends a wait and adapts the budget: work says whether work came (false: a timeout or an
 * interruption). */
void shm_spin_end(struct shm_spin *s, const struct shm_spin_wait *t, bool work);

#endif
