/* Tests of gateway/outq.c: a connection's output queue written to real sockets and pipes. */
#include "gateway/outq.h"
#include "gateway/budget.h"

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

/* ck_assert* reports every success to the parent process; loops over many bytes use this. */
#define REQUIRE(cond) do { if (!(cond)) ck_abort_msg("%s:%d: %s", __FILE__, __LINE__, #cond); } while (0)

/* The -ENOMEM test asks malloc for 2^62 bytes: ASan must answer NULL as glibc does, not abort. */
const char *__asan_default_options(void);
const char *__asan_default_options(void)
{
	return "allocator_may_return_null=1";
}
const char *__tsan_default_options(void);
const char *__tsan_default_options(void)
{
	return "allocator_may_return_null=1";
}

/* Byte i of every test's output stream: frames are cut from it in order, so the reader
 * checks order and content with one comparison per byte, whatever the cuts. */
static uint8_t pat(size_t i)
{
	return (uint8_t)(i * 131 + (i >> 9) + (i >> 17));
}

static uint8_t *stream_new(size_t n)
{
	uint8_t *s = malloc(n);
	ck_assert_ptr_nonnull(s);
	for (size_t i = 0; i < n; i++)
		s[i] = pat(i);
	return s;
}

static uint32_t rng_next(uint32_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 17;
	*s ^= *s << 5;
	return *s;
}

/* A non-blocking socketpair whose writer (sv[0]) has the smallest send buffer, so writes
 * come up short every few KiB. */
static void small_socketpair(int sv[2])
{
	int one = 1;
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
	ck_assert_int_eq(setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &one, sizeof(one)), 0);
}

/* A non-blocking pipe that takes 1 MiB (the unprivileged maximum) before it is full. */
static void big_pipe(int p[2])
{
	ck_assert_int_eq(pipe2(p, O_NONBLOCK | O_CLOEXEC), 0);
	ck_assert_int_ge(fcntl(p[1], F_SETPIPE_SZ, 1 << 20), 1 << 20);
}

/* Reads everything fd holds now; checks it continues the pattern at *at. */
static size_t drain(int fd, size_t *at)
{
	static uint8_t buf[65536];
	size_t got = 0;
	for (;;) {
		ssize_t r = read(fd, buf, sizeof(buf));
		if (r < 0 && errno == EAGAIN)
			return got;
		REQUIRE(r > 0);
		for (ssize_t i = 0; i < r; i++)
			REQUIRE(buf[i] == pat(*at + (size_t)i));
		*at += (size_t)r;
		got += (size_t)r;
	}
}

/* Appends stream[*off..] as a frame of hlen header bytes and n payload bytes. */
static void append(struct outq *q, const uint8_t *stream, size_t *off, size_t hlen, size_t n)
{
	size_t before = q->bytes;
	REQUIRE(outq_append2(q, stream + *off, hlen, stream + *off + hlen, n) == 0);
	REQUIRE(q->bytes == before + hlen + n);
	*off += hlen + n;
}

/* A shared frame of n bytes of stream[*off..], queued on q (join as outq_append_frame). */
static void append_shared(struct outq *q, const uint8_t *stream, size_t *off, size_t n,
			  uint64_t tag, int join)
{
	struct outq_frame f;
	size_t before = q->bytes;
	REQUIRE(outq_frame_new(&f, n, tag) == 0);
	memcpy(f.data, stream + *off, n);
	REQUIRE(outq_append_frame(q, &f, join) == 0);
	outq_frame_put(&f);
	REQUIRE(q->bytes == before + n);
	*off += n;
}

/* The ciphertext queue's way (gateway/tls.c): a byte stream written in odd pieces across
 * standard chunks, looked at through outq_iov with a limit, consumed in odd amounts; the
 * bytes come out in order and the counts stay exact. */
