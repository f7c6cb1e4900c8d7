#include "gateway/outq.h"
#include "gateway/budget.h"
#include "gateway/bufpool.h"

#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>

/* A queue starts with a chunk that malloc serves from its per-thread cache (1 KiB in
 * all); more frames go to 16 KiB chunks; a larger frame gets a chunk of its own size. */
#define OUTQ_CHUNK 16384
#define OUTQ_FIRST (1024 - sizeof(struct outq_chunk))
#define OUTQ_IOV 64

struct outq_chunk {
	struct outq_chunk *next;
	size_t off;           /* first unwritten byte */
	size_t len;           /* bytes filled */
	size_t cap;           /* 0 for a shared node */
	struct outq_buf *buf; /* a shared node's bytes; NULL: data[] */
	uint8_t data[];
};

/* Standard-size chunks are recycled: malloc and free of 16 KiB for every flushed echo
 * made glibc grow and trim the heap with one brk() per message (measured: as many brk
 * calls as writev calls). Shared nodes are recycled too, so a publish to thousands of
 * connections allocates nothing in steady state. A loop's queues are its thread's alone. */
#define OUTQ_CACHE_MAX 64
#define OUTQ_NODES_MAX 262144
static _Thread_local struct outq_chunk *cache, *nodes;
static _Thread_local unsigned cached, n_nodes;

static struct outq_chunk *chunk_new(size_t cap)
{
	struct outq_chunk *c;
	if (cap == OUTQ_CHUNK && cache) {
		c = cache;
		cache = c->next;
		cached--;
	} else if (cap == 0 && nodes) {
		c = nodes;
		nodes = c->next;
		n_nodes--;
	} else if (cap > OUTQ_CHUNK) {
		/* A large frame's chunk comes from the pool: no malloc, brk or page faults
		 * per message (a 64 KiB echo had all three). */
		size_t got;
		c = bp_get(sizeof(*c) + cap, &got);
		cap = got - sizeof(*c);
	} else {
		c = malloc(sizeof(*c) + cap);
	}
	if (!c)
		return NULL;
	c->next = NULL;
	c->off = c->len = 0;
	c->cap = cap;
	c->buf = NULL;
	return c;
}

static void link_tail(struct outq *q, struct outq_chunk *c)
{
	if (q->tail)
		q->tail->next = c;
	else
		q->head = c;
	q->tail = c;
}

int outq_append2(struct outq *q, const void *hdr, size_t hlen, const void *payload, size_t n)
{
	size_t need = hlen + n;
	struct outq_chunk *c = q->tail;
	/* A shared node (cap 0) has no room of its own, and a large frame's chunk holds it
	 * alone (what a trim keeps of it is that frame): the frame goes into a new chunk. */
	if (!c || c->buf || c->cap > OUTQ_CHUNK || c->cap - c->len < need) {
		size_t cap = need > OUTQ_CHUNK ? need : OUTQ_CHUNK;
		if (!q->head && need <= OUTQ_FIRST)
			cap = OUTQ_FIRST;
		c = chunk_new(cap);
		if (!c)
			return -ENOMEM;
		link_tail(q, c);
	}
	memcpy(c->data + c->len, hdr, hlen);
	if (n)
		memcpy(c->data + c->len + hlen, payload, n);
	c->len += need;
	q->bytes += need;
	bud_charge(BUD_OUTBOUND, need);
	return 0;
}

struct outq_buf *outq_buf_new(size_t n, uint64_t tag)
{
	struct outq_buf *b = malloc(sizeof(*b) + n);
	if (!b)
		return NULL;
	b->refs = 1;
	b->len = (uint32_t)n;
	b->tag = tag;
	bud_charge(BUD_OUTBOUND, n);
	return b;
}

void outq_buf_unref(struct outq_buf *b)
{
	if (--b->refs)
		return;
	bud_credit(BUD_OUTBOUND, b->len);
	free(b);
}

int outq_append_buf(struct outq *q, struct outq_buf *b)
{
	struct outq_chunk *c = chunk_new(0);
	if (!c)
		return -ENOMEM;
	c->buf = b;
	c->len = b->len;
	b->refs++;
	link_tail(q, c);
	q->bytes += b->len;
	return 0;
}

