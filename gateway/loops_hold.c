/*
 * A live upgrade holds the other loops still: each serves nothing but the calls lps_on
 * gives it until lps_release (gateway/handover_loops.c).
 */
#include "gateway/loops_int.h"
#include "gateway/loop.h"

#include <errno.h>
#include <stdlib.h>

struct hold {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	unsigned parked;         /* loops waiting in park */
	int release;
	void (*fn)(struct sess *s, void *arg); /* for loop `to` to run; NULL: none */
	void *arg;
	unsigned to;
};

/* Posted to every other loop by lps_hold: it serves nothing but lps_on's calls until
 * lps_release. */
static void park(struct loop *l, void *arg)
{
	struct lp *p = arg;
	struct hold *h = p->x->hold;
	(void)l;
	pthread_mutex_lock(&h->mu);
	h->parked++;
	pthread_cond_broadcast(&h->cv);
	for (;;) {
		if (h->fn && h->to == p->index) {
			pthread_mutex_unlock(&h->mu);
			h->fn(p->sess, h->arg);
			pthread_mutex_lock(&h->mu);
			h->fn = NULL;
			pthread_cond_broadcast(&h->cv);
		} else if (h->release) {
			break;
		} else {
			pthread_cond_wait(&h->cv, &h->mu);
		}
	}
	h->parked--;
	pthread_cond_broadcast(&h->cv);
	pthread_mutex_unlock(&h->mu);
}

int lps_hold(struct lps *x)
{
	if (x->n == 1)
		return 0;
	struct hold *h = calloc(1, sizeof(*h));
	if (!h)
		return -ENOMEM;
	pthread_mutex_init(&h->mu, NULL);
	pthread_cond_init(&h->cv, NULL);
	x->hold = h;
	unsigned posted = 0;
	for (unsigned i = 1; i < x->n; i++)
		posted += loop_post(x->lp[i].loop, park, &x->lp[i]) == 0;
	pthread_mutex_lock(&h->mu);
	while (h->parked < posted)
		pthread_cond_wait(&h->cv, &h->mu);
	pthread_mutex_unlock(&h->mu);
	if (posted == x->n - 1)
		return 0;
	lps_release(x);
	return -ENOMEM;
}

void lps_release(struct lps *x)
{
	struct hold *h = x->hold;
	if (!h)
		return;
	pthread_mutex_lock(&h->mu);
	h->release = 1;
	pthread_cond_broadcast(&h->cv);
	while (h->parked)
		pthread_cond_wait(&h->cv, &h->mu);
	pthread_mutex_unlock(&h->mu);
	pthread_mutex_destroy(&h->mu);
	pthread_cond_destroy(&h->cv);
	free(h);
	x->hold = NULL;
}

int lps_on(struct lps *x, unsigned k, void (*fn)(struct sess *s, void *arg), void *arg)
{
	if (k >= x->n)
		return -ENOENT;
	if (k == 0) {
		fn(x->lp[0].sess, arg);
		return 0;
	}
	struct hold *h = x->hold;
	if (!h) {
		return lps__call(&x->lp[k], fn, arg);
	}
	pthread_mutex_lock(&h->mu);
	h->fn = fn;
	h->arg = arg;
	h->to = k;
	pthread_cond_broadcast(&h->cv);
	while (h->fn)
		pthread_cond_wait(&h->cv, &h->mu);
	pthread_mutex_unlock(&h->mu);
	return 0;
}

