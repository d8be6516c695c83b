/*
 * The auth role: reads the password database and nothing else, talks to no
 * network. Login workers ask it to verify credentials and get a one-time
 * ticket; a mail worker redeems the ticket for the account before it opens
 * any mailbox, so a compromised login worker can neither learn a hash nor
 * open a mailbox it has no ticket for.
 */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "../auth/auth.h"
#include "../lib/ev.h"
#include "../lib/ipc.h"
#include "../lib/log.h"
#include "../lib/priv.h"
#include "../auth/sasl.h"
#include "penalty.h"
#include "proto.h"
#include "roles.h"

/* A ticket is redeemed within milliseconds; a minute covers a loaded host. */
#define TICKET_TTL_MS	60000
#define TICKETS_MAX	4096

struct ticket {
	char		id[PROTO_TICKET_LEN + 1];
	char		user[AUTH_USER_MAX + 1];
	uint64_t	expires;
};

static const struct config *cf;
static const struct auth_ops *ops;
static struct auth_db *db;
static struct ticket tickets[TICKETS_MAX];
static uid_t mail_uid;
static gid_t mail_gid;
static bool have_mail_user;
/*
 * SASL exchanges under way, one per login connection at most, keyed by the
 * channel and the login worker's request id. Bounded; a stale one (its
 * client vanished without a cancel) is dropped after SASL_EXCHANGE_TTL_MS.
 */
#define SASL_EXCHANGES_MAX	4096
#define SASL_EXCHANGE_TTL_MS	(10u * 60 * 1000)

struct exchange {
	struct ipc		*ipc;
	uint64_t		 req;
	uint64_t		 started;
	struct sasl_session	*sasl;
};

static struct exchange exchanges[SASL_EXCHANGES_MAX];
/* PLAIN and LOGIN are offered on plaintext connections only by one of these. */
static struct sasl_server sasl_secure, sasl_plain;

/* Clients: login and mail workers, a few dozen. Kept to free them at exit. */
#define CLIENTS_MAX	1024
static struct ipc *clients[CLIENTS_MAX];

/* Where this user's mail is read: the passwd-file's uid, else mail_user. */
static int
account_ids(const struct auth_user *u, uint32_t *uid_r, uint32_t *gid_r)
{
	if (!priv_is_root()) {
		*uid_r = getuid();
		*gid_r = getgid();
		return 0;
	}
	if (u->has_uid) {
		*uid_r = u->uid;
		*gid_r = u->has_gid ? u->gid : (have_mail_user ? mail_gid : u->uid);
	} else if (have_mail_user) {
		*uid_r = mail_uid;
		*gid_r = u->has_gid ? u->gid : mail_gid;
	} else {
		log_warnx("user=%s event=config-error reason=\"no uid in "
		    "passwd_file and no mail_user\"", u->name);
		return -1;
	}
	if (*uid_r == 0) {
		log_warnx("user=%s event=config-error reason=\"mail uid 0 "
		    "refused\"", u->name);
		return -1;
	}
	return 0;
}

static int
ticket_issue(const char *user, char id_r[PROTO_TICKET_LEN + 1])
{
	unsigned char r[PROTO_TICKET_LEN / 2];
	uint64_t now = ev_now_ms();
	struct ticket *slot = NULL;

	for (size_t i = 0; i < TICKETS_MAX; i++) {
		if (tickets[i].expires <= now) {
			slot = &tickets[i];
			break;
		}
	}
	if (slot == NULL || getrandom(r, sizeof(r), 0) != (ssize_t)sizeof(r))
		return -1;
	str_hex(slot->id, r, sizeof(r));
	str_copy(slot->user, sizeof(slot->user), user);
	slot->expires = now + TICKET_TTL_MS;
	memcpy(id_r, slot->id, sizeof(slot->id));
	return 0;
}

static struct ticket *
ticket_redeem(const char *id)
{
	uint64_t now = ev_now_ms();

	if (strlen(id) != PROTO_TICKET_LEN)
		return NULL;
	for (size_t i = 0; i < TICKETS_MAX; i++) {
		struct ticket *t = &tickets[i];

		if (t->expires > now && memcmp(t->id, id, PROTO_TICKET_LEN) == 0) {
			t->expires = 0;		/* one use only */
			return t;
		}
	}
	return NULL;
}