static void chunk_free(struct outq_chunk *c)
{
	if (c->buf) {
		outq_buf_unref(c->buf);
		if (n_nodes < OUTQ_NODES_MAX) {
			c->next = nodes;
			nodes = c;
			n_nodes++;
			return;
		}
		free(c);
	} else if (c->cap == OUTQ_CHUNK && cached < OUTQ_CACHE_MAX) {
		c->next = cache;
		cache = c;
		cached++;
	} else if (c->cap > OUTQ_CHUNK) {
		bp_put(c, sizeof(*c) + c->cap);
	} else {
		free(c);
	}
}

static const uint8_t *chunk_data(const struct outq_chunk *c)
{
	return c->buf ? c->buf->data : c->data;
}

static void pop_head(struct outq *q)
{
	struct outq_chunk *c = q->head;
	q->head = c->next;
	if (!q->head)
		q->tail = NULL;
	/* Owned bytes are the budget's until written; a shared buffer's until its last unref. */
	if (!c->buf)
		bud_credit(BUD_OUTBOUND, c->len - c->off);
	q->bytes -= c->len - c->off;
	chunk_free(c);
}

size_t outq_drop_unsent(struct outq *q, uint64_t tag, size_t need, size_t *freed)
{
	size_t n = 0, got = 0;
	struct outq_chunk *prev = NULL, *c = q->head;
	while (c && (!need || got < need)) {
		struct outq_chunk *next = c->next;
		if (c->buf && c->off == 0 && (!tag || c->buf->tag == tag)) {
			if (prev)
				prev->next = next;
			else
				q->head = next;
			if (q->tail == c)
				q->tail = prev;
			q->bytes -= c->len;
			got += c->len;
			n++;
			chunk_free(c);
		} else {
			prev = c;
		}
		c = next;
	}
	if (freed)
		*freed = got;
	return n;
}

size_t outq_iov(const struct outq *q, struct iovec *iov, int max, size_t limit, int *cnt)
{
	size_t got = 0;
	int n = 0;
	for (struct outq_chunk *c = q->head; c && n < max && got < limit; c = c->next) {
		size_t len = c->len - c->off;
		if (len > limit - got)
			len = limit - got;
		iov[n].iov_base = (void *)(chunk_data(c) + c->off);
		iov[n].iov_len = len;
		got += len;
		n++;
	}
	*cnt = n;
	return got;
}

void outq_consume(struct outq *q, size_t n)
{
	while (n) {
		struct outq_chunk *c = q->head;
		size_t avail = c->len - c->off;
		if (n < avail) {
			c->off += n;
			q->bytes -= n;
			if (!c->buf)
				bud_credit(BUD_OUTBOUND, n);
			return;
		}
		n -= avail;
		pop_head(q);
	}
}

int outq_write(struct outq *q, const void *p, size_t n)
{
	const uint8_t *src = p;
	while (n) {
		struct outq_chunk *c = q->tail;
		if (!c || c->buf || c->len == c->cap) {
			c = chunk_new(OUTQ_CHUNK);
			if (!c)
				return -ENOMEM;
			link_tail(q, c);
		}
		size_t k = c->cap - c->len < n ? c->cap - c->len : n;
		memcpy(c->data + c->len, src, k);
		c->len += k;
		q->bytes += k;
		bud_charge(BUD_OUTBOUND, k);
		src += k;
		n -= k;
	}
	return 0;
}

int outq_flush(struct outq *q, int fd)
{
	while (q->head) {
		struct iovec iov[OUTQ_IOV];
		int cnt;
		size_t asked = outq_iov(q, iov, OUTQ_IOV, SIZE_MAX, &cnt);
		ssize_t w = writev(fd, iov, cnt);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN)
				return 1;
			return -errno;
		}
		outq_consume(q, (size_t)w);
		/* A partial write means the socket buffer is full: another writev would only
		 * return EAGAIN, which costs a syscall. */
		if ((size_t)w < asked)
			return 1;
	}
	return 0;
}

void outq_clear(struct outq *q)
{
	while (q->head)
		pop_head(q);
	q->bytes = 0;
}

void outq_trim(struct outq *q)
{
	struct outq_chunk *keep = q->head && q->head->off ? q->head : NULL;
	if (!keep) {
		outq_clear(q);
		return;
	}
	/* A chunk holds whole frames: what remains of the head ends at a frame boundary. */
	q->head = keep->next;
	while (q->head)
		pop_head(q);
	keep->next = NULL;
	q->head = q->tail = keep;
}
