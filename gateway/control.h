/* The control channel: a ZeroMQ ROUTER where workers say HELLO, get WELCOME, and trade
 * heartbeats (docs/PROTOCOL.md). It runs in the loop thread and never blocks: every
 * ZeroMQ call is non-blocking, and the socket's ZMQ_FD sits in the loop's epoll set. */
#ifndef WSGW_CONTROL_H
#define WSGW_CONTROL_H

#include <stddef.h>
#include <stdint.h>

#include "gateway/config.h"

/* Binds the ROUTER and registers its fd with epfd (tag EP_CONTROL). Returns 0 or -errno. */
int ctl_init(const struct gw_config *cfg, int epfd);
/* The ROUTER's fd fired: handle every message waiting. */
void ctl_on_event(void);
/* A worker process exited (its pidfd fired); ptr is the epoll data of that pidfd. */
void ctl_on_pidfd(void *ptr);
/* Periodic: sends heartbeats, declares silent workers dead. */
void ctl_tick(void);
/* Closes the socket and forgets every worker. */
void ctl_shutdown(void);

/* --- the zmq transport (pool.c) --- */

struct ctl_link; /* a zmq-transport worker's address on the control socket */

/* Sends one record (body = a then b) as the multipart message docs/PROTOCOL.md gives for
 * its verb. Returns 0, -EAGAIN (the worker's queue is at its high-water mark, or its
 * connection is gone: hold it and retry), or -EIO (not sendable; logged). */
int ctl_send_record(struct ctl_link *l, uint16_t type, uint16_t flags, uint64_t conn,
		    const void *a, size_t na, const void *b, size_t nb);
/* After sending: ZeroMQ may have consumed the fd's edge, so look for input again. */
void ctl_flush(void);

#endif
