#include "gateway/handover_run.h"
#include "gateway/admin.h"
#include "gateway/conn.h"
#include "gateway/control.h"
#include "gateway/handover.h"
#include "gateway/handover_chan.h"
#include "gateway/handover_loops.h"
#include "gateway/handover_out.h"
#include "gateway/handover_sess.h"
#include "gateway/listener.h"
#include "gateway/log.h"
#include "gateway/loop.h"
#include "gateway/loops.h"
#include "gateway/pool.h"
#include "gateway/sdnotify.h"
#include "gateway/session.h"
#include "gateway/supervise.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <unistd.h>
#include <urcu/compiler.h>

/* Batches sent before the first ACK is awaited (at 253 sockets each). */
#define ACK_WINDOW 8
/* How long the zmq workers have to say MOVED (the old process serves meanwhile; only
 * those workers' clients wait, for their round trip). */
#define MOVE_MS 2000

/* ---------------- the old side ---------------- */

static int send_listeners(const struct ho_parts *p, int chan)
{
	struct ho_buf b = { 0 };
	int fds[CFG_MAX_LISTEN + 4 + 2 * LOOPS_MAX], n = 0;
	int rc = ho_put_hdr(&b, HO_LISTEN, 0);
	for (int i = 0; rc == 0 && i < lsn_count(p->lsn); i++) {
		struct ho_listen l = { 0, (uint8_t)i, p->cfg->listen[i].tls };
		rc = ho_put_listen(&b, &l);
		fds[n++] = lsn_fd(p->lsn, i);
	}
	if (rc == 0 && p->admin && admin_listen_fd(p->admin) >= 0) {
		struct ho_listen l = { 1, 0, 0 };
		rc = ho_put_listen(&b, &l);
		fds[n++] = admin_listen_fd(p->admin);
	}
	/* With workers: what the new process needs before its setup, instead of making it;
	 * the doorbell and eventfd of each loop whose pools make them (spread-workers). */
	int wfd[3] = { p->lock_fd, -1, -1 };
	if (p->ctl)
		ctl_ho_fds(p->ctl, &wfd[1], &wfd[2]);
	for (int i = 0; rc == 0 && p->ctl && i < 3; i++) {
		if (wfd[i] < 0)
			continue;
		struct ho_listen l = { (uint8_t)(HO_L_LOCK + i), 0, 0 };
		rc = ho_put_listen(&b, &l);
		fds[n++] = wfd[i];
	}
	for (unsigned k = 0; rc == 0 && p->ctl && k < lps_count(p->lps); k++) {
		int bell[2];
		ho_side_bells(p->lps, k, &bell[0], &bell[1]);
		for (int i = 0; rc == 0 && i < 2; i++) {
			if (bell[i] < 0)
				continue;
			struct ho_listen l = { (uint8_t)(HO_L_BELL + i), (uint8_t)k, 0 };
			rc = ho_put_listen(&b, &l);
			fds[n++] = bell[i];
		}
	}
	if (rc == 0) {
		size_t body = b.len - HO_HDR;
		for (int i = 0; i < 4; i++)
			b.p[8 + i] = (uint8_t)(body >> (8 * i));
		rc = ho__send_msg(chan, b.p, b.len, fds, n, ho__now_ms() + STEP_MS);
	}
	ho_buf_free(&b);
	return rc;
}

/* The workers, before the connections that are pinned to them: every loop's, each with
 * its segment, what is held for it, and a CLOSE for each client of its that stays here.
 * One message and its ACK. */
static int send_workers(const struct ho_parts *p, int chan, uint8_t *buf, struct ho_side *sd,
			char *why, size_t cap)
{
	struct ho_buf sec = { 0 };
	int fds[HO_FDS_MAX];
	struct pool_ho_out out = { &sec, fds, 0, HO_FDS_MAX, 0 };
	int rc = ho_put_u32(&sec, pool_ho_next_id(sess_pools(p->sess)));
	for (unsigned k = 0; rc == 0 && k < lps_count(p->lps); k++)
		rc = ho_side_workers(p->lps, k, &sd[k], p->ctl, &out, why, cap);
	if (rc == 0 && out.nrec > HO_FDS_MAX) {
		snprintf(why, cap, "%u workers: at most %d move in a live upgrade", out.nrec, HO_FDS_MAX);
		rc = -E2BIG;
	}
	if (rc == 0)
		rc = ho__send_section(chan, HO_WORKERS, sec.p, sec.len, out.nrec, fds, out.nfds);
	if (rc == 0)
		rc = ho__expect(chan, buf, HO_ACK, why, cap);
	ho_buf_free(&sec);
	return rc;
}

