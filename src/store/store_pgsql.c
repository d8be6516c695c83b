/*
 * mailbox = pgsql: (store_pgsql.h). Messages are rows of postino_message
 * (pgsql_schema.sql); the session lock is a session-level advisory lock on
 * the connection the session keeps, so it ends with the session, its
 * connection or its whole instance, whichever goes first.
 *
 * In the mail role (an event loop, store_pgsql_set_loop) a session never
 * blocks the worker: its connection is made with PQconnectStart/Poll and
 * its queries (the schema check of a process's first connection too) sent
 * in non-blocking mode, each socket waiting in the loop, a connection
 * bounded by a timer. Elsewhere (delivery, postino-migrate)
 * calls are blocking libpq calls, bounded by connect_timeout and
 * statement_timeout. Every database failure is STORE_TEMPFAIL: an outage
 * must never look like a broken or empty mailbox.
 */
#include "store_pgsql.h"

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "../lib/ev.h"
#include "../lib/log.h"
#include "../lib/secret_file.h"
#include "store_append.h"

/*
 * Seconds to wait for a connection, and milliseconds one statement may
 * run: a RETR block or an UPDATE of a big mailbox takes milliseconds;
 * anything slower is an outage to report, not to wait out.
 */
#define PG_CONNECT_TIMEOUT	"5"
#define PG_CONNECT_MS		5000	/* the same, in the loop */
#define PG_OPTIONS		"-c statement_timeout=30000"
/* After a failed connection, fail at once for this long (auth_pgsql.c). */
#define PG_RETRY_MS		1000
/* PostgreSQL's own limit for one field is 1 GiB. */
#define PG_BODY_MAX		((uint64_t)1 << 30)
/* A mailbox name: the expanded template, bounded like the schema's CHECK. */
#define PG_NAME_MAX		1024
/*
 * The advisory lock keys: a 64-bit hash of the mailbox name in its own
 * namespace, so other applications' locks on the database do not collide
 * with ours (two mailboxes sharing a hash would only share a lock).
 */
#define PG_LOCK_KEY	"hashtextextended('postino-session:' || $1, 0)"
#define PG_APPEND_KEY	"hashtextextended('postino-append:' || $1, 0)"
/* Creating or upgrading the schema: one instance at a time. */
#define PG_SCHEMA_KEY	"8101551090716655943"

/*
 * A block of a message, one query each: four of RETR's blocks
 * (mailbox_cmds.c), as each query costs the database far more than its
 * octets do (bench/pgsql.py: S3); a reader holds one (malloc, per RETR).
 */
#define PG_BLOCK	(128 * 1024)
/* How long a session's query may take (statement_timeout and a little
 * more), in the loop or not: then the connection is given up, so a
 * database gone silent mid-query holds its session no longer than this. */
#define PG_WAIT_MS	35000

/* Where a connection's schema check is (schema_step). */
enum schema_stage {
	/* A new connection: checked if no other one of this process has
	 * been (one being checked may finish while this one waits). */
	SCHEMA_UNSEEN,
	SCHEMA_PEEK,	/* the version, no lock: all a current schema needs */
	SCHEMA_LOCK,	/* BEGIN and the lock: creating or upgrading */
	SCHEMA_EXISTS,	/* the version table, seen under the lock */
	SCHEMA_CREATE,	/* pgsql_schema.sql */
	SCHEMA_VERSION,	/* the version, under the lock */
	SCHEMA_UPGRADE,	/* pgsql_upgrade_N.sql, N = schema_want */
	SCHEMA_COMMIT,
	SCHEMA_DONE,
};

#define PG_VERSION_SQL	"SELECT max(version) FROM postino_schema_version"
/* The upgrade steps, by the version each one brings the schema to. */
static const char *const pg_upgrades[STORE_PGSQL_SCHEMA_VERSION + 1] = {
	[2] = store_pgsql_upgrade_2,
};

enum pg_query {
	Q_IDLE,		/* nothing sent */
	Q_BUSY,		/* sent, its reply not all in */
	Q_DONE,		/* the reply is in (st->res) */
	Q_FAILED,	/* the connection broke or timed out */
};

struct store {
	PGconn		*conn;
	char		 mailbox[PG_NAME_MAX + 1];
	char		 (*ids)[24];	/* row ids as text, by message */
	uint64_t	*sizes;		/* stored octets, by message */
	unsigned int	 count;
	bool		 locked;	/* the session lock is ours */
	bool		 pooled;	/* conn came from the pool */
	/* Wait in place (poll) even in the loop: conn_get's checks. */
	bool		 blocking;
	enum schema_stage schema_stage;
	int		 schema_want;	/* the version an upgrade step set */
	int		 stage;		/* pg_commit: 1 once the DELETE is in */
	/* The query in progress (q_exec). */
	enum pg_query	 q;
	PGresult	*res;
	bool		 want_write;
	int		 watched;	/* the socket in pg_ev, or -1 */
	bool		 stale;		/* the query is a read-ahead no one wants */
	/* A connection being made in the loop (conn_step). */
	bool		 connecting;
	bool		 connect_late;	/* its timer ran out */
	PostgresPollingStatusType cpoll;
	struct ev_timer	 timer;
	store_ready_fn	*ready_fn;
	void		*ready_arg;
};

struct store_reader {
	struct store	*st;
	unsigned int	 msgnum;
	uint64_t	 off;		/* octets fetched so far */
	uint64_t	 size;		/* stored octets */
	size_t		 pos, len;	/* the unread part of buf */
	char		 buf[PG_BLOCK];
};

static struct {
	const char	*conninfo;
	char		 password[STORE_PGSQL_PASSWORD_MAX + 1];
	bool		 has_password;
	unsigned int	 pool;
} pg_conf;

static struct ev *pg_ev;
static PGconn *pg_idle[STORE_PGSQL_POOL_MAX];
static unsigned int pg_nidle;
static uint64_t pg_retry_ms;
static bool pg_schema_checked;

int
store_pgsql_configure(const struct store_pgsql_conf *conf, char *err)
{
	memset(&pg_conf, 0, sizeof(pg_conf));
	pg_conf.conninfo = conf->conninfo;
	pg_conf.pool = conf->pool < STORE_PGSQL_POOL_MAX ? conf->pool :
	    STORE_PGSQL_POOL_MAX;
	if (conf->password_file != NULL && conf->password_file[0] != '\0') {
		if (secret_file_read("pgsql-password-file", conf->password_file,
		    pg_conf.password, sizeof(pg_conf.password), err) < 0)
			return -1;
		pg_conf.has_password = true;
	}
	return 0;
}

void
store_pgsql_set_loop(struct ev *ev)
{
	pg_ev = ev;
}

void
store_pgsql_shutdown(void)
{
	while (pg_nidle > 0)
		PQfinish(pg_idle[--pg_nidle]);
}

