#include "str.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

int
str_copy(char *dst, size_t dstsize, const char *src)
{
	size_t len = strlen(src);

	if (dstsize == 0)
		return -1;
	if (len >= dstsize) {
		memcpy(dst, src, dstsize - 1);
		dst[dstsize - 1] = '\0';
		return -1;
	}
	memcpy(dst, src, len + 1);
	return 0;
}

int
str_fmt(char *dst, size_t dstsize, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(dst, dstsize, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= dstsize)
		return -1;
	return 0;
}

int
str_vline(char *line, size_t size, const char *fmt, va_list ap)
{
	int n = vsnprintf(line, size - 2, fmt, ap);

	if (n < 0)
		return -1;
	if ((size_t)n > size - 3)
		n = (int)size - 3;
	line[n++] = '\r';
	line[n++] = '\n';
	line[n] = '\0';
	return n;
}

int
str_parse_u64(const char *s, uint64_t *r)
{
	uint64_t v = 0;

	if (*s == '\0')
		return -1;
	for (; *s != '\0'; s++) {
		if (*s < '0' || *s > '9')
			return -1;
		if (__builtin_mul_overflow(v, 10, &v) ||
		    __builtin_add_overflow(v, (uint64_t)(*s - '0'), &v))
			return -1;
	}
	*r = v;
	return 0;
}

int
str_parse_u32(const char *s, uint32_t *r)
{
	uint64_t v;

	if (str_parse_u64(s, &v) < 0 || v > UINT32_MAX)
		return -1;
	*r = (uint32_t)v;
	return 0;
}

bool
str_ieq(const char *a, const char *b)
{
	for (;; a++, b++) {
		unsigned char ca = (unsigned char)*a, cb = (unsigned char)*b;

		if (ca >= 'A' && ca <= 'Z')
			ca += 'a' - 'A';
		if (cb >= 'A' && cb <= 'Z')
			cb += 'a' - 'A';
		if (ca != cb)
			return false;
		if (ca == '\0')
			return true;
	}
}

void
str_sanitize(char *dst, size_t dstsize, const char *src, size_t srclen)
{
	static const char hex[] = "0123456789abcdef";
	size_t o = 0;

	if (dstsize == 0)
		return;
	for (size_t i = 0; i < srclen; i++) {
		unsigned char c = (unsigned char)src[i];

		if (c >= 0x20 && c < 0x7f && c != '\\' && c != '"') {
			if (o + 1 >= dstsize)
				break;
			dst[o++] = (char)c;
		} else {
			if (o + 4 >= dstsize)
				break;
			dst[o++] = '\\';
			dst[o++] = 'x';
			dst[o++] = hex[c >> 4];
			dst[o++] = hex[c & 15];
		}
	}
	dst[o] = '\0';
}

void
str_hex(char *dst, const unsigned char *src, size_t len)
{
	static const char hex[] = "0123456789abcdef";

	for (size_t i = 0; i < len; i++) {
		dst[2 * i] = hex[src[i] >> 4];
		dst[2 * i + 1] = hex[src[i] & 15];
	}
	dst[2 * len] = '\0';
}

void
str_errno(char *dst, size_t dstsize, int e)
{
	str_copy(dst, dstsize, strerror(e));
	if (dst[0] >= 'A' && dst[0] <= 'Z' && !(dst[1] >= 'A' && dst[1] <= 'Z'))
		dst[0] = (char)(dst[0] - 'A' + 'a');
}
