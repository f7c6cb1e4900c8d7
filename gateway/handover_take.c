#include "gateway/handover_run.h"
#include "gateway/conn.h"
#include "gateway/control.h"
#include "gateway/pool.h"
#include "gateway/session.h"
#include "gateway/handover.h"
#include "gateway/handover_chan.h"
#include "gateway/handover_loops.h"
#include "gateway/handover_sess.h"
#include "gateway/history.h"
#include "gateway/log.h"
#include "gateway/loop.h"
#include "gateway/loops.h"
#include "gateway/sdnotify.h"
#include "gateway/supervise.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

/* The new side: the listeners before setup, the connections after it. */

static void refuse(int chan, const char *why)
{
	log_error(0, "upgrade: refusing the hand-over: %s", why);
	ho__send_simple(chan, HO_VERSION, HO_REFUSE, why, strlen(why), ho__now_ms() + 1000);
}

/* Which format versions this binary reads: a test makes it another's. */
static int reads_version(unsigned v, char *why, size_t cap)
{
	const char *t = getenv("WSGW_HANDOVER_TEST_VERSION");
	unsigned lo = HO_VERSION_MIN, hi = HO_VERSION;
	if (t && *t)
		lo = hi = (unsigned)strtoul(t, NULL, 10);
	if (v >= lo && v <= hi)
		return 1;
	snprintf(why, cap, "hand-over format version %u is not one this binary reads (%u..%u)", v, lo, hi);
	return 0;
}

int ho_inherit(struct gw_config *cfg)
{
	const char *e = getenv("WSGW_HANDOVER_FD");
	if (!e || !*e)
		return -1;
	int chan = atoi(e);
	unsetenv("WSGW_HANDOVER_FD"); /* not for the workers, nor for this one's own upgrade */
	sdn_adopt_watchdog();
	if (chan < 3 || fcntl(chan, F_SETFD, FD_CLOEXEC) < 0) {
		log_error(0, "WSGW_HANDOVER_FD=%s: not a descriptor of this process", e);
		return -EBADF;
	}
	uint8_t *buf = malloc(MSG_MAX);
	char why[300] = "";
	struct ho_hdr h;
	int fds[HO_FDS_MAX], nfds = 0, rc = buf ? 0 : -ENOMEM;
	if (rc == 0)
		rc = ho__recv_msg(chan, buf, &h, fds, &nfds, ho__now_ms() + STEP_MS);
	if (rc == 0 && h.type != HO_HELLO)
		rc = -EPROTO;
	if (rc == 0 && !reads_version(h.version, why, sizeof(why)))
		rc = -EPROTONOSUPPORT;
	struct ho_hello hello;
	if (rc == 0 && ho_get_hello(buf + HO_HDR, h.len, &hello))
		rc = -EBADMSG;
	for (int i = 0; i < nfds; i++)
		close(fds[i]);
	nfds = 0;
	if (rc == 0)
		rc = ho__recv_msg(chan, buf, &h, fds, &nfds, ho__now_ms() + STEP_MS);
	if (rc == 0 && (h.type != HO_LISTEN || (unsigned)nfds < hello.count)) /* then the workers' */
		rc = -EPROTO;
	int want = cfg->n_listen + (cfg->admin.len != 0), have = 0;
	for (int i = 0, off = 0; rc == 0 && i < nfds; i++) {
		struct ho_listen l;
		size_t used;
		if (ho_get_listen(buf + HO_HDR + off, h.len - (size_t)off, &l, &used)) {
			rc = -EBADMSG;
			break;
		}
		off += (int)used;
		have += l.admin <= HO_L_ADMIN;
	}
	if (rc == 0 && have != want) {
		snprintf(why, sizeof(why), "the running gateway has %d listeners (admin included), this configuration %d: restart instead",
			 have, want);
		rc = -EINVAL;
	}
	int *worker_fd[5] = { &cfg->inherit_lock_fd, &cfg->inherit_control_fd, &cfg->inherit_attach_fd,
			      &cfg->inherit_bell_fd, &cfg->inherit_efd };
	for (int i = 0, off = 0; rc == 0 && i < nfds; i++) {
		struct ho_listen l;
		size_t used;
		if (ho_get_listen(buf + HO_HDR + off, h.len - (size_t)off, &l, &used)) {
			rc = -EBADMSG;
			break;
		}
		off += (int)used;
		if ((l.admin == HO_L_BELL || l.admin == HO_L_EVFD) && l.index) {
			/* Another loop's (spread-workers): that loop's setup uses them, or closes
			 * them when this configuration has no such loop; its workers are refused
			 * then (import_workers). */
			if (l.index >= LOOPS_MAX) {
				rc = -EBADMSG;
				break;
			}
			(l.admin == HO_L_BELL ? cfg->inherit_loop_bell : cfg->inherit_loop_efd)[l.index] = fds[i];
		} else if (l.admin >= HO_L_LOCK) {
			/* Workers' descriptors: used by the setup if this configuration has worker
			 * pools (a connection on a worker route needs them, else it is refused). */
			*worker_fd[l.admin - HO_L_LOCK] = fds[i];
		} else if (l.admin && cfg->admin.len) {
			cfg->admin.inherit_fd = fds[i];
		} else if (!l.admin && l.index < cfg->n_listen && cfg->listen[l.index].tls == l.tls) {
			cfg->listen[l.index].inherit_fd = fds[i];
		} else {
			snprintf(why, sizeof(why), "listener %u of the running gateway has no twin in this configuration: restart instead",
				 l.index);
			rc = -EINVAL;
		}
	}
	free(buf);
	if (rc) {
		for (int i = 0; i < nfds; i++)
			close(fds[i]);
		if (!why[0])
			snprintf(why, sizeof(why), "reading the running gateway's hello: %s", strerror(-rc));
		refuse(chan, why);
		close(chan);
		return rc;
	}
	log_info("upgrade: taking over from pid %u (format version %u)", hello.pid, h.version);
	return chan;
}

