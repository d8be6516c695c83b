/*
 * Bounded strings and strict numbers: every input is hostile.
 */
#ifndef POSTINO_STR_H
#define POSTINO_STR_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Bytes an error message may take, including the NUL. */
#define ERR_LEN 256

/* Copy src into dst of dstsize bytes; -1 (dst still NUL-terminated) on truncation. */
int str_copy(char *dst, size_t dstsize, const char *src);

/* snprintf that returns 0, or -1 on truncation or encoding error. */
int str_fmt(char *dst, size_t dstsize, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/*
 * One protocol reply line in line[size] (size >= 3): the text, cut to
 * fit, then CRLF and a NUL. Its length with the CRLF; -1 (nothing to
 * send) on an encoding error.
 */
int str_vline(char *line, size_t size, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));

/*
 * Strict unsigned parse: one or more ASCII digits, nothing else (no sign,
 * space or trailing garbage), and a value that fits. 0 on success, -1 otherwise.
 */
int str_parse_u32(const char *s, uint32_t *r);
int str_parse_u64(const char *s, uint64_t *r);

/* Case-insensitive ASCII equality. */
bool str_ieq(const char *a, const char *b);

/*
 * Copy up to srclen bytes of untrusted text into dst for a log line: bytes
 * outside printable ASCII, the backslash and the double quote become "\xNN"
 * (so a value cannot end a quoted log field), the result is cut to fit.
 */
void str_sanitize(char *dst, size_t dstsize, const char *src, size_t srclen);

/* Lower-case hex of len bytes into dst (2*len+1 bytes). */
void str_hex(char *dst, const unsigned char *src, size_t len);
/* strerror(e) as one-line errors spell it: "connection refused". */
void str_errno(char *dst, size_t dstsize, int e);

#endif
