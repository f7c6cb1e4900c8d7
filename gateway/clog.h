/*
 * Log lines about one connection: each names the connection's id, its peer's address
 * and port, and its route (gateway/log.h writes them as conn=, peer= and route=).
 */
#ifndef WSGW_CLOG_H
#define WSGW_CLOG_H

#include "gateway/config.h"
#include "gateway/log.h"

struct conn;

/* The settings whose routes conn->route indexes (kept, not copied: they change in place
 * on a reload). */
void clog_set_config(const struct gw_config *cfg);
void clog_write(enum log_level lvl, int err, const struct conn *c, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
/* "ADDR:PORT" of c's peer. */
void clog_peer(const struct conn *c, char *out, size_t cap);

#define clog_debug(c, ...) do { if (log_enabled(LOG_DEBUG)) clog_write(LOG_DEBUG, 0, (c), __VA_ARGS__); } while (0)
#define clog_info(c, ...) clog_write(LOG_INFO, 0, (c), __VA_ARGS__)
#define clog_warn(c, err, ...) clog_write(LOG_WARN, (err), (c), __VA_ARGS__)
#define clog_error(c, err, ...) clog_write(LOG_ERROR, (err), (c), __VA_ARGS__)

#endif
