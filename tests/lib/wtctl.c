/* wtctl: the control channel spoken by hand (tests/lib/wtctl.h). */
#include "tests/lib/wtctl.h"
#include "tests/lib/wstest.h"
#include "shm/fdpass.h"
#include "wsgw/protocol.h"

#include <endian.h>
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zmq.h>

int wt_ctl_connect(struct wt_ctl *c, const char *endpoint)
{
	int zero = 0;

	c->ctx = zmq_ctx_new();
	c->sock = c->ctx ? zmq_socket(c->ctx, ZMQ_DEALER) : NULL;
	if (!c->sock)
		return -errno;
	zmq_setsockopt(c->sock, ZMQ_LINGER, &zero, sizeof(zero));
	if (zmq_connect(c->sock, endpoint) < 0) {
		int err = errno;

		wt_ctl_close(c);
		return -err;
	}
	return 0;
}

/* The test programs' own zmq peers close with ZMQ_LINGER 0 while a message may be in
 * flight, and libzmq 4.3.4 can then leave a few of its objects unfreed when the process
 * exits (LeakSanitizer saw 460 bytes once, all inside libzmq, in test_cluster). Only in
 * the test programs: the gateway and workers under test are checked without it. */
const char *__lsan_default_suppressions(void);
const char *__lsan_default_suppressions(void)
{
	return "leak:libzmq.so\n";
}

void wt_ctl_close(struct wt_ctl *c)
{
	if (c->sock)
		zmq_close(c->sock);
	if (c->ctx)
		zmq_ctx_term(c->ctx);
	c->sock = c->ctx = NULL;
}

int wt_ctl_send(struct wt_ctl *c, int n, const char *const *frames, const size_t *lens)
{
	for (int i = 0; i < n; i++) {
		size_t len = lens ? lens[i] : strlen(frames[i]);

		if (zmq_send(c->sock, frames[i], len, i + 1 < n ? ZMQ_SNDMORE : 0) < 0)
			return -errno;
	}
	return 0;
}

void wt_ctl_msg_free(struct wt_ctl_msg *m)
{
	for (int i = 0; i < m->n && i < WT_CTL_FRAMES; i++)
		free(m->f[i]);
	m->n = 0;
}

int wt_ctl_recv(struct wt_ctl *c, struct wt_ctl_msg *m, int timeout_ms)
{
	zmq_pollitem_t it = { .socket = c->sock, .events = ZMQ_POLLIN };
	int more = 1;

	m->n = 0;
	if (zmq_poll(&it, 1, timeout_ms) <= 0)
		return -ETIMEDOUT;
	while (more) {
		zmq_msg_t f;

		zmq_msg_init(&f);
		if (zmq_msg_recv(&f, c->sock, 0) < 0) {
			int err = errno;

			zmq_msg_close(&f);
			wt_ctl_msg_free(m);
			return -err;
		}
		more = zmq_msg_more(&f);
		if (m->n < WT_CTL_FRAMES) {
			size_t len = zmq_msg_size(&f);

			m->f[m->n] = malloc(len + 1);
			memcpy(m->f[m->n], zmq_msg_data(&f), len);
			m->f[m->n][len] = 0;
			m->len[m->n] = len;
		}
		m->n++;
		zmq_msg_close(&f);
	}
	return 0;
}

int wt_ctl_frame_is(const struct wt_ctl_msg *m, int i, const char *s)
{
	return i < m->n && i < WT_CTL_FRAMES && m->len[i] == strlen(s) && !memcmp(m->f[i], s, m->len[i]);
}

int wt_ctl_recv_verb(struct wt_ctl *c, const char *verb, struct wt_ctl_msg *m, int timeout_ms)
{
	int64_t end = wt_now_ms() + timeout_ms;

	for (;;) {
		int left = (int)(end - wt_now_ms());
		int rc = wt_ctl_recv(c, m, left > 0 ? left : 0);

		if (rc)
			return rc;
		if (wt_ctl_frame_is(m, 0, verb))
			return 0;
		wt_ctl_msg_free(m);
	}
}

int wt_ctl_hello(struct wt_ctl *c, const char *pool, const char *transport,
		 struct wt_ctl_msg *welcome, int timeout_ms)
{
	char version[8], pid[16];
	int64_t end = wt_now_ms() + timeout_ms;

	snprintf(version, sizeof(version), "%d", WSGW_PROTOCOL_VERSION);
	snprintf(pid, sizeof(pid), "%d", (int)getpid());
	const char *f[] = { "HELLO", version, pool, transport, pid };
	int rc = wt_ctl_send(c, 5, f, NULL);

