#include "penalty.h"

#include <string.h>

#include "session.h"

struct penalty_entry {
	char		ip[SESSION_IP_LEN];
	unsigned int	failures;
	uint64_t	last_ms;
};

static struct penalty_entry table[PENALTY_SLOTS];

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

/* Linear probing over a short window; the oldest slot in it is reused. */
#define PENALTY_PROBE	8

static struct penalty_entry *
lookup(const char *ip, uint64_t now_ms, int create)
{
	uint32_t h = hash(ip);
	struct penalty_entry *oldest = NULL;

	for (unsigned int i = 0; i < PENALTY_PROBE; i++) {
		struct penalty_entry *e = &table[(h + i) % PENALTY_SLOTS];
		int live = e->ip[0] != '\0' &&
		    now_ms - e->last_ms < PENALTY_FORGET_MS;

		if (live && strcmp(e->ip, ip) == 0)
			return e;
		if (!live) {
			e->ip[0] = '\0';
			if (oldest == NULL || oldest->ip[0] != '\0')
				oldest = e;
		} else if (oldest == NULL || (oldest->ip[0] != '\0' &&
		    e->last_ms < oldest->last_ms)) {
			oldest = e;
		}
	}
	if (!create)
		return NULL;
	memset(oldest, 0, sizeof(*oldest));
	str_copy(oldest->ip, sizeof(oldest->ip), ip);
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

void
penalty_success(const char *ip)
{
	uint32_t h = hash(ip);

	for (unsigned int i = 0; i < PENALTY_PROBE; i++) {
		struct penalty_entry *e = &table[(h + i) % PENALTY_SLOTS];

		if (strcmp(e->ip, ip) == 0)
			memset(e, 0, sizeof(*e));
	}
}

void
penalty_reset(void)
{
	memset(table, 0, sizeof(table));
}
