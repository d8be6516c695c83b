#include "fetch_loop.h"

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "../lib/ev.h"
#include "../lib/version.h"
#include "account.h"
#include "client.h"
#include "progress.h"
#include "state.h"

/* A message's id from its header: SHA-256 shortened to this many octets. */
#define DIGEST_ID_OCTETS	20
/* TOP n 0 of a message is its header; it cannot be this much larger. */
#define DIGEST_TOP_SLACK	65536

struct fetch_run {
	const struct fetch_job *job;
	struct pop3c	*c;
	struct fetch_dest *dest;
	struct state	*st;
	struct pop3c_msg *msgs;
	size_t		 n;
	bool		*want;		/* fetch now */
	bool		*del;		/* delete on the server after */
	size_t		 nwant, oversized, later;
	size_t		 delivered, deleted, rejected;
	unsigned int	 window;	/* commands in flight */
	unsigned int	 unsynced;
	uint64_t	 synced_at;
	bool		 synced;	/* nothing delivered is unsynced */
	struct progress	 pg;
};

#ifdef POSTINO_TEST_HOOKS
/*
 * Test builds only (make SAN=1): die like kill -9 at the Nth delivery,
 * after it is recorded (POSTINO_TEST_KILL_AFTER=N) or after it is stored
 * but before it is recorded (POSTINO_TEST_KILL_STORED=N).
 */
static void
test_kill_at(const char *name, size_t n)
{
	const char *v = getenv(name);
	uint32_t at;

	if (v != NULL && str_parse_u32(v, &at) == 0 && at > 0 && n == at)
		raise(SIGKILL);
}
#else
#define test_kill_at(name, n)	((void)(n))
#endif

/* The session failed: say so; the exit code. */
static int
run_fail(struct fetch_run *r)
{
	client_warnx("%s: %s", r->job->server, pop3c_errmsg(r->c));
	return client_exit_for(pop3c_error(r->c));
}

static int
local_fail(const char *err)
{
	client_warnx("%s", err);
	return EXIT_LOCAL;
}

/* UIDL unless CAPA says there is none. 0 uids filled, 1 none, -1 error. */
static int
get_uids(struct pop3c *c, struct pop3c_msg *msgs, size_t n)
{
	if (pop3c_caps_known(c) && !(pop3c_caps(c) & POP3C_CAP_UIDL))
		return 1;
	return pop3c_uidl(c, msgs, n);
}

/*
 * Commands to keep in flight: the server's PIPELINING (RFC 2449 sec. 6.6)
 * saves a round trip per message, and keeps a server that delays its last
 * small segment (Nagle against our delayed ACK) from stalling each one.
 */
static unsigned int
pipeline_window(struct pop3c *c)
{
	return pop3c_caps(c) & POP3C_CAP_PIPELINING ? POP3C_PIPELINE_MAX : 1;
}

struct digest_ctx {
	EVP_MD_CTX	*md;
	bool		 failed;
};

static int
digest_data(void *arg, const char *data, size_t len, bool eol)
{
	struct digest_ctx *x = arg;

	if (!EVP_DigestUpdate(x->md, data, len) ||
	    (eol && !EVP_DigestUpdate(x->md, "\n", 1)))
		x->failed = true;
	return 0;
}

