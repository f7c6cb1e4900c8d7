/* One client connection's protocol: the HTTP upgrade, RFC 6455 frames, the close handshake,
 * and handing whole messages to the route's pool. Loop thread only. */
#ifndef WSGW_SESSION_H
#define WSGW_SESSION_H

#include <stddef.h>

struct conn;

/* Sets up a new accepted connection (handshake state, deadline). Returns 0 or -ENOMEM. */
int sess_start(struct conn *c);
/* The socket has bytes (or EOF/error) for c. */
void sess_on_readable(struct conn *c);
/* Called by the loop after c's output queue drained. */
void sess_on_drained(struct conn *c);
/* c's deadline passed. */
void sess_on_deadline(struct conn *c);
/* Begins an orderly close from our side (SIGTERM drain: code 1001). */
void sess_close(struct conn *c, unsigned code, const char *reason);
/* The socket is about to close: tells the worker (if it was not told yet) and releases
 * every buffer c holds. Called by srv_close while c->state still says what c was. */
void sess_on_closed(struct conn *c);
/* Reads c again after a pause (output drained, worker ring has room, worker adopted c). */
void sess_resume(struct conn *c);

/* --- commands from c's worker (pool.c) --- */

/* Sends a message (op WS_OP_TEXT or WS_OP_BINARY) to the client. */
void sess_send(struct conn *c, unsigned op, const void *p, size_t n);
/* Closes the client with code and reason (the worker's CLOSE). */
void sess_worker_close(struct conn *c, unsigned code, const char *reason, size_t n);
/* Lets an authorizing client in: fields "protocol" and "header" (docs/PROTOCOL.md). */
void sess_accept(struct conn *c, const void *fields, size_t n);
/* Answers an authorizing client with an HTTP status and closes it. */
void sess_reject(struct conn *c, unsigned status, const char *reason, size_t n);

#endif
