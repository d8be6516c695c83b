#include "connlimit.h"

#include <netinet/in.h>
#include <stdatomic.h>
#include <string.h>
#include "limits.h"

#define COUNT_BITS	20
#define COUNT_MASK	((UINT64_C(1) << COUNT_BITS) - 1)

static _Atomic uint64_t *table;
static uint32_t nslots, slot, entries;
static unsigned char secret[CONNLIMIT_SECRET_LEN];
static struct connlimit_conf conf;

uint32_t
connlimit_entries(unsigned int max_sessions)
{
	uint64_t want = (uint64_t)max_sessions * 8;
	uint32_t n = CONNLIMIT_ENTRIES_MIN;

	while (n < want && n < CONNLIMIT_ENTRIES_MAX)
		n *= 2;
	return n;
}

size_t
connlimit_size(uint32_t n, uint32_t e)
{
	return (size_t)n * e * sizeof(uint64_t);
}

int
connlimit_setup(void *base, uint32_t n, uint32_t s, uint32_t e,
    const unsigned char key[CONNLIMIT_SECRET_LEN],
    const struct connlimit_conf *c)
{
	if (base == NULL || n == 0 || s >= n || e < CONNLIMIT_PROBE ||
	    (e & (e - 1)) != 0 || e > CONNLIMIT_ENTRIES_MAX ||
	    c->prefix4 < 1 ||
	    c->prefix4 > 32 || c->prefix6 < 1 || c->prefix6 > 128)
		return -1;
	table = base;
	nslots = n;
	slot = s;
	entries = e;
	memcpy(secret, key, sizeof(secret));
	conf = *c;
	/* Whatever a dead predecessor in this slot counted is gone with it. */
	for (uint32_t i = 0; i < e; i++)
		atomic_store_explicit(&table[(size_t)s * e + i], 0,
		    memory_order_relaxed);
	return 0;
}

bool
connlimit_active(void)
{
	return table != NULL;
}

/* SipHash-2-4 (Aumasson and Bernstein), keyed with the master's secret. */
#define ROTL(x, b)	(uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))
#define SIPROUND do { \
	v0 += v1; v1 = ROTL(v1, 13); v1 ^= v0; v0 = ROTL(v0, 32); \
	v2 += v3; v3 = ROTL(v3, 16); v3 ^= v2; \
	v0 += v3; v3 = ROTL(v3, 21); v3 ^= v0; \
	v2 += v1; v1 = ROTL(v1, 17); v1 ^= v2; v2 = ROTL(v2, 32); \
} while (0)

static uint64_t
le64(const unsigned char *p)
{
	uint64_t v = 0;

	for (int i = 7; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

static uint64_t
siphash(const unsigned char *in, size_t len)
{
	uint64_t k0 = le64(secret), k1 = le64(secret + 8);
	uint64_t v0 = UINT64_C(0x736f6d6570736575) ^ k0;
	uint64_t v1 = UINT64_C(0x646f72616e646f6d) ^ k1;
	uint64_t v2 = UINT64_C(0x6c7967656e657261) ^ k0;
	uint64_t v3 = UINT64_C(0x7465646279746573) ^ k1;
	uint64_t b = (uint64_t)len << 56, m;
	size_t i;

	for (i = 0; i + 8 <= len; i += 8) {
		m = le64(in + i);
		v3 ^= m;
		SIPROUND;
		SIPROUND;
		v0 ^= m;
	}
	for (size_t j = 0; i + j < len; j++)
		b |= (uint64_t)in[i + j] << (8 * j);
	v3 ^= b;
	SIPROUND;
	SIPROUND;
	v0 ^= b;
	v2 ^= 0xff;
	for (int r = 0; r < 4; r++)
		SIPROUND;
	return v0 ^ v1 ^ v2 ^ v3;
}

/*
 * The keys of an address and of its network. An IPv4-mapped IPv6 address
 * is the IPv4 address it maps, so one client has one key on both kinds of
 * listener.
 */
static void
make_keys(const struct sockaddr *sa, uint64_t *ip_r, uint64_t *net_r)
{
	unsigned char buf[2 + 16];
	const unsigned char *a;
	unsigned int alen, prefix;
	uint64_t k;

	if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)sa;

		a = s6->sin6_addr.s6_addr;
		alen = 16;
		if (IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr)) {
			a += 12;
			alen = 4;
		}
	} else {
		const struct sockaddr_in *s4 = (const struct sockaddr_in *)sa;

		a = (const unsigned char *)&s4->sin_addr.s_addr;
		alen = 4;
	}
	prefix = alen == 4 ? conf.prefix4 : conf.prefix6;
	buf[0] = 'a';
	buf[1] = (unsigned char)alen;
	memcpy(buf + 2, a, alen);
	k = siphash(buf, 2 + alen) & ~COUNT_MASK;
	*ip_r = k != 0 ? k : COUNT_MASK + 1;
	buf[0] = 'n';
	buf[1] = (unsigned char)prefix;
	for (unsigned int i = 0; i < alen; i++) {
		unsigned int keep = prefix > i * 8 ? prefix - i * 8 : 0;

		if (keep < 8)
			buf[2 + i] &= (unsigned char)(0xff00u >> keep);
	}
	k = siphash(buf, 2 + alen) & ~COUNT_MASK;
	*net_r = k != 0 ? k : COUNT_MASK + 1;
}

