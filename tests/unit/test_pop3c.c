/*
 * The POP3 client library fed scripted server replies: through a scripted
 * conn (lib/conn.h ops over memory; every script also one byte per read)
 * and through a socketpair (timeouts, a peer that hangs up, a stream whose
 * write waits for input). Hostile replies included:
 * overlong lines, bad numbers, a missing final ".", a drop mid-RETR.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../../src/lib/base64.h"
#include "../../src/auth/sasl_mechs.h"
#include "../../src/client/pop3c.h"
#include "../../src/lib/conn.h"
#include "../../src/lib/net.h"

#define N_ELEM(a)	(sizeof(a) / sizeof((a)[0]))

/* Read sizes every script is replayed with. */
static const size_t chunks[] = { 1, 2, 7, 512, 1 << 20 };

/* A scripted stream: conn first, so the conn_ops find the script. */
struct mem {
	struct conn	 conn;
	const char	*in;
	size_t		 inlen, pos, chunk;
	char		 out[16384];
	size_t		 outlen;
};

static ssize_t
mem_read(struct conn *conn, void *buf, size_t len)
{
	struct mem *m = (struct mem *)conn;
	size_t n = m->inlen - m->pos;

	if (n > len)
		n = len;
	if (n > m->chunk)
		n = m->chunk;
	memcpy(buf, m->in + m->pos, n);
	m->pos += n;
	return (ssize_t)n;
}

static ssize_t
mem_write(struct conn *conn, const void *buf, size_t len)
{
	struct mem *m = (struct mem *)conn;

	if (m->outlen + len >= sizeof(m->out))
		len = sizeof(m->out) - 1 - m->outlen;
	memcpy(m->out + m->outlen, buf, len);
	m->outlen += len;
	m->out[m->outlen] = '\0';
	if (len == 0) {
		errno = EPIPE;
		return -1;
	}
	return (ssize_t)len;
}

static bool
mem_pending(struct conn *conn)
{
	(void)conn;
	return false;
}

static void
mem_nothing(struct conn *conn)
{
	(void)conn;
}

static const struct conn_ops mem_ops = {
	.read = mem_read,
	.write = mem_write,
	.pending = mem_pending,
	.shutdown = mem_nothing,
	.free = mem_nothing,
};

static void
mem_close(void *arg)
{
	(void)arg;
}

/* m as the script of a stream with no socket under it. */
static void
mem_init(struct mem *m, const char *in, size_t inlen, size_t chunk)
{
	memset(m, 0, sizeof(*m));
	m->conn.ops = &mem_ops;
	m->conn.fd = -1;
	m->in = in;
	m->inlen = inlen;
	m->chunk = chunk;
}

static struct pop3c *
mem_client(struct mem *m, const char *in, size_t inlen, size_t chunk)
{
	struct pop3c_transport tr = { .conn = &m->conn, .close = mem_close,
	    .ctx = m };
	struct pop3c *c;

	mem_init(m, in, inlen, chunk);
	c = pop3c_new(&tr);
	assert_non_null(c);
	return c;
}

#define GREET	"+OK ready\r\n"

/* The strongest method the greeting and CAPA allow, cleartext allowed. */
static int
login(struct pop3c *c, const char *user, const char *pass,
    const char **method_r)
{
	return pop3c_login(c, user, pass, POP3C_AUTH_AUTO, true, method_r);
}

/* ---- greeting, status lines ---- */

static void
test_greeting_keeps_apop_timestamp(void **state)
{
	static const char in[] = "+OK POP3 server ready "
	    "<1896.697170952@dbc.mtview.ca.us>\r\n";
	struct mem m;

	(void)state;
	for (size_t k = 0; k < N_ELEM(chunks); k++) {
		struct pop3c *c = mem_client(&m, in, sizeof(in) - 1, chunks[k]);

		assert_int_equal(pop3c_greeting(c), 0);
		assert_string_equal(pop3c_timestamp(c),
		    "<1896.697170952@dbc.mtview.ca.us>");
		pop3c_free(&c);
	}
}

static void
test_greeting_without_or_with_bad_timestamp(void **state)
{
	static const char *const in[] = {
		"+OK ready\r\n", "+OK <>\r\n", "+OK <a b>\r\n",
		"+OK <unterminated\r\n", "+OK\n",
	};
	struct mem m;

	(void)state;
	for (size_t i = 0; i < N_ELEM(in); i++) {
		struct pop3c *c = mem_client(&m, in[i], strlen(in[i]), 3);

		assert_int_equal(pop3c_greeting(c), 0);
		assert_string_equal(pop3c_timestamp(c), "");
		pop3c_free(&c);
	}
}

static void
test_bad_greetings_are_protocol_errors(void **state)
{
	static const struct {
		const char		*in;
		enum pop3c_error	 err;
	} cases[] = {
		{ "HTTP/1.1 200 OK\r\n", POP3C_EPROTO },
		{ "+ok lowercase\r\n", POP3C_EPROTO },
		{ "+OKAY\r\n", POP3C_EPROTO },
		{ "-ERR go away\r\n", POP3C_EPROTO },
		{ "-ERR [SYS/TEMP] overloaded\r\n", POP3C_ESYS },
		{ "-ERR [IN-USE] busy\r\n", POP3C_EINUSE },
		{ "", POP3C_ENET },
		{ "+OK no line end", POP3C_ENET },
	};
	struct mem m;

	(void)state;
	for (size_t i = 0; i < N_ELEM(cases); i++) {
		for (size_t k = 0; k < N_ELEM(chunks); k++) {
			struct pop3c *c = mem_client(&m, cases[i].in,
			    strlen(cases[i].in), chunks[k]);

			assert_int_equal(pop3c_greeting(c), -1);
			assert_int_equal(pop3c_error(c), cases[i].err);
			assert_true(strlen(pop3c_errmsg(c)) > 0);
			pop3c_free(&c);
		}
	}
}

static void
test_nul_in_status_line_is_refused(void **state)
{
	static const char in[] = "+OK a\0b\r\n";
	struct mem m;
	struct pop3c *c = mem_client(&m, in, sizeof(in) - 1, 1);

	(void)state;
	assert_int_equal(pop3c_greeting(c), -1);
	assert_int_equal(pop3c_error(c), POP3C_EPROTO);
	pop3c_free(&c);
}

static void
test_line_limit_is_exact(void **state)
{
	char *in = malloc(POP3C_LINE_MAX + 16);
	struct mem m;
	struct pop3c *c;

	(void)state;
	assert_non_null(in);
	/* POP3C_LINE_MAX octets before the CRLF: accepted. */
	memcpy(in, "+OK ", 4);
	memset(in + 4, 'a', POP3C_LINE_MAX - 4);
	memcpy(in + POP3C_LINE_MAX, "\r\n", 2);
	c = mem_client(&m, in, POP3C_LINE_MAX + 2, 4096);
	assert_int_equal(pop3c_greeting(c), 0);
	pop3c_free(&c);
	/* One more: refused. */
	memset(in + 4, 'a', POP3C_LINE_MAX - 3);
	memcpy(in + POP3C_LINE_MAX + 1, "\r\n", 2);
	c = mem_client(&m, in, POP3C_LINE_MAX + 3, 4096);
	assert_int_equal(pop3c_greeting(c), -1);
	assert_int_equal(pop3c_error(c), POP3C_EPROTO);
	assert_non_null(strstr(pop3c_errmsg(c), "line over"));
	pop3c_free(&c);
	free(in);
}

static void
test_endless_line_fails_in_bounded_memory(void **state)
{
	size_t len = 4 << 20;
	char *in = malloc(len);
	struct mem m;
	struct pop3c *c;

	(void)state;
	assert_non_null(in);
	memcpy(in, "+OK ", 4);
	memset(in + 4, 'x', len - 4);
	c = mem_client(&m, in, len, 1 << 20);
	assert_int_equal(pop3c_greeting(c), -1);
	assert_int_equal(pop3c_error(c), POP3C_EPROTO);
	/* It stopped reading soon after the limit. */
	assert_true(m.pos <= POP3C_BUF_SIZE);
	pop3c_free(&c);
	free(in);
}

/* ---- CAPA and login ---- */

static void
test_capa_sets_capabilities(void **state)
{
	static const char in[] = GREET "+OK Capability list follows\r\n"
	    "TOP\r\nuidl\r\nUSER\r\nRESP-CODES\r\nPIPELINING\r\n"
	    "SASL PLAIN SCRAM-SHA-256\r\nSTLS\r\nTOPX\r\n"
	    "IMPLEMENTATION x\r\n.\r\n";
	struct mem m;

	(void)state;
	for (size_t k = 0; k < N_ELEM(chunks); k++) {
		struct pop3c *c = mem_client(&m, in, sizeof(in) - 1, chunks[k]);

		assert_int_equal(pop3c_greeting(c), 0);
		assert_int_equal(pop3c_capa(c), 0);
		assert_true(pop3c_caps_known(c));
		assert_int_equal(pop3c_caps(c), POP3C_CAP_TOP | POP3C_CAP_UIDL |
		    POP3C_CAP_USER | POP3C_CAP_RESP_CODES |
		    POP3C_CAP_PIPELINING | POP3C_CAP_SASL | POP3C_CAP_STLS);
		assert_string_equal(m.out, "CAPA\r\n");
		pop3c_free(&c);
	}
}

