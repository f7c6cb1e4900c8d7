#include "gateway/tr_shm.h"
#include "gateway/log.h"
#include "shm/segment.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct tr_shm {
	struct tr tr;
	struct shm_seg *seg;
	struct shm_ring to_w, to_gw;
	char name[64];
	int dirty; /* records pushed since the last notify */
	/* When each published head was published, oldest first: the age of the oldest
	 * record the worker has not read is that of the first mark past its tail. When
	 * full, the newest mark moves forward (later records then look older, never
	 * younger). */
	struct { uint64_t pos, ms; } marks[64];
	unsigned m_first, m_n;
};

#define N_MARKS 64u

static int shm_push(struct tr *t, const struct tr_rec *r)
{
	struct tr_shm *s = (struct tr_shm *)t;
	size_t n = r->na + r->nb;
	void *dst;
	if (n > UINT32_MAX)
		return -EMSGSIZE;
	int rc = shm_ring_reserve(&s->to_w, (uint32_t)n, &dst);
	switch (rc) {
	case 0:
		break;
	case -ENOBUFS:
		return -EAGAIN;
	case -EMSGSIZE:
		return rc;
	default: /* -EBADMSG: the worker corrupted the ring's tail */
		return -EIO;
	}
	if (r->na)
		memcpy(dst, r->a, r->na);
	if (r->nb)
		memcpy((uint8_t *)dst + r->na, r->b, r->nb);
	shm_ring_commit(&s->to_w, r->type, r->flags, r->conn, (uint32_t)n);
	s->dirty = 1;
	return 0;
}

static void shm_flush(struct tr *t)
{
	struct tr_shm *s = (struct tr_shm *)t;
	if (s->dirty) {
		s->dirty = 0;
		shm_ring_notify(&s->to_w);
		uint64_t head = s->to_w.published;
		if (s->m_n == N_MARKS) {
			s->marks[(s->m_first + s->m_n - 1) % N_MARKS].pos = head;
		} else {
			unsigned i = (s->m_first + s->m_n++) % N_MARKS;
			s->marks[i].pos = head;
			s->marks[i].ms = tr_now_ms();
		}
	}
}

static void shm_stats(struct tr *t, struct tr_stats *out)
{
	struct tr_shm *s = (struct tr_shm *)t;
	struct shm_ring *r = &s->to_w;
	uint64_t head = r->published;
	/* Pairs with the worker's release-store of tail as it consumes. */
	uint64_t tail = atomic_load_explicit(&r->ctl->tail, memory_order_acquire);
	memset(out, 0, sizeof(*out));
	out->capacity = r->cap;
	if (head - tail > r->cap)
		return; /* a tail the worker wrote wrongly: nothing to say */
	out->bytes = head - tail;
	/* The records between tail and head are the gateway's own, but the walk still checks
	 * every length, and stops at a bound. */
	for (uint64_t pos = tail, n = 0; pos < head && n < (1u << 20); n++) {
		uint64_t off = pos & r->mask, room = r->cap - off;
		struct shm_rec_hdr h;
		memcpy(&h, r->data + off, 8);
		if (h.type == SHM_REC_WRAP) {
			pos += room;
			continue;
		}
		uint64_t size = shm_ring_rec_size(h.len);
		if (h.len > r->max_payload || size > room)
			break;
		out->records++;
		pos += size;
	}
	while (s->m_n && s->marks[s->m_first].pos <= tail) {
		s->m_first = (s->m_first + 1) % N_MARKS;
		s->m_n--;
	}
	if (out->bytes && s->m_n)
		out->oldest_ms = (uint32_t)(tr_now_ms() - s->marks[s->m_first].ms);
}

static int shm_poll(struct tr *t, tr_rec_fn *fn, void *arg)
{
	struct tr_shm *s = (struct tr_shm *)t;
	struct shm_ring_iter it;
	int rc = shm_ring_peek(&s->to_gw, &it);
	if (rc <= 0)
		return rc < 0 ? -EBADMSG : 0;
	int n = 0;
	struct shm_rec r;
	while ((rc = shm_ring_next(&it, &r)) == 1) {
		fn(arg, &r);
		n++;
	}
	shm_ring_release(&s->to_gw, &it);
	return rc < 0 ? -EBADMSG : n;
}

static int shm_pending(struct tr *t)
{
	struct tr_shm *s = (struct tr_shm *)t;
	return shm_ring_pending(&s->to_gw);
}

