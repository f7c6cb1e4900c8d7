/*
 * Counters the gateway keeps for /metrics. Every loop thread counts into its own copy
 * (stats is thread-local), so the per-message path stays a plain increment with no
 * atomics and no shared cache line. A reader on another thread must not look at that
 * copy: the owner copies it into a published slot of its own at the end of each batch
 * (stats_publish), and reports sum the caller's live copy, the other threads' slots and
 * what stopped threads left behind. Another thread's counts are thus one batch old.
 *
 * At most STATS_MAX_THREADS threads hold a slot at once: --loops means a few threads
 * per core, and a fixed array means a thread's start never waits on memory.
 */
#ifndef WSGW_STATS_H
#define WSGW_STATS_H

#include <stddef.h>
#include <stdint.h>

/* Only uint64_t members: the sums add them as one array. */
struct gw_stats {
	uint64_t accepted;            /* TCP connections accepted */
	uint64_t upgraded;            /* 101 sent */
	uint64_t rejected[7];         /* HTTP answers: 400, 404, 405, 426, 431, other 4xx, 5xx */
	uint64_t handshake_timeouts;
	uint64_t messages_in, bytes_in;   /* whole client messages */
	uint64_t messages_out, bytes_out; /* messages queued to clients */
	uint64_t closes_sent[8];      /* 1000, 1001, 1002, 1007, 1008, 1009, 1011, 1013 */
	uint64_t outbound_dropped;    /* --outbound-policy drop */
	uint64_t worker_attaches, worker_deaths;
	uint64_t records_handed_over; /* from dead workers' rings to new owners */
	uint64_t gone_sent;           /* commands for connections that no longer exist */
	uint64_t commands_refused;    /* malformed worker commands answered with ERROR */
	uint64_t records_dropped;     /* records that could not be delivered (logged) */
	uint64_t window_waits;        /* times a zmq worker's full window paused its clients */
	uint64_t accept_pauses;       /* times accepting paused at the fd limit */
	uint64_t accept_shed;         /* connections shed while paused */
	uint64_t workers_over_share;  /* workers dropped past --worker-memory */
	uint64_t worker_wakeups;      /* times the loop's eventfd woke it (gateway/waker.h) */
	uint64_t futex_relays;        /* of those writes, the waker thread's for a futex ring */
	uint64_t wake_floods;         /* times a flood of wake-ups muted the doorbell (waker.c) */
	uint64_t published;           /* PUBLISH commands */
	uint64_t delivered;           /* messages queued to subscribers (PUBLISH, SENDMANY) */
	uint64_t publish_dropped;     /* of those, not queued: slow subscribers, policies */
	uint64_t closed_slow;         /* subscribers closed 1008 for being slow */
	uint64_t recoveries[5];       /* SUBSCRIBE since answered, by enum wsgw_recovery */
	/* the cluster (gateway/cluster.h) */
	uint64_t cluster_up;          /* gauge: 1 while connected to Redis and subscribed */
	uint64_t cluster_outages;     /* times the connection to Redis was lost */
	uint64_t cluster_sent;        /* publishes Redis took (its reply came) */
	uint64_t cluster_receivers;   /* gateways those reached, in all (Redis's count) */
	uint64_t cluster_received;    /* messages of other gateways delivered here */
	uint64_t cluster_held;        /* publishes held for other gateways while Redis was away */
	uint64_t cluster_holding;     /* gauge: of those, not sent yet */
	uint64_t cluster_dropped;     /* publishes other gateways never got: the hold was full,
	                               * the memory budget refused, or Redis did */
	uint64_t cluster_unconfirmed; /* publishes in flight when the connection broke, or
	                               * confirmed just before (Redis may die with them in its
	                               * buffers): other gateways may or may not have got them */
	uint64_t cluster_forwarded;   /* commands sent to another gateway's connections */
	uint64_t cluster_commands;    /* commands other gateways sent for connections here */
	uint64_t door_refused[5];     /* by enum door_verdict: per-address cap, rates, origin */
	uint64_t drained;             /* clients closed by a drain */
	uint64_t tls_handshakes;      /* TLS handshakes completed */
	uint64_t tls_failures;        /* TLS connections that failed or ended before that */
	uint64_t workers_live;        /* gauge: loop 0's live workers, for the /metrics another
	                               * loop answers on a static route (gateway/upgrade.c) */
};

#define STATS_MAX_THREADS 64

extern _Thread_local struct gw_stats stats;

void stats_rejected(int status);
void stats_close_sent(unsigned code);

/* Gives the calling thread a published slot; a loop thread calls it before it counts.
 * The main thread may skip it: its first stats_publish takes a slot. Returns 0, or
 * -ENOSPC when STATS_MAX_THREADS threads hold one (the thread's counts are then seen
 * only when it stops). */
int stats_thread_start(void);
/* Adds the calling thread's counts to those of stopped threads, so nothing counted is
 * lost, and frees its slot; its copy is zeroed (a start after it counts afresh). The
 * gauges (cluster_up, cluster_holding) are not kept: they end with their thread. */
void stats_thread_stop(void);
/* Lets other threads see the calling thread's counts: its owner calls it at the end of
 * each batch. Cheap when nothing changed. */
void stats_publish(void);
/* The counts of all threads: the caller's own as they are now, the others' as last
 * published, and those of stopped threads. */
void stats_sum(struct gw_stats *out);

/* Writes the Prometheus text exposition of the counters (stats_sum) and the gauges given.
 * Returns the length, or -ENOSPC. */
int stats_format(char *out, size_t cap, unsigned long conns_open, unsigned workers);

#endif
