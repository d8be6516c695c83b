#include "sasl_client.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "../lib/base64.h"
#include "../auth/crypto.h"

#define SCRAM_KEY_LEN	CRYPTO_SHA256_LEN

struct sasl_client {
	enum sasl_client_mech	 mech;
	const char		*user, *pass;
	const char		*host, *port;	/* OAUTHBEARER */
	unsigned int		 step;		/* responses produced so far */
	/* OAuth: the error challenge's "status", sanitised. */
	char			 oauth_status[64];
	bool			 done, dead;
	/* SCRAM */
	char			 gs2[64];	/* "n,,", "y,,", "p=TYPE,," */
	unsigned char		 cb[SASL_CLIENT_CB_MAX];
	size_t			 cb_len;
	char			 nonce[SASL_CLIENT_NONCE_MAX + 1];
	char			 first_bare[SCRAM_MSG_MAX];
	unsigned char		 server_sig[SCRAM_KEY_LEN];
};

const char *
sasl_client_mech_name(enum sasl_client_mech mech)
{
	return sasl_mechs_name((enum sasl_mech_id)mech);
}

static bool
is_oauth(const struct sasl_client *s)
{
	return s->mech == SASL_CLIENT_OAUTHBEARER ||
	    s->mech == SASL_CLIENT_XOAUTH2;
}

static bool
is_scram(const struct sasl_client *s)
{
	return s->mech == SASL_CLIENT_SCRAM_PLUS ||
	    s->mech == SASL_CLIENT_SCRAM;
}

int
sasl_client_new(struct sasl_client **s_r, const struct sasl_client_params *p,
    char *err)
{
	struct sasl_client *s;
	unsigned char raw[SASL_CLIENT_NONCE_RAW];

	bool oauth = p->mech == SASL_CLIENT_OAUTHBEARER ||
	    p->mech == SASL_CLIENT_XOAUTH2;

	*s_r = NULL;
	if ((unsigned int)p->mech >= SASL_MECH_COUNT) {
		str_copy(err, ERR_LEN, "unknown SASL mechanism");
		return -1;
	}
	if (p->user == NULL || p->pass == NULL || strlen(p->user) > 255 ||
	    strnlen(p->pass, OAUTH_TOKEN_MAX + 1) > (oauth ?
	    OAUTH_TOKEN_MAX : 255)) {
		str_copy(err, ERR_LEN, oauth ? "user name or token too long" :
		    "user name or password too long");
		return -1;
	}
	s = calloc(1, sizeof(*s));
	if (s == NULL) {
		str_copy(err, ERR_LEN, "out of memory");
		return -1;
	}
	s->mech = p->mech;
	s->user = p->user;
	s->pass = p->pass;
	s->host = p->host;
	s->port = p->port;
	if (!is_scram(s)) {
		*s_r = s;
		return 0;
	}
	if (s->mech == SASL_CLIENT_SCRAM_PLUS) {
		if (p->cb_type == NULL || p->cb_data == NULL ||
		    p->cb_len == 0 || p->cb_len > sizeof(s->cb) ||
		    str_fmt(s->gs2, sizeof(s->gs2), "p=%s,,", p->cb_type) < 0) {
			str_copy(err, ERR_LEN, "SCRAM-SHA-256-PLUS: no channel "
			    "binding on this connection");
			goto fail;
		}
		memcpy(s->cb, p->cb_data, p->cb_len);
		s->cb_len = p->cb_len;
	} else {
		str_copy(s->gs2, sizeof(s->gs2),
		    p->tls && !p->plus_offered ? "y,," : "n,,");
	}
	if (p->nonce != NULL) {
		if (!crypto_scram_nonce_ok(p->nonce, strlen(p->nonce),
		    SASL_CLIENT_NONCE_MAX) ||
		    str_copy(s->nonce, sizeof(s->nonce), p->nonce) < 0) {
			str_copy(err, ERR_LEN, "bad SCRAM nonce");
			goto fail;
		}
	} else {
		if (RAND_bytes(raw, sizeof(raw)) != 1 ||
		    base64_encode(s->nonce, sizeof(s->nonce), raw,
		    sizeof(raw)) < 0) {
			str_copy(err, ERR_LEN, "no random numbers for the "
			    "SCRAM nonce");
			goto fail;
		}
	}
	*s_r = s;
	return 0;
fail:
	sasl_client_free(&s);
	return -1;
}

