/*
 * Cross-process stress of the shm rings: four forked processes over one
 * memfd segment, a producer and a consumer per direction, both directions at
 * once. Every record carries its sequence number (conn), a length and a
 * content derived from it, and a checksum (flags); the consumer regenerates
 * and compares all of it. Producers and consumers pause now and then so the
 * other side must sleep in the kernel (empty ring, full ring) and be woken;
 * a lost wake-up shows up as a wait timing out, which fails the test.
 *
 * WSGW_STRESS_RECORDS overrides the record count per direction (10 million).
 */
#include <check.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "shm/ring.h"
#include "shm/segment.h"

#define PAUSE_EVERY (1u << 20) /* records between forced pauses */
#define PAUSE_NS 3000000L      /* long enough for the peer's spin to run out */
#define SPIN 200
#define WAIT_MS 10000          /* a wait this long means a lost wake-up */

static uint64_t splitmix64(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ull;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

/* Mostly small records, some medium, a few up to the ring's maximum. */
static uint32_t gen_len(uint64_t seq, uint32_t max)
{
	uint64_t r = splitmix64(seq * 2 + 1);

	if ((r & 4095) == 0)
		return (uint32_t)((r >> 12) % (max + 1));
	if ((r & 63) == 0)
		return (uint32_t)((r >> 12) % 2049);
	return (uint32_t)((r >> 12) % 129);
}

static uint16_t gen_type(uint64_t seq)
{
	return (uint16_t)(splitmix64(seq) & 0x7fff);
}

/* Writes len bytes derived from seq; returns their 16-bit checksum. */
static uint16_t gen_payload(uint64_t seq, unsigned char *p, uint32_t len)
{
	uint64_t x = splitmix64(seq ^ 0x5eed), sum = 0;
	uint32_t i;

	for (i = 0; i + 8 <= len; i += 8) {
		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		memcpy(p + i, &x, 8);
		sum = sum * 31 + x;
	}
	if (i < len) {
		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		memcpy(p + i, &x, len - i);
		sum = sum * 31 + (x & (~0ull >> (64 - 8 * (len - i))));
	}
	return (uint16_t)(sum ^ sum >> 16 ^ sum >> 32 ^ sum >> 48);
}

/* Checks len bytes against the content of seq; returns their checksum, or
 * -1 on the first mismatch. */
static int verify_payload(uint64_t seq, const unsigned char *p, uint32_t len)
{
	uint64_t x = splitmix64(seq ^ 0x5eed), sum = 0, got;
	uint32_t i;

	for (i = 0; i + 8 <= len; i += 8) {
		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		memcpy(&got, p + i, 8);
		if (got != x)
			return -1;
		sum = sum * 31 + got;
	}
	if (i < len) {
		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		got = 0;
		memcpy(&got, p + i, len - i);
		if (got != (x & (~0ull >> (64 - 8 * (len - i)))))
			return -1;
		sum = sum * 31 + got;
	}
	return (uint16_t)(sum ^ sum >> 16 ^ sum >> 32 ^ sum >> 48);
}

struct side_result {
	uint64_t records, bytes, sleeps, wakes;
	int err;
	char msg[160];
};

static struct side_result *results; /* MAP_SHARED, one per role */

static void pause_briefly(void)
{
	struct timespec ts = { 0, PAUSE_NS };

	nanosleep(&ts, NULL);
}

static int side_fail(struct side_result *res, int err, const char *what, uint64_t seq)
{
	res->err = err ? err : -1;
	snprintf(res->msg, sizeof(res->msg), "%s at seq %llu: %s", what,
		 (unsigned long long)seq, strerror(err < 0 ? -err : err));
	return 1;
}

static int run_producer(struct shm_ring *r, uint64_t n, struct side_result *res)
{
	uint32_t max = shm_ring_max_payload(r);
	uint64_t seq = 0;

	while (seq < n) {
		/* A batch: up to 64 records, one notify. */
		for (unsigned b = 0; b < 64 && seq < n; b++) {
			uint32_t len = gen_len(seq, max);
			void *p;
			int err = shm_ring_reserve(r, len, &p);

			if (err == -ENOBUFS) {
				shm_ring_notify(r);
				err = shm_ring_wait_space(r, len, SPIN, WAIT_MS);
				if (err)
					return side_fail(res, err, "wait_space", seq);
				continue;
			}
			if (err)
				return side_fail(res, err, "reserve", seq);
			shm_ring_commit(r, gen_type(seq), gen_payload(seq, p, len), seq, len);
			res->bytes += len;
			seq++;
			if (seq % PAUSE_EVERY == 0) {
				shm_ring_notify(r);
				pause_briefly();
			}
		}
		shm_ring_notify(r);
	}
	res->records = seq;
	res->sleeps = r->sleeps;
	res->wakes = r->wakes;
	return 0;
}

static int run_consumer(struct shm_ring *r, uint64_t n, struct side_result *res)
{
	uint32_t max = shm_ring_max_payload(r);
	uint64_t seq = 0;

	while (seq < n) {
		struct shm_ring_iter it;
		struct shm_rec rec;
		bool pause = false;
		int got = shm_ring_peek(r, &it);

		if (got < 0)
			return side_fail(res, got, "peek", seq);
		if (got == 0) {
			got = shm_ring_wait_data(r, SPIN, WAIT_MS);
			if (got)
				return side_fail(res, got, "wait_data", seq);
			continue;
		}
		while ((got = shm_ring_next(&it, &rec)) == 1) {
			if (rec.conn != seq)
				return side_fail(res, EILSEQ, "sequence", seq);
			if (rec.len != gen_len(seq, max) || rec.type != gen_type(seq))
				return side_fail(res, EBADMSG, "length or type", seq);
			if (verify_payload(seq, rec.payload, rec.len) != rec.flags)
				return side_fail(res, EBADMSG, "payload or checksum", seq);
			res->bytes += rec.len;
			seq++;
			if (seq % PAUSE_EVERY == 0)
				pause = true;
		}
		if (got < 0)
			return side_fail(res, got, "next", seq);
		shm_ring_release(r, &it);
		if (pause)
			pause_briefly();
	}
	res->records = seq;
	res->sleeps = r->sleeps;
	res->wakes = r->wakes;
	return 0;
}

/* Child: attaches the segment by fd like a worker would, opens its side. */
static void child(int fd, enum shm_seg_dir dir, enum shm_ring_role role, uint64_t n,
		  struct side_result *res)
{
	struct shm_seg *seg;
	struct shm_ring r;
	int err;

	prctl(PR_SET_PDEATHSIG, SIGKILL);
	alarm(300); /* a hung child must not outlive the test */
	err = shm_seg_attach_fd(fd, &seg);
	if (!err)
		err = shm_seg_ring(seg, dir, role, &r);
	if (err)
		_exit(side_fail(res, err, "attach", 0));
	if (role == SHM_RING_PRODUCER)
		_exit(run_producer(&r, n, res));
	_exit(run_consumer(&r, n, res));
}

static uint64_t records_per_direction(void)
{
	const char *s = getenv("WSGW_STRESS_RECORDS");

	return s ? strtoull(s, NULL, 10) : 10000000;
}

START_TEST(test_stress_both_directions)
{
	const struct shm_seg_opts opts = {
		.capacity = { 1 << 16, 1 << 15 }, .mode = 0600, .gid = (gid_t)-1,
	};
	static const char *const names[4] = {
		"to-worker producer", "to-worker consumer",
		"to-gateway producer", "to-gateway consumer",
	};
	uint64_t n = records_per_direction();
	struct shm_seg *seg;
	struct timespec t0, t1;
	pid_t pids[4];
	double secs;

	results = mmap(NULL, 4 * sizeof(*results), PROT_READ | PROT_WRITE,
		       MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	ck_assert_ptr_ne(results, MAP_FAILED);
	ck_assert_int_eq(shm_seg_create_memfd("stress", &opts, &seg), 0);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (int i = 0; i < 4; i++) {
		pids[i] = fork();
		ck_assert_int_ge(pids[i], 0);
		if (pids[i] == 0)
			child(shm_seg_fd(seg), i < 2 ? SHM_SEG_TO_WORKER : SHM_SEG_TO_GATEWAY,
			      i % 2 ? SHM_RING_CONSUMER : SHM_RING_PRODUCER, n, &results[i]);
	}
	for (int done = 0; done < 4; done++) {
		int st, i;
		pid_t pid = wait(&st);

		ck_assert_int_gt(pid, 0);
		for (i = 0; i < 4 && pids[i] != pid; i++)
			;
		ck_assert_int_lt(i, 4);
		pids[i] = 0;
		if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
			for (int j = 0; j < 4; j++)
				if (pids[j] > 0)
					kill(pids[j], SIGKILL);
			ck_abort_msg("%s failed (status %#x): %s", names[i], st, results[i].msg);
		}
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	for (int i = 0; i < 4; i++)
		fprintf(stderr, "%-20s %llu records %llu bytes, %llu sleeps, %llu wakes\n",
			names[i], (unsigned long long)results[i].records,
			(unsigned long long)results[i].bytes,
			(unsigned long long)results[i].sleeps, (unsigned long long)results[i].wakes);
	fprintf(stderr, "stress: 2 x %llu records in %.2f s\n", (unsigned long long)n, secs);
	for (int i = 0; i < 4; i++) {
		ck_assert_uint_eq(results[i].records, n);
		ck_assert_uint_eq(results[i].bytes, results[i ^ 1].bytes);
		/* The forced pauses made every side sleep and be woken. */
		if (n >= 2 * PAUSE_EVERY) {
			ck_assert_uint_gt(results[i].sleeps, 0);
			ck_assert_uint_gt(results[i ^ 1].wakes, 0);
		}
	}
	shm_seg_close(seg);
	munmap(results, 4 * sizeof(*results));
}
END_TEST

int main(void)
{
	Suite *s = suite_create("shm_ring_stress");
	TCase *tc = tcase_create("stress");
	SRunner *sr;
	int failed;

	tcase_add_test(tc, test_stress_both_directions);
	tcase_set_timeout(tc, 240);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
