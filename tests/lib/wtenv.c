/* wtenv: one worker test's world (tests/lib/wtenv.h). */
#include "tests/lib/wtenv.h"
#include "tests/lib/wtctl.h"

#include <check.h>
#include <stdlib.h>
#include <unistd.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>

void wt_env_init(struct wt_env *e)
{
	memset(e, 0, sizeof(*e));
	ck_assert_int_eq(wt_dir_new(e->dir, sizeof(e->dir)), 0);
	snprintf(e->control, sizeof(e->control), "ipc://%s/control", e->dir);
}

void wt_env_gw_stop(struct wt_env *e)
{
	pid_t pid = e->gw.pid;

	WT_GW_STOP(&e->gw);
	int left = wt_shm_remove(pid);
	ck_assert_msg(left == 0, "gateway %d exited cleanly but left %d /dev/shm/wsgw-%d-* segments",
		      (int)pid, left, (int)pid);
}

void wt_env_done(struct wt_env *e)
{
	if (e->gw.pid)
		wt_env_gw_stop(e);
	wt_dir_remove(e->dir);
}

int wt_env_worker(struct wt_env *e, struct wt_proc *p, enum wt_worker_kind kind,
		  const char *pool, const char *name)
{
	char log[256];
	int rc, id;

	snprintf(log, sizeof(log), "%s/%s.log", e->dir, name);
	switch (kind) {
	case WT_WORKER_TEST:
		rc = wt_start_test_worker(p, e->control, pool, log);
		break;
	case WT_WORKER_ZMQ:
		rc = wt_zw_start(p, e->control, pool, log);
		break;
	default:
		rc = wt_start_echo(p, e->control, pool, log);
	}
	ck_assert_msg(rc == 0, "starting worker %s: %s", name, strerror(-rc));
	id = wt_wait_attached(e->gw.log_path, pool, p->pid, WT_ATTACH_MS);
	if (id < 0) {
		wt_gw_dump_log(&e->gw, 30);
		wt_dump(name, p->log_path, 20);
	}
	ck_assert_msg(id > 0, "worker %s (pid %d) did not attach to pool %s within %d ms", name,
		      (int)p->pid, pool, WT_ATTACH_MS);
	return id;
}

void wt_env_worker_stop(struct wt_proc *p)
{
	int st = wt_proc_stop(p, 5000);

	ck_assert_msg(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0,
		      "worker did not exit 0 on SIGTERM (status %d)", st);
}

void wt_echo_round(struct wt_conn *c, int n, int round, const char *what)
{
	char msg[64];

	for (int i = 0; i < n; i++) {
		int len = snprintf(msg, sizeof(msg), "%s c%d r%d", what, i, round);

		WT_OK(&c[i], wt_send_frame(&c[i], WT_TEXT, 1, msg, (size_t)len));
	}
	for (int i = 0; i < n; i++) {
		int len = snprintf(msg, sizeof(msg), "%s c%d r%d", what, i, round);

		WT_EXPECT_MESSAGE(&c[i], WT_TEXT, msg, (size_t)len);
	}
}

void wt_gw_expect_alive(struct wt_gw *gw)
{
	if (wt_gw_wait(gw, 0) == 0) {
		wt_gw_dump_log(gw, 40);
		ck_abort_msg("the gateway exited (status %d)", gw->status);
	}
}

double wt_proc_cpu_s(pid_t pid)
{
	char path[64], buf[1024];
	unsigned long ut = 0, st = 0;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	f = fopen(path, "re");
	if (!f)
		return -1;
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = 0;
	/* Fields after the command's closing parenthesis: state is 3, utime 14, stime 15. */
	const char *p = strrchr(buf, ')');
	if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2)
		return -1;
	return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

static long status_field(const char *path, const char *fmt)
{
	char line[128];
	long v = -1;
	FILE *f = fopen(path, "re");

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, fmt, &v) == 1)
			break;
	fclose(f);
	return v;
}

long wt_proc_rss_kib(pid_t pid)
{
	char path[64];

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	return status_field(path, "VmRSS: %ld kB");
}

long wt_proc_wakeups(pid_t pid)
{
	char path[64];

	snprintf(path, sizeof(path), "/proc/%d/task/%d/status", (int)pid, (int)pid);
	return status_field(path, "voluntary_ctxt_switches: %ld");
}

int wt_sanitized(void)
{
	const char *s = getenv("WT_SANITIZE");

	return s && *s && strcmp(s, "0") != 0;
}
