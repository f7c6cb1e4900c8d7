/*
 * Gateway settings: defaults, then the config file (INI sections, read with libinih;
 * docs/OPERATIONS.md "Configuration reference" and wsgw.conf(5)), then the command line,
 * which wins. Every key of the file and every option is one row of one table
 * (gateway/cfg_keys.c), so --help, the reference and the parser cannot disagree.
 *
 * Nothing here prints: a refusal leaves its reason, naming the file, the line and what was
 * expected, in cfg_error() for the caller to log.
 */
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
#define CFG_MAX_POOLS 64
#define CFG_MAX_WORKERS 32
#define CFG_PATH_MAX 256
#define CFG_MAX_HISTORY 16

/* What a subscriber past its outbound share gets of a published message. */
enum cfg_slow {
	CFG_SLOW_DEFAULT,     /* as outbound-policy says: close, or drop-newest */
	CFG_SLOW_CLOSE,       /* close 1008 */
	CFG_SLOW_DROP_NEWEST, /* this message is not queued */
	CFG_SLOW_DROP_OLDEST, /* unsent published messages go, oldest first, until it fits */
	CFG_SLOW_LATEST,      /* only the newest unsent message of each topic is kept */
};

enum cfg_deflate { CFG_DEFLATE_ON, CFG_DEFLATE_OFF, CFG_DEFLATE_TAKEOVER };
enum cfg_restart { CFG_RESTART_ALWAYS, CFG_RESTART_ON_FAILURE };
enum cfg_log_format { CFG_LOG_TEXT, CFG_LOG_JSON };

/* No route: a connection not routed yet (conn->route). */
#define CFG_NO_ROUTE 0xff

/* What a connection is held to: [limits] and [gateway] values, which a route may lower or
 * change for its own connections. */
struct cfg_conn_limits {
	uint64_t max_message;     /* bytes; larger messages close with 1009 */
	size_t max_outbound;      /* queued bytes per connection; beyond: the policy */
	int outbound_drop;        /* policy past max_outbound: 0 close 1008, 1 drop the message */
	unsigned idle_ms;         /* silent this long: ping */
	unsigned ping_ms;         /* no frame this long after the ping: close 1001 */
};

/* The most event loops --loops takes (struct conn names its loop in a byte). */
#define LOOPS_MAX 64

struct cfg_route {
	char prefix[256];
	char pool[CFG_NAME_MAX];
	int authorize;        /* the pool's worker ACCEPTs or REJECTs first */
	uint8_t slow;         /* enum cfg_slow */
	uint8_t deflate;      /* enum cfg_deflate */
	uint8_t need_protocol; /* protocols=...!: a client offering none of them gets 400 */
	char protocols[128];  /* the subprotocols it speaks, '|' between, preferred first */
	char origins[512];    /* Origin values allowed, '|' between; "" allows any */
	struct cfg_conn_limits lim; /* resolved at load from the global ones and its own */
	unsigned set;         /* which of lim's members the route gave (enum cfg_route_set) */
};

enum cfg_route_set {
	CFG_RSET_MAX_MESSAGE = 1, CFG_RSET_MAX_OUTBOUND = 2, CFG_RSET_POLICY = 4,
	CFG_RSET_IDLE = 8, CFG_RSET_PING = 16,
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
	char name[CFG_NAME_MAX]; /* [listen NAME]; "" from the command line */
	uint8_t tls;   /* [listen] tls = yes, or ",tls": clients speak TLS here (tls-cert, tls-key) */
	int inherit_fd; /* > 0: a listening socket handed over by the gateway this one replaces
			 * (docs/UPGRADE.md), used instead of binding; 0: bind */
};

/* [pool NAME]: a pool's own settings (pools without a section have the defaults). */
struct cfg_pool {
	char name[CFG_NAME_MAX];
	unsigned min_workers;  /* /healthz counts the pool served with at least this many */
	unsigned orphan_ms;    /* its connections wait this long for a worker; 0: [gateway]'s */
};

