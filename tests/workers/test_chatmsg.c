/* Tests for workers/chat/chatmsg.c: the chat worker's parser of client JSON and its JSON
 * writer. Every input is placed at the end of a page followed by a PROT_NONE page, so a
 * read past its end crashes, and is also fed cut short at every length. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "workers/chat/chatmsg.h"

#define GUARD_DATA (64 * 1024)
static char *guard_base;
static size_t page;

static void guard_setup(void)
{
	page = (size_t)sysconf(_SC_PAGESIZE);
	guard_base = mmap(NULL, GUARD_DATA + page, PROT_READ | PROT_WRITE,
			  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ck_assert_ptr_ne(guard_base, MAP_FAILED);
	ck_assert_int_eq(mprotect(guard_base + GUARD_DATA, page, PROT_NONE), 0);
}

static void guard_teardown(void)
{
	munmap(guard_base, GUARD_DATA + page);
}

static const char *guarded(const char *p, size_t n)
{
	ck_assert_uint_le(n, GUARD_DATA);
	char *dst = guard_base + GUARD_DATA - n;
	memcpy(dst, p, n);
	return dst;
}

static struct chat_req q;

static int parse_n(const char *s, size_t n, const char **why)
{
	return chat_parse(guarded(s, n), n, &q, why);
}

static int parse(const char *s, const char **why)
{
	return parse_n(s, strlen(s), why);
}

static void ok(const char *s)
{
	const char *why = "";
	ck_assert_msg(parse(s, &why) == 0, "refused %s: %s", s, why);
}

static void bad(const char *s, const char *reason)
{
	const char *why = NULL;
	ck_assert_msg(parse(s, &why) == -1, "accepted %s", s);
	ck_assert_msg(why && strcmp(why, reason) == 0, "%s: reason %s, expected %s", s,
		      why ? why : "(none)", reason);
}

START_TEST(the_four_requests)
{
	ok("{\"type\":\"join\",\"room\":\"lobby\",\"name\":\"ada\"}");
	ck_assert_int_eq(q.type, CHAT_JOIN);
	ck_assert_str_eq(q.room, "lobby");
	ck_assert_uint_eq(q.room_len, 5);
	ck_assert_str_eq(q.name, "ada");
	ck_assert_int_eq(q.again, 0);
	ok(" { \"room\" : \"r\" , \"type\" : \"leave\" } \n");
	ck_assert_int_eq(q.type, CHAT_LEAVE);
	ck_assert_str_eq(q.room, "r");
	ok("{\"type\":\"say\",\"room\":\"r\",\"text\":\"hello\\nworld\\t!\"}");
	ck_assert_int_eq(q.type, CHAT_SAY);
	ck_assert_str_eq(q.text, "hello\nworld\t!");
	ck_assert_uint_eq(q.text_len, 13);
	ok("{\"type\":\"count\",\"room\":\"r\"}");
	ck_assert_int_eq(q.type, CHAT_COUNT);
	ok("{\"type\":\"join\",\"room\":\"r\",\"name\":\"n\",\"again\":true}");
	ck_assert_int_eq(q.again, 1);
	ok("{\"type\":\"join\",\"room\":\"r\",\"name\":\"n\",\"again\":false}");
	ck_assert_int_eq(q.again, 0);
}
END_TEST

START_TEST(escapes_and_utf8)
{
	ok("{\"type\":\"say\",\"room\":\"caf\xc3\xa9\",\"text\":\"\\\"q\\\" \\\\ \\/ \\u00e9 \\u20ac \\ud83d\\ude00\"}");
	ck_assert_str_eq(q.room, "caf\xc3\xa9");
	ck_assert_str_eq(q.text, "\"q\" \\ / \xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80");
	ok("{\"type\":\"say\",\"room\":\"r\",\"text\":\"\xf0\x9f\x98\x80 \xe2\x82\xac\"}");
	bad("{\"type\":\"say\",\"room\":\"r\",\"text\":\"\\ud83d\"}", "bad JSON");       /* lone high */
	bad("{\"type\":\"say\",\"room\":\"r\",\"text\":\"\\ude00\"}", "bad JSON");       /* lone low */
	bad("{\"type\":\"say\",\"room\":\"r\",\"text\":\"\\ud83d\\u0041\"}", "bad JSON"); /* high + not low */
	bad("{\"type\":\"say\",\"room\":\"r\",\"text\":\"\\u00g1\"}", "bad JSON");
	bad("{\"type\":\"say\",\"room\":\"r\",\"text\":\"\\x41\"}", "bad JSON");
	bad("{\"type\":\"say\",\"room\":\"r\",\"text\":\"\xc0\xaf\"}", "bad JSON");      /* overlong */
	bad("{\"type\":\"say\",\"room\":\"r\",\"text\":\"\xed\xa0\x80\"}", "bad JSON");  /* surrogate */
	bad("{\"type\":\"say\",\"room\":\"r\",\"text\":\"\xf4\x90\x80\x80\"}", "bad JSON"); /* > U+10FFFF */
	bad("{\"type\":\"say\",\"room\":\"r\",\"text\":\"\xe2\x82\"}", "bad JSON");      /* cut short */
	bad("{\"type\":\"say\",\"room\":\"r\",\"text\":\"\xff\"}", "bad JSON");
}
END_TEST