START_TEST(test_stream_write_iov_consume)
{
	enum { N = 300000 };
	uint8_t *stream = stream_new(N);
	struct outq q = { 0 };
	uint32_t rng = 7;
	size_t in = 0, out = 0;

	while (out < N) {
		while (in < N && q.bytes < 100000) {
			size_t k = rng_next(&rng) % 20000;
			if (k > N - in)
				k = N - in;
			REQUIRE(outq_write(&q, stream + in, k) == 0);
			in += k;
		}
		struct iovec iov[8];
		int cnt;
		size_t limit = 1 + rng_next(&rng) % 70000;
		size_t got = outq_iov(&q, iov, 8, limit, &cnt);
		REQUIRE(got <= limit && got <= q.bytes && cnt <= 8);
		REQUIRE(got == limit || got == q.bytes || cnt == 8);
		size_t take = got ? 1 + rng_next(&rng) % got : 0, seen = 0;
		for (int i = 0; i < cnt && seen < take; i++) {
			const uint8_t *b = iov[i].iov_base;
			for (size_t j = 0; j < iov[i].iov_len && seen < take; j++, seen++)
				REQUIRE(b[j] == pat(out + seen));
		}
		size_t before = q.bytes;
		outq_consume(&q, take);
		REQUIRE(q.bytes == before - take);
		out += take;
	}
	ck_assert_ptr_null(q.head);
	ck_assert_uint_eq(q.bytes, 0);
	free(stream);
}
END_TEST

START_TEST(test_empty_queue)
{
	struct outq q = { 0 };

	/* Nothing to write: no write is attempted, even on a descriptor that is not one. */
	ck_assert_int_eq(outq_flush(&q, -1), 0);
	outq_clear(&q);
	ck_assert_ptr_null(q.head);
	ck_assert_ptr_null(q.tail);
	ck_assert_uint_eq(q.bytes, 0);
}
END_TEST

START_TEST(test_order_and_bytes)
{
	/* Header-only frames, empty payloads, frames that fill the first chunk exactly, and
	 * ones larger than a standard chunk, in one queue. */
	static const size_t sizes[][2] = {
		{ 2, 0 }, { 0, 5 }, { 14, 125 }, { 10, 1000 }, { 4, 16380 }, { 2, 1 },
		{ 10, 40000 }, { 0, 0 }, { 2, 16382 }, { 6, 7 }, { 10, 100000 }, { 2, 3 },
	};
	size_t total = 0, off = 0, at = 0;
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++)
		total += sizes[i][0] + sizes[i][1];
	uint8_t *s = stream_new(total);
	struct outq q = { 0 };
	int p[2];

	big_pipe(p);
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++)
		append(&q, s, &off, sizes[i][0], sizes[i][1]);
	ck_assert_uint_eq(q.bytes, total);
	ck_assert_int_eq(outq_flush(&q, p[1]), 0);
	ck_assert_uint_eq(q.bytes, 0);
	ck_assert_ptr_null(q.head);
	ck_assert_ptr_null(q.tail);
	ck_assert_uint_eq(drain(p[0], &at), total);
	close(p[0]);
	close(p[1]);
	free(s);
}
END_TEST

START_TEST(test_more_chunks_than_one_writev)
{
	/* 9000-byte frames never share a 16 KiB chunk: 100 chunks, more than one writev's
	 * vector. With room for all of it, one flush must write all of it. */
	size_t n = 100, fsz = 9000, off = 0, at = 0;
	uint8_t *s = stream_new(n * fsz);
	struct outq q = { 0 };
	int p[2];

	big_pipe(p);
	for (size_t i = 0; i < n; i++)
		append(&q, s, &off, 10, fsz - 10);
	ck_assert_int_eq(outq_flush(&q, p[1]), 0);
	ck_assert_uint_eq(q.bytes, 0);
	ck_assert_ptr_null(q.head);
	ck_assert_uint_eq(drain(p[0], &at), n * fsz);
	close(p[0]);
	close(p[1]);
	free(s);
}
END_TEST

