/*
 * POP3 grammar: command lines, message numbers, the RETR/TOP encoder and the
 * client helpers. Every input is also fed in pieces, down to one byte.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "../../src/lib/crlf.h"
#include "../../src/lib/str.h"
#include "../../src/pop3/pop3.h"

#define N_ELEM(a)	(sizeof(a) / sizeof((a)[0]))
/* A string literal and its length, NULs included. */
#define BYTES(s)	s, sizeof(s) - 1

/* xorshift64*: deterministic, so a failure reproduces. */
static uint64_t
rnd(uint64_t *s)
{
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 0x2545f4914f6cdd1dULL;
}

static size_t
rnd_below(uint64_t *s, size_t n)
{
	return n == 0 ? 0 : (size_t)(rnd(s) % n);
}

/* A heap copy without a NUL: only line[len] is allowed room for the parser. */
static char *
line_copy(const char *src, size_t len)
{
	char *line = malloc(len + 1);

	assert_non_null(line);
	memcpy(line, src, len);
	line[len] = 'Z';
	return line;
}

/* ---- pop3_parse_line ---- */

struct line_case {
	const char		*line;
	size_t			 len;
	enum pop3_parse_result	 res;
	const char		*keyword;
	unsigned int		 argc;
	const char		*argv[POP3_ARGS_MAX];
};

static const struct line_case good_lines[] = {
	{ BYTES("USER alice"), POP3_PARSE_OK, "USER", 1, { "alice" } },
	{ BYTES("user alice"), POP3_PARSE_OK, "USER", 1, { "alice" } },
	{ BYTES("QUIT"), POP3_PARSE_OK, "QUIT", 0, { NULL } },
	{ BYTES("Stat"), POP3_PARSE_OK, "STAT", 0, { NULL } },
	{ BYTES("TOP 1 10"), POP3_PARSE_OK, "TOP", 2, { "1", "10" } },
	{ BYTES("APOP mrose c4c9334bac560ecc979e58001b3e22fb"),
	    POP3_PARSE_OK, "APOP", 2,
	    { "mrose", "c4c9334bac560ecc979e58001b3e22fb" } },
	{ BYTES("X-FOO bar"), POP3_PARSE_OK, "X-FOO", 1, { "bar" } },
	{ BYTES("XABCDEFG"), POP3_PARSE_OK, "XABCDEFG", 0, { NULL } },
	{ BYTES("LIST  1"), POP3_PARSE_OK, "LIST", 1, { "1" } },
	{ BYTES("LIST 1 "), POP3_PARSE_OK, "LIST", 1, { "1" } },
	{ BYTES("NOOP    "), POP3_PARSE_OK, "NOOP", 0, { NULL } },
	{ BYTES("  STAT"), POP3_PARSE_OK, "STAT", 0, { NULL } },
	{ BYTES("TOP   2    0   "), POP3_PARSE_OK, "TOP", 2, { "2", "0" } },
	{ BYTES("PASS p\xc3\xa4ss w\xf6rd"), POP3_PARSE_OK, "PASS", 2,
	    { "p\xc3\xa4ss", "w\xf6rd" } },
	{ BYTES("AUTH a b c d"), POP3_PARSE_OK, "AUTH", 4,
	    { "a", "b", "c", "d" } },
	{ BYTES("PASS !\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"), POP3_PARSE_OK,
	    "PASS", 1, { "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~" } },
};

static const struct line_case empty_lines[] = {
	{ BYTES(""), POP3_PARSE_EMPTY, "", 0, { NULL } },
	{ BYTES(" "), POP3_PARSE_EMPTY, "", 0, { NULL } },
	{ BYTES("      "), POP3_PARSE_EMPTY, "", 0, { NULL } },
};

static const struct line_case bad_lines[] = {
	{ BYTES("USER\0alice"), POP3_PARSE_BAD, "", 0, { NULL } },
	{ BYTES("USER alice\0"), POP3_PARSE_BAD, "", 0, { NULL } },
	{ BYTES("\0"), POP3_PARSE_BAD, "", 0, { NULL } },
	{ BYTES("\0QUIT"), POP3_PARSE_BAD, "", 0, { NULL } },
	{ BYTES("USER al\rice"), POP3_PARSE_BAD, "", 0, { NULL } },
	{ BYTES("USER alice\r"), POP3_PARSE_BAD, "", 0, { NULL } },
	{ BYTES("QUIT\r"), POP3_PARSE_BAD, "", 0, { NULL } },
	{ BYTES("\r"), POP3_PARSE_BAD, "", 0, { NULL } },
	{ BYTES("USER a\nPASS b"), POP3_PARSE_BAD, "", 0, { NULL } },
	{ BYTES("USER\talice"), POP3_PARSE_BAD, "", 0, { NULL } },
	{ BYTES("USER alice\t"), POP3_PARSE_BAD, "", 0, { NULL } },
	{ BYTES("\t"), POP3_PARSE_BAD, "", 0, { NULL } },
	{ BYTES("PASS a\x7f"), POP3_PARSE_BAD, "", 0, { NULL } },
	{ BYTES("PASS \x1b[A"), POP3_PARSE_BAD, "", 0, { NULL } },
	{ BYTES("US"), POP3_PARSE_BAD, "", 0, { NULL } },
	{ BYTES("U alice"), POP3_PARSE_BAD, "", 0, { NULL } },
	{ BYTES("ABCDEFGHI"), POP3_PARSE_BAD, "", 0, { NULL } },
	{ BYTES("US=R x"), POP3_PARSE_BAD, "", 0, { NULL } },
	{ BYTES("USER:alice"), POP3_PARSE_BAD, "", 0, { NULL } },
	{ BYTES("\xc3\xa4SER x"), POP3_PARSE_BAD, "", 0, { NULL } },
	{ BYTES("TOP_ 1"), POP3_PARSE_BAD, "", 0, { NULL } },
	{ BYTES("AUTH a b c d e"), POP3_PARSE_BAD, "", 0, { NULL } },
	{ BYTES("AUTH a b c d  e "), POP3_PARSE_BAD, "", 0, { NULL } },
};

static void
check_line_case(const struct line_case *c)
{
	struct pop3_args a;
	char *line = line_copy(c->line, c->len);

	memset(&a, 0xa5, sizeof(a));
	assert_int_equal(pop3_parse_line(line, c->len, &a), c->res);
	assert_string_equal(a.keyword, c->keyword);
	assert_int_equal(a.argc, c->argc);
	for (unsigned int i = 0; i < c->argc; i++) {
		/* In place: the pointers are into the caller's buffer. */
		assert_true(a.argv[i] >= line && a.argv[i] <= line + c->len);
		assert_string_equal(a.argv[i], c->argv[i]);
	}
	free(line);
}

