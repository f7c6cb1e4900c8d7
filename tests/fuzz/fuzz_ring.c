/*
 * shm/ring.c facing a hostile worker, on both of the gateway's sides of a ring.
 *
 * Consumer (the to-gateway ring): the worker writes the head, the record headers and
 * the payloads, and may keep rewriting them. Input: [mode][tail u64][head - tail, s32]
 * [data area bytes (capacity of them, zero past the input)] then steps, each [head delta
 * s16][offset u16][n u8][n bytes]: after every batch the "worker" moves its head and
 * rewrites some bytes, as a live peer would. The gateway's loop (tr_shm.c's poll) runs
 * over it: shm_ring_peek, shm_ring_next until done, shm_ring_release. Every verdict is
 * checked against a reference reading of the layout in docs/SHM.md: the same records, the
 * same point of corruption. Every record must lie inside the data area within
 * shm_ring_max_payload, and the OPEN/ACCEPT field parser (wsgw_field_next) must stay
 * inside each payload.
 *
 * Producer (the to-worker ring, mode bit 0x40): the worker writes the tail. Steps are
 * [op u8][arg u16]: push a record of arg bytes (tr_shm.c's push), or move the tail, to a
 * plausible or to any value. Each verdict (0, -ENOBUFS, -EMSGSIZE, -EBADMSG) must be the
 * one docs/SHM.md's rules give, and a push must never change a byte the worker has not
 * released yet.
 *
 * The mode byte's low bits choose the capacity, 64 bytes to 16 KiB.
 */
#include "shm/ring.h"
#include "tests/fuzz/fuzz.h"
#include "wsgw/protocol.h"

#include <stdbool.h>
#include <string.h>

struct ref {
	const uint8_t *data;
	uint64_t cap, pos, end;
};

/* The next record per docs/SHM.md: 1 (rec filled), 0 (batch done), -1 (corrupt). */
static int ref_next(struct ref *r, struct shm_rec_hdr *h, uint64_t *off_out)
{
	uint32_t maxp = (uint32_t)(r->cap / 2 - SHM_REC_HDR_SIZE);

	for (;;) {
		if (r->pos == r->end)
			return 0;
		uint64_t off = r->pos % r->cap, room = r->cap - off, size;

		memcpy(h, r->data + off, 8);
		if (h->type == SHM_REC_WRAP) {
			if (room > r->end - r->pos)
				return -1;
			r->pos += room;
			continue;
		}
		if (room < SHM_REC_HDR_SIZE || h->len > maxp)
			return -1;
		size = SHM_REC_HDR_SIZE + (((uint64_t)h->len + 7) / 8) * 8;
		if (size > room || size > r->end - r->pos)
			return -1;
		memcpy(&h->conn, r->data + off + 8, 8);
		*off_out = off;
		r->pos += size;
		return 1;
	}
}

static void check_fields(const struct shm_rec *rec)
{
	const uint8_t *p = rec->payload, *end = p + rec->len, *last = p;
	struct wsgw_field f;
	int rc;

	while ((rc = wsgw_field_next(&p, end, &f)) == 1) {
		FUZZ_CHECK(p > last && p <= end);
		FUZZ_CHECK((const uint8_t *)f.name >= last && (const uint8_t *)f.name + f.name_len <= end);
		FUZZ_CHECK(f.value >= (const uint8_t *)f.name + f.name_len && f.value + f.value_len == p);
		last = p;
	}
	FUZZ_CHECK(rc == 0 ? p == end : p == last);
}

/* One poll of the worker's ring, as tr_shm.c does it. Returns false once the ring is
   broken (the gateway then drops the worker). */
