/*
 * Inside the POP3 client library (pop3c.h is its face): the session all
 * three parts share, and what the first offers the other two.
 *
 *   pop3c.c        the session: its transport and stream, command lines
 *                  out, reply lines in, status lines and response codes
 *   pop3c_login.c  greeting, CAPA, STLS, choosing a login method, USER,
 *                  APOP and SASL (sasl_client.h)
 *   pop3c_cmds.c   STAT, LIST, UIDL, the pipelined RETR/TOP/DELE queue,
 *                  RSET and QUIT
 */
#ifndef POSTINO_POP3C_INT_H
#define POSTINO_POP3C_INT_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../lib/iobuf.h"
#include "pop3c.h"
#include "sasl_client.h"

/*
 * The server's share of a reply: milliseconds spent waiting for it in
 * reads and octets it sent meanwhile. Time we spend elsewhere (storing a
 * message, at the keyboard) is not the server's and is not counted.
 */
struct pop3c_clock {
	uint64_t		 waited_ms;
	uint64_t		 octets;
	bool			 on;
};

/* One session: its transport, what the server said, the two buffers. */
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
	/*
	 * A whole line (a greeting, a status, a CAPA/LIST/UIDL line) must
	 * come within the timeout; a multi-line body within the timeout and
	 * its size at POP3C_MIN_RATE (see wait_budget in pop3c.c).
	 */
	struct pop3c_clock	 line, body;
	const struct pop3c_clock *late;	/* the one that ran out, or NULL */
	const char		*cb_type;	/* of the last -PLUS login */
	char			 scram_nonce[SASL_CLIENT_NONCE_MAX + 1];
	/* OAUTHBEARER's host and port (RFC 7628 sec. 3.1); "" unset. */
	char			 peer_host[256];
	char			 peer_port[6];
	char			 errmsg[ERR_LEN];
	char			 code[POP3C_CODE_MAX];
	char			 timestamp[POP3C_TIMESTAMP_MAX];
	struct iobuf		 in;		/* over inbuf, never the heap */
	char			 inbuf[POP3C_BUF_SIZE];
	/* Commands written or queued whose replies are not read yet. */
	struct {
		bool		 data;		/* RETR/TOP: a multi-line reply */
		char		 what[48];
	}			 q[POP3C_PIPELINE_MAX];
	unsigned int		 qhead, qlen;
	struct iobuf		 out;		/* queued, not yet written */
	char			 outbuf[POP3C_PIPELINE_MAX * 48];
};

/*
 * Record the failure (message from fmt) and return -1; after POP3C_ENET,
 * POP3C_ETLS or POP3C_EPROTO the session is dead.
 */
int pop3c_fail(struct pop3c *c, enum pop3c_error e, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Write all of buf (within the timeout per write). 0, or -1 (ENET). */
int pop3c_send_all(struct pop3c *c, const char *buf, size_t len);
/* Write the queued pipelined commands. 0, or -1. */
int pop3c_flush_out(struct pop3c *c);
/* One command line, checked and traced, into line; length or -1. */
int pop3c_format_cmd(struct pop3c *c, char *line, size_t size,
    const char *fmt, va_list ap);
/* Send one command line now (nothing may be outstanding). 0, or -1. */
int pop3c_send_cmd(struct pop3c *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* The next line or piece of one, in place: 1, 0 at EOF, -1. */
int pop3c_get_line(struct pop3c *c, size_t max, char **line_r,
    size_t *len_r, bool *eol_r);
/* A status line: 0 +OK, 1 -ERR (error and code saved), -1 otherwise. */
int pop3c_parse_status(struct pop3c *c, const char *what, const char *line,
    size_t len, const char **text_r);
/* One reply line, traced: 1, or -1 (EOF included). */
int pop3c_read_reply_line(struct pop3c *c, const char *what, char **line_r,
    size_t *len_r);
/* Read and parse a status line: as pop3c_parse_status(). */
int pop3c_read_status(struct pop3c *c, const char *what,
    const char **text_r);
/* Read a status line: 0 +OK, -1 otherwise. */
int pop3c_simple_cmd(struct pop3c *c, const char *what,
    const char **text_r);
/* One unstuffed line of a multi-line reply: 1, 0 at the ".", -1. */
int pop3c_get_multi_line(struct pop3c *c, const char *what, char **line_r,
    size_t *len_r);

#endif
