/*
 * passdb = pgsql (auth_pgsql.h). The same schemes as the passwd-file, read
 * from a column instead of a line: {CRYPT} and the crypt(3) methods,
 * {PLAIN}, {SCRAM-SHA-256}iter,salt,stored,server; no prefix is {CRYPT}.
 *
 * The auth worker is one request at a time by design (hashing dominates),
 * so the query is a blocking call (PQsendQueryParams, then poll() with a
 * deadline), bounded by connect_timeout and PGSQL_QUERY_WAIT_MS. When the
 * database is unreachable every request is AUTH_TEMPFAIL ([SYS/TEMP]),
 * never AUTH_PERMFAIL: an outage must not look like a wrong password to
 * clients or count toward penalties.
 */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <libpq-fe.h>
#include <openssl/crypto.h>

#include "../lib/ev.h"
#include "../lib/log.h"
#include "../lib/secret_file.h"
#include "auth.h"
#include "auth_hash.h"
#include "auth_pgsql.h"
#include "crypto.h"

/*
 * Seconds to wait for a connection (the auth worker waits with it, so
 * short), and milliseconds one query may run: a users lookup is one index
 * probe; anything slower is an outage to report, not to wait out.
 */
#define PGSQL_CONNECT_TIMEOUT	"3"
#define PGSQL_OPTIONS		"-c statement_timeout=5000"
/*
 * After a failed connection, requests fail at once for this long instead
 * of each paying a connection attempt: an outage costs clients nothing
 * and the log one line per second per worker.
 */
#define PGSQL_RETRY_MS		1000
/*
 * How long a query may take, timed here: statement_timeout is the
 * server's, and a server that stopped answering (a frozen host, one gone
 * without a reset, where TCP waits many minutes) never applies it. Above
 * it, so that a live server's own timeout is what ends a slow query.
 */
#define PGSQL_QUERY_WAIT_MS	7000
/* A column value longer than any secret we can use is refused unread. */
#define PGSQL_SECRET_MAX	(AUTH_PASS_MAX + 32)

struct row {
	enum auth_scheme scheme;
	char		 secret[PGSQL_SECRET_MAX + 1];	/* after {SCHEME} */
	struct auth_user user;
	const char	*bad_quota;	/* why lookups fail temporarily, or NULL */
};

struct auth_db {
	PGconn		*conn;
	uint64_t	 retry_ms;	/* no connection attempt before this */
	bool		 has_password;
	char		 password[AUTH_PGSQL_PASSWORD_MAX + 1];
	const char	*conninfo;
	const char	*query;
	/* What an unknown user's check costs: a recent real user's method. */
	struct auth_dummy dummy;
};

static struct auth_pgsql_conf pg_conf;

void
auth_pgsql_configure(const struct auth_pgsql_conf *conf)
{
	pg_conf = *conf;
}

int
auth_pgsql_check(const struct auth_pgsql_conf *conf, char *err)
{
	PQconninfoOption *opts;
	char *perr = NULL;
	int rc = 0;

	opts = PQconninfoParse(conf->conninfo, &perr);
	if (opts == NULL) {
		str_fmt(err, ERR_LEN, "pgsql_conninfo: %s",
		    perr != NULL ? perr : "out of memory");
		PQfreemem(perr);
		return -1;
	}
	for (PQconninfoOption *o = opts; o->keyword != NULL; o++)
		if (strcmp(o->keyword, "password") == 0 && o->val != NULL &&
		    o->val[0] != '\0') {
			/* It would show in postinod -t and in a DBA's ps. */
			str_copy(err, ERR_LEN, "pgsql_conninfo: no password= "
			    "here; put it in pgsql_password_file");
			rc = -1;
		}
	PQconninfoFree(opts);
	if (rc == 0 && strstr(conf->query, "$1") == NULL) {
		str_copy(err, ERR_LEN, "password_query: no $1 (the user name)");
		rc = -1;
	}
	return rc;
}

/* libpq's message, on one line and sanitised, for the log. */
static void
log_pq(const char *event, const char *msg)
{
	char safe[512];
	size_t len = strlen(msg);

	while (len > 0 && (msg[len - 1] == '\n' || msg[len - 1] == ' '))
		len--;
	str_sanitize(safe, sizeof(safe), msg, len);
	log_warnx("event=%s backend=pgsql reason=\"%s\"", event, safe);
}

