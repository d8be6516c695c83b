/*
 * lib/crlf: the one definition of a message's POP3 size. Vectors, every
 * split of each vector, byte-at-a-time, a naive reference over generated
 * input, and overflow at the top of uint64_t.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "../../src/lib/crlf.h"

#define N_ELEM(a)	(sizeof(a) / sizeof((a)[0]))
#define BYTES(s)	s, sizeof(s) - 1

static const struct {
	const char	*in;
	size_t		 len;
	uint64_t	 size;
} vectors[] = {
	{ BYTES(""), 0 },
	{ BYTES("a"), 3 },
	{ BYTES("\n"), 2 },
	{ BYTES("\r\n"), 2 },
	{ BYTES("\r"), 3 },
	{ BYTES("a\r"), 4 },
	{ BYTES("\n\n"), 4 },
	{ BYTES("\r\n\r\n"), 4 },
	{ BYTES("\r\r\n"), 3 },
	{ BYTES("\n\r"), 5 },
	{ BYTES("a\nb"), 6 },
	{ BYTES("a\r\nb\r\n"), 6 },
	{ BYTES("a\nb\r\nc\rd\n"), 11 },
	{ BYTES(".\n"), 3 },
	{ BYTES("\0\n"), 3 },
	{ BYTES("Subject: x\n\nbody\n"), 20 },
};

static int
size_of(const char *in, const size_t *cuts, size_t ncuts, size_t len,
    uint64_t *size_r)
{
	struct crlf_size cs;
	size_t pos = 0;

	crlf_size_init(&cs);
	for (size_t i = 0; i <= ncuts; i++) {
		size_t end = i < ncuts ? cuts[i] : len;

		crlf_size_feed(&cs, in + pos, end - pos);
		pos = end;
	}
	return crlf_size_finish(&cs, size_r);
}

static void
test_crlf_size_counts_bare_lf_as_two_and_adds_final_crlf(void **state)
{
	uint64_t size;

	(void)state;
	for (size_t i = 0; i < N_ELEM(vectors); i++) {
		assert_int_equal(size_of(vectors[i].in, NULL, 0, vectors[i].len,
		    &size), 0);
		assert_int_equal(size, vectors[i].size);
	}
}

static void
test_crlf_size_same_at_every_split_point(void **state)
{
	uint64_t size;

	(void)state;
	for (size_t i = 0; i < N_ELEM(vectors); i++) {
		for (size_t cut = 0; cut <= vectors[i].len; cut++) {
			/* A cut at 0 or len also feeds an empty piece. */
			assert_int_equal(size_of(vectors[i].in, &cut, 1,
			    vectors[i].len, &size), 0);
			assert_int_equal(size, vectors[i].size);
		}
	}
}

static void
test_crlf_size_same_byte_at_a_time(void **state)
{
	uint64_t size;
	size_t cuts[64];

	(void)state;
	for (size_t i = 0; i < N_ELEM(vectors); i++) {
		assert_true(vectors[i].len <= N_ELEM(cuts));
		for (size_t j = 0; j < vectors[i].len; j++)
			cuts[j] = j;
		assert_int_equal(size_of(vectors[i].in, cuts, vectors[i].len,
		    vectors[i].len, &size), 0);
		assert_int_equal(size, vectors[i].size);
	}
}

/* An empty feed between CR and LF must not forget the CR. */
static void
test_crlf_size_empty_feed_keeps_state(void **state)
{
	struct crlf_size cs;
	uint64_t size;

	(void)state;
	crlf_size_init(&cs);
	crlf_size_feed(&cs, "a\r", 2);
	crlf_size_feed(&cs, "", 0);
	crlf_size_feed(&cs, "\n", 1);
	crlf_size_feed(&cs, "", 0);
	assert_int_equal(crlf_size_finish(&cs, &size), 0);
	assert_int_equal(size, 3);
}

static uint64_t
rnd(uint64_t *s)
{
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 0x2545f4914f6cdd1dULL;
}

