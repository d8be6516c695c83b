/*
 * The login role: accepts connections and runs the AUTHORIZATION state for
 * thousands of them in one event loop, chrooted to an empty directory as an
 * unprivileged user. It sees no mail and no password hash: credentials go to
 * the auth role, and a logged-in connection is handed, with any input the
 * client pipelined after PASS, to a mail worker through the master. This
 * file is the role (accepting, PROXY headers, TLS reload, the hand-off, the
 * messages of the other roles); the commands are in login_cmds.c.
 */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../lib/cidr.h"
#include "../lib/ev.h"
#include "../lib/ipc.h"
#include "../lib/list.h"
#include "../lib/log.h"
#include "../lib/net.h"
#include "../lib/priv.h"
#include "../lib/proxyproto.h"
#include "../lib/sandbox.h"
#include "../lib/tls.h"
#include "capa.h"
#include "connlimit.h"
#include "limits.h"
#include "penalty.h"
#include "login.h"
#include "proxy.h"
#include "role.h"
#include "rolemsg.h"
#include "roles.h"


static const struct config *cf;
static struct ev *ev;
static struct login_conn *conns;
static unsigned int nconns;
static int listen_fds[CONFIG_LISTEN_MAX];	/* plain, then implicit TLS */
static unsigned int nlisten;
static struct tls_ctx *tls_ctx;		/* from the master; NULL: no TLS */
static bool shutting_down;
static struct ev_timer accept_pause;
static bool conn_table_seen;

static void conn_tls_ready(struct session *s);

struct tls_ctx *
login_tls_ctx(void)
{
	return tls_ctx;
}

/*
 * The auth worker for this client's network (penalty_route()), so its
 * penalty holds across connections and login workers; NULL while that
 * worker is being restarted.
 */
struct ipc *
login_auth_for(struct login_conn *c)
{
	if (role_nauth() == 0)
		return NULL;
	c->auth_idx = penalty_route(c->s.ip) % role_nauth();
	return role_auth(c->auth_idx);
}

/* A ticket that will not be handed off: give it back to its issuer. */
void
login_ticket_release(const char *ticket)
{
	struct msg_release rl = { 0 };
	int w = proto_ticket_worker(ticket);

	struct ipc *a = w < 0 ? NULL : role_auth((unsigned int)w);

	if (a == NULL)
		return;
	str_copy(rl.ticket, sizeof(rl.ticket), ticket);
	ipc_send(a, MSG_AUTH_RELEASE, &rl, sizeof(rl), -1);
	explicit_bzero(&rl, sizeof(rl));
}

static void
conn_closed(struct session *s)
{
	struct login_conn *c = s->owner;

	login_cancel(c);
	ev_timer_stop(ev, &c->deadline);
	ev_timer_stop(ev, &c->delay);
	connlimit_release(&c->lim);
	LIST_UNLINK(conns, c);
	nconns--;
	explicit_bzero(c, sizeof(*c));
	free(c);
}

static const struct session_ops login_ops = {
	.commands = login_commands,
	.closed = conn_closed,
	.tls_ready = conn_tls_ready,
	.intercept = login_sasl_line,
};

/*
 * Pass the logged-in connection to a mail worker through the master. A TLS
 * connection stays here: the mail worker gets one end of a socketpair and
 * this worker relays plaintext (the TLS key never leaves the login role).
 */
