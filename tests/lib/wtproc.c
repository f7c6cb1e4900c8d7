/* wtproc: worker processes for tests, and the test worker itself. */
#include "tests/lib/wstest.h"
#include "tests/lib/wtproc.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "wsgw/worker.h"

#define WT_PROC_MAX 32


/* ---- registries: what the exit handler cleans up ------------------------ */

/*
 * Check forks each test from a parent that may have registered entries too: an entry is
 * acted on only by the process that made it.
 */
struct proc_entry {
	pid_t owner, pid;
	char log_path[192];
};
struct dir_entry {
	pid_t owner;
	char dir[128];
};
struct gw_entry {
	pid_t owner, pid;
};

static char base_dir[96];       /* see wt_fixture_setup */
static struct proc_entry procs[WT_PROC_MAX];
static struct dir_entry dirs[WT_PROC_MAX];
static struct gw_entry gws[WT_PROC_MAX];
static int atexit_done;

static void at_exit(void)
{
	pid_t me = getpid();

	for (int i = 0; i < WT_PROC_MAX; i++) {
		struct proc_entry *e = &procs[i];

		if (!e->pid || e->owner != me)
			continue;
		fprintf(stderr, "wtproc: test exited with pid %d still running: killing it\n",
			(int)e->pid);
		kill(e->pid, SIGKILL);
		waitpid(e->pid, NULL, 0);
		wt_dump("worker log", e->log_path, 20);
		e->pid = 0;
	}
	/* wstest's exit handler (registered after this one) has killed its gateways by now. */
	for (int i = 0; i < WT_PROC_MAX; i++)
		if (gws[i].pid && gws[i].owner == me) {
			wt_shm_remove(gws[i].pid);
			gws[i].pid = 0;
		}
	for (int i = 0; i < WT_PROC_MAX; i++)
		if (dirs[i].dir[0] && dirs[i].owner == me)
			wt_dir_remove(dirs[i].dir);
}

static void reg_atexit(void)
{
	if (!atexit_done) {
		atexit(at_exit);
		atexit_done = 1;
	}
}

static void proc_reg(const struct wt_proc *p)
{
	reg_atexit();
	for (int i = 0; i < WT_PROC_MAX; i++)
		if (!procs[i].pid || procs[i].owner != getpid()) {
			procs[i].owner = getpid();
			procs[i].pid = p->pid;
			snprintf(procs[i].log_path, sizeof(procs[i].log_path), "%s", p->log_path);
			return;
		}
}

static void proc_unreg(pid_t pid)
{
	for (int i = 0; i < WT_PROC_MAX; i++)
		if (procs[i].pid == pid && procs[i].owner == getpid())
			procs[i].pid = 0;
}

void wt_track_gateway(pid_t gw_pid)
{
	if (base_dir[0]) {
		char path[160];
		FILE *f;

		snprintf(path, sizeof(path), "%s/gateways", base_dir);
		f = fopen(path, "ae");
		if (f) {
			fprintf(f, "%d\n", (int)gw_pid);
			fclose(f);
		}
	}
	reg_atexit();
	for (int i = 0; i < WT_PROC_MAX; i++)
		if (!gws[i].pid || gws[i].owner != getpid()) {
			gws[i].owner = getpid();
			gws[i].pid = gw_pid;
			return;
		}
}

/* ---- temp dirs ---------------------------------------------------------- */

/*
 * A failed ck_assert leaves the forked test with _exit(): no exit handler runs. So the
 * Check parent makes a base dir per test case (unchecked fixture, inherited by the fork)
 * that holds the test's dirs and a list of its gateway PIDs, and removes it all afterwards.
 */
static void remove_tree(const char *dir, int depth)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	char path[512];

	if (!d)
		return;
	while ((de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		if (unlink(path) < 0 && errno == EISDIR && depth > 0)
			remove_tree(path, depth - 1);
	}
	closedir(d);
	rmdir(dir);
}

static int make_dir(char *dir, size_t cap, const char *parent)
{
	if (snprintf(dir, cap, "%s/wtw.XXXXXX", parent) >= (int)cap)
		return -ENAMETOOLONG;
	return mkdtemp(dir) ? 0 : -errno;
}

static const char *tmp_root(void)
{
	const char *tmp = getenv("TMPDIR");

	/* ipc:// paths are bounded by sun_path (108 bytes): keep dirs short. */
	return tmp && *tmp && strlen(tmp) <= 40 ? tmp : "/tmp";
}

