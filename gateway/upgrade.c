#include "gateway/upgrade.h"
#include "gateway/clog.h"
#include "gateway/conn.h"
#include "gateway/door.h"
#include "gateway/deflate.h"
#include "gateway/handshake.h"
#include "gateway/hsresp.h"
#include "gateway/log.h"
#include "gateway/openf.h"
#include "gateway/static.h"
#include "gateway/stats.h"
#include "gateway/tls.h"
#include "gateway/zmsg.h"
#include "wsgw/protocol.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

/* What an ACCEPT may add to the 101: the zmq codec's limits, for both transports. */
#define ACCEPT_HEADERS ZMSG_ACCEPT_HEADERS
#define ACCEPT_BYTES ZMSG_ACCEPT_BYTES

int upg_start(const struct upg_env *u, struct conn *c)
{
	const struct gw_config *cfg = loop_cfg(u->loop);
	struct ws_hs_limits lim = { .max_header_bytes = cfg->max_header };
	c->hs = ws_hs_new(&lim);
	if (!c->hs)
		return -ENOMEM;
	c->worker = POOL_NO_WORKER;
	c->route = CFG_NO_ROUTE;
	c->state = CONN_HANDSHAKE;
	c->deadline = loop_now(u->loop) + cfg->handshake_ms;
	return 0;
}

void upg_closing(struct conn *c)
{
	ws_hs_free(c->hs);
	c->hs = NULL;
}

void upg_error(const struct upg_env *u, struct conn *c, int status, const char *why)
{
	char resp[768], retry[40] = "";
	clog_info(c, "reject %d: %s", status, why);
	stats_rejected(status);
	if (status == 429)
		snprintf(retry, sizeof(retry), "Retry-After: %u\r\n", c->retry_s ? c->retry_s : 1);
	int n = ws_resp_error_headers(resp, sizeof(resp), status, retry[0] ? retry : NULL);
	if (c->state == CONN_AUTHORIZING)
		conn_msg_free(c);
	upg_closing(c);
	c->state = CONN_LINGER; /* the union now holds `in`, which is NULL */
	if (n > 0 && outq_append2(&c->out, resp, (size_t)n, NULL, 0) == 0)
		loop_linger(u->loop, c);
	else
		loop_close(u->loop, c, "error response");
}

/* Origin is one of the route's (exactly, but for the case of ASCII letters, as browsers
 * send it: scheme://host[:port]). */
static int origin_allowed(const char *origins, struct ws_slice o)
{
	if (!o.p)
		return 0;
	for (const char *p = origins; *p;) {
		size_t n = strcspn(p, "|");
		if (n == o.n && strncasecmp(p, o.p, n) == 0)
			return 1;
		p += n + (p[n] == '|');
	}
	return 0;
}

/* The route's first subprotocol that the client offers (Sec-WebSocket-Protocol, a comma
 * list of tokens), into out. Returns 1, or 0 when none is (or the route names none). */
static int choose_protocol(const struct cfg_route *r, struct ws_slice offered, char *out, size_t cap)
{
	for (const char *p = r->protocols; *p;) {
		size_t n = strcspn(p, "|");
		for (const char *q = offered.p, *end = offered.p + offered.n; q && q < end;) {
			while (q < end && (*q == ' ' || *q == '\t' || *q == ','))
				q++;
			size_t m = 0;
			while (q + m < end && q[m] != ',' && q[m] != ' ' && q[m] != '\t')
				m++;
			if (m && m == n && memcmp(q, p, n) == 0 && n < cap) {
				memcpy(out, p, n);
				out[n] = 0;
				return 1;
			}
			q += m;
		}
		p += n + (p[n] == '|');
	}
	return 0;
}