static void
handle_verify(struct ipc *ipc, const struct ipc_msg *msg)
{
	struct msg_verify *v = malloc(sizeof(*v));
	struct msg_verdict out = { 0 };
	struct auth_user u;
	enum auth_result r;

	if (v == NULL || !proto_take(msg->data, msg->len, v, sizeof(*v)) ||
	    !PROTO_STR_OK(v->user) || !PROTO_STR_OK(v->pass) ||
	    !PROTO_STR_OK(v->timestamp) || !PROTO_STR_OK(v->ip)) {
		log_warnx("event=protocol-error role=login msg=verify");
		free(v);
		return;
	}
	out.req = v->req;
	if (v->method == METHOD_APOP)
		r = ops->apop(db, v->user, v->timestamp, v->pass, &u);
	else
		r = ops->verify(db, v->user, v->pass, &u);
	if (r == AUTH_OK && (account_ids(&u, &out.uid, &out.gid) < 0 ||
	    ticket_issue(u.name, out.ticket) < 0))
		r = AUTH_TEMPFAIL;
	/* The penalty grows per client address, across all login workers. */
	if (r == AUTH_PERMFAIL)
		out.delay_ms = penalty_fail(v->ip, cf->auth_fail_delay_ms,
		    ev_now_ms());
	else if (r == AUTH_OK)
		penalty_success(v->ip);
	else
		out.delay_ms = cf->auth_fail_delay_ms;
	explicit_bzero(v, sizeof(*v));
	free(v);
	out.result = r;
	ipc_send(ipc, MSG_AUTH_VERDICT, &out, sizeof(out), -1);
}

static void
handle_redeem(struct ipc *ipc, const struct ipc_msg *msg)
{
	struct msg_redeem rq;
	struct msg_account out = { 0 };
	struct ticket *t;

	if (!proto_take(msg->data, msg->len, &rq, sizeof(rq)) ||
	    !PROTO_STR_OK(rq.ticket)) {
		log_warnx("event=protocol-error role=mail msg=redeem");
		return;
	}
	out.req = rq.req;
	t = ticket_redeem(rq.ticket);
	if (t == NULL) {
		log_warnx("event=ticket-refused");
		out.result = AUTH_PERMFAIL;
	} else {
		out.result = ops->lookup(db, t->user, &out.user);
		if (out.result == AUTH_OK &&
		    account_ids(&out.user, &out.uid, &out.gid) < 0)
			out.result = AUTH_TEMPFAIL;
	}
	ipc_send(ipc, MSG_AUTH_ACCOUNT, &out, sizeof(out), -1);
}

/*
 * A delivery's recipient (from the LMTP role) or account (from a deliver
 * worker): the same answer as a redeemed ticket, without one. It tells
 * whether a user exists, which LMTP's RCPT must say anyway (RFC 2033
 * sec. 4.2), and never anything secret.
 */
static void
handle_lookup(struct ipc *ipc, const struct ipc_msg *msg)
{
	struct msg_lookup rq;
	struct msg_account out = { 0 };

	if (!proto_take(msg->data, msg->len, &rq, sizeof(rq)) ||
	    !PROTO_STR_OK(rq.user)) {
		log_warnx("event=protocol-error msg=lookup");
		return;
	}
	out.req = rq.req;
	out.result = auth_name_valid(rq.user) ?
	    ops->lookup(db, rq.user, &out.user) : AUTH_PERMFAIL;
	if (out.result == AUTH_OK &&
	    account_ids(&out.user, &out.uid, &out.gid) < 0)
		out.result = AUTH_TEMPFAIL;
	ipc_send(ipc, MSG_AUTH_ACCOUNT, &out, sizeof(out), -1);
}

static struct exchange *
exchange_find(struct ipc *ipc, uint64_t req)
{
	for (size_t i = 0; i < SASL_EXCHANGES_MAX; i++)
		if (exchanges[i].sasl != NULL && exchanges[i].ipc == ipc &&
		    exchanges[i].req == req)
			return &exchanges[i];
	return NULL;
}

