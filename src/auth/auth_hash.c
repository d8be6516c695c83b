#include "auth_hash.h"

#include <crypt.h>
#include <errno.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "../lib/str.h"
#include "auth_cache.h"
#include "crypto.h"

_Static_assert(AUTH_HASH_MAX >= CRYPT_OUTPUT_SIZE,
    "AUTH_HASH_MAX must hold any crypt(3) output");
_Static_assert(AUTH_SCRAM_KEY_LEN == CRYPTO_SHA256_LEN,
    "SCRAM-SHA-256 keys are SHA-256 digests");

static unsigned long hash_count;

static const struct {
	const char	*name;
	enum auth_scheme scheme;
} schemes[] = {
	{ "CRYPT", AUTH_SCHEME_CRYPT },
	{ "SHA512-CRYPT", AUTH_SCHEME_CRYPT },
	{ "SHA256-CRYPT", AUTH_SCHEME_CRYPT },
	{ "BLF-CRYPT", AUTH_SCHEME_CRYPT },
	{ "YESCRYPT", AUTH_SCHEME_CRYPT },
	{ "PLAIN", AUTH_SCHEME_PLAIN },
	{ "SCRAM-SHA-256", AUTH_SCHEME_SCRAM },
};

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

bool
auth_scram_pass_ok(const char *pass, size_t len)
{
	if (len == 0 || len > AUTH_PASS_MAX)
		return false;
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)pass[i] < 0x20 ||
		    (unsigned char)pass[i] > 0x7e)
			return false;
	return true;
}

int
auth_scram_derive(const char *pass, size_t passlen, uint32_t iter,
    const unsigned char *salt, size_t saltlen, struct auth_scram *k)
{
	memset(k, 0, sizeof(*k));
	if (iter < AUTH_SCRAM_ITER_MIN || iter > AUTH_SCRAM_ITER_MAX ||
	    saltlen == 0 || saltlen > AUTH_SCRAM_SALT_MAX ||
	    passlen > AUTH_PASS_MAX)
		return -1;
	k->iter = iter;
	k->saltlen = saltlen;
	memcpy(k->salt, salt, saltlen);
	if (!crypto_scram_keys(pass, passlen, salt, saltlen, iter, NULL,
	    k->stored_key, k->server_key)) {
		explicit_bzero(k, sizeof(*k));
		return -1;
	}
	return 0;
}

int
auth_scram_make(const char *pass, uint32_t iter, struct auth_scram *k,
    char *err)
{
	unsigned char salt[AUTH_SCRAM_SALT_LEN];
	int r;

	if (RAND_bytes(salt, sizeof(salt)) != 1) {
		str_copy(err, ERR_LEN, "RAND_bytes failed");
		return -1;
	}
	r = auth_scram_derive(pass, strlen(pass), iter, salt, sizeof(salt), k);
	explicit_bzero(salt, sizeof(salt));
	if (r < 0)
		str_copy(err, ERR_LEN, "SCRAM-SHA-256 key derivation failed");
	return r;
}

int
auth_scram_format(const struct auth_scram *k, char *out, size_t outsize)
{
	char salt[BASE64_ENCODED_LEN(AUTH_SCRAM_SALT_MAX) + 1];
	char stored[BASE64_ENCODED_LEN(AUTH_SCRAM_KEY_LEN) + 1];
	char server[BASE64_ENCODED_LEN(AUTH_SCRAM_KEY_LEN) + 1];
	int r = -1;

	if (k->saltlen <= AUTH_SCRAM_SALT_MAX &&
	    base64_encode(salt, sizeof(salt), k->salt, k->saltlen) == 0 &&
	    base64_encode(stored, sizeof(stored), k->stored_key,
	    sizeof(k->stored_key)) == 0 &&
	    base64_encode(server, sizeof(server), k->server_key,
	    sizeof(k->server_key)) == 0)
		r = str_fmt(out, outsize, "%u,%s,%s,%s", (unsigned int)k->iter,
		    salt, stored, server);
	explicit_bzero(stored, sizeof(stored));
	explicit_bzero(server, sizeof(server));
	if (r < 0 && outsize > 0)
		explicit_bzero(out, outsize);
	return r;
}

