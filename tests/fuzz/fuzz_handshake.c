/*
 * gateway/handshake.c (ws_hs_feed and its accessors) and gateway/hsresp.c (ws_resp_101):
 * the HTTP upgrade request, the first bytes any stranger sends.
 *
 * Input: [flags][chunk size][small max_header_bytes][small max_headers][request]. The
 * request is fed with the default and with small limits, each whole, in chunks and byte
 * by byte, every piece in a heap block of its exact size that is freed as soon as the
 * feed returns: a slice pointing into the caller's bytes is then a use-after-free, and a
 * read past a piece an overflow, both caught by ASan. The answer must not depend on the
 * split. After a success every accessor must point into the ws_hs's own storage (one
 * heap block of exactly the capacity ws_hs_mem reports), and the 101 built from the key
 * must be one well-formed response head, as must the error response to a refusal.
 */
#include "gateway/handshake.h"
#include "gateway/hsresp.h"
#include "tests/fuzz/fuzz.h"

#include <errno.h>
#include <stdbool.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/sha.h>
#include <sanitizer/asan_interface.h>

struct bytes {
	uint8_t *p;
	size_t n, cap;
};

static void bytes_add(struct bytes *b, const void *p, size_t n)
{
	if (b->n + n > b->cap) {
		size_t cap = b->cap ? b->cap : 256;
		while (cap < b->n + n)
			cap *= 2;
		b->p = realloc(b->p, cap);
		FUZZ_CHECK(b->p);
		b->cap = cap;
	}
	if (n)
		memcpy(b->p + b->n, p, n);
	b->n += n;
}

struct result {
	int rc;          /* 1, -status, or 0 when the input ended first */
	size_t consumed; /* request bytes, on success */
	const char *reason;
	struct bytes fields; /* every accessor's answer, for comparing the feeds */
};

/* Header names worth asking for: the ones the gateway uses, and every name the request
   itself seems to carry (the text before ':' at each line start). */
static const char *const fixed_names[] = {
	"host", "upgrade", "connection", "sec-websocket-key", "sec-websocket-version",
	"origin", "cookie", "user-agent", "authorization", "HOST", "Cookie",
};

/* The heap block s.p lies in, checked against the storage block found so far. */
static void check_in_storage(struct ws_slice s, void **block, size_t cap)
{
	void *start = NULL;
	size_t size = 0;
	char name[8];
	const char *kind;

	if (!s.p)
		return;
	kind = __asan_locate_address((void *)s.p, name, sizeof(name), &start, &size);
	FUZZ_CHECK(kind && !strcmp(kind, "heap"));
	FUZZ_CHECK(size == cap);
	FUZZ_CHECK((const char *)s.p >= (const char *)start &&
		   s.n <= (size_t)((const char *)start + size - s.p));
	if (*block)
		FUZZ_CHECK(start == *block);
	*block = start;
}

static void record(struct result *res, struct ws_slice s)
{
	uint64_t n = s.p ? s.n : UINT64_MAX;

	bytes_add(&res->fields, &n, sizeof(n));
	bytes_add(&res->fields, s.p, s.p ? s.n : 0);
}

/* A header value: a piece of one "name\0value\0" record, so never a NUL; llhttp refuses
   CR and LF in values. */
static void check_value(struct ws_slice s)
{
	if (s.p)
		FUZZ_CHECK(!memchr(s.p, 0, s.n) && !memchr(s.p, '\r', s.n) &&
			   !memchr(s.p, '\n', s.n));
}

static bool is_b64(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	       c == '+' || c == '/';
}

/* Extra headers as a worker's ACCEPT may give them; ok: whether ws_resp_101 must take them. */
static const struct {
	const char *s;
	bool ok;
} extra_choices[] = {
	{ NULL, true }, { "X-A: 1\r\n", true }, { "X-A: 1\r\nX-B: 2\r\n", true }, { "", true },
	{ "X-Bad\n", false }, { "X-Bad: 1\r\n\r\n", false }, { "X-Bad: 1\r", false },
	{ "\r\n", false }, { "X-A: 1", false }, { "X-A: 1\rX-B: 2\r\n", false },
};

