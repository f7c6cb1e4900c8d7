#include "gateway/pool.h"
#include "gateway/conn.h"
#include "gateway/control.h"
#include "gateway/log.h"
#include "gateway/server.h"
#include "gateway/session.h"
#include "gateway/stats.h"
#include "shm/bell.h"
#include "shm/segment.h"
#include "wsgw/protocol.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <sys/mman.h>
#include <linux/futex.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <unistd.h>

#define MAX_POOLS CFG_MAX_ROUTES
#define MAX_WORKERS 256

/* A record the worker's ring could not take yet; sent before anything newer. */
struct held {
	struct held *next;
	uint64_t conn;
	uint32_t len;
	uint16_t type, flags;
	uint8_t body[];
};

struct pool {
	char name[CFG_NAME_MAX];
	int echo;
	unsigned workers;       /* live ones */
	unsigned long orphans;  /* connections waiting for a worker */
	uint32_t orphan_deadline;
	struct held *pending, *pending_tail; /* records for orphans, in order */
};

struct worker {
	unsigned id;
	uint16_t slot;
	int alive;
	struct ctl_link *link; /* zmq transport: records travel on the control socket; NULL: shm */
	struct pool *pool;
	pid_t pid;
	struct shm_seg *seg;
	struct shm_ring to_w, to_gw;
	unsigned conns;
	int dirty;          /* records pushed since the last notify */
	struct held *held, *held_tail;
	uint64_t *waiting;  /* connections paused until the ring has room */
	size_t n_waiting, cap_waiting;
};

static struct {
	const struct gw_config *cfg;
	struct pool pools[MAX_POOLS];
	int n_pools;
	uint8_t route_pool[CFG_MAX_ROUTES];
	struct worker *workers[MAX_WORKERS];
	unsigned next_id;
	struct shm_bell *bell;
	char bell_name[64];
	int bell_efd;
	pthread_t waker;
	int waker_started;
	atomic_int stop;
	unsigned blocked; /* workers with held records: the loop polls for ring space */
} P;

static struct pool *pool_of(const struct conn *c)
{
	return &P.pools[c->pool];
}

static struct worker *worker_of(const struct conn *c)
{
	return c->worker == POOL_NO_WORKER ? NULL : P.workers[c->worker];
}

int pool_is_echo(unsigned pool)
{
	return P.pools[pool].echo;
}

/* --- the doorbell: a futex cannot be waited on with epoll, so one thread sleeps on it and
 * turns each ring into an eventfd event the loop sees. Only a ring that finds the loop
 * asleep costs syscalls; a busy loop polls the rings itself. --- */

static void *waker_main(void *arg)
{
	struct shm_doorbell *db = arg;
	uint32_t seen = atomic_load_explicit(&db->seq, memory_order_acquire);
	while (!atomic_load(&P.stop)) {
		syscall(SYS_futex, &db->seq, FUTEX_WAIT, seen, NULL, NULL, 0);
		uint32_t now = atomic_load_explicit(&db->seq, memory_order_acquire);
		if (now != seen) {
			seen = now;
			uint64_t one = 1;
			/* The loop registers it edge-triggered and never reads it: each write
			 * is a new edge, and the counter cannot overflow in practice. */
			if (write(P.bell_efd, &one, sizeof(one)) < 0)
				log_warn(errno, "write(eventfd)");
		}
	}
	return NULL;
}

int pool_bell_fd(void)
{
	return P.bell_efd;
}

static int any_pending(void)
{
	for (int i = 0; i < MAX_WORKERS; i++) {
		struct worker *w = P.workers[i];
		if (w && w->alive && !w->link && shm_ring_pending(&w->to_gw))
			return 1;
	}
	return 0;
}

int pool_prepare_sleep(void)
{
	if (!P.bell)
		return 0;
	shm_doorbell_prepare(shm_bell_doorbell(P.bell));
	/* Re-check after announcing: a record published before a ringer saw the
	 * announcement is visible here (shm/doorbell.c explains why). */
	if (any_pending()) {
		shm_doorbell_cancel(shm_bell_doorbell(P.bell));
		return 1;
	}
	return 0;
}

void pool_wakeup(void)
{
	if (P.bell)
		shm_doorbell_cancel(shm_bell_doorbell(P.bell));
}

