/* One client thread: its own epoll, its share of the connections, edge-triggered I/O.
 * Every read drains the socket to EAGAIN and every write carries all the frames that are
 * due, so the generator spends its syscalls per batch, not per message. */
#include "bench/loadgen/lg.h"
#include "bench/loadgen/sha1.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum { CS_IDLE, CS_CONNECTING, CS_HANDSHAKE, CS_OPEN, CS_CLOSING, CS_DONE };

#define MAX_FRAME (16u << 20)
#define RBUF_MIN (256u << 10)
#define RTT_SLOTS 8u

struct lg_conn {
	int fd;
	uint32_t idx;			/* global index, names the payloads */
	uint8_t state;
	uint8_t close_sent;
	uint8_t close_rcvd;
	uint8_t frag_op;		/* opcode of a fragmented message in progress */
	uint8_t ready;			/* fanout: a warm-up probe came */
	uint64_t sent;
	uint64_t rcvd;
	uint64_t ingest_bytes;		/* ingest: bytes of the frame block written */
	uint64_t ingest_goal;		/* ingest: stop at this frame boundary when draining */
	uint8_t *out;
	size_t out_len, out_off, out_cap;
	uint8_t *in;			/* a partial frame or response kept between reads */
	size_t in_len, in_cap;
	uint64_t *sent_ns;		/* rate: when the last RTT_SLOTS messages left */
	uint8_t *msg;			/* fragments of one message */
	size_t msg_len, msg_cap;
	char accept[29];
};

static uint64_t rnd(uint64_t *s)
{
	uint64_t x = *s;

	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return *s = x;
}

static void *xrealloc(void *p, size_t n)
{
	p = realloc(p, n);
	if (!p) {
		fprintf(stderr, "wsgw-bench: out of memory (%zu bytes)\n", n);
		abort();
	}
	return p;
}

static void grow(uint8_t **buf, size_t *cap, size_t need)
{
	size_t n = *cap ? *cap : 256;

	if (need <= *cap)
		return;
	while (n < need)
		n *= 2;
	*buf = xrealloc(*buf, n);
	*cap = n;
}

static void mask(uint8_t *p, size_t n, uint32_t key)
{
	uint64_t k64 = (uint64_t)key << 32 | key, w;
	size_t i = 0;

	for (; i + 8 <= n; i += 8) {
		memcpy(&w, p + i, 8);
		w ^= k64;
		memcpy(p + i, &w, 8);
	}
	for (; i < n; i++)
		p[i] ^= ((const uint8_t *)&key)[i & 3];
}

/* Appends one masked frame to the output buffer. */
static void put_frame(struct lg_thread *t, struct lg_conn *c, unsigned op, const void *p,
		      size_t n)
{
	uint8_t *h;
	size_t hl = n < 126 ? 2 : n < 65536 ? 4 : 10;
	uint32_t key = (uint32_t)rnd(&t->rng);

	grow(&c->out, &c->out_cap, c->out_len + hl + 4 + n);
	h = c->out + c->out_len;
	h[0] = (uint8_t)(0x80 | op);
	if (n < 126) {
		h[1] = (uint8_t)(0x80 | n);
	} else if (n < 65536) {
		h[1] = 0x80 | 126;
		h[2] = (uint8_t)(n >> 8);
		h[3] = (uint8_t)n;
	} else {
		h[1] = 0x80 | 127;
		for (int i = 0; i < 8; i++)
			h[2 + i] = (uint8_t)((uint64_t)n >> (56 - 8 * i));
	}
	memcpy(h + hl, &key, 4);
	if (n)
		memcpy(h + hl + 4, p, n);
	mask(h + hl + 4, n, key);
	c->out_len += hl + 4 + n;
}

/* Message seq of connection idx: 8 hex digits naming (idx, seq), then a window of the
 * pattern chosen by both, so a lost, reordered or misdelivered echo cannot compare equal. */
static size_t pattern_off(uint32_t idx, uint64_t seq)
{
	return (size_t)((idx * 2654435761u + seq * 40503u) & (LG_PATLEN - 1));
}

