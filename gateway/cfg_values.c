/*
 * The values of the settings: one parser (set) and one printer (get) per kind of value,
 * which the table of keys (cfg_keys.c) names row by row. A parser explains a refusal
 * through cfg__fail; a printer writes what --check-config and `wsgw ctl config` show.
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

int cfgv_parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || end == s || *end || !isdigit((unsigned char)s[0]) || v < min || v > max)
		return -EINVAL;
	*out = v;
	return 0;
}

int cfgv_set_u64(struct cfg_ctx *x, void *o, const struct cfg_key *k, const char *v)
{
	(void)x;
	return cfgv_parse_u64(v, k->min, k->max, FIELD(o, k, uint64_t));
}

void cfgv_get_u64(const void *o, const struct cfg_key *k, char *out, size_t cap)
{
	snprintf(out, cap, "%llu", (unsigned long long)*CFIELD(o, k, uint64_t));
}

int cfgv_set_size(struct cfg_ctx *x, void *o, const struct cfg_key *k, const char *v)
{
	uint64_t n;
	(void)x;
	if (cfgv_parse_u64(v, k->min, k->max, &n))
		return -EINVAL;
	*FIELD(o, k, size_t) = (size_t)n;
	return 0;
}

void cfgv_get_size(const void *o, const struct cfg_key *k, char *out, size_t cap)
{
	snprintf(out, cap, "%zu", *CFIELD(o, k, size_t));
}

int cfgv_set_uint(struct cfg_ctx *x, void *o, const struct cfg_key *k, const char *v)
{
	uint64_t n;
	(void)x;
	if (cfgv_parse_u64(v, k->min, k->max, &n))
		return -EINVAL;
	*FIELD(o, k, unsigned) = (unsigned)n;
	return 0;
}

void cfgv_get_uint(const void *o, const struct cfg_key *k, char *out, size_t cap)
{
	snprintf(out, cap, "%u", *CFIELD(o, k, unsigned));
}

/* Seconds, fractions allowed, into milliseconds (never 0: 0 would mean "already late"). */
int cfgv_parse_secs(const char *v, unsigned *out)
{
	char *end;
	double d = strtod(v, &end);
	if (end == v || *end || !isfinite(d) || d <= 0 || d > 86400.0 * 30)
		return -EINVAL;
	unsigned ms = (unsigned)(d * 1000.0 + 0.5);
	*out = ms ? ms : 1;
	return 0;
}

int cfgv_set_secs(struct cfg_ctx *x, void *o, const struct cfg_key *k, const char *v)
{
	(void)x;
	return cfgv_parse_secs(v, FIELD(o, k, unsigned));
}

/* Seconds within k->min..k->max milliseconds. */
int cfgv_set_secs_range(struct cfg_ctx *x, void *o, const struct cfg_key *k, const char *v)
{
	unsigned ms;
	(void)x;
	if (cfgv_parse_secs(v, &ms) || ms < k->min || ms > k->max)
		return -EINVAL;
	*FIELD(o, k, unsigned) = ms;
	return 0;
}

void cfgv_get_secs(const void *o, const struct cfg_key *k, char *out, size_t cap)
{
	unsigned ms = *CFIELD(o, k, unsigned);
	if (ms % 1000)
		snprintf(out, cap, "%u.%03u", ms / 1000, ms % 1000);
	else
		snprintf(out, cap, "%u", ms / 1000);
}

int cfgv_set_str(struct cfg_ctx *x, void *o, const struct cfg_key *k, const char *v)
{
	(void)x;
	if (!v[0] || strlen(v) >= k->max)
		return -EINVAL;
	strcpy(FIELD(o, k, char), v);
	return 0;
}

/* A string that may be empty ("" turns it off). */
int cfgv_set_str0(struct cfg_ctx *x, void *o, const struct cfg_key *k, const char *v)
{
	(void)x;
	if (strlen(v) >= k->max)
		return -EINVAL;
	strcpy(FIELD(o, k, char), v);
	return 0;
}

void cfgv_get_str(const void *o, const struct cfg_key *k, char *out, size_t cap)
{
	snprintf(out, cap, "%s", CFIELD(o, k, char));
}

/* A secret: shown only as set or not. */
void cfgv_get_secret(const void *o, const struct cfg_key *k, char *out, size_t cap)
{
	snprintf(out, cap, "%s", CFIELD(o, k, char)[0] ? "(set)" : "");
}

/* A name: letters, digits, '-', '_', '.', as pools and users are named. */
int cfgv_set_name(struct cfg_ctx *x, void *o, const struct cfg_key *k, const char *v)
{
	for (const char *p = v; *p; p++)
		if (!isalnum((unsigned char)*p) && !strchr("-_.", *p))
			return -EINVAL;
	return cfgv_set_str(x, o, k, v);
}

