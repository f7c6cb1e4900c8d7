/* gateway/handover.c: records round-trip, every truncation is refused, and so is a
 * version this binary does not read. */
#include "gateway/handover.h"

#include <check.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define REQUIRE(cond) do { if (!(cond)) ck_abort_msg("%s:%d: %s", __FILE__, __LINE__, #cond); } while (0)

static uint8_t big[100000];

static void sample(struct ho_conn *c)
{
	memset(c, 0, sizeof(*c));
	c->id = 0x0123456789abcdefULL;
	c->state = 2;
	c->flags = 0x80 | 0x20;
	c->pool = 3;
	c->slow = 2;
	c->worker = 0xffff;
	c->deadline_ms = -1234;
	c->route = (struct ho_bytes){ (const uint8_t *)"/chat", 5 };
	memcpy(c->pmd, "\x01\x0a\x0f\x03", 4);
	c->rx.remaining = 1ULL << 40;
	c->rx.msg_len = 77;
	c->rx.utf8 = 12;
	memcpy(c->rx.mask, "\xde\xad\xbe\xef", 4);
	c->rx.phase = 3;
	c->rx.frame_fin = 1;
	c->rx.msg_op = 1;
	c->rx.in_frame = 1;
	c->rx.started = 1;
	c->rx.rsv1_ok = 1;
	c->rx.compressed = 0;
	c->in = (struct ho_bytes){ (const uint8_t *)"\x81\x85", 2 };
	for (size_t i = 0; i < sizeof(big); i++)
		big[i] = (uint8_t)(i * 7);
	c->msg = (struct ho_bytes){ big, 3000 };
	c->out_started = 1;
	c->out_head = (struct ho_bytes){ big + 5, 10 };
	c->out_rest = (struct ho_bytes){ big + 100, sizeof(big) - 100 };
	c->fields = (struct ho_bytes){ (const uint8_t *)"fields", 6 };
}

/* Rewrites a record's u64 length prefix: the record as a binary that writes body bytes. */
static void set_record_len(struct ho_buf *b, uint64_t body)
{
	for (int i = 0; i < 8; i++)
		b->p[i] = (uint8_t)(body >> (8 * i));
}

static int same_bytes(struct ho_bytes a, struct ho_bytes b)
{
	return a.n == b.n && (a.n == 0 || memcmp(a.p, b.p, a.n) == 0);
}

START_TEST(conn_round_trip)
{
	struct ho_conn a, b;
	sample(&a);
	struct ho_buf buf = { 0 };
	ck_assert_int_eq(ho_put_conn(&buf, &a), 0);
	ck_assert_int_eq(ho_put_conn(&buf, &a), 0); /* two in a row */
	size_t used, used2;
	ck_assert_int_eq(ho_get_conn(buf.p, buf.len, &b, &used), 0);
	ck_assert_uint_eq(used * 2, buf.len);
	ck_assert_uint_eq(b.id, a.id);
	ck_assert_uint_eq(b.state, a.state);
	ck_assert_uint_eq(b.flags, a.flags);
	ck_assert_uint_eq(b.pool, a.pool);
	ck_assert_uint_eq(b.slow, a.slow);
	ck_assert_uint_eq(b.worker, a.worker);
	ck_assert_int_eq(b.deadline_ms, a.deadline_ms);
	ck_assert(memcmp(b.pmd, a.pmd, 4) == 0);
	ck_assert(memcmp(&b.rx, &a.rx, sizeof(a.rx)) == 0);
	ck_assert(same_bytes(b.route, a.route));
	ck_assert(same_bytes(b.in, a.in));
	ck_assert(same_bytes(b.msg, a.msg));
	ck_assert_uint_eq(b.out_started, 1);
	ck_assert(same_bytes(b.out_head, a.out_head));
	ck_assert(same_bytes(b.out_rest, a.out_rest));
	ck_assert(same_bytes(b.fields, a.fields));
	ck_assert_int_eq(ho_get_conn(buf.p + used, buf.len - used, &b, &used2), 0);
	ck_assert_uint_eq(b.id, a.id);
	ho_buf_free(&buf);
}
END_TEST

/* Each prefix of a record, placed at the end of a page followed by a PROT_NONE page, is
 * refused without reading past it. */