static struct exchange *
exchange_new(struct ipc *ipc, uint64_t req)
{
	uint64_t now = ev_now_ms();
	struct exchange *slot = NULL;

	for (size_t i = 0; i < SASL_EXCHANGES_MAX; i++) {
		struct exchange *x = &exchanges[i];

		if (x->sasl != NULL && now - x->started > SASL_EXCHANGE_TTL_MS)
			sasl_free(&x->sasl);
		if (x->sasl == NULL && slot == NULL)
			slot = x;
	}
	if (slot != NULL) {
		slot->ipc = ipc;
		slot->req = req;
		slot->started = now;
	}
	return slot;
}

/* Drop every exchange of a channel that closed. */
static void
exchanges_drop(struct ipc *ipc)
{
	for (size_t i = 0; i < SASL_EXCHANGES_MAX; i++)
		if (exchanges[i].ipc == ipc)
			sasl_free(&exchanges[i].sasl);
}

static void
handle_sasl(struct ipc *ipc, const struct ipc_msg *msg)
{
	struct msg_sasl *m = malloc(sizeof(*m));
	struct msg_sasl_reply out = { 0 };
	struct exchange *x;
	struct auth_user u;
	size_t outlen = 0;
	enum sasl_step step;

	if (m == NULL || !proto_take(msg->data, msg->len, m, sizeof(*m)) ||
	    !PROTO_STR_OK(m->mech) || !PROTO_STR_OK(m->ip) ||
	    m->inlen > sizeof(m->in) ||
	    m->channel.end_point_len > sizeof(m->channel.end_point) ||
	    m->channel.exporter_len > sizeof(m->channel.exporter)) {
		log_warnx("event=protocol-error role=login msg=sasl");
		free(m);
		return;
	}
	out.req = m->req;
	x = exchange_find(ipc, m->req);
	if (m->kind == SASL_MSG_CANCEL) {
		if (x != NULL)
			sasl_free(&x->sasl);
		goto done;
	}
	if (m->kind == SASL_MSG_START) {
		if (x != NULL)
			sasl_free(&x->sasl);
		x = exchange_new(ipc, m->req);
		if (x == NULL || sasl_start(&x->sasl, m->plaintext_ok ?
		    &sasl_plain : &sasl_secure, m->mech,
		    m->channel.tls ? &m->channel : NULL) < 0) {
			out.step = x == NULL || errno != ENOENT ? SASL_TEMPFAIL :
			    SASL_BAD;
			goto reply;
		}
	} else if (x == NULL) {
		out.step = SASL_BAD;
		goto reply;
	}
	step = sasl_step(x->sasl, m->kind == SASL_MSG_START && !m->has_in ?
	    NULL : m->in, m->inlen, out.out, sizeof(out.out), &outlen, &u);
	out.step = step;
	out.outlen = (uint32_t)outlen;
	str_copy(out.user, sizeof(out.user), step == SASL_OK ? u.name :
	    sasl_user(x->sasl));
	if (step == SASL_OK && (account_ids(&u, &out.uid, &out.gid) < 0 ||
	    ticket_issue(u.name, out.ticket) < 0))
		out.step = SASL_TEMPFAIL;
	if (out.step == SASL_OK)
		penalty_success(m->ip);
	else if (out.step == SASL_FAIL)
		out.delay_ms = penalty_fail(m->ip, cf->auth_fail_delay_ms,
		    ev_now_ms());
	else if (out.step == SASL_TEMPFAIL)
		out.delay_ms = cf->auth_fail_delay_ms;
	if (out.step != SASL_CONTINUE)
		sasl_free(&x->sasl);
	explicit_bzero(&u, sizeof(u));
reply:
	ipc_send(ipc, MSG_SASL_REPLY, &out, sizeof(out), -1);
done:
	explicit_bzero(m, sizeof(*m));
	free(m);
	explicit_bzero(&out, sizeof(out));
}

