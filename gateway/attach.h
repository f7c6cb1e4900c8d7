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

/* Listens on path with the given mode and, unless gid is (gid_t)-1, group. A socket left
 * there by a gateway that is gone is replaced; one another process accepts on is not
 * (-EADDRINUSE). With inherit_fd > 0 (a live upgrade) that listening socket is used, and
 * the path is not this process's to remove until att_own. Returns 0 and *out, or -errno
 * (logged). */
int att_new(struct loop *l, const char *path, mode_t mode, gid_t gid, int inherit_fd,
	    struct att **out);
/* Closes the socket and removes it if it is still the one it bound. NULL is a no-op. */
void att_free(struct att *a);
/* A live upgrade: the listening socket to hand over; the old side's hand-off (closes it
 * and its pending attaches, and leaves the path to the new process); the new side's
 * claim of the path once the upgrade is done. */
int att_listen_fd(const struct att *a);
void att_hand_off(struct att *a);
void att_own(struct att *a);
/* Where the answers come from (the pools of the worker's loop, gateway/loops.h): fn
 * answers as pool_shm_fds does, with copies of the descriptors, which are closed once
 * sent. Before the first attach. */
typedef int att_fds_fn(void *arg, const char *token, pid_t pid, int fds[3], const char **why);
void att_set_fds(struct att *a, att_fds_fn *fn, void *arg);
/* The socket's path, for WELCOME. */
const char *att_path(const struct att *a);

#endif