/* Decode one comma-free base64 field of exactly want octets (0: 1..max). */
static int
scram_field(const char *s, size_t len, unsigned char *dst, size_t max,
    size_t want, size_t *len_r)
{
	if (base64_decode(dst, max, len_r, s, len) < 0)
		return -1;
	if ((want != 0 && *len_r != want) || *len_r == 0)
		return -1;
	return 0;
}

int
auth_scram_parse(const char *text, struct auth_scram *k)
{
	const char *f[4], *p = text;
	size_t flen[4], n, got;
	char iter[11];

	memset(k, 0, sizeof(*k));
	if (strnlen(text, AUTH_SCRAM_TEXT_MAX + 1) > AUTH_SCRAM_TEXT_MAX)
		return -1;
	for (n = 0; n < 4; n++) {
		const char *comma = strchr(p, ',');

		f[n] = p;
		flen[n] = comma != NULL ? (size_t)(comma - p) : strlen(p);
		if ((comma == NULL) != (n == 3))
			goto bad;
		if (comma != NULL)
			p = comma + 1;
	}
	if (flen[0] >= sizeof(iter))
		goto bad;
	memcpy(iter, f[0], flen[0]);
	iter[flen[0]] = '\0';
	if (str_parse_u32(iter, &k->iter) < 0 ||
	    k->iter < AUTH_SCRAM_ITER_MIN || k->iter > AUTH_SCRAM_ITER_MAX ||
	    scram_field(f[1], flen[1], k->salt, sizeof(k->salt), 0,
	    &k->saltlen) < 0 ||
	    scram_field(f[2], flen[2], k->stored_key, sizeof(k->stored_key),
	    AUTH_SCRAM_KEY_LEN, &got) < 0 ||
	    scram_field(f[3], flen[3], k->server_key, sizeof(k->server_key),
	    AUTH_SCRAM_KEY_LEN, &got) < 0)
		goto bad;
	return 0;
bad:
	explicit_bzero(k, sizeof(*k));
	return -1;
}

bool
auth_scram_verify(const char *pass, const struct auth_scram *k)
{
	struct auth_scram mine;
	bool ok;

	hash_count++;
	if (auth_scram_derive(pass, strnlen(pass, AUTH_PASS_MAX + 1), k->iter,
	    k->salt, k->saltlen, &mine) < 0)
		return false;
	ok = (CRYPTO_memcmp(mine.stored_key, k->stored_key,
	    sizeof(mine.stored_key)) |
	    CRYPTO_memcmp(mine.server_key, k->server_key,
	    sizeof(mine.server_key))) == 0;
	explicit_bzero(&mine, sizeof(mine));
	return ok;
}

bool
auth_scram_verify_text(const char *pass, const char *text)
{
	struct auth_scram k;
	bool ok;

	ok = auth_scram_parse(text, &k) == 0 && auth_scram_verify(pass, &k);
	explicit_bzero(&k, sizeof(k));
	return ok;
}

/* The scheme named by a "{NAME}" prefix; *end_r after the '}'. */
static enum auth_scheme
scheme_prefix(const char *field, const char **end_r)
{
	const char *end = strchr(field, '}');
	size_t len;

	if (end == NULL)
		return AUTH_SCHEME_UNUSABLE;
	len = (size_t)(end - field - 1);
	*end_r = end + 1;
	for (size_t i = 0; i < sizeof(schemes) / sizeof(schemes[0]); i++)
		if (strlen(schemes[i].name) == len &&
		    strncasecmp(field + 1, schemes[i].name, len) == 0)
			return schemes[i].scheme;
	return AUTH_SCHEME_UNUSABLE;
}

