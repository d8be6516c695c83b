/*
 * loadgen: a POP3 load generator for the Postino benchmark (bench/run.py).
 *
 * Each thread runs one epoll loop over many connections; each connection runs
 * sessions one after another, one command at a time, as a mail client does.
 * Every reply is checked: a -ERR, a malformed line, a LIST/UIDL count that
 * differs from STAT, a RETR whose octets differ from its LIST size, or a
 * STAT that differs from -E/-B fails the run (exit 1).
 *
 * Output: one JSON line on stdout per run, with the rate, the bytes and the
 * p50/p99 latency of each step. Plaintext, STLS (-m stls) and implicit TLS
 * (-m tls) through OpenSSL 3. The "hold" scenario logs every client in,
 * prints "HELD n" on stdout, and quits them all when a line (or EOF) arrives
 * on stdin, or after -w seconds.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#define LG_INBUF	(256 * 1024)	/* lines are parsed in place */
#define LG_LINE_MAX	4096		/* longest reply line accepted */
#define LG_MAX_CONNS	60000		/* the loopback port range */
#define LG_MAX_THREADS	16
#define LG_MAX_MSGS	1000000
#define LG_ERR_LEN	256

enum lg_mode { MODE_PLAIN, MODE_STLS, MODE_TLS };
enum lg_scen { SC_LOGIN, SC_LIST, SC_RETR, SC_FULL, SC_HOLD };

enum lg_step {
	STEP_CONNECT,		/* connect() to greeting, implicit TLS too */
	STEP_STLS,		/* STLS sent to handshake done */
	STEP_LOGIN,		/* USER sent to PASS +OK */
	STEP_LIST,		/* STAT sent to the end of LIST (and UIDL) */
	STEP_RETR,		/* each RETR, sent to the final dot */
	STEP_SESSION,		/* connect() to QUIT +OK */
	STEP_COUNT
};
static const char *const step_names[STEP_COUNT] = {
	"connect", "stls", "login", "list", "retr", "session"
};

enum lg_state {
	ST_IDLE, ST_CONNECTING, ST_HANDSHAKE, ST_GREETING, ST_STLS,
	ST_USER, ST_PASS, ST_STAT, ST_LIST, ST_UIDL, ST_RETR, ST_HELD,
	ST_QUIT, ST_DONE
};

struct lg_user {
	char	*name;
	char	*pass;
};

struct lg_lat {
	uint32_t	*v;		/* microseconds */
	size_t		 n, cap;
};

struct lg_conn {
	struct lg_worker *w;
	int		 fd;
	SSL		*ssl;
	enum lg_state	 state;
	bool		 multi;		/* in a multi-line reply */
	bool		 want_write;
	bool		 counted_held;
	unsigned int	 slot;		/* global client index */
	unsigned long	 nsess;		/* sessions of this slot */
	const struct lg_user *user;
	char		*in;
	size_t		 inlen;
	char		 out[600];
	size_t		 outlen, outoff;
	uint64_t	 t_sess, t_step, t_cmd, deadline;
	/* mailbox state of the session */
	unsigned long	 count;		/* from STAT */
	unsigned long long octets;	/* from STAT */
	uint64_t	*sizes;		/* from LIST, 1-based */
	size_t		 sizes_cap;
	unsigned long	 lines;		/* lines of this multi-line reply */
	unsigned long long got;		/* octets of the current RETR */
	unsigned long	 retr_next;	/* next message to RETR */
};

struct lg_worker {
	pthread_t	 tid;
	int		 ep;
	unsigned int	 first_slot, nconns;
	struct lg_conn	*conns;
	struct lg_lat	 lat[STEP_COUNT];
	unsigned long	 sessions;
	unsigned long long bytes;
	unsigned int	 inflight;	/* not yet logged in */
};

static struct {
	const char	*host;
	int		 port;
	enum lg_mode	 mode;
	enum lg_scen	 scen;
	const char	*scen_name;
	const char	*label;
	struct lg_user	*users;
	unsigned int	 nusers;
	unsigned int	 clients;
	unsigned int	 threads;
	unsigned long	 max_sessions;	/* 0: use duration */
	double		 duration;
	unsigned long	 retr;		/* RETR 1..retr; 0: all */
	long		 expect_count;	/* -1: unchecked */
	long long	 expect_octets;
	unsigned int	 ramp;		/* logins in flight, per thread */
	double		 step_timeout;
	double		 hold_wait;
	unsigned int	 nets;		/* -S: source /24s, or 0 */
	SSL_CTX		*ctx;
	struct sockaddr_in sa;
} cfg;

static atomic_ulong	started;	/* sessions started, all threads */
static atomic_bool	stop_starting;
static atomic_bool	abort_run;
static atomic_bool	release_held;
static atomic_uint	held;
static atomic_ulong	nerrors;
static pthread_mutex_t	err_lock = PTHREAD_MUTEX_INITIALIZER;
static char		first_err[LG_ERR_LEN];
static uint64_t		t_start;

