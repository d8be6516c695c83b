/*
 * The master: binds the listeners, starts the roles (fork + exec, so no role
 * inherits another's memory), restarts the ones that die, routes logged-in
 * connections from login workers to the mail worker of the right uid, and
 * shuts everything down on SIGTERM. It never reads network input: only
 * length-checked messages from its children.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../lib/ev.h"
#include "../lib/ipc.h"
#include "../lib/log.h"
#include "../lib/net.h"
#include "../lib/notify.h"
#include "../lib/priv.h"
#include "../lib/tls.h"
#include "../auth/sasl.h"
#include "limits.h"
#include "role.h"
#include "rolemsg.h"
#include "roles.h"

enum child_role { ROLE_AUTH, ROLE_LOGIN, ROLE_MAIL, ROLE_LMTP, ROLE_DELIVER };

struct child {
	enum child_role	 role;
	pid_t		 pid;
	struct ipc	*ipc;
	uid_t		 uid;
	gid_t		 gid;
	uint64_t	 started;
	unsigned int	 slot;
	unsigned int	 sessions;	/* mail: hand-offs not yet ended */
	bool		 ready;		/* login, lmtp: serving; auth: dropped */
	bool		 retiring;	/* mail: told to exit; route nothing to it */
};

static const struct config *cf;
static const char *conf_path;
static bool foreground;
static struct ev *ev;
static int listen_fds[CONFIG_LISTEN_MAX];	/* listen, then listen_tls */
static unsigned int nlisten;
/* LMTP listeners (lmtp_listen), passed to the LMTP role only. */
static int lmtp_fds[CONFIG_LMTP_LISTEN_MAX];
static unsigned int nlmtp;
static struct child lmtp;
/* The certificate and key, in a memfd handed to each login worker. */
static int tls_fd = -1;
/* auth_workers of them; a worker's slot is its index in tickets. */
static struct child auths[PROTO_AUTH_WORKERS_MAX];
static struct child *logins;
/* Mail and deliver workers: both per uid, told apart by role. */
static struct child mails[MAIL_WORKERS_MAX];
static struct ev_timer restart_timer, shutdown_timer;
static bool stopping, announced;
/* Connections per address across login workers (connlimit.h). */
static int connlimit_fd = -1;
static struct msg_conn_table connlimit_msg;
/* Kept for the master's life so fake SCRAM salts survive auth restarts. */
static unsigned char sasl_secret[SASL_SECRET_LEN];

static void child_msg(struct ipc *ipc, struct ipc_msg *msg, void *arg);
static void announce_when_ready(void);
static void write_ready_file(void);

static const char *
role_name(enum child_role r)
{
	return r == ROLE_AUTH ? "auth" : r == ROLE_LOGIN ? "login" :
	    r == ROLE_LMTP ? "lmtp" : r == ROLE_DELIVER ? "deliver" : "mail";
}

/* Give a worker a fresh channel to auth worker a. */
static void
attach_auth(struct child *c, struct child *a)
{
	struct msg_auth_channel ch = { .index = a->slot,
	    .count = cf->auth_workers };
	int fds[2];

	if (a->ipc == NULL || c->ipc == NULL)
		return;
	if (ipc_pair(fds) < 0) {
		log_warn("socketpair");
		return;
	}
	ipc_send(a->ipc, MSG_AUTH_ATTACH, NULL, 0, fds[0]);
	ipc_send(c->ipc, MSG_AUTH_CHANNEL, &ch, sizeof(ch), fds[1]);
	close(fds[0]);
	close(fds[1]);
}

/* Give a worker a channel to every auth worker. */
static void
attach_auths(struct child *c)
{
	for (unsigned int i = 0; i < cf->auth_workers; i++)
		attach_auth(c, &auths[i]);
}

/*
 * In the child: the channel and the role's listeners where the role
 * expects them (roles.h), then postinod again as that role. Never returns.
 */
