/*
 * auth: the backend registry, user-name rules, the passwd-file backend
 * (every scheme, bad lines, locked and unknown users paying the dummy hash,
 * re-reading after an edit, temporary failures, APOP) and postino-passwd
 * run as a program.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <crypt.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testutil.h"
#include "../../src/auth/auth.h"
#include "../../src/auth/auth_hash.h"

#define N_ELEM(a)	(sizeof(a) / sizeof((a)[0]))
#define BYTES(s)	s, sizeof(s) - 1

/* RFC 1939 sec. 7. */
#define APOP_TS		"<1896.697170952@dbc.mtview.ca.us>"
#define APOP_DIGEST	"c4c9334bac560ecc979e58001b3e22fb"

/* Hashes made once for the whole run: yescrypt costs tens of ms. */
static struct {
	char	*yes, *sha512, *sha256, *blf;
} h;

struct fixture {
	char			 dir[64];
	char			 path[128];
	const struct auth_ops	*ops;
	struct auth_db		*db;
};

static char *
make_hash(const char *prefix, unsigned long cost, const char *pass)
{
	struct crypt_data cd;
	char *setting, *out;

	setting = crypt_gensalt_ra(prefix, cost, NULL, 0);
	assert_non_null(setting);
	memset(&cd, 0, sizeof(cd));
	out = crypt_rn(pass, setting, &cd, sizeof(cd));
	assert_non_null(out);
	assert_true(out[0] != '*');
	free(setting);
	return strdup(out);
}

static int
group_setup(void **state)
{
	(void)state;
	h.yes = make_hash("$y$", 0, "yes-pass");
	h.sha512 = make_hash("$6$", 0, "sha512-pass");
	h.sha256 = make_hash("$5$", 0, "sha256-pass");
	h.blf = make_hash("$2b$", 4, "blf-pass");	/* lowest cost: fast */
	return 0;
}

static int
group_teardown(void **state)
{
	(void)state;
	free(h.yes);
	free(h.sha512);
	free(h.sha256);
	free(h.blf);
	return 0;
}

static void
write_bytes(const char *path, const char *text, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, len), (ssize_t)len);
	assert_int_equal(close(fd), 0);
}

static void
write_file(const char *path, const char *text)
{
	write_bytes(path, text, strlen(text));
}

/* A new mtime, so a rewrite is seen even within one clock tick. */
static void
bump_mtime(const char *path, time_t when)
{
	struct timespec ts[2] = { { when, 0 }, { when, 0 } };

	assert_int_equal(utimensat(AT_FDCWD, path, ts, 0), 0);
}

static int
setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	assert_int_equal(str_copy(f->dir, sizeof(f->dir),
	    "/tmp/test_auth.XXXXXX"), 0);
	assert_non_null(mkdtemp(f->dir));
	assert_int_equal(snprintf(f->path, sizeof(f->path), "%s/passwd",
	    f->dir) < (int)sizeof(f->path), 1);
	f->ops = auth_lookup("passwd-file");
	assert_non_null(f->ops);
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
	rmdir(f->path);		/* when a test put a directory there */
	assert_int_equal(rmdir(f->dir), 0);
	free(f);
	return 0;
}

/* Write text as the passwd-file and open it. */
static void
open_with(struct fixture *f, const char *text, size_t len)
{
	char err[ERR_LEN];

	write_bytes(f->path, text, len);
	if (f->ops->open(&f->db, f->path, err) < 0)
		fail_msg("open: %s", err);
	assert_non_null(f->db);
}

static char *
fmt(const char *format, ...) __attribute__((format(printf, 1, 2)));

static char *
fmt(const char *format, ...)
{
	va_list ap;
	char *s;

	va_start(ap, format);
	assert_true(vasprintf(&s, format, ap) >= 0);
	va_end(ap);
	return s;
}

static enum auth_result
verify(struct fixture *f, const char *user, const char *pass)
{
	struct auth_user u;

	return f->ops->verify(f->db, user, pass, &u);
}

/* ---- registry and names ------------------------------------------------ */

static void
test_registry_knows_passwd_file_only(void **state)
{
	static const char *const bad[] = {
		"", "passwd", "passwd-file ", "PASSWD-FILE", "ldap",
	};
	const struct auth_ops *ops = auth_lookup("passwd-file");

	(void)state;
	assert_non_null(ops);
	assert_string_equal(ops->name, "passwd-file");
	assert_non_null(ops->open);
	assert_non_null(ops->verify);
	assert_non_null(ops->apop);
	assert_non_null(ops->lookup);
	assert_non_null(ops->close);
	for (size_t i = 0; i < N_ELEM(bad); i++)
		assert_null(auth_lookup(bad[i]));
}

static void
test_user_names_follow_the_rules(void **state)
{
	static const char *const good[] = {
		"a", "alice", "a.b", "user@example.com", "x-y_z+1", "#hash",
		"\xc3\xa9t\xc3\xa9",
	};
	static const char *const bad[] = {
		"", ".", "..", ".hidden", "a:b", ":", "a/b", "/", "../x",
		"a b", "tab\tname", "nl\nname", "cr\rname", "del\x7f", "\x01",
	};
	char name[AUTH_USER_MAX + 2];

	(void)state;
	for (size_t i = 0; i < N_ELEM(good); i++)
		if (!auth_name_valid(good[i]))
			fail_msg("'%s' refused", good[i]);
	for (size_t i = 0; i < N_ELEM(bad); i++)
		if (auth_name_valid(bad[i]))
			fail_msg("bad name #%zu accepted", i);
	memset(name, 'a', AUTH_USER_MAX);
	name[AUTH_USER_MAX] = '\0';
	assert_true(auth_name_valid(name));
	name[AUTH_USER_MAX] = 'a';
	name[AUTH_USER_MAX + 1] = '\0';
	assert_false(auth_name_valid(name));
}

