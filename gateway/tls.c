#include "gateway/tls.h"
#include "gateway/log.h"
#include "gateway/stats.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

/* Plaintext encrypted per step: four full records. A connection never has more than this
 * (plus the records' overhead) encrypted and not yet taken by its socket. */
#define TLS_BATCH (64u << 10)

struct tls_srv {
	SSL_CTX *ctx; /* connections take a reference: a reload never frees one in use */
};

struct tls_conn {
	SSL *ssl;
	struct outq wq; /* ciphertext waiting for the socket */
	uint8_t counted;  /* the handshake's outcome is in the stats */
	uint8_t notified; /* close_notify queued */
	uint8_t broken;   /* the ciphertext queue lost bytes: only closing is left */
	const char *why;
};

/* --- the write side: a BIO that appends to the connection's ciphertext queue --- */

static BIO_METHOD *wq_method;

static int wq_write(BIO *b, const char *p, int n)
{
	struct tls_conn *t = BIO_get_data(b);
	if (outq_write(&t->wq, p, (size_t)n)) {
		t->broken = 1;
		return -1;
	}
	return n;
}

static long wq_ctrl(BIO *b, int cmd, long num, void *ptr)
{
	(void)b, (void)num, (void)ptr;
	/* OpenSSL flushes after each flight; the loop writes the queue itself. */
	return cmd == BIO_CTRL_FLUSH ? 1 : 0;
}

static int wq_create(BIO *b)
{
	BIO_set_init(b, 1);
	return 1;
}

static int wq_init(void)
{
	if (wq_method)
		return 0;
	wq_method = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "wsgw ciphertext queue");
	if (!wq_method || !BIO_meth_set_write(wq_method, wq_write) ||
	    !BIO_meth_set_ctrl(wq_method, wq_ctrl) || !BIO_meth_set_create(wq_method, wq_create))
		return -ENOMEM;
	return 0;
}

/* --- the server context --- */

static void log_ssl(const char *what, const char *file)
{
	unsigned long e = ERR_get_error();
	char buf[256];
	ERR_error_string_n(e, buf, sizeof(buf));
	log_error(0, "TLS: %s %s: %s", what, file, e ? buf : "failed");
	ERR_clear_error();
}

/* Browsers offer h2 and http/1.1 for wss://; WebSocket over TLS is HTTP/1.1. A client
 * offering neither gets no ALPN answer rather than an alert, as most servers do. */
static int on_alpn(SSL *ssl, const unsigned char **out, unsigned char *outlen,
		   const unsigned char *in, unsigned inlen, void *arg)
{
	static const unsigned char ours[] = "\x08http/1.1";
	(void)ssl, (void)arg;
	unsigned char *sel;
	if (SSL_select_next_proto(&sel, outlen, ours, sizeof(ours) - 1, in, inlen) !=
	    OPENSSL_NPN_NEGOTIATED)
		return SSL_TLSEXT_ERR_NOACK;
	*out = sel;
	return SSL_TLSEXT_ERR_OK;
}

static int add_chain(SSL_CTX *ctx, const char *file)
{
	FILE *f = fopen(file, "re");
	if (!f) {
		log_error(errno, "TLS: --tls-chain %s", file);
		return -errno;
	}
	int n = 0;
	X509 *x;
	while ((x = PEM_read_X509(f, NULL, NULL, NULL))) {
		if (!SSL_CTX_add0_chain_cert(ctx, x)) {
			X509_free(x);
			fclose(f);
			log_ssl("adding the chain of", file);
			return -EINVAL;
		}
		n++;
	}
	fclose(f);
	ERR_clear_error(); /* the end of the file reads as an error */
	if (!n) {
		log_error(0, "TLS: --tls-chain %s holds no PEM certificate", file);
		return -EINVAL;
	}
	return 0;
}

