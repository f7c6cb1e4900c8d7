/* libwsgw: the C worker side of docs/PROTOCOL.md over the shm transport. */
#include "wsgw/worker.h"
#include "wsgw/protocol.h"
#include "shm/bell.h"
#include "shm/fdpass.h"
#include "shm/segment.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#define SPIN 200            /* ring checks before sleeping for room to send */
#define SEND_WAIT_MS 5000   /* longest a send waits for the gateway to make room */

struct wsgw_worker {
	void *ctx, *dealer;
	char control[256];
	char pool[64];
	unsigned id;
	unsigned hb_ms;
	int attached;
	pid_t gw_pid;
	struct shm_seg *seg;
	struct shm_bell *bell;
	int efd;        /* the gateway loop's eventfd, -1: ring the doorbell's futex */
	struct shm_ring to_w, to_gw;
	struct shm_ring_iter it;
	int in_batch;   /* records of `it` were handed out: release them next time */
	int dirty;      /* commands since the last notify */
	int reset;      /* owe the caller a WSGW_EV_RESET */
	uint64_t last_heard, last_sent, next_ctl, next_hello;
	unsigned hello_wait_ms; /* before the next try of a HELLO that found no connection */
	size_t rsv_max; /* open wsgw_send_begin reservation, 0: none */
	struct shm_spin spin; /* how long wsgw_wait spins before it sleeps */
};

static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void default_control(char *out, size_t cap)
{
	const char *env = getenv("WSGW_CONTROL"), *xdg = getenv("XDG_RUNTIME_DIR");
	if (env && *env)
		snprintf(out, cap, "%s", env);
	else if (geteuid() == 0)
		snprintf(out, cap, "ipc:///run/wsgw/control");
	else if (xdg && xdg[0] == '/')
		snprintf(out, cap, "ipc://%s/wsgw/control", xdg);
	else
		snprintf(out, cap, "ipc:///tmp/wsgw-%u/control", (unsigned)geteuid());
}

static int send_ctl(struct wsgw_worker *w, const char *const *f, int n)
{
	for (int i = 0; i < n; i++)
		if (zmq_send(w->dealer, f[i], strlen(f[i]), (i + 1 < n ? ZMQ_SNDMORE : 0) | ZMQ_DONTWAIT) < 0)
			return -errno;
	w->last_sent = now_ms();
	return 0;
}

static int send_hello(struct wsgw_worker *w)
{
	char version[8], pid[16];
	snprintf(version, sizeof(version), "%d", WSGW_PROTOCOL_VERSION);
	snprintf(pid, sizeof(pid), "%d", (int)getpid());
	const char *f[] = { "HELLO", version, w->pool, "shm", pid };
	int rc = send_ctl(w, f, 5);
	/* Not connected yet (ZMQ_IMMEDIATE): try again soon, from 2 ms up to every 100 ms, as
	 * a connection to a gateway that is there takes a millisecond or two and one that is
	 * away may take long; sent: give the gateway time. */
	if (rc) {
		w->hello_wait_ms = w->hello_wait_ms ? w->hello_wait_ms * 2 : 2;
		if (w->hello_wait_ms > 100)
			w->hello_wait_ms = 100;
	} else {
		w->hello_wait_ms = 0;
	}
	w->next_hello = now_ms() + (rc ? w->hello_wait_ms : 5000);
	return rc;
}

static void unmap(struct wsgw_worker *w)
{
	shm_seg_close(w->seg);
	shm_bell_close(w->bell);
	if (w->efd >= 0)
		close(w->efd);
	w->seg = NULL;
	w->bell = NULL;
	w->efd = -1;
	w->attached = 0;
	w->in_batch = 0;
	w->dirty = 0;
	w->rsv_max = 0;
}

/* WELCOME id hb attach-socket to_worker to_gateway token: the segment, the doorbell page
 * and the gateway loop's eventfd come as file descriptors from the attach socket, for the
 * token (shm/fdpass.h). A gateway before the eventfd sends only the first two: then the
 * doorbell's futex wakes its waker thread instead (docs/SHM.md, "Waking the gateway"). */