void wt_fixture_setup(void)
{
	if (make_dir(base_dir, sizeof(base_dir), tmp_root()))
		base_dir[0] = 0;
}

void wt_fixture_teardown(void)
{
	char path[160];
	FILE *f;
	int pid;

	if (!base_dir[0])
		return;
	snprintf(path, sizeof(path), "%s/gateways", base_dir);
	f = fopen(path, "re");
	while (f && fscanf(f, "%d", &pid) == 1)
		if (wt_shm_remove(pid))
			fprintf(stderr, "wtproc: removed leftover segments of gateway %d\n", pid);
	if (f)
		fclose(f);
	remove_tree(base_dir, 2);
	base_dir[0] = 0;
}

int wt_dir_new(char *dir, size_t cap)
{
	int rc = make_dir(dir, cap, base_dir[0] ? base_dir : tmp_root());

	if (rc)
		return rc;
	reg_atexit();
	for (int i = 0; i < WT_PROC_MAX; i++)
		if (!dirs[i].dir[0] || dirs[i].owner != getpid()) {
			dirs[i].owner = getpid();
			snprintf(dirs[i].dir, sizeof(dirs[i].dir), "%s", dir);
			break;
		}
	return 0;
}

void wt_dir_remove(const char *dir)
{
	remove_tree(dir, 0);
	for (int i = 0; i < WT_PROC_MAX; i++)
		if (dirs[i].owner == getpid() && !strcmp(dirs[i].dir, dir))
			dirs[i].dir[0] = 0;
}

/* ---- processes ---------------------------------------------------------- */

int wt_proc_spawn(struct wt_proc *p, const char *const *argv, const char *log_path)
{
	int logfd;

	memset(p, 0, sizeof(*p));
	snprintf(p->log_path, sizeof(p->log_path), "%s", log_path);
	logfd = open(log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	if (logfd < 0)
		return -errno;
	pid_t pid = wt_spawn(argv, logfd);
	if (pid < 0) {
		close(logfd);
		return pid;
	}
	close(logfd);
	p->pid = pid;
	proc_reg(p);
	return 0;
}

void wt_build_path(char *out, size_t cap, const char *name)
{
	const char *build = getenv("WSGW_BUILD");

	snprintf(out, cap, "%s/%s", build && *build ? build : "build", name);
}

int wt_start_echo(struct wt_proc *p, const char *control, const char *pool,
		   const char *log_path)
{
	char prog[512];

	wt_build_path(prog, sizeof(prog), "wsgw-echo");
	const char *argv[] = { prog, "--control", control, "--pool", pool, NULL };
	return wt_proc_spawn(p, argv, log_path);
}

int wt_start_test_worker(struct wt_proc *p, const char *control, const char *pool,
			  const char *log_path)
{
	char self[512];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);

	if (n < 0)
		return -errno;
	self[n] = 0;
	const char *argv[] = { self, "--as-worker", "--control", control, "--pool", pool, NULL };
	return wt_proc_spawn(p, argv, log_path);
}

int wt_proc_kill(struct wt_proc *p, int sig)
{
	if (!p->pid)
		return -ESRCH;
	return kill(p->pid, sig) < 0 ? -errno : 0;
}

int wt_proc_reap(struct wt_proc *p, int timeout_ms)
{
	if (!p->pid)
		return 0;
	int rc = wt_waitpid(p->pid, &p->status, timeout_ms);
	if (rc == 0) {
		proc_unreg(p->pid);
		p->pid = 0;
	}
	return rc;
}

int wt_proc_stop(struct wt_proc *p, int timeout_ms)
{
	if (!p->pid)
		return p->status;
	kill(p->pid, SIGTERM);
	if (wt_proc_reap(p, timeout_ms) == 0)
		return p->status;
	kill(p->pid, SIGKILL);
	wt_proc_reap(p, 5000);
	return -ETIMEDOUT;
}

/* ---- logs --------------------------------------------------------------- */

static char *slurp(const char *path)
{
	FILE *f = fopen(path, "re");
	char *buf = NULL;
	size_t n = 0, cap = 0, r;

	if (!f)
		return NULL;
	do {
		if (n + 4096 + 1 > cap) {
			cap = (n + 4096 + 1) * 2;
			buf = realloc(buf, cap);
			if (!buf)
				abort();
		}
		r = fread(buf + n, 1, cap - n - 1, f);
		n += r;
	} while (r > 0);
	fclose(f);
	buf[n] = 0;
	return buf;
}

