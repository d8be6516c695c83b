#include "crlf.h"

#include <string.h>

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

	if (len == 0)
		return;
	/* LF by LF with memchr: this runs over every octet of every RETR. */
	for (; (lf = memchr(p, '\n', (size_t)(end - p))) != NULL; p = lf + 1) {
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
