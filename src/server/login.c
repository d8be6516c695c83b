/*
 * The login role: accepts connections and runs the AUTHORIZATION state for
 * thousands of them in one event loop, chrooted to an empty directory as an
 * unprivileged user. It sees no mail and no password hash: credentials go to
 * the auth role, and a logged-in connection is handed, with any input the
 * client pipelined after PASS, to a mail worker through the master.
 */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../lib/cidr.h"
#include "../lib/ev.h"
#include "../lib/ipc.h"
#include "../lib/log.h"
#include "../lib/net.h"
#include "../lib/priv.h"
#include "../lib/proxyproto.h"
#include "../lib/sandbox.h"
#include "../lib/tls.h"
#include "../lib/base64.h"
#include "../auth/sasl.h"
#include "capa.h"
#include "connlimit.h"
#include "limits.h"
#include "penalty.h"
#include "proto.h"
#include "proxy.h"
#include "role.h"
#include "roles.h"

struct login_conn {
	struct session	 s;
	unsigned int	 failures;
	struct login_conn *prev, *next;
	struct ev_timer	 deadline;	/* login_timeout for the whole AUTHORIZATION */
	struct ev_timer	 delay;		/* failed-auth delay */
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

static const struct config *cf;
static struct ev *ev;
static struct login_conn *conns;
static unsigned int nconns;
static int listen_fds[CONFIG_LISTEN_MAX];	/* plain, then implicit TLS */
static unsigned int nlisten;
static struct tls_ctx *tls_ctx;		/* from the master; NULL: no TLS */
static uint64_t next_req = 1;
static bool shutting_down;
static struct ev_timer accept_pause;
static bool conn_table_seen;
/*
 * Refused connections logged per second and worker: enough for fail2ban,
 * too few for a flood to fill the disk; the rest are counted in one line.
 */
#define REFUSAL_LOGS_PER_SEC	10

static void conn_tls_ready(struct session *s);
static enum cmd_result sasl_line(struct session *s, char *line, size_t len);
static void log_auth(struct login_conn *c, const char *result);
static void sasl_send(struct login_conn *c, uint32_t kind,
    const unsigned char *in, size_t inlen, bool has_in);

/*
 * The auth worker for this client's network (penalty_route()), so its
 * penalty holds across connections and login workers; NULL while that
 * worker is being restarted.
 */
static struct ipc *
auth_for(struct login_conn *c)
{
	if (role_nauth() == 0)
		return NULL;
	c->auth_idx = penalty_route(c->s.ip) % role_nauth();
	return role_auth(c->auth_idx);
}

/* A ticket that will not be handed off: give it back to its issuer. */
static void
ticket_release(const char *ticket)
{
	struct msg_release rl = { 0 };
	int w = proto_ticket_worker(ticket);

	struct ipc *a = w < 0 ? NULL : role_auth((unsigned int)w);

	if (a == NULL)
		return;
	str_copy(rl.ticket, sizeof(rl.ticket), ticket);
	ipc_send(a, MSG_AUTH_RELEASE, &rl, sizeof(rl), -1);
	explicit_bzero(&rl, sizeof(rl));
}

static void
conn_closed(struct session *s)
{
	struct login_conn *c = s->owner;

	/* Gone before its verdict: the check is dropped unless under way. */
	if (c->req != 0 || c->sasl_req != 0)
		log_auth(c, "gone");
	if (c->req != 0 && role_auth(c->auth_idx) != NULL) {
		struct msg_cancel m = { .req = c->req };

		ipc_send(role_auth(c->auth_idx), MSG_AUTH_CANCEL, &m, sizeof(m),
		    -1);
	}
	if (c->sasl_req != 0)
		sasl_send(c, SASL_MSG_CANCEL, NULL, 0, false);
	ev_timer_stop(ev, &c->deadline);
	ev_timer_stop(ev, &c->delay);
	connlimit_release(&c->lim);
	if (c->prev)
		c->prev->next = c->next;
	else
		conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	nconns--;
	explicit_bzero(c, sizeof(*c));
	free(c);
}

static const char *
method_name(const struct login_conn *c)
{
	if (c->method == METHOD_SASL)
		return c->mech;
	return c->method == METHOD_APOP ? "APOP" : "USER";
}

static void
log_auth(struct login_conn *c, const char *result)
{
	char user[AUTH_USER_MAX * 4 + 1];

	str_sanitize(user, sizeof(user), c->user, strlen(c->user));
	/* The stable line fail2ban matches; documented in README.md. */
	log_info("session=%s event=login result=%s user=\"%s\" method=%s ip=%s",
	    c->s.id, result, user, method_name(c), c->s.ip);
}

/*
 * Whether the client already closed its side (its FIN is queued behind
 * the command): then nobody waits for the verdict and no check is asked
 * for. A flood that sends USER/PASS and closes costs no hash (issue 10,
 * finding 1). The session would end at its next read anyway.
 */
static bool
client_gone(const struct login_conn *c)
{
	ssize_t n;
	char b;

	n = recv(c->s.fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
	/* A reset (the client closed with our greeting unread) is gone too. */
	return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK &&
	    errno != EINTR);
}

static enum cmd_result
send_verify(struct login_conn *c, const char *secret)
{
	struct ipc *a = auth_for(c);
	struct msg_verify *v;

	if (client_gone(c)) {
		log_auth(c, "gone");
		return CMD_CLOSE;
	}
	if (a == NULL) {
		session_reply(&c->s, "-ERR [SYS/TEMP] Authentication is "
		    "unavailable, try later.");
		return CMD_BAD;
	}
	v = calloc(1, sizeof(*v));
	if (v == NULL) {
		session_reply(&c->s, "-ERR [SYS/TEMP] Out of memory.");
		return CMD_BAD;
	}
	v->req = c->req = next_req++;
	/* Not worth checking once the client's time to log in is over. */
	v->deadline_ms = c->deadline.when_ms;
	v->method = c->method;
	str_copy(v->session, sizeof(v->session), c->s.id);
	str_copy(v->ip, sizeof(v->ip), c->s.ip);
	str_copy(v->user, sizeof(v->user), c->user);
	str_copy(v->timestamp, sizeof(v->timestamp), c->timestamp);
	if (str_copy(v->pass, sizeof(v->pass), secret) < 0) {
		explicit_bzero(v, sizeof(*v));
		free(v);
		c->req = 0;
		log_auth(c, "fail");
		session_reply(&c->s, "-ERR [AUTH] Authentication failed.");
		return CMD_BAD;
	}
	if (ipc_send(a, MSG_AUTH_VERIFY, v, sizeof(*v), -1) < 0) {
		/* Our fault, not the password's: never "[AUTH]" here. */
		explicit_bzero(v, sizeof(*v));
		free(v);
		c->req = 0;
		log_auth(c, "busy");
		session_reply(&c->s, "-ERR [SYS/TEMP] Authentication is busy, "
		    "try later.");
		return CMD_BAD;
	}
	explicit_bzero(v, sizeof(*v));
	free(v);
	session_suspend(&c->s);
	return CMD_ASYNC;
}

static bool
is_loopback(const char *ip)
{
	return strncmp(ip, "127.", 4) == 0 || strcmp(ip, "::1") == 0 ||
	    strncmp(ip, "::ffff:127.", 11) == 0;
}

/* auth_allow_cleartext = no: passwords only over TLS, or from this host. */
static bool
cleartext_ok(const struct session *s)
{
	return cf->auth_allow_cleartext || s->tls != NULL ||
	    (cf->auth_cleartext_loopback && is_loopback(s->ip));
}

static enum cmd_result
refuse_cleartext(struct session *s)
{
	session_reply(s, "-ERR [AUTH] Plaintext authentication disallowed on "
	    "non-secure (SSL/TLS) connections.");
	return CMD_BAD;
}

static unsigned int
capa_flags(const struct session *s)
{
	unsigned int f = CAPA_AUTHORIZATION;

	if (tls_ctx != NULL && s->tls == NULL)
		f |= CAPA_STLS;
	if (cleartext_ok(s))
		f |= CAPA_USER;
	return f;
}

/* Whether auth_mechanisms names this one (len octets of name). */
static bool
mech_configured(const char *name, size_t len)
{
	int id = sasl_mechs_lookup(name, len);

	return id >= 0 && (cf->auth_mechs & SASL_MECH_BIT(id)) != 0;
}

/* SASL flags and channel of this connection: what AUTH may offer now. */
static unsigned int
sasl_flags(const struct session *s)
{
	unsigned int f = 0;

	if (cleartext_ok(s))
		f |= SASL_ALLOW_PLAINTEXT;
	if (cf->auth_mechs & SASL_MECH_BIT(SASL_MECH_CRAM_MD5))
		f |= SASL_ALLOW_CRAM_MD5;
	/* The config refuses OAuth mechanisms without a validator. */
	if (cf->oauth2_jwt_key[0] != '\0')
		f |= SASL_ALLOW_OAUTH;
	return f;
}

static void
sasl_channel_of(struct session *s, struct sasl_channel *ch)
{
	ssize_t n;

	memset(ch, 0, sizeof(*ch));
	if (s->tls == NULL)
		return;
	ch->tls = true;
	/*
	 * Binding data makes -PLUS offered and a client's "y" flag a downgrade
	 * (RFC 5802 sec. 6): without -PLUS configured, "y" is the right answer.
	 */
	if (!(cf->auth_mechs & SASL_MECH_BIT(SASL_MECH_SCRAM_PLUS)))
		return;
	n = tls_channel_binding(s->tls, "tls-server-end-point", ch->end_point,
	    sizeof(ch->end_point));
	ch->end_point_len = n > 0 ? (size_t)n : 0;
	n = tls_channel_binding(s->tls, "tls-exporter", ch->exporter,
	    sizeof(ch->exporter));
	ch->exporter_len = n > 0 ? (size_t)n : 0;
}

static void
sasl_mech_list(struct session *s, char *buf, size_t size)
{
	struct sasl_channel ch;

	char all[SASL_MECHS_LEN];
	size_t o = 0;

	sasl_channel_of(s, &ch);
	buf[0] = '\0';
	if (sasl_mechanisms(all, sizeof(all), sasl_flags(s), s->tls ? &ch :
	    NULL) < 0)
		return;
	/* What works on this connection, and the administrator allows. */
	for (const char *w = all; *w != '\0';) {
		size_t l = strcspn(w, " ");

		if (mech_configured(w, l) && o + l + 2 <= size) {
			if (o > 0)
				buf[o++] = ' ';
			memcpy(buf + o, w, l);
			o += l;
			buf[o] = '\0';
		}
		w += l + (w[l] == ' ');
	}
}

static enum cmd_result
cmd_stls(struct session *s, const struct pop3_args *a)
{
	struct login_conn *c = s->owner;

	(void)a;
	if (s->tls != NULL) {
		session_reply(s, "-ERR Already using TLS.");
		return CMD_BAD;
	}
	if (tls_ctx == NULL) {
		session_reply(s, "-ERR TLS is not available.");
		return CMD_BAD;
	}
	session_reply(s, "+OK Begin TLS negotiation.");
	/* RFC 2595 sec. 4: the session starts over; forget the user. */
	c->have_user = false;
	if (session_start_tls(s, tls_ctx, false) < 0)
		return CMD_CLOSE;
	return CMD_OK;
}

static enum cmd_result
cmd_user(struct session *s, const struct pop3_args *a)
{
	struct login_conn *c = s->owner;

	if (!cleartext_ok(s))
		return refuse_cleartext(s);

	if (strlen(a->argv[0]) > AUTH_USER_MAX) {
		session_reply(s, "-ERR [AUTH] User name too long.");
		return CMD_BAD;
	}
	str_copy(c->user, sizeof(c->user), a->argv[0]);
	c->have_user = true;
	session_reply(s, "+OK");
	return CMD_OK;
}

static enum cmd_result
cmd_pass(struct session *s, const struct pop3_args *a)
{
	struct login_conn *c = s->owner;

	if (!cleartext_ok(s))
		return refuse_cleartext(s);
	if (!c->have_user) {
		session_reply(s, "-ERR USER first.");
		return CMD_BAD;
	}
	c->have_user = false;
	if (a->argc == 0) {
		session_reply(s, "-ERR [AUTH] Authentication failed.");
		return CMD_BAD;
	}
	c->method = METHOD_USER;
	return send_verify(c, a->argv[0]);
}

static enum cmd_result
cmd_apop(struct session *s, const struct pop3_args *a)
{
	struct login_conn *c = s->owner;

	if (!cf->apop) {
		session_reply(s, "-ERR APOP is not enabled.");
		return CMD_BAD;
	}
	if (strlen(a->argv[0]) > AUTH_USER_MAX || strlen(a->argv[1]) != 32) {
		session_reply(s, "-ERR [AUTH] Authentication failed.");
		return CMD_BAD;
	}
	c->have_user = false;
	str_copy(c->user, sizeof(c->user), a->argv[0]);
	c->method = METHOD_APOP;
	return send_verify(c, a->argv[1]);
}

static enum cmd_result
cmd_capa(struct session *s, const struct pop3_args *a)
{
	char mechs[SASL_MECHS_LEN];

	(void)a;
	sasl_mech_list(s, mechs, sizeof(mechs));
	capa_reply(s, cf, capa_flags(s), mechs);
	return CMD_OK;
}

static enum cmd_result
cmd_quit(struct session *s, const struct pop3_args *a)
{
	(void)a;
	session_reply(s, "+OK Bye.");
	return CMD_CLOSE;
}

static void
sasl_send(struct login_conn *c, uint32_t kind, const unsigned char *in,
    size_t inlen, bool has_in)
{
	struct msg_sasl *m = calloc(1, sizeof(*m));
	struct ipc *a = role_auth(c->auth_idx);

	if (m == NULL || a == NULL || inlen > sizeof(m->in)) {
		free(m);
		session_intercept(&c->s, 0);
		c->sasl_req = 0;
		if (kind != SASL_MSG_CANCEL) {
			session_reply(&c->s, "-ERR [SYS/TEMP] Authentication is "
			    "unavailable, try later.");
			session_resume(&c->s);
		}
		return;
	}
	m->req = c->sasl_req;
	m->deadline_ms = c->deadline.when_ms;
	m->kind = kind;
	m->plaintext_ok = cleartext_ok(&c->s);
	m->has_in = has_in;
	m->inlen = (uint32_t)inlen;
	str_copy(m->mech, sizeof(m->mech), c->mech);
	str_copy(m->ip, sizeof(m->ip), c->s.ip);
	if (kind == SASL_MSG_START)
		sasl_channel_of(&c->s, &m->channel);
	if (inlen > 0)
		memcpy(m->in, in, inlen);
	if (ipc_send(a, MSG_SASL_STEP, m, sizeof(*m), -1) < 0 &&
	    kind != SASL_MSG_CANCEL) {
		explicit_bzero(m, sizeof(*m));
		free(m);
		session_intercept(&c->s, 0);
		c->sasl_req = 0;
		log_auth(c, "busy");
		session_reply(&c->s, "-ERR [SYS/TEMP] Authentication is busy, "
		    "try later.");
		session_resume(&c->s);
		return;
	}
	explicit_bzero(m, sizeof(*m));
	free(m);
	if (kind != SASL_MSG_CANCEL)
		session_suspend(&c->s);
}

/* End an exchange on our side (and in the auth role unless it ended there). */
static void
sasl_end(struct login_conn *c, bool tell_auth)
{
	if (tell_auth && c->sasl_req != 0)
		sasl_send(c, SASL_MSG_CANCEL, NULL, 0, false);
	c->sasl_req = 0;
	session_intercept(&c->s, 0);
}

/* A continuation line during an exchange (RFC 5034 sec. 4). */
static enum cmd_result
sasl_line(struct session *s, char *line, size_t len)
{
	struct login_conn *c = s->owner;
	unsigned char buf[SASL_RESPONSE_MAX];
	size_t n = 0;
	int r = sasl_decode_response(line, len, false, buf, sizeof(buf), &n);

	explicit_bzero(line, len);
	if (r != 0) {
		sasl_end(c, true);
		if (r == 1) {
			session_reply(s, "-ERR Authentication cancelled.");
			return CMD_ASYNC;
		}
		session_reply(s, "-ERR Invalid base64 data.");
		return CMD_BAD;
	}
	sasl_send(c, SASL_MSG_CONTINUE, buf, n, true);
	explicit_bzero(buf, sizeof(buf));
	return CMD_ASYNC;
}

static enum cmd_result
cmd_auth(struct session *s, const struct pop3_args *a)
{
	struct login_conn *c = s->owner;
	char mechs[SASL_MECHS_LEN], want[sizeof(c->mech)];
	unsigned char buf[SASL_RESPONSE_MAX];
	size_t n = 0, i;
	const char *w;

	sasl_mech_list(s, mechs, sizeof(mechs));
	if (a->argc == 0) {
		/* The mechanisms, one per line (RFC 1734 style listing). */
		session_reply(s, "+OK");
		for (w = mechs; *w != '\0';) {
			size_t l = strcspn(w, " ");

			session_reply(s, "%.*s", (int)l, w);
			w += l + (w[l] == ' ');
		}
		session_reply(s, ".");
		return CMD_OK;
	}
	if (strlen(a->argv[0]) >= sizeof(want)) {
		session_reply(s, "-ERR Unsupported authentication mechanism.");
		return CMD_BAD;
	}
	for (i = 0; a->argv[0][i] != '\0'; i++)
		want[i] = (char)(a->argv[0][i] >= 'a' && a->argv[0][i] <= 'z' ?
		    a->argv[0][i] - 'a' + 'A' : a->argv[0][i]);
	want[i] = '\0';
	for (w = mechs; *w != '\0';) {
		size_t l = strcspn(w, " ");

		if (l == i && memcmp(w, want, l) == 0)
			break;
		w += l + (w[l] == ' ');
	}
	if (*w == '\0') {
		if (!cleartext_ok(s) && sasl_mechs_sends_secret(
		    sasl_mechs_lookup(want, i)))
			return refuse_cleartext(s);
		session_reply(s, "-ERR Unsupported authentication mechanism.");
		return CMD_BAD;
	}
	if (a->argc == 2 && sasl_decode_response(a->argv[1],
	    strlen(a->argv[1]), true, buf, sizeof(buf), &n) != 0) {
		session_reply(s, "-ERR Invalid base64 data.");
		return CMD_BAD;
	}
	c->have_user = false;
	c->user[0] = '\0';
	c->method = METHOD_SASL;
	str_copy(c->mech, sizeof(c->mech), want);
	if (client_gone(c)) {
		log_auth(c, "gone");
		return CMD_CLOSE;
	}
	if (auth_for(c) == NULL) {
		session_reply(s, "-ERR [SYS/TEMP] Authentication is "
		    "unavailable, try later.");
		return CMD_BAD;
	}
	c->sasl_req = next_req++;
	/*
	 * Continuation lines may be longer than commands (RFC 5034 sec. 4):
	 * a whole SASL response in base64 and CRLF, an OAuth token's size.
	 */
	session_intercept(s, SASL_RESPONSE_B64_MAX + 2);
	sasl_send(c, SASL_MSG_START, buf, n, a->argc == 2);
	explicit_bzero(buf, sizeof(buf));
	return CMD_ASYNC;
}

static const struct session_cmd auth_commands[] = {
	{ "USER", 1, 1, false, 0, cmd_user },
	{ "PASS", 0, 1, true, 1, cmd_pass },
	{ "APOP", 2, 2, false, 2, cmd_apop },
	{ "CAPA", 0, 0, false, 0, cmd_capa },
	{ "STLS", 0, 0, false, 0, cmd_stls },
	{ "AUTH", 0, 2, false, 2, cmd_auth },
	{ "QUIT", 0, 0, false, 0, cmd_quit },
	{ NULL, 0, 0, false, 0, NULL },
};

static const struct session_ops login_ops = {
	.commands = auth_commands,
	.closed = conn_closed,
	.tls_ready = conn_tls_ready,
	.intercept = sasl_line,
};

/*
 * Pass the logged-in connection to a mail worker through the master. A TLS
 * connection stays here: the mail worker gets one end of a socketpair and
 * this worker relays plaintext (the TLS key never leaves the login role).
 */
static void
handoff(struct login_conn *c, const struct msg_verdict *v)
{
	struct msg_handoff *h = calloc(1, sizeof(*h));
	struct session_handover *ho = calloc(1, sizeof(*ho));
	int sv[2] = { -1, -1 }, give;

	if (h == NULL || ho == NULL || (c->s.tls != NULL &&
	    socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0,
	    sv) < 0)) {
		ticket_release(v->ticket);
		session_reply(&c->s, "-ERR [SYS/TEMP] Out of resources, try "
		    "later.");
		session_end(&c->s);
		goto out;
	}
	h->uid = v->uid;
	h->gid = v->gid;
	h->port = c->s.port;
	h->method = c->method;
	str_copy(h->session, sizeof(h->session), c->s.id);
	str_copy(h->ip, sizeof(h->ip), c->s.ip);
	str_copy(h->user, sizeof(h->user), c->user);
	memcpy(h->ticket, v->ticket, sizeof(h->ticket));
	h->capa = capa_flags(&c->s);
	sasl_mech_list(&c->s, h->sasl, sizeof(h->sasl));
	if (session_detach(&c->s, ho) < 0) {
		log_warnx("session=%s event=handoff-failed reason=output",
		    h->session);
		ticket_release(v->ticket);
		session_close(&c->s);
		goto out;
	}
	/* c is gone now. */
	memcpy(h->in, ho->in, ho->inlen);
	h->inlen = (uint32_t)ho->inlen;
	if (ho->tls == NULL) {
		memcpy(h->out, ho->out, ho->outlen);
		h->outlen = (uint32_t)ho->outlen;
		give = ho->fd;
	} else {
		give = sv[1];
		if (proxy_start(ev, ho->tls, ho->fd, sv[0], h->session, ho->out,
		    ho->outlen, cf->idle_timeout * 1000) < 0) {
			log_warnx("session=%s event=handoff-failed reason=proxy",
			    h->session);
			tls_conn_free(&ho->tls);
			close(ho->fd);
			close(sv[0]);
			give = -1;
		}
		sv[0] = -1;
	}
	if (give < 0 ||
	    role_send(MSG_HANDOFF, h, sizeof(*h), give) < 0) {
		if (give >= 0)
			log_warnx("session=%s event=handoff-failed",
			    h->session);
		ticket_release(h->ticket);
	}
	if (give >= 0)
		close(give);
	if (ho->tls == NULL)
		sv[1] = -1;
	else if (give == sv[1])
		sv[1] = -1;
out:
	if (sv[0] >= 0)
		close(sv[0]);
	if (sv[1] >= 0)
		close(sv[1]);
	if (h != NULL)
		explicit_bzero(h, sizeof(*h));
	if (ho != NULL)
		explicit_bzero(ho, sizeof(*ho));
	free(h);
	free(ho);
}

