/* Tests of gateway/loop.c: the iteration order, sources, marks, flushes and closes, with
 * the real epoll, eventfds, pipes and socketpairs. Hooks and conn ops of the test record
 * each call in a trace, one letter each:
 *   P poll  F hook flush  O timeout_ms  S sleep  W wake  T tick
 *   E a source's event  C a connection's event  D drained  L deadline  X closing */
#include "gateway/conn.h"
#include "gateway/loop.h"

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <regex.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#define REQUIRE(cond) do { if (!(cond)) ck_abort_msg("%s:%d: %s", __FILE__, __LINE__, #cond); } while (0)

static char trace[65536];
static size_t tn;

static void mark(char ch)
{
	REQUIRE(tn + 1 < sizeof(trace));
	trace[tn++] = ch;
	trace[tn] = 0;
}

static struct gw_config cfg;
static struct loop *L;

/* ---- the test's hooks ---- */

struct th {
	int iters;         /* wakes seen */
	int stop_at;       /* loop_stop at this wake (0: never) */
	int stop_at_tick;  /* loop_stop at this tick (0: never) */
	int ticks;
	int poll_work;     /* poll returns this... */
	int poll_for;      /* ...during the first poll_for iterations */
	int veto;          /* sleep says input waits */
	int timeout;       /* timeout_ms's answer */
	void (*on_poll)(void);
	void (*on_flush)(void);
};

static int h_poll(void *arg)
{
	struct th *h = arg;
	mark('P');
	if (h->on_poll)
		h->on_poll();
	return h->iters < h->poll_for ? h->poll_work : 0;
}

static void h_flush(void *arg)
{
	struct th *h = arg;
	mark('F');
	if (h->on_flush)
		h->on_flush();
}

static int h_timeout(void *arg)
{
	mark('O');
	return ((struct th *)arg)->timeout;
}

static int h_sleep(void *arg)
{
	mark('S');
	return ((struct th *)arg)->veto;
}

static void h_wake(void *arg)
{
	struct th *h = arg;
	mark('W');
	if (++h->iters == h->stop_at)
		loop_stop(L);
}

static void h_tick(void *arg)
{
	struct th *h = arg;
	mark('T');
	if (++h->ticks == h->stop_at_tick)
		loop_stop(L);
}

static struct th th;

static void add_hooks(void)
{
	struct loop_hooks h = { &th, h_poll, h_flush, h_timeout, h_sleep, h_wake, h_tick, NULL };
	ck_assert_int_eq(loop_add_hooks(L, &h), 0);
}

/* ---- the test's connection ops ---- */

struct crec {
	unsigned events, drained, deadlines, closings;
	uint32_t last_events;
	struct conn *last;
	void (*on_event)(struct conn *c, uint32_t ev);
	void (*on_drained)(struct conn *c);
};

static struct crec cr;

static void c_event(void *arg, struct conn *c, uint32_t ev)
{
	(void)arg;
	mark('C');
	cr.events++;
	cr.last = c;
	cr.last_events = ev;
	if (cr.on_event)
		cr.on_event(c, ev);
}

static void c_drained(void *arg, struct conn *c)
{
	(void)arg;
	mark('D');
	cr.drained++;
	cr.last = c;
	if (cr.on_drained)
		cr.on_drained(c);
}

static void c_deadline(void *arg, struct conn *c)
{
	(void)arg;
	mark('L');
	cr.deadlines++;
	cr.last = c;
	c->deadline = loop_now(L) + 1000000000u; /* handled: as the session would move it */
}

static void c_closing(void *arg, struct conn *c)
{
	(void)arg;
	mark('X');
	cr.closings++;
	cr.last = c;
	outq_clear(&c->out); /* what conn_release asks of the closer */
}

static const struct loop_conn_ops ops = { c_event, c_drained, c_deadline, c_closing };

