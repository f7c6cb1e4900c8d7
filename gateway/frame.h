/*
 * RFC 6455 framing: building frame headers and parsing what clients send.
 * Pure code: no I/O, no allocation, no locks; every function is safe from any
 * thread as long as one struct ws_rx is used by one thread at a time.
 */
#ifndef WSGW_FRAME_H
#define WSGW_FRAME_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

enum ws_op { WS_OP_CONT = 0x0, WS_OP_TEXT = 0x1, WS_OP_BINARY = 0x2,
	     WS_OP_CLOSE = 0x8, WS_OP_PING = 0x9, WS_OP_PONG = 0xA };

enum { WS_CLOSE_NORMAL = 1000, WS_CLOSE_GOING_AWAY = 1001, WS_CLOSE_PROTOCOL = 1002,
       WS_CLOSE_UNSUPPORTED = 1003, WS_CLOSE_NO_STATUS = 1005, WS_CLOSE_ABNORMAL = 1006,
       WS_CLOSE_BAD_DATA = 1007, WS_CLOSE_POLICY = 1008, WS_CLOSE_TOO_BIG = 1009,
       WS_CLOSE_EXTENSION = 1010, WS_CLOSE_INTERNAL = 1011, WS_CLOSE_TRY_AGAIN = 1013 };

#define WS_FRAME_HDR_MAX 14	/* 2 + 8 (64-bit length) + 4 (mask key) */
#define WS_CONTROL_MAX 125
/* The most ws_rx_feed ever leaves unconsumed: size the caller's buffer tail by it. */
#define WS_RX_TAIL_MAX (WS_FRAME_HDR_MAX + WS_CONTROL_MAX)

/*
 * Writes a frame header into out and returns its length (2..14). op is one of
 * enum ws_op, fin is 0 or not. mask NULL = unmasked (server frames); else the
 * 4-byte key is written after the length (client frames: tests and the load
 * tool), and the caller masks the payload, e.g. with ws_unmask(p, n, mask, 0).
 * len must be < 2^63 (RFC 6455 5.2); larger values are written truncated.
 * Always uses the shortest length encoding.
 */
size_t ws_frame_header(uint8_t out[WS_FRAME_HDR_MAX], unsigned op, int fin, uint64_t len,
		       const uint8_t *mask);

/*
 * XORs p[0..n) with key, starting at key byte `phase` (the offset of p in the
 * payload, mod 4; only phase & 3 is used). Masking and unmasking are the same
 * operation. Unaligned p is fine; reads and writes exactly p[0..n).
 */
void ws_unmask(uint8_t *p, size_t n, const uint8_t key[4], unsigned phase);

/* 1 when a close code may appear in a received close frame (1000-1003, 1007-1011, 3000-4999), else 0. */
int ws_close_code_valid(unsigned code);
/* What a close code means, for logs: "message too big" for 1009, "policy violation" for
 * 1008, ...; "application" for 3000-4999, "unknown" otherwise. */
const char *ws_close_name(unsigned code);

/*
 * Receive state of one connection (32 bytes). Zero-initialised == ready for a
 * new connection. The fields are the parser's; callers only zero it.
 */
struct ws_rx {
	uint64_t remaining;	/* payload bytes left in the data frame being read */
	uint64_t msg_len;	/* bytes of the current message, counting whole frame headers seen */
	uint32_t utf8;		/* validator state of the current text message */
	uint8_t mask[4];
	uint8_t phase;		/* mask phase of the next payload byte */
	uint8_t frame_fin;	/* FIN bit of the data frame being read */
	uint8_t msg_op;		/* 0: no message in progress; else WS_OP_TEXT or WS_OP_BINARY */
	uint8_t in_frame;	/* 1 while inside a data frame's payload */
	uint8_t started;	/* 1 once the current message's first piece went to ops->data */
	uint8_t rsv1_ok;	/* set by the caller: permessage-deflate was agreed (RFC 7692) */
	uint8_t compressed;	/* the current message came with RSV1 */
};