/* An upgrade under way: from the spawn to the READY that the loop waits for. */
struct ho_up {
	struct loop_src src;   /* the channel; first, as the loop wants */
	struct loop_src timer_src;
	struct ho_parts p;
	ho_done_fn *done;
	void *arg;
	int chan, timer;
	pid_t pid;
	uint64_t t0;
	int moving;          /* READY came; the zmq workers' MOVED are awaited */
	int moved_sent;      /* MOVE went out: a failure sends RESUME */
	uint64_t move_until, t_move;
};

static struct ho_up *cur; /* one at a time */

static void finish(struct ho_up *u, int rc, struct ho_result *res, char *why)
{
	loop_del(u->p.loop, u->chan);
	close(u->chan);
	if (u->timer >= 0) {
		loop_del(u->p.loop, u->timer);
		close(u->timer);
	}
	cur = NULL;
	ho_done_fn *done = u->done;
	void *arg = u->arg;
	free(u);
	done(arg, rc, res, why);
}

/* The synchronous part, once the new process is ready: every connection, then END. */
static int transfer(struct ho_up *u, uint8_t *buf, struct ho_result *res, char *why, size_t cap,
		    int *mainpid_moved)
{
	const struct ho_parts *p = &u->p;
	unsigned nl = lps_count(p->lps);
	struct ho_side sd[LOOPS_MAX];
	memset(sd, 0, sizeof(sd));
	size_t n_sent = 0;
	struct ho_buf sec = { 0 };
	unsigned unacked = 0;
	uint64_t t_ready = ho__now_ms(), t_conns;
	/* From here to TAKEN this call is the only thing this process does: no client socket
	 * is read, nor any worker's ring, on any loop (the others are held), so every byte is
	 * either in what we send or still in the kernel or the rings. */
	int held = lps_hold(p->lps);
	int rc = held;
	if (rc)
		snprintf(why, cap, "out of memory holding the other loops");
	for (unsigned k = 0; rc == 0 && k < nl; k++)
		if ((rc = ho_side_collect(p->lps, k, p->ctl != NULL, &sd[k])) != 0)
			snprintf(why, cap, "out of memory");
	if (rc || (rc = ho_out_progs(p, u->chan, buf, why, cap)) != 0 ||
	    (rc = ho_out_history(p, u->chan, buf, why, cap)) != 0)
		goto out;
	if (p->ctl && (rc = send_workers(p, u->chan, buf, sd, why, cap)) != 0)
		goto out;
	for (unsigned k = 0; k < nl; k++) {
		while (sd[k].next < sd[k].n) {
			int fds[HO_FDS_MAX], nfds = 0;
			sec.len = 0;
			if ((rc = ho_side_conns(p->lps, k, &sd[k], &sec, fds, &nfds, res, why, cap)) != 0)
				goto out;
			if (!nfds)
				break;
			rc = ho__send_section(u->chan, HO_CONNS, sec.p, sec.len, (unsigned)nfds, fds, nfds);
			/* Batches are pipelined: a round trip per batch, with both processes sharing
			 * two cores with the clients, cost more than the batches themselves. */
			if (rc == 0 && ++unacked > ACK_WINDOW) {
				rc = ho__expect(u->chan, buf, HO_ACK, why, cap);
				unacked--;
			}
			if (rc)
				goto out;
		}
		n_sent += sd[k].n_sent;
	}
	for (; rc == 0 && unacked; unacked--)
		rc = ho__expect(u->chan, buf, HO_ACK, why, cap);
	if (rc)
		goto out;
	t_conns = ho__now_ms();
	/* systemd follows the new process from before it can say READY (it answers END
	 * first): its notifications are accepted as the main process's. */
	sdn_mainpid((int)u->pid, "upgrading");
	*mainpid_moved = 1;
	struct ho_hello end = { (uint32_t)getpid(), (uint32_t)n_sent, conn_next_id() };
	sec.len = 0;
	rc = ho_put_hdr(&sec, HO_END, 16);
	if (rc == 0)
		rc = ho_put_hello(&sec, &end);
	if (rc == 0)
		rc = ho__send_msg(u->chan, sec.p, sec.len, NULL, 0, ho__now_ms() + STEP_MS);
	if (rc == 0)
		rc = ho__expect(u->chan, buf, HO_TAKEN, why, cap);
	if (rc)
		goto out;
	uint64_t t_taken = ho__now_ms();
	/* Committed: the new process serves them now. What is left here is cleanup (a
	 * syscall or two per connection) and the connections that stay, which drain: the
	 * new process's start, on the same cores, goes first. */
	if (setpriority(PRIO_PROCESS, 0, 19) < 0)
		log_warn(errno, "upgrade: setpriority");
	for (unsigned k = 0; k < nl; k++)
		ho_side_forget(p->lps, k, &sd[k], p->ctl != NULL, u->pid);
	if (p->ctl)
		ctl_ho_hand_off(p->ctl);
	sup_ho_forget(p->sup);
	lsn_close(p->lsn);
	if (p->admin)
		admin_stop_listening(p->admin);
	uint64_t t_end = ho__now_ms();
	res->pid = (unsigned)u->pid;
	res->handed = n_sent;
	res->ms = (unsigned)(t_taken - u->t0);
	res->pause_ms = (unsigned)(t_taken - t_ready);
	log_info("upgrade: pid %d took %lu connections and the listeners in %u ms (started in %u, "
		 "connections in %u, committed in %u: clients paused %u ms; %llu bytes queued for clients, "
		 "%lu messages or frames under way; cleaned up here in %u ms); %lu stay here and drain",
		 (int)u->pid, res->handed, res->ms, (unsigned)(t_ready - u->t0), (unsigned)(t_conns - t_ready),
		 (unsigned)(t_taken - t_conns), res->pause_ms, res->queued, res->partial,
		 (unsigned)(t_end - t_taken), res->kept);
out:
	if (held == 0)
		lps_release(p->lps);
	for (unsigned k = 0; k < nl; k++)
		ho_side_free(&sd[k]);
	ho_buf_free(&sec);
	return rc;
}

