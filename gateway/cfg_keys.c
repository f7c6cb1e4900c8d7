/*
 * Every setting the gateway has: one row each, with its section and key in the file, its
 * command-line option, its parser, its range and its one line of help. --help, the
 * reference (docs/OPERATIONS.md, checked against this table by tests/gateway/test_config.c)
 * and `wsgw ctl config` all come from here.
 */
#include "gateway/cfg_values.h"
#include "gateway/log.h"
#include "gateway/tbuf.h"
#include "shm/spin.h"
#include "wsgw/protocol.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <grp.h>
#include <math.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *const cfg__sect_names[CS_N] = {
	[CS_GATEWAY] = "gateway", [CS_LISTEN] = "listen", [CS_ROUTE] = "route",
	[CS_POOL] = "pool", [CS_WORKER] = "worker", [CS_ADMIN] = "admin",
	[CS_LIMITS] = "limits", [CS_LOG] = "log", [CS_CLUSTER] = "cluster",
};

static const char *const policies[] = { "close", "drop", NULL };
static const char *const slows[] = { "default", "close", "drop-newest", "drop-oldest", "latest", NULL };
static const char *const deflates[] = { "on", "off", "takeover", NULL };
static const char *const restarts[] = { "always", "on-failure", NULL };
static const char *const formats[] = { "text", "json", NULL };

/* ---- the table ---- */

#define G(f) offsetof(struct gw_config, f)
#define R(f) offsetof(struct cfg_route, f)
#define RL(f) (offsetof(struct cfg_route, lim) + offsetof(struct cfg_conn_limits, f))
#define P(f) offsetof(struct cfg_pool, f)
#define W(f) offsetof(struct cfg_worker, f)
#define DF(f) offsetof(struct pmd_cfg, f)
#define SECS 1, 2592000
#define RESTART 1

