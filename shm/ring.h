/*
 * Single-producer single-consumer ring of variable-length records in shared
 * memory (docs/SHM.md has the layout and the memory-ordering argument).
 *
 * The shared part is a struct shm_ring_ctl (indexes, doorbells) and a data
 * area of `capacity` bytes, a power of two. Each process wraps them in its own
 * struct shm_ring handle, which keeps private copies of everything it must not
 * re-read from the peer (capacity, its own index), so a hostile or crashed
 * peer can make calls fail with -EBADMSG but never make them touch memory
 * outside the ring.
 *
 * Producer:  shm_ring_reserve() → write payload in place → shm_ring_commit(),
 *            or shm_ring_push(); then shm_ring_notify() once per batch, which
 *            publishes the batch and wakes the consumer if it sleeps.
 * Consumer:  shm_ring_peek() → shm_ring_next() until 0 → shm_ring_release()
 *            (publishes the tail and wakes a producer waiting for space).
 * Neither side takes locks; one thread per side at a time.
 */
#ifndef WSGW_SHM_RING_H
#define WSGW_SHM_RING_H

#include <assert.h>
#include <errno.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "shm/doorbell.h"
#include "shm/spin.h"

_Static_assert(ATOMIC_LLONG_LOCK_FREE == 2, "cross-process atomics must be lock-free");

/* Record header, 16 bytes, at an 8-byte aligned offset; payload follows,
 * padded to 8. */
struct shm_rec_hdr {
	uint32_t len;   /* payload bytes, without header or padding */
	uint16_t type;  /* SHM_REC_WRAP is reserved */
	uint16_t flags;
	uint64_t conn;
};

#define SHM_REC_HDR_SIZE ((uint32_t)sizeof(struct shm_rec_hdr))
#define SHM_REC_ALIGN 8u
/* Marks "rest of the data area unused, continue at offset 0". Only its first
 * 8 bytes (len, type, flags) are meaningful, so it fits the last 8 bytes. */
#define SHM_REC_WRAP 0xffffu

#define SHM_RING_MIN_CAPACITY 64u
#define SHM_RING_MAX_CAPACITY (1u << 30)

/* Shared control block: each index on its own cache line, so the producer's
 * stores of head never invalidate the line the consumer stores tail in. */
struct shm_ring_ctl {
	_Atomic uint64_t head __attribute__((aligned(SHM_CACHELINE))); /* producer writes */
	_Atomic uint64_t tail __attribute__((aligned(SHM_CACHELINE))); /* consumer writes */
	struct shm_doorbell data;  /* consumer sleeps on it, producer rings */
	struct shm_doorbell space; /* producer sleeps on it, consumer rings */
};

_Static_assert(sizeof(struct shm_ring_ctl) == 4 * SHM_CACHELINE, "ring ctl layout");

enum shm_ring_role { SHM_RING_PRODUCER, SHM_RING_CONSUMER };

/* Process-local handle. Fields are private to ring.c; the struct is public so
 * callers can embed it. */
struct shm_ring {
	struct shm_ring_ctl *ctl;
	unsigned char *data;
	uint64_t cap;
	uint64_t mask;
	uint32_t max_payload;
	enum shm_ring_role role;
	bool broken;         /* the peer corrupted the ring; every call fails */
	uint64_t pos;        /* producer: head; consumer: tail (private copies) */
	uint64_t peer;       /* last validated index of the other side */
	uint64_t published;  /* producer: head as last stored in ctl */
	uint64_t rsv;        /* producer: header position of the open reservation */
	uint32_t rsv_len;    /* producer: reserved payload bytes; UINT32_MAX: none */
	struct shm_doorbell *data_db;  /* where the consumer sleeps */
	struct shm_doorbell *space_db; /* where the producer sleeps */
	int data_efd;        /* producer: >= 0: the consumer waits on this eventfd */
	uint64_t wakes;      /* wake-up syscalls this side made */
	uint64_t sleeps;     /* times this side slept in the kernel */
};

/* A consumer's batch: the records between the tail and the head seen by
 * shm_ring_peek(). */
struct shm_ring_iter {
	struct shm_ring *r;
	uint64_t pos;
	uint64_t end;
};

/* One record as shm_ring_next() returns it. payload points into shared
 * memory: valid until shm_ring_release(); its bytes are the peer's and may
 * change under the reader if the peer is hostile, so parse copies. */
struct shm_rec {
	const void *payload;
	uint32_t len;
	uint16_t type;
	uint16_t flags;
	uint64_t conn;
};

/* Bytes a record of `len` payload bytes takes in the ring. */
static inline uint64_t shm_ring_rec_size(uint64_t len)
{
	return SHM_REC_HDR_SIZE + ((len + SHM_REC_ALIGN - 1) & ~(uint64_t)(SHM_REC_ALIGN - 1));
}

/* Largest payload a ring of `cap` bytes accepts: records up to cap/2 bytes
 * in all, so a record always fits once the ring drains, wherever the
 * wrap point falls. */
