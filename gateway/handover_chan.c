#include "gateway/handover_chan.h"
#include "gateway/config.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

uint64_t ho__now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static int wait_fd(int fd, short ev, uint64_t deadline)
{
	for (;;) {
		uint64_t now = ho__now_ms();
		if (now >= deadline)
			return -ETIMEDOUT;
		struct pollfd pf = { fd, ev, 0 };
		int r = poll(&pf, 1, (int)(deadline - now));
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -errno;
		if (r > 0)
			return 0;
	}
}

/* One message: p[0..n) with its header, and fds. 0 or -errno. */
int ho__send_msg(int fd, const uint8_t *p, size_t n, const int *fds, int nfds, uint64_t deadline)
{
	union {
		struct cmsghdr h;
		char buf[CMSG_SPACE(sizeof(int) * HO_FDS_MAX)];
	} u;
	struct iovec iov = { (void *)p, n };
	struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1 };
	if (nfds) {
		memset(&u, 0, sizeof(u));
		m.msg_control = u.buf;
		m.msg_controllen = CMSG_SPACE(sizeof(int) * (size_t)nfds);
		struct cmsghdr *c = CMSG_FIRSTHDR(&m);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int) * (size_t)nfds);
		memcpy(CMSG_DATA(c), fds, sizeof(int) * (size_t)nfds);
	}
	for (;;) {
		int rc = wait_fd(fd, POLLOUT, deadline);
		if (rc)
			return rc;
		ssize_t w = sendmsg(fd, &m, MSG_DONTWAIT | MSG_NOSIGNAL);
		if (w == (ssize_t)n)
			return 0;
		if (w >= 0)
			return -EMSGSIZE; /* SEQPACKET sends a message whole or not at all */
		if (errno != EAGAIN && errno != EINTR)
			return -errno;
	}
}

int ho__send_simple(int fd, unsigned version, unsigned type, const void *body, size_t n, uint64_t deadline)
{
	struct ho_buf b = { 0 };
	int rc = ho_put_hdr_v(&b, version, type, (uint32_t)n);
	if (rc == 0 && n) {
		uint8_t *q = realloc(b.p, HO_HDR + n);
		if (!q) {
			rc = -ENOMEM;
		} else {
			b.p = q;
			b.cap = b.len = HO_HDR + n;
			memcpy(q + HO_HDR, body, n);
		}
	}
	if (rc == 0)
		rc = ho__send_msg(fd, b.p, b.len, NULL, 0, deadline);
	ho_buf_free(&b);
	return rc;
}

/* Receives one message into buf (MSG_MAX bytes): 0 with its header and *nfds descriptors
 * (close-on-exec), -EPIPE at EOF, -EBADMSG for one that is not ours, -ETIMEDOUT. */
int ho__recv_msg(int fd, uint8_t *buf, struct ho_hdr *h, int *fds, int *nfds, uint64_t deadline)
{
	union {
		struct cmsghdr h;
		char buf[CMSG_SPACE(sizeof(int) * HO_FDS_MAX)];
	} u;
	*nfds = 0;
	for (;;) {
		int rc = wait_fd(fd, POLLIN, deadline);
		if (rc)
			return rc;
		struct iovec iov = { buf, MSG_MAX };
		struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf,
				    .msg_controllen = sizeof(u.buf) };
		ssize_t r = recvmsg(fd, &m, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
		if (r < 0 && (errno == EAGAIN || errno == EINTR))
			continue;
		if (r < 0)
			return errno == ECONNRESET ? -EPIPE : -errno;
		for (struct cmsghdr *c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(&m, c))
			if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
				int k = (int)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
				memcpy(fds + *nfds, CMSG_DATA(c), sizeof(int) * (size_t)k);
				*nfds += k;
			}
		if (r == 0)
			return -EPIPE;
		if ((m.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) || ho_get_hdr(buf, (size_t)r, h)) {
			for (int i = 0; i < *nfds; i++)
				close(fds[i]);
			*nfds = 0;
			return -EBADMSG;
		}
		return 0;
	}
}

static char **child_env(int chan)
{
	size_t n = 0;
	while (environ[n])
		n++;
	char **env = calloc(n + 2, sizeof(*env));
	if (!env)
		return NULL;
	size_t k = 0;
	for (size_t i = 0; i < n; i++)
		if (strncmp(environ[i], "WSGW_HANDOVER_FD=", 17) != 0)
			env[k++] = environ[i];
	static char var[40];
	snprintf(var, sizeof(var), "WSGW_HANDOVER_FD=%d", chan);
	env[k++] = var;
	env[k] = NULL;
	return env;
}

/* posix_spawn, not fork: the gateway has threads (liburcu's, the doorbell's). The child
 * keeps its end of the socketpair (a dup2 onto itself clears close-on-exec) and none of
 * the blocked signals. */
