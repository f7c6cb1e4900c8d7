/*
 * The live upgrade's wire format (docs/UPGRADE.md): the messages the old and the new
 * gateway exchange over their SEQPACKET socketpair, and the record of one client
 * connection. Pure code: no I/O, no allocation but the caller's struct ho_buf; every
 * length read is bounds-checked, so a record from another version of the binary (or a
 * corrupt one) is refused, never over-read. Any thread.
 */
#ifndef WSGW_HANDOVER_H
#define WSGW_HANDOVER_H

#include <stddef.h>
#include <stdint.h>

#include "gateway/frame.h"

/* The format this binary writes, and the oldest it reads. */
/* 2: subscriptions in connection records, WORKERS, and the LISTEN entries of the
 * runtime directory's lock, the control and attach sockets and the doorbell page. A
 * version-1 stream (a gateway without workers) reads as one with none of them.
 * 3: tagged entries after a connection record's subscriptions, the first the deflate
 * windows of a connection with context takeover (a version-2 binary would skip them as
 * a minor addition and go on with streams the client does not share: it must refuse);
 * zmq workers in WORKERS (a transport and a count at the end of a worker record, no
 * segment: the section's count is its records, its descriptors the shm workers' only);
 * PROGS, the [worker] instances. A version-1 or 2 stream reads as one with no entry, and
 * a version-2 worker record as a shm worker's.
 * 4: the event loop that serves a shm worker (spread-workers): a byte at the end of a
 * worker record, entry HO_E_LOOP in the record of a connection pinned to one, and LISTEN
 * entries HO_L_BELL and HO_L_EVFD for each loop (index). A version-3 binary would skip the
 * entry and pin the connection to another loop's worker of the same slot: it must refuse.
 * An older stream reads as one of loop 0's. */
#define HO_VERSION 4
#define HO_VERSION_MIN 1

#define HO_HDR 12            /* "WSGW", u16 version, u8 type, u8 0, u32 body length */
#define HO_BODY_MAX 65536    /* body bytes per message; a longer section goes on in DATA */
#define HO_FDS_MAX 253       /* descriptors per message (the kernel's SCM_MAX_FD) */
#define HO_ROUTE_MAX 255
#define HO_TEXT_MAX 512

enum ho_type {
	HO_HELLO = 1,  /* old → new: pid, listener count */
	HO_READY = 2,  /* new → old: set up, pid */
	HO_REFUSE = 3, /* new → old: a reason (text); the new exits */
	HO_LISTEN = 4, /* old → new: listener entries; their sockets as descriptors */
	HO_CONNS = 5,  /* old → new: a batch: section length, then connection records; sockets */
	HO_DATA = 6,   /* old → new: the rest of a section too long for one message */
	HO_ACK = 7,    /* new → old: a batch imported */
	HO_END = 8,    /* old → new: no more batches; the old's next connection id */
	HO_TAKEN = 9,  /* new → old: everything is the new's now */
	HO_WORKERS = 10, /* old → new: a section (as CONNS): next worker id, worker records; the
			  * shm workers' segments, in the order of their records */
	HO_PROGS = 11, /* old → new: a section (as CONNS): the running [worker] instances; pidfds */
	HO_HISTORY = 12, /* old → new: a section (as CONNS): the topics' histories; no descriptors */
};

/* A growable byte buffer. Encoders append; -ENOMEM leaves it as it was. */
struct ho_buf {
	uint8_t *p;
	size_t len, cap;
};
void ho_buf_free(struct ho_buf *b);

/* A message header. */
struct ho_hdr {
	unsigned version, type;
	uint32_t len; /* body bytes that follow */
};
/* Appends a header for type with body length len (HO_VERSION). 0 or -ENOMEM. */
int ho_put_hdr(struct ho_buf *b, unsigned type, uint32_t len) __attribute__((warn_unused_result));
/* The same with an explicit version (tests; a process announcing another version). */
int ho_put_hdr_v(struct ho_buf *b, unsigned version, unsigned type, uint32_t len)
	__attribute__((warn_unused_result));
/* Reads the header at p[0..n). 0; -EBADMSG: shorter than HO_HDR, or the body is not n -
 * HO_HDR bytes long or longer than HO_BODY_MAX; -EPROTO: no magic (not our peer). The
 * version is returned as read: the caller decides with ho_version_ok. */
int ho_get_hdr(const uint8_t *p, size_t n, struct ho_hdr *h) __attribute__((warn_unused_result));
/* 1 when this binary reads version v (HO_VERSION_MIN..HO_VERSION), else 0. */
int ho_version_ok(unsigned v);

/* HELLO and READY carry a pid and a count. */
struct ho_hello {
	uint32_t pid;
	uint32_t count; /* HELLO: listeners (admin included); READY: 0 */
	uint64_t next_id; /* END: the old's next connection id; otherwise 0 */
};
int ho_put_hello(struct ho_buf *b, const struct ho_hello *h) __attribute__((warn_unused_result));
int ho_get_hello(const uint8_t *p, size_t n, struct ho_hello *h) __attribute__((warn_unused_result));

