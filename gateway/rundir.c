#include "gateway/rundir.h"
#include "gateway/log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

static int mkdir_parents(const char *dir)
{
	char tmp[sizeof(((struct rundir *)0)->path)];
	if (snprintf(tmp, sizeof(tmp), "%s", dir) >= (int)sizeof(tmp))
		return -ENAMETOOLONG;
	for (char *p = tmp + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = 0;
		if (mkdir(tmp, 0755) < 0 && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	if (mkdir(tmp, 0750) < 0 && errno != EEXIST)
		return -errno;
	return 0;
}

/* The directory must be ours to trust: a directory of this user's, in which nobody else
 * may create or rename files. Hands it to gid (group r-x) when asked. */
static int check_dir(const char *dir, gid_t gid)
{
	struct stat st;
	if (lstat(dir, &st) < 0)
		return -errno;
	if (!S_ISDIR(st.st_mode))
		return -ENOTDIR;
	if (st.st_mode & (S_IWGRP | S_IWOTH) || st.st_uid != geteuid())
		return -EPERM;
	if (gid == (gid_t)-1)
		return 0;
	if (st.st_gid != gid && chown(dir, (uid_t)-1, gid) < 0)
		return -errno;
	mode_t want = (st.st_mode & 07777 & ~(mode_t)(S_IWGRP | S_IWOTH | S_IRWXO)) | S_IRGRP | S_IXGRP;
	if ((st.st_mode & 07777) != want && chmod(dir, want) < 0)
		return -errno;
	return 0;
}

static pid_t read_holder(int fd)
{
	char buf[32];
	ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);
	if (n <= 0)
		return 0;
	buf[n] = 0;
	long pid = strtol(buf, NULL, 10);
	return pid > 0 ? (pid_t)pid : 0;
}

int rundir_lock(struct rundir *rd, const char *dir, gid_t gid, pid_t *holder)
{
	rd->lock_fd = -1;
	*holder = 0;
	if (snprintf(rd->path, sizeof(rd->path), "%s", dir) >= (int)sizeof(rd->path))
		return -ENAMETOOLONG;
	int rc = mkdir_parents(dir);
	if (rc == 0)
		rc = check_dir(dir, gid);
	if (rc)
		return rc;
	char path[sizeof(rd->path) + sizeof(RUNDIR_LOCK_NAME) + 1];
	snprintf(path, sizeof(path), "%s/%s", dir, RUNDIR_LOCK_NAME);
	/* O_NOFOLLOW: the directory is checked, but the name inside it is opened too. */
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
	if (fd < 0)
		return -errno;
	if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		rc = errno == EWOULDBLOCK ? -EBUSY : -errno;
		if (rc == -EBUSY)
			*holder = read_holder(fd);
		close(fd);
		return rc;
	}
	rd->lock_fd = fd;
	rundir_name_holder(rd);
	return 0;
}

void rundir_name_holder(const struct rundir *rd)
{
	char pid[24];
	int n = snprintf(pid, sizeof(pid), "%d\n", (int)getpid());
	/* Only a name for the message of the next gateway: the lock is the flock. */
	if (ftruncate(rd->lock_fd, 0) < 0 || pwrite(rd->lock_fd, pid, (size_t)n, 0) != n)
		log_warn(errno, "writing the pid into %s/%s", rd->path, RUNDIR_LOCK_NAME);
}

void rundir_unlock(struct rundir *rd)
{
	if (rd->lock_fd >= 0)
		close(rd->lock_fd); /* releases the flock */
	rd->lock_fd = -1;
}

static int sun_of(const char *path, struct sockaddr_un *sa)
{
	memset(sa, 0, sizeof(*sa));
	sa->sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(sa->sun_path))
		return -ENAMETOOLONG;
	strcpy(sa->sun_path, path);
	return 0;
}

int rundir_sock_free(const char *path)
{
	struct stat st;
	if (lstat(path, &st) < 0)
		return errno == ENOENT ? 0 : -errno;
	if (!S_ISSOCK(st.st_mode))
		return -ENOTSOCK;
	struct sockaddr_un sa;
	int rc = sun_of(path, &sa);
	if (rc)
		return rc;
	/* ZeroMQ's ipc:// is a stream socket; a refused connect means nobody listens. */
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0)
		rc = -EADDRINUSE;
	else
		rc = errno == ECONNREFUSED ? 0 : -errno;
	close(fd);
	return rc;
}

