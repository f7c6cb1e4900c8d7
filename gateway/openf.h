/*
 * The OPEN fields a worker route's connection keeps, so that the next worker can be sent
 * OPEN(resumed) when its own dies: the request's path, query, subprotocols and forwarded
 * headers (docs/PROTOCOL.md), but not :peer, which is the socket's and asked of it again.
 *
 * Interned: connections with the same fields share one reference-counted copy. Clients of
 * one application mostly send the same path and headers, and 80 bytes per connection was
 * a third of an idle connection's memory on a worker route. Any loop's thread (a lock).
 */
#ifndef WSGW_OPENF_H
#define WSGW_OPENF_H

#include <stddef.h>
#include <stdint.h>

struct of_set;

/* The set holding p[0..n), shared when one is alive already; a reference for the caller.
 * NULL when out of memory. */
struct of_set *of_get(const uint8_t *p, size_t n);
/* Drops a reference; the last frees the set. NULL is a no-op. */
void of_put(struct of_set *s);
/* Its bytes and their length. */
const uint8_t *of_bytes(const struct of_set *s, size_t *n);
/* Distinct sets alive. */
size_t of_count(void);

#endif