/* The OPEN fields of docs/PROTOCOL.md, from the request. */
static int open_worker(const struct upg_env *u, struct conn *c, int authorize, const char *protocol)
{
	const struct gw_config *cfg = loop_cfg(u->loop);
	struct { const char *name; struct ws_slice v; } f[4 + CFG_MAX_FORWARD];
	int nf = 0;
	f[nf].name = ":path", f[nf++].v = ws_hs_path(c->hs);
	f[nf].name = ":query", f[nf++].v = ws_hs_query(c->hs);
	f[nf].name = ":protocols", f[nf++].v = ws_hs_protocols(c->hs);
	if (protocol[0])
		f[nf].name = ":protocol", f[nf++].v = (struct ws_slice){ protocol, strlen(protocol) };
	for (int i = 0; i < cfg->n_forward; i++)
		f[nf].name = cfg->forward[i], f[nf++].v = ws_hs_header(c->hs, cfg->forward[i]);
	size_t total = 1; /* malloc(0) may be NULL */
	for (int i = 0; i < nf; i++)
		total += wsgw_field_size(strlen(f[i].name), f[i].v.n);
	uint8_t *buf = malloc(total), *p = buf;
	if (!buf)
		return -ENOMEM;
	for (int i = 0; i < nf; i++)
		if (f[i].v.p)
			p = wsgw_field_put(p, f[i].name, strlen(f[i].name), f[i].v.p, f[i].v.n);
	int rc = pool_open(u->ps, c, buf, (size_t)(p - buf), authorize);
	free(buf);
	return rc;
}

/* The 101 with the subprotocol, the agreed extension and a worker's headers. */
static int send_101(const struct upg_env *u, struct conn *c, const char *protocol,
		    const char *headers)
{
	char resp[ACCEPT_BYTES + 4096], extra[ACCEPT_BYTES + 256];
	int el = pmd_header(&c->pmd, extra, sizeof(extra));
	if (el < 0)
		return -1;
	if (headers)
		snprintf(extra + el, sizeof(extra) - (size_t)el, "%s", headers);
	int n = ws_resp_101(resp, sizeof(resp), ws_hs_key(c->hs), protocol, extra[0] ? extra : NULL);
	if (n < 0 || outq_append2(&c->out, resp, (size_t)n, NULL, 0))
		return -1;
	upg_closing(c);
	c->state = CONN_OPEN;
	c->deadline = loop_now(u->loop) + loop_cfg(u->loop)->idle_ms;
	stats.upgraded++;
	loop_mark(u->loop, c);
	return 0;
}

/* The request is complete: route it and answer 101 or the error; an authorizing route
 * waits for its worker. */
static enum upg_result finish(const struct upg_env *u, struct conn *c)
{
	const struct gw_config *cfg = loop_cfg(u->loop);
	struct ws_slice path = ws_hs_path(c->hs);
	int route = cfg_route_match(cfg, path.p, path.n);
	if (route < 0) {
		upg_error(u, c, 404, "no route for the path");
		return UPG_DONE;
	}
	c->route = (uint8_t)route;
	if (c->flags & CONN_REJECT_503) {
		upg_error(u, c, 503, "too many connections (--max-conns)");
		return UPG_DONE;
	}
	if (c->door != DOOR_OK) {
		stats.door_refused[c->door]++;
		upg_error(u, c, c->door == DOOR_IP_FULL ? 503 : 429,
			  c->door == DOOR_IP_FULL   ? "too many connections from this address (max-conns-per-ip)"
			  : c->door == DOOR_RATE_IP ? "too many handshakes from this address (handshake-rate-per-ip)"
						    : "too many handshakes (handshake-rate)");
		return UPG_DONE;
	}
	const struct cfg_route *r = &cfg->routes[route];
	if (r->origins[0] && !origin_allowed(r->origins, ws_hs_header(c->hs, "origin"))) {
		stats.door_refused[DOOR_ORIGIN]++;
		upg_error(u, c, 403, "Origin not allowed on this route");
		return UPG_DONE;
	}
	c->pool = (uint8_t)pool_for_route(u->ps, (unsigned)route);
	/* The checks above pass there too: they read only c and cfg. */
	if (u->elsewhere && !pool_is_echo(u->ps, c->pool) && !pool_live_in(u->ps, c->pool) &&
	    u->elsewhere(u->elsewhere_arg, c->pool))
		return UPG_MOVE;
	c->slow = r->slow;
	char protocol[128] = "";
	struct ws_slice offered = ws_hs_protocols(c->hs);
	if (r->protocols[0] && !choose_protocol(r, offered, protocol, sizeof(protocol))) {
		if (r->need_protocol) {
			upg_error(u, c, 400, "no subprotocol the route speaks was offered");
			return UPG_DONE;
		}
		if (offered.n)
			clog_debug(c, "offered subprotocols %.*s, none of the route's %s: answered without one",
				  (int)offered.n, offered.p, r->protocols);
	}
	struct pmd_cfg pc = cfg->deflate;
	pc.on = pc.on && r->deflate != CFG_DEFLATE_OFF;
	pc.takeover = r->deflate == CFG_DEFLATE_TAKEOVER ? 3 : 0;
	pmd_negotiate(&pc, ws_hs_extensions(c->hs), &c->pmd);
	c->rx.rsv1_ok = c->pmd.on;
	int authorize = r->authorize;
	if (pool_is_echo(u->ps, c->pool)) {
		c->flags |= CONN_ECHO;
	} else {
		int rc = open_worker(u, c, authorize, protocol);
		if (rc == -EMSGSIZE) {
			clog_error(c, EMSGSIZE, "its OPEN does not fit the worker's ring");
			upg_error(u, c, 431, "request headers too large for the worker's ring");
			return UPG_DONE;
		}
		if (rc) {
			upg_error(u, c, 503, rc == -EAGAIN ? "no worker in the route's pool" : "out of memory");
			return UPG_DONE;
		}
		if (authorize) {
			c->state = CONN_AUTHORIZING;
			c->deadline = loop_now(u->loop) + cfg->authorize_ms;
			c->flags |= CONN_READ_PAUSED;
			return UPG_WAIT;
		}
	}
	if (send_101(u, c, protocol[0] ? protocol : NULL, NULL)) {
		pool_closed(u->ps, c, WS_CLOSE_INTERNAL, "101 response did not fit");
		upg_error(u, c, 500, "101 response did not fit");
		return UPG_DONE;
	}
	clog_debug(c, "open, %s", c->flags & CONN_ECHO ? "built-in echo" : "pinned to its worker");
	return UPG_OPEN;
}