static SSL_CTX *ctx_load(const struct gw_config *cfg)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
	if (!ctx) {
		log_ssl("creating a context", "");
		return NULL;
	}
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	/* RELEASE_BUFFERS: an idle connection keeps no 16 KiB record buffers. Read-ahead:
	 * a record in one read() instead of a header and a body. No renegotiation: it is
	 * a CPU lever for a client and buys nothing here. An EOF without close_notify is
	 * how browsers close; the WebSocket close handshake says whether it was clean. */
	SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
	SSL_CTX_set_read_ahead(ctx, 1);
	SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE |
					 SSL_OP_NO_COMPRESSION | SSL_OP_IGNORE_UNEXPECTED_EOF);
	SSL_CTX_set_num_tickets(ctx, 1);
	SSL_CTX_set_alpn_select_cb(ctx, on_alpn, NULL);
	if (SSL_CTX_use_certificate_chain_file(ctx, cfg->tls_cert) != 1) {
		log_ssl("loading --tls-cert", cfg->tls_cert);
		goto fail;
	}
	if (cfg->tls_chain[0] && add_chain(ctx, cfg->tls_chain))
		goto fail;
	if (SSL_CTX_use_PrivateKey_file(ctx, cfg->tls_key, SSL_FILETYPE_PEM) != 1) {
		int mismatch = ERR_GET_REASON(ERR_peek_last_error()) == X509_R_KEY_VALUES_MISMATCH;
		log_ssl(mismatch ? "--tls-key does not match --tls-cert:" : "loading --tls-key",
			cfg->tls_key);
		goto fail;
	}
	if (SSL_CTX_check_private_key(ctx) != 1) {
		log_ssl("--tls-key does not match --tls-cert:", cfg->tls_key);
		goto fail;
	}
	return ctx;
fail:
	SSL_CTX_free(ctx);
	return NULL;
}

static void log_cert(SSL_CTX *ctx, const char *what, const struct gw_config *cfg)
{
	char subject[256] = "?", until[64] = "?";
	X509 *x = SSL_CTX_get0_certificate(ctx);
	if (x) {
		X509_NAME_oneline(X509_get_subject_name(x), subject, sizeof(subject));
		BIO *m = BIO_new(BIO_s_mem());
		if (m && ASN1_TIME_print(m, X509_get0_notAfter(x))) {
			int n = BIO_read(m, until, sizeof(until) - 1);
			until[n > 0 ? n : 0] = 0;
		}
		BIO_free(m);
	}
	log_info("TLS: %s %s (%s, valid until %s); TLS 1.2 and 1.3, ALPN http/1.1", what,
		 cfg->tls_cert, subject, until);
}

/* Kernel TLS would keep the crypto state in the socket (which a live upgrade could pass
 * on); it needs the kernel's tls module. It is only reported: records are encrypted in
 * user space here, into a queue the loop writes (see the top of tls.h). */
static void log_ktls(void)
{
	char line[256] = "";
	FILE *f = fopen("/proc/sys/net/ipv4/tcp_available_ulp", "re");
	if (f) {
		if (!fgets(line, sizeof(line), f))
			line[0] = 0;
		fclose(f);
	}
	if (strstr(line, "tls"))
		log_info("TLS: the kernel offers kernel TLS; wsgw encrypts in user space all the same");
	else
		log_info("TLS: kernel TLS not available (no \"tls\" in net.ipv4.tcp_available_ulp); encrypting in user space");
}

int tls_srv_new(const struct gw_config *cfg, struct tls_srv **out)
{
	if (wq_init())
		return -ENOMEM;
	struct tls_srv *s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->ctx = ctx_load(cfg);
	if (!s->ctx) {
		free(s);
		return -EINVAL;
	}
	log_cert(s->ctx, "serving", cfg);
	log_ktls();
	*out = s;
	return 0;
}

int tls_srv_reload(struct tls_srv *s, const struct gw_config *cfg)
{
	SSL_CTX *ctx = ctx_load(cfg);
	if (!ctx) {
		log_error(0, "SIGHUP: TLS certificate not reloaded; the old one stays");
		return -EINVAL;
	}
	SSL_CTX_free(s->ctx);
	s->ctx = ctx;
	log_cert(ctx, "SIGHUP: reloaded", cfg);
	return 0;
}

void tls_srv_free(struct tls_srv *s)
{
	if (!s)
		return;
	SSL_CTX_free(s->ctx);
	free(s);
}

/* --- connections --- */

