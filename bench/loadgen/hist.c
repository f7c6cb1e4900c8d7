#include "bench/loadgen/hist.h"

static unsigned bucket(uint64_t v)
{
	unsigned msb, shift, idx;

	if (v < 64)
		return (unsigned)v;
	msb = 63 - (unsigned)__builtin_clzll(v);
	shift = msb - 5;
	idx = 64 + (shift - 1) * LG_HIST_SUB + (unsigned)((v >> shift) - LG_HIST_SUB);
	return idx < LG_HIST_N ? idx : LG_HIST_N - 1;
}

/* The middle of the bucket, so quantiles are not biased low by half a bucket. */
static uint64_t bucket_value(unsigned idx)
{
	unsigned shift;
	uint64_t mant;

	if (idx < 64)
		return idx;
	shift = (idx - 64) / LG_HIST_SUB + 1;
	mant = (idx - 64) % LG_HIST_SUB + LG_HIST_SUB;
	return (mant << shift) + (1ULL << (shift - 1));
}

void lg_hist_record(struct lg_hist *h, uint64_t ns)
{
	h->b[bucket(ns)]++;
	h->count++;
	h->sum += ns;
	if (ns > h->max)
		h->max = ns;
}

void lg_hist_merge(struct lg_hist *dst, const struct lg_hist *src)
{
	for (unsigned i = 0; i < LG_HIST_N; i++)
		dst->b[i] += src->b[i];
	dst->count += src->count;
	dst->sum += src->sum;
	if (src->max > dst->max)
		dst->max = src->max;
}

uint64_t lg_hist_quantile(const struct lg_hist *h, double q)
{
	uint64_t want, seen = 0;

	if (!h->count)
		return 0;
	want = (uint64_t)(q * (double)h->count);
	if (want >= h->count)
		want = h->count - 1;
	for (unsigned i = 0; i < LG_HIST_N; i++) {
		seen += h->b[i];
		if (seen > want) {
			uint64_t v = bucket_value(i);
			return v < h->max ? v : h->max;
		}
	}
	return h->max;
}