/* libpq's message on one line, sanitised, into err (and the log). */
static enum store_result
pg_fail(PGconn *conn, const char *what, char *err)
{
	const char *msg = conn != NULL ? PQerrorMessage(conn) : "out of memory";
	char safe[ERR_LEN];
	size_t len = strlen(msg);

	while (len > 0 && (msg[len - 1] == '\n' || msg[len - 1] == ' '))
		len--;
	str_sanitize(safe, sizeof(safe), msg, len);
	(void)str_fmt(err, ERR_LEN, "pgsql %s: %s", what, safe);
	return STORE_TEMPFAIL;
}

/*
 * Run sql with text parameters; the result when its status is want, else
 * NULL with err filled. fmt: 0 text results, 1 binary.
 */
static PGresult *
pg_run(PGconn *conn, const char *sql, int n, const char *const *vals,
    int fmt, ExecStatusType want, char *err)
{
	PGresult *res = PQexecParams(conn, sql, n, NULL, vals, NULL, NULL, fmt);

	if (res != NULL && PQresultStatus(res) == want)
		return res;
	if (res != NULL && PQresultErrorMessage(res)[0] != '\0') {
		char safe[ERR_LEN];
		const char *m = PQresultErrorMessage(res);

		str_sanitize(safe, sizeof(safe), m, strcspn(m, "\n"));
		(void)str_fmt(err, ERR_LEN, "pgsql: %s", safe);
	} else {
		(void)pg_fail(conn, "query", err);
	}
	PQclear(res);
	return NULL;
}

static int
pg_command(PGconn *conn, const char *sql, int n, const char *const *vals,
    char *err)
{
	PGresult *res = pg_run(conn, sql, n, vals, 0, PGRES_COMMAND_OK, err);

	PQclear(res);
	return res != NULL ? 0 : -1;
}

/* Back to the pool when it is clean and there is room, else closed. */
static void
conn_release(PGconn *conn)
{
	if (conn == NULL)
		return;
	if (PQstatus(conn) == CONNECTION_OK &&
	    PQtransactionStatus(conn) == PQTRANS_IDLE && pg_nidle < pg_conf.pool)
		pg_idle[pg_nidle++] = conn;
	else
		PQfinish(conn);
}

/*
 * An idle connection has nothing to read unless the server has given up
 * on it (a restart, a killed backend: its last words, or EOF). Anything
 * else unasked (a notice) is rare enough to cost just a new connection.
 */
static bool
conn_alive(PGconn *conn)
{
	struct pollfd pfd = { .fd = PQsocket(conn), .events = POLLIN };

	return PQstatus(conn) == CONNECTION_OK && pfd.fd >= 0 &&
	    poll(&pfd, 1, 0) == 0;
}

/* An idle connection from the pool that still works, or NULL. */
static PGconn *
conn_pooled(void)
{
	while (pg_nidle > 0) {
		PGconn *conn = pg_idle[--pg_nidle];

		if (conn_alive(conn))
			return conn;
		PQfinish(conn);
	}
	return NULL;
}

/*
 * A new connection, started (the loop) or made (blocking), or NULL with
 * err filled: not configured, or failing fast after a failure.
 */
static PGconn *
conn_new(bool start, char *err)
{
	/* Keywords before dbname are defaults the conninfo may override. */
	const char *keys[] = { "connect_timeout", "options",
	    "application_name", "dbname", "password", NULL };
	const char *vals[] = { PG_CONNECT_TIMEOUT, PG_OPTIONS,
	    "postinod-mail", pg_conf.conninfo,
	    pg_conf.has_password ? pg_conf.password : NULL, NULL };
	PGconn *conn;

	if (pg_conf.conninfo == NULL) {
		str_copy(err, ERR_LEN, "pgsql: pgsql_conninfo not configured");
		return NULL;
	}
	if (ev_now_ms() < pg_retry_ms) {
		str_copy(err, ERR_LEN, "pgsql: database unavailable");
		return NULL;
	}
	conn = start ? PQconnectStartParams(keys, vals, 1) :
	    PQconnectdbParams(keys, vals, 1);
	if (conn == NULL || PQstatus(conn) == CONNECTION_BAD ||
	    (!start && PQstatus(conn) != CONNECTION_OK)) {
		(void)pg_fail(conn, "connect", err);
		log_warnx("event=mailstore-unavailable backend=pgsql "
		    "reason=\"%s\"", err);
		PQfinish(conn);
		pg_retry_ms = ev_now_ms() + PG_RETRY_MS;
		return NULL;
	}
	return conn;
}

/* A connection made or taken from the pool: 0, or -1 with err filled
 * (conn closed). */
static int
conn_made(PGconn *conn, bool nonblocking, char *err)
{
	/* Blocking callers stream COPY with PQputCopyData: blocking mode. */
	if (PQsetnonblocking(conn, nonblocking) != 0) {
		(void)pg_fail(conn, "setnonblocking", err);
		PQfinish(conn);
		return -1;
	}
	return 0;
}

static enum store_result schema_step(struct store *st, char *err);

/*
 * A working connection (pooled or new), blocking, or NULL with err. The
 * schema check waits in place here: these callers (deliveries,
 * postino-migrate) handle one message at a time anyway.
 */
static PGconn *
conn_get(char *err)
{
	struct store tmp = { .watched = -1, .blocking = true };

	tmp.conn = conn_pooled();
	if (tmp.conn == NULL && (tmp.conn = conn_new(false, err)) == NULL)
		return NULL;
	if (conn_made(tmp.conn, false, err) < 0)
		return NULL;
	if (schema_step(&tmp, err) != STORE_OK) {
		PQclear(tmp.res);
		PQfinish(tmp.conn);
		return NULL;
	}
	return tmp.conn;
}

static int
name_check(const char *name, char *err)
{
	if (name[0] == '\0' || strlen(name) > PG_NAME_MAX) {
		str_copy(err, ERR_LEN, "pgsql: mailbox name empty or too long");
		return -1;
	}
	return 0;
}

/* 1..70 octets in 0x21..0x7E (store.h); the schema checks it too. */
static bool
uidl_ok(const char *u, size_t len)
{
	if (len == 0 || len > STORE_UIDL_MAX)
		return false;
	for (size_t i = 0; i < len; i++)
		if (u[i] < 0x21 || u[i] > 0x7e)
			return false;
	return true;
}

/*
 * One query of a session, sent on the first call and collected on later
 * ones: with a loop (store_pgsql_set_loop) the connection's socket waits
 * in it and STORE_PENDING is returned; without one, poll(2) waits here,
 * at most PG_WAIT_MS.
 */
static int
q_step(struct store *st)
{
	int f = PQflush(st->conn);

	if (f < 0 || PQconsumeInput(st->conn) != 1) {
		st->q = Q_FAILED;
		return -1;
	}
	st->want_write = f == 1;
	while (!PQisBusy(st->conn)) {
		PGresult *r = PQgetResult(st->conn);

		if (r == NULL) {
			st->q = Q_DONE;
			return 1;
		}
		/* Many statements (a schema step): the last result, or the
		 * error that stopped them. */
		if (st->res == NULL ||
		    PQresultStatus(st->res) != PGRES_FATAL_ERROR) {
			PQclear(st->res);
			st->res = r;
		} else {
			PQclear(r);
		}
	}
	return 0;
}

