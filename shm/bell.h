/* The gateway's doorbell page: one small shared mapping that every worker of a gateway
 * maps, so one gateway thread can sleep for all the workers' to-gateway rings at once
 * (docs/SHM.md, "One doorbell for many rings"). */
#ifndef WSGW_SHM_BELL_H
#define WSGW_SHM_BELL_H

#include "shm/doorbell.h"

struct shm_bell;

/* Creates the page in a memfd sealed against shrinking and growing (a worker holding the fd
 * cannot truncate it under the gateway), formatted and mapped. Returns 0 and *out, or
 * -errno. */
int shm_bell_create(struct shm_bell **out) __attribute__((warn_unused_result));
/* Maps the page in fd (received from the gateway) and validates it; does not keep fd.
 * Returns 0, -EBADMSG (not a bell page), or -errno of fstat/mmap. */
int shm_bell_attach_fd(int fd, struct shm_bell **out) __attribute__((warn_unused_result));
/* As shm_bell_attach_fd, but the page keeps fd as its creator does (shm_bell_fd returns
 * it, shm_bell_close closes it): a gateway taking the page over in a live upgrade. On
 * error fd is still the caller's. */
int shm_bell_adopt_fd(int fd, struct shm_bell **out) __attribute__((warn_unused_result));
/* The creator's (or adopter's) fd, to pass to a worker; -1 for an attached page. */
int shm_bell_fd(const struct shm_bell *b);
/* The doorbell inside the page. */
struct shm_doorbell *shm_bell_doorbell(struct shm_bell *b);
/* Unmaps (and closes the creator's fd). NULL is a no-op. */
void shm_bell_close(struct shm_bell *b);

#endif
