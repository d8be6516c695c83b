/*
 * Messages between postinod's roles (see DESIGN.md). Fixed-size structures:
 * the receiver checks the length and that every string is NUL-terminated
 * (PROTO_STR_OK) before it uses a field.
 */
#ifndef POSTINO_ROLEMSG_H
#define POSTINO_ROLEMSG_H

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "../auth/auth.h"
#include "../auth/sasl.h"
#include "../lib/ipc.h"
#include "connlimit.h"
#include "session.h"
#include "../store/store.h"

/*
 * Hex digits of a ticket: the issuing auth worker's index (two digits,
 * so the mail worker redeems it there) and 120 random bits.
 */
#define PROTO_TICKET_LEN	32
#define PROTO_TS_MAX		128	/* APOP timestamp */
/* Auth workers at most: the ticket's two hex digits name one of them. */
#define PROTO_AUTH_WORKERS_MAX	64

enum proto_type {
	MSG_AUTH_CHANNEL = 1,	/* master -> login/mail: fd is a channel to auth */
	MSG_AUTH_ATTACH,	/* master -> auth: fd is a new client channel */
	MSG_AUTH_VERIFY,	/* login -> auth */
	MSG_AUTH_VERDICT,	/* auth -> login */
	MSG_AUTH_REDEEM,	/* mail -> auth */
	MSG_AUTH_ACCOUNT,	/* auth -> mail */
	MSG_HANDOFF,		/* login -> master -> mail; fd is the client */
	MSG_SHUTDOWN,		/* master -> worker: finish and exit */
	MSG_SESSION_END,	/* mail -> master: hand-offs are over (msg_ended) */
	MSG_IDLE,		/* mail -> master: no session for a while */
	MSG_TLS_CONFIG,		/* master -> login: fd is a memfd, cert + key PEM */
	MSG_READY,		/* login, lmtp -> master: has auth (and TLS):
				   serving; auth -> master: dropped, filtered */
	MSG_SASL_STEP,		/* login -> auth: start, continue or cancel SASL */
	MSG_SASL_REPLY,		/* auth -> login */
	MSG_AUTH_SECRET,	/* master -> auth: msg_auth_init */
	MSG_CONN_TABLE,		/* master -> login: fd is the connlimit memfd */
	MSG_AUTH_CANCEL,	/* login -> auth: the client left; drop req */
	MSG_AUTH_RELEASE,	/* login -> auth: ticket not handed off */
	MSG_AUTH_LOOKUP,	/* lmtp/deliver -> auth: an account, no password */
	MSG_DELIVER_CHANNEL,	/* lmtp -> master -> deliver: fd is a channel
				   for one delivery */
	MSG_DELIVER_REQ,	/* lmtp -> deliver on that channel: fd is the
				   sealed message */
	MSG_DELIVER_RESULT,	/* deliver -> lmtp on that channel */
	MSG_DELIVER_PROBE,	/* lmtp -> deliver: is delivery `token` stored?
				   (its worker died before answering) */
	MSG_DELIVER_QUOTA,	/* lmtp -> deliver: is the mailbox full? (RCPT) */
};

/* MSG_AUTH_CHANNEL's payload: which of how many auth workers it leads to. */
struct msg_auth_channel {
	uint32_t	index, count;
};

/* MSG_AUTH_SECRET's payload, the first message an auth worker gets. */
struct msg_auth_init {
	uint32_t	index;		/* this worker's, put in its tickets */
	unsigned char	secret[SASL_SECRET_LEN];
};

/*
 * Why a check was not run (msg_verdict.reason, msg_sasl_reply.reason);
 * each is a "-ERR [SYS/TEMP]" for the client, never "[AUTH]".
 */
enum proto_refusal {
	REFUSE_NONE = 0,
	REFUSE_BUSY,		/* the queue is full, or the deadline passed */
	REFUSE_PENALTY,		/* the penalty outlasts the deadline */
	REFUSE_TICKETS,		/* too many open tickets (user, address) */
};

/* MSG_SESSION_END: how many; with no body (deliver workers), one. */
struct msg_ended {
	uint32_t	count;
};

struct msg_cancel {
	uint64_t	req;
};

struct msg_release {
	char		ticket[PROTO_TICKET_LEN + 1];
};

enum proto_method { METHOD_USER = 1, METHOD_APOP, METHOD_SASL };

struct msg_verify {
	uint64_t	req;
	uint64_t	deadline_ms;	/* CLOCK_MONOTONIC; dropped after */
	uint32_t	method;
	char		session[SESSION_ID_LEN + 1];
	char		ip[SESSION_IP_LEN];
	char		user[AUTH_USER_MAX + 1];
	char		pass[AUTH_PASS_MAX + 1];	/* APOP: the digest */
	char		timestamp[PROTO_TS_MAX];	/* APOP only */
};

struct msg_verdict {
	uint64_t	req;
	int32_t		result;		/* enum auth_result */
	uint32_t	reason;		/* AUTH_TEMPFAIL: enum proto_refusal */
	uint32_t	delay_ms;	/* failed: wait this long before -ERR */
	uint32_t	uid, gid;	/* where the mail role must run */
	char		ticket[PROTO_TICKET_LEN + 1];
};

