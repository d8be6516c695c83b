#include "auth_cache.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "crypto.h"

/* Octets of a user id: a collision only costs a miss (the MAC has the name). */
#define ID_LEN		16
#define KEY_LEN		32

/*
 * Links are a slot's index + 1 and 0 is none, so the calloc'ed table
 * starts empty and its pages are touched only as users arrive.
 */
struct slot {
	unsigned char	 id[ID_LEN];
	unsigned char	 mac[CRYPTO_SHA256_LEN];
	uint64_t	 expires;	/* clock seconds */
	uint32_t	 chain;		/* next in the bucket, or in the free list */
	uint32_t	 newer, older;	/* LRU neighbours */
};

static struct {
	struct slot	*slots;
	uint32_t	*buckets;
	size_t		 nslots, nbuckets;	/* nbuckets: a power of two */
	size_t		 used;		/* slots ever handed out */
	size_t		 count;		/* slots holding a user */
	uint32_t	 free;		/* dropped slots, chained */
	uint32_t	 newest, oldest;
	uint32_t	 ttl;
	auth_cache_clock_fn *clock;
	unsigned char	 key[KEY_LEN];
} c;

static uint64_t
monotonic_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec;
}

static struct slot *
at(uint32_t link)
{
	return &c.slots[link - 1];
}

static bool
user_id(const char *user, unsigned char id[ID_LEN])
{
	unsigned char full[CRYPTO_SHA256_LEN];
	const struct crypto_part parts[] = {
		{ "id", 3 }, { user, strlen(user) },
	};
	bool ok = crypto_hmac_sha256(c.key, sizeof(c.key), parts, 2, full);

	memcpy(id, full, ID_LEN);
	explicit_bzero(full, sizeof(full));
	return ok;
}

/* The entry: binds the name, the stored secret and the password. */
static bool
entry_mac(const char *user, const char *secret, const char *pass,
    unsigned char mac[CRYPTO_SHA256_LEN])
{
	const struct crypto_part parts[] = {
		{ "pw", 3 }, { user, strlen(user) + 1 },
		{ secret, strlen(secret) + 1 }, { pass, strlen(pass) },
	};

	return crypto_hmac_sha256(c.key, sizeof(c.key), parts, 4, mac);
}

static uint32_t *
bucket(const unsigned char id[ID_LEN])
{
	uint32_t h;

	memcpy(&h, id, sizeof(h));	/* keyed, so an even spread */
	return &c.buckets[h & (c.nbuckets - 1)];
}

static uint32_t
find(const unsigned char id[ID_LEN])
{
	uint32_t l = *bucket(id);

	/* A chain is at most count long: every slot is in one bucket. */
	for (size_t n = 0; l != 0 && n <= c.count; n++, l = at(l)->chain)
		if (memcmp(at(l)->id, id, ID_LEN) == 0)
			return l;
	return 0;
}

static void
lru_unlink(uint32_t l)
{
	struct slot *s = at(l);

	if (s->newer != 0)
		at(s->newer)->older = s->older;
	else
		c.newest = s->older;
	if (s->older != 0)
		at(s->older)->newer = s->newer;
	else
		c.oldest = s->newer;
	s->newer = s->older = 0;
}

static void
lru_push(uint32_t l)
{
	struct slot *s = at(l);

	s->newer = 0;
	s->older = c.newest;
	if (c.newest != 0)
		at(c.newest)->newer = l;
	c.newest = l;
	if (c.oldest == 0)
		c.oldest = l;
}

/* Unlink l from its bucket and the LRU, wipe it, keep it for reuse. */
static void
drop(uint32_t l)
{
	uint32_t *p = bucket(at(l)->id);

	while (*p != 0 && *p != l)
		p = &at(*p)->chain;
	if (*p == l)
		*p = at(l)->chain;
	lru_unlink(l);
	explicit_bzero(at(l), sizeof(struct slot));
	at(l)->chain = c.free;
	c.free = l;
	c.count--;
}

/* A wiped slot: a dropped one, a fresh one, or the least recent user's. */
static uint32_t
take(void)
{
	uint32_t l;

	if (c.free == 0 && c.used == c.nslots)
		drop(c.oldest);
	if (c.free != 0) {
		l = c.free;
		c.free = at(l)->chain;
		at(l)->chain = 0;
	} else {
		l = (uint32_t)++c.used;
	}
	c.count++;
	return l;
}

int
auth_cache_init(size_t entries, uint32_t ttl_s, auth_cache_clock_fn *clock)
{
	auth_cache_free();
	c.ttl = ttl_s;
	c.clock = clock != NULL ? clock : monotonic_s;
	if (entries == 0)
		return 0;
	if (entries >= UINT32_MAX / 2)
		return -1;
	c.nbuckets = 1;
	while (c.nbuckets < entries)
		c.nbuckets <<= 1;
	c.slots = calloc(entries, sizeof(*c.slots));
	c.buckets = calloc(c.nbuckets, sizeof(*c.buckets));
	if (c.slots == NULL || c.buckets == NULL ||
	    RAND_bytes(c.key, sizeof(c.key)) != 1) {
		auth_cache_free();
		return -1;
	}
	c.nslots = entries;
	return 0;
}

bool
auth_cache_hit(const char *user, const char *secret, const char *pass)
{
	unsigned char id[ID_LEN], mac[CRYPTO_SHA256_LEN];
	bool hit = false;
	uint32_t l;

	if (c.nslots == 0 || !user_id(user, id) || (l = find(id)) == 0)
		return false;
	if (at(l)->expires <= c.clock()) {
		drop(l);
		return false;
	}
	if (entry_mac(user, secret, pass, mac))
		hit = CRYPTO_memcmp(mac, at(l)->mac, sizeof(mac)) == 0;
	explicit_bzero(mac, sizeof(mac));
	if (hit) {
		lru_unlink(l);
		lru_push(l);
	}
	return hit;
}

void
auth_cache_put(const char *user, const char *secret, const char *pass)
{
	unsigned char id[ID_LEN], mac[CRYPTO_SHA256_LEN];
	uint32_t l, *b;

	if (c.nslots == 0 || !user_id(user, id) ||
	    !entry_mac(user, secret, pass, mac))
		return;
	if ((l = find(id)) != 0) {
		lru_unlink(l);
	} else {
		l = take();
		memcpy(at(l)->id, id, ID_LEN);
		b = bucket(id);
		at(l)->chain = *b;
		*b = l;
	}
	memcpy(at(l)->mac, mac, sizeof(mac));
	explicit_bzero(mac, sizeof(mac));
	at(l)->expires = c.clock() + c.ttl;
	lru_push(l);
}

size_t
auth_cache_count(void)
{
	return c.count;
}

void
auth_cache_free(void)
{
	if (c.slots != NULL)
		explicit_bzero(c.slots, c.used * sizeof(*c.slots));
	free(c.slots);
	free(c.buckets);
	explicit_bzero(&c, sizeof(c));
}

size_t
auth_cache_entry_size(void)
{
	/* A slot and, at worst, two bucket heads (a power of two above). */
	return sizeof(struct slot) + 2 * sizeof(uint32_t);
}