static bool poll_once(struct shm_ring *r, struct shm_ring_ctl *ctl, const uint8_t *data,
		      uint64_t cap, uint64_t *tail)
{
	uint64_t head = atomic_load(&ctl->head), before = *tail;
	struct shm_ring_iter it;
	struct shm_rec rec;
	struct shm_rec_hdr h;
	struct ref ref = { data, cap, *tail, head };
	bool bad_head = head - *tail > cap || (head & 7);
	uint64_t off;
	int n, rc, want;

	n = shm_ring_peek(r, &it);
	FUZZ_CHECK(bad_head ? n == -EBADMSG : n == (int)(head - *tail));
	if (n < 0)
		return false;
	while ((rc = shm_ring_next(&it, &rec)) == 1) {
		const uint8_t *p = rec.payload;

		want = ref_next(&ref, &h, &off);
		FUZZ_CHECK(want == 1);
		FUZZ_CHECK(p == data + off + SHM_REC_HDR_SIZE);
		FUZZ_CHECK(p >= data && rec.len <= (uint64_t)(data + cap - p));
		FUZZ_CHECK(rec.len <= shm_ring_max_payload(r));
		FUZZ_CHECK(rec.len == h.len && rec.type == h.type && rec.flags == h.flags &&
			   rec.conn == h.conn && rec.type != SHM_REC_WRAP);
		check_fields(&rec);
	}
	want = ref_next(&ref, &h, &off);
	FUZZ_CHECK(rc == 0 || rc == -EBADMSG);
	FUZZ_CHECK(rc == 0 ? want == 0 : want == -1);
	shm_ring_release(r, &it);
	*tail = atomic_load(&ctl->tail);
	/* The tail moves forward, never past the head, and stays 8-aligned. */
	FUZZ_CHECK(*tail - before <= head - before && !(*tail & 7));
	FUZZ_CHECK(rc < 0 || *tail == head);
	if (rc < 0) {
		struct shm_ring_iter again;
		FUZZ_CHECK(shm_ring_peek(r, &again) == -EBADMSG); /* broken for good */
		return false;
	}
	return true;
}

/* The producer as docs/SHM.md describes it, for the verdicts. */
struct ref_producer {
	uint64_t cap, pos, peer;
	bool broken;
};

static int ref_reserve(struct ref_producer *m, uint32_t len, uint64_t tail_now, uint64_t *at)
{
	uint64_t size = SHM_REC_HDR_SIZE + ((uint64_t)len + 7) / 8 * 8;
	uint64_t room = m->cap - m->pos % m->cap, skip = room < size ? room : 0;

	if (m->broken)
		return -EBADMSG;
	if (len > m->cap / 2 - SHM_REC_HDR_SIZE)
		return -EMSGSIZE;
	/* The cached tail is reloaded only when it says the record does not fit. */
	if (m->pos + skip + size - m->peer > m->cap) {
		if (tail_now - m->peer > m->pos - m->peer || (tail_now & 7)) {
			m->broken = true;
			return -EBADMSG;
		}
		m->peer = tail_now;
		if (m->pos + skip + size - m->peer > m->cap)
			return -ENOBUFS;
	}
	*at = m->pos + skip;
	return 0;
}

