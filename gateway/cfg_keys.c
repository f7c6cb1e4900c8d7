/*
 * Every setting the gateway has: one row each, with its section and key in the file, its
 * command-line option, its parser, its range and its one line of help. --help, the
 * reference (docs/OPERATIONS.md, checked against this table by tests/gateway/test_config.c)
 * and `wsgw ctl config` all come from here.
 */
#include "gateway/cfg_int.h"
#include "gateway/log.h"
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

/* ---- values ---- */

#define FIELD(obj, k, type) ((type *)((char *)(obj) + (k)->off))
#define CFIELD(obj, k, type) ((const type *)((const char *)(obj) + (k)->off))

static int parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || end == s || *end || !isdigit((unsigned char)s[0]) || v < min || v > max)
		return -EINVAL;
	*out = v;
	return 0;
}

static int set_u64(struct cfg_ctx *x, void *o, const struct cfg_key *k, const char *v)
{
	(void)x;
	return parse_u64(v, k->min, k->max, FIELD(o, k, uint64_t));
}

static void get_u64(const void *o, const struct cfg_key *k, char *out, size_t cap)
{
	snprintf(out, cap, "%llu", (unsigned long long)*CFIELD(o, k, uint64_t));
}

static int set_size(struct cfg_ctx *x, void *o, const struct cfg_key *k, const char *v)
{
	uint64_t n;
	(void)x;
	if (parse_u64(v, k->min, k->max, &n))
		return -EINVAL;
	*FIELD(o, k, size_t) = (size_t)n;
	return 0;
}

static void get_size(const void *o, const struct cfg_key *k, char *out, size_t cap)
{
	snprintf(out, cap, "%zu", *CFIELD(o, k, size_t));
}

static int set_uint(struct cfg_ctx *x, void *o, const struct cfg_key *k, const char *v)
{
	uint64_t n;
	(void)x;
	if (parse_u64(v, k->min, k->max, &n))
		return -EINVAL;
	*FIELD(o, k, unsigned) = (unsigned)n;
	return 0;
}

static void get_uint(const void *o, const struct cfg_key *k, char *out, size_t cap)
{
	snprintf(out, cap, "%u", *CFIELD(o, k, unsigned));
}

/* Seconds, fractions allowed, into milliseconds (never 0: 0 would mean "already late"). */
static int parse_secs(const char *v, unsigned *out)
{
	char *end;
	double d = strtod(v, &end);
	if (end == v || *end || !isfinite(d) || d <= 0 || d > 86400.0 * 30)
		return -EINVAL;
	unsigned ms = (unsigned)(d * 1000.0 + 0.5);
	*out = ms ? ms : 1;
	return 0;
}

static int set_secs(struct cfg_ctx *x, void *o, const struct cfg_key *k, const char *v)
{
	(void)x;
	return parse_secs(v, FIELD(o, k, unsigned));
}

/* Seconds within k->min..k->max milliseconds. */
static int set_secs_range(struct cfg_ctx *x, void *o, const struct cfg_key *k, const char *v)
{
	unsigned ms;
	(void)x;
	if (parse_secs(v, &ms) || ms < k->min || ms > k->max)
		return -EINVAL;
	*FIELD(o, k, unsigned) = ms;
	return 0;
}

static void get_secs(const void *o, const struct cfg_key *k, char *out, size_t cap)
{
	unsigned ms = *CFIELD(o, k, unsigned);
	if (ms % 1000)
		snprintf(out, cap, "%u.%03u", ms / 1000, ms % 1000);
	else
		snprintf(out, cap, "%u", ms / 1000);
}

static int set_str(struct cfg_ctx *x, void *o, const struct cfg_key *k, const char *v)
{
	(void)x;
	if (!v[0] || strlen(v) >= k->max)
		return -EINVAL;
	strcpy(FIELD(o, k, char), v);
	return 0;
}

/* A string that may be empty ("" turns it off). */
static int set_str0(struct cfg_ctx *x, void *o, const struct cfg_key *k, const char *v)
{
	(void)x;
	if (strlen(v) >= k->max)
		return -EINVAL;
	strcpy(FIELD(o, k, char), v);
	return 0;
}

static void get_str(const void *o, const struct cfg_key *k, char *out, size_t cap)
{
	snprintf(out, cap, "%s", CFIELD(o, k, char));
}

/* A secret: shown only as set or not. */
static void get_secret(const void *o, const struct cfg_key *k, char *out, size_t cap)
{
	snprintf(out, cap, "%s", CFIELD(o, k, char)[0] ? "(set)" : "");
}

/* A name: letters, digits, '-', '_', '.', as pools and users are named. */
static int set_name(struct cfg_ctx *x, void *o, const struct cfg_key *k, const char *v)
{
	for (const char *p = v; *p; p++)
		if (!isalnum((unsigned char)*p) && !strchr("-_.", *p))
			return -EINVAL;
	return set_str(x, o, k, v);
}

static int set_abspath(struct cfg_ctx *x, void *o, const struct cfg_key *k, const char *v)
{
	return v[0] == '/' ? set_str(x, o, k, v) : -EINVAL;
}

static int set_endpoint(struct cfg_ctx *x, void *o, const struct cfg_key *k, const char *v)
{
	return strstr(v, "://") ? set_str(x, o, k, v) : -EINVAL;
}

static int word_index(const struct cfg_key *k, const char *v)
{
	for (int i = 0; k->words[i]; i++)
		if (strcmp(v, k->words[i]) == 0)
			return i;
	return -1;
}

static int set_enum_int(struct cfg_ctx *x, void *o, const struct cfg_key *k, const char *v)
{
	(void)x;
	int i = word_index(k, v);
	if (i < 0)
		return -EINVAL;
	*FIELD(o, k, int) = i;
	return 0;
}

