#include "gateway/tbuf.h"

#include <stdarg.h>
#include <stdio.h>

void tbuf_put(struct tbuf *b, const char *fmt, ...)
{
	if (b->full)
		return;
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= b->cap - b->len)
		b->full = 1;
	else
		b->len += (size_t)n;
}

void tbuf_put_json(struct tbuf *b, const char *s)
{
	tbuf_put(b, "\"");
	for (; *s && !b->full; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\')
			tbuf_put(b, "\\%c", c);
		else if (c == '\n')
			tbuf_put(b, "\\n");
		else if (c < 0x20)
			tbuf_put(b, "\\u%04x", c);
		else
			tbuf_put(b, "%c", c);
	}
	tbuf_put(b, "\"");
}
