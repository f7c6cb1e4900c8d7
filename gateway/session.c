#include "gateway/session.h"
#include "gateway/conn.h"
#include "gateway/frame.h"
#include "gateway/handshake.h"
#include "gateway/log.h"
#include "gateway/pool.h"
#include "gateway/server.h"
#include "gateway/stats.h"
#include "wsgw/protocol.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* Stop reading a client whose unsent output passed HIGH; read again below LOW. For the
 * echo this is TCP backpressure to a client that writes faster than it reads. */
#define OUT_HIGH (1u << 20)
#define OUT_LOW (256u << 10)

/* Returned by our ws_rx callbacks to stop the parser without a protocol error. */
#define SESS_STOP (-1)

static void peer_text(const struct conn *c, char *out, size_t cap)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	char host[INET6_ADDRSTRLEN] = "?";
	unsigned port = 0;
	if (getpeername(c->fd, (struct sockaddr *)&ss, &len) == 0) {
		if (ss.ss_family == AF_INET6) {
			const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)&ss;
			inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof(host));
			port = ntohs(a->sin6_port);
		} else {
			const struct sockaddr_in *a = (const struct sockaddr_in *)&ss;
			inet_ntop(AF_INET, &a->sin_addr, host, sizeof(host));
			port = ntohs(a->sin_port);
		}
	}
	snprintf(out, cap, ss.ss_family == AF_INET6 ? "[%s]:%u" : "%s:%u", host, port);
}

/* Messages dropped by --outbound-policy drop are counted; logged at most once a second. */
static uint32_t dropped_log_at;

static void count_drop(const struct conn *c)
{
	if (stats.outbound_dropped++ && (int32_t)(srv_now() - dropped_log_at) < 1000)
		return;
	log_warn(0, "conn %llu: over --max-outbound, message dropped (%llu dropped in all)",
		 (unsigned long long)c->id, (unsigned long long)stats.outbound_dropped);
	dropped_log_at = srv_now();
}

/* Queues one unfragmented server frame. Past the outbound cap the client is too slow to
 * keep up: the policy closes it with 1008 or drops the message, rather than let its queue
 * grow without bound. Returns 0 or SESS_STOP. */
static int send_frame(struct conn *c, unsigned op, const uint8_t *p, size_t n)
{
	uint8_t hdr[WS_FRAME_HDR_MAX];
	size_t hlen = ws_frame_header(hdr, op, 1, n, NULL);
	if (c->out.bytes + hlen + n > srv_cfg()->max_outbound) {
		if (srv_cfg()->outbound_drop) {
			count_drop(c);
			return 0;
		}
		log_warn(0, "conn %llu: %zu bytes queued for a slow client, over --max-outbound: close 1008",
			 (unsigned long long)c->id, c->out.bytes);
		outq_clear(&c->out);
		sess_close(c, WS_CLOSE_POLICY, "outbound limit");
		return SESS_STOP;
	}
	if (outq_append2(&c->out, hdr, hlen, p, n)) {
		log_error(ENOMEM, "conn %llu: queueing %zu bytes", (unsigned long long)c->id, n);
		srv_close(c, "out of memory");
		return SESS_STOP;
	}
	if (op == WS_OP_TEXT || op == WS_OP_BINARY) {
		stats.messages_out++;
		stats.bytes_out += n;
	}
	srv_mark(c);
	return 0;
}

static void send_close_frame(struct conn *c, unsigned code, const char *reason)
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
		srv_close(c, "out of memory");
		return;
	}
	srv_mark(c);
}

/* After the queued bytes: shutdown(SHUT_WR), then read until the peer's EOF. Closing with
 * unread input would send RST and could destroy the response still in flight. */
static void linger(struct conn *c)
{
	c->state = CONN_LINGER;
	c->deadline = srv_now() + srv_cfg()->close_ms;
	srv_mark(c);
}

/* Hands a whole message to the route's pool: the built-in echo, or c's worker. */
static int deliver(struct conn *c, unsigned op, const uint8_t *p, size_t n)
{
	stats.messages_in++;
	stats.bytes_in += n;
	if (pool_is_echo(c->pool))
		return send_frame(c, op, p, n);
	if (pool_message(c, op, p, n) == 0)
		return 0;
	log_error(ENOMEM, "conn %llu: message of %zu bytes for the worker", (unsigned long long)c->id, n);
	pool_closed(c, WS_CLOSE_INTERNAL, "out of memory");
	sess_close(c, WS_CLOSE_INTERNAL, "out of memory");
	return SESS_STOP;
}