static uint64_t
now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static void __attribute__((format(printf, 1, 2), noreturn))
die(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fputs("loadgen: ", stderr);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(2);
}

static void
lat_add(struct lg_lat *l, uint64_t us)
{
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 1024;
		uint32_t *v = realloc(l->v, cap * sizeof(*v));

		if (v == NULL)
			die("out of memory");
		l->v = v;
		l->cap = cap;
	}
	l->v[l->n++] = us > UINT32_MAX ? UINT32_MAX : (uint32_t)us;
}

static void conn_close(struct lg_conn *c);
static void conn_start(struct lg_conn *c);
static void conn_handshake(struct lg_conn *c);

/* Records the first error of the run and stops it. */
static void __attribute__((format(printf, 2, 3)))
conn_fail(struct lg_conn *c, const char *fmt, ...)
{
	va_list ap;
	char msg[LG_ERR_LEN];
	int n;

	n = snprintf(msg, sizeof(msg), "user %s state %d: ",
	    c->user ? c->user->name : "-", (int)c->state);
	va_start(ap, fmt);
	if (n > 0 && (size_t)n < sizeof(msg))
		vsnprintf(msg + n, sizeof(msg) - (size_t)n, fmt, ap);
	va_end(ap);
	pthread_mutex_lock(&err_lock);
	if (first_err[0] == '\0')
		snprintf(first_err, sizeof(first_err), "%s", msg);
	pthread_mutex_unlock(&err_lock);
	atomic_fetch_add(&nerrors, 1);
	atomic_store(&abort_run, true);
	conn_close(c);
	c->state = ST_DONE;
}

static void
conn_events(struct lg_conn *c)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.ptr = c };

	if (c->want_write || c->state == ST_CONNECTING)
		ev.events |= EPOLLOUT;
	if (epoll_ctl(c->w->ep, EPOLL_CTL_MOD, c->fd, &ev) == -1)
		die("epoll_ctl: %s", strerror(errno));
}

static void
conn_close(struct lg_conn *c)
{
	if (c->ssl != NULL) {
		SSL_free(c->ssl);
		c->ssl = NULL;
	}
	if (c->fd != -1) {
		close(c->fd);
		c->fd = -1;
	}
	if (c->state < ST_STAT && c->state != ST_IDLE && c->w->inflight > 0)
		c->w->inflight--;
	if (c->counted_held) {
		atomic_fetch_sub(&held, 1);
		c->counted_held = false;
	}
	c->inlen = 0;
	c->multi = false;
	c->want_write = false;
	c->outlen = c->outoff = 0;
}

/* 1: all sent; 0: pending (EPOLLOUT armed); -1: failed (closed). */
static int
conn_flush(struct lg_conn *c)
{
	while (c->outoff < c->outlen) {
		size_t left = c->outlen - c->outoff;
		ssize_t n;

		if (c->ssl != NULL) {
			int r;

			ERR_clear_error();
			r = SSL_write(c->ssl, c->out + c->outoff, (int)left);
			if (r <= 0) {
				int e = SSL_get_error(c->ssl, r);

				if (e == SSL_ERROR_WANT_WRITE ||
				    e == SSL_ERROR_WANT_READ) {
					c->want_write = true;
					conn_events(c);
					return 0;
				}
				conn_fail(c, "SSL_write failed");
				return -1;
			}
			n = r;
		} else {
			n = send(c->fd, c->out + c->outoff, left, MSG_NOSIGNAL);
			if (n == -1) {
				if (errno == EAGAIN || errno == EINTR) {
					c->want_write = true;
					conn_events(c);
					return 0;
				}
				conn_fail(c, "send: %s", strerror(errno));
				return -1;
			}
		}
		c->outoff += (size_t)n;
	}
	if (c->want_write) {
		c->want_write = false;
		conn_events(c);
	}
	c->outlen = c->outoff = 0;
	return 1;
}

static void __attribute__((format(printf, 3, 4)))
conn_cmd(struct lg_conn *c, enum lg_state next, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(c->out, sizeof(c->out) - 2, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(c->out) - 2)
		die("command too long");
	memcpy(c->out + n, "\r\n", 2);
	c->outlen = (size_t)n + 2;
	c->outoff = 0;
	c->state = next;
	c->t_cmd = now_us();
	c->deadline = c->t_cmd + (uint64_t)(cfg.step_timeout * 1e6);
	conn_flush(c);
}

static bool
want_list(void)
{
	return cfg.scen == SC_LIST || cfg.scen == SC_RETR ||
	    cfg.scen == SC_FULL;
}

static void
session_done(struct lg_conn *c)
{
	uint64_t t = now_us();

	lat_add(&c->w->lat[STEP_SESSION], t - c->t_sess);
	c->w->sessions++;
	conn_close(c);
	c->state = ST_IDLE;
	c->nsess++;
	conn_start(c);
}