static void get_enum_int(const void *o, const struct cfg_key *k, char *out, size_t cap)
{
	snprintf(out, cap, "%s", k->words[*CFIELD(o, k, int)]);
}

static int set_enum_u8(struct cfg_ctx *x, void *o, const struct cfg_key *k, const char *v)
{
	(void)x;
	int i = word_index(k, v);
	if (i < 0)
		return -EINVAL;
	*FIELD(o, k, uint8_t) = (uint8_t)i;
	return 0;
}

static void get_enum_u8(const void *o, const struct cfg_key *k, char *out, size_t cap)
{
	snprintf(out, cap, "%s", k->words[*CFIELD(o, k, uint8_t)]);
}

static const char *const yes_no[] = { "no", "yes", NULL };

static int set_bool(struct cfg_ctx *x, void *o, const struct cfg_key *k, const char *v)
{
	(void)x;
	static const char *const t[] = { "yes", "true", "on", "1" }, *const f[] = { "no", "false", "off", "0" };
	for (int i = 0; i < 4; i++)
		if (strcmp(v, t[i]) == 0 || strcmp(v, f[i]) == 0) {
			*FIELD(o, k, int) = strcmp(v, t[i]) == 0;
			return 0;
		}
	return -EINVAL;
}

static void get_bool(const void *o, const struct cfg_key *k, char *out, size_t cap)
{
	snprintf(out, cap, "%s", *CFIELD(o, k, int) ? "yes" : "no");
}

/* A listener's tls = yes|no (its address may say ",tls" too). */
static int set_listen_tls(struct cfg_ctx *x, void *o, const struct cfg_key *k, const char *v)
{
	struct cfg_listen *l = o;
	int b;
	struct cfg_key kk = *k;
	kk.off = 0;
	if (set_bool(x, &b, &kk, v))
		return -EINVAL;
	l->tls = (uint8_t)b;
	return 0;
}

static void get_listen_tls(const void *o, const struct cfg_key *k, char *out, size_t cap)
{
	(void)k;
	snprintf(out, cap, "%s", ((const struct cfg_listen *)o)->tls ? "yes" : "no");
}


/* ---- special values ---- */

int cfg__parse_listen(const char *arg, struct cfg_listen *l)
{
	char host[64], s[80];
	const char *colon;
	memset(l, 0, sizeof(*l));
	/* "ADDR:PORT,tls": a TLS listener (the command line's way of [listen] tls = yes). */
	size_t n = strcspn(arg, ",");
	if (n >= sizeof(s) || (arg[n] && strcmp(arg + n, ",tls") != 0))
		return -EINVAL;
	memcpy(s, arg, n);
	s[n] = 0;
	l->tls = arg[n] != 0;
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
	if (!isdigit((unsigned char)colon[1]) || *endp || port < 0 || port > 65535 ||
	    strlen(arg) >= sizeof(l->text))
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
	snprintf(l->text, sizeof(l->text), "%s", arg);
	return 0;
}

static int set_listen(struct cfg_ctx *x, void *o, const struct cfg_key *k, const char *v)
{
	struct cfg_listen *l = FIELD(o, k, struct cfg_listen), tmp;
	(void)x;
	if (cfg__parse_listen(v, &tmp) || (tmp.tls && k->sect == CS_ADMIN))
		return -EINVAL; /* the admin endpoint speaks plain HTTP */
	memcpy(tmp.name, l->name, sizeof(tmp.name));
	tmp.tls |= l->tls;
	*l = tmp;
	return 0;
}

static void get_listen(const void *o, const struct cfg_key *k, char *out, size_t cap)
{
	const struct cfg_listen *l = CFIELD(o, k, struct cfg_listen);
	snprintf(out, cap, "%s", l->len ? l->text : "");
}

static int set_pow2(struct cfg_ctx *x, void *o, const struct cfg_key *k, const char *v)
{
	uint64_t n;
	(void)x;
	if (parse_u64(v, k->min, k->max, &n) || (n & (n - 1)))
		return -EINVAL;
	*FIELD(o, k, uint64_t) = n;
	return 0;
}

/* 0 (none) or a number within the range. */
static int set_u64_or_0(struct cfg_ctx *x, void *o, const struct cfg_key *k, const char *v)
{
	(void)x;
	if (strcmp(v, "0") == 0) {
		*FIELD(o, k, uint64_t) = 0;
		return 0;
	}
	return parse_u64(v, k->min, k->max, FIELD(o, k, uint64_t));
}

static int set_mode(struct cfg_ctx *x, void *o, const struct cfg_key *k, const char *v)
{
	char *end;
	(void)x;
	unsigned long m = strtoul(v, &end, 8);
	if (*end || end == v || (m != 0600 && m != 0660))
		return -EINVAL;
	*FIELD(o, k, unsigned) = (unsigned)m;
	return 0;
}

static void get_mode(const void *o, const struct cfg_key *k, char *out, size_t cap)
{
	snprintf(out, cap, "0%o", *CFIELD(o, k, unsigned));
}

/* Resolved now: a group that does not exist is an error at start, not later. */
static int set_group(struct cfg_ctx *x, void *o, const struct cfg_key *k, const char *v)
{
	struct gw_config *cfg = o;
	(void)x;
	(void)k;
	struct group *g = strlen(v) < sizeof(cfg->group) ? getgrnam(v) : NULL;
	char *end;
	unsigned long id = strtoul(v, &end, 10);
	if (g)
		cfg->gid = g->gr_gid;
	else if (v[0] && !*end && id < (gid_t)-1)
		cfg->gid = (gid_t)id;
	else
		return -EINVAL;
	snprintf(cfg->group, sizeof(cfg->group), "%s", v);
	return 0;
}