/* A working connection, or -1 (logged) until PGSQL_RETRY_MS has passed. */
static int
pg_connect(struct auth_db *db)
{
	const char *keys[] = { "connect_timeout", "options",
	    "application_name", "dbname", "password", NULL };
	const char *vals[] = { PGSQL_CONNECT_TIMEOUT, PGSQL_OPTIONS,
	    "postinod-auth", db->conninfo,
	    db->has_password ? db->password : NULL, NULL };

	if (db->conn != NULL && PQstatus(db->conn) == CONNECTION_OK)
		return 0;
	if (ev_now_ms() < db->retry_ms)
		return -1;
	PQfinish(db->conn);
	/* Keywords before dbname are defaults the conninfo may override. */
	db->conn = PQconnectdbParams(keys, vals, 1);
	if (db->conn != NULL && PQstatus(db->conn) == CONNECTION_OK) {
		log_info("event=passdb-connected backend=pgsql");
		return 0;
	}
	log_pq("passdb-unavailable", db->conn != NULL ?
	    PQerrorMessage(db->conn) : "out of memory");
	PQfinish(db->conn);
	db->conn = NULL;
	db->retry_ms = ev_now_ms() + PGSQL_RETRY_MS;
	return -1;
}

static enum auth_scheme
parse_secret(const char *field, const char **secret_r)
{
	const char *why;
	enum auth_scheme sch = auth_hash_scheme(field, secret_r, &why);

	if (sch == AUTH_SCHEME_PLAIN && strlen(*secret_r) > AUTH_PASS_MAX)
		return AUTH_SCHEME_UNUSABLE;
	return sch;
}

/* A uid or gid column: NULL or "" is not given; else strict decimal. */
static int
parse_id(const PGresult *res, int col, bool *has_r, uint32_t *id_r)
{
	if (col < 0 || PQgetisnull(res, 0, col))
		return auth_id_parse(NULL, has_r, id_r);
	return auth_id_parse(PQgetvalue(res, 0, col), has_r, id_r);
}

/*
 * The optional quota_bytes and quota_messages columns: NULL or absent is
 * the configured default; anything else is read as the passwd-file reads
 * its extra field (auth_quota_set), and refused the same way. NULL, or
 * why not.
 */
static const char *
parse_quota(const PGresult *res, struct auth_quota *q)
{
	static const char *const cols[] = { "quota_bytes", "quota_messages" };
	static const enum auth_quota_kind kinds[] = { AUTH_QUOTA_BYTES,
	    AUTH_QUOTA_MESSAGES };
	const char *why = NULL;

	for (size_t i = 0; i < 2 && why == NULL; i++) {
		int c = PQfnumber(res, cols[i]);

		if (c >= 0 && !PQgetisnull(res, 0, c))
			why = auth_quota_set(q, kinds[i], PQgetvalue(res, 0, c));
	}
	return why;
}

/* The row's fields into r; false when a column holds something unusable. */
static bool
parse_row(PGresult *res, const char *user, struct row *r)
{
	int pc = PQfnumber(res, "password"), uc = PQfnumber(res, "uid");
	int gc = PQfnumber(res, "gid"), hc = PQfnumber(res, "home");
	const char *secret, *home = "";
	char *pw;
	uint32_t uid, gid;
	size_t len;

	pw = PQgetvalue(res, 0, pc);
	len = (size_t)PQgetlength(res, 0, pc);
	if (PQgetisnull(res, 0, pc) || len > PGSQL_SECRET_MAX ||
	    strlen(pw) != len) {
		r->scheme = AUTH_SCHEME_LOCKED;
	} else {
		r->scheme = parse_secret(pw, &secret);
		str_copy(r->secret, sizeof(r->secret), secret);
	}
	explicit_bzero(pw, len);
	if (parse_id(res, uc, &r->user.has_uid, &uid) < 0 ||
	    parse_id(res, gc, &r->user.has_gid, &gid) < 0)
		return false;
	r->user.uid = uid;
	r->user.gid = gid;
	if (hc >= 0 && !PQgetisnull(res, 0, hc))
		home = PQgetvalue(res, 0, hc);
	if (home[0] != '\0' && home[0] != '/')
		return false;
	if (str_copy(r->user.home, sizeof(r->user.home), home) < 0)
		return false;
	str_copy(r->user.name, sizeof(r->user.name), user);
	/* Never unlimited by mistake: the user's lookups fail until fixed. */
	r->bad_quota = parse_quota(res, &r->user.quota);
	/* Mail is never read as root [qmail, popa3d]. */
	if ((r->user.has_uid && uid == 0) || (r->user.has_gid && gid == 0))
		r->scheme = AUTH_SCHEME_LOCKED;
	return true;
}

