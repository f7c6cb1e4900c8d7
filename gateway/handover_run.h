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
struct ctl;
struct loop;
struct lps;
struct lsn;
struct sess;
struct sup;

/* What the dance moves. */
struct ho_parts {
	struct gw_config *cfg;
	struct loop *loop;
	struct sess *sess;
	struct lsn *lsn;
	struct admin *admin; /* NULL without an admin endpoint */
	struct ctl *ctl;     /* NULL without worker pools */
	int lock_fd;         /* the runtime directory's lock; -1 without worker pools */
	struct sup *sup;     /* the [worker] programs this gateway runs */
	struct lps *lps;     /* the event loops: with spread-workers, each serves workers */
};

/* What an upgrade did. */
struct ho_result {
	unsigned pid;          /* the new process */
	unsigned long handed;  /* connections it took */
	unsigned long kept;    /* connections that stay here (they drain: the caller's job) */
	unsigned ms;           /* from the start to TAKEN */
	unsigned pause_ms;     /* of that, the loop's pause: from READY to TAKEN */
	unsigned long long queued; /* bytes of output that moved unwritten */
	unsigned long partial; /* connections that moved with a message or frame under way */
};

/* Called once when an upgrade ends: rc 0 (then res says what moved, and why may name
 * what stays here) or -errno with the reason in why. */
typedef void ho_done_fn(void *arg, int rc, const struct ho_result *res, const char *why);

/*
 * The old side. Starts path (NULL: this binary, as it was started) with this process's
 * command line and sends it the listeners; this process serves on while it starts. When
 * it says READY, hands over every connection that can move, in one pause of the loop,
 * and on TAKEN forgets them and closes the listeners; then done(arg, 0, ...). Returns 0
 * (done follows), or -errno with the reason in why, done not called: -EBUSY (an upgrade
 * is under way, or a worker is dying), -EOPNOTSUPP (what cannot move: zmq workers, a cluster, a control channel not ipc://, an old libwsgw), -ENOEXEC (it cannot be
 * started). A failure after that reaches done: -EPROTONOSUPPORT (the new binary refused
 * the format), -EPIPE (it exited or crashed), -ETIMEDOUT, -ECANCELED. On every failure
 * nothing changed here, and the new process was killed and reaped. All of it is logged.
 */
int ho_upgrade(const struct ho_parts *p, const char *path, ho_done_fn *done, void *arg, char *why,
	       size_t cap);
/* Ends an upgrade under way as failed (the drain began). */
void ho_upgrade_cancel(void);
/* 1 while an upgrade is under way. */
int ho_upgrading(void);
/* 1 after a successful upgrade while connections that were in their handshake at the
 * hand-over stay here to follow the others once they open (the drain leaves them be). */
int ho_late_active(void);

/* The new side, before setup: when this process was started by an upgrade
 * (WSGW_HANDOVER_FD), reads the old one's HELLO and listeners and puts them into cfg
 * (cfg_listen.inherit_fd). Returns the channel's fd (>= 0), -1 when not started by an
 * upgrade, or -errno when the hand-over is refused (the old was told why; logged). */
int ho_inherit(struct gw_config *cfg);

/* The new side, after setup: READY, the connections, TAKEN; then they are served.
 * Returns 0, or -errno (logged: this process must exit, the old one keeps everything). */
int ho_take(const struct ho_parts *p, int chan);

#endif