/* ---- schemes ----------------------------------------------------------- */

static void
test_each_scheme_accepts_right_password_and_refuses_wrong(void **state)
{
	struct fixture *f = *state;
	const struct {
		const char *user, *prefix, *pass;
	} users[] = {
		{ "crypt-y", "{CRYPT}", "yes-pass" },
		{ "yescrypt", "{YESCRYPT}", "yes-pass" },
		{ "bare-y", "", "yes-pass" },
		{ "sha512", "{SHA512-CRYPT}", "sha512-pass" },
		{ "sha512-lc", "{sha512-crypt}", "sha512-pass" },
		{ "crypt-6", "{CRYPT}", "sha512-pass" },
		{ "sha256", "{SHA256-CRYPT}", "sha256-pass" },
		{ "blf", "{BLF-CRYPT}", "blf-pass" },
		{ "bare-2b", "", "blf-pass" },
		{ "plain", "{PLAIN}", "tanstaaf" },
		{ "plain-bang", "{PLAIN}", "!x" },
	};
	const char *hashes[] = {
		h.yes, h.yes, h.yes, h.sha512, h.sha512, h.sha512, h.sha256,
		h.blf, h.blf, "tanstaaf", "!x",
	};
	char *text = strdup(""), *next, *field, *wrong;
	struct auth_user u;

	_Static_assert(N_ELEM(hashes) == N_ELEM(users), "one hash per user");
	for (size_t i = 0; i < N_ELEM(users); i++) {
		field = fmt("%s%s", users[i].prefix, hashes[i]);
		next = fmt("%s%s:%s:%zu:%zu::/home/%s::\n", text,
		    users[i].user, field, 1000 + i, 2000 + i, users[i].user);
		free(field);
		free(text);
		text = next;
	}
	open_with(f, text, strlen(text));
	free(text);
	for (size_t i = 0; i < N_ELEM(users); i++) {
		const char *pass = users[i].pass;

		if (f->ops->verify(f->db, users[i].user, pass, &u) != AUTH_OK)
			fail_msg("%s refused its password", users[i].user);
		assert_string_equal(u.name, users[i].user);
		assert_true(u.has_uid && u.has_gid);
		assert_int_equal(u.uid, 1000 + i);
		assert_int_equal(u.gid, 2000 + i);
		wrong = fmt("%sx", pass);
		assert_int_equal(verify(f, users[i].user, wrong),
		    AUTH_PERMFAIL);
		free(wrong);
		wrong = strndup(pass, strlen(pass) - 1);
		assert_int_equal(verify(f, users[i].user, wrong),
		    AUTH_PERMFAIL);
		free(wrong);
		assert_int_equal(verify(f, users[i].user, ""), AUTH_PERMFAIL);
		assert_int_equal(verify(f, users[i].user, "wrong"),
		    AUTH_PERMFAIL);
	}
	/* A wrong password leaves no account in the result. */
	memset(&u, 'x', sizeof(u));
	assert_int_equal(f->ops->verify(f->db, "plain", "nope", &u),
	    AUTH_PERMFAIL);
	assert_string_equal(u.name, "");
}

static void
test_unknown_locked_and_unusable_users_are_refused(void **state)
{
	struct fixture *f = *state;
	/* Each listed with the password that would be right if unlocked. */
	const struct {
		const char *user, *pass;
	} bad[] = {
		{ "nobody", "x" },
		{ "bang", "yes-pass" }, { "star", "yes-pass" },
		{ "crypt-bang", "yes-pass" }, { "crypt-star", "yes-pass" },
		{ "empty", "" }, { "empty-crypt", "" }, { "empty-plain", "" },
		{ "bang-plain", "tanstaaf" }, { "unknown", "tanstaaf" },
		{ "no-brace", "tanstaaf" }, { "notcrypt", "$9$abc$def" },
		{ "uid0", "tanstaaf" }, { "gid0", "tanstaaf" },
		{ "PLAIN", "tanstaaf" },
	};
	char *text;
	struct auth_user u;

	text = fmt("bang:!%s\nstar:*%s\ncrypt-bang:{CRYPT}!%s\n"
	    "crypt-star:{YESCRYPT}*%s\nempty:\nempty-crypt:{CRYPT}:1:1\n"
	    "empty-plain:{PLAIN}::\nbang-plain:!{PLAIN}tanstaaf\n"
	    "unknown:{ROT13}tanstaaf\nno-brace:{PLAIN tanstaaf\n"
	    "notcrypt:{CRYPT}$9$abc$def\n"
	    "uid0:{PLAIN}tanstaaf:0:100::/root::\n"
	    "gid0:{PLAIN}tanstaaf:100:0::/root::\n"
	    "plain:{PLAIN}tanstaaf\n",
	    h.yes, h.yes, h.yes, h.yes);
	open_with(f, text, strlen(text));
	free(text);
	for (size_t i = 0; i < N_ELEM(bad); i++) {
		if (verify(f, bad[i].user, bad[i].pass) != AUTH_PERMFAIL)
			fail_msg("%s was not refused", bad[i].user);
		assert_int_equal(f->ops->lookup(f->db, bad[i].user, &u),
		    AUTH_PERMFAIL);
		assert_int_equal(f->ops->apop(f->db, bad[i].user, APOP_TS,
		    APOP_DIGEST, &u), AUTH_PERMFAIL);
	}
	/* The control: names are case-sensitive, "plain" itself works. */
	assert_int_equal(verify(f, "plain", "tanstaaf"), AUTH_OK);
}

