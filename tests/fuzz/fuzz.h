/*
 * What every harness in tests/fuzz shares. A broken invariant must crash the process so
 * libFuzzer saves the input: FUZZ_CHECK prints where and aborts. It writes to fd 2, not
 * to the stderr FILE, which a harness may have pointed at /dev/null to silence the code
 * under test.
 */
#ifndef WSGW_FUZZ_H
#define WSGW_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#define FUZZ_CHECK(cond)                                                              \
	do {                                                                          \
		if (!(cond)) {                                                        \
			dprintf(2, "%s:%d: invariant broken: %s\n", __FILE__,        \
				__LINE__, #cond);                                     \
			abort();                                                      \
		}                                                                     \
	} while (0)

/* A cursor over the fuzzer's input: reads past the end give zeros, so every input is a
   valid encoding and the fuzzer never wastes executions on a parse error of ours. */
struct fuzz_in {
	const uint8_t *p;
	size_t n;
};

static inline uint8_t fuzz_u8(struct fuzz_in *in)
{
	uint8_t v = 0;

	if (in->n) {
		v = *in->p++;
		in->n--;
	}
	return v;
}

static inline uint64_t fuzz_le(struct fuzz_in *in, unsigned bytes)
{
	uint64_t v = 0;

	for (unsigned i = 0; i < bytes; i++)
		v |= (uint64_t)fuzz_u8(in) << (8 * i);
	return v;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

#endif