static void
test_parse_line_splits_good_lines(void **state)
{
	(void)state;
	for (size_t i = 0; i < N_ELEM(good_lines); i++)
		check_line_case(&good_lines[i]);
}

static void
test_parse_line_empty_or_all_space_is_empty(void **state)
{
	(void)state;
	for (size_t i = 0; i < N_ELEM(empty_lines); i++)
		check_line_case(&empty_lines[i]);
}

static void
test_parse_line_rejects_controls_keywords_and_arity(void **state)
{
	(void)state;
	for (size_t i = 0; i < N_ELEM(bad_lines); i++)
		check_line_case(&bad_lines[i]);
}

/*
 * Every prefix of every table line, each in a buffer of exactly len + 1
 * octets, so ASan sees any read or write past line[len].
 */
static void
test_parse_line_survives_every_prefix(void **state)
{
	static const struct line_case *const tables[] = {
		good_lines, empty_lines, bad_lines
	};
	static const size_t sizes[] = {
		N_ELEM(good_lines), N_ELEM(empty_lines), N_ELEM(bad_lines)
	};

	(void)state;
	for (size_t t = 0; t < N_ELEM(tables); t++) {
		for (size_t i = 0; i < sizes[t]; i++) {
			const struct line_case *c = &tables[t][i];

			for (size_t n = 0; n <= c->len; n++) {
				struct pop3_args a;
				char *line = line_copy(c->line, n);
				enum pop3_parse_result r;

				r = pop3_parse_line(line, n, &a);
				if (r != POP3_PARSE_OK)
					assert_int_equal(a.argc, 0);
				assert_true(a.argc <= POP3_ARGS_MAX);
				free(line);
			}
		}
	}
}

static void
test_parse_line_arg_limit_is_pop3_arg_max(void **state)
{
	char buf[5 + POP3_ARG_MAX + 2];
	struct pop3_args a;
	char *line;

	(void)state;
	memcpy(buf, "AUTH ", 5);
	memset(buf + 5, 'x', POP3_ARG_MAX + 1);

	line = line_copy(buf, 5 + POP3_ARG_MAX);
	assert_int_equal(pop3_parse_line(line, 5 + POP3_ARG_MAX, &a),
	    POP3_PARSE_OK);
	assert_int_equal(a.argc, 1);
	assert_int_equal(strlen(a.argv[0]), POP3_ARG_MAX);
	free(line);

	line = line_copy(buf, 5 + POP3_ARG_MAX + 1);
	assert_int_equal(pop3_parse_line(line, 5 + POP3_ARG_MAX + 1, &a),
	    POP3_PARSE_BAD);
	assert_int_equal(a.argc, 0);
	free(line);
}

/* POP3_LINE_MAX counts the CRLF: 510 octets of text, not one more. */
static void
test_parse_line_length_limit_counts_crlf(void **state)
{
	char buf[POP3_LINE_MAX];
	struct pop3_args a;
	size_t max = POP3_LINE_MAX - 2;
	char *line;

	(void)state;
	/* "AUTH " + 255 x + " " + the rest in y: two legal arguments. */
	memset(buf, 'y', sizeof(buf));
	memcpy(buf, "AUTH ", 5);
	memset(buf + 5, 'x', POP3_ARG_MAX);
	buf[5 + POP3_ARG_MAX] = ' ';

	line = line_copy(buf, max);
	assert_int_equal(pop3_parse_line(line, max, &a), POP3_PARSE_OK);
	assert_int_equal(a.argc, 2);
	free(line);

	line = line_copy(buf, max + 1);
	assert_int_equal(pop3_parse_line(line, max + 1, &a), POP3_PARSE_BAD);
	free(line);

	memset(buf, ' ', sizeof(buf));
	line = line_copy(buf, max + 1);
	assert_int_equal(pop3_parse_line(line, max + 1, &a), POP3_PARSE_BAD);
	free(line);
}

/* ---- pop3_parse_msgnum ---- */

static void
test_msgnum_accepts_1_to_uint32_max_and_leading_zeros(void **state)
{
	static const struct {
		const char	*s;
		unsigned int	 n;
	} good[] = {
		{ "1", 1 }, { "9", 9 }, { "42", 42 }, { "01", 1 },
		{ "0001", 1 }, { "010", 10 }, { "4294967295", 4294967295u },
		{ "04294967295", 4294967295u },
	};
	unsigned int n;

	(void)state;
	for (size_t i = 0; i < N_ELEM(good); i++) {
		n = 0;
		assert_int_equal(pop3_parse_msgnum(good[i].s, &n), 0);
		assert_int_equal(n, good[i].n);
	}
}

static void
test_msgnum_rejects_zero_noise_and_overflow(void **state)
{
	static const char *const bad[] = {
		"", "0", "00", "-1", "+1", " 1", "1 ", "1x", "x1", "1.0",
		"0x10", "1e3", "\t1", "4294967296", "4294967297",
		"18446744073709551615", "18446744073709551616",
		"18446744073709551617", "99999999999999999999999999",
		"-0", "\xd9\xa1",
	};
	unsigned int n;

	(void)state;
	for (size_t i = 0; i < N_ELEM(bad); i++) {
		n = 777;
		assert_int_equal(pop3_parse_msgnum(bad[i], &n), -1);
		assert_int_equal(n, 777);
	}
}

/* ---- encoder ---- */

struct buf {
	char	*data;
	size_t	 len;
};

/*
 * Encode with the input cut at cuts[0..ncuts) (ascending); each piece gets
 * an output buffer of exactly POP3_ENCODER_OUT_MAX octets so ASan proves
 * the documented bound.
 */
