#include "crypto.h"

#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>

#include "../lib/str.h"

#define MD5_LEN		16

/* HMAC with the digest named (OpenSSL's names: "SHA256", "MD5"). */
static bool
hmac(const char *digest, const void *key, size_t keylen,
    const struct crypto_part *parts, size_t n, unsigned char *out,
    size_t outlen)
{
	OSSL_PARAM params[2];
	EVP_MAC_CTX *ctx = NULL;
	EVP_MAC *mac;
	size_t len = 0;
	bool ok;

	mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
	if (mac == NULL)
		return false;
	params[0] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST,
	    (char *)digest, 0);
	params[1] = OSSL_PARAM_construct_end();
	ok = (ctx = EVP_MAC_CTX_new(mac)) != NULL &&
	    EVP_MAC_init(ctx, key, keylen, params) == 1;
	for (size_t i = 0; ok && i < n; i++)
		ok = EVP_MAC_update(ctx, parts[i].p, parts[i].len) == 1;
	ok = ok && EVP_MAC_final(ctx, out, &len, outlen) == 1 &&
	    len == outlen;
	EVP_MAC_CTX_free(ctx);
	EVP_MAC_free(mac);
	return ok;
}

bool
crypto_hmac_sha256(const void *key, size_t keylen,
    const struct crypto_part *parts, size_t n,
    unsigned char out[CRYPTO_SHA256_LEN])
{
	return hmac("SHA256", key, keylen, parts, n, out, CRYPTO_SHA256_LEN);
}

bool
crypto_hmac_md5(const void *key, size_t keylen, const void *msg,
    size_t msglen, unsigned char out[MD5_LEN])
{
	struct crypto_part part = { msg, msglen };

	return hmac("MD5", key, keylen, &part, 1, out, MD5_LEN);
}

bool
crypto_sha256(const void *msg, size_t len,
    unsigned char out[CRYPTO_SHA256_LEN])
{
	unsigned int mdlen = 0;

	return EVP_Digest(msg, len, out, &mdlen, EVP_sha256(), NULL) == 1 &&
	    mdlen == CRYPTO_SHA256_LEN;
}

bool
crypto_scram_keys(const char *pass, size_t passlen,
    const unsigned char *salt, size_t saltlen, uint32_t iter,
    unsigned char client_key_r[CRYPTO_SHA256_LEN],
    unsigned char stored_key_r[CRYPTO_SHA256_LEN],
    unsigned char server_key_r[CRYPTO_SHA256_LEN])
{
	static const struct crypto_part ck = { "Client Key", 10 };
	static const struct crypto_part sk = { "Server Key", 10 };
	unsigned char salted[CRYPTO_SHA256_LEN], client[CRYPTO_SHA256_LEN];
	bool ok;

	/* Hi() is PBKDF2 with HMAC as the PRF. */
	ok = PKCS5_PBKDF2_HMAC(pass, (int)passlen, salt, (int)saltlen,
	    (int)iter, EVP_sha256(), sizeof(salted), salted) == 1 &&
	    crypto_hmac_sha256(salted, sizeof(salted), &ck, 1, client) &&
	    crypto_sha256(client, sizeof(client), stored_key_r) &&
	    crypto_hmac_sha256(salted, sizeof(salted), &sk, 1, server_key_r);
	if (ok && client_key_r != NULL)
		memcpy(client_key_r, client, sizeof(client));
	explicit_bzero(salted, sizeof(salted));
	explicit_bzero(client, sizeof(client));
	if (!ok) {
		if (client_key_r != NULL)
			explicit_bzero(client_key_r, CRYPTO_SHA256_LEN);
		explicit_bzero(stored_key_r, CRYPTO_SHA256_LEN);
		explicit_bzero(server_key_r, CRYPTO_SHA256_LEN);
	}
	return ok;
}

bool
crypto_scram_nonce_ok(const char *p, size_t len, size_t max)
{
	if (len == 0 || len > max)
		return false;
	for (size_t i = 0; i < len; i++)
		if (p[i] < 0x21 || p[i] > 0x7e || p[i] == ',')
			return false;
	return true;
}

bool
crypto_apop_digest(const char *timestamp, const char *secret,
    char hex[CRYPTO_MD5_HEX_LEN + 1])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	EVP_MD_CTX *ctx;
	bool ok;

	ctx = EVP_MD_CTX_new();
	if (ctx == NULL)
		return false;
	ok = EVP_DigestInit_ex(ctx, EVP_md5(), NULL) &&
	    EVP_DigestUpdate(ctx, timestamp, strlen(timestamp)) &&
	    EVP_DigestUpdate(ctx, secret, strlen(secret)) &&
	    EVP_DigestFinal_ex(ctx, md, &mdlen) && mdlen == MD5_LEN;
	EVP_MD_CTX_free(ctx);
	if (ok)
		str_hex(hex, md, mdlen);
	explicit_bzero(md, sizeof(md));
	return ok;
}

bool
crypto_cram_digest(const char *secret, const void *challenge, size_t chlen,
    char hex[CRYPTO_MD5_HEX_LEN + 1])
{
	unsigned char md[MD5_LEN];
	bool ok;

	ok = crypto_hmac_md5(secret, strlen(secret), challenge, chlen, md);
	if (ok)
		str_hex(hex, md, sizeof(md));
	explicit_bzero(md, sizeof(md));
	return ok;
}

bool
crypto_md5_hex_parse(const char *p, size_t len,
    char want[CRYPTO_MD5_HEX_LEN + 1])
{
	if (len != CRYPTO_MD5_HEX_LEN)
		return false;
	for (size_t i = 0; i < CRYPTO_MD5_HEX_LEN; i++) {
		unsigned char c = (unsigned char)p[i];

		if (c >= 'A' && c <= 'F')
			c = (unsigned char)(c - 'A' + 'a');
		else if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
			return false;
		want[i] = (char)c;
	}
	want[CRYPTO_MD5_HEX_LEN] = '\0';
	return true;
}

bool
crypto_secret_equal(const char *a, const char *b)
{
	unsigned char da[CRYPTO_SHA256_LEN], db[CRYPTO_SHA256_LEN];
	bool ok;

	ok = crypto_sha256(a, strlen(a), da) &&
	    crypto_sha256(b, strlen(b), db) &&
	    CRYPTO_memcmp(da, db, sizeof(da)) == 0;
	explicit_bzero(da, sizeof(da));
	explicit_bzero(db, sizeof(db));
	return ok;
}