/* A loop whose sweep runs every shortest / 4 ms (10..1000). */
static void mk_loop(unsigned shortest_ms)
{
	memset(&cfg, 0, sizeof(cfg));
	cfg.handshake_ms = cfg.idle_ms = cfg.close_ms = cfg.heartbeat_ms = shortest_ms;
	L = loop_new(&cfg);
	ck_assert_ptr_nonnull(L);
	loop_set_conn_ops(L, &ops, NULL);
}

static void setup(void)
{
	rcu_register_thread();
	ck_assert_int_eq(conn_map_init(), 0);
	signal(SIGPIPE, SIG_IGN); /* as server.c: a dead peer is a write error */
	memset(&th, 0, sizeof(th));
	memset(&cr, 0, sizeof(cr));
	tn = 0;
	trace[0] = 0;
}

static void teardown(void)
{
	if (L) {
		loop_close_all(L);
		loop_free(L);
		L = NULL;
	}
	conn_map_destroy();
	rcu_unregister_thread();
}

/* A connection on one end of a non-blocking socketpair, registered; *peer is the other. */
static struct conn *conn_pair(int *peer)
{
	int sv[2];
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
	struct conn *c = conn_new(sv[0]);
	ck_assert_int_eq(loop_add_conn(L, c), 0);
	*peer = sv[1];
	return c;
}

static int pending_bytes(int fd)
{
	int n = -1;
	ck_assert_int_eq(ioctl(fd, FIONREAD, &n), 0);
	return n;
}

/* The trace cut into iterations, each starting at its poll, must all match re. */
static void iterations_match(const char *re, int *count)
{
	regex_t rx;
	char it[4096];
	int n = 0;

	ck_assert_int_eq(regcomp(&rx, re, REG_EXTENDED | REG_NOSUB), 0);
	for (size_t i = 0; i < tn;) {
		REQUIRE(trace[i] == 'P');
		size_t j = i + 1;
		while (j < tn && trace[j] != 'P')
			j++;
		REQUIRE(j - i < sizeof(it));
		memcpy(it, trace + i, j - i);
		it[j - i] = 0;
		if (regexec(&rx, it, 0, NULL, 0))
			ck_abort_msg("iteration %d is '%s', not %s (whole trace: %.300s)", n, it, re, trace);
		n++;
		i = j;
	}
	regfree(&rx);
	if (count)
		*count = n;
}

/* ---- a source: an eventfd or a pipe, with what it saw ---- */

struct tsrc {
	struct loop_src src;
	int fd;
	unsigned calls;
	uint32_t events;
	int stop; /* loop_stop when called */
};

static void src_fn(struct loop_src *s, uint32_t events)
{
	struct tsrc *t = (struct tsrc *)s;
	uint64_t buf[8]; /* an eventfd's 8 bytes, or what a pipe holds */

	mark('E');
	t->calls++;
	t->events = events;
	if (events & EPOLLIN)
		while (read(t->fd, buf, sizeof(buf)) > 0)
			;
	if (t->stop)
		loop_stop(L);
}

/* ---- the iteration ---- */

START_TEST(test_iteration_order)
{
	struct tsrc ev = { .src.fn = src_fn };
	uint64_t one = 1;

	mk_loop(40); /* sweep every 10 ms */
	add_hooks();
	th.timeout = -1;
	th.stop_at_tick = 3;
	ev.fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	ck_assert_int_eq(loop_add(L, ev.fd, EPOLLIN, &ev.src), 0);
	ck_assert_uint_eq(ev.src.kind, EP_SRC);
	ck_assert_int_eq(write(ev.fd, &one, 8), 8);
	ck_assert_int_eq(loop_run(L), 0);

	/* Poll, flush, the wait (timeouts asked, then sleep unless the sweep is due, then
	 * wake), events, flush, and on a sweep: tick and flush. */
	int n;
	iterations_match("^PFOS?W[EC]*F(TF)?$", &n);
	ck_assert_int_ge(n, 3);
	ck_assert_uint_eq(ev.calls, 1);
	ck_assert(strncmp(trace, "PFOSWEF", 7) == 0);
	ck_assert_int_eq(th.ticks, 3);
	/* loop_stop in the tick ended the run at the end of that iteration. */
	ck_assert(tn >= 2 && strcmp(trace + tn - 2, "TF") == 0);
	close(ev.fd);
}
END_TEST