static void make_payload(uint8_t *p, size_t n, uint32_t idx, uint64_t seq)
{
	static const char hex[] = "0123456789abcdef";
	uint32_t tag = (uint32_t)seq ^ (idx << 20);
	size_t h = n < 8 ? n : 8;

	memcpy(p, lg_pattern + pattern_off(idx, seq), n);
	for (size_t i = 0; i < h; i++)
		p[i] = (uint8_t)hex[(tag >> (28 - 4 * i)) & 15];
}

static void send_message(struct lg_thread *t, struct lg_conn *c)
{
	uint8_t tmp[256], *p = tmp;
	size_t n = t->cfg->size;

	if (n > sizeof(tmp))
		p = xrealloc(NULL, n);
	make_payload(p, n, c->idx, c->sent);
	put_frame(t, c, t->cfg->text ? 1 : 2, p, n);
	if (p != tmp)
		free(p);
	c->sent++;
	LG_ADD(t->c.sent, 1);
}

static void conn_close(struct lg_thread *t, struct lg_conn *c)
{
	if (c->fd >= 0) {
		close(c->fd);	/* also leaves the epoll set */
		c->fd = -1;
		t->live--;
		LG_ADD(t->c.closed, 1);
	}
	if (c->state == CS_CONNECTING || c->state == CS_HANDSHAKE)
		t->connecting--;
	c->state = CS_DONE;
	free(c->out);
	free(c->in);
	free(c->msg);
	free(c->sent_ns);
	c->sent_ns = NULL;
	c->out = c->in = c->msg = NULL;
	c->out_cap = c->in_cap = c->msg_cap = 0;
	c->out_len = c->out_off = c->in_len = c->msg_len = 0;
}

static void conn_fail(struct lg_thread *t, struct lg_conn *c, uint64_t *counter)
{
	LG_ADD(*counter, 1);
	conn_close(t, c);
}

/* Writes until the buffer is empty or the socket is full; -1 when the connection died. */
static int flush(struct lg_thread *t, struct lg_conn *c)
{
	while (c->out_off < c->out_len) {
		ssize_t n = send(c->fd, c->out + c->out_off, c->out_len - c->out_off,
				 MSG_NOSIGNAL);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN)
				return 0;
			return -1;
		}
		c->out_off += (size_t)n;
		LG_ADD(t->c.bytes_sent, (uint64_t)n);
	}
	c->out_off = c->out_len = 0;
	return 0;
}

static void send_close(struct lg_thread *t, struct lg_conn *c)
{
	static const uint8_t normal[2] = { 0x03, 0xe8 };	/* 1000 */

	if (c->close_sent)
		return;
	put_frame(t, c, 8, normal, 2);
	c->close_sent = 1;
	LG_ADD(t->c.close_sent, 1);
	c->state = CS_CLOSING;
}

/* Ingest keeps the socket full from a shared block of whole frames. Control frames
 * (pongs, the close) may only enter between two frames, so the block is written up to
 * a frame boundary whenever the output buffer holds something. */
static int ingest_io(struct lg_thread *t, struct lg_conn *c, int pump)
{
	for (;;) {
		int at_boundary = c->ingest_bytes % t->frame_len == 0;
		uint64_t goal = c->ingest_goal;
		size_t pos, len;
		ssize_t n;

		if (c->out_len > c->out_off && at_boundary) {
			if (flush(t, c) < 0)
				return -1;
			if (c->out_len)
				return 0;
		}
		if (!pump || c->close_sent)
			return 0;
		if (c->out_len) {
			uint64_t b = (c->ingest_bytes / t->frame_len + 1) * t->frame_len;
			if (b < goal)
				goal = b;
		}
		if (c->ingest_bytes >= goal) {
			send_close(t, c);	/* only a drain sets a goal without output */
			continue;
		}
		pos = c->ingest_bytes % t->blk_len;
		len = t->blk_len - pos;
		if (len > goal - c->ingest_bytes)
			len = goal - c->ingest_bytes;
		n = send(c->fd, t->blk + pos, len, MSG_NOSIGNAL);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return errno == EAGAIN ? 0 : -1;
		}
		uint64_t before = c->ingest_bytes / t->frame_len;
		c->ingest_bytes += (uint64_t)n;
		uint64_t frames = c->ingest_bytes / t->frame_len - before;
		c->sent += frames;
		LG_ADD(t->c.sent, frames);
		LG_ADD(t->c.bytes_sent, (uint64_t)n);
	}
}

