/* A worker built outside the tree with only `pkg-config --cflags --libs wsgw`: it answers
 * every message with "ext:" and the message, so a client can tell it served the echo.
 * usage: ext_worker CONTROL POOL */
#include <stdio.h>
#include <wsgw/worker.h>

int main(int argc, char **argv)
{
	if (argc != 3)
		return 2;
	struct wsgw_worker *w;
	struct wsgw_options o = { .control = argv[1], .pool = argv[2], .attach_timeout_ms = 5000 };
	if (wsgw_attach(&o, &w) != 0)
		return 1;
	fprintf(stderr, "ext_worker: worker %u serving pool %s\n", wsgw_worker_id(w), o.pool);
	for (;;) {
		struct wsgw_event ev[64];
		int n = wsgw_wait(w, ev, 64, 1000);
		for (int i = 0; i < n; i++) {
			if (ev[i].type != WSGW_EV_MESSAGE)
				continue;
			char buf[4096];
			int len = snprintf(buf, sizeof(buf), "ext:%.*s", (int)ev[i].len,
					   (const char *)ev[i].data);
			if (len >= (int)sizeof(buf))
				len = (int)sizeof(buf) - 1;
			wsgw_send(w, ev[i].conn, ev[i].binary, buf, (size_t)len);
		}
	}
}