/* Message i's header digest into its uid (TOP i 0 is in flight). */
static int
digest_one(struct fetch_run *r, struct pop3c_msg *m)
{
	struct digest_ctx x = { EVP_MD_CTX_new(), false };
	unsigned char md[EVP_MAX_MD_SIZE];
	char hex[2 * EVP_MAX_MD_SIZE + 1], size[32];
	unsigned int mdlen = 0;
	int rc;

	if (x.md == NULL || !EVP_DigestInit_ex(x.md, EVP_sha256(), NULL)) {
		EVP_MD_CTX_free(x.md);
		return local_fail("SHA-256 failed");
	}
	(void)str_fmt(size, sizeof(size), "%llu\n",
	    (unsigned long long)m->size);
	(void)EVP_DigestUpdate(x.md, size, strlen(size));
	rc = pop3c_recv_data(r->c, m->size + DIGEST_TOP_SLACK, digest_data,
	    &x, NULL);
	if (rc == 0 && !EVP_DigestFinal_ex(x.md, md, &mdlen))
		x.failed = true;
	EVP_MD_CTX_free(x.md);
	if (rc < 0) {
		if (pop3c_error(r->c) != POP3C_ESERVER)
			return run_fail(r);
		client_warnx("%s: the server has neither UIDL nor TOP: cannot "
		    "tell new messages from old", r->job->server);
		return EXIT_PROTO;
	}
	if (x.failed)
		return local_fail("SHA-256 failed");
	str_hex(hex, md, mdlen > DIGEST_ID_OCTETS ? DIGEST_ID_OCTETS : mdlen);
	if ((m->uid = strdup(hex)) == NULL)
		return local_fail("out of memory");
	return EXIT_OK;
}

static int
cmp_uid_num(const void *a, const void *b)
{
	const struct pop3c_msg *x = *(const struct pop3c_msg *const *)a;
	const struct pop3c_msg *y = *(const struct pop3c_msg *const *)b;
	int c = strcmp(x->uid, y->uid);

	if (c != 0)
		return c;
	return x->num < y->num ? -1 : x->num > y->num;
}

/* Equal digests apart: "digest-HEX-RANK", RANK counting copies. */
static int
rank_digests(struct pop3c_msg *msgs, size_t n)
{
	struct pop3c_msg **v = calloc(n, sizeof(*v));
	unsigned int *ranks = calloc(n, sizeof(*ranks));
	char id[POP3C_UID_MAX];
	int rc = EXIT_OK;

	if (v == NULL || ranks == NULL) {
		free(v);
		free(ranks);
		return local_fail("out of memory");
	}
	for (size_t i = 0; i < n; i++)
		v[i] = &msgs[i];
	qsort(v, n, sizeof(*v), cmp_uid_num);
	/* Rank first, on the bare digests; then rename. */
	for (size_t i = 1; i < n; i++)
		if (strcmp(v[i - 1]->uid, v[i]->uid) == 0)
			ranks[i] = ranks[i - 1] + 1;
	for (size_t i = 0; i < n && rc == EXIT_OK; i++) {
		char *u;

		(void)str_fmt(id, sizeof(id), "digest-%s-%u", v[i]->uid,
		    ranks[i]);
		if ((u = strdup(id)) == NULL) {
			rc = local_fail("out of memory");
			break;
		}
		free(v[i]->uid);
		v[i]->uid = u;
	}
	free(ranks);
	free(v);
	return rc;
}

/*
 * No UIDL: a message's id is a digest of its size and header (TOP n 0),
 * plus its rank among messages with the same digest, so identical copies
 * stay apart. Weaker than UIDL: a server that rewrites headers makes
 * old messages look new.
 */
static int
digest_uids(struct fetch_run *r)
{
	size_t sent = 0;

	client_warnx("%s: the server has no UIDL; telling new messages from "
	    "old by size and a digest of the header (TOP)", r->job->server);
	for (size_t i = 0; i < r->n; i++) {
		int rc = 0;

		while (rc == 0 && sent < r->n && sent - i < r->window)
			rc = pop3c_send_top(r->c, r->msgs[sent++].num, 0);
		if (rc < 0)
			return run_fail(r);
		if ((rc = digest_one(r, &r->msgs[i])) != EXIT_OK)
			return rc;
	}
	return r->n == 0 ? EXIT_OK : rank_digests(r->msgs, r->n);
}

struct on_server {
	const char	**uids;		/* sorted */
	size_t		  n;
};