static void shm_salvage(struct tr *t, tr_rec_fn *fn, void *arg)
{
	struct tr_shm *s = (struct tr_shm *)t;
	/* Committed records become visible only when published: publish, then read them back
	 * as the consumer the worker was. */
	shm_ring_notify(&s->to_w);
	struct shm_ring r;
	struct shm_ring_iter it;
	if (shm_seg_ring(s->seg, SHM_SEG_TO_WORKER, SHM_RING_CONSUMER, &r) ||
	    shm_ring_peek(&r, &it) < 0) {
		log_warn(0, "segment %s: the worker corrupted its to-worker ring; its unconsumed records are lost",
			 s->name);
		return;
	}
	struct shm_rec rec;
	while (shm_ring_next(&it, &rec) == 1)
		fn(arg, &rec);
}

int tr_shm_fd(const struct tr *t)
{
	return shm_seg_fd(((const struct tr_shm *)t)->seg);
}

static void shm_free(struct tr *t)
{
	struct tr_shm *s = (struct tr_shm *)t;
	shm_seg_close(s->seg);
	free(s);
}

static const struct tr_ops shm_ops = {
	.name = "shm",
	.push = shm_push,
	.flush = shm_flush,
	.poll = shm_poll,
	.pending = shm_pending,
	.salvage = shm_salvage,
	.stats = shm_stats,
	.free = shm_free,
};

/* The segment's two rings, the worker ringing the gateway's one doorbell, which one
 * thread sleeps on for all. */
static int open_rings(struct tr_shm *s, struct shm_doorbell *bell)
{
	int rc = shm_seg_ring(s->seg, SHM_SEG_TO_WORKER, SHM_RING_PRODUCER, &s->to_w);
	if (rc == 0)
		rc = shm_seg_ring(s->seg, SHM_SEG_TO_GATEWAY, SHM_RING_CONSUMER, &s->to_gw);
	if (rc)
		return rc;
	shm_ring_set_data_doorbell(&s->to_gw, bell);
	s->tr.max_len = shm_ring_max_payload(&s->to_w);
	return 0;
}

int tr_shm_new(const struct tr_shm_opts *o, struct tr **out, struct tr_shm_info *info)
{
	struct tr_shm *s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->tr.ops = &shm_ops;
	snprintf(s->name, sizeof(s->name), "wsgw-%d-%u", (int)getpid(), o->worker_id);
	struct shm_seg_opts so = {
		.capacity = { o->ring_bytes, o->ring_bytes },
		.mode = o->mode,
		.gid = (gid_t)-1,
	};
	/* A sealed memfd: no name another process could open, and a worker holding the fd
	 * cannot shrink it under the gateway (which would SIGBUS it). */
	int rc = shm_seg_create_memfd(s->name, &so, &s->seg);
	if (rc == 0)
		rc = open_rings(s, o->bell);
	if (rc) {
		log_error(-rc, "segment %s", s->name);
		shm_seg_close(s->seg);
		free(s);
		return rc;
	}
	info->to_worker_bytes = info->to_gateway_bytes = o->ring_bytes;
	*out = &s->tr;
	return 0;
}

int tr_shm_adopt(int fd, unsigned worker_id, struct shm_doorbell *bell, struct tr **out)
{
	struct tr_shm *s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->tr.ops = &shm_ops;
	snprintf(s->name, sizeof(s->name), "wsgw-%d-%u", (int)getpid(), worker_id);
	/* The rings open where the replaced gateway left them: it published its head and
	 * released what it read, so the shared indexes are the whole state. */
	int rc = shm_seg_adopt_fd(fd, &s->seg);
	if (rc == 0)
		rc = open_rings(s, bell);
	if (rc) {
		log_error(-rc, "segment of worker %u handed over", worker_id);
		if (s->seg)
			shm_seg_close(s->seg); /* closes fd: adopted */
		else
			close(fd);
		free(s);
		return rc;
	}
	*out = &s->tr;
	return 0;
}

int tr_shm_is(const struct tr *t)
{
	return t->ops == &shm_ops;
}

void tr_shm_publish(struct tr *t)
{
	shm_flush(t);
}

void tr_shm_set_gateway_pid(struct tr *t, pid_t pid)
{
	shm_seg_set_gateway_pid(((struct tr_shm *)t)->seg, (uint32_t)pid);
}