const struct cfg_key cfg__keys[] = {
	/* [gateway] */
	{ CS_GATEWAY, RESTART, 0, "control", "control", cfgv_set_endpoint, cfgv_get_str, G(control), 0, 256, NULL,
	  "a ZeroMQ endpoint (ipc://PATH or tcp://HOST:PORT)",
	  "the endpoint workers attach to (default ipc://RUNTIME_DIR/control)" },
	{ CS_GATEWAY, RESTART, 0, "runtime-dir", "runtime-dir", cfgv_set_abspath, cfgv_get_str, G(runtime_dir), 0, 200, NULL,
	  "an absolute path",
	  "the control socket and the lock live here (default $RUNTIME_DIRECTORY, /run/wsgw as root, $XDG_RUNTIME_DIR/wsgw, /tmp/wsgw-UID); one gateway per directory" },
	{ CS_GATEWAY, RESTART, 0, "group", "group", cfgv_set_group, cfgv_get_str, G(group), 0, 0, NULL,
	  "the name or number of an existing group",
	  "group of the runtime directory and the sockets (with socket-mode 0660 its members may attach)" },
	{ CS_GATEWAY, RESTART, 0, "socket-mode", "socket-mode", cfgv_set_mode, cfgv_get_mode, G(socket_mode), 0, 0, NULL,
	  "0600 or 0660", "permissions of the control and attach sockets (default 0600)" },
	{ CS_GATEWAY, RESTART, 0, "heartbeat", "heartbeat", cfgv_set_secs, cfgv_get_secs, G(heartbeat_ms), SECS, NULL,
	  "seconds > 0", "heartbeat interval; a worker silent 3 intervals is dead (default 1)" },
	{ CS_GATEWAY, 0, 0, "handshake-timeout", "handshake-timeout", cfgv_set_secs, cfgv_get_secs, G(handshake_ms), SECS, NULL,
	  "seconds > 0", "the whole upgrade request must arrive within this (default 10)" },
	{ CS_GATEWAY, 0, 0, "idle-timeout", "idle-timeout", cfgv_set_secs, cfgv_get_secs, G(idle_ms), SECS, NULL,
	  "seconds > 0", "a silent client is pinged after this (default 60)" },
	{ CS_GATEWAY, 0, 0, "ping-timeout", "ping-timeout", cfgv_set_secs, cfgv_get_secs, G(ping_ms), SECS, NULL,
	  "seconds > 0", "and closed with 1001 when nothing came this long after the ping (default: idle-timeout)" },
	{ CS_GATEWAY, 0, 0, "close-timeout", "close-timeout", cfgv_set_secs, cfgv_get_secs, G(close_ms), SECS, NULL,
	  "seconds > 0", "wait this long for the peer's close frame and its FIN (default 5)" },
	{ CS_GATEWAY, 0, 0, "authorize-timeout", "authorize-timeout", cfgv_set_secs, cfgv_get_secs, G(authorize_ms), SECS, NULL,
	  "seconds > 0", "wait this long for a worker's ACCEPT or REJECT, then 503 (default 5)" },
	{ CS_GATEWAY, 0, 0, "orphan-timeout", "orphan-timeout", cfgv_set_secs, cfgv_get_secs, G(orphan_ms), SECS, NULL,
	  "seconds > 0", "connections whose pool has no worker wait this long, then close 1013 (default 30)" },
	{ CS_GATEWAY, RESTART, 0, "ring-size", "ring-size", cfgv_set_pow2, cfgv_get_u64, G(ring_bytes), 4096, 1u << 30, NULL,
	  "a power of two, 4096..1073741824",
	  "each shared-memory ring of a worker (default 4 MiB, or 4 x the largest record)" },
	{ CS_GATEWAY, RESTART, 0, "zmq-window", "zmq-window", cfgv_set_uint, cfgv_get_uint, G(zmq_window), 1, 1u << 20, NULL,
	  "1..1048576 records", "records a zmq worker may leave unacknowledged (default 1024)" },
	{ CS_GATEWAY, 0, 0, "zmq-window-bytes", "zmq-window-bytes", cfgv_set_u64, cfgv_get_u64, G(zmq_window_bytes), 4096, 1u << 30, NULL,
	  "4096..1073741824", "and their bytes (default 4194304)" },
	{ CS_GATEWAY, RESTART, 0, "loops", "loops", cfgv_set_uint, cfgv_get_uint, G(loops), 1, LOOPS_MAX, NULL,
	  "1..64",
	  "event loops, each a thread with its own epoll set, spreading the connections of built-in routes, TLS handshakes and, with spread-workers, the shm workers and theirs (default 1, or $WSGW_LOOPS)" },
	{ CS_GATEWAY, RESTART, 0, "spread-workers", "spread-workers", cfgv_set_bool, cfgv_get_bool, G(spread_workers), 0, 0,
	  cfgv_yes_no, "yes or no",
	  "with loops above 1, each shm worker is served by one of the loops, not all by loop 0; a live upgrade hands each loop's workers to the same loop of the new process, which needs at least as many loops and spread-workers too (default no)" },
	{ CS_GATEWAY, 0, 0, "wake-spin", "wake-spin", cfgv_set_uint, cfgv_get_uint, G(wake_spin_us), 0, SHM_SPIN_MAX_NS / 1000, NULL,
	  "0..1000 microseconds",
	  "before it sleeps, the loop spins up to this long for a worker's input, less when spinning does not pay (default 0: never)" },
	{ CS_GATEWAY, RESTART, 1, "forward-header", "forward-header", cfgv_set_forward, cfgv_get_forward, 0, 0, 0, NULL,
	  "header names (at most 16)",
	  "request headers passed to workers in OPEN (default origin host user-agent cookie authorization)" },
	{ CS_GATEWAY, RESTART, 0, "curve-secret-key", "curve-secret-key", cfgv_set_str, cfgv_get_str, G(curve_secret), 0, 256, NULL,
	  "a file path", "CURVE on the control channel: the file holds the gateway's Z85 secret key" },
	{ CS_GATEWAY, RESTART, 0, "curve-clients", "curve-clients", cfgv_set_str, cfgv_get_str, G(curve_clients), 0, 256, NULL,
	  "a file path", "Z85 public keys of the workers allowed to attach, one per line" },
	{ CS_GATEWAY, 0, 0, "tls-cert", "tls-cert", cfgv_set_str, cfgv_get_str, G(tls_cert), 0, 256, NULL,
	  "a file path", "PEM certificate of the TLS listeners (may hold its chain); read again at a reload" },
	{ CS_GATEWAY, 0, 0, "tls-key", "tls-key", cfgv_set_str, cfgv_get_str, G(tls_key), 0, 256, NULL,
	  "a file path", "its PEM private key" },
	{ CS_GATEWAY, 0, 0, "tls-chain", "tls-chain", cfgv_set_str, cfgv_get_str, G(tls_chain), 0, 256, NULL,
	  "a file path", "PEM intermediate certificates, if not in tls-cert" },
	{ CS_GATEWAY, RESTART, 0, "static", "static", cfgv_set_str, cfgv_get_str, G(static_dir), 0, 256, NULL,
	  "a directory", "answer plain GET and HEAD requests (not upgrades) with its files (default off; no links followed, no dotfiles)" },
	{ CS_GATEWAY, RESTART, 0, "static-max", "static-max", cfgv_set_u64, cfgv_get_u64, G(static_max), 1, 1u << 30, NULL,
	  "1..1073741824", "the largest file static serves; beyond: 403 (default 1048576)" },
	{ CS_GATEWAY, 0, 0, "deflate-window", "deflate-window", cfgv_set_deflate_u8, cfgv_get_deflate_u8, DF(server_bits), 9, 15, NULL,
	  "9..15", "permessage-deflate's window bits (default 10)" },
	{ CS_GATEWAY, 0, 0, "deflate-level", "deflate-level", cfgv_set_deflate_u8, cfgv_get_deflate_u8, DF(level), 1, 9, NULL,
	  "1..9", "zlib compression level (default 6)" },
	{ CS_GATEWAY, 0, 0, "deflate-mem-level", "deflate-mem-level", cfgv_set_deflate_u8, cfgv_get_deflate_u8, DF(mem_level), 1, 9, NULL,
	  "1..9", "zlib memLevel (default 4)" },
	{ CS_GATEWAY, 0, 0, "deflate-min-size", "deflate-min-size", cfgv_set_deflate_u8, cfgv_get_deflate_u8, DF(min_size), 0, 65535, NULL,
	  "0..65535", "shorter messages are sent uncompressed (default 64)" },

	/* [limits] */
	{ CS_LIMITS, RESTART, 0, "max-message", "max-message", cfgv_set_u64, cfgv_get_u64, G(max_message), 1, 1u << 31, NULL,
	  "1..2147483648", "largest message a client may send, after reassembly; beyond: close 1009 (default 1048576)" },
	{ CS_LIMITS, RESTART, 0, "max-header", "max-header", cfgv_set_size, cfgv_get_size, G(max_header), 256, 1u << 20, NULL,
	  "256..1048576", "largest upgrade request; beyond: 431 (default 8192)" },
	{ CS_LIMITS, 0, 0, "max-outbound", "max-outbound", cfgv_set_size, cfgv_get_size, G(max_outbound), 1024, (uint64_t)1 << 34, NULL,
	  "1024..17179869184", "bytes queued for one slow client; beyond: the policy (default 16 MiB or 2 x max-message)" },
	{ CS_LIMITS, 0, 0, "outbound-policy", "outbound-policy", cfgv_set_enum_int, cfgv_get_enum_int, G(outbound_drop), 0, 0, policies,
	  "close or drop", "past max-outbound: close the client with 1008, or drop the message (default close)" },
	{ CS_LIMITS, 0, 0, "memory-budget", "memory-budget", cfgv_set_u64_or_0, cfgv_get_u64, G(memory_budget), 1u << 20, (uint64_t)1 << 50, NULL,
	  "0 (none) or 1048576..2^50 bytes",
	  "bytes held for all peers together: messages being assembled, queued output, records held for workers (default: a quarter of RAM)" },
	{ CS_LIMITS, 0, 0, "max-assembly", "max-assembly", cfgv_set_u64_or_0, cfgv_get_u64, G(max_assembly), 4096, (uint64_t)1 << 50, NULL,
	  "0 (only the budget) or 4096..2^50 bytes",
	  "of which bytes held in partly received messages; beyond: new fragments are refused with 1009 (default 0)" },
	{ CS_LIMITS, 0, 0, "worker-memory", "worker-memory", cfgv_set_u64, cfgv_get_u64, G(worker_memory), 1u << 16, (uint64_t)1 << 40, NULL,
	  "65536..2^40 bytes", "records held for one worker before it is dropped as not taking them (default 64 MiB)" },
	{ CS_LIMITS, 0, 0, "max-conns", "max-conns", cfgv_set_uint, cfgv_get_uint, G(max_conns), 1, 100000000, NULL,
	  "1..100000000", "connections at once; beyond: 503 (default: what the fd limit allows)" },
	{ CS_LIMITS, 0, 0, "max-conns-per-ip", "max-conns-per-ip", cfgv_set_uint, cfgv_get_uint, G(max_conns_per_ip), 0, 100000000, NULL,
	  "0 (no cap) or 1..100000000", "connections at once from one client address; beyond: 503 (default 0)" },
	{ CS_LIMITS, 0, 0, "handshake-rate", "handshake-rate", cfgv_set_uint, cfgv_get_uint, G(handshake_rate), 0, 10000000, NULL,
	  "0 (no limit) or 1..10000000 per second",
	  "upgrade requests per second from all clients (a burst of one second's worth); beyond: 429 with Retry-After (default 0)" },
	{ CS_LIMITS, 0, 0, "handshake-rate-per-ip", "handshake-rate-per-ip", cfgv_set_uint, cfgv_get_uint, G(handshake_rate_per_ip), 0, 10000000, NULL,
	  "0 (no limit) or 1..10000000 per second", "the same for one client address (default 0)" },
	{ CS_LIMITS, 0, 0, "drain-rate", "drain-rate", cfgv_set_uint, cfgv_get_uint, G(drain_rate), 0, 10000000, NULL,
	  "0 (all at once) or 1..10000000 per second",
	  "a drain (SIGTERM, wsgw ctl drain) closes this many clients per second with 1001, so they do not all reconnect at once (default 0)" },

	/* [log] */
	{ CS_LOG, 0, 0, "level", "log-level", cfgv_set_log_level, cfgv_get_log_level, G(log_level), 0, 0, NULL,
	  "debug, info, warn or error", "lines below this level are not written (default info)" },
	{ CS_LOG, 0, 0, "format", "log-format", cfgv_set_enum_int, cfgv_get_enum_int, G(log_format), 0, 0, formats,
	  "text or json", "key=value lines, or one JSON object per line for shippers (default text)" },

	/* [admin] */
	{ CS_ADMIN, RESTART, 0, "address", "admin", cfgv_set_listen, cfgv_get_listen, G(admin), 0, 0, NULL,
	  "ADDR:PORT or [ADDR6]:PORT",
	  "serve /metrics, /healthz, /workers, /connections and wsgw ctl here (default off); keep it on loopback" },
	{ CS_ADMIN, 0, 0, "token", "admin-token", cfgv_set_str0, cfgv_get_secret, G(admin_token), 0, 128, NULL,
	  "a string of at most 127 bytes",
	  "every request but GET /healthz must carry Authorization: Bearer TOKEN (default none)" },

	/* [listen NAME] */
	{ CS_LISTEN, RESTART, 0, "address", "listen", cfgv_set_listen, cfgv_get_listen, 0, 0, 0, NULL,
	  "ADDR:PORT or [ADDR6]:PORT, then ,tls or nothing",
	  "clients connect here; port 0 picks a free one, logged (default 127.0.0.1:8080)" },
	{ CS_LISTEN, RESTART, 0, "tls", NULL, cfgv_set_listen_tls, cfgv_get_listen_tls, 0, 0, 0, cfgv_yes_no,
	  "yes or no", "clients speak TLS 1.2 or 1.3 (wss://) here, with [gateway] tls-cert and tls-key (default no)" },

	/* [route PREFIX] */
	{ CS_ROUTE, 0, 0, "pool", NULL, cfgv_set_name, cfgv_get_str, R(pool), 0, CFG_NAME_MAX, NULL,
	  "a pool name (letters, digits, - _ .)", "paths starting with PREFIX go to this pool; echo is built in" },
	{ CS_ROUTE, 0, 0, "authorize", NULL, cfgv_set_bool, cfgv_get_bool, R(authorize), 0, 0, cfgv_yes_no,
	  "yes or no", "the pool's worker must ACCEPT each client before the 101 (default no)" },
	{ CS_ROUTE, 0, 0, "protocols", NULL, cfgv_set_protocols, cfgv_get_protocols, 0, 0, 0, NULL,
	  "tokens separated by |, optionally ending in !",
	  "subprotocols the route speaks, preferred first; with a final !, a client offering none gets 400" },
	{ CS_ROUTE, 0, 0, "origins", NULL, cfgv_set_origins, cfgv_get_str, R(origins), 0, 0, NULL,
	  "origins separated by | or spaces",
	  "only clients sending one of these Origin headers are let in; others get 403 (default: any)" },
	{ CS_ROUTE, 0, 0, "deflate", NULL, cfgv_set_enum_u8, cfgv_get_enum_u8, R(deflate), 0, 0, deflates,
	  "on, off or takeover", "permessage-deflate: on without context takeover, off, or keeping context (default on)" },
	{ CS_ROUTE, 0, 0, "slow", NULL, cfgv_set_enum_u8, cfgv_get_enum_u8, R(slow), 0, 0, slows,
	  "default, close, drop-newest, drop-oldest or latest",
	  "what a subscriber past its outbound share gets of published messages (default: as outbound-policy)" },
	{ CS_ROUTE, 0, 0, "max-message", NULL, cfgv_set_route_lim, cfgv_get_route_lim, RL(max_message), 1, 1u << 31, NULL,
	  "1..[limits] max-message", "the route's largest message (default [limits] max-message)" },
	{ CS_ROUTE, 0, 0, "max-outbound", NULL, cfgv_set_route_lim, cfgv_get_route_lim, RL(max_outbound), 1024, (uint64_t)1 << 34, NULL,
	  "1024..17179869184", "the route's outbound cap (default [limits] max-outbound)" },
	{ CS_ROUTE, 0, 0, "outbound-policy", NULL, cfgv_set_route_lim, cfgv_get_route_lim, RL(outbound_drop), 0, 0, policies,
	  "close or drop", "the route's policy past its cap (default [limits] outbound-policy)" },
	{ CS_ROUTE, 0, 0, "idle-timeout", NULL, cfgv_set_route_lim, cfgv_get_route_lim, RL(idle_ms), SECS, NULL,
	  "seconds > 0", "the route's idle timeout (default [gateway] idle-timeout)" },
	{ CS_ROUTE, 0, 0, "ping-timeout", NULL, cfgv_set_route_lim, cfgv_get_route_lim, RL(ping_ms), SECS, NULL,
	  "seconds > 0", "the route's ping timeout (default [gateway] ping-timeout)" },

	/* [pool NAME] */
	{ CS_POOL, 0, 0, "min-workers", NULL, cfgv_set_uint, cfgv_get_uint, P(min_workers), 0, 256, NULL,
	  "0..256", "/healthz is 200 only while the pool has at least this many workers (default 1)" },
	{ CS_POOL, 0, 0, "orphan-timeout", NULL, cfgv_set_secs, cfgv_get_secs, P(orphan_ms), SECS, NULL,
	  "seconds > 0", "the pool's own orphan-timeout (default [gateway] orphan-timeout)" },

	/* [worker NAME] */
	{ CS_WORKER, 0, 0, "command", NULL, cfgv_set_str, cfgv_get_str, W(command), 0, 1024, NULL,
	  "a shell command line",
	  "run as /bin/sh -c 'exec COMMAND' with WSGW_CONTROL, WSGW_POOL and WSGW_INSTANCE set (required)" },
	{ CS_WORKER, 0, 0, "pool", NULL, cfgv_set_name, cfgv_get_str, W(pool), 0, CFG_NAME_MAX, NULL,
	  "a pool name", "the pool it serves, WSGW_POOL (default: the section's NAME)" },
	{ CS_WORKER, 0, 0, "instances", NULL, cfgv_set_uint, cfgv_get_uint, W(instances), 1, 64, NULL,
	  "1..64", "how many copies run (default 1)" },
	{ CS_WORKER, 0, 0, "user", NULL, cfgv_set_name, cfgv_get_str, W(user), 0, CFG_NAME_MAX, NULL,
	  "a user name", "run as this user and its groups (the gateway must run as root; default: the gateway's user)" },
	{ CS_WORKER, 0, 0, "restart", NULL, cfgv_set_enum_u8, cfgv_get_enum_u8, W(restart), 0, 0, restarts,
	  "always or on-failure", "restart it whenever it exits, or only when it failed (default always)" },
	{ CS_WORKER, 0, 0, "backoff", NULL, cfgv_set_secs, cfgv_get_secs, W(backoff_ms), SECS, NULL,
	  "seconds > 0", "the first restart waits this long; each quick death doubles the wait (default 0.5)" },
	{ CS_WORKER, 0, 0, "backoff-max", NULL, cfgv_set_secs, cfgv_get_secs, W(backoff_max_ms), SECS, NULL,
	  "seconds > 0", "the longest wait between restarts (default 30)" },

	/* [cluster] (docs/SCALING.md) */
	{ CS_CLUSTER, RESTART, 0, "redis", "cluster", cfgv_set_redis, cfgv_get_redis, G(cluster), 0, 0, NULL,
	  "redis://[[USER]:PASSWORD@]HOST[:PORT][/DB]",
	  "join the gateways that use this Redis (default port 6379; default off: nothing needs Redis); a password belongs here, not on the command line" },
	{ CS_CLUSTER, RESTART, 0, "node-id", "node-id", cfgv_set_uint, cfgv_get_node_id, G(cluster.node_id), 1, 4095, NULL,
	  "1..4095", "this gateway's id in the cluster, unique per gateway, in every connection id (default: derived from the host name and the first listener, and logged)" },
	{ CS_CLUSTER, RESTART, 0, "ttl", "cluster-ttl", cfgv_set_secs_range, cfgv_get_secs, G(cluster.ttl_ms), 300, 3600000, NULL,
	  "0.3..3600 seconds", "a dead gateway's presence and registration expire within this; refreshed every third of it (default 10)" },
	{ CS_CLUSTER, RESTART, 0, "hold", "cluster-hold", cfgv_set_uint, cfgv_get_uint, G(cluster.hold), 1, 10000000, NULL,
	  "1..10000000 messages", "messages held for the other gateways while Redis is away; beyond: dropped and counted (default 10000)" },
	{ CS_CLUSTER, 0, 1, "history", "history", cfgv_set_history, cfgv_get_history, 0, 0, 0, NULL,
	  "PREFIX=N[,SECONDS], N 1..100000",
	  "topics starting with PREFIX (longest wins; empty: every topic) keep their last N messages, none older than SECONDS (default 86400), for SUBSCRIBE since=; in memory alone, in Redis with redis (repeatable, 16; the same on every gateway)" },
};