void
login_handoff(struct login_conn *c, const struct msg_verdict *v)
{
	struct msg_handoff *h = calloc(1, sizeof(*h));
	struct session_handover *ho = calloc(1, sizeof(*ho));
	int sv[2] = { -1, -1 }, give;

	if (h == NULL || ho == NULL || (conn_tls(&c->s.conn) != NULL &&
	    socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0,
	    sv) < 0)) {
		login_ticket_release(v->ticket);
		session_reply(&c->s, "-ERR [SYS/TEMP] Out of resources, try "
		    "later.");
		session_end(&c->s);
		goto out;
	}
	h->uid = v->uid;
	h->gid = v->gid;
	h->port = c->s.port;
	h->method = c->method;
	str_copy(h->session, sizeof(h->session), c->s.id);
	str_copy(h->ip, sizeof(h->ip), c->s.ip);
	str_copy(h->user, sizeof(h->user), c->user);
	memcpy(h->ticket, v->ticket, sizeof(h->ticket));
	h->capa = login_capa_flags(&c->s);
	login_sasl_mechs(&c->s, h->sasl, sizeof(h->sasl));
	if (session_detach(&c->s, ho) < 0) {
		log_warnx("session=%s event=handoff-failed reason=output",
		    h->session);
		login_ticket_release(v->ticket);
		session_close(&c->s);
		goto out;
	}
	/* c is gone now. */
	memcpy(h->in, ho->in, ho->inlen);
	h->inlen = (uint32_t)ho->inlen;
	if (ho->tls == NULL) {
		memcpy(h->out, ho->out, ho->outlen);
		h->outlen = (uint32_t)ho->outlen;
		give = ho->fd;
	} else {
		give = sv[1];
		if (proxy_start(ev, ho->tls, ho->fd, sv[0], h->session, ho->out,
		    ho->outlen, cf->idle_timeout * 1000) < 0) {
			log_warnx("session=%s event=handoff-failed reason=proxy",
			    h->session);
			tls_conn_free(&ho->tls);
			close(ho->fd);
			close(sv[0]);
			give = -1;
		}
		sv[0] = -1;
	}
	if (give < 0 ||
	    role_send(MSG_HANDOFF, h, sizeof(*h), give) < 0) {
		if (give >= 0)
			log_warnx("session=%s event=handoff-failed",
			    h->session);
		login_ticket_release(h->ticket);
	}
	if (give >= 0)
		close(give);
	if (ho->tls == NULL)
		sv[1] = -1;
	else if (give == sv[1])
		sv[1] = -1;
out:
	if (sv[0] >= 0)
		close(sv[0]);
	if (sv[1] >= 0)
		close(sv[1]);
	if (h != NULL)
		explicit_bzero(h, sizeof(*h));
	if (ho != NULL)
		explicit_bzero(ho, sizeof(*ho));
	free(h);
	free(ho);
}

/* Auth worker idx is gone: its pending requests fail temporarily. */
static void
fail_pending(unsigned int idx)
{
	for (struct login_conn *c = conns; c != NULL; c = c->next) {
		if ((c->req == 0 && c->sasl_req == 0) || c->auth_idx != idx)
			continue;
		login_req_end(&c->req);
		login_sasl_end(c, false);
		c->verdict = AUTH_TEMPFAIL;
		ev_timer_start(ev, &c->delay, 0);
	}
}

static void
auth_msg(unsigned int idx, struct ipc_msg *msg)
{
	if (msg == NULL) {
		log_warnx("event=auth-lost worker=%u", idx);
		fail_pending(idx);
		return;
	}
	if (msg->type == MSG_AUTH_VERDICT)
		login_on_verdict(msg);
	else if (msg->type == MSG_SASL_REPLY)
		login_on_sasl_reply(msg);
}

static void
deadline(struct ev *e, void *arg)
{
	struct login_conn *c = arg;

	(void)e;
	log_info("session=%s event=timeout state=authorization ip=%s",
	    c->s.id, c->s.ip);
	session_set_end(&c->s, "timeout");
	session_reply(&c->s, "-ERR Disconnected: no login in time.");
	session_end(&c->s);
}

static void on_listen(struct ev *e, int fd, unsigned int events, void *arg);
static void watch_listeners(void);

/* 0 when a connection was taken (or refused), -1 when there was none. */
static void
greet(struct login_conn *c)
{
	if (cf->apop) {
		/* RFC 1939 sec. 7: a timestamp unique to this greeting. */
		str_fmt(c->timestamp, sizeof(c->timestamp), "<%s.%ld@postino>",
		    c->s.id, (long)getpid());
		session_reply(&c->s, "+OK %s %s", cf->greeting, c->timestamp);
	} else {
		session_reply(&c->s, "+OK %s", cf->greeting);
	}
}

