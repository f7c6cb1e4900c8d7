#include "gateway/stats.h"
#include "gateway/budget.h"
#include "gateway/deflate.h"
#include "gateway/history.h"
#include "gateway/tbuf.h"
#include "gateway/topics.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

_Thread_local struct gw_stats stats;

#define N_COUNTS (sizeof(struct gw_stats) / sizeof(uint64_t))
_Static_assert(sizeof(struct gw_stats) == N_COUNTS * sizeof(uint64_t),
	       "struct gw_stats holds uint64_t only");

/* A thread's counts as it last published them. Only the owner writes pub, under lock;
 * it compares without the lock, as nobody else writes. A cache line of its own keeps
 * one owner's publishing off its neighbours'. */
struct slot {
	_Alignas(64) pthread_mutex_t lock;
	struct gw_stats pub;
	int used; /* under R.lock */
};

/* R.lock orders the slots' use and retired against the sums: a stopping thread's counts
 * move from its slot to retired in one step, never seen twice or not at all. */
static struct {
	pthread_mutex_t lock;
	struct gw_stats retired;
	struct slot slot[STATS_MAX_THREADS];
} R = {
	.lock = PTHREAD_MUTEX_INITIALIZER,
	.slot = { [0 ... STATS_MAX_THREADS - 1] = { .lock = PTHREAD_MUTEX_INITIALIZER } },
};

static _Thread_local struct slot *mine;
static _Thread_local int no_slot; /* a start found none: publishing does not ask again */

/* Field by field, not through memcpy: GCC inlines a memcpy of this size as a block move
 * that ThreadSanitizer does not see, and it should see every read of a slot. */
static void add(struct gw_stats *to, const struct gw_stats *from)
{
	uint64_t *t = (uint64_t *)to;
	const uint64_t *f = (const uint64_t *)from;
	for (size_t i = 0; i < N_COUNTS; i++)
		t[i] += f[i];
}

int stats_thread_start(void)
{
	if (mine)
		return 0;
	pthread_mutex_lock(&R.lock);
	for (int i = 0; i < STATS_MAX_THREADS && !mine; i++)
		if (!R.slot[i].used) {
			R.slot[i].used = 1;
			mine = &R.slot[i];
		}
	pthread_mutex_unlock(&R.lock);
	no_slot = !mine;
	return mine ? 0 : -ENOSPC;
}

void stats_thread_stop(void)
{
	struct gw_stats last = stats;
	/* A gauge says how things are on its thread; a stopped thread has none. */
	last.cluster_up = 0;
	last.cluster_holding = 0;
	pthread_mutex_lock(&R.lock);
	add(&R.retired, &last);
	if (mine) {
		pthread_mutex_lock(&mine->lock);
		mine->pub = (struct gw_stats){ 0 };
		pthread_mutex_unlock(&mine->lock);
		mine->used = 0;
	}
	pthread_mutex_unlock(&R.lock);
	stats = (struct gw_stats){ 0 }; /* not memset: on this TLS object UBSan (GCC 12) says NULL */
	mine = NULL;
	no_slot = 0;
}

void stats_publish(void)
{
	if (!mine && (no_slot || stats_thread_start()))
		return;
	/* Most batches of an idle thread change nothing: a compare is cheaper than the lock. */
	if (memcmp(&mine->pub, &stats, sizeof(stats)) == 0)
		return;
	pthread_mutex_lock(&mine->lock);
	mine->pub = stats;
	pthread_mutex_unlock(&mine->lock);
}

void stats_sum(struct gw_stats *out)
{
	*out = stats;
	pthread_mutex_lock(&R.lock);
	add(out, &R.retired);
	for (int i = 0; i < STATS_MAX_THREADS; i++) {
		struct slot *s = &R.slot[i];
		if (!s->used || s == mine)
			continue;
		pthread_mutex_lock(&s->lock);
		add(out, &s->pub);
		pthread_mutex_unlock(&s->lock);
	}
	pthread_mutex_unlock(&R.lock);
}

static const int reject_status[] = { 400, 404, 405, 426, 431 };
static const unsigned close_code[] = { 1000, 1001, 1002, 1007, 1008, 1009, 1011, 1013 };

void stats_rejected(int status)
{
	for (unsigned i = 0; i < 5; i++)
		if (reject_status[i] == status) {
			stats.rejected[i]++;
			return;
		}
	/* A worker's REJECT may be any 4xx: other client errors are not server errors. */
	stats.rejected[status < 500 ? 5 : 6]++;
}

void stats_close_sent(unsigned code)
{
	for (unsigned i = 0; i < sizeof(close_code) / sizeof(close_code[0]); i++)
		if (close_code[i] == code) {
			stats.closes_sent[i]++;
			return;
		}
}


static void counter(struct tbuf *b, const char *name, const char *help, uint64_t v)
{
	tbuf_put(b, "# HELP wsgw_%s %s\n# TYPE wsgw_%s counter\nwsgw_%s %llu\n", name, help, name, name,
	    (unsigned long long)v);
}