static enum auth_scheme
crypt_scheme(const char *s, const char **why_r)
{
	int check;

	if (strlen(s) >= AUTH_HASH_MAX) {
		*why_r = "hash too long; the user cannot log in";
		return AUTH_SCHEME_UNUSABLE;
	}
	check = crypt_checksalt(s);
	if (check == CRYPT_SALT_INVALID ||
	    check == CRYPT_SALT_METHOD_DISABLED) {
		*why_r = "not a hash this crypt(3) can check; the user cannot "
		    "log in";
		return AUTH_SCHEME_UNUSABLE;
	}
	/* Still usable, but worth a rehash. */
	if (check != CRYPT_SALT_OK)
		*why_r = check == CRYPT_SALT_METHOD_LEGACY ?
		    "legacy hash method; rehash with postino-passwd" :
		    "weak hash; rehash with postino-passwd";
	return AUTH_SCHEME_CRYPT;
}

enum auth_scheme
auth_hash_scheme(const char *field, const char **secret_r, const char **why_r)
{
	enum auth_scheme sch = AUTH_SCHEME_CRYPT;
	const char *s = field;
	struct auth_scram k;
	int r;

	*secret_r = field;
	*why_r = NULL;
	if (field[0] == '\0' || field[0] == '*' || field[0] == '!')
		return AUTH_SCHEME_LOCKED;
	if (field[0] == '{') {
		sch = scheme_prefix(field, &s);
		if (sch == AUTH_SCHEME_UNUSABLE) {
			*why_r = "unknown password scheme; the user cannot "
			    "log in";
			return sch;
		}
	}
	*secret_r = s;
	if (s[0] == '\0')
		return AUTH_SCHEME_LOCKED;
	if (sch == AUTH_SCHEME_PLAIN)
		return AUTH_SCHEME_PLAIN;
	if (s[0] == '*' || s[0] == '!')
		return AUTH_SCHEME_LOCKED;
	if (sch == AUTH_SCHEME_CRYPT)
		return crypt_scheme(s, why_r);
	r = auth_scram_parse(s, &k);
	explicit_bzero(&k, sizeof(k));
	if (r == 0)
		return AUTH_SCHEME_SCRAM;
	*why_r = "not iter,salt,storedkey,serverkey with 4096..10000000 "
	    "iterations; the user cannot log in";
	return AUTH_SCHEME_UNUSABLE;
}

int
auth_dummy_init(struct auth_dummy *d, char *err)
{
	memset(d, 0, sizeof(*d));
	return auth_hash_make("$y$", 0, "postino-dummy", d->hash,
	    sizeof(d->hash), err);
}

void
auth_dummy_learn(struct auth_dummy *d, enum auth_scheme sch,
    const char *secret)
{
	struct auth_scram k;

	if (sch == AUTH_SCHEME_SCRAM) {
		if (auth_scram_parse(secret, &k) == 0) {
			d->scram = k;
			d->is_scram = true;
		}
		explicit_bzero(&k, sizeof(k));
	} else if (sch == AUTH_SCHEME_CRYPT &&
	    str_copy(d->hash, sizeof(d->hash), secret) == 0) {
		d->is_scram = false;
		explicit_bzero(&d->scram, sizeof(d->scram));
	}
}

void
auth_dummy_pay(const struct auth_dummy *d, const char *pass)
{
	if (d->is_scram)
		(void)auth_scram_verify(pass, &d->scram);
	else
		(void)auth_hash_verify(pass, d->hash);
}

bool
auth_secret_verify(const struct auth_dummy *d, const char *user,
    enum auth_scheme sch, const char *secret, const char *pass)
{
	bool ok;

	if (sch != AUTH_SCHEME_CRYPT && sch != AUTH_SCHEME_SCRAM &&
	    sch != AUTH_SCHEME_PLAIN) {
		auth_dummy_pay(d, pass);
		return false;
	}
	if (auth_cache_hit(user, secret, pass))
		return true;
	if (sch == AUTH_SCHEME_PLAIN) {
		/* A plaintext check is cheap: pay the hash anyway. */
		auth_dummy_pay(d, pass);
		ok = crypto_secret_equal(pass, secret);
	} else if (sch == AUTH_SCHEME_SCRAM) {
		ok = auth_scram_verify_text(pass, secret);
	} else {
		ok = auth_hash_verify(pass, secret);
	}
	if (ok)
		auth_cache_put(user, secret, pass);
	return ok;
}
