/* Per-connection queue of bytes waiting for the socket.
 *
 * An empty queue owns no memory, so an idle connection costs nothing here. Frames are
 * either copied into chunks of the queue's own (a large payload gets a chunk of its own
 * size so it is copied once), or, for a message sent to many connections, referenced: the
 * message is framed once into a shared block (struct outq_frame) and every queue that
 * sends it points at it. Loop thread only. */
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

/* A frame shared by many queues, framed once. Consecutive shared frames are packed into
 * one reference-counted block, so a queue that holds several of them in a row sends them
 * as one span: one node and one iovec, however many publishes a batch carried. */
struct outq_blk;
struct outq_frame {
	struct outq_blk *blk; /* NULL: none */
	uint8_t *data;        /* the frame's bytes, for its maker to fill */
	uint32_t start, len;  /* where in the block, and how long */
	uint64_t tag;         /* what it is (a topic's id), for outq_drop_unsent; 0: none */
};

/* Appends a frame: hdr (hlen bytes) then payload (n bytes), contiguously in one chunk when
 * they fit. Returns 0, or -ENOMEM (nothing appended). */
int outq_append2(struct outq *q, const void *hdr, size_t hlen, const void *payload, size_t n)
	__attribute__((warn_unused_result));

/* Room for a shared frame of n bytes, behind the previous one in the thread's current
 * block when it fits (a large frame gets a block of its own); blocks are charged whole
 * to the memory budget's outbound bytes. f holds a reference (the caller's) until
 * outq_frame_put. 0, or -ENOMEM (f->blk NULL). */
int outq_frame_new(struct outq_frame *f, size_t n, uint64_t tag)
	__attribute__((warn_unused_result));
void outq_frame_put(struct outq_frame *f);
/* Queues f behind everything queued, taking a reference. join: when f continues the
 * queue's last node in the same block, that node grows to cover it (no node at all);
 * such a span of several frames is never taken apart by outq_drop_unsent, so a caller
 * that may drop single frames later passes 0. Steady state allocates nothing (nodes are
 * recycled). Returns 0 or -ENOMEM (nothing queued). */
int outq_append_frame(struct outq *q, const struct outq_frame *f, int join)
	__attribute__((warn_unused_result));
/* Removes queued shared frames (queued without join) that no byte of has been written
 * yet, oldest first: every one tagged tag (tag 0: any), until at least need bytes are
 * freed (need 0: all that match). Returns the number removed; *freed (may be NULL) gets
 * their bytes. */
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

/* A live upgrade moves a queue as bytes. outq_started: the bytes left of a frame partly
 * written (the head chunk's rest; it ends at a frame boundary), 0 when none was started.
 * outq_copy: every queued byte, in order, into out (q->bytes of room). outq_import:
 * queues such a start (head, written first and kept whole by outq_trim) then whole
 * frames (rest). Shared frames become the queue's own bytes. 0 or -ENOMEM (q empty). */
size_t outq_started(const struct outq *q);
void outq_copy(const struct outq *q, uint8_t *out);
int outq_import(struct outq *q, const void *head, size_t head_n, const void *rest, size_t rest_n)
	__attribute__((warn_unused_result));

/* Gives every shared frame of q a block of its own, a copy, so that q can go to another
 * thread's loop: blocks and their counts are their thread's alone. Tags, spans and a
 * frame partly written stay as they were. 0, or -ENOMEM (the nodes before the one that
 * failed are copies; q is whole, but still shares: it must stay on this thread). */
int outq_unshare(struct outq *q) __attribute__((warn_unused_result));
/* Drops everything queued. */
void outq_clear(struct outq *q);
/* A loop thread ends, its queues gone: the chunks and blocks it kept for reuse are freed. */
void outq_thread_end(void);
/* Drops everything queued but the rest of a frame already partly written: the peer must
 * still get whole frames (a close frame, say) after it. */
void outq_trim(struct outq *q);

#endif