/* Reads a batch's section whole: the CONNS message's rest, then DATA. */
static int read_section(int chan, uint8_t *buf, const struct ho_hdr *h, struct ho_buf *sec, uint32_t *count)
{
	struct ho_batch bt;
	if (h->len < HO_BATCH || ho_get_batch(buf + HO_HDR, HO_BATCH, &bt) || bt.bytes > ((uint64_t)1 << 40))
		return -EBADMSG;
	*count = bt.count;
	sec->len = 0;
	free(sec->p);
	sec->p = malloc(bt.bytes ? bt.bytes : 1);
	sec->cap = bt.bytes;
	if (!sec->p)
		return -ENOMEM;
	size_t first = h->len - HO_BATCH;
	if (first > bt.bytes)
		return -EBADMSG;
	memcpy(sec->p, buf + HO_HDR + HO_BATCH, first);
	sec->len = first;
	while (sec->len < bt.bytes) {
		struct ho_hdr d;
		int fds[HO_FDS_MAX], nfds;
		int rc = ho__recv_msg(chan, buf, &d, fds, &nfds, ho__now_ms() + STEP_MS);
		for (int i = 0; i < nfds; i++)
			close(fds[i]);
		if (rc)
			return rc;
		if (d.type != HO_DATA || nfds || d.len > bt.bytes - sec->len)
			return -EBADMSG;
		memcpy(sec->p + sec->len, buf + HO_HDR, d.len);
		sec->len += d.len;
	}
	return 0;
}

/* Takes one record of a section at p[0..n) with its descriptor fd (closed by it on
 * failure), its size into *used. 0, or -errno with *no naming why when it can. */
typedef int take_fn(void *arg, const uint8_t *p, size_t n, int fd, size_t *used, const char **no);

/* A section of one record per descriptor (CONNS, PROGS): each to take, in order, then an
 * ACK. 0 or -errno (why says which record of what); every descriptor is taken or closed. */