bool
sasl_client_has_initial(const struct sasl_client *s)
{
	return s->mech == SASL_CLIENT_PLAIN || is_scram(s) || is_oauth(s);
}

const char *
sasl_client_oauth_status(const struct sasl_client *s)
{
	return s->oauth_status;
}

bool
sasl_client_done(const struct sasl_client *s)
{
	return s->done && !s->dead;
}

void
sasl_client_free(struct sasl_client **s)
{
	if (*s == NULL)
		return;
	explicit_bzero(*s, sizeof(**s));
	free(*s);
	*s = NULL;
}

static enum sasl_client_result
bad(struct sasl_client *s, enum sasl_client_result r, char *err,
    const char *why)
{
	s->dead = true;
	str_fmt(err, ERR_LEN, "%s: %s", sasl_client_mech_name(s->mech), why);
	return r;
}

/* Append len octets to out (SASL_CLIENT_OUT_MAX); false when full. */
static bool
put(unsigned char *out, size_t *n, const void *p, size_t len)
{
	if (len > SASL_CLIENT_OUT_MAX - *n)
		return false;
	memcpy(out + *n, p, len);
	*n += len;
	return true;
}

static bool
puts_(unsigned char *out, size_t *n, const char *str)
{
	return put(out, n, str, strlen(str));
}

/* ---- PLAIN, LOGIN, CRAM-MD5 ---- */

static enum sasl_client_result
plain_step(struct sasl_client *s, const unsigned char *in,
    unsigned char *out, size_t *n, char *err)
{
	if (in != NULL || s->step > 0)
		return bad(s, SASL_CLIENT_BAD, err, "unexpected challenge");
	/* RFC 4616: [authzid] NUL authcid NUL passwd; no authzid. */
	if (!put(out, n, "", 1) || !puts_(out, n, s->user) ||
	    !put(out, n, "", 1) || !puts_(out, n, s->pass))
		return bad(s, SASL_CLIENT_BAD, err, "response too long");
	s->done = true;
	return SASL_CLIENT_CONTINUE;
}

static enum sasl_client_result
login_step(struct sasl_client *s, const unsigned char *in,
    unsigned char *out, size_t *n, char *err)
{
	/* The prompts ("Username:", "Password:") vary; only order counts. */
	if (in == NULL || s->step > 1)
		return bad(s, SASL_CLIENT_BAD, err, "unexpected challenge");
	if (!puts_(out, n, s->step == 0 ? s->user : s->pass))
		return bad(s, SASL_CLIENT_BAD, err, "response too long");
	s->done = s->step == 1;
	return SASL_CLIENT_CONTINUE;
}

static enum sasl_client_result
cram_step(struct sasl_client *s, const unsigned char *in, size_t inlen,
    unsigned char *out, size_t *n, char *err)
{
	char hex[CRYPTO_MD5_HEX_LEN + 1];
	bool ok;

	if (in == NULL || s->step > 0 || inlen == 0)
		return bad(s, SASL_CLIENT_BAD, err, in == NULL || s->step > 0 ?
		    "unexpected challenge" : "empty challenge");
	if (!crypto_cram_digest(s->pass, in, inlen, hex))
		return bad(s, SASL_CLIENT_BAD, err, "HMAC-MD5 failed");
	ok = puts_(out, n, s->user) && puts_(out, n, " ") && puts_(out, n, hex);
	explicit_bzero(hex, sizeof(hex));
	if (!ok)
		return bad(s, SASL_CLIENT_BAD, err, "response too long");
	s->done = true;
	return SASL_CLIENT_CONTINUE;
}

