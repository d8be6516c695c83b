/*
 * The SASL mechanism names (RFC 4422 sec. 3.1) we know, in one table:
 * name <-> id <-> bit. The server's mechanisms (sasl.c), the
 * auth_mechanisms setting (parsed once into a mask by the config) and the
 * roles that check it all go through here, so "SCRAM-SHA-256-PLUS" can
 * never be taken for "SCRAM-SHA-256" by a substring match.
 */
#ifndef POSTINO_SASL_MECHS_H
#define POSTINO_SASL_MECHS_H

#include <stdbool.h>
#include <stddef.h>

/* Best first: the order of CAPA's SASL line. */
enum sasl_mech_id {
	SASL_MECH_SCRAM_PLUS,		/* SCRAM-SHA-256-PLUS */
	SASL_MECH_SCRAM,		/* SCRAM-SHA-256 */
	SASL_MECH_CRAM_MD5,		/* CRAM-MD5 */
	SASL_MECH_PLAIN,		/* PLAIN */
	SASL_MECH_LOGIN,		/* LOGIN */
	SASL_MECH_OAUTHBEARER,		/* OAUTHBEARER (RFC 7628) */
	SASL_MECH_XOAUTH2,		/* XOAUTH2 (Google, Microsoft) */
	SASL_MECH_COUNT
};

#define SASL_MECH_BIT(id)	(1u << (id))
/* Characters of the longest name, without the NUL. */
#define SASL_MECH_NAME_MAX	18

/* The name ("SCRAM-SHA-256"); "?" for an id outside the table. */
const char *sasl_mechs_name(enum sasl_mech_id id);

/*
 * The id of the len octets at name, compared whole and ASCII
 * case-insensitively; -1 when no mechanism has that name.
 */
int sasl_mechs_lookup(const char *name, size_t len);

/*
 * Whether mechanism id (or -1) puts a reusable secret on the wire: a
 * password (PLAIN, LOGIN) or a bearer token (OAUTHBEARER, XOAUTH2). Those
 * need TLS unless plaintext is explicitly allowed, on both sides.
 */
bool sasl_mechs_sends_secret(int id);

/*
 * Words of list (separated by spaces or tabs, any case) into a mask of
 * SASL_MECH_BIT()s. 0, or -1 with err (ERR_LEN) naming the first word
 * that is no mechanism (*mask_r is then 0).
 */
int sasl_mechs_parse(const char *list, unsigned int *mask_r, char *err);

/*
 * Every name, space-separated, table order, into buf (size); for messages
 * that say what is allowed. 0, or -1 when it does not fit.
 */
int sasl_mechs_all(char *buf, size_t size);

#endif