static void
send_quit(struct lg_conn *c)
{
	conn_cmd(c, ST_QUIT, "QUIT");
}

static void
next_retr_or_quit(struct lg_conn *c)
{
	unsigned long last = cfg.retr == 0 || cfg.retr > c->count ?
	    c->count : cfg.retr;

	if ((cfg.scen == SC_RETR || cfg.scen == SC_FULL) &&
	    c->retr_next <= last) {
		c->got = 0;
		c->lines = 0;
		conn_cmd(c, ST_RETR, "RETR %lu", c->retr_next);
		return;
	}
	send_quit(c);
}

static void
logged_in(struct lg_conn *c)
{
	uint64_t t = now_us();

	lat_add(&c->w->lat[STEP_LOGIN], t - c->t_step);
	if (c->w->inflight > 0)
		c->w->inflight--;
	c->t_step = t;
	if (want_list()) {
		conn_cmd(c, ST_STAT, "STAT");
	} else if (cfg.scen == SC_HOLD) {
		c->state = ST_HELD;
		c->counted_held = true;
		c->deadline = UINT64_MAX;
		atomic_fetch_add(&held, 1);
	} else {
		send_quit(c);
	}
}

static void
start_login(struct lg_conn *c)
{
	c->t_step = now_us();
	conn_cmd(c, ST_USER, "USER %s", c->user->name);
}

static bool
parse_ulong(const char **pp, unsigned long long *v)
{
	const char *p = *pp;
	unsigned long long x = 0;

	if (*p < '0' || *p > '9')
		return false;
	while (*p >= '0' && *p <= '9') {
		if (x > (ULLONG_MAX - 9) / 10)
			return false;
		x = x * 10 + (unsigned long long)(*p - '0');
		p++;
	}
	*v = x;
	*pp = p;
	return true;
}

static bool
sizes_reserve(struct lg_conn *c, unsigned long n)
{
	if (n + 1 <= c->sizes_cap)
		return true;
	if (n > LG_MAX_MSGS)
		return false;
	uint64_t *s = realloc(c->sizes, (n + 1) * sizeof(*s));
	if (s == NULL)
		die("out of memory");
	c->sizes = s;
	c->sizes_cap = n + 1;
	return true;
}

/* One line of a multi-line reply (without CRLF; len excludes it). */
static void
multi_line(struct lg_conn *c, const char *l, size_t len)
{
	unsigned long long a, b;
	const char *p = l;

	if (len == 1 && l[0] == '.') {
		c->multi = false;
		switch (c->state) {
		case ST_LIST:
			if (c->lines != c->count) {
				conn_fail(c, "LIST gave %lu lines, STAT %lu",
				    c->lines, c->count);
				return;
			}
			if (cfg.scen == SC_LIST || cfg.scen == SC_FULL) {
				c->lines = 0;
				conn_cmd(c, ST_UIDL, "UIDL");
				return;
			}
			lat_add(&c->w->lat[STEP_LIST], now_us() - c->t_step);
			c->retr_next = 1;
			next_retr_or_quit(c);
			return;
		case ST_UIDL:
			if (c->lines != c->count) {
				conn_fail(c, "UIDL gave %lu lines, STAT %lu",
				    c->lines, c->count);
				return;
			}
			lat_add(&c->w->lat[STEP_LIST], now_us() - c->t_step);
			c->retr_next = 1;
			next_retr_or_quit(c);
			return;
		case ST_RETR:
			if (c->got != c->sizes[c->retr_next]) {
				conn_fail(c, "RETR %lu: %llu octets, LIST said "
				    "%llu", c->retr_next, c->got,
				    (unsigned long long)c->sizes[c->retr_next]);
				return;
			}
			lat_add(&c->w->lat[STEP_RETR], now_us() - c->t_cmd);
			c->w->bytes += c->got;
			c->retr_next++;
			next_retr_or_quit(c);
			return;
		default:
			conn_fail(c, "multi-line reply in a single-line state");
			return;
		}
	}
	c->lines++;
	switch (c->state) {
	case ST_LIST:
		if (!parse_ulong(&p, &a) || *p++ != ' ' ||
		    !parse_ulong(&p, &b) || p != l + len)
			goto bad;
		if (a != c->lines || a > c->count)
			goto bad;
		c->sizes[a] = b;
		return;
	case ST_UIDL:
		if (!parse_ulong(&p, &a) || *p++ != ' ' || a != c->lines ||
		    a > c->count || p == l + len || len - (size_t)(p - l) > 70)
			goto bad;
		return;
	case ST_RETR:
		/* Byte-stuffed lines lose their first dot (RFC 1939 3). */
		c->got += len + 2 - (l[0] == '.' ? 1 : 0);
		return;
	default:
		goto bad;
	}
bad:
	conn_fail(c, "bad line %lu: %.60s", c->lines, l);
}