static void
conn_tls_ready(struct session *s)
{
	struct login_conn *c = s->owner;

	c->have_user = false;
	if (c->implicit_tls) {
		greet(c);
		session_resume(s);
	}
}

/*
 * Whether one more refused connection may be logged: at most
 * REFUSAL_LOGS_PER_SEC a second; the rest are counted, and the count is
 * logged with the next second's first refusal.
 */
static bool
refusal_log_ok(void)
{
	static uint64_t second;
	static unsigned int logged, suppressed;
	uint64_t now = ev_now_ms() / 1000;

	if (now != second) {
		if (suppressed > 0)
			log_info("event=connection-refused suppressed=%u",
			    suppressed);
		second = now;
		logged = suppressed = 0;
	}
	if (logged++ < REFUSAL_LOGS_PER_SEC)
		return true;
	suppressed++;
	return false;
}

static void
log_refusal(const char *ip, const char *reason, unsigned int limit)
{
	if (refusal_log_ok())
		log_info("event=connection-refused reason=%s ip=%s limit=%u",
		    reason, ip, limit);
}

/* Tell a refused client why (not on a TLS port: no plaintext there), close. */
static void
refuse(int fd, bool implicit_tls, const char *msg, size_t len)
{
	if (!implicit_tls) {
		ssize_t w = send(fd, msg, len, MSG_NOSIGNAL);

		(void)w;
	}
	close(fd);
}

/*
 * Count the connection against its client's address (the socket's, or the
 * PROXY header's), then greet it or begin implicit TLS. proxy_ip: the
 * proxy it came through, for the log; NULL when it came directly.
 */
static void
conn_start(int fd, bool implicit_tls, const struct sockaddr_storage *ss,
    const char *proxy_ip)
{
	static const char per_ip[] = "-ERR [SYS/TEMP] Too many connections "
	    "from your address, try later.\r\n";
	struct login_conn *c;
	struct connlimit_ref lim;
	char addr[NET_ADDR_LEN], ip[SESSION_IP_LEN];
	uint16_t port;

	net_addr_str(ss, addr, sizeof(addr), ip, sizeof(ip), &port);
	switch (connlimit_acquire((const struct sockaddr *)ss, &lim)) {
	case CONNLIMIT_OK:
		break;
	case CONNLIMIT_IP:
		log_refusal(ip, "per-ip", cf->max_connections_per_ip);
		refuse(fd, implicit_tls, per_ip, sizeof(per_ip) - 1);
		return;
	case CONNLIMIT_NET:
		log_refusal(ip, "per-net", cf->max_connections_per_net);
		refuse(fd, implicit_tls, per_ip, sizeof(per_ip) - 1);
		return;
	case CONNLIMIT_FULL:
		log_refusal(ip, "table-full", 0);
		refuse(fd, implicit_tls, per_ip, sizeof(per_ip) - 1);
		return;
	}
	c = calloc(1, sizeof(*c));
	if (c == NULL) {
		connlimit_release(&lim);
		close(fd);
		return;
	}
	c->lim = lim;
	session_setup(&c->s, &(struct session_params){ .ip = ip,
	    .port = port, .idle_ms = cf->idle_timeout * 1000,
	    .max_bad = cf->max_bad_commands, .transcript = cf->transcript });
	ev_timer_init(&c->deadline, deadline, c);
	ev_timer_init(&c->delay, login_fail_delayed, c);
	if (session_start(&c->s, ev, fd, &login_ops, c, NULL, 0) < 0) {
		connlimit_release(&c->lim);
		close(fd);
		free(c);
		return;
	}
	LIST_PUSH(conns, c);
	nconns++;
	ev_timer_start(ev, &c->deadline, (uint64_t)cf->login_timeout * 1000);
	log_info("session=%s event=connect ip=%s port=%u%s%s%s", c->s.id,
	    c->s.ip, c->s.port, implicit_tls ? " tls=implicit" : "",
	    proxy_ip != NULL ? " proxy=" : "",
	    proxy_ip != NULL ? proxy_ip : "");
	if (implicit_tls) {
		/* RFC 8314: TLS first; the greeting comes after the handshake. */
		c->implicit_tls = true;
		session_start_tls(&c->s, tls_ctx, true);
		return;
	}
	greet(c);
	session_resume(&c->s);
}

