#include "bench/loadgen/proc.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

int lg_proc_sample(pid_t pid, struct lg_proc_sample *s)
{
	char path[64], line[512];
	unsigned long ut = 0, st = 0;
	FILE *f;
	char *p;

	s->rss_kib = -1;
	s->cpu_s = 0;
	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	f = fopen(path, "r");
	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "VmRSS: %ld", &s->rss_kib) == 1)
			break;
	fclose(f);

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	f = fopen(path, "r");
	if (!f)
		return -errno;
	p = fgets(line, sizeof(line), f);
	fclose(f);
	if (!p)
		return -EIO;
	/* comm may hold spaces and parentheses: fields start after the last ')'. */
	p = strrchr(line, ')');
	if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu",
			 &ut, &st) != 2)
		return -EIO;
	s->cpu_s = (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
	return 0;
}

int lg_sockstat(struct lg_sockstat *s)
{
	char line[256];
	long inuse, orphan, tw, alloc, mem;
	FILE *f = fopen("/proc/net/sockstat", "r");
	int ret = -ENOENT;

	memset(s, 0, sizeof(*s));
	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "TCP: inuse %ld orphan %ld tw %ld alloc %ld mem %ld",
			   &inuse, &orphan, &tw, &alloc, &mem) == 5) {
			s->tcp_inuse = inuse;
			s->tcp_tw = tw;
			s->tcp_mem_kib = mem * (sysconf(_SC_PAGESIZE) / 1024);
			ret = 0;
			break;
		}
	}
	fclose(f);
	f = fopen("/proc/meminfo", "r");
	if (f) {
		while (fgets(line, sizeof(line), f))
			if (sscanf(line, "Slab: %ld", &s->slab_kib) == 1)
				break;
		fclose(f);
	}
	return ret;
}

double lg_self_cpu_s(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
	       (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

long lg_tcp_queued(uint16_t port)
{
	char line[256];
	unsigned lport, rport, st;
	unsigned long tx, rx;
	long total = 0;
	FILE *f = fopen("/proc/net/tcp", "r");

	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, " %*d: %*x:%x %*x:%x %x %lx:%lx", &lport, &rport, &st, &tx,
			   &rx) != 5)
			continue;
		if (lport == port)
			total += (long)rx;
		else if (rport == port)
			total += (long)tx;
	}
	fclose(f);
	return total;
}
