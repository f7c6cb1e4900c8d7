/* wsgw-bench: a WebSocket load generator for loopback targets. Main parses the options,
 * drives the phases (connect, run, drain) that the client threads follow, samples /proc
 * for the processes under test, prints a progress line a second on stderr and, last, one
 * JSON object with the figures on stdout. */
#include "bench/loadgen/lg.h"
#include "bench/loadgen/proc.h"

#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

int lg_phase = LG_PH_CONNECT;
uint64_t lg_run_start_ns;
uint64_t lg_drain_deadline_ns;
uint8_t lg_pattern[LG_PATLEN + LG_MAX_SIZE];
struct lg_fan lg_fan = { .efd = -1 };

static volatile sig_atomic_t interrupted;

uint64_t lg_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void usage(FILE *f)
{
	fprintf(f,
"usage: wsgw-bench --target [ws://]127.0.0.1:PORT[/path] --mode hold|echo|rate|ingest|fanout [options]\n"
"       wsgw-bench --free-port\n"
"  -c, --conns N           connections (default 100)\n"
"  -t, --threads N         client threads, each with its own epoll (default 1)\n"
"  -d, --duration SEC      length of the measured run (default 5; hold: how long to hold)\n"
"  -k, --inflight K        echo: messages in flight per connection (default 1); fanout:\n"
"                          messages published and not yet delivered to everyone\n"
"  -s, --size BYTES        message size (default 32)\n"
"  -r, --rate MSGS         rate: aggregate messages per second (default 1000)\n"
"      --text              send text frames (default binary)\n"
"      --sources N         spread connections over source addresses 127.0.0.1..N\n"
"                          (default: 1 per 10,000 connections)\n"
"      --connect-parallel N  handshakes in flight per thread (default 256)\n"
"      --connect-timeout SEC  (default 60)\n"
"      --drain-timeout SEC  wait for echoes and close handshakes (default 3;\n"
"                          ingest 20: the server must read its backlog first)\n"
"  -p, --pid PID           a process under test: RSS and CPU (repeatable, up to %d)\n"
"fanout: connection 0 publishes, every connection (itself included) must get each\n"
"  message once and in order: a broadcast server (wsgw-broadcast, uWS's example)\n"
"  -q, --quiet             no progress lines\n"
"Only loopback targets (127.0.0.0/8, localhost) are accepted. Every run ends by itself.\n",
		LG_MAX_PIDS);
}

static int parse_target(struct lg_config *cfg, const char *arg)
{
	char buf[512], *host, *port, *path, *end;
	long p;

	if (!strncmp(arg, "ws://", 5))
		arg += 5;
	else if (strstr(arg, "://")) {
		fprintf(stderr, "wsgw-bench: only ws:// targets are supported\n");
		return -EINVAL;
	}
	snprintf(buf, sizeof(buf), "%s", arg);
	path = strchr(buf, '/');
	snprintf(cfg->path, sizeof(cfg->path), "%s", path ? path : "/");
	if (path)
		*path = '\0';
	host = buf;
	port = strrchr(buf, ':');
	if (!port) {
		fprintf(stderr, "wsgw-bench: target needs a port: %s\n", arg);
		return -EINVAL;
	}
	*port++ = '\0';
	p = strtol(port, &end, 10);
	if (*end || p < 1 || p > 65535) {
		fprintf(stderr, "wsgw-bench: bad port %s\n", port);
		return -EINVAL;
	}
	snprintf(cfg->host, sizeof(cfg->host), "%.40s:%ld", host, p);
	cfg->target.sin_family = AF_INET;
	cfg->target.sin_port = htons((uint16_t)p);
	if (!strcmp(host, "localhost"))
		host = "127.0.0.1";
	if (inet_pton(AF_INET, host, &cfg->target.sin_addr) != 1) {
		fprintf(stderr, "wsgw-bench: target must be an IPv4 loopback address: %s\n", host);
		return -EINVAL;
	}
	/* This tool sends load: it never points at anything but this machine. */
	if ((ntohl(cfg->target.sin_addr.s_addr) >> 24) != 127) {
		fprintf(stderr, "wsgw-bench: refusing non-loopback target %s\n", host);
		return -EPERM;
	}
	return 0;
}

static int free_port(void)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(0x7f000001) };
	socklen_t al = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 ||
	    getsockname(fd, (struct sockaddr *)&a, &al) < 0) {
		perror("wsgw-bench: free port");
		return 1;
	}
	printf("%u\n", ntohs(a.sin_port));
	close(fd);
	return 0;
}

