#include "gateway/admin.h"
#include "gateway/log.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <llhttp.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define ADMIN_CONNS 16
#define ADMIN_REQ_MAX (16 << 10)
#define ADMIN_TIMEOUT_MS 5000
#define ADMIN_BODY_MAX (64u << 20)

struct admin_conn {
	struct loop_src src;
	struct admin *owner;
	int fd;
	uint32_t since;
	size_t got;             /* request bytes read */
	llhttp_t http;
	char url[2048];
	size_t url_len;
	int url_over;
	char field[16];         /* the header name being read (only Authorization matters) */
	size_t field_len;
	int field_over;
	int in_auth;
	char auth[256];
	size_t auth_len;
	int complete;
	char *out;              /* the answer, being written */
	size_t out_len, out_off;
};

struct admin {
	struct admin_conn lsn;
	struct admin_conn conns[ADMIN_CONNS];
	struct loop *loop;
	const struct gw_config *cfg;
	const struct admin_ops *ops;
	void *arg;
	llhttp_settings_t settings;
};

static void on_listener(struct loop_src *src, uint32_t events);
static void on_conn(struct loop_src *src, uint32_t events);
static void tick(void *arg);

/* ---- llhttp's callbacks ---- */

static struct admin_conn *conn_of(llhttp_t *p)
{
	return p->data;
}

static int on_url(llhttp_t *p, const char *at, size_t n)
{
	struct admin_conn *a = conn_of(p);
	if (a->url_len + n >= sizeof(a->url)) {
		a->url_over = 1; /* 414 */
		return -1;
	}
	memcpy(a->url + a->url_len, at, n);
	a->url_len += n;
	a->url[a->url_len] = 0;
	return 0;
}

static int on_field(llhttp_t *p, const char *at, size_t n)
{
	struct admin_conn *a = conn_of(p);
	if (a->in_auth) /* a value ended: a new field begins */
		a->in_auth = 0;
	if (a->field_len + n >= sizeof(a->field)) {
		a->field_over = 1;
		return 0;
	}
	memcpy(a->field + a->field_len, at, n);
	a->field_len += n;
	return 0;
}

static int on_field_done(llhttp_t *p)
{
	struct admin_conn *a = conn_of(p);
	a->in_auth = !a->field_over && a->field_len == 13 && strncasecmp(a->field, "authorization", 13) == 0;
	if (a->in_auth)
		a->auth_len = 0;
	a->field_len = 0;
	a->field_over = 0;
	return 0;
}

static int on_value(llhttp_t *p, const char *at, size_t n)
{
	struct admin_conn *a = conn_of(p);
	if (!a->in_auth)
		return 0;
	if (a->auth_len + n >= sizeof(a->auth))
		n = sizeof(a->auth) - 1 - a->auth_len;
	memcpy(a->auth + a->auth_len, at, n);
	a->auth_len += n;
	a->auth[a->auth_len] = 0;
	return 0;
}

static int on_value_done(llhttp_t *p)
{
	conn_of(p)->in_auth = 0;
	return 0;
}

static int on_complete(llhttp_t *p)
{
	conn_of(p)->complete = 1;
	return HPE_PAUSED; /* one request per connection: what follows is not read */
}

/* ---- answers ---- */

static void drop(struct admin_conn *a)
{
	if (a->fd >= 0)
		close(a->fd);
	a->fd = -1;
	free(a->out);
	a->out = NULL;
}

static const char *reason(int status)
{
	switch (status) {
	case 200: return "OK";
	case 202: return "Accepted";
	case 400: return "Bad Request";
	case 401: return "Unauthorized";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 414: return "URI Too Long";
	case 431: return "Request Header Fields Too Large";
	case 500: return "Internal Server Error";
	case 503: return "Service Unavailable";
	}
	return "Error";
}

