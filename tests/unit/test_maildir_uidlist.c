/*
 * The UIDLs of a previous server (src/store/maildir_uidlist.c): Dovecot's
 * dovecot-uidlist and Courier's courierpop3dsizelist, valid and hostile,
 * whole and one byte at a time, and the store using them.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../../src/store/maildir_uidlist.h"
#include "../../src/store/store.h"
#include "testutil.h"

static void
expect(const struct maildir_uidlist *ul, const char *base, const char *want)
{
	char uidl[STORE_UIDL_MAX + 1];
	bool found = maildir_uidlist_find(ul, base, strlen(base), uidl);

	if (want == NULL) {
		assert_false(found);
		return;
	}
	assert_true(found);
	assert_string_equal(uidl, want);
}

static struct maildir_uidlist *
dovecot(const char *text)
{
	return maildir_uidlist_parse_dovecot(NULL, text, strlen(text), NULL);
}

static struct maildir_uidlist *
courier(const char *text)
{
	return maildir_uidlist_parse_courier(NULL, text, strlen(text));
}

static void
test_dovecot_v3_default_format_and_pop3_extension(void **state)
{
	struct maildir_uidlist *ul = dovecot(
	    "3 V1700000000 N5 G0123456789abcdef0123456789abcdef\n"
	    "1 :1700000001.M1P1.host\n"
	    "2 W1200 S1180 :1700000002.M2P1.host,S=1180,W=1200:2,S\n"
	    "4 P00000042migrated O1 :1700000004.M4P1.host\n");

	(void)state;
	assert_non_null(ul);
	assert_int_equal(maildir_uidlist_count(ul), 3);
	/* %08Xu%08Xv: 1700000000 = 0x6553F100. */
	expect(ul, "1700000001.M1P1.host", "000000016553f100");
	expect(ul, "1700000002.M2P1.host,S=1180,W=1200", "000000026553f100");
	expect(ul, "1700000004.M4P1.host", "00000042migrated");
	expect(ul, "1700000003.M3P1.host", NULL);
	expect(ul, "1700000001.M1P1.hos", NULL);
	maildir_uidlist_free(&ul);
	assert_null(ul);
}

static void
test_dovecot_v1(void **state)
{
	struct maildir_uidlist *ul = dovecot("1 255 3\n1 a.host\n2 b.host:2,\n");

	(void)state;
	expect(ul, "a.host", "00000001000000ff");
	expect(ul, "b.host", "00000002000000ff");
	maildir_uidlist_free(&ul);
}

static void
test_dovecot_hostile_lines_are_skipped(void **state)
{
	char longname[MAILDIR_UIDLIST_LINE_MAX + 32];
	struct maildir_uidlist *ul;
	char *text;

	(void)state;
	memset(longname, 'n', sizeof(longname));
	longname[sizeof(longname) - 1] = '\0';
	assert_true(asprintf(&text,
	    "3 V7 N100\n"
	    "0 :zero\n"			/* uid 0 */
	    "-1 :neg\n"
	    "4294967296 :over\n"	/* > u32 */
	    "2 :ok2\n"
	    "2 :again\n"		/* not ascending */
	    "1 :backwards\n"
	    "3 x :lowerkey\n"		/* extension key not A-Z */
	    "4 :a/b\n"			/* a path, not a name */
	    "5 :\n"			/* empty name */
	    "6 P :emptyuidl\n"		/* empty P: unusable */
	    "7 Pa\x01b :ctl\n"		/* control character */
	    "8 P%s :toolong\n"
	    "9 W1\n"			/* no name */
	    "10 :%s\n"			/* over-long line */
	    "11 PUID1 :dup1\n"
	    "12 PUID1 :dup2\n"		/* one UIDL for two names */
	    "13 :ok13",			/* no final LF */
	    "0123456789012345678901234567890123456789012345678901234567890123456789x",
	    longname) > 0);
	ul = dovecot(text);
	free(text);
	assert_non_null(ul);
	expect(ul, "ok2", "0000000200000007");
	expect(ul, "ok13", "0000000d00000007");
	for (const char *const *b = (const char *const[]){ "zero", "neg",
	    "over", "again", "backwards", "lowerkey", "a", "emptyuidl", "ctl",
	    "toolong", "dup1", "dup2", NULL }; *b != NULL; b++)
		expect(ul, *b, NULL);
	assert_int_equal(maildir_uidlist_count(ul), 2);
	maildir_uidlist_free(&ul);
}

static void
test_dovecot_bad_headers_give_nothing(void **state)
{
	static const char *const bad[] = {
		"", "\n", "3\n1 :a\n", "3 N5\n1 :a\n", "3 V0 N5\n1 :a\n",
		"3 V5\n1 :a\n", "3 Vx N5\n1 :a\n", "2 V1 N2\n1 :a\n",
		"1 5\n1 a\n", "1 5 6 7\n1 a\n", "33 V1 N2\n1 :a\n",
		"3 V99999999999 N2\n1 :a\n",
	};

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_null(dovecot(bad[i]));
}

