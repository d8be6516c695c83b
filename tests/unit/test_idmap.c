/*
 * idmap: waiters found by request id; deletion keeps every other id
 * reachable (checked against a plain array over random operations) and
 * the table grows past its first size.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>

#include "../../src/lib/idmap.h"

static void
test_put_get_del(void **state)
{
	struct idmap *m = idmap_new();
	int a, b;

	(void)state;
	assert_non_null(m);
	assert_null(idmap_get(m, 1));
	assert_int_equal(idmap_put(m, 1, &a), 0);
	assert_int_equal(idmap_put(m, 2, &b), 0);
	assert_ptr_equal(idmap_get(m, 1), &a);
	assert_ptr_equal(idmap_get(m, 2), &b);
	assert_int_equal(idmap_put(m, 1, &b), 0);
	assert_ptr_equal(idmap_get(m, 1), &b);
	assert_int_equal(idmap_count(m), 2);
	idmap_del(m, 1);
	idmap_del(m, 1);
	idmap_del(m, 77);
	assert_null(idmap_get(m, 1));
	assert_ptr_equal(idmap_get(m, 2), &b);
	assert_int_equal(idmap_count(m), 1);
	idmap_free(&m);
	assert_null(m);
}

static void
test_zero_and_null_are_refused(void **state)
{
	struct idmap *m = idmap_new();
	int a;

	(void)state;
	assert_int_equal(idmap_put(m, 0, &a), -1);
	assert_int_equal(idmap_put(m, 5, NULL), -1);
	assert_null(idmap_get(m, 0));
	assert_int_equal(idmap_count(m), 0);
	idmap_free(&m);
}

/* Random puts and deletes over a small id range, against an array. */
#define IDS	5000

static void
test_matches_a_plain_array(void **state)
{
	static char marks[IDS];
	static void *want[IDS];
	struct idmap *m = idmap_new();
	size_t live = 0;

	(void)state;
	srand(9);
	for (unsigned int round = 0; round < 200000; round++) {
		uint64_t id = 1 + (uint64_t)rand() % (IDS - 1);

		if (rand() % 3 != 0) {
			if (want[id] == NULL)
				live++;
			want[id] = &marks[id];
			assert_int_equal(idmap_put(m, id, want[id]), 0);
		} else {
			if (want[id] != NULL)
				live--;
			want[id] = NULL;
			idmap_del(m, id);
		}
		if (round % 1000 == 0)
			for (uint64_t k = 1; k < IDS; k++)
				assert_ptr_equal(idmap_get(m, k), want[k]);
	}
	assert_int_equal(idmap_count(m), live);
	for (uint64_t k = 1; k < IDS; k++)
		assert_ptr_equal(idmap_get(m, k), want[k]);
	idmap_free(&m);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_put_get_del),
		cmocka_unit_test(test_zero_and_null_are_refused),
		cmocka_unit_test(test_matches_a_plain_array),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
