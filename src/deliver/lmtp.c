/*
 * The LMTP role (RFC 2033): one event loop for every connection from the
 * MTA, running unprivileged (login_user, chrooted like the login role).
 * It parses the protocol, asks the auth role whether each recipient
 * exists, spools the message into a sealed memfd and hands it to the
 * deliver worker of each recipient's uid (src/deliver/deliverd.c) over a
 * channel the master routes. It opens no mailbox and reads no file.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../lib/conn.h"
#include "../lib/ev.h"
#include "../lib/idmap.h"
#include "../lib/iobuf.h"
#include "../lib/list.h"
#include "../lib/fdio.h"
#include "../lib/ipc.h"
#include "../lib/log.h"
#include "../lib/net.h"
#include "../lib/priv.h"
#include "../lib/str.h"
#include "../server/limits.h"
#include "../server/role.h"
#include "../server/rolemsg.h"
#include "../server/roles.h"
#include "../store/store.h"
#include "delivery.h"
#include "lmtp_cmds.h"

/* A reply line we build: code, status, an address and a short text. */
#define LMTP_REPLY_MAX		(LMTP_PATH_MAX * 2 + 80)
/* Seals on the spooled message (deliverd.c checks for them). */
#define LMTP_SEALS	(F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE)

enum lmtp_mode { MODE_CMD, MODE_DATA, MODE_BDAT };

struct lmtp_conn;

struct lmtp_rcpt {
	struct lmtp_conn *conn;
	char		 addr[LMTP_PATH_MAX + 1];
	char		 user[AUTH_USER_MAX + 1];
	uint32_t	 uid, gid;
	int		 dup_of;	/* -1, or an earlier recipient, same user */
	uint64_t	 req;
	struct ipc	*ipc;		/* delivery channel while it runs */
	enum store_result result;
	bool		 busy;		/* over lmtp_user_concurrency */
	bool		 probing;	/* its worker died: asking another */
	char		 token[STORE_TOKEN_LEN + 1];	/* in the stored name */
};

/*
 * Deliveries in flight per user, over all connections: at most
 * lmtp_user_concurrency each, so one busy mailbox cannot take every
 * deliver worker's attention (Dovecot: lmtp_user_concurrency_limit).
 */
struct lmtp_active {
	struct lmtp_active *next;
	unsigned int	 n;
	char		 user[AUTH_USER_MAX + 1];
};

struct lmtp_conn {
	struct lmtp_conn *prev, *next;
	int		 fd;
	char		 id[SESSION_ID_LEN + 1];
	char		 peer[NET_ADDR_LEN];
	bool		 lhlo, in_mail, closing, gone, waiting;
	bool		 processing;	/* conn_process() is on the stack */
	/*
	 * The client ended its stream (FIN after a pipelined QUIT): what it
	 * sent before still runs and is answered, then the connection ends.
	 */
	bool		 eof;
	unsigned int	 bad;
	struct lmtp_mail mail;
	char		 pending_addr[LMTP_PATH_MAX + 1];	/* RCPT lookup */
	char		 pending_user[AUTH_USER_MAX + 1];
	uint64_t	 lookup_req;
	unsigned int	 lookup_auth;	/* the auth worker asked */
	uint32_t	 pending_uid, pending_gid;
	struct ipc	*quota_ipc;	/* RCPT's quota check, while it runs */
	uint64_t	 quota_req;
	struct lmtp_rcpt *rcpts;
	unsigned int	 nrcpt, rcpt_cap;
	unsigned int	 delivering;
	/* the message */
	enum lmtp_mode	 mode;
	bool		 bdat_used, bdat_last, bdat_refuse;
	const char	*bdat_error;	/* reply once the chunk is read */
	uint64_t	 bdat_left;
	struct lmtp_data dec;
	int		 spool;
	uint64_t	 spooled;
	bool		 too_big, spool_failed, spool_full;
	struct ev_timer	 timer;
	struct conn	 stream;	/* over fd: every read and write */
	/* Output storage only while replies are unsent. */
	struct iobuf	 in, out;
	char		 in_buf[LMTP_IN_MAX];
};

struct lmtp_cmd {
	const char	*name;
	void		(*fn)(struct lmtp_conn *c, const char *args);
};

static const struct config *cf;
static struct ev *ev;
static struct lmtp_conn *conns;
/* Connections waiting for an account lookup, by its request id. */
static struct idmap *lookups;
static unsigned int nconns;
static uint64_t next_req = 1;
static bool shutting_down;
static int listen_fds[CONFIG_LMTP_LISTEN_MAX];
static unsigned int nlisten;
static char hostname[256];
static struct lmtp_active *active;
static uint64_t spool_total;	/* octets in every connection's spool */

static struct lmtp_active *
active_find(const char *user)
{
	for (struct lmtp_active *a = active; a != NULL; a = a->next)
		if (strcmp(a->user, user) == 0)
			return a;
	return NULL;
}