static void
fail_delayed(struct ev *e, void *arg)
{
	struct login_conn *c = arg;

	(void)e;
	if (c->verdict == AUTH_TEMPFAIL)
		session_reply(&c->s, "-ERR [SYS/TEMP] Temporary authentication "
		    "failure, try later.");
	else
		session_reply(&c->s, "-ERR [AUTH] Authentication failed.");
	if (++c->failures >= LOGIN_FAILURES_MAX) {
		log_info("session=%s event=login-limit failures=%u ip=%s",
		    c->s.id, c->failures, c->s.ip);
		session_set_end(&c->s, "auth-failures");
		session_end(&c->s);
		return;
	}
	session_complete(&c->s, CMD_BAD);
}

/* The log's word for a verdict that is not "ok". */
static const char *
refusal_name(enum auth_result r, uint32_t reason)
{
	if (r != AUTH_TEMPFAIL)
		return "fail";
	return reason == REFUSE_PENALTY ? "penalty" :
	    reason == REFUSE_BUSY || reason == REFUSE_TICKETS ? "busy" :
	    "tempfail";
}

static void
on_verdict(const struct ipc_msg *msg)
{
	struct msg_verdict v;
	struct login_conn *c;

	if (!proto_take(msg->data, msg->len, &v, sizeof(v)) ||
	    !PROTO_STR_OK(v.ticket)) {
		log_warnx("event=protocol-error role=auth msg=verdict");
		return;
	}
	for (c = conns; c != NULL; c = c->next)
		if (c->req == v.req)
			break;
	if (c == NULL) {
		/* The client left meanwhile (logged then): free its ticket. */
		if (v.result == AUTH_OK)
			ticket_release(v.ticket);
		explicit_bzero(&v, sizeof(v));
		return;
	}
	c->req = 0;
	if (v.result == AUTH_OK) {
		log_auth(c, "ok");
		handoff(c, &v);
		explicit_bzero(&v, sizeof(v));
		return;
	}
	c->verdict = v.result == AUTH_TEMPFAIL ? AUTH_TEMPFAIL : AUTH_PERMFAIL;
	log_auth(c, refusal_name(c->verdict, v.reason));
	ev_timer_start(ev, &c->delay,
	    v.delay_ms > PENALTY_MAX_MS ? PENALTY_MAX_MS : v.delay_ms);
}

