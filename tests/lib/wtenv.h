/*
 * wtenv: one worker test's world: a temp dir holding the control socket and every log,
 * the gateway started with --control there, and workers of every kind attached to it.
 * Check assertions: a failure ends the test with the logs printed.
 */
#ifndef WTENV_H
#define WTENV_H

#include <stddef.h>

#include "tests/lib/wstest.h"
#include "tests/lib/wtproc.h"

#define WT_ATTACH_MS 5000

struct wt_env {
	char dir[128];
	char control[192];
	struct wt_gw gw;
};

enum wt_worker_kind {
	WT_WORKER_ECHO = 0, /* build/wsgw-echo: shm, through libwsgw */
	WT_WORKER_TEST = 1, /* the test worker of wtproc.h: shm, through libwsgw */
	WT_WORKER_ZMQ = 2,  /* the zmq echo worker of wtctl.h */
};

/* Makes the temp dir and the control endpoint ipc://DIR/control. */
void wt_env_init(struct wt_env *e);
/* Starts the gateway with --control and --runtime-dir in the env's dir plus the
 * NULL-terminated args: its own runtime directory, so that it never meets the lock of
 * another test's gateway, nor that of an installed wsgw.service in /run/wsgw. */
#define WT_ENV_GW_START(e, ...) do { \
		WT_GW_START(&(e)->gw, "--control", (e)->control, "--runtime-dir", (e)->dir, \
			    __VA_ARGS__); \
		wt_track_gateway((e)->gw.pid); \
	} while (0)
/* Stops the gateway (asserting exit 0) and checks it removed its segments. */
void wt_env_gw_stop(struct wt_env *e);
/* Stops the gateway if it runs and removes the temp dir. */
void wt_env_done(struct wt_env *e);
/* Starts a worker of kind for pool, its log DIR/name.log, and waits until the gateway says
 * it attached; returns its worker id. */
int wt_env_worker(struct wt_env *e, struct wt_proc *p, enum wt_worker_kind kind,
		  const char *pool, const char *name);
/* SIGTERM, asserting exit 0 within 5 s. */
void wt_env_worker_stop(struct wt_proc *p);

/* Every one of the n clients sends one message tagged with what and round, and must get
 * exactly it back (an echo route or an echo worker). */
void wt_echo_round(struct wt_conn *c, int n, int round, const char *what);
/* Fails the test, with the log, when the gateway exited. */
void wt_gw_expect_alive(struct wt_gw *gw);

/* What /proc says of a process: CPU seconds used (user + system, every thread), resident
 * memory in KiB, voluntary context switches of its main thread (its sleeps); -1 when it
 * cannot be read. */
double wt_proc_cpu_s(pid_t pid);
/* 1 when the programs under test are built with sanitizers (make check SANITIZE=...):
 * their RSS then says more about the sanitizer's quarantine than about them. */
int wt_sanitized(void);
long wt_proc_rss_kib(pid_t pid);
long wt_proc_wakeups(pid_t pid);

#endif
