/* gateway/sdnotify.c through the real libsystemd, to a notify socket this test binds the
 * way systemd does (AF_UNIX datagrams at $NOTIFY_SOCKET). */
#include "gateway/sdnotify.h"

#include <check.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

static char dir[64], sock_path[96];
static int sock = -1;

static void setup(void)
{
	snprintf(dir, sizeof(dir), "/tmp/test_sdnotify.XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(sock_path, sizeof(sock_path), "%s/notify", dir);
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", sock_path);
	sock = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	ck_assert_int_ge(sock, 0);
	ck_assert_int_eq(bind(sock, (struct sockaddr *)&sa, sizeof(sa)), 0);
	unsetenv("WATCHDOG_USEC");
	unsetenv("WATCHDOG_PID");
	unsetenv("NOTIFY_SOCKET");
}

static void teardown(void)
{
	close(sock);
	unlink(sock_path);
	rmdir(dir);
}

/* The next datagram, or "" when none comes within 2 s. */
static const char *next_msg(void)
{
	static char buf[512];
	struct pollfd p = { .fd = sock, .events = POLLIN };
	buf[0] = 0;
	if (poll(&p, 1, 2000) == 1) {
		ssize_t n = recv(sock, buf, sizeof(buf) - 1, 0);
		buf[n > 0 ? n : 0] = 0;
	}
	return buf;
}

static int pending(void)
{
	struct pollfd p = { .fd = sock, .events = POLLIN };
	return poll(&p, 1, 100);
}

START_TEST(test_noop_without_socket)
{
	ck_assert_uint_eq(sdn_init(), 0);
	ck_assert_int_eq(sdn_ready("serving"), 0);
	ck_assert_int_eq(sdn_reloading(), 0);
	ck_assert_int_eq(sdn_stopping(NULL), 0);
	ck_assert_int_eq(sdn_tick(0), 0);
	ck_assert_int_eq(pending(), 0);
}
END_TEST

START_TEST(test_ready_reloading_stopping)
{
	setenv("NOTIFY_SOCKET", sock_path, 1);
	ck_assert_uint_eq(sdn_init(), 0);
	char pid[32];
	snprintf(pid, sizeof(pid), "MAINPID=%d", (int)getpid());

	ck_assert_int_gt(sdn_ready("serving"), 0);
	const char *m = next_msg();
	ck_assert_msg(strstr(m, "READY=1\n") == m, "got '%s'", m);
	ck_assert_ptr_nonnull(strstr(m, pid));
	ck_assert_ptr_nonnull(strstr(m, "STATUS=serving"));

	ck_assert_int_gt(sdn_reloading(), 0);
	m = next_msg();
	ck_assert_msg(strncmp(m, "RELOADING=1\nMONOTONIC_USEC=", 27) == 0, "got '%s'", m);
	ck_assert_int_gt(atoll(m + 27), 0);

	ck_assert_int_gt(sdn_stopping("draining"), 0);
	m = next_msg();
	ck_assert_str_eq(m, "STOPPING=1\nSTATUS=draining");
	/* NOTIFY_SOCKET stays for the next message (unset_environment is 0). */
	ck_assert_str_eq(getenv("NOTIFY_SOCKET"), sock_path);
}
END_TEST

START_TEST(test_watchdog_half_interval)
{
	char pid[16];
	snprintf(pid, sizeof(pid), "%d", (int)getpid());
	setenv("NOTIFY_SOCKET", sock_path, 1);
	setenv("WATCHDOG_USEC", "3000000", 1);
	setenv("WATCHDOG_PID", pid, 1);
	ck_assert_uint_eq(sdn_init(), 1500);
	ck_assert_int_eq(sdn_tick(100), 1); /* the first one at once */
	ck_assert_str_eq(next_msg(), "WATCHDOG=1");
	ck_assert_int_eq(sdn_tick(1599), 0);
	ck_assert_int_eq(pending(), 0);
	ck_assert_int_eq(sdn_tick(1600), 1);
	ck_assert_str_eq(next_msg(), "WATCHDOG=1");
	/* The millisecond clock wraps after 49 days; unsigned differences carry on. */
	ck_assert_int_eq(sdn_tick(UINT32_MAX - 10), 1);
	ck_assert_str_eq(next_msg(), "WATCHDOG=1");
	ck_assert_int_eq(sdn_tick(100), 0);
	ck_assert_int_eq(sdn_tick(1500), 1);
}
END_TEST

/* A watchdog meant for another process (WATCHDOG_PID) is not ours to feed. */
START_TEST(test_watchdog_for_another_pid)
{
	setenv("NOTIFY_SOCKET", sock_path, 1);
	setenv("WATCHDOG_USEC", "3000000", 1);
	setenv("WATCHDOG_PID", "1", 1);
	ck_assert_uint_eq(sdn_init(), 0);
	ck_assert_int_eq(sdn_tick(0), 0);
	ck_assert_int_eq(pending(), 0);
}
END_TEST

/* A notify socket that went away costs a warning, never the gateway. */
START_TEST(test_dead_socket)
{
	setenv("NOTIFY_SOCKET", sock_path, 1);
	close(sock);
	unlink(sock_path);
	sock = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	ck_assert_int_lt(sdn_ready(NULL), 0);
	ck_assert_int_lt(sdn_stopping(NULL), 0);
}
END_TEST

static Suite *sdnotify_suite(void)
{
	Suite *s = suite_create("sdnotify");
	TCase *tc = tcase_create("core");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_noop_without_socket);
	tcase_add_test(tc, test_ready_reloading_stopping);
	tcase_add_test(tc, test_watchdog_half_interval);
	tcase_add_test(tc, test_watchdog_for_another_pid);
	tcase_add_test(tc, test_dead_socket);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(sdnotify_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