int stats_format(char *out, size_t cap, unsigned long conns_open, unsigned workers)
{
	struct tbuf b = { out, cap, 0, 0 };
	struct gw_stats s;
	stats_sum(&s);
	tbuf_put(&b, "# HELP wsgw_connections Client connections open now.\n# TYPE wsgw_connections gauge\n"
		"wsgw_connections %lu\n", conns_open);
	tbuf_put(&b, "# HELP wsgw_workers Workers attached now.\n# TYPE wsgw_workers gauge\nwsgw_workers %u\n",
	    workers);
	counter(&b, "accepted_total", "TCP connections accepted.", s.accepted);
	counter(&b, "upgraded_total", "WebSocket upgrades answered with 101.", s.upgraded);
	tbuf_put(&b, "# HELP wsgw_rejected_total Upgrade requests answered with an HTTP error.\n"
		"# TYPE wsgw_rejected_total counter\n");
	static const char *const st[] = { "400", "404", "405", "426", "431", "4xx", "5xx" };
	for (int i = 0; i < 7; i++)
		tbuf_put(&b, "wsgw_rejected_total{status=\"%s\"} %llu\n", st[i],
		    (unsigned long long)s.rejected[i]);
	counter(&b, "handshake_timeouts_total", "Clients cut for a slow upgrade request.",
		s.handshake_timeouts);
	counter(&b, "messages_in_total", "Whole messages received from clients.", s.messages_in);
	counter(&b, "bytes_in_total", "Payload bytes of those messages.", s.bytes_in);
	counter(&b, "messages_out_total", "Messages queued to clients.", s.messages_out);
	counter(&b, "bytes_out_total", "Payload bytes of those messages.", s.bytes_out);
	tbuf_put(&b, "# HELP wsgw_closes_sent_total Close frames sent, by code.\n"
		"# TYPE wsgw_closes_sent_total counter\n");
	for (unsigned i = 0; i < sizeof(close_code) / sizeof(close_code[0]); i++)
		tbuf_put(&b, "wsgw_closes_sent_total{code=\"%u\"} %llu\n", close_code[i],
		    (unsigned long long)s.closes_sent[i]);
	counter(&b, "outbound_dropped_total", "Messages dropped past --max-outbound.",
		s.outbound_dropped);
	counter(&b, "worker_attaches_total", "Workers welcomed.", s.worker_attaches);
	counter(&b, "worker_deaths_total", "Workers gone (crash, silence, BYE).", s.worker_deaths);
	counter(&b, "records_handed_over_total", "Unconsumed records moved from dead workers.",
		s.records_handed_over);
	counter(&b, "gone_sent_total", "Worker commands for connections that no longer exist.",
		s.gone_sent);
	counter(&b, "commands_refused_total", "Malformed worker commands answered with ERROR.",
		s.commands_refused);
	counter(&b, "records_dropped_total", "Records that could not be delivered (each logged).",
		s.records_dropped);
	counter(&b, "worker_wakeups_total",
		"Times a shm worker's record woke the sleeping loop through its eventfd.",
		s.worker_wakeups);
	counter(&b, "futex_relays_total",
		"Doorbell futex rings of workers without the eventfd, relayed by the waker thread.",
		s.futex_relays);
	counter(&b, "worker_wake_floods_total",
		"Times wake-ups with no records behind them muted the doorbell (the rings polled).",
		s.wake_floods);
	counter(&b, "window_waits_total",
		"Times a zmq worker's unacknowledged window filled and its clients paused.",
		s.window_waits);
	counter(&b, "accept_pauses_total", "Times accepting paused at the file descriptor limit.",
		s.accept_pauses);
	counter(&b, "accept_shed_total", "Connections shed while accepting was paused.",
		s.accept_shed);
	tbuf_put(&b, "# HELP wsgw_topics Topics with at least one subscriber.\n# TYPE wsgw_topics gauge\n"
		"wsgw_topics %lu\n", top_topics());
	tbuf_put(&b, "# HELP wsgw_subscriptions Subscriptions in all topics.\n"
		"# TYPE wsgw_subscriptions gauge\nwsgw_subscriptions %lu\n", top_subscriptions());
	counter(&b, "published_total", "PUBLISH commands.", s.published);
	counter(&b, "delivered_total", "Published (and SENDMANY) messages queued to connections.",
		s.delivered);
	counter(&b, "publish_dropped_total", "Published messages a slow subscriber did not get.",
		s.publish_dropped);
	counter(&b, "closed_slow_total", "Subscribers closed with 1008 for being slow.",
		s.closed_slow);
	tbuf_put(&b, "# HELP wsgw_recoveries_total SUBSCRIBE since=OFFSET,EPOCH answered, by result.\n"
		"# TYPE wsgw_recoveries_total counter\n");
	static const char *const rec[] = { "recovered", "epoch", "trimmed", "none", "unavailable" };
	for (int i = 0; i < 5; i++)
		tbuf_put(&b, "wsgw_recoveries_total{result=\"%s\"} %llu\n", rec[i],
		    (unsigned long long)s.recoveries[i]);
	tbuf_put(&b, "# HELP wsgw_history_topics Topics with a history kept in memory.\n"
		"# TYPE wsgw_history_topics gauge\nwsgw_history_topics %lu\n", hist_topics());
	tbuf_put(&b, "# HELP wsgw_history_messages Messages kept in those histories.\n"
		"# TYPE wsgw_history_messages gauge\nwsgw_history_messages %lu\n", hist_messages());
	tbuf_put(&b, "# HELP wsgw_cluster_up 1 while connected to Redis and subscribed (--cluster).\n"
		"# TYPE wsgw_cluster_up gauge\nwsgw_cluster_up %llu\n",
	    (unsigned long long)s.cluster_up);
	counter(&b, "cluster_outages_total", "Times the connection to Redis was lost.",
		s.cluster_outages);
	counter(&b, "cluster_sent_total", "Publishes and commands for other gateways that Redis took.",
		s.cluster_sent);
	counter(&b, "cluster_receivers_total",
		"Gateways those reached, in all (one message per subscribed gateway).",
		s.cluster_receivers);
	counter(&b, "cluster_received_total", "Messages of other gateways delivered here.",
		s.cluster_received);
	counter(&b, "cluster_held_total", "Messages held for other gateways while Redis was away.",
		s.cluster_held);
	tbuf_put(&b, "# HELP wsgw_cluster_holding Held messages not sent yet.\n"
		"# TYPE wsgw_cluster_holding gauge\nwsgw_cluster_holding %llu\n",
	    (unsigned long long)s.cluster_holding);
	counter(&b, "cluster_dropped_total",
		"Messages other gateways never got: over --cluster-hold, or refused by Redis.",
		s.cluster_dropped);
	counter(&b, "cluster_unconfirmed_total",
		"Messages in flight when the connection to Redis broke, or confirmed just before it: other gateways may not have got them.",
		s.cluster_unconfirmed);
	counter(&b, "cluster_forwarded_total", "Commands for connections of other gateways.",
		s.cluster_forwarded);
	counter(&b, "cluster_commands_total", "Commands of other gateways' workers for connections here.",
		s.cluster_commands);
	tbuf_put(&b, "# HELP wsgw_door_refused_total Upgrade requests refused at the door, by limit.\n"
		"# TYPE wsgw_door_refused_total counter\n");
	static const char *const door[] = { NULL, "max_conns_per_ip", "handshake_rate_per_ip",
					    "handshake_rate", "origin" };
	for (int i = 1; i < 5; i++)
		tbuf_put(&b, "wsgw_door_refused_total{limit=\"%s\"} %llu\n", door[i],
		    (unsigned long long)s.door_refused[i]);
	counter(&b, "drained_total", "Clients closed with 1001 by a drain.", s.drained);
	counter(&b, "workers_over_share_total", "Workers dropped for holding more than --worker-memory.",
		s.workers_over_share);
	counter(&b, "tls_handshakes_total", "TLS handshakes completed.", s.tls_handshakes);
	counter(&b, "tls_handshake_failures_total",
		"TLS connections that failed before completing the handshake.", s.tls_failures);
	uint64_t pmd[4];
	pmd_totals(&pmd[0], &pmd[1], &pmd[2], &pmd[3]);
	tbuf_put(&b, "# HELP wsgw_deflate_bytes_total Bytes of compressed messages (permessage-deflate), "
		"as payload (plain) and on the wire (compressed), by direction.\n"
		"# TYPE wsgw_deflate_bytes_total counter\n");
	static const char *const pmd_lbl[] = { "direction=\"in\",form=\"plain\"",
		"direction=\"in\",form=\"wire\"", "direction=\"out\",form=\"plain\"",
		"direction=\"out\",form=\"wire\"" };
	for (int i = 0; i < 4; i++)
		tbuf_put(&b, "wsgw_deflate_bytes_total{%s} %llu\n", pmd_lbl[i], (unsigned long long)pmd[i]);
	tbuf_put(&b, "# HELP wsgw_memory_budget_bytes The --memory-budget (0: none).\n"
		"# TYPE wsgw_memory_budget_bytes gauge\nwsgw_memory_budget_bytes %llu\n",
	    (unsigned long long)bud_limit());
	tbuf_put(&b, "# HELP wsgw_memory_bytes Bytes held for peers now, by kind.\n"
		"# TYPE wsgw_memory_bytes gauge\n");
	for (int k = 0; k < BUD_KINDS; k++)
		tbuf_put(&b, "wsgw_memory_bytes{kind=\"%s\"} %llu\n", bud_name(k),
		    (unsigned long long)bud_used(k));
	tbuf_put(&b, "# HELP wsgw_memory_refused_total Allocations refused by the memory budget, by kind.\n"
		"# TYPE wsgw_memory_refused_total counter\n");
	for (int k = 0; k < BUD_KINDS; k++)
		tbuf_put(&b, "wsgw_memory_refused_total{kind=\"%s\"} %llu\n", bud_name(k),
		    (unsigned long long)bud_refused(k));
	return b.full ? -ENOSPC : (int)b.len;
}
