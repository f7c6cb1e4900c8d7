#include "shm/ring.h"

#include <assert.h>
#include <errno.h>
#include <string.h>
#include <time.h>

/*
 * Ordering, each acquire with its release partner:
 *  - head: release-store in shm_ring_notify() (after the batch's bytes) pairs
 *    with the acquire-load in shm_ring_peek()/shm_ring_pending(), so the
 *    consumer reads only complete records.
 *  - tail: release-store in shm_ring_release() (after the consumer's last read
 *    of the batch) pairs with the acquire-load in load_tail(), so the producer
 *    never overwrites bytes the consumer still reads.
 * The doorbells (doorbell.c) carry the sleep/wake protocol.
 */

bool shm_ring_capacity_ok(uint64_t cap)
{
	return cap >= SHM_RING_MIN_CAPACITY && cap <= SHM_RING_MAX_CAPACITY &&
	       (cap & (cap - 1)) == 0;
}

void shm_ring_format(struct shm_ring_ctl *ctl, uint64_t start)
{
	memset(ctl, 0, sizeof(*ctl));
	atomic_store_explicit(&ctl->head, start, memory_order_relaxed);
	atomic_store_explicit(&ctl->tail, start, memory_order_relaxed);
}

int shm_ring_open(struct shm_ring *r, struct shm_ring_ctl *ctl, void *data, uint64_t cap,
		  enum shm_ring_role role)
{
	uint64_t head, tail;

	if (!shm_ring_capacity_ok(cap) || ((uintptr_t)data & (SHM_REC_ALIGN - 1)) ||
	    ((uintptr_t)ctl & (SHM_CACHELINE - 1)))
		return -EINVAL;
	head = atomic_load_explicit(&ctl->head, memory_order_acquire);
	tail = atomic_load_explicit(&ctl->tail, memory_order_acquire);
	if (head - tail > cap || ((head | tail) & (SHM_REC_ALIGN - 1)))
		return -EBADMSG;

	memset(r, 0, sizeof(*r));
	r->ctl = ctl;
	r->data = data;
	r->cap = cap;
	r->mask = cap - 1;
	r->max_payload = shm_ring_max_payload_for(cap);
	r->role = role;
	r->pos = role == SHM_RING_PRODUCER ? head : tail;
	r->published = head;
	r->peer = role == SHM_RING_PRODUCER ? tail : head;
	r->rsv_len = UINT32_MAX;
	r->data_db = &ctl->data;
	r->space_db = &ctl->space;
	r->data_efd = -1;
	return 0;
}

void shm_ring_set_data_doorbell(struct shm_ring *r, struct shm_doorbell *db)
{
	r->data_db = db ? db : &r->ctl->data;
}

void shm_ring_set_data_eventfd(struct shm_ring *r, int efd)
{
	r->data_efd = efd;
}

/*
 * Producer: reloads the consumer's tail. A valid tail never moves back and
 * never passes the head: with free-running counters, tail in [old tail, head]
 * is (tail - old) <= (head - old) in unsigned arithmetic.
 */
static int load_tail(struct shm_ring *r)
{
	/* Pairs with the release-store of tail in shm_ring_release(). */
	uint64_t tail = atomic_load_explicit(&r->ctl->tail, memory_order_acquire);

	if (tail - r->peer > r->pos - r->peer || (tail & (SHM_REC_ALIGN - 1))) {
		r->broken = true;
		return -EBADMSG;
	}
	r->peer = tail;
	return 0;
}

/* Bytes needed at r->pos for a record of len: the record plus, when it does
 * not fit before the end of the data area, the skipped remainder. */
static inline uint64_t space_needed(const struct shm_ring *r, uint32_t len, uint64_t *skip)
{
	uint64_t size = shm_ring_rec_size(len);
	uint64_t room = r->cap - (r->pos & r->mask);

	*skip = room < size ? room : 0;
	return *skip + size;
}