static int set_log_level(struct cfg_ctx *x, void *o, const struct cfg_key *k, const char *v)
{
	enum log_level l;
	(void)x;
	if (log_parse_level(v, &l))
		return -EINVAL;
	*FIELD(o, k, int) = (int)l;
	return 0;
}

static void get_log_level(const void *o, const struct cfg_key *k, char *out, size_t cap)
{
	snprintf(out, cap, "%s", log_level_name((enum log_level)*CFIELD(o, k, int)));
}

/* Header names, separated by spaces or commas; a repeated key adds to the list. */
static int set_forward(struct cfg_ctx *x, void *o, const struct cfg_key *k, const char *v)
{
	struct gw_config *cfg = o;
	(void)k;
	if (!x->forward_given || (!x->file && !x->cli_forward)) {
		cfg->n_forward = 0;
		x->forward_given = 1;
		x->cli_forward = !x->file;
	}
	int any = 0;
	for (const char *p = v; *p;) {
		p += strspn(p, " \t,");
		size_t n = strcspn(p, " \t,");
		if (!n)
			break;
		any = 1;
		if (n >= CFG_NAME_MAX || cfg->n_forward == CFG_MAX_FORWARD) {
			cfg__fail(x, "%s", "");
			return -EINVAL;
		}
		char name[CFG_NAME_MAX];
		for (size_t i = 0; i < n; i++)
			name[i] = (char)tolower((unsigned char)p[i]);
		name[n] = 0;
		/* A header forwarded twice, or the offered subprotocols (already :protocols),
		 * would put the same request bytes in the OPEN twice: more than the rings are
		 * sized for (cfg_open_max). */
		int dup = strcmp(name, "sec-websocket-protocol") == 0;
		for (int i = 0; i < cfg->n_forward && !dup; i++)
			dup = strcmp(cfg->forward[i], name) == 0;
		if (dup)
			log_warn(0, "forward-header %s: already in the OPEN fields, not forwarded twice", name);
		else
			strcpy(cfg->forward[cfg->n_forward++], name);
		p += n;
	}
	return any ? 0 : -EINVAL;
}

static void get_forward(const void *o, const struct cfg_key *k, char *out, size_t cap)
{
	const struct gw_config *cfg = o;
	size_t n = 0;
	(void)k;
	out[0] = 0;
	for (int i = 0; i < cfg->n_forward && n < cap; i++)
		n += (size_t)snprintf(out + n, cap - n, "%s%s", i ? " " : "", cfg->forward[i]);
}

static int set_deflate_u8(struct cfg_ctx *x, void *o, const struct cfg_key *k, const char *v)
{
	struct gw_config *cfg = o;
	uint64_t n;
	(void)x;
	if (parse_u64(v, k->min, k->max, &n))
		return -EINVAL;
	if (k->off == offsetof(struct pmd_cfg, server_bits))
		cfg->deflate.server_bits = cfg->deflate.client_bits = (uint8_t)n;
	else if (k->off == offsetof(struct pmd_cfg, min_size))
		cfg->deflate.min_size = (uint16_t)n;
	else
		*((uint8_t *)&cfg->deflate + k->off) = (uint8_t)n;
	return 0;
}

static void get_deflate_u8(const void *o, const struct cfg_key *k, char *out, size_t cap)
{
	const struct gw_config *cfg = o;
	if (k->off == offsetof(struct pmd_cfg, min_size))
		snprintf(out, cap, "%u", cfg->deflate.min_size);
	else
		snprintf(out, cap, "%u", *((const uint8_t *)&cfg->deflate + k->off));
}

/* Tokens (RFC 7230) separated by '|', the route's preference first; a final '!' makes one
 * of them required. */
static int set_protocols(struct cfg_ctx *x, void *o, const struct cfg_key *k, const char *v)
{
	struct cfg_route *r = o;
	size_t vl = strlen(v);
	(void)x;
	(void)k;
	r->need_protocol = 0;
	if (vl && v[vl - 1] == '!')
		r->need_protocol = 1, vl--;
	if (!vl || vl >= sizeof(r->protocols))
		return -EINVAL;
	for (size_t i = 0; i < vl; i++)
		if (!strchr("#$%&'*+-.^_`~|", v[i]) && !isalnum((unsigned char)v[i]))
			return -EINVAL;
	if (v[0] == '|' || v[vl - 1] == '|' || memmem(v, vl, "||", 2))
		return -EINVAL;
	memcpy(r->protocols, v, vl);
	r->protocols[vl] = 0;
	return 0;
}

static void get_protocols(const void *o, const struct cfg_key *k, char *out, size_t cap)
{
	const struct cfg_route *r = o;
	(void)k;
	snprintf(out, cap, "%s%s", r->protocols, r->need_protocol ? "!" : "");
}

/* Origins ("https://app.example.com", exactly as browsers send them), separated by '|' or
 * white space; stored '|'-separated. */
static int set_origins(struct cfg_ctx *x, void *o, const struct cfg_key *k, const char *v)
{
	struct cfg_route *r = o;
	size_t n = 0;
	(void)x;
	(void)k;
	for (const char *p = v; *p;) {
		p += strspn(p, " \t|");
		size_t m = strcspn(p, " \t|");
		if (!m)
			break;
		for (size_t i = 0; i < m; i++)
			if ((unsigned char)p[i] <= ' ' || p[i] == ',' || p[i] == 0x7f)
				return -EINVAL;
		if (n + m + 2 > sizeof(r->origins))
			return -EINVAL;
		if (n)
			r->origins[n++] = '|';
		memcpy(r->origins + n, p, m);
		n += m;
		p += m;
	}
	r->origins[n] = 0;
	return n ? 0 : -EINVAL;
}

