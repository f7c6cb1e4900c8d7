/* A client connection and the map that finds it by id.
 *
 * One I/O loop owns each struct conn: only it changes one (several with --loops N; a
 * connection can move between them, gateway/loops.h). Other threads may find a
 * connection through the map inside rcu_read_lock() and read its immutable fields (id, fd
 * while not closed); the memory stays valid until a grace period after conn_map_del. */
#ifndef WSGW_CONN_H
#define WSGW_CONN_H

#include <stdint.h>

#include <urcu.h>
#include <urcu/rculfhash.h>

#include "gateway/deflate.h"
#include "gateway/frame.h"
#include "gateway/outq.h"

struct ws_hs;
struct top_sub;
struct pmd_stream;
struct tls_conn;
struct of_set;

enum conn_state {
	CONN_HANDSHAKE,  /* reading the HTTP upgrade request */
	CONN_AUTHORIZING, /* request read; waiting for the worker's ACCEPT or REJECT */
	CONN_OPEN,       /* WebSocket frames both ways */
	CONN_CLOSE_WAIT, /* our close frame is out; waiting for the peer's */
	CONN_LINGER,     /* last bytes queued; then shutdown(SHUT_WR), read until EOF */
	CONN_DEAD,       /* fd closed; freed at the end of the event batch */
};

enum conn_flag {
	CONN_IN_FLUSH = 1 << 0,    /* on the loop's flush list */
	CONN_POLLOUT = 1 << 1,     /* EPOLLOUT armed: the socket was full */
	CONN_PING_SENT = 1 << 2,   /* idle ping out, no answer yet */
	CONN_SHUT_SENT = 1 << 3,   /* shutdown(SHUT_WR) done */
	CONN_REJECT_503 = 1 << 4,  /* over max_conns: answer 503 once the request is read */
	CONN_READ_PAUSED = 1 << 5, /* output over the high mark, or the worker cannot take more */
	CONN_WORKER = 1 << 6,      /* a worker got OPEN and is still owed its CLOSE */
	CONN_ECHO = 1 << 7,        /* routed to the built-in echo pool */
};

/* The tag of everything registered with epoll: data.ptr points at one of these first. A
 * client connection is EP_CONN; every other fd is a struct loop_src (gateway/loop.h). */
enum ep_kind { EP_CONN = 1, EP_SRC };

struct conn {
	uint8_t kind;  /* EP_CONN */
	uint8_t state; /* enum conn_state */
	uint8_t flags; /* enum conn_flag */
	uint8_t pool;  /* pool.c's pool index, set when the upgrade request is routed */
	int fd;
	uint64_t id;        /* never reused during the gateway's life */
	uint32_t deadline;  /* loop ms clock: handshake, idle, or close deadline by state */
	uint16_t in_len;    /* bytes held in `in` */
	uint16_t worker;    /* pool.c's worker slot, POOL_NO_WORKER when none */
	struct ws_rx rx;
	union {
		struct ws_hs *hs; /* CONN_HANDSHAKE and CONN_AUTHORIZING */
		uint8_t *in;      /* otherwise: the unparsed tail of the last read (<= 139 bytes) */
	};
	uint8_t *msg;       /* message being assembled across reads; NULL when none */
	uint32_t msg_len, msg_cap;
	struct of_set *fields; /* pool.c: the OPEN fields but :peer, for OPEN(resumed); NULL for echo */
	uint32_t ip;         /* gateway/door.c's slot of its address (0: unknown) */
	uint8_t loop;        /* the index of the loop that owns it (atomic: others read it) */
	uint8_t in_loop;     /* registered with that loop's epoll set and counted there */
	struct outq out;
	uint32_t out_since;  /* loop ms clock: when out last went from empty to not */
	uint8_t slow;        /* enum cfg_slow of its route, for published messages */
	struct pmd_params pmd; /* permessage-deflate as agreed (pmd.on 0: none) */
	uint8_t route;       /* index of its route in the settings; CFG_NO_ROUTE before routing */
	uint8_t door;        /* enum door_verdict at accept: answered 503 or 429 once read */
	uint16_t port;       /* the peer's port (its address is the door's) */
	uint8_t retry_s;     /* a 429's Retry-After */
	struct pmd_stream *pmd_s; /* its own zlib streams, with context takeover only */
	struct top_sub *subs; /* gateway/topics.c: its subscriptions */
	struct tls_conn *tls; /* on a ",tls" listener: its TLS state; NULL otherwise */
	struct conn *flush_next;
	struct cds_lfht_node node;
	union {
		struct rcu_head rcu;        /* waiting for the grace period */
		struct conn *free_next;     /* then on the slab's free list */
	};
};