struct tls_conn *tls_conn_new(struct tls_srv *s, int fd)
{
	struct tls_conn *t = calloc(1, sizeof(*t));
	if (!t)
		return NULL;
	t->ssl = SSL_new(s->ctx);
	BIO *rb = BIO_new_socket(fd, BIO_NOCLOSE);
	BIO *wb = BIO_new(wq_method);
	if (!t->ssl || !rb || !wb) {
		BIO_free(rb);
		BIO_free(wb);
		SSL_free(t->ssl);
		free(t);
		ERR_clear_error();
		return NULL;
	}
	BIO_set_data(wb, t);
	SSL_set_bio(t->ssl, rb, wb); /* the SSL owns both */
	SSL_set_accept_state(t->ssl);
	return t;
}

static void count_handshake(struct tls_conn *t, int ok)
{
	if (t->counted)
		return;
	t->counted = 1;
	if (ok)
		stats.tls_handshakes++;
	else
		stats.tls_failures++;
}

void tls_conn_free(struct tls_conn *t)
{
	if (!t)
		return;
	count_handshake(t, 0); /* closed before it finished: a deadline, a vanished peer */
	SSL_free(t->ssl);
	outq_clear(&t->wq);
	free(t);
}

ssize_t tls_read(struct tls_conn *t, void *buf, size_t cap)
{
	if (t->broken)
		return -ENOMEM;
	int n = SSL_read(t->ssl, buf, cap > INT32_MAX ? INT32_MAX : (int)cap);
	if (n > 0) {
		count_handshake(t, 1);
		return n;
	}
	int e = SSL_get_error(t->ssl, n);
	if (SSL_is_init_finished(t->ssl))
		count_handshake(t, 1);
	switch (e) {
	case SSL_ERROR_WANT_READ:
	case SSL_ERROR_WANT_WRITE: /* never: the write side always takes everything */
		return t->broken ? -ENOMEM : -EAGAIN;
	case SSL_ERROR_ZERO_RETURN:
		return 0;
	case SSL_ERROR_SYSCALL: {
		int err = errno;
		ERR_clear_error();
		if (err == EAGAIN || err == EINTR)
			return -EAGAIN;
		count_handshake(t, 0);
		return err ? -err : 0;
	}
	default: {
		unsigned long code = ERR_peek_last_error();
		t->why = ERR_reason_error_string(code);
		if (!t->why)
			t->why = "TLS error";
		ERR_clear_error();
		count_handshake(t, 0);
		return ERR_GET_REASON(code) == SSL_R_HTTP_REQUEST ? -EPROTONOSUPPORT : -EPROTO;
	}
	}
}

int tls_flush(struct tls_conn *t, struct outq *plain, int fd)
{
	if (t->broken)
		return -ENOMEM;
	for (;;) {
		if (t->wq.head) {
			int rc = outq_flush(&t->wq, fd);
			if (rc)
				return rc;
		}
		if (!plain->head || !SSL_is_init_finished(t->ssl))
			return 0;
		/* Frames are small and many (a chunk of the queue may hold one): they go out in
		 * full records, copied together, rather than one record each. */
		static _Thread_local uint8_t stage[TLS_BATCH];
		struct iovec iov[64];
		int cnt;
		size_t n = outq_iov(plain, iov, 64, TLS_BATCH, &cnt);
		const void *p = iov[0].iov_base;
		if (cnt > 1) {
			size_t off = 0;
			for (int i = 0; i < cnt; i++) {
				memcpy(stage + off, iov[i].iov_base, iov[i].iov_len);
				off += iov[i].iov_len;
			}
			p = stage;
		}
		int w = SSL_write(t->ssl, p, (int)n);
		if (w <= 0 || t->broken) {
			ERR_clear_error();
			return t->broken ? -ENOMEM : -EIO;
		}
		outq_consume(plain, (size_t)w);
	}
}

int tls_has_output(const struct tls_conn *t)
{
	return t->wq.head != NULL;
}

int tls_ready(const struct tls_conn *t)
{
	return SSL_is_init_finished(t->ssl);
}

int tls_close_notify(struct tls_conn *t)
{
	if (t->notified || t->why || !SSL_is_init_finished(t->ssl))
		return 0;
	t->notified = 1;
	SSL_shutdown(t->ssl);
	ERR_clear_error();
	return tls_has_output(t);
}

const char *tls_error(const struct tls_conn *t)
{
	return t->why ? t->why : "no error";
}
