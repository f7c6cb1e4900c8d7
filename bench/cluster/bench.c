/*
 * wsgw-bench-cluster: fan-out through one gateway or across several (bench/cluster/run).
 *
 * One publisher (a raw zmq worker of the first gateway) and N subscribers (WebSocket
 * clients spread over the gateways given, each subscribed by its gateway's worker to one
 * topic). The publisher keeps K publishes in flight: a publish is done when the last
 * subscriber has it. Every delivery is checked (each subscriber must get every sequence
 * number once, in order) and timed from the publish (the payload carries the send time;
 * one process, one clock). Prints one JSON line.
 *
 *   wsgw-bench-cluster --gw PORT,CONTROL [--gw PORT,CONTROL ...] [-n SUBS] [-m MSGS]
 *                      [-k IN_FLIGHT] [-s SIZE] [--max-seconds SEC]
 *
 * Loopback only; every phase is bounded in time.
 */
#include <arpa/inet.h>
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include "bench/loadgen/hist.h"

#define MAX_GW 8
#define TOPIC "bench"

struct gw {
	int port;
	char control[256];
	void *sock;            /* the worker's DEALER */
	uint64_t counted;      /* counted messages received, for ACK */
	unsigned subs, opened;
};

struct sub {
	int fd;
	int gw;
	int state;             /* 0 connecting, 1 request sent, 2 open */
	uint64_t next;         /* the sequence number due */
	size_t blen;
	uint8_t buf[4 + 4096]; /* a partial frame, or the handshake's answer */
};

#define RBUF (256u << 10)
static uint8_t rbuf[RBUF];

static struct gw gws[MAX_GW];
static int n_gw;
static struct sub *subs;
static unsigned n_subs = 10000, n_msgs = 2000, in_flight = 16, size = 64;
static double max_seconds = 120;
static uint32_t *delivered; /* per sequence number */
static uint64_t *sent_ns;
static struct lg_hist hist_one, hist_last;
static uint64_t deliveries, errors, warm_seen;
static unsigned warm_subs;
static uint8_t *warm;

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void die(const char *what)
{
	fprintf(stderr, "wsgw-bench-cluster: %s\n", what);
	exit(1);
}

/* ---- the workers ---- */

static int zsend(void *s, int n, const void *const *f, const size_t *l)
{
	for (int i = 0; i < n; i++)
		if (zmq_send(s, f[i], l[i], i < n - 1 ? ZMQ_SNDMORE : 0) < 0)
			return -1;
	return 0;
}

/* Reads what the gateway sent worker g: OPENs are subscribed; counted messages are
 * acknowledged. Returns how many messages were read. */
static int worker_pump(struct gw *g, int timeout_ms)
{
	int n = 0;
	zmq_pollitem_t it = { .socket = g->sock, .events = ZMQ_POLLIN };
	while (zmq_poll(&it, 1, n ? 0 : timeout_ms) > 0) {
		zmq_msg_t f[8];
		int k = 0, more = 1;
		while (more) {
			zmq_msg_init(&f[k < 8 ? k : 7]);
			if (zmq_msg_recv(&f[k < 8 ? k : 7], g->sock, 0) < 0)
				die("zmq_msg_recv");
			more = zmq_msg_more(&f[k < 8 ? k : 7]);
			if (k < 7)
				k++;
			else
				zmq_msg_close(&f[7]);
		}
		const char *verb = zmq_msg_data(&f[0]);
		size_t vl = zmq_msg_size(&f[0]);
		int counted = (vl == 4 && !memcmp(verb, "OPEN", 4)) || (vl == 7 && !memcmp(verb, "MESSAGE", 7)) ||
			      (vl == 5 && !memcmp(verb, "CLOSE", 5)) || (vl == 4 && !memcmp(verb, "GONE", 4));
		if (vl == 4 && !memcmp(verb, "OPEN", 4) && k > 1) {
			const void *fr[] = { "SUBSCRIBE", zmq_msg_data(&f[1]), TOPIC };
			size_t fl[] = { 9, 8, strlen(TOPIC) };
			zsend(g->sock, 3, fr, fl);
			g->opened++;
		}
		if (counted) {
			char num[24];
			snprintf(num, sizeof(num), "%llu", (unsigned long long)++g->counted);
			const void *fr[] = { "ACK", num };
			size_t fl[] = { 3, strlen(num) };
			zsend(g->sock, 2, fr, fl);
		}
		for (int i = 0; i < k; i++)
			zmq_msg_close(&f[i]);
		n++;
	}
	return n;
}