static void __attribute__((noreturn))
exec_role(const struct child *c, int fd)
{
	char uidbuf[16], gidbuf[16], nbuf[16];
	char *argv[16];
	int argc = 0;
	sigset_t none;
	/* The listeners this role gets: login's or LMTP's. */
	int *lfds = c->role == ROLE_LMTP ? lmtp_fds : listen_fds;
	unsigned int nl = c->role == ROLE_LMTP ? nlmtp :
	    c->role == ROLE_LOGIN ? nlisten : 0;

	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	/* Lay the inherited fds out where the role expects them. */
	if (fd < ROLE_LISTEN_FD + CONFIG_LISTEN_MAX) {
		fd = fcntl(fd, F_DUPFD, ROLE_LISTEN_FD + CONFIG_LISTEN_MAX);
		if (fd < 0)
			_exit(1);
	}
	for (unsigned int i = 0; i < nl; i++) {
		int t = fcntl(lfds[i], F_DUPFD,
		    ROLE_LISTEN_FD + CONFIG_LISTEN_MAX + 1);

		if (t < 0)
			_exit(1);
		lfds[i] = t;
	}
	for (unsigned int i = 0; i < nl; i++)
		if (dup2(lfds[i], ROLE_LISTEN_FD + (int)i) < 0)
			_exit(1);
	if (dup2(fd, ROLE_MASTER_FD) < 0)
		_exit(1);
	str_fmt(uidbuf, sizeof(uidbuf), "%u", (unsigned)c->uid);
	str_fmt(gidbuf, sizeof(gidbuf), "%u", (unsigned)c->gid);
	str_fmt(nbuf, sizeof(nbuf), "%u", c->role == ROLE_LMTP ? nlmtp :
	    nlisten);
	argv[argc++] = "postinod";
	argv[argc++] = "-c";
	argv[argc++] = (char *)conf_path;
	if (foreground)
		argv[argc++] = "-f";
	argv[argc++] = "-R";
	argv[argc++] = (char *)role_name(c->role);
	argv[argc++] = "-u";
	argv[argc++] = uidbuf;
	argv[argc++] = "-g";
	argv[argc++] = gidbuf;
	argv[argc++] = "-n";
	argv[argc++] = nbuf;
	argv[argc] = NULL;
	/* Everything but stdio, the channel and the listeners closes on exec. */
	closefrom(ROLE_LISTEN_FD + (int)nl);
	execv("/proc/self/exe", argv);
	_exit(127);
}

/* What a new child gets first: auth channels, its table, TLS, its secret. */
static void
equip(struct child *c)
{
	if (c->role != ROLE_AUTH)
		attach_auths(c);
	if (c->role == ROLE_LOGIN) {
		connlimit_msg.slot = c->slot;
		ipc_send(c->ipc, MSG_CONN_TABLE, &connlimit_msg,
		    sizeof(connlimit_msg), connlimit_fd);
	}
	if (c->role == ROLE_LOGIN && tls_fd >= 0)
		ipc_send(c->ipc, MSG_TLS_CONFIG, NULL, 0, tls_fd);
	if (c->role == ROLE_AUTH) {
		struct msg_auth_init init = { .index = c->slot };

		memcpy(init.secret, sasl_secret, sizeof(init.secret));
		ipc_send(c->ipc, MSG_AUTH_SECRET, &init, sizeof(init), -1);
		explicit_bzero(&init, sizeof(init));
	}
}

static int
spawn(struct child *c)
{
	int fds[2];
	pid_t pid;

	if (ipc_pair(fds) < 0) {
		log_warn("socketpair");
		return -1;
	}
	pid = fork();
	if (pid < 0) {
		log_warn("fork");
		close(fds[0]);
		close(fds[1]);
		return -1;
	}
	if (pid == 0)
		exec_role(c, fds[1]);
	close(fds[1]);
	c->pid = pid;
	c->ready = false;
	c->started = ev_now_ms();
	c->ipc = ipc_new(ev, fds[0], child_msg, c);
	if (c->ipc == NULL) {
		close(fds[0]);
		kill(pid, SIGTERM);
		return -1;
	}
	log_debug("event=spawn role=%s pid=%ld uid=%u", role_name(c->role),
	    (long)pid, (unsigned)c->uid);
	equip(c);
	return 0;
}