static int take_section(int chan, uint8_t *buf, const struct ho_hdr *h, int *fds, int nfds,
			struct ho_buf *sec, const char *what, take_fn *take, void *arg, char *why, size_t cap)
{
	uint32_t count = 0;
	int rc = read_section(chan, buf, h, sec, &count);
	if (rc == 0 && count != (uint32_t)nfds)
		rc = -EBADMSG;
	size_t off = 0;
	int i = 0;
	for (; rc == 0 && i < nfds; i++) {
		size_t used = 0;
		const char *no = NULL;
		rc = take(arg, sec->p + off, sec->len - off, fds[i], &used, &no);
		if (rc) {
			snprintf(why, cap, "%s record %d: %s", what, i, no ? no : strerror(-rc));
			i++;
			break;
		}
		off += used;
	}
	for (; i < nfds; i++)
		close(fds[i]); /* the rest of a section that failed */
	if (rc == 0)
		rc = ho__send_simple(chan, HO_VERSION, HO_ACK, NULL, 0, ho__now_ms() + STEP_MS);
	return rc;
}

/* What has been imported so far (each on the loop it was imported on: conn_loop). */
struct got {
	struct conn **v;
	size_t n, cap;
};

static int got_room(struct got *g, size_t more)
{
	if (g->n + more <= g->cap)
		return 0;
	size_t cap = (g->n + more) * 2;
	struct conn **v = realloc(g->v, cap * sizeof(*v));
	if (!v)
		return -ENOMEM;
	g->v = v;
	g->cap = cap;
	return 0;
}

/* Imports one CONNS batch (h, fds: its message) into g and ACKs it: every record read
 * first, then each run of records of one loop imported on that loop's thread. */
static int import_batch(const struct ho_parts *p, int chan, uint8_t *buf, const struct ho_hdr *h,
			int *fds, int nfds, struct ho_buf *sec, struct got *g, char *why, size_t cap)
{
	uint32_t count = 0;
	struct ho_conn *hc = nfds ? calloc((size_t)nfds, sizeof(*hc)) : NULL;
	int rc = read_section(chan, buf, h, sec, &count);
	if (rc == 0 && count != (uint32_t)nfds)
		rc = -EBADMSG;
	if (rc == 0 && ((nfds && !hc) || got_room(g, (size_t)nfds)))
		rc = -ENOMEM;
	size_t off = 0;
	int i = 0;
	for (int r = 0; rc == 0 && r < nfds; r++) {
		size_t used = 0;
		if ((rc = ho_get_conn(sec->p + off, sec->len - off, &hc[r], &used)) != 0)
			snprintf(why, cap, "connection record %d: %s", r, strerror(-rc));
		off += used;
	}
	while (rc == 0 && i < nfds) {
		int end = i + 1;
		while (end < nfds && hc[end].loop == hc[i].loop)
			end++;
		size_t done = 0;
		const char *no = NULL;
		rc = ho_in_conns(p->lps, hc[i].loop, &hc[i], &fds[i], (size_t)(end - i), &g->v[g->n], &done, &no);
		g->n += done;
		i += (int)done;
		if (rc) {
			snprintf(why, cap, "connection record %d: %s", i, no ? no : strerror(-rc));
			i++; /* its socket was closed */
		}
	}
	for (; i < nfds; i++)
		close(fds[i]); /* the rest of a batch that failed */
	free(hc);
	if (rc == 0)
		rc = ho__send_simple(chan, HO_VERSION, HO_ACK, NULL, 0, ho__now_ms() + STEP_MS);
	return rc;
}

/* The end, on every loop: what each imported starts (commit) or is forgotten; with
 * workers (and commit), its segments name this process. g is grouped by loop in place. */