/* ---- fanout ------------------------------------------------------------------------ */

#define FAN_PROBE 'P'	/* a warm-up probe's payload: all 'P', never a message's hex tag */

/* Every connection checks each message against what the publisher (connection 0) sent as
 * its next one; the delivery that completes a message (the last of its conns receivers)
 * records publish-to-last-delivery latency and frees its slot. */
static void fan_message(struct lg_thread *t, struct lg_conn *c, const uint8_t *p, size_t n,
			uint64_t now)
{
	const struct lg_config *cfg = t->cfg;
	uint8_t tmp[256], *want = tmp;

	if (n && p[0] == FAN_PROBE) {
		if (!c->ready) {
			c->ready = 1;
			__atomic_fetch_add(&lg_fan.ready, 1, __ATOMIC_RELAXED);
		}
		return;
	}
	LG_ADD(t->c.rcvd, 1);
	uint64_t seq = c->rcvd++;
	if (n != cfg->size || seq >= __atomic_load_n(&lg_fan.sent, __ATOMIC_ACQUIRE)) {
		LG_ADD(t->c.mismatches, 1);
		return;
	}
	if (n > sizeof(tmp))
		want = xrealloc(NULL, n);
	make_payload(want, n, 0, seq);
	if (memcmp(want, p, n))
		LG_ADD(t->c.mismatches, 1);
	if (want != tmp)
		free(want);
	uint32_t slot = (uint32_t)seq & (lg_fan.slots - 1);
	if (__atomic_add_fetch(&lg_fan.count[slot], 1, __ATOMIC_ACQ_REL) < cfg->conns)
		return;
	uint64_t sent = __atomic_load_n(&lg_fan.sent_ns[slot], __ATOMIC_RELAXED);
	lg_hist_record(&t->hist, now > sent ? now - sent : 0);
	__atomic_store_n(&lg_fan.count[slot], 0, __ATOMIC_RELAXED);
	/* pairs with the publisher's acquire load in fan_pump: the slot is free again */
	__atomic_fetch_add(&lg_fan.completed, 1, __ATOMIC_RELEASE);
	if (t->id != 0) {
		uint64_t one = 1;
		ssize_t w = write(lg_fan.efd, &one, sizeof(one));
		(void)w; /* EAGAIN: the counter is full, the publisher is awake anyway */
	}
}

/* The publisher: thread 0's connection 0 keeps --inflight messages not yet delivered to
 * every connection; while warming up, a probe every 50 ms until every connection has one. */
static void fan_pump(struct lg_thread *t, int phase, uint64_t now)
{
	const struct lg_config *cfg = t->cfg;
	struct lg_conn *c = &t->conns[0];
	uint8_t tmp[256], *p = tmp;
	size_t n = cfg->size;

	if (t->id != 0 || !t->nconns || c->state != CS_OPEN || c->close_sent)
		return;
	if (n > sizeof(tmp))
		p = xrealloc(NULL, n);
	if (phase == LG_PH_WARM && now - t->probe_ns >= 50000000u &&
	    __atomic_load_n(&lg_fan.ready, __ATOMIC_RELAXED) < cfg->conns) {
		memset(p, FAN_PROBE, n);
		put_frame(t, c, cfg->text ? 1 : 2, p, n);
		t->probe_ns = now;
	}
	if (phase == LG_PH_RUN) {
		uint64_t done = __atomic_load_n(&lg_fan.completed, __ATOMIC_ACQUIRE);
		while (c->sent - done < cfg->inflight) {
			uint32_t slot = (uint32_t)c->sent & (lg_fan.slots - 1);
			make_payload(p, n, 0, c->sent);
			__atomic_store_n(&lg_fan.sent_ns[slot], lg_now_ns(), __ATOMIC_RELAXED);
			put_frame(t, c, cfg->text ? 1 : 2, p, n);
			c->sent++;
			/* pairs with the receivers' acquire load: a message is known before it comes */
			__atomic_store_n(&lg_fan.sent, c->sent, __ATOMIC_RELEASE);
			LG_ADD(t->c.sent, 1);
		}
	}
	if (p != tmp)
		free(p);
	if (flush(t, c) < 0)
		conn_fail(t, c, &t->c.peer_closed);
}

