/*
 * passdb = pgsql: users in PostgreSQL, through libpq. Each auth worker
 * opens its own connection (workers share nothing); a query is one
 * PQexecParams with the user name bound as $1, never interpolated.
 *
 * Not in auth.c's registry on purpose: postino-passwd and the client link
 * the auth layer too and must not need libpq; postinod's auth role takes
 * auth_pgsql_ops by name.
 */
#ifndef POSTINO_AUTH_PGSQL_H
#define POSTINO_AUTH_PGSQL_H

#include "auth.h"

/* Longest password_query: a SELECT with a join or two, not a program. */
#define AUTH_PGSQL_QUERY_MAX	1024
/* A database password file: one line; longer is not a password file. */
#define AUTH_PGSQL_PASSWORD_MAX	1024

struct auth_pgsql_conf {
	const char	*conninfo;	/* libpq keywords; no password= */
	const char	*password_file;	/* "" = none (peer, cert, .pgpass) */
	/*
	 * $1 = the user name. Columns by name: "password" (required), "uid",
	 * "gid", "home", "quota_bytes", "quota_messages" (NULL or absent: not
	 * given); others are ignored.
	 */
	const char	*query;
};

/*
 * Set what the next ops->open() uses (its path argument is ignored); the
 * strings must outlive the database handle. Called once, before open.
 */
void auth_pgsql_configure(const struct auth_pgsql_conf *conf);

/*
 * Check a configuration without connecting: conninfo parses and has no
 * password, the query has $1. 0, or -1 with err. For postinod -t and the
 * start-up checks.
 */
int auth_pgsql_check(const struct auth_pgsql_conf *conf, char *err);

extern const struct auth_ops auth_pgsql_ops;

#endif
