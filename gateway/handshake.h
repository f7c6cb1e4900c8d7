/*
 * The HTTP/1.1 WebSocket upgrade handshake (RFC 6455 4.2.1), parsed with llhttp.
 *
 * Pure code: no sockets, no clock. The event loop feeds the bytes it reads, answers with
 * one of the response builders and keeps the bytes that follow the request (the client's
 * first frames). Time limits are the caller's.
 *
 * Thread safety: a ws_hs belongs to one thread at a time. The responses are written by
 * gateway/hsresp.h.
 */
#ifndef WSGW_HANDSHAKE_H
#define WSGW_HANDSHAKE_H

#include <stddef.h>

#define WS_HS_DEFAULT_MAX_HEADER_BYTES 8192
#define WS_HS_DEFAULT_MAX_HEADERS 100

struct ws_hs_limits {
	/* Total request bytes: request line, headers and the empty line ending them.
	   0 means the default, WS_HS_DEFAULT_MAX_HEADER_BYTES. Must be < 4 GiB. */
	size_t max_header_bytes;
	/* Header lines, repeats included; more is a 431. 0 means WS_HS_DEFAULT_MAX_HEADERS.
	   Must be < 2^32 - 1.
	   Browsers send 10-25; the cap bounds the quadratic cost of merging repeats. */
	size_t max_headers;
};

/* Opaque; lives only while a connection is in the handshake phase. */
struct ws_hs;

/* lim may be NULL for the defaults. The ws_hs itself is ~220 bytes; its header storage
   grows with the bytes received and never beyond max_header_bytes.
   Returns NULL with errno ENOMEM, or EINVAL for limits out of range. */
struct ws_hs *ws_hs_new(const struct ws_hs_limits *lim) __attribute__((warn_unused_result));

/* Frees the ws_hs and its storage; every ws_slice obtained from it dies with it. NULL is
   a no-op. */
void ws_hs_free(struct ws_hs *hs);

/*
 * Feeds the next n bytes of the request; they may arrive in any number of pieces, down to
 * one byte. Never reads past buf+n. consumed may be NULL.
 *
 * Returns:
 *   0    need more bytes; all n were consumed (*consumed = n).
 *   1    the request is complete and valid; *consumed = the bytes of buf that belonged to
 *        the request. The rest, buf[*consumed .. n), are the client's first frames and MUST
 *        be kept by the caller.
 *   < 0  -status, the HTTP status to answer before closing (*consumed = 0):
 *        -400 malformed HTTP (including obs-fold, NUL/CR/LF in values, a header name that
 *             is not a token, a fragment in the request-target), HTTP version < 1.1,
 *             a missing/empty/invalid/repeated Host, no "websocket" token in Upgrade,
 *             no "upgrade" token in Connection, a Sec-WebSocket-Key that is not base64 of
 *             exactly 16 bytes, a missing Sec-WebSocket-Version, a request body
 *             (Content-Length > 0 or any Transfer-Encoding);
 *        -405 a method other than GET (answered as soon as the method is read; HEAD
 *             after the headers, see ws_hs_plain);
 *        -426 Sec-WebSocket-Version other than 13 (checked last, so a 426 means
 *             everything else was right);
 *        -431 the request is longer than max_header_bytes (bytes past the limit are never
 *             parsed nor copied), or has more than max_headers header lines;
 *        -500 out of memory while growing the header storage.
 *        ws_hs_error_reason() says why.
 * Once it has returned non-zero, further calls return the same value with *consumed = 0.
 */
int ws_hs_feed(struct ws_hs *hs, const char *buf, size_t n, size_t *consumed)
	__attribute__((warn_unused_result));

/* A view (ptr, len) into storage someone else owns. Not NUL-terminated. */
struct ws_slice {
	const char *p;
	size_t n;
};

/*
 * Request fields, valid after ws_hs_feed returned 1 and until ws_hs_free; before that they
 * all return {NULL, 0}. They point into the ws_hs's own storage. An absent header gives
 * {NULL, 0}; a present but empty one a non-NULL p with n = 0. Values have their leading
 * and trailing whitespace removed and are otherwise raw (no percent-decoding).
 */
/* "/chat" without the query; absolute-form targets ("http://h/chat") give their path,
   "/" when they have none. */
struct ws_slice ws_hs_path(const struct ws_hs *hs);
/* "a=1&b=2" without the '?'; {NULL, 0} when the target has no '?'. */
struct ws_slice ws_hs_query(const struct ws_hs *hs);
struct ws_slice ws_hs_key(const struct ws_hs *hs);
struct ws_slice ws_hs_host(const struct ws_hs *hs);
struct ws_slice ws_hs_origin(const struct ws_hs *hs);
/* Sec-WebSocket-Protocol, raw, repeated headers joined with ", ". */
struct ws_slice ws_hs_protocols(const struct ws_hs *hs);
/* Sec-WebSocket-Extensions, same. */
struct ws_slice ws_hs_extensions(const struct ws_hs *hs);
/* Any header by name (case-insensitive). Repeated headers are joined with ", " in the
   order received, except Cookie, whose pieces are joined with "; " (RFC 6265 5.4, the
   only joining a cookie parser understands). */
struct ws_slice ws_hs_header(const struct ws_hs *hs, const char *name);

/* After ws_hs_feed failed: 1 when the request was a complete, valid HTTP/1.1 GET or HEAD
   that only lacked "Upgrade: websocket" (a browser asking for a page), with its path
   (raw, without the query; "/" for an absolute-form target without one) valid until
   ws_hs_free, and *head set for a HEAD. 0 otherwise (a malformed request, a body, any
   other failure, or no failure at all). ws_hs_feed answered such a GET with -400 and
   such a HEAD with -405, as it would without this call. */
int ws_hs_plain(const struct ws_hs *hs, struct ws_slice *path, int *head);

/* Bytes this ws_hs holds right now (struct + header storage), for metrics and tests. */
size_t ws_hs_mem(const struct ws_hs *hs);

/* Short human reason of the failure ("missing Sec-WebSocket-Key", ...) for the log line;
   "no error" while none happened. A static string: valid after ws_hs_free. */
const char *ws_hs_error_reason(const struct ws_hs *hs);

#endif