/* Creates the map. Returns 0 or -ENOMEM. Call once, from the loop thread. */
int conn_map_init(void);
void conn_map_destroy(void);

/* Allocates a connection for fd with a fresh id and inserts it. Connections come from
 * a slab of their own, so the short-lived handshake buffers never fragment the memory that
 * idle connections hold. Aborts on OOM (the struct is small and ours). Caller: the loop
 * thread, registered with RCU. */
struct conn *conn_new(int fd);

/* A live upgrade: a connection the replaced gateway made, with its id. NULL when id is 0,
 * out of range, or in the map already. Later ids of conn_new are above it. */
struct conn *conn_adopt(int fd, uint64_t id);
/* The id conn_new gives next; and raising it (to the replaced gateway's, so no id is
 * ever given twice across the upgrade). */
uint64_t conn_next_id(void);
void conn_set_next_id(uint64_t id);

/* The id the next connection gets, and those after it count up from (ids start at 1; a
 * gateway of a cluster puts its node in the top bits, gateway/cluster.h). Call before the
 * first conn_new. */
void conn_set_first_id(uint64_t id);

/* Removes c from the map and frees it after a grace period. c must be CONN_DEAD with
 * nothing queued and no buffers. */
void conn_release(struct conn *c);

/* Finds a connection by id. Call with rcu_read_lock held; the result is valid until
 * rcu_read_unlock. NULL when there is none (closed, or never existed). */
struct conn *conn_lookup(uint64_t id);

/* conn_lookup, but NULL also for a connection another loop owns (a worker's command must
 * not reach one of those: only its owner may read it). */
struct conn *conn_lookup_here(uint64_t id);

/* Calls fn for every connection of the calling thread's loop. Loop thread only (it may
 * release the one it is given). */
void conn_for_each(void (*fn)(struct conn *c, void *arg), void *arg);
/* Calls fn for every connection of every loop: fn may read only what never changes (id)
 * of those another loop owns (conn_loop says which). */
void conn_for_each_all(void (*fn)(struct conn *c, void *arg), void *arg);
/* The calling thread runs loop number index (0 until it says so). */
void conn_thread_loop(unsigned index);
/* The index of the loop that owns c (any thread), or CONN_MOVING | k while it goes to
 * loop k (loop_detach_conn there, loop_add_conn here). CONN_NO_LOOP is for no connection. */
#define CONN_MOVING 0x80u
#define CONN_NO_LOOP 0xffu
unsigned conn_loop(const struct conn *c);

/* "ADDR:PORT" of c's peer (or "?:0", closed): getpeername, for OPEN and log lines. */
void conn_peer(const struct conn *c, char *out, size_t cap);

/* Connections in the map. */
unsigned long conn_count(void);

/* Grows c->msg (the message being assembled, or an authorizing client's early frames) to
 * cap bytes, within the memory budget (gateway/budget.h). Returns 0, -ENOBUFS (over the
 * budget: nothing changed), or -ENOMEM. */
int conn_msg_grow(struct conn *c, uint32_t cap) __attribute__((warn_unused_result));
/* Frees c->msg and gives its bytes back to the budget. */
void conn_msg_free(struct conn *c);

#endif
