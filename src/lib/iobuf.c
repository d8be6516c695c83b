#include "iobuf.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "conn.h"
#include "log.h"

void
iobuf_init(struct iobuf *b, void *fixed, size_t fixed_cap, size_t first,
    size_t max, uint32_t flags)
{
	if (fixed_cap > IOBUF_SIZE_MAX || first > IOBUF_SIZE_MAX ||
	    max > IOBUF_SIZE_MAX)
		fatalx("iobuf_init: sizes %zu %zu %zu", fixed_cap, first, max);
	memset(b, 0, sizeof(*b));
	b->fixed = fixed;
	b->fixed_cap = fixed != NULL ? (uint32_t)fixed_cap : 0;
	b->buf = b->fixed;
	b->cap = b->fixed_cap;
	b->first = (unsigned int)first;
	b->max = (uint32_t)max;
	b->wipe = (flags & IOBUF_WIPE) != 0;
}

static bool
iobuf_on_heap(const struct iobuf *b)
{
	return b->buf != NULL && b->buf != b->fixed;
}

static void
iobuf_release(struct iobuf *b)
{
	if (iobuf_on_heap(b)) {
		if (b->wipe)
			explicit_bzero(b->buf, b->cap);
		free(b->buf);
	}
	b->buf = b->fixed;
	b->cap = b->fixed_cap;
}

void
iobuf_free(struct iobuf *b)
{
	iobuf_release(b);
	b->start = b->end = 0;
}

void
iobuf_set_max(struct iobuf *b, size_t max)
{
	if (max > IOBUF_SIZE_MAX)
		fatalx("iobuf_set_max: %zu", max);
	b->max = (uint32_t)max;
}

void
iobuf_compact(struct iobuf *b)
{
	if (b->start == 0)
		return;
	memmove(b->buf, b->buf + b->start, iobuf_len(b));
	b->end -= b->start;
	b->start = 0;
}

/* The next heap block for need octets: from first, doubling, cut to max. */
static size_t
iobuf_next_cap(const struct iobuf *b, size_t need)
{
	size_t cap = b->first != 0 ? b->first : b->max;

	while (cap < need || cap <= b->cap) {
		if (cap >= b->max / 2) {
			cap = b->max;
			break;
		}
		cap *= 2;
	}
	return cap < need ? need : cap;
}

int
iobuf_reserve(struct iobuf *b, size_t n)
{
	size_t len = iobuf_len(b), cap;
	char *p;

	if (n > iobuf_room(b))
		return -1;
	if (b->buf != NULL && b->cap - b->end >= n)
		return 0;
	if (b->buf != NULL && b->cap - len >= n) {
		iobuf_compact(b);
		return 0;
	}
	cap = iobuf_next_cap(b, len + n);
	if ((p = malloc(cap)) == NULL)
		return -1;
	if (len > 0)
		memcpy(p, b->buf + b->start, len);
	iobuf_release(b);
	b->buf = p;
	b->cap = (uint32_t)cap;
	b->start = 0;
	b->end = (uint32_t)len;
	return 0;
}

char *
iobuf_tail(struct iobuf *b, size_t *room_r)
{
	*room_r = 0;
	if (iobuf_reserve(b, 0) < 0)
		return NULL;
	iobuf_compact(b);
	*room_r = b->cap - b->end;
	if (*room_r > iobuf_room(b))
		*room_r = iobuf_room(b);
	return b->buf + b->end;
}

void
iobuf_commit(struct iobuf *b, size_t n)
{
	if (n > b->cap - b->end)
		fatalx("iobuf_commit: %zu octets, room %zu", n,
		    (size_t)(b->cap - b->end));
	b->end += (uint32_t)n;
}

size_t
iobuf_add(struct iobuf *b, const void *data, size_t len)
{
	if (len > iobuf_room(b))
		len = iobuf_room(b);
	if (iobuf_reserve(b, len) < 0) {
		/* Out of memory: what the present storage takes. */
		if (b->buf == NULL)
			return 0;
		iobuf_compact(b);
		if (len > b->cap - b->end)
			len = b->cap - b->end;
	}
	if (len > 0)
		memcpy(b->buf + b->end, data, len);
	b->end += (uint32_t)len;
	return len;
}

void
iobuf_consume(struct iobuf *b, size_t n)
{
	if (n >= iobuf_len(b))
		b->start = b->end = 0;
	else
		b->start += (uint32_t)n;
}

void
iobuf_shrink(struct iobuf *b)
{
	size_t len = iobuf_len(b);

	if (!iobuf_on_heap(b) || (len > 0 && len > b->fixed_cap))
		return;
	if (len > 0)
		memcpy(b->fixed, b->buf + b->start, len);
	iobuf_release(b);
	b->start = 0;
	b->end = (uint32_t)len;
}

char *
iobuf_getline(struct iobuf *b, size_t *len_r, size_t *used_r)
{
	char *p = iobuf_data(b), *lf;
	size_t len;

	if (p == NULL || (lf = memchr(p, '\n', iobuf_len(b))) == NULL)
		return NULL;
	len = (size_t)(lf - p);
	*used_r = len + 1;
	*lf = '\0';
	if (len > 0 && p[len - 1] == '\r')
		p[--len] = '\0';
	*len_r = len;
	return p;
}

ssize_t
iobuf_read(struct iobuf *b, struct conn *c)
{
	ssize_t n;

	if (iobuf_reserve(b, 0) < 0)
		return -1;
	iobuf_compact(b);
	if (b->end == b->cap || iobuf_room(b) == 0) {
		errno = ENOBUFS;
		return -1;
	}
	n = conn_read(c, b->buf + b->end, b->cap - b->end < iobuf_room(b) ?
	    b->cap - b->end : iobuf_room(b));
	if (n > 0)
		b->end += (uint32_t)n;
	return n;
}

ssize_t
iobuf_write(struct iobuf *b, struct conn *c)
{
	ssize_t n;

	if (iobuf_len(b) == 0)
		return 0;
	n = conn_write(c, b->buf + b->start, iobuf_len(b));
	if (n > 0)
		iobuf_consume(b, (size_t)n);
	return n;
}
