/*
 * The fetch state journal: ids survive a reopen, every add is appended at
 * once (one record), a record torn by a crash is dropped and cut off, a
 * corrupt file is an error (never an empty state), old files are
 * upgraded, big journals compacted, one process per account at a time,
 * file names cannot escape the directory.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "testutil.h"
#include "../../src/client/pop3c.h"
#include "../../src/client/state.h"

static char tmpdir[PATH_MAX];

static int
setup(void **state)
{
	(void)state;
	return tu_tmpdir_make(tmpdir, sizeof(tmpdir), "state");
}

static int
teardown(void **state)
{
	(void)state;
	return tu_tmpdir_remove(tmpdir);
}

static void
write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	fputs(text, f);
	assert_int_equal(fclose(f), 0);
}

static size_t
count_entries(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	size_t n = 0;

	assert_non_null(d);
	while ((e = readdir(d)) != NULL)
		if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
			n++;
	closedir(d);
	return n;
}

/* The file without the times of its "+" records ("+a 123" -> "+a"). */
static char *
records(const char *path)
{
	static char out[65536];
	const char *p = tu_slurp(path, NULL);
	size_t o = 0;

	while (*p != '\0' && o + 2 < sizeof(out)) {
		bool plus = *p == '+';

		while (*p != '\0' && *p != '\n' && !(plus && *p == ' '))
			out[o++] = *p++;
		while (*p != '\0' && *p != '\n')
			p++;
		if (*p == '\n')
			out[o++] = *p++;
	}
	out[o] = '\0';
	return out;
}

static void
test_add_appends_one_record_at_once(void **state)
{
	struct state *st;
	char err[ERR_LEN], dir[PATH_MAX];
	long long t0 = (long long)time(NULL);

	(void)state;
	assert_int_equal(str_fmt(dir, sizeof(dir), "%s/a/b", tmpdir), 0);
	assert_int_equal(state_open(&st, dir, "alice@host:110", err), 0);
	assert_int_equal(state_count(st), 0);
	assert_int_equal(state_add(st, "uid-2", err), 0);
	/* In the file before the next add, without any close or sync. */
	assert_string_equal(records(state_path(st)), STATE_MAGIC "\n+uid-2\n");
	assert_int_equal(state_add(st, "uid-1", err), 0);
	assert_int_equal(state_add(st, "uid-1", err), 0);
	assert_int_equal(state_sync(st, err), 0);
	assert_string_equal(records(state_path(st)),
	    STATE_MAGIC "\n+uid-2\n+uid-1\n");
	assert_true(state_first_seen(st, "uid-1") >= t0);
	assert_int_equal(state_first_seen(st, "uid-3"), -1);
	/* The state file and the lock: no temporary left. */
	assert_int_equal(count_entries(dir), 2);
	state_close(&st);
	assert_null(st);

	assert_int_equal(state_open(&st, dir, "alice@host:110", err), 0);
	assert_int_equal(state_count(st), 2);
	assert_true(state_has(st, "uid-1"));
	assert_true(state_has(st, "uid-2"));
	assert_false(state_has(st, "uid-3"));
	assert_true(state_first_seen(st, "uid-2") >= t0);
	state_close(&st);
}

static void
test_torn_last_record_is_dropped_and_cut(void **state)
{
	struct state *st;
	char err[ERR_LEN], path[PATH_MAX];

	(void)state;
	assert_int_equal(state_open(&st, tmpdir, "t", err), 0);
	str_copy(path, sizeof(path), state_path(st));
	state_close(&st);
	/* A crash in the middle of the last record ("+c ..." or the time). */
	write_file(path, STATE_MAGIC "\n+a 1\n+b 2\n+c");
	assert_int_equal(state_open(&st, tmpdir, "t", err), 0);
	assert_int_equal(state_count(st), 2);
	assert_false(state_has(st, "c"));
	assert_int_equal(state_first_seen(st, "b"), 2);
	assert_int_equal(state_add(st, "d", err), 0);
	state_close(&st);
	assert_string_equal(records(path), STATE_MAGIC "\n+a\n+b\n+d\n");
	/* A torn pending record: not in flight (nothing was written yet). */
	write_file(path, STATE_MAGIC "\n+a 1\n?b maildir x,S=");
	assert_int_equal(state_open(&st, tmpdir, "t", err), 0);
	assert_null(state_pending_uid(st));
	state_close(&st);
	/* Torn at creation: an empty state, written afresh when used. */
	write_file(path, "# postino st");
	assert_int_equal(state_open(&st, tmpdir, "t", err), 0);
	assert_int_equal(state_count(st), 0);
	assert_int_equal(state_add(st, "e", err), 0);
	state_close(&st);
	assert_string_equal(records(path), STATE_MAGIC "\n+e\n");
}