static double num(const char *s, const char *what)
{
	char *end;
	double v = strtod(s, &end);

	if (*end || v < 0) {
		fprintf(stderr, "wsgw-bench: bad %s: %s\n", what, s);
		exit(2);
	}
	return v;
}

static void parse_args(struct lg_config *cfg, int argc, char **argv)
{
	enum { O_TEXT = 256, O_SOURCES, O_CPAR, O_CTO, O_DTO, O_FREE };
	static const struct option opts[] = {
		{ "target", 1, NULL, 'T' }, { "mode", 1, NULL, 'm' },
		{ "conns", 1, NULL, 'c' }, { "threads", 1, NULL, 't' },
		{ "duration", 1, NULL, 'd' }, { "inflight", 1, NULL, 'k' },
		{ "size", 1, NULL, 's' }, { "rate", 1, NULL, 'r' },
		{ "pid", 1, NULL, 'p' }, { "quiet", 0, NULL, 'q' },
		{ "text", 0, NULL, O_TEXT }, { "sources", 1, NULL, O_SOURCES },
		{ "connect-parallel", 1, NULL, O_CPAR },
		{ "connect-timeout", 1, NULL, O_CTO }, { "drain-timeout", 1, NULL, O_DTO },
		{ "free-port", 0, NULL, O_FREE }, { "help", 0, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	const char *target = NULL, *mode = NULL;
	int o;

	*cfg = (struct lg_config){ .conns = 100, .threads = 1, .inflight = 1, .size = 32,
				   .connect_parallel = 256, .duration = 5, .rate = 1000,
				   .connect_timeout = 60, .drain_timeout = -1 };
	while ((o = getopt_long(argc, argv, "T:m:c:t:d:k:s:r:p:qh", opts, NULL)) != -1) {
		switch (o) {
		case 'T': target = optarg; break;
		case 'm': mode = optarg; break;
		case 'c': cfg->conns = (unsigned)num(optarg, "conns"); break;
		case 't': cfg->threads = (unsigned)num(optarg, "threads"); break;
		case 'd': cfg->duration = num(optarg, "duration"); break;
		case 'k': cfg->inflight = (unsigned)num(optarg, "inflight"); break;
		case 's': cfg->size = (unsigned)num(optarg, "size"); break;
		case 'r': cfg->rate = num(optarg, "rate"); break;
		case 'q': cfg->quiet = 1; break;
		case O_TEXT: cfg->text = 1; break;
		case O_SOURCES: cfg->sources = (unsigned)num(optarg, "sources"); break;
		case O_CPAR: cfg->connect_parallel = (unsigned)num(optarg, "connect-parallel"); break;
		case O_CTO: cfg->connect_timeout = num(optarg, "connect-timeout"); break;
		case O_DTO: cfg->drain_timeout = num(optarg, "drain-timeout"); break;
		case O_FREE: exit(free_port());
		case 'p':
			if (cfg->npids == LG_MAX_PIDS) {
				fprintf(stderr, "wsgw-bench: at most %d --pid\n", LG_MAX_PIDS);
				exit(2);
			}
			cfg->pids[cfg->npids++] = (pid_t)num(optarg, "pid");
			break;
		case 'h': usage(stdout); exit(0);
		default: usage(stderr); exit(2);
		}
	}
	if (optind != argc || !target || !mode) {
		usage(stderr);
		exit(2);
	}
	if (parse_target(cfg, target) < 0)
		exit(2);
	if (!strcmp(mode, "hold"))
		cfg->mode = LG_HOLD;
	else if (!strcmp(mode, "echo"))
		cfg->mode = LG_ECHO;
	else if (!strcmp(mode, "rate"))
		cfg->mode = LG_RATE;
	else if (!strcmp(mode, "ingest"))
		cfg->mode = LG_INGEST;
	else if (!strcmp(mode, "fanout"))
		cfg->mode = LG_FANOUT;
	else {
		fprintf(stderr, "wsgw-bench: unknown mode %s\n", mode);
		exit(2);
	}
	if (!cfg->conns || !cfg->threads || cfg->threads > 64 || !cfg->inflight ||
	    cfg->size > LG_MAX_SIZE || cfg->rate <= 0 || !cfg->connect_parallel ||
	    cfg->duration > 3600 || cfg->sources > 254) {
		fprintf(stderr, "wsgw-bench: option out of range (threads 1..64, size <= %u, "
			"rate > 0, duration <= 3600 s, sources <= 254)\n", LG_MAX_SIZE);
		exit(2);
	}
	if (cfg->drain_timeout < 0)
		/* Ingest ends when the server has read the backlog in the socket buffers,
		 * which at a slow reader's pace can take many seconds. */
		cfg->drain_timeout = cfg->mode == LG_INGEST ? 20 : 3;
	if ((cfg->mode == LG_ECHO || cfg->mode == LG_RATE || cfg->mode == LG_FANOUT) &&
	    cfg->size < 8) {
		fprintf(stderr, "wsgw-bench: echo, rate and fanout need --size >= 8 (the tag)\n");
		exit(2);
	}
	if (cfg->threads > cfg->conns)
		cfg->threads = cfg->conns;
	if (!cfg->sources)
		cfg->sources = 1 + cfg->conns / 10000;
}

/* Connections need one fd each: take the hard limit, the soft one is often 1024. */
static int raise_nofile(unsigned need)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		return -errno;
	rl.rlim_cur = rl.rlim_max;
	if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
		return -errno;
	if (rl.rlim_cur != RLIM_INFINITY && need + 32 > rl.rlim_cur) {
		fprintf(stderr, "wsgw-bench: %u connections need %u fds, the limit is %lu\n",
			need, need + 32, (unsigned long)rl.rlim_cur);
		return -EMFILE;
	}
	return 0;
}

static void sum_counters(struct lg_thread *ts, unsigned n, struct lg_counters *c)
{
	memset(c, 0, sizeof(*c));
	for (unsigned i = 0; i < n; i++) {
		const struct lg_counters *s = &ts[i].c;

		c->connected += LG_LOAD(s->connected);
		c->connect_errors += LG_LOAD(s->connect_errors);
		c->handshake_errors += LG_LOAD(s->handshake_errors);
		c->sent += LG_LOAD(s->sent);
		c->rcvd += LG_LOAD(s->rcvd);
		c->bytes_sent += LG_LOAD(s->bytes_sent);
		c->bytes_rcvd += LG_LOAD(s->bytes_rcvd);
		c->mismatches += LG_LOAD(s->mismatches);
		c->protocol_errors += LG_LOAD(s->protocol_errors);
		c->pings += LG_LOAD(s->pings);
		c->peer_closed += LG_LOAD(s->peer_closed);
		c->close_ok += LG_LOAD(s->close_ok);
		c->close_sent += LG_LOAD(s->close_sent);
		c->closed += LG_LOAD(s->closed);
	}
}

struct sample {
	struct lg_proc_sample p[LG_MAX_PIDS];
	struct lg_sockstat ss;
	double self_cpu;
	uint64_t ns;
};

static void take_sample(const struct lg_config *cfg, struct sample *s)
{
	s->ns = lg_now_ns();
	for (unsigned i = 0; i < cfg->npids; i++)
		lg_proc_sample(cfg->pids[i], &s->p[i]);
	lg_sockstat(&s->ss);
	s->self_cpu = lg_self_cpu_s();
}

static const char *phase_name[] = { "connect", "run", "drain", "warm" };

static void progress(const struct lg_config *cfg, struct lg_thread *ts, uint64_t t0,
		     struct lg_counters *prev, uint64_t *prev_ns)
{
	struct lg_counters c;
	uint64_t now = lg_now_ns();
	double dt = (double)(now - *prev_ns) / 1e9;

	sum_counters(ts, cfg->threads, &c);
	if (!cfg->quiet)
		fprintf(stderr, "[%6.1fs] %-7s open %llu/%u  sent %.0f/s  recv %.0f/s  "
			"errors %llu  cpu %.0f%%\n",
			(double)(now - t0) / 1e9, phase_name[LG_LOAD(lg_phase)],
			(unsigned long long)(c.connected - (c.closed - c.connect_errors -
							    c.handshake_errors)),
			cfg->conns, (double)(c.sent - prev->sent) / dt,
			(double)(c.rcvd - prev->rcvd) / dt,
			(unsigned long long)(c.connect_errors + c.handshake_errors +
					     c.protocol_errors + c.mismatches),
			lg_self_cpu_s() * 100.0 / ((double)(now - t0) / 1e9));
	*prev = c;
	*prev_ns = now;
}

static void on_signal(int sig)
{
	(void)sig;
	interrupted = 1;
}

/* Sleeps until deadline or until done(), printing progress each second. */
static void wait_phase(const struct lg_config *cfg, struct lg_thread *ts, uint64_t t0,
		       uint64_t deadline, int (*done)(const struct lg_config *, struct lg_thread *),
		       struct lg_counters *prev, uint64_t *prev_ns)
{
	while (!interrupted) {
		uint64_t now = lg_now_ns();

		if (now >= deadline || (done && done(cfg, ts)))
			return;
		if (now - *prev_ns >= 1000000000u)
			progress(cfg, ts, t0, prev, prev_ns);
		uint64_t step = deadline - now < 10000000 ? deadline - now : 10000000;
		struct timespec d = { 0, (long)step };
		nanosleep(&d, NULL);
	}
}

static int all_connected(const struct lg_config *cfg, struct lg_thread *ts)
{
	struct lg_counters c;

	sum_counters(ts, cfg->threads, &c);
	return c.connected + c.connect_errors + c.handshake_errors >= cfg->conns;
}

/* Ingest drain, watched from here: the server has read everything once every close
 * frame is out and the kernel holds no bytes for the target port. A server that reads
 * the close frame into a user-space buffer and never looks at it (the seed design does)
 * never completes the handshake; give it 2 s after that point, not the whole timeout.
 * Returns when the kernel queues emptied (ns), 0 if they never did. */
static uint64_t ingest_wait(const struct lg_config *cfg, struct lg_thread *ts, uint64_t t0,
			    struct lg_counters *prev, uint64_t *prev_ns)
{
	uint64_t drained = 0, moved = lg_now_ns(), last = 0;
	struct lg_counters c;

	while (!interrupted) {
		uint64_t now = lg_now_ns(), progress_sum;

		sum_counters(ts, cfg->threads, &c);
		if (c.closed >= cfg->conns || now >= lg_drain_deadline_ns)
			break;
		if (!drained && c.close_sent + (c.closed - c.close_ok) >= c.connected &&
		    lg_tcp_queued(ntohs(cfg->target.sin_port)) == 0)
			drained = now;
		/* an echoing server is still busy while its echoes keep coming */
		progress_sum = c.rcvd + c.close_ok + c.closed;
		if (progress_sum != last) {
			last = progress_sum;
			moved = now;
		}
		if (drained && now - drained > 2000000000u && now - moved > 2000000000u) {
			__atomic_store_n(&lg_drain_deadline_ns, now, __ATOMIC_RELAXED);
			break;
		}
		if (now - *prev_ns >= 1000000000u)
			progress(cfg, ts, t0, prev, prev_ns);
		struct timespec d = { 0, 5000000 };
		nanosleep(&d, NULL);
	}
	return drained;
}

static const char *mode_name(enum lg_mode m)
{
	static const char *n[] = { "hold", "echo", "rate", "ingest", "fanout" };
	return n[m];
}

static int all_ready(const struct lg_config *cfg, struct lg_thread *ts)
{
	(void)ts;
	return __atomic_load_n(&lg_fan.ready, __ATOMIC_RELAXED) >= cfg->conns;
}

/* The fanout's shared state: delivery counts per in-flight message, and the eventfd that
 * wakes the publisher's thread when another thread completes a message. */
static void fan_init(const struct lg_config *cfg)
{
	uint32_t slots = 64;

	while (slots < 2 * cfg->inflight + 64)
		slots *= 2;
	lg_fan.slots = slots;
	lg_fan.count = calloc(slots, sizeof(*lg_fan.count));
	lg_fan.sent_ns = calloc(slots, sizeof(*lg_fan.sent_ns));
	lg_fan.efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (!lg_fan.count || !lg_fan.sent_ns || lg_fan.efd < 0) {
		perror("wsgw-bench: fanout state");
		exit(2);
	}
}

int main(int argc, char **argv)
{
	struct lg_config cfg;
	struct lg_thread *ts;
	struct lg_counters c, prev = { 0 }, at_end;
	struct sample base, run0, run1, fin;
	struct lg_hist hist = { 0 }, rtt = { 0 };
	uint64_t t0, prev_ns, lag = 0, last_close = 0, read_done = 0;
	long queued_end = 0;
	double run_s, connect_s;
	int rc;

	parse_args(&cfg, argc, argv);
	signal(SIGPIPE, SIG_IGN);
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	/* rate mode sleeps to the next due message: keep the kernel from rounding up 50 µs */
	prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0);
	if (raise_nofile(cfg.conns) < 0)
		return 2;
	srand((unsigned)lg_now_ns());
	for (size_t i = 0; i < sizeof(lg_pattern); i++)
		lg_pattern[i] = (uint8_t)('a' + rand() % 26);	/* valid UTF-8 for --text */

	if (cfg.mode == LG_FANOUT)
		fan_init(&cfg);
	ts = calloc(cfg.threads, sizeof(*ts));
	if (!ts)
		abort();
	for (unsigned i = 0; i < cfg.threads; i++)
		lg_client_init(&ts[i], &cfg, i);

	take_sample(&cfg, &base);
	t0 = prev_ns = lg_now_ns();
	for (unsigned i = 0; i < cfg.threads; i++) {
		rc = pthread_create(&ts[i].tid, NULL, lg_client_run, &ts[i]);
		if (rc) {
			fprintf(stderr, "wsgw-bench: pthread_create: %s\n", strerror(rc));
			return 2;
		}
	}
	wait_phase(&cfg, ts, t0, t0 + (uint64_t)(cfg.connect_timeout * 1e9), all_connected,
		   &prev, &prev_ns);
	connect_s = (double)(lg_now_ns() - t0) / 1e9;
	double warm_s = 0;
	if (cfg.mode == LG_FANOUT) {
		/* Subscriptions are made by the server after each open: probe until every
		 * connection has one, so that the run starts with everyone listening. */
		uint64_t w0 = lg_now_ns();
		__atomic_store_n(&lg_phase, LG_PH_WARM, __ATOMIC_RELEASE);
		wait_phase(&cfg, ts, t0, w0 + (uint64_t)(cfg.connect_timeout * 1e9), all_ready,
			   &prev, &prev_ns);
		warm_s = (double)(lg_now_ns() - w0) / 1e9;
	}

	take_sample(&cfg, &run0);
	sum_counters(ts, cfg.threads, &c);
	/* Threads notice a phase change within their 20 ms poll: start the open-loop
	 * schedule after that, or its first messages would all count as late. */
	lg_run_start_ns = run0.ns + (cfg.mode == LG_RATE ? 25000000u : 0);
	__atomic_store_n(&lg_phase, LG_PH_RUN, __ATOMIC_RELEASE);
	wait_phase(&cfg, ts, t0, run0.ns + (uint64_t)(cfg.duration * 1e9), NULL, &prev,
		   &prev_ns);

	take_sample(&cfg, &run1);
	sum_counters(ts, cfg.threads, &at_end);
	if (cfg.mode == LG_INGEST)
		queued_end = lg_tcp_queued(ntohs(cfg.target.sin_port));
	run_s = (double)(run1.ns - run0.ns) / 1e9;
	lg_drain_deadline_ns = lg_now_ns() + (uint64_t)(cfg.drain_timeout * 1e9);
	__atomic_store_n(&lg_phase, LG_PH_DRAIN, __ATOMIC_RELEASE);
	if (cfg.mode == LG_INGEST)
		read_done = ingest_wait(&cfg, ts, t0, &prev, &prev_ns);
	for (unsigned i = 0; i < cfg.threads; i++)
		pthread_join(ts[i].tid, NULL);
	take_sample(&cfg, &fin);
	if (!cfg.quiet)
		progress(&cfg, ts, t0, &prev, &prev_ns);

	sum_counters(ts, cfg.threads, &c);
	for (unsigned i = 0; i < cfg.threads; i++) {
		lg_hist_merge(&hist, &ts[i].hist);
		lg_hist_merge(&rtt, &ts[i].rtt);
		if (ts[i].send_lag_max_ns > lag)
			lag = ts[i].send_lag_max_ns;
		if (ts[i].last_close_ns > last_close)
			last_close = ts[i].last_close_ns;
	}

	/* Figures: run window for rates and CPU; for ingest, up to the last close handshake,
	 * because only the server's close frame proves it read everything before it. */
	uint64_t opened = at_end.connected;
	double msgs_s, srv_cpu = 0, srv_cpu_fin = 0, cli_cpu = run1.self_cpu - run0.self_cpu;
	long rss_base = 0, rss_run = 0;
	char pids[256] = "";
	size_t pl = 0;

	for (unsigned i = 0; i < cfg.npids; i++) {
		srv_cpu += run1.p[i].cpu_s - run0.p[i].cpu_s;
		srv_cpu_fin += fin.p[i].cpu_s - run0.p[i].cpu_s;
		rss_base += base.p[i].rss_kib > 0 ? base.p[i].rss_kib : 0;
		rss_run += run1.p[i].rss_kib > 0 ? run1.p[i].rss_kib : 0;
		pl += (size_t)snprintf(pids + pl, sizeof(pids) - pl, "%s%d", i ? "," : "",
				       (int)cfg.pids[i]);
	}

	double ingest_s = 0, msgs = 0, srv_cpu_used = srv_cpu;
	double read_s = read_done > run0.ns ? (double)(read_done - run0.ns) / 1e9 : 0;
	if (cfg.mode == LG_INGEST) {
		ingest_s = last_close > run0.ns ? (double)(last_close - run0.ns) / 1e9 : 0;
		if (!read_done && c.close_ok == opened)
			read_s = ingest_s;	/* the close frames came back first */
		msgs = (double)c.sent;
		msgs_s = ingest_s > 0 && c.close_ok == opened ? msgs / ingest_s : 0;
		srv_cpu_used = srv_cpu_fin;
	} else if (cfg.mode == LG_HOLD) {
		msgs_s = 0;
	} else {
		msgs = (double)at_end.rcvd;	/* nothing is sent before the run */
		msgs_s = msgs / run_s;
	}
	long stranded = cfg.mode == LG_ECHO || cfg.mode == LG_RATE ?
			(long)(c.sent - c.rcvd) : 0;
	uint64_t ready = __atomic_load_n(&lg_fan.ready, __ATOMIC_RELAXED);
	if (cfg.mode == LG_FANOUT)
		stranded = (long)(c.sent * opened - c.rcvd);
	int ok = opened == cfg.conns && !c.mismatches && !c.protocol_errors &&
		 !c.handshake_errors && !interrupted &&
		 (cfg.mode != LG_FANOUT || ready == cfg.conns);

	printf("{\"mode\":\"%s\",\"target\":\"%s%s\",\"conns\":%u,\"conns_open\":%llu,"
	       "\"connect_errors\":%llu,\"handshake_errors\":%llu,\"connect_s\":%.3f,"
	       "\"threads\":%u,\"sources\":%u,\"size\":%u,\"inflight\":%u,\"rate_target\":%.0f,"
	       "\"duration_s\":%.3f,\"msgs_sent\":%llu,\"msgs_rcvd\":%llu,\"msgs_per_s\":%.0f,"
	       "\"mb_sent_per_s\":%.2f,\"mismatches\":%llu,\"stranded\":%ld,"
	       "\"protocol_errors\":%llu,\"peer_closed\":%llu,\"close_ok\":%llu,\"pings\":%llu,",
	       mode_name(cfg.mode), cfg.host, cfg.path, cfg.conns,
	       (unsigned long long)opened, (unsigned long long)c.connect_errors,
	       (unsigned long long)c.handshake_errors, connect_s, cfg.threads, cfg.sources,
	       cfg.size, cfg.mode == LG_ECHO || cfg.mode == LG_FANOUT ? cfg.inflight : 0,
	       cfg.mode == LG_RATE ? cfg.rate : 0, run_s, (unsigned long long)c.sent,
	       (unsigned long long)c.rcvd, msgs_s,
	       (double)at_end.bytes_sent / run_s / 1e6,
	       (unsigned long long)c.mismatches, stranded, (unsigned long long)c.protocol_errors,
	       (unsigned long long)c.peer_closed, (unsigned long long)c.close_ok,
	       (unsigned long long)c.pings);
	if (cfg.mode == LG_INGEST) {
		/* What the server read in the run window: what we wrote minus what still
		 * sits in the kernel (our send queues, its receive queues). */
		size_t flen = cfg.size + 4 + (cfg.size < 126 ? 2 : cfg.size < 65536 ? 4 : 10);
		double rd = queued_end >= 0 ?
			    ((double)at_end.bytes_sent - (double)queued_end) / (double)flen : 0;

		printf("\"ingest_s\":%.3f,\"close_handshakes_complete\":%s,"
		       "\"read_msgs_per_s\":%.0f,\"queued_kib_at_end\":%ld,"
		       "\"all_read_s\":%.3f,", ingest_s,
		       c.close_ok == opened ? "true" : "false", rd / run_s, queued_end / 1024,
		       read_s);
	}
	if (cfg.mode == LG_FANOUT) {
		uint64_t done = __atomic_load_n(&lg_fan.completed, __ATOMIC_RELAXED);
		printf("\"subscribers\":%llu,\"warm_s\":%.3f,\"ready\":%llu,\"publishes\":%llu,"
		       "\"publishes_complete\":%llu,\"publishes_per_s\":%.0f,\"deliveries\":%llu,"
		       "\"deliveries_per_s\":%.0f,\"lat_samples\":%llu,\"lat_p50_us\":%.1f,"
		       "\"lat_p99_us\":%.1f,\"lat_max_us\":%.1f,",
		       (unsigned long long)(cfg.conns - 1), warm_s, (unsigned long long)ready,
		       (unsigned long long)c.sent, (unsigned long long)done,
		       (double)at_end.sent / run_s, (unsigned long long)c.rcvd, msgs_s,
		       (unsigned long long)hist.count, lg_hist_quantile(&hist, 0.50) / 1e3,
		       lg_hist_quantile(&hist, 0.99) / 1e3, hist.max / 1e3);
	}
	if (cfg.mode == LG_RATE)
		printf("\"lat_samples\":%llu,\"lat_p50_us\":%.1f,\"lat_p99_us\":%.1f,"
		       "\"lat_p999_us\":%.1f,\"lat_max_us\":%.1f,\"lat_mean_us\":%.1f,"
		       "\"send_lag_max_us\":%.1f,",
		       (unsigned long long)hist.count, lg_hist_quantile(&hist, 0.50) / 1e3,
		       lg_hist_quantile(&hist, 0.99) / 1e3, lg_hist_quantile(&hist, 0.999) / 1e3,
		       hist.max / 1e3, hist.count ? (double)hist.sum / hist.count / 1e3 : 0,
		       lag / 1e3);
	if (cfg.mode == LG_RATE)
		/* From the moment each message really left: what the server added, less
		 * sensitive to a late generator (but blind to the queueing it causes). */
		printf("\"rtt_p50_us\":%.1f,\"rtt_p99_us\":%.1f,\"rtt_p999_us\":%.1f,",
		       lg_hist_quantile(&rtt, 0.50) / 1e3, lg_hist_quantile(&rtt, 0.99) / 1e3,
		       lg_hist_quantile(&rtt, 0.999) / 1e3);
	printf("\"client_cpu_pct\":%.1f,\"client_cpu_per_thread_pct\":%.1f,",
	       cli_cpu * 100 / run_s, cli_cpu * 100 / run_s / cfg.threads);
	printf("\"server_pids\":\"%s\"", pids);
	if (cfg.npids) {
		double per_msg = msgs > 0 ? srv_cpu_used * 1e6 / msgs : 0;

		printf(",\"server_rss_kib_base\":%ld,\"server_rss_kib\":%ld,"
		       "\"server_rss_per_conn_kib\":%.3f,\"server_cpu_pct\":%.1f,"
		       "\"server_cpu_us_per_msg\":%.3f",
		       rss_base, rss_run,
		       opened ? (double)(rss_run - rss_base) / (double)opened : 0,
		       srv_cpu * 100 / run_s, per_msg);
	}
	printf(",\"sockstat_tcp_inuse\":%ld,\"sockstat_tcp_mem_kib_base\":%ld,"
	       "\"sockstat_tcp_mem_kib\":%ld,\"sockstat_tcp_mem_per_conn_kib\":%.3f,"
	       "\"slab_kib_base\":%ld,\"slab_kib\":%ld,\"slab_per_conn_kib\":%.3f,"
	       "\"ok\":%s}\n",
	       run1.ss.tcp_inuse, base.ss.tcp_mem_kib, run1.ss.tcp_mem_kib,
	       opened ? (double)(run1.ss.tcp_mem_kib - base.ss.tcp_mem_kib) / (double)opened : 0,
	       base.ss.slab_kib, run1.ss.slab_kib,
	       opened ? (double)(run1.ss.slab_kib - base.ss.slab_kib) / (double)opened : 0,
	       ok ? "true" : "false");
	fflush(stdout);

	for (unsigned i = 0; i < cfg.threads; i++)
		lg_client_free(&ts[i]);
	free(ts);
	return ok ? 0 : 1;
}
