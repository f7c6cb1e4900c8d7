/* permessage-deflate (RFC 7692) for wsgw-bench, without context takeover either way: each
 * message is compressed and inflated on its own, by one deflater and one inflater per
 * client thread. */
#ifndef LG_PMD_H
#define LG_PMD_H

#include <stddef.h>
#include <stdint.h>

/* The offer, a whole header line. */
#define LG_PMD_OFFER "Sec-WebSocket-Extensions: permessage-deflate; " \
		     "client_no_context_takeover; server_no_context_takeover\r\n"

struct lg_pmd;

/* One thread's streams at zlib level (1..9); aborts when zlib cannot allocate them. */
struct lg_pmd *lg_pmd_new(int level);
void lg_pmd_free(struct lg_pmd *z);

/* Checks the 101's Sec-WebSocket-Extensions value v[0..n) against LG_PMD_OFFER: 0 when it
 * accepts permessage-deflate with server_no_context_takeover (which we offered, so it
 * must be there) and nothing we did not offer; -1 otherwise. */
int lg_pmd_check_answer(const char *v, size_t n);

/* Compresses p[0..n) as one message: the deflate data with the 4-byte tail of
 * Z_SYNC_FLUSH removed. *out points into z's buffer, valid until the next call. */
void lg_pmd_deflate(struct lg_pmd *z, const uint8_t *p, size_t n, const uint8_t **out,
		    size_t *out_n);

/* Inflates one message's data (the tail is put back here). 0, -EMSGSIZE when it inflates
 * past max bytes, -EBADMSG when it is not valid deflate data. *out as for deflate. */
int lg_pmd_inflate(struct lg_pmd *z, const uint8_t *p, size_t n, size_t max,
		   const uint8_t **out, size_t *out_n);

#endif