/* A plain GET or HEAD with --static: a file, or the gateway's /metrics when it has an admin
 * endpoint (so a page can show them without asking another origin); then the connection
 * closes, as upg_error's do. */
static void answer_static(const struct upg_env *u, struct conn *c, struct ws_slice path, int head)
{
	struct stc_resp r;
	if (path.n == 8 && !memcmp(path.p, "/metrics", 8) && loop_cfg(u->loop)->admin.len) {
		static _Thread_local char text[16384]; /* each loop answers its own */
		unsigned workers = pool_live_workers(u->ps);
		if (u->elsewhere) { /* every loop's workers: their gauges, at most a batch old */
			struct gw_stats all;
			stats_sum(&all);
			workers = (unsigned)all.workers_live;
		}
		int n = stats_format(text, sizeof(text), conn_count(), workers);
		if (n < 0)
			stc_respond_bytes(head, 500, "text/plain; charset=utf-8", "metrics do not fit\n", 19, &r);
		else
			stc_respond_bytes(head, 200, "text/plain; version=0.0.4; charset=utf-8", text,
					  (size_t)n, &r);
	} else {
		stc_respond(u->stc, head, path.p, path.n, &r);
	}
	char peer[64];
	conn_peer(c, peer, sizeof(peer));
	log_debug("static %s: %s %.*s: %d", peer, head ? "HEAD" : "GET", (int)(path.n < 200 ? path.n : 200),
		  path.p, r.status);
	upg_closing(c);
	c->state = CONN_LINGER; /* the union now holds `in`, which is NULL */
	if (r.head_len && outq_append2(&c->out, r.head, r.head_len, r.body, r.body ? r.body_len : 0) == 0)
		loop_linger(u->loop, c);
	else
		loop_close(u->loop, c, "static response");
	stc_resp_free(&r);
}