static void
q_unwatch(struct store *st)
{
	if (st->watched >= 0)
		ev_io_del(pg_ev, st->watched);
	st->watched = -1;
}

/* The loop's callback: the reply is in (or the line broke): go on. */
static void
q_io(struct ev *e, int fd, unsigned int events, void *arg)
{
	struct store *st = arg;

	(void)e;
	(void)fd;
	(void)events;
	if (q_step(st) == 0) {
		ev_io_set(pg_ev, st->watched, EV_READ |
		    (st->want_write ? EV_WRITE : 0), q_io, st);
		return;
	}
	ev_timer_stop(pg_ev, &st->timer);
	q_unwatch(st);
	/* Last: the callback may close (free) st. */
	if (st->ready_fn != NULL)
		st->ready_fn(st->ready_arg);
}

/*
 * No reply within PG_WAIT_MS (a stopped backend, a lost network): the
 * query fails, and the connection, still busy, is closed, never pooled.
 */
static void
q_late(struct ev *e, void *arg)
{
	struct store *st = arg;

	(void)e;
	log_warnx("event=mailstore-timeout backend=pgsql ms=%d", PG_WAIT_MS);
	q_unwatch(st);
	st->q = Q_FAILED;
	if (st->ready_fn != NULL)
		st->ready_fn(st->ready_arg);
}

static int
q_block(struct store *st)
{
	struct pollfd pfd = { .fd = PQsocket(st->conn) };

	pfd.events = POLLIN | (st->want_write ? POLLOUT : 0);
	if (pfd.fd < 0 || poll(&pfd, 1, PG_WAIT_MS) <= 0) {
		st->q = Q_FAILED;
		return -1;
	}
	return 0;
}

/* Until the query's reply is in: STORE_PENDING (in the loop) or STORE_OK. */
static enum store_result
q_wait(struct store *st)
{
	while (st->q == Q_BUSY && q_step(st) == 0) {
		if (pg_ev != NULL && !st->blocking) {
			st->watched = PQsocket(st->conn);
			ev_timer_init(&st->timer, q_late, st);
			if (ev_io_set(pg_ev, st->watched, EV_READ |
			    (st->want_write ? EV_WRITE : 0), q_io, st) == 0 &&
			    ev_timer_start(pg_ev, &st->timer, PG_WAIT_MS) == 0)
				return STORE_PENDING;
			q_unwatch(st);
			st->q = Q_FAILED;
		} else {
			(void)q_block(st);
		}
	}
	return STORE_OK;
}

/*
 * Send a query without waiting for it (q_exec collects its reply). n < 0:
 * a simple query, which may hold many statements (a schema step).
 */
static int
q_send(struct store *st, const char *sql, int n, const char *const *vals,
    int fmt)
{
	if ((n < 0 ? PQsendQuery(st->conn, sql) :
	    PQsendQueryParams(st->conn, sql, n, NULL, vals, NULL, NULL,
	    fmt)) != 1)
		return -1;
	st->q = Q_BUSY;
	st->res = NULL;
	(void)q_step(st);
	return 0;
}

/* A reply that is not the one wanted, on one line, into err. */
static enum store_result
q_error(const struct store *st, const PGresult *res, char *err)
{
	const char *m = PQresultErrorMessage(res);
	char safe[ERR_LEN];

	if (m[0] == '\0')
		return pg_fail(st->conn, "query", err);
	str_sanitize(safe, sizeof(safe), m, strcspn(m, "\n"));
	(void)str_fmt(err, ERR_LEN, "pgsql: %s", safe);
	return STORE_TEMPFAIL;
}

/*
 * A query's reply, whatever its status: sent on the first call, then
 * STORE_PENDING until it is in. STORE_OK with *res_r, or STORE_TEMPFAIL
 * with err (nothing sent, or the connection failed).
 */
static enum store_result
q_collect(struct store *st, const char *sql, int n, const char *const *vals,
    int fmt, PGresult **res_r, char *err)
{
	bool failed;

	*res_r = NULL;
	if (st->stale) {
		/* A read-ahead of a reader closed before it: its reply goes. */
		if (q_wait(st) == STORE_PENDING)
			return STORE_PENDING;
		st->stale = false;
		PQclear(st->res);
		st->res = NULL;
		if (st->q == Q_DONE)
			st->q = Q_IDLE;
	}
	if (st->q == Q_IDLE && q_send(st, sql, n, vals, fmt) < 0)
		return pg_fail(st->conn, "query", err);
	if (q_wait(st) == STORE_PENDING)
		return STORE_PENDING;
	*res_r = st->res;
	st->res = NULL;
	failed = st->q == Q_FAILED;
	st->q = Q_IDLE;
	if (!failed && *res_r != NULL)
		return STORE_OK;
	PQclear(*res_r);
	*res_r = NULL;
	return pg_fail(st->conn, failed ? "connection" : "query", err);
}

/* A query whose reply must have status want (else STORE_TEMPFAIL). */
static enum store_result
q_exec(struct store *st, const char *sql, int n, const char *const *vals,
    int fmt, ExecStatusType want, PGresult **res_r, char *err)
{
	enum store_result r = q_collect(st, sql, n, vals, fmt, res_r, err);

	if (r != STORE_OK || PQresultStatus(*res_r) == want)
		return r;
	r = q_error(st, *res_r, err);
	PQclear(*res_r);
	*res_r = NULL;
	return r;
}

/* The version in a reply's one row, or -1 (none, or not a number). */
static int
schema_version_of(const PGresult *res)
{
	uint32_t v;

	if (PQntuples(res) != 1 || PQgetisnull(res, 0, 0) ||
	    str_parse_u32(PQgetvalue(res, 0, 0), &v) < 0 || v > INT_MAX)
		return -1;
	return (int)v;
}

/* After a version was read (the peek or under the lock): what next. */
static enum store_result
schema_versioned(struct store *st, const PGresult *res, char *err)
{
	int v = schema_version_of(res);

	if (v > STORE_PGSQL_SCHEMA_VERSION) {
		(void)str_fmt(err, ERR_LEN, "pgsql: schema version %d is newer "
		    "than this postinod knows (%d): upgrade postinod", v,
		    STORE_PGSQL_SCHEMA_VERSION);
		return STORE_TEMPFAIL;
	}
	if (v < 1) {
		str_copy(err, ERR_LEN, "pgsql: postino_schema_version holds "
		    "no version");
		return STORE_TEMPFAIL;
	}
	if (st->schema_want != 0 && v != st->schema_want) {
		(void)str_fmt(err, ERR_LEN, "pgsql: the upgrade to schema "
		    "version %d left version %d", st->schema_want, v);
		return STORE_TEMPFAIL;
	}
	if (st->schema_stage == SCHEMA_PEEK) {
		st->schema_stage = v == STORE_PGSQL_SCHEMA_VERSION ?
		    SCHEMA_DONE : SCHEMA_LOCK;
	} else if (v == STORE_PGSQL_SCHEMA_VERSION) {
		st->schema_stage = SCHEMA_COMMIT;
	} else {
		st->schema_want = v + 1;
		st->schema_stage = SCHEMA_UPGRADE;
	}
	return STORE_OK;
}