START_TEST(test_partial_writes)
{
	/* 2 MiB in frames of random sizes (a few past 64 KiB) through a socket that takes a
	 * few KiB at a time: each flush writes what fits and says 1 until the end, and
	 * q->bytes is always exactly what the reader has not received. */
	size_t total = 2u << 20, off = 0, at = 0, rounds = 0;
	uint8_t *s = stream_new(total);
	struct outq q = { 0 };
	uint32_t rng = 0x9e3779b9;
	int sv[2];

	small_socketpair(sv);
	while (off < total) {
		uint32_t r = rng_next(&rng);
		size_t hlen = (size_t[]){ 2, 4, 10, 14 }[r & 3];
		size_t n = (r >> 8) % 64 == 0 ? 65536 + (r >> 12) % 100000 : (r >> 8) % 3000;
		if (off + hlen + n > total)
			hlen = 0, n = total - off;
		append(&q, s, &off, hlen, n);
	}
	ck_assert_uint_eq(q.bytes, total);
	for (;;) {
		size_t before = q.bytes;
		int rc = outq_flush(&q, sv[0]);
		drain(sv[1], &at);
		REQUIRE(at == total - q.bytes);
		if (rc == 0)
			break;
		REQUIRE(rc == 1);
		REQUIRE(q.bytes > 0 && q.bytes < before);
		REQUIRE(++rounds < total);
	}
	ck_assert_uint_eq(at, total);
	ck_assert_ptr_null(q.head);
	ck_assert_ptr_null(q.tail);
	/* The socket really was small: the test exercised short writes. */
	ck_assert_uint_gt(rounds, 10);
	close(sv[0]);
	close(sv[1]);
	free(s);
}
END_TEST

START_TEST(test_full_socket)
{
	size_t off = 0, at = 0;
	uint8_t *s = stream_new(1u << 20);
	struct outq q = { 0 };
	int sv[2];

	small_socketpair(sv);
	append(&q, s, &off, 10, (1u << 20) - 10);
	ck_assert_int_eq(outq_flush(&q, sv[0]), 1);
	size_t left = q.bytes;
	ck_assert_uint_gt(left, 0);
	/* Nobody read: the socket is still full, nothing moves, nothing is lost. */
	ck_assert_int_eq(outq_flush(&q, sv[0]), 1);
	ck_assert_uint_eq(q.bytes, left);
	ck_assert_uint_eq(drain(sv[1], &at), (1u << 20) - left);
	while (outq_flush(&q, sv[0]) == 1)
		drain(sv[1], &at);
	drain(sv[1], &at);
	ck_assert_uint_eq(at, 1u << 20);
	close(sv[0]);
	close(sv[1]);
	free(s);
}
END_TEST

START_TEST(test_large_payload_own_chunk)
{
	/* A large frame is copied into one chunk of its own, from the buffer pool: at most
	 * half again its size (the pool's classes), not a power of two. */
	size_t big = (1u << 20) + 333, off = 0, at = 0;
	uint8_t *s = stream_new(big + 100);
	struct outq q = { 0 };
	int p[2];

	append(&q, s, &off, 2, 5);
	void *first = q.tail;
	append(&q, s, &off, 10, big - 10);
	ck_assert_ptr_ne(q.tail, first);
	size_t usable = malloc_usable_size(q.tail);
	ck_assert_uint_ge(usable, big);
	ck_assert_uint_le(usable, big + big / 2 + 4096);
	/* It is full: the next frame starts another chunk instead of growing this one. */
	void *bigc = q.tail;
	append(&q, s, &off, 2, 50);
	ck_assert_ptr_ne(q.tail, bigc);

	small_socketpair(p);
	while (outq_flush(&q, p[0]) == 1)
		drain(p[1], &at);
	drain(p[1], &at);
	ck_assert_uint_eq(at, off);
	close(p[0]);
	close(p[1]);
	free(s);
}
END_TEST

