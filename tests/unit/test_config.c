/*
 * postinod.conf: defaults, every type of value, and bad input stopping
 * start-up with "file:line: reason".
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../src/server/config.h"

static char path[] = "/tmp/postino-test-config-XXXXXX";

static int
load(const char *text, struct config *cf, char *err)
{
	int fd = mkstemp(path);
	int r;

	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	r = config_load(cf, path, err);
	unlink(path);
	strcpy(path + strlen(path) - 6, "XXXXXX");
	return r;
}

static void
test_defaults_apply_to_an_empty_file(void **state)
{
	struct config cf;
	char err[ERR_LEN];

	(void)state;
	assert_int_equal(load("# nothing\n\n", &cf, err), 0);
	assert_int_equal(cf.nlisten, 2);
	assert_string_equal(cf.listen[0].text, "*:110");
	assert_string_equal(cf.listen[1].text, "[::]:110");
	assert_string_equal(cf.mailbox, "maildir:~/Maildir");
	assert_int_equal(cf.idle_timeout, 600);
	assert_int_equal(cf.max_bad_commands, 20);
	assert_true(cf.login_workers >= 1);
	assert_false(cf.apop);
}

static void
test_values_of_every_type_are_read(void **state)
{
	struct config cf;
	char err[ERR_LEN];

	(void)state;
	assert_int_equal(load(
	    "listen = 127.0.0.1:1110\n"
	    "  listen=[::1]:1110  \n"
	    "mailbox = mbox:/var/mail/%u\n"
	    "apop = yes\n"
	    "idle_timeout = 900\n"
	    "max_mailbox_size = 18446744073709551615\n", &cf, err), 0);
	assert_int_equal(cf.nlisten, 2);
	assert_string_equal(cf.listen[1].text, "[::1]:1110");
	assert_string_equal(cf.mailbox, "mbox:/var/mail/%u");
	assert_true(cf.apop);
	assert_int_equal(cf.idle_timeout, 900);
	assert_true(cf.max_mailbox_size == UINT64_MAX);
}

static void
test_bad_input_names_file_and_line(void **state)
{
	static const struct {
		const char *text, *want;
	} cases[] = {
		{ "bogus = 1\n", ":1: unknown key 'bogus'" },
		{ "\n\nidle_timeout = 0\n", ":3: idle_timeout: expected a number" },
		{ "idle_timeout = 86401\n", ":1: idle_timeout" },
		{ "idle_timeout = -1\n", ":1: idle_timeout" },
		{ "idle_timeout = 10x\n", ":1: idle_timeout" },
		{ "idle_timeout = 99999999999999999999999\n", ":1: idle_timeout" },
		{ "apop = maybe\n", ":1: apop: expected yes or no" },
		{ "listen = 127.0.0.1\n", ":1: listen" },
		{ "listen = 127.0.0.1:65536\n", ":1: listen" },
		{ "listen = ::1:110\n", ":1: listen" },
		{ "listen = [::1:110\n", ":1: listen" },
		{ "mailbox = imap:/x\n", ":1: mailbox: expected maildir:PATH" },
		{ "mailbox = maildir:\n", ":1: mailbox: empty path" },
		{ "just words\n", ":1: expected key = value" },
		{ "auth_mechanisms = PLAIN GSSAPI\n",
		    ":1: auth_mechanisms: unknown mechanism 'GSSAPI'" },
		{ "tls_min_version = SSLv3\n", ":1: tls_min_version: expected" },
		{ "listen_tls = 127.0.0.1:995\n", "listen_tls needs tls_cert" },
		{ "tls_cert = /x.pem\n", "tls_cert and tls_key go together" },
		{ "listen = 127.0.0.1:110 proxi\n", ":1: listen: expected" },
		{ "listen = 127.0.0.1:110 proxy proxy\n", ":1: listen" },
		{ "listen = 127.0.0.1:110 proxy\n",
		    "needs proxy_trusted_networks" },
		{ "proxy_trusted_networks = 10.0.0.1/8\n",
		    ":1: proxy_trusted_networks: '10.0.0.1/8': host bits" },
		{ "proxy_trusted_networks = db.example\n",
		    ":1: proxy_trusted_networks: 'db.example': not an IP" },
		{ "login_trusted_networks = 10.0.0.1/8\n",
		    ":1: login_trusted_networks: '10.0.0.1/8': host bits" },
		{ "auth_queue_per_network = 0\n", ":1: auth_queue_per_network" },
		{ "passdb = ldap\n", ":1: passdb: expected passwd-file or pgsql" },
		{ "auth_mechanisms = PLAIN OAUTHBEARER\n",
		    "auth_mechanisms OAUTHBEARER and XOAUTH2 need oauth2_jwt_key" },
		{ "auth_mechanisms = xoauth2\n", "need oauth2_jwt_key" },
		{ "oauth2_user_claim =\n", "oauth2_user_claim: empty" },
		{ "passdb = pgsql\n", "passdb = pgsql needs pgsql_conninfo" },
		{ "passdb = pgsql\npgsql_conninfo = host=x password=y\n",
		    "no password= here" },
		{ "passdb = pgsql\npgsql_conninfo = host=x bogus=1\n",
		    "pgsql_conninfo:" },
		{ "passdb = pgsql\npgsql_conninfo = host=x\n"
		    "password_query = SELECT password FROM users\n", "no $1" },
	};
	struct config cf;
	char err[ERR_LEN];

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		assert_int_equal(load(cases[i].text, &cf, err), -1);
		if (strstr(err, cases[i].want) == NULL)
			fail_msg("case %zu: '%s' lacks '%s'", i, err, cases[i].want);
		assert_non_null(strstr(err, "/tmp/postino-test-config-"));
	}
}

static void
test_mechanisms_are_normalised_and_tls_defaults_to_995(void **state)
{
	struct config cf;
	char err[ERR_LEN];

	(void)state;
	assert_int_equal(load("auth_mechanisms =  plain   scram-sha-256 \n"
	    "tls_cert = /c.pem\ntls_key = /k.pem\n", &cf, err), 0);
	assert_string_equal(cf.auth_mechanisms, "PLAIN SCRAM-SHA-256");
	assert_int_equal(cf.auth_mechs, SASL_MECH_BIT(SASL_MECH_PLAIN) |
	    SASL_MECH_BIT(SASL_MECH_SCRAM));
	assert_int_equal(cf.nlisten_tls, 2);
	assert_string_equal(cf.listen_tls[0].text, "*:995");
	assert_string_equal(cf.listen_tls[1].text, "[::]:995");
	assert_string_equal(cf.tls_min_version, "TLSv1.2");
	assert_false(cf.auth_allow_cleartext);
}

static void
test_too_many_listen_lines_are_refused(void **state)
{
	char text[CONFIG_LISTEN_MAX * 32 + 64] = "";
	struct config cf;
	char err[ERR_LEN];

	(void)state;
	for (int i = 0; i <= CONFIG_LISTEN_MAX; i++) {
		char line[40];

		snprintf(line, sizeof(line), "listen = 127.0.0.1:%d\n", 2000 + i);
		strcat(text, line);
	}
	assert_int_equal(load(text, &cf, err), -1);
	assert_non_null(strstr(err, "at most"));
}

static void
test_proxy_listeners_and_pgsql_passdb_are_read(void **state)
{
	struct config cf;
	char err[ERR_LEN];

	(void)state;
	assert_int_equal(load(
	    "listen = 127.0.0.1:1110 proxy\n"
	    "listen = 127.0.0.1:1111\n"
	    "listen_tls = [::1]:1995\tproxy\n"
	    "tls_cert = /c.pem\ntls_key = /k.pem\n"
	    "proxy_trusted_networks = 127.0.0.1, 10.0.0.0/8 ::1\n"
	    "passdb = pgsql\n"
	    "pgsql_conninfo = host=127.0.0.1 port=5432 dbname=mail\n", &cf,
	    err), 0);
	assert_true(cf.listen[0].proxy);
	assert_string_equal(cf.listen[0].text, "127.0.0.1:1110");
	assert_false(cf.listen[1].proxy);
	assert_true(cf.listen_tls[0].proxy);
	assert_string_equal(cf.listen_tls[0].text, "[::1]:1995");
	assert_int_equal(cf.proxy_trusted.n, 3);
	assert_string_equal(cf.passdb, "pgsql");
	assert_non_null(strstr(cf.password_query, "$1"));
	assert_int_equal(load("# nothing\n", &cf, err), 0);
	assert_string_equal(cf.passdb, "passwd-file");
	assert_false(cf.listen[0].proxy);
	assert_int_equal(cf.proxy_trusted.n, 0);
}

static void
test_missing_file_is_an_error(void **state)
{
	struct config cf;
	char err[ERR_LEN];

	(void)state;
	assert_int_equal(config_load(&cf, "/nonexistent/postinod.conf", err), -1);
	assert_non_null(strstr(err, "/nonexistent/postinod.conf"));
}

/* Whole names: "-PLUS" is not SCRAM-SHA-256 with something after it. */
static void
test_scram_plus_alone_does_not_enable_scram_sha_256(void **state)
{
	struct config cf;
	char err[ERR_LEN];

	(void)state;
	assert_int_equal(load("auth_mechanisms = SCRAM-SHA-256-PLUS\n", &cf,
	    err), 0);
	assert_int_equal(cf.auth_mechs, SASL_MECH_BIT(SASL_MECH_SCRAM_PLUS));
	assert_false(cf.auth_mechs & SASL_MECH_BIT(SASL_MECH_SCRAM));
	assert_int_equal(load("# default\n", &cf, err), 0);
	assert_int_equal(cf.auth_mechs, SASL_MECH_BIT(SASL_MECH_PLAIN) |
	    SASL_MECH_BIT(SASL_MECH_LOGIN));
	assert_int_equal(load("auth_mechanisms = SCRAM-SHA-256-PLUSX\n", &cf,
	    err), -1);
	assert_int_equal(load("auth_mechanisms = SCRAM-SHA\n", &cf, err), -1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults_apply_to_an_empty_file),
		cmocka_unit_test(test_values_of_every_type_are_read),
		cmocka_unit_test(test_bad_input_names_file_and_line),
		cmocka_unit_test(test_too_many_listen_lines_are_refused),
		cmocka_unit_test(test_mechanisms_are_normalised_and_tls_defaults_to_995),
		cmocka_unit_test(
		    test_scram_plus_alone_does_not_enable_scram_sha_256),
		cmocka_unit_test(test_proxy_listeners_and_pgsql_passdb_are_read),
		cmocka_unit_test(test_missing_file_is_an_error),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
