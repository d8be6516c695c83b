#include "crlf.h"

#include <string.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

/*
 * Every octet of every RETR passes here (encoding; its size is counted on
 * the way, not in a second pass), and every new message once for sizing, in
 * lines of some 70 octets: a memchr per line cost more in calls than in
 * scanning. SSE2 (in every x86-64) looks at 16 octets at a time; other
 * machines take the memchr path.
 */

void
crlf_size_init(struct crlf_size *cs)
{
	*cs = (struct crlf_size){ 0 };
}

void
crlf_size_feed(struct crlf_size *cs, const void *buf, size_t len)
{
	const unsigned char *p = buf, *end = p + len, *lf;
	uint64_t add = len;
	size_t i = 0;

	if (len == 0)
		return;
#ifdef __SSE2__
	{
		const __m128i lfv = _mm_set1_epi8('\n'), crv = _mm_set1_epi8('\r');
		const __m128i zero = _mm_setzero_si128();
		/* 0xff in octet 0 when the octet before this block is CR. */
		__m128i cr_in = _mm_cvtsi32_si128(cs->last_cr ? 0xff : 0);

		while (len - i >= 16) {
			/* Per-octet counts of bare LFs; an octet holds 255. */
			__m128i acc = zero;

			for (int k = 0; k < 255 && len - i >= 16; k++, i += 16) {
				__m128i v = _mm_loadu_si128((const void *)(p + i));
				__m128i cr = _mm_cmpeq_epi8(v, crv);
				__m128i before = _mm_or_si128(
				    _mm_slli_si128(cr, 1), cr_in);

				/* A LF whose previous octet is not CR: one more. */
				acc = _mm_sub_epi8(acc, _mm_andnot_si128(before,
				    _mm_cmpeq_epi8(v, lfv)));
				cr_in = _mm_srli_si128(cr, 15);
			}
			acc = _mm_sad_epu8(acc, zero);
			add += (uint64_t)_mm_cvtsi128_si32(acc) +
			    (uint64_t)_mm_cvtsi128_si32(_mm_srli_si128(acc, 8));
		}
	}
#endif
	/* LF by LF with memchr over what is left. */
	for (p += i; (lf = memchr(p, '\n', (size_t)(end - p))) != NULL;
	    p = lf + 1) {
		if (!(lf > (const unsigned char *)buf ? lf[-1] == '\r' :
		    cs->last_cr))
			add++;
	}
	p = buf;
	if (__builtin_add_overflow(cs->size, add, &cs->size))
		cs->overflow = true;
	cs->last_cr = p[len - 1] == '\r';
	cs->last_lf = p[len - 1] == '\n';
	cs->any = true;
}

int
crlf_size_finish(struct crlf_size *cs, uint64_t *size_r)
{
	if (cs->any && !cs->last_lf &&
	    __builtin_add_overflow(cs->size, 2, &cs->size))
		cs->overflow = true;
	if (cs->overflow)
		return -1;
	*size_r = cs->size;
	return 0;
}

size_t
crlf_copy_to_lf(const void *in, size_t len, void *out)
{
	const unsigned char *p = in, *lf;
	unsigned char *o = out;
	size_t i = 0, n;

#ifdef __SSE2__
	const __m128i lfv = _mm_set1_epi8('\n');

	for (; len - i >= 16; i += 16) {
		__m128i v = _mm_loadu_si128((const void *)(p + i));
		unsigned int m = (unsigned int)_mm_movemask_epi8(
		    _mm_cmpeq_epi8(v, lfv));

		/* All 16 go out; those from the LF on are overwritten later. */
		_mm_storeu_si128((void *)(o + i), v);
		if (m != 0)
			return i + (size_t)__builtin_ctz(m);
	}
#endif
	lf = memchr(p + i, '\n', len - i);
	n = lf != NULL ? (size_t)(lf - (p + i)) : len - i;
	memcpy(o + i, p + i, n);
	return i + n;
}
