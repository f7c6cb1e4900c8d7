#include "bench/ring/bench.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "shm/segment.h"

#define TYPE_DATA 1
#define TYPE_END 2
#define BATCH 256
#define SPIN (1u << 16)        /* ~ tens of µs of spinning before a sleep */
#define IDLE_LIMIT_NS 10000000000ull /* a peer silent this long is gone */

struct tp_ctx {
	int fd;
	uint32_t size;
	struct bench_result *res;
};

/* Child: consumes until the end marker, copying every payload out (what a
 * real consumer does, and what zmq_recv() does). */
static int tp_consume(void *arg)
{
	struct tp_ctx *c = arg;
	struct shm_seg *seg;
	struct shm_ring r;
	unsigned char *buf = malloc(c->size + 1);
	uint64_t seq = 0, bytes = 0, t0 = 0, cpu0 = 0, idle_since = bench_now_ns();
	int err;

	if (!buf)
		return c->res->err = -ENOMEM;
	err = shm_seg_attach_fd(c->fd, &seg);
	if (!err)
		err = shm_seg_ring(seg, SHM_SEG_TO_WORKER, SHM_RING_CONSUMER, &r);
	if (err)
		return c->res->err = err;
	for (;;) {
		struct shm_ring_iter it;
		struct shm_rec rec;
		int n = shm_ring_peek(&r, &it);

		if (n < 0)
			return c->res->err = n;
		if (n == 0) {
			err = shm_ring_wait_data(&r, SPIN, 100);
			if (err && err != -ETIMEDOUT)
				return c->res->err = err;
			if (bench_now_ns() - idle_since > IDLE_LIMIT_NS)
				return c->res->err = -ETIMEDOUT;
			continue;
		}
		if (!t0) {
			t0 = bench_now_ns();
			cpu0 = bench_cpu_ns();
		}
		while ((n = shm_ring_next(&it, &rec)) == 1) {
			if (rec.type == TYPE_END) {
				c->res->ns = bench_now_ns() - t0;
				c->res->cpu_ns = bench_cpu_ns() - cpu0;
				c->res->records = seq;
				c->res->bytes = bytes;
				c->res->sleeps = r.sleeps;
				shm_ring_release(&r, &it);
				return 0;
			}
			if (rec.conn != seq || rec.len != c->size)
				return c->res->err = -EBADMSG;
			memcpy(buf, rec.payload, rec.len);
			bytes += rec.len;
			seq++;
		}
		if (n < 0)
			return c->res->err = n;
		shm_ring_release(&r, &it);
		idle_since = bench_now_ns();
	}
}

static int push_waiting(struct shm_ring *r, uint16_t type, uint64_t conn, const void *p,
			uint32_t len)
{
	for (;;) {
		int err = shm_ring_push(r, type, 0, conn, p, len);

		if (err != -ENOBUFS)
			return err;
		shm_ring_notify(r);
		err = shm_ring_wait_space(r, len, SPIN, (int)(IDLE_LIMIT_NS / 1000000));
		if (err)
			return err;
	}
}

int bench_ring_throughput(const struct bench_opts *o, uint32_t size, struct bench_result *res)
{
	struct shm_seg_opts so = {
		.capacity = { o->capacity, 4096 }, .mode = 0600, .gid = (gid_t)-1,
	};
	struct tp_ctx c = { .size = size, .res = bench_result_page() };
	struct shm_seg *seg;
	struct shm_ring r;
	unsigned char *src = calloc(1, size + 1);
	uint64_t seq = 0, deadline, t0, cpu0;
	pid_t pid;
	int err;

	if (!c.res || !src)
		return -ENOMEM;
	err = shm_seg_create_memfd("bench-ring", &so, &seg);
	if (err)
		return err;
	err = shm_seg_ring(seg, SHM_SEG_TO_WORKER, SHM_RING_PRODUCER, &r);
	if (err)
		goto out;
	c.fd = shm_seg_fd(seg);
	pid = bench_fork(tp_consume, &c);
	if (pid < 0) {
		err = pid;
		goto out;
	}
	t0 = bench_now_ns();
	cpu0 = bench_cpu_ns();
	deadline = t0 + (uint64_t)(o->secs * 1e9);
	while (!err && bench_now_ns() < deadline) {
		for (unsigned b = 0; b < BATCH; b++) {
			err = shm_ring_push(&r, TYPE_DATA, 0, seq, src, size);
			if (err == -ENOBUFS) {
				shm_ring_notify(&r);
				err = shm_ring_wait_space(&r, size, SPIN,
							  (int)(IDLE_LIMIT_NS / 1000000));
			} else if (!err) {
				seq++;
			}
			if (err)
				break;
		}
		shm_ring_notify(&r);
	}
	if (!err)
		err = push_waiting(&r, TYPE_END, seq, NULL, 0);
	shm_ring_notify(&r);
	c.res->prod_ns = bench_now_ns() - t0;
	c.res->prod_cpu_ns = bench_cpu_ns() - cpu0;
	if (!err)
		err = bench_reap(pid, 30);
	else
		(void)bench_reap(pid, 1);
	if (c.res->err)
		err = c.res->err; /* the child's own diagnosis beats "it failed" */
	*res = *c.res;
	res->wakes = r.wakes;
out:
	shm_seg_close(seg);
	munmap(c.res, 4096);
	free(src);
	return err;
}

