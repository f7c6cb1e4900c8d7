/* The gateway at the top: sets up every part from the settings, wires them together,
 * handles signals (SIGTERM/SIGINT drain, SIGHUP reload) and runs the loop. */
#ifndef WSGW_SERVER_H
#define WSGW_SERVER_H

#include "gateway/config.h"

/* Runs the gateway until SIGTERM/SIGINT has drained every connection; SIGHUP reloads
 * cfg's routes and limits in place (cfg_reload). Returns 0 on a clean stop, or -errno when
 * the loop could not start (listen failed, ...), already logged. */
int srv_run(struct gw_config *cfg);

#endif