START_TEST(test_chunk_cache)
{
	/* Flushed 16 KiB chunks are kept for the next queue; a recycled chunk must come back
	 * empty (its old bytes and write offset gone) and only for a standard-size need. */
	size_t off = 0, at = 0;
	uint8_t *s = stream_new(200000);
	struct outq q = { 0 }, q2 = { 0 };
	void *std[3];
	int sv[2];

	small_socketpair(sv);
	append(&q, s, &off, 2, 3); /* the small first chunk */
	for (int i = 0; i < 3; i++) {
		append(&q, s, &off, 10, 8990);
		std[i] = q.tail;
	}
	ck_assert(std[0] != std[1] && std[1] != std[2]);
	/* Flushed with short writes, so each chunk had a write offset inside it. */
	while (outq_flush(&q, sv[0]) == 1)
		drain(sv[1], &at);
	drain(sv[1], &at);
	ck_assert_uint_eq(at, off);

	append(&q2, s, &off, 2, 3);
	append(&q2, s, &off, 10, 8990);
	ck_assert(q2.tail == std[0] || q2.tail == std[1] || q2.tail == std[2]);
	/* A frame too large for a standard chunk gets its own, never a cached one. */
	append(&q2, s, &off, 10, 40000);
	ck_assert(q2.tail != std[0] && q2.tail != std[1] && q2.tail != std[2]);
	ck_assert_uint_ge(malloc_usable_size(q2.tail), 40010);
	append(&q2, s, &off, 10, 100);
	while (outq_flush(&q2, sv[0]) == 1)
		drain(sv[1], &at);
	drain(sv[1], &at);
	ck_assert_uint_eq(at, off);
	ck_assert_uint_eq(q2.bytes, 0);
	close(sv[0]);
	close(sv[1]);
	free(s);
}
END_TEST

START_TEST(test_closed_peer)
{
	size_t off = 0;
	uint8_t *s = stream_new(1000);
	struct outq q = { 0 };
	int sv[2];

	/* As the gateway does (server.c): a dead peer is an error to handle, not a signal. */
	signal(SIGPIPE, SIG_IGN);
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
	close(sv[1]);
	append(&q, s, &off, 2, 100);
	ck_assert_int_eq(outq_flush(&q, sv[0]), -EPIPE);
	outq_clear(&q);
	ck_assert_uint_eq(q.bytes, 0);
	ck_assert_ptr_null(q.head);
	ck_assert_ptr_null(q.tail);
	close(sv[0]);
	free(s);
}
END_TEST

START_TEST(test_clear_after_partial_write)
{
	/* Clearing drops what is still queued, including the rest of a half-written chunk;
	 * the queue then works as a new one. */
	size_t off = 0, at = 0;
	uint8_t *s = stream_new(1u << 20);
	struct outq q = { 0 };
	int sv[2];

	small_socketpair(sv);
	append(&q, s, &off, 10, 300000);
	append(&q, s, &off, 2, 20);
	ck_assert_int_eq(outq_flush(&q, sv[0]), 1);
	size_t written = off - q.bytes;
	outq_clear(&q);
	ck_assert_uint_eq(q.bytes, 0);
	ck_assert_ptr_null(q.head);
	ck_assert_ptr_null(q.tail);
	ck_assert_uint_eq(drain(sv[1], &at), written);

	/* New bytes continue the pattern from where the reader is. */
	ck_assert_int_eq(outq_append2(&q, s + at, 4, s + at + 4, 1000), 0);
	ck_assert_uint_eq(q.bytes, 1004);
	while (outq_flush(&q, sv[0]) == 1)
		drain(sv[1], &at);
	drain(sv[1], &at);
	ck_assert_uint_eq(at, written + 1004);
	close(sv[0]);
	close(sv[1]);
	free(s);
}
END_TEST

