#include "gateway/outq.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>

/* Small frames share chunks of this size; anything larger gets an exact-size chunk. */
#define OUTQ_CHUNK 16384
#define OUTQ_IOV 64

struct outq_chunk {
	struct outq_chunk *next;
	size_t off; /* first unwritten byte */
	size_t len; /* bytes filled */
	size_t cap;
	uint8_t data[];
};

static struct outq_chunk *chunk_new(size_t cap)
{
	struct outq_chunk *c = malloc(sizeof(*c) + cap);
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
		c = chunk_new(need > OUTQ_CHUNK ? need : OUTQ_CHUNK);
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
	return 0;
}

static void pop_head(struct outq *q)
{
	struct outq_chunk *c = q->head;
	q->head = c->next;
	if (!q->head)
		q->tail = NULL;
	free(c);
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
	q->bytes = 0;
}
