/*
 * The login role in two parts: login.c, the role (accepting, TLS, the
 * hand-off, the messages of the other roles), and login_cmds.c, the
 * AUTHORIZATION state's commands and the auth role's answers to them.
 * The commands reach the role only through the calls below, so a test
 * can run them on a socketpair with its own.
 */
#ifndef POSTINO_LOGIN_H
#define POSTINO_LOGIN_H

#include <stdbool.h>
#include <stdint.h>

#include "../auth/auth.h"
#include "../lib/ev.h"
#include "../lib/ipc.h"
#include "../lib/tls.h"
#include "config.h"
#include "connlimit.h"
#include "rolemsg.h"
#include "session.h"

struct login_conn {
	struct session	 s;
	unsigned int	 failures;
	struct login_conn *prev, *next;
	struct ev_timer	 deadline;	/* login_timeout for the whole AUTHORIZATION */
	struct ev_timer	 delay;		/* failed-auth delay: login_fail_delayed */
	uint64_t	 req;		/* pending auth request, 0 = none */
	uint64_t	 sasl_req;	/* SASL exchange under way, 0 = none */
	unsigned int	 auth_idx;	/* auth worker of req and sasl_req */
	uint32_t	 method;
	char		 mech[32];	/* SASL mechanism, for the log */
	enum auth_result verdict;
	bool		 have_user;
	bool		 implicit_tls;	/* greet after the handshake */
	struct connlimit_ref lim;	/* counted against its address */
	char		 user[AUTH_USER_MAX + 1];
	char		 timestamp[PROTO_TS_MAX];
};

/* --- login.c: what the commands ask of the role ------------------------ */

/* The certificate for STLS; NULL: no TLS. */
struct tls_ctx *login_tls_ctx(void);
/* The auth worker for c's network (sets c->auth_idx); NULL: none now. */
struct ipc *login_auth_for(struct login_conn *c);
/* Logged in: pass c on to a mail worker with v's ticket. */
void login_handoff(struct login_conn *c, const struct msg_verdict *v);
/* A ticket that will not be handed off goes back to its issuer. */
void login_ticket_release(const char *ticket);

/* --- login_cmds.c: the AUTHORIZATION state ----------------------------- */

/* The commands (RFC 1939 sec. 4, RFC 2449, RFC 2595, RFC 5034). */
extern const struct session_cmd login_commands[];
/* Before the first command: cf for the commands, the table of waiters. */
void login_cmds_init(const struct config *cf);
void login_cmds_end(void);
/* c is closing: what it asked the auth role is cancelled there. */
void login_cancel(struct login_conn *c);
/* What CAPA offers on s, for the mail role's CAPA after the hand-off. */
unsigned int login_capa_flags(const struct session *s);
/* The SASL mechanisms AUTH offers on s, space-separated. */
void login_sasl_mechs(struct session *s, char *buf, size_t size);
/* SASL continuation lines (session_ops.intercept). */
enum cmd_result login_sasl_line(struct session *s, char *line, size_t len);
/* The exchange is over here; tell_auth: cancel it in the auth role too. */
void login_sasl_end(struct login_conn *c, bool tell_auth);
/* The request *req waited for is answered or given up. */
void login_req_end(uint64_t *req);
/* The line fail2ban matches (README.md). */
void login_log_auth(struct login_conn *c, const char *result);
/* The failure delay ran out: answer the command that failed. */
void login_fail_delayed(struct ev *e, void *arg);
/* The auth role's answers: MSG_AUTH_VERDICT and MSG_SASL_REPLY. */
void login_on_verdict(const struct ipc_msg *msg);
void login_on_sasl_reply(const struct ipc_msg *msg);

#endif
