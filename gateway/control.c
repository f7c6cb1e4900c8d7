#include "gateway/control.h"
#include "gateway/attach.h"
#include "gateway/curve.h"
#include "gateway/log.h"
#include "gateway/pool.h"
#include "gateway/rundir.h"
#include "gateway/stats.h"
#include "gateway/zmsg.h"
#include "wsgw/protocol.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/stat.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <fcntl.h>
#include <unistd.h>
#include <urcu.h>
#include <zmq.h>

#define MAX_PEERS 256
#define IDENT_MAX 256
/* How long a zmq worker handed over may take to reconnect and take its RESUME before it
 * is treated as dead (its records then go to the rest of its pool). */
#define RESUME_MS 3000

/* A zmq worker in a live upgrade (docs/UPGRADE.md, "zmq workers"). */
enum ctl_mv {
	MV_NONE,
	MV_MOVE,   /* old: MOVE to send (the ROUTER could not take it yet) */
	MV_MOVING, /* old: MOVE sent, its MOVED awaited */
	MV_MOVED,  /* old: MOVED came; nothing of it is in flight either way */
	MV_RESUME, /* RESUME to send: the new process, until the worker is back; the old one
		    * after a failed upgrade */
};

/* One attached worker as the control channel sees it. It names its worker by id, never
 * by pointer: the pools own workers and may free one (a corrupt ring) at any batch's end. */
struct ctl_peer {
	struct loop_src src; /* its pidfd */
	struct ctl *ctl;
	int pidfd;           /* -1: the worker is remote, or pidfd_open failed */
	unsigned wid;
	unsigned loop;       /* whose pools serve it: 0, or another (shm only; gateway/loops.h) */
	int zmq;             /* its records travel on this socket */
	uint8_t mv;          /* enum ctl_mv */
	uint32_t mv_until;   /* MV_RESUME: treated as dead past this (loop clock) */
	uint32_t last_heard, last_sent;
	size_t ident_len;
	uint8_t ident[IDENT_MAX];
};

struct ctl {
	struct loop_src src; /* the ROUTER's ZMQ_FD */
	struct loop *loop;
	const struct gw_config *cfg;
	struct pools *ps;
	void *ctx, *sock;
	struct curve *curve;
	struct att *att;     /* where shm workers fetch their segments */
	struct ctl_dir dir;  /* where shm workers are attached (zmq workers: k->ps's) */
	struct ctl_peer *peers[MAX_PEERS];
	/* ZMQ_FD is edge-like and a send may consume its edge: after the fd fired or after
	 * any send, ZMQ_EVENTS must be asked again before the loop may sleep. */
	int check;
	int local; /* ipc:// endpoint: worker pids are ours to watch */
	int lfd;   /* ipc://: the listening socket ZeroMQ uses (ZMQ_USE_FD), ours to hand over */
	struct rundir_sock owned; /* the ipc:// socket file this process bound */
	/* The old process, a live upgrade: zmq workers are being moved (new ones too). */
	int moving;
	void (*moved_fn)(void *arg); /* told when every MOVED came, or one was wrong */
	void *moved_arg;
	int mv_err;
	char mv_why[240];
};

