/*
 * Waiters found by their request id: a request goes to another process
 * with a fresh id, and its answer names the id. With thousands of
 * connections waiting, the answer must not scan them all (issue 9).
 * Open addressing over a power-of-two table, grown at half full; id 0
 * means "no request" everywhere and is never stored.
 */
#ifndef POSTINO_IDMAP_H
#define POSTINO_IDMAP_H

#include <stddef.h>
#include <stdint.h>

struct idmap;

/* NULL when memory ran out. */
struct idmap *idmap_new(void);
void idmap_free(struct idmap **m);

/* Add or replace id's waiter (p != NULL, id != 0). -1: memory ran out. */
int idmap_put(struct idmap *m, uint64_t id, void *p);
/* id's waiter, or NULL. */
void *idmap_get(const struct idmap *m, uint64_t id);
/* Forget id (nothing when absent). */
void idmap_del(struct idmap *m, uint64_t id);
size_t idmap_count(const struct idmap *m);

#endif