/* ---- SCRAM-SHA-256 ---- */

/* RFC 5802 sec. 5.1: ',' and '=' in a name become "=2C" and "=3D". */
static bool
put_saslname(unsigned char *out, size_t *n, const char *user)
{
	for (const char *p = user; *p != '\0'; p++) {
		const char *esc = *p == ',' ? "=2C" : *p == '=' ? "=3D" : NULL;

		if (esc != NULL ? !puts_(out, n, esc) : !put(out, n, p, 1))
			return false;
	}
	return true;
}

static enum sasl_client_result
scram_first(struct sasl_client *s, unsigned char *out, size_t *n, char *err)
{
	size_t gs2len = strlen(s->gs2), bare;

	if (!puts_(out, n, s->gs2) || !puts_(out, n, "n=") ||
	    !put_saslname(out, n, s->user) || !puts_(out, n, ",r=") ||
	    !puts_(out, n, s->nonce) || *n - gs2len >= sizeof(s->first_bare))
		return bad(s, SASL_CLIENT_BAD, err, "user name too long");
	bare = *n - gs2len;
	memcpy(s->first_bare, out + gs2len, bare);
	s->first_bare[bare] = '\0';
	return SASL_CLIENT_CONTINUE;
}

/* One "a=value" attribute at *p (up to end); false if there is none. */
static bool
next_attr(const char **p, const char *end, char name, const char **v_r,
    size_t *len_r)
{
	const char *q = *p, *comma;

	if (end - q < 2 || q[0] != name || q[1] != '=')
		return false;
	q += 2;
	comma = memchr(q, ',', (size_t)(end - q));
	*v_r = q;
	*len_r = (size_t)((comma != NULL ? comma : end) - q);
	*p = comma != NULL ? comma + 1 : end;
	return true;
}

/* What server-first-message says: r=nonce,s=salt,i=iterations */
struct server_first {
	const char	*snonce;	/* in the message */
	size_t		 snonce_len;
	unsigned char	 salt[SASL_CLIENT_SCRAM_SALT_MAX];
	size_t		 saltlen;
	uint32_t	 iter;
};

static enum sasl_client_result
parse_server_first(struct sasl_client *s, const unsigned char *in,
    size_t inlen, struct server_first *sf, char *err)
{
	const char *p = (const char *)in, *end = p + inlen, *v;
	enum sasl_client_result r = SASL_CLIENT_BAD;
	char num[16];
	size_t vlen;

	if (memchr(in, '\0', inlen) != NULL || inlen >= SCRAM_MSG_MAX)
		return bad(s, r, err, "bad server-first-message");
	if (inlen >= 2 && memcmp(in, "e=", 2) == 0)
		return bad(s, SASL_CLIENT_REFUSED, err,
		    "refused by the server");
	if (inlen >= 2 && memcmp(in, "m=", 2) == 0)
		return bad(s, r, err, "the server requires an extension");
	if (!next_attr(&p, end, 'r', &sf->snonce, &sf->snonce_len) ||
	    !crypto_scram_nonce_ok(sf->snonce, sf->snonce_len,
	    SASL_CLIENT_NONCE_MAX) || sf->snonce_len <= strlen(s->nonce) ||
	    memcmp(sf->snonce, s->nonce, strlen(s->nonce)) != 0)
		return bad(s, r, err, "the server nonce does not extend ours");
	if (!next_attr(&p, end, 's', &v, &vlen) ||
	    base64_decode(sf->salt, sizeof(sf->salt), &sf->saltlen, v,
	    vlen) < 0 || sf->saltlen == 0)
		return bad(s, r, err, "bad salt");
	if (!next_attr(&p, end, 'i', &v, &vlen) || vlen >= sizeof(num))
		return bad(s, r, err, "bad iteration count");
	memcpy(num, v, vlen);
	num[vlen] = '\0';
	if (str_parse_u32(num, &sf->iter) < 0 ||
	    sf->iter < SASL_CLIENT_SCRAM_ITER_MIN ||
	    sf->iter > SASL_CLIENT_SCRAM_ITER_MAX) {
		(void)str_fmt(err, ERR_LEN, "%s: iteration count %s refused "
		    "(%d to %d)", sasl_client_mech_name(s->mech), num,
		    SASL_CLIENT_SCRAM_ITER_MIN, SASL_CLIENT_SCRAM_ITER_MAX);
		s->dead = true;
		return SASL_CLIENT_BAD;
	}
	/* Extensions after i= are optional ones: ignored (sec. 5.1). */
	return SASL_CLIENT_CONTINUE;
}