static struct buf
encode(const void *in, size_t len, bool top, uint64_t k,
    const size_t *cuts, size_t ncuts, bool *full_r)
{
	const unsigned char *p = in;
	struct pop3_encoder e;
	struct buf b;
	size_t pos = 0, fin;
	char *out;

	b.data = malloc(POP3_ENCODER_OUT_MAX(len) + POP3_ENCODER_FINISH_MAX);
	assert_non_null(b.data);
	b.len = 0;
	pop3_encoder_init(&e, top, k);
	for (size_t i = 0; i <= ncuts; i++) {
		size_t end = i < ncuts ? cuts[i] : len;
		size_t n = end - pos, w;

		/* malloc(0) may be NULL; 1 octet is still no slack for ASan. */
		out = malloc(n > 0 ? POP3_ENCODER_OUT_MAX(n) : 1);
		assert_non_null(out);
		w = pop3_encoder_feed(&e, p + pos, n, out,
		    POP3_ENCODER_OUT_MAX(n));
		assert_true(w <= POP3_ENCODER_OUT_MAX(n));
		memcpy(b.data + b.len, out, w);
		b.len += w;
		free(out);
		pos = end;
	}
	if (full_r != NULL)
		*full_r = pop3_encoder_full(&e);
	out = malloc(POP3_ENCODER_FINISH_MAX);
	assert_non_null(out);
	fin = pop3_encoder_finish(&e, out, POP3_ENCODER_FINISH_MAX);
	assert_true(fin <= POP3_ENCODER_FINISH_MAX);
	memcpy(b.data + b.len, out, fin);
	b.len += fin;
	free(out);
	return b;
}

static void
buf_free(struct buf *b)
{
	free(b->data);
	b->data = NULL;
}

struct enc_case {
	const char	*in;
	size_t		 inlen;
	bool		 top;
	uint64_t	 k;
	const char	*out;
	size_t		 outlen;
	bool		 full;		/* pop3_encoder_full() before finish */
};

#define RETR(in, out)		{ BYTES(in), false, 0, BYTES(out), false }
#define TOP(in, k, out, full)	{ BYTES(in), true, k, BYTES(out), full }

#define MSG	"Subject: x\r\nFrom: y\r\n\r\nline1\r\n.line2\r\nline3\r\n"
#define MSG_HDR	"Subject: x\r\nFrom: y\r\n\r\n"
#define MSG_WIRE MSG_HDR "line1\r\n..line2\r\nline3\r\n"

static const struct enc_case enc_cases[] = {
	RETR("", ".\r\n"),
	RETR("a", "a\r\n.\r\n"),
	RETR("a\n", "a\r\n.\r\n"),
	RETR("a\r\n", "a\r\n.\r\n"),
	RETR("\n", "\r\n.\r\n"),
	RETR("\r\n", "\r\n.\r\n"),
	RETR("\n\n", "\r\n\r\n.\r\n"),
	/* The first line is stuffed too. */
	RETR(".hidden\n", "..hidden\r\n.\r\n"),
	RETR(".hidden", "..hidden\r\n.\r\n"),
	RETR(".", "..\r\n.\r\n"),
	RETR("a\n.\nb\n", "a\r\n..\r\nb\r\n.\r\n"),
	RETR("a\r\n.\r\nb", "a\r\n..\r\nb\r\n.\r\n"),
	RETR("a\n..\n", "a\r\n...\r\n.\r\n"),
	RETR("a\r\n.b\r\n", "a\r\n..b\r\n.\r\n"),
	RETR("a.\n.", "a.\r\n..\r\n.\r\n"),
	/* A bare CR is an ordinary byte: no line start after it. */
	RETR("a\rb\n", "a\rb\r\n.\r\n"),
	RETR("x\r.y\n", "x\r.y\r\n.\r\n"),
	RETR("a\r", "a\r\r\n.\r\n"),
	RETR("\r", "\r\r\n.\r\n"),
	RETR("\r\r\n", "\r\r\n.\r\n"),
	RETR("\r\r\r", "\r\r\r\r\n.\r\n"),
	RETR("a\0b\n\xff\n", "a\0b\r\n\xff\r\n.\r\n"),
	RETR("H: 1\r\nH2: 2\n\nbody\r\n.\n..\nend",
	    "H: 1\r\nH2: 2\r\n\r\nbody\r\n..\r\n...\r\nend\r\n.\r\n"),
	RETR("only: header\n", "only: header\r\n.\r\n"),

	TOP(MSG, 0, MSG_HDR ".\r\n", true),
	TOP(MSG, 1, MSG_HDR "line1\r\n.\r\n", true),
	TOP(MSG, 2, MSG_HDR "line1\r\n..line2\r\n.\r\n", true),
	/* The limit is hit by the last LF of the input. */
	TOP(MSG, 3, MSG_WIRE ".\r\n", true),
	TOP(MSG, 4, MSG_WIRE ".\r\n", false),
	TOP(MSG, 1000, MSG_WIRE ".\r\n", false),
	TOP(MSG, UINT64_MAX, MSG_WIRE ".\r\n", false),
	RETR(MSG, MSG_WIRE ".\r\n"),
	TOP("S: x\nF: y\n\nl1\nl2\n", 1, "S: x\r\nF: y\r\n\r\nl1\r\n.\r\n",
	    true),
	TOP("S: x\nF: y\n\nl1\nl2", 2,
	    "S: x\r\nF: y\r\n\r\nl1\r\nl2\r\n.\r\n", false),
	/* No blank line: all of it is header. */
	TOP("S: x\nF: y\n", 0, "S: x\r\nF: y\r\n.\r\n", false),
	TOP("S: x\nF: y", 0, "S: x\r\nF: y\r\n.\r\n", false),
	TOP("S: x\r\n.F: y", 0, "S: x\r\n..F: y\r\n.\r\n", false),
	TOP("H: 1\n\nbody", 5, "H: 1\r\n\r\nbody\r\n.\r\n", false),
	TOP("H: 1\n\n", 0, "H: 1\r\n\r\n.\r\n", true),
	TOP("H: 1\n\n", 3, "H: 1\r\n\r\n.\r\n", false),
	TOP("H: 1\n\r\nb\n", 0, "H: 1\r\n\r\n.\r\n", true),
	/* "\r\r\n" is a line holding one CR, not the blank line. */
	TOP("H: 1\n\r\r\nb\n\nc\n", 0, "H: 1\r\n\r\r\nb\r\n\r\n.\r\n", true),
	TOP("\nbody1\nbody2\n", 1, "\r\nbody1\r\n.\r\n", true),
	TOP("\nbody1\nbody2\n", 0, "\r\n.\r\n", true),
	TOP(".H: 1\n\nb", 0, "..H: 1\r\n\r\n.\r\n", true),
	TOP("H\n\n.\nb\n", 1, "H\r\n\r\n..\r\n.\r\n", true),
	TOP("H\n\nb\n\n\nc\n", 3, "H\r\n\r\nb\r\n\r\n\r\n.\r\n", true),
	TOP("", 0, ".\r\n", false),
	TOP("", 5, ".\r\n", false),
};