int wt_count_file(const char *path, const char *needle)
{
	char *s = slurp(path);
	int count = 0;

	for (const char *p = s; p && (p = strstr(p, needle)); p += strlen(needle))
		count++;
	free(s);
	return count;
}

int wt_wait_file(const char *path, const char *needle, int timeout_ms)
{
	int64_t deadline = wt_now_ms() + timeout_ms;

	for (;;) {
		if (wt_count_file(path, needle) > 0)
			return 1;
		if (wt_now_ms() >= deadline)
			return 0;
		wt_sleep_ms(10);
	}
}

int wt_last_attached(const char *path, const char *pool, pid_t pid)
{
	char needle[160];
	char *s = slurp(path);
	int id = -ENOENT;

	snprintf(needle, sizeof(needle), " attached to pool %s (pid %d,", pool, (int)pid);
	/* The last one: a worker that attached again got a new id. */
	const char *p = NULL;
	for (const char *q = s; q && (q = strstr(q, needle)); q++)
		p = q;
	if (p) {
		const char *line = p;

		while (line > s && line[-1] != '\n')
			line--;
		const char *w = strstr(line, "worker ");
		if (w && w < p)
			id = atoi(w + 7);
	}
	free(s);
	return id;
}

int wt_wait_attached(const char *gw_log, const char *pool, pid_t pid, int timeout_ms)
{
	int64_t deadline = wt_now_ms() + timeout_ms;

	for (;;) {
		int id = wt_last_attached(gw_log, pool, pid);

		if (id > 0)
			return id;
		if (wt_now_ms() >= deadline)
			return -ETIMEDOUT;
		wt_sleep_ms(10);
	}
}

int wt_count_attached(const char *gw_log, const char *pool, pid_t pid)
{
	char needle[160];

	snprintf(needle, sizeof(needle), " attached to pool %s (pid %d,", pool, (int)pid);
	return wt_count_file(gw_log, needle);
}

int wt_wait_gone(const char *gw_log, const char *pool, pid_t pid, int timeout_ms)
{
	char needle[160];

	snprintf(needle, sizeof(needle), "(pool %s, pid %d) gone", pool, (int)pid);
	return wt_wait_file(gw_log, needle, timeout_ms);
}

void wt_dump(const char *title, const char *path, int max_lines)
{
	char *s = slurp(path);

	if (!s)
		return;
	size_t n = strlen(s), start = n;
	int lines = 0;

	while (start > 0) {
		if (s[start - 1] == '\n' && start != n && ++lines >= max_lines)
			break;
		start--;
	}
	fprintf(stderr, "---- %s (%s, last %d lines) ----\n%s%s---- end ----\n", title, path,
		max_lines, s + start, n && s[n - 1] != '\n' ? "\n" : "");
	free(s);
}

/* ---- shared memory ------------------------------------------------------ */

static int shm_walk(pid_t gw_pid, int remove)
{
	char prefix[64], path[320];
	DIR *d = opendir("/dev/shm");
	struct dirent *de;
	int n = 0;

	if (!d)
		return 0;
	snprintf(prefix, sizeof(prefix), "wsgw-%d-", (int)gw_pid);
	while ((de = readdir(d))) {
		if (strncmp(de->d_name, prefix, strlen(prefix)))
			continue;
		n++;
		if (remove) {
			snprintf(path, sizeof(path), "/dev/shm/%s", de->d_name);
			unlink(path);
		}
	}
	closedir(d);
	return n;
}

int wt_shm_remove(pid_t gw_pid)
{
	return shm_walk(gw_pid, 1);
}

int wt_shm_count(pid_t gw_pid)
{
	return shm_walk(gw_pid, 0);
}

/* ---- the test worker ---------------------------------------------------- */

/* Connections this worker knows, open addressing; 0 is the empty key. */
#define TW_SLOTS 8192

struct tw_conn {
	uint64_t id;
	char flag;              /* 'o' opened here, 'r' resumed here */
};

static struct tw_conn tw_conns[TW_SLOTS];

