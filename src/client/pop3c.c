#include "pop3c_int.h"

#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../lib/conn.h"
#include "../lib/ev.h"
#include "../lib/net.h"
#include "../pop3/pop3.h"

/* ---- transport over a plain socket ---- */

static void
plain_close(void *arg)
{
	struct conn *conn = arg;

	conn_free(conn);
	if (conn->fd >= 0)
		close(conn->fd);
	free(conn);
}

int
pop3c_fd_transport(struct pop3c_transport *tr, int fd, int timeout_ms)
{
	struct conn *conn = malloc(sizeof(*conn));

	if (conn == NULL) {
		close(fd);
		return -1;
	}
	/* Nonblocking, so a spurious wake-up cannot block past the deadline. */
	(void)net_set_nonblock(fd);
	conn_init_plain(conn, fd);
	memset(tr, 0, sizeof(*tr));
	tr->conn = conn;
	tr->timeout_ms = timeout_ms;
	tr->close = plain_close;
	tr->ctx = conn;
	return 0;
}

/* ---- session ---- */

struct pop3c *
pop3c_new(const struct pop3c_transport *tr)
{
	struct pop3c *c = calloc(1, sizeof(*c));

	if (c == NULL) {
		tr->close(tr->ctx);
		return NULL;
	}
	c->tr = *tr;
	if (c->tr.timeout_ms <= 0)
		c->tr.timeout_ms = 1;
	c->tls = tr->tls;
	iobuf_init(&c->in, c->inbuf, sizeof(c->inbuf), 0, sizeof(c->inbuf),
	    0);
	iobuf_init(&c->out, c->outbuf, sizeof(c->outbuf), 0,
	    sizeof(c->outbuf), 0);
	return c;
}

void
pop3c_free(struct pop3c **c)
{
	if (*c == NULL)
		return;
	(*c)->tr.close((*c)->tr.ctx);
	explicit_bzero(*c, sizeof(**c));
	free(*c);
	*c = NULL;
}

void
pop3c_set_trace(struct pop3c *c, bool on)
{
	c->trace = on;
}

enum pop3c_error
pop3c_error(const struct pop3c *c)
{
	return c->err;
}

bool
pop3c_usable(const struct pop3c *c)
{
	return !c->dead;
}

const char *
pop3c_errmsg(const struct pop3c *c)
{
	return c->errmsg;
}

const char *
pop3c_errcode(const struct pop3c *c)
{
	return c->code;
}

const char *
pop3c_timestamp(const struct pop3c *c)
{
	return c->timestamp;
}

uint32_t
pop3c_login_delay(const struct pop3c *c)
{
	return c->login_delay;
}

unsigned int
pop3c_caps(const struct pop3c *c)
{
	return c->caps;
}

bool
pop3c_caps_known(const struct pop3c *c)
{
	return c->caps_known;
}

unsigned int
pop3c_mechs(const struct pop3c *c)
{
	return c->mechs;
}

bool
pop3c_tls(const struct pop3c *c)
{
	return c->tls;
}

const char *
pop3c_channel_binding(const struct pop3c *c)
{
	return c->cb_type;
}

int
pop3c_set_scram_nonce(struct pop3c *c, const char *nonce)
{
	return str_copy(c->scram_nonce, sizeof(c->scram_nonce), nonce);
}

int
pop3c_fail(struct pop3c *c, enum pop3c_error e, const char *fmt, ...)
{
	va_list ap;

	c->err = e;
	va_start(ap, fmt);
	(void)vsnprintf(c->errmsg, sizeof(c->errmsg), fmt, ap);
	va_end(ap);
	if (e == POP3C_ENET || e == POP3C_ETLS || e == POP3C_EPROTO)
		c->dead = true;
	return -1;
}

static void
trace_line(const char *dir, const char *line, size_t len)
{
	char clean[POP3C_LINE_MAX];

	str_sanitize(clean, sizeof(clean), line, len);
	fprintf(stderr, "%s: %s\n", dir, clean);
}

/*
 * After a read or write said EAGAIN: wait for the socket the way the
 * stream says (TLS may need input to go on writing, or to write to go on
 * reading) until deadline. 0, or -1 with errno (ETIMEDOUT).
 */
static int
stream_wait(struct pop3c *c, bool writing, uint64_t deadline)
{
	const struct conn *conn = c->tr.conn;
	bool input = writing ? conn->want_read : !conn->want_write;

	return net_wait_fd(conn->fd, input ? POLLIN : POLLOUT, deadline);
}

/*
 * After a failed read or write: whether TLS itself failed (an alert, a
 * renegotiation refused, a bad record), which says more than "protocol
 * error" and is a TLS failure, not a network one.
 */