START_TEST(test_poll_work_keeps_awake)
{
	/* The sweep is a second away: had the loop waited for it once per iteration, 60
	 * iterations would outlast the test's timeout. */
	mk_loop(4000);
	add_hooks();
	th.timeout = -1;
	th.poll_work = 1;
	th.poll_for = 60;
	th.stop_at = 61;
	ck_assert_int_eq(loop_run(L), 0);
	/* With work found, no timeouts are asked and nobody announces a sleep. */
	int n;
	iterations_match("^PFWF(TF)?$|^PFOSWF(TF)?$", &n);
	ck_assert_int_eq(n, 61);
	ck_assert(strstr(trace, "S") == strrchr(trace, 'S')); /* only the last iteration */
	ck_assert(strcmp(trace + tn - 6, "PFOSWF") == 0 || strcmp(trace + tn - 8, "PFOSWFTF") == 0);
}
END_TEST

START_TEST(test_sleep_veto)
{
	mk_loop(4000);
	add_hooks();
	th.timeout = -1;
	th.veto = 1;
	th.stop_at = 60;
	ck_assert_int_eq(loop_run(L), 0);
	int n;
	iterations_match("^PFOSWF(TF)?$", &n);
	ck_assert_int_eq(n, 60);
}
END_TEST

static struct th th2;

START_TEST(test_timeout_ms_bounds_the_wait)
{
	mk_loop(4000);
	add_hooks();
	/* A second set that has no deadline of its own; the shortest answer wins. */
	struct loop_hooks h2 = { &th2, NULL, NULL, h_timeout, NULL, NULL, NULL, NULL };
	th2.timeout = -1;
	ck_assert_int_eq(loop_add_hooks(L, &h2), 0);
	th.timeout = 2;
	th.stop_at = 40;
	ck_assert_int_eq(loop_run(L), 0);
	int n;
	iterations_match("^PFOOSWF(TF)?$", &n);
	ck_assert_int_eq(n, 40);
}
END_TEST

START_TEST(test_hooks_limit)
{
	struct loop_hooks h = { 0 };

	mk_loop(4000);
	for (int i = 0; i < 8; i++)
		ck_assert_int_eq(loop_add_hooks(L, &h), 0);
	ck_assert_int_eq(loop_add_hooks(L, &h), -ENOSPC);
	/* The rest of what the loop offers. */
	ck_assert_ptr_eq(loop_cfg(L), &cfg);
	size_t cap = 0;
	uint8_t *rb = loop_rbuf(L, &cap);
	ck_assert_uint_ge(cap, 65536);
	memset(rb, 0xa5, WS_RX_TAIL_MAX + cap); /* all of it is ours to write */
}
END_TEST

START_TEST(test_stop_ends_run_after_the_iteration)
{
	struct tsrc ev = { .src.fn = src_fn, .stop = 1 };
	uint64_t one = 1;

	mk_loop(4000);
	add_hooks();
	th.timeout = -1;
	ev.fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	ck_assert_int_eq(loop_add(L, ev.fd, EPOLLIN, &ev.src), 0);
	ck_assert_int_eq(write(ev.fd, &one, 8), 8);
	ck_assert_int_eq(loop_run(L), 0);
	/* The event's batch is still flushed; no further iteration starts. */
	ck_assert_str_eq(trace, "PFOSWEF");
	close(ev.fd);
}
END_TEST

static void stop_now(void)
{
	if (tn > 20) /* a few iterations in */
		loop_stop(L);
}

/* A hook that stops the loop in its poll (the server, when a drain finds nothing left to
 * close) ends the run without a sleep: no timeouts asked, no sleep announced. It used to
 * wait for the next sweep, which made every SIGTERM of an idle gateway take 250 ms. */
