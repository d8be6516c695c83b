#include "session.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/ioctl.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <linux/sockios.h>

#include "../lib/log.h"
#include "../lib/net.h"
#include "../lib/str.h"

static void session_io(struct ev *ev, int fd, unsigned int events, void *arg);
static void session_process(struct session *s);
static void session_begin_tls(struct session *s);

void
session_setup(struct session *s, const struct session_params *p)
{
	if (p->id != NULL)
		str_copy(s->id, sizeof(s->id), p->id);
	else
		session_new_id(s->id);
	str_copy(s->ip, sizeof(s->ip), p->ip);
	s->port = p->port;
	s->idle_ms = p->idle_ms;
	s->max_bad = p->max_bad;
	s->transcript = p->transcript;
}

void
session_new_id(char id[SESSION_ID_LEN + 1])
{
	unsigned char r[SESSION_ID_LEN / 2];

	if (getrandom(r, sizeof(r), 0) != (ssize_t)sizeof(r)) {
		static unsigned long long counter;

		counter++;
		memcpy(r, &counter, sizeof(r) < sizeof(counter) ? sizeof(r) :
		    sizeof(counter));
	}
	str_hex(id, r, sizeof(r));
}

static size_t
out_pending(const struct session *s)
{
	return iobuf_len(&s->out);
}

size_t
session_out_room(const struct session *s)
{
	return iobuf_room(&s->out);
}

/* Sessions of this process whose output may hold SESSION_OUT_BODY. */
static unsigned int out_wide_sessions;

bool
session_out_widen(struct session *s)
{
	if (s->out_wide)
		return true;
	if (out_wide_sessions >= SESSION_OUT_WIDE)
		return false;
	iobuf_set_max(&s->out, SESSION_OUT_BODY);
	if (iobuf_reserve(&s->out, SESSION_OUT_BODY - out_pending(s)) < 0) {
		/* Not the end of anything: the RETR goes out 64 KB at a time. */
		iobuf_set_max(&s->out, SESSION_OUT_MAX);
		return false;
	}
	s->out_wide = true;
	out_wide_sessions++;
	return true;
}

/* Back to the usual limit; only once out is empty (no storage held). */
static void
out_narrow(struct session *s)
{
	if (!s->out_wide || out_pending(s) > 0)
		return;
	iobuf_set_max(&s->out, SESSION_OUT_MAX);
	s->out_wide = false;
	out_wide_sessions--;
}

/* The output buffer's storage, taken when a reply is queued. */
static bool
out_alloc(struct session *s)
{
	if (iobuf_reserve(&s->out, 0) < 0) {
		log_warn("session=%s out of memory", s->id);
		s->closing = true;
		return false;
	}
	return true;
}

char *
session_out_tail(struct session *s, size_t *room_r)
{
	*room_r = 0;
	if (!out_alloc(s))
		return NULL;
	return iobuf_tail(&s->out, room_r);
}

void
session_out_commit(struct session *s, size_t n)
{
	iobuf_commit(&s->out, n);
}

size_t
session_write(struct session *s, const void *buf, size_t len)
{
	if (!out_alloc(s))
		return 0;
	return iobuf_add(&s->out, buf, len);
}

