#include "gateway/tr_zmq.h"
#include "gateway/zmsg.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

struct tr_zmq {
	struct tr tr;
	void *sock;
	int *sent;
	size_t ilen;
	uint8_t ident[];
};

static int zmq_push(struct tr *t, const struct tr_rec *r)
{
	struct tr_zmq *z = (struct tr_zmq *)t;
	*z->sent = 1;
	return zmsg_send_record(z->sock, z->ident, z->ilen, r);
}

static void zmq_flush(struct tr *t)
{
	(void)t; /* every push was sent at once */
}

static void zmq_salvage(struct tr *t, tr_rec_fn *fn, void *arg)
{
	/* What ZeroMQ queued to the worker cannot be read back. */
	(void)t, (void)fn, (void)arg;
}

static void zmq_free(struct tr *t)
{
	free(t);
}

static const struct tr_ops zmq_ops = {
	.name = "zmq",
	.push = zmq_push,
	.flush = zmq_flush,
	.salvage = zmq_salvage,
	.free = zmq_free,
};

int tr_zmq_new(void *sock, const uint8_t *ident, size_t ilen, int *sent, struct tr **out)
{
	struct tr_zmq *z = malloc(sizeof(*z) + ilen);
	if (!z)
		return -ENOMEM;
	z->tr.ops = &zmq_ops;
	z->tr.max_len = UINT32_MAX;
	z->sock = sock;
	z->sent = sent;
	z->ilen = ilen;
	memcpy(z->ident, ident, ilen);
	*out = &z->tr;
	return 0;
}