static void
test_capa_err_means_unknown(void **state)
{
	static const char in[] = GREET "-ERR unknown command\r\n";
	struct mem m;
	struct pop3c *c = mem_client(&m, in, sizeof(in) - 1, 5);

	(void)state;
	assert_int_equal(pop3c_greeting(c), 0);
	assert_int_equal(pop3c_capa(c), 1);
	assert_false(pop3c_caps_known(c));
	assert_true(pop3c_usable(c));
	pop3c_free(&c);
}

static void
test_capa_without_final_dot(void **state)
{
	static const char in[] = GREET "+OK\r\nTOP\r\nUIDL\r\n";
	struct mem m;
	struct pop3c *c = mem_client(&m, in, sizeof(in) - 1, 1);

	(void)state;
	assert_int_equal(pop3c_greeting(c), 0);
	assert_int_equal(pop3c_capa(c), -1);
	/* The connection closed mid-reply: a connection failure. */
	assert_int_equal(pop3c_error(c), POP3C_ENET);
	assert_false(pop3c_usable(c));
	pop3c_free(&c);
}

static void
test_user_pass_login(void **state)
{
	static const char in[] = GREET "+OK\r\n+OK Logged in.\r\n";
	struct mem m;
	const char *method = NULL;

	(void)state;
	for (size_t k = 0; k < N_ELEM(chunks); k++) {
		struct pop3c *c = mem_client(&m, in, sizeof(in) - 1, chunks[k]);

		assert_int_equal(pop3c_greeting(c), 0);
		assert_int_equal(login(c, "alice", "s3cret", &method), 0);
		assert_string_equal(method, "USER");
		assert_string_equal(m.out, "USER alice\r\nPASS s3cret\r\n");
		pop3c_free(&c);
	}
}

static void
test_apop_login_rfc1939_example(void **state)
{
	/* RFC 1939 sec. 7: mrose, tanstaaf. */
	static const char in[] = "+OK POP3 server ready "
	    "<1896.697170952@dbc.mtview.ca.us>\r\n+OK maildrop has 1\r\n";
	struct mem m;
	const char *method = NULL;
	struct pop3c *c = mem_client(&m, in, sizeof(in) - 1, 4);

	(void)state;
	assert_int_equal(pop3c_greeting(c), 0);
	assert_int_equal(login(c, "mrose", "tanstaaf", &method), 0);
	assert_string_equal(method, "APOP");
	assert_string_equal(m.out,
	    "APOP mrose c4c9334bac560ecc979e58001b3e22fb\r\n");
	pop3c_free(&c);
}

static void
test_apop_refused_is_final(void **state)
{
	/* One method only: a refused APOP does not become USER/PASS. */
	static const char in[] = "+OK <1.2@x>\r\n"
	    "-ERR [AUTH] Authentication failed.\r\n+OK\r\n+OK in\r\n";
	struct mem m;
	const char *method = NULL;
	struct pop3c *c = mem_client(&m, in, sizeof(in) - 1, 3);

	(void)state;
	assert_int_equal(pop3c_greeting(c), 0);
	assert_int_equal(login(c, "u", "p", &method), -1);
	assert_string_equal(method, "APOP");
	assert_int_equal(pop3c_error(c), POP3C_EAUTH);
	assert_null(strstr(m.out, "USER"));
	assert_null(strstr(m.out, "PASS"));
	pop3c_free(&c);
}

static void
test_login_errors_map_to_codes(void **state)
{
	static const struct {
		const char		*reply;
		enum pop3c_error	 err;
	} cases[] = {
		{ "-ERR [AUTH] Authentication failed.\r\n", POP3C_EAUTH },
		{ "-ERR bad password\r\n", POP3C_EAUTH },
		{ "-ERR [IN-USE] Mailbox locked\r\n", POP3C_EINUSE },
		{ "-ERR [LOGIN-DELAY] Wait 60 seconds\r\n", POP3C_EINUSE },
		{ "-ERR [SYS/TEMP] try later\r\n", POP3C_ESYS },
		{ "-ERR [SYS/PERM] broken\r\n", POP3C_ESYS },
		{ "-ERR [AUTH/X-NEW] odd\r\n", POP3C_EAUTH },
		{ "+WHAT\r\n", POP3C_EPROTO },
		{ "", POP3C_ENET },
	};
	char in[256];
	struct mem m;

	(void)state;
	for (size_t i = 0; i < N_ELEM(cases); i++) {
		struct pop3c *c;

		(void)snprintf(in, sizeof(in), GREET "+OK\r\n%s",
		    cases[i].reply);
		c = mem_client(&m, in, strlen(in), 2);
		assert_int_equal(pop3c_greeting(c), 0);
		assert_int_equal(login(c, "alice", "pw", NULL), -1);
		assert_int_equal(pop3c_error(c), cases[i].err);
		pop3c_free(&c);
	}
}

static void
test_line_break_in_argument_is_refused(void **state)
{
	static const char in[] = GREET "+OK\r\n+OK\r\n";
	struct mem m;
	struct pop3c *c = mem_client(&m, in, sizeof(in) - 1, 64);

	(void)state;
	assert_int_equal(pop3c_greeting(c), 0);
	assert_int_equal(login(c, "alice\r\nDELE 1", "pw", NULL), -1);
	assert_int_equal(m.outlen, 0);
	pop3c_free(&c);
}

/* ---- STAT, LIST, UIDL ---- */

static struct pop3c *
logged_in(struct mem *m, const char *rest, size_t chunk)
{
	static char in[1 << 16];
	struct pop3c *c;

	(void)snprintf(in, sizeof(in), GREET "+OK\r\n+OK\r\n%s", rest);
	c = mem_client(m, in, strlen(in), chunk);
	assert_int_equal(pop3c_greeting(c), 0);
	assert_int_equal(login(c, "u", "p", NULL), 0);
	return c;
}

static void
test_stat_strict_numbers(void **state)
{
	static const struct {
		const char	*reply;
		int		 rc;
		uint32_t	 n;
		uint64_t	 size;
	} cases[] = {
		{ "+OK 2 320\r\n", 0, 2, 320 },
		{ "+OK 0 0\r\n", 0, 0, 0 },
		{ "+OK 3 18446744073709551615 extra\r\n", 0, 3, UINT64_MAX },
		{ "+OK 2 99999999999999999999\r\n", -1, 0, 0 },
		{ "+OK 4294967296 1\r\n", -1, 0, 0 },
		{ "+OK -1 2\r\n", -1, 0, 0 },
		{ "+OK 2\r\n", -1, 0, 0 },
		{ "+OK  2 3\r\n", -1, 0, 0 },
		{ "+OK 2 3x\r\n", -1, 0, 0 },
		{ "+OK\r\n", -1, 0, 0 },
	};
	struct mem m;

	(void)state;
	for (size_t i = 0; i < N_ELEM(cases); i++) {
		struct pop3c *c = logged_in(&m, cases[i].reply, 3);
		uint32_t n = 0;
		uint64_t size = 0;

		assert_int_equal(pop3c_stat(c, &n, &size), cases[i].rc);
		if (cases[i].rc == 0) {
			assert_int_equal(n, cases[i].n);
			assert_true(size == cases[i].size);
		} else {
			assert_int_equal(pop3c_error(c), POP3C_EPROTO);
		}
		pop3c_free(&c);
	}
}

static void
test_list_and_uidl(void **state)
{
	static const char rest[] = "+OK 3 messages\r\n1 120\r\n2 5\r\n"
	    "7 99999\r\n.\r\n+OK\r\n1 aaa\r\n2 b~!\r\n7 c\r\n.\r\n";
	struct mem m;

	(void)state;
	for (size_t k = 0; k < N_ELEM(chunks); k++) {
		struct pop3c *c = logged_in(&m, rest, chunks[k]);
		struct pop3c_msg *msgs;
		size_t n;

		assert_int_equal(pop3c_list(c, &msgs, &n), 0);
		assert_int_equal(n, 3);
		assert_int_equal(msgs[2].num, 7);
		assert_true(msgs[2].size == 99999);
		assert_int_equal(pop3c_uidl(c, msgs, n), 0);
		assert_string_equal(msgs[0].uid, "aaa");
		assert_string_equal(msgs[1].uid, "b~!");
		assert_string_equal(msgs[2].uid, "c");
		pop3c_msgs_free(&msgs, n);
		assert_null(msgs);
		pop3c_free(&c);
	}
}

