#include "gateway/budget.h"

static struct {
	uint64_t limit;
	uint64_t used[BUD_KINDS];
	uint64_t refused[BUD_KINDS];
	uint64_t total;
	uint64_t kind_limit[BUD_KINDS];
	int kind_refused; /* the last refusal was a kind's own limit */
} B;

void bud_set_limit(uint64_t limit)
{
	B.limit = limit;
}

uint64_t bud_limit(void)
{
	return B.limit;
}

void bud_set_kind_limit(enum bud_kind k, uint64_t limit)
{
	B.kind_limit[k] = limit;
}

uint64_t bud_kind_limit(enum bud_kind k)
{
	return B.kind_limit[k];
}

int bud_room(enum bud_kind k, size_t n)
{
	int kind_over = B.kind_limit[k] && B.used[k] + n > B.kind_limit[k];
	if (!kind_over && (!B.limit || B.total + n <= B.limit))
		return 1;
	B.kind_refused = kind_over;
	B.refused[k]++;
	return 0;
}

const char *bud_refusal(void)
{
	return B.kind_refused ? "[limits] max-assembly" : "--memory-budget";
}

void bud_charge(enum bud_kind k, size_t n)
{
	B.used[k] += n;
	B.total += n;
}

void bud_credit(enum bud_kind k, size_t n)
{
	B.used[k] -= n;
	B.total -= n;
}

uint64_t bud_used(enum bud_kind k)
{
	return B.used[k];
}

uint64_t bud_refused(enum bud_kind k)
{
	return B.refused[k];
}

uint64_t bud_total(void)
{
	return B.total;
}

const char *bud_name(enum bud_kind k)
{
	static const char *const names[BUD_KINDS] = { "assembly", "outbound", "held", "history",
								"cluster" };
	return names[k];
}