static int on_welcome(struct wsgw_worker *w, char f[][256], int n)
{
	if (n != 7)
		return -EPROTO;
	struct shm_seg *seg = NULL;
	struct shm_bell *bell = NULL;
	int fds[3] = { -1, -1, -1 };
	int rc = shm_fdpass_fetch(f[3], f[6], 5000, fds, 2, 3);
	if (rc < 0) {
		fprintf(stderr, "libwsgw: segment from %s: %s\n", f[3], strerror(-rc));
		return rc;
	}
	rc = shm_seg_attach_fd(fds[0], &seg);
	if (rc == 0)
		rc = shm_bell_attach_fd(fds[1], &bell);
	close(fds[0]);
	close(fds[1]);
	if (rc == 0)
		rc = shm_seg_ring(seg, SHM_SEG_TO_WORKER, SHM_RING_CONSUMER, &w->to_w);
	if (rc == 0)
		rc = shm_seg_ring(seg, SHM_SEG_TO_GATEWAY, SHM_RING_PRODUCER, &w->to_gw);
	if (rc) {
		fprintf(stderr, "libwsgw: segment from %s: %s\n", f[3], strerror(-rc));
		shm_seg_close(seg);
		shm_bell_close(bell);
		if (fds[2] >= 0)
			close(fds[2]);
		return rc;
	}
	/* The gateway sleeps on one doorbell for all its workers (docs/SHM.md), in epoll:
	 * a ring that finds it asleep writes its eventfd. */
	shm_ring_set_data_doorbell(&w->to_gw, shm_bell_doorbell(bell));
	shm_ring_set_data_eventfd(&w->to_gw, fds[2]);
	w->seg = seg;
	w->bell = bell;
	w->efd = fds[2];
	w->id = (unsigned)strtoul(f[1], NULL, 10);
	w->hb_ms = (unsigned)strtoul(f[2], NULL, 10);
	if (w->hb_ms < 10)
		w->hb_ms = 10;
	w->gw_pid = (pid_t)shm_seg_header(seg)->gateway_pid;
	w->attached = 1;
	return 0;
}

/* Reads every waiting control message. Returns 0, or -EPROTO when the gateway refused us
 * (the reason was printed), or a segment error. */
static int read_ctl(struct wsgw_worker *w)
{
	for (;;) {
		char f[8][256];
		int n = 0, more = 1;
		while (more) {
			int len = zmq_recv(w->dealer, f[n < 8 ? n : 7], 255, ZMQ_DONTWAIT);
			if (len < 0)
				return 0;
			if (n < 8) {
				f[n][len > 255 ? 255 : len] = 0;
				n++;
			}
			int m = 0;
			size_t ml = sizeof(m);
			zmq_getsockopt(w->dealer, ZMQ_RCVMORE, &m, &ml);
			more = m;
		}
		w->last_heard = now_ms();
		if (strcmp(f[0], "WELCOME") == 0) {
			/* The gateway answers every HELLO and keeps only the last attachment, so the
			 * last WELCOME is the one that counts (a HELLO may have been repeated). */
			if (w->attached) {
				unmap(w);
				w->reset = 1;
			}
			int rc = on_welcome(w, f, n);
			if (rc)
				return rc;
		} else if (strcmp(f[0], "ERROR") == 0) {
			if (w->attached && n > 1 && strcmp(f[1], "not attached") == 0) {
				/* A new gateway behind the same endpoint. */
				unmap(w);
				w->reset = 1;
				send_hello(w);
				continue;
			}
			fprintf(stderr, "libwsgw: gateway refused pool '%s': %s\n", w->pool, n > 1 ? f[1] : "?");
			return -EPROTO;
		}
	}
}

