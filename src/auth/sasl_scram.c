/*
 * SCRAM-SHA-256 and SCRAM-SHA-256-PLUS, server side (RFC 5802, RFC 7677):
 *
 *	C: gs2-header client-first-message-bare
 *	S: r=cnonce+snonce,s=salt,i=iter
 *	C: c=base64(gs2-header [cb-data]),r=nonce[,ext],p=proof
 *	S: v=ServerSignature		(then an empty client response)
 *
 * Grammar errors give SASL_BAD before any credential is looked at, so the
 * result of a malformed message never depends on the user. SASLprep (RFC
 * 4013) is not implemented: it is the identity on printable ASCII, so a
 * name or password with any other octet simply never passes SCRAM (the
 * exchange still runs to the proof); PLAIN and LOGIN take them.
 */
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "auth_hash.h"
#include "../lib/base64.h"
#include "crypto.h"
#include "sasl_private.h"

enum scram_state { SCRAM_FIRST, SCRAM_FINAL, SCRAM_END };

/* RFC 5056 sec. 7: channel-binding type names; ours are both shorter. */
#define CB_NAME_MAX	32
/* Domain separation for the fake salt of unknown users. */
#define FAKE_SALT_LABEL	"postino SCRAM-SHA-256 fake salt"

struct span {
	const char	*p;
	size_t		 len;
};

/*
 * Cut the next ','-separated field off *rest into *f. False when nothing
 * is left; *comma_r says whether a ',' ended the field.
 */
static bool
next_field(struct span *rest, struct span *f, bool *comma_r)
{
	const char *c;

	if (rest->p == NULL)
		return false;
	c = memchr(rest->p, ',', rest->len);
	f->p = rest->p;
	if (c == NULL) {
		f->len = rest->len;
		rest->p = NULL;
		rest->len = 0;
		*comma_r = false;
	} else {
		f->len = (size_t)(c - rest->p);
		rest->len -= f->len + 1;
		rest->p = c + 1;
		*comma_r = true;
	}
	return true;
}

static bool
has_prefix(const struct span *f, const char *prefix)
{
	size_t n = strlen(prefix);

	return f->len >= n && memcmp(f->p, prefix, n) == 0;
}

/* attr-val (RFC 5802 sec. 7): ALPHA "=" 1*value-char. */
static bool
attr_ok(const struct span *f)
{
	return f->len >= 3 && ((f->p[0] >= 'a' && f->p[0] <= 'z') ||
	    (f->p[0] >= 'A' && f->p[0] <= 'Z')) && f->p[1] == '=';
}

/*
 * saslname (RFC 5802 sec. 5.1) into dst (size): "=2C" is ',' and "=3D" is
 * '='; any other '=' is an error. -1 also when empty or too long.
 */
static int
saslname(const char *p, size_t len, char *dst, size_t size)
{
	size_t o = 0;

	if (len == 0)
		return -1;
	for (size_t i = 0; i < len; i++) {
		char c = p[i];

		if (c == '=') {
			if (len - i < 3)
				return -1;
			if (p[i + 1] == '2' && p[i + 2] == 'C')
				c = ',';
			else if (p[i + 1] == '3' && p[i + 2] == 'D')
				c = '=';
			else
				return -1;
			i += 2;
		}
		if (o + 1 >= size)
			return -1;
		dst[o++] = c;
	}
	dst[o] = '\0';
	return 0;
}

/*
 * The optional extensions (attr-val) left in *rest after a message's
 * last mandatory field; comma: whether a ',' ended that field. A ','
 * ending the message leaves an empty last field: refused.
 */
static bool
extensions_ok(struct span *rest, bool comma)
{
	struct span f;

	while (next_field(rest, &f, &comma))
		if (!attr_ok(&f))
			return false;
	return !comma;
}

static bool
ascii(const char *s)
{
	for (; *s != '\0'; s++)
		if ((unsigned char)*s > 0x7e)
			return false;
	return true;
}

int
sasl_scram_init(struct sasl_session *s)
{
	unsigned char raw[SASL_SCRAM_SNONCE_RAW];
	int r = -1;

	if (RAND_bytes(raw, sizeof(raw)) == 1)
		r = base64_encode(s->nonce, sizeof(s->nonce), raw, sizeof(raw));
	explicit_bzero(raw, sizeof(raw));
	return r;
}

/*
 * Keys for s->user: stored ones, derived from a {PLAIN} password, or fake
 * ones from a salt only the name and our secret decide. Each path costs
 * one PBKDF2 of AUTH_SCRAM_ITER_DEFAULT rounds.
 */