static void
check_encoding(const struct enc_case *c, const struct buf *b, bool full,
    size_t idx)
{
	if (b->len != c->outlen || memcmp(b->data, c->out, b->len) != 0)
		fail_msg("case %zu: output differs (len %zu, want %zu)", idx,
		    b->len, c->outlen);
	assert_int_equal(full, c->full);
}

static void
test_encoder_vectors_one_shot(void **state)
{
	(void)state;
	for (size_t i = 0; i < N_ELEM(enc_cases); i++) {
		const struct enc_case *c = &enc_cases[i];
		bool full;
		struct buf b = encode(c->in, c->inlen, c->top, c->k, NULL, 0,
		    &full);

		check_encoding(c, &b, full, i);
		buf_free(&b);
	}
}

static void
test_encoder_vectors_byte_at_a_time(void **state)
{
	(void)state;
	for (size_t i = 0; i < N_ELEM(enc_cases); i++) {
		const struct enc_case *c = &enc_cases[i];
		size_t cuts[64];
		struct buf b;
		bool full;

		assert_true(c->inlen <= N_ELEM(cuts));
		for (size_t j = 0; j < c->inlen; j++)
			cuts[j] = j;
		b = encode(c->in, c->inlen, c->top, c->k, cuts, c->inlen,
		    &full);
		check_encoding(c, &b, full, i);
		buf_free(&b);
	}
}

/* Every two-piece split: CR|LF, "\n|.", ".|x" and the rest. */
static void
test_encoder_vectors_every_split_point(void **state)
{
	(void)state;
	for (size_t i = 0; i < N_ELEM(enc_cases); i++) {
		const struct enc_case *c = &enc_cases[i];

		for (size_t cut = 0; cut <= c->inlen; cut++) {
			struct buf b;
			bool full;

			b = encode(c->in, c->inlen, c->top, c->k, &cut, 1,
			    &full);
			check_encoding(c, &b, full, i);
			buf_free(&b);
		}
	}
}

static void
test_encoder_crlf_split_across_chunks_is_one_line_end(void **state)
{
	static const size_t cut = 2;
	struct buf b;

	(void)state;
	/* "a\r" then "\n.b": no extra CR, and ".b" is stuffed. */
	b = encode("a\r\n.b", 5, false, 0, &cut, 1, NULL);
	assert_int_equal(b.len, 11);
	assert_memory_equal(b.data, "a\r\n..b\r\n.\r\n", 11);
	buf_free(&b);
}

static void
test_encoder_top_ignores_input_after_limit(void **state)
{
	struct pop3_encoder e;
	char out[64];
	size_t n;

	(void)state;
	pop3_encoder_init(&e, true, 1);
	n = pop3_encoder_feed(&e, "H\n\nb1\nb2", 8, out, sizeof(out));
	assert_int_equal(n, 9);
	assert_memory_equal(out, "H\r\n\r\nb1\r\n", 9);
	assert_true(pop3_encoder_full(&e));
	assert_int_equal(pop3_encoder_feed(&e, "\n.more\n", 7, out,
	    sizeof(out)), 0);
	n = pop3_encoder_finish(&e, out, sizeof(out));
	assert_int_equal(n, 3);
	assert_memory_equal(out, ".\r\n", 3);
}

static void
test_encoder_retr_is_never_full(void **state)
{
	struct pop3_encoder e;
	char out[64];

	(void)state;
	pop3_encoder_init(&e, false, 0);
	assert_false(pop3_encoder_full(&e));
	pop3_encoder_feed(&e, "H\n\nb\n", 5, out, sizeof(out));
	assert_false(pop3_encoder_full(&e));
}

/*
 * Exactly 2 * inlen is the worst case: every byte a bare LF or every line
 * a lone '.'.
 */
static void
test_encoder_worst_case_fills_out_max_exactly(void **state)
{
	static const char *const worst[] = { "\n\n\n\n", ".\n.\n" };
	struct pop3_encoder e;
	char out[8];

	(void)state;
	for (size_t i = 0; i < N_ELEM(worst); i++) {
		pop3_encoder_init(&e, false, 0);
		assert_int_equal(pop3_encoder_feed(&e, worst[i], 4, out,
		    POP3_ENCODER_OUT_MAX(4)), POP3_ENCODER_OUT_MAX(4));
	}
	pop3_encoder_init(&e, false, 0);
	pop3_encoder_feed(&e, "x", 1, out, sizeof(out));
	assert_int_equal(pop3_encoder_finish(&e, out, POP3_ENCODER_FINISH_MAX),
	    POP3_ENCODER_FINISH_MAX);
	assert_memory_equal(out, "\r\n.\r\n", 5);
}

/* Any output room of 2 or more makes progress and never overruns. */
static struct buf
encode_small_out(const void *in, size_t len, bool top, uint64_t k,
    size_t room)
{
	const unsigned char *p = in;
	struct pop3_encoder e;
	struct buf b;
	char *out;
	size_t pos = 0, w;

	b.data = malloc(POP3_ENCODER_OUT_MAX(len) + POP3_ENCODER_FINISH_MAX);
	assert_non_null(b.data);
	b.len = 0;
	out = malloc(room > POP3_ENCODER_FINISH_MAX ? room :
	    POP3_ENCODER_FINISH_MAX);
	assert_non_null(out);
	pop3_encoder_init(&e, top, k);
	/* Each call consumes at least one byte, so len + 1 calls suffice. */
	for (size_t guard = 0; pos < len; guard++) {
		size_t used;

		assert_true(guard <= len);
		used = pop3_encoder_feed_some(&e, p + pos, len - pos, out,
		    room, &w);
		assert_true(used > 0);
		assert_true(w <= room);
		if (pos + used < len)
			assert_true(room - w < 2);
		memcpy(b.data + b.len, out, w);
		b.len += w;
		pos += used;
	}
	w = pop3_encoder_finish(&e, out, POP3_ENCODER_FINISH_MAX);
	memcpy(b.data + b.len, out, w);
	b.len += w;
	free(out);
	return b;
}

/*
 * RETR checks a cached size against the encoder's own count: it must be
 * lib/crlf's size for any input cut anywhere (a CR ending one block, its
 * LF opening the next), and none at all when TOP left lines out.
 */