static enum sasl_client_result
scram_final(struct sasl_client *s, const unsigned char *in, size_t inlen,
    unsigned char *out, size_t *n, char *err)
{
	size_t gs2len = strlen(s->gs2);
	struct server_first sf;
	unsigned char ckey[SCRAM_KEY_LEN], stored[SCRAM_KEY_LEN];
	unsigned char csig[SCRAM_KEY_LEN], skey[SCRAM_KEY_LEN];
	unsigned char cbind[64 + SASL_CLIENT_CB_MAX];
	char b64[BASE64_ENCODED_LEN(sizeof(cbind)) + 1];
	char authmsg[3 * SCRAM_MSG_MAX];
	size_t without_proof, alen;
	struct crypto_part am;
	enum sasl_client_result r;
	const char *why;

	if ((r = parse_server_first(s, in, inlen, &sf, err)) !=
	    SASL_CLIENT_CONTINUE)
		return r;
	r = SASL_CLIENT_BAD;

	/* client-final-message-without-proof: c=B64(gs2 + cb),r=nonce */
	memcpy(cbind, s->gs2, gs2len);
	memcpy(cbind + gs2len, s->cb, s->cb_len);
	if (base64_encode(b64, sizeof(b64), cbind, gs2len + s->cb_len) < 0 ||
	    !puts_(out, n, "c=") || !puts_(out, n, b64) ||
	    !puts_(out, n, ",r=") || !put(out, n, sf.snonce, sf.snonce_len))
		return bad(s, r, err, "response too long");
	without_proof = *n;

	/* AuthMessage = client-first-bare "," server-first "," without-proof */
	alen = strlen(s->first_bare);
	memcpy(authmsg, s->first_bare, alen);
	authmsg[alen++] = ',';
	memcpy(authmsg + alen, in, inlen);
	alen += inlen;
	authmsg[alen++] = ',';
	memcpy(authmsg + alen, out, without_proof);
	alen += without_proof;

	/* RFC 5802 sec. 3. */
	am.p = authmsg;
	am.len = alen;
	if (!crypto_scram_keys(s->pass, strlen(s->pass), sf.salt, sf.saltlen,
	    sf.iter, ckey, stored, skey) ||
	    !crypto_hmac_sha256(stored, sizeof(stored), &am, 1, csig) ||
	    !crypto_hmac_sha256(skey, sizeof(skey), &am, 1, s->server_sig)) {
		why = "SHA-256 failed";
		goto out;
	}
	for (size_t i = 0; i < SCRAM_KEY_LEN; i++)
		csig[i] ^= ckey[i];		/* ClientProof */
	if (base64_encode(b64, sizeof(b64), csig, sizeof(csig)) < 0 ||
	    !puts_(out, n, ",p=") || !puts_(out, n, b64)) {
		why = "response too long";
		goto out;
	}
	r = SASL_CLIENT_CONTINUE;
out:
	explicit_bzero(ckey, sizeof(ckey));
	explicit_bzero(stored, sizeof(stored));
	explicit_bzero(csig, sizeof(csig));
	explicit_bzero(skey, sizeof(skey));
	explicit_bzero(b64, sizeof(b64));
	explicit_bzero(authmsg, sizeof(authmsg));
	return r == SASL_CLIENT_CONTINUE ? r : bad(s, r, err, why);
}