static enum sasl_step
lookup(struct sasl_session *s)
{
	const struct sasl_server *srv = s->srv;
	char pw[AUTH_PASS_MAX + 1];
	unsigned char mac[AUTH_SCRAM_KEY_LEN];
	struct auth_scram dummy;
	enum auth_result ar = AUTH_PERMFAIL;
	struct crypto_part parts[2];
	bool valid = ascii(s->user);
	int r;

	pw[0] = '\0';
	if (valid && srv->ops->scram_lookup != NULL)
		ar = srv->ops->scram_lookup(srv->db, s->user, &s->keys,
		    &s->found);
	if (ar == AUTH_TEMPFAIL)
		return SASL_TEMPFAIL;
	if (ar == AUTH_OK) {
		s->known = true;
		r = auth_scram_derive("", 0, AUTH_SCRAM_ITER_DEFAULT,
		    s->keys.salt, s->keys.saltlen, &dummy);
		explicit_bzero(&dummy, sizeof(dummy));
		return r == 0 ? SASL_CONTINUE : SASL_TEMPFAIL;
	}
	if (valid && srv->ops->plain_secret != NULL)
		ar = srv->ops->plain_secret(srv->db, s->user, pw, sizeof(pw),
		    &s->found);
	if (ar == AUTH_TEMPFAIL)
		return SASL_TEMPFAIL;
	s->known = ar == AUTH_OK && auth_scram_pass_ok(pw, strlen(pw));
	if (!s->known) {
		memset(&s->found, 0, sizeof(s->found));
		explicit_bzero(pw, sizeof(pw));
	}
	/* The same salt for a name every time, known or not. */
	parts[0].p = FAKE_SALT_LABEL;
	parts[0].len = sizeof(FAKE_SALT_LABEL);	/* with its NUL */
	parts[1].p = s->user;
	parts[1].len = strlen(s->user);
	if (!crypto_hmac_sha256(srv->secret, sizeof(srv->secret), parts, 2,
	    mac)) {
		explicit_bzero(pw, sizeof(pw));
		return SASL_TEMPFAIL;
	}
	r = auth_scram_derive(pw, strlen(pw), AUTH_SCRAM_ITER_DEFAULT, mac,
	    AUTH_SCRAM_SALT_LEN, &s->keys);
	explicit_bzero(pw, sizeof(pw));
	explicit_bzero(mac, sizeof(mac));
	return r == 0 ? SASL_CONTINUE : SASL_TEMPFAIL;
}

/*
 * gs2-cbind-flag = "p=" cb-name / "n" / "y": the flag in *flag_r, the
 * channel binding type's name in cbname (CB_NAME_MAX + 1 octets).
 */
static bool
gs2_cbind_flag(const struct span *f, char *flag_r, char *cbname)
{
	cbname[0] = '\0';
	if (f->len == 1 && (f->p[0] == 'n' || f->p[0] == 'y')) {
		*flag_r = f->p[0];
		return true;
	}
	if (!has_prefix(f, "p=") || f->len - 2 > CB_NAME_MAX || f->len <= 2)
		return false;
	*flag_r = 'p';
	memcpy(cbname, f->p + 2, f->len - 2);
	cbname[f->len - 2] = '\0';
	for (const char *c = cbname; *c != '\0'; c++)
		if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') ||
		    (*c >= '0' && *c <= '9') || *c == '.' || *c == '-'))
			return false;
	return true;
}

/* Check the client's channel binding choice against ours (sec. 6). */
static enum sasl_step
channel_binding(struct sasl_session *s, char flag, const char *cbname)
{
	const struct sasl_channel *ch = &s->ch;

	switch (flag) {
	case 'n':
		return s->mech->plus ? SASL_BAD : SASL_CONTINUE;
	case 'y':
		if (s->mech->plus)
			return SASL_BAD;
		/* The client could bind, and we offered -PLUS: downgrade. */
		if (ch->end_point_len > 0 || ch->exporter_len > 0)
			return SASL_FAIL;
		return SASL_CONTINUE;
	default:
		if (!s->mech->plus)
			return SASL_BAD;
		if (strcmp(cbname, "tls-server-end-point") == 0 &&
		    ch->end_point_len > 0) {
			s->cb = ch->end_point;
			s->cblen = ch->end_point_len;
		} else if (strcmp(cbname, "tls-exporter") == 0 &&
		    ch->exporter_len > 0) {
			s->cb = ch->exporter;
			s->cblen = ch->exporter_len;
		} else {
			return SASL_FAIL;
		}
		return SASL_CONTINUE;
	}
}

