/*
 * The shared crypto primitives (src/auth/crypto.c) against the RFCs'
 * known answers: HMAC-MD5 (RFC 2104), HMAC-SHA-256 (RFC 4231), the
 * SCRAM-SHA-256 exchange of RFC 7677 sec. 3, CRAM-MD5 (RFC 2195), APOP
 * (RFC 1939 sec. 7); then the nonce grammar, the hex answer parser and
 * the constant-time equality.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "../../src/lib/base64.h"
#include "../../src/auth/crypto.h"
#include "../../src/lib/str.h"

#define N_ELEM(a)	(sizeof(a) / sizeof((a)[0]))

static void
test_hmac_md5_matches_rfc2104(void **state)
{
	unsigned char key[16], md[16];
	char hex[33];

	(void)state;
	memset(key, 0x0b, sizeof(key));
	assert_true(crypto_hmac_md5(key, sizeof(key), "Hi There", 8, md));
	str_hex(hex, md, sizeof(md));
	assert_string_equal(hex, "9294727a3638bb1c13f48ef8158bfc9d");
	assert_true(crypto_hmac_md5("Jefe", 4,
	    "what do ya want for nothing?", 28, md));
	str_hex(hex, md, sizeof(md));
	assert_string_equal(hex, "750c783e6ab0b503eaa86e310a5db738");
}

static void
test_hmac_sha256_matches_rfc4231_in_one_part_or_many(void **state)
{
	static const char *const want =
	    "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843";
	static const char msg[] = "what do ya want for nothing?";
	unsigned char key[20], md[CRYPTO_SHA256_LEN];
	char hex[2 * CRYPTO_SHA256_LEN + 1];
	struct crypto_part one = { "Hi There", 8 }, parts[3];

	(void)state;
	memset(key, 0x0b, sizeof(key));
	assert_true(crypto_hmac_sha256(key, sizeof(key), &one, 1, md));
	str_hex(hex, md, sizeof(md));
	assert_string_equal(hex, "b0344c61d8db38535ca8afceaf0bf12b"
	    "881dc200c9833da726e9376c2e32cff7");
	/* Test case 2, the message cut at every place into three parts. */
	for (size_t a = 0; a <= sizeof(msg) - 1; a++) {
		for (size_t b = a; b <= sizeof(msg) - 1; b++) {
			parts[0] = (struct crypto_part){ msg, a };
			parts[1] = (struct crypto_part){ msg + a, b - a };
			parts[2] = (struct crypto_part){ msg + b,
			    sizeof(msg) - 1 - b };
			assert_true(crypto_hmac_sha256("Jefe", 4, parts, 3,
			    md));
			str_hex(hex, md, sizeof(md));
			assert_string_equal(hex, want);
		}
	}
}

/* RFC 7677 sec. 3: user "user", password "pencil". */
#define R7677_CNONCE	"rOprNGfwEbeRWgbNEkqO"
#define R7677_NONCE	R7677_CNONCE "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
#define R7677_SALT	"W22ZaJ0SNY7soEsUEjb6gQ=="

static void
test_scram_keys_and_signatures_match_rfc7677(void **state)
{
	static const char authmsg[] = "n=user,r=" R7677_CNONCE
	    ",r=" R7677_NONCE ",s=" R7677_SALT ",i=4096"
	    ",c=biws,r=" R7677_NONCE;
	unsigned char salt[16], ckey[CRYPTO_SHA256_LEN];
	unsigned char stored[CRYPTO_SHA256_LEN], skey[CRYPTO_SHA256_LEN];
	unsigned char sig[CRYPTO_SHA256_LEN], stored2[CRYPTO_SHA256_LEN];
	unsigned char stored3[CRYPTO_SHA256_LEN], skey3[CRYPTO_SHA256_LEN];
	struct crypto_part am = { authmsg, sizeof(authmsg) - 1 };
	char b64[BASE64_ENCODED_LEN(CRYPTO_SHA256_LEN) + 1];
	size_t saltlen;

	(void)state;
	assert_int_equal(base64_decode(salt, sizeof(salt), &saltlen,
	    R7677_SALT, strlen(R7677_SALT)), 0);
	assert_true(crypto_scram_keys("pencil", 6, salt, saltlen, 4096, ckey,
	    stored, skey));
	/* ClientProof = ClientKey XOR HMAC(StoredKey, AuthMessage) */
	assert_true(crypto_hmac_sha256(stored, sizeof(stored), &am, 1, sig));
	for (size_t i = 0; i < sizeof(sig); i++)
		sig[i] ^= ckey[i];
	assert_int_equal(base64_encode(b64, sizeof(b64), sig, sizeof(sig)),
	    0);
	assert_string_equal(b64,
	    "dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=");
	/* The server's side: H(ClientKey) from the proof is StoredKey. */
	assert_true(crypto_sha256(ckey, sizeof(ckey), stored2));
	assert_memory_equal(stored2, stored, sizeof(stored));
	assert_true(crypto_hmac_sha256(skey, sizeof(skey), &am, 1, sig));
	assert_int_equal(base64_encode(b64, sizeof(b64), sig, sizeof(sig)),
	    0);
	assert_string_equal(b64,
	    "6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=");
	/* A server keeps no ClientKey: NULL gives the same other keys. */
	assert_true(crypto_scram_keys("pencil", 6, salt, saltlen, 4096, NULL,
	    stored3, skey3));
	assert_memory_equal(stored3, stored, sizeof(stored));
	assert_memory_equal(skey3, skey, sizeof(skey));
}