static void worker_attach(void *ctx, struct gw *g)
{
	char pid[16];
	int linger = 0, hwm = 0;
	g->sock = zmq_socket(ctx, ZMQ_DEALER);
	zmq_setsockopt(g->sock, ZMQ_LINGER, &linger, sizeof(linger));
	zmq_setsockopt(g->sock, ZMQ_SNDHWM, &hwm, sizeof(hwm));
	zmq_setsockopt(g->sock, ZMQ_RCVHWM, &hwm, sizeof(hwm));
	if (zmq_connect(g->sock, g->control))
		die("zmq_connect");
	snprintf(pid, sizeof(pid), "%d", (int)getpid());
	const void *f[] = { "HELLO", "2", "p", "zmq", pid };
	size_t l[] = { 5, 1, 1, 3, strlen(pid) };
	zsend(g->sock, 5, f, l);
	zmq_pollitem_t it = { .socket = g->sock, .events = ZMQ_POLLIN };
	if (zmq_poll(&it, 1, 5000) <= 0)
		die("no WELCOME from a gateway");
	char buf[64];
	int more = 1, first = 1;
	while (more) {
		int n = zmq_recv(g->sock, buf, sizeof(buf), 0);
		if (first && (n != 7 || memcmp(buf, "WELCOME", 7)))
			die("the gateway refused the worker (pool p?)");
		first = 0;
		size_t ml = sizeof(more);
		zmq_getsockopt(g->sock, ZMQ_RCVMORE, &more, &ml);
	}
}

static void heartbeat(void)
{
	for (int i = 0; i < n_gw; i++) {
		const void *f[] = { "HEARTBEAT" };
		size_t l[] = { 9 };
		zsend(gws[i].sock, 1, f, l);
	}
}

/* ---- the subscribers ---- */

static void sub_connect(struct sub *s, int epfd)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)gws[s->gw].port),
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	s->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (s->fd < 0)
		die("socket (the fd limit?)");
	int one = 1;
	setsockopt(s->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect(s->fd, (struct sockaddr *)&a, sizeof(a)) < 0 && errno != EINPROGRESS)
		die("connect");
	struct epoll_event ev = { .events = EPOLLIN | EPOLLOUT | EPOLLET, .data.ptr = s };
	epoll_ctl(epfd, EPOLL_CTL_ADD, s->fd, &ev);
}

static void delivery(struct sub *s, const uint8_t *p, size_t n, uint64_t t)
{
	if (n && p[0] == 'w') {
		if (!warm[s - subs]) {
			warm[s - subs] = 1;
			warm_subs++;
		}
		warm_seen++;
		return;
	}
	char num[24];
	size_t k = n < 23 ? n : 23;
	memcpy(num, p, k);
	num[k] = 0;
	char *end;
	uint64_t seq = strtoull(num, &end, 10);
	if (*end != ' ' || seq >= n_msgs || seq != s->next) {
		errors++;
		if (errors < 5)
			fprintf(stderr, "subscriber %zu: %llu where %llu was due\n", (size_t)(s - subs),
				(unsigned long long)seq, (unsigned long long)s->next);
		return;
	}
	s->next++;
	deliveries++;
	lg_hist_record(&hist_one, t - sent_ns[seq]);
	if (++delivered[seq] == n_subs)
		lg_hist_record(&hist_last, t - sent_ns[seq]);
}

/* Parses the frames in p[0..n); returns the bytes of a partial one left at the end. */
static size_t frames(struct sub *s, const uint8_t *p, size_t n, uint64_t t)
{
	size_t off = 0;
	while (n - off >= 2) {
		const uint8_t *h = p + off;
		size_t len = h[1] & 0x7f, hl = 2;
		if (len == 126) {
			if (n - off < 4)
				break;
			len = (size_t)h[2] << 8 | h[3];
			hl = 4;
		}
		if (len > 4096 || (h[1] & 0x7f) == 127) {
			errors++;
			return 0;
		}
		if (n - off < hl + len)
			break;
		if ((h[0] & 0x0f) == 1 || (h[0] & 0x0f) == 2)
			delivery(s, h + hl, len, t);
		off += hl + len;
	}
	return n - off;
}

