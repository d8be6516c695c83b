/*
 * mailbox = pgsql: (store_pgsql.c). A mailbox is a name (the expanded
 * template, the user name by default); its messages are rows of
 * postino_message (pgsql_schema.sql), shared by every postinod instance
 * that uses the same database.
 *
 * Each process keeps its own connections: one per open session (it holds
 * the session's advisory lock, so it stays with the session), and up to
 * `pool` idle ones for the next session or delivery.
 */
#ifndef POSTINO_STORE_PGSQL_H
#define POSTINO_STORE_PGSQL_H

#include "store.h"

/* Idle connections kept per process: a mail worker's few hundred logins
 * a second need a handful, and every one is a backend in PostgreSQL. */
#define STORE_PGSQL_POOL_MAX	64
/* A database password file: one line; longer is not a password file. */
#define STORE_PGSQL_PASSWORD_MAX	1024

struct store_pgsql_conf {
	const char	*conninfo;	/* libpq keywords; no password= */
	const char	*password_file;	/* "" or NULL = none (.pgpass, peer) */
	unsigned int	 pool;		/* idle connections kept */
};

/*
 * Set what the pgsql store connects with; the conninfo string must outlive
 * every store. Reads the password file now, so call it before dropping
 * privileges. 0, or -1 with err.
 */
int store_pgsql_configure(const struct store_pgsql_conf *conf, char *err);

struct ev;
/*
 * From now on sessions never wait for the database in this process: the
 * store's ops answer STORE_PENDING (store.h wait) and their sockets wait
 * in ev. Without it (deliveries, postino-migrate) they wait in place.
 */
void store_pgsql_set_loop(struct ev *ev);

/* Close the idle connections (at exit, so sanitizers see no leak). */
void store_pgsql_shutdown(void);

/*
 * The schema, as shipped in pgsql_schema.sql (the newest version, created
 * directly), and the steps that bring an older one up to it, as shipped in
 * pgsql_upgrade_N.sql: from version N-1 to N, each ending by setting the
 * version. A new version adds its step here and in pgsql_schema.c. A
 * step runs under the connection's statement_timeout (30 s) while logins
 * wait for it: one that must rewrite postino_message is a DBA's job in a
 * maintenance window, not postinod's.
 */
extern const char store_pgsql_schema[];
extern const char store_pgsql_upgrade_2[];
#define STORE_PGSQL_SCHEMA_VERSION	2

#endif