/* One stage's reply: on to the next stage, or STORE_TEMPFAIL with err. */
static enum store_result
schema_next(struct store *st, const PGresult *res, char *err)
{
	ExecStatusType s = PQresultStatus(res);
	const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);

	switch (st->schema_stage) {
	case SCHEMA_PEEK:
		/* 42P01, undefined_table: a database new to postinod. */
		if (s == PGRES_FATAL_ERROR && state != NULL &&
		    strcmp(state, "42P01") == 0) {
			st->schema_stage = SCHEMA_LOCK;
			return STORE_OK;
		}
		/* FALLTHROUGH */
	case SCHEMA_VERSION:
		return s == PGRES_TUPLES_OK ? schema_versioned(st, res, err) :
		    q_error(st, res, err);
	case SCHEMA_LOCK:
		st->schema_stage = SCHEMA_EXISTS;
		return s == PGRES_TUPLES_OK ? STORE_OK : q_error(st, res, err);
	case SCHEMA_EXISTS:
		if (s != PGRES_TUPLES_OK || PQntuples(res) != 1)
			return q_error(st, res, err);
		st->schema_stage = strcmp(PQgetvalue(res, 0, 0), "0") == 0 ?
		    SCHEMA_CREATE : SCHEMA_VERSION;
		return STORE_OK;
	case SCHEMA_CREATE:
	case SCHEMA_UPGRADE:
		if (s != PGRES_COMMAND_OK)
			return q_error(st, res, err);
		if (st->schema_stage == SCHEMA_CREATE)
			log_info("event=pgsql-schema-created version=%d",
			    STORE_PGSQL_SCHEMA_VERSION);
		else
			log_info("event=pgsql-schema-upgraded from=%d to=%d",
			    st->schema_want - 1, st->schema_want);
		st->schema_stage = SCHEMA_VERSION;
		return STORE_OK;
	default:
		if (s != PGRES_COMMAND_OK)
			return q_error(st, res, err);
		st->schema_stage = SCHEMA_DONE;
		return STORE_OK;
	}
}

/*
 * The schema check of a process's first connection, a query at a time on
 * st's connection, so in the loop it waits there like any query. A
 * current schema costs one query and no lock; a missing or older one is
 * created or upgraded (one step per version) in one transaction under an
 * advisory lock, so instances starting together do it once. STORE_OK,
 * STORE_PENDING (call again), or STORE_TEMPFAIL with err: then the caller
 * closes the connection, which rolls back what was begun.
 */
static enum store_result
schema_step(struct store *st, char *err)
{
	/* pg_tables, not to_regclass(): a scan of pg_class under this
	 * statement's snapshot sees a table another instance made while we
	 * waited for the lock. */
	static const char *const sql[] = {
		[SCHEMA_PEEK] = PG_VERSION_SQL,
		[SCHEMA_LOCK] = "BEGIN; SELECT pg_advisory_xact_lock("
		    PG_SCHEMA_KEY ")",
		[SCHEMA_EXISTS] = "SELECT count(*) FROM pg_catalog.pg_tables "
		    "WHERE schemaname = current_schema() AND "
		    "tablename = 'postino_schema_version'",
		[SCHEMA_VERSION] = PG_VERSION_SQL,
		[SCHEMA_COMMIT] = "COMMIT",
	};
	enum store_result r;
	PGresult *res;

	if (st->schema_stage == SCHEMA_UNSEEN)
		st->schema_stage = pg_schema_checked ? SCHEMA_DONE :
		    SCHEMA_PEEK;
	while (st->schema_stage != SCHEMA_DONE) {
		const char *q = st->schema_stage == SCHEMA_CREATE ?
		    store_pgsql_schema : st->schema_stage == SCHEMA_UPGRADE ?
		    pg_upgrades[st->schema_want] : sql[st->schema_stage];

		if ((r = q_collect(st, q, -1, NULL, 0, &res, err)) == STORE_OK) {
			r = schema_next(st, res, err);
			PQclear(res);
		}
		if (r == STORE_PENDING)
			return r;
		if (r != STORE_OK) {
			log_warnx("event=mailstore-schema backend=pgsql "
			    "reason=\"%s\"", err);
			return r;
		}
	}
	pg_schema_checked = true;
	return STORE_OK;
}

/* The rows of the index query into idx, st->ids and st->sizes. */
static enum store_result
index_fill(struct store *st, PGresult *res, const struct store_params *p,
    struct store_index *idx, char *err)
{
	int n = PQntuples(res);

	if (p->max_messages != 0 && (unsigned int)n > p->max_messages) {
		(void)str_fmt(err, ERR_LEN, "more than %u messages",
		    p->max_messages);
		return STORE_PERMFAIL;
	}
	idx->msgs = calloc((size_t)n + 1, sizeof(*idx->msgs));
	st->ids = calloc((size_t)n + 1, sizeof(*st->ids));
	st->sizes = calloc((size_t)n + 1, sizeof(*st->sizes));
	if (idx->msgs == NULL || st->ids == NULL || st->sizes == NULL) {
		str_copy(err, ERR_LEN, "out of memory");
		return STORE_TEMPFAIL;
	}
	for (int i = 0; i < n; i++) {
		struct store_msg *m = &idx->msgs[i];
		const char *u = PQgetvalue(res, i, 1);
		size_t ulen = (size_t)PQgetlength(res, i, 1);

		if (str_copy(st->ids[i], sizeof(st->ids[i]),
		    PQgetvalue(res, i, 0)) < 0 || !uidl_ok(u, ulen) ||
		    str_parse_u64(PQgetvalue(res, i, 2), &m->size) < 0 ||
		    str_parse_u64(PQgetvalue(res, i, 3), &st->sizes[i]) < 0 ||
		    __builtin_add_overflow(idx->total_size, m->size,
		    &idx->total_size)) {
			str_copy(err, ERR_LEN, "pgsql: a row with a bad uidl "
			    "or size");
			return STORE_PERMFAIL;
		}
		memcpy(m->uidl, u, ulen);
		m->uidl[ulen] = '\0';
	}
	idx->count = st->count = (unsigned int)n;
	if (p->max_bytes != 0 && idx->total_size > p->max_bytes) {
		str_copy(err, ERR_LEN, "mailbox over max_mailbox_size");
		return STORE_PERMFAIL;
	}
	return STORE_OK;
}

static void pg_close(struct store **stp, struct store_index *idx);

/* Wakes the session up (last: its callback may close, free, st). */
static void
conn_wake(struct store *st)
{
	q_unwatch(st);
	if (st->ready_fn != NULL)
		st->ready_fn(st->ready_arg);
}

