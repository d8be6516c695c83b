/*
 * passwd-file authentication: every scheme, bad lines, locked and unknown
 * users (with the dummy hash), re-reading after an edit, APOP.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <crypt.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../../src/auth/auth.h"

struct fixture {
	char			 dir[64];
	char			 path[128];
	const struct auth_ops	*ops;
	struct auth_db		*db;
};

static char *
hash(const char *prefix, unsigned long cost, const char *pass)
{
	char setting[CRYPT_GENSALT_OUTPUT_SIZE];
	struct crypt_data cd;
	char *out;

	assert_non_null(crypt_gensalt_rn(prefix, cost, NULL, 0, setting,
	    sizeof(setting)));
	memset(&cd, 0, sizeof(cd));
	out = crypt_rn(pass, setting, &cd, sizeof(cd));
	assert_non_null(out);
	return strdup(out);
}

static void
write_file(const char *path, const char *text)
{
	FILE *fp = fopen(path, "w");

	assert_non_null(fp);
	fputs(text, fp);
	assert_int_equal(fclose(fp), 0);
}

static int
setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	char *y = hash("$y$", 0, "yes-pass");
	char *sha = hash("$6$", 0, "sha-pass");
	char *sha256 = hash("$5$", 0, "sha256-pass");
	char *blf = hash("$2b$", 4, "blf-pass");
	char text[4096], err[ERR_LEN];

	strcpy(f->dir, "/tmp/test_auth.XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->path, sizeof(f->path), "%s/passwd", f->dir);
	snprintf(text, sizeof(text),
	    "# a comment\n"
	    "\n"
	    "yes:{CRYPT}%s:1001:1001::/home/yes::\n"
	    "bare:%s::::/home/bare::\n"
	    "sha:{SHA512-CRYPT}%s:1002:1002::/home/sha::\n"
	    "sha256:{SHA256-CRYPT}%s\n"
	    "blf:{BLF-CRYPT}%s:1003::::\n"
	    "plain:{PLAIN}tanstaaf::::/home/plain::\n"
	    "locked:!{PLAIN}x::::::\n"
	    "empty:::::::\n"
	    "root:{PLAIN}x:0:0::/root::\n"
	    "weird:{ROT13}x::::::\n"
	    "baduid:{PLAIN}x:12x:1::::\n"
	    "overflow:{PLAIN}x:99999999999:1::::\n"
	    "nopassfield\n"
	    "ba/d:{PLAIN}x::::::\n"
	    "alice:{PLAIN}first::::::\n"
	    "alice:{PLAIN}second::::::\n",
	    y, y, sha, sha256, blf);
	free(y);
	free(sha);
	free(sha256);
	free(blf);
	write_file(f->path, text);
	f->ops = auth_lookup("passwd-file");
	assert_non_null(f->ops);
	assert_null(auth_lookup("ldap"));
	assert_int_equal(f->ops->open(&f->db, f->path, err), 0);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;

	f->ops->close(&f->db);
	assert_null(f->db);
	unlink(f->path);
	rmdir(f->dir);
	free(f);
	return 0;
}

static void
test_each_scheme_accepts_right_and_refuses_wrong(void **state)
{
	static const struct {
		const char *user, *pass;
	} users[] = {
		{ "yes", "yes-pass" }, { "bare", "yes-pass" },
		{ "sha", "sha-pass" }, { "sha256", "sha256-pass" },
		{ "blf", "blf-pass" }, { "plain", "tanstaaf" },
	};
	struct fixture *f = *state;
	struct auth_user u;

	for (size_t i = 0; i < sizeof(users) / sizeof(users[0]); i++) {
		assert_int_equal(f->ops->verify(f->db, users[i].user,
		    users[i].pass, &u), AUTH_OK);
		assert_string_equal(u.name, users[i].user);
		assert_int_equal(f->ops->verify(f->db, users[i].user, "wrong",
		    &u), AUTH_PERMFAIL);
		assert_int_equal(f->ops->verify(f->db, users[i].user, "", &u),
		    AUTH_PERMFAIL);
	}
}

static void
test_account_fields_are_returned(void **state)
{
	struct fixture *f = *state;
	struct auth_user u;

	assert_int_equal(f->ops->verify(f->db, "yes", "yes-pass", &u), AUTH_OK);
	assert_true(u.has_uid && u.has_gid);
	assert_int_equal(u.uid, 1001);
	assert_string_equal(u.home, "/home/yes");
	assert_int_equal(f->ops->lookup(f->db, "blf", &u), AUTH_OK);
	assert_true(u.has_uid);
	assert_false(u.has_gid);
	assert_string_equal(u.home, "");
	assert_int_equal(f->ops->lookup(f->db, "sha256", &u), AUTH_OK);
	assert_false(u.has_uid);
}

static void
test_unknown_locked_and_malformed_users_fail(void **state)
{
	static const char *const bad[] = {
		"nobody", "locked", "empty", "root", "weird", "baduid",
		"overflow", "nopassfield", "ba/d", "", ".hidden", "a:b",
		"tab\tname",
	};
	struct fixture *f = *state;
	struct auth_user u;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (f->ops->verify(f->db, bad[i], "x", &u) != AUTH_PERMFAIL)
			fail_msg("user '%s' was not refused", bad[i]);
		assert_int_equal(f->ops->lookup(f->db, bad[i], &u),
		    AUTH_PERMFAIL);
	}
}

static void
test_first_of_duplicate_lines_counts(void **state)
{
	struct fixture *f = *state;
	struct auth_user u;

	assert_int_equal(f->ops->verify(f->db, "alice", "first", &u), AUTH_OK);
	assert_int_equal(f->ops->verify(f->db, "alice", "second", &u),
	    AUTH_PERMFAIL);
}

static void
test_overlong_password_is_refused(void **state)
{
	struct fixture *f = *state;
	char pass[AUTH_PASS_MAX + 2];
	struct auth_user u;

	memset(pass, 'a', sizeof(pass) - 1);
	pass[sizeof(pass) - 1] = '\0';
	assert_int_equal(f->ops->verify(f->db, "plain", pass, &u),
	    AUTH_PERMFAIL);
}

static void
test_edit_is_seen_without_reopen(void **state)
{
	struct fixture *f = *state;
	struct timespec later[2] = { { 2000000000, 0 }, { 2000000000, 0 } };
	struct auth_user u;

	write_file(f->path, "plain:{PLAIN}changed::::::\n");
	/* A different mtime even when the edit lands in the same second. */
	assert_int_equal(utimensat(AT_FDCWD, f->path, later, 0), 0);
	assert_int_equal(f->ops->verify(f->db, "plain", "changed", &u), AUTH_OK);
	assert_int_equal(f->ops->verify(f->db, "plain", "tanstaaf", &u),
	    AUTH_PERMFAIL);
	assert_int_equal(f->ops->verify(f->db, "yes", "yes-pass", &u),
	    AUTH_PERMFAIL);
}