enum upg_result upg_feed(const struct upg_env *u, struct conn *c, const uint8_t *buf, size_t n,
			 size_t *used)
{
	*used = 0;
	int rc = ws_hs_feed(c->hs, (const char *)buf, n, used);
	if (rc == 0)
		return UPG_MORE;
	if (rc < 0) {
		struct ws_slice path;
		int head;
		if (u->stc && ws_hs_plain(c->hs, &path, &head))
			answer_static(u, c, path, head);
		else
			upg_error(u, c, -rc, ws_hs_error_reason(c->hs));
		return UPG_DONE;
	}
	enum upg_result r = finish(u, c);
	size_t rest = n - *used;
	if ((r == UPG_WAIT || r == UPG_MOVE) && rest) {
		/* The client's first frames wait for the worker's decision; `in` is taken by
		 * the handshake, so they are kept as if a message were being assembled. */
		if (conn_msg_grow(c, (uint32_t)rest)) {
			loop_close(u->loop, c, "out of memory or over --memory-budget");
			return UPG_DONE;
		}
		memcpy(c->msg, buf + *used, rest);
		c->msg_len = (uint32_t)rest;
	}
	return r;
}

enum upg_result upg_route(const struct upg_env *u, struct conn *c)
{
	return finish(u, c);
}

int upg_accept(const struct upg_env *u, struct conn *c, const void *fields, size_t n)
{
	char protocol[256] = "", headers[ACCEPT_BYTES + 1];
	size_t hl = 0;
	int count = 0;
	const char *bad = NULL;
	const uint8_t *p = fields, *end = p + n;
	struct wsgw_field f;
	while (!bad && wsgw_field_next(&p, end, &f) == 1) {
		size_t vl = f.value_len;
		if (f.name_len == 8 && memcmp(f.name, "protocol", 8) == 0) {
			if (vl >= sizeof(protocol))
				bad = "a subprotocol over 255 bytes";
			memcpy(protocol, f.value, vl < sizeof(protocol) ? vl : 0);
			protocol[vl < sizeof(protocol) ? vl : 0] = 0;
		} else if (f.name_len == 6 && memcmp(f.name, "header", 6) == 0) {
			if (++count > ACCEPT_HEADERS || hl + vl + 2 > ACCEPT_BYTES) {
				bad = "more than 64 headers or 8192 bytes of them";
				break;
			}
			memcpy(headers + hl, f.value, vl);
			memcpy(headers + hl + vl, "\r\n", 2);
			hl += vl + 2;
		}
	}
	headers[hl] = 0;
	if (!bad && protocol[0]) {
		pool_add_field(u->ps, c, ":protocol", protocol, strlen(protocol));
	} else if (!bad && c->fields) {
		/* No choice of the worker's: the route's, if it made one. */
		size_t fn;
		const uint8_t *q = of_bytes(c->fields, &fn), *qend = q + fn;
		while (wsgw_field_next(&q, qend, &f) == 1)
			if (f.name_len == 9 && memcmp(f.name, ":protocol", 9) == 0 && f.value_len < sizeof(protocol)) {
				memcpy(protocol, f.value, f.value_len);
				protocol[f.value_len] = 0;
			}
	}
	if (!bad && send_101(u, c, protocol[0] ? protocol : NULL, hl ? headers : NULL))
		bad = "an invalid subprotocol or header";
	if (bad) {
		clog_warn(c, 0, "the worker's ACCEPT has %s: 500", bad);
		pool_closed(u->ps, c, WS_CLOSE_INTERNAL, "bad ACCEPT");
		upg_error(u, c, 500, "the worker's ACCEPT was unusable");
		return -1;
	}
	clog_debug(c, "accepted by its worker");
	return 0;
}

void upg_reject(const struct upg_env *u, struct conn *c, unsigned status, const char *reason,
		size_t n)
{
	char why[128];
	snprintf(why, sizeof(why), "rejected by the worker: %.*s", (int)(n < 100 ? n : 100), reason);
	pool_closed(u->ps, c, WS_CLOSE_POLICY, "rejected");
	upg_error(u, c, status >= 400 && status <= 599 ? (int)status : 403, why);
}

void upg_deadline(const struct upg_env *u, struct conn *c)
{
	if (c->state == CONN_AUTHORIZING) {
		pool_closed(u->ps, c, WS_CLOSE_ABNORMAL, "authorization timeout");
		upg_error(u, c, 503, "no ACCEPT or REJECT within --authorize-timeout");
		return;
	}
	if (c->tls && !tls_ready(c->tls))
		clog_info(c, "reject: TLS handshake not complete within --handshake-timeout");
	else
		clog_info(c, "reject: upgrade request not complete within --handshake-timeout");
	stats.handshake_timeouts++;
	loop_close(u->loop, c, "handshake timeout");
}
