/* The shm transport: a worker's segment with its two rings (shm/segment.h, docs/SHM.md),
 * in a sealed memfd that reaches the worker only as a file descriptor (gateway/attach.h). */
#ifndef WSGW_TR_SHM_H
#define WSGW_TR_SHM_H

#include <stdint.h>
#include <sys/types.h>

#include "gateway/transport.h"
#include "shm/doorbell.h"

struct tr_shm_opts {
	unsigned worker_id;         /* labels the memfd: wsgw-<gateway pid>-<id> */
	uint64_t ring_bytes;        /* each ring, a power of two */
	mode_t mode;                /* the memfd's mode (it has no name: 0600) */
	struct shm_doorbell *bell;  /* the gateway's doorbell, which the worker rings */
};

/* What WELCOME tells the worker about its segment. */
struct tr_shm_info {
	uint64_t to_worker_bytes, to_gateway_bytes;
};

/* Creates the worker's segment and opens the gateway's side of its rings. Returns 0 with
 * *out (freed through its ops) and *info, or -errno (logged; nothing is left behind). */
int tr_shm_new(const struct tr_shm_opts *o, struct tr **out, struct tr_shm_info *info);
/* The segment's memfd (t must be a shm transport), to pass to the worker. */
int tr_shm_fd(const struct tr *t);

/* A live upgrade's new side: the shm transport of a worker whose segment's memfd the
 * replaced gateway handed over; the rings go on where they are. Keeps fd (closed at
 * free; on error closed too). Returns 0 and *out, or -errno (logged). */
int tr_shm_adopt(int fd, unsigned worker_id, struct shm_doorbell *bell, struct tr **out);
/* 1 when t is a shm transport. */
int tr_shm_is(const struct tr *t);
/* Publishes what was pushed (the old side, before the hand-over). */
void tr_shm_publish(struct tr *t);
/* Names this process in the segment's header, for the worker's liveness check. */
void tr_shm_set_gateway_pid(struct tr *t, pid_t pid);

#endif