START_TEST(test_stop_in_poll_does_not_sleep)
{
	mk_loop(4000);
	add_hooks();
	th.timeout = -1;
	th.on_poll = stop_now;
	ck_assert_int_eq(loop_run(L), 0);
	const char *last = strrchr(trace, 'P');
	ck_assert_msg(!strcmp(last, "PFWF"), "the last iteration is '%s' (trace %s)", last, trace);
}
END_TEST

/* ---- sources ---- */

static struct tsrc sev, srd, swr;
static int step;

/* One step per iteration, in the poll hook: check what the previous iteration's events
 * did, then cause the next ones. */
static void sources_step(void)
{
	uint64_t one = 1;

	switch (step++) {
	case 0:
		ck_assert_int_eq(write(sev.fd, &one, 8), 8);
		ck_assert_int_eq(write(swr.fd, "x", 1), 1);
		break;
	case 1:
		ck_assert_uint_eq(sev.calls, 1);
		ck_assert_uint_eq(sev.events, EPOLLIN);
		ck_assert_uint_eq(srd.calls, 1);
		ck_assert_uint_eq(srd.events, EPOLLIN);
		break; /* nothing new this time */
	case 2:
		ck_assert_uint_eq(sev.calls + srd.calls, 2);
		/* Removed: its events stop, the fd stays open. */
		loop_del(L, sev.fd);
		ck_assert_int_eq(write(sev.fd, &one, 8), 8);
		/* The write end, added with no events, then changed to wait for room. */
		ck_assert_int_eq(loop_add(L, swr.fd, 0, &swr.src), 0);
		ck_assert_int_eq(loop_mod(L, swr.fd, EPOLLOUT, &swr.src), 0);
		break;
	case 3:
		ck_assert_uint_eq(sev.calls, 1);
		ck_assert_uint_ge(swr.calls, 1);
		ck_assert_uint_eq(swr.events, EPOLLOUT);
		loop_del(L, swr.fd);
		/* The peer goes: a hang-up reaches the source like any event. */
		close(swr.fd);
		break;
	case 4:
		ck_assert_uint_eq(srd.calls, 2);
		ck_assert(srd.events & EPOLLHUP);
		loop_del(L, srd.fd);
		loop_stop(L);
		break;
	}
}

START_TEST(test_sources)
{
	int p[2];

	mk_loop(4000);
	add_hooks();
	th.timeout = 20;
	th.on_poll = sources_step;
	sev = (struct tsrc){ .src.fn = src_fn, .fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC) };
	ck_assert_int_eq(pipe2(p, O_NONBLOCK | O_CLOEXEC), 0);
	srd = (struct tsrc){ .src.fn = src_fn, .fd = p[0] };
	swr = (struct tsrc){ .src.fn = src_fn, .fd = p[1] };
	ck_assert_int_eq(loop_add(L, sev.fd, EPOLLIN | EPOLLET, &sev.src), 0);
	ck_assert_int_eq(loop_add(L, srd.fd, EPOLLIN, &srd.src), 0);
	/* The same fd twice is refused with epoll's errno. */
	ck_assert_int_eq(loop_add(L, srd.fd, EPOLLIN, &swr.src), -EEXIST);
	ck_assert_int_eq(loop_run(L), 0);
	ck_assert_int_eq(step, 5);
	close(sev.fd);
	close(p[0]);
}
END_TEST

/* ---- marks and flushes ---- */