static int
cmp_str(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static bool
is_on_server(const char *uid, void *arg)
{
	struct on_server *os = arg;

	return os->n > 0 && bsearch(&uid, os->uids, os->n, sizeof(*os->uids),
	    cmp_str) != NULL;
}

/* Forget what the server no longer has; it cannot come back. */
static int
prune_state(struct fetch_run *r)
{
	struct on_server os = { NULL, r->n };
	char err[ERR_LEN];
	int rc = EXIT_OK;

	if (r->n > 0 && (os.uids = calloc(r->n, sizeof(*os.uids))) == NULL)
		return local_fail("out of memory");
	for (size_t i = 0; i < r->n; i++)
		os.uids[i] = r->msgs[i].uid;
	if (r->n > 0)
		qsort(os.uids, r->n, sizeof(*os.uids), cmp_str);
	if (state_prune(r->st, is_on_server, &os) > 0 &&
	    state_save(r->st, err) < 0)
		rc = local_fail(err);
	free(os.uids);
	return rc;
}

/* LIST, the ids (UIDL or digests), and the state pruned to them. */
static int
list_messages(struct fetch_run *r)
{
	int rc;

	if (pop3c_list(r->c, &r->msgs, &r->n) < 0)
		return run_fail(r);
	r->window = pipeline_window(r->c);
	rc = get_uids(r->c, r->msgs, r->n);
	if (rc < 0)
		return run_fail(r);
	rc = rc > 0 ? digest_uids(r) : EXIT_OK;
	return rc != EXIT_OK ? rc : prune_state(r);
}

/* A delivery a killed run left pending: record or forget it. */
static int
recover_pending(struct fetch_run *r)
{
	const char *uid = state_pending_uid(r->st);
	char err[ERR_LEN];
	int rc;

	if (uid == NULL)
		return EXIT_OK;
	rc = fetch_recover(r->dest, state_pending_token(r->st), err);
	if (rc < 0)
		return local_fail(err);
	if (rc == 2)
		client_warnx("%s", err);
	if (rc == 0 && (strcmp(state_pending_token(r->st), "mda") == 0 ||
	    strcmp(state_pending_token(r->st), "lmtp") == 0))
		client_warnx("the last run was interrupted while the message "
		    "was handed over (%s); it is delivered again",
		    state_pending_token(r->st));
	if ((rc == 1 ? state_add(r->st, uid, err) :
	    state_clear_pending(r->st, err)) < 0 ||
	    fetch_sync(r->dest, err) < 0 || state_sync(r->st, err) < 0)
		return local_fail(err);
	return EXIT_OK;
}

/* The destination and the state, and what a killed run left. */
static int
open_local(struct fetch_run *r)
{
	const struct fetch_job *job = r->job;
	char dir[PATH_MAX], err[ERR_LEN];
	int rc;

	if (!job->rebuild_state && fetch_open(&r->dest, job->kind, job->dest,
	    err) < 0)
		return local_fail(err);
	if (state_default_dir(dir, sizeof(dir), err) < 0)
		return local_fail(err);
	rc = state_open(&r->st, dir, job->state_key, err);
	if (rc != 0) {
		client_warnx("%s", err);
		return rc > 0 ? EXIT_INUSE : EXIT_LOCAL;
	}
	if (r->dest == NULL) {
		/* --rebuild-state: what is on the server counts anyway. */
		return state_clear_pending(r->st, err) < 0 ? local_fail(err) :
		    EXIT_OK;
	}
	fetch_set_mda_umask(r->dest, job->mda_umask);
	fetch_set_recipient(r->dest, job->kind == FETCH_LMTP ?
	    job->lmtp_rcpt : job->user);
	if (fetch_set_spool(r->dest, state_spool_path(r->st), err) < 0)
		return local_fail(err);
	return recover_pending(r);
}

/*
 * --rebuild-state: record every message on the server as fetched without
 * downloading one (after switching from another fetcher), delete nothing.
 */
static int
rebuild_state(struct fetch_run *r)
{
	char err[ERR_LEN];
	size_t added = 0;

	for (size_t i = 0; i < r->n; i++) {
		if (state_has(r->st, r->msgs[i].uid))
			continue;
		if (state_add(r->st, r->msgs[i].uid, err) < 0)
			return local_fail(err);
		added++;
	}
	if (state_sync(r->st, err) < 0)
		return local_fail(err);
	if (pop3c_quit(r->c) < 0)
		return run_fail(r);
	if (!r->job->quiet)
		fprintf(stderr, "postino: %s: %zu message%s recorded as "
		    "fetched (%zu in all)\n", r->job->server, added,
		    added == 1 ? "" : "s", state_count(r->st));
	return EXIT_OK;
}

/* What to fetch now (want) and what to delete after unread (del). */
static int
select_messages(struct fetch_run *r)
{
	const struct fetch_job *job = r->job;

	r->want = r->n > 0 ? calloc(r->n, sizeof(*r->want)) : NULL;
	r->del = r->n > 0 ? calloc(r->n, sizeof(*r->del)) : NULL;
	if (r->n > 0 && (r->want == NULL || r->del == NULL))
		return local_fail("out of memory");
	for (size_t i = 0; i < r->n; i++) {
		if (state_has(r->st, r->msgs[i].uid))
			continue;
		if (job->max_size > 0 && r->msgs[i].size > job->max_size) {
			r->oversized++;
			r->del[i] = job->delete_oversized;
			continue;
		}
		if (job->max_messages > 0 && r->nwant >= job->max_messages) {
			r->later++;
			continue;
		}
		r->want[i] = true;
		r->nwant++;
		r->pg.msgs_total++;
		if (__builtin_add_overflow(r->pg.bytes_total, r->msgs[i].size,
		    &r->pg.bytes_total))
			r->pg.bytes_total = UINT64_MAX;
	}
	return EXIT_OK;
}

/* 2x the listed size and 1 MiB of slack: servers' sizes are estimates. */
static uint64_t
retr_bound(uint64_t size)
{
	uint64_t b;

	if (__builtin_mul_overflow(size, 2, &b) ||
	    __builtin_add_overflow(b, 1024 * 1024, &b))
		return UINT64_MAX;
	return b;
}

/*
 * The Received: header (RFC 5322 sec. 3.6.7, RFC 5321 sec. 4.4) that
 * --received-header adds: which server, which program, for whom, when.
 * The user is named only when it is a plain address-like token.
 */
static int
add_received(const struct fetch_job *job, struct fetch_dest *dest)
{
	char line[ACCOUNT_HOST_MAX + ACCOUNT_USER_MAX + 128], host[256];
	char date[64];
	time_t now = time(NULL);
	struct tm tm;
	bool plain = job->user[0] != '\0';

	for (const char *p = job->user; *p != '\0'; p++)
		if (*p <= 0x20 || *p >= 0x7f || strchr("<>()\\\",;", *p))
			plain = false;
	if (gethostname(host, sizeof(host)) < 0)
		str_copy(host, sizeof(host), "localhost");
	host[sizeof(host) - 1] = '\0';
	localtime_r(&now, &tm);
	if (strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S %z",
	    &tm) == 0)
		return -1;
	(void)str_fmt(line, sizeof(line), "Received: from %s", job->host);
	if (fetch_data(dest, line, strlen(line), true) < 0)
		return -1;
	(void)str_fmt(line, sizeof(line), "\tby %s with POP3 (postino %s)%s%s%s;",
	    host, POSTINO_VERSION, plain ? " for <" : "",
	    plain ? job->user : "", plain ? ">" : "");
	if (fetch_data(dest, line, strlen(line), true) < 0)
		return -1;
	(void)str_fmt(line, sizeof(line), "\t%s", date);
	return fetch_data(dest, line, strlen(line), true);
}