static void
test_encoder_counts_the_crlf_size(void **state)
{
	(void)state;
	for (size_t i = 0; i < N_ELEM(enc_cases); i++) {
		const struct enc_case *c = &enc_cases[i];

		for (size_t step = 1; step <= c->inlen + 1; step++) {
			struct pop3_encoder e;
			struct crlf_size cs;
			char out[POP3_ENCODER_OUT_MAX(64) + POP3_ENCODER_FINISH_MAX];
			uint64_t want, got;
			int r;

			assert_true(c->inlen <= 64);
			pop3_encoder_init(&e, c->top, c->k);
			for (size_t pos = 0; pos < c->inlen; pos += step) {
				size_t n = c->inlen - pos < step ?
				    c->inlen - pos : step;

				(void)pop3_encoder_feed(&e, c->in + pos, n,
				    out, sizeof(out));
			}
			assert_int_equal(pop3_encoder_size(&e, &got), -1);
			(void)pop3_encoder_finish(&e, out, sizeof(out));
			r = pop3_encoder_size(&e, &got);
			if (c->full) {
				assert_int_equal(r, -1);
				continue;
			}
			crlf_size_init(&cs);
			crlf_size_feed(&cs, c->in, c->inlen);
			assert_int_equal(crlf_size_finish(&cs, &want), 0);
			assert_int_equal(r, 0);
			if (got != want)
				fail_msg("case %zu step %zu: %llu, not %llu",
				    i, step, (unsigned long long)got,
				    (unsigned long long)want);
		}
	}
}

static void
test_encoder_feed_some_fits_any_output_room(void **state)
{
	(void)state;
	for (size_t i = 0; i < N_ELEM(enc_cases); i++) {
		const struct enc_case *c = &enc_cases[i];

		for (size_t room = 2; room <= 9; room++) {
			struct buf b = encode_small_out(c->in, c->inlen,
			    c->top, c->k, room);

			if (b.len != c->outlen ||
			    memcmp(b.data, c->out, b.len) != 0)
				fail_msg("case %zu room %zu differs", i, room);
			buf_free(&b);
		}
	}
}

static void
test_encoder_feed_some_never_splits_one_bytes_output(void **state)
{
	struct pop3_encoder e;
	char out[2] = { 'Q', 'Q' };
	size_t w;

	(void)state;
	pop3_encoder_init(&e, false, 0);
	/* '.' at the start needs two octets: nothing consumed or written. */
	assert_int_equal(pop3_encoder_feed_some(&e, ".a", 2, out, 1, &w), 0);
	assert_int_equal(w, 0);
	assert_int_equal(out[0], 'Q');
	assert_int_equal(pop3_encoder_feed_some(&e, ".a", 2, out, 2, &w), 1);
	assert_int_equal(w, 2);
	assert_int_equal(pop3_encoder_feed_some(&e, "a", 1, out, 1, &w), 1);
	assert_int_equal(w, 1);
	assert_int_equal(pop3_encoder_feed_some(&e, "\n", 1, out, 1, &w), 0);
	assert_int_equal(pop3_encoder_feed_some(&e, "\n", 1, out, 0, &w), 0);
	assert_int_equal(w, 0);
}

/* A client's view of the wire form: CRLF lines, unstuffed, up to ".". */
static struct buf
decode_wire(const struct buf *wire)
{
	struct buf b;
	size_t pos = 0;
	bool ended = false;

	b.data = malloc(wire->len + 1);
	assert_non_null(b.data);
	b.len = 0;
	while (pos < wire->len) {
		char line[1024];
		size_t end = pos, len;

		assert_false(ended);
		while (end + 1 < wire->len &&
		    !(wire->data[end] == '\r' && wire->data[end + 1] == '\n'))
			end++;
		/* Every line, the last included, ends with CRLF. */
		assert_true(end + 1 < wire->len);
		len = end - pos;
		assert_true(len < sizeof(line));
		memcpy(line, wire->data + pos, len);
		line[len] = '\0';
		if (pop3_unstuff_line(line, &len)) {
			ended = true;
		} else {
			memcpy(b.data + b.len, line, len);
			memcpy(b.data + b.len + len, "\r\n", 2);
			b.len += len + 2;
		}
		pos = end + 2;
	}
	assert_true(ended);
	return b;
}

/* The stored bytes as RETR means them: bare LF as CRLF, a final CRLF. */
static struct buf
normalize(const unsigned char *in, size_t len)
{
	struct buf b;

	b.data = malloc(2 * len + 2);
	assert_non_null(b.data);
	b.len = 0;
	for (size_t i = 0; i < len; i++) {
		if (in[i] == '\n' && (i == 0 || in[i - 1] != '\r'))
			b.data[b.len++] = '\r';
		b.data[b.len++] = (char)in[i];
	}
	if (len > 0 && in[len - 1] != '\n') {
		b.data[b.len++] = '\r';
		b.data[b.len++] = '\n';
	}
	return b;
}

static size_t
random_cuts(uint64_t *seed, size_t len, size_t *cuts, size_t max)
{
	size_t n = 0, pos = 0;

	while (n < max) {
		pos += rnd_below(seed, 8);
		if (pos > len)
			break;
		cuts[n++] = pos;
	}
	return n;
}

/*
 * For many generated messages and random chunk splits: the output is the
 * same as one-shot; RETR's size with stuffing dots removed and without the
 * final ".CRLF" equals lib/crlf.h's size; a client decodes it back to the
 * normalized message; TOP's output is a prefix of RETR's.
 */
static void
test_encoder_size_equals_crlf_size_over_generated_messages(void **state)
{
	static const unsigned char alphabet[] = {
		'a', 'b', ' ', '.', '.', '\r', '\n', '\n', '\0', 0xff, ':'
	};
	uint64_t seed = 0x9e3779b97f4a7c15ULL;

	(void)state;
	for (int iter = 0; iter < 3000; iter++) {
		unsigned char in[200];
		size_t len = rnd_below(&seed, sizeof(in) + 1);
		size_t cuts[256], ncuts, dots = 0, top_cuts[256], ntop;
		uint64_t k = rnd_below(&seed, 6), size;
		struct crlf_size cs;
		struct buf one, split, top, dec, norm;
		bool at_start = true;

		for (size_t i = 0; i < len; i++)
			in[i] = alphabet[rnd_below(&seed, sizeof(alphabet))];

		one = encode(in, len, false, 0, NULL, 0, NULL);
		ncuts = random_cuts(&seed, len, cuts, N_ELEM(cuts));
		split = encode(in, len, false, 0, cuts, ncuts, NULL);
		assert_int_equal(split.len, one.len);
		assert_memory_equal(split.data, one.data, one.len);

		/* Stuffing dots: a '.' at the start of a wire line. */
		for (size_t i = 0; i + 3 < one.len; i++) {
			if (at_start && one.data[i] == '.') {
				dots++;
				i++;
			}
			at_start = one.data[i] == '\n';
		}

		crlf_size_init(&cs);
		ncuts = random_cuts(&seed, len, cuts, N_ELEM(cuts));
		for (size_t i = 0, pos = 0; i <= ncuts; i++) {
			size_t end = i < ncuts ? cuts[i] : len;

			crlf_size_feed(&cs, in + pos, end - pos);
			pos = end;
		}
		assert_int_equal(crlf_size_finish(&cs, &size), 0);
		assert_true(one.len >= 3);
		assert_int_equal(one.len - 3 - dots, size);

		dec = decode_wire(&one);
		norm = normalize(in, len);
		assert_int_equal(dec.len, norm.len);
		assert_memory_equal(dec.data, norm.data, norm.len);
		assert_int_equal(norm.len, size);

		ntop = random_cuts(&seed, len, top_cuts, N_ELEM(top_cuts));
		top = encode(in, len, true, k, top_cuts, ntop, NULL);
		assert_true(top.len <= one.len);
		assert_memory_equal(top.data, one.data, top.len - 3);
		assert_memory_equal(top.data + top.len - 3, ".\r\n", 3);

		buf_free(&one);
		buf_free(&split);
		buf_free(&top);
		buf_free(&dec);
		buf_free(&norm);
	}
}