static struct tw_conn *tw_find(uint64_t id, int insert)
{
	size_t i = (size_t)(id * 0x9E3779B97F4A7C15ull >> 51) & (TW_SLOTS - 1);

	for (size_t k = 0; k < TW_SLOTS; k++, i = (i + 1) & (TW_SLOTS - 1)) {
		if (tw_conns[i].id == id)
			return &tw_conns[i];
		if (!tw_conns[i].id)
			return insert ? &tw_conns[i] : NULL;
	}
	return NULL;
}

static void tw_forget(uint64_t id)
{
	struct tw_conn *c = tw_find(id, 0);

	if (!c)
		return;
	/* Backward-shift deletion keeps every probe chain intact. */
	size_t i = (size_t)(c - tw_conns);
	tw_conns[i].id = 0;
	for (size_t j = (i + 1) & (TW_SLOTS - 1); tw_conns[j].id; j = (j + 1) & (TW_SLOTS - 1)) {
		struct tw_conn moved = tw_conns[j];

		tw_conns[j].id = 0;
		*tw_find(moved.id, 1) = moved;
	}
}

static volatile sig_atomic_t tw_stop;

static void tw_on_signal(int sig)
{
	(void)sig;
	tw_stop = 1;
}

static void tw_open(struct wsgw_worker *w, const struct wsgw_event *ev)
{
	const char *path = "";
	size_t plen = 0;
	char pbuf[256];

	const char *peer = "";
	size_t peer_n = 0;
	wsgw_field(ev, ":path", &path, &plen);
	wsgw_field(ev, ":peer", &peer, &peer_n);
	if (plen >= sizeof(pbuf))
		plen = sizeof(pbuf) - 1;
	memcpy(pbuf, path, plen);
	pbuf[plen] = 0;
	fprintf(stderr, "open %llu resumed=%d authorize=%d path=%s peer=%.*s\n",
		(unsigned long long)ev->conn, ev->resumed, ev->authorize, pbuf, (int)peer_n, peer);
	struct tw_conn *c = tw_find(ev->conn, 1);
	if (c) {
		c->id = ev->conn;
		c->flag = ev->resumed ? 'r' : 'o';
	}
	if (!ev->authorize)
		return;
	if (strstr(pbuf, "/ok")) {
		static const char *const hdrs[] = { "X-Test: yes", NULL };

		if (wsgw_accept(w, ev->conn, "chat.v1", hdrs))
			fprintf(stderr, "accept %llu failed\n", (unsigned long long)ev->conn);
	} else if (strstr(pbuf, "/no")) {
		if (wsgw_reject(w, ev->conn, 403, "no"))
			fprintf(stderr, "reject %llu failed\n", (unsigned long long)ev->conn);
	}
}

static void tw_message(struct wsgw_worker *w, const struct wsgw_event *ev)
{
	struct tw_conn *c = tw_find(ev->conn, 0);
	if (ev->len > 6 && ev->len < 64 && !memcmp(ev->data, "later:", 6))
		wt_sleep_ms(atoi((const char *)ev->data + 6)); /* the digits end at a space */
	char head[64];
	int hn = snprintf(head, sizeof(head), "w%u c%llu %c|", wsgw_worker_id(w),
			  (unsigned long long)ev->conn, c ? c->flag : '-');
	char *out = wsgw_send_begin(w, (size_t)hn + ev->len);

	if (!out) {
		fprintf(stderr, "send_begin %llu: %s\n", (unsigned long long)ev->conn,
			strerror(errno));
		return;
	}
	memcpy(out, head, (size_t)hn);
	memcpy(out + hn, ev->data, ev->len);
	if (wsgw_send_commit(w, ev->conn, ev->binary, (size_t)hn + ev->len))
		fprintf(stderr, "send %llu failed\n", (unsigned long long)ev->conn);
	const char *d = ev->data, *colon;
	if (ev->len > 4 && !memcmp(d, "sub:", 4) &&
	    wsgw_subscribe(w, ev->conn, d + 4, ev->len - 4))
		fprintf(stderr, "subscribe %llu failed\n", (unsigned long long)ev->conn);
	if (ev->len > 4 && !memcmp(d, "pub:", 4) && (colon = memchr(d + 4, ':', ev->len - 4)) &&
	    wsgw_publish(w, d + 4, (size_t)(colon - d - 4), ev->binary, colon + 1,
			 ev->len - (size_t)(colon + 1 - d), 0))
		fprintf(stderr, "publish of %llu failed\n", (unsigned long long)ev->conn);
	if (ev->len > 6 && ev->len < 32 && !memcmp(ev->data, "flood:", 6)) {
		/* N messages of 16 KiB to this client, faster than a client that does not read
		 * can take them: exercises --max-outbound and its policy. */
		static char blob[16384];
		char num[32];

		memset(blob, 'f', sizeof(blob));
		memcpy(num, (const char *)ev->data + 6, ev->len - 6);
		num[ev->len - 6] = 0;
		int n = atoi(num), sent = 0;
		for (int i = 0; i < n; i++)
			sent += wsgw_send(w, ev->conn, 1, blob, sizeof(blob)) == 0;
		fprintf(stderr, "flood %llu sent %d\n", (unsigned long long)ev->conn, sent);
	}
	if (ev->len > 6 && ev->len < 32 && !memcmp(ev->data, "stall:", 6)) {
		char num[32];

		memcpy(num, (const char *)ev->data + 6, ev->len - 6);
		num[ev->len - 6] = 0;
		wsgw_flush(w);
		fprintf(stderr, "stall %s ms\n", num);
		/* Not calling wsgw_wait: the to-worker ring fills up behind us. */
		wt_sleep_ms(atoi(num));
		fprintf(stderr, "stall done\n");
	}
}

