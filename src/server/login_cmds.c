/*
 * The login role's AUTHORIZATION state (login.h): USER/PASS, APOP, AUTH
 * with the SASL relay to the auth role, CAPA, STLS and QUIT, and the auth
 * role's answers (verdicts, SASL steps, the failure delay). The commands
 * see the role only through login.h, and no password stays in memory
 * longer than its request.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "../auth/sasl.h"
#include "../lib/base64.h"
#include "../lib/idmap.h"
#include "../lib/log.h"
#include "../lib/str.h"
#include "capa.h"
#include "limits.h"
#include "login.h"

static const struct config *cf;
/* Connections waiting for the auth role, by request id (req, sasl_req). */
static struct idmap *waiting;
static uint64_t next_req = 1;

static void sasl_send(struct login_conn *c, uint32_t kind,
    const unsigned char *in, size_t inlen, bool has_in);

void
login_cmds_init(const struct config *config)
{
	cf = config;
	waiting = idmap_new();
	if (waiting == NULL)
		fatal("idmap_new");
}

void
login_cmds_end(void)
{
	idmap_free(&waiting);
}

void
login_cancel(struct login_conn *c)
{
	struct ipc *a;

	/* Gone before its verdict: the check is dropped unless under way. */
	if (c->req != 0 || c->sasl_req != 0)
		login_log_auth(c, "gone");
	if (c->req != 0 && (a = login_auth_for(c)) != NULL) {
		struct msg_cancel m = { .req = c->req };

		ipc_send(a, MSG_AUTH_CANCEL, &m, sizeof(m), -1);
	}
	if (c->sasl_req != 0)
		sasl_send(c, SASL_MSG_CANCEL, NULL, 0, false);
	login_req_end(&c->req);
	login_req_end(&c->sasl_req);
}

/* A fresh request id in *req that its answer finds c by. */
static bool
req_begin(struct login_conn *c, uint64_t *req)
{
	*req = next_req++;
	if (idmap_put(waiting, *req, c) == 0)
		return true;
	*req = 0;
	return false;
}

/* The request is answered or given up: a late answer finds nobody. */
void
login_req_end(uint64_t *req)
{
	idmap_del(waiting, *req);
	*req = 0;
}

static const char *
method_name(const struct login_conn *c)
{
	if (c->method == METHOD_SASL)
		return c->mech;
	return c->method == METHOD_APOP ? "APOP" : "USER";
}

void
login_log_auth(struct login_conn *c, const char *result)
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
	struct ipc *a = login_auth_for(c);
	struct msg_verify *v;

	if (client_gone(c)) {
		login_log_auth(c, "gone");
		return CMD_CLOSE;
	}
	if (a == NULL) {
		session_reply(&c->s, "-ERR [SYS/TEMP] Authentication is "
		    "unavailable, try later.");
		return CMD_BAD;
	}
	v = calloc(1, sizeof(*v));
	if (v == NULL || !req_begin(c, &c->req)) {
		free(v);
		session_reply(&c->s, "-ERR [SYS/TEMP] Out of memory.");
		return CMD_BAD;
	}
	v->req = c->req;
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
		login_req_end(&c->req);
		login_log_auth(c, "fail");
		session_reply(&c->s, "-ERR [AUTH] Authentication failed.");
		return CMD_BAD;
	}
	if (ipc_send(a, MSG_AUTH_VERIFY, v, sizeof(*v), -1) < 0) {
		/* Our fault, not the password's: never "[AUTH]" here. */
		explicit_bzero(v, sizeof(*v));
		free(v);
		login_req_end(&c->req);
		login_log_auth(c, "busy");
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
	return cf->auth_allow_cleartext || conn_tls(&s->conn) != NULL ||
	    (cf->auth_cleartext_loopback && is_loopback(s->ip));
}

