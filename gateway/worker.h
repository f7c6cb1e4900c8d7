/*
 * One attached worker as its pool keeps it: its transport, the records that did not fit
 * yet (held, in order, sent before anything newer), and the clients paused until they do.
 * A worker is allocated and freed by pool.c only. Loop thread only.
 */
#ifndef WSGW_WORKER_H
#define WSGW_WORKER_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "gateway/transport.h"

/* A record kept in the gateway: held behind a full transport, or waiting for a worker. */
struct wk_held {
	struct wk_held *next;
	uint64_t conn;
	uint32_t len;
	uint16_t type, flags;
	uint8_t body[];
};

/* A FIFO of held records. All zero is empty. */
struct wk_list {
	struct wk_held *head, *tail;
	size_t n;
	size_t bytes; /* they take, headers included */
};

/* A copy of r, charged to the memory budget's held records; NULL when out of memory. */
struct wk_held *wk_held_new(const struct tr_rec *r);
/* Frees h and gives its bytes back to the budget. NULL is a no-op. */
void wk_held_free(struct wk_held *h);
void wk_list_append(struct wk_list *l, struct wk_held *h);
/* Removes and returns the first record, NULL when empty. */
struct wk_held *wk_list_pop(struct wk_list *l);
void wk_list_clear(struct wk_list *l);

enum wk_state {
	WK_ALIVE,
	WK_DYING, /* failed: takes no new work; its death is handled at the end of the batch */
};

struct pool;

struct worker {
	unsigned id;          /* never reused during the gateway's life */
	uint16_t slot;        /* index in the pools' table; conn->worker */
	uint8_t state;        /* enum wk_state */
	uint8_t broken;       /* its channel was corrupt: read nothing more from it */
	uint8_t adopt;        /* attached while its pool had waiting connections */
	uint8_t quiet_hold;   /* its records are held for its window (zmq): routine, no log */
	uint8_t stall_logged; /* the window has been full too long: said once */
	uint8_t moving;       /* zmq, a live upgrade: between MOVE and RESUME every record is
			       * held (docs/UPGRADE.md "zmq workers") */
	uint8_t moved;        /* the old process: its MOVED came, nothing is in flight */
	uint32_t stall_since; /* loop time its window was seen full with no ACK since; 0: not */
	struct pool *pool;
	pid_t pid;
	unsigned conns;       /* connections pinned to it */
	struct tr *tr;
	struct wk_list held;
	uint64_t *waiting;    /* ids of connections paused until held is empty */
	size_t n_waiting, cap_waiting;
	char why[80];         /* what killed it */
	char token[33];       /* shm: until it fetched its segment; then empty */
};

/* Sends r through w's transport, or holds it behind the records already held: order per
 * worker is the transport's order. A dying worker holds everything (its death hands the
 * records on). Returns 0; -ENOMEM, -EMSGSIZE, or -ENOBUFS (holding it would pass the
 * memory budget): nothing queued; or -EIO: the transport broke (r is held; the caller
 * fails the worker). */
int wk_push(struct worker *w, const struct tr_rec *r) __attribute__((warn_unused_result));
/* Moves held records into the transport while it takes them (none while moving).
 * Returns 1 when the held queue became empty now, 0 otherwise, -EIO when the transport
 * broke. */
int wk_retry(struct worker *w);
/* 1 when w holds records and only its own input (an ACK, MOVED, the RESUME its
 * reconnection lets out) can make room for them: no need to poll. */
int wk_awaits_input(const struct worker *w);
/* w acknowledged the first n counted records it was sent (tr_ops.ack). Returns 0,
 * -ERANGE (more than it was sent), or -ENOTSUP (its transport takes no ACK). */
int wk_ack(struct worker *w, uint64_t n);
/* Remembers that the connection id waits for w's held queue to empty. 0 or -ENOMEM. */
int wk_wait(struct worker *w, uint64_t conn);
/* Hands the waiting ids to the caller (who frees *ids), leaving none. */
void wk_take_waiting(struct worker *w, uint64_t **ids, size_t *n);
/* Frees w, its transport and everything it holds. */
void wk_free(struct worker *w);

#endif
