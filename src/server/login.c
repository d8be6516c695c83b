/*
 * The login role: accepts connections and runs the AUTHORIZATION state for
 * thousands of them in one event loop, chrooted to an empty directory as an
 * unprivileged user. It sees no mail and no password hash: credentials go to
 * the auth role, and a logged-in connection is handed, with any input the
 * client pipelined after PASS, to a mail worker through the master.
 */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../lib/ev.h"
#include "../lib/ipc.h"
#include "../lib/log.h"
#include "../lib/net.h"
#include "../lib/priv.h"
#include "capa.h"
#include "proto.h"
#include "roles.h"

/*
 * Failed logins one connection may make before it is closed (Dovecot's
 * login processes close after 3 too): with the failure delay, it bounds
 * how fast one connection can guess passwords.
 */
#define LOGIN_FAILURES_MAX	3

struct login_conn {
	struct session	 s;
	unsigned int	 failures;
	struct login_conn *prev, *next;
	struct ev_timer	 deadline;	/* login_timeout for the whole AUTHORIZATION */
	struct ev_timer	 delay;		/* failed-auth delay */
	uint64_t	 req;		/* pending auth request, 0 = none */
	uint32_t	 method;
	enum auth_result verdict;
	bool		 have_user;
	char		 user[AUTH_USER_MAX + 1];
	char		 timestamp[PROTO_TS_MAX];
};

static const struct config *cf;
static struct ev *ev;
static struct ipc *master, *authc;
static struct login_conn *conns;
static unsigned int nconns;
static int listen_fds[CONFIG_LISTEN_MAX];
static unsigned int nlisten;
static uint64_t next_req = 1;
static bool shutting_down;
/* Out of descriptors: stop accepting for a moment instead of spinning. */
#define ACCEPT_PAUSE_MS	100
static struct ev_timer accept_pause;

static const struct session_cmd *login_commands(struct session *s);

static void
conn_closed(struct session *s)
{
	struct login_conn *c = s->owner;

	ev_timer_stop(ev, &c->deadline);
	ev_timer_stop(ev, &c->delay);
	if (c->prev)
		c->prev->next = c->next;
	else
		conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	nconns--;
	explicit_bzero(c, sizeof(*c));
	free(c);
}

static const struct session_ops login_ops = {
	.commands = login_commands,
	.closed = conn_closed,
};

static const char *
method_name(uint32_t method)
{
	return method == METHOD_APOP ? "APOP" : "USER";
}

static void
log_auth(struct login_conn *c, const char *result)
{
	char user[AUTH_USER_MAX * 4 + 1];

	str_sanitize(user, sizeof(user), c->user, strlen(c->user));
	/* The stable line fail2ban matches; documented in README.md. */
	log_info("session=%s event=login result=%s user=\"%s\" method=%s ip=%s",
	    c->s.id, result, user, method_name(c->method), c->s.ip);
}

static enum cmd_result
send_verify(struct login_conn *c, const char *secret)
{
	struct msg_verify *v;

	if (authc == NULL) {
		session_reply(&c->s, "-ERR [SYS/TEMP] Authentication is "
		    "unavailable, try later.");
		return CMD_BAD;
	}
	v = calloc(1, sizeof(*v));
	if (v == NULL) {
		session_reply(&c->s, "-ERR [SYS/TEMP] Out of memory.");
		return CMD_BAD;
	}
	v->req = c->req = next_req++;
	v->method = c->method;
	str_copy(v->session, sizeof(v->session), c->s.id);
	str_copy(v->ip, sizeof(v->ip), c->s.ip);
	str_copy(v->user, sizeof(v->user), c->user);
	str_copy(v->timestamp, sizeof(v->timestamp), c->timestamp);
	if (str_copy(v->pass, sizeof(v->pass), secret) < 0 ||
	    ipc_send(authc, MSG_AUTH_VERIFY, v, sizeof(*v), -1) < 0) {
		explicit_bzero(v, sizeof(*v));
		free(v);
		c->req = 0;
		session_reply(&c->s, "-ERR [AUTH] Authentication failed.");
		return CMD_BAD;
	}
	explicit_bzero(v, sizeof(*v));
	free(v);
	c->s.suspended = true;
	return CMD_ASYNC;
}

