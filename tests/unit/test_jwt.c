/*
 * JWT verification (src/auth/jwt.c) and the SASL mechanisms built on it
 * (OAUTHBEARER, XOAUTH2 in src/auth/sasl_oauth.c), with keys made here:
 * RS256 and ES256
 * tokens that pass, and each way one must fail: expired, not yet valid,
 * signed by another key, alg "none" or HS256 or the other algorithm,
 * crit, wrong issuer or audience, no user claim, duplicate claims,
 * malformed base64url or JSON, oversized. Every token is also cut at each
 * length, which must never verify.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "../../src/auth/jwt.h"
#include "../../src/auth/sasl.h"
#include "../../src/lib/base64.h"

#define NOW	1700000000

struct keypair {
	EVP_PKEY	*priv;
	struct jwt_key	*pub;
	bool		 ec;
};

static struct keypair rsa, ecp, rsa2;

static void
make_key(struct keypair *k, bool ec)
{
	char err[ERR_LEN], *pem;
	BIO *bio = BIO_new(BIO_s_mem());
	long len;

	k->ec = ec;
	k->priv = ec ? EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256") :
	    EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
	assert_non_null(k->priv);
	assert_int_equal(PEM_write_bio_PUBKEY(bio, k->priv), 1);
	len = BIO_get_mem_data(bio, &pem);
	assert_int_equal(jwt_key_from_pem(&k->pub, pem, (size_t)len, err), 0);
	BIO_free(bio);
}

static int
setup(void **state)
{
	(void)state;
	make_key(&rsa, false);
	make_key(&ecp, true);
	make_key(&rsa2, false);
	return 0;
}

static int
teardown(void **state)
{
	struct keypair *all[] = { &rsa, &ecp, &rsa2 };

	(void)state;
	for (size_t i = 0; i < 3; i++) {
		EVP_PKEY_free(all[i]->priv);
		jwt_key_free(&all[i]->pub);
	}
	return 0;
}

/* base64url of len octets, no padding, appended to dst. */
static void
b64url(char *dst, size_t size, const void *src, size_t len)
{
	char *p = dst + strlen(dst);

	assert_int_equal(base64_encode(p, size - strlen(dst), src, len), 0);
	for (; *p != '\0'; p++)
		if (*p == '+')
			*p = '-';
		else if (*p == '/')
			*p = '_';
		else if (*p == '=')
			*p = '\0';
}

/* header.claims.signature, signed by k. */
static char *
token(const struct keypair *k, const char *header, const char *claims)
{
	size_t size = 4 * (strlen(header) + strlen(claims)) + 2048, siglen;
	char *tok = calloc(1, size);
	unsigned char sig[1024], raw[64];
	EVP_MD_CTX *md = EVP_MD_CTX_new();

	b64url(tok, size, header, strlen(header));
	strcat(tok, ".");
	b64url(tok, size, claims, strlen(claims));
	siglen = sizeof(sig);
	assert_int_equal(EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL,
	    k->priv), 1);
	assert_int_equal(EVP_DigestSign(md, sig, &siglen,
	    (unsigned char *)tok, strlen(tok)), 1);
	EVP_MD_CTX_free(md);
	strcat(tok, ".");
	if (k->ec) {
		const unsigned char *p = sig;
		ECDSA_SIG *es = d2i_ECDSA_SIG(NULL, &p, (long)siglen);

		assert_non_null(es);
		BN_bn2binpad(ECDSA_SIG_get0_r(es), raw, 32);
		BN_bn2binpad(ECDSA_SIG_get0_s(es), raw + 32, 32);
		ECDSA_SIG_free(es);
		b64url(tok, size, raw, 64);
	} else {
		b64url(tok, size, sig, siglen);
	}
	return tok;
}

static const struct jwt_policy policy = { .issuer = "https://idp",
    .audience = "pop3", .now = NOW };

#define GOOD	"{\"sub\":\"alice\",\"exp\":1700000600,\"iss\":\"https://idp\"," \
		"\"aud\":[\"x\",\"pop3\"]}"

