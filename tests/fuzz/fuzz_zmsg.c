/*
 * gateway/zmsg.c (zmsg_decode): a zmq worker's commands, as the control channel hands
 * them over (routing id removed, at most ZMSG_MAX_FRAMES - 1 frames).
 *
 * Input: [max_message byte] then frames, each [len][bytes] with len one byte, or 255
 * followed by a 16-bit little-endian length. Frames are real zmq_msg_t (zmq_msg_init_size),
 * so small ones live inside the zmq_msg_t as libzmq keeps them. A decoded record must
 * point into one frame, into cmd->small or into cmd->fields, say exactly what the frames
 * said, and an ACCEPT's fields must parse with wsgw_field_next to their end. A refused
 * command must leave nothing allocated (LeakSanitizer).
 */
#include "gateway/zmsg.h"
#include "tests/fuzz/fuzz.h"
#include "wsgw/protocol.h"

#include <endian.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#define MAX_FRAMES (ZMSG_MAX_FRAMES - 1)

static bool frame_is(zmq_msg_t *m, const char *s)
{
	return zmq_msg_size(m) == strlen(s) && !memcmp(zmq_msg_data(m), s, strlen(s));
}

static bool inside(const void *p, size_t n, const void *base, size_t size)
{
	const uint8_t *q = p, *b = base;

	return q >= b && q <= b + size && n <= (size_t)(b + size - q);
}

/* The frame's decimal number as control.c's peers write it, parsed independently. */
static bool frame_digits(zmq_msg_t *m, unsigned *out)
{
	const char *s = zmq_msg_data(m);
	size_t n = zmq_msg_size(m), i = 0;
	unsigned v = 0;

	while (i < n && (s[i] == ' ' || (s[i] >= '\t' && s[i] <= '\r')))
		i++; /* strtoul skips leading space */
	if (i < n && s[i] == '+')
		i++;
	if (i == n)
		return false;
	for (; i < n; i++) {
		if (s[i] < '0' || s[i] > '9' || v > 100000)
			return false;
		v = v * 10 + (unsigned)(s[i] - '0');
	}
	*out = v;
	return true;
}

static void check_accept(zmq_msg_t *f, int n, const struct zmsg_cmd *cmd)
{
	const uint8_t *p = cmd->rec.payload, *end = p + cmd->rec.len;
	struct wsgw_field fl;
	int i = 2, rc;

	FUZZ_CHECK(cmd->fields && cmd->rec.payload == cmd->fields);
	if (!zmq_msg_size(&f[2]))
		i = 3; /* no protocol field for an empty protocol */
	while ((rc = wsgw_field_next(&p, end, &fl)) == 1) {
		FUZZ_CHECK(i < n);
		const char *want = i == 2 ? "protocol" : "header";
		FUZZ_CHECK(fl.name_len == strlen(want) && !memcmp(fl.name, want, fl.name_len));
		FUZZ_CHECK(fl.value_len == zmq_msg_size(&f[i]));
		FUZZ_CHECK(!fl.value_len || !memcmp(fl.value, zmq_msg_data(&f[i]), fl.value_len));
		FUZZ_CHECK(inside(fl.value, fl.value_len, cmd->rec.payload, cmd->rec.len));
		i++;
	}
	FUZZ_CHECK(rc == 0 && p == end);
	FUZZ_CHECK(i == n);
	FUZZ_CHECK(n - 3 <= ZMSG_ACCEPT_HEADERS);
}

static bool frame_type(zmq_msg_t *m, uint16_t flags)
{
	return frame_is(m, "binary") ? flags == WSGW_F_BINARY : frame_is(m, "text") && flags == 0;
}

/* PUBLISH's type may carry ",stamp" (text,stamp, binary,stamp): the stamp flag besides. */
static bool publish_type(zmq_msg_t *m, uint16_t flags)
{
	size_t n = zmq_msg_size(m);
	const char *d = zmq_msg_data(m);
	if (!(flags & WSGW_F_STAMP))
		return frame_type(m, flags);
	flags &= (uint16_t)~WSGW_F_STAMP;
	return (flags == WSGW_F_BINARY ? n == 12 && !memcmp(d, "binary,stamp", 12)
				       : flags == 0 && n == 10 && !memcmp(d, "text,stamp", 10));
}

/* PUBLISH, topic, text|binary, payload[, id]: u8 topic length, topic, payload; the id left
 * out is the record's connection. */
