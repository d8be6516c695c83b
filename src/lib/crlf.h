/*
 * The one definition of a message's POP3 size: the octets RETR sends before
 * byte-stuffing. A LF not preceded by CR counts as CRLF; everything else
 * counts as itself; a message whose last byte is not LF gets a CRLF added.
 * Streaming, so a store can size a message block by block.
 */
#ifndef POSTINO_CRLF_H
#define POSTINO_CRLF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct crlf_size {
	uint64_t	size;
	bool		overflow;	/* size no longer fits: treat as corrupt */
	bool		last_cr;	/* previous byte was CR */
	bool		any;		/* at least one byte seen */
	bool		last_lf;	/* previous byte was LF */
};

void crlf_size_init(struct crlf_size *cs);
void crlf_size_feed(struct crlf_size *cs, const void *buf, size_t len);
/* The final size (adds the missing final CRLF); -1 on overflow. */
int crlf_size_finish(struct crlf_size *cs, uint64_t *size_r);

/*
 * Copy octets from in to out up to the first LF (not copied), at most len;
 * returns how many were copied. out must have room for len octets. The
 * RETR encoder's inner loop: one pass, no call per line.
 */
size_t crlf_copy_to_lf(const void *in, size_t len, void *out);

#endif
