/* Logging: one line per event worth knowing, to stderr, with a level. */
#ifndef WSGW_LOG_H
#define WSGW_LOG_H

enum log_level { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR };

/* Lines below this level are not written. Default LOG_INFO. */
void log_set_level(enum log_level lvl);
/* Parses "debug", "info", "warn" or "error"; returns -EINVAL otherwise. */
int log_parse_level(const char *s, enum log_level *out);
int log_enabled(enum log_level lvl);

/* err: an errno value to append as ": strerror(err)", or 0 for none. */
void log_write(enum log_level lvl, int err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#define log_debug(...) do { if (log_enabled(LOG_DEBUG)) log_write(LOG_DEBUG, 0, __VA_ARGS__); } while (0)
#define log_info(...) log_write(LOG_INFO, 0, __VA_ARGS__)
#define log_warn(err, ...) log_write(LOG_WARN, (err), __VA_ARGS__)
#define log_error(err, ...) log_write(LOG_ERROR, (err), __VA_ARGS__)

#endif