/* ---- file format ------------------------------------------------------- */

static void
test_malformed_lines_are_skipped_and_the_rest_still_counts(void **state)
{
	static const char *const skipped[] = {
		"nopass", "u12x", "uover", "uneg", "uplus", "uspace", "umax",
		"gbad", "relhome", "nul", "nul2", "longline", "lastnul",
	};
	struct fixture *f = *state;
	char longline[20000], text[32768], *p = text;
	struct auth_user u;
	size_t n;

	n = (size_t)snprintf(longline, sizeof(longline),
	    "longline:{PLAIN}p:1:1::/");
	memset(longline + n, 'a', sizeof(longline) - n - 1);
	longline[sizeof(longline) - 1] = '\0';
#define ADD(s)	do {						\
		memcpy(p, s, sizeof(s) - 1);			\
		p += sizeof(s) - 1;				\
	} while (0)
	ADD("first:{PLAIN}p1\n");
	ADD("nopass\n");
	ADD(":{PLAIN}p\n");
	ADD("u12x:{PLAIN}p:12x:1\n");
	ADD("uover:{PLAIN}p:99999999999:1\n");
	ADD("uneg:{PLAIN}p:-1:1\n");
	ADD("uplus:{PLAIN}p:+5:1\n");
	ADD("uspace:{PLAIN}p: 5:1\n");
	ADD("umax:{PLAIN}p:4294967295:1\n");
	ADD("gbad:{PLAIN}p:5:x\n");
	ADD("relhome:{PLAIN}p:5:5::home/relhome::\n");
	ADD("nul\0x:{PLAIN}p\n");
	ADD("nul2:{PLAIN}p\0q\n");
	ADD("a/b:{PLAIN}p\n");
	ADD(".dot:{PLAIN}p\n");
	ADD("sp ace:{PLAIN}p\n");
	memcpy(p, longline, strlen(longline));
	p += strlen(longline);
	ADD("\n");
	for (int i = 0; i < 300; i++)
		*p++ = 'n';
	ADD(":{PLAIN}p\n");
	ADD("good:{PLAIN}ok\n");
	ADD("lastnul:{PLAIN}p\0");
#undef ADD
	assert_true(p < text + sizeof(text));
	open_with(f, text, (size_t)(p - text));
	for (size_t i = 0; i < N_ELEM(skipped); i++) {
		if (verify(f, skipped[i], "p") != AUTH_PERMFAIL)
			fail_msg("%s accepted from a bad line", skipped[i]);
		assert_int_equal(f->ops->lookup(f->db, skipped[i], &u),
		    AUTH_PERMFAIL);
	}
	assert_int_equal(verify(f, "first", "p1"), AUTH_OK);
	assert_int_equal(verify(f, "good", "ok"), AUTH_OK);
}

static void
test_optional_fields_may_be_missing_or_empty(void **state)
{
	static const char text[] =
	    "# comment:{PLAIN}p\n"
	    "\n"
	    "#x:{PLAIN}p\n"
	    "two:{PLAIN}p\n"
	    "empty:{PLAIN}p:::::::\n"
	    "uidonly:{PLAIN}p:1001\n"
	    "full:{PLAIN}p:1002:1003:Full Name:/home/full:/bin/sh:"
	    "userdb_quota=a:b\n"
	    "crlf:{PLAIN}p:1004:1005::/home/crlf::\r\n"
	    "nonl:{PLAIN}p::1006::/home/nonl";
	struct fixture *f = *state;
	struct auth_user u;

	open_with(f, BYTES(text));
	assert_int_equal(verify(f, "#x", "p"), AUTH_PERMFAIL);
	assert_int_equal(verify(f, "# comment", "p"), AUTH_PERMFAIL);

	assert_int_equal(f->ops->verify(f->db, "two", "p", &u), AUTH_OK);
	assert_false(u.has_uid);
	assert_false(u.has_gid);
	assert_string_equal(u.home, "");

	assert_int_equal(f->ops->lookup(f->db, "empty", &u), AUTH_OK);
	assert_false(u.has_uid || u.has_gid);
	assert_string_equal(u.home, "");

	assert_int_equal(f->ops->lookup(f->db, "uidonly", &u), AUTH_OK);
	assert_true(u.has_uid);
	assert_int_equal(u.uid, 1001);
	assert_false(u.has_gid);

	assert_int_equal(f->ops->lookup(f->db, "full", &u), AUTH_OK);
	assert_string_equal(u.name, "full");
	assert_true(u.has_uid && u.has_gid);
	assert_int_equal(u.uid, 1002);
	assert_int_equal(u.gid, 1003);
	assert_string_equal(u.home, "/home/full");

	assert_int_equal(f->ops->verify(f->db, "crlf", "p", &u), AUTH_OK);
	assert_int_equal(u.gid, 1005);
	assert_string_equal(u.home, "/home/crlf");

	assert_int_equal(f->ops->verify(f->db, "nonl", "p", &u), AUTH_OK);
	assert_false(u.has_uid);
	assert_int_equal(u.gid, 1006);
	assert_string_equal(u.home, "/home/nonl");
}