/* Count one more delivery for user; false when over the limit. */
static bool
active_take(const char *user)
{
	struct lmtp_active *a = active_find(user);

	if (a != NULL && cf->lmtp_user_concurrency != 0 &&
	    a->n >= cf->lmtp_user_concurrency)
		return false;
	if (a == NULL) {
		if ((a = calloc(1, sizeof(*a))) == NULL)
			return false;
		str_copy(a->user, sizeof(a->user), user);
		a->next = active;
		active = a;
	}
	a->n++;
	return true;
}

static void
active_put(const char *user)
{
	struct lmtp_active **pp, *a;

	for (pp = &active; (a = *pp) != NULL; pp = &a->next) {
		if (strcmp(a->user, user) != 0)
			continue;
		if (--a->n == 0) {
			*pp = a->next;
			free(a);
		}
		return;
	}
}

static void conn_process(struct lmtp_conn *c);

static void conn_update(struct lmtp_conn *c);

static void __attribute__((format(printf, 2, 3)))
reply(struct lmtp_conn *c, const char *fmt, ...)
{
	char line[LMTP_REPLY_MAX + 2];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = str_vline(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if (iobuf_reserve(&c->out, (size_t)n) < 0) {
		log_warnx("session=%s event=output-overflow", c->id);
		c->closing = true;
		return;
	}
	iobuf_add(&c->out, line, (size_t)n);
}

static void
spool_close(struct lmtp_conn *c)
{
	if (c->spool >= 0)
		close(c->spool);
	c->spool = -1;
	spool_total -= c->spooled;
	c->spooled = 0;
	c->too_big = c->spool_failed = c->spool_full = false;
}

/* RSET, LHLO, and the end of a transaction (RFC 5321 sec. 4.1.1.5). */
static void
transaction_reset(struct lmtp_conn *c)
{
	spool_close(c);
	for (unsigned int i = 0; i < c->nrcpt; i++) {
		if (c->rcpts[i].ipc != NULL) {
			ipc_free(&c->rcpts[i].ipc);
			active_put(c->rcpts[i].user);
		}
	}
	free(c->rcpts);
	c->rcpts = NULL;
	c->nrcpt = c->rcpt_cap = 0;
	c->in_mail = false;
	c->bdat_used = c->bdat_last = false;
	c->mode = MODE_CMD;
	memset(&c->mail, 0, sizeof(c->mail));
}

static void
lmtp_conn_free(struct lmtp_conn *c)
{
	ev_timer_stop(ev, &c->timer);
	if (c->fd >= 0) {
		ev_io_del(ev, c->fd);
		close(c->fd);
	}
	transaction_reset(c);
	idmap_del(lookups, c->lookup_req);
	ipc_free(&c->quota_ipc);
	iobuf_free(&c->out);
	conn_free(&c->stream);
	LIST_UNLINK(conns, c);
	nconns--;
	free(c);
	if (shutting_down && conns == NULL)
		ev_stop(ev);
}

/*
 * The client is gone or must go. Deliveries under way hold pointers to c:
 * it lives on, without its socket, until they end.
 */
static void
conn_close(struct lmtp_conn *c)
{
	if (c->delivering > 0) {
		c->gone = true;
		if (c->fd >= 0) {
			ev_io_del(ev, c->fd);
			close(c->fd);
			c->fd = -1;
		}
		ev_timer_stop(ev, &c->timer);
		return;
	}
	lmtp_conn_free(c);
}

static bool
bad_command(struct lmtp_conn *c)
{
	if (++c->bad < LMTP_MAX_BAD)
		return false;
	reply(c, "421 4.7.0 %s Too many errors, closing", hostname);
	c->closing = true;
	return true;
}

/* ---- commands ---- */

static void
cmd_lhlo(struct lmtp_conn *c, const char *args)
{
	if (args[0] == '\0') {
		reply(c, "501 5.5.4 Syntax: LHLO hostname");
		bad_command(c);
		return;
	}
	transaction_reset(c);
	c->lhlo = true;
	reply(c, "250-%s", hostname);
	reply(c, "250-PIPELINING");
	reply(c, "250-ENHANCEDSTATUSCODES");
	reply(c, "250-8BITMIME");
	reply(c, "250-SIZE %llu", (unsigned long long)cf->lmtp_max_message_size);
	reply(c, "250-CHUNKING");
	reply(c, "250 SMTPUTF8");
}

static void
cmd_helo(struct lmtp_conn *c, const char *args)
{
	(void)args;
	/* RFC 2033 sec. 4.1: an LMTP server must not answer HELO or EHLO. */
	reply(c, "500 5.5.1 This is LMTP: use LHLO");
	bad_command(c);
}

static void
cmd_mail(struct lmtp_conn *c, const char *args)
{
	const char *err;

	if (!c->lhlo) {
		reply(c, "503 5.5.1 LHLO first");
		bad_command(c);
		return;
	}
	if (c->in_mail) {
		reply(c, "503 5.5.1 Nested MAIL command");
		bad_command(c);
		return;
	}
	err = lmtp_parse_mail(args, cf->lmtp_max_message_size, &c->mail);
	if (err != NULL) {
		reply(c, "%s", err);
		bad_command(c);
		return;
	}
	c->in_mail = true;
	reply(c, "250 2.1.0 OK");
}

static void
cmd_rcpt(struct lmtp_conn *c, const char *args)
{
	struct msg_lookup rq = { 0 };
	const char *err;
	struct ipc *a;

	if (!c->in_mail) {
		reply(c, "503 5.5.1 MAIL first");
		bad_command(c);
		return;
	}
	err = lmtp_parse_rcpt(args, c->mail.smtputf8, c->pending_addr);
	if (err != NULL) {
		reply(c, "%s", err);
		bad_command(c);
		return;
	}
	/* RFC 5321 sec. 4.5.3.1.10: 452, and the client sends the rest later. */
	if (c->nrcpt >= cf->lmtp_max_recipients) {
		reply(c, "452 4.5.3 Too many recipients");
		return;
	}
	if (lmtp_rcpt_user(c->pending_addr, cf->recipient_delimiter,
	    cf->lmtp_local_domains, c->pending_user,
	    sizeof(c->pending_user)) < 0 || !auth_name_valid(c->pending_user)) {
		reply(c, "550 5.1.1 <%s> User unknown", c->pending_addr);
		return;
	}
	/* Lookups go round-robin over the auth workers. */
	if ((a = role_auth_next(&c->lookup_auth)) == NULL) {
		reply(c, "451 4.3.0 <%s> Temporary lookup failure",
		    c->pending_addr);
		return;
	}
	idmap_del(lookups, c->lookup_req);
	rq.req = c->lookup_req = next_req++;
	memcpy(rq.user, c->pending_user, sizeof(rq.user));
	if (idmap_put(lookups, rq.req, c) < 0 ||
	    ipc_send(a, MSG_AUTH_LOOKUP, &rq, sizeof(rq), -1) < 0) {
		reply(c, "451 4.3.0 <%s> Temporary lookup failure",
		    c->pending_addr);
		return;
	}
	c->waiting = true;
}

static void
rcpt_add(struct lmtp_conn *c)
{
	struct lmtp_rcpt *r;

	if (c->nrcpt == c->rcpt_cap) {
		unsigned int cap = c->rcpt_cap ? c->rcpt_cap * 2 : 4;
		struct lmtp_rcpt *n = reallocarray(c->rcpts, cap, sizeof(*n));

		if (n == NULL) {
			reply(c, "452 4.3.1 <%s> Out of memory",
			    c->pending_addr);
			return;
		}
		c->rcpts = n;
		c->rcpt_cap = cap;
	}
	r = &c->rcpts[c->nrcpt++];
	memset(r, 0, sizeof(*r));
	r->conn = c;
	r->uid = c->pending_uid;
	r->gid = c->pending_gid;
	r->dup_of = -1;
	memcpy(r->addr, c->pending_addr, sizeof(r->addr));
	memcpy(r->user, c->pending_user, sizeof(r->user));
	c->bad = 0;
	reply(c, "250 2.1.5 <%s> OK", r->addr);
}

static void
quota_msg(struct ipc *ipc, struct ipc_msg *msg, void *arg)
{
	struct lmtp_conn *c = arg;
	struct msg_delivered res;

	(void)ipc;
	if (msg != NULL && msg->fd >= 0)
		close(msg->fd);
	/* Anything but "over quota" accepts: the delivery checks again. */
	if (msg != NULL && msg->type == MSG_DELIVER_RESULT &&
	    proto_take(msg->data, msg->len, &res, sizeof(res)) &&
	    res.req == c->quota_req && res.result == STORE_OVERQUOTA)
		reply(c, cf->lmtp_quota_temporary ?
		    "452 4.2.2 <%s> Mailbox full" :
		    "552 5.2.2 <%s> Mailbox full", c->pending_addr);
	else
		rcpt_add(c);
	ipc_free(&c->quota_ipc);
	c->waiting = false;
	conn_process(c);
}

/*
 * A channel to the deliver worker of uid and gid, routed by the master
 * (one per request: the worker's answer closes it); NULL on failure.
 */
static struct ipc *
deliver_channel(uid_t uid, gid_t gid, ipc_msg_fn *fn, void *arg)
{
	struct msg_deliver_channel ch = { .uid = uid, .gid = gid };
	struct ipc *ipc;
	int fds[2];

	if (ipc_pair(fds) < 0)
		return NULL;
	if (role_send(MSG_DELIVER_CHANNEL, &ch, sizeof(ch), fds[1]) < 0 ||
	    (ipc = ipc_new(ev, fds[0], fn, arg)) == NULL) {
		close(fds[0]);
		close(fds[1]);
		return NULL;
	}
	close(fds[1]);
	return ipc;
}

/*
 * RCPT with a quota configured: ask the deliver worker of the recipient's
 * uid whether the mailbox is already full (only it can look), so the MTA
 * learns at RCPT (552 5.2.2) rather than after sending the message.
 */
static bool
quota_check(struct lmtp_conn *c)
{
	struct msg_deliver *m;
	bool ok = false;

	if ((m = calloc(1, sizeof(*m))) == NULL)
		return false;
	c->quota_ipc = deliver_channel(c->pending_uid, c->pending_gid,
	    quota_msg, c);
	if (c->quota_ipc == NULL) {
		free(m);
		return false;
	}
	m->req = c->quota_req = next_req++;
	str_copy(m->session, sizeof(m->session), c->id);
	str_copy(m->user, sizeof(m->user), c->pending_user);
	if (ipc_send(c->quota_ipc, MSG_DELIVER_QUOTA, m, sizeof(*m), -1) < 0)
		ipc_free(&c->quota_ipc);
	else
		ok = true;
	free(m);
	return ok;
}

static void
rcpt_looked_up(struct lmtp_conn *c, const struct msg_account *a)
{
	c->waiting = false;
	idmap_del(lookups, c->lookup_req);
	c->lookup_req = 0;
	if (a == NULL || a->result == AUTH_TEMPFAIL) {
		reply(c, "451 4.3.0 <%s> Temporary lookup failure",
		    c->pending_addr);
		return;
	}
	if (a->result != AUTH_OK || !PROTO_STR_OK(a->user.name) ||
	    strcmp(a->user.name, c->pending_user) != 0) {
		reply(c, "550 5.1.1 <%s> User unknown", c->pending_addr);
		return;
	}
	c->pending_uid = a->uid;
	c->pending_gid = a->gid;
	/* Only an explicit delivery quota costs a look at the mailbox here. */
	if (delivery_has_quota(cf, &a->user) && quota_check(c)) {
		c->waiting = true;
		return;
	}
	rcpt_add(c);
}

static int
spool_open(struct lmtp_conn *c)
{
	spool_close(c);
	c->spool = memfd_create("postino-lmtp", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (c->spool < 0) {
		log_warn("session=%s memfd_create", c->id);
		return -1;
	}
	return 0;
}

static void
cmd_data(struct lmtp_conn *c, const char *args)
{
	if (args[0] != '\0') {
		reply(c, "501 5.5.4 Syntax: DATA");
		bad_command(c);
		return;
	}
	if (!c->in_mail || c->nrcpt == 0 || c->bdat_used) {
		reply(c, c->bdat_used ? "503 5.5.1 DATA after BDAT" :
		    !c->in_mail ? "503 5.5.1 MAIL first" :
		    "503 5.5.1 No valid recipients");
		bad_command(c);
		return;
	}
	if (spool_open(c) < 0) {
		reply(c, "451 4.3.0 Cannot spool the message");
		return;
	}
	lmtp_data_init(&c->dec, true);
	c->mode = MODE_DATA;
	reply(c, "354 Start mail input; end with <CRLF>.<CRLF>");
}

static void
cmd_bdat(struct lmtp_conn *c, const char *args)
{
	const char *err;
	uint64_t size;
	bool last;

	err = lmtp_parse_bdat(args, &size, &last);
	if (err != NULL) {
		/* Without a size the chunk cannot be skipped: end here. */
		reply(c, "%s", err);
		reply(c, "421 4.5.0 %s Closing after a bad BDAT", hostname);
		c->closing = true;
		return;
	}
	c->mode = MODE_BDAT;
	c->bdat_left = size;
	c->bdat_last = last;
	c->bdat_error = NULL;
	/* RFC 3030 sec. 2: the chunk is read whatever the verdict. */
	if (!c->in_mail)
		c->bdat_error = "503 5.5.1 MAIL first";
	else if (c->nrcpt == 0)
		c->bdat_error = "503 5.5.1 No valid recipients";
	else if (!c->bdat_used) {
		if (spool_open(c) < 0)
			c->bdat_error = "451 4.3.0 Cannot spool the message";
		else {
			lmtp_data_init(&c->dec, false);
			c->bdat_used = true;
		}
	}
}

static void
cmd_rset(struct lmtp_conn *c, const char *args)
{
	(void)args;
	transaction_reset(c);
	reply(c, "250 2.0.0 OK");
}

static void
cmd_noop(struct lmtp_conn *c, const char *args)
{
	(void)args;
	reply(c, "250 2.0.0 OK");
}

static void
cmd_vrfy(struct lmtp_conn *c, const char *args)
{
	(void)args;
	/* RFC 5321 sec. 3.5.3: no verification, no user enumeration. */
	reply(c, "252 2.5.0 Cannot VRFY user, but will accept message and "
	    "attempt delivery");
}

static void
cmd_quit(struct lmtp_conn *c, const char *args)
{
	(void)args;
	reply(c, "221 2.0.0 %s Bye", hostname);
	c->closing = true;
}

static const struct lmtp_cmd lmtp_cmds[] = {
	{ "LHLO", cmd_lhlo },
	{ "HELO", cmd_helo },
	{ "EHLO", cmd_helo },
	{ "MAIL", cmd_mail },
	{ "RCPT", cmd_rcpt },
	{ "DATA", cmd_data },
	{ "BDAT", cmd_bdat },
	{ "RSET", cmd_rset },
	{ "NOOP", cmd_noop },
	{ "VRFY", cmd_vrfy },
	{ "QUIT", cmd_quit },
	{ NULL, NULL },
};

static void
dispatch(struct lmtp_conn *c, char *line, size_t len)
{
	const struct lmtp_cmd *cmd;
	size_t vlen;
	char *args;

	if (memchr(line, '\0', len) != NULL) {
		reply(c, "500 5.5.2 NUL octet in command");
		bad_command(c);
		return;
	}
	vlen = strcspn(line, " ");
	args = line + vlen;
	while (*args == ' ')
		args++;
	for (cmd = lmtp_cmds; cmd->name != NULL; cmd++)
		if (vlen == 4 && strncasecmp(line, cmd->name, 4) == 0)
			break;
	if (cmd->name == NULL) {
		reply(c, "500 5.5.1 Unknown command");
		bad_command(c);
		return;
	}
	cmd->fn(c, args);
}

/* ---- the message ---- */

static void
spool_put(struct lmtp_conn *c, const char *buf, size_t len)
{
	uint64_t total_max = LMTP_SPOOL_TOTAL_MAX > cf->lmtp_max_message_size ?
	    LMTP_SPOOL_TOTAL_MAX : cf->lmtp_max_message_size;

	if (len == 0 || c->too_big || c->spool_failed || c->spool_full ||
	    c->spool < 0)
		return;
	if (c->spooled + len > cf->lmtp_max_message_size) {
		c->too_big = true;
		return;
	}
	if (spool_total + len > total_max) {
		c->spool_full = true;
		return;
	}
	if (fd_write_all(c->spool, buf, len) < 0) {
		log_warn("session=%s event=spool-failed", c->id);
		c->spool_failed = true;
		return;
	}
	c->spooled += len;
	spool_total += len;
}

static void
deliveries_done(struct lmtp_conn *c)
{
	char from[LMTP_PATH_MAX * 4 + 1], line[LMTP_REPLY_MAX];
	unsigned int ok = 0;

	for (unsigned int i = 0; i < c->nrcpt; i++) {
		struct lmtp_rcpt *r = &c->rcpts[i];
		const struct lmtp_rcpt *o = r->dup_of >= 0 ?
		    &c->rcpts[r->dup_of] : r;
		enum store_result res = o->result;

		if (o->busy) {
			/* RFC 3463 X.4.5: mail system congestion. */
			reply(c, "451 4.4.5 <%s> Too many deliveries to this "
			    "mailbox at once, try again later", r->addr);
			continue;
		}
		delivery_reply(res, cf->lmtp_quota_temporary, r->addr, line,
		    sizeof(line));
		reply(c, "%s", line);
		ok += res == STORE_OK;
	}
	str_sanitize(from, sizeof(from), c->mail.addr, strlen(c->mail.addr));
	log_info("session=%s event=lmtp-message from=\"%s\" size=%llu "
	    "rcpts=%u delivered=%u", c->id, from,
	    (unsigned long long)c->spooled, c->nrcpt, ok);
	transaction_reset(c);
	if (c->gone) {
		lmtp_conn_free(c);
		return;
	}
	if (shutting_down) {
		reply(c, "421 4.3.2 %s Shutting down", hostname);
		c->closing = true;
	}
	/* Inside conn_process() its loop goes on; else start it. */
	if (!c->processing)
		conn_process(c);
}

static bool send_request(struct lmtp_conn *c, struct lmtp_rcpt *r,
    uint32_t type);

static void
rcpt_msg(struct ipc *ipc, struct ipc_msg *msg, void *arg)
{
	struct lmtp_rcpt *r = arg;
	struct lmtp_conn *c = r->conn;
	struct msg_delivered res;
	bool answered = false;

	(void)ipc;
	if (msg != NULL && msg->fd >= 0)
		close(msg->fd);
	if (msg != NULL && msg->type == MSG_DELIVER_RESULT &&
	    proto_take(msg->data, msg->len, &res, sizeof(res)) &&
	    res.req == r->req && res.result >= STORE_OK &&
	    res.result <= STORE_BUSY) {
		answered = true;
		/* A probe's "absent" is no verdict on the message: retry. */
		r->result = r->probing && res.result != STORE_OK ?
		    STORE_TEMPFAIL : (enum store_result)res.result;
	} else if (msg != NULL)
		log_warnx("session=%s event=protocol-error role=deliver",
		    c->id);
	ipc_free(&r->ipc);
	if (!answered && msg == NULL && !r->probing) {
		/*
		 * The worker died before it answered: maybe after storing.
		 * Ask a fresh one whether the message with our token is in
		 * the mailbox, so the MTA's retry cannot make a second copy.
		 */
		r->probing = true;
		if (send_request(c, r, MSG_DELIVER_PROBE))
			return;
	}
	if (!answered)
		r->result = STORE_TEMPFAIL;
	active_put(r->user);
	if (--c->delivering == 0)
		deliveries_done(c);
}

/*
 * A channel to the deliver worker of r's uid, through the master, with one
 * request on it: MSG_DELIVER_REQ with the spooled message, or
 * MSG_DELIVER_PROBE for r's token. false when it could not be sent.
 */
static bool
send_request(struct lmtp_conn *c, struct lmtp_rcpt *r, uint32_t type)
{
	struct msg_deliver *m;
	bool ok = false;

	if ((m = calloc(1, sizeof(*m))) == NULL)
		return false;
	if ((r->ipc = deliver_channel(r->uid, r->gid, rcpt_msg, r)) == NULL) {
		log_warnx("session=%s event=deliver-channel-failed", c->id);
		free(m);
		return false;
	}
	m->req = r->req = next_req++;
	str_copy(m->session, sizeof(m->session), c->id);
	str_copy(m->user, sizeof(m->user), r->user);
	str_copy(m->sender, sizeof(m->sender), c->mail.addr);
	str_copy(m->rcpt, sizeof(m->rcpt), r->addr);
	memcpy(m->token, r->token, sizeof(m->token));
	if (ipc_send(r->ipc, type, m, sizeof(*m),
	    type == MSG_DELIVER_REQ ? c->spool : -1) < 0)
		ipc_free(&r->ipc);
	else
		ok = true;
	free(m);
	return ok;
}

static void
deliver_one(struct lmtp_conn *c, struct lmtp_rcpt *r)
{
	unsigned char rnd[STORE_TOKEN_LEN / 2];

	r->result = STORE_TEMPFAIL;
	if (!active_take(r->user)) {
		r->busy = true;
		return;
	}
	if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd)) {
		active_put(r->user);
		return;
	}
	str_hex(r->token, rnd, sizeof(rnd));
	if (!send_request(c, r, MSG_DELIVER_REQ)) {
		active_put(r->user);
		return;
	}
	c->delivering++;
}