/* ---- after TAKEN: handshakes that were under way follow as they open ---- */

/* The upgrade whose channel stays open for them, and until when (loop clock). */
static struct ho_up *late;
static uint32_t late_until;

struct late_scan {
	struct ho_up *u;
	struct conn *v[HO_FDS_MAX];
	int n;
	unsigned waiting;
};

static void late_one(struct conn *c, void *arg)
{
	struct late_scan *k = arg;
	if (c->state == CONN_HANDSHAKE && !c->tls)
		k->waiting++;
	else if (c->state == CONN_OPEN && k->n < HO_FDS_MAX)
		k->v[k->n++] = c;
}

static void late_end(const char *why)
{
	struct ho_up *u = late;
	late = NULL;
	loop_del(u->p.loop, u->chan);
	close(u->chan);
	loop_del(u->p.loop, u->timer);
	close(u->timer);
	log_info("upgrade: late hand-over of handshakes in progress ends: %s", why);
	free(u);
}

/* Every 10 ms: the ones that opened go over (one batch, each with its socket); one that
 * cannot move drains with 1001 like the others that stayed. */
static void late_step(void)
{
	struct ho_up *u = late;
	struct late_scan k = { .u = u };
	conn_for_each(late_one, &k);
	if (k.n) {
		struct ho_buf sec = { 0 };
		int fds[HO_FDS_MAX], nfds = 0, rc = 0;
		struct conn *sent[HO_FDS_MAX];
		for (int i = 0; i < k.n && rc == 0; i++) {
			const char *no;
			int e = sess_ho_export(u->p.sess, k.v[i], &sec, &no);
			if (e == -EAGAIN) {
				sess_close(u->p.sess, k.v[i], 1001, "server restarting");
			} else if (e) {
				rc = e;
			} else {
				sent[nfds] = k.v[i];
				fds[nfds++] = k.v[i]->fd;
			}
		}
		char why[300] = "";
		uint8_t *buf = rc == 0 && nfds ? malloc(MSG_MAX) : NULL;
		if (rc == 0 && nfds)
			rc = buf ? ho__send_section(u->chan, HO_CONNS, sec.p, sec.len, (unsigned)nfds, fds, nfds) : -ENOMEM;
		if (rc == 0 && nfds)
			rc = ho__expect(u->chan, buf, HO_ACK, why, sizeof(why));
		free(buf);
		ho_buf_free(&sec);
		if (rc) {
			/* They stay here and drain; the new process may have taken some: it got no
			 * commit for them and closes what it imported. */
			log_error(-rc, "upgrade: late hand-over failed%s%s", why[0] ? ": " : "", why);
			late_end("failed");
			return;
		}
		for (int i = 0; i < nfds; i++)
			sess_ho_forget(u->p.sess, sent[i]);
		if (nfds)
			log_info("upgrade: %d connections that were in their handshake followed", nfds);
	}
	if (k.waiting == 0)
		late_end("none left");
	else if ((int32_t)(loop_now(u->p.loop) - late_until) >= 0)
		late_end("handshake-timeout passed");
}

