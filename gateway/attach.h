/*
 * The attach socket: where a shm worker, after WELCOME, fetches its segment and the
 * gateway's doorbell page as file descriptors (shm/fdpass.h), presenting the one-time
 * token WELCOME gave it. A Unix stream socket beside the control socket, with its mode;
 * served by the loop thread, a handful of short exchanges bounded in time.
 */
#ifndef WSGW_ATTACH_H
#define WSGW_ATTACH_H

#include <sys/types.h>

#include "gateway/config.h"
#include "gateway/loop.h"

struct att;
struct pools;

/* Listens on path with the given mode and, unless gid is (gid_t)-1, group. A socket left
 * there by a gateway that is gone is replaced; one another process accepts on is not
 * (-EADDRINUSE). Returns 0 and *out, or -errno (logged). */
int att_new(struct loop *l, struct pools *ps, const char *path, mode_t mode, gid_t gid,
	    struct att **out);
/* Closes the socket and removes it if it is still the one it bound. NULL is a no-op. */
void att_free(struct att *a);
/* The socket's path, for WELCOME. */
const char *att_path(const struct att *a);

#endif
