/* Gateway settings from the command line. */
#ifndef WSGW_CONFIG_H
#define WSGW_CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

#include "gateway/deflate.h"

#define CFG_MAX_LISTEN 16
#define CFG_MAX_ROUTES 64
#define CFG_NAME_MAX 64
#define CFG_MAX_FORWARD 16
#define CFG_MAX_HISTORY 16

/* What a subscriber past its outbound share gets of a published message. */
enum cfg_slow {
	CFG_SLOW_DEFAULT,     /* as --outbound-policy says: close, or drop-newest */
	CFG_SLOW_CLOSE,       /* close 1008 */
	CFG_SLOW_DROP_NEWEST, /* this message is not queued */
	CFG_SLOW_DROP_OLDEST, /* unsent published messages go, oldest first, until it fits */
	CFG_SLOW_LATEST,      /* only the newest unsent message of each topic is kept */
};

enum cfg_deflate { CFG_DEFLATE_ON, CFG_DEFLATE_OFF, CFG_DEFLATE_TAKEOVER };

struct cfg_route {
	char prefix[256];
	char pool[CFG_NAME_MAX];
	int authorize;        /* "/x=pool,authorize": the pool's worker ACCEPTs or REJECTs first */
	uint8_t slow;         /* ",slow=POLICY": enum cfg_slow */
	uint8_t deflate;      /* ",deflate=on|off|takeover": enum cfg_deflate */
	uint8_t need_protocol; /* ",protocols=...!": a client offering none of them gets 400 */
	char protocols[128];  /* ",protocols=a|b": the subprotocols it speaks, preferred first */
};

/* Several gateways joined through Redis (gateway/cluster.h): --cluster and the options
 * after it. One small struct, so that a [cluster] section of a config file maps onto it
 * key by key. url empty: no cluster, and Redis is never needed. */
struct cfg_cluster {
	char url[256];        /* --cluster redis://[[USER]:PASSWORD@]HOST[:PORT][/DB] */
	char host[128];       /* the parts of url */
	unsigned port;
	unsigned db;
	char user[64];
	char password[128];
	unsigned node_id;     /* --node-id 1..4095; 0: derived at start, and logged */
	unsigned ttl_ms;      /* --cluster-ttl: a dead gateway's presence and registration
	                       * expire within this */
	unsigned hold;        /* --cluster-hold: messages held for the other gateways while
	                       * Redis is away, at most; beyond: dropped, and counted */
};

/* --history PREFIX=N[,SECONDS]: a topic starting with PREFIX keeps its last N published
 * messages, none older than SECONDS (the whole history goes SECONDS after the last
 * publish), for SUBSCRIBE since=OFFSET,EPOCH. */
struct cfg_history {
	char prefix[256];
	uint32_t max;
	uint32_t ttl_ms;
};

struct cfg_listen {
	struct sockaddr_storage addr;
	socklen_t len;
	char text[80]; /* as given, for logs */
};

struct gw_config {
	struct cfg_listen listen[CFG_MAX_LISTEN];
	int n_listen;
	struct cfg_listen admin;  /* --admin: /metrics and /healthz; len 0 when off */
	struct cfg_route routes[CFG_MAX_ROUTES];
	int n_routes;
	uint64_t max_message;     /* bytes; larger messages close with 1009 */
	size_t max_header;        /* bytes of the HTTP upgrade request; beyond: 431 */
	size_t max_outbound;      /* queued bytes per connection; beyond: the policy */
	int outbound_drop;        /* policy past max_outbound: 0 close 1008, 1 drop the message */
	uint64_t memory_budget;   /* bytes held for peers in all (gateway/budget.h); 0: none */
	struct pmd_cfg deflate;   /* permessage-deflate's settings; routes turn it off or on */
	uint64_t worker_memory;   /* records held for one worker; beyond: it is dropped */
	unsigned max_conns;       /* 0: as many as file descriptors allow */
	unsigned handshake_ms;    /* the whole request must arrive within this */
	unsigned idle_ms;         /* silent this long: ping; silent again: close */
	unsigned close_ms;        /* close handshake and lingering close */
	int log_level;
	/* workers */
	char control[256];        /* ZeroMQ endpoint of the control ROUTER */
	char runtime_dir[200];    /* where the default ipc:// control endpoint lives */
	unsigned heartbeat_ms;    /* each side speaks at least this often; 3 missed = dead */
	unsigned authorize_ms;    /* wait this long for ACCEPT/REJECT, then 503 */
	unsigned orphan_ms;       /* connections with no worker left wait this long, then 1013 */
	uint64_t ring_bytes;      /* each ring of a worker's segment; a power of two */
	unsigned zmq_window;      /* records a zmq worker may leave unacknowledged */
	uint64_t zmq_window_bytes; /* and their bytes (one record always fits an empty window) */
	unsigned socket_mode;     /* permissions of the control (ipc://) and attach sockets */
	char group[CFG_NAME_MAX]; /* --group: owner group of the runtime dir and the sockets */
	gid_t gid;                /* its id; (gid_t)-1 without --group */
	char forward[CFG_MAX_FORWARD][CFG_NAME_MAX]; /* request headers passed in OPEN */
	char curve_secret[256];   /* file with the gateway's Z85 CURVE secret key: CURVE on */
	char curve_clients[256];  /* file of Z85 public keys allowed to attach */
	int n_forward;
	struct cfg_cluster cluster;
	struct cfg_history history[CFG_MAX_HISTORY];
	int n_history;
};

/* Fills cfg with defaults, then the options of --config FILE (if argv names one), then the
 * rest of argv, which wins. Keeps argv for cfg_reload. Returns 0, 1 when --help or
 * --version was printed (exit 0), or -EINVAL after printing the reason to stderr (an
 * unreadable config file included). */
int cfg_load(struct gw_config *cfg, int argc, char **argv);

/* Reads the config file and the command line of cfg_load again into cfg. Returns 0, or
 * -EINVAL with the reason printed to stderr (cfg is then unspecified: use a scratch one). */
int cfg_reload(struct gw_config *cfg);

/* The largest OPEN record a request within cfg->max_header can make (the ring is sized
 * for it). */
uint64_t cfg_open_max(const struct gw_config *cfg);

/* The history rule for a topic: the longest --history prefix it starts with, or NULL. */
const struct cfg_history *cfg_history_match(const struct gw_config *cfg, const void *topic,
					    size_t n);

/* Index of the route whose prefix matches path best (longest, on a '/' boundary), or -1.
 * Prefix "/" matches every path; "/chat" matches "/chat", "/chat/x", not "/chatroom". */
int cfg_route_match(const struct gw_config *cfg, const char *path, size_t n);

#endif