START_TEST(control_characters)
{
	bad("{\"type\":\"join\",\"room\":\"a\\u0000b\",\"name\":\"n\"}", "control characters");
	bad("{\"type\":\"join\",\"room\":\"r\",\"name\":\"a\\nb\"}", "control characters");
	bad("{\"type\":\"join\",\"room\":\"r\",\"name\":\"a\x7f\"}", "control characters");
	bad("{\"type\":\"say\",\"room\":\"r\",\"text\":\"a\\u0000\"}", "control characters");
	bad("{\"type\":\"say\",\"room\":\"r\",\"text\":\"a\\r\"}", "control characters");
	bad("{\"type\":\"say\",\"room\":\"r\",\"text\":\"a\nb\"}", "bad JSON"); /* raw, unescaped */
	/* A NUL in the bytes themselves. */
	const char *why;
	static const char nul[] = "{\"type\":\"say\",\"room\":\"r\",\"text\":\"a\0b\"}";
	ck_assert_int_eq(parse_n(nul, sizeof(nul) - 1, &why), -1);
}
END_TEST

START_TEST(limits)
{
	char buf[CHAT_MSG_MAX + 64], v[CHAT_TEXT_MAX + 2];
	memset(v, 'r', sizeof(v));
	v[CHAT_ROOM_MAX] = 0;
	snprintf(buf, sizeof(buf), "{\"type\":\"count\",\"room\":\"%s\"}", v);
	ok(buf);
	ck_assert_uint_eq(q.room_len, CHAT_ROOM_MAX);
	v[CHAT_ROOM_MAX] = 'r';
	v[CHAT_ROOM_MAX + 1] = 0;
	snprintf(buf, sizeof(buf), "{\"type\":\"count\",\"room\":\"%s\"}", v);
	bad(buf, "room too long");
	/* Decoded bytes count: 11 escaped e-acutes are 22 bytes, 66 characters of JSON. */
	char esc[8 * 40] = "";
	for (int i = 0; i < 16; i++)
		strcat(esc, "\\u00e9");
	snprintf(buf, sizeof(buf), "{\"type\":\"join\",\"room\":\"r\",\"name\":\"%s\"}", esc);
	ok(buf);
	ck_assert_uint_eq(q.name_len, CHAT_NAME_MAX);
	strcat(esc, "x");
	snprintf(buf, sizeof(buf), "{\"type\":\"join\",\"room\":\"r\",\"name\":\"%s\"}", esc);
	bad(buf, "name too long");
	memset(v, 't', sizeof(v));
	v[CHAT_TEXT_MAX] = 0;
	snprintf(buf, sizeof(buf), "{\"type\":\"say\",\"room\":\"r\",\"text\":\"%s\"}", v);
	ok(buf);
	ck_assert_uint_eq(q.text_len, CHAT_TEXT_MAX);
	v[CHAT_TEXT_MAX] = 't';
	v[CHAT_TEXT_MAX + 1] = 0;
	snprintf(buf, sizeof(buf), "{\"type\":\"say\",\"room\":\"r\",\"text\":\"%s\"}", v);
	bad(buf, "text too long");
	/* The whole message is capped before it is looked at. */
	static char big[CHAT_MSG_MAX + 2];
	memset(big, ' ', sizeof(big));
	memcpy(big, "{\"type\":\"count\",\"room\":\"r\"}", 27);
	const char *why;
	ck_assert_int_eq(parse_n(big, CHAT_MSG_MAX, &why), 0);
	ck_assert_int_eq(parse_n(big, CHAT_MSG_MAX + 1, &why), -1);
	ck_assert_str_eq(why, "message too long");
}
END_TEST