static enum jwt_result
check(const struct keypair *k, const char *tok, char *user)
{
	char why[ERR_LEN];

	return jwt_verify(k->pub, &policy, tok, strlen(tok), user,
	    JWT_CLAIM_MAX + 1, why);
}

static void
test_valid_rs256_and_es256(void **state)
{
	char user[JWT_CLAIM_MAX + 1];
	char *t;

	(void)state;
	t = token(&rsa, "{\"alg\":\"RS256\",\"typ\":\"JWT\"}", GOOD);
	assert_int_equal(check(&rsa, t, user), JWT_OK);
	assert_string_equal(user, "alice");
	/* Every prefix fails. */
	for (size_t n = 0; n < strlen(t); n++) {
		char why[ERR_LEN];

		assert_int_equal(jwt_verify(rsa.pub, &policy, t, n, user,
		    sizeof(user), why), JWT_INVALID);
		assert_string_equal(user, "");
	}
	free(t);
	t = token(&ecp, "{\"alg\":\"ES256\"}", GOOD);
	assert_int_equal(check(&ecp, t, user), JWT_OK);
	assert_string_equal(jwt_key_alg(ecp.pub), "ES256");
	free(t);
	/* Another user claim, escapes decoded, fractions of seconds. */
	t = token(&rsa, "{\"alg\":\"RS256\"}", "{\"email\":\"a\\u00e9@x\","
	    "\"exp\":1700000600.5,\"iss\":\"https:\\/\\/idp\",\"aud\":\"pop3\","
	    "\"nested\":{\"a\":[1,2,{\"b\":null}],\"c\":-1.5e3}}");
	{
		struct jwt_policy p = policy;
		char why[ERR_LEN];

		p.user_claim = "email";
		assert_int_equal(jwt_verify(rsa.pub, &p, t, strlen(t), user,
		    sizeof(user), why), JWT_OK);
		assert_string_equal(user, "a\xc3\xa9@x");
	}
	free(t);
}

static void
test_claims_that_fail(void **state)
{
	static const char *const bad[] = {
		/* expired (beyond the leeway), not yet valid, no exp */
		"{\"sub\":\"a\",\"exp\":1699999000,\"iss\":\"https://idp\",\"aud\":\"pop3\"}",
		"{\"sub\":\"a\",\"exp\":1700000600,\"nbf\":1700001000,\"iss\":\"https://idp\",\"aud\":\"pop3\"}",
		"{\"sub\":\"a\",\"iss\":\"https://idp\",\"aud\":\"pop3\"}",
		/* issuer, audience */
		"{\"sub\":\"a\",\"exp\":1700000600,\"iss\":\"https://evil\",\"aud\":\"pop3\"}",
		"{\"sub\":\"a\",\"exp\":1700000600,\"aud\":\"pop3\"}",
		"{\"sub\":\"a\",\"exp\":1700000600,\"iss\":\"https://idp\",\"aud\":[\"imap\"]}",
		"{\"sub\":\"a\",\"exp\":1700000600,\"iss\":\"https://idp\"}",
		/* no user, a user that is not a string, duplicates */
		"{\"exp\":1700000600,\"iss\":\"https://idp\",\"aud\":\"pop3\"}",
		"{\"sub\":7,\"exp\":1700000600,\"iss\":\"https://idp\",\"aud\":\"pop3\"}",
		"{\"sub\":\"a\",\"sub\":\"b\",\"exp\":1700000600,\"iss\":\"https://idp\",\"aud\":\"pop3\"}",
		"{\"sub\":\"a\",\"exp\":1700000600,\"exp\":9999999999,\"iss\":\"https://idp\",\"aud\":\"pop3\"}",
		/* JSON that is not: trailing data, bad escapes, NUL, depth */
		"{\"sub\":\"a\",\"exp\":1700000600,\"iss\":\"https://idp\",\"aud\":\"pop3\"}x",
		"{\"sub\":\"a\\x\",\"exp\":1700000600,\"iss\":\"https://idp\",\"aud\":\"pop3\"}",
		"{\"sub\":\"a\\u0000\",\"exp\":1700000600,\"iss\":\"https://idp\",\"aud\":\"pop3\"}",
		"{\"sub\":\"a\",\"exp\":-5,\"iss\":\"https://idp\",\"aud\":\"pop3\"}",
		"{\"sub\":\"a\",\"exp\":1700000600,\"iss\":\"https://idp\",\"aud\":\"pop3\",\"d\":[[[[[[[[[[1]]]]]]]]]]}",
		"[\"sub\"]",
	};
	char user[JWT_CLAIM_MAX + 1];

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char *t = token(&rsa, "{\"alg\":\"RS256\"}", bad[i]);

		assert_int_equal(check(&rsa, t, user), JWT_INVALID);
		assert_string_equal(user, "");
		free(t);
	}
}

