#include "gateway/zmsg.h"
#include "gateway/log.h"
#include "wsgw/protocol.h"

#include <endian.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int zmsg_frame_is(const zmq_msg_t *m, const char *s)
{
	size_t n = strlen(s);
	return zmq_msg_size((zmq_msg_t *)m) == n && memcmp(zmq_msg_data((zmq_msg_t *)m), s, n) == 0;
}

int zmsg_frame_str(zmq_msg_t *m, char *buf, size_t cap)
{
	size_t n = zmq_msg_size(m);
	if (n >= cap || memchr(zmq_msg_data(m), 0, n))
		return -1;
	memcpy(buf, zmq_msg_data(m), n);
	buf[n] = 0;
	return 0;
}

/* --- records to frames --- */

struct out {
	void *sock;
	int err;
};

static void put(struct out *o, const void *p, size_t n, int more)
{
	/* Once the first frame is queued the rest are too: a ROUTER applies its high-water
	 * mark to whole messages. */
	if (!o->err && zmq_send(o->sock, p, n, (more ? ZMQ_SNDMORE : 0) | ZMQ_DONTWAIT) < 0)
		o->err = errno;
}

/* The body (a, then b) from byte skip on, as one frame: joined only when both parts have
 * bytes left. */
static void put_body(struct out *o, const struct tr_rec *r, size_t skip, int more)
{
	const uint8_t *a = r->a, *b = r->b;
	size_t na = r->na, nb = r->nb;
	size_t sa = skip < na ? skip : na, sb = skip - sa < nb ? skip - sa : nb;
	a += sa, na -= sa, b += sb, nb -= sb;
	if (!nb || !na) {
		put(o, na ? (const void *)a : (const void *)b, na ? na : nb, more);
		return;
	}
	zmq_msg_t m;
	if (o->err || zmq_msg_init_size(&m, na + nb) < 0) {
		o->err = o->err ? o->err : ENOMEM;
		return;
	}
	memcpy(zmq_msg_data(&m), a, na);
	memcpy((uint8_t *)zmq_msg_data(&m) + na, b, nb);
	if (zmq_msg_send(&m, o->sock, (more ? ZMQ_SNDMORE : 0) | ZMQ_DONTWAIT) < 0) {
		o->err = errno;
		zmq_msg_close(&m);
	}
}

/* Byte i of the body (a, then b). */
static uint8_t body_at(const struct tr_rec *r, size_t i)
{
	return i < r->na ? ((const uint8_t *)r->a)[i] : ((const uint8_t *)r->b)[i - r->na];
}