START_TEST(required_fields)
{
	bad("{}", "unknown type");
	bad("{\"room\":\"r\"}", "unknown type");
	bad("{\"type\":\"dance\",\"room\":\"r\"}", "unknown type");
	bad("{\"type\":\"joinx\",\"room\":\"r\"}", "unknown type");
	bad("{\"type\":\"join-and-more-than-eight\",\"room\":\"r\"}", "unknown type");
	bad("{\"type\":\"leave\"}", "no room");
	bad("{\"type\":\"leave\",\"room\":\"\"}", "no room");
	bad("{\"type\":\"join\",\"room\":\"r\"}", "no name");
	bad("{\"type\":\"join\",\"room\":\"r\",\"name\":\"\"}", "no name");
	bad("{\"type\":\"say\",\"room\":\"r\"}", "no text");
	bad("{\"type\":\"say\",\"room\":\"r\",\"text\":\"\"}", "no text");
	bad("{\"type\":\"say\",\"type\":\"say\",\"room\":\"r\",\"text\":\"t\"}", "a key given twice");
	bad("{\"type\":\"join\",\"room\":\"r\",\"name\":\"n\",\"again\":true,\"again\":true}",
	    "a key given twice");
}
END_TEST

START_TEST(unknown_keys_and_values)
{
	ok("{\"type\":\"count\",\"room\":\"r\",\"x\":\"y\",\"a-very-long-key-name\":null,\"b\":true}");
	ck_assert_int_eq(q.type, CHAT_COUNT);
	bad("{\"type\":\"count\",\"room\":\"r\",\"n\":1}", "values are strings");
	bad("{\"type\":\"count\",\"room\":\"r\",\"o\":{}}", "values are strings");
	bad("{\"type\":\"count\",\"room\":\"r\",\"a\":[]}", "values are strings");
	bad("{\"type\":\"count\",\"room\":1}", "values are strings");
	bad("{\"type\":\"count\",\"room\":null}", "values are strings");
	bad("{\"type\":\"join\",\"room\":\"r\",\"name\":\"n\",\"again\":\"yes\"}", "bad JSON");
	/* An unknown key's string is checked too. */
	bad("{\"type\":\"count\",\"room\":\"r\",\"x\":\"\\q\"}", "bad JSON");
}
END_TEST

START_TEST(not_json)
{
	static const char *const cases[] = {
		"", " ", "[]", "\"join\"", "{", "{\"type\"", "{\"type\":", "{\"type\":\"count\"",
		"{\"type\":\"count\",}", "{\"type\":\"count\" \"room\":\"r\"}", "{type:\"count\"}",
		"{'type':'count'}", "{\"type\":\"count\",\"room\":\"r\"}}", "{\"type\":\"count\",\"room\":\"r\"} x",
		"{\"type\":\"count\",\"room\":\"r\"},{}", "{\"type\":tru}", "{\"x\":nul}",
		"\xef\xbb\xbf{\"type\":\"count\",\"room\":\"r\"}",
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char *why = NULL;
		ck_assert_msg(parse(cases[i], &why) == -1, "accepted: %s", cases[i]);
		ck_assert_msg(why != NULL, "no reason for %s", cases[i]);
	}
}
END_TEST

