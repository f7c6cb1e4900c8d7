#include "gateway/config.h"
#include "gateway/log.h"
#include "shm/ring.h"
#include "wsgw/protocol.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <grp.h>
#include <math.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define WSGW_VERSION "0.1.0"

static void usage(FILE *f)
{
	fprintf(f,
		"usage: wsgw [options]\n"
		"  --listen ADDR:PORT        listen here (repeatable; [::1]:8080 for IPv6; default 127.0.0.1:8080)\n"
		"  --route PREFIX=POOL       route paths starting with PREFIX to POOL (repeatable;\n"
		"                            default /=echo; 'echo' is the built-in echo pool)\n"
		"  --max-message BYTES       largest message accepted (default 1048576; beyond: close 1009)\n"
		"  --max-header BYTES        largest upgrade request (default 8192; beyond: 431)\n"
		"  --max-outbound BYTES      bytes queued per client (default 16 MiB or 2x max-message)\n"
		"  --outbound-policy POLICY  past --max-outbound: close (1008, default) or drop the message\n"
		"  --deflate-window BITS     permessage-deflate's window, 9..15 (default 10)\n"
		"  --deflate-level N         zlib compression level 1..9 (default 6)\n"
		"  --deflate-mem-level N     zlib memLevel 1..9 (default 4)\n"
		"  --deflate-min-size BYTES  shorter messages are sent uncompressed (default 64)\n"
		"  --memory-budget BYTES     bytes held for all peers together: messages being assembled,\n"
		"                            queued output, records held for workers (default: a quarter\n"
		"                            of the machine's memory; 0: none)\n"
		"  --worker-memory BYTES     records held for one worker before it is dropped as not\n"
		"                            taking them (default 64 MiB)\n"
		"  --max-conns N             connections at once (default: what the fd limit allows; beyond: 503)\n"
		"  --handshake-timeout SEC   deadline for the upgrade request (default 10)\n"
		"  --idle-timeout SEC        ping a silent client after SEC, close it after SEC more (default 60)\n"
		"  --close-timeout SEC       wait this long for the peer's close (default 5)\n"
		"  --log-level LEVEL         debug, info, warn or error (default info)\n"
		"  --admin ADDR:PORT         serve GET /metrics (Prometheus text) and /healthz there\n"
		"workers:\n"
		"  --route PREFIX=POOL,authorize  the pool's worker must ACCEPT each client first\n"
		"  --route PREFIX=POOL,protocols=A|B[!]  subprotocols the route speaks, preferred first;\n"
		"                            the first a client offers is answered (! : 400 if none)\n"
		"  --route PREFIX=POOL,deflate=on|off|takeover  permessage-deflate (default on, without\n"
		"                            context takeover; takeover: keep context both ways)\n"
		"  --route PREFIX=POOL,slow=POLICY  a subscriber past its outbound share, for published\n"
		"                            messages: close, drop-newest, drop-oldest or latest (default:\n"
		"                            as --outbound-policy)\n"
		"  --control ENDPOINT        ZeroMQ endpoint workers attach to (default ipc://RUNTIME_DIR/control)\n"
		"  --runtime-dir DIR         default $RUNTIME_DIRECTORY (systemd), /run/wsgw (root),\n"
		"                            $XDG_RUNTIME_DIR/wsgw, or /tmp/wsgw-UID; one gateway per directory\n"
		"  --heartbeat SEC           heartbeat interval; a worker silent 3 intervals is dead (default 1)\n"
		"  --authorize-timeout SEC   wait for ACCEPT/REJECT, then 503 (default 5)\n"
		"  --orphan-timeout SEC      connections whose pool has no worker wait, then close 1013 (default 30)\n"
		"  --ring-size BYTES         each shared-memory ring, a power of two (default: 4 MiB, or 4x the largest record)\n"
		"  --zmq-window N            records a zmq worker may leave unacknowledged (default 1024)\n"
		"  --zmq-window-bytes BYTES  and their bytes (default 4194304)\n"
		"  --socket-mode MODE        control and attach sockets' permissions, octal (default 0600)\n"
		"  --group NAME              group of the runtime dir and the sockets (with --socket-mode\n"
		"                            0660, its members may attach)\n"
		"  --forward-header NAME     request header passed to workers in OPEN (repeatable;\n"
		"                            default origin, host, user-agent, cookie, authorization)\n"
		"  --curve-secret-key FILE   encrypt and authenticate the control channel with CURVE\n"
		"                            (FILE holds the gateway's Z85 secret key)\n"
		"  --curve-clients FILE      Z85 public keys of the workers allowed to attach, one per line\n"
		"cluster (several gateways joined through Redis):\n"
		"  --cluster URL             redis://[[USER]:PASSWORD@]HOST[:PORT][/DB] (default port 6379);\n"
		"                            without it nothing needs Redis (rediss:// needs hiredis >= 1.0)\n"
		"  --node-id N               this gateway's id in the cluster, 1..4095 (default: derived\n"
		"                            from the host name and the first --listen, and logged)\n"
		"  --cluster-ttl SEC         a dead gateway's presence and registration expire within\n"
		"                            this (default 10)\n"
		"  --cluster-hold N          messages held for the other gateways while Redis is away\n"
		"                            (default 10000; beyond: dropped and counted)\n"
		"  --history PREFIX=N[,SEC]  topics starting with PREFIX keep their last N messages, none\n"
		"                            older than SEC (default 86400), for SUBSCRIBE since=OFFSET,EPOCH\n"
		"                            (repeatable; in memory, or in Redis with --cluster)\n"
		"  --config FILE             options from FILE, one per line: 'name = value' (the long option\n"
		"                            without --), '#' comments; the command line adds to and overrides it;\n"
		"                            SIGHUP reads it again\n"
		"  --help, --version\n");
}