START_TEST(test_trim_keeps_the_frame_under_way)
{
	/* Trimming after a partial write keeps the rest of the frame being written, so the
	 * peer still gets whole frames after it (a close frame); everything behind it goes.
	 * outq_clear there would cut a frame in half and turn the next one into its payload. */
	size_t off = 0, at = 0;
	uint8_t *s = stream_new(1u << 20);
	struct outq q = { 0 };
	int sv[2];

	small_socketpair(sv);
	append(&q, s, &off, 10, 300000);
	size_t first = off;
	append(&q, s, &off, 2, 20);
	append_shared(&q, s, &off, 100, 7, 1);
	ck_assert_int_eq(outq_flush(&q, sv[0]), 1);
	size_t written = first + 22 + 100 - q.bytes;
	ck_assert_uint_lt(written, first);
	outq_trim(&q);
	ck_assert_uint_eq(q.bytes, first - written);
	while (outq_flush(&q, sv[0]) == 1)
		drain(sv[1], &at);
	drain(sv[1], &at);
	ck_assert_uint_eq(at, first); /* exactly the first frame, whole; nothing after it */
	ck_assert_uint_eq(q.bytes, 0);
	/* Nothing partly written: trimming is clearing. */
	append(&q, s, &off, 2, 20);
	outq_trim(&q);
	ck_assert_ptr_null(q.head);
	ck_assert_uint_eq(q.bytes, 0);
	close(sv[0]);
	close(sv[1]);
	free(s);
}
END_TEST

/* A frame of the queue's own behind a shared one (a close frame after a published
 * message): it goes into a chunk of its own, never into the shared node, which has no
 * room at all. Found by ASan in the slow-subscriber close policy. */
START_TEST(test_own_frame_after_shared)
{
	size_t off = 0, at = 0;
	uint8_t *s = stream_new(4096);
	struct outq q = { 0 };
	int p[2];

	big_pipe(p);
	for (int i = 0; i < 3; i++) {
		append_shared(&q, s, &off, 100, 1, i & 1);
		append(&q, s, &off, 2, i ? 30 : 0);
	}
	ck_assert_uint_eq(q.bytes, off);
	ck_assert_int_eq(outq_flush(&q, p[1]), 0);
	drain(p[0], &at);
	ck_assert_uint_eq(at, off);
	close(p[0]);
	close(p[1]);
	free(s);
}
END_TEST

START_TEST(test_enomem_appends_nothing)
{
	size_t off = 0, at = 0;
	uint8_t *s = stream_new(100);
	struct outq q = { 0 };
	int p[2];

	append(&q, s, &off, 2, 10);
	struct outq before = q;
	/* malloc cannot serve 2^62 bytes; the payload is never read. */
	ck_assert_int_eq(outq_append2(&q, s, 2, s, (size_t)1 << 62), -ENOMEM);
	ck_assert_uint_eq(q.bytes, before.bytes);
	ck_assert_ptr_eq(q.head, before.head);
	ck_assert_ptr_eq(q.tail, before.tail);
	big_pipe(p);
	ck_assert_int_eq(outq_flush(&q, p[1]), 0);
	ck_assert_uint_eq(drain(p[0], &at), 12);
	close(p[0]);
	close(p[1]);
	free(s);
}
END_TEST

/* A live upgrade moves a queue as bytes (gateway/handover_sess.c): what outq_copy gives,
 * imported with outq_import, is the same stream; the rest of a frame partly written stays
 * the head that outq_trim keeps whole; the budget is charged and credited exactly. */
START_TEST(test_export_import)
{
	for (int cut = 0; cut < 3; cut++) {
		uint64_t used0 = bud_used(BUD_OUTBOUND);
		uint8_t *stream = stream_new(100000);
		size_t off = 0;
		struct outq q = { 0 };
		append(&q, stream, &off, 2, 300);
		append(&q, stream, &off, 4, 20000); /* its own chunk */
		append_shared(&q, stream, &off, 500, 7, 0);
		append(&q, stream, &off, 2, 40);
		/* Written: nothing, part of the first frame, part of the large one. */
		size_t written = cut == 0 ? 0 : cut == 1 ? 100 : 302 + 5000;
		outq_consume(&q, written);
		size_t started = outq_started(&q);
		REQUIRE(cut == 0 ? started == 0 : started > 0);
		uint8_t *bytes = malloc(q.bytes);
		outq_copy(&q, bytes);
		for (size_t i = 0; i < q.bytes; i++)
			REQUIRE(bytes[i] == pat(written + i));
		struct outq q2 = { 0 };
		REQUIRE(outq_import(&q2, bytes, started, bytes + started, q.bytes - started) == 0);
		REQUIRE(q2.bytes == q.bytes);
		REQUIRE(outq_started(&q2) == started);
		uint8_t *again = malloc(q2.bytes);
		outq_copy(&q2, again);
		REQUIRE(memcmp(again, bytes, q2.bytes) == 0);
		/* A close after the upgrade: the partly written frame's rest is kept, whole. */
		size_t total = q.bytes;
		outq_trim(&q2);
		REQUIRE(q2.bytes == started);
		outq_clear(&q2);
		outq_clear(&q);
		(void)total;
		REQUIRE(bud_used(BUD_OUTBOUND) == used0);
		free(again);
		free(bytes);
		free(stream);
	}
}
END_TEST