static void
on_sasl_reply(const struct ipc_msg *msg)
{
	struct msg_sasl_reply r;
	struct login_conn *c;
	char b64[BASE64_ENCODED_LEN(SASL_CHALLENGE_MAX) + 1];

	if (!proto_take(msg->data, msg->len, &r, sizeof(r)) ||
	    !PROTO_STR_OK(r.user) || !PROTO_STR_OK(r.ticket) ||
	    r.outlen > sizeof(r.out)) {
		log_warnx("event=protocol-error role=auth msg=sasl-reply");
		return;
	}
	for (c = conns; c != NULL; c = c->next)
		if (c->sasl_req != 0 && c->sasl_req == r.req)
			break;
	if (c == NULL) {
		/* Cancelled, or the client left: free its ticket. */
		if (r.step == SASL_OK)
			ticket_release(r.ticket);
		explicit_bzero(&r, sizeof(r));
		return;
	}
	str_copy(c->user, sizeof(c->user), r.user);
	switch (r.step) {
	case SASL_CONTINUE:
		if (base64_encode(b64, sizeof(b64), r.out, r.outlen) < 0)
			b64[0] = '\0';
		session_reply(&c->s, "+ %s", b64);
		session_complete(&c->s, CMD_ASYNC);
		return;
	case SASL_OK: {
		struct msg_verdict v = { .req = r.req, .result = AUTH_OK,
		    .uid = r.uid, .gid = r.gid };

		sasl_end(c, false);
		memcpy(v.ticket, r.ticket, sizeof(v.ticket));
		log_auth(c, "ok");
		handoff(c, &v);
		return;
	}
	case SASL_BAD:
		sasl_end(c, false);
		session_reply(&c->s, "-ERR Invalid SASL response.");
		session_complete(&c->s, CMD_BAD);
		return;
	default:
		sasl_end(c, false);
		c->verdict = r.step == SASL_TEMPFAIL ? AUTH_TEMPFAIL :
		    AUTH_PERMFAIL;
		log_auth(c, refusal_name(c->verdict, r.reason));
		/* Still suspended: fail_delayed() completes the command. */
		ev_timer_start(ev, &c->delay,
		    r.delay_ms > PENALTY_MAX_MS ? PENALTY_MAX_MS : r.delay_ms);
		return;
	}
}

