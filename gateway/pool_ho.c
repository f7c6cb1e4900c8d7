/*
 * The pools in a live upgrade (docs/UPGRADE.md, "Workers"): what the old gateway hands
 * over of its workers, and the new one's adoption of its shm workers (a zmq worker's
 * quiescing and adoption: gateway/pool_ho_zmq.c). Loop thread only.
 */
#include "gateway/conn.h"
#include "gateway/log.h"
#include "gateway/pool_int.h"
#include "gateway/tr_shm.h"
#include "gateway/tr_zmq.h"
#include "gateway/waker.h"
#include "wsgw/protocol.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int pool_ho_check(struct pools *ps, char *why, size_t cap)
{
	for (unsigned i = 0; i < ps->n_att; i++) {
		struct worker *w = ps->att[i];
		if (w->state != WK_ALIVE) {
			snprintf(why, cap, "worker %u (pool %s) is dying and its connections are moving: try again in a moment",
				 w->id, w->pool->name);
			return -EAGAIN;
		}
	}
	return 0;
}

void pool_ho_conn_ok(struct pools *ps, const struct conn *c, const char **why)
{
	struct worker *w = (c->flags & CONN_WORKER) ? pool__worker_of(ps, c) : NULL;
	if (!w)
		*why = "waiting for a worker";
	else if (w->state != WK_ALIVE)
		*why = "its worker is dying";
}

static int put_held(struct ho_buf *b, uint16_t type, uint16_t flags, uint64_t conn,
		    const void *p, size_t n)
{
	struct ho_held h = { type, flags, conn, { p, n } };
	return ho_put_held(b, &h);
}

int pool_ho_export(struct pools *ps, unsigned loop, struct conn *const *kept, size_t n_kept,
		   pool_ident_fn *ident, void *arg, struct pool_ho_out *out, char *why, size_t cap)
{
	struct ho_buf held = { 0 };
	int rc = 0;
	for (unsigned i = 0; rc == 0 && i < ps->n_att; i++) {
		struct worker *w = ps->att[i];
		int zmq = tr_zmq_is(w->tr);
		if (w->state != WK_ALIVE) {
			/* It died while the zmq workers were being moved: its hand-over to the rest
			 * of its pool is not done yet. */
			snprintf(why, cap, "worker %u (pool %s) died during the upgrade: try again in a moment",
				 w->id, w->pool->name);
			rc = -EAGAIN;
			break;
		}
		if (zmq && (rc = pool__ho_zmq_ready(w, why, cap)) != 0)
			break;
		/* What was pushed this batch is in the ring before the new process opens it. */
		if (!zmq)
			tr_shm_publish(w->tr);
		held.len = 0;
		for (struct wk_held *h = w->held.head; rc == 0 && h; h = h->next)
			rc = put_held(&held, h->type, h->flags, h->conn, h->body, h->len);
		/* The clients that stay here drain with 1001: their worker hears it now, from
		 * the new process, in order after what it was sent. */
		for (size_t k = 0; rc == 0 && k < n_kept; k++) {
			const struct conn *c = kept[k];
			if ((c->flags & CONN_WORKER) && pool__worker_of(ps, c) == w) {
				static const char reason[] = "\x03\xe9" "server restarting";
				rc = put_held(&held, WSGW_CLOSE, 0, c->id, reason, sizeof(reason) - 1);
			}
		}
		if (!zmq && out->nfds == out->fds_cap) {
			snprintf(why, cap, "more than %d shm workers: at most that many move in a live upgrade",
				 out->fds_cap);
			rc = -E2BIG;
			break;
		}
		const uint8_t *id = NULL;
		size_t idn = 0;
		if (rc == 0 && ident(arg, w->id, &id, &idn)) {
			snprintf(why, cap, "worker %u has no peer on the control socket", w->id);
			rc = -ENOENT;
			break;
		}
		struct ho_worker hw = {
			.id = w->id, .pid = (uint32_t)w->pid, .slot = w->slot,
			.pool = { (const uint8_t *)w->pool->name, strlen(w->pool->name) },
			.ident = { id, idn },
			.token = { (const uint8_t *)w->token, strlen(w->token) },
			.held = { held.p, held.len },
			.zmq = (uint8_t)zmq, .counted = zmq ? tr_zmq_counted(w->tr) : 0,
			.loop = (uint8_t)loop,
		};
		if (rc == 0)
			rc = ho_put_worker(out->sec, &hw);
		if (!zmq)
			out->fds[out->nfds++] = tr_shm_fd(w->tr);
		out->nrec++;
	}
	ho_buf_free(&held);
	if (rc && !why[0])
		snprintf(why, cap, "the workers' records: %s", strerror(-rc));
	return rc;
}

unsigned pool_ho_next_id(const struct pools *ps)
{
	return __atomic_load_n(ps->ids, __ATOMIC_RELAXED);
}

