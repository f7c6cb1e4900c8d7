/*
 * The event loop: the bottom layer every other part of the gateway stands on. It owns the
 * epoll set, the millisecond clock, the shared read buffer, the end-of-batch list of
 * connections with output to flush, and the settings in force. It imports nothing above
 * it: the parts above register callbacks (struct loop_conn_ops for client connections,
 * struct loop_src for every other fd, struct loop_hooks for work that is not an fd event).
 *
 * One iteration, in this order (docs/ARCHITECTURE.md walks it with a message):
 *   1. hooks' poll: worker input (rings, control messages) is dispatched here, and only here
 *   2. hooks' flush, then client output: one writev per marked connection; the dead freed
 *   3. epoll_wait, bounded by the hooks' timeouts and the deadline sweep; hooks' sleep and
 *      wake around it; before a sleep, a spin of an adaptive budget while hooks' pending
 *      can say whether input waits (shm/spin.h, [gateway] wake-spin)
 *   4. every event: client connections to the conn ops, other fds to their source
 *   5. hooks' flush, then client output again
 *   6. when due, the sweep: each connection's deadline, then the hooks' tick
 * A loop and everything registered with it belong to one thread. Other threads reach it only
 * through loop_post and loop_call (with --loops N there are N loops, gateway/loops.h).
 */
#ifndef WSGW_LOOP_H
#define WSGW_LOOP_H

#include <stddef.h>
#include <stdint.h>

#include "gateway/config.h"

struct conn;
struct loop;

/* Client connections (struct conn, tag EP_CONN): the session layer's callbacks. */
struct loop_conn_ops {
	/* epoll reported events on c's socket (EPOLLERR/EPOLLHUP count as readable). */
	void (*event)(void *arg, struct conn *c, uint32_t events);
	/* Every queued byte of c was written. */
	void (*drained)(void *arg, struct conn *c);
	/* c's deadline (c->deadline, loop clock) passed. */
	void (*deadline)(void *arg, struct conn *c);
	/* c's socket is about to be closed: release what c holds, tell whoever must know. */
	void (*closing)(void *arg, struct conn *c);
};

/* Any other fd in the epoll set: its struct embeds this first. */
struct loop_src {
	uint8_t kind; /* EP_SRC, set by loop_add */
	void (*fn)(struct loop_src *src, uint32_t events);
};

/* Work of a part of the gateway that is not one fd's event. Any member may be NULL. */
struct loop_hooks {
	void *arg;
	/* Step 1: dispatch input that no fd event announces. Returns the amount handled
	 * (> 0: the loop does not sleep before looking again). */
	int (*poll)(void *arg);
	/* Steps 2 and 5: the end of a batch, before client output is written. */
	void (*flush)(void *arg);
	/* Milliseconds until the part needs the loop again, or -1. */
	int (*timeout_ms)(void *arg);
	/* About to sleep: return 1 when input is waiting (the loop then does not sleep). */
	int (*sleep)(void *arg);
	/* Woke up (after epoll_wait, whether it slept or not). */
	void (*wake)(void *arg);
	/* Step 6, a few times per shortest timeout. */
	void (*tick)(void *arg);
	/* Whether poll would find input: a few loads, no side effects. The loop calls it while
	 * it spins before a sleep; a part that can say it makes the loop spin for it. */
	int (*pending)(void *arg);
};

/* Creates a loop for the settings in cfg (which the caller keeps alive and may change in
 * place between iterations, e.g. on SIGHUP; then call loop_set_config). Returns NULL with
 * errno set (the reason is logged). */
struct loop *loop_new(struct gw_config *cfg);
/* The same for loop number index (0 is the main thread's; it names the loop in
 * struct conn). */
struct loop *loop_new_index(struct gw_config *cfg, unsigned index);
/* Sets who handles client connections (before the first is added). */
void loop_set_conn_ops(struct loop *l, const struct loop_conn_ops *ops, void *arg);
/* Closes the epoll fd and frees the loop. Connections must be gone (loop_close_all). */
void loop_free(struct loop *l);

/* Runs iterations until loop_stop. Returns 0, or -errno when epoll_wait failed (logged). */
int loop_run(struct loop *l);
/* Ends loop_run after the current iteration. */
void loop_stop(struct loop *l);

/* Registers hooks (copied). At most 8 sets. Returns 0 or -ENOSPC. */
int loop_add_hooks(struct loop *l, const struct loop_hooks *h);
/* Adds fd to the epoll set for events, dispatching to src (not copied: it must live until
 * loop_del or the fd is closed). Returns 0 or -errno (logged). */
int loop_add(struct loop *l, int fd, uint32_t events, struct loop_src *src);
/* Changes the events of a registered fd. Returns 0 or -errno. */
int loop_mod(struct loop *l, int fd, uint32_t events, struct loop_src *src);
/* Removes fd from the epoll set (it stays open). */
void loop_del(struct loop *l, int fd);

/* --- client connections --- */

/* Registers a connection's socket (edge-triggered, readable; writable too while its last
 * write came up short): c now belongs to l. Returns 0 or -errno. */
int loop_add_conn(struct loop *l, struct conn *c);
/* The first half of a move to loop to: c leaves l's epoll set and end-of-batch list (it
 * must have nothing queued) and belongs to no loop until loop_add_conn there; until then
 * nobody touches it, and conn_loop says CONN_MOVING | to. */
void loop_detach_conn(struct loop *l, struct conn *c, unsigned to);
/* Queues c for the end of the batch: its output is flushed then (a dead c is freed). */
void loop_mark(struct loop *l, struct conn *c);
/* Closes c's socket now (conn ops' closing first); c is freed at the end of the batch.
 * reason goes to the debug log. Idempotent. */
void loop_close(struct loop *l, struct conn *c, const char *reason);
/* The lingering close: once c's queued bytes are out, the conn ops' drained shuts down the
 * write side and c is read until EOF or the close deadline (closing with unread input
 * would send RST and could destroy the last bytes in flight). */
void loop_linger(struct loop *l, struct conn *c);
/* Closes every connection now and frees them (shutdown). */
void loop_close_all(struct loop *l);
/* Writes the output of every marked connection now (the end of a batch). */
void loop_flush(struct loop *l);

/* --- what the loop offers the parts above --- */

/* --- other threads --- */

/* Runs fn(l, arg) on l's thread at its next iteration, in the order posted. Any thread.
 * Returns 0 or -ENOMEM. */
int loop_post(struct loop *l, void (*fn)(struct loop *l, void *arg), void *arg);
/* loop_post, then waits until fn has run. Never from l's own thread, and only while l
 * runs (a loop that has stopped never answers). */
int loop_call(struct loop *l, void (*fn)(struct loop *l, void *arg), void *arg);
/* The loop's number; the connections it owns (any thread). */
unsigned loop_index(const struct loop *l);
unsigned long loop_conns(const struct loop *l);

/* Milliseconds since the first loop started (the same clock on every loop), read once per
 * batch. */
uint32_t loop_now(const struct loop *l);
/* The settings in force. */
const struct gw_config *loop_cfg(const struct loop *l);
/* Re-reads the settings that shape the loop (the sweep interval) after cfg changed. */
void loop_set_config(struct loop *l);
/* The shared read buffer: WS_RX_TAIL_MAX + *cap bytes, for a connection's kept tail (at
 * most WS_RX_TAIL_MAX bytes, at the start) followed by up to *cap bytes of one read. Its
 * content is the caller's until it returns to the loop. */
uint8_t *loop_rbuf(struct loop *l, size_t *cap);

#endif
