/*
 * ACCOUNT arguments, the configuration file, .netrc and the password
 * sources: table-driven good and bad input.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "testutil.h"
#include "../../src/client/account.h"

#define N_ELEM(a)	(sizeof(a) / sizeof((a)[0]))

static char tmpdir[PATH_MAX];

static int
setup(void **state)
{
	(void)state;
	if (tu_tmpdir_make(tmpdir, sizeof(tmpdir), "account") < 0)
		return -1;
	unsetenv("POSTINO_PASSWORD");
	return setenv("HOME", tmpdir, 1);
}

static int
teardown(void **state)
{
	(void)state;
	return tu_tmpdir_remove(tmpdir);
}

static void
write_file(const char *name, const char *text, mode_t mode, char *path,
    size_t size)
{
	FILE *f;

	assert_int_equal(str_fmt(path, size, "%s/%s", tmpdir, name), 0);
	f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	assert_int_equal(fclose(f), 0);
	assert_int_equal(chmod(path, mode), 0);
}

static void
test_urls(void **state)
{
	static const struct {
		const char	*in;
		const char	*user, *host, *port;
		bool		 pop3s;
	} good[] = {
		{ "host", "", "host", "", false },
		{ "mail.example.org", "", "mail.example.org", "", false },
		{ "alice@host", "alice", "host", "", false },
		{ "alice@host:1110", "alice", "host", "1110", false },
		{ "pop3://alice@host:1110/", "alice", "host", "1110", false },
		{ "POP3S://host", "", "host", "", true },
		{ "pop3s://bob@[::1]:995", "bob", "::1", "995", true },
		{ "[2001:db8::1]", "", "2001:db8::1", "", false },
		{ "a%40b.org@host", "a@b.org", "host", "", false },
		{ "a@b.org@host", "a@b.org", "host", "", false },
		{ "127.0.0.1:00110", "", "127.0.0.1", "110", false },
	};
	static const char *const bad[] = {
		"", "@host", "imap://host", "host:0", "host:65536", "host:-1",
		"host:1x", "host:", "[::1", "[::1]x", "[]", "ho st", "host/x",
		"a%4@host", "a%0a@host", "-host", "[::1]:99999", "http://h",
	};
	struct account a;
	char err[ERR_LEN];

	(void)state;
	for (size_t i = 0; i < N_ELEM(good); i++) {
		assert_int_equal(account_parse_url(&a, good[i].in, err), 0);
		assert_string_equal(a.user, good[i].user);
		assert_string_equal(a.host, good[i].host);
		assert_string_equal(a.port, good[i].port);
		assert_int_equal(a.pop3s, good[i].pop3s);
	}
	for (size_t i = 0; i < N_ELEM(bad); i++) {
		if (account_parse_url(&a, bad[i], err) == 0)
			fail_msg("accepted \"%s\"", bad[i]);
		assert_true(strlen(err) > 0);
	}
}

static void
test_finish_defaults_and_key(void **state)
{
	struct account a;
	char err[ERR_LEN], key[600];

	(void)state;
	assert_int_equal(account_parse_url(&a, "u@h", err), 0);
	account_finish(&a);
	assert_int_equal(a.tls, ACCOUNT_TLS_STLS);
	assert_string_equal(a.port, "110");
	assert_int_equal(account_parse_url(&a, "pop3s://u@h", err), 0);
	account_finish(&a);
	assert_int_equal(a.tls, ACCOUNT_TLS_IMPLICIT);
	assert_string_equal(a.port, "995");
	assert_int_equal(account_parse_url(&a, "pop3s://u@[::1]", err), 0);
	a.tls = ACCOUNT_TLS_NO;
	account_finish(&a);
	assert_string_equal(a.port, "110");
	assert_int_equal(account_key(&a, key, sizeof(key)), 0);
	assert_string_equal(key, "u@[::1]:110");
}

static void
test_parse_tls(void **state)
{
	enum account_tls t;

	(void)state;
	assert_int_equal(account_parse_tls("stls", &t), 0);
	assert_int_equal(t, ACCOUNT_TLS_STLS);
	assert_int_equal(account_parse_tls("implicit", &t), 0);
	assert_int_equal(t, ACCOUNT_TLS_IMPLICIT);
	assert_int_equal(account_parse_tls("no", &t), 0);
	assert_int_equal(t, ACCOUNT_TLS_NO);
	assert_int_equal(account_parse_tls("yes", &t), -1);
	assert_int_equal(account_parse_tls("", &t), -1);
}

static const char config_text[] =
    "# postino accounts\n"
    "account home\n"
    "\thost pop.example.org\n"
    "\tuser alice\n"
    "\ttls implicit\n"
    "\tpassword-command  echo pw  \n"
    "\tmaildir ~/Mail\n"
    "\n"
    "account work\n"
    "  family 6\n"
    "  url pop3://bob@[::1]:1110\n"
    "  mbox /var/mail/bob\n";

static void
test_config_accounts(void **state)
{
	struct account a;
	char err[ERR_LEN], path[PATH_MAX], want[PATH_MAX];

	(void)state;
	write_file("config", config_text, 0600, path, sizeof(path));
	assert_int_equal(account_load(&a, path, "home", err), 1);
	assert_string_equal(a.name, "home");
	assert_string_equal(a.host, "pop.example.org");
	assert_string_equal(a.user, "alice");
	assert_int_equal(a.tls, ACCOUNT_TLS_IMPLICIT);
	assert_string_equal(a.password_command, "echo pw");
	assert_int_equal(str_fmt(want, sizeof(want), "%s/Mail", tmpdir), 0);
	assert_string_equal(a.maildir, want);

	assert_int_equal(account_load(&a, path, "work", err), 1);
	assert_string_equal(a.name, "work");
	assert_string_equal(a.host, "::1");
	assert_string_equal(a.port, "1110");
	assert_string_equal(a.user, "bob");
	assert_int_equal(a.family, AF_INET6);
	assert_string_equal(a.mbox, "/var/mail/bob");

	assert_int_equal(account_load(&a, path, "nope", err), 0);
	/* A name in the file wins; anything else is a URL. */
	assert_int_equal(account_resolve(&a, "home", path, err), 0);
	assert_string_equal(a.host, "pop.example.org");
	assert_int_equal(account_resolve(&a, "otherhost", path, err), 0);
	assert_string_equal(a.host, "otherhost");
	assert_int_equal(account_resolve(&a, "x@home", path, err), 0);
	assert_string_equal(a.host, "home");
	assert_int_equal(account_resolve(&a, "home", NULL, err), 0);
	assert_string_equal(a.host, "home");
}

