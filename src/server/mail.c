/*
 * The mail role: TRANSACTION and UPDATE for every session of one uid, in one
 * event loop, as that uid (never root). A session arrives from a login worker
 * through the master with a ticket; the ticket is redeemed with the auth role
 * before any mailbox is opened.
 */
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <signal.h>
#include <sys/stat.h>
#include <time.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../lib/ev.h"
#include "../lib/ipc.h"
#include "../lib/log.h"
#include "../lib/priv.h"
#include "../store/store.h"
#include "../store/store_path.h"
#include "../store/store_pgsql.h"
#include "capa.h"
#include "limits.h"
#include "proto.h"
#include "role.h"
#include "roles.h"

struct mail_conn {
	struct session		 s;
	struct mail_conn	*prev, *next;
	uint64_t		 req;		/* pending ticket redemption */
	unsigned int		 auth_idx;	/* the auth worker redeeming it */
	/*
	 * What the session keeps of its hand-off (whose buffers, 6 KiB, are
	 * spent once the session starts: an idle session is kept small).
	 */
	char			 user[AUTH_USER_MAX + 1];
	uint32_t		 capa;
	char			 sasl[SASL_MECHS_LEN];
	const struct store_ops	*sops;
	struct store		*st;
	struct store_index	 idx;
	/* the multi-line reply in progress */
	enum { MORE_NONE, MORE_LIST, MORE_UIDL, MORE_BODY } more_kind;
	unsigned int		 cursor;
	struct store_reader	*reader;
	struct pop3_encoder	 enc;
	unsigned int		 retrieved;
	uint64_t		 retrieved_bytes;
	/*
	 * Waiting for an mbox lock another program holds: the open (with the
	 * account kept here) or QUIT's UPDATE is retried from a timer until
	 * lock_deadline, so no other session of this worker waits with it.
	 */
	struct ev_timer		 lock_retry;
	uint64_t		 lock_deadline;	/* ev_now_ms(); 0: not waiting */
	struct msg_account	*acct;
	bool			 quitting;
	/* RETR/TOP waits for a block from the store (store.h wait). */
	bool			 body_waiting;
};

static const struct config *cf;
static struct ev *ev;
static struct mail_conn *conns;
static uint64_t next_req = 1;
static bool shutting_down;
static struct ev_timer idle_timer;
static struct ev_timer trim_timer;

static void mail_more(struct session *s);
static void store_ready(void *arg);
static void lock_retry_fire(struct ev *e, void *arg);

static void
conn_closed(struct session *s)
{
	struct mail_conn *c = s->owner;

	ev_timer_stop(ev, &c->lock_retry);
	free(c->acct);
	if (c->reader != NULL)
		c->sops->read_close(&c->reader);
	if (c->st != NULL)
		c->sops->close(&c->st, &c->idx);
	if (c->prev)
		c->prev->next = c->next;
	else
		conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	free(c);
	role_send(MSG_SESSION_END, NULL, 0, -1);
	if (conns == NULL) {
		if (shutting_down)
			ev_stop(ev);
		else
			ev_timer_start(ev, &idle_timer, MAIL_IDLE_MS);
		ev_timer_start(ev, &trim_timer, MAIL_TRIM_MS);
	}
}

/*
 * Sessions free their buffers, but free chunks amid the heap stay with the
 * process (glibc trims only the top): an idle worker gives them back
 * instead of holding its peak.
 */
static void
trim_expired(struct ev *e, void *arg)
{
	(void)e;
	(void)arg;
	if (conns == NULL)
		(void)malloc_trim(0);
}

static void
idle_expired(struct ev *e, void *arg)
{
	(void)e;
	(void)arg;
	if (conns == NULL)
		role_send(MSG_IDLE, NULL, 0, -1);
}

static void
reply_store_error(struct session *s, enum store_result r, const char *err)
{
	switch (r) {
	case STORE_LOCKED:
	case STORE_BUSY:
		session_reply(s, "-ERR [IN-USE] %s", err);
		break;
	case STORE_PERMFAIL:
		session_reply(s, "-ERR [SYS/PERM] %s", err);
		break;
	default:
		session_reply(s, "-ERR [SYS/TEMP] %s", err);
		break;
	}
}