/* Against an obviously right byte loop, with random chunk splits. */
static void
test_crlf_size_matches_reference_on_generated_input(void **state)
{
	static const char alphabet[] = { 'a', '\r', '\n', '.', '\0' };
	uint64_t seed = 42;

	(void)state;
	for (int iter = 0; iter < 5000; iter++) {
		char in[100];
		size_t len = (size_t)(rnd(&seed) % (sizeof(in) + 1));
		size_t cuts[128], ncuts = 0, pos = 0;
		uint64_t want = 0, size;

		for (size_t i = 0; i < len; i++)
			in[i] = alphabet[rnd(&seed) % sizeof(alphabet)];
		for (size_t i = 0; i < len; i++) {
			if (in[i] == '\n' && (i == 0 || in[i - 1] != '\r'))
				want++;
			want++;
		}
		if (len > 0 && in[len - 1] != '\n')
			want += 2;
		while (ncuts < N_ELEM(cuts)) {
			pos += (size_t)(rnd(&seed) % 6);
			if (pos > len)
				break;
			cuts[ncuts++] = pos;
		}
		assert_int_equal(size_of(in, cuts, ncuts, len, &size), 0);
		assert_int_equal(size, want);
	}
}

/*
 * Long lines and long pieces: the 16-octet blocks run whole, a CR at the
 * end of one block or piece precedes a LF at the start of the next.
 */
static void
test_crlf_size_matches_reference_on_long_lines(void **state)
{
	uint64_t seed = 7;

	(void)state;
	for (int iter = 0; iter < 3000; iter++) {
		char in[600];
		size_t len = (size_t)(rnd(&seed) % (sizeof(in) + 1));
		size_t cuts[128], ncuts = 0, pos = 0;
		uint64_t want = 0, size;

		for (size_t i = 0; i < len; i++) {
			uint64_t r = rnd(&seed) % 40;

			in[i] = r == 0 ? '\n' : r == 1 ? '\r' : (char)('a' + r);
		}
		for (size_t i = 0; i < len; i++) {
			if (in[i] == '\n' && (i == 0 || in[i - 1] != '\r'))
				want++;
			want++;
		}
		if (len > 0 && in[len - 1] != '\n')
			want += 2;
		while (ncuts < N_ELEM(cuts)) {
			pos += (size_t)(rnd(&seed) % 70);
			if (pos > len)
				break;
			cuts[ncuts++] = pos;
		}
		assert_int_equal(size_of(in, cuts, ncuts, len, &size), 0);
		assert_int_equal(size, want);
	}
}

static void
test_crlf_size_exact_uint64_max_fits(void **state)
{
	struct crlf_size cs;
	uint64_t size = 0;

	(void)state;
	crlf_size_init(&cs);
	cs.size = UINT64_MAX - 2;
	crlf_size_feed(&cs, "\n", 1);
	assert_int_equal(crlf_size_finish(&cs, &size), 0);
	assert_true(size == UINT64_MAX);
}

static void
test_crlf_size_overflow_in_feed_is_sticky_error(void **state)
{
	struct crlf_size cs;
	uint64_t size = 7;

	(void)state;
	crlf_size_init(&cs);
	cs.size = UINT64_MAX - 1;
	crlf_size_feed(&cs, "\n", 1);
	assert_true(cs.overflow);
	/* Wrapped values later must not look valid again. */
	crlf_size_feed(&cs, "abc\n", 4);
	assert_int_equal(crlf_size_finish(&cs, &size), -1);
	assert_int_equal(size, 7);
}

static void
test_crlf_size_overflow_in_final_crlf_is_error(void **state)
{
	struct crlf_size cs;
	uint64_t size = 7;

	(void)state;
	crlf_size_init(&cs);
	cs.size = UINT64_MAX - 2;
	crlf_size_feed(&cs, "a", 1);
	assert_false(cs.overflow);
	assert_int_equal(crlf_size_finish(&cs, &size), -1);
	assert_int_equal(size, 7);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(
		    test_crlf_size_counts_bare_lf_as_two_and_adds_final_crlf),
		cmocka_unit_test(test_crlf_size_same_at_every_split_point),
		cmocka_unit_test(test_crlf_size_same_byte_at_a_time),
		cmocka_unit_test(test_crlf_size_empty_feed_keeps_state),
		cmocka_unit_test(
		    test_crlf_size_matches_reference_on_generated_input),
		cmocka_unit_test(
		    test_crlf_size_matches_reference_on_long_lines),
		cmocka_unit_test(test_crlf_size_exact_uint64_max_fits),
		cmocka_unit_test(
		    test_crlf_size_overflow_in_feed_is_sticky_error),
		cmocka_unit_test(
		    test_crlf_size_overflow_in_final_crlf_is_error),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
