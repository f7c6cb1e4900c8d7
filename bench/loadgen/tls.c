/* The OpenSSL client of wsgw-bench. Each SSL reads and writes its socket through a BIO of
 * our own that remembers whether the last recv() left the socket empty: on an
 * edge-triggered epoll that saves the recv() that would only say EAGAIN, as the plain
 * path does, without ever stopping while OpenSSL still holds bytes. */
#include "bench/loadgen/tls.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

/* Ciphertext read at once when read-ahead lets OpenSSL read past the record it needs: a
 * gateway encrypts up to 64 KiB per flush. */
#define READ_BUF (64u << 10)

static SSL_CTX *ctx;
static BIO_METHOD *sock_method;
static char sni[256];		/* empty for an address: RFC 6066 names hosts only */
static int reported;		/* the first failure was described */

/* Set by sock_read: the last recv() returned less than asked, or EAGAIN. Read right
 * after the SSL_read of the same thread that caused it. */
static _Thread_local int last_read_short;

static int sock_read(BIO *b, char *p, int n)
{
	int fd = (int)(intptr_t)BIO_get_data(b);
	ssize_t r;

	BIO_clear_retry_flags(b);
	do
		r = recv(fd, p, (size_t)n, 0);
	while (r < 0 && errno == EINTR);
	if (r < 0 && errno == EAGAIN) {
		last_read_short = 1;
		BIO_set_retry_read(b);
		return -1;
	}
	last_read_short = r < n;
	return (int)r;
}

static int sock_write(BIO *b, const char *p, int n)
{
	int fd = (int)(intptr_t)BIO_get_data(b);
	ssize_t r;

	BIO_clear_retry_flags(b);
	do
		r = send(fd, p, (size_t)n, MSG_NOSIGNAL);
	while (r < 0 && errno == EINTR);
	if (r < 0 && errno == EAGAIN) {
		BIO_set_retry_write(b);
		return -1;
	}
	return (int)r;
}

static long sock_ctrl(BIO *b, int cmd, long num, void *ptr)
{
	(void)b, (void)num, (void)ptr;
	return cmd == BIO_CTRL_FLUSH ? 1 : 0;	/* every write went to the socket already */
}

static int sock_create(BIO *b)
{
	BIO_set_init(b, 1);
	return 1;
}

static void report(const char *what, SSL *s)
{
	unsigned long e = ERR_peek_last_error();
	char buf[256] = "";

	if (__atomic_exchange_n(&reported, 1, __ATOMIC_RELAXED))
		return;
	if (s && SSL_get_verify_result(s) != X509_V_OK)
		snprintf(buf, sizeof(buf), "certificate: %s",
			 X509_verify_cert_error_string(SSL_get_verify_result(s)));
	else if (e)
		ERR_error_string_n(e, buf, sizeof(buf));
	else
		snprintf(buf, sizeof(buf), "%s", errno ? strerror(errno) : "connection closed");
	fprintf(stderr, "wsgw-bench: TLS %s failed: %s (further TLS failures are counted, "
		"not shown)\n", what, buf);
}

