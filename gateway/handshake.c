/*
 * WebSocket upgrade handshake: llhttp does the HTTP/1.1 grammar, this file the storage,
 * the limits and RFC 6455 4.2.1.
 *
 * Storage is one growing buffer: the request-target, then one record per distinct header
 * name, "name\0value\0". A repeated header is merged into the first record of its name as
 * soon as its value completes, so lookups never join and a record never costs more bytes
 * than the header line it came from (name ':' value CRLF). Hence the buffer never needs
 * more than the request bytes parsed so far, which ws_hs_feed caps at max_header_bytes
 * before llhttp sees them.
 */
#include "gateway/handshake.h"

#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <llhttp.h>

#include "gateway/log.h"

/* A browser's handshake is 400-700 bytes: two doublings from here, and an idle client that
   sends nothing costs no storage at all. */
#define HS_MIN_CAP 256


enum hs_state { HS_READING, HS_DONE, HS_FAILED };
enum hs_span { SPAN_NONE, SPAN_URL, SPAN_FIELD, SPAN_VALUE };

struct ws_hs {
	llhttp_t parser;
	char *buf;
	uint32_t len, cap, max;
	uint32_t nheaders, max_headers;
	uint64_t names[4];	/* 256-bit Bloom filter of the record names */
	uint32_t seen;		/* bytes handed to llhttp */
	uint32_t url_len;	/* records start here */
	uint32_t rec;		/* offset of the record being parsed */
	uint32_t name_len;	/* of that record, once its name is complete */
	uint32_t path_off, path_len, query_off, query_len;
	uint8_t state, span;
	bool started, line_empty, scan_done; /* scan_obs_fold's state */
	bool has_query, path_static;
	bool head;		/* a HEAD request: a plain one is answered from --static */
	bool plain;		/* complete and valid but for the upgrade: see ws_hs_plain */
	int status;
	const char *reason;
};

static int hs_fail(struct ws_hs *hs, int status, const char *reason)
{
	/* The first failure wins: it is the one the client caused. */
	if (!hs->status) {
		hs->status = status;
		hs->reason = reason;
	}
	return -1;
}

static struct ws_hs *hs_of(llhttp_t *p)
{
	return (struct ws_hs *)((char *)p - offsetof(struct ws_hs, parser));
}

static int hs_append(struct ws_hs *hs, const char *p, size_t n)
{
	size_t need, cap;
	char *nb;

	if (!n)
		return 0; /* llhttp flushes empty spans; buf may still be NULL */
	/* Unreachable while records stay smaller than their header lines; kept so that a
	   broken invariant is a 431, never an overflow. */
	if (n > hs->max - hs->len)
		return hs_fail(hs, 431, "request headers too large");
	need = hs->len + n;
	if (need > hs->cap) {
		cap = hs->cap ? hs->cap : HS_MIN_CAP;
		while (cap < need)
			cap *= 2;
		if (cap > hs->max)
			cap = hs->max;
		nb = realloc(hs->buf, cap);
		if (!nb)
			return hs_fail(hs, 500, "out of memory for request headers");
		hs->buf = nb;
		hs->cap = cap;
	}
	memcpy(hs->buf + hs->len, p, n);
	hs->len += n;
	return 0;
}

static bool is_tchar(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       (c && strchr("!#$%&'*+-.^_`|~", c));
}

static bool is_ows(char c)
{
	return c == ' ' || c == '\t';
}

/* ---- llhttp callbacks ---------------------------------------------------------------- */

static int on_method_complete(llhttp_t *p)
{
	/* Answer 405 without reading the rest: nothing after it can change the answer. HEAD
	   alone is read to the end, since a plain one may be a static file's (ws_hs_plain). */
	if (llhttp_get_method(p) == HTTP_HEAD)
		hs_of(p)->head = true;
	else if (llhttp_get_method(p) != HTTP_GET)
		return hs_fail(hs_of(p), 405, "method is not GET");
	return 0;
}

static int on_version_complete(llhttp_t *p)
{
	if (p->http_major < 1 || (p->http_major == 1 && p->http_minor < 1))
		return hs_fail(hs_of(p), 400, "HTTP version before 1.1");
	return 0;
}

static int on_url(llhttp_t *p, const char *at, size_t n)
{
	struct ws_hs *hs = hs_of(p);

	hs->span = SPAN_URL;
	return hs_append(hs, at, n);
}