/* The route-level limits record that the route gave them. */
static int set_route_lim(struct cfg_ctx *x, void *o, const struct cfg_key *k, const char *v)
{
	struct cfg_route *r = o;
	struct cfg_key kk = *k;
	int rc;
	size_t lim = offsetof(struct cfg_route, lim);
	kk.off = k->off;
	if (k->off == lim + offsetof(struct cfg_conn_limits, max_message))
		rc = set_u64(x, o, &kk, v), r->set |= CFG_RSET_MAX_MESSAGE;
	else if (k->off == lim + offsetof(struct cfg_conn_limits, max_outbound))
		rc = set_size(x, o, &kk, v), r->set |= CFG_RSET_MAX_OUTBOUND;
	else if (k->off == lim + offsetof(struct cfg_conn_limits, outbound_drop))
		rc = set_enum_int(x, o, &kk, v), r->set |= CFG_RSET_POLICY;
	else if (k->off == lim + offsetof(struct cfg_conn_limits, idle_ms))
		rc = set_secs(x, o, &kk, v), r->set |= CFG_RSET_IDLE;
	else
		rc = set_secs(x, o, &kk, v), r->set |= CFG_RSET_PING;
	return rc;
}

static void get_route_lim(const void *o, const struct cfg_key *k, char *out, size_t cap)
{
	size_t lim = offsetof(struct cfg_route, lim);
	if (k->off == lim + offsetof(struct cfg_conn_limits, max_message))
		get_u64(o, k, out, cap);
	else if (k->off == lim + offsetof(struct cfg_conn_limits, max_outbound))
		get_size(o, k, out, cap);
	else if (k->off == lim + offsetof(struct cfg_conn_limits, outbound_drop))
		get_enum_int(o, k, out, cap);
	else
		get_secs(o, k, out, cap);
}

/* ---- [cluster] ---- */

/* Copies p[0..n) into dst (cap bytes) as a string. -EINVAL when it does not fit. */
static int copy_part(char *dst, size_t cap, const char *p, size_t n)
{
	if (n >= cap)
		return -EINVAL;
	memcpy(dst, p, n);
	dst[n] = 0;
	return 0;
}

/* redis://[[USER]:PASSWORD@]HOST[:PORT][/DB] into c; "[::1]" for an IPv6 address. On an
 * error c is unchanged. */
