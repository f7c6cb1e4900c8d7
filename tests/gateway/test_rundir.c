/* gateway/rundir.c with real directories, sockets, flock locks and processes. */
#include "gateway/rundir.h"

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

static char base[64];

/* Each test works in a fresh directory under /tmp, removed after it. */
static void setup(void)
{
	snprintf(base, sizeof(base), "/tmp/test_rundir.XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(base));
}

static void teardown(void)
{
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", base);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", base);
}

static void path_in(char *out, size_t cap, const char *name)
{
	snprintf(out, cap, "%s/%s", base, name);
}

static int listen_unix(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	ck_assert_int_eq(listen(fd, 4), 0);
	return fd;
}

START_TEST(test_lock_creates_dir)
{
	char dir[128], lock[160], buf[32] = { 0 };
	path_in(dir, sizeof(dir), "a/b/rt");
	struct rundir rd;
	pid_t holder = -1;
	ck_assert_int_eq(rundir_lock(&rd, dir, (gid_t)-1, &holder), 0);
	ck_assert_int_ge(rd.lock_fd, 0);
	struct stat st;
	ck_assert_int_eq(lstat(dir, &st), 0);
	ck_assert(S_ISDIR(st.st_mode));
	ck_assert_uint_eq(st.st_mode & 0777, 0750 & ~(unsigned)umask(umask(0)));
	snprintf(lock, sizeof(lock), "%s/" RUNDIR_LOCK_NAME, dir);
	int fd = open(lock, O_RDONLY);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_gt(read(fd, buf, sizeof(buf) - 1), 0);
	close(fd);
	ck_assert_int_eq(atoi(buf), getpid());
	rundir_unlock(&rd);
	ck_assert_int_eq(rd.lock_fd, -1);
	rundir_unlock(&rd); /* idempotent */
}
END_TEST

/* flock belongs to the open file description: a second open, even in this process, is a
 * second gateway as far as the lock is concerned. */
START_TEST(test_second_lock_is_refused)
{
	char dir[128];
	path_in(dir, sizeof(dir), "rt");
	struct rundir a, b;
	pid_t holder = -1;
	ck_assert_int_eq(rundir_lock(&a, dir, (gid_t)-1, &holder), 0);
	ck_assert_int_eq(rundir_lock(&b, dir, (gid_t)-1, &holder), -EBUSY);
	ck_assert_int_eq(holder, getpid());
	ck_assert_int_eq(b.lock_fd, -1);
	rundir_unlock(&a);
	ck_assert_int_eq(rundir_lock(&b, dir, (gid_t)-1, &holder), 0);
	rundir_unlock(&b);
}
END_TEST

/* The lock lasts exactly as long as its process: a SIGKILLed holder leaves no stale lock. */
START_TEST(test_lock_dies_with_its_process)
{
	char dir[128];
	path_in(dir, sizeof(dir), "rt");
	int p[2];
	ck_assert_int_eq(pipe(p), 0);
	pid_t child = fork();
	ck_assert_int_ge(child, 0);
	if (child == 0) {
		struct rundir rd;
		pid_t h;
		char ok = rundir_lock(&rd, dir, (gid_t)-1, &h) == 0 ? 'y' : 'n';
		if (write(p[1], &ok, 1) != 1)
			_exit(1);
		alarm(10); /* bounded even if the parent fails before it kills this one */
		pause();
		_exit(0);
	}
	close(p[1]);
	char ok = 0;
	ck_assert_int_eq(read(p[0], &ok, 1), 1);
	ck_assert_int_eq(ok, 'y');
	struct rundir rd;
	pid_t holder = -1;
	ck_assert_int_eq(rundir_lock(&rd, dir, (gid_t)-1, &holder), -EBUSY);
	ck_assert_int_eq(holder, child);
	kill(child, SIGKILL);
	int status;
	ck_assert_int_eq(waitpid(child, &status, 0), child);
	ck_assert_int_eq(rundir_lock(&rd, dir, (gid_t)-1, &holder), 0);
	rundir_unlock(&rd);
	close(p[0]);
}
END_TEST

