/*
 * The one table of SASL mechanism names: whole-name, case-insensitive
 * lookup, names and ids round-trip, and lists parsed into masks where a
 * prefix or an extension of a name is no name.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "../../src/auth/sasl_mechs.h"
#include "../../src/lib/str.h"

static void
test_names_and_ids_round_trip(void **state)
{
	(void)state;
	for (int i = 0; i < SASL_MECH_COUNT; i++) {
		const char *n = sasl_mechs_name((enum sasl_mech_id)i);

		assert_true(strlen(n) <= SASL_MECH_NAME_MAX);
		assert_int_equal(sasl_mechs_lookup(n, strlen(n)), i);
	}
	assert_string_equal(sasl_mechs_name(SASL_MECH_COUNT), "?");
	assert_string_equal(sasl_mechs_name(SASL_MECH_SCRAM_PLUS),
	    "SCRAM-SHA-256-PLUS");
}

static void
test_lookup_is_whole_name_and_case_insensitive(void **state)
{
	static const char *const bad[] = { "", "SCRAM", "SCRAM-SHA-256-",
	    "SCRAM-SHA-256-PLUSX", "CRAM-MD", "PLAIN ", "GSSAPI" };

	(void)state;
	assert_int_equal(sasl_mechs_lookup("scram-sha-256", 13),
	    SASL_MECH_SCRAM);
	assert_int_equal(sasl_mechs_lookup("Cram-Md5", 8), SASL_MECH_CRAM_MD5);
	/* len decides: the first 13 octets of -PLUS are SCRAM-SHA-256. */
	assert_int_equal(sasl_mechs_lookup("SCRAM-SHA-256-PLUS", 13),
	    SASL_MECH_SCRAM);
	assert_int_equal(sasl_mechs_lookup("SCRAM-SHA-256-PLUS", 18),
	    SASL_MECH_SCRAM_PLUS);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(sasl_mechs_lookup(bad[i], strlen(bad[i])), -1);
}

static void
test_parse_gives_a_mask_of_whole_words(void **state)
{
	unsigned int mask;
	char err[ERR_LEN];

	(void)state;
	assert_int_equal(sasl_mechs_parse("SCRAM-SHA-256-PLUS", &mask, err),
	    0);
	assert_int_equal(mask, SASL_MECH_BIT(SASL_MECH_SCRAM_PLUS));
	assert_int_equal(sasl_mechs_parse(" plain\tLOGIN  cram-md5 ", &mask,
	    err), 0);
	assert_int_equal(mask, SASL_MECH_BIT(SASL_MECH_PLAIN) |
	    SASL_MECH_BIT(SASL_MECH_LOGIN) | SASL_MECH_BIT(SASL_MECH_CRAM_MD5));
	assert_int_equal(sasl_mechs_parse("", &mask, err), 0);
	assert_int_equal(mask, 0);
	assert_int_equal(sasl_mechs_parse("PLAIN GSSAPI", &mask, err), -1);
	/* The message names what is known, from the one table. */
	assert_string_equal(err, "unknown mechanism 'GSSAPI' (SCRAM-SHA-256-PLUS "
	    "SCRAM-SHA-256 CRAM-MD5 PLAIN LOGIN OAUTHBEARER XOAUTH2)");
	assert_int_equal(mask, 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_names_and_ids_round_trip),
		cmocka_unit_test(test_lookup_is_whole_name_and_case_insensitive),
		cmocka_unit_test(test_parse_gives_a_mask_of_whole_words),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
