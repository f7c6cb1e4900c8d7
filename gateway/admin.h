/*
 * The admin endpoint: GET /metrics (Prometheus text) and GET /healthz on --admin ADDR:PORT.
 * Served by the loop thread: a handful of short requests, never a client's concern. It
 * reads counters (gateway/stats.h) and the gauges its owner hands it, nothing else.
 */
#ifndef WSGW_ADMIN_H
#define WSGW_ADMIN_H

#include "gateway/config.h"
#include "gateway/loop.h"

struct admin;

/* What /metrics reports beside the counters, filled in by the owner at each request. */
struct admin_gauges {
	unsigned long conns;
	unsigned workers;
};
typedef void admin_gauges_fn(void *arg, struct admin_gauges *g);

/* Listens on lc and joins the loop. Returns 0 and *out, or -errno (logged). */
int admin_new(struct loop *l, const struct cfg_listen *lc, admin_gauges_fn *gauges, void *arg,
	      struct admin **out);
/* /healthz answers 503 from now on (the drain). */
void admin_set_draining(struct admin *a);
/* Closes the listener and every admin connection. NULL is a no-op. */
void admin_free(struct admin *a);

#endif
