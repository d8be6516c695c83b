/*
 * The LMTP grammar: MAIL/RCPT/BDAT arguments with every class of bad input,
 * recipient-to-user mapping, UTF-8 checks, and the DATA/BDAT decoder fed
 * whole and one byte at a time.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "../../src/deliver/lmtp_cmds.h"

static void
test_mail_accepts_paths_and_parameters(void **state)
{
	struct lmtp_mail m;

	(void)state;
	assert_null(lmtp_parse_mail("FROM:<bob@example.org>", 1000, &m));
	assert_string_equal(m.addr, "bob@example.org");
	assert_null(lmtp_parse_mail("from: <>", 1000, &m));
	assert_string_equal(m.addr, "");
	assert_null(lmtp_parse_mail("FROM:<a@b> SIZE=1000 BODY=8BITMIME "
	    "SMTPUTF8", 1000, &m));
	assert_int_equal(m.size, 1000);
	assert_int_equal(m.body, LMTP_BODY_8BITMIME);
	assert_true(m.smtputf8);
	assert_null(lmtp_parse_mail("FROM:<@a,@b:c@d>", 1000, &m));
	assert_string_equal(m.addr, "c@d");
	assert_null(lmtp_parse_mail("FROM:<\"a b\\\"c\"@d>", 1000, &m));
	assert_string_equal(m.addr, "\"a b\\\"c\"@d");
	assert_null(lmtp_parse_mail("FROM:<\xc3\xa9@d> SMTPUTF8", 10, &m));
}

static void
test_mail_refuses_bad_input_with_the_right_code(void **state)
{
	static const struct {
		const char *args, *code;
	} bad[] = {
		{ "", "501 5.5.4" },
		{ "FROM", "501 5.5.4" },
		{ "FROM:bob", "501 5.1.7" },
		{ "FROM:<bob", "501 5.1.7" },
		{ "FROM:<b ob>", "501 5.1.7" },
		{ "FROM:<b<ob>", "501 5.1.7" },
		{ "FROM:<bob>x", "501 5.1.7" },
		{ "FROM:<\x7f>", "501 5.1.7" },
		{ "FROM:<\"unterminated>", "501 5.1.7" },
		{ "FROM:<@relay-without-colon>", "501 5.1.7" },
		{ "FROM:<a@>", "501 5.1.7" },
		{ "FROM:<a> SIZE", "501 5.5.4" },
		{ "FROM:<a> SIZE=", "501 5.5.4" },
		{ "FROM:<a> SIZE=-1", "501 5.5.4" },
		{ "FROM:<a> SIZE=18446744073709551616", "501 5.5.4" },
		{ "FROM:<a> SIZE=1001", "552 5.3.4" },
		{ "FROM:<a> SIZE=1 SIZE=1", "501 5.5.4" },
		{ "FROM:<a> BODY=BINARYMIME", "501 5.5.4" },
		{ "FROM:<a> BODY", "501 5.5.4" },
		{ "FROM:<a> SMTPUTF8=yes", "501 5.5.4" },
		{ "FROM:<a> AUTH=<>", "555 5.5.4" },
		{ "FROM:<a> =x", "555 5.5.4" },
		{ "FROM:<\xc3\xa9@d>", "553 5.6.7" },
		{ "FROM:<\xc3@d> SMTPUTF8", "553 5.6.7" },
		{ "FROM:<\xed\xa0\x80@d> SMTPUTF8", "553 5.6.7" },
		{ "FROM:<a> A B C D E F G H I J K L M N O P Q", "555 5.5.4" },
	};
	struct lmtp_mail m;
	char long_path[600];

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		const char *r = lmtp_parse_mail(bad[i].args, 1000, &m);

		if (r == NULL || strncmp(r, bad[i].code, 9) != 0)
			fail_msg("%s: got %s, want %s", bad[i].args,
			    r ? r : "OK", bad[i].code);
	}
	snprintf(long_path, sizeof(long_path), "FROM:<%0257d>", 0);
	assert_non_null(lmtp_parse_mail(long_path, 1000, &m));
	snprintf(long_path, sizeof(long_path), "FROM:<%0256d>", 0);
	assert_null(lmtp_parse_mail(long_path, 1000, &m));
}

static void
test_rcpt_and_bdat(void **state)
{
	char addr[LMTP_PATH_MAX + 1];
	uint64_t n;
	bool last;

	(void)state;
	assert_null(lmtp_parse_rcpt("TO:<alice>", false, addr));
	assert_string_equal(addr, "alice");
	assert_null(lmtp_parse_rcpt("to:<alice@x>  ", false, addr));
	assert_string_equal(lmtp_parse_rcpt("TO:<>", false, addr),
	    "501 5.1.3 Empty recipient");
	assert_memory_equal(lmtp_parse_rcpt("TO:<a> NOTIFY=NEVER", false, addr),
	    "555", 3);
	assert_memory_equal(lmtp_parse_rcpt("TO:<\xc3\xa4>", false, addr),
	    "553", 3);
	assert_null(lmtp_parse_rcpt("TO:<\xc3\xa4>", true, addr));
	assert_memory_equal(lmtp_parse_rcpt("FROM:<a>", false, addr), "501", 3);
	assert_null(lmtp_parse_bdat("0 LAST", &n, &last));
	assert_true(last);
	assert_int_equal(n, 0);
	assert_null(lmtp_parse_bdat("123", &n, &last));
	assert_false(last);
	assert_int_equal(n, 123);
	assert_null(lmtp_parse_bdat("5 last", &n, &last));
	assert_non_null(lmtp_parse_bdat("", &n, &last));
	assert_non_null(lmtp_parse_bdat("x", &n, &last));
	assert_non_null(lmtp_parse_bdat("-1", &n, &last));
	assert_non_null(lmtp_parse_bdat("1 LASTX", &n, &last));
	assert_non_null(lmtp_parse_bdat("99999999999999999999999", &n, &last));
}

static void
test_rcpt_user_mapping(void **state)
{
	static const struct {
		const char *addr, *delims, *domains, *user;
	} cases[] = {
		{ "alice", "+", "", "alice" },
		{ "alice+news", "+", "", "alice" },
		{ "alice+news@Example.ORG", "+", "", "alice@example.org" },
		{ "alice+news@Example.ORG", "+", "example.org", "alice" },
		{ "alice-x+y@a.b", "+-", "a.b", "alice" },
		{ "+alice", "+", "", "+alice" },
		{ "alice+x", "", "", "alice+x" },
		{ "Alice@LOCAL", "+", "x local", "Alice" },
		{ "bob@other", "+", "localx other.y", "bob@other" },
		{ "\"q+x\"@d", "+", "", "\"q@d" },
	};
	char user[64];

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		assert_int_equal(lmtp_rcpt_user(cases[i].addr, cases[i].delims,
		    cases[i].domains, user, sizeof(user)), 0);
		assert_string_equal(user, cases[i].user);
	}
	assert_int_equal(lmtp_rcpt_user("@x", "+", "", user, sizeof(user)), -1);
	assert_int_equal(lmtp_rcpt_user("a@verylongdomain.example", "", "",
	    user, 8), -1);
}

/* Decode in chunks of step octets (0: whole); out is NUL-terminated. */
static size_t
decode(const char *in, size_t len, bool dot, size_t step, char *out,
    bool *done_r)
{
	struct lmtp_data d;
	size_t i = 0, o = 0;

	lmtp_data_init(&d, dot);
	while (i < len && !d.done) {
		size_t n = step == 0 || step > len - i ? len - i : step;
		size_t olen, used = lmtp_data_feed(&d, in + i, n, out + o, &olen);

		o += olen;
		i += used;
	}
	if (!dot)
		o += lmtp_data_finish(&d, out + o);
	out[o] = '\0';
	*done_r = d.done;
	return i;
}

