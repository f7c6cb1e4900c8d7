/*
 * wtproc: worker processes for the integration tests of the worker protocol.
 *
 * Starts real workers (build/wsgw-echo, or the test binary itself re-executed as a test
 * worker with --as-worker), waits for what the gateway and the workers log, kills and
 * reaps them, and cleans up temp dirs and the gateway's shared-memory segments.
 *
 * Every process started here gets PR_SET_PDEATHSIG(SIGKILL) and is registered: if the
 * test process exits with it still running (a failed ck_assert exits the forked test), it
 * is killed by its PID and reaped, and its log tail is printed. Temp dirs made by
 * wt_dir_new() and the /dev/shm/wsgw-<pid>-* segments of gateways named with
 * wt_track_gateway() are removed at exit too, and by wt_fixture_teardown() in Check's
 * parent when the test could not clean up. Every wait is bounded.
 */
#ifndef WTPROC_H
#define WTPROC_H

#include <check.h>
#include <stddef.h>
#include <sys/types.h>

struct wt_proc {
	pid_t pid;              /* 0 once reaped */
	int status;             /* wait status once reaped */
	char log_path[192];     /* stdout and stderr of the process */
};

/*
 * Check's unchecked fixture for every test case that uses wtproc: a failed ck_assert
 * leaves the forked test with _exit(), so its temp dirs and the shared memory of its
 * gateways are removed from the parent after the case:
 *	tcase_add_unchecked_fixture(tc, wt_fixture_setup, wt_fixture_teardown);
 * Processes need no such help: they die with the test (PR_SET_PDEATHSIG).
 */
void wt_fixture_setup(void);
void wt_fixture_teardown(void);

/* A suite of test cases as the integration tests write them: one TCase per case, each with
 * its timeout in seconds, the fixture above, and its test run loops times (0: once). */
struct wt_case {
	const char *name;
	const TTest *t;
	int timeout, loops;
};
Suite *wt_suite(const char *name, const struct wt_case *cases, size_t n);
#define WT_SUITE(name, cases) wt_suite(name, cases, sizeof(cases) / sizeof(cases[0]))
/* Runs s (CK_ENV verbosity, stdout line-buffered, SIGPIPE ignored) and frees it: what main
 * returns. */
int wt_run_suite(Suite *s);

/* Makes a fresh temp dir (TMPDIR or /tmp, short enough for an ipc:// path) into dir and
 * registers it for removal at exit. 0 or a negative errno. */
int wt_dir_new(char *dir, size_t cap);
/* Removes the files in dir (not recursive) and dir itself. Idempotent. */
void wt_dir_remove(const char *dir);

/* Starts argv[0] (a path) with stdin /dev/null, stdout and stderr appended to log_path.
 * Returns 0 or a negative errno. */
int wt_proc_spawn(struct wt_proc *p, const char *const *argv, const char *log_path);
/* The path of the build's program name: $WSGW_BUILD/name, or build/name. */
void wt_build_path(char *out, size_t cap, const char *name);
/* $WSGW_BUILD/wsgw-echo --control control --pool pool. */
int wt_start_echo(struct wt_proc *p, const char *control, const char *pool,
		   const char *log_path);
/* /proc/self/exe --as-worker --control control --pool pool: the test worker below. */
int wt_start_test_worker(struct wt_proc *p, const char *control, const char *pool,
			  const char *log_path);

/* Sends sig; -ESRCH once reaped. */
int wt_proc_kill(struct wt_proc *p, int sig);
/* Reaps within timeout_ms: 0 (status in p->status), or -ETIMEDOUT. */
int wt_proc_reap(struct wt_proc *p, int timeout_ms);
/* SIGTERM, reap within timeout_ms, SIGKILL after that. Returns the wait status, or
 * -ETIMEDOUT when it had to be killed. */
int wt_proc_stop(struct wt_proc *p, int timeout_ms);

/* 1 once the file contains needle, 0 when timeout_ms passed without it. */
int wt_wait_file(const char *path, const char *needle, int timeout_ms);
/* How many times needle occurs in the file (0 if it cannot be read). */
int wt_count_file(const char *path, const char *needle);
/* Waits until the gateway log says "worker N attached to pool POOL (pid PID, ...)" and
 * returns N (> 0; the last such line's), or -ETIMEDOUT. */
int wt_wait_attached(const char *gw_log, const char *pool, pid_t pid, int timeout_ms);
/* The id of the last "worker N attached to pool POOL (pid PID, ...)" line, or -ENOENT. */
int wt_last_attached(const char *gw_log, const char *pool, pid_t pid);
/* How many times the worker with PID attached to POOL. */
int wt_count_attached(const char *gw_log, const char *pool, pid_t pid);
/* Waits for "worker ... (pool POOL, pid PID) gone" in the gateway log: 1, or 0 on timeout. */
int wt_wait_gone(const char *gw_log, const char *pool, pid_t pid, int timeout_ms);

/* Remembers a gateway PID whose /dev/shm/wsgw-<pid>-* segments must go at exit. */
void wt_track_gateway(pid_t gw_pid);
/* Removes /dev/shm/wsgw-<gw_pid>-*; returns how many there were. */
int wt_shm_remove(pid_t gw_pid);
/* Counts /dev/shm/wsgw-<gw_pid>-* without removing them. */
int wt_shm_count(pid_t gw_pid);

/* Prints the last max_lines of a log file to stderr, under a title. */
void wt_dump(const char *title, const char *path, int max_lines);

/*
 * The test worker, run by a test binary's main() when argv[1] is "--as-worker":
 *	if (argc > 1 && !strcmp(argv[1], "--as-worker")) return wt_worker_main(argc, argv);
 * It serves one pool through libwsgw and logs every OPEN, CLOSE, GONE, ERROR and RESET
 * event to stderr as one line ("open CONN resumed=R authorize=A path=P", "close CONN CODE",
 * "gone CONN", "error TEXT", "reset id N"). It answers each message with
 * "w<worker id> c<conn> <f>|<payload>", f being 'o' when the connection's OPEN came to it,
 * 'r' when that OPEN was resumed, '-' when no OPEN came first. A message "stall:MS" is
 * answered, flushed, and then the worker sleeps MS ms without calling wsgw_wait (a worker
 * that stops reading). A message "later:MS ..." is answered MS ms after it came. "sub:TOPIC" subscribes the connection to TOPIC after the answer,
 * "pub:TOPIC:TEXT" publishes TEXT to it (nobody left out). After a CLOSE it sends "late" to the closed connection (which must
 * come back as GONE). An authorize OPEN whose path contains "/ok" is ACCEPTed with
 * subprotocol "chat.v1" and header "X-Test: yes", one containing "/no" is REJECTed with 403,
 * any other is left unanswered.
 */
int wt_worker_main(int argc, char **argv);

#endif
