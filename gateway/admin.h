/* The admin endpoint: GET /metrics (Prometheus text) and GET /healthz on --admin ADDR:PORT.
 * Served by the loop thread: a handful of short requests, never a client's concern. */
#ifndef WSGW_ADMIN_H
#define WSGW_ADMIN_H

#include <stdint.h>

#include "gateway/config.h"

/* Listens on l and registers with epfd (tag EP_ADMIN). Returns 0 or -errno (logged). */
int admin_init(const struct cfg_listen *l, int epfd);
/* An EP_ADMIN event: ptr is its epoll data. */
void admin_on_event(void *ptr);
/* /healthz answers 503 from now on (SIGTERM drain). */
void admin_set_draining(void);
/* Closes admin connections that did not send a request within 5 s. now: loop ms clock. */
void admin_tick(uint32_t now);
void admin_shutdown(void);

#endif