int shm__ring_reserve_slow(struct shm_ring *r, uint32_t len, void **payload)
{
	uint64_t skip, need;
	int err;

	if (r->role != SHM_RING_PRODUCER)
		return -EINVAL;
	if (r->broken)
		return -EBADMSG;
	if (len > r->max_payload)
		return -EMSGSIZE;
	need = space_needed(r, len, &skip);
	if (r->pos + need - r->peer > r->cap) {
		err = load_tail(r);
		if (err)
			return err;
		if (r->pos + need - r->peer > r->cap)
			return -ENOBUFS;
	}
	if (skip) {
		/* Only the first 8 bytes: that is all there may be before the end.
		 * Invisible to the consumer until notify publishes a head past it. */
		struct shm_rec_hdr w = { .len = 0, .type = SHM_REC_WRAP, .flags = 0 };

		memcpy(r->data + (r->pos & r->mask), &w, 8);
	}
	r->rsv = r->pos + skip;
	r->rsv_len = len;
	*payload = r->data + (r->rsv & r->mask) + SHM_REC_HDR_SIZE;
	return 0;
}

/*
 * Head is published here, once per batch, not in every commit: a consumer
 * that keeps up spins reading the head's cache line, and every store to it
 * pulls the line back to the producer's core. One store per batch keeps that
 * traffic per batch, like the consumer's one tail store per batch.
 */
int shm_ring_notify(struct shm_ring *r)
{
	int woke;

	if (r->role != SHM_RING_PRODUCER || r->broken)
		return 0;
	if (r->pos != r->published) {
		r->published = r->pos;
		/* Pairs with the acquire-load of head in shm_ring_peek(). */
		atomic_store_explicit(&r->ctl->head, r->pos, memory_order_release);
	}
	woke = r->data_efd >= 0 ? shm_doorbell_ring_eventfd(r->data_db, r->data_efd)
				: shm_doorbell_ring(r->data_db);
	r->wakes += (unsigned)woke;
	return woke;
}

bool shm_ring_writable(struct shm_ring *r, uint32_t len)
{
	uint64_t skip, need;

	if (r->role != SHM_RING_PRODUCER || r->broken || len > r->max_payload)
		return false;
	need = space_needed(r, len, &skip);
	if (r->pos + need - r->peer <= r->cap)
		return true;
	return load_tail(r) == 0 && r->pos + need - r->peer <= r->cap;
}

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Milliseconds left until deadline (-1: none), at least 0. */
static int remaining_ms(int64_t deadline)
{
	int64_t left;

	if (deadline < 0)
		return -1;
	left = deadline - now_ms();
	return left > 0 ? (int)left : 0;
}

int shm_ring_wait_space(struct shm_ring *r, uint32_t len, unsigned spin, int timeout_ms)
{
	int64_t deadline = timeout_ms < 0 ? -1 : now_ms() + timeout_ms;
	uint32_t seq;
	int err;

	if (len > r->max_payload)
		return -EMSGSIZE;
	/* The consumer cannot free space for records it cannot see. */
	shm_ring_notify(r);
	for (unsigned i = 0; i < spin; i++) {
		if (shm_ring_writable(r, len))
			return 0;
		if (r->broken)
			return -EBADMSG;
		shm_cpu_relax();
	}
	for (;;) {
		seq = shm_doorbell_prepare(r->space_db);
		if (shm_ring_writable(r, len)) {
			shm_doorbell_cancel(r->space_db);
			return 0;
		}
		if (r->broken) {
			shm_doorbell_cancel(r->space_db);
			return -EBADMSG;
		}
		r->sleeps++;
		err = shm_doorbell_sleep(r->space_db, seq, remaining_ms(deadline));
		if (shm_ring_writable(r, len))
			return 0;
		if (r->broken)
			return -EBADMSG;
		if (err)
			return err;
		if (deadline >= 0 && remaining_ms(deadline) == 0)
			return -ETIMEDOUT;
	}
}