static int mkdir_p(const char *dir)
{
	char tmp[256];
	snprintf(tmp, sizeof(tmp), "%s", dir);
	for (char *p = tmp + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = 0;
		if (mkdir(tmp, 0755) < 0 && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	/* The control socket and segments are for this user (or group) only. */
	if (mkdir(tmp, 0750) < 0 && errno != EEXIST)
		return -errno;
	return 0;
}

/* Sends frames [ident, f0, f1, ...]; a worker that cannot take it now misses it (a
 * heartbeat) or learns from the next one. */
static void send_frames(struct ctl *k, const uint8_t *ident, size_t ilen, const char *const *f, int n)
{
	k->check = 1;
	if (zmq_send(k->sock, ident, ilen, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0)
		return;
	for (int i = 0; i < n; i++)
		zmq_send(k->sock, f[i], strlen(f[i]), (i + 1 < n ? ZMQ_SNDMORE : 0) | ZMQ_DONTWAIT);
}

static void send_error(struct ctl *k, const uint8_t *ident, size_t ilen, const char *reason)
{
	const char *f[] = { "ERROR", reason };
	send_frames(k, ident, ilen, f, 2);
}

static struct ctl_peer *find_peer(struct ctl *k, const uint8_t *ident, size_t ilen)
{
	for (int i = 0; i < MAX_PEERS; i++) {
		struct ctl_peer *p = k->peers[i];
		if (p && p->ident_len == ilen && memcmp(p->ident, ident, ilen) == 0)
			return p;
	}
	return NULL;
}

static void peer_free(struct ctl_peer *p)
{
	if (p->pidfd >= 0)
		close(p->pidfd); /* also leaves the epoll set */
	free(p);
}

/* Every peer forgotten, its worker left as it is: at the end, or handed over. */
static void forget_peers(struct ctl *k)
{
	for (int i = 0; i < MAX_PEERS; i++) {
		if (k->peers[i])
			peer_free(k->peers[i]);
		k->peers[i] = NULL;
	}
}

/* Forgets p, and fails its worker if it still lives. Called from the poll step, an
 * event, or the tick: never while any caller still holds p. */
static void forget_peer(struct ctl *k, struct ctl_peer *p)
{
	for (int i = 0; i < MAX_PEERS; i++)
		if (k->peers[i] == p)
			k->peers[i] = NULL;
	peer_free(p);
}

static void drop_peer(struct ctl *k, struct ctl_peer *p, const char *why)
{
	if (p->loop) {
		k->dir.fail(k->dir.arg, p->loop, p->wid, why);
	} else {
		struct worker *w = pool_worker(k->ps, p->wid);
		if (w)
			pool_worker_fail(k->ps, w, why);
	}
	forget_peer(k, p);
}

/* Whether p's worker takes work. Another loop's says so when it stops (ctl_worker_gone). */
static int peer_alive(struct ctl *k, const struct ctl_peer *p)
{
	return p->loop || pool_worker(k->ps, p->wid);
}

void ctl_worker_gone(struct ctl *k, unsigned wid)
{
	for (int i = 0; i < MAX_PEERS; i++) {
		struct ctl_peer *p = k->peers[i];
		if (p && p->loop && p->wid == wid) {
			send_error(k, p->ident, p->ident_len, "detached by the gateway");
			forget_peer(k, p);
			return;
		}
	}
}

void ctl_set_dir(struct ctl *k, const struct ctl_dir *d)
{
	k->dir = *d;
	att_set_fds(k->att, d->fds, d->arg);
}

static void on_pidfd(struct loop_src *src, uint32_t events)
{
	struct ctl_peer *p = (struct ctl_peer *)src;
	(void)events;
	drop_peer(p->ctl, p, "process exited");
}

/* A local worker's exit is seen at once through its pidfd; heartbeats catch the rest. */
static void watch_pid(struct ctl *k, struct ctl_peer *p, pid_t pid)
{
	if (!k->local || pid <= 0)
		return;
	p->pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
	p->src.fn = on_pidfd;
	if (p->pidfd >= 0 && loop_add(k->loop, p->pidfd, EPOLLIN, &p->src)) {
		close(p->pidfd);
		p->pidfd = -1;
	}
}

/* A peer for the routing id ident in a free slot (*slot), not yet in the table: NULL when
 * the table is full or memory is. The caller checked len <= IDENT_MAX. */
static struct ctl_peer *peer_new(struct ctl *k, const uint8_t *ident, size_t len, int *slot)
{
	*slot = -1;
	for (int i = 0; i < MAX_PEERS && *slot < 0; i++)
		if (!k->peers[i])
			*slot = i;
	struct ctl_peer *p = *slot >= 0 ? calloc(1, sizeof(*p)) : NULL;
	if (!p)
		return NULL;
	memcpy(p->ident, ident, len);
	p->ident_len = len;
	p->ctl = k;
	p->pidfd = -1;
	return p;
}

/* p serves worker wid (pid): heard from now, watched, in the table. */
static void peer_start(struct ctl *k, struct ctl_peer *p, int slot, unsigned wid, pid_t pid)
{
	p->wid = wid;
	p->last_heard = p->last_sent = loop_now(k->loop);
	watch_pid(k, p, pid);
	k->peers[slot] = p;
}

static void start_move(struct ctl *k, struct ctl_peer *p);

static void on_hello(struct ctl *k, const uint8_t *ident, size_t ilen, zmq_msg_t *f, int n)
{
	char version[16], pool[CFG_NAME_MAX], transport[16], pidtext[16];
	if (n != 5 || zmsg_frame_str(&f[1], version, sizeof(version)) ||
	    zmsg_frame_str(&f[2], pool, sizeof(pool)) ||
	    zmsg_frame_str(&f[3], transport, sizeof(transport)) ||
	    zmsg_frame_str(&f[4], pidtext, sizeof(pidtext))) {
		log_warn(0, "control: malformed HELLO (%d frames)", n);
		send_error(k, ident, ilen, "bad hello");
		return;
	}
	if (atoi(version) != WSGW_PROTOCOL_VERSION) {
		log_warn(0, "control: HELLO with protocol version %s (this gateway speaks %d)", version,
			 WSGW_PROTOCOL_VERSION);
		send_error(k, ident, ilen, "version mismatch");
		return;
	}
	int zmq_transport = strcmp(transport, "zmq") == 0;
	if (!zmq_transport && strcmp(transport, "shm") != 0) {
		log_warn(0, "control: HELLO with unknown transport '%s'", transport);
		send_error(k, ident, ilen, "unknown transport");
		return;
	}
	struct ctl_peer *old = find_peer(k, ident, ilen);
	if (old)
		drop_peer(k, old, "attached again");
	int slot;
	struct ctl_peer *p = peer_new(k, ident, ilen, &slot);
	if (!p) {
		send_error(k, ident, ilen, "too many workers");
		return;
	}
	pid_t pid = (pid_t)atol(pidtext);
	struct pool_link link = { .zmq = zmq_transport, .sock = k->sock, .ident = p->ident,
				  .ilen = ilen, .sent = &k->check };
	struct pool_welcome wel;
	const char *why = NULL;
	unsigned loop = 0;
	int ok = zmq_transport ? pool_attach(k->ps, pool, pid, &link, &wel, &why) != NULL
			       : k->dir.attach(k->dir.arg, pool, pid, &wel, &why, &loop) == 0;
	if (!ok) {
		log_warn(0, "control: HELLO for pool '%s' refused: %s", pool, why);
		send_error(k, ident, ilen, why);
		free(p);
		return;
	}
	p->zmq = zmq_transport;
	p->loop = loop;
	peer_start(k, p, slot, wel.id, pid);
	int move_it = k->moving && zmq_transport;
	char id[16], hb[16], tw[24], tg[24];
	snprintf(id, sizeof(id), "%u", wel.id);
	snprintf(hb, sizeof(hb), "%u", k->cfg->heartbeat_ms);
	snprintf(tw, sizeof(tw), "%llu", (unsigned long long)wel.to_worker_bytes);
	snprintf(tg, sizeof(tg), "%llu", (unsigned long long)wel.to_gateway_bytes);
	const char *out[] = { "WELCOME", id, hb, zmq_transport ? "" : att_path(k->att), tw, tg, wel.token };
	/* Before any OPEN: the pools move waiting connections to it at the batch's end. */
	send_frames(k, ident, ilen, out, 7);
	if (move_it)
		start_move(k, p); /* it moves with the others: nothing is pushed to it before */
}

static void refuse(struct ctl *k, struct ctl_peer *p, const char *why)
{
	stats.commands_refused++;
	log_warn(0, "control: worker %u: %s", p->wid, why);
	send_error(k, p->ident, p->ident_len, why);
}

/* A zmq-transport worker's SEND, CLOSE, ACCEPT or REJECT, as the record its ring would
 * have carried: both transports share one command path (pool_command). */
static void on_command(struct ctl *k, struct ctl_peer *p, struct worker *w, zmq_msg_t *f, int n)
{
	if (!p->zmq) {
		refuse(k, p, "commands of a shm worker go through its ring");
		return;
	}
	struct zmsg_cmd cmd;
	const char *why = NULL;
	int rc = zmsg_decode(f, n, k->cfg->max_message, &cmd, &why);
	if (rc == -ENOMEM) {
		log_error(ENOMEM, "control: a command of worker %u", p->wid);
		return;
	}
	if (rc) {
		refuse(k, p, why);
		return;
	}
	rcu_read_lock();
	pool_command(k->ps, w, &cmd.rec);
	rcu_read_unlock();
	zmsg_cmd_free(&cmd);
}

/* ACK, N: the worker finished with the first N counted records (docs/PROTOCOL.md). */
static void on_ack(struct ctl *k, struct ctl_peer *p, struct worker *w, zmq_msg_t *f, int n)
{
	uint64_t count;
	const char *why = NULL;
	if (!p->zmq)
		why = "ACK is for zmq workers";
	else if (zmsg_decode_ack(f, n, &count, &why) == 0 && pool_ack(k->ps, w, count, &why) == 0)
		return;
	refuse(k, p, why);
}

/* ---- zmq workers in a live upgrade: MOVE, MOVED, RESUME (docs/UPGRADE.md) ---- */

/* One verb to p, told whether the ROUTER took it: ROUTER_MANDATORY makes a worker that is
 * not connected (yet) EHOSTUNREACH, a full pipe EAGAIN; either is tried again. */
static int try_send(struct ctl *k, struct ctl_peer *p, const char *verb)
{
	k->check = 1;
	if (zmq_send(k->sock, p->ident, p->ident_len, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0)
		return -errno;
	return zmq_send(k->sock, verb, strlen(verb), ZMQ_DONTWAIT) < 0 ? -errno : 0;
}

static void start_move(struct ctl *k, struct ctl_peer *p)
{
	/* Held first: every record pushed before this went into ZeroMQ before MOVE. */
	if (pool_ho_hold(k->ps, p->wid))
		return;
	p->mv = MV_MOVE;
	if (try_send(k, p, "MOVE") == 0)
		p->mv = MV_MOVING;
}

/* 1 when every live zmq worker said MOVED; *first the first that did not. */
static int all_moved(struct ctl *k, struct ctl_peer **first)
{
	*first = NULL;
	for (int i = 0; i < MAX_PEERS && !*first; i++) {
		struct ctl_peer *p = k->peers[i];
		if (p && p->zmq && p->mv != MV_MOVED && pool_worker(k->ps, p->wid))
			*first = p;
	}
	return *first == NULL;
}

static void tell_mover(struct ctl *k)
{
	if (k->moved_fn)
		k->moved_fn(k->moved_arg);
}

/* MOVED: the worker read everything before MOVE, acknowledged it, and sends nothing more
 * until RESUME. A MOVED nobody waits for (the upgrade gave up) changes nothing. */
static void on_moved(struct ctl *k, struct ctl_peer *p)
{
	if (!p->zmq || p->mv != MV_MOVING) {
		log_debug("control: worker %u: MOVED, and nothing waits for it", p->wid);
		return;
	}
	int rc = pool_ho_moved(k->ps, p->wid, k->mv_why, sizeof(k->mv_why));
	if (rc == -EPROTO) {
		k->mv_err = rc;
		tell_mover(k);
		return;
	}
	if (rc)
		return;
	p->mv = MV_MOVED;
	struct ctl_peer *left;
	if (all_moved(k, &left))
		tell_mover(k);
}

static void resumed(struct ctl *k, struct ctl_peer *p)
{
	p->mv = MV_NONE;
	pool_ho_resumed(k->ps, p->wid);
}

/* The poll step: MOVEs and RESUMEs the ROUTER could not take yet, and workers that did
 * not come back in time (the normal death path hands their records on). */
static void move_step(struct ctl *k)
{
	uint32_t now = loop_now(k->loop);
	for (int i = 0; i < MAX_PEERS; i++) {
		struct ctl_peer *p = k->peers[i];
		if (!p || (p->mv != MV_MOVE && p->mv != MV_RESUME))
			continue;
		if (p->mv == MV_MOVE) {
			if (try_send(k, p, "MOVE") == 0)
				p->mv = MV_MOVING;
		} else if (try_send(k, p, "RESUME") == 0) {
			log_info("worker %u: resumed on the control socket", p->wid);
			resumed(k, p);
		} else if ((int32_t)(now - p->mv_until) >= 0) {
			drop_peer(k, p, "it did not come back on the control socket within 3 s of the upgrade");
		}
	}
}

static int moves_pending(const struct ctl *k)
{
	for (int i = 0; i < MAX_PEERS; i++)
		if (k->peers[i] && (k->peers[i]->mv == MV_MOVE || k->peers[i]->mv == MV_RESUME))
			return 1;
	return 0;
}

static void on_message(struct ctl *k, zmq_msg_t *f, int n)
{
	const uint8_t *ident = zmq_msg_data(&f[0]);
	size_t ilen = zmq_msg_size(&f[0]);
	if (ilen > IDENT_MAX || n < 2)
		return;
	zmq_msg_t *body = f + 1;
	int nb = n - 1;
	if (zmsg_frame_is(&body[0], "HELLO")) {
		on_hello(k, ident, ilen, body, nb);
		return;
	}
	struct ctl_peer *p = find_peer(k, ident, ilen);
	/* NULL for another loop's worker: a shm worker, whose only words here are
	 * HEARTBEAT and BYE (the others are refused for its transport before w is used). */
	struct worker *w = p && !p->loop ? pool_worker(k->ps, p->wid) : NULL;
	if (p && !peer_alive(k, p)) {
		drop_peer(k, p, "detached"); /* its worker died (a corrupt ring, ...) */
		p = NULL;
	}
	if (!p) {
		send_error(k, ident, ilen, "not attached");
		return;
	}
	p->last_heard = loop_now(k->loop);
	if (zmsg_frame_is(&body[0], "HEARTBEAT"))
		return;
	if (zmsg_frame_is(&body[0], "BYE")) {
		drop_peer(k, p, "said BYE");
		return;
	}
	if (zmsg_frame_is(&body[0], "ACK")) {
		on_ack(k, p, w, body, nb);
		return;
	}
	if (zmsg_frame_is(&body[0], "MOVED")) {
		on_moved(k, p);
		return;
	}
	on_command(k, p, w, body, nb);
}

/* Reads one multipart message into f; the frames past the ones kept are counted and
 * dropped. Returns the frame count, 0 when nothing waits. */
static int recv_message(struct ctl *k, zmq_msg_t *f, int cap)
{
	int n = 0, more = 1;
	while (more) {
		zmq_msg_t m;
		zmq_msg_init(&m);
		if (zmq_msg_recv(&m, k->sock, ZMQ_DONTWAIT) < 0) {
			zmq_msg_close(&m);
			break;
		}
		more = zmq_msg_more(&m);
		if (n < cap)
			f[n] = m;
		else
			zmq_msg_close(&m);
		n++;
	}
	return n;
}

/* The one place the control channel's input is read (the loop's poll step). */
static int hook_poll(void *arg)
{
	struct ctl *k = arg;
	int handled = 0;
	if (!k->sock)
		return 0; /* handed off in a live upgrade */
	move_step(k);
	while (k->check) {
		k->check = 0;
		for (;;) {
			int events = 0;
			size_t len = sizeof(events);
			if (zmq_getsockopt(k->sock, ZMQ_EVENTS, &events, &len) < 0 || !(events & ZMQ_POLLIN))
				break;
			zmq_msg_t f[ZMSG_MAX_FRAMES];
			int n = recv_message(k, f, ZMSG_MAX_FRAMES);
			int kept = n < ZMSG_MAX_FRAMES ? n : ZMSG_MAX_FRAMES;
			if (n > ZMSG_MAX_FRAMES) {
				stats.commands_refused++;
				log_warn(0, "control: a message of %d frames refused (at most %d)", n,
					 ZMSG_MAX_FRAMES);
				if (zmq_msg_size(&f[0]) <= IDENT_MAX)
					send_error(k, zmq_msg_data(&f[0]), zmq_msg_size(&f[0]),
						   "too many frames");
			} else if (n) {
				on_message(k, f, n);
			}
			for (int i = 0; i < kept; i++)
				zmq_msg_close(&f[i]);
			handled++;
		}
	}
	return handled;
}

static int hook_sleep(void *arg)
{
	struct ctl *k = arg;
	return k->sock && k->check;
}

/* A worker that is reconnecting is looked for every millisecond: its clients wait. */
static int hook_timeout(void *arg)
{
	struct ctl *k = arg;
	return k->sock && moves_pending(k) ? 1 : -1;
}

static void on_router(struct loop_src *src, uint32_t events)
{
	struct ctl *k = (struct ctl *)src;
	(void)events;
	k->check = 1; /* read at the loop's next poll step */
}

static void hook_tick(void *arg)
{
	struct ctl *k = arg;
	uint32_t now = loop_now(k->loop), hb = k->cfg->heartbeat_ms;
	for (int i = 0; i < MAX_PEERS; i++) {
		struct ctl_peer *p = k->peers[i];
		if (!p)
			continue;
		if (!peer_alive(k, p)) {
			send_error(k, p->ident, p->ident_len, "detached by the gateway");
			drop_peer(k, p, "detached");
		} else if (now - p->last_heard >= 3 * hb) {
			drop_peer(k, p, "missed 3 heartbeats");
		} else if (now - p->last_sent >= hb) {
			const char *f[] = { "HEARTBEAT" };
			send_frames(k, p->ident, p->ident_len, f, 1);
			p->last_sent = now;
		}
	}
}

/* The ipc:// listening socket is made here, not by ZeroMQ, and given to it with
 * ZMQ_USE_FD: then a live upgrade can hand it to the new process, which gives its copy
 * to its own ZeroMQ. The path never changes, so no worker ever finds it missing, and
 * ZeroMQ never unlinks a socket it did not make. */
static int ipc_listener(struct ctl *k, const struct gw_config *cfg)
{
	const char *path = cfg->control + 6;
	int fd = cfg->inherit_control_fd;
	if (fd <= 0) {
		/* rundir_start found nobody listening there; in a live upgrade the path is
		 * claimed once it is ours (ctl_ho_started). */
		fd = rundir_sock_listen(&k->owned, path, cfg->socket_mode, cfg->gid, 128);
		if (fd < 0) {
			log_error(-fd, "control socket %s (mode 0%o, group %s)", path, cfg->socket_mode,
				  cfg->group[0] ? cfg->group : "-");
			return fd;
		}
	}
	k->lfd = fd;
	int zfd = fcntl(fd, F_DUPFD_CLOEXEC, 3); /* ZeroMQ closes its copy with the socket */
	if (zfd < 0 || zmq_setsockopt(k->sock, ZMQ_USE_FD, &zfd, sizeof(zfd)) < 0) {
		log_error(errno, "control socket %s: ZMQ_USE_FD", path);
		if (zfd >= 0)
			close(zfd);
		return -EIO;
	}
	return 0;
}

int ctl_ho_check(struct ctl *k, char *why, size_t cap)
{
	if (!k->local) {
		snprintf(why, cap, "the control channel %s is not ipc://: its workers could not follow (docs/UPGRADE.md); restart instead",
			 k->cfg->control);
		return -EOPNOTSUPP;
	}
	for (int i = 0; i < MAX_PEERS; i++) {
		struct ctl_peer *p = k->peers[i];
		if (!p || (p->ident_len >= 6 && memcmp(p->ident, "wsgw1-", 6) == 0))
			continue;
		if (p->zmq)
			snprintf(why, cap, "worker %u is a zmq worker that keeps no routing id of its own on the control socket (a worker library older than the live upgrade of zmq workers, or not one of wsgw's): it could not follow; restart it or the gateway",
				 p->wid);
		else
			snprintf(why, cap, "worker %u keeps no routing id of its own on the control socket (a libwsgw older than the live upgrade of workers, or not libwsgw): it could not follow; restart it or the gateway",
				 p->wid);
		return -EOPNOTSUPP;
	}
	return 0;
}

int ctl_ho_move(struct ctl *k, void (*fn)(void *arg), void *arg)
{
	int n = 0;
	k->moving = 1;
	k->moved_fn = fn;
	k->moved_arg = arg;
	k->mv_err = 0;
	k->mv_why[0] = 0;
	for (int i = 0; i < MAX_PEERS; i++) {
		struct ctl_peer *p = k->peers[i];
		if (p && p->zmq && pool_worker(k->ps, p->wid)) {
			start_move(k, p);
			n++;
		}
	}
	/* None: nothing to wait for, and a zmq worker attaching later is not held. */
	if (!n)
		k->moving = 0;
	return n;
}

int ctl_ho_moved(struct ctl *k, char *why, size_t cap)
{
	struct ctl_peer *left;
	if (k->mv_err) {
		snprintf(why, cap, "%s", k->mv_why);
		return k->mv_err;
	}
	if (all_moved(k, &left))
		return 1;
	snprintf(why, cap, "zmq worker %u did not answer MOVE%s: it is stuck, or its library does not speak MOVE",
		 left->wid, left->mv == MV_MOVE ? " (which could not even be sent to it)" : "");
	return 0;
}

void ctl_ho_resume(struct ctl *k)
{
	if (!k->moving)
		return;
	k->moving = 0;
	k->moved_fn = NULL;
	uint32_t until = loop_now(k->loop) + RESUME_MS;
	for (int i = 0; i < MAX_PEERS; i++) {
		struct ctl_peer *p = k->peers[i];
		if (!p || !p->zmq || p->mv == MV_NONE)
			continue;
		if (p->mv == MV_MOVE) {
			resumed(k, p); /* it never had MOVE: nothing to resume */
			continue;
		}
		p->mv = MV_RESUME;
		p->mv_until = until;
		if (try_send(k, p, "RESUME") == 0)
			resumed(k, p);
	}
}

void ctl_ho_link(struct ctl *k, const uint8_t *ident, size_t len, struct pool_link *link)
{
	*link = (struct pool_link){ .zmq = 1, .sock = k->sock, .ident = ident, .ilen = len,
				    .sent = &k->check };
}

int ctl_ho_ident(void *arg, unsigned wid, const uint8_t **ident, size_t *len)
{
	struct ctl *k = arg;
	for (int i = 0; i < MAX_PEERS; i++) {
		struct ctl_peer *p = k->peers[i];
		if (p && p->wid == wid) {
			*ident = p->ident;
			*len = p->ident_len;
			return 0;
		}
	}
	return -ENOENT;
}

void ctl_ho_fds(const struct ctl *k, int *control, int *attach)
{
	*control = k->lfd;
	*attach = att_listen_fd(k->att);
}

int ctl_ho_adopt(struct ctl *k, unsigned wid, pid_t pid, const uint8_t *ident, size_t len, int zmq,
		 unsigned loop)
{
	if (len > IDENT_MAX || !len)
		return -EINVAL;
	int slot;
	struct ctl_peer *p = peer_new(k, ident, len, &slot);
	if (!p)
		return slot < 0 ? -ENOSPC : -ENOMEM;
	p->zmq = zmq;
	p->loop = loop; /* before the pidfd: a worker found dead is failed on its loop */
	peer_start(k, p, slot, wid, pid);
	return 0;
}

void ctl_ho_started(struct ctl *k)
{
	uint32_t now = loop_now(k->loop);
	for (int i = 0; i < MAX_PEERS; i++) {
		struct ctl_peer *p = k->peers[i];
		if (!p)
			continue;
		p->last_heard = p->last_sent = now;
		if (p->zmq) {
			/* Its DEALER reconnects by itself once the old process closed its ROUTER;
			 * RESUME is tried at every poll step until the ROUTER knows it. */
			p->mv = MV_RESUME;
			p->mv_until = now + RESUME_MS;
		}
	}
	if (k->local && rundir_sock_claim(&k->owned, k->cfg->control + 6, k->cfg->socket_mode, k->cfg->gid))
		log_warn(0, "control socket %s: not claimed; it stays when this process exits", k->cfg->control + 6);
	att_own(k->att);
}

void ctl_ho_hand_off(struct ctl *k)
{
	forget_peers(k);
	k->moving = 0;
	k->moved_fn = NULL;
	att_hand_off(k->att);
	/* Its connections end with it, and every DEALER reconnects, by itself, to the same
	 * path, where only the new process's ZeroMQ accepts now: with the same routing id. */
	int fd;
	size_t len = sizeof(fd);
	if (zmq_getsockopt(k->sock, ZMQ_FD, &fd, &len) == 0)
		loop_del(k->loop, fd);
	zmq_close(k->sock);
	k->sock = NULL;
	if (k->lfd >= 0)
		close(k->lfd);
	k->lfd = -1;
	k->owned.owned = 0; /* the path is the new process's socket now */
}

int ctl_new(struct loop *l, const struct gw_config *cfg, struct pools *ps, struct ctl **out)
{
	struct ctl *k = calloc(1, sizeof(*k));
	if (!k)
		return -ENOMEM;
	k->loop = l;
	k->cfg = cfg;
	k->ps = ps;
	k->local = strncmp(cfg->control, "ipc://", 6) == 0;
	k->lfd = -1;
	int rc = 0;
	if (k->local) {
		char dir[256];
		snprintf(dir, sizeof(dir), "%s", cfg->control + 6);
		char *slash = strrchr(dir, '/');
		if (slash && slash != dir) {
			*slash = 0;
			rc = mkdir_p(dir);
			if (rc) {
				log_error(-rc, "mkdir %s", dir);
				goto fail;
			}
		}
	}
	k->ctx = zmq_ctx_new();
	k->sock = k->ctx ? zmq_socket(k->ctx, ZMQ_ROUTER) : NULL;
	if (!k->sock) {
		log_error(errno, "zmq_socket(ROUTER)");
		rc = -EIO;
		goto fail;
	}
	int zero = 0, one = 1;
	zmq_setsockopt(k->sock, ZMQ_LINGER, &zero, sizeof(zero));
	/* Without it a ROUTER drops a message silently once a worker's queue is at its
	 * high-water mark; with it the send fails with EAGAIN and the records are held
	 * back (gateway/worker.c), pausing that worker's clients. */
	zmq_setsockopt(k->sock, ZMQ_ROUTER_MANDATORY, &one, sizeof(one));
	/* A worker keeps its routing id across reconnects (libwsgw): a new connection with
	 * it replaces an old one the ROUTER has not yet seen go. */
	zmq_setsockopt(k->sock, ZMQ_ROUTER_HANDOVER, &one, sizeof(one));
	/* A frame's size is known before ZeroMQ allocates it: a worker sending more than any
	 * command may carry is disconnected then, not after the memory was spent. */
	int64_t maxmsg = (int64_t)cfg->max_message + ZMSG_ACCEPT_BYTES + 1024;
	zmq_setsockopt(k->sock, ZMQ_MAXMSGSIZE, &maxmsg, sizeof(maxmsg));
	/* A zmq worker's window (--zmq-window) is what should stop records, before ZeroMQ's
	 * default of 1000 does: room for a full window plus the ERRORs and heartbeats that
	 * are not counted in it. */
	int hwm = (int)cfg->zmq_window + 1000;
	zmq_setsockopt(k->sock, ZMQ_SNDHWM, &hwm, sizeof(hwm));
	if (cfg->curve_secret[0]) {
		rc = curve_new(l, cfg, k->ctx, k->sock, &k->curve);
		if (rc)
			goto fail;
	} else if (!k->local) {
		log_warn(0, "control channel %s is not ipc:// and has no --curve-secret-key: any host that reaches it can attach workers",
			 cfg->control);
	}
	if (k->local) {
		rc = ipc_listener(k, cfg);
		if (rc)
			goto fail;
	}
	if (zmq_bind(k->sock, cfg->control) < 0) {
		rc = -errno;
		log_error(errno, "zmq_bind(%s)", cfg->control);
		goto fail;
	}
	int fd;
	size_t len = sizeof(fd);
	zmq_getsockopt(k->sock, ZMQ_FD, &fd, &len);
	k->src.fn = on_router;
	rc = loop_add(l, fd, EPOLLIN | EPOLLET, &k->src);
	if (rc)
		goto fail;
	char path[256];
	if (k->local)
		snprintf(path, sizeof(path), "%s.fds", cfg->control + 6);
	else if ((rc = mkdir_p(cfg->runtime_dir)) == 0)
		snprintf(path, sizeof(path), "%s/attach-%d", cfg->runtime_dir, (int)getpid());
	if (rc || (rc = att_new(l, path, cfg->socket_mode, cfg->gid, cfg->inherit_attach_fd, &k->att)))
		goto fail;
	k->check = 1;
	struct loop_hooks h = { .arg = k, .poll = hook_poll, .sleep = hook_sleep, .tick = hook_tick,
				.timeout_ms = hook_timeout };
	loop_add_hooks(l, &h);
	log_info("control channel on %s", cfg->control);
	*out = k;
	return 0;
fail:
	ctl_free(k);
	return rc;
}

void ctl_free(struct ctl *k)
{
	if (!k)
		return;
	forget_peers(k);
	curve_free(k->curve);
	att_free(k->att);
	if (k->sock)
		zmq_close(k->sock);
	if (k->lfd >= 0)
		close(k->lfd);
	if (k->ctx)
		zmq_ctx_term(k->ctx);
	if (k->local)
		rundir_sock_release(&k->owned, k->cfg->control + 6); /* never another's socket */
	free(k);
}
