/* Latency histogram: log-linear buckets over nanoseconds, ~3% resolution, no allocation
 * on record, so every echo can be recorded on the hot path. */
#ifndef LG_HIST_H
#define LG_HIST_H

#include <stdint.h>

#define LG_HIST_SUB 32			/* buckets per power of two above 64 ns */
#define LG_HIST_N (64 + 42 * LG_HIST_SUB)

struct lg_hist {
	uint64_t count;
	uint64_t max;
	uint64_t sum;
	uint64_t b[LG_HIST_N];
};

void lg_hist_record(struct lg_hist *h, uint64_t ns);
void lg_hist_merge(struct lg_hist *dst, const struct lg_hist *src);
/* Returns the value (ns) below which a fraction q of the samples lie; 0 when empty. */
uint64_t lg_hist_quantile(const struct lg_hist *h, double q);

#endif
