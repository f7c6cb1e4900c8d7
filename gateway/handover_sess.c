#include "gateway/handover_sess.h"
#include "gateway/conn.h"
#include "gateway/door.h"
#include "gateway/log.h"
#include "gateway/loop.h"
#include "gateway/openf.h"
#include "gateway/pool.h"
#include "gateway/session_int.h"
#include "gateway/topics.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* Flags that mean something outside this process's loop: the rest (flush list, EPOLLOUT
 * armed, reading paused) are remade by the new one. */
#define KEEP_FLAGS (CONN_PING_SENT | CONN_ECHO | CONN_WORKER)

int sess_ho_movable(struct sess *s, const struct conn *c, const char **why)
{
	*why = NULL;
	if (c->state != CONN_OPEN)
		*why = c->state == CONN_HANDSHAKE || c->state == CONN_AUTHORIZING ? "handshake in progress" : "closing";
	else if (c->tls)
		*why = "TLS without kernel TLS";
	else if (!pmd_stream_movable(c->pmd_s))
		*why = "its deflate stream is not at a message boundary";
	else if (!(c->flags & CONN_ECHO))
		pool_ho_conn_ok(s->u.ps, c, why);
	return *why ? -EAGAIN : 0;
}

static void put_sub(void *arg, const uint8_t *name, size_t n, uint64_t after)
{
	struct ho_buf *b = arg;
	struct ho_sub sub = { { name, n }, after };
	if (b->p != (void *)1 && ho_put_sub(b, &sub)) {
		ho_buf_free(b);
		b->p = (void *)1; /* failed: nothing more */
	}
}

int sess_ho_export(struct sess *s, struct conn *c, struct ho_buf *b, const char **why)
{
	if (sess_ho_movable(s, c, why))
		return -EAGAIN;
	const struct gw_config *cfg = s->cfg;
	struct ho_conn h = {
		.id = c->id, .state = c->state, .flags = c->flags & KEEP_FLAGS, .pool = c->pool,
		.slow = c->slow, .worker = c->worker,
		.deadline_ms = (int32_t)(c->deadline - loop_now(s->u.loop)),
		.rx = c->rx,
		.in = { c->in, c->in ? c->in_len : 0 },
		.msg = { c->msg, c->msg_len },
		/* Pinned to a worker of this loop (spread-workers): the new one's same loop. */
		.loop = (c->flags & CONN_WORKER) ? (uint8_t)loop_index(s->u.loop) : 0,
	};
	if (c->fields)
		h.fields.p = of_bytes(c->fields, &h.fields.n);
	if (c->route < cfg->n_routes)
		h.route = (struct ho_bytes){ (const uint8_t *)cfg->routes[c->route].prefix,
					     strlen(cfg->routes[c->route].prefix) };
	uint8_t v6;
	if (door_key(c->ip, &v6, h.peer_addr) == 0) {
		h.peer_family = v6 ? 6 : 4;
		h.peer_port = c->port;
	}
	h.pmd[0] = c->pmd.on;
	h.pmd[1] = c->pmd.server_bits;
	h.pmd[2] = c->pmd.client_bits;
	h.pmd[3] = (uint8_t)(c->pmd.takeover | c->pmd.say_sbits << 2 | c->pmd.say_cbits << 3);
	/* Context takeover: the streams' windows (a message partly received is still the
	 * compressed bytes in msg, not inflated yet; one partly sent is framed bytes in the
	 * queue, already through the compressor). */
	uint8_t *win = NULL;
	if (c->pmd_s) {
		size_t to_n, from_n;
		if (!(win = malloc(2 * PMD_WINDOW_MAX)))
			return -ENOMEM;
		if (pmd_stream_export(c->pmd_s, win, &to_n, win + PMD_WINDOW_MAX, &from_n)) {
			free(win);
			*why = "its deflate stream is not at a message boundary";
			return -EAGAIN;
		}
		h.win_to = (struct ho_bytes){ win, to_n };
		h.win_from = (struct ho_bytes){ win + PMD_WINDOW_MAX, from_n };
	}
	uint8_t *out = NULL;
	if (c->out.bytes) {
		out = malloc(c->out.bytes);
		if (!out) {
			free(win);
			return -ENOMEM;
		}
		outq_copy(&c->out, out);
		size_t started = outq_started(&c->out);
		h.out_started = started > 0;
		h.out_head = (struct ho_bytes){ out, started };
		h.out_rest = (struct ho_bytes){ out + started, c->out.bytes - started };
	}
	struct ho_buf subs = { 0 };
	top_each_sub(c, put_sub, &subs);
	if (subs.p == (void *)1) {
		free(out);
		free(win);
		return -ENOMEM;
	}
	h.subs = (struct ho_bytes){ subs.p, subs.len };
	int rc = ho_put_conn(b, &h);
	free(out);
	free(win);
	ho_buf_free(&subs);
	return rc;
}

static int route_of(const struct gw_config *cfg, struct ho_bytes prefix)
{
	for (int i = 0; i < cfg->n_routes; i++)
		if (strlen(cfg->routes[i].prefix) == prefix.n && !memcmp(cfg->routes[i].prefix, prefix.p, prefix.n))
			return i;
	return -1;
}

static void drop_buffers(struct conn *c)
{
	free(c->in);
	c->in = NULL;
	c->in_len = 0;
	if (c->msg)
		conn_msg_free(c);
	outq_clear(&c->out);
	door_leave(c->ip);
	c->ip = 0;
	of_put(c->fields);
	c->fields = NULL;
	pmd_stream_free(c->pmd_s);
	c->pmd_s = NULL;
}