static void
test_empty_list(void **state)
{
	struct mem m;
	struct pop3c *c = logged_in(&m, "+OK\r\n.\r\n+OK\r\n.\r\n", 1);
	struct pop3c_msg *msgs;
	size_t n;

	(void)state;
	assert_int_equal(pop3c_list(c, &msgs, &n), 0);
	assert_int_equal(n, 0);
	assert_null(msgs);
	assert_int_equal(pop3c_uidl(c, msgs, n), 0);
	pop3c_free(&c);
}

static void
test_hostile_list_lines(void **state)
{
	static const char *const bad[] = {
		"+OK\r\n1 99999999999999999999\r\n.\r\n",
		"+OK\r\n1 -5\r\n.\r\n",
		"+OK\r\n0 5\r\n.\r\n",
		"+OK\r\n4294967296 5\r\n.\r\n",
		"+OK\r\n1\r\n.\r\n",
		"+OK\r\n1 5\r\n1 6\r\n.\r\n",
		"+OK\r\n2 5\r\n1 6\r\n.\r\n",
		"+OK\r\n1 5\r\n2 6\r\n",			/* no "." */
		"+OK\r\n1 5\r\n2 6\r\n.",		/* "." no CRLF */
		"+OK\r\n1 5\0\r\n.\r\n",
		"+OK\r\n 1 5\r\n.\r\n",
	};
	struct mem m;

	(void)state;
	for (size_t i = 0; i < N_ELEM(bad); i++) {
		for (size_t k = 0; k < N_ELEM(chunks); k++) {
			struct pop3c *c = logged_in(&m, bad[i], chunks[k]);
			struct pop3c_msg *msgs = (void *)1;
			size_t n = 99;

			assert_int_equal(pop3c_list(c, &msgs, &n), -1);
			/* Closed before the ".": the connection dropped. */
			assert_int_equal(pop3c_error(c),
			    strstr(bad[i], ".\r\n") == NULL ? POP3C_ENET :
			    POP3C_EPROTO);
			assert_null(msgs);
			assert_int_equal(n, 0);
			pop3c_free(&c);
		}
	}
}

static void
test_hostile_uidl(void **state)
{
	static const char *const bad[] = {
		"1 a\r\n2 a\r\n.\r\n",			/* duplicate */
		"1 a\r\n.\r\n",				/* 2 missing */
		"1 a\r\n2 b\r\n3 c\r\n.\r\n",		/* 3 unlisted */
		"1 a\r\n1 b\r\n2 c\r\n.\r\n",		/* 1 twice */
		"1 a\r\n2 b c\r\n.\r\n",		/* ok: text after uid */
		"1 a\x01\r\n2 b\r\n.\r\n",		/* control octet */
		"1 a\r\n2 \xc3\xa9\r\n.\r\n",		/* not ASCII */
		"1 a\r\n2 b\r\n",			/* no "." */
		"1\r\n2 b\r\n.\r\n",
	};
	char rest[1024];
	struct mem m;

	(void)state;
	for (size_t i = 0; i < N_ELEM(bad); i++) {
		struct pop3c *c;
		struct pop3c_msg *msgs;
		size_t n;
		int want = i == 4 ? 0 : -1;

		(void)snprintf(rest, sizeof(rest),
		    "+OK\r\n1 10\r\n2 20\r\n.\r\n+OK\r\n%s", bad[i]);
		c = logged_in(&m, rest, 2);
		assert_int_equal(pop3c_list(c, &msgs, &n), 0);
		assert_int_equal(pop3c_uidl(c, msgs, n), want);
		if (want < 0)
			assert_int_equal(pop3c_error(c), i == 7 ? POP3C_ENET :
			    POP3C_EPROTO);
		pop3c_msgs_free(&msgs, n);
		pop3c_free(&c);
	}
}

static void
test_uid_length_bound(void **state)
{
	char rest[1024], uid[POP3C_UID_MAX + 2];
	struct mem m;

	(void)state;
	for (int extra = 0; extra <= 1; extra++) {
		struct pop3c *c;
		struct pop3c_msg *msgs;
		size_t n;

		memset(uid, 'u', POP3C_UID_MAX + (size_t)extra);
		uid[POP3C_UID_MAX + extra] = '\0';
		(void)snprintf(rest, sizeof(rest),
		    "+OK\r\n1 10\r\n.\r\n+OK\r\n1 %s\r\n.\r\n", uid);
		c = logged_in(&m, rest, 100);
		assert_int_equal(pop3c_list(c, &msgs, &n), 0);
		assert_int_equal(pop3c_uidl(c, msgs, n), extra ? -1 : 0);
		pop3c_msgs_free(&msgs, n);
		pop3c_free(&c);
	}
}

static void
test_uidl_unsupported(void **state)
{
	struct mem m;
	struct pop3c *c = logged_in(&m, "+OK\r\n1 10\r\n.\r\n-ERR no UIDL\r\n"
	    "+OK 1 10\r\n", 1);
	struct pop3c_msg *msgs;
	size_t n;
	uint32_t cnt;
	uint64_t size;

	(void)state;
	assert_int_equal(pop3c_list(c, &msgs, &n), 0);
	assert_int_equal(pop3c_uidl(c, msgs, n), 1);
	assert_null(msgs[0].uid);
	/* The session goes on. */
	assert_int_equal(pop3c_stat(c, &cnt, &size), 0);
	pop3c_msgs_free(&msgs, n);
	pop3c_free(&c);
}

/* ---- RETR ---- */

struct sink {
	char	 buf[1 << 20];
	size_t	 len;
	size_t	 pieces;
	size_t	 fail_after;	/* pieces; 0 = never fail */
};

static int
sink_data(void *arg, const char *data, size_t len, bool eol)
{
	struct sink *s = arg;

	s->pieces++;
	if (s->fail_after > 0 && s->pieces >= s->fail_after)
		return -1;
	assert_true(s->len + len + 1 < sizeof(s->buf));
	memcpy(s->buf + s->len, data, len);
	s->len += len;
	if (eol)
		s->buf[s->len++] = '\n';
	return 0;
}

static void
test_retr_unstuffs_and_strips_crlf(void **state)
{
	static const char rest[] = "+OK 40 octets\r\n"
	    "Subject: x\r\n\r\n..leading dot\r\n...\r\n..\r\n"
	    "bare lf\nbare\rcr\r\n.x\r\n.\r\n+OK bye\r\n";
	static const char want[] = "Subject: x\n\n.leading dot\n..\n.\n"
	    "bare lf\nbare\rcr\nx\n";
	struct mem m;
	static struct sink s;

	(void)state;
	for (size_t k = 0; k < N_ELEM(chunks); k++) {
		struct pop3c *c = logged_in(&m, rest, chunks[k]);
		uint64_t octets = 0;

		memset(&s, 0, sizeof(s));
		assert_int_equal(pop3c_retr(c, 1, 0, sink_data, &s, &octets),
		    0);
		assert_int_equal(s.len, sizeof(want) - 1);
		assert_memory_equal(s.buf, want, s.len);
		/* Line ends count as CRLF, like the server's size. */
		assert_true(octets == s.len + 8);
		assert_int_equal(pop3c_quit(c), 0);
		assert_non_null(strstr(m.out, "RETR 1\r\nQUIT\r\n"));
		pop3c_free(&c);
	}
}

static void
test_retr_long_line_comes_in_pieces(void **state)
{
	size_t linelen = 3 * POP3C_BUF_SIZE + 123;
	size_t len = 64 + linelen + 64;
	char *in = malloc(len), *p;
	static struct sink s;
	struct mem m;

	(void)state;
	assert_non_null(in);
	p = in + sprintf(in, GREET "+OK\r\n+OK\r\n+OK\r\n.");
	/* A stuffed line of 'y's, with CRs here and there. */
	for (size_t i = 0; i < linelen; i++)
		*p++ = i % 1000 == 999 ? '\r' : 'y';
	p += sprintf(p, "\r\n.\r\n");
	for (size_t k = 0; k < N_ELEM(chunks); k++) {
		struct pop3c *c = mem_client(&m, in, (size_t)(p - in),
		    chunks[k]);

		memset(&s, 0, sizeof(s));
		assert_int_equal(pop3c_greeting(c), 0);
		assert_int_equal(login(c, "u", "p", NULL), 0);
		assert_int_equal(pop3c_retr(c, 1, 0, sink_data, &s, NULL), 0);
		assert_true(s.pieces >= 4);
		assert_int_equal(s.len, linelen + 1);
		for (size_t i = 0; i < linelen; i++)
			assert_int_equal(s.buf[i],
			    i % 1000 == 999 ? '\r' : 'y');
		pop3c_free(&c);
	}
	free(in);
}