	if (rc)
		return rc;
	for (;;) {
		int left = (int)(end - wt_now_ms());

		rc = wt_ctl_recv(c, welcome, left > 0 ? left : 0);
		if (rc)
			return rc;
		if (wt_ctl_frame_is(welcome, 0, "WELCOME"))
			return 0;
		if (wt_ctl_frame_is(welcome, 0, "ERROR")) {
			fprintf(stderr, "wtctl: HELLO refused: %s\n", welcome->n > 1 ? welcome->f[1] : "?");
			wt_ctl_msg_free(welcome);
			return -EPROTO;
		}
		wt_ctl_msg_free(welcome);
	}
}

/* ---- a shm worker holding its own rings -------------------------------- */

int wt_shm_peer_attach(struct wt_shm_peer *p, const char *endpoint, const char *pool)
{
	struct wt_ctl_msg w;
	int rc;

	memset(p, 0, sizeof(*p));
	p->fds[0] = p->fds[1] = p->fds[2] = -1;
	rc = wt_ctl_connect(&p->ctl, endpoint);
	if (rc == 0)
		rc = wt_ctl_hello(&p->ctl, pool, "shm", &w, 5000);
	if (rc)
		return rc;
	if (w.n != 7) {
		wt_ctl_msg_free(&w);
		return -EPROTO;
	}
	p->id = (unsigned)strtoul(w.f[1], NULL, 10);
	/* The eventfd is kept, but wt_shm_peer_ring rings the doorbell's futex, as a worker
	 * built before the gateway passed it did (the waker thread keeps those working). */
	rc = shm_fdpass_fetch(w.f[3], w.f[6], 5000, p->fds, 2, 3);
	rc = rc < 0 ? rc : 0;
	if (rc == 0)
		rc = shm_seg_attach_fd(p->fds[0], &p->seg);
	if (rc == 0)
		rc = shm_bell_attach_fd(p->fds[1], &p->bell);
	if (rc == 0)
		rc = shm_seg_ring(p->seg, SHM_SEG_TO_WORKER, SHM_RING_CONSUMER, &p->to_w);
	if (rc == 0)
		rc = shm_seg_ring(p->seg, SHM_SEG_TO_GATEWAY, SHM_RING_PRODUCER, &p->to_gw);
	if (rc == 0)
		shm_ring_set_data_doorbell(&p->to_gw, shm_bell_doorbell(p->bell));
	wt_ctl_msg_free(&w);
	return rc;
}

void wt_shm_peer_ring(struct wt_shm_peer *p)
{
	struct shm_doorbell *db = shm_bell_doorbell(p->bell);

	/* Whether or not the gateway announced a sleep: a bump it cannot miss. */
	atomic_fetch_add(&db->seq, 1);
	shm_doorbell_ring(db);
}

void wt_shm_peer_wake(struct wt_shm_peer *p)
{
	uint64_t one = 1;
	if (p->fds[2] >= 0 && write(p->fds[2], &one, sizeof(one)) < 0)
		perror("wt_shm_peer_wake");
}

void wt_shm_peer_close(struct wt_shm_peer *p)
{
	for (int i = 0; i < 3; i++)
		if (p->fds[i] >= 0)
			close(p->fds[i]);
	shm_seg_close(p->seg);
	shm_bell_close(p->bell);
	wt_ctl_close(&p->ctl);
	p->seg = NULL;
	p->bell = NULL;
}

/* ---- a zmq-transport echo worker ---------------------------------------- */

int wt_zw_start(struct wt_proc *p, const char *control, const char *pool, const char *log_path)
{
	char self[512];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);

	if (n < 0)
		return -errno;
	self[n] = 0;
	const char *argv[] = { self, "--as-zmq-worker", "--control", control, "--pool", pool, NULL };
	return wt_proc_spawn(p, argv, log_path);
}

static volatile sig_atomic_t zw_term;

static void zw_on_term(int sig)
{
	(void)sig;
	zw_term = 1;
}

static uint64_t zw_id(const struct wt_ctl_msg *m)
{
	uint64_t be = 0;

	if (m->n > 1 && m->len[1] == 8)
		memcpy(&be, m->f[1], 8);
	return be64toh(be);
}

/* The verbs a worker counts for ACK (docs/PROTOCOL.md, "Acknowledgements"). */
static int zw_counted(const struct wt_ctl_msg *m)
{
	return wt_ctl_frame_is(m, 0, "OPEN") || wt_ctl_frame_is(m, 0, "MESSAGE") ||
	       wt_ctl_frame_is(m, 0, "CLOSE") || wt_ctl_frame_is(m, 0, "GONE");
}

static void zw_ack(struct wt_ctl *ctl, uint64_t n)
{
	char num[24];
	const char *f[] = { "ACK", num };

	snprintf(num, sizeof(num), "%llu", (unsigned long long)n);
	wt_ctl_send(ctl, 2, f, NULL);
}