static void
test_old_format_is_read_and_rewritten(void **state)
{
	struct state *st;
	char err[ERR_LEN], path[PATH_MAX];

	(void)state;
	assert_int_equal(state_open(&st, tmpdir, "v1", err), 0);
	str_copy(path, sizeof(path), state_path(st));
	state_close(&st);
	write_file(path, STATE_MAGIC_V1 "\na\npending c mda\nb");
	assert_int_equal(state_open(&st, tmpdir, "v1", err), 0);
	assert_true(state_has(st, "a") && state_has(st, "b"));
	assert_string_equal(state_pending_uid(st), "c");
	assert_string_equal(state_pending_token(st), "mda");
	state_close(&st);
	assert_string_equal(records(path), STATE_MAGIC "\n+a\n+b\n?c mda\n");
}

static void
test_long_journal_is_compacted_at_open(void **state)
{
	struct state *st;
	char err[ERR_LEN], path[PATH_MAX];

	(void)state;
	assert_int_equal(state_open(&st, tmpdir, "c", err), 0);
	str_copy(path, sizeof(path), state_path(st));
	assert_int_equal(state_add(st, "keep", err), 0);
	for (int i = 0; i < 600; i++) {
		assert_int_equal(state_set_pending(st, "x", "mda", err), 0);
		assert_int_equal(state_clear_pending(st, err), 0);
	}
	state_close(&st);
	assert_int_equal(state_open(&st, tmpdir, "c", err), 0);
	assert_true(state_has(st, "keep"));
	assert_null(state_pending_uid(st));
	/* Appends go to the compacted file. */
	assert_int_equal(state_add(st, "new", err), 0);
	state_close(&st);
	assert_string_equal(records(path), STATE_MAGIC "\n+keep\n+new\n");
}

static bool
keep_odd(const char *uid, void *arg)
{
	(void)arg;
	return (uid[strlen(uid) - 1] - '0') % 2 == 1;
}

static void
test_prune_drops_and_saves(void **state)
{
	struct state *st;
	char err[ERR_LEN], id[16];

	(void)state;
	assert_int_equal(state_open(&st, tmpdir, "k", err), 0);
	for (int i = 0; i < 10; i++) {
		(void)snprintf(id, sizeof(id), "m%d", i);
		assert_int_equal(state_add(st, id, err), 0);
	}
	assert_int_equal(state_prune(st, keep_odd, NULL), 5);
	assert_int_equal(state_count(st), 5);
	assert_false(state_has(st, "m2"));
	assert_true(state_has(st, "m3"));
	assert_int_equal(state_save(st, err), 0);
	state_close(&st);
	assert_int_equal(state_open(&st, tmpdir, "k", err), 0);
	assert_int_equal(state_count(st), 5);
	state_close(&st);
}

static void
test_second_opener_is_locked_out(void **state)
{
	struct state *a, *b;
	char err[ERR_LEN];

	(void)state;
	assert_int_equal(state_open(&a, tmpdir, "bob@x:110", err), 0);
	assert_int_equal(state_open(&b, tmpdir, "bob@x:110", err), 1);
	assert_null(b);
	assert_non_null(strstr(err, "another postino"));
	/* Another account is independent. */
	assert_int_equal(state_open(&b, tmpdir, "bob@y:110", err), 0);
	state_close(&b);
	state_close(&a);
	assert_int_equal(state_open(&b, tmpdir, "bob@x:110", err), 0);
	state_close(&b);
}