static void
test_headers_and_keys_that_fail(void **state)
{
	char user[JWT_CLAIM_MAX + 1], *t, *none;
	char *dot;

	(void)state;
	/* Signed by another key of the same kind. */
	t = token(&rsa2, "{\"alg\":\"RS256\"}", GOOD);
	assert_int_equal(check(&rsa, t, user), JWT_INVALID);
	free(t);
	/* The algorithm must be the key's. */
	t = token(&ecp, "{\"alg\":\"ES256\"}", GOOD);
	assert_int_equal(check(&rsa, t, user), JWT_INVALID);
	free(t);
	t = token(&rsa, "{\"alg\":\"HS256\"}", GOOD);
	assert_int_equal(check(&rsa, t, user), JWT_INVALID);
	free(t);
	t = token(&rsa, "{\"alg\":\"RS256\",\"crit\":[\"exp\"]}", GOOD);
	assert_int_equal(check(&rsa, t, user), JWT_INVALID);
	free(t);
	t = token(&rsa, "{\"typ\":\"JWT\"}", GOOD);
	assert_int_equal(check(&rsa, t, user), JWT_INVALID);
	free(t);
	/* alg none: with no signature and with a valid one of another. */
	t = token(&rsa, "{\"alg\":\"RS256\"}", GOOD);
	none = calloc(1, strlen(t) + 64);
	b64url(none, strlen(t) + 64, "{\"alg\":\"none\"}", 14);
	dot = strchr(t, '.');
	strcat(none, dot);
	assert_int_equal(check(&rsa, none, user), JWT_INVALID);
	*strrchr(none, '.') = '\0';
	strcat(none, ".");
	assert_int_equal(check(&rsa, none, user), JWT_INVALID);
	free(none);
	/* Malformed base64url: padding, '+', a stray character, 4 parts. */
	{
		static const char *const junk[] = { "=", "+", "*", ".x" };

		for (size_t i = 0; i < 4; i++) {
			char *m = calloc(1, strlen(t) + 8);

			strcpy(m, t);
			strcat(m, junk[i]);
			assert_int_equal(check(&rsa, m, user), JWT_INVALID);
			free(m);
		}
	}
	/* A flipped signature bit. */
	t[strlen(t) - 3] ^= 1;
	assert_int_equal(check(&rsa, t, user), JWT_INVALID);
	free(t);
}

