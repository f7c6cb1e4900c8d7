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

int wt_admin_raw(int port, const char *req, char *out, size_t cap, const char **body)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	*body = out;
	out[0] = 0;
	if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
		int err = errno;
		if (fd >= 0)
			close(fd);
		return -err;
	}
	size_t n = strlen(req);
	if (write(fd, req, n) != (ssize_t)n) {
		close(fd);
		return -EIO;
	}
	size_t len = 0;
	int64_t end = wt_now_ms() + 5000;
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

int wt_admin_get(int port, const char *path, const char *token, char *out, size_t cap,
		 const char **body)
{
	char req[1024];
	snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: x\r\n%s%s%sConnection: close\r\n\r\n", path,
		 token ? "Authorization: Bearer " : "", token ? token : "", token ? "\r\n" : "");
	return wt_admin_raw(port, req, out, cap, body);
}

/* ---- the exposition format ---- */

static int name_ok(const char *s, size_t n, int metric)
{
	if (!n)
		return 0;
	for (size_t i = 0; i < n; i++) {
		int c = (unsigned char)s[i];
		int ok = isalpha(c) || c == '_' || (metric && c == ':') || (i && isdigit(c));
		if (!ok)
			return 0;
	}
	return 1;
}

#define MAX_FAMILIES 512

int wt_prom_check(const char *text, char *why, size_t cap)
{
	static char fams[MAX_FAMILIES][160], types[MAX_FAMILIES][16];
	static char series[8192][256];
	int nfam = 0, nseries = 0, cur = -1, lineno = 0;
	for (const char *l = text; *l;) {
		const char *eol = strchr(l, '\n');
		if (!eol) {
			snprintf(why, cap, "the last line has no newline");
			return -1;
		}
		size_t n = (size_t)(eol - l);
		char line[2048];
		snprintf(line, sizeof(line), "%.*s", (int)(n < sizeof(line) - 1 ? n : sizeof(line) - 1), l);
		lineno++;
		l = eol + 1;
		if (!n)
			continue;
		if (line[0] == '#') {
			char kind[8], name[160], rest[1800] = "";
			if (sscanf(line, "# %7s %159s %1799[^\n]", kind, name, rest) < 2)
				continue; /* a plain comment */
			if (strcmp(kind, "HELP") && strcmp(kind, "TYPE"))
				continue;
			if (!name_ok(name, strlen(name), 1)) {
				snprintf(why, cap, "line %d: bad metric name '%s'", lineno, name);
				return -1;
			}
			int f = -1;
			for (int i = 0; i < nfam; i++)
				if (!strcmp(fams[i], name))
					f = i;
			if (!strcmp(kind, "TYPE")) {
				static const char *const t[] = { "counter", "gauge", "histogram", "summary", "untyped" };
				int ok = 0;
				for (int i = 0; i < 5; i++)
					ok |= !strcmp(rest, t[i]);
				if (!ok) {
					snprintf(why, cap, "line %d: unknown type '%s'", lineno, rest);
					return -1;
				}
				if (f >= 0 && types[f][0]) {
					snprintf(why, cap, "line %d: a second TYPE for %s", lineno, name);
					return -1;
				}
				if (!strcmp(rest, "counter") && (strlen(name) < 6 || strcmp(name + strlen(name) - 6, "_total"))) {
					snprintf(why, cap, "line %d: counter %s does not end in _total", lineno, name);
					return -1;
				}
			}
			if (f < 0) {
				if (nfam == MAX_FAMILIES)
					return snprintf(why, cap, "too many families"), -1;
				f = nfam++;
				snprintf(fams[f], sizeof(fams[f]), "%s", name);
				types[f][0] = 0;
			} else if (f != cur) {
				snprintf(why, cap, "line %d: %s %s apart from its family's other lines", lineno, kind, name);
				return -1;
			}
			if (!strcmp(kind, "TYPE"))
				snprintf(types[f], sizeof(types[f]), "%s", rest);
			cur = f;
			continue;
		}
		/* A sample: name{labels} value */
		size_t nl = strcspn(line, "{ ");
		char name[160];
		snprintf(name, sizeof(name), "%.*s", (int)nl, line);
		if (!name_ok(name, nl, 1)) {
			snprintf(why, cap, "line %d: bad metric name in '%s'", lineno, line);
			return -1;
		}
		if (cur < 0 || strcmp(fams[cur], name)) {
			snprintf(why, cap, "line %d: sample of %s outside its family (after its TYPE, with the others)", lineno, name);
			return -1;
		}
		const char *p = line + nl;
		if (*p == '{') {
			p++;
			while (*p != '}') {
				size_t ln = strcspn(p, "=");
				if (!name_ok(p, ln, 0) || p[ln] != '=' || p[ln + 1] != '"') {
					snprintf(why, cap, "line %d: bad label in '%s'", lineno, line);
					return -1;
				}
				p += ln + 2;
				while (*p && *p != '"') {
					if (*p == '\\') {
						if (p[1] != '\\' && p[1] != '"' && p[1] != 'n') {
							snprintf(why, cap, "line %d: bad escape in a label value", lineno);
							return -1;
						}
						p++;
					}
					p++;
				}
				if (*p != '"') {
					snprintf(why, cap, "line %d: unterminated label value", lineno);
					return -1;
				}
				p++;
				if (*p == ',')
					p++;
				else if (*p != '}') {
					snprintf(why, cap, "line %d: expected , or } in '%s'", lineno, line);
					return -1;
				}
			}
			p++;
		}
		size_t sl = (size_t)(p - line);
		for (int i = 0; i < nseries; i++)
			if (strlen(series[i]) == sl && !strncmp(series[i], line, sl)) {
				snprintf(why, cap, "line %d: series %.*s twice", lineno, (int)sl, line);
				return -1;
			}
		if (nseries < 8192)
			snprintf(series[nseries++], sizeof(series[0]), "%.*s", (int)sl, line);
		if (*p != ' ') {
			snprintf(why, cap, "line %d: expected a space before the value", lineno);
			return -1;
		}
		char *end;
		strtod(p + 1, &end);
		if (end == p + 1 || (*end && *end != ' ')) {
			snprintf(why, cap, "line %d: bad value in '%s'", lineno, line);
			return -1;
		}
	}
	return 0;
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