static enum sasl_client_result
scram_verify(struct sasl_client *s, const unsigned char *in, size_t inlen,
    char *err)
{
	unsigned char sig[SCRAM_KEY_LEN + 3];
	size_t len;

	if (inlen >= 2 && memcmp(in, "e=", 2) == 0)
		return bad(s, SASL_CLIENT_REFUSED, err,
		    "refused by the server");
	/* "v=" base64 and nothing else: extensions are not allowed here. */
	if (inlen < 2 || memcmp(in, "v=", 2) != 0 ||
	    base64_decode(sig, sizeof(sig), &len, (const char *)in + 2,
	    inlen - 2) < 0 || len != SCRAM_KEY_LEN ||
	    CRYPTO_memcmp(sig, s->server_sig, SCRAM_KEY_LEN) != 0)
		return bad(s, SASL_CLIENT_MISMATCH, err,
		    "server signature mismatch");
	s->done = true;
	return SASL_CLIENT_CONTINUE;
}

/* ---- OAUTHBEARER (RFC 7628), XOAUTH2 ---- */

/* Protocol text: no NUL, no kvsep (0x01), no line end. */
static bool
oauth_field_ok(const char *v)
{
	return v[strcspn(v, "\001\r\n")] == '\0';
}

ssize_t
sasl_client_oauthbearer(unsigned char *out, size_t size, const char *user,
    const char *host, const char *port, const char *token)
{
	size_t n = 0;
	bool ok;

	if (size > SASL_CLIENT_OUT_MAX)
		size = SASL_CLIENT_OUT_MAX;
	if (!oauth_field_ok(user) || !oauth_field_ok(token) ||
	    (host != NULL && !oauth_field_ok(host)) ||
	    (port != NULL && !oauth_field_ok(port)) ||
	    size < SASL_CLIENT_OUT_MAX)
		return -1;
	/* gs2-header: no channel binding, authzid = the user (RFC 5801). */
	ok = puts_(out, &n, "n,a=") && put_saslname(out, &n, user) &&
	    puts_(out, &n, ",\001");
	if (ok && host != NULL)
		ok = puts_(out, &n, "host=") && puts_(out, &n, host) &&
		    puts_(out, &n, "\001");
	if (ok && port != NULL)
		ok = puts_(out, &n, "port=") && puts_(out, &n, port) &&
		    puts_(out, &n, "\001");
	ok = ok && puts_(out, &n, "auth=Bearer ") && puts_(out, &n, token) &&
	    puts_(out, &n, "\001\001");
	if (!ok) {
		explicit_bzero(out, n);
		return -1;
	}
	return (ssize_t)n;
}

ssize_t
sasl_client_xoauth2(unsigned char *out, size_t size, const char *user,
    const char *token)
{
	size_t n = 0;

	if (size < SASL_CLIENT_OUT_MAX || !oauth_field_ok(user) ||
	    !oauth_field_ok(token))
		return -1;
	if (!puts_(out, &n, "user=") || !puts_(out, &n, user) ||
	    !puts_(out, &n, "\001auth=Bearer ") || !puts_(out, &n, token) ||
	    !puts_(out, &n, "\001\001")) {
		explicit_bzero(out, n);
		return -1;
	}
	return (ssize_t)n;
}

/*
 * The "status" of an RFC 7628 sec. 3.2.2 error challenge, a JSON object
 * ({"status":"invalid_token","scope":...}). Only a plain string value is
 * taken; anything else reads as "unknown": the exchange fails either way.
 */
