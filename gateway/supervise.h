/*
 * Supervision: the gateway runs the programs of its [worker NAME] sections itself. Each
 * instance is started once the gateway listens, watched through a pidfd (so it is reaped
 * by that, never by a pid that could be reused or by waiting for "any child"; and a
 * gateway that took over in a live upgrade watches the old one's), restarted when it exits (restart =
 * always, or on-failure: not after exit 0) after a delay that starts at `backoff` and
 * doubles with every quick death up to `backoff-max`, and stopped (SIGTERM, then SIGKILL)
 * when the gateway stops. A program that attaches as a worker is handled like any other
 * worker: while it is gone its clients move to the rest of its pool or wait
 * orphan-timeout for it to come back. Top layer, loop thread only.
 */
#ifndef WSGW_SUPERVISE_H
#define WSGW_SUPERVISE_H

#include <sys/types.h>

#include "gateway/config.h"
#include "gateway/loop.h"

struct sup;

/* Takes cfg's [worker] sections (cfg is kept: it changes in place on reload) and joins
 * the loop; starts nothing yet. Returns 0 and *out, or -ENOMEM. */
int sup_new(struct loop *l, const struct gw_config *cfg, struct sup **out);
/* Starts every instance (once, after the listeners are open). */
void sup_start(struct sup *s);
/* After a reload: programs added start, removed ones stop, changed ones (command, pool,
 * user, restart) restart, and instances follow their count. Backoffs carry over. */
void sup_reload(struct sup *s);
/* Stops every instance with SIGTERM and restarts none from now on. */
void sup_stop_all(struct sup *s);
/* SIGKILL to every instance still running. */
void sup_kill_all(struct sup *s);
/* Instances running now. NULL: 0. */
unsigned sup_running(const struct sup *s);
/* Kills what runs still, reaps it and frees s. NULL is a no-op. */
void sup_free(struct sup *s);

struct sup_info {
	const char *name, *pool;
	unsigned instance;
	pid_t pid;            /* 0 while not running */
	unsigned restarts;    /* since the gateway started */
	unsigned next_ms;     /* not running: ms until its restart (0: none planned) */
	unsigned delay_ms;    /* the wait before its next restart */
	int last_status;      /* wait status of its last exit; -1 none yet */
};
/* Calls fn for every instance of every program. */
void sup_each(struct sup *s, void (*fn)(void *arg, const struct sup_info *i), void *arg);
/* The live upgrade. A running instance as it moves; pidfd is the instance's own. */
struct sup_moving {
	const char *name;
	unsigned instance;
	pid_t pid;
	int pidfd;
	unsigned ran_ms, restarts, delay_ms;
};
typedef int sup_ho_fn(void *arg, const struct sup_moving *m);
/* The old side: fn for each running instance, until one returns non-zero (returned). */
int sup_ho_each(struct sup *s, sup_ho_fn *fn, void *arg);
/* The new side, before sup_start: watches m's process (it takes m->pidfd) as instance
 * m->instance of program m->name. Not this process's child, its exit status cannot be
 * read: its end counts as a failure. A program this configuration lacks is stopped at
 * sup_start. 0, or -errno with *why (m->pidfd closed). */
int sup_ho_adopt(struct sup *s, const struct sup_moving *m, const char **why);
/* Forgets every running instance without a signal and restarts nothing from now on: the
 * old side once the new one took them, the new side when taking them failed. */
void sup_ho_forget(struct sup *s);
/* Restarts of the instances of pool so far. */
unsigned sup_pool_restarts(struct sup *s, const char *pool);

#endif
