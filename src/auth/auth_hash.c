#include "auth_hash.h"

#include <crypt.h>
#include <errno.h>
#include <string.h>

#include <openssl/crypto.h>

#include "../lib/str.h"

_Static_assert(AUTH_HASH_MAX >= CRYPT_OUTPUT_SIZE,
    "AUTH_HASH_MAX must hold any crypt(3) output");

static unsigned long hash_count;

bool
auth_hash_verify(const char *pass, const char *hash)
{
	struct crypt_data cd;
	size_t hlen = strlen(hash);
	const char *out;
	bool ok = false;

	hash_count++;
	memset(&cd, 0, sizeof(cd));
	out = crypt_rn(pass, hash, &cd, sizeof(cd));
	/* A failure is NULL or a string starting with '*', per crypt(3). */
	if (out != NULL && out[0] != '*' && strlen(out) == hlen)
		ok = CRYPTO_memcmp(out, hash, hlen) == 0;
	explicit_bzero(&cd, sizeof(cd));
	return ok;
}

int
auth_hash_make(const char *prefix, unsigned long cost, const char *pass,
    char *out, size_t outsize, char *err)
{
	char setting[CRYPT_GENSALT_OUTPUT_SIZE];
	struct crypt_data cd;
	const char *h;
	int r = -1;

	if (crypt_gensalt_rn(prefix, cost, NULL, 0, setting,
	    sizeof(setting)) == NULL) {
		str_fmt(err, ERR_LEN, "crypt_gensalt %s: %s", prefix,
		    strerror(errno));
		return -1;
	}
	memset(&cd, 0, sizeof(cd));
	h = crypt_rn(pass, setting, &cd, sizeof(cd));
	if (h == NULL || h[0] == '*')
		str_fmt(err, ERR_LEN, "crypt %s: %s", prefix, strerror(errno));
	else if (str_copy(out, outsize, h) < 0)
		str_copy(err, ERR_LEN, "hash longer than its buffer");
	else
		r = 0;
	explicit_bzero(&cd, sizeof(cd));
	if (r < 0 && outsize > 0)
		explicit_bzero(out, outsize);
	return r;
}

unsigned long
auth_hash_count(void)
{
	return hash_count;
}