static void
test_dovecot_pop3_uidl_formats(void **state)
{
	static const char text[] = "3 V255 N20\n10 :a.host:2,S\n";
	static const struct {
		const char *fmt, *uidl;
	} cases[] = {
		{ "%08Xu%08Xv", "0000000a000000ff" },
		{ "%v.%u", "255.10" },
		{ "%u", "10" },
		{ "%Xv-%4u", "ff-  10" },	/* a space: not a UIDL */
		{ "%f", "a.host" },
		{ "x%%%u", "x%10" },
		{ "%08u%08u%08u%08u%08u%08u%08u%08u%08u", NULL },  /* > 70 */
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct maildir_uidlist *ul = maildir_uidlist_parse_dovecot(NULL,
		    text, strlen(text), cases[i].fmt);
		const char *want = cases[i].uidl;

		assert_true(maildir_uidlist_format_ok(cases[i].fmt));
		if (want != NULL && strchr(want, ' ') != NULL)
			want = NULL;
		expect(ul, "a.host", want);
		maildir_uidlist_free(&ul);
	}
	for (const char *const *bad = (const char *const[]){ "", "%", "%m",
	    "%Xf", "%08", "%{uid}", "a b", "%99999999999u", "%71u", NULL };
	    *bad != NULL; bad++) {
		assert_false(maildir_uidlist_format_ok(*bad));
		assert_null(maildir_uidlist_parse_dovecot(NULL, text,
		    strlen(text), *bad));
	}
}

static void
test_courier_versions(void **state)
{
	struct maildir_uidlist *ul = courier(
	    "/2 10 1234\n"
	    "1000.M1.host:2,S 512 7:1234\n"
	    "1001.M2.host 100 8\n"
	    "1002.M3.host 100 9:1234:1\n"
	    "1003.M4.host 100 0\n");

	(void)state;
	expect(ul, "1000.M1.host", "UID7-1234");
	expect(ul, "1001.M2.host", "UID8");
	expect(ul, "1002.M3.host", "UID9-1234");
	expect(ul, "1003.M4.host", "1003.M4.host");
	maildir_uidlist_free(&ul);

	/* Version 0: no header, names only; ' " + and others as +XX. */
	ul = courier("a'b\"c+d:2,S 10\nplain 20\n");
	expect(ul, "a'b\"c+d", "a+27b+22c+2Bd");
	expect(ul, "plain", "plain");
	maildir_uidlist_free(&ul);
}

static void
test_courier_hostile_lines_are_skipped(void **state)
{
	struct maildir_uidlist *ul = courier(
	    "/3 10 5\n"
	    "nosize\n"
	    "neg -1 4:5\n"
	    "big 99999999999999999999999 4:5\n"
	    "u x:5\n"
	    "v 1 4:x\n"
	    "w 1 4:5:x\n"
	    "a/b 1 4:5\n"
	    " 1 4:5\n"
	    "good 1 4:5\n");

	(void)state;
	assert_int_equal(maildir_uidlist_count(ul), 1);
	expect(ul, "good", "UID4-5");
	maildir_uidlist_free(&ul);
	assert_null(courier("/9 1 2\na 1 1:2\n"));
	assert_null(courier(""));
}

static void
test_one_byte_at_a_time_never_reads_past_the_end(void **state)
{
	static const char dv[] = "3 V1700000000 N5\n1 P0001abc :a.host\n"
	    "2 :b.host:2,S\n";
	static const char co[] = "/2 10 1234\na.host 512 7:1234\n";

	(void)state;
	/* Every prefix, in its own exactly sized allocation (ASan). */
	for (size_t n = 0; n <= sizeof(dv) - 1; n++) {
		char *p = malloc(n ? n : 1);
		struct maildir_uidlist *ul;

		memcpy(p, dv, n);
		ul = maildir_uidlist_parse_dovecot(NULL, p, n, NULL);
		maildir_uidlist_free(&ul);
		free(p);
	}
	for (size_t n = 0; n <= sizeof(co) - 1; n++) {
		char *p = malloc(n ? n : 1);
		struct maildir_uidlist *ul;

		memcpy(p, co, n);
		ul = maildir_uidlist_parse_courier(NULL, p, n);
		maildir_uidlist_free(&ul);
		free(p);
	}
}

static void
write_file(const char *dir, const char *name, const char *text, time_t mtime)
{
	char path[512];
	struct timespec ts[2] = { { mtime, 0 }, { mtime, 0 } };
	FILE *fp;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	assert_non_null(fp = fopen(path, "w"));
	assert_int_equal(fputs(text, fp) >= 0, 1);
	assert_int_equal(fclose(fp), 0);
	assert_int_equal(utimensat(AT_FDCWD, path, ts, 0), 0);
}