const int cfg__n_keys = (int)(sizeof(cfg__keys) / sizeof(cfg__keys[0]));

const struct cfg_key *cfg__key_find(int sect, const char *name)
{
	for (int i = 0; i < cfg__n_keys; i++)
		if (cfg__keys[i].sect == sect && strcmp(cfg__keys[i].name, name) == 0)
			return &cfg__keys[i];
	return NULL;
}

int cfg__key_index(const struct cfg_key *k)
{
	return (int)(k - cfg__keys);
}

void cfg__fail(struct cfg_ctx *x, const char *fmt, ...)
{
	if (x->err[0])
		return; /* the first error is the one to fix */
	size_t n = 0;
	if (x->file)
		n = (size_t)snprintf(x->err, sizeof(x->err), "%s:%d: ", x->file, x->line);
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(x->err + n, sizeof(x->err) - n, fmt, ap);
	va_end(ap);
}

int cfg__apply(struct cfg_ctx *x, void *obj, const struct cfg_key *k, const char *v)
{
	int rc = k->set(x, obj, k, v);
	if (rc == 0)
		return 0;
	char where[96];
	if (x->file && x->sect_text)
		snprintf(where, sizeof(where), "%s %s", x->sect_text, k->name);
	else if (x->file)
		snprintf(where, sizeof(where), "[%s] %s", cfg__sect_names[k->sect], k->name);
	else
		snprintf(where, sizeof(where), "--%s", k->opt ? k->opt : k->name);
	x->err[0] = 0; /* a setter's placeholder gives way to the full reason */
	const char *want = x->why ? x->why : k->want;
	x->why = NULL;
	/* A Redis URL with a user part may hold a password: never echoed. */
	cfg__fail(x, "%s: expected %s (got '%s')", where, want,
		  k->get == cfgv_get_redis && strchr(v, '@') ? "(not shown: it may hold a password)" : v);
	return -EINVAL;
}

