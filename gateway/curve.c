#include "gateway/curve.h"
#include "gateway/log.h"
#include "gateway/zmsg.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <zmq.h>

struct curve {
	struct loop_src src;    /* the ZAP socket's fd */
	void *zap;              /* REP on inproc://zeromq.zap.01 */
	uint8_t (*keys)[32];    /* allowed client public keys; none: any key */
	size_t n_keys;
};

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

static int load_keys(struct curve *cv, const char *path)
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
		uint8_t (*v)[32] = realloc(cv->keys, (cv->n_keys + 1) * sizeof(*v));
		if (!v) {
			rc = -ENOMEM;
			break;
		}
		cv->keys = v;
		if (strlen(p) != 40 || !zmq_z85_decode(cv->keys[cv->n_keys], p)) {
			log_error(0, "%s: '%s' is not a Z85 public key", path, p);
			rc = -EINVAL;
			break;
		}
		cv->n_keys++;
	}
	fclose(f);
	return rc;
}

static int allowed(const struct curve *cv, const zmq_msg_t *f, int n)
{
	if (n != 7 || !zmsg_frame_is(&f[5], "CURVE") || zmq_msg_size((zmq_msg_t *)&f[6]) != 32)
		return 0;
	if (!cv->n_keys)
		return 1;
	for (size_t i = 0; i < cv->n_keys; i++)
		if (memcmp(cv->keys[i], zmq_msg_data((zmq_msg_t *)&f[6]), 32) == 0)
			return 1;
	return 0;
}

/* ZAP requests (RFC 27): version, request id, domain, address, identity, mechanism, key. */
static void on_zap(struct loop_src *src, uint32_t events)
{
	struct curve *cv = (struct curve *)src;
	(void)events;
	for (;;) {
		int ev = 0;
		size_t len = sizeof(ev);
		if (zmq_getsockopt(cv->zap, ZMQ_EVENTS, &ev, &len) < 0 || !(ev & ZMQ_POLLIN))
			return;
		zmq_msg_t f[8];
		int n = 0, more = 1;
		while (more) {
			zmq_msg_t m;
			zmq_msg_init(&m);
			if (zmq_msg_recv(&m, cv->zap, ZMQ_DONTWAIT) < 0) {
				zmq_msg_close(&m);
				break;
			}
			more = zmq_msg_more(&m);
			if (n < 8)
				f[n++] = m;
			else
				zmq_msg_close(&m);
		}
		if (n >= 2) {
			int ok = allowed(cv, f, n);
			if (!ok) {
				char z85[41] = "?";
				if (n == 7 && zmq_msg_size(&f[6]) == 32)
					zmq_z85_encode(z85, zmq_msg_data(&f[6]), 32);
				log_warn(0, "control: refused a worker with CURVE key %s (not in --curve-clients)", z85);
			}
			zmq_send(cv->zap, "1.0", 3, ZMQ_SNDMORE);
			zmq_send(cv->zap, zmq_msg_data(&f[1]), zmq_msg_size(&f[1]), ZMQ_SNDMORE);
			zmq_send(cv->zap, ok ? "200" : "400", 3, ZMQ_SNDMORE);
			zmq_send(cv->zap, ok ? "OK" : "key not allowed", ok ? 2 : 15, ZMQ_SNDMORE);
			zmq_send(cv->zap, "", 0, ZMQ_SNDMORE);
			zmq_send(cv->zap, "", 0, 0);
		}
		for (int i = 0; i < n; i++)
			zmq_msg_close(&f[i]);
	}
}

int curve_new(struct loop *l, const struct gw_config *cfg, void *ctx, void *sock,
	      struct curve **out)
{
	char secret[41], public[41];
	struct curve *cv = calloc(1, sizeof(*cv));
	if (!cv)
		return -ENOMEM;
	int rc = read_key(cfg->curve_secret, secret);
	if (rc) {
		log_error(-rc, "--curve-secret-key %s: want a file with a 40-character Z85 key",
			  cfg->curve_secret);
		goto fail;
	}
	if (zmq_curve_public(public, secret) < 0) {
		log_error(errno, "zmq_curve_public: the secret key is not valid");
		rc = -EINVAL;
		goto fail;
	}
	if (cfg->curve_clients[0] && (rc = load_keys(cv, cfg->curve_clients))) {
		log_error(-rc, "--curve-clients %s", cfg->curve_clients);
		goto fail;
	}
	cv->zap = zmq_socket(ctx, ZMQ_REP);
	if (!cv->zap || zmq_bind(cv->zap, "inproc://zeromq.zap.01") < 0) {
		log_error(errno, "ZAP handler");
		rc = -EIO;
		goto fail;
	}
	int one = 1, fd;
	zmq_setsockopt(sock, ZMQ_CURVE_SERVER, &one, sizeof(one));
	zmq_setsockopt(sock, ZMQ_CURVE_SECRETKEY, secret, 40);
	zmq_setsockopt(sock, ZMQ_ZAP_DOMAIN, "wsgw", 4);
	size_t len = sizeof(fd);
	zmq_getsockopt(cv->zap, ZMQ_FD, &fd, &len);
	cv->src.fn = on_zap;
	rc = loop_add(l, fd, EPOLLIN | EPOLLET, &cv->src);
	if (rc)
		goto fail;
	log_info("control channel uses CURVE; gateway public key %s; %zu client keys allowed%s",
		 public, cv->n_keys, cv->n_keys ? "" : " (any client key)");
	*out = cv;
	return 0;
fail:
	curve_free(cv);
	return rc;
}

void curve_free(struct curve *cv)
{
	if (!cv)
		return;
	if (cv->zap)
		zmq_close(cv->zap);
	free(cv->keys);
	free(cv);
}
