/*
 * The mail role's TRANSACTION commands (mailbox_cmds.c) on a socketpair,
 * against a real Maildir in a temp dir, with the role's side of mailbox.h
 * faked here: no lock is ever retried, no store ever waits. What a client
 * sees for STAT LIST UIDL RETR TOP DELE RSET, and what is left in the
 * Maildir after QUIT and after a dropped connection.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../../src/lib/str.h"
#include "../../src/server/mailbox.h"
#include "testutil.h"

struct fixture {
	struct ev		*ev;
	struct config		 cf;
	struct mail_conn	*c;
	int			 peer;		/* the client's end */
	bool			 closed;
	char			 dir[128];
	char			 md[192];
};

/* --- the role's side (mailbox.c) ---------------------------------------- */

bool
mailbox_lock_retry_later(struct mail_conn *c)
{
	(void)c;
	return false;
}

void
mailbox_store_ready(void *arg)
{
	(void)arg;
	fail_msg("a Maildir never waits");
}

/* --- the fixture ------------------------------------------------------- */

/* Three messages, stored with LF line ends as a Maildir keeps them. */
static const char *const msgs[] = {
	"Subject: one\n\nhello\n",
	"Subject: two\n\n.dot line\nsecond\n.\nlast\n",
	"Subject: three\n\nbody\n",
};
#define NMSGS	(sizeof(msgs) / sizeof(msgs[0]))

/*
 * With setup_big: after the three, a message of BIG_LINES lines ".x" (each
 * stuffed on the wire) and BIG_EXTRA small ones, so that RETR and LIST
 * outgrow the session's output buffer and the socket's and are produced
 * in parts as the client reads.
 */
#define BIG_LINES	60000
#define BIG_EXTRA	1500
static bool big;

static void
put(const char *path, const char *data, size_t len)
{
	FILE *fp = fopen(path, "w");

	assert_non_null(fp);
	assert_int_equal(fwrite(data, 1, len, fp), len);
	assert_int_equal(fclose(fp), 0);
}

static void
make_big(struct fixture *f)
{
	size_t hlen = strlen("Subject: big\n\n"), len = hlen + 3 * BIG_LINES;
	char *body = malloc(len), p[256];

	assert_non_null(body);
	memcpy(body, "Subject: big\n\n", hlen);
	for (size_t i = 0; i < BIG_LINES; i++)
		memcpy(body + hlen + 3 * i, ".x\n", 3);
	assert_true(str_fmt(p, sizeof(p), "%s/cur/1000000004.M1P1.test:2,",
	    f->md) >= 0);
	put(p, body, len);
	free(body);
	for (unsigned int i = 0; i < BIG_EXTRA; i++) {
		assert_true(str_fmt(p, sizeof(p), "%s/cur/2000%06u.M1P1.test:2,",
		    f->md, i) >= 0);
		put(p, "Subject: small\n\nx\n", 18);	/* 21 on the wire */
	}
}

static void
make_maildir(struct fixture *f)
{
	static const char *const subs[] = { "", "/new", "/cur", "/tmp" };
	char p[256];

	for (size_t i = 0; i < sizeof(subs) / sizeof(subs[0]); i++) {
		assert_true(str_fmt(p, sizeof(p), "%s%s", f->md, subs[i]) >= 0);
		assert_int_equal(mkdir(p, 0700), 0);
	}
	for (size_t i = 0; i < NMSGS; i++) {
		assert_true(str_fmt(p, sizeof(p), "%s/cur/100000000%zu.M1P1.test:2,",
		    f->md, i + 1) >= 0);
		put(p, msgs[i], strlen(msgs[i]));
	}
	if (big)
		make_big(f);
}

/* The session that closed (and freed its mail_conn); NULL: still open. */
static struct session *closed_session;
static bool session_closed;

/* What the role's conn_closed does for the store: no UPDATE. */
static void
closed(struct session *s)
{
	struct mail_conn *c = s->owner;

	closed_session = s;
	session_closed = true;
	mailbox_release(c);
	free(c);
}

