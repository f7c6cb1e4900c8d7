/*
 * Shared segment: one per worker, created by the gateway, holding a header
 * and two rings (to-worker, to-gateway). Layout in docs/SHM.md.
 *
 * The header holds offsets, never pointers; each process computes its own
 * pointers from its mapping, after validating every field (shm_seg_attach_*).
 */
#ifndef WSGW_SHM_SEGMENT_H
#define WSGW_SHM_SEGMENT_H

#include <stdint.h>
#include <sys/types.h>

#include "shm/ring.h"

#define SHM_SEG_MAGIC 0x314d485357475357ull /* "WSGWSHM1" little-endian */
#define SHM_SEG_VERSION 1u

enum shm_seg_dir {
	SHM_SEG_TO_WORKER = 0,  /* gateway produces, worker consumes */
	SHM_SEG_TO_GATEWAY = 1, /* worker produces, gateway consumes */
	SHM_SEG_NRINGS = 2,
};

struct shm_seg_ring_desc {
	uint64_t ctl_off;  /* struct shm_ring_ctl, SHM_CACHELINE aligned */
	uint64_t data_off; /* data area, 64-byte aligned */
	uint64_t capacity; /* data bytes, a power of two */
};

/* At offset 0 of the segment. Written once by the creator before any peer
 * maps it; read-only afterwards, but for gateway_pid, which a gateway that took
 * the segment over in a live upgrade rewrites (docs/UPGRADE.md). */
struct shm_seg_hdr {
	uint64_t magic;
	uint32_t version;
	uint32_t hdr_size;    /* sizeof(struct shm_seg_hdr) */
	uint64_t seg_size;    /* bytes in the whole segment, == file size */
	uint32_t gateway_pid;
	uint32_t flags;       /* none defined in version 1; must be 0 */
	struct shm_seg_ring_desc ring[SHM_SEG_NRINGS];
};

struct shm_seg_opts {
	uint64_t capacity[SHM_SEG_NRINGS]; /* per ring, powers of two */
	mode_t mode;                       /* 0600, or 0660 with gid */
	gid_t gid;                         /* (gid_t)-1: leave the group alone */
};

struct shm_seg;

/*
 * Creates a segment in an anonymous memfd (name is only a label for
 * /proc/<pid>/fd), sized, sealed against shrinking and growing (a peer
 * holding the fd cannot truncate it under us), formatted and mapped. The fd
 * stays open for passing to the worker (shm_seg_fd()).
 * Returns 0 and *out (freed by shm_seg_close()), -EINVAL (bad capacity or
 * mode), or the failing syscall's -errno.
 */
int shm_seg_create_memfd(const char *name, const struct shm_seg_opts *o, struct shm_seg **out)
	__attribute__((warn_unused_result));

/*
 * As shm_seg_create_memfd(), but a POSIX shm object named `name` ("/x",
 * created exclusively: -EEXIST when present), unlinked by shm_seg_close().
 * Not sealable: a peer with write access can truncate it (docs/SHM.md).
 */
int shm_seg_create_named(const char *name, const struct shm_seg_opts *o, struct shm_seg **out)
	__attribute__((warn_unused_result));

/*
 * Maps the segment in fd (e.g. received over a Unix socket) and validates its
 * header and every ring's offsets, sizes and indexes. Does not keep or close
 * fd. Returns 0 and *out, -EBADMSG (corrupt or foreign segment), -EPROTO
 * (other layout version), or a syscall's -errno.
 */
int shm_seg_attach_fd(int fd, struct shm_seg **out) __attribute__((warn_unused_result));

/*
 * As shm_seg_attach_fd(), but the segment keeps fd as a creator keeps its own:
 * shm_seg_fd() returns it and shm_seg_close() closes it. For the gateway that
 * takes a segment over in a live upgrade. On error fd is still the caller's.
 */
int shm_seg_adopt_fd(int fd, struct shm_seg **out) __attribute__((warn_unused_result));

/* The gateway side, after a live upgrade: says in the shared header (and the
 * private copy) which process serves the segment now. */
void shm_seg_set_gateway_pid(struct shm_seg *s, uint32_t pid);
/* The worker side: the gateway pid the shared header names now (one acquire
 * load; it changes only when a live upgrade hands the segment on). */
uint32_t shm_seg_gateway_pid(const struct shm_seg *s);

/* shm_open(name) + shm_seg_attach_fd(); same returns plus shm_open's. */
int shm_seg_attach_named(const char *name, struct shm_seg **out)
	__attribute__((warn_unused_result));

/* Unmaps; the creator also closes its fd and unlinks a named segment.
 * NULL is a no-op. Rings opened on the segment are invalid afterwards. */
void shm_seg_close(struct shm_seg *s);

/* The creator's fd (to pass to the worker); -1 for an attached segment. */
int shm_seg_fd(const struct shm_seg *s);

/* The validated private copy of the header. */
const struct shm_seg_hdr *shm_seg_header(const struct shm_seg *s);

/* Base address of this process's mapping (for tests and diagnostics). */
void *shm_seg_base(const struct shm_seg *s);

/*
 * Opens one side of ring `dir` into *r (see shm_ring_open()).
 * Returns 0, -EINVAL (bad dir), -EBADMSG (the ring's indexes are corrupt).
 */
int shm_seg_ring(struct shm_seg *s, enum shm_seg_dir dir, enum shm_ring_role role,
		 struct shm_ring *r) __attribute__((warn_unused_result));

#endif