static enum cmd_result
cmd_user(struct session *s, const struct pop3_args *a)
{
	struct login_conn *c = s->owner;

	if (strlen(a->argv[0]) > AUTH_USER_MAX) {
		session_reply(s, "-ERR [AUTH] User name too long.");
		return CMD_BAD;
	}
	str_copy(c->user, sizeof(c->user), a->argv[0]);
	c->have_user = true;
	session_reply(s, "+OK");
	return CMD_OK;
}

static enum cmd_result
cmd_pass(struct session *s, const struct pop3_args *a)
{
	struct login_conn *c = s->owner;

	if (!c->have_user) {
		session_reply(s, "-ERR USER first.");
		return CMD_BAD;
	}
	c->have_user = false;
	if (a->argc == 0) {
		session_reply(s, "-ERR [AUTH] Authentication failed.");
		return CMD_BAD;
	}
	c->method = METHOD_USER;
	return send_verify(c, a->argv[0]);
}

static enum cmd_result
cmd_apop(struct session *s, const struct pop3_args *a)
{
	struct login_conn *c = s->owner;

	if (!cf->apop) {
		session_reply(s, "-ERR APOP is not enabled.");
		return CMD_BAD;
	}
	if (strlen(a->argv[0]) > AUTH_USER_MAX || strlen(a->argv[1]) != 32) {
		session_reply(s, "-ERR [AUTH] Authentication failed.");
		return CMD_BAD;
	}
	c->have_user = false;
	str_copy(c->user, sizeof(c->user), a->argv[0]);
	c->method = METHOD_APOP;
	return send_verify(c, a->argv[1]);
}

static enum cmd_result
cmd_capa(struct session *s, const struct pop3_args *a)
{
	(void)a;
	capa_reply(s, cf, true);
	return CMD_OK;
}

static enum cmd_result
cmd_quit(struct session *s, const struct pop3_args *a)
{
	(void)a;
	session_reply(s, "+OK Bye.");
	return CMD_CLOSE;
}

static const struct session_cmd auth_commands[] = {
	{ "USER", 1, 1, false, cmd_user },
	{ "PASS", 0, 1, true, cmd_pass },
	{ "APOP", 2, 2, false, cmd_apop },
	{ "CAPA", 0, 0, false, cmd_capa },
	{ "QUIT", 0, 0, false, cmd_quit },
	{ NULL, 0, 0, false, NULL },
};

static const struct session_cmd *
login_commands(struct session *s)
{
	(void)s;
	return auth_commands;
}

static void
handoff(struct login_conn *c, const struct msg_verdict *v)
{
	struct msg_handoff *h = calloc(1, sizeof(*h));
	size_t inlen;
	int fd;

	if (h == NULL) {
		session_reply(&c->s, "-ERR [SYS/TEMP] Out of memory.");
		session_end(&c->s);
		return;
	}
	h->uid = v->uid;
	h->gid = v->gid;
	h->port = c->s.port;
	h->method = c->method;
	str_copy(h->session, sizeof(h->session), c->s.id);
	str_copy(h->ip, sizeof(h->ip), c->s.ip);
	str_copy(h->user, sizeof(h->user), c->user);
	memcpy(h->ticket, v->ticket, sizeof(h->ticket));
	fd = session_detach(&c->s, h->in, sizeof(h->in), &inlen);
	h->inlen = (uint32_t)inlen;
	if (fd >= 0) {
		if (ipc_send(master, MSG_HANDOFF, h, sizeof(*h), fd) < 0)
			log_warnx("session=%s event=handoff-failed", h->session);
		close(fd);
	}
	explicit_bzero(h, sizeof(*h));
	free(h);
}

static void
fail_delayed(struct ev *e, void *arg)
{
	struct login_conn *c = arg;

	(void)e;
	c->s.suspended = false;
	if (c->verdict == AUTH_TEMPFAIL)
		session_reply(&c->s, "-ERR [SYS/TEMP] Temporary authentication "
		    "failure, try later.");
	else
		session_reply(&c->s, "-ERR [AUTH] Authentication failed.");
	if (++c->failures >= LOGIN_FAILURES_MAX) {
		log_info("session=%s event=disconnect reason=auth-failures "
		    "failures=%u ip=%s", c->s.id, c->failures, c->s.ip);
		session_end(&c->s);
		return;
	}
	if (++c->s.bad >= c->s.max_bad) {
		session_reply(&c->s, "-ERR Too many bad commands.");
		session_end(&c->s);
		return;
	}
	session_resume(&c->s);
}