static void
test_first_line_of_a_duplicate_user_counts(void **state)
{
	static const char text[] =
	    "zed:{PLAIN}z\nalice:{PLAIN}first:1001\nbob:{PLAIN}b\n"
	    "alice:{PLAIN}second:1002\n";
	struct fixture *f = *state;
	struct auth_user u;

	open_with(f, BYTES(text));
	assert_int_equal(f->ops->verify(f->db, "alice", "first", &u), AUTH_OK);
	assert_int_equal(u.uid, 1001);
	assert_int_equal(verify(f, "alice", "second"), AUTH_PERMFAIL);
	assert_int_equal(verify(f, "bob", "b"), AUTH_OK);
	assert_int_equal(verify(f, "zed", "z"), AUTH_OK);
}

static void
test_thousands_of_users_are_all_found(void **state)
{
	enum { USERS = 5000 };
	struct fixture *f = *state;
	char name[32], pass[32];
	size_t cap = USERS * 40, len = 0;
	char *text = malloc(cap);
	struct auth_user u;

	assert_non_null(text);
	/* Descending, so the file's order is not the sorted order. */
	for (int i = USERS - 1; i >= 0; i--)
		len += (size_t)snprintf(text + len, cap - len,
		    "u%d:{PLAIN}p%d:%d\n", i, i, 1000 + i);
	open_with(f, text, len);
	free(text);
	for (int i = 0; i < USERS; i += 97) {
		snprintf(name, sizeof(name), "u%d", i);
		snprintf(pass, sizeof(pass), "p%d", i);
		assert_int_equal(f->ops->verify(f->db, name, pass, &u),
		    AUTH_OK);
		assert_int_equal(u.uid, 1000 + i);
	}
	assert_int_equal(verify(f, "u5000", "p5000"), AUTH_PERMFAIL);
}

/* ---- names, lengths and the dummy hash --------------------------------- */

static void
test_bad_user_names_are_refused(void **state)
{
	static const char text[] = "a:{PLAIN}p\nb:{PLAIN}p\n";
	static const char *const bad[] = {
		"a:b", "a:{PLAIN}p", "a/b", "/a", "../a", ".a", "", "a\n",
		"a b", "a\r",
	};
	struct fixture *f = *state;
	char name[AUTH_USER_MAX + 2];
	struct auth_user u;

	open_with(f, BYTES(text));
	for (size_t i = 0; i < N_ELEM(bad); i++) {
		assert_int_equal(verify(f, bad[i], "p"), AUTH_PERMFAIL);
		assert_int_equal(f->ops->lookup(f->db, bad[i], &u),
		    AUTH_PERMFAIL);
	}
	memset(name, 'a', sizeof(name) - 1);
	name[sizeof(name) - 1] = '\0';
	assert_int_equal(verify(f, name, "p"), AUTH_PERMFAIL);
	assert_int_equal(verify(f, "a", "p"), AUTH_OK);
}

static void
test_password_length_is_bounded(void **state)
{
	struct fixture *f = *state;
	char max[AUTH_PASS_MAX + 1], over[AUTH_PASS_MAX + 2];
	char *text;

	memset(max, 'm', sizeof(max) - 1);
	max[sizeof(max) - 1] = '\0';
	memset(over, 'o', sizeof(over) - 1);
	over[sizeof(over) - 1] = '\0';
	text = fmt("max:{PLAIN}%s\nover:{PLAIN}%s\n", max, over);
	open_with(f, text, strlen(text));
	free(text);
	assert_int_equal(verify(f, "max", max), AUTH_OK);
	/* Over the limit is refused even when it is the stored secret. */
	assert_int_equal(verify(f, "over", over), AUTH_PERMFAIL);
}

static void
test_every_refusal_pays_exactly_one_hash(void **state)
{
	struct fixture *f = *state;
	char over[AUTH_PASS_MAX + 2];
	const struct {
		const char *user, *pass;
		enum auth_result want;
	} cases[] = {
		{ "nobody", "x", AUTH_PERMFAIL },
		{ "locked", "yes-pass", AUTH_PERMFAIL },
		{ "weird", "x", AUTH_PERMFAIL },
		{ "a:b", "x", AUTH_PERMFAIL },
		{ "../etc", "x", AUTH_PERMFAIL },
		{ "yes", over, AUTH_PERMFAIL },
		{ "yes", "wrong", AUTH_PERMFAIL },
		{ "yes", "yes-pass", AUTH_OK },
		{ "plain", "wrong", AUTH_PERMFAIL },
		{ "plain", "tanstaaf", AUTH_OK },
	};
	char *text;

	memset(over, 'o', sizeof(over) - 1);
	over[sizeof(over) - 1] = '\0';
	text = fmt("yes:%s\nlocked:!%s\nweird:{ROT13}x\n"
	    "plain:{PLAIN}tanstaaf\n", h.yes, h.yes);
	open_with(f, text, strlen(text));
	free(text);
	for (size_t i = 0; i < N_ELEM(cases); i++) {
		unsigned long before = auth_hash_count();

		assert_int_equal(verify(f, cases[i].user, cases[i].pass),
		    cases[i].want);
		if (auth_hash_count() != before + 1)
			fail_msg("case %zu computed %lu hashes", i,
			    auth_hash_count() - before);
	}
}

