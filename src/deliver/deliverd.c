/*
 * The deliver role: one pool per uid, like the mail role, running as the
 * mailbox owner (never root). The LMTP role opens one channel per
 * recipient through the master and sends the sealed message with the
 * envelope; the worker asks the auth role for the account itself, so it
 * writes only into the mailbox of a user that auth maps to its own uid,
 * whatever the (unprivileged, network-facing) LMTP role claims.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../lib/ev.h"
#include "../lib/idmap.h"
#include "../lib/ipc.h"
#include "../lib/list.h"
#include "../lib/log.h"
#include "../lib/priv.h"
#include "../server/limits.h"
#include "../server/role.h"
#include "../server/rolemsg.h"
#include "../server/roles.h"
#include "../store/store_pgsql.h"
#include "delivery.h"

/* Seals the message must carry: nobody can change it under us. */
#define DELIVER_SEALS	(F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW | \
	F_SEAL_WRITE)

struct chan {
	struct chan	*prev, *next;
	struct ipc	*ipc;
	uint64_t	 req;		/* auth lookup in flight, 0 = none */
	unsigned int	 auth_idx;	/* the auth worker asked */
	int		 msgfd;
	bool		 got;		/* one request per channel */
	bool		 probe;		/* MSG_DELIVER_PROBE, not a delivery */
	bool		 quota;		/* MSG_DELIVER_QUOTA, not a delivery */
	struct msg_deliver d;
};

static const struct config *cf;
static struct ev *ev;
static struct chan *chans;
/* Channels waiting for an account lookup, by its request id. */
static struct idmap *lookups;
static uint64_t next_req = 1;
static bool shutting_down;
static struct ev_timer idle_timer;
#ifdef POSTINO_TEST_HOOKS
/*
 * Test builds only (make SAN=1): die like kill -9 between storing and
 * answering, the window MSG_DELIVER_PROBE covers (tests/blackbox/
 * test_lmtp.py), when POSTINO_TEST_DELIVER_DIE_AFTER_STORE is set.
 */
static void
test_die_after_store(enum store_result r)
{
	if (r == STORE_OK &&
	    getenv("POSTINO_TEST_DELIVER_DIE_AFTER_STORE") != NULL)
		raise(SIGKILL);
}
#else
#define test_die_after_store(r)	((void)(r))
#endif

/* The account lookup of c is answered or given up. */
static void
lookup_end(struct chan *c)
{
	idmap_del(lookups, c->req);
	c->req = 0;
}

static void
chan_free(struct chan *c)
{
	lookup_end(c);
	LIST_UNLINK(chans, c);
	if (c->msgfd >= 0)
		close(c->msgfd);
	ipc_free(&c->ipc);
	free(c);
	role_send(MSG_SESSION_END, NULL, 0, -1);
	if (chans == NULL) {
		if (shutting_down)
			ev_stop(ev);
		else
			ev_timer_start(ev, &idle_timer, DELIVER_IDLE_MS);
	}
}

static void
chan_reply(struct chan *c, enum store_result r, const char *reason)
{
	struct msg_delivered out = { .req = c->d.req, .result = r };

	str_copy(out.reason, sizeof(out.reason), reason);
	if (c->ipc != NULL)
		ipc_send(c->ipc, MSG_DELIVER_RESULT, &out, sizeof(out), -1);
	if (c->msgfd >= 0) {
		close(c->msgfd);
		c->msgfd = -1;
	}
}

static void
deliver(struct chan *c, const struct msg_account *acct)
{
	char err[ERR_LEN] = "", user[AUTH_USER_MAX * 4 + 1];
	enum store_result r;
	uint64_t t0 = ev_now_ms();

	str_sanitize(user, sizeof(user), c->d.user, strlen(c->d.user));
	if (acct->result != AUTH_OK || !PROTO_STR_OK(acct->user.name) ||
	    !PROTO_STR_OK(acct->user.home) ||
	    strcmp(acct->user.name, c->d.user) != 0 ||
	    (priv_is_root() && acct->uid != getuid())) {
		log_warnx("session=%s event=deliver-refused user=\"%s\" "
		    "reason=\"account does not map to this worker\"",
		    c->d.session, user);
		chan_reply(c, STORE_TEMPFAIL, "account lookup failed");
		return;
	}
	if (c->quota) {
		r = delivery_quota(cf, &acct->user, err);
		chan_reply(c, r, err);
		return;
	}
	if (c->probe) {
		r = delivery_probe(cf, &acct->user, c->d.token, err);
		log_info("session=%s event=deliver-probe user=\"%s\" token=%s "
		    "result=%s", c->d.session, user, c->d.token,
		    r == STORE_OK ? "stored" : r == STORE_PERMFAIL ?
		    "absent" : "unknown");
		chan_reply(c, r, err);
		return;
	}
	r = delivery_run(cf, &acct->user, c->msgfd, c->d.sender,
	    c->d.rcpt, c->d.token[0] != '\0' ? c->d.token : NULL, err);
	test_die_after_store(r);
	log_info("session=%s event=deliver user=\"%s\" result=%s ms=%llu%s%s%s",
	    c->d.session, user, r == STORE_OK ? "ok" : "fail",
	    (unsigned long long)(ev_now_ms() - t0), r == STORE_OK ? "" :
	    " reason=\"", r == STORE_OK ? "" : err, r == STORE_OK ? "" : "\"");
	chan_reply(c, r, err);
}