/* $WSGW_WAKE_SPIN: the most wsgw_wait spins before it sleeps, in µs (0: never spin). */
static uint32_t spin_ceiling(void)
{
	const char *env = getenv("WSGW_WAKE_SPIN");
	if (!env || !*env)
		return SHM_SPIN_DEFAULT_NS;
	char *end;
	unsigned long us = strtoul(env, &end, 10);
	if (*end || us > SHM_SPIN_MAX_NS / 1000) {
		fprintf(stderr, "libwsgw: WSGW_WAKE_SPIN=%s is not 0..%u: using %u\n", env,
			SHM_SPIN_MAX_NS / 1000, SHM_SPIN_DEFAULT_NS / 1000);
		return SHM_SPIN_DEFAULT_NS;
	}
	return (uint32_t)us * 1000;
}

int wsgw_attach(const struct wsgw_options *o, struct wsgw_worker **out)
{
	if (!o || !o->pool || !*o->pool || strlen(o->pool) >= 64)
		return -EINVAL;
	struct wsgw_worker *w = calloc(1, sizeof(*w));
	if (!w)
		return -ENOMEM;
	w->efd = -1;
	snprintf(w->pool, sizeof(w->pool), "%s", o->pool);
	/* The floor is what 200 pauses were: it catches the gateway's second flush of an
	 * iteration without a wake-up (bench/RESULTS.md, issue 15). */
	shm_spin_init(&w->spin, SHM_SPIN_START_NS, spin_ceiling());
	if (o->control)
		snprintf(w->control, sizeof(w->control), "%s", o->control);
	else
		default_control(w->control, sizeof(w->control));
	int rc = -ENOMEM;
	w->ctx = zmq_ctx_new();
	w->dealer = w->ctx ? zmq_socket(w->ctx, ZMQ_DEALER) : NULL;
	if (!w->dealer)
		goto fail;
	int zero = 0, one = 1;
	zmq_setsockopt(w->dealer, ZMQ_LINGER, &zero, sizeof(zero));
	/* Queue nothing while the gateway is away: HELLOs repeated during an outage would all
	 * arrive at once and attach this worker several times. */
	zmq_setsockopt(w->dealer, ZMQ_IMMEDIATE, &one, sizeof(one));
	/* A routing id of our own, the same on every reconnect: a gateway that takes this
	 * worker over in a live upgrade knows it by that id (docs/UPGRADE.md). "wsgw1-" says
	 * this library follows such a hand-over. */
	char rid[48];
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	int rlen = snprintf(rid, sizeof(rid), "wsgw1-%d-%lx%lx", (int)getpid(), (unsigned long)ts.tv_sec,
			    (unsigned long)ts.tv_nsec ^ (unsigned long)(uintptr_t)w);
	zmq_setsockopt(w->dealer, ZMQ_ROUTING_ID, rid, (size_t)rlen);
	if (zmq_connect(w->dealer, w->control) < 0) {
		rc = -errno;
		fprintf(stderr, "libwsgw: connect %s: %s\n", w->control, zmq_strerror(errno));
		goto fail;
	}
	int timeout = o->attach_timeout_ms ? o->attach_timeout_ms : 5000;
	uint64_t deadline = now_ms() + (uint64_t)(timeout < 0 ? 0 : timeout);
	while (!w->attached) {
		if (now_ms() >= w->next_hello)
			send_hello(w);
		if (timeout >= 0 && (int64_t)(deadline - now_ms()) <= 0) {
			rc = -ETIMEDOUT;
			fprintf(stderr, "libwsgw: no WELCOME from %s within %d ms\n", w->control, timeout);
			goto fail;
		}
		zmq_pollitem_t pi = { .socket = w->dealer, .events = ZMQ_POLLIN };
		uint64_t now = now_ms();
		long wait = w->next_hello > now ? (long)(w->next_hello - now) : 0;
		if (zmq_poll(&pi, 1, wait < 100 ? wait : 100) < 0 && errno == EINTR) {
			rc = -EINTR;
			goto fail;
		}
		rc = read_ctl(w);
		if (rc)
			goto fail;
	}
	w->reset = 0;
	*out = w;
	return 0;
fail:
	unmap(w);
	if (w->dealer)
		zmq_close(w->dealer);
	if (w->ctx)
		zmq_ctx_term(w->ctx);
	free(w);
	return rc;
}