static void
test_unreadable_file_is_a_temporary_failure(void **state)
{
	struct fixture *f = *state;
	struct auth_user u;

	assert_int_equal(unlink(f->path), 0);
	assert_int_equal(f->ops->verify(f->db, "plain", "tanstaaf", &u),
	    AUTH_TEMPFAIL);
	assert_int_equal(f->ops->lookup(f->db, "plain", &u), AUTH_TEMPFAIL);
}

static void
test_missing_file_fails_open(void **state)
{
	struct fixture *f = *state;
	struct auth_db *db = NULL;
	char err[ERR_LEN];

	assert_int_equal(f->ops->open(&db, "/nonexistent/passwd", err), -1);
	assert_non_null(strstr(err, "/nonexistent/passwd"));
	assert_null(db);
}

static void
test_apop_rfc1939_example(void **state)
{
	static const char ts[] = "<1896.697170952@dbc.mtview.ca.us>";
	struct fixture *f = *state;
	struct auth_user u;

	assert_int_equal(f->ops->apop(f->db, "plain", ts,
	    "c4c9334bac560ecc979e58001b3e22fb", &u), AUTH_OK);
	assert_int_equal(f->ops->apop(f->db, "plain", ts,
	    "C4C9334BAC560ECC979E58001B3E22FB", &u), AUTH_OK);
	assert_int_equal(f->ops->apop(f->db, "plain", ts,
	    "c4c9334bac560ecc979e58001b3e22fc", &u), AUTH_PERMFAIL);
	assert_int_equal(f->ops->apop(f->db, "plain", ts, "c4c9", &u),
	    AUTH_PERMFAIL);
	/* Only plaintext-equivalent secrets can do APOP. */
	assert_int_equal(f->ops->apop(f->db, "sha", ts,
	    "c4c9334bac560ecc979e58001b3e22fb", &u), AUTH_PERMFAIL);
	assert_int_equal(f->ops->apop(f->db, "nobody", ts,
	    "c4c9334bac560ecc979e58001b3e22fb", &u), AUTH_PERMFAIL);
}

int
main(void)
{
#define T(t) cmocka_unit_test_setup_teardown(t, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(test_each_scheme_accepts_right_and_refuses_wrong),
		T(test_account_fields_are_returned),
		T(test_unknown_locked_and_malformed_users_fail),
		T(test_first_of_duplicate_lines_counts),
		T(test_overlong_password_is_refused),
		T(test_edit_is_seen_without_reopen),
		T(test_unreadable_file_is_a_temporary_failure),
		T(test_missing_file_fails_open),
		T(test_apop_rfc1939_example),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
