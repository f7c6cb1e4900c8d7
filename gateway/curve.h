/*
 * CURVE on the control channel: the ROUTER's secret key, and a ZAP handler (RFC 27) that
 * admits only the worker keys listed in --curve-clients (any key when none are listed).
 */
#ifndef WSGW_CURVE_H
#define WSGW_CURVE_H

#include "gateway/config.h"
#include "gateway/loop.h"

struct curve;

/* Makes sock a CURVE server with cfg->curve_secret and binds the ZAP handler in ctx,
 * its fd registered with l. Returns 0 and *out, or -errno (logged). */
int curve_new(struct loop *l, const struct gw_config *cfg, void *ctx, void *sock,
	      struct curve **out);
/* Closes the handler. NULL is a no-op. */
void curve_free(struct curve *cv);

#endif
