#include "bench/ring/bench.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include <zmq.h>

#define BATCH 256
#define HWM 10000        /* messages queued per side; bounds memory at 4 KiB */
#define TIMEOUT_MS 10000 /* a peer silent this long is gone */

struct zmq_ctx_arg {
	const char *endpoint;
	uint32_t size;
	struct bench_result *res;
};

static int set_int(void *s, int opt, int v)
{
	return zmq_setsockopt(s, opt, &v, sizeof(v));
}

/* Child: PULL side, binds; the end marker is a 1-byte message. */
static int zmq_consume(void *arg)
{
	struct zmq_ctx_arg *a = arg;
	void *ctx = zmq_ctx_new(), *pull;
	char *buf = malloc(a->size + 1);
	uint64_t records = 0, bytes = 0, t0 = 0;
	int n, err = 0;

	if (!ctx || !buf)
		return a->res->err = -ENOMEM;
	pull = zmq_socket(ctx, ZMQ_PULL);
	if (!pull || set_int(pull, ZMQ_RCVHWM, HWM) || set_int(pull, ZMQ_RCVTIMEO, TIMEOUT_MS) ||
	    zmq_bind(pull, a->endpoint)) {
		err = -zmq_errno();
		goto out;
	}
	a->res->ready = 1;
	for (;;) {
		n = zmq_recv(pull, buf, a->size + 1, 0);
		if (n < 0) {
			err = -zmq_errno();
			break;
		}
		if (!t0)
			t0 = bench_now_ns();
		if (n == 1 && a->size != 1) {
			a->res->ns = bench_now_ns() - t0;
			a->res->records = records;
			a->res->bytes = bytes;
			break;
		}
		if ((uint32_t)n != a->size) {
			err = -EBADMSG;
			break;
		}
		records++;
		bytes += (uint64_t)n;
	}
out:
	if (pull)
		zmq_close(pull);
	zmq_ctx_term(ctx);
	free(buf);
	return a->res->err = err;
}

int bench_zmq_throughput(const struct bench_opts *o, uint32_t size, struct bench_result *res)
{
	char dir[] = "/tmp/wsgw-bench-ring-XXXXXX", endpoint[96], path[80];
	struct zmq_ctx_arg a = { .endpoint = endpoint, .size = size, .res = bench_result_page() };
	char *src = calloc(1, size);
	void *ctx = NULL, *push = NULL;
	uint64_t deadline;
	pid_t pid;
	int err = 0;

	if (!a.res || !src) {
		err = -ENOMEM;
		goto out_mem;
	}
	if (!mkdtemp(dir)) {
		err = -errno;
		goto out_mem;
	}
	snprintf(path, sizeof(path), "%s/pushpull", dir);
	snprintf(endpoint, sizeof(endpoint), "ipc://%s", path);
	/* Fork before any ZeroMQ context exists: contexts do not survive fork. */
	pid = bench_fork(zmq_consume, &a);
	if (pid < 0) {
		err = pid;
		goto out;
	}
	/* Connect once the child has bound: no reconnect timer in the figures. */
	for (int i = 0; i < TIMEOUT_MS && !a.res->ready && !a.res->err; i++)
		usleep(1000);
	if (!a.res->ready) {
		err = a.res->err ? a.res->err : -ETIMEDOUT;
		goto reap;
	}
	ctx = zmq_ctx_new();
	push = ctx ? zmq_socket(ctx, ZMQ_PUSH) : NULL;
	if (!push || set_int(push, ZMQ_SNDHWM, HWM) || set_int(push, ZMQ_SNDTIMEO, TIMEOUT_MS) ||
	    set_int(push, ZMQ_LINGER, TIMEOUT_MS) || zmq_connect(push, endpoint)) {
		err = -zmq_errno();
		goto reap;
	}
	deadline = bench_now_ns() + (uint64_t)(o->secs * 1e9);
	while (!err && bench_now_ns() < deadline) {
		for (unsigned b = 0; b < BATCH; b++) {
			if (zmq_send(push, src, size, 0) < 0) {
				err = -zmq_errno();
				break;
			}
		}
	}
	if (!err && zmq_send(push, "E", 1, 0) < 0)
		err = -zmq_errno();
	if (!err) {
		/* Keep the socket open until the child has everything: closing it
		 * with messages queued and relying on ZMQ_LINGER lost the tail of
		 * the stream in 4 runs of 40 here (libzmq 4.3.4, ipc://). */
		err = bench_reap(pid, 30);
		pid = 0;
	}
reap:
	if (push)
		zmq_close(push);
	if (ctx)
		zmq_ctx_term(ctx);
	if (pid > 0)
		(void)bench_reap(pid, 1);
	if (a.res->err)
		err = a.res->err; /* the child's own diagnosis beats "it failed" */
	*res = *a.res;
out:
	unlink(path);
	rmdir(dir);
out_mem:
	if (a.res)
		munmap(a.res, 4096);
	free(src);
	return err;
}
