#include "gateway/stats.h"
#include "gateway/budget.h"
#include "gateway/deflate.h"
#include "gateway/history.h"
#include "gateway/tbuf.h"
#include "gateway/topics.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>

struct gw_stats stats;

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
	tbuf_put(&b, "# HELP wsgw_connections Client connections open now.\n# TYPE wsgw_connections gauge\n"
		"wsgw_connections %lu\n", conns_open);
	tbuf_put(&b, "# HELP wsgw_workers Workers attached now.\n# TYPE wsgw_workers gauge\nwsgw_workers %u\n",
	    workers);
	counter(&b, "accepted_total", "TCP connections accepted.", stats.accepted);
	counter(&b, "upgraded_total", "WebSocket upgrades answered with 101.", stats.upgraded);
	tbuf_put(&b, "# HELP wsgw_rejected_total Upgrade requests answered with an HTTP error.\n"
		"# TYPE wsgw_rejected_total counter\n");
	static const char *const st[] = { "400", "404", "405", "426", "431", "4xx", "5xx" };
	for (int i = 0; i < 7; i++)
		tbuf_put(&b, "wsgw_rejected_total{status=\"%s\"} %llu\n", st[i],
		    (unsigned long long)stats.rejected[i]);
	counter(&b, "handshake_timeouts_total", "Clients cut for a slow upgrade request.",
		stats.handshake_timeouts);
	counter(&b, "messages_in_total", "Whole messages received from clients.", stats.messages_in);
	counter(&b, "bytes_in_total", "Payload bytes of those messages.", stats.bytes_in);
	counter(&b, "messages_out_total", "Messages queued to clients.", stats.messages_out);
	counter(&b, "bytes_out_total", "Payload bytes of those messages.", stats.bytes_out);
	tbuf_put(&b, "# HELP wsgw_closes_sent_total Close frames sent, by code.\n"
		"# TYPE wsgw_closes_sent_total counter\n");
	for (unsigned i = 0; i < sizeof(close_code) / sizeof(close_code[0]); i++)
		tbuf_put(&b, "wsgw_closes_sent_total{code=\"%u\"} %llu\n", close_code[i],
		    (unsigned long long)stats.closes_sent[i]);
	counter(&b, "outbound_dropped_total", "Messages dropped past --max-outbound.",
		stats.outbound_dropped);
	counter(&b, "worker_attaches_total", "Workers welcomed.", stats.worker_attaches);
	counter(&b, "worker_deaths_total", "Workers gone (crash, silence, BYE).", stats.worker_deaths);
	counter(&b, "records_handed_over_total", "Unconsumed records moved from dead workers.",
		stats.records_handed_over);
	counter(&b, "gone_sent_total", "Worker commands for connections that no longer exist.",
		stats.gone_sent);
	counter(&b, "commands_refused_total", "Malformed worker commands answered with ERROR.",
		stats.commands_refused);
	counter(&b, "records_dropped_total", "Records that could not be delivered (each logged).",
		stats.records_dropped);
	counter(&b, "worker_wakeups_total",
		"Times a shm worker's record woke the sleeping loop through its eventfd.",
		stats.worker_wakeups);
	counter(&b, "futex_relays_total",
		"Doorbell futex rings of workers without the eventfd, relayed by the waker thread.",
		stats.futex_relays);
	counter(&b, "window_waits_total",
		"Times a zmq worker's unacknowledged window filled and its clients paused.",
		stats.window_waits);
	counter(&b, "accept_pauses_total", "Times accepting paused at the file descriptor limit.",
		stats.accept_pauses);
	counter(&b, "accept_shed_total", "Connections shed while accepting was paused.",
		stats.accept_shed);
	tbuf_put(&b, "# HELP wsgw_topics Topics with at least one subscriber.\n# TYPE wsgw_topics gauge\n"
		"wsgw_topics %lu\n", top_topics());
	tbuf_put(&b, "# HELP wsgw_subscriptions Subscriptions in all topics.\n"
		"# TYPE wsgw_subscriptions gauge\nwsgw_subscriptions %lu\n", top_subscriptions());
	counter(&b, "published_total", "PUBLISH commands.", stats.published);
	counter(&b, "delivered_total", "Published (and SENDMANY) messages queued to connections.",
		stats.delivered);
	counter(&b, "publish_dropped_total", "Published messages a slow subscriber did not get.",
		stats.publish_dropped);
	counter(&b, "closed_slow_total", "Subscribers closed with 1008 for being slow.",
		stats.closed_slow);
	tbuf_put(&b, "# HELP wsgw_recoveries_total SUBSCRIBE since=OFFSET,EPOCH answered, by result.\n"
		"# TYPE wsgw_recoveries_total counter\n");
	static const char *const rec[] = { "recovered", "epoch", "trimmed", "none", "unavailable" };
	for (int i = 0; i < 5; i++)
		tbuf_put(&b, "wsgw_recoveries_total{result=\"%s\"} %llu\n", rec[i],
		    (unsigned long long)stats.recoveries[i]);
	tbuf_put(&b, "# HELP wsgw_history_topics Topics with a history kept in memory.\n"
		"# TYPE wsgw_history_topics gauge\nwsgw_history_topics %lu\n", hist_topics());
	tbuf_put(&b, "# HELP wsgw_history_messages Messages kept in those histories.\n"
		"# TYPE wsgw_history_messages gauge\nwsgw_history_messages %lu\n", hist_messages());
	tbuf_put(&b, "# HELP wsgw_cluster_up 1 while connected to Redis and subscribed (--cluster).\n"
		"# TYPE wsgw_cluster_up gauge\nwsgw_cluster_up %llu\n",
	    (unsigned long long)stats.cluster_up);
	counter(&b, "cluster_outages_total", "Times the connection to Redis was lost.",
		stats.cluster_outages);
	counter(&b, "cluster_sent_total", "Publishes and commands for other gateways that Redis took.",
		stats.cluster_sent);
	counter(&b, "cluster_receivers_total",
		"Gateways those reached, in all (one message per subscribed gateway).",
		stats.cluster_receivers);
	counter(&b, "cluster_received_total", "Messages of other gateways delivered here.",
		stats.cluster_received);
	counter(&b, "cluster_held_total", "Messages held for other gateways while Redis was away.",
		stats.cluster_held);
	tbuf_put(&b, "# HELP wsgw_cluster_holding Held messages not sent yet.\n"
		"# TYPE wsgw_cluster_holding gauge\nwsgw_cluster_holding %llu\n",
	    (unsigned long long)stats.cluster_holding);
	counter(&b, "cluster_dropped_total",
		"Messages other gateways never got: over --cluster-hold, or refused by Redis.",
		stats.cluster_dropped);
	counter(&b, "cluster_unconfirmed_total",
		"Messages in flight when the connection to Redis broke, or confirmed just before it: other gateways may not have got them.",
		stats.cluster_unconfirmed);
	counter(&b, "cluster_forwarded_total", "Commands for connections of other gateways.",
		stats.cluster_forwarded);
	counter(&b, "cluster_commands_total", "Commands of other gateways' workers for connections here.",
		stats.cluster_commands);
	tbuf_put(&b, "# HELP wsgw_door_refused_total Upgrade requests refused at the door, by limit.\n"
		"# TYPE wsgw_door_refused_total counter\n");
	static const char *const door[] = { NULL, "max_conns_per_ip", "handshake_rate_per_ip",
					    "handshake_rate", "origin" };
	for (int i = 1; i < 5; i++)
		tbuf_put(&b, "wsgw_door_refused_total{limit=\"%s\"} %llu\n", door[i],
		    (unsigned long long)stats.door_refused[i]);
	counter(&b, "drained_total", "Clients closed with 1001 by a drain.", stats.drained);
	counter(&b, "workers_over_share_total", "Workers dropped for holding more than --worker-memory.",
		stats.workers_over_share);
	counter(&b, "tls_handshakes_total", "TLS handshakes completed.", stats.tls_handshakes);
	counter(&b, "tls_handshake_failures_total",
		"TLS connections that failed before completing the handshake.", stats.tls_failures);
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
