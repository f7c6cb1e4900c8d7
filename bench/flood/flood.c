/*
 * bench-flood CONTROL POOL SECS futex|eventfd: attaches to pool POOL as a shm worker (the
 * tests' shm peer, tests/lib/wtctl.h) and wakes the gateway's loop as fast as it can for
 * SECS seconds, through the doorbell's futex or the loop's eventfd, with nothing in its
 * ring: the hostile worker of the flood guard's figures (bench/flood/run). Prints how many
 * times it rang.
 */
#include "tests/lib/wstest.h"
#include "tests/lib/wtctl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv)
{
	if (argc != 5 || (strcmp(argv[4], "futex") && strcmp(argv[4], "eventfd"))) {
		fprintf(stderr, "usage: bench-flood CONTROL POOL SECS futex|eventfd\n");
		return 2;
	}
	int efd = !strcmp(argv[4], "eventfd");
	struct wt_shm_peer h;
	if (wt_shm_peer_attach(&h, argv[1], argv[2]) || (efd && h.fds[2] < 0)) {
		fprintf(stderr, "bench-flood: could not attach to pool %s at %s\n", argv[2], argv[1]);
		return 1;
	}
	int64_t end = wt_now_ms() + (int64_t)(atof(argv[3]) * 1000);
	unsigned long n = 0;
	while (wt_now_ms() < end) {
		for (int i = 0; i < 1000; i++)
			efd ? wt_shm_peer_wake(&h) : wt_shm_peer_ring(&h);
		n += 1000;
	}
	printf("bench-flood: rang %lu times through the %s\n", n, argv[4]);
	wt_shm_peer_close(&h);
	return 0;
}