static void
test_load_prefers_the_newer_file(void **state)
{
	char dir[128];
	struct maildir_uidlist *ul;
	bool absent = false;
	int fd;

	(void)state;
	assert_int_equal(tu_tmpdir_make(dir, sizeof(dir), "uidlist"), 0);
	assert_non_null(fd = open(dir, O_RDONLY | O_DIRECTORY));
	assert_null(maildir_uidlist_load(fd, NULL, &absent));
	assert_true(absent);
	write_file(dir, MAILDIR_UIDLIST_COURIER, "/2 3 9\nm1 5 1:9\nm2 5 2:9\n",
	    1000);
	write_file(dir, MAILDIR_UIDLIST_DOVECOT, "3 V9 N3\n1 :m1\n", 2000);
	ul = maildir_uidlist_load(fd, NULL, &absent);
	assert_false(absent);
	expect(ul, "m1", "0000000100000009");	/* Dovecot's is newer */
	expect(ul, "m2", "UID2-9");		/* only Courier names it */
	maildir_uidlist_free(&ul);
	write_file(dir, MAILDIR_UIDLIST_COURIER, "/2 3 9\nm1 5 1:9\n", 3000);
	ul = maildir_uidlist_load(fd, NULL, NULL);
	expect(ul, "m1", "UID1-9");
	maildir_uidlist_free(&ul);
	/* Not a regular file: ignored. */
	assert_int_equal(unlinkat(fd, MAILDIR_UIDLIST_COURIER, 0), 0);
	assert_int_equal(unlinkat(fd, MAILDIR_UIDLIST_DOVECOT, 0), 0);
	assert_int_equal(mkdirat(fd, MAILDIR_UIDLIST_DOVECOT, 0700), 0);
	/* There but unusable: not absent, so an index does not skip it. */
	assert_null(maildir_uidlist_load(fd, NULL, &absent));
	assert_false(absent);
	close(fd);
	assert_int_equal(tu_tmpdir_remove(dir), 0);
}

static void
test_store_keeps_old_uidls_and_gives_new_mail_its_own(void **state)
{
	char dir[128], md[192], path[320];
	const struct store_ops *ops = store_lookup("maildir");
	struct store_params p = { .max_messages = 100 };
	struct store_index idx;
	struct store *st;
	char err[ERR_LEN];
	static const char *const names[] = {
		"1700000001.M1P1.host", "1700000002.M2P1.host",
		"1700000003.M3P1.host",
	};

	(void)state;
	assert_int_equal(tu_tmpdir_make(dir, sizeof(dir), "uidlist-store"), 0);
	snprintf(md, sizeof(md), "%s/Maildir", dir);
	assert_int_equal(mkdir(md, 0700), 0);
	for (const char *sub = "new\0cur\0tmp\0"; *sub; sub += 4) {
		snprintf(path, sizeof(path), "%s/%s", md, sub);
		assert_int_equal(mkdir(path, 0700), 0);
	}
	for (size_t i = 0; i < 3; i++) {
		char name[128];

		snprintf(name, sizeof(name), "cur/%s:2,S", names[i]);
		write_file(md, name, "Subject: x\n\nbody\n", 1000);
	}
	write_file(md, MAILDIR_UIDLIST_DOVECOT, "3 V1700000000 N3\n"
	    "1 :1700000001.M1P1.host\n2 P123abc :1700000002.M2P1.host\n",
	    2000);
	p.path = md;
	assert_int_equal(ops->open(&st, &p, &idx, err), STORE_OK);
	assert_int_equal(idx.count, 3);
	assert_string_equal(idx.msgs[0].uidl, "000000016553f100");
	assert_string_equal(idx.msgs[1].uidl, "123abc");
	assert_string_equal(idx.msgs[2].uidl, "1700000003.M3P1.host");
	ops->close(&st, &idx);
	assert_int_equal(tu_tmpdir_remove(dir), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_dovecot_v3_default_format_and_pop3_extension),
		cmocka_unit_test(test_dovecot_v1),
		cmocka_unit_test(test_dovecot_hostile_lines_are_skipped),
		cmocka_unit_test(test_dovecot_bad_headers_give_nothing),
		cmocka_unit_test(test_dovecot_pop3_uidl_formats),
		cmocka_unit_test(test_courier_versions),
		cmocka_unit_test(test_courier_hostile_lines_are_skipped),
		cmocka_unit_test(test_one_byte_at_a_time_never_reads_past_the_end),
		cmocka_unit_test(test_load_prefers_the_newer_file),
		cmocka_unit_test(test_store_keeps_old_uidls_and_gives_new_mail_its_own),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
