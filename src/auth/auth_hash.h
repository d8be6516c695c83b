/*
 * crypt(3) hashing shared by the passwd-file backend and postino-passwd.
 * Each call works in its own stack struct crypt_data and wipes it, so no
 * copy of a password or hash outlives the call.
 */
#ifndef POSTINO_AUTH_HASH_H
#define POSTINO_AUTH_HASH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "auth.h"
#include "../lib/base64.h"

/* Bytes a crypt(3) hash takes with its NUL (CRYPT_OUTPUT_SIZE). */
#define AUTH_HASH_MAX	384

/*
 * True when crypt_rn(pass, hash) reproduces hash exactly; the comparison
 * takes the same time wherever the first difference is. A hash crypt(3)
 * cannot use (unknown method, "*" or "!" prefix) never matches, but still
 * counts as one computation.
 */
bool auth_hash_verify(const char *pass, const char *hash);

/*
 * Hash pass with a fresh salt of the method named by prefix ("$y$", "$6$",
 * "$2b$"...; cost 0 = libcrypt's default), salt bytes from the OS RNG.
 * 0 and the hash in out, or -1 with err (ERR_LEN) filled.
 */
int auth_hash_make(const char *prefix, unsigned long cost, const char *pass,
    char *out, size_t outsize, char *err);

/*
 * How many password hashes this process computed to verify a password:
 * crypt(3) in auth_hash_verify(), PBKDF2 in auth_scram_verify().
 * For tests: it proves that unknown and locked users pay a dummy hash.
 */
unsigned long auth_hash_count(void);

/* ---- Stored secrets: "{SCHEME}secret" (passwd-file, pgsql) ------------ */

enum auth_scheme {
	AUTH_SCHEME_CRYPT,	/* a crypt(3) hash: no prefix, {CRYPT} ... */
	AUTH_SCHEME_PLAIN,	/* {PLAIN}: also for APOP, CRAM-MD5, SCRAM */
	AUTH_SCHEME_SCRAM,	/* {SCRAM-SHA-256}iter,salt,stored,server */
	AUTH_SCHEME_LOCKED,	/* empty, "*" or "!": never logs in */
	AUTH_SCHEME_UNUSABLE,	/* unknown scheme, a secret we cannot use */
};

/*
 * The scheme of a stored password field (a {SCHEME} prefix, any case, or
 * none for crypt(3), Dovecot's default_pass_scheme) and in *secret_r what
 * follows the prefix. A SCRAM secret is parsed and a crypt(3) hash checked
 * with crypt_checksalt() here, once. *why_r: NULL, or why the user cannot
 * log in (AUTH_SCHEME_UNUSABLE) or should rehash (a legacy or weak
 * AUTH_SCHEME_CRYPT), for the log.
 */
enum auth_scheme auth_hash_scheme(const char *field, const char **secret_r,
    const char **why_r);

/*
 * What a password check costs a user who gets no real one (unknown,
 * locked, unusable, or {PLAIN}): one hash of the method real users have.
 */
struct auth_dummy {
	char		 hash[AUTH_HASH_MAX];	/* unless is_scram */
	bool		 is_scram;
	struct auth_scram scram;
};

/* Start with a yescrypt hash. 0, or -1 with err (ERR_LEN) filled. */
int auth_dummy_init(struct auth_dummy *d, char *err);

/*
 * Take secret, of scheme sch as auth_hash_scheme() gave it, as the dummy
 * if it is a crypt(3) hash or a SCRAM secret; otherwise keep the old one.
 */
void auth_dummy_learn(struct auth_dummy *d, enum auth_scheme sch,
    const char *secret);

/* Check pass against the dummy, for the time it takes; the result is moot. */
void auth_dummy_pay(const struct auth_dummy *d, const char *pass);

/*
 * The one plaintext check of every backend: true when pass is the
 * password of user's stored secret (scheme sch and secret as
 * auth_hash_scheme() split them). The verification cache
 * (auth_cache.h) answers first: a hit is a success without a hash and
 * not counted in auth_hash_count(); a success the slow way fills it.
 * Anything else is checked in full: a crypt(3) hash or a SCRAM secret
 * costs its own hash, {PLAIN} is compared in constant time after d's
 * hash, and LOCKED or UNUSABLE pays d's hash and fails.
 */
bool auth_secret_verify(const struct auth_dummy *d, const char *user,
    enum auth_scheme sch, const char *secret, const char *pass);

/* ---- SCRAM-SHA-256 (RFC 5802 sec. 3, RFC 7677) ------------------------ */

/*
 * Characters of the longest {SCRAM-SHA-256} secret we write or read, after
 * the prefix: "iter,salt,storedkey,serverkey".
 */
#define AUTH_SCRAM_TEXT_MAX \
	(10 + 1 + BASE64_ENCODED_LEN(AUTH_SCRAM_SALT_MAX) + \
	 2 * (1 + BASE64_ENCODED_LEN(AUTH_SCRAM_KEY_LEN)))

/*
 * True when pass is what SCRAM can use as is: printable ASCII (0x20-0x7e),
 * 1..AUTH_PASS_MAX octets. On such strings SASLprep (RFC 4013) is the
 * identity; we do not implement SASLprep, so any other password is
 * refused for SCRAM rather than hashed differently from the client.
 */
bool auth_scram_pass_ok(const char *pass, size_t len);

/*
 * SaltedPassword = PBKDF2-HMAC-SHA-256(pass, salt, iter) and from it
 * StoredKey and ServerKey into k (which also gets iter and the salt).
 * iter in AUTH_SCRAM_ITER_MIN..MAX, saltlen 1..AUTH_SCRAM_SALT_MAX.
 * 0, or -1 (k wiped) on a bound or an OpenSSL failure.
 */
int auth_scram_derive(const char *pass, size_t passlen, uint32_t iter,
    const unsigned char *salt, size_t saltlen, struct auth_scram *k);

/*
 * Derive k from pass with iter rounds and a fresh AUTH_SCRAM_SALT_LEN-octet
 * salt from RAND_bytes(). 0, or -1 with err (ERR_LEN) filled.
 */
int auth_scram_make(const char *pass, uint32_t iter, struct auth_scram *k,
    char *err);

/* "iter,salt,storedkey,serverkey" into out. 0, or -1 if out is too small. */
int auth_scram_format(const struct auth_scram *k, char *out, size_t outsize);

/*
 * Parse "iter,salt,storedkey,serverkey" strictly: decimal iter within
 * bounds, strict base64, keys of exactly AUTH_SCRAM_KEY_LEN octets.
 * 0, or -1 (k wiped).
 */
int auth_scram_parse(const char *text, struct auth_scram *k);

/*
 * True when pass derives k's StoredKey and ServerKey (compared in constant
 * time). Counts as one hash in auth_hash_count().
 */
bool auth_scram_verify(const char *pass, const struct auth_scram *k);

/* auth_scram_parse(text) and auth_scram_verify(); false if either fails. */
bool auth_scram_verify_text(const char *pass, const char *text);

#endif
