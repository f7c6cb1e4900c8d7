/*
 * Static files for plain HTTP requests (--static DIR, off by default): a GET or HEAD that
 * is not a WebSocket upgrade is answered from one directory, so a gateway can serve the
 * page that opens its WebSockets (demo/). Small on purpose: whole files up to a size cap,
 * read into memory and answered with Content-Length and Connection: close; no ranges, no
 * caching headers beyond no-cache, no directory listings.
 *
 * The guard: the request path is percent-decoded, and refused (404) when it holds a NUL,
 * a "." or ".." segment, a segment starting with "." (hidden files), or a backslash; each
 * component is then opened relative to the root with O_NOFOLLOW, so no symbolic link is
 * followed, inside the root or out of it; only regular files are served.
 *
 * Pure but for the file system: no sockets, no clock. Loop thread only (one struct stc
 * is read by one thread; stc_respond keeps no state).
 */
#ifndef WSGW_STATIC_H
#define WSGW_STATIC_H

#include <stddef.h>

#define STC_DEFAULT_MAX_FILE (1u << 20)

struct stc;

/* Opens dir as the root of the files served, none larger than max_file bytes.
 * Returns 0 and *out, or -errno (-ENOTDIR, -ENOENT, -EACCES...) with nothing opened. */
int stc_open(const char *dir, size_t max_file, struct stc **out)
	__attribute__((warn_unused_result));
/* Closes the root. NULL is a no-op. */
void stc_free(struct stc *s);

struct stc_resp {
	int status;      /* 200, 301, 403 (over the size cap), 404, 500 */
	char head[512];  /* the status line and headers, the empty line included */
	size_t head_len;
	char *body;      /* malloc'ed (stc_resp_free), NULL for HEAD and for an empty body */
	size_t body_len; /* what Content-Length says; for HEAD, the body is not there */
};

/* Answers the request for path (the raw request-target's path, n bytes, not decoded; no
 * query), a HEAD when head is non-zero, else a GET. "/" and paths ending in "/" serve
 * their directory's index.html; a directory named without the "/" is redirected (301) to
 * it. Always fills *r: returns its status (on -ENOMEM, a 500 without a body). */
int stc_respond(const struct stc *s, int head, const char *path, size_t n, struct stc_resp *r);

/* Builds a response whose body is the n bytes at body (copied; NULL with n = 0 for none),
 * with the given status and content type: for the gateway's own answers on the static
 * port (/metrics). HEAD sends the headers only. Returns the status, 500 on -ENOMEM. */
int stc_respond_bytes(int head, int status, const char *type, const void *body, size_t n,
		      struct stc_resp *r);

/* Frees r's body. */
void stc_resp_free(struct stc_resp *r);

/* The Content-Type for a file name, by its extension: html, js, css, png, svg, json, ico,
 * txt, else application/octet-stream. */
const char *stc_content_type(const char *name, size_t n);

#endif
