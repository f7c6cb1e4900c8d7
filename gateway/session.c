#include "gateway/session_int.h"
#include "gateway/budget.h"
#include "gateway/clog.h"
#include "gateway/conn.h"
#include "gateway/door.h"
#include "gateway/frame.h"
#include "gateway/log.h"
#include "gateway/pool.h"
#include "gateway/stats.h"
#include "gateway/tls.h"
#include "gateway/upgrade.h"
#include "gateway/utf8.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

/* Stop reading a client whose unsent output passed HIGH; read again below LOW. For the
 * echo this is TCP backpressure to a client that writes faster than it reads. */
#define OUT_HIGH (1u << 20)
#define OUT_LOW (256u << 10)

/* Frames of at least this many bytes are written at once when nothing is queued. */
#define SESS_DIRECT_MIN (16u << 10)

/* Returned by our ws_rx callbacks to stop the parser without a protocol error. */
#define SESS_STOP (-1)

static void count_drop(struct sess *s, const struct conn *c)
{
	uint32_t now = loop_now(s->u.loop);
	if (stats.outbound_dropped++ && (int32_t)(now - s->dropped_log_at) < 1000)
		return;
	/* "In all" is every loop's, not this thread's: a sum, at most once a second. */
	struct gw_stats all;
	stats_sum(&all);
	clog_warn(c, 0, "over --max-outbound, message dropped (%llu dropped in all)",
		 (unsigned long long)all.outbound_dropped);
	s->dropped_log_at = now;
}

/* Queues one unfragmented server frame. Past the outbound cap the client is too slow to
 * keep up: the policy closes it with 1008 or drops the message, rather than let its queue
 * grow without bound. Returns 0 or SESS_STOP. */
int sess__send_frame(struct sess *s, struct conn *c, unsigned op, const uint8_t *p, size_t n)
{
	uint8_t hdr[WS_FRAME_HDR_MAX];
	size_t plain = n;
	int rsv1 = 0;
	if (c->pmd.on && (op == WS_OP_TEXT || op == WS_OP_BINARY) && n >= s->cfg->deflate.min_size) {
		const uint8_t *z;
		size_t zn;
		/* Sent compressed when it is smaller; with context kept, always (the client's
		 * inflater must see every message the deflater saw). */
		if (pmd_deflate(&c->pmd, &s->cfg->deflate, &c->pmd_s, p, n, &z, &zn) == 0 &&
		    (zn < n || (c->pmd.takeover & 2))) {
			p = z;
			n = zn;
			rsv1 = 1;
		}
	}
	size_t hlen = ws_frame_header(hdr, op, 1, n, NULL);
	if (rsv1)
		hdr[0] |= 0x40;
	/* A client that keeps up has nothing queued between batches: only one that does not
	 * is refused, past its own share or past the gateway's memory budget. */
	const struct cfg_conn_limits *lim = cfg_limits(s->cfg, c->route);
	int over_share = c->out.bytes + hlen + n > lim->max_outbound;
	if (over_share || (c->out.bytes && !bud_room(BUD_OUTBOUND, hlen + n))) {
		if (lim->outbound_drop) {
			count_drop(s, c);
			return 0;
		}
		clog_warn(c, 0, "%zu bytes queued for a slow client, over %s: close 1008",
			 c->out.bytes,
			 over_share ? "--max-outbound" : "--memory-budget");
		outq_trim(&c->out);
		sess_close(s, c, WS_CLOSE_POLICY, "outbound limit");
		return SESS_STOP;
	}
	if (op == WS_OP_TEXT || op == WS_OP_BINARY) {
		stats.messages_out++;
		stats.bytes_out += plain;
	}
	/* A large frame for a client with nothing queued goes to the socket now, from where
	 * it lies (the read buffer, a worker's ring): copying it into the queue first cost
	 * as much as the rest of its echo. Small frames wait for the batch's one writev. */
	ssize_t w = -1;
	if (!c->out.bytes && n >= SESS_DIRECT_MIN && !c->tls && c->fd >= 0) {
		struct iovec iov[2] = { { hdr, hlen }, { (void *)p, n } };
		w = writev(c->fd, iov, 2);
		if (w == (ssize_t)(hlen + n))
			return 0;
	}
	if (!c->out.bytes)
		c->out_since = loop_now(s->u.loop);
	if (outq_append2(&c->out, hdr, hlen, p, n)) {
		clog_error(c, ENOMEM, "queueing %zu bytes", n);
		loop_close(s->u.loop, c, "out of memory");
		return SESS_STOP;
	}
	/* The socket took part of it: the queue holds the frame as partly written. An error
	 * is the flush's to see. */
	if (w > 0)
		outq_consume(&c->out, (size_t)w);
	loop_mark(s->u.loop, c);
	return 0;
}