/* Or'ed into ops->data's op for a message that came with RSV1 (permessage-deflate): its
 * pieces are the compressed bytes, not checked as UTF-8 (the caller checks them once
 * inflated). */
#define WS_OP_COMPRESSED 0x40

struct ws_rx_ops {
	/*
	 * A piece of a data message, unmasked in place (p points into the caller's
	 * buffer; the callee may modify or keep a pointer only until it returns).
	 * op is WS_OP_TEXT or WS_OP_BINARY (never CONT). first: these are the first
	 * bytes of the message (true exactly once per message); last: the message
	 * ends with them (exactly once). Called with len 0 for every empty frame, so
	 * an empty message still gives one call with first && last. The text pieces
	 * seen so far are valid UTF-8 prefixes; on `last` the message is complete
	 * UTF-8. A non-zero return stops the feed, which then returns that value
	 * (return a negative close code; the rx state is then undefined).
	 */
	int (*data)(void *ud, unsigned op, uint8_t *p, size_t len, int first, int last);
	/*
	 * A complete control frame (WS_OP_CLOSE, WS_OP_PING or WS_OP_PONG),
	 * unmasked in place, p[0..len) its whole payload (len <= 125). For
	 * WS_OP_CLOSE it is already validated: close_code = 0 when the frame had no
	 * body (meaning 1005), else a code for which ws_close_code_valid() holds;
	 * reason[0..reason_len) is valid UTF-8 (reason points into p). Ping and
	 * pong give close_code 0, reason NULL, reason_len 0. Return as for data.
	 */
	int (*control)(void *ud, unsigned op, uint8_t *p, size_t len, unsigned close_code,
		       const uint8_t *reason, size_t reason_len);
};

/*
 * Parses buf[0..n) from a client (frames MUST be masked). Consumes whole frame
 * headers, pieces of data payload as far as they go, and control frames only
 * once complete, so the unconsumed tail is at most WS_RX_TAIL_MAX bytes
 * (WS_FRAME_HDR_MAX + WS_CONTROL_MAX): the caller keeps it and passes it again
 * in front of the next bytes. Consumed payload bytes are unmasked in place;
 * the unconsumed tail is left untouched.
 *
 * max_msg caps the size of a whole (possibly fragmented) data message; pass
 * UINT64_MAX for no limit. Control frames are delivered even inside a
 * fragmented message. Parsing goes on after a close frame: stopping there
 * (RFC 6455 5.5.1) is the control callback's call (return non-zero).
 *
 * Returns bytes consumed (0..n), a callback's non-zero return value, or a
 * negative close code. Header rules are checked as soon as the bytes proving
 * them are present (RSV, opcode and fragmentation at the first byte, masking,
 * control length and a 1-byte close body at the second), a control frame's
 * body once it is complete; no callback runs for an offending frame:
 *  -WS_CLOSE_PROTOCOL: unmasked frame, RSV bits (but RSV1 on the first frame of a data
 *     message when rx->rsv1_ok),
 *     reserved opcode, control frame > 125 bytes or without FIN, CONT without
 *     a message, TEXT/BINARY inside a fragmented message, 64-bit length with
 *     the top bit set, non-minimal length encoding, close frame with a 1-byte
 *     body or a code that fails ws_close_code_valid();
 *  -WS_CLOSE_BAD_DATA: invalid UTF-8 in a text message (as soon as certain,
 *     even split across frames and feeds; a message ending mid-character at
 *     its last byte) or in a close reason;
 *  -WS_CLOSE_TOO_BIG: the message would exceed max_msg, detected from the
 *     frame header before the payload arrives.
 * After an error the state is undefined (the connection closes).
 */
ssize_t ws_rx_feed(struct ws_rx *rx, uint8_t *buf, size_t n, uint64_t max_msg,
		   const struct ws_rx_ops *ops, void *ud);

#endif