int lg_tls_init(const char *ca_file, const char *host)
{
	struct in_addr a;
	static const unsigned char alpn[] = "\x08http/1.1";

	sock_method = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "wsgw-bench socket");
	ctx = SSL_CTX_new(TLS_client_method());
	if (!sock_method || !ctx || !BIO_meth_set_read(sock_method, sock_read) ||
	    !BIO_meth_set_write(sock_method, sock_write) ||
	    !BIO_meth_set_ctrl(sock_method, sock_ctrl) ||
	    !BIO_meth_set_create(sock_method, sock_create)) {
		fprintf(stderr, "wsgw-bench: TLS: cannot make the client context\n");
		return -EINVAL;
	}
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	/* Partial writes: a flush takes what the socket takes, record by record, and the
	 * rest stays in the connection's buffer, which grows (and moves) meanwhile.
	 * Released buffers: 19K held connections would otherwise keep 34 KiB each. */
	SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
				      SSL_MODE_RELEASE_BUFFERS);
	SSL_CTX_set_read_ahead(ctx, 1);
	SSL_CTX_set_default_read_buffer_len(ctx, READ_BUF);
	SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	SSL_CTX_set_alpn_protos(ctx, alpn, sizeof(alpn) - 1);
	if (inet_pton(AF_INET, host, &a) != 1)
		snprintf(sni, sizeof(sni), "%s", host);
	if (!ca_file) {
		SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
		return 0;
	}
	if (SSL_CTX_load_verify_locations(ctx, ca_file, NULL) != 1) {
		char buf[256];
		ERR_error_string_n(ERR_get_error(), buf, sizeof(buf));
		fprintf(stderr, "wsgw-bench: --ca %s: %s\n", ca_file, buf);
		return -EINVAL;
	}
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	X509_VERIFY_PARAM *vp = SSL_CTX_get0_param(ctx);
	if (sni[0] ? !X509_VERIFY_PARAM_set1_host(vp, host, 0) :
		     !X509_VERIFY_PARAM_set1_ip_asc(vp, host)) {
		fprintf(stderr, "wsgw-bench: TLS: cannot check certificates for %s\n", host);
		return -EINVAL;
	}
	return 0;
}

void lg_tls_done(void)
{
	SSL_CTX_free(ctx);
	BIO_meth_free(sock_method);
	ctx = NULL;
	sock_method = NULL;
}

SSL *lg_tls_new(int fd)
{
	SSL *s = SSL_new(ctx);
	BIO *b = BIO_new(sock_method);

	if (!s || !b) {
		BIO_free(b);
		SSL_free(s);
		ERR_clear_error();
		return NULL;
	}
	BIO_set_data(b, (void *)(intptr_t)fd);
	SSL_set_bio(s, b, b);	/* the SSL owns the BIO (one reference for both sides) */
	if (sni[0])
		SSL_set_tlsext_host_name(s, sni);
	SSL_set_connect_state(s);
	return s;
}

void lg_tls_free(SSL *s)
{
	SSL_free(s);
}

int lg_tls_connect(SSL *s)
{
	int rc = SSL_connect(s);

	if (rc == 1)
		return 1;
	switch (SSL_get_error(s, rc)) {
	case SSL_ERROR_WANT_READ:
	case SSL_ERROR_WANT_WRITE:
		return 0;
	default:
		report("handshake", s);
		ERR_clear_error();
		return -1;
	}
}

ssize_t lg_tls_recv(SSL *s, void *buf, size_t cap, int *drained)
{
	int n, err;

	last_read_short = 0;	/* an SSL_read served from OpenSSL's buffer read nothing */
	errno = 0;
	n = SSL_read(s, buf, cap > INT32_MAX ? INT32_MAX : (int)cap);
	*drained = 0;
	if (n > 0) {
		/* A partial record held back counts as pending: one read too many then,
		 * never one too few. */
		*drained = last_read_short && !SSL_has_pending(s);
		return n;
	}
	err = errno;
	switch (SSL_get_error(s, n)) {
	case SSL_ERROR_WANT_READ:
	case SSL_ERROR_WANT_WRITE:
		return -EAGAIN;
	case SSL_ERROR_ZERO_RETURN:
		return 0;
	case SSL_ERROR_SYSCALL:
		ERR_clear_error();
		return err ? -err : 0;
	default:
		report("read", s);
		ERR_clear_error();
		return -EPROTO;
	}
}

ssize_t lg_tls_send(SSL *s, const void *p, size_t n)
{
	int w, err;

	errno = 0;
	w = SSL_write(s, p, n > INT32_MAX ? INT32_MAX : (int)n);
	err = errno;

	if (w > 0)
		return w;
	switch (SSL_get_error(s, w)) {
	case SSL_ERROR_WANT_READ:
	case SSL_ERROR_WANT_WRITE:
		return -EAGAIN;
	case SSL_ERROR_SYSCALL:
		ERR_clear_error();
		return err ? -err : -EPIPE;
	default:
		report("write", s);
		ERR_clear_error();
		return -EPROTO;
	}
}