static void sub_event(struct sub *s, uint32_t events)
{
	static const char req[] = "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
				  "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
				  "Sec-WebSocket-Version: 13\r\n\r\n";
	if (s->state == 0 && (events & EPOLLOUT)) {
		if (write(s->fd, req, sizeof(req) - 1) != (ssize_t)sizeof(req) - 1)
			die("writing the upgrade request");
		s->state = 1;
	}
	if (!(events & (EPOLLIN | EPOLLERR | EPOLLHUP)) || s->fd < 0)
		return;
	uint64_t t = now_ns();
	/* The kept partial frame, then one read into the shared buffer behind it. */
	for (;;) {
		memcpy(rbuf, s->buf, s->blen);
		size_t want = RBUF - s->blen;
		ssize_t r = read(s->fd, rbuf + s->blen, want);
		if (r < 0 && errno == EAGAIN)
			return;
		if (r <= 0) {
			errors++;
			close(s->fd);
			s->fd = -1;
			return;
		}
		size_t n = s->blen + (size_t)r, off = 0;
		if (s->state == 1) {
			uint8_t *e = memmem(rbuf, n, "\r\n\r\n", 4);
			if (!e) {
				if (n > sizeof(s->buf))
					die("an oversized upgrade answer");
				memcpy(s->buf, rbuf, n);
				s->blen = n;
				continue;
			}
			if (memcmp(rbuf, "HTTP/1.1 101", 12))
				die("an upgrade was refused");
			off = (size_t)(e + 4 - rbuf);
			s->state = 2;
		}
		size_t keep = frames(s, rbuf + off, n - off, t);
		memcpy(s->buf, rbuf + n - keep, keep);
		s->blen = keep;
		if ((size_t)r < want)
			return; /* a short read emptied the socket */
	}
}

static int pump_subs(int epfd, int timeout_ms)
{
	struct epoll_event ev[512];
	int n = epoll_wait(epfd, ev, 512, timeout_ms);
	for (int i = 0; i < n; i++)
		sub_event(ev[i].data.ptr, ev[i].events);
	return n;
}

static void publish(uint64_t seq, const char *kind)
{
	char payload[4096];
	int n = snprintf(payload, sizeof(payload), "%s%llu ", kind, (unsigned long long)seq);
	memset(payload + n, 'x', size > (unsigned)n ? size - (unsigned)n : 0);
	size_t len = size > (unsigned)n ? size : (size_t)n;
	const void *f[] = { "PUBLISH", TOPIC, "text", payload };
	size_t l[] = { 7, strlen(TOPIC), 4, len };
	zsend(gws[0].sock, 4, f, l);
}

