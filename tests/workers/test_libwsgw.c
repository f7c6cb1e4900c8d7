/*
 * Tests of libwsgw's topic and fan-out verbs at the byte level (docs/PROTOCOL.md, records
 * 19-24 and 6-7): the test stands where the gateway stands — a ZeroMQ ROUTER that answers
 * HELLO with WELCOME, an attach socket that passes a real sealed segment and doorbell page
 * — and reads what libwsgw wrote into the to-gateway ring with its own consumer handle,
 * then writes TOPIC and STAT answers into the to-worker ring for wsgw_wait() to turn into
 * events. What the real gateway does with the verbs is tested with it, in
 * tests/workers/test_topics.c.
 */
#include <check.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <zmq.h>

#include "shm/bell.h"
#include "shm/fdpass.h"
#include "shm/segment.h"
#include "wsgw/protocol.h"
#include "wsgw/worker.h"

#define RING (64u * 1024) /* records of up to 32 KiB - 16 */

static char dir[64], control[128], attach_path[128];
static void *zctx, *router;
static int attach_fd = -1;
static struct shm_seg *seg;
static struct shm_bell *bell;
static struct shm_ring from_w; /* to-gateway ring, as the gateway consumes it */
static struct shm_ring to_w;   /* to-worker ring, as the gateway produces it */
static struct wsgw_worker *w;
static int gw_efd = -1; /* >= 0: the attach passes it as the loop's eventfd, a third fd */

/* The gateway's half of the attach: HELLO -> WELCOME, then the descriptors for the token. */
static void *gateway_attach(void *arg)
{
	(void)arg;
	char f[8][64];
	int flen[8];
	int n = 0, more = 1;
	while (more && n < 8) {
		int len = zmq_recv(router, f[n], sizeof(f[n]) - 1, 0);
		if (len < 0)
			return "zmq_recv";
		flen[n] = len < 63 ? len : 63;
		f[n][flen[n]] = 0;
		n++;
		int m = 0;
		size_t ml = sizeof(m);
		zmq_getsockopt(router, ZMQ_RCVMORE, &m, &ml);
		more = m;
	}
	/* f[0] is the DEALER's routing id, then HELLO version pool transport pid. */
	if (n != 6 || strcmp(f[1], "HELLO") || strcmp(f[2], "2") || strcmp(f[4], "shm"))
		return "a HELLO that is not version 2 shm";
	struct shm_seg_opts o = { .capacity = { RING, RING }, .mode = 0600, .gid = (gid_t)-1 };
	if (shm_seg_create_memfd("test", &o, &seg) || shm_bell_create(&bell))
		return "segment";
	char tok[SHM_FDPASS_TOKEN_LEN + 1], ring[16];
	shm_fdpass_token(tok);
	snprintf(ring, sizeof(ring), "%u", RING);
	const char *welcome[] = { "WELCOME", "9", "60000", attach_path, ring, ring, tok };
	zmq_send(router, f[0], (size_t)flen[0], ZMQ_SNDMORE);
	for (int i = 0; i < 7; i++)
		zmq_send(router, welcome[i], strlen(welcome[i]), i < 6 ? ZMQ_SNDMORE : 0);
	int s = accept(attach_fd, NULL, NULL);
	if (s < 0)
		return "accept";
	char line[64] = "";
	size_t got = 0;
	while (got < sizeof(line) - 1 && !strchr(line, '\n')) {
		ssize_t r = read(s, line + got, sizeof(line) - 1 - got);
		if (r <= 0)
			break;
		got += (size_t)r;
		line[got] = 0;
	}
	if (strncmp(line, tok, SHM_FDPASS_TOKEN_LEN))
		return "wrong token";
	int fds[3] = { shm_seg_fd(seg), shm_bell_fd(bell), gw_efd };
	int rc = shm_fdpass_send(s, 0, fds, gw_efd >= 0 ? 3 : 2);
	close(s);
	return rc ? "fdpass" : NULL;
}