/* Message n (1-based) if it exists and is not deleted. */
static struct store_msg *
message(struct mail_conn *c, const char *arg)
{
	unsigned int n;

	if (pop3_parse_msgnum(arg, &n) < 0) {
		session_reply(&c->s, "-ERR Invalid message number.");
		return NULL;
	}
	if (n > c->idx.count) {
		session_reply(&c->s, "-ERR No such message.");
		return NULL;
	}
	if (c->idx.msgs[n - 1].deleted) {
		session_reply(&c->s, "-ERR Message %u is deleted.", n);
		return NULL;
	}
	return &c->idx.msgs[n - 1];
}

static void
live_totals(const struct mail_conn *c, unsigned int *count_r, uint64_t *size_r)
{
	unsigned int count = 0;
	uint64_t size = 0;

	for (unsigned int i = 0; i < c->idx.count; i++) {
		if (c->idx.msgs[i].deleted)
			continue;
		count++;
		size += c->idx.msgs[i].size;
	}
	*count_r = count;
	*size_r = size;
}

static enum cmd_result
cmd_stat(struct session *s, const struct pop3_args *a)
{
	unsigned int count;
	uint64_t size;

	(void)a;
	live_totals(s->owner, &count, &size);
	session_reply(s, "+OK %u %llu", count, (unsigned long long)size);
	return CMD_OK;
}

static enum cmd_result
cmd_list_uidl(struct session *s, const struct pop3_args *a, bool uidl)
{
	struct mail_conn *c = s->owner;
	struct store_msg *m;

	if (a->argc == 1) {
		if ((m = message(c, a->argv[0])) == NULL)
			return CMD_BAD;
		if (uidl)
			session_reply(s, "+OK %u %s",
			    (unsigned)(m - c->idx.msgs) + 1, m->uidl);
		else
			session_reply(s, "+OK %u %llu",
			    (unsigned)(m - c->idx.msgs) + 1,
			    (unsigned long long)m->size);
		return CMD_OK;
	}
	session_reply(s, uidl ? "+OK Unique-ID listing follows." :
	    "+OK Scan listing follows.");
	c->more_kind = uidl ? MORE_UIDL : MORE_LIST;
	c->cursor = 0;
	return CMD_MORE;
}

static enum cmd_result
cmd_list(struct session *s, const struct pop3_args *a)
{
	return cmd_list_uidl(s, a, false);
}

static enum cmd_result
cmd_uidl(struct session *s, const struct pop3_args *a)
{
	return cmd_list_uidl(s, a, true);
}

static enum cmd_result
start_body(struct mail_conn *c, struct store_msg *m, bool top, uint64_t lines)
{
	char err[ERR_LEN];
	enum store_result r;

	r = c->sops->read_open(c->st, (unsigned)(m - c->idx.msgs) + 1,
	    &c->reader, err);
	if (r != STORE_OK) {
		log_warnx("session=%s event=read-failed msg=%u reason=\"%s\"",
		    c->s.id, (unsigned)(m - c->idx.msgs) + 1, err);
		reply_store_error(&c->s, r, "Message is no longer available.");
		return CMD_BAD;
	}
	pop3_encoder_init(&c->enc, top, lines);
	if (top) {
		session_reply(&c->s, "+OK Top of message follows.");
	} else {
		session_reply(&c->s, "+OK %llu octets",
		    (unsigned long long)m->size);
		c->retrieved++;
		c->retrieved_bytes += m->size;
	}
	c->more_kind = MORE_BODY;
	return CMD_MORE;
}

static enum cmd_result
cmd_retr(struct session *s, const struct pop3_args *a)
{
	struct mail_conn *c = s->owner;
	struct store_msg *m = message(c, a->argv[0]);

	if (m == NULL)
		return CMD_BAD;
	return start_body(c, m, false, 0);
}