static int on_url_complete(llhttp_t *p)
{
	struct ws_hs *hs = hs_of(p);

	hs->url_len = hs->len;
	hs->span = SPAN_NONE;
	return 0;
}

static int field_begin(struct ws_hs *hs)
{
	if (hs->span != SPAN_FIELD) {
		hs->span = SPAN_FIELD;
		hs->rec = hs->len;
	}
	return 0;
}

static int on_header_field(llhttp_t *p, const char *at, size_t n)
{
	struct ws_hs *hs = hs_of(p);

	field_begin(hs);
	return hs_append(hs, at, n);
}

static int on_header_field_complete(llhttp_t *p)
{
	struct ws_hs *hs = hs_of(p);
	uint32_t i;

	field_begin(hs);
	/* Merging repeats scans the earlier records: quadratic in the count, so 8 KiB of
	   "a:\r\n" lines would cost ~13 ms of CPU without this cap (~2 us with it). */
	if (++hs->nheaders > hs->max_headers)
		return hs_fail(hs, 431, "too many header fields");
	hs->name_len = hs->len - hs->rec;
	/* llhttp's default (non-strict) build lets "Host : x" and ": x" through; RFC 7230
	   3.2.4 says a server MUST answer 400 to whitespace before the colon. */
	if (!hs->name_len)
		return hs_fail(hs, 400, "empty header name");
	for (i = hs->rec; i < hs->len; i++)
		if (!is_tchar((unsigned char)hs->buf[i]))
			return hs_fail(hs, 400, "invalid character in header name");
	hs->span = SPAN_VALUE;
	return hs_append(hs, "", 1);
}

static int on_header_value(llhttp_t *p, const char *at, size_t n)
{
	struct ws_hs *hs = hs_of(p);

	/* llhttp itself rejects NUL, bare CR and LF in values; obs-fold is caught in
	   ws_hs_feed on the raw bytes, because llhttp reports a folded line as just another
	   piece of the value. */
	return hs_append(hs, at, n);
}

static void reverse(char *a, size_t n)
{
	size_t i;
	char t;

	for (i = 0; i < n / 2; i++) {
		t = a[i];
		a[i] = a[n - 1 - i];
		a[n - 1 - i] = t;
	}
}

/* One bit per name, case-insensitive: a name whose bit is clear has no record, so the
   common case (a new name) skips the scan. */
static unsigned name_bit(const char *name, size_t n)
{
	uint32_t h = 2166136261u;
	size_t i;

	for (i = 0; i < n; i++)
		h = (h ^ (unsigned char)(name[i] | 0x20)) * 16777619u;
	return (h ^ (h >> 16)) & 255;
}

static bool name_maybe_seen(const struct ws_hs *hs, unsigned bit)
{
	return hs->names[bit / 64] >> (bit % 64) & 1;
}

/* Finds the record named like the n bytes at name, among the records before end. Returns
   the offset of its value's terminating NUL, or 0 when there is none. */
static uint32_t find_record(const struct ws_hs *hs, const char *name, size_t n, uint32_t end,
			    uint32_t *val_off)
{
	uint32_t off = hs->url_len, nl, vl;
	const char *b = hs->buf;

	if (!name_maybe_seen(hs, name_bit(name, n)))
		return 0;
	while (off < end) {
		nl = strlen(b + off);
		vl = strlen(b + off + nl + 1);
		if (nl == n && !strncasecmp(b + off, name, n)) {
			if (val_off)
				*val_off = off + nl + 1;
			return off + nl + 1 + vl;
		}
		off += nl + 1 + vl + 1;
	}
	return 0;
}

/*
 * Merges the record being completed, at hs->rec, into the earlier record whose value ends
 * (NUL) at e. In place, without a second buffer:
 *   [e: A = NUL + later records][rec: name NUL][B = value]
 *   -> [e: ", " or "; "][B][A]
 * The result is name_len - 1 bytes shorter, so the 2 separator bytes always fit.
 */
static void merge_into(struct ws_hs *hs, uint32_t e, const char *sep)
{
	char *b = hs->buf;
	uint32_t t = hs->rec, vlen = hs->len - (t + hs->name_len + 1);
	uint32_t alen = t - e;

	memmove(b + t, b + t + hs->name_len + 1, vlen);
	memmove(b + e + 2, b + e, alen + vlen);
	b[e] = sep[0];
	b[e + 1] = sep[1];
	reverse(b + e + 2, alen);
	reverse(b + e + 2 + alen, vlen);
	reverse(b + e + 2, alen + vlen);
	hs->len = t + vlen + 2;
}

