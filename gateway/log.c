#include "gateway/log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* Set by loop 0 at a reload while the other loops log: atomic. */
static enum log_level min_level = LOG_INFO;
static enum log_format format = LOG_FMT_TEXT;
static int journal = -1; /* -1: not looked yet */
static const char *const names[] = { "debug", "info", "warn", "error" };
static const char prio[] = { '7', '6', '4', '3' }; /* syslog's debug, info, warning, err */

void log_set_level(enum log_level lvl)
{
	__atomic_store_n(&min_level, lvl, __ATOMIC_RELAXED);
}

void log_set_format(enum log_format f)
{
	__atomic_store_n(&format, f, __ATOMIC_RELAXED);
}

int log_parse_level(const char *s, enum log_level *out)
{
	for (unsigned i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (strcmp(s, names[i]) == 0) {
			*out = (enum log_level)i;
			return 0;
		}
	}
	return -EINVAL;
}

const char *log_level_name(enum log_level lvl)
{
	return (unsigned)lvl < 4 ? names[lvl] : "?";
}

int log_enabled(enum log_level lvl)
{
	return lvl >= __atomic_load_n(&min_level, __ATOMIC_RELAXED);
}

/* systemd connects a service's stderr to the journal and says so in JOURNAL_STREAM
 * ("DEVICE:INODE"); a stderr redirected elsewhere since does not match. */
static int to_journal(void)
{
	if (journal >= 0)
		return journal;
	journal = 0;
	const char *js = getenv("JOURNAL_STREAM");
	unsigned long long dev, ino;
	struct stat st;
	if (js && sscanf(js, "%llu:%llu", &dev, &ino) == 2 && fstat(STDERR_FILENO, &st) == 0)
		journal = (unsigned long long)st.st_dev == dev && (unsigned long long)st.st_ino == ino;
	return journal;
}

struct line {
	char b[1400];
	size_t n;
};

static void add(struct line *l, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void add(struct line *l, const char *fmt, ...)
{
	if (l->n >= sizeof(l->b) - 1)
		return;
	va_list ap;
	va_start(ap, fmt);
	int r = vsnprintf(l->b + l->n, sizeof(l->b) - l->n, fmt, ap);
	va_end(ap);
	l->n += r < 0 ? 0 : (size_t)r;
	if (l->n > sizeof(l->b) - 1)
		l->n = sizeof(l->b) - 1;
}

/* s as a quoted value: JSON escapes (which logfmt readers take too). */
static void add_quoted(struct line *l, const char *s)
{
	add(l, "\"");
	for (; *s && l->n < sizeof(l->b) - 8; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\')
			add(l, "\\%c", c);
		else if (c == '\n')
			add(l, "\\n");
		else if (c < 0x20 || c == 0x7f)
			add(l, "\\u%04x", c);
		else
			l->b[l->n++] = (char)c;
	}
	add(l, "\"");
}

/* A logfmt value is quoted only when it must be. */
static void add_value(struct line *l, const char *s)
{
	int plain = *s != 0;
	for (const char *p = s; *p && plain; p++)
		plain = (unsigned char)*p > ' ' && *p != '"' && *p != '=' && *p != '\\' && *p != 0x7f;
	if (plain)
		add(l, "%s", s);
	else
		add_quoted(l, s);
}

static void field(struct line *l, int first, const char *key, const char *val)
{
	if (__atomic_load_n(&format, __ATOMIC_RELAXED) == LOG_FMT_JSON) {
		add(l, "%s\"%s\":", first ? "" : ",", key);
		add_quoted(l, val);
	} else {
		add(l, "%s%s=", first ? "" : " ", key);
		add_value(l, val);
	}
}

static void vwrite(enum log_level lvl, int err, const struct log_conn *lc, const char *fmt,
		   va_list ap)
{
	char msg[1024], num[32];
	int m = vsnprintf(msg, sizeof(msg), fmt, ap);
	if (err && m >= 0 && (size_t)m < sizeof(msg))
		snprintf(msg + m, sizeof(msg) - (size_t)m, ": %s", strerror(err));
	struct line l = { .n = 0 };
	int first = 1;
	if (to_journal())
		add(&l, "<%c>", prio[lvl]);
	if (__atomic_load_n(&format, __ATOMIC_RELAXED) == LOG_FMT_JSON)
		add(&l, "{");
	if (!to_journal()) {
		struct timespec ts;
		struct tm tm;
		char t[64];
		clock_gettime(CLOCK_REALTIME, &ts);
		gmtime_r(&ts.tv_sec, &tm);
		snprintf(t, sizeof(t), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", tm.tm_year + 1900,
			 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
			 ts.tv_nsec / 1000000);
		field(&l, 1, "ts", t);
		first = 0;
	}
	field(&l, first, "level", names[lvl]);
	if (!to_journal()) {
		snprintf(num, sizeof(num), "%d", (int)getpid());
		field(&l, 0, "pid", num);
	}
	field(&l, 0, "msg", msg);
	if (lc) {
		snprintf(num, sizeof(num), "%llu", (unsigned long long)lc->id);
		field(&l, 0, "conn", num);
		field(&l, 0, "peer", lc->peer ? lc->peer : "-");
		field(&l, 0, "route", lc->route ? lc->route : "-");
	}
	if (__atomic_load_n(&format, __ATOMIC_RELAXED) == LOG_FMT_JSON)
		add(&l, "}");
	if (l.n >= sizeof(l.b) - 1)
		l.n = sizeof(l.b) - 2;
	l.b[l.n++] = '\n';
	/* One write per line so lines from several processes do not interleave. */
	ssize_t w = write(STDERR_FILENO, l.b, l.n);
	(void)w;
}

void log_write(enum log_level lvl, int err, const char *fmt, ...)
{
	if (!log_enabled(lvl))
		return;
	va_list ap;
	va_start(ap, fmt);
	vwrite(lvl, err, NULL, fmt, ap);
	va_end(ap);
}

void log_write_conn(enum log_level lvl, int err, const struct log_conn *lc, const char *fmt, ...)
{
	if (!log_enabled(lvl))
		return;
	va_list ap;
	va_start(ap, fmt);
	vwrite(lvl, err, lc, fmt, ap);
	va_end(ap);
}