/* The end of DATA, or of BDAT LAST: one reply per recipient follows. */
static void
data_end(struct lmtp_conn *c)
{
	c->mode = MODE_CMD;
	if (c->too_big || c->spool_failed || c->spool_full ||
	    fcntl(c->spool, F_ADD_SEALS, LMTP_SEALS) < 0) {
		for (unsigned int i = 0; i < c->nrcpt; i++)
			reply(c, c->too_big ? "552 5.3.4 <%s> Message too big "
			    "for the system" : c->spool_full ?
			    "452 4.3.1 <%s> Insufficient system storage, try "
			    "again later" :
			    "451 4.3.0 <%s> Cannot spool the message",
			    c->rcpts[i].addr);
		transaction_reset(c);
		return;
	}
	for (unsigned int i = 0; i < c->nrcpt; i++) {
		struct lmtp_rcpt *r = &c->rcpts[i];

		/* One copy per mailbox, however often it was named. */
		for (unsigned int j = 0; j < i; j++) {
			if (c->rcpts[j].dup_of < 0 &&
			    strcmp(c->rcpts[j].user, r->user) == 0) {
				r->dup_of = (int)j;
				break;
			}
		}
		if (r->dup_of < 0)
			deliver_one(c, r);
	}
	if (c->delivering == 0)
		deliveries_done(c);
}

