/* Buffers for messages and frames of any size up to 16 MiB, kept for reuse.
 *
 * A 64 KiB echo used to cost a malloc and a free of 64 KiB for the frame and again for
 * the message being assembled, and glibc gave the top of the heap back and took it again:
 * a brk call and a dozen page faults per message. Here sizes are rounded up to a class
 * (powers of two and the halfway points between them, from 4 KiB), and a freed buffer
 * waits in its class for the next one of that size. What waits is bounded (BP_CACHE_MAX
 * bytes per thread, a few buffers of the largest classes), so a burst of big messages
 * does not pin its peak for ever. Larger sizes go straight to malloc. Thread-local: a
 * buffer goes back on the thread that got it.
 */
#ifndef WSGW_BUFPOOL_H
#define WSGW_BUFPOOL_H

#include <stddef.h>

/* Bytes of free buffers a thread keeps, all classes together. */
#define BP_CACHE_MAX (32u << 20)

/* A buffer of at least need bytes; *cap gets its real size (what to give bp_put, and what
 * the caller may use). NULL when out of memory. */
void *bp_get(size_t need, size_t *cap);
/* Gives back a buffer of bp_get (or NULL). cap: the size bp_get said. */
void bp_put(void *p, size_t cap);
/* Bytes of free buffers this thread keeps now. */
size_t bp_cached(void);
/* Frees what the thread keeps (at exit, and for leak checkers). */
void bp_drain(void);

#endif
