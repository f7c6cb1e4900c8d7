#include "gateway/handover_loops.h"
#include "gateway/conn.h"
#include "gateway/control.h"
#include "gateway/handover_sess.h"
#include "gateway/loops.h"
#include "gateway/session.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---------------- the old side ---------------- */

struct check_job {
	char *why;
	size_t cap;
	int rc;
};

static void check_here(struct sess *s, void *arg)
{
	struct check_job *j = arg;
	struct pools *ps = sess_pools(s);
	j->rc = pool_serves_workers(ps) ? pool_ho_check(ps, j->why, j->cap) : 0;
}

int ho_side_check(struct lps *x, unsigned k, char *why, size_t cap)
{
	struct check_job j = { why, cap, 0 };
	int rc = lps_on(x, k, check_here, &j);
	if (rc)
		snprintf(why, cap, "loop %u could not be asked about its workers: %s", k, strerror(-rc));
	return rc ? rc : j.rc;
}

struct bells_job {
	int bell, efd;
};

static void bells_here(struct sess *s, void *arg)
{
	struct bells_job *j = arg;
	j->bell = pool_ho_bell_fd(sess_pools(s));
	j->efd = pool_ho_efd(sess_pools(s));
}

void ho_side_bells(struct lps *x, unsigned k, int *bell, int *efd)
{
	struct bells_job j = { -1, -1 };
	if (lps_on(x, k, bells_here, &j))
		j.bell = j.efd = -1;
	*bell = j.bell;
	*efd = j.efd;
}

struct collect_job {
	struct ho_side *sd;
	size_t cap;
	int workers, failed;
};

static void collect_one(struct conn *c, void *arg)
{
	struct collect_job *j = arg;
	struct ho_side *sd = j->sd;
	if (c->state == CONN_DEAD || j->failed)
		return;
	if (sd->n == j->cap) {
		size_t cap = j->cap ? 2 * j->cap : 256;
		struct conn **v = realloc(sd->v, cap * sizeof(*v));
		if (!v) {
			j->failed = 1;
			return;
		}
		sd->v = v;
		j->cap = cap;
	}
	sd->v[sd->n++] = c;
}

static void collect_here(struct sess *s, void *arg)
{
	struct collect_job *j = arg;
	struct ho_side *sd = j->sd;
	conn_for_each(collect_one, j);
	size_t n = sd->n ? sd->n : 1;
	if (j->failed || !(sd->kept = calloc(n, sizeof(*sd->kept))) || !(sd->sent = calloc(n, sizeof(*sd->sent)))) {
		j->failed = 1;
		return;
	}
	for (size_t i = 0; j->workers && i < sd->n; i++) {
		const char *no;
		if (sess_ho_movable(s, sd->v[i], &no))
			sd->kept[sd->n_kept++] = sd->v[i];
	}
}

int ho_side_collect(struct lps *x, unsigned k, int workers, struct ho_side *sd)
{
	memset(sd, 0, sizeof(*sd));
	struct collect_job j = { sd, 0, workers, 0 };
	int rc = lps_on(x, k, collect_here, &j);
	return rc ? rc : j.failed ? -ENOMEM : 0;
}

struct workers_job {
	unsigned k;
	struct ho_side *sd;
	struct ctl *ctl;
	struct pool_ho_out *out;
	char *why;
	size_t cap;
	int rc;
};

static void workers_here(struct sess *s, void *arg)
{
	struct workers_job *j = arg;
	j->rc = pool_ho_export(sess_pools(s), j->k, j->sd->kept, j->sd->n_kept, ctl_ho_ident, j->ctl, j->out,
			       j->why, j->cap);
}

int ho_side_workers(struct lps *x, unsigned k, struct ho_side *sd, struct ctl *ctl,
		    struct pool_ho_out *out, char *why, size_t cap)
{
	struct workers_job j = { k, sd, ctl, out, why, cap, 0 };
	int rc = lps_on(x, k, workers_here, &j);
	return rc ? rc : j.rc;
}

struct conns_job {
	struct ho_side *sd;
	struct ho_buf *sec;
	int *fds, *nfds;
	struct ho_result *res;
	char *why;
	size_t cap;
	int rc;
};

static void conns_here(struct sess *s, void *arg)
{
	struct conns_job *j = arg;
	struct ho_side *sd = j->sd;
	for (; sd->next < sd->n && *j->nfds < HO_FDS_MAX; sd->next++) {
		struct conn *c = sd->v[sd->next];
		const char *no;
		int e = sess_ho_export(s, c, j->sec, &no);
		if (e == -EAGAIN) {
			j->res->kept++;
			continue;
		}
		if (e) {
			snprintf(j->why, j->cap, "connection %llu: %s", (unsigned long long)c->id, strerror(-e));
			j->rc = e;
			return;
		}
		j->fds[(*j->nfds)++] = c->fd;
		sd->sent[sd->n_sent++] = c;
		j->res->queued += c->out.bytes;
		j->res->partial += c->rx.msg_op || c->rx.in_frame || c->in_len;
	}
}

