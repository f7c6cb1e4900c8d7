/* Client JSON is hostile input: every read is bounded by end, every write by the field's
 * capacity, and a value that does not fit is an error rather than a truncation. */
#include "workers/chat/chatmsg.h"

#include <string.h>

struct rd {
	const unsigned char *p, *end;
};

static void skip_ws(struct rd *r)
{
	while (r->p < r->end && (*r->p == ' ' || *r->p == '\t' || *r->p == '\n' || *r->p == '\r'))
		r->p++;
}

static int hex4(struct rd *r, unsigned *v)
{
	if (r->end - r->p < 4)
		return -1;
	*v = 0;
	for (int i = 0; i < 4; i++) {
		unsigned c = r->p[i], d;
		if (c >= '0' && c <= '9')
			d = c - '0';
		else if ((c | 0x20) >= 'a' && (c | 0x20) <= 'f')
			d = (c | 0x20) - 'a' + 10;
		else
			return -1;
		*v = *v << 4 | d;
	}
	r->p += 4;
	return 0;
}

/* Length of the well-formed UTF-8 sequence at p (RFC 3629: no overlongs, no surrogates,
 * nothing above U+10FFFF), or 0. */
static size_t utf8_len(const unsigned char *p, const unsigned char *end)
{
	unsigned c = p[0];
	size_t n;
	unsigned lo = 0x80, hi = 0xbf;
	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf)
		n = 2;
	else if (c >= 0xe0 && c <= 0xef)
		n = 3, lo = c == 0xe0 ? 0xa0 : 0x80, hi = c == 0xed ? 0x9f : 0xbf;
	else if (c >= 0xf0 && c <= 0xf4)
		n = 4, lo = c == 0xf0 ? 0x90 : 0x80, hi = c == 0xf4 ? 0x8f : 0xbf;
	else
		return 0;
	if ((size_t)(end - p) < n || p[1] < lo || p[1] > hi)
		return 0;
	for (size_t i = 2; i < n; i++)
		if (p[i] < 0x80 || p[i] > 0xbf)
			return 0;
	return n;
}

/* Bytes to out (capacity cap, NUL kept after them); *over once they do not fit. */
static void put(char *out, size_t cap, size_t *len, int *over, const void *b, size_t n)
{
	if (*over || !out || n > cap - *len) {
		*over = 1;
		return;
	}
	memcpy(out + *len, b, n);
	*len += n;
	out[*len] = 0;
}

enum { STR_BAD = -1, STR_CTRL = -2 };

/* A JSON string at r->p (the opening quote). Decodes into out (NULL: only validates),
 * with ctrl_ok the control characters allowed in it. Returns 0, STR_BAD (not a valid
 * string), STR_CTRL (a control character or NUL), and sets *over when it did not fit. */
static int parse_str(struct rd *r, char *out, size_t cap, size_t *len, int *over,
		     const char *ctrl_ok)
{
	*len = 0;
	*over = 0;
	if (out)
		out[0] = 0;
	if (r->p >= r->end || *r->p != '"')
		return STR_BAD;
	r->p++;
	int ctrl = 0;
	while (r->p < r->end) {
		unsigned c = *r->p;
		if (c == '"') {
			r->p++;
			return ctrl ? STR_CTRL : 0;
		}
		if (c < 0x20)
			return STR_BAD; /* raw control characters are not JSON */
		if (c != '\\') {
			size_t n = utf8_len(r->p, r->end);
			if (!n)
				return STR_BAD;
			if (c == 0x7f)
				ctrl = 1;
			put(out, cap, len, over, r->p, n);
			r->p += n;
			continue;
		}
		if (r->end - r->p < 2)
			return STR_BAD;
		unsigned e = r->p[1];
		r->p += 2;
		unsigned cp;
		switch (e) {
		case '"': cp = '"'; break;
		case '\\': cp = '\\'; break;
		case '/': cp = '/'; break;
		case 'b': cp = '\b'; break;
		case 'f': cp = '\f'; break;
		case 'n': cp = '\n'; break;
		case 'r': cp = '\r'; break;
		case 't': cp = '\t'; break;
		case 'u':
			if (hex4(r, &cp))
				return STR_BAD;
			if (cp >= 0xdc00 && cp <= 0xdfff)
				return STR_BAD; /* a low surrogate alone */
			if (cp >= 0xd800 && cp <= 0xdbff) {
				unsigned lo;
				if (r->end - r->p < 6 || r->p[0] != '\\' || r->p[1] != 'u')
					return STR_BAD;
				r->p += 2;
				if (hex4(r, &lo) || lo < 0xdc00 || lo > 0xdfff)
					return STR_BAD;
				cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
			}
			break;
		default:
			return STR_BAD;
		}
		if (cp < 0x20 || cp == 0x7f) {
			if (!cp || !strchr(ctrl_ok, (int)cp))
				ctrl = 1;
		}
		unsigned char b[4];
		size_t n;
		if (cp < 0x80)
			b[0] = (unsigned char)cp, n = 1;
		else if (cp < 0x800)
			b[0] = (unsigned char)(0xc0 | cp >> 6), b[1] = (unsigned char)(0x80 | (cp & 0x3f)), n = 2;
		else if (cp < 0x10000)
			b[0] = (unsigned char)(0xe0 | cp >> 12), b[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3f)),
			b[2] = (unsigned char)(0x80 | (cp & 0x3f)), n = 3;
		else
			b[0] = (unsigned char)(0xf0 | cp >> 18), b[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3f)),
			b[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3f)), b[3] = (unsigned char)(0x80 | (cp & 0x3f)), n = 4;
		put(out, cap, len, over, b, n);
	}
	return STR_BAD;
}

