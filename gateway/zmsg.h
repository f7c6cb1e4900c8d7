/*
 * The zmq transport's codec (docs/PROTOCOL.md, "Messages (zmq transport)"): records
 * written as multipart ZeroMQ messages, and a worker's commands read back into the
 * records its ring would have carried, so both transports share one command path.
 * Pure code but for the sends; no state.
 */
#ifndef WSGW_ZMSG_H
#define WSGW_ZMSG_H

#include <stddef.h>
#include <stdint.h>
#include <zmq.h>

#include "gateway/frame.h"
#include "gateway/transport.h"

/* ACCEPT carries at most this many header frames, of at most ZMSG_ACCEPT_BYTES in all. */
#define ZMSG_ACCEPT_HEADERS 64
#define ZMSG_ACCEPT_BYTES 8192
/* and a subprotocol of at most this many bytes. */
#define ZMSG_PROTOCOL_MAX 255
/* The most frames a worker's message may have: routing id, verb, id, protocol, headers. */
#define ZMSG_MAX_FRAMES (4 + ZMSG_ACCEPT_HEADERS)

/* Sends r to the worker at ident on the ROUTER sock, non-blocking. Returns 0; -EAGAIN when
 * the worker's queue is at its high-water mark or its connection is gone (hold it and
 * retry: the death, if it is one, is noticed by the control channel); -EIO when it cannot
 * be sent (logged). */
int zmsg_send_record(void *sock, const uint8_t *ident, size_t ilen, const struct tr_rec *r);

/* A decoded command: rec and the memory its payload may point to. */
struct zmsg_cmd {
	struct shm_rec rec;
	uint8_t small[2 + WS_CONTROL_MAX]; /* CLOSE and REJECT bodies */
	uint8_t *fields;                    /* ACCEPT bodies (malloc'ed) */
};

/* Decodes the command in frames f[0..n) (the verb first; the routing id removed). The
 * payload may point into the frames: they must outlive cmd. Returns 0; -EINVAL with *why
 * (the text of the ERROR to answer); -ENOMEM. A decoded cmd is released with
 * zmsg_cmd_free. */
int zmsg_decode(zmq_msg_t *f, int n, uint64_t max_message, struct zmsg_cmd *cmd,
		const char **why) __attribute__((warn_unused_result));
void zmsg_cmd_free(struct zmsg_cmd *cmd);

/* Decodes `ACK, N` in frames f[0..n) (the verb first; the routing id removed): N, decimal
 * without sign or spaces, at most UINT64_MAX, into *count. Returns 0, or -EINVAL with *why
 * (the text of the ERROR to answer). Whether N is more than was sent is the transport's
 * question (tr_ops.ack). */
int zmsg_decode_ack(zmq_msg_t *f, int n, uint64_t *count, const char **why)
	__attribute__((warn_unused_result));

/* 1 when frame m holds exactly the string s. */
int zmsg_frame_is(const zmq_msg_t *m, const char *s);
/* Frame m as a NUL-terminated string in buf: 0, or -1 when it does not fit or holds a NUL. */
int zmsg_frame_str(zmq_msg_t *m, char *buf, size_t cap);

#endif