/* Auth worker idx is gone: its pending requests fail temporarily. */
static void
fail_pending(unsigned int idx)
{
	for (struct login_conn *c = conns; c != NULL; c = c->next) {
		if ((c->req == 0 && c->sasl_req == 0) || c->auth_idx != idx)
			continue;
		c->req = 0;
		sasl_end(c, false);
		c->verdict = AUTH_TEMPFAIL;
		ev_timer_start(ev, &c->delay, 0);
	}
}

static void
auth_msg(unsigned int idx, struct ipc_msg *msg)
{
	if (msg == NULL) {
		log_warnx("event=auth-lost worker=%u", idx);
		fail_pending(idx);
		return;
	}
	if (msg->type == MSG_AUTH_VERDICT)
		on_verdict(msg);
	else if (msg->type == MSG_SASL_REPLY)
		on_sasl_reply(msg);
}

static void
deadline(struct ev *e, void *arg)
{
	struct login_conn *c = arg;

	(void)e;
	log_info("session=%s event=timeout state=authorization ip=%s",
	    c->s.id, c->s.ip);
	session_set_end(&c->s, "timeout");
	session_reply(&c->s, "-ERR Disconnected: no login in time.");
	session_end(&c->s);
}

static void on_listen(struct ev *e, int fd, unsigned int events, void *arg);
static void watch_listeners(void);

