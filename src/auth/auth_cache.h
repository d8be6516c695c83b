/*
 * The password-verification cache of an auth worker (auth_cache_size,
 * auth_cache_ttl): after a plaintext password passed its real check, a
 * keyed MAC of it lets the user's next login with the same password skip
 * the hash, as Dovecot's auth cache does.
 *
 * An entry is HMAC-SHA-256(key, user 0 stored-secret 0 password), the key
 * 32 random octets drawn at auth_cache_init() and kept nowhere else. So:
 * - a changed stored secret (passwd-file, PostgreSQL) never matches an
 *   entry made under the old one: no stale password works for a moment,
 *   and no flush is needed for correctness;
 * - only a right password ever matches; the caller checks every other
 *   one the slow way, so a guess costs what it costs without the cache;
 * - the table holds no user name and no password: a user is found by a
 *   16-octet MAC of the name, and the digests are worthless without the
 *   key. The key is in the same process, though: a dump of its whole
 *   memory lets each password guess be tested with one HMAC instead of
 *   one crypt(3), which is why the cache is off by default. Entries are
 *   wiped on eviction, expiry and exit.
 *
 * One cache per process (the auth role has one password database); the
 * table is a hash of user ids with an LRU list, sized once.
 */
#ifndef POSTINO_AUTH_CACHE_H
#define POSTINO_AUTH_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A monotonic clock in seconds; tests pass their own. */
typedef uint64_t auth_cache_clock_fn(void);

/*
 * Start an empty cache of at most entries users (0: none, every lookup
 * misses), each entry good for ttl_s seconds after the check that made
 * it (hits do not extend it). clock NULL: CLOCK_MONOTONIC. An earlier
 * cache is freed first. 0, or -1 (cache off) when the table cannot be
 * allocated or the key drawn.
 */
int auth_cache_init(size_t entries, uint32_t ttl_s,
    auth_cache_clock_fn *clock);

/*
 * The verdict of an earlier successful check: true when user's entry was
 * made from this secret and this password and has not expired. false
 * sends the caller to the real check.
 */
bool auth_cache_hit(const char *user, const char *secret, const char *pass);

/* Remember that pass passed the real check against user's secret. */
void auth_cache_put(const char *user, const char *secret, const char *pass);

/* Users cached now (expired entries still held count until found). */
size_t auth_cache_count(void);

/* Wipe every entry and the key; the cache is off until the next init. */
void auth_cache_free(void);

/* Memory one entry takes, table links included: for the documentation. */
size_t auth_cache_entry_size(void);

#endif