int sess_ho_import(struct sess *s, const struct ho_conn *h, int fd, struct conn **out, const char **why)
{
	*why = NULL;
	const struct gw_config *cfg = s->cfg;
	int route = route_of(cfg, h->route);
	if (route < 0) {
		*why = "its route is not in this configuration";
		return -ENOENT;
	}
	unsigned pool = pool_for_route(s->u.ps, (unsigned)route);
	if (pool_is_echo(s->u.ps, pool) != !!(h->flags & CONN_ECHO)) {
		*why = "its route goes to workers here and to the built-in echo there, or back";
		return -ENOENT;
	}
	if (h->state != CONN_OPEN) {
		*why = "not open";
		return -ENOENT;
	}
	struct conn *c = conn_adopt(fd, h->id);
	if (!c) {
		*why = "its id is taken";
		return -EEXIST;
	}
	uint32_t now = loop_now(s->u.loop);
	c->state = CONN_OPEN;
	c->flags = h->flags & KEEP_FLAGS;
	c->route = (uint8_t)route;
	c->pool = (uint8_t)pool;
	c->slow = cfg->routes[route].slow;
	c->worker = POOL_NO_WORKER;
	c->flags &= (uint8_t)~CONN_WORKER; /* until pinned below */
	c->deadline = now + (uint32_t)h->deadline_ms;
	c->rx = h->rx;
	c->pmd.on = h->pmd[0];
	c->pmd.server_bits = h->pmd[1];
	c->pmd.client_bits = h->pmd[2];
	c->pmd.takeover = h->pmd[3] & 3;
	c->pmd.say_sbits = (h->pmd[3] >> 2) & 1;
	c->pmd.say_cbits = (h->pmd[3] >> 3) & 1;
	c->rx.rsv1_ok = c->pmd.on;
	/* Counted against its address like any client; the verdict is for new ones. The old
	 * process's door knew the address: no getpeername per connection in the pause (a
	 * record without it, from another binary, asks the kernel). */
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	unsigned retry;
	if (h->peer_family) {
		c->port = h->peer_port;
		(void)door_enter_key(h->peer_family == 6, h->peer_addr, now, &c->ip, &retry);
	} else if (getpeername(fd, (struct sockaddr *)&ss, &sl) == 0) {
		(void)door_enter((struct sockaddr *)&ss, now, &c->ip, &c->port, &retry);
	}
	int rc = pmd_stream_import(&c->pmd, h->win_to.p, h->win_to.n, h->win_from.p, h->win_from.n,
				   &c->pmd_s);
	if (rc == -EINVAL) {
		*why = "a deflate window its parameters do not allow";
		rc = -EBADMSG;
	}
	if (rc == 0 && h->in.n) {
		c->in = malloc(WS_RX_TAIL_MAX);
		if (!c->in)
			rc = -ENOMEM;
		else {
			memcpy(c->in, h->in.p, h->in.n);
			c->in_len = (uint16_t)h->in.n;
		}
	}
	if (rc == 0 && h->msg.n) {
		rc = conn_msg_grow(c, (uint32_t)h->msg.n);
		if (rc == 0) {
			memcpy(c->msg, h->msg.p, h->msg.n);
			c->msg_len = (uint32_t)h->msg.n;
		}
	}
	if (rc == 0 && (h->out_head.n || h->out_rest.n)) {
		rc = outq_import(&c->out, h->out_head.p, h->out_head.n, h->out_rest.p, h->out_rest.n);
		c->out_since = now;
	}
	if (rc == 0 && h->fields.n && !(c->fields = of_get(h->fields.p, h->fields.n)))
		rc = -ENOMEM;
	if (rc == 0 && (h->flags & CONN_WORKER) && (rc = pool_ho_pin(s->u.ps, c, h->worker, why)) != 0) {
		drop_buffers(c);
		c->fd = -1;
		c->state = CONN_DEAD;
		loop_mark(s->u.loop, c);
		return rc;
	}
	struct ho_sub sub;
	size_t off = 0;
	int more;
	while (rc == 0 && (more = ho_next_sub(&h->subs, &off, &sub)) != 0) {
		if (more < 0 || top_subscribe(c, sub.topic.p, sub.topic.n) < 0)
			rc = more < 0 ? -EBADMSG : -ENOMEM;
		else if (sub.after)
			top_set_after(c, sub.topic.p, sub.topic.n, sub.after);
	}
	/* Into the epoll set now, while the old process is still sending batches (the two
	 * share the cores), not after TAKEN, when every client waits for it. Nothing is read
	 * before the loop runs: what arrives meanwhile is reported then. */
	if (rc == 0 && loop_add_conn(s->u.loop, c)) {
		*why = "epoll_ctl failed";
		rc = -ENOMEM;
	}
	if (rc) {
		pool_ho_unpin(s->u.ps, c);
		top_drop_conn(c);
		if (!*why)
			*why = rc == -EBADMSG ? "a bad subscription" : "out of memory";
		drop_buffers(c);
		c->fd = -1;
		c->state = CONN_DEAD;
		loop_mark(s->u.loop, c);
		return rc == -ENOBUFS ? -ENOMEM : rc;
	}
	*out = c;
	return 0;
}

void sess_ho_start(struct sess *s, struct conn *c)
{
	if (c->out.bytes)
		loop_mark(s->u.loop, c);
}

void sess_ho_forget(struct sess *s, struct conn *c)
{
	top_drop_conn(c);
	/* EPOLL_CTL_DEL before close: the open file description lives on in the new
	 * process, and with it this epoll set's registration if only closed. */
	loop_del(s->u.loop, c->fd);
	close(c->fd);
	c->fd = -1;
	drop_buffers(c);
	c->state = CONN_DEAD;
	loop_mark(s->u.loop, c);
}