static void record_latency(struct lg_thread *t, struct lg_conn *c, uint64_t seq, uint64_t now)
{
	const struct lg_config *cfg = t->cfg;
	uint64_t sched = lg_run_start_ns +
			 (uint64_t)(((double)seq * cfg->conns + c->idx) * 1e9 / cfg->rate);

	lg_hist_record(&t->hist, now > sched ? now - sched : 0);
}

static void on_message(struct lg_thread *t, struct lg_conn *c, const uint8_t *p, size_t n,
		       uint64_t now)
{
	const struct lg_config *cfg = t->cfg;
	uint8_t tmp[256], *want = tmp;

	if (cfg->mode == LG_FANOUT) {
		fan_message(t, c, p, n, now);
		return;
	}
	LG_ADD(t->c.rcvd, 1);
	if (cfg->mode == LG_INGEST || cfg->mode == LG_HOLD) {
		c->rcvd++;
		return;
	}
	if (c->rcvd >= c->sent || n != cfg->size) {
		LG_ADD(t->c.mismatches, 1);
		c->rcvd++;
		return;
	}
	if (n > sizeof(tmp))
		want = xrealloc(NULL, n);
	make_payload(want, n, c->idx, c->rcvd);
	if (memcmp(want, p, n))
		LG_ADD(t->c.mismatches, 1);
	if (want != tmp)
		free(want);
	if (cfg->mode == LG_RATE) {
		record_latency(t, c, c->rcvd, now);
		if (c->sent - c->rcvd <= RTT_SLOTS)
			lg_hist_record(&t->rtt, now - c->sent_ns[c->rcvd % RTT_SLOTS]);
	}
	c->rcvd++;
	if (cfg->mode == LG_ECHO && LG_LOAD(lg_phase) == LG_PH_RUN && !c->close_sent)
		send_message(t, c);
}

static void on_control(struct lg_thread *t, struct lg_conn *c, unsigned op, const uint8_t *p,
		       size_t n)
{
	if (op == 9) {
		LG_ADD(t->c.pings, 1);
		if (!c->close_sent)
			put_frame(t, c, 10, p, n);
	} else if (op == 8) {
		c->close_rcvd = 1;
		if (c->close_sent) {
			LG_ADD(t->c.close_ok, 1);
			t->last_close_ns = lg_now_ns();
		} else {
			LG_ADD(t->c.peer_closed, 1);
			put_frame(t, c, 8, p, n >= 2 ? 2 : 0);
			c->close_sent = 1;
			c->state = CS_CLOSING;
		}
	}
}

/* Consumes whole frames from p; returns bytes used, or -1 on a protocol error. */
static long parse_frames(struct lg_thread *t, struct lg_conn *c, const uint8_t *p, size_t n)
{
	size_t off = 0;
	uint64_t now = t->cfg->mode == LG_RATE || t->cfg->mode == LG_FANOUT ? lg_now_ns() : 0;

	while (n - off >= 2) {
		const uint8_t *f = p + off;
		unsigned fin = f[0] & 0x80, op = f[0] & 15;
		size_t hl = 2;
		uint64_t len = f[1] & 127;

		if ((f[0] & 0x70) || (f[1] & 0x80))
			return -1;	/* no extension negotiated; servers never mask */
		if (len == 126) {
			if (n - off < 4)
				break;
			len = (uint64_t)f[2] << 8 | f[3];
			hl = 4;
		} else if (len == 127) {
			if (n - off < 10)
				break;
			len = 0;
			for (int i = 0; i < 8; i++)
				len = len << 8 | f[2 + i];
			hl = 10;
		}
		if (len > MAX_FRAME)
			return -1;
		if (n - off < hl + len)
			break;
		const uint8_t *pl = f + hl;

		if (op >= 8) {
			if (!fin || len > 125)
				return -1;
			on_control(t, c, op, pl, len);
		} else if (op == 0 || !fin) {
			if ((op == 0) != (c->frag_op != 0))
				return -1;
			if (op)
				c->frag_op = (uint8_t)op;
			grow(&c->msg, &c->msg_cap, c->msg_len + len);
			memcpy(c->msg + c->msg_len, pl, len);
			c->msg_len += len;
			if (fin) {
				on_message(t, c, c->msg, c->msg_len, now);
				c->msg_len = 0;
				c->frag_op = 0;
			}
		} else {
			if (c->frag_op)
				return -1;
			if (op != 1 && op != 2)
				return -1;
			on_message(t, c, pl, len, now);
		}
		off += hl + len;
	}
	return (long)off;
}