static void
test_retr_cut_short_is_a_dropped_connection(void **state)
{
	static const char *const cut[] = {
		"+OK\r\nline 1\r\nline 2\r\n",
		"+OK\r\nline 1\r\nline 2",
		"+OK\r\nline 1\r\n.",
		"+OK\r\n",
	};
	struct mem m;
	static struct sink s;

	(void)state;
	for (size_t i = 0; i < N_ELEM(cut); i++) {
		struct pop3c *c = logged_in(&m, cut[i], 3);

		memset(&s, 0, sizeof(s));
		assert_int_equal(pop3c_retr(c, 1, 0, sink_data, &s, NULL), -1);
		/* A connection failure (exit 2), not a protocol violation. */
		assert_int_equal(pop3c_error(c), POP3C_ENET);
		assert_non_null(strstr(pop3c_errmsg(c), "cut short"));
		assert_false(pop3c_usable(c));
		pop3c_free(&c);
	}
}

static void
test_retr_bounded_by_max_octets(void **state)
{
	struct mem m;
	static struct sink s;
	struct pop3c *c = logged_in(&m, "+OK\r\n0123456789\r\n"
	    "0123456789\r\n.\r\n", 5);

	(void)state;
	memset(&s, 0, sizeof(s));
	assert_int_equal(pop3c_retr(c, 1, 20, sink_data, &s, NULL), -1);
	assert_int_equal(pop3c_error(c), POP3C_EPROTO);
	pop3c_free(&c);
	c = logged_in(&m, "+OK\r\n0123456789\r\n0123456789\r\n.\r\n", 5);
	memset(&s, 0, sizeof(s));
	assert_int_equal(pop3c_retr(c, 1, 24, sink_data, &s, NULL), 0);
	pop3c_free(&c);
}

static void
test_retr_callback_failure_keeps_session(void **state)
{
	struct mem m;
	static struct sink s;
	struct pop3c *c = logged_in(&m, "+OK\r\na\r\nb\r\nc\r\n.\r\n"
	    "+OK\r\n", 1);

	(void)state;
	memset(&s, 0, sizeof(s));
	s.fail_after = 2;
	assert_int_equal(pop3c_retr(c, 4, 0, sink_data, &s, NULL), -1);
	assert_int_equal(pop3c_error(c), POP3C_ELOCAL);
	assert_true(pop3c_usable(c));
	assert_int_equal(pop3c_dele(c, 1), 0);
	assert_non_null(strstr(m.out, "RETR 4\r\nDELE 1\r\n"));
	pop3c_free(&c);
}

static void
test_retr_err_and_top(void **state)
{
	struct mem m;
	static struct sink s;
	struct pop3c *c = logged_in(&m, "-ERR no such message\r\n"
	    "+OK\r\nSubject: a\r\n\r\n.\r\n", 2);

	(void)state;
	memset(&s, 0, sizeof(s));
	assert_int_equal(pop3c_retr(c, 9, 0, sink_data, &s, NULL), -1);
	assert_int_equal(pop3c_error(c), POP3C_ESERVER);
	assert_true(pop3c_usable(c));
	assert_int_equal(pop3c_top(c, 2, 0, 0, sink_data, &s, NULL), 0);
	assert_non_null(strstr(m.out, "RETR 9\r\nTOP 2 0\r\n"));
	assert_int_equal(s.len, 12);
	pop3c_free(&c);
}

static void
test_dele_and_quit_errors(void **state)
{
	struct mem m;
	struct pop3c *c = logged_in(&m, "-ERR [SYS/TEMP] disk\r\n"
	    "-ERR [SYS/PERM] could not delete\r\n", 4);

	(void)state;
	assert_int_equal(pop3c_dele(c, 1), -1);
	assert_int_equal(pop3c_error(c), POP3C_ESYS);
	assert_string_equal(pop3c_errcode(c), "SYS/TEMP");
	assert_int_equal(pop3c_quit(c), -1);
	assert_int_equal(pop3c_error(c), POP3C_ESYS);
	pop3c_free(&c);
}

/* ---- pipelining ---- */

/* Logged in to a server whose CAPA lists PIPELINING (or not). */
static struct pop3c *
capa_logged_in(struct mem *m, bool pipelining, const char *rest,
    size_t chunk)
{
	static char in[1 << 16];
	struct pop3c *c;

	(void)snprintf(in, sizeof(in), GREET "+OK\r\nUSER\r\n%s.\r\n"
	    "+OK\r\n+OK\r\n%s", pipelining ? "PIPELINING\r\n" : "", rest);
	c = mem_client(m, in, strlen(in), chunk);
	assert_int_equal(pop3c_greeting(c), 0);
	assert_int_equal(pop3c_capa(c), 0);
	assert_int_equal(pop3c_login(c, "u", "p", POP3C_AUTH_USER, true, NULL),
	    0);
	m->outlen = 0;
	m->out[0] = '\0';
	return c;
}

static void
test_pipelined_commands_go_out_together_replies_in_order(void **state)
{
	static const char rest[] = "+OK\r\none\r\n.\r\n"
	    "-ERR [SYS/TEMP] gone\r\n"
	    "+OK\r\nthree\r\n..dot\r\n.\r\n"
	    "+OK deleted\r\n+OK bye\r\n";
	struct mem m;
	static struct sink s;

	(void)state;
	for (size_t k = 0; k < N_ELEM(chunks); k++) {
		struct pop3c *c = capa_logged_in(&m, true, rest, chunks[k]);

		memset(&s, 0, sizeof(s));
		assert_int_equal(pop3c_send_retr(c, 1), 0);
		assert_int_equal(pop3c_send_retr(c, 2), 0);
		assert_int_equal(pop3c_send_top(c, 3, 5), 0);
		assert_int_equal(pop3c_send_dele(c, 1), 0);
		assert_int_equal(pop3c_outstanding(c), 4);
		/* Nothing written until a reply is wanted; then all at once. */
		assert_int_equal(m.outlen, 0);
		assert_int_equal(pop3c_recv_data(c, 0, sink_data, &s, NULL), 0);
		assert_string_equal(m.out,
		    "RETR 1\r\nRETR 2\r\nTOP 3 5\r\nDELE 1\r\n");
		/* A -ERR for one leaves the next replies readable. */
		assert_int_equal(pop3c_recv_data(c, 0, sink_data, &s, NULL), -1);
		assert_int_equal(pop3c_error(c), POP3C_ESYS);
		assert_true(pop3c_usable(c));
		/* The reply of a DELE is not a message. */
		assert_int_equal(pop3c_recv_status(c), -1);
		assert_int_equal(pop3c_error(c), POP3C_ELOCAL);
		assert_int_equal(pop3c_recv_data(c, 0, sink_data, &s, NULL), 0);
		assert_int_equal(s.len, 15);
		assert_memory_equal(s.buf, "one\nthree\n.dot\n", 15);
		/* No other command while replies are outstanding. */
		assert_int_equal(pop3c_quit(c), -1);
		assert_int_equal(pop3c_error(c), POP3C_ELOCAL);
		assert_int_equal(pop3c_recv_status(c), 0);
		assert_int_equal(pop3c_outstanding(c), 0);
		assert_int_equal(pop3c_quit(c), 0);
		pop3c_free(&c);
	}
}

static void
test_pipelining_window_and_capability_bound_it(void **state)
{
	struct mem m;
	struct pop3c *c = capa_logged_in(&m, false, "", 512);

	(void)state;
	/* Without PIPELINING in CAPA: one command at a time. */
	assert_int_equal(pop3c_send_retr(c, 1), 0);
	assert_int_equal(pop3c_send_retr(c, 2), -1);
	assert_int_equal(pop3c_error(c), POP3C_ELOCAL);
	pop3c_free(&c);
	c = capa_logged_in(&m, true, "", 512);
	for (unsigned int i = 0; i < POP3C_PIPELINE_MAX; i++)
		assert_int_equal(pop3c_send_dele(c, i + 1), 0);
	assert_int_equal(pop3c_send_dele(c, 99), -1);
	assert_int_equal(pop3c_error(c), POP3C_ELOCAL);
	pop3c_free(&c);
}

static void
test_drain_reads_the_rest_and_keeps_the_first_error(void **state)
{
	static const char rest[] = "-ERR no such message\r\n"
	    "+OK\r\nlong\r\n.\r\n+OK\r\n+OK bye\r\n";
	struct mem m;
	static struct sink s;
	struct pop3c *c = capa_logged_in(&m, true, rest, 3);

	(void)state;
	memset(&s, 0, sizeof(s));
	assert_int_equal(pop3c_send_retr(c, 7), 0);
	assert_int_equal(pop3c_send_retr(c, 8), 0);
	assert_int_equal(pop3c_send_dele(c, 8), 0);
	assert_int_equal(pop3c_recv_data(c, 0, sink_data, &s, NULL), -1);
	assert_int_equal(pop3c_drain_replies(c), 0);
	assert_int_equal(pop3c_error(c), POP3C_ESERVER);
	assert_non_null(strstr(pop3c_errmsg(c), "RETR 7"));
	assert_int_equal(pop3c_outstanding(c), 0);
	assert_int_equal(pop3c_quit(c), 0);
	pop3c_free(&c);
	/* A server that hangs up mid-way: drain says the session is gone. */
	c = capa_logged_in(&m, true, "+OK\r\ncut", 1);
	assert_int_equal(pop3c_send_retr(c, 1), 0);
	assert_int_equal(pop3c_send_retr(c, 2), 0);
	assert_int_equal(pop3c_drain_replies(c), -1);
	assert_false(pop3c_usable(c));
	pop3c_free(&c);
}

