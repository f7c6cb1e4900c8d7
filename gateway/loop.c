#include "gateway/loop.h"
#include "gateway/conn.h"
#include "gateway/frame.h"
#include "gateway/log.h"
#include "gateway/stats.h"
#include "gateway/tls.h"
#include "shm/spin.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

#define RBUF_CAP (256u << 10)
#define MAX_EVENTS 256
#define MAX_HOOKS 8

struct loop {
	struct gw_config *cfg;
	const struct loop_conn_ops *ops;
	void *ops_arg;
	struct loop_hooks hooks[MAX_HOOKS];
	int n_hooks;
	int epfd;
	int stop;
	uint8_t *rbuf;        /* WS_RX_TAIL_MAX + RBUF_CAP bytes, shared by all connections */
	struct conn *marked;  /* end-of-batch list, through conn->flush_next */
	struct timespec start;
	uint32_t now;
	uint32_t next_sweep;
	uint32_t sweep_ms;
	struct shm_spin spin; /* before a sleep, while a hook can say whether input is pending */
	int n_pending;        /* hooks with a pending callback */
};

static void update_now(struct loop *l)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	l->now = (uint32_t)((ts.tv_sec - l->start.tv_sec) * 1000 +
			    (ts.tv_nsec - l->start.tv_nsec) / 1000000);
}

void loop_set_config(struct loop *l)
{
	const struct gw_config *cfg = l->cfg;
	/* Deadlines are checked by a sweep, a few times per shortest timeout. */
	unsigned shortest = cfg->handshake_ms;
	if (cfg->idle_ms < shortest)
		shortest = cfg->idle_ms;
	if (cfg->close_ms < shortest)
		shortest = cfg->close_ms;
	if (cfg->heartbeat_ms < shortest)
		shortest = cfg->heartbeat_ms;
	l->sweep_ms = shortest / 4 < 10 ? 10 : shortest / 4 > 1000 ? 1000 : shortest / 4;
	shm_spin_set_max(&l->spin, cfg->wake_spin_us * 1000);
}

void loop_set_conn_ops(struct loop *l, const struct loop_conn_ops *ops, void *arg)
{
	l->ops = ops;
	l->ops_arg = arg;
}

struct loop *loop_new(struct gw_config *cfg)
{
	struct loop *l = calloc(1, sizeof(*l));
	if (!l)
		return NULL;
	l->cfg = cfg;
	l->rbuf = malloc(WS_RX_TAIL_MAX + RBUF_CAP);
	l->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (!l->rbuf || l->epfd < 0) {
		int err = errno;
		log_error(err, "epoll_create1 / read buffer");
		if (l->epfd >= 0)
			close(l->epfd);
		free(l->rbuf);
		free(l);
		errno = err;
		return NULL;
	}
	/* The buffer's pages are paid for now, not by the first clients. */
	memset(l->rbuf, 0, WS_RX_TAIL_MAX + RBUF_CAP);
	clock_gettime(CLOCK_MONOTONIC, &l->start);
	shm_spin_init(&l->spin, 0, 0);
	loop_set_config(l);
	return l;
}

void loop_free(struct loop *l)
{
	if (!l)
		return;
	close(l->epfd);
	free(l->rbuf);
	free(l);
}

int loop_add_hooks(struct loop *l, const struct loop_hooks *h)
{
	if (l->n_hooks == MAX_HOOKS)
		return -ENOSPC;
	l->hooks[l->n_hooks++] = *h;
	l->n_pending += !!h->pending;
	return 0;
}

static int ctl(struct loop *l, int op, int fd, uint32_t events, void *ptr)
{
	struct epoll_event ev = { .events = events, .data.ptr = ptr };
	if (epoll_ctl(l->epfd, op, fd, &ev) < 0) {
		int err = errno;
		log_error(err, "epoll_ctl(%s, fd=%d)", op == EPOLL_CTL_ADD ? "ADD" : "MOD", fd);
		return -err;
	}
	return 0;
}

int loop_add(struct loop *l, int fd, uint32_t events, struct loop_src *src)
{
	src->kind = EP_SRC;
	return ctl(l, EPOLL_CTL_ADD, fd, events, src);
}

int loop_mod(struct loop *l, int fd, uint32_t events, struct loop_src *src)
{
	src->kind = EP_SRC;
	return ctl(l, EPOLL_CTL_MOD, fd, events, src);
}

