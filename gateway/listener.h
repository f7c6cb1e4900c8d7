/*
 * Listening sockets: bind, listen, accept, with accept errors graded as nginx and libuv
 * grade them. At the fd limit (EMFILE/ENFILE) accepting pauses on a timer instead of
 * spinning: the connections then waiting are shed with a reserve fd (so they see a reset
 * rather than a hang), one log line opens the episode and one closes it.
 */
#ifndef WSGW_LISTENER_H
#define WSGW_LISTENER_H

#include "gateway/config.h"
#include "gateway/loop.h"

#include <sys/socket.h>

struct lsn;

/* Called for every accepted socket (non-blocking, close-on-exec, TCP_NODELAY) with its
 * peer's address, tls set when its listener is marked ",tls"; the callee owns fd. */
typedef void lsn_accept_fn(void *arg, int fd, const struct sockaddr *peer, int tls);

/* Opens every listener of cfg and registers them with l. Returns 0 and *out, or -errno
 * (logged; nothing is left open). */
int lsn_open(struct loop *l, const struct gw_config *cfg, lsn_accept_fn *fn, void *arg,
	     struct lsn **out);
/* Listeners open now, and the i-th one's address with its real port ("127.0.0.1:8080"). */
int lsn_count(const struct lsn *s);
const char *lsn_address(const struct lsn *s, int i);
/* Stops accepting and closes the listening sockets (the drain); idempotent. */
void lsn_close(struct lsn *s);
void lsn_free(struct lsn *s);

#endif