static void
test_bad_config_names_file_and_line(void **state)
{
	static const struct {
		const char	*text;
		const char	*why;
	} bad[] = {
		{ "account a\nhost h\ncolour blue\n", ":3: unknown key" },
		{ "account a\nport 99999\n", ":2: bad value for port" },
		{ "account a\ntls maybe\n", ":2: bad value for tls" },
		{ "account a b\n", ":1: bad account name" },
		{ "account a\nhost\n", ":2: host needs a value" },
		{ "account b\nfamily 5\naccount a\nhost h\n", ":2: bad value" },
		{ "account a\nuser u\n", "has no host" },
	};
	struct account a;
	char err[ERR_LEN], path[PATH_MAX];

	(void)state;
	for (size_t i = 0; i < N_ELEM(bad); i++) {
		write_file("config", bad[i].text, 0600, path, sizeof(path));
		assert_int_equal(account_load(&a, path, "a", err), -1);
		if (strstr(err, bad[i].why) == NULL)
			fail_msg("case %zu: \"%s\" lacks \"%s\"", i, err,
			    bad[i].why);
	}
}

static void
test_netrc(void **state)
{
	static const char text[] =
	    "machine other login x password nope\n"
	    "macdef init\nmachine pop.example.org password fake\n\n"
	    "machine pop.example.org\n  login bob\n  password bobpw\n"
	    "machine pop.example.org login alice password \"a b\\\"c\"\n"
	    "default login anon password anonpw\n";
	struct account a;
	char err[ERR_LEN], path[PATH_MAX], pass[ACCOUNT_PASS_MAX + 1];

	(void)state;
	write_file(".netrc", text, 0600, path, sizeof(path));
	assert_int_equal(account_parse_url(&a, "alice@pop.example.org", err),
	    0);
	assert_int_equal(account_netrc(&a, path, pass, sizeof(pass), err), 1);
	assert_string_equal(pass, "a b\"c");
	/* No user: the first entry for the host gives both. */
	assert_int_equal(account_parse_url(&a, "pop.example.org", err), 0);
	assert_int_equal(account_netrc(&a, path, pass, sizeof(pass), err), 1);
	assert_string_equal(a.user, "bob");
	assert_string_equal(pass, "bobpw");
	/* Unknown host: default. */
	assert_int_equal(account_parse_url(&a, "elsewhere", err), 0);
	assert_int_equal(account_netrc(&a, path, pass, sizeof(pass), err), 1);
	assert_string_equal(pass, "anonpw");
	/* Known host, unknown user: the default's login differs: none. */
	assert_int_equal(account_parse_url(&a, "carol@other", err), 0);
	assert_int_equal(account_netrc(&a, path, pass, sizeof(pass), err), 0);
	/* Readable by others: ignored. */
	assert_int_equal(chmod(path, 0644), 0);
	assert_int_equal(account_parse_url(&a, "alice@pop.example.org", err),
	    0);
	assert_int_equal(account_netrc(&a, path, pass, sizeof(pass), err), 0);
	unlink(path);
	assert_int_equal(account_netrc(&a, path, pass, sizeof(pass), err), 0);
}

