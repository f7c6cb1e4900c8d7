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
	struct outq_blk *blk; /* a shared node's bytes: blk->data[start, len); NULL: data[] */
	size_t start;         /* the node's first byte (0 in a chunk of the queue's own) */
	size_t off;           /* first unwritten byte */
	size_t len;           /* end of the bytes filled */
	size_t cap;           /* 0 for a shared node */
	uint64_t tag;         /* a shared node's frame's tag */
	int joined;           /* a shared node that grew to cover several frames */
	uint8_t data[];
};

/* Shared frames' blocks. A publish to 10,000 subscribers with 16 in flight used to give
 * each subscriber one node per frame: the gateway spent a third of its time walking and
 * linking 160,000 nodes (outq_iov, outq_append_buf in perf). Packed into one block,
 * a subscriber's frames of one batch are one span. */
struct outq_blk {
	uint32_t refs;
	uint32_t used; /* bytes handed out */
	uint32_t cap;  /* bytes in data */
	uint8_t data[];
};

/* A standard block is a page; frames above a quarter of one get a block of their own
 * size, so at most a quarter of a block is left unused at its end. */
#define OUTQ_BLK (4096 - sizeof(struct outq_blk))
#define OUTQ_BLK_ALONE (OUTQ_BLK / 4)
#define OUTQ_BLK_CACHE 64

/* Standard-size chunks are recycled: malloc and free of 16 KiB for every flushed echo
 * made glibc grow and trim the heap with one brk() per message (measured: as many brk
 * calls as writev calls). Shared nodes are recycled too, so a publish to thousands of
 * connections allocates nothing in steady state. A loop's queues are its thread's alone. */
#define OUTQ_CACHE_MAX 64
#define OUTQ_NODES_MAX 262144
static _Thread_local struct outq_chunk *cache, *nodes;
static _Thread_local unsigned cached, n_nodes;
/* The block frames are packed into (not a reference: it stops being current when its
 * last frame is released), and free standard blocks (their first bytes link them). */