/* The status line of a reply. */
static void
status_line(struct lg_conn *c, const char *l, size_t len)
{
	unsigned long long a, b;
	const char *p;
	uint64_t t;

	if (len < 3 || memcmp(l, "+OK", 3) != 0) {
		conn_fail(c, "reply: %.100s", l);
		return;
	}
	switch (c->state) {
	case ST_GREETING:
		t = now_us();
		lat_add(&c->w->lat[STEP_CONNECT], t - c->t_sess);
		if (cfg.mode == MODE_STLS) {
			c->t_step = t;
			conn_cmd(c, ST_STLS, "STLS");
		} else {
			start_login(c);
		}
		return;
	case ST_STLS:
		c->ssl = SSL_new(cfg.ctx);
		if (c->ssl == NULL || SSL_set_fd(c->ssl, c->fd) != 1)
			die("SSL_new failed");
		SSL_set_connect_state(c->ssl);
		c->state = ST_HANDSHAKE;	/* conn_parse starts it */
		return;
	case ST_USER:
		conn_cmd(c, ST_PASS, "PASS %s", c->user->pass);
		return;
	case ST_PASS:
		logged_in(c);
		return;
	case ST_STAT:
		p = l + 3;
		if (*p++ != ' ' || !parse_ulong(&p, &a) || *p++ != ' ' ||
		    !parse_ulong(&p, &b)) {
			conn_fail(c, "bad STAT reply: %.100s", l);
			return;
		}
		if ((cfg.expect_count >= 0 &&
		    a != (unsigned long long)cfg.expect_count) ||
		    (cfg.expect_octets >= 0 &&
		    b != (unsigned long long)cfg.expect_octets)) {
			conn_fail(c, "STAT %llu %llu, expected %ld %lld", a, b,
			    cfg.expect_count, cfg.expect_octets);
			return;
		}
		if (!sizes_reserve(c, (unsigned long)a)) {
			conn_fail(c, "too many messages: %llu", a);
			return;
		}
		c->count = (unsigned long)a;
		c->octets = b;
		c->lines = 0;
		conn_cmd(c, ST_LIST, "LIST");
		return;
	case ST_LIST:
	case ST_UIDL:
	case ST_RETR:
		c->multi = true;
		return;
	case ST_QUIT:
		session_done(c);
		return;
	default:
		conn_fail(c, "unexpected reply: %.100s", l);
		return;
	}
}

static void
conn_parse(struct lg_conn *c)
{
	size_t pos = 0;

	while (pos < c->inlen && c->fd != -1) {
		char *l = c->in + pos, *nl;
		size_t len;

		nl = memchr(l, '\n', c->inlen - pos);
		if (nl == NULL)
			break;
		len = (size_t)(nl - l);
		if (len == 0 || l[len - 1] != '\r') {
			conn_fail(c, "line without CRLF");
			return;
		}
		len--;
		l[len] = '\0';
		pos += len + 2;
		if (c->state == ST_HELD) {
			conn_fail(c, "unexpected line while held: %.60s", l);
			return;
		}
		if (c->multi)
			multi_line(c, l, len);
		else
			status_line(c, l, len);
		if (c->state == ST_HANDSHAKE) {
			/* Nothing may follow STLS's reply (RFC 2595 4). */
			if (pos != c->inlen) {
				conn_fail(c, "data after the STLS reply");
				return;
			}
			c->inlen = 0;
			conn_handshake(c);
			return;
		}
		if (c->state == ST_IDLE || c->state == ST_CONNECTING ||
		    c->state == ST_DONE)
			return;	/* a new session: c->in is empty */
	}
	if (c->fd == -1)
		return;
	if (pos > 0) {
		memmove(c->in, c->in + pos, c->inlen - pos);
		c->inlen -= pos;
	}
	if (c->inlen >= LG_LINE_MAX && memchr(c->in, '\n', c->inlen) == NULL)
		conn_fail(c, "line over %d octets", LG_LINE_MAX);
}

static void
conn_handshake(struct lg_conn *c)
{
	int r, e;

	ERR_clear_error();
	r = SSL_do_handshake(c->ssl);
	if (r == 1) {
		if (cfg.mode == MODE_TLS) {
			c->state = ST_GREETING;
		} else {
			lat_add(&c->w->lat[STEP_STLS], now_us() - c->t_step);
			start_login(c);
		}
		if (c->want_write) {
			c->want_write = false;
			conn_events(c);
		}
		return;
	}
	e = SSL_get_error(c->ssl, r);
	if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
		bool ww = e == SSL_ERROR_WANT_WRITE;

		if (ww != c->want_write) {
			c->want_write = ww;
			conn_events(c);
		}
		return;
	}
	conn_fail(c, "TLS handshake failed: %s",
	    ERR_reason_error_string(ERR_peek_last_error()) ?
	    ERR_reason_error_string(ERR_peek_last_error()) : "?");
}

