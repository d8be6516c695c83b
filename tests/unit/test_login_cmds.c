/*
 * The login role's AUTHORIZATION commands (login_cmds.c) on a socketpair,
 * with the role's side of login.h faked here: the auth worker is the other
 * end of a SEQPACKET pair the test reads, a hand-off is recorded. What a
 * client sees for USER/PASS/CAPA, what the auth role is asked, and how a
 * verdict, late or not, comes back.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../../src/lib/ipc.h"
#include "../../src/lib/str.h"
#include "../../src/server/login.h"
#include "testutil.h"

struct fixture {
	struct ev		*ev;
	struct config		 cf;
	struct login_conn	*c;
	int			 peer;		/* the client's end */
	int			 auth_peer;	/* the auth worker's end */
	struct ipc		*auth;		/* NULL: auth unavailable */
	bool			 closed;
	bool			 handed_off;
	char			 handed_user[AUTH_USER_MAX + 1];
	unsigned int		 released;
};

static struct fixture *current;

/* --- the role's side (login.c) ------------------------------------------ */

struct tls_ctx *
login_tls_ctx(void)
{
	return NULL;
}

struct ipc *
login_auth_for(struct login_conn *c)
{
	c->auth_idx = 0;
	return current->auth;
}

void
login_handoff(struct login_conn *c, const struct msg_verdict *v)
{
	(void)v;
	current->handed_off = true;
	str_copy(current->handed_user, sizeof(current->handed_user), c->user);
	session_close(&c->s);
}

void
login_ticket_release(const char *ticket)
{
	(void)ticket;
	current->released++;
}

/* --- the fixture ------------------------------------------------------- */

static void
closed(struct session *s)
{
	struct login_conn *c = s->owner;

	login_cancel(c);
	ev_timer_stop(s->ev, &c->delay);
	current->closed = true;
	free(c);
}

static const struct session_ops ops = {
	.commands = login_commands,
	.closed = closed,
	.intercept = login_sasl_line,
};

static void
nothing(struct ev *e, void *arg)
{
	(void)e;
	(void)arg;
}

static void
auth_answer(struct ipc *ipc, struct ipc_msg *msg, void *arg)
{
	(void)ipc;
	(void)msg;
	(void)arg;
}

static int
start(void **state, const char *ip)
{
	struct fixture *f = calloc(1, sizeof(*f));
	char path[] = "/tmp/postino-test-login-XXXXXX", err[ERR_LEN];
	int fd = mkstemp(path), sv[2], av[2];

	assert_non_null(f);
	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(config_load(&f->cf, path, err), 0);
	unlink(path);
	f->cf.auth_allow_cleartext = true;
	f->ev = ev_new();
	assert_non_null(f->ev);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	assert_int_equal(ipc_pair(av), 0);
	f->auth = ipc_new(f->ev, av[0], auth_answer, NULL);
	assert_non_null(f->auth);
	f->auth_peer = av[1];
	f->peer = sv[1];
	current = f;
	login_cmds_init(&f->cf);
	f->c = calloc(1, sizeof(*f->c));
	assert_non_null(f->c);
	ev_timer_init(&f->c->deadline, nothing, NULL);
	ev_timer_init(&f->c->delay, login_fail_delayed, f->c);
	session_setup(&f->c->s, &(struct session_params){ .ip = ip,
	    .idle_ms = 10000, .max_bad = 5 });
	assert_int_equal(session_start(&f->c->s, f->ev, sv[0], &ops, f->c,
	    NULL, 0), 0);
	*state = f;
	return 0;
}

static int
setup(void **state)
{
	return start(state, "127.0.0.1");
}

static int
setup_remote(void **state)
{
	return start(state, "192.0.2.7");
}

static int
teardown(void **state)
{
	struct fixture *f = *state;

	if (!f->closed)
		session_close(&f->c->s);
	ipc_free(&f->auth);
	close(f->auth_peer);
	close(f->peer);
	login_cmds_end();
	ev_free(&f->ev);
	free(f);
	return 0;
}

/* Send line (may be ""), turn the loop, return what the client got. */
static const char *
say(struct fixture *f, const char *line)
{
	static char out[4096];

	tu_exchange(&(struct tu_loop){ .ev = f->ev, .stopped = &f->closed,
	    .peer = f->peer }, line, strlen(line), out, sizeof(out), 10);
	return out;
}

/* What the auth worker was asked: one MSG_AUTH_VERIFY. */
static void
asked(struct fixture *f, struct msg_verify *v)
{
	struct ipc_msg *msg = calloc(1, sizeof(*msg));

	assert_non_null(msg);
	assert_int_equal(ipc_recv_sync(f->auth_peer, msg), 1);
	assert_int_equal(msg->type, MSG_AUTH_VERIFY);
	assert_int_equal(msg->len, sizeof(*v));
	memcpy(v, msg->data, sizeof(*v));
	free(msg);
}

