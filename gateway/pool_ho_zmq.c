/*
 * A zmq worker in a live upgrade (docs/UPGRADE.md, "zmq workers"), the pools' part: the
 * old process holds every record for it from MOVE on and hands it over once it said
 * MOVED; the new one adopts it with a fresh transport that counts on, and holds for it
 * until RESUME went out. The control channel (gateway/control.c) speaks MOVE, MOVED and
 * RESUME; this file only keeps the records in order. Loop thread only.
 */
#include "gateway/log.h"
#include "gateway/pool_int.h"
#include "gateway/tr_zmq.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static struct worker *zmq_worker(struct pools *ps, unsigned wid)
{
	struct worker *w = pool_worker(ps, wid);
	return w && tr_zmq_is(w->tr) ? w : NULL;
}

int pool_ho_hold(struct pools *ps, unsigned wid)
{
	struct worker *w = zmq_worker(ps, wid);
	if (!w)
		return -ENOENT;
	/* From now on nothing more goes into ZeroMQ for it: whatever is pushed waits in
	 * held, as behind a full window, and travels with it. */
	w->moving = 1;
	w->moved = 0;
	w->quiet_hold = 1; /* routine: its release is logged at debug level */
	return 0;
}

int pool_ho_moved(struct pools *ps, unsigned wid, char *why, size_t cap)
{
	struct worker *w = zmq_worker(ps, wid);
	if (!w || !w->moving)
		return -ENOENT; /* a late MOVED, after the upgrade gave up: nothing to do */
	uint64_t left = tr_zmq_unacked(w->tr);
	if (left) {
		snprintf(why, cap, "worker %u (pool %s, pid %d) said MOVED with %llu records unacknowledged: its library does not acknowledge before MOVED",
			 w->id, w->pool->name, (int)w->pid, (unsigned long long)left);
		return -EPROTO;
	}
	w->moved = 1;
	return 0;
}

void pool_ho_resumed(struct pools *ps, unsigned wid)
{
	struct worker *w = pool_worker(ps, wid);
	if (!w || !w->moving)
		return;
	/* RESUME is out: what was held follows it at the batch's end (wk_retry), and the
	 * clients paused meanwhile read again then. */
	w->moving = 0;
	w->moved = 0;
	log_debug("worker %u (pool %s): resumed with %zu records held for it", w->id, w->pool->name,
		  w->held.n);
}

int pool__ho_zmq_ready(const struct worker *w, char *why, size_t cap)
{
	if (!w->moved) {
		snprintf(why, cap, "zmq worker %u (pool %s, pid %d) attached or was not quiesced while the upgrade waited for the others: try again",
			 w->id, w->pool->name, (int)w->pid);
		return -EAGAIN;
	}
	if (tr_zmq_unacked(w->tr)) {
		snprintf(why, cap, "zmq worker %u has records unacknowledged after MOVED", w->id);
		return -EPROTO;
	}
	return 0;
}

int pool_ho_import_zmq(struct pools *ps, const struct ho_worker *hw, const struct pool_link *link,
		       const char **why)
{
	struct pool *p = pool__named(ps, (const char *)hw->pool.p, hw->pool.n);
	if (!p) {
		*why = "its pool is not in this configuration";
		return -ENOENT;
	}
	if (hw->slot >= MAX_WORKERS || ps->slots[hw->slot] || ps->n_att == MAX_WORKERS) {
		*why = "its slot is taken";
		return -EEXIST;
	}
	struct worker *w = calloc(1, sizeof(*w));
	if (!w) {
		*why = "out of memory";
		return -ENOMEM;
	}
	w->id = hw->id;
	w->slot = hw->slot;
	w->pool = p;
	w->pid = (pid_t)hw->pid;
	/* Held until the control channel's RESUME is out (pool_ho_resumed). */
	w->moving = 1;
	w->quiet_hold = 1;
	struct tr_zmq_window win = { ps->cfg->zmq_window, ps->cfg->zmq_window_bytes };
	int rc = tr_zmq_new(link->sock, link->ident, link->ilen, link->sent, &win, &w->tr);
	if (rc == 0) {
		/* The worker counts on from what the old process sent it: no reset to agree on. */
		tr_zmq_count_from(w->tr, hw->counted);
		rc = pool__ho_held_in(w, &hw->held);
	}
	if (rc) {
		*why = rc == -EBADMSG ? "a bad held record" : "its transport or held records could not be made";
		wk_free(w);
		return rc;
	}
	pool__ho_adopted(ps, p, w);
	log_info("worker %u (pool %s, pid %d) taken over (zmq transport, %llu records counted), %zu records held for it until it is back",
		 w->id, p->name, (int)w->pid, (unsigned long long)hw->counted, w->held.n);
	return 0;
}
