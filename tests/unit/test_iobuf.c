/*
 * lib/iobuf: lines in place, the limit, storage that follows the data
 * (the owner's array, a heap block only while data needs it, nothing once
 * drained: the idle-session property), and reads and writes over conn.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <cmocka.h>

#include "../../src/lib/conn.h"
#include "../../src/lib/iobuf.h"
#include "testutil.h"

static void
test_iobuf_lines_in_place_in_the_owners_array(void **state)
{
	char small[32], *line;
	struct iobuf b;
	size_t len, used;

	(void)state;
	iobuf_init(&b, small, sizeof(small), 0, sizeof(small), 0);
	assert_ptr_equal(iobuf_data(&b), small);
	assert_int_equal(iobuf_add(&b, "USER a\r\nNOOP\nQU", 15), 15);
	line = iobuf_getline(&b, &len, &used);
	assert_non_null(line);
	assert_string_equal(line, "USER a");
	assert_int_equal(len, 6);
	assert_int_equal(used, 8);
	iobuf_consume(&b, used);
	line = iobuf_getline(&b, &len, &used);
	assert_string_equal(line, "NOOP");
	assert_int_equal(used, 5);
	iobuf_consume(&b, used);
	assert_null(iobuf_getline(&b, &len, &used));
	assert_int_equal(iobuf_len(&b), 2);
	iobuf_compact(&b);
	assert_ptr_equal(iobuf_data(&b), small);
	assert_memory_equal(small, "QU", 2);
	/* One CR goes with the LF, no more. */
	iobuf_add(&b, "IT\r\r\n", 5);
	line = iobuf_getline(&b, &len, &used);
	assert_int_equal(len, 5);
	assert_memory_equal(line, "QUIT\r", 5);
	iobuf_consume(&b, used);
	assert_int_equal(iobuf_len(&b), 0);
	iobuf_free(&b);
	assert_ptr_equal(iobuf_data(&b), small);
}

static void
test_iobuf_never_passes_its_limit(void **state)
{
	char small[8];
	struct iobuf b;

	(void)state;
	iobuf_init(&b, small, sizeof(small), 0, 20, 0);
	assert_int_equal(iobuf_add(&b, "0123456789", 10), 10);
	assert_int_equal(iobuf_room(&b), 10);
	assert_int_equal(iobuf_reserve(&b, 11), -1);
	assert_int_equal(iobuf_add(&b, "abcdefghijklmnop", 16), 10);
	assert_int_equal(iobuf_len(&b), 20);
	assert_memory_equal(iobuf_data(&b), "0123456789abcdefghij", 20);
	assert_int_equal(iobuf_add(&b, "x", 1), 0);
	assert_int_equal(iobuf_reserve(&b, 1), -1);
	assert_true(b.cap <= 20);
	iobuf_free(&b);
}

/* An idle connection holds no buffer memory: none before data, none after. */
static void
test_iobuf_heap_only_while_data_needs_it(void **state)
{
	struct iobuf b;
	size_t room;
	char *tail;

	(void)state;
	iobuf_init(&b, NULL, 0, 0, 4096, 0);
	assert_null(iobuf_data(&b));
	assert_int_equal(iobuf_len(&b), 0);
	iobuf_shrink(&b);
	assert_null(b.buf);
	assert_int_equal(iobuf_add(&b, "+OK\r\n", 5), 5);
	assert_non_null(b.buf);
	/* first = 0: the whole limit at once (a RETR block is large). */
	assert_int_equal(b.cap, 4096);
	iobuf_consume(&b, 2);
	tail = iobuf_tail(&b, &room);
	assert_non_null(tail);
	assert_int_equal(room, 4096 - 3);
	assert_ptr_equal(tail, iobuf_data(&b) + 3);
	memcpy(tail, "body", 4);
	iobuf_commit(&b, 4);
	assert_memory_equal(iobuf_data(&b), "K\r\nbody", 7);
	/* Data left: the block stays. */
	iobuf_shrink(&b);
	assert_non_null(b.buf);
	iobuf_consume(&b, 7);
	iobuf_shrink(&b);
	assert_null(b.buf);
	assert_int_equal(iobuf_space(&b), 0);
	iobuf_free(&b);
}