static void
test_corrupt_file_is_an_error(void **state)
{
	static const char *const bad[] = {
		"garbage\nuid\n",
		"garbage",
		STATE_MAGIC "\n+ok 1\n+with space 1\n",
		STATE_MAGIC "\n\n",
		STATE_MAGIC "\n+ctl\x01 1\n",
		STATE_MAGIC "\n+a\n",
		STATE_MAGIC "\n+a -1\n",
		STATE_MAGIC "\n+a 99999999999999999999\n",
		STATE_MAGIC "\n-a 1\n",
		STATE_MAGIC "\n?a\n",
		STATE_MAGIC "\n~a b\n",
		STATE_MAGIC "\n*a 1\n",
		STATE_MAGIC "\na\n",
		STATE_MAGIC_V1 "\nok\nwith space\n",
		STATE_MAGIC_V1 "\nctl\x01\n",
	};
	char err[ERR_LEN], path[PATH_MAX], big[POP3C_UID_MAX + 64];
	struct state *st;

	(void)state;
	/* Learn the path, then replace the file. */
	assert_int_equal(state_open(&st, tmpdir, "c", err), 0);
	str_copy(path, sizeof(path), state_path(st));
	state_close(&st);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		write_file(path, bad[i]);
		assert_int_equal(state_open(&st, tmpdir, "c", err), -1);
		assert_non_null(strstr(err, "corrupt"));
		assert_null(st);
	}
	memset(big, 'x', sizeof(big));
	memcpy(big, STATE_MAGIC "\n+", sizeof(STATE_MAGIC) + 1);
	big[sizeof(big) - 2] = '\n';
	big[sizeof(big) - 1] = '\0';
	write_file(path, big);
	assert_int_equal(state_open(&st, tmpdir, "c", err), -1);
	/* "-" forgets; in the old format a missing newline is a hand edit. */
	write_file(path, STATE_MAGIC "\n+a 1\n+b 1\n-a\n");
	assert_int_equal(state_open(&st, tmpdir, "c", err), 0);
	assert_false(state_has(st, "a"));
	assert_true(state_has(st, "b"));
	state_close(&st);
	write_file(path, STATE_MAGIC_V1 "\na\nb");
	assert_int_equal(state_open(&st, tmpdir, "c", err), 0);
	assert_true(state_has(st, "b"));
	state_close(&st);
}

static void
test_keys_cannot_escape_the_directory(void **state)
{
	struct state *st;
	char err[ERR_LEN];
	const char *p;

	(void)state;
	assert_int_equal(state_open(&st, tmpdir, "../../etc/passwd", err), 0);
	p = state_path(st) + strlen(tmpdir) + 1;
	assert_null(strchr(p, '/'));
	assert_string_equal(p, "%2E.%2F..%2Fetc%2Fpasswd");
	state_close(&st);
	assert_int_equal(state_open(&st, tmpdir, "a@[::1]:1110", err), 0);
	assert_string_equal(state_path(st) + strlen(tmpdir) + 1,
	    "a@%5B%3A%3A1%5D%3A1110");
	state_close(&st);
	assert_int_equal(state_open(&st, tmpdir, "", err), -1);
}