static void check_101(struct ws_slice key, struct ws_slice protos, uint8_t flags)
{
	unsigned pick = (flags & 7) + 8 * (flags >> 4);
	const char *extra;
	bool extra_ok;
	char proto[256], *protocol = NULL, out[2048], accept[29], want[64];
	unsigned char md[SHA_DIGEST_LENGTH], cat[64];
	int len;

	pick %= sizeof(extra_choices) / sizeof(extra_choices[0]);
	extra = extra_choices[pick].s;
	extra_ok = extra_choices[pick].ok;
	if ((flags & 8) && protos.p && protos.n < sizeof(proto) && !memchr(protos.p, 0, protos.n)) {
		memcpy(proto, protos.p, protos.n);
		proto[protos.n] = 0;
		protocol = proto;
	}
	len = ws_resp_101(out, sizeof(out), key, protocol, extra);
	/* Refused exactly when the response could be split or the protocol is empty. */
	FUZZ_CHECK((len == -EINVAL) == (!extra_ok || (protocol && !*protocol)));
	if (len == -EINVAL)
		return;
	FUZZ_CHECK(len > 0 && (size_t)len < sizeof(out));
	FUZZ_CHECK(!memcmp(out, "HTTP/1.1 101 Switching Protocols\r\n", 34));
	/* One head: its only empty line is the last. */
	FUZZ_CHECK(len >= 4 && !memcmp(out + len - 4, "\r\n\r\n", 4));
	FUZZ_CHECK(memmem(out, (size_t)len, "\r\n\r\n", 4) == out + len - 4);
	FUZZ_CHECK(!memchr(out, 0, (size_t)len));

	/* The accept value, computed another way: one-shot SHA-1 of key + GUID. */
	FUZZ_CHECK(key.n == 24);
	memcpy(cat, key.p, 24);
	memcpy(cat + 24, "258EAFA5-E914-47DA-95CA-C5AB0DC85B11", 36);
	SHA1(cat, 60, md);
	EVP_EncodeBlock((unsigned char *)accept, md, SHA_DIGEST_LENGTH);
	snprintf(want, sizeof(want), "\r\nSec-WebSocket-Accept: %s\r\n", accept);
	FUZZ_CHECK(memmem(out, (size_t)len, want, strlen(want)));

	/* The length is exact: one byte less does not fit. */
	FUZZ_CHECK(ws_resp_101(out, (size_t)len, key, protocol, extra) == len);
	FUZZ_CHECK(ws_resp_101(out, (size_t)len - 1, key, protocol, extra) == -ENOSPC);
}

/* The answer to a refused request: one head, a body as long as Content-Length says. */
static void check_error_response(int status)
{
	char out[512], want[32];
	const char *body, *cl;
	int len = ws_resp_error(out, sizeof(out), status);

	FUZZ_CHECK(len > 0 && (size_t)len < sizeof(out));
	snprintf(want, sizeof(want), "HTTP/1.1 %d ", status);
	FUZZ_CHECK(!memcmp(out, want, strlen(want)));
	body = memmem(out, (size_t)len, "\r\n\r\n", 4);
	FUZZ_CHECK(body);
	body += 4;
	cl = memmem(out, (size_t)(body - out), "\r\nContent-Length: ", 18);
	FUZZ_CHECK(cl && strtoul(cl + 18, NULL, 10) == (unsigned long)(out + len - body));
	FUZZ_CHECK(ws_resp_error(out, (size_t)len - 1, status) == -ENOSPC);
}

static void check_done(struct ws_hs *hs, struct result *res, const uint8_t *req, size_t n,
		       size_t struct_size, uint8_t flags)
{
	size_t cap = ws_hs_mem(hs) - struct_size;
	void *block = NULL;
	struct ws_slice s;
	char name[64];

	s = ws_hs_path(hs);
	FUZZ_CHECK(s.p && s.n);
	if (!(s.n == 1 && s.p[0] == '/'))
		check_in_storage(s, &block, cap); /* "/" may be a static string */
	FUZZ_CHECK(!memchr(s.p, '?', s.n) && !memchr(s.p, '#', s.n));
	record(res, s);
	s = ws_hs_query(hs);
	check_in_storage(s, &block, cap);
	FUZZ_CHECK(!s.p || !memchr(s.p, '#', s.n));
	record(res, s);

	struct ws_slice key = ws_hs_key(hs), protos = ws_hs_protocols(hs);
	struct ws_slice fixed[] = { key, ws_hs_host(hs), ws_hs_origin(hs), protos,
				    ws_hs_extensions(hs) };
	for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++) {
		check_in_storage(fixed[i], &block, cap);
		check_value(fixed[i]);
		record(res, fixed[i]);
	}
	FUZZ_CHECK(key.p && key.n == 24 && key.p[22] == '=' && key.p[23] == '=');
	for (int i = 0; i < 22; i++)
		FUZZ_CHECK(is_b64(key.p[i]));
	FUZZ_CHECK(fixed[1].p && fixed[1].n);

	for (size_t i = 0; i < sizeof(fixed_names) / sizeof(fixed_names[0]); i++) {
		s = ws_hs_header(hs, fixed_names[i]);
		check_in_storage(s, &block, cap);
		check_value(s);
		record(res, s);
	}
	/* Names from the request's own lines. */
	for (size_t i = 0; i < n; i++) {
		if (i && req[i - 1] != '\n')
			continue;
		size_t j = i;
		while (j < n && j - i < sizeof(name) - 1 && req[j] != ':' && req[j] != '\n' && req[j])
			j++;
		if (j == n || req[j] != ':' || j == i)
			continue;
		memcpy(name, req + i, j - i);
		name[j - i] = 0;
		s = ws_hs_header(hs, name);
		check_in_storage(s, &block, cap);
		check_value(s);
		record(res, s);
	}
	check_101(key, protos, flags);
}