static const struct session_ops ops = {
	.commands = mailbox_commands,
	.more = mailbox_more,
	.closed = closed,
};

static int
setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	struct store_params p = { 0 };
	char path[] = "/tmp/postino-test-mbcmds-XXXXXX", err[ERR_LEN];
	int fd = mkstemp(path), sv[2];

	assert_non_null(f);
	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(config_load(&f->cf, path, err), 0);
	unlink(path);
	assert_int_equal(tu_tmpdir_make(f->dir, sizeof(f->dir), "mbcmds"), 0);
	assert_true(str_fmt(f->md, sizeof(f->md), "%s/Maildir", f->dir) >= 0);
	make_maildir(f);
	f->ev = ev_new();
	assert_non_null(f->ev);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	f->peer = sv[1];
	mailbox_cmds_init(&f->cf);
	f->c = calloc(1, sizeof(*f->c));
	assert_non_null(f->c);
	str_copy(f->c->user, sizeof(f->c->user), "alice");
	f->c->sops = &store_maildir_ops;
	p.path = f->md;
	p.max_messages = 10000;
	p.max_bytes = 1 << 20;
	assert_int_equal(f->c->sops->open(&f->c->st, &p, &f->c->idx, err),
	    STORE_OK);
	closed_session = NULL;
	session_closed = false;
	session_setup(&f->c->s, &(struct session_params){ .ip = "127.0.0.1",
	    .idle_ms = 10000, .max_bad = 50 });
	assert_int_equal(session_start(&f->c->s, f->ev, sv[0], &ops,
	    f->c, NULL, 0), 0);
	*state = f;
	return 0;
}

static int
setup_big(void **state)
{
	int r;

	big = true;
	r = setup(state);
	big = false;
	return r;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;

	if (closed_session == NULL)
		session_close(&f->c->s);
	if (f->peer >= 0)
		close(f->peer);
	ev_free(&f->ev);
	assert_int_equal(tu_tmpdir_remove(f->dir), 0);
	free(f);
	return 0;
}

/* Send line (may be ""), turn the loop, return what the client got. */
static const char *
say(struct fixture *f, const char *line)
{
	static char out[8192];

	tu_exchange(&(struct tu_loop){ .ev = f->ev, .stopped = &session_closed,
	    .peer = f->peer }, line, strlen(line), out, sizeof(out), 10);
	return out;
}

/*
 * Send line, turn the loop until the client has read a reply of len
 * octets (or nothing came for a generous while); the reply, malloc'd.
 */
static char *
drain(struct fixture *f, const char *line, size_t len)
{
	char *out = malloc(len + 1);

	assert_non_null(out);
	assert_int_equal(tu_exchange(&(struct tu_loop){ .ev = f->ev,
	    .peer = f->peer }, line, strlen(line), out, len + 1, 400), len);
	return out;
}

static bool
starts(const char *s, const char *prefix)
{
	return strncmp(s, prefix, strlen(prefix)) == 0;
}

/* Octets of message i as POP3 counts them: each LF becomes CRLF. */
static size_t
crlf_size(size_t i)
{
	size_t n = strlen(msgs[i]);

	for (const char *p = msgs[i]; *p != '\0'; p++)
		n += *p == '\n';
	return n;
}

/* The messages left in the Maildir's cur/ and new/. */
static unsigned int
stored(const struct fixture *f)
{
	static const char *const subs[] = { "cur", "new" };
	unsigned int n = 0;
	char p[256];

	for (size_t i = 0; i < 2; i++) {
		DIR *d;
		struct dirent *de;

		assert_true(str_fmt(p, sizeof(p), "%s/%s", f->md, subs[i]) >= 0);
		assert_non_null(d = opendir(p));
		while ((de = readdir(d)) != NULL)
			n += de->d_name[0] != '.';
		closedir(d);
	}
	return n;
}

/* --- the tests --------------------------------------------------------- */