/* "127.0.0.1:8080", "[::1]:8080" or "*:8080" into l. Returns 0 or -EINVAL. */
static int cfg_parse_listen(const char *s, struct cfg_listen *l)
{
	char host[64];
	const char *colon;
	memset(l, 0, sizeof(*l));
	if (s[0] == '[') {
		const char *end = strchr(s, ']');
		if (!end || end[1] != ':' || (size_t)(end - s - 1) >= sizeof(host))
			return -EINVAL;
		memcpy(host, s + 1, (size_t)(end - s - 1));
		host[end - s - 1] = 0;
		colon = end + 1;
	} else {
		colon = strrchr(s, ':');
		if (!colon || (size_t)(colon - s) >= sizeof(host))
			return -EINVAL;
		memcpy(host, s, (size_t)(colon - s));
		host[colon - s] = 0;
	}
	char *endp;
	long port = strtol(colon + 1, &endp, 10);
	if (colon[1] == 0 || *endp || port < 0 || port > 65535)
		return -EINVAL;
	struct sockaddr_in *v4 = (struct sockaddr_in *)&l->addr;
	struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&l->addr;
	if (strcmp(host, "*") == 0 || strcmp(host, "0.0.0.0") == 0 || host[0] == 0) {
		v4->sin_family = AF_INET;
		v4->sin_addr.s_addr = htonl(INADDR_ANY);
		v4->sin_port = htons((uint16_t)port);
		l->len = sizeof(*v4);
	} else if (inet_pton(AF_INET, host, &v4->sin_addr) == 1) {
		v4->sin_family = AF_INET;
		v4->sin_port = htons((uint16_t)port);
		l->len = sizeof(*v4);
	} else if (inet_pton(AF_INET6, host, &v6->sin6_addr) == 1) {
		v6->sin6_family = AF_INET6;
		v6->sin6_port = htons((uint16_t)port);
		l->len = sizeof(*v6);
	} else {
		return -EINVAL;
	}
	snprintf(l->text, sizeof(l->text), "%s", s);
	return 0;
}

static int parse_route(const char *s, struct cfg_route *r)
{
	static const char *const slow[] = { [CFG_SLOW_CLOSE] = "close",
		[CFG_SLOW_DROP_NEWEST] = "drop-newest", [CFG_SLOW_DROP_OLDEST] = "drop-oldest",
		[CFG_SLOW_LATEST] = "latest" };
	const char *eq = strchr(s, '=');
	if (!eq || s[0] != '/' || eq[1] == 0)
		return -EINVAL;
	size_t plen = (size_t)(eq - s), nlen = strcspn(eq + 1, ",");
	r->authorize = 0;
	r->slow = CFG_SLOW_DEFAULT;
	r->deflate = CFG_DEFLATE_ON;
	r->need_protocol = 0;
	r->protocols[0] = 0;
	/* Options after the pool, each once: ",authorize", ",slow=POLICY". */
	for (const char *o = eq + 1 + nlen; *o == ','; ) {
		o++;
		size_t ol = strcspn(o, ",");
		if (ol == 9 && strncmp(o, "authorize", 9) == 0 && !r->authorize) {
			r->authorize = 1;
		} else if (ol > 8 && strncmp(o, "deflate=", 8) == 0) {
			const char *v = o + 8;
			size_t vl = ol - 8;
			r->deflate = vl == 2 && !strncmp(v, "on", 2)	     ? CFG_DEFLATE_ON
				     : vl == 3 && !strncmp(v, "off", 3)	     ? CFG_DEFLATE_OFF
				     : vl == 8 && !strncmp(v, "takeover", 8) ? CFG_DEFLATE_TAKEOVER
									     : 0xff;
			if (r->deflate == 0xff)
				return -EINVAL;
		} else if (ol > 10 && strncmp(o, "protocols=", 10) == 0 && !r->protocols[0]) {
			size_t vl = ol - 10;
			if (o[10 + vl - 1] == '!')
				r->need_protocol = 1, vl--;
			if (!vl || vl >= sizeof(r->protocols))
				return -EINVAL;
			memcpy(r->protocols, o + 10, vl);
			r->protocols[vl] = 0;
			/* Tokens (RFC 7230) separated by '|'. */
			for (size_t i = 0; i < vl; i++)
				if (!strchr("!#$%&'*+-.^_`~|", r->protocols[i]) && !isalnum((unsigned char)r->protocols[i]))
					return -EINVAL;
			if (r->protocols[0] == '|' || r->protocols[vl - 1] == '|' || strstr(r->protocols, "||"))
				return -EINVAL;
		} else if (ol > 5 && strncmp(o, "slow=", 5) == 0 && r->slow == CFG_SLOW_DEFAULT) {
			for (int i = CFG_SLOW_CLOSE; i <= CFG_SLOW_LATEST; i++)
				if (strlen(slow[i]) == ol - 5 && strncmp(o + 5, slow[i], ol - 5) == 0)
					r->slow = (uint8_t)i;
			if (r->slow == CFG_SLOW_DEFAULT)
				return -EINVAL;
		} else {
			return -EINVAL;
		}
		o += ol;
	}
	if (nlen == 0)
		return -EINVAL;
	if (plen >= sizeof(r->prefix) || nlen >= sizeof(r->pool))
		return -EINVAL;
	memcpy(r->prefix, s, plen);
	r->prefix[plen] = 0;
	/* "/chat/" and "/chat" mean the same route. */
	while (plen > 1 && r->prefix[plen - 1] == '/')
		r->prefix[--plen] = 0;
	memcpy(r->pool, eq + 1, nlen);
	r->pool[nlen] = 0;
	return 0;
}

