/*
 * A growing byte buffer for the client's text work (mime.c, html.c):
 * always NUL-terminated, and out of memory sticks, so a caller checks
 * once, at buf_take(). And the one UTF-8 decoder they share.
 */
#ifndef POSTINO_BUF_H
#define POSTINO_BUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct buf {
	char	*p;
	size_t	 len, cap;
	bool	 oom;
};

/* Room for more octets and the NUL; false (and oom set) when none. */
bool buf_grow(struct buf *b, size_t more);
void buf_add(struct buf *b, const void *data, size_t len);
void buf_addc(struct buf *b, char c);
void buf_add_utf8(struct buf *b, uint32_t cp);
/* The buffer's string, never NULL unless out of memory; b is emptied. */
char *buf_take(struct buf *b, size_t *len_r);

/* What stands for what cannot be decoded. */
#define REPLACEMENT	0xfffd

/*
 * Decode one character of s (len > 0): octets used, the code point in
 * *cp_r. Overlong forms, surrogates, values over U+10FFFF and cut
 * sequences give U+FFFD for one octet.
 */
size_t utf8_next(const unsigned char *s, size_t len, uint32_t *cp_r);

#endif