static void
test_hash_helper_round_trips_and_refuses_garbage(void **state)
{
	static const char *const methods[] = { "$y$", "$6$", "$5$", "$2b$" };
	char hash[AUTH_HASH_MAX], small[8], err[ERR_LEN];

	(void)state;
	for (size_t i = 0; i < N_ELEM(methods); i++) {
		assert_int_equal(auth_hash_make(methods[i], 0, "pw", hash,
		    sizeof(hash), err), 0);
		assert_memory_equal(hash, methods[i], strlen(methods[i]));
		assert_true(auth_hash_verify("pw", hash));
		assert_false(auth_hash_verify("pW", hash));
	}
	assert_int_equal(auth_hash_make("$nonsense$", 0, "pw", hash,
	    sizeof(hash), err), -1);
	assert_true(err[0] != '\0');
	assert_int_equal(auth_hash_make("$6$", 0, "pw", small, sizeof(small),
	    err), -1);
	assert_false(auth_hash_verify("", ""));
	assert_false(auth_hash_verify("x", "*"));
	assert_false(auth_hash_verify("x", "!$6$abc$def"));
	assert_false(auth_hash_verify("x", "$6$"));
}

/* ---- re-reading and failures ------------------------------------------- */

static void
test_edit_is_seen_without_reopen(void **state)
{
	struct fixture *f = *state;
	char *text;

	text = fmt("yes:%s\nplain:{PLAIN}aaaa\n", h.yes);
	open_with(f, text, strlen(text));
	free(text);
	bump_mtime(f->path, 1600000000);
	assert_int_equal(verify(f, "plain", "aaaa"), AUTH_OK);

	/* Same size, same inode: only the mtime tells. */
	text = fmt("yes:%s\nplain:{PLAIN}bbbb\n", h.yes);
	write_file(f->path, text);
	free(text);
	bump_mtime(f->path, 1700000000);
	assert_int_equal(verify(f, "plain", "bbbb"), AUTH_OK);
	assert_int_equal(verify(f, "plain", "aaaa"), AUTH_PERMFAIL);

	/* A new file renamed over the old one, as editors do. */
	{
		char tmp[160];

		snprintf(tmp, sizeof(tmp), "%s/passwd.new", f->dir);
		write_file(tmp, "new:{PLAIN}n\n");
		assert_int_equal(rename(tmp, f->path), 0);
	}
	assert_int_equal(verify(f, "new", "n"), AUTH_OK);
	assert_int_equal(verify(f, "yes", "yes-pass"), AUTH_PERMFAIL);
}

static void
test_empty_file_opens_and_users_appended_later_work(void **state)
{
	struct fixture *f = *state;
	struct auth_user u;
	FILE *fp;

	open_with(f, "", 0);
	assert_int_equal(verify(f, "late", "l"), AUTH_PERMFAIL);
	assert_int_equal(f->ops->lookup(f->db, "late", &u), AUTH_PERMFAIL);
	fp = fopen(f->path, "a");
	assert_non_null(fp);
	fputs("late:{PLAIN}l::::/home/late::\n", fp);
	assert_int_equal(fclose(fp), 0);
	assert_int_equal(f->ops->verify(f->db, "late", "l", &u), AUTH_OK);
	assert_string_equal(u.home, "/home/late");
}

/* quota_bytes=/quota_messages= in the extra field; anything odd: TEMPFAIL. */
static void
test_quota_in_the_extra_field(void **state)
{
	static const char *const bad[] = {
		"quota_bytes=", "quota_bytes=100M", "quota_bytes=-1",
		"quota_bytes=+1", "quota_bytes= 1", "quota_messages=1.5",
		"quota_bytes=18446744073709551616", "quota_messages=10000001",
		"quota_bytes=1 quota_bytes=1", "x=y quota_messages=",
		"quota_bytes=000000000000000000000001",
	};
	struct fixture *f = *state;
	struct auth_user u;

	open_with(f, BYTES(
	    "none:{PLAIN}p::::/h::\n"
	    "both:{PLAIN}p::::/h::userdb_mail=maildir:~/M quota_bytes=100 "
	    "quota_messages=10000000\n"
	    "zero:{PLAIN}p::::/h::quota_bytes=0\n"
	    "max:{PLAIN}p::::/h::\tquota_bytes=18446744073709551615\t\n"
	    "other:{PLAIN}p::::/h::quota_bytesx=1 myquota_bytes=x\n"));
	assert_int_equal(f->ops->lookup(f->db, "none", &u), AUTH_OK);
	assert_false(u.quota.has_bytes || u.quota.has_messages);
	assert_int_equal(f->ops->lookup(f->db, "both", &u), AUTH_OK);
	assert_true(u.quota.has_bytes && u.quota.has_messages);
	assert_int_equal(u.quota.bytes, 100);
	assert_int_equal(u.quota.messages, 10000000);
	assert_int_equal(f->ops->lookup(f->db, "zero", &u), AUTH_OK);
	assert_true(u.quota.has_bytes && !u.quota.has_messages);
	assert_int_equal(u.quota.bytes, 0);
	assert_int_equal(f->ops->lookup(f->db, "max", &u), AUTH_OK);
	assert_true(u.quota.bytes == UINT64_MAX);
	assert_int_equal(f->ops->lookup(f->db, "other", &u), AUTH_OK);
	assert_false(u.quota.has_bytes || u.quota.has_messages);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char *text = fmt("bad:{PLAIN}p::::/h::%s\nok:{PLAIN}p\n",
		    bad[i]);

		f->ops->close(&f->db);
		open_with(f, text, strlen(text));
		free(text);
		assert_int_equal(f->ops->lookup(f->db, "bad", &u),
		    AUTH_TEMPFAIL);
		assert_false(u.quota.has_bytes);
		assert_int_equal(f->ops->lookup(f->db, "ok", &u), AUTH_OK);
	}
}