int cfg_key_info(int i, struct cfg_key_info *out)
{
	if (i < 0 || i >= cfg__n_keys)
		return -ENOENT;
	const struct cfg_key *k = &cfg__keys[i];
	*out = (struct cfg_key_info){ cfg__sect_names[k->sect], k->name, k->opt, k->want, k->help,
				      k->restart };
	return 0;
}

void cfg__route_init(struct cfg_route *r)
{
	memset(r, 0, sizeof(*r));
	r->slow = CFG_SLOW_DEFAULT;
	r->deflate = CFG_DEFLATE_ON;
}

void cfg__pool_init(struct cfg_pool *p, const char *name)
{
	memset(p, 0, sizeof(*p));
	snprintf(p->name, sizeof(p->name), "%s", name);
	p->min_workers = 1;
}

void cfg__worker_init(struct cfg_worker *w, const char *name)
{
	memset(w, 0, sizeof(*w));
	snprintf(w->name, sizeof(w->name), "%s", name);
	snprintf(w->pool, sizeof(w->pool), "%s", name);
	w->instances = 1;
	w->restart = CFG_RESTART_ALWAYS;
	w->backoff_ms = 500;
	w->backoff_max_ms = 30000;
}

int cfg__set_prefix(struct cfg_route *r, const char *s, size_t n)
{
	if (!n || s[0] != '/' || n >= sizeof(r->prefix))
		return -EINVAL;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] <= ' ' || s[i] == 0x7f)
			return -EINVAL;
	memcpy(r->prefix, s, n);
	r->prefix[n] = 0;
	/* "/chat/" and "/chat" mean the same route. */
	while (n > 1 && r->prefix[n - 1] == '/')
		r->prefix[--n] = 0;
	return 0;
}