static int on_header_value_complete(llhttp_t *p)
{
	struct ws_hs *hs = hs_of(p);
	uint32_t vstart = hs->rec + hs->name_len + 1, e;
	const char *name = hs->buf + hs->rec;
	unsigned bit;

	/* llhttp strips leading whitespace only. */
	while (hs->len > vstart && is_ows(hs->buf[hs->len - 1]))
		hs->len--;
	hs->span = SPAN_NONE;
	e = find_record(hs, name, hs->name_len, hs->rec, NULL);
	if (!e) {
		bit = name_bit(name, hs->name_len);
		hs->names[bit / 64] |= 1ull << (bit % 64);
		return hs_append(hs, "", 1);
	}
	/* RFC 7230 5.4: more than one Host MUST be a 400, joining would hide it. */
	if (hs->name_len == 4 && !strncasecmp(name, "host", 4))
		return hs_fail(hs, 400, "repeated Host header");
	merge_into(hs, e, hs->name_len == 6 && !strncasecmp(name, "cookie", 6) ? "; " : ", ");
	return 0;
}

/* ---- validation at the end of the headers --------------------------------------------- */

static struct ws_slice hs_lookup(const struct ws_hs *hs, const char *name)
{
	struct ws_slice s = { NULL, 0 };
	uint32_t voff, e;

	e = find_record(hs, name, strlen(name), hs->len, &voff);
	if (e) {
		s.p = hs->buf + voff;
		s.n = e - voff;
	}
	return s;
}

/* True when the comma-separated list s holds token (case-insensitive), RFC 7230 7. */
static bool list_has_token(struct ws_slice s, const char *token)
{
	size_t tl = strlen(token), i = 0, start, end;

	while (i < s.n) {
		while (i < s.n && (is_ows(s.p[i]) || s.p[i] == ','))
			i++;
		start = i;
		while (i < s.n && s.p[i] != ',')
			i++;
		end = i;
		while (end > start && is_ows(s.p[end - 1]))
			end--;
		if (end - start == tl && !strncasecmp(s.p + start, token, tl))
			return true;
	}
	return false;
}

static bool is_b64(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	       c == '+' || c == '/';
}

/* 16 bytes are 22 base64 characters and "==". Non-canonical last characters (low bits
   set) still decode to 16 bytes, so they pass, as in every decoder. */
static bool key_valid(struct ws_slice k)
{
	size_t i;

	if (k.n != 24 || k.p[22] != '=' || k.p[23] != '=')
		return false;
	for (i = 0; i < 22; i++)
		if (!is_b64(k.p[i]))
			return false;
	return true;
}

/* uri-host [":" port]: unreserved, pct-encoded, sub-delims, ':' and IP-literal brackets. */
static bool host_valid(struct ws_slice h)
{
	size_t i;
	unsigned char c;

	if (!h.n)
		return false;
	for (i = 0; i < h.n; i++) {
		c = (unsigned char)h.p[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      strchr("-._~%!$&'()*+,;=:[]", c)))
			return false;
	}
	return true;
}

static int parse_target(struct ws_hs *hs)
{
	const char *u = hs->buf, *end = hs->buf + hs->url_len, *path, *q;
	static const char *const schemes[] = { "http://", "https://", "ws://", "wss://" };
	size_t i, sl;

	if (!hs->url_len)
		return hs_fail(hs, 400, "empty request-target");
	if (memchr(u, '#', hs->url_len))
		return hs_fail(hs, 400, "fragment in request-target");
	path = u;
	if (*u != '/') {
		/* absolute-form, which RFC 7230 5.3.2 says servers MUST accept */
		for (i = 0; i < sizeof(schemes) / sizeof(schemes[0]); i++) {
			sl = strlen(schemes[i]);
			if (hs->url_len > sl && !strncasecmp(u, schemes[i], sl))
				break;
		}
		if (i == sizeof(schemes) / sizeof(schemes[0]))
			return hs_fail(hs, 400, "request-target is not a path or absolute URI");
		path = u + sl;
		while (path < end && *path != '/' && *path != '?')
			path++;
	}
	q = memchr(path, '?', end - path);
	hs->path_off = path - u;
	hs->path_len = (q ? q : end) - path;
	hs->path_static = hs->path_len == 0;
	hs->has_query = q != NULL;
	if (q) {
		hs->query_off = q + 1 - u;
		hs->query_len = end - (q + 1);
	}
	return 0;
}