static inline uint32_t shm_ring_max_payload_for(uint64_t cap)
{
	return (uint32_t)(cap / 2 - SHM_REC_HDR_SIZE);
}

/* True when cap is a valid ring capacity (power of two within the limits). */
bool shm_ring_capacity_ok(uint64_t cap);

/*
 * Initialises a control block for an empty ring whose indexes start at
 * `start` (normally 0; tests start near 2^64 to exercise index wrap).
 * Only the creator calls this, before any peer maps the ring.
 */
void shm_ring_format(struct shm_ring_ctl *ctl, uint64_t start);

/*
 * Opens one side of a ring: ctl and data are this process's mapping of the
 * shared control block and data area (cap bytes, a power of two, at least
 * 8-byte aligned). Reads and validates the current indexes, so a ring left by
 * a dead peer can be taken over where it stopped. Doorbells default to the
 * ones in ctl.
 * Returns 0, -EINVAL (bad capacity or alignment), -EBADMSG (indexes corrupt).
 */
int shm_ring_open(struct shm_ring *r, struct shm_ring_ctl *ctl, void *data, uint64_t cap,
		  enum shm_ring_role role) __attribute__((warn_unused_result));

/*
 * Replaces the doorbell the consumer sleeps on and the producer rings, e.g.
 * with one doorbell shared by many rings so one thread can wait for all of
 * them (docs/SHM.md, "One doorbell for many rings"). Both sides must use the
 * same doorbell; db must be in memory both processes map. NULL restores the
 * ring's own doorbell.
 */
void shm_ring_set_data_doorbell(struct shm_ring *r, struct shm_doorbell *db);

/*
 * Producer: the consumer sleeps in epoll on the eventfd efd (e.g. the gateway's loop), not
 * on the data doorbell's futex: shm_ring_notify then writes efd when the consumer announced
 * a sleep on the data doorbell (shm_doorbell_ring_eventfd). The ring does not own efd.
 * -1 (the default) restores the futex wake.
 */
void shm_ring_set_data_eventfd(struct shm_ring *r, int efd);

/* Largest payload this ring accepts. */
static inline uint32_t shm_ring_max_payload(const struct shm_ring *r)
{
	return r->max_payload;
}

/*
 * Producer: reserves room for a record of up to len payload bytes and stores
 * in *payload where to write them (8-byte aligned, contiguous). Nothing is
 * visible to the consumer before shm_ring_commit() and the next
 * shm_ring_notify(); a reservation that is not committed is simply dropped by
 * the next reserve. The ring is unchanged on any error.
 * Returns 0, -ENOBUFS (not enough free space now), -EMSGSIZE (len exceeds
 * shm_ring_max_payload(): it can never fit), -EBADMSG (the consumer corrupted
 * the tail), -EINVAL (called on a consumer).
 */
static inline int shm_ring_reserve(struct shm_ring *r, uint32_t len, void **payload)
	__attribute__((warn_unused_result));

/*
 * Producer: completes the reserved record with `len` payload bytes (len may
 * be less than reserved, e.g. after a short read() into the payload).
 * Calling without a reservation, with len above the reserved length or with
 * type SHM_REC_WRAP is a programming error (assert). The record becomes
 * visible to the consumer at the next shm_ring_notify().
 */
static inline void shm_ring_commit(struct shm_ring *r, uint16_t type, uint16_t flags,
				   uint64_t conn, uint32_t len);

/*
 * Producer: reserve + copy + commit. Returns 0 or a shm_ring_reserve() error;
 * the ring is unchanged on error. Visible at the next shm_ring_notify().
 */
static inline int shm_ring_push(struct shm_ring *r, uint16_t type, uint16_t flags,
				uint64_t conn, const void *payload, uint32_t len)
	__attribute__((warn_unused_result));

/*
 * Producer: publishes every record committed so far (one release store of
 * the head) and wakes the consumer if it sleeps. Call once per batch, and
 * before leaving the ring idle: records not yet notified are never seen. Also call
 * it when shm_ring_reserve() says -ENOBUFS and you will not wait (the
 * consumer frees space only for records it can see; shm_ring_wait_space()
 * notifies by itself). Returns 1 when a wake-up syscall was made, else 0.
 */
int shm_ring_notify(struct shm_ring *r);

/*
 * Producer: true when a record of len payload bytes fits now (reloads the
 * consumer's tail). False also when the ring is broken or len is oversize.
 */
bool shm_ring_writable(struct shm_ring *r, uint32_t len);

/*
 * Producer: notifies (publishes), then waits until a record of len payload bytes fits:
 * spins `spin` times, then sleeps on the space doorbell until the consumer
 * releases.
 * Returns 0 (it fits now), -ETIMEDOUT, -EINTR, -EMSGSIZE, -EBADMSG.
 */
int shm_ring_wait_space(struct shm_ring *r, uint32_t len, unsigned spin, int timeout_ms)
	__attribute__((warn_unused_result));

