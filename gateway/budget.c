#include "gateway/budget.h"

#include <stdatomic.h>

/* Every loop thread charges and checks: atomics, relaxed, as each number stands alone and
 * no other memory is published through them. */
static struct {
	_Atomic uint64_t limit;
	_Atomic uint64_t used[BUD_KINDS];
	_Atomic uint64_t refused[BUD_KINDS];
	_Atomic uint64_t total;
	_Atomic uint64_t kind_limit[BUD_KINDS];
} B;

/* The last refusal was a kind's own limit: asked by the thread that was refused, for its
 * log line, so another thread's refusal must not answer for it. */
static _Thread_local int kind_refused;

/* 1 once a second loop thread may charge (set before it starts). Until then a relaxed
 * load and store is enough, and costs what a plain add did: with read-modify-writes,
 * bud_charge was 5% of the gateway's samples on bench/run echo-small (two per message). */
static int shared;

#define LOAD(x) atomic_load_explicit(&(x), memory_order_relaxed)
#define STORE(x, v) atomic_store_explicit(&(x), (v), memory_order_relaxed)
#define ADD(x, v) (shared ? (void)atomic_fetch_add_explicit(&(x), (v), memory_order_relaxed) \
			  : STORE(x, LOAD(x) + (v)))
#define SUB(x, v) (shared ? (void)atomic_fetch_sub_explicit(&(x), (v), memory_order_relaxed) \
			  : STORE(x, LOAD(x) - (v)))

void bud_set_shared(void)
{
	shared = 1;
}

void bud_set_limit(uint64_t limit)
{
	STORE(B.limit, limit);
}

uint64_t bud_limit(void)
{
	return LOAD(B.limit);
}

void bud_set_kind_limit(enum bud_kind k, uint64_t limit)
{
	STORE(B.kind_limit[k], limit);
}

uint64_t bud_kind_limit(enum bud_kind k)
{
	return LOAD(B.kind_limit[k]);
}

/* The answer is not a reservation: other threads may charge between it and the caller's
 * charge. A thread is between a check and its charge for one request at a time, so the
 * total may go over the limit by one request per loop thread (with one thread, by the
 * one request a check for 0 lets through), not unboundedly. Reserving here would close
 * the gap but change every caller, for a margin far below any sensible budget. */
int bud_room(enum bud_kind k, size_t n)
{
	uint64_t kind_limit = LOAD(B.kind_limit[k]), limit = LOAD(B.limit);
	int kind_over = kind_limit && LOAD(B.used[k]) + n > kind_limit;
	if (!kind_over && (!limit || LOAD(B.total) + n <= limit))
		return 1;
	kind_refused = kind_over;
	ADD(B.refused[k], 1);
	return 0;
}

const char *bud_refusal(void)
{
	return kind_refused ? "[limits] max-assembly" : "--memory-budget";
}

void bud_charge(enum bud_kind k, size_t n)
{
	ADD(B.used[k], n);
	ADD(B.total, n);
}

void bud_credit(enum bud_kind k, size_t n)
{
	SUB(B.used[k], n);
	SUB(B.total, n);
}

uint64_t bud_used(enum bud_kind k)
{
	return LOAD(B.used[k]);
}

uint64_t bud_refused(enum bud_kind k)
{
	return LOAD(B.refused[k]);
}

uint64_t bud_total(void)
{
	return LOAD(B.total);
}

const char *bud_name(enum bud_kind k)
{
	static const char *const names[BUD_KINDS] = { "assembly", "outbound", "held", "history",
								"cluster" };
	return names[k];
}
