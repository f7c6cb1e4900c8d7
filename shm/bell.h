/* The gateway's doorbell page: one small shared mapping that every worker of a gateway
 * maps, so one gateway thread can sleep for all the workers' to-gateway rings at once
 * (docs/SHM.md, "One doorbell for many rings"). */
#ifndef WSGW_SHM_BELL_H
#define WSGW_SHM_BELL_H

#include <sys/types.h>

#include "shm/doorbell.h"

struct shm_bell;

/* Creates the POSIX shm object `name` ("/x", exclusively) with mode and, unless gid is
 * (gid_t)-1, group gid; maps it and formats it. Returns 0 and *out, or -errno (nothing is
 * left behind then). The creator's shm_bell_close() unlinks it. */
int shm_bell_create(const char *name, mode_t mode, gid_t gid, struct shm_bell **out)
	__attribute__((warn_unused_result));
/* Maps an existing bell page and validates it. Returns 0, -EBADMSG (not a bell page), or
 * -errno of shm_open/mmap. */
int shm_bell_attach(const char *name, struct shm_bell **out) __attribute__((warn_unused_result));
/* The doorbell inside the page. */
struct shm_doorbell *shm_bell_doorbell(struct shm_bell *b);
/* Unmaps (and unlinks, for the creator). NULL is a no-op. */
void shm_bell_close(struct shm_bell *b);

#endif
