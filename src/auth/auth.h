/*
 * Password databases behind one interface. Runs only in the auth role, which
 * has no network access and sees nothing but verification requests.
 *
 * Unknown users, locked users and wrong passwords all give AUTH_PERMFAIL and
 * cost the same time: a dummy hash of the same method is computed.
 */
#ifndef POSTINO_AUTH_H
#define POSTINO_AUTH_H

#include <limits.h>
#include <stdbool.h>
#include <sys/types.h>

#include "../lib/str.h"

#define AUTH_USER_MAX	 255	/* octets in a user name */
#define AUTH_PASS_MAX	 1024	/* octets in a password */
#define AUTH_HOME_MAX	 PATH_MAX

enum auth_result {
	AUTH_OK = 0,
	AUTH_PERMFAIL,		/* unknown user or wrong credentials */
	AUTH_TEMPFAIL,		/* the database could not be read */
};

struct auth_user {
	char	name[AUTH_USER_MAX + 1];
	bool	has_uid, has_gid;	/* false when the field is empty */
	uid_t	uid;
	gid_t	gid;
	char	home[AUTH_HOME_MAX];	/* "" when the field is empty */
};

struct auth_db;

struct auth_ops {
	const char *name;	/* "passwd-file" */
	int  (*open)(struct auth_db **db_r, const char *path, char *err);
	/* Plaintext password check (USER/PASS, SASL PLAIN/LOGIN). */
	enum auth_result (*verify)(struct auth_db *db, const char *user,
	    const char *pass, struct auth_user *user_r);
	/*
	 * APOP (RFC 1939 sec. 7): digest_hex is 32 hex digits of
	 * MD5(timestamp secret); only users whose stored secret is
	 * plaintext-equivalent ({PLAIN}) can pass.
	 */
	enum auth_result (*apop)(struct auth_db *db, const char *user,
	    const char *timestamp, const char *digest_hex, struct auth_user *user_r);
	/* Look a user up without credentials (after a ticket was redeemed). */
	enum auth_result (*lookup)(struct auth_db *db, const char *user,
	    struct auth_user *user_r);
	void (*close)(struct auth_db **db);
};

/* The backend called name ("passwd-file"), or NULL. */
const struct auth_ops *auth_lookup(const char *name);

/*
 * A user name every backend accepts: 1..AUTH_USER_MAX octets, no control
 * character, space, DEL, ':' or '/', and no leading '.', so a name can
 * neither break a passwd-file line nor walk out of a mail directory.
 */
bool auth_name_valid(const char *name);

#endif