/*
 * A connection on a proxy listener before its PROXY header: from a trusted
 * proxy, not yet counted against any client address (its own is the
 * proxy's), and held at most PROXY_HEADER_TIMEOUT_MS.
 */
struct proxy_wait {
	int		 fd;
	bool		 implicit_tls;
	struct sockaddr_storage peer;
	struct ev_timer	 timer;
	struct proxy_wait *prev, *next;
	struct proxyproto pp;
};

static struct proxy_wait *waits;
static unsigned int nwaits;

static void
proxy_wait_free(struct proxy_wait *w, bool close_fd)
{
	ev_timer_stop(ev, &w->timer);
	ev_io_del(ev, w->fd);
	if (close_fd)
		close(w->fd);
	LIST_UNLINK(waits, w);
	nwaits--;
	free(w);
}

static void
proxy_refused(struct proxy_wait *w, const char *reason)
{
	char addr[NET_ADDR_LEN], ip[SESSION_IP_LEN];
	uint16_t port;

	net_addr_str(&w->peer, addr, sizeof(addr), ip, sizeof(ip), &port);
	log_refusal(ip, reason, 0);
	proxy_wait_free(w, true);
}

static void
proxy_timeout(struct ev *e, void *arg)
{
	(void)e;
	proxy_refused(arg, "proxy-timeout");
}

static void
proxy_readable(struct ev *e, int fd, unsigned int events, void *arg)
{
	struct proxy_wait *w = arg;
	unsigned char buf[PROXYPROTO_MAX];
	struct proxyproto_result r;
	enum proxyproto_state st;
	size_t used;
	ssize_t n;

	(void)e;
	(void)events;
	/*
	 * Peek, let the parser take what belongs to the header, and consume
	 * only that: what follows (a ClientHello) stays for the session.
	 */
	n = recv(fd, buf, sizeof(buf) - w->pp.len, MSG_PEEK);
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK ||
	    errno == EINTR))
		return;
	/*
	 * Closed before a single octet: HAProxy's plain `check` (a TCP
	 * connect), every few seconds; logging it would only be noise.
	 */
	if (n == 0 && w->pp.len == 0) {
		proxy_wait_free(w, true);
		return;
	}
	if (n <= 0) {
		proxy_refused(w, n == 0 ? "proxy-closed" : "proxy-error");
		return;
	}
	st = proxyproto_feed(&w->pp, buf, (size_t)n, &used, &r);
	if (used > 0 && recv(fd, buf, used, 0) != (ssize_t)used) {
		proxy_refused(w, "proxy-error");
		return;
	}
	if (st == PROXYPROTO_MORE)
		return;
	if (st == PROXYPROTO_BAD) {
		char addr[NET_ADDR_LEN], ip[SESSION_IP_LEN];
		uint16_t port;

		net_addr_str(&w->peer, addr, sizeof(addr), ip, sizeof(ip),
		    &port);
		if (refusal_log_ok())
			log_info("event=proxy-header-refused reason=%s "
			    "proxy=%s", w->pp.why, ip);
		proxy_wait_free(w, true);
		return;
	}
	{
		char addr[NET_ADDR_LEN], proxy_ip[SESSION_IP_LEN];
		struct sockaddr_storage client;
		bool implicit_tls = w->implicit_tls;
		uint16_t port;

		net_addr_str(&w->peer, addr, sizeof(addr), proxy_ip,
		    sizeof(proxy_ip), &port);
		/* LOCAL (a health check), UNKNOWN: the proxy's own address. */
		client = r.has_addr ? r.src : w->peer;
		proxy_wait_free(w, false);
		conn_start(fd, implicit_tls, &client, proxy_ip);
	}
}

