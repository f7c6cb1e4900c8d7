/* wtenv: one worker test's world (tests/lib/wtenv.h). */
#include "tests/lib/wtenv.h"
#include "tests/lib/wtctl.h"

#include <check.h>
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
