#include "jwt.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "../lib/base64.h"

/* NIST P-256 coordinates: 32 octets each, r||s in ES256 (RFC 7518 3.4). */
#define ES256_HALF	32
/* A PEM public key file: an 8192-bit RSA key is under 1.5 KB. */
#define JWT_PEM_MAX	16384
/* RFC 8017 / NIST SP 800-131A: RSA below 2048 bits is not acceptable. */
#define RSA_BITS_MIN	2048

struct jwt_key {
	EVP_PKEY	*pkey;
	bool		 ec;
};

int
jwt_key_from_pem(struct jwt_key **k_r, const char *pem, size_t len,
    char *err)
{
	struct jwt_key *k;
	char group[32];
	BIO *bio;

	*k_r = NULL;
	if (len > JWT_PEM_MAX || (bio = BIO_new_mem_buf(pem, (int)len)) ==
	    NULL) {
		str_copy(err, ERR_LEN, "not a PEM public key");
		return -1;
	}
	k = calloc(1, sizeof(*k));
	if (k == NULL) {
		BIO_free(bio);
		str_copy(err, ERR_LEN, "out of memory");
		return -1;
	}
	k->pkey = PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL);
	BIO_free(bio);
	if (k->pkey == NULL) {
		str_copy(err, ERR_LEN, "not a PEM public key");
		goto fail;
	}
	if (EVP_PKEY_is_a(k->pkey, "RSA")) {
		if (EVP_PKEY_get_bits(k->pkey) < RSA_BITS_MIN) {
			str_fmt(err, ERR_LEN, "RSA key of %d bits (at least "
			    "%d)", EVP_PKEY_get_bits(k->pkey), RSA_BITS_MIN);
			goto fail;
		}
	} else if (EVP_PKEY_is_a(k->pkey, "EC") &&
	    EVP_PKEY_get_utf8_string_param(k->pkey,
	    OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof(group), NULL) == 1 &&
	    strcmp(group, "prime256v1") == 0) {
		k->ec = true;
	} else {
		str_copy(err, ERR_LEN, "the key is neither RSA (RS256) nor EC "
		    "P-256 (ES256)");
		goto fail;
	}
	*k_r = k;
	return 0;
fail:
	jwt_key_free(&k);
	return -1;
}

int
jwt_key_load(struct jwt_key **k_r, const char *path, char *err)
{
	char *buf = malloc(JWT_PEM_MAX + 1);
	size_t len = 0;
	FILE *f;
	int rc;

	*k_r = NULL;
	if (buf == NULL) {
		str_copy(err, ERR_LEN, "out of memory");
		return -1;
	}
	f = fopen(path, "re");
	if (f == NULL) {
		str_fmt(err, ERR_LEN, "%s: cannot open", path);
		free(buf);
		return -1;
	}
	len = fread(buf, 1, JWT_PEM_MAX + 1, f);
	fclose(f);
	if (len > JWT_PEM_MAX) {
		str_fmt(err, ERR_LEN, "%s: larger than a public key", path);
		free(buf);
		return -1;
	}
	rc = jwt_key_from_pem(k_r, buf, len, err);
	if (rc < 0) {
		char why[ERR_LEN];

		str_copy(why, sizeof(why), err);
		str_fmt(err, ERR_LEN, "%s: %s", path, why);
	}
	free(buf);
	return rc;
}

void
jwt_key_free(struct jwt_key **k)
{
	if (*k == NULL)
		return;
	EVP_PKEY_free((*k)->pkey);
	free(*k);
	*k = NULL;
}

const char *
jwt_key_alg(const struct jwt_key *k)
{
	return k->ec ? "ES256" : "RS256";
}