/* Message octets from the input buffer; false when more input is needed. */
static bool
take_data(struct lmtp_conn *c)
{
	char out[LMTP_IN_MAX + 1];
	size_t n = iobuf_len(&c->in), used, olen;

	if (c->mode == MODE_BDAT && c->bdat_left < n)
		n = (size_t)c->bdat_left;
	if (n == 0 && !(c->mode == MODE_BDAT && c->bdat_left == 0))
		return false;
	used = lmtp_data_feed(&c->dec, iobuf_data(&c->in), n, out, &olen);
	if (c->mode == MODE_DATA || c->bdat_error == NULL)
		spool_put(c, out, olen);
	iobuf_consume(&c->in, used);
	if (c->mode == MODE_DATA) {
		if (c->dec.done)
			data_end(c);
		return true;
	}
	c->bdat_left -= used;
	if (c->bdat_left > 0)
		return true;
	/* The chunk is complete. */
	c->mode = MODE_CMD;
	if (c->bdat_error != NULL) {
		reply(c, "%s", c->bdat_error);
		c->bdat_error = NULL;
		bad_command(c);
		return true;
	}
	if (!c->bdat_last) {
		reply(c, "250 2.0.0 %llu octets received",
		    (unsigned long long)c->spooled);
		return true;
	}
	olen = lmtp_data_finish(&c->dec, out);
	spool_put(c, out, olen);
	data_end(c);
	return true;
}

