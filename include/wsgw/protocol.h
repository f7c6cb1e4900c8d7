/* wsgw worker protocol: the vocabulary shared by the gateway and every worker, whatever
 * the transport (shared-memory records or ZeroMQ multipart messages). docs/PROTOCOL.md is
 * the normative description; this header gives its numbers. */
#ifndef WSGW_PROTOCOL_H
#define WSGW_PROTOCOL_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* HELLO carries it; the gateway refuses any other (ERROR "version mismatch"). */
#define WSGW_PROTOCOL_VERSION 2

/* Record types (shm) — the ZeroMQ transport spells the same verbs as ASCII names. */
enum wsgw_verb {
	/* gateway → worker */
	WSGW_OPEN = 1,    /* body: fields (below) */
	WSGW_MESSAGE = 2, /* body: payload; flags: WSGW_F_BINARY */
	WSGW_CLOSE = 3,   /* both ways. body: u16 code (big-endian) + UTF-8 reason.
	                   * To a worker: the client is gone, exactly once per connection.
	                   * From a worker: close that client with this code. */
	WSGW_GONE = 4,    /* no body: a command named a connection that does not exist */
	WSGW_ERROR = 5,   /* body: text; a malformed command was refused */
	WSGW_TOPIC = 6,   /* answer to QUERY: conn = the query's id; body: u8 topic length,
	                   * topic, u32 subscribers (LE), then their ids (u64 LE each) when
	                   * there are at most WSGW_TOPIC_LIST_MAX */
	WSGW_STAT = 7,    /* answer to STAT: conn; body: u64 bytes queued for the client, u32 ms
	                   * the oldest of them has waited (LE) */
	WSGW_RECOVERY = 8, /* answer to SUBSCRIBE with WSGW_F_SINCE: conn; body: u8 status
	                    * (enum wsgw_recovery), u64 offset, u64 epoch (the topic's position
	                    * now), u32 messages replayed (LE), u8 topic length, topic */
	/* worker → gateway */
	WSGW_SEND = 16,   /* body: payload; flags: WSGW_F_BINARY */
	WSGW_ACCEPT = 17, /* authorize: body: fields ("protocol", "header") */
	WSGW_REJECT = 18, /* authorize: body: u16 HTTP status (big-endian) + reason */
	WSGW_SUBSCRIBE = 19,   /* conn; body: the topic (1-255 bytes); with WSGW_F_SINCE: u8
	                        * topic length, topic, u64 offset, u64 epoch (LE) */
	WSGW_UNSUBSCRIBE = 20, /* conn; body: the topic */
	WSGW_PUBLISH = 21,     /* conn = a connection to leave out (0: none); flags: binary,
	                        * stamp; body: u8 topic length, topic, payload */
	WSGW_SENDMANY = 22,    /* flags: binary; body: u32 count (LE), count ids (u64 LE),
	                        * payload: one message to every connection listed */
	WSGW_QUERY = 23,       /* conn = an id of the worker's choosing, echoed in TOPIC;
	                        * body: the topic; flags: WSGW_F_POSITION */
	WSGW_STATQ = 24,       /* conn: the connection asked about; answered with STAT */
};

/* Topics are byte strings of 1 to this many bytes. */
#define WSGW_TOPIC_MAX 255
/* TOPIC lists the subscribers' ids when there are at most this many. */
#define WSGW_TOPIC_LIST_MAX 1024

enum wsgw_flag {
	WSGW_F_BINARY = 1 << 0,    /* MESSAGE, SEND: binary frame (else text) */
	WSGW_F_RESUMED = 1 << 1,   /* OPEN: an existing connection moved from a dead worker */
	WSGW_F_AUTHORIZE = 1 << 2, /* OPEN: answer ACCEPT or REJECT before the client is in */
	WSGW_F_STAMP = 1 << 3,     /* PUBLISH: each subscriber's copy starts with the message's
	                            * place, "OFFSET,EPOCH " in decimal (WSGW_STAMP_MAX bytes at
	                            * most; "0,0 " for a topic without history) */
	WSGW_F_SINCE = 1 << 4,     /* SUBSCRIBE: replay what the connection missed after OFFSET
	                            * of EPOCH first; answered with RECOVERY */
	WSGW_F_POSITION = 1 << 5,  /* QUERY: and the topic's position; TOPIC: its body ends with
	                            * u64 offset, u64 epoch (LE) */
};

/* The longest stamp: two u64 in decimal, a comma and a space. */
#define WSGW_STAMP_MAX 42

/* RECOVERY's status: whether the connection got every message it missed. */
enum wsgw_recovery {
	WSGW_RECOVERED = 0,            /* every message after OFFSET was replayed, in order */
	WSGW_RECOVERY_EPOCH = 1,       /* another epoch: the history was lost or started anew */
	WSGW_RECOVERY_TRIMMED = 2,     /* messages after OFFSET are no longer kept */
	WSGW_RECOVERY_NONE = 3,        /* the topic keeps no history (no --history for it) */
	WSGW_RECOVERY_UNAVAILABLE = 4, /* the cluster's store (Redis) cannot be reached now */
};
/* In every case but WSGW_RECOVERED the application must resynchronise its client; the
 * subscription is live either way. */

/* Fields of an OPEN or ACCEPT body, one after another until the body ends:
 *   u8 name_len, name bytes, u32 value_len (little-endian), value bytes.
 * OPEN names: ":path", ":query", ":peer" ("1.2.3.4:5678", "[::1]:5678"), ":protocols"
 * (offered Sec-WebSocket-Protocol), ":protocol" (the one agreed, if any), then forwarded
 * request headers by lowercase name ("origin", "cookie", ...).
 * ACCEPT names: "protocol" (the subprotocol to answer with), "header" ("Name: value",
 * repeatable). */
#define WSGW_FIELD_NAME_MAX 255

/* Bytes one field takes. */
static inline size_t wsgw_field_size(size_t name_len, size_t value_len)
{
	return 1 + name_len + 4 + value_len;
}

/* Writes one field at p (wsgw_field_size() bytes of room; name_len <= 255) and returns the
 * byte after it. */
static inline uint8_t *wsgw_field_put(uint8_t *p, const char *name, size_t name_len,
				      const void *value, size_t value_len)
{
	*p++ = (uint8_t)name_len;
	memcpy(p, name, name_len);
	p += name_len;
	for (int i = 0; i < 4; i++)
		*p++ = (uint8_t)(value_len >> (8 * i));
	if (value_len)
		memcpy(p, value, value_len);
	return p + value_len;
}

struct wsgw_field {
	const char *name;
	size_t name_len;
	const uint8_t *value;
	size_t value_len;
};

/* Reads the field at *p (before end) and advances *p past it. Returns 1, 0 at the end,
 * or -1 when the field runs past end (a malformed body: stop there). */
static inline int wsgw_field_next(const uint8_t **p, const uint8_t *end, struct wsgw_field *f)
{
	const uint8_t *q = *p;
	if (q >= end)
		return 0;
	f->name_len = *q++;
	if ((size_t)(end - q) < f->name_len + 4)
		return -1;
	f->name = (const char *)q;
	q += f->name_len;
	f->value_len = (size_t)q[0] | (size_t)q[1] << 8 | (size_t)q[2] << 16 | (size_t)q[3] << 24;
	q += 4;
	if ((size_t)(end - q) < f->value_len)
		return -1;
	f->value = q;
	*p = q + f->value_len;
	return 1;
}

#endif
