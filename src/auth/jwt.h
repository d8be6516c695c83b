/*
 * Verification of OAuth 2.0 access tokens that are JWTs (RFC 7519) signed
 * with JWS (RFC 7515): RS256 (RSASSA-PKCS1-v1_5 with SHA-256) or ES256
 * (ECDSA P-256 with SHA-256, RFC 7518 sec. 3.4), against one public key
 * the administrator configured (oauth2_jwt_key). The auth role uses it
 * for SASL OAUTHBEARER and XOAUTH2: it needs no network and no exec, so
 * it runs under the role's seccomp filter.
 *
 * The algorithm comes from the key, never from the token: a header whose
 * "alg" is not the key's ("none", "HS256" with the public key as an HMAC
 * secret, ...) is refused before any signature work (RFC 8725 sec. 3.1).
 * A "crit" header is refused (we implement no extension, RFC 7515 sec.
 * 4.1.11). Claims: "exp" is required; "nbf" is honoured; "iss" and "aud"
 * are checked when configured; the user claim ("sub" unless configured,
 * e.g. "email") must be a string. Duplicate claims are refused (RFC 7519
 * sec. 4 lets us; an ambiguous token is not one to trust).
 */
#ifndef POSTINO_JWT_H
#define POSTINO_JWT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../lib/str.h"

/*
 * Octets of a whole token: what fits one SASL response (SASL_RESPONSE_MAX)
 * with room for OAUTHBEARER's other fields.
 */
#define JWT_MAX			7168
/* Decoded header: {"alg":"RS256","typ":"JWT","kid":"..."} and then some. */
#define JWT_HEADER_MAX		1024
/* RS256 with a 8192-bit key: 1024 octets; ES256: 64. */
#define JWT_SIG_MAX		1024
/* A claim value we compare (iss, aud, the user): a user name's bound. */
#define JWT_CLAIM_MAX		255
/* Nesting of arrays and objects we skip inside a claims set. */
#define JWT_DEPTH_MAX		8
/* Clock skew allowed on exp and nbf (RFC 7519 sec. 4.1.4: "a few minutes"). */
#define JWT_LEEWAY_S		60

enum jwt_result {
	JWT_OK,
	JWT_INVALID,	/* malformed, bad signature, expired, wrong claims */
	JWT_ERROR,	/* OpenSSL failed: try later */
};

struct jwt_policy {
	const char	*issuer;	/* "" or NULL: not checked */
	const char	*audience;	/* "" or NULL: not checked */
	const char	*user_claim;	/* "" or NULL: "sub" */
	int64_t		 now;		/* seconds since the epoch */
};

struct jwt_key;

/*
 * Read a PEM public key (SubjectPublicKeyInfo) from path: RSA of at least
 * 2048 bits, or EC on P-256. 0, or -1 with err.
 */
int jwt_key_load(struct jwt_key **k_r, const char *path, char *err);
/* The same from PEM text in memory (tests). */
int jwt_key_from_pem(struct jwt_key **k_r, const char *pem, size_t len,
    char *err);
void jwt_key_free(struct jwt_key **k);
/* "RS256" or "ES256". */
const char *jwt_key_alg(const struct jwt_key *k);

/*
 * Verify tok (len octets, not NUL-terminated) with k under p. JWT_OK with
 * the user claim in user (size > JWT_CLAIM_MAX); otherwise why (ERR_LEN)
 * says what failed, for the log: it never holds the token.
 */
enum jwt_result jwt_verify(const struct jwt_key *k,
    const struct jwt_policy *p, const char *tok, size_t len, char *user,
    size_t size, char *why);

#endif