/* 0 when a connection was taken (or refused), -1 when there was none. */
static void
greet(struct login_conn *c)
{
	if (cf->apop) {
		/* RFC 1939 sec. 7: a timestamp unique to this greeting. */
		str_fmt(c->timestamp, sizeof(c->timestamp), "<%s.%ld@postino>",
		    c->s.id, (long)getpid());
		session_reply(&c->s, "+OK %s %s", cf->greeting, c->timestamp);
	} else {
		session_reply(&c->s, "+OK %s", cf->greeting);
	}
}

static void
conn_tls_ready(struct session *s)
{
	struct login_conn *c = s->owner;

	c->have_user = false;
	if (c->implicit_tls) {
		greet(c);
		session_resume(s);
	}
}

static void
log_refusal(const char *ip, const char *reason, unsigned int limit)
{
	static uint64_t second;
	static unsigned int logged, suppressed;
	uint64_t now = ev_now_ms() / 1000;

	if (now != second) {
		if (suppressed > 0)
			log_info("event=connection-refused suppressed=%u",
			    suppressed);
		second = now;
		logged = suppressed = 0;
	}
	if (logged++ < REFUSAL_LOGS_PER_SEC)
		log_info("event=connection-refused reason=%s ip=%s limit=%u",
		    reason, ip, limit);
	else
		suppressed++;
}

