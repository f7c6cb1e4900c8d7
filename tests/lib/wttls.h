/* wttls: the TLS side of the tests' client connections (OpenSSL), and where the test
 * certificates are.
 *
 * make check makes a test CA and a certificate it signed for 127.0.0.1 and localhost under
 * $WSGW_BUILD/tls/ (the Makefile's tls-certs target). With $WT_TLS=1, gateways that
 * wstest starts listen with ",tls" and every wt_connect speaks TLS, verifying the
 * gateway's certificate against that CA: a suite runs unchanged over TLS. */
#ifndef WT_TLS_H
#define WT_TLS_H

#include <stddef.h>
#include <sys/types.h>

/* 1 when $WT_TLS asks for TLS. */
int wt_tls_mode(void);
/* Paths of the test files under $WSGW_BUILD/tls: "ca.pem", "cert.pem" and "key.pem"
 * (CN localhost), "cert2.pem" and "key2.pem" (CN localhost2). NULL for another name. */
const char *wt_tls_file(const char *name);

/* Runs a client handshake on the connected non-blocking socket fd within timeout_ms.
 * Returns the TLS state (an SSL *) or NULL with the reason in err. */
void *wt_tls_connect(int fd, int timeout_ms, char *err, size_t errcap);
/* As recv(): bytes, 0 would block, -EPIPE at the end (close_notify or EOF), -ECONNRESET
 * or -EPROTO. */
ssize_t wt_tls_recv(void *ssl, void *buf, size_t cap);
/* As send(): bytes, -EAGAIN (wait for the socket: *want_read says for input), or -errno.
 * After -EAGAIN, call again with the same buffer. */
ssize_t wt_tls_send(void *ssl, const void *buf, size_t len, int *want_read);
void wt_tls_free(void *ssl);
/* The common name of the certificate the server presented: 0, or -ENOENT. */
int wt_tls_peer_cn(void *ssl, char *out, size_t cap);
/* "TLSv1.3", "TLSv1.2". */
const char *wt_tls_version(void *ssl);

#endif