/* Deliveries first, then the records of them. EXIT_OK or EXIT_LOCAL. */
static int
sync_batch(struct fetch_run *r)
{
	char err[ERR_LEN];

	if (fetch_sync(r->dest, err) < 0 || state_sync(r->st, err) < 0) {
		r->synced = false;
		return local_fail(err);
	}
	r->unsynced = 0;
	r->synced_at = ev_now_ms();
	return EXIT_OK;
}

struct retr_sink {
	struct progress	*pg;
	struct fetch_dest *dest;
};

static int
retr_data(void *arg, const char *data, size_t len, bool eol)
{
	struct retr_sink *k = arg;

	progress_bytes(k->pg, len + (eol ? 2 : 0));
	return fetch_data(k->dest, data, len, eol);
}

/* Receive message m (its RETR is in flight) into the destination. */
static int
receive_one(struct fetch_run *r, struct pop3c_msg *m)
{
	struct retr_sink k = { &r->pg, r->dest };
	char err[ERR_LEN];

	if (fetch_begin(r->dest, err) < 0)
		return local_fail(err);
	/* A failure here shows in fetch_prepare/commit's error. */
	if (r->job->received)
		(void)add_received(r->job, r->dest);
	if (pop3c_recv_data(r->c, retr_bound(m->size), retr_data, &k,
	    NULL) == 0)
		return EXIT_OK;
	if (pop3c_error(r->c) == POP3C_ELOCAL) {
		/* commit reports why the write failed */
		if (fetch_commit(r->dest, err) < 0)
			client_warnx("%s", err);
		return EXIT_LOCAL;
	}
	fetch_abort(r->dest);
	return run_fail(r);
}