static void
oauth_status(const unsigned char *in, size_t inlen, char *dst, size_t size)
{
	static const char key[] = "\"status\"";
	const char *p = NULL, *end = (const char *)in + inlen, *q;

	str_copy(dst, size, "unknown");
	for (const char *c = (const char *)in; end - c >= (ptrdiff_t)
	    sizeof(key) - 1; c++)
		if (memcmp(c, key, sizeof(key) - 1) == 0) {
			p = c + sizeof(key) - 1;
			break;
		}
	if (p == NULL)
		return;
	while (p < end && (*p == ' ' || *p == '\t' || *p == ':'))
		p++;
	if (p >= end || *p != '"')
		return;
	p++;
	q = memchr(p, '"', (size_t)(end - p));
	if (q == NULL || q == p || memchr(p, '\\', (size_t)(q - p)) != NULL)
		return;
	str_sanitize(dst, size, p, (size_t)(q - p));
}

static enum sasl_client_result
oauth_step(struct sasl_client *s, const unsigned char *in, size_t inlen,
    unsigned char *out, size_t *n, char *err)
{
	ssize_t len;

	if (s->step == 0 && in == NULL) {
		len = s->mech == SASL_CLIENT_OAUTHBEARER ?
		    sasl_client_oauthbearer(out, SASL_CLIENT_OUT_MAX, s->user,
		    s->host, s->port, s->pass) :
		    sasl_client_xoauth2(out, SASL_CLIENT_OUT_MAX, s->user,
		    s->pass);
		if (len < 0)
			return bad(s, SASL_CLIENT_BAD, err, "user name or token "
			    "unusable (too long, or a control character)");
		*n = (size_t)len;
		/* "+OK" may follow now. */
		s->done = true;
		return SASL_CLIENT_CONTINUE;
	}
	if (in == NULL || s->step != 1)
		return bad(s, SASL_CLIENT_BAD, err, "unexpected challenge");
	/*
	 * The server refused the token and says why. RFC 7628 sec. 3.2.3:
	 * answer with a lone kvsep; XOAUTH2 servers take an empty line.
	 * Not done: the "-ERR" that follows fails the login.
	 */
	oauth_status(in, inlen, s->oauth_status, sizeof(s->oauth_status));
	s->done = false;
	if (s->mech == SASL_CLIENT_OAUTHBEARER)
		out[(*n)++] = 0x01;
	return SASL_CLIENT_CONTINUE;
}

enum sasl_client_result
sasl_client_step(struct sasl_client *s, const unsigned char *in,
    size_t inlen, unsigned char *out, size_t *outlen_r, char *err)
{
	enum sasl_client_result r;

	*outlen_r = 0;
	if (s->dead)
		return bad(s, SASL_CLIENT_BAD, err, "exchange already failed");
	/* OAuth's error challenge comes after our side is complete. */
	if (s->done && !is_oauth(s))
		return bad(s, SASL_CLIENT_BAD, err, "unexpected challenge");
	switch (s->mech) {
	case SASL_CLIENT_PLAIN:
		r = plain_step(s, in, out, outlen_r, err);
		break;
	case SASL_CLIENT_LOGIN:
		r = login_step(s, in, out, outlen_r, err);
		break;
	case SASL_CLIENT_CRAM_MD5:
		r = cram_step(s, in, inlen, out, outlen_r, err);
		break;
	case SASL_CLIENT_OAUTHBEARER:
	case SASL_CLIENT_XOAUTH2:
		r = oauth_step(s, in, inlen, out, outlen_r, err);
		break;
	default:
		if ((in == NULL) != (s->step == 0))
			return bad(s, SASL_CLIENT_BAD, err,
			    s->step == 0 ? "no initial response sent" :
			    "empty challenge");
		if (s->step == 0)
			r = scram_first(s, out, outlen_r, err);
		else if (s->step == 1)
			r = scram_final(s, in, inlen, out, outlen_r, err);
		else
			r = scram_verify(s, in, inlen, err);
		break;
	}
	if (r != SASL_CLIENT_CONTINUE) {
		explicit_bzero(out, SASL_CLIENT_OUT_MAX);
		*outlen_r = 0;
	} else {
		s->step++;
	}
	return r;
}
