/* Tests of gateway/conn.c: the RCU connection map, its ids and its slab. */
#include "gateway/conn.h"

#include <check.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define REQUIRE(cond) do { if (!(cond)) ck_abort_msg("%s:%d: %s", __FILE__, __LINE__, #cond); } while (0)

static void setup(void)
{
	rcu_register_thread();
	ck_assert_int_eq(conn_map_init(), 0);
}

static void teardown(void)
{
	conn_map_destroy();
	rcu_unregister_thread();
}

static void release(struct conn *c)
{
	c->state = CONN_DEAD; /* conn_release's precondition */
	conn_release(c);
}

/* Whether id is in the map now, looked up as another thread would. */
static struct conn *lookup(uint64_t id)
{
	rcu_read_lock();
	struct conn *c = conn_lookup(id);
	rcu_read_unlock();
	return c;
}

START_TEST(test_new_lookup_release)
{
	struct conn *a = conn_new(7), *b = conn_new(8);

	ck_assert_uint_eq(conn_count(), 2);
	ck_assert_uint_eq(a->kind, EP_CONN);
	ck_assert_int_eq(a->fd, 7);
	ck_assert_uint_eq(a->state, CONN_HANDSHAKE);
	ck_assert_uint_eq(a->flags, 0);
	ck_assert_ptr_null(a->out.head);
	ck_assert_ptr_null(a->msg);
	ck_assert_uint_ne(a->id, 0);
	ck_assert_uint_ne(a->id, b->id);
	ck_assert_ptr_eq(lookup(a->id), a);
	ck_assert_ptr_eq(lookup(b->id), b);
	ck_assert_ptr_null(lookup(b->id + 1000));
	ck_assert_ptr_null(lookup(0));

	uint64_t ida = a->id;
	release(a);
	/* Gone from the map at once, whatever the grace period still keeps in memory. */
	ck_assert_ptr_null(lookup(ida));
	ck_assert_uint_eq(conn_count(), 1);
	synchronize_rcu();
	rcu_barrier();
	ck_assert_ptr_null(lookup(ida));
	ck_assert_ptr_eq(lookup(b->id), b);
	release(b);
	ck_assert_uint_eq(conn_count(), 0);
}
END_TEST

START_TEST(test_ids_never_reused)
{
	/* Memory is recycled through the slab; ids never are, so a worker's command for a
	 * closed connection can never reach the client that got its memory. */
	enum { N = 3000 };
	static struct conn *c[N];
	static uint64_t ids[2 * N];
	size_t n_ids = 0;
	uint64_t last = 0;

	for (int i = 0; i < N; i++) {
		c[i] = conn_new(i);
		REQUIRE(c[i]->id > last);
		last = ids[n_ids++] = c[i]->id;
	}
	for (int i = 0; i < N; i++)
		release(c[i]);
	rcu_barrier(); /* every free_rcu has run: the slab has the memory back */

	int reused = 0;
	for (int i = 0; i < N; i++) {
		struct conn *n = conn_new(i);
		REQUIRE(n->id > last);
		last = ids[n_ids++] = n->id;
		for (int j = 0; j < N && !reused; j++)
			reused = c[j] == n;
		c[i] = n;
	}
	/* The test is about recycled memory: make sure there was some. */
	ck_assert_int_eq(reused, 1);
	for (size_t i = 0; i < N; i++)
		REQUIRE(lookup(ids[i]) == NULL);
	for (int i = 0; i < N; i++) {
		REQUIRE(lookup(c[i]->id) == c[i]);
		release(c[i]);
	}
	ck_assert_uint_eq(conn_count(), 0);
}
END_TEST

START_TEST(test_recycled_memory_is_clean)
{
	struct conn *a = conn_new(3);
	uint64_t old = a->id;

	/* What a connection's life leaves in its struct must not survive into the next. */
	a->flags = CONN_IN_FLUSH | CONN_POLLOUT | CONN_WORKER;
	a->deadline = 12345;
	a->worker = 9;
	a->pool = 4;
	a->in_len = 100;
	a->msg_len = 77;
	a->out.bytes = 55;
	release(a);
	rcu_barrier();

	struct conn *b = conn_new(4);
	ck_assert_ptr_eq(b, a); /* the slab hands back the slot it just got */
	ck_assert_uint_gt(b->id, old);
	ck_assert_int_eq(b->fd, 4);
	ck_assert_uint_eq(b->kind, EP_CONN);
	ck_assert_uint_eq(b->state, CONN_HANDSHAKE);
	ck_assert_uint_eq(b->flags, 0);
	ck_assert_uint_eq(b->deadline, 0);
	ck_assert_uint_eq(b->worker, 0);
	ck_assert_uint_eq(b->pool, 0);
	ck_assert_uint_eq(b->in_len, 0);
	ck_assert_uint_eq(b->msg_len, 0);
	ck_assert_uint_eq(b->out.bytes, 0);
	ck_assert_ptr_null(b->flush_next);
	ck_assert_ptr_null(lookup(old));
	ck_assert_ptr_eq(lookup(b->id), b);
	release(b);
}
END_TEST