START_TEST(test_mark_and_flush)
{
	int peer;
	char buf[64];

	mk_loop(4000);
	struct conn *c = conn_pair(&peer);
	ck_assert_int_eq(outq_append2(&c->out, "he", 2, "llo", 3), 0);
	loop_mark(L, c);
	loop_mark(L, c); /* once on the list, whatever the calls */
	ck_assert(c->flags & CONN_IN_FLUSH);
	ck_assert_int_eq(pending_bytes(peer), 0); /* marked is not written */
	loop_flush(L);
	ck_assert_uint_eq(cr.drained, 1);
	ck_assert_ptr_eq(cr.last, c);
	ck_assert(!(c->flags & CONN_IN_FLUSH));
	ck_assert_int_eq(read(peer, buf, sizeof(buf)), 5);
	ck_assert_mem_eq(buf, "hello", 5);
	/* Nothing marked: nothing happens. */
	loop_flush(L);
	ck_assert_uint_eq(cr.drained, 1);
	/* Marked with nothing queued: drained at once. */
	loop_mark(L, c);
	loop_flush(L);
	ck_assert_uint_eq(cr.drained, 2);

	/* Lingering: the close deadline is set from the settings, and the queue flushed. */
	ck_assert_int_eq(outq_append2(&c->out, "bye", 3, NULL, 0), 0);
	loop_linger(L, c);
	ck_assert_uint_eq(c->state, CONN_LINGER);
	ck_assert_uint_eq(c->deadline, loop_now(L) + cfg.close_ms);
	loop_flush(L);
	ck_assert_uint_eq(cr.drained, 3);
	ck_assert_int_eq(read(peer, buf, sizeof(buf)), 3);
	close(peer);
}
END_TEST

static int fl_peer;
static struct conn *fl_conn;
static size_t fl_got, fl_total;

static void read_peer(void)
{
	static uint8_t buf[65536];
	ssize_t r;
	while ((r = read(fl_peer, buf, sizeof(buf))) > 0) {
		for (ssize_t i = 0; i < r; i++)
			REQUIRE(buf[i] == (uint8_t)(fl_got + (size_t)i));
		fl_got += (size_t)r;
	}
}

static void stop_when_drained(struct conn *c)
{
	(void)c;
	loop_stop(L);
}

START_TEST(test_flush_waits_for_room)
{
	/* A queue larger than the socket takes: EPOLLOUT is armed, the loop writes the rest
	 * as room comes, and disarms it once drained. */
	int one = 1;
	uint8_t *big;

	mk_loop(4000);
	add_hooks();
	th.timeout = 50;
	fl_conn = conn_pair(&fl_peer);
	ck_assert_int_eq(setsockopt(fl_conn->fd, SOL_SOCKET, SO_SNDBUF, &one, sizeof(one)), 0);
	fl_total = 1u << 20;
	big = malloc(fl_total);
	for (size_t i = 0; i < fl_total; i++)
		big[i] = (uint8_t)i;
	ck_assert_int_eq(outq_append2(&fl_conn->out, big, 100, big + 100, fl_total - 100), 0);
	free(big);
	loop_mark(L, fl_conn);
	loop_flush(L);
	ck_assert_uint_eq(cr.drained, 0);
	ck_assert(fl_conn->flags & CONN_POLLOUT);
	ck_assert_uint_gt(fl_conn->out.bytes, 0);

	th.on_poll = read_peer; /* the client reads between iterations */
	cr.on_drained = stop_when_drained;
	ck_assert_int_eq(loop_run(L), 0);
	read_peer();
	ck_assert_uint_eq(fl_got, fl_total);
	ck_assert_uint_eq(cr.drained, 1);
	ck_assert(!(fl_conn->flags & CONN_POLLOUT));
	/* The loop learned of the room through the connection's events. */
	ck_assert_uint_gt(cr.events, 0);
	ck_assert(cr.last_events & EPOLLOUT);
	close(fl_peer);
}
END_TEST

static int ev_peer;

/* Answers each request as the session would: queue and mark. */
static void answer(struct conn *c, uint32_t ev)
{
	char buf[16];
	if (ev & EPOLLIN) {
		ck_assert_int_eq(read(c->fd, buf, sizeof(buf)), 4);
		ck_assert_int_eq(outq_append2(&c->out, "pong", 4, NULL, 0), 0);
		loop_mark(L, c);
	}
}

static void flush_sees_nothing_written(void)
{
	/* The hooks' flush comes before client output. */
	if (cr.events)
		ck_assert_int_eq(pending_bytes(ev_peer), 0);
}