/* Writes what is left of the answer; closes once it is out. */
static void send_rest(struct admin_conn *a)
{
	while (a->out_off < a->out_len) {
		ssize_t w = write(a->fd, a->out + a->out_off, a->out_len - a->out_off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && errno == EAGAIN) {
			loop_mod(a->owner->loop, a->fd, EPOLLOUT, &a->src);
			return;
		}
		if (w <= 0) {
			drop(a);
			return;
		}
		a->out_off += (size_t)w;
	}
	shutdown(a->fd, SHUT_WR);
	drop(a);
}

/* The answer: status line and headers, then body (n bytes) unless the request was HEAD. */
static void reply(struct admin_conn *a, int status, const char *type, const char *headers,
		  const char *body, size_t n)
{
	char head[512];
	int v10 = a->http.http_major == 1 && a->http.http_minor == 0;
	int hl = snprintf(head, sizeof(head),
			  "HTTP/1.%d %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n%sConnection: close\r\n\r\n",
			  v10 ? 0 : 1, status, reason(status), type, n, headers ? headers : "");
	int head_only = a->http.method == HTTP_HEAD;
	size_t total = (size_t)hl + (head_only ? 0 : n);
	a->out = malloc(total);
	if (!a->out) {
		drop(a);
		return;
	}
	memcpy(a->out, head, (size_t)hl);
	if (!head_only)
		memcpy(a->out + hl, body, n);
	a->out_len = total;
	a->out_off = 0;
	send_rest(a);
}

static void reply_text(struct admin_conn *a, int status, const char *headers, const char *text)
{
	reply(a, status, "text/plain; charset=utf-8", headers, text, strlen(text));
}

/* Calls a writer with more room until it fits. A writer may set *status (200 before). */
typedef int writer_fn(struct admin *A, int *status, char *out, size_t cap, void *x);

static void render(struct admin_conn *a, const char *type, writer_fn *fn, void *x)
{
	struct admin *A = a->owner;
	for (size_t cap = 64 << 10; cap <= ADMIN_BODY_MAX; cap *= 2) {
		char *buf = malloc(cap);
		if (!buf)
			break;
		int status = 200;
		int n = fn(A, &status, buf, cap, x);
		if (n >= 0) {
			reply(a, status, type, NULL, buf, (size_t)n);
			free(buf);
			return;
		}
		free(buf);
		if (n != -ENOSPC)
			break;
	}
	reply_text(a, 500, NULL, "the answer does not fit\n");
}

/* A query parameter, percent-decoded into out. Returns 1 when present. */
static int query_param(const char *q, const char *name, char *out, size_t cap)
{
	size_t nl = strlen(name);
	for (const char *p = q; p && *p;) {
		const char *end = strchr(p, '&');
		size_t len = end ? (size_t)(end - p) : strlen(p);
		if (len > nl && strncmp(p, name, nl) == 0 && p[nl] == '=') {
			size_t o = 0;
			for (size_t i = nl + 1; i < len && o + 1 < cap; i++) {
				if (p[i] == '%' && i + 2 < len && isxdigit((unsigned char)p[i + 1]) &&
				    isxdigit((unsigned char)p[i + 2])) {
					char hex[3] = { p[i + 1], p[i + 2], 0 };
					out[o++] = (char)strtol(hex, NULL, 16);
					i += 2;
				} else {
					out[o++] = p[i] == '+' ? ' ' : p[i];
				}
			}
			out[o] = 0;
			return 1;
		}
		p = end ? end + 1 : NULL;
	}
	return 0;
}

static int w_metrics(struct admin *A, int *status, char *out, size_t cap, void *x)
{
	(void)status, (void)x;
	return A->ops->metrics(A->arg, out, cap);
}

static int w_health(struct admin *A, int *status, char *out, size_t cap, void *x)
{
	int ok = 0;
	(void)x;
	int n = A->ops->healthz(A->arg, out, cap, &ok);
	*status = ok ? 200 : 503;
	return n;
}

static int w_status(struct admin *A, int *status, char *out, size_t cap, void *x)
{
	(void)status, (void)x;
	return A->ops->status(A->arg, out, cap);
}

