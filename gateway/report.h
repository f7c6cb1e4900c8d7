/*
 * What the admin endpoint reports, rendered: /metrics (the counters of gateway/stats.h
 * and the per-pool and per-worker gauges), /healthz, and the JSON of /status, /workers
 * and /connections. Top layer: it reads every part, changes none. Loop thread only.
 */
#ifndef WSGW_REPORT_H
#define WSGW_REPORT_H

#include <stddef.h>
#include <stdint.h>

#include "gateway/config.h"

struct lsn;
struct loop;
struct pools;
struct sup;

/* The parts a report reads. */
struct rpt_src {
	const struct gw_config *cfg;
	struct loop *loop;
	struct pools *ps;
	struct lps *lps;      /* the loops, whose connections /connections lists */
	struct sup *sup;
	struct lsn *lsn;
	const int *draining;
	uint64_t started_ms;  /* CLOCK_REALTIME at start */
};

/* Each writes into out and returns the length, or -ENOSPC (-ENOMEM: no memory to gather
 * the loops' workers). */
int rpt_metrics(const struct rpt_src *s, char *out, size_t cap);
/* *ok: listening, not draining, and every routed worker pool has its min-workers. */
int rpt_healthz(const struct rpt_src *s, char *out, size_t cap, int *ok);
int rpt_status(const struct rpt_src *s, char *out, size_t cap);
int rpt_workers(const struct rpt_src *s, char *out, size_t cap);
/* route: a route's prefix (NULL: all); limit 0: all. */
int rpt_connections(const struct rpt_src *s, const char *route, unsigned long limit, char *out,
		    size_t cap);

#endif