/* Segments are named /wsgw-<gateway pid>-...: those of a gateway that died without
 * cleaning up (kill -9) are removed, so /dev/shm does not fill up over restarts. */
static void remove_stale_segments(void)
{
	DIR *d = opendir("/dev/shm");
	if (!d)
		return;
	struct dirent *e;
	while ((e = readdir(d))) {
		char *end;
		if (strncmp(e->d_name, "wsgw-", 5) != 0)
			continue;
		long pid = strtol(e->d_name + 5, &end, 10);
		if (*end != '-' || pid <= 0 || kill((pid_t)pid, 0) == 0 || errno != ESRCH)
			continue;
		char name[NAME_MAX + 2];
		snprintf(name, sizeof(name), "/%s", e->d_name);
		if (shm_unlink(name) == 0)
			log_info("removed stale segment %s of a gateway that is gone (pid %ld)", name, pid);
	}
	closedir(d);
}

/* Maps cfg's routes to pools, creating the pools they name. Pools are never removed: a
 * pool whose route went away keeps its workers and connections. Returns 0, or -EINVAL
 * with *why when cfg names a worker pool but there is no control channel to serve it, or
 * more pools than there is room for; nothing changes then. */
static int map_routes(const struct gw_config *cfg, int have_control, const char **why)
{
	uint8_t map[CFG_MAX_ROUTES];
	int n = P.n_pools;
	struct pool added[MAX_POOLS];
	for (int r = 0; r < cfg->n_routes; r++) {
		const char *name = cfg->routes[r].pool;
		int found = -1;
		for (int i = 0; i < n && found < 0; i++)
			if (strcmp(i < P.n_pools ? P.pools[i].name : added[i - P.n_pools].name, name) == 0)
				found = i;
		if (found < 0) {
			int echo = strcmp(name, "echo") == 0;
			if (!echo && !have_control) {
				*why = "a worker pool needs the control channel, which starts only with the gateway";
				return -EINVAL;
			}
			if (n == MAX_POOLS) {
				*why = "too many pools";
				return -EINVAL;
			}
			struct pool *p = &added[n - P.n_pools];
			memset(p, 0, sizeof(*p));
			snprintf(p->name, sizeof(p->name), "%s", name);
			p->echo = echo;
			found = n++;
		}
		map[r] = (uint8_t)found;
	}
	for (int i = P.n_pools; i < n; i++)
		P.pools[i] = added[i - P.n_pools];
	P.n_pools = n;
	memcpy(P.route_pool, map, sizeof(map));
	return 0;
}

int pool_routes_update(const struct gw_config *cfg, const char **why)
{
	return map_routes(cfg, P.bell != NULL, why);
}

int pool_for_route(unsigned route)
{
	return P.route_pool[route];
}

int pool_init(const struct gw_config *cfg)
{
	P.cfg = cfg;
	P.bell_efd = -1;
	P.next_id = 1;
	const char *why;
	map_routes(cfg, 1, &why);
	int need_bell = 0;
	for (int i = 0; i < P.n_pools; i++)
		need_bell |= !P.pools[i].echo;
	if (!need_bell)
		return 0;
	remove_stale_segments();
	snprintf(P.bell_name, sizeof(P.bell_name), "/wsgw-%d-bell", (int)getpid());
	int rc = shm_bell_create(P.bell_name, cfg->shm_mode, cfg->gid, &P.bell);
	if (rc) {
		log_error(-rc, "shm_open(%s)", P.bell_name);
		return rc;
	}
	P.bell_efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (P.bell_efd < 0) {
		log_error(errno, "eventfd");
		return -errno;
	}
	rc = pthread_create(&P.waker, NULL, waker_main, shm_bell_doorbell(P.bell));
	if (rc) {
		log_error(rc, "pthread_create(waker)");
		return -rc;
	}
	P.waker_started = 1;
	return 0;
}

/* --- sending records to a worker --- */

static struct held *held_new(uint16_t type, uint16_t flags, uint64_t conn, const void *a,
			     size_t na, const void *b, size_t nb)
{
	struct held *h = malloc(sizeof(*h) + na + nb);
	if (!h)
		return NULL;
	h->next = NULL;
	h->conn = conn;
	h->len = (uint32_t)(na + nb);
	h->type = type;
	h->flags = flags;
	if (na)
		memcpy(h->body, a, na);
	if (nb)
		memcpy(h->body + na, b, nb);
	return h;
}