/* ---- a real socket ---- */

static struct pop3c *
pair_client(int *peer, int timeout_ms)
{
	struct pop3c_transport tr;
	struct pop3c *c;
	int sv[2];

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	assert_int_equal(pop3c_fd_transport(&tr, sv[0], timeout_ms), 0);
	c = pop3c_new(&tr);
	assert_non_null(c);
	*peer = sv[1];
	return c;
}

static void
test_silent_server_times_out(void **state)
{
	int peer;
	struct pop3c *c = pair_client(&peer, 100);

	(void)state;
	assert_int_equal(pop3c_greeting(c), -1);
	assert_int_equal(pop3c_error(c), POP3C_ENET);
	assert_non_null(strstr(pop3c_errmsg(c), "timed out"));
	pop3c_free(&c);
	close(peer);
}

static void
test_drop_mid_retr_over_socket(void **state)
{
	static const char in[] = GREET "+OK\r\n+OK\r\n+OK\r\npart of a "
	    "message\r\nand";
	static struct sink s;
	int peer;
	struct pop3c *c = pair_client(&peer, 2000);

	(void)state;
	assert_int_equal(write(peer, in, sizeof(in) - 1),
	    (ssize_t)sizeof(in) - 1);
	/* EOF for the client, while its commands still go through. */
	assert_int_equal(shutdown(peer, SHUT_WR), 0);
	memset(&s, 0, sizeof(s));
	assert_int_equal(pop3c_greeting(c), 0);
	assert_int_equal(login(c, "u", "p", NULL), 0);
	assert_int_equal(pop3c_retr(c, 1, 0, sink_data, &s, NULL), -1);
	assert_int_equal(pop3c_error(c), POP3C_ENET);
	/* The session is over: no QUIT, which would commit DELEs. */
	assert_int_equal(pop3c_quit(c), -1);
	pop3c_free(&c);
	close(peer);
}

/*
 * A stream whose write waits for input (TLS renegotiating under it) over
 * a socket that is writable but silent: the session must poll for input,
 * not spin on a socket that is always writable, and time out.
 */
struct stuck {
	struct conn	conn;
	unsigned int	writes;
};

static ssize_t
stuck_read(struct conn *conn, void *buf, size_t len)
{
	(void)conn;
	(void)buf;
	(void)len;
	errno = EAGAIN;
	return -1;
}

static ssize_t
stuck_write(struct conn *conn, const void *buf, size_t len)
{
	(void)buf;
	(void)len;
	((struct stuck *)conn)->writes++;
	conn->want_read = true;
	errno = EAGAIN;
	return -1;
}

static const struct conn_ops stuck_ops = {
	.read = stuck_read,
	.write = stuck_write,
	.pending = mem_pending,
	.shutdown = mem_nothing,
	.free = mem_nothing,
};

static void
test_write_waiting_for_input_polls_for_input(void **state)
{
	struct stuck st = { .conn = { .ops = &stuck_ops } };
	struct pop3c_transport tr = { .conn = &st.conn, .close = mem_close,
	    .timeout_ms = 200 };
	struct pop3c *c;
	int sv[2];

	(void)state;
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	st.conn.fd = sv[0];
	c = pop3c_new(&tr);
	assert_non_null(c);
	assert_int_equal(pop3c_quit(c), -1);
	assert_int_equal(pop3c_error(c), POP3C_ENET);
	assert_non_null(strstr(pop3c_errmsg(c), "timed out"));
	/* One try, one wait for input that never came: no busy loop. */
	assert_int_equal(st.writes, 1);
	pop3c_free(&c);
	close(sv[0]);
	close(sv[1]);
}

static void
test_write_to_closed_peer(void **state)
{
	int peer;
	struct pop3c *c = pair_client(&peer, 2000);

	(void)state;
	assert_int_equal(write(peer, GREET, 11), 11);
	assert_int_equal(pop3c_greeting(c), 0);
	close(peer);
	assert_int_equal(login(c, "u", "p", NULL), -1);
	assert_int_equal(pop3c_error(c), POP3C_ENET);
	pop3c_free(&c);
}

static void
test_connect_refused_message(void **state)
{
	char err[ERR_LEN];
	int fd, port;
	struct sockaddr_in sin = { .sin_family = AF_INET };
	socklen_t len = sizeof(sin);
	char portstr[8];

	(void)state;
	/* A port nobody listens on: bind, learn it, close. */
	fd = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(fd >= 0);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
	port = ntohs(sin.sin_port);
	close(fd);
	(void)snprintf(portstr, sizeof(portstr), "%d", port);
	assert_int_equal(net_connect("127.0.0.1", portstr, AF_UNSPEC,
	    2000, err), -1);
	assert_non_null(strstr(err, "127.0.0.1:"));
	assert_non_null(strstr(err, ": connection refused"));
}

/* ---- STLS, choosing a login method, SASL exchanges ---- */

/* A transport that pretends to start TLS and to have binding data. */
struct fake_tls {
	struct mem	 m;
	const char	*after;		/* the server's octets over TLS */
	int		 starttls_calls;
	bool		 starttls_fails;
	bool		 exporter, end_point;
};

static int
fake_starttls(void *arg, char *err)
{
	struct fake_tls *f = arg;

	f->starttls_calls++;
	if (f->starttls_fails) {
		(void)snprintf(err, ERR_LEN, "TLS: certificate verify failed");
		return -1;
	}
	f->exporter = true;
	if (f->after != NULL) {
		f->m.in = f->after;
		f->m.inlen = strlen(f->after);
		f->m.pos = 0;
	}
	return 0;
}

static ssize_t
fake_cb(void *arg, const char *type, unsigned char *out, size_t size)
{
	struct fake_tls *f = arg;

	if ((strcmp(type, "tls-exporter") == 0 && f->exporter) ||
	    (strcmp(type, "tls-server-end-point") == 0 && f->end_point)) {
		assert_true(size >= 32);
		memset(out, type[4] == 'e' ? 0xee : 0x5e, 32);
		return 32;
	}
	return -1;
}

static struct pop3c *
tls_client(struct fake_tls *f, const char *in, size_t inlen, size_t chunk,
    bool implicit)
{
	struct pop3c_transport tr = { .conn = &f->m.conn, .close = mem_close,
	    .ctx = f, .starttls = fake_starttls, .channel_binding = fake_cb,
	    .tls = implicit };
	struct pop3c *c;

	memset(f, 0, sizeof(*f));
	mem_init(&f->m, in, inlen, chunk);
	f->exporter = implicit;
	c = pop3c_new(&tr);
	assert_non_null(c);
	return c;
}

static void
test_stls_then_capa_again(void **state)
{
	static const char in[] = GREET
	    "+OK\r\nSTLS\r\nUSER\r\nSASL PLAIN\r\n.\r\n"
	    "+OK Begin TLS\r\n";
	static const char after[] =
	    "+OK\r\nUSER\r\nSASL SCRAM-SHA-256-PLUS PLAIN\r\n.\r\n";
	struct fake_tls f;

	(void)state;
	for (size_t k = 0; k < N_ELEM(chunks); k++) {
		struct pop3c *c = tls_client(&f, in, sizeof(in) - 1,
		    chunks[k], false);

		f.after = after;
		assert_int_equal(pop3c_greeting(c), 0);
		assert_int_equal(pop3c_capa(c), 0);
		assert_false(pop3c_tls(c));
		assert_true(pop3c_caps(c) & POP3C_CAP_STLS);
		assert_int_equal(pop3c_mechs(c), POP3C_MECH_PLAIN);
		assert_int_equal(pop3c_stls(c), 0);
		assert_true(pop3c_tls(c));
		assert_int_equal(f.starttls_calls, 1);
		/* RFC 2595 sec. 4: the plaintext CAPA is forgotten. */
		assert_false(pop3c_caps_known(c));
		assert_int_equal(pop3c_mechs(c), 0);
		assert_int_equal(pop3c_capa(c), 0);
		assert_int_equal(pop3c_mechs(c),
		    POP3C_MECH_SCRAM_PLUS | POP3C_MECH_PLAIN);
		assert_false(pop3c_caps(c) & POP3C_CAP_STLS);
		assert_string_equal(f.m.out, "CAPA\r\nSTLS\r\nCAPA\r\n");
		pop3c_free(&c);
	}
}

