/* wsgw-chat: the chat reference worker. Rooms are topics ("room:" + the room's name): a
 * join subscribes the connection, a message is published to the room, and member counts
 * come from the gateway (QUERY), so the worker keeps no member lists and any number of
 * chat workers can serve one pool. workers/chat/chatmsg.h has what clients send; the
 * worker answers with JSON text messages:
 *   {"type":"joined","room":R,"name":N,"time":MS}        to the room, the joiner included
 *   {"type":"left","room":R,"name":N,"time":MS}          to the room
 *   {"type":"message","room":R,"name":N,"text":T,"time":MS}  to the room but the sender,
 *                                                        who gets it with "self":true
 *   {"type":"count","room":R,"members":N}                to the room after a join or leave,
 *                                                        to the asker after a count
 *   {"type":"resync"}   the connection moved from a chat worker that died: join again
 *                       with "again":true (no notice to the room), this worker does not
 *                       know its names
 *   {"type":"error","error":E}
 * MS is the server's clock in milliseconds since 1970.
 *
 * usage: wsgw-chat [--control ENDPOINT] --pool NAME */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "workers/chat/chatmsg.h"
#include "wsgw/worker.h"

#define ROOMS_PER_CONN 8
#define TOPIC_PREFIX "room:"
#define TOPIC_PREFIX_LEN 5
/* A QUERY id with this bit set asks for a count to publish to the room; without it, the
 * id is the connection that asked (connection ids never get near 2^63). */
#define Q_ROOM (1ull << 63)
#define OUT_MAX (6 * CHAT_TEXT_MAX + 4 * CHAT_ROOM_MAX + 4 * CHAT_NAME_MAX + 256)

struct membership {
	char room[CHAT_ROOM_MAX + 1];
	char name[CHAT_NAME_MAX + 1];
	uint8_t room_len, name_len;
};

/* What the worker remembers of a connection: the rooms it joined and its name in each. */
struct member {
	uint64_t conn;
	struct member *next;
	int n;
	struct membership in[ROOMS_PER_CONN];
};

#define BUCKETS 4096
static struct member *table[BUCKETS];
static struct wsgw_worker *w;
static volatile sig_atomic_t stop;
static unsigned long failures;

static void on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

static struct member **slot(uint64_t conn)
{
	struct member **m = &table[(conn * 0x9e3779b97f4a7c15ull) >> 52];
	while (*m && (*m)->conn != conn)
		m = &(*m)->next;
	return m;
}

static struct member *member_get(uint64_t conn)
{
	struct member **m = slot(conn);
	if (!*m) {
		*m = calloc(1, sizeof(**m));
		if (!*m) {
			fprintf(stderr, "wsgw-chat: out of memory\n");
			exit(1);
		}
		(*m)->conn = conn;
	}
	return *m;
}

static void member_drop(uint64_t conn)
{
	struct member **m = slot(conn), *x = *m;
	if (x) {
		*m = x->next;
		free(x);
	}
}

static int find_room(const struct member *m, const char *room, size_t len)
{
	for (int i = 0; m && i < m->n; i++)
		if (m->in[i].room_len == len && !memcmp(m->in[i].room, room, len))
			return i;
	return -1;
}

static void check(int rc, const char *what)
{
	if (!rc)
		return;
	/* The 1st, 2nd, 4th, 8th... failure: a stalled gateway would fill the log. */
	failures++;
	if ((failures & (failures - 1)) == 0)
		fprintf(stderr, "wsgw-chat: %s failed: %s (%lu so far)\n", what, strerror(-rc), failures);
}

static size_t topic_of(char *t, const char *room, size_t len)
{
	memcpy(t, TOPIC_PREFIX, TOPIC_PREFIX_LEN);
	memcpy(t + TOPIC_PREFIX_LEN, room, len);
	return TOPIC_PREFIX_LEN + len;
}

static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void send_error(uint64_t conn, const char *why)
{
	char buf[256];
	struct chat_out o;
	chat_out_init(&o, buf, sizeof(buf));
	chat_out_raw(&o, "{\"type\":\"error\",\"error\":", 24);
	chat_out_str(&o, why, strlen(why));
	chat_out_raw(&o, "}", 1);
	if (o.ok)
		check(wsgw_send(w, conn, 0, o.p, o.len), "send");
}

