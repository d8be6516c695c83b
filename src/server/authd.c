/*
 * The auth role: reads the password database and nothing else, talks to no
 * network. Login workers ask it to verify credentials and get a one-time
 * ticket; a mail worker redeems the ticket for the account before it opens
 * any mailbox, so a compromised login worker can neither learn a hash nor
 * open a mailbox it has no ticket for.
 *
 * There are auth_workers of these; a login worker sends each request to
 * the one penalty_route() names for its client's network, so a network's
 * penalty lives in one process. Requests wait in a bounded queue until
 * their network is out of penalty, one check per loop turn, and are
 * dropped unchecked when their client leaves or their deadline passes.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "../auth/auth.h"
#include "../auth/auth_cache.h"
#include "../lib/ev.h"
#include "../lib/ipc.h"
#include "../lib/list.h"
#include "../lib/log.h"
#include "../lib/priv.h"
#include "../lib/sandbox.h"
#include "../auth/sasl.h"
#include "limits.h"
#include "oauth_helper.h"
#include "penalty.h"
#include "role.h"
#include "rolemsg.h"
#include "roles.h"

enum ticket_chain { CHAIN_ID, CHAIN_USER, CHAIN_ADDR, CHAINS };

struct ticket {
	char		id[PROTO_TICKET_LEN + 1];
	char		user[AUTH_USER_MAX + 1];
	char		ip[SESSION_IP_LEN];
	uint64_t	expires;	/* 0: a free slot */
	int32_t		next[CHAINS];	/* per chain; -1 ends it */
};

/* A verification request or SASL step waiting for its turn. */
struct request {
	struct request	*prev, *next;
	struct ipc	*ipc;
	uint32_t	 type;		/* MSG_AUTH_VERIFY or MSG_SASL_STEP */
	uint64_t	 req;
	uint64_t	 deadline;	/* CLOCK_MONOTONIC ms */
	uint64_t	 ready;		/* its network's penalty ends */
	char		 net[PENALTY_NET_LEN];
	const char	*ip;		/* in the message below */
	union {
		struct msg_verify v;
		struct msg_sasl	  s;
	} m;
};

static const struct config *cf;
static const struct auth_ops *ops;
static struct auth_db *db;
static struct ev *ev;
static unsigned int worker_index;
static struct ticket tickets[TICKETS_MAX];
static int32_t ticket_heads[CHAINS][TICKET_BUCKETS];
static int32_t ticket_free;
static uint32_t ticket_seed;
static struct request *queue_head, *queue_tail;
static unsigned int queued;
static struct ev_timer work_timer;
static unsigned int drain_turns;
static uid_t mail_uid;
static gid_t mail_gid;
static bool have_mail_user;
/* Started by root: account uids come from the passwd-file, not getuid(). */
static bool as_root;

/*
 * SASL exchanges under way, keyed by the channel and the login worker's
 * request id; a stale one goes after SASL_EXCHANGE_TTL_MS.
 */
struct exchange {
	struct ipc		*ipc;
	uint64_t		 req;
	uint64_t		 started;
	struct sasl_session	*sasl;
	/* Waiting for the token-check helper (0: not waiting). */
	uint64_t		 check;
	char			 ip[SESSION_IP_LEN];
	char			 net[PENALTY_NET_LEN];
};

static struct exchange exchanges[SASL_EXCHANGES_MAX];
/* PLAIN and LOGIN are offered on plaintext connections only by one of these. */
static struct sasl_server sasl_secure, sasl_plain;
/* oauth2_jwt_key, loaded before the sandbox; NULL: no OAuth. */
static struct jwt_key *oauth_key;
/* oauth2_token_command: the helper that runs it (oauth_helper.h). */
static struct ipc *oauth_ipc;
static uint64_t oauth_seq;

/*
 * The attached channels, dense, and their poll entries beside them: the
 * check between two hashes polls exactly these (it scanned all
 * CLIENTS_MAX slots and rebuilt the poll set every turn).
 */
static struct ipc *clients[CLIENTS_MAX];
static struct pollfd client_pfd[CLIENTS_MAX];
static size_t nclients;