static int on_data(void *ud, unsigned op, uint8_t *p, size_t n, int first, int last)
{
	struct conn *c = ud;
	if (c->state != CONN_OPEN)
		return 0; /* after our close frame, data is read and dropped (RFC 6455 5.5.1) */
	if (first && last)
		return deliver(c, op, p, n); /* the whole message is in the read buffer: no copy */
	if (first)
		c->msg_len = 0;
	if (n) {
		if ((uint64_t)c->msg_len + n > c->msg_cap) {
			/* The parser already capped the message at max_message. */
			uint64_t cap = c->msg_cap ? c->msg_cap : 4096;
			while (cap < (uint64_t)c->msg_len + n)
				cap *= 2;
			if (cap > srv_cfg()->max_message)
				cap = srv_cfg()->max_message;
			uint8_t *m = realloc(c->msg, cap);
			if (!m) {
				log_error(ENOMEM, "conn %llu: message buffer of %llu bytes",
					  (unsigned long long)c->id, (unsigned long long)cap);
				sess_close(c, WS_CLOSE_INTERNAL, "out of memory");
				return SESS_STOP;
			}
			c->msg = m;
			c->msg_cap = (uint32_t)cap;
		}
		memcpy(c->msg + c->msg_len, p, n);
		c->msg_len += (uint32_t)n;
	}
	if (!last)
		return 0;
	int rc = deliver(c, op, c->msg, c->msg_len);
	free(c->msg);
	c->msg = NULL;
	c->msg_len = c->msg_cap = 0;
	return rc;
}

static int on_control(void *ud, unsigned op, uint8_t *p, size_t n, unsigned code,
		      const uint8_t *reason, size_t reason_len)
{
	struct conn *c = ud;
	switch (op) {
	case WS_OP_PING:
		return c->state == CONN_OPEN ? send_frame(c, WS_OP_PONG, p, n) : 0;
	case WS_OP_PONG:
		c->flags &= (uint8_t)~CONN_PING_SENT;
		return 0;
	default: /* WS_OP_CLOSE */
		if (c->state == CONN_OPEN) {
			/* Echo the code (RFC 6455 5.5.1); an empty close gets an empty close. */
			log_debug("conn %llu: peer closed with %u", (unsigned long long)c->id, code);
			send_close_frame(c, code, NULL);
			char why[WS_CONTROL_MAX + 1];
			if (reason_len)
				memcpy(why, reason, reason_len);
			why[reason_len] = 0;
			pool_closed(c, code ? code : WS_CLOSE_NO_STATUS, why);
		}
		linger(c);
		return SESS_STOP; /* nothing after a close frame counts */
	}
}

static const struct ws_rx_ops rx_ops = { .data = on_data, .control = on_control };

static void http_error(struct conn *c, int status, const char *why)
{
	char peer[64], resp[512];
	peer_text(c, peer, sizeof(peer));
	log_info("reject %s: %d %s", peer, status, why);
	stats_rejected(status);
	int n = ws_hs_response_error(resp, sizeof(resp), status);
	if (c->state == CONN_AUTHORIZING) {
		free(c->msg);
		c->msg = NULL;
		c->msg_len = 0;
	}
	ws_hs_free(c->hs);
	c->hs = NULL;
	c->state = CONN_LINGER; /* the union now holds `in`, which is NULL */
	if (n > 0 && outq_append2(&c->out, resp, (size_t)n, NULL, 0) == 0)
		linger(c);
	else
		srv_close(c, "error response");
}

/* The OPEN fields of docs/PROTOCOL.md, from the request. */
static int open_worker(struct conn *c, int authorize)
{
	const struct gw_config *cfg = srv_cfg();
	char peer[64];
	peer_text(c, peer, sizeof(peer));
	struct { const char *name; struct ws_slice v; } f[3 + CFG_MAX_FORWARD + 1];
	int nf = 0;
	f[nf].name = ":path", f[nf++].v = ws_hs_path(c->hs);
	f[nf].name = ":query", f[nf++].v = ws_hs_query(c->hs);
	f[nf].name = ":protocols", f[nf++].v = ws_hs_protocols(c->hs);
	for (int i = 0; i < cfg->n_forward; i++)
		f[nf].name = cfg->forward[i], f[nf++].v = ws_hs_header(c->hs, cfg->forward[i]);
	size_t total = wsgw_field_size(5, strlen(peer));
	for (int i = 0; i < nf; i++)
		total += wsgw_field_size(strlen(f[i].name), f[i].v.n);
	uint8_t *buf = malloc(total), *p = buf;
	if (!buf)
		return -ENOMEM;
	p = wsgw_field_put(p, ":peer", 5, peer, strlen(peer));
	for (int i = 0; i < nf; i++)
		if (f[i].v.p)
			p = wsgw_field_put(p, f[i].name, strlen(f[i].name), f[i].v.p, f[i].v.n);
	int rc = pool_open(c, buf, (size_t)(p - buf), authorize);
	free(buf);
	return rc;
}

