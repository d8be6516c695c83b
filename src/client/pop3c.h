/*
 * POP3 client library (RFC 1939, RFC 2449; STLS RFC 2595, AUTH RFC 5034):
 * one blocking session over a transport. Every reply line is bounded,
 * every number parsed strictly and message data streamed to a callback, so
 * a hostile server can make a call fail but never make it hold a message,
 * or an unbounded line, in memory.
 *
 * Results: 0 success, -1 failure with pop3c_error() and pop3c_errmsg() set.
 * After POP3C_ENET, POP3C_ETLS or POP3C_EPROTO the session is unusable, as
 * after a SCRAM server that could not prove itself (POP3C_EAUTH, see
 * pop3c_login); after POP3C_ESERVER (a plain -ERR) or POP3C_ELOCAL (the
 * data callback failed; the reply was still read to its end) it may go on.
 */
#ifndef POSTINO_POP3C_H
#define POSTINO_POP3C_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "../lib/str.h"
#include "limits.h"

struct conn;		/* lib/conn.h */

enum pop3c_error {
	POP3C_OK = 0,
	POP3C_ENET,	/* connect, read, write, timeout, peer closed */
	POP3C_ETLS,	/* TLS handshake or verification */
	POP3C_EAUTH,	/* credentials refused ([AUTH] or -ERR to PASS/APOP) */
	POP3C_EINUSE,	/* [IN-USE] or [LOGIN-DELAY] */
	POP3C_ESYS,	/* [SYS/TEMP] or [SYS/PERM]: the server's own failure */
	POP3C_ESERVER,	/* -ERR to a command, no code that says more */
	POP3C_EPROTO,	/* the server broke the protocol */
	POP3C_ELOCAL,	/* the data callback failed */
};

/* Capabilities from CAPA (RFC 2449 sec. 6). */
enum pop3c_cap {
	POP3C_CAP_TOP		= 1u << 0,
	POP3C_CAP_UIDL		= 1u << 1,
	POP3C_CAP_USER		= 1u << 2,
	POP3C_CAP_RESP_CODES	= 1u << 3,
	POP3C_CAP_PIPELINING	= 1u << 4,
	POP3C_CAP_STLS		= 1u << 5,
	POP3C_CAP_SASL		= 1u << 6,
};

/*
 * What the session runs over: a stream (lib/conn.h, plaintext or TLS;
 * tests script their own conn_ops) and how long one read, write or
 * handshake may wait for it (timeout_ms). close releases the stream, its
 * fd and ctx. The rest is optional (NULL/false when the transport has
 * none): starttls turns conn into TLS in place (0, or -1 with err filled,
 * ERR_LEN), channel_binding gives RFC 5929/9266 data as
 * tls_channel_binding() does (-1 before TLS), tls says TLS is up from the
 * start (implicit TLS).
 */
struct pop3c_transport {
	struct conn	 *conn;
	int		  timeout_ms;
	void	(*close)(void *ctx);
	void	 *ctx;
	int	(*starttls)(void *ctx, char *err);
	ssize_t	(*channel_binding)(void *ctx, const char *type,
		    unsigned char *out, size_t size);
	bool	  tls;
};

/* SASL mechanisms from CAPA's SASL line that the client knows. */
enum pop3c_mech {
	POP3C_MECH_SCRAM_PLUS	= 1u << 0,	/* SCRAM-SHA-256-PLUS */
	POP3C_MECH_SCRAM	= 1u << 1,	/* SCRAM-SHA-256 */
	POP3C_MECH_CRAM_MD5	= 1u << 2,
	POP3C_MECH_PLAIN	= 1u << 3,
	POP3C_MECH_LOGIN	= 1u << 4,
	POP3C_MECH_OAUTHBEARER	= 1u << 5,	/* RFC 7628 */
	POP3C_MECH_XOAUTH2	= 1u << 6,
};

/* Ways to log in, strongest first (the order AUTO picks in). */
enum pop3c_auth {
	POP3C_AUTH_AUTO = 0,
	POP3C_AUTH_SCRAM_PLUS,
	POP3C_AUTH_SCRAM,
	POP3C_AUTH_APOP,
	POP3C_AUTH_CRAM_MD5,
	POP3C_AUTH_PLAIN,
	POP3C_AUTH_LOGIN,
	POP3C_AUTH_USER,
	/* OAuth 2.0: never picked by AUTO; the "password" is the token. */
	POP3C_AUTH_OAUTHBEARER,
	POP3C_AUTH_XOAUTH2,
	POP3C_AUTH_NONE,	/* pop3c_auth_choose(): nothing usable */
};

/* One message of the maildrop, from LIST and UIDL. */
struct pop3c_msg {
	uint32_t	 num;
	uint64_t	 size;		/* octets as the server counts them */
	char		*uid;		/* NULL until pop3c_uidl() */
};