void loop_del(struct loop *l, int fd)
{
	epoll_ctl(l->epfd, EPOLL_CTL_DEL, fd, NULL);
}

int loop_add_conn(struct loop *l, struct conn *c)
{
	return ctl(l, EPOLL_CTL_ADD, c->fd, EPOLLIN | EPOLLRDHUP | EPOLLET, c);
}

uint32_t loop_now(const struct loop *l)
{
	return l->now;
}

const struct gw_config *loop_cfg(const struct loop *l)
{
	return l->cfg;
}

uint8_t *loop_rbuf(struct loop *l, size_t *cap)
{
	*cap = RBUF_CAP;
	return l->rbuf;
}

void loop_mark(struct loop *l, struct conn *c)
{
	if (c->flags & CONN_IN_FLUSH)
		return;
	c->flags |= CONN_IN_FLUSH;
	c->flush_next = l->marked;
	l->marked = c;
}

void loop_close(struct loop *l, struct conn *c, const char *reason)
{
	if (c->state == CONN_DEAD)
		return;
	log_debug("conn %llu: closed (%s)", (unsigned long long)c->id, reason);
	l->ops->closing(l->ops_arg, c);
	close(c->fd); /* also removes it from the epoll set */
	c->fd = -1;
	c->state = CONN_DEAD;
	loop_mark(l, c);
}

void loop_linger(struct loop *l, struct conn *c)
{
	c->state = CONN_LINGER;
	c->deadline = l->now + l->cfg->close_ms;
	loop_mark(l, c);
}

/* Arms (on != 0) or disarms EPOLLOUT for c. */
static void want_write(struct loop *l, struct conn *c, int on)
{
	if (!!(c->flags & CONN_POLLOUT) == !!on)
		return;
	if (ctl(l, EPOLL_CTL_MOD, c->fd, EPOLLIN | EPOLLRDHUP | EPOLLET | (on ? EPOLLOUT : 0), c)) {
		loop_close(l, c, "epoll_ctl failed");
		return;
	}
	c->flags ^= CONN_POLLOUT;
}

void loop_flush(struct loop *l)
{
	struct conn *c;
	while ((c = l->marked)) {
		l->marked = c->flush_next;
		c->flags &= (uint8_t)~CONN_IN_FLUSH;
		if (c->state == CONN_DEAD) {
			conn_release(c);
			continue;
		}
		int rc = c->tls ? tls_flush(c->tls, &c->out, c->fd) : outq_flush(&c->out, c->fd);
		if (rc < 0) {
			loop_close(l, c, strerror(-rc));
		} else if (rc > 0) {
			want_write(l, c, 1);
		} else {
			want_write(l, c, 0);
			l->ops->drained(l->ops_arg, c);
		}
	}
}

static void close_one(struct conn *c, void *arg)
{
	struct loop *l = arg;
	loop_close(l, c, "shutdown");
}

void loop_close_all(struct loop *l)
{
	conn_for_each(close_one, l);
	loop_flush(l);
}

void loop_stop(struct loop *l)
{
	l->stop = 1;
}

static void check_deadline(struct conn *c, void *arg)
{
	struct loop *l = arg;
	if (c->state != CONN_DEAD && (int32_t)(l->now - c->deadline) >= 0)
		l->ops->deadline(l->ops_arg, c);
}

#define EACH_HOOK(l, h) for (struct loop_hooks *h = (l)->hooks; h < (l)->hooks + (l)->n_hooks; h++)

/* Counts are published here, once per batch, so that another thread's report (the admin
 * endpoint on loop 0) sees this loop's at most a batch late; an unchanged batch costs a
 * compare. */
static void end_of_batch(struct loop *l)
{
	EACH_HOOK(l, h)
		if (h->flush)
			h->flush(h->arg);
	stats_publish();
	loop_flush(l);
}

static void dispatch(struct loop *l, const struct epoll_event *ev)
{
	if (*(uint8_t *)ev->data.ptr == EP_SRC) {
		struct loop_src *src = ev->data.ptr;
		src->fn(src, ev->events);
		return;
	}
	struct conn *c = ev->data.ptr;
	if (c->state == CONN_DEAD)
		return; /* closed earlier in this batch */
	/* Errors and hang-ups are handled by the read and write paths themselves. */
	if (ev->events & (EPOLLOUT | EPOLLERR | EPOLLHUP))
		loop_mark(l, c);
	l->ops->event(l->ops_arg, c, ev->events);
}

