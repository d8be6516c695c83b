/*
 * Linear probing with backward-shift deletion (no tombstones): a lookup
 * stops at the first empty slot, however many ids came and went.
 */
#include "idmap.h"

#include <stdlib.h>

/* A fresh map holds this many slots; a few dozen waiters are common. */
#define IDMAP_MIN	64

struct idmap_slot {
	uint64_t	 id;		/* 0: empty */
	void		*p;
};

struct idmap {
	struct idmap_slot	*slots;
	size_t			 mask;	/* slots - 1 */
	size_t			 count;
};

/* Request ids count up: mix them so neighbours spread (splitmix64). */
static size_t
home(const struct idmap *m, uint64_t id)
{
	id ^= id >> 30;
	id *= UINT64_C(0xbf58476d1ce4e5b9);
	id ^= id >> 27;
	id *= UINT64_C(0x94d049bb133111eb);
	id ^= id >> 31;
	return (size_t)id & m->mask;
}

struct idmap *
idmap_new(void)
{
	struct idmap *m = calloc(1, sizeof(*m));

	if (m == NULL)
		return NULL;
	m->slots = calloc(IDMAP_MIN, sizeof(*m->slots));
	if (m->slots == NULL) {
		free(m);
		return NULL;
	}
	m->mask = IDMAP_MIN - 1;
	return m;
}

void
idmap_free(struct idmap **m)
{
	if (*m == NULL)
		return;
	free((*m)->slots);
	free(*m);
	*m = NULL;
}

static struct idmap_slot *
find(const struct idmap *m, uint64_t id)
{
	for (size_t i = home(m, id);; i = (i + 1) & m->mask) {
		struct idmap_slot *s = &m->slots[i];

		if (s->id == id || s->id == 0)
			return s;
	}
}

static int
grow(struct idmap *m)
{
	struct idmap old = *m;
	size_t n = (old.mask + 1) * 2;

	m->slots = calloc(n, sizeof(*m->slots));
	if (m->slots == NULL) {
		*m = old;
		return -1;
	}
	m->mask = n - 1;
	for (size_t i = 0; i <= old.mask; i++)
		if (old.slots[i].id != 0)
			*find(m, old.slots[i].id) = old.slots[i];
	free(old.slots);
	return 0;
}

int
idmap_put(struct idmap *m, uint64_t id, void *p)
{
	struct idmap_slot *s;

	if (id == 0 || p == NULL)
		return -1;
	/* At most half full: probes stay short and an empty slot exists. */
	if ((m->count + 1) * 2 > m->mask + 1 && grow(m) < 0)
		return -1;
	s = find(m, id);
	if (s->id == 0)
		m->count++;
	s->id = id;
	s->p = p;
	return 0;
}

void *
idmap_get(const struct idmap *m, uint64_t id)
{
	return id == 0 ? NULL : find(m, id)->p;
}

void
idmap_del(struct idmap *m, uint64_t id)
{
	struct idmap_slot *s;
	size_t i, j;

	if (id == 0 || (s = find(m, id))->id == 0)
		return;
	i = (size_t)(s - m->slots);
	s->id = 0;
	s->p = NULL;
	m->count--;
	/* Move back every later entry of the run that may sit in the gap. */
	for (j = (i + 1) & m->mask; m->slots[j].id != 0;
	    j = (j + 1) & m->mask) {
		size_t h = home(m, m->slots[j].id);

		/* h is cyclically in (i, j]: the entry stays reachable. */
		if (i <= j ? (i < h && h <= j) : (i < h || h <= j))
			continue;
		m->slots[i] = m->slots[j];
		m->slots[j].id = 0;
		m->slots[j].p = NULL;
		i = j;
	}
}

size_t
idmap_count(const struct idmap *m)
{
	return m->count;
}
