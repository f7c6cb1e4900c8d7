#include "gateway/frame.h"
#include "gateway/utf8.h"

#include <string.h>

#define FIN_BIT  0x80
#define RSV_BITS 0x70
#define MASK_BIT 0x80

static inline uint64_t load_be64(const uint8_t *p)
{
	uint64_t v;

	memcpy(&v, p, 8);
	return __builtin_bswap64(v);
}

size_t ws_frame_header(uint8_t out[WS_FRAME_HDR_MAX], unsigned op, int fin, uint64_t len,
		       const uint8_t *mask)
{
	size_t n;

	out[0] = (uint8_t)((fin ? FIN_BIT : 0) | (op & 0x0f));
	if (len < 126) {
		out[1] = (uint8_t)len;
		n = 2;
	} else if (len <= 0xffff) {
		out[1] = 126;
		out[2] = (uint8_t)(len >> 8);
		out[3] = (uint8_t)len;
		n = 4;
	} else {
		uint64_t be = __builtin_bswap64(len & ~(1ull << 63));

		out[1] = 127;
		memcpy(out + 2, &be, 8);
		n = 10;
	}
	if (mask) {
		out[1] |= MASK_BIT;
		memcpy(out + n, mask, 4);
		n += 4;
	}
	return n;
}

/* The key as a 64-bit word whose first byte in memory is key[phase]. */
static inline uint64_t key_word(const uint8_t key[4], unsigned phase)
{
	unsigned sh = (phase & 3) * 8;
	uint32_t k;

	memcpy(&k, key, 4);
	if (sh) {
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
		k = k >> sh | k << (32 - sh);
#else
		k = k << sh | k >> (32 - sh);
#endif
	}
	return (uint64_t)k << 32 | k;
}

/* Inlined into the parser: most frames are small, so the call and the setup count. */
static inline void unmask(uint8_t *p, size_t n, const uint8_t key[4], unsigned phase)
{
	uint64_t k = key_word(key, phase), w0, w1, w2, w3;
	uint8_t k8[8];
	size_t i = 0;

	/* Four independent words per round keep both load ports busy. */
	for (; i + 32 <= n; i += 32) {
		memcpy(&w0, p + i, 8);
		memcpy(&w1, p + i + 8, 8);
		memcpy(&w2, p + i + 16, 8);
		memcpy(&w3, p + i + 24, 8);
		w0 ^= k;
		w1 ^= k;
		w2 ^= k;
		w3 ^= k;
		memcpy(p + i, &w0, 8);
		memcpy(p + i + 8, &w1, 8);
		memcpy(p + i + 16, &w2, 8);
		memcpy(p + i + 24, &w3, 8);
	}
	for (; i + 8 <= n; i += 8) {
		memcpy(&w0, p + i, 8);
		w0 ^= k;
		memcpy(p + i, &w0, 8);
	}
	/* i is a multiple of 4 from here on, so each step starts at key byte `phase`. */
	if (i + 4 <= n) {
		uint32_t w, k4 = (uint32_t)k;

		memcpy(&w, p + i, 4);
		w ^= k4;
		memcpy(p + i, &w, 4);
		i += 4;
	}
	memcpy(k8, &k, 8);
	for (size_t j = 0; i < n; i++, j++)
		p[i] ^= k8[j];
}

void ws_unmask(uint8_t *p, size_t n, const uint8_t key[4], unsigned phase)
{
	unmask(p, n, key, phase);
}

int ws_close_code_valid(unsigned code)
{
	return (code >= 1000 && code <= 1003) ||
	       (code >= 1007 && code <= 1011) ||
	       (code >= 3000 && code <= 4999);
}

/* p[0..len) is a complete control frame payload, still masked. */
static int rx_control(unsigned op, uint8_t *p, size_t len, const uint8_t mask[4],
		      const struct ws_rx_ops *ops, void *ud)
{
	unsigned code;

	unmask(p, len, mask, 0);
	if (op != WS_OP_CLOSE)
		return ops->control(ud, op, p, len, 0, NULL, 0);
	if (len == 0)
		return ops->control(ud, op, p, 0, 0, NULL, 0);
	/* len == 1 was refused at the header. */
	code = (unsigned)p[0] << 8 | p[1];
	if (!ws_close_code_valid(code))
		return -WS_CLOSE_PROTOCOL;
	if (utf8_validate(UTF8_ACCEPT, p + 2, len - 2) != UTF8_ACCEPT)
		return -WS_CLOSE_BAD_DATA;
	return ops->control(ud, op, p, len, code, p + 2, len - 2);
}