static void held_append(struct held **head, struct held **tail, struct held *h)
{
	if (*tail)
		(*tail)->next = h;
	else
		*head = h;
	*tail = h;
}

/* Puts one record (body = a then b) in w's ring, or behind the records already held back:
 * order per worker is the ring's order. Returns 0 or -ENOMEM / -EMSGSIZE. */
static int push(struct worker *w, uint16_t type, uint16_t flags, uint64_t conn,
		const void *a, size_t na, const void *b, size_t nb)
{
	if (!w->held && w->link) {
		int rc = ctl_send_record(w->link, type, flags, conn, a, na, b, nb);
		if (rc != -EAGAIN)
			return rc;
		P.blocked++;
		log_warn(0, "worker %u (pool %s): its ZeroMQ queue is full or its connection gone, pausing its clients",
			 w->id, w->pool->name);
	} else if (!w->held) {
		void *dst;
		int rc = shm_ring_reserve(&w->to_w, (uint32_t)(na + nb), &dst);
		if (rc == 0) {
			if (na)
				memcpy(dst, a, na);
			if (nb)
				memcpy((uint8_t *)dst + na, b, nb);
			shm_ring_commit(&w->to_w, type, flags, conn, (uint32_t)(na + nb));
			w->dirty = 1;
			return 0;
		}
		if (rc != -ENOBUFS)
			return rc;
		P.blocked++;
		log_warn(0, "worker %u (pool %s): ring full, pausing its clients", w->id, w->pool->name);
	}
	struct held *h = held_new(type, flags, conn, a, na, b, nb);
	if (!h)
		return -ENOMEM;
	held_append(&w->held, &w->held_tail, h);
	return 0;
}

static void send_open(struct worker *w, struct conn *c, uint16_t flags)
{
	if (push(w, WSGW_OPEN, flags, c->id, c->fields, c->fields_len, NULL, 0))
		log_error(ENOMEM, "OPEN for conn %llu", (unsigned long long)c->id);
}

static struct worker *least_loaded(struct pool *p, const struct worker *except)
{
	struct worker *best = NULL;
	for (int i = 0; i < MAX_WORKERS; i++) {
		struct worker *w = P.workers[i];
		if (w && w->alive && w->pool == p && w != except && (!best || w->conns < best->conns))
			best = w;
	}
	return best;
}

int pool_open(struct conn *c, const uint8_t *fields, size_t n, int authorize)
{
	struct worker *w = least_loaded(pool_of(c), NULL);
	if (!w)
		return -EAGAIN;
	c->fields = malloc(n ? n : 1);
	if (!c->fields)
		return -ENOMEM;
	memcpy(c->fields, fields, n);
	c->fields_len = (uint32_t)n;
	c->worker = w->slot;
	c->flags |= CONN_WORKER;
	w->conns++;
	send_open(w, c, authorize ? WSGW_F_AUTHORIZE : 0);
	return 0;
}

void pool_add_field(struct conn *c, const char *name, const char *val, size_t vlen)
{
	size_t nl = strlen(name), add = wsgw_field_size(nl, vlen);
	uint8_t *f = realloc(c->fields, c->fields_len + add);
	if (!f)
		return; /* the field is only for a later OPEN(resumed): log-worthy, not fatal */
	wsgw_field_put(f + c->fields_len, name, nl, val, vlen);
	c->fields = f;
	c->fields_len += (uint32_t)add;
}

int pool_message(struct conn *c, unsigned op, const uint8_t *p, size_t n)
{
	struct worker *w = worker_of(c);
	uint16_t flags = op == 2 /* WS_OP_BINARY */ ? WSGW_F_BINARY : 0;
	if (!w) {
		struct pool *pl = pool_of(c);
		struct held *h = held_new(WSGW_MESSAGE, flags, c->id, p, n, NULL, 0);
		if (!h)
			return -ENOMEM;
		held_append(&pl->pending, &pl->pending_tail, h);
		return 0;
	}
	return push(w, WSGW_MESSAGE, flags, c->id, p, n, NULL, 0);
}