/*
 * Deliver the received message m and record it. EXIT_OK; -1 when the
 * destination refused it for good (reported, left on the server, the
 * next ones go on); else an exit code.
 */
static int
deliver_one(struct fetch_run *r, struct pop3c_msg *m)
{
	char token[PATH_MAX + 32], err[ERR_LEN], err2[ERR_LEN];

	/* Pending first: a kill between commit and state_add must not
	 * deliver the message twice. */
	if (fetch_prepare(r->dest, token, sizeof(token), err) < 0 ||
	    state_set_pending(r->st, m->uid, token, err) < 0) {
		fetch_abort(r->dest);
		client_warnx("message %u: %s", (unsigned int)m->num, err);
		return EXIT_LOCAL;
	}
	if (fetch_commit(r->dest, err) < 0) {
		bool perm = fetch_refused(r->dest);

		client_warnx("message %u: %s%s", (unsigned int)m->num, err,
		    perm ? " (left on the server)" : "");
		if (state_clear_pending(r->st, err2) < 0) {
			client_warnx("%s", err2);
			return EXIT_LOCAL;
		}
		return perm ? -1 : EXIT_LOCAL;
	}
	test_kill_at("POSTINO_TEST_KILL_STORED", r->delivered + 1);
	/* Delivered: now it counts, durably at the next sync. */
	if (state_add(r->st, m->uid, err) < 0) {
		client_warnx("%s (message %u was delivered; it may be "
		    "delivered again)", err, (unsigned int)m->num);
		return EXIT_LOCAL;
	}
	r->delivered++;
	r->pg.msgs_done++;
	progress_draw(&r->pg);
	test_kill_at("POSTINO_TEST_KILL_AFTER", r->delivered);
	if (++r->unsynced >= FETCH_LOOP_SYNC_MSGS ||
	    ev_now_ms() - r->synced_at >= FETCH_LOOP_SYNC_MS)
		return sync_batch(r);
	return EXIT_OK;
}

/* RETR every wanted message, up to window of them in flight. */
static int
retrieve_all(struct fetch_run *r)
{
	int result = EXIT_OK;

	for (size_t i = 0, next = 0, ahead = 0; i < r->n; i++) {
		int rc;

		if (!r->want[i])
			continue;
		/* RETRs in flight: this one and up to the window after it. */
		if (next <= i) {
			next = i;
			ahead = 0;
		}
		for (; next < r->n && ahead < r->window; next++) {
			if (!r->want[next])
				continue;
			if (pop3c_send_retr(r->c, r->msgs[next].num) < 0)
				break;
			ahead++;
		}
		if (ahead == 0)
			return run_fail(r);
		ahead--;
		rc = receive_one(r, &r->msgs[i]);
		if (rc == EXIT_OK)
			rc = deliver_one(r, &r->msgs[i]);
		if (rc < 0) {
			r->rejected++;
			result = EXIT_LOCAL;
		} else if (rc != EXIT_OK) {
			return rc;
		}
	}
	return result;
}

/*
 * Delete what is safely here (kept: once older than keep-days), and
 * oversized messages when asked to. Called only once everything fetched
 * is durable here. EXIT_OK, or the first failure's exit code.
 */