static void
test_cram_digest_matches_rfc2195(void **state)
{
	static const char ch[] = "<1896.697170952@postoffice.reston.mci.net>";
	char hex[CRYPTO_MD5_HEX_LEN + 1];

	(void)state;
	assert_true(crypto_cram_digest("tanstaaftanstaaf", ch, strlen(ch),
	    hex));
	assert_string_equal(hex, "b913a602c7eda7a495b4e6e7334d3890");
}

static void
test_apop_digest_matches_rfc1939(void **state)
{
	char hex[CRYPTO_MD5_HEX_LEN + 1];

	(void)state;
	assert_true(crypto_apop_digest("<1896.697170952@dbc.mtview.ca.us>",
	    "tanstaaf", hex));
	assert_string_equal(hex, "c4c9334bac560ecc979e58001b3e22fb");
}

static void
test_nonce_grammar_is_printable_without_comma(void **state)
{
	static const char *const bad[] = { "", "a,b", "a b", "a\tb",
	    "\x7f", "\xc3\xa9" };
	char big[65];

	(void)state;
	assert_true(crypto_scram_nonce_ok(R7677_NONCE, strlen(R7677_NONCE),
	    255));
	assert_true(crypto_scram_nonce_ok("!~", 2, 2));
	for (size_t i = 0; i < N_ELEM(bad); i++)
		assert_false(crypto_scram_nonce_ok(bad[i], strlen(bad[i]),
		    255));
	memset(big, 'x', sizeof(big) - 1);
	big[64] = '\0';
	assert_true(crypto_scram_nonce_ok(big, 64, 64));
	assert_false(crypto_scram_nonce_ok(big, 64, 63));
}

static void
test_md5_hex_parse_takes_32_digits_either_case(void **state)
{
	static const char *const bad[] = { "", "c4c9334bac560ecc979e58001b3e22f",
	    "c4c9334bac560ecc979e58001b3e22fbb",
	    "c4c9334bac560ecc979e58001b3e22fg",
	    "c4c9334bac560ecc979e58001b3e22f ",
	    "-4c9334bac560ecc979e58001b3e22fb" };
	char want[CRYPTO_MD5_HEX_LEN + 1];

	(void)state;
	assert_true(crypto_md5_hex_parse("C4C9334BAC560ECC979E58001B3E22FB",
	    32, want));
	assert_string_equal(want, "c4c9334bac560ecc979e58001b3e22fb");
	for (size_t i = 0; i < N_ELEM(bad); i++)
		assert_false(crypto_md5_hex_parse(bad[i], strlen(bad[i]),
		    want));
}

static void
test_secret_equal_compares_whole_strings(void **state)
{
	(void)state;
	assert_true(crypto_secret_equal("", ""));
	assert_true(crypto_secret_equal("pencil", "pencil"));
	assert_false(crypto_secret_equal("pencil", "pencil "));
	assert_false(crypto_secret_equal("pencil", "Pencil"));
	assert_false(crypto_secret_equal("", "x"));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_hmac_md5_matches_rfc2104),
		cmocka_unit_test(
		    test_hmac_sha256_matches_rfc4231_in_one_part_or_many),
		cmocka_unit_test(test_scram_keys_and_signatures_match_rfc7677),
		cmocka_unit_test(test_cram_digest_matches_rfc2195),
		cmocka_unit_test(test_apop_digest_matches_rfc1939),
		cmocka_unit_test(test_nonce_grammar_is_printable_without_comma),
		cmocka_unit_test(
		    test_md5_hex_parse_takes_32_digits_either_case),
		cmocka_unit_test(test_secret_equal_compares_whole_strings),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
