/*
 * A live upgrade's view of one client connection (docs/UPGRADE.md): its state out of
 * the old process into a record of gateway/handover.h, and into the new process from
 * one. The session layer's part; the process dance is gateway/handover_run.c. Loop
 * thread only.
 */
#ifndef WSGW_HANDOVER_SESS_H
#define WSGW_HANDOVER_SESS_H

#include "gateway/handover.h"

struct conn;
struct sess;

/* 0 when c can move now; -EAGAIN with *why (what sess_ho_export would refuse). */
int sess_ho_movable(struct sess *s, const struct conn *c, const char **why);

/* Appends c's record to b. 0; -EAGAIN when c cannot move (not open: a handshake or a
 * close in progress; TLS; a deflate stream not at a message boundary; a worker route:
 * *why says which) — it stays with this process; -ENOMEM. Nothing of c changes. */
int sess_ho_export(struct sess *s, struct conn *c, struct ho_buf *b, const char **why)
	__attribute__((warn_unused_result));

/* Makes a connection of socket fd from the record h, in the map with h's id and in the
 * epoll set, not read yet (the loop does not run before sess_ho_start). 0 and *out; -EEXIST (the id is taken), -ENOENT (no route of
 * that prefix in this configuration, or it has workers: *why), -ENOMEM. On error fd is
 * the caller's and nothing was made. */
int sess_ho_import(struct sess *s, const struct ho_conn *h, int fd, struct conn **out,
		   const char **why) __attribute__((warn_unused_result));

/* Starts serving an imported connection: its queued output is flushed at the end of the
 * batch (bytes that arrived are reported by epoll). */
void sess_ho_start(struct sess *s, struct conn *c);

/* The old process forgets a connection the new one took: out of the epoll set, its
 * descriptor closed, its buffers freed; no close frame, no CLOSE to anyone. */
void sess_ho_forget(struct sess *s, struct conn *c);

#endif