/* ---- client helpers ---- */

static void
test_unstuff_strips_one_leading_dot_and_spots_terminator(void **state)
{
	static const struct {
		const char	*in;
		const char	*out;
		bool		 end;
	} cases[] = {
		{ ".", "", true },
		{ "..", ".", false },
		{ "...", "..", false },
		{ "..hidden", ".hidden", false },
		{ ".x", "x", false },
		{ "", "", false },
		{ "a.", "a.", false },
		{ "a", "a", false },
		{ " .", " .", false },
		{ ".\r", "\r", false },
	};

	(void)state;
	for (size_t i = 0; i < N_ELEM(cases); i++) {
		char line[32];
		size_t len = strlen(cases[i].in);

		assert_int_equal(str_copy(line, sizeof(line), cases[i].in), 0);
		assert_int_equal(pop3_unstuff_line(line, &len), cases[i].end);
		if (!cases[i].end) {
			assert_int_equal(len, strlen(cases[i].out));
			assert_string_equal(line, cases[i].out);
		}
	}
}

static void
test_parse_status_accepts_ok_and_err_only(void **state)
{
	static const struct {
		const char	*line;
		int		 ret;
		bool		 ok;
		const char	*text;
	} cases[] = {
		{ "+OK", 0, true, "" },
		{ "+OK ", 0, true, "" },
		{ "+OK 2 320", 0, true, "2 320" },
		{ "+OK  two spaces", 0, true, " two spaces" },
		{ "-ERR", 0, false, "" },
		{ "-ERR [IN-USE] locked", 0, false, "[IN-USE] locked" },
		{ "", -1, false, NULL },
		{ "+", -1, false, NULL },
		{ "+O", -1, false, NULL },
		{ "+ok", -1, false, NULL },
		{ "-err no", -1, false, NULL },
		{ "+OKAY", -1, false, NULL },
		{ "-ERROR x", -1, false, NULL },
		{ "+OK\tx", -1, false, NULL },
		{ " +OK", -1, false, NULL },
		{ "OK", -1, false, NULL },
		{ "* OK imap", -1, false, NULL },
		{ "+ ", -1, false, NULL },
	};

	(void)state;
	for (size_t i = 0; i < N_ELEM(cases); i++) {
		const char *text = "untouched";
		bool ok = !cases[i].ok;

		assert_int_equal(pop3_parse_status(cases[i].line, &ok, &text),
		    cases[i].ret);
		if (cases[i].ret == 0) {
			assert_int_equal(ok, cases[i].ok);
			assert_string_equal(text, cases[i].text);
		} else {
			assert_string_equal(text, "untouched");
		}
	}
	{
		bool ok = false;

		assert_int_equal(pop3_parse_status("+OK x", &ok, NULL), 0);
		assert_true(ok);
	}
}

static void
test_resp_code_extracts_rfc2449_codes(void **state)
{
	static const struct {
		const char	*text;
		int		 ret;
		const char	*code;
	} cases[] = {
		{ "[IN-USE] mailbox locked", 0, "IN-USE" },
		{ "[SYS/TEMP] try later", 0, "SYS/TEMP" },
		{ "[SYS/PERM]", 0, "SYS/PERM" },
		{ "[AUTH] bad", 0, "AUTH" },
		{ "[A/B/C]x", 0, "A/B/C" },
		{ "[LOGIN-DELAY]", 0, "LOGIN-DELAY" },
		{ "", -1, "" },
		{ "no code", -1, "" },
		{ " [IN-USE]", -1, "" },
		{ "[]", -1, "" },
		{ "[", -1, "" },
		{ "[IN-USE", -1, "" },
		{ "[IN USE]", -1, "" },
		{ "[SYS/]", -1, "" },
		{ "[/SYS]", -1, "" },
		{ "[SYS//TEMP]", -1, "" },
		{ "[A\tB]", -1, "" },
		{ "[A\x7f]", -1, "" },
		{ "[\xc3\xa4]", -1, "" },
		{ "[A]]", 0, "A" },
	};

	(void)state;
	for (size_t i = 0; i < N_ELEM(cases); i++) {
		char code[32];

		memset(code, 'Q', sizeof(code));
		assert_int_equal(pop3_resp_code(cases[i].text, code,
		    sizeof(code)), cases[i].ret);
		assert_string_equal(code, cases[i].code);
	}
}

static void
test_resp_code_refuses_what_does_not_fit(void **state)
{
	char code[9];

	(void)state;
	/* "SYS/TEMP" is 8 octets: fits 9 with the NUL, not 8. */
	assert_int_equal(pop3_resp_code("[SYS/TEMP]", code, 9), 0);
	assert_string_equal(code, "SYS/TEMP");
	assert_int_equal(pop3_resp_code("[SYS/TEMP]", code, 8), -1);
	assert_string_equal(code, "");
	assert_int_equal(pop3_resp_code("[SYS/TEMP]", code, 0), -1);
}

/* ---- the block-wise encoder against a one-octet-at-a-time reference ---- */

/*
 * The definition in pop3.h, written as plainly as possible: one octet at a
 * time over the whole input, then the ending. Returns the output length.
 */