/* The loop's callback while connecting: one more step of the handshake. */
static void
conn_io(struct ev *e, int fd, unsigned int events, void *arg)
{
	struct store *st = arg;

	(void)e;
	(void)fd;
	(void)events;
	q_unwatch(st);
	st->cpoll = PQconnectPoll(st->conn);
	if (st->cpoll == PGRES_POLLING_READING ||
	    st->cpoll == PGRES_POLLING_WRITING) {
		/* The socket may be another one now (the next address). */
		st->watched = PQsocket(st->conn);
		if (st->watched >= 0 && ev_io_set(pg_ev, st->watched,
		    st->cpoll == PGRES_POLLING_READING ? EV_READ : EV_WRITE,
		    conn_io, st) == 0)
			return;
		st->watched = -1;
		st->cpoll = PGRES_POLLING_FAILED;
	}
	conn_wake(st);
}

/* A database that takes the connection but does not answer: give up. */
static void
conn_late(struct ev *e, void *arg)
{
	struct store *st = arg;

	(void)e;
	st->connect_late = true;
	conn_wake(st);
}

/*
 * A new connection made in the loop: started on the first call, then
 * STORE_PENDING until PQconnectPoll is done or PG_CONNECT_MS have passed.
 * STORE_OK with st->conn ready, or STORE_TEMPFAIL (st->conn NULL).
 */
static enum store_result
conn_step(struct store *st, char *err)
{
	if (!st->connecting) {
		if ((st->conn = conn_new(true, err)) == NULL)
			return STORE_TEMPFAIL;
		st->connecting = true;
		st->connect_late = false;
		/* As if PQconnectPoll had asked for the socket writable. */
		st->cpoll = PGRES_POLLING_WRITING;
		ev_timer_init(&st->timer, conn_late, st);
		if (ev_timer_start(pg_ev, &st->timer, PG_CONNECT_MS) < 0)
			st->cpoll = PGRES_POLLING_FAILED;
		else if ((st->watched = PQsocket(st->conn)) < 0 ||
		    ev_io_set(pg_ev, st->watched, EV_WRITE, conn_io, st) < 0) {
			st->watched = -1;
			st->cpoll = PGRES_POLLING_FAILED;
		}
	}
	if (!st->connect_late && (st->cpoll == PGRES_POLLING_READING ||
	    st->cpoll == PGRES_POLLING_WRITING))
		return STORE_PENDING;
	q_unwatch(st);
	ev_timer_stop(pg_ev, &st->timer);
	st->connecting = false;
	if (st->cpoll == PGRES_POLLING_OK && !st->connect_late)
		return conn_made(st->conn, true, err) == 0 ? STORE_OK :
		    (st->conn = NULL, STORE_TEMPFAIL);
	if (st->connect_late)
		str_copy(err, ERR_LEN, "pgsql connect: no answer in time");
	else
		(void)pg_fail(st->conn, "connect", err);
	log_warnx("event=mailstore-unavailable backend=pgsql reason=\"%s\"",
	    err);
	PQfinish(st->conn);
	st->conn = NULL;
	pg_retry_ms = ev_now_ms() + PG_RETRY_MS;
	return STORE_TEMPFAIL;
}

/* A connection for a session: pooled, made in the loop, or blocking. */
static enum store_result
open_conn(struct store *st, char *err)
{
	if (!st->connecting) {
		st->pooled = pg_nidle > 0;
		if ((st->conn = conn_pooled()) != NULL)
			return conn_made(st->conn, pg_ev != NULL, err) == 0 ?
			    STORE_OK : (st->conn = NULL, STORE_TEMPFAIL);
		if (pg_ev == NULL)
			return (st->conn = conn_get(err)) != NULL ? STORE_OK :
			    STORE_TEMPFAIL;
	}
	return conn_step(st, err);
}

/*
 * The session lock. With login_delay, in the same query (no round trip
 * more): the lock only when the mailbox's last login is at least $2
 * seconds back, and then the new stamp, so the delay holds across every
 * instance. The reply: locked (t, f, or NULL when too soon) and the
 * seconds to wait. Only the session holding the lock writes the stamp.
 */
#define PG_LOCK_SQL	"SELECT pg_try_advisory_lock(" PG_LOCK_KEY "), 0"
#define PG_LOCK_DELAY_SQL \
	"WITH last AS (SELECT ceil(extract(epoch FROM last_login + " \
	"make_interval(secs => $2::integer) - now()))::bigint AS wait " \
	"FROM postino_mailbox WHERE mailbox = $1 AND last_login <= now()), " \
	"lk AS (SELECT CASE WHEN w.wait > 0 THEN NULL ELSE " \
	"pg_try_advisory_lock(" PG_LOCK_KEY ") END AS locked, w.wait FROM " \
	"(SELECT coalesce(max(wait), 0) AS wait FROM last) w), " \
	"stamp AS (INSERT INTO postino_mailbox (mailbox, last_login) " \
	"SELECT $1, now() FROM lk WHERE locked ON CONFLICT (mailbox) DO " \
	"UPDATE SET last_login = excluded.last_login) " \
	"SELECT locked, wait FROM lk"

/* The connection, its schema check and the lock query's reply. */
static enum store_result
open_query(struct store *st, unsigned int login_delay, PGresult **res_r,
    char *err)
{
	char delay[16];
	const char *vals[2] = { st->mailbox, delay };
	enum store_result r;

	(void)str_fmt(delay, sizeof(delay), "%u", login_delay);
	for (;;) {
		if (st->conn == NULL || st->connecting) {
			if ((r = open_conn(st, err)) != STORE_OK)
				return r;
		}
		if ((r = schema_step(st, err)) != STORE_OK) {
			if (r != STORE_PENDING) {
				PQfinish(st->conn);
				st->conn = NULL;
			}
			return r;
		}
		r = q_exec(st, login_delay != 0 ? PG_LOCK_DELAY_SQL :
		    PG_LOCK_SQL, login_delay != 0 ? 2 : 1, vals, 0,
		    PGRES_TUPLES_OK, res_r, err);
		if (r == STORE_PENDING)
			return r;
		if (r == STORE_OK || !st->pooled ||
		    PQstatus(st->conn) == CONNECTION_OK)
			return r;
		/* A pooled connection that died since: once on a new one. */
		PQfinish(st->conn);
		st->conn = NULL;
	}
}

/* Stage 0: the session lock, on a pooled connection or a new one. */
static enum store_result
open_lock(struct store *st, unsigned int login_delay, char *err)
{
	PGresult *res;
	enum store_result r = open_query(st, login_delay, &res, err);

	if (r != STORE_OK)
		return r;
	if (PQntuples(res) != 1) {
		PQclear(res);
		str_copy(err, ERR_LEN, "pgsql: no reply to the lock");
		return STORE_TEMPFAIL;
	}
	st->locked = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
	if (PQgetisnull(res, 0, 0)) {
		(void)str_fmt(err, ERR_LEN, "login within login_delay, wait "
		    "%.20s s", PQgetvalue(res, 0, 1));
		PQclear(res);
		return STORE_TOO_SOON;
	}
	PQclear(res);
	if (!st->locked) {
		str_copy(err, ERR_LEN, "mailbox locked by a session");
		return STORE_LOCKED;
	}
	return STORE_OK;
}