/*
 * Dovecot's userdb_quota_rule=*:storage=N[BKMGT] / bytes= / messages= in
 * the extra field, for sites moving from Dovecot; the rest of Dovecot's
 * rule language is refused (TEMPFAIL), never guessed at.
 */
static void
test_dovecot_quota_rule_in_the_extra_field(void **state)
{
	static const char *const bad[] = {
		"userdb_quota_rule=", "userdb_quota_rule=*",
		"userdb_quota_rule=*:", "userdb_quota_rule=Trash:storage=1M",
		"userdb_quota_rule=*:storage=+100M",
		"userdb_quota_rule=*:storage=10%", "userdb_quota_rule=*:ignore",
		"userdb_quota_rule=*:storage=", "userdb_quota_rule=*:storage=M",
		"userdb_quota_rule=*:storage=10X", "userdb_quota_rule=*:storage=1M:",
		"userdb_quota_rule=*:storage=-1", "userdb_quota_rule=*:backend=1M",
		"userdb_quota_rule=*:storage=17179869184T",
		"userdb_quota_rule=*:messages=10000001",
		"userdb_quota_rule=*:messages=5k",
		"userdb_quota_rule=*:storage=1M quota_bytes=5",
		"userdb_quota_rule=*:storage=1M:bytes=5",
	};
	struct fixture *f = *state;
	struct auth_user u;

	open_with(f, BYTES(
	    "mb:{PLAIN}p::::/h::userdb_quota_rule=*:storage=100M\n"
	    "kb:{PLAIN}p::::/h::userdb_quota_rule=*:storage=10\n"
	    "lower:{PLAIN}p::::/h::userdb_quota_rule=*:storage=2k\n"
	    "b:{PLAIN}p::::/h::userdb_quota_rule=*:bytes=5000\n"
	    "both:{PLAIN}p::::/h::userdb_quota_rule=*:storage=1G:messages=7\n"
	    "mix:{PLAIN}p::::/h::userdb_quota_rule=*:storage=3B "
	    "quota_messages=2 userdb_quota_rule2=Trash:storage=+10%\n"));
	assert_int_equal(f->ops->lookup(f->db, "mb", &u), AUTH_OK);
	assert_true(u.quota.has_bytes && !u.quota.has_messages);
	assert_true(u.quota.bytes == 100u * 1024 * 1024);
	assert_int_equal(f->ops->lookup(f->db, "kb", &u), AUTH_OK);
	assert_int_equal(u.quota.bytes, 10240);
	assert_int_equal(f->ops->lookup(f->db, "lower", &u), AUTH_OK);
	assert_int_equal(u.quota.bytes, 2048);
	assert_int_equal(f->ops->lookup(f->db, "b", &u), AUTH_OK);
	assert_int_equal(u.quota.bytes, 5000);
	assert_int_equal(f->ops->lookup(f->db, "both", &u), AUTH_OK);
	assert_true(u.quota.bytes == 1024u * 1024 * 1024);
	assert_true(u.quota.has_messages && u.quota.messages == 7);
	assert_int_equal(f->ops->lookup(f->db, "mix", &u), AUTH_OK);
	assert_true(u.quota.bytes == 3 && u.quota.messages == 2);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char *text = fmt("bad:{PLAIN}p::::/h::%s\nok:{PLAIN}p\n",
		    bad[i]);

		f->ops->close(&f->db);
		open_with(f, text, strlen(text));
		free(text);
		assert_int_equal(f->ops->lookup(f->db, "bad", &u),
		    AUTH_TEMPFAIL);
		assert_int_equal(f->ops->lookup(f->db, "ok", &u), AUTH_OK);
	}
}

static void
test_missing_or_unreadable_file_is_a_temporary_failure(void **state)
{
	struct fixture *f = *state;
	struct auth_user u;

	open_with(f, BYTES("plain:{PLAIN}tanstaaf\n"));
	assert_int_equal(verify(f, "plain", "tanstaaf"), AUTH_OK);

	assert_int_equal(unlink(f->path), 0);
	assert_int_equal(verify(f, "plain", "tanstaaf"), AUTH_TEMPFAIL);
	assert_int_equal(verify(f, "nobody", "x"), AUTH_TEMPFAIL);
	assert_int_equal(f->ops->lookup(f->db, "plain", &u), AUTH_TEMPFAIL);
	assert_int_equal(f->ops->apop(f->db, "plain", APOP_TS, APOP_DIGEST,
	    &u), AUTH_TEMPFAIL);

	/* Not a regular file: unreadable even for root. */
	assert_int_equal(mkdir(f->path, 0700), 0);
	assert_int_equal(verify(f, "plain", "tanstaaf"), AUTH_TEMPFAIL);
	assert_int_equal(rmdir(f->path), 0);

	/* chmod changes only the ctime; root reads through it anyway. */
	write_file(f->path, "plain:{PLAIN}tanstaaf\n");
	assert_int_equal(verify(f, "plain", "tanstaaf"), AUTH_OK);
	if (geteuid() != 0) {
		assert_int_equal(chmod(f->path, 0), 0);
		assert_int_equal(verify(f, "plain", "tanstaaf"), AUTH_TEMPFAIL);
		assert_int_equal(chmod(f->path, 0600), 0);
	}
	assert_int_equal(verify(f, "plain", "tanstaaf"), AUTH_OK);
}