/* Where this user's mail is read: the passwd-file's uid, else mail_user. */
static int
account_ids(const struct auth_user *u, uint32_t *uid_r, uint32_t *gid_r)
{
	if (!as_root) {
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

/* ---- tickets: three hash chains over one table of slots --------------- */

static uint32_t
ticket_hash(const char *s)
{
	uint32_t h = 2166136261u ^ ticket_seed;	/* FNV-1a, seeded */

	for (; *s != '\0'; s++) {
		h ^= (unsigned char)*s;
		h *= 16777619u;
	}
	return h % TICKET_BUCKETS;
}

static const char *
ticket_key(const struct ticket *t, enum ticket_chain c)
{
	return c == CHAIN_ID ? t->id : c == CHAIN_USER ? t->user : t->ip;
}

static void
tickets_init(void)
{
	for (int c = 0; c < CHAINS; c++)
		for (size_t b = 0; b < TICKET_BUCKETS; b++)
			ticket_heads[c][b] = -1;
	for (int32_t i = 0; i < TICKETS_MAX; i++)
		tickets[i].next[CHAIN_ID] = i + 1 < TICKETS_MAX ? i + 1 : -1;
	ticket_free = 0;
	if (getrandom(&ticket_seed, sizeof(ticket_seed), 0) !=
	    (ssize_t)sizeof(ticket_seed))
		fatal("getrandom");
}

/* Take slot i out of its three chains and put it on the free list. */
static void
ticket_drop(int32_t i)
{
	struct ticket *t = &tickets[i];

	for (int c = 0; c < CHAINS; c++) {
		int32_t *link = &ticket_heads[c][ticket_hash(ticket_key(t, c))];

		while (*link >= 0 && *link != i)
			link = &tickets[*link].next[c];
		if (*link == i)
			*link = t->next[c];
	}
	explicit_bzero(t, sizeof(*t));
	t->next[CHAIN_ID] = ticket_free;
	ticket_free = i;
}

/*
 * Walk key's chain c: drop expired tickets met on the way, count the live
 * ones with this key, return the first (or -1).
 */
static int32_t
ticket_walk(enum ticket_chain c, const char *key, uint64_t now,
    unsigned int *count_r)
{
	int32_t i = ticket_heads[c][ticket_hash(key)], found = -1;
	unsigned int n = 0;

	while (i >= 0) {
		struct ticket *t = &tickets[i];
		int32_t next = t->next[c];

		if (t->expires <= now)
			ticket_drop(i);
		else if (strcmp(ticket_key(t, c), key) == 0) {
			if (found < 0)
				found = i;
			n++;
		}
		i = next;
	}
	if (count_r != NULL)
		*count_r = n;
	return found;
}

/* A full table: reclaim every expired slot (rare: the caps keep it free). */
static void
tickets_sweep(uint64_t now)
{
	for (int32_t i = 0; i < TICKETS_MAX; i++)
		if (tickets[i].expires != 0 && tickets[i].expires <= now)
			ticket_drop(i);
}

/* 0 with the ticket in id_r, or -1 with *reason_r. */
static int
ticket_issue(const char *user, const char *ip, char id_r[PROTO_TICKET_LEN + 1],
    uint32_t *reason_r)
{
	unsigned char r[PROTO_TICKET_LEN / 2];
	uint64_t now = ev_now_ms();
	unsigned int per_user, per_addr;
	struct ticket *t;
	int32_t i;

	*reason_r = REFUSE_TICKETS;
	ticket_walk(CHAIN_USER, user, now, &per_user);
	ticket_walk(CHAIN_ADDR, ip, now, &per_addr);
	if (per_user >= TICKETS_PER_USER || per_addr >= TICKETS_PER_ADDR)
		return -1;
	if (ticket_free < 0)
		tickets_sweep(now);
	*reason_r = REFUSE_BUSY;
	if (ticket_free < 0 ||
	    getrandom(r, sizeof(r), 0) != (ssize_t)sizeof(r))
		return -1;
	i = ticket_free;
	t = &tickets[i];
	ticket_free = t->next[CHAIN_ID];
	str_hex(t->id, r, sizeof(r));
	/* The first two digits name this worker: the mail role redeems here. */
	t->id[0] = "0123456789abcdef"[worker_index >> 4 & 15];
	t->id[1] = "0123456789abcdef"[worker_index & 15];
	str_copy(t->user, sizeof(t->user), user);
	str_copy(t->ip, sizeof(t->ip), ip);
	t->expires = now + TICKET_TTL_MS;
	for (int c = 0; c < CHAINS; c++) {
		int32_t *head = &ticket_heads[c][ticket_hash(ticket_key(t, c))];

		t->next[c] = *head;
		*head = i;
	}
	memcpy(id_r, t->id, sizeof(t->id));
	explicit_bzero(r, sizeof(r));
	return 0;
}

/* Take a live ticket out of the table (one use only); false if none. */
static bool
ticket_take(const char *id, char user_r[AUTH_USER_MAX + 1])
{
	int32_t i;

	if (strlen(id) != PROTO_TICKET_LEN)
		return false;
	i = ticket_walk(CHAIN_ID, id, ev_now_ms(), NULL);
	if (i < 0)
		return false;
	if (user_r != NULL)
		memcpy(user_r, tickets[i].user, sizeof(tickets[i].user));
	ticket_drop(i);
	return true;
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
		slot->check = 0;
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

/* ---- the queue: penalty first, then the check ------------------------ */

static void
reply_verdict(struct ipc *ipc, struct msg_verdict *out)
{
	ipc_send(ipc, MSG_AUTH_VERDICT, out, sizeof(*out), -1);
	explicit_bzero(out, sizeof(*out));
}

static void
reply_sasl(struct ipc *ipc, struct msg_sasl_reply *out)
{
	ipc_send(ipc, MSG_SASL_REPLY, out, sizeof(*out), -1);
	explicit_bzero(out, sizeof(*out));
}

/* Answer a request that will not be checked: [SYS/TEMP], no penalty. */
static void
refuse(struct ipc *ipc, uint32_t type, uint64_t req, uint32_t reason)
{
	if (type == MSG_AUTH_VERIFY) {
		struct msg_verdict out = { .req = req, .result = AUTH_TEMPFAIL,
		    .reason = reason };

		reply_verdict(ipc, &out);
	} else {
		struct msg_sasl_reply out = { .req = req,
		    .step = SASL_TEMPFAIL, .reason = reason };
		struct exchange *x = exchange_find(ipc, req);

		if (x != NULL)
			sasl_free(&x->sasl);
		reply_sasl(ipc, &out);
	}
}

static void
request_unlink(struct request *r)
{
	QUEUE_UNLINK(queue_head, queue_tail, r);
	queued--;
}

static void
request_free(struct request *r)
{
	explicit_bzero(r, sizeof(*r));
	free(r);
}

/* A check from net changed its penalty: every waiting request of it sees. */
static void
penalty_changed(const char *ip, const char *net, uint64_t now)
{
	uint64_t ready = now + penalty_wait(ip, cf->auth_fail_delay_ms, now);

	for (struct request *r = queue_head; r != NULL; r = r->next)
		if (strcmp(r->net, net) == 0)
			r->ready = ready;
}

static void
schedule(void)
{
	uint64_t now = ev_now_ms(), when = UINT64_MAX;

	for (struct request *r = queue_head; r != NULL; r = r->next) {
		uint64_t t = r->ready < r->deadline ? r->ready : r->deadline;

		if (t < when)
			when = t;
	}
	if (when == UINT64_MAX)
		ev_timer_stop(ev, &work_timer);
	else
		ev_timer_start(ev, &work_timer, when > now ? when - now : 0);
}

static void
run_verify(struct ipc *ipc, struct msg_verify *v, const char *net)
{
	struct msg_verdict out = { .req = v->req };
	struct auth_user u;
	enum auth_result r;
	uint64_t now;

	if (v->method == METHOD_APOP)
		r = ops->apop(db, v->user, v->timestamp, v->pass, &u);
	else
		r = ops->verify(db, v->user, v->pass, &u);
	if (r == AUTH_OK && (account_ids(&u, &out.uid, &out.gid) < 0 ||
	    ticket_issue(u.name, v->ip, out.ticket, &out.reason) < 0))
		r = AUTH_TEMPFAIL;
	now = ev_now_ms();
	/* The penalty grows per client network, across all login workers. */
	if (r == AUTH_PERMFAIL)
		out.delay_ms = penalty_fail(v->ip, cf->auth_fail_delay_ms, now);
	else if (r == AUTH_OK)
		penalty_success(v->ip);
	else if (out.reason == REFUSE_NONE)
		out.delay_ms = cf->auth_fail_delay_ms;
	penalty_changed(v->ip, net, now);
	explicit_bzero(&u, sizeof(u));
	out.result = r;
	reply_verdict(ipc, &out);
}

static void finish_sasl(struct ipc *ipc, struct exchange *x, const char *ip,
    const char *net, enum sasl_step step, struct msg_sasl_reply *out,
    size_t outlen, struct auth_user *u);
static int oauth_check(struct exchange *x, const char *ip, const char *net);

static void
run_sasl(struct ipc *ipc, struct msg_sasl *m, const char *net)
{
	struct msg_sasl_reply out = { .req = m->req };
	struct exchange *x = exchange_find(ipc, m->req);
	struct auth_user u;
	size_t outlen = 0;
	enum sasl_step step;

	if (m->kind == SASL_MSG_START) {
		if (x != NULL)
			sasl_free(&x->sasl);
		x = exchange_new(ipc, m->req);
		if (x == NULL || sasl_start(&x->sasl, m->plaintext_ok ?
		    &sasl_plain : &sasl_secure, m->mech,
		    m->channel.tls ? &m->channel : NULL) < 0) {
			out.step = x == NULL || errno != ENOENT ? SASL_TEMPFAIL :
			    SASL_BAD;
			reply_sasl(ipc, &out);
			return;
		}
	} else if (x == NULL) {
		out.step = SASL_BAD;
		reply_sasl(ipc, &out);
		return;
	}
	step = sasl_step(x->sasl, m->kind == SASL_MSG_START && !m->has_in ?
	    NULL : m->in, m->inlen, out.out, sizeof(out.out), &outlen, &u);
	if (step == SASL_PENDING && oauth_check(x, m->ip, net) == 0)
		return;
	if (step == SASL_PENDING)
		step = sasl_oauth_resume(x->sasl, AUTH_TEMPFAIL, NULL, out.out,
		    sizeof(out.out), &outlen, &u);
	finish_sasl(ipc, x, m->ip, net, step, &out, outlen, &u);
}

/* Send the result of one SASL step back, with its penalty or ticket. */
static void
finish_sasl(struct ipc *ipc, struct exchange *x, const char *ip,
    const char *net, enum sasl_step step, struct msg_sasl_reply *out,
    size_t outlen, struct auth_user *u)
{
	uint64_t now;

	out->step = step;
	out->outlen = (uint32_t)outlen;
	str_copy(out->user, sizeof(out->user), step == SASL_OK ? u->name :
	    sasl_user(x->sasl));
	if (step == SASL_OK && (account_ids(u, &out->uid, &out->gid) < 0 ||
	    ticket_issue(u->name, ip, out->ticket, &out->reason) < 0))
		out->step = SASL_TEMPFAIL;
	now = ev_now_ms();
	if (out->step == SASL_OK)
		penalty_success(ip);
	else if (out->step == SASL_FAIL)
		out->delay_ms = penalty_fail(ip, cf->auth_fail_delay_ms, now);
	else if (out->step == SASL_TEMPFAIL && out->reason == REFUSE_NONE)
		out->delay_ms = cf->auth_fail_delay_ms;
	if (out->step == SASL_OK || out->step == SASL_FAIL)
		penalty_changed(ip, net, now);
	if (out->step != SASL_CONTINUE)
		sasl_free(&x->sasl);
	explicit_bzero(u, sizeof(*u));
	reply_sasl(ipc, out);
}

/* Hand a pending token to the helper. 0, or -1 when it cannot take it. */
static int
oauth_check(struct exchange *x, const char *ip, const char *net)
{
	struct oauth_check *c;
	const char *token, *user;
	size_t len;
	int rc = -1;

	if (oauth_ipc == NULL || (c = calloc(1, sizeof(*c))) == NULL)
		return -1;
	sasl_oauth_pending(x->sasl, &token, &len, &user);
	if (len > 0 && len <= sizeof(c->token)) {
		c->id = ++oauth_seq;
		c->tokenlen = (uint32_t)len;
		memcpy(c->token, token, len);
		str_copy(c->user, sizeof(c->user), user);
		rc = ipc_send(oauth_ipc, OAUTH_MSG_CHECK, c, sizeof(*c), -1);
		if (rc == 0) {
			x->check = c->id;
			str_copy(x->ip, sizeof(x->ip), ip);
			str_copy(x->net, sizeof(x->net), net);
		}
	}
	explicit_bzero(c, sizeof(*c));
	free(c);
	return rc;
}

/* The helper's verdict (v NULL: the helper is gone) for exchange x. */
static void
oauth_resume(struct exchange *x, const struct oauth_verdict *v)
{
	struct msg_sasl_reply out = { .req = x->req };
	struct auth_user u;
	size_t outlen = 0;
	enum sasl_step step;

	x->check = 0;
	step = sasl_oauth_resume(x->sasl, v != NULL ? v->result :
	    AUTH_TEMPFAIL, v != NULL ? v->owner : NULL, out.out,
	    sizeof(out.out), &outlen, &u);
	finish_sasl(x->ipc, x, x->ip, x->net, step, &out, outlen, &u);
}

static void
oauth_msg(struct ipc *ipc, struct ipc_msg *msg, void *arg)
{
	struct oauth_verdict v;

	(void)ipc;
	(void)arg;
	if (msg == NULL) {
		log_warnx("event=oauth-helper-lost");
		ipc_free(&oauth_ipc);
		for (size_t i = 0; i < SASL_EXCHANGES_MAX; i++)
			if (exchanges[i].sasl != NULL && exchanges[i].check != 0)
				oauth_resume(&exchanges[i], NULL);
		return;
	}
	if (msg->fd >= 0)
		close(msg->fd);
	if (msg->type != OAUTH_MSG_VERDICT ||
	    !proto_take(msg->data, msg->len, &v, sizeof(v)) ||
	    !PROTO_STR_OK(v.owner)) {
		log_warnx("event=protocol-error role=oauth-helper");
		return;
	}
	/* A cancelled exchange is gone: its verdict is dropped. */
	for (size_t i = 0; i < SASL_EXCHANGES_MAX; i++)
		if (exchanges[i].sasl != NULL && exchanges[i].check == v.id) {
			oauth_resume(&exchanges[i], &v);
			break;
		}
	explicit_bzero(&v, sizeof(v));
}

/* Whether a channel has a message we have not read yet (maybe a cancel). */
static bool
unread_input(void)
{
	return nclients > 0 && poll(client_pfd, nclients, 0) > 0;
}

static void client_msg(struct ipc *ipc, struct ipc_msg *msg, void *arg);

static void
client_attach(int fd)
{
	if (nclients == CLIENTS_MAX ||
	    (clients[nclients] = ipc_new(ev, fd, client_msg, NULL)) == NULL) {
		log_warnx("event=attach-failed");
		close(fd);
		return;
	}
	client_pfd[nclients] = (struct pollfd){ .fd = fd, .events = POLLIN };
	nclients++;
}

/* The last channel takes the place of the one that went. */
static void
client_detach(const struct ipc *ipc)
{
	for (size_t i = 0; i < nclients; i++)
		if (clients[i] == ipc) {
			nclients--;
			clients[i] = clients[nclients];
			client_pfd[i] = client_pfd[nclients];
			clients[nclients] = NULL;
			break;
		}
}

/*
 * One turn of work: answer what outlived its deadline, then check the
 * oldest request whose network is out of penalty. One check per turn, so
 * the loop reads cancels between two hashes.
 */
static void
work(struct ev *e, void *arg)
{
	struct request *r, *next;
	uint64_t now = ev_now_ms();

	(void)e;
	(void)arg;
	if (drain_turns < AUTH_DRAIN_TURNS && unread_input()) {
		drain_turns++;
		ev_timer_start(ev, &work_timer, 0);
		return;
	}
	drain_turns = 0;
	for (r = queue_head; r != NULL; r = next) {
		next = r->next;
		if (r->deadline <= now) {
			request_unlink(r);
			refuse(r->ipc, r->type, r->req, REFUSE_BUSY);
			request_free(r);
			continue;
		}
		if (r->ready > now)
			continue;
		request_unlink(r);
		if (r->type == MSG_AUTH_VERIFY)
			run_verify(r->ipc, &r->m.v, r->net);
		else
			run_sasl(r->ipc, &r->m.s, r->net);
		request_free(r);
		break;
	}
	schedule();
}

/* Whether ip is a front-end that logs in for many clients. */
static bool
trusted_frontend(const char *ip)
{
	struct sockaddr_in sin = { .sin_family = AF_INET };
	struct sockaddr_in6 sin6 = { .sin6_family = AF_INET6 };
	const struct sockaddr *sa;

	if (cf->login_trusted.n == 0 && cf->proxy_trusted.n == 0)
		return false;
	if (inet_pton(AF_INET, ip, &sin.sin_addr) == 1)
		sa = (const struct sockaddr *)&sin;
	else if (inet_pton(AF_INET6, ip, &sin6.sin6_addr) == 1)
		sa = (const struct sockaddr *)&sin6;
	else
		return false;
	return cidr_match(&cf->login_trusted, sa) ||
	    cidr_match(&cf->proxy_trusted, sa);
}

/*
 * Queue a validated request, or refuse it now: the queue is full, or its
 * network's penalty would outlast its deadline. Nothing is checked here.
 */
static void
enqueue(struct ipc *ipc, uint32_t type, const void *m, size_t len,
    uint64_t req, uint64_t deadline, const char *ip)
{
	struct request *r;
	uint64_t now = ev_now_ms(), wait;
	unsigned int same = 0, same_max = cf->auth_queue_per_network;
	char net[PENALTY_NET_LEN];

	penalty_net(ip, net);
	if (trusted_frontend(ip))
		same_max = AUTH_QUEUE_MAX;
	for (r = queue_head; r != NULL && same < same_max; r = r->next)
		if (strcmp(r->net, net) == 0)
			same++;
	/* The login worker's clock is ours (CLOCK_MONOTONIC); its word not. */
	if (deadline > now + AUTH_WAIT_MAX_MS)
		deadline = now + AUTH_WAIT_MAX_MS;
	wait = penalty_wait(ip, cf->auth_fail_delay_ms, now);
	if (queued >= AUTH_QUEUE_MAX || same >= same_max ||
	    deadline <= now) {
		refuse(ipc, type, req, REFUSE_BUSY);
		return;
	}
	if (now + wait >= deadline) {
		refuse(ipc, type, req, REFUSE_PENALTY);
		return;
	}
	r = calloc(1, sizeof(*r));
	if (r == NULL) {
		refuse(ipc, type, req, REFUSE_BUSY);
		return;
	}
	r->ipc = ipc;
	r->type = type;
	r->req = req;
	r->deadline = deadline;
	r->ready = now + wait;
	memcpy(r->net, net, sizeof(net));
	memcpy(&r->m, m, len);
	r->ip = type == MSG_AUTH_VERIFY ? r->m.v.ip : r->m.s.ip;
	QUEUE_APPEND(queue_head, queue_tail, r);
	queued++;
	schedule();
}

/* Drop queued requests of ipc (req, or all when all is set), unanswered. */
static void
dequeue(struct ipc *ipc, uint64_t req, bool all)
{
	struct request *r, *next;

	for (r = queue_head; r != NULL; r = next) {
		next = r->next;
		if (r->ipc == ipc && (all || r->req == req)) {
			request_unlink(r);
			request_free(r);
		}
	}
}

static void
handle_verify(struct ipc *ipc, const struct ipc_msg *msg)
{
	struct msg_verify *v = malloc(sizeof(*v));

	if (v == NULL || !proto_take(msg->data, msg->len, v, sizeof(*v)) ||
	    !PROTO_STR_OK(v->user) || !PROTO_STR_OK(v->pass) ||
	    !PROTO_STR_OK(v->timestamp) || !PROTO_STR_OK(v->ip)) {
		log_warnx("event=protocol-error role=login msg=verify");
		free(v);
		return;
	}
	enqueue(ipc, MSG_AUTH_VERIFY, v, sizeof(*v), v->req, v->deadline_ms,
	    v->ip);
	explicit_bzero(v, sizeof(*v));
	free(v);
}

static void
handle_cancel(struct ipc *ipc, const struct ipc_msg *msg)
{
	struct msg_cancel c;

	if (!proto_take(msg->data, msg->len, &c, sizeof(c))) {
		log_warnx("event=protocol-error role=login msg=cancel");
		return;
	}
	dequeue(ipc, c.req, false);
	schedule();
}

static void
handle_release(const struct ipc_msg *msg)
{
	struct msg_release rl;

	if (!proto_take(msg->data, msg->len, &rl, sizeof(rl)) ||
	    !PROTO_STR_OK(rl.ticket)) {
		log_warnx("event=protocol-error role=login msg=release");
		return;
	}
	(void)ticket_take(rl.ticket, NULL);
	explicit_bzero(&rl, sizeof(rl));
}

static void
handle_redeem(struct ipc *ipc, const struct ipc_msg *msg)
{
	struct msg_redeem rq;
	struct msg_account out = { 0 };
	char user[AUTH_USER_MAX + 1];

	if (!proto_take(msg->data, msg->len, &rq, sizeof(rq)) ||
	    !PROTO_STR_OK(rq.ticket)) {
		log_warnx("event=protocol-error role=mail msg=redeem");
		return;
	}
	out.req = rq.req;
	if (!ticket_take(rq.ticket, user)) {
		log_warnx("event=ticket-refused");
		out.result = AUTH_PERMFAIL;
	} else {
		out.result = ops->lookup(db, user, &out.user);
		if (out.result == AUTH_OK &&
		    account_ids(&out.user, &out.uid, &out.gid) < 0)
			out.result = AUTH_TEMPFAIL;
	}
	ipc_send(ipc, MSG_AUTH_ACCOUNT, &out, sizeof(out), -1);
}

static void
handle_sasl(struct ipc *ipc, const struct ipc_msg *msg)
{
	struct msg_sasl *m = malloc(sizeof(*m));
	struct exchange *x;

	if (m == NULL || !proto_take(msg->data, msg->len, m, sizeof(*m)) ||
	    !PROTO_STR_OK(m->mech) || !PROTO_STR_OK(m->ip) ||
	    m->inlen > sizeof(m->in) ||
	    m->channel.end_point_len > sizeof(m->channel.end_point) ||
	    m->channel.exporter_len > sizeof(m->channel.exporter)) {
		log_warnx("event=protocol-error role=login msg=sasl");
		free(m);
		return;
	}
	if (m->kind == SASL_MSG_CANCEL) {
		dequeue(ipc, m->req, false);
		if ((x = exchange_find(ipc, m->req)) != NULL)
			sasl_free(&x->sasl);
		schedule();
	} else {
		enqueue(ipc, MSG_SASL_STEP, m, sizeof(*m), m->req,
		    m->deadline_ms, m->ip);
	}
	explicit_bzero(m, sizeof(*m));
	free(m);
}

static void
client_msg(struct ipc *ipc, struct ipc_msg *msg, void *arg)
{
	(void)arg;
	if (msg == NULL) {
		client_detach(ipc);
		dequeue(ipc, 0, true);
		schedule();
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
	case MSG_AUTH_CANCEL:
		handle_cancel(ipc, msg);
		break;
	case MSG_AUTH_RELEASE:
		handle_release(msg);
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
master_msg(struct ipc_msg *msg)
{
	struct msg_auth_init init;

	if (msg->type == MSG_AUTH_ATTACH && msg->fd >= 0) {
		client_attach(msg->fd);
		return;
	}
	if (msg->fd >= 0)
		close(msg->fd);
	if (msg->type == MSG_AUTH_SECRET &&
	    proto_take(msg->data, msg->len, &init, sizeof(init)) &&
	    init.index < PROTO_AUTH_WORKERS_MAX) {
		worker_index = init.index;
		memcpy(sasl_secure.secret, init.secret, SASL_SECRET_LEN);
		memcpy(sasl_plain.secret, init.secret, SASL_SECRET_LEN);
		explicit_bzero(&init, sizeof(init));
		explicit_bzero(msg->data, msg->len);
	}
}

/* Requests under way are cut: their peers ask again or fail temporarily. */
static void
stop(void)
{
	ev_stop(ev);
}

/*
 * The passwd-file's name for the backend. As root, the role first moves
 * into the file's directory and names the file relative to it: once it
 * runs as auth_user, re-reading it needs search permission on that
 * directory only, not on every one above (a checkout under a 0700 home).
 */
static const char *
passwd_path(void)
{
	static char dir[PATH_MAX];
	const char *slash = strrchr(cf->passwd_file, '/');

	if (!priv_is_root() || slash == NULL || slash[1] == '\0' ||
	    (size_t)(slash - cf->passwd_file) >= sizeof(dir))
		return cf->passwd_file;
	memcpy(dir, cf->passwd_file, (size_t)(slash - cf->passwd_file));
	dir[slash - cf->passwd_file] = '\0';
	if (chdir(dir[0] != '\0' ? dir : "/") < 0)
		fatal("passwd_file: %s", dir[0] != '\0' ? dir : "/");
	return slash + 1;
}

/* The two SASL servers (TLS or loopback; plaintext), OAuth's validator. */
static void
sasl_setup(int *oauth_fd)
{
	sasl_secure = (struct sasl_server){ .db = db, .ops = ops,
	    .flags = cf->auth_mechs & SASL_MECH_BIT(SASL_MECH_CRAM_MD5) ?
	    SASL_ALLOW_CRAM_MD5 : 0 };
	/* Forked now: dropped, but not yet under the filter that bars exec. */
	if (cf->oauth2_token_command[0] != '\0') {
		if (oauth_helper_start(cf->oauth2_token_command, oauth_fd) <
		    0)
			fatal("oauth2_token_command: helper");
		sasl_secure.flags |= SASL_ALLOW_OAUTH | SASL_OAUTH_EXTERNAL;
	}
	if (oauth_key != NULL) {
		sasl_secure.flags |= SASL_ALLOW_OAUTH;
		sasl_secure.oauth_key = oauth_key;
		sasl_secure.oauth_policy = (struct jwt_policy){
		    .issuer = cf->oauth2_issuer,
		    .audience = cf->oauth2_audience,
		    .user_claim = cf->oauth2_user_claim };
	}
	/* Until the master's secret arrives (first message), a random one. */
	if (getrandom(sasl_secure.secret, sizeof(sasl_secure.secret), 0) !=
	    (ssize_t)sizeof(sasl_secure.secret))
		fatal("getrandom");
	sasl_plain = sasl_secure;
	sasl_plain.flags |= SASL_ALLOW_PLAINTEXT;
}

/* Everything the role holds, freed and wiped at its end. */
static void
authd_free(void)
{
	struct request *r;

	while ((r = queue_head) != NULL) {
		request_unlink(r);
		request_free(r);
	}
	for (size_t i = 0; i < SASL_EXCHANGES_MAX; i++)
		sasl_free(&exchanges[i].sasl);
	explicit_bzero(&sasl_secure, sizeof(sasl_secure));
	explicit_bzero(&sasl_plain, sizeof(sasl_plain));
	for (size_t i = 0; i < nclients; i++)
		ipc_free(&clients[i]);
	nclients = 0;
	ops->close(&db);
	auth_cache_free();
	jwt_key_free(&oauth_key);
	/*
	 * The helper sees its channel close and exits; the filter bars
	 * wait4, so init reaps it once this role has exited.
	 */
	ipc_free(&oauth_ipc);
}

int
authd_main(const struct config *config)
{
	char err[ERR_LEN];
	const char *path = NULL;
	int oauth_fd = -1;

	cf = config;
	log_set_ident("postinod/auth");
	penalty_set_prefix(cf->auth_penalty_prefix4, cf->auth_penalty_prefix6);
	tickets_init();
	if (cf->mail_user[0] != '\0') {
		if (priv_user(cf->mail_user, &mail_uid, &mail_gid) < 0)
			fatalx("mail_user: no such user '%s'", cf->mail_user);
		have_mail_user = true;
	}
	/*
	 * The token key now, as root (it may be root's, like tls_key); it is
	 * public, but a wrong one must stop startup, not every OAuth login.
	 */
	if (cf->oauth2_jwt_key[0] != '\0' &&
	    jwt_key_load(&oauth_key, cf->oauth2_jwt_key, err) < 0)
		fatalx("oauth2_jwt_key: %s", err);
	/* A pgsql backend now, as root: its password file may be root's. */
	if (strcmp(cf->passdb, "passwd-file") == 0)
		path = passwd_path();
	else if (config_passdb_open(cf, NULL, &ops, &db, err) < 0)
		fatalx("%s", err);
	/*
	 * The role parses SASL responses and holds every hash: it parses
	 * nothing as root, not even the passwd-file. A pgsql backend is
	 * opened first (its password file may be root's); the passwd-file
	 * is read, and re-read by its path when it changes, as auth_user,
	 * so it is not chrooted and auth_user must be able to read it (the
	 * master checked).
	 */
	as_root = priv_is_root();
	role_drop(&(struct role_user){ .key = "auth_user",
	    .name = cf->auth_user });
	if (path != NULL && config_passdb_open(cf, path, &ops, &db, err) < 0)
		fatalx("%s", err);
	sasl_setup(&oauth_fd);
	/* Its key from the RNG now, before the filter. */
	if (auth_cache_init(cf->auth_cache_size, cf->auth_cache_ttl,
	    NULL) < 0)
		fatalx("auth_cache_size: cannot allocate the cache");
	/* A pgsql backend keeps its socket: only the passwd-file's filter. */
	ev = role_start(&(struct role){ .stop = stop,
	    .master_msg = master_msg, .sandbox = SANDBOX_ROLE_AUTH,
	    .sandboxed = strcmp(cf->passdb, "passwd-file") == 0 });
	ev_timer_init(&work_timer, work, NULL);
	if (oauth_fd >= 0 && (oauth_ipc = ipc_new(ev, oauth_fd, oauth_msg,
	    NULL)) == NULL)
		fatal("oauth2_token_command: channel");
	/* Dropped and filtered: the master may now announce it is ready. */
	role_ready();
	role_run();
	authd_free();
	role_end();
	return 0;
}
