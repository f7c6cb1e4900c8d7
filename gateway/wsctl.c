#include "gateway/wsctl.h"
#include "gateway/config.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define TIMEOUT_MS 10000

static void usage(FILE *f)
{
	fprintf(f, "usage: wsgw ctl [--admin ADDR:PORT] [--token TOKEN] [--config FILE] [--json] COMMAND\n"
		   "  status                       the gateway, its listeners and pools\n"
		   "  workers                      attached workers (lag, held records) and supervised ones\n"
		   "  connections [--route PREFIX] [--limit N]\n"
		   "                               open connections (all routes; all of them)\n"
		   "  kick CONN [CODE]             close one connection (default 1008)\n"
		   "  drain                        stop accepting, close every client (at [limits] drain-rate), exit\n"
		   "  reload                       read the config file again (SIGHUP); says why if refused\n"
		   "  config                       the settings in force\n"
		   "The endpoint: --admin, $WSGW_ADMIN, the [admin] address of --config FILE, or 127.0.0.1:9090.\n"
		   "The token: --token, $WSGW_ADMIN_TOKEN, or the file's [admin] token.\n");
}

/* ---- HTTP ---- */

struct resp {
	int status;
	char *body;
	size_t len;
};

static int http(const struct cfg_listen *to, const char *token, const char *method, const char *path,
		struct resp *r, char *err, size_t ecap)
{
	int fd = socket(to->addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0) {
		snprintf(err, ecap, "socket: %s", strerror(errno));
		return -1;
	}
	struct pollfd p = { fd, POLLOUT, 0 };
	int rc = connect(fd, (const struct sockaddr *)&to->addr, to->len);
	if (rc < 0 && errno == EINPROGRESS) {
		rc = poll(&p, 1, TIMEOUT_MS) == 1 ? 0 : -1;
		int soerr = rc ? ETIMEDOUT : 0;
		socklen_t sl = sizeof(soerr);
		if (!rc)
			getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl);
		errno = soerr;
		rc = soerr ? -1 : 0;
	}
	if (rc < 0) {
		snprintf(err, ecap, "no gateway answers on %s (%s): is it running, with an [admin] address (wsgw --admin ADDR:PORT)?",
			 to->text, strerror(errno));
		close(fd);
		return -1;
	}
	char req[2048];
	int n = snprintf(req, sizeof(req), "%s %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: wsgw-ctl\r\n%s%s%sContent-Length: 0\r\nConnection: close\r\n\r\n",
			 method, path, to->text, token[0] ? "Authorization: Bearer " : "", token,
			 token[0] ? "\r\n" : "");
	for (int off = 0; off < n;) {
		p.events = POLLOUT;
		ssize_t w = write(fd, req + off, (size_t)(n - off));
		if (w < 0 && errno == EAGAIN && poll(&p, 1, TIMEOUT_MS) == 1)
			continue;
		if (w <= 0) {
			snprintf(err, ecap, "%s: %s", to->text, strerror(errno));
			close(fd);
			return -1;
		}
		off += (int)w;
	}
	size_t cap = 65536, len = 0;
	char *buf = malloc(cap + 1);
	for (;;) {
		if (len == cap) {
			cap *= 2;
			buf = realloc(buf, cap + 1);
		}
		ssize_t rd = read(fd, buf + len, cap - len);
		if (rd > 0) {
			len += (size_t)rd;
			continue;
		}
		if (rd < 0 && errno == EAGAIN) {
			p.events = POLLIN;
			if (poll(&p, 1, TIMEOUT_MS) == 1)
				continue;
			errno = ETIMEDOUT;
		}
		if (rd < 0 && errno == EINTR)
			continue;
		break;
	}
	close(fd);
	buf[len] = 0;
	char *body = strstr(buf, "\r\n\r\n");
	if (!body || sscanf(buf, "HTTP/1.%*d %d", &r->status) != 1) {
		snprintf(err, ecap, "%s answered something that is not HTTP", to->text);
		free(buf);
		return -1;
	}
	body += 4;
	r->len = len - (size_t)(body - buf);
	r->body = malloc(r->len + 1);
	memcpy(r->body, body, r->len);
	r->body[r->len] = 0;
	free(buf);
	return 0;
}

/* ---- a JSON reader for the endpoint's own answers ---- */

enum { J_NULL, J_BOOL, J_NUM, J_STR, J_ARR, J_OBJ };

struct jv {
	int t;
	double num;
	char *str;          /* J_STR */
	struct jv *kids;    /* J_ARR, J_OBJ */
	char **keys;        /* J_OBJ */
	int n;
};

