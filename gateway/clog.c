#include "gateway/clog.h"
#include "gateway/conn.h"
#include "gateway/door.h"

#include <stdarg.h>
#include <stdio.h>

/* Each loop thread names routes from its own copy of the settings. */
static _Thread_local const struct gw_config *config;

void clog_set_config(const struct gw_config *cfg)
{
	config = cfg;
}

void clog_peer(const struct conn *c, char *out, size_t cap)
{
	door_peer(c->ip, c->port, out, cap);
}

void clog_write(enum log_level lvl, int err, const struct conn *c, const char *fmt, ...)
{
	if (!log_enabled(lvl))
		return;
	char msg[1024], peer[64];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	clog_peer(c, peer, sizeof(peer));
	struct log_conn lc = { c->id, peer, NULL };
	if (config && c->route < config->n_routes)
		lc.route = config->routes[c->route].prefix;
	log_write_conn(lvl, err, &lc, "%s", msg);
}