/* Checks "HTTP/1.1 101" and Sec-WebSocket-Accept; returns header length, 0 for more, -1. */
static long parse_response(struct lg_conn *c, const uint8_t *p, size_t n)
{
	const char *s = (const char *)p, *end = memmem(p, n, "\r\n\r\n", 4), *h;
	static const char name[] = "\nsec-websocket-accept:";

	if (!end)
		return n > 8192 ? -1 : 0;
	if (n < 12 || memcmp(s, "HTTP/1.1 101", 12))
		return -1;
	for (h = s; h < end; h++) {
		if (*h == '\n' && (size_t)(end - h) > sizeof(name) &&
		    !strncasecmp(h, name, sizeof(name) - 1)) {
			h += sizeof(name) - 1;
			while (*h == ' ' || *h == '\t')
				h++;
			if (end - h < 28 || memcmp(h, c->accept, 28))
				return -1;
			return end + 4 - s;
		}
	}
	return -1;
}

static void on_open(struct lg_thread *t, struct lg_conn *c)
{
	c->state = CS_OPEN;
	t->connecting--;
	LG_ADD(t->c.connected, 1);
	if (LG_LOAD(lg_phase) != LG_PH_RUN)
		return;
	/* opened after the run began (connect timeout reached while it was in flight) */
	if (t->cfg->mode == LG_ECHO)
		for (unsigned i = 0; i < t->cfg->inflight; i++)
			send_message(t, c);
}

static void on_readable(struct lg_thread *t, struct lg_conn *c, int hup)
{
	for (;;) {
		size_t have = c->in_len;
		ssize_t n;
		long used;

		if (t->rbuf_cap < have + RBUF_MIN) {
			t->rbuf_cap = have + RBUF_MIN;
			t->rbuf = xrealloc(t->rbuf, t->rbuf_cap);
		}
		if (have)
			memcpy(t->rbuf, c->in, have);
		n = recv(c->fd, t->rbuf + have, t->rbuf_cap - have, 0);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN)
				return;
			conn_fail(t, c, c->state == CS_OPEN || c->state == CS_CLOSING ?
				  &t->c.peer_closed : &t->c.handshake_errors);
			return;
		}
		if (n == 0) {
			if (c->state == CS_HANDSHAKE)
				conn_fail(t, c, &t->c.handshake_errors);
			else if (!c->close_rcvd)
				conn_fail(t, c, &t->c.peer_closed);
			else
				conn_close(t, c);
			return;
		}
		LG_ADD(t->c.bytes_rcvd, (uint64_t)n);
		have += (size_t)n;
		used = 0;
		if (c->state == CS_HANDSHAKE) {
			used = parse_response(c, t->rbuf, have);
			if (used < 0) {
				conn_fail(t, c, &t->c.handshake_errors);
				return;
			}
			if (used > 0)
				on_open(t, c);
		}
		if (c->state == CS_OPEN || c->state == CS_CLOSING) {
			long m = parse_frames(t, c, t->rbuf + used, have - (size_t)used);

			if (m < 0) {
				conn_fail(t, c, &t->c.protocol_errors);
				return;
			}
			used += m;
		}
		c->in_len = have - (size_t)used;
		if (c->in_len) {
			grow(&c->in, &c->in_cap, c->in_len);
			memmove(c->in, t->rbuf + used, c->in_len);
		}
		/* A short read emptied the socket; bytes that arrive later raise a new
		 * edge. Skipping the recv that would say EAGAIN saves a syscall per wake;
		 * not after a hang-up, whose edge is spent: only the next recv sees EOF. */
		if (!hup && (size_t)n < t->rbuf_cap - (have - (size_t)n))
			return;
	}
}

