/*
 * The memory budget: one limit on the bytes the gateway holds for its peers — messages
 * being assembled, output queued for clients, records held for workers — so that whatever
 * clients and workers do, the gateway's buffers stay within what the operator set
 * (--memory-budget). Process-wide by design: one limit for all loop threads, which all
 * charge and check it (atomically; see bud_room for how far over a race can go).
 *
 * Accounting is done where the memory is allocated and freed (bud_charge, bud_credit);
 * decisions are made by the callers before they allocate (bud_room), each with its own
 * answer to a refusal: a close code for a client, a failed worker, a dropped reply.
 */
#ifndef WSGW_BUDGET_H
#define WSGW_BUDGET_H

#include <stddef.h>
#include <stdint.h>

enum bud_kind {
	BUD_ASSEMBLY, /* client messages being assembled (and early frames of authorizing ones) */
	BUD_OUTBOUND, /* bytes queued for clients */
	BUD_HELD,     /* records held for workers, or for connections waiting for one */
	BUD_HISTORY,  /* topics' recent messages kept for recovery (gateway/history.h) */
	BUD_CLUSTER,  /* messages for other gateways, held or in flight (gateway/cluster.h) */
	BUD_KINDS,
};

/* Sets the limit in bytes for all kinds together; 0: none. */
void bud_set_limit(uint64_t limit);
/* Several threads charge from now on (call before the second starts). */
void bud_set_shared(void);
uint64_t bud_limit(void);
/* A limit of kind k's own within the budget ([limits] max-assembly for BUD_ASSEMBLY);
 * 0: only the budget. */
void bud_set_kind_limit(enum bud_kind k, uint64_t limit);
uint64_t bud_kind_limit(enum bud_kind k);
/* Which limit the last refusal hit, for its log line: "--memory-budget" or
 * "[limits] max-assembly". */
const char *bud_refusal(void);
/* 1 when n more bytes fit the budget (always, without a limit). Counts a refusal of kind k
 * when they do not. */
int bud_room(enum bud_kind k, size_t n);
/* Records n bytes of kind k as held / released. */
void bud_charge(enum bud_kind k, size_t n);
void bud_credit(enum bud_kind k, size_t n);
/* Bytes of kind k held now, refusals of kind k so far, and the total held. */
uint64_t bud_used(enum bud_kind k);
uint64_t bud_refused(enum bud_kind k);
uint64_t bud_total(void);
/* The kind's name for logs and /metrics ("assembly", "outbound", "held", "history",
 * "cluster"). */
const char *bud_name(enum bud_kind k);

#endif
