/*
 * Supervision: the gateway runs the programs of its [worker NAME] sections itself. Each
 * instance is started once the gateway listens, watched through a pidfd (so it is reaped
 * by its own pid, never by waiting for "any child"), restarted when it exits (restart =
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
/* Restarts of the instances of pool so far. */
unsigned sup_pool_restarts(struct sup *s, const char *pool);

#endif
