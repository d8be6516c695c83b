/*
 * Messages between postinod's roles (see DESIGN.md). Fixed-size structures:
 * the receiver checks the length and that every string is NUL-terminated
 * (PROTO_STR_OK) before it uses a field.
 */
#ifndef POSTINO_PROTO_H
#define POSTINO_PROTO_H

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "../auth/auth.h"
#include "session.h"

#define PROTO_TICKET_LEN	32	/* hex digits of 128 random bits */
#define PROTO_TS_MAX		128	/* APOP timestamp */

enum proto_type {
	MSG_AUTH_CHANNEL = 1,	/* master -> login/mail: fd is a channel to auth */
	MSG_AUTH_ATTACH,	/* master -> auth: fd is a new client channel */
	MSG_AUTH_VERIFY,	/* login -> auth */
	MSG_AUTH_VERDICT,	/* auth -> login */
	MSG_AUTH_REDEEM,	/* mail -> auth */
	MSG_AUTH_ACCOUNT,	/* auth -> mail */
	MSG_HANDOFF,		/* login -> master -> mail; fd is the client */
	MSG_SHUTDOWN,		/* master -> worker: finish and exit */
	MSG_SESSION_END,	/* mail -> master: one hand-off is over */
	MSG_IDLE,		/* mail -> master: no session for a while */
	MSG_TLS_CONFIG,		/* master -> login: fd is a memfd, cert + key PEM */
	MSG_READY,		/* login -> master: has auth (and TLS): serving */
};

enum proto_method { METHOD_USER = 1, METHOD_APOP };

struct msg_verify {
	uint64_t	req;
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
	uint32_t	inlen, outlen;
	char		in[SESSION_IN_MAX];	/* pipelined after PASS */
	char		out[SESSION_HANDOVER_OUT];	/* replies not yet sent */
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
