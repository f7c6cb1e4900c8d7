/* The chat worker's messages: what a client may send, parsed from untrusted JSON, and the
 * JSON the worker sends back. Pure code, no I/O: tests/workers/test_chatmsg.c.
 *
 * A client sends one flat JSON object per text message:
 *   {"type":"join","room":R,"name":N}   ("again":true: a rejoin after {"type":"resync"})
 *   {"type":"leave","room":R}
 *   {"type":"say","room":R,"text":T}
 *   {"type":"count","room":R}
 * Values are strings (and the boolean "again"); keys it does not know are skipped, a key
 * it knows given twice is an error. Nothing else is accepted: no nesting, no numbers. */
#ifndef WSGW_CHATMSG_H
#define WSGW_CHATMSG_H

#include <stddef.h>
#include <stdint.h>

#define CHAT_MSG_MAX 8192 /* bytes of one client message, as sent */
#define CHAT_ROOM_MAX 64  /* bytes of a room name, decoded */
#define CHAT_NAME_MAX 32  /* bytes of a name, decoded */
#define CHAT_TEXT_MAX 2000 /* bytes of a message's text, decoded */

enum chat_type { CHAT_JOIN = 1, CHAT_LEAVE, CHAT_SAY, CHAT_COUNT };

/* A parsed request. The strings are decoded UTF-8 without NUL bytes, NUL-terminated. */
struct chat_req {
	enum chat_type type;
	int again;
	char room[CHAT_ROOM_MAX + 1];
	size_t room_len;
	char name[CHAT_NAME_MAX + 1];
	size_t name_len;
	char text[CHAT_TEXT_MAX + 1];
	size_t text_len;
};

/* Parses the n bytes at p (need not be NUL-terminated; never read past p + n). Returns 0
 * and *r, or -1 with *why set to a short static reason for the client ("bad JSON",
 * "room too long", ...). Requires: type; room for every type; name for join; text for
 * say; each within its limit, without control characters, and not empty. */
int chat_parse(const char *p, size_t n, struct chat_req *r, const char **why);

/* Appends to a bounded buffer; once something did not fit, ok is 0 and stays 0. */
struct chat_out {
	char *p;
	size_t len, cap;
	int ok;
};

void chat_out_init(struct chat_out *o, char *buf, size_t cap);
/* Raw bytes. */
void chat_out_raw(struct chat_out *o, const char *s, size_t n);
/* A JSON string: quotes, and escapes for '"', '\\' and every byte below 0x20 (the
 * input is UTF-8 and is otherwise copied as it is). */
void chat_out_str(struct chat_out *o, const char *s, size_t n);
/* An unsigned decimal number. */
void chat_out_u64(struct chat_out *o, uint64_t v);

#endif