static int w_workers(struct admin *A, int *status, char *out, size_t cap, void *x)
{
	(void)status, (void)x;
	return A->ops->workers(A->arg, out, cap);
}

struct conn_query {
	char route[256];
	int has_route;
	unsigned long limit;
};

static int w_conns(struct admin *A, int *status, char *out, size_t cap, void *x)
{
	struct conn_query *q = x;
	(void)status;
	return A->ops->connections(A->arg, q->has_route ? q->route : NULL, q->limit, out, cap);
}

static int w_config(struct admin *A, int *status, char *out, size_t cap, void *x)
{
	(void)status;
	return A->ops->config(A->arg, *(int *)x, out, cap);
}

/* Constant time in the token's length: no early exit a timing could reveal. */
static int token_ok(const char *want, const char *auth)
{
	if (strncasecmp(auth, "Bearer ", 7) != 0)
		return 0;
	const char *got = auth + 7;
	size_t wl = strlen(want), gl = strlen(got);
	unsigned diff = wl != gl;
	for (size_t i = 0; i < wl; i++)
		diff |= (unsigned char)want[i] ^ (unsigned char)(i < gl ? got[i] : 0);
	return diff == 0;
}

static void respond(struct admin *A, struct admin_conn *a)
{
	char path[2048];
	const char *q = strchr(a->url, '?');
	size_t pl = q ? (size_t)(q - a->url) : strlen(a->url);
	snprintf(path, sizeof(path), "%.*s", (int)pl, a->url);
	q = q ? q + 1 : "";
	int method = a->http.method;
	int read = method == HTTP_GET || method == HTTP_HEAD;
	uint64_t id = 0;
	char tail[32] = "";
	int kick = sscanf(path, "/connections/%20" SCNu64 "/%31s", &id, tail) == 2 && !strcmp(tail, "close");
	static const char *const reads[] = { "/metrics", "/healthz", "/status", "/workers",
					     "/connections", "/config" };
	int is_read = 0;
	for (size_t i = 0; i < sizeof(reads) / sizeof(reads[0]); i++)
		is_read |= strcmp(path, reads[i]) == 0;
	int is_post = kick || !strcmp(path, "/drain") || !strcmp(path, "/reload");
	if (!is_read && !is_post) {
		reply_text(a, 404, NULL, "no such path: /metrics /healthz /status /workers /connections /config, POST /drain /reload /connections/ID/close\n");
		return;
	}
	if (A->cfg->admin_token[0] && strcmp(path, "/healthz") != 0 && !token_ok(A->cfg->admin_token, a->auth)) {
		reply_text(a, 401, "WWW-Authenticate: Bearer realm=\"wsgw\"\r\n",
			   "this endpoint needs Authorization: Bearer TOKEN ([admin] token)\n");
		return;
	}
	if (is_read && !read) {
		reply_text(a, 405, "Allow: GET, HEAD\r\n", "GET or HEAD\n");
		return;
	}
	if (is_post && method != HTTP_POST) {
		reply_text(a, 405, "Allow: POST\r\n", "POST\n");
		return;
	}
	char buf[512];
	if (!strcmp(path, "/metrics")) {
		render(a, "text/plain; version=0.0.4; charset=utf-8", w_metrics, NULL);
	} else if (!strcmp(path, "/healthz")) {
		render(a, "text/plain; charset=utf-8", w_health, NULL);
	} else if (!strcmp(path, "/status")) {
		render(a, "application/json", w_status, NULL);
	} else if (!strcmp(path, "/workers")) {
		render(a, "application/json", w_workers, NULL);
	} else if (!strcmp(path, "/connections")) {
		struct conn_query cq = { .limit = 0 };
		cq.has_route = query_param(q, "route", cq.route, sizeof(cq.route));
		char lim[32];
		if (query_param(q, "limit", lim, sizeof(lim))) {
			char *end;
			cq.limit = strtoul(lim, &end, 10);
			if (*end || !lim[0]) {
				reply_text(a, 400, NULL, "limit wants a number\n");
				return;
			}
		}
		render(a, "application/json", w_conns, &cq);
	} else if (!strcmp(path, "/config")) {
		char fmt[16] = "";
		int json = query_param(q, "format", fmt, sizeof(fmt)) && !strcmp(fmt, "json");
		render(a, json ? "application/json" : "text/plain; charset=utf-8", w_config, &json);
	} else if (kick) {
		char code_s[16];
		unsigned long code = 1008;
		if (query_param(q, "code", code_s, sizeof(code_s))) {
			char *end;
			code = strtoul(code_s, &end, 10);
			if (*end || code < 1000 || code > 4999 || (code < 3000 && code != 1000 && code != 1001 &&
								     code != 1008 && code != 1011 && code != 1012 &&
								     code != 1013)) {
				reply_text(a, 400, NULL, "code wants 1000, 1001, 1008, 1011, 1012, 1013 or 3000..4999\n");
				return;
			}
		}
		int rc = A->ops->kick(A->arg, id, (unsigned)code);
		snprintf(buf, sizeof(buf), rc ? "{\"error\":\"no connection %llu\"}\n" : "{\"closed\":%llu,\"code\":%lu}\n",
			 (unsigned long long)id, code);
		if (rc == 0)
			log_info("admin: connection %llu closed with %lu", (unsigned long long)id, code);
		reply(a, rc ? 404 : 200, "application/json", NULL, buf, strlen(buf));
	} else if (!strcmp(path, "/drain")) {
		log_info("admin: drain requested");
		A->ops->drain(A->arg);
		reply(a, 202, "application/json", NULL, "{\"draining\":true}\n", 18);
	} else {
		char why[600];
		int rc = A->ops->reload(A->arg, why, sizeof(why));
		if (rc) {
			char esc[700];
			size_t o = 0;
			for (const char *p = why; *p && o + 3 < sizeof(esc); p++) {
				if (*p == '"' || *p == '\\')
					esc[o++] = '\\';
				esc[o++] = (unsigned char)*p < 0x20 ? ' ' : *p;
			}
			esc[o] = 0;
			char body[800];
			int n = snprintf(body, sizeof(body), "{\"reloaded\":false,\"error\":\"%s\"}\n", esc);
			reply(a, 400, "application/json", NULL, body, (size_t)n);
		} else {
			reply(a, 200, "application/json", NULL, "{\"reloaded\":true}\n", 18);
		}
	}
}