static void send_close_frame(struct sess *s, struct conn *c, unsigned code, const char *reason)
{
	uint8_t body[WS_CONTROL_MAX];
	size_t n = 0;
	if (code) {
		body[0] = (uint8_t)(code >> 8);
		body[1] = (uint8_t)code;
		n = 2;
		size_t rl = reason ? strlen(reason) : 0;
		if (rl > sizeof(body) - 2)
			rl = sizeof(body) - 2;
		if (rl)
			memcpy(body + 2, reason, rl);
		n += rl;
	}
	stats_close_sent(code);
	/* The close frame must go out even when the queue is over the cap. */
	uint8_t hdr[WS_FRAME_HDR_MAX];
	size_t hlen = ws_frame_header(hdr, WS_OP_CLOSE, 1, n, NULL);
	if (outq_append2(&c->out, hdr, hlen, body, n)) {
		loop_close(s->u.loop, c, "out of memory");
		return;
	}
	loop_mark(s->u.loop, c);
}

/* Fails an open connection with code from our side: the close frame, then the lingering
 * close (RFC 6455 7.1.7). The worker is told with the same code. */
static void fail(struct sess *s, struct conn *c, unsigned code, const char *why)
{
	pool_closed(s->u.ps, c, code, why);
	if (c->state == CONN_OPEN)
		send_close_frame(s, c, code, why);
	loop_linger(s->u.loop, c);
}

/* A compressed message's payload, inflated within --max-message and checked. Returns 0
 * with *p, *n replaced, or SESS_STOP (c was failed with the RFC's code). */
static int inflate_message(struct sess *s, struct conn *c, unsigned op, const uint8_t **p,
			   size_t *n)
{
	const uint8_t *out;
	size_t on;
	int rc = pmd_inflate(&c->pmd, &c->pmd_s, *p, *n, cfg_limits(s->cfg, c->route)->max_message,
			     &out, &on);
	unsigned code = rc == -EMSGSIZE ? WS_CLOSE_TOO_BIG : rc ? WS_CLOSE_BAD_DATA : 0;
	if (!rc && op == WS_OP_TEXT && utf8_validate(UTF8_ACCEPT, out, on) != UTF8_ACCEPT)
		code = WS_CLOSE_BAD_DATA;
	if (rc == -ENOMEM)
		code = WS_CLOSE_INTERNAL;
	if (code) {
		const char *why = rc == -EMSGSIZE ? "a compressed message inflating past --max-message"
				  : rc == -ENOMEM ? "out of memory inflating a message"
				  : rc		  ? "invalid compressed data"
						  : "invalid UTF-8 after inflating";
		clog_info(c, "%s, closing with %u (%s)", why, code, ws_close_name(code));
		fail(s, c, code, why);
		return SESS_STOP;
	}
	*p = out;
	*n = on;
	return 0;
}

/* Hands a whole message to the route's pool: the built-in echo, or c's worker. */
static int deliver(struct sess *s, struct conn *c, unsigned op, const uint8_t *p, size_t n)
{
	if (op & WS_OP_COMPRESSED) {
		op &= ~(unsigned)WS_OP_COMPRESSED;
		if (inflate_message(s, c, op, &p, &n))
			return SESS_STOP;
	}
	stats.messages_in++;
	stats.bytes_in += n;
	if (c->flags & CONN_ECHO)
		return sess__send_frame(s, c, op, p, n);
	int rc = pool_message(s->u.ps, c, op, p, n);
	if (rc == 0)
		return 0;
	stats.records_dropped++;
	if (rc == -ENOBUFS) {
		/* The worker is behind and everyone's held records are at the budget. */
		clog_warn(c, 0, "holding a message of %zu bytes for its worker would pass --memory-budget: close 1013",
			 n);
		fail(s, c, WS_CLOSE_TRY_AGAIN, "server busy");
		return SESS_STOP;
	}
	clog_error(c, -rc, "a message of %zu bytes for the worker", n);
	if (rc == -EMSGSIZE)
		fail(s, c, WS_CLOSE_TOO_BIG, "message too big for the worker's ring");
	else
		fail(s, c, WS_CLOSE_INTERNAL, "out of memory");
	return SESS_STOP;
}

