/* Single-process tests of shm/ring.c, shm/doorbell.c and shm/segment.c
 * (plus two forked peers for the cross-process sleep/wake cases). */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "shm/ring.h"
#include "shm/segment.h"

/* For hot loops: ck_assert_*() reports every passing check to the Check
 * runner (a write per check); this only reports failures. */
#define REQUIRE(expr)                                                              \
	do {                                                                       \
		if (!(expr))                                                       \
			ck_abort_msg("%s:%d: %s", __FILE__, __LINE__, #expr);      \
	} while (0)

/*
 * A ring whose data area ends exactly at a PROT_NONE page, so any read past
 * the end of the data crashes the test instead of passing silently.
 */
struct guarded {
	struct shm_ring_ctl *ctl;
	unsigned char *map;
	size_t map_len;
	unsigned char *data;
	uint64_t cap;
	struct shm_ring prod, cons;
};

static void guarded_init(struct guarded *g, uint64_t cap, uint64_t start)
{
	long page = sysconf(_SC_PAGESIZE);
	size_t body = (cap + (size_t)page - 1) / (size_t)page * (size_t)page;

	g->cap = cap;
	g->ctl = aligned_alloc(SHM_CACHELINE, sizeof(*g->ctl));
	ck_assert_ptr_nonnull(g->ctl);
	g->map_len = body + (size_t)page;
	g->map = mmap(NULL, g->map_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ck_assert_ptr_ne(g->map, MAP_FAILED);
	ck_assert_int_eq(mprotect(g->map + body, (size_t)page, PROT_NONE), 0);
	g->data = g->map + body - cap;
	shm_ring_format(g->ctl, start);
	ck_assert_int_eq(shm_ring_open(&g->prod, g->ctl, g->data, cap, SHM_RING_PRODUCER), 0);
	ck_assert_int_eq(shm_ring_open(&g->cons, g->ctl, g->data, cap, SHM_RING_CONSUMER), 0);
}

/* Empties the ring at index `start`, keeping the mapping. */
static void guarded_reset(struct guarded *g, uint64_t start)
{
	shm_ring_format(g->ctl, start);
	REQUIRE(shm_ring_open(&g->prod, g->ctl, g->data, g->cap, SHM_RING_PRODUCER) == 0);
	REQUIRE(shm_ring_open(&g->cons, g->ctl, g->data, g->cap, SHM_RING_CONSUMER) == 0);
}

static void guarded_free(struct guarded *g)
{
	munmap(g->map, g->map_len);
	free(g->ctl);
}

static void fill(unsigned char *p, uint32_t len, uint32_t seed)
{
	for (uint32_t i = 0; i < len; i++)
		p[i] = (unsigned char)(seed * 31u + i * 7u + (i >> 8));
}

static void check_rec(const struct shm_rec *rec, uint32_t len, uint16_t type, uint64_t conn,
		      uint32_t seed)
{
	unsigned char want[4096];

	REQUIRE(len <= sizeof(want));
	REQUIRE(rec->len == len);
	REQUIRE(rec->type == type);
	REQUIRE(rec->conn == conn);
	REQUIRE((uintptr_t)rec->payload % 8 == 0);
	fill(want, len, seed);
	REQUIRE(memcmp(rec->payload, want, len) == 0);
}

static void push_seeded(struct shm_ring *r, uint32_t len, uint16_t type, uint64_t conn,
			uint32_t seed)
{
	unsigned char buf[4096];

	REQUIRE(len <= sizeof(buf));
	fill(buf, len, seed);
	REQUIRE(shm_ring_push(r, type, (uint16_t)seed, conn, buf, len) == 0);
}

/* Source for pushes whose content does not matter. */
static const unsigned char zeros[4096];

static void put_hdr(struct guarded *g, uint64_t pos, uint32_t len, uint16_t type)
{
	struct shm_rec_hdr h = { .len = len, .type = type, .flags = 0, .conn = 1 };
	uint64_t off = pos & (g->cap - 1);

	memcpy(g->data + off, &h, g->cap - off >= 16 ? 16 : 8);
}

START_TEST(test_empty)
{
	struct guarded g;
	struct shm_ring_iter it;
	struct shm_rec rec;

	guarded_init(&g, 1024, 0);
	ck_assert(!shm_ring_pending(&g.cons));
	ck_assert_int_eq(shm_ring_peek(&g.cons, &it), 0);
	ck_assert_int_eq(shm_ring_next(&it, &rec), 0);
	shm_ring_release(&g.cons, &it);
	ck_assert_uint_eq(atomic_load(&g.ctl->tail), 0);
	ck_assert_int_eq(shm_ring_notify(&g.prod), 0);
	/* Roles are enforced. */
	ck_assert_int_eq(shm_ring_peek(&g.prod, &it), -EINVAL);
	void *p;
	ck_assert_int_eq(shm_ring_reserve(&g.cons, 8, &p), -EINVAL);
	guarded_free(&g);
}
END_TEST

START_TEST(test_push_pop_batch)
{
	struct guarded g;
	struct shm_ring_iter it;
	struct shm_rec rec;

	guarded_init(&g, 4096, 0);
	for (uint32_t i = 0; i < 10; i++)
		push_seeded(&g.prod, i * 5, (uint16_t)(i + 1), 1000 + i, i);
	/* Committed records are invisible until the batch is flushed. */
	ck_assert(!shm_ring_pending(&g.cons));
	ck_assert_uint_eq(atomic_load(&g.ctl->head), 0);
	ck_assert_int_eq(shm_ring_notify(&g.prod), 0);
	ck_assert(shm_ring_pending(&g.cons));
	int bytes = shm_ring_peek(&g.cons, &it);
	ck_assert_int_eq(bytes, (int)atomic_load(&g.ctl->head));
	for (uint32_t i = 0; i < 3; i++) {
		ck_assert_int_eq(shm_ring_next(&it, &rec), 1);
		check_rec(&rec, i * 5, (uint16_t)(i + 1), 1000 + i, i);
		ck_assert_uint_eq(rec.flags, i);
	}
	/* Nothing is published until release, once per batch. */
	ck_assert_uint_eq(atomic_load(&g.ctl->tail), 0);
	shm_ring_release(&g.cons, &it);
	ck_assert_uint_eq(atomic_load(&g.ctl->tail), it.pos);
	ck_assert_int_gt(shm_ring_peek(&g.cons, &it), 0);
	for (uint32_t i = 3; i < 10; i++) {
		ck_assert_int_eq(shm_ring_next(&it, &rec), 1);
		check_rec(&rec, i * 5, (uint16_t)(i + 1), 1000 + i, i);
	}
	ck_assert_int_eq(shm_ring_next(&it, &rec), 0);
	shm_ring_release(&g.cons, &it);
	ck_assert_uint_eq(atomic_load(&g.ctl->tail), atomic_load(&g.ctl->head));
	ck_assert(!shm_ring_pending(&g.cons));
	guarded_free(&g);
}
END_TEST

START_TEST(test_full_boundary)
{
	struct guarded g;
	struct shm_ring_iter it;
	struct shm_rec rec;
	unsigned n = 0;

	guarded_init(&g, 1024, 0);
	/* 48-byte payloads are 64-byte records: exactly 16 fit. */
	while (shm_ring_push(&g.prod, 1, 0, n, zeros, 48) == 0)
		n++;
	ck_assert_uint_eq(n, 16);
	ck_assert_int_eq(shm_ring_push(&g.prod, 1, 0, n, zeros, 0), -ENOBUFS);
	ck_assert(!shm_ring_writable(&g.prod, 0));
	ck_assert_int_eq(shm_ring_wait_space(&g.prod, 0, 10, 0), -ETIMEDOUT);
	ck_assert_uint_eq(atomic_load(&g.ctl->head), 1024);
	/* Free one record: exactly one more fits. */
	ck_assert_int_gt(shm_ring_peek(&g.cons, &it), 0);
	ck_assert_int_eq(shm_ring_next(&it, &rec), 1);
	shm_ring_release(&g.cons, &it);
	ck_assert(shm_ring_writable(&g.prod, 48));
	ck_assert(!shm_ring_writable(&g.prod, 49));
	ck_assert_int_eq(shm_ring_push(&g.prod, 1, 0, 16, zeros, 48), 0);
	ck_assert_int_eq(shm_ring_push(&g.prod, 1, 0, 17, zeros, 0), -ENOBUFS);
	shm_ring_notify(&g.prod);
	/* Drain: 16 records, in order, with the last one after the wrap. */
	ck_assert_int_eq(shm_ring_peek(&g.cons, &it), 1024);
	for (unsigned i = 1; i <= 16; i++) {
		ck_assert_int_eq(shm_ring_next(&it, &rec), 1);
		ck_assert_uint_eq(rec.conn, i);
	}
	ck_assert_int_eq(shm_ring_next(&it, &rec), 0);
	shm_ring_release(&g.cons, &it);
	guarded_free(&g);
}
END_TEST

/* Every 8-byte start offset x every payload size, with the free-running
 * indexes both near 0 and just below 2^64 (so they wrap mid-test). */
START_TEST(test_wrap_every_offset)
{
	const uint64_t cap = 256;
	const uint64_t bases[] = { 0, (uint64_t)0 - 4 * 256 };
	struct guarded g;

	guarded_init(&g, cap, 0);
	for (unsigned b = 0; b < 2; b++) {
		for (uint64_t o = 0; o < cap; o += 8) {
			uint32_t max = shm_ring_max_payload_for(cap);

			for (uint32_t len = 0; len <= max; len++) {
				struct shm_ring_iter it;
				struct shm_rec rec;
				uint64_t start = bases[b] + o;
				uint32_t len2 = (len * 7 + 3) % (max + 1);
				uint64_t skip = 0, size = shm_ring_rec_size(len);
				bool second;

				guarded_reset(&g, start);
				push_seeded(&g.prod, len, 7, start, len);
				shm_ring_notify(&g.prod);
				if (cap - o < size)
					skip = cap - o;
				REQUIRE(atomic_load(&g.ctl->head) - start == skip + size);
				second = shm_ring_push(&g.prod, 8, 0, ~start, "", 0) == 0;
				shm_ring_notify(&g.prod);
				REQUIRE(shm_ring_peek(&g.cons, &it) == (int)(atomic_load(&g.ctl->head) - start));
				REQUIRE(shm_ring_next(&it, &rec) == 1);
				check_rec(&rec, len, 7, start, len);
				if (second) {
					REQUIRE(shm_ring_next(&it, &rec) == 1);
					check_rec(&rec, 0, 8, ~start, 0);
				}
				REQUIRE(shm_ring_next(&it, &rec) == 0);
				shm_ring_release(&g.cons, &it);
				/* A record of len2 fits in the drained ring. */
				push_seeded(&g.prod, len2, 9, 9, len2);
				shm_ring_notify(&g.prod);
				REQUIRE(shm_ring_peek(&g.cons, &it) > 0);
				REQUIRE(shm_ring_next(&it, &rec) == 1);
				check_rec(&rec, len2, 9, 9, len2);
				shm_ring_release(&g.cons, &it);
				REQUIRE(!shm_ring_pending(&g.cons));
			}
		}
	}
	guarded_free(&g);
}
END_TEST

/* Records of every size from 0 to capacity/2 in all, streamed through a
 * ring with several records in flight. */
START_TEST(test_all_sizes)
{
	struct guarded g;
	struct shm_ring_iter it;
	struct shm_rec rec;
	uint32_t max, next_pop = 0, len = 0;

	guarded_init(&g, 4096, 0);
	max = shm_ring_max_payload(&g.prod);
	REQUIRE(shm_ring_rec_size(max) == 4096 / 2);
	while (next_pop <= max) {
		while (len <= max && shm_ring_writable(&g.prod, len)) {
			push_seeded(&g.prod, len, 1, len, len);
			len++;
		}
		shm_ring_notify(&g.prod);
		REQUIRE(shm_ring_peek(&g.cons, &it) > 0);
		while (shm_ring_next(&it, &rec) == 1) {
			check_rec(&rec, next_pop, 1, next_pop, next_pop);
			next_pop++;
		}
		shm_ring_release(&g.cons, &it);
	}
	REQUIRE(len == max + 1);
	guarded_free(&g);
}
END_TEST

START_TEST(test_oversize)
{
	struct guarded g;
	void *p;
	uint32_t max;

	guarded_init(&g, 1024, 0);
	max = shm_ring_max_payload(&g.prod);
	ck_assert_uint_eq(max, 512 - 16);
	ck_assert_int_eq(shm_ring_push(&g.prod, 1, 0, 0, zeros, max + 1), -EMSGSIZE);
	ck_assert_int_eq(shm_ring_reserve(&g.prod, UINT32_MAX, &p), -EMSGSIZE);
	ck_assert_int_eq(shm_ring_wait_space(&g.prod, max + 1, 0, 0), -EMSGSIZE);
	ck_assert(!shm_ring_writable(&g.prod, max + 1));
	ck_assert_uint_eq(atomic_load(&g.ctl->head), 0);
	/* The largest record fits, twice, in an empty ring. */
	ck_assert_int_eq(shm_ring_reserve(&g.prod, max, &p), 0);
	shm_ring_commit(&g.prod, 1, 0, 0, max);
	ck_assert_int_eq(shm_ring_reserve(&g.prod, max, &p), 0);
	shm_ring_commit(&g.prod, 1, 0, 0, max);
	ck_assert_int_eq(shm_ring_reserve(&g.prod, 0, &p), -ENOBUFS);
	guarded_free(&g);
}
END_TEST

START_TEST(test_reserve_commit)
{
	struct guarded g;
	struct shm_ring_iter it;
	struct shm_rec rec;
	void *p, *q;

	guarded_init(&g, 1024, 0);
	/* Abandoned reservation: invisible, and its space is reused. */
	ck_assert_int_eq(shm_ring_reserve(&g.prod, 100, &p), 0);
	ck_assert(!shm_ring_pending(&g.cons));
	ck_assert_int_eq(shm_ring_reserve(&g.prod, 300, &q), 0);
	ck_assert_ptr_eq(p, q);
	/* Short commit: only the bytes written count. */
	memcpy(q, "hello", 5);
	shm_ring_commit(&g.prod, 3, 4, 5, 5);
	ck_assert(!shm_ring_pending(&g.cons));
	shm_ring_notify(&g.prod);
	ck_assert_uint_eq(atomic_load(&g.ctl->head), 16 + 8);
	ck_assert_int_eq(shm_ring_peek(&g.cons, &it), 24);
	ck_assert_int_eq(shm_ring_next(&it, &rec), 1);
	ck_assert_uint_eq(rec.len, 5);
	ck_assert_uint_eq(rec.type, 3);
	ck_assert_uint_eq(rec.flags, 4);
	ck_assert_uint_eq(rec.conn, 5);
	ck_assert(memcmp(rec.payload, "hello", 5) == 0);
	shm_ring_release(&g.cons, &it);
	guarded_free(&g);
}
END_TEST

/* A hostile producer: every way to lie in the head or in a record header
 * gives -EBADMSG, and the guard page proves nothing was read past the end. */
START_TEST(test_hostile_producer)
{
	const uint64_t cap = 4096;
	struct {
		uint64_t start, head; /* ring indexes */
		uint32_t len;         /* header at start */
		uint16_t type;
	} cases[] = {
		{ 0, cap + 8, 0, 1 },            /* head beyond tail + cap */
		{ 0, 12, 0, 1 },                 /* head unaligned */
		{ 64, 56, 0, 1 },                /* head behind tail */
		{ 0, 64, 4096, 1 },              /* len > max payload */
		{ 0, 2048, UINT32_MAX, 1 },      /* len overflow */
		{ 0, 64, 100, 1 },               /* record beyond head */
		{ cap - 64, cap + 64, 100, 1 },  /* record crosses the end */
		{ cap - 8, cap + 64, 0, 1 },     /* header in the last 8 bytes */
		{ cap - 64, cap - 8, 0, SHM_REC_WRAP }, /* wrap past head */
	};

	for (unsigned i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct guarded g;
		struct shm_ring_iter it;
		struct shm_rec rec;
		int n;

		guarded_init(&g, cap, cases[i].start);
		put_hdr(&g, cases[i].start, cases[i].len, cases[i].type);
		atomic_store(&g.ctl->head, cases[i].head);
		n = shm_ring_peek(&g.cons, &it);
		if (n >= 0)
			n = shm_ring_next(&it, &rec);
		ck_assert_msg(n == -EBADMSG, "case %u: %d", i, n);
		/* Broken for good, even if the peer repairs the head. */
		atomic_store(&g.ctl->head, cases[i].start);
		ck_assert_int_eq(shm_ring_peek(&g.cons, &it), -EBADMSG);
		ck_assert_int_eq(shm_ring_next(&it, &rec), 0);
		guarded_free(&g);
	}
}
END_TEST

/* A hostile consumer: a tail that passes the head, moves back or is
 * unaligned gives -EBADMSG. */
START_TEST(test_hostile_consumer)
{
	/* Tails relative to the start index; the head is start + 1024. */
	const int64_t tails[] = { 1024 + 8, -8, 4 };

	for (unsigned i = 0; i < 3; i++) {
		struct guarded g;
		void *p;

		const uint64_t start = 1 << 20;

		guarded_init(&g, 1024, start);
		while (shm_ring_push(&g.prod, 1, 0, 0, zeros, 48) == 0)
			;
		shm_ring_notify(&g.prod);
		/* Full: the next reserve must reload the tail. */
		ck_assert_uint_eq(atomic_load(&g.ctl->head), start + 1024);
		atomic_store(&g.ctl->tail, start + (uint64_t)tails[i]);
		ck_assert_int_eq(shm_ring_reserve(&g.prod, 0, &p), -EBADMSG);
		ck_assert_int_eq(shm_ring_push(&g.prod, 1, 0, 0, "", 0), -EBADMSG);
		ck_assert(!shm_ring_writable(&g.prod, 0));
		guarded_free(&g);
	}
	/* Opening over corrupt indexes fails. */
	struct guarded g;
	struct shm_ring r;

	guarded_init(&g, 1024, 0);
	atomic_store(&g.ctl->head, 2048);
	ck_assert_int_eq(shm_ring_open(&r, g.ctl, g.data, 1024, SHM_RING_CONSUMER), -EBADMSG);
	atomic_store(&g.ctl->head, 4);
	ck_assert_int_eq(shm_ring_open(&r, g.ctl, g.data, 1024, SHM_RING_PRODUCER), -EBADMSG);
	ck_assert_int_eq(shm_ring_open(&r, g.ctl, g.data, 1000, SHM_RING_PRODUCER), -EINVAL);
	guarded_free(&g);
}
END_TEST

static const struct shm_seg_opts opts = {
	.capacity = { 1 << 16, 1 << 12 }, .mode = 0600, .gid = (gid_t)-1,
};

START_TEST(test_seg_memfd)
{
	struct shm_seg *s, *a;
	struct shm_ring gp, wc, wp, gc;
	struct shm_ring_iter it;
	struct shm_rec rec;
	const struct shm_seg_hdr *h;
	struct stat st;
	int fd;

	ck_assert_int_eq(shm_seg_create_memfd("wsgw-test", &opts, &s), 0);
	fd = shm_seg_fd(s);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(fstat(fd, &st), 0);
	ck_assert_uint_eq(st.st_mode & 0777, 0600);
	ck_assert_int_eq(fcntl(fd, F_GET_SEALS) & (F_SEAL_SHRINK | F_SEAL_GROW),
			 F_SEAL_SHRINK | F_SEAL_GROW);
	ck_assert_int_eq(ftruncate(fd, 4096), -1);
	ck_assert_int_eq(shm_seg_attach_fd(fd, &a), 0);
	ck_assert_int_eq(shm_seg_fd(a), -1);
	h = shm_seg_header(a);
	ck_assert_uint_eq(h->gateway_pid, (uint32_t)getpid());
	ck_assert_uint_eq(h->ring[SHM_SEG_TO_WORKER].capacity, 1 << 16);
	ck_assert_uint_eq(h->ring[SHM_SEG_TO_GATEWAY].capacity, 1 << 12);
	ck_assert_uint_eq(h->seg_size, (uint64_t)st.st_size);
	/* Two mappings, both directions. */
	ck_assert_int_eq(shm_seg_ring(s, SHM_SEG_TO_WORKER, SHM_RING_PRODUCER, &gp), 0);
	ck_assert_int_eq(shm_seg_ring(a, SHM_SEG_TO_WORKER, SHM_RING_CONSUMER, &wc), 0);
	ck_assert_int_eq(shm_seg_ring(a, SHM_SEG_TO_GATEWAY, SHM_RING_PRODUCER, &wp), 0);
	ck_assert_int_eq(shm_seg_ring(s, SHM_SEG_TO_GATEWAY, SHM_RING_CONSUMER, &gc), 0);
	ck_assert_int_eq(shm_seg_ring(s, (enum shm_seg_dir)2, SHM_RING_CONSUMER, &gc), -EINVAL);
	ck_assert_int_eq(shm_ring_max_payload(&wp), 2048 - 16);
	ck_assert_int_eq(shm_ring_push(&gp, 1, 0, 42, "to worker", 9), 0);
	ck_assert_int_eq(shm_ring_push(&wp, 2, 0, 43, "to gateway", 10), 0);
	shm_ring_notify(&gp);
	shm_ring_notify(&wp);
	ck_assert_int_gt(shm_ring_peek(&wc, &it), 0);
	ck_assert_int_eq(shm_ring_next(&it, &rec), 1);
	ck_assert(rec.conn == 42 && rec.len == 9 && memcmp(rec.payload, "to worker", 9) == 0);
	shm_ring_release(&wc, &it);
	ck_assert_int_gt(shm_ring_peek(&gc, &it), 0);
	ck_assert_int_eq(shm_ring_next(&it, &rec), 1);
	ck_assert(rec.conn == 43 && rec.len == 10 && memcmp(rec.payload, "to gateway", 10) == 0);
	shm_ring_release(&gc, &it);
	shm_seg_close(a);
	shm_seg_close(s);
}
END_TEST

START_TEST(test_seg_bad_opts)
{
	struct shm_seg *s;
	struct shm_seg_opts o = opts;

	o.capacity[0] = 3000;
	ck_assert_int_eq(shm_seg_create_memfd("x", &o, &s), -EINVAL);
	o = opts;
	o.capacity[1] = 32;
	ck_assert_int_eq(shm_seg_create_memfd("x", &o, &s), -EINVAL);
	o = opts;
	o.mode = 0666;
	ck_assert_int_eq(shm_seg_create_memfd("x", &o, &s), -EINVAL);
	o.mode = 0400;
	ck_assert_int_eq(shm_seg_create_memfd("x", &o, &s), -EINVAL);
}
END_TEST

START_TEST(test_seg_named)
{
	char name[64];
	struct shm_seg *s, *a;
	struct shm_ring p, c;
	struct shm_ring_iter it;
	struct shm_rec rec;
	struct stat st;
	struct shm_seg_opts o = opts;

	snprintf(name, sizeof(name), "/wsgw-test-%d", (int)getpid());
	o.mode = 0660;
	o.gid = getgid();
	ck_assert_int_eq(shm_seg_create_named(name, &o, &s), 0);
	ck_assert_int_eq(fstat(shm_seg_fd(s), &st), 0);
	ck_assert_uint_eq(st.st_mode & 0777, 0660);
	ck_assert_int_eq(shm_seg_create_named(name, &opts, &a), -EEXIST);
	ck_assert_int_eq(shm_seg_attach_named(name, &a), 0);
	ck_assert_int_eq(shm_seg_ring(a, SHM_SEG_TO_GATEWAY, SHM_RING_PRODUCER, &p), 0);
	ck_assert_int_eq(shm_seg_ring(s, SHM_SEG_TO_GATEWAY, SHM_RING_CONSUMER, &c), 0);
	ck_assert_int_eq(shm_ring_push(&p, 1, 0, 7, "abc", 3), 0);
	shm_ring_notify(&p);
	ck_assert_int_eq(shm_ring_peek(&c, &it), 24);
	ck_assert_int_eq(shm_ring_next(&it, &rec), 1);
	ck_assert_uint_eq(rec.conn, 7);
	shm_seg_close(a);
	shm_seg_close(s);
	/* The creator's close removed it. */
	ck_assert_int_eq(shm_seg_attach_named(name, &a), -ENOENT);
}
END_TEST

/* Each corruption of the creator's header or ring indexes makes a fresh
 * attach fail, without touching memory outside the mapping. */
enum field { MAGIC, VERSION, HDR_SIZE, SEG_SIZE, FLAGS, CAP, CTL_OFF, DATA_OFF, HEAD, TAIL };
static const struct {
	enum field f;
	unsigned ring;
	uint64_t v;
	int err;
} corruptions[] = {
	{ MAGIC, 0, 0x4141414141414141ull, -EBADMSG },
	{ VERSION, 0, 2, -EPROTO },
	{ HDR_SIZE, 0, 8, -EBADMSG },
	{ HDR_SIZE, 0, 1u << 31, -EBADMSG },
	{ SEG_SIZE, 0, 4096 + (1 << 16) + (1 << 12) + 4096, -EBADMSG },
	{ SEG_SIZE, 0, 4096, -EBADMSG },
	{ FLAGS, 0, 1, -EBADMSG },
	{ CAP, 0, 0, -EBADMSG },
	{ CAP, 1, 3000, -EBADMSG },
	{ CAP, 0, 1ull << 40, -EBADMSG },
	{ CAP, 0, 1u << 17, -EBADMSG },        /* overruns the segment */
	{ CAP, 0, 1u << 13, 0 },                /* smaller is fine */
	{ CAP, 1, 1u << 13, -EBADMSG },        /* ring 1's data runs off the end */
	{ CTL_OFF, 0, 1024 + 8, -EBADMSG },    /* misaligned */
	{ CTL_OFF, 0, 0, -EBADMSG },           /* over the header */
	{ CTL_OFF, 1, 1024, -EBADMSG },        /* over ring 0's ctl */
	{ CTL_OFF, 0, 1024 + 128, -EBADMSG },  /* half over ring 1's ctl */
	{ CTL_OFF, 0, UINT64_MAX - 127, -EBADMSG }, /* offset + size overflows */
	{ CTL_OFF, 1, 4096 + (1 << 16) + (1 << 12), -EBADMSG }, /* past the end */
	{ DATA_OFF, 0, 4096 + 8, -EBADMSG },   /* misaligned */
	{ DATA_OFF, 1, 4096, -EBADMSG },       /* over ring 0's data */
	{ DATA_OFF, 0, 0, -EBADMSG },          /* over the header and ctls */
	{ DATA_OFF, 1, UINT64_MAX - 4095, -EBADMSG },
	{ DATA_OFF, 1, 4096 + (1 << 16) + 64, -EBADMSG }, /* past the end */
	{ HEAD, 0, (1 << 16) + 8, -EBADMSG },
	{ HEAD, 1, 12, -EBADMSG },
	{ TAIL, 1, 8, -EBADMSG },              /* tail past head */
};

START_TEST(test_seg_corrupt)
{
	struct shm_seg *s, *a;
	struct shm_seg_hdr *h;
	struct shm_ring_ctl *ctl;
	unsigned i = (unsigned)_i;
	int err;

	ck_assert_int_eq(shm_seg_create_memfd("corrupt", &opts, &s), 0);
	h = shm_seg_base(s);
	ctl = (void *)((char *)h + h->ring[corruptions[i].ring].ctl_off);
	switch (corruptions[i].f) {
	case MAGIC: h->magic = corruptions[i].v; break;
	case VERSION: h->version = (uint32_t)corruptions[i].v; break;
	case HDR_SIZE: h->hdr_size = (uint32_t)corruptions[i].v; break;
	case SEG_SIZE: h->seg_size = corruptions[i].v; break;
	case FLAGS: h->flags = (uint32_t)corruptions[i].v; break;
	case CAP: h->ring[corruptions[i].ring].capacity = corruptions[i].v; break;
	case CTL_OFF: h->ring[corruptions[i].ring].ctl_off = corruptions[i].v; break;
	case DATA_OFF: h->ring[corruptions[i].ring].data_off = corruptions[i].v; break;
	case HEAD: atomic_store(&ctl->head, corruptions[i].v); break;
	case TAIL: atomic_store(&ctl->tail, corruptions[i].v); break;
	}
	err = shm_seg_attach_fd(shm_seg_fd(s), &a);
	ck_assert_msg(err == corruptions[i].err, "corruption %u: got %d", i, err);
	if (!err)
		shm_seg_close(a);
	shm_seg_close(s);
}
END_TEST

START_TEST(test_seg_short_file)
{
	struct shm_seg *a;
	int fd = memfd_create("short", MFD_CLOEXEC);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(shm_seg_attach_fd(fd, &a), -EBADMSG); /* empty */
	ck_assert_int_eq(ftruncate(fd, 100), 0);
	ck_assert_int_eq(shm_seg_attach_fd(fd, &a), -EBADMSG);
	ck_assert_int_eq(ftruncate(fd, 1 << 20), 0);
	ck_assert_int_eq(shm_seg_attach_fd(fd, &a), -EBADMSG); /* zeros */
	close(fd);
	ck_assert_int_eq(shm_seg_attach_fd(fd, &a), -EBADF);
}
END_TEST

START_TEST(test_wait_timeout)
{
	struct guarded g;
	struct timespec t0, t1;
	long ms;

	guarded_init(&g, 1024, 0);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	ck_assert_int_eq(shm_ring_wait_data(&g.cons, 100, 30), -ETIMEDOUT);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	ms = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;
	ck_assert_int_ge(ms, 29);
	ck_assert_int_lt(ms, 1000);
	ck_assert_uint_ge(g.cons.sleeps, 1);
	/* The timed-out waiter withdrew its announcement: no wake syscall. */
	ck_assert_uint_eq(atomic_load(&g.ctl->data.sleeping), 0);
	ck_assert_int_eq(shm_ring_push(&g.prod, 1, 0, 0, "", 0), 0);
	ck_assert_int_eq(shm_ring_notify(&g.prod), 0);
	ck_assert_int_eq(shm_ring_wait_data(&g.cons, 0, 0), 0);
	guarded_free(&g);
}
END_TEST

/* A consumer that waits in epoll on an eventfd (the gateway's loop): the producer's
 * notify writes the eventfd only when the consumer announced a sleep, and leaves the
 * futex word alone. */
START_TEST(test_notify_eventfd)
{
	struct guarded g;
	uint64_t v = 0;
	int efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);

	ck_assert_int_ge(efd, 0);
	guarded_init(&g, 1024, 0);
	shm_ring_set_data_eventfd(&g.prod, efd);
	/* Awake consumer: nothing written. */
	ck_assert_int_eq(shm_ring_push(&g.prod, 1, 0, 0, "a", 1), 0);
	ck_assert_int_eq(shm_ring_notify(&g.prod), 0);
	ck_assert_int_eq(eventfd_read(efd, &v), -1);
	/* Announced: one write, the announcement taken, seq untouched (no futex waiter). */
	uint32_t seq = shm_doorbell_prepare(g.prod.data_db);
	ck_assert_int_eq(shm_ring_push(&g.prod, 1, 0, 0, "b", 1), 0);
	ck_assert_int_eq(shm_ring_notify(&g.prod), 1);
	ck_assert_uint_eq(g.prod.wakes, 1);
	ck_assert_int_eq(eventfd_read(efd, &v), 0);
	ck_assert_uint_eq(v, 1);
	ck_assert_uint_eq(atomic_load(&g.ctl->data.sleeping), 0);
	ck_assert_uint_eq(atomic_load(&g.ctl->data.seq), seq);
	/* Once per announcement. */
	ck_assert_int_eq(shm_ring_notify(&g.prod), 0);
	ck_assert_int_eq(eventfd_read(efd, &v), -1);
	/* -1 restores the futex ring. */
	shm_ring_set_data_eventfd(&g.prod, -1);
	shm_doorbell_prepare(g.prod.data_db);
	ck_assert_int_eq(shm_ring_notify(&g.prod), 1);
	ck_assert_uint_eq(atomic_load(&g.ctl->data.seq), seq + 1);
	ck_assert_int_eq(eventfd_read(efd, &v), -1);
	guarded_free(&g);
	close(efd);
}
END_TEST

/* Polls (bounded) until the peer announces its sleep. */
static void await_sleeper(struct shm_doorbell *db)
{
	for (int i = 0; i < 5000 && !atomic_load(&db->sleeping); i++)
		usleep(1000);
	ck_assert_uint_eq(atomic_load(&db->sleeping), 1);
	usleep(2000); /* let it reach FUTEX_WAIT; either way it must wake */
}

static long elapsed_ms(const struct timespec *t0)
{
	struct timespec t1;

	clock_gettime(CLOCK_MONOTONIC, &t1);
	return (t1.tv_sec - t0->tv_sec) * 1000 + (t1.tv_nsec - t0->tv_nsec) / 1000000;
}

static pid_t fork_peer(void)
{
	pid_t pid = fork();

	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		alarm(20);
	}
	return pid;
}