static void
test_open_fails_with_a_reason(void **state)
{
	struct fixture *f = *state;
	struct auth_db *db = (struct auth_db *)&db;
	char err[ERR_LEN], longpath[PATH_MAX + 16];

	assert_int_equal(f->ops->open(&db, "/nonexistent/passwd", err), -1);
	assert_null(db);
	assert_non_null(strstr(err, "/nonexistent/passwd"));
	assert_non_null(strstr(err, strerror(ENOENT)));

	assert_int_equal(f->ops->open(&db, f->dir, err), -1);
	assert_null(db);
	assert_non_null(strstr(err, f->dir));

	memset(longpath, 'x', sizeof(longpath) - 1);
	longpath[0] = '/';
	longpath[sizeof(longpath) - 1] = '\0';
	assert_int_equal(f->ops->open(&db, longpath, err), -1);
	assert_null(db);
	assert_true(err[0] != '\0');
}

/* ---- APOP -------------------------------------------------------------- */

static void
test_apop_rfc1939_example_and_refusals(void **state)
{
	static const char *const wrong[] = {
		"c4c9334bac560ecc979e58001b3e22fc",	/* last digit */
		"c4c9334bac560ecc979e58001b3e22f",	/* short */
		"c4c9334bac560ecc979e58001b3e22fb0",	/* long */
		"g4c9334bac560ecc979e58001b3e22fb",	/* not hex */
		" c4c9334bac560ecc979e58001b3e22f",
		"",
	};
	struct fixture *f = *state;
	struct auth_user u;
	char *text;

	text = fmt("mrose:{PLAIN}tanstaaf:1001:1002::/home/mrose::\n"
	    "hashed:{SHA512-CRYPT}%s\n", h.sha512);
	open_with(f, text, strlen(text));
	free(text);
	assert_int_equal(f->ops->apop(f->db, "mrose", APOP_TS, APOP_DIGEST,
	    &u), AUTH_OK);
	assert_string_equal(u.name, "mrose");
	assert_int_equal(u.uid, 1001);
	assert_string_equal(u.home, "/home/mrose");
	assert_int_equal(f->ops->apop(f->db, "mrose", APOP_TS,
	    "C4C9334BAC560ECC979E58001B3E22FB", &u), AUTH_OK);
	for (size_t i = 0; i < N_ELEM(wrong); i++)
		assert_int_equal(f->ops->apop(f->db, "mrose", APOP_TS,
		    wrong[i], &u), AUTH_PERMFAIL);
	assert_int_equal(f->ops->apop(f->db, "mrose", "<other@ts>",
	    APOP_DIGEST, &u), AUTH_PERMFAIL);
	/* Only plaintext-equivalent secrets can do APOP. */
	assert_int_equal(f->ops->apop(f->db, "hashed", APOP_TS, APOP_DIGEST,
	    &u), AUTH_PERMFAIL);
	assert_int_equal(f->ops->apop(f->db, "nobody", APOP_TS, APOP_DIGEST,
	    &u), AUTH_PERMFAIL);
	assert_int_equal(f->ops->apop(f->db, "mrose/..", APOP_TS, APOP_DIGEST,
	    &u), AUTH_PERMFAIL);
	/* MD5(timestamp) alone, as for an empty secret, is not a pass. */
	assert_int_equal(f->ops->apop(f->db, "hashed", APOP_TS,
	    "6d7379174f7df9fb329480e5c47c1f1a", &u), AUTH_PERMFAIL);
}

/* ---- postino-passwd ---------------------------------------------------- */

static void
test_postino_passwd_output_verifies(void **state)
{
	struct fixture *f = *state;
	const struct {
		const char *scheme, *label;
	} cases[] = {
		{ NULL, "{CRYPT}$y$" },
		{ "YESCRYPT", "{CRYPT}$y$" },
		{ "sha512-crypt", "{SHA512-CRYPT}$6$" },
		{ "SHA256-CRYPT", "{SHA256-CRYPT}$5$" },
		{ "BLF-CRYPT", "{BLF-CRYPT}$2b$" },
		{ "PLAIN", "{PLAIN}s3cret pass" },
	};
	const char *tool = tu_passwd_tool();
	char out[1024], *text, *nl;

	if (tool == NULL)
		skip();
	open_with(f, "", 0);
	for (size_t i = 0; i < N_ELEM(cases); i++) {
		const char *argv[] = { tool, "-s", cases[i].scheme, NULL };

		if (cases[i].scheme == NULL)
			argv[1] = NULL;
		assert_int_equal(tu_run_tool(argv, BYTES("s3cret pass\n"), out,
		    sizeof(out)), 0);
		assert_memory_equal(out, cases[i].label,
		    strlen(cases[i].label));
		nl = strchr(out, '\n');
		assert_non_null(nl);
		assert_string_equal(nl, "\n");
		*nl = '\0';
		text = fmt("u%zu:%s\n", i, out);
		write_file(f->path, text);
		free(text);
		bump_mtime(f->path, 1600000000 + (time_t)i);
		text = fmt("u%zu", i);
		assert_int_equal(verify(f, text, "s3cret pass"), AUTH_OK);
		assert_int_equal(verify(f, text, "s3cret pasS"), AUTH_PERMFAIL);
		free(text);
	}
}