static enum cmd_result
refuse_cleartext(struct session *s)
{
	session_reply(s, "-ERR [AUTH] Plaintext authentication disallowed on "
	    "non-secure (SSL/TLS) connections.");
	return CMD_BAD;
}

unsigned int
login_capa_flags(const struct session *s)
{
	unsigned int f = CAPA_AUTHORIZATION;

	if (login_tls_ctx() != NULL && conn_tls(&s->conn) == NULL)
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
	if (cf->oauth2_jwt_key[0] != '\0' ||
	    cf->oauth2_token_command[0] != '\0')
		f |= SASL_ALLOW_OAUTH;
	return f;
}

static void
sasl_channel_of(struct session *s, struct sasl_channel *ch)
{
	struct tls_conn *tls = conn_tls(&s->conn);
	ssize_t n;

	memset(ch, 0, sizeof(*ch));
	if (tls == NULL)
		return;
	ch->tls = true;
	/*
	 * Binding data makes -PLUS offered and a client's "y" flag a downgrade
	 * (RFC 5802 sec. 6): without -PLUS configured, "y" is the right answer.
	 */
	if (!(cf->auth_mechs & SASL_MECH_BIT(SASL_MECH_SCRAM_PLUS)))
		return;
	n = tls_channel_binding(tls, "tls-server-end-point", ch->end_point,
	    sizeof(ch->end_point));
	ch->end_point_len = n > 0 ? (size_t)n : 0;
	n = tls_channel_binding(tls, "tls-exporter", ch->exporter,
	    sizeof(ch->exporter));
	ch->exporter_len = n > 0 ? (size_t)n : 0;
}

