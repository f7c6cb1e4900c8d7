#include "shm/spin.h"

void shm_spin_init(struct shm_spin *s, uint32_t min_ns, uint32_t max_ns)
{
	s->ns = s->min_ns = min_ns;
	shm_spin_set_max(s, max_ns);
}

void shm_spin_set_max(struct shm_spin *s, uint32_t max_ns)
{
	s->max_ns = max_ns > SHM_SPIN_MAX_NS ? SHM_SPIN_MAX_NS : max_ns;
	if (s->min_ns > s->max_ns)
		s->min_ns = s->max_ns;
	if (s->ns > s->max_ns)
		s->ns = s->max_ns;
}

void shm_spin_end(struct shm_spin *s, const struct shm_spin_wait *t, bool work)
{
	if (!t->sleeping)
		return; /* work came while spinning: the budget stays */
	/* The wake-up's own latency is part of the wait: work that came just inside the
	 * ceiling but woke us just past it shrinks the budget. That errs towards sleeping. */
	uint64_t waited = shm_spin_now_ns() - t->start;
	if (work && waited <= s->max_ns) {
		uint32_t grown = s->ns ? s->ns * 2 : SHM_SPIN_START_NS;
		s->ns = grown > s->max_ns ? s->max_ns : grown;
	} else {
		s->ns /= 2;
		if (s->ns < SHM_SPIN_START_NS || s->ns < s->min_ns)
			s->ns = s->min_ns;
	}
}