/* A CONNS message's body starts with the batch: how many records (and sockets), and the
 * section's bytes (this message's rest and the DATA messages after it). 12 bytes. */
struct ho_batch {
	uint32_t count;
	uint64_t bytes;
};
#define HO_BATCH 12
int ho_put_batch(struct ho_buf *b, const struct ho_batch *h) __attribute__((warn_unused_result));
/* 0 or -EBADMSG (short, or more records than HO_FDS_MAX). */
int ho_get_batch(const uint8_t *p, size_t n, struct ho_batch *h) __attribute__((warn_unused_result));

/* One listening socket: which of the config's listeners it is. */
enum ho_listen_kind {
	HO_L_CLIENT = 0,  /* cfg->listen[index] */
	HO_L_ADMIN = 1,   /* the admin endpoint */
	HO_L_LOCK = 2,    /* version 2: the runtime directory's lock file */
	HO_L_CONTROL = 3, /* the control socket's listening socket (ipc://) */
	HO_L_ATTACH = 4,  /* the attach socket's */
	HO_L_BELL = 5,    /* the doorbell page's memfd */
	HO_L_EVFD = 6,    /* the loop's eventfd, which the shm workers write to wake it; a
			   * process that sends none (older) leaves the new one making its own,
			   * and its workers ringing the futex (gateway/waker.h). BELL and EVFD:
			   * index is the loop's (version 4; 0 before) */
	HO_L_KINDS = 7,
};
struct ho_listen {
	uint8_t admin; /* enum ho_listen_kind */
	uint8_t index;
	uint8_t tls;
};
int ho_put_listen(struct ho_buf *b, const struct ho_listen *l) __attribute__((warn_unused_result));
/* Reads one entry at p[0..n); *used gets its size. 0 or -EBADMSG. */
int ho_get_listen(const uint8_t *p, size_t n, struct ho_listen *l, size_t *used)
	__attribute__((warn_unused_result));

/* A byte range of the buffer being encoded or decoded. */
struct ho_bytes {
	const uint8_t *p;
	size_t n;
};

/* The state of one client connection; its socket travels beside it. */
struct ho_conn {
	uint64_t id;
	uint8_t state, flags; /* enum conn_state, enum conn_flag as the old had them */
	uint8_t pool, slow;
	uint16_t worker;
	int32_t deadline_ms;  /* deadline - now in the old: may be negative (overdue) */
	struct ho_bytes route; /* the route's prefix (indexes may differ in the new config) */
	uint8_t pmd[4];       /* struct pmd_params, field by field: on, server, client bits, bits */
	struct ws_rx rx;
	struct ho_bytes in;   /* the unparsed tail, <= WS_RX_TAIL_MAX */
	struct ho_bytes msg;  /* a message being assembled */
	uint8_t out_started;  /* out_head is the rest of a frame partly written */
	struct ho_bytes out_head, out_rest; /* queued output, in order */
	struct ho_bytes fields; /* the OPEN fields a worker route keeps */
	struct ho_bytes subs;   /* version 2: its subscriptions, ho_put_sub's, in order */
	/* Version 3, entry HO_E_WINDOWS, written when either is not empty: permessage-deflate's
	 * windows (context takeover), the compressor's (to the client) and the decompressor's
	 * (from it), HO_WINDOW_MAX bytes each at most. */
	struct ho_bytes win_to, win_from;
	/* Entry HO_E_PEER: the client's address as the old process's door knew it (family 0:
	 * none sent; the new one then asks getpeername). */
	uint8_t peer_family;    /* 4 or 6 */
	uint16_t peer_port;
	uint8_t peer_addr[16];  /* 4 bytes of it for IPv4 */
	/* Version 4, entry HO_E_LOOP, written when not 0: the loop whose worker (of slot
	 * `worker` in that loop's pools) it is pinned to. */
	uint8_t loop;
};

/* The tagged entries after a record's subscriptions: u8 tag, u32 length, that many bytes.
 * An entry of a tag this binary does not know is skipped by its length (a minor addition
 * an older reader may ignore); one it must not ignore comes with a version bump. */
enum ho_entry {
	HO_E_WINDOWS = 1, /* u16 length, the window to the client; u16 length, from it */
	HO_E_PEER = 2,    /* u8 family (4 or 6), u16 port, the 4 or 16 address bytes */
	HO_E_LOOP = 3,    /* version 4: u8, the loop of the worker it is pinned to */
};
#define HO_WINDOW_MAX 32768