/* A batch of publishes for one subscriber: consecutive shared frames joined into one span
 * leave in one iovec (a node per frame made the gateway walk 160,000 of them per batch at
 * 10,000 subscribers); another queue holding every other frame gets a node for each; both
 * streams come out whole and in order, and the blocks go back to the budget. */
START_TEST(test_shared_frames_join)
{
	uint64_t used0 = bud_used(BUD_OUTBOUND);
	uint8_t *s = stream_new(65536);
	struct outq all = { 0 }, odd = { 0 };
	struct outq_frame f[16];
	size_t off = 0;
	for (int i = 0; i < 16; i++) {
		REQUIRE(outq_frame_new(&f[i], 66, 9) == 0);
		memcpy(f[i].data, s + off, 66);
		off += 66;
		REQUIRE(outq_append_frame(&all, &f[i], 1) == 0);
		if (i & 1)
			REQUIRE(outq_append_frame(&odd, &f[i], 1) == 0);
	}
	ck_assert_uint_gt(bud_used(BUD_OUTBOUND), used0);
	for (int i = 0; i < 16; i++)
		outq_frame_put(&f[i]);
	struct iovec iov[64];
	int cnt;
	ck_assert_uint_eq(outq_iov(&all, iov, 64, SIZE_MAX, &cnt), 16 * 66);
	ck_assert_int_eq(cnt, 1);
	ck_assert_uint_eq(outq_iov(&odd, iov, 64, SIZE_MAX, &cnt), 8 * 66);
	ck_assert_int_eq(cnt, 8);
	for (int i = 0; i < 8; i++)
		ck_assert_mem_eq(iov[i].iov_base, s + (size_t)(2 * i + 1) * 66, 66);
	/* A joined span is one unit: it is never cut into frames to be dropped. */
	ck_assert_uint_eq(outq_drop_unsent(&all, 0, 0, NULL), 0);
	int p[2];
	size_t at = 0;
	big_pipe(p);
	ck_assert_int_eq(outq_flush(&all, p[1]), 0);
	ck_assert_uint_eq(drain(p[0], &at), 16 * 66);
	outq_clear(&odd);
	ck_assert_uint_eq(bud_used(BUD_OUTBOUND), used0);
	close(p[0]);
	close(p[1]);
	free(s);
}
END_TEST

/* Frames queued one node each (drop-oldest and latest subscribers) stay droppable one by
 * one, by tag or by need; a frame a write has started is kept; a frame too big to share a
 * block gets one of its own; the blocks are charged whole and all credited back. */
START_TEST(test_shared_frames_drop)
{
	uint64_t used0 = bud_used(BUD_OUTBOUND);
	uint8_t *s = stream_new(65536);
	struct outq q = { 0 };
	size_t off = 0;
	append_shared(&q, s, &off, 100, 1, 0);
	append_shared(&q, s, &off, 100, 2, 0);
	append_shared(&q, s, &off, 100, 1, 0);
	append_shared(&q, s, &off, 3000, 3, 0); /* a block of its own */
	ck_assert_uint_ge(bud_used(BUD_OUTBOUND) - used0, 4096 + 3000);
	outq_consume(&q, 10); /* the first frame is started */
	size_t freed;
	ck_assert_uint_eq(outq_drop_unsent(&q, 1, 0, &freed), 1);
	ck_assert_uint_eq(freed, 100);
	ck_assert_uint_eq(outq_drop_unsent(&q, 0, 50, &freed), 1); /* the oldest unsent: tag 2 */
	ck_assert_uint_eq(freed, 100);
	ck_assert_uint_eq(q.bytes, 90 + 3000);
	struct iovec iov[8];
	int cnt;
	outq_iov(&q, iov, 8, SIZE_MAX, &cnt);
	ck_assert_int_eq(cnt, 2);
	ck_assert_mem_eq(iov[0].iov_base, s + 10, 90);
	ck_assert_mem_eq(iov[1].iov_base, s + 300, 3000);
	outq_trim(&q);
	ck_assert_uint_eq(q.bytes, 90);
	outq_clear(&q);
	ck_assert_uint_eq(bud_used(BUD_OUTBOUND), used0);
	free(s);
}
END_TEST