int zmsg_send_record(void *sock, const uint8_t *ident, size_t ilen, const struct tr_rec *r)
{
	const char *verb;
	switch (r->type) {
	case WSGW_OPEN: verb = "OPEN"; break;
	case WSGW_MESSAGE: verb = "MESSAGE"; break;
	case WSGW_CLOSE: verb = "CLOSE"; break;
	case WSGW_GONE: verb = "GONE"; break;
	case WSGW_ERROR: verb = "ERROR"; break;
	default:
		log_error(0, "control: no zmq form for record type %u", r->type);
		return -EIO;
	}
	/* OPEN's fields are walked in place: held or not, its body is one part. */
	if (r->type == WSGW_OPEN && r->nb) {
		log_error(0, "control: an OPEN in two parts");
		return -EIO;
	}
	/* The first frame decides: past the high-water mark nothing is queued. EHOSTUNREACH:
	 * the worker's connection is gone and its death is about to be noticed. */
	if (zmq_send(sock, ident, ilen, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0)
		return errno == EAGAIN || errno == EHOSTUNREACH ? -EAGAIN : -EIO;
	struct out o = { sock, 0 };
	uint64_t be = htobe64(r->conn);
	size_t len = r->na + r->nb;
	put(&o, verb, strlen(verb), 1);
	switch (r->type) {
	case WSGW_ERROR:
		put_body(&o, r, 0, 0);
		break;
	case WSGW_GONE:
		put(&o, &be, 8, 0);
		break;
	case WSGW_MESSAGE:
		put(&o, &be, 8, 1);
		if (r->flags & WSGW_F_BINARY)
			put(&o, "binary", 6, 1);
		else
			put(&o, "text", 4, 1);
		put_body(&o, r, 0, 0);
		break;
	case WSGW_CLOSE: {
		/* A CLOSE body is the code (2 bytes, big-endian), then the reason. */
		char num[8];
		snprintf(num, sizeof(num), "%u",
			 len >= 2 ? (unsigned)(body_at(r, 0) << 8 | body_at(r, 1)) : 1005u);
		put(&o, &be, 8, 1);
		put(&o, num, strlen(num), 1);
		put_body(&o, r, 2, 0);
		break;
	}
	default: { /* WSGW_OPEN: flags, then name and value frames for each field */
		char fl[24] = "";
		if (r->flags & WSGW_F_RESUMED)
			strcat(fl, "resumed");
		if (r->flags & WSGW_F_AUTHORIZE)
			strcat(fl, fl[0] ? ",authorize" : "authorize");
		const uint8_t *q = r->a, *end = q + r->na;
		struct wsgw_field f;
		put(&o, &be, 8, 1);
		put(&o, fl, strlen(fl), q < end);
		int rc;
		while ((rc = wsgw_field_next(&q, end, &f)) == 1) {
			put(&o, f.name, f.name_len, 1);
			put(&o, f.value, f.value_len, q < end);
		}
		/* Malformed fields (never ours): end the message rather than leave it open. */
		if (rc < 0)
			put(&o, "", 0, 0);
	}
	}
	if (o.err) {
		log_error(o.err, "control: a record for a zmq worker was cut short");
		return -EIO;
	}
	return 0;
}

/* --- frames to commands --- */

static int frame_u64(zmq_msg_t *m, uint64_t *out)
{
	if (zmq_msg_size(m) != 8)
		return -1;
	uint64_t be;
	memcpy(&be, zmq_msg_data(m), 8);
	*out = be64toh(be);
	return 0;
}

/* A decimal frame in [lo, hi]. */
static int frame_num(zmq_msg_t *m, unsigned lo, unsigned hi, unsigned *out)
{
	char buf[12], *end;
	if (zmsg_frame_str(m, buf, sizeof(buf)) || !buf[0] || strspn(buf, "0123456789") != strlen(buf))
		return -1;
	unsigned long v = strtoul(buf, &end, 10);
	if (*end || v < lo || v > hi)
		return -1;
	*out = (unsigned)v;
	return 0;
}

static int decode_accept(zmq_msg_t *f, int n, struct zmsg_cmd *cmd, const char **why)
{
	size_t total = 0, bytes = 0;
	if (n - 3 > ZMSG_ACCEPT_HEADERS) {
		*why = "ACCEPT with more than 64 headers";
		return -EINVAL;
	}
	for (int i = 2; i < n; i++) {
		total += wsgw_field_size(8, zmq_msg_size(&f[i]));
		bytes += i > 2 ? zmq_msg_size(&f[i]) + 2 : 0;
	}
	if (bytes > ZMSG_ACCEPT_BYTES) {
		*why = "ACCEPT headers over 8192 bytes";
		return -EINVAL;
	}
	cmd->fields = malloc(total);
	if (!cmd->fields)
		return -ENOMEM;
	uint8_t *q = cmd->fields;
	for (int i = 2; i < n; i++) {
		size_t vl = zmq_msg_size(&f[i]);
		if (i == 2 && vl)
			q = wsgw_field_put(q, "protocol", 8, zmq_msg_data(&f[i]), vl);
		else if (i > 2)
			q = wsgw_field_put(q, "header", 6, zmq_msg_data(&f[i]), vl);
	}
	cmd->rec.type = WSGW_ACCEPT;
	cmd->rec.payload = cmd->fields;
	cmd->rec.len = (uint32_t)(q - cmd->fields);
	return 0;
}

int zmsg_decode(zmq_msg_t *f, int n, uint64_t max_message, struct zmsg_cmd *cmd, const char **why)
{
	memset(&cmd->rec, 0, sizeof(cmd->rec));
	cmd->fields = NULL;
	if (n < 2 || frame_u64(&f[1], &cmd->rec.conn)) {
		*why = "malformed command: want VERB, 8-byte connection id, ...";
		return -EINVAL;
	}
	unsigned num;
	if (zmsg_frame_is(&f[0], "SEND")) {
		if (n != 4 || (!zmsg_frame_is(&f[2], "text") && !zmsg_frame_is(&f[2], "binary"))) {
			*why = "malformed SEND: want SEND, id, text|binary, payload";
			return -EINVAL;
		}
		if (zmq_msg_size(&f[3]) > max_message) {
			*why = "SEND payload over --max-message";
			return -EINVAL;
		}
		cmd->rec.type = WSGW_SEND;
		cmd->rec.flags = zmsg_frame_is(&f[2], "binary") ? WSGW_F_BINARY : 0;
		cmd->rec.payload = zmq_msg_data(&f[3]);
		cmd->rec.len = (uint32_t)zmq_msg_size(&f[3]);
		return 0;
	}
	if (zmsg_frame_is(&f[0], "CLOSE") || zmsg_frame_is(&f[0], "REJECT")) {
		int close = zmsg_frame_is(&f[0], "CLOSE");
		size_t rl = n == 4 ? zmq_msg_size(&f[3]) : 0;
		if (n != 4 || frame_num(&f[2], close ? 1000 : 400, close ? 4999 : 599, &num) ||
		    rl > WS_CONTROL_MAX - 2) {
			*why = close ? "malformed CLOSE: want CLOSE, id, code, reason (<= 123 bytes)"
				     : "malformed REJECT: want REJECT, id, status 400-599, reason";
			return -EINVAL;
		}
		cmd->rec.type = close ? WSGW_CLOSE : WSGW_REJECT;
		cmd->small[0] = (uint8_t)(num >> 8);
		cmd->small[1] = (uint8_t)num;
		if (rl)
			memcpy(cmd->small + 2, zmq_msg_data(&f[3]), rl);
		cmd->rec.payload = cmd->small;
		cmd->rec.len = (uint32_t)(2 + rl);
		return 0;
	}
	if (zmsg_frame_is(&f[0], "ACCEPT")) {
		if (n < 3) {
			*why = "malformed ACCEPT: want ACCEPT, id, protocol, headers...";
			return -EINVAL;
		}
		return decode_accept(f, n, cmd, why);
	}
	*why = "unknown verb";
	return -EINVAL;
}

int zmsg_decode_ack(zmq_msg_t *f, int n, uint64_t *count, const char **why)
{
	const uint8_t *d = n == 2 ? zmq_msg_data(&f[1]) : NULL;
	size_t len = n == 2 ? zmq_msg_size(&f[1]) : 0;
	uint64_t v = 0;
	/* By hand, not strtoull: no sign, no spaces, no locale, and the frame is not
	 * NUL-terminated. */
	int ok = len >= 1 && len <= 20;
	for (size_t i = 0; ok && i < len; i++) {
		unsigned digit = (unsigned)d[i] - '0';
		ok = digit <= 9 && v <= (UINT64_MAX - digit) / 10;
		v = v * 10 + digit;
	}
	if (!ok) {
		*why = "malformed ACK: want ACK, count (decimal)";
		return -EINVAL;
	}
	*count = v;
	return 0;
}

void zmsg_cmd_free(struct zmsg_cmd *cmd)
{
	free(cmd->fields);
	cmd->fields = NULL;
}
