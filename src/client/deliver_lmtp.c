#include "deliver_lmtp.h"
#include "deliver.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "../lib/ev.h"
#include "../lib/net.h"

#include "pop3c.h"

/* Octets of the message sent per write (after CRLF and dot-stuffing). */
#define LMTP_OUT_SIZE	65536

/* A session, kept from one message to the next (deliver_lmtp_send). */
struct deliver_lmtp {
	int		 fd;
	const char	*addr;
	char		*err;
	bool		 broken;	/* I/O or protocol failure, or 421 */
	bool		 data_sent;	/* the message went out */
	char		 quiet_err[ERR_LEN];	/* RSET's, QUIT's: unreported */
	size_t		 rpos, wpos;
	char		 in[DELIVER_LMTP_LINE_MAX * 2];
	char		 reply[DELIVER_LMTP_LINE_MAX];	/* the last line */
	size_t		 out_len;
	char		 out[LMTP_OUT_SIZE];
};

/* Split "HOST:PORT" / "[V6]:PORT"; -1 when malformed. */
static int
split_hostport(const char *addr, char *host, size_t hsize, const char **port)
{
	const char *colon = strrchr(addr, ':'), *h = addr;
	size_t hlen;

	if (colon == NULL || colon[1] == '\0')
		return -1;
	hlen = (size_t)(colon - addr);
	if (addr[0] == '[') {
		if (hlen < 3 || addr[hlen - 1] != ']')
			return -1;
		h = addr + 1;
		hlen -= 2;
	}
	if (hlen == 0 || hlen >= hsize)
		return -1;
	memcpy(host, h, hlen);
	host[hlen] = '\0';
	*port = colon + 1;
	return 0;
}

bool
deliver_lmtp_valid_addr(const char *addr, char *err)
{
	char host[DELIVER_LMTP_ADDR_MAX];
	const char *port;
	uint32_t n;

	if (strlen(addr) >= DELIVER_LMTP_ADDR_MAX) {
		str_copy(err, ERR_LEN, "lmtp: address too long");
		return false;
	}
	if (strncmp(addr, "unix:", 5) == 0) {
		if (addr[5] != '/' || strlen(addr + 5) >=
		    sizeof(((struct sockaddr_un *)0)->sun_path)) {
			(void)str_fmt(err, ERR_LEN, "lmtp: %s: unix: needs an "
			    "absolute path of at most 107 octets", addr);
			return false;
		}
		return true;
	}
	if (split_hostport(addr, host, sizeof(host), &port) < 0 ||
	    str_parse_u32(port, &n) < 0 || n == 0 || n > 65535) {
		(void)str_fmt(err, ERR_LEN, "lmtp: %s: use unix:/PATH or "
		    "HOST:PORT", addr);
		return false;
	}
	return true;
}