static void reap(pid_t pid)
{
	int st;

	ck_assert_int_eq(waitpid(pid, &st, 0), pid);
	ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "peer status %#x", st);
}

START_TEST(test_wake_cross_process)
{
	struct shm_seg *s;
	struct shm_ring p, c;
	pid_t pid;

	ck_assert_int_eq(shm_seg_create_memfd("wake", &opts, &s), 0);
	ck_assert_int_eq(shm_seg_ring(s, SHM_SEG_TO_WORKER, SHM_RING_PRODUCER, &p), 0);
	pid = fork_peer();
	if (pid == 0) {
		struct shm_seg *a;
		struct shm_ring_iter it;
		struct shm_rec rec;

		if (shm_seg_attach_fd(shm_seg_fd(s), &a) ||
		    shm_seg_ring(a, SHM_SEG_TO_WORKER, SHM_RING_CONSUMER, &c))
			_exit(2);
		struct timespec t0;

		/* No spinning: straight to the futex. Woken, not timed out: the
		 * parent rings within milliseconds of our sleep. */
		clock_gettime(CLOCK_MONOTONIC, &t0);
		if (shm_ring_wait_data(&c, 0, 10000) != 0 || c.sleeps != 1)
			_exit(3);
		if (elapsed_ms(&t0) > 5000)
			_exit(5);
		if (shm_ring_peek(&c, &it) <= 0 || shm_ring_next(&it, &rec) != 1 || rec.conn != 99)
			_exit(4);
		_exit(0);
	}
	await_sleeper(p.data_db);
	ck_assert_int_eq(shm_ring_push(&p, 1, 0, 99, "", 0), 0);
	ck_assert_int_eq(shm_ring_notify(&p), 1);
	ck_assert_int_eq(shm_ring_notify(&p), 0); /* once per sleep */
	reap(pid);
	shm_seg_close(s);
}
END_TEST

