/*
 * Topic history on one gateway (no --cluster): the last messages of each topic that a
 * --history rule covers, kept in memory, so that a client that reconnects can be given
 * what it missed (SUBSCRIBE since=OFFSET,EPOCH). With --cluster the history lives in
 * Redis instead (gateway/clu_topic.c, clu_recover.c), and this is not used.
 *
 * Each topic's messages are numbered 1, 2, 3, ... (the offset) within an epoch: a number
 * the history got when it was made. A history ends when its newest message is older
 * than the rule's SECONDS (or when the memory budget refuses to keep a message, which
 * leaves a gap and so trims it); the next publish starts a new epoch, and a client of the
 * old one is told its history is lost. Loop thread only; the bytes kept count against the
 * memory budget (gateway/budget.h, kind "history").
 */
#ifndef WSGW_HISTORY_H
#define WSGW_HISTORY_H

#include <stddef.h>
#include <stdint.h>

#include "gateway/config.h"
#include "gateway/topics.h"

/* Frees every history. */
void hist_destroy(void);

/* Keeps m (its topic, op, stamp flag and payload) under rule at time now (loop ms).
 * Returns 0 with m's place in *offset and *epoch; -ENOMEM or -ENOBUFS (the budget): the
 * message still got its place, but the history now starts after it. */
int hist_append(const struct cfg_history *rule, const struct top_msg *m, uint32_t now,
		uint64_t *offset, uint64_t *epoch);

/* The messages of the topic after since, when epoch is the topic's: fn gets each, oldest
 * first (offset, epoch and stamp set), valid during the call. Returns the enum
 * wsgw_recovery (WSGW_RECOVERED when fn got every message after since); *offset and
 * *epoch get the topic's position now (0, 0 without a history). */
int hist_since(const void *topic, size_t n, uint64_t since, uint64_t epoch, uint32_t now,
	       void (*fn)(void *arg, const struct top_msg *m), void *arg, uint64_t *offset,
	       uint64_t *epoch_now);

/* The topic's position: the last offset and the epoch; 0, 0 when it has no history. */
void hist_position(const void *topic, size_t n, uint32_t now, uint64_t *offset, uint64_t *epoch);

/* Drops messages past their rule's age and histories whose newest message is. */
void hist_expire(uint32_t now);

/* A live upgrade (docs/UPGRADE.md, "Topic history"). One topic's history as it moves. */
struct hist_ho_topic {
	const uint8_t *topic;
	size_t tlen;
	uint64_t epoch, last;    /* its epoch and the last offset it gave */
	uint32_t quiet_ms;       /* since its last publish */
	uint32_t max, ttl_ms;    /* its rule as of that publish */
};
/* The old side: topic(arg, t) for every history, then msg(arg, m, age_ms) for each message
 * it keeps, oldest first (m valid during the call); stops at the first non-zero return,
 * which it returns. */
int hist_ho_each(uint32_t now, int (*topic)(void *arg, const struct hist_ho_topic *t),
		 int (*msg)(void *arg, const struct top_msg *m, uint32_t age_ms), void *arg);
/* The new side, before any publish: the history of t->topic as the old one had it (its
 * epoch stays, so clients' since=OFFSET,EPOCH still match). 0, -EEXIST (it has one),
 * -ENOMEM. */
int hist_ho_adopt(const struct hist_ho_topic *t, uint32_t now);
/* Then its messages, oldest first (m->offset after the last one adopted, at most the
 * topic's last). 0; -EINVAL (out of order, or no such history); -ENOMEM or -ENOBUFS (the
 * budget): the history then starts after it, as after a gap at publish. */
int hist_ho_adopt_msg(const struct top_msg *m, uint32_t age_ms, uint32_t now);

/* Topics with a history, and the messages kept, for /metrics. */
unsigned long hist_topics(void);
unsigned long hist_messages(void);

#endif