static int parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || end == s || *end || s[0] == '-' || v < min || v > max)
		return -EINVAL;
	*out = v;
	return 0;
}

static int parse_seconds(const char *s, unsigned *ms)
{
	char *end;
	double v = strtod(s, &end);
	if (end == s || *end || !isfinite(v) || v <= 0 || v > 86400.0 * 30)
		return -EINVAL;
	*ms = (unsigned)(v * 1000.0 + 0.5);
	if (*ms == 0)
		*ms = 1;
	return 0;
}

/* Copies p[0..n) into dst (cap bytes) as a string. -EINVAL when it does not fit. */
static int copy_part(char *dst, size_t cap, const char *p, size_t n)
{
	if (n >= cap)
		return -EINVAL;
	memcpy(dst, p, n);
	dst[n] = 0;
	return 0;
}

/* redis://[[USER]:PASSWORD@]HOST[:PORT][/DB] into k; "[::1]" for an IPv6 address.
 * Returns 0, or -EINVAL with *what. */
static int parse_cluster_url(const char *s, struct cfg_cluster *k, const char **what)
{
	*what = "--cluster wants redis://[[USER]:PASSWORD@]HOST[:PORT][/DB]";
	if (strncmp(s, "rediss://", 9) == 0) {
		*what = "--cluster rediss:// (TLS) needs hiredis 1.0's hiredis_ssl; Debian 12 has "
			"hiredis 0.14 (see docs/SCALING.md for a TLS tunnel)";
		return -EINVAL;
	}
	if (strncmp(s, "redis://", 8) != 0 || strlen(s) >= sizeof(k->url))
		return -EINVAL;
	strcpy(k->url, s);
	const char *p = s + 8, *at = strrchr(p, '@');
	k->user[0] = k->password[0] = 0;
	if (at) {
		const char *colon = memchr(p, ':', (size_t)(at - p));
		if (!colon || copy_part(k->user, sizeof(k->user), p, (size_t)(colon - p)) ||
		    copy_part(k->password, sizeof(k->password), colon + 1, (size_t)(at - colon - 1)) ||
		    !k->password[0])
			return -EINVAL;
		p = at + 1;
	}
	const char *host = p, *host_end;
	if (*p == '[') {
		host = p + 1;
		host_end = strchr(host, ']');
		if (!host_end)
			return -EINVAL;
		p = host_end + 1;
	} else {
		host_end = p + strcspn(p, ":/");
		p = host_end;
	}
	if (host_end == host || copy_part(k->host, sizeof(k->host), host, (size_t)(host_end - host)))
		return -EINVAL;
	uint64_t v;
	char num[16];
	k->port = 6379;
	k->db = 0;
	if (*p == ':') {
		size_t n = strcspn(p + 1, "/");
		if (copy_part(num, sizeof(num), p + 1, n) || parse_u64(num, 1, 65535, &v))
			return -EINVAL;
		k->port = (unsigned)v;
		p += 1 + n;
	}
	if (*p == '/' && p[1]) {
		if (parse_u64(p + 1, 0, 65535, &v))
			return -EINVAL;
		k->db = (unsigned)v;
	} else if (*p && strcmp(p, "/") != 0) {
		return -EINVAL;
	}
	return 0;
}

/* PREFIX=N[,SECONDS] into h. */
static int parse_history(const char *s, struct cfg_history *h)
{
	const char *eq = strrchr(s, '=');
	uint64_t v;
	char num[24];
	if (!eq || copy_part(h->prefix, sizeof(h->prefix), s, (size_t)(eq - s)) ||
	    strlen(h->prefix) > WSGW_TOPIC_MAX)
		return -EINVAL;
	size_t n = strcspn(eq + 1, ",");
	if (copy_part(num, sizeof(num), eq + 1, n) || parse_u64(num, 1, 100000, &v))
		return -EINVAL;
	h->max = (uint32_t)v;
	h->ttl_ms = 86400u * 1000;
	if (eq[1 + n] == ',') {
		unsigned ms;
		if (parse_seconds(eq + 2 + n, &ms))
			return -EINVAL;
		h->ttl_ms = ms;
	}
	return 0;
}

const struct cfg_history *cfg_history_match(const struct gw_config *cfg, const void *topic,
					    size_t n)
{
	const struct cfg_history *best = NULL;
	size_t best_len = 0;
	for (int i = 0; i < cfg->n_history; i++) {
		size_t plen = strlen(cfg->history[i].prefix);
		if (plen <= n && memcmp(topic, cfg->history[i].prefix, plen) == 0 &&
		    (!best || plen > best_len)) {
			best = &cfg->history[i];
			best_len = plen;
		}
	}
	return best;
}

int cfg_route_match(const struct gw_config *cfg, const char *path, size_t n)
{
	int best = -1;
	size_t best_len = 0;
	for (int i = 0; i < cfg->n_routes; i++) {
		const char *p = cfg->routes[i].prefix;
		size_t plen = strlen(p);
		int ok;
		if (plen == 1) /* "/" */
			ok = n >= 1 && path[0] == '/';
		else
			ok = n >= plen && memcmp(path, p, plen) == 0 && (n == plen || path[plen] == '/');
		if (ok && (best < 0 || plen > best_len)) {
			best = i;
			best_len = plen;
		}
	}
	return best;
}

