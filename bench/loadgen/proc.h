/* What the kernel says about the processes under test: RSS, CPU time, socket memory. */
#ifndef LG_PROC_H
#define LG_PROC_H

#include <stdint.h>
#include <sys/types.h>

struct lg_proc_sample {
	long rss_kib;		/* VmRSS; -1 when the process is gone */
	double cpu_s;		/* utime + stime */
};

/* Fills s from /proc/PID/status and /proc/PID/stat; returns 0 or -errno (s->rss_kib = -1). */
int lg_proc_sample(pid_t pid, struct lg_proc_sample *s);

struct lg_sockstat {
	long tcp_inuse;
	long tcp_tw;
	long tcp_mem_kib;	/* "mem" is in pages: socket buffers only */
	long slab_kib;		/* /proc/meminfo Slab: the sockets themselves live there */
};

/* Reads the TCP line of /proc/net/sockstat and Slab of /proc/meminfo; returns 0 or -errno. */
int lg_sockstat(struct lg_sockstat *s);

/* Bytes still queued in the kernel on TCP connections to port (host byte order):
 * the receive queues of the server's sockets plus the send queues of the clients'.
 * 0 means the server has read everything sent to it. Returns bytes or -errno. */
long lg_tcp_queued(uint16_t port);

/* CPU seconds (user + system) this process has used. */
double lg_self_cpu_s(void);

#endif