int pool_ho_import_worker(struct pools *ps, const struct ho_worker *hw, int fd, const char **why)
{
	struct pool *p = pool__named(ps, (const char *)hw->pool.p, hw->pool.n);
	if (!p || !ps->waker) {
		*why = "its pool is not in this configuration";
		close(fd);
		return -ENOENT;
	}
	if (hw->slot >= MAX_WORKERS || ps->slots[hw->slot] || ps->n_att == MAX_WORKERS) {
		*why = "its slot is taken";
		close(fd);
		return -EEXIST;
	}
	struct worker *w = calloc(1, sizeof(*w));
	if (!w) {
		close(fd);
		*why = "out of memory";
		return -ENOMEM;
	}
	w->id = hw->id;
	w->slot = hw->slot;
	w->pool = p;
	w->pid = (pid_t)hw->pid;
	if (hw->token.n && hw->token.n < sizeof(w->token))
		memcpy(w->token, hw->token.p, hw->token.n);
	int rc = tr_shm_adopt(fd, w->id, waker_doorbell(ps->waker), &w->tr);
	if (rc == 0)
		rc = pool__ho_held_in(w, &hw->held);
	if (rc) {
		*why = rc == -EBADMSG ? "a bad held record" : "its segment or held records could not be taken";
		wk_free(w);
		return rc;
	}
	pool__ho_adopted(ps, p, w);
	log_info("worker %u (pool %s, pid %d) taken over with its segment, %zu records held for it",
		 w->id, p->name, (int)w->pid, w->held.n);
	return 0;
}

int pool__ho_held_in(struct worker *w, const struct ho_bytes *held)
{
	struct ho_held h;
	size_t off = 0;
	int more, rc = 0;
	while (rc == 0 && (more = ho_next_held(held, &off, &h)) != 0) {
		struct tr_rec r = { .type = h.type, .flags = h.flags, .conn = h.conn, .a = h.body.p,
				    .na = h.body.n };
		struct wk_held *k = more > 0 ? wk_held_new(&r) : NULL;
		if (!k)
			rc = more < 0 ? -EBADMSG : -ENOMEM;
		else
			wk_list_append(&w->held, k);
	}
	return rc;
}

void pool__ho_adopted(struct pools *ps, struct pool *p, struct worker *w)
{
	pool_ho_set_next_id(ps, w->id + 1);
	pool__add_worker(ps, p, w);
}

/* The counter every loop's pools share (pool_share_ids): a loop's import raises it. */
void pool_ho_set_next_id(struct pools *ps, unsigned id)
{
	unsigned was = __atomic_load_n(ps->ids, __ATOMIC_RELAXED);
	while (id > was && !__atomic_compare_exchange_n(ps->ids, &was, id, 0, __ATOMIC_RELAXED, __ATOMIC_RELAXED))
		;
}

int pool_ho_pin(struct pools *ps, struct conn *c, unsigned slot, const char **why)
{
	struct worker *w = slot < MAX_WORKERS ? ps->slots[slot] : NULL;
	if (!w || w->pool != pool__of(ps, c)) {
		*why = "its worker was not handed over";
		return -ENOENT;
	}
	pool__pin(c, w);
	c->flags |= CONN_WORKER;
	return 0;
}

void pool_ho_unpin(struct pools *ps, struct conn *c)
{
	struct worker *w = (c->flags & CONN_WORKER) ? pool__worker_of(ps, c) : NULL;
	if (w)
		w->conns--;
	c->flags &= (uint8_t)~CONN_WORKER;
	c->worker = POOL_NO_WORKER;
}

void pool_ho_name_gateway(struct pools *ps, pid_t pid)
{
	for (unsigned i = 0; i < ps->n_att; i++)
		if (tr_shm_is(ps->att[i]->tr))
			tr_shm_set_gateway_pid(ps->att[i]->tr, pid);
}

void pool_ho_forget(struct pools *ps, struct conn *const *kept, size_t n_kept)
{
	if (!ps->waker)
		return;
	for (size_t k = 0; k < n_kept; k++)
		if (kept[k]->state != CONN_DEAD && pool__worker_of(ps, kept[k]))
			pool_ho_unpin(ps, kept[k]);
	for (unsigned i = 0; i < ps->n_att; i++) {
		struct worker *w = ps->att[i];
		ps->slots[w->slot] = NULL;
		wk_free(w); /* unmaps; the rings and the held records are the new process's now */
	}
	ps->n_att = 0;
	ps->dying = 0;
	for (unsigned i = 0; i < ps->n_pools; i++)
		ps->pools[i].workers = 0;
	waker_hand_off(ps->waker);
}

int pool_ho_bell_fd(struct pools *ps)
{
	return ps->waker ? waker_fd(ps->waker) : -1;
}

int pool_ho_efd(struct pools *ps)
{
	return ps->waker ? waker_efd(ps->waker) : -1;
}