START_TEST(test_wait_space_cross_process)
{
	struct shm_seg *s;
	struct shm_ring p, c;
	struct shm_ring_iter it;
	struct shm_rec rec;
	pid_t pid;

	ck_assert_int_eq(shm_seg_create_memfd("space", &opts, &s), 0);
	ck_assert_int_eq(shm_seg_ring(s, SHM_SEG_TO_GATEWAY, SHM_RING_CONSUMER, &c), 0);
	pid = fork_peer();
	if (pid == 0) {
		struct shm_seg *a;
		unsigned n = 0;

		if (shm_seg_attach_fd(shm_seg_fd(s), &a) ||
		    shm_seg_ring(a, SHM_SEG_TO_GATEWAY, SHM_RING_PRODUCER, &p))
			_exit(2);
		while (shm_ring_push(&p, 1, 0, n, zeros, 112) == 0)
			n++;
		if (n != 4096 / 128)
			_exit(3);
		struct timespec t0;

		clock_gettime(CLOCK_MONOTONIC, &t0);
		if (shm_ring_wait_space(&p, 112, 0, 10000) != 0 || p.sleeps != 1)
			_exit(4);
		if (elapsed_ms(&t0) > 5000)
			_exit(6);
		if (shm_ring_push(&p, 1, 0, n, zeros, 112) != 0)
			_exit(5);
		_exit(0);
	}
	await_sleeper(c.space_db);
	ck_assert_int_eq(shm_ring_peek(&c, &it), 4096);
	ck_assert_int_eq(shm_ring_next(&it, &rec), 1);
	shm_ring_release(&c, &it);
	ck_assert_uint_eq(c.wakes, 1);
	reap(pid);
	shm_seg_close(s);
}
END_TEST