static void
test_oversized_and_odd_keys(void **state)
{
	char user[JWT_CLAIM_MAX + 1], err[ERR_LEN], why[ERR_LEN];
	char *big = malloc(JWT_MAX + 2);
	struct jwt_key *k = NULL;
	EVP_PKEY *small = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)1024);
	BIO *bio = BIO_new(BIO_s_mem());
	char *pem;
	long len;

	(void)state;
	memset(big, 'A', JWT_MAX + 1);
	big[10] = big[20] = '.';
	assert_int_equal(jwt_verify(rsa.pub, &policy, big, JWT_MAX + 1, user,
	    sizeof(user), why), JWT_INVALID);
	assert_string_equal(why, "token too long");
	free(big);
	/* RSA under 2048 bits, and no key at all. */
	assert_int_equal(PEM_write_bio_PUBKEY(bio, small), 1);
	len = BIO_get_mem_data(bio, &pem);
	assert_int_equal(jwt_key_from_pem(&k, pem, (size_t)len, err), -1);
	assert_non_null(strstr(err, "1024 bits"));
	assert_int_equal(jwt_key_from_pem(&k, "junk", 4, err), -1);
	assert_null(k);
	assert_int_equal(jwt_key_load(&k, "/nonexistent/key.pem", err), -1);
	BIO_free(bio);
	EVP_PKEY_free(small);
}

/* ---- OAUTHBEARER and XOAUTH2 over the verifier ---- */

/* A user database that knows alice only. */
static enum auth_result
fake_lookup(struct auth_db *db, const char *user, struct auth_user *u)
{
	(void)db;
	memset(u, 0, sizeof(*u));
	if (strcmp(user, "alice") != 0)
		return AUTH_PERMFAIL;
	strcpy(u->name, user);
	return AUTH_OK;
}

static const struct auth_ops fake_ops = { .name = "fake",
    .lookup = fake_lookup };
static const struct sasl_channel tls = { .tls = true };

struct oauth {
	struct sasl_server	 srv;
	struct sasl_session	*s;
	unsigned char		 out[SASL_CHALLENGE_MAX];
	size_t			 outlen;
	struct auth_user	 u;
};

static void
oauth_start(struct oauth *o, const char *mech)
{
	memset(o, 0, sizeof(*o));
	o->srv.ops = &fake_ops;
	o->srv.flags = SASL_ALLOW_OAUTH;
	o->srv.oauth_key = ecp.pub;
	o->srv.oauth_policy = policy;
	o->srv.oauth_policy.now = 0;
	assert_int_equal(sasl_start(&o->s, &o->srv, mech, &tls), 0);
}

static enum sasl_step
oauth_step(struct oauth *o, const char *in, size_t len)
{
	return sasl_step(o->s, (const unsigned char *)in, len, o->out,
	    sizeof(o->out), &o->outlen, &o->u);
}

/* "n,a=USER,^Aauth=Bearer TOKEN^A^A" (or XOAUTH2's) for a fresh token. */
static size_t
response(char *buf, size_t size, bool xoauth2, const char *authzid,
    const char *claims)
{
	char *t = token(&ecp, "{\"alg\":\"ES256\"}", claims);
	int n = xoauth2 ?
	    snprintf(buf, size, "user=%s\001auth=Bearer %s\001\001", authzid,
	    t) : snprintf(buf, size, "n,%s%s,\001host=h\001port=995\001auth="
	    "Bearer %s\001\001", authzid[0] != '\0' ? "a=" : "", authzid, t);

	free(t);
	assert_true(n > 0 && (size_t)n < size);
	return (size_t)n;
}

/* The claims of a token for alice valid now (the policy's clock is real). */
static const char *
alice_claims(char *buf, size_t size, const char *sub)
{
	snprintf(buf, size, "{\"sub\":\"%s\",\"exp\":%lld,\"iss\":"
	    "\"https://idp\",\"aud\":\"pop3\"}", sub,
	    (long long)time(NULL) + 600);
	return buf;
}

