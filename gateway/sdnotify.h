/* The service manager's side channel (sd_notify(3)): READY once listening, RELOADING and
 * READY around a SIGHUP reload, STOPPING on drain, and WATCHDOG keep-alives when the unit
 * sets WatchdogSec=. Every call is a no-op when $NOTIFY_SOCKET is unset (not started by
 * systemd with Type=notify), so the gateway calls them unconditionally. Loop thread only. */
#ifndef WSGW_SDNOTIFY_H
#define WSGW_SDNOTIFY_H

#include <stdint.h>

/* Reads $WATCHDOG_USEC/$WATCHDOG_PID once (sd_watchdog_enabled). Returns the interval at
 * which sdn_tick() will send WATCHDOG=1, in ms (half of WatchdogSec=), or 0 when the
 * watchdog is off for this process. */
uint32_t sdn_init(void);

/* READY=1 with STATUS=status (may be NULL), and MAINPID. Returns sd_notify's result: > 0
 * sent, 0 when there is no $NOTIFY_SOCKET, -errno when sending failed (logged once). */
int sdn_ready(const char *status);

/* MAINPID=pid with STATUS=status (may be NULL): a live upgrade's old process names the new
 * one, which systemd then follows (and back to itself when the upgrade failed). Returns as
 * sdn_ready. */
int sdn_mainpid(int pid, const char *status);

/* A process started by a live upgrade becomes the service's main process: the watchdog is
 * its own (sd_watchdog_enabled checks $WATCHDOG_PID against the caller). Call before
 * sdn_init. */
void sdn_adopt_watchdog(void);

/* RELOADING=1 with MONOTONIC_USEC (what systemd 253's Type=notify-reload wants too).
 * Follow it with sdn_ready() once the reload is done, even when it failed. Returns as
 * sdn_ready. */
int sdn_reloading(void);

/* STOPPING=1 with STATUS=status: the drain has begun. Returns as sdn_ready. */
int sdn_stopping(const char *status);

/* Sends WATCHDOG=1 when half the watchdog interval has passed since the last one; now_ms
 * is any monotonic millisecond clock (srv_now). Call it at least every sdn_init() ms.
 * Returns 1 when it sent, 0 otherwise (watchdog off, not due, or no socket). */
int sdn_tick(uint32_t now_ms);

#endif