/* Delivers p[0..take) of the current data frame (take <= rx->remaining). */
static inline int rx_piece(struct ws_rx *rx, uint8_t *p, size_t take,
			   const struct ws_rx_ops *ops, void *ud)
{
	unsigned op = rx->msg_op;
	int first, last;

	unmask(p, take, rx->mask, rx->phase);
	rx->phase = (uint8_t)((rx->phase + take) & 3);
	rx->remaining -= take;
	last = rx->remaining == 0 && rx->frame_fin;
	if (rx->compressed) {
		op |= WS_OP_COMPRESSED;
	} else if (op == WS_OP_TEXT) {
		/* Validated before delivery: a worker never sees a byte of a bad message. */
		rx->utf8 = utf8_validate(rx->utf8, p, take);
		if (rx->utf8 == UTF8_REJECT || (last && rx->utf8 != UTF8_ACCEPT))
			return -WS_CLOSE_BAD_DATA;
	}
	first = !rx->started;
	rx->started = 1;
	if (rx->remaining == 0) {
		rx->in_frame = 0;
		if (last)
			rx->msg_op = 0;
	}
	return ops->data(ud, op, p, take, first, last);
}

ssize_t ws_rx_feed(struct ws_rx *rx, uint8_t *buf, size_t n, uint64_t max_msg,
		   const struct ws_rx_ops *ops, void *ud)
{
	size_t pos = 0, take;
	int rc;

	while (pos < n) {
		if (!rx->in_frame) {
			uint8_t *h = buf + pos;
			size_t avail = n - pos, hlen = 6;
			unsigned op = h[0] & 0x0f;
			uint64_t len, have;

			/*
			 * Each rule is checked as soon as the bytes that prove it are
			 * here, so garbage is refused without waiting for more input.
			 */
			/* RSV1 marks a compressed message (RFC 7692 6.1): on its first frame only,
			 * never on a control frame or a continuation. */
			if ((h[0] & RSV_BITS) &&
			    ((h[0] & RSV_BITS) != 0x40 || !rx->rsv1_ok || !(op == WS_OP_TEXT || op == WS_OP_BINARY)))
				return -WS_CLOSE_PROTOCOL;
			if (op & 0x8) {
				if (op > WS_OP_PONG || !(h[0] & FIN_BIT))
					return -WS_CLOSE_PROTOCOL;
			} else if (op > WS_OP_BINARY || (op == WS_OP_CONT) != (rx->msg_op != 0)) {
				return -WS_CLOSE_PROTOCOL;
			}
			if (avail < 2)
				break;
			if (!(h[1] & MASK_BIT))
				return -WS_CLOSE_PROTOCOL;
			len = h[1] & 0x7f;
			if (op & 0x8) {
				if (len > WS_CONTROL_MAX || (op == WS_OP_CLOSE && len == 1))
					return -WS_CLOSE_PROTOCOL;
				if (avail < 6 + len)
					break;
				rc = rx_control(op, h + 6, (size_t)len, h + 2, ops, ud);
				if (rc)
					return rc;
				pos += 6 + (size_t)len;
				continue;
			}
			if (len == 126) {
				if (avail < 4)
					break;
				len = (uint64_t)h[2] << 8 | h[3];
				if (len < 126)
					return -WS_CLOSE_PROTOCOL;
				hlen = 8;
			} else if (len == 127) {
				if (avail < 10)
					break;
				len = load_be64(h + 2);
				if ((len >> 63) || len <= 0xffff)
					return -WS_CLOSE_PROTOCOL;
				hlen = 14;
			}
			have = op == WS_OP_CONT ? rx->msg_len : 0;
			if (have > max_msg || len > max_msg - have)
				return -WS_CLOSE_TOO_BIG;
			if (avail < hlen)
				break;

			memcpy(rx->mask, h + hlen - 4, 4);
			pos += hlen;
			if (op != WS_OP_CONT) {
				rx->msg_op = (uint8_t)op;
				rx->utf8 = UTF8_ACCEPT;
				rx->started = 0;
				rx->compressed = (h[0] & 0x40) != 0;
			}
			rx->msg_len = have + len;
			rx->remaining = len;
			rx->phase = 0;
			rx->frame_fin = h[0] >> 7;
			rx->in_frame = 1;
			/* An empty frame is still reported, so empty messages exist. */
			if (len == 0) {
				rc = rx_piece(rx, buf + pos, 0, ops, ud);
				if (rc)
					return rc;
				continue;
			}
			if (pos == n)
				break;
		}
		take = n - pos;
		if (take > rx->remaining)
			take = (size_t)rx->remaining;
		rc = rx_piece(rx, buf + pos, take, ops, ud);
		if (rc)
			return rc;
		pos += take;
	}
	return (ssize_t)pos;
}

const char *ws_close_name(unsigned code)
{
	switch (code) {
	case 1000: return "normal closure";
	case 1001: return "going away";
	case 1002: return "protocol error";
	case 1003: return "unsupported data";
	case 1005: return "no status";
	case 1006: return "abnormal closure";
	case 1007: return "invalid payload data";
	case 1008: return "policy violation";
	case 1009: return "message too big";
	case 1010: return "mandatory extension";
	case 1011: return "internal error";
	case 1012: return "service restart";
	case 1013: return "try again later";
	case 1014: return "bad gateway";
	}
	return code >= 3000 && code <= 4999 ? "application" : "unknown";
}