/* How long epoll_wait may sleep: until the sweep or a hook's deadline; 0 when work waits. */
static int sleep_ms(struct loop *l, int work)
{
	if (work || l->stop) /* a hook that stopped the loop: no sleep before the loop ends */
		return 0;
	int timeout = (int32_t)(l->next_sweep - l->now);
	if (timeout < 0)
		timeout = 0;
	EACH_HOOK(l, h) {
		int t = h->timeout_ms ? h->timeout_ms(h->arg) : -1;
		if (t >= 0 && t < timeout)
			timeout = t;
	}
	return timeout;
}

static int any_pending(struct loop *l)
{
	EACH_HOOK(l, h)
		if (h->pending && h->pending(h->arg))
			return 1;
	return 0;
}

/* Spin steps between two looks at the epoll set: ~1 µs of pause (12 ns each here) and ring
 * checks, against ~1.3 µs for the epoll_wait itself. */
#define SPIN_EPOLL_EVERY 64

/* Spins for the budget, watching the hooks that can say whether input is pending and,
 * every SPIN_EPOLL_EVERY steps, the epoll set. Returns 1 with *n set when input came (*n
 * events, or 0 and a hook has input pending; -1 and errno from epoll_wait), 0 when the
 * budget ran out. */
static int spin(struct loop *l, struct epoll_event *events, struct shm_spin_wait *t, int *n)
{
	shm_spin_begin(&l->spin, t);
	for (unsigned i = 0; shm_spin_more(&l->spin, t, i); i++) {
		*n = 0;
		if (any_pending(l))
			return 1;
		if (i % SPIN_EPOLL_EVERY == SPIN_EPOLL_EVERY - 1 &&
		    (*n = epoll_wait(l->epfd, events, MAX_EVENTS, 0)) != 0)
			return 1;
		shm_cpu_relax();
	}
	return 0;
}

/*
 * epoll_wait, bounded by sleep_ms. When a hook can say whether input is pending (a worker's
 * ring), the loop first spins for an adaptive budget ([gateway] wake-spin, shm/spin.h): an
 * answer that comes within it is taken without the worker writing the loop's eventfd and
 * this thread waking, a vCPU wake-up of ~20-35 µs here. Returns what
 * epoll_wait returns; 0 events also when a hook has input pending.
 */
static int wait_events(struct loop *l, struct epoll_event *events, int work)
{
	int timeout = sleep_ms(l, work), n;
	/* wake-spin 0 (the default): no clock reads, no second look at the hooks. */
	int spinning = timeout != 0 && l->n_pending && l->spin.max_ns;
	struct shm_spin_wait t;

	if (spinning && spin(l, events, &t, &n)) {
		shm_spin_end(&l->spin, &t, n >= 0);
		return n;
	}
	/* Announced last: a hook that finds input after announcing keeps the loop awake. */
	if (timeout != 0)
		EACH_HOOK(l, h)
			if (h->sleep && h->sleep(h->arg))
				timeout = 0;
	n = epoll_wait(l->epfd, events, MAX_EVENTS, timeout);
	if (spinning) {
		int err = errno;
		shm_spin_end(&l->spin, &t, n > 0 || any_pending(l));
		errno = err;
	}
	return n;
}

int loop_run(struct loop *l)
{
	struct epoll_event events[MAX_EVENTS];
	update_now(l);
	l->next_sweep = l->now + l->sweep_ms;
	while (!l->stop) {
		int work = 0;
		EACH_HOOK(l, h)
			if (h->poll)
				work += h->poll(h->arg);
		end_of_batch(l);
		int n = wait_events(l, events, work);
		int err = errno;
		EACH_HOOK(l, h)
			if (h->wake)
				h->wake(h->arg);
		if (n < 0 && err != EINTR) {
			log_error(err, "epoll_wait");
			return -err;
		}
		update_now(l);
		for (int i = 0; i < n; i++)
			dispatch(l, &events[i]);
		end_of_batch(l);
		if ((int32_t)(l->now - l->next_sweep) >= 0) {
			conn_for_each(check_deadline, l);
			EACH_HOOK(l, h)
				if (h->tick)
					h->tick(h->arg);
			end_of_batch(l);
			l->next_sweep = l->now + l->sweep_ms;
		}
	}
	return 0;
}