static void
test_stls_failures_never_fall_back(void **state)
{
	static const struct {
		const char		*reply;
		bool			 handshake_fails;
		enum pop3c_error	 err;
	} cases[] = {
		{ "-ERR not now\r\n", false, POP3C_ETLS },
		{ "-ERR [SYS/TEMP] no TLS today\r\n", false, POP3C_ETLS },
		{ "+OK go\r\n", true, POP3C_ETLS },
		/* bytes after +OK before the handshake: injected */
		{ "+OK go\r\n+OK Logged in\r\n", false, POP3C_EPROTO },
		{ "+OK go\r\nX", false, POP3C_EPROTO },
		{ "+OK go", false, POP3C_ENET },
		{ "garbage\r\n", false, POP3C_EPROTO },
	};
	char in[256];
	struct fake_tls f;

	(void)state;
	for (size_t i = 0; i < N_ELEM(cases); i++) {
		struct pop3c *c;

		(void)snprintf(in, sizeof(in), GREET "%s", cases[i].reply);
		/* in one read, so injected bytes arrive with the +OK */
		c = tls_client(&f, in, strlen(in), 1 << 20, false);
		f.starttls_fails = cases[i].handshake_fails;
		assert_int_equal(pop3c_greeting(c), 0);
		assert_int_equal(pop3c_stls(c), -1);
		assert_int_equal(pop3c_error(c), cases[i].err);
		assert_false(pop3c_usable(c));
		assert_false(pop3c_tls(c));
		assert_int_equal(f.starttls_calls,
		    cases[i].handshake_fails ? 1 : 0);
		/* Dead: no login can follow. */
		assert_int_equal(pop3c_login(c, "u", "p", POP3C_AUTH_USER,
		    true, NULL), -1);
		assert_string_equal(f.m.out, "STLS\r\n");
		pop3c_free(&c);
	}
	/* A transport that cannot do TLS, or TLS already up. */
	{
		struct mem m;
		struct pop3c *c = mem_client(&m, GREET, strlen(GREET), 64);

		assert_int_equal(pop3c_stls(c), -1);
		assert_int_equal(pop3c_error(c), POP3C_ETLS);
		assert_string_equal(m.out, "");
		pop3c_free(&c);
		c = tls_client(&f, GREET, strlen(GREET), 64, true);
		assert_true(pop3c_tls(c));
		assert_int_equal(pop3c_stls(c), -1);
		assert_string_equal(f.m.out, "");
		pop3c_free(&c);
	}
}

/* CAPA lines -> the method AUTO picks. */
static void
test_auth_choice_table(void **state)
{
	static const char all[] = "SASL SCRAM-SHA-256-PLUS SCRAM-SHA-256 "
	    "CRAM-MD5 PLAIN LOGIN\r\nUSER\r\n";
	static const struct {
		const char	*capa;		/* NULL: CAPA answers -ERR */
		bool		 apop, tls, cb, cleartext;
		enum pop3c_auth	 want;
	} cases[] = {
		{ all, true, true, true, false, POP3C_AUTH_SCRAM_PLUS },
		{ all, true, true, false, false, POP3C_AUTH_SCRAM },
		{ all, true, false, true, true, POP3C_AUTH_SCRAM },
		{ "SASL PLAIN LOGIN CRAM-MD5\r\nUSER\r\n", true, true, true,
		    false, POP3C_AUTH_APOP },
		{ "SASL PLAIN LOGIN CRAM-MD5\r\nUSER\r\n", false, true, true,
		    false, POP3C_AUTH_CRAM_MD5 },
		{ "SASL CRAM-MD5\r\n", false, false, false, false,
		    POP3C_AUTH_CRAM_MD5 },
		{ "SASL LOGIN PLAIN\r\nUSER\r\n", false, true, false, false,
		    POP3C_AUTH_PLAIN },
		{ "SASL LOGIN\r\nUSER\r\n", false, true, false, false,
		    POP3C_AUTH_LOGIN },
		{ "USER\r\n", false, true, false, false, POP3C_AUTH_USER },
		{ NULL, false, true, false, false, POP3C_AUTH_USER },
		{ NULL, true, false, false, false, POP3C_AUTH_APOP },
		/* CAPA known, neither USER nor SASL: nothing to use */
		{ "TOP\r\nUIDL\r\n", false, true, true, true, POP3C_AUTH_NONE },
		/* passwords stay off plaintext unless --tls=no said so */
		{ "SASL PLAIN LOGIN\r\nUSER\r\n", false, false, false, false,
		    POP3C_AUTH_NONE },
		{ NULL, false, false, false, false, POP3C_AUTH_NONE },
		{ "SASL PLAIN LOGIN\r\nUSER\r\n", false, false, false, true,
		    POP3C_AUTH_PLAIN },
		/* -PLUS needs TLS and binding data, whatever CAPA says */
		{ "SASL SCRAM-SHA-256-PLUS\r\nUSER\r\n", false, false, true,
		    true, POP3C_AUTH_USER },
		/* names: any case, exact words, several spaces */
		{ "sasl scram-sha-256 x-unknown\r\n", false, true, true, false,
		    POP3C_AUTH_SCRAM },
		{ "SASL X-SCRAM-SHA-256 SCRAM-SHA-256-PLUSX CRAM\r\nUSER\r\n",
		    false, true, true, false, POP3C_AUTH_USER },
		{ "SASLPLAIN\r\nUSER\r\n", false, true, false, false,
		    POP3C_AUTH_USER },
		{ "SASL  PLAIN  \r\n", false, true, false, false,
		    POP3C_AUTH_PLAIN },
		{ "SASL\r\nUSER\r\n", false, true, false, false,
		    POP3C_AUTH_USER },
	};
	char in[512];
	struct mem m;

	(void)state;
	for (size_t i = 0; i < N_ELEM(cases); i++) {
		struct pop3c *c;

		if (cases[i].capa != NULL)
			(void)snprintf(in, sizeof(in), "+OK\r\n%s.\r\n",
			    cases[i].capa);
		else
			(void)snprintf(in, sizeof(in), "-ERR what\r\n");
		c = mem_client(&m, in, strlen(in), 3);
		assert_true(pop3c_capa(c) >= 0);
		assert_int_equal(pop3c_auth_choose(pop3c_caps(c),
		    pop3c_caps_known(c), pop3c_mechs(c), cases[i].apop,
		    cases[i].tls, cases[i].cb, cases[i].cleartext),
		    cases[i].want);
		pop3c_free(&c);
	}
}

static void
test_auth_names(void **state)
{
	static const char *const names[] = { "scram-sha-256-plus",
	    "SCRAM-SHA-256", "apop", "Cram-MD5", "plain", "login", "user",
	    "oauthbearer", "XOAuth2" };
	enum pop3c_auth m;

	(void)state;
	for (size_t i = 0; i < N_ELEM(names); i++) {
		assert_int_equal(pop3c_auth_parse(names[i], &m), 0);
		assert_int_equal(m, POP3C_AUTH_SCRAM_PLUS + i);
		assert_true(strcasecmp(pop3c_auth_name(m), names[i]) == 0);
	}
	assert_int_equal(pop3c_auth_parse("auto", &m), -1);
	assert_int_equal(pop3c_auth_parse("none", &m), -1);
	assert_int_equal(pop3c_auth_parse("digest-md5", &m), -1);
	assert_int_equal(pop3c_auth_parse("", &m), -1);
	/* SASL names come from the shared table. */
	assert_string_equal(pop3c_auth_name(POP3C_AUTH_XOAUTH2),
	    sasl_mechs_name(SASL_MECH_XOAUTH2));
	/* AUTO never picks OAuth: a token is not a password. */
	assert_int_equal(pop3c_auth_choose(POP3C_CAP_SASL, true,
	    POP3C_MECH_OAUTHBEARER | POP3C_MECH_XOAUTH2, false, true, true,
	    false), POP3C_AUTH_NONE);
}

/* Cleartext methods without TLS and without leave: nothing is sent. */
static void
test_no_password_on_plaintext_without_leave(void **state)
{
	static const char in[] = GREET
	    "+OK\r\nUSER\r\nSASL PLAIN LOGIN\r\n.\r\n";
	static const enum pop3c_auth methods[] = { POP3C_AUTH_AUTO,
	    POP3C_AUTH_PLAIN, POP3C_AUTH_LOGIN, POP3C_AUTH_USER };
	struct mem m;

	(void)state;
	for (size_t i = 0; i < N_ELEM(methods); i++) {
		struct pop3c *c = mem_client(&m, in, sizeof(in) - 1, 5);

		assert_int_equal(pop3c_greeting(c), 0);
		assert_int_equal(pop3c_capa(c), 0);
		m.outlen = 0;
		m.out[0] = '\0';
		assert_int_equal(pop3c_login(c, "u", "pw", methods[i], false,
		    NULL), -1);
		assert_int_equal(pop3c_error(c), methods[i] == POP3C_AUTH_AUTO ?
		    POP3C_EAUTH : POP3C_ETLS);
		assert_string_equal(m.out, "");
		pop3c_free(&c);
	}
}

