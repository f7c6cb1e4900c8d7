/*
 * wtctl: the worker side of the control channel, spoken by hand, for tests that must do
 * what libwsgw never would (docs/PROTOCOL.md is the contract they break or follow).
 *
 * - wt_ctl_*: a raw ZeroMQ DEALER on the gateway's control socket: any frames, bursts of
 *   them, HELLO without the rest of a worker.
 * - wt_shm_peer_*: a shm worker that attaches like libwsgw and then holds its segment's
 *   rings and file descriptors itself, so a test can write garbage into them or try to
 *   truncate them.
 * - wt_zw_*: a real zmq-transport echo worker (the test binary re-executed with
 *   --as-zmq-worker); like the Python library, it says BYE on SIGTERM and exits at once.
 * Every wait is bounded.
 */
#ifndef WTCTL_H
#define WTCTL_H

#include <stddef.h>
#include <stdint.h>

#include "shm/bell.h"
#include "shm/segment.h"
#include "tests/lib/wtproc.h"

#define WT_CTL_FRAMES 64

struct wt_ctl {
	void *ctx, *sock;
};

/* One multipart message as received: frames beyond WT_CTL_FRAMES are counted, not kept. */
struct wt_ctl_msg {
	int n;                         /* frames received */
	size_t len[WT_CTL_FRAMES];
	char *f[WT_CTL_FRAMES];        /* NUL-terminated copies (binary-safe up to len) */
};

/* Connects a DEALER to endpoint. 0 or -errno. */
int wt_ctl_connect(struct wt_ctl *c, const char *endpoint);
void wt_ctl_close(struct wt_ctl *c);
/* Sends n frames (lens NULL: each is a C string). 0 or -errno. */
int wt_ctl_send(struct wt_ctl *c, int n, const char *const *frames, const size_t *lens);
/* Receives one message within timeout_ms: 0, -ETIMEDOUT, -errno. */
int wt_ctl_recv(struct wt_ctl *c, struct wt_ctl_msg *m, int timeout_ms);
/* Receives until a message whose first frame is verb arrives (others are skipped). */
int wt_ctl_recv_verb(struct wt_ctl *c, const char *verb, struct wt_ctl_msg *m, int timeout_ms);
void wt_ctl_msg_free(struct wt_ctl_msg *m);
/* 1 when frame i of m equals s. */
int wt_ctl_frame_is(const struct wt_ctl_msg *m, int i, const char *s);
/* HELLO for pool over transport ("shm", "zmq"), then waits for WELCOME (kept in *welcome,
 * which the caller frees) or ERROR (-EPROTO). */
int wt_ctl_hello(struct wt_ctl *c, const char *pool, const char *transport,
		 struct wt_ctl_msg *welcome, int timeout_ms);

/* A shm worker whose rings the test holds. */
struct wt_shm_peer {
	struct wt_ctl ctl;
	unsigned id;
	int fds[3];            /* the segment's, the doorbell page's and the loop's eventfd */
	struct shm_seg *seg;
	struct shm_bell *bell;
	struct shm_ring to_w;  /* consumer */
	struct shm_ring to_gw; /* producer */
};

/* Attaches to pool as a shm worker and maps its segment. 0 or -errno / -EPROTO. */
int wt_shm_peer_attach(struct wt_shm_peer *p, const char *endpoint, const char *pool);
/* Rings the gateway's doorbell's futex, as a worker without the eventfd does (after
 * writing into to_gw behind the ring's back). */
void wt_shm_peer_ring(struct wt_shm_peer *p);
/* Wakes the gateway's loop through its eventfd, as current workers do. */
void wt_shm_peer_wake(struct wt_shm_peer *p);
void wt_shm_peer_close(struct wt_shm_peer *p);

/* Starts the zmq echo worker: this test binary with --as-zmq-worker. */
int wt_zw_start(struct wt_proc *p, const char *control, const char *pool, const char *log_path);
/* main() of a test binary calls this when argv[1] is "--as-zmq-worker". It echoes every
 * MESSAGE with SEND, logs "open ID" and "close ID CODE", heartbeats, acknowledges what it
 * handled (ACK every 32, and before it waits), and on SIGTERM sends BYE and exits 0 at
 * once. With --publish TOPIC it also publishes "0", "1", ... to TOPIC as fast as the
 * gateway takes them, --publish-max N of them (default 10000000). */
int wt_zw_main(int argc, char **argv);

#endif