int ho_side_conns(struct lps *x, unsigned k, struct ho_side *sd, struct ho_buf *sec, int *fds,
		  int *nfds, struct ho_result *res, char *why, size_t cap)
{
	struct conns_job j = { sd, sec, fds, nfds, res, why, cap, 0 };
	int rc = lps_on(x, k, conns_here, &j);
	return rc ? rc : j.rc;
}

struct forget_job {
	struct ho_side *sd;
	int workers;
	pid_t pid;
};

static void forget_here(struct sess *s, void *arg)
{
	struct forget_job *j = arg;
	for (size_t i = 0; i < j->sd->n_sent; i++)
		sess_ho_forget(s, j->sd->sent[i]);
	if (j->workers) {
		/* Not a word to the workers: the new process serves them from now on. */
		pool_ho_name_gateway(sess_pools(s), j->pid);
		pool_ho_forget(sess_pools(s), j->sd->kept, j->sd->n_kept);
	}
}

void ho_side_forget(struct lps *x, unsigned k, struct ho_side *sd, int workers, pid_t pid)
{
	struct forget_job j = { sd, workers, pid };
	/* Held, lps_on cannot fail: the call is made in place. */
	(void)lps_on(x, k, forget_here, &j);
}

void ho_side_free(struct ho_side *sd)
{
	free(sd->v);
	free(sd->kept);
	free(sd->sent);
	memset(sd, 0, sizeof(*sd));
}

/* ---------------- the new side ---------------- */

/* Loop k of this configuration serves shm workers: loop 0 always, the others with
 * spread-workers. What an old gateway's loop k had cannot go anywhere else. */
static int serves_workers(struct lps *x, unsigned k)
{
	return k == 0 || (k < lps_count(x) && lps_spreads_workers(x));
}

struct worker_job {
	const struct ho_worker *hw;
	int fd;
	const char *why;
	int rc;
};

static void worker_here(struct sess *s, void *arg)
{
	struct worker_job *j = arg;
	j->rc = pool_ho_import_worker(sess_pools(s), j->hw, j->fd, &j->why);
}

int ho_in_worker(struct lps *x, unsigned k, const struct ho_worker *hw, int fd, const char **why)
{
	if (!serves_workers(x, k)) {
		*why = "the running gateway serves it on a loop this configuration does not serve workers on "
		       "(it needs at least as many loops and spread-workers = yes): restart instead";
		close(fd);
		return -EINVAL;
	}
	struct worker_job j = { hw, fd, NULL, 0 };
	int rc = lps_on(x, k, worker_here, &j);
	if (rc) {
		close(fd);
		*why = "its loop could not be asked";
		return rc;
	}
	*why = j.why;
	return j.rc;
}

struct conns_in_job {
	const struct ho_conn *h;
	const int *fds;
	size_t n;
	struct conn **got;
	size_t done;
	const char *why;
	int rc;
};

static void conns_in_here(struct sess *s, void *arg)
{
	struct conns_in_job *j = arg;
	for (; j->done < j->n; j->done++) {
		int rc = sess_ho_import(s, &j->h[j->done], j->fds[j->done], &j->got[j->done], &j->why);
		if (rc) {
			close(j->fds[j->done]); /* still ours: nothing was made of it */
			j->rc = rc;
			return;
		}
	}
}

int ho_in_conns(struct lps *x, unsigned k, const struct ho_conn *h, const int *fds, size_t n,
		struct conn **got, size_t *done, const char **why)
{
	*done = 0;
	if (!serves_workers(x, k)) {
		*why = "pinned to a worker of a loop this configuration does not serve workers on";
		close(fds[0]);
		return -EINVAL;
	}
	struct conns_in_job j = { h, fds, n, got, 0, NULL, 0 };
	int rc = lps_on(x, k, conns_in_here, &j);
	if (rc) {
		close(fds[0]);
		*why = "its loop could not be asked";
		return rc;
	}
	*done = j.done;
	*why = j.why;
	return j.rc;
}

struct end_job {
	struct conn **got;
	size_t n;
	int commit, workers;
	pid_t pid;
};

static void end_here(struct sess *s, void *arg)
{
	struct end_job *j = arg;
	/* First thing: a worker that sees the old process gone finds this one named. */
	if (j->commit && j->workers)
		pool_ho_name_gateway(sess_pools(s), j->pid);
	for (size_t i = 0; i < j->n; i++)
		j->commit ? sess_ho_start(s, j->got[i]) : sess_ho_forget(s, j->got[i]);
}

void ho_in_end(struct lps *x, unsigned k, struct conn **got, size_t n, int commit, int workers,
	       pid_t pid)
{
	struct end_job j = { got, n, commit, workers, pid };
	(void)lps_on(x, k, end_here, &j);
}