static void drained_after_write(struct conn *c)
{
	(void)c;
	ck_assert_int_eq(pending_bytes(ev_peer), 4);
	loop_stop(L);
}

START_TEST(test_event_then_flush)
{
	mk_loop(4000);
	add_hooks();
	th.timeout = 50;
	struct conn *c = conn_pair(&ev_peer);
	cr.on_event = answer;
	cr.on_drained = drained_after_write;
	th.on_flush = flush_sees_nothing_written;
	ck_assert_int_eq(write(ev_peer, "ping", 4), 4);
	ck_assert_int_eq(loop_run(L), 0);
	ck_assert_uint_eq(cr.events, 1);
	ck_assert_ptr_eq(cr.last, c);
	/* Within one iteration: the event, the hooks' flush, then the write and drained. */
	ck_assert_ptr_nonnull(strstr(trace, "CFD"));
	close(ev_peer);
}
END_TEST

START_TEST(test_dead_peer_found_by_flush)
{
	/* The peer is gone: epoll says hang-up; the loop treats it as writable too, so the
	 * flush meets the error and closes the connection even if the event handler did not
	 * look. */
	int peer;

	mk_loop(4000);
	add_hooks();
	th.timeout = 50;
	th.stop_at = 2;
	struct conn *c = conn_pair(&peer);
	uint64_t id = c->id;
	ck_assert_int_eq(outq_append2(&c->out, "late", 4, NULL, 0), 0);
	close(peer);
	ck_assert_int_eq(loop_run(L), 0);
	ck_assert_uint_eq(cr.events, 1);
	ck_assert(cr.last_events & (EPOLLHUP | EPOLLRDHUP));
	ck_assert_uint_eq(cr.closings, 1);
	ck_assert_ptr_nonnull(strstr(trace, "CFX"));
	rcu_read_lock();
	ck_assert_ptr_null(conn_lookup(id));
	rcu_read_unlock();
	ck_assert_uint_eq(conn_count(), 0);
}
END_TEST

/* ---- closing ---- */

static struct conn *in_map(uint64_t id)
{
	rcu_read_lock();
	struct conn *c = conn_lookup(id);
	rcu_read_unlock();
	return c;
}

START_TEST(test_close)
{
	int peer;
	char b;

	mk_loop(4000);
	struct conn *c = conn_pair(&peer);
	int fd = c->fd;
	uint64_t id = c->id;
	ck_assert_int_eq(outq_append2(&c->out, "x", 1, NULL, 0), 0);
	loop_close(L, c, "test");
	ck_assert_uint_eq(cr.closings, 1);
	ck_assert_uint_eq(c->state, CONN_DEAD);
	ck_assert_int_eq(c->fd, -1);
	ck_assert_int_eq(fcntl(fd, F_GETFD), -1); /* the socket is closed now... */
	ck_assert_int_eq(read(peer, &b, 1), 0);   /* ...as its peer sees */
	loop_close(L, c, "again");
	ck_assert_uint_eq(cr.closings, 1);
	/* ...but the struct lives until the end of the batch. */
	ck_assert_ptr_eq(in_map(id), c);
	ck_assert_uint_eq(conn_count(), 1);
	loop_flush(L);
	ck_assert_ptr_null(in_map(id));
	ck_assert_uint_eq(conn_count(), 0);
	ck_assert_uint_eq(cr.drained, 0); /* a dead connection is freed, not flushed */
	close(peer);
}
END_TEST

static struct conn *pair_c[2];
static uint64_t pair_id[2];

static void close_the_other(struct conn *c, uint32_t ev)
{
	(void)ev;
	struct conn *o = c == pair_c[0] ? pair_c[1] : pair_c[0];
	ck_assert(c != o);
	loop_close(L, o, "closed by the other");
}

/* In the hooks' flush at the end of the batch, both are still allocated. */
static void both_allocated(void)
{
	if (cr.events) {
		ck_assert_ptr_eq(in_map(pair_id[0]), pair_c[0]);
		ck_assert_ptr_eq(in_map(pair_id[1]), pair_c[1]);
		ck_assert_uint_eq(conn_count(), 2);
	}
}