static char *
b64(const char *s)
{
	static char buf[8][1024];
	static int n;
	char *out = buf[n++ % 8];

	assert_int_equal(base64_encode(out, sizeof(buf[0]), s, strlen(s)), 0);
	return out;
}

#define R7677_NONCE	"rOprNGfwEbeRWgbNEkqO"
#define R7677_SFIRST	"r=" R7677_NONCE "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0," \
			"s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
#define R7677_FINAL	"c=biws,r=" R7677_NONCE \
			"%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0," \
			"p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
#define R7677_SFINAL	"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="

/* The RFC 7677 exchange through AUTH, the server's last line varied. */
static struct pop3c *
scram_session(struct mem *m, char *in, size_t size, const char *sfinal,
    const char *last, size_t chunk)
{
	struct pop3c *c;

	(void)snprintf(in, size, GREET
	    "+OK\r\nSASL SCRAM-SHA-256\r\n.\r\n+ %s\r\n%s%s%s%s",
	    b64(R7677_SFIRST), sfinal != NULL ? "+ " : "",
	    sfinal != NULL ? b64(sfinal) : "", sfinal != NULL ? "\r\n" : "",
	    last);
	c = mem_client(m, in, strlen(in), chunk);
	assert_int_equal(pop3c_set_scram_nonce(c, R7677_NONCE), 0);
	assert_int_equal(pop3c_greeting(c), 0);
	assert_int_equal(pop3c_capa(c), 0);
	return c;
}

static void
test_scram_login_rfc7677(void **state)
{
	char in[2048], want[2048];
	struct mem m;
	const char *method = NULL;

	(void)state;
	(void)snprintf(want, sizeof(want), "CAPA\r\nAUTH SCRAM-SHA-256 %s\r\n"
	    "%s\r\n\r\nSTAT\r\n", b64("n,,n=user,r=" R7677_NONCE),
	    b64(R7677_FINAL));
	for (size_t k = 0; k < N_ELEM(chunks); k++) {
		struct pop3c *c = scram_session(&m, in, sizeof(in),
		    R7677_SFINAL, "+OK Logged in\r\n+OK 0 0\r\n", chunks[k]);
		uint32_t n;
		uint64_t size;

		/* Over plaintext without leave: SCRAM sends no password. */
		assert_int_equal(pop3c_login(c, "user", "pencil",
		    POP3C_AUTH_AUTO, false, &method), 0);
		assert_string_equal(method, "SCRAM-SHA-256");
		assert_null(pop3c_channel_binding(c));
		assert_int_equal(pop3c_stat(c, &n, &size), 0);
		assert_string_equal(m.out, want);
		pop3c_free(&c);
	}
}

static void
test_scram_server_signature_mismatch_ends_session(void **state)
{
	static const char *const sfinal[] = {
		"v=7rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=",
		"v=", "e=other-error", NULL,
	};
	char in[2048], want[2048];
	struct mem m;

	(void)state;
	(void)snprintf(want, sizeof(want), "CAPA\r\nAUTH SCRAM-SHA-256 %s\r\n"
	    "%s\r\n", b64("n,,n=user,r=" R7677_NONCE), b64(R7677_FINAL));
	for (size_t i = 0; i < N_ELEM(sfinal); i++) {
		/* NULL: the server says +OK without proving anything */
		struct pop3c *c = scram_session(&m, in, sizeof(in), sfinal[i],
		    "+OK Logged in\r\n+OK 0 0\r\n", 5);
		uint32_t n;
		uint64_t size;

		assert_int_equal(pop3c_login(c, "user", "pencil",
		    POP3C_AUTH_AUTO, false, NULL), -1);
		assert_int_equal(pop3c_error(c), POP3C_EAUTH);
		assert_false(pop3c_usable(c));
		if (i != 2)
			assert_non_null(strstr(pop3c_errmsg(c),
			    "server signature mismatch"));
		/* Nothing more goes out: no empty response, no STAT. */
		assert_int_equal(pop3c_stat(c, &n, &size), -1);
		assert_string_equal(m.out, want);
		pop3c_free(&c);
	}
}

static void
test_scram_plus_uses_tls_exporter_then_end_point(void **state)
{
	static const char in[] = GREET
	    "+OK\r\nSASL SCRAM-SHA-256-PLUS SCRAM-SHA-256\r\n.\r\n"
	    "-ERR [AUTH] Authentication failed.\r\n";
	struct fake_tls f;

	(void)state;
	for (int round = 0; round < 2; round++) {
		struct pop3c *c = tls_client(&f, in, sizeof(in) - 1, 7, true);
		const char *method = NULL;
		char want[512];

		f.exporter = round == 0;
		f.end_point = true;
		assert_int_equal(pop3c_set_scram_nonce(c, "abc"), 0);
		assert_int_equal(pop3c_greeting(c), 0);
		assert_int_equal(pop3c_capa(c), 0);
		assert_int_equal(pop3c_login(c, "u", "p", POP3C_AUTH_AUTO,
		    false, &method), -1);
		assert_int_equal(pop3c_error(c), POP3C_EAUTH);
		assert_string_equal(method, "SCRAM-SHA-256-PLUS");
		assert_string_equal(pop3c_channel_binding(c), round == 0 ?
		    "tls-exporter" : "tls-server-end-point");
		(void)snprintf(want, sizeof(want),
		    "CAPA\r\nAUTH SCRAM-SHA-256-PLUS %s\r\n",
		    b64(round == 0 ? "p=tls-exporter,,n=u,r=abc" :
		    "p=tls-server-end-point,,n=u,r=abc"));
		assert_string_equal(f.m.out, want);
		pop3c_free(&c);
	}
	/* TLS without binding data: SCRAM-SHA-256, with the "y" flag. */
	{
		struct pop3c *c = tls_client(&f, in, sizeof(in) - 1, 7, true);
		const char *method = NULL;
		char want[512];

		f.exporter = false;
		assert_int_equal(pop3c_set_scram_nonce(c, "abc"), 0);
		assert_int_equal(pop3c_greeting(c), 0);
		assert_int_equal(pop3c_capa(c), 0);
		assert_int_equal(pop3c_login(c, "u", "p", POP3C_AUTH_AUTO,
		    false, &method), -1);
		assert_string_equal(method, "SCRAM-SHA-256");
		(void)snprintf(want, sizeof(want),
		    "CAPA\r\nAUTH SCRAM-SHA-256 %s\r\n",
		    b64("n,,n=u,r=abc"));
		/* -PLUS was offered: "n", so the server sees no downgrade */
		assert_string_equal(f.m.out, want);
		pop3c_free(&c);
		/* Forcing -PLUS without binding fails before sending. */
		c = tls_client(&f, in, sizeof(in) - 1, 7, true);
		f.exporter = false;
		assert_int_equal(pop3c_login(c, "u", "p",
		    POP3C_AUTH_SCRAM_PLUS, false, NULL), -1);
		assert_int_equal(pop3c_error(c), POP3C_ETLS);
		assert_string_equal(f.m.out, "");
		pop3c_free(&c);
	}
}

static void
test_cram_md5_login_rfc2195(void **state)
{
	char in[512], want[512];
	struct mem m;

	(void)state;
	(void)snprintf(in, sizeof(in), GREET
	    "+OK\r\nSASL CRAM-MD5 PLAIN\r\nUSER\r\n.\r\n+ %s\r\n+OK hi\r\n",
	    b64("<1896.697170952@postoffice.reston.mci.net>"));
	(void)snprintf(want, sizeof(want), "CAPA\r\nAUTH CRAM-MD5\r\n%s\r\n",
	    b64("tim b913a602c7eda7a495b4e6e7334d3890"));
	for (size_t k = 0; k < N_ELEM(chunks); k++) {
		struct pop3c *c = mem_client(&m, in, strlen(in), chunks[k]);
		const char *method;

		assert_int_equal(pop3c_greeting(c), 0);
		assert_int_equal(pop3c_capa(c), 0);
		assert_int_equal(pop3c_login(c, "tim", "tanstaaftanstaaf",
		    POP3C_AUTH_AUTO, true, &method), 0);
		assert_string_equal(method, "CRAM-MD5");
		assert_string_equal(m.out, want);
		pop3c_free(&c);
	}
}