static size_t
reference_encode(const unsigned char *in, size_t len, bool top, uint64_t k,
    char *out)
{
	size_t o = 0, line_len = 0;
	bool last_cr = false, in_body = false, done = false;
	uint64_t sent = 0;

	for (size_t i = 0; i < len && !done; i++) {
		unsigned char c = in[i];

		if (c == '.' && line_len == 0)
			out[o++] = '.';
		if (c == '\n' && !last_cr)
			out[o++] = '\r';
		out[o++] = (char)c;
		if (c == '\n') {
			bool blank = line_len == 0 || (line_len == 1 && last_cr);

			line_len = 0;
			if (top && !in_body && blank) {
				in_body = true;
				done = k == 0;
			} else if (top && in_body && ++sent >= k) {
				done = true;
			}
		} else {
			line_len++;
		}
		last_cr = c == '\r';
	}
	if (line_len != 0) {
		out[o++] = '\r';
		out[o++] = '\n';
	}
	memcpy(out + o, ".\r\n", 3);
	return o + 3;
}

/*
 * Encode with pieces of the input cut at random points (piece = 1: one
 * octet at a time) and an output window of at most `room` octets per
 * feed_some call, so every "output full" boundary is crossed as well.
 */
static size_t
chunked_encode(const unsigned char *in, size_t len, bool top, uint64_t k,
    size_t piece, size_t room, char *out, unsigned int *seed)
{
	struct pop3_encoder e;
	size_t pos = 0, o = 0;

	pop3_encoder_init(&e, top, k);
	while (pos < len) {
		size_t n = piece != 0 ? piece : 1 + (size_t)rand_r(seed) % 97;

		if (n > len - pos)
			n = len - pos;
		for (size_t used = 0; used < n;) {
			size_t w, u;

			u = pop3_encoder_feed_some(&e, in + pos + used, n - used,
			    out + o, room, &w);
			assert_true(w <= room);
			/* Progress, or a full window (room left < 2). */
			assert_true(u > 0 || room - w < 2);
			assert_true(u > 0 || w > 0);
			o += w;
			used += u;
		}
		pos += n;
	}
	return o + pop3_encoder_finish(&e, out + o, POP3_ENCODER_FINISH_MAX);
}

static void
random_message(unsigned char *buf, size_t len, unsigned int *seed)
{
	/* Mostly the octets the encoder cares about, some plain text. */
	static const char alphabet[] = "..\r\r\n\n\nab x\0\xff";

	for (size_t i = 0; i < len; i++)
		buf[i] = (unsigned char)alphabet[(size_t)rand_r(seed) %
		    (sizeof(alphabet) - 1)];
}

static void
test_encoder_matches_reference_on_random_input(void **state)
{
	enum { MAXLEN = 300 };
	static const size_t rooms[] = { 2, 3, 5, 64, 2 * MAXLEN + 8 };
	static unsigned char in[MAXLEN];
	static char want[2 * MAXLEN + 8], got[2 * MAXLEN + 8];
	unsigned int seed = 11;

	(void)state;
	for (int iter = 0; iter < 3000; iter++) {
		size_t len = (size_t)rand_r(&seed) % MAXLEN;
		bool top = iter % 3 == 0;
		uint64_t k = (uint64_t)rand_r(&seed) % 6;
		size_t wlen, glen;

		random_message(in, len, &seed);
		wlen = reference_encode(in, len, top, k, want);
		for (size_t r = 0; r < N_ELEM(rooms); r++) {
			/* Random pieces, one octet at a time, and whole. */
			size_t pieces[] = { 0, 1, len > 0 ? len : 1 };

			for (size_t pc = 0; pc < N_ELEM(pieces); pc++) {
				glen = chunked_encode(in, len, top, k,
				    pieces[pc], rooms[r], got, &seed);
				if (glen != wlen || memcmp(got, want, wlen) != 0)
					fail_msg("iteration %d len %zu room %zu "
					    "piece %zu: output differs", iter,
					    len, rooms[r], pieces[pc]);
			}
		}
	}
}

/*
 * Lines of some 0..100 octets, as mail has: the 16-octet blocks of
 * crlf_copy_to_lf run whole, end at a LF at every offset, and meet the end
 * of the input and of the output window anywhere in a block.
 */
static void
test_encoder_matches_reference_on_long_lines(void **state)
{
	enum { MAXLEN = 2000 };
	static const size_t rooms[] = { 2, 15, 16, 17, 33, 100, 2 * MAXLEN + 8 };
	static unsigned char in[MAXLEN];
	static char want[2 * MAXLEN + 8], got[2 * MAXLEN + 8];
	unsigned int seed = 23;

	(void)state;
	for (int iter = 0; iter < 400; iter++) {
		size_t len = (size_t)rand_r(&seed) % MAXLEN, wlen, glen;
		bool top = iter % 3 == 0;
		uint64_t k = (uint64_t)rand_r(&seed) % 30;

		for (size_t i = 0; i < len; i++) {
			unsigned int r = (unsigned int)rand_r(&seed) % 100;

			in[i] = r < 2 ? '\n' : r < 3 ? '\r' : r < 4 ? '.' :
			    (unsigned char)('a' + r % 26);
		}
		wlen = reference_encode(in, len, top, k, want);
		for (size_t r = 0; r < N_ELEM(rooms); r++) {
			size_t pieces[] = { 0, 1, 16, len > 0 ? len : 1 };

			for (size_t pc = 0; pc < N_ELEM(pieces); pc++) {
				glen = chunked_encode(in, len, top, k,
				    pieces[pc], rooms[r], got, &seed);
				if (glen != wlen || memcmp(got, want, wlen) != 0)
					fail_msg("iteration %d len %zu room %zu "
					    "piece %zu: output differs", iter,
					    len, rooms[r], pieces[pc]);
			}
		}
	}
}

/*
 * One line end at every offset, a dot line right after it, messages of
 * every length around it: the block loop's last line end falls on every
 * position of its chunk and where it hands over to the line-by-line rest,
 * which must still see a line start there (the dot stuffed).
 */
static void
test_encoder_dot_after_a_line_end_at_every_offset(void **state)
{
	enum { MAXLEN = 400 };
	static unsigned char in[MAXLEN];
	static char want[2 * MAXLEN + 8], got[2 * MAXLEN + 8];
	unsigned int seed = 5;

	(void)state;
	for (size_t q = 0; q + 2 < MAXLEN; q++) {
		for (size_t len = q + 2; len <= MAXLEN && len <= q + 200;
		    len += 1 + q % 3) {
			size_t wlen, glen;

			memset(in, 'a', len);
			if (q > 0 && q % 2 == 0)
				in[q - 1] = '\r';
			in[q] = '\n';
			in[q + 1] = '.';
			wlen = reference_encode(in, len, false, 0, want);
			glen = chunked_encode(in, len, false, 0, len,
			    sizeof(got), got, &seed);
			if (glen != wlen || memcmp(got, want, wlen) != 0)
				fail_msg("LF at %zu, length %zu: output differs",
				    q, len);
		}
	}
}