/*
 * The mail worker for a uid: the least busy of its pool, or a new one while
 * the pool is smaller than mail_workers and every member is busy, so one
 * uid's sessions (virtual mail) spread over every core.
 */
static struct child *
mail_worker(enum child_role role, uid_t uid, gid_t gid)
{
	struct child *best = NULL, *free_slot = NULL;
	unsigned int pool = 0;

	for (unsigned int i = 0; i < MAIL_WORKERS_MAX; i++) {
		struct child *c = &mails[i];

		if (c->pid == 0) {
			if (free_slot == NULL)
				free_slot = c;
			continue;
		}
		if (c->role != role || c->uid != uid || c->gid != gid ||
		    c->retiring || c->ipc == NULL)
			continue;
		pool++;
		if (best == NULL || c->sessions < best->sessions)
			best = c;
	}
	if (best != NULL && (best->sessions == 0 || pool >= cf->mail_workers))
		return best;
	if (free_slot == NULL) {
		if (best == NULL)
			log_warnx("event=mail-workers-exhausted max=%d",
			    MAIL_WORKERS_MAX);
		return best;
	}
	*free_slot = (struct child){ .role = role, .uid = uid, .gid = gid };
	if (spawn(free_slot) < 0) {
		free_slot->pid = 0;
		return best;
	}
	return free_slot;
}

/* A worker's sessions are over: one (no body) or msg_ended's count. */
static void
sessions_ended(struct child *c, const struct ipc_msg *msg)
{
	struct msg_ended m = { .count = 1 };

	if (msg->len != 0 && !proto_take(msg->data, msg->len, &m, sizeof(m))) {
		log_warnx("event=protocol-error role=%s msg=session-end",
		    role_name(c->role));
		return;
	}
	c->sessions = m.count < c->sessions ? c->sessions - m.count : 0;
}

static void
route_handoff(struct ipc_msg *msg)
{
	const struct msg_handoff *h = (const struct msg_handoff *)msg->data;
	bool root = priv_is_root();	/* one system call, not three */
	struct child *m;

	if (msg->len != sizeof(struct msg_handoff) || msg->fd < 0) {
		log_warnx("event=protocol-error role=login msg=handoff");
		return;
	}
	/* Mail is never read with uid or gid 0, whatever the passwd-file says. */
	if (root && (h->uid == 0 || h->gid == 0)) {
		static const char no[] = "-ERR [SYS/PERM] Mailbox unavailable.\r\n";
		ssize_t w = write(msg->fd, no, sizeof(no) - 1);

		(void)w;
		log_warnx("event=handoff-refused reason=root-ids uid=%u gid=%u",
		    (unsigned)h->uid, (unsigned)h->gid);
		return;
	}
	m = mail_worker(ROLE_MAIL, root ? h->uid : getuid(),
	    root ? h->gid : getgid());
	if (m != NULL && ipc_send(m->ipc, MSG_HANDOFF, msg->data, msg->len,
	    msg->fd) == 0) {
		m->sessions++;
	} else {
		static const char busy[] = "-ERR [SYS/TEMP] Mail service "
		    "unavailable, try later.\r\n";
		ssize_t w = write(msg->fd, busy, sizeof(busy) - 1);

		(void)w;
	}
}

/*
 * One LMTP recipient's delivery channel to the deliver worker of its uid.
 * The uid is the LMTP role's claim; the worker checks it with auth. When
 * no worker can take it, the fd closes and LMTP answers 4xx.
 */