/* ---- connection I/O ---- */

static size_t
out_pending(const struct lmtp_conn *c)
{
	return iobuf_len(&c->out);
}

static void
conn_process(struct lmtp_conn *c)
{
	c->processing = true;
	while (!c->closing && !c->gone && !c->waiting && c->delivering == 0 &&
	    out_pending(c) < LMTP_OUT_HIGH) {
		char *line;
		size_t len, used;

		if (c->mode != MODE_CMD) {
			if (!take_data(c))
				break;
			continue;
		}
		line = iobuf_getline(&c->in, &len, &used);
		if ((line == NULL && iobuf_len(&c->in) >= LMTP_LINE_MAX) ||
		    (line != NULL && used > LMTP_LINE_MAX)) {
			/* RFC 5321 sec. 4.5.3.1.4; resyncing is guesswork. */
			reply(c, "500 5.5.2 Line too long");
			c->closing = true;
			break;
		}
		if (line == NULL)
			break;
		dispatch(c, line, len);
		iobuf_consume(&c->in, used);
	}
	c->processing = false;
	if (c->gone) {
		/* Its deliveries ended inside the loop. */
		if (c->delivering == 0)
			lmtp_conn_free(c);
		return;
	}
	conn_update(c);
}

static void
conn_flush(struct lmtp_conn *c)
{
	while (out_pending(c) > 0) {
		ssize_t n = iobuf_write(&c->out, &c->stream);

		if (n < 0 && errno == EAGAIN)
			return;
		if (n <= 0) {
			c->closing = true;
			iobuf_free(&c->out);
			return;
		}
		ev_timer_start(ev, &c->timer, LMTP_TIMEOUT_MS);
	}
	/* Drained: an idle connection holds no output buffer. */
	iobuf_shrink(&c->out);
}

