/*
 * The session layer driven over a socketpair with a fake command table:
 * line limits, NUL bytes, bare LF, pipelining, the bad-command count, raw
 * arguments and output throttling, without the rest of the server.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "../../src/lib/str.h"
#include "../../src/server/session.h"
#include "testutil.h"

struct fixture {
	struct ev	*ev;
	struct session	*s;
	int		 peer;
	bool		 closed;
	unsigned int	 big_left;	/* BIG: lines still to send */
	char		 last_arg[POP3_LINE_MAX];
};

static struct fixture *current;

static enum cmd_result
cmd_echo(struct session *s, const struct pop3_args *a)
{
	session_reply(s, "+OK %u %s", a->argc, a->argc ? a->argv[0] : "-");
	return CMD_OK;
}

static enum cmd_result
cmd_fail(struct session *s, const struct pop3_args *a)
{
	(void)a;
	session_reply(s, "-ERR no");
	return CMD_BAD;
}

static enum cmd_result
cmd_pass(struct session *s, const struct pop3_args *a)
{
	str_copy(current->last_arg, sizeof(current->last_arg),
	    a->argc ? a->argv[0] : "");
	session_reply(s, "+OK");
	return CMD_OK;
}

static enum cmd_result
cmd_big(struct session *s, const struct pop3_args *a)
{
	(void)a;
	session_reply(s, "+OK big");
	current->big_left = 20000;
	s->more = true;
	return CMD_OK;
}

static enum cmd_result
cmd_quit(struct session *s, const struct pop3_args *a)
{
	(void)a;
	session_reply(s, "+OK bye");
	return CMD_CLOSE;
}

static const struct session_cmd cmds[] = {
	{ "ECHO", 0, 2, false, 0, cmd_echo },
	{ "FAIL", 0, 0, false, 0, cmd_fail },
	{ "PASS", 0, 1, true, 1, cmd_pass },
	{ "BIG", 0, 0, false, 0, cmd_big },
	{ "QUIT", 0, 0, false, 0, cmd_quit },
	{ NULL, 0, 0, false, 0, NULL },
};

static void
more(struct session *s)
{
	while (current->big_left > 0 && session_out_room(s) > 100) {
		session_reply(s, "line %u of a long reply", current->big_left);
		current->big_left--;
	}
	if (current->big_left == 0) {
		session_reply(s, ".");
		s->more = false;
	}
}

static void
closed(struct session *s)
{
	current->closed = true;
	free(s);
}

static const struct session_ops ops = {
	.commands = cmds, .more = more, .closed = closed,
};

/* The session on sv[0], the test's end on sv[1]. */
static int
setup_pair(void **state, int sv[2])
{
	struct fixture *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	f->ev = ev_new();
	f->s = calloc(1, sizeof(*f->s));
	f->s->max_bad = 5;
	f->s->idle_ms = 10000;
	assert_int_equal(session_start(f->s, f->ev, sv[0], &ops, f, NULL, 0), 0);
	f->peer = sv[1];
	current = f;
	*state = f;
	return 0;
}

static int
setup(void **state)
{
	int sv[2];

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	return setup_pair(state, sv);
}

/* Each write of the session arrives as one record: writes can be counted. */
static int
setup_seqpacket(void **state)
{
	int sv[2];

	assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv), 0);
	return setup_pair(state, sv);
}

