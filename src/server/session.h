/*
 * One POP3 connection's I/O, shared by the login role (AUTHORIZATION) and
 * the mail role (TRANSACTION, UPDATE): line input with the RFC limits,
 * bounded output with back-pressure, the idle timer, the command dispatcher
 * and the transcript. Handlers queue replies and never touch the socket.
 */
#ifndef POSTINO_SESSION_H
#define POSTINO_SESSION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../lib/ev.h"
#include "../lib/conn.h"
#include "../lib/iobuf.h"
#include "../lib/tls.h"
#include "../pop3/pop3.h"
#include "limits.h"

#define SESSION_ID_LEN		16
#define SESSION_IP_LEN		46

/*
 * What a command did. The dispatcher alone acts on it (a command that
 * finishes later hands its result to session_complete()), so bad commands
 * are counted in one place.
 */
enum cmd_result {
	CMD_OK,		/* reply queued; resets the bad-command count */
	CMD_BAD,	/* "-ERR" queued; counts as a bad command */
	CMD_ASYNC,	/* goes on: suspended, or lines go to ops->intercept */
	CMD_CLOSE,	/* reply queued; close once it is sent */
	CMD_MORE,	/* as CMD_OK, and ops->more writes the rest */
};

struct session;

struct session_cmd {
	const char	*name;
	unsigned char	 min_args, max_args;
	/* The whole rest of the line is one argument (PASS: spaces allowed). */
	bool		 raw;
	/*
	 * The transcript masks what follows the keyword and secret - 1 more
	 * words (PASS: 1, APOP user digest and AUTH mech response: 2); 0:
	 * nothing. A keyword not in the table has every argument masked.
	 */
	unsigned char	 secret;
	enum cmd_result	(*fn)(struct session *s, const struct pop3_args *a);
};

struct session_ops {
	/* The role's commands (one POP3 state each); NULL-terminated. */
	const struct session_cmd *commands;
	/*
	 * Output drained after CMD_MORE: queue more of the reply, and call
	 * session_more_done() once it is all queued.
	 */
	void (*more)(struct session *s);
	/* The idle timer fired. Default: "-ERR" and close. */
	void (*timeout)(struct session *s);
	/* The session is over; free the owner. Called exactly once. */
	void (*closed)(struct session *s);
	/* The TLS handshake finished (implicit TLS or after STLS). */
	void (*tls_ready)(struct session *s);
	/*
	 * After session_intercept(): every line goes here instead of the
	 * dispatcher (SASL continuation lines, RFC 5034 sec. 4); the result
	 * counts as a command's.
	 */
	enum cmd_result (*intercept)(struct session *s, char *line, size_t len);
};

/* What the role knows of a connection before the session starts. */
struct session_params {
	const char	*id;		/* NULL: a new random one */
	const char	*ip;
	uint16_t	 port;
	unsigned int	 idle_ms;	/* 0: SESSION_IDLE_DEFAULT_MS */
	unsigned int	 max_bad;	/* 0: SESSION_BAD_DEFAULT */
	bool		 transcript;	/* log every line but secrets */
};

struct session {
	struct ev		*ev;
	int			 fd;
	const struct session_ops *ops;
	void			*owner;
	char			 id[SESSION_ID_LEN + 1];
	char			 ip[SESSION_IP_LEN];
	uint16_t		 port;
	unsigned int		 idle_ms;
	unsigned int		 max_bad;
	unsigned int		 bad;
	bool			 transcript;
	bool			 suspended;	/* wait: take no command */
	bool			 more;		/* a multi-line reply is being sent */
	bool			 out_wide;	/* out may hold SESSION_OUT_BODY */
	bool			 closing;	/* close when the output is sent */
	bool			 closed;
	/* The client ended its stream: its complete commands still run. */
	bool			 peer_closed;
	bool			 in_dispatch;
	bool			 intercept;	/* lines go to ops->intercept */
	bool			 handshaking;	/* TLS handshake under way */
	/*
	 * 0: POP3_LINE_MAX. Above SESSION_IN_MAX (a SASL response carrying
	 * an OAuth token), the input buffer grows to it while a line needs
	 * that, and shrinks back once line_max is 0 again.
	 */
	size_t			 line_max;
	/*
	 * Why it ended ("quit", "client-closed", "timeout", "error",
	 * "shutdown", ...; the first one set wins) and what it did: logged
	 * as event=disconnect when the session is torn down.
	 */
	const char		*end_reason;
	unsigned int		 ncommands;
	uint64_t		 bytes_in, bytes_out;
	uint64_t		 start_ms;
	struct tls_ctx		*starttls;	/* begin TLS once the reply is sent */
	struct conn		 conn;		/* every read and write */
	struct ev_timer		 timer;
	unsigned int		 kernel_queued;	/* SIOCOUTQ at the last timeout */
	struct iobuf		 in;		/* in_small, or grown */
	char			 in_small[SESSION_IN_MAX];
	/* Storage only while output is pending: an idle session costs ~1.5 KiB. */
	struct iobuf		 out;
};