static void on_late_timer(struct loop_src *src, uint32_t events)
{
	(void)events;
	struct ho_up *u = caa_container_of(src, struct ho_up, timer_src);
	uint64_t n;
	if (read(u->timer, &n, sizeof(n)) < 0 && errno != EAGAIN)
		log_warn(errno, "read(timerfd)");
	late_step();
}

static void on_late_chan(struct loop_src *src, uint32_t events)
{
	(void)src;
	(void)events;
	late_end("the new process closed the channel");
}

static void count_waiting(struct conn *c, void *arg)
{
	if (c->state == CONN_HANDSHAKE && !c->tls)
		++*(unsigned *)arg;
}

/* 1 when handshakes in progress stay to follow: the channel and the timer stay. */
static int late_begin(struct ho_up *u)
{
	unsigned waiting = 0;
	conn_for_each(count_waiting, &waiting);
	struct itimerspec its = { .it_interval = { 0, 10000000L }, .it_value = { 0, 10000000L } };
	if (!waiting || timerfd_settime(u->timer, 0, &its, NULL) < 0)
		return 0;
	u->src.fn = on_late_chan;
	u->timer_src.fn = on_late_timer;
	late = u;
	late_until = loop_now(u->p.loop) + loop_cfg(u->p.loop)->handshake_ms + 1000;
	cur = NULL;
	log_info("upgrade: %u connections in their handshake follow when they open", waiting);
	return 1;
}

/* The upgrade succeeded and its channel stays open (late): tell the owner. */
static void done_only(struct ho_up *u, struct ho_result *res, char *why)
{
	u->done(u->arg, 0, res, why);
}

int ho_late_active(void)
{
	return late != NULL;
}

static void arm(struct ho_up *u, uint64_t ms)
{
	struct itimerspec its = { .it_value = { (time_t)(ms / 1000), (long)(ms % 1000) * 1000000L } };
	if (!ms)
		its.it_value.tv_nsec = 1;
	if (timerfd_settime(u->timer, 0, &its, NULL) < 0)
		log_warn(errno, "upgrade: timerfd_settime");
}

/* The control channel's poll step: the last MOVED came (or a wrong one). The transfer
 * runs from the timer's event, not inside the control channel's reading. */
static void on_moved(void *arg)
{
	arm(arg, 0);
}

/* READY came: the zmq workers are quiesced first, while this process serves on. 1 when
 * MOVE went to some (their MOVED is awaited), 0 when there are none. */
static int start_moving(struct ho_up *u)
{
	int n = u->p.ctl ? ctl_ho_move(u->p.ctl, on_moved, u) : 0;
	if (n <= 0)
		return 0;
	u->moving = u->moved_sent = 1;
	u->t_move = ho__now_ms();
	u->move_until = u->t_move + MOVE_MS;
	arm(u, MOVE_MS);
	log_info("upgrade: pid %d is ready; moving %d zmq workers first", (int)u->pid, n);
	return 1;
}

/* The MOVE phase, at the timer (armed at once by the last MOVED) or when the channel
 * spoke (the new process has nothing to say now: it died or refused). 1 when every
 * worker moved, 0 while waiting on, or -errno with why. */