static void
test_oauth_mechanisms_log_in(void **state)
{
	char resp[4096], claims[256];
	struct oauth o;
	size_t n;

	(void)state;
	/* OAUTHBEARER, initial response; then without the authzid. */
	oauth_start(&o, "OAUTHBEARER");
	n = response(resp, sizeof(resp), false, "alice",
	    alice_claims(claims, sizeof(claims), "alice"));
	assert_int_equal(oauth_step(&o, resp, n), SASL_OK);
	assert_string_equal(o.u.name, "alice");
	sasl_free(&o.s);
	oauth_start(&o, "oauthbearer");
	n = response(resp, sizeof(resp), false, "", claims);
	assert_int_equal(oauth_step(&o, resp, n), SASL_OK);
	assert_string_equal(sasl_user(o.s), "alice");
	sasl_free(&o.s);
	/* XOAUTH2, two-step: an empty challenge first. */
	oauth_start(&o, "XOAUTH2");
	assert_int_equal(oauth_step(&o, NULL, 0), SASL_CONTINUE);
	assert_int_equal(o.outlen, 0);
	n = response(resp, sizeof(resp), true, "alice", claims);
	assert_int_equal(oauth_step(&o, resp, n), SASL_OK);
	sasl_free(&o.s);
}

static void
test_oauth_refusals_challenge_then_fail(void **state)
{
	char resp[4096], claims[256];
	struct {
		const char	*mech, *authzid, *sub;
	} cases[] = {
		{ "OAUTHBEARER", "bob", "alice" },	/* someone else's */
		{ "OAUTHBEARER", "", "nobody" },	/* unknown user */
		{ "XOAUTH2", "alice", "bob" },
	};
	struct oauth o;
	size_t n;

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		oauth_start(&o, cases[i].mech);
		n = response(resp, sizeof(resp), cases[i].mech[0] == 'X',
		    cases[i].authzid, alice_claims(claims, sizeof(claims),
		    cases[i].sub));
		assert_int_equal(oauth_step(&o, resp, n), SASL_CONTINUE);
		assert_int_equal(o.outlen, 45);
		assert_memory_equal(o.out, "{\"status\":\"invalid_token\","
		    "\"schemes\":\"bearer\"}", 45);
		assert_int_equal(oauth_step(&o, "\001", 1), SASL_FAIL);
		sasl_free(&o.s);
	}
	/* An expired token, the same way. */
	oauth_start(&o, "OAUTHBEARER");
	n = response(resp, sizeof(resp), false, "alice",
	    "{\"sub\":\"alice\",\"exp\":1000,\"iss\":\"https://idp\","
	    "\"aud\":\"pop3\"}");
	assert_int_equal(oauth_step(&o, resp, n), SASL_CONTINUE);
	assert_int_equal(oauth_step(&o, "", 0), SASL_FAIL);
	sasl_free(&o.s);
}

static void
test_oauth_grammar_is_strict(void **state)
{
	static const char *const bad[] = {
		"p=tls-unique,,\001auth=Bearer t\001\001",	/* binding */
		"n,a=alice,\001auth=Bearer t\001",		/* no end */
		"n,a=alice,\001auth=Bearer t\001\001x",		/* after it */
		"n,a=alice,\001auth=Basic dDp0\001\001",	/* scheme */
		"n,a=alice,\001auth=Bearer \001\001",		/* no token */
		"n,a=alice,\001host=h\001\001",			/* no auth */
		"n,a=al=2Xce,\001auth=Bearer t\001\001",	/* saslname */
		"n,a=alice\001auth=Bearer t\001\001",		/* gs2 */
		"n,a=alice,\001=x\001auth=Bearer t\001\001",	/* key */
		"n,a=alice,\001auth=Bearer t\001auth=Bearer u\001\001",
	};
	struct oauth o;

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		oauth_start(&o, "OAUTHBEARER");
		assert_int_equal(oauth_step(&o, bad[i], strlen(bad[i])),
		    SASL_BAD);
		sasl_free(&o.s);
	}
	/* XOAUTH2 needs its user=. */
	oauth_start(&o, "XOAUTH2");
	assert_int_equal(oauth_step(&o, "auth=Bearer t\001\001", 15),
	    SASL_BAD);
	sasl_free(&o.s);
}

