#include "gateway/tr_zmq.h"
#include "gateway/zmsg.h"
#include "wsgw/protocol.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* A record sent and not yet acknowledged: what salvage gives back if the worker dies. */
struct kept {
	struct kept *next;
	uint64_t conn;
	uint32_t len;
	uint16_t type, flags;
	uint64_t sent_ms;         /* for the age of the oldest unacknowledged */
	uint8_t body[];
};

struct tr_zmq {
	struct tr tr;
	void *sock;
	int *sent;
	struct kept *head, *tail; /* in the order sent */
	uint64_t counted;         /* counted records sent since WELCOME */
	uint64_t acked;           /* of them, acknowledged: head is record acked + 1 */
	uint64_t kept_bytes;      /* their bodies' bytes */
	struct tr_zmq_window win;
	int starved;              /* the last push was refused for the window */
	size_t ilen;
	uint8_t ident[];
};

/* The verbs the worker counts and acknowledges; ERROR answers a command and is not. */
static int counted(uint16_t type)
{
	return type == WSGW_OPEN || type == WSGW_MESSAGE || type == WSGW_CLOSE || type == WSGW_GONE;
}

static int zmq_push(struct tr *t, const struct tr_rec *r)
{
	struct tr_zmq *z = (struct tr_zmq *)t;
	if (!counted(r->type)) {
		*z->sent = 1;
		return zmsg_send_record(z->sock, z->ident, z->ilen, r);
	}
	size_t n = r->na + r->nb;
	uint64_t out = z->counted - z->acked;
	if (out && (out >= z->win.records || z->kept_bytes + n > z->win.bytes)) {
		z->starved = 1;
		return -EAGAIN;
	}
	z->starved = 0;
	/* Copied before the send: once ZeroMQ has it there is no taking it back. A size the
	 * client controls, so no abort on failure: the caller keeps it or refuses it. */
	struct kept *k = n <= UINT32_MAX ? malloc(sizeof(*k) + n) : NULL;
	if (!k)
		return -ENOMEM;
	k->next = NULL;
	k->conn = r->conn;
	k->len = (uint32_t)n;
	k->type = r->type;
	k->sent_ms = tr_now_ms();
	k->flags = r->flags;
	if (r->na)
		memcpy(k->body, r->a, r->na);
	if (r->nb)
		memcpy(k->body + r->na, r->b, r->nb);
	*z->sent = 1;
	int rc = zmsg_send_record(z->sock, z->ident, z->ilen, r);
	if (rc) {
		free(k);
		return rc;
	}
	if (z->tail)
		z->tail->next = k;
	else
		z->head = k;
	z->tail = k;
	z->counted++;
	z->kept_bytes += n;
	return 0;
}

static int zmq_awaits_input(struct tr *t)
{
	return ((struct tr_zmq *)t)->starved;
}

static int zmq_ack(struct tr *t, uint64_t n)
{
	struct tr_zmq *z = (struct tr_zmq *)t;
	if (n > z->counted)
		return -ERANGE;
	while (z->acked < n) {
		struct kept *k = z->head;
		z->head = k->next;
		if (!z->head)
			z->tail = NULL;
		z->kept_bytes -= k->len;
		z->acked++;
		free(k);
	}
	return 0;
}

static void zmq_flush(struct tr *t)
{
	(void)t; /* every push was sent at once */
}

static void zmq_stats(struct tr *t, struct tr_stats *out)
{
	struct tr_zmq *z = (struct tr_zmq *)t;
	out->bytes = z->kept_bytes;
	out->capacity = z->win.bytes;
	out->records = z->counted - z->acked;
	out->oldest_ms = z->head ? (uint32_t)(tr_now_ms() - z->head->sent_ms) : 0;
}

static void zmq_salvage(struct tr *t, tr_rec_fn *fn, void *arg)
{
	struct tr_zmq *z = (struct tr_zmq *)t;
	/* ZeroMQ's queues cannot be read back, but everything in them (and everything the
	 * worker took and did not finish) is still here: what the worker never acknowledged. */
	for (struct kept *k = z->head; k; k = k->next) {
		struct shm_rec r = { .payload = k->body, .len = k->len, .type = k->type,
				     .flags = k->flags, .conn = k->conn };
		fn(arg, &r);
	}
}

static void zmq_free(struct tr *t)
{
	struct tr_zmq *z = (struct tr_zmq *)t;
	struct kept *k, *next;
	for (k = z->head; k; k = next) {
		next = k->next;
		free(k);
	}
	free(z);
}

static const struct tr_ops zmq_ops = {
	.name = "zmq",
	.push = zmq_push,
	.awaits_input = zmq_awaits_input,
	.ack = zmq_ack,
	.flush = zmq_flush,
	.salvage = zmq_salvage,
	.stats = zmq_stats,
	.free = zmq_free,
};

int tr_zmq_new(void *sock, const uint8_t *ident, size_t ilen, int *sent,
	       const struct tr_zmq_window *win, struct tr **out)
{
	struct tr_zmq *z = calloc(1, sizeof(*z) + ilen);
	if (!z)
		return -ENOMEM;
	z->tr.ops = &zmq_ops;
	z->tr.max_len = UINT32_MAX;
	z->sock = sock;
	z->sent = sent;
	z->win = *win;
	if (!z->win.records)
		z->win.records = 1;
	z->ilen = ilen;
	memcpy(z->ident, ident, ilen);
	*out = &z->tr;
	return 0;
}

int tr_zmq_is(const struct tr *t)
{
	return t->ops == &zmq_ops;
}

uint64_t tr_zmq_counted(const struct tr *t)
{
	return ((const struct tr_zmq *)t)->counted;
}

uint64_t tr_zmq_unacked(const struct tr *t)
{
	const struct tr_zmq *z = (const struct tr_zmq *)t;
	return z->counted - z->acked;
}

void tr_zmq_count_from(struct tr *t, uint64_t n)
{
	struct tr_zmq *z = (struct tr_zmq *)t;
	if (!z->head)
		z->counted = z->acked = n;
}