/* {"type":T,"room":R,"name":N[,"text":X],"time":MS[,"self":true] */
static void notice(struct chat_out *o, const char *type, const struct membership *ms,
		   const char *text, size_t text_len)
{
	chat_out_raw(o, "{\"type\":", 8);
	chat_out_str(o, type, strlen(type));
	chat_out_raw(o, ",\"room\":", 8);
	chat_out_str(o, ms->room, ms->room_len);
	chat_out_raw(o, ",\"name\":", 8);
	chat_out_str(o, ms->name, ms->name_len);
	if (text) {
		chat_out_raw(o, ",\"text\":", 8);
		chat_out_str(o, text, text_len);
	}
	chat_out_raw(o, ",\"time\":", 8);
	chat_out_u64(o, now_ms());
}

static void publish_notice(const char *type, const struct membership *ms)
{
	char buf[OUT_MAX], t[TOPIC_PREFIX_LEN + CHAT_ROOM_MAX];
	struct chat_out o;
	chat_out_init(&o, buf, sizeof(buf));
	notice(&o, type, ms, NULL, 0);
	chat_out_raw(&o, "}", 1);
	size_t tl = topic_of(t, ms->room, ms->room_len);
	if (o.ok)
		check(wsgw_publish(w, t, tl, 0, o.p, o.len, 0), "publish");
	/* The count after it: the gateway runs our commands in order, so it sees the change. */
	check(wsgw_query(w, t, tl, Q_ROOM), "query");
}

static void on_join(uint64_t conn, const struct chat_req *q)
{
	struct member *m = member_get(conn);
	int i = find_room(m, q->room, q->room_len);
	if (i < 0) {
		if (m->n == ROOMS_PER_CONN) {
			send_error(conn, "too many rooms");
			return;
		}
		i = m->n++;
	} else if (!q->again && m->in[i].name_len == q->name_len &&
		   !memcmp(m->in[i].name, q->name, q->name_len)) {
		return; /* joined already, under that name */
	}
	struct membership *ms = &m->in[i];
	memcpy(ms->room, q->room, q->room_len + 1);
	ms->room_len = (uint8_t)q->room_len;
	memcpy(ms->name, q->name, q->name_len + 1);
	ms->name_len = (uint8_t)q->name_len;
	char t[TOPIC_PREFIX_LEN + CHAT_ROOM_MAX];
	size_t tl = topic_of(t, q->room, q->room_len);
	check(wsgw_subscribe(w, conn, t, tl), "subscribe");
	if (!q->again)
		publish_notice("joined", ms);
}

static void on_leave(uint64_t conn, const struct chat_req *q)
{
	struct member *m = *slot(conn);
	int i = find_room(m, q->room, q->room_len);
	if (i < 0) {
		send_error(conn, "not in that room");
		return;
	}
	struct membership ms = m->in[i];
	m->in[i] = m->in[--m->n];
	char t[TOPIC_PREFIX_LEN + CHAT_ROOM_MAX];
	check(wsgw_unsubscribe(w, conn, t, topic_of(t, ms.room, ms.room_len)), "unsubscribe");
	publish_notice("left", &ms);
}

static void on_say(uint64_t conn, const struct chat_req *q)
{
	struct member *m = *slot(conn);
	int i = find_room(m, q->room, q->room_len);
	if (i < 0) {
		send_error(conn, "join the room first");
		return;
	}
	static char buf[OUT_MAX];
	char t[TOPIC_PREFIX_LEN + CHAT_ROOM_MAX];
	struct chat_out o;
	chat_out_init(&o, buf, sizeof(buf));
	notice(&o, "message", &m->in[i], q->text, q->text_len);
	size_t body = o.len;
	chat_out_raw(&o, "}", 1);
	if (!o.ok)
		return; /* cannot happen: OUT_MAX holds the longest one */
	check(wsgw_publish(w, t, topic_of(t, q->room, q->room_len), 0, o.p, o.len, conn), "publish");
	/* The sender's copy says so; the others never see this flag. */
	o.len = body;
	chat_out_raw(&o, ",\"self\":true}", 13);
	if (o.ok)
		check(wsgw_send(w, conn, 0, o.p, o.len), "send");
}