void
login_sasl_mechs(struct session *s, char *buf, size_t size)
{
	struct sasl_channel ch;

	char all[SASL_MECHS_LEN];
	size_t o = 0;

	sasl_channel_of(s, &ch);
	buf[0] = '\0';
	if (sasl_mechanisms(all, sizeof(all), sasl_flags(s),
	    conn_tls(&s->conn) != NULL ? &ch : NULL) < 0)
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
	if (conn_tls(&s->conn) != NULL) {
		session_reply(s, "-ERR Already using TLS.");
		return CMD_BAD;
	}
	if (login_tls_ctx() == NULL) {
		session_reply(s, "-ERR TLS is not available.");
		return CMD_BAD;
	}
	session_reply(s, "+OK Begin TLS negotiation.");
	/* RFC 2595 sec. 4: the session starts over; forget the user. */
	c->have_user = false;
	if (session_start_tls(s, login_tls_ctx(), false) < 0)
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
	login_sasl_mechs(s, mechs, sizeof(mechs));
	capa_reply(s, cf, login_capa_flags(s), mechs);
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
	struct ipc *a = login_auth_for(c);

	if (m == NULL || a == NULL || inlen > sizeof(m->in)) {
		free(m);
		session_intercept(&c->s, 0);
		login_req_end(&c->sasl_req);
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
		login_req_end(&c->sasl_req);
		login_log_auth(c, "busy");
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
void
login_sasl_end(struct login_conn *c, bool tell_auth)
{
	if (tell_auth && c->sasl_req != 0)
		sasl_send(c, SASL_MSG_CANCEL, NULL, 0, false);
	login_req_end(&c->sasl_req);
	session_intercept(&c->s, 0);
}

/* A continuation line during an exchange (RFC 5034 sec. 4). */
enum cmd_result
login_sasl_line(struct session *s, char *line, size_t len)
{
	struct login_conn *c = s->owner;
	unsigned char buf[SASL_RESPONSE_MAX];
	size_t n = 0;
	int r = sasl_decode_response(line, len, false, buf, sizeof(buf), &n);

	explicit_bzero(line, len);
	if (r != 0) {
		login_sasl_end(c, true);
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

	login_sasl_mechs(s, mechs, sizeof(mechs));
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
		login_log_auth(c, "gone");
		return CMD_CLOSE;
	}
	if (login_auth_for(c) == NULL) {
		session_reply(s, "-ERR [SYS/TEMP] Authentication is "
		    "unavailable, try later.");
		return CMD_BAD;
	}
	if (!req_begin(c, &c->sasl_req)) {
		session_reply(s, "-ERR [SYS/TEMP] Out of memory.");
		return CMD_BAD;
	}
	/*
	 * Continuation lines may be longer than commands (RFC 5034 sec. 4):
	 * a whole SASL response in base64 and CRLF, an OAuth token's size.
	 */
	session_intercept(s, SASL_RESPONSE_B64_MAX + 2);
	sasl_send(c, SASL_MSG_START, buf, n, a->argc == 2);
	explicit_bzero(buf, sizeof(buf));
	return CMD_ASYNC;
}

const struct session_cmd login_commands[] = {
	{ "USER", 1, 1, false, 0, cmd_user },
	{ "PASS", 0, 1, true, 1, cmd_pass },
	{ "APOP", 2, 2, false, 2, cmd_apop },
	{ "CAPA", 0, 0, false, 0, cmd_capa },
	{ "STLS", 0, 0, false, 0, cmd_stls },
	{ "AUTH", 0, 2, false, 2, cmd_auth },
	{ "QUIT", 0, 0, false, 0, cmd_quit },
	{ NULL, 0, 0, false, 0, NULL },
};

void
login_fail_delayed(struct ev *e, void *arg)
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

void
login_on_verdict(const struct ipc_msg *msg)
{
	struct msg_verdict v;
	struct login_conn *c;

	if (!proto_take(msg->data, msg->len, &v, sizeof(v)) ||
	    !PROTO_STR_OK(v.ticket)) {
		log_warnx("event=protocol-error role=auth msg=verdict");
		return;
	}
	c = idmap_get(waiting, v.req);
	if (c == NULL || c->req != v.req) {
		/* The client left meanwhile (logged then): free its ticket. */
		if (v.result == AUTH_OK)
			login_ticket_release(v.ticket);
		explicit_bzero(&v, sizeof(v));
		return;
	}
	login_req_end(&c->req);
	if (v.result == AUTH_OK) {
		login_log_auth(c, "ok");
		login_handoff(c, &v);
		explicit_bzero(&v, sizeof(v));
		return;
	}
	c->verdict = v.result == AUTH_TEMPFAIL ? AUTH_TEMPFAIL : AUTH_PERMFAIL;
	login_log_auth(c, refusal_name(c->verdict, v.reason));
	ev_timer_start(c->s.ev, &c->delay,
	    v.delay_ms > PENALTY_MAX_MS ? PENALTY_MAX_MS : v.delay_ms);
}

void
login_on_sasl_reply(const struct ipc_msg *msg)
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
	c = idmap_get(waiting, r.req);
	if (c == NULL || c->sasl_req != r.req) {
		/* Cancelled, or the client left: free its ticket. */
		if (r.step == SASL_OK)
			login_ticket_release(r.ticket);
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

		login_sasl_end(c, false);
		memcpy(v.ticket, r.ticket, sizeof(v.ticket));
		login_log_auth(c, "ok");
		login_handoff(c, &v);
		return;
	}
	case SASL_BAD:
		login_sasl_end(c, false);
		session_reply(&c->s, "-ERR Invalid SASL response.");
		session_complete(&c->s, CMD_BAD);
		return;
	default:
		login_sasl_end(c, false);
		c->verdict = r.step == SASL_TEMPFAIL ? AUTH_TEMPFAIL :
		    AUTH_PERMFAIL;
		login_log_auth(c, refusal_name(c->verdict, r.reason));
		/* Still suspended: login_fail_delayed() completes the command. */
		ev_timer_start(c->s.ev, &c->delay,
		    r.delay_ms > PENALTY_MAX_MS ? PENALTY_MAX_MS : r.delay_ms);
		return;
	}
}