int wt_zw_main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "as-zmq-worker", no_argument, NULL, 'a' },
		{ "control", required_argument, NULL, 'c' },
		{ "pool", required_argument, NULL, 'p' },
		{ "publish", required_argument, NULL, 't' },
		{ "publish-max", required_argument, NULL, 'n' },
		{ NULL, 0, NULL, 0 },
	};
	const char *control = NULL, *pool = NULL, *topic = NULL;
	uint64_t max = 10000000;
	struct wt_ctl ctl;
	struct wt_ctl_msg m;
	int c, hb = 1000;
	int64_t last_sent;
	/* Counted messages since WELCOME, all handled once the loop comes back; and acked. */
	uint64_t handled = 0, acked = 0;

	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (c == 'c')
			control = optarg;
		else if (c == 'p')
			pool = optarg;
		else if (c == 't')
			topic = optarg;
		else if (c == 'n')
			max = strtoull(optarg, NULL, 10);
		else if (c != 'a')
			return 2;
	}
	if (!control || !pool)
		return 2;
	uint64_t published = 0;
	struct sigaction sa = { .sa_handler = zw_on_term };
	sigaction(SIGTERM, &sa, NULL);
	if (wt_ctl_connect(&ctl, control) || wt_ctl_hello(&ctl, pool, "zmq", &m, 5000)) {
		fprintf(stderr, "zmq worker: attach failed\n");
		return 1;
	}
	if (m.n > 2)
		hb = atoi(m.f[2]);
	fprintf(stderr, "attached id %s pid %d\n", m.f[1], (int)getpid());
	wt_ctl_msg_free(&m);
	last_sent = wt_now_ms();
	while (!zw_term) {
		/* A publisher: sequence numbers to the topic as fast as ZeroMQ takes them. */
		for (int k = 0; topic && k < 100 && published < max; k++) {
			char seq[24];
			int len = snprintf(seq, sizeof(seq), "%llu", (unsigned long long)published);
			const char *f[] = { "PUBLISH", topic, "text", seq };
			size_t l[] = { 7, strlen(topic), 4, (size_t)len };
			if (zmq_send(ctl.sock, f[0], l[0], ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0)
				break;
			for (int i = 1; i < 4; i++)
				zmq_send(ctl.sock, f[i], l[i], i < 3 ? ZMQ_SNDMORE : 0);
			published++;
		}
		/* What is handled is acknowledged in batches of 32, and before waiting. */
		if (handled - acked >= 32) {
			zw_ack(&ctl, acked = handled);
			last_sent = wt_now_ms();
		}
		int rc = wt_ctl_recv(&ctl, &m, 0);

		if (rc == -ETIMEDOUT) {
			if (handled > acked) {
				zw_ack(&ctl, acked = handled);
				last_sent = wt_now_ms();
			}
			rc = wt_ctl_recv(&ctl, &m, topic && published < max ? 0 : 50);
		}
		if (wt_now_ms() - last_sent >= hb / 2) {
			const char *f[] = { "HEARTBEAT" };

			wt_ctl_send(&ctl, 1, f, NULL);
			last_sent = wt_now_ms();
		}
		if (rc)
			continue;
		handled += (uint64_t)zw_counted(&m);
		if (wt_ctl_frame_is(&m, 0, "MESSAGE") && m.n == 4) {
			const char *f[] = { "SEND", m.f[1], m.f[2], m.f[3] };
			size_t l[] = { 4, m.len[1], m.len[2], m.len[3] };

			wt_ctl_send(&ctl, 4, f, l);
			last_sent = wt_now_ms();
		} else if (wt_ctl_frame_is(&m, 0, "OPEN")) {
			fprintf(stderr, "open %llu %s\n", (unsigned long long)zw_id(&m), m.n > 2 ? m.f[2] : "");
		} else if (wt_ctl_frame_is(&m, 0, "CLOSE")) {
			fprintf(stderr, "close %llu %s\n", (unsigned long long)zw_id(&m), m.n > 2 ? m.f[2] : "");
		} else if (wt_ctl_frame_is(&m, 0, "ERROR")) {
			fprintf(stderr, "error %s\n", m.n > 1 ? m.f[1] : "");
		}
		wt_ctl_msg_free(&m);
	}
	/* What pyzmq's worker does on SIGTERM: acknowledge what it handled (or it would be
	 * handed to another worker again), say BYE, leave at once. */
	if (handled > acked)
		zw_ack(&ctl, handled);
	const char *bye[] = { "BYE" };
	wt_ctl_send(&ctl, 1, bye, NULL);
	int linger = 1000;
	zmq_setsockopt(ctl.sock, ZMQ_LINGER, &linger, sizeof(linger));
	wt_ctl_close(&ctl);
	return 0;
}