int ho__spawn(const char *path, int chan, pid_t *pid, char *why, size_t cap)
{
	char **argv = cfg_argv();
	int argc = 0;
	while (argv[argc])
		argc++;
	char **av = calloc((size_t)argc + 1, sizeof(*av));
	char **env = child_env(chan);
	if (!av || !env) {
		free(av);
		free(env);
		snprintf(why, cap, "out of memory");
		return -ENOMEM;
	}
	for (int i = 0; i < argc; i++)
		av[i] = argv[i];
	if (path)
		av[0] = (char *)path;
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t at;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, chan, chan);
	posix_spawnattr_init(&at);
	sigset_t none, dfl;
	sigemptyset(&none);
	sigemptyset(&dfl);
	sigaddset(&dfl, SIGPIPE);
	posix_spawnattr_setsigmask(&at, &none);
	posix_spawnattr_setsigdefault(&at, &dfl);
	posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
	int rc = posix_spawnp(pid, av[0], &fa, &at, av, env);
	posix_spawnattr_destroy(&at);
	posix_spawn_file_actions_destroy(&fa);
	if (rc)
		snprintf(why, cap, "cannot start %s: %s", av[0], strerror(rc));
	free(av);
	free(env);
	return rc ? -ENOEXEC : 0;
}

/* The child's end: what it said when it went away, for the log. */
void ho__reap(pid_t pid, char *why, size_t cap, const char *when)
{
	int st = 0;
	pid_t got = 0;
	/* One that is exiting (it closed the channel) gets a moment, so its status says why;
	 * then it is killed, by its pid (ours): a half-started one must not accept. */
	for (int i = 0; i < 100 && (got = waitpid(pid, &st, WNOHANG)) == 0; i++)
		usleep(5000);
	if (got == 0) {
		kill(pid, SIGKILL);
		while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
			;
	}
	if (WIFEXITED(st) && WEXITSTATUS(st) != 0 && !why[0])
		snprintf(why, cap, "the new process (pid %d) exited with status %d %s", (int)pid,
			 WEXITSTATUS(st), when);
	else if (WIFSIGNALED(st) && WTERMSIG(st) != SIGKILL && !why[0])
		snprintf(why, cap, "the new process (pid %d) was killed by signal %d %s", (int)pid,
			 WTERMSIG(st), when);
	else if (!why[0])
		snprintf(why, cap, "the new process (pid %d) went away %s", (int)pid, when);
}

/* Waits for the answer of type want; REFUSE gives its reason. */

int ho__expect(int chan, uint8_t *buf, unsigned want, char *why, size_t cap)
{
	struct ho_hdr h;
	int fds[HO_FDS_MAX], nfds;
	int rc = ho__recv_msg(chan, buf, &h, fds, &nfds, ho__now_ms() + STEP_MS);
	for (int i = 0; i < nfds; i++)
		close(fds[i]);
	if (rc == -ETIMEDOUT)
		snprintf(why, cap, "no answer from the new process within %d s", STEP_MS / 1000);
	if (rc)
		return rc;
	if (h.type == HO_REFUSE) {
		snprintf(why, cap, "refused by the new process: %.*s", (int)(h.len < 400 ? h.len : 400),
			 (const char *)buf + HO_HDR);
		return -EPROTONOSUPPORT;
	}
	if (h.type != want || !ho_version_ok(h.version)) {
		snprintf(why, cap, "the new process answered message %u (version %u), not %u", h.type,
			 h.version, want);
		return -EPROTO;
	}
	return 0;
}

/* One batch: the CONNS (or WORKERS) message with the descriptors, then DATA for the rest
 * of the section. count: its records (CONNS: one per descriptor; WORKERS, version 3:
 * one per worker, zmq workers having none). */
int ho__send_section(int chan, unsigned type, const uint8_t *sec, size_t len, unsigned count,
			const int *fds, int nfds)
{
	uint64_t deadline = ho__now_ms() + STEP_MS;
	struct ho_buf b = { 0 };
	struct ho_batch bt = { count, len };
	size_t first = len < HO_BODY_MAX - HO_BATCH ? len : HO_BODY_MAX - HO_BATCH;
	int rc = ho_put_hdr(&b, type, (uint32_t)(HO_BATCH + first));
	if (rc == 0)
		rc = ho_put_batch(&b, &bt);
	if (rc == 0) {
		uint8_t *m = realloc(b.p, b.len + first);
		if (!m)
			rc = -ENOMEM;
		else {
			b.p = m;
			memcpy(m + b.len, sec, first);
			rc = ho__send_msg(chan, m, b.len + first, fds, nfds, deadline);
		}
	}
	ho_buf_free(&b);
	for (size_t off = first; rc == 0 && off < len;) {
		size_t k = len - off < HO_BODY_MAX ? len - off : HO_BODY_MAX;
		rc = ho__send_simple(chan, HO_VERSION, HO_DATA, sec + off, k, deadline);
		off += k;
	}
	return rc;
}
