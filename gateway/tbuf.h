/*
 * Text written into a caller's buffer: the admin endpoint's answers, /metrics, the
 * settings shown. What does not fit sets full and nothing after it is written, so the
 * writer checks once, at the end.
 */
#ifndef WSGW_GATEWAY_TBUF_H
#define WSGW_GATEWAY_TBUF_H

#include <stddef.h>

struct tbuf {
	char *p;
	size_t cap, len;
	int full;
};

void tbuf_put(struct tbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* s as a JSON string, the quotes included. */
void tbuf_put_json(struct tbuf *b, const char *s);

#endif