static int on_headers_complete(llhttp_t *p)
{
	struct ws_hs *hs = hs_of(p);
	struct ws_slice v;

	/* "GET /chat\r\n" is HTTP/0.9 to llhttp, which then never reports a version. */
	if (p->http_major < 1 || (p->http_major == 1 && p->http_minor < 1))
		return hs_fail(hs, 400, "HTTP version before 1.1");
	if (p->flags & (F_CHUNKED | F_TRANSFER_ENCODING) ||
	    ((p->flags & F_CONTENT_LENGTH) && p->content_length > 0))
		return hs_fail(hs, 400, "request has a body");
	if (parse_target(hs))
		return -1;
	if (!host_valid(hs_lookup(hs, "host")))
		return hs_fail(hs, 400, "missing or invalid Host");
	if (!list_has_token(hs_lookup(hs, "upgrade"), "websocket")) {
		hs->plain = true;
		return hs->head ? hs_fail(hs, 405, "method is not GET")
				: hs_fail(hs, 400, "missing Upgrade: websocket");
	}
	if (hs->head)
		return hs_fail(hs, 405, "method is not GET");
	if (!list_has_token(hs_lookup(hs, "connection"), "upgrade"))
		return hs_fail(hs, 400, "missing Connection: upgrade");
	if (!key_valid(hs_lookup(hs, "sec-websocket-key")))
		return hs_fail(hs, 400, "missing or invalid Sec-WebSocket-Key");
	v = hs_lookup(hs, "sec-websocket-version");
	if (!v.p)
		return hs_fail(hs, 400, "missing Sec-WebSocket-Version");
	if (v.n != 2 || memcmp(v.p, "13", 2))
		return hs_fail(hs, 426, "Sec-WebSocket-Version is not 13");
	/* 2: no body, and llhttp_execute returns HPE_PAUSED_UPGRADE with the error position
	   on the first frame byte, whatever llhttp thought of Connection/Upgrade itself. */
	return 2;
}

static const llhttp_settings_t hs_settings = {
	.on_method_complete = on_method_complete,
	.on_version_complete = on_version_complete,
	.on_url = on_url,
	.on_url_complete = on_url_complete,
	.on_header_field = on_header_field,
	.on_header_field_complete = on_header_field_complete,
	.on_header_value = on_header_value,
	.on_header_value_complete = on_header_value_complete,
	.on_headers_complete = on_headers_complete,
};

/* ---- public ---------------------------------------------------------------------------- */

struct ws_hs *ws_hs_new(const struct ws_hs_limits *lim)
{
	struct ws_hs *hs;
	size_t max = lim && lim->max_header_bytes ? lim->max_header_bytes
						  : WS_HS_DEFAULT_MAX_HEADER_BYTES;
	size_t max_headers = lim && lim->max_headers ? lim->max_headers
						     : WS_HS_DEFAULT_MAX_HEADERS;

	if (max > UINT32_MAX || max_headers >= UINT32_MAX) {
		errno = EINVAL;
		return NULL;
	}
	hs = calloc(1, sizeof(*hs));
	if (!hs)
		return NULL;
	hs->max = max;
	hs->max_headers = max_headers;
	llhttp_init(&hs->parser, HTTP_REQUEST, &hs_settings);
	return hs;
}

void ws_hs_free(struct ws_hs *hs)
{
	if (!hs)
		return;
	free(hs->buf);
	free(hs);
}

size_t ws_hs_mem(const struct ws_hs *hs)
{
	return sizeof(*hs) + hs->cap;
}

/*
 * RFC 7230 3.2.4: obs-fold MUST be rejected (or rewritten). It is a header line that starts
 * with SP or HT, and llhttp hands its text over as more value. Scanning the raw bytes
 * before llhttp sees them, up to the empty line ending the headers (later bytes are
 * frames), lets llhttp parse exactly the bytes before the fold however the input is split,
 * so the answer and its reason never depend on the reads.
 * Returns the offset of the folding SP/HT, or n when there is none.
 */
