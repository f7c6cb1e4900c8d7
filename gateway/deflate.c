#include "gateway/deflate.h"
#include "gateway/log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <zlib.h>

/* RFC 7692 7.2.1: a message's compressed data ends with an empty deflate block's 4 bytes,
 * which the sender removes and the receiver puts back. */
static const uint8_t TAIL[4] = { 0x00, 0x00, 0xff, 0xff };

void pmd_cfg_default(struct pmd_cfg *c)
{
	c->on = 1;
	c->server_bits = 10;
	c->client_bits = 10;
	c->level = 6;
	c->mem_level = 4;
	c->takeover = 0;
	c->min_size = 64;
}

/* ---- negotiation -------------------------------------------------------------- */

struct lex {
	const char *p, *end;
};

static void skip_ows(struct lex *l)
{
	while (l->p < l->end && (*l->p == ' ' || *l->p == '\t'))
		l->p++;
}

static int is_tchar(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

/* A token (or, for values, a quoted string without escapes) into out; 0 or -1. */
static int token(struct lex *l, char *out, size_t cap, int value)
{
	size_t n = 0;
	int quoted = value && l->p < l->end && *l->p == '"';
	if (quoted)
		l->p++;
	while (l->p < l->end && is_tchar(*l->p)) {
		if (n + 1 >= cap)
			return -1;
		out[n++] = *l->p++;
	}
	if (quoted) {
		if (l->p >= l->end || *l->p != '"')
			return -1;
		l->p++;
	}
	out[n] = 0;
	return n ? 0 : -1;
}

static int bits_value(const char *v, int *out)
{
	if (strlen(v) > 2 || v[0] < '0' || v[0] > '9' || (v[1] && (v[1] < '0' || v[1] > '9')) ||
	    (v[0] == '0'))
		return -1;
	int b = atoi(v);
	if (b < 8 || b > 15)
		return -1;
	*out = b;
	return 0;
}

enum { SNCT = 1, CNCT = 2, SMWB = 4, CMWB = 8 };

/* One offer's parameters, up to the next ',' (consumed). Returns 1 when it is a valid
 * permessage-deflate offer, 0 when it is another extension or invalid, -1 on a syntax
 * error that ends the list. */
static int offer(struct lex *l, int *seen, int *sbits, int *cbits)
{
	char name[32], key[32], val[32];
	skip_ows(l);
	if (token(l, name, sizeof(name), 0))
		return -1;
	int ours = strcasecmp(name, "permessage-deflate") == 0, ok = ours;
	*seen = 0;
	*sbits = *cbits = 0;
	for (;;) {
		skip_ows(l);
		if (l->p >= l->end)
			return ok;
		if (*l->p == ',') {
			l->p++;
			return ok;
		}
		if (*l->p != ';')
			return -1;
		l->p++;
		skip_ows(l);
		if (token(l, key, sizeof(key), 0))
			return -1;
		skip_ows(l);
		int has_val = l->p < l->end && *l->p == '=';
		if (has_val) {
			l->p++;
			skip_ows(l);
			if (token(l, val, sizeof(val), 1))
				return -1;
		}
		if (!ours)
			continue;
		int bit = !strcasecmp(key, "server_no_context_takeover")   ? SNCT
			  : !strcasecmp(key, "client_no_context_takeover") ? CNCT
			  : !strcasecmp(key, "server_max_window_bits")     ? SMWB
			  : !strcasecmp(key, "client_max_window_bits")     ? CMWB
									   : 0;
		/* A parameter unknown, repeated, or with a value it cannot have: the offer
		 * is declined (RFC 7692 5.1). */
		if (!bit || (*seen & bit))
			ok = 0;
		*seen |= bit;
		if (bit == SNCT || bit == CNCT)
			ok &= !has_val;
		else if (bit == SMWB)
			ok &= has_val && bits_value(val, sbits) == 0;
		else if (bit == CMWB && has_val)
			ok &= bits_value(val, cbits) == 0;
	}
}

int pmd_negotiate(const struct pmd_cfg *cfg, struct ws_slice offers, struct pmd_params *p)
{
	memset(p, 0, sizeof(*p));
	if (!cfg->on || !offers.p)
		return 0;
	struct lex l = { offers.p, offers.p + offers.n };
	while (l.p < l.end) {
		int seen, sbits, cbits;
		int rc = offer(&l, &seen, &sbits, &cbits);
		if (rc < 0)
			return 0;
		if (rc == 0)
			continue;
		/* zlib cannot compress with a window of 2^8 (it uses 2^9): such an offer is
		 * declined rather than answered with streams the client could not read. */
		if ((seen & SMWB) && sbits < 9)
			continue;
		p->on = 1;
		p->server_bits = cfg->server_bits;
		if ((seen & SMWB) && sbits < p->server_bits)
			p->server_bits = (uint8_t)sbits;
		p->client_bits = 15;
		p->takeover = cfg->takeover & 3;
		if (seen & SNCT)
			p->takeover &= 1;
		if (seen & CNCT)
			p->takeover &= 2;
		p->say_sbits = (seen & SMWB) != 0;
		/* Asked only of a client that keeps context: otherwise its window costs one
		 * shared inflater nothing. */
		if ((seen & CMWB) && (p->takeover & 1)) {
			p->client_bits = cfg->client_bits;
			if (cbits && cbits < p->client_bits)
				p->client_bits = (uint8_t)cbits;
			p->say_cbits = 1;
		}
		return 1;
	}
	return 0;
}

int pmd_header(const struct pmd_params *p, char *out, size_t cap)
{
	if (!p->on) {
		out[0] = 0;
		return 0;
	}
	int n = snprintf(out, cap, "Sec-WebSocket-Extensions: permessage-deflate%s%s",
			 (p->takeover & 2) ? "" : "; server_no_context_takeover",
			 (p->takeover & 1) ? "" : "; client_no_context_takeover");
	if (n >= 0 && (size_t)n < cap && p->say_sbits)
		n += snprintf(out + n, cap - (size_t)n, "; server_max_window_bits=%u", p->server_bits);
	if (n >= 0 && (size_t)n < cap && p->say_cbits)
		n += snprintf(out + n, cap - (size_t)n, "; client_max_window_bits=%u", p->client_bits);
	if (n >= 0 && (size_t)n < cap)
		n += snprintf(out + n, cap - (size_t)n, "\r\n");
	if (n < 0 || (size_t)n >= cap) {
		out[0] = 0;
		return -ENOSPC;
	}
	return n;
}

/* ---- the streams ------------------------------------------------------------------ */

struct pmd_stream {
	z_stream in, out;
	uint8_t in_ok, out_ok;
	uint8_t mid; /* a stream is not at a message boundary (pmd_stream_movable) */
	/* The compressor's window as a live upgrade brought it, until its first message
	 * makes the compressor: setting a 32 KiB dictionary hashes every byte (some 150 µs),
	 * which would lengthen the hand-over's pause by that for each connection. */
	uint8_t *out_dict;
	uint16_t out_dict_n;
};

/* The loop's own: one inflater for every connection without context, a few deflaters (one
 * per level, window and memLevel in use), and the output buffer. */
#define SHARED_DEFLATERS 4
static _Thread_local struct {
	z_stream in;
	int in_ok;
	struct {
		z_stream z;
		int ok;
		uint8_t level, bits, mem;
	} def[SHARED_DEFLATERS];
	struct zbuf {
		uint8_t *p;
		size_t cap;
	} ibuf, obuf; /* inflated and deflated output: an echo deflates what it inflated */
} T;

/* Every loop's, for /metrics on loop 0: atomic, beside zlib's microseconds per message. */
static uint64_t in_plain_n, in_wire_n, out_plain_n, out_wire_n;

static void count(uint64_t *total, uint64_t n)
{
	__atomic_add_fetch(total, n, __ATOMIC_RELAXED);
}

void pmd_thread_end(void)
{
	if (T.in_ok)
		inflateEnd(&T.in);
	for (int i = 0; i < SHARED_DEFLATERS; i++)
		if (T.def[i].ok)
			deflateEnd(&T.def[i].z);
	free(T.ibuf.p);
	free(T.obuf.p);
	memset(&T, 0, sizeof(T));
}

void pmd_totals(uint64_t *in_plain, uint64_t *in_wire, uint64_t *out_plain, uint64_t *out_wire)
{
	*in_plain = __atomic_load_n(&in_plain_n, __ATOMIC_RELAXED);
	*in_wire = __atomic_load_n(&in_wire_n, __ATOMIC_RELAXED);
	*out_plain = __atomic_load_n(&out_plain_n, __ATOMIC_RELAXED);
	*out_wire = __atomic_load_n(&out_wire_n, __ATOMIC_RELAXED);
}

void pmd_stream_free(struct pmd_stream *s)
{
	if (!s)
		return;
	if (s->in_ok)
		inflateEnd(&s->in);
	if (s->out_ok)
		deflateEnd(&s->out);
	free(s->out_dict);
	free(s);
}

static int grow(struct zbuf *b, size_t need)
{
	if (need <= b->cap)
		return 0;
	size_t cap = b->cap ? b->cap : 16384;
	while (cap < need)
		cap *= 2;
	uint8_t *p = realloc(b->p, cap);
	if (!p)
		return -ENOMEM;
	b->p = p;
	b->cap = cap;
	return 0;
}

/* Runs z (inflate or deflate) over in until it is consumed, growing b up to max bytes. */
static int run(z_stream *z, int inflating, const uint8_t *in, size_t n, size_t max,
	       struct zbuf *b, size_t *got)
{
	z->next_in = (Bytef *)in;
	z->avail_in = (uInt)n;
	for (;;) {
		size_t room = *got + 16384 < max ? *got + 16384 : max;
		if (room <= *got)
			return -EMSGSIZE;
		if (grow(b, room))
			return -ENOMEM;
		z->next_out = b->p + *got;
		z->avail_out = (uInt)(room - *got);
		int rc = inflating ? inflate(z, Z_SYNC_FLUSH) : deflate(z, Z_SYNC_FLUSH);
		*got = room - z->avail_out;
		if (rc == Z_NEED_DICT || rc == Z_DATA_ERROR || rc == Z_MEM_ERROR)
			return rc == Z_MEM_ERROR ? -ENOMEM : -EBADMSG;
		/* Done when every input byte is in and the output was not full. */
		if (z->avail_in == 0 && z->avail_out != 0)
			return 0;
		if (rc == Z_STREAM_END)
			return z->avail_in ? -EBADMSG : 0;
		if (rc == Z_BUF_ERROR && z->avail_out != 0)
			return 0;
	}
}

int pmd_inflate(const struct pmd_params *p, struct pmd_stream **ps, const uint8_t *in,
		size_t n, size_t max, const uint8_t **out, size_t *out_n)
{
	z_stream *z;
	if (p->takeover & 1) {
		if (!*ps && !(*ps = calloc(1, sizeof(**ps))))
			return -ENOMEM;
		z = &(*ps)->in;
		if (!(*ps)->in_ok) {
			if (inflateInit2(z, -(int)p->client_bits) != Z_OK)
				return -ENOMEM;
			(*ps)->in_ok = 1;
		}
	} else {
		z = &T.in;
		if (!T.in_ok) {
			if (inflateInit2(z, -15) != Z_OK)
				return -ENOMEM;
			T.in_ok = 1;
		} else {
			inflateReset(z);
		}
	}
	size_t got = 0;
	/* One byte more than max may come out before the bomb is noticed: allow max + 1. */
	int rc = run(z, 1, in, n, max + 1, &T.ibuf, &got);
	if (rc == 0)
		rc = run(z, 1, TAIL, sizeof(TAIL), max + 1, &T.ibuf, &got);
	if (rc == 0 && got > max)
		rc = -EMSGSIZE;
	if (rc && (p->takeover & 1)) {
		/* The connection fails on any error: its stream is done with. */
		inflateReset(z);
		(*ps)->mid = 1;
	}
	/* A conforming message ends with an empty stored block: the inflater waits for the
	 * next block's header with no bit held (data_type 128). Anything else is state
	 * beyond the window, which a live upgrade could not carry. */
	if (!rc && (p->takeover & 1) && z->data_type != 128)
		(*ps)->mid = 1;
	if (rc)
		return rc;
	count(&in_wire_n, n);
	count(&in_plain_n, got);
	*out = T.ibuf.p;
	*out_n = got;
	return 0;
}

static z_stream *shared_deflater(const struct pmd_params *p, const struct pmd_cfg *cfg)
{
	for (int i = 0; i < SHARED_DEFLATERS; i++)
		if (T.def[i].ok && T.def[i].level == cfg->level && T.def[i].bits == p->server_bits &&
		    T.def[i].mem == cfg->mem_level) {
			deflateReset(&T.def[i].z);
			return &T.def[i].z;
		}
	/* A new set of parameters takes a free place, or the last one's. */
	int i = 0;
	while (i < SHARED_DEFLATERS - 1 && T.def[i].ok)
		i++;
	if (T.def[i].ok)
		deflateEnd(&T.def[i].z);
	T.def[i].ok = deflateInit2(&T.def[i].z, cfg->level, Z_DEFLATED, -(int)p->server_bits,
				   cfg->mem_level, Z_DEFAULT_STRATEGY) == Z_OK;
	T.def[i].level = cfg->level;
	T.def[i].bits = p->server_bits;
	T.def[i].mem = cfg->mem_level;
	return T.def[i].ok ? &T.def[i].z : NULL;
}

int pmd_deflate(const struct pmd_params *p, const struct pmd_cfg *cfg, struct pmd_stream **ps,
		const uint8_t *in, size_t n, const uint8_t **out, size_t *out_n)
{
	z_stream *z;
	if (p->takeover & 2) {
		if (!*ps && !(*ps = calloc(1, sizeof(**ps))))
			return -ENOMEM;
		z = &(*ps)->out;
		if (!(*ps)->out_ok) {
			if (deflateInit2(z, cfg->level, Z_DEFLATED, -(int)p->server_bits, cfg->mem_level,
					 Z_DEFAULT_STRATEGY) != Z_OK)
				return -ENOMEM;
			(*ps)->out_ok = 1;
			/* Raw streams take a dictionary at any block boundary; a fresh one is at
			 * one. Its matches reach back 2^bits - 262 bytes at most: within the
			 * client's window, which is at least 2^server_bits. */
			if ((*ps)->out_dict && deflateSetDictionary(z, (*ps)->out_dict, (*ps)->out_dict_n) != Z_OK) {
				(*ps)->mid = 1;
				return -ENOMEM;
			}
			free((*ps)->out_dict);
			(*ps)->out_dict = NULL;
		}
	} else if (!(z = shared_deflater(p, cfg))) {
		return -ENOMEM;
	}
	size_t got = 0;
	/* Incompressible data grows by a few bytes per 16 KiB block at most. */
	int rc = run(z, 0, in, n, n + n / 16 + 64, &T.obuf, &got);
	if (p->takeover & 2) {
		unsigned pending = 0;
		int bits = 0;
		if (rc || deflatePending(z, &pending, &bits) != Z_OK || pending || bits)
			(*ps)->mid = 1;
	}
	if (rc)
		return rc == -EMSGSIZE ? -ENOMEM : rc;
	/* Z_SYNC_FLUSH ended it with the 4-byte tail the receiver puts back. */
	if (got >= 4 && memcmp(T.obuf.p + got - 4, TAIL, 4) == 0)
		got -= 4;
	count(&out_plain_n, n);
	count(&out_wire_n, got);
	*out = T.obuf.p;
	*out_n = got;
	return 0;
}

/* ---- a live upgrade: the windows out and in ------------------------------------ */

int pmd_stream_movable(const struct pmd_stream *s)
{
	return !s || !s->mid;
}

int pmd_stream_export(struct pmd_stream *s, uint8_t *to_client, size_t *to_n,
		      uint8_t *from_client, size_t *from_n)
{
	*to_n = *from_n = 0;
	if (!s)
		return 0;
	if (s->mid)
		return -EAGAIN;
	/* Neither call can fail on a stream that was made (they copy at most the window
	 * size, which PMD_WINDOW_MAX bounds). */
	uInt n = 0;
	if (s->out_dict) {
		memcpy(to_client, s->out_dict, s->out_dict_n);
		*to_n = s->out_dict_n;
	} else if (s->out_ok && deflateGetDictionary(&s->out, to_client, &n) == Z_OK && n <= PMD_WINDOW_MAX) {
		*to_n = n;
	}
	n = 0;
	if (s->in_ok && inflateGetDictionary(&s->in, from_client, &n) == Z_OK && n <= PMD_WINDOW_MAX)
		*from_n = n;
	return 0;
}

int pmd_stream_import(const struct pmd_params *p, const uint8_t *to_client, size_t to_n,
		      const uint8_t *from_client, size_t from_n, struct pmd_stream **ps)
{
	if ((to_n && (!p->on || !(p->takeover & 2) || to_n > (size_t)1 << p->server_bits)) ||
	    (from_n && (!p->on || !(p->takeover & 1) || from_n > (size_t)1 << p->client_bits)))
		return -EINVAL;
	if (!to_n && !from_n)
		return 0;
	struct pmd_stream *s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	int rc = 0;
	/* The compressor is made at its first message (out_dict says why). */
	if (to_n) {
		if (!(s->out_dict = malloc(to_n)))
			rc = -ENOMEM;
		else {
			memcpy(s->out_dict, to_client, to_n);
			s->out_dict_n = (uint16_t)to_n;
		}
	}
	if (rc == 0 && from_n) {
		if (inflateInit2(&s->in, -(int)p->client_bits) != Z_OK)
			rc = -ENOMEM;
		else {
			s->in_ok = 1;
			if (inflateSetDictionary(&s->in, from_client, (uInt)from_n) != Z_OK)
				rc = -ENOMEM; /* its window is allocated here */
		}
	}
	if (rc) {
		pmd_stream_free(s);
		return rc;
	}
	*ps = s;
	return 0;
}
