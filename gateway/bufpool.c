#include "gateway/bufpool.h"

#include <stdint.h>
#include <stdlib.h>

/* Classes: 4 KiB, 6 KiB, 8 KiB, 12 KiB, 16 KiB, ... 16 MiB, 24 MiB: at most a third of a
 * buffer is rounding. */
#define BP_MIN_SHIFT 12
#define BP_MAX_SHIFT 24
#define BP_CLASSES (2 * (BP_MAX_SHIFT - BP_MIN_SHIFT + 1))
/* Free buffers one class keeps at most: many small ones, few big ones. */
#define BP_CLASS_MAX 64

struct bp_free {
	struct bp_free *next;
};

static _Thread_local struct bp_free *free_list[BP_CLASSES];
static _Thread_local unsigned free_count[BP_CLASSES];
static _Thread_local size_t cached;

static size_t class_size(int k)
{
	size_t base = (size_t)1 << (BP_MIN_SHIFT + k / 2);
	return k & 1 ? base + base / 2 : base;
}

/* The smallest class of at least n bytes; -1 past the last. */
static int class_of(size_t n)
{
	if (n <= ((size_t)1 << BP_MIN_SHIFT))
		return 0;
	int shift = 64 - __builtin_clzll((unsigned long long)(n - 1)); /* 2^shift >= n */
	size_t full = (size_t)1 << shift, half = full / 2 + full / 4;
	int k = 2 * (shift - BP_MIN_SHIFT);
	if (n <= half)
		k--; /* 1.5 * 2^(shift-1) */
	return k < BP_CLASSES ? k : -1;
}

void *bp_get(size_t need, size_t *cap)
{
	int k = class_of(need);
	if (k < 0) {
		*cap = need;
		return malloc(need);
	}
	*cap = class_size(k);
	struct bp_free *f = free_list[k];
	if (f) {
		free_list[k] = f->next;
		free_count[k]--;
		cached -= *cap;
		return f;
	}
	return malloc(*cap);
}

void bp_put(void *p, size_t cap)
{
	if (!p)
		return;
	int k = class_of(cap);
	/* The largest classes keep fewer: four of 16 MiB would be the whole allowance. */
	unsigned most = cap >= (4u << 20) ? 1 : cap >= (512u << 10) ? 4 : BP_CLASS_MAX;
	if (k < 0 || class_size(k) != cap || free_count[k] >= most || cached + cap > BP_CACHE_MAX) {
		free(p);
		return;
	}
	struct bp_free *f = p;
	f->next = free_list[k];
	free_list[k] = f;
	free_count[k]++;
	cached += cap;
}

size_t bp_cached(void)
{
	return cached;
}

void bp_drain(void)
{
	for (int k = 0; k < BP_CLASSES; k++) {
		while (free_list[k]) {
			struct bp_free *f = free_list[k];
			free_list[k] = f->next;
			free(f);
		}
		free_count[k] = 0;
	}
	cached = 0;
}