struct msg_redeem {
	uint64_t	req;
	char		ticket[PROTO_TICKET_LEN + 1];
};

struct msg_account {
	uint64_t	req;
	int32_t		result;		/* enum auth_result */
	uint32_t	uid, gid;
	struct auth_user user;
};

struct msg_handoff {
	uint32_t	uid, gid;
	uint16_t	port;
	uint32_t	method;
	char		session[SESSION_ID_LEN + 1];
	char		ip[SESSION_IP_LEN];
	char		user[AUTH_USER_MAX + 1];
	char		ticket[PROTO_TICKET_LEN + 1];
	/*
	 * What CAPA offered in AUTHORIZATION (CAPA_USER, CAPA_STLS and the
	 * SASL mechanisms): RFC 2449 sec. 5 wants them announced in
	 * TRANSACTION too, and only the login worker knew the connection.
	 */
	uint32_t	capa;
	char		sasl[SASL_MECHS_LEN];
	uint32_t	inlen, outlen;
	char		in[SESSION_IN_MAX];	/* pipelined after PASS */
	char		out[SESSION_HANDOVER_OUT];	/* replies not yet sent */
};

struct msg_conn_table {
	uint32_t	slot, nslots;	/* this worker's region, how many */
	uint32_t	entries;	/* per region */
	unsigned char	secret[CONNLIMIT_SECRET_LEN];
};

enum sasl_msg_kind { SASL_MSG_START = 1, SASL_MSG_CONTINUE, SASL_MSG_CANCEL };

struct msg_sasl {
	uint64_t	req;
	uint64_t	deadline_ms;	/* as in msg_verify */
	uint32_t	kind;		/* enum sasl_msg_kind */
	uint32_t	plaintext_ok;	/* PLAIN/LOGIN allowed on this connection */
	uint32_t	has_in;		/* START: an initial response was given */
	uint32_t	inlen;
	char		mech[32];
	char		ip[SESSION_IP_LEN];
	struct sasl_channel channel;	/* START only */
	unsigned char	in[SASL_RESPONSE_MAX];
};
_Static_assert(sizeof(struct msg_sasl) <= IPC_MAX,
    "a SASL response must fit one IPC message");

struct msg_sasl_reply {
	uint64_t	req;
	int32_t		step;		/* enum sasl_step */
	uint32_t	reason;		/* SASL_TEMPFAIL: enum proto_refusal */
	uint32_t	delay_ms;	/* failed: wait this long before -ERR */
	uint32_t	uid, gid;	/* SASL_OK */
	uint32_t	outlen;
	char		user[AUTH_USER_MAX + 1];	/* claimed or proven */
	char		ticket[PROTO_TICKET_LEN + 1];	/* SASL_OK */
	unsigned char	out[SASL_CHALLENGE_MAX];
};

/* The auth worker that issued a ticket (its first two hex digits), or -1. */
static inline int
proto_ticket_worker(const char *ticket)
{
	int n = 0;

	for (int i = 0; i < 2; i++) {
		char c = ticket[i];

		if (c >= '0' && c <= '9')
			n = n * 16 + (c - '0');
		else if (c >= 'a' && c <= 'f')
			n = n * 16 + (c - 'a' + 10);
		else
			return -1;
	}
	return n < PROTO_AUTH_WORKERS_MAX ? n : -1;
}
/* An address in a delivery: RFC 5321 sec. 4.5.3.1.3 (lmtp_cmds.h). */
#define PROTO_ADDR_MAX		256
#define PROTO_REASON_MAX	160

/* Answered with MSG_AUTH_ACCOUNT: result, uid, gid and the account. */
struct msg_lookup {
	uint64_t	req;
	char		user[AUTH_USER_MAX + 1];
};

/* The uid the master routes by; the deliver worker checks it with auth. */
struct msg_deliver_channel {
	uint32_t	uid, gid;
};

struct msg_deliver {
	uint64_t	req;
	char		session[SESSION_ID_LEN + 1];
	char		user[AUTH_USER_MAX + 1];	/* passwd-file name */
	char		sender[PROTO_ADDR_MAX + 1];	/* "" = null sender */
	char		rcpt[PROTO_ADDR_MAX + 1];	/* as given in RCPT */
	/* Random, in the stored name: lets a probe find it (store.h). */
	char		token[STORE_TOKEN_LEN + 1];
};

struct msg_delivered {
	uint64_t	req;
	int32_t		result;		/* enum store_result */
	char		reason[PROTO_REASON_MAX];	/* for the log */
};

#define PROTO_STR_OK(field) (memchr((field), '\0', sizeof(field)) != NULL)

/* Copy a received payload into *out if its length is exactly right. */
static inline bool
proto_take(const void *data, size_t len, void *out, size_t size)
{
	if (len != size)
		return false;
	memcpy(out, data, size);
	return true;
}

#endif