static void conn_io(struct ev *e, int fd, unsigned int events, void *arg);

static void
conn_update(struct lmtp_conn *c)
{
	unsigned int want = 0;

	if (c->gone || c->fd < 0)
		return;
	conn_flush(c);
	if (c->eof && !c->closing && !c->waiting && c->delivering == 0 &&
	    out_pending(c) < LMTP_OUT_HIGH) {
		/* Nothing more can come: a message cut short is dropped. */
		if (c->mode != MODE_CMD)
			log_info("session=%s event=lmtp-aborted "
			    "reason=\"client gone mid-message\"", c->id);
		c->closing = true;
	}
	if (c->closing && out_pending(c) == 0) {
		conn_close(c);
		return;
	}
	if (!c->closing && !c->eof && iobuf_space(&c->in) > 0)
		want |= EV_READ;
	if (out_pending(c) > 0)
		want |= EV_WRITE;
	ev_io_set(ev, c->fd, want, conn_io, c);
}

static void
conn_io(struct ev *e, int fd, unsigned int events, void *arg)
{
	struct lmtp_conn *c = arg;

	(void)e;
	(void)fd;
	if ((events & EV_READ) && !c->eof && iobuf_space(&c->in) > 0) {
		ssize_t n = iobuf_read(&c->in, &c->stream);

		if (n == 0) {
			/* conn_update() ends it once the input is used. */
			c->eof = true;
		} else if (n < 0 && errno != EAGAIN) {
			/* Mid-DATA: the spool goes, nothing is delivered. */
			if (c->mode != MODE_CMD)
				log_info("session=%s event=lmtp-aborted "
				    "reason=\"client gone mid-message\"", c->id);
			conn_close(c);
			return;
		}
		if (n > 0)
			ev_timer_start(ev, &c->timer, LMTP_TIMEOUT_MS);
	}
	conn_process(c);
}

