#include "gateway/sdnotify.h"
#include "gateway/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-daemon.h>
#include <time.h>
#include <unistd.h>

static struct {
	uint32_t interval_ms; /* WATCHDOG=1 this often; 0: off */
	uint32_t last_ms;
	int sent_once;
	int warned;
} S;

/* A failing notify socket is worth one line, not one per keep-alive. */
static int notify(const char *msg)
{
	int rc = sd_notify(0, msg);
	if (rc < 0 && !S.warned) {
		S.warned = 1;
		log_warn(-rc, "sd_notify(%.*s) to $NOTIFY_SOCKET", (int)strcspn(msg, "\n"), msg);
	}
	return rc;
}

uint32_t sdn_init(void)
{
	uint64_t usec = 0;
	S.interval_ms = 0;
	S.sent_once = 0;
	S.warned = 0;
	if (sd_watchdog_enabled(0, &usec) > 0 && usec > 0) {
		/* Half the deadline, as sd_watchdog_enabled(3) advises: a late batch is not death. */
		uint64_t ms = usec / 2000;
		S.interval_ms = ms == 0 ? 1 : ms > UINT32_MAX / 4 ? UINT32_MAX / 4 : (uint32_t)ms;
	}
	return S.interval_ms;
}

int sdn_ready(const char *status)
{
	char msg[256];
	snprintf(msg, sizeof(msg), "READY=1\nMAINPID=%d%s%s", (int)getpid(),
		 status ? "\nSTATUS=" : "", status ? status : "");
	return notify(msg);
}

int sdn_mainpid(int pid, const char *status)
{
	char msg[256];
	snprintf(msg, sizeof(msg), "MAINPID=%d%s%s", pid, status ? "\nSTATUS=" : "", status ? status : "");
	return notify(msg);
}

void sdn_adopt_watchdog(void)
{
	if (getenv("WATCHDOG_PID")) {
		char pid[24];
		snprintf(pid, sizeof(pid), "%d", (int)getpid());
		setenv("WATCHDOG_PID", pid, 1);
	}
}

int sdn_reloading(void)
{
	struct timespec ts;
	char msg[96];
	clock_gettime(CLOCK_MONOTONIC, &ts);
	snprintf(msg, sizeof(msg), "RELOADING=1\nMONOTONIC_USEC=%llu",
		 (unsigned long long)ts.tv_sec * 1000000ull + (unsigned long long)ts.tv_nsec / 1000);
	return notify(msg);
}

int sdn_stopping(const char *status)
{
	char msg[256];
	snprintf(msg, sizeof(msg), "STOPPING=1%s%s", status ? "\nSTATUS=" : "", status ? status : "");
	return notify(msg);
}

int sdn_tick(uint32_t now_ms)
{
	if (!S.interval_ms || (S.sent_once && now_ms - S.last_ms < S.interval_ms))
		return 0;
	S.sent_once = 1;
	S.last_ms = now_ms;
	return notify("WATCHDOG=1") > 0;
}