static void
route_delivery(struct ipc_msg *msg)
{
	struct msg_deliver_channel ch;
	struct child *d;

	if (!proto_take(msg->data, msg->len, &ch, sizeof(ch)) || msg->fd < 0 ||
	    (priv_is_root() && (ch.uid == 0 || ch.gid == 0))) {
		log_warnx("event=protocol-error role=lmtp msg=deliver-channel");
		return;
	}
	d = mail_worker(ROLE_DELIVER, priv_is_root() ? ch.uid : getuid(),
	    priv_is_root() ? ch.gid : getgid());
	if (d != NULL && ipc_send(d->ipc, MSG_DELIVER_CHANNEL, NULL, 0,
	    msg->fd) == 0)
		d->sessions++;
}

static void
child_msg(struct ipc *ipc, struct ipc_msg *msg, void *arg)
{
	struct child *c = arg;

	(void)ipc;
	if (msg == NULL) {
		/* The child is exiting; SIGCHLD does the bookkeeping. */
		ipc_free(&c->ipc);
		return;
	}
	if (c->role == ROLE_LOGIN && msg->type == MSG_HANDOFF)
		route_handoff(msg);
	else if ((c->role == ROLE_LOGIN || c->role == ROLE_LMTP ||
	    c->role == ROLE_AUTH) && msg->type == MSG_READY) {
		c->ready = true;
		announce_when_ready();
	} else if (c->role == ROLE_LMTP && msg->type == MSG_DELIVER_CHANNEL)
		route_delivery(msg);
	else if ((c->role == ROLE_MAIL || c->role == ROLE_DELIVER) &&
	    msg->type == MSG_SESSION_END)
		sessions_ended(c, msg);
	else if ((c->role == ROLE_MAIL || c->role == ROLE_DELIVER) &&
	    msg->type == MSG_IDLE) {
		/* Retire it only if no hand-off is on its way to it. */
		if (c->sessions == 0 && !stopping) {
			c->retiring = true;
			ipc_send(c->ipc, MSG_SHUTDOWN, NULL, 0, -1);
		}
	} else
		log_warnx("event=protocol-error role=%s msg=%u",
		    role_name(c->role), msg->type);
	if (msg->fd >= 0)
		close(msg->fd);
}

/*
 * The ready file appears once every login worker serves and every auth
 * worker has dropped its privileges (and installed its filter): no
 * start-up races, and no role still runs as root when it is there.
 */
static void
announce_when_ready(void)
{
	if (announced)
		return;
	for (unsigned int i = 0; i < cf->auth_workers; i++)
		if (!auths[i].ready)
			return;
	for (unsigned int i = 0; i < cf->login_workers; i++)
		if (!logins[i].ready)
			return;
	if (nlmtp > 0 && !lmtp.ready)
		return;
	announced = true;
	write_ready_file();
	if (notify_send("READY=1") < 0)
		log_warn("NOTIFY_SOCKET");
	log_info("event=ready");
}

static bool
children_left(void)
{
	if (lmtp.pid > 0)
		return true;
	for (unsigned int i = 0; i < cf->auth_workers; i++)
		if (auths[i].pid > 0)
			return true;
	for (unsigned int i = 0; i < cf->login_workers; i++)
		if (logins[i].pid > 0)
			return true;
	for (unsigned int i = 0; i < MAIL_WORKERS_MAX; i++)
		if (mails[i].pid > 0)
			return true;
	return false;
}

