/*
 * wtadmin: the admin endpoint and `wsgw ctl` from a test: raw HTTP requests (any method,
 * any line ends), a strict reader of the Prometheus text format, and wsgw ctl run as a
 * process with its output captured. Every wait is bounded.
 */
#ifndef WTADMIN_H
#define WTADMIN_H

#include <stddef.h>

#include "tests/lib/wstest.h"

/* The port of the admin endpoint from the gateway's log ("admin endpoint on port N"), or
 * -1. */
int wt_admin_port(const struct wt_gw *gw);

/* Sends req (exactly these bytes) to 127.0.0.1:port and reads the answer until EOF (≤ 5 s)
 * into out (NUL-terminated). Returns the HTTP status, or a negative errno. *body points at
 * the body in out. */
int wt_admin_raw(int port, const char *req, char *out, size_t cap, const char **body);
/* wt_admin_raw in two steps, for a request written in pieces: a connection to
 * 127.0.0.1:port (the fd, or a negative errno), then its answer, read as wt_admin_raw
 * reads it; wt_admin_answer closes fd. */
int wt_admin_open(int port);
int wt_admin_answer(int fd, char *out, size_t cap, const char **body);
/* GET path with an optional bearer token (NULL: none). */
int wt_admin_get(int port, const char *path, const char *token, char *out, size_t cap,
		 const char **body);

/*
 * Checks text against the Prometheus exposition format (version 0.0.4) as promtool reads
 * it: HELP and TYPE lines, metric and label names, escaped label values, numeric values,
 * every family's samples together after its TYPE, no family or series twice, counters
 * ending in _total. Returns 0, or -1 with the line and the reason in why.
 */
int wt_prom_check(const char *text, char *why, size_t cap);
/* The value of the series written exactly as series ("wsgw_upgraded_total",
 * "wsgw_rejected_total{status=\"404\"}"); -1 when absent. */
double wt_prom_value(const char *text, const char *series);

/* Runs $WSGW_BUILD/wsgw ctl with args (NULL-terminated), stdout and stderr captured in
 * out. Returns its exit status (or -1). */
int wt_ctl_run(char *out, size_t cap, const char *const *args);

#endif