/* ---- the settings in force ---- */



/* The keys of sect for object obj: "key = value" lines, or JSON members. */
static void put_keys(struct tbuf *o, int sect, const void *obj, int json)
{
	char v[1100];
	int first = 1;
	for (int i = 0; i < cfg__n_keys; i++) {
		const struct cfg_key *k = &cfg__keys[i];
		if (k->sect != sect)
			continue;
		k->get(obj, k, v, sizeof(v));
		if (json) {
			tbuf_put(o, "%s", first ? "" : ",");
			tbuf_put_json(o, k->name);
			tbuf_put(o, ":");
			tbuf_put_json(o, v);
		} else {
			tbuf_put(o, "%s = %s\n", k->name, v);
		}
		first = 0;
	}
}

static void put_section(struct tbuf *o, int sect, const char *name, const void *obj, int json,
			int *first)
{
	if (json) {
		tbuf_put(o, "%s{\"section\":\"%s\",\"name\":", *first ? "" : ",", cfg__sect_names[sect]);
		tbuf_put_json(o, name ? name : "");
		tbuf_put(o, ",\"keys\":{");
		put_keys(o, sect, obj, json);
		tbuf_put(o, "}}");
	} else {
		tbuf_put(o, "%s[%s%s%s]\n", *first ? "" : "\n", cfg__sect_names[sect], name ? " " : "",
		    name ? name : "");
		put_keys(o, sect, obj, json);
	}
	*first = 0;
}