/* The parser's user data: which connection of which session. */
struct rx_ctx {
	struct sess *s;
	struct conn *c;
};

static int on_data(void *ud, unsigned op, uint8_t *p, size_t n, int first, int last)
{
	struct rx_ctx *x = ud;
	struct sess *s = x->s;
	struct conn *c = x->c;
	if (c->state != CONN_OPEN)
		return 0; /* after our close frame, data is read and dropped (RFC 6455 5.5.1) */
	if (first && last)
		return deliver(s, c, op, p, n); /* the whole message is in the read buffer: no copy */
	if (first)
		c->msg_len = 0;
	if (n) {
		if ((uint64_t)c->msg_len + n > c->msg_cap) {
			/* The parser already capped the message at max_message. */
			uint64_t cap = c->msg_cap ? c->msg_cap : 4096;
			while (cap < (uint64_t)c->msg_len + n)
				cap *= 2;
			uint64_t max = cfg_limits(s->cfg, c->route)->max_message;
			if (cap > max)
				cap = max;
			int rc = conn_msg_grow(c, (uint32_t)cap);
			if (rc == -ENOBUFS) {
				/* Everyone's partial messages together are over the budget: this one
				 * is refused as too big, before its memory is spent. */
				clog_warn(c, 0, "assembling a message would pass %s (%llu bytes held in all, %llu in partial messages): close 1009 (message too big)",
					  bud_refusal(), (unsigned long long)bud_total(),
					  (unsigned long long)bud_used(BUD_ASSEMBLY));
				fail(s, c, WS_CLOSE_TOO_BIG, "over the memory budget");
				return SESS_STOP;
			}
			if (rc) {
				clog_error(c, ENOMEM, "message buffer of %llu bytes",
					  (unsigned long long)cap);
				fail(s, c, WS_CLOSE_INTERNAL, "out of memory");
				return SESS_STOP;
			}
		}
		memcpy(c->msg + c->msg_len, p, n);
		c->msg_len += (uint32_t)n;
	}
	if (!last)
		return 0;
	int rc = deliver(s, c, op, c->msg, c->msg_len);
	conn_msg_free(c);
	return rc;
}

static int on_control(void *ud, unsigned op, uint8_t *p, size_t n, unsigned code,
		      const uint8_t *reason, size_t reason_len)
{
	struct rx_ctx *x = ud;
	struct sess *s = x->s;
	struct conn *c = x->c;
	switch (op) {
	case WS_OP_PING:
		return c->state == CONN_OPEN ? sess__send_frame(s, c, WS_OP_PONG, p, n) : 0;
	case WS_OP_PONG:
		c->flags &= (uint8_t)~CONN_PING_SENT;
		return 0;
	default: /* WS_OP_CLOSE */
		if (c->state == CONN_OPEN) {
			/* Echo the code (RFC 6455 5.5.1); an empty close gets an empty close. */
			clog_debug(c, "peer closed with %u (%s)", code, ws_close_name(code));
			send_close_frame(s, c, code, NULL);
			char why[WS_CONTROL_MAX + 1];
			if (reason_len)
				memcpy(why, reason, reason_len);
			why[reason_len] = 0;
			pool_closed(s->u.ps, c, code ? code : WS_CLOSE_NO_STATUS, why);
		}
		loop_linger(s->u.loop, c);
		return SESS_STOP; /* nothing after a close frame counts */
	}
}

static const struct ws_rx_ops rx_ops = { .data = on_data, .control = on_control };

static const char *violation(unsigned code)
{
	switch (code) {
	case WS_CLOSE_TOO_BIG: return "message over --max-message";
	case WS_CLOSE_BAD_DATA: return "invalid UTF-8";
	default: return "protocol violation";
	}
}

/* Parses frames (OPEN, CLOSE_WAIT) or drops input (LINGER). Returns bytes to keep. */
size_t sess__process_frames(struct sess *s, struct conn *c, uint8_t *buf, size_t n)
{
	if (c->state != CONN_OPEN && c->state != CONN_CLOSE_WAIT)
		return 0;
	struct rx_ctx x = { s, c };
	ssize_t r = ws_rx_feed(&c->rx, buf, n, cfg_limits(s->cfg, c->route)->max_message, &rx_ops, &x);
	if (r == SESS_STOP) {
		/* A callback stopped the parser mid-stream: its state is lost, so waiting for
		 * the peer's close frame is no longer possible. */
		if (c->state == CONN_CLOSE_WAIT)
			loop_linger(s->u.loop, c);
		return 0;
	}
	if (r < 0) {
		unsigned code = (unsigned)-r;
		clog_info(c, "%s, closing with %u (%s)", violation(code), code, ws_close_name(code));
		if (c->state == CONN_OPEN)
			send_close_frame(s, c, code, NULL);
		pool_closed(s->u.ps, c, code, violation(code));
		loop_linger(s->u.loop, c);
		return 0;
	}
	return n - (size_t)r;
}

