#include "conn.h"

#include <errno.h>
#include <sys/socket.h>
#include <unistd.h>

static ssize_t
plain_read(struct conn *c, void *buf, size_t len)
{
	ssize_t n;

	do
		n = read(c->fd, buf, len);
	while (n < 0 && errno == EINTR);
	if (n < 0 && errno == EWOULDBLOCK)
		errno = EAGAIN;
	return n;
}

static ssize_t
plain_write(struct conn *c, const void *buf, size_t len)
{
	ssize_t n;

	do
		n = send(c->fd, buf, len, MSG_NOSIGNAL);
	while (n < 0 && errno == EINTR);
	if (n < 0 && errno == EWOULDBLOCK)
		errno = EAGAIN;
	if (n == 0 && len > 0) {
		/* A stream socket never sends nothing: treat it as broken. */
		errno = EPIPE;
		return -1;
	}
	return n;
}

static bool
plain_pending(struct conn *c)
{
	(void)c;
	return false;
}

static void
plain_shutdown(struct conn *c)
{
	(void)c;
}

static void
plain_free(struct conn *c)
{
	(void)c;
}

static const struct conn_ops plain_ops = {
	.read = plain_read,
	.write = plain_write,
	.pending = plain_pending,
	.shutdown = plain_shutdown,
	.free = plain_free,
};

/* tls.h's results as the errno convention of conn.h. */
static ssize_t
tls_result(struct conn *c, ssize_t n, bool reading)
{
	if (reading)
		c->want_write = n == TLS_IO_WANT_WRITE;
	else
		c->want_read = n == TLS_IO_WANT_READ;
	if (n > 0)
		return n;
	if (n == TLS_IO_WANT_READ || n == TLS_IO_WANT_WRITE) {
		errno = EAGAIN;
		return -1;
	}
	if (n == TLS_IO_EOF && reading)
		return 0;
	errno = n == TLS_IO_EOF ? EPIPE : EPROTO;
	return -1;
}

static ssize_t
tlsc_read(struct conn *c, void *buf, size_t len)
{
	return tls_result(c, tls_read(c->tls, buf, len), true);
}

static ssize_t
tlsc_write(struct conn *c, const void *buf, size_t len)
{
	return tls_result(c, tls_write(c->tls, buf, len), false);
}

static bool
tlsc_pending(struct conn *c)
{
	return tls_pending(c->tls);
}

static void
tlsc_shutdown(struct conn *c)
{
	tls_shutdown(c->tls);
}

static void
tlsc_free(struct conn *c)
{
	tls_conn_free(&c->tls);
	conn_init_plain(c, c->fd);
}

static const struct conn_ops tls_ops = {
	.read = tlsc_read,
	.write = tlsc_write,
	.pending = tlsc_pending,
	.shutdown = tlsc_shutdown,
	.free = tlsc_free,
};

void
conn_init_plain(struct conn *c, int fd)
{
	c->ops = &plain_ops;
	c->fd = fd;
	c->tls = NULL;
	c->want_write = false;
	c->want_read = false;
}

void
conn_init_tls(struct conn *c, int fd, struct tls_conn *tls)
{
	conn_init_plain(c, fd);
	c->ops = &tls_ops;
	c->tls = tls;
}

struct tls_conn *
conn_take_tls(struct conn *c)
{
	struct tls_conn *tls = c->tls;

	conn_init_plain(c, c->fd);
	return tls;
}
