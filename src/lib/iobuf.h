/*
 * A bounded byte buffer for one direction of a connection: input taken a
 * line at a time, output sent as the socket allows [OpenSMTPD iobuf.c].
 *
 * Memory follows the data: storage is the owner's small array (inside its
 * struct, no allocation) or a heap block taken when data arrives and
 * given back by iobuf_shrink() once it fits the small array again (or is
 * empty), so an idle connection holds no buffer memory beyond its struct.
 * Nothing grows past the limit the owner gives (limits.h says why each).
 */
#ifndef POSTINO_IOBUF_H
#define POSTINO_IOBUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct conn;

/*
 * Sizes are 32-bit (every limit is far below 4 GiB): a session holds two
 * of these, and 10,000 idle sessions a worker is the target (S4).
 */
struct iobuf {
	char		*buf;		/* fixed, a heap block, or NULL */
	char		*fixed;		/* the owner's array, or NULL */
	uint32_t	 start, end;	/* the data: buf[start..end) */
	uint32_t	 cap;		/* of buf */
	uint32_t	 max;		/* never more than this */
	uint32_t	 fixed_cap;
	unsigned int	 first : 31;	/* the first heap block's size */
	unsigned int	 wipe : 1;	/* IOBUF_WIPE */
};

/* Heap storage held secrets (passwords, tokens): wipe before free. */
#define IOBUF_WIPE		1u

/*
 * Empty, holding at most max octets. Storage: fixed (fixed_cap octets of
 * the owner's, may be NULL/0) until more is needed, then heap blocks from
 * first octets (0: max) doubling up to max. flags: IOBUF_WIPE or 0.
 * Sizes above IOBUF_SIZE_MAX are a bug (fatalx).
 */
#define IOBUF_SIZE_MAX		(1u << 30)
void iobuf_init(struct iobuf *b, void *fixed, size_t fixed_cap, size_t first,
    size_t max, uint32_t flags);
/* Release the heap block (the data goes); b stays usable, empty. */
void iobuf_free(struct iobuf *b);
/*
 * A new limit (a long line ahead, or over): max >= iobuf_len() and >=
 * the owner's array. Storage above it goes at the next iobuf_shrink().
 */
void iobuf_set_max(struct iobuf *b, size_t max);

static inline size_t
iobuf_len(const struct iobuf *b)
{
	return b->end - b->start;
}

/* The data (iobuf_len() octets); NULL when b has no storage yet. */
static inline char *
iobuf_data(const struct iobuf *b)
{
	return b->buf != NULL ? b->buf + b->start : NULL;
}

/* Octets that may still be added before the limit. */
static inline size_t
iobuf_room(const struct iobuf *b)
{
	return b->max - iobuf_len(b);
}

/* Octets the present storage takes without growing (after compacting). */
static inline size_t
iobuf_space(const struct iobuf *b)
{
	return (b->buf != NULL ? b->cap : b->fixed_cap) - iobuf_len(b);
}

/* Move the data to the front of the storage. */
void iobuf_compact(struct iobuf *b);
/*
 * Storage for n more octets in one piece after the data (growing up to
 * max, compacting; n = 0 only takes storage when b has none). 0, or -1
 * when n passes the limit or memory is short (b unchanged).
 */
int iobuf_reserve(struct iobuf *b, size_t n);
/*
 * The free tail after the data, *room_r octets (storage taken and the data
 * compacted first; at least the present storage's room, never growing
 * it); NULL when no storage can be had. iobuf_commit() adds the n <=
 * *room_r octets written there.
 */
char *iobuf_tail(struct iobuf *b, size_t *room_r);
void iobuf_commit(struct iobuf *b, size_t n);
/* Append len octets; how many fitted (the limit, or out of memory). */
size_t iobuf_add(struct iobuf *b, const void *data, size_t len);
/* Drop n octets from the front (n is cut to the data). */
void iobuf_consume(struct iobuf *b, size_t n);
/*
 * Back to the owner's small array (or no storage at all) once the data
 * fits there: a drained buffer costs nothing. Heap storage is wiped
 * first with IOBUF_WIPE.
 */
void iobuf_shrink(struct iobuf *b);

/*
 * The first complete line, in place: the LF, and one CR before it, become
 * NUL; *len_r is its length without them and *used_r counts the octets
 * to consume. NULL when b holds no LF.
 */
char *iobuf_getline(struct iobuf *b, size_t *len_r, size_t *used_r);

/*
 * One read from c into the present storage (taken if there is none; it
 * never grows here: a caller that wants more room reserves it). conn.h's
 * result: > 0 octets added, 0 at end of stream, -1 with errno (EAGAIN to
 * wait; ENOBUFS when the storage is full).
 */
ssize_t iobuf_read(struct iobuf *b, struct conn *c);
/* One write of the data to c; what was written is consumed. As conn_write. */
ssize_t iobuf_write(struct iobuf *b, struct conn *c);

#endif
