/*
 * Loading the settings: defaults, the config file (gateway/cfg_file.c), the command line,
 * then what follows from them all (ring sizes, the runtime directory, each route's limits)
 * and the checks that need more than one key.
 */
#include "gateway/cfg_int.h"
#include "gateway/log.h"
#include "shm/ring.h"

#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define WSGW_VERSION "0.1.0"

static char last_error[700];
static int exit_code;

const char *cfg_error(void)
{
	return last_error;
}

int cfg_exit_code(void)
{
	return exit_code;
}

static void usage(FILE *f)
{
	fprintf(f, "usage: wsgw [--config FILE] [options]\n"
		   "       wsgw --check-config FILE [options]   validate FILE, start nothing (exit 0 or 1)\n"
		   "       wsgw ctl [--admin ADDR:PORT] [--json] COMMAND ...   (wsgw ctl --help)\n\n"
		   "Every option is also a key of the config file (wsgw.conf(5)); options win over the file.\n");
	static const int order[] = { CS_LISTEN, CS_ADMIN, CS_LIMITS, CS_GATEWAY, CS_LOG, CS_CLUSTER };
	for (size_t s = 0; s < sizeof(order) / sizeof(order[0]); s++) {
		fprintf(f, "\n[%s]\n", cfg__sect_names[order[s]]);
		for (int i = 0; i < cfg__n_keys; i++) {
			const struct cfg_key *k = &cfg__keys[i];
			if (k->sect != order[s] || !k->opt)
				continue;
			char head[64];
			snprintf(head, sizeof(head), "--%s VALUE", k->opt);
			fprintf(f, "  %-28s %s\n  %-28s   (%s)\n", head, k->help, "", k->want);
		}
	}
	fprintf(f, "\n[route PREFIX]\n"
		   "  --route PREFIX=POOL[,authorize][,KEY=VALUE]...\n"
		   "                               paths starting with PREFIX go to POOL (repeatable;\n"
		   "                               default /=echo, the built-in echo); KEY is any of:\n");
	for (int i = 0; i < cfg__n_keys; i++)
		if (cfg__keys[i].sect == CS_ROUTE && strcmp(cfg__keys[i].name, "pool"))
			fprintf(f, "      %-16s %s (%s)\n", cfg__keys[i].name, cfg__keys[i].help,
				cfg__keys[i].want);
	fprintf(f, "\n  --config FILE                the config file; SIGHUP reads it again\n"
		   "  --check-config FILE          validate FILE with the options given, and exit\n"
		   "  -h, --help, --version\n"
		   "[pool NAME] and [worker NAME] sections exist only in the file: wsgw.conf(5).\n");
}

static void defaults(struct gw_config *cfg)
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
	/* Off: at 20 K msgs/s on 2 vCPUs a spinning loop bought p50 for 40% more CPU, and a
	 * ceiling below the wake-up latency only cost a little (bench/RESULTS.md, issue 15). */
	cfg->wake_spin_us = 0;
	/* The test suite runs every gateway it starts with N loops this way (make check LOOPS=N). */
	const char *lp = getenv("WSGW_LOOPS");
	long nl = lp ? strtol(lp, NULL, 10) : 1;
	cfg->loops = nl >= 1 && nl <= LOOPS_MAX ? (unsigned)nl : 1;
	cfg->gid = (gid_t)-1;
	cfg->worker_memory = 64u << 20;
	cfg->static_max = 1u << 20;
	pmd_cfg_default(&cfg->deflate);
	cfg->cluster.ttl_ms = 10000;
	cfg->cluster.hold = 10000;
}

/* ---- the command line ---- */

enum { OPT_ROUTE = 1000, OPT_CONFIG, OPT_CHECK, OPT_HELP, OPT_VERSION };

static struct option long_opts[CFG_KEYS_MAX + 8];

