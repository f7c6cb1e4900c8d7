/* The zmq transport: records as multipart messages to one worker on the control ROUTER. */
#ifndef WSGW_TR_ZMQ_H
#define WSGW_TR_ZMQ_H

#include <stddef.h>
#include <stdint.h>

#include "gateway/transport.h"

/* A transport to the worker whose routing id is ident on sock (the control channel's
 * ROUTER, which stays the control channel's). *sent is set to 1 after every send: ZeroMQ
 * may then have taken the socket's fd edge, so its owner must look for input again.
 * Returns 0 and *out, or -ENOMEM. */
int tr_zmq_new(void *sock, const uint8_t *ident, size_t ilen, int *sent, struct tr **out);

#endif