void
session_reply(struct session *s, const char *fmt, ...)
{
	char line[POP3_LINE_MAX];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = str_vline(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if (s->transcript)
		log_info("session=%s S: %.*s", s->id, n - 2, line);
	session_write(s, line, (size_t)n);
}

void
session_set_end(struct session *s, const char *reason)
{
	if (s->end_reason == NULL)
		s->end_reason = reason;
}

/* One line for every session however it ends (README "Log format"). */
static void
session_log_end(struct session *s)
{
	const char *why = s->end_reason != NULL ? s->end_reason : "error";

	if (strcmp(why, "handoff") == 0)
		return;
	log_info("session=%s event=disconnect reason=%s ip=%s commands=%u "
	    "in=%llu out=%llu secs=%llu", s->id, why, s->ip, s->ncommands,
	    (unsigned long long)s->bytes_in, (unsigned long long)s->bytes_out,
	    (unsigned long long)((ev_now_ms() - s->start_ms) / 1000));
}

static void
session_teardown(struct session *s)
{
	session_log_end(s);
	iobuf_free(&s->out);
	out_narrow(s);
	if (!s->handshaking)
		conn_shutdown(&s->conn);
	conn_free(&s->conn);
	ev_timer_stop(s->ev, &s->timer);
	if (s->fd >= 0) {
		ev_io_del(s->ev, s->fd);
		close(s->fd);
		s->fd = -1;
	}
	/* A grown input buffer held a token or a password: wiped. */
	iobuf_free(&s->in);
	s->ops->closed(s);
}

void
session_close(struct session *s)
{
	if (s->closed)
		return;
	s->closed = true;
	if (!s->in_dispatch)
		session_teardown(s);
}

void
session_end(struct session *s)
{
	s->closing = true;
	s->more = false;
	if (!s->in_dispatch)
		session_process(s);
}

static void
session_flush(struct session *s)
{
	if (s->handshaking)
		return;
	while (out_pending(s) > 0) {
		ssize_t n = iobuf_write(&s->out, &s->conn);

		if (n < 0 && errno == EAGAIN)
			return;
		if (n <= 0) {
			session_set_end(s, "error");
			session_close(s);
			return;
		}
		s->bytes_out += (uint64_t)n;
		/* Progress: a long RETR to a reading client never times out. */
		ev_timer_start(s->ev, &s->timer, s->idle_ms);
	}
	/* Drained: an idle session holds no output buffer. */
	if (!s->more) {
		iobuf_shrink(&s->out);
		out_narrow(s);
	}
}

static void
session_timeout(struct ev *ev, void *arg)
{
	struct session *s = arg;
	int queued;

	(void)ev;
	/*
	 * What the kernel still holds for a slow reader is progress too: the
	 * last write may have filled a socket buffer of megabytes that the
	 * client is still draining. Idle means nothing moved for idle_ms.
	 */
	if (ioctl(s->fd, SIOCOUTQ, &queued) == 0 && queued > 0 &&
	    (unsigned int)queued != s->kernel_queued) {
		s->kernel_queued = (unsigned int)queued;
		ev_timer_start(s->ev, &s->timer, s->idle_ms);
		return;
	}
	if (s->ops->timeout != NULL) {
		s->ops->timeout(s);
		return;
	}
	log_info("session=%s event=timeout ip=%s", s->id, s->ip);
	session_set_end(s, "timeout");
	session_reply(s, "-ERR Disconnected for inactivity.");
	/* A failed write closes s: torn down here, once, not inside it. */
	s->in_dispatch = true;
	session_flush(s);
	s->in_dispatch = false;
	s->closed = true;
	session_teardown(s);
}

int
session_start(struct session *s, struct ev *ev, int fd,
    const struct session_ops *ops, void *owner, const void *pre, size_t prelen)
{
	s->ev = ev;
	s->fd = fd;
	conn_init_plain(&s->conn, fd);
	s->ops = ops;
	s->owner = owner;
	s->start_ms = ev_now_ms();
	if (s->idle_ms == 0)
		s->idle_ms = SESSION_IDLE_DEFAULT_MS;
	if (s->max_bad == 0)
		s->max_bad = SESSION_BAD_DEFAULT;
	iobuf_init(&s->in, s->in_small, sizeof(s->in_small), 0,
	    SESSION_IN_MAX, IOBUF_WIPE);
	iobuf_init(&s->out, NULL, 0, 0, SESSION_OUT_MAX, 0);
	if (prelen > iobuf_room(&s->in))
		return -1;
	iobuf_add(&s->in, pre, prelen);
	/*
	 * Every reply leaves in one write (session_process), so Nagle has
	 * nothing to merge and would only delay a reply's last segment.
	 */
	if (net_set_nonblock(fd) < 0 || net_set_nodelay(fd) < 0)
		return -1;
	ev_timer_init(&s->timer, session_timeout, s);
	if (ev_timer_start(ev, &s->timer, s->idle_ms) < 0 ||
	    ev_io_set(ev, fd, EV_READ, session_io, s) < 0) {
		ev_timer_stop(ev, &s->timer);
		return -1;
	}
	return 0;
}

static bool
is_blank(char c)
{
	return c == ' ' || c == '\t';
}

/* How many words of line (keyword first) the transcript may show. */
static unsigned int
transcript_words(const struct session *s, const char *line, size_t len)
{
	const struct session_cmd *cmd;
	size_t k = 0, w;

	while (k < len && is_blank(line[k]))
		k++;
	for (w = k; w < len && !is_blank(line[w]); w++)
		;
	for (cmd = s->ops->commands; cmd->name != NULL; cmd++)
		if (strlen(cmd->name) == w - k &&
		    strncasecmp(cmd->name, line + k, w - k) == 0)
			return cmd->secret == 0 ? UINT_MAX : cmd->secret;
	return 1;
}

static void
transcript_in(struct session *s, const char *line, size_t len)
{
	char clean[POP3_LINE_MAX * 4];
	size_t show = 0, k = 0;
	unsigned int words = s->suspended ? 0 :
	    transcript_words(s, line, len);

	/*
	 * Secrets never reach the log: keep the words the command table
	 * allows, mask the rest, however the client spaces or cases it
	 * (" pass x" is refused, but it is logged before that).
	 */
	for (unsigned int i = 0; i < words && k < len; i++) {
		while (k < len && is_blank(line[k]))
			k++;
		while (k < len && !is_blank(line[k]))
			k++;
		show = k;
	}
	if (words == UINT_MAX)
		show = len;
	str_sanitize(clean, sizeof(clean), line, show);
	log_info("session=%s C: %s%s", s->id, clean, show < len ? " ***" : "");
}

/*
 * A raw command takes the rest of its line, after exactly one space, as its
 * one argument (RFC 1939 PASS: the password may contain spaces).
 */
static const struct session_cmd *
session_find_raw(struct session *s, char *line, struct pop3_args *a)
{
	const struct session_cmd *cmd;
	char *sp = strchr(line, ' ');
	size_t klen = sp ? (size_t)(sp - line) : strlen(line);

	for (cmd = s->ops->commands; cmd->name != NULL; cmd++) {
		if (!cmd->raw || strlen(cmd->name) != klen ||
		    strncasecmp(cmd->name, line, klen) != 0)
			continue;
		memset(a, 0, sizeof(*a));
		str_copy(a->keyword, sizeof(a->keyword), cmd->name);
		if (sp != NULL && sp[1] != '\0') {
			a->argc = 1;
			a->argv[0] = sp + 1;
		}
		return cmd;
	}
	return NULL;
}

/* Act on a command's result: the one place bad commands are counted. */
static void
session_count(struct session *s, enum cmd_result r)
{
	switch (r) {
	case CMD_MORE:
		s->more = true;
		/* FALLTHROUGH */
	case CMD_OK:
		s->bad = 0;
		break;
	case CMD_BAD:
		if (++s->bad >= s->max_bad) {
			session_set_end(s, "bad-commands");
			session_reply(s, "-ERR Too many bad commands.");
			s->closing = true;
		}
		break;
	case CMD_ASYNC:
		break;
	case CMD_CLOSE:
		session_set_end(s, "quit");
		s->closing = true;
		break;
	}
}

static void
session_dispatch(struct session *s, char *line, size_t len)
{
	const struct session_cmd *cmd;
	struct pop3_args a;
	enum cmd_result r;

	if (s->intercept) {
		if (s->transcript)
			log_info("session=%s C: *** (SASL response)", s->id);
		ev_timer_start(s->ev, &s->timer, s->idle_ms);
		session_count(s, s->ops->intercept(s, line, len));
		return;
	}
	if (s->transcript)
		transcript_in(s, line, len);
	s->ncommands++;
	ev_timer_start(s->ev, &s->timer, s->idle_ms);
	/* RFC 1939 sec. 3: a line starts with its keyword. */
	if (memchr(line, '\0', len) != NULL || line[0] == ' ' ||
	    line[0] == '\t') {
		session_reply(s, "-ERR Invalid command.");
		r = CMD_BAD;
		goto done;
	}
	cmd = session_find_raw(s, line, &a);
	if (cmd != NULL) {
		r = cmd->fn(s, &a);
		goto done;
	}
	switch (pop3_parse_line(line, len, &a)) {
	case POP3_PARSE_EMPTY:
		session_reply(s, "-ERR Empty command.");
		r = CMD_BAD;
		goto done;
	case POP3_PARSE_BAD:
		session_reply(s, "-ERR Invalid command.");
		r = CMD_BAD;
		goto done;
	case POP3_PARSE_OK:
		break;
	}
	for (cmd = s->ops->commands; cmd->name != NULL; cmd++)
		if (strcmp(cmd->name, a.keyword) == 0)
			break;
	if (cmd->name == NULL) {
		session_reply(s, "-ERR Unknown command.");
		r = CMD_BAD;
	} else if (a.argc < cmd->min_args || a.argc > cmd->max_args) {
		session_reply(s, "-ERR Wrong number of arguments for %s.",
		    cmd->name);
		r = CMD_BAD;
	} else {
		r = cmd->fn(s, &a);
	}
done:
	session_count(s, r);
}

/* Room for a line of max octets (max > SESSION_IN_MAX). 0 or -1. */
static int
session_in_grow(struct session *s, size_t max)
{
	if (max <= s->in.cap)
		return 0;
	iobuf_set_max(&s->in, max);
	return iobuf_reserve(&s->in, max - iobuf_len(&s->in));
}

/* Back to the small buffer (wiped) once long lines are over and it fits. */
static void
session_in_shrink(struct session *s)
{
	if (s->line_max > SESSION_IN_MAX)
		return;
	iobuf_shrink(&s->in);
	if (s->in.buf == s->in_small)
		iobuf_set_max(&s->in, SESSION_IN_MAX);
}

/* A complete command waits in the input buffer. */
static bool
session_has_line(struct session *s)
{
	return iobuf_len(&s->in) > 0 &&
	    memchr(iobuf_data(&s->in), '\n', iobuf_len(&s->in)) != NULL;
}

/* Take complete lines while nothing stops us; see the throttling rules in session.h. */
static void
session_take_lines(struct session *s)
{
	while (!s->closed && !s->closing && !s->suspended && !s->more &&
	    s->starttls == NULL && !s->handshaking &&
	    out_pending(s) <= SESSION_OUT_HIGH) {
		size_t len, used, max = s->line_max ? s->line_max : POP3_LINE_MAX;
		char *line = iobuf_getline(&s->in, &len, &used);

		if (line == NULL) {
			if (iobuf_len(&s->in) >= max) {
				session_reply(s, "-ERR Line too long.");
				s->closing = true;
			} else if (iobuf_space(&s->in) == 0 &&
			    session_in_grow(s, max) < 0) {
				session_set_end(s, "error");
				s->closing = true;
			}
			return;
		}
		if (used > max) {
			session_reply(s, "-ERR Line too long.");
			s->closing = true;
			return;
		}
		session_dispatch(s, line, len);
		iobuf_consume(&s->in, used);
		iobuf_compact(&s->in);
		session_in_shrink(s);
	}
}

static void
session_process(struct session *s)
{
	unsigned int events;

	s->in_dispatch = true;
	for (int rounds = 0; rounds < 64 && !s->closed; rounds++) {
		size_t before = iobuf_len(&s->in);
		bool was_more = s->more;

		session_take_lines(s);
		/*
		 * A multi-line reply's first block joins its status line (and
		 * any replies before it) in the buffer, so they leave in one
		 * write: with the status line sent alone, the client's delayed
		 * ACK used to hold the body for 40 ms.
		 */
		if (!s->closed && s->more && out_pending(s) < SESSION_OUT_LOW)
			s->ops->more(s);
		if (s->closed)
			break;
		session_flush(s);
		if (s->closed)
			break;
		/* Go on while something moved: input taken, a reply ended or can grow. */
		if (before == iobuf_len(&s->in) && !(was_more && !s->more) &&
		    !(s->more && out_pending(s) < SESSION_OUT_LOW))
			break;
	}
	s->in_dispatch = false;
	if (!s->closed && s->starttls != NULL && out_pending(s) == 0)
		session_begin_tls(s);
	if (s->closed) {
		session_teardown(s);
		return;
	}
	if (s->closing && out_pending(s) == 0) {
		session_close(s);
		return;
	}
	/* The end of the client's stream waited for the commands before it. */
	if (s->peer_closed && !s->suspended && !s->more &&
	    out_pending(s) == 0 && !session_has_line(s)) {
		session_set_end(s, "client-closed");
		session_close(s);
		return;
	}
	/* A reply still to produce waits for writability: fair to other sessions. */
	events = out_pending(s) > 0 || s->more ? EV_WRITE : 0;
	/* Complete commands left after the round limit: come back at once. */
	if (!s->suspended && !s->closing && session_has_line(s))
		events |= EV_WRITE;
	if (!s->closing && !s->peer_closed && iobuf_space(&s->in) > 0 &&
	    out_pending(s) <= SESSION_OUT_HIGH && s->starttls == NULL) {
		events |= EV_READ;
		/*
		 * OpenSSL holds input the buffer had no room for (a long SASL
		 * line before the buffer grew): the socket will not say so.
		 */
		if (!s->suspended && conn_pending(&s->conn))
			events |= EV_WRITE;
	}
	if (s->handshaking || s->conn.want_write)
		events = EV_READ | (s->conn.want_write ? EV_WRITE : 0);
	ev_io_set(s->ev, s->fd, events, session_io, s);
}

static void
session_begin_tls(struct session *s)
{
	struct tls_conn *tls = tls_conn_new(s->starttls, s->fd, true, NULL);

	s->starttls = NULL;
	if (tls == NULL) {
		log_warnx("session=%s event=tls-failed reason=setup", s->id);
		session_close(s);
		return;
	}
	conn_init_tls(&s->conn, s->fd, tls);
	/* Whatever came in plaintext after the command is dropped. */
	iobuf_consume(&s->in, iobuf_len(&s->in));
	s->handshaking = true;
}

int
session_start_tls(struct session *s, struct tls_ctx *ctx, bool now)
{
	s->starttls = ctx;
	if (now) {
		session_begin_tls(s);
		if (s->closed)
			return -1;
	}
	return 0;
}

/* 1 when the handshake finished, 0 to wait, -1 when the session is closed. */
static int
session_handshake(struct session *s)
{
	struct tls_conn *tls = conn_tls(&s->conn);
	int r = tls_handshake(tls);

	s->conn.want_write = r == TLS_IO_WANT_WRITE;
	if (r == TLS_IO_WANT_READ || r == TLS_IO_WANT_WRITE) {
		ev_io_set(s->ev, s->fd, EV_READ | (s->conn.want_write ?
		    EV_WRITE : 0), session_io, s);
		return 0;
	}
	if (r != TLS_IO_OK) {
		log_info("session=%s event=tls-failed ip=%s reason=\"%s\"",
		    s->id, s->ip, tls_error(tls));
		session_close(s);
		return -1;
	}
	s->handshaking = false;
	log_info("session=%s event=tls ip=%s version=%s cipher=%s", s->id,
	    s->ip, tls_version(tls), tls_cipher(tls));
	ev_timer_start(s->ev, &s->timer, s->idle_ms);
	if (s->ops->tls_ready != NULL)
		s->ops->tls_ready(s);
	return s->closed ? -1 : 1;
}

/* Read what the transport has; -1 when the session was closed. */
static int
session_read(struct session *s)
{
	for (int i = 0; i < 4 && iobuf_space(&s->in) > 0; i++) {
		ssize_t n = iobuf_read(&s->in, &s->conn);

		if (n < 0 && errno == EAGAIN)
			return 0;
		/*
		 * Commands sent before the end still run (a QUIT in the same
		 * burst commits), and so does the one waiting on the store
		 * (a QUIT whose commit is a PostgreSQL step away is
		 * answered); over TLS the end can be read in the same pass
		 * as they are.
		 */
		if (n == 0 && (session_has_line(s) || s->suspended)) {
			s->peer_closed = true;
			return 0;
		}
		if (n <= 0) {
			/* A dropped connection deletes nothing: no UPDATE. */
			session_set_end(s, n == 0 ? "client-closed" : "error");
			session_close(s);
			return -1;
		}
		s->bytes_in += (uint64_t)n;
		/* One read per wake-up, unless the stream holds more (TLS). */
		if (!conn_pending(&s->conn))
			break;
	}
	return 0;
}

void
session_resume(struct session *s)
{
	if (!s->closed)
		session_process(s);
}

void
session_suspend(struct session *s)
{
	s->suspended = true;
}

void
session_complete(struct session *s, enum cmd_result r)
{
	s->suspended = false;
	session_count(s, r);
	session_resume(s);
}

void
session_intercept(struct session *s, size_t line_max)
{
	s->intercept = line_max > 0;
	s->line_max = line_max;
}

void
session_more_done(struct session *s)
{
	s->more = false;
}

void
session_more_wait(struct session *s)
{
	s->more = false;
	s->suspended = true;
}

void
session_more_go(struct session *s)
{
	s->more = true;
	s->suspended = false;
	session_resume(s);
}

static void
session_io(struct ev *ev, int fd, unsigned int events, void *arg)
{
	struct session *s = arg;

	(void)ev;
	(void)fd;
	if (s->handshaking && session_handshake(s) <= 0)
		return;
	if ((events & EV_READ || s->conn.want_write || (!s->handshaking &&
	    conn_pending(&s->conn))) && !s->peer_closed &&
	    iobuf_space(&s->in) > 0 && s->starttls == NULL &&
	    session_read(s) < 0)
		return;
	session_process(s);
}

int
session_detach(struct session *s, struct session_handover *h)
{
	if (out_pending(s) > sizeof(h->out) ||
	    iobuf_len(&s->in) > sizeof(h->in))
		return -1;
	h->fd = s->fd;
	h->tls = conn_take_tls(&s->conn);
	h->inlen = iobuf_len(&s->in);
	if (h->inlen > 0)
		memcpy(h->in, iobuf_data(&s->in), h->inlen);
	h->outlen = out_pending(s);
	if (h->outlen > 0)
		memcpy(h->out, iobuf_data(&s->out), h->outlen);
	iobuf_consume(&s->in, h->inlen);
	iobuf_consume(&s->out, h->outlen);
	ev_timer_stop(s->ev, &s->timer);
	ev_io_del(s->ev, s->fd);
	s->fd = -1;
	session_set_end(s, "handoff");
	session_close(s);
	return 0;
}