/* Parses buf[0..n) by state. Returns the bytes to keep for the next read. */
/* process()'s answer when c went to another loop: from then on c is that loop's, and
 * this one must not look at it again. */
#define MOVED ((size_t)-1)

static size_t process(struct sess *s, struct conn *c, uint8_t *buf, size_t n)
{
	if (c->state != CONN_HANDSHAKE)
		return sess__process_frames(s, c, buf, n);
	size_t used;
	enum upg_result r = upg_feed(&s->u, c, buf, n, &used);
	if (r == UPG_MOVE) {
		sess__move(s, c, NULL);
		return MOVED;
	}
	if (r != UPG_OPEN)
		return 0;
	/* Bytes after the request in the same read are the client's first frames. */
	return sess__process_frames(s, c, buf + used, n - used);
}

void sess__keep_tail(struct sess *s, struct conn *c, const uint8_t *tail, size_t n)
{
	if (n == 0) {
		free(c->in);
		c->in = NULL;
		c->in_len = 0;
		return;
	}
	if (!c->in) {
		c->in = malloc(WS_RX_TAIL_MAX);
		if (!c->in) {
			loop_close(s->u.loop, c, "out of memory");
			return;
		}
	}
	memmove(c->in, tail, n);
	c->in_len = (uint16_t)n;
}

static void on_eof(struct sess *s, struct conn *c)
{
	if (c->state == CONN_OPEN) {
		clog_debug(c, "peer vanished without a close frame (1006)");
		pool_closed(s->u.ps, c, WS_CLOSE_ABNORMAL, "connection lost");
	}
	loop_close(s->u.loop, c, "peer closed");
}

/* Reading stops while the client's output is over the high mark, or its worker cannot
 * take more; sess__resume() starts it again. */
static int must_pause(struct sess *s, struct conn *c)
{
	return c->out.bytes >= OUT_HIGH || (c->state == CONN_OPEN && pool_blocked(s->u.ps, c));
}

/* read() or TLS: bytes, 0 at EOF, or -errno. */
static ssize_t conn_read(struct sess *s, struct conn *c, uint8_t *buf, size_t cap)
{
	if (!c->tls) {
		ssize_t r = read(c->fd, buf, cap);
		return r < 0 ? -errno : r;
	}
	ssize_t r = tls_read(c->tls, buf, cap);
	/* The handshake's flights, and tickets and alerts, are OpenSSL's to send. */
	if (tls_has_output(c->tls))
		loop_mark(s->u.loop, c);
	return r;
}

static void on_read_error(struct sess *s, struct conn *c, int err)
{
	if (c->state == CONN_OPEN)
		pool_closed(s->u.ps, c, WS_CLOSE_ABNORMAL, "connection lost");
	if (err == EPROTO || err == EPROTONOSUPPORT) {
		char peer[64];
		conn_peer(c, peer, sizeof(peer));
		log_info("conn %llu: %s: TLS %s: %s", (unsigned long long)c->id, peer,
			 tls_ready(c->tls) ? "error" : "handshake failed",
			 err == EPROTO ? tls_error(c->tls) : "plain HTTP sent to a TLS port");
	}
	if (err == EPROTONOSUPPORT) {
		/* As nginx does: a browser pointed at http:// on the TLS port is told why. One
		 * write, best effort; the connection closes whatever it takes. */
		static const char resp[] = "HTTP/1.1 400 Bad Request\r\nConnection: close\r\n"
					   "Content-Length: 39\r\n\r\nplain HTTP request sent to a TLS port\r\n";
		if (write(c->fd, resp, sizeof(resp) - 1) < 0)
			log_debug("conn %llu: the 400 for plain HTTP: %s", (unsigned long long)c->id,
				  strerror(errno));
		stats_rejected(400);
	}
	loop_close(s->u.loop, c, strerror(err));
}