/* RFC 7515 sec. 2: base64url without padding, strictly. */
static int
b64url_decode(unsigned char *dst, size_t size, size_t *len_r, const char *src,
    size_t len)
{
	char *tmp;
	int rc;

	if (len % 4 == 1 || len > BASE64_ENCODED_LEN(size))
		return -1;
	tmp = malloc(len + 3);
	if (tmp == NULL)
		return -1;
	for (size_t i = 0; i < len; i++) {
		char c = src[i];

		if (c == '-')
			c = '+';
		else if (c == '_')
			c = '/';
		else if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
		    (c >= '0' && c <= '9'))) {
			free(tmp);
			return -1;
		}
		tmp[i] = c;
	}
	memset(tmp + len, '=', (4 - len % 4) % 4);
	rc = base64_decode(dst, size, len_r, tmp, len + (4 - len % 4) % 4);
	free(tmp);
	return rc;
}

/* ---- a small strict JSON reader for one flat object of claims ---- */

struct json {
	const char	*p, *end;
};

static void
json_ws(struct json *j)
{
	while (j->p < j->end && (*j->p == ' ' || *j->p == '\t' ||
	    *j->p == '\n' || *j->p == '\r'))
		j->p++;
}

static bool
json_lit(struct json *j, char c)
{
	json_ws(j);
	if (j->p >= j->end || *j->p != c)
		return false;
	j->p++;
	return true;
}