/* Tell a refused client why (not on a TLS port: no plaintext there), close. */
static void
refuse(int fd, bool implicit_tls, const char *msg, size_t len)
{
	if (!implicit_tls) {
		ssize_t w = send(fd, msg, len, MSG_NOSIGNAL);

		(void)w;
	}
	close(fd);
}

/*
 * Count the connection against its client's address (the socket's, or the
 * PROXY header's), then greet it or begin implicit TLS. proxy_ip: the
 * proxy it came through, for the log; NULL when it came directly.
 */
static void
conn_start(int fd, bool implicit_tls, const struct sockaddr_storage *ss,
    const char *proxy_ip)
{
	static const char per_ip[] = "-ERR [SYS/TEMP] Too many connections "
	    "from your address, try later.\r\n";
	struct login_conn *c;
	struct connlimit_ref lim;
	char addr[NET_ADDR_LEN], ip[SESSION_IP_LEN];
	uint16_t port;

	net_addr_str(ss, addr, sizeof(addr), ip, sizeof(ip), &port);
	switch (connlimit_acquire((const struct sockaddr *)ss, &lim)) {
	case CONNLIMIT_OK:
		break;
	case CONNLIMIT_IP:
		log_refusal(ip, "per-ip", cf->max_connections_per_ip);
		refuse(fd, implicit_tls, per_ip, sizeof(per_ip) - 1);
		return;
	case CONNLIMIT_NET:
		log_refusal(ip, "per-net", cf->max_connections_per_net);
		refuse(fd, implicit_tls, per_ip, sizeof(per_ip) - 1);
		return;
	case CONNLIMIT_FULL:
		log_refusal(ip, "table-full", 0);
		refuse(fd, implicit_tls, per_ip, sizeof(per_ip) - 1);
		return;
	}
	c = calloc(1, sizeof(*c));
	if (c == NULL) {
		connlimit_release(&lim);
		close(fd);
		return;
	}
	c->lim = lim;
	session_setup(&c->s, &(struct session_params){ .ip = ip,
	    .port = port, .idle_ms = cf->idle_timeout * 1000,
	    .max_bad = cf->max_bad_commands, .transcript = cf->transcript });
	ev_timer_init(&c->deadline, deadline, c);
	ev_timer_init(&c->delay, fail_delayed, c);
	if (session_start(&c->s, ev, fd, &login_ops, c, NULL, 0) < 0) {
		connlimit_release(&c->lim);
		close(fd);
		free(c);
		return;
	}
	c->next = conns;
	if (conns)
		conns->prev = c;
	conns = c;
	nconns++;
	ev_timer_start(ev, &c->deadline, (uint64_t)cf->login_timeout * 1000);
	log_info("session=%s event=connect ip=%s port=%u%s%s%s", c->s.id,
	    c->s.ip, c->s.port, implicit_tls ? " tls=implicit" : "",
	    proxy_ip != NULL ? " proxy=" : "",
	    proxy_ip != NULL ? proxy_ip : "");
	if (implicit_tls) {
		/* RFC 8314: TLS first; the greeting comes after the handshake. */
		c->implicit_tls = true;
		session_start_tls(&c->s, tls_ctx, true);
		return;
	}
	greet(c);
	session_resume(&c->s);
}

/*
 * A connection on a proxy listener before its PROXY header: from a trusted
 * proxy, not yet counted against any client address (its own is the
 * proxy's), and held at most PROXY_HEADER_TIMEOUT_MS.
 */
struct proxy_wait {
	int		 fd;
	bool		 implicit_tls;
	struct sockaddr_storage peer;
	struct ev_timer	 timer;
	struct proxy_wait *prev, *next;
	struct proxyproto pp;
};

static struct proxy_wait *waits;
static unsigned int nwaits;

static void
proxy_wait_free(struct proxy_wait *w, bool close_fd)
{
	ev_timer_stop(ev, &w->timer);
	ev_io_del(ev, w->fd);
	if (close_fd)
		close(w->fd);
	if (w->prev)
		w->prev->next = w->next;
	else
		waits = w->next;
	if (w->next)
		w->next->prev = w->prev;
	nwaits--;
	free(w);
}

static void
proxy_refused(struct proxy_wait *w, const char *reason)
{
	char addr[NET_ADDR_LEN], ip[SESSION_IP_LEN];
	uint16_t port;

	net_addr_str(&w->peer, addr, sizeof(addr), ip, sizeof(ip), &port);
	log_refusal(ip, reason, 0);
	proxy_wait_free(w, true);
}

