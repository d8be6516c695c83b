/*
 * crypt(3) hashing shared by the passwd-file backend and postino-passwd.
 * Each call works in its own stack struct crypt_data and wipes it, so no
 * copy of a password or hash outlives the call.
 */
#ifndef POSTINO_AUTH_HASH_H
#define POSTINO_AUTH_HASH_H

#include <stdbool.h>
#include <stddef.h>

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
 * How many times this process ran crypt(3) through auth_hash_verify().
 * For tests: it proves that unknown and locked users pay a dummy hash.
 */
unsigned long auth_hash_count(void);

#endif