enum {
	OPT_LISTEN = 256, OPT_ROUTE, OPT_MAX_MESSAGE, OPT_MAX_HEADER, OPT_MAX_OUTBOUND,
	OPT_MEMORY_BUDGET, OPT_WORKER_MEMORY, OPT_DEFLATE_WINDOW, OPT_DEFLATE_LEVEL,
	OPT_DEFLATE_MEM, OPT_DEFLATE_MIN,
	OPT_MAX_CONNS, OPT_HS_TIMEOUT, OPT_IDLE_TIMEOUT, OPT_CLOSE_TIMEOUT, OPT_LOG_LEVEL,
	OPT_HELP, OPT_VERSION, OPT_CONTROL, OPT_RUNTIME_DIR, OPT_HEARTBEAT, OPT_AUTH_TIMEOUT,
	OPT_ORPHAN_TIMEOUT, OPT_RING_SIZE, OPT_FORWARD, OPT_CURVE_SECRET,
	OPT_CURVE_CLIENTS, OPT_OUTBOUND_POLICY, OPT_ADMIN, OPT_CONFIG, OPT_SOCKET_MODE, OPT_GROUP,
	OPT_ZMQ_WINDOW, OPT_ZMQ_WINDOW_BYTES,
	OPT_CLUSTER, OPT_NODE_ID, OPT_CLUSTER_TTL, OPT_CLUSTER_HOLD, OPT_HISTORY,
};

static const struct option long_opts[] = {
	{ "listen", required_argument, NULL, OPT_LISTEN },
	{ "route", required_argument, NULL, OPT_ROUTE },
	{ "max-message", required_argument, NULL, OPT_MAX_MESSAGE },
	{ "max-header", required_argument, NULL, OPT_MAX_HEADER },
	{ "max-outbound", required_argument, NULL, OPT_MAX_OUTBOUND },
	{ "memory-budget", required_argument, NULL, OPT_MEMORY_BUDGET },
	{ "deflate-window", required_argument, NULL, OPT_DEFLATE_WINDOW },
	{ "deflate-level", required_argument, NULL, OPT_DEFLATE_LEVEL },
	{ "deflate-mem-level", required_argument, NULL, OPT_DEFLATE_MEM },
	{ "deflate-min-size", required_argument, NULL, OPT_DEFLATE_MIN },
	{ "worker-memory", required_argument, NULL, OPT_WORKER_MEMORY },
	{ "outbound-policy", required_argument, NULL, OPT_OUTBOUND_POLICY },
	{ "max-conns", required_argument, NULL, OPT_MAX_CONNS },
	{ "handshake-timeout", required_argument, NULL, OPT_HS_TIMEOUT },
	{ "idle-timeout", required_argument, NULL, OPT_IDLE_TIMEOUT },
	{ "close-timeout", required_argument, NULL, OPT_CLOSE_TIMEOUT },
	{ "log-level", required_argument, NULL, OPT_LOG_LEVEL },
	{ "admin", required_argument, NULL, OPT_ADMIN },
	{ "config", required_argument, NULL, OPT_CONFIG },
	{ "control", required_argument, NULL, OPT_CONTROL },
	{ "runtime-dir", required_argument, NULL, OPT_RUNTIME_DIR },
	{ "heartbeat", required_argument, NULL, OPT_HEARTBEAT },
	{ "authorize-timeout", required_argument, NULL, OPT_AUTH_TIMEOUT },
	{ "orphan-timeout", required_argument, NULL, OPT_ORPHAN_TIMEOUT },
	{ "ring-size", required_argument, NULL, OPT_RING_SIZE },
	{ "zmq-window", required_argument, NULL, OPT_ZMQ_WINDOW },
	{ "zmq-window-bytes", required_argument, NULL, OPT_ZMQ_WINDOW_BYTES },
	{ "socket-mode", required_argument, NULL, OPT_SOCKET_MODE },
	{ "group", required_argument, NULL, OPT_GROUP },
	{ "forward-header", required_argument, NULL, OPT_FORWARD },
	{ "curve-secret-key", required_argument, NULL, OPT_CURVE_SECRET },
	{ "curve-clients", required_argument, NULL, OPT_CURVE_CLIENTS },
	{ "cluster", required_argument, NULL, OPT_CLUSTER },
	{ "node-id", required_argument, NULL, OPT_NODE_ID },
	{ "cluster-ttl", required_argument, NULL, OPT_CLUSTER_TTL },
	{ "cluster-hold", required_argument, NULL, OPT_CLUSTER_HOLD },
	{ "history", required_argument, NULL, OPT_HISTORY },
	{ "help", no_argument, NULL, OPT_HELP },
	{ "version", no_argument, NULL, OPT_VERSION },
	{ NULL, 0, NULL, 0 },
};

/* getopt_long takes any unambiguous abbreviation; a setting misread that way (or a
 * --config no one reads) is worse than an error. The option getopt just returned is the
 * word before optind, or the one before that when its value was a word of its own. */
static int exact_name(char **argv, const char *name)
{
	const char *w = argv[optind - 1];
	if (strncmp(w, "--", 2) != 0 && optind >= 2)
		w = argv[optind - 2];
	size_t n = strcspn(w + 2, "=");
	return strncmp(w, "--", 2) == 0 && n == strlen(name) && strncmp(w + 2, name, n) == 0;
}