/* [worker NAME]: programs the gateway starts, watches and restarts (gateway/supervise.c). */
struct cfg_worker {
	char name[CFG_NAME_MAX];
	char command[1024];    /* run by /bin/sh -c 'exec COMMAND' */
	char pool[CFG_NAME_MAX]; /* WSGW_POOL in its environment */
	char user[CFG_NAME_MAX]; /* run as this user (the gateway must be root); "" as itself */
	unsigned instances;
	uint8_t restart;       /* enum cfg_restart */
	unsigned backoff_ms, backoff_max_ms; /* first delay before a restart, and its cap */
};

struct gw_config {
	char config_file[CFG_PATH_MAX]; /* --config; "" without one */
	struct cfg_listen listen[CFG_MAX_LISTEN];
	int n_listen;
	struct cfg_listen admin;  /* [admin] address: the admin endpoint; len 0 when off */
	char admin_token[128];    /* [admin] token: bearer token for all but /healthz; "" none */
	char static_dir[256];     /* [gateway] static: plain GETs are served from here; "" when off */
	uint64_t static_max;      /* [gateway] static-max: the largest file served */
	struct cfg_route routes[CFG_MAX_ROUTES];
	int n_routes;
	struct cfg_pool pools[CFG_MAX_POOLS];
	int n_pools;
	struct cfg_worker workers[CFG_MAX_WORKERS];
	int n_workers;
	uint64_t max_message;     /* bytes; larger messages close with 1009; rings sized for it */
	size_t max_header;        /* bytes of the HTTP upgrade request; beyond: 431 */
	size_t max_outbound;      /* queued bytes per connection; beyond: the policy */
	int outbound_drop;        /* policy past max_outbound: 0 close 1008, 1 drop the message */
	uint64_t memory_budget;   /* bytes held for peers in all (gateway/budget.h); 0: none */
	uint64_t max_assembly;    /* of which messages being assembled; 0: only the budget */
	struct pmd_cfg deflate;   /* permessage-deflate's settings; routes turn it off or on */
	uint64_t worker_memory;   /* records held for one worker; beyond: it is dropped */
	unsigned max_conns;       /* 0: as many as file descriptors allow */
	unsigned max_conns_per_ip; /* 0: no cap; beyond: 503 */
	unsigned handshake_rate;  /* upgrades per second, all clients; 0: no limit; beyond: 429 */
	unsigned handshake_rate_per_ip; /* the same per client address */
	unsigned drain_rate;      /* connections closed per second by a drain; 0: all at once */
	unsigned handshake_ms;    /* the whole request must arrive within this */
	unsigned idle_ms;         /* silent this long: ping */
	unsigned ping_ms;         /* no frame this long after the ping: close */
	unsigned close_ms;        /* close handshake and lingering close */
	int log_level;
	int log_format;           /* enum cfg_log_format */
	/* workers */
	char control[256];        /* ZeroMQ endpoint of the control ROUTER */
	char runtime_dir[200];    /* where the default ipc:// control endpoint lives */
	/* > 0: handed over by the gateway this one replaces (docs/UPGRADE.md), used instead
	 * of making them: the runtime directory's lock, the control socket's listening
	 * socket, the attach socket's, and the doorbell page's memfd. 0: make them. */
	int inherit_lock_fd, inherit_control_fd, inherit_attach_fd, inherit_bell_fd;
	int inherit_efd; /* the loop's eventfd, which the workers hold; 0: make it */
	/* The same two of loops 1.. (spread-workers): index is the loop's; [0] unused. */
	int inherit_loop_bell[LOOPS_MAX], inherit_loop_efd[LOOPS_MAX];
	unsigned heartbeat_ms;    /* each side speaks at least this often; 3 missed = dead */
	unsigned authorize_ms;    /* wait this long for ACCEPT/REJECT, then 503 */
	unsigned orphan_ms;       /* connections with no worker left wait this long, then 1013 */
	uint64_t ring_bytes;      /* each ring of a worker's segment; a power of two */
	unsigned zmq_window;      /* records a zmq worker may leave unacknowledged */
	uint64_t zmq_window_bytes; /* and their bytes (one record always fits an empty window) */
	unsigned wake_spin_us;    /* the most the loop spins for workers' input before it sleeps */
	unsigned loops;           /* event-loop threads (gateway/loops.h) */
	int spread_workers;       /* shm workers are attached to every loop, not loop 0 only */
	unsigned socket_mode;     /* permissions of the control (ipc://) and attach sockets */
	char group[CFG_NAME_MAX]; /* owner group of the runtime dir and the sockets */
	gid_t gid;                /* its id; (gid_t)-1 without a group */
	char forward[CFG_MAX_FORWARD][CFG_NAME_MAX]; /* request headers passed in OPEN */
	char curve_secret[256];   /* file with the gateway's Z85 CURVE secret key: CURVE on */
	char curve_clients[256];  /* file of Z85 public keys allowed to attach */
	char tls_cert[256];       /* PEM certificate (may hold its chain) of ",tls" listeners */
	char tls_key[256];        /* its PEM private key */
	char tls_chain[256];      /* optional PEM intermediates; "" when none */
	int n_forward;
	struct cfg_conn_limits lim; /* the global ones together, for unrouted connections */
	struct cfg_cluster cluster; /* [cluster] */
	struct cfg_history history[CFG_MAX_HISTORY]; /* [cluster] history = ..., repeatable */
	int n_history;
};

