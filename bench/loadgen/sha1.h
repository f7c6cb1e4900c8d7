/* SHA-1 and base64, just enough to check Sec-WebSocket-Accept (RFC 6455 4.2.2).
 * Older than the generator's OpenSSL link (for wss://); small enough to keep. */
#ifndef LG_SHA1_H
#define LG_SHA1_H

#include <stddef.h>
#include <stdint.h>

/* Writes the 20-byte digest of p[0..n) to out. */
void lg_sha1(const void *p, size_t n, uint8_t out[20]);

/* Writes the padded base64 of p[0..n) and a NUL to out (4 * ceil(n / 3) + 1 bytes);
 * returns the length without the NUL. */
size_t lg_base64(const void *p, size_t n, char *out);

/* Writes the Sec-WebSocket-Accept value for key (NUL-terminated, 28 chars) to out[29]. */
void lg_ws_accept(const char *key, char out[29]);

#endif
