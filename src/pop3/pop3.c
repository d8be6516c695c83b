#include "pop3.h"

#include <limits.h>
#include <stdint.h>
#include <string.h>
#if defined(__SSE2__) && (defined(__x86_64__) || defined(__i386__))
#include <immintrin.h>
#endif

#include "../lib/crlf.h"
#include "../lib/log.h"
#include "../lib/str.h"

_Static_assert(UINT_MAX >= UINT32_MAX, "message numbers need 32 bits");

static bool
is_ctl(unsigned char c)
{
	return c < 0x20 || c == 0x7f;
}

static bool
is_keyword_char(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
	    (c >= '0' && c <= '9') || c == '-';
}

static enum pop3_parse_result
parse_words(char *line, size_t len, struct pop3_args *a)
{
	size_t i = 0, start, klen;

	while (i < len && line[i] == ' ')
		i++;
	if (i == len)
		return POP3_PARSE_EMPTY;

	start = i;
	while (i < len && line[i] != ' ')
		i++;
	klen = i - start;
	if (klen < 3 || klen > POP3_KEYWORD_MAX)
		return POP3_PARSE_BAD;
	for (size_t k = 0; k < klen; k++) {
		unsigned char c = (unsigned char)line[start + k];

		if (!is_keyword_char(c))
			return POP3_PARSE_BAD;
		if (c >= 'a' && c <= 'z')
			c -= 'a' - 'A';
		a->keyword[k] = (char)c;
	}
	a->keyword[klen] = '\0';

	for (;;) {
		while (i < len && line[i] == ' ')
			i++;
		if (i == len)
			return POP3_PARSE_OK;
		start = i;
		while (i < len && line[i] != ' ')
			i++;
		if (i - start > POP3_ARG_MAX || a->argc == POP3_ARGS_MAX)
			return POP3_PARSE_BAD;
		a->argv[a->argc++] = line + start;
		/* At i == len this is the caller's line[len]. */
		line[i] = '\0';
		if (i < len)
			i++;
	}
}

enum pop3_parse_result
pop3_parse_line(char *line, size_t len, struct pop3_args *a)
{
	enum pop3_parse_result res;

	a->keyword[0] = '\0';
	a->argc = 0;
	if (len > POP3_LINE_MAX - 2)
		return POP3_PARSE_BAD;
	/* A NUL would end an argument early: the whole line is checked. */
	for (size_t i = 0; i < len; i++) {
		if (is_ctl((unsigned char)line[i]))
			return POP3_PARSE_BAD;
	}
	res = parse_words(line, len, a);
	if (res != POP3_PARSE_OK) {
		a->keyword[0] = '\0';
		a->argc = 0;
	}
	return res;
}

int
pop3_parse_msgnum(const char *s, unsigned int *n_r)
{
	uint32_t n;

	if (str_parse_u32(s, &n) < 0 || n == 0)
		return -1;
	*n_r = n;
	return 0;
}

size_t
pop3_put_u64(char *dst, uint64_t v)
{
	char tmp[POP3_U64_DIGITS];
	size_t n = 0;

	do {
		tmp[sizeof(tmp) - ++n] = (char)('0' + v % 10);
		v /= 10;
	} while (v != 0);
	memcpy(dst, tmp + sizeof(tmp) - n, n);
	return n;
}

void
pop3_encoder_init(struct pop3_encoder *e, bool top, uint64_t body_lines)
{
	*e = (struct pop3_encoder){ .top = top, .body_lines = body_lines };
}

/* Called at each LF, before line_len and last_cr move on. */
static void
encoder_end_line(struct pop3_encoder *e)
{
	bool blank = e->line_len == 0 || (e->line_len == 1 && e->last_cr);

	e->line_len = 0;
	if (!e->top)
		return;
	if (!e->in_body) {
		if (blank) {
			e->in_body = true;
			e->done = e->body_lines == 0;
		}
		return;
	}
	e->lines_sent++;
	if (e->lines_sent >= e->body_lines)
		e->done = true;
}

/*
 * The bulk of a RETR, 64 input octets at a time: one compare finds all
 * their LFs (a bit mask), and each line's octets go out as one unaligned
 * 64-octet copy from the line's start, the octets past its LF written
 * again by the next line's copy. Mail has lines of some 47 octets (the
 * bench's 1 MB messages: 21,400 per MB), so the cost per line decides: a
 * call per line with 16-octet steps was a third of the server's CPU in a
 * 1 MB RETR, and a step that found only the next LF (32 octets at a time)
 * waited on its load for every line.
 * Stops before a chunk could read past in[inlen - 1] (a copy from the last
 * line start in the chunk, the octet after a LF looked at for a dot) or
 * write past out[outsize - 1] (64 octets doubled at worst, plus a copy's
 * overhang). RETR only: TOP counts lines.
 */
#define CHUNK		64
#define CHUNK_IN	(2 * CHUNK)
#define CHUNK_OUT	(3 * CHUNK)