START_TEST(conn_truncated)
{
	struct ho_conn a, b;
	sample(&a);
	a.msg.n = 40;
	a.out_rest.n = 50;
	struct ho_buf buf = { 0 };
	ck_assert_int_eq(ho_put_conn(&buf, &a), 0);
	long pg = sysconf(_SC_PAGESIZE);
	size_t area = ((buf.len + (size_t)pg - 1) / (size_t)pg) * (size_t)pg;
	uint8_t *m = mmap(NULL, area + (size_t)pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ck_assert(m != MAP_FAILED);
	ck_assert_int_eq(mprotect(m + area, (size_t)pg, PROT_NONE), 0);
	for (size_t n = 0; n < buf.len; n++) {
		uint8_t *p = m + area - n;
		memcpy(p, buf.p, n);
		size_t used;
		REQUIRE(ho_get_conn(p, n, &b, &used) == -EBADMSG);
	}
	size_t used;
	uint8_t *p = m + area - buf.len;
	memcpy(p, buf.p, buf.len);
	ck_assert_int_eq(ho_get_conn(p, buf.len, &b, &used), 0);
	munmap(m, area + (size_t)pg);
	ho_buf_free(&buf);
}
END_TEST

START_TEST(conn_bad_fields)
{
	struct ho_conn a, b;
	sample(&a);
	a.in.n = WS_RX_TAIL_MAX + 1;
	a.in.p = big;
	struct ho_buf buf = { 0 };
	ck_assert_int_eq(ho_put_conn(&buf, &a), -EINVAL);
	ck_assert_uint_eq(buf.len, 0);
	sample(&a);
	a.rx.phase = 4; /* a parser state no parser makes */
	ck_assert_int_eq(ho_put_conn(&buf, &a), 0);
	size_t used;
	ck_assert_int_eq(ho_get_conn(buf.p, buf.len, &b, &used), -EBADMSG);
	ho_buf_free(&buf);
}
END_TEST

/* Appends tail[0..n) to the record in buf, its length fixed: a new buffer. */
static uint8_t *longer(const struct ho_buf *buf, const void *tail, size_t n)
{
	uint8_t *p = malloc(buf->len + n);
	ck_assert(p);
	memcpy(p, buf->p, buf->len);
	memcpy(p + buf->len, tail, n);
	uint64_t body = buf->len - 8 + n;
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(body >> (8 * i));
	return p;
}

/* A later minor version may append entries to a record: this one skips those of a tag it
 * does not know. Bytes that are no entry (cut short, or longer than the record) are
 * refused. */
START_TEST(conn_longer_record)
{
	struct ho_conn a, b;
	sample(&a);
	a.msg.n = 0;
	a.out_rest.n = 0;
	struct ho_buf buf = { 0 };
	ck_assert_int_eq(ho_put_conn(&buf, &a), 0);
	size_t len = buf.len, used;
	static const uint8_t entry[] = { 0x7f, 5, 0, 0, 0, 'e', 'x', 't', 'r', 'a' };
	uint8_t *p = longer(&buf, entry, sizeof(entry));
	ck_assert_int_eq(ho_get_conn(p, len + sizeof(entry), &b, &used), 0);
	ck_assert_uint_eq(used, len + sizeof(entry));
	ck_assert_uint_eq(b.id, a.id);
	ck_assert_uint_eq(b.win_to.n + b.win_from.n, 0);
	free(p);
	for (size_t cut = 1; cut < sizeof(entry); cut++) {
		p = longer(&buf, entry, sizeof(entry) - cut);
		REQUIRE(ho_get_conn(p, len + sizeof(entry) - cut, &b, &used) == -EBADMSG);
		free(p);
	}
	ho_buf_free(&buf);
}
END_TEST

/* Version 3: a connection's deflate windows (context takeover) round-trip, either alone
 * or both, beside the other fields; none written means no entry at all (a record as
 * version 2 wrote it). A window over 32 KiB is refused when written and when read, and so
 * is an entry whose windows do not fill it exactly, or a second one. */
START_TEST(deflate_windows)
{
	struct ho_conn a, b;
	sample(&a);
	struct ho_buf plain = { 0 }, buf = { 0 };
	ck_assert_int_eq(ho_put_conn(&plain, &a), 0);
	a.win_to = (struct ho_bytes){ big + 1, HO_WINDOW_MAX };
	a.win_from = (struct ho_bytes){ big + 2, 1024 };
	ck_assert_int_eq(ho_put_conn(&buf, &a), 0);
	/* Tag, entry length, two window lengths: 9 bytes besides the windows. */
	ck_assert_uint_eq(buf.len, plain.len + 9 + HO_WINDOW_MAX + 1024);
	size_t used;
	ck_assert_int_eq(ho_get_conn(buf.p, buf.len, &b, &used), 0);
	ck_assert_uint_eq(used, buf.len);
	ck_assert(same_bytes(b.win_to, a.win_to));
	ck_assert(same_bytes(b.win_from, a.win_from));
	ck_assert(same_bytes(b.out_rest, a.out_rest));
	ck_assert(same_bytes(b.fields, a.fields));
	ck_assert_int_eq(ho_get_conn(plain.p, plain.len, &b, &used), 0);
	ck_assert_uint_eq(b.win_to.n + b.win_from.n, 0);
	/* The decompressor's alone (a client that keeps context, a gateway that does not). */
	buf.len = 0;
	a.win_to.n = 0;
	ck_assert_int_eq(ho_put_conn(&buf, &a), 0);
	ck_assert_int_eq(ho_get_conn(buf.p, buf.len, &b, &used), 0);
	ck_assert_uint_eq(b.win_to.n, 0);
	ck_assert(same_bytes(b.win_from, a.win_from));
	/* Every prefix of the entry is refused. */
	for (size_t n = plain.len + 1; n < buf.len; n++) {
		uint8_t *p = longer(&plain, buf.p + plain.len, n - plain.len);
		REQUIRE(ho_get_conn(p, n, &b, &used) == -EBADMSG);
		free(p);
	}
	/* Oversized: refused when written, the buffer as it was. */
	size_t before = buf.len;
	a.win_to = (struct ho_bytes){ big, HO_WINDOW_MAX + 1 };
	ck_assert_int_eq(ho_put_conn(&buf, &a), -EINVAL);
	a.win_to.n = 0;
	a.win_from = (struct ho_bytes){ big, HO_WINDOW_MAX + 1 };
	ck_assert_int_eq(ho_put_conn(&buf, &a), -EINVAL);
	ck_assert_uint_eq(buf.len, before);
	/* ...and when read: an entry of a window of 32 KiB + 1 and an empty one. */
	size_t en = 9 + HO_WINDOW_MAX + 1;
	uint8_t *e = calloc(1, en);
	uint32_t elen = (uint32_t)(en - 5);
	e[0] = HO_E_WINDOWS;
	for (int i = 0; i < 4; i++)
		e[1 + i] = (uint8_t)(elen >> (8 * i));
	e[5] = (uint8_t)((HO_WINDOW_MAX + 1) & 0xff);
	e[6] = (uint8_t)((HO_WINDOW_MAX + 1) >> 8);
	uint8_t *p = longer(&plain, e, en);
	ck_assert_int_eq(ho_get_conn(p, plain.len + en, &b, &used), -EBADMSG);
	free(p);
	/* An entry one byte longer than its windows, and two entries. */
	static const uint8_t pad[] = { HO_E_WINDOWS, 6, 0, 0, 0, 1, 0, 'x', 0, 0, 'y' };
	p = longer(&plain, pad, sizeof(pad));
	ck_assert_int_eq(ho_get_conn(p, plain.len + sizeof(pad), &b, &used), -EBADMSG);
	free(p);
	static const uint8_t twice[] = { HO_E_WINDOWS, 5, 0, 0, 0, 1, 0, 'x', 0, 0,
					 HO_E_WINDOWS, 5, 0, 0, 0, 1, 0, 'x', 0, 0 };
	p = longer(&plain, twice, 10);
	ck_assert_int_eq(ho_get_conn(p, plain.len + 10, &b, &used), 0);
	ck_assert_uint_eq(b.win_to.n, 1);
	free(p);
	p = longer(&plain, twice, sizeof(twice));
	ck_assert_int_eq(ho_get_conn(p, plain.len + sizeof(twice), &b, &used), -EBADMSG);
	free(p);
	free(e);
	ho_buf_free(&buf);
	ho_buf_free(&plain);
}
END_TEST

START_TEST(header_and_version)
{
	struct ho_buf buf = { 0 };
	struct ho_hello h = { 4242, 3, 99 }, g;
	ck_assert_int_eq(ho_put_hdr(&buf, HO_HELLO, 16), 0);
	ck_assert_int_eq(ho_put_hello(&buf, &h), 0);
	struct ho_hdr hd;
	ck_assert_int_eq(ho_get_hdr(buf.p, buf.len, &hd), 0);
	ck_assert_uint_eq(hd.type, HO_HELLO);
	ck_assert_uint_eq(hd.version, HO_VERSION);
	ck_assert(ho_version_ok(hd.version));
	ck_assert_int_eq(ho_get_hello(buf.p + HO_HDR, hd.len, &g), 0);
	ck_assert_uint_eq(g.pid, 4242);
	ck_assert_uint_eq(g.count, 3);
	ck_assert_uint_eq(g.next_id, 99);
	/* Truncated header or body, wrong magic, a body length that lies. */
	for (size_t n = 0; n < buf.len; n++)
		REQUIRE(ho_get_hdr(buf.p, n, &hd) == -EBADMSG || (n >= HO_HDR && hd.len != n - HO_HDR));
	ck_assert_int_eq(ho_get_hello(buf.p + HO_HDR, hd.len - 1, &g), -EBADMSG);
	buf.p[0] = 'X';
	ck_assert_int_eq(ho_get_hdr(buf.p, buf.len, &hd), -EPROTO);
	/* Another version is read as such and refused by ho_version_ok. */
	buf.len = 0;
	ck_assert_int_eq(ho_put_hdr_v(&buf, HO_VERSION + 1, HO_HELLO, 0), 0);
	ck_assert_int_eq(ho_get_hdr(buf.p, buf.len, &hd), 0);
	ck_assert_uint_eq(hd.version, HO_VERSION + 1);
	ck_assert(!ho_version_ok(hd.version));
	ck_assert(!ho_version_ok(0));
	ho_buf_free(&buf);
}
END_TEST

START_TEST(listen_entries)
{
	struct ho_buf buf = { 0 };
	struct ho_listen a = { 0, 2, 1 }, b = { 1, 0, 0 }, x;
	ck_assert_int_eq(ho_put_listen(&buf, &a), 0);
	ck_assert_int_eq(ho_put_listen(&buf, &b), 0);
	size_t used, off = 0;
	ck_assert_int_eq(ho_get_listen(buf.p, buf.len, &x, &used), 0);
	ck_assert(x.admin == 0 && x.index == 2 && x.tls == 1);
	off += used;
	ck_assert_int_eq(ho_get_listen(buf.p + off, buf.len - off, &x, &used), 0);
	ck_assert(x.admin == 1 && x.index == 0 && x.tls == 0);
	ck_assert_int_eq(ho_get_listen(buf.p, 2, &x, &used), -EBADMSG);
	buf.p[0] = 7;
	ck_assert_int_eq(ho_get_listen(buf.p, buf.len, &x, &used), -EBADMSG);
	ho_buf_free(&buf);
}
END_TEST

/* Version 2's parts: a connection's subscriptions travel in order with their positions;
 * a topic of 0 or 256 bytes is refused when written, and a list cut anywhere inside an
 * entry is refused when read. */
START_TEST(subscriptions)
{
	struct ho_buf subs = { 0 };
	static const char *const topics[] = { "a", "room/lobby", "t" };
	for (int i = 0; i < 3; i++) {
		struct ho_sub s = { { (const uint8_t *)topics[i], strlen(topics[i]) }, 1000u * (unsigned)i };
		ck_assert_int_eq(ho_put_sub(&subs, &s), 0);
	}
	struct ho_sub none = { { big, 0 }, 0 }, long_one = { { big, 256 }, 0 };
	ck_assert_int_eq(ho_put_sub(&subs, &none), -EINVAL);
	ck_assert_int_eq(ho_put_sub(&subs, &long_one), -EINVAL);
	struct ho_conn a, b;
	sample(&a);
	a.subs = (struct ho_bytes){ subs.p, subs.len };
	struct ho_buf buf = { 0 };
	ck_assert_int_eq(ho_put_conn(&buf, &a), 0);
	size_t used, off = 0;
	ck_assert_int_eq(ho_get_conn(buf.p, buf.len, &b, &used), 0);
	ck_assert(same_bytes(b.subs, a.subs));
	struct ho_sub s;
	for (int i = 0; i < 3; i++) {
		ck_assert_int_eq(ho_next_sub(&b.subs, &off, &s), 1);
		ck_assert_uint_eq(s.topic.n, strlen(topics[i]));
		ck_assert(memcmp(s.topic.p, topics[i], s.topic.n) == 0);
		ck_assert_uint_eq(s.after, 1000u * (unsigned)i);
	}
	ck_assert_int_eq(ho_next_sub(&b.subs, &off, &s), 0);
	/* Cut inside the last entry (its topic is one byte, its position 8). */
	for (size_t cut = 1; cut < 10; cut++) {
		struct ho_bytes part = { subs.p, subs.len - cut };
		off = 0;
		int rc;
		while ((rc = ho_next_sub(&part, &off, &s)) == 1)
			;
		REQUIRE(rc == -EBADMSG);
	}
	ho_buf_free(&buf);
	ho_buf_free(&subs);
}
END_TEST

/* A worker's entry, with the records the old gateway held for it, round-trips; every
 * prefix of it is refused; a held-record list cut short is refused; a pool or routing id
 * too long for the format is refused when written. */
START_TEST(worker_entries)
{
	struct ho_buf held = { 0 };
	struct ho_held h1 = { 1, 4, 77, { (const uint8_t *)"fields", 6 } };
	struct ho_held h2 = { 2, 0, 78, { big, 5000 } };
	ck_assert_int_eq(ho_put_held(&held, &h1), 0);
	ck_assert_int_eq(ho_put_held(&held, &h2), 0);
	struct ho_worker a = { .id = 7, .pid = 4242, .slot = 3,
			       .pool = { (const uint8_t *)"chat", 4 },
			       .ident = { (const uint8_t *)"wsgw1-4242-7", 12 },
			       .token = { (const uint8_t *)"tok", 3 },
			       .held = { held.p, held.len } }, b;
	struct ho_buf buf = { 0 };
	ck_assert_int_eq(ho_put_worker(&buf, &a), 0);
	size_t used;
	ck_assert_int_eq(ho_get_worker(buf.p, buf.len, &b, &used), 0);
	ck_assert_uint_eq(used, buf.len);
	ck_assert_uint_eq(b.id, 7);
	ck_assert_uint_eq(b.pid, 4242);
	ck_assert_uint_eq(b.slot, 3);
	ck_assert(same_bytes(b.pool, a.pool));
	ck_assert(same_bytes(b.ident, a.ident));
	ck_assert(same_bytes(b.token, a.token));
	size_t off = 0;
	struct ho_held h;
	ck_assert_int_eq(ho_next_held(&b.held, &off, &h), 1);
	ck_assert_uint_eq(h.type, 1);
	ck_assert_uint_eq(h.flags, 4);
	ck_assert_uint_eq(h.conn, 77);
	ck_assert(same_bytes(h.body, h1.body));
	ck_assert_int_eq(ho_next_held(&b.held, &off, &h), 1);
	ck_assert_uint_eq(h.conn, 78);
	ck_assert(same_bytes(h.body, h2.body));
	ck_assert_int_eq(ho_next_held(&b.held, &off, &h), 0);
	for (size_t n = 0; n < buf.len; n++)
		REQUIRE(ho_get_worker(buf.p, n, &b, &used) == -EBADMSG);
	struct ho_bytes cut = { held.p, held.len - 1 };
	off = 0;
	ck_assert_int_eq(ho_next_held(&cut, &off, &h), 1);
	ck_assert_int_eq(ho_next_held(&cut, &off, &h), -EBADMSG);
	struct ho_worker bad = a;
	bad.pool.n = HO_POOL_MAX + 1;
	bad.pool.p = big;
	size_t before = buf.len;
	ck_assert_int_eq(ho_put_worker(&buf, &bad), -EINVAL);
	bad = a;
	bad.ident.n = HO_IDENT_MAX + 1;
	bad.ident.p = big;
	ck_assert_int_eq(ho_put_worker(&buf, &bad), -EINVAL);
	ck_assert_uint_eq(buf.len, before);
	ho_buf_free(&buf);
	ho_buf_free(&held);
}
END_TEST

/* Version 4: a shm worker's entry names the loop that serves it; a version-3 entry (one
 * byte shorter) reads as loop 0's. */
START_TEST(worker_loop_entries)
{
	struct ho_worker a = { .id = 11, .pid = 4444, .slot = 2,
			       .pool = { (const uint8_t *)"chat", 4 },
			       .ident = { (const uint8_t *)"wsgw1-4444-11", 13 }, .loop = 3 }, b;
	struct ho_buf buf = { 0 };
	ck_assert_int_eq(ho_put_worker(&buf, &a), 0);
	size_t used;
	ck_assert_int_eq(ho_get_worker(buf.p, buf.len, &b, &used), 0);
	ck_assert_uint_eq(b.loop, 3);
	ck_assert_uint_eq(b.slot, 2);
	set_record_len(&buf, buf.len - 8 - 1);
	ck_assert_int_eq(ho_get_worker(buf.p, buf.len - 1, &b, &used), 0);
	ck_assert_uint_eq(used, buf.len - 1);
	ck_assert_uint_eq(b.loop, 0);
	ck_assert_uint_eq(b.id, 11);
	ho_buf_free(&buf);
}
END_TEST

/* A [worker] instance's entry: read back as written; every prefix refused; a name empty
 * or too long for the format refused when written, a pid of 0 when read. */
START_TEST(prog_entries)
{
	struct ho_prog a = { { (const uint8_t *)"echo", 4 }, 3, 4243, 120000, 2, 1000 }, b;
	struct ho_buf buf = { 0 };
	ck_assert_int_eq(ho_put_prog(&buf, &a), 0);
	size_t used;
	ck_assert_int_eq(ho_get_prog(buf.p, buf.len, &b, &used), 0);
	ck_assert_uint_eq(used, buf.len);
	ck_assert(same_bytes(b.name, a.name));
	ck_assert_uint_eq(b.instance, 3);
	ck_assert_uint_eq(b.pid, 4243);
	ck_assert_uint_eq(b.ran_ms, 120000);
	ck_assert_uint_eq(b.restarts, 2);
	ck_assert_uint_eq(b.delay_ms, 1000);
	for (size_t n = 0; n < buf.len; n++)
		REQUIRE(ho_get_prog(buf.p, n, &b, &used) == -EBADMSG);
	size_t before = buf.len;
	struct ho_prog bad = a;
	bad.name.n = 0;
	ck_assert_int_eq(ho_put_prog(&buf, &bad), -EINVAL);
	bad.name = (struct ho_bytes){ big, HO_POOL_MAX + 1 };
	ck_assert_int_eq(ho_put_prog(&buf, &bad), -EINVAL);
	ck_assert_uint_eq(buf.len, before);
	bad = a;
	bad.pid = 0;
	ck_assert_int_eq(ho_put_prog(&buf, &bad), 0);
	ck_assert_int_eq(ho_get_prog(buf.p + before, buf.len - before, &b, &used), -EBADMSG);
	ho_buf_free(&buf);
}
END_TEST

/* Version 3: a zmq worker's entry carries its transport and count; a version-2 entry
 * (which ends before them) reads as a shm worker's with no count. */
START_TEST(zmq_worker_entries)
{
	struct ho_worker a = { .id = 9, .pid = 4343, .slot = 4,
			       .pool = { (const uint8_t *)"py", 2 },
			       .ident = { (const uint8_t *)"wsgw1-4343-ab", 13 },
			       .zmq = 1, .counted = 0x123456789aULL }, b;
	struct ho_buf buf = { 0 };
	ck_assert_int_eq(ho_put_worker(&buf, &a), 0);
	size_t used;
	ck_assert_int_eq(ho_get_worker(buf.p, buf.len, &b, &used), 0);
	ck_assert_uint_eq(b.zmq, 1);
	ck_assert_uint_eq(b.counted, 0x123456789aULL);
	ck_assert(same_bytes(b.ident, a.ident));
	/* The same record as version 2 wrote it: 10 bytes shorter, its length said so. */
	set_record_len(&buf, buf.len - 8 - 10);
	ck_assert_int_eq(ho_get_worker(buf.p, buf.len - 10, &b, &used), 0);
	ck_assert_uint_eq(used, buf.len - 10);
	ck_assert_uint_eq(b.zmq, 0);
	ck_assert_uint_eq(b.counted, 0);
	ck_assert_uint_eq(b.id, 9);
	/* A transport this version does not know is refused. */
	set_record_len(&buf, buf.len - 8);
	buf.p[buf.len - 10] = 2;
	ck_assert_int_eq(ho_get_worker(buf.p, buf.len, &b, &used), -EBADMSG);
	/* A zmq worker is loop 0's: one that names another loop is refused. */
	buf.p[buf.len - 10] = 1;
	buf.p[buf.len - 1] = 1;
	ck_assert_int_eq(ho_get_worker(buf.p, buf.len, &b, &used), -EBADMSG);
	ho_buf_free(&buf);
}
END_TEST

/* Version 4's loop entry: read back as written, absent for loop 0 (the record is loop
 * 0's as version 3 wrote it), refused when its length is not 1 or it comes twice. */
START_TEST(loop_entries)
{
	struct ho_conn a, b;
	size_t used;
	sample(&a);
	struct ho_buf zero = { 0 }, buf = { 0 };
	ck_assert_int_eq(ho_put_conn(&zero, &a), 0);
	a.loop = 5;
	ck_assert_int_eq(ho_put_conn(&buf, &a), 0);
	ck_assert_uint_eq(buf.len, zero.len + 6);
	ck_assert_int_eq(ho_get_conn(buf.p, buf.len, &b, &used), 0);
	ck_assert_uint_eq(b.loop, 5);
	ck_assert_int_eq(ho_get_conn(zero.p, zero.len, &b, &used), 0);
	ck_assert_uint_eq(b.loop, 0);
	/* The entry twice: its 6 bytes again, the record's length grown by them. */
	uint8_t *p = malloc(buf.len + 6);
	memcpy(p, buf.p, buf.len);
	memcpy(p + buf.len, buf.p + buf.len - 6, 6);
	uint64_t body = buf.len + 6 - 8;
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(body >> (8 * i));
	ck_assert_int_eq(ho_get_conn(p, buf.len + 6, &b, &used), -EBADMSG);
	/* One entry of 2 bytes. */
	p[buf.len - 5] = 2;
	p[buf.len] = 5;
	body = buf.len + 1 - 8;
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(body >> (8 * i));
	ck_assert_int_eq(ho_get_conn(p, buf.len + 1, &b, &used), -EBADMSG);
	free(p);
	ho_buf_free(&buf);
	ho_buf_free(&zero);
}
END_TEST

/* The peer entry: an IPv4 and an IPv6 address read back as written; a family other than
 * 4 or 6, a length that does not match it, or a second entry is refused. */
START_TEST(peer_entries)
{
	struct ho_conn a, b;
	size_t used;
	for (int v = 4; v <= 6; v += 2) {
		sample(&a);
		a.peer_family = (uint8_t)v;
		a.peer_port = 54321;
		for (int i = 0; i < (v == 6 ? 16 : 4); i++)
			a.peer_addr[i] = (uint8_t)(0x20 + i);
		struct ho_buf buf = { 0 };
		ck_assert_int_eq(ho_put_conn(&buf, &a), 0);
		ck_assert_int_eq(ho_get_conn(buf.p, buf.len, &b, &used), 0);
		ck_assert_uint_eq(b.peer_family, v);
		ck_assert_uint_eq(b.peer_port, 54321);
		ck_assert(memcmp(b.peer_addr, a.peer_addr, 16) == 0);
		/* The family byte is the entry's first after its 5-byte header, at the end. */
		size_t fam = buf.len - (v == 6 ? 16 : 4) - 3;
		buf.p[fam] = 5;
		ck_assert_int_eq(ho_get_conn(buf.p, buf.len, &b, &used), -EBADMSG);
		buf.p[fam] = (uint8_t)(v == 6 ? 4 : 6); /* the length no longer matches it */
		ck_assert_int_eq(ho_get_conn(buf.p, buf.len, &b, &used), -EBADMSG);
		ho_buf_free(&buf);
	}
	sample(&a);
	ck_assert_uint_eq(a.peer_family, 0);
	struct ho_buf one = { 0 };
	ck_assert_int_eq(ho_put_conn(&one, &a), 0);
	a.peer_family = 4;
	struct ho_buf two = { 0 };
	ck_assert_int_eq(ho_put_conn(&two, &a), 0);
	ck_assert_uint_eq(two.len, one.len + 5 + 7); /* none is written without an address */
	ck_assert_int_eq(ho_get_conn(one.p, one.len, &b, &used), 0);
	ck_assert_uint_eq(b.peer_family, 0);
	/* The entry twice (the record's length, its first 8 bytes, grown by the copy). */
	uint8_t *twice = malloc(two.len + 12);
	ck_assert_ptr_nonnull(twice);
	memcpy(twice, two.p, two.len);
	memcpy(twice + two.len, two.p + two.len - 12, 12);
	uint64_t body = two.len + 12 - 8;
	for (int i = 0; i < 8; i++)
		twice[i] = (uint8_t)(body >> (8 * i));
	ck_assert_int_eq(ho_get_conn(twice, two.len + 12, &b, &used), -EBADMSG);
	free(twice);
	ho_buf_free(&one);
	ho_buf_free(&two);
}
END_TEST

/* A topic's history: read back as written, its messages in order; every prefix of the
 * record refused; a message cut short, of another op, or at offset 0 refused. */
START_TEST(history_entries)
{
	struct ho_buf msgs = { 0 };
	struct ho_hist_msg m1 = { 7, 1500, WS_OP_TEXT, 1, { (const uint8_t *)"seven", 5 } };
	struct ho_hist_msg m2 = { 8, 20, WS_OP_BINARY, 0, { big, 3000 } };
	ck_assert_int_eq(ho_put_hist_msg(&msgs, &m1), 0);
	ck_assert_int_eq(ho_put_hist_msg(&msgs, &m2), 0);
	struct ho_hist a = { { (const uint8_t *)"news/1", 6 }, 1234567, 8, 900, 100, 60000,
			     { msgs.p, msgs.len } }, b;
	struct ho_buf buf = { 0 };
	ck_assert_int_eq(ho_put_hist(&buf, &a), 0);
	size_t used;
	ck_assert_int_eq(ho_get_hist(buf.p, buf.len, &b, &used), 0);
	ck_assert_uint_eq(used, buf.len);
	ck_assert(same_bytes(b.topic, a.topic));
	ck_assert_uint_eq(b.epoch, 1234567);
	ck_assert_uint_eq(b.last, 8);
	ck_assert_uint_eq(b.quiet_ms, 900);
	ck_assert_uint_eq(b.max, 100);
	ck_assert_uint_eq(b.ttl_ms, 60000);
	size_t off = 0;
	struct ho_hist_msg m;
	ck_assert_int_eq(ho_next_hist_msg(&b.msgs, &off, &m), 1);
	ck_assert(m.offset == 7 && m.age_ms == 1500 && m.op == WS_OP_TEXT && m.stamp == 1);
	ck_assert(same_bytes(m.payload, m1.payload));
	ck_assert_int_eq(ho_next_hist_msg(&b.msgs, &off, &m), 1);
	ck_assert(m.offset == 8 && m.op == WS_OP_BINARY && m.stamp == 0);
	ck_assert(same_bytes(m.payload, m2.payload));
	ck_assert_int_eq(ho_next_hist_msg(&b.msgs, &off, &m), 0);
	for (size_t n = 0; n < buf.len; n++)
		REQUIRE(ho_get_hist(buf.p, n, &b, &used) == -EBADMSG);
	struct ho_bytes cut = { msgs.p, msgs.len - 1 };
	off = 0;
	ck_assert_int_eq(ho_next_hist_msg(&cut, &off, &m), 1);
	ck_assert_int_eq(ho_next_hist_msg(&cut, &off, &m), -EBADMSG);
	struct ho_buf bad = { 0 };
	struct ho_hist_msg wrong = m1;
	wrong.op = 9;
	ck_assert_int_eq(ho_put_hist_msg(&bad, &wrong), 0);
	struct ho_bytes bb = { bad.p, bad.len };
	off = 0;
	ck_assert_int_eq(ho_next_hist_msg(&bb, &off, &m), -EBADMSG);
	bad.len = 0;
	wrong = m1;
	wrong.offset = 0;
	ck_assert_int_eq(ho_put_hist_msg(&bad, &wrong), 0);
	bb = (struct ho_bytes){ bad.p, bad.len };
	off = 0;
	ck_assert_int_eq(ho_next_hist_msg(&bb, &off, &m), -EBADMSG);
	struct ho_hist notopic = a;
	notopic.topic.n = 0;
	size_t before = buf.len;
	ck_assert_int_eq(ho_put_hist(&buf, &notopic), -EINVAL);
	ck_assert_uint_eq(buf.len, before);
	ho_buf_free(&bad);
	ho_buf_free(&buf);
	ho_buf_free(&msgs);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("handover");
	TCase *tc = tcase_create("codec");
	tcase_add_test(tc, conn_round_trip);
	tcase_add_test(tc, conn_truncated);
	tcase_add_test(tc, conn_bad_fields);
	tcase_add_test(tc, conn_longer_record);
	tcase_add_test(tc, deflate_windows);
	tcase_add_test(tc, header_and_version);
	tcase_add_test(tc, listen_entries);
	tcase_add_test(tc, subscriptions);
	tcase_add_test(tc, worker_entries);
	tcase_add_test(tc, prog_entries);
	tcase_add_test(tc, peer_entries);
	tcase_add_test(tc, history_entries);
	tcase_add_test(tc, zmq_worker_entries);
	tcase_add_test(tc, worker_loop_entries);
	tcase_add_test(tc, loop_entries);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