/* server-first-message = r=nonce,s=salt,i=iterations */
static enum sasl_step
server_first(struct sasl_session *s, unsigned char *out, size_t outsize,
    size_t *outlen_r)
{
	char salt[BASE64_ENCODED_LEN(AUTH_SCRAM_SALT_MAX) + 1];

	if (base64_encode(salt, sizeof(salt), s->keys.salt,
	    s->keys.saltlen) < 0 ||
	    str_fmt(s->server_first, sizeof(s->server_first),
	    "r=%.*s,s=%s,i=%u", (int)s->fullnoncelen, s->fullnonce, salt,
	    (unsigned int)s->keys.iter) < 0)
		return SASL_TEMPFAIL;
	s->sflen = strlen(s->server_first);
	if (s->sflen > outsize)
		return SASL_TEMPFAIL;
	memcpy(out, s->server_first, s->sflen);
	*outlen_r = s->sflen;
	s->state = SCRAM_FINAL;
	return SASL_CONTINUE;
}

/*
 * Verify ClientProof over the AuthMessage, whose final part is the client's
 * final message without its proof (final, finallen); on success, v gets
 * ServerSignature in base64.
 */
static enum sasl_step
check_proof(struct sasl_session *s, const unsigned char *proof,
    const char *final, size_t finallen, char *v, size_t vsize)
{
	unsigned char sig[AUTH_SCRAM_KEY_LEN], key[AUTH_SCRAM_KEY_LEN];
	unsigned char stored[AUTH_SCRAM_KEY_LEN];
	struct crypto_part parts[5];
	bool ok;

	/* AuthMessage (RFC 5802 sec. 3): bare "," server-first "," final */
	parts[0].p = s->first + s->gs2len;
	parts[0].len = s->firstlen - s->gs2len;
	parts[1].p = ",";
	parts[1].len = 1;
	parts[2].p = s->server_first;
	parts[2].len = s->sflen;
	parts[3] = parts[1];
	parts[4].p = final;
	parts[4].len = finallen;
	ok = crypto_hmac_sha256(s->keys.stored_key,
	    sizeof(s->keys.stored_key), parts, 5, sig);
	if (ok) {
		/* ClientKey = ClientProof XOR ClientSignature */
		for (size_t i = 0; i < sizeof(key); i++)
			key[i] = proof[i] ^ sig[i];
		ok = crypto_sha256(key, sizeof(key), stored) &&
		    crypto_hmac_sha256(s->keys.server_key,
		    sizeof(s->keys.server_key), parts, 5, s->server_sig) &&
		    base64_encode(v, vsize, s->server_sig,
		    sizeof(s->server_sig)) == 0;
	}
	explicit_bzero(key, sizeof(key));
	explicit_bzero(sig, sizeof(sig));
	if (!ok) {
		explicit_bzero(stored, sizeof(stored));
		return SASL_TEMPFAIL;
	}
	ok = CRYPTO_memcmp(stored, s->keys.stored_key, sizeof(stored)) == 0 &&
	    s->known;
	explicit_bzero(stored, sizeof(stored));
	return ok ? SASL_CONTINUE : SASL_FAIL;
}

static enum sasl_step
client_first(struct sasl_session *s, const unsigned char *in, size_t inlen,
    unsigned char *out, size_t outsize, size_t *outlen_r)
{
	char authzid[AUTH_USER_MAX + 1], cbname[CB_NAME_MAX + 1];
	struct span rest = { (const char *)in, inlen }, f, cnonce;
	enum sasl_step r;
	bool comma;
	char flag;

	/* No initial response: an empty challenge asks for it. */
	if (in == NULL)
		return SASL_CONTINUE;
	if (inlen == 0 || memchr(in, '\0', inlen) != NULL)
		return SASL_BAD;

	/* gs2-header = gs2-cbind-flag "," [authzid] "," */
	if (!next_field(&rest, &f, &comma) || !comma)
		return SASL_BAD;
	if (!gs2_cbind_flag(&f, &flag, cbname))
		return SASL_BAD;
	if (!next_field(&rest, &f, &comma) || !comma)
		return SASL_BAD;
	authzid[0] = '\0';
	if (f.len > 0 && (!has_prefix(&f, "a=") ||
	    saslname(f.p + 2, f.len - 2, authzid, sizeof(authzid)) < 0))
		return SASL_BAD;
	s->gs2len = (size_t)(rest.p - (const char *)in);

	/* client-first-message-bare = [m=...,] n=user,r=nonce[,ext...] */
	if (!next_field(&rest, &f, &comma))
		return SASL_BAD;
	/* RFC 5802 sec. 5.1: a mandatory extension we cannot know. */
	if (has_prefix(&f, "m="))
		return SASL_FAIL;
	if (!has_prefix(&f, "n=") || !comma ||
	    saslname(f.p + 2, f.len - 2, s->user, sizeof(s->user)) < 0)
		return SASL_BAD;
	if (!next_field(&rest, &cnonce, &comma) ||
	    !has_prefix(&cnonce, "r=") ||
	    !crypto_scram_nonce_ok(cnonce.p + 2, cnonce.len - 2,
	    SASL_SCRAM_CNONCE_MAX))
		return SASL_BAD;
	if (!extensions_ok(&rest, comma))
		return SASL_BAD;

	/* Channel binding (RFC 5802 sec. 6), then authorization. */
	if ((r = channel_binding(s, flag, cbname)) != SASL_CONTINUE)
		return r;
	if (authzid[0] != '\0' && strcmp(authzid, s->user) != 0)
		return SASL_FAIL;

	/* inlen <= SASL_RESPONSE_MAX == sizeof(s->first): sasl_step(). */
	memcpy(s->first, in, inlen);
	s->firstlen = inlen;
	s->fullnoncelen = cnonce.len - 2 + strlen(s->nonce);
	if (s->fullnoncelen > sizeof(s->fullnonce))
		return SASL_TEMPFAIL;
	memcpy(s->fullnonce, cnonce.p + 2, cnonce.len - 2);
	memcpy(s->fullnonce + cnonce.len - 2, s->nonce, strlen(s->nonce));

	if ((r = lookup(s)) != SASL_CONTINUE)
		return r;
	return server_first(s, out, outsize, outlen_r);
}

