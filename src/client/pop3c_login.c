#include "pop3c_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "../auth/crypto.h"
#include "../lib/base64.h"
#include "../pop3/pop3.h"

int
pop3c_probe_capa(struct pop3c *c)
{
	if (pop3c_send_cmd(c, "CAPA") < 0)
		return -1;
	c->capa_probe = true;
	return 0;
}

int
pop3c_greeting(struct pop3c *c)
{
	const char *text, *lt, *gt;
	int rc = pop3c_read_status(c, "greeting", &text);

	if (rc != 0) {
		/* TLS record types 21 (alert) and 22 (handshake). */
		const char *rest = iobuf_data(&c->in);
		bool tls = iobuf_len(&c->in) > 0 && (rest[0] == 0x15 ||
		    rest[0] == 0x16);

		if (rc > 0 && c->err == POP3C_ESERVER)
			c->err = POP3C_EPROTO;
		if (c->capa_probe && (tls || c->err == POP3C_ENET))
			(void)pop3c_fail(c, tls ? POP3C_ETLS : POP3C_ENET, "%s "
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

	if (!c->capa_probe && pop3c_send_cmd(c, "CAPA") < 0)
		return -1;
	c->capa_probe = false;
	rc = pop3c_read_status(c, "CAPA", NULL);
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
		rc = pop3c_get_multi_line(c, "CAPA", &line, &len);
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
	return pop3c_fail(c, POP3C_EPROTO, "CAPA reply too long");
}

int
pop3c_stls(struct pop3c *c)
{
	char err[ERR_LEN];
	int rc;

	if (c->tls)
		return pop3c_fail(c, POP3C_ETLS, "STLS: TLS is already up");
	if (c->tr.starttls == NULL)
		return pop3c_fail(c, POP3C_ETLS, "STLS: the transport has no TLS");
	if (pop3c_send_cmd(c, "STLS") < 0)
		return -1;
	rc = pop3c_read_status(c, "STLS", NULL);
	if (rc < 0)
		return -1;
	if (rc > 0) {
		/* Never on without TLS: RFC 2595 sec. 2.2 lets clients stop. */
		(void)str_copy(err, sizeof(err), c->errmsg);
		return pop3c_fail(c, POP3C_ETLS, "TLS: the server refused it (%s)",
		    err);
	}
	/*
	 * Anything after +OK came before the handshake, so from anyone on
	 * the path; read later as if it came over TLS, it would be an
	 * injection (CVE-2011-0411, client side).
	 */
	if (iobuf_len(&c->in) != 0)
		return pop3c_fail(c, POP3C_EPROTO, "the server sent data after "
		    "STLS's +OK, before the TLS handshake");
	if (c->tr.starttls(c->tr.ctx, err) < 0)
		return pop3c_fail(c, POP3C_ETLS, "%s", err);
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
		return pop3c_fail(c, POP3C_EAUTH, "APOP: the greeting has no "
		    "timestamp");
	if (!crypto_apop_digest(c->timestamp, pass, hex))
		return pop3c_fail(c, POP3C_ELOCAL, "APOP: MD5 failed");
	rc = pop3c_send_cmd(c, "APOP %s %s", user, hex);
	explicit_bzero(hex, sizeof(hex));
	if (rc < 0)
		return -1;
	rc = pop3c_read_status(c, "APOP", NULL);
	return rc == 0 ? 0 : rc < 0 ? -1 : login_failed(c);
}

static int
login_user(struct pop3c *c, const char *user, const char *pass)
{
	int rc;

	if (pop3c_send_cmd(c, "USER %s", user) < 0)
		return -1;
	rc = pop3c_read_status(c, "USER", NULL);
	if (rc != 0)
		return rc < 0 ? -1 : login_failed(c);
	if (pop3c_send_cmd(c, "PASS %s", pass) < 0)
		return -1;
	rc = pop3c_read_status(c, "PASS", NULL);
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
		return pop3c_fail(c, POP3C_ELOCAL, "AUTH: response too long");
	}
	if (c->trace)
		fprintf(stderr, "C: %s\n", shown);
	rc = pop3c_send_all(c, line, (size_t)n);
	explicit_bzero(line, sizeof(line));
	return rc;
}

/* Longest "AUTH MECH IR" line with CRLF: RFC 5034 sec. 4 (RFC 2449). */
#define AUTH_IR_LINE_MAX	255


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
		return pop3c_fail(c, POP3C_ETLS, "%s: no channel binding on this "
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
			return pop3c_fail(c, POP3C_ELOCAL, "%s", err);
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
	int rc = pop3c_parse_status(c, x->what, line, len, NULL);

	if (rc > 0 && sasl_client_oauth_status(x->sc)[0] != '\0')
		/* The token is never shown, only the verdict. */
		return pop3c_fail(c, POP3C_EAUTH, "%s: the server refused the token "
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
		return pop3c_fail(c, POP3C_EAUTH, "%s: server signature mismatch "
		    "(the server accepted us without sending one)", x->what);
	}
	return pop3c_fail(c, POP3C_EPROTO, "%s: +OK before the exchange ended",
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
		return pop3c_fail(c, POP3C_EPROTO, "%s: bad base64 in a challenge",
		    x->what);
	if (x->pending) {
		x->pending = false;
		if (inlen != 0)
			return pop3c_fail(c, POP3C_EPROTO, "%s: a challenge where an "
			    "empty one was due", x->what);
		return send_sasl_line(c, "********", "", x->b64);
	}
	r = sasl_client_step(x->sc, x->in, inlen, x->out, &x->outlen, err);
	explicit_bzero(x->in, inlen);
	if (r == SASL_CLIENT_MISMATCH || r == SASL_CLIENT_REFUSED) {
		/* Nothing more goes to a server that failed SCRAM. */
		c->dead = true;
		return pop3c_fail(c, POP3C_EAUTH, "%s", err);
	}
	if (r != SASL_CLIENT_CONTINUE)
		return pop3c_fail(c, POP3C_EPROTO, "%s", err);
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
		return pop3c_fail(c, POP3C_ELOCAL, "%s", err);
	if (sasl_start(c, &x, name) < 0)
		goto out;
	for (int round = 0; ; round++) {
		char *line;
		size_t len;

		if (pop3c_read_reply_line(c, x.what, &line, &len) < 0)
			goto out;
		if (len == 0 || line[0] != '+' || (len > 1 && line[1] != ' ')) {
			rc = sasl_verdict(c, &x, line, len);
			goto out;
		}
		if (round == AUTH_ROUNDS_MAX) {
			pop3c_fail(c, POP3C_EPROTO, "%s: too many challenges",
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
		return pop3c_fail(c, POP3C_EAUTH, "no login method in common with "
		    "the server%s", !c->tls && !cleartext_ok ? " that keeps "
		    "the password off a connection without TLS" : "");
	if (sends_password(method) && !c->tls && !cleartext_ok)
		return pop3c_fail(c, POP3C_ETLS, "%s would send the password "
		    "without TLS", pop3c_auth_name(method));
	if (method == POP3C_AUTH_APOP)
		return login_apop(c, user, pass);
	if (method == POP3C_AUTH_USER)
		return login_user(c, user, pass);
	for (size_t k = 0; k < N_SASL; k++)
		if (sasl_table[k].auth == method)
			return login_sasl(c, k, user, pass);
	return pop3c_fail(c, POP3C_ELOCAL, "unknown login method");
}