static void produce(struct fuzz_in *in, struct shm_ring_ctl *ctl, uint8_t *area, uint8_t *copy,
		    uint64_t cap)
{
	struct shm_ring r;
	struct ref_producer m = { cap, atomic_load(&ctl->head), atomic_load(&ctl->tail), false };
	uint64_t released = m.peer; /* the worker's last plausible tail: bytes from here are its */
	int n = 0;

	FUZZ_CHECK(shm_ring_open(&r, ctl, area, cap, SHM_RING_PRODUCER) == 0);
	while (in->n && n++ < 64) {
		uint8_t op = fuzz_u8(in);
		uint16_t arg = (uint16_t)fuzz_le(in, 2);
		uint64_t at = 0, tail = atomic_load(&ctl->tail), before = m.pos;
		void *p = NULL;

		if (op & 1) {
			/* The worker moves its tail: behind the head by arg*8, or anywhere. */
			tail = op & 2 ? tail + (uint64_t)(int64_t)(int16_t)arg : m.pos - (uint64_t)arg * 8 % (cap + 16);
			atomic_store(&ctl->tail, tail);
			continue;
		}
		/* What the worker has released is what its tail says now, if that is a place it
		   could have reached: a tail written ahead of the head becomes a valid claim once
		   the head passes it (the worker then only loses its own records). */
		if (tail - released <= m.pos - released && !(tail & 7))
			released = tail;
		uint32_t len = arg % (shm_ring_max_payload(&r) + 2);
		int want = ref_reserve(&m, len, tail, &at);
		memcpy(copy, area, cap);
		int rc = shm_ring_reserve(&r, len, &p);
		FUZZ_CHECK(rc == want);
		if (rc)
			continue;
		uint8_t *rec = area + at % cap;
		FUZZ_CHECK((uint8_t *)p == rec + SHM_REC_HDR_SIZE);
		FUZZ_CHECK(at % cap + SHM_REC_HDR_SIZE + len <= cap); /* contiguous, inside */
		memset(p, 0xa5, len);
		shm_ring_commit(&r, 16, 0, n, len);
		m.pos = at + SHM_REC_HDR_SIZE + ((uint64_t)len + 7) / 8 * 8;
		/* Nothing the worker still holds was touched: [released, before). */
		for (uint64_t k = released; k != before; k += 8)
			FUZZ_CHECK(!memcmp(area + k % cap, copy + k % cap, 8));
		if (op & 2) {
			shm_ring_notify(&r);
			FUZZ_CHECK(atomic_load(&ctl->head) == m.pos);
		}
	}
	shm_ring_notify(&r);
	FUZZ_CHECK(m.broken || atomic_load(&ctl->head) == m.pos);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_in in = { data, size };
	uint8_t cb = fuzz_u8(&in);
	uint64_t cap = (uint64_t)SHM_RING_MIN_CAPACITY << ((cb & 0x3f) % 9);
	uint64_t tail = fuzz_le(&in, 8);
	uint64_t head = tail + (uint64_t)(int64_t)(int32_t)fuzz_le(&in, 4);
	struct shm_ring_ctl *ctl = aligned_alloc(SHM_CACHELINE, sizeof(*ctl));
	uint8_t *area = malloc(cap), *copy = malloc(cap);
	struct shm_ring r;
	int rc;

	FUZZ_CHECK(ctl && area && copy);
	memset(ctl, 0, sizeof(*ctl));
	atomic_store(&ctl->head, head);
	atomic_store(&ctl->tail, tail);
	memset(area, 0, cap);
	for (uint64_t i = 0; i < cap && in.n; i++)
		area[i] = fuzz_u8(&in);

	if (cb & 0x80) /* a misaligned mapping is refused before anything is read */
		FUZZ_CHECK(shm_ring_open(&r, ctl, area + 4, cap, SHM_RING_CONSUMER) == -EINVAL);
	rc = shm_ring_open(&r, ctl, area, cap, SHM_RING_CONSUMER);
	FUZZ_CHECK(rc == ((head - tail > cap || ((head | tail) & 7)) ? -EBADMSG : 0));
	if (rc)
		goto out;
	FUZZ_CHECK(shm_ring_max_payload(&r) == cap / 2 - SHM_REC_HDR_SIZE);
	if (cb & 0x40) {
		produce(&in, ctl, area, copy, cap);
		goto out;
	}
	for (;;) {
		memcpy(copy, area, cap);
		if (!poll_once(&r, ctl, area, cap, &tail))
			break;
		FUZZ_CHECK(!memcmp(copy, area, cap)); /* the consumer only reads the data */
		if (!in.n)
			break;
		/* The worker's next move. */
		head = atomic_load(&ctl->head) + (uint64_t)(int64_t)(int16_t)fuzz_le(&in, 2);
		atomic_store(&ctl->head, head);
		uint64_t off = fuzz_le(&in, 2) % cap;
		size_t n = fuzz_u8(&in);
		for (size_t i = 0; i < n && in.n; i++)
			area[(off + i) % cap] = fuzz_u8(&in);
	}
out:
	free(copy);
	free(area);
	free(ctl);
	return 0;
}
