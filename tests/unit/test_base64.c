/*
 * base64: RFC 4648 test vectors, every octet value, and a strict decoder
 * that accepts exactly one spelling of each octet string (checked
 * exhaustively over short strings) and wipes its output when it refuses.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "../../src/lib/base64.h"

#define N_ELEM(a)	(sizeof(a) / sizeof((a)[0]))

/* RFC 4648 sec. 10. */
static const struct {
	const char *plain, *b64;
} vectors[] = {
	{ "", "" },
	{ "f", "Zg==" },
	{ "fo", "Zm8=" },
	{ "foo", "Zm9v" },
	{ "foob", "Zm9vYg==" },
	{ "fooba", "Zm9vYmE=" },
	{ "foobar", "Zm9vYmFy" },
};

static void
test_rfc4648_vectors_encode_and_decode(void **state)
{
	char enc[16];
	unsigned char dec[16];
	size_t len;

	(void)state;
	for (size_t i = 0; i < N_ELEM(vectors); i++) {
		size_t plen = strlen(vectors[i].plain);

		assert_int_equal(base64_encode(enc, sizeof(enc),
		    vectors[i].plain, plen), 0);
		assert_string_equal(enc, vectors[i].b64);
		assert_int_equal(base64_decode(dec, sizeof(dec), &len,
		    vectors[i].b64, strlen(vectors[i].b64)), 0);
		assert_int_equal(len, plen);
		assert_memory_equal(dec, vectors[i].plain, plen);
	}
}

static void
test_every_octet_round_trips_and_matches_openssl(void **state)
{
	unsigned char src[256], dec[256];
	char enc[BASE64_ENCODED_LEN(256) + 1];
	unsigned char ossl[BASE64_ENCODED_LEN(256) + 1];
	size_t len;

	(void)state;
	for (size_t i = 0; i < sizeof(src); i++)
		src[i] = (unsigned char)(255 - i);
	for (size_t n = 0; n <= sizeof(src); n++) {
		assert_int_equal(base64_encode(enc, BASE64_ENCODED_LEN(n) + 1,
		    src, n), 0);
		assert_int_equal(strlen(enc), BASE64_ENCODED_LEN(n));
		assert_int_equal(EVP_EncodeBlock(ossl, src, (int)n),
		    (int)BASE64_ENCODED_LEN(n));
		assert_string_equal(enc, (char *)ossl);
		assert_int_equal(base64_decode(dec, n, &len, enc, strlen(enc)),
		    0);
		assert_int_equal(len, n);
		assert_memory_equal(dec, src, n);
	}
}

static void
test_decoder_rejects_noise_padding_and_whitespace(void **state)
{
	static const struct {
		const char	*s;
		size_t		 len;
	} bad[] = {
#define B(x)	{ x, sizeof(x) - 1 }
		B("Z"), B("Zg"), B("Zg="), B("Zg==="), B("===="), B("Z==="),
		B("=Zg="), B("Zg==Zg=="), B("Zm9v="), B("Zm9vYg=a"),
		B("Zh=="),	/* pad bits set: a second spelling of "f" */
		B("Zm9="),	/* likewise for "fo" */
		B("Zm9 v"), B(" Zm9v"), B("Zm9v\n"), B("Zm9v\r\n"),
		B("Zm\0v"), B("Zm-v"), B("Zm_v"), B("Zm9v.A=="),
		B("Zm9\xc3\xa9"), B("Zm9\x80"),
#undef B
	};
	unsigned char dec[16];
	size_t len;

	(void)state;
	for (size_t i = 0; i < N_ELEM(bad); i++) {
		len = 99;
		memset(dec, 0xa5, sizeof(dec));
		if (base64_decode(dec, sizeof(dec), &len, bad[i].s,
		    bad[i].len) != -1)
			fail_msg("accepted case %zu", i);
		assert_int_equal(len, 0);
		for (size_t k = 0; k < sizeof(dec); k++)
			assert_int_equal(dec[k], 0);
	}
}

static void
test_decoder_refuses_output_over_its_buffer(void **state)
{
	unsigned char dec[8];
	size_t len;

	(void)state;
	/* "foobar" is 6 octets: 5 do not hold it, 6 do. */
	assert_int_equal(base64_decode(dec, 5, &len, "Zm9vYmFy", 8), -1);
	assert_int_equal(base64_decode(dec, 6, &len, "Zm9vYmFy", 8), 0);
	/* Padding counts: "Zm9vYg==" needs only 4. */
	assert_int_equal(base64_decode(dec, 4, &len, "Zm9vYg==", 8), 0);
	assert_int_equal(len, 4);
	assert_int_equal(base64_decode(dec, 3, &len, "Zm9vYg==", 8), -1);
	assert_int_equal(base64_decode(NULL, 0, &len, "", 0), 0);
	assert_int_equal(len, 0);
}

static void
test_encoder_refuses_a_short_buffer(void **state)
{
	char enc[9];

	(void)state;
	assert_int_equal(base64_encode(enc, 8, "foobar", 6), -1);
	assert_string_equal(enc, "");
	assert_int_equal(base64_encode(enc, 9, "foobar", 6), 0);
	assert_int_equal(base64_encode(enc, 0, "", 0), -1);
	assert_int_equal(base64_encode(enc, 1, "", 0), 0);
	assert_string_equal(enc, "");
	/* A length whose encoding would wrap size_t. */
	assert_int_equal(base64_encode(enc, sizeof(enc), "", SIZE_MAX), -1);
}

/*
 * Every 4-character string over a mixed alphabet: whatever decodes must
 * encode back to the very same text (one spelling per octet string).
 */
static void
test_every_accepted_string_is_canonical(void **state)
{
	static const char set[] = "AQgw/+9=Z -\n\0";
	const size_t n = sizeof(set) - 1 + 1;	/* the NUL is a member */
	char s[8], enc[8];
	unsigned char dec[8];
	size_t len, accepted = 0;

	(void)state;
	for (size_t a = 0; a < n; a++)
	for (size_t b = 0; b < n; b++)
	for (size_t c = 0; c < n; c++)
	for (size_t d = 0; d < n; d++) {
		s[0] = set[a];
		s[1] = set[b];
		s[2] = set[c];
		s[3] = set[d];
		if (base64_decode(dec, sizeof(dec), &len, s, 4) < 0)
			continue;
		accepted++;
		assert_int_equal(base64_encode(enc, sizeof(enc), dec, len), 0);
		assert_memory_equal(enc, s, 4);
	}
	assert_true(accepted > 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rfc4648_vectors_encode_and_decode),
		cmocka_unit_test(
		    test_every_octet_round_trips_and_matches_openssl),
		cmocka_unit_test(
		    test_decoder_rejects_noise_padding_and_whitespace),
		cmocka_unit_test(test_decoder_refuses_output_over_its_buffer),
		cmocka_unit_test(test_encoder_refuses_a_short_buffer),
		cmocka_unit_test(test_every_accepted_string_is_canonical),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
