#include "base64.h"

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

static const char alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

int
base64_encode(char *dst, size_t dstsize, const void *src, size_t len)
{
	const unsigned char *s = src;
	size_t i, o = 0;

	if (dstsize > 0)
		dst[0] = '\0';
	/* BASE64_ENCODED_LEN(len) + 1 must not wrap. */
	if (len > (SIZE_MAX - 5) / 4 * 3 ||
	    dstsize < BASE64_ENCODED_LEN(len) + 1)
		return -1;
	for (i = 0; i + 3 <= len; i += 3) {
		uint32_t v = (uint32_t)s[i] << 16 | (uint32_t)s[i + 1] << 8 |
		    s[i + 2];

		dst[o++] = alphabet[v >> 18];
		dst[o++] = alphabet[(v >> 12) & 63];
		dst[o++] = alphabet[(v >> 6) & 63];
		dst[o++] = alphabet[v & 63];
	}
	if (len - i == 1) {
		dst[o++] = alphabet[s[i] >> 2];
		dst[o++] = alphabet[(s[i] & 3) << 4];
		dst[o++] = '=';
		dst[o++] = '=';
	} else if (len - i == 2) {
		uint32_t v = (uint32_t)s[i] << 8 | s[i + 1];

		dst[o++] = alphabet[v >> 10];
		dst[o++] = alphabet[(v >> 4) & 63];
		dst[o++] = alphabet[(v & 15) << 2];
		dst[o++] = '=';
	}
	dst[o] = '\0';
	return 0;
}

/* The 6-bit value of c, or -1 outside the alphabet ('=' included). */
static int
value(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

int
base64_decode(void *dst, size_t dstsize, size_t *len_r, const char *src,
    size_t srclen)
{
	const unsigned char *s = (const unsigned char *)src;
	unsigned char *d = dst;
	size_t i, o = 0, pad = 0, need;

	*len_r = 0;
	if (srclen % 4 != 0)
		goto bad;
	if (srclen > 0 && s[srclen - 1] == '=')
		pad = s[srclen - 2] == '=' ? 2 : 1;
	need = BASE64_DECODED_MAX(srclen) - pad;
	if (need > dstsize)
		goto bad;
	for (i = 0; i < srclen; i += 4) {
		bool last = i + 4 == srclen;
		int v[4];
		uint32_t w;

		for (size_t k = 0; k < 4; k++) {
			v[k] = value(s[i + k]);
			/* Only the final group's padding may be '='. */
			if (v[k] < 0 && !(last && k >= 4 - pad))
				goto bad;
		}
		w = (uint32_t)v[0] << 18 | (uint32_t)v[1] << 12;
		if (last && pad == 2) {
			if ((v[1] & 15) != 0)
				goto bad;
			d[o++] = (unsigned char)(w >> 16);
			break;
		}
		w |= (uint32_t)v[2] << 6;
		if (last && pad == 1) {
			if ((v[2] & 3) != 0)
				goto bad;
			d[o++] = (unsigned char)(w >> 16);
			d[o++] = (unsigned char)(w >> 8);
			break;
		}
		w |= (uint32_t)v[3];
		d[o++] = (unsigned char)(w >> 16);
		d[o++] = (unsigned char)(w >> 8);
		d[o++] = (unsigned char)w;
	}
	*len_r = o;
	return 0;
bad:
	if (dstsize > 0)
		explicit_bzero(dst, dstsize);
	return -1;
}