/* ---- sockets ---- */

int admin_new(struct loop *lp, const struct gw_config *cfg, const struct admin_ops *ops, void *arg,
	      struct admin **out)
{
	const struct cfg_listen *l = &cfg->admin;
	struct admin *A = calloc(1, sizeof(*A));
	if (!A)
		return -ENOMEM;
	A->loop = lp;
	A->cfg = cfg;
	A->ops = ops;
	A->arg = arg;
	A->lsn.fd = -1;
	for (int i = 0; i < ADMIN_CONNS; i++)
		A->conns[i].fd = -1;
	llhttp_settings_init(&A->settings);
	A->settings.on_url = on_url;
	A->settings.on_header_field = on_field;
	A->settings.on_header_field_complete = on_field_done;
	A->settings.on_header_value = on_value;
	A->settings.on_header_value_complete = on_value_done;
	A->settings.on_message_complete = on_complete;
	int fd = socket(l->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	int one = 1;
	if (fd >= 0)
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (fd < 0 || bind(fd, (const struct sockaddr *)&l->addr, l->len) < 0 || listen(fd, 64) < 0) {
		int err = errno;
		log_error(err, "admin endpoint on %s", l->text);
		if (fd >= 0)
			close(fd);
		free(A);
		return -err;
	}
	A->lsn.owner = A;
	A->lsn.fd = fd;
	A->lsn.src.fn = on_listener;
	int rc = loop_add(lp, fd, EPOLLIN, &A->lsn.src);
	if (rc) {
		admin_free(A);
		return rc;
	}
	struct loop_hooks h = { .arg = A, .tick = tick };
	loop_add_hooks(lp, &h);
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	getsockname(fd, (struct sockaddr *)&ss, &len);
	/* Port 0 picks a free port: the log names the real one. */
	unsigned port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
						      : ((struct sockaddr_in *)&ss)->sin_port);
	log_info("admin endpoint on port %u of %s (/metrics, /healthz, /status, /workers, /connections, /config)",
		 port, l->text);
	*out = A;
	return 0;
}