static void
proxy_wait_start(int fd, bool implicit_tls, const struct sockaddr_storage *ss)
{
	struct proxy_wait *w;

	if (!cidr_match(&cf->proxy_trusted, (const struct sockaddr *)ss)) {
		char addr[NET_ADDR_LEN], ip[SESSION_IP_LEN];
		uint16_t port;

		/* No reply: the peer speaks PROXY, or is someone else. */
		net_addr_str(ss, addr, sizeof(addr), ip, sizeof(ip), &port);
		log_refusal(ip, "proxy-untrusted", 0);
		close(fd);
		return;
	}
	w = calloc(1, sizeof(*w));
	if (w == NULL) {
		close(fd);
		return;
	}
	w->fd = fd;
	w->implicit_tls = implicit_tls;
	w->peer = *ss;
	proxyproto_init(&w->pp);
	ev_timer_init(&w->timer, proxy_timeout, w);
	if (ev_io_set(ev, fd, EV_READ, proxy_readable, w) < 0) {
		close(fd);
		free(w);
		return;
	}
	LIST_PUSH(waits, w);
	nwaits++;
	ev_timer_start(ev, &w->timer, PROXY_HEADER_TIMEOUT_MS);
}

static int
accept_one(int lfd, bool implicit_tls, bool proxy)
{
	struct sockaddr_storage ss;
	socklen_t sslen = sizeof(ss);
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
	if (nconns + nwaits + proxy_count() >= cf->max_sessions ||
	    shutting_down) {
		static const char busy[] = "-ERR [SYS/TEMP] Too many connections, "
		    "try later.\r\n";

		/* No reply before a proxy's header: it would read it as one. */
		if (proxy)
			close(fd);
		else
			refuse(fd, implicit_tls, busy, sizeof(busy) - 1);
		return 0;
	}
	/* Per-address limits wait for the header's address. */
	if (proxy)
		proxy_wait_start(fd, implicit_tls, &ss);
	else
		conn_start(fd, implicit_tls, &ss, NULL);
	return 0;
}

static void
on_listen(struct ev *e, int fd, unsigned int events, void *arg)
{
	(void)e;
	(void)events;
	(void)arg;
	bool implicit_tls = false, proxy = false;

	for (unsigned int i = 0; i < nlisten; i++) {
		if (listen_fds[i] != fd)
			continue;
		implicit_tls = i >= cf->nlisten;
		proxy = implicit_tls ? cf->listen_tls[i - cf->nlisten].proxy :
		    cf->listen[i].proxy;
	}
	/* Several workers share the socket; take a few, leave some for them. */
	for (int i = 0; i < 16; i++)
		if (accept_one(fd, implicit_tls, proxy) < 0)
			break;
}

/* Implicit-TLS listeners only once there is a certificate to answer with. */
static void
watch_listeners(void)
{
	for (unsigned int i = 0; i < nlisten; i++)
		if (i < cf->nlisten || tls_ctx != NULL)
			if (ev_io_set(ev, listen_fds[i], EV_READ | EV_EXCLUSIVE,
			    on_listen, NULL) < 0)
				fatal("listen fd %d", listen_fds[i]);
}

static void
accept_resume(struct ev *e, void *arg)
{
	(void)e;
	(void)arg;
	watch_listeners();
}

/* Tell the master once this worker can serve every listener it has. */
static void
maybe_ready(void)
{
	if (role_nauth() == 0 || !conn_table_seen ||
	    (cf->tls_cert[0] != '\0' && tls_ctx == NULL))
		return;
	for (unsigned int i = 0; i < role_nauth(); i++)
		if (role_auth(i) == NULL)
			return;
	role_ready();
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
		session_set_end(&conns->s, "shutdown");
		session_end(&conns->s);
		if (conns != NULL && !conns->s.closed)
			session_close(&conns->s);
	}
	while (waits != NULL)
		proxy_wait_free(waits, true);
	proxy_close_all();
	ev_stop(ev);
}

