/* wss:// for wsgw-bench: one OpenSSL client context for the process, one SSL per
 * connection, driven non-blocking on the client thread's edge-triggered epoll. */
#ifndef LG_TLS_H
#define LG_TLS_H

#include <stddef.h>
#include <sys/types.h>

struct ssl_st;

/* Makes the client context. With ca_file, the server's certificate must chain to it and
 * name host (an IPv4 address or a DNS name); without, nothing is verified. Call once,
 * before any thread starts. Returns 0, or -EINVAL with the reason on stderr. */
int lg_tls_init(const char *ca_file, const char *host);
void lg_tls_done(void);

/* A client SSL on the connected socket fd (not owned: close it after lg_tls_free).
 * NULL when OpenSSL cannot allocate one. */
struct ssl_st *lg_tls_new(int fd);
void lg_tls_free(struct ssl_st *s);

/* One step of the handshake: 1 done, 0 waiting for the socket (any edge will do), -1
 * failed (the first failure of the process is described on stderr). */
int lg_tls_connect(struct ssl_st *s);

/* As recv(): plaintext bytes, 0 at the end (close_notify or EOF), -EAGAIN when OpenSSL
 * needs the socket, -EPROTO for a TLS error, -errno for a socket error. *drained is set
 * when the socket was left empty and OpenSSL holds no decrypted or undecrypted bytes:
 * with an edge-triggered epoll, the next read can wait for the next edge. */
ssize_t lg_tls_recv(struct ssl_st *s, void *buf, size_t cap, int *drained);

/* As send(): bytes taken (at least one record's), -EAGAIN, -EPROTO, -errno. After
 * -EAGAIN OpenSSL holds a record built from the first bytes of p: the next call must
 * start with the same bytes and pass at least n of them (they may have moved). */
ssize_t lg_tls_send(struct ssl_st *s, const void *p, size_t n);

#endif