static void build_opts(void)
{
	if (long_opts[0].name)
		return;
	int n = 0;
	for (int i = 0; i < cfg__n_keys; i++)
		if (cfg__keys[i].opt)
			long_opts[n++] = (struct option){ cfg__keys[i].opt, required_argument, NULL, i };
	long_opts[n++] = (struct option){ "route", required_argument, NULL, OPT_ROUTE };
	long_opts[n++] = (struct option){ "config", required_argument, NULL, OPT_CONFIG };
	long_opts[n++] = (struct option){ "check-config", required_argument, NULL, OPT_CHECK };
	long_opts[n++] = (struct option){ "help", no_argument, NULL, OPT_HELP };
	long_opts[n++] = (struct option){ "version", no_argument, NULL, OPT_VERSION };
}

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

/* --route PREFIX=POOL[,authorize][,KEY=VALUE]...: a route of its own, replacing a route of
 * the file with the same prefix. */
static int cli_route(struct cfg_ctx *x, const char *s)
{
	struct gw_config *cfg = x->cfg;
	struct cfg_route r;
	cfg__route_init(&r);
	const char *eq = strchr(s, '=');
	if (!eq || cfg__set_prefix(&r, s, (size_t)(eq - s))) {
		cfg__fail(x, "--route: expected PREFIX=POOL[,authorize][,KEY=VALUE]... with PREFIX starting with '/' (got '%s')", s);
		return -EINVAL;
	}
	size_t nl = strcspn(eq + 1, ",");
	char pool[CFG_NAME_MAX + 1];
	snprintf(pool, sizeof(pool), "%.*s", (int)(nl < CFG_NAME_MAX ? nl : CFG_NAME_MAX), eq + 1);
	if (nl >= CFG_NAME_MAX || cfg__key_find(CS_ROUTE, "pool")->set(x, &r, cfg__key_find(CS_ROUTE, "pool"), pool)) {
		cfg__fail(x, "--route %.*s: expected PREFIX=POOL with a pool name of letters, digits, - _ . (got '%s')",
			  (int)(eq - s), s, pool);
		return -EINVAL;
	}
	for (const char *o = eq + 1 + nl; *o == ',';) {
		o++;
		size_t ol = strcspn(o, ",");
		char opt[1024];
		snprintf(opt, sizeof(opt), "%.*s", (int)(ol < sizeof(opt) - 1 ? ol : sizeof(opt) - 1), o);
		char *val = strchr(opt, '=');
		if (val)
			*val++ = 0;
		const struct cfg_key *k = cfg__key_find(CS_ROUTE, opt);
		if (!k || !strcmp(opt, "pool") || (!val && strcmp(opt, "authorize"))) {
			cfg__fail(x, "--route %s: unknown option '%s': expected authorize or KEY=VALUE with KEY one of authorize, protocols, origins, deflate, slow, max-message, max-outbound, outbound-policy, idle-timeout, ping-timeout",
				  s, opt);
			return -EINVAL;
		}
		char where[300];
		snprintf(where, sizeof(where), "--route %s", r.prefix);
		if (k->set(x, &r, k, val ? val : "yes")) {
			x->err[0] = 0;
			cfg__fail(x, "%s: %s: expected %s (got '%s')", where, opt, k->want, val ? val : "");
			return -EINVAL;
		}
		o += ol;
	}
	int at = cfg->n_routes;
	for (int i = 0; i < cfg->n_routes; i++)
		if (strcmp(cfg->routes[i].prefix, r.prefix) == 0)
			at = i;
	if (at == CFG_MAX_ROUTES) {
		cfg__fail(x, "--route: expected at most %d routes", CFG_MAX_ROUTES);
		return -EINVAL;
	}
	if (at == cfg->n_routes)
		cfg->n_routes++;
	x->route_line[at] = 0;
	cfg->routes[at] = r;
	return 0;
}

