#include "tests/lib/wttls.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

int wt_tls_mode(void)
{
	const char *s = getenv("WT_TLS");
	return s && strcmp(s, "1") == 0;
}

const char *wt_tls_file(const char *name)
{
	static char path[5][512];
	static const char *const names[] = { "ca.pem", "cert.pem", "key.pem", "cert2.pem", "key2.pem" };
	const char *build = getenv("WSGW_BUILD");
	for (int i = 0; i < 5; i++) {
		if (strcmp(name, names[i]) == 0) {
			snprintf(path[i], sizeof(path[i]), "%s/tls/%s", build && *build ? build : "build", name);
			return path[i];
		}
	}
	return NULL;
}

static SSL_CTX *client_ctx(char *err, size_t errcap)
{
	static SSL_CTX *ctx;
	if (ctx)
		return ctx;
	ctx = SSL_CTX_new(TLS_client_method());
	if (!ctx || SSL_CTX_load_verify_locations(ctx, wt_tls_file("ca.pem"), NULL) != 1) {
		snprintf(err, errcap, "TLS: loading the test CA %s (make tls-certs)", wt_tls_file("ca.pem"));
		SSL_CTX_free(ctx);
		ctx = NULL;
		return NULL;
	}
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	/* A test may send a frame byte by byte: each write must go out as it is. */
	SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	return ctx;
}

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void *wt_tls_connect(int fd, int timeout_ms, char *err, size_t errcap)
{
	SSL_CTX *ctx = client_ctx(err, errcap);
	if (!ctx)
		return NULL;
	SSL *ssl = SSL_new(ctx);
	if (!ssl || !SSL_set_fd(ssl, fd)) {
		snprintf(err, errcap, "TLS: SSL_new");
		SSL_free(ssl);
		return NULL;
	}
	/* The gateway's certificate must name the address connected to. */
	X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), "127.0.0.1");
	SSL_set_tlsext_host_name(ssl, "localhost");
	int64_t deadline = now_ms() + timeout_ms;
	for (;;) {
		int rc = SSL_connect(ssl);
		if (rc == 1)
			return ssl;
		int e = SSL_get_error(ssl, rc);
		int left = (int)(deadline - now_ms());
		if ((e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) || left <= 0) {
			char why[256];
			ERR_error_string_n(ERR_get_error(), why, sizeof(why));
			snprintf(err, errcap, "TLS handshake: %s", left <= 0 ? "timed out" : why);
			ERR_clear_error();
			SSL_free(ssl);
			return NULL;
		}
		struct pollfd p = { .fd = fd, .events = e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT };
		poll(&p, 1, left);
	}
}

ssize_t wt_tls_recv(void *ssl, void *buf, size_t cap)
{
	int n = SSL_read(ssl, buf, cap > 1 << 30 ? 1 << 30 : (int)cap);
	if (n > 0)
		return n;
	int e = SSL_get_error(ssl, n);
	int err = errno;
	ERR_clear_error();
	switch (e) {
	case SSL_ERROR_WANT_READ:
	case SSL_ERROR_WANT_WRITE:
		return 0;
	case SSL_ERROR_ZERO_RETURN:
		return -EPIPE;
	case SSL_ERROR_SYSCALL:
		return err == ECONNRESET ? -ECONNRESET : -EPIPE;
	default:
		return -EPROTO;
	}
}

ssize_t wt_tls_send(void *ssl, const void *buf, size_t len, int *want_read)
{
	int n = SSL_write(ssl, buf, len > 1 << 30 ? 1 << 30 : (int)len);
	if (n > 0)
		return n;
	int e = SSL_get_error(ssl, n);
	int err = errno;
	ERR_clear_error();
	*want_read = e == SSL_ERROR_WANT_READ;
	if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
		return -EAGAIN;
	if (e == SSL_ERROR_SYSCALL && err)
		return -err;
	return -EPIPE;
}

void wt_tls_free(void *ssl)
{
	SSL_free(ssl);
}

int wt_tls_peer_cn(void *ssl, char *out, size_t cap)
{
	X509 *x = SSL_get1_peer_certificate(ssl);
	int n = x ? X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_commonName, out, (int)cap) : -1;
	X509_free(x);
	return n < 0 ? -ENOENT : 0;
}

const char *wt_tls_version(void *ssl)
{
	return SSL_get_version(ssl);
}
