/*
 * The old side's sections beside the connections and the workers (gateway/handover_out.c).
 * Internal to gateway/handover_run.c.
 */
#ifndef WSGW_HANDOVER_OUT_H
#define WSGW_HANDOVER_OUT_H

#include <stddef.h>
#include <stdint.h>

#include "gateway/handover_run.h"

/* PROGS: every running [worker] instance with its pidfd, then the new process's ACK
 * (nothing is sent when none runs). 0, or -errno with why (-E2BIG: more than a message's
 * descriptors). */
int ho_out_progs(const struct ho_parts *p, int chan, uint8_t *buf, char *why, size_t cap);
/* HISTORY: every topic's history with its messages, then the ACK (nothing when there is
 * none). 0, or -errno with why. */
int ho_out_history(const struct ho_parts *p, int chan, uint8_t *buf, char *why, size_t cap);

#endif
