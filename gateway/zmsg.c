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

/* TOPIC's body (u8 topic length, topic, u32 count, ids little-endian) as frames: topic,
 * count, ids (8-byte big-endian each, one frame). */
static uint64_t get_le(const uint8_t *p, int bytes)
{
	uint64_t v = 0;
	for (int i = bytes - 1; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

/* With WSGW_F_POSITION, two more frames: the offset and the epoch (decimal). */
static void put_topic(struct out *o, const uint8_t *p, size_t n, int pos)
{
	size_t tl = n ? p[0] : 0;
	if (n < 1 + tl + 4 + (pos ? 16u : 0u)) {
		o->err = EINVAL;
		return;
	}
	uint32_t count = (uint32_t)p[1 + tl] | (uint32_t)p[2 + tl] << 8 | (uint32_t)p[3 + tl] << 16 |
			 (uint32_t)p[4 + tl] << 24;
	size_t listed = (n - 1 - tl - 4 - (pos ? 16 : 0)) / 8;
	char num[24];
	snprintf(num, sizeof(num), "%u", count);
	put(o, p + 1, tl, 1);
	put(o, num, strlen(num), 1);
	zmq_msg_t m;
	if (o->err || zmq_msg_init_size(&m, listed * 8) < 0) {
		o->err = o->err ? o->err : ENOMEM;
		return;
	}
	uint8_t *ids = zmq_msg_data(&m);
	const uint8_t *le = p + 1 + tl + 4;
	for (size_t k = 0; k < listed; k++)
		for (int i = 0; i < 8; i++)
			ids[k * 8 + (size_t)i] = le[k * 8 + 7 - (size_t)i];
	if (zmq_msg_send(&m, o->sock, pos ? ZMQ_DONTWAIT | ZMQ_SNDMORE : ZMQ_DONTWAIT) < 0) {
		o->err = errno;
		zmq_msg_close(&m);
	}
	if (pos) {
		const uint8_t *q = p + n - 16;
		snprintf(num, sizeof(num), "%llu", (unsigned long long)get_le(q, 8));
		put(o, num, strlen(num), 1);
		snprintf(num, sizeof(num), "%llu", (unsigned long long)get_le(q + 8, 8));
		put(o, num, strlen(num), 0);
	}
}

/* RECOVERY's body (u8 status, u64 offset, u64 epoch, u32 replayed, u8 topic length,
 * topic) as frames: topic, status word, offset, epoch, replayed (decimal). */
static void put_recovery(struct out *o, const uint8_t *p, size_t n)
{
	static const char *const status[] = { "recovered", "epoch", "trimmed", "none", "unavailable" };
	if (n < 22 || n != 22u + p[21] || p[0] > 4) {
		o->err = EINVAL;
		return;
	}
	char num[24];
	put(o, p + 22, p[21], 1);
	put(o, status[p[0]], strlen(status[p[0]]), 1);
	snprintf(num, sizeof(num), "%llu", (unsigned long long)get_le(p + 1, 8));
	put(o, num, strlen(num), 1);
	snprintf(num, sizeof(num), "%llu", (unsigned long long)get_le(p + 9, 8));
	put(o, num, strlen(num), 1);
	snprintf(num, sizeof(num), "%llu", (unsigned long long)get_le(p + 17, 4));
	put(o, num, strlen(num), 0);
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
	case WSGW_TOPIC: verb = "TOPIC"; break;
	case WSGW_STAT: verb = "STAT"; break;
	case WSGW_RECOVERY: verb = "RECOVERY"; break;
	default:
		log_error(0, "control: no zmq form for record type %u", r->type);
		return -EIO;
	}
	/* TOPIC, STAT and RECOVERY are read in place: the gateway makes them in one part. */
	if ((r->type == WSGW_TOPIC || r->type == WSGW_STAT || r->type == WSGW_RECOVERY) && r->nb) {
		log_error(0, "control: a record of type %u in two parts", r->type);
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
	case WSGW_TOPIC:
		put(&o, &be, 8, 1);
		put_topic(&o, r->a, r->na, !!(r->flags & WSGW_F_POSITION));
		break;
	case WSGW_RECOVERY:
		put(&o, &be, 8, 1);
		put_recovery(&o, r->a, r->na);
		break;
	case WSGW_STAT: {
		const uint8_t *q = r->a;
		char bytes[24], age[12];
		uint64_t b = 0;
		uint32_t a = 0;
		for (int i = 0; r->na >= 12 && i < 8; i++)
			b |= (uint64_t)q[i] << (8 * i);
		for (int i = 0; r->na >= 12 && i < 4; i++)
			a |= (uint32_t)q[8 + i] << (8 * i);
		snprintf(bytes, sizeof(bytes), "%llu", (unsigned long long)b);
		snprintf(age, sizeof(age), "%u", a);
		put(&o, &be, 8, 1);
		put(&o, bytes, strlen(bytes), 1);
		put(&o, age, strlen(age), 0);
		break;
	}
	default: { /* WSGW_OPEN: flags, then name and value frames for each field */
		char fl[24] = "";
		if (r->flags & WSGW_F_RESUMED)
			strcat(fl, "resumed");
		if (r->flags & WSGW_F_AUTHORIZE)
			strcat(fl, fl[0] ? ",authorize" : "authorize");
		put(&o, &be, 8, 1);
		put(&o, fl, strlen(fl), len > 0);
		/* The fields in two parts (:peer, then the kept ones), each of whole fields. */
		const uint8_t *part[2] = { r->a, r->b };
		size_t plen[2] = { r->na, r->nb };
		int rc = 0;
		for (int k = 0; k < 2 && rc >= 0; k++) {
			if (!plen[k])
				continue;
			const uint8_t *q = part[k], *end = q + plen[k];
			struct wsgw_field f;
			while ((rc = wsgw_field_next(&q, end, &f)) == 1) {
				put(&o, f.name, f.name_len, 1);
				put(&o, f.value, f.value_len, q < end || (k == 0 && plen[1]));
			}
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
	/* Checked before the copy: a subprotocol is a header value's token, never long. */
	if (zmq_msg_size(&f[2]) > ZMSG_PROTOCOL_MAX) {
		*why = "ACCEPT subprotocol over 255 bytes";
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

static int is_type(zmq_msg_t *m)
{
	return zmsg_frame_is(m, "text") || zmsg_frame_is(m, "binary");
}

/* PUBLISH's type frame: text or binary, optionally followed by ",stamp". Returns the
 * record's flags, or -1. */
static int publish_type(zmq_msg_t *m)
{
	if (zmsg_frame_is(m, "text") || zmsg_frame_is(m, "text,stamp"))
		return zmsg_frame_is(m, "text") ? 0 : WSGW_F_STAMP;
	if (zmsg_frame_is(m, "binary") || zmsg_frame_is(m, "binary,stamp"))
		return WSGW_F_BINARY | (zmsg_frame_is(m, "binary") ? 0 : WSGW_F_STAMP);
	return -1;
}

/* "since=OFFSET,EPOCH", both decimal u64. */
static int frame_since(zmq_msg_t *m, uint64_t *offset, uint64_t *epoch)
{
	char buf[64], *end;
	if (zmsg_frame_str(m, buf, sizeof(buf)) || strncmp(buf, "since=", 6) != 0)
		return -1;
	const char *p = buf + 6;
	for (int i = 0; i < 2; i++) {
		if (*p < '0' || *p > '9')
			return -1;
		errno = 0;
		unsigned long long v = strtoull(p, &end, 10);
		if (errno || *end != (i ? 0 : ','))
			return -1;
		*(i ? epoch : offset) = v;
		p = end + 1;
	}
	return 0;
}

/* PUBLISH, topic, text|binary, payload[, id left out]: the body of the record is built,
 * u8 topic length, topic, payload (one copy of the payload, for every subscriber). */
static int decode_publish(zmq_msg_t *f, int n, uint64_t max_message, struct zmsg_cmd *cmd,
			  const char **why)
{
	size_t tl = n >= 4 ? zmq_msg_size(&f[1]) : 0, pl = n >= 4 ? zmq_msg_size(&f[3]) : 0;
	int flags = n >= 4 ? publish_type(&f[2]) : -1;
	if ((n != 4 && n != 5) || tl == 0 || tl > WSGW_TOPIC_MAX || flags < 0 ||
	    (n == 5 && frame_u64(&f[4], &cmd->rec.conn))) {
		*why = "malformed PUBLISH: want PUBLISH, topic (1-255 bytes), text|binary[,stamp], payload[, 8-byte id]";
		return -EINVAL;
	}
	if (pl > max_message) {
		*why = "PUBLISH payload over --max-message";
		return -EINVAL;
	}
	cmd->fields = malloc(1 + tl + pl);
	if (!cmd->fields)
		return -ENOMEM;
	cmd->fields[0] = (uint8_t)tl;
	memcpy(cmd->fields + 1, zmq_msg_data(&f[1]), tl);
	if (pl)
		memcpy(cmd->fields + 1 + tl, zmq_msg_data(&f[3]), pl);
	cmd->rec.type = WSGW_PUBLISH;
	cmd->rec.flags = (uint16_t)flags;
	cmd->rec.payload = cmd->fields;
	cmd->rec.len = (uint32_t)(1 + tl + pl);
	return 0;
}

/* SENDMANY, text|binary, payload, ids (8-byte big-endian each): body u32 count, ids
 * (little-endian), payload. */
static int decode_send_many(zmq_msg_t *f, int n, uint64_t max_message, struct zmsg_cmd *cmd,
			    const char **why)
{
	size_t pl = n == 4 ? zmq_msg_size(&f[2]) : 0, il = n == 4 ? zmq_msg_size(&f[3]) : 0;
	if (n != 4 || !is_type(&f[1]) || il == 0 || il % 8 || il / 8 > UINT32_MAX) {
		*why = "malformed SENDMANY: want SENDMANY, text|binary, payload, ids (8 bytes each, at least one)";
		return -EINVAL;
	}
	if (pl > max_message) {
		*why = "SENDMANY payload over --max-message";
		return -EINVAL;
	}
	size_t count = il / 8;
	cmd->fields = malloc(4 + il + pl);
	if (!cmd->fields)
		return -ENOMEM;
	uint8_t *q = cmd->fields;
	const uint8_t *ids = zmq_msg_data(&f[3]);
	for (int i = 0; i < 4; i++)
		q[i] = (uint8_t)(count >> (8 * i));
	for (size_t k = 0; k < count; k++)
		for (int i = 0; i < 8; i++)
			q[4 + k * 8 + (size_t)i] = ids[k * 8 + 7 - (size_t)i];
	if (pl)
		memcpy(q + 4 + il, zmq_msg_data(&f[2]), pl);
	cmd->rec.type = WSGW_SENDMANY;
	cmd->rec.flags = zmsg_frame_is(&f[1], "binary") ? WSGW_F_BINARY : 0;
	cmd->rec.payload = cmd->fields;
	cmd->rec.len = (uint32_t)(4 + il + pl);
	return 0;
}

int zmsg_decode(zmq_msg_t *f, int n, uint64_t max_message, struct zmsg_cmd *cmd, const char **why)
{
	memset(&cmd->rec, 0, sizeof(cmd->rec));
	cmd->fields = NULL;
	if (n >= 1 && zmsg_frame_is(&f[0], "PUBLISH"))
		return decode_publish(f, n, max_message, cmd, why);
	if (n >= 1 && zmsg_frame_is(&f[0], "SENDMANY"))
		return decode_send_many(f, n, max_message, cmd, why);
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
	int sub = zmsg_frame_is(&f[0], "SUBSCRIBE"), unsub = zmsg_frame_is(&f[0], "UNSUBSCRIBE");
	int query = zmsg_frame_is(&f[0], "QUERY");
	if (sub || unsub || query) {
		/* SUBSCRIBE may end with since=OFFSET,EPOCH, QUERY with position. */
		size_t tl = n == 3 || (n == 4 && !unsub) ? zmq_msg_size(&f[2]) : 0;
		uint64_t since = 0, epoch = 0;
		if (tl == 0 || tl > WSGW_TOPIC_MAX || (n == 4 && sub && frame_since(&f[3], &since, &epoch)) ||
		    (n == 4 && query && !zmsg_frame_is(&f[3], "position"))) {
			*why = "malformed SUBSCRIBE, UNSUBSCRIBE or QUERY: want VERB, id, topic (1-255 bytes)"
			       "[, since=OFFSET,EPOCH (SUBSCRIBE) | position (QUERY)]";
			return -EINVAL;
		}
		cmd->rec.type = sub ? WSGW_SUBSCRIBE : unsub ? WSGW_UNSUBSCRIBE : WSGW_QUERY;
		cmd->rec.payload = zmq_msg_data(&f[2]);
		cmd->rec.len = (uint32_t)tl;
		if (n == 4 && query)
			cmd->rec.flags = WSGW_F_POSITION;
		if (n == 4 && sub) {
			/* The record's form: u8 topic length, topic, u64 offset, u64 epoch. */
			cmd->fields = malloc(1 + tl + 16);
			if (!cmd->fields)
				return -ENOMEM;
			cmd->fields[0] = (uint8_t)tl;
			memcpy(cmd->fields + 1, zmq_msg_data(&f[2]), tl);
			for (int i = 0; i < 8; i++) {
				cmd->fields[1 + tl + (size_t)i] = (uint8_t)(since >> (8 * i));
				cmd->fields[9 + tl + (size_t)i] = (uint8_t)(epoch >> (8 * i));
			}
			cmd->rec.flags = WSGW_F_SINCE;
			cmd->rec.payload = cmd->fields;
			cmd->rec.len = (uint32_t)(1 + tl + 16);
		}
		return 0;
	}
	if (zmsg_frame_is(&f[0], "STAT")) {
		if (n != 2) {
			*why = "malformed STAT: want STAT, id";
			return -EINVAL;
		}
		cmd->rec.type = WSGW_STATQ;
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
