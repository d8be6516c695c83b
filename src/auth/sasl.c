/*
 * SASL dispatch and the simple mechanisms: PLAIN, LOGIN, CRAM-MD5.
 * SCRAM lives in sasl_scram.c.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "../lib/base64.h"
#include "crypto.h"
#include "sasl_private.h"

/* The domain of CRAM-MD5 challenges when the configured one is unusable. */
#define CRAM_DEFAULT_HOST	"postino"

enum login_state { LOGIN_START, LOGIN_USER, LOGIN_PASS };

static sasl_mech_step_fn plain_step, login_step, cram_step;

/* Best first: the order of CAPA's SASL line. */
static const struct sasl_mech mechs[] = {
	{ SASL_MECH_SCRAM_PLUS, true, sasl_scram_step },
	{ SASL_MECH_SCRAM, false, sasl_scram_step },
	{ SASL_MECH_CRAM_MD5, false, cram_step },
	{ SASL_MECH_PLAIN, false, plain_step },
	{ SASL_MECH_LOGIN, false, login_step },
	{ SASL_MECH_OAUTHBEARER, false, sasl_oauth_step },
	{ SASL_MECH_XOAUTH2, false, sasl_oauth_step },
};

static bool
has_binding(const struct sasl_channel *ch)
{
	return ch != NULL && ch->tls &&
	    (ch->end_point_len > 0 || ch->exporter_len > 0);
}

static bool
offered(const struct sasl_mech *m, unsigned int flags,
    const struct sasl_channel *ch)
{
	if (m->plus)
		return has_binding(ch);
	if (m->step == cram_step)
		return (flags & SASL_ALLOW_CRAM_MD5) != 0;
	if (m->step == sasl_oauth_step && !(flags & SASL_ALLOW_OAUTH))
		return false;
	if (sasl_mechs_sends_secret(m->id))
		return (ch != NULL && ch->tls) ||
		    (flags & SASL_ALLOW_PLAINTEXT) != 0;
	return true;
}

int
sasl_mechanisms(char *buf, size_t size, unsigned int flags,
    const struct sasl_channel *ch)
{
	size_t len = 0;

	if (size == 0)
		return -1;
	buf[0] = '\0';
	for (size_t i = 0; i < sizeof(mechs) / sizeof(mechs[0]); i++) {
		if (!offered(&mechs[i], flags, ch))
			continue;
		if (str_fmt(buf + len, size - len, "%s%s", len > 0 ? " " : "",
		    sasl_mechs_name(mechs[i].id)) < 0) {
			buf[0] = '\0';
			return -1;
		}
		len += strlen(buf + len);
	}
	return 0;
}

/* Letters, digits, '.' and '-': nothing that could break "<...@host>". */
static bool
host_ok(const char *host)
{
	size_t len;

	if (host == NULL || (len = strnlen(host, 254)) == 0 || len > 253)
		return false;
	for (const char *p = host; *p != '\0'; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		    (*p >= '0' && *p <= '9') || *p == '.' || *p == '-'))
			return false;
	return true;
}

/* RFC 2195 sec. 2: a msg-id, "<random.timestamp@host>", never reused. */
static int
cram_challenge(struct sasl_session *s)
{
	const char *host = s->srv->hostname;
	unsigned long long rnd;

	if (RAND_bytes((unsigned char *)&rnd, sizeof(rnd)) != 1)
		return -1;
	return str_fmt(s->nonce, sizeof(s->nonce), "<%llu.%lld@%s>", rnd,
	    (long long)time(NULL), host_ok(host) ? host : CRAM_DEFAULT_HOST);
}

int
sasl_start(struct sasl_session **s_r, const struct sasl_server *srv,
    const char *mech, const struct sasl_channel *ch)
{
	const struct sasl_mech *m = NULL;
	struct sasl_session *s;
	int r = 0;

	*s_r = NULL;
	for (size_t i = 0; i < sizeof(mechs) / sizeof(mechs[0]); i++)
		if (str_ieq(sasl_mechs_name(mechs[i].id), mech) &&
		    offered(&mechs[i], srv->flags, ch) &&
		    (mechs[i].step != sasl_oauth_step ||
		    srv->oauth_key != NULL ||
		    (srv->flags & SASL_OAUTH_EXTERNAL)))
			m = &mechs[i];
	if (m == NULL) {
		errno = ENOENT;
		return -1;
	}
	s = calloc(1, sizeof(*s));
	if (s == NULL) {
		errno = ENOMEM;
		return -1;
	}
	s->srv = srv;
	s->mech = m;
	if (ch != NULL && ch->tls) {
		s->ch = *ch;
		/* Lengths come from another process: never trust them. */
		if (s->ch.end_point_len > SASL_CB_MAX)
			s->ch.end_point_len = 0;
		if (s->ch.exporter_len > SASL_CB_MAX)
			s->ch.exporter_len = 0;
	}
	if (m->step == sasl_scram_step)
		r = sasl_scram_init(s);
	else if (m->step == cram_step)
		r = cram_challenge(s);
	if (r < 0) {
		sasl_free(&s);
		errno = EIO;
		return -1;
	}
	*s_r = s;
	return 0;
}