/*
 * Consumer: starts a batch of every record published so far.
 * Returns the number of bytes in the batch (0: ring empty), -EBADMSG (the
 * producer's head is corrupt), -EINVAL (called on a producer).
 */
int shm_ring_peek(struct shm_ring *r, struct shm_ring_iter *it)
	__attribute__((warn_unused_result));

/*
 * Consumer: the next record of the batch, wrap markers skipped.
 * Returns 1 (rec filled), 0 (batch done), -EBADMSG (a record header is
 * corrupt; the ring is then broken for good and the iterator stops).
 */
static inline int shm_ring_next(struct shm_ring_iter *it, struct shm_rec *rec)
	__attribute__((warn_unused_result));

/*
 * Consumer: frees every record shm_ring_next() returned from this batch (one
 * release store of the tail per batch) and wakes the producer if it waits
 * for space. Payload pointers of those records are invalid afterwards.
 */
void shm_ring_release(struct shm_ring *r, const struct shm_ring_iter *it);

/* Consumer: true when records are pending (one acquire load of the head). */
bool shm_ring_pending(struct shm_ring *r);

/*
 * Consumer: waits until records are pending: spins `spin` times, then sleeps
 * on the data doorbell until the producer notifies.
 * Returns 0 (records pending), -ETIMEDOUT, -EINTR.
 */
int shm_ring_wait_data(struct shm_ring *r, unsigned spin, int timeout_ms)
	__attribute__((warn_unused_result));

/*
 * Consumer: shm_ring_wait_data() with an adaptive spin: spins for s's budget, then
 * sleeps, and adapts s to how the wait ended (shm/spin.h). s belongs to this consumer.
 * Returns 0 (records pending), -ETIMEDOUT, -EINTR.
 */
int shm_ring_wait_data_adaptive(struct shm_ring *r, struct shm_spin *s, int timeout_ms)
	__attribute__((warn_unused_result));

/*
 * The per-record calls are inline: at tens of millions of records per second
 * a function call per step is a visible share of the cost. The fast paths
 * cover the common case (room before the end of the data area, cached index
 * says it fits, header valid); everything else, every error included, goes
 * through the out-of-line versions in ring.c, which handle all cases.
 */
int shm__ring_reserve_slow(struct shm_ring *r, uint32_t len, void **payload);
int shm__ring_next_slow(struct shm_ring_iter *it, struct shm_rec *rec);

static inline int shm_ring_reserve(struct shm_ring *r, uint32_t len, void **payload)
{
	uint64_t size = shm_ring_rec_size(len), off = r->pos & r->mask;

	if (__builtin_expect(r->role == SHM_RING_PRODUCER && !r->broken &&
			     len <= r->max_payload && r->cap - off >= size &&
			     r->pos + size - r->peer <= r->cap, 1)) {
		r->rsv = r->pos;
		r->rsv_len = len;
		*payload = r->data + off + SHM_REC_HDR_SIZE;
		return 0;
	}
	return shm__ring_reserve_slow(r, len, payload);
}

static inline void shm_ring_commit(struct shm_ring *r, uint16_t type, uint16_t flags,
				   uint64_t conn, uint32_t len)
{
	struct shm_rec_hdr h = { .len = len, .type = type, .flags = flags, .conn = conn };

	assert(r->role == SHM_RING_PRODUCER && r->rsv_len != UINT32_MAX);
	assert(len <= r->rsv_len && type != SHM_REC_WRAP);
	memcpy(r->data + (r->rsv & r->mask), &h, sizeof(h));
	r->pos = r->rsv + shm_ring_rec_size(len);
	r->rsv_len = UINT32_MAX;
}

static inline int shm_ring_push(struct shm_ring *r, uint16_t type, uint16_t flags,
				uint64_t conn, const void *payload, uint32_t len)
{
	void *p;
	int err = shm_ring_reserve(r, len, &p);

	if (err)
		return err;
	if (len)
		memcpy(p, payload, len);
	shm_ring_commit(r, type, flags, conn, len);
	return 0;
}

static inline int shm_ring_next(struct shm_ring_iter *it, struct shm_rec *rec)
{
	const struct shm_ring *r = it->r;
	uint64_t off = it->pos & r->mask, size;
	struct shm_rec_hdr h;

	/* One copy of the header, then only the copy is checked and used: the
	 * peer may rewrite the shared bytes in between. */
	if (it->pos != it->end && r->cap - off >= SHM_REC_HDR_SIZE) {
		memcpy(&h, r->data + off, sizeof(h));
		size = shm_ring_rec_size(h.len);
		if (__builtin_expect(h.type != SHM_REC_WRAP && h.len <= r->max_payload &&
				     size <= r->cap - off && size <= it->end - it->pos, 1)) {
			rec->payload = r->data + off + SHM_REC_HDR_SIZE;
			rec->len = h.len;
			rec->type = h.type;
			rec->flags = h.flags;
			rec->conn = h.conn;
			it->pos += size;
			return 1;
		}
	}
	return shm__ring_next_slow(it, rec);
}

#endif