static void on_message(const struct wsgw_event *e)
{
	struct chat_req q;
	const char *why;
	if (e->binary) {
		send_error(e->conn, "messages are JSON text");
		return;
	}
	if (chat_parse(e->data, e->len, &q, &why)) {
		send_error(e->conn, why);
		return;
	}
	switch (q.type) {
	case CHAT_JOIN:
		on_join(e->conn, &q);
		break;
	case CHAT_LEAVE:
		on_leave(e->conn, &q);
		break;
	case CHAT_SAY:
		on_say(e->conn, &q);
		break;
	case CHAT_COUNT: {
		char t[TOPIC_PREFIX_LEN + CHAT_ROOM_MAX];
		check(wsgw_query(w, t, topic_of(t, q.room, q.room_len), e->conn), "query");
		break;
	}
	}
}

static void on_topic(const struct wsgw_event *e)
{
	const void *tp;
	size_t tl;
	uint32_t subs;
	if (wsgw_topic_info(e, &tp, &tl, &subs) || tl < TOPIC_PREFIX_LEN ||
	    memcmp(tp, TOPIC_PREFIX, TOPIC_PREFIX_LEN))
		return;
	const char *room = (const char *)tp + TOPIC_PREFIX_LEN;
	size_t rl = tl - TOPIC_PREFIX_LEN;
	char buf[256];
	struct chat_out o;
	chat_out_init(&o, buf, sizeof(buf));
	chat_out_raw(&o, "{\"type\":\"count\",\"room\":", 23);
	chat_out_str(&o, room, rl);
	chat_out_raw(&o, ",\"members\":", 11);
	chat_out_u64(&o, subs);
	chat_out_raw(&o, "}", 1);
	if (!o.ok)
		return;
	if (e->conn & Q_ROOM)
		check(wsgw_publish(w, tp, tl, 0, o.p, o.len, 0), "publish");
	else
		check(wsgw_send(w, e->conn, 0, o.p, o.len), "send");
}

/* The connection is gone: the gateway ended its subscriptions; the rooms hear of it. */
static void on_close(uint64_t conn)
{
	struct member *m = *slot(conn);
	for (int i = 0; m && i < m->n; i++)
		publish_notice("left", &m->in[i]);
	member_drop(conn);
}

static void forget_all(void)
{
	for (int b = 0; b < BUCKETS; b++) {
		while (table[b]) {
			struct member *x = table[b];
			table[b] = x->next;
			free(x);
		}
	}
}

int main(int argc, char **argv)
{
	struct wsgw_options o = { .pool = NULL, .attach_timeout_ms = -1 };
	static const struct option opts[] = {
		{ "control", required_argument, NULL, 'c' },
		{ "pool", required_argument, NULL, 'p' },
		{ NULL, 0, NULL, 0 },
	};
	int c;
	while ((c = getopt_long(argc, argv, "c:p:", opts, NULL)) != -1) {
		if (c == 'c')
			o.control = optarg;
		else if (c == 'p')
			o.pool = optarg;
		else
			return 2;
	}
	if (!o.pool || optind < argc) {
		fprintf(stderr, "usage: wsgw-chat [--control ENDPOINT] --pool NAME\n");
		return 2;
	}
	/* No SA_RESTART: a signal interrupts wsgw_wait, and the loop sees `stop`. */
	struct sigaction sa = { .sa_handler = on_signal };
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);

	if (wsgw_attach(&o, &w) != 0)
		return 1;
	fprintf(stderr, "wsgw-chat: worker %u serving pool %s\n", wsgw_worker_id(w), o.pool);
	struct wsgw_event ev[256];
	while (!stop) {
		int n = wsgw_wait(w, ev, 256, 1000);
		for (int i = 0; i < n; i++) {
			const struct wsgw_event *e = &ev[i];
			switch (e->type) {
			case WSGW_EV_OPEN:
				if (e->authorize)
					check(wsgw_accept(w, e->conn, NULL, NULL), "accept");
				if (e->resumed)
					check(wsgw_send(w, e->conn, 0, "{\"type\":\"resync\"}", 17), "send");
				break;
			case WSGW_EV_MESSAGE:
				on_message(e);
				break;
			case WSGW_EV_TOPIC:
				on_topic(e);
				break;
			case WSGW_EV_CLOSE:
				on_close(e->conn);
				break;
			case WSGW_EV_GONE:
				member_drop(e->conn);
				break;
			case WSGW_EV_RESET:
				forget_all();
				break;
			case WSGW_EV_ERROR:
				fprintf(stderr, "wsgw-chat: the gateway refused a command: %.*s\n",
					(int)e->len, (const char *)e->data);
				break;
			}
		}
	}
	wsgw_detach(w);
	forget_all();
	return 0;
}