static bool
stream_tls_failed(const struct pop3c *c)
{
	return errno == EPROTO && conn_tls(c->tr.conn) != NULL;
}

/* One write of buf, waiting up to timeout_ms; as conn_write. */
static ssize_t
stream_write(struct pop3c *c, const char *buf, size_t len)
{
	uint64_t deadline = ev_now_ms() + (uint64_t)c->tr.timeout_ms;

	for (;;) {
		ssize_t n = conn_write(c->tr.conn, buf, len);

		if (n >= 0 || errno != EAGAIN ||
		    stream_wait(c, true, deadline) < 0)
			return n;
	}
}

/*
 * Milliseconds clock k still grants the server: the timeout, and for a
 * body also what the octets it sent earn at POP3C_MIN_RATE, less what it
 * has used. A server that trickles a reply (one octet a little within
 * every timeout) so runs out instead of holding us for ever.
 */
static uint64_t
clock_left(const struct pop3c *c, const struct pop3c_clock *k, bool body)
{
	uint64_t grant = (uint64_t)c->tr.timeout_ms, earned;

	if (body && (__builtin_mul_overflow(k->octets, 1000, &earned) ||
	    __builtin_add_overflow(grant, earned / POP3C_MIN_RATE, &grant)))
		grant = UINT64_MAX;
	return grant > k->waited_ms ? grant - k->waited_ms : 0;
}

/*
 * How long the next read may wait: the timeout, or less when the line or
 * the body being read is running out; *by_r gets the clock that limits
 * it (NULL: the timeout itself).
 */
static uint64_t
wait_budget(const struct pop3c *c, const struct pop3c_clock **by_r)
{
	uint64_t left = (uint64_t)c->tr.timeout_ms, k;

	*by_r = NULL;
	if (c->line.on && (k = clock_left(c, &c->line, false)) <= left) {
		left = k;
		*by_r = &c->line;
	}
	if (c->body.on && (k = clock_left(c, &c->body, true)) < left) {
		left = k;
		*by_r = &c->body;
	}
	return left;
}

static void
clock_add(struct pop3c_clock *k, uint64_t ms, uint64_t octets)
{
	if (!k->on)
		return;
	k->waited_ms += ms;
	k->octets += octets;
}

/*
 * One read into c->in, waiting as wait_budget() allows; as conn_read.
 * When the wait ran out, c->late says which clock ended it.
 */
static ssize_t
stream_read(struct pop3c *c)
{
	const struct pop3c_clock *by;
	uint64_t start = ev_now_ms();
	uint64_t deadline = start + wait_budget(c, &by);
	ssize_t n;
	int e;

	c->late = NULL;
	for (;;) {
		n = iobuf_read(&c->in, c->tr.conn);
		if (n >= 0 || errno != EAGAIN)
			break;
		if (stream_wait(c, false, deadline) < 0) {
			if (errno == ETIMEDOUT)
				c->late = by;
			break;
		}
	}
	e = errno;
	clock_add(&c->line, ev_now_ms() - start, n > 0 ? (uint64_t)n : 0);
	clock_add(&c->body, ev_now_ms() - start, n > 0 ? (uint64_t)n : 0);
	errno = e;
	return n;
}

/* ms as seconds with a tenth: "2.5". */
static void
fmt_secs(char *dst, size_t size, uint64_t ms)
{
	(void)str_fmt(dst, size, "%llu.%llu", (unsigned long long)(ms / 1000),
	    (unsigned long long)(ms % 1000 / 100));
}

/* A read that timed out: silence, or a server too slow (c->late). -1. */
static int
read_timed_out(struct pop3c *c)
{
	const struct pop3c_clock *k = c->late;
	char took[32], limit[32];

	if (k == NULL || k->octets == 0)
		return pop3c_fail(c, POP3C_ENET,
		    "read: timed out waiting for the server");
	fmt_secs(took, sizeof(took), k->waited_ms);
	fmt_secs(limit, sizeof(limit), (uint64_t)c->tr.timeout_ms);
	if (k == &c->line)
		return pop3c_fail(c, POP3C_ENET, "read: server too slow: "
		    "%llu octets in %s s (a reply line must come within %s s)",
		    (unsigned long long)k->octets, took, limit);
	return pop3c_fail(c, POP3C_ENET, "read: server too slow: %llu octets "
	    "in %s s (a reply must come within %s s and 1 s per %d octets)",
	    (unsigned long long)k->octets, took, limit, POP3C_MIN_RATE);
}

