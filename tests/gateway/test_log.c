/* Tests of gateway/log.c and ws_close_name(): the line formats, and the journal's prefix. */
#include "gateway/frame.h"
#include "gateway/log.h"

#include <check.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char out[8192];

/* Runs fn with stderr sent to a file; its text in out. With journal, JOURNAL_STREAM names
 * that file as systemd names the journal's stream. */
static void capture(void (*fn)(void), int journal)
{
	char path[64];
	snprintf(path, sizeof(path), "/tmp/wsgw-logtest.%d", (int)getpid());
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	ck_assert_int_ge(fd, 0);
	struct stat st;
	fstat(fd, &st);
	char js[64];
	snprintf(js, sizeof(js), "%llu:%llu", (unsigned long long)st.st_dev, (unsigned long long)st.st_ino);
	if (journal)
		setenv("JOURNAL_STREAM", js, 1);
	else
		unsetenv("JOURNAL_STREAM");
	int se = dup(2);
	dup2(fd, 2);
	fn();
	dup2(se, 2);
	close(se);
	lseek(fd, 0, SEEK_SET);
	ssize_t n = read(fd, out, sizeof(out) - 1);
	out[n > 0 ? n : 0] = 0;
	close(fd);
	unlink(path);
}

static void lines(void)
{
	struct log_conn lc = { 17, "10.1.2.3:51234", "/chat" };
	log_info("listening on %s", "127.0.0.1:8080");
	log_write_conn(LOG_INFO, 0, &lc, "message over --max-message, closing with %u (%s)", 1009,
		       ws_close_name(1009));
	log_warn(2, "a \"quoted\" thing\nand a newline");
	log_debug("not shown at info");
}

START_TEST(text_lines)
{
	capture(lines, 0);
	char *l1 = out, *l2 = strchr(l1, '\n') + 1, *l3 = strchr(l2, '\n') + 1;
	ck_assert_msg(!strncmp(l1, "ts=", 3) && strstr(l1, " level=info pid=") &&
		      strstr(l1, " msg=\"listening on 127.0.0.1:8080\"\n"), "%s", out);
	ck_assert_msg(strstr(l2, " msg=\"message over --max-message, closing with 1009 (message too big)\" conn=17 peer=10.1.2.3:51234 route=/chat\n"),
		      "%s", l2);
	ck_assert_msg(strstr(l3, "level=warn") && strstr(l3, "msg=\"a \\\"quoted\\\" thing\\nand a newline: No such file or directory\"\n"),
		      "%s", l3);
	ck_assert_ptr_null(strstr(out, "not shown"));
	ck_assert_int_eq(strchr(l3, '\n')[1], 0); /* three lines, each whole */
}
END_TEST

START_TEST(json_lines)
{
	log_set_format(LOG_FMT_JSON);
	capture(lines, 0);
	char *l2 = strchr(out, '\n') + 1;
	ck_assert_msg(!strncmp(out, "{\"ts\":\"", 7) && strstr(out, "\"level\":\"info\",\"pid\":\""), "%s", out);
	ck_assert_msg(strstr(l2, "\"msg\":\"message over --max-message, closing with 1009 (message too big)\",\"conn\":\"17\",\"peer\":\"10.1.2.3:51234\",\"route\":\"/chat\"}\n"),
		      "%s", l2);
}
END_TEST

START_TEST(journal_prefix)
{
	capture(lines, 1);
	ck_assert_msg(!strncmp(out, "<6>level=info msg=", 18), "%s", out);
	ck_assert_msg(strstr(out, "\n<4>level=warn msg="), "%s", out);
	ck_assert_ptr_null(strstr(out, "ts="));
}
END_TEST

START_TEST(journal_elsewhere)
{
	/* A JOURNAL_STREAM that is not stderr (a redirected service) changes nothing. */
	setenv("JOURNAL_STREAM", "1:1", 1);
	capture(lines, 0);
	setenv("JOURNAL_STREAM", "1:1", 1);
	ck_assert_msg(!strncmp(out, "ts=", 3), "%s", out);
}
END_TEST

START_TEST(close_names)
{
	ck_assert_str_eq(ws_close_name(1009), "message too big");
	ck_assert_str_eq(ws_close_name(1002), "protocol error");
	ck_assert_str_eq(ws_close_name(1008), "policy violation");
	ck_assert_str_eq(ws_close_name(1011), "internal error");
	ck_assert_str_eq(ws_close_name(1013), "try again later");
	ck_assert_str_eq(ws_close_name(4000), "application");
	ck_assert_str_eq(ws_close_name(1004), "unknown");
}
END_TEST

int main(void)
{
	Suite *s = suite_create("log");
	TCase *tc = tcase_create("log");
	tcase_add_test(tc, text_lines);
	tcase_add_test(tc, json_lines);
	tcase_add_test(tc, journal_prefix);
	tcase_add_test(tc, journal_elsewhere);
	tcase_add_test(tc, close_names);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