void wsgw_detach(struct wsgw_worker *w)
{
	if (!w)
		return;
	if (w->attached) {
		if (w->in_batch)
			shm_ring_release(&w->to_w, &w->it);
		shm_ring_notify(&w->to_gw);
		const char *f[] = { "BYE" };
		send_ctl(w, f, 1);
	}
	unmap(w);
	zmq_close(w->dealer);
	zmq_ctx_term(w->ctx);
	free(w);
}

/* Heartbeats, gateway liveness, re-attach. Cheap unless due. */
static void control_tick(struct wsgw_worker *w)
{
	uint64_t now = now_ms();
	if (now < w->next_ctl)
		return;
	unsigned hb = w->hb_ms ? w->hb_ms : 1000;
	w->next_ctl = now + hb / 4;
	if (read_ctl(w) == -EPROTO && !w->attached)
		w->next_hello = now + 1000; /* refused: try again later, the pool may appear */
	now = now_ms(); /* read_ctl stamped last_heard after `now` was taken */
	if (w->attached) {
		/* A live upgrade: the new gateway took our segment and says so in its header.
		 * Read again when the pid is gone: the old one may have exited between the
		 * read and the check, having named its successor there. */
		int gone = 0;
		for (int look = 0; look < 2 && (look == 0 || gone); look++) {
			pid_t gw = (pid_t)shm_seg_gateway_pid(w->seg);
			if (gw != w->gw_pid && gw > 0) {
				fprintf(stderr, "libwsgw: worker %u: gateway pid %d took this worker over from pid %d (live upgrade)\n",
					w->id, (int)gw, (int)w->gw_pid);
				w->gw_pid = gw;
				/* Its first word to us: its heartbeats start an interval after it
				 * serves, and upgrades in quick succession must not add up to 3. */
				w->last_heard = now;
			}
			gone = kill(w->gw_pid, 0) < 0 && errno == ESRCH;
		}
		int dead = now - w->last_heard > 3 * (uint64_t)hb || gone;
		if (dead) {
			unmap(w);
			w->reset = 1;
			send_hello(w);
			return;
		}
		if (now - w->last_sent >= hb) {
			const char *f[] = { "HEARTBEAT" };
			send_ctl(w, f, 1);
		}
	} else if (now >= w->next_hello) {
		send_hello(w);
	}
}

static int be16(const uint8_t *p)
{
	return p[0] << 8 | p[1];
}

static void to_event(const struct shm_rec *r, struct wsgw_event *ev)
{
	memset(ev, 0, sizeof(*ev));
	ev->conn = r->conn;
	ev->data = r->payload;
	ev->len = r->len;
	switch (r->type) {
	case WSGW_OPEN:
		ev->type = WSGW_EV_OPEN;
		ev->resumed = !!(r->flags & WSGW_F_RESUMED);
		ev->authorize = !!(r->flags & WSGW_F_AUTHORIZE);
		break;
	case WSGW_MESSAGE:
		ev->type = WSGW_EV_MESSAGE;
		ev->binary = !!(r->flags & WSGW_F_BINARY);
		break;
	case WSGW_CLOSE:
		ev->type = WSGW_EV_CLOSE;
		ev->code = r->len >= 2 ? (unsigned)be16(r->payload) : 1005;
		ev->data = r->len >= 2 ? (const uint8_t *)r->payload + 2 : r->payload;
		ev->len = r->len >= 2 ? r->len - 2 : 0;
		break;
	case WSGW_GONE:
		ev->type = WSGW_EV_GONE;
		break;
	case WSGW_TOPIC:
		ev->type = WSGW_EV_TOPIC;
		break;
	case WSGW_STAT:
		ev->type = WSGW_EV_STAT;
		break;
	default:
		ev->type = WSGW_EV_ERROR;
		break;
	}
}

int wsgw_flush(struct wsgw_worker *w)
{
	if (w->attached && w->dirty) {
		w->dirty = 0;
		shm_ring_notify(&w->to_gw);
	}
	return 0;
}