/*
 * Message data: one piece of a line, unstuffed, without the line end;
 * eol is true on the last piece of a line (a line of up to
 * POP3C_BUF_SIZE - 2 octets comes as one piece). Return 0, or -1 to stop
 * taking data: the rest of the reply is read and dropped and the call
 * fails with POP3C_ELOCAL.
 */
typedef int pop3c_data_fn(void *arg, const char *data, size_t len, bool eol);

struct pop3c;

/*
 * A plaintext transport over fd (taken over: closed by the transport's
 * close, or here on failure), made nonblocking. 0, or -1 out of memory.
 */
int pop3c_fd_transport(struct pop3c_transport *tr, int fd, int timeout_ms);

/* A session over tr (taken over). NULL when out of memory (tr is closed). */
struct pop3c *pop3c_new(const struct pop3c_transport *tr);
/* Close the transport and free; *c is set to NULL. */
void pop3c_free(struct pop3c **c);

/* Print the dialogue to stderr ("C: ", "S: "), secrets masked. */
void pop3c_set_trace(struct pop3c *c, bool on);

enum pop3c_error pop3c_error(const struct pop3c *c);
/* False once the transport failed or the server broke the protocol. */
bool pop3c_usable(const struct pop3c *c);
/* A one-line description of the last failure, server text sanitised. */
const char *pop3c_errmsg(const struct pop3c *c);
/* The RFC 2449 response code of the last -ERR ("IN-USE"), or "". */
const char *pop3c_errcode(const struct pop3c *c);

/*
 * A server that says nothing may be waiting for a TLS handshake (an
 * implicit-TLS port): send CAPA before the greeting. A TLS server then
 * fails the handshake at once, and pop3c_greeting() says what happened
 * (POP3C_ETLS when TLS came back, POP3C_ENET with a hint when the
 * connection closed); a POP3 server that is merely slow answers it after
 * its greeting, and the next pop3c_capa() reads that answer instead of
 * asking again.
 */
int pop3c_probe_capa(struct pop3c *c);

/* Read the greeting; remembers an APOP timestamp if there is one. */
int pop3c_greeting(struct pop3c *c);
/* The greeting's APOP timestamp ("<...>"), or "" when it had none. */
const char *pop3c_timestamp(const struct pop3c *c);

/*
 * CAPA. 0 when the list was read (pop3c_caps() then holds it), 1 when the
 * server answered -ERR (an RFC 1939-only server: capabilities unknown).
 */
int pop3c_capa(struct pop3c *c);
unsigned int pop3c_caps(const struct pop3c *c);
/* CAPA's LOGIN-DELAY (RFC 2449 sec. 6.5) in seconds; 0 when none. */
uint32_t pop3c_login_delay(const struct pop3c *c);
bool pop3c_caps_known(const struct pop3c *c);

/* The SASL mechanisms of CAPA's SASL line (enum pop3c_mech). */
unsigned int pop3c_mechs(const struct pop3c *c);
/* True once TLS is up (implicit, or after pop3c_stls()). */
bool pop3c_tls(const struct pop3c *c);

/*
 * STLS (RFC 2595 sec. 4), then TLS on the transport. 0: TLS is up and
 * what CAPA said is forgotten (RFC 2595 sec. 4: issue CAPA again). -1:
 * POP3C_ETLS when the server refused (-ERR) or the handshake or
 * certificate check failed, POP3C_EPROTO when the server sent anything
 * after its +OK before the handshake (an injection: RFC 2595 sec. 4 does
 * not allow it), POP3C_ENET; the session is unusable then.
 */
int pop3c_stls(struct pop3c *c);

/* "scram-sha-256-plus" ... "user" (any case), as --auth takes. 0 or -1. */
int pop3c_auth_parse(const char *name, enum pop3c_auth *m_r);
/* "SCRAM-SHA-256-PLUS", "APOP", "USER", ... */
const char *pop3c_auth_name(enum pop3c_auth m);

/*
 * The method AUTO picks: the strongest the server offers of
 * SCRAM-SHA-256-PLUS (needs tls and channel-binding data, cb),
 * SCRAM-SHA-256, APOP (apop: the greeting had a timestamp), CRAM-MD5,
 * then the ones that send the password itself, PLAIN, LOGIN and USER/PASS
 * (USER when CAPA lists it or CAPA is unknown: an RFC 1939 server), only
 * over TLS or with cleartext_ok. POP3C_AUTH_NONE when none fits.
 */
enum pop3c_auth pop3c_auth_choose(unsigned int caps, bool caps_known,
    unsigned int mechs, bool apop, bool tls, bool cb, bool cleartext_ok);