static void
test_data_decoder_whole_and_byte_by_byte(void **state)
{
	static const struct {
		const char *in, *out;
		bool done;
		size_t rest;	/* octets left after the end marker */
	} cases[] = {
		{ "a\r\nb\r\n.\r\n", "a\nb\n", true, 0 },
		{ ".\r\n", "", true, 0 },
		{ "..\r\n.\r\nQUIT\r\n", ".\n", true, 6 },
		{ "a\n.\n", "a\n", true, 0 },
		{ "x\r.\r\n", "x\r.\n", false, 0 },
		{ "a\r\r\n.\r\n", "a\r\n", true, 0 },
		{ ".x\r\n.y\n.\r\n", "x\ny\n", true, 0 },
		{ ".\rx\r\n.\r\n", "\rx\n", true, 0 },
		{ ".\r\r\n.\r\n", "\r\n", true, 0 },
		{ "no end\r\n", "no end\n", false, 0 },
		{ "a\r", "a", false, 0 },
		{ "line\r\n.", "line\n", false, 0 },
		{ "\r\n..\r\n", "\n.\n", false, 0 },
	};
	char out[128];
	bool done;

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		size_t len = strlen(cases[i].in);

		for (size_t step = 0; step <= 2; step++) {
			size_t used = decode(cases[i].in, len, true, step, out,
			    &done);

			if (strcmp(out, cases[i].out) != 0 ||
			    done != cases[i].done ||
			    (done && len - used != cases[i].rest))
				fail_msg("case %zu step %zu: got \"%s\" done=%d "
				    "rest=%zu", i, step, out, done, len - used);
		}
	}
}

static void
test_bdat_decoder_keeps_dots_and_folds_crlf(void **state)
{
	char out[64];
	bool done;

	(void)state;
	for (size_t step = 0; step <= 1; step++) {
		assert_int_equal(decode(".\r\n..x\r\n.\r\n", 11, false, step,
		    out, &done), 11);
		assert_string_equal(out, ".\n..x\n.\n");
		assert_false(done);
		decode("end\r", 4, false, step, out, &done);
		assert_string_equal(out, "end\r");
	}
}

static void
test_utf8(void **state)
{
	(void)state;
	assert_true(lmtp_utf8_valid("plain", 5));
	assert_true(lmtp_utf8_valid("\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80", 9));
	assert_false(lmtp_utf8_valid("\xc0\xaf", 2));		/* overlong */
	assert_false(lmtp_utf8_valid("\xe0\x80\xaf", 3));	/* overlong */
	assert_false(lmtp_utf8_valid("\xed\xa0\x80", 3));	/* surrogate */
	assert_false(lmtp_utf8_valid("\xf4\x90\x80\x80", 4));	/* > U+10FFFF */
	assert_false(lmtp_utf8_valid("\xc3", 1));		/* cut */
	assert_false(lmtp_utf8_valid("\x80", 1));
	assert_false(lmtp_utf8_valid("\xff", 1));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_mail_accepts_paths_and_parameters),
		cmocka_unit_test(test_mail_refuses_bad_input_with_the_right_code),
		cmocka_unit_test(test_rcpt_and_bdat),
		cmocka_unit_test(test_rcpt_user_mapping),
		cmocka_unit_test(test_data_decoder_whole_and_byte_by_byte),
		cmocka_unit_test(test_bdat_decoder_keeps_dots_and_folds_crlf),
		cmocka_unit_test(test_utf8),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
