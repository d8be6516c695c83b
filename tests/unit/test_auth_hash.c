/*
 * The stored-secret helpers both passdbs share (src/auth/auth_hash.c):
 * the {SCHEME} parser on every kind of field, and the dummy hash that
 * users without a real check pay.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "../../src/auth/auth_hash.h"

#define N_ELEM(a)	(sizeof(a) / sizeof((a)[0]))

static void
test_scheme_of_simple_fields(void **state)
{
	static const struct {
		const char	*field, *secret;
		enum auth_scheme scheme;
		bool		 why;
	} cases[] = {
		{ "", "", AUTH_SCHEME_LOCKED, false },
		{ "*", "*", AUTH_SCHEME_LOCKED, false },
		{ "!$6$abc", "!$6$abc", AUTH_SCHEME_LOCKED, false },
		{ "{PLAIN}", "", AUTH_SCHEME_LOCKED, false },
		{ "{PLAIN}pencil", "pencil", AUTH_SCHEME_PLAIN, false },
		{ "{plain}pencil", "pencil", AUTH_SCHEME_PLAIN, false },
		/* {PLAIN} takes '*' and '!' as password characters. */
		{ "{PLAIN}*x", "*x", AUTH_SCHEME_PLAIN, false },
		{ "{CRYPT}!x", "!x", AUTH_SCHEME_LOCKED, false },
		{ "{SHA512-CRYPT}*", "*", AUTH_SCHEME_LOCKED, false },
		{ "{NOPE}x", "{NOPE}x", AUTH_SCHEME_UNUSABLE, true },
		{ "{PLAINx", "{PLAINx", AUTH_SCHEME_UNUSABLE, true },
		{ "{}x", "{}x", AUTH_SCHEME_UNUSABLE, true },
		{ "{SCRAM-SHA-256}1,AA==,AA==,AA==", "1,AA==,AA==,AA==",
		    AUTH_SCHEME_UNUSABLE, true },
		{ "$9$x", "$9$x", AUTH_SCHEME_UNUSABLE, true },
	};
	const char *secret, *why;

	(void)state;
	for (size_t i = 0; i < N_ELEM(cases); i++) {
		assert_int_equal(auth_hash_scheme(cases[i].field, &secret,
		    &why), cases[i].scheme);
		assert_string_equal(secret, cases[i].secret);
		assert_int_equal(why != NULL, cases[i].why);
	}
}

static void
test_scheme_of_real_hashes_and_scram_secrets(void **state)
{
	char hash[AUTH_HASH_MAX], field[AUTH_SCRAM_TEXT_MAX + 32];
	char err[ERR_LEN];
	struct auth_scram k;
	const char *secret, *why;

	(void)state;
	assert_int_equal(auth_hash_make("$6$", 0, "pencil", hash,
	    sizeof(hash), err), 0);
	assert_int_equal(auth_hash_scheme(hash, &secret, &why),
	    AUTH_SCHEME_CRYPT);
	assert_ptr_equal(secret, hash);
	assert_null(why);
	assert_int_equal(auth_scram_make("pencil", 4096, &k, err), 0);
	memcpy(field, "{scram-sha-256}", 15);
	assert_int_equal(auth_scram_format(&k, field + 15,
	    sizeof(field) - 15), 0);
	assert_int_equal(auth_hash_scheme(field, &secret, &why),
	    AUTH_SCHEME_SCRAM);
	assert_ptr_equal(secret, field + 15);
	assert_null(why);
	assert_true(auth_scram_verify_text("pencil", secret));
	assert_false(auth_scram_verify_text("pencil!", secret));
	assert_false(auth_scram_verify_text("pencil", "4096,xx"));
}

static void
test_dummy_learns_crypt_and_scram_and_costs_one_hash(void **state)
{
	struct auth_dummy d;
	char hash[AUTH_HASH_MAX], text[AUTH_SCRAM_TEXT_MAX + 1];
	char err[ERR_LEN];
	struct auth_scram k;
	unsigned long before;

	(void)state;
	assert_int_equal(auth_dummy_init(&d, err), 0);
	assert_false(d.is_scram);
	assert_memory_equal(d.hash, "$y$", 3);
	before = auth_hash_count();
	auth_dummy_pay(&d, "x");
	assert_int_equal(auth_hash_count(), before + 1);

	assert_int_equal(auth_scram_make("pencil", 4096, &k, err), 0);
	assert_int_equal(auth_scram_format(&k, text, sizeof(text)), 0);
	auth_dummy_learn(&d, AUTH_SCHEME_SCRAM, text);
	assert_true(d.is_scram);
	assert_int_equal(d.scram.iter, 4096);
	/* Neither {PLAIN} nor a bad SCRAM secret replaces the dummy. */
	auth_dummy_learn(&d, AUTH_SCHEME_PLAIN, "pencil");
	auth_dummy_learn(&d, AUTH_SCHEME_SCRAM, "nonsense");
	assert_true(d.is_scram);
	assert_int_equal(d.scram.iter, 4096);
	before = auth_hash_count();
	auth_dummy_pay(&d, "x");
	assert_int_equal(auth_hash_count(), before + 1);

	assert_int_equal(auth_hash_make("$6$", 0, "pencil", hash,
	    sizeof(hash), err), 0);
	auth_dummy_learn(&d, AUTH_SCHEME_CRYPT, hash);
	assert_false(d.is_scram);
	assert_string_equal(d.hash, hash);
	assert_int_equal(d.scram.iter, 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_scheme_of_simple_fields),
		cmocka_unit_test(test_scheme_of_real_hashes_and_scram_secrets),
		cmocka_unit_test(
		    test_dummy_learns_crypt_and_scram_and_costs_one_hash),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