int shm_ring_peek(struct shm_ring *r, struct shm_ring_iter *it)
{
	uint64_t head;

	it->r = r;
	it->pos = it->end = r->pos;
	if (r->role != SHM_RING_CONSUMER)
		return -EINVAL;
	if (r->broken)
		return -EBADMSG;
	/* Pairs with the release-store of head in shm_ring_notify(). */
	head = atomic_load_explicit(&r->ctl->head, memory_order_acquire);
	if (head - r->pos > r->cap || (head & (SHM_REC_ALIGN - 1))) {
		r->broken = true;
		return -EBADMSG;
	}
	r->peer = head;
	it->end = head;
	return (int)(head - r->pos);
}

static int corrupt(struct shm_ring_iter *it)
{
	it->r->broken = true;
	it->end = it->pos;
	return -EBADMSG;
}

int shm__ring_next_slow(struct shm_ring_iter *it, struct shm_rec *rec)
{
	const struct shm_ring *r = it->r;
	struct shm_rec_hdr h;
	uint64_t off, room, size;

	for (;;) {
		if (it->pos == it->end)
			return 0;
		off = it->pos & r->mask;
		room = r->cap - off;
		/* Copy before checking: the peer may rewrite the shared header
		 * between our check and our use. First the 8 bytes that always
		 * fit (positions are 8-aligned). */
		memcpy(&h, r->data + off, 8);
		if (h.type == SHM_REC_WRAP) {
			if (room > it->end - it->pos)
				return corrupt(it);
			it->pos += room;
			continue;
		}
		if (room < SHM_REC_HDR_SIZE || h.len > r->max_payload)
			return corrupt(it);
		size = shm_ring_rec_size(h.len);
		if (size > room || size > it->end - it->pos)
			return corrupt(it);
		memcpy(&h.conn, r->data + off + 8, sizeof(h.conn));
		rec->payload = r->data + off + SHM_REC_HDR_SIZE;
		rec->len = h.len;
		rec->type = h.type;
		rec->flags = h.flags;
		rec->conn = h.conn;
		it->pos += size;
		return 1;
	}
}

void shm_ring_release(struct shm_ring *r, const struct shm_ring_iter *it)
{
	if (it->pos == r->pos)
		return;
	r->pos = it->pos;
	/* Pairs with the acquire-load of tail in load_tail(). */
	atomic_store_explicit(&r->ctl->tail, r->pos, memory_order_release);
	r->wakes += (unsigned)shm_doorbell_ring(r->space_db);
}

bool shm_ring_pending(struct shm_ring *r)
{
	/* Pairs with the release-store of head in shm_ring_notify(). */
	return atomic_load_explicit(&r->ctl->head, memory_order_acquire) != r->pos;
}

int shm_ring_wait_data(struct shm_ring *r, unsigned spin, int timeout_ms)
{
	int64_t deadline = timeout_ms < 0 ? -1 : now_ms() + timeout_ms;
	uint32_t seq;
	int err;

	for (unsigned i = 0; i < spin; i++) {
		if (shm_ring_pending(r))
			return 0;
		shm_cpu_relax();
	}
	for (;;) {
		seq = shm_doorbell_prepare(r->data_db);
		if (shm_ring_pending(r)) {
			shm_doorbell_cancel(r->data_db);
			return 0;
		}
		r->sleeps++;
		err = shm_doorbell_sleep(r->data_db, seq, remaining_ms(deadline));
		if (shm_ring_pending(r))
			return 0;
		if (err)
			return err;
		if (deadline >= 0 && remaining_ms(deadline) == 0)
			return -ETIMEDOUT;
	}
}

int shm_ring_wait_data_adaptive(struct shm_ring *r, struct shm_spin *s, int timeout_ms)
{
	struct shm_spin_wait t;
	int err;

	shm_spin_begin(s, &t);
	for (unsigned i = 0; shm_spin_more(s, &t, i); i++) {
		if (shm_ring_pending(r)) {
			shm_spin_end(s, &t, true);
			return 0;
		}
		shm_cpu_relax();
	}
	err = shm_ring_wait_data(r, 0, timeout_ms);
	shm_spin_end(s, &t, err == 0);
	return err;
}