static int parse_args(struct gw_config *cfg, int argc, char **argv)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->max_message = 1 << 20;
	cfg->max_header = 8192;
	cfg->handshake_ms = 10000;
	cfg->idle_ms = 60000;
	cfg->close_ms = 5000;
	cfg->log_level = LOG_INFO;
	cfg->heartbeat_ms = 1000;
	cfg->authorize_ms = 5000;
	cfg->orphan_ms = 30000;
	cfg->socket_mode = 0600;
	cfg->zmq_window = 1024;
	cfg->zmq_window_bytes = 4u << 20;
	cfg->gid = (gid_t)-1;
	int have_outbound = 0, have_forward = 0, have_budget = 0;
	cfg->worker_memory = 64u << 20;
	pmd_cfg_default(&cfg->deflate);
	cfg->cluster.ttl_ms = 10000;
	cfg->cluster.hold = 10000;

	optind = 0; /* 0, not 1: glibc then resets all its state, needed for a reload */
	int c, idx;
	while ((c = getopt_long(argc, argv, "", long_opts, &idx)) != -1) {
		uint64_t v;
		int rc = 0;
		const char *what = NULL;
		if (c != '?' && !exact_name(argv, long_opts[idx].name)) {
			fprintf(stderr, "wsgw: options are spelled out whole: %s is --%s\n",
				argv[optind - 1][0] == '-' ? argv[optind - 1] : argv[optind - 2],
				long_opts[idx].name);
			return -EINVAL;
		}
		switch (c) {
		case OPT_LISTEN:
			if (cfg->n_listen == CFG_MAX_LISTEN)
				rc = -EINVAL, what = "too many --listen";
			else if ((rc = cfg_parse_listen(optarg, &cfg->listen[cfg->n_listen])) == 0)
				cfg->n_listen++;
			else
				what = "--listen wants ADDR:PORT or [ADDR6]:PORT";
			break;
		case OPT_CONFIG:
			break; /* read by cfg_load before the other options */
		case OPT_ADMIN:
			rc = cfg_parse_listen(optarg, &cfg->admin);
			what = "--admin wants ADDR:PORT or [ADDR6]:PORT";
			break;
		case OPT_ROUTE:
			if (cfg->n_routes == CFG_MAX_ROUTES)
				rc = -EINVAL, what = "too many --route";
			else if ((rc = parse_route(optarg, &cfg->routes[cfg->n_routes])) == 0)
				cfg->n_routes++;
			else
				what = "--route wants /PREFIX=POOL";
			break;
		case OPT_MAX_MESSAGE:
			rc = parse_u64(optarg, 1, (uint64_t)1 << 31, &cfg->max_message);
			what = "--max-message wants 1..2147483648";
			break;
		case OPT_MAX_HEADER:
			if ((rc = parse_u64(optarg, 256, 1 << 20, &v)) == 0)
				cfg->max_header = v;
			what = "--max-header wants 256..1048576";
			break;
		case OPT_MAX_OUTBOUND:
			if ((rc = parse_u64(optarg, 1024, (uint64_t)1 << 34, &v)) == 0)
				cfg->max_outbound = v, have_outbound = 1;
			what = "--max-outbound wants 1024..17179869184";
			break;
		case OPT_MEMORY_BUDGET:
			if (strcmp(optarg, "0") == 0)
				cfg->memory_budget = 0, have_budget = 1;
			else if ((rc = parse_u64(optarg, 1 << 20, (uint64_t)1 << 50, &v)) == 0)
				cfg->memory_budget = v, have_budget = 1;
			what = "--memory-budget wants 0 (none) or 1048576..2^50 bytes";
			break;
		case OPT_DEFLATE_WINDOW:
			if ((rc = parse_u64(optarg, 9, 15, &v)) == 0)
				cfg->deflate.server_bits = cfg->deflate.client_bits = (uint8_t)v;
			what = "--deflate-window wants 9..15";
			break;
		case OPT_DEFLATE_LEVEL:
			if ((rc = parse_u64(optarg, 1, 9, &v)) == 0)
				cfg->deflate.level = (uint8_t)v;
			what = "--deflate-level wants 1..9";
			break;
		case OPT_DEFLATE_MEM:
			if ((rc = parse_u64(optarg, 1, 9, &v)) == 0)
				cfg->deflate.mem_level = (uint8_t)v;
			what = "--deflate-mem-level wants 1..9";
			break;
		case OPT_DEFLATE_MIN:
			if ((rc = parse_u64(optarg, 0, 65535, &v)) == 0)
				cfg->deflate.min_size = (uint16_t)v;
			what = "--deflate-min-size wants 0..65535";
			break;
		case OPT_WORKER_MEMORY:
			if ((rc = parse_u64(optarg, 1 << 16, (uint64_t)1 << 40, &v)) == 0)
				cfg->worker_memory = v;
			what = "--worker-memory wants 65536..2^40 bytes";
			break;
		case OPT_OUTBOUND_POLICY:
			rc = strcmp(optarg, "close") == 0 || strcmp(optarg, "drop") == 0 ? 0 : -EINVAL;
			cfg->outbound_drop = strcmp(optarg, "drop") == 0;
			what = "--outbound-policy wants close or drop";
			break;
		case OPT_MAX_CONNS:
			if ((rc = parse_u64(optarg, 1, 100000000, &v)) == 0)
				cfg->max_conns = (unsigned)v;
			what = "--max-conns wants 1..100000000";
			break;
		case OPT_HS_TIMEOUT:
			rc = parse_seconds(optarg, &cfg->handshake_ms);
			what = "--handshake-timeout wants seconds > 0";
			break;
		case OPT_IDLE_TIMEOUT:
			rc = parse_seconds(optarg, &cfg->idle_ms);
			what = "--idle-timeout wants seconds > 0";
			break;
		case OPT_CLOSE_TIMEOUT:
			rc = parse_seconds(optarg, &cfg->close_ms);
			what = "--close-timeout wants seconds > 0";
			break;
		case OPT_LOG_LEVEL: {
			enum log_level lvl;
			if ((rc = log_parse_level(optarg, &lvl)) == 0)
				cfg->log_level = (int)lvl;
			what = "--log-level wants debug, info, warn or error";
			break;
		}
		case OPT_CONTROL:
			rc = strlen(optarg) < sizeof(cfg->control) && strstr(optarg, "://") ? 0 : -EINVAL;
			if (!rc)
				strcpy(cfg->control, optarg);
			what = "--control wants a ZeroMQ endpoint (ipc://PATH or tcp://HOST:PORT)";
			break;
		case OPT_RUNTIME_DIR:
			rc = strlen(optarg) < sizeof(cfg->runtime_dir) && optarg[0] == '/' ? 0 : -EINVAL;
			if (!rc)
				strcpy(cfg->runtime_dir, optarg);
			what = "--runtime-dir wants an absolute path";
			break;
		case OPT_HEARTBEAT:
			rc = parse_seconds(optarg, &cfg->heartbeat_ms);
			what = "--heartbeat wants seconds > 0";
			break;
		case OPT_AUTH_TIMEOUT:
			rc = parse_seconds(optarg, &cfg->authorize_ms);
			what = "--authorize-timeout wants seconds > 0";
			break;
		case OPT_ORPHAN_TIMEOUT:
			rc = parse_seconds(optarg, &cfg->orphan_ms);
			what = "--orphan-timeout wants seconds > 0";
			break;
		case OPT_RING_SIZE:
			rc = parse_u64(optarg, 4096, (uint64_t)1 << 30, &cfg->ring_bytes);
			if (!rc && (cfg->ring_bytes & (cfg->ring_bytes - 1)))
				rc = -EINVAL;
			what = "--ring-size wants a power of two, 4096..1073741824";
			break;
		case OPT_ZMQ_WINDOW:
			if ((rc = parse_u64(optarg, 1, 1u << 20, &v)) == 0)
				cfg->zmq_window = (unsigned)v;
			what = "--zmq-window wants 1..1048576 records";
			break;
		case OPT_ZMQ_WINDOW_BYTES:
			rc = parse_u64(optarg, 4096, (uint64_t)1 << 30, &cfg->zmq_window_bytes);
			what = "--zmq-window-bytes wants 4096..1073741824";
			break;
		case OPT_SOCKET_MODE: {
			char *end;
			unsigned long m = strtoul(optarg, &end, 8);
			rc = *end || end == optarg || (m != 0600 && m != 0660) ? -EINVAL : 0;
			cfg->socket_mode = (unsigned)m;
			what = "--socket-mode wants 0600 or 0660";
			break;
		}
		case OPT_GROUP: {
			/* Resolved now: a name that does not exist is an error at start, not later. */
			struct group *g = strlen(optarg) < sizeof(cfg->group) ? getgrnam(optarg) : NULL;
			char *end;
			unsigned long id = strtoul(optarg, &end, 10);
			rc = 0;
			if (g)
				cfg->gid = g->gr_gid;
			else if (optarg[0] && !*end && id < (gid_t)-1)
				cfg->gid = (gid_t)id;
			else
				rc = -EINVAL;
			if (!rc)
				snprintf(cfg->group, sizeof(cfg->group), "%s", optarg);
			what = "--group wants the name or number of an existing group";
			break;
		}
		case OPT_FORWARD:
			if (!have_forward)
				cfg->n_forward = 0, have_forward = 1;
			rc = cfg->n_forward < CFG_MAX_FORWARD && strlen(optarg) < CFG_NAME_MAX &&
			     strlen(optarg) > 0 ? 0 : -EINVAL;
			if (!rc) {
				char name[CFG_NAME_MAX];
				for (size_t i = 0; i <= strlen(optarg); i++)
					name[i] = (char)tolower((unsigned char)optarg[i]);
				/* A header forwarded twice, or the offered subprotocols (already
				 * :protocols), would put the same request bytes in the OPEN twice:
				 * more than the rings are sized for (cfg_open_max). */
				int dup = strcmp(name, "sec-websocket-protocol") == 0;
				for (int i = 0; i < cfg->n_forward && !dup; i++)
					dup = strcmp(cfg->forward[i], name) == 0;
				if (dup)
					fprintf(stderr, "wsgw: --forward-header %s: already in the OPEN fields, not forwarded twice\n",
						optarg);
				else
					strcpy(cfg->forward[cfg->n_forward++], name);
			}
			what = "--forward-header wants a header name (at most 16 of them)";
			break;
		case OPT_CURVE_SECRET:
		case OPT_CURVE_CLIENTS: {
			char *dst = c == OPT_CURVE_SECRET ? cfg->curve_secret : cfg->curve_clients;
			rc = strlen(optarg) < sizeof(cfg->curve_secret) ? 0 : -EINVAL;
			if (!rc)
				strcpy(dst, optarg);
			what = "--curve-secret-key and --curve-clients want a file path";
			break;
		}
		case OPT_CLUSTER:
			/* Not echoed: the URL may hold a password. */
			if (parse_cluster_url(optarg, &cfg->cluster, &what)) {
				fprintf(stderr, "wsgw: %s\n", what);
				return -EINVAL;
			}
			break;
		case OPT_NODE_ID:
			if ((rc = parse_u64(optarg, 1, 4095, &v)) == 0)
				cfg->cluster.node_id = (unsigned)v;
			what = "--node-id wants 1..4095";
			break;
		case OPT_CLUSTER_TTL:
			rc = parse_seconds(optarg, &cfg->cluster.ttl_ms);
			if (!rc && (cfg->cluster.ttl_ms < 300 || cfg->cluster.ttl_ms > 3600000))
				rc = -EINVAL;
			what = "--cluster-ttl wants 0.3..3600 seconds";
			break;
		case OPT_CLUSTER_HOLD:
			if ((rc = parse_u64(optarg, 1, 10000000, &v)) == 0)
				cfg->cluster.hold = (unsigned)v;
			what = "--cluster-hold wants 1..10000000 messages";
			break;
		case OPT_HISTORY:
			if (cfg->n_history == CFG_MAX_HISTORY)
				rc = -EINVAL, what = "too many --history";
			else if ((rc = parse_history(optarg, &cfg->history[cfg->n_history])) == 0)
				cfg->n_history++;
			else
				what = "--history wants TOPIC_PREFIX=N[,SECONDS], N 1..100000";
			break;
		case OPT_HELP:
			usage(stdout);
			return 1;
		case OPT_VERSION:
			printf("wsgw " WSGW_VERSION "\n");
			return 1;
		default:
			fprintf(stderr, "wsgw: see wsgw --help\n");
			return -EINVAL;
		}
		if (rc) {
			fprintf(stderr, "wsgw: %s (got '%s')\n", what, optarg);
			return -EINVAL;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "wsgw: unexpected argument '%s' (see wsgw --help)\n", argv[optind]);
		return -EINVAL;
	}
	if (cfg->n_listen == 0)
		cfg_parse_listen("127.0.0.1:8080", &cfg->listen[cfg->n_listen++]);
	if (cfg->n_routes == 0)
		parse_route("/=echo", &cfg->routes[cfg->n_routes++]);
	for (int i = 0; i < cfg->n_routes; i++) {
		if (cfg->routes[i].authorize && strcmp(cfg->routes[i].pool, "echo") == 0) {
			fprintf(stderr, "wsgw: --route %s: the built-in echo pool cannot authorize\n",
				cfg->routes[i].prefix);
			return -EINVAL;
		}
	}
	if (!have_forward) {
		static const char *const defaults[] = { "origin", "host", "user-agent", "cookie", "authorization" };
		for (size_t i = 0; i < sizeof(defaults) / sizeof(defaults[0]); i++)
			strcpy(cfg->forward[cfg->n_forward++], defaults[i]);
	}
	/* The largest record a ring must take: a message, or an OPEN carrying what a
	 * request of --max-header bytes can put in its fields. */
	uint64_t open_max = cfg_open_max(cfg);
	uint64_t largest = cfg->max_message > open_max ? cfg->max_message : open_max;
	if (!cfg->ring_bytes) {
		/* A record holds at most half a ring (shm/ring.h); four times the largest holds
		 * two of them wherever the ring's head is. */
		uint64_t need = 4 * largest;
		cfg->ring_bytes = 4u << 20;
		while (cfg->ring_bytes < need)
			cfg->ring_bytes <<= 1;
		if (cfg->ring_bytes > SHM_RING_MAX_CAPACITY) {
			fprintf(stderr, "wsgw: --max-message %llu needs rings of %llu bytes, more than the %u a ring may have\n",
				(unsigned long long)cfg->max_message, (unsigned long long)cfg->ring_bytes,
				SHM_RING_MAX_CAPACITY);
			return -EINVAL;
		}
	} else if (cfg->ring_bytes / 2 < largest + 64) {
		fprintf(stderr, "wsgw: --ring-size %llu cannot hold a record of %llu bytes: a ring holds records up to half its size, and must take a message of --max-message (%llu) and an OPEN of a request of --max-header (%zu bytes, up to %llu as OPEN fields)\n",
			(unsigned long long)cfg->ring_bytes, (unsigned long long)largest,
			(unsigned long long)cfg->max_message, cfg->max_header,
			(unsigned long long)open_max);
		return -EINVAL;
	}
	if (!cfg->runtime_dir[0]) {
		const char *xdg = getenv("XDG_RUNTIME_DIR");
		/* systemd's RuntimeDirectory= names the directory it made for the service. */
		const char *sd = getenv("RUNTIME_DIRECTORY");
		if (sd && sd[0] == '/' && !strchr(sd, ':') && strlen(sd) < sizeof(cfg->runtime_dir))
			strcpy(cfg->runtime_dir, sd);
		else if (geteuid() == 0)
			strcpy(cfg->runtime_dir, "/run/wsgw");
		else if (xdg && xdg[0] == '/' && strlen(xdg) < sizeof(cfg->runtime_dir) - 6)
			snprintf(cfg->runtime_dir, sizeof(cfg->runtime_dir), "%s/wsgw", xdg);
		else
			snprintf(cfg->runtime_dir, sizeof(cfg->runtime_dir), "/tmp/wsgw-%u", (unsigned)geteuid());
	}
	if (cfg->curve_clients[0] && !cfg->curve_secret[0]) {
		fprintf(stderr, "wsgw: --curve-clients needs --curve-secret-key\n");
		return -EINVAL;
	}
	if (!cfg->control[0])
		snprintf(cfg->control, sizeof(cfg->control), "ipc://%s/control", cfg->runtime_dir);
	if (!have_budget) {
		/* A quarter of the memory: the rest for the kernel's socket buffers (which grow
		 * with connections too), the workers and everything else on the host. */
		long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
		cfg->memory_budget = pages > 0 && page > 0 ? (uint64_t)pages * (uint64_t)page / 4 : 0;
	}
	if (!have_outbound) {
		uint64_t two = 2 * cfg->max_message + 64;
		cfg->max_outbound = two > (16u << 20) ? two : (16u << 20);
	} else if (cfg->max_outbound < cfg->max_message + 14) {
		fprintf(stderr, "wsgw: --max-outbound must hold one message (>= max-message + 14)\n");
		return -EINVAL;
	}
	return 0;
}

