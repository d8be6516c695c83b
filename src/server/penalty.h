/*
 * Failed-login penalty per client network: each verified failure from a
 * network doubles the time before the next credential check from it may
 * run, up to a bound; a success or a quiet spell forgets it. The auth role
 * gates every check (USER/PASS, APOP, each SASL step) on penalty_wait()
 * before it verifies anything, so neither disconnecting nor opening more
 * connections buys a faster guess.
 *
 * Addresses are aggregated to a network (penalty_set_prefix(): /24 for
 * IPv4, /48 for IPv6 by default): one attacker usually holds a whole
 * block, and an IPv6 host can rotate through every address of its /64.
 * Login workers route each request to the auth worker penalty_route()
 * names, so a network's state lives in exactly one auth process.
 *
 * A bounded table: when its probe window is full, the oldest entry goes.
 */
#ifndef POSTINO_PENALTY_H
#define POSTINO_PENALTY_H

#include <stddef.h>
#include <stdint.h>
#include "limits.h"

/* "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff/128" and the NUL. */
#define PENALTY_NET_LEN		48

/*
 * Aggregate IPv4 addresses to v4 bits (8..32) and IPv6 to v6 bits
 * (16..128); IPv4-mapped IPv6 counts as IPv4. Default /24 and /48.
 */
void penalty_set_prefix(unsigned int v4, unsigned int v6);

/*
 * The network of ip as text ("192.0.2.0/24"), the key of every call
 * below; a string that is no address is its own key. Always fits.
 */
void penalty_net(const char *ip, char net[PENALTY_NET_LEN]);

/* A hash of ip's network: the same for every address of it. */
uint32_t penalty_route(const char *ip);

/* Record a verified failure from ip at now_ms; returns the delay, ms. */
unsigned int penalty_fail(const char *ip, unsigned int base_ms, uint64_t now_ms);
/* The delay a failure from ip would get now, without recording one. */
unsigned int penalty_peek(const char *ip, unsigned int base_ms, uint64_t now_ms);
/* Milliseconds before the next check from ip may run; 0: at once. */
uint64_t penalty_wait(const char *ip, unsigned int base_ms, uint64_t now_ms);
/* A successful login from ip: forget its network's failures. */
void penalty_success(const char *ip);
/* Forget everything (tests). */
void penalty_reset(void);

#endif