static void start_connect(struct lg_thread *t, struct lg_conn *c)
{
	const struct lg_config *cfg = t->cfg;
	struct sockaddr_in src = { .sin_family = AF_INET };
	struct epoll_event ev = { .events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET,
				  .data.ptr = c };
	int one = 1, fd;

	fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		LG_ADD(t->c.connect_errors, 1);
		c->state = CS_DONE;
		return;
	}
	c->fd = fd;
	t->live++;
	c->state = CS_CONNECTING;
	t->connecting++;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (cfg->sources > 1) {
		/* Pick the port at connect time, per 4-tuple: each source address then has
		 * a whole ephemeral range towards the one target. */
		setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
		src.sin_addr.s_addr = htonl(0x7f000001u + c->idx % cfg->sources);
		if (bind(fd, (struct sockaddr *)&src, sizeof(src)) < 0)
			goto fail;
	}
	if (connect(fd, (const struct sockaddr *)&cfg->target, sizeof(cfg->target)) < 0 &&
	    errno != EINPROGRESS)
		goto fail;
	if (epoll_ctl(t->epfd, EPOLL_CTL_ADD, fd, &ev) < 0)
		goto fail;
	return;
fail:
	conn_fail(t, c, &t->c.connect_errors);
}

static void on_connected(struct lg_thread *t, struct lg_conn *c)
{
	const struct lg_config *cfg = t->cfg;
	uint8_t raw[16];
	char key[25], req[512];
	int err = 0, len;
	socklen_t el = sizeof(err);

	if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &el) < 0 || err) {
		conn_fail(t, c, &t->c.connect_errors);
		return;
	}
	for (int i = 0; i < 16; i += 8) {
		uint64_t r = rnd(&t->rng);
		memcpy(raw + i, &r, 8);
	}
	lg_base64(raw, 16, key);
	lg_ws_accept(key, c->accept);
	len = snprintf(req, sizeof(req),
		       "GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\n"
		       "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
		       "Sec-WebSocket-Version: 13\r\n\r\n", cfg->path, cfg->host, key);
	grow(&c->out, &c->out_cap, (size_t)len);
	memcpy(c->out, req, (size_t)len);
	c->out_len = (size_t)len;
	c->state = CS_HANDSHAKE;
}

static void on_event(struct lg_thread *t, struct lg_conn *c, uint32_t ev)
{
	if (!c) { /* fanout: the publisher's wake-up */
		uint64_t v;
		ssize_t r = read(lg_fan.efd, &v, sizeof(v));
		(void)r;
		return;
	}
	if (c->fd < 0)
		return;		/* closed earlier in this batch */
	if (c->state == CS_CONNECTING) {
		if (!(ev & (EPOLLOUT | EPOLLERR | EPOLLHUP)))
			return;
		on_connected(t, c);
		if (c->fd < 0)
			return;
	}
	if (ev & (EPOLLIN | EPOLLRDHUP | EPOLLERR | EPOLLHUP))
		on_readable(t, c, !!(ev & (EPOLLRDHUP | EPOLLERR | EPOLLHUP)));
	if (c->fd < 0)
		return;
	if (t->cfg->mode == LG_INGEST) {
		int pump = c->state >= CS_OPEN && LG_LOAD(lg_phase) != LG_PH_CONNECT;

		if (ingest_io(t, c, pump) < 0) {
			conn_fail(t, c, &t->c.peer_closed);
			return;
		}
	} else if (flush(t, c) < 0) {
		conn_fail(t, c, &t->c.peer_closed);
		return;
	}
	/* both close frames exchanged: nothing more can come that we would read */
	if (c->close_sent && c->close_rcvd && c->out_len == 0)
		conn_close(t, c);
}