int wsgw_wait(struct wsgw_worker *w, struct wsgw_event *ev, int max, int timeout_ms)
{
	if (w->in_batch) {
		shm_ring_release(&w->to_w, &w->it);
		w->in_batch = 0;
	}
	wsgw_flush(w);
	uint64_t deadline = now_ms() + (uint64_t)(timeout_ms < 0 ? 0 : timeout_ms);
	for (;;) {
		control_tick(w);
		int n = 0;
		if (w->reset && w->attached && max > 0) {
			w->reset = 0;
			memset(&ev[0], 0, sizeof(ev[0]));
			ev[n++].type = WSGW_EV_RESET;
		}
		if (w->attached && n < max && shm_ring_peek(&w->to_w, &w->it) > 0) {
			struct shm_rec r;
			while (n < max && shm_ring_next(&w->it, &r) == 1)
				to_event(&r, &ev[n++]);
			w->in_batch = 1;
		}
		if (n)
			return n;
		uint64_t now = now_ms();
		if (timeout_ms == 0 || (timeout_ms > 0 && now >= deadline))
			return 0;
		/* Sleep no longer than a quarter heartbeat: heartbeats are sent from here. */
		unsigned hb = w->hb_ms ? w->hb_ms : 1000;
		int slice = (int)(hb / 4);
		if (timeout_ms > 0 && deadline - now < (uint64_t)slice)
			slice = (int)(deadline - now);
		if (!w->attached) {
			usleep((useconds_t)slice * 1000);
			continue;
		}
		int rc = shm_ring_wait_data_adaptive(&w->to_w, &w->spin, slice);
		if (rc == -EINTR)
			return -EINTR;
	}
}

int wsgw_field(const struct wsgw_event *ev, const char *name, const char **val, size_t *len)
{
	if (ev->type != WSGW_EV_OPEN)
		return 0;
	size_t want = strlen(name);
	const uint8_t *p = ev->data, *end = p + ev->len;
	struct wsgw_field f;
	while (wsgw_field_next(&p, end, &f) == 1) {
		if (f.name_len == want && memcmp(f.name, name, want) == 0) {
			*val = (const char *)f.value;
			*len = f.value_len;
			return 1;
		}
	}
	return 0;
}

/* Room for a command of n bytes, waiting (and waking the gateway) while the ring is full. */
static int reserve(struct wsgw_worker *w, size_t n, void **dst)
{
	if (!w->attached)
		return -EPIPE;
	if (n > shm_ring_max_payload(&w->to_gw))
		return -EMSGSIZE;
	for (;;) {
		int rc = shm_ring_reserve(&w->to_gw, (uint32_t)n, dst);
		if (rc != -ENOBUFS)
			return rc;
		w->dirty = 1;
		wsgw_flush(w);
		rc = shm_ring_wait_space(&w->to_gw, (uint32_t)n, SPIN, SEND_WAIT_MS);
		if (rc)
			return rc;
	}
}

static int command(struct wsgw_worker *w, uint16_t type, uint16_t flags, uint64_t conn,
		   const void *a, size_t na, const void *b, size_t nb)
{
	void *dst;
	int rc = reserve(w, na + nb, &dst);
	if (rc)
		return rc;
	if (na)
		memcpy(dst, a, na);
	if (nb)
		memcpy((uint8_t *)dst + na, b, nb);
	shm_ring_commit(&w->to_gw, type, flags, conn, (uint32_t)(na + nb));
	w->dirty = 1;
	return 0;
}

int wsgw_send(struct wsgw_worker *w, uint64_t conn, int binary, const void *p, size_t n)
{
	return command(w, WSGW_SEND, binary ? WSGW_F_BINARY : 0, conn, p, n, NULL, 0);
}

void *wsgw_send_begin(struct wsgw_worker *w, size_t max)
{
	void *dst;
	int rc = reserve(w, max, &dst);
	if (rc) {
		errno = -rc;
		return NULL;
	}
	w->rsv_max = max;
	return dst;
}