static void
restart_dead(struct ev *e, void *arg)
{
	(void)e;
	(void)arg;
	if (stopping)
		return;
	for (unsigned int a = 0; a < cf->auth_workers; a++) {
		struct child *au = &auths[a];

		if (au->pid != 0)
			continue;
		if (spawn(au) < 0) {
			au->pid = 0;
			continue;
		}
		/* Every worker's old channel died with the old auth. */
		for (unsigned int i = 0; i < cf->login_workers; i++)
			attach_auth(&logins[i], au);
		if (lmtp.pid > 0)
			attach_auth(&lmtp, au);
		for (unsigned int i = 0; i < MAIL_WORKERS_MAX; i++)
			if (mails[i].pid > 0)
				attach_auth(&mails[i], au);
	}
	for (unsigned int i = 0; i < cf->login_workers; i++)
		if (logins[i].pid == 0 && spawn(&logins[i]) < 0)
			logins[i].pid = 0;
	if (nlmtp > 0 && lmtp.pid == 0 && spawn(&lmtp) < 0)
		lmtp.pid = 0;
}

static struct child *
find_child(pid_t pid)
{
	for (unsigned int i = 0; i < cf->auth_workers; i++)
		if (auths[i].pid == pid)
			return &auths[i];
	if (lmtp.pid == pid)
		return &lmtp;
	for (unsigned int i = 0; i < cf->login_workers; i++)
		if (logins[i].pid == pid)
			return &logins[i];
	for (unsigned int i = 0; i < MAIL_WORKERS_MAX; i++)
		if (mails[i].pid == pid)
			return &mails[i];
	return NULL;
}

static void
on_chld(struct ev *e, int signo, void *arg)
{
	bool restart = false, pause = false;
	pid_t pid;
	int status;

	(void)signo;
	(void)arg;
	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		struct child *c = find_child(pid);

		if (c == NULL)
			continue;
		if (!stopping || !(WIFEXITED(status) && WEXITSTATUS(status) == 0))
			log_info("event=exit role=%s pid=%ld status=%d signal=%d",
			    role_name(c->role), (long)pid,
			    WIFEXITED(status) ? WEXITSTATUS(status) : -1,
			    WIFSIGNALED(status) ? WTERMSIG(status) : 0);
		ipc_free(&c->ipc);
		c->pid = 0;
		if (c->role != ROLE_MAIL && c->role != ROLE_DELIVER) {
			restart = true;
			if (ev_now_ms() - c->started < RESTART_PAUSE_MS)
				pause = true;
		}
	}
	if (stopping) {
		if (!children_left())
			ev_stop(e);
		return;
	}
	if (restart)
		ev_timer_start(e, &restart_timer, pause ? RESTART_PAUSE_MS : 0);
}

static void
signal_all(int signo)
{
	for (unsigned int i = 0; i < cf->auth_workers; i++)
		if (auths[i].pid > 0)
			kill(auths[i].pid, signo);
	if (lmtp.pid > 0)
		kill(lmtp.pid, signo);
	for (unsigned int i = 0; i < cf->login_workers; i++)
		if (logins[i].pid > 0)
			kill(logins[i].pid, signo);
	for (unsigned int i = 0; i < MAIL_WORKERS_MAX; i++)
		if (mails[i].pid > 0)
			kill(mails[i].pid, signo);
}

static void
shutdown_overdue(struct ev *e, void *arg)
{
	(void)arg;
	log_warnx("event=shutdown-overdue: killing the roles left");
	signal_all(SIGKILL);
	ev_stop(e);
}

/* SIGTERM and SIGINT (role.c). */
static void
stop_all(void)
{
	if (stopping)
		return;
	log_info("event=shutdown signal=%d", role_stop_signal());
	stopping = true;
	(void)notify_send("STOPPING=1");
	for (unsigned int i = 0; i < nlisten; i++)
		close(listen_fds[i]);
	for (unsigned int i = 0; i < nlmtp; i++)
		close(lmtp_fds[i]);
	/* Mail workers first: sessions in UPDATE finish before they exit. */
	signal_all(SIGTERM);
	ev_timer_start(ev, &shutdown_timer, SHUTDOWN_WAIT_MS);
	if (!children_left())
		ev_stop(ev);
}