static const char *ws(const char *p)
{
	while (isspace((unsigned char)*p))
		p++;
	return p;
}

static const char *jparse(const char *p, struct jv *v, int depth);

static const char *jstring(const char *p, char **out)
{
	size_t cap = 16, n = 0;
	char *s = malloc(cap);
	for (p++; *p && *p != '"'; p++) {
		if (n + 8 > cap)
			s = realloc(s, cap *= 2);
		if (*p != '\\') {
			s[n++] = *p;
			continue;
		}
		p++;
		switch (*p) {
		case 'n': s[n++] = '\n'; break;
		case 't': s[n++] = '\t'; break;
		case 'u': {
			char hex[5] = { 0 };
			for (int i = 0; i < 4 && p[1]; i++)
				hex[i] = *++p;
			unsigned c = (unsigned)strtoul(hex, NULL, 16);
			s[n++] = c < 0x80 ? (char)c : '?';
			break;
		}
		case 0: p--; break;
		default: s[n++] = *p; break;
		}
	}
	s[n] = 0;
	*out = s;
	return *p == '"' ? p + 1 : NULL;
}

static const char *jlist(const char *p, struct jv *v, int obj, int depth)
{
	char close = obj ? '}' : ']';
	int cap = 8;
	v->kids = calloc((size_t)cap, sizeof(*v->kids));
	v->keys = obj ? calloc((size_t)cap, sizeof(*v->keys)) : NULL;
	p = ws(p + 1);
	if (*p == close)
		return p + 1;
	for (;;) {
		if (v->n == cap) {
			cap *= 2;
			v->kids = realloc(v->kids, (size_t)cap * sizeof(*v->kids));
			if (obj)
				v->keys = realloc(v->keys, (size_t)cap * sizeof(*v->keys));
		}
		if (obj) {
			if (*p != '"' || !(p = jstring(p, &v->keys[v->n])))
				return NULL;
			p = ws(p);
			if (*p++ != ':')
				return NULL;
		}
		memset(&v->kids[v->n], 0, sizeof(v->kids[0]));
		if (!(p = jparse(p, &v->kids[v->n++], depth + 1)))
			return NULL;
		p = ws(p);
		if (*p == close)
			return p + 1;
		if (*p++ != ',')
			return NULL;
		p = ws(p);
	}
}

static const char *jparse(const char *p, struct jv *v, int depth)
{
	p = ws(p);
	if (depth > 32)
		return NULL;
	if (*p == '{' || *p == '[') {
		v->t = *p == '{' ? J_OBJ : J_ARR;
		return jlist(p, v, v->t == J_OBJ, depth);
	}
	if (*p == '"') {
		v->t = J_STR;
		return jstring(p, &v->str);
	}
	if (!strncmp(p, "true", 4) || !strncmp(p, "false", 5)) {
		v->t = J_BOOL;
		v->num = *p == 't';
		return p + (*p == 't' ? 4 : 5);
	}
	if (!strncmp(p, "null", 4)) {
		v->t = J_NULL;
		return p + 4;
	}
	char *end;
	v->t = J_NUM;
	v->num = strtod(p, &end);
	return end == p ? NULL : end;
}

static void jfree(struct jv *v)
{
	for (int i = 0; i < v->n; i++) {
		jfree(&v->kids[i]);
		if (v->keys)
			free(v->keys[i]);
	}
	free(v->kids);
	free(v->keys);
	free(v->str);
}

static const struct jv *jget(const struct jv *o, const char *key)
{
	static const struct jv none = { .t = J_NULL };
	for (int i = 0; o && o->t == J_OBJ && i < o->n; i++)
		if (!strcmp(o->keys[i], key))
			return &o->kids[i];
	return &none;
}

/* A member as text for a table cell. */
static const char *jtext(const struct jv *o, const char *key, char *buf, size_t cap)
{
	const struct jv *v = jget(o, key);
	if (v->t == J_STR)
		return v->str;
	if (v->t == J_BOOL)
		return v->num ? "yes" : "no";
	if (v->t == J_NUM) {
		snprintf(buf, cap, "%.15g", v->num);
		return buf;
	}
	return "-";
}

/* ---- tables ---- */

#define MAX_COLS 12

struct table {
	int cols, rows, cap;
	char **cells;
};