static enum cmd_result
cmd_top(struct session *s, const struct pop3_args *a)
{
	struct mail_conn *c = s->owner;
	struct store_msg *m = message(c, a->argv[0]);
	uint64_t lines;

	if (m == NULL)
		return CMD_BAD;
	if (str_parse_u64(a->argv[1], &lines) < 0) {
		session_reply(s, "-ERR Invalid number of lines.");
		return CMD_BAD;
	}
	return start_body(c, m, true, lines);
}

static enum cmd_result
cmd_dele(struct session *s, const struct pop3_args *a)
{
	struct mail_conn *c = s->owner;
	struct store_msg *m = message(c, a->argv[0]);

	if (m == NULL)
		return CMD_BAD;
	m->deleted = true;
	session_reply(s, "+OK Message %u deleted.", (unsigned)(m - c->idx.msgs) + 1);
	return CMD_OK;
}

static enum cmd_result
cmd_noop(struct session *s, const struct pop3_args *a)
{
	(void)a;
	session_reply(s, "+OK");
	return CMD_OK;
}

static enum cmd_result
cmd_rset(struct session *s, const struct pop3_args *a)
{
	struct mail_conn *c = s->owner;

	(void)a;
	for (unsigned int i = 0; i < c->idx.count; i++)
		c->idx.msgs[i].deleted = false;
	session_reply(s, "+OK %u messages (%llu octets).", c->idx.count,
	    (unsigned long long)c->idx.total_size);
	return CMD_OK;
}

static enum cmd_result
cmd_capa(struct session *s, const struct pop3_args *a)
{
	struct mail_conn *c = s->owner;

	(void)a;
	/* RFC 2449 sec. 5: what AUTHORIZATION offered is announced here too. */
	capa_reply(s, cf, c->capa & (CAPA_USER | CAPA_STLS), c->sasl);
	return CMD_OK;
}

/*
 * Whether a lock another program holds is worth another try (then the
 * timer is set): until mbox_lock_wait seconds after the first attempt.
 */
static bool
lock_retry_later(struct mail_conn *c)
{
	uint64_t now = ev_now_ms();

	if (c->lock_deadline == 0)
		c->lock_deadline = now + (uint64_t)cf->mbox_lock_wait * 1000;
	if (now + LOCK_RETRY_MS > c->lock_deadline)
		return false;
	ev_timer_start(ev, &c->lock_retry, LOCK_RETRY_MS);
	return true;
}

/*
 * QUIT from TRANSACTION: the UPDATE state (RFC 1939 sec. 6). False while
 * it waits for the mbox lock (the timer calls it again), true when the
 * reply is queued.
 */
static bool
quit_update(struct mail_conn *c)
{
	struct session *s = &c->s;
	unsigned int deleted = 0, left;
	uint64_t size;
	char err[ERR_LEN];
	enum store_result r = STORE_OK;

	for (unsigned int i = 0; i < c->idx.count; i++)
		deleted += c->idx.msgs[i].deleted;
	live_totals(c, &left, &size);
	if (deleted > 0 || c->sops->wait != NULL)
		r = c->sops->commit(c->st, &c->idx, err);
	if (r == STORE_BUSY && lock_retry_later(c))
		return false;
	if (r == STORE_PENDING) {
		c->sops->wait(c->st, store_ready, c);
		return false;
	}
	/*
	 * UPDATE is over: give the mailbox back before the reply can reach
	 * the client, or a client that logs in again at once (to another
	 * mail worker of the pool) could find it still locked: [IN-USE].
	 */
	if (c->reader != NULL)
		c->sops->read_close(&c->reader);
	c->sops->close(&c->st, &c->idx);
	if (r != STORE_OK) {
		log_warnx("session=%s event=update-failed reason=\"%s\"", s->id, err);
		session_reply(s, "-ERR [SYS/TEMP] Some deleted messages were "
		    "not removed.");
	} else {
		session_reply(s, "+OK Bye, %u deleted, %u left.", deleted, left);
	}
	log_info("session=%s event=logout user=\"%s\" retrieved=%u "
	    "retrieved_bytes=%llu deleted=%u left=%u result=%s", s->id,
	    c->user, c->retrieved, (unsigned long long)c->retrieved_bytes,
	    deleted, left, r == STORE_OK ? "ok" : "update-failed");
	return true;
}