static inline __attribute__((always_inline)) size_t
encode_chunks(struct pop3_encoder *e, const unsigned char *p, size_t inlen,
    char *out, size_t outsize, size_t *written_r, size_t *dots_r,
    uint64_t (*lf_mask)(const unsigned char *),
    void (*copy)(const unsigned char *, char *))
{
	size_t i = 0, o = 0, dots = 0, line_from = 0, before = e->line_len;

	while (inlen - i >= CHUNK_IN && outsize - o >= CHUNK_OUT) {
		uint64_t m = lf_mask(p + i);
		size_t s = 0;	/* the chunk's octets before s are out */

		while (m != 0) {
			size_t j = (size_t)__builtin_ctzll(m);
			/* A bare LF becomes CRLF; a CRLF stays as it is. */
			bool cr = i + j > 0 ? p[i + j - 1] == '\r' : e->last_cr;

			m &= m - 1;
			copy(p + i + s, out + o);
			o += j - s;
			out[o] = '\r';
			o += !cr;
			out[o++] = '\n';
			s = j + 1;
			line_from = i + s;
			before = 0;
			if (p[i + s] == '.') {
				out[o++] = '.';
				out[o++] = '.';
				dots++;
				s++;
			}
		}
		if (s < CHUNK) {
			copy(p + i + s, out + o);
			o += CHUNK - s;
			s = CHUNK;
		}
		i += s;
	}
	if (i > 0) {
		e->last_cr = p[i - 1] == '\r';
		e->line_len = before + (i - line_from) < 2 ?
		    (unsigned char)(before + (i - line_from)) : 2;
	}
	*written_r = o;
	*dots_r = dots;
	return i;
}

#if defined(__SSE2__) && (defined(__x86_64__) || defined(__i386__))
#define ENCODER_SIMD 1

static inline __attribute__((always_inline)) uint64_t
lf_mask16(const unsigned char *in)
{
	const __m128i lf = _mm_set1_epi8('\n');
	uint64_t m = 0;

	for (int k = 0; k < CHUNK / 16; k++)
		m |= (uint64_t)(unsigned int)_mm_movemask_epi8(_mm_cmpeq_epi8(
		    _mm_loadu_si128((const void *)(in + 16 * k)), lf)) <<
		    (16 * k);
	return m;
}

static inline __attribute__((always_inline)) void
copy16(const unsigned char *in, char *out)
{
	for (int k = 0; k < CHUNK / 16; k++)
		_mm_storeu_si128((void *)(out + 16 * k),
		    _mm_loadu_si128((const void *)(in + 16 * k)));
}

static size_t
encode_chunks16(struct pop3_encoder *e, const unsigned char *p, size_t inlen,
    char *out, size_t outsize, size_t *written_r, size_t *dots_r)
{
	return encode_chunks(e, p, inlen, out, outsize, written_r, dots_r,
	    lf_mask16, copy16);
}

__attribute__((target("avx2"))) static inline
__attribute__((always_inline)) uint64_t
lf_mask32(const unsigned char *in)
{
	const __m256i lf = _mm256_set1_epi8('\n');
	uint64_t lo = (unsigned int)_mm256_movemask_epi8(_mm256_cmpeq_epi8(
	    _mm256_loadu_si256((const void *)in), lf));
	uint64_t hi = (unsigned int)_mm256_movemask_epi8(_mm256_cmpeq_epi8(
	    _mm256_loadu_si256((const void *)(in + 32)), lf));

	return lo | hi << 32;
}

__attribute__((target("avx2"))) static inline
__attribute__((always_inline)) void
copy32(const unsigned char *in, char *out)
{
	_mm256_storeu_si256((void *)out,
	    _mm256_loadu_si256((const void *)in));
	_mm256_storeu_si256((void *)(out + 32),
	    _mm256_loadu_si256((const void *)(in + 32)));
}

__attribute__((target("avx2"))) static size_t
encode_chunks32(struct pop3_encoder *e, const unsigned char *p, size_t inlen,
    char *out, size_t outsize, size_t *written_r, size_t *dots_r)
{
	return encode_chunks(e, p, inlen, out, outsize, written_r, dots_r,
	    lf_mask32, copy32);
}
#endif

typedef size_t encode_chunks_fn(struct pop3_encoder *, const unsigned char *,
    size_t, char *, size_t, size_t *, size_t *);

/* NULL: line by line only (no SIMD, or a test asked for it). */
static encode_chunks_fn *blocks_fn;
static size_t blocks_width;
static bool blocks_chosen;

size_t
pop3_encoder_set_width(size_t max)
{
	blocks_fn = NULL;
	blocks_width = 0;
#ifdef ENCODER_SIMD
	__builtin_cpu_init();
	if (max >= 32 && __builtin_cpu_supports("avx2")) {
		blocks_fn = encode_chunks32;
		blocks_width = 32;
	} else if (max >= 16) {
		blocks_fn = encode_chunks16;
		blocks_width = 16;
	}
#else
	(void)max;
#endif
	blocks_chosen = true;
	return blocks_width;
}

/*
 * Line by line for the rest: a run of octets up to the next LF is copied
 * whole (crlf_copy_to_lf); only line starts and line ends are looked at one
 * by one. Also TOP's path, which counts its lines.
 */