static void
test_plain_and_login_exchanges(void **state)
{
	char in[512], want[1024], pass[201];
	struct mem m;
	struct pop3c *c;

	(void)state;
	/* PLAIN with an initial response on the AUTH line. */
	(void)snprintf(in, sizeof(in), GREET "+OK in\r\n");
	c = mem_client(&m, in, strlen(in), 3);
	assert_int_equal(pop3c_greeting(c), 0);
	assert_int_equal(pop3c_login(c, "u", "pw", POP3C_AUTH_PLAIN, true,
	    NULL), 0);
	assert_string_equal(m.out, "AUTH PLAIN AHUAcHc=\r\n");
	pop3c_free(&c);

	/* Too long for a 255-octet AUTH line: sent after "+ " (RFC 5034). */
	memset(pass, 'p', sizeof(pass) - 1);
	pass[sizeof(pass) - 1] = '\0';
	c = mem_client(&m, GREET "+ \r\n+OK in\r\n",
	    strlen(GREET "+ \r\n+OK in\r\n"), 3);
	assert_int_equal(pop3c_greeting(c), 0);
	assert_int_equal(pop3c_login(c, "u", pass, POP3C_AUTH_PLAIN, true,
	    NULL), 0);
	{
		char ir[300], b[512];

		ir[0] = '\0';
		(void)snprintf(ir + 1, sizeof(ir) - 1, "u");
		ir[2] = '\0';
		memcpy(ir + 3, pass, 200);
		assert_int_equal(base64_encode(b, sizeof(b), ir, 203), 0);
		(void)snprintf(want, sizeof(want), "AUTH PLAIN\r\n%s\r\n", b);
	}
	assert_string_equal(m.out, want);
	pop3c_free(&c);

	/* LOGIN: two prompts, "+" alone and "+ " base64. */
	(void)snprintf(in, sizeof(in), GREET "+\r\n+ %s\r\n+OK in\r\n",
	    b64("Password:"));
	c = mem_client(&m, in, strlen(in), 1);
	assert_int_equal(pop3c_greeting(c), 0);
	assert_int_equal(pop3c_login(c, "u", "pw", POP3C_AUTH_LOGIN, true,
	    NULL), 0);
	(void)snprintf(want, sizeof(want), "AUTH LOGIN\r\n%s\r\n%s\r\n",
	    b64("u"), b64("pw"));
	assert_string_equal(m.out, want);
	pop3c_free(&c);
}

/* What a server may send during AUTH LOGIN / CRAM-MD5 / PLAIN. */
static void
test_hostile_continuation_lines(void **state)
{
	static char longline[POP3C_LINE_MAX + 16];
	static const struct {
		enum pop3c_auth		 method;
		const char		*script;
		enum pop3c_error	 err;
	} cases[] = {
		{ POP3C_AUTH_LOGIN, "+ !!!!\r\n", POP3C_EPROTO },
		{ POP3C_AUTH_LOGIN, "+ dXNlcg\r\n", POP3C_EPROTO },
		{ POP3C_AUTH_LOGIN, "+ dXNl cg==\r\n", POP3C_EPROTO },
		{ POP3C_AUTH_LOGIN, "+  dXNlcg==\r\n", POP3C_EPROTO },
		{ POP3C_AUTH_LOGIN, "+x\r\n", POP3C_EPROTO },
		{ POP3C_AUTH_LOGIN, "+OKAY\r\n", POP3C_EPROTO },
		{ POP3C_AUTH_LOGIN, "* \r\n", POP3C_EPROTO },
		{ POP3C_AUTH_LOGIN, "+ \r\n+ \r\n+ \r\n+ \r\n+ \r\n",
		    POP3C_EPROTO },
		/* +OK before the password went out */
		{ POP3C_AUTH_LOGIN, "+ \r\n+OK in\r\n", POP3C_EPROTO },
		{ POP3C_AUTH_LOGIN, "+ ", POP3C_ENET },
		{ POP3C_AUTH_LOGIN, "", POP3C_ENET },
		{ POP3C_AUTH_LOGIN, "-ERR [AUTH] no\r\n", POP3C_EAUTH },
		{ POP3C_AUTH_LOGIN, "-ERR [IN-USE] busy\r\n", POP3C_EINUSE },
		{ POP3C_AUTH_LOGIN, "-ERR [SYS/TEMP] later\r\n", POP3C_ESYS },
		{ POP3C_AUTH_LOGIN, "-ERR no such mechanism\r\n", POP3C_EAUTH },
		{ POP3C_AUTH_CRAM_MD5, "+ \r\n", POP3C_EPROTO },
		{ POP3C_AUTH_CRAM_MD5, "+\r\n", POP3C_EPROTO },
		{ POP3C_AUTH_CRAM_MD5, "+ PDE+\r\n+ PDE+\r\n", POP3C_EPROTO },
		{ POP3C_AUTH_PLAIN, "+ eA==\r\n", POP3C_EPROTO },
		{ POP3C_AUTH_PLAIN, "+ \r\n+ \r\n", POP3C_EPROTO },
		{ POP3C_AUTH_PLAIN, "+ \r\n", POP3C_EPROTO },
		{ POP3C_AUTH_SCRAM, "+ \r\n", POP3C_EPROTO },
		{ POP3C_AUTH_SCRAM, "+ cj1hYmM=\r\n", POP3C_EPROTO },
		{ POP3C_AUTH_LOGIN, longline, POP3C_EPROTO },
	};
	char in[POP3C_LINE_MAX + 64];
	struct mem m;

	(void)state;
	memcpy(longline, "+ ", 2);
	memset(longline + 2, 'A', sizeof(longline) - 5);
	memcpy(longline + sizeof(longline) - 3, "\r\n", 3);
	for (size_t i = 0; i < N_ELEM(cases); i++) {
		for (size_t k = 0; k < N_ELEM(chunks); k++) {
			struct pop3c *c;

			(void)snprintf(in, sizeof(in), GREET "%s",
			    cases[i].script);
			c = mem_client(&m, in, strlen(in), chunks[k]);
			assert_int_equal(pop3c_greeting(c), 0);
			assert_int_equal(pop3c_set_scram_nonce(c, "abc"), 0);
			assert_int_equal(pop3c_login(c, "u", "pw",
			    cases[i].method, true, NULL), -1);
			assert_int_equal(pop3c_error(c), cases[i].err);
			pop3c_free(&c);
		}
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_greeting_keeps_apop_timestamp),
		cmocka_unit_test(test_greeting_without_or_with_bad_timestamp),
		cmocka_unit_test(test_bad_greetings_are_protocol_errors),
		cmocka_unit_test(test_nul_in_status_line_is_refused),
		cmocka_unit_test(test_line_limit_is_exact),
		cmocka_unit_test(test_endless_line_fails_in_bounded_memory),
		cmocka_unit_test(test_capa_sets_capabilities),
		cmocka_unit_test(test_capa_err_means_unknown),
		cmocka_unit_test(test_capa_without_final_dot),
		cmocka_unit_test(test_user_pass_login),
		cmocka_unit_test(test_apop_login_rfc1939_example),
		cmocka_unit_test(test_apop_refused_is_final),
		cmocka_unit_test(test_login_errors_map_to_codes),
		cmocka_unit_test(test_line_break_in_argument_is_refused),
		cmocka_unit_test(test_stat_strict_numbers),
		cmocka_unit_test(test_list_and_uidl),
		cmocka_unit_test(test_empty_list),
		cmocka_unit_test(test_hostile_list_lines),
		cmocka_unit_test(test_hostile_uidl),
		cmocka_unit_test(test_uid_length_bound),
		cmocka_unit_test(test_uidl_unsupported),
		cmocka_unit_test(test_retr_unstuffs_and_strips_crlf),
		cmocka_unit_test(test_retr_long_line_comes_in_pieces),
		cmocka_unit_test(test_retr_cut_short_is_a_dropped_connection),
		cmocka_unit_test(test_retr_bounded_by_max_octets),
		cmocka_unit_test(test_retr_callback_failure_keeps_session),
		cmocka_unit_test(test_retr_err_and_top),
		cmocka_unit_test(test_dele_and_quit_errors),
		cmocka_unit_test(
		    test_pipelined_commands_go_out_together_replies_in_order),
		cmocka_unit_test(test_pipelining_window_and_capability_bound_it),
		cmocka_unit_test(
		    test_drain_reads_the_rest_and_keeps_the_first_error),
		cmocka_unit_test(test_silent_server_times_out),
		cmocka_unit_test(test_drop_mid_retr_over_socket),
		cmocka_unit_test(test_write_to_closed_peer),
		cmocka_unit_test(test_write_waiting_for_input_polls_for_input),
		cmocka_unit_test(test_connect_refused_message),
		cmocka_unit_test(test_stls_then_capa_again),
		cmocka_unit_test(test_stls_failures_never_fall_back),
		cmocka_unit_test(test_auth_choice_table),
		cmocka_unit_test(test_auth_names),
		cmocka_unit_test(test_no_password_on_plaintext_without_leave),
		cmocka_unit_test(test_scram_login_rfc7677),
		cmocka_unit_test(
		    test_scram_server_signature_mismatch_ends_session),
		cmocka_unit_test(
		    test_scram_plus_uses_tls_exporter_then_end_point),
		cmocka_unit_test(test_cram_md5_login_rfc2195),
		cmocka_unit_test(test_plain_and_login_exchanges),
		cmocka_unit_test(test_hostile_continuation_lines),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