enum cfg_load_result {
	CFG_OK = 0,
	CFG_EXIT = 1,     /* --help, --version or --check-config done: exit with cfg_exit_code */
};

/* Fills cfg with defaults, then the file of --config FILE (if argv names one), then the
 * rest of argv, which wins. Keeps argv for cfg_reload. Returns CFG_OK, CFG_EXIT (--help
 * and --version printed on stdout, --check-config's verdict on stdout/in cfg_error), or
 * -EINVAL with the reason in cfg_error() (a file that is not a regular readable file
 * included). */
int cfg_load(struct gw_config *cfg, int argc, char **argv);
/* After CFG_EXIT: the exit status (0; 1 for a --check-config that failed). */
int cfg_exit_code(void);

/* Reads the config file and the command line of cfg_load again into cfg. Returns 0, or
 * -EINVAL with the reason in cfg_error() (cfg is then unspecified: use a scratch one). */
int cfg_reload(struct gw_config *cfg);
/* The command line cfg_load was given (argv[0] first, NULL-terminated), for a live
 * upgrade that starts the new binary with it. */
char **cfg_argv(void);

/* The reason of the last refusal: "FILE:LINE: [section] key: expected ... (got '...')",
 * or "--option: expected ...". "" when there was none. */
const char *cfg_error(void);

/* The largest OPEN record a request within cfg->max_header can make (the ring is sized
 * for it). */
uint64_t cfg_open_max(const struct gw_config *cfg);

/* The history rule for a topic: the longest --history prefix it starts with, or NULL. */
const struct cfg_history *cfg_history_match(const struct gw_config *cfg, const void *topic,
					    size_t n);

/* Index of the route whose prefix matches path best (longest, on a '/' boundary), or -1.
 * Prefix "/" matches every path; "/chat" matches "/chat", "/chat/x", not "/chatroom". */
int cfg_route_match(const struct gw_config *cfg, const char *path, size_t n);

/* The limits of a connection on route (CFG_NO_ROUTE before it is routed). */
static inline const struct cfg_conn_limits *cfg_limits(const struct gw_config *cfg,
						      unsigned route)
{
	return route < (unsigned)cfg->n_routes ? &cfg->routes[route].lim : &cfg->lim;
}

/* "127.0.0.1:8080", "[::1]:8080" or "*:8080" into l. Returns 0 or -EINVAL. */
int cfg_parse_address(const char *s, struct cfg_listen *l);

/* The [pool NAME] section of pool name, or NULL (the defaults apply). */
const struct cfg_pool *cfg_pool_find(const struct gw_config *cfg, const char *name);

/* Writes the settings in force, every key of the table with its value, as "[section]"
 * blocks of "key = value" lines (json 0) or as one JSON object (json 1). Returns the
 * length, or -ENOSPC. */
int cfg_format(const struct gw_config *cfg, int json, char *out, size_t cap);

/* The key table, for the reference in docs/OPERATIONS.md and its test: the i-th key's
 * section ("gateway", "route", ...), name, command-line option (NULL: file only), what its
 * value must be, and whether changing it needs a restart. Returns 0, or -ENOENT past the
 * last. */
struct cfg_key_info {
	const char *section, *name, *option, *want, *help;
	int restart;
};
int cfg_key_info(int i, struct cfg_key_info *out);

#endif
