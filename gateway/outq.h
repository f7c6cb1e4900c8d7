/* Per-connection queue of bytes waiting for the socket.
 *
 * An empty queue owns no memory, so an idle connection costs nothing here. Frames are
 * either copied into chunks of the queue's own (a large payload gets a chunk of its own
 * size so it is copied once), or, for a message sent to many connections, referenced: the
 * message is framed once into a shared buffer (struct outq_buf) and every queue that sends
 * it points at it. Loop thread only. */
#ifndef WSGW_OUTQ_H
#define WSGW_OUTQ_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct iovec;

struct outq_chunk;

struct outq {
	struct outq_chunk *head, *tail;
	size_t bytes; /* queued and not yet written */
};

/* A frame shared by many queues, reference-counted. */
struct outq_buf {
	uint32_t refs;
	uint32_t len;     /* bytes in data */
	uint64_t tag;     /* what it is (a topic's id), for outq_drop_unsent; 0: none */
	uint8_t data[];
};

/* Appends a frame: hdr (hlen bytes) then payload (n bytes), contiguously in one chunk when
 * they fit. Returns 0, or -ENOMEM (nothing appended). */
int outq_append2(struct outq *q, const void *hdr, size_t hlen, const void *payload, size_t n)
	__attribute__((warn_unused_result));

/* A buffer of n bytes for the caller to fill, with one reference (the caller's), charged
 * to the memory budget's outbound bytes once. NULL when out of memory. */
struct outq_buf *outq_buf_new(size_t n, uint64_t tag);
/* Drops a reference; the last one frees the buffer. */
void outq_buf_unref(struct outq_buf *b);
/* Queues b behind everything queued, taking a reference. Steady state allocates nothing
 * (nodes are recycled). Returns 0 or -ENOMEM (nothing queued). */
int outq_append_buf(struct outq *q, struct outq_buf *b) __attribute__((warn_unused_result));
/* Removes queued shared buffers that no byte of has been written yet, oldest first: every
 * one tagged tag (tag 0: any), until at least need bytes are freed (need 0: all that
 * match). Returns the number removed; *freed (may be NULL) gets their bytes. */
size_t outq_drop_unsent(struct outq *q, uint64_t tag, size_t need, size_t *freed);

/* Appends n bytes of a stream that has no frames (TLS records), filling standard chunks
 * one after another so nothing is allocated in steady state. Returns 0 or -ENOMEM (some
 * bytes may have been appended: the stream is then broken and must be dropped). */
int outq_write(struct outq *q, const void *p, size_t n) __attribute__((warn_unused_result));

/* Points iov (at most max entries) at the first bytes queued, at most limit of them.
 * Returns how many bytes; *cnt gets the entries used. */
size_t outq_iov(const struct outq *q, struct iovec *iov, int max, size_t limit, int *cnt);
/* Drops the first n bytes queued (n at most what is queued): they were written. */
void outq_consume(struct outq *q, size_t n);

/* Writes as much as the socket takes with writev. Returns 0 when the queue is empty
 * afterwards, 1 when bytes remain (the socket is full: wait for EPOLLOUT), or -errno of a
 * write error (the connection is dead). */
int outq_flush(struct outq *q, int fd);

/* Drops everything queued. */
void outq_clear(struct outq *q);
/* Drops everything queued but the rest of a frame already partly written: the peer must
 * still get whole frames (a close frame, say) after it. */
void outq_trim(struct outq *q);

#endif
