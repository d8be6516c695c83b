#include "pop3c.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "../lib/conn.h"
#include "../lib/ev.h"
#include "../lib/net.h"

#include "../auth/crypto.h"
#include "../lib/base64.h"
#include "../pop3/pop3.h"
#include "sasl_client.h"

struct pop3c {
	struct pop3c_transport	 tr;
	enum pop3c_error	 err;
	unsigned int		 caps;
	unsigned int		 mechs;		/* enum pop3c_mech */
	bool			 caps_known;
	bool			 trace;
	bool			 dead;		/* transport failed: no I/O */
	bool			 tls;
	bool			 capa_probe;	/* CAPA sent before the greeting */
	uint32_t		 login_delay;	/* CAPA LOGIN-DELAY, seconds */
	const char		*cb_type;	/* of the last -PLUS login */
	char			 scram_nonce[SASL_CLIENT_NONCE_MAX + 1];
	/* OAUTHBEARER's host and port (RFC 7628 sec. 3.1); "" unset. */
	char			 peer_host[256];
	char			 peer_port[6];
	char			 errmsg[ERR_LEN];
	char			 code[POP3C_CODE_MAX];
	char			 timestamp[POP3C_TIMESTAMP_MAX];
	size_t			 rpos, wpos;
	char			 buf[POP3C_BUF_SIZE + 1];
	/* Commands written or queued whose replies are not read yet. */
	struct {
		bool		 data;		/* RETR/TOP: a multi-line reply */
		char		 what[48];
	}			 q[POP3C_PIPELINE_MAX];
	unsigned int		 qhead, qlen;
	size_t			 outlen;	/* queued, not yet written */
	char			 out[POP3C_PIPELINE_MAX * 48];
};

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