/*
 * The query's result, or NULL (the reason in PQerrorMessage) when it
 * could not be sent or the connection failed. After PGSQL_QUERY_WAIT_MS
 * without an answer the connection is dropped (logged) and *dead_r set.
 */
static PGresult *
pg_query(struct auth_db *db, const char *user, bool *dead_r)
{
	const char *params[1] = { user };
	uint64_t deadline = ev_now_ms() + PGSQL_QUERY_WAIT_MS;
	PGresult *res = NULL, *r;

	*dead_r = false;
	if (!PQsendQueryParams(db->conn, db->query, 1, NULL, params, NULL,
	    NULL, 0))
		return NULL;
	/* One statement: one result, then NULL. Each wait ends by deadline. */
	for (;;) {
		while (PQisBusy(db->conn)) {
			struct pollfd pfd = { .fd = PQsocket(db->conn),
			    .events = POLLIN };
			uint64_t now = ev_now_ms();
			int n = now < deadline ?
			    poll(&pfd, 1, (int)(deadline - now)) : 0;

			if (n == 0) {
				log_warnx("event=passdb-query-timeout "
				    "backend=pgsql ms=%u", PGSQL_QUERY_WAIT_MS);
				PQclear(res);
				PQfinish(db->conn);
				db->conn = NULL;
				db->retry_ms = ev_now_ms() + PGSQL_RETRY_MS;
				*dead_r = true;
				return NULL;
			}
			if ((n < 0 && errno != EINTR) ||
			    (n > 0 && !PQconsumeInput(db->conn))) {
				PQclear(res);
				return NULL;
			}
		}
		if ((r = PQgetResult(db->conn)) == NULL)
			return res;
		if (res == NULL)
			res = r;
		else
			PQclear(r);
	}
}

/*
 * Did the database refuse the name itself: octets that are not valid in
 * the client encoding (22021), or characters the database's encoding
 * cannot hold (22P05)? Such a name can be in no row: it is an unknown
 * user (a client's doing, so not logged), not an outage.
 */
static bool
name_unstorable(const PGresult *res)
{
	const char *st = res != NULL ?
	    PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;

	return st != NULL && (strcmp(st, "22021") == 0 ||
	    strcmp(st, "22P05") == 0);
}

/*
 * The user's row: 1 found (r filled), 0 no such user (or an unusable
 * row, logged), -1 the database could not answer (logged).
 */