/* Connected and nonblocking, or -1 with err. */
static int
lmtp_connect(const char *addr, char *err)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	char host[DELIVER_LMTP_ADDR_MAX];
	const char *port;
	int fd;

	if (!deliver_lmtp_valid_addr(addr, err))
		return -1;
	if (strncmp(addr, "unix:", 5) != 0) {
		char why[ERR_LEN];

		(void)split_hostport(addr, host, sizeof(host), &port);
		fd = net_connect(host, port, AF_UNSPEC,
		    DELIVER_LMTP_CMD_MS, why);
		if (fd < 0)	/* not to be taken for the POP3 server's */
			(void)str_fmt(err, ERR_LEN, "lmtp: %s", why);
		return fd;
	}
	(void)str_copy(sun.sun_path, sizeof(sun.sun_path), addr + 5);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0 ||
	    fcntl(fd, F_SETFL, O_NONBLOCK) < 0) {
		(void)str_fmt(err, ERR_LEN, "lmtp: %s: %s", addr,
		    strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	return fd;
}

static int
conn_fail(struct deliver_lmtp *c, const char *what)
{
	c->broken = true;
	(void)str_fmt(c->err, ERR_LEN, "lmtp: %s: %s: %s", c->addr, what,
	    errno == ETIMEDOUT ? "timed out" : errno == 0 ?
	    "connection closed" : strerror(errno));
	return -1;
}

/* Write all of buf within timeout_ms of silence. 0, or -1 with c->err. */
static int
lmtp_write_all(struct deliver_lmtp *c, const char *buf, size_t len)
{
	while (len > 0) {
		ssize_t n = send(c->fd, buf, len, MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN) {
			if (net_wait_fd(c->fd, POLLOUT, ev_now_ms() +
			    DELIVER_LMTP_DATA_MS) < 0)
				return conn_fail(c, "write");
			continue;
		}
		if (n < 0)
			return conn_fail(c, "write");
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

static int
conn_flush(struct deliver_lmtp *c)
{
	int rc = lmtp_write_all(c, c->out, c->out_len);

	c->out_len = 0;
	return rc;
}

/* The next line (CRLF or LF cut off) into c->reply. 0, or -1 with err. */
static int
conn_line(struct deliver_lmtp *c, int timeout_ms)
{
	uint64_t deadline = ev_now_ms() + (uint64_t)timeout_ms;

	for (;;) {
		char *lf = memchr(c->in + c->rpos, '\n', c->wpos - c->rpos);
		ssize_t n;

		if (lf != NULL) {
			size_t len = (size_t)(lf - (c->in + c->rpos));

			if (len + 1 > DELIVER_LMTP_LINE_MAX)
				break;
			if (len > 0 && c->in[c->rpos + len - 1] == '\r')
				len--;
			memcpy(c->reply, c->in + c->rpos, len);
			c->reply[len] = '\0';
			c->rpos = (size_t)(lf + 1 - c->in);
			return 0;
		}
		if (c->wpos - c->rpos >= DELIVER_LMTP_LINE_MAX)
			break;
		memmove(c->in, c->in + c->rpos, c->wpos - c->rpos);
		c->wpos -= c->rpos;
		c->rpos = 0;
		n = recv(c->fd, c->in + c->wpos, sizeof(c->in) - c->wpos, 0);
		if (n > 0) {
			c->wpos += (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN && net_wait_fd(c->fd, POLLIN,
		    deadline) == 0)
			continue;
		if (n == 0)
			errno = 0;
		return conn_fail(c, "reading the reply");
	}
	c->broken = true;
	(void)str_fmt(c->err, ERR_LEN, "lmtp: %s: a reply line over %d "
	    "octets", c->addr, DELIVER_LMTP_LINE_MAX);
	return -1;
}

/*
 * A whole reply ("NNN-text" lines, then "NNN text"): its code, or -1
 * with err (also for a malformed reply). c->reply keeps its last line,
 * made printable for messages.
 */
static int
conn_reply(struct deliver_lmtp *c, int timeout_ms)
{
	int code = -1;

	for (int i = 0; i < DELIVER_LMTP_REPLY_LINES; i++) {
		const char *r = c->reply;
		int this;

		if (conn_line(c, timeout_ms) < 0)
			return -1;
		for (char *p = c->reply; *p != '\0'; p++)
			if ((unsigned char)*p < 0x20 || *p == 0x7f)
				*p = '?';
		if (r[0] < '2' || r[0] > '5' || r[1] < '0' || r[1] > '9' ||
		    r[2] < '0' || r[2] > '9' || (r[3] != '\0' && r[3] != ' ' &&
		    r[3] != '-'))
			break;
		this = (r[0] - '0') * 100 + (r[1] - '0') * 10 + (r[2] - '0');
		if (code >= 0 && this != code)
			break;
		code = this;
		if (r[3] != '-')
			return code;
		if (i + 1 == DELIVER_LMTP_REPLY_LINES) {
			c->broken = true;
			(void)str_fmt(c->err, ERR_LEN, "lmtp: %s: a reply of "
			    "over %d lines", c->addr, DELIVER_LMTP_REPLY_LINES);
			return -1;
		}
	}
	c->broken = true;
	(void)str_fmt(c->err, ERR_LEN, "lmtp: %s: a malformed reply: %.80s",
	    c->addr, c->reply);
	return -1;
}

/*
 * Send a command (CRLF added) and read its reply: 0 when it is want
 * (or want2); 1 for a 5xx; -1 for anything else. err names the step.
 */
static int
conn_cmd(struct deliver_lmtp *c, const char *cmd, const char *step, int want,
    int want2)
{
	char line[DELIVER_LMTP_LINE_MAX + 2];
	int code;

	if (cmd != NULL) {
		if (str_fmt(line, sizeof(line), "%s\r\n", cmd) < 0) {
			(void)str_fmt(c->err, ERR_LEN, "lmtp: %s too long",
			    step);
			return -1;
		}
		if (lmtp_write_all(c, line, strlen(line)) < 0)
			return -1;
	}
	code = conn_reply(c, want == 250 && cmd == NULL ?
	    DELIVER_LMTP_DATA_MS : DELIVER_LMTP_CMD_MS);
	if (code < 0)
		return -1;
	if (code == want || code == want2)
		return 0;
	/* 421: the server is closing the connection (RFC 5321 3.8). */
	c->broken = c->broken || code == 421;
	(void)str_fmt(c->err, ERR_LEN, "lmtp: %s: %s refused: %.200s",
	    c->addr, step, c->reply);
	return code >= 500 ? 1 : -1;
}

/* One octet out, through the buffer. */
static int
conn_put(struct deliver_lmtp *c, char ch)
{
	if (c->out_len == sizeof(c->out) && conn_flush(c) < 0)
		return -1;
	c->out[c->out_len++] = ch;
	return 0;
}

/* The spool as DATA: LF to CRLF, '.' doubled at a line's start, ".". */
static int
send_data(struct deliver_lmtp *c, int fd)
{
	char buf[LMTP_OUT_SIZE];
	bool bol = true;
	off_t off = 0;
	ssize_t n;

	while ((n = pread(fd, buf, sizeof(buf), off)) != 0) {
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			(void)str_fmt(c->err, ERR_LEN, "temporary file: %s",
			    strerror(errno));
			return -1;
		}
		for (ssize_t i = 0; i < n; i++) {
			if ((bol && buf[i] == '.' && conn_put(c, '.') < 0) ||
			    (buf[i] == '\n' && conn_put(c, '\r') < 0) ||
			    conn_put(c, buf[i]) < 0)
				return -1;
			bol = buf[i] == '\n';
		}
		off += n;
	}
	if (!bol && (conn_put(c, '\r') < 0 || conn_put(c, '\n') < 0))
		return -1;
	if (conn_put(c, '.') < 0 || conn_put(c, '\r') < 0 ||
	    conn_put(c, '\n') < 0)
		return -1;
	return conn_flush(c);
}

/* An address fit for MAIL FROM:<...> (or RCPT TO); else "". */
static const char *
envelope_sender(const char *sender)
{
	for (const char *p = sender; *p != '\0'; p++)
		if ((unsigned char)*p <= 0x20 || *p >= 0x7f || *p == '<' ||
		    *p == '>')
			return "";
	return sender;
}

/* Greeting and LHLO on a new connection. 0, or -1 with err. */
static int
lmtp_hello(struct deliver_lmtp *c)
{
	char cmd[DELIVER_LMTP_LINE_MAX], host[256];

	if (gethostname(host, sizeof(host)) < 0)
		(void)str_copy(host, sizeof(host), "localhost");
	host[sizeof(host) - 1] = '\0';
	/* A refusal here is the server's state, not the message's. */
	if (conn_cmd(c, NULL, "the greeting", 220, 220) != 0)
		return -1;
	(void)str_fmt(cmd, sizeof(cmd), "LHLO %s", host);
	return conn_cmd(c, cmd, "LHLO", 250, 250) != 0 ? -1 : 0;
}

/* One message: MAIL, RCPT, DATA, the reply. 0, 1 (5xx) or -1. */
static int
lmtp_transaction(struct deliver_lmtp *c, const char *sender,
    const char *rcpt, int fd)
{
	char cmd[DELIVER_LMTP_LINE_MAX];
	int rc;

	c->data_sent = false;
	if (str_fmt(cmd, sizeof(cmd), "MAIL FROM:<%s>",
	    envelope_sender(sender)) < 0)
		(void)str_copy(cmd, sizeof(cmd), "MAIL FROM:<>");
	if ((rc = conn_cmd(c, cmd, "MAIL FROM", 250, 250)) != 0)
		return rc;
	(void)str_fmt(cmd, sizeof(cmd), "RCPT TO:<%s>", rcpt);
	if ((rc = conn_cmd(c, cmd, "RCPT TO", 250, 251)) != 0)
		return rc;
	if ((rc = conn_cmd(c, "DATA", "DATA", 354, 354)) != 0)
		return rc;
	c->data_sent = true;
	if (send_data(c, fd) < 0)
		return -1;
	/* One recipient, one reply (RFC 2033 sec. 4.2). */
	return conn_cmd(c, NULL, "the message", 250, 250);
}

static void
lmtp_free(struct deliver_lmtp **s)
{
	if (*s == NULL)
		return;
	if ((*s)->fd >= 0)
		close((*s)->fd);
	free(*s);
	*s = NULL;
}

void
deliver_lmtp_close(struct deliver_lmtp **s)
{
	if (*s == NULL)
		return;
	/* Everything is delivered: QUIT is a courtesy, its failure no matter. */
	(*s)->err = (*s)->quiet_err;
	if (!(*s)->broken)
		(void)conn_cmd(*s, "QUIT", "QUIT", 221, 221);
	lmtp_free(s);
}

/* A new session in *s: connected, greeted. 0, or -1 with err. */
static int
lmtp_open(struct deliver_lmtp **s, const char *addr, char *err)
{
	if ((*s = calloc(1, sizeof(**s))) == NULL) {
		str_copy(err, ERR_LEN, "out of memory");
		return -1;
	}
	(*s)->addr = addr;
	(*s)->err = err;
	(*s)->fd = lmtp_connect(addr, err);
	if ((*s)->fd < 0 || lmtp_hello(*s) < 0) {
		lmtp_free(s);
		return -1;
	}
	return 0;
}

/*
 * A session that broke before the message went out (a server closing an
 * idle connection between messages) is replaced once: nothing of the
 * message can have been delivered on it. After a refusal the session is
 * RSET for the next message.
 */
int
deliver_lmtp_send(struct deliver_lmtp **s, const char *addr,
    const char *sender, const char *rcpt, int fd, char *err)
{
	int rc = -1;

	if (rcpt[0] == '\0' || strlen(rcpt) > DELIVER_LMTP_LINE_MAX - 16 ||
	    envelope_sender(rcpt)[0] == '\0') {
		str_copy(err, ERR_LEN, "lmtp: the recipient is empty, too "
		    "long, or has spaces, controls or angle brackets");
		return -1;
	}
	for (int attempt = 0; attempt < 2; attempt++) {
		bool reused = *s != NULL;

		if (*s == NULL && lmtp_open(s, addr, err) < 0)
			return -1;
		(*s)->err = err;
		rc = lmtp_transaction(*s, sender, rcpt, fd);
		if ((*s)->broken) {
			bool sent = (*s)->data_sent;

			lmtp_free(s);
			if (reused && !sent && attempt == 0)
				continue;
			return rc;
		}
		if (rc != 0) {
			(*s)->err = (*s)->quiet_err;
			if (conn_cmd(*s, "RSET", "RSET", 250, 250) != 0)
				lmtp_free(s);
		}
		return rc;
	}
	return rc;
}

/* The spool complete; nothing tells after a kill whether it landed. */
static int
lmtp_prepare(struct fetch_dest *d, char *token, size_t size, char *err)
{
	if (deliver_flush(d) < 0) {
		(void)str_fmt(err, ERR_LEN, "temporary file: %s",
		    strerror(errno));
		return -1;
	}
	return str_fmt(token, size, "lmtp");
}

static int
lmtp_check_addr(struct fetch_dest *d, char *err)
{
	return deliver_lmtp_valid_addr(d->where, err) ? 0 : -1;
}

/* A 5xx is a refusal for good: fetch_refused() says so. */
static int
lmtp_commit(struct fetch_dest *d, char *err)
{
	int rc = deliver_lmtp_send(&d->lmtp, d->where, d->sender,
	    d->recipient, d->fd, err);

	d->refused = rc > 0;
	return rc == 0 ? 0 : -1;
}

/* "lmtp": whether the server has it cannot be known: delivered again. */
static int
lmtp_recover(struct fetch_dest *d, const char *arg, char *err)
{
	(void)d;
	if (arg[0] == '\0')
		return 0;
	str_copy(err, ERR_LEN, "unknown pending delivery in the state file");
	return -1;
}

static void
lmtp_close(struct fetch_dest *d)
{
	deliver_lmtp_close(&d->lmtp);
}

const struct deliver_ops deliver_lmtp_ops = {
	.name = "lmtp",
	.open = lmtp_check_addr,
	.prepare = lmtp_prepare,
	.commit = lmtp_commit,
	.recover = lmtp_recover,
	.close = lmtp_close,
};