static void read_conn(struct sess *s, struct conn *c)
{
	size_t cap;
	uint8_t *rbuf = loop_rbuf(s->u.loop, &cap);
	while (c->state != CONN_DEAD && !(c->flags & CONN_READ_PAUSED)) {
		if (must_pause(s, c)) {
			c->flags |= CONN_READ_PAUSED;
			return;
		}
		/* The unparsed tail of the previous read goes in front of the new bytes. */
		size_t have = 0;
		if (c->state != CONN_HANDSHAKE && c->in_len) {
			have = c->in_len;
			memcpy(rbuf, c->in, have);
		}
		ssize_t r = conn_read(s, c, rbuf + have, cap);
		if (r == -EINTR)
			continue;
		if (r < 0) {
			if (r != -EAGAIN)
				on_read_error(s, c, (int)-r);
			return;
		}
		if (r == 0) {
			on_eof(s, c);
			return;
		}
		if (c->state == CONN_OPEN) {
			c->deadline = loop_now(s->u.loop) + cfg_limits(s->cfg, c->route)->idle_ms;
			c->flags &= (uint8_t)~CONN_PING_SENT;
		}
		size_t total = have + (size_t)r;
		size_t keep = process(s, c, rbuf, total);
		if (keep == MOVED || c->state == CONN_DEAD)
			return;
		if (c->state != CONN_HANDSHAKE && c->state != CONN_AUTHORIZING)
			sess__keep_tail(s, c, rbuf + total - keep, keep);
		/* A short read emptied the socket's receive queue; bytes that arrive later
		 * raise a new edge. Reading again would only cost an EAGAIN syscall. With TLS a
		 * short result says nothing (OpenSSL returns one record at a time, and may hold
		 * more it read ahead): tls_drained() knows whether its last read() was short. */
		if (c->tls ? tls_drained(c->tls) : (size_t)r < cap)
			return;
	}
}

void sess__resume(void *arg, struct conn *c)
{
	struct sess *s = arg;
	if (c->state == CONN_DEAD || c->state == CONN_AUTHORIZING || !(c->flags & CONN_READ_PAUSED))
		return;
	c->flags &= (uint8_t)~CONN_READ_PAUSED;
	/* Edge-triggered: the input that waited will not raise a new event, and the edges
	 * that came while reading was paused were dropped: what OpenSSL last saw of the
	 * socket is no longer true. */
	if (c->tls)
		tls_undrain(c->tls);
	read_conn(s, c);
}

void sess_close(struct sess *s, struct conn *c, unsigned code, const char *reason)
{
	switch (c->state) {
	case CONN_HANDSHAKE:
		loop_close(s->u.loop, c, reason);
		break;
	case CONN_AUTHORIZING:
		pool_closed(s->u.ps, c, code, reason);
		upg_error(&s->u, c, 503, reason);
		break;
	case CONN_OPEN:
		pool_closed(s->u.ps, c, code, reason);
		send_close_frame(s, c, code, reason);
		c->state = CONN_CLOSE_WAIT;
		c->deadline = loop_now(s->u.loop) + s->cfg->close_ms;
		break;
	default:
		break; /* already closing */
	}
}

/* --- the loop's callbacks --- */

static void on_event(void *arg, struct conn *c, uint32_t events)
{
	(void)events; /* errors and hang-ups show in read() */
	read_conn(arg, c);
}

static void on_drained(void *arg, struct conn *c)
{
	struct sess *s = arg;
	if (c->state == CONN_LINGER && !(c->flags & CONN_SHUT_SENT)) {
		/* TLS ends with close_notify before the TCP half-close. */
		if (c->tls && tls_close_notify(c->tls)) {
			loop_mark(s->u.loop, c);
			return;
		}
		c->flags |= CONN_SHUT_SENT;
		if (shutdown(c->fd, SHUT_WR) < 0) {
			loop_close(s->u.loop, c, "shutdown failed");
			return;
		}
	}
	if (c->out.bytes < OUT_LOW)
		sess__resume(s, c);
}

static void on_deadline(void *arg, struct conn *c)
{
	struct sess *s = arg;
	switch (c->state) {
	case CONN_HANDSHAKE:
	case CONN_AUTHORIZING:
		upg_deadline(&s->u, c);
		break;
	case CONN_OPEN:
		if (!(c->flags & CONN_PING_SENT)) {
			c->flags |= CONN_PING_SENT;
			c->deadline = loop_now(s->u.loop) + cfg_limits(s->cfg, c->route)->ping_ms;
			sess__send_frame(s, c, WS_OP_PING, NULL, 0);
		} else {
			clog_info(c, "no answer to ping within ping-timeout: close 1001 (going away)");
			fail(s, c, WS_CLOSE_GOING_AWAY, "idle");
		}
		break;
	default:
		loop_close(s->u.loop, c, "close timeout");
		break;
	}
}