int cfgv_set_abspath(struct cfg_ctx *x, void *o, const struct cfg_key *k, const char *v)
{
	return v[0] == '/' ? cfgv_set_str(x, o, k, v) : -EINVAL;
}

int cfgv_set_endpoint(struct cfg_ctx *x, void *o, const struct cfg_key *k, const char *v)
{
	return strstr(v, "://") ? cfgv_set_str(x, o, k, v) : -EINVAL;
}

static int word_index(const struct cfg_key *k, const char *v)
{
	for (int i = 0; k->words[i]; i++)
		if (strcmp(v, k->words[i]) == 0)
			return i;
	return -1;
}

int cfgv_set_enum_int(struct cfg_ctx *x, void *o, const struct cfg_key *k, const char *v)
{
	(void)x;
	int i = word_index(k, v);
	if (i < 0)
		return -EINVAL;
	*FIELD(o, k, int) = i;
	return 0;
}

void cfgv_get_enum_int(const void *o, const struct cfg_key *k, char *out, size_t cap)
{
	snprintf(out, cap, "%s", k->words[*CFIELD(o, k, int)]);
}

int cfgv_set_enum_u8(struct cfg_ctx *x, void *o, const struct cfg_key *k, const char *v)
{
	(void)x;
	int i = word_index(k, v);
	if (i < 0)
		return -EINVAL;
	*FIELD(o, k, uint8_t) = (uint8_t)i;
	return 0;
}

void cfgv_get_enum_u8(const void *o, const struct cfg_key *k, char *out, size_t cap)
{
	snprintf(out, cap, "%s", k->words[*CFIELD(o, k, uint8_t)]);
}

const char *const cfgv_yes_no[] = { "no", "yes", NULL };

int cfgv_set_bool(struct cfg_ctx *x, void *o, const struct cfg_key *k, const char *v)
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

void cfgv_get_bool(const void *o, const struct cfg_key *k, char *out, size_t cap)
{
	snprintf(out, cap, "%s", *CFIELD(o, k, int) ? "yes" : "no");
}

/* A listener's tls = yes|no (its address may say ",tls" too). */
int cfgv_set_listen_tls(struct cfg_ctx *x, void *o, const struct cfg_key *k, const char *v)
{
	struct cfg_listen *l = o;
	int b;
	struct cfg_key kk = *k;
	kk.off = 0;
	if (cfgv_set_bool(x, &b, &kk, v))
		return -EINVAL;
	l->tls = (uint8_t)b;
	return 0;
}

void cfgv_get_listen_tls(const void *o, const struct cfg_key *k, char *out, size_t cap)
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

int cfgv_set_listen(struct cfg_ctx *x, void *o, const struct cfg_key *k, const char *v)
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

void cfgv_get_listen(const void *o, const struct cfg_key *k, char *out, size_t cap)
{
	const struct cfg_listen *l = CFIELD(o, k, struct cfg_listen);
	snprintf(out, cap, "%s", l->len ? l->text : "");
}

int cfgv_set_pow2(struct cfg_ctx *x, void *o, const struct cfg_key *k, const char *v)
{
	uint64_t n;
	(void)x;
	if (cfgv_parse_u64(v, k->min, k->max, &n) || (n & (n - 1)))
		return -EINVAL;
	*FIELD(o, k, uint64_t) = n;
	return 0;
}

/* 0 (none) or a number within the range. */
int cfgv_set_u64_or_0(struct cfg_ctx *x, void *o, const struct cfg_key *k, const char *v)
{
	(void)x;
	if (strcmp(v, "0") == 0) {
		*FIELD(o, k, uint64_t) = 0;
		return 0;
	}
	return cfgv_parse_u64(v, k->min, k->max, FIELD(o, k, uint64_t));
}

int cfgv_set_mode(struct cfg_ctx *x, void *o, const struct cfg_key *k, const char *v)
{
	char *end;
	(void)x;
	unsigned long m = strtoul(v, &end, 8);
	if (*end || end == v || (m != 0600 && m != 0660))
		return -EINVAL;
	*FIELD(o, k, unsigned) = (unsigned)m;
	return 0;
}

void cfgv_get_mode(const void *o, const struct cfg_key *k, char *out, size_t cap)
{
	snprintf(out, cap, "0%o", *CFIELD(o, k, unsigned));
}

/* Resolved now: a group that does not exist is an error at start, not later. */
int cfgv_set_group(struct cfg_ctx *x, void *o, const struct cfg_key *k, const char *v)
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

int cfgv_set_log_level(struct cfg_ctx *x, void *o, const struct cfg_key *k, const char *v)
{
	enum log_level l;
	(void)x;
	if (log_parse_level(v, &l))
		return -EINVAL;
	*FIELD(o, k, int) = (int)l;
	return 0;
}

void cfgv_get_log_level(const void *o, const struct cfg_key *k, char *out, size_t cap)
{
	snprintf(out, cap, "%s", log_level_name((enum log_level)*CFIELD(o, k, int)));
}
