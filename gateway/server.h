/* The I/O loop: listeners, epoll, timers, signals, and the services it offers to the
 * per-connection protocol code in session.c. One loop thread owns every connection. */
#ifndef WSGW_SERVER_H
#define WSGW_SERVER_H

#include <stddef.h>
#include <stdint.h>

#include "gateway/config.h"

struct conn;

/* Runs the gateway until SIGTERM/SIGINT has drained every connection; SIGHUP reloads
 * cfg's routes and limits in place (cfg_reload). Returns 0 on a clean stop, or -errno when
 * the loop could not start (listen failed, ...), already logged. */
int srv_run(struct gw_config *cfg);

/* --- for session.c: called from the loop thread only --- */

/* The settings in force. */
const struct gw_config *srv_cfg(void);
/* Milliseconds since the loop started, read once per event batch. */
uint32_t srv_now(void);
/* Queues c for the end-of-batch pass: its output is flushed (and a dead c released) then. */
void srv_mark(struct conn *c);
/* Closes c's socket now; c is freed at the end of the batch. reason goes to the debug log. */
void srv_close(struct conn *c, const char *reason);
/* The loop's shared read buffer: WS_RX_TAIL_MAX bytes of room in front of `srv_rbuf_cap`. */
uint8_t *srv_rbuf(size_t *cap);

#endif