void pool_closed(struct conn *c, unsigned code, const char *reason)
{
	if (c->flags & CONN_WORKER) {
		c->flags &= (uint8_t)~CONN_WORKER;
		uint8_t be[2] = { (uint8_t)(code >> 8), (uint8_t)code };
		struct worker *w = worker_of(c);
		if (w) {
			if (push(w, WSGW_CLOSE, 0, c->id, be, 2, reason, strlen(reason)))
				log_error(ENOMEM, "CLOSE for conn %llu", (unsigned long long)c->id);
			w->conns--;
		} else {
			pool_of(c)->orphans--;
		}
	}
	c->worker = POOL_NO_WORKER;
	free(c->fields);
	c->fields = NULL;
	c->fields_len = 0;
}

int pool_blocked(struct conn *c)
{
	if (!(c->flags & CONN_WORKER))
		return 0;
	struct worker *w = worker_of(c);
	if (!w)
		return 1; /* orphaned: adopted (and resumed) when a worker attaches */
	if (!w->held)
		return 0;
	if (w->n_waiting == w->cap_waiting) {
		size_t cap = w->cap_waiting ? 2 * w->cap_waiting : 64;
		uint64_t *v = realloc(w->waiting, cap * sizeof(*v));
		if (!v)
			return 1; /* it stays paused until the next resume of this worker */
		w->waiting = v;
		w->cap_waiting = cap;
	}
	w->waiting[w->n_waiting++] = c->id;
	return 1;
}

/* --- records from workers --- */

static void send_gone(struct worker *w, uint64_t id)
{
	stats.gone_sent++;
	if (push(w, WSGW_GONE, 0, id, NULL, 0, NULL, 0))
		log_error(ENOMEM, "GONE for conn %llu", (unsigned long long)id);
}

static void send_error(struct worker *w, uint64_t id, const char *text)
{
	log_warn(0, "worker %u: %s (conn %llu)", w->id, text, (unsigned long long)id);
	if (push(w, WSGW_ERROR, 0, id, text, strlen(text), NULL, 0))
		log_error(ENOMEM, "ERROR for worker %u", w->id);
}

static uint16_t be16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

void pool_command(struct worker *w, const struct shm_rec *r)
{
	struct conn *c = conn_lookup(r->conn);
	/* A connection that closed, or that belongs to another worker, is not this worker's
	 * to touch: GONE, never a delivery to someone else. */
	if (!c || c->worker != w->slot || !(c->flags & CONN_WORKER)) {
		send_gone(w, r->conn);
		return;
	}
	switch (r->type) {
	case WSGW_SEND:
		sess_send(c, (r->flags & WSGW_F_BINARY) ? 2 : 1, r->payload, r->len);
		break;
	case WSGW_CLOSE:
		if (r->len < 2) {
			send_error(w, r->conn, "CLOSE without a code");
			break;
		}
		sess_worker_close(c, be16(r->payload), (const char *)r->payload + 2, r->len - 2);
		break;
	case WSGW_ACCEPT:
		sess_accept(c, r->payload, r->len);
		break;
	case WSGW_REJECT:
		if (r->len < 2) {
			send_error(w, r->conn, "REJECT without a status");
			break;
		}
		sess_reject(c, be16(r->payload), (const char *)r->payload + 2, r->len - 2);
		break;
	default:
		send_error(w, r->conn, "unknown record type");
	}
}

static int poll_worker(struct worker *w)
{
	struct shm_ring_iter it;
	int rc = shm_ring_peek(&w->to_gw, &it);
	if (rc <= 0) {
		if (rc < 0 && w->alive)
			pool_worker_gone(w, "corrupt to-gateway ring");
		return 0;
	}
	int n = 0;
	struct shm_rec r;
	while ((rc = shm_ring_next(&it, &r)) == 1) {
		pool_command(w, &r);
		n++;
	}
	shm_ring_release(&w->to_gw, &it);
	if (rc < 0 && w->alive)
		pool_worker_gone(w, "corrupt record in to-gateway ring");
	return n;
}

int pool_poll(void)
{
	int n = 0;
	rcu_read_lock();
	for (int i = 0; i < MAX_WORKERS; i++) {
		struct worker *w = P.workers[i];
		if (w && w->alive && !w->link)
			n += poll_worker(w);
	}
	rcu_read_unlock();
	return n;
}

