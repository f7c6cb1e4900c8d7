#include "shm/fdpass.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define MAX_FDS 4

int shm_fdpass_token(char *tok)
{
	unsigned char r[SHM_FDPASS_TOKEN_LEN / 2];
	if (getrandom(r, sizeof(r), 0) != (ssize_t)sizeof(r))
		return -errno;
	for (size_t i = 0; i < sizeof(r); i++)
		snprintf(tok + 2 * i, 3, "%02x", r[i]);
	return 0;
}

int shm_fdpass_send(int sock, unsigned char status, const int *fds, int n)
{
	union {
		char buf[CMSG_SPACE(sizeof(int) * MAX_FDS)];
		struct cmsghdr align;
	} u;
	struct iovec iov = { &status, 1 };
	struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1 };
	if (n > MAX_FDS)
		return -EINVAL;
	if (status == 0 && n > 0) {
		memset(&u, 0, sizeof(u));
		m.msg_control = u.buf;
		m.msg_controllen = CMSG_SPACE(sizeof(int) * (size_t)n);
		struct cmsghdr *c = CMSG_FIRSTHDR(&m);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int) * (size_t)n);
		memcpy(CMSG_DATA(c), fds, sizeof(int) * (size_t)n);
	}
	ssize_t w;
	do
		w = sendmsg(sock, &m, MSG_NOSIGNAL | MSG_DONTWAIT);
	while (w < 0 && errno == EINTR);
	return w == 1 ? 0 : w < 0 ? -errno : -EIO;
}

static long long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Waits for events on fd until the deadline. */
static int wait_fd(int fd, short events, long long deadline)
{
	for (;;) {
		long long left = deadline - now_ms();
		if (left <= 0)
			return -ETIMEDOUT;
		struct pollfd p = { fd, events, 0 };
		int r = poll(&p, 1, (int)left);
		if (r > 0)
			return 0;
		if (r < 0 && errno != EINTR)
			return -errno;
	}
}

int shm_fdpass_fetch(const char *path, const char *token, int timeout_ms, int *fds, int min, int max)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	if (strlen(path) >= sizeof(a.sun_path) || strlen(token) != SHM_FDPASS_TOKEN_LEN || min > max ||
	    max > MAX_FDS)
		return -EINVAL;
	strcpy(a.sun_path, path);
	long long deadline = now_ms() + timeout_ms;
	int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (s < 0)
		return -errno;
	int rc = 0;
	if (connect(s, (struct sockaddr *)&a, sizeof(a)) < 0 && errno != EINPROGRESS) {
		rc = -errno;
		goto out;
	}
	char line[SHM_FDPASS_TOKEN_LEN + 1];
	memcpy(line, token, SHM_FDPASS_TOKEN_LEN);
	line[SHM_FDPASS_TOKEN_LEN] = '\n';
	if ((rc = wait_fd(s, POLLOUT, deadline)))
		goto out;
	if (send(s, line, sizeof(line), MSG_NOSIGNAL) != (ssize_t)sizeof(line)) {
		rc = -errno;
		goto out;
	}
	if ((rc = wait_fd(s, POLLIN, deadline)))
		goto out;
	unsigned char status;
	union {
		char buf[CMSG_SPACE(sizeof(int) * MAX_FDS)];
		struct cmsghdr align;
	} u;
	struct iovec iov = { &status, 1 };
	struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf,
			    .msg_controllen = sizeof(u.buf) };
	ssize_t r = recvmsg(s, &m, MSG_CMSG_CLOEXEC);
	if (r != 1) {
		rc = r < 0 ? -errno : -EPROTO;
		goto out;
	}
	int got = 0;
	for (struct cmsghdr *c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(&m, c)) {
		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		int k = (int)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
		int in[MAX_FDS];
		memcpy(in, CMSG_DATA(c), sizeof(int) * (size_t)(k < MAX_FDS ? k : MAX_FDS));
		for (int i = 0; i < k && i < MAX_FDS; i++) {
			if (got < max)
				fds[got++] = in[i];
			else
				close(in[i]);
		}
	}
	if (status != 0 || got < min || (m.msg_flags & MSG_CTRUNC)) {
		for (int i = 0; i < got; i++)
			close(fds[i]);
		rc = status != 0 ? -EACCES : -EPROTO;
	} else {
		rc = got;
	}
out:
	close(s);
	return rc;
}