static int moving_step(struct ho_up *u, int timed_out, uint8_t *buf, char *why, size_t cap)
{
	uint64_t n;
	if (read(u->timer, &n, sizeof(n)) < 0 && errno != EAGAIN)
		log_warn(errno, "read(timerfd)");
	if (!timed_out) {
		int rc = ho__expect(u->chan, buf, 0, why, cap);
		return rc ? rc : -EPROTO;
	}
	int rc = ctl_ho_moved(u->p.ctl, why, cap);
	uint64_t now = ho__now_ms();
	if (rc == 0 && now < u->move_until) {
		arm(u, u->move_until - now);
		return 0;
	}
	if (rc == 0) {
		char w[400];
		snprintf(w, sizeof(w), "%s", why);
		snprintf(why, cap, "no MOVED within %d s: %s", MOVE_MS / 1000, w);
		return -ETIMEDOUT;
	}
	if (rc == 1)
		log_info("upgrade: the zmq workers moved in %u ms", (unsigned)(now - u->t_move));
	return rc;
}

/* The channel said something (READY, REFUSE, or EOF), or the timer fired (timer set). */
static void step(struct ho_up *u, int timed_out)
{
	struct ho_result res;
	memset(&res, 0, sizeof(res));
	char why[600] = "";
	const char *when = "before it was ready";
	int mainpid_moved = 0, rc;
	uint8_t *buf = malloc(MSG_MAX);
	if (!buf) {
		snprintf(why, sizeof(why), "out of memory");
		rc = -ENOMEM;
	} else if (u->moving) {
		when = "while its zmq workers were being moved";
		rc = moving_step(u, timed_out, buf, why, sizeof(why));
		if (rc == 0) {
			free(buf);
			return; /* serving on */
		}
		if (rc == 1) {
			u->moving = 0;
			when = "while taking the connections";
			rc = transfer(u, buf, &res, why, sizeof(why), &mainpid_moved);
		}
	} else if (timed_out) {
		snprintf(why, sizeof(why), "no answer from the new process within %d s", STEP_MS / 1000);
		rc = -ETIMEDOUT;
	} else {
		rc = ho__expect(u->chan, buf, HO_READY, why, sizeof(why));
		if (rc == 0 && start_moving(u)) {
			free(buf);
			return;
		}
		if (rc == 0) {
			when = "while taking the connections";
			rc = transfer(u, buf, &res, why, sizeof(why), &mainpid_moved);
		}
	}
	if (rc == 0) {
		free(buf);
		if (late_begin(u)) {
			done_only(u, &res, why);
			return;
		}
		finish(u, 0, &res, why);
		return;
	}
	if (rc == -EPIPE && buf) {
		/* It may have refused before closing: its reason is still in the channel. */
		char w2[300] = "";
		if (ho__expect(u->chan, buf, HO_READY, w2, sizeof(w2)) == -EPROTONOSUPPORT) {
			rc = -EPROTONOSUPPORT;
			snprintf(why, sizeof(why), "%s", w2);
		}
	}
	free(buf);
	if (!why[0])
		snprintf(why, sizeof(why), "%s", strerror(-rc));
	if (rc == -EPIPE)
		why[0] = 0; /* the child's exit says more */
	if (mainpid_moved)
		sdn_mainpid((int)getpid(), "serving (the upgrade failed)");
	/* The zmq workers wait for a word: this process goes on serving them. */
	if (u->moved_sent)
		ctl_ho_resume(u->p.ctl);
	ho__reap(u->pid, why, sizeof(why), when);
	log_error(0, "upgrade failed, this process keeps serving every connection: %s", why);
	memset(&res, 0, sizeof(res));
	finish(u, rc, &res, why);
}

static void on_chan(struct loop_src *src, uint32_t events)
{
	(void)events;
	step((struct ho_up *)src, 0);
}

static void on_timer(struct loop_src *src, uint32_t events)
{
	(void)events;
	step(caa_container_of(src, struct ho_up, timer_src), 1);
}