static int literal(struct rd *r, const char *word)
{
	size_t n = strlen(word);
	if ((size_t)(r->end - r->p) < n || memcmp(r->p, word, n))
		return 0;
	r->p += n;
	return 1;
}

enum key { K_TYPE, K_ROOM, K_NAME, K_TEXT, K_AGAIN, K_OTHER };

static enum key key_of(const char *k, size_t n)
{
	static const char *const names[] = { "type", "room", "name", "text", "again" };
	for (int i = 0; i < K_OTHER; i++)
		if (strlen(names[i]) == n && !memcmp(k, names[i], n))
			return (enum key)i;
	return K_OTHER;
}

int chat_parse(const char *p, size_t n, struct chat_req *q, const char **why)
{
	struct rd r = { (const unsigned char *)p, (const unsigned char *)p + n };
	char type[8];
	size_t type_len = 0, len;
	int over, seen = 0, rc;
	memset(q, 0, sizeof(*q));
	*why = "bad JSON";
	if (n > CHAT_MSG_MAX) {
		*why = "message too long";
		return -1;
	}
	skip_ws(&r);
	if (r.p >= r.end || *r.p++ != '{')
		return -1;
	skip_ws(&r);
	if (r.p < r.end && *r.p == '}') {
		r.p++;
	} else {
		for (;;) {
			char k[8];
			size_t kl;
			skip_ws(&r);
			rc = parse_str(&r, k, sizeof(k) - 1, &kl, &over, "");
			if (rc == STR_BAD)
				return -1;
			enum key key = over || rc ? K_OTHER : key_of(k, kl);
			skip_ws(&r);
			if (r.p >= r.end || *r.p++ != ':')
				return -1;
			skip_ws(&r);
			if (key != K_OTHER) {
				if (seen & (1 << key)) {
					*why = "a key given twice";
					return -1;
				}
				seen |= 1 << key;
			}
			if (key == K_AGAIN) {
				if (literal(&r, "true"))
					q->again = 1;
				else if (!literal(&r, "false"))
					return -1;
			} else if (key == K_OTHER) {
				if (r.p < r.end && *r.p == '"') {
					if (parse_str(&r, NULL, 0, &len, &over, "") == STR_BAD)
						return -1;
				} else if (!literal(&r, "true") && !literal(&r, "false") &&
					   !literal(&r, "null")) {
					*why = "values are strings";
					return -1;
				}
			} else {
				static const size_t caps[] = { sizeof(type) - 1, CHAT_ROOM_MAX,
							       CHAT_NAME_MAX, CHAT_TEXT_MAX };
				static const char *const longer[] = { "unknown type", "room too long",
								      "name too long", "text too long" };
				char *dst = key == K_TYPE ? type : key == K_ROOM ? q->room
								   : key == K_NAME ? q->name : q->text;
				size_t *dl = key == K_TYPE ? &type_len : key == K_ROOM ? &q->room_len
								      : key == K_NAME ? &q->name_len : &q->text_len;
				if (r.p >= r.end || *r.p != '"') {
					*why = "values are strings";
					return -1;
				}
				rc = parse_str(&r, dst, caps[key], dl, &over, key == K_TEXT ? "\n\t" : "");
				if (rc == STR_BAD)
					return -1;
				if (over) {
					*why = longer[key];
					return -1;
				}
				if (rc == STR_CTRL) {
					*why = "control characters";
					return -1;
				}
			}
			skip_ws(&r);
			if (r.p >= r.end)
				return -1;
			if (*r.p == ',') {
				r.p++;
				continue;
			}
			if (*r.p++ != '}')
				return -1;
			break;
		}
	}
	skip_ws(&r);
	if (r.p != r.end)
		return -1;
	static const char *const types[] = { "join", "leave", "say", "count" };
	q->type = 0;
	for (int i = 0; i < 4; i++)
		if (type_len == strlen(types[i]) && !memcmp(type, types[i], type_len))
			q->type = (enum chat_type)(i + 1);
	if (!q->type) {
		*why = "unknown type";
		return -1;
	}
	if (!q->room_len) {
		*why = "no room";
		return -1;
	}
	if (q->type == CHAT_JOIN && !q->name_len) {
		*why = "no name";
		return -1;
	}
	if (q->type == CHAT_SAY && !q->text_len) {
		*why = "no text";
		return -1;
	}
	return 0;
}

void chat_out_init(struct chat_out *o, char *buf, size_t cap)
{
	o->p = buf;
	o->len = 0;
	o->cap = cap;
	o->ok = 1;
}

void chat_out_raw(struct chat_out *o, const char *s, size_t n)
{
	if (!o->ok || n > o->cap - o->len) {
		o->ok = 0;
		return;
	}
	memcpy(o->p + o->len, s, n);
	o->len += n;
}

void chat_out_str(struct chat_out *o, const char *s, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	chat_out_raw(o, "\"", 1);
	size_t run = 0; /* bytes copied as they are, in one go */
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c >= 0x20 && c != '"' && c != '\\')
			continue;
		chat_out_raw(o, s + run, i - run);
		run = i + 1;
		if (c == '"' || c == '\\') {
			char e[2] = { '\\', (char)c };
			chat_out_raw(o, e, 2);
		} else {
			char e[6] = { '\\', 'u', '0', '0', hex[c >> 4], hex[c & 15] };
			chat_out_raw(o, e, 6);
		}
	}
	chat_out_raw(o, s + run, n - run);
	chat_out_raw(o, "\"", 1);
}

void chat_out_u64(struct chat_out *o, uint64_t v)
{
	char b[20];
	size_t n = 0;
	do
		b[sizeof(b) - 1 - n++] = (char)('0' + v % 10);
	while ((v /= 10) && n < sizeof(b));
	chat_out_raw(o, b + sizeof(b) - n, n);
}