static void end_loops(const struct ho_parts *p, struct got *g, int commit, int workers)
{
	size_t start = 0;
	for (unsigned k = 0; k < lps_count(p->lps); k++) {
		size_t j = start;
		for (size_t i = start; i < g->n; i++) {
			if (conn_loop(g->v[i]) != k)
				continue;
			struct conn *c = g->v[i];
			g->v[i] = g->v[j];
			g->v[j++] = c;
		}
		ho_in_end(p->lps, k, g->v + start, j - start, commit, workers, getpid());
		start = j;
	}
}

/* The WORKERS section: the next worker id, then a record per worker, each shm worker's
 * with its segment's fd (in the order of the records; a zmq worker has none); into the
 * pools and the control channel, then ACKed. */
static int import_workers(const struct ho_parts *p, int chan, uint8_t *buf, const struct ho_hdr *h,
			  int *fds, int nfds, struct ho_buf *sec, char *why, size_t cap)
{
	uint32_t count = 0, next = 0;
	int rc = read_section(chan, buf, h, sec, &count);
	if (rc == 0 && (count < (uint32_t)nfds || ho_get_u32(sec->p, sec->len, &next)))
		rc = -EBADMSG;
	if (rc == 0 && !p->ctl) {
		snprintf(why, cap, "the running gateway has workers, this configuration no worker pool: restart instead");
		rc = -EINVAL;
	}
	size_t off = 4;
	int fi = 0; /* the next shm worker's descriptor */
	for (uint32_t i = 0; rc == 0 && i < count; i++) {
		struct ho_worker hw;
		size_t used;
		const char *no = NULL;
		rc = ho_get_worker(sec->p + off, sec->len - off, &hw, &used);
		if (rc == 0 && !hw.zmq && fi == nfds)
			rc = -EBADMSG; /* a segment short */
		if (rc == 0 && hw.zmq) {
			struct pool_link link;
			ctl_ho_link(p->ctl, hw.ident.p, hw.ident.n, &link);
			rc = pool_ho_import_zmq(sess_pools(p->sess), &hw, &link, &no);
		} else if (rc == 0) {
			rc = ho_in_worker(p->lps, hw.loop, &hw, fds[fi++], &no);
		}
		if (rc == 0 && (rc = ctl_ho_adopt(p->ctl, hw.id, (pid_t)hw.pid, hw.ident.p, hw.ident.n, hw.zmq,
						  hw.loop)))
			no = "no room for its peer on the control socket";
		if (rc && no) { /* decoded: it can be named */
			snprintf(why, cap, "worker %u (pool %.*s) on loop %u: %s", (unsigned)hw.id, (int)hw.pool.n,
				 (const char *)hw.pool.p, (unsigned)hw.loop, no);
			break;
		}
		if (rc) {
			snprintf(why, cap, "worker record %u: %s", i, strerror(-rc));
			break;
		}
		off += used;
	}
	if (rc == 0 && fi != nfds)
		rc = -EBADMSG; /* segments no record named */
	for (; fi < nfds; fi++)
		close(fds[fi]);
	if (rc == 0) {
		pool_ho_set_next_id(sess_pools(p->sess), next);
		rc = ho__send_simple(chan, HO_VERSION, HO_ACK, NULL, 0, ho__now_ms() + STEP_MS);
	}
	return rc;
}

/* One of the old's running [worker] instances, with its pidfd. */
static int take_prog(void *arg, const uint8_t *p, size_t n, int fd, size_t *used, const char **no)
{
	struct ho_prog g;
	int rc = ho_get_prog(p, n, &g, used);
	if (rc) {
		close(fd);
		return rc;
	}
	char name[HO_POOL_MAX + 1];
	memcpy(name, g.name.p, g.name.n);
	name[g.name.n] = 0;
	struct sup_moving m = { name, g.instance, (pid_t)g.pid, fd, g.ran_ms, g.restarts, g.delay_ms };
	return sup_ho_adopt(((const struct ho_parts *)arg)->sup, &m, no);
}