static void
proxy_timeout(struct ev *e, void *arg)
{
	(void)e;
	proxy_refused(arg, "proxy-timeout");
}

static void
proxy_readable(struct ev *e, int fd, unsigned int events, void *arg)
{
	struct proxy_wait *w = arg;
	unsigned char buf[PROXYPROTO_MAX];
	struct proxyproto_result r;
	enum proxyproto_state st;
	size_t used;
	ssize_t n;

	(void)e;
	(void)events;
	/*
	 * Peek, let the parser take what belongs to the header, and consume
	 * only that: what follows (a ClientHello) stays for the session.
	 */
	n = recv(fd, buf, sizeof(buf) - w->pp.len, MSG_PEEK);
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK ||
	    errno == EINTR))
		return;
	/*
	 * Closed before a single octet: HAProxy's plain `check` (a TCP
	 * connect), every few seconds; logging it would only be noise.
	 */
	if (n == 0 && w->pp.len == 0) {
		proxy_wait_free(w, true);
		return;
	}
	if (n <= 0) {
		proxy_refused(w, n == 0 ? "proxy-closed" : "proxy-error");
		return;
	}
	st = proxyproto_feed(&w->pp, buf, (size_t)n, &used, &r);
	if (used > 0 && recv(fd, buf, used, 0) != (ssize_t)used) {
		proxy_refused(w, "proxy-error");
		return;
	}
	if (st == PROXYPROTO_MORE)
		return;
	if (st == PROXYPROTO_BAD) {
		char addr[NET_ADDR_LEN], ip[SESSION_IP_LEN];
		uint16_t port;

		net_addr_str(&w->peer, addr, sizeof(addr), ip, sizeof(ip),
		    &port);
		log_info("event=proxy-header-refused reason=%s proxy=%s",
		    w->pp.why, ip);
		proxy_wait_free(w, true);
		return;
	}
	{
		char addr[NET_ADDR_LEN], proxy_ip[SESSION_IP_LEN];
		struct sockaddr_storage client;
		bool implicit_tls = w->implicit_tls;
		uint16_t port;

		net_addr_str(&w->peer, addr, sizeof(addr), proxy_ip,
		    sizeof(proxy_ip), &port);
		/* LOCAL (a health check), UNKNOWN: the proxy's own address. */
		client = r.has_addr ? r.src : w->peer;
		proxy_wait_free(w, false);
		conn_start(fd, implicit_tls, &client, proxy_ip);
	}
}

static void
proxy_wait_start(int fd, bool implicit_tls, const struct sockaddr_storage *ss)
{
	struct proxy_wait *w;

	if (!cidr_match(&cf->proxy_trusted, (const struct sockaddr *)ss)) {
		char addr[NET_ADDR_LEN], ip[SESSION_IP_LEN];
		uint16_t port;

		/* No reply: the peer speaks PROXY, or is someone else. */
		net_addr_str(ss, addr, sizeof(addr), ip, sizeof(ip), &port);
		log_refusal(ip, "proxy-untrusted", 0);
		close(fd);
		return;
	}
	w = calloc(1, sizeof(*w));
	if (w == NULL) {
		close(fd);
		return;
	}
	w->fd = fd;
	w->implicit_tls = implicit_tls;
	w->peer = *ss;
	proxyproto_init(&w->pp);
	ev_timer_init(&w->timer, proxy_timeout, w);
	if (ev_io_set(ev, fd, EV_READ, proxy_readable, w) < 0) {
		close(fd);
		free(w);
		return;
	}
	w->next = waits;
	if (waits)
		waits->prev = w;
	waits = w;
	nwaits++;
	ev_timer_start(ev, &w->timer, PROXY_HEADER_TIMEOUT_MS);
}

static int
accept_one(int lfd, bool implicit_tls, bool proxy)
{
	struct sockaddr_storage ss;
	socklen_t sslen = sizeof(ss);
	int fd;

	fd = accept4(lfd, (struct sockaddr *)&ss, &sslen,
	    SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (fd < 0) {
		if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS ||
		    errno == ENOMEM) {
			log_warn("event=accept-paused");
			for (unsigned int i = 0; i < nlisten; i++)
				ev_io_set(ev, listen_fds[i], 0, on_listen, NULL);
			ev_timer_start(ev, &accept_pause, ACCEPT_PAUSE_MS);
		}
		return -1;
	}
	if (nconns + nwaits + proxy_count() >= cf->max_sessions ||
	    shutting_down) {
		static const char busy[] = "-ERR [SYS/TEMP] Too many connections, "
		    "try later.\r\n";

		/* No reply before a proxy's header: it would read it as one. */
		if (proxy)
			close(fd);
		else
			refuse(fd, implicit_tls, busy, sizeof(busy) - 1);
		return 0;
	}
	/* Per-address limits wait for the header's address. */
	if (proxy)
		proxy_wait_start(fd, implicit_tls, &ss);
	else
		conn_start(fd, implicit_tls, &ss, NULL);
	return 0;
}

static void
on_listen(struct ev *e, int fd, unsigned int events, void *arg)
{
	(void)e;
	(void)events;
	(void)arg;
	bool implicit_tls = false, proxy = false;

	for (unsigned int i = 0; i < nlisten; i++) {
		if (listen_fds[i] != fd)
			continue;
		implicit_tls = i >= cf->nlisten;
		proxy = implicit_tls ? cf->listen_tls[i - cf->nlisten].proxy :
		    cf->listen[i].proxy;
	}
	/* Several workers share the socket; take a few, leave some for them. */
	for (int i = 0; i < 16; i++)
		if (accept_one(fd, implicit_tls, proxy) < 0)
			break;
}

/* Implicit-TLS listeners only once there is a certificate to answer with. */
static void
watch_listeners(void)
{
	for (unsigned int i = 0; i < nlisten; i++)
		if (i < cf->nlisten || tls_ctx != NULL)
			if (ev_io_set(ev, listen_fds[i], EV_READ, on_listen,
			    NULL) < 0)
				fatal("listen fd %d", listen_fds[i]);
}