static void
conn_readable(struct lg_conn *c)
{
	/* Bounded: each pass reads into a finite buffer or stops. */
	for (int pass = 0; pass < 64 && c->fd != -1; pass++) {
		ssize_t n;

		if (c->state == ST_HANDSHAKE) {
			conn_handshake(c);
			if (c->state == ST_HANDSHAKE || c->fd == -1)
				return;
			continue;
		}
		if (c->inlen == LG_INBUF) {
			conn_fail(c, "input buffer full");
			return;
		}
		if (c->ssl != NULL) {
			int r, e;

			ERR_clear_error();
			r = SSL_read(c->ssl, c->in + c->inlen,
			    (int)(LG_INBUF - c->inlen));
			if (r <= 0) {
				e = SSL_get_error(c->ssl, r);
				if (e == SSL_ERROR_WANT_READ)
					return;
				if (e == SSL_ERROR_WANT_WRITE) {
					c->want_write = true;
					conn_events(c);
					return;
				}
				conn_fail(c, "TLS read failed (%d)", e);
				return;
			}
			n = r;
		} else {
			n = recv(c->fd, c->in + c->inlen, LG_INBUF - c->inlen,
			    0);
			if (n == -1) {
				if (errno == EAGAIN || errno == EINTR)
					return;
				conn_fail(c, "recv: %s", strerror(errno));
				return;
			}
			if (n == 0) {
				conn_fail(c, "server closed the connection");
				return;
			}
		}
		c->inlen += (size_t)n;
		conn_parse(c);
		if (c->state == ST_IDLE || c->state == ST_DONE)
			return;
		if (c->ssl == NULL && (size_t)n < LG_INBUF / 2 &&
		    c->state != ST_HANDSHAKE)
			return;	/* drained the socket */
	}
}

static void
conn_connected(struct lg_conn *c)
{
	int err = 0;
	socklen_t len = sizeof(err);

	if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) == -1 ||
	    err != 0) {
		conn_fail(c, "connect: %s", strerror(err ? err : errno));
		return;
	}
	if (cfg.mode == MODE_TLS) {
		c->ssl = SSL_new(cfg.ctx);
		if (c->ssl == NULL || SSL_set_fd(c->ssl, c->fd) != 1)
			die("SSL_new failed");
		SSL_set_connect_state(c->ssl);
		c->state = ST_HANDSHAKE;
		conn_events(c);
		conn_handshake(c);
		return;
	}
	c->state = ST_GREETING;
	conn_events(c);
}

/* Starts the next session of this client slot, if the run goes on. */
static void
conn_start(struct lg_conn *c)
{
	struct epoll_event ev = { .events = EPOLLIN | EPOLLOUT, .data.ptr = c };
	unsigned long k;
	int one = 1;

	if (atomic_load(&abort_run) || atomic_load(&stop_starting)) {
		c->state = ST_DONE;
		return;
	}
	if (cfg.scen == SC_HOLD && c->nsess > 0) {
		c->state = ST_DONE;
		return;
	}
	if (c->w->inflight >= cfg.ramp) {
		c->state = ST_IDLE;	/* retried from the loop */
		return;
	}
	if (cfg.max_sessions > 0) {
		k = atomic_fetch_add(&started, 1);
		if (k >= cfg.max_sessions) {
			c->state = ST_DONE;
			return;
		}
	} else if (cfg.scen != SC_HOLD &&
	    (double)(now_us() - t_start) / 1e6 >= cfg.duration) {
		atomic_store(&stop_starting, true);
		c->state = ST_DONE;
		return;
	}
	/* Slot s uses users s, s+C, s+2C...: never two sessions at once. */
	c->user = &cfg.users[(c->slot + c->nsess * cfg.clients) % cfg.nusers];
	c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (c->fd == -1)
		die("socket: %s", strerror(errno));
	setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (cfg.nets > 0) {
		/*
		 * Clients come from many addresses, not one: slot s from
		 * 127.X.Y.h, its /24 (X.Y) = s mod nets, so per-address and
		 * per-network limits see a crowd, as in production.
		 */
		unsigned int net = c->slot % cfg.nets;
		unsigned int host = 1 + (c->slot / cfg.nets) % 250;
		struct sockaddr_in src = { .sin_family = AF_INET };

		src.sin_addr.s_addr = htonl(0x7f000000u |
		    (1u + net / 256) << 16 | (net % 256) << 8 | host);
		setsockopt(c->fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one,
		    sizeof(one));
		if (bind(c->fd, (struct sockaddr *)&src, sizeof(src)) == -1)
			die("bind 127.x: %s", strerror(errno));
	}
	c->t_sess = now_us();
	c->deadline = c->t_sess + (uint64_t)(cfg.step_timeout * 1e6);
	c->state = ST_CONNECTING;
	c->w->inflight++;
	if (epoll_ctl(c->w->ep, EPOLL_CTL_ADD, c->fd, &ev) == -1)
		die("epoll_ctl: %s", strerror(errno));
	if (connect(c->fd, (struct sockaddr *)&cfg.sa, sizeof(cfg.sa)) == -1 &&
	    errno != EINPROGRESS) {
		conn_fail(c, "connect: %s", strerror(errno));
		return;
	}
}