static void check_publish(zmq_msg_t *f, int n, uint64_t max_message, const struct zmsg_cmd *cmd)
{
	const struct shm_rec *r = &cmd->rec;
	const uint8_t *b = r->payload;
	size_t tl = zmq_msg_size(&f[1]), pl = zmq_msg_size(&f[3]);
	uint64_t be = 0;

	FUZZ_CHECK((n == 4 || n == 5) && frame_is(&f[0], "PUBLISH") && publish_type(&f[2], r->flags));
	FUZZ_CHECK(tl >= 1 && tl <= WSGW_TOPIC_MAX && pl <= max_message);
	FUZZ_CHECK(b == cmd->fields && r->len == 1 + tl + pl && b[0] == tl);
	FUZZ_CHECK(!memcmp(b + 1, zmq_msg_data(&f[1]), tl));
	FUZZ_CHECK(!pl || !memcmp(b + 1 + tl, zmq_msg_data(&f[3]), pl));
	if (n == 5) {
		FUZZ_CHECK(zmq_msg_size(&f[4]) == 8);
		memcpy(&be, zmq_msg_data(&f[4]), 8);
	}
	FUZZ_CHECK(r->conn == be64toh(be));
}

/* SENDMANY, text|binary, payload, ids: u32 count, ids little-endian, payload. */
static void check_send_many(zmq_msg_t *f, int n, uint64_t max_message, const struct zmsg_cmd *cmd)
{
	const struct shm_rec *r = &cmd->rec;
	const uint8_t *b = r->payload, *ids = zmq_msg_data(&f[3]);
	size_t pl = zmq_msg_size(&f[2]), il = zmq_msg_size(&f[3]);

	FUZZ_CHECK(n == 4 && frame_is(&f[0], "SENDMANY") && frame_type(&f[1], r->flags));
	FUZZ_CHECK(il >= 8 && il % 8 == 0 && pl <= max_message && r->conn == 0);
	FUZZ_CHECK(b == cmd->fields && r->len == 4 + il + pl);
	FUZZ_CHECK((b[0] | b[1] << 8 | b[2] << 16 | (uint32_t)b[3] << 24) == il / 8);
	for (size_t k = 0; k < il / 8; k++)
		for (int i = 0; i < 8; i++)
			FUZZ_CHECK(b[4 + k * 8 + (size_t)i] == ids[k * 8 + 7 - (size_t)i]);
	FUZZ_CHECK(!pl || !memcmp(b + 4 + il, zmq_msg_data(&f[2]), pl));
}

/* SUBSCRIBE, UNSUBSCRIBE, QUERY: VERB, id, topic; SUBSCRIBE may add since=OFFSET,EPOCH
 * (the record then carries u8 topic length, topic, u64 offset, u64 epoch), QUERY may add
 * position (WSGW_F_POSITION). */
static void check_topic_verb(zmq_msg_t *f, int n, const struct zmsg_cmd *cmd)
{
	const struct shm_rec *r = &cmd->rec;
	size_t tl = zmq_msg_size(&f[2]);

	FUZZ_CHECK(tl >= 1 && tl <= WSGW_TOPIC_MAX);
	if (!(r->flags & WSGW_F_SINCE)) {
		FUZZ_CHECK(r->payload == zmq_msg_data(&f[2]) && r->len == tl);
		FUZZ_CHECK(r->flags & WSGW_F_POSITION
				   ? n == 4 && r->type == WSGW_QUERY && frame_is(&f[3], "position")
				   : n == 3 && r->flags == 0);
		return;
	}
	char since[64];
	size_t sl = zmq_msg_size(&f[3]);
	unsigned long long offset, epoch;
	FUZZ_CHECK(n == 4 && r->type == WSGW_SUBSCRIBE && r->flags == WSGW_F_SINCE && sl < sizeof(since));
	memcpy(since, zmq_msg_data(&f[3]), sl);
	since[sl] = 0;
	FUZZ_CHECK(sscanf(since, "since=%llu,%llu", &offset, &epoch) == 2);
	const uint8_t *b = r->payload;
	FUZZ_CHECK(b == cmd->fields && r->len == 1 + tl + 16 && b[0] == tl);
	FUZZ_CHECK(!memcmp(b + 1, zmq_msg_data(&f[2]), tl));
	for (int i = 0; i < 8; i++)
		FUZZ_CHECK(b[1 + tl + (size_t)i] == (uint8_t)(offset >> (8 * i)) &&
			   b[9 + tl + (size_t)i] == (uint8_t)(epoch >> (8 * i)));
}

