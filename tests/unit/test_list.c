/*
 * list.h: LIST_PUSH/LIST_UNLINK keep a stack of live elements, and
 * QUEUE_APPEND/QUEUE_UNLINK keep arrival order with a tail that follows
 * every removal (first, middle, last, only element).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "../../src/lib/list.h"

struct elm {
	int id;
	struct elm *prev, *next;
};

/* The ids from head to tail, checked against the back links. */
static int
ids(const struct elm *head, const struct elm *tail)
{
	const struct elm *last = NULL;
	int v = 0;

	for (const struct elm *e = head; e != NULL; e = e->next) {
		assert_ptr_equal(e->prev, last);
		v = v * 10 + e->id;
		last = e;
	}
	if (tail != NULL || head != NULL)
		assert_ptr_equal(last, tail);
	return v;
}

static void
test_list_push_unlink(void **state)
{
	struct elm e[3] = { { .id = 1 }, { .id = 2 }, { .id = 3 } };
	struct elm *head = NULL;

	(void)state;
	for (int i = 0; i < 3; i++)
		LIST_PUSH(head, &e[i]);
	assert_int_equal(ids(head, &e[0]), 321);
	LIST_UNLINK(head, &e[1]);
	assert_int_equal(ids(head, &e[0]), 31);
	LIST_UNLINK(head, &e[2]);
	assert_int_equal(ids(head, &e[0]), 1);
	LIST_UNLINK(head, &e[0]);
	assert_null(head);
}

static void
test_queue_order_and_tail(void **state)
{
	struct elm e[4] = { { .id = 1 }, { .id = 2 }, { .id = 3 },
	    { .id = 4, .next = &e[0] } };	/* stale link: append clears it */
	struct elm *head = NULL, *tail = NULL;

	(void)state;
	for (int i = 0; i < 4; i++)
		QUEUE_APPEND(head, tail, &e[i]);
	assert_int_equal(ids(head, tail), 1234);
	QUEUE_UNLINK(head, tail, &e[3]);		/* last */
	assert_int_equal(ids(head, tail), 123);
	QUEUE_UNLINK(head, tail, &e[1]);		/* middle */
	assert_int_equal(ids(head, tail), 13);
	QUEUE_UNLINK(head, tail, &e[0]);		/* first */
	assert_int_equal(ids(head, tail), 3);
	QUEUE_UNLINK(head, tail, &e[2]);		/* only */
	assert_null(head);
	assert_null(tail);
	QUEUE_APPEND(head, tail, &e[1]);
	assert_int_equal(ids(head, tail), 2);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_list_push_unlink),
		cmocka_unit_test(test_queue_order_and_tail),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