int wsgw_send_commit(struct wsgw_worker *w, uint64_t conn, int binary, size_t n)
{
	if (!w->rsv_max || n > w->rsv_max)
		return -EINVAL;
	w->rsv_max = 0;
	shm_ring_commit(&w->to_gw, WSGW_SEND, binary ? WSGW_F_BINARY : 0, conn, (uint32_t)n);
	w->dirty = 1;
	return 0;
}

int wsgw_close(struct wsgw_worker *w, uint64_t conn, unsigned code, const char *reason)
{
	uint8_t be[2] = { (uint8_t)(code >> 8), (uint8_t)code };
	size_t rl = reason ? strlen(reason) : 0;
	return command(w, WSGW_CLOSE, 0, conn, be, 2, reason, rl > 123 ? 123 : rl);
}

int wsgw_accept(struct wsgw_worker *w, uint64_t conn, const char *protocol,
		const char *const *headers)
{
	size_t total = protocol ? wsgw_field_size(8, strlen(protocol)) : 0;
	for (int i = 0; headers && headers[i]; i++)
		total += wsgw_field_size(6, strlen(headers[i]));
	uint8_t *buf = malloc(total ? total : 1), *p = buf;
	if (!buf)
		return -ENOMEM;
	if (protocol)
		p = wsgw_field_put(p, "protocol", 8, protocol, strlen(protocol));
	for (int i = 0; headers && headers[i]; i++)
		p = wsgw_field_put(p, "header", 6, headers[i], strlen(headers[i]));
	int rc = command(w, WSGW_ACCEPT, 0, conn, buf, (size_t)(p - buf), NULL, 0);
	free(buf);
	return rc;
}

int wsgw_reject(struct wsgw_worker *w, uint64_t conn, unsigned status, const char *reason)
{
	uint8_t be[2] = { (uint8_t)(status >> 8), (uint8_t)status };
	size_t rl = reason ? strlen(reason) : 0;
	return command(w, WSGW_REJECT, 0, conn, be, 2, reason, rl > 100 ? 100 : rl);
}