/* A connected loopback TCP pair. */
static int
setup_tcp(void **state)
{
	struct sockaddr_in sin = { .sin_family = AF_INET };
	socklen_t len = sizeof(sin);
	int lfd, sv[2];

	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	lfd = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(lfd >= 0);
	assert_int_equal(bind(lfd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(listen(lfd, 1), 0);
	assert_int_equal(getsockname(lfd, (struct sockaddr *)&sin, &len), 0);
	sv[1] = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(sv[1] >= 0);
	assert_int_equal(connect(sv[1], (struct sockaddr *)&sin, sizeof(sin)),
	    0);
	sv[0] = accept(lfd, NULL, NULL);
	assert_true(sv[0] >= 0);
	close(lfd);
	return setup_pair(state, sv);
}

static int
teardown(void **state)
{
	struct fixture *f = *state;

	if (!f->closed)
		session_close(f->s);
	close(f->peer);
	ev_free(&f->ev);
	free(f);
	return 0;
}

/* Send, then turn the loop until the peer has had nothing new for a while. */
static size_t
exchange(struct fixture *f, const void *buf, size_t len, char *out,
    size_t outsize)
{
	return tu_exchange(&(struct tu_loop){ .ev = f->ev,
	    .stopped = &f->closed, .peer = f->peer }, buf, len, out, outsize,
	    10);
}

#define SEND(f, lit, out) exchange((f), (lit), sizeof(lit) - 1, (out), sizeof(out))

static void
test_pipelined_commands_answer_in_order(void **state)
{
	struct fixture *f = *state;
	char out[512];

	SEND(f, "ECHO a\r\nECHO b c\r\nECHO\r\n", out);
	assert_string_equal(out, "+OK 1 a\r\n+OK 2 b\r\n+OK 0 -\r\n");
}

static void
test_bare_lf_and_byte_at_a_time(void **state)
{
	struct fixture *f = *state;
	const char *cmd = "echo x\n";
	char out[64];

	for (const char *p = cmd; *p; p++)
		exchange(f, p, 1, out, sizeof(out));
	assert_string_equal(out, "+OK 1 x\r\n");
}

static void
test_unknown_and_arity_errors_keep_session(void **state)
{
	struct fixture *f = *state;
	char out[512];

	SEND(f, "NOPE\r\nECHO 1 2 3\r\n\r\nECHO ok\r\n", out);
	assert_string_equal(out, "-ERR Unknown command.\r\n"
	    "-ERR Wrong number of arguments for ECHO.\r\n"
	    "-ERR Empty command.\r\n+OK 1 ok\r\n");
	assert_false(f->closed);
}

static void
test_nul_byte_is_an_invalid_command(void **state)
{
	struct fixture *f = *state;
	char out[256];

	exchange(f, "ECHO a\0b\r\nECHO c\r\n", 18, out, sizeof(out));
	assert_string_equal(out, "-ERR Invalid command.\r\n+OK 1 c\r\n");
}

static void
test_consecutive_bad_commands_close(void **state)
{
	struct fixture *f = *state;
	char out[1024];

	/* 4 bad, a good one resets, then 5 bad closes (max_bad = 5). */
	SEND(f, "FAIL\r\nFAIL\r\nFAIL\r\nFAIL\r\nECHO\r\n", out);
	assert_false(f->closed);
	SEND(f, "FAIL\r\nFAIL\r\nFAIL\r\nFAIL\r\nFAIL\r\nECHO\r\n", out);
	assert_non_null(strstr(out, "-ERR Too many bad commands.\r\n"));
	assert_null(strstr(out, "+OK"));
	assert_true(f->closed);
}

static void
test_overlong_line_is_refused_and_closed(void **state)
{
	struct fixture *f = *state;
	char line[700], out[256];

	memset(line, 'a', sizeof(line));
	memcpy(line, "ECHO ", 5);
	line[sizeof(line) - 2] = '\r';
	line[sizeof(line) - 1] = '\n';
	exchange(f, line, sizeof(line), out, sizeof(out));
	assert_string_equal(out, "-ERR Line too long.\r\n");
	assert_true(f->closed);
}

static void
test_line_of_exactly_512_octets_is_accepted(void **state)
{
	struct fixture *f = *state;
	char line[512], out[1024];

	/* "PASS " + 505 octets + CRLF = 512: the limit, CRLF included. */
	memset(line, 'p', sizeof(line));
	memcpy(line, "PASS ", 5);
	line[510] = '\r';
	line[511] = '\n';
	exchange(f, line, sizeof(line), out, sizeof(out));
	assert_string_equal(out, "+OK\r\n");
	assert_int_equal(strlen(f->last_arg), 505);
}

static void
test_raw_argument_keeps_spaces(void **state)
{
	struct fixture *f = *state;
	char out[64];

	SEND(f, "pass  two  spaces \r\n", out);
	assert_string_equal(out, "+OK\r\n");
	assert_string_equal(f->last_arg, " two  spaces ");
}

static void
test_long_reply_streams_and_commands_wait(void **state)
{
	struct fixture *f = *state;
	static char out[1024 * 1024];
	size_t n;

	n = SEND(f, "BIG\r\nECHO after\r\n", out);
	assert_true(n > 100000);
	assert_memory_equal(out, "+OK big\r\n", 9);
	/* The pipelined command is answered only after the whole reply. */
	assert_non_null(strstr(out, "line 1 of a long reply\r\n.\r\n+OK 1 after\r\n"));
}

static void
test_quit_closes_after_reply(void **state)
{
	struct fixture *f = *state;
	char out[64];

	SEND(f, "QUIT\r\nECHO never\r\n", out);
	assert_string_equal(out, "+OK bye\r\n");
	assert_true(f->closed);
}

/*
 * The status line and the first block of a multi-line reply leave in one
 * write: sent alone, the status line made the body wait for the client's
 * delayed ACK (40 ms per RETR or LIST, issue 11).
 */
static void
test_multiline_status_and_first_block_share_one_write(void **state)
{
	struct fixture *f = *state;
	static char rec[128 * 1024];
	const char *want = "+OK 1 a\r\n+OK big\r\nline 20000 of a long reply\r\n";
	struct pollfd pfd = { .fd = f->peer, .events = POLLIN };
	ssize_t n;

	assert_int_equal(write(f->peer, "ECHO a\r\nBIG\r\n", 13), 13);
	for (int i = 0; i < 100 && poll(&pfd, 1, 0) == 0; i++)
		ev_run_once(f->ev, 5);
	n = recv(f->peer, rec, sizeof(rec) - 1, 0);
	assert_true(n > 0);
	rec[n] = '\0';
	assert_true(n > 4096);
	assert_memory_equal(rec, want, strlen(want));
}

/* Output produced in place goes out after what was queued before it. */
static void
test_out_tail_appends_after_pending_output(void **state)
{
	struct fixture *f = *state;
	char out[64];
	size_t room;
	char *tail;

	session_reply(f->s, "+OK first");
	tail = session_out_tail(f->s, &room);
	assert_non_null(tail);
	assert_int_equal(room, SESSION_OUT_MAX - 11);
	assert_int_equal(room, session_out_room(f->s));
	memcpy(tail, "in place\r\n", 10);
	session_out_commit(f->s, 10);
	assert_int_equal(session_out_room(f->s), SESSION_OUT_MAX - 21);
	session_resume(f->s);
	exchange(f, NULL, 0, out, sizeof(out));
	assert_string_equal(out, "+OK first\r\nin place\r\n");
}

/*
 * A long RETR's buffer holds SESSION_OUT_BODY until it is drained, then
 * the usual SESSION_OUT_MAX again (an idle session holds no storage).
 */
static void
test_widened_output_narrows_once_drained(void **state)
{
	struct fixture *f = *state;
	char out[64];

	session_reply(f->s, "+OK first");
	assert_true(session_out_widen(f->s));
	assert_int_equal(session_out_room(f->s), SESSION_OUT_BODY - 11);
	/* Asking again changes nothing. */
	assert_true(session_out_widen(f->s));
	assert_int_equal(session_out_room(f->s), SESSION_OUT_BODY - 11);
	session_resume(f->s);
	exchange(f, NULL, 0, out, sizeof(out));
	assert_string_equal(out, "+OK first\r\n");
	assert_int_equal(session_out_room(f->s), SESSION_OUT_MAX);
}

static void
free_session(struct session *s)
{
	free(s);
}

static const struct session_ops plain_ops = {
	.commands = cmds, .more = more, .closed = free_session,
};

/*
 * At most SESSION_OUT_WIDE sessions of a process hold the wide buffer; one
 * that ends gives its place to the next.
 */
static void
test_wide_output_is_bounded_per_process(void **state)
{
	struct fixture *f = *state;
	struct session *s[SESSION_OUT_WIDE];
	int peers[SESSION_OUT_WIDE];

	for (size_t i = 0; i < SESSION_OUT_WIDE; i++) {
		int sv[2];

		assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
		s[i] = calloc(1, sizeof(*s[i]));
		assert_non_null(s[i]);
		s[i]->idle_ms = 10000;
		assert_int_equal(session_start(s[i], f->ev, sv[0], &plain_ops,
		    NULL, NULL, 0), 0);
		peers[i] = sv[1];
		session_reply(s[i], "+OK");
		assert_true(session_out_widen(s[i]));
	}
	session_reply(f->s, "+OK");
	assert_false(session_out_widen(f->s));
	assert_int_equal(session_out_room(f->s), SESSION_OUT_MAX - 5);
	session_close(s[0]);
	assert_true(session_out_widen(f->s));
	assert_int_equal(session_out_room(f->s), SESSION_OUT_BODY - 5);
	for (size_t i = 0; i < SESSION_OUT_WIDE; i++) {
		if (i > 0)
			session_close(s[i]);
		close(peers[i]);
	}
}

/*
 * The idle timeout's goodbye cannot be sent (the client shut its reading
 * side): the failed write closes the session, and the timeout must not
 * touch it afterwards (it did, freed, under ASan: a heap-use-after-free
 * seen once in the black-box suite).
 */
static void
test_timeout_whose_goodbye_fails_closes_once(void **state)
{
	struct fixture *f = *state;
	char buf[64];

	/* A command re-arms the idle timer with the short period. */
	f->s->idle_ms = 50;
	assert_int_equal(write(f->peer, "ECHO\r\n", 6), 6);
	for (int i = 0; i < 100 &&
	    recv(f->peer, buf, sizeof(buf), MSG_DONTWAIT) <= 0; i++)
		ev_run_once(f->ev, 10);
	assert_int_equal(shutdown(f->peer, SHUT_RD), 0);
	for (int i = 0; i < 300 && !f->closed; i++)
		ev_run_once(f->ev, 10);
	assert_true(f->closed);
}

/*
 * Output the kernel still holds keeps a session alive only while the
 * client takes it: a client that stops reading mid-reply is disconnected
 * after at most two idle periods.
 */
static void
test_stalled_reader_is_disconnected(void **state)
{
	struct fixture *f = *state;
	struct timespec t0, t1;

	f->s->idle_ms = 100;
	assert_int_equal(write(f->peer, "BIG\r\n", 5), 5);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (int i = 0; i < 300 && !f->closed; i++)
		ev_run_once(f->ev, 10);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	assert_true(f->closed);
	assert_true(t1.tv_sec - t0.tv_sec < 3);
}

/* Nagle off, as every reply is coalesced into one write. */
static void
test_tcp_session_turns_nagle_off(void **state)
{
	struct fixture *f = *state;
	int on = 0;
	socklen_t len = sizeof(on);

	assert_int_equal(getsockopt(f->s->fd, IPPROTO_TCP, TCP_NODELAY, &on,
	    &len), 0);
	assert_int_equal(on, 1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_pipelined_commands_answer_in_order, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bare_lf_and_byte_at_a_time, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unknown_and_arity_errors_keep_session, setup, teardown),
		cmocka_unit_test_setup_teardown(test_nul_byte_is_an_invalid_command, setup, teardown),
		cmocka_unit_test_setup_teardown(test_consecutive_bad_commands_close, setup, teardown),
		cmocka_unit_test_setup_teardown(test_overlong_line_is_refused_and_closed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_line_of_exactly_512_octets_is_accepted, setup, teardown),
		cmocka_unit_test_setup_teardown(test_raw_argument_keeps_spaces, setup, teardown),
		cmocka_unit_test_setup_teardown(test_long_reply_streams_and_commands_wait, setup, teardown),
		cmocka_unit_test_setup_teardown(test_quit_closes_after_reply, setup, teardown),
		cmocka_unit_test_setup_teardown(test_multiline_status_and_first_block_share_one_write, setup_seqpacket, teardown),
		cmocka_unit_test_setup_teardown(test_tcp_session_turns_nagle_off, setup_tcp, teardown),
		cmocka_unit_test_setup_teardown(test_out_tail_appends_after_pending_output, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_widened_output_narrows_once_drained, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_wide_output_is_bounded_per_process, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_timeout_whose_goodbye_fails_closes_once, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stalled_reader_is_disconnected, setup_tcp, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