/* Reads the clients paused on w again. The list is taken whole first: a resumed client
 * may fill the ring again and queue itself on a new list meanwhile. */
static void resume_waiting(struct worker *w)
{
	uint64_t *ids = w->waiting;
	size_t n = w->n_waiting;
	w->waiting = NULL;
	w->n_waiting = w->cap_waiting = 0;
	rcu_read_lock();
	for (size_t i = 0; i < n; i++) {
		struct conn *c = conn_lookup(ids[i]);
		if (c)
			sess_resume(c);
	}
	rcu_read_unlock();
	free(ids);
}

/* Moves held-back records into the ring while they fit; resumes the paused clients once
 * none is left. */
static void retry_held(struct worker *w)
{
	while (w->held) {
		struct held *h = w->held;
		if (w->link) {
			if (ctl_send_record(w->link, h->type, h->flags, h->conn, h->body, h->len, NULL, 0) == -EAGAIN)
				return;
		} else {
			void *dst;
			if (shm_ring_reserve(&w->to_w, h->len, &dst))
				return;
			memcpy(dst, h->body, h->len);
			shm_ring_commit(&w->to_w, h->type, h->flags, h->conn, h->len);
			w->dirty = 1;
		}
		w->held = h->next;
		if (!w->held)
			w->held_tail = NULL;
		free(h);
	}
	P.blocked--;
	log_info("worker %u (pool %s): ring has room again, resuming %zu clients", w->id,
		 w->pool->name, w->n_waiting);
	resume_waiting(w);
}

void pool_flush(void)
{
	int zmq = 0;
	for (int i = 0; i < MAX_WORKERS; i++) {
		struct worker *w = P.workers[i];
		if (!w || !w->alive)
			continue;
		if (w->held)
			retry_held(w);
		if (w->dirty) {
			w->dirty = 0;
			shm_ring_notify(&w->to_w);
		}
		zmq |= w->link != NULL;
	}
	if (zmq)
		ctl_flush();
}

int pool_timeout_ms(void)
{
	/* A worker that stops reading does not ring us when it resumes: poll for room. */
	return P.blocked ? 1 : -1;
}

/* --- attach, death, orphans --- */

static void adopt(struct conn *c, void *arg)
{
	struct worker *w = arg;
	if (c->worker != POOL_NO_WORKER || !(c->flags & CONN_WORKER) || pool_of(c) != w->pool)
		return;
	c->worker = w->slot;
	w->conns++;
	w->pool->orphans--;
	send_open(w, c, c->state == CONN_AUTHORIZING ? WSGW_F_AUTHORIZE : WSGW_F_RESUMED);
}

static void replay(struct held *list)
{
	rcu_read_lock();
	while (list) {
		struct held *h = list;
		list = h->next;
		struct conn *c = conn_lookup(h->conn);
		struct worker *w = c && (c->flags & CONN_WORKER) ? worker_of(c) : NULL;
		if (w) {
			if (push(w, h->type, h->flags, h->conn, h->body, h->len, NULL, 0))
				log_error(ENOMEM, "replaying a record");
		} else if (c && (c->flags & CONN_WORKER)) {
			struct pool *p = pool_of(c);
			h->next = NULL;
			held_append(&p->pending, &p->pending_tail, h);
			continue;
		}
		free(h);
	}
	rcu_read_unlock();
}

static int attach_segment(struct worker *w, struct pool_welcome *out);

static void resume_pool(struct conn *c, void *arg)
{
	if (pool_of(c) == arg && (c->flags & CONN_READ_PAUSED))
		sess_resume(c);
}

