/*
 * lib/str: the one reply-line formatter of the POP3 session and LMTP
 * (text cut to fit, CRLF always there).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <string.h>
#include <cmocka.h>

#include "../../src/lib/str.h"

static int __attribute__((format(printf, 3, 4)))
line(char *buf, size_t size, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = str_vline(buf, size, fmt, ap);
	va_end(ap);
	return n;
}

static void
test_str_vline_ends_with_crlf_and_cuts_the_text(void **state)
{
	char buf[16];

	(void)state;
	assert_int_equal(line(buf, sizeof(buf), "+OK %u", 3u), 7);
	assert_string_equal(buf, "+OK 3\r\n");
	assert_int_equal(line(buf, sizeof(buf), "%s", ""), 2);
	assert_string_equal(buf, "\r\n");
	/* Room for 13 octets of text, the CRLF and the NUL. */
	assert_int_equal(line(buf, sizeof(buf), "%s", "250 2.1.5 recipient ok"),
	    15);
	assert_string_equal(buf, "250 2.1.5 rec\r\n");
	assert_int_equal(line(buf, 3, "%s", "x"), 2);
	assert_string_equal(buf, "\r\n");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_str_vline_ends_with_crlf_and_cuts_the_text),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