static void
test_password_command(void **state)
{
	char err[ERR_LEN], pass[ACCOUNT_PASS_MAX + 1];

	(void)state;
	assert_int_equal(account_password_command("printf 'hunter2\\nrest\\n'",
	    pass, sizeof(pass), err), 0);
	assert_string_equal(pass, "hunter2");
	assert_int_equal(account_password_command("echo x; exit 3", pass,
	    sizeof(pass), err), -1);
	assert_non_null(strstr(err, "exit status 3"));
	assert_int_equal(account_password_command("true", pass, sizeof(pass),
	    err), -1);
	assert_non_null(strstr(err, "no password"));
	/* An endless producer: we read one bounded line and move on. */
	assert_int_equal(account_password_command(
	    "head -c 100000 /dev/zero | tr '\\0' x; true", pass,
	    sizeof(pass), err), -1);
	assert_non_null(strstr(err, "too long"));
}

static void
test_password_sources_in_order(void **state)
{
	struct account a;
	char err[ERR_LEN], path[PATH_MAX], pass[ACCOUNT_PASS_MAX + 1];

	(void)state;
	write_file(".netrc", "machine h login u password fromnetrc\n", 0600,
	    path, sizeof(path));
	assert_int_equal(account_parse_url(&a, "u@h", err), 0);
	/* An explicit --password-command beats the environment. */
	str_copy(a.password_command, sizeof(a.password_command),
	    "echo fromcli");
	a.password_command_cli = true;
	setenv("POSTINO_PASSWORD", "fromenv", 1);
	assert_int_equal(account_password(&a, pass, sizeof(pass), err), 0);
	assert_string_equal(pass, "fromcli");
	/* The environment beats the account's password-command... */
	str_copy(a.password_command, sizeof(a.password_command),
	    "echo fromcmd");
	a.password_command_cli = false;
	assert_int_equal(account_password(&a, pass, sizeof(pass), err), 0);
	assert_string_equal(pass, "fromenv");
	unsetenv("POSTINO_PASSWORD");
	/* ...which beats a (maybe stale) .netrc. */
	assert_int_equal(account_password(&a, pass, sizeof(pass), err), 0);
	assert_string_equal(pass, "fromcmd");
	/* A failing command is an error, not a fall back to .netrc. */
	str_copy(a.password_command, sizeof(a.password_command), "exit 3");
	assert_int_equal(account_password(&a, pass, sizeof(pass), err), -1);
	assert_non_null(strstr(err, "password command failed"));
	a.password_command[0] = '\0';
	assert_int_equal(account_password(&a, pass, sizeof(pass), err), 0);
	assert_string_equal(pass, "fromnetrc");
	unlink(path);
	/* No user anywhere: the login name. */
	assert_int_equal(account_parse_url(&a, "h", err), 0);
	setenv("POSTINO_PASSWORD", "x", 1);
	assert_int_equal(account_password(&a, pass, sizeof(pass), err), 0);
	assert_true(strlen(a.user) > 0);
	unsetenv("POSTINO_PASSWORD");
}