static void
accept_resume(struct ev *e, void *arg)
{
	(void)e;
	(void)arg;
	watch_listeners();
}

/* Tell the master once this worker can serve every listener it has. */
static void
maybe_ready(void)
{
	if (role_nauth() == 0 || !conn_table_seen ||
	    (cf->tls_cert[0] != '\0' && tls_ctx == NULL))
		return;
	for (unsigned int i = 0; i < role_nauth(); i++)
		if (role_auth(i) == NULL)
			return;
	role_ready();
}

static void
stop_all(void)
{
	shutting_down = true;
	ev_timer_stop(ev, &accept_pause);
	for (unsigned int i = 0; i < nlisten; i++) {
		ev_io_del(ev, listen_fds[i]);
		close(listen_fds[i]);
	}
	nlisten = 0;
	while (conns != NULL) {
		session_reply(&conns->s, "-ERR [SYS/TEMP] Server shutting down.");
		session_set_end(&conns->s, "shutdown");
		session_end(&conns->s);
		if (conns != NULL && !conns->s.closed)
			session_close(&conns->s);
	}
	while (waits != NULL)
		proxy_wait_free(waits, true);
	proxy_close_all();
	ev_stop(ev);
}

/* The shared connection counts (connlimit.h); without them, no limit. */
static void
setup_conn_table(const struct ipc_msg *msg)
{
	struct connlimit_conf lc = {
		.max_ip = cf->max_connections_per_ip,
		.max_net = cf->max_connections_per_net,
		.prefix4 = cf->connection_prefix_ipv4,
		.prefix6 = cf->connection_prefix_ipv6,
	};
	struct msg_conn_table t;
	struct stat st;
	size_t size;
	void *base;

	if (!proto_take(msg->data, msg->len, &t, sizeof(t)) ||
	    t.nslots == 0 || t.nslots > 64 || t.entries > (1u << 24)) {
		log_warnx("event=protocol-error role=master msg=conn-table");
		return;
	}
	size = connlimit_size(t.nslots, t.entries);
	if (fstat(msg->fd, &st) < 0 || (size_t)st.st_size != size) {
		log_warnx("event=conn-table-refused reason=size");
		return;
	}
	base = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, msg->fd, 0);
	if (base == MAP_FAILED) {
		log_warn("event=conn-table-refused reason=mmap");
		return;
	}
	if (connlimit_setup(base, t.nslots, t.slot, t.entries, t.secret,
	    &lc) < 0) {
		log_warnx("event=conn-table-refused reason=geometry");
		munmap(base, size);
	}
	explicit_bzero(&t, sizeof(t));
}

/* A new certificate from the master: new connections use it at once. */
static void
load_tls(int fd)
{
	char err[ERR_LEN];
	struct tls_ctx *ctx;
	struct stat st;
	char *buf;

	if (fstat(fd, &st) < 0 || st.st_size <= 0 ||
	    st.st_size > TLS_MATERIAL_MAX) {
		log_warnx("event=tls-config-refused reason=size");
		return;
	}
	buf = malloc((size_t)st.st_size);
	if (buf == NULL)
		return;
	if (pread(fd, buf, (size_t)st.st_size, 0) != st.st_size) {
		log_warn("event=tls-config-refused reason=read");
		free(buf);
		return;
	}
	ctx = tls_ctx_new(buf, (size_t)st.st_size, cf->tls_min_version, err);
	explicit_bzero(buf, (size_t)st.st_size);
	free(buf);
	if (ctx == NULL) {
		log_warnx("event=tls-config-refused reason=\"%s\"", err);
		return;
	}
	/* Open connections hold their own reference to the old context. */
	tls_ctx_free(&tls_ctx);
	tls_ctx = ctx;
}

static void
master_msg(struct ipc_msg *msg)
{
	if (msg->type == MSG_CONN_TABLE && msg->fd >= 0 && !conn_table_seen) {
		setup_conn_table(msg);
		close(msg->fd);
		conn_table_seen = true;
		if (!shutting_down)
			watch_listeners();
		maybe_ready();
		return;
	}
	if (msg->type == MSG_TLS_CONFIG && msg->fd >= 0) {
		load_tls(msg->fd);
		close(msg->fd);
		if (!shutting_down)
			watch_listeners();
		maybe_ready();
		return;
	}
	if (msg->fd >= 0)
		close(msg->fd);
}

static const struct role login_role = {
	.stop = stop_all,
	.master_msg = master_msg,
	.auth_msg = auth_msg,
	.auth_up = maybe_ready,
	/* Dropped and chrooted: no open, no socket, no connect from then on. */
	.sandboxed = true,
	.sandbox = SANDBOX_ROLE_LOGIN,
};

int
login_main(const struct config *config, unsigned int n)
{
	char err[ERR_LEN];

	cf = config;
	/* Connects to syslog (daemon mode) while /dev/log is in reach. */
	log_set_ident("postinod/login");
	penalty_set_prefix(cf->auth_penalty_prefix4, cf->auth_penalty_prefix6);
	/* Log times in the local zone: no /etc/localtime in the chroot. */
	tzset();
	role_drop(&(struct role_user){ .key = "login_user",
	    .name = cf->login_user, .chroot = cf->login_chroot });
	/* In the chroot, as before the filter: OpenSSL finds no config. */
	if (tls_init(err) < 0)
		fatalx("%s", err);
	ev = role_start(&login_role);
	ev_timer_init(&accept_pause, accept_resume, NULL);
	nlisten = n;
	for (unsigned int i = 0; i < n; i++)
		listen_fds[i] = ROLE_LISTEN_FD + (int)i;
	/* Listeners are watched once the connection table has come. */
	ev_run(ev);
	tls_ctx_free(&tls_ctx);
	role_end();
	return 0;
}
