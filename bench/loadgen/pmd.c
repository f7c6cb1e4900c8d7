#include "bench/loadgen/pmd.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <zlib.h>

static const uint8_t TAIL[4] = { 0x00, 0x00, 0xff, 0xff };

struct lg_pmd {
	z_stream def, inf;
	uint8_t *obuf, *ibuf;
	size_t ocap, icap;
};

static void *xrealloc(void *p, size_t n)
{
	p = realloc(p, n);
	if (!p) {
		fprintf(stderr, "wsgw-bench: out of memory (%zu bytes)\n", n);
		abort();
	}
	return p;
}

struct lg_pmd *lg_pmd_new(int level)
{
	struct lg_pmd *z = xrealloc(NULL, sizeof(*z));

	memset(z, 0, sizeof(*z));
	/* The window and memLevel browsers use; we offered no client_max_window_bits, so
	 * the server must take a 2^15 window. */
	if (deflateInit2(&z->def, level, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY) != Z_OK ||
	    inflateInit2(&z->inf, -15) != Z_OK) {
		fprintf(stderr, "wsgw-bench: zlib cannot make its streams\n");
		abort();
	}
	return z;
}

void lg_pmd_free(struct lg_pmd *z)
{
	if (!z)
		return;
	deflateEnd(&z->def);
	inflateEnd(&z->inf);
	free(z->obuf);
	free(z->ibuf);
	free(z);
}

/* One parameter of the answer, p[0..n) trimmed of spaces. */
static int param_ok(const char *p, size_t n, int *snct)
{
	while (n && (*p == ' ' || *p == '\t'))
		p++, n--;
	while (n && (p[n - 1] == ' ' || p[n - 1] == '\t'))
		n--;
#define IS(s) (n == sizeof(s) - 1 && !strncasecmp(p, s, n))
	if (IS("server_no_context_takeover")) {
		*snct = 1;
		return 1;
	}
	if (IS("client_no_context_takeover"))
		return 1;
#undef IS
	/* A smaller window for the server's messages: the inflater's 2^15 reads any. */
	static const char smwb[] = "server_max_window_bits=";
	if (n > sizeof(smwb) - 1 && !strncasecmp(p, smwb, sizeof(smwb) - 1)) {
		int b = atoi(p + sizeof(smwb) - 1);
		return b >= 8 && b <= 15;
	}
	return 0;	/* client_max_window_bits was not offered; nothing else exists */
}

int lg_pmd_check_answer(const char *v, size_t n)
{
	static const char name[] = "permessage-deflate";
	int snct = 0;

	while (n && (*v == ' ' || *v == '\t'))
		v++, n--;
	if (n < sizeof(name) - 1 || strncasecmp(v, name, sizeof(name) - 1) ||
	    memchr(v, ',', n))
		return -1;
	v += sizeof(name) - 1;
	n -= sizeof(name) - 1;
	while (n && (v[n - 1] == ' ' || v[n - 1] == '\t'))
		n--;
	if (n && *v != ';')
		return -1;
	while (n) {
		const char *semi;
		size_t l;

		v++, n--;	/* the ';' */
		semi = memchr(v, ';', n);
		l = semi ? (size_t)(semi - v) : n;
		if (!param_ok(v, l, &snct))
			return -1;
		v += l;
		n -= l;
	}
	return snct ? 0 : -1;
}

static void grow(uint8_t **b, size_t *cap, size_t need)
{
	size_t c = *cap ? *cap : 4096;

	if (need <= *cap)
		return;
	while (c < need)
		c *= 2;
	*b = xrealloc(*b, c);
	*cap = c;
}

void lg_pmd_deflate(struct lg_pmd *z, const uint8_t *p, size_t n, const uint8_t **out,
		    size_t *out_n)
{
	size_t got = 0;

	deflateReset(&z->def);
	z->def.next_in = (Bytef *)p;
	z->def.avail_in = (uInt)n;
	/* deflateBound is for Z_FINISH; a sync flush adds an empty stored block */
	grow(&z->obuf, &z->ocap, deflateBound(&z->def, (uLong)n) + 16);
	for (;;) {
		z->def.next_out = z->obuf + got;
		z->def.avail_out = (uInt)(z->ocap - got);
		deflate(&z->def, Z_SYNC_FLUSH);	/* Z_OK or Z_BUF_ERROR: no progress left */
		got = z->ocap - z->def.avail_out;
		if (z->def.avail_in == 0 && z->def.avail_out != 0)
			break;
		grow(&z->obuf, &z->ocap, z->ocap * 2);
	}
	if (got >= 4 && !memcmp(z->obuf + got - 4, TAIL, 4))
		got -= 4;
	*out = z->obuf;
	*out_n = got;
}

/* Feeds in[0..n) to the inflater, output appended at *got; 0, -EMSGSIZE, -EBADMSG. */
static int inflate_some(struct lg_pmd *z, const uint8_t *in, size_t n, size_t max, size_t *got)
{
	z->inf.next_in = (Bytef *)in;
	z->inf.avail_in = (uInt)n;
	for (;;) {
		size_t room = *got + 16384 < max + 1 ? *got + 16384 : max + 1;
		int rc;

		if (room <= *got)
			return -EMSGSIZE;
		grow(&z->ibuf, &z->icap, room);
		z->inf.next_out = z->ibuf + *got;
		z->inf.avail_out = (uInt)(room - *got);
		rc = inflate(&z->inf, Z_SYNC_FLUSH);
		*got = room - z->inf.avail_out;
		if (rc == Z_NEED_DICT || rc == Z_DATA_ERROR || rc == Z_MEM_ERROR)
			return -EBADMSG;
		if (*got > max)
			return -EMSGSIZE;
		if (rc == Z_STREAM_END)
			return z->inf.avail_in ? -EBADMSG : 0;
		if (z->inf.avail_in == 0 && z->inf.avail_out != 0)
			return 0;
		if (rc == Z_BUF_ERROR && z->inf.avail_out != 0)
			return 0;
	}
}

int lg_pmd_inflate(struct lg_pmd *z, const uint8_t *p, size_t n, size_t max,
		   const uint8_t **out, size_t *out_n)
{
	size_t got = 0;
	int rc;

	inflateReset(&z->inf);
	rc = inflate_some(z, p, n, max, &got);
	if (!rc)
		rc = inflate_some(z, TAIL, sizeof(TAIL), max, &got);
	if (rc)
		return rc;
	*out = z->ibuf ? z->ibuf : TAIL;	/* an empty message may never grow the buffer */
	*out_n = got;
	return 0;
}
