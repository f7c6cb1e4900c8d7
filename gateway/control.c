#include "gateway/control.h"
#include "gateway/conn.h"
#include "gateway/frame.h"
#include "gateway/log.h"
#include "gateway/pool.h"
#include "gateway/rundir.h"
#include "gateway/server.h"
#include "shm/ring.h"
#include "wsgw/protocol.h"

#include <endian.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <zmq.h>

#define MAX_PEERS 256
#define MAX_FRAMES 40 /* ACCEPT: verb, id, protocol, and up to 37 headers */
#define IDENT_MAX 256

/* One attached worker as the control channel sees it (a struct ctl_link to pool.c). */
struct ctl_link {
	uint8_t kind; /* EP_PIDFD: data.ptr of its pidfd */
	uint8_t dead; /* dropped; freed by ctl_tick, after the event batch that may name it */
	struct ctl_link *next_dead;
	int pidfd;    /* -1: the worker is remote, or pidfd_open failed */
	uint8_t ident[IDENT_MAX];
	size_t ident_len;
	struct worker *w;
	uint32_t last_heard, last_sent;
};

static struct {
	const struct gw_config *cfg;
	void *ctx, *sock;
	int fd, epfd;
	struct { uint8_t kind; } tag; /* EP_CONTROL */
	struct ctl_link *peers[MAX_PEERS];
	struct ctl_link *dead;
	void *zap;                 /* ZAP handler (REP): which CURVE clients may attach */
	int zap_fd;
	uint8_t (*clients)[32];    /* allowed client public keys; NULL: any key */
	size_t n_clients;
	int local; /* ipc:// endpoint: worker pids are ours to watch */
	struct rundir_sock owned; /* the ipc:// socket file this process bound */
} C;