static void
auth_msg(unsigned int idx, struct ipc_msg *msg)
{
	struct msg_account acct;
	struct chan *c;

	if (msg == NULL) {
		for (c = chans; c != NULL; c = c->next) {
			if (c->req != 0 && c->auth_idx == idx) {
				lookup_end(c);
				chan_reply(c, STORE_TEMPFAIL, "auth restarted");
			}
		}
		return;
	}
	if (msg->type != MSG_AUTH_ACCOUNT ||
	    !proto_take(msg->data, msg->len, &acct, sizeof(acct)))
		return;
	c = idmap_get(lookups, acct.req);
	if (c != NULL && c->req == acct.req) {
		lookup_end(c);
		deliver(c, &acct);
	}
	explicit_bzero(&acct, sizeof(acct));
}

static void
chan_msg(struct ipc *ipc, struct ipc_msg *msg, void *arg)
{
	struct chan *c = arg;
	struct msg_lookup rq = { 0 };
	struct ipc *a = NULL;
	int seals;

	(void)ipc;
	if (msg == NULL) {
		chan_free(c);
		return;
	}
	c->probe = msg->type == MSG_DELIVER_PROBE;
	c->quota = msg->type == MSG_DELIVER_QUOTA;
	if ((msg->type != MSG_DELIVER_REQ && !c->probe && !c->quota) ||
	    c->got ||
	    !proto_take(msg->data, msg->len, &c->d, sizeof(c->d)) ||
	    !PROTO_STR_OK(c->d.session) || !PROTO_STR_OK(c->d.user) ||
	    !PROTO_STR_OK(c->d.sender) || !PROTO_STR_OK(c->d.rcpt) ||
	    !PROTO_STR_OK(c->d.token) || (c->d.token[0] != '\0' &&
	    (strlen(c->d.token) != STORE_TOKEN_LEN || strspn(c->d.token,
	    "0123456789abcdef") != STORE_TOKEN_LEN)) ||
	    (c->probe ? (msg->fd >= 0 || c->d.token[0] == '\0') :
	    c->quota ? msg->fd >= 0 : msg->fd < 0)) {
		log_warnx("event=protocol-error role=lmtp msg=deliver");
		if (msg->fd >= 0)
			close(msg->fd);
		chan_free(c);
		return;
	}
	c->got = true;
	c->msgfd = msg->fd;
	seals = c->probe || c->quota ? DELIVER_SEALS :
	    fcntl(c->msgfd, F_GET_SEALS);
	if (seals < 0 || (seals & DELIVER_SEALS) != DELIVER_SEALS) {
		log_warnx("session=%s event=protocol-error role=lmtp "
		    "reason=\"message not sealed\"", c->d.session);
		chan_reply(c, STORE_TEMPFAIL, "message not sealed");
		return;
	}
	/* Lookups go round-robin over the auth workers. */
	if ((a = role_auth_next(&c->auth_idx)) == NULL) {
		chan_reply(c, STORE_TEMPFAIL, "no auth channel");
		return;
	}
	rq.req = c->req = next_req++;
	memcpy(rq.user, c->d.user, sizeof(rq.user));
	if (idmap_put(lookups, c->req, c) < 0 ||
	    ipc_send(a, MSG_AUTH_LOOKUP, &rq, sizeof(rq), -1) < 0) {
		lookup_end(c);
		chan_reply(c, STORE_TEMPFAIL, "auth unreachable");
	}
}

static void
on_channel(int fd)
{
	struct chan *c = calloc(1, sizeof(*c));

	if (c == NULL || (c->ipc = ipc_new(ev, fd, chan_msg, c)) == NULL) {
		close(fd);
		free(c);
		role_send(MSG_SESSION_END, NULL, 0, -1);
		return;
	}
	c->msgfd = -1;
	ev_timer_stop(ev, &idle_timer);
	LIST_PUSH(chans, c);
}

static void
idle_expired(struct ev *e, void *arg)
{
	(void)e;
	(void)arg;
	if (chans == NULL)
		role_send(MSG_IDLE, NULL, 0, -1);
}

/* A delivery runs inside one callback: none is ever cut half-way here. */
static void
stop_all(void)
{
	shutting_down = true;
	while (chans != NULL)
		chan_free(chans);
	ev_stop(ev);
}

static void
master_msg(struct ipc_msg *msg)
{
	if (msg->type == MSG_DELIVER_CHANNEL && msg->fd >= 0 &&
	    !shutting_down) {
		on_channel(msg->fd);
		return;
	}
	if (msg->fd >= 0)
		close(msg->fd);
}

static const struct role deliver_role = {
	.stop = stop_all,
	.master_msg = master_msg,
	.auth_msg = auth_msg,
};

int
deliver_main(const struct config *config, uid_t uid, gid_t gid)
{
	char err[ERR_LEN];

	cf = config;
	log_set_ident("postinod/deliver");
	if (config_store_setup(cf, err) < 0)
		fatalx("%s", err);
	role_drop(&(struct role_user){ .key = "deliver", .uid = uid,
	    .gid = gid, .extra_group = cf->mail_privileged_group });
	ev = role_start(&deliver_role);
	lookups = idmap_new();
	if (lookups == NULL)
		fatal("idmap_new");
	ev_timer_init(&idle_timer, idle_expired, NULL);
	ev_timer_start(ev, &idle_timer, DELIVER_IDLE_MS);
	role_run();
	while (chans != NULL)
		chan_free(chans);
	idmap_free(&lookups);
	store_pgsql_shutdown();
	role_end();
	return 0;
}
