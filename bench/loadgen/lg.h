/* wsgw-bench internals: the run configuration, the shared phase clock and the per-thread
 * state that the client threads (client.c) fill and main.c reports. */
#ifndef LG_LG_H
#define LG_LG_H

#include <netinet/in.h>
#include <pthread.h>
#include <stdint.h>
#include <sys/types.h>

#include "bench/loadgen/hist.h"

#define LG_MAX_PIDS 16
#define LG_MAX_SIZE (1u << 20)
#define LG_PATLEN 4096		/* payloads are windows into one random pattern */

enum lg_mode { LG_HOLD, LG_ECHO, LG_RATE, LG_INGEST, LG_FANOUT };

/* Set by main only, read by every client thread. WARM (fanout only) comes between CONNECT
 * and RUN: the publisher probes until every connection has received one. */
enum lg_phase { LG_PH_CONNECT, LG_PH_RUN, LG_PH_DRAIN, LG_PH_WARM };

struct lg_config {
	enum lg_mode mode;
	struct sockaddr_in target;
	char host[64];
	char path[256];
	unsigned conns;
	unsigned threads;
	unsigned sources;	/* bind to 127.0.0.1 .. 127.0.0.<sources> */
	unsigned inflight;
	unsigned size;
	unsigned connect_parallel;	/* handshakes in progress per thread */
	int text;
	int quiet;
	double duration;
	double rate;		/* aggregate messages/s in rate mode */
	double connect_timeout;
	double drain_timeout;
	pid_t pids[LG_MAX_PIDS];
	unsigned npids;
};

/* Counters that main reads while the threads run: relaxed atomics, one writer each. */
struct lg_counters {
	uint64_t connected;
	uint64_t connect_errors;
	uint64_t handshake_errors;
	uint64_t sent;
	uint64_t rcvd;
	uint64_t bytes_sent;
	uint64_t bytes_rcvd;
	uint64_t mismatches;
	uint64_t protocol_errors;
	uint64_t pings;
	uint64_t peer_closed;	/* close frame or EOF that we did not ask for */
	uint64_t close_ok;	/* our close answered by the server's close frame */
	uint64_t close_sent;
	uint64_t closed;	/* connections finished, any way */
};

/* Fanout: connection 0 publishes, every connection (itself included) must receive each
 * message, in order. Shared by the threads; each message's deliveries are counted in a
 * ring of slots, and the one that completes a message records its latency. */
struct lg_fan {
	uint64_t sent;      /* messages published (publisher thread writes) */
	uint64_t completed; /* messages every connection received */
	uint64_t ready;     /* connections that have seen a warm-up probe */
	uint32_t slots;     /* a power of two, well over --inflight */
	uint32_t *count;    /* deliveries of the message in each slot */
	uint64_t *sent_ns;  /* when it was published */
	int efd;            /* an eventfd that wakes the publisher's thread */
};
extern struct lg_fan lg_fan;

struct lg_conn;

struct lg_thread {
	unsigned id;
	pthread_t tid;
	const struct lg_config *cfg;
	int epfd;
	struct lg_conn *conns;	/* this thread's share: global index = i * threads + id */
	unsigned nconns;
	unsigned next_connect;
	unsigned connecting;
	unsigned live;		/* sockets not yet closed */
	enum lg_phase seen;
	uint8_t *rbuf;
	size_t rbuf_cap;
	uint8_t *blk;		/* ingest: a run of ready-masked frames */
	size_t blk_len;
	size_t frame_len;
	/* rate mode: the open-loop schedule cursor */
	uint64_t sched_k;
	unsigned sched_l;
	uint64_t last_close_ns;	/* ingest: when the last close handshake completed */
	uint64_t send_lag_max_ns;
	struct lg_counters c;
	struct lg_hist hist;	/* rate: from the scheduled send */
	struct lg_hist rtt;	/* rate: from the actual send */
	uint64_t rng;
	uint64_t probe_ns;	/* fanout: when the last warm-up probe left */
};

/* The phase clock main drives; times are CLOCK_MONOTONIC ns. */
extern int lg_phase;
extern uint64_t lg_run_start_ns;
extern uint64_t lg_drain_deadline_ns;
extern uint8_t lg_pattern[LG_PATLEN + LG_MAX_SIZE];

uint64_t lg_now_ns(void);

/* Prepares t (allocations abort on OOM) for its share of cfg->conns. */
void lg_client_init(struct lg_thread *t, const struct lg_config *cfg, unsigned id);
/* Thread body: connects, runs the mode, drains, closes every socket, then returns. */
void *lg_client_run(void *arg);
void lg_client_free(struct lg_thread *t);

#define LG_LOAD(x) __atomic_load_n(&(x), __ATOMIC_RELAXED)
#define LG_ADD(x, v) __atomic_store_n(&(x), (x) + (v), __ATOMIC_RELAXED)

#endif