static void
test_postino_passwd_line_mode_and_crlf(void **state)
{
	struct fixture *f = *state;
	const char *tool = tu_passwd_tool();
	const char *argv[] = { tool, "-u", "bob", "-s", "SHA512-CRYPT", NULL };
	char out[2048], max[AUTH_PASS_MAX + 3];
	struct auth_user u;

	if (tool == NULL)
		skip();
	assert_int_equal(tu_run_tool(argv, BYTES("pw\r\nignored\n"), out,
	    sizeof(out)), 0);
	assert_memory_equal(out, "bob:{SHA512-CRYPT}$6$", 21);
	assert_non_null(strstr(out, "::::::\n"));
	open_with(f, out, strlen(out));
	assert_int_equal(f->ops->verify(f->db, "bob", "pw", &u), AUTH_OK);
	assert_false(u.has_uid);

	/* The longest password, with and without CRLF, no final newline. */
	argv[1] = "-s";
	argv[2] = "PLAIN";
	argv[3] = NULL;
	memset(max, 'm', AUTH_PASS_MAX);
	memcpy(max + AUTH_PASS_MAX, "\r\n", 3);
	assert_int_equal(tu_run_tool(argv, max, AUTH_PASS_MAX + 2, out,
	    sizeof(out)), 0);
	assert_int_equal(strlen(out), strlen("{PLAIN}\n") + AUTH_PASS_MAX);
	assert_int_equal(tu_run_tool(argv, max, AUTH_PASS_MAX, out, sizeof(out)),
	    0);
}

static void
test_postino_passwd_refuses_bad_input(void **state)
{
	const char *tool = tu_passwd_tool();
	char over[AUTH_PASS_MAX + 2], out[256];
	const struct {
		const char *a1, *a2;
		const char *in;
		size_t len;
	} cases[] = {
		{ NULL, NULL, BYTES("") },
		{ NULL, NULL, BYTES("\n") },
		{ NULL, NULL, BYTES("\r\n") },
		{ NULL, NULL, BYTES("a\0b\n") },
		{ NULL, NULL, BYTES("a\rb\n") },
		{ NULL, NULL, over, sizeof(over) },
		{ "-s", "ROT13", BYTES("pw\n") },
		{ "-s", "", BYTES("pw\n") },
		{ "-s", "PLAIN", BYTES("p:w\n") },
		{ "-u", "a:b", BYTES("pw\n") },
		{ "-u", "a/b", BYTES("pw\n") },
		{ "-u", ".a", BYTES("pw\n") },
		{ "-u", "", BYTES("pw\n") },
		{ "extra", NULL, BYTES("pw\n") },
		{ "-x", NULL, BYTES("pw\n") },
	};

	(void)state;
	if (tool == NULL)
		skip();
	memset(over, 'o', sizeof(over) - 1);
	over[sizeof(over) - 1] = '\n';
	for (size_t i = 0; i < N_ELEM(cases); i++) {
		const char *argv[] = { tool, cases[i].a1, cases[i].a2, NULL };

		if (tu_run_tool(argv, cases[i].in, cases[i].len, out,
		    sizeof(out)) == 0)
			fail_msg("case %zu accepted", i);
		if (out[0] != '\0')
			fail_msg("case %zu printed '%s'", i, out);
	}
}

static void
test_postino_passwd_help_is_a_manual(void **state)
{
	const char *tool = tu_passwd_tool();
	const char *argv[] = { tool, "-h", NULL };
	char out[8192];

	(void)state;
	if (tool == NULL)
		skip();
	assert_int_equal(tu_run_tool(argv, "", 0, out, sizeof(out)), 0);
	assert_non_null(strstr(out, "SYNOPSIS"));
	assert_non_null(strstr(out, "YESCRYPT"));
	assert_non_null(strstr(out, "{CRYPT}"));
}

int
main(void)
{
#define T(t) cmocka_unit_test_setup_teardown(t, setup, teardown)
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_registry_knows_passwd_file_only),
		cmocka_unit_test(test_user_names_follow_the_rules),
		T(test_each_scheme_accepts_right_password_and_refuses_wrong),
		T(test_unknown_locked_and_unusable_users_are_refused),
		T(test_malformed_lines_are_skipped_and_the_rest_still_counts),
		T(test_optional_fields_may_be_missing_or_empty),
		T(test_first_line_of_a_duplicate_user_counts),
		T(test_thousands_of_users_are_all_found),
		T(test_bad_user_names_are_refused),
		T(test_password_length_is_bounded),
		T(test_every_refusal_pays_exactly_one_hash),
		cmocka_unit_test(
		    test_hash_helper_round_trips_and_refuses_garbage),
		T(test_edit_is_seen_without_reopen),
		T(test_empty_file_opens_and_users_appended_later_work),
		T(test_missing_or_unreadable_file_is_a_temporary_failure),
		T(test_quota_in_the_extra_field),
		T(test_dovecot_quota_rule_in_the_extra_field),
		T(test_open_fails_with_a_reason),
		T(test_apop_rfc1939_example_and_refusals),
		T(test_postino_passwd_output_verifies),
		T(test_postino_passwd_line_mode_and_crlf),
		cmocka_unit_test(test_postino_passwd_refuses_bad_input),
		cmocka_unit_test(test_postino_passwd_help_is_a_manual),
	};
#undef T

	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