static int
read_small_file(const char *path, char *buf, size_t size, size_t *len_r,
    char *err)
{
	size_t len = 0;
	ssize_t n;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0) {
		str_fmt(err, ERR_LEN, "%s: %s", path, strerror(errno));
		return -1;
	}
	while (len < size && (n = read(fd, buf + len, size - len)) > 0)
		len += (size_t)n;
	close(fd);
	if (len == size) {
		str_fmt(err, ERR_LEN, "%s: larger than %d octets", path,
		    TLS_FILE_MAX);
		return -1;
	}
	*len_r = len;
	return 0;
}

/*
 * Read tls_cert and tls_key (as root, before any role runs), check that they
 * make a working context, and keep them in a memfd that login workers
 * receive over their channel: they build their context from it in the
 * chroot, and mail workers never see it. A memfd, or -1 with err.
 */
static int
tls_material_load(char *err)
{
	size_t cap = 2 * TLS_FILE_MAX + 2, len = 0, klen = 0;
	char *buf = malloc(cap);
	struct tls_ctx *ctx;
	int fd = -1;

	if (buf == NULL) {
		str_copy(err, ERR_LEN, "out of memory");
		return -1;
	}
	if (read_small_file(cf->tls_cert, buf, TLS_FILE_MAX, &len, err) < 0)
		goto out;
	buf[len++] = '\n';
	if (read_small_file(cf->tls_key, buf + len, TLS_FILE_MAX, &klen,
	    err) < 0)
		goto out;
	len += klen;
	ctx = tls_ctx_new(buf, len, cf->tls_min_version, err);
	if (ctx == NULL)
		goto out;
	tls_ctx_free(&ctx);
	fd = memfd_create("postino-tls", MFD_CLOEXEC);
	if (fd < 0 || write(fd, buf, len) != (ssize_t)len) {
		str_fmt(err, ERR_LEN, "memfd: %s", strerror(errno));
		if (fd >= 0)
			close(fd);
		fd = -1;
	}
out:
	explicit_bzero(buf, cap);
	free(buf);
	return fd;
}

/* SIGHUP: new certificate for new connections; sessions keep theirs. */
static void
on_hup(struct ev *e, int signo, void *arg)
{
	char err[ERR_LEN];
	int fd;

	(void)e;
	(void)signo;
	(void)arg;
	if (cf->tls_cert[0] == '\0' || stopping)
		return;
	fd = tls_material_load(err);
	if (fd < 0) {
		log_warnx("event=tls-reload result=failed reason=\"%s\": "
		    "keeping the old certificate", err);
		return;
	}
	if (tls_fd >= 0)
		close(tls_fd);
	tls_fd = fd;
	for (unsigned int i = 0; i < cf->login_workers; i++)
		if (logins[i].ipc != NULL)
			ipc_send(logins[i].ipc, MSG_TLS_CONFIG, NULL, 0, tls_fd);
	log_info("event=tls-reload result=ok");
}

static void
write_ready_file(void)
{
	char tmp[PATH_MAX];
	FILE *fp;

	if (cf->ready_file[0] == '\0')
		return;
	if (str_fmt(tmp, sizeof(tmp), "%s.tmp", cf->ready_file) < 0)
		fatalx("ready_file: path too long");
	fp = fopen(tmp, "we");
	if (fp == NULL)
		fatal("ready_file %s", tmp);
	for (unsigned int i = 0; i < nlisten; i++) {
		struct sockaddr_storage ss;
		socklen_t len = sizeof(ss);
		char addr[NET_ADDR_LEN];

		if (getsockname(listen_fds[i], (struct sockaddr *)&ss, &len) < 0)
			fatal("getsockname");
		net_addr_str(&ss, addr, sizeof(addr), NULL, 0, NULL);
		/* Implicit-TLS listeners are marked, after the plain ones. */
		fprintf(fp, "%s%s\n", i >= cf->nlisten ? "tls " : "", addr);
	}
	for (unsigned int i = 0; i < nlmtp; i++) {
		const struct config_listen *l = &cf->lmtp_listen[i];
		struct sockaddr_storage ss;
		socklen_t len = sizeof(ss);
		char addr[NET_ADDR_LEN];

		if (l->ss.ss_family == AF_UNIX) {
			fprintf(fp, "lmtp unix:%s\n",
			    ((const struct sockaddr_un *)&l->ss)->sun_path);
			continue;
		}
		if (getsockname(lmtp_fds[i], (struct sockaddr *)&ss, &len) < 0)
			fatal("getsockname");
		net_addr_str(&ss, addr, sizeof(addr), NULL, 0, NULL);
		fprintf(fp, "lmtp %s\n", addr);
	}
	if (fclose(fp) != 0 || rename(tmp, cf->ready_file) < 0)
		fatal("ready_file %s", cf->ready_file);
}

