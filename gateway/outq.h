/* Per-connection queue of bytes waiting for the socket.
 *
 * An empty queue owns no memory, so an idle connection costs nothing here. Bytes are copied
 * into chunks; a large payload gets a chunk of its own size so it is copied once. */
#ifndef WSGW_OUTQ_H
#define WSGW_OUTQ_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct outq_chunk;

struct outq {
	struct outq_chunk *head, *tail;
	size_t bytes; /* queued and not yet written */
};

/* Appends a frame: hdr (hlen bytes) then payload (n bytes), contiguously in one chunk when
 * they fit. Returns 0, or -ENOMEM (nothing appended). */
int outq_append2(struct outq *q, const void *hdr, size_t hlen, const void *payload, size_t n)
	__attribute__((warn_unused_result));

/* Writes as much as the socket takes with writev. Returns 0 when the queue is empty
 * afterwards, 1 when bytes remain (the socket is full: wait for EPOLLOUT), or -errno of a
 * write error (the connection is dead). */
int outq_flush(struct outq *q, int fd);

/* Drops everything queued. */
void outq_clear(struct outq *q);

#endif