/* Random session id (16 hex digits). */
void session_new_id(char id[SESSION_ID_LEN + 1]);

/* Fill in p before session_start(); s is otherwise the session's. */
void session_setup(struct session *s, const struct session_params *p);

/*
 * Take over fd (nonblocking) and start reading; input already read by
 * another process is passed in pre/prelen. -1 on failure (fd not closed).
 */
int session_start(struct session *s, struct ev *ev, int fd,
    const struct session_ops *ops, void *owner, const void *pre, size_t prelen);

/* Queue one reply line; CRLF is added. Lines are short: always fits. */
void session_reply(struct session *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Queue raw octets (multi-line bodies); returns how many fitted. */
size_t session_write(struct session *s, const void *buf, size_t len);
/* Free room in the output buffer. */
size_t session_out_room(const struct session *s);
/*
 * Produce output in place (a RETR block, encoded straight into the buffer
 * instead of copied there): the free tail of the output buffer, *room_r
 * octets, after moving pending output to the front; NULL when no buffer
 * can be had (the session is then closing). session_out_commit() queues
 * the n <= *room_r octets written there.
 */
char *session_out_tail(struct session *s, size_t *room_r);
void session_out_commit(struct session *s, size_t n);
/*
 * For a long multi-line reply: let the output buffer hold
 * SESSION_OUT_BODY (taken now) until it is next drained, so the reply
 * leaves in fewer, larger writes. false when the process already has
 * SESSION_OUT_WIDE such sessions or no memory: the reply still goes out,
 * in SESSION_OUT_MAX pieces.
 */
bool session_out_widen(struct session *s);

/* Wake up: queued output or input to look at after an outside event. */
void session_resume(struct session *s);
/*
 * Take no command until session_complete(): a command waiting for another
 * process returns CMD_ASYNC after this. Before session_start(): input
 * handed over with the connection waits too.
 */
void session_suspend(struct session *s);
/*
 * The suspended command is over with r, counted as the dispatcher counts
 * a command's result (CMD_ASYNC: neither counted nor reset); commands are
 * taken again.
 */
void session_complete(struct session *s, enum cmd_result r);
/*
 * line_max > 0: every line, up to line_max octets, goes to ops->intercept
 * until session_intercept(s, 0) gives lines back to the dispatcher.
 */
void session_intercept(struct session *s, size_t line_max);
/* The reply CMD_MORE began is all queued. */
void session_more_done(struct session *s);
/*
 * The reply CMD_MORE began waits for an outside event (a database block):
 * no ops->more and no command until session_more_go() goes on with it.
 */
void session_more_wait(struct session *s);
void session_more_go(struct session *s);
/*
 * Name why the session ends (a static string, no spaces); the first reason
 * set is the one logged. Not set: "error". "handoff" logs nothing: the
 * session goes on in another process, which logs its end.
 */
void session_set_end(struct session *s, const char *reason);
/* Close now (no flush); ops->closed runs. */
void session_close(struct session *s);
/* Stop taking commands, flush, then close. */
void session_end(struct session *s);

/*
 * Begin TLS on this connection: with now, at once (implicit TLS, before any
 * output); otherwise once the queued reply (STLS's +OK) is sent. Input the
 * client sent before the handshake is discarded, never executed (RFC 2595
 * sec. 4, CVE-2011-0411). -1 on failure.
 */
int session_start_tls(struct session *s, struct tls_ctx *ctx, bool now);

/* Output still owed to a client at a hand-off: commands stop above HIGH. */
#define SESSION_HANDOVER_OUT	(SESSION_OUT_HIGH + POP3_LINE_MAX)

/* What a hand-off carries: the connection, unread input, unsent output. */
struct session_handover {
	int		 fd;
	struct tls_conn	*tls;		/* NULL for plaintext */
	size_t		 inlen, outlen;
	char		 in[SESSION_IN_MAX];
	char		 out[SESSION_HANDOVER_OUT];
};

/*
 * Hand the connection over (h is filled; the caller owns fd and tls) and
 * free the session via ops->closed. -1 (session untouched) when more
 * output is pending than a hand-off carries.
 */
int session_detach(struct session *s, struct session_handover *h);

#endif