static void
client_msg(struct ipc *ipc, struct ipc_msg *msg, void *arg)
{
	(void)arg;
	if (msg == NULL) {
		for (size_t i = 0; i < CLIENTS_MAX; i++)
			if (clients[i] == ipc)
				clients[i] = NULL;
		exchanges_drop(ipc);
		ipc_free(&ipc);
		return;
	}
	if (msg->fd >= 0)
		close(msg->fd);
	switch (msg->type) {
	case MSG_AUTH_VERIFY:
		handle_verify(ipc, msg);
		break;
	case MSG_AUTH_REDEEM:
		handle_redeem(ipc, msg);
		break;
	case MSG_SASL_STEP:
		handle_sasl(ipc, msg);
		break;
	case MSG_AUTH_LOOKUP:
		handle_lookup(ipc, msg);
		break;
	default:
		log_warnx("event=protocol-error msg=%u", msg->type);
	}
	explicit_bzero(msg->data, msg->len);
}

static void
master_msg(struct ipc *ipc, struct ipc_msg *msg, void *arg)
{
	struct ev *ev = arg;

	(void)ipc;
	if (msg == NULL) {
		ev_stop(ev);
		return;
	}
	if (msg->type == MSG_AUTH_ATTACH && msg->fd >= 0) {
		size_t i;

		for (i = 0; i < CLIENTS_MAX && clients[i] != NULL; i++)
			;
		if (i == CLIENTS_MAX ||
		    (clients[i] = ipc_new(ev, msg->fd, client_msg, NULL)) == NULL) {
			log_warnx("event=attach-failed");
			close(msg->fd);
		}
		return;
	}
	if (msg->fd >= 0)
		close(msg->fd);
	if (msg->type == MSG_AUTH_SECRET && msg->len == SASL_SECRET_LEN) {
		memcpy(sasl_secure.secret, msg->data, SASL_SECRET_LEN);
		memcpy(sasl_plain.secret, msg->data, SASL_SECRET_LEN);
		explicit_bzero(msg->data, msg->len);
	}
	if (msg->type == MSG_SHUTDOWN)
		ev_stop(ev);
}

static void
on_term(struct ev *ev, int signo, void *arg)
{
	(void)signo;
	(void)arg;
	ev_stop(ev);
}

int
authd_main(const struct config *config)
{
	char err[ERR_LEN];
	struct ev *ev;
	struct ipc *master;

	cf = config;
	log_set_ident("postinod/auth");
	ops = auth_lookup("passwd-file");
	if (ops == NULL || ops->open(&db, cf->passwd_file, err) < 0)
		fatalx("passwd_file: %s", ops ? err : "no backend");
	if (cf->mail_user[0] != '\0') {
		if (priv_user(cf->mail_user, &mail_uid, &mail_gid) < 0)
			fatalx("mail_user: no such user '%s'", cf->mail_user);
		have_mail_user = true;
	}
	sasl_secure = (struct sasl_server){ .db = db, .ops = ops,
	    .flags = strstr(cf->auth_mechanisms, "CRAM-MD5") != NULL ?
	    SASL_ALLOW_CRAM_MD5 : 0 };
	/* Until the master's secret arrives (first message), a random one. */
	if (getrandom(sasl_secure.secret, sizeof(sasl_secure.secret), 0) !=
	    (ssize_t)sizeof(sasl_secure.secret))
		fatal("getrandom");
	sasl_plain = sasl_secure;
	sasl_plain.flags |= SASL_ALLOW_PLAINTEXT;
	ev = ev_new();
	if (ev == NULL)
		fatal("ev_new");
	ev_signal(ev, SIGTERM, on_term, NULL);
	ev_signal(ev, SIGINT, on_term, NULL);
	master = ipc_new(ev, ROLE_MASTER_FD, master_msg, ev);
	if (master == NULL)
		fatal("master channel");
	ev_run(ev);
	for (size_t i = 0; i < SASL_EXCHANGES_MAX; i++)
		sasl_free(&exchanges[i].sasl);
	explicit_bzero(&sasl_secure, sizeof(sasl_secure));
	explicit_bzero(&sasl_plain, sizeof(sasl_plain));
	for (size_t i = 0; i < CLIENTS_MAX; i++)
		ipc_free(&clients[i]);
	ipc_free(&master);
	ops->close(&db);
	ev_free(&ev);
	return 0;
}