static void
test_stat_list_uidl(void **state)
{
	struct fixture *f = *state;
	size_t total = crlf_size(0) + crlf_size(1) + crlf_size(2);
	char want[256];

	str_fmt(want, sizeof(want), "+OK 3 %zu\r\n", total);
	assert_string_equal(say(f, "STAT\r\n"), want);
	str_fmt(want, sizeof(want), "+OK Scan listing follows.\r\n1 %zu\r\n"
	    "2 %zu\r\n3 %zu\r\n.\r\n", crlf_size(0), crlf_size(1), crlf_size(2));
	assert_string_equal(say(f, "LIST\r\n"), want);
	str_fmt(want, sizeof(want), "+OK 2 %zu\r\n", crlf_size(1));
	assert_string_equal(say(f, "LIST 2\r\n"), want);
	assert_string_equal(say(f, "UIDL\r\n"), "+OK Unique-ID listing "
	    "follows.\r\n1 1000000001.M1P1.test\r\n2 1000000002.M1P1.test\r\n"
	    "3 1000000003.M1P1.test\r\n.\r\n");
	assert_string_equal(say(f, "UIDL 3\r\n"), "+OK 3 1000000003.M1P1.test\r\n");
	assert_string_equal(say(f, "NOOP\r\n"), "+OK\r\n");
}

static void
test_retr_crlf_and_byte_stuffing(void **state)
{
	struct fixture *f = *state;
	char want[256];

	str_fmt(want, sizeof(want), "+OK %zu octets\r\nSubject: two\r\n\r\n"
	    "..dot line\r\nsecond\r\n..\r\nlast\r\n.\r\n", crlf_size(1));
	assert_string_equal(say(f, "RETR 2\r\n"), want);
	str_fmt(want, sizeof(want), "+OK %zu octets\r\nSubject: one\r\n\r\n"
	    "hello\r\n.\r\n", crlf_size(0));
	assert_string_equal(say(f, "RETR 1\r\n"), want);
}

static void
test_top(void **state)
{
	struct fixture *f = *state;

	assert_string_equal(say(f, "TOP 2 0\r\n"), "+OK Top of message "
	    "follows.\r\nSubject: two\r\n\r\n.\r\n");
	assert_string_equal(say(f, "TOP 2 1\r\n"), "+OK Top of message "
	    "follows.\r\nSubject: two\r\n\r\n..dot line\r\n.\r\n");
	assert_string_equal(say(f, "TOP 1 99\r\n"), "+OK Top of message "
	    "follows.\r\nSubject: one\r\n\r\nhello\r\n.\r\n");
	assert_true(starts(say(f, "TOP 1 x\r\n"), "-ERR"));
	assert_true(starts(say(f, "TOP 1 -1\r\n"), "-ERR"));
}

static void
test_dele_hides_rset_restores(void **state)
{
	struct fixture *f = *state;
	char want[256];

	assert_string_equal(say(f, "DELE 2\r\n"), "+OK Message 2 deleted.\r\n");
	assert_true(starts(say(f, "DELE 2\r\n"), "-ERR Message 2 is deleted."));
	assert_true(starts(say(f, "RETR 2\r\n"), "-ERR"));
	assert_true(starts(say(f, "LIST 2\r\n"), "-ERR"));
	str_fmt(want, sizeof(want), "+OK 2 %zu\r\n", crlf_size(0) + crlf_size(2));
	assert_string_equal(say(f, "STAT\r\n"), want);
	str_fmt(want, sizeof(want), "+OK Scan listing follows.\r\n1 %zu\r\n"
	    "3 %zu\r\n.\r\n", crlf_size(0), crlf_size(2));
	assert_string_equal(say(f, "LIST\r\n"), want);
	assert_true(starts(say(f, "RSET\r\n"), "+OK 3 messages"));
	str_fmt(want, sizeof(want), "+OK 3 %zu\r\n",
	    crlf_size(0) + crlf_size(1) + crlf_size(2));
	assert_string_equal(say(f, "STAT\r\n"), want);
}

