#include "shm/sweep.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

/* Segments are named /wsgw-<gateway pid>-...: the pid says whose they are. */
int shm_sweep_stale(void (*log)(const char *name, long pid))
{
	DIR *d = opendir("/dev/shm");
	int n = 0;
	if (!d)
		return 0;
	struct dirent *e;
	while ((e = readdir(d))) {
		char *end;
		if (strncmp(e->d_name, "wsgw-", 5) != 0)
			continue;
		long pid = strtol(e->d_name + 5, &end, 10);
		if (*end != '-' || pid <= 0 || kill((pid_t)pid, 0) == 0 || errno != ESRCH)
			continue;
		char name[NAME_MAX + 2];
		snprintf(name, sizeof(name), "/%s", e->d_name);
		if (shm_unlink(name) == 0) {
			n++;
			if (log)
				log(name, pid);
		}
	}
	closedir(d);
	return n;
}
