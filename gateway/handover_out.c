/*
 * The old side of a live upgrade, the sections beside the connections and the workers
 * (docs/UPGRADE.md): PROGS, the [worker] instances this process runs, and HISTORY, the
 * topics' histories it keeps in memory. Top layer, beside gateway/handover_run.c. Loop
 * thread only.
 */
#include "gateway/handover_out.h"
#include "gateway/handover.h"
#include "gateway/handover_chan.h"
#include "gateway/history.h"
#include "gateway/loop.h"
#include "gateway/supervise.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

/* The [worker] instances this process runs: their processes stay, watched from the new
 * one by their pidfds (docs/UPGRADE.md, "Workers the gateway runs"). */
struct progs_out {
	struct ho_buf sec;
	int fds[HO_FDS_MAX], n;
};

static int put_prog(void *arg, const struct sup_moving *m)
{
	struct progs_out *o = arg;
	if (o->n == HO_FDS_MAX)
		return -E2BIG;
	struct ho_prog g = { { (const uint8_t *)m->name, strlen(m->name) }, m->instance, (uint32_t)m->pid,
			     m->ran_ms, m->restarts, m->delay_ms };
	int rc = ho_put_prog(&o->sec, &g);
	if (rc == 0)
		o->fds[o->n++] = m->pidfd;
	return rc;
}

int ho_out_progs(const struct ho_parts *p, int chan, uint8_t *buf, char *why, size_t cap)
{
	struct progs_out o = { .n = 0 };
	int rc = sup_ho_each(p->sup, put_prog, &o);
	if (rc == -E2BIG)
		snprintf(why, cap, "more than %d worker instances run: at most that many move", HO_FDS_MAX);
	if (rc == 0 && o.n) {
		rc = ho__send_section(chan, HO_PROGS, o.sec.p, o.sec.len, (unsigned)o.n, o.fds, o.n);
		if (rc == 0)
			rc = ho__expect(chan, buf, HO_ACK, why, cap);
	}
	ho_buf_free(&o.sec);
	return rc;
}

/* The topics' histories (a gateway without a cluster keeps them in memory; docs/UPGRADE.md
 * "Topic history"): a section of a topic count, then a record per topic with its
 * messages. No descriptors. */
struct hist_out {
	struct ho_buf sec, msgs;
	struct hist_ho_topic cur;
	int have;
	uint32_t count;
};

static int hist_flush(struct hist_out *o)
{
	if (!o->have)
		return 0;
	struct ho_hist h = { { o->cur.topic, o->cur.tlen }, o->cur.epoch, o->cur.last, o->cur.quiet_ms,
			     o->cur.max, o->cur.ttl_ms, { o->msgs.p, o->msgs.len } };
	o->have = 0;
	o->msgs.len = 0;
	o->count++;
	return ho_put_hist(&o->sec, &h);
}

static int hist_topic(void *arg, const struct hist_ho_topic *t)
{
	struct hist_out *o = arg;
	int rc = hist_flush(o);
	o->cur = *t; /* its name stays valid: nothing changes the histories meanwhile */
	o->have = 1;
	return rc;
}

static int hist_msg(void *arg, const struct top_msg *m, uint32_t age_ms)
{
	struct hist_out *o = arg;
	struct ho_hist_msg x = { m->offset, age_ms, (uint8_t)m->op, (uint8_t)!!m->stamp, { m->p, m->n } };
	return ho_put_hist_msg(&o->msgs, &x);
}

int ho_out_history(const struct ho_parts *p, int chan, uint8_t *buf, char *why, size_t cap)
{
	if (!hist_topics())
		return 0;
	struct hist_out o;
	memset(&o, 0, sizeof(o));
	int rc = ho_put_u32(&o.sec, 0); /* the count, filled in below */
	if (rc == 0)
		rc = hist_ho_each(loop_now(p->loop), hist_topic, hist_msg, &o);
	if (rc == 0)
		rc = hist_flush(&o);
	if (rc == 0) {
		for (int i = 0; i < 4; i++)
			o.sec.p[i] = (uint8_t)(o.count >> (8 * i));
		rc = ho__send_section(chan, HO_HISTORY, o.sec.p, o.sec.len, 0, NULL, 0);
	}
	if (rc == 0)
		rc = ho__expect(chan, buf, HO_ACK, why, cap);
	else if (!why[0])
		snprintf(why, cap, "the topics' histories: %s", strerror(-rc));
	ho_buf_free(&o.sec);
	ho_buf_free(&o.msgs);
	return rc;
}