static void setup(void)
{
	snprintf(dir, sizeof(dir), "/tmp/wsgw-libtest.XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(control, sizeof(control), "ipc://%s/control", dir);
	snprintf(attach_path, sizeof(attach_path), "%s/attach", dir);
	zctx = zmq_ctx_new();
	router = zmq_socket(zctx, ZMQ_ROUTER);
	int zero = 0;
	zmq_setsockopt(router, ZMQ_LINGER, &zero, sizeof(zero));
	ck_assert_int_eq(zmq_bind(router, control), 0);
	attach_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	ck_assert_uint_lt(strlen(attach_path), sizeof(a.sun_path));
	memcpy(a.sun_path, attach_path, strlen(attach_path) + 1);
	ck_assert_int_eq(bind(attach_fd, (struct sockaddr *)&a, sizeof(a)), 0);
	ck_assert_int_eq(listen(attach_fd, 4), 0);

	pthread_t t;
	void *err;
	ck_assert_int_eq(pthread_create(&t, NULL, gateway_attach, NULL), 0);
	struct wsgw_options o = { .control = control, .pool = "p", .attach_timeout_ms = 3000 };
	int rc = wsgw_attach(&o, &w);
	pthread_join(t, &err);
	ck_assert_msg(err == NULL, "the gateway side of the attach: %s", (char *)err);
	ck_assert_int_eq(rc, 0);
	ck_assert_uint_eq(wsgw_worker_id(w), 9);
	ck_assert_int_eq(shm_seg_ring(seg, SHM_SEG_TO_GATEWAY, SHM_RING_CONSUMER, &from_w), 0);
	ck_assert_int_eq(shm_seg_ring(seg, SHM_SEG_TO_WORKER, SHM_RING_PRODUCER, &to_w), 0);
}

/* The gateway passes its loop's eventfd: the current attach. */
static void setup_efd(void)
{
	gw_efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	ck_assert_int_ge(gw_efd, 0);
	setup();
}

static void teardown(void)
{
	if (gw_efd >= 0)
		close(gw_efd);
	gw_efd = -1;
	wsgw_detach(w);
	shm_seg_close(seg);
	shm_bell_close(bell);
	close(attach_fd);
	zmq_close(router);
	zmq_ctx_term(zctx);
	unlink(attach_path);
	char sock[160];
	snprintf(sock, sizeof(sock), "%s/control", dir);
	unlink(sock);
	rmdir(dir);
}

/* One record as the gateway read it, copied out of the ring. */
struct rec {
	uint16_t type, flags;
	uint64_t conn;
	uint32_t len;
	uint8_t body[RING];
};

/* Flushes the worker and reads every record it wrote, at most max. */
static int drain(struct rec *out, int max)
{
	ck_assert_int_eq(wsgw_flush(w), 0);
	struct shm_ring_iter it;
	int n = 0;
	ck_assert_int_ge(shm_ring_peek(&from_w, &it), 0);
	struct shm_rec r;
	while (shm_ring_next(&it, &r) == 1) {
		ck_assert_int_lt(n, max);
		out[n].type = r.type;
		out[n].flags = r.flags;
		out[n].conn = r.conn;
		out[n].len = r.len;
		memcpy(out[n].body, r.payload, r.len);
		n++;
	}
	shm_ring_release(&from_w, &it);
	return n;
}

static uint64_t le(const uint8_t *p, int bytes)
{
	uint64_t v = 0;
	for (int i = 0; i < bytes; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

static struct rec recs[8];

START_TEST(subscribe_unsubscribe_records)
{
	ck_assert_int_eq(wsgw_subscribe(w, 42, "room:a", 6), 0);
	ck_assert_int_eq(wsgw_unsubscribe(w, 43, "room:b\0x", 8), 0);
	ck_assert_int_eq(drain(recs, 8), 2);
	ck_assert_uint_eq(recs[0].type, WSGW_SUBSCRIBE);
	ck_assert_uint_eq(recs[0].type, 19);
	ck_assert_uint_eq(recs[0].flags, 0);
	ck_assert_uint_eq(recs[0].conn, 42);
	ck_assert_uint_eq(recs[0].len, 6);
	ck_assert_mem_eq(recs[0].body, "room:a", 6);
	ck_assert_uint_eq(recs[1].type, 20);
	ck_assert_uint_eq(recs[1].conn, 43);
	ck_assert_uint_eq(recs[1].len, 8); /* topics are bytes: a NUL is one of them */
	ck_assert_mem_eq(recs[1].body, "room:b\0x", 8);
}
END_TEST

START_TEST(topic_length_limits)
{
	char t[WSGW_TOPIC_MAX + 1];
	memset(t, 'x', sizeof(t));
	ck_assert_int_eq(wsgw_subscribe(w, 1, t, 0), -EINVAL);
	ck_assert_int_eq(wsgw_subscribe(w, 1, t, WSGW_TOPIC_MAX + 1), -EINVAL);
	ck_assert_int_eq(wsgw_unsubscribe(w, 1, t, WSGW_TOPIC_MAX + 1), -EINVAL);
	ck_assert_int_eq(wsgw_publish(w, t, 0, 0, "m", 1, 0), -EINVAL);
	ck_assert_int_eq(wsgw_publish(w, t, WSGW_TOPIC_MAX + 1, 0, "m", 1, 0), -EINVAL);
	ck_assert_int_eq(wsgw_query(w, t, 0, 5), -EINVAL);
	ck_assert_int_eq(wsgw_query(w, NULL, 3, 5), -EINVAL);
	ck_assert_int_eq(drain(recs, 8), 0); /* nothing queued by a refused call */
	ck_assert_int_eq(wsgw_subscribe(w, 1, t, WSGW_TOPIC_MAX), 0);
	ck_assert_int_eq(wsgw_publish(w, t, WSGW_TOPIC_MAX, 1, "m", 1, 0), 0);
	ck_assert_int_eq(drain(recs, 8), 2);
	ck_assert_uint_eq(recs[0].len, WSGW_TOPIC_MAX);
	ck_assert_uint_eq(recs[1].len, 1 + WSGW_TOPIC_MAX + 1);
	ck_assert_uint_eq(recs[1].body[0], WSGW_TOPIC_MAX);
}
END_TEST

START_TEST(publish_records)
{
	ck_assert_int_eq(wsgw_publish(w, "news", 4, 0, "hello", 5, 0), 0);
	ck_assert_int_eq(wsgw_publish(w, "news", 4, 1, "\x00\x01\x02", 3, 77), 0);
	ck_assert_int_eq(wsgw_publish(w, "e", 1, 0, NULL, 0, 0), 0); /* an empty message */
	ck_assert_int_eq(drain(recs, 8), 3);
	ck_assert_uint_eq(recs[0].type, WSGW_PUBLISH);
	ck_assert_uint_eq(recs[0].type, 21);
	ck_assert_uint_eq(recs[0].flags, 0);
	ck_assert_uint_eq(recs[0].conn, 0); /* leave no one out */
	ck_assert_uint_eq(recs[0].len, 1 + 4 + 5);
	ck_assert_mem_eq(recs[0].body, "\x04" "news" "hello", 10);
	ck_assert_uint_eq(recs[1].flags, WSGW_F_BINARY);
	ck_assert_uint_eq(recs[1].conn, 77); /* the sender, left out */
	ck_assert_mem_eq(recs[1].body, "\x04" "news" "\x00\x01\x02", 8);
	ck_assert_uint_eq(recs[2].len, 2);
	ck_assert_mem_eq(recs[2].body, "\x01" "e", 2);
}
END_TEST

START_TEST(publish_too_large)
{
	size_t max = shm_ring_max_payload_for(RING);
	char *big = calloc(1, max);
	ck_assert_ptr_nonnull(big);
	/* u8 length + the topic + the payload must fit one record. */
	ck_assert_int_eq(wsgw_publish(w, "t", 1, 1, big, max - 2, 0), 0);
	ck_assert_int_eq(drain(recs, 8), 1);
	ck_assert_uint_eq(recs[0].len, max);
	ck_assert_int_eq(wsgw_publish(w, "t", 1, 1, big, max - 1, 0), -EMSGSIZE);
	ck_assert_int_eq(drain(recs, 8), 0);
	free(big);
}
END_TEST

START_TEST(send_many_records)
{
	uint64_t ids[3] = { 5, 0x0102030405060708ull, 1ull << 63 };
	ck_assert_int_eq(wsgw_send_many(w, ids, 3, 0, "hi all", 6), 0);
	ck_assert_int_eq(wsgw_send_many(w, ids, 0, 0, "nobody", 6), 0);
	ck_assert_int_eq(drain(recs, 8), 1); /* an empty list sends nothing */
	ck_assert_uint_eq(recs[0].type, WSGW_SENDMANY);
	ck_assert_uint_eq(recs[0].type, 22);
	ck_assert_uint_eq(recs[0].flags, 0);
	ck_assert_uint_eq(recs[0].len, 4 + 3 * 8 + 6);
	ck_assert_uint_eq(le(recs[0].body, 4), 3);
	for (int i = 0; i < 3; i++)
		ck_assert_uint_eq(le(recs[0].body + 4 + 8 * i, 8), ids[i]);
	/* little-endian on the wire, byte for byte */
	ck_assert_mem_eq(recs[0].body + 12, "\x08\x07\x06\x05\x04\x03\x02\x01", 8);
	ck_assert_mem_eq(recs[0].body + 28, "hi all", 6);
	ck_assert_int_eq(wsgw_send_many(w, ids, 1, 1, "\xff", 1), 0);
	ck_assert_int_eq(drain(recs, 8), 1);
	ck_assert_uint_eq(recs[0].flags, WSGW_F_BINARY);
}
END_TEST

/* More ids than a record holds: several records, each with the whole message, the ids in
 * order and none twice. */
START_TEST(send_many_splits_long_lists)
{
	size_t n = 10000; /* 80 KB of ids: more than a 32 KiB record holds */
	uint64_t *ids = malloc(n * sizeof(*ids));
	ck_assert_ptr_nonnull(ids);
	for (size_t i = 0; i < n; i++)
		ids[i] = 1000 + i * 3;
	size_t seen = 0;
	int records = 0;
	/* The ring holds only a few such records: read them as the worker writes them, 1,500
	 * ids (12 KB, more than a record of a quarter ring) per call. */
	size_t done = 0;
	int calls = 0;
	while (done < n) {
		calls++;
		size_t k = n - done < 1500 ? n - done : 1500;
		ck_assert_int_eq(wsgw_send_many(w, ids + done, k, 0, "payload!", 8), 0);
		done += k;
		int got = drain(recs, 8);
		for (int r = 0; r < got; r++) {
			ck_assert_uint_eq(recs[r].type, WSGW_SENDMANY);
			uint32_t c = (uint32_t)le(recs[r].body, 4);
			ck_assert_uint_gt(c, 0);
			ck_assert_uint_eq(recs[r].len, 4 + 8 * c + 8);
			ck_assert_uint_le(recs[r].len, shm_ring_max_payload_for(RING));
			for (uint32_t i = 0; i < c; i++)
				ck_assert_uint_eq(le(recs[r].body + 4 + 8 * i, 8), ids[seen++]);
			ck_assert_mem_eq(recs[r].body + 4 + 8 * c, "payload!", 8);
			records++;
		}
	}
	ck_assert_uint_eq(seen, n);
	ck_assert_int_gt(records, calls);
	free(ids);
}
END_TEST

START_TEST(send_many_message_too_large)
{
	uint64_t id = 1;
	size_t max = shm_ring_max_payload_for(RING);
	char *big = calloc(1, max);
	ck_assert_int_eq(wsgw_send_many(w, &id, 1, 1, big, max - 12), 0);
	ck_assert_int_eq(drain(recs, 8), 1);
	ck_assert_int_eq(wsgw_send_many(w, &id, 1, 1, big, max - 11), -EMSGSIZE);
	ck_assert_int_eq(drain(recs, 8), 0);
	free(big);
}
END_TEST

START_TEST(query_and_stat_records)
{
	ck_assert_int_eq(wsgw_query(w, "lobby", 5, 0xabcdefull), 0);
	ck_assert_int_eq(wsgw_stat(w, 314), 0);
	ck_assert_int_eq(drain(recs, 8), 2);
	ck_assert_uint_eq(recs[0].type, WSGW_QUERY);
	ck_assert_uint_eq(recs[0].type, 23);
	ck_assert_uint_eq(recs[0].conn, 0xabcdefull);
	ck_assert_uint_eq(recs[0].len, 5);
	ck_assert_mem_eq(recs[0].body, "lobby", 5);
	ck_assert_uint_eq(recs[1].type, WSGW_STATQ);
	ck_assert_uint_eq(recs[1].type, 24);
	ck_assert_uint_eq(recs[1].conn, 314);
	ck_assert_uint_eq(recs[1].len, 0);
}
END_TEST

/* The gateway's answers, written as it writes them. */
static void push(uint16_t type, uint64_t conn, const void *body, uint32_t len)
{
	ck_assert_int_eq(shm_ring_push(&to_w, type, 0, conn, body, len), 0);
	shm_ring_notify(&to_w);
}

static size_t topic_body(uint8_t *b, const char *topic, uint32_t subs, const uint64_t *ids,
			 size_t nids)
{
	size_t tl = strlen(topic), o = 0;
	b[o++] = (uint8_t)tl;
	memcpy(b + o, topic, tl);
	o += tl;
	for (int i = 0; i < 4; i++)
		b[o++] = (uint8_t)(subs >> (8 * i));
	for (size_t k = 0; k < nids; k++)
		for (int i = 0; i < 8; i++)
			b[o++] = (uint8_t)(ids[k] >> (8 * i));
	return o;
}

START_TEST(topic_event)
{
	static uint8_t b[1 + 255 + 4 + 8 * 1024];
	uint64_t ids[3] = { 11, 1ull << 40, 13 };
	push(WSGW_TOPIC, 777, b, (uint32_t)topic_body(b, "room:a", 3, ids, 3));
	struct wsgw_event ev[4];
	ck_assert_int_eq(wsgw_wait(w, ev, 4, 2000), 1);
	ck_assert_int_eq(ev[0].type, WSGW_EV_TOPIC);
	ck_assert_uint_eq(ev[0].conn, 777); /* the query's id */
	const void *t;
	size_t tl;
	uint32_t subs;
	ck_assert_int_eq(wsgw_topic_info(&ev[0], &t, &tl, &subs), 0);
	ck_assert_uint_eq(tl, 6);
	ck_assert_mem_eq(t, "room:a", 6);
	ck_assert_uint_eq(subs, 3);
	uint64_t got[4] = { 0 };
	ck_assert_uint_eq(wsgw_topic_conns(&ev[0], got, 4), 3);
	ck_assert_uint_eq(got[0], 11);
	ck_assert_uint_eq(got[1], 1ull << 40);
	ck_assert_uint_eq(got[2], 13);
	/* max smaller than the list: the count says how many there are, max are copied */
	memset(got, 0, sizeof(got));
	ck_assert_uint_eq(wsgw_topic_conns(&ev[0], got, 1), 3);
	ck_assert_uint_eq(got[0], 11);
	ck_assert_uint_eq(got[1], 0);
	ck_assert_int_eq(wsgw_stat_info(&ev[0], NULL, NULL), -EINVAL);

	/* Over WSGW_TOPIC_LIST_MAX: the count alone. */
	push(WSGW_TOPIC, 778, b, (uint32_t)topic_body(b, "big", 5000, NULL, 0));
	/* At the limit: every id. */
	static uint64_t many[WSGW_TOPIC_LIST_MAX];
	for (int i = 0; i < WSGW_TOPIC_LIST_MAX; i++)
		many[i] = (uint64_t)i + 1;
	static uint8_t b2[1 + 255 + 4 + 8 * WSGW_TOPIC_LIST_MAX];
	push(WSGW_TOPIC, 779, b2, (uint32_t)topic_body(b2, "full", WSGW_TOPIC_LIST_MAX, many,
						       WSGW_TOPIC_LIST_MAX));
	/* No subscriber. */
	push(WSGW_TOPIC, 780, b, (uint32_t)topic_body(b, "none", 0, NULL, 0));
	ck_assert_int_eq(wsgw_wait(w, ev, 4, 2000), 3);
	ck_assert_int_eq(wsgw_topic_info(&ev[0], NULL, NULL, &subs), 0);
	ck_assert_uint_eq(subs, 5000);
	ck_assert_uint_eq(wsgw_topic_conns(&ev[0], got, 4), 0);
	static uint64_t back[WSGW_TOPIC_LIST_MAX];
	ck_assert_uint_eq(wsgw_topic_conns(&ev[1], back, WSGW_TOPIC_LIST_MAX), WSGW_TOPIC_LIST_MAX);
	ck_assert_mem_eq(back, many, sizeof(many));
	ck_assert_int_eq(wsgw_topic_info(&ev[2], NULL, &tl, &subs), 0);
	ck_assert_uint_eq(tl, 4);
	ck_assert_uint_eq(subs, 0);
	ck_assert_uint_eq(wsgw_topic_conns(&ev[2], got, 4), 0);
}
END_TEST

/* Answers that contradict themselves are refused, never read past. */
START_TEST(topic_event_malformed)
{
	static uint8_t b[64];
	uint64_t ids[2] = { 1, 2 };
	struct wsgw_event ev[8];
	size_t n = topic_body(b, "abc", 3, ids, 2); /* 3 subscribers, 2 listed */
	push(WSGW_TOPIC, 1, b, (uint32_t)n);
	push(WSGW_TOPIC, 2, b, (uint32_t)n - 3); /* an id cut short */
	push(WSGW_TOPIC, 3, b, 3);               /* no count */
	b[0] = 200;                              /* a topic longer than the body */
	push(WSGW_TOPIC, 4, b, (uint32_t)n);
	b[0] = 0;                                /* an empty topic */
	push(WSGW_TOPIC, 5, b, (uint32_t)n);
	ck_assert_int_eq(wsgw_wait(w, ev, 8, 2000), 5);
	uint64_t got[4];
	for (int i = 0; i < 5; i++) {
		ck_assert_int_eq(ev[i].type, WSGW_EV_TOPIC);
		ck_assert_int_eq(wsgw_topic_info(&ev[i], NULL, NULL, NULL), -EBADMSG);
		ck_assert_uint_eq(wsgw_topic_conns(&ev[i], got, 4), 0);
	}
}
END_TEST

START_TEST(stat_event)
{
	uint8_t b[13];
	uint64_t q = 0x0000000123456789ull;
	uint32_t age = 4321;
	for (int i = 0; i < 8; i++)
		b[i] = (uint8_t)(q >> (8 * i));
	for (int i = 0; i < 4; i++)
		b[8 + i] = (uint8_t)(age >> (8 * i));
	push(WSGW_STAT, 99, b, 12);
	push(WSGW_STAT, 100, b, 11); /* short */
	push(WSGW_STAT, 101, b, 13); /* long */
	push(WSGW_GONE, 102, NULL, 0); /* the answer for a connection that is not ours */
	struct wsgw_event ev[8];
	ck_assert_int_eq(wsgw_wait(w, ev, 8, 2000), 4);
	ck_assert_int_eq(ev[0].type, WSGW_EV_STAT);
	ck_assert_uint_eq(ev[0].conn, 99);
	uint64_t gq = 0;
	uint32_t ga = 0;
	ck_assert_int_eq(wsgw_stat_info(&ev[0], &gq, &ga), 0);
	ck_assert_uint_eq(gq, q);
	ck_assert_uint_eq(ga, age);
	ck_assert_int_eq(wsgw_stat_info(&ev[0], NULL, NULL), 0);
	ck_assert_int_eq(wsgw_stat_info(&ev[1], &gq, &ga), -EBADMSG);
	ck_assert_int_eq(wsgw_stat_info(&ev[2], &gq, &ga), -EBADMSG);
	ck_assert_int_eq(ev[3].type, WSGW_EV_GONE);
	ck_assert_uint_eq(ev[3].conn, 102);
	ck_assert_int_eq(wsgw_stat_info(&ev[3], &gq, &ga), -EINVAL);
	ck_assert_int_eq(wsgw_topic_info(&ev[3], NULL, NULL, NULL), -EINVAL);
}
END_TEST

/* The gateway's loop announced that it sleeps in epoll_wait: the worker's next batch
 * writes the loop's eventfd, once, and leaves the doorbell's futex alone (no waker thread
 * to wake). A loop that is awake gets nothing. */
START_TEST(eventfd_wakes_sleeping_gateway)
{
	struct shm_doorbell *db = shm_bell_doorbell(bell);
	uint64_t v = 0;
	ck_assert_int_eq(wsgw_subscribe(w, 1, "t", 1), 0);
	ck_assert_int_eq(drain(recs, 8), 1);
	ck_assert_int_eq(eventfd_read(gw_efd, &v), -1); /* awake: no syscall */
	uint32_t seq = shm_doorbell_prepare(db);
	ck_assert_int_eq(wsgw_subscribe(w, 2, "t", 1), 0);
	ck_assert_int_eq(drain(recs, 8), 1);
	ck_assert_int_eq(eventfd_read(gw_efd, &v), 0);
	ck_assert_uint_eq(v, 1);
	ck_assert_uint_eq(atomic_load(&db->seq), seq);
	ck_assert_uint_eq(atomic_load(&db->sleeping), 0);
	ck_assert_int_eq(wsgw_subscribe(w, 3, "t", 1), 0);
	ck_assert_int_eq(drain(recs, 8), 1);
	ck_assert_int_eq(eventfd_read(gw_efd, &v), -1);
}
END_TEST

/* A gateway from before the eventfd passes two descriptors: the worker attaches and rings
 * the doorbell's futex, which that gateway's waker thread sleeps on. */
START_TEST(futex_without_eventfd)
{
	struct shm_doorbell *db = shm_bell_doorbell(bell);
	uint32_t seq = shm_doorbell_prepare(db);
	ck_assert_int_eq(wsgw_subscribe(w, 1, "t", 1), 0);
	ck_assert_int_eq(drain(recs, 8), 1);
	ck_assert_uint_eq(atomic_load(&db->seq), seq + 1);
	ck_assert_uint_eq(atomic_load(&db->sleeping), 0);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("libwsgw topics");
	TCase *tc = tcase_create("records");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 20);
	tcase_add_test(tc, subscribe_unsubscribe_records);
	tcase_add_test(tc, topic_length_limits);
	tcase_add_test(tc, publish_records);
	tcase_add_test(tc, publish_too_large);
	tcase_add_test(tc, send_many_records);
	tcase_add_test(tc, send_many_splits_long_lists);
	tcase_add_test(tc, send_many_message_too_large);
	tcase_add_test(tc, query_and_stat_records);
	tcase_add_test(tc, topic_event);
	tcase_add_test(tc, topic_event_malformed);
	tcase_add_test(tc, stat_event);
	tcase_add_test(tc, futex_without_eventfd);
	suite_add_tcase(s, tc);
	tc = tcase_create("wake");
	tcase_add_checked_fixture(tc, setup_efd, teardown);
	tcase_set_timeout(tc, 20);
	tcase_add_test(tc, eventfd_wakes_sleeping_gateway);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