static int
fetch(struct auth_db *db, const char *user, struct row *r)
{
	PGresult *res = NULL;
	bool dead;
	int rc = -1;

	memset(r, 0, sizeof(*r));
	if (!auth_name_valid(user))
		return 0;
	for (int attempt = 0; attempt < 2; attempt++) {
		if (pg_connect(db) < 0)
			return -1;
		res = pg_query(db, user, &dead);
		if (dead)
			return -1;
		if (res != NULL && PQresultStatus(res) == PGRES_TUPLES_OK)
			break;
		if (name_unstorable(res)) {
			PQclear(res);
			return 0;
		}
		log_pq("passdb-query-failed", PQerrorMessage(db->conn));
		PQclear(res);
		res = NULL;
		/* A connection that died since the last query: once more. */
		if (PQstatus(db->conn) == CONNECTION_OK)
			return -1;
		PQfinish(db->conn);
		db->conn = NULL;
	}
	if (res == NULL)
		return -1;
	if (PQfnumber(res, "password") < 0) {
		log_warnx("event=passdb-query-failed backend=pgsql "
		    "reason=\"password_query returns no password column\"");
		goto out;
	}
	if (PQntuples(res) == 0) {
		rc = 0;
	} else if (PQntuples(res) > 1) {
		char safe[AUTH_USER_MAX * 4 + 1];

		str_sanitize(safe, sizeof(safe), user, strlen(user));
		log_warnx("event=passdb-ambiguous backend=pgsql user=\"%s\"",
		    safe);
		rc = 0;
	} else if (!parse_row(res, user, r)) {
		char safe[AUTH_USER_MAX * 4 + 1];

		str_sanitize(safe, sizeof(safe), user, strlen(user));
		log_warnx("event=passdb-bad-row backend=pgsql user=\"%s\" "
		    "reason=\"uid, gid or home unusable\"", safe);
		explicit_bzero(r, sizeof(*r));
		rc = 0;
	} else {
		rc = 1;
	}
out:
	for (int i = 0; i < PQntuples(res); i++) {
		int pc = PQfnumber(res, "password");

		if (pc >= 0)
			explicit_bzero(PQgetvalue(res, i, pc),
			    (size_t)PQgetlength(res, i, pc));
	}
	PQclear(res);
	return rc;
}

static enum auth_result
pg_verify(struct auth_db *db, const char *user, const char *pass,
    struct auth_user *user_r)
{
	struct row r;
	bool ok;
	int found;

	memset(user_r, 0, sizeof(*user_r));
	if (strnlen(pass, AUTH_PASS_MAX + 1) > AUTH_PASS_MAX) {
		auth_dummy_pay(&db->dummy, "");
		return AUTH_PERMFAIL;
	}
	found = fetch(db, user, &r);
	if (found < 0)
		return AUTH_TEMPFAIL;
	if (found == 0) {
		auth_dummy_pay(&db->dummy, pass);
		explicit_bzero(&r, sizeof(r));
		return AUTH_PERMFAIL;
	}
	ok = auth_secret_verify(&db->dummy, user, r.scheme, r.secret, pass);
	/*
	 * Unknown users cost what the users seen last cost: with no table
	 * scan to find the commonest method (the passwd-file's way), the
	 * latest real user's method stands in for it.
	 */
	auth_dummy_learn(&db->dummy, r.scheme, r.secret);
	if (ok)
		*user_r = r.user;
	explicit_bzero(&r, sizeof(r));
	return ok ? AUTH_OK : AUTH_PERMFAIL;
}

static enum auth_result
pg_apop(struct auth_db *db, const char *user, const char *timestamp,
    const char *digest_hex, struct auth_user *user_r)
{
	char hex[CRYPTO_MD5_HEX_LEN + 1], want[CRYPTO_MD5_HEX_LEN + 1];
	struct row r;
	bool ok, plain;
	int found;

	memset(user_r, 0, sizeof(*user_r));
	if (!crypto_md5_hex_parse(digest_hex,
	    strnlen(digest_hex, CRYPTO_MD5_HEX_LEN + 1), want))
		return AUTH_PERMFAIL;
	found = fetch(db, user, &r);
	if (found < 0)
		return AUTH_TEMPFAIL;
	plain = found == 1 && r.scheme == AUTH_SCHEME_PLAIN;
	ok = crypto_apop_digest(timestamp, plain ? r.secret : "", hex) &&
	    CRYPTO_memcmp(hex, want, CRYPTO_MD5_HEX_LEN) == 0 && plain;
	explicit_bzero(hex, sizeof(hex));
	if (ok)
		*user_r = r.user;
	explicit_bzero(&r, sizeof(r));
	return ok ? AUTH_OK : AUTH_PERMFAIL;
}

