/*
 * How the gateway talks to one worker: the shm transport (gateway/tr_shm.c, records in the
 * worker's segment) and the zmq transport (gateway/tr_zmq.c, multipart messages on the
 * control socket) behind one small table of operations, so nothing above them branches on
 * the transport. Loop thread only.
 */
#ifndef WSGW_TRANSPORT_H
#define WSGW_TRANSPORT_H

#include <stddef.h>
#include <stdint.h>

#include "shm/ring.h"

#include <time.h>

/* CLOCK_MONOTONIC in ms, for the age of what a worker has not consumed. */
static inline uint64_t tr_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* A record on its way to a worker: verb, flags, connection, and a body in two parts (a,
 * then b) so a header and a payload need not be joined first. */
struct tr_rec {
	uint16_t type, flags;
	uint64_t conn;
	const void *a;
	size_t na;
	const void *b;
	size_t nb;
};

struct tr;

/* What a worker was sent and has not consumed yet: its lag. */
struct tr_stats {
	uint64_t bytes;      /* shm: unread bytes of its to-worker ring; zmq: unacknowledged bodies */
	uint64_t capacity;   /* the most there may be (the ring's size, the window's bytes) */
	uint64_t records;    /* how many records that is */
	uint32_t oldest_ms;  /* how long the oldest of them has waited (0: none waits) */
};

/* Receives one record: a command from the worker (poll), or a record the worker never
 * consumed (salvage). r and its payload are valid only during the call. */
typedef void tr_rec_fn(void *arg, const struct shm_rec *r);

struct tr_ops {
	const char *name; /* "shm", "zmq": for logs */
	/* Queues r for the worker. 0; -EAGAIN: no room now (hold it and retry); -EMSGSIZE: it
	 * can never fit; -ENOMEM: no memory for it now (nothing queued); -EIO: the transport
	 * is broken (the worker must be dropped). */
	int (*push)(struct tr *t, const struct tr_rec *r);
	/* 1 when the last push was refused for room that only the worker's own input can
	 * make (zmq: its window, opened by an ACK, whose arrival wakes the loop anyway), so
	 * nobody needs to poll for it. NULL: never (shm: a consumer does not ring). */
	int (*awaits_input)(struct tr *t);
	/* The worker's acknowledgement: it has finished with the first n records it was sent
	 * since it attached that the transport counts. Frees what it kept for them. Returns
	 * 0 (n at most what it already acknowledged changes nothing), or -ERANGE: n is more
	 * than were sent (nothing changed). NULL: the transport takes none (shm: the ring's
	 * tail says what was consumed). */
	int (*ack)(struct tr *t, uint64_t n);
	/* End of a batch: makes what was pushed visible to the worker, waking it if needed. */
	void (*flush)(struct tr *t);
	/* Dispatches the worker's commands waiting now to fn. Returns how many, or -EBADMSG
	 * when the worker corrupted the channel (records before the corruption were given).
	 * NULL when the commands arrive another way (zmq: the control channel decodes them). */
	int (*poll)(struct tr *t, tr_rec_fn *fn, void *arg);
	/* 1 when commands are waiting (before sleeping). NULL with poll. */
	int (*pending)(struct tr *t);
	/* After the worker died: every record it was sent and never consumed (shm: left in
	 * its ring; zmq: never acknowledged), in order. */
	void (*salvage)(struct tr *t, tr_rec_fn *fn, void *arg);
	/* Its lag now (for /metrics). */
	void (*stats)(struct tr *t, struct tr_stats *out);
	void (*free)(struct tr *t);
};

/* Every transport's struct begins with this. */
struct tr {
	const struct tr_ops *ops;
	uint64_t max_len; /* the largest body push can ever take */
};

#endif