static void run(const uint8_t *req, size_t n, const struct ws_hs_limits *lim, size_t chunk,
		uint8_t flags, struct result *res)
{
	struct ws_hs *hs = ws_hs_new(lim), *fresh = ws_hs_new(lim);
	size_t pos = 0, used, struct_size;
	int rc = 0;

	FUZZ_CHECK(hs && fresh);
	struct_size = ws_hs_mem(fresh); /* nothing fed: no storage yet */
	ws_hs_free(fresh);
	memset(res, 0, sizeof(*res));
	while (pos < n) {
		size_t c = chunk && chunk < n - pos ? chunk : n - pos;
		char *piece = malloc(c);

		FUZZ_CHECK(piece);
		memcpy(piece, req + pos, c);
		used = (size_t)-1;
		rc = ws_hs_feed(hs, piece, c, &used);
		free(piece);
		if (rc == 0) {
			FUZZ_CHECK(used == c);
			FUZZ_CHECK(!ws_hs_path(hs).p && !ws_hs_key(hs).p);
			pos += c;
			continue;
		}
		if (rc == 1) {
			FUZZ_CHECK(used <= c);
			pos += used;
		} else {
			FUZZ_CHECK(used == 0);
			FUZZ_CHECK(rc == -400 || rc == -405 || rc == -426 || rc == -431 || rc == -500);
			FUZZ_CHECK(!ws_hs_path(hs).p && !ws_hs_header(hs, "host").p);
			FUZZ_CHECK(strcmp(ws_hs_error_reason(hs), "no error"));
			check_error_response(-rc);
		}
		/* Once decided, the answer sticks and nothing more is taken. */
		FUZZ_CHECK(ws_hs_feed(hs, "x", 1, &used) == rc && used == 0);
		break;
	}
	FUZZ_CHECK(ws_hs_mem(hs) - struct_size <= (lim && lim->max_header_bytes
							   ? lim->max_header_bytes
							   : WS_HS_DEFAULT_MAX_HEADER_BYTES));
	res->rc = rc;
	res->consumed = rc < 0 ? 0 : pos; /* a refusal consumes nothing of its last piece */
	res->reason = ws_hs_error_reason(hs);
	if (rc == 1)
		check_done(hs, res, req, pos, struct_size, flags);
	ws_hs_free(hs);
}

static void same(const struct result *a, const struct result *b)
{
	FUZZ_CHECK(a->rc == b->rc);
	FUZZ_CHECK(a->consumed == b->consumed);
	FUZZ_CHECK(!strcmp(a->reason, b->reason));
	FUZZ_CHECK(a->fields.n == b->fields.n);
	FUZZ_CHECK(!a->fields.n || !memcmp(a->fields.p, b->fields.p, a->fields.n));
}

static void check_limits(const uint8_t *req, size_t n, const struct ws_hs_limits *lim,
			 size_t chunk, uint8_t flags)
{
	struct result whole, split, bytewise;

	run(req, n, lim, 0, flags, &whole);
	run(req, n, lim, chunk, flags, &split);
	run(req, n, lim, 1, flags, &bytewise);
	same(&whole, &split);
	same(&whole, &bytewise);
	free(whole.fields.p);
	free(split.fields.p);
	free(bytewise.fields.p);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_in in = { data, size };
	uint8_t flags = fuzz_u8(&in);
	size_t chunk = (size_t)fuzz_u8(&in) + 1;
	struct ws_hs_limits small = {
		.max_header_bytes = 16 + 4 * (size_t)fuzz_u8(&in),
		.max_headers = 1 + fuzz_u8(&in) % 16,
	};

	check_limits(in.p, in.n, NULL, chunk, flags);
	check_limits(in.p, in.n, &small, chunk, flags);
	return 0;
}