/*
 * An LMTP listener. A unix socket gets lmtp_socket_mode and the owner and
 * group configured, so the MTA's delivery agent (Postfix's lmtp runs as
 * postfix) can connect; a stale socket from an earlier run is replaced,
 * anything else at the path is an error.
 */
static int
lmtp_listen(const struct config_listen *l, char *err)
{
	const struct sockaddr_un *sun = (const struct sockaddr_un *)&l->ss;
	uid_t uid = (uid_t)-1;
	gid_t gid = (gid_t)-1, ugid;
	struct stat st;
	mode_t old;
	int fd;

	if (l->ss.ss_family != AF_UNIX)
		return net_listen(&l->ss, l->len, 1024, err);
	if ((cf->lmtp_socket_user[0] != '\0' &&
	    priv_user(cf->lmtp_socket_user, &uid, &ugid) < 0) ||
	    (cf->lmtp_socket_group[0] != '\0' &&
	    priv_group(cf->lmtp_socket_group, &gid) < 0)) {
		str_copy(err, ERR_LEN, "lmtp_socket_user or lmtp_socket_group "
		    "does not exist");
		return -1;
	}
	if (lstat(sun->sun_path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode)) {
			str_fmt(err, ERR_LEN, "%s exists and is not a socket",
			    sun->sun_path);
			return -1;
		}
		unlink(sun->sun_path);
	}
	old = umask(0177);	/* no window with wider rights than asked */
	fd = net_listen(&l->ss, l->len, 1024, err);
	umask(old);
	if (fd < 0)
		return -1;
	if (chmod(sun->sun_path, cf->lmtp_socket_mode) < 0 ||
	    ((uid != (uid_t)-1 || gid != (gid_t)-1) &&
	    chown(sun->sun_path, uid, gid) < 0)) {
		str_fmt(err, ERR_LEN, "%s: %s", sun->sun_path, strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

/* Listeners, TLS material and the checks, as root, before any role. */
static void
open_listeners(void)
{
	char err[ERR_LEN];

	for (unsigned int i = 0; i < cf->nlisten + cf->nlisten_tls; i++) {
		const struct config_listen *l = i < cf->nlisten ?
		    &cf->listen[i] : &cf->listen_tls[i - cf->nlisten];

		listen_fds[i] = net_listen(&l->ss, l->len, 1024, err);
		if (listen_fds[i] < 0)
			fatalx("%s", err);
		nlisten++;
	}
	for (unsigned int i = 0; i < cf->nlmtp_listen; i++) {
		lmtp_fds[i] = lmtp_listen(&cf->lmtp_listen[i], err);
		if (lmtp_fds[i] < 0)
			fatalx("lmtp_listen: %s", err);
		nlmtp++;
	}
	if (cf->tls_cert[0] != '\0') {
		tls_fd = tls_material_load(err);
		if (tls_fd < 0)
			fatalx("%s", err);
	}
	if (config_check(cf, priv_is_root(), err) < 0)
		fatalx("%s: %s", conf_path, err);
	if (priv_is_root()) {
		if (mkdir(cf->login_chroot, 0755) < 0 && errno != EEXIST)
			fatal("login_chroot %s", cf->login_chroot);
	} else {
		log_info("event=start mode=unprivileged uid=%u: every role runs "
		    "as this user", (unsigned)getuid());
	}
}

/* The roles' shared secret and the login workers' connection table. */
static void
make_shared_state(void)
{
	if (getrandom(sasl_secret, sizeof(sasl_secret), 0) !=
	    (ssize_t)sizeof(sasl_secret) ||
	    getrandom(connlimit_msg.secret, sizeof(connlimit_msg.secret), 0) !=
	    (ssize_t)sizeof(connlimit_msg.secret))
		fatal("getrandom");
	connlimit_msg.nslots = cf->login_workers;
	connlimit_msg.entries = connlimit_entries(cf->max_sessions);
	connlimit_fd = memfd_create("postino-connlimit", MFD_CLOEXEC);
	if (connlimit_fd < 0 || ftruncate(connlimit_fd, (off_t)connlimit_size(
	    connlimit_msg.nslots, connlimit_msg.entries)) < 0)
		fatal("connection table");
}

/* The roles started once: auth first (the others get channels to it). */
static void
start_roles(void)
{
	logins = calloc(cf->login_workers, sizeof(*logins));
	if (logins == NULL)
		fatal("calloc");
	for (unsigned int i = 0; i < cf->auth_workers; i++) {
		auths[i].role = ROLE_AUTH;
		auths[i].slot = i;
		if (spawn(&auths[i]) < 0)
			fatalx("cannot start the auth role");
	}
	for (unsigned int i = 0; i < cf->login_workers; i++) {
		logins[i].role = ROLE_LOGIN;
		logins[i].slot = i;
		if (spawn(&logins[i]) < 0)
			fatalx("cannot start a login worker");
	}
	if (nlmtp > 0) {
		lmtp.role = ROLE_LMTP;
		if (spawn(&lmtp) < 0)
			fatalx("cannot start the LMTP role");
	}
}

static const struct role_signal master_signals[] = {
	{ SIGCHLD, on_chld },
	{ SIGHUP, on_hup },
	{ 0, NULL },
};

/* No master above it, and root kept: it starts the roles as their users. */
static const struct role master_role = {
	.stop = stop_all,
	.master = true,
	.signals = master_signals,
};

int
master_main(const struct config *config, const char *path, bool fg)
{
	cf = config;
	conf_path = path;
	foreground = fg;
	notify_init();
	log_set_ident("postinod");
	open_listeners();
	make_shared_state();
	ev = role_start(&master_role);
	ev_timer_init(&restart_timer, restart_dead, NULL);
	ev_timer_init(&shutdown_timer, shutdown_overdue, NULL);
	signal(SIGPIPE, SIG_IGN);
	start_roles();
	log_info("event=start listeners=%u tls_listeners=%u login_workers=%u "
	    "auth_workers=%u", cf->nlisten, cf->nlisten_tls, cf->login_workers,
	    cf->auth_workers);
	role_run();
	if (cf->ready_file[0] != '\0')
		unlink(cf->ready_file);
	for (unsigned int i = 0; i < cf->auth_workers; i++)
		ipc_free(&auths[i].ipc);
	ipc_free(&lmtp.ipc);
	for (unsigned int i = 0; i < nlmtp; i++)
		if (cf->lmtp_listen[i].ss.ss_family == AF_UNIX)
			unlink(((const struct sockaddr_un *)
			    &cf->lmtp_listen[i].ss)->sun_path);
	for (unsigned int i = 0; i < cf->login_workers; i++)
		ipc_free(&logins[i].ipc);
	for (unsigned int i = 0; i < MAIL_WORKERS_MAX; i++)
		ipc_free(&mails[i].ipc);
	free(logins);
	if (tls_fd >= 0)
		close(tls_fd);
	close(connlimit_fd);
	role_end();
	log_info("event=stopped");
	return 0;
}
