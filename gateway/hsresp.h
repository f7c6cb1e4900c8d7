/*
 * The server's side of the upgrade handshake: the 101 response with its
 * Sec-WebSocket-Accept, and the HTTP error responses. Pure code, reentrant.
 */
#ifndef WSGW_HSRESP_H
#define WSGW_HSRESP_H

#include <stddef.h>

#include "gateway/handshake.h"

/* Sec-WebSocket-Accept = base64(SHA-1(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11")).
   out gets 28 characters and a NUL. Aborts only if OpenSSL cannot allocate a digest
   context (a few hundred bytes). */
void ws_resp_accept_key(const char *key, size_t key_len, char out[29]);

/*
 * Writes the 101 Switching Protocols response for a request whose Sec-WebSocket-Key is key
 * (ws_hs_key of a request ws_hs_feed accepted) into out. protocol (may be NULL) becomes Sec-WebSocket-Protocol. extra_headers (may be NULL) are
 * appended verbatim: zero or more complete "Name: value\r\n" lines.
 * Returns the length written (no NUL is written), -ENOSPC when it does not fit in cap
 * (out's content is then unspecified), -EINVAL when key is empty (no accepted request), protocol
 * contains CR, LF or NUL, or extra_headers is not a block of "\r\n"-terminated non-empty
 * lines without bare CR/LF (so a worker cannot split the response).
 */
int ws_resp_101(char *out, size_t cap, struct ws_slice key, const char *protocol,
		const char *extra_headers) __attribute__((warn_unused_result));

/*
 * Writes an error response: "HTTP/1.1 <status> <reason>\r\n", Connection: close,
 * Content-Type: text/plain, Content-Length and a one-line body "<status> <reason>\n".
 * 426 carries "Sec-WebSocket-Version: 13", 405 carries "Allow: GET".
 * Known reasons: 400 401 403 404 405 408 426 429 431 500 502 503 504; any other status in
 * 400..599 is answered with a generic reason. Returns the length, -ENOSPC when it does not
 * fit in cap, -EINVAL for a status outside 400..599.
 */
int ws_resp_error(char *out, size_t cap, int status) __attribute__((warn_unused_result));
/* The same with headers (complete "Name: value\r\n" lines, the caller's own, at most
 * 200 bytes) after the others: "Retry-After: 2\r\n" for a 429. */
int ws_resp_error_headers(char *out, size_t cap, int status, const char *headers)
	__attribute__((warn_unused_result));

#endif