static void row(struct table *t, ...)
{
	if (t->rows == t->cap) {
		t->cap = t->cap ? 2 * t->cap : 16;
		t->cells = realloc(t->cells, (size_t)t->cap * MAX_COLS * sizeof(char *));
	}
	va_list ap;
	va_start(ap, t);
	for (int c = 0; c < t->cols; c++)
		t->cells[t->rows * MAX_COLS + c] = strdup(va_arg(ap, const char *));
	va_end(ap);
	t->rows++;
}

static void print_table(struct table *t)
{
	int w[MAX_COLS] = { 0 };
	for (int r = 0; r < t->rows; r++)
		for (int c = 0; c < t->cols; c++) {
			int l = (int)strlen(t->cells[r * MAX_COLS + c]);
			if (l > w[c])
				w[c] = l;
		}
	for (int r = 0; r < t->rows; r++) {
		for (int c = 0; c < t->cols; c++)
			printf(c + 1 < t->cols ? "%-*s  " : "%-*s", c + 1 < t->cols ? w[c] : 0,
			       t->cells[r * MAX_COLS + c]);
		printf("\n");
		for (int c = 0; c < t->cols; c++)
			free(t->cells[r * MAX_COLS + c]);
	}
	free(t->cells);
	t->cells = NULL;
	t->rows = t->cap = 0;
}

/* ---- the commands ---- */

static void show_status(const struct jv *j)
{
	char a[32], b[32], c[32], d[32], e[32];
	printf("wsgw %s, pid %s, up %s s: %s%s\n", jtext(j, "version", a, 32), jtext(j, "pid", b, 32),
	       jtext(j, "uptime_s", c, 32), jget(j, "healthy")->num ? "healthy" : "NOT healthy",
	       jget(j, "draining")->num ? ", draining" : "");
	printf("config file: %s\n", jtext(j, "config_file", a, 32)[0] ? jget(j, "config_file")->str : "(none)");
	const struct jv *l = jget(j, "listen");
	printf("listening on:");
	for (int i = 0; l->t == J_ARR && i < l->n; i++)
		printf(" %s", l->kids[i].str);
	printf("\nconnections: %s, workers: %s (supervised running: %s), memory held: %s bytes\n\n",
	       jtext(j, "connections", a, 32), jtext(j, "workers", b, 32),
	       jtext(j, "supervised_running", c, 32), jtext(j, "memory_bytes", d, 32));
	struct table t = { .cols = 5 };
	row(&t, "POOL", "WORKERS", "MIN", "ORPHANS", "RESTARTS");
	const struct jv *p = jget(j, "pools");
	for (int i = 0; p->t == J_ARR && i < p->n; i++) {
		const struct jv *x = &p->kids[i];
		row(&t, jtext(x, "name", a, 32), jget(x, "builtin")->num ? "(built-in)" : jtext(x, "workers", b, 32),
		    jtext(x, "min_workers", c, 32), jtext(x, "orphans", d, 32), jtext(x, "restarts", e, 32));
	}
	print_table(&t);
	struct table r = { .cols = 2 };
	row(&r, "ROUTE", "POOL");
	const struct jv *rs = jget(j, "routes");
	for (int i = 0; rs->t == J_ARR && i < rs->n; i++)
		row(&r, jtext(&rs->kids[i], "prefix", a, 32), jtext(&rs->kids[i], "pool", b, 32));
	printf("\n");
	print_table(&r);
}

static void show_workers(const struct jv *j)
{
	char a[32], b[32], c[32], d[32], e[32], f[32], g[32], h[32];
	struct table t = { .cols = 8 };
	row(&t, "ID", "POOL", "PID", "TRANSPORT", "CONNS", "LAG", "OLDEST_MS", "HELD/PAUSED");
	const struct jv *w = jget(j, "workers");
	for (int i = 0; w->t == J_ARR && i < w->n; i++) {
		const struct jv *x = &w->kids[i];
		char hp[64];
		snprintf(hp, sizeof(hp), "%s/%s", jtext(x, "held_records", g, 32), jtext(x, "paused_clients", h, 32));
		row(&t, jtext(x, "id", a, 32), jtext(x, "pool", b, 32), jtext(x, "pid", c, 32),
		    jtext(x, "transport", d, 32), jtext(x, "connections", e, 32), jtext(x, "lag_records", f, 32),
		    jtext(x, "lag_oldest_ms", g, 32), hp);
	}
	print_table(&t);
	const struct jv *s = jget(j, "supervised");
	if (s->t != J_ARR || !s->n)
		return;
	printf("\n");
	struct table u = { .cols = 7 };
	row(&u, "SUPERVISED", "POOL", "PID", "STATE", "RESTARTS", "NEXT_MS", "LAST_EXIT");
	for (int i = 0; i < s->n; i++) {
		const struct jv *x = &s->kids[i];
		char name[96];
		snprintf(name, sizeof(name), "%s[%s]", jtext(x, "name", a, 32), jtext(x, "instance", b, 32));
		row(&u, name, jtext(x, "pool", c, 32), jtext(x, "pid", d, 32),
		    jget(x, "running")->num ? "running" : "waiting", jtext(x, "restarts", e, 32),
		    jtext(x, "next_restart_ms", f, 32), jtext(x, "last_exit", g, 32)[0] ? jget(x, "last_exit")->str : "-");
	}
	print_table(&u);
}

