/*
 * The control channel: a ZeroMQ ROUTER where workers say HELLO, get WELCOME, trade
 * heartbeats and say BYE (docs/PROTOCOL.md); zmq-transport workers' commands arrive here
 * too and go to the pools decoded. It runs in the loop thread and never blocks. Its input
 * is read at one point only, the loop's poll step; the ROUTER's fd event just says to look.
 */
#ifndef WSGW_CONTROL_H
#define WSGW_CONTROL_H

#include "gateway/config.h"
#include "gateway/loop.h"

#include <sys/types.h>

struct ctl;
struct pools;
struct pool_link;

/* Binds the ROUTER on cfg->control (creating an ipc:// endpoint's directory) and joins
 * the loop. Returns 0 and *out, or -errno (logged; nothing is left). */
int ctl_new(struct loop *l, const struct gw_config *cfg, struct pools *ps, struct ctl **out);
/* Closes the socket, forgets every worker, removes an ipc:// endpoint it bound. */
void ctl_free(struct ctl *k);

/* Where shm workers are served (gateway/loops.h): each is attached to one loop's pools,
 * and the control channel names it by loop and id. Set before the first HELLO. */
struct pool_welcome;
struct ctl_dir {
	void *arg;
	/* Attaches a shm worker as pool_attach does, to the loop chosen for it (*loop).
	 * 0, or -1 with *why. */
	int (*attach)(void *arg, const char *pool, pid_t pid, struct pool_welcome *out,
		      const char **why, unsigned *loop);
	/* Fails worker id of loop (not 0) with why. */
	void (*fail)(void *arg, unsigned loop, unsigned id, const char *why);
	/* The attach socket's question, asked of every loop (att_set_fds). */
	int (*fds)(void *arg, const char *token, pid_t pid, int fds[3], const char **why);
};
void ctl_set_dir(struct ctl *k, const struct ctl_dir *d);
/* Worker id of another loop failed there: its peer is forgotten, and it is told it is
 * detached. Loop 0's thread (the loops post it here). */
void ctl_worker_gone(struct ctl *k, unsigned id);

/* --- a live upgrade (docs/UPGRADE.md) --- */

/* Whether every worker can follow: 0, or -EOPNOTSUPP with why (not ipc://; a worker, shm
 * or zmq, with no routing id of its own). */
int ctl_ho_check(struct ctl *k, char *why, size_t cap);
/* The routing id of worker wid (a pool_ident_fn, arg the ctl). 0 or -ENOENT. */
int ctl_ho_ident(void *arg, unsigned wid, const uint8_t **ident, size_t *len);
/* The listening sockets to hand over: the control socket's, the attach socket's. */
void ctl_ho_fds(const struct ctl *k, int *control, int *attach);
/* The old side after TAKEN: forgets every peer without a word or a failed worker, closes
 * the attach socket and the ROUTER (so the workers reconnect to the new process), and
 * leaves the socket paths to the new process. */
void ctl_ho_hand_off(struct ctl *k);
/* The new side: a peer for worker wid as the old process knew it (zmq: its transport;
 * loop: whose pools serve it). 0 or -errno. */
int ctl_ho_adopt(struct ctl *k, unsigned wid, pid_t pid, const uint8_t *ident, size_t len, int zmq,
		 unsigned loop);
/* The new side: how an imported zmq worker of routing id ident is reached. */
void ctl_ho_link(struct ctl *k, const uint8_t *ident, size_t len, struct pool_link *link);
/* The new side after TAKEN: heartbeats count from now; the socket paths are ours; every
 * zmq worker gets RESUME as soon as it is back (tried every millisecond, for 3 s, after
 * which it is dead and its records go to the rest of its pool). */
void ctl_ho_started(struct ctl *k);

/* zmq workers (docs/UPGRADE.md "zmq workers"), the old side. Holds every record for each
 * zmq worker (pool_ho_hold) and sends it MOVE; a zmq worker attaching meanwhile gets it
 * too. fn(arg) is called from the poll step when the last MOVED came, or a wrong one.
 * Returns how many workers were sent MOVE (0: nothing to wait for). */
int ctl_ho_move(struct ctl *k, void (*fn)(void *arg), void *arg);
/* 1 when every zmq worker said MOVED; 0 while one has not (why names it); -EPROTO with
 * why when one said it wrongly (records unacknowledged). */
int ctl_ho_moved(struct ctl *k, char *why, size_t cap);
/* The upgrade failed or was cancelled after ctl_ho_move: RESUME to every worker that was
 * sent MOVE (tried until sent, for 3 s), and their held records follow. */
void ctl_ho_resume(struct ctl *k);

#endif
