#include "gateway/worker.h"
#include "gateway/budget.h"
#include "gateway/log.h"
#include "wsgw/protocol.h"
#include "gateway/stats.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

struct wk_held *wk_held_new(const struct tr_rec *r)
{
	size_t n = r->na + r->nb;
	if (n > UINT32_MAX)
		return NULL;
	struct wk_held *h = malloc(sizeof(*h) + n);
	if (!h)
		return NULL;
	h->next = NULL;
	h->conn = r->conn;
	h->len = (uint32_t)n;
	h->type = r->type;
	h->flags = r->flags;
	bud_charge(BUD_HELD, sizeof(*h) + n);
	if (r->na)
		memcpy(h->body, r->a, r->na);
	if (r->nb)
		memcpy(h->body + r->na, r->b, r->nb);
	return h;
}

void wk_held_free(struct wk_held *h)
{
	if (!h)
		return;
	bud_credit(BUD_HELD, sizeof(*h) + h->len);
	free(h);
}

void wk_list_append(struct wk_list *l, struct wk_held *h)
{
	h->next = NULL;
	if (l->tail)
		l->tail->next = h;
	else
		l->head = h;
	l->tail = h;
	l->n++;
	l->bytes += sizeof(*h) + h->len;
}

struct wk_held *wk_list_pop(struct wk_list *l)
{
	struct wk_held *h = l->head;
	if (!h)
		return NULL;
	l->head = h->next;
	if (!l->head)
		l->tail = NULL;
	l->n--;
	l->bytes -= sizeof(*h) + h->len;
	h->next = NULL;
	return h;
}

void wk_list_clear(struct wk_list *l)
{
	struct wk_held *h;
	while ((h = wk_list_pop(l)))
		wk_held_free(h);
}

static int hold(struct worker *w, const struct tr_rec *r)
{
	/* Client messages are refused past the budget; the records that say what happened to
	 * a connection (OPEN, CLOSE) must reach its worker, and replies are bounded by the
	 * worker's share. */
	if (r->type == WSGW_MESSAGE && !bud_room(BUD_HELD, sizeof(struct wk_held) + r->na + r->nb))
		return -ENOBUFS;
	struct wk_held *h = wk_held_new(r);
	if (!h)
		return -ENOMEM;
	wk_list_append(&w->held, h);
	return 0;
}

int wk_push(struct worker *w, const struct tr_rec *r)
{
	if (r->na + r->nb > w->tr->max_len)
		return -EMSGSIZE;
	if (w->state != WK_ALIVE || w->held.head || w->moving)
		return hold(w, r);
	int rc = w->tr->ops->push(w->tr, r);
	switch (rc) {
	case 0:
	case -EMSGSIZE:
		return rc;
	case -EAGAIN:
		/* A zmq worker's full window is flow control doing its job, many times a second
		 * under load: counted, not logged. */
		w->quiet_hold = w->tr->ops->awaits_input && w->tr->ops->awaits_input(w->tr);
		if (w->quiet_hold) {
			stats.window_waits++;
			log_debug("worker %u: its window is full, pausing its clients until it acknowledges",
				  w->id);
		} else {
			log_warn(0, "worker %u: its %s channel is full, pausing its clients", w->id,
				 w->tr->ops->name);
		}
		return hold(w, r);
	case -ENOMEM:
		return rc;
	default: {
		int hr = hold(w, r);
		return hr ? hr : -EIO;
	}
	}
}

int wk_retry(struct worker *w)
{
	if (!w->held.head || w->moving)
		return 0;
	struct wk_held *h;
	while ((h = w->held.head)) {
		struct tr_rec r = { .type = h->type, .flags = h->flags, .conn = h->conn,
				    .a = h->body, .na = h->len };
		int rc = w->tr->ops->push(w->tr, &r);
		if (rc == -EAGAIN || rc == -ENOMEM)
			return 0;
		if (rc == -EIO)
			return rc;
		if (rc == -EMSGSIZE)
			log_error(EMSGSIZE, "worker %u: a held record of %u bytes can never fit; dropped",
				  w->id, h->len);
		wk_held_free(wk_list_pop(&w->held));
	}
	return 1;
}

int wk_awaits_input(const struct worker *w)
{
	return w->held.head && (w->moving || (w->tr->ops->awaits_input && w->tr->ops->awaits_input(w->tr)));
}

int wk_ack(struct worker *w, uint64_t n)
{
	return w->tr->ops->ack ? w->tr->ops->ack(w->tr, n) : -ENOTSUP;
}

int wk_wait(struct worker *w, uint64_t conn)
{
	if (w->n_waiting == w->cap_waiting) {
		size_t cap = w->cap_waiting ? 2 * w->cap_waiting : 64;
		uint64_t *v = realloc(w->waiting, cap * sizeof(*v));
		if (!v)
			return -ENOMEM;
		w->waiting = v;
		w->cap_waiting = cap;
	}
	w->waiting[w->n_waiting++] = conn;
	return 0;
}

void wk_take_waiting(struct worker *w, uint64_t **ids, size_t *n)
{
	*ids = w->waiting;
	*n = w->n_waiting;
	w->waiting = NULL;
	w->n_waiting = w->cap_waiting = 0;
}

void wk_free(struct worker *w)
{
	if (!w)
		return;
	wk_list_clear(&w->held);
	free(w->waiting);
	if (w->tr)
		w->tr->ops->free(w->tr);
	free(w);
}
