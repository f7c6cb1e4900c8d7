#include "gateway/hsresp.h"
#include "gateway/log.h"

#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

void ws_resp_accept_key(const char *key, size_t key_len, char out[29])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();

	/* Streaming, not key+GUID in a stack buffer: key_len is the caller's, unbounded. */
	if (!ctx || !EVP_DigestInit_ex(ctx, EVP_sha1(), NULL) ||
	    !EVP_DigestUpdate(ctx, key, key_len) ||
	    !EVP_DigestUpdate(ctx, WS_GUID, sizeof(WS_GUID) - 1) ||
	    !EVP_DigestFinal_ex(ctx, md, &mdlen) || mdlen != 20) {
		log_error(ENOMEM, "SHA-1 of Sec-WebSocket-Key failed");
		abort();
	}
	EVP_MD_CTX_free(ctx);
	EVP_EncodeBlock((unsigned char *)out, md, 20);
}

/* Appends n bytes at *len; false when they do not fit. */
static bool put(char *out, size_t cap, size_t *len, const char *s, size_t n)
{
	if (n > cap - *len)
		return false;
	memcpy(out + *len, s, n);
	*len += n;
	return true;
}

static bool puts_(char *out, size_t cap, size_t *len, const char *s)
{
	return put(out, cap, len, s, strlen(s));
}

/* A block of complete "\r\n"-terminated, non-empty lines without NUL or bare CR/LF:
   anything else would let the block end the response head early or split it. */
static bool header_block_valid(const char *s)
{
	bool line_start = true;

	for (; *s; s++) {
		if (*s == '\r') {
			if (line_start || s[1] != '\n')
				return false;
			s++;
			line_start = true;
			continue;
		}
		if (*s == '\n')
			return false;
		line_start = false;
	}
	return line_start;
}

int ws_resp_101(char *out, size_t cap, struct ws_slice key, const char *protocol,
		const char *extra_headers)
{
	char accept[29];
	size_t len = 0;

	if (!key.p)
		return -EINVAL;
	if (protocol && (protocol[strcspn(protocol, "\r\n")] || !*protocol))
		return -EINVAL;
	if (extra_headers && !header_block_valid(extra_headers))
		return -EINVAL;
	if (cap > INT_MAX)
		cap = INT_MAX;
	ws_resp_accept_key(key.p, key.n, accept);
	if (!puts_(out, cap, &len, "HTTP/1.1 101 Switching Protocols\r\n"
				   "Upgrade: websocket\r\n"
				   "Connection: Upgrade\r\n"
				   "Sec-WebSocket-Accept: ") ||
	    !put(out, cap, &len, accept, 28) || !puts_(out, cap, &len, "\r\n"))
		return -ENOSPC;
	if (protocol && (!puts_(out, cap, &len, "Sec-WebSocket-Protocol: ") ||
			 !puts_(out, cap, &len, protocol) || !puts_(out, cap, &len, "\r\n")))
		return -ENOSPC;
	if (extra_headers && !puts_(out, cap, &len, extra_headers))
		return -ENOSPC;
	if (!puts_(out, cap, &len, "\r\n"))
		return -ENOSPC;
	return len;
}

static const char *status_reason(int status)
{
	switch (status) {
	case 400: return "Bad Request";
	case 401: return "Unauthorized";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 408: return "Request Timeout";
	case 426: return "Upgrade Required";
	case 429: return "Too Many Requests";
	case 431: return "Request Header Fields Too Large";
	case 500: return "Internal Server Error";
	case 502: return "Bad Gateway";
	case 503: return "Service Unavailable";
	case 504: return "Gateway Timeout";
	}
	return status < 500 ? "Client Error" : "Server Error";
}

int ws_resp_error(char *out, size_t cap, int status)
{
	return ws_resp_error_headers(out, cap, status, NULL);
}

int ws_resp_error_headers(char *out, size_t cap, int status, const char *headers)
{
	const char *reason, *extra = "";
	char tmp[512]; /* the longest, 431, is ~170 bytes without headers */
	int r;

	if (status < 400 || status > 599)
		return -EINVAL;
	reason = status_reason(status);
	if (status == 426)
		extra = "Sec-WebSocket-Version: 13\r\n";
	else if (status == 405)
		extra = "Allow: GET\r\n";
	/* Through tmp because snprintf wants room for a NUL the caller does not need. */
	r = snprintf(tmp, sizeof(tmp),
		     "HTTP/1.1 %d %s\r\n"
		     "Connection: close\r\n"
		     "Content-Type: text/plain\r\n"
		     "Content-Length: %zu\r\n"
		     "%s%s"
		     "\r\n"
		     "%d %s\n",
		     status, reason, strlen(reason) + 5 /* "NNN " reason "\n" */, extra,
		     headers ? headers : "", status, reason);
	if (r < 0 || (size_t)r >= sizeof(tmp))
		return -EINVAL;
	if ((size_t)r > cap)
		return -ENOSPC;
	memcpy(out, tmp, r);
	return r;
}
