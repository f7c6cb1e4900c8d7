/* The runtime directory: where the control socket lives, who may enter it, and the lock
 * that keeps a second gateway out of it for as long as the first one runs.
 *
 * The lock is flock(2) on RUNTIME_DIR/wsgw.lock, taken at start and held by an open
 * descriptor for the life of the process: the kernel releases it when the process ends,
 * however it ends, so there is no stale pid file to guess about. The pid written into the
 * file only names the holder in the refusal message. */
#ifndef WSGW_RUNDIR_H
#define WSGW_RUNDIR_H

#include <sys/types.h>

#include "gateway/config.h"

#define RUNDIR_LOCK_NAME "wsgw.lock"

struct rundir {
	int lock_fd;   /* -1: not held */
	char path[200];
};

/* A socket file this process created, known by its inode, so that it removes only that. */
struct rundir_sock {
	dev_t dev;
	ino_t ino;
	int owned;
};

/*
 * Makes dir (mode 0750; missing parents 0755) if it does not exist and checks it: a
 * directory (not a symlink) of this user's, not writable by group or others (they could
 * swap the socket or the lock file). With gid != (gid_t)-1 the directory is given to that group with mode
 * 0750, so the group's members may reach the socket inside. Then takes the lock.
 * Returns 0 with rd holding the lock; -EBUSY when another process holds it (*holder: its
 * pid, or 0 when the file does not say); -ENOTDIR, -EPERM (unsafe permissions, or a
 * chown/chmod not allowed), or another -errno of mkdir/open/flock. On error rd holds
 * nothing and nothing was created but the directory.
 */
int rundir_lock(struct rundir *rd, const char *dir, gid_t gid, pid_t *holder)
	__attribute__((warn_unused_result));

/* Writes this process's pid into the lock file: at rundir_lock, and by the new process of
 * a live upgrade once it holds the inherited lock alone. */
void rundir_name_holder(const struct rundir *rd);

/* Releases the lock (closes its descriptor). The lock file stays: removing it would let a
 * third gateway lock a new file while a second still waits on the old one. Idempotent;
 * a zeroed or already released rd is a no-op as long as lock_fd is -1. */
void rundir_unlock(struct rundir *rd);

/*
 * Whether something accepts connections on the Unix socket at path: returns 0 when path
 * is absent or is a socket nobody listens on (left by a gateway that died), -EADDRINUSE
 * when a process accepts there, -ENOTSOCK when path is another kind of file, or -errno.
 * ZeroMQ's bind removes whatever is at its path first; this is asked before it.
 */
int rundir_sock_free(const char *path) __attribute__((warn_unused_result));

/*
 * Called right after this process bound the socket at path: sets its mode and, with
 * gid != (gid_t)-1, its group, and remembers its inode in s. Returns 0, or -errno of
 * lstat/chmod/chown (s then owns nothing).
 */
int rundir_sock_claim(struct rundir_sock *s, const char *path, mode_t mode, gid_t gid)
	__attribute__((warn_unused_result));

/* Removes path only if it is still the socket claimed in s (another process may have
 * bound a new one there since). Returns 1 when it was removed, 0 when it was left alone. */
int rundir_sock_release(struct rundir_sock *s, const char *path);
/* A listening stream socket bound at path (unlinked first: rundir_sock_free said nobody
 * listens there), non-blocking and close-on-exec, claimed into s with mode and gid before
 * listen, so nobody connects with the umask's mode. The fd, or -errno (nothing left). */
int rundir_sock_listen(struct rundir_sock *s, const char *path, mode_t mode, gid_t gid, int backlog)
	__attribute__((warn_unused_result));

/*
 * For srv_run: when cfg routes to a worker pool (the only use of the runtime directory),
 * rundir_lock(cfg->runtime_dir, cfg->gid) and, for an ipc:// control endpoint,
 * rundir_sock_free() on its path; with cfg->inherit_lock_fd (a live upgrade) that
 * descriptor is the lock, and the control socket is the replaced gateway's. Logs each failure with what to do about it. Returns 0
 * (also when no worker pool is configured: rd then holds nothing), or the negative errno.
 */
int rundir_start(struct rundir *rd, const struct gw_config *cfg);

#endif