struct worker *pool_attach(const char *name, pid_t pid, struct ctl_link *link,
			   struct pool_welcome *out, const char **why)
{
	struct pool *p = NULL;
	for (int i = 0; i < P.n_pools; i++)
		if (!P.pools[i].echo && strcmp(P.pools[i].name, name) == 0)
			p = &P.pools[i];
	if (!p) {
		*why = "unknown pool";
		return NULL;
	}
	int slot = -1;
	for (int i = 0; i < MAX_WORKERS && slot < 0; i++)
		if (!P.workers[i])
			slot = i;
	if (slot < 0) {
		*why = "too many workers";
		return NULL;
	}
	struct worker *w = calloc(1, sizeof(*w));
	if (!w) {
		*why = "out of memory";
		return NULL;
	}
	w->id = P.next_id++;
	w->slot = (uint16_t)slot;
	w->pool = p;
	w->pid = pid;
	w->link = link;
	memset(out, 0, sizeof(*out));
	if (!link && attach_segment(w, out) < 0) {
		free(w);
		*why = "cannot create the segment";
		return NULL;
	}
	w->alive = 1;
	P.workers[slot] = w;
	p->workers++;
	stats.worker_attaches++;
	out->id = w->id;
	log_info("worker %u attached to pool %s (pid %d, %s%s)", w->id, p->name, (int)pid,
		 link ? "zmq transport" : "segment ", out->segment);
	return w;
}

void pool_adopt_orphans(struct worker *w)
{
	struct pool *p = w->pool;
	if (!p->orphans)
		return;
	unsigned long n = p->orphans;
	conn_for_each(adopt, w);
	struct held *pend = p->pending;
	p->pending = p->pending_tail = NULL;
	replay(pend);
	conn_for_each(resume_pool, p);
	log_info("worker %u adopted %lu waiting connections", w->id, n);
}

static int attach_segment(struct worker *w, struct pool_welcome *out)
{
	snprintf(out->segment, sizeof(out->segment), "/wsgw-%d-%u", (int)getpid(), w->id);
	struct shm_seg_opts o = {
		.capacity = { P.cfg->ring_bytes, P.cfg->ring_bytes },
		.mode = P.cfg->shm_mode,
		.gid = P.cfg->gid,
	};
	int rc = shm_seg_create_named(out->segment, &o, &w->seg);
	if (rc == 0)
		rc = shm_seg_ring(w->seg, SHM_SEG_TO_WORKER, SHM_RING_PRODUCER, &w->to_w);
	if (rc == 0)
		rc = shm_seg_ring(w->seg, SHM_SEG_TO_GATEWAY, SHM_RING_CONSUMER, &w->to_gw);
	if (rc) {
		log_error(-rc, "segment %s", out->segment);
		shm_seg_close(w->seg);
		return rc;
	}
	shm_ring_set_data_doorbell(&w->to_gw, shm_bell_doorbell(P.bell));
	snprintf(out->bell, sizeof(out->bell), "%s", P.bell_name);
	out->to_worker_bytes = out->to_gateway_bytes = P.cfg->ring_bytes;
	return 0;
}

static void repin(struct conn *c, void *arg)
{
	struct worker *dead = arg;
	if (c->worker != dead->slot)
		return;
	dead->conns--;
	if (!(c->flags & CONN_WORKER)) {
		c->worker = POOL_NO_WORKER;
		return;
	}
	struct worker *w = least_loaded(dead->pool, dead);
	if (!w) {
		c->worker = POOL_NO_WORKER;
		if (dead->pool->orphans++ == 0)
			dead->pool->orphan_deadline = srv_now() + P.cfg->orphan_ms;
		return;
	}
	c->worker = w->slot;
	w->conns++;
	send_open(w, c, c->state == CONN_AUTHORIZING ? WSGW_F_AUTHORIZE : WSGW_F_RESUMED);
}

/* The records the dead worker never consumed, in ring order, then those held back. OPENs
 * are left out: every moved connection gets a fresh OPEN(resumed) first. */
static struct held *salvage(struct worker *w)
{
	struct held *head = NULL, *tail = NULL;
	struct shm_ring r;
	struct shm_ring_iter it;
	if (!w->link && shm_seg_ring(w->seg, SHM_SEG_TO_WORKER, SHM_RING_CONSUMER, &r) == 0 &&
	    shm_ring_peek(&r, &it) > 0) {
		struct shm_rec rec;
		while (shm_ring_next(&it, &rec) == 1) {
			if (rec.type == WSGW_OPEN)
				continue;
			struct held *h = held_new(rec.type, rec.flags, rec.conn, rec.payload, rec.len, NULL, 0);
			if (h)
				held_append(&head, &tail, h);
		}
	}
	for (struct held *h = w->held, *next; h; h = next) {
		next = h->next;
		h->next = NULL;
		if (h->type == WSGW_OPEN)
			free(h);
		else
			held_append(&head, &tail, h);
	}
	w->held = w->held_tail = NULL;
	return head;
}