struct pp_ctx {
	int fd;
	int spin;
	struct bench_result *res;
};

/* Child: echoes every record of the to-worker ring into the to-gateway ring. */
static int pp_echo(void *arg)
{
	struct pp_ctx *c = arg;
	struct shm_seg *seg;
	struct shm_ring in, out;
	unsigned spin = c->spin ? UINT32_MAX : 0;
	int err;

	err = shm_seg_attach_fd(c->fd, &seg);
	if (!err)
		err = shm_seg_ring(seg, SHM_SEG_TO_WORKER, SHM_RING_CONSUMER, &in);
	if (!err)
		err = shm_seg_ring(seg, SHM_SEG_TO_GATEWAY, SHM_RING_PRODUCER, &out);
	while (!err) {
		struct shm_ring_iter it;
		struct shm_rec rec;
		int n;

		err = shm_ring_wait_data(&in, spin, (int)(IDLE_LIMIT_NS / 1000000));
		if (err)
			break;
		n = shm_ring_peek(&in, &it);
		while (n >= 0 && (n = shm_ring_next(&it, &rec)) == 1) {
			if (rec.type == TYPE_END)
				return 0;
			err = push_waiting(&out, rec.type, rec.conn, rec.payload, rec.len);
			if (err)
				break;
		}
		if (n < 0)
			err = n;
		shm_ring_release(&in, &it);
		shm_ring_notify(&out);
	}
	return c->res->err = err;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

int bench_ring_pingpong(const struct bench_opts *o, int spin, uint64_t *p50, uint64_t *p99)
{
	struct shm_seg_opts so = {
		.capacity = { 1 << 16, 1 << 16 }, .mode = 0600, .gid = (gid_t)-1,
	};
	struct pp_ctx c = { .spin = spin, .res = bench_result_page() };
	const unsigned warm = 1000;
	uint64_t *lat = calloc(o->pingpongs + warm, sizeof(*lat));
	uint64_t deadline, payload[8] = { 0 };
	unsigned n = 0;
	struct shm_seg *seg;
	struct shm_ring out, in;
	pid_t pid;
	int err;

	if (!c.res || !lat)
		return -ENOMEM;
	err = shm_seg_create_memfd("bench-pingpong", &so, &seg);
	if (err)
		return err;
	err = shm_seg_ring(seg, SHM_SEG_TO_WORKER, SHM_RING_PRODUCER, &out);
	if (!err)
		err = shm_seg_ring(seg, SHM_SEG_TO_GATEWAY, SHM_RING_CONSUMER, &in);
	if (err)
		goto out;
	c.fd = shm_seg_fd(seg);
	pid = bench_fork(pp_echo, &c);
	if (pid < 0) {
		err = pid;
		goto out;
	}
	deadline = bench_now_ns() + 10000000000ull;
	while (!err && n < o->pingpongs + warm && bench_now_ns() < deadline) {
		struct shm_ring_iter it;
		struct shm_rec rec;
		uint64_t t0 = bench_now_ns();

		err = shm_ring_push(&out, TYPE_DATA, 0, n, payload, sizeof(payload));
		if (err)
			break;
		shm_ring_notify(&out);
		err = shm_ring_wait_data(&in, spin ? UINT32_MAX : 0,
					 (int)(IDLE_LIMIT_NS / 1000000));
		if (err)
			break;
		err = shm_ring_peek(&in, &it);
		if (err > 0)
			err = shm_ring_next(&it, &rec) == 1 && rec.conn == n ? 0 : -EBADMSG;
		if (err)
			break;
		shm_ring_release(&in, &it);
		lat[n++] = (bench_now_ns() - t0) / 2;
	}
	if (!err)
		err = push_waiting(&out, TYPE_END, 0, NULL, 0);
	shm_ring_notify(&out);
	if (!err)
		err = bench_reap(pid, 30);
	else
		(void)bench_reap(pid, 1);
	if (c.res->err)
		err = c.res->err; /* the child's own diagnosis beats "it failed" */
	if (!err && n > warm) {
		qsort(lat + warm, n - warm, sizeof(*lat), cmp_u64);
		*p50 = lat[warm + (n - warm) / 2];
		*p99 = lat[warm + (uint64_t)(n - warm) * 99 / 100];
	} else if (!err) {
		err = -ETIMEDOUT;
	}
out:
	shm_seg_close(seg);
	munmap(c.res, 4096);
	free(lat);
	return err;
}