/* The HISTORY section: a topic count, then each topic's history with its messages. */
static int import_history(const struct ho_parts *p, int chan, uint8_t *buf, const struct ho_hdr *h,
			  int nfds, struct ho_buf *sec, char *why, size_t cap)
{
	uint32_t count = 0, topics = 0;
	int rc = read_section(chan, buf, h, sec, &count);
	if (rc == 0 && (nfds || ho_get_u32(sec->p, sec->len, &topics)))
		rc = -EBADMSG;
	uint32_t now = loop_now(p->loop);
	size_t off = 4;
	unsigned long gaps = 0, msgs = 0;
	for (uint32_t i = 0; rc == 0 && i < topics; i++) {
		struct ho_hist hh;
		size_t used = 0;
		memset(&hh, 0, sizeof(hh));
		rc = ho_get_hist(sec->p + off, sec->len - off, &hh, &used);
		struct hist_ho_topic t = { hh.topic.p, hh.topic.n, hh.epoch, hh.last, hh.quiet_ms, hh.max,
					   hh.ttl_ms };
		if (rc == 0)
			rc = hist_ho_adopt(&t, now);
		struct ho_hist_msg m;
		size_t mo = 0;
		int more;
		while (rc == 0 && (more = ho_next_hist_msg(&hh.msgs, &mo, &m)) != 0) {
			struct top_msg tm = { .topic = hh.topic.p, .tlen = hh.topic.n, .op = m.op, .p = m.payload.p,
					      .n = m.payload.n, .offset = m.offset, .epoch = hh.epoch,
					      .stamp = m.stamp };
			int e = more < 0 ? -EBADMSG : hist_ho_adopt_msg(&tm, m.age_ms, now);
			if (e == -ENOMEM || e == -ENOBUFS)
				gaps++; /* the history starts after it, as after a gap at publish */
			else
				rc = e;
			msgs++;
		}
		if (rc)
			snprintf(why, cap, "history record %u: %s", i, strerror(-rc));
		off += used;
	}
	if (rc == 0 && gaps)
		log_warn(0, "upgrade: %lu of the topics' %lu kept messages found no room (the memory budget): those histories start after them",
			 gaps, msgs);
	if (rc == 0)
		rc = ho__send_simple(chan, HO_VERSION, HO_ACK, NULL, 0, ho__now_ms() + STEP_MS);
	return rc;
}

/* After TAKEN the channel stays open for connections that were in their handshake. */
static struct {
	struct loop_src src;
	struct ho_parts p;
	int chan;
} follow = { .chan = -1 };

static void on_follow(struct loop_src *src, uint32_t events)
{
	(void)src;
	(void)events;
	uint8_t *buf = malloc(MSG_MAX);
	struct ho_hdr h;
	int fds[HO_FDS_MAX], nfds = 0;
	int rc = buf ? ho__recv_msg(follow.chan, buf, &h, fds, &nfds, ho__now_ms() + STEP_MS) : -ENOMEM;
	if (rc == 0 && h.type == HO_CONNS) {
		struct ho_buf sec = { 0 };
		struct got g = { 0 };
		char why[300] = "";
		rc = import_batch(&follow.p, follow.chan, buf, &h, fds, nfds, &sec, &g, why, sizeof(why));
		ho_buf_free(&sec);
		/* Imported and acknowledged: the old one forgets them now. */
		end_loops(&follow.p, &g, rc == 0, 0);
		if (rc)
			log_error(-rc, "upgrade: a late batch failed%s%s", why[0] ? ": " : "", why);
		else
			log_info("upgrade: took %zu connections that finished their handshake", g.n);
		free(g.v);
	} else {
		for (int i = 0; i < nfds; i++)
			close(fds[i]);
		if (rc == 0)
			rc = -EPROTO;
	}
	free(buf);
	if (rc) {
		loop_del(follow.p.loop, follow.chan);
		close(follow.chan);
		follow.chan = -1;
	}
}