static void put_le(uint8_t *p, uint64_t v, int bytes)
{
	for (int i = 0; i < bytes; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

/* The gateway's bytes may change under us (shm/ring.h): each one is read once. */
static uint64_t get_le(const volatile uint8_t *p, int bytes)
{
	uint64_t v = 0;
	for (int i = 0; i < bytes; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

static int topic_ok(const void *topic, size_t len)
{
	return topic && len >= 1 && len <= WSGW_TOPIC_MAX;
}

int wsgw_subscribe(struct wsgw_worker *w, uint64_t conn, const void *topic, size_t len)
{
	if (!topic_ok(topic, len))
		return -EINVAL;
	return command(w, WSGW_SUBSCRIBE, 0, conn, topic, len, NULL, 0);
}

int wsgw_unsubscribe(struct wsgw_worker *w, uint64_t conn, const void *topic, size_t len)
{
	if (!topic_ok(topic, len))
		return -EINVAL;
	return command(w, WSGW_UNSUBSCRIBE, 0, conn, topic, len, NULL, 0);
}

int wsgw_publish(struct wsgw_worker *w, const void *topic, size_t len, int binary,
		 const void *data, size_t n, uint64_t exclude_conn)
{
	if (!topic_ok(topic, len))
		return -EINVAL;
	void *dst;
	int rc = reserve(w, 1 + len + n, &dst);
	if (rc)
		return rc;
	uint8_t *p = dst;
	p[0] = (uint8_t)len;
	memcpy(p + 1, topic, len);
	if (n)
		memcpy(p + 1 + len, data, n);
	shm_ring_commit(&w->to_gw, WSGW_PUBLISH, binary ? WSGW_F_BINARY : 0, exclude_conn,
			(uint32_t)(1 + len + n));
	w->dirty = 1;
	return 0;
}

int wsgw_send_many(struct wsgw_worker *w, const uint64_t *conns, size_t nconns, int binary,
		   const void *data, size_t n)
{
	if (!nconns)
		return 0;
	if (!w->attached)
		return -EPIPE;
	size_t max = shm_ring_max_payload(&w->to_gw);
	if (n > max || (max - n) < 4 + 8)
		return -EMSGSIZE;
	/* Records of at most a quarter ring leave room for the gateway to drain one while
	 * the next is written; a long list becomes several records, each with the message. */
	size_t room = max / 4 > n + 4 + 8 ? max / 4 : max;
	size_t per = (room - n - 4) / 8;
	if (per > UINT32_MAX)
		per = UINT32_MAX;
	while (nconns) {
		size_t k = nconns < per ? nconns : per;
		size_t total = 4 + 8 * k + n;
		void *dst;
		int rc = reserve(w, total, &dst);
		if (rc)
			return rc;
		uint8_t *p = dst;
		put_le(p, k, 4);
		for (size_t i = 0; i < k; i++)
			put_le(p + 4 + 8 * i, conns[i], 8);
		if (n)
			memcpy(p + 4 + 8 * k, data, n);
		shm_ring_commit(&w->to_gw, WSGW_SENDMANY, binary ? WSGW_F_BINARY : 0, 0,
				(uint32_t)total);
		w->dirty = 1;
		conns += k;
		nconns -= k;
	}
	return 0;
}

int wsgw_query(struct wsgw_worker *w, const void *topic, size_t len, uint64_t query_id)
{
	if (!topic_ok(topic, len))
		return -EINVAL;
	return command(w, WSGW_QUERY, 0, query_id, topic, len, NULL, 0);
}

int wsgw_stat(struct wsgw_worker *w, uint64_t conn)
{
	return command(w, WSGW_STATQ, 0, conn, NULL, 0, NULL, 0);
}

/* TOPIC: u8 topic length, topic, u32 subscribers, then their ids when at most
 * WSGW_TOPIC_LIST_MAX. Returns the number of ids listed, or -EBADMSG / -EINVAL. */
static long topic_parse(const struct wsgw_event *ev, size_t *tl, uint32_t *subs)
{
	if (ev->type != WSGW_EV_TOPIC)
		return -EINVAL;
	const volatile uint8_t *p = ev->data;
	if (ev->len < 1 + 4)
		return -EBADMSG;
	size_t l = p[0];
	if (l < 1 || ev->len < 1 + l + 4)
		return -EBADMSG;
	uint32_t s = (uint32_t)get_le(p + 1 + l, 4);
	size_t listed = (ev->len - (1 + l + 4)) / 8;
	if ((ev->len - (1 + l + 4)) % 8 || (listed && listed != s) || listed > WSGW_TOPIC_LIST_MAX)
		return -EBADMSG;
	*tl = l;
	*subs = s;
	return (long)listed;
}

int wsgw_topic_info(const struct wsgw_event *ev, const void **topic, size_t *topic_len,
		    uint32_t *subscribers)
{
	size_t l;
	uint32_t s;
	long rc = topic_parse(ev, &l, &s);
	if (rc < 0)
		return (int)rc;
	if (topic)
		*topic = (const uint8_t *)ev->data + 1;
	if (topic_len)
		*topic_len = l;
	if (subscribers)
		*subscribers = s;
	return 0;
}

size_t wsgw_topic_conns(const struct wsgw_event *ev, uint64_t *ids, size_t max)
{
	size_t l;
	uint32_t s;
	long listed = topic_parse(ev, &l, &s);
	if (listed <= 0)
		return 0;
	const volatile uint8_t *p = (const uint8_t *)ev->data + 1 + l + 4;
	for (size_t i = 0; i < (size_t)listed && i < max; i++)
		ids[i] = get_le(p + 8 * i, 8);
	return (size_t)listed;
}

int wsgw_stat_info(const struct wsgw_event *ev, uint64_t *queued, uint32_t *age_ms)
{
	if (ev->type != WSGW_EV_STAT)
		return -EINVAL;
	if (ev->len != 12)
		return -EBADMSG;
	const volatile uint8_t *p = ev->data;
	if (queued)
		*queued = get_le(p, 8);
	if (age_ms)
		*age_ms = (uint32_t)get_le(p + 8, 4);
	return 0;
}

unsigned wsgw_worker_id(const struct wsgw_worker *w)
{
	return w->id;
}