static void
conn_event(struct lg_conn *c, uint32_t events)
{
	if (c->fd == -1)
		return;
	if (c->state == ST_CONNECTING) {
		if (events & (EPOLLOUT | EPOLLERR | EPOLLHUP))
			conn_connected(c);
		return;
	}
	if ((events & EPOLLOUT) && c->want_write) {
		if (c->state == ST_HANDSHAKE) {
			conn_handshake(c);
		} else if (c->outlen > 0) {
			if (conn_flush(c) < 0)
				return;
		} else {
			/* an SSL_read wanted it */
			c->want_write = false;
			conn_events(c);
		}
	}
	if (c->fd != -1 && (events & (EPOLLIN | EPOLLERR | EPOLLHUP)))
		conn_readable(c);
}

static void *
worker_run(void *arg)
{
	struct lg_worker *w = arg;
	struct epoll_event evs[256];
	unsigned int live;
	uint64_t last_scan = 0;

	for (unsigned int i = 0; i < w->nconns; i++)
		conn_start(&w->conns[i]);
	/*
	 * Bounded: every connection has a step deadline, so the loop ends
	 * when all slots are done or the run aborts.
	 */
	for (;;) {
		int n = epoll_wait(w->ep, evs, 256, 20);
		uint64_t t;

		if (n == -1 && errno != EINTR)
			die("epoll_wait: %s", strerror(errno));
		for (int i = 0; i < n; i++)
			conn_event(evs[i].data.ptr, evs[i].events);
		t = now_us();
		if (atomic_load(&abort_run))
			break;
		if (n > 0 && t - last_scan < 20000)
			continue;
		last_scan = t;
		live = 0;
		for (unsigned int i = 0; i < w->nconns; i++) {
			struct lg_conn *c = &w->conns[i];

			if (c->state == ST_IDLE)
				conn_start(c);
			if (c->state == ST_HELD && atomic_load(&release_held))
				send_quit(c);
			if (c->state != ST_DONE && c->state != ST_IDLE &&
			    c->state != ST_HELD && t > c->deadline)
				conn_fail(c, "no reply in %.0f s",
				    cfg.step_timeout);
			if (c->state != ST_DONE)
				live++;
		}
		if (live == 0)
			break;
	}
	for (unsigned int i = 0; i < w->nconns; i++)
		conn_close(&w->conns[i]);
	return NULL;
}

static int
cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return (x > y) - (x < y);
}

static double
pct_ms(const struct lg_lat *l, double p)
{
	size_t i;

	if (l->n == 0)
		return 0;
	i = (size_t)(p * (double)(l->n - 1) + 0.5);
	return l->v[i] / 1000.0;
}

static void
load_users(const char *path)
{
	FILE *fp = fopen(path, "re");
	char line[512];
	unsigned int cap = 0;

	if (fp == NULL)
		die("%s: %s", path, strerror(errno));
	while (fgets(line, sizeof(line), fp) != NULL) {
		char *sp, *nl = strchr(line, '\n');

		if (nl)
			*nl = '\0';
		sp = strchr(line, ' ');
		if (sp == NULL || line[0] == '\0')
			continue;
		*sp = '\0';
		if (cfg.nusers == cap) {
			cap = cap ? cap * 2 : 256;
			cfg.users = realloc(cfg.users,
			    cap * sizeof(*cfg.users));
			if (cfg.users == NULL)
				die("out of memory");
		}
		cfg.users[cfg.nusers].name = strdup(line);
		cfg.users[cfg.nusers].pass = strdup(sp + 1);
		if (!cfg.users[cfg.nusers].name || !cfg.users[cfg.nusers].pass)
			die("out of memory");
		cfg.nusers++;
	}
	fclose(fp);
	if (cfg.nusers == 0)
		die("%s: no users (lines of \"user password\")", path);
}

static void
usage(void)
{
	fputs("usage: loadgen -p port -u userfile\n"
	    "    -s login|list|retr|full|hold\n"
	    "    [-a 127.0.0.1] [-m plain|stls|tls] [-c clients] [-t threads]\n"
	    "    [-n sessions | -d seconds] [-r retr] [-E count] [-B octets]\n"
	    "    [-R ramp] [-S source_nets] [-T step_timeout]\n"
	    "    [-w hold_seconds] [-l label]\n",
	    stderr);
	exit(2);
}