static int
delete_done(struct fetch_run *r, int result)
{
	const struct fetch_job *job = r->job;
	bool keep = job->keep || job->keep_days > 0;
	long long now = time(NULL);

	for (size_t i = 0; i < r->n; i++) {
		long long seen = state_first_seen(r->st, r->msgs[i].uid);

		if (seen >= 0 && (!keep || (job->keep_days > 0 &&
		    now - seen >= (long long)job->keep_days * 86400)))
			r->del[i] = true;
	}
	for (size_t i = 0, next = 0; i < r->n; i++) {
		if (!r->del[i])
			continue;
		for (; next < r->n && pop3c_outstanding(r->c) < r->window;
		    next++)
			if (r->del[next] &&
			    pop3c_send_dele(r->c, r->msgs[next].num) < 0)
				break;
		if (pop3c_recv_status(r->c) < 0) {
			int rc = run_fail(r);

			if (!pop3c_usable(r->c))
				return rc;
			result = rc;
			continue;
		}
		r->deleted++;
	}
	return result;
}

static void
report(struct fetch_run *r)
{
	const struct fetch_job *job = r->job;

	if (r->pg.on || job->verbose)
		fprintf(stderr, "postino: %zu new message%s fetched, %zu "
		    "deleted on the server\n", r->delivered,
		    r->delivered == 1 ? "" : "s", r->deleted);
	if (r->oversized > 0 && !job->quiet)
		client_warnx("%s: %zu message%s over max-size (%llu octets) %s",
		    job->server, r->oversized, r->oversized == 1 ? "" : "s",
		    (unsigned long long)job->max_size, job->delete_oversized ?
		    "deleted on the server unread" : "left on the server");
	if (r->rejected > 0)
		client_warnx("%s: %zu message%s refused by the destination, "
		    "left on the server", job->server, r->rejected,
		    r->rejected == 1 ? "" : "s");
	if (r->later > 0 && (r->pg.on || job->verbose))
		fprintf(stderr, "postino: %zu more wait for the next run "
		    "(max-messages %u)\n", r->later,
		    (unsigned int)job->max_messages);
}

/* Fetch, make durable, delete, QUIT: the session is open and listed. */
static int
fetch_and_delete(struct fetch_run *r)
{
	int result;

	if ((result = select_messages(r)) != EXIT_OK)
		return result;
	r->pg.on = isatty(STDERR_FILENO) && !r->job->quiet &&
	    !r->job->verbose;
	r->synced = true;
	r->synced_at = ev_now_ms();
	progress_draw(&r->pg);
	result = retrieve_all(r);
	progress_end(&r->pg);
	/* Nothing is deleted on the server before it is durable here. */
	if (r->synced && sync_batch(r) != EXIT_OK)
		result = EXIT_LOCAL;
	/* RETRs sent ahead of a failure: read their replies away. */
	if (pop3c_outstanding(r->c) > 0)
		(void)pop3c_drain_replies(r->c);
	/* The connection is gone: QUIT is impossible and nothing is deleted. */
	if (!pop3c_usable(r->c))
		return result;
	if (r->synced)
		result = delete_done(r, result);
	if (!pop3c_usable(r->c))
		return result;
	if (pop3c_quit(r->c) < 0)
		return run_fail(r);
	report(r);
	return result;
}

int
fetch_loop_run(const struct fetch_job *job)
{
	struct fetch_run r = { .job = job };
	int rc;

	rc = open_local(&r);
	if (rc == EXIT_OK)
		rc = job->connect(job->connect_arg, &r.c);
	if (rc == EXIT_OK)
		rc = list_messages(&r);
	if (rc == EXIT_OK)
		rc = job->rebuild_state ? rebuild_state(&r) :
		    fetch_and_delete(&r);
	progress_end(&r.pg);
	free(r.want);
	free(r.del);
	pop3c_msgs_free(&r.msgs, r.n);
	fetch_close(&r.dest);
	state_close(&r.st);
	return rc;
}
