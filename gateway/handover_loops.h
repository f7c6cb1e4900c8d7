/*
 * A live upgrade's work on each event loop (docs/UPGRADE.md, "Event loops"): with
 * spread-workers every loop serves shm workers and their connections, so the old side
 * collects, exports and forgets, and the new side imports, on each loop's own thread
 * while the others are held still (gateway/loops.h's lps_hold). Loop k's sessions and
 * pools are touched only there; loop 0's calls are direct. Top layer, beside
 * gateway/handover_run.c and gateway/handover_take.c; loop 0's thread only.
 */
#ifndef WSGW_HANDOVER_LOOPS_H
#define WSGW_HANDOVER_LOOPS_H

#include <stddef.h>
#include <sys/types.h>

#include "gateway/handover.h"
#include "gateway/handover_run.h"
#include "gateway/pool.h"

struct conn;
struct ctl;
struct lps;

/* ---- the old side ---- */

/* One loop's part: its connections (none dead), those of them that cannot move, and
 * those sent. The arrays are the side's (ho_side_free). */
struct ho_side {
	struct conn **v;
	size_t n;
	struct conn **kept; /* with workers: counted before the WORKERS section */
	size_t n_kept;
	struct conn **sent;
	size_t n_sent;
	size_t next;        /* the next of v to export */
};

/* Whether loop k's workers can be handed over now (pool_ho_check): 0 or -errno with why. */
int ho_side_check(struct lps *x, unsigned k, char *why, size_t cap);
/* Loop k's doorbell page and eventfd (-1 each when its pools make none). */
void ho_side_bells(struct lps *x, unsigned k, int *bell, int *efd);
/* Collects loop k's connections; with workers, those that cannot move into kept. 0 or
 * -ENOMEM. */
int ho_side_collect(struct lps *x, unsigned k, int workers, struct ho_side *sd);
/* Appends loop k's worker records to out (pool_ho_export, ctl naming their peers). */
int ho_side_workers(struct lps *x, unsigned k, struct ho_side *sd, struct ctl *ctl,
		    struct pool_ho_out *out, char *why, size_t cap);
/* Appends records of loop k's next connections to sec, their sockets to fds until
 * HO_FDS_MAX (*nfds), counting what moves into res (a connection that cannot move:
 * res->kept). 0 or -errno with why. */
int ho_side_conns(struct lps *x, unsigned k, struct ho_side *sd, struct ho_buf *sec, int *fds,
		  int *nfds, struct ho_result *res, char *why, size_t cap);
/* After TAKEN: loop k forgets the connections sent and, with workers, its workers (their
 * segments naming pid as their gateway first). */
void ho_side_forget(struct lps *x, unsigned k, struct ho_side *sd, int workers, pid_t pid);
void ho_side_free(struct ho_side *sd);

/* ---- the new side ---- */

/* Imports worker record hw with its segment fd (taken) into loop k's pools: 0 or -errno
 * with why (a loop this configuration does not serve workers on, among others). */
int ho_in_worker(struct lps *x, unsigned k, const struct ho_worker *hw, int fd, const char **why);
/* Imports the n connection records h with their sockets fds into loop k, each into
 * got[]: 0, or -errno with why and *done: the records before it were imported, its
 * socket was closed, the rest are the caller's. */
int ho_in_conns(struct lps *x, unsigned k, const struct ho_conn *h, const int *fds, size_t n,
		struct conn **got, size_t *done, const char **why);
/* The end, on loop k: its imported connections start (commit) or are forgotten, and its
 * segments name pid as their gateway (commit, with workers). */
void ho_in_end(struct lps *x, unsigned k, struct conn **got, size_t n, int commit, int workers,
	       pid_t pid);

#endif