int ho_take(const struct ho_parts *p, int chan)
{
	uint8_t *buf = malloc(MSG_MAX);
	struct ho_buf sec = { 0 };
	struct got g = { 0 };
	int fds[HO_FDS_MAX], nfds = 0;
	const char *crash = getenv("WSGW_HANDOVER_TEST_CRASH");
	char why[300] = "";
	struct ho_hello ready = { (uint32_t)getpid(), 0, 0 }, end;
	struct ho_buf m = { 0 };
	int rc = buf ? 0 : -ENOMEM;
	/* The other loops serve nothing until every connection is in (theirs too). */
	int held = rc == 0 ? lps_hold(p->lps) : -ENOMEM;
	if (rc == 0 && held)
		snprintf(why, sizeof(why), "out of memory holding the other loops");
	rc = rc ? rc : held;
	if (rc == 0 && (rc = ho_put_hdr(&m, HO_READY, 16)) == 0 && (rc = ho_put_hello(&m, &ready)) == 0)
		rc = ho__send_msg(chan, m.p, m.len, NULL, 0, ho__now_ms() + STEP_MS);
	ho_buf_free(&m);
	unsigned conns_batches = 0;
	while (rc == 0) {
		struct ho_hdr h;
		rc = ho__recv_msg(chan, buf, &h, fds, &nfds, ho__now_ms() + STEP_MS);
		if (rc)
			break;
		if (h.type == HO_END) {
			rc = ho_get_hello(buf + HO_HDR, h.len, &end) ? -EBADMSG : 0;
			break;
		}
		if (h.type == HO_HISTORY) {
			for (int i = 0; i < nfds; i++)
				close(fds[i]);
			rc = import_history(p, chan, buf, &h, nfds, &sec, why, sizeof(why));
			nfds = 0;
			continue;
		}
		if (h.type == HO_WORKERS || h.type == HO_PROGS) {
			rc = h.type == HO_WORKERS ? import_workers(p, chan, buf, &h, fds, nfds, &sec, why, sizeof(why))
			     : take_section(chan, buf, &h, fds, nfds, &sec, "worker instance", take_prog, (void *)p,
					    why, sizeof(why));
			nfds = 0;
			continue;
		}
		if (h.type != HO_CONNS) {
			rc = -EPROTO;
			break;
		}
		rc = import_batch(p, chan, buf, &h, fds, nfds, &sec, &g, why, sizeof(why));
		nfds = 0;
		if (rc == 0 && crash && *crash && conns_batches++ == 0)
			_exit(3); /* tests: a new binary that dies half way */
	}
	if (rc == 0) {
		conn_set_next_id(end.next_id);
		struct ho_buf t = { 0 };
		rc = ho_put_hdr(&t, HO_TAKEN, 0);
		if (rc == 0)
			rc = ho__send_msg(chan, t.p, t.len, NULL, 0, ho__now_ms() + STEP_MS);
		ho_buf_free(&t);
	}
	/* First thing: a worker that sees the old process gone finds this one named. */
	end_loops(p, &g, rc == 0, p->ctl != NULL);
	if (held == 0)
		lps_release(p->lps);
	if (rc == 0 && p->ctl)
		ctl_ho_started(p->ctl);
	if (rc) {
		/* Not a byte to any of them, nor a record to any worker: they are the old's. */
		sup_ho_forget(p->sup); /* the old's children: not a signal to them */
		log_error(-rc, "upgrade: taking the connections failed, the old process keeps them%s%s",
			  why[0] ? ": " : "", why);
		/* The old one waits for an ACK: the reason is its operator's answer. */
		if (why[0])
			ho__send_simple(chan, HO_VERSION, HO_REFUSE, why, strlen(why), ho__now_ms() + 1000);
	}
	if (rc == 0)
		log_info("upgrade: took %zu connections from pid %u", g.n, end.pid);
	follow.p = *p;
	follow.src.fn = on_follow;
	if (rc == 0 && loop_add(p->loop, chan, EPOLLIN, &follow.src) == 0)
		follow.chan = chan;
	else
		close(chan);
	free(buf);
	free(g.v);
	ho_buf_free(&sec);
	return rc;
}