static int
fail(struct pop3c *c, enum pop3c_error e, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int
fail(struct pop3c *c, enum pop3c_error e, const char *fmt, ...)
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
 * One read (writing false) or write on the stream, waiting for the socket
 * the way the stream says (TLS may need input to go on writing, or to
 * write to go on reading) until timeout_ms of silence: bytes moved, 0 at
 * end of stream, or -1 with errno (ETIMEDOUT).
 */
static ssize_t
stream_io(struct pop3c *c, bool writing, void *buf, size_t len)
{
	struct conn *conn = c->tr.conn;
	uint64_t deadline = ev_now_ms() + (uint64_t)c->tr.timeout_ms;

	for (;;) {
		ssize_t n = writing ? conn_write(conn, buf, len) :
		    conn_read(conn, buf, len);
		bool input = writing ? conn->want_read : !conn->want_write;

		if (n >= 0 || errno != EAGAIN)
			return n;
		if (net_wait_fd(conn->fd, input ? POLLIN : POLLOUT,
		    deadline) < 0)
			return -1;
	}
}

static int
send_all(struct pop3c *c, const char *buf, size_t len)
{
	char why[128];

	if (c->dead)
		return fail(c, POP3C_ENET, "connection already failed");
	while (len > 0) {
		ssize_t n = stream_io(c, true, (char *)buf, len);

		if (n <= 0) {
			str_errno(why, sizeof(why), n < 0 ? errno : EPIPE);
			return fail(c, POP3C_ENET, "write: %s", why);
		}
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

static int
flush_out(struct pop3c *c)
{
	size_t n = c->outlen;

	c->outlen = 0;
	return send_all(c, c->out, n);
}

/*
 * Format one command line into line (POP3_LINE_MAX + 1 octets, CRLF
 * added), traced. A CR, LF or NUL in an argument would end the command
 * early and let, say, a user name inject commands: refused. The length
 * with CRLF, or -1 (POP3C_ELOCAL).
 */
static int
format_cmd(struct pop3c *c, char *line, size_t size, const char *fmt,
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
static int
send_cmd(struct pop3c *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static int
send_cmd(struct pop3c *c, const char *fmt, ...)
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
	n = format_cmd(c, line, sizeof(line), fmt, ap);
	va_end(ap);
	if (n >= 0)
		n = send_all(c, line, (size_t)n);
	explicit_bzero(line, sizeof(line));
	return n < 0 ? -1 : 0;
}

/*
 * Next line, or a piece of one, in place in c->buf. A line ends at LF (a
 * CR before it is dropped: bare LF is tolerated like popa3d and Dovecot).
 * With max < POP3C_BUF_SIZE a longer line is an error; with max ==
 * POP3C_BUF_SIZE - 1 a full buffer without LF is returned as a piece
 * (*eol_r false), holding back a final CR that may belong to a CRLF.
 * Complete lines are NUL-terminated. 1 line, 0 EOF, -1 error.
 * Each turn of the loop returns or reads at least one octet into a buffer
 * of bounded size, so it ends.
 */
static int
get_line(struct pop3c *c, size_t max, char **line_r, size_t *len_r,
    bool *eol_r)
{
	char why[128];

	if (c->dead)
		return fail(c, POP3C_ENET, "connection already failed");
	/* Pipelined commands go out before we wait for their replies. */
	if (c->outlen > 0 && flush_out(c) < 0)
		return -1;
	for (;;) {
		char *start = c->buf + c->rpos;
		size_t avail = c->wpos - c->rpos, len;
		char *lf = memchr(start, '\n', avail);
		ssize_t n;

		if (lf != NULL) {
			len = (size_t)(lf - start);
			c->rpos += len + 1;
			if (len > 0 && start[len - 1] == '\r')
				len--;
			if (len > max)
				return fail(c, POP3C_EPROTO,
				    "server sent a line over %zu octets", max);
			start[len] = '\0';
			*line_r = start;
			*len_r = len;
			*eol_r = true;
			return 1;
		}
		if (avail > max) {
			if (max < POP3C_BUF_SIZE - 1)
				return fail(c, POP3C_EPROTO,
				    "server sent a line over %zu octets", max);
			len = avail;
			if (start[len - 1] == '\r')
				len--;
			c->rpos += len;
			*line_r = start;
			*len_r = len;
			*eol_r = false;
			return 1;
		}
		if (c->rpos > 0) {
			memmove(c->buf, start, avail);
			c->rpos = 0;
			c->wpos = avail;
		}
		n = stream_io(c, false, c->buf + c->wpos,
		    POP3C_BUF_SIZE - c->wpos);
		if (n < 0) {
			str_errno(why, sizeof(why), errno);
			if (errno == ETIMEDOUT)
				str_copy(why, sizeof(why),
				    "timed out waiting for the server");
			return fail(c, POP3C_ENET, "read: %s", why);
		}
		if (n == 0)
			return 0;
		c->wpos += (size_t)n;
	}
}

/*
 * Parse a status line read for what: 0 "+OK" (*text_r after it), 1 "-ERR"
 * (c->err set to the error its response code means, message and code
 * saved), -1 anything else (POP3C_EPROTO).
 */
static int
parse_status(struct pop3c *c, const char *what, const char *line, size_t len,
    const char **text_r)
{
	char clean[200];
	const char *text;
	bool ok;

	c->code[0] = '\0';
	str_sanitize(clean, sizeof(clean), line, len);
	if (memchr(line, '\0', len) != NULL ||
	    pop3_parse_status(line, &ok, &text) < 0)
		return fail(c, POP3C_EPROTO, "bad reply to %s: \"%s\"", what,
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
static int
read_reply_line(struct pop3c *c, const char *what, char **line_r,
    size_t *len_r)
{
	bool eol;
	int rc;

	c->code[0] = '\0';
	rc = get_line(c, POP3C_LINE_MAX, line_r, len_r, &eol);
	if (rc < 0)
		return -1;
	if (rc == 0)
		return fail(c, POP3C_ENET,
		    "connection closed by the server (waiting for the reply "
		    "to %s)", what);
	if (c->trace)
		trace_line("S", *line_r, *len_r);
	return 1;
}

/* A status line: 0 "+OK", 1 "-ERR" (see parse_status), -1 failure. */
static int
read_status(struct pop3c *c, const char *what, const char **text_r)
{
	char *line;
	size_t len;

	if (read_reply_line(c, what, &line, &len) < 0)
		return -1;
	return parse_status(c, what, line, len, text_r);
}

/* Send a command and read its status; 0 +OK, -1 otherwise (err set). */
static int
simple_cmd(struct pop3c *c, const char *what, const char **text_r)
{
	int rc = read_status(c, what, text_r);

	return rc == 0 ? 0 : -1;
}

/*
 * One line of a multi-line reply, dot-unstuffed: 1 line, 0 the final ".",
 * -1 failure. EOF before the "." is a protocol error: the reply is cut.
 */
static int
get_multi_line(struct pop3c *c, const char *what, char **line_r,
    size_t *len_r)
{
	bool eol;
	int rc = get_line(c, POP3C_LINE_MAX, line_r, len_r, &eol);

	if (rc < 0)
		return -1;
	if (rc == 0)
		return fail(c, POP3C_ENET,
		    "%s reply cut short: connection closed before the "
		    "final \".\"", what);
	if (c->trace)
		trace_line("S", *line_r, *len_r);
	if (memchr(*line_r, '\0', *len_r) != NULL)
		return fail(c, POP3C_EPROTO, "NUL octet in the %s reply", what);
	if (pop3_unstuff_line(*line_r, len_r))
		return 0;
	return 1;
}

int
pop3c_probe_capa(struct pop3c *c)
{
	if (send_cmd(c, "CAPA") < 0)
		return -1;
	c->capa_probe = true;
	return 0;
}

int
pop3c_greeting(struct pop3c *c)
{
	const char *text, *lt, *gt;
	int rc = read_status(c, "greeting", &text);

	if (rc != 0) {
		/* TLS record types 21 (alert) and 22 (handshake). */
		bool tls = c->wpos > c->rpos && (c->buf[c->rpos] == 0x15 ||
		    c->buf[c->rpos] == 0x16);

		if (rc > 0 && c->err == POP3C_ESERVER)
			c->err = POP3C_EPROTO;
		if (c->capa_probe && (tls || c->err == POP3C_ENET))
			(void)fail(c, tls ? POP3C_ETLS : POP3C_ENET, "%s "
			    "instead of a greeting: does this port expect "
			    "TLS at once? then use pop3s:// or --tls=implicit",
			    tls ? "the server answered in TLS" :
			    "the server closed the connection");
		return -1;
	}
	/* RFC 1939 sec. 7: the timestamp is a msg-id, "<" ... ">". */
	c->timestamp[0] = '\0';
	lt = strchr(text, '<');
	gt = lt != NULL ? strchr(lt, '>') : NULL;
	if (gt != NULL && (size_t)(gt - lt) + 1 < sizeof(c->timestamp)) {
		bool good = gt - lt > 1;

		for (const char *p = lt + 1; p < gt; p++)
			if (*p <= 0x20 || *p >= 0x7f || *p == '<')
				good = false;
		if (good) {
			memcpy(c->timestamp, lt, (size_t)(gt - lt) + 1);
			c->timestamp[gt - lt + 1] = '\0';
		}
	}
	return 0;
}

static const struct {
	const char	*name;
	unsigned int	 cap;
} cap_names[] = {
	{ "TOP", POP3C_CAP_TOP },
	{ "UIDL", POP3C_CAP_UIDL },
	{ "USER", POP3C_CAP_USER },
	{ "RESP-CODES", POP3C_CAP_RESP_CODES },
	{ "PIPELINING", POP3C_CAP_PIPELINING },
	{ "STLS", POP3C_CAP_STLS },
	{ "SASL", POP3C_CAP_SASL },
};

/* The SASL mechanisms we know; their names come from sasl_mechs.c. */
static const struct {
	unsigned int		 mech;		/* enum pop3c_mech */
	enum pop3c_auth		 auth;
	enum sasl_client_mech	 sasl;
} sasl_table[] = {
	{ POP3C_MECH_SCRAM_PLUS, POP3C_AUTH_SCRAM_PLUS, SASL_CLIENT_SCRAM_PLUS },
	{ POP3C_MECH_SCRAM, POP3C_AUTH_SCRAM, SASL_CLIENT_SCRAM },
	{ POP3C_MECH_CRAM_MD5, POP3C_AUTH_CRAM_MD5, SASL_CLIENT_CRAM_MD5 },
	{ POP3C_MECH_PLAIN, POP3C_AUTH_PLAIN, SASL_CLIENT_PLAIN },
	{ POP3C_MECH_LOGIN, POP3C_AUTH_LOGIN, SASL_CLIENT_LOGIN },
	{ POP3C_MECH_OAUTHBEARER, POP3C_AUTH_OAUTHBEARER,
	    SASL_CLIENT_OAUTHBEARER },
	{ POP3C_MECH_XOAUTH2, POP3C_AUTH_XOAUTH2, SASL_CLIENT_XOAUTH2 },
};

#define N_SASL	(sizeof(sasl_table) / sizeof(sasl_table[0]))

/* "PLAIN SCRAM-SHA-256 X-FOO": the mechanisms we know, as a mask. */
static unsigned int
sasl_mechs(const char *list)
{
	unsigned int m = 0;

	while (*list != '\0') {
		size_t n = strcspn(list, " ");
		int id = sasl_mechs_lookup(list, n);

		for (size_t k = 0; k < N_SASL; k++)
			if (id >= 0 && (int)sasl_table[k].sasl == id)
				m |= sasl_table[k].mech;
		list += n;
		list += strspn(list, " ");
	}
	return m;
}

int
pop3c_capa(struct pop3c *c)
{
	char *line;
	size_t len;
	int rc;

	if (!c->capa_probe && send_cmd(c, "CAPA") < 0)
		return -1;
	c->capa_probe = false;
	rc = read_status(c, "CAPA", NULL);
	if (rc < 0)
		return -1;
	if (rc > 0) {
		c->err = POP3C_OK;
		return 1;
	}
	c->caps = 0;
	c->mechs = 0;
	c->login_delay = 0;
	/* A real CAPA has a dozen lines; a thousand is a hostile server. */
	for (size_t i = 0; i < 1000; i++) {
		rc = get_multi_line(c, "CAPA", &line, &len);
		if (rc <= 0) {
			if (rc == 0)
				c->caps_known = true;
			return rc;
		}
		for (size_t k = 0; k < sizeof(cap_names) / sizeof(cap_names[0]);
		    k++) {
			size_t nl = strlen(cap_names[k].name);

			if (strncasecmp(line, cap_names[k].name, nl) == 0 &&
			    (line[nl] == '\0' || line[nl] == ' '))
				c->caps |= cap_names[k].cap;
		}
		if (strncasecmp(line, "SASL ", 5) == 0)
			c->mechs |= sasl_mechs(line + 5);
		/* RFC 2449 sec. 6.5: "LOGIN-DELAY n" (maybe "USER" after). */
		if (strncasecmp(line, "LOGIN-DELAY ", 12) == 0) {
			char num[16];
			uint32_t d;

			(void)str_fmt(num, sizeof(num), "%.*s",
			    (int)strcspn(line + 12, " "), line + 12);
			if (str_parse_u32(num, &d) == 0)
				c->login_delay = d;
		}
	}
	return fail(c, POP3C_EPROTO, "CAPA reply too long");
}

int
pop3c_stls(struct pop3c *c)
{
	char err[ERR_LEN];
	int rc;

	if (c->tls)
		return fail(c, POP3C_ETLS, "STLS: TLS is already up");
	if (c->tr.starttls == NULL)
		return fail(c, POP3C_ETLS, "STLS: the transport has no TLS");
	if (send_cmd(c, "STLS") < 0)
		return -1;
	rc = read_status(c, "STLS", NULL);
	if (rc < 0)
		return -1;
	if (rc > 0) {
		/* Never on without TLS: RFC 2595 sec. 2.2 lets clients stop. */
		(void)str_copy(err, sizeof(err), c->errmsg);
		return fail(c, POP3C_ETLS, "TLS: the server refused it (%s)",
		    err);
	}
	/*
	 * Anything after +OK came before the handshake, so from anyone on
	 * the path; read later as if it came over TLS, it would be an
	 * injection (CVE-2011-0411, client side).
	 */
	if (c->rpos != c->wpos)
		return fail(c, POP3C_EPROTO, "the server sent data after "
		    "STLS's +OK, before the TLS handshake");
	if (c->tr.starttls(c->tr.ctx, err) < 0)
		return fail(c, POP3C_ETLS, "%s", err);
	c->tls = true;
	/* RFC 2595 sec. 4: forget what the plaintext CAPA said. */
	c->caps = 0;
	c->mechs = 0;
	c->login_delay = 0;
	c->caps_known = false;
	return 0;
}

/* The methods that are no SASL mechanism; the others are named by sasl_mechs. */
static const char *const auth_names[] = {
	[POP3C_AUTH_AUTO] = "AUTO",
	[POP3C_AUTH_APOP] = "APOP",
	[POP3C_AUTH_USER] = "USER",
	[POP3C_AUTH_NONE] = "none",
};

const char *
pop3c_auth_name(enum pop3c_auth m)
{
	for (size_t k = 0; k < N_SASL; k++)
		if (sasl_table[k].auth == m)
			return sasl_client_mech_name(sasl_table[k].sasl);
	return (size_t)m < sizeof(auth_names) / sizeof(auth_names[0]) &&
	    auth_names[m] != NULL ? auth_names[m] : "?";
}

int
pop3c_auth_parse(const char *name, enum pop3c_auth *m_r)
{
	for (size_t i = POP3C_AUTH_SCRAM_PLUS; i < POP3C_AUTH_NONE; i++) {
		if (strcasecmp(name, pop3c_auth_name((enum pop3c_auth)i)) ==
		    0) {
			*m_r = (enum pop3c_auth)i;
			return 0;
		}
	}
	return -1;
}

static bool
sends_password(enum pop3c_auth m)
{
	return m == POP3C_AUTH_PLAIN || m == POP3C_AUTH_LOGIN ||
	    m == POP3C_AUTH_USER || m == POP3C_AUTH_OAUTHBEARER ||
	    m == POP3C_AUTH_XOAUTH2;
}

enum pop3c_auth
pop3c_auth_choose(unsigned int caps, bool caps_known, unsigned int mechs,
    bool apop, bool tls, bool cb, bool cleartext_ok)
{
	if (tls && cb && (mechs & POP3C_MECH_SCRAM_PLUS))
		return POP3C_AUTH_SCRAM_PLUS;
	if (mechs & POP3C_MECH_SCRAM)
		return POP3C_AUTH_SCRAM;
	if (apop)
		return POP3C_AUTH_APOP;
	if (mechs & POP3C_MECH_CRAM_MD5)
		return POP3C_AUTH_CRAM_MD5;
	if (!tls && !cleartext_ok)
		return POP3C_AUTH_NONE;
	if (mechs & POP3C_MECH_PLAIN)
		return POP3C_AUTH_PLAIN;
	if (mechs & POP3C_MECH_LOGIN)
		return POP3C_AUTH_LOGIN;
	if (!caps_known || (caps & POP3C_CAP_USER))
		return POP3C_AUTH_USER;
	return POP3C_AUTH_NONE;
}

/* A refused login with no code is an authentication failure. */
static int
login_failed(struct pop3c *c)
{
	if (c->err == POP3C_ESERVER)
		c->err = POP3C_EAUTH;
	return -1;
}

static int
login_apop(struct pop3c *c, const char *user, const char *pass)
{
	char hex[CRYPTO_MD5_HEX_LEN + 1];
	int rc;

	if (c->timestamp[0] == '\0')
		return fail(c, POP3C_EAUTH, "APOP: the greeting has no "
		    "timestamp");
	if (!crypto_apop_digest(c->timestamp, pass, hex))
		return fail(c, POP3C_ELOCAL, "APOP: MD5 failed");
	rc = send_cmd(c, "APOP %s %s", user, hex);
	explicit_bzero(hex, sizeof(hex));
	if (rc < 0)
		return -1;
	rc = read_status(c, "APOP", NULL);
	return rc == 0 ? 0 : rc < 0 ? -1 : login_failed(c);
}

static int
login_user(struct pop3c *c, const char *user, const char *pass)
{
	int rc;

	if (send_cmd(c, "USER %s", user) < 0)
		return -1;
	rc = read_status(c, "USER", NULL);
	if (rc != 0)
		return rc < 0 ? -1 : login_failed(c);
	if (send_cmd(c, "PASS %s", pass) < 0)
		return -1;
	rc = read_status(c, "PASS", NULL);
	if (rc != 0)
		return rc < 0 ? -1 : login_failed(c);
	return 0;
}

/*
 * A SASL line: "AUTH MECH [base64]" or a base64 response. The trace shows
 * only shown: the payload is a password or a proof.
 */
static int
send_sasl_line(struct pop3c *c, const char *shown, const char *prefix,
    const char *b64)
{
	char line[32 + BASE64_ENCODED_LEN(SASL_CLIENT_OUT_MAX) + 3];
	int n, rc;

	n = snprintf(line, sizeof(line), "%s%s\r\n", prefix, b64);
	if (n < 0 || (size_t)n >= sizeof(line)) {
		explicit_bzero(line, sizeof(line));
		return fail(c, POP3C_ELOCAL, "AUTH: response too long");
	}
	if (c->trace)
		fprintf(stderr, "C: %s\n", shown);
	rc = send_all(c, line, (size_t)n);
	explicit_bzero(line, sizeof(line));
	return rc;
}

/* Longest "AUTH MECH IR" line with CRLF: RFC 5034 sec. 4 (RFC 2449). */
#define AUTH_IR_LINE_MAX	255

/* Most challenges of one exchange: SCRAM has two, LOGIN two. */
#define AUTH_ROUNDS_MAX		4

/* One AUTH exchange in progress. */
struct sasl_exchange {
	struct sasl_client	*sc;
	enum sasl_client_mech	 mech;
	char			 what[64];	/* "AUTH MECH", for errors */
	/* An initial response too long for the AUTH line waits for "+". */
	bool			 pending;
	size_t			 outlen;
	unsigned char		 out[SASL_CLIENT_OUT_MAX];
	unsigned char		 in[BASE64_DECODED_MAX(POP3C_LINE_MAX)];
	char			 b64[BASE64_ENCODED_LEN(SASL_CLIENT_OUT_MAX) +
				     1];
};

/* SCRAM-PLUS: bind this TLS channel (RFC 5929, RFC 9266). */
static int
sasl_bind(struct pop3c *c, const char *what, struct sasl_client_params *p,
    unsigned char *cb, size_t cbsize)
{
	static const char *const types[] = { "tls-exporter",
	    "tls-server-end-point" };
	ssize_t n = -1;

	/* RFC 9266: tls-exporter where it exists (TLS 1.3). */
	for (size_t i = 0; n < 0 && i < 2 && c->tr.channel_binding != NULL &&
	    c->tls; i++) {
		n = c->tr.channel_binding(c->tr.ctx, types[i], cb, cbsize);
		p->cb_type = types[i];
	}
	if (n <= 0)
		return fail(c, POP3C_ETLS, "%s: no channel binding on this "
		    "connection", what);
	p->cb_data = cb;
	p->cb_len = (size_t)n;
	c->cb_type = p->cb_type;
	return 0;
}

/* Send the AUTH line, with the initial response on it if it fits. */
static int
sasl_start(struct pop3c *c, struct sasl_exchange *x, const char *name)
{
	char shown[64], err[ERR_LEN];
	bool initial = sasl_client_has_initial(x->sc);

	if (initial) {
		if (sasl_client_step(x->sc, NULL, 0, x->out, &x->outlen, err) !=
		    SASL_CLIENT_CONTINUE)
			return fail(c, POP3C_ELOCAL, "%s", err);
		if (x->outlen == 0)
			str_copy(x->b64, sizeof(x->b64), "=");
		else
			(void)base64_encode(x->b64, sizeof(x->b64), x->out,
			    x->outlen);
		x->pending = 6 + strlen(name) + strlen(x->b64) + 2 >
		    AUTH_IR_LINE_MAX;
	}
	(void)str_fmt(shown, sizeof(shown), "%s%s", x->what,
	    initial && !x->pending ? " ********" : "");
	if (initial && !x->pending) {
		char prefix[40];

		(void)str_fmt(prefix, sizeof(prefix), "%s ", x->what);
		if (send_sasl_line(c, shown, prefix, x->b64) < 0)
			return -1;
	} else if (send_sasl_line(c, shown, x->what, "") < 0) {
		return -1;
	}
	if (x->pending && x->outlen == 0)
		x->b64[0] = '\0';	/* an empty response is an empty line */
	return 0;
}

/* The server's +OK or -ERR that ends the exchange: 0 when logged in. */
static int
sasl_verdict(struct pop3c *c, struct sasl_exchange *x, const char *line,
    size_t len)
{
	int rc = parse_status(c, x->what, line, len, NULL);

	if (rc > 0 && sasl_client_oauth_status(x->sc)[0] != '\0')
		/* The token is never shown, only the verdict. */
		return fail(c, POP3C_EAUTH, "%s: the server refused the token "
		    "(status \"%s\")", x->what, sasl_client_oauth_status(x->sc));
	if (rc > 0)
		return login_failed(c);
	if (rc < 0)
		return rc;
	if (!x->pending && sasl_client_done(x->sc))
		return 0;
	if (x->mech == SASL_CLIENT_SCRAM || x->mech == SASL_CLIENT_SCRAM_PLUS) {
		/* The server never proved itself. */
		c->dead = true;
		return fail(c, POP3C_EAUTH, "%s: server signature mismatch "
		    "(the server accepted us without sending one)", x->what);
	}
	return fail(c, POP3C_EPROTO, "%s: +OK before the exchange ended",
	    x->what);
}

/* Answer a challenge line ("+ " base64, or "+" alone: an empty one). */
static int
sasl_answer(struct pop3c *c, struct sasl_exchange *x, const char *line,
    size_t len)
{
	enum sasl_client_result r;
	char err[ERR_LEN];
	size_t inlen;

	line += len > 1 ? 2 : 1;
	len -= len > 1 ? 2 : 1;
	if (base64_decode(x->in, sizeof(x->in), &inlen, line, len) < 0)
		return fail(c, POP3C_EPROTO, "%s: bad base64 in a challenge",
		    x->what);
	if (x->pending) {
		x->pending = false;
		if (inlen != 0)
			return fail(c, POP3C_EPROTO, "%s: a challenge where an "
			    "empty one was due", x->what);
		return send_sasl_line(c, "********", "", x->b64);
	}
	r = sasl_client_step(x->sc, x->in, inlen, x->out, &x->outlen, err);
	explicit_bzero(x->in, inlen);
	if (r == SASL_CLIENT_MISMATCH || r == SASL_CLIENT_REFUSED) {
		/* Nothing more goes to a server that failed SCRAM. */
		c->dead = true;
		return fail(c, POP3C_EAUTH, "%s", err);
	}
	if (r != SASL_CLIENT_CONTINUE)
		return fail(c, POP3C_EPROTO, "%s", err);
	if (base64_encode(x->b64, sizeof(x->b64), x->out, x->outlen) < 0 ||
	    send_sasl_line(c, x->outlen > 0 ? "********" : "", "", x->b64) < 0)
		return -1;
	return 0;
}

static int
login_sasl(struct pop3c *c, size_t k, const char *user, const char *pass)
{
	struct sasl_client_params p = { .mech = sasl_table[k].sasl,
	    .user = user, .pass = pass, .tls = c->tls,
	    .host = c->peer_host[0] != '\0' ? c->peer_host : NULL,
	    .port = c->peer_port[0] != '\0' ? c->peer_port : NULL,
	    .plus_offered = (c->mechs & POP3C_MECH_SCRAM_PLUS) != 0 };
	struct sasl_exchange x;
	unsigned char cb[SASL_CLIENT_CB_MAX];
	const char *name = sasl_client_mech_name(sasl_table[k].sasl);
	char err[ERR_LEN];
	int rc = -1;

	memset(&x, 0, sizeof(x));
	x.mech = sasl_table[k].sasl;
	(void)str_fmt(x.what, sizeof(x.what), "AUTH %s", name);
	if (x.mech == SASL_CLIENT_SCRAM_PLUS &&
	    sasl_bind(c, x.what, &p, cb, sizeof(cb)) < 0)
		return -1;
	if (c->scram_nonce[0] != '\0')
		p.nonce = c->scram_nonce;
	if (sasl_client_new(&x.sc, &p, err) < 0)
		return fail(c, POP3C_ELOCAL, "%s", err);
	if (sasl_start(c, &x, name) < 0)
		goto out;
	for (int round = 0; ; round++) {
		char *line;
		size_t len;

		if (read_reply_line(c, x.what, &line, &len) < 0)
			goto out;
		if (len == 0 || line[0] != '+' || (len > 1 && line[1] != ' ')) {
			rc = sasl_verdict(c, &x, line, len);
			goto out;
		}
		if (round == AUTH_ROUNDS_MAX) {
			fail(c, POP3C_EPROTO, "%s: too many challenges",
			    x.what);
			goto out;
		}
		if (sasl_answer(c, &x, line, len) < 0)
			goto out;
	}
out:
	sasl_client_free(&x.sc);
	explicit_bzero(&x, sizeof(x));
	explicit_bzero(cb, sizeof(cb));
	return rc;
}

int
pop3c_set_peer(struct pop3c *c, const char *host, const char *port)
{
	if (str_copy(c->peer_host, sizeof(c->peer_host), host) < 0 ||
	    str_copy(c->peer_port, sizeof(c->peer_port), port) < 0) {
		c->peer_host[0] = c->peer_port[0] = '\0';
		return -1;
	}
	return 0;
}

int
pop3c_login(struct pop3c *c, const char *user, const char *pass,
    enum pop3c_auth method, bool cleartext_ok, const char **method_r)
{
	unsigned char cb[SASL_CLIENT_CB_MAX];
	bool have_cb = false;

	c->cb_type = NULL;
	if (method == POP3C_AUTH_AUTO) {
		if (c->tls && c->tr.channel_binding != NULL)
			have_cb = c->tr.channel_binding(c->tr.ctx,
			    "tls-exporter", cb, sizeof(cb)) > 0 ||
			    c->tr.channel_binding(c->tr.ctx,
			    "tls-server-end-point", cb, sizeof(cb)) > 0;
		method = pop3c_auth_choose(c->caps, c->caps_known, c->mechs,
		    c->timestamp[0] != '\0', c->tls, have_cb, cleartext_ok);
	}
	if (method_r != NULL)
		*method_r = pop3c_auth_name(method);
	if (method == POP3C_AUTH_NONE)
		return fail(c, POP3C_EAUTH, "no login method in common with "
		    "the server%s", !c->tls && !cleartext_ok ? " that keeps "
		    "the password off a connection without TLS" : "");
	if (sends_password(method) && !c->tls && !cleartext_ok)
		return fail(c, POP3C_ETLS, "%s would send the password "
		    "without TLS", pop3c_auth_name(method));
	if (method == POP3C_AUTH_APOP)
		return login_apop(c, user, pass);
	if (method == POP3C_AUTH_USER)
		return login_user(c, user, pass);
	for (size_t k = 0; k < N_SASL; k++)
		if (sasl_table[k].auth == method)
			return login_sasl(c, k, user, pass);
	return fail(c, POP3C_ELOCAL, "unknown login method");
}

/*
 * Split "A B[ rest]" into two words; NUL-terminates in place. 0 or -1.
 * Writes into line, so line must be writable.
 */
static int
two_words(char *line, char **a_r, char **b_r)
{
	char *sp = strchr(line, ' '), *b, *sp2;

	if (sp == NULL)
		return -1;
	*sp = '\0';
	b = sp + 1;
	sp2 = strchr(b, ' ');
	if (sp2 != NULL)
		*sp2 = '\0';
	*a_r = line;
	*b_r = b;
	return 0;
}

int
pop3c_stat(struct pop3c *c, uint32_t *count_r, uint64_t *size_r)
{
	char text[POP3C_LINE_MAX + 1], *a, *b, clean[100];
	const char *t;

	if (send_cmd(c, "STAT") < 0 || simple_cmd(c, "STAT", &t) < 0)
		return -1;
	str_copy(text, sizeof(text), t);
	str_sanitize(clean, sizeof(clean), t, strlen(t));
	if (two_words(text, &a, &b) < 0 || str_parse_u32(a, count_r) < 0 ||
	    str_parse_u64(b, size_r) < 0)
		return fail(c, POP3C_EPROTO, "bad STAT reply: \"+OK %s\"",
		    clean);
	return 0;
}

void
pop3c_msgs_free(struct pop3c_msg **msgs, size_t n)
{
	if (*msgs == NULL)
		return;
	for (size_t i = 0; i < n; i++)
		free((*msgs)[i].uid);
	free(*msgs);
	*msgs = NULL;
}

/* Read to the final "." after a failure, so the session can go on. */
static void
drain(struct pop3c *c)
{
	char *line;
	size_t len;
	bool eol, bol = true;

	for (;;) {
		int rc = get_line(c, POP3C_BUF_SIZE - 1, &line, &len, &eol);

		if (rc <= 0) {
			c->dead = true;
			return;
		}
		if (bol && eol && len == 1 && line[0] == '.')
			return;
		bol = eol;
	}
}

int
pop3c_list(struct pop3c *c, struct pop3c_msg **msgs_r, size_t *n_r)
{
	struct pop3c_msg *msgs = NULL;
	size_t n = 0, cap = 0;
	char *line, *a, *b, clean[100];
	size_t len;
	int rc;

	*msgs_r = NULL;
	*n_r = 0;
	if (send_cmd(c, "LIST") < 0 || simple_cmd(c, "LIST", NULL) < 0)
		return -1;
	for (;;) {
		struct pop3c_msg m = { 0 };

		rc = get_multi_line(c, "LIST", &line, &len);
		if (rc < 0)
			goto fail;
		if (rc == 0)
			break;
		str_sanitize(clean, sizeof(clean), line, len);
		if (two_words(line, &a, &b) < 0 ||
		    str_parse_u32(a, &m.num) < 0 || m.num == 0 ||
		    str_parse_u64(b, &m.size) < 0) {
			fail(c, POP3C_EPROTO, "bad LIST line: \"%s\"", clean);
			goto fail;
		}
		if (n > 0 && m.num <= msgs[n - 1].num) {
			fail(c, POP3C_EPROTO, "LIST out of order at \"%s\"",
			    clean);
			goto fail;
		}
		if (n == POP3C_MESSAGES_MAX) {
			fail(c, POP3C_EPROTO, "LIST has over %d messages",
			    POP3C_MESSAGES_MAX);
			goto fail;
		}
		if (n == cap) {
			size_t ncap = cap == 0 ? 64 : cap * 2;
			struct pop3c_msg *nm;

			nm = reallocarray(msgs, ncap, sizeof(*msgs));
			if (nm == NULL) {
				fail(c, POP3C_ELOCAL, "out of memory");
				drain(c);
				goto fail;
			}
			msgs = nm;
			cap = ncap;
		}
		msgs[n++] = m;
	}
	*msgs_r = msgs;
	*n_r = n;
	return 0;
fail:
	free(msgs);
	return -1;
}

static int
cmp_num(const void *key, const void *elem)
{
	uint32_t k = *(const uint32_t *)key;
	const struct pop3c_msg *m = elem;

	return k < m->num ? -1 : k > m->num;
}

static int
cmp_uid(const void *a, const void *b)
{
	const struct pop3c_msg *x = *(const struct pop3c_msg *const *)a;
	const struct pop3c_msg *y = *(const struct pop3c_msg *const *)b;

	return strcmp(x->uid, y->uid);
}

bool
pop3c_valid_uid(const char *s, size_t len)
{
	if (len == 0 || len > POP3C_UID_MAX)
		return false;
	for (size_t i = 0; i < len; i++)
		if (s[i] < 0x21 || s[i] > 0x7e)
			return false;
	return true;
}

/* Every message got a uid and no two share one; else -1. */
static int
check_uids(struct pop3c *c, struct pop3c_msg *msgs, size_t n)
{
	struct pop3c_msg **v;
	char clean[100];
	int rc = 0;

	for (size_t i = 0; i < n; i++)
		if (msgs[i].uid == NULL)
			return fail(c, POP3C_EPROTO,
			    "UIDL lacks message %u", (unsigned int)msgs[i].num);
	if (n < 2)
		return 0;
	v = calloc(n, sizeof(*v));
	if (v == NULL)
		return fail(c, POP3C_ELOCAL, "out of memory");
	for (size_t i = 0; i < n; i++)
		v[i] = &msgs[i];
	qsort(v, n, sizeof(*v), cmp_uid);
	for (size_t i = 1; i < n; i++) {
		if (strcmp(v[i - 1]->uid, v[i]->uid) == 0) {
			str_sanitize(clean, sizeof(clean), v[i]->uid,
			    strlen(v[i]->uid));
			rc = fail(c, POP3C_EPROTO,
			    "UIDL gives two messages the id \"%s\"", clean);
			break;
		}
	}
	free(v);
	return rc;
}

int
pop3c_uidl(struct pop3c *c, struct pop3c_msg *msgs, size_t n)
{
	char *line, *a, *b, clean[100];
	size_t len;
	int rc;

	if (send_cmd(c, "UIDL") < 0)
		return -1;
	rc = read_status(c, "UIDL", NULL);
	if (rc < 0)
		return -1;
	if (rc > 0) {
		if (c->err != POP3C_ESERVER)
			return -1;
		c->err = POP3C_OK;
		return 1;
	}
	for (size_t i = 0; i <= POP3C_MESSAGES_MAX; i++) {
		struct pop3c_msg *m;
		uint32_t num;

		rc = get_multi_line(c, "UIDL", &line, &len);
		if (rc < 0)
			return -1;
		if (rc == 0)
			return check_uids(c, msgs, n);
		str_sanitize(clean, sizeof(clean), line, len);
		if (two_words(line, &a, &b) < 0 ||
		    str_parse_u32(a, &num) < 0 ||
		    !pop3c_valid_uid(b, strlen(b)))
			return fail(c, POP3C_EPROTO, "bad UIDL line: \"%s\"",
			    clean);
		m = n > 0 ? bsearch(&num, msgs, n, sizeof(*msgs), cmp_num) :
		    NULL;
		if (m == NULL || m->uid != NULL)
			return fail(c, POP3C_EPROTO,
			    "UIDL line for %s message: \"%s\"",
			    m == NULL ? "an unlisted" : "a repeated", clean);
		m->uid = strdup(b);
		if (m->uid == NULL) {
			fail(c, POP3C_ELOCAL, "out of memory");
			drain(c);
			return -1;
		}
	}
	return fail(c, POP3C_EPROTO, "UIDL reply too long");
}

/*
 * Stream a multi-line message reply into fn. Lines arrive whole or in
 * pieces; only the first piece of a line is unstuffed, and only a whole
 * line can be the terminator.
 */
static int
stream_data(struct pop3c *c, const char *what, uint64_t max_octets,
    pop3c_data_fn *fn, void *arg, uint64_t *octets_r)
{
	uint64_t octets = 0;
	bool bol = true, failed = false;

	for (;;) {
		char *line;
		size_t len;
		bool eol;
		int rc = get_line(c, POP3C_BUF_SIZE - 1, &line, &len, &eol);

		if (rc < 0)
			return -1;
		if (rc == 0)
			return fail(c, POP3C_ENET,
			    "%s reply cut short: connection closed before "
			    "the final \".\"", what);
		if (bol && pop3_unstuff_line(line, &len)) {
			if (!eol)
				return fail(c, POP3C_EPROTO,
				    "bad stuffing in the %s reply", what);
			break;
		}
		if (__builtin_add_overflow(octets, (uint64_t)len, &octets) ||
		    (eol && __builtin_add_overflow(octets, 2, &octets)) ||
		    (max_octets > 0 && octets > max_octets))
			return fail(c, POP3C_EPROTO,
			    "%s reply exceeds %llu octets", what,
			    (unsigned long long)max_octets);
		if (!failed && fn(arg, line, len, eol) < 0)
			failed = true;
		bol = eol;
	}
	if (octets_r != NULL)
		*octets_r = octets;
	if (failed) {
		c->err = POP3C_ELOCAL;
		(void)str_fmt(c->errmsg, sizeof(c->errmsg),
		    "%s: local failure", what);
		return -1;
	}
	return 0;
}

/* Queue a command whose reply is read later (RFC 2449 sec. 6.6). */
static int
queue_cmd(struct pop3c *c, bool data, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int
queue_cmd(struct pop3c *c, bool data, const char *fmt, ...)
{
	char line[POP3_LINE_MAX + 1];
	unsigned int slot;
	va_list ap;
	int n;

	if (c->dead)
		return fail(c, POP3C_ENET, "connection already failed");
	/*
	 * Without PIPELINING a server may read the next command only after
	 * its reply: one at a time. The window also bounds what we write
	 * while not reading, far below any socket buffer, so neither side
	 * can block on a full one.
	 */
	if (c->qlen >= POP3C_PIPELINE_MAX ||
	    (c->qlen > 0 && !(c->caps & POP3C_CAP_PIPELINING))) {
		c->err = POP3C_ELOCAL;
		str_copy(c->errmsg, sizeof(c->errmsg),
		    "too many pipelined commands");
		return -1;
	}
	va_start(ap, fmt);
	n = format_cmd(c, line, sizeof(line), fmt, ap);
	va_end(ap);
	if (n < 0)
		return -1;
	if (c->outlen + (size_t)n > sizeof(c->out) && flush_out(c) < 0)
		return -1;
	memcpy(c->out + c->outlen, line, (size_t)n);
	c->outlen += (size_t)n;
	slot = (c->qhead + c->qlen) % POP3C_PIPELINE_MAX;
	c->q[slot].data = data;
	(void)str_fmt(c->q[slot].what, sizeof(c->q[slot].what), "%.*s",
	    n - 2, line);
	c->qlen++;
	return 0;
}

int
pop3c_send_retr(struct pop3c *c, uint32_t num)
{
	return queue_cmd(c, true, "RETR %u", (unsigned int)num);
}

int
pop3c_send_top(struct pop3c *c, uint32_t num, uint32_t lines)
{
	return queue_cmd(c, true, "TOP %u %u", (unsigned int)num,
	    (unsigned int)lines);
}

int
pop3c_send_dele(struct pop3c *c, uint32_t num)
{
	return queue_cmd(c, false, "DELE %u", (unsigned int)num);
}

unsigned int
pop3c_outstanding(const struct pop3c *c)
{
	return c->qlen;
}

/* Take the oldest outstanding command, which must be of kind data. */
static int
dequeue(struct pop3c *c, bool data, char *what, size_t size)
{
	if (c->qlen == 0 || c->q[c->qhead].data != data) {
		c->err = POP3C_ELOCAL;
		str_copy(c->errmsg, sizeof(c->errmsg),
		    "no such pipelined command");
		return -1;
	}
	(void)str_copy(what, size, c->q[c->qhead].what);
	c->qhead = (c->qhead + 1) % POP3C_PIPELINE_MAX;
	c->qlen--;
	return 0;
}

int
pop3c_recv_data(struct pop3c *c, uint64_t max_octets, pop3c_data_fn *fn,
    void *arg, uint64_t *octets_r)
{
	char what[48];

	if (dequeue(c, true, what, sizeof(what)) < 0 ||
	    simple_cmd(c, what, NULL) < 0)
		return -1;
	return stream_data(c, what, max_octets, fn, arg, octets_r);
}

int
pop3c_recv_status(struct pop3c *c)
{
	char what[48];

	if (dequeue(c, false, what, sizeof(what)) < 0 ||
	    simple_cmd(c, what, NULL) < 0)
		return -1;
	return 0;
}

static int
drop_data(void *arg, const char *data, size_t len, bool eol)
{
	(void)arg;
	(void)data;
	(void)len;
	(void)eol;
	return 0;
}

int
pop3c_drain_replies(struct pop3c *c)
{
	enum pop3c_error err = c->err;
	char msg[ERR_LEN];
	int rc = 0;

	/* Keep the failure that made the caller stop, not ours. */
	(void)str_copy(msg, sizeof(msg), c->errmsg);
	while (c->qlen > 0 && rc == 0) {
		bool data = c->q[c->qhead].data;

		if ((data ? pop3c_recv_data(c, 0, drop_data, NULL, NULL) :
		    pop3c_recv_status(c)) < 0 && !pop3c_usable(c))
			rc = -1;
	}
	if (rc == 0) {
		c->err = err;
		(void)str_copy(c->errmsg, sizeof(c->errmsg), msg);
	}
	return rc;
}

int
pop3c_retr(struct pop3c *c, uint32_t num, uint64_t max_octets,
    pop3c_data_fn *fn, void *arg, uint64_t *octets_r)
{
	if (pop3c_send_retr(c, num) < 0)
		return -1;
	return pop3c_recv_data(c, max_octets, fn, arg, octets_r);
}

int
pop3c_top(struct pop3c *c, uint32_t num, uint32_t lines,
    uint64_t max_octets, pop3c_data_fn *fn, void *arg, uint64_t *octets_r)
{
	if (pop3c_send_top(c, num, lines) < 0)
		return -1;
	return pop3c_recv_data(c, max_octets, fn, arg, octets_r);
}

int
pop3c_dele(struct pop3c *c, uint32_t num)
{
	if (pop3c_send_dele(c, num) < 0)
		return -1;
	return pop3c_recv_status(c);
}

int
pop3c_rset(struct pop3c *c)
{
	if (send_cmd(c, "RSET") < 0 || simple_cmd(c, "RSET", NULL) < 0)
		return -1;
	return 0;
}

int
pop3c_quit(struct pop3c *c)
{
	if (send_cmd(c, "QUIT") < 0 || simple_cmd(c, "QUIT", NULL) < 0)
		return -1;
	return 0;
}
