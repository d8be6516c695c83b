/*
 * Connections per client address and per network (an IPv4 /24, an IPv6
 * /48 by default), counted across every login worker, so that a few
 * addresses cannot fill the login workers with idle connections.
 *
 * The counts live in one shared memory table (a memfd from the master)
 * with a region per login worker: each worker writes only its own region,
 * and reads every region to sum. A worker that dies takes its counts with
 * it, as its successor clears the region. Keys are a keyed hash (SipHash)
 * of the address, so a client cannot aim at a chosen table entry; each
 * entry is one 64-bit word (44 bits of key, 20 bits of count), read and
 * written atomically.
 */
#ifndef POSTINO_CONNLIMIT_H
#define POSTINO_CONNLIMIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include "limits.h"

#define CONNLIMIT_SECRET_LEN	16

struct connlimit_conf {
	unsigned int	max_ip;		/* 0: no limit */
	unsigned int	max_net;	/* 0: no limit */
	unsigned int	prefix4;	/* bits of an IPv4 network, 1..32 */
	unsigned int	prefix6;	/* bits of an IPv6 network, 1..128 */
};

enum connlimit_result {
	CONNLIMIT_OK,
	CONNLIMIT_IP,		/* the address has max_ip connections */
	CONNLIMIT_NET,		/* its network has max_net */
	CONNLIMIT_FULL,		/* no room in the table: refused, never uncounted */
};

/* What a counted connection must give back; zeroed = nothing counted. */
struct connlimit_ref {
	uint32_t	ip_idx, net_idx;	/* entry + 1 in our region */
};

/* Entries per region for this many connections per worker (a power of 2). */
uint32_t connlimit_entries(unsigned int max_sessions);

/*
 * Use base (nslots regions of entries words, shared) as the table, this
 * worker being region slot; clears that region. 0, or -1 on bad geometry.
 */
int connlimit_setup(void *base, uint32_t nslots, uint32_t slot,
    uint32_t entries, const unsigned char secret[CONNLIMIT_SECRET_LEN],
    const struct connlimit_conf *conf);

/* Whether connlimit_setup succeeded. */
bool connlimit_active(void);

/*
 * Count a new connection from sa unless that would pass a limit. Not set
 * up: always CONNLIMIT_OK with nothing counted.
 */
enum connlimit_result connlimit_acquire(const struct sockaddr *sa,
    struct connlimit_ref *ref);

/* Give back what acquire counted (idempotent: ref is zeroed). */
void connlimit_release(struct connlimit_ref *ref);

/* Current connections from sa's address and from its network. */
void connlimit_count(const struct sockaddr *sa, unsigned int *ip_r,
    unsigned int *net_r);

/* The region geometry's bytes, for the master's memfd. */
size_t connlimit_size(uint32_t nslots, uint32_t entries);

#endif
