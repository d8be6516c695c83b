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
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "../lib/str.h"

#define AUTH_USER_MAX	 255	/* octets in a user name */
#define AUTH_PASS_MAX	 1024	/* octets in a password */
#define AUTH_HOME_MAX	 PATH_MAX

/*
 * SCRAM-SHA-256 (RFC 5802, RFC 7677) credentials, stored in Dovecot's
 * format {SCRAM-SHA-256}iter,base64(salt),base64(StoredKey),base64(ServerKey).
 */
#define AUTH_SCRAM_KEY_LEN	32	/* SHA-256 output */
#define AUTH_SCRAM_SALT_LEN	16	/* what we (and Dovecot) write */
#define AUTH_SCRAM_SALT_MAX	64	/* what we read: no one uses more */
/* RFC 7677 sec. 4: at least 4096; Dovecot's default too. */
#define AUTH_SCRAM_ITER_MIN	4096u
#define AUTH_SCRAM_ITER_DEFAULT	4096u
/* About ten seconds of PBKDF2 per check: beyond that it is a DoS knob. */
#define AUTH_SCRAM_ITER_MAX	10000000u

enum auth_result {
	AUTH_OK = 0,
	AUTH_PERMFAIL,		/* unknown user or wrong credentials */
	AUTH_TEMPFAIL,		/* the database could not be read */
};

/*
 * An account's own delivery quota (the passwd-file's extra field
 * quota_bytes=N quota_messages=N, or password_query columns of those
 * names); when not given, the configured default applies. 0 is "no
 * delivery quota for this user".
 */
struct auth_quota {
	bool	 has_bytes, has_messages;
	uint64_t bytes;
	uint32_t messages;
};

struct auth_user {
	char	name[AUTH_USER_MAX + 1];
	bool	has_uid, has_gid;	/* false when the field is empty */
	uid_t	uid;
	gid_t	gid;
	char	home[AUTH_HOME_MAX];	/* "" when the field is empty */
	struct auth_quota quota;
};

/* The largest quota_messages an account may set (as lmtp_quota_messages). */
#define AUTH_QUOTA_MESSAGES_MAX	10000000u

enum auth_quota_kind { AUTH_QUOTA_BYTES, AUTH_QUOTA_MESSAGES };

/*
 * One of an account's quota values into q (the passwd-file's
 * quota_bytes=N, a password_query's quota_bytes column): strict decimal,
 * each kind at most once, quota_messages at most AUTH_QUOTA_MESSAGES_MAX.
 * NULL, or why not: every backend refuses the same values.
 */
const char *auth_quota_set(struct auth_quota *q, enum auth_quota_kind kind,
    const char *val);
/*
 * An account's uid or gid as every backend reads it: NULL or "" is not
 * given (*has_r false); else strict decimal below the (id_t)-1 marker.
 * 0, or -1 for anything else.
 */
int auth_id_parse(const char *s, bool *has_r, uint32_t *id_r);
/*
 * Dovecot's spelling of the same, the value of a userdb_quota_rule= item
 * (len octets): "*:storage=100M", "*:bytes=N", "*:messages=N", limits
 * joined by ':' ("*:storage=1G:messages=5000"). storage is in KiB unless
 * suffixed B, K, M, G or T (powers of 1024), as in Dovecot. Anything
 * else Dovecot knows (other mailboxes, "+", "%", "ignore") is refused,
 * never guessed at. NULL, or why not.
 */
const char *auth_quota_rule(struct auth_quota *q, const char *rule,
    size_t len);

struct auth_scram {
	uint32_t	 iter;
	size_t		 saltlen;
	unsigned char	 salt[AUTH_SCRAM_SALT_MAX];
	unsigned char	 stored_key[AUTH_SCRAM_KEY_LEN];
	unsigned char	 server_key[AUTH_SCRAM_KEY_LEN];
};

struct auth_db;

struct auth_ops {
	const char *name;	/* "passwd-file" */
	int  (*open)(struct auth_db **db_r, const char *path, char *err);
	/*
	 * Plaintext password check (USER/PASS, SASL PLAIN/LOGIN); works for
	 * crypt(3) hashes, {PLAIN} and {SCRAM-SHA-256} (keys re-derived).
	 */
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
	/*
	 * SASL (src/auth/sasl.h). These two do no dummy work: the SASL layer
	 * equalises the cost of every outcome itself, and their answers
	 * never leave the auth role except as its final verdict.
	 *
	 * scram_lookup: AUTH_OK with the stored keys when the user's secret
	 * is {SCRAM-SHA-256}; AUTH_PERMFAIL for unknown or locked users and
	 * any other scheme; AUTH_TEMPFAIL when the database cannot be read.
	 * keys_r and user_r are wiped unless AUTH_OK.
	 */
	enum auth_result (*scram_lookup)(struct auth_db *db, const char *user,
	    struct auth_scram *keys_r, struct auth_user *user_r);
	/*
	 * plain_secret: AUTH_OK with the plaintext password in buf (bufsize
	 * octets, NUL-terminated) when the stored secret is {PLAIN} and
	 * fits; AUTH_PERMFAIL otherwise; AUTH_TEMPFAIL as above. For
	 * CRAM-MD5, and SCRAM for {PLAIN} users. The caller wipes buf.
	 */
	enum auth_result (*plain_secret)(struct auth_db *db, const char *user,
	    char *buf, size_t bufsize, struct auth_user *user_r);
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