int rundir_sock_claim(struct rundir_sock *s, const char *path, mode_t mode, gid_t gid)
{
	struct stat st;
	s->owned = 0;
	/* The socket was made with the umask's mode: set the one configured. The directory
	 * keeps out whoever must not connect in the meantime. */
	if (chmod(path, mode) < 0)
		return -errno;
	if (gid != (gid_t)-1 && chown(path, (uid_t)-1, gid) < 0)
		return -errno;
	if (lstat(path, &st) < 0)
		return -errno;
	s->dev = st.st_dev;
	s->ino = st.st_ino;
	s->owned = 1;
	return 0;
}

int rundir_sock_listen(struct rundir_sock *s, const char *path, mode_t mode, gid_t gid, int backlog)
{
	struct sockaddr_un sa;
	int rc = sun_of(path, &sa);
	if (rc)
		return rc;
	unlink(path);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		rc = -errno;
	else if ((rc = rundir_sock_claim(s, path, mode, gid)) == 0 && listen(fd, backlog) < 0)
		rc = -errno;
	if (rc) {
		rundir_sock_release(s, path);
		close(fd);
		return rc;
	}
	return fd;
}

int rundir_sock_release(struct rundir_sock *s, const char *path)
{
	struct stat st;
	if (!s->owned)
		return 0;
	s->owned = 0;
	if (lstat(path, &st) < 0 || st.st_dev != s->dev || st.st_ino != s->ino)
		return 0;
	return unlink(path) == 0;
}

static int uses_workers(const struct gw_config *cfg)
{
	for (int i = 0; i < cfg->n_routes; i++)
		if (strcmp(cfg->routes[i].pool, "echo") != 0)
			return 1;
	return 0;
}

int rundir_start(struct rundir *rd, const struct gw_config *cfg)
{
	rd->lock_fd = -1;
	if (!uses_workers(cfg))
		return 0;
	if (cfg->inherit_lock_fd > 0) {
		/* A live upgrade: the replaced gateway's lock, the same open file description,
		 * so the lock is never free in between; its control socket is ours to share. */
		snprintf(rd->path, sizeof(rd->path), "%s", cfg->runtime_dir);
		rd->lock_fd = cfg->inherit_lock_fd;
		return 0;
	}
	pid_t holder;
	int rc = rundir_lock(rd, cfg->runtime_dir, cfg->gid, &holder);
	if (rc == -EBUSY) {
		char who[40] = "another gateway";
		if (holder)
			snprintf(who, sizeof(who), "another gateway (pid %d)", (int)holder);
		log_error(0, "%s runs with runtime directory %s (it holds %s/%s): one gateway per "
			  "runtime directory; give this one its own --runtime-dir",
			  who, cfg->runtime_dir, cfg->runtime_dir, RUNDIR_LOCK_NAME);
		return rc;
	}
	if (rc == -EPERM || rc == -ENOTDIR) {
		log_error(-rc, "runtime directory %s: it must be a directory that only its owner "
			  "may write to%s", cfg->runtime_dir,
			  cfg->gid != (gid_t)-1 ? ", and that this user may give to --group" : "");
		return rc;
	}
	if (rc) {
		log_error(-rc, "runtime directory %s", cfg->runtime_dir);
		return rc;
	}
	if (strncmp(cfg->control, "ipc://", 6) == 0) {
		const char *path = cfg->control + 6;
		/* A socket elsewhere than the runtime directory needs a directory as safe. */
		char dir[sizeof(rd->path)];
		snprintf(dir, sizeof(dir), "%s", path);
		char *slash = strrchr(dir, '/');
		if (slash)
			*(slash == dir ? slash + 1 : slash) = 0;
		if (slash && strcmp(dir, cfg->runtime_dir) != 0 && (rc = check_dir(dir, (gid_t)-1))) {
			log_error(-rc, "the control socket's directory %s: it must be a directory of this user's that only its owner may write to",
				  dir);
			rundir_unlock(rd);
			return rc;
		}
		rc = rundir_sock_free(path);
		if (rc == -EADDRINUSE)
			log_error(0, "control socket %s is in use by another process: give this "
				  "gateway another --control or --runtime-dir", path);
		else if (rc)
			log_error(-rc, "control socket %s", path);
		if (rc) {
			rundir_unlock(rd);
			return rc;
		}
	}
	if (cfg->gid != (gid_t)-1 && (cfg->socket_mode & 0060) == 0)
		log_warn(0, "--group %s with --socket-mode 0%o: the group's workers cannot connect "
			 "(0660 lets them)", cfg->group, cfg->socket_mode);
	return 0;
}
