/*
 * Who is at the door: one entry per client address holding its open connections and its
 * handshake bucket, and one bucket for everyone. It answers, for each accepted connection,
 * whether its address is over --max-conns-per-ip (503) or over a handshake rate (429, with
 * the seconds to wait for Retry-After), and it names a connection's peer for logs (the
 * address lives here once, not in every connection). Process-wide: an address's limits
 * hold whichever loop thread its connections land on, so every call takes one lock.
 * Connections come and go at handshake rates, not per message, which a lock serves well.
 *
 * The buckets hold one second's worth of handshakes (the burst) and refill continuously.
 */
#ifndef WSGW_DOOR_H
#define WSGW_DOOR_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

enum door_verdict {
	DOOR_OK,
	DOOR_IP_FULL,  /* the address has max-conns-per-ip open already: 503 */
	DOOR_RATE_IP,  /* its handshake bucket is empty: 429 */
	DOOR_RATE_ALL, /* the gateway's bucket is empty: 429 */
	DOOR_ORIGIN,   /* (for counting) the route's origins do not include the client's: 403 */
	DOOR_KINDS,
};

/* The limits in force (0: none); a reload may change them at any time. */
void door_set_limits(unsigned max_per_ip, unsigned rate, unsigned rate_per_ip);
/* A connection from sa (AF_INET or AF_INET6) accepted at now (ms, the loop's clock). Sets
 * *slot (0 when out of memory: the connection is let in, unnamed), *port, and for a rate
 * refusal *retry_s (>= 1). The connection counts against its address until door_leave,
 * whatever the verdict. */
enum door_verdict door_enter(const struct sockaddr *sa, uint32_t now, uint32_t *slot,
			     uint16_t *port, unsigned *retry_s);
/* The same for an address already taken apart: v6 (0: IPv4, its 4 bytes first in key),
 * key (16 bytes, the rest zero), as door_key gives it. */
enum door_verdict door_enter_key(uint8_t v6, const uint8_t key[16], uint32_t now, uint32_t *slot,
				 unsigned *retry_s);
/* The connection of slot closed. 0 is a no-op. */
void door_leave(uint32_t slot);
/* "ADDR:PORT" ("[ADDR6]:PORT") of slot and port; "-" for slot 0. */
void door_peer(uint32_t slot, uint16_t port, char *out, size_t cap);
/* The address alone. */
void door_addr(uint32_t slot, char *out, size_t cap);
/* The address of slot, taken apart (a live upgrade carries it so the new process need
 * not ask the kernel): 0 with *v6 and key, or -1 for slot 0 or one not in use. */
int door_key(uint32_t slot, uint8_t *v6, uint8_t key[16]);
/* Frees some entries whose address has no connection left and a full bucket (a bounded
 * share per call; the loop's tick). */
void door_tick(uint32_t now);
/* Addresses known now. */
unsigned long door_addresses(void);
/* Frees everything (tests, shutdown). */
void door_reset(void);

#endif
