/*
 * The live upgrade's process dance (docs/UPGRADE.md): the old gateway starts the new
 * binary with one end of a socketpair and hands it the listeners and the connections;
 * the new one takes them. Top layer, beside gateway/server.c. Loop thread only.
 */
#ifndef WSGW_HANDOVER_RUN_H
#define WSGW_HANDOVER_RUN_H

#include <stddef.h>

#include "gateway/config.h"

struct admin;
struct loop;
struct lsn;
struct sess;

/* What the dance moves. */
struct ho_parts {
	struct gw_config *cfg;
	struct loop *loop;
	struct sess *sess;
	struct lsn *lsn;
	struct admin *admin; /* NULL without an admin endpoint */
};

/* What an upgrade did. */
struct ho_result {
	unsigned pid;          /* the new process */
	unsigned long handed;  /* connections it took */
	unsigned long kept;    /* connections that stay here (they drain: the caller's job) */
	unsigned ms;           /* from the start to TAKEN */
	unsigned long long queued; /* bytes of output that moved unwritten */
	unsigned long partial; /* connections that moved with a message or frame under way */
};

/*
 * The old side, run to its end in this call: starts path (NULL: this binary, as it was
 * started) with this process's command line, hands over every listener and every
 * connection that can move, and on TAKEN forgets them and closes the listeners. Returns
 * 0 and *res, or -errno with the reason in why (logged): -EOPNOTSUPP (this gateway serves
 * worker pools), -ENOEXEC, -EPROTONOSUPPORT (the new binary refused the format), -EPIPE
 * (it exited or crashed), -ETIMEDOUT; on error nothing changed here and the new process
 * was killed and reaped.
 */
int ho_upgrade(const struct ho_parts *p, const char *path, struct ho_result *res, char *why,
	       size_t cap);

/* The new side, before setup: when this process was started by an upgrade
 * (WSGW_HANDOVER_FD), reads the old one's HELLO and listeners and puts them into cfg
 * (cfg_listen.inherit_fd). Returns the channel's fd (>= 0), -1 when not started by an
 * upgrade, or -errno when the hand-over is refused (the old was told why; logged). */
int ho_inherit(struct gw_config *cfg);

/* The new side, after setup: READY, the connections, TAKEN; then they are served.
 * Returns 0, or -errno (logged: this process must exit, the old one keeps everything). */
int ho_take(const struct ho_parts *p, int chan);

#endif
