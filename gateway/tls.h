/* TLS on client connections, with OpenSSL, in user space.
 *
 * A connection's records are read straight from its socket; what OpenSSL writes (the
 * handshake, alerts, encrypted frames) goes to a queue of its own (an outq of ciphertext),
 * which the loop writes with writev like any other. So SSL_write never blocks halfway and
 * the plaintext queue keeps its frames whole: the slow-client policies drop frames before
 * they are encrypted, never after. At most TLS_BATCH bytes of a connection are encrypted
 * ahead of what its socket took.
 *
 * Handshakes are non-blocking and run on the loop inside tls_read; the connection's
 * handshake deadline covers them. Idle connections hold no OpenSSL buffers
 * (SSL_MODE_RELEASE_BUFFERS). Loop thread only, but for tls_srv_reload (SIGHUP, also the
 * loop thread): the certificate it loads serves the connections accepted after it.
 */
#ifndef WSGW_TLS_H
#define WSGW_TLS_H

#include <stddef.h>
#include <sys/types.h>

#include "gateway/config.h"
#include "gateway/outq.h"

struct tls_srv;
struct tls_conn;

/* Loads cfg's certificate, key and chain. Returns 0 and *out, or -errno with the reason
 * logged (a missing file, a key that does not match, ...). */
int tls_srv_new(const struct gw_config *cfg, struct tls_srv **out);
/* Loads the files again (SIGHUP). On failure the old certificate stays, and why is logged;
 * returns 0 or -errno. */
int tls_srv_reload(struct tls_srv *s, const struct gw_config *cfg);
/* Frees s; connections still open keep the context they were accepted with. */
void tls_srv_free(struct tls_srv *s);

/* A server-side TLS state for the accepted socket fd (which the caller keeps owning).
 * NULL when out of memory. */
struct tls_conn *tls_conn_new(struct tls_srv *s, int fd);
void tls_conn_free(struct tls_conn *t);

/* Reads plaintext into buf, running the handshake first. Returns bytes (> 0), 0 at the
 * end of the stream (close_notify or EOF), -EAGAIN when the socket has nothing more, or
 * -EPROTO when the peer broke TLS (tls_error says how), -EPROTONOSUPPORT when it spoke
 * plain HTTP to this TLS port, -errno of the socket. Unlike read(), a short result does
 * not mean the socket is empty: call again until -EAGAIN. */
ssize_t tls_read(struct tls_conn *t, void *buf, size_t cap);
/* Encrypts what plain holds and writes it, as outq_flush does (same return values). */
int tls_flush(struct tls_conn *t, struct outq *plain, int fd);
/* Something OpenSSL wrote (handshake, alert, ticket) waits for tls_flush. */
int tls_has_output(const struct tls_conn *t);
/* The handshake is done: plaintext may be written. */
int tls_ready(const struct tls_conn *t);
/* Queues close_notify once. Returns 1 when it queued it (flush, then shut the socket
 * down), 0 when it was sent before or cannot be. */
int tls_close_notify(struct tls_conn *t);
/* The reason of the last -EPROTO, for logs. */
const char *tls_error(const struct tls_conn *t);

#endif
