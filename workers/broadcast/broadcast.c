/* wsgw-broadcast: the broadcast reference worker. Every connection subscribes to the topic
 * "broadcast" when it opens, and every message any client sends is published to that
 * topic, its sender included: the work of uWebSockets' BroadcastingEchoServer example as it
 * was until 2021, and the worker of `wsgw-bench --mode fanout`.
 *
 * --sendmany and --sends do the same fan-out without topics, for comparison: the worker
 * keeps the list of its connections and sends each message to all of them, in one
 * SENDMANY command or in one SEND per connection. They reach only the connections of this
 * worker, so run one worker in the pool for a fair comparison.
 *
 * usage: wsgw-broadcast [--control ENDPOINT] --pool NAME [--topic T] [--sendmany | --sends] */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wsgw/worker.h"

enum mode { PUBLISH, SENDMANY, SENDS };

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

/* The connections of this worker (the send modes): an array to send from, and an
 * open-addressing index from id to position so that a close costs O(1). */
struct conn_set {
	uint64_t *ids;
	size_t n, cap;
	uint64_t *keys; /* 0: empty (connection ids start at 1) */
	uint32_t *pos;
	size_t slots;   /* a power of two, at least twice cap */
};

static size_t slot_of(const struct conn_set *s, uint64_t id)
{
	size_t i = (size_t)(id * 0x9e3779b97f4a7c15ull) & (s->slots - 1);
	while (s->keys[i] && s->keys[i] != id)
		i = (i + 1) & (s->slots - 1);
	return i;
}

static void *xrealloc(void *p, size_t n)
{
	p = realloc(p, n);
	if (!p) {
		fprintf(stderr, "wsgw-broadcast: out of memory\n");
		exit(1);
	}
	return p;
}

static void set_rehash(struct conn_set *s, size_t slots)
{
	free(s->keys);
	free(s->pos);
	s->slots = slots;
	s->keys = xrealloc(NULL, slots * sizeof(*s->keys));
	memset(s->keys, 0, slots * sizeof(*s->keys));
	s->pos = xrealloc(NULL, slots * sizeof(*s->pos));
	for (size_t k = 0; k < s->n; k++) {
		size_t i = slot_of(s, s->ids[k]);
		s->keys[i] = s->ids[k];
		s->pos[i] = (uint32_t)k;
	}
}

static void set_add(struct conn_set *s, uint64_t id)
{
	if (!id || (s->slots && s->keys[slot_of(s, id)] == id))
		return; /* a resumed OPEN of a connection we hold already */
	if (s->n == s->cap) {
		s->cap = s->cap ? 2 * s->cap : 1024;
		s->ids = xrealloc(s->ids, s->cap * sizeof(*s->ids));
		set_rehash(s, 2 * s->cap);
	}
	size_t i = slot_of(s, id);
	s->keys[i] = id;
	s->pos[i] = (uint32_t)s->n;
	s->ids[s->n++] = id;
}

/* Backward-shift deletion keeps every probe chain unbroken without tombstones. */
static void set_del(struct conn_set *s, uint64_t id)
{
	if (!s->slots)
		return;
	size_t i = slot_of(s, id);
	if (s->keys[i] != id)
		return;
	uint32_t k = s->pos[i];
	uint64_t last = s->ids[--s->n];
	if (k != s->n) {
		s->ids[k] = last;
		s->pos[slot_of(s, last)] = k;
	}
	s->keys[i] = 0;
	for (size_t j = (i + 1) & (s->slots - 1); s->keys[j]; j = (j + 1) & (s->slots - 1)) {
		size_t home = (size_t)(s->keys[j] * 0x9e3779b97f4a7c15ull) & (s->slots - 1);
		/* Move j back to the hole when the hole lies on j's probe path from home. */
		if (((j - home) & (s->slots - 1)) >= ((j - i) & (s->slots - 1))) {
			s->keys[i] = s->keys[j];
			s->pos[i] = s->pos[j];
			s->keys[j] = 0;
			i = j;
		}
	}
}

static void set_clear(struct conn_set *s)
{
	s->n = 0;
	if (s->slots)
		memset(s->keys, 0, s->slots * sizeof(*s->keys));
}

