/*
 * How workers wake the gateway's loop: the doorbell page every shm worker maps (shm/bell.h)
 * and the loop's eventfd, which every shm worker also holds. The loop announces on the
 * page's doorbell that it is about to sleep in epoll_wait; a worker whose publish finds the
 * announcement writes the eventfd itself (shm_ring_set_data_eventfd): one wake-up, of the
 * loop. A busy loop polls the rings itself and nobody makes a syscall.
 *
 * A worker that did not get the eventfd (libwsgw from before it was passed, or a worker
 * that attached to such a gateway and followed a live upgrade here) rings the page's futex
 * instead. A futex cannot be waited on with epoll, so one thread sleeps on it and turns
 * each such ring into an eventfd write: the compatibility path, two wake-ups per ring.
 * Current workers never wake that thread (they do not bump the futex word).
 */
#ifndef WSGW_WAKER_H
#define WSGW_WAKER_H

#include "gateway/loop.h"
#include "shm/doorbell.h"

#include <stdint.h>

struct waker;

/* Creates the doorbell page (a sealed memfd), or with inherit_bell_fd > 0 maps the one a
 * live upgrade handed over (and keeps that fd); creates the eventfd, or with inherit_efd > 0
 * takes the one handed over (the workers hold it); adds the eventfd to l's epoll set and
 * starts the futex thread. Returns 0 and *out, or -errno (logged; nothing is left: an
 * inherit_bell_fd that was mapped is closed with the page, inherit_efd is closed). */
int waker_new(struct loop *l, int inherit_bell_fd, int inherit_efd, struct waker **out);
/* A live upgrade gave the page and the eventfd to the new process: the thread stops, this
 * loop stops watching the eventfd (and closes its copy; the workers and the new process
 * keep theirs) and the doorbell is never touched again here (waker_prepare and
 * waker_cancel do nothing). */
void waker_hand_off(struct waker *w);
/* Stops the thread, unmaps the page, closes the eventfd. NULL is a no-op. */
void waker_free(struct waker *w);

struct shm_doorbell *waker_doorbell(struct waker *w);
/* The page's memfd, which every shm worker receives with its segment. */
int waker_fd(const struct waker *w);
/* The loop's eventfd, which every shm worker receives too, and a live upgrade hands over;
 * -1 after waker_hand_off. */
int waker_efd(const struct waker *w);

/* Every iteration, after polling the rings: the records they gave. A flood of wake-ups
 * with no records behind them mutes the doorbell for a while (waker.c says how), and
 * waker_timeout_ms is then how often the loop must poll the rings itself: FLOOD_POLL_MS,
 * else -1. */
void waker_count(struct waker *w, unsigned records);
int waker_timeout_ms(const struct waker *w);

/* Before the loop sleeps: announces it on the doorbell (the caller then re-checks the
 * rings and calls waker_cancel when it found records). After it woke: waker_cancel. */
void waker_prepare(struct waker *w);
void waker_cancel(struct waker *w);

#endif
