/* wsgw-echo: the reference worker. Every message comes back to its sender.
 * usage: wsgw-echo [--control ENDPOINT] --pool NAME */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wsgw/worker.h"

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

int main(int argc, char **argv)
{
	struct wsgw_options o = { .pool = NULL, .attach_timeout_ms = -1 };
	static const struct option opts[] = {
		{ "control", required_argument, NULL, 'c' },
		{ "pool", required_argument, NULL, 'p' },
		{ NULL, 0, NULL, 0 },
	};
	int c;
	while ((c = getopt_long(argc, argv, "c:p:", opts, NULL)) != -1) {
		if (c == 'c')
			o.control = optarg;
		else if (c == 'p')
			o.pool = optarg;
		else
			return 2;
	}
	if (!o.pool) {
		fprintf(stderr, "usage: wsgw-echo [--control ENDPOINT] --pool NAME\n");
		return 2;
	}
	/* No SA_RESTART: a signal interrupts wsgw_wait, and the loop sees `stop`. */
	struct sigaction sa = { .sa_handler = on_signal };
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);

	struct wsgw_worker *w;
	if (wsgw_attach(&o, &w) != 0)
		return 1;
	fprintf(stderr, "wsgw-echo: worker %u serving pool %s\n", wsgw_worker_id(w), o.pool);
	struct wsgw_event ev[256];
	while (!stop) {
		int n = wsgw_wait(w, ev, 256, 1000);
		for (int i = 0; i < n; i++) {
			if (ev[i].type == WSGW_EV_MESSAGE &&
			    wsgw_send(w, ev[i].conn, ev[i].binary, ev[i].data, ev[i].len) != 0)
				fprintf(stderr, "wsgw-echo: send to %llu failed\n",
					(unsigned long long)ev[i].conn);
		}
	}
	wsgw_detach(w);
	return 0;
}