/* The command line of cfg_load, kept for SIGHUP. */
static int saved_argc;
static char **saved_argv;

#define CFG_FILE_MAX (64 << 10)
#define CFG_ARGS_MAX 512

/* Appends the options of the config file to args as "--name", "value" pairs. The strings
 * live in *text (caller frees). Returns the new count, or -EINVAL after printing why. */
static int read_config_file(const char *path, char **args, int n, char **text)
{
	FILE *f = fopen(path, "r");
	if (!f) {
		fprintf(stderr, "wsgw: cannot read config file %s: %s\n", path, strerror(errno));
		return -EINVAL;
	}
	char *buf = malloc(CFG_FILE_MAX + 1);
	size_t len = buf ? fread(buf, 1, CFG_FILE_MAX + 1, f) : 0;
	fclose(f);
	if (!buf || len > CFG_FILE_MAX) {
		fprintf(stderr, "wsgw: config file %s is larger than %d bytes\n", path, CFG_FILE_MAX);
		free(buf);
		return -EINVAL;
	}
	buf[len] = 0;
	/* Each option becomes "--name" then its value: room for the "--" in front. */
	char *out = malloc(2 * len + 4), *o = out;
	*text = out;
	if (!out) {
		free(buf);
		return -EINVAL;
	}
	int lineno = 0;
	for (char *line = buf, *next; line; line = next) {
		next = strchr(line, '\n');
		if (next)
			*next++ = 0;
		lineno++;
		char *hash = strchr(line, '#');
		if (hash)
			*hash = 0;
		char *name = line + strspn(line, " \t\r");
		if (!*name)
			continue;
		size_t nl = strcspn(name, " \t\r=");
		char *val = name + nl;
		val += strspn(val, " \t\r");
		if (*val == '=')
			val++;
		val += strspn(val, " \t\r");
		size_t vl = strlen(val);
		while (vl && (val[vl - 1] == ' ' || val[vl - 1] == '\t' || val[vl - 1] == '\r'))
			vl--;
		if (n + 2 >= CFG_ARGS_MAX || strncmp(name, "config", nl) == 0) {
			fprintf(stderr, "wsgw: %s:%d: %s\n", path, lineno,
				n + 2 >= CFG_ARGS_MAX ? "too many options" : "config files do not nest");
			free(buf);
			return -EINVAL;
		}
		args[n++] = o;
		o += sprintf(o, "--%.*s", (int)nl, name) + 1;
		if (vl) {
			args[n++] = o;
			memcpy(o, val, vl);
			o[vl] = 0;
			o += vl + 1;
		}
	}
	free(buf);
	return n;
}

