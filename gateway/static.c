#include "gateway/static.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

/* Decoded paths longer than this are not files anyone serves from a demo directory. */
#define STC_PATH_MAX 1024

struct stc {
	int root;
	size_t max_file;
};

int stc_open(const char *dir, size_t max_file, struct stc **out)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	struct stc *s = malloc(sizeof(*s));
	if (!s) {
		close(fd);
		return -ENOMEM;
	}
	s->root = fd;
	s->max_file = max_file ? max_file : STC_DEFAULT_MAX_FILE;
	*out = s;
	return 0;
}

void stc_free(struct stc *s)
{
	if (!s)
		return;
	close(s->root);
	free(s);
}

void stc_resp_free(struct stc_resp *r)
{
	free(r->body);
	r->body = NULL;
}

const char *stc_content_type(const char *name, size_t n)
{
	static const struct { const char *ext, *type; } types[] = {
		{ ".html", "text/html; charset=utf-8" },
		{ ".htm", "text/html; charset=utf-8" },
		{ ".js", "text/javascript; charset=utf-8" },
		{ ".mjs", "text/javascript; charset=utf-8" },
		{ ".css", "text/css; charset=utf-8" },
		{ ".png", "image/png" },
		{ ".svg", "image/svg+xml" },
		{ ".json", "application/json" },
		{ ".ico", "image/x-icon" },
		{ ".txt", "text/plain; charset=utf-8" },
	};
	for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
		size_t el = strlen(types[i].ext);
		if (n > el && !strncasecmp(name + n - el, types[i].ext, el))
			return types[i].type;
	}
	return "application/octet-stream";
}

static const char *reason(int status)
{
	switch (status) {
	case 200: return "OK";
	case 301: return "Moved Permanently";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	default: return "Internal Server Error";
	}
}

/* The head for status; extra is more header lines (each ending in CRLF) or "". */
static void put_head(struct stc_resp *r, int status, const char *type, size_t len,
		     const char *extra)
{
	int n = snprintf(r->head, sizeof(r->head),
			 "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
			 "Cache-Control: no-cache\r\nX-Content-Type-Options: nosniff\r\n%s"
			 "Connection: close\r\n\r\n",
			 status, reason(status), type, len, extra);
	/* extra is bounded by the callers (a Location of at most STC_PATH_MAX + 1 bytes). */
	r->head_len = n > 0 && (size_t)n < sizeof(r->head) ? (size_t)n : 0;
	r->status = status;
}

int stc_respond_bytes(int head, int status, const char *type, const void *body, size_t n,
		      struct stc_resp *r)
{
	memset(r, 0, sizeof(*r));
	if (n && !head) {
		r->body = malloc(n);
		if (!r->body) {
			put_head(r, 500, "text/plain; charset=utf-8", 0, "");
			return 500;
		}
		memcpy(r->body, body, n);
	}
	r->body_len = n;
	put_head(r, status, type, n, "");
	return status;
}

static int error_resp(int head, int status, struct stc_resp *r)
{
	char text[64];
	int n = snprintf(text, sizeof(text), "%d %s\n", status, reason(status));
	return stc_respond_bytes(head, status, "text/plain; charset=utf-8", text, (size_t)n, r);
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c |= 0x20;
	return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* Percent-decodes path into out (NUL-terminated). -1 for what is never served: a bad
 * escape, NUL, a backslash, a path not starting with '/', or one too long. */
static int decode(const char *p, size_t n, char *out)
{
	size_t o = 0;
	if (!n || p[0] != '/')
		return -1;
	for (size_t i = 0; i < n; i++) {
		char c = p[i];
		if (c == '%') {
			int hi = i + 2 < n ? hexval(p[i + 1]) : -1, lo = i + 2 < n ? hexval(p[i + 2]) : -1;
			if (hi < 0 || lo < 0)
				return -1;
			c = (char)(hi << 4 | lo);
			i += 2;
		}
		if (c == 0 || c == '\\' || o == STC_PATH_MAX)
			return -1;
		out[o++] = c;
	}
	out[o] = 0;
	return 0;
}

int stc_respond(const struct stc *s, int head, const char *path, size_t n, struct stc_resp *r)
{
	char dec[STC_PATH_MAX + sizeof("index.html")];
	memset(r, 0, sizeof(*r));
	if (decode(path, n, dec))
		return error_resp(head, 404, r);
	size_t len = strlen(dec);
	int slash = dec[len - 1] == '/';
	if (slash)
		strcpy(dec + len, "index.html");

	/* One component at a time, none of them a link: the walk never leaves the root. */
	int dir = s->root, fd = -1;
	char *seg = dec + 1;
	for (;;) {
		char *next = strchr(seg, '/');
		if (next)
			*next++ = 0;
		while (next && *next == '/')
			next++; /* "a//b" is "a/b" */
		int last = !next || !*next;
		/* ".", "..", hidden files, and the empty name of a path starting "//". */
		fd = !*seg || seg[0] == '.' ? -1
		     : openat(dir, seg, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK |
						(last ? 0 : O_DIRECTORY));
		if (dir != s->root)
			close(dir);
		if (fd < 0 || last)
			break;
		dir = fd;
		seg = next;
	}
	if (fd < 0) /* ENOENT, ENOTDIR, ELOOP (a link), EACCES: the same answer for all */
		return error_resp(head, 404, r);

	struct stat st;
	int status = 0;
	if (fstat(fd, &st) < 0) {
		status = 500;
	} else if (S_ISDIR(st.st_mode) && !slash) {
		close(fd);
		char loc[STC_PATH_MAX + 32];
		if (n > STC_PATH_MAX)
			return error_resp(head, 404, r);
		snprintf(loc, sizeof(loc), "Location: %.*s/\r\n", (int)n, path);
		static const char text[] = "301 Moved Permanently\n";
		stc_respond_bytes(head, 301, "text/plain; charset=utf-8", text, sizeof(text) - 1, r);
		put_head(r, 301, "text/plain; charset=utf-8", sizeof(text) - 1, loc);
		return 301;
	} else if (!S_ISREG(st.st_mode)) {
		status = 404;
	} else if ((uint64_t)st.st_size > s->max_file) {
		status = 403;
	}
	if (status) {
		close(fd);
		return error_resp(head, status, r);
	}

	size_t size = (size_t)st.st_size, got = 0;
	if (!head && size) {
		r->body = malloc(size);
		if (!r->body) {
			close(fd);
			put_head(r, 500, "text/plain; charset=utf-8", 0, "");
			return 500;
		}
		/* A file that shrinks while it is read is sent as far as it went. */
		while (got < size) {
			ssize_t k = read(fd, r->body + got, size - got);
			if (k < 0 && errno == EINTR)
				continue;
			if (k <= 0)
				break;
			got += (size_t)k;
		}
		size = got;
	}
	close(fd);
	r->body_len = size;
	put_head(r, 200, stc_content_type(seg, strlen(seg)), size, ""); /* seg: the file's name */
	return 200;
}