static int
hexval(char c)
{
	return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ?
	    c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

/* A \uXXXX escape at p (after the u) as UTF-8 into out; false if invalid. */
static bool
json_uescape(struct json *j, char *out, size_t size, size_t *n)
{
	unsigned int u = 0;

	if (j->end - j->p < 4)
		return false;
	for (int i = 0; i < 4; i++) {
		int h = hexval(j->p[i]);

		if (h < 0)
			return false;
		u = u * 16 + (unsigned int)h;
	}
	j->p += 4;
	/* No NUL, no surrogates: no claim we compare needs them. */
	if (u == 0 || (u >= 0xd800 && u <= 0xdfff))
		return false;
	if (out == NULL)
		return true;
	if (u < 0x80 && *n + 1 < size) {
		out[(*n)++] = (char)u;
	} else if (u < 0x800 && *n + 2 < size) {
		out[(*n)++] = (char)(0xc0 | (u >> 6));
		out[(*n)++] = (char)(0x80 | (u & 0x3f));
	} else if (u >= 0x800 && *n + 3 < size) {
		out[(*n)++] = (char)(0xe0 | (u >> 12));
		out[(*n)++] = (char)(0x80 | ((u >> 6) & 0x3f));
		out[(*n)++] = (char)(0x80 | (u & 0x3f));
	} else {
		return false;
	}
	return true;
}

/*
 * A string into out (size; NULL: skip it), NUL-terminated. False when it
 * is malformed or does not fit.
 */
static bool
json_string(struct json *j, char *out, size_t size)
{
	static const char esc_in[] = "\"\\/bfnrt", esc_out[] = "\"\\/\b\f\n\r\t";
	size_t n = 0;

	if (!json_lit(j, '"'))
		return false;
	while (j->p < j->end && *j->p != '"') {
		char c = *j->p++;
		const char *e;

		if ((unsigned char)c < 0x20)
			return false;
		if (c == '\\') {
			if (j->p >= j->end)
				return false;
			c = *j->p++;
			if (c == 'u') {
				if (!json_uescape(j, out, size, &n))
					return false;
				continue;
			}
			if ((e = strchr(esc_in, c)) == NULL || c == '\0')
				return false;
			c = esc_out[e - esc_in];
		}
		if (out != NULL) {
			if (n + 1 >= size)
				return false;
			out[n++] = c;
		}
	}
	if (j->p >= j->end)
		return false;
	j->p++;
	if (out != NULL)
		out[n] = '\0';
	return true;
}

/*
 * A NumericDate (RFC 7519 sec. 2): digits, maybe a fraction (dropped).
 * No sign, no exponent: a token that needs them is not one we issue.
 */
static bool
json_date(struct json *j, int64_t *v)
{
	int64_t x = 0;
	const char *start;

	json_ws(j);
	start = j->p;
	while (j->p < j->end && *j->p >= '0' && *j->p <= '9') {
		if (x > (INT64_MAX - 9) / 10)
			return false;
		x = x * 10 + (*j->p++ - '0');
	}
	if (j->p == start)
		return false;
	if (j->p < j->end && *j->p == '.') {
		j->p++;
		start = j->p;
		while (j->p < j->end && *j->p >= '0' && *j->p <= '9')
			j->p++;
		if (j->p == start)
			return false;
	}
	*v = x;
	return true;
}

static bool json_skip(struct json *j, int depth);

/* Skip the rest of an array or object after its opening bracket. */
static bool
json_skip_container(struct json *j, char close, int depth)
{
	if (json_lit(j, close))
		return true;
	/* Each round takes input: bounded by the token's length. */
	for (;;) {
		if (close == '}' && (!json_string(j, NULL, 0) ||
		    !json_lit(j, ':')))
			return false;
		if (!json_skip(j, depth + 1))
			return false;
		if (json_lit(j, close))
			return true;
		if (!json_lit(j, ','))
			return false;
	}
}

static bool
json_skip(struct json *j, int depth)
{
	int64_t d;

	if (depth > JWT_DEPTH_MAX)
		return false;
	json_ws(j);
	if (j->p >= j->end)
		return false;
	switch (*j->p) {
	case '"':
		return json_string(j, NULL, 0);
	case '{':
		j->p++;
		return json_skip_container(j, '}', depth);
	case '[':
		j->p++;
		return json_skip_container(j, ']', depth);
	case '-':
		/* A negative number: digits must follow. */
		j->p++;
		if (j->p >= j->end || *j->p < '0' || *j->p > '9')
			return false;
		break;
	default:
		break;
	}
	for (size_t i = 0; i < 3; i++) {
		static const char *const lits[] = { "true", "false", "null" };
		size_t l = strlen(lits[i]);

		if ((size_t)(j->end - j->p) >= l && memcmp(j->p, lits[i], l) ==
		    0) {
			j->p += l;
			return true;
		}
	}
	if (*j->p < '0' || *j->p > '9' || !json_date(j, &d))
		return false;
	/* An exponent on a number we skip is fine. */
	if (j->p < j->end && (*j->p == 'e' || *j->p == 'E')) {
		j->p++;
		if (j->p < j->end && (*j->p == '+' || *j->p == '-'))
			j->p++;
		return json_date(j, &d);
	}
	return true;
}

/* What we take from the header and the claims set. */
struct claims {
	char	 alg[16];
	bool	 crit;
	bool	 has_exp, has_nbf;
	int64_t	 exp, nbf;
	char	 iss[JWT_CLAIM_MAX + 1];
	bool	 aud_ok;		/* the configured audience is in aud */
	char	 user[JWT_CLAIM_MAX + 1];
	unsigned int seen;		/* claims met, for duplicates */
};

enum { SEEN_ALG = 1, SEEN_EXP = 2, SEEN_NBF = 4, SEEN_ISS = 8, SEEN_AUD = 16,
    SEEN_USER = 32, SEEN_CRIT = 64 };

/* "aud": one string or an array of them (RFC 7519 sec. 4.1.3). */
static bool
take_aud(struct json *j, const char *want, bool *ok)
{
	char v[JWT_CLAIM_MAX + 1];

	json_ws(j);
	if (j->p < j->end && *j->p == '"') {
		if (!json_string(j, v, sizeof(v)))
			return false;
		*ok = want != NULL && strcmp(v, want) == 0;
		return true;
	}
	if (!json_lit(j, '['))
		return false;
	if (json_lit(j, ']'))
		return true;
	for (int i = 0; i < 64; i++) {
		if (!json_string(j, v, sizeof(v)))
			return false;
		if (want != NULL && strcmp(v, want) == 0)
			*ok = true;
		if (json_lit(j, ']'))
			return true;
		if (!json_lit(j, ','))
			return false;
	}
	return false;
}

/* One member of the header (header = true) or the claims set. */
static bool
take_member(struct json *j, const char *name, bool header,
    const struct jwt_policy *p, struct claims *c)
{
	const char *uc = p->user_claim != NULL && p->user_claim[0] != '\0' ?
	    p->user_claim : "sub";
	unsigned int bit = 0;
	bool ok;

	if (header)
		bit = strcmp(name, "alg") == 0 ? SEEN_ALG :
		    strcmp(name, "crit") == 0 ? SEEN_CRIT : 0;
	else
		bit = strcmp(name, "exp") == 0 ? SEEN_EXP :
		    strcmp(name, "nbf") == 0 ? SEEN_NBF :
		    strcmp(name, "iss") == 0 ? SEEN_ISS :
		    strcmp(name, "aud") == 0 ? SEEN_AUD :
		    strcmp(name, uc) == 0 ? SEEN_USER : 0;
	if (bit == 0)
		return json_skip(j, 1);
	if (c->seen & bit)
		return false;
	c->seen |= bit;
	switch (bit) {
	case SEEN_ALG:
		return json_string(j, c->alg, sizeof(c->alg));
	case SEEN_CRIT:
		c->crit = true;
		return json_skip(j, 1);
	case SEEN_EXP:
		return (c->has_exp = json_date(j, &c->exp));
	case SEEN_NBF:
		return (c->has_nbf = json_date(j, &c->nbf));
	case SEEN_ISS:
		return json_string(j, c->iss, sizeof(c->iss));
	case SEEN_AUD:
		ok = take_aud(j, p->audience, &c->aud_ok);
		return ok;
	default:
		return json_string(j, c->user, sizeof(c->user));
	}
}

/* One JSON object (len octets at text), member by member. */
static bool
parse_object(const char *text, size_t len, bool header,
    const struct jwt_policy *p, struct claims *c)
{
	struct json j = { text, text + len };
	char name[64];

	if (!json_lit(&j, '{'))
		return false;
	if (json_lit(&j, '}'))
		goto end;
	for (int i = 0; i < 256; i++) {
		/* A longer name is none of ours: skip it whole. */
		struct json save = j;

		if (!json_string(&j, name, sizeof(name))) {
			j = save;
			if (!json_string(&j, NULL, 0))
				return false;
			name[0] = '\0';
		}
		if (!json_lit(&j, ':'))
			return false;
		if (name[0] != '\0' ? !take_member(&j, name, header, p, c) :
		    !json_skip(&j, 1))
			return false;
		if (json_lit(&j, '}'))
			goto end;
		if (!json_lit(&j, ','))
			return false;
	}
	return false;
end:
	json_ws(&j);
	return j.p == j.end;
}

/* ES256's r||s as the DER ECDSA-Sig-Value OpenSSL verifies. */
static int
es256_der(const unsigned char *sig, size_t len, unsigned char **der_r,
    size_t *derlen_r)
{
	ECDSA_SIG *es = ECDSA_SIG_new();
	BIGNUM *r = BN_bin2bn(sig, ES256_HALF, NULL);
	BIGNUM *s = BN_bin2bn(sig + ES256_HALF, ES256_HALF, NULL);
	int n;

	*der_r = NULL;
	if (len != 2 * ES256_HALF || es == NULL || r == NULL || s == NULL ||
	    ECDSA_SIG_set0(es, r, s) != 1) {
		ECDSA_SIG_free(es);
		BN_free(r);
		BN_free(s);
		return -1;
	}
	n = i2d_ECDSA_SIG(es, der_r);
	ECDSA_SIG_free(es);
	if (n <= 0)
		return -1;
	*derlen_r = (size_t)n;
	return 0;
}

/* 1 good, 0 bad, -1 OpenSSL failed. */
static int
check_signature(const struct jwt_key *k, const char *signed_part,
    size_t slen, const unsigned char *sig, size_t siglen)
{
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	unsigned char *der = NULL;
	size_t derlen = 0;
	int rc = -1;

	if (md == NULL)
		return -1;
	if (k->ec) {
		if (es256_der(sig, siglen, &der, &derlen) < 0) {
			EVP_MD_CTX_free(md);
			return siglen != 2 * ES256_HALF ? 0 : -1;
		}
		sig = der;
		siglen = derlen;
	}
	if (EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, k->pkey) == 1)
		rc = EVP_DigestVerify(md, sig, siglen,
		    (const unsigned char *)signed_part, slen) == 1 ? 1 : 0;
	OPENSSL_free(der);
	EVP_MD_CTX_free(md);
	return rc;
}