static void
answer(uint64_t req, enum auth_result result)
{
	struct ipc_msg *msg = calloc(1, sizeof(*msg));
	struct msg_verdict v = { .req = req, .result = result };

	assert_non_null(msg);
	str_copy(v.ticket, sizeof(v.ticket), "00" "0123456789abcdef0123456789ab");
	memcpy(msg->data, &v, sizeof(v));
	msg->len = sizeof(v);
	msg->fd = -1;
	msg->type = MSG_AUTH_VERDICT;
	login_on_verdict(msg);
	free(msg);
}

static bool
starts(const char *s, const char *prefix)
{
	return strncmp(s, prefix, strlen(prefix)) == 0;
}

/* --- the tests --------------------------------------------------------- */

static void
test_capa_offers_user_without_tls(void **state)
{
	struct fixture *f = *state;
	const char *r = say(f, "CAPA\r\n");

	assert_non_null(strstr(r, "+OK"));
	assert_non_null(strstr(r, "\r\nUSER\r\n"));
	assert_null(strstr(r, "STLS"));
	assert_non_null(strstr(r, "\r\n.\r\n"));
}

static void
test_pass_without_user_is_a_bad_command(void **state)
{
	struct fixture *f = *state;

	assert_true(starts(say(f, "PASS secret\r\n"), "-ERR"));
	assert_true(starts(say(f, "NOOP\r\n"), "-ERR Unknown command."));
}

static void
test_failed_verdict_answers_after_the_delay(void **state)
{
	struct fixture *f = *state;
	struct msg_verify v;

	assert_string_equal(say(f, "USER alice\r\n"), "+OK\r\n");
	/* Suspended: nothing until the verdict, not even for CAPA. */
	assert_string_equal(say(f, "PASS two words\r\nCAPA\r\n"), "");
	asked(f, &v);
	assert_string_equal(v.user, "alice");
	assert_string_equal(v.pass, "two words");
	assert_true(v.req != 0);
	answer(v.req, AUTH_PERMFAIL);
	/* The failure, then CAPA's answer: input waited, it was not lost. */
	assert_true(starts(say(f, ""), "-ERR [AUTH] Authentication failed."
	    "\r\n+OK"));
	explicit_bzero(&v, sizeof(v));
}

static void
test_good_verdict_hands_off(void **state)
{
	struct fixture *f = *state;
	struct msg_verify v;

	say(f, "USER alice\r\nPASS right\r\n");
	asked(f, &v);
	answer(v.req, AUTH_OK);
	assert_true(f->handed_off);
	assert_string_equal(f->handed_user, "alice");
	assert_int_equal(f->released, 0);
}

static void
test_verdict_nobody_waits_for_frees_its_ticket(void **state)
{
	struct fixture *f = *state;
	struct msg_verify v;

	say(f, "USER alice\r\nPASS right\r\n");
	asked(f, &v);
	/* Another id: found by nobody, its ticket goes back. */
	answer(v.req + 1, AUTH_OK);
	assert_false(f->handed_off);
	assert_int_equal(f->released, 1);
	/* The client leaves: a verdict arriving afterwards finds nobody. */
	session_close(&f->c->s);
	assert_true(f->closed);
	answer(v.req, AUTH_OK);
	assert_false(f->handed_off);
	assert_int_equal(f->released, 2);
}

static void
test_no_auth_worker_is_a_temporary_failure(void **state)
{
	struct fixture *f = *state;

	ipc_free(&f->auth);
	say(f, "USER alice\r\n");
	assert_string_equal(say(f, "PASS pw\r\n"), "-ERR [SYS/TEMP] "
	    "Authentication is unavailable, try later.\r\n");
}

static void
test_cleartext_refused_from_afar(void **state)
{
	struct fixture *f = *state;
	const char *r;

	f->cf.auth_allow_cleartext = false;
	f->cf.auth_cleartext_loopback = true;
	r = say(f, "USER alice\r\n");
	assert_true(starts(r, "-ERR [AUTH] Plaintext authentication "
	    "disallowed"));
	assert_null(strstr(say(f, "CAPA\r\n"), "\r\nUSER\r\n"));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(
		    test_capa_offers_user_without_tls, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_pass_without_user_is_a_bad_command, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_failed_verdict_answers_after_the_delay, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_good_verdict_hands_off, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_verdict_nobody_waits_for_frees_its_ticket, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(
		    test_no_auth_worker_is_a_temporary_failure, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_cleartext_refused_from_afar, setup_remote, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
