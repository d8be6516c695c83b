/*
 * Per-client-IP penalty for failed logins: each failure from an address
 * doubles the delay before its next -ERR, up to a bound; a success or a
 * quiet spell forgets it. Kept by the auth role, which sees every login
 * of every login worker. A bounded table: when full, the oldest entry goes.
 */
#ifndef POSTINO_PENALTY_H
#define POSTINO_PENALTY_H

#include <stdint.h>

/* Addresses remembered at once; beyond that the oldest is forgotten. */
#define PENALTY_SLOTS		4096
/* Failures are forgotten after this long without a new one (Dovecot: 1h). */
#define PENALTY_FORGET_MS	(15u * 60 * 1000)
/* The delay doubles per failure up to this bound (STYLE: 15 s). */
#define PENALTY_MAX_MS		15000u

/* Record a failure from ip at now_ms; returns the delay to apply, ms. */
unsigned int penalty_fail(const char *ip, unsigned int base_ms, uint64_t now_ms);
/* The delay a failure from ip would get now, without recording one. */
unsigned int penalty_peek(const char *ip, unsigned int base_ms, uint64_t now_ms);
/* A successful login from ip: forget its failures. */
void penalty_success(const char *ip);
/* Forget everything (tests). */
void penalty_reset(void);

#endif
