#include "gateway/loop.h"
#include "gateway/conn.h"
#include "gateway/frame.h"
#include "gateway/log.h"
#include "gateway/stats.h"
#include "gateway/tls.h"
#include "shm/spin.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>
#include <urcu/compiler.h>

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
	uint32_t now;
	uint32_t next_sweep;
	uint32_t sweep_ms;
	struct shm_spin spin; /* before a sleep, while a hook can say whether input is pending */
	int n_pending;        /* hooks with a pending callback */
	unsigned index;       /* 0: the main thread's loop */
	unsigned long conns;  /* connections registered here (atomic: others pick by it) */
	/* Work other threads post (loop_post): a list under a lock and an eventfd in the
	 * epoll set that says the list went from empty to not. */
	struct loop_src post_src;
	int post_fd;
	pthread_mutex_t post_lock;
	struct posted *posted, **posted_tail;
};

struct posted {
	struct posted *next;
	void (*fn)(struct loop *l, void *arg);
	void *arg;
};

/* Every loop's clock counts from the first loop's start, so a deadline means the same on
 * each and a connection moved between loops keeps it. */
static pthread_once_t epoch_once = PTHREAD_ONCE_INIT;
static struct timespec epoch;

static void epoch_init(void)
{
	clock_gettime(CLOCK_MONOTONIC, &epoch);
}

static void update_now(struct loop *l)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	l->now = (uint32_t)((ts.tv_sec - epoch.tv_sec) * 1000 +
			    (ts.tv_nsec - epoch.tv_nsec) / 1000000);
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

static void run_posted(struct loop_src *src, uint32_t events);

struct loop *loop_new(struct gw_config *cfg)
{
	return loop_new_index(cfg, 0);
}

struct loop *loop_new_index(struct gw_config *cfg, unsigned index)
{
	struct loop *l = calloc(1, sizeof(*l));
	if (!l)
		return NULL;
	pthread_once(&epoch_once, epoch_init);
	l->cfg = cfg;
	l->index = index;
	l->rbuf = malloc(WS_RX_TAIL_MAX + RBUF_CAP);
	l->epfd = epoll_create1(EPOLL_CLOEXEC);
	l->post_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	l->post_src.fn = run_posted;
	if (!l->rbuf || l->epfd < 0 || l->post_fd < 0 || loop_add(l, l->post_fd, EPOLLIN, &l->post_src)) {
		int err = errno;
		log_error(err, "epoll_create1 / eventfd / read buffer");
		if (l->epfd >= 0)
			close(l->epfd);
		if (l->post_fd >= 0)
			close(l->post_fd);
		free(l->rbuf);
		free(l);
		errno = err;
		return NULL;
	}
	pthread_mutex_init(&l->post_lock, NULL);
	l->posted_tail = &l->posted;
	/* The buffer's pages are paid for now, not by the first clients. */
	memset(l->rbuf, 0, WS_RX_TAIL_MAX + RBUF_CAP);
	shm_spin_init(&l->spin, 0, 0);
	loop_set_config(l);
	return l;
}

void loop_free(struct loop *l)
{
	if (!l)
		return;
	/* Work posted to a loop that ends is dropped: its posters stop first (gateway/loops.h). */
	for (struct posted *p = l->posted, *next; p; p = next) {
		next = p->next;
		free(p);
	}
	pthread_mutex_destroy(&l->post_lock);
	close(l->post_fd);
	close(l->epfd);
	free(l->rbuf);
	free(l);
}

unsigned loop_index(const struct loop *l)
{
	return l->index;
}

unsigned long loop_conns(const struct loop *l)
{
	return __atomic_load_n(&l->conns, __ATOMIC_RELAXED);
}

int loop_post(struct loop *l, void (*fn)(struct loop *l, void *arg), void *arg)
{
	struct posted *p = malloc(sizeof(*p));
	if (!p)
		return -ENOMEM;
	*p = (struct posted){ NULL, fn, arg };
	pthread_mutex_lock(&l->post_lock);
	int was_empty = l->posted == NULL;
	*l->posted_tail = p;
	l->posted_tail = &p->next;
	pthread_mutex_unlock(&l->post_lock);
	if (was_empty) {
		uint64_t one = 1;
		if (write(l->post_fd, &one, sizeof(one)) < 0 && errno != EAGAIN)
			log_error(errno, "write(loop %u's eventfd)", l->index);
	}
	return 0;
}

/* In post order; work posted while this runs waits for the eventfd's next report. */
static void run_posted(struct loop_src *src, uint32_t events)
{
	struct loop *l = caa_container_of(src, struct loop, post_src);
	(void)events;
	uint64_t v;
	if (read(l->post_fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
		log_error(errno, "read(loop %u's eventfd)", l->index);
	pthread_mutex_lock(&l->post_lock);
	struct posted *p = l->posted;
	l->posted = NULL;
	l->posted_tail = &l->posted;
	pthread_mutex_unlock(&l->post_lock);
	while (p) {
		struct posted *next = p->next;
		p->fn(l, p->arg);
		free(p);
		p = next;
	}
}

/* loop_call's rendezvous. */
struct call {
	void (*fn)(struct loop *l, void *arg);
	void *arg;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int done;
};

static void run_call(struct loop *l, void *arg)
{
	struct call *k = arg;
	k->fn(l, k->arg);
	pthread_mutex_lock(&k->lock);
	k->done = 1;
	pthread_cond_signal(&k->cond);
	pthread_mutex_unlock(&k->lock);
}

int loop_call(struct loop *l, void (*fn)(struct loop *l, void *arg), void *arg)
{
	struct call k = { fn, arg, PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0 };
	int rc = loop_post(l, run_call, &k);
	if (rc)
		return rc;
	pthread_mutex_lock(&k.lock);
	while (!k.done)
		pthread_cond_wait(&k.cond, &k.lock);
	pthread_mutex_unlock(&k.lock);
	return 0;
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
	uint32_t ev = EPOLLIN | EPOLLRDHUP | EPOLLET | (c->flags & CONN_POLLOUT ? EPOLLOUT : 0);
	int rc = ctl(l, EPOLL_CTL_ADD, c->fd, ev, c);
	if (rc == 0) {
		__atomic_store_n(&c->loop, (uint8_t)l->index, __ATOMIC_RELEASE);
		__atomic_add_fetch(&l->conns, 1, __ATOMIC_RELAXED);
		c->in_loop = 1;
	}
	return rc;
}

void loop_detach_conn(struct loop *l, struct conn *c, unsigned to)
{
	/* Not loop_flush: that would free the connections closed in this batch, whose stale
	 * events may still follow. */
	if (c->flags & CONN_IN_FLUSH) {
		struct conn **p = &l->marked;
		while (*p != c)
			p = &(*p)->flush_next;
		*p = c->flush_next;
		c->flags &= (uint8_t)~CONN_IN_FLUSH;
	}
	epoll_ctl(l->epfd, EPOLL_CTL_DEL, c->fd, NULL);
	c->in_loop = 0;
	__atomic_sub_fetch(&l->conns, 1, __ATOMIC_RELAXED);
	/* No loop's conn_for_each sees it until loop_add_conn; the release orders every
	 * write to c before the other loop's first look. */
	__atomic_store_n(&c->loop, (uint8_t)(CONN_MOVING | to), __ATOMIC_RELEASE);
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
	if (c->in_loop) {
		c->in_loop = 0;
		__atomic_sub_fetch(&l->conns, 1, __ATOMIC_RELAXED);
	}
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
	conn_thread_loop(l->index); /* whose connections conn_for_each walks here */
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
