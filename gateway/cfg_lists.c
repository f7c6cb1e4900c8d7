/*
 * The values of the settings that are lists or structures: forwarded headers, deflate
 * parameters, subprotocols, origins, a route's limits, the cluster's Redis address and
 * history rules. The plain kinds are in cfg_values.c.
 */
#include "gateway/cfg_values.h"
#include "gateway/log.h"
#include "wsgw/protocol.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <grp.h>
#include <math.h>
#include <netinet/in.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Header names, separated by spaces or commas; a repeated key adds to the list. */
int cfgv_set_forward(struct cfg_ctx *x, void *o, const struct cfg_key *k, const char *v)
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

void cfgv_get_forward(const void *o, const struct cfg_key *k, char *out, size_t cap)
{
	const struct gw_config *cfg = o;
	size_t n = 0;
	(void)k;
	out[0] = 0;
	for (int i = 0; i < cfg->n_forward && n < cap; i++)
		n += (size_t)snprintf(out + n, cap - n, "%s%s", i ? " " : "", cfg->forward[i]);
}

int cfgv_set_deflate_u8(struct cfg_ctx *x, void *o, const struct cfg_key *k, const char *v)
{
	struct gw_config *cfg = o;
	uint64_t n;
	(void)x;
	if (cfgv_parse_u64(v, k->min, k->max, &n))
		return -EINVAL;
	if (k->off == offsetof(struct pmd_cfg, server_bits))
		cfg->deflate.server_bits = cfg->deflate.client_bits = (uint8_t)n;
	else if (k->off == offsetof(struct pmd_cfg, min_size))
		cfg->deflate.min_size = (uint16_t)n;
	else
		*((uint8_t *)&cfg->deflate + k->off) = (uint8_t)n;
	return 0;
}

void cfgv_get_deflate_u8(const void *o, const struct cfg_key *k, char *out, size_t cap)
{
	const struct gw_config *cfg = o;
	if (k->off == offsetof(struct pmd_cfg, min_size))
		snprintf(out, cap, "%u", cfg->deflate.min_size);
	else
		snprintf(out, cap, "%u", *((const uint8_t *)&cfg->deflate + k->off));
}

/* Tokens (RFC 7230) separated by '|', the route's preference first; a final '!' makes one
 * of them required. */
int cfgv_set_protocols(struct cfg_ctx *x, void *o, const struct cfg_key *k, const char *v)
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

void cfgv_get_protocols(const void *o, const struct cfg_key *k, char *out, size_t cap)
{
	const struct cfg_route *r = o;
	(void)k;
	snprintf(out, cap, "%s%s", r->protocols, r->need_protocol ? "!" : "");
}

/* Origins ("https://app.example.com", exactly as browsers send them), separated by '|' or
 * white space; stored '|'-separated. */
int cfgv_set_origins(struct cfg_ctx *x, void *o, const struct cfg_key *k, const char *v)
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
int cfgv_set_route_lim(struct cfg_ctx *x, void *o, const struct cfg_key *k, const char *v)
{
	struct cfg_route *r = o;
	struct cfg_key kk = *k;
	int rc;
	size_t lim = offsetof(struct cfg_route, lim);
	kk.off = k->off;
	if (k->off == lim + offsetof(struct cfg_conn_limits, max_message))
		rc = cfgv_set_u64(x, o, &kk, v), r->set |= CFG_RSET_MAX_MESSAGE;
	else if (k->off == lim + offsetof(struct cfg_conn_limits, max_outbound))
		rc = cfgv_set_size(x, o, &kk, v), r->set |= CFG_RSET_MAX_OUTBOUND;
	else if (k->off == lim + offsetof(struct cfg_conn_limits, outbound_drop))
		rc = cfgv_set_enum_int(x, o, &kk, v), r->set |= CFG_RSET_POLICY;
	else if (k->off == lim + offsetof(struct cfg_conn_limits, idle_ms))
		rc = cfgv_set_secs(x, o, &kk, v), r->set |= CFG_RSET_IDLE;
	else
		rc = cfgv_set_secs(x, o, &kk, v), r->set |= CFG_RSET_PING;
	return rc;
}

void cfgv_get_route_lim(const void *o, const struct cfg_key *k, char *out, size_t cap)
{
	size_t lim = offsetof(struct cfg_route, lim);
	if (k->off == lim + offsetof(struct cfg_conn_limits, max_message))
		cfgv_get_u64(o, k, out, cap);
	else if (k->off == lim + offsetof(struct cfg_conn_limits, max_outbound))
		cfgv_get_size(o, k, out, cap);
	else if (k->off == lim + offsetof(struct cfg_conn_limits, outbound_drop))
		cfgv_get_enum_int(o, k, out, cap);
	else
		cfgv_get_secs(o, k, out, cap);
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
		if (copy_part(num, sizeof(num), p + 1, n) || cfgv_parse_u64(num, 1, 65535, &v))
			return -EINVAL;
		c.port = (unsigned)v;
		p += 1 + n;
	}
	if (*p == '/' && p[1]) {
		if (cfgv_parse_u64(p + 1, 0, 65535, &v))
			return -EINVAL;
		c.db = (unsigned)v;
	} else if (*p && strcmp(p, "/") != 0) {
		return -EINVAL;
	}
	*out = c;
	return 0;
}

/* "" leaves the cluster (the default). */
int cfgv_set_redis(struct cfg_ctx *x, void *o, const struct cfg_key *k, const char *v)
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
void cfgv_get_redis(const void *o, const struct cfg_key *k, char *out, size_t cap)
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
void cfgv_get_node_id(const void *o, const struct cfg_key *k, char *out, size_t cap)
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
	if (copy_part(num, sizeof(num), eq + 1, n) || cfgv_parse_u64(num, 1, 100000, &v))
		return -EINVAL;
	h->max = (uint32_t)v;
	h->ttl_ms = 86400u * 1000;
	if (eq[1 + n] == ',' && cfgv_parse_secs(eq + 2 + n, &h->ttl_ms))
		return -EINVAL;
	return 0;
}

/* A rule per value; a prefix given again replaces its rule. */
int cfgv_set_history(struct cfg_ctx *x, void *o, const struct cfg_key *k, const char *v)
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

void cfgv_get_history(const void *o, const struct cfg_key *k, char *out, size_t cap)
{
	const struct gw_config *cfg = o;
	size_t n = 0;
	(void)k;
	out[0] = 0;
	for (int i = 0; i < cfg->n_history && n < cap; i++) {
		const struct cfg_history *h = &cfg->history[i];
		char secs[32];
		struct cfg_key sk = { .off = offsetof(struct cfg_history, ttl_ms) };
		cfgv_get_secs(h, &sk, secs, sizeof(secs));
		n += (size_t)snprintf(out + n, cap - n, "%s%s=%u,%s", i ? " " : "", h->prefix, h->max,
				      secs);
	}
}