static void
test_bad_message_numbers(void **state)
{
	struct fixture *f = *state;
	static const char *const bad[] = {
		"RETR 0\r\n", "RETR 4\r\n", "RETR 4294967297\r\n", "RETR x\r\n",
		"RETR 1x\r\n", "RETR -1\r\n", "DELE 0\r\n", "DELE 99\r\n",
		"LIST 0\r\n", "UIDL 4\r\n", "TOP 0 1\r\n", "TOP 9 1\r\n",
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_true(starts(say(f, bad[i]), "-ERR"));
	/* Nothing was marked: all three are still there. */
	assert_true(starts(say(f, "STAT\r\n"), "+OK 3 "));
}

static void
test_quit_runs_update(void **state)
{
	struct fixture *f = *state;

	assert_string_equal(say(f, "DELE 1\r\nDELE 3\r\n"),
	    "+OK Message 1 deleted.\r\n+OK Message 3 deleted.\r\n");
	assert_string_equal(say(f, "QUIT\r\n"), "+OK Bye, 2 deleted, 1 left.\r\n");
	assert_non_null(closed_session);
	assert_int_equal(stored(f), 1);
}

static void
test_dropped_connection_deletes_nothing(void **state)
{
	struct fixture *f = *state;

	assert_string_equal(say(f, "DELE 1\r\n"), "+OK Message 1 deleted.\r\n");
	close(f->peer);
	f->peer = -1;
	for (int i = 0; i < 200 && closed_session == NULL; i++)
		ev_run_once(f->ev, 10);
	assert_non_null(closed_session);
	assert_int_equal(stored(f), NMSGS);
}

static void
test_big_retr_and_list_in_parts(void **state)
{
	struct fixture *f = *state;
	const char *head = "Subject: big\r\n\r\n";
	size_t size = strlen(head) + 4 * BIG_LINES, len;
	char first[64], *want, *got, line[64];

	/* RETR: every line stuffed, CRLF, the size as counted at open. */
	str_fmt(first, sizeof(first), "+OK %zu octets\r\n", size);
	len = strlen(first) + strlen(head) + 5 * (size_t)BIG_LINES + 3;
	assert_non_null(want = malloc(len + 1));
	str_fmt(want, len + 1, "%s%s", first, head);
	for (size_t i = 0, o = strlen(want); i < BIG_LINES; i++, o += 5)
		memcpy(want + o, "..x\r\n", 5);
	memcpy(want + len - 3, ".\r\n", 4);
	got = drain(f, "RETR 4\r\n", len);
	assert_memory_equal(got, want, len + 1);
	free(got);
	free(want);
	/* LIST: every message once, in order, then the end. */
	str_fmt(first, sizeof(first), "4 %zu\r\n", size);
	len = strlen("+OK Scan listing follows.\r\n") + strlen(first) + 3;
	for (size_t i = 0; i < NMSGS; i++)
		len += (size_t)snprintf(line, sizeof(line), "%zu %zu\r\n", i + 1,
		    crlf_size(i));
	for (unsigned int i = 5; i < 5 + BIG_EXTRA; i++)
		len += (size_t)snprintf(line, sizeof(line), "%u 21\r\n", i);
	got = drain(f, "LIST\r\n", len);
	assert_true(starts(got, "+OK Scan listing follows.\r\n1 "));
	assert_non_null(strstr(got, first));
	str_fmt(line, sizeof(line), "\r\n%u 21\r\n.\r\n", 4 + BIG_EXTRA);
	assert_string_equal(got + len - strlen(line), line);
	free(got);
	assert_string_equal(say(f, "NOOP\r\n"), "+OK\r\n");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_stat_list_uidl, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_retr_crlf_and_byte_stuffing,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_top, setup, teardown),
		cmocka_unit_test_setup_teardown(test_dele_hides_rset_restores,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_message_numbers, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_quit_runs_update, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(
		    test_dropped_connection_deletes_nothing, setup, teardown),
		cmocka_unit_test_setup_teardown(test_big_retr_and_list_in_parts,
		    setup_big, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