/* Every prefix of valid requests: refused (a prefix of one object is never an object),
 * never read past its end. */
START_TEST(every_prefix)
{
	static const char *const s[] = {
		"{\"type\":\"say\",\"room\":\"caf\xc3\xa9\",\"text\":\"\\ud83d\\ude00 \\\"x\\\"\",\"z\":null}",
		"{\"type\":\"join\",\"room\":\"r\",\"name\":\"n\",\"again\":true}",
	};
	for (size_t k = 0; k < 2; k++) {
		size_t n = strlen(s[k]);
		for (size_t i = 0; i < n; i++) {
			const char *why;
			ck_assert_msg(parse_n(s[k], i, &why) == -1, "a prefix of %zu accepted", i);
		}
		const char *why;
		ck_assert_int_eq(parse_n(s[k], n, &why), 0);
	}
}
END_TEST

START_TEST(writer_escapes)
{
	char buf[128];
	struct chat_out o;
	chat_out_init(&o, buf, sizeof(buf));
	chat_out_str(&o, "a\"b\\c\n\x01\x1f\xc3\xa9<", 11);
	chat_out_raw(&o, ",", 1);
	chat_out_u64(&o, 0);
	chat_out_raw(&o, ",", 1);
	chat_out_u64(&o, 18446744073709551615ull);
	ck_assert_int_eq(o.ok, 1);
	buf[o.len] = 0;
	ck_assert_str_eq(buf, "\"a\\\"b\\\\c\\u000a\\u0001\\u001f\xc3\xa9<\",0,18446744073709551615");
	/* What the writer makes of a parsed string, the parser reads back the same. */
	char json[256];
	struct chat_out j;
	chat_out_init(&j, json, sizeof(json));
	chat_out_raw(&j, "{\"type\":\"say\",\"room\":\"r\",\"text\":", 32);
	static const char text[] = "tab\there \"quoted\" back\\slash \xe2\x82\xac";
	chat_out_str(&j, text, sizeof(text) - 1);
	chat_out_raw(&j, "}", 1);
	ck_assert_int_eq(j.ok, 1);
	const char *why;
	ck_assert_int_eq(parse_n(json, j.len, &why), 0);
	ck_assert_str_eq(q.text, "tab\there \"quoted\" back\\slash \xe2\x82\xac");
}
END_TEST

START_TEST(writer_bounds)
{
	char buf[16];
	struct chat_out o;
	chat_out_init(&o, buf, 8);
	chat_out_str(&o, "123456", 6); /* 8 with the quotes: fits exactly */
	ck_assert_int_eq(o.ok, 1);
	ck_assert_uint_eq(o.len, 8);
	chat_out_raw(&o, "x", 1);
	ck_assert_int_eq(o.ok, 0);
	ck_assert_uint_eq(o.len, 8);
	chat_out_init(&o, buf, 8);
	chat_out_str(&o, "\x01\x02", 2); /* 14 bytes escaped */
	ck_assert_int_eq(o.ok, 0);
	ck_assert_uint_le(o.len, 8);
	chat_out_u64(&o, 1); /* stays failed */
	ck_assert_int_eq(o.ok, 0);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("chatmsg");
	TCase *tc = tcase_create("parse");
	tcase_add_checked_fixture(tc, guard_setup, guard_teardown);
	tcase_add_test(tc, the_four_requests);
	tcase_add_test(tc, escapes_and_utf8);
	tcase_add_test(tc, control_characters);
	tcase_add_test(tc, limits);
	tcase_add_test(tc, required_fields);
	tcase_add_test(tc, unknown_keys_and_values);
	tcase_add_test(tc, not_json);
	tcase_add_test(tc, every_prefix);
	tcase_add_test(tc, writer_escapes);
	tcase_add_test(tc, writer_bounds);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