static int send_101(struct conn *c, const char *protocol, const char *headers)
{
	char resp[4096];
	int n = ws_hs_response_101(resp, sizeof(resp), c->hs, protocol, headers);
	if (n < 0 || outq_append2(&c->out, resp, (size_t)n, NULL, 0))
		return -1;
	ws_hs_free(c->hs);
	c->hs = NULL;
	c->state = CONN_OPEN;
	c->deadline = srv_now() + srv_cfg()->idle_ms;
	stats.upgraded++;
	srv_mark(c);
	return 0;
}

/* The request is complete: route it and answer 101, or the error; an authorizing route
 * waits for its worker. Returns 0 when the connection is now open. */
static int finish_handshake(struct conn *c)
{
	const struct gw_config *cfg = srv_cfg();
	struct ws_slice path = ws_hs_path(c->hs);
	int route = cfg_route_match(cfg, path.p, path.n);
	if (route < 0) {
		http_error(c, 404, "no route for the path");
		return -1;
	}
	if (c->flags & CONN_REJECT_503) {
		http_error(c, 503, "too many connections (--max-conns)");
		return -1;
	}
	c->pool = (uint8_t)pool_for_route((unsigned)route);
	int authorize = cfg->routes[route].authorize;
	if (!pool_is_echo(c->pool)) {
		int rc = open_worker(c, authorize);
		if (rc) {
			http_error(c, 503, rc == -EAGAIN ? "no worker in the route's pool" : "out of memory");
			return -1;
		}
		if (authorize) {
			c->state = CONN_AUTHORIZING;
			c->deadline = srv_now() + cfg->authorize_ms;
			c->flags |= CONN_READ_PAUSED;
			return -1;
		}
	}
	if (send_101(c, NULL, NULL)) {
		pool_closed(c, WS_CLOSE_INTERNAL, "101 response did not fit");
		http_error(c, 500, "101 response did not fit");
		return -1;
	}
	log_debug("conn %llu: open on route %s", (unsigned long long)c->id, cfg->routes[route].prefix);
	return 0;
}

/* Parses frames (OPEN, CLOSE_WAIT) or drops input (LINGER). Returns bytes to keep. */
static size_t process_frames(struct conn *c, uint8_t *buf, size_t n)
{
	if (c->state != CONN_OPEN && c->state != CONN_CLOSE_WAIT)
		return 0;
	ssize_t r = ws_rx_feed(&c->rx, buf, n, srv_cfg()->max_message, &rx_ops, c);
	if (r == SESS_STOP) {
		/* A callback stopped the parser mid-stream: its state is lost, so waiting for
		 * the peer's close frame is no longer possible. */
		if (c->state == CONN_CLOSE_WAIT)
			linger(c);
		return 0;
	}
	if (r < 0) {
		unsigned code = (unsigned)-r;
		log_info("conn %llu: protocol violation, closing with %u", (unsigned long long)c->id, code);
		/* Failing the connection (RFC 6455 7.1.7): our close frame, then TCP close. */
		if (c->state == CONN_OPEN)
			send_close_frame(c, code, NULL);
		pool_closed(c, code, "protocol error");
		linger(c);
		return 0;
	}
	return n - (size_t)r;
}

/* Parses buf[0..n) by state. Returns the bytes to keep for the next read. */
static size_t process(struct conn *c, uint8_t *buf, size_t n)
{
	if (c->state != CONN_HANDSHAKE)
		return process_frames(c, buf, n);
	size_t used = 0;
	int rc = ws_hs_feed(c->hs, (const char *)buf, n, &used);
	if (rc == 0)
		return 0;
	if (rc < 0) {
		http_error(c, -rc, ws_hs_error_reason(c->hs));
		return 0;
	}
	/* Bytes after the request in the same read are the client's first frames. */
	buf += used;
	n -= used;
	if (finish_handshake(c)) {
		if (c->state == CONN_AUTHORIZING && n) {
			/* Kept until the worker decides; `in` is taken by the handshake. */
			c->msg = malloc(n);
			if (!c->msg) {
				srv_close(c, "out of memory");
				return 0;
			}
			memcpy(c->msg, buf, n);
			c->msg_len = c->msg_cap = (uint32_t)n;
		}
		return 0;
	}
	return process_frames(c, buf, n);
}