/*
 * Two queries: the lock, then the index. STORE_PENDING leaves the store
 * in *st_r: call again with it until another answer (then *st_r is the
 * open store, or NULL).
 */
static enum store_result
pg_open(struct store **st_r, const struct store_params *p,
    struct store_index *idx, char *err)
{
	const char *vals[1] = { p->path };
	struct store *st = *st_r;
	PGresult *res;
	enum store_result r;

	if (st == NULL) {
		memset(idx, 0, sizeof(*idx));
		if (name_check(p->path, err) < 0)
			return STORE_PERMFAIL;
		if ((st = calloc(1, sizeof(*st))) == NULL) {
			str_copy(err, ERR_LEN, "out of memory");
			return STORE_TEMPFAIL;
		}
		str_copy(st->mailbox, sizeof(st->mailbox), p->path);
		st->watched = -1;
		*st_r = st;
	}
	if (!st->locked && (r = open_lock(st, p->login_delay, err)) !=
	    STORE_OK)
		goto out;
	r = q_exec(st, "SELECT id, uidl, pop3_size, stored_size FROM "
	    "postino_message WHERE mailbox = $1 ORDER BY id", 1, vals, 0,
	    PGRES_TUPLES_OK, &res, err);
	if (r == STORE_OK) {
		r = index_fill(st, res, p, idx, err);
		PQclear(res);
	}
out:
	if (r != STORE_OK && r != STORE_PENDING)
		pg_close(st_r, idx);
	return r;
}

static void
pg_wait(struct store *st, store_ready_fn *fn, void *arg)
{
	st->ready_fn = fn;
	st->ready_arg = arg;
}

static enum store_result
pg_read_open(struct store *st, unsigned int msgnum, struct store_reader **r_r,
    char *err)
{
	struct store_reader *r;

	*r_r = NULL;
	if (msgnum == 0 || msgnum > st->count) {
		str_copy(err, ERR_LEN, "no such message");
		return STORE_CHANGED;
	}
	if ((r = malloc(sizeof(*r))) == NULL) {
		str_copy(err, ERR_LEN, "out of memory");
		return STORE_TEMPFAIL;
	}
	r->st = st;
	r->msgnum = msgnum;
	r->off = 0;
	r->size = st->sizes[msgnum - 1];
	r->pos = r->len = 0;
	*r_r = r;
	return STORE_OK;
}

#define PG_BLOCK_SQL	"SELECT substring(body FROM $2::integer FOR " \
	"$3::integer) FROM postino_message WHERE id = $1"

/* The parameters of the next block's query; the octets it asks for. */
static uint64_t
block_params(const struct store_reader *r, char from[24], char count[24],
    const char *vals[3])
{
	uint64_t want = r->size - r->off;

	if (want > sizeof(r->buf))
		want = sizeof(r->buf);
	(void)str_fmt(from, 24, "%llu", (unsigned long long)r->off + 1);
	(void)str_fmt(count, 24, "%llu", (unsigned long long)want);
	vals[0] = r->st->ids[r->msgnum - 1];
	vals[1] = from;
	vals[2] = count;
	return want;
}

/*
 * Read-ahead: the next block's query goes out while the client is sent
 * this one, so the database works meanwhile instead of after a round
 * trip. Its reply waits in the socket for read_block (or is dropped by
 * the next query when the reader closes first). Best effort: a failed
 * send is found again by read_block.
 */
static void
read_ahead(struct store_reader *r)
{
	char from[24], count[24];
	const char *vals[3];

	if (r->off >= r->size || r->st->q != Q_IDLE || r->st->stale)
		return;
	(void)block_params(r, from, count, vals);
	(void)q_send(r->st, PG_BLOCK_SQL, 3, vals, 1);
}

/* The next block: substring() of an uncompressed external value reads no
 * more than it. 0, -1 with errno (EAGAIN: pending, wait()). */
static int
read_block(struct store_reader *r)
{
	char from[24], count[24], err[ERR_LEN];
	const char *vals[3];
	uint64_t want = block_params(r, from, count, vals);
	PGresult *res;
	enum store_result sr;
	size_t got;

	sr = q_exec(r->st, PG_BLOCK_SQL, 3, vals, 1, PGRES_TUPLES_OK, &res,
	    err);
	if (sr == STORE_PENDING) {
		errno = EAGAIN;
		return -1;
	}
	if (sr != STORE_OK || PQntuples(res) != 1 ||
	    (got = (size_t)PQgetlength(res, 0, 0)) == 0 || got > want) {
		log_warnx("event=mailstore-read backend=pgsql reason=\"%s\"",
		    sr != STORE_OK ? err : "message changed");
		PQclear(res);
		errno = EIO;
		return -1;
	}
	memcpy(r->buf, PQgetvalue(res, 0, 0), got);
	PQclear(res);
	r->pos = 0;
	r->len = got;
	r->off += got;
	read_ahead(r);
	return 0;
}

static ssize_t
pg_read(struct store_reader *r, void *buf, size_t len)
{
	if (r->pos == r->len) {
		if (r->off >= r->size || len == 0)
			return 0;
		if (read_block(r) < 0)
			return -1;
	}
	if (len > r->len - r->pos)
		len = r->len - r->pos;
	memcpy(buf, r->buf + r->pos, len);
	r->pos += len;
	return (ssize_t)len;
}

static void
pg_read_close(struct store_reader **rp)
{
	if (*rp != NULL && (*rp)->st->q != Q_IDLE)
		(*rp)->st->stale = true;
	free(*rp);
	*rp = NULL;
}

/* "{id,id,...}" of the messages marked deleted, or NULL (out of memory). */
static char *
deleted_ids(const struct store *st, const struct store_index *idx)
{
	size_t cap = 3, len = 0;
	char *arr;

	for (unsigned int i = 0; i < idx->count && i < st->count; i++)
		if (idx->msgs[i].deleted)
			cap += sizeof(st->ids[i]) + 1;
	if ((arr = malloc(cap)) == NULL)
		return NULL;
	arr[len++] = '{';
	for (unsigned int i = 0; i < idx->count && i < st->count; i++) {
		if (!idx->msgs[i].deleted)
			continue;
		if (len > 1)
			arr[len++] = ',';
		memcpy(arr + len, st->ids[i], strlen(st->ids[i]));
		len += strlen(st->ids[i]);
	}
	arr[len++] = '}';
	arr[len] = '\0';
	return arr;
}

/*
 * UPDATE: one DELETE, so one transaction (a dropped line runs none); then
 * the session lock goes, before QUIT's reply can bring the client back.
 * STORE_PENDING: call again until another answer.
 */