int ho_upgrade(const struct ho_parts *p, const char *path, ho_done_fn *done, void *arg, char *why,
	       size_t cap)
{
	why[0] = 0;
	if (cur) {
		snprintf(why, cap, "an upgrade is under way (pid %d)", (int)cur->pid);
		return -EBUSY;
	}
	if (pool_serves_workers(sess_pools(p->sess)) || lps_spreads_workers(p->lps)) {
		int rc = p->ctl ? 0 : -EOPNOTSUPP;
		for (unsigned k = 0; rc == 0 && k < lps_count(p->lps); k++)
			rc = ho_side_check(p->lps, k, why, cap);
		if (rc == 0)
			rc = ctl_ho_check(p->ctl, why, cap);
		if (rc)
			return rc;
	}
	/* The new process would join Redis with this gateway's node id while this one still
	 * holds it, and its subscriptions and held publishes are not carried. */
	if (p->cfg->cluster.url[0]) {
		snprintf(why, cap, "this gateway is in a cluster ([cluster] redis), whose hand-over is "
				   "not done yet (docs/UPGRADE.md): restart it instead");
		return -EOPNOTSUPP;
	}
	struct ho_up *u = calloc(1, sizeof(*u));
	if (!u) {
		snprintf(why, cap, "out of memory");
		return -ENOMEM;
	}
	u->p = *p;
	u->done = done;
	u->arg = arg;
	u->timer = -1;
	u->t0 = ho__now_ms();
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) {
		snprintf(why, cap, "socketpair: %s", strerror(errno));
		free(u);
		return -errno;
	}
	int rc = ho__spawn(path, sv[1], &u->pid, why, cap);
	close(sv[1]);
	if (rc) {
		close(sv[0]);
		free(u);
		log_error(0, "upgrade failed, this process keeps serving every connection: %s", why);
		return rc;
	}
	u->chan = sv[0];
	log_info("upgrade: started %s as pid %d", path ? path : cfg_argv()[0], (int)u->pid);
	struct ho_hello hello = { (uint32_t)getpid(), (uint32_t)lsn_count(p->lsn) + (p->admin != NULL), 0 };
	struct ho_buf hb = { 0 };
	rc = ho_put_hdr(&hb, HO_HELLO, 16);
	if (rc == 0)
		rc = ho_put_hello(&hb, &hello);
	if (rc == 0)
		rc = ho__send_msg(u->chan, hb.p, hb.len, NULL, 0, ho__now_ms() + STEP_MS);
	ho_buf_free(&hb);
	if (rc == 0)
		rc = send_listeners(p, u->chan);
	/* The new process starts while this one serves: the loop tells when it answers. */
	struct itimerspec its = { .it_value = { STEP_MS / 1000, (STEP_MS % 1000) * 1000000L } };
	if (rc == 0 && ((u->timer = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC)) < 0 ||
			timerfd_settime(u->timer, 0, &its, NULL) < 0))
		rc = -errno;
	u->src.fn = on_chan;
	u->timer_src.fn = on_timer;
	if (rc == 0)
		rc = loop_add(p->loop, u->chan, EPOLLIN, &u->src);
	if (rc == 0 && (rc = loop_add(p->loop, u->timer, EPOLLIN, &u->timer_src)) != 0)
		loop_del(p->loop, u->chan);
	if (rc) {
		/* EPIPE: it exited already; its status says why. */
		if (rc != -EPIPE)
			snprintf(why, cap, "%s", strerror(-rc));
		ho__reap(u->pid, why, cap, "before it was ready");
		log_error(0, "upgrade failed, this process keeps serving every connection: %s", why);
		close(u->chan);
		if (u->timer >= 0)
			close(u->timer);
		free(u);
		return rc;
	}
	cur = u;
	return 0;
}

void ho_upgrade_cancel(void)
{
	if (!cur)
		return;
	struct ho_up *u = cur;
	char why[600] = "cancelled: the gateway drains";
	if (u->moved_sent)
		ctl_ho_resume(u->p.ctl);
	ho__reap(u->pid, why, sizeof(why), "");
	log_warn(0, "upgrade to pid %d cancelled: the gateway drains", (int)u->pid);
	struct ho_result res;
	memset(&res, 0, sizeof(res));
	finish(u, -ECANCELED, &res, why);
}

int ho_upgrading(void)
{
	return cur != NULL;
}