/*
 * Log in with one method: method, or for POP3C_AUTH_AUTO the one
 * pop3c_auth_choose() picks from CAPA and the greeting. There is no
 * fallback: if the server refuses, the login fails (POP3C_EAUTH), and
 * the password has gone to no weaker method. cleartext_ok lets PLAIN,
 * LOGIN and USER/PASS run without TLS (the user asked for --tls=no);
 * otherwise they fail with POP3C_ETLS before sending anything.
 * SCRAM: a server signature that does not verify, or a server that says
 * +OK without one, fails with POP3C_EAUTH ("server signature mismatch")
 * and ends the session. A challenge that breaks the mechanism is
 * POP3C_EPROTO. *method_r (may be NULL) gets pop3c_auth_name() of the
 * method tried.
 * OAUTHBEARER and XOAUTH2 take the bearer token as pass and need TLS as
 * PLAIN does. Like every mechanism, the initial response goes on the AUTH
 * line only when that line fits RFC 2449's 255 octets (RFC 5034 sec. 4);
 * real tokens never do, so they go in the two-step form ("AUTH XOAUTH2",
 * "+ ", the response), which Microsoft 365 requires. A server that
 * refuses the token with an error challenge gets the ending response and
 * its "-ERR" becomes POP3C_EAUTH naming the challenge's status.
 */
int pop3c_login(struct pop3c *c, const char *user, const char *pass,
    enum pop3c_auth method, bool cleartext_ok, const char **method_r);

/*
 * The server's name and port as the user gave them, for OAUTHBEARER's
 * host and port (RFC 7628 sec. 3.1). 0, or -1 when too long (then unset).
 */
int pop3c_set_peer(struct pop3c *c, const char *host, const char *port);

/* The channel binding the last SCRAM-SHA-256-PLUS login used, or NULL. */
const char *pop3c_channel_binding(const struct pop3c *c);

/* Tests only: the client nonce of the next SCRAM exchange (copied). */
int pop3c_set_scram_nonce(struct pop3c *c, const char *nonce);

/* STAT: message count and octets. */
int pop3c_stat(struct pop3c *c, uint32_t *count_r, uint64_t *size_r);

/*
 * LIST: every message, ascending numbers, strictly parsed; at most
 * POP3C_MESSAGES_MAX. *msgs_r is allocated (free with pop3c_msgs_free),
 * NULL when the maildrop is empty.
 */
int pop3c_list(struct pop3c *c, struct pop3c_msg **msgs_r, size_t *n_r);
void pop3c_msgs_free(struct pop3c_msg **msgs, size_t n);

/*
 * UIDL: fills msgs[i].uid. Every listed message must get exactly one uid,
 * uids must be unique and valid (else POP3C_EPROTO: deleting by a
 * duplicate uid could lose mail). 0 done, 1 the server has no UIDL
 * (-ERR), -1 failure.
 */
int pop3c_uidl(struct pop3c *c, struct pop3c_msg *msgs, size_t n);

/*
 * RETR num, or TOP num lines when top is true, streamed to fn. max_octets
 * bounds the data (unstuffed, counting each line end as 2); 0 means no
 * bound. *octets_r (may be NULL) gets that count.
 */
int pop3c_retr(struct pop3c *c, uint32_t num, uint64_t max_octets,
    pop3c_data_fn *fn, void *arg, uint64_t *octets_r);
int pop3c_top(struct pop3c *c, uint32_t num, uint32_t lines,
    uint64_t max_octets, pop3c_data_fn *fn, void *arg, uint64_t *octets_r);

int pop3c_dele(struct pop3c *c, uint32_t num);

/*
 * Pipelining (RFC 2449 sec. 6.6). pop3c_send_retr/top/dele queue a
 * command without waiting for its reply: up to POP3C_PIPELINE_MAX when
 * the server listed PIPELINING in CAPA, else one (POP3C_ELOCAL beyond).
 * Queued commands are written when a reply is next read. Replies come in
 * order: pop3c_recv_data() reads the one of the oldest outstanding
 * command, which must be a RETR or TOP (as pop3c_retr() does), and
 * pop3c_recv_status() the one of a DELE. A failed RETR (-ERR, or a
 * callback failure) leaves the later replies readable. While commands are
 * outstanding, every other call fails with POP3C_ELOCAL:
 * pop3c_drain_replies() reads and drops the rest (0, or -1 when the
 * session died; the earlier error stays the one reported).
 */
int pop3c_send_retr(struct pop3c *c, uint32_t num);
int pop3c_send_top(struct pop3c *c, uint32_t num, uint32_t lines);
int pop3c_send_dele(struct pop3c *c, uint32_t num);
int pop3c_recv_data(struct pop3c *c, uint64_t max_octets, pop3c_data_fn *fn,
    void *arg, uint64_t *octets_r);
int pop3c_recv_status(struct pop3c *c);
unsigned int pop3c_outstanding(const struct pop3c *c);
int pop3c_drain_replies(struct pop3c *c);
/* RSET: every message marked deleted in this session is unmarked. */
int pop3c_rset(struct pop3c *c);
/* QUIT: +OK means the server committed every DELE of the session. */
int pop3c_quit(struct pop3c *c);

/* ---- helpers ---- */

/* A UIDL as RFC 1939 sec. 7 allows: 1..POP3C_UID_MAX octets of 0x21..0x7E. */
bool pop3c_valid_uid(const char *s, size_t len);

#endif