static void on_listener(struct loop_src *src, uint32_t events)
{
	struct admin *A = ((struct admin_conn *)src)->owner;
	(void)events;
	for (;;) {
		int fd = accept4(A->lsn.fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN)
				log_warn(errno, "accept4 on the admin endpoint");
			return;
		}
		struct admin_conn *slot = NULL;
		for (int i = 0; i < ADMIN_CONNS && !slot; i++)
			if (A->conns[i].fd < 0)
				slot = &A->conns[i];
		if (!slot) {
			log_warn(0, "admin endpoint: %d requests pending already, refusing one", ADMIN_CONNS);
			close(fd);
			continue;
		}
		memset(slot, 0, sizeof(*slot));
		slot->owner = A;
		slot->fd = fd;
		slot->since = loop_now(A->loop);
		slot->src.fn = on_conn;
		llhttp_init(&slot->http, HTTP_REQUEST, &A->settings);
		/* Lenient header values: a request with bare LF line ends (printf | nc) is read as
		 * one with CRLF. The endpoint parses nothing of header values but a token. */
		llhttp_set_lenient_headers(&slot->http, 1);
		slot->http.data = slot;
		if (loop_add(A->loop, fd, EPOLLIN, &slot->src))
			drop(slot);
	}
}

static void on_conn(struct loop_src *src, uint32_t events)
{
	struct admin_conn *a = (struct admin_conn *)src;
	(void)events;
	if (a->fd < 0)
		return; /* closed earlier in this batch */
	if (a->out) {
		send_rest(a);
		return;
	}
	char buf[4096];
	for (;;) {
		ssize_t r = read(a->fd, buf, sizeof(buf));
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0 && errno == EAGAIN)
			return;
		if (r <= 0) {
			/* HTTP/1.0 without Content-Length ends its (empty) body at EOF. */
			if (r == 0 && !a->complete && llhttp_finish(&a->http) == HPE_OK && a->complete)
				respond(a->owner, a);
			else
				drop(a);
			return;
		}
		a->got += (size_t)r;
		if (a->got > ADMIN_REQ_MAX) {
			reply_text(a, 431, NULL, "request too large\n");
			return;
		}
		enum llhttp_errno e = llhttp_execute(&a->http, buf, (size_t)r);
		if (a->complete) {
			respond(a->owner, a);
			return;
		}
		if (e != HPE_OK) {
			char why[160];
			snprintf(why, sizeof(why), "%s\n", a->url_over ? "URI too long" : llhttp_get_error_reason(&a->http));
			reply_text(a, a->url_over ? 414 : 400, NULL, why);
			return;
		}
	}
}

static void tick(void *arg)
{
	struct admin *A = arg;
	uint32_t now = loop_now(A->loop);
	for (int i = 0; i < ADMIN_CONNS; i++)
		if (A->conns[i].fd >= 0 && now - A->conns[i].since > ADMIN_TIMEOUT_MS)
			drop(&A->conns[i]);
}

void admin_free(struct admin *A)
{
	if (!A)
		return;
	for (int i = 0; i < ADMIN_CONNS; i++)
		if (A->conns[i].fd >= 0)
			drop(&A->conns[i]);
	if (A->lsn.fd >= 0)
		close(A->lsn.fd);
	free(A);
}