static _Thread_local struct outq_blk *blk_cur, *blk_free;
static _Thread_local unsigned blk_cached;

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
	c->start = c->off = c->len = 0;
	c->cap = cap;
	c->blk = NULL;
	c->tag = 0;
	c->joined = 0;
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
	if (!c || c->blk || c->cap > OUTQ_CHUNK || c->cap - c->len < need) {
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

static struct outq_blk *blk_alloc(size_t n)
{
	struct outq_blk *b;
	size_t cap = n;
	if (n <= OUTQ_BLK && blk_free) {
		b = blk_free;
		memcpy(&blk_free, b->data, sizeof(blk_free));
		blk_cached--;
		cap = OUTQ_BLK;
	} else if (n <= OUTQ_BLK) {
		b = malloc(sizeof(*b) + OUTQ_BLK);
		cap = OUTQ_BLK;
	} else if (n > OUTQ_CHUNK) {
		size_t got;
		b = bp_get(sizeof(*b) + n, &got);
		cap = got - sizeof(*b);
	} else {
		b = malloc(sizeof(*b) + n);
	}
	if (!b)
		return NULL;
	b->refs = 0;
	b->used = 0;
	b->cap = (uint32_t)cap;
	bud_charge(BUD_OUTBOUND, cap);
	return b;
}

static void blk_unref(struct outq_blk *b)
{
	if (--b->refs)
		return;
	if (b == blk_cur)
		blk_cur = NULL;
	bud_credit(BUD_OUTBOUND, b->cap);
	if (b->cap == OUTQ_BLK && blk_cached < OUTQ_BLK_CACHE) {
		memcpy(b->data, &blk_free, sizeof(blk_free));
		blk_free = b;
		blk_cached++;
	} else if (b->cap > OUTQ_CHUNK) {
		bp_put(b, sizeof(*b) + b->cap);
	} else {
		free(b);
	}
}

int outq_frame_new(struct outq_frame *f, size_t n, uint64_t tag)
{
	struct outq_blk *b = blk_cur;
	f->blk = NULL;
	if (n > UINT32_MAX - sizeof(*b))
		return -ENOMEM;
	if (n > OUTQ_BLK_ALONE) {
		b = blk_alloc(n);
	} else if (!b || b->cap - b->used < n) {
		b = blk_alloc(n);
		if (b)
			blk_cur = b;
	}
	if (!b)
		return -ENOMEM;
	b->refs++;
	f->blk = b;
	f->start = b->used;
	f->len = (uint32_t)n;
	f->data = b->data + b->used;
	f->tag = tag;
	b->used += (uint32_t)n;
	return 0;
}

void outq_frame_put(struct outq_frame *f)
{
	if (f->blk)
		blk_unref(f->blk);
	f->blk = NULL;
}

int outq_append_frame(struct outq *q, const struct outq_frame *f, int join)
{
	struct outq_chunk *t = q->tail;
	if (join && t && t->blk == f->blk && t->len == f->start) {
		/* The span's reference covers the frame: one per node, not per frame. */
		t->len += f->len;
		t->joined = 1;
		q->bytes += f->len;
		return 0;
	}
	struct outq_chunk *c = chunk_new(0);
	if (!c)
		return -ENOMEM;
	c->blk = f->blk;
	c->start = c->off = f->start;
	c->len = (size_t)f->start + f->len;
	c->tag = f->tag;
	f->blk->refs++;
	link_tail(q, c);
	q->bytes += f->len;
	return 0;
}

int outq_unshare(struct outq *q)
{
	struct outq_blk *b = NULL; /* where the copies are packed, as frames are in blk_cur */
	for (struct outq_chunk *c = q->head; c; c = c->next) {
		if (!c->blk)
			continue;
		/* The whole node, written part too: off - start says where the peer is, and
		 * outq_trim and outq_started read a partly written frame from it. Never the
		 * thread's current block: no later frame of this thread is packed into it. */
		size_t n = c->len - c->start;
		if (!b || b->cap - b->used < n) {
			b = blk_alloc(n < OUTQ_BLK ? OUTQ_BLK : n);
			if (!b)
				return -ENOMEM;
		}
		memcpy(b->data + b->used, c->blk->data + c->start, n);
		b->refs++;
		blk_unref(c->blk);
		c->blk = b;
		c->off = b->used + (c->off - c->start);
		c->start = b->used;
		c->len = (size_t)b->used + n;
		b->used += (uint32_t)n;
	}
	return 0;
}

void outq_thread_end(void)
{
	for (struct outq_chunk *c; (c = cache); cache = c->next, free(c))
		;
	for (struct outq_chunk *c; (c = nodes); nodes = c->next, free(c))
		;
	for (struct outq_blk *b; (b = blk_free);) {
		memcpy(&blk_free, b->data, sizeof(blk_free));
		free(b);
	}
	cached = n_nodes = blk_cached = 0;
}

static void chunk_free(struct outq_chunk *c)
{
	if (c->blk) {
		blk_unref(c->blk);
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
	return c->blk ? c->blk->data : c->data;
}

static void pop_head(struct outq *q)
{
	struct outq_chunk *c = q->head;
	q->head = c->next;
	if (!q->head)
		q->tail = NULL;
	/* Owned bytes are the budget's until written; a shared block's until its last unref. */
	if (!c->blk)
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
		if (c->blk && !c->joined && c->off == c->start && (!tag || c->tag == tag)) {
			if (prev)
				prev->next = next;
			else
				q->head = next;
			if (q->tail == c)
				q->tail = prev;
			q->bytes -= c->len - c->start;
			got += c->len - c->start;
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
			if (!c->blk)
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
		if (!c || c->blk || c->len == c->cap) {
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
	struct outq_chunk *keep = q->head && q->head->off != q->head->start ? q->head : NULL;
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

size_t outq_started(const struct outq *q)
{
	const struct outq_chunk *c = q->head;
	return c && c->off != c->start ? c->len - c->off : 0;
}

void outq_copy(const struct outq *q, uint8_t *out)
{
	for (const struct outq_chunk *c = q->head; c; c = c->next) {
		memcpy(out, chunk_data(c) + c->off, c->len - c->off);
		out += c->len - c->off;
	}
}

int outq_import(struct outq *q, const void *head, size_t head_n, const void *rest, size_t rest_n)
{
	if (head_n) {
		/* The rest of a frame the old process wrote in part: a chunk whose first byte
		 * counts as written (off 1), so outq_trim keeps it whole as it keeps any
		 * partly written head. */
		/* Exactly its size: no later frame shares the chunk, so outq_started of the new
		 * queue is what it was in the old. */
		struct outq_chunk *c = chunk_new(head_n + 1);
		if (!c)
			return -ENOMEM;
		c->data[0] = 0;
		memcpy(c->data + 1, head, head_n);
		c->off = 1;
		c->len = head_n + 1;
		link_tail(q, c);
		q->bytes += head_n;
		bud_charge(BUD_OUTBOUND, head_n);
	}
	/* Whole frames: one chunk of them, as a large frame's chunk holds it alone. */
	if (rest_n && outq_append2(q, rest, rest_n, NULL, 0)) {
		outq_clear(q);
		return -ENOMEM;
	}
	return 0;
}
