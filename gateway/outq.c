#include "gateway/outq.h"
#include "gateway/budget.h"

#include <errno.h>
#include <limits.h>
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
	size_t off; /* first unwritten byte */
	size_t len; /* bytes filled */
	size_t cap;
	uint8_t data[];
};

/* Standard-size chunks are recycled: malloc and free of 16 KiB for every flushed echo
 * made glibc grow and trim the heap with one brk() per message (measured: as many brk
 * calls as writev calls). Only the loop thread queues output, so the cache needs no lock. */
#define OUTQ_CACHE_MAX 64
static struct outq_chunk *cache;
static unsigned cached;

static struct outq_chunk *chunk_new(size_t cap)
{
	struct outq_chunk *c;
	if (cap == OUTQ_CHUNK && cache) {
		c = cache;
		cache = c->next;
		cached--;
	} else {
		c = malloc(sizeof(*c) + cap);
	}
	if (!c)
		return NULL;
	c->next = NULL;
	c->off = c->len = 0;
	c->cap = cap;
	return c;
}

int outq_append2(struct outq *q, const void *hdr, size_t hlen, const void *payload, size_t n)
{
	size_t need = hlen + n;
	struct outq_chunk *c = q->tail;
	if (!c || c->cap - c->len < need) {
		size_t cap = need > OUTQ_CHUNK ? need : OUTQ_CHUNK;
		if (!q->head && need <= OUTQ_FIRST)
			cap = OUTQ_FIRST;
		c = chunk_new(cap);
		if (!c)
			return -ENOMEM;
		if (q->tail)
			q->tail->next = c;
		else
			q->head = c;
		q->tail = c;
	}
	memcpy(c->data + c->len, hdr, hlen);
	if (n)
		memcpy(c->data + c->len + hlen, payload, n);
	c->len += need;
	q->bytes += need;
	bud_charge(BUD_OUTBOUND, need);
	return 0;
}

static void chunk_free(struct outq_chunk *c)
{
	if (c->cap == OUTQ_CHUNK && cached < OUTQ_CACHE_MAX) {
		c->next = cache;
		cache = c;
		cached++;
	} else {
		free(c);
	}
}

static void pop_head(struct outq *q)
{
	struct outq_chunk *c = q->head;
	q->head = c->next;
	if (!q->head)
		q->tail = NULL;
	chunk_free(c);
}

int outq_flush(struct outq *q, int fd)
{
	while (q->head) {
		struct iovec iov[OUTQ_IOV];
		int cnt = 0;
		for (struct outq_chunk *c = q->head; c && cnt < OUTQ_IOV; c = c->next) {
			iov[cnt].iov_base = c->data + c->off;
			iov[cnt].iov_len = c->len - c->off;
			cnt++;
		}
		ssize_t w = writev(fd, iov, cnt);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN)
				return 1;
			return -errno;
		}
		size_t left = (size_t)w;
		q->bytes -= left;
		bud_credit(BUD_OUTBOUND, left);
		while (left) {
			struct outq_chunk *c = q->head;
			size_t avail = c->len - c->off;
			if (left < avail) {
				c->off += left;
				break;
			}
			left -= avail;
			pop_head(q);
		}
		/* A partial write means the socket buffer is full: another writev would only
		 * return EAGAIN, which costs a syscall. */
		size_t asked = 0;
		for (int i = 0; i < cnt; i++)
			asked += iov[i].iov_len;
		if ((size_t)w < asked)
			return 1;
	}
	return 0;
}

void outq_clear(struct outq *q)
{
	while (q->head)
		pop_head(q);
	bud_credit(BUD_OUTBOUND, q->bytes);
	q->bytes = 0;
}