/* Two pieces, cut at every point of the input, one feed each. */
static void
test_encoder_matches_reference_split_at_every_boundary(void **state)
{
	enum { LEN = 200 };
	static unsigned char in[LEN];
	static char want[2 * LEN + 8];
	unsigned int seed = 7;

	(void)state;
	for (int iter = 0; iter < 40; iter++) {
		bool top = iter % 2 == 1;
		uint64_t k = (uint64_t)iter % 5;
		size_t wlen;

		random_message(in, LEN, &seed);
		wlen = reference_encode(in, LEN, top, k, want);
		for (size_t cut = 0; cut <= LEN; cut++) {
			struct buf b = encode(in, LEN, top, k, &cut, 1, NULL);

			if (b.len != wlen || memcmp(b.data, want, wlen) != 0)
				fail_msg("iteration %d cut %zu: output differs",
				    iter, cut);
			buf_free(&b);
		}
	}
}

/* Long runs without a line end go through in one piece, unchanged. */
static void
test_encoder_long_lines_and_big_blocks(void **state)
{
	enum { LEN = 70000 };
	unsigned char *in = malloc(LEN);
	char *want = malloc(2 * LEN + 8), *got = malloc(2 * LEN + 8);
	unsigned int seed = 3;
	size_t wlen, glen;

	(void)state;
	assert_non_null(in);
	assert_non_null(want);
	assert_non_null(got);
	for (size_t i = 0; i < LEN; i++)
		in[i] = (unsigned char)('a' + i % 26);
	for (size_t i = 1000; i < LEN; i += 1000 + (size_t)rand_r(&seed) % 5000)
		in[i] = '\n';
	in[5000] = '.';
	in[5001] = '\n';
	in[5002] = '.';
	wlen = reference_encode(in, LEN, false, 0, want);
	glen = chunked_encode(in, LEN, false, 0, 16384, 2 * 16384 + 8, got,
	    &seed);
	assert_int_equal(glen, wlen);
	assert_memory_equal(got, want, wlen);
	free(in);
	free(want);
	free(got);
}

/* Every width from 1 to 20 digits, the edges of each, against printf. */
static void
test_put_u64_matches_printf_at_every_width(void **state)
{
	char got[POP3_U64_DIGITS + 1], want[32];
	uint64_t p = 1;

	(void)state;
	for (int w = 1; w <= POP3_U64_DIGITS; w++) {
		uint64_t v[] = { p, p - 1, p + 1, p * 5, UINT64_MAX };

		for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
			size_t n;

			memset(got, 'x', sizeof(got));
			n = pop3_put_u64(got, v[i]);
			snprintf(want, sizeof(want), "%llu",
			    (unsigned long long)v[i]);
			assert_int_equal(n, strlen(want));
			assert_memory_equal(got, want, n);
			/* No NUL, nothing past the digits. */
			assert_int_equal(got[n], 'x');
		}
		if (w < POP3_U64_DIGITS)
			p *= 10;
	}
	assert_int_equal(pop3_put_u64(got, 0), 1);
	assert_int_equal(got[0], '0');
}

/*
 * The encoder's tests run at every block width RETR's bulk loop can take
 * (pop3_encoder_set_width): line by line, SSE2's 16 and AVX2's 32 octets,
 * as far as this CPU has them. The output must not depend on it.
 */
static size_t widths[] = { 0, 16, 32 };
static size_t width_at;

static int
next_width(void **state)
{
	size_t want = widths[width_at++], got;

	(void)state;
	got = pop3_encoder_set_width(want);
	if (got != want)
		print_message("encoder: width %zu not available, %zu tested\n",
		    want, got);
	return 0;
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_line_splits_good_lines),
		cmocka_unit_test(test_parse_line_empty_or_all_space_is_empty),
		cmocka_unit_test(
		    test_parse_line_rejects_controls_keywords_and_arity),
		cmocka_unit_test(test_parse_line_survives_every_prefix),
		cmocka_unit_test(test_parse_line_arg_limit_is_pop3_arg_max),
		cmocka_unit_test(test_parse_line_length_limit_counts_crlf),
		cmocka_unit_test(
		    test_msgnum_accepts_1_to_uint32_max_and_leading_zeros),
		cmocka_unit_test(test_msgnum_rejects_zero_noise_and_overflow),
		cmocka_unit_test(
		    test_unstuff_strips_one_leading_dot_and_spots_terminator),
		cmocka_unit_test(test_parse_status_accepts_ok_and_err_only),
		cmocka_unit_test(test_resp_code_extracts_rfc2449_codes),
		cmocka_unit_test(test_resp_code_refuses_what_does_not_fit),
		cmocka_unit_test(test_put_u64_matches_printf_at_every_width),
	};
	const struct CMUnitTest encoder_tests[] = {
		cmocka_unit_test(test_encoder_vectors_one_shot),
		cmocka_unit_test(test_encoder_vectors_byte_at_a_time),
		cmocka_unit_test(test_encoder_vectors_every_split_point),
		cmocka_unit_test(
		    test_encoder_crlf_split_across_chunks_is_one_line_end),
		cmocka_unit_test(test_encoder_top_ignores_input_after_limit),
		cmocka_unit_test(test_encoder_retr_is_never_full),
		cmocka_unit_test(
		    test_encoder_matches_reference_on_random_input),
		cmocka_unit_test(test_encoder_matches_reference_on_long_lines),
		cmocka_unit_test(
		    test_encoder_matches_reference_split_at_every_boundary),
		cmocka_unit_test(
		    test_encoder_dot_after_a_line_end_at_every_offset),
		cmocka_unit_test(test_encoder_long_lines_and_big_blocks),
		cmocka_unit_test(test_encoder_worst_case_fills_out_max_exactly),
		cmocka_unit_test(test_encoder_counts_the_crlf_size),
		cmocka_unit_test(test_encoder_feed_some_fits_any_output_room),
		cmocka_unit_test(
		    test_encoder_feed_some_never_splits_one_bytes_output),
		cmocka_unit_test(
		    test_encoder_size_equals_crlf_size_over_generated_messages),
	};
	int failed = cmocka_run_group_tests(tests, NULL, NULL);

	for (size_t i = 0; i < N_ELEM(widths); i++)
		failed += cmocka_run_group_tests(encoder_tests, next_width,
		    NULL);
	return failed;
}