static enum store_result
pg_commit(struct store *st, const struct store_index *idx, char *err)
{
	const char *vals[2] = { st->mailbox, NULL };
	enum store_result r = STORE_OK;
	PGresult *res = NULL;

	if (st->stage == 0) {
		char *arr = deleted_ids(st, idx);

		if (arr == NULL) {
			str_copy(err, ERR_LEN, "out of memory");
			return STORE_TEMPFAIL;
		}
		vals[1] = arr;
		if (strcmp(arr, "{}") != 0 || st->q != Q_IDLE)
			r = q_exec(st, "DELETE FROM postino_message WHERE "
			    "mailbox = $1 AND id = ANY($2::bigint[])", 2, vals,
			    0, PGRES_COMMAND_OK, &res, err);
		free(arr);
		if (r != STORE_OK)
			return r;
		if (res != NULL)
			PQclear(res);
		st->stage = 1;
	}
	r = q_exec(st, "SELECT pg_advisory_unlock(" PG_LOCK_KEY ")", 1, vals,
	    0, PGRES_TUPLES_OK, &res, err);
	if (r == STORE_PENDING)
		return r;
	st->stage = 0;
	/* The DELETE is in: an unlock that failed ends with the connection. */
	if (r == STORE_OK && strcmp(PQgetvalue(res, 0, 0), "t") == 0)
		st->locked = false;
	PQclear(res);
	return STORE_OK;
}

static void
pg_close(struct store **stp, struct store_index *idx)
{
	struct store *st = *stp;
	const char *vals[1];
	char err[ERR_LEN];
	PGresult *res;

	if (idx != NULL) {
		free(idx->msgs);
		memset(idx, 0, sizeof(*idx));
	}
	if (st == NULL)
		return;
	q_unwatch(st);
	/* A connect's or a query's timer: st is freed below. */
	if (pg_ev != NULL)
		ev_timer_stop(pg_ev, &st->timer);
	if (st->connecting) {
		PQfinish(st->conn);
		st->conn = NULL;
	}
	vals[0] = st->mailbox;
	/*
	 * A query in flight, or a lock still held in the loop (no waiting
	 * here): the connection goes, and the lock with it.
	 */
	if (st->conn != NULL && (st->q != Q_IDLE || (st->locked &&
	    pg_ev != NULL))) {
		PQfinish(st->conn);
		st->conn = NULL;
	} else if (st->conn != NULL && st->locked) {
		if (q_exec(st, "SELECT pg_advisory_unlock(" PG_LOCK_KEY ")", 1,
		    vals, 0, PGRES_TUPLES_OK, &res, err) != STORE_OK ||
		    strcmp(PQgetvalue(res, 0, 0), "t") != 0) {
			PQfinish(st->conn);
			st->conn = NULL;
		}
		PQclear(res);
	}
	PQclear(st->res);
	conn_release(st->conn);
	free(st->ids);
	free(st->sizes);
	free(st);
	*stp = NULL;
}

/* Messages and POP3 octets in the mailbox now. */
static enum store_result
usage(PGconn *conn, const char *mailbox, uint64_t *bytes_r,
    unsigned int *count_r, char *err)
{
	const char *vals[1] = { mailbox };
	PGresult *res = pg_run(conn, "SELECT count(*), coalesce(sum(pop3_size),"
	    " 0) FROM postino_message WHERE mailbox = $1", 1, vals, 0,
	    PGRES_TUPLES_OK, err);
	int rc;

	if (res == NULL)
		return STORE_TEMPFAIL;
	rc = str_parse_u32(PQgetvalue(res, 0, 0), count_r) |
	    str_parse_u64(PQgetvalue(res, 0, 1), bytes_r);
	PQclear(res);
	if (rc < 0) {
		str_copy(err, ERR_LEN, "pgsql: bad mailbox totals");
		return STORE_TEMPFAIL;
	}
	return STORE_OK;
}

/*
 * Over d's quota with adding more octets (one more message)? adding 0 asks
 * whether the mailbox is already full, as LMTP does at RCPT.
 */
static enum store_result
quota_check(const struct store_delivery *d, uint64_t used, unsigned int n,
    uint64_t adding, char *err)
{
	bool full = adding == 0 ? used >= d->quota_bytes :
	    adding > d->quota_bytes || used > d->quota_bytes - adding;

	if ((d->quota_messages != 0 && n >= d->quota_messages) ||
	    (d->quota_bytes != 0 && full)) {
		(void)str_fmt(err, ERR_LEN, "mailbox is over its quota "
		    "(%u messages, %llu octets)", n, (unsigned long long)used);
		return STORE_OVERQUOTA;
	}
	return STORE_OK;
}

static void
put_be(unsigned char *p, uint64_t v, int octets)
{
	for (int i = octets - 1; i >= 0; i--, v >>= 8)
		p[i] = (unsigned char)v;
}

/* One field of a binary COPY row: its length, then its octets. */
static int
copy_field(PGconn *conn, const void *data, int32_t len)
{
	unsigned char hdr[4];

	put_be(hdr, (uint32_t)len, 4);
	if (PQputCopyData(conn, (const char *)hdr, 4) != 1)
		return -1;
	return len > 0 ? (PQputCopyData(conn, data, len) == 1 ? 0 : -1) : 0;
}

/*
 * The row, streamed with COPY (binary): the body goes in blocks read from
 * tmp, never whole in memory. 0, or -1 with err filled.
 */
static int
copy_row(PGconn *conn, const char *mailbox, const struct store_delivery *d,
    int tmp, uint64_t pop3, uint64_t stored, char *err)
{
	static const char sig[] = "PGCOPY\n\377\r\n";	/* + NUL */
	unsigned char head[19 + 2], num[8], buf[16384];
	const char *token = d->token, *uidl = d->uidl;
	PGresult *res;
	ssize_t n;
	off_t off = 0;

	res = pg_run(conn, uidl != NULL ? "COPY postino_message (mailbox, "
	    "pop3_size, stored_size, token, body, uidl) FROM STDIN (FORMAT "
	    "binary)" : "COPY postino_message (mailbox, pop3_size, "
	    "stored_size, token, body) FROM STDIN (FORMAT binary)", 0, NULL, 0,
	    PGRES_COPY_IN, err);
	if (res == NULL)
		return -1;
	PQclear(res);
	memset(head, 0, sizeof(head));
	memcpy(head, sig, 11);
	put_be(head + 19, uidl != NULL ? 6 : 5, 2);	/* fields that follow */
	if (PQputCopyData(conn, (const char *)head, sizeof(head)) != 1 ||
	    copy_field(conn, mailbox, (int32_t)strlen(mailbox)) < 0)
		goto fail;
	put_be(num, pop3, 8);
	if (copy_field(conn, num, 8) < 0)
		goto fail;
	put_be(num, stored, 8);
	if (copy_field(conn, num, 8) < 0 ||
	    copy_field(conn, token, token != NULL ? (int32_t)strlen(token) :
	    -1) < 0)
		goto fail;
	put_be(num, stored, 4);			/* the body's length */
	if (PQputCopyData(conn, (const char *)num, 4) != 1)
		goto fail;
	while ((uint64_t)off < stored) {
		n = pread(tmp, buf, sizeof(buf), off);
		if (n <= 0) {
			PQputCopyEnd(conn, "message file unreadable");
			PQclear(PQgetResult(conn));
			str_copy(err, ERR_LEN, "pgsql: message file unreadable");
			return -1;
		}
		if (PQputCopyData(conn, (const char *)buf, (int)n) != 1)
			goto fail;
		off += n;
	}
	if (uidl != NULL && copy_field(conn, uidl, (int32_t)strlen(uidl)) < 0)
		goto fail;
	put_be(num, 0xffff, 2);			/* the trailer: -1 */
	if (PQputCopyData(conn, (const char *)num, 2) != 1 ||
	    PQputCopyEnd(conn, NULL) != 1)
		goto fail;
	res = PQgetResult(conn);
	if (res == NULL || PQresultStatus(res) != PGRES_COMMAND_OK) {
		PQclear(res);
		while ((res = PQgetResult(conn)) != NULL)
			PQclear(res);
		goto fail;
	}
	PQclear(res);
	while ((res = PQgetResult(conn)) != NULL)
		PQclear(res);
	return 0;
fail:
	(void)pg_fail(conn, "copy", err);
	return -1;
}

