/*
 * permessage-deflate (RFC 7692) with zlib: negotiating it from a client's offers, and
 * compressing and decompressing whole messages.
 *
 * Memory is what costs with many connections, so by default the gateway asks for no
 * context takeover both ways: every message is compressed and decompressed on its own, and
 * one pair of zlib streams per loop serves every connection — an idle connection holds no
 * zlib state at all. A route may allow context takeover (better ratios for small, similar
 * messages); such a connection then keeps its own streams, made at its first compressed
 * message. Loop thread only.
 */
#ifndef WSGW_DEFLATE_H
#define WSGW_DEFLATE_H

#include <stddef.h>
#include <stdint.h>

#include "gateway/handshake.h"

/* A route's settings (--route ...,deflate=...). */
struct pmd_cfg {
	uint8_t on;            /* negotiate it at all */
	uint8_t server_bits;   /* the window the gateway compresses with, 9..15 */
	uint8_t client_bits;   /* asked of clients that offer client_max_window_bits, 9..15 */
	uint8_t level;         /* zlib level 1..9 */
	uint8_t mem_level;     /* zlib memLevel 1..9 */
	uint8_t takeover;      /* bit 0: the client may keep its context; bit 1: the gateway keeps its */
	uint16_t min_size;     /* messages shorter than this are sent uncompressed */
};

/* What was agreed with one client: 4 bytes, kept in the connection. */
struct pmd_params {
	uint8_t on;
	uint8_t server_bits, client_bits;
	uint8_t takeover : 2;  /* as in pmd_cfg, as agreed */
	uint8_t say_sbits : 1; /* the answer names server_max_window_bits (it was offered) */
	uint8_t say_cbits : 1; /* and client_max_window_bits */
};

/* The defaults: on, no context takeover, windows of 2^10, level 6, memLevel 4, 64 bytes. */
void pmd_cfg_default(struct pmd_cfg *c);

/*
 * Picks the first acceptable permessage-deflate offer of a Sec-WebSocket-Extensions value
 * (offers may be repeated with other parameters; unknown extensions are skipped). Returns
 * 1 when one was accepted (*p filled), 0 when none was (p->on is 0: the connection goes on
 * uncompressed).
 */
int pmd_negotiate(const struct pmd_cfg *cfg, struct ws_slice offers, struct pmd_params *p);
/* The answer to an accepted offer, "Sec-WebSocket-Extensions: ...\r\n", into out; "" when
 * p is off. Returns its length, or -ENOSPC. */
int pmd_header(const struct pmd_params *p, char *out, size_t cap);

struct pmd_stream; /* a connection's own zlib state (context takeover only) */

/* Frees a connection's streams. NULL is a no-op. */
void pmd_stream_free(struct pmd_stream *s);

/*
 * A live upgrade moves a connection's streams (docs/UPGRADE.md). Between messages a
 * stream's whole state is its window, the last 2^bits bytes it saw: every message ends
 * with a sync flush, so both streams sit at a block boundary with no bits pending. The
 * compressor restored from its window writes other bytes than the old one would have, but
 * valid ones for the client, whose inflater holds the same window; the decompressor
 * restored goes on exactly.
 */
#define PMD_WINDOW_MAX 32768 /* 2^15 */

/* 1 when s is at a message boundary both ways (NULL is), so its windows are its state;
 * 0 after a zlib call that failed half way or a client message that did not end on a
 * block boundary (a final block, or no flush): then it cannot move. */
int pmd_stream_movable(const struct pmd_stream *s);

/* Copies s's windows (NULL: none) into to_client (the compressor's) and from_client (the
 * decompressor's), PMD_WINDOW_MAX bytes each, lengths in *to_n, *from_n (0 when that
 * stream was never made). 0, or -EAGAIN when s is not movable. Nothing of s changes. */
int pmd_stream_export(struct pmd_stream *s, uint8_t *to_client, size_t *to_n,
		      uint8_t *from_client, size_t *from_n) __attribute__((warn_unused_result));

/* Makes a connection's streams from windows pmd_stream_export gave, with p as agreed: *ps
 * is NULL when both are empty (made at the first compressed message, as for a new
 * connection). The compressor itself is made at its first message (with the level and
 * memLevel pmd_deflate is given): until then the stream holds its window, to_n bytes. 0; -EINVAL: a window for a direction that keeps no
 * context, or longer than 2^bits of that direction; -ENOMEM. *ps is untouched on error. */
int pmd_stream_import(const struct pmd_params *p, const uint8_t *to_client, size_t to_n,
		      const uint8_t *from_client, size_t from_n, struct pmd_stream **ps) __attribute__((warn_unused_result));

/*
 * Decompresses the message in[0..n) (the compressed payload of a message with RSV1) into a
 * buffer of the loop's, valid until the next call. *ps is the connection's stream, made
 * here when its parameters keep context. Returns 0 with *out, *out_n; -EMSGSIZE when the
 * message would pass max bytes (nothing more is inflated: a bomb costs max at most);
 * -EBADMSG for data that is not valid DEFLATE; -ENOMEM.
 */
int pmd_inflate(const struct pmd_params *p, struct pmd_stream **ps, const uint8_t *in,
		size_t n, size_t max, const uint8_t **out, size_t *out_n)
	__attribute__((warn_unused_result));

/*
 * Compresses in[0..n) as one message into a buffer of the loop's, valid until the next
 * call. Returns 0 with *out, *out_n; -ENOMEM.
 */
int pmd_deflate(const struct pmd_params *p, const struct pmd_cfg *cfg, struct pmd_stream **ps,
		const uint8_t *in, size_t n, const uint8_t **out, size_t *out_n)
	__attribute__((warn_unused_result));

/* A loop thread ends: its shared zlib streams and buffers go (they are the thread's). */
void pmd_thread_end(void);
/* Bytes given to and taken from zlib, for the compression ratio in /metrics. */
void pmd_totals(uint64_t *in_plain, uint64_t *in_wire, uint64_t *out_plain, uint64_t *out_wire);

#endif