/* A reader thread that found a connection and keeps its read lock while the loop thread
 * releases it. */
struct reader {
	uint64_t id;
	int fd;
	int seen_id_ok, seen_fd_ok;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int found, released;
};

static void *reader_main(void *arg)
{
	struct reader *r = arg;

	rcu_register_thread();
	rcu_read_lock();
	struct conn *c = conn_lookup(r->id);
	pthread_mutex_lock(&r->mu);
	r->found = c != NULL;
	pthread_cond_signal(&r->cv);
	while (!r->released)
		pthread_cond_wait(&r->cv, &r->mu);
	pthread_mutex_unlock(&r->mu);
	/* Released, but our read-side section began before: the memory is still this
	 * connection's. */
	if (c) {
		r->seen_id_ok = c->id == r->id;
		r->seen_fd_ok = c->fd == r->fd;
	}
	rcu_read_unlock();
	rcu_unregister_thread();
	return NULL;
}

START_TEST(test_memory_outlives_readers)
{
	struct reader r = { .mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER };
	struct conn *c = conn_new(42);
	pthread_t t;

	r.id = c->id;
	r.fd = 42;
	ck_assert_int_eq(pthread_create(&t, NULL, reader_main, &r), 0);
	pthread_mutex_lock(&r.mu);
	while (!r.found)
		pthread_cond_wait(&r.cv, &r.mu);
	pthread_mutex_unlock(&r.mu);

	release(c);
	ck_assert_ptr_null(lookup(r.id));
	/* While the reader is inside its read-side section, new connections must not get
	 * the released memory. */
	struct conn *more[64];
	for (int i = 0; i < 64; i++) {
		more[i] = conn_new(100 + i);
		ck_assert_ptr_ne(more[i], c);
	}
	pthread_mutex_lock(&r.mu);
	r.released = 1;
	pthread_cond_signal(&r.cv);
	pthread_mutex_unlock(&r.mu);
	ck_assert_int_eq(pthread_join(t, NULL), 0);
	ck_assert_int_eq(r.seen_id_ok, 1);
	ck_assert_int_eq(r.seen_fd_ok, 1);
	for (int i = 0; i < 64; i++)
		release(more[i]);
	ck_assert_uint_eq(conn_count(), 0);
}
END_TEST

struct visit {
	uint64_t base;
	unsigned *seen; /* by id - base */
	size_t n;
	unsigned calls;
	int release_odd;
};

static void visit_fn(struct conn *c, void *arg)
{
	struct visit *v = arg;

	v->calls++;
	REQUIRE(c->id >= v->base && c->id < v->base + v->n);
	v->seen[c->id - v->base]++;
	if (v->release_odd && (c->id - v->base) % 2)
		release(c);
}

START_TEST(test_for_each)
{
	/* More connections than the table's initial 1024 buckets, so it has resized. */
	enum { N = 5000 };
	struct conn *first = conn_new(0);
	struct visit v = { .base = first->id, .n = N };

	v.seen = calloc(N, sizeof(*v.seen));
	for (int i = 1; i < N; i++)
		REQUIRE(conn_new(i)->id == v.base + (uint64_t)i);
	ck_assert_uint_eq(conn_count(), N);

	/* Every connection exactly once, while the visited one is released half the time. */
	v.release_odd = 1;
	conn_for_each(visit_fn, &v);
	ck_assert_uint_eq(v.calls, N);
	for (int i = 0; i < N; i++)
		REQUIRE(v.seen[i] == 1);
	ck_assert_uint_eq(conn_count(), N / 2);

	/* The survivors, each once; the released ones, never. */
	synchronize_rcu();
	memset(v.seen, 0, N * sizeof(*v.seen));
	v.calls = 0;
	v.release_odd = 0;
	conn_for_each(visit_fn, &v);
	ck_assert_uint_eq(v.calls, N / 2);
	for (int i = 0; i < N; i++)
		REQUIRE(v.seen[i] == (i % 2 ? 0u : 1u));

	for (int i = 0; i < N; i += 2)
		release(lookup(v.base + (uint64_t)i));
	ck_assert_uint_eq(conn_count(), 0);
	v.calls = 0;
	conn_for_each(visit_fn, &v);
	ck_assert_uint_eq(v.calls, 0);
	free(v.seen);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("conn");
	TCase *tc = tcase_create("map");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_new_lookup_release);
	tcase_add_test(tc, test_ids_never_reused);
	tcase_add_test(tc, test_recycled_memory_is_clean);
	tcase_add_test(tc, test_memory_outlives_readers);
	tcase_add_test(tc, test_for_each);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
