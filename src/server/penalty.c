#include "penalty.h"

#include <arpa/inet.h>
#include <string.h>

#include "../lib/str.h"
#include "limits.h"

struct penalty_entry {
	char		net[PENALTY_NET_LEN];
	unsigned int	failures;
	uint64_t	last_ms;
};

static struct penalty_entry table[PENALTY_SLOTS];
static unsigned int prefix4 = 24, prefix6 = 48;

void
penalty_set_prefix(unsigned int v4, unsigned int v6)
{
	prefix4 = v4 < 8 ? 8 : v4 > 32 ? 32 : v4;
	prefix6 = v6 < 16 ? 16 : v6 > 128 ? 128 : v6;
}

static void
mask(unsigned char *b, size_t len, unsigned int bits)
{
	for (size_t i = 0; i < len; i++) {
		unsigned int keep = bits >= 8 ? 8 : bits;

		b[i] &= (unsigned char)(0xff00u >> keep);
		bits -= keep;
	}
}

static const unsigned char v4_mapped[12] = {
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff
};

void
penalty_net(const char *ip, char net[PENALTY_NET_LEN])
{
	unsigned char b[16];
	char text[INET6_ADDRSTRLEN];
	int af = AF_INET;

	if (inet_pton(AF_INET6, ip, b) == 1) {
		if (memcmp(b, v4_mapped, sizeof(v4_mapped)) == 0)
			memmove(b, b + sizeof(v4_mapped), 4);
		else
			af = AF_INET6;
	} else if (inet_pton(AF_INET, ip, b) != 1) {
		af = AF_UNSPEC;
	}
	if (af != AF_UNSPEC) {
		unsigned int bits = af == AF_INET ? prefix4 : prefix6;

		mask(b, af == AF_INET ? 4 : 16, bits);
		if (inet_ntop(af, b, text, sizeof(text)) != NULL &&
		    str_fmt(net, PENALTY_NET_LEN, "%s/%u", text, bits) == 0)
			return;
	}
	/* Not an address (a unit test, a Unix socket): the text itself. */
	if (str_copy(net, PENALTY_NET_LEN, ip) < 0)
		net[PENALTY_NET_LEN - 1] = '\0';
}

static uint32_t
hash(const char *s)
{
	uint32_t h = 2166136261u;	/* FNV-1a */

	for (; *s != '\0'; s++) {
		h ^= (unsigned char)*s;
		h *= 16777619u;
	}
	return h;
}

uint32_t
penalty_route(const char *ip)
{
	char net[PENALTY_NET_LEN];

	penalty_net(ip, net);
	return hash(net);
}

static struct penalty_entry *
lookup(const char *ip, uint64_t now_ms, int create)
{
	char net[PENALTY_NET_LEN];
	uint32_t h;
	struct penalty_entry *oldest = NULL;

	penalty_net(ip, net);
	h = hash(net);
	for (unsigned int i = 0; i < PENALTY_PROBE; i++) {
		struct penalty_entry *e = &table[(h + i) % PENALTY_SLOTS];
		int live = e->net[0] != '\0' &&
		    now_ms - e->last_ms < PENALTY_FORGET_MS;

		if (live && strcmp(e->net, net) == 0)
			return e;
		if (!live) {
			e->net[0] = '\0';
			if (oldest == NULL || oldest->net[0] != '\0')
				oldest = e;
		} else if (oldest == NULL || (oldest->net[0] != '\0' &&
		    e->last_ms < oldest->last_ms)) {
			oldest = e;
		}
	}
	if (!create)
		return NULL;
	memset(oldest, 0, sizeof(*oldest));
	memcpy(oldest->net, net, sizeof(net));
	oldest->last_ms = now_ms;
	return oldest;
}

static unsigned int
delay_for(unsigned int failures, unsigned int base_ms)
{
	uint64_t d = base_ms;

	for (unsigned int i = 1; i < failures && d < PENALTY_MAX_MS; i++)
		d *= 2;
	return d > PENALTY_MAX_MS ? PENALTY_MAX_MS : (unsigned int)d;
}

unsigned int
penalty_fail(const char *ip, unsigned int base_ms, uint64_t now_ms)
{
	struct penalty_entry *e = lookup(ip, now_ms, 1);

	if (e->failures < 64)
		e->failures++;
	e->last_ms = now_ms;
	return delay_for(e->failures, base_ms);
}

unsigned int
penalty_peek(const char *ip, unsigned int base_ms, uint64_t now_ms)
{
	struct penalty_entry *e = lookup(ip, now_ms, 0);

	return delay_for(e != NULL ? e->failures + 1 : 1, base_ms);
}

uint64_t
penalty_wait(const char *ip, unsigned int base_ms, uint64_t now_ms)
{
	struct penalty_entry *e = lookup(ip, now_ms, 0);
	uint64_t ready;

	if (e == NULL || e->failures == 0)
		return 0;
	ready = e->last_ms + delay_for(e->failures, base_ms);
	return ready > now_ms ? ready - now_ms : 0;
}

void
penalty_success(const char *ip)
{
	char net[PENALTY_NET_LEN];
	uint32_t h;

	penalty_net(ip, net);
	h = hash(net);
	for (unsigned int i = 0; i < PENALTY_PROBE; i++) {
		struct penalty_entry *e = &table[(h + i) % PENALTY_SLOTS];

		if (strcmp(e->net, net) == 0)
			memset(e, 0, sizeof(*e));
	}
}

void
penalty_reset(void)
{
	memset(table, 0, sizeof(table));
}