size_t
pop3_encoder_feed_some(struct pop3_encoder *e, const void *in, size_t inlen,
    char *out, size_t outsize, size_t *written_r)
{
	const unsigned char *p = in;
	size_t i = 0, o = 0, dots = 0;

	if (!blocks_chosen)
		(void)pop3_encoder_set_width(SIZE_MAX);
	while (i < inlen && !e->done) {
		size_t room, n;

		if (e->line_len == 0 && p[i] == '.') {
			/* Never split an octet's output across two calls. */
			if (outsize - o < 2)
				break;
			out[o++] = '.';
			out[o++] = '.';
			dots++;
			e->line_len = 1;
			e->last_cr = false;
			i++;
			continue;
		}
		if (!e->top && blocks_fn != NULL) {
			size_t w, d;

			n = blocks_fn(e, p + i, inlen - i, out + o, outsize - o,
			    &w, &d);
			i += n;
			o += w;
			dots += d;
			if (n > 0)
				continue;
		}
		room = inlen - i < outsize - o ? inlen - i : outsize - o;
		n = crlf_copy_to_lf(p + i, room, out + o);
		if (n > 0) {
			o += n;
			i += n;
			e->last_cr = p[i - 1] == '\r';
			e->line_len = e->line_len + n < 2 ?
			    (unsigned char)(e->line_len + n) : 2;
		}
		if (i == inlen)
			continue;	/* all input taken */
		if (p[i] != '\n')
			break;		/* out is full */
		/* p[i] is the LF: CRLF stays, a bare LF becomes CRLF. */
		if (outsize - o < (e->last_cr ? 1u : 2u))
			break;
		if (!e->last_cr)
			out[o++] = '\r';
		out[o++] = '\n';
		encoder_end_line(e);
		e->last_cr = false;
		i++;
	}
	if (e->done)
		i = inlen;
	e->size += o - dots;
	*written_r = o;
	return i;
}

size_t
pop3_encoder_feed(struct pop3_encoder *e, const void *in, size_t inlen,
    char *out, size_t outsize)
{
	size_t used, written;

	used = pop3_encoder_feed_some(e, in, inlen, out, outsize, &written);
	if (used != inlen)
		fatalx("pop3_encoder_feed: room %zu for %zu input octets",
		    outsize, inlen);
	return written;
}

bool
pop3_encoder_full(const struct pop3_encoder *e)
{
	return e->done;
}

size_t
pop3_encoder_finish(struct pop3_encoder *e, char *out, size_t outsize)
{
	size_t o = 0;

	if (outsize < POP3_ENCODER_FINISH_MAX)
		fatalx("pop3_encoder_finish: output room %zu", outsize);
	/* Bytes since the last LF: the message did not end with one. */
	if (e->line_len != 0) {
		out[o++] = '\r';
		out[o++] = '\n';
		e->size += 2;
	}
	out[o++] = '.';
	out[o++] = '\r';
	out[o++] = '\n';
	e->line_len = 0;
	e->cut = e->done;	/* only TOP's limit ends it early */
	e->finished = true;
	e->done = true;
	return o;
}

int
pop3_encoder_size(const struct pop3_encoder *e, uint64_t *size_r)
{
	if (!e->finished || e->cut)
		return -1;
	*size_r = e->size;
	return 0;
}

bool
pop3_unstuff_line(char *line, size_t *len)
{
	if (*len == 0 || line[0] != '.')
		return false;
	if (*len == 1)
		return true;
	memmove(line, line + 1, *len - 1);
	(*len)--;
	line[*len] = '\0';
	return false;
}

int
pop3_parse_status(const char *line, bool *ok_r, const char **text_r)
{
	const char *rest;
	bool ok;

	if (strncmp(line, "+OK", 3) == 0) {
		ok = true;
		rest = line + 3;
	} else if (strncmp(line, "-ERR", 4) == 0) {
		ok = false;
		rest = line + 4;
	} else {
		return -1;
	}
	if (*rest == ' ')
		rest++;
	else if (*rest != '\0')
		return -1;
	*ok_r = ok;
	if (text_r != NULL)
		*text_r = rest;
	return 0;
}

/* RFC 2449 sec. 8 schar, without DEL. */
static bool
is_resp_schar(unsigned char c)
{
	return c > 0x20 && c < 0x7f && c != '/' && c != ']';
}

int
pop3_resp_code(const char *text, char *code, size_t codesize)
{
	size_t i = 1, level = 0;

	if (codesize > 0)
		code[0] = '\0';
	if (text[0] != '[')
		return -1;
	for (;; i++) {
		unsigned char c = (unsigned char)text[i];

		if (c == '/' || c == ']') {
			if (level == 0)
				return -1;
			if (c == ']')
				break;
			level = 0;
		} else if (is_resp_schar(c)) {
			level++;
		} else {
			return -1;
		}
	}
	/* text[1..i) is the code: it needs i octets with the NUL. */
	if (i > codesize)
		return -1;
	memcpy(code, text + 1, i - 1);
	code[i - 1] = '\0';
	return 0;
}