static enum cmd_result
cmd_quit(struct session *s, const struct pop3_args *a)
{
	struct mail_conn *c = s->owner;

	(void)a;
	c->quitting = true;
	if (quit_update(c))
		return CMD_CLOSE;
	session_suspend(s);
	return CMD_ASYNC;
}

static const struct session_cmd transaction_commands[] = {
	{ "STAT", 0, 0, false, 0, cmd_stat },
	{ "LIST", 0, 1, false, 0, cmd_list },
	{ "UIDL", 0, 1, false, 0, cmd_uidl },
	{ "RETR", 1, 1, false, 0, cmd_retr },
	{ "TOP",  2, 2, false, 0, cmd_top },
	{ "DELE", 1, 1, false, 0, cmd_dele },
	{ "NOOP", 0, 0, false, 0, cmd_noop },
	{ "RSET", 0, 0, false, 0, cmd_rset },
	{ "CAPA", 0, 0, false, 0, cmd_capa },
	{ "QUIT", 0, 0, false, 0, cmd_quit },
	{ NULL, 0, 0, false, 0, NULL },
};

static const struct session_ops mail_ops = {
	.commands = transaction_commands,
	.more = mail_more,
	.closed = conn_closed,
};

static void
more_listing(struct mail_conn *c)
{
	while (c->cursor < c->idx.count && session_out_room(&c->s) > 128) {
		struct store_msg *m = &c->idx.msgs[c->cursor++];

		if (m->deleted)
			continue;
		if (c->more_kind == MORE_UIDL)
			session_reply(&c->s, "%u %s", c->cursor, m->uidl);
		else
			session_reply(&c->s, "%u %llu", c->cursor,
			    (unsigned long long)m->size);
	}
	if (c->cursor == c->idx.count) {
		session_reply(&c->s, ".");
		session_more_done(&c->s);
	}
}

/*
 * Encode straight into the session's output buffer: read at most half the
 * free room, so the encoded block (at most twice its input) always fits.
 */
static void
more_body(struct mail_conn *c)
{
	char in[RETR_BLOCK];

	for (;;) {
		size_t room, want, o;
		char *dst = session_out_tail(&c->s, &room);
		ssize_t n = 0;

		if (dst == NULL || room < POP3_ENCODER_FINISH_MAX +
		    POP3_ENCODER_OUT_MAX(RETR_MIN_READ))
			return;
		want = (room - POP3_ENCODER_FINISH_MAX) / 2;
		if (want > sizeof(in))
			want = sizeof(in);
		if (!pop3_encoder_full(&c->enc))
			n = c->sops->read(c->reader, in, want);
		if (n < 0 && errno == EAGAIN && c->sops->wait != NULL) {
			/* The database has the block: no writable wake-ups till then. */
			session_more_wait(&c->s);
			c->body_waiting = true;
			c->sops->wait(c->st, store_ready, c);
			return;
		}
		if (n < 0) {
			/* +OK is out: the only honest end is to drop the line. */
			log_warn("session=%s event=read-failed", c->s.id);
			session_close(&c->s);
			return;
		}
		if (n == 0) {
			o = pop3_encoder_finish(&c->enc, dst, room);
			session_out_commit(&c->s, o);
			c->sops->read_close(&c->reader);
			session_more_done(&c->s);
			return;
		}
		o = pop3_encoder_feed(&c->enc, in, (size_t)n, dst, room);
		session_out_commit(&c->s, o);
	}
}

static void
mail_more(struct session *s)
{
	struct mail_conn *c = s->owner;

	if (c->more_kind == MORE_BODY)
		more_body(c);
	else
		more_listing(c);
}

