#include "tests/lib/wtadmin.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

int wt_admin_port(const struct wt_gw *gw)
{
	char line[1024];
	int port = -1;
	FILE *f = fopen(gw->log_path, "r");
	while (f && fgets(line, sizeof(line), f))
		if (strstr(line, "admin endpoint on port "))
			port = atoi(strstr(line, "on port ") + 8);
	if (f)
		fclose(f);
	return port;
}

int wt_admin_open(int port)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
		int err = errno;
		if (fd >= 0)
			close(fd);
		return -err;
	}
	return fd;
}

int wt_admin_answer(int fd, char *out, size_t cap, const char **body)
{
	size_t len = 0;
	int64_t end = wt_now_ms() + 5000;
	*body = out;
	out[0] = 0;
	for (;;) {
		struct pollfd p = { fd, POLLIN, 0 };
		int left = (int)(end - wt_now_ms());
		if (left <= 0 || poll(&p, 1, left) != 1) {
			close(fd);
			return -ETIMEDOUT;
		}
		ssize_t r = read(fd, out + len, cap - 1 - len);
		if (r <= 0 || len + (size_t)r >= cap - 1) {
			if (r > 0)
				len += (size_t)r;
			break;
		}
		len += (size_t)r;
	}
	close(fd);
	out[len] = 0;
	char *b = strstr(out, "\r\n\r\n");
	*body = b ? b + 4 : out + len;
	int status = 0;
	if (sscanf(out, "HTTP/1.%*d %d", &status) != 1)
		return -EPROTO;
	return status;
}

int wt_admin_raw(int port, const char *req, char *out, size_t cap, const char **body)
{
	*body = out;
	out[0] = 0;
	int fd = wt_admin_open(port);
	if (fd < 0)
		return fd;
	size_t n = strlen(req);
	if (write(fd, req, n) != (ssize_t)n) {
		close(fd);
		return -EIO;
	}
	return wt_admin_answer(fd, out, cap, body);
}

int wt_admin_get(int port, const char *path, const char *token, char *out, size_t cap,
		 const char **body)
{
	char req[1024];
	snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: x\r\n%s%s%sConnection: close\r\n\r\n", path,
		 token ? "Authorization: Bearer " : "", token ? token : "", token ? "\r\n" : "");
	return wt_admin_raw(port, req, out, cap, body);
}

/* ---- the exposition format, checked by Prometheus's own promtool ---- */

int wt_prom_check(const char *text, char *why, size_t cap)
{
	const char *tool = getenv("WT_PROMTOOL");
	char path[] = "/tmp/wt-metrics-XXXXXX", cmd[512];
	int fd = mkstemp(path);
	size_t len = strlen(text);

	if (!tool || !*tool)
		return snprintf(why, cap, "WT_PROMTOOL is not set (make check sets it)"), -1;
	if (fd < 0 || write(fd, text, len) != (ssize_t)len) {
		snprintf(why, cap, "%s: %s", path, strerror(errno));
		if (fd >= 0)
			close(fd), unlink(path);
		return -1;
	}
	close(fd);
	/* promtool reads the text on stdin and prints each problem; exit 1 is a parse error,
	 * 3 a lint problem (a counter without _total, a family without HELP): both fail. */
	snprintf(cmd, sizeof(cmd), "'%s' check metrics < %s 2>&1", tool, path);
	FILE *p = popen(cmd, "r");
	size_t got = p ? fread(why, 1, cap - 1, p) : 0;
	why[got] = 0;
	int st = p ? pclose(p) : -1;
	unlink(path);
	if (st == 0)
		return 0;
	if (!got)
		snprintf(why, cap, "promtool exited with status %d", WIFEXITED(st) ? WEXITSTATUS(st) : -1);
	return -1;
}

double wt_prom_value(const char *text, const char *series)
{
	size_t n = strlen(series);
	for (const char *l = text; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL)
		if (!strncmp(l, series, n) && l[n] == ' ')
			return strtod(l + n + 1, NULL);
	return -1;
}

int wt_ctl_run(char *out, size_t cap, const char *const *args)
{
	char prog[512];
	const char *b = getenv("WSGW_BUILD");
	snprintf(prog, sizeof(prog), "%s/wsgw", b ? b : "build");
	const char *argv[32] = { prog, "ctl" };
	int n = 2;
	while (*args && n < 31)
		argv[n++] = *args++;
	argv[n] = NULL;
	char path[64];
	snprintf(path, sizeof(path), "/tmp/wtctl-out.%d", (int)getpid());
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return -1;
	pid_t pid = wt_spawn(argv, fd);
	int st = -1;
	if (pid < 0 || wt_waitpid(pid, &st, 15000)) {
		close(fd);
		unlink(path);
		return -1;
	}
	lseek(fd, 0, SEEK_SET);
	ssize_t r = read(fd, out, cap - 1);
	out[r > 0 ? r : 0] = 0;
	close(fd);
	unlink(path);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}