static void
hold_wait(void)
{
	uint64_t deadline = now_us() + (uint64_t)(cfg.step_timeout * 1e6) *
	    4 + (uint64_t)cfg.clients * 20000u;
	char buf[64];

	/* Bounded: until every client holds, the run fails, or the deadline. */
	while (atomic_load(&held) < cfg.clients && !atomic_load(&abort_run) &&
	    now_us() < deadline)
		usleep(10000);
	if (!atomic_load(&abort_run) && atomic_load(&held) == cfg.clients) {
		struct pollfd pfd = { .fd = 0, .events = POLLIN };

		printf("HELD %u\n", cfg.clients);
		fflush(stdout);
		if (poll(&pfd, 1, (int)(cfg.hold_wait * 1000)) > 0)
			(void)!read(0, buf, sizeof(buf));
	} else if (!atomic_load(&abort_run)) {
		pthread_mutex_lock(&err_lock);
		snprintf(first_err, sizeof(first_err),
		    "only %u of %u clients logged in", atomic_load(&held),
		    cfg.clients);
		pthread_mutex_unlock(&err_lock);
		atomic_fetch_add(&nerrors, 1);
		atomic_store(&abort_run, true);
	}
	atomic_store(&release_held, true);
}

static void
json_str(const char *s)
{
	putchar('"');
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;

		if (ch == '"' || ch == '\\')
			printf("\\%c", ch);
		else if (ch < 0x20 || ch > 0x7e)
			printf("\\u%04x", ch);
		else
			putchar(ch);
	}
	putchar('"');
}