static void
test_invalid_ids_are_refused(void **state)
{
	struct state *st;
	char err[ERR_LEN], big[POP3C_UID_MAX + 2];

	(void)state;
	assert_int_equal(state_open(&st, tmpdir, "v", err), 0);
	assert_int_equal(state_add(st, "a b", err), -1);
	assert_int_equal(state_add(st, "", err), -1);
	assert_int_equal(state_add(st, "x\n", err), -1);
	memset(big, 'u', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	assert_int_equal(state_add(st, big, err), -1);
	big[sizeof(big) - 2] = '\0';
	assert_int_equal(state_add(st, big, err), 0);
	assert_int_equal(state_count(st), 1);
	state_close(&st);
}

static void
test_default_dir_follows_xdg(void **state)
{
	char dir[PATH_MAX], err[ERR_LEN];

	(void)state;
	setenv("XDG_STATE_HOME", "/x/state", 1);
	assert_int_equal(state_default_dir(dir, sizeof(dir), err), 0);
	assert_string_equal(dir, "/x/state/postino");
	setenv("XDG_STATE_HOME", "relative", 1);
	setenv("HOME", "/home/a", 1);
	assert_int_equal(state_default_dir(dir, sizeof(dir), err), 0);
	assert_string_equal(dir, "/home/a/.local/state/postino");
	unsetenv("XDG_STATE_HOME");
	unsetenv("HOME");
	assert_int_equal(state_default_dir(dir, sizeof(dir), err), -1);
}

static void
test_many_ids(void **state)
{
	struct state *st;
	char err[ERR_LEN], id[32];

	(void)state;
	assert_int_equal(state_open(&st, tmpdir, "many", err), 0);
	for (int i = 0; i < 300; i++) {
		(void)snprintf(id, sizeof(id), "%08x-%d", i * 2654435761u, i);
		assert_int_equal(state_add(st, id, err), 0);
	}
	state_close(&st);
	assert_int_equal(state_open(&st, tmpdir, "many", err), 0);
	assert_int_equal(state_count(st), 300);
	for (int i = 0; i < 300; i++) {
		(void)snprintf(id, sizeof(id), "%08x-%d", i * 2654435761u, i);
		assert_true(state_has(st, id));
	}
	state_close(&st);
}

static void
test_pending_survives_and_clears(void **state)
{
	struct state *st;
	char err[ERR_LEN];

	(void)state;
	assert_int_equal(state_open(&st, tmpdir, "p", err), 0);
	assert_null(state_pending_uid(st));
	assert_int_equal(state_add(st, "pending", err), 0);
	assert_int_equal(state_set_pending(st, "u1", "maildir 1.M2P3Q4.h,S=5",
	    err), 0);
	assert_int_equal(state_set_pending(st, "u 1", "x", err), -1);
	assert_int_equal(state_set_pending(st, "u1", "a\nb", err), -1);
	state_close(&st);
	/* A kill now: the next run sees what was in flight. */
	assert_int_equal(state_open(&st, tmpdir, "p", err), 0);
	assert_string_equal(state_pending_uid(st), "u1");
	assert_string_equal(state_pending_token(st),
	    "maildir 1.M2P3Q4.h,S=5");
	assert_false(state_has(st, "u1"));
	/* An id that happens to be "pending" is an id. */
	assert_true(state_has(st, "pending"));
	assert_int_equal(state_add(st, "u1", err), 0);
	assert_null(state_pending_uid(st));
	state_close(&st);
	assert_int_equal(state_open(&st, tmpdir, "p", err), 0);
	assert_null(state_pending_uid(st));
	assert_true(state_has(st, "u1"));
	assert_int_equal(state_set_pending(st, "u2", "mda", err), 0);
	assert_int_equal(state_clear_pending(st, err), 0);
	state_close(&st);
	assert_int_equal(state_open(&st, tmpdir, "p", err), 0);
	assert_null(state_pending_uid(st));
	assert_false(state_has(st, "u2"));
	state_close(&st);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(
		    test_add_appends_one_record_at_once, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_torn_last_record_is_dropped_and_cut, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_old_format_is_read_and_rewritten, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_long_journal_is_compacted_at_open, setup, teardown),
		cmocka_unit_test_setup_teardown(test_prune_drops_and_saves,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_second_opener_is_locked_out, setup, teardown),
		cmocka_unit_test_setup_teardown(test_corrupt_file_is_an_error,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_keys_cannot_escape_the_directory, setup, teardown),
		cmocka_unit_test_setup_teardown(test_invalid_ids_are_refused,
		    setup, teardown),
		cmocka_unit_test(test_default_dir_follows_xdg),
		cmocka_unit_test_setup_teardown(test_many_ids, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_pending_survives_and_clears, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