int wt_worker_main(int argc, char **argv)
{
	struct wsgw_options o = { .attach_timeout_ms = 5000 };
	static const struct option opts[] = {
		{ "as-worker", no_argument, NULL, 'a' },
		{ "control", required_argument, NULL, 'c' },
		{ "pool", required_argument, NULL, 'p' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (c == 'c')
			o.control = optarg;
		else if (c == 'p')
			o.pool = optarg;
		else if (c != 'a')
			return 2;
	}
	struct sigaction sa = { .sa_handler = tw_on_signal };
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);

	struct wsgw_worker *w;
	int rc = wsgw_attach(&o, &w);
	if (rc) {
		fprintf(stderr, "attach failed: %s\n", strerror(-rc));
		return 1;
	}
	fprintf(stderr, "attached id %u pid %d\n", wsgw_worker_id(w), (int)getpid());

	static struct wsgw_event ev[256];
	while (!tw_stop) {
		int n = wsgw_wait(w, ev, 256, 200);

		for (int i = 0; i < n; i++) {
			unsigned long long id = (unsigned long long)ev[i].conn;

			switch (ev[i].type) {
			case WSGW_EV_OPEN:
				tw_open(w, &ev[i]);
				break;
			case WSGW_EV_MESSAGE:
				tw_message(w, &ev[i]);
				break;
			case WSGW_EV_CLOSE:
				fprintf(stderr, "close %llu %u\n", id, ev[i].code);
				tw_forget(ev[i].conn);
				/* A command for a closed connection: must come back as GONE. */
				if (wsgw_send(w, ev[i].conn, 0, "late", 4))
					fprintf(stderr, "late send %llu failed\n", id);
				break;
			case WSGW_EV_GONE:
				fprintf(stderr, "gone %llu\n", id);
				break;
			case WSGW_EV_ERROR:
				fprintf(stderr, "error %.*s\n", (int)ev[i].len, (const char *)ev[i].data);
				break;
			case WSGW_EV_RESET:
				fprintf(stderr, "reset id %u\n", wsgw_worker_id(w));
				memset(tw_conns, 0, sizeof(tw_conns));
				break;
			default:
				fprintf(stderr, "event type %d\n", ev[i].type);
			}
		}
	}
	wsgw_detach(w);
	return 0;
}

Suite *wt_suite(const char *name, const struct wt_case *cases, size_t n)
{
	Suite *s = suite_create(name);
	for (size_t i = 0; i < n; i++) {
		TCase *tc = tcase_create(cases[i].name);
		tcase_set_timeout(tc, cases[i].timeout);
		tcase_add_unchecked_fixture(tc, wt_fixture_setup, wt_fixture_teardown);
		tcase_add_loop_test(tc, cases[i].t, 0, cases[i].loops ? cases[i].loops : 1);
		suite_add_tcase(s, tc);
	}
	return s;
}

int wt_run_suite(Suite *s)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	signal(SIGPIPE, SIG_IGN);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_ENV);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