static enum sasl_step
client_final(struct sasl_session *s, const unsigned char *in, size_t inlen,
    unsigned char *out, size_t outsize, size_t *outlen_r)
{
	unsigned char cbind[SASL_RESPONSE_MAX], proof[AUTH_SCRAM_KEY_LEN];
	char v[BASE64_ENCODED_LEN(AUTH_SCRAM_KEY_LEN) + 1];
	const char *m = (const char *)in, *lastcomma;
	struct span rest, f, c, r;
	size_t cbindlen, prooflen, nlen;
	enum sasl_step res;
	bool comma;

	if (inlen == 0 || memchr(in, '\0', inlen) != NULL)
		return SASL_BAD;
	/* proof = "p=" base64, always last. */
	lastcomma = memrchr(m, ',', inlen);
	if (lastcomma == NULL)
		return SASL_BAD;
	f.p = lastcomma + 1;
	f.len = inlen - (size_t)(f.p - m);
	if (!has_prefix(&f, "p=") || base64_decode(proof, sizeof(proof),
	    &prooflen, f.p + 2, f.len - 2) < 0 || prooflen != sizeof(proof))
		return SASL_BAD;
	/* client-final-message-without-proof = c=...,r=...[,ext...] */
	rest.p = m;
	rest.len = (size_t)(lastcomma - m);
	if (!next_field(&rest, &c, &comma) || !comma ||
	    !has_prefix(&c, "c=") || base64_decode(cbind, sizeof(cbind),
	    &cbindlen, c.p + 2, c.len - 2) < 0)
		return SASL_BAD;
	if (!next_field(&rest, &r, &comma) || !has_prefix(&r, "r=") ||
	    !crypto_scram_nonce_ok(r.p + 2, r.len - 2, SASL_SCRAM_NONCE_MAX))
		return SASL_BAD;
	if (!extensions_ok(&rest, comma))
		return SASL_BAD;

	/* c= must repeat our gs2-header and bind this very channel. */
	if (cbindlen != s->gs2len + s->cblen ||
	    memcmp(cbind, s->first, s->gs2len) != 0 ||
	    (s->cblen > 0 && CRYPTO_memcmp(cbind + s->gs2len, s->cb,
	    s->cblen) != 0))
		return SASL_FAIL;
	nlen = r.len - 2;
	if (nlen != s->fullnoncelen || memcmp(r.p + 2, s->fullnonce, nlen) != 0)
		return SASL_FAIL;

	if ((res = check_proof(s, proof, m, (size_t)(lastcomma - m), v,
	    sizeof(v))) != SASL_CONTINUE)
		return res;
	/* Success carries data: RFC 5034 sec. 4 sends it as a challenge. */
	if (2 + strlen(v) > outsize)
		return SASL_TEMPFAIL;
	memcpy(out, "v=", 2);
	memcpy(out + 2, v, strlen(v));
	*outlen_r = 2 + strlen(v);
	s->state = SCRAM_END;
	return SASL_CONTINUE;
}

enum sasl_step
sasl_scram_step(struct sasl_session *s, const unsigned char *in,
    size_t inlen, unsigned char *out, size_t outsize, size_t *outlen_r,
    struct auth_user *user_r)
{
	switch (s->state) {
	case SCRAM_FIRST:
		return client_first(s, in, inlen, out, outsize, outlen_r);
	case SCRAM_FINAL:
		return client_final(s, in, inlen, out, outsize, outlen_r);
	case SCRAM_END:
		/* RFC 5034 sec. 4: the answer to server-final is empty. */
		if (inlen != 0)
			return SASL_BAD;
		*user_r = s->found;
		return SASL_OK;
	default:
		return SASL_BAD;
	}
}