static void show_connections(const struct jv *j)
{
	char a[32], b[32], c[32], d[32], e[32];
	struct table t = { .cols = 7 };
	row(&t, "ID", "PEER", "ROUTE", "POOL", "WORKER", "STATE", "QUEUED");
	const struct jv *cs = jget(j, "connections");
	for (int i = 0; cs->t == J_ARR && i < cs->n; i++) {
		const struct jv *x = &cs->kids[i];
		char peer[80], route[300], pool[80];
		snprintf(peer, sizeof(peer), "%s", jtext(x, "peer", a, 32));
		snprintf(route, sizeof(route), "%s", jtext(x, "route", a, 32));
		snprintf(pool, sizeof(pool), "%s", jtext(x, "pool", a, 32));
		row(&t, jtext(x, "id", a, 32), peer, route, pool[0] ? pool : "-", jtext(x, "worker", b, 32),
		    jtext(x, "state", c, 32), jtext(x, "queued_bytes", d, 32));
	}
	print_table(&t);
	printf("%s of %s connections shown\n", jtext(j, "shown", a, 32), jtext(j, "total", e, 32));
}

int wsctl_main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "admin", required_argument, NULL, 'a' }, { "token", required_argument, NULL, 't' },
		{ "config", required_argument, NULL, 'c' }, { "json", no_argument, NULL, 'j' },
		{ "route", required_argument, NULL, 'r' }, { "limit", required_argument, NULL, 'l' },
		{ "help", no_argument, NULL, 'h' }, { NULL, 0, NULL, 0 },
	};
	const char *admin = getenv("WSGW_ADMIN"), *token = getenv("WSGW_ADMIN_TOKEN"), *file = NULL;
	const char *route = NULL, *limit = NULL;
	int json = 0, c;
	optind = 0;
	opterr = 1;
	/* "+": options end at the command; its own options (--route, --limit) follow it. */
	while ((c = getopt_long(argc, argv, "+h", opts, NULL)) != -1) {
		switch (c) {
		case 'a': admin = optarg; break;
		case 't': token = optarg; break;
		case 'c': file = optarg; break;
		case 'j': json = 1; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (optind >= argc) {
		usage(stderr);
		return 2;
	}
	const char *cmd = argv[optind];
	int nargs = argc - optind;
	char **args = argv + optind;
	/* Options after the command: --route, --limit, --json. */
	optind = 0;
	while ((c = getopt_long(nargs, args, "+", opts, NULL)) != -1) {
		switch (c) {
		case 'r': route = optarg; break;
		case 'l': limit = optarg; break;
		case 'j': json = 1; break;
		default: usage(stderr); return 2;
		}
	}
	char **pos = args + optind;
	int npos = nargs - optind;
	static struct gw_config cfg;
	struct cfg_listen to;
	char tok[128] = "";
	if (file) {
		char *fargv[] = { "wsgw", "--config", (char *)file, NULL };
		if (cfg_load(&cfg, 3, fargv)) {
			fprintf(stderr, "wsgw ctl: %s\n", cfg_error());
			return 2;
		}
		if (!admin && cfg.admin.len) {
			to = cfg.admin;
			/* A gateway listening on every address answers on loopback. */
			if (!strncmp(to.text, "*:", 2) || !strncmp(to.text, "0.0.0.0:", 8))
				snprintf(to.text, sizeof(to.text), "127.0.0.1:%s", strrchr(cfg.admin.text, ':') + 1);
			admin = to.text;
		}
		if (!token)
			snprintf(tok, sizeof(tok), "%s", cfg.admin_token);
	}
	if (!admin)
		admin = "127.0.0.1:9090";
	if (token)
		snprintf(tok, sizeof(tok), "%s", token);
	char admin_copy[80];
	snprintf(admin_copy, sizeof(admin_copy), "%s", admin);
	if (!strncmp(admin_copy, "*:", 2) || !strncmp(admin_copy, "0.0.0.0:", 8))
		snprintf(admin_copy, sizeof(admin_copy), "127.0.0.1:%s", strrchr(admin, ':') + 1);
	struct cfg_listen dest;
	if (cfg_parse_address(admin_copy, &dest)) {
		fprintf(stderr, "wsgw ctl: --admin wants ADDR:PORT (got '%s')\n", admin);
		return 2;
	}
	char path[600];
	const char *method = "GET";
	if (!strcmp(cmd, "status") && !npos) {
		snprintf(path, sizeof(path), "/status");
	} else if (!strcmp(cmd, "workers") && !npos) {
		snprintf(path, sizeof(path), "/workers");
	} else if (!strcmp(cmd, "connections") && !npos) {
		char q[400] = "";
		size_t n = 0;
		if (route) {
			n += (size_t)snprintf(q, sizeof(q), "?route=");
			for (const char *p = route; *p && n + 4 < sizeof(q); p++)
				n += (size_t)(isalnum((unsigned char)*p) || strchr("/-_.~", *p)
						      ? snprintf(q + n, sizeof(q) - n, "%c", *p)
						      : snprintf(q + n, sizeof(q) - n, "%%%02X", (unsigned char)*p));
		}
		if (limit) {
			char *end;
			unsigned long l = strtoul(limit, &end, 10);
			if (*end || !limit[0] || !l) {
				fprintf(stderr, "wsgw ctl: --limit wants a number > 0 (got '%s')\n", limit);
				return 2;
			}
			snprintf(q + n, sizeof(q) - n, "%climit=%lu", route ? '&' : '?', l);
		}
		snprintf(path, sizeof(path), "/connections%s", q);
	} else if (!strcmp(cmd, "kick") && (npos == 1 || npos == 2)) {
		char *end;
		unsigned long long id = strtoull(pos[0], &end, 10);
		if (*end || !pos[0][0]) {
			fprintf(stderr, "wsgw ctl: kick wants a connection id (got '%s')\n", pos[0]);
			return 2;
		}
		method = "POST";
		if (npos == 2)
			snprintf(path, sizeof(path), "/connections/%llu/close?code=%s", id, pos[1]);
		else
			snprintf(path, sizeof(path), "/connections/%llu/close", id);
	} else if ((!strcmp(cmd, "drain") || !strcmp(cmd, "reload")) && !npos) {
		method = "POST";
		snprintf(path, sizeof(path), "/%s", cmd);
	} else if (!strcmp(cmd, "config") && !npos) {
		snprintf(path, sizeof(path), json ? "/config?format=json" : "/config");
	} else {
		fprintf(stderr, "wsgw ctl: unknown command or arguments: %s\n", cmd);
		usage(stderr);
		return 2;
	}
	struct resp r = { 0 };
	char err[400];
	if (http(&dest, tok, method, path, &r, err, sizeof(err))) {
		fprintf(stderr, "wsgw ctl: %s\n", err);
		return 1;
	}
	int ok = r.status >= 200 && r.status < 300;
	if (r.status == 401) {
		fprintf(stderr, "wsgw ctl: the admin endpoint wants its token: --token, $WSGW_ADMIN_TOKEN or --config FILE\n");
		free(r.body);
		return 1;
	}
	/* /healthz-style answers and errors are text or small JSON: shown as they are. */
	struct jv j = { 0 };
	int parsed = r.body[0] == '{' && jparse(r.body, &j, 0) != NULL;
	if (json || !parsed || !strcmp(cmd, "config")) {
		fputs(r.body, ok ? stdout : stderr);
	} else if (!ok) {
		char b[32];
		fprintf(stderr, "wsgw ctl: %s (HTTP %d)\n", jtext(&j, "error", b, sizeof(b)), r.status);
	} else if (!strcmp(cmd, "status")) {
		show_status(&j);
	} else if (!strcmp(cmd, "workers")) {
		show_workers(&j);
	} else if (!strcmp(cmd, "connections")) {
		show_connections(&j);
	} else if (!strcmp(cmd, "kick")) {
		char a[32], b[32];
		printf("connection %s closed with %s\n", jtext(&j, "closed", a, 32), jtext(&j, "code", b, 32));
	} else if (!strcmp(cmd, "drain")) {
		printf("draining: the gateway closes its clients and exits\n");
	} else {
		printf("reloaded\n");
	}
	jfree(&j);
	free(r.body);
	return ok ? 0 : 1;
}