/* One waiter, one doorbell, two rings (the gateway pump's scheme). */
START_TEST(test_shared_doorbell)
{
	struct shm_seg *s[2];
	struct shm_ring p[2], c[2];
	struct shm_doorbell *db;
	pid_t pid;

	db = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	ck_assert_ptr_ne(db, MAP_FAILED);
	for (int i = 0; i < 2; i++) {
		ck_assert_int_eq(shm_seg_create_memfd("bell", &opts, &s[i]), 0);
		ck_assert_int_eq(shm_seg_ring(s[i], SHM_SEG_TO_GATEWAY, SHM_RING_CONSUMER, &c[i]), 0);
		shm_ring_set_data_doorbell(&c[i], db);
	}
	pid = fork_peer();
	if (pid == 0) {
		for (int i = 0; i < 2; i++) {
			if (shm_seg_ring(s[i], SHM_SEG_TO_GATEWAY, SHM_RING_PRODUCER, &p[i]))
				_exit(2);
			shm_ring_set_data_doorbell(&p[i], db);
		}
		/* Wait until the parent sleeps on the shared doorbell, then
		 * feed the second ring only. */
		for (int i = 0; i < 5000 && !atomic_load(&db->sleeping); i++)
			usleep(1000);
		usleep(2000);
		if (shm_ring_push(&p[1], 1, 0, 5, "", 0) || shm_ring_notify(&p[1]) != 1)
			_exit(3);
		_exit(0);
	}
	for (;;) {
		uint32_t seq = shm_doorbell_prepare(db);

		if (shm_ring_pending(&c[0]) || shm_ring_pending(&c[1])) {
			shm_doorbell_cancel(db);
			break;
		}
		ck_assert_int_eq(shm_doorbell_sleep(db, seq, 10000), 0);
	}
	ck_assert(!shm_ring_pending(&c[0]));
	ck_assert(shm_ring_pending(&c[1]));
	reap(pid);
	for (int i = 0; i < 2; i++)
		shm_seg_close(s[i]);
	munmap(db, 4096);
}
END_TEST

