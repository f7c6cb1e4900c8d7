/*
 * What both sides of a live upgrade share (docs/UPGRADE.md): messages on the SEQPACKET
 * channel with their descriptors, each wait bounded, and the new process's start and end.
 * Internal to gateway/handover_run.c, handover_out.c and handover_take.c.
 */
#ifndef WSGW_HANDOVER_CHAN_H
#define WSGW_HANDOVER_CHAN_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "gateway/handover.h"

/* Each step's answer must come within this; a new process that hangs is killed. */
#define STEP_MS 5000
#define MSG_MAX (HO_HDR + HO_BODY_MAX)

/* CLOCK_MONOTONIC in ms. */
uint64_t ho__now_ms(void);
/* One message: p[0..n) with its header, and nfds descriptors (<= HO_FDS_MAX), by the
 * deadline. 0, -ETIMEDOUT, -EPIPE, -errno. */
int ho__send_msg(int fd, const uint8_t *p, size_t n, const int *fds, int nfds, uint64_t deadline);
/* A header of type (and version) and body[0..n). As ho__send_msg, or -ENOMEM. */
int ho__send_simple(int fd, unsigned version, unsigned type, const void *body, size_t n, uint64_t deadline);
/* Receives one message into buf (MSG_MAX bytes): 0 with its header and *nfds descriptors
 * (close-on-exec, the caller's), -EPIPE at EOF, -EBADMSG for one that is not ours,
 * -ETIMEDOUT. */
int ho__recv_msg(int fd, uint8_t *buf, struct ho_hdr *h, int *fds, int *nfds, uint64_t deadline);
/* The old side: waits for the new process's answer of type want. 0; -EPROTONOSUPPORT
 * (REFUSE: its reason in why), -EPROTO (another message), -ETIMEDOUT, -EPIPE, -errno. */
int ho__expect(int chan, uint8_t *buf, unsigned want, char *why, size_t cap);
/* The old side: a section (CONNS, WORKERS, PROGS, HISTORY) of count records, sec[0..len),
 * in one message with the descriptors and DATA messages for the rest. 0 or as
 * ho__send_msg. */
int ho__send_section(int chan, unsigned type, const uint8_t *sec, size_t len, unsigned count,
		     const int *fds, int nfds);
/* Starts path (NULL: this binary as it was started) with this process's command line and
 * chan inherited, named in $WSGW_HANDOVER_FD. 0 and *pid, or -ENOEXEC with why. */
int ho__spawn(const char *path, int chan, pid_t *pid, char *why, size_t cap);
/* Ends the child pid (a moment to exit by itself, then SIGKILL), reaps it, and puts what
 * it said by its exit into why (when why is still empty), "... status N <when>". */
void ho__reap(pid_t pid, char *why, size_t cap, const char *when);

#endif