static int mkdir_p(const char *dir)
{
	char tmp[256];
	snprintf(tmp, sizeof(tmp), "%s", dir);
	for (char *p = tmp + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = 0;
		if (mkdir(tmp, 0755) < 0 && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	/* The control socket and segments are for this user (or group) only. */
	if (mkdir(tmp, 0750) < 0 && errno != EEXIST)
		return -errno;
	return 0;
}

static int frame_eq(const zmq_msg_t *m, const char *s)
{
	size_t n = strlen(s);
	return zmq_msg_size((zmq_msg_t *)m) == n && memcmp(zmq_msg_data((zmq_msg_t *)m), s, n) == 0;
}

/* The first 40 Z85 characters of a key file. */
static int read_key(const char *path, char z85[41])
{
	FILE *f = fopen(path, "r");
	if (!f)
		return -errno;
	int n = 0, ch;
	while (n < 40 && (ch = fgetc(f)) != EOF)
		if (ch > ' ' && ch < 127)
			z85[n++] = (char)ch;
	fclose(f);
	z85[n] = 0;
	return n == 40 ? 0 : -EINVAL;
}

static int load_clients(const char *path)
{
	FILE *f = fopen(path, "r");
	if (!f)
		return -errno;
	char line[256];
	int rc = 0;
	while (fgets(line, sizeof(line), f)) {
		char *p = line + strspn(line, " \t");
		p[strcspn(p, " \t\r\n")] = 0;
		if (!*p || *p == '#')
			continue;
		uint8_t (*v)[32] = realloc(C.clients, (C.n_clients + 1) * sizeof(*v));
		if (!v) {
			rc = -ENOMEM;
			break;
		}
		C.clients = v;
		if (strlen(p) != 40 || !zmq_z85_decode(C.clients[C.n_clients], p)) {
			log_error(0, "%s: '%s' is not a Z85 public key", path, p);
			rc = -EINVAL;
			break;
		}
		C.n_clients++;
	}
	fclose(f);
	return rc;
}

/* CURVE on the ROUTER, and a ZAP handler so only listed client keys get in. */
static int setup_curve(void)
{
	char secret[41], public[41];
	int rc = read_key(C.cfg->curve_secret, secret);
	if (rc) {
		log_error(-rc, "--curve-secret-key %s: want a file with a 40-character Z85 key",
			  C.cfg->curve_secret);
		return rc;
	}
	if (zmq_curve_public(public, secret) < 0) {
		log_error(errno, "zmq_curve_public: the secret key is not valid");
		return -EINVAL;
	}
	if (C.cfg->curve_clients[0] && (rc = load_clients(C.cfg->curve_clients))) {
		log_error(-rc, "--curve-clients %s", C.cfg->curve_clients);
		return rc;
	}
	C.zap = zmq_socket(C.ctx, ZMQ_REP);
	if (!C.zap || zmq_bind(C.zap, "inproc://zeromq.zap.01") < 0) {
		log_error(errno, "ZAP handler");
		return -EIO;
	}
	int one = 1;
	zmq_setsockopt(C.sock, ZMQ_CURVE_SERVER, &one, sizeof(one));
	zmq_setsockopt(C.sock, ZMQ_CURVE_SECRETKEY, secret, 40);
	zmq_setsockopt(C.sock, ZMQ_ZAP_DOMAIN, "wsgw", 4);
	size_t len = sizeof(C.zap_fd);
	zmq_getsockopt(C.zap, ZMQ_FD, &C.zap_fd, &len);
	struct epoll_event ev = { .events = EPOLLIN | EPOLLET, .data.ptr = &C.tag };
	if (epoll_ctl(C.epfd, EPOLL_CTL_ADD, C.zap_fd, &ev) < 0) {
		log_error(errno, "epoll_ctl(ADD, ZAP fd)");
		return -errno;
	}
	log_info("control channel uses CURVE; gateway public key %s; %zu client keys allowed%s",
		 public, C.n_clients, C.n_clients ? "" : " (any client key)");
	return 0;
}

/* ZAP requests (RFC 27): version, request id, domain, address, identity, mechanism, key. */
static void on_zap(void)
{
	for (;;) {
		int events = 0;
		size_t len = sizeof(events);
		if (zmq_getsockopt(C.zap, ZMQ_EVENTS, &events, &len) < 0 || !(events & ZMQ_POLLIN))
			return;
		zmq_msg_t f[8];
		int n = 0, more = 1;
		while (more) {
			zmq_msg_t m;
			zmq_msg_init(&m);
			if (zmq_msg_recv(&m, C.zap, ZMQ_DONTWAIT) < 0) {
				zmq_msg_close(&m);
				break;
			}
			more = zmq_msg_more(&m);
			if (n < 8)
				f[n++] = m;
			else
				zmq_msg_close(&m);
		}
		if (n < 2) {
			for (int i = 0; i < n; i++)
				zmq_msg_close(&f[i]);
			continue;
		}
		int ok = n == 7 && frame_eq(&f[5], "CURVE") && zmq_msg_size(&f[6]) == 32;
		if (ok && C.n_clients) {
			ok = 0;
			for (size_t i = 0; i < C.n_clients && !ok; i++)
				ok = memcmp(C.clients[i], zmq_msg_data(&f[6]), 32) == 0;
		}
		if (!ok) {
			char z85[41] = "?";
			if (n == 7 && zmq_msg_size(&f[6]) == 32)
				zmq_z85_encode(z85, zmq_msg_data(&f[6]), 32);
			log_warn(0, "control: refused a worker with CURVE key %s (not in --curve-clients)", z85);
		}
		zmq_send(C.zap, "1.0", 3, ZMQ_SNDMORE);
		zmq_send(C.zap, zmq_msg_data(&f[1]), zmq_msg_size(&f[1]), ZMQ_SNDMORE);
		zmq_send(C.zap, ok ? "200" : "400", 3, ZMQ_SNDMORE);
		zmq_send(C.zap, ok ? "OK" : "key not allowed", ok ? 2 : 15, ZMQ_SNDMORE);
		zmq_send(C.zap, "", 0, ZMQ_SNDMORE);
		zmq_send(C.zap, "", 0, 0);
		for (int i = 0; i < n; i++)
			zmq_msg_close(&f[i]);
	}
}

int ctl_init(const struct gw_config *cfg, int epfd)
{
	C.cfg = cfg;
	C.epfd = epfd;
	C.tag.kind = EP_CONTROL;
	C.local = strncmp(cfg->control, "ipc://", 6) == 0;
	if (C.local) {
		char dir[256];
		snprintf(dir, sizeof(dir), "%s", cfg->control + 6);
		char *slash = strrchr(dir, '/');
		if (slash && slash != dir) {
			*slash = 0;
			int rc = mkdir_p(dir);
			if (rc) {
				log_error(-rc, "mkdir %s", dir);
				return rc;
			}
		}
	}
	C.ctx = zmq_ctx_new();
	C.sock = C.ctx ? zmq_socket(C.ctx, ZMQ_ROUTER) : NULL;
	if (!C.sock) {
		log_error(errno, "zmq_socket(ROUTER)");
		return -EIO;
	}
	int zero = 0, one = 1;
	zmq_setsockopt(C.sock, ZMQ_LINGER, &zero, sizeof(zero));
	/* Without it a ROUTER drops a message silently once a worker's queue is at its
	 * high-water mark; with it the send fails with EAGAIN and the records are held
	 * back (pool.c), pausing that worker's clients. */
	zmq_setsockopt(C.sock, ZMQ_ROUTER_MANDATORY, &one, sizeof(one));
	if (cfg->curve_secret[0]) {
		int rc = setup_curve();
		if (rc)
			return rc;
	} else if (!C.local) {
		log_warn(0, "control channel %s is not ipc:// and has no --curve-secret-key: any host that reaches it can attach workers",
			 cfg->control);
	}
	if (zmq_bind(C.sock, cfg->control) < 0) {
		int err = errno;
		log_error(err, "zmq_bind(%s)", cfg->control);
		return -err;
	}
	int orc = C.local ? rundir_sock_claim(&C.owned, cfg->control + 6, cfg->socket_mode, cfg->gid) : 0;
	if (orc) {
		log_error(-orc, "control socket %s: chmod 0%o / chown to group %s", cfg->control + 6,
			  cfg->socket_mode, cfg->group[0] ? cfg->group : "-");
		return orc;
	}
	size_t len = sizeof(C.fd);
	zmq_getsockopt(C.sock, ZMQ_FD, &C.fd, &len);
	struct epoll_event ev = { .events = EPOLLIN | EPOLLET, .data.ptr = &C.tag };
	if (epoll_ctl(epfd, EPOLL_CTL_ADD, C.fd, &ev) < 0) {
		log_error(errno, "epoll_ctl(ADD, control fd)");
		return -errno;
	}
	log_info("control channel on %s", cfg->control);
	return 0;
}

/* Sends frames [ident, f0, f1, ...]; a worker that cannot take it now misses it (a
 * heartbeat) or learns from the next one. */
static void send_frames(const uint8_t *ident, size_t ilen, const char *const *f, int n)
{
	if (zmq_send(C.sock, ident, ilen, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0)
		return;
	for (int i = 0; i < n; i++)
		zmq_send(C.sock, f[i], strlen(f[i]), (i + 1 < n ? ZMQ_SNDMORE : 0) | ZMQ_DONTWAIT);
}

static void send_error(const uint8_t *ident, size_t ilen, const char *reason)
{
	const char *f[] = { "ERROR", reason };
	send_frames(ident, ilen, f, 2);
}

static struct ctl_link *find_peer(const uint8_t *ident, size_t ilen)
{
	for (int i = 0; i < MAX_PEERS; i++) {
		struct ctl_link *p = C.peers[i];
		if (p && p->ident_len == ilen && memcmp(p->ident, ident, ilen) == 0)
			return p;
	}
	return NULL;
}

static void drop_peer(struct ctl_link *p, const char *why)
{
	if (p->dead)
		return;
	pool_worker_gone(p->w, why);
	pool_worker_free(p->w);
	p->w = NULL;
	if (p->pidfd >= 0)
		close(p->pidfd); /* also leaves the epoll set */
	p->pidfd = -1;
	for (int i = 0; i < MAX_PEERS; i++)
		if (C.peers[i] == p)
			C.peers[i] = NULL;
	p->dead = 1;
	p->next_dead = C.dead;
	C.dead = p;
}


/* A frame as a NUL-terminated string in buf; -1 when it does not fit or holds a NUL. */
static int frame_str(zmq_msg_t *m, char *buf, size_t cap)
{
	size_t n = zmq_msg_size(m);
	if (n >= cap || memchr(zmq_msg_data(m), 0, n))
		return -1;
	memcpy(buf, zmq_msg_data(m), n);
	buf[n] = 0;
	return 0;
}

static void on_hello(const uint8_t *ident, size_t ilen, zmq_msg_t *f, int n)
{
	char version[16], pool[CFG_NAME_MAX], transport[16], pidtext[16];
	if (n != 5 || frame_str(&f[1], version, sizeof(version)) || frame_str(&f[2], pool, sizeof(pool)) ||
	    frame_str(&f[3], transport, sizeof(transport)) || frame_str(&f[4], pidtext, sizeof(pidtext))) {
		log_warn(0, "control: malformed HELLO (%d frames)", n);
		send_error(ident, ilen, "bad hello");
		return;
	}
	if (atoi(version) != WSGW_PROTOCOL_VERSION) {
		log_warn(0, "control: HELLO with protocol version %s (this gateway speaks %d)", version,
			 WSGW_PROTOCOL_VERSION);
		send_error(ident, ilen, "version mismatch");
		return;
	}
	int zmq_transport = strcmp(transport, "zmq") == 0;
	if (!zmq_transport && strcmp(transport, "shm") != 0) {
		log_warn(0, "control: HELLO with unknown transport '%s'", transport);
		send_error(ident, ilen, "unknown transport");
		return;
	}
	struct ctl_link *old = find_peer(ident, ilen);
	if (old)
		drop_peer(old, "attached again");
	int slot = -1;
	for (int i = 0; i < MAX_PEERS && slot < 0; i++)
		if (!C.peers[i])
			slot = i;
	struct ctl_link *p = slot >= 0 ? calloc(1, sizeof(*p)) : NULL;
	if (!p) {
		send_error(ident, ilen, "too many workers");
		return;
	}
	pid_t pid = (pid_t)atol(pidtext);
	struct pool_welcome wel;
	const char *why = NULL;
	memcpy(p->ident, ident, ilen);
	p->ident_len = ilen;
	p->w = pool_attach(pool, pid, zmq_transport ? p : NULL, &wel, &why);
	if (!p->w) {
		log_warn(0, "control: HELLO for pool '%s' refused: %s", pool, why);
		send_error(ident, ilen, why);
		free(p);
		return;
	}
	p->kind = EP_PIDFD;
	p->last_heard = p->last_sent = srv_now();
	p->pidfd = -1;
	/* A local worker's exit is seen at once through its pidfd; heartbeats catch the rest. */
	if (C.local && pid > 0) {
		p->pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
		struct epoll_event ev = { .events = EPOLLIN, .data.ptr = p };
		if (p->pidfd >= 0 && epoll_ctl(C.epfd, EPOLL_CTL_ADD, p->pidfd, &ev) < 0) {
			close(p->pidfd);
			p->pidfd = -1;
		}
	}
	C.peers[slot] = p;
	char id[16], hb[16], tw[24], tg[24];
	snprintf(id, sizeof(id), "%u", wel.id);
	snprintf(hb, sizeof(hb), "%u", C.cfg->heartbeat_ms);
	snprintf(tw, sizeof(tw), "%llu", (unsigned long long)wel.to_worker_bytes);
	snprintf(tg, sizeof(tg), "%llu", (unsigned long long)wel.to_gateway_bytes);
	const char *out[] = { "WELCOME", id, hb, wel.segment, tw, tg, wel.bell };
	send_frames(ident, ilen, out, 7);
	/* After WELCOME: a zmq worker must not see OPEN before it knows it is attached. */
	pool_adopt_orphans(p->w);
}

static void reject_command(struct ctl_link *p, const char *why)
{
	log_warn(0, "control: worker %u: %s", pool_worker_id(p->w), why);
	send_error(p->ident, p->ident_len, why);
}

static int frame_u64(zmq_msg_t *m, uint64_t *out)
{
	if (zmq_msg_size(m) != 8)
		return -1;
	uint64_t be;
	memcpy(&be, zmq_msg_data(m), 8);
	*out = be64toh(be);
	return 0;
}

/* A decimal frame in [lo, hi]. */
static int frame_num(zmq_msg_t *m, unsigned lo, unsigned hi, unsigned *out)
{
	char buf[12], *end;
	if (frame_str(m, buf, sizeof(buf)) || !buf[0])
		return -1;
	unsigned long v = strtoul(buf, &end, 10);
	if (*end || v < lo || v > hi)
		return -1;
	*out = (unsigned)v;
	return 0;
}

/* A zmq-transport worker's SEND, CLOSE, ACCEPT or REJECT, turned into the record its ring
 * would have carried, so both transports share one path (pool_command). */
static void on_command(struct ctl_link *p, zmq_msg_t *f, int n)
{
	if (!pool_worker_is_zmq(p->w)) {
		reject_command(p, "commands of a shm worker go through its ring");
		return;
	}
	struct shm_rec r = { 0 };
	uint8_t small[2 + WS_CONTROL_MAX];
	uint8_t *fields = NULL;
	if (n < 2 || frame_u64(&f[1], &r.conn)) {
		reject_command(p, "malformed command: want VERB, 8-byte connection id, ...");
		return;
	}
	unsigned num;
	if (frame_eq(&f[0], "SEND")) {
		if (n != 4 || (!frame_eq(&f[2], "text") && !frame_eq(&f[2], "binary"))) {
			reject_command(p, "malformed SEND: want SEND, id, text|binary, payload");
			return;
		}
		if (zmq_msg_size(&f[3]) > C.cfg->max_message) {
			reject_command(p, "SEND payload over --max-message");
			return;
		}
		r.type = WSGW_SEND;
		r.flags = frame_eq(&f[2], "binary") ? WSGW_F_BINARY : 0;
		r.payload = zmq_msg_data(&f[3]);
		r.len = (uint32_t)zmq_msg_size(&f[3]);
	} else if (frame_eq(&f[0], "CLOSE") || frame_eq(&f[0], "REJECT")) {
		int close = frame_eq(&f[0], "CLOSE");
		size_t rl = n == 4 ? zmq_msg_size(&f[3]) : 0;
		if (n != 4 || frame_num(&f[2], close ? 1000 : 400, close ? 4999 : 599, &num) || rl > WS_CONTROL_MAX - 2) {
			reject_command(p, close ? "malformed CLOSE: want CLOSE, id, code, reason (<= 123 bytes)"
						: "malformed REJECT: want REJECT, id, status 400-599, reason");
			return;
		}
		r.type = close ? WSGW_CLOSE : WSGW_REJECT;
		small[0] = (uint8_t)(num >> 8);
		small[1] = (uint8_t)num;
		memcpy(small + 2, zmq_msg_data(&f[3]), rl);
		r.payload = small;
		r.len = (uint32_t)(2 + rl);
	} else if (frame_eq(&f[0], "ACCEPT")) {
		if (n < 3) {
			reject_command(p, "malformed ACCEPT: want ACCEPT, id, protocol, headers...");
			return;
		}
		size_t total = 0;
		for (int i = 2; i < n; i++)
			total += wsgw_field_size(8, zmq_msg_size(&f[i]));
		fields = malloc(total);
		if (!fields)
			return;
		uint8_t *q = fields;
		for (int i = 2; i < n; i++) {
			const char *name = i == 2 ? "protocol" : "header";
			size_t vl = zmq_msg_size(&f[i]);
			if (i > 2 || vl)
				q = wsgw_field_put(q, name, strlen(name), zmq_msg_data(&f[i]), vl);
		}
		r.type = WSGW_ACCEPT;
		r.payload = fields;
		r.len = (uint32_t)(q - fields);
	} else {
		reject_command(p, "unknown verb");
		return;
	}
	rcu_read_lock();
	pool_command(p->w, &r);
	rcu_read_unlock();
	free(fields);
}

int ctl_send_record(struct ctl_link *l, uint16_t type, uint16_t flags, uint64_t conn,
		    const void *a, size_t na, const void *b, size_t nb)
{
	/* Bodies in two parts are CLOSE (code + reason) and ERROR; join them. */
	uint8_t joined[2 + 256];
	const uint8_t *body = a;
	size_t len = na;
	if (nb) {
		if (na + nb > sizeof(joined))
			nb = sizeof(joined) - na;
		memcpy(joined, a, na);
		memcpy(joined + na, b, nb);
		body = joined;
		len = na + nb;
	}
	const char *verb;
	switch (type) {
	case WSGW_OPEN: verb = "OPEN"; break;
	case WSGW_MESSAGE: verb = "MESSAGE"; break;
	case WSGW_CLOSE: verb = "CLOSE"; break;
	case WSGW_GONE: verb = "GONE"; break;
	case WSGW_ERROR: verb = "ERROR"; break;
	default:
		log_error(0, "control: no zmq form for record type %u", type);
		return -EIO;
	}
	/* The first frame decides: past the high-water mark nothing is queued. */
	if (zmq_send(C.sock, l->ident, l->ident_len, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0) {
		/* EHOSTUNREACH: the worker's connection is gone and its death is about to be
		 * noticed (pidfd, heartbeats); held like a full queue, the records then move
		 * with its connections. */
		if (errno == EAGAIN || errno == EHOSTUNREACH)
			return -EAGAIN;
		log_error(errno, "control: record for worker %u not sent", pool_worker_id(l->w));
		return -EIO;
	}
	zmq_send(C.sock, verb, strlen(verb), ZMQ_SNDMORE | ZMQ_DONTWAIT);
	if (type == WSGW_ERROR) {
		zmq_send(C.sock, body, len, ZMQ_DONTWAIT);
		return 0;
	}
	uint64_t be = htobe64(conn);
	zmq_send(C.sock, &be, 8, (type == WSGW_GONE ? 0 : ZMQ_SNDMORE) | ZMQ_DONTWAIT);
	char num[8];
	switch (type) {
	case WSGW_MESSAGE:
		zmq_send(C.sock, flags & WSGW_F_BINARY ? "binary" : "text", flags & WSGW_F_BINARY ? 6 : 4,
			 ZMQ_SNDMORE | ZMQ_DONTWAIT);
		zmq_send(C.sock, body, len, ZMQ_DONTWAIT);
		break;
	case WSGW_CLOSE:
		snprintf(num, sizeof(num), "%u", len >= 2 ? (unsigned)(body[0] << 8 | body[1]) : 1005u);
		zmq_send(C.sock, num, strlen(num), ZMQ_SNDMORE | ZMQ_DONTWAIT);
		zmq_send(C.sock, len > 2 ? body + 2 : body, len > 2 ? len - 2 : 0, ZMQ_DONTWAIT);
		break;
	case WSGW_OPEN: {
		const char *fl = (flags & WSGW_F_RESUMED) ? "resumed" : (flags & WSGW_F_AUTHORIZE) ? "authorize" : "";
		const uint8_t *q = body, *end = body + len;
		struct wsgw_field fd;
		zmq_send(C.sock, fl, strlen(fl), (q < end ? ZMQ_SNDMORE : 0) | ZMQ_DONTWAIT);
		while (wsgw_field_next(&q, end, &fd) == 1) {
			zmq_send(C.sock, fd.name, fd.name_len, ZMQ_SNDMORE | ZMQ_DONTWAIT);
			zmq_send(C.sock, fd.value, fd.value_len, (q < end ? ZMQ_SNDMORE : 0) | ZMQ_DONTWAIT);
		}
		break;
	}
	default:
		break;
	}
	return 0;
}

void ctl_flush(void)
{
	ctl_on_event();
}

static void on_message(zmq_msg_t *f, int n)
{
	const uint8_t *ident = zmq_msg_data(&f[0]);
	size_t ilen = zmq_msg_size(&f[0]);
	if (ilen > IDENT_MAX || n < 2)
		return;
	zmq_msg_t *body = f + 1;
	int nb = n - 1;
	if (frame_eq(&body[0], "HELLO")) {
		on_hello(ident, ilen, body, nb);
		return;
	}
	struct ctl_link *p = find_peer(ident, ilen);
	if (!p) {
		send_error(ident, ilen, "not attached");
		return;
	}
	p->last_heard = srv_now();
	if (frame_eq(&body[0], "HEARTBEAT"))
		return;
	if (frame_eq(&body[0], "BYE")) {
		drop_peer(p, "said BYE");
		return;
	}
	on_command(p, body, nb);
}

void ctl_on_event(void)
{
	if (!C.sock)
		return;
	if (C.zap)
		on_zap();
	for (;;) {
		int events = 0;
		size_t len = sizeof(events);
		/* ZMQ_FD is edge-like: it fires once and stays quiet until ZMQ_EVENTS says
		 * every waiting message was taken. */
		if (zmq_getsockopt(C.sock, ZMQ_EVENTS, &events, &len) < 0 || !(events & ZMQ_POLLIN))
			return;
		zmq_msg_t f[MAX_FRAMES];
		int n = 0, more = 1, bad = 0;
		while (more) {
			zmq_msg_t m;
			zmq_msg_init(&m);
			if (zmq_msg_recv(&m, C.sock, ZMQ_DONTWAIT) < 0) {
				zmq_msg_close(&m);
				break;
			}
			more = zmq_msg_more(&m);
			if (n < MAX_FRAMES)
				f[n++] = m;
			else
				bad = 1, zmq_msg_close(&m);
		}
		if (bad)
			log_warn(0, "control: message with more than %d frames dropped", MAX_FRAMES);
		else if (n)
			on_message(f, n);
		for (int i = 0; i < n; i++)
			zmq_msg_close(&f[i]);
	}
}

void ctl_on_pidfd(void *ptr)
{
	struct ctl_link *p = ptr;
	if (!p->dead)
		drop_peer(p, "process exited");
	ctl_on_event();
}

void ctl_tick(void)
{
	if (!C.sock)
		return;
	while (C.dead) {
		struct ctl_link *p = C.dead;
		C.dead = p->next_dead;
		free(p);
	}
	uint32_t now = srv_now(), hb = C.cfg->heartbeat_ms;
	for (int i = 0; i < MAX_PEERS; i++) {
		struct ctl_link *p = C.peers[i];
		if (!p)
			continue;
		if (!pool_worker_alive(p->w)) {
			drop_peer(p, "its ring was corrupt");
			continue;
		}
		if (now - p->last_heard >= 3 * hb) {
			drop_peer(p, "missed 3 heartbeats");
			continue;
		}
		if (now - p->last_sent >= hb) {
			const char *f[] = { "HEARTBEAT" };
			send_frames(p->ident, p->ident_len, f, 1);
			p->last_sent = now;
		}
	}
	ctl_on_event();
}

void ctl_shutdown(void)
{
	for (int i = 0; i < MAX_PEERS; i++) {
		struct ctl_link *p = C.peers[i];
		if (!p)
			continue;
		if (p->pidfd >= 0)
			close(p->pidfd);
		free(p->w);
		free(p);
		C.peers[i] = NULL;
	}
	while (C.dead) {
		struct ctl_link *p = C.dead;
		C.dead = p->next_dead;
		free(p);
	}
	if (C.zap)
		zmq_close(C.zap);
	free(C.clients);
	if (C.sock)
		zmq_close(C.sock);
	if (C.ctx)
		zmq_ctx_term(C.ctx);
	if (C.local)
		rundir_sock_release(&C.owned, C.cfg->control + 6); /* never another's socket */
	memset(&C, 0, sizeof(C));
}