static enum auth_result
pg_lookup(struct auth_db *db, const char *user, struct auth_user *user_r)
{
	struct row r;
	int found;

	memset(user_r, 0, sizeof(*user_r));
	found = fetch(db, user, &r);
	if (found < 0)
		return AUTH_TEMPFAIL;
	if (found == 1 && r.scheme != AUTH_SCHEME_LOCKED &&
	    r.scheme != AUTH_SCHEME_UNUSABLE && r.bad_quota != NULL) {
		char safe[AUTH_USER_MAX * 4 + 1];

		str_sanitize(safe, sizeof(safe), user, strlen(user));
		log_warnx("event=passdb-bad-row backend=pgsql user=\"%s\" "
		    "reason=\"%s: lookup fails temporarily\"", safe,
		    r.bad_quota);
		explicit_bzero(&r, sizeof(r));
		return AUTH_TEMPFAIL;
	}
	if (found == 1 && r.scheme != AUTH_SCHEME_LOCKED &&
	    r.scheme != AUTH_SCHEME_UNUSABLE)
		*user_r = r.user;
	else
		found = 0;
	explicit_bzero(&r, sizeof(r));
	return found == 1 ? AUTH_OK : AUTH_PERMFAIL;
}

static enum auth_result
pg_scram_lookup(struct auth_db *db, const char *user, struct auth_scram *keys_r,
    struct auth_user *user_r)
{
	struct row r;
	int found;

	memset(user_r, 0, sizeof(*user_r));
	memset(keys_r, 0, sizeof(*keys_r));
	found = fetch(db, user, &r);
	if (found < 0)
		return AUTH_TEMPFAIL;
	if (found == 1 && r.scheme == AUTH_SCHEME_SCRAM &&
	    auth_scram_parse(r.secret, keys_r) == 0)
		*user_r = r.user;
	else
		found = 0;
	explicit_bzero(&r, sizeof(r));
	return found == 1 ? AUTH_OK : AUTH_PERMFAIL;
}

static enum auth_result
pg_plain_secret(struct auth_db *db, const char *user, char *buf,
    size_t bufsize, struct auth_user *user_r)
{
	struct row r;
	int found;

	memset(user_r, 0, sizeof(*user_r));
	if (bufsize > 0)
		buf[0] = '\0';
	found = fetch(db, user, &r);
	if (found < 0)
		return AUTH_TEMPFAIL;
	if (found == 1 && r.scheme == AUTH_SCHEME_PLAIN &&
	    str_copy(buf, bufsize, r.secret) == 0) {
		*user_r = r.user;
	} else {
		explicit_bzero(buf, bufsize);
		found = 0;
	}
	explicit_bzero(&r, sizeof(r));
	return found == 1 ? AUTH_OK : AUTH_PERMFAIL;
}

static int
pg_open(struct auth_db **db_r, const char *path, char *err)
{
	struct auth_db *db;

	(void)path;
	*db_r = NULL;
	if (pg_conf.conninfo == NULL || pg_conf.query == NULL) {
		str_copy(err, ERR_LEN, "pgsql: not configured");
		return -1;
	}
	if (auth_pgsql_check(&pg_conf, err) < 0)
		return -1;
	db = calloc(1, sizeof(*db));
	if (db == NULL) {
		str_copy(err, ERR_LEN, "out of memory");
		return -1;
	}
	db->conninfo = pg_conf.conninfo;
	db->query = pg_conf.query;
	if (pg_conf.password_file != NULL && pg_conf.password_file[0] != '\0') {
		if (secret_file_read("pgsql-password-file",
		    pg_conf.password_file, db->password, sizeof(db->password),
		    err) < 0) {
			explicit_bzero(db, sizeof(*db));
			free(db);
			return -1;
		}
		db->has_password = true;
	}
	/* Until a real user is seen: yescrypt, the crypt(3) default. */
	if (auth_dummy_init(&db->dummy, err) < 0) {
		explicit_bzero(db, sizeof(*db));
		free(db);
		return -1;
	}
	/* An unreachable database is an outage, not a start-up failure. */
	(void)pg_connect(db);
	*db_r = db;
	return 0;
}

static void
pg_close(struct auth_db **dbp)
{
	struct auth_db *db = *dbp;

	if (db == NULL)
		return;
	PQfinish(db->conn);
	explicit_bzero(db, sizeof(*db));
	free(db);
	*dbp = NULL;
}

const struct auth_ops auth_pgsql_ops = {
	.name = "pgsql",
	.open = pg_open,
	.verify = pg_verify,
	.apop = pg_apop,
	.lookup = pg_lookup,
	.scram_lookup = pg_scram_lookup,
	.plain_secret = pg_plain_secret,
	.close = pg_close,
};