START_TEST(test_close_in_batch)
{
	/* Both sockets are readable in the same batch; whichever comes first closes the
	 * other, whose event from that batch must not be dispatched. */
	int peer[2];

	mk_loop(4000);
	add_hooks();
	th.timeout = 50;
	th.stop_at = 1;
	for (int i = 0; i < 2; i++) {
		pair_c[i] = conn_pair(&peer[i]);
		pair_id[i] = pair_c[i]->id;
		ck_assert_int_eq(write(peer[i], "r", 1), 1);
	}
	cr.on_event = close_the_other;
	th.on_flush = both_allocated;
	ck_assert_int_eq(loop_run(L), 0);
	ck_assert_uint_eq(cr.events, 1);
	ck_assert_uint_eq(cr.closings, 1);
	struct conn *dead = cr.last;
	ck_assert_uint_eq(conn_count(), 1);
	/* The dead one is gone from the map, the survivor is not. */
	int d = dead == pair_c[0] ? 0 : 1;
	ck_assert_ptr_null(in_map(pair_id[d]));
	ck_assert_ptr_eq(in_map(pair_id[!d]), pair_c[!d]);
	close(peer[0]);
	close(peer[1]);
}
END_TEST

START_TEST(test_close_all)
{
	int peer[5];

	mk_loop(4000);
	for (int i = 0; i < 5; i++)
		conn_pair(&peer[i]);
	ck_assert_uint_eq(conn_count(), 5);
	loop_close_all(L);
	ck_assert_uint_eq(cr.closings, 5);
	ck_assert_uint_eq(conn_count(), 0);
	for (int i = 0; i < 5; i++) {
		char b;
		ck_assert_int_eq(read(peer[i], &b, 1), 0);
		close(peer[i]);
	}
}
END_TEST

/* ---- the sweep ---- */

static struct conn *late, *early;

START_TEST(test_sweep_deadlines)
{
	int pl, pe;

	mk_loop(40); /* sweep every 10 ms */
	add_hooks();
	th.timeout = -1;
	th.stop_at_tick = 3;
	late = conn_pair(&pl);
	early = conn_pair(&pe);
	late->deadline = 0;                /* passed at the first sweep */
	early->deadline = 1000000000u;     /* far ahead */
	ck_assert_int_eq(loop_run(L), 0);
	/* Passed deadlines are handled on the sweep, before the tick of that sweep. */
	ck_assert_uint_eq(cr.deadlines, 1);
	ck_assert_ptr_eq(cr.last, late);
	ck_assert_ptr_nonnull(strstr(trace, "FLTF"));
	ck_assert_int_eq(th.ticks, 3);
	int n;
	iterations_match("^PFOS?WF(L*TF)?$", &n);
	close(pl);
	close(pe);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("loop");
	TCase *tc = tcase_create("iteration");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 20);
	tcase_add_test(tc, test_iteration_order);
	tcase_add_test(tc, test_poll_work_keeps_awake);
	tcase_add_test(tc, test_sleep_veto);
	tcase_add_test(tc, test_timeout_ms_bounds_the_wait);
	tcase_add_test(tc, test_hooks_limit);
	tcase_add_test(tc, test_stop_ends_run_after_the_iteration);
	tcase_add_test(tc, test_stop_in_poll_does_not_sleep);
	tcase_add_test(tc, test_sources);
	suite_add_tcase(s, tc);

	tc = tcase_create("conns");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 20);
	tcase_add_test(tc, test_mark_and_flush);
	tcase_add_test(tc, test_flush_waits_for_room);
	tcase_add_test(tc, test_event_then_flush);
	tcase_add_test(tc, test_dead_peer_found_by_flush);
	tcase_add_test(tc, test_close);
	tcase_add_test(tc, test_close_in_batch);
	tcase_add_test(tc, test_close_all);
	tcase_add_test(tc, test_sweep_deadlines);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