static void usage(void)
{
	fprintf(stderr, "usage: wsgw-broadcast [--control ENDPOINT] --pool NAME [--topic T] "
			"[--sendmany | --sends]\n");
}

int main(int argc, char **argv)
{
	struct wsgw_options o = { .pool = NULL, .attach_timeout_ms = -1 };
	const char *topic = "broadcast";
	enum mode mode = PUBLISH;
	static const struct option opts[] = {
		{ "control", required_argument, NULL, 'c' },
		{ "pool", required_argument, NULL, 'p' },
		{ "topic", required_argument, NULL, 't' },
		{ "sendmany", no_argument, NULL, 'm' },
		{ "sends", no_argument, NULL, 's' },
		{ NULL, 0, NULL, 0 },
	};
	int c;
	while ((c = getopt_long(argc, argv, "c:p:t:", opts, NULL)) != -1) {
		switch (c) {
		case 'c': o.control = optarg; break;
		case 'p': o.pool = optarg; break;
		case 't': topic = optarg; break;
		case 'm': mode = SENDMANY; break;
		case 's': mode = SENDS; break;
		default: usage(); return 2;
		}
	}
	size_t tl = strlen(topic);
	if (!o.pool || optind < argc || tl < 1 || tl > WSGW_TOPIC_MAX) {
		usage();
		return 2;
	}
	/* No SA_RESTART: a signal interrupts wsgw_wait, and the loop sees `stop`. */
	struct sigaction sa = { .sa_handler = on_signal };
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);

	struct wsgw_worker *w;
	if (wsgw_attach(&o, &w) != 0)
		return 1;
	static const char *const names[] = { "publish", "sendmany", "sends" };
	fprintf(stderr, "wsgw-broadcast: worker %u serving pool %s (%s to '%s')\n",
		wsgw_worker_id(w), o.pool, names[mode], topic);
	struct conn_set set = { 0 };
	unsigned long failures = 0;
	struct wsgw_event ev[256];
	while (!stop) {
		int n = wsgw_wait(w, ev, 256, 1000);
		for (int i = 0; i < n; i++) {
			const struct wsgw_event *e = &ev[i];
			int rc = 0;
			switch (e->type) {
			case WSGW_EV_OPEN:
				if (e->authorize)
					rc = wsgw_accept(w, e->conn, NULL, NULL);
				/* A resumed connection keeps its subscriptions in the gateway; a
				 * second SUBSCRIBE is harmless and covers a gateway that lost them. */
				if (!rc && mode == PUBLISH)
					rc = wsgw_subscribe(w, e->conn, topic, tl);
				else if (mode != PUBLISH)
					set_add(&set, e->conn);
				break;
			case WSGW_EV_MESSAGE:
				if (mode == PUBLISH) {
					rc = wsgw_publish(w, topic, tl, e->binary, e->data, e->len, 0);
				} else if (mode == SENDMANY) {
					rc = wsgw_send_many(w, set.ids, set.n, e->binary, e->data, e->len);
				} else {
					for (size_t k = 0; k < set.n && !rc; k++)
						rc = wsgw_send(w, set.ids[k], e->binary, e->data, e->len);
				}
				break;
			case WSGW_EV_CLOSE:
			case WSGW_EV_GONE:
				set_del(&set, e->conn);
				break;
			case WSGW_EV_RESET:
				set_clear(&set);
				break;
			case WSGW_EV_ERROR:
				fprintf(stderr, "wsgw-broadcast: the gateway refused a command: %.*s\n",
					(int)e->len, (const char *)e->data);
				break;
			}
			/* Logged at the 1st, 2nd, 4th, 8th... failure: a gateway that stalls
			 * would otherwise fill the log. */
			if (rc)
				failures++;
			if (rc && (failures & (failures - 1)) == 0)
				fprintf(stderr, "wsgw-broadcast: command for %llu failed: %s (%lu so far)\n",
					(unsigned long long)e->conn, strerror(-rc), failures);
		}
	}
	wsgw_detach(w);
	free(set.ids);
	free(set.keys);
	free(set.pos);
	return 0;
}
