/* wsgw worker protocol: the vocabulary shared by the gateway and every worker, whatever
 * the transport (shared-memory records or ZeroMQ multipart messages). docs/PROTOCOL.md is
 * the normative description; this header gives its numbers. */
#ifndef WSGW_PROTOCOL_H
#define WSGW_PROTOCOL_H

#include <stdint.h>

/* HELLO carries it; the gateway refuses any other (ERROR "version mismatch"). */
#define WSGW_PROTOCOL_VERSION 1

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
	/* worker → gateway */
	WSGW_SEND = 16,   /* body: payload; flags: WSGW_F_BINARY */
	WSGW_ACCEPT = 17, /* authorize: body: fields ("protocol", "header") */
	WSGW_REJECT = 18, /* authorize: body: u16 HTTP status (big-endian) + reason */
};

enum wsgw_flag {
	WSGW_F_BINARY = 1 << 0,    /* MESSAGE, SEND: binary frame (else text) */
	WSGW_F_RESUMED = 1 << 1,   /* OPEN: an existing connection moved from a dead worker */
	WSGW_F_AUTHORIZE = 1 << 2, /* OPEN: answer ACCEPT or REJECT before the client is in */
};

/* Fields of an OPEN or ACCEPT body, one after another until the body ends:
 *   u8 name_len, name bytes, u32 value_len (little-endian), value bytes.
 * OPEN names: ":path", ":query", ":peer" ("1.2.3.4:5678", "[::1]:5678"), ":protocols"
 * (offered Sec-WebSocket-Protocol), ":protocol" (the one agreed, if any), then forwarded
 * request headers by lowercase name ("origin", "cookie", ...).
 * ACCEPT names: "protocol" (the subprotocol to answer with), "header" ("Name: value",
 * repeatable). */
#define WSGW_FIELD_NAME_MAX 255

#endif
