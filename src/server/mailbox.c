/*
 * The mail role: TRANSACTION and UPDATE for every session of one uid, in one
 * event loop, as that uid (never root). A session arrives from a login worker
 * through the master with a ticket; the ticket is redeemed with the auth role
 * before any mailbox is opened. This file is the role; the commands are in
 * mailbox_cmds.c (mailbox.h).
 */
#include <fcntl.h>
#include <malloc.h>
#include <sys/stat.h>
#include <time.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../lib/ev.h"
#include "../lib/ipc.h"
#include "../lib/list.h"
#include "../lib/log.h"
#include "../lib/priv.h"
#include "../store/store.h"
#include "../store/store_path.h"
#include "../store/store_pgsql.h"
#include "limits.h"
#include "mailbox.h"
#include "role.h"
#include "rolemsg.h"
#include "roles.h"

static const struct config *cf;
static struct ev *ev;
static struct mail_conn *conns;
static uint64_t next_req = 1;
static bool shutting_down;
static struct ev_timer idle_timer;
static struct ev_timer trim_timer;
static struct ev_timer ended_timer;
static uint32_t ended_untold;	/* sessions over, not yet told the master */
static uint64_t ended_since;	/* when the first of them ended */

static void lock_retry_fire(struct ev *e, void *arg);

static void
tell_ended(struct ev *e, void *arg)
{
	struct msg_ended m = { .count = ended_untold };

	(void)e;
	(void)arg;
	ev_timer_stop(ev, &ended_timer);
	if (ended_untold == 0)
		return;
	ended_untold = 0;
	role_send(MSG_SESSION_END, &m, sizeof(m), -1);
}

/* One hand-off is over: told with others (limits.h, MAIL_ENDED_*). */
static void
session_ended(void)
{
	uint64_t now = ev_now_ms();

	if (ended_untold++ == 0) {
		ended_since = now;
		ev_timer_start(ev, &ended_timer, MAIL_ENDED_LATE_MS);
	} else if (now - ended_since >= MAIL_ENDED_BATCH_MS)
		tell_ended(ev, NULL);
}

static void
conn_closed(struct session *s)
{
	struct mail_conn *c = s->owner;

	ev_timer_stop(ev, &c->lock_retry);
	free(c->acct);
	mailbox_release(c);
	LIST_UNLINK(conns, c);
	free(c);
	session_ended();
	if (conns == NULL) {
		if (shutting_down) {
			tell_ended(ev, NULL);
			ev_stop(ev);
		} else
			ev_timer_start(ev, &idle_timer, MAIL_IDLE_MS);
		ev_timer_start(ev, &trim_timer, MAIL_TRIM_MS);
	}
}

static const struct session_ops mail_ops = {
	.commands = mailbox_commands,
	.more = mailbox_more,
	.closed = conn_closed,
};

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
	if (conns == NULL) {
		/* The master retires only a worker it counts no session on. */
		tell_ended(ev, NULL);
		role_send(MSG_IDLE, NULL, 0, -1);
	}
}

/* Retried until mbox_lock_wait seconds after the first attempt. */
bool
mailbox_lock_retry_later(struct mail_conn *c)
{
	uint64_t now = ev_now_ms();

	if (c->lock_deadline == 0)
		c->lock_deadline = now + (uint64_t)cf->mbox_lock_wait * 1000;
	if (now + LOCK_RETRY_MS > c->lock_deadline)
		return false;
	ev_timer_start(ev, &c->lock_retry, LOCK_RETRY_MS);
	return true;
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
 * A stamp that cannot be written is no reason to refuse mail. pgsql keeps
 * it in the database instead: its open answered r, STORE_TOO_SOON with
 * the wait in err when this login is too soon (store_params).
 */
static int
login_delay_check(struct mail_conn *c, const char *path,
    enum store_result r_open, const char *err)
{
	char stamp[PATH_MAX];
	const char *slash;
	struct stat st;
	time_t now = time(NULL);
	int fd, r;

	if (r_open == STORE_TOO_SOON) {
		log_info("session=%s event=login-delay user=\"%s\" "
		    "reason=\"%s\"", c->s.id, c->user, err);
		return -1;
	}
	if (cf->login_delay == 0 || strcmp(c->sops->name, "pgsql") == 0)
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
	p.login_delay = cf->login_delay;
	r = c->sops->open(&c->st, &p, &c->idx, err);
	if (r == STORE_BUSY || r == STORE_PENDING) {
		if (r == STORE_BUSY)
			c->st = NULL;
		if (c->acct == NULL && (c->acct = malloc(sizeof(*acct))) != NULL)
			memcpy(c->acct, acct, sizeof(*acct));
		if (c->acct != NULL && r == STORE_PENDING) {
			c->sops->wait(c->st, mailbox_store_ready, c);
			return;
		}
		if (c->acct != NULL && mailbox_lock_retry_later(c))
			return;
		if (c->acct == NULL)
			str_copy(err, ERR_LEN, "out of memory");
		if (r == STORE_PENDING)
			c->sops->close(&c->st, &c->idx);
		r = c->acct == NULL ? STORE_TEMPFAIL : r;
	}
	if (r != STORE_OK && r != STORE_TOO_SOON) {
		c->st = NULL;
		log_info("session=%s event=mailbox-open result=%s user=\"%s\" "
		    "reason=\"%s\"", c->s.id, r == STORE_LOCKED ||
		    r == STORE_BUSY ? "in-use" : "error", c->user, err);
		mailbox_reply_store_error(&c->s, r, r == STORE_LOCKED ?
		    "Mailbox is in use by another session." :
		    r == STORE_BUSY ? "Mailbox is locked by another program, "
		    "try later." : "Mailbox unavailable.");
		session_end(&c->s);
		return;
	}
	c->lock_deadline = 0;
	if (login_delay_check(c, path, r, err) < 0) {
		session_reply(&c->s, "-ERR [LOGIN-DELAY] Wait %u seconds "
		    "between logins.", cf->login_delay);
		session_end(&c->s);
		return;
	}
	mailbox_live_totals(c, &count, &size);
	log_info("session=%s event=mailbox-open result=ok user=\"%s\" "
	    "messages=%u octets=%llu", c->s.id, c->user, count,
	    (unsigned long long)size);
	session_reply(&c->s, "+OK Logged in, %u messages (%llu octets).", count,
	    (unsigned long long)size);
	session_complete(&c->s, CMD_ASYNC);
}

/* A pending store call can go on: the body, QUIT's UPDATE or the open. */
void
mailbox_store_ready(void *arg)
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
		if (mailbox_update(c))
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
		session_ended();
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
		session_ended();
		return;
	}
	LIST_PUSH(conns, c);
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
	mailbox_cmds_init(cf);
	log_set_ident("postinod/mail");
	if (config_store_setup(cf, err) < 0)
		fatalx("%s", err);
	role_drop(&(struct role_user){ .key = "mail user", .uid = uid,
	    .gid = gid, .extra_group = cf->mail_privileged_group });
	ev = role_start(&mail_role);
	store_pgsql_set_loop(ev);
	ev_timer_init(&idle_timer, idle_expired, NULL);
	ev_timer_init(&trim_timer, trim_expired, NULL);
	ev_timer_init(&ended_timer, tell_ended, NULL);
	ev_timer_start(ev, &idle_timer, MAIL_IDLE_MS);
	role_run();
	store_pgsql_shutdown();
	role_end();
	return 0;
}
