#include "gateway/attach.h"
#include "gateway/log.h"
#include "gateway/rundir.h"
#include "shm/fdpass.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#define ATT_CONNS 16
#define ATT_TIMEOUT_MS 5000

struct att_conn {
	struct loop_src src;
	struct att *owner;
	int fd;
	uint32_t since;
	size_t len;
	char line[SHM_FDPASS_TOKEN_LEN + 1];
};

struct att {
	struct loop_src src; /* the listening socket */
	struct loop *loop;
	att_fds_fn *fds_fn;  /* where the descriptors come from (copies) */
	void *fds_arg;
	int fd;
	char path[108];
	mode_t mode;
	gid_t gid;
	struct rundir_sock owned;
	struct att_conn conns[ATT_CONNS];
};

static void drop(struct att_conn *c)
{
	close(c->fd);
	c->fd = -1;
}

static void answer(struct att *a, struct att_conn *c)
{
	struct ucred cred = { 0 };
	socklen_t len = sizeof(cred);
	int fds[3];
	char token[SHM_FDPASS_TOKEN_LEN + 1];
	memcpy(token, c->line, SHM_FDPASS_TOKEN_LEN);
	token[SHM_FDPASS_TOKEN_LEN] = 0;
	getsockopt(c->fd, SOL_SOCKET, SO_PEERCRED, &cred, &len);
	const char *why = NULL;
	if (c->line[SHM_FDPASS_TOKEN_LEN] != '\n')
		why = "a malformed token";
	else if (!a->fds_fn)
		why = "not ready";
	else if (a->fds_fn(a->fds_arg, token, cred.pid, fds, &why) == 0)
		why = NULL;
	if (why)
		log_warn(0, "attach socket: refused pid %d: %s", (int)cred.pid, why);
	if (shm_fdpass_send(c->fd, why ? 1 : 0, fds, 3) < 0)
		log_warn(errno, "attach socket: answer to pid %d", (int)cred.pid);
	for (int i = 0; !why && i < 3; i++)
		close(fds[i]);
	drop(c);
}

static void on_conn(struct loop_src *src, uint32_t events)
{
	struct att_conn *c = (struct att_conn *)src;
	(void)events;
	if (c->fd < 0)
		return;
	ssize_t r = read(c->fd, c->line + c->len, sizeof(c->line) - c->len);
	if (r < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (r <= 0) {
		drop(c);
		return;
	}
	c->len += (size_t)r;
	if (c->len == sizeof(c->line) || memchr(c->line, '\n', c->len))
		answer(c->owner, c);
}

static void on_listener(struct loop_src *src, uint32_t events)
{
	struct att *a = (struct att *)src;
	(void)events;
	for (;;) {
		int fd = accept4(a->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN)
				log_warn(errno, "accept4 on the attach socket");
			return;
		}
		struct att_conn *c = NULL;
		for (int i = 0; i < ATT_CONNS && !c; i++)
			if (a->conns[i].fd < 0)
				c = &a->conns[i];
		if (!c) {
			log_warn(0, "attach socket: %d attaches pending already, refusing one", ATT_CONNS);
			close(fd);
			continue;
		}
		c->owner = a;
		c->fd = fd;
		c->len = 0;
		c->since = loop_now(a->loop);
		c->src.fn = on_conn;
		if (loop_add(a->loop, fd, EPOLLIN, &c->src))
			drop(c);
	}
}

static void tick(void *arg)
{
	struct att *a = arg;
	for (int i = 0; i < ATT_CONNS; i++)
		if (a->conns[i].fd >= 0 && loop_now(a->loop) - a->conns[i].since > ATT_TIMEOUT_MS)
			drop(&a->conns[i]);
}

/* A fresh listening socket at path, claimed for removal at exit. 0 or -errno (logged). */
static int bind_listener(struct att *a, const char *path)
{
	int rc = rundir_sock_free(path);
	if (rc) {
		log_error(-rc, "attach socket %s: in use by another process", path);
		return rc;
	}
	rc = rundir_sock_listen(&a->owned, path, a->mode, a->gid, 64);
	if (rc < 0) {
		log_error(-rc, "attach socket %s", path);
		return rc;
	}
	a->fd = rc;
	return 0;
}

int att_new(struct loop *l, const char *path, mode_t mode, gid_t gid,
	    int inherit_fd, struct att **out)
{
	if (strlen(path) >= sizeof(((struct sockaddr_un *)0)->sun_path)) {
		log_error(ENAMETOOLONG, "attach socket %s", path);
		return -ENAMETOOLONG;
	}
	struct att *a = calloc(1, sizeof(*a));
	if (!a)
		return -ENOMEM;
	a->loop = l;
	a->fd = -1;
	for (int i = 0; i < ATT_CONNS; i++)
		a->conns[i].fd = -1;
	strcpy(a->path, path);
	a->mode = mode;
	a->gid = gid;
	/* A live upgrade: the replaced gateway's socket, shared until it hands off; the path
	 * becomes ours to remove only once the upgrade is done (att_own). */
	int rc = 0;
	if (inherit_fd > 0)
		a->fd = inherit_fd;
	else
		rc = bind_listener(a, path);
	if (rc == 0) {
		a->src.fn = on_listener;
		rc = loop_add(l, a->fd, EPOLLIN, &a->src);
	}
	if (rc) {
		att_free(a);
		return rc;
	}
	struct loop_hooks h = { .arg = a, .tick = tick };
	loop_add_hooks(l, &h);
	*out = a;
	return 0;
}

void att_free(struct att *a)
{
	if (!a)
		return;
	for (int i = 0; i < ATT_CONNS; i++)
		if (a->conns[i].fd >= 0)
			drop(&a->conns[i]);
	if (a->fd >= 0)
		close(a->fd);
	rundir_sock_release(&a->owned, a->path);
	free(a);
}

int att_listen_fd(const struct att *a)
{
	return a->fd;
}

void att_hand_off(struct att *a)
{
	for (int i = 0; i < ATT_CONNS; i++)
		if (a->conns[i].fd >= 0)
			drop(&a->conns[i]);
	if (a->fd >= 0) {
		loop_del(a->loop, a->fd);
		close(a->fd);
		a->fd = -1;
	}
	a->owned.owned = 0; /* the path is the new process's socket now */
}

void att_own(struct att *a)
{
	if (rundir_sock_claim(&a->owned, a->path, a->mode, a->gid))
		log_warn(0, "attach socket %s: not claimed; it stays when this process exits", a->path);
}

void att_set_fds(struct att *a, att_fds_fn *fn, void *arg)
{
	a->fds_fn = fn;
	a->fds_arg = arg;
}

const char *att_path(const struct att *a)
{
	return a->path;
}