static size_t scan_obs_fold(struct ws_hs *hs, const char *p, size_t n)
{
	size_t i;

	for (i = 0; i < n && !hs->scan_done; i++) {
		switch (p[i]) {
		case '\n':
			/* An empty line ends the headers, except the ones llhttp skips before
			   the request line. */
			if (hs->line_empty && hs->started)
				hs->scan_done = true;
			hs->line_empty = true;
			break;
		case '\r':
			break;
		case ' ':
		case '\t':
			if (hs->line_empty && hs->started)
				return i;
			/* fall through */
		default:
			hs->started = true;
			hs->line_empty = false;
		}
	}
	return n;
}

int ws_hs_feed(struct ws_hs *hs, const char *buf, size_t n, size_t *consumed)
{
	size_t take, used, fold;
	llhttp_errno_t e;

	if (consumed)
		*consumed = 0;
	if (hs->state == HS_DONE)
		return 1;
	if (hs->state == HS_FAILED)
		return -hs->status;
	if (!n)
		return 0;

	take = hs->max - hs->seen;
	if (take > n)
		take = n;
	if (!take) {
		hs_fail(hs, 431, "request headers too large");
		goto failed;
	}
	fold = scan_obs_fold(hs, buf, take);
	e = fold ? llhttp_execute(&hs->parser, buf, fold) : HPE_OK;
	if (e != HPE_OK && e != HPE_PAUSED_UPGRADE) {
		if (!hs->status)
			hs_fail(hs, 400, llhttp_get_error_reason(&hs->parser));
		goto failed;
	}
	if (e == HPE_PAUSED_UPGRADE) {
		used = llhttp_get_error_pos(&hs->parser) - buf;
		hs->seen += used;
		hs->state = HS_DONE;
		if (consumed)
			*consumed = used;
		return 1;
	}
	hs->seen += fold;
	if (fold < take) {
		hs_fail(hs, 400, "obs-fold in header");
		goto failed;
	}
	if (take < n) {
		hs_fail(hs, 431, "request headers too large");
		goto failed;
	}
	if (consumed)
		*consumed = n;
	return 0;

failed:
	hs->state = HS_FAILED;
	return -hs->status;
}

static struct ws_slice done_lookup(const struct ws_hs *hs, const char *name)
{
	struct ws_slice none = { NULL, 0 };

	return hs->state == HS_DONE ? hs_lookup(hs, name) : none;
}

struct ws_slice ws_hs_path(const struct ws_hs *hs)
{
	struct ws_slice s = { NULL, 0 };

	if (hs->state != HS_DONE)
		return s;
	if (hs->path_static) {
		s.p = "/";
		s.n = 1;
	} else {
		s.p = hs->buf + hs->path_off;
		s.n = hs->path_len;
	}
	return s;
}

struct ws_slice ws_hs_query(const struct ws_hs *hs)
{
	struct ws_slice s = { NULL, 0 };

	if (hs->state == HS_DONE && hs->has_query) {
		s.p = hs->buf + hs->query_off;
		s.n = hs->query_len;
	}
	return s;
}

struct ws_slice ws_hs_key(const struct ws_hs *hs)
{
	return done_lookup(hs, "sec-websocket-key");
}

struct ws_slice ws_hs_host(const struct ws_hs *hs)
{
	return done_lookup(hs, "host");
}

struct ws_slice ws_hs_origin(const struct ws_hs *hs)
{
	return done_lookup(hs, "origin");
}

struct ws_slice ws_hs_protocols(const struct ws_hs *hs)
{
	return done_lookup(hs, "sec-websocket-protocol");
}

struct ws_slice ws_hs_extensions(const struct ws_hs *hs)
{
	return done_lookup(hs, "sec-websocket-extensions");
}

struct ws_slice ws_hs_header(const struct ws_hs *hs, const char *name)
{
	return done_lookup(hs, name);
}

int ws_hs_plain(const struct ws_hs *hs, struct ws_slice *path, int *head)
{
	if (hs->state != HS_FAILED || !hs->plain || hs->status != (hs->head ? 405 : 400))
		return 0;
	if (hs->path_static) {
		path->p = "/";
		path->n = 1;
	} else {
		path->p = hs->buf + hs->path_off;
		path->n = hs->path_len;
	}
	*head = hs->head;
	return 1;
}

const char *ws_hs_error_reason(const struct ws_hs *hs)
{
	return hs->reason ? hs->reason : "no error";
}