static const char *config_path(int argc, char **argv)
{
	const char *path = NULL;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--config") == 0 && i + 1 < argc)
			path = argv[++i];
		else if (strncmp(argv[i], "--config=", 9) == 0)
			path = argv[i] + 9;
	}
	return path;
}

static int load(struct gw_config *cfg, int argc, char **argv)
{
	const char *path = config_path(argc, argv);
	if (!path)
		return parse_args(cfg, argc, argv);
	static char *args[CFG_ARGS_MAX + 1];
	char *text = NULL;
	args[0] = argv[0];
	int n = read_config_file(path, args, 1, &text);
	if (n < 0) {
		free(text);
		return n;
	}
	if (n + argc >= CFG_ARGS_MAX) {
		fprintf(stderr, "wsgw: too many options\n");
		free(text);
		return -EINVAL;
	}
	for (int i = 1; i < argc; i++)
		args[n++] = argv[i];
	args[n] = NULL;
	int rc = parse_args(cfg, n, args);
	free(text);
	return rc;
}

uint64_t cfg_open_max(const struct gw_config *cfg)
{
	/* Each field costs its name and 5 bytes: :peer (an IPv6 address and port), :path,
	 * :query, :protocols, :protocol (up to 255 bytes, added after an ACCEPT) and the
	 * forwarded headers. Their values come from the request itself, which is at most
	 * --max-header bytes (joined repeats are shorter than the header lines they join). */
	uint64_t fields = 5 + 5 + 54 + 4 * (5 + 10) + 255;
	for (int i = 0; i < cfg->n_forward; i++)
		fields += 5 + strlen(cfg->forward[i]);
	return cfg->max_header + fields;
}

int cfg_load(struct gw_config *cfg, int argc, char **argv)
{
	saved_argc = argc;
	saved_argv = argv;
	return load(cfg, argc, argv);
}

int cfg_reload(struct gw_config *cfg)
{
	return load(cfg, saved_argc, saved_argv) ? -EINVAL : 0;
}