START_TEST(test_unsafe_dirs_are_refused)
{
	char dir[128], link[128], file[128];
	struct rundir rd;
	pid_t holder;
	path_in(dir, sizeof(dir), "open");
	ck_assert_int_eq(mkdir(dir, 0700), 0);
	ck_assert_int_eq(chmod(dir, 0770), 0);
	ck_assert_int_eq(rundir_lock(&rd, dir, (gid_t)-1, &holder), -EPERM);
	ck_assert_int_eq(chmod(dir, 0707), 0);
	ck_assert_int_eq(rundir_lock(&rd, dir, (gid_t)-1, &holder), -EPERM);
	ck_assert_int_eq(chmod(dir, 0700), 0);
	path_in(link, sizeof(link), "link");
	ck_assert_int_eq(symlink(dir, link), 0);
	ck_assert_int_eq(rundir_lock(&rd, link, (gid_t)-1, &holder), -ENOTDIR);
	path_in(file, sizeof(file), "file");
	int fd = open(file, O_CREAT | O_WRONLY, 0600);
	ck_assert_int_ge(fd, 0);
	close(fd);
	ck_assert_int_eq(rundir_lock(&rd, file, (gid_t)-1, &holder), -ENOTDIR);
	ck_assert_int_eq(rundir_lock(&rd, dir, (gid_t)-1, &holder), 0);
	rundir_unlock(&rd);
}
END_TEST

/* --group: the directory becomes the group's, r-x for it and nothing for others. */
START_TEST(test_group_gets_the_dir)
{
	char dir[128];
	path_in(dir, sizeof(dir), "rt");
	ck_assert_int_eq(mkdir(dir, 0700), 0);
	/* Root may give it any group; anyone else one of their own. */
	gid_t gid = geteuid() == 0 ? (gid_t)4242 : getegid();
	struct rundir rd;
	pid_t holder;
	ck_assert_int_eq(rundir_lock(&rd, dir, gid, &holder), 0);
	struct stat st;
	ck_assert_int_eq(lstat(dir, &st), 0);
	ck_assert_uint_eq(st.st_gid, gid);
	ck_assert_uint_eq(st.st_mode & 0777, 0750);
	rundir_unlock(&rd);
}
END_TEST

START_TEST(test_sock_free)
{
	char path[128];
	path_in(path, sizeof(path), "control");
	ck_assert_int_eq(rundir_sock_free(path), 0); /* absent */
	int fd = listen_unix(path);
	ck_assert_int_eq(rundir_sock_free(path), -EADDRINUSE);
	close(fd); /* the file stays, as after a gateway killed with -9 */
	ck_assert_int_eq(access(path, F_OK), 0);
	ck_assert_int_eq(rundir_sock_free(path), 0);
	unlink(path);
	int f = open(path, O_CREAT | O_WRONLY, 0600);
	ck_assert_int_ge(f, 0);
	close(f);
	ck_assert_int_eq(rundir_sock_free(path), -ENOTSOCK);
}
END_TEST

START_TEST(test_claim_and_release_own_socket)
{
	char path[128];
	path_in(path, sizeof(path), "control");
	int fd = listen_unix(path);
	struct rundir_sock s;
	gid_t gid = geteuid() == 0 ? (gid_t)4242 : getegid();
	ck_assert_int_eq(rundir_sock_claim(&s, path, 0660, gid), 0);
	struct stat st;
	ck_assert_int_eq(lstat(path, &st), 0);
	ck_assert_uint_eq(st.st_mode & 0777, 0660);
	ck_assert_uint_eq(st.st_gid, gid);
	ck_assert_int_eq(rundir_sock_release(&s, path), 1);
	ck_assert_int_eq(access(path, F_OK), -1);
	ck_assert_int_eq(rundir_sock_release(&s, path), 0); /* released once */
	close(fd);
}
END_TEST

/* Another process bound a new socket at the path since: that one is not ours to remove. */
START_TEST(test_release_leaves_anothers_socket)
{
	char path[128];
	path_in(path, sizeof(path), "control");
	int mine = listen_unix(path);
	struct rundir_sock s;
	ck_assert_int_eq(rundir_sock_claim(&s, path, 0600, (gid_t)-1), 0);
	ck_assert_int_eq(unlink(path), 0);
	int theirs = listen_unix(path);
	ck_assert_int_eq(rundir_sock_release(&s, path), 0);
	ck_assert_int_eq(rundir_sock_free(path), -EADDRINUSE);
	close(mine);
	close(theirs);
}
END_TEST

static Suite *rundir_suite(void)
{
	Suite *s = suite_create("rundir");
	TCase *tc = tcase_create("core");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_lock_creates_dir);
	tcase_add_test(tc, test_second_lock_is_refused);
	tcase_add_test(tc, test_lock_dies_with_its_process);
	tcase_add_test(tc, test_unsafe_dirs_are_refused);
	tcase_add_test(tc, test_group_gets_the_dir);
	tcase_add_test(tc, test_sock_free);
	tcase_add_test(tc, test_claim_and_release_own_socket);
	tcase_add_test(tc, test_release_leaves_anothers_socket);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(rundir_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