static void
on_verdict(const struct ipc_msg *msg)
{
	struct msg_verdict v;
	struct login_conn *c;

	if (!proto_take(msg->data, msg->len, &v, sizeof(v)) ||
	    !PROTO_STR_OK(v.ticket)) {
		log_warnx("event=protocol-error role=auth msg=verdict");
		return;
	}
	for (c = conns; c != NULL; c = c->next)
		if (c->req == v.req)
			break;
	if (c == NULL)
		return;		/* the client left meanwhile */
	c->req = 0;
	if (v.result == AUTH_OK) {
		log_auth(c, "ok");
		handoff(c, &v);
		return;
	}
	c->verdict = v.result == AUTH_TEMPFAIL ? AUTH_TEMPFAIL : AUTH_PERMFAIL;
	log_auth(c, c->verdict == AUTH_TEMPFAIL ? "tempfail" : "fail");
	ev_timer_start(ev, &c->delay, cf->auth_fail_delay_ms);
}

static void
fail_pending(void)
{
	for (struct login_conn *c = conns; c != NULL; c = c->next) {
		if (c->req == 0)
			continue;
		c->req = 0;
		c->verdict = AUTH_TEMPFAIL;
		ev_timer_start(ev, &c->delay, 0);
	}
}

static void
auth_msg(struct ipc *ipc, struct ipc_msg *msg, void *arg)
{
	(void)arg;
	if (msg == NULL) {
		log_warnx("event=auth-lost");
		ipc_free(&ipc);
		authc = NULL;
		fail_pending();
		return;
	}
	if (msg->fd >= 0)
		close(msg->fd);
	if (msg->type == MSG_AUTH_VERDICT)
		on_verdict(msg);
}

static void
deadline(struct ev *e, void *arg)
{
	struct login_conn *c = arg;

	(void)e;
	log_info("session=%s event=timeout state=authorization ip=%s",
	    c->s.id, c->s.ip);
	session_reply(&c->s, "-ERR Disconnected: no login in time.");
	session_end(&c->s);
}

static void on_listen(struct ev *e, int fd, unsigned int events, void *arg);

/* 0 when a connection was taken (or refused), -1 when there was none. */
static int
accept_one(int lfd)
{
	struct sockaddr_storage ss;
	socklen_t sslen = sizeof(ss);
	struct login_conn *c;
	char addr[NET_ADDR_LEN];
	int fd;

	fd = accept4(lfd, (struct sockaddr *)&ss, &sslen,
	    SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (fd < 0) {
		if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS ||
		    errno == ENOMEM) {
			log_warn("event=accept-paused");
			for (unsigned int i = 0; i < nlisten; i++)
				ev_io_set(ev, listen_fds[i], 0, on_listen, NULL);
			ev_timer_start(ev, &accept_pause, ACCEPT_PAUSE_MS);
		}
		return -1;
	}
	if (nconns >= cf->max_sessions || shutting_down) {
		static const char busy[] = "-ERR [SYS/TEMP] Too many connections, "
		    "try later.\r\n";
		ssize_t w = send(fd, busy, sizeof(busy) - 1, MSG_NOSIGNAL);

		(void)w;
		close(fd);
		return 0;
	}
	c = calloc(1, sizeof(*c));
	if (c == NULL) {
		close(fd);
		return 0;
	}
	session_new_id(c->s.id);
	net_addr_str(&ss, addr, sizeof(addr), c->s.ip, sizeof(c->s.ip),
	    &c->s.port);
	c->s.idle_ms = cf->idle_timeout * 1000;
	c->s.max_bad = cf->max_bad_commands;
	c->s.transcript = cf->transcript;
	ev_timer_init(&c->deadline, deadline, c);
	ev_timer_init(&c->delay, fail_delayed, c);
	if (session_start(&c->s, ev, fd, &login_ops, c, NULL, 0) < 0) {
		close(fd);
		free(c);
		return 0;
	}
	c->next = conns;
	if (conns)
		conns->prev = c;
	conns = c;
	nconns++;
	ev_timer_start(ev, &c->deadline, (uint64_t)cf->login_timeout * 1000);
	log_info("session=%s event=connect ip=%s port=%u", c->s.id, c->s.ip,
	    c->s.port);
	if (cf->apop) {
		/* RFC 1939 sec. 7: a timestamp unique to this greeting. */
		str_fmt(c->timestamp, sizeof(c->timestamp), "<%s.%ld@postino>",
		    c->s.id, (long)getpid());
		session_reply(&c->s, "+OK %s %s", cf->greeting, c->timestamp);
	} else {
		session_reply(&c->s, "+OK %s", cf->greeting);
	}
	session_resume(&c->s);
	return 0;
}