/* The same frame of n bytes of stream[*off..] queued on a and on b, one node each. */
static void append_shared2(struct outq *a, struct outq *b, const uint8_t *stream, size_t *off,
			   size_t n, uint64_t tag)
{
	struct outq_frame f;
	REQUIRE(outq_frame_new(&f, n, tag) == 0);
	memcpy(f.data, stream + *off, n);
	REQUIRE(outq_append_frame(a, &f, 0) == 0);
	REQUIRE(outq_append_frame(b, &f, 0) == 0);
	outq_frame_put(&f);
	*off += n;
}

static int overlap(const struct iovec *a, const struct iovec *b)
{
	const uint8_t *p = a->iov_base, *q = b->iov_base;
	return p < q + b->iov_len && q < p + a->iov_len;
}

/* A subscriber that moves to another loop takes copies of its shared frames: it shares
 * no byte with the queue that stays, and keeps its bytes, the frame a write started
 * (outq_started, outq_trim), single frames droppable by tag, and the budget. */
START_TEST(test_unshare)
{
	uint64_t used0 = bud_used(BUD_OUTBOUND);
	uint8_t *s = stream_new(65536);
	struct outq mv = { 0 }, stay = { 0 };
	size_t off = 0;
	append(&mv, s, &off, 2, 40); /* its own bytes first */
	size_t sh = off;
	append_shared2(&mv, &stay, s, &off, 100, 1);
	append_shared2(&mv, &stay, s, &off, 100, 2);
	append_shared2(&mv, &stay, s, &off, 3000, 1); /* a block of its own */
	outq_consume(&mv, 42 + 10);                    /* the first shared frame started */
	ck_assert_int_eq(outq_unshare(&mv), 0);
	ck_assert_uint_eq(outq_started(&mv), 90);
	ck_assert_uint_eq(mv.bytes, 90 + 100 + 3000);
	struct iovec a[8], b[8];
	int na, nb;
	ck_assert_uint_eq(outq_iov(&mv, a, 8, SIZE_MAX, &na), 3190);
	ck_assert_uint_eq(outq_iov(&stay, b, 8, SIZE_MAX, &nb), 3200);
	ck_assert_int_eq(na, 3);
	ck_assert_int_eq(nb, 3);
	ck_assert_mem_eq(a[0].iov_base, s + sh + 10, 90);
	ck_assert_mem_eq(a[1].iov_base, s + sh + 100, 100);
	ck_assert_mem_eq(a[2].iov_base, s + sh + 200, 3000);
	for (int i = 0; i < 3; i++)
		for (int j = 0; j < 3; j++)
			ck_assert_msg(!overlap(&a[i], &b[j]), "frame %d still shares the other's %d", i, j);
	size_t freed;
	ck_assert_uint_eq(outq_drop_unsent(&mv, 1, 0, &freed), 1); /* not the started one */
	ck_assert_uint_eq(freed, 3000);
	outq_trim(&mv);
	ck_assert_uint_eq(mv.bytes, 90);
	ck_assert_mem_eq(b[0].iov_base, s + sh, 100); /* the other is as it was */
	outq_clear(&mv);
	outq_clear(&stay);
	ck_assert_uint_eq(bud_used(BUD_OUTBOUND), used0);
	free(s);
}
END_TEST

