/*
 * The gateway's doorbell and the thread that watches it. A futex cannot be waited on
 * with epoll, so one thread sleeps on the doorbell every worker rings (shm/bell.h) and
 * turns each ring into an eventfd event in the loop's epoll set. Only a ring that finds
 * the loop asleep costs syscalls: a busy loop polls the rings itself.
 */
#ifndef WSGW_WAKER_H
#define WSGW_WAKER_H

#include "gateway/loop.h"
#include "shm/doorbell.h"

struct waker;

/* Creates the doorbell page (a sealed memfd), or with inherit_fd > 0 maps the one a live
 * upgrade handed over (and keeps that fd), registers the eventfd with l and starts the
 * thread. Returns 0 and *out, or -errno (logged; nothing is left: an inherit_fd that was
 * mapped is closed with the page). */
int waker_new(struct loop *l, int inherit_fd, struct waker **out);
/* A live upgrade gave the page to the new process: the thread stops and the doorbell is
 * never touched again here (waker_prepare and waker_cancel do nothing). */
void waker_hand_off(struct waker *w);
/* Stops the thread, unmaps the page. NULL is a no-op. */
void waker_free(struct waker *w);

struct shm_doorbell *waker_doorbell(struct waker *w);
/* The page's memfd, which every shm worker receives with its segment. */
int waker_fd(const struct waker *w);

/* Before the loop sleeps: announces it on the doorbell (the caller then re-checks the
 * rings and calls waker_cancel when it found records). After it woke: waker_cancel. */
void waker_prepare(struct waker *w);
void waker_cancel(struct waker *w);

#endif