int sess_start(struct conn *c)
{
	struct ws_hs_limits lim = { .max_header_bytes = srv_cfg()->max_header };
	c->hs = ws_hs_new(&lim);
	if (!c->hs)
		return -ENOMEM;
	c->worker = POOL_NO_WORKER;
	c->state = CONN_HANDSHAKE;
	c->deadline = srv_now() + srv_cfg()->handshake_ms;
	return 0;
}

static void keep_tail(struct conn *c, const uint8_t *tail, size_t n)
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
			srv_close(c, "out of memory");
			return;
		}
	}
	memmove(c->in, tail, n);
	c->in_len = (uint16_t)n;
}

static void on_eof(struct conn *c)
{
	if (c->state == CONN_OPEN) {
		log_debug("conn %llu: peer vanished without a close frame (1006)",
			  (unsigned long long)c->id);
		pool_closed(c, WS_CLOSE_ABNORMAL, "connection lost");
	}
	srv_close(c, "peer closed");
}

/* Reading stops while the client's output is over the high mark, or its worker cannot
 * take more; sess_resume starts it again. */
static int must_pause(struct conn *c)
{
	return c->out.bytes >= OUT_HIGH || (c->state == CONN_OPEN && pool_blocked(c));
}

void sess_on_readable(struct conn *c)
{
	size_t cap;
	uint8_t *rbuf = srv_rbuf(&cap);
	while (c->state != CONN_DEAD && !(c->flags & CONN_READ_PAUSED)) {
		if (must_pause(c)) {
			c->flags |= CONN_READ_PAUSED;
			return;
		}
		/* The unparsed tail of the previous read goes in front of the new bytes. */
		size_t have = 0;
		if (c->state != CONN_HANDSHAKE && c->in_len) {
			have = c->in_len;
			memcpy(rbuf, c->in, have);
		}
		ssize_t r = read(c->fd, rbuf + have, cap);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN) {
				if (c->state == CONN_OPEN)
					pool_closed(c, WS_CLOSE_ABNORMAL, "connection lost");
				srv_close(c, strerror(errno));
			}
			return;
		}
		if (r == 0) {
			on_eof(c);
			return;
		}
		if (c->state == CONN_OPEN) {
			c->deadline = srv_now() + srv_cfg()->idle_ms;
			c->flags &= (uint8_t)~CONN_PING_SENT;
		}
		size_t total = have + (size_t)r;
		size_t keep = process(c, rbuf, total);
		if (c->state == CONN_DEAD)
			return;
		if (c->state != CONN_HANDSHAKE && c->state != CONN_AUTHORIZING)
			keep_tail(c, rbuf + total - keep, keep);
		/* A short read emptied the socket's receive queue; bytes that arrive later
		 * raise a new edge. Reading again would only cost an EAGAIN syscall. */
		if ((size_t)r < cap)
			return;
	}
}

void sess_resume(struct conn *c)
{
	if (c->state == CONN_DEAD || c->state == CONN_AUTHORIZING || !(c->flags & CONN_READ_PAUSED))
		return;
	c->flags &= (uint8_t)~CONN_READ_PAUSED;
	/* Edge-triggered: the input that waited will not raise a new event. */
	sess_on_readable(c);
}

void sess_on_drained(struct conn *c)
{
	if (c->state == CONN_LINGER && !(c->flags & CONN_SHUT_SENT)) {
		c->flags |= CONN_SHUT_SENT;
		if (shutdown(c->fd, SHUT_WR) < 0) {
			srv_close(c, "shutdown failed");
			return;
		}
	}
	if (c->out.bytes < OUT_LOW)
		sess_resume(c);
}

void sess_close(struct conn *c, unsigned code, const char *reason)
{
	switch (c->state) {
	case CONN_HANDSHAKE:
		srv_close(c, reason);
		break;
	case CONN_AUTHORIZING:
		pool_closed(c, code, reason);
		http_error(c, 503, reason);
		break;
	case CONN_OPEN:
		pool_closed(c, code, reason);
		send_close_frame(c, code, reason);
		c->state = CONN_CLOSE_WAIT;
		c->deadline = srv_now() + srv_cfg()->close_ms;
		break;
	default:
		break; /* already closing */
	}
}