static void
test_oauth_offered_only_when_configured(void **state)
{
	char list[SASL_MECHS_LEN];
	struct sasl_server srv = { .ops = &fake_ops };
	struct sasl_session *s = NULL;

	(void)state;
	assert_int_equal(sasl_mechanisms(list, sizeof(list), 0, &tls), 0);
	assert_null(strstr(list, "OAUTHBEARER"));
	assert_int_equal(sasl_mechanisms(list, sizeof(list), SASL_ALLOW_OAUTH,
	    &tls), 0);
	assert_non_null(strstr(list, "OAUTHBEARER XOAUTH2"));
	/* Like PLAIN: not on plaintext unless allowed. */
	assert_int_equal(sasl_mechanisms(list, sizeof(list), SASL_ALLOW_OAUTH,
	    NULL), 0);
	assert_null(strstr(list, "XOAUTH2"));
	/* A flag without a key offers nothing. */
	srv.flags = SASL_ALLOW_OAUTH;
	assert_int_equal(sasl_start(&s, &srv, "XOAUTH2", &tls), -1);
	srv.oauth_key = rsa.pub;
	assert_int_equal(sasl_start(&s, &srv, "XOAUTH2", NULL), -1);
	assert_int_equal(sasl_start(&s, &srv, "XOAUTH2", &tls), 0);
	sasl_free(&s);
}

/* oauth2_token_command: the step waits, the helper's verdict resumes it. */
static void
test_oauth_external_check_pends_then_resumes(void **state)
{
	static const char resp[] = "n,a=alice,\001auth=Bearer opaque-1\001\001";
	struct {
		enum auth_result	 verdict;
		const char		*owner;
		enum sasl_step		 want;
	} cases[] = {
		{ AUTH_OK, "alice", SASL_OK },
		{ AUTH_OK, "bob", SASL_CONTINUE },	/* someone else's */
		{ AUTH_PERMFAIL, NULL, SASL_CONTINUE },
		{ AUTH_TEMPFAIL, NULL, SASL_TEMPFAIL },
	};
	struct sasl_server srv = { .ops = &fake_ops,
	    .flags = SASL_ALLOW_OAUTH | SASL_OAUTH_EXTERNAL };
	unsigned char out[SASL_CHALLENGE_MAX];
	struct sasl_session *s;
	struct auth_user u;
	const char *tok, *user;
	size_t len, outlen;

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		assert_int_equal(sasl_start(&s, &srv, "OAUTHBEARER", &tls), 0);
		assert_int_equal(sasl_step(s, (const unsigned char *)resp,
		    sizeof(resp) - 1, out, sizeof(out), &outlen, &u),
		    SASL_PENDING);
		sasl_oauth_pending(s, &tok, &len, &user);
		assert_int_equal(len, 8);
		assert_memory_equal(tok, "opaque-1", 8);
		assert_string_equal(user, "alice");
		assert_int_equal(sasl_oauth_resume(s, cases[i].verdict,
		    cases[i].owner, out, sizeof(out), &outlen, &u),
		    cases[i].want);
		if (cases[i].want == SASL_OK)
			assert_string_equal(u.name, "alice");
		if (cases[i].want == SASL_CONTINUE) {
			assert_int_equal(outlen, 45);
			assert_int_equal(sasl_step(s, (const unsigned char *)
			    "\001", 1, out, sizeof(out), &outlen, &u),
			    SASL_FAIL);
		}
		/* Once only. */
		assert_int_equal(sasl_oauth_resume(s, AUTH_OK, "alice", out,
		    sizeof(out), &outlen, &u), SASL_BAD);
		sasl_free(&s);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_valid_rs256_and_es256),
		cmocka_unit_test(test_claims_that_fail),
		cmocka_unit_test(test_headers_and_keys_that_fail),
		cmocka_unit_test(test_oversized_and_odd_keys),
		cmocka_unit_test(test_oauth_mechanisms_log_in),
		cmocka_unit_test(test_oauth_refusals_challenge_then_fail),
		cmocka_unit_test(test_oauth_grammar_is_strict),
		cmocka_unit_test(test_oauth_offered_only_when_configured),
		cmocka_unit_test(test_oauth_external_check_pends_then_resumes),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