static void
conn_timeout(struct ev *e, void *arg)
{
	struct lmtp_conn *c = arg;

	(void)e;
	if (c->delivering > 0 || c->waiting) {
		ev_timer_start(ev, &c->timer, LMTP_TIMEOUT_MS);
		return;
	}
	log_info("session=%s event=timeout", c->id);
	reply(c, "421 4.4.2 %s Timeout, closing", hostname);
	c->closing = true;
	conn_update(c);
}

static void
on_accept(struct ev *e, int lfd, unsigned int events, void *arg)
{
	(void)e;
	(void)events;
	(void)arg;
	for (int i = 0; i < 64; i++) {
		struct sockaddr_storage ss;
		socklen_t sl = sizeof(ss);
		struct lmtp_conn *c;
		int fd = accept4(lfd, (struct sockaddr *)&ss, &sl,
		    SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (fd < 0)
			return;
		if (nconns >= LMTP_CONNS_MAX || shutting_down ||
		    (c = calloc(1, sizeof(*c))) == NULL) {
			static const char busy[] = "421 4.3.2 Too busy, try "
			    "later\r\n";

			(void)!write(fd, busy, sizeof(busy) - 1);
			close(fd);
			continue;
		}
		c->fd = fd;
		conn_init_plain(&c->stream, fd);
		iobuf_init(&c->in, c->in_buf, sizeof(c->in_buf), 0, LMTP_IN_MAX,
		    0);
		iobuf_init(&c->out, NULL, 0, LMTP_OUT_FIRST, LMTP_OUT_MAX, 0);
		c->spool = -1;
		session_new_id(c->id);
		if (ss.ss_family == AF_UNIX)
			str_copy(c->peer, sizeof(c->peer), "unix");
		else
			net_addr_str(&ss, c->peer, sizeof(c->peer), NULL, 0,
			    NULL);
		ev_timer_init(&c->timer, conn_timeout, c);
		ev_timer_start(ev, &c->timer, LMTP_TIMEOUT_MS);
		LIST_PUSH(conns, c);
		nconns++;
		log_info("session=%s event=lmtp-connect peer=%s", c->id,
		    c->peer);
		reply(c, "220 %s LMTP Postino ready", hostname);
		conn_update(c);
	}
}

/* ---- channels ---- */

/* Auth worker idx is gone: its lookups get 451, the MTA retries. */
static void
fail_lookups(unsigned int idx)
{
	struct lmtp_conn *c, *next;

	for (c = conns; c != NULL; c = next) {
		next = c->next;
		if (c->waiting && c->lookup_req != 0 &&
		    c->lookup_auth == idx) {
			rcpt_looked_up(c, NULL);
			conn_process(c);
		}
	}
}

static void
auth_msg(unsigned int idx, struct ipc_msg *msg)
{
	struct msg_account a;
	struct lmtp_conn *c;

	if (msg == NULL) {
		fail_lookups(idx);
		return;
	}
	if (msg->type != MSG_AUTH_ACCOUNT ||
	    !proto_take(msg->data, msg->len, &a, sizeof(a)))
		return;
	c = idmap_get(lookups, a.req);
	if (c != NULL && c->waiting && c->lookup_req == a.req) {
		rcpt_looked_up(c, &a);
		conn_process(c);
	}
	explicit_bzero(&a, sizeof(a));
}

static void
stop_all(void)
{
	struct lmtp_conn *c, *next;

	if (!shutting_down) {
		shutting_down = true;
		for (unsigned int i = 0; i < nlisten; i++) {
			ev_io_del(ev, listen_fds[i]);
			close(listen_fds[i]);
		}
	}
	/* Deliveries under way finish; their replies go out first. */
	for (c = conns; c != NULL; c = next) {
		next = c->next;
		if (c->delivering > 0)
			continue;
		reply(c, "421 4.3.2 %s Shutting down", hostname);
		c->closing = true;
		conn_update(c);
	}
	if (conns == NULL)
		ev_stop(ev);
}

static const struct role lmtp_role = {
	.stop = stop_all,
	/* Ready with a way to look recipients up. */
	.auth_up = role_ready,
	.auth_msg = auth_msg,
};

int
lmtp_main(const struct config *config, unsigned int n)
{
	cf = config;
	log_set_ident("postinod/lmtp");
	if (n != cf->nlmtp_listen || n > CONFIG_LMTP_LISTEN_MAX)
		fatalx("the configuration changed since start-up; restart");
	if (cf->lmtp_hostname[0] != '\0')
		str_copy(hostname, sizeof(hostname), cf->lmtp_hostname);
	else if (gethostname(hostname, sizeof(hostname) - 1) < 0 ||
	    hostname[0] == '\0')
		str_copy(hostname, sizeof(hostname), "localhost");
	/* The name goes into every reply line: printable, no spaces. */
	for (char *h = hostname; *h != '\0'; h++)
		if (*h <= ' ' || *h >= 0x7f)
			*h = '_';
	role_drop(&(struct role_user){ .key = "login_user",
	    .name = cf->login_user, .chroot = cf->login_chroot });
	ev = role_start(&lmtp_role);
	lookups = idmap_new();
	if (lookups == NULL)
		fatal("idmap_new");
	signal(SIGPIPE, SIG_IGN);
	for (unsigned int i = 0; i < n; i++) {
		listen_fds[i] = ROLE_LISTEN_FD + (int)i;
		net_set_nonblock(listen_fds[i]);
		if (ev_io_set(ev, listen_fds[i], EV_READ, on_accept, NULL) < 0)
			fatal("listener %u", i);
	}
	nlisten = n;
	role_run();
	while (conns != NULL) {
		/* Only at a forced stop: channels close with the process. */
		conns->delivering = 0;
		lmtp_conn_free(conns);
	}
	while (active != NULL) {
		struct lmtp_active *a = active;

		active = a->next;
		free(a);
	}
	idmap_free(&lookups);
	role_end();
	return 0;
}
