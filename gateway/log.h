/*
 * Logging: one line per event worth knowing, to stderr, with a level.
 *
 * Lines are key=value ("logfmt": ts=... level=info msg="listening on ..." conn=7
 * peer=127.0.0.1:5555 route=/chat) or, with log_set_format(LOG_FMT_JSON), one JSON object
 * each. When stderr is the journal (systemd sets JOURNAL_STREAM to its device and inode),
 * each line starts with the journal's priority prefix ("<6>") and leaves the timestamp and
 * pid to the journal. One write(2) per line, so lines from several processes do not mix.
 */
#ifndef WSGW_LOG_H
#define WSGW_LOG_H

#include <stdint.h>

enum log_level { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR };
enum log_format { LOG_FMT_TEXT, LOG_FMT_JSON };

/* Lines below this level are not written. Default LOG_INFO. */
void log_set_level(enum log_level lvl);
void log_set_format(enum log_format f);
/* Parses "debug", "info", "warn" or "error"; returns -EINVAL otherwise. */
int log_parse_level(const char *s, enum log_level *out);
const char *log_level_name(enum log_level lvl);
int log_enabled(enum log_level lvl);

/* What a line about one connection names besides its message. */
struct log_conn {
	uint64_t id;
	const char *peer;  /* "ADDR:PORT"; NULL: not known */
	const char *route; /* its route's prefix; NULL: not routed yet */
};

/* err: an errno value to append as ": strerror(err)", or 0 for none. */
void log_write(enum log_level lvl, int err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* The same about connection lc (NULL: none). */
void log_write_conn(enum log_level lvl, int err, const struct log_conn *lc, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

#define log_debug(...) do { if (log_enabled(LOG_DEBUG)) log_write(LOG_DEBUG, 0, __VA_ARGS__); } while (0)
#define log_info(...) log_write(LOG_INFO, 0, __VA_ARGS__)
#define log_warn(err, ...) log_write(LOG_WARN, (err), __VA_ARGS__)
#define log_error(err, ...) log_write(LOG_ERROR, (err), __VA_ARGS__)

#endif
