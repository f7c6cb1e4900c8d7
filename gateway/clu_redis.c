/*
 * hiredis on the gateway's loop. Each Redis connection is a struct loop_src; hiredis's
 * adapter hooks (addRead, delRead, addWrite, delWrite, cleanup) set its fd's events, and
 * the loop calls hiredis back when the fd is ready. Also the writer of Redis's protocol
 * for the commands we format ourselves (a message's parts go straight into the command,
 * copied once).
 */
#include "gateway/cluster_int.h"

#include <errno.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>

size_t clu__hash(const void *name, size_t n)
{
	const uint8_t *p = name;
	uint64_t h = 0xcbf29ce484222325ull;
	for (size_t i = 0; i < n; i++)
		h = (h ^ p[i]) * 0x100000001b3ull;
	return (size_t)(h ^ h >> 31);
}

/* ---- Redis's protocol ---- */

static size_t num_len(size_t v)
{
	size_t n = 1;
	while (v >= 10)
		v /= 10, n++;
	return n;
}

size_t clu__resp_arg_size(size_t n)
{
	return 1 + num_len(n) + 2 + n + 2;
}

char *clu__resp_begin(char *o, int argc)
{
	return o + sprintf(o, "*%d\r\n", argc);
}

char *clu__resp_parts(char *o, int parts, const void *const *p, const size_t *n, uint8_t **at)
{
	size_t len = 0;
	for (int i = 0; i < parts; i++)
		len += n[i];
	o += sprintf(o, "$%zu\r\n", len);
	for (int i = 0; i < parts; i++) {
		if (at && i == parts - 1)
			*at = (uint8_t *)o;
		if (n[i])
			memcpy(o, p[i], n[i]);
		o += n[i];
	}
	memcpy(o, "\r\n", 2);
	return o + 2;
}

char *clu__resp_arg(char *o, const void *p, size_t n)
{
	return clu__resp_parts(o, 1, &p, &n, NULL);
}

char *clu__resp_str(char *o, const char *s)
{
	return clu__resp_arg(o, s, strlen(s));
}

void clu__sha1_hex(const char *s, char out[41])
{
	unsigned char md[20];
	unsigned int n = 0;
	EVP_Digest(s, strlen(s), md, &n, EVP_sha1(), NULL);
	for (int i = 0; i < 20; i++)
		sprintf(out + 2 * i, "%02x", md[i]);
}

/* ---- the event adapter ---- */

static void ev_update(struct rconn *r)
{
	struct loop *l = r->k->loop;
	if (!r->in_loop) {
		if (loop_add(l, r->fd, r->events, &r->src) == 0)
			r->in_loop = 1;
	} else {
		loop_mod(l, r->fd, r->events, &r->src);
	}
}

static void ev_set(struct rconn *r, uint32_t ev, int on)
{
	uint32_t want = on ? r->events | ev : r->events & ~ev;
	if (want == r->events && r->in_loop)
		return;
	r->events = want;
	ev_update(r);
}

static void ev_add_read(void *p)
{
	ev_set(p, EPOLLIN, 1);
}

static void ev_del_read(void *p)
{
	ev_set(p, EPOLLIN, 0);
}

static void ev_add_write(void *p)
{
	ev_set(p, EPOLLOUT, 1);
}

static void ev_del_write(void *p)
{
	ev_set(p, EPOLLOUT, 0);
}

/* hiredis is freeing the context: the fd is about to be closed. */
static void ev_cleanup(void *p)
{
	struct rconn *r = p;
	if (r->in_loop)
		loop_del(r->k->loop, r->fd);
	r->in_loop = 0;
	r->events = 0;
	r->ac = NULL;
}

/* Level-triggered: hiredis reads at most 16 KiB per call, and the rest brings it back.
 * Each read of the command connection is a generation of replies (k->recent). */
static void ev_event(struct loop_src *src, uint32_t events)
{
	struct rconn *r = (struct rconn *)src;
	if (r == &r->k->cmd)
		r->k->read_gen++;
	if (r->ac && (events & (EPOLLIN | EPOLLERR | EPOLLHUP)))
		redisAsyncHandleRead(r->ac);
	if (r->ac && (events & (EPOLLOUT | EPOLLERR | EPOLLHUP)))
		redisAsyncHandleWrite(r->ac);
}

void clu__redis_broken(struct clu *k, const char *fmt, const char *detail)
{
	if (k->broken)
		return;
	k->broken = 1;
	snprintf(k->why, sizeof(k->why), fmt, detail ? detail : "");
}

static void on_connect(const redisAsyncContext *ac, int status)
{
	struct rconn *r = ac->ev.data;
	if (status != REDIS_OK) {
		clu__redis_broken(r->k, "connect: %s", ac->errstr);
		return;
	}
	redisEnableKeepAlive((redisContext *)&ac->c);
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
	struct rconn *r = ac->ev.data;
	(void)status;
	r->ac = NULL;
	clu__redis_broken(r->k, "%s", ac->errstr[0] ? ac->errstr : "connection closed");
}

int clu__redis_open(struct clu *k, struct rconn *r, const char *name)
{
	memset(r, 0, sizeof(*r));
	r->k = k;
	r->name = name;
	r->src.fn = ev_event;
	redisAsyncContext *ac = redisAsyncConnect(k->cc->host, (int)k->cc->port);
	if (!ac)
		return -ENOMEM;
	if (ac->err) {
		clu__redis_broken(k, "connect: %s", ac->errstr);
		redisAsyncFree(ac);
		return -EIO;
	}
	r->ac = ac;
	r->fd = ac->c.fd;
	ac->ev.data = r;
	ac->ev.addRead = ev_add_read;
	ac->ev.delRead = ev_del_read;
	ac->ev.addWrite = ev_add_write;
	ac->ev.delWrite = ev_del_write;
	ac->ev.cleanup = ev_cleanup;
	redisAsyncSetDisconnectCallback(ac, on_disconnect);
	/* Asks for the first write event: the connect's completion. */
	redisAsyncSetConnectCallback(ac, on_connect);
	return 0;
}

int clu__redis_send(struct rconn *r, redisCallbackFn *fn, void *priv, const char *cmd, size_t len)
{
	if (!r->ac || redisAsyncFormattedCommand(r->ac, fn, priv, cmd, len) != REDIS_OK)
		return -EIO;
	return 0;
}

int clu__redis_argv(struct rconn *r, redisCallbackFn *fn, void *priv, int argc, const char **argv,
		    const size_t *lens)
{
	if (!r->ac || redisAsyncCommandArgv(r->ac, fn, priv, argc, argv, lens) != REDIS_OK)
		return -EIO;
	return 0;
}

void clu__redis_flush(struct rconn *r)
{
	if (r->ac && (r->events & EPOLLOUT) && (r->ac->c.flags & REDIS_CONNECTED))
		redisAsyncHandleWrite(r->ac);
}