/*
 * OAuth: the token comes from token-command only (first line, trailing
 * line end stripped, OAUTH_TOKEN_MAX octets at most), never from
 * $POSTINO_PASSWORD or .netrc; a token-command without OAuth, or OAuth
 * without one, is a clear error.
 */
static void
test_token_command(void **state)
{
	struct account a;
	char err[ERR_LEN], *tok = malloc(ACCOUNT_SECRET_MAX + 1);
	char path[PATH_MAX];

	(void)state;
	assert_non_null(tok);
	write_file("config", "account o\nurl pop3s://u@h\nauth xoauth2\n"
	    "token-command printf 'ya29.tok\\r\\n'\n", 0600, path,
	    sizeof(path));
	assert_int_equal(account_load(&a, path, "o", err), 1);
	assert_true(account_oauth(&a));
	setenv("POSTINO_PASSWORD", "fromenv", 1);
	assert_int_equal(account_password(&a, tok, ACCOUNT_SECRET_MAX + 1,
	    err), 0);
	assert_string_equal(tok, "ya29.tok");
	unsetenv("POSTINO_PASSWORD");
	/* A 3 KB token (Microsoft-sized) passes whole. */
	str_copy(a.token_command, sizeof(a.token_command),
	    "head -c 3000 /dev/zero | tr '\\0' t; echo");
	assert_int_equal(account_password(&a, tok, ACCOUNT_SECRET_MAX + 1,
	    err), 0);
	assert_int_equal(strlen(tok), 3000);
	/* Over the bound, empty, failing: clear errors. */
	str_copy(a.token_command, sizeof(a.token_command),
	    "head -c 100000 /dev/zero | tr '\\0' t; true");
	assert_int_equal(account_password(&a, tok, ACCOUNT_SECRET_MAX + 1,
	    err), -1);
	assert_non_null(strstr(err, "token too long"));
	str_copy(a.token_command, sizeof(a.token_command), "echo");
	assert_int_equal(account_password(&a, tok, ACCOUNT_SECRET_MAX + 1,
	    err), -1);
	assert_non_null(strstr(err, "printed no token"));
	str_copy(a.token_command, sizeof(a.token_command), "exit 2");
	assert_int_equal(account_password(&a, tok, ACCOUNT_SECRET_MAX + 1,
	    err), -1);
	assert_non_null(strstr(err, "token command failed (exit status 2)"));
	a.token_command[0] = '\0';
	assert_int_equal(account_password(&a, tok, ACCOUNT_SECRET_MAX + 1,
	    err), -1);
	assert_non_null(strstr(err, "needs a token-command"));
	str_copy(a.token_command, sizeof(a.token_command), "echo t");
	str_copy(a.auth, sizeof(a.auth), "plain");
	assert_false(account_oauth(&a));
	assert_int_equal(account_password(&a, tok, ACCOUNT_SECRET_MAX + 1,
	    err), -1);
	assert_non_null(strstr(err, "token-command needs --auth"));
	str_copy(a.auth, sizeof(a.auth), "OAuthBearer");
	assert_true(account_oauth(&a));
	free(tok);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_urls),
		cmocka_unit_test(test_finish_defaults_and_key),
		cmocka_unit_test(test_parse_tls),
		cmocka_unit_test_setup_teardown(test_config_accounts, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(
		    test_bad_config_names_file_and_line, setup, teardown),
		cmocka_unit_test_setup_teardown(test_netrc, setup, teardown),
		cmocka_unit_test_setup_teardown(test_password_command, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_password_sources_in_order,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_token_command, setup,
		    teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