int cfg_format(const struct gw_config *cfg, int json, char *buf, size_t cap)
{
	struct tbuf o = { buf, cap, 0, 0 };
	int first = 1;
	if (json)
		tbuf_put(&o, "{\"config_file\":"), tbuf_put_json(&o, cfg->config_file), tbuf_put(&o, ",\"sections\":[");
	static const int globals[] = { CS_GATEWAY, CS_LIMITS, CS_LOG, CS_ADMIN, CS_CLUSTER };
	for (size_t i = 0; i < sizeof(globals) / sizeof(globals[0]); i++)
		put_section(&o, globals[i], NULL, cfg, json, &first);
	for (int i = 0; i < cfg->n_listen; i++) {
		char name[16];
		snprintf(name, sizeof(name), "%d", i);
		put_section(&o, CS_LISTEN, cfg->listen[i].name[0] ? cfg->listen[i].name : name,
			    &cfg->listen[i], json, &first);
	}
	for (int i = 0; i < cfg->n_routes; i++)
		put_section(&o, CS_ROUTE, cfg->routes[i].prefix, &cfg->routes[i], json, &first);
	for (int i = 0; i < cfg->n_pools; i++)
		put_section(&o, CS_POOL, cfg->pools[i].name, &cfg->pools[i], json, &first);
	for (int i = 0; i < cfg->n_workers; i++)
		put_section(&o, CS_WORKER, cfg->workers[i].name, &cfg->workers[i], json, &first);
	if (json)
		tbuf_put(&o, "]}\n");
	return o.full ? -ENOSPC : (int)o.len;
}