/* Expand mailbox = FORMAT:PATH for u (store_path.h: what is refused). */
static int
mailbox_path(const struct auth_user *u, char *out, size_t size,
    const struct store_ops **ops_r, char *err)
{
	return store_path_resolve(cf->mailbox, u->name, u->home, out, size,
	    ops_r, err);
}

/*
 * RFC 2449 LOGIN-DELAY: the time of the last login lives in the mtime of a
 * stamp beside the mailbox. 0 to go on, -1 when this login is too soon.
 * A stamp that cannot be written is no reason to refuse mail.
 */
static int
login_delay_check(struct mail_conn *c, const char *path)
{
	char stamp[PATH_MAX];
	const char *slash;
	struct stat st;
	time_t now = time(NULL);
	int fd, r;

	if (cf->login_delay == 0)
		return 0;
	if (strncmp(cf->mailbox, "maildir:", 8) == 0)
		r = str_fmt(stamp, sizeof(stamp), "%s/postino-login", path);
	else {
		slash = strrchr(path, '/');
		r = slash == NULL ?
		    str_fmt(stamp, sizeof(stamp), ".%s.postino-login", path) :
		    str_fmt(stamp, sizeof(stamp), "%.*s/.%s.postino-login",
			(int)(slash - path), path, slash + 1);
	}
	if (r < 0)
		return 0;
	if (stat(stamp, &st) == 0 && st.st_mtime <= now &&
	    now - st.st_mtime < (time_t)cf->login_delay) {
		log_info("session=%s event=login-delay user=\"%s\" wait=%lld",
		    c->s.id, c->user,
		    (long long)(cf->login_delay - (now - st.st_mtime)));
		return -1;
	}
	/* Beside an mbox, the stamp is a new file in the spool directory. */
	priv_group_raise();
	fd = open(stamp, O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	priv_group_lower();
	if (fd >= 0) {
		futimens(fd, NULL);
		close(fd);
	}
	return 0;
}

static void
open_mailbox(struct mail_conn *c, const struct msg_account *acct)
{
	struct store_params p = { 0 };
	char path[PATH_MAX], err[ERR_LEN] = "mailbox unavailable";
	enum store_result r;
	unsigned int count;
	uint64_t size;

	if (acct->result != AUTH_OK || !PROTO_STR_OK(acct->user.name) ||
	    !PROTO_STR_OK(acct->user.home) ||
	    strcmp(acct->user.name, c->user) != 0 ||
	    (priv_is_root() && acct->uid != getuid())) {
		log_warnx("session=%s event=ticket-refused user=\"%s\"", c->s.id,
		    c->user);
		session_reply(&c->s, "-ERR [SYS/TEMP] Login failed, try later.");
		session_end(&c->s);
		return;
	}
	if (mailbox_path(&acct->user, path, sizeof(path), &c->sops, err) < 0) {
		log_warnx("session=%s event=mailbox-error user=\"%s\" "
		    "reason=\"%s\"", c->s.id, c->user, err);
		session_reply(&c->s, "-ERR [SYS/PERM] Mailbox unavailable.");
		session_end(&c->s);
		return;
	}
	p.path = path;
	p.max_messages = cf->max_messages;
	p.max_bytes = cf->max_mailbox_size;
	p.mboxrd = cf->mboxrd;
	p.dotlock_stale = cf->mbox_dotlock_stale;
	/* Never wait in the store: a busy lock is retried from a timer. */
	p.lock_wait = 0;
	p.uidl_format = cf->pop3_uidl_format;
	r = c->sops->open(&c->st, &p, &c->idx, err);
	if (r == STORE_BUSY || r == STORE_PENDING) {
		if (r == STORE_BUSY)
			c->st = NULL;
		if (c->acct == NULL && (c->acct = malloc(sizeof(*acct))) != NULL)
			memcpy(c->acct, acct, sizeof(*acct));
		if (c->acct != NULL && r == STORE_PENDING) {
			c->sops->wait(c->st, store_ready, c);
			return;
		}
		if (c->acct != NULL && lock_retry_later(c))
			return;
		if (c->acct == NULL)
			str_copy(err, ERR_LEN, "out of memory");
		if (r == STORE_PENDING)
			c->sops->close(&c->st, &c->idx);
		r = c->acct == NULL ? STORE_TEMPFAIL : r;
	}
	if (r != STORE_OK) {
		c->st = NULL;
		log_info("session=%s event=mailbox-open result=%s user=\"%s\" "
		    "reason=\"%s\"", c->s.id, r == STORE_LOCKED ||
		    r == STORE_BUSY ? "in-use" : "error", c->user, err);
		reply_store_error(&c->s, r, r == STORE_LOCKED ?
		    "Mailbox is in use by another session." :
		    r == STORE_BUSY ? "Mailbox is locked by another program, "
		    "try later." : "Mailbox unavailable.");
		session_end(&c->s);
		return;
	}
	c->lock_deadline = 0;
	if (login_delay_check(c, path) < 0) {
		session_reply(&c->s, "-ERR [LOGIN-DELAY] Wait %u seconds "
		    "between logins.", cf->login_delay);
		session_end(&c->s);
		return;
	}
	live_totals(c, &count, &size);
	log_info("session=%s event=mailbox-open result=ok user=\"%s\" "
	    "messages=%u octets=%llu", c->s.id, c->user, count,
	    (unsigned long long)size);
	session_reply(&c->s, "+OK Logged in, %u messages (%llu octets).", count,
	    (unsigned long long)size);
	session_complete(&c->s, CMD_ASYNC);
}

/* A pending store call can go on: the body, QUIT's UPDATE or the open. */
static void
store_ready(void *arg)
{
	struct mail_conn *c = arg;

	if (c->body_waiting) {
		c->body_waiting = false;
		session_more_go(&c->s);
	} else {
		lock_retry_fire(ev, c);
	}
}

static void
lock_retry_fire(struct ev *e, void *arg)
{
	struct mail_conn *c = arg;

	(void)e;
	if (c->quitting) {
		/* Still suspended: nothing pipelined after QUIT is taken. */
		if (quit_update(c))
			session_end(&c->s);
		return;
	}
	if (c->acct != NULL)
		open_mailbox(c, c->acct);
}

static void
on_account(const struct ipc_msg *msg)
{
	struct msg_account *acct = malloc(sizeof(*acct));
	struct mail_conn *c;

	if (acct == NULL)
		return;
	if (!proto_take(msg->data, msg->len, acct, sizeof(*acct))) {
		log_warnx("event=protocol-error role=auth msg=account");
		free(acct);
		return;
	}
	for (c = conns; c != NULL; c = c->next)
		if (c->req == acct->req)
			break;
	if (c != NULL) {
		c->req = 0;
		open_mailbox(c, acct);
	}
	free(acct);
}

static void
on_handoff(struct ipc_msg *msg)
{
	/* One at a time (one thread): no 6 KiB per session kept. */
	static struct msg_handoff h;
	struct mail_conn *c = calloc(1, sizeof(*c));
	struct msg_redeem rq = { 0 };
	int w = -1;

	if (c == NULL || !proto_take(msg->data, msg->len, &h, sizeof(h)) ||
	    !PROTO_STR_OK(h.session) || !PROTO_STR_OK(h.ip) ||
	    !PROTO_STR_OK(h.user) || !PROTO_STR_OK(h.ticket) ||
	    !PROTO_STR_OK(h.sasl) ||
	    h.inlen > sizeof(h.in) || h.outlen > sizeof(h.out) ||
	    msg->fd < 0 || (w = proto_ticket_worker(h.ticket)) < 0 ||
	    role_auth((unsigned int)w) == NULL) {
		log_warnx("event=handoff-refused");
		if (msg->fd >= 0)
			close(msg->fd);
		free(c);
		role_send(MSG_SESSION_END, NULL, 0, -1);
		return;
	}
	ev_timer_init(&c->lock_retry, lock_retry_fire, c);
	ev_timer_stop(ev, &idle_timer);
	ev_timer_stop(ev, &trim_timer);
	session_setup(&c->s, &(struct session_params){ .id = h.session,
	    .ip = h.ip, .port = h.port, .idle_ms = cf->idle_timeout * 1000,
	    .max_bad = cf->max_bad_commands, .transcript = cf->transcript });
	str_copy(c->user, sizeof(c->user), h.user);
	str_copy(c->sasl, sizeof(c->sasl), h.sasl);
	c->capa = h.capa;
	/* No command until the mailbox is open (open_mailbox()). */
	session_suspend(&c->s);
	if (session_start(&c->s, ev, msg->fd, &mail_ops, c, h.in,
	    h.inlen) < 0) {
		close(msg->fd);
		free(c);
		role_send(MSG_SESSION_END, NULL, 0, -1);
		return;
	}
	c->next = conns;
	if (conns)
		conns->prev = c;
	conns = c;
	/* Replies the login worker could not send yet go first. */
	if (h.outlen > 0)
		session_write(&c->s, h.out, h.outlen);
	rq.req = c->req = next_req++;
	memcpy(rq.ticket, h.ticket, sizeof(rq.ticket));
	explicit_bzero(h.ticket, sizeof(h.ticket));
	c->auth_idx = (unsigned int)w;
	/* A ticket is redeemed with the auth worker that issued it. */
	if (ipc_send(role_auth(c->auth_idx), MSG_AUTH_REDEEM, &rq, sizeof(rq),
	    -1) < 0) {
		session_reply(&c->s, "-ERR [SYS/TEMP] Login failed, try later.");
		session_end(&c->s);
	}
}

/* Auth worker idx is gone: redemptions waiting on it fail temporarily. */
static void
fail_pending(unsigned int idx)
{
	struct mail_conn *c, *next;

	for (c = conns; c != NULL; c = next) {
		next = c->next;
		if (c->req == 0 || c->auth_idx != idx)
			continue;
		c->req = 0;
		session_reply(&c->s, "-ERR [SYS/TEMP] Login failed, try later.");
		session_end(&c->s);
	}
}

static void
auth_msg(unsigned int idx, struct ipc_msg *msg)
{
	if (msg == NULL)
		fail_pending(idx);
	else if (msg->type == MSG_AUTH_ACCOUNT)
		on_account(msg);
}

/*
 * Sessions end between commands: an UPDATE runs inside one callback, so by
 * the time a signal is read from the loop no UPDATE is half done.
 */
static void
stop_all(void)
{
	struct mail_conn *c, *next;

	shutting_down = true;
	for (c = conns; c != NULL; c = next) {
		next = c->next;
		session_reply(&c->s, "-ERR [SYS/TEMP] Server shutting down.");
		session_set_end(&c->s, "shutdown");
		session_close(&c->s);
	}
	ev_stop(ev);
}

static void
master_msg(struct ipc_msg *msg)
{
	if (msg->type == MSG_HANDOFF && !shutting_down) {
		on_handoff(msg);
		return;
	}
	if (msg->fd >= 0)
		close(msg->fd);
}

static const struct role mail_role = {
	.stop = stop_all,
	.master_msg = master_msg,
	.auth_msg = auth_msg,
};

int
mail_main(const struct config *config, uid_t uid, gid_t gid)
{
	char err[ERR_LEN];

	cf = config;
	log_set_ident("postinod/mail");
	if (config_store_setup(cf, err) < 0)
		fatalx("%s", err);
	role_drop(&(struct role_user){ .key = "mail user", .uid = uid,
	    .gid = gid, .extra_group = cf->mail_privileged_group });
	ev = role_start(&mail_role);
	store_pgsql_set_loop(ev);
	ev_timer_init(&idle_timer, idle_expired, NULL);
	ev_timer_init(&trim_timer, trim_expired, NULL);
	ev_timer_start(ev, &idle_timer, MAIL_IDLE_MS);
	ev_run(ev);
	store_pgsql_shutdown();
	role_end();
	return 0;
}