/* The message as it is stored (headers added, line ends chosen) in tmp. */
static int
spool(int in, const struct store_delivery *d, int *tmp_r, uint64_t *stored_r,
    uint64_t *pop3_r, char *err)
{
	bool ends_lf;
	int tmp = memfd_create("postino-pgsql-append", MFD_CLOEXEC);

	*tmp_r = -1;
	if (tmp < 0) {
		(void)str_fmt(err, ERR_LEN, "memfd: %s", strerror(errno));
		return -1;
	}
	if (store_append_copy(in, tmp, d, STORE_ESCAPE_NONE, stored_r, pop3_r,
	    &ends_lf, err) < 0) {
		close(tmp);
		return -1;
	}
	if (*stored_r > PG_BODY_MAX) {
		close(tmp);
		str_copy(err, ERR_LEN, "message over 1 GiB");
		return -1;
	}
	*tmp_r = tmp;
	return 0;
}

/* STORE_OK: a message with this UIDL is there; STORE_PERMFAIL: none. */
static enum store_result
uidl_present(PGconn *conn, const char *mailbox, const char *uidl, char *err)
{
	const char *vals[2] = { mailbox, uidl };
	PGresult *res = pg_run(conn, "SELECT 1 FROM postino_message WHERE "
	    "mailbox = $1 AND uidl = $2", 2, vals, 0, PGRES_TUPLES_OK, err);
	enum store_result r;

	if (res == NULL)
		return STORE_TEMPFAIL;
	r = PQntuples(res) > 0 ? STORE_OK : STORE_PERMFAIL;
	PQclear(res);
	return r;
}

/*
 * INSERT (by COPY) in a transaction that also checks the quota, under a
 * per-mailbox transaction lock so two deliveries cannot both fit in the
 * last free room. STORE_OK only once COMMIT has returned.
 */
static enum store_result
pg_append(const struct store_params *p, int fd, const struct store_delivery *d,
    char *err)
{
	const char *vals[1] = { p->path };
	enum store_result r = STORE_TEMPFAIL;
	uint64_t stored = 0, pop3 = 0, used;
	unsigned int n;
	PGconn *conn;
	PGresult *res;
	int tmp;

	if (name_check(p->path, err) < 0)
		return STORE_PERMFAIL;
	if (d->uidl != NULL && !uidl_ok(d->uidl, strlen(d->uidl))) {
		str_copy(err, ERR_LEN, "not a usable UIDL");
		return STORE_PERMFAIL;
	}
	if (spool(fd, d, &tmp, &stored, &pop3, err) < 0)
		return stored > PG_BODY_MAX ? STORE_PERMFAIL : STORE_TEMPFAIL;
	if ((conn = conn_get(err)) == NULL) {
		close(tmp);
		return STORE_TEMPFAIL;
	}
	if (pg_command(conn, "BEGIN", 0, NULL, err) < 0)
		goto out;
	res = pg_run(conn, "SELECT pg_advisory_xact_lock(" PG_APPEND_KEY ")", 1,
	    vals, 0, PGRES_TUPLES_OK, err);
	if (res == NULL)
		goto out;
	PQclear(res);
	if ((d->quota_bytes != 0 || d->quota_messages != 0) &&
	    ((r = usage(conn, p->path, &used, &n, err)) != STORE_OK ||
	    (r = quota_check(d, used, n, pop3, err)) != STORE_OK))
		goto out;
	if (d->uidl != NULL && (r = uidl_present(conn, p->path, d->uidl,
	    err)) != STORE_PERMFAIL) {
		/* Already there (a migration run again): nothing to add. */
		if (r == STORE_OK && pg_command(conn, "COMMIT", 0, NULL,
		    err) < 0)
			r = STORE_TEMPFAIL;
		goto out;
	}
	r = STORE_TEMPFAIL;
	if (copy_row(conn, p->path, d, tmp, pop3, stored, err) < 0 ||
	    pg_command(conn, "COMMIT", 0, NULL, err) < 0)
		goto out;
	r = STORE_OK;
out:
	close(tmp);
	if (PQtransactionStatus(conn) != PQTRANS_IDLE)
		PQclear(PQexec(conn, "ROLLBACK"));
	conn_release(conn);
	return r;
}

static enum store_result
pg_probe(const struct store_params *p, const char *token, char *err)
{
	const char *vals[2] = { p->path, token };
	PGconn *conn;
	PGresult *res;
	enum store_result r;

	if (name_check(p->path, err) < 0)
		return STORE_TEMPFAIL;
	if ((conn = conn_get(err)) == NULL)
		return STORE_TEMPFAIL;
	res = pg_run(conn, "SELECT 1 FROM postino_message WHERE mailbox = $1 "
	    "AND token = $2", 2, vals, 0, PGRES_TUPLES_OK, err);
	r = res == NULL ? STORE_TEMPFAIL :
	    PQntuples(res) > 0 ? STORE_OK : STORE_PERMFAIL;
	if (r == STORE_PERMFAIL)
		str_copy(err, ERR_LEN, "no message with that token");
	PQclear(res);
	conn_release(conn);
	return r;
}

static enum store_result
pg_quota(const struct store_params *p, const struct store_delivery *d,
    char *err)
{
	PGconn *conn;
	enum store_result r;
	uint64_t used;
	unsigned int n;

	if (d->quota_bytes == 0 && d->quota_messages == 0)
		return STORE_OK;
	if (name_check(p->path, err) < 0)
		return STORE_TEMPFAIL;
	if ((conn = conn_get(err)) == NULL)
		return STORE_TEMPFAIL;
	r = usage(conn, p->path, &used, &n, err);
	if (r == STORE_OK)
		r = quota_check(d, used, n, 0, err);
	conn_release(conn);
	return r;
}

const struct store_ops store_pgsql_ops = {
	.name = "pgsql",
	.open = pg_open,
	.read_open = pg_read_open,
	.read = pg_read,
	.read_close = pg_read_close,
	.commit = pg_commit,
	.close = pg_close,
	.wait = pg_wait,
	.append = pg_append,
	.probe = pg_probe,
	.quota = pg_quota,
};