static void on_closing(void *arg, struct conn *c)
{
	struct sess *s = arg;
	door_leave(c->ip);
	c->ip = 0;
	pmd_stream_free(c->pmd_s);
	c->pmd_s = NULL;
	tls_conn_free(c->tls);
	c->tls = NULL;
	pool_closed(s->u.ps, c, WS_CLOSE_ABNORMAL, "connection lost");
	/* The state still tells which member of the union lives. */
	if (c->state == CONN_HANDSHAKE || c->state == CONN_AUTHORIZING)
		upg_closing(c);
	else
		free(c->in);
	c->in = NULL;
	c->in_len = 0;
	conn_msg_free(c);
	outq_clear(&c->out);
}

const struct loop_conn_ops sess__loop_ops = {
	.event = on_event,
	.drained = on_drained,
	.deadline = on_deadline,
	.closing = on_closing,
};

int sess_start(struct sess *s, struct conn *c)
{
	return upg_start(&s->u, c);
}

/* Adding c to the epoll set reports what its socket holds, but not the records OpenSSL
 * read ahead of it on the loop it came from: once the flush has written what c had
 * queued, on_drained reads it again as if it had been paused. */
static void reread(struct sess *s, struct conn *c)
{
	if (c->tls && c->state == CONN_OPEN)
		c->flags |= CONN_READ_PAUSED;
	loop_mark(s->u.loop, c);
}

/* c, moved here, joins this loop's epoll set and gets what was published for it on the
 * way: 0, or -1 and it is closing (epoll_ctl failed, or that found it too slow). */
static int take(struct sess *s, struct conn *c)
{
	if (loop_add_conn(s->u.loop, c)) {
		loop_close(s->u.loop, c, "epoll_ctl failed");
		return -1;
	}
	enum conn_state was = c->state;
	if (was != CONN_HANDSHAKE)
		sess__take_inbox(s); /* before anything published from now on */
	return c->state == was ? 0 : -1;
}

void sess__move(struct sess *s, struct conn *c, struct pool_held *held)
{
	if (s->home.move(s->home.arg, c, held) == 0)
		return;
	clog_error(c, ENOMEM, "its move to the loop with a worker");
	if (c->state == CONN_DEAD) {
		pool_held_free(held);
	} else if (c->state == CONN_HANDSHAKE) {
		loop_close(s->u.loop, c, "out of memory");
	} else {
		pool_receive(s->u.ps, c, held);
		reread(s, c);
	}
}

void sess_arrive(struct sess *s, struct conn *c, struct pool_held *held)
{
	if (take(s, c)) {
		pool_held_free(held);
		return;
	}
	if (held || c->state != CONN_HANDSHAKE) {
		pool_receive(s->u.ps, c, held);
		reread(s, c);
		return;
	}
	/* What comes after the early frames is read as the epoll set reports it. */
	enum upg_result r = upg_route(&s->u, c);
	if (r == UPG_MOVE) { /* the worker it came for died on the way */
		sess__move(s, c, NULL);
		return;
	}
	if (r != UPG_OPEN)
		return;
	sess__early_frames(s, c);
	if (c->state == CONN_OPEN)
		reread(s, c);
}

void sess_turn_away(struct sess *s, struct conn *c, const char *reason)
{
	if (take(s, c) == 0)
		sess_close(s, c, WS_CLOSE_GOING_AWAY, reason);
}

void sess_adopt(struct sess *s, struct conn *c)
{
	if (take(s, c) == 0)
		reread(s, c);
}

void sess__early_frames(struct sess *s, struct conn *c)
{
	if (!c->msg)
		return;
	/* Taken out of c->msg first: assembling a message uses it. */
	size_t cap, n = c->msg_len;
	uint8_t *rbuf = loop_rbuf(s->u.loop, &cap);
	memcpy(rbuf, c->msg, n);
	conn_msg_free(c);
	size_t keep = sess__process_frames(s, c, rbuf, n);
	if (c->state != CONN_DEAD)
		sess__keep_tail(s, c, rbuf + n - keep, keep);
}