static Suite *ring_suite(void)
{
	Suite *s = suite_create("shm_ring");
	TCase *tc = tcase_create("ring");

	tcase_add_test(tc, test_empty);
	tcase_add_test(tc, test_push_pop_batch);
	tcase_add_test(tc, test_full_boundary);
	tcase_add_test(tc, test_wrap_every_offset);
	tcase_add_test(tc, test_all_sizes);
	tcase_add_test(tc, test_oversize);
	tcase_add_test(tc, test_reserve_commit);
	tcase_add_test(tc, test_hostile_producer);
	tcase_add_test(tc, test_hostile_consumer);
	tcase_set_timeout(tc, 30);
	suite_add_tcase(s, tc);

	tc = tcase_create("segment");
	tcase_add_test(tc, test_seg_memfd);
	tcase_add_test(tc, test_seg_bad_opts);
	tcase_add_test(tc, test_seg_named);
	tcase_add_loop_test(tc, test_seg_corrupt, 0,
			    (int)(sizeof(corruptions) / sizeof(corruptions[0])));
	tcase_add_test(tc, test_seg_short_file);
	suite_add_tcase(s, tc);

	tc = tcase_create("sleep");
	tcase_add_test(tc, test_wait_timeout);
	tcase_add_test(tc, test_notify_eventfd);
	tcase_add_test(tc, test_wake_cross_process);
	tcase_add_test(tc, test_wait_space_cross_process);
	tcase_add_test(tc, test_shared_doorbell);
	tcase_set_timeout(tc, 30);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(ring_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
