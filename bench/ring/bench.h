/* Shared-memory ring benchmark (make bench-ring): declarations shared by the
 * ring and ZeroMQ halves and the driver in main.c. */
#ifndef WSGW_BENCH_RING_H
#define WSGW_BENCH_RING_H

#include <stdint.h>
#include <sys/types.h>

/* What a receiving child reports to the parent (in a MAP_SHARED page). */
struct bench_result {
	uint64_t records;
	uint64_t bytes;
	uint64_t ns;       /* first record to end marker */
	uint64_t sleeps;   /* consumer futex sleeps (ring only) */
	uint64_t wakes;    /* producer wake syscalls (ring only) */
	uint64_t cpu_ns;   /* consumer process CPU time over the run */
	uint64_t prod_ns;  /* producer: wall time of the run */
	uint64_t prod_cpu_ns; /* producer: its CPU time over the run */
	int err;           /* 0 or -errno */
	volatile int ready; /* the child is set up (zmq: bound) */
};

struct bench_opts {
	double secs;        /* per throughput run */
	uint64_t capacity;  /* ring bytes */
	unsigned pingpongs; /* round trips per latency run */
};

uint64_t bench_now_ns(void);
/* CPU time of the calling process. */
uint64_t bench_cpu_ns(void);
/* Pins the calling process to cpu; returns 0 or -errno (reported, not fatal). */
int bench_pin(int cpu);
/* Forks a child pinned to CPU 1 that runs fn(arg) and _exits with its
 * result (0 ok); the parent pins itself to CPU 0. Returns the pid or -errno. */
pid_t bench_fork(int (*fn)(void *), void *arg);
/* Waits for pid (bounded by timeout_s, then SIGKILL); 0 when it exited 0. */
int bench_reap(pid_t pid, int timeout_s);
/* A MAP_SHARED anonymous result page. */
struct bench_result *bench_result_page(void);

/* Ring throughput with records of `size` payload bytes: parent produces,
 * child consumes. Fills *res from the consumer's view. Returns 0 or -errno. */
int bench_ring_throughput(const struct bench_opts *o, uint32_t size, struct bench_result *res);
/* Ring ping-pong, both sides spinning (spin=1) or sleeping at once (spin=0):
 * one-way latency (round trip / 2) percentiles. */
int bench_ring_pingpong(const struct bench_opts *o, int spin, uint64_t *p50, uint64_t *p99);

/* ZeroMQ PUSH/PULL over ipc:// in a temporary directory, same sizes. */
int bench_zmq_throughput(const struct bench_opts *o, uint32_t size, struct bench_result *res);

#endif