/* Rate mode: message k of local connection l is due at (k * conns + global index) / rate
 * after the run began, whether or not earlier ones came back (open loop). */
static uint64_t next_due(struct lg_thread *t)
{
	const struct lg_config *cfg = t->cfg;
	double idx = (double)t->sched_l * cfg->threads + t->id;

	return lg_run_start_ns +
	       (uint64_t)(((double)t->sched_k * cfg->conns + idx) * 1e9 / cfg->rate);
}

static void rate_send_due(struct lg_thread *t, uint64_t now)
{
	uint64_t due;

	while ((due = next_due(t)) <= now) {
		struct lg_conn *c = &t->conns[t->sched_l];

		if (now - due > t->send_lag_max_ns)
			t->send_lag_max_ns = now - due;
		if (c->state == CS_OPEN && c->sent == t->sched_k) {
			c->sent_ns[c->sent % RTT_SLOTS] = lg_now_ns();
			send_message(t, c);
			if (flush(t, c) < 0)
				conn_fail(t, c, &t->c.peer_closed);
		}
		if (++t->sched_l == t->nconns) {
			t->sched_l = 0;
			t->sched_k++;
		}
	}
}

static void enter_run(struct lg_thread *t)
{
	const struct lg_config *cfg = t->cfg;

	for (unsigned i = 0; i < t->nconns; i++) {
		struct lg_conn *c = &t->conns[i];

		if (c->state == CS_CONNECTING || c->state == CS_HANDSHAKE) {
			conn_fail(t, c, &t->c.connect_errors);	/* too late: timed out */
			continue;
		}
		if (c->state == CS_IDLE) {
			c->state = CS_DONE;
			continue;
		}
		if (c->state != CS_OPEN)
			continue;
		if (cfg->mode == LG_ECHO)
			for (unsigned k = 0; k < cfg->inflight; k++)
				send_message(t, c);
		if (cfg->mode == LG_INGEST) {
			if (ingest_io(t, c, 1) < 0)
				conn_fail(t, c, &t->c.peer_closed);
		} else if (flush(t, c) < 0) {
			conn_fail(t, c, &t->c.peer_closed);
		}
	}
}

/* Draining: no new messages; a connection closes once all its echoes are back. */
static void drain_step(struct lg_thread *t)
{
	const struct lg_config *cfg = t->cfg;

	for (unsigned i = 0; i < t->nconns; i++) {
		struct lg_conn *c = &t->conns[i];

		if (c->fd < 0 || c->close_sent)
			continue;
		if (c->state != CS_OPEN) {
			conn_close(t, c);
			continue;
		}
		if (cfg->mode == LG_INGEST) {
			if (c->ingest_goal == UINT64_MAX)
				c->ingest_goal = (c->ingest_bytes + t->frame_len - 1) /
						 t->frame_len * t->frame_len;
			if (ingest_io(t, c, 1) < 0)
				conn_fail(t, c, &t->c.peer_closed);
			continue;
		}
		if ((cfg->mode == LG_ECHO || cfg->mode == LG_RATE) && c->rcvd < c->sent)
			continue;
		if (cfg->mode == LG_FANOUT && c->rcvd < __atomic_load_n(&lg_fan.sent, __ATOMIC_ACQUIRE))
			continue;
		send_close(t, c);
		if (flush(t, c) < 0)
			conn_fail(t, c, &t->c.peer_closed);
	}
}

static int wait_events(struct lg_thread *t, struct epoll_event *evs, int max, uint64_t until)
{
	uint64_t now = lg_now_ns();
	struct timespec ts = { 0, 0 };

	if (until > now) {
		ts.tv_sec = (time_t)((until - now) / 1000000000u);
		ts.tv_nsec = (long)((until - now) % 1000000000u);
	}
	return epoll_pwait2(t->epfd, evs, max, &ts, NULL);
}