enum sasl_step
sasl_step(struct sasl_session *s, const unsigned char *in, size_t inlen,
    unsigned char *out, size_t outsize, size_t *outlen_r,
    struct auth_user *user_r)
{
	enum sasl_step r;

	memset(user_r, 0, sizeof(*user_r));
	*outlen_r = 0;
	if (s->done)
		return SASL_BAD;
	if (outsize < SASL_CHALLENGE_MAX) {
		s->done = true;
		return SASL_TEMPFAIL;
	}
	/* Only the first response may be absent. */
	if (in == NULL && s->started) {
		in = (const unsigned char *)"";
		inlen = 0;
	}
	if (inlen > SASL_RESPONSE_MAX) {
		s->done = true;
		return SASL_BAD;
	}
	r = s->mech->step(s, in, inlen, out, outsize, outlen_r, user_r);
	s->started = true;
	if (r != SASL_CONTINUE && r != SASL_PENDING) {
		s->done = true;
		*outlen_r = 0;
		if (r != SASL_OK)
			memset(user_r, 0, sizeof(*user_r));
	}
	return r;
}

void
sasl_free(struct sasl_session **sp)
{
	struct sasl_session *s = *sp;

	if (s == NULL)
		return;
	explicit_bzero(s, sizeof(*s));
	free(s);
	*sp = NULL;
}

const char *
sasl_mech_name(const struct sasl_session *s)
{
	return sasl_mechs_name(s->mech->id);
}

const char *
sasl_user(const struct sasl_session *s)
{
	return s->user;
}

int
sasl_decode_response(const char *line, size_t linelen, bool initial,
    unsigned char *out, size_t outsize, size_t *outlen_r)
{
	*outlen_r = 0;
	if (initial && linelen == 1 && line[0] == '=')
		return 0;
	if (!initial && linelen == 1 && line[0] == '*')
		return 1;
	if (linelen > SASL_RESPONSE_B64_MAX)
		return -1;
	if (outsize > SASL_RESPONSE_MAX)
		outsize = SASL_RESPONSE_MAX;
	/* "" decodes to nothing: an empty continuation is valid. */
	return base64_decode(out, outsize, outlen_r, line, linelen);
}

int
sasl_set_nonce(struct sasl_session *s, const char *nonce)
{
	size_t len = strnlen(nonce, sizeof(s->nonce));

	if (s->started || len == 0 || len >= sizeof(s->nonce))
		return -1;
	for (size_t i = 0; i < len; i++)
		if (nonce[i] < 0x21 || nonce[i] > 0x7e || nonce[i] == ',')
			return -1;
	if (s->mech->step != sasl_scram_step && s->mech->step != cram_step)
		return -1;
	memcpy(s->nonce, nonce, len + 1);
	return 0;
}

/* Copy len octets of in into dst (size) as a string; false on NUL or fit. */
static bool
take(char *dst, size_t size, const unsigned char *in, size_t len)
{
	if (len >= size || memchr(in, '\0', len) != NULL)
		return false;
	memcpy(dst, in, len);
	dst[len] = '\0';
	return true;
}

/* What auth_ops.verify says, as a SASL result. */
static enum sasl_step
verdict(enum auth_result r)
{
	return r == AUTH_OK ? SASL_OK :
	    r == AUTH_TEMPFAIL ? SASL_TEMPFAIL : SASL_FAIL;
}

/*
 * RFC 4616 sec. 2: [authzid] NUL authcid NUL passwd, client first. Names
 * and passwords are compared as octets, as USER/PASS compares them.
 */
static enum sasl_step
plain_step(struct sasl_session *s, const unsigned char *in, size_t inlen,
    unsigned char *out, size_t outsize, size_t *outlen_r,
    struct auth_user *user_r)
{
	char authzid[AUTH_USER_MAX + 1], pass[AUTH_PASS_MAX + 1];
	const unsigned char *nul1, *nul2, *authc, *pw;
	size_t zlen, clen, plen;
	enum sasl_step r;