int
main(int argc, char **argv)
{
	static const char *const scen_names[] = {
		"login", "list", "retr", "full", "hold"
	};
	struct lg_worker *ws;
	struct lg_lat all[STEP_COUNT] = { 0 };
	unsigned long sessions = 0;
	unsigned long long bytes = 0;
	const char *userfile = NULL;
	struct rlimit rl;
	double elapsed;
	int ch;

	cfg.host = "127.0.0.1";
	cfg.clients = 1;
	cfg.threads = 1;
	cfg.duration = 5;
	cfg.expect_count = -1;
	cfg.expect_octets = -1;
	cfg.ramp = 1000000;
	cfg.step_timeout = 60;
	cfg.hold_wait = 120;
	cfg.label = "";
	cfg.scen_name = NULL;
	while ((ch = getopt(argc, argv,
	    "a:p:m:u:s:c:t:n:d:r:E:B:R:S:T:w:l:")) != -1) {
		switch (ch) {
		case 'a': cfg.host = optarg; break;
		case 'p': cfg.port = atoi(optarg); break;
		case 'm':
			if (strcmp(optarg, "plain") == 0)
				cfg.mode = MODE_PLAIN;
			else if (strcmp(optarg, "stls") == 0)
				cfg.mode = MODE_STLS;
			else if (strcmp(optarg, "tls") == 0)
				cfg.mode = MODE_TLS;
			else
				usage();
			break;
		case 'u': userfile = optarg; break;
		case 's': cfg.scen_name = optarg; break;
		case 'c': cfg.clients = (unsigned int)atoi(optarg); break;
		case 't': cfg.threads = (unsigned int)atoi(optarg); break;
		case 'n': cfg.max_sessions = strtoul(optarg, NULL, 10); break;
		case 'd': cfg.duration = atof(optarg); break;
		case 'r': cfg.retr = strtoul(optarg, NULL, 10); break;
		case 'E': cfg.expect_count = atol(optarg); break;
		case 'B': cfg.expect_octets = atoll(optarg); break;
		case 'R': cfg.ramp = (unsigned int)atoi(optarg); break;
		case 'S': cfg.nets = (unsigned int)atoi(optarg); break;
		case 'T': cfg.step_timeout = atof(optarg); break;
		case 'w': cfg.hold_wait = atof(optarg); break;
		case 'l': cfg.label = optarg; break;
		default: usage();
		}
	}
	if (cfg.port <= 0 || cfg.port > 65535 || userfile == NULL ||
	    cfg.scen_name == NULL)
		usage();
	for (ch = 0; ch < 5; ch++)
		if (strcmp(cfg.scen_name, scen_names[ch]) == 0)
			break;
	if (ch == 5)
		usage();
	cfg.scen = (enum lg_scen)ch;
	if (cfg.clients == 0 || cfg.clients > LG_MAX_CONNS ||
	    cfg.threads == 0 || cfg.threads > LG_MAX_THREADS ||
	    cfg.ramp == 0 || cfg.step_timeout <= 0 || cfg.nets > 254 * 256)
		usage();
	if (cfg.threads > cfg.clients)
		cfg.threads = cfg.clients;
	load_users(userfile);
	if (cfg.scen != SC_LOGIN && cfg.nusers < cfg.clients)
		die("%u clients need %u distinct users (mailbox locks), "
		    "have %u", cfg.clients, cfg.clients, cfg.nusers);
	cfg.sa.sin_family = AF_INET;
	cfg.sa.sin_port = htons((uint16_t)cfg.port);
	if (inet_pton(AF_INET, cfg.host, &cfg.sa.sin_addr) != 1)
		die("bad IPv4 address %s", cfg.host);
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	if (cfg.mode != MODE_PLAIN) {
		cfg.ctx = SSL_CTX_new(TLS_client_method());
		if (cfg.ctx == NULL)
			die("SSL_CTX_new failed");
		/* A benchmark: full handshakes, no verification. */
		SSL_CTX_set_verify(cfg.ctx, SSL_VERIFY_NONE, NULL);
		SSL_CTX_set_session_cache_mode(cfg.ctx, SSL_SESS_CACHE_OFF);
	}

	ws = calloc(cfg.threads, sizeof(*ws));
	if (ws == NULL)
		die("out of memory");
	t_start = now_us();
	for (unsigned int i = 0, slot = 0; i < cfg.threads; i++) {
		struct lg_worker *w = &ws[i];
		unsigned int n = cfg.clients / cfg.threads +
		    (i < cfg.clients % cfg.threads ? 1 : 0);

		w->ep = epoll_create1(EPOLL_CLOEXEC);
		if (w->ep == -1)
			die("epoll_create1: %s", strerror(errno));
		w->first_slot = slot;
		w->nconns = n;
		w->conns = calloc(n, sizeof(*w->conns));
		if (w->conns == NULL)
			die("out of memory");
		for (unsigned int j = 0; j < n; j++) {
			struct lg_conn *c = &w->conns[j];

			c->w = w;
			c->fd = -1;
			c->slot = slot++;
			c->in = malloc(LG_INBUF);
			if (c->in == NULL)
				die("out of memory");
		}
		ws[i].ep = w->ep;
	}
	for (unsigned int i = 0; i < cfg.threads; i++)
		if (pthread_create(&ws[i].tid, NULL, worker_run, &ws[i]) != 0)
			die("pthread_create failed");
	if (cfg.scen == SC_HOLD)
		hold_wait();
	for (unsigned int i = 0; i < cfg.threads; i++)
		pthread_join(ws[i].tid, NULL);
	elapsed = (double)(now_us() - t_start) / 1e6;

	for (unsigned int i = 0; i < cfg.threads; i++) {
		sessions += ws[i].sessions;
		bytes += ws[i].bytes;
		for (int s = 0; s < STEP_COUNT; s++)
			for (size_t k = 0; k < ws[i].lat[s].n; k++)
				lat_add(&all[s], ws[i].lat[s].v[k]);
	}
	printf("{\"tool\":\"loadgen\",\"label\":");
	json_str(cfg.label);
	printf(",\"scenario\":\"%s\",\"mode\":\"%s\",\"clients\":%u,"
	    "\"threads\":%u,\"sessions\":%lu,\"errors\":%lu,"
	    "\"elapsed_s\":%.4f,\"sessions_per_s\":%.3f,\"retr_bytes\":%llu,"
	    "\"mb_per_s\":%.3f,\"steps\":{",
	    cfg.scen_name, cfg.mode == MODE_PLAIN ? "plain" :
	    cfg.mode == MODE_STLS ? "stls" : "tls", cfg.clients, cfg.threads,
	    sessions, atomic_load(&nerrors), elapsed,
	    elapsed > 0 ? (double)sessions / elapsed : 0, bytes,
	    elapsed > 0 ? (double)bytes / 1e6 / elapsed : 0);
	for (int s = 0, first = 1; s < STEP_COUNT; s++) {
		if (all[s].n == 0)
			continue;
		qsort(all[s].v, all[s].n, sizeof(uint32_t), cmp_u32);
		printf("%s\"%s\":{\"n\":%zu,\"p50_ms\":%.3f,\"p99_ms\":%.3f,"
		    "\"max_ms\":%.3f}", first ? "" : ",", step_names[s],
		    all[s].n, pct_ms(&all[s], 0.50), pct_ms(&all[s], 0.99),
		    all[s].v[all[s].n - 1] / 1000.0);
		first = 0;
	}
	printf("}");
	if (first_err[0] != '\0') {
		printf(",\"error\":");
		json_str(first_err);
	}
	printf("}\n");
	fflush(stdout);
	for (unsigned int i = 0; i < cfg.threads; i++) {
		for (unsigned int j = 0; j < ws[i].nconns; j++) {
			free(ws[i].conns[j].in);
			free(ws[i].conns[j].sizes);
		}
		for (int s = 0; s < STEP_COUNT; s++)
			free(ws[i].lat[s].v);
		free(ws[i].conns);
		close(ws[i].ep);
	}
	for (int s = 0; s < STEP_COUNT; s++)
		free(all[s].v);
	for (unsigned int i = 0; i < cfg.nusers; i++) {
		free(cfg.users[i].name);
		free(cfg.users[i].pass);
	}
	free(cfg.users);
	free(ws);
	SSL_CTX_free(cfg.ctx);
	return atomic_load(&nerrors) == 0 ? 0 : 1;
}