/* One subscription of a connection: its topic and `after` (gateway/topics.h). */
struct ho_sub {
	struct ho_bytes topic; /* 1..255 bytes */
	uint64_t after;
};
/* Appends one to a connection's subs. 0, -EINVAL (topic length), -ENOMEM. */
int ho_put_sub(struct ho_buf *b, const struct ho_sub *s) __attribute__((warn_unused_result));
/* Reads the next of subs[*off..n) into *s: 1, 0 at the end, -EBADMSG. */
int ho_next_sub(const struct ho_bytes *subs, size_t *off, struct ho_sub *s)
	__attribute__((warn_unused_result));

/* A bare little-endian u32 (the WORKERS section's next worker id). 0, -ENOMEM / -EBADMSG. */
int ho_put_u32(struct ho_buf *b, uint32_t v) __attribute__((warn_unused_result));
int ho_get_u32(const uint8_t *p, size_t n, uint32_t *v) __attribute__((warn_unused_result));

#define HO_IDENT_MAX 255
#define HO_POOL_MAX 64

/* One worker. A shm worker's segment memfd travels beside it; a zmq worker has none:
 * it was quiesced (MOVE, MOVED: docs/UPGRADE.md) and all it needs is its count. */
struct ho_worker {
	uint32_t id, pid;
	uint16_t slot;          /* pool.c's slot: connection records name it */
	struct ho_bytes pool;   /* its pool's name */
	struct ho_bytes ident;  /* its routing id on the control socket */
	struct ho_bytes token;  /* the attach token it has not used yet; empty when used */
	struct ho_bytes held;   /* records held for it, ho_put_held's, in order */
	uint8_t zmq;            /* version 3: 1 for the zmq transport (0 in version 2) */
	uint64_t counted;       /* version 3, zmq: counted records it was sent and acknowledged
				 * (all of them: it said MOVED); the new process counts on */
	uint8_t loop;           /* version 4: the loop whose pools serve it (0 in version 3) */
};
int ho_put_worker(struct ho_buf *b, const struct ho_worker *w) __attribute__((warn_unused_result));
int ho_get_worker(const uint8_t *p, size_t n, struct ho_worker *w, size_t *used)
	__attribute__((warn_unused_result));
/* A held record: type, flags, connection, body. */
struct ho_held {
	uint16_t type, flags;
	uint64_t conn;
	struct ho_bytes body;
};
int ho_put_held(struct ho_buf *b, const struct ho_held *h) __attribute__((warn_unused_result));
/* 1, 0 at the end, -EBADMSG. */
int ho_next_held(const struct ho_bytes *held, size_t *off, struct ho_held *h)
	__attribute__((warn_unused_result));
/* One running instance of a [worker NAME] program; its pidfd travels beside it. */
struct ho_prog {
	struct ho_bytes name;   /* the [worker NAME] section's name */
	uint32_t instance, pid;
	uint32_t ran_ms;        /* since it was started */
	uint32_t restarts, delay_ms; /* its backoff as the old had it */
};
int ho_put_prog(struct ho_buf *b, const struct ho_prog *g) __attribute__((warn_unused_result));
int ho_get_prog(const uint8_t *p, size_t n, struct ho_prog *g, size_t *used)
	__attribute__((warn_unused_result));
/* One topic's history (gateway/history.h) and the messages it keeps. */
struct ho_hist {
	struct ho_bytes topic;  /* 1..255 bytes */
	uint64_t epoch, last;
	uint32_t quiet_ms, max, ttl_ms;
	struct ho_bytes msgs;   /* ho_put_hist_msg's, oldest first */
};
int ho_put_hist(struct ho_buf *b, const struct ho_hist *h) __attribute__((warn_unused_result));
int ho_get_hist(const uint8_t *p, size_t n, struct ho_hist *h, size_t *used)
	__attribute__((warn_unused_result));
/* One kept message: its offset, age, op, stamp flag and payload. */
struct ho_hist_msg {
	uint64_t offset;
	uint32_t age_ms;
	uint8_t op, stamp;
	struct ho_bytes payload;
};
int ho_put_hist_msg(struct ho_buf *b, const struct ho_hist_msg *m) __attribute__((warn_unused_result));
/* The next of msgs[*off..n): 1, 0 at the end, -EBADMSG. */
int ho_next_hist_msg(const struct ho_bytes *msgs, size_t *off, struct ho_hist_msg *m)
	__attribute__((warn_unused_result));
/* Appends c's record. 0, -EINVAL (a field out of range: route or tail too long, a deflate
 * window over HO_WINDOW_MAX), -ENOMEM. */
int ho_put_conn(struct ho_buf *b, const struct ho_conn *c) __attribute__((warn_unused_result));
/* Reads one record at p[0..n); the byte ranges of *c point into p. *used gets its size.
 * 0, or -EBADMSG (truncated, or a field out of range: an entry cut short or longer than
 * its record, a deflate window over HO_WINDOW_MAX or not filling its entry). */
int ho_get_conn(const uint8_t *p, size_t n, struct ho_conn *c, size_t *used)
	__attribute__((warn_unused_result));

#endif