static int cli_listen(struct cfg_ctx *x, const char *v)
{
	struct gw_config *cfg = x->cfg;
	if (!x->cli_listen) {
		/* The command line's listeners replace the file's. */
		cfg->n_listen = 0;
		x->cli_listen = 1;
	}
	if (cfg->n_listen == CFG_MAX_LISTEN) {
		cfg__fail(x, "--listen: expected at most %d listeners", CFG_MAX_LISTEN);
		return -EINVAL;
	}
	struct cfg_listen *l = &cfg->listen[cfg->n_listen];
	if (cfg__parse_listen(v, l)) {
		cfg__fail(x, "--listen: expected ADDR:PORT or [ADDR6]:PORT (got '%s')", v);
		return -EINVAL;
	}
	cfg->n_listen++;
	return 0;
}

/* One pass over argv. Pass 0 finds --config, --check-config, --help and --version and
 * every malformed option; pass 1 applies the settings. Returns 0, CFG_EXIT, or -EINVAL. */
static int parse_cli(struct cfg_ctx *x, int argc, char **argv, int pass, const char **file,
		     int *check)
{
	build_opts();
	optind = 0; /* 0, not 1: glibc then resets all its state, needed for a reload */
	opterr = 0;
	int c, idx;
	x->file = NULL;
	while ((c = getopt_long(argc, argv, ":h", long_opts, &idx)) != -1) {
		if (c == '?' || c == ':') {
			const char *w = argv[optind - 1];
			if (c == '?' && optopt && optopt < 256)
				cfg__fail(x, "-%c: unknown option (see wsgw --help)", optopt);
			else if (c == '?')
				cfg__fail(x, "%s: unknown option (see wsgw --help)", w);
			else
				cfg__fail(x, "%s: expected a value after it", w);
			return -EINVAL;
		}
		if (c != 'h' && !exact_name(argv, long_opts[idx].name)) {
			const char *w = argv[optind - 1][0] == '-' ? argv[optind - 1] : argv[optind - 2];
			cfg__fail(x, "%.*s: unknown option; options are spelled out whole (did you mean --%s?)",
				  (int)strcspn(w, "="), w, long_opts[idx].name);
			return -EINVAL;
		}
		if (c == 'h' || c == OPT_HELP || c == OPT_VERSION) {
			if (pass == 0) {
				if (c == OPT_VERSION)
					printf("wsgw " WSGW_VERSION "\n");
				else
					usage(stdout);
				return CFG_EXIT;
			}
			continue;
		}
		if (c == OPT_CONFIG || c == OPT_CHECK) {
			if (pass == 0) {
				if (!optarg[0] || strlen(optarg) >= CFG_PATH_MAX) {
					cfg__fail(x, "--%s: expected a file name", long_opts[idx].name);
					return -EINVAL;
				}
				*file = optarg;
				*check |= c == OPT_CHECK;
			}
			continue;
		}
		if (pass == 0)
			continue;
		int rc;
		if (c == OPT_ROUTE) {
			rc = cli_route(x, optarg);
		} else if (cfg__keys[c].sect == CS_LISTEN) {
			rc = cli_listen(x, optarg);
		} else {
			rc = cfg__apply(x, x->cfg, &cfg__keys[c], optarg);
			x->given[c] = 2;
		}
		if (rc)
			return -EINVAL;
	}
	if (optind < argc) {
		cfg__fail(x, "'%s': unexpected argument (see wsgw --help)", argv[optind]);
		return -EINVAL;
	}
	return 0;
}

/* ---- what follows from the settings ---- */