static void
on_listen(struct ev *e, int fd, unsigned int events, void *arg)
{
	(void)e;
	(void)events;
	(void)arg;
	/* Several workers share the socket; take a few, leave some for them. */
	for (int i = 0; i < 16; i++)
		if (accept_one(fd) < 0)
			break;
}

static void
accept_resume(struct ev *e, void *arg)
{
	(void)e;
	(void)arg;
	for (unsigned int i = 0; i < nlisten; i++)
		ev_io_set(ev, listen_fds[i], EV_READ, on_listen, NULL);
}

static void
stop_all(void)
{
	shutting_down = true;
	ev_timer_stop(ev, &accept_pause);
	for (unsigned int i = 0; i < nlisten; i++) {
		ev_io_del(ev, listen_fds[i]);
		close(listen_fds[i]);
	}
	nlisten = 0;
	while (conns != NULL) {
		session_reply(&conns->s, "-ERR [SYS/TEMP] Server shutting down.");
		session_end(&conns->s);
		if (conns != NULL && !conns->s.closed)
			session_close(&conns->s);
	}
	ev_stop(ev);
}

static void
master_msg(struct ipc *ipc, struct ipc_msg *msg, void *arg)
{
	(void)ipc;
	(void)arg;
	if (msg == NULL) {
		stop_all();
		return;
	}
	if (msg->type == MSG_AUTH_CHANNEL && msg->fd >= 0) {
		ipc_free(&authc);
		authc = ipc_new(ev, msg->fd, auth_msg, NULL);
		if (authc == NULL)
			close(msg->fd);
		return;
	}
	if (msg->fd >= 0)
		close(msg->fd);
	if (msg->type == MSG_SHUTDOWN)
		stop_all();
}

static void
on_term(struct ev *e, int signo, void *arg)
{
	(void)e;
	(void)signo;
	(void)arg;
	stop_all();
}

int
login_main(const struct config *config, unsigned int n)
{
	char err[ERR_LEN];
	uid_t uid;
	gid_t gid;

	cf = config;
	log_set_ident("postinod/login");
	if (priv_is_root()) {
		if (priv_user(cf->login_user, &uid, &gid) < 0)
			fatalx("login_user: no such user '%s'", cf->login_user);
		if (priv_drop(uid, gid, (gid_t)-1, cf->login_chroot, err) < 0)
			fatalx("%s", err);
	}
	ev = ev_new();
	if (ev == NULL)
		fatal("ev_new");
	ev_signal(ev, SIGTERM, on_term, NULL);
	ev_signal(ev, SIGINT, on_term, NULL);
	master = ipc_new(ev, ROLE_MASTER_FD, master_msg, NULL);
	if (master == NULL)
		fatal("master channel");
	ev_timer_init(&accept_pause, accept_resume, NULL);
	nlisten = n;
	for (unsigned int i = 0; i < n; i++) {
		listen_fds[i] = ROLE_LISTEN_FD + (int)i;
		if (ev_io_set(ev, listen_fds[i], EV_READ, on_listen, NULL) < 0)
			fatal("listen fd %d", listen_fds[i]);
	}
	ev_run(ev);
	ipc_free(&authc);
	ipc_free(&master);
	ev_free(&ev);
	return 0;
}