void pool_worker_gone(struct worker *w, const char *why)
{
	if (!w->alive)
		return;
	/* What it sent before dying still counts. */
	if (!w->link) {
		rcu_read_lock();
		poll_worker(w);
		rcu_read_unlock();
	}
	w->alive = 0;
	if (w->held)
		P.blocked--;
	struct pool *p = w->pool;
	p->workers--;
	unsigned moved = w->conns;
	/* Committed records become visible only when published: publish them so salvage()
	 * reads them back. */
	if (!w->link)
		shm_ring_notify(&w->to_w);
	struct held *left = salvage(w);
	size_t n_left = 0;
	for (struct held *h = left; h; h = h->next)
		n_left++;
	stats.worker_deaths++;
	stats.records_handed_over += n_left;
	conn_for_each(repin, w);
	replay(left);
	log_warn(0, "worker %u (pool %s, pid %d) gone: %s; %u connections moved%s, %zu unconsumed records handed over",
		 w->id, p->name, (int)w->pid, why, moved, p->workers ? "" : " to waiting (no worker left)", n_left);
	/* Clients paused on the dead worker's full ring read again from their new owner. */
	resume_waiting(w);
	pool_flush();
	P.workers[w->slot] = NULL;
	shm_seg_close(w->seg);
	w->seg = NULL;
}

unsigned pool_live_workers(void)
{
	unsigned n = 0;
	for (int i = 0; i < MAX_WORKERS; i++)
		n += P.workers[i] && P.workers[i]->alive;
	return n;
}

int pool_worker_alive(const struct worker *w)
{
	return w->alive;
}

void pool_worker_free(struct worker *w)
{
	if (w->alive)
		pool_worker_gone(w, "detached");
	free(w);
}

unsigned pool_worker_id(const struct worker *w)
{
	return w->id;
}

int pool_worker_is_zmq(const struct worker *w)
{
	return w->link != NULL;
}

static void expire_orphan(struct conn *c, void *arg)
{
	if (pool_of(c) == arg && c->worker == POOL_NO_WORKER && (c->flags & CONN_WORKER)) {
		pool_closed(c, WS_CLOSE_TRY_AGAIN, "no worker");
		sess_close(c, WS_CLOSE_TRY_AGAIN, "no worker available");
	}
}

void pool_tick(void)
{
	for (int i = 0; i < P.n_pools; i++) {
		struct pool *p = &P.pools[i];
		if (!p->orphans || (int32_t)(srv_now() - p->orphan_deadline) < 0)
			continue;
		log_warn(0, "pool %s: no worker within --orphan-timeout: closing %lu connections with 1013",
			 p->name, p->orphans);
		conn_for_each(expire_orphan, p);
		size_t dropped = 0;
		while (p->pending) {
			struct held *h = p->pending;
			p->pending = h->next;
			free(h);
			dropped++;
		}
		p->pending_tail = NULL;
		if (dropped)
			log_warn(0, "pool %s: %zu messages of the closed connections were never delivered",
				 p->name, dropped);
	}
}

void pool_shutdown(void)
{
	for (int i = 0; i < MAX_WORKERS; i++) {
		struct worker *w = P.workers[i];
		if (!w)
			continue;
		for (struct held *h = w->held, *n; h; h = n) {
			n = h->next;
			free(h);
		}
		shm_seg_close(w->seg);
		free(w->waiting);
		w->alive = 0;
		w->seg = NULL;
		w->waiting = NULL;
		P.workers[i] = NULL; /* control.c frees the struct */
	}
	for (int i = 0; i < P.n_pools; i++)
		for (struct held *h = P.pools[i].pending, *n; h; h = n) {
			n = h->next;
			free(h);
		}
	if (P.waker_started) {
		atomic_store(&P.stop, 1);
		struct shm_doorbell *db = shm_bell_doorbell(P.bell);
		atomic_fetch_add(&db->seq, 1);
		syscall(SYS_futex, &db->seq, FUTEX_WAKE, 1, NULL, NULL, 0);
		pthread_join(P.waker, NULL);
	}
	shm_bell_close(P.bell);
	if (P.bell_efd >= 0)
		close(P.bell_efd);
	memset(&P, 0, sizeof(P));
}