int main(int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (!strcmp(argv[i], "--gw") && v && n_gw < MAX_GW) {
			const char *comma = strchr(v, ',');
			if (!comma)
				die("--gw wants PORT,CONTROL");
			gws[n_gw].port = atoi(v);
			snprintf(gws[n_gw].control, sizeof(gws[n_gw].control), "%s", comma + 1);
			n_gw++;
		} else if (!strcmp(argv[i], "-n") && v) {
			n_subs = (unsigned)atoi(v);
		} else if (!strcmp(argv[i], "-m") && v) {
			n_msgs = (unsigned)atoi(v);
		} else if (!strcmp(argv[i], "-k") && v) {
			in_flight = (unsigned)atoi(v);
		} else if (!strcmp(argv[i], "-s") && v) {
			size = (unsigned)atoi(v);
		} else if (!strcmp(argv[i], "--max-seconds") && v) {
			max_seconds = atof(v);
		} else {
			fprintf(stderr, "usage: wsgw-bench-cluster --gw PORT,CONTROL ... [-n SUBS] [-m MSGS] "
					"[-k IN_FLIGHT] [-s SIZE] [--max-seconds SEC]\n");
			return 2;
		}
		i++;
	}
	if (!n_gw || !n_subs || !n_msgs || !in_flight || size < 24 || size > 4000)
		die("need --gw, and -n, -m, -k >= 1, 24 <= -s <= 4000");
	struct rlimit rl;
	getrlimit(RLIMIT_NOFILE, &rl);
	rl.rlim_cur = rl.rlim_max;
	setrlimit(RLIMIT_NOFILE, &rl);
	subs = calloc(n_subs, sizeof(*subs));
	delivered = calloc(n_msgs, sizeof(*delivered));
	sent_ns = calloc(n_msgs, sizeof(*sent_ns));
	warm = calloc(n_subs, 1);
	if (!subs || !delivered || !sent_ns || !warm)
		die("out of memory");
	void *ctx = zmq_ctx_new();
	for (int i = 0; i < n_gw; i++)
		worker_attach(ctx, &gws[i]);
	int epfd = epoll_create1(EPOLL_CLOEXEC);
	uint64_t t0 = now_ns(), limit = (uint64_t)(max_seconds * 1e9);

	/* Connect, 256 handshakes at a time; each gateway's worker subscribes its clients. */
	unsigned started = 0;
	for (unsigned i = 0; i < n_subs; i++)
		subs[i].gw = (int)(i % (unsigned)n_gw), subs[i].fd = -1;
	for (;;) {
		unsigned open = 0;
		for (unsigned i = 0; i < started; i++)
			open += subs[i].state == 2;
		if (open == n_subs)
			break;
		while (started < n_subs && started - open < 256)
			sub_connect(&subs[started++], epfd);
		pump_subs(epfd, 5);
		for (int i = 0; i < n_gw; i++)
			worker_pump(&gws[i], 0);
		if (now_ns() - t0 > limit)
			die("connecting took too long");
	}
	unsigned opened = 0;
	while (opened < n_subs && now_ns() - t0 < limit) {
		opened = 0;
		for (int i = 0; i < n_gw; i++) {
			worker_pump(&gws[i], 10);
			opened += gws[i].opened;
		}
	}
	/* Warm-up: publish until every subscriber has had one (all subscriptions in force,
	 * across gateways too). */
	uint64_t w = 0, last_hb = now_ns();
	while (warm_subs < n_subs && now_ns() - t0 < limit) {
		publish(w++, "w");
		for (int j = 0; j < 20; j++)
			pump_subs(epfd, 1);
		for (int i = 0; i < n_gw; i++)
			worker_pump(&gws[i], 0);
	}
	if (warm_subs < n_subs)
		die("not every subscriber got the warm-up messages");
	/* Let the warm-up drain. */
	for (uint64_t end = now_ns() + 500000000u; now_ns() < end;)
		pump_subs(epfd, 10);

	/* The run: K publishes in flight. */
	uint64_t next = 0, done = 0, start = now_ns();
	while (done < n_msgs && now_ns() - t0 < limit) {
		while (next < n_msgs && next - done < in_flight) {
			sent_ns[next] = now_ns();
			publish(next, "");
			next++;
		}
		pump_subs(epfd, 1);
		while (done < next && delivered[done] == n_subs)
			done++;
		if (now_ns() - last_hb > 1000000000u) {
			heartbeat();
			for (int i = 0; i < n_gw; i++)
				worker_pump(&gws[i], 0);
			last_hb = now_ns();
		}
	}
	double secs = (double)(now_ns() - start) / 1e9;
	for (unsigned i = 0; i < n_subs; i++)
		if (subs[i].fd >= 0)
			close(subs[i].fd);
	printf("{\"gateways\":%d,\"subscribers\":%u,\"messages\":%llu,\"size\":%u,\"in_flight\":%u,"
	       "\"deliveries\":%llu,\"seconds\":%.3f,\"deliveries_per_s\":%.0f,"
	       "\"delivery_p50_us\":%.1f,\"delivery_p99_us\":%.1f,\"last_delivery_p50_us\":%.1f,"
	       "\"last_delivery_p99_us\":%.1f,\"errors\":%llu,\"complete\":%s}\n",
	       n_gw, n_subs, (unsigned long long)done, size, in_flight, (unsigned long long)deliveries,
	       secs, deliveries / secs, lg_hist_quantile(&hist_one, 0.5) / 1e3,
	       lg_hist_quantile(&hist_one, 0.99) / 1e3, lg_hist_quantile(&hist_last, 0.5) / 1e3,
	       lg_hist_quantile(&hist_last, 0.99) / 1e3, (unsigned long long)errors,
	       done == n_msgs && !errors ? "true" : "false");
	for (int i = 0; i < n_gw; i++) {
		const void *f[] = { "BYE" };
		size_t l[] = { 3 };
		zsend(gws[i].sock, 1, f, l);
		zmq_close(gws[i].sock);
	}
	zmq_ctx_term(ctx);
	return done == n_msgs && !errors ? 0 : 1;
}