static void
test_iobuf_grows_by_doubling_and_shrinks_back_to_the_array(void **state)
{
	char small[16], big[300];
	struct iobuf b;

	(void)state;
	memset(big, 'x', sizeof(big));
	iobuf_init(&b, small, sizeof(small), 64, 1000, IOBUF_WIPE);
	assert_int_equal(iobuf_add(&b, big, 10), 10);
	assert_ptr_equal(b.buf, small);
	assert_int_equal(iobuf_add(&b, big, 10), 10);
	assert_ptr_not_equal(b.buf, small);
	assert_int_equal(b.cap, 64);
	assert_int_equal(iobuf_add(&b, big, 100), 100);
	assert_int_equal(b.cap, 128);
	assert_int_equal(iobuf_add(&b, big, 300), 300);
	assert_int_equal(b.cap, 512);
	assert_int_equal(iobuf_add(&b, big, 300), 300);
	assert_int_equal(b.cap, 1000);
	assert_int_equal(iobuf_len(&b), 720);
	/* Too much for the array yet. */
	iobuf_consume(&b, 700);
	iobuf_shrink(&b);
	assert_ptr_not_equal(b.buf, small);
	iobuf_consume(&b, 8);
	iobuf_shrink(&b);
	assert_ptr_equal(b.buf, small);
	assert_int_equal(b.cap, sizeof(small));
	assert_int_equal(iobuf_len(&b), 12);
	assert_memory_equal(iobuf_data(&b), big, 12);
	/* A long line ahead: exactly the new limit, then back. */
	iobuf_set_max(&b, 200);
	assert_int_equal(iobuf_reserve(&b, 200 - iobuf_len(&b)), 0);
	assert_int_equal(b.cap, 200);
	iobuf_set_max(&b, sizeof(small));
	iobuf_shrink(&b);
	assert_ptr_equal(b.buf, small);
	iobuf_free(&b);
}

static void
test_iobuf_reads_and_writes_over_conn(void **state)
{
	char small[8];
	struct iobuf in, out;
	struct conn a, c;
	int sv[2];

	(void)state;
	tu_socketpair(sv);
	conn_init_plain(&a, sv[0]);
	conn_init_plain(&c, sv[1]);
	iobuf_init(&in, small, sizeof(small), 0, sizeof(small), 0);
	iobuf_init(&out, NULL, 0, 0, 64, 0);
	errno = 0;
	assert_int_equal(iobuf_read(&in, &c), -1);
	assert_int_equal(errno, EAGAIN);
	assert_int_equal(iobuf_write(&out, &a), 0);
	assert_null(out.buf);
	iobuf_add(&out, "0123456789\r\n", 12);
	assert_int_equal(iobuf_write(&out, &a), 12);
	assert_int_equal(iobuf_len(&out), 0);
	/* Only what the storage takes, then it says so. */
	assert_int_equal(iobuf_read(&in, &c), 8);
	assert_memory_equal(iobuf_data(&in), "01234567", 8);
	errno = 0;
	assert_int_equal(iobuf_read(&in, &c), -1);
	assert_int_equal(errno, ENOBUFS);
	iobuf_consume(&in, 5);
	assert_int_equal(iobuf_read(&in, &c), 4);
	assert_memory_equal(iobuf_data(&in), "56789\r\n", 7);
	close(sv[0]);
	assert_int_equal(iobuf_read(&in, &c), 0);
	iobuf_free(&out);
	conn_free(&a);
	conn_free(&c);
	close(sv[1]);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_iobuf_lines_in_place_in_the_owners_array),
		cmocka_unit_test(test_iobuf_never_passes_its_limit),
		cmocka_unit_test(test_iobuf_heap_only_while_data_needs_it),
		cmocka_unit_test(
		    test_iobuf_grows_by_doubling_and_shrinks_back_to_the_array),
		cmocka_unit_test(test_iobuf_reads_and_writes_over_conn),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