void sess_on_deadline(struct conn *c)
{
	switch (c->state) {
	case CONN_HANDSHAKE: {
		char peer[64];
		peer_text(c, peer, sizeof(peer));
		log_info("reject %s: upgrade request not complete within --handshake-timeout", peer);
		stats.handshake_timeouts++;
		srv_close(c, "handshake timeout");
		break;
	}
	case CONN_AUTHORIZING:
		pool_closed(c, WS_CLOSE_ABNORMAL, "authorization timeout");
		http_error(c, 503, "no ACCEPT or REJECT within --authorize-timeout");
		break;
	case CONN_OPEN:
		if (!(c->flags & CONN_PING_SENT)) {
			c->flags |= CONN_PING_SENT;
			c->deadline = srv_now() + srv_cfg()->idle_ms;
			send_frame(c, WS_OP_PING, NULL, 0);
		} else {
			log_info("conn %llu: no answer to ping within --idle-timeout: close 1001",
				 (unsigned long long)c->id);
			pool_closed(c, WS_CLOSE_GOING_AWAY, "idle");
			send_close_frame(c, WS_CLOSE_GOING_AWAY, "idle");
			linger(c);
		}
		break;
	default:
		srv_close(c, "close timeout");
		break;
	}
}

void sess_send(struct conn *c, unsigned op, const void *p, size_t n)
{
	if (c->state == CONN_OPEN)
		send_frame(c, op, p, n);
	else
		log_debug("conn %llu: SEND while closing, dropped", (unsigned long long)c->id);
}

void sess_worker_close(struct conn *c, unsigned code, const char *reason, size_t n)
{
	char why[WS_CONTROL_MAX - 1];
	if (n >= sizeof(why))
		n = sizeof(why) - 1;
	if (n)
		memcpy(why, reason, n);
	why[n] = 0;
	/* The worker may only send what a peer may (RFC 6455 7.4), 1000 when it did not. */
	if (!ws_close_code_valid(code))
		code = WS_CLOSE_NORMAL;
	sess_close(c, code, why);
}

void sess_accept(struct conn *c, const void *fields, size_t n)
{
	if (c->state != CONN_AUTHORIZING)
		return;
	char protocol[256] = "", headers[2048] = "";
	size_t hl = 0;
	const uint8_t *p = fields, *end = p + n;
	struct wsgw_field f;
	while (wsgw_field_next(&p, end, &f) == 1) {
		size_t vl = f.value_len;
		if (f.name_len == 8 && memcmp(f.name, "protocol", 8) == 0 && vl < sizeof(protocol)) {
			memcpy(protocol, f.value, vl);
			protocol[vl] = 0;
		} else if (f.name_len == 6 && memcmp(f.name, "header", 6) == 0 && hl + vl + 3 < sizeof(headers)) {
			memcpy(headers + hl, f.value, vl);
			memcpy(headers + hl + vl, "\r\n", 3);
			hl += vl + 2;
		}
	}
	if (protocol[0])
		pool_add_field(c, ":protocol", protocol, strlen(protocol));
	uint8_t *early = c->msg;
	size_t early_len = c->msg_len;
	c->msg = NULL;
	c->msg_len = c->msg_cap = 0;
	if (send_101(c, protocol[0] ? protocol : NULL, hl ? headers : NULL)) {
		free(early);
		pool_closed(c, WS_CLOSE_INTERNAL, "bad ACCEPT");
		http_error(c, 500, "the worker's ACCEPT gave an invalid protocol or header");
		return;
	}
	log_debug("conn %llu: accepted by its worker", (unsigned long long)c->id);
	if (early) {
		/* Frames the client sent right behind its request. */
		size_t cap;
		uint8_t *rbuf = srv_rbuf(&cap);
		memcpy(rbuf, early, early_len);
		free(early);
		size_t keep = process_frames(c, rbuf, early_len);
		if (c->state != CONN_DEAD)
			keep_tail(c, rbuf + early_len - keep, keep);
	}
	sess_resume(c);
}

void sess_reject(struct conn *c, unsigned status, const char *reason, size_t n)
{
	if (c->state != CONN_AUTHORIZING)
		return;
	char why[128];
	snprintf(why, sizeof(why), "rejected by the worker: %.*s", (int)(n < 100 ? n : 100), reason);
	pool_closed(c, WS_CLOSE_POLICY, "rejected");
	http_error(c, status >= 400 && status <= 599 ? (int)status : 403, why);
}

void sess_on_closed(struct conn *c)
{
	pool_closed(c, WS_CLOSE_ABNORMAL, "connection lost");
	/* The state still tells which member of the union lives. */
	if (c->state == CONN_HANDSHAKE || c->state == CONN_AUTHORIZING)
		ws_hs_free(c->hs);
	else
		free(c->in);
	c->in = NULL;
	c->in_len = 0;
	free(c->msg);
	c->msg = NULL;
	c->msg_len = c->msg_cap = 0;
	outq_clear(&c->out);
}
