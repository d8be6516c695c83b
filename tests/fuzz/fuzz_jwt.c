/*
 * libFuzzer target for JWT verification (src/auth/jwt.c). The claims
 * parser runs only behind a good signature, so the input is split at its
 * first NUL into a header and a claims set that this target signs (ES256,
 * key made at start) before jwt_verify() sees them; a third of the time
 * the input is taken as a whole token instead, unsigned.
 * Properties: no crash, no overflow, JWT_OK only with a user claim that
 * fits, never JWT_OK for the unsigned whole-token form.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "../../src/auth/jwt.h"
#include "../../src/lib/base64.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static EVP_PKEY *priv;
static struct jwt_key *key;

static void
init(void)
{
	char err[ERR_LEN], *pem;
	BIO *bio = BIO_new(BIO_s_mem());
	long len;

	priv = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	if (priv == NULL || bio == NULL || PEM_write_bio_PUBKEY(bio, priv) !=
	    1 || (len = BIO_get_mem_data(bio, &pem)) <= 0 ||
	    jwt_key_from_pem(&key, pem, (size_t)len, err) < 0)
		abort();
	BIO_free(bio);
}

/* base64url of len octets appended at tok + *n (room checked by caller). */
static void
b64url(char *tok, size_t *n, const void *src, size_t len)
{
	if (base64_encode(tok + *n, BASE64_ENCODED_LEN(len) + 1, src, len) < 0)
		abort();
	for (; tok[*n] != '\0'; (*n)++)
		if (tok[*n] == '+')
			tok[*n] = '-';
		else if (tok[*n] == '/')
			tok[*n] = '_';
		else if (tok[*n] == '=')
			break;
	tok[*n] = '\0';
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const struct jwt_policy pol = { .issuer = "i", .audience = "a",
	    .now = 1700000000 };
	char user[JWT_CLAIM_MAX + 1], why[ERR_LEN], *tok;
	const uint8_t *nul;
	unsigned char sig[128], raw[64];
	size_t n = 0, siglen = sizeof(sig), hlen;
	EVP_MD_CTX *md;
	enum jwt_result r;

	if (priv == NULL)
		init();
	if (size < 1 || size > JWT_MAX)
		return 0;
	if (data[0] % 3 == 0) {
		r = jwt_verify(key, &pol, (const char *)data + 1, size - 1,
		    user, sizeof(user), why);
		if (r == JWT_OK)
			abort();
		return 0;
	}
	data++;
	size--;
	nul = memchr(data, '\0', size);
	hlen = nul != NULL ? (size_t)(nul - data) : 0;
	tok = malloc(BASE64_ENCODED_LEN(size) + 200);
	if (tok == NULL)
		abort();
	b64url(tok, &n, data, hlen);
	tok[n++] = '.';
	b64url(tok, &n, data + hlen + (nul != NULL), size - hlen -
	    (nul != NULL));
	md = EVP_MD_CTX_new();
	if (md == NULL || EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL,
	    priv) != 1 || EVP_DigestSign(md, sig, &siglen,
	    (unsigned char *)tok, n) != 1)
		abort();
	EVP_MD_CTX_free(md);
	{
		const unsigned char *p = sig;
		ECDSA_SIG *es = d2i_ECDSA_SIG(NULL, &p, (long)siglen);

		if (es == NULL)
			abort();
		BN_bn2binpad(ECDSA_SIG_get0_r(es), raw, 32);
		BN_bn2binpad(ECDSA_SIG_get0_s(es), raw + 32, 32);
		ECDSA_SIG_free(es);
	}
	tok[n++] = '.';
	b64url(tok, &n, raw, sizeof(raw));
	r = jwt_verify(key, &pol, tok, n, user, sizeof(user), why);
	if (r == JWT_OK && (user[0] == '\0' || strlen(user) > JWT_CLAIM_MAX))
		abort();
	if (r != JWT_OK && user[0] != '\0')
		abort();
	free(tok);
	return 0;
}
