/*
 * A nonblocking byte stream over a socket, plaintext or TLS, behind one
 * table of functions, so that callers read and write without asking which
 * [Redis connection.h]. A conn lives inside its owner (no allocation: an
 * idle session stays small); tls.[ch] remains the OpenSSL wrapper.
 */
#ifndef POSTINO_CONN_H
#define POSTINO_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "tls.h"

struct conn;

struct conn_ops {
	ssize_t	(*read)(struct conn *c, void *buf, size_t len);
	ssize_t	(*write)(struct conn *c, const void *buf, size_t len);
	bool	(*pending)(struct conn *c);
	void	(*shutdown)(struct conn *c);
	void	(*free)(struct conn *c);
};

struct conn {
	const struct conn_ops	*ops;
	int			 fd;		/* not owned: the caller closes it */
	struct tls_conn		*tls;		/* NULL: plaintext */
	/*
	 * Which way a blocked call waits when it is not the obvious one: TLS
	 * may need to write to go on reading (want_write, set by a read) or
	 * to read to go on writing (want_read, set by a write: a handshake
	 * or renegotiation under the write).
	 */
	bool			 want_write;
	bool			 want_read;
};

/* A plaintext stream over fd. */
void conn_init_plain(struct conn *c, int fd);
/* A TLS stream over fd; tls is taken over (freed by conn_free). */
void conn_init_tls(struct conn *c, int fd, struct tls_conn *tls);

/*
 * Bytes moved (> 0); 0 at end of stream (read only); -1 with errno EAGAIN
 * to wait for the socket (want_write says which way for a read, want_read
 * for a write), or another errno when the stream is broken.
 */
static inline ssize_t
conn_read(struct conn *c, void *buf, size_t len)
{
	return c->ops->read(c, buf, len);
}

static inline ssize_t
conn_write(struct conn *c, const void *buf, size_t len)
{
	return c->ops->write(c, buf, len);
}

/* Input held inside the stream (TLS) that polling the socket cannot see. */
static inline bool
conn_pending(struct conn *c)
{
	return c->ops->pending(c);
}

/* Say goodbye (TLS close_notify), best effort. */
static inline void
conn_shutdown(struct conn *c)
{
	c->ops->shutdown(c);
}

/* Release the stream's state (not the fd); c becomes plaintext on fd. */
static inline void
conn_free(struct conn *c)
{
	c->ops->free(c);
}

/* The TLS object (for the handshake, channel binding, logs), or NULL. */
static inline struct tls_conn *
conn_tls(const struct conn *c)
{
	return c->tls;
}

/* Give the TLS object away (a hand-over); c becomes plaintext on fd. */
struct tls_conn *conn_take_tls(struct conn *c);

#endif