/* An error about something the file or the command line said at line (0: no line). */
static int fail_at(struct cfg_ctx *x, const char *file, int line, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static int fail_at(struct cfg_ctx *x, const char *file, int line, const char *fmt, ...)
{
	char msg[600];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	x->file = NULL;
	if (line && file)
		cfg__fail(x, "%s:%d: %s", file, line, msg);
	else
		cfg__fail(x, "%s", msg);
	return -EINVAL;
}

static int given(const struct cfg_ctx *x, const char *sect_key)
{
	for (int i = 0; i < cfg__n_keys; i++) {
		char name[96];
		snprintf(name, sizeof(name), "%s.%s", cfg__sect_names[cfg__keys[i].sect], cfg__keys[i].name);
		if (strcmp(name, sect_key) == 0)
			return x->given[i];
	}
	return 0;
}

static int key_line(const struct cfg_ctx *x, int sect, const char *name)
{
	const struct cfg_key *k = cfg__key_find(sect, name);
	return k && x->given[cfg__key_index(k)] == 1 ? x->key_line[cfg__key_index(k)] : 0;
}

static int resolve_routes(struct cfg_ctx *x, const char *file)
{
	struct gw_config *cfg = x->cfg;
	for (int i = 0; i < cfg->n_routes; i++) {
		struct cfg_route *r = &cfg->routes[i];
		int line = x->route_line[i];
		char name[300];
		if (line)
			snprintf(name, sizeof(name), "[route %s]", r->prefix);
		else
			snprintf(name, sizeof(name), "--route %s", r->prefix);
		if (r->authorize && strcmp(r->pool, "echo") == 0)
			return fail_at(x, file, line, "%s: the built-in echo pool cannot authorize: expected another pool", name);
		struct cfg_conn_limits *l = &r->lim;
		if (!(r->set & CFG_RSET_MAX_MESSAGE))
			l->max_message = cfg->max_message;
		else if (l->max_message > cfg->max_message)
			return fail_at(x, file, line, "%s: max-message %llu: expected at most [limits] max-message (%llu), which the rings are sized for",
				       name, (unsigned long long)l->max_message, (unsigned long long)cfg->max_message);
		if (!(r->set & CFG_RSET_MAX_OUTBOUND))
			l->max_outbound = cfg->max_outbound;
		if (l->max_outbound < l->max_message + 14)
			return fail_at(x, file, line, "%s: max-outbound %zu: expected room for one message (at least max-message + 14 = %llu)",
				       name, l->max_outbound, (unsigned long long)l->max_message + 14);
		if (!(r->set & CFG_RSET_POLICY))
			l->outbound_drop = cfg->outbound_drop;
		if (!(r->set & CFG_RSET_IDLE))
			l->idle_ms = cfg->idle_ms;
		if (!(r->set & CFG_RSET_PING))
			l->ping_ms = given(x, "gateway.ping-timeout") ? cfg->ping_ms : l->idle_ms;
	}
	return 0;
}

static int pool_routed(const struct gw_config *cfg, const char *pool)
{
	for (int i = 0; i < cfg->n_routes; i++)
		if (strcmp(cfg->routes[i].pool, pool) == 0)
			return 1;
	return 0;
}

static int check_pools_and_workers(struct cfg_ctx *x, const char *file)
{
	struct gw_config *cfg = x->cfg;
	for (int i = 0; i < cfg->n_pools; i++) {
		const struct cfg_pool *p = &cfg->pools[i];
		if (!pool_routed(cfg, p->name))
			return fail_at(x, file, x->pool_line[i], "[pool %s]: no route names pool %s: expected a [route PREFIX] with 'pool = %s'",
				       p->name, p->name, p->name);
		if (strcmp(p->name, "echo") == 0)
			return fail_at(x, file, x->pool_line[i], "[pool echo]: the built-in echo pool has no settings");
	}
	unsigned total = 0;
	for (int i = 0; i < cfg->n_workers; i++) {
		const struct cfg_worker *w = &cfg->workers[i];
		int line = x->worker_line[i];
		if (strcmp(w->pool, "echo") == 0 || !pool_routed(cfg, w->pool))
			return fail_at(x, file, line, "[worker %s]: pool %s: expected a worker pool that a route names",
				       w->name, w->pool);
		if (w->user[0] && !getpwnam(w->user))
			return fail_at(x, file, line, "[worker %s]: user %s: expected an existing user", w->name, w->user);
		if (w->backoff_max_ms < w->backoff_ms)
			return fail_at(x, file, line, "[worker %s]: backoff-max: expected at least backoff", w->name);
		total += w->instances;
	}
	if (total > 200)
		return fail_at(x, file, 0, "[worker] sections start %u processes: expected at most 200", total);
	return 0;
}

static int finish(struct cfg_ctx *x, const char *file)
{
	struct gw_config *cfg = x->cfg;
	if (cfg->n_listen == 0)
		cfg__parse_listen("127.0.0.1:8080", &cfg->listen[cfg->n_listen++]);
	if (cfg->n_routes == 0) {
		cfg__route_init(&cfg->routes[0]);
		strcpy(cfg->routes[0].prefix, "/");
		strcpy(cfg->routes[0].pool, "echo");
		cfg->n_routes = 1;
	}
	if (!x->forward_given) {
		static const char *const defaults[] = { "origin", "host", "user-agent", "cookie", "authorization" };
		for (size_t i = 0; i < sizeof(defaults) / sizeof(defaults[0]); i++)
			strcpy(cfg->forward[cfg->n_forward++], defaults[i]);
	}
	/* The largest record a ring must take: a message, or an OPEN carrying what a
	 * request of max-header bytes can put in its fields. */
	uint64_t open_max = cfg_open_max(cfg);
	uint64_t largest = cfg->max_message > open_max ? cfg->max_message : open_max;
	if (!cfg->ring_bytes) {
		/* A record holds at most half a ring (shm/ring.h); four times the largest holds
		 * two of them wherever the ring's head is. */
		uint64_t need = 4 * largest;
		cfg->ring_bytes = 4u << 20;
		while (cfg->ring_bytes < need)
			cfg->ring_bytes <<= 1;
		if (cfg->ring_bytes > SHM_RING_MAX_CAPACITY)
			return fail_at(x, file, key_line(x, CS_LIMITS, "max-message"),
				       "[limits] max-message (--max-message) %llu needs rings of %llu bytes: expected at most %u per ring (max-message at most %u)",
				       (unsigned long long)cfg->max_message, (unsigned long long)cfg->ring_bytes,
				       SHM_RING_MAX_CAPACITY, SHM_RING_MAX_CAPACITY / 4);
	} else if (cfg->ring_bytes / 2 < largest + 64) {
		return fail_at(x, file, key_line(x, CS_GATEWAY, "ring-size"),
			       "[gateway] ring-size (--ring-size) %llu cannot hold a record of %llu bytes: a ring holds records up to half its size, and must take a message of max-message (--max-message, %llu) and an OPEN of a request of max-header (--max-header, %zu bytes, up to %llu as OPEN fields)",
			       (unsigned long long)cfg->ring_bytes, (unsigned long long)largest,
			       (unsigned long long)cfg->max_message, cfg->max_header,
			       (unsigned long long)open_max);
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
	int tls = 0;
	for (int i = 0; i < cfg->n_listen; i++)
		tls |= cfg->listen[i].tls;
	if (tls && (!cfg->tls_cert[0] || !cfg->tls_key[0]))
		return fail_at(x, file, 0, "a ,tls listener ([listen] tls = yes) needs --tls-cert and --tls-key ([gateway] tls-cert and tls-key)");
	if (!tls && (cfg->tls_cert[0] || cfg->tls_key[0] || cfg->tls_chain[0]))
		return fail_at(x, file, key_line(x, CS_GATEWAY, "tls-cert"),
			       "--tls-cert, --tls-key and --tls-chain ([gateway] tls-*) need a ,tls listener (--listen ADDR:PORT,tls, or [listen] tls = yes)");
	if (cfg->curve_clients[0] && !cfg->curve_secret[0])
		return fail_at(x, file, key_line(x, CS_GATEWAY, "curve-clients"),
			       "[gateway] curve-clients (--curve-clients): expected curve-secret-key (--curve-secret-key) too");
	if (!cfg->control[0])
		snprintf(cfg->control, sizeof(cfg->control), "ipc://%s/control", cfg->runtime_dir);
	if (!given(x, "limits.memory-budget")) {
		/* A quarter of the memory: the rest for the kernel's socket buffers (which grow
		 * with connections too), the workers and everything else on the host. */
		long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
		cfg->memory_budget = pages > 0 && page > 0 ? (uint64_t)pages * (uint64_t)page / 4 : 0;
	}
	if (!given(x, "limits.max-outbound")) {
		uint64_t two = 2 * cfg->max_message + 64;
		cfg->max_outbound = two > (16u << 20) ? two : (16u << 20);
	} else if (cfg->max_outbound < cfg->max_message + 14) {
		return fail_at(x, file, key_line(x, CS_LIMITS, "max-outbound"),
			       "[limits] max-outbound (--max-outbound) %zu: expected room for one message (at least max-message + 14 = %llu)",
			       cfg->max_outbound, (unsigned long long)cfg->max_message + 14);
	}
	if (!cfg->ping_ms)
		cfg->ping_ms = cfg->idle_ms;
	cfg->lim = (struct cfg_conn_limits){ cfg->max_message, cfg->max_outbound, cfg->outbound_drop,
					     cfg->idle_ms, cfg->ping_ms };
	if (resolve_routes(x, file) || check_pools_and_workers(x, file))
		return -EINVAL;
	return 0;
}

/* ---- cfg_load ---- */

static int saved_argc;
static char **saved_argv;

static int load(struct gw_config *cfg, int argc, char **argv, int *check)
{
	static struct cfg_ctx x;
	memset(&x, 0, sizeof(x));
	x.cfg = cfg;
	defaults(cfg);
	last_error[0] = 0;
	const char *file = NULL;
	*check = 0;
	int rc = parse_cli(&x, argc, argv, 0, &file, check);
	if (rc == 0 && file) {
		snprintf(cfg->config_file, sizeof(cfg->config_file), "%s", file);
		x.file = file;
		rc = cfg__read_file(&x);
	}
	if (rc == 0)
		rc = parse_cli(&x, argc, argv, 1, &file, check);
	if (rc == 0)
		rc = finish(&x, file);
	if (rc < 0)
		snprintf(last_error, sizeof(last_error), "%s", x.err[0] ? x.err : "the configuration is invalid");
	return rc;
}

int cfg_load(struct gw_config *cfg, int argc, char **argv)
{
	int check;
	saved_argc = argc;
	saved_argv = argv;
	exit_code = 0;
	int rc = load(cfg, argc, argv, &check);
	if (rc == CFG_EXIT || !check)
		return rc;
	/* --check-config: the verdict, and nothing started. */
	if (rc == 0)
		printf("%s: the configuration is valid\n", cfg->config_file);
	exit_code = rc ? 1 : 0;
	return CFG_EXIT;
}

int cfg_reload(struct gw_config *cfg)
{
	int check;
	return load(cfg, saved_argc, saved_argv, &check) ? -EINVAL : 0;
}

char **cfg_argv(void)
{
	return saved_argv;
}

/* ---- lookups ---- */

uint64_t cfg_open_max(const struct gw_config *cfg)
{
	/* Each field costs its name and 5 bytes: :peer (an IPv6 address and port), :path,
	 * :query, :protocols, :protocol (up to 255 bytes, added after an ACCEPT) and the
	 * forwarded headers. Their values come from the request itself, which is at most
	 * max-header bytes (joined repeats are shorter than the header lines they join). */
	uint64_t fields = 5 + 5 + 54 + 4 * (5 + 10) + 255;
	for (int i = 0; i < cfg->n_forward; i++)
		fields += 5 + strlen(cfg->forward[i]);
	return cfg->max_header + fields;
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

const struct cfg_pool *cfg_pool_find(const struct gw_config *cfg, const char *name)
{
	for (int i = 0; i < cfg->n_pools; i++)
		if (strcmp(cfg->pools[i].name, name) == 0)
			return &cfg->pools[i];
	return NULL;
}

int cfg_parse_address(const char *s, struct cfg_listen *l)
{
	return cfg__parse_listen(s, l);
}