static enum jwt_result
invalid(char *why, const char *text)
{
	str_copy(why, ERR_LEN, text);
	return JWT_INVALID;
}

enum jwt_result
jwt_verify(const struct jwt_key *k, const struct jwt_policy *p,
    const char *tok, size_t len, char *user, size_t size, char *why)
{
	unsigned char hdr[JWT_HEADER_MAX], sig[JWT_SIG_MAX];
	unsigned char *body = NULL;
	const char *dot1, *dot2;
	size_t hlen, blen, siglen;
	struct claims c;
	enum jwt_result r = JWT_INVALID;
	int v;

	memset(&c, 0, sizeof(c));
	if (size > 0)
		user[0] = '\0';
	if (len > JWT_MAX)
		return invalid(why, "token too long");
	dot1 = memchr(tok, '.', len);
	dot2 = dot1 != NULL ? memchr(dot1 + 1, '.', len - (size_t)(dot1 + 1 -
	    tok)) : NULL;
	if (dot2 == NULL || memchr(dot2 + 1, '.', len - (size_t)(dot2 + 1 -
	    tok)) != NULL)
		return invalid(why, "not a signed JWT (three parts)");
	if (b64url_decode(hdr, sizeof(hdr), &hlen, tok, (size_t)(dot1 - tok)) <
	    0 || !parse_object((const char *)hdr, hlen, true, p, &c))
		return invalid(why, "bad JWT header");
	/* The key decides the algorithm (RFC 8725 sec. 3.1). */
	if (strcmp(c.alg, jwt_key_alg(k)) != 0)
		return invalid(why, "algorithm is not the key's");
	if (c.crit)
		return invalid(why, "critical header extension");
	if (b64url_decode(sig, sizeof(sig), &siglen, dot2 + 1,
	    len - (size_t)(dot2 + 1 - tok)) < 0 || siglen == 0)
		return invalid(why, "bad signature encoding");
	v = check_signature(k, tok, (size_t)(dot2 - tok), sig, siglen);
	if (v < 0) {
		str_copy(why, ERR_LEN, "signature check failed (OpenSSL)");
		return JWT_ERROR;
	}
	if (v == 0)
		return invalid(why, "bad signature");
	/* Signed by the key: now the claims may be read. */
	blen = (size_t)(dot2 - dot1 - 1);
	body = malloc(BASE64_DECODED_MAX(blen) + 3);
	if (body == NULL) {
		str_copy(why, ERR_LEN, "out of memory");
		return JWT_ERROR;
	}
	c.seen = 0;
	if (b64url_decode(body, BASE64_DECODED_MAX(blen) + 3, &blen, dot1 + 1,
	    blen) < 0 || !parse_object((const char *)body, blen, false, p, &c))
		str_copy(why, ERR_LEN, "bad JWT claims");
	else if (!c.has_exp)
		str_copy(why, ERR_LEN, "no exp claim");
	else if (p->now >= c.exp + JWT_LEEWAY_S)
		str_copy(why, ERR_LEN, "expired");
	else if (c.has_nbf && p->now + JWT_LEEWAY_S < c.nbf)
		str_copy(why, ERR_LEN, "not yet valid (nbf)");
	else if (p->issuer != NULL && p->issuer[0] != '\0' &&
	    strcmp(c.iss, p->issuer) != 0)
		str_copy(why, ERR_LEN, "wrong issuer");
	else if (p->audience != NULL && p->audience[0] != '\0' && !c.aud_ok)
		str_copy(why, ERR_LEN, "wrong audience");
	else if (c.user[0] == '\0')
		str_copy(why, ERR_LEN, "no user claim");
	else if (str_copy(user, size, c.user) < 0)
		str_copy(why, ERR_LEN, "user claim too long");
	else
		r = JWT_OK;
	if (r != JWT_OK && size > 0)
		user[0] = '\0';
	explicit_bzero(body, BASE64_DECODED_MAX((size_t)(dot2 - dot1 - 1)) + 3);
	free(body);
	return r;
}
