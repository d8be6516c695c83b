/*
 * The skeleton of a role process (role.h). Written once so that every role,
 * and the master, makes its loop, takes its signals and runs the same way,
 * and every role gives up root, answers the master and follows an auth
 * worker's restart the same way.
 */
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

#include "../lib/log.h"
#include "../lib/priv.h"
#include "role.h"
#include "rolemsg.h"
#include "roles.h"

static const struct role *role;
static struct ev *ev;
static struct ipc *master;
static struct ipc *authc[PROTO_AUTH_WORKERS_MAX];
static unsigned int nauth;
static unsigned int auth_next;
static int stop_signo;

void
role_drop(const struct role_user *u)
{
	char err[ERR_LEN];
	gid_t extra = (gid_t)-1;
	uid_t uid = u->uid;
	gid_t gid = u->gid;

	if (!priv_is_root())
		return;
	if (u->name != NULL && priv_user(u->name, &uid, &gid) < 0)
		fatalx("%s: no such user '%s'", u->key, u->name);
	if (uid == 0)
		fatalx("%s: refusing to run as root", u->key);
	/* Debian's /var/mail is root:mail 2775: locks and rewrites need it. */
	if (u->extra_group != NULL && u->extra_group[0] != '\0' &&
	    priv_group(u->extra_group, &extra) < 0)
		fatalx("mail_privileged_group: no such group '%s'",
		    u->extra_group);
	if (priv_drop(uid, gid, extra, u->chroot, err) < 0)
		fatalx("%s", err);
}

static void
on_term(struct ev *e, int signo, void *arg)
{
	(void)e;
	(void)arg;
	stop_signo = signo;
	role->stop();
}

/*
 * The signals are blocked from here on (signalfd): the master's children
 * unblock them before exec (master.c, exec_role).
 */
static struct ev *
role_loop(const struct role *r)
{
	struct ev *loop = ev_new();

	if (loop == NULL)
		fatal("ev_new");
	ev_signal(loop, SIGTERM, on_term, NULL);
	ev_signal(loop, SIGINT, on_term, NULL);
	for (const struct role_signal *s = r->signals; s != NULL &&
	    s->signo != 0; s++)
		ev_signal(loop, s->signo, s->fn, NULL);
	return loop;
}

static void
auth_msg(struct ipc *ipc, struct ipc_msg *msg, void *arg)
{
	unsigned int idx = (unsigned int)(uintptr_t)arg;

	if (msg == NULL) {
		ipc_free(&ipc);
		authc[idx] = NULL;
		role->auth_msg(idx, NULL);
		return;
	}
	if (msg->fd >= 0) {
		close(msg->fd);
		msg->fd = -1;
	}
	role->auth_msg(idx, msg);
}

/* The master's channel to auth worker ch.index of ch.count. */
static void
auth_channel(struct ipc_msg *msg)
{
	struct msg_auth_channel ch;

	if (role->auth_msg == NULL || msg->fd < 0 ||
	    !proto_take(msg->data, msg->len, &ch, sizeof(ch)) ||
	    ch.count == 0 || ch.count > PROTO_AUTH_WORKERS_MAX ||
	    ch.index >= ch.count) {
		log_warnx("event=protocol-error role=master msg=auth-channel");
		if (msg->fd >= 0)
			close(msg->fd);
		return;
	}
	nauth = ch.count;
	ipc_free(&authc[ch.index]);
	authc[ch.index] = ipc_new(ev, msg->fd, auth_msg,
	    (void *)(uintptr_t)ch.index);
	if (authc[ch.index] == NULL) {
		close(msg->fd);
		return;
	}
	if (role->auth_up != NULL)
		role->auth_up();
}

static void
master_msg(struct ipc *ipc, struct ipc_msg *msg, void *arg)
{
	(void)ipc;
	(void)arg;
	if (msg == NULL) {
		/* Orphaned: no new work can come, and none may be left. */
		role->stop();
		ev_stop(ev);
		return;
	}
	if (msg->type == MSG_AUTH_CHANNEL) {
		auth_channel(msg);
		return;
	}
	if (msg->type == MSG_SHUTDOWN) {
		if (msg->fd >= 0)
			close(msg->fd);
		role->stop();
		return;
	}
	if (role->master_msg != NULL) {
		role->master_msg(msg);
		return;
	}
	if (msg->fd >= 0)
		close(msg->fd);
}

struct ev *
role_start(const struct role *r)
{
	char err[ERR_LEN];

	role = r;
	ev = role_loop(r);
	if (!r->master &&
	    (master = ipc_new(ev, ROLE_MASTER_FD, master_msg, NULL)) == NULL)
		fatal("master channel");
	/* From here on: no open, no socket, no connect. */
	if (r->sandboxed && sandbox_enter(r->sandbox, err) < 0)
		fatalx("%s", err);
	return ev;
}

int
role_run(void)
{
	return ev_run(ev);
}

void
role_end(void)
{
	for (unsigned int i = 0; i < PROTO_AUTH_WORKERS_MAX; i++)
		ipc_free(&authc[i]);
	ipc_free(&master);
	ev_free(&ev);
}

int
role_stop_signal(void)
{
	return stop_signo;
}

int
role_send(uint32_t type, const void *data, size_t len, int fd)
{
	return ipc_send(master, type, data, len, fd);
}

void
role_ready(void)
{
	static bool sent;

	if (sent)
		return;
	sent = true;
	role_send(MSG_READY, NULL, 0, -1);
}

unsigned int
role_nauth(void)
{
	return nauth;
}

struct ipc *
role_auth(unsigned int idx)
{
	return idx < nauth ? authc[idx] : NULL;
}

struct ipc *
role_auth_next(unsigned int *idx_r)
{
	for (unsigned int k = 0; k < PROTO_AUTH_WORKERS_MAX; k++) {
		unsigned int i = (auth_next + k) % PROTO_AUTH_WORKERS_MAX;

		if (authc[i] != NULL) {
			auth_next = i + 1;
			*idx_r = i;
			return authc[i];
		}
	}
	return NULL;
}
