/* The zmq transport: records as multipart messages to one worker on the control ROUTER. */
#ifndef WSGW_TR_ZMQ_H
#define WSGW_TR_ZMQ_H

#include <stddef.h>
#include <stdint.h>

#include "gateway/transport.h"

/* How much a zmq worker may have unacknowledged (docs/PROTOCOL.md, "Acknowledgements"):
 * records and their body bytes. One record is let through an empty window whatever its
 * size, so a message larger than bytes still goes. */
struct tr_zmq_window {
	uint32_t records;
	uint64_t bytes;
};

/* A transport to the worker whose routing id is ident on sock (the control channel's
 * ROUTER, which stays the control channel's). *sent is set to 1 after every send: ZeroMQ
 * may then have taken the socket's fd edge, so its owner must look for input again.
 * Every OPEN, MESSAGE, CLOSE and GONE it sends is counted and a copy kept until the
 * worker's ACK covers it (tr_ops.ack); past the window push returns -EAGAIN. ERROR is
 * neither counted nor kept. Returns 0 and *out, or -ENOMEM. */
int tr_zmq_new(void *sock, const uint8_t *ident, size_t ilen, int *sent,
	       const struct tr_zmq_window *win, struct tr **out);

/* --- a live upgrade (docs/UPGRADE.md "zmq workers") --- */

/* 1 when t is a zmq transport. */
int tr_zmq_is(const struct tr *t);
/* Counted records sent to the worker, and of them unacknowledged. */
uint64_t tr_zmq_counted(const struct tr *t);
uint64_t tr_zmq_unacked(const struct tr *t);
/* A new process's transport for a worker handed over: its counting goes on from n (all
 * acknowledged), so the worker's next ACK counts as it did for the old process. Only
 * before the first push. */
void tr_zmq_count_from(struct tr *t, uint64_t n);

#endif