	(void)out;
	(void)outsize;
	(void)outlen_r;
	/* No initial response: an empty challenge asks for it. */
	if (in == NULL)
		return SASL_CONTINUE;
	nul1 = memchr(in, '\0', inlen);
	if (nul1 == NULL)
		return SASL_BAD;
	authc = nul1 + 1;
	nul2 = memchr(authc, '\0', inlen - (size_t)(authc - in));
	if (nul2 == NULL)
		return SASL_BAD;
	pw = nul2 + 1;
	zlen = (size_t)(nul1 - in);
	clen = (size_t)(nul2 - authc);
	plen = inlen - (size_t)(pw - in);
	/* A third NUL, an empty name or password: not RFC 4616's grammar. */
	if (clen == 0 || plen == 0 || memchr(pw, '\0', plen) != NULL ||
	    !take(s->user, sizeof(s->user), authc, clen) ||
	    !take(authzid, sizeof(authzid), in, zlen))
		return SASL_BAD;
	/* We do not let one user act as another (no proxy authorization). */
	if (zlen > 0 && strcmp(authzid, s->user) != 0)
		return SASL_FAIL;
	if (!take(pass, sizeof(pass), pw, plen))
		return SASL_BAD;
	r = verdict(s->srv->ops->verify(s->srv->db, s->user, pass, user_r));
	explicit_bzero(pass, sizeof(pass));
	return r;
}

/* draft-murchison-sasl-login: "Username:" and "Password:", server first. */
static enum sasl_step
login_step(struct sasl_session *s, const unsigned char *in, size_t inlen,
    unsigned char *out, size_t outsize, size_t *outlen_r,
    struct auth_user *user_r)
{
	static const char ask_user[] = "Username:", ask_pass[] = "Password:";
	char pass[AUTH_PASS_MAX + 1];
	enum sasl_step r;

	(void)outsize;
	switch (s->state) {
	case LOGIN_START:
		/* Some clients send the name as an initial response. */
		if (in != NULL && inlen > 0)
			break;
		s->state = LOGIN_USER;
		memcpy(out, ask_user, sizeof(ask_user) - 1);
		*outlen_r = sizeof(ask_user) - 1;
		return SASL_CONTINUE;
	case LOGIN_USER:
		break;
	case LOGIN_PASS:
		if (!take(pass, sizeof(pass), in, inlen))
			return SASL_BAD;
		r = verdict(s->srv->ops->verify(s->srv->db, s->user, pass,
		    user_r));
		explicit_bzero(pass, sizeof(pass));
		return r;
	default:
		return SASL_BAD;
	}
	if (inlen == 0 || !take(s->user, sizeof(s->user), in, inlen))
		return SASL_BAD;
	s->state = LOGIN_PASS;
	memcpy(out, ask_pass, sizeof(ask_pass) - 1);
	*outlen_r = sizeof(ask_pass) - 1;
	return SASL_CONTINUE;
}

/*
 * RFC 2195: the challenge goes first, the client answers "user digest".
 * Only users whose secret is {PLAIN} can pass; all others, unknown ones
 * included, get the same HMAC over an empty key and the same failure.
 */
static enum sasl_step
cram_step(struct sasl_session *s, const unsigned char *in, size_t inlen,
    unsigned char *out, size_t outsize, size_t *outlen_r,
    struct auth_user *user_r)
{
	char secret[AUTH_PASS_MAX + 1], hex[CRYPTO_MD5_HEX_LEN + 1];
	char want[CRYPTO_MD5_HEX_LEN + 1];
	const unsigned char *sp;
	struct auth_user u;
	enum auth_result ar;
	size_t len;
	bool ok;

	if (s->state == 0) {
		/* RFC 2195 has no initial response. */
		if (in != NULL)
			return SASL_BAD;
		len = strlen(s->nonce);
		if (len > outsize)
			return SASL_TEMPFAIL;
		memcpy(out, s->nonce, len);
		*outlen_r = len;
		s->state = 1;
		return SASL_CONTINUE;
	}
	if (inlen < CRYPTO_MD5_HEX_LEN + 2 || memchr(in, '\0', inlen) != NULL)
		return SASL_BAD;
	sp = in + inlen - CRYPTO_MD5_HEX_LEN - 1;
	if (*sp != ' ' ||
	    !take(s->user, sizeof(s->user), in, (size_t)(sp - in)) ||
	    !crypto_md5_hex_parse((const char *)sp + 1, CRYPTO_MD5_HEX_LEN,
	    want))
		return SASL_BAD;
	ar = s->srv->ops->plain_secret(s->srv->db, s->user, secret,
	    sizeof(secret), &u);
	if (ar == AUTH_TEMPFAIL)
		return SASL_TEMPFAIL;
	if (ar != AUTH_OK)
		secret[0] = '\0';
	ok = crypto_cram_digest(secret, s->nonce, strlen(s->nonce), hex);
	explicit_bzero(secret, sizeof(secret));
	if (!ok)
		return SASL_TEMPFAIL;
	ok = CRYPTO_memcmp(hex, want, CRYPTO_MD5_HEX_LEN) == 0 && ar == AUTH_OK;
	explicit_bzero(hex, sizeof(hex));
	if (!ok)
		return SASL_FAIL;
	*user_r = u;
	return SASL_OK;
}