/* The shared connection counts (connlimit.h); without them, no limit. */
static void
setup_conn_table(const struct ipc_msg *msg)
{
	struct connlimit_conf lc = {
		.max_ip = cf->max_connections_per_ip,
		.max_net = cf->max_connections_per_net,
		.prefix4 = cf->connection_prefix_ipv4,
		.prefix6 = cf->connection_prefix_ipv6,
	};
	struct msg_conn_table t;
	struct stat st;
	size_t size;
	void *base;

	if (!proto_take(msg->data, msg->len, &t, sizeof(t)) ||
	    t.nslots == 0 || t.nslots > 64 || t.entries > (1u << 24)) {
		log_warnx("event=protocol-error role=master msg=conn-table");
		return;
	}
	size = connlimit_size(t.nslots, t.entries);
	if (fstat(msg->fd, &st) < 0 || (size_t)st.st_size != size) {
		log_warnx("event=conn-table-refused reason=size");
		return;
	}
	base = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, msg->fd, 0);
	if (base == MAP_FAILED) {
		log_warn("event=conn-table-refused reason=mmap");
		return;
	}
	if (connlimit_setup(base, t.nslots, t.slot, t.entries, t.secret,
	    &lc) < 0) {
		log_warnx("event=conn-table-refused reason=geometry");
		munmap(base, size);
	}
	explicit_bzero(&t, sizeof(t));
}

/* A new certificate from the master: new connections use it at once. */
static void
load_tls(int fd)
{
	char err[ERR_LEN];
	struct tls_ctx *ctx;
	struct stat st;
	char *buf;

	if (fstat(fd, &st) < 0 || st.st_size <= 0 ||
	    st.st_size > TLS_MATERIAL_MAX) {
		log_warnx("event=tls-config-refused reason=size");
		return;
	}
	buf = malloc((size_t)st.st_size);
	if (buf == NULL)
		return;
	if (pread(fd, buf, (size_t)st.st_size, 0) != st.st_size) {
		log_warn("event=tls-config-refused reason=read");
		free(buf);
		return;
	}
	ctx = tls_ctx_new(buf, (size_t)st.st_size, cf->tls_min_version, err);
	explicit_bzero(buf, (size_t)st.st_size);
	free(buf);
	if (ctx == NULL) {
		log_warnx("event=tls-config-refused reason=\"%s\"", err);
		return;
	}
	/* Open connections hold their own reference to the old context. */
	tls_ctx_free(&tls_ctx);
	tls_ctx = ctx;
}

static void
master_msg(struct ipc_msg *msg)
{
	if (msg->type == MSG_CONN_TABLE && msg->fd >= 0 && !conn_table_seen) {
		setup_conn_table(msg);
		close(msg->fd);
		conn_table_seen = true;
		if (!shutting_down)
			watch_listeners();
		maybe_ready();
		return;
	}
	if (msg->type == MSG_TLS_CONFIG && msg->fd >= 0) {
		load_tls(msg->fd);
		close(msg->fd);
		if (!shutting_down)
			watch_listeners();
		maybe_ready();
		return;
	}
	if (msg->fd >= 0)
		close(msg->fd);
}

static const struct role login_role = {
	.stop = stop_all,
	.master_msg = master_msg,
	.auth_msg = auth_msg,
	.auth_up = maybe_ready,
	/* Dropped and chrooted: no open, no socket, no connect from then on. */
	.sandboxed = true,
	.sandbox = SANDBOX_ROLE_LOGIN,
};

int
login_main(const struct config *config, unsigned int n)
{
	char err[ERR_LEN];

	cf = config;
	/* Connects to syslog (daemon mode) while /dev/log is in reach. */
	log_set_ident("postinod/login");
	penalty_set_prefix(cf->auth_penalty_prefix4, cf->auth_penalty_prefix6);
	/* Log times in the local zone: no /etc/localtime in the chroot. */
	tzset();
	role_drop(&(struct role_user){ .key = "login_user",
	    .name = cf->login_user, .chroot = cf->login_chroot });
	/* In the chroot, as before the filter: OpenSSL finds no config. */
	if (tls_init(err) < 0)
		fatalx("%s", err);
	ev = role_start(&login_role);
	login_cmds_init(cf);
	ev_timer_init(&accept_pause, accept_resume, NULL);
	nlisten = n;
	for (unsigned int i = 0; i < n; i++)
		listen_fds[i] = ROLE_LISTEN_FD + (int)i;
	/* Listeners are watched once the connection table has come. */
	role_run();
	tls_ctx_free(&tls_ctx);
	login_cmds_end();
	role_end();
	return 0;
}