static void check_decoded(zmq_msg_t *f, int n, uint64_t max_message, const struct zmsg_cmd *cmd)
{
	const struct shm_rec *r = &cmd->rec;
	uint64_t be;
	unsigned num;

	switch (r->type) {
	case WSGW_PUBLISH:
		check_publish(f, n, max_message, cmd);
		goto payload;
	case WSGW_SENDMANY:
		check_send_many(f, n, max_message, cmd);
		goto payload;
	}
	FUZZ_CHECK(n >= 2 && zmq_msg_size(&f[1]) == 8);
	memcpy(&be, zmq_msg_data(&f[1]), 8);
	FUZZ_CHECK(r->conn == be64toh(be));
	switch (r->type) {
	case WSGW_SUBSCRIBE:
	case WSGW_UNSUBSCRIBE:
	case WSGW_QUERY:
		FUZZ_CHECK(frame_is(&f[0], r->type == WSGW_SUBSCRIBE ? "SUBSCRIBE" :
					   r->type == WSGW_UNSUBSCRIBE ? "UNSUBSCRIBE" : "QUERY"));
		check_topic_verb(f, n, cmd);
		break;
	case WSGW_STATQ:
		FUZZ_CHECK(n == 2 && frame_is(&f[0], "STAT") && r->len == 0);
		break;
	case WSGW_SEND:
		FUZZ_CHECK(n == 4 && frame_is(&f[0], "SEND"));
		FUZZ_CHECK(frame_is(&f[2], "text") || frame_is(&f[2], "binary"));
		FUZZ_CHECK(r->flags == (frame_is(&f[2], "binary") ? WSGW_F_BINARY : 0));
		FUZZ_CHECK(r->payload == zmq_msg_data(&f[3]) && r->len == zmq_msg_size(&f[3]));
		FUZZ_CHECK(r->len <= max_message);
		break;
	case WSGW_CLOSE:
	case WSGW_REJECT:
		FUZZ_CHECK(n == 4);
		FUZZ_CHECK(frame_is(&f[0], r->type == WSGW_CLOSE ? "CLOSE" : "REJECT"));
		FUZZ_CHECK(r->payload == cmd->small);
		FUZZ_CHECK(r->len >= 2 && r->len <= 2 + WS_CONTROL_MAX - 2);
		FUZZ_CHECK(r->len == 2 + zmq_msg_size(&f[3]));
		FUZZ_CHECK(!memcmp(cmd->small + 2, zmq_msg_data(&f[3]), r->len - 2));
		FUZZ_CHECK(frame_digits(&f[2], &num));
		FUZZ_CHECK((unsigned)(cmd->small[0] << 8 | cmd->small[1]) == num);
		if (r->type == WSGW_CLOSE)
			FUZZ_CHECK(num >= 1000 && num <= 4999);
		else
			FUZZ_CHECK(num >= 400 && num <= 599);
		break;
	case WSGW_ACCEPT:
		FUZZ_CHECK(n >= 3 && frame_is(&f[0], "ACCEPT"));
		FUZZ_CHECK(zmq_msg_size(&f[2]) <= ZMSG_PROTOCOL_MAX);
		check_accept(f, n, cmd);
		break;
	default:
		FUZZ_CHECK(!"a record type the decoder may not produce");
	}
payload:;
	/* Every byte of the payload is readable (ASan knows each block's end). */
	volatile uint8_t sink = 0;
	for (uint32_t i = 0; i < r->len; i++)
		sink ^= ((const uint8_t *)r->payload)[i];
	(void)sink;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_in in = { data, size };
	zmq_msg_t f[MAX_FRAMES];
	uint8_t m = fuzz_u8(&in);
	/* Small limits make the size check reachable; 0x80 and up: the default 1 MiB. */
	uint64_t max_message = m & 0x80 ? 1 << 20 : m;
	int n = 0;

	while (in.n && n < MAX_FRAMES) {
		size_t len = fuzz_u8(&in);

		if (len == 255)
			len = fuzz_le(&in, 2);
		if (len > in.n)
			len = in.n;
		FUZZ_CHECK(zmq_msg_init_size(&f[n], len) == 0);
		if (len)
			memcpy(zmq_msg_data(&f[n]), in.p, len);
		in.p += len;
		in.n -= len;
		n++;
	}

	struct zmsg_cmd cmd;
	const char *why = NULL;
	int rc = zmsg_decode(f, n, max_message, &cmd, &why);
	if (rc == 0) {
		check_decoded(f, n, max_message, &cmd);
		zmsg_cmd_free(&cmd);
		FUZZ_CHECK(!cmd.fields);
	} else {
		FUZZ_CHECK(rc == -EINVAL && why && *why);
	}
	for (int i = 0; i < n; i++)
		zmq_msg_close(&f[i]);
	return 0;
}
