/* libwsgw: write a wsgw worker in C.
 *
 * A worker attaches to a pool of a running gateway, receives the events of the connections
 * pinned to it (OPEN, MESSAGE, CLOSE) through a shared-memory ring, and answers with SEND and
 * CLOSE. Connections subscribe to topics (byte strings of 1 to WSGW_TOPIC_MAX bytes); a
 * publish reaches every subscriber, whichever worker holds it. One thread per struct
 * wsgw_worker; nothing here takes a lock or blocks unless told.
 * docs/PROTOCOL.md describes what travels underneath.
 *
 *	struct wsgw_worker *w;
 *	if (wsgw_attach(&(struct wsgw_options){ .pool = "chat" }, &w)) exit(1);
 *	for (;;) {
 *		struct wsgw_event ev[64];
 *		int n = wsgw_wait(w, ev, 64, -1);
 *		for (int i = 0; i < n; i++)
 *			if (ev[i].type == WSGW_EV_MESSAGE)
 *				wsgw_send(w, ev[i].conn, ev[i].binary, ev[i].data, ev[i].len);
 *	}
 */
#ifndef WSGW_WORKER_H
#define WSGW_WORKER_H

#include <stddef.h>
#include <stdint.h>

#include "wsgw/protocol.h"

#ifdef __cplusplus
extern "C" {
#endif

struct wsgw_worker;

struct wsgw_options {
	/* The gateway's control endpoint; NULL: $WSGW_CONTROL, else the gateway's default
	 * (ipc:///run/wsgw/control for root, $XDG_RUNTIME_DIR/wsgw/control, /tmp/wsgw-UID/control). */
	const char *control;
	const char *pool;      /* the pool to serve (required) */
	int attach_timeout_ms; /* how long wsgw_attach waits for WELCOME; 0: 5000 ms, < 0: no limit */
};

enum wsgw_event_type {
	WSGW_EV_OPEN = 1, /* conn is yours: fields via wsgw_field(); resumed / authorize flags */
	WSGW_EV_MESSAGE,  /* a whole client message: data, len, binary */
	WSGW_EV_CLOSE,    /* the client is gone: code, data = reason; the last event of conn */
	WSGW_EV_GONE,     /* a command you sent named a connection that no longer exists */
	WSGW_EV_ERROR,    /* a command you sent was refused: data = reason */
	WSGW_EV_RESET,    /* the gateway restarted and this worker attached again: every
	                   * connection you knew is gone (you get no CLOSE for them) */
	WSGW_EV_TOPIC,    /* the answer to wsgw_query(): conn = your query_id; data, len: the
	                   * raw answer, read with wsgw_topic_info() and wsgw_topic_conns() */
	WSGW_EV_STAT,     /* the answer to wsgw_stat(): conn; read with wsgw_stat_info() (a
	                   * connection that is not yours is answered with WSGW_EV_GONE) */
};

struct wsgw_event {
	int type;
	uint64_t conn;
	int binary;         /* MESSAGE */
	int resumed;        /* OPEN: moved to you from a worker that died */
	int authorize;      /* OPEN: answer wsgw_accept() or wsgw_reject() */
	unsigned code;      /* CLOSE: the WebSocket close code */
	const void *data;   /* see the type; points into shared memory: valid until the next
	                     * wsgw_wait() or wsgw_detach(), read-only */
	size_t len;
};

/* Attaches to the gateway: HELLO, WELCOME, maps and validates the segment.
 * Returns 0 and *out, -EINVAL (no pool), -ETIMEDOUT (no answer in time), -EPROTO (the
 * gateway refused: wsgw_error() of a NULL worker is not available, so the reason is
 * written to stderr), -EBADMSG (the segment failed validation), or another -errno. */
int wsgw_attach(const struct wsgw_options *o, struct wsgw_worker **out)
	__attribute__((warn_unused_result));

/* Says BYE (the gateway moves this worker's connections to the rest of the pool at once)
 * and frees everything. NULL is a no-op. */
void wsgw_detach(struct wsgw_worker *w);

/* Waits up to timeout_ms (-1: no limit, 0: do not wait) for events and stores at most max of
 * them in ev. Before waiting it releases the previous batch (its data pointers die) and
 * wakes the gateway for the commands sent since the last call. Heartbeats and re-attaching
 * after a gateway restart happen in here: call it at least every heartbeat interval.
 * Returns the number of events (0 on timeout), or -EINTR. */
int wsgw_wait(struct wsgw_worker *w, struct wsgw_event *ev, int max, int timeout_ms);

/* An OPEN event's field (":path", ":query", ":peer", ":protocols", ":protocol", or a
 * forwarded header's lowercase name). Returns 1 and *val, *len (not NUL-terminated, valid
 * as ev->data is), or 0 when absent or malformed. */
int wsgw_field(const struct wsgw_event *ev, const char *name, const char **val, size_t *len);

/* Queues a message for a client. Returns 0, -EMSGSIZE (larger than the ring allows),
 * -ETIMEDOUT (the gateway did not make room within 5 s), -EPIPE (not attached right now). */
int wsgw_send(struct wsgw_worker *w, uint64_t conn, int binary, const void *p, size_t n);

/* In-place send: room for up to max bytes in the ring, written directly, then published by
 * wsgw_send_commit() with the bytes actually written (<= max). NULL when wsgw_send() would
 * fail (errno set). Nothing else may be sent between the two calls. */
void *wsgw_send_begin(struct wsgw_worker *w, size_t max);
int wsgw_send_commit(struct wsgw_worker *w, uint64_t conn, int binary, size_t n);

/* Closes a client with a WebSocket close code (1000, 1001, 1003, 1007-1011, 3000-4999) and
 * a reason of at most 123 bytes. The CLOSE event for conn still follows. Returns as wsgw_send. */
int wsgw_close(struct wsgw_worker *w, uint64_t conn, unsigned code, const char *reason);

/* Answers an authorize OPEN: let the client in, optionally with a subprotocol (NULL: none)
 * and extra response headers (NULL-terminated array of "Name: value", or NULL). */
int wsgw_accept(struct wsgw_worker *w, uint64_t conn, const char *protocol,
		const char *const *headers);
/* Answers an authorize OPEN with an HTTP status (400-599) and a short reason. */
int wsgw_reject(struct wsgw_worker *w, uint64_t conn, unsigned status, const char *reason);

/* Topics and fan-out. Like every command, these are queued until wsgw_flush() or the next
 * wsgw_wait(), and return 0, -EMSGSIZE (larger than the ring allows), -ETIMEDOUT (the
 * gateway did not make room within 5 s) or -EPIPE (not attached right now); the ones that
 * take a topic also -EINVAL when it is empty or longer than WSGW_TOPIC_MAX bytes (then
 * nothing was queued). The topic, ids and data are copied: the caller keeps them. What
 * the gateway makes of a command comes back as an event: WSGW_EV_GONE for a connection
 * that is not (or no longer) yours, WSGW_EV_ERROR when it refused the command. */

/* Subscribes conn, one of your connections, to topic: from now on it gets what is
 * published there. Subscribing twice is subscribing once; the subscription ends with the
 * connection (no wsgw_unsubscribe needed). */
int wsgw_subscribe(struct wsgw_worker *w, uint64_t conn, const void *topic, size_t len);
/* Ends conn's subscription to topic; nothing published after it reaches conn. */
int wsgw_unsubscribe(struct wsgw_worker *w, uint64_t conn, const void *topic, size_t len);

/* Sends one message (text, or binary when binary != 0; n bytes at data) to every
 * subscriber of topic, pinned to any worker, except exclude_conn (0: none; the sender of
 * a chat message, say). Each subscriber gets a topic's messages in the order they were
 * published. A topic with no subscriber takes it and drops it. */
int wsgw_publish(struct wsgw_worker *w, const void *topic, size_t len, int binary,
		 const void *data, size_t n, uint64_t exclude_conn);

/* Sends one message to each of nconns connections (yours) at conns: one command for any
 * number of them (0: nothing is sent, returns 0). A list too long for one record is sent
 * as several, each with the whole message; if one of them fails, the ones before it are
 * queued already (the return says why the rest was not). -EMSGSIZE when even one id with
 * the message does not fit a record. */
int wsgw_send_many(struct wsgw_worker *w, const uint64_t *conns, size_t nconns, int binary,
		   const void *data, size_t n);

/* Asks how many connections subscribe to topic. The answer is a WSGW_EV_TOPIC event whose
 * conn is query_id (any number you choose, to match answers to questions). */
int wsgw_query(struct wsgw_worker *w, const void *topic, size_t len, uint64_t query_id);
/* Reads a WSGW_EV_TOPIC event: the topic (*topic points into ev->data, *topic_len bytes)
 * and *subscribers, the number of connections subscribed when the gateway answered.
 * Any pointer may be NULL. Returns 0, -EINVAL (not a TOPIC event) or -EBADMSG (a
 * malformed answer). */
int wsgw_topic_info(const struct wsgw_event *ev, const void **topic, size_t *topic_len,
		    uint32_t *subscribers);
/* Copies up to max of a WSGW_EV_TOPIC event's subscriber ids into ids. Returns how many
 * the gateway listed — every subscriber when there are at most WSGW_TOPIC_LIST_MAX, none
 * beyond — which may be more than max; 0 for another event or a malformed one. */
size_t wsgw_topic_conns(const struct wsgw_event *ev, uint64_t *ids, size_t max);

/* Asks how much the gateway holds for conn, one of your connections: a WSGW_EV_STAT event
 * answers (WSGW_EV_GONE when conn is not yours). */
int wsgw_stat(struct wsgw_worker *w, uint64_t conn);
/* Reads a WSGW_EV_STAT event: *queued, the bytes queued for the client and not yet
 * written to its socket, and *age_ms, how long the oldest of them has waited (0 when
 * nothing is queued). Either pointer may be NULL. Returns 0, -EINVAL (not a STAT event)
 * or -EBADMSG (a malformed answer). */
int wsgw_stat_info(const struct wsgw_event *ev, uint64_t *queued, uint32_t *age_ms);

/* Publishes the commands sent so far and wakes the gateway if it sleeps. Commands are
 * queued, not visible, until this or the next wsgw_wait(): one publication per batch. */
int wsgw_flush(struct wsgw_worker *w);

/* This worker's id as the gateway numbered it (changes when it attaches again). */
unsigned wsgw_worker_id(const struct wsgw_worker *w);

#ifdef __cplusplus
}
#endif

#endif
