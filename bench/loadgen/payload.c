#include "bench/loadgen/payload.h"
#include "bench/loadgen/lg.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define JSON_HEAD "{\"tag\":\"00000000\",\"rows\":["
#define JSON_HEAD_LEN (sizeof(JSON_HEAD) - 1)
#define JSON_TAG_AT 8	/* where the hex digits go */

static int json;
static uint8_t *pat;		/* LG_PATLEN bytes of starts + room for the longest message */
static size_t pat_len;
static uint32_t *row;		/* JSON: offset of each row in pat, and one past the last */
static size_t nrows, nstarts;	/* rows; rows starting in the first LG_PATLEN bytes */

static void *xmalloc(size_t n)
{
	void *p = malloc(n);

	if (!p) {
		fprintf(stderr, "wsgw-bench: out of memory (%zu bytes)\n", n);
		abort();
	}
	return p;
}

/* Rows of an API's answer or a chat's history: the same keys each time, values drawn
 * from small vocabularies, numbers that vary. About 130 bytes a row. */
static int json_row(char *out, size_t cap, size_t i)
{
	static const char *const first[] = { "Alice", "Bob", "Carol", "Dave", "Erin", "Frank",
		"Grace", "Heidi", "Ivan", "Judy", "Mallory", "Niaj", "Olivia", "Peggy", "Rupert",
		"Sybil", "Trent", "Victor", "Walter", "Zoe" };
	static const char *const last[] = { "Smith", "Jones", "Garcia", "Miller", "Davis",
		"Lopez", "Wilson", "Anderson", "Thomas", "Moore", "Martin", "Lee", "Clark",
		"Lewis", "Walker", "Young" };
	static const char *const text[] = { "hello world", "see you at 5", "on my way",
		"can you send the report?", "thanks!", "the build is green again",
		"meeting moved to 3pm", "lunch?", "deploying now", "looks good to me",
		"I will check tomorrow", "who has the keys?", "new version is out",
		"ok", "please review my change", "the server is back up", "running late, sorry",
		"great work everyone", "see the doc for details", "done" };
	static const char *const tag[] = { "news", "sports", "tech", "music", "travel", "food",
		"work", "family", "games", "movies", "science", "books" };
	int nt = 1 + rand() % 3, n;

	n = snprintf(out, cap, "{\"id\":%zu,\"user\":\"u%04d\",\"name\":\"%s %s\",\"text\":\"%s\","
		     "\"ts\":%llu,\"score\":0.%03d,\"tags\":[", 100000 + i, rand() % 10000,
		     first[rand() % 20], last[rand() % 16], text[rand() % 20],
		     1764590000000ull + i * 1375 + (unsigned)(rand() % 1000), rand() % 1000);
	for (int k = 0; k < nt; k++)
		n += snprintf(out + n, cap - (size_t)n, "%s\"%s\"", k ? "," : "", tag[rand() % 12]);
	n += snprintf(out + n, cap - (size_t)n, "],\"active\":%s},", rand() % 4 ? "true" : "false");
	return n;
}

void lg_payload_init(int want_json, size_t max_size)
{
	char buf[512];

	json = want_json;
	pat_len = LG_PATLEN + max_size + sizeof(buf);
	pat = xmalloc(pat_len);
	if (!json) {
		for (size_t i = 0; i < pat_len; i++)
			pat[i] = (uint8_t)('a' + rand() % 26);	/* valid UTF-8 for --text */
		return;
	}
	size_t cap = 1024, off = 0;
	row = xmalloc(cap * sizeof(*row));
	while (off + sizeof(buf) <= pat_len) {
		int n = json_row(buf, sizeof(buf), nrows);
		if (nrows + 1 == cap)
			row = realloc(row, (cap *= 2) * sizeof(*row));
		if (!row)
			abort();
		row[nrows++] = (uint32_t)off;
		if (off < LG_PATLEN)
			nstarts = nrows;
		memcpy(pat + off, buf, (size_t)n);
		off += (size_t)n;
	}
	row[nrows] = (uint32_t)off;
	pat_len = off;
}

size_t lg_payload_min(int want_json)
{
	return want_json ? JSON_HEAD_LEN + 2 : 8;
}

static uint32_t pick(uint32_t idx, uint64_t seq)
{
	return (uint32_t)((idx * 2654435761u + seq * 40503u) & (LG_PATLEN - 1));
}

static void put_tag(uint8_t *p, size_t n, uint32_t idx, uint64_t seq)
{
	static const char hex[] = "0123456789abcdef";
	uint32_t tag = (uint32_t)seq ^ (idx << 20);

	for (size_t i = 0; i < n && i < 8; i++)
		p[i] = (uint8_t)hex[(tag >> (28 - 4 * i)) & 15];
}

/* The last row boundary j >= r with rows [r, j) at most room bytes long. */
static size_t rows_fitting(size_t r, size_t room)
{
	size_t lo = r, hi = nrows;

	while (lo < hi) {
		size_t mid = lo + (hi - lo + 1) / 2;
		if (row[mid] - row[r] <= room)
			lo = mid;
		else
			hi = mid - 1;
	}
	return lo;
}

void lg_payload_make(uint8_t *p, size_t n, uint32_t idx, uint64_t seq)
{
	if (!json) {
		memcpy(p, pat + pick(idx, seq), n);
		put_tag(p, n, idx, seq);
		return;
	}
	/* {"tag":"TTTTTTTT","rows":[ROWS]<spaces>} — the ']' takes the last row's ',' */
	size_t r = pick(idx, seq) % nstarts, room = n - JSON_HEAD_LEN - 1;
	size_t j = rows_fitting(r, room), len = row[j] - row[r];

	memcpy(p, JSON_HEAD, JSON_HEAD_LEN);
	put_tag(p + JSON_TAG_AT, 8, idx, seq);
	p += JSON_HEAD_LEN;
	memcpy(p, pat + row[r], len);
	if (!len)
		len = 1;
	p[len - 1] = ']';
	memset(p + len, ' ', room - len);
	p[room] = '}';
}