static int parse_redis_url(const char *s, struct cfg_cluster *out)
{
	struct cfg_cluster c = *out;
	if (strncmp(s, "redis://", 8) != 0 || strlen(s) >= sizeof(c.url))
		return -EINVAL;
	strcpy(c.url, s);
	const char *p = s + 8, *at = strrchr(p, '@');
	c.user[0] = c.password[0] = 0;
	if (at) {
		const char *colon = memchr(p, ':', (size_t)(at - p));
		if (!colon || copy_part(c.user, sizeof(c.user), p, (size_t)(colon - p)) ||
		    copy_part(c.password, sizeof(c.password), colon + 1, (size_t)(at - colon - 1)) ||
		    !c.password[0])
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
	if (host_end == host || copy_part(c.host, sizeof(c.host), host, (size_t)(host_end - host)))
		return -EINVAL;
	uint64_t v;
	char num[16];
	c.port = 6379;
	c.db = 0;
	if (*p == ':') {
		size_t n = strcspn(p + 1, "/");
		if (copy_part(num, sizeof(num), p + 1, n) || parse_u64(num, 1, 65535, &v))
			return -EINVAL;
		c.port = (unsigned)v;
		p += 1 + n;
	}
	if (*p == '/' && p[1]) {
		if (parse_u64(p + 1, 0, 65535, &v))
			return -EINVAL;
		c.db = (unsigned)v;
	} else if (*p && strcmp(p, "/") != 0) {
		return -EINVAL;
	}
	*out = c;
	return 0;
}

/* "" leaves the cluster (the default). */
static int set_redis(struct cfg_ctx *x, void *o, const struct cfg_key *k, const char *v)
{
	struct cfg_cluster *c = FIELD(o, k, struct cfg_cluster);
	if (!v[0]) {
		c->url[0] = c->host[0] = c->user[0] = c->password[0] = 0;
		return 0;
	}
	if (strncmp(v, "rediss://", 9) == 0) {
		x->why = "redis://...: rediss:// (TLS) needs hiredis 1.0's hiredis_ssl, and Debian 12 "
			 "has hiredis 0.14 (docs/SCALING.md says how to tunnel it)";
		return -EINVAL;
	}
	return parse_redis_url(v, c);
}

/* The URL without its password. */
static void get_redis(const void *o, const struct cfg_key *k, char *out, size_t cap)
{
	const struct cfg_cluster *c = CFIELD(o, k, struct cfg_cluster);
	if (!c->password[0]) {
		snprintf(out, cap, "%s", c->url);
		return;
	}
	int v6 = strchr(c->host, ':') != NULL;
	snprintf(out, cap, "redis://%s:(secret)@%s%s%s:%u/%u", c->user, v6 ? "[" : "", c->host,
		 v6 ? "]" : "", c->port, c->db);
}

/* 0 is "derived at start": shown empty. */
static void get_node_id(const void *o, const struct cfg_key *k, char *out, size_t cap)
{
	unsigned id = *CFIELD(o, k, unsigned);
	if (id)
		snprintf(out, cap, "%u", id);
	else
		out[0] = 0;
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
	if (eq[1 + n] == ',' && parse_secs(eq + 2 + n, &h->ttl_ms))
		return -EINVAL;
	return 0;
}

/* A rule per value; a prefix given again replaces its rule. */
static int set_history(struct cfg_ctx *x, void *o, const struct cfg_key *k, const char *v)
{
	struct gw_config *cfg = o;
	struct cfg_history h;
	(void)k;
	if (parse_history(v, &h))
		return -EINVAL;
	if (!x->history_given || (!x->file && !x->cli_history)) {
		cfg->n_history = 0;
		x->history_given = 1;
		x->cli_history = !x->file;
	}
	int at = cfg->n_history;
	for (int i = 0; i < cfg->n_history; i++)
		if (strcmp(cfg->history[i].prefix, h.prefix) == 0)
			at = i;
	if (at == CFG_MAX_HISTORY) {
		x->why = "at most 16 rules (history = PREFIX=N[,SECONDS])";
		return -EINVAL;
	}
	cfg->history[at] = h;
	if (at == cfg->n_history)
		cfg->n_history++;
	return 0;
}

static void get_history(const void *o, const struct cfg_key *k, char *out, size_t cap)
{
	const struct gw_config *cfg = o;
	size_t n = 0;
	(void)k;
	out[0] = 0;
	for (int i = 0; i < cfg->n_history && n < cap; i++) {
		const struct cfg_history *h = &cfg->history[i];
		char secs[32];
		struct cfg_key sk = { .off = offsetof(struct cfg_history, ttl_ms) };
		get_secs(h, &sk, secs, sizeof(secs));
		n += (size_t)snprintf(out + n, cap - n, "%s%s=%u,%s", i ? " " : "", h->prefix, h->max,
				      secs);
	}
}

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
	{ CS_GATEWAY, RESTART, 0, "control", "control", set_endpoint, get_str, G(control), 0, 256, NULL,
	  "a ZeroMQ endpoint (ipc://PATH or tcp://HOST:PORT)",
	  "the endpoint workers attach to (default ipc://RUNTIME_DIR/control)" },
	{ CS_GATEWAY, RESTART, 0, "runtime-dir", "runtime-dir", set_abspath, get_str, G(runtime_dir), 0, 200, NULL,
	  "an absolute path",
	  "the control socket and the lock live here (default $RUNTIME_DIRECTORY, /run/wsgw as root, $XDG_RUNTIME_DIR/wsgw, /tmp/wsgw-UID); one gateway per directory" },
	{ CS_GATEWAY, RESTART, 0, "group", "group", set_group, get_str, G(group), 0, 0, NULL,
	  "the name or number of an existing group",
	  "group of the runtime directory and the sockets (with socket-mode 0660 its members may attach)" },
	{ CS_GATEWAY, RESTART, 0, "socket-mode", "socket-mode", set_mode, get_mode, G(socket_mode), 0, 0, NULL,
	  "0600 or 0660", "permissions of the control and attach sockets (default 0600)" },
	{ CS_GATEWAY, RESTART, 0, "heartbeat", "heartbeat", set_secs, get_secs, G(heartbeat_ms), SECS, NULL,
	  "seconds > 0", "heartbeat interval; a worker silent 3 intervals is dead (default 1)" },
	{ CS_GATEWAY, 0, 0, "handshake-timeout", "handshake-timeout", set_secs, get_secs, G(handshake_ms), SECS, NULL,
	  "seconds > 0", "the whole upgrade request must arrive within this (default 10)" },
	{ CS_GATEWAY, 0, 0, "idle-timeout", "idle-timeout", set_secs, get_secs, G(idle_ms), SECS, NULL,
	  "seconds > 0", "a silent client is pinged after this (default 60)" },
	{ CS_GATEWAY, 0, 0, "ping-timeout", "ping-timeout", set_secs, get_secs, G(ping_ms), SECS, NULL,
	  "seconds > 0", "and closed with 1001 when nothing came this long after the ping (default: idle-timeout)" },
	{ CS_GATEWAY, 0, 0, "close-timeout", "close-timeout", set_secs, get_secs, G(close_ms), SECS, NULL,
	  "seconds > 0", "wait this long for the peer's close frame and its FIN (default 5)" },
	{ CS_GATEWAY, 0, 0, "authorize-timeout", "authorize-timeout", set_secs, get_secs, G(authorize_ms), SECS, NULL,
	  "seconds > 0", "wait this long for a worker's ACCEPT or REJECT, then 503 (default 5)" },
	{ CS_GATEWAY, 0, 0, "orphan-timeout", "orphan-timeout", set_secs, get_secs, G(orphan_ms), SECS, NULL,
	  "seconds > 0", "connections whose pool has no worker wait this long, then close 1013 (default 30)" },
	{ CS_GATEWAY, RESTART, 0, "ring-size", "ring-size", set_pow2, get_u64, G(ring_bytes), 4096, 1u << 30, NULL,
	  "a power of two, 4096..1073741824",
	  "each shared-memory ring of a worker (default 4 MiB, or 4 x the largest record)" },
	{ CS_GATEWAY, RESTART, 0, "zmq-window", "zmq-window", set_uint, get_uint, G(zmq_window), 1, 1u << 20, NULL,
	  "1..1048576 records", "records a zmq worker may leave unacknowledged (default 1024)" },
	{ CS_GATEWAY, 0, 0, "zmq-window-bytes", "zmq-window-bytes", set_u64, get_u64, G(zmq_window_bytes), 4096, 1u << 30, NULL,
	  "4096..1073741824", "and their bytes (default 4194304)" },
	{ CS_GATEWAY, RESTART, 1, "forward-header", "forward-header", set_forward, get_forward, 0, 0, 0, NULL,
	  "header names (at most 16)",
	  "request headers passed to workers in OPEN (default origin host user-agent cookie authorization)" },
	{ CS_GATEWAY, RESTART, 0, "curve-secret-key", "curve-secret-key", set_str, get_str, G(curve_secret), 0, 256, NULL,
	  "a file path", "CURVE on the control channel: the file holds the gateway's Z85 secret key" },
	{ CS_GATEWAY, RESTART, 0, "curve-clients", "curve-clients", set_str, get_str, G(curve_clients), 0, 256, NULL,
	  "a file path", "Z85 public keys of the workers allowed to attach, one per line" },
	{ CS_GATEWAY, 0, 0, "tls-cert", "tls-cert", set_str, get_str, G(tls_cert), 0, 256, NULL,
	  "a file path", "PEM certificate of the TLS listeners (may hold its chain); read again at a reload" },
	{ CS_GATEWAY, 0, 0, "tls-key", "tls-key", set_str, get_str, G(tls_key), 0, 256, NULL,
	  "a file path", "its PEM private key" },
	{ CS_GATEWAY, 0, 0, "tls-chain", "tls-chain", set_str, get_str, G(tls_chain), 0, 256, NULL,
	  "a file path", "PEM intermediate certificates, if not in tls-cert" },
	{ CS_GATEWAY, RESTART, 0, "static", "static", set_str, get_str, G(static_dir), 0, 256, NULL,
	  "a directory", "answer plain GET and HEAD requests (not upgrades) with its files (default off; no links followed, no dotfiles)" },
	{ CS_GATEWAY, RESTART, 0, "static-max", "static-max", set_u64, get_u64, G(static_max), 1, 1u << 30, NULL,
	  "1..1073741824", "the largest file static serves; beyond: 403 (default 1048576)" },
	{ CS_GATEWAY, 0, 0, "deflate-window", "deflate-window", set_deflate_u8, get_deflate_u8, DF(server_bits), 9, 15, NULL,
	  "9..15", "permessage-deflate's window bits (default 10)" },
	{ CS_GATEWAY, 0, 0, "deflate-level", "deflate-level", set_deflate_u8, get_deflate_u8, DF(level), 1, 9, NULL,
	  "1..9", "zlib compression level (default 6)" },
	{ CS_GATEWAY, 0, 0, "deflate-mem-level", "deflate-mem-level", set_deflate_u8, get_deflate_u8, DF(mem_level), 1, 9, NULL,
	  "1..9", "zlib memLevel (default 4)" },
	{ CS_GATEWAY, 0, 0, "deflate-min-size", "deflate-min-size", set_deflate_u8, get_deflate_u8, DF(min_size), 0, 65535, NULL,
	  "0..65535", "shorter messages are sent uncompressed (default 64)" },

	/* [limits] */
	{ CS_LIMITS, RESTART, 0, "max-message", "max-message", set_u64, get_u64, G(max_message), 1, 1u << 31, NULL,
	  "1..2147483648", "largest message a client may send, after reassembly; beyond: close 1009 (default 1048576)" },
	{ CS_LIMITS, RESTART, 0, "max-header", "max-header", set_size, get_size, G(max_header), 256, 1u << 20, NULL,
	  "256..1048576", "largest upgrade request; beyond: 431 (default 8192)" },
	{ CS_LIMITS, 0, 0, "max-outbound", "max-outbound", set_size, get_size, G(max_outbound), 1024, (uint64_t)1 << 34, NULL,
	  "1024..17179869184", "bytes queued for one slow client; beyond: the policy (default 16 MiB or 2 x max-message)" },
	{ CS_LIMITS, 0, 0, "outbound-policy", "outbound-policy", set_enum_int, get_enum_int, G(outbound_drop), 0, 0, policies,
	  "close or drop", "past max-outbound: close the client with 1008, or drop the message (default close)" },
	{ CS_LIMITS, 0, 0, "memory-budget", "memory-budget", set_u64_or_0, get_u64, G(memory_budget), 1u << 20, (uint64_t)1 << 50, NULL,
	  "0 (none) or 1048576..2^50 bytes",
	  "bytes held for all peers together: messages being assembled, queued output, records held for workers (default: a quarter of RAM)" },
	{ CS_LIMITS, 0, 0, "max-assembly", "max-assembly", set_u64_or_0, get_u64, G(max_assembly), 4096, (uint64_t)1 << 50, NULL,
	  "0 (only the budget) or 4096..2^50 bytes",
	  "of which bytes held in partly received messages; beyond: new fragments are refused with 1009 (default 0)" },
	{ CS_LIMITS, 0, 0, "worker-memory", "worker-memory", set_u64, get_u64, G(worker_memory), 1u << 16, (uint64_t)1 << 40, NULL,
	  "65536..2^40 bytes", "records held for one worker before it is dropped as not taking them (default 64 MiB)" },
	{ CS_LIMITS, 0, 0, "max-conns", "max-conns", set_uint, get_uint, G(max_conns), 1, 100000000, NULL,
	  "1..100000000", "connections at once; beyond: 503 (default: what the fd limit allows)" },
	{ CS_LIMITS, 0, 0, "max-conns-per-ip", "max-conns-per-ip", set_uint, get_uint, G(max_conns_per_ip), 0, 100000000, NULL,
	  "0 (no cap) or 1..100000000", "connections at once from one client address; beyond: 503 (default 0)" },
	{ CS_LIMITS, 0, 0, "handshake-rate", "handshake-rate", set_uint, get_uint, G(handshake_rate), 0, 10000000, NULL,
	  "0 (no limit) or 1..10000000 per second",
	  "upgrade requests per second from all clients (a burst of one second's worth); beyond: 429 with Retry-After (default 0)" },
	{ CS_LIMITS, 0, 0, "handshake-rate-per-ip", "handshake-rate-per-ip", set_uint, get_uint, G(handshake_rate_per_ip), 0, 10000000, NULL,
	  "0 (no limit) or 1..10000000 per second", "the same for one client address (default 0)" },
	{ CS_LIMITS, 0, 0, "drain-rate", "drain-rate", set_uint, get_uint, G(drain_rate), 0, 10000000, NULL,
	  "0 (all at once) or 1..10000000 per second",
	  "a drain (SIGTERM, wsgw ctl drain) closes this many clients per second with 1001, so they do not all reconnect at once (default 0)" },

	/* [log] */
	{ CS_LOG, 0, 0, "level", "log-level", set_log_level, get_log_level, G(log_level), 0, 0, NULL,
	  "debug, info, warn or error", "lines below this level are not written (default info)" },
	{ CS_LOG, 0, 0, "format", "log-format", set_enum_int, get_enum_int, G(log_format), 0, 0, formats,
	  "text or json", "key=value lines, or one JSON object per line for shippers (default text)" },

	/* [admin] */
	{ CS_ADMIN, RESTART, 0, "address", "admin", set_listen, get_listen, G(admin), 0, 0, NULL,
	  "ADDR:PORT or [ADDR6]:PORT",
	  "serve /metrics, /healthz, /workers, /connections and wsgw ctl here (default off); keep it on loopback" },
	{ CS_ADMIN, 0, 0, "token", "admin-token", set_str0, get_secret, G(admin_token), 0, 128, NULL,
	  "a string of at most 127 bytes",
	  "every request but GET /healthz must carry Authorization: Bearer TOKEN (default none)" },

	/* [listen NAME] */
	{ CS_LISTEN, RESTART, 0, "address", "listen", set_listen, get_listen, 0, 0, 0, NULL,
	  "ADDR:PORT or [ADDR6]:PORT, then ,tls or nothing",
	  "clients connect here; port 0 picks a free one, logged (default 127.0.0.1:8080)" },
	{ CS_LISTEN, RESTART, 0, "tls", NULL, set_listen_tls, get_listen_tls, 0, 0, 0, yes_no,
	  "yes or no", "clients speak TLS 1.2 or 1.3 (wss://) here, with [gateway] tls-cert and tls-key (default no)" },

	/* [route PREFIX] */
	{ CS_ROUTE, 0, 0, "pool", NULL, set_name, get_str, R(pool), 0, CFG_NAME_MAX, NULL,
	  "a pool name (letters, digits, - _ .)", "paths starting with PREFIX go to this pool; echo is built in" },
	{ CS_ROUTE, 0, 0, "authorize", NULL, set_bool, get_bool, R(authorize), 0, 0, yes_no,
	  "yes or no", "the pool's worker must ACCEPT each client before the 101 (default no)" },
	{ CS_ROUTE, 0, 0, "protocols", NULL, set_protocols, get_protocols, 0, 0, 0, NULL,
	  "tokens separated by |, optionally ending in !",
	  "subprotocols the route speaks, preferred first; with a final !, a client offering none gets 400" },
	{ CS_ROUTE, 0, 0, "origins", NULL, set_origins, get_str, R(origins), 0, 0, NULL,
	  "origins separated by | or spaces",
	  "only clients sending one of these Origin headers are let in; others get 403 (default: any)" },
	{ CS_ROUTE, 0, 0, "deflate", NULL, set_enum_u8, get_enum_u8, R(deflate), 0, 0, deflates,
	  "on, off or takeover", "permessage-deflate: on without context takeover, off, or keeping context (default on)" },
	{ CS_ROUTE, 0, 0, "slow", NULL, set_enum_u8, get_enum_u8, R(slow), 0, 0, slows,
	  "default, close, drop-newest, drop-oldest or latest",
	  "what a subscriber past its outbound share gets of published messages (default: as outbound-policy)" },
	{ CS_ROUTE, 0, 0, "max-message", NULL, set_route_lim, get_route_lim, RL(max_message), 1, 1u << 31, NULL,
	  "1..[limits] max-message", "the route's largest message (default [limits] max-message)" },
	{ CS_ROUTE, 0, 0, "max-outbound", NULL, set_route_lim, get_route_lim, RL(max_outbound), 1024, (uint64_t)1 << 34, NULL,
	  "1024..17179869184", "the route's outbound cap (default [limits] max-outbound)" },
	{ CS_ROUTE, 0, 0, "outbound-policy", NULL, set_route_lim, get_route_lim, RL(outbound_drop), 0, 0, policies,
	  "close or drop", "the route's policy past its cap (default [limits] outbound-policy)" },
	{ CS_ROUTE, 0, 0, "idle-timeout", NULL, set_route_lim, get_route_lim, RL(idle_ms), SECS, NULL,
	  "seconds > 0", "the route's idle timeout (default [gateway] idle-timeout)" },
	{ CS_ROUTE, 0, 0, "ping-timeout", NULL, set_route_lim, get_route_lim, RL(ping_ms), SECS, NULL,
	  "seconds > 0", "the route's ping timeout (default [gateway] ping-timeout)" },

	/* [pool NAME] */
	{ CS_POOL, 0, 0, "min-workers", NULL, set_uint, get_uint, P(min_workers), 0, 256, NULL,
	  "0..256", "/healthz is 200 only while the pool has at least this many workers (default 1)" },
	{ CS_POOL, 0, 0, "orphan-timeout", NULL, set_secs, get_secs, P(orphan_ms), SECS, NULL,
	  "seconds > 0", "the pool's own orphan-timeout (default [gateway] orphan-timeout)" },

	/* [worker NAME] */
	{ CS_WORKER, 0, 0, "command", NULL, set_str, get_str, W(command), 0, 1024, NULL,
	  "a shell command line",
	  "run as /bin/sh -c 'exec COMMAND' with WSGW_CONTROL, WSGW_POOL and WSGW_INSTANCE set (required)" },
	{ CS_WORKER, 0, 0, "pool", NULL, set_name, get_str, W(pool), 0, CFG_NAME_MAX, NULL,
	  "a pool name", "the pool it serves, WSGW_POOL (default: the section's NAME)" },
	{ CS_WORKER, 0, 0, "instances", NULL, set_uint, get_uint, W(instances), 1, 64, NULL,
	  "1..64", "how many copies run (default 1)" },
	{ CS_WORKER, 0, 0, "user", NULL, set_name, get_str, W(user), 0, CFG_NAME_MAX, NULL,
	  "a user name", "run as this user and its groups (the gateway must run as root; default: the gateway's user)" },
	{ CS_WORKER, 0, 0, "restart", NULL, set_enum_u8, get_enum_u8, W(restart), 0, 0, restarts,
	  "always or on-failure", "restart it whenever it exits, or only when it failed (default always)" },
	{ CS_WORKER, 0, 0, "backoff", NULL, set_secs, get_secs, W(backoff_ms), SECS, NULL,
	  "seconds > 0", "the first restart waits this long; each quick death doubles the wait (default 0.5)" },
	{ CS_WORKER, 0, 0, "backoff-max", NULL, set_secs, get_secs, W(backoff_max_ms), SECS, NULL,
	  "seconds > 0", "the longest wait between restarts (default 30)" },

	/* [cluster] (docs/SCALING.md) */
	{ CS_CLUSTER, RESTART, 0, "redis", "cluster", set_redis, get_redis, G(cluster), 0, 0, NULL,
	  "redis://[[USER]:PASSWORD@]HOST[:PORT][/DB]",
	  "join the gateways that use this Redis (default port 6379; default off: nothing needs Redis); a password belongs here, not on the command line" },
	{ CS_CLUSTER, RESTART, 0, "node-id", "node-id", set_uint, get_node_id, G(cluster.node_id), 1, 4095, NULL,
	  "1..4095", "this gateway's id in the cluster, unique per gateway, in every connection id (default: derived from the host name and the first listener, and logged)" },
	{ CS_CLUSTER, RESTART, 0, "ttl", "cluster-ttl", set_secs_range, get_secs, G(cluster.ttl_ms), 300, 3600000, NULL,
	  "0.3..3600 seconds", "a dead gateway's presence and registration expire within this; refreshed every third of it (default 10)" },
	{ CS_CLUSTER, RESTART, 0, "hold", "cluster-hold", set_uint, get_uint, G(cluster.hold), 1, 10000000, NULL,
	  "1..10000000 messages", "messages held for the other gateways while Redis is away; beyond: dropped and counted (default 10000)" },
	{ CS_CLUSTER, 0, 1, "history", "history", set_history, get_history, 0, 0, 0, NULL,
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
		  k->get == get_redis && strchr(v, '@') ? "(not shown: it may hold a password)" : v);
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

struct out {
	char *p;
	size_t cap, len;
	int full;
};

static void put(struct out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(struct out *o, const char *fmt, ...)
{
	if (o->full)
		return;
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(o->p + o->len, o->cap - o->len, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= o->cap - o->len)
		o->full = 1;
	else
		o->len += (size_t)n;
}

static void put_json_str(struct out *o, const char *s)
{
	put(o, "\"");
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\')
			put(o, "\\%c", c);
		else if (c < 0x20)
			put(o, "\\u%04x", c);
		else
			put(o, "%c", c);
	}
	put(o, "\"");
}

/* The keys of sect for object obj: "key = value" lines, or JSON members. */
static void put_keys(struct out *o, int sect, const void *obj, int json)
{
	char v[1100];
	int first = 1;
	for (int i = 0; i < cfg__n_keys; i++) {
		const struct cfg_key *k = &cfg__keys[i];
		if (k->sect != sect)
			continue;
		k->get(obj, k, v, sizeof(v));
		if (json) {
			put(o, "%s", first ? "" : ",");
			put_json_str(o, k->name);
			put(o, ":");
			put_json_str(o, v);
		} else {
			put(o, "%s = %s\n", k->name, v);
		}
		first = 0;
	}
}

static void put_section(struct out *o, int sect, const char *name, const void *obj, int json,
			int *first)
{
	if (json) {
		put(o, "%s{\"section\":\"%s\",\"name\":", *first ? "" : ",", cfg__sect_names[sect]);
		put_json_str(o, name ? name : "");
		put(o, ",\"keys\":{");
		put_keys(o, sect, obj, json);
		put(o, "}}");
	} else {
		put(o, "%s[%s%s%s]\n", *first ? "" : "\n", cfg__sect_names[sect], name ? " " : "",
		    name ? name : "");
		put_keys(o, sect, obj, json);
	}
	*first = 0;
}

int cfg_format(const struct gw_config *cfg, int json, char *buf, size_t cap)
{
	struct out o = { buf, cap, 0, 0 };
	int first = 1;
	if (json)
		put(&o, "{\"config_file\":"), put_json_str(&o, cfg->config_file), put(&o, ",\"sections\":[");
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
		put(&o, "]}\n");
	return o.full ? -ENOSPC : (int)o.len;
}