int
pop3c_send_all(struct pop3c *c, const char *buf, size_t len)
{
	char why[128];

	if (c->dead)
		return pop3c_fail(c, POP3C_ENET, "connection already failed");
	while (len > 0) {
		ssize_t n = stream_write(c, buf, len);

		if (n < 0 && stream_tls_failed(c))
			return pop3c_fail(c, POP3C_ETLS, "TLS: %s",
			    tls_error(conn_tls(c->tr.conn)));
		if (n <= 0) {
			str_errno(why, sizeof(why), n < 0 ? errno : EPIPE);
			return pop3c_fail(c, POP3C_ENET, "write: %s", why);
		}
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

int
pop3c_flush_out(struct pop3c *c)
{
	int rc = pop3c_send_all(c, iobuf_data(&c->out), iobuf_len(&c->out));

	iobuf_consume(&c->out, iobuf_len(&c->out));
	return rc;
}

/*
 * Format one command line into line (POP3_LINE_MAX + 1 octets, CRLF
 * added), traced. A CR, LF or NUL in an argument would end the command
 * early and let, say, a user name inject commands: refused. The length
 * with CRLF, or -1 (POP3C_ELOCAL).
 */
int
pop3c_format_cmd(struct pop3c *c, char *line, size_t size, const char *fmt,
    va_list ap)
{
	int n = vsnprintf(line, size - 2, fmt, ap);

	if (n < 0 || (size_t)n >= size - 2) {
		c->err = POP3C_ELOCAL;
		str_copy(c->errmsg, sizeof(c->errmsg), "command too long");
		return -1;
	}
	if (strpbrk(line, "\r\n") != NULL) {
		c->err = POP3C_ELOCAL;
		str_copy(c->errmsg, sizeof(c->errmsg),
		    "line break in a command argument");
		return -1;
	}
	if (c->trace) {
		if (strncmp(line, "PASS ", 5) == 0)
			fprintf(stderr, "C: PASS ********\n");
		else if (strncmp(line, "APOP ", 5) == 0) {
			const char *sp = strrchr(line, ' ');

			fprintf(stderr, "C: %.*s ********\n",
			    (int)(sp - line), line);
		} else
			trace_line("C", line, (size_t)n);
	}
	line[n] = '\r';
	line[n + 1] = '\n';
	return n + 2;
}

/* Send one command line now (nothing may be outstanding). */
int
pop3c_send_cmd(struct pop3c *c, const char *fmt, ...)
{
	char line[POP3_LINE_MAX + 1];
	va_list ap;
	int n;

	if (c->qlen > 0) {
		c->err = POP3C_ELOCAL;
		str_copy(c->errmsg, sizeof(c->errmsg),
		    "pipelined replies not read yet");
		return -1;
	}
	va_start(ap, fmt);
	n = pop3c_format_cmd(c, line, sizeof(line), fmt, ap);
	va_end(ap);
	if (n >= 0)
		n = pop3c_send_all(c, line, (size_t)n);
	explicit_bzero(line, sizeof(line));
	return n < 0 ? -1 : 0;
}

/*
 * Next line, or a piece of one, in place in c->in. A line ends at LF (a
 * CR before it is dropped: bare LF is tolerated like popa3d and Dovecot).
 * With max < POP3C_BUF_SIZE a longer line is an error; with max ==
 * POP3C_BUF_SIZE - 1 a full buffer without LF is returned as a piece
 * (*eol_r false), holding back a final CR that may belong to a CRLF.
 * Complete lines are NUL-terminated. 1 line, 0 EOF, -1 error.
 * Each turn of the loop returns or reads at least one octet into a buffer
 * of bounded size, so it ends.
 */
int
pop3c_get_line(struct pop3c *c, size_t max, char **line_r, size_t *len_r,
    bool *eol_r)
{
	char why[128];

	if (c->dead)
		return pop3c_fail(c, POP3C_ENET, "connection already failed");
	/* Pipelined commands go out before we wait for their replies. */
	if (iobuf_len(&c->out) > 0 && pop3c_flush_out(c) < 0)
		return -1;
	/* A whole line is timed as one; a piece of data is the body's. */
	c->line = (struct pop3c_clock){ .on = max < POP3C_BUF_SIZE - 1 };
	for (;;) {
		char *start = iobuf_data(&c->in);
		size_t avail = iobuf_len(&c->in), len, used;
		char *line = iobuf_getline(&c->in, &len, &used);
		ssize_t n;

		if (line != NULL) {
			iobuf_consume(&c->in, used);
			if (len > max)
				return pop3c_fail(c, POP3C_EPROTO,
				    "server sent a line over %zu octets", max);
			*line_r = line;
			*len_r = len;
			*eol_r = true;
			return 1;
		}
		if (avail > max) {
			if (max < POP3C_BUF_SIZE - 1)
				return pop3c_fail(c, POP3C_EPROTO,
				    "server sent a line over %zu octets", max);
			len = avail;
			if (start[len - 1] == '\r')
				len--;
			iobuf_consume(&c->in, len);
			*line_r = start;
			*len_r = len;
			*eol_r = false;
			return 1;
		}
		n = stream_read(c);
		if (n < 0 && stream_tls_failed(c))
			return pop3c_fail(c, POP3C_ETLS, "TLS: %s",
			    tls_error(conn_tls(c->tr.conn)));
		if (n < 0 && errno == ETIMEDOUT)
			return read_timed_out(c);
		if (n < 0) {
			str_errno(why, sizeof(why), errno);
			return pop3c_fail(c, POP3C_ENET, "read: %s", why);
		}
		if (n == 0)
			return 0;
	}
}

/*
 * Parse a status line read for what: 0 "+OK" (*text_r after it), 1 "-ERR"
 * (c->err set to the error its response code means, message and code
 * saved), -1 anything else (POP3C_EPROTO).
 */
int
pop3c_parse_status(struct pop3c *c, const char *what, const char *line, size_t len,
    const char **text_r)
{
	char clean[200];
	const char *text;
	bool ok;

	c->code[0] = '\0';
	str_sanitize(clean, sizeof(clean), line, len);
	if (memchr(line, '\0', len) != NULL ||
	    pop3_parse_status(line, &ok, &text) < 0)
		return pop3c_fail(c, POP3C_EPROTO, "bad reply to %s: \"%s\"", what,
		    clean);
	if (text_r != NULL)
		*text_r = text;
	if (ok)
		return 0;
	(void)pop3_resp_code(text, c->code, sizeof(c->code));
	str_sanitize(clean, sizeof(clean), text, strlen(text));
	if (strcmp(c->code, "IN-USE") == 0 ||
	    strcmp(c->code, "LOGIN-DELAY") == 0)
		c->err = POP3C_EINUSE;
	else if (strcmp(c->code, "SYS/TEMP") == 0 ||
	    strcmp(c->code, "SYS/PERM") == 0)
		c->err = POP3C_ESYS;
	else if (strcmp(c->code, "AUTH") == 0)
		c->err = POP3C_EAUTH;
	else
		c->err = POP3C_ESERVER;
	(void)str_fmt(c->errmsg, sizeof(c->errmsg), "%s: -ERR %s", what,
	    clean);
	return 1;
}

/* One reply line, traced; 1 with the line, -1 failure (EOF included). */
int
pop3c_read_reply_line(struct pop3c *c, const char *what, char **line_r,
    size_t *len_r)
{
	bool eol;
	int rc;

	c->code[0] = '\0';
	/* A reply starts: what follows it is its body, timed afresh. */
	c->body.on = false;
	rc = pop3c_get_line(c, POP3C_LINE_MAX, line_r, len_r, &eol);
	c->body = (struct pop3c_clock){ .on = true };
	if (rc < 0)
		return -1;
	if (rc == 0)
		return pop3c_fail(c, POP3C_ENET,
		    "connection closed by the server (waiting for the reply "
		    "to %s)", what);
	if (c->trace)
		trace_line("S", *line_r, *len_r);
	return 1;
}

/* A status line: 0 "+OK", 1 "-ERR" (see pop3c_parse_status), -1 failure. */
int
pop3c_read_status(struct pop3c *c, const char *what, const char **text_r)
{
	char *line;
	size_t len;

	if (pop3c_read_reply_line(c, what, &line, &len) < 0)
		return -1;
	return pop3c_parse_status(c, what, line, len, text_r);
}

/* Send a command and read its status; 0 +OK, -1 otherwise (err set). */
int
pop3c_simple_cmd(struct pop3c *c, const char *what, const char **text_r)
{
	int rc = pop3c_read_status(c, what, text_r);

	return rc == 0 ? 0 : -1;
}

/*
 * One line of a multi-line reply, dot-unstuffed: 1 line, 0 the final ".",
 * -1 failure. EOF before the "." is a protocol error: the reply is cut.
 */
int
pop3c_get_multi_line(struct pop3c *c, const char *what, char **line_r,
    size_t *len_r)
{
	bool eol;
	int rc = pop3c_get_line(c, POP3C_LINE_MAX, line_r, len_r, &eol);

	if (rc < 0)
		return -1;
	if (rc == 0)
		return pop3c_fail(c, POP3C_ENET,
		    "%s reply cut short: connection closed before the "
		    "final \".\"", what);
	if (c->trace)
		trace_line("S", *line_r, *len_r);
	if (memchr(*line_r, '\0', *len_r) != NULL)
		return pop3c_fail(c, POP3C_EPROTO, "NUL octet in the %s reply", what);
	if (pop3_unstuff_line(*line_r, len_r))
		return 0;
	return 1;
}