void *lg_client_run(void *arg)
{
	struct lg_thread *t = arg;
	const struct lg_config *cfg = t->cfg;
	struct epoll_event evs[512];

	for (;;) {
		/* pairs with main's release store: lg_run_start_ns is set before it */
		int phase = __atomic_load_n(&lg_phase, __ATOMIC_ACQUIRE);
		uint64_t now = lg_now_ns(), until = now + 20000000;	/* poll the phase */

		if (phase != (int)t->seen) {
			if (phase == LG_PH_RUN)
				enter_run(t);
			t->seen = (enum lg_phase)phase;
		}
		if (phase == LG_PH_CONNECT)
			while (t->next_connect < t->nconns &&
			       t->connecting < cfg->connect_parallel)
				start_connect(t, &t->conns[t->next_connect++]);
		if (phase == LG_PH_DRAIN) {
			drain_step(t);
			if (!t->live || now >= LG_LOAD(lg_drain_deadline_ns))
				break;
			until = now + 5000000;
		}
		if (phase == LG_PH_RUN && cfg->mode == LG_RATE && t->nconns) {
			rate_send_due(t, now);
			uint64_t due = next_due(t);
			if (due < until)
				until = due;
		}
		if (cfg->mode == LG_FANOUT && (phase == LG_PH_WARM || phase == LG_PH_RUN)) {
			fan_pump(t, phase, now);
			if (phase == LG_PH_WARM && until > now + 50000000u)
				until = now + 50000000u;
		}
		int n = wait_events(t, evs, 512, until);

		for (int i = 0; i < n; i++)
			on_event(t, evs[i].data.ptr, evs[i].events);
	}
	for (unsigned i = 0; i < t->nconns; i++)
		if (t->conns[i].fd >= 0)
			conn_close(t, &t->conns[i]);
	return NULL;
}

void lg_client_init(struct lg_thread *t, const struct lg_config *cfg, unsigned id)
{
	memset(t, 0, sizeof(*t));
	t->id = id;
	t->cfg = cfg;
	t->rng = 0x9e3779b97f4a7c15ull ^ ((uint64_t)id << 32) ^ (uint64_t)lg_now_ns();
	t->nconns = cfg->conns / cfg->threads + (id < cfg->conns % cfg->threads);
	t->conns = xrealloc(NULL, sizeof(*t->conns) * (t->nconns ? t->nconns : 1));
	memset(t->conns, 0, sizeof(*t->conns) * (t->nconns ? t->nconns : 1));
	for (unsigned i = 0; i < t->nconns; i++) {
		t->conns[i].fd = -1;
		t->conns[i].idx = i * cfg->threads + id;
		t->conns[i].ingest_goal = UINT64_MAX;
		if (cfg->mode == LG_RATE)
			t->conns[i].sent_ns = xrealloc(NULL, RTT_SLOTS * sizeof(uint64_t));
	}
	t->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (t->epfd < 0) {
		perror("wsgw-bench: epoll_create1");
		abort();
	}
	if (cfg->mode == LG_FANOUT && id == 0) {
		struct epoll_event ev = { .events = EPOLLIN | EPOLLET, .data.ptr = NULL };
		if (epoll_ctl(t->epfd, EPOLL_CTL_ADD, lg_fan.efd, &ev) < 0) {
			perror("wsgw-bench: epoll_ctl(eventfd)");
			abort();
		}
	}
	if (cfg->mode == LG_INGEST) {
		size_t hl = cfg->size < 126 ? 2 : cfg->size < 65536 ? 4 : 10, nf;
		struct lg_conn tmp = { .fd = -1 };

		t->frame_len = hl + 4 + cfg->size;
		nf = (64u << 10) / t->frame_len + 1;
		for (size_t i = 0; i < nf; i++) {
			uint8_t *p = xrealloc(NULL, cfg->size ? cfg->size : 1);
			make_payload(p, cfg->size, id, i);
			put_frame(t, &tmp, cfg->text ? 1 : 2, p, cfg->size);
			free(p);
		}
		t->blk = tmp.out;
		t->blk_len = tmp.out_len;
	}
}

void lg_client_free(struct lg_thread *t)
{
	close(t->epfd);
	free(t->conns);
	free(t->rbuf);
	free(t->blk);
}