static _Atomic uint64_t *
entry(uint32_t region, uint32_t i)
{
	return &table[(size_t)region * entries + (i & (entries - 1))];
}

/* The key's count in one region, and (own region) where it is or could go. */
static unsigned int
count_in(uint32_t region, uint64_t key, uint32_t *at_r, uint32_t *free_r)
{
	uint32_t home = (uint32_t)(key >> COUNT_BITS) & (entries - 1);

	for (uint32_t p = 0; p < CONNLIMIT_PROBE; p++) {
		uint64_t w = atomic_load_explicit(entry(region, home + p),
		    memory_order_relaxed);

		if (w != 0 && (w & ~COUNT_MASK) == key) {
			if (at_r != NULL)
				*at_r = (home + p) & (entries - 1);
			return (unsigned int)(w & COUNT_MASK);
		}
		if (w == 0 && free_r != NULL && *free_r == UINT32_MAX)
			*free_r = (home + p) & (entries - 1);
	}
	return 0;
}

static unsigned int
total(uint64_t key)
{
	unsigned int n = 0;

	for (uint32_t r = 0; r < nslots; r++)
		n += count_in(r, key, NULL, NULL);
	return n;
}

/* Add one to key in our region: entry index + 1, or 0 when full. */
static uint32_t
add_one(uint64_t key)
{
	uint32_t at = UINT32_MAX, free_at = UINT32_MAX;
	unsigned int n = count_in(slot, key, &at, &free_at);
	_Atomic uint64_t *e;

	if (at == UINT32_MAX) {
		if (free_at == UINT32_MAX)
			return 0;
		at = free_at;
	}
	if (n == COUNT_MASK)
		return 0;
	e = entry(slot, at);
	atomic_store_explicit(e, key | (n + 1), memory_order_relaxed);
	return at + 1;
}

static void
drop_one(uint32_t idx)
{
	_Atomic uint64_t *e;
	uint64_t w;

	if (idx == 0 || idx > entries)
		return;
	e = entry(slot, idx - 1);
	w = atomic_load_explicit(e, memory_order_relaxed);
	if ((w & COUNT_MASK) <= 1)
		w = 0;		/* the entry is free for another key */
	else
		w--;
	atomic_store_explicit(e, w, memory_order_relaxed);
}

enum connlimit_result
connlimit_acquire(const struct sockaddr *sa, struct connlimit_ref *ref)
{
	uint64_t kip, knet;

	memset(ref, 0, sizeof(*ref));
	if (table == NULL || (sa->sa_family != AF_INET &&
	    sa->sa_family != AF_INET6))
		return CONNLIMIT_OK;
	make_keys(sa, &kip, &knet);
	if (conf.max_ip > 0 && total(kip) >= conf.max_ip)
		return CONNLIMIT_IP;
	if (conf.max_net > 0 && total(knet) >= conf.max_net)
		return CONNLIMIT_NET;
	ref->ip_idx = add_one(kip);
	if (ref->ip_idx == 0)
		return CONNLIMIT_FULL;
	ref->net_idx = add_one(knet);
	if (ref->net_idx == 0) {
		connlimit_release(ref);
		return CONNLIMIT_FULL;
	}
	return CONNLIMIT_OK;
}

void
connlimit_release(struct connlimit_ref *ref)
{
	if (table != NULL) {
		drop_one(ref->ip_idx);
		drop_one(ref->net_idx);
	}
	memset(ref, 0, sizeof(*ref));
}

void
connlimit_count(const struct sockaddr *sa, unsigned int *ip_r,
    unsigned int *net_r)
{
	uint64_t kip, knet;

	*ip_r = *net_r = 0;
	if (table == NULL || (sa->sa_family != AF_INET &&
	    sa->sa_family != AF_INET6))
		return;
	make_keys(sa, &kip, &knet);
	*ip_r = total(kip);
	*net_r = total(knet);
}