/* Many small frames of a subscriber that drops single ones (a node each) are copied
 * into a few blocks, not a page each: 300 frames of 16 bytes cost about their bytes. */
START_TEST(test_unshare_packs_small_frames)
{
	uint8_t *s = stream_new(65536);
	struct outq mv = { 0 }, stay = { 0 };
	size_t off = 0;
	for (int i = 0; i < 300; i++)
		append_shared2(&mv, &stay, s, &off, 16, (uint64_t)i + 1);
	outq_clear(&stay);
	uint64_t before = bud_used(BUD_OUTBOUND);
	ck_assert_int_eq(outq_unshare(&mv), 0);
	uint64_t grew = bud_used(BUD_OUTBOUND) - before;
	ck_assert_msg(grew <= 2 * 4096, "unsharing 300 x 16 bytes took %llu bytes", (unsigned long long)grew);
	ck_assert_uint_eq(outq_drop_unsent(&mv, 7, 0, NULL), 1); /* still one frame each */
	struct iovec v[512];
	int n;
	ck_assert_uint_eq(outq_iov(&mv, v, 512, SIZE_MAX, &n), 299 * 16);
	ck_assert_mem_eq(v[0].iov_base, s, 16);
	ck_assert_mem_eq(v[n - 1].iov_base, s + 299 * 16, 16);
	outq_clear(&mv);
	free(s);
}
END_TEST

static void *clear_there(void *arg)
{
	struct outq *q = arg;
	int p[2];
	size_t at = 0;
	big_pipe(p);
	REQUIRE(outq_flush(q, p[1]) == 0);
	drain(p[0], &at);
	outq_clear(q);
	outq_thread_end();
	close(p[0]);
	close(p[1]);
	return NULL;
}

/* The move itself: the queue is written and freed on another thread while this one goes
 * on packing frames into its current block and dropping those the queue shared
 * (ThreadSanitizer: make check-tsan runs this). */
START_TEST(test_unshared_queue_on_another_thread)
{
	uint8_t *s = stream_new(65536);
	bud_set_shared(); /* two threads charge, as two loops do */
	for (int round = 0; round < 50; round++) {
		struct outq mv = { 0 }, stay = { 0 };
		size_t off = 0;
		for (int i = 0; i < 20; i++)
			append_shared2(&mv, &stay, s, &off, i % 5 ? 64 : 2000, 7);
		REQUIRE(outq_unshare(&mv) == 0);
		pthread_t t;
		REQUIRE(pthread_create(&t, NULL, clear_there, &mv) == 0);
		struct outq more = { 0 };
		size_t off2 = off;
		for (int i = 0; i < 20; i++)
			append_shared(&more, s, &off2, 64, 8, 0);
		outq_clear(&stay);
		outq_clear(&more);
		REQUIRE(pthread_join(t, NULL) == 0);
	}
	free(s);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("outq");
	TCase *tc = tcase_create("outq");

	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_empty_queue);
	tcase_add_test(tc, test_order_and_bytes);
	tcase_add_test(tc, test_more_chunks_than_one_writev);
	tcase_add_test(tc, test_partial_writes);
	tcase_add_test(tc, test_full_socket);
	tcase_add_test(tc, test_large_payload_own_chunk);
	tcase_add_test(tc, test_chunk_cache);
	tcase_add_test(tc, test_closed_peer);
	tcase_add_test(tc, test_clear_after_partial_write);
	tcase_add_test(tc, test_trim_keeps_the_frame_under_way);
	tcase_add_test(tc, test_enomem_appends_nothing);
	tcase_add_test(tc, test_stream_write_iov_consume);
	tcase_add_test(tc, test_own_frame_after_shared);
	tcase_add_test(tc, test_export_import);
	tcase_add_test(tc, test_shared_frames_join);
	tcase_add_test(tc, test_shared_frames_drop);
	tcase_add_test(tc, test_unshare);
	tcase_add_test(tc, test_unshare_packs_small_frames);
	tcase_add_test(tc, test_unshared_queue_on_another_thread);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
