/*
 * Local delivery: what lands in a Maildir, an mbox or an MDA's input is
 * exactly the message with LF line ends (mboxrd-escaped in an mbox), and
 * a failure leaves nothing behind: no file in new/ or tmp/, an mbox
 * truncated back, an MDA's exit status reported.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testutil.h"
#include "../../src/client/fetch.h"

static char tmpdir[PATH_MAX];

static int
setup(void **state)
{
	(void)state;
	return tu_tmpdir_make(tmpdir, sizeof(tmpdir), "fetch");
}

static int
teardown(void **state)
{
	(void)state;
	return tu_tmpdir_remove(tmpdir);
}

/* The one file in dir (asserted), its name into name. */
static size_t
list_dir(const char *dir, char *name, size_t size)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	size_t n = 0;

	assert_non_null(d);
	while ((e = readdir(d)) != NULL) {
		if (e->d_name[0] == '.')
			continue;
		if (name != NULL)
			str_copy(name, size, e->d_name);
		n++;
	}
	closedir(d);
	return n;
}

/* Feed text as lines (split at '\n'; pieces of at most piece octets). */
static int
feed(struct fetch_dest *d, const char *text, size_t piece)
{
	const char *p = text;

	while (*p != '\0') {
		const char *nl = strchr(p, '\n');
		size_t len = nl != NULL ? (size_t)(nl - p) : strlen(p);

		do {
			size_t n = len > piece ? piece : len;

			if (fetch_data(d, p, n, n == len) < 0)
				return -1;
			p += n;
			len -= n;
		} while (len > 0);
		if (nl != NULL)
			p++;
	}
	return 0;
}

static const char msg1[] =
    "Return-Path: <sender@example.org>\n"
    "From: a@example.org\n"
    "Subject: hello\n"
    "\n"
    "From the start\n"
    ">From quoted\n"
    ">>From twice\n"
    "From\n"
    " From not at start\n"
    "\n"
    "end\n";

static void
test_maildir_delivery(void **state)
{
	struct fetch_dest *d;
	char err[ERR_LEN], dir[PATH_MAX], sub[PATH_MAX], name[NAME_MAX + 1];
	char path[PATH_MAX * 2], suffix[32];
	size_t len;

	(void)state;
	assert_int_equal(str_fmt(dir, sizeof(dir), "%s/Maildir", tmpdir), 0);
	assert_int_equal(fetch_open(&d, FETCH_MAILDIR, dir, err), 0);
	for (size_t piece = 1; piece <= 64; piece *= 4) {
		assert_int_equal(fetch_begin(d, err), 0);
		assert_int_equal(feed(d, msg1, piece), 0);
		assert_int_equal(fetch_size(d), sizeof(msg1) - 1);
		assert_int_equal(fetch_commit(d, err), 0);
	}
	fetch_close(&d);
	assert_null(d);
	assert_int_equal(str_fmt(sub, sizeof(sub), "%s/new", dir), 0);
	assert_int_equal(list_dir(sub, name, sizeof(name)), 4);
	(void)snprintf(suffix, sizeof(suffix), ",S=%zu", sizeof(msg1) - 1);
	assert_non_null(strstr(name, suffix));
	assert_true(strchr(name, ':') == NULL);
	assert_int_equal(str_fmt(path, sizeof(path), "%s/%s", sub, name), 0);
	assert_string_equal(tu_slurp(path, &len), msg1);
	assert_int_equal(str_fmt(sub, sizeof(sub), "%s/tmp", dir), 0);
	assert_int_equal(list_dir(sub, NULL, 0), 0);
	assert_int_equal(str_fmt(sub, sizeof(sub), "%s/cur", dir), 0);
	assert_int_equal(list_dir(sub, NULL, 0), 0);
}

static void
test_maildir_abort_leaves_nothing(void **state)
{
	struct fetch_dest *d;
	char err[ERR_LEN], dir[PATH_MAX], sub[PATH_MAX];

	(void)state;
	assert_int_equal(str_fmt(dir, sizeof(dir), "%s/M", tmpdir), 0);
	assert_int_equal(fetch_open(&d, FETCH_MAILDIR, dir, err), 0);
	assert_int_equal(fetch_begin(d, err), 0);
	assert_int_equal(feed(d, "Subject: half\n\nbody", 3), 0);
	fetch_abort(d);
	assert_int_equal(fetch_begin(d, err), 0);
	assert_int_equal(feed(d, "x\n", 3), 0);
	/* Closing without commit aborts too. */
	fetch_close(&d);
	assert_int_equal(str_fmt(sub, sizeof(sub), "%s/tmp", dir), 0);
	assert_int_equal(list_dir(sub, NULL, 0), 0);
	assert_int_equal(str_fmt(sub, sizeof(sub), "%s/new", dir), 0);
	assert_int_equal(list_dir(sub, NULL, 0), 0);
}

static void
test_mbox_delivery_mboxrd(void **state)
{
	struct fetch_dest *d;
	char err[ERR_LEN], path[PATH_MAX];
	const char *got, *p;
	FILE *f;

	(void)state;
	assert_int_equal(str_fmt(path, sizeof(path), "%s/mbox", tmpdir), 0);
	/* An existing mbox whose last message lacks the final blank line. */
	f = fopen(path, "w");
	assert_non_null(f);
	fputs("From x@y Thu Jan  1 00:00:00 1970\nSubject: old\n\nold", f);
	fclose(f);
	assert_int_equal(fetch_open(&d, FETCH_MBOX, path, err), 0);
	assert_int_equal(fetch_begin(d, err), 0);
	assert_int_equal(feed(d, msg1, 5), 0);
	assert_int_equal(fetch_commit(d, err), 0);
	assert_int_equal(fetch_begin(d, err), 0);
	assert_int_equal(feed(d, "Subject: no sender\n\nbody\n", 100), 0);
	assert_int_equal(fetch_commit(d, err), 0);
	fetch_close(&d);
	got = tu_slurp(path, NULL);
	p = "From x@y Thu Jan  1 00:00:00 1970\nSubject: old\n\nold\n\n"
	    "From sender@example.org ";
	assert_memory_equal(got, p, strlen(p));
	got = strchr(got + strlen(p), '\n') + 1;
	p = "Return-Path: <sender@example.org>\n"
	    "From: a@example.org\n"
	    "Subject: hello\n"
	    "\n"
	    ">From the start\n"
	    ">>From quoted\n"
	    ">>>From twice\n"
	    "From\n"
	    " From not at start\n"
	    "\n"
	    "end\n"
	    "\n"
	    "From MAILER-DAEMON ";
	assert_memory_equal(got, p, strlen(p));
	got = strchr(got + strlen(p), '\n') + 1;
	assert_string_equal(got, "Subject: no sender\n\nbody\n\n");
	/* The dotlock is gone. */
	assert_int_equal(str_fmt(path, sizeof(path), "%s/mbox.lock", tmpdir),
	    0);
	assert_int_equal(access(path, F_OK), -1);
}

/*
 * An mbox message's X-UIDL header is its UIDL (src/store/store_mbox.c): a
 * fetched message must not choose one (it could take another message's
 * and hide behind it once that one is deleted), so the delivery drops it.
 */
static void
test_mbox_delivery_drops_x_uidl(void **state)
{
	struct fetch_dest *d;
	char err[ERR_LEN], path[PATH_MAX];
	const char *got;

	(void)state;
	assert_int_equal(str_fmt(path, sizeof(path), "%s/mbox", tmpdir), 0);
	assert_int_equal(fetch_open(&d, FETCH_MBOX, path, err), 0);
	assert_int_equal(fetch_begin(d, err), 0);
	assert_int_equal(feed(d, "Return-Path: <s@x>\nX-UIDL: victim\n"
	    "  folded\nSubject: s\n\nX-UIDL: body text\n", 7), 0);
	assert_int_equal(fetch_commit(d, err), 0);
	fetch_close(&d);
	got = tu_slurp(path, NULL);
	assert_memory_equal(got, "From s@x ", 9);
	got = strchr(got, '\n') + 1;
	assert_string_equal(got, "Return-Path: <s@x>\nSubject: s\n\n"
	    "X-UIDL: body text\n\n");
}

static void
test_mbox_failure_truncates_back(void **state)
{
	char path[PATH_MAX];
	const char *old = "From x@y Thu Jan  1 00:00:00 1970\n\nold\n\n";
	size_t len;
	int status;
	pid_t pid;
	FILE *f;

	(void)state;
	assert_int_equal(str_fmt(path, sizeof(path), "%s/mbox", tmpdir), 0);
	f = fopen(path, "w");
	assert_non_null(f);
	fputs(old, f);
	fclose(f);
	/* A file size limit makes the append fail half-way, like ENOSPC. */
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct rlimit rl = { 100000, 100000 };
		struct fetch_dest *d;
		char err[ERR_LEN], line[100];
		int rc;

		signal(SIGXFSZ, SIG_IGN);
		if (fetch_open(&d, FETCH_MBOX, path, err) < 0 ||
		    fetch_begin(d, err) < 0)
			_exit(10);
		if (setrlimit(RLIMIT_FSIZE, &rl) < 0)
			_exit(11);
		memset(line, 'z', sizeof(line));
		for (int i = 0; i < 2000; i++)
			(void)fetch_data(d, line, sizeof(line), true);
		rc = fetch_commit(d, err);
		fetch_close(&d);
		_exit(rc < 0 && strstr(err, "mbox") != NULL ? 0 : 12);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	assert_string_equal(tu_slurp(path, &len), old);
}

static void
test_maildir_failure_leaves_nothing(void **state)
{
	char dir[PATH_MAX], sub[PATH_MAX];
	int status;
	pid_t pid;

	(void)state;
	assert_int_equal(str_fmt(dir, sizeof(dir), "%s/Maildir", tmpdir), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct rlimit rl = { 50000, 50000 };
		struct fetch_dest *d;
		char err[ERR_LEN], line[100];
		int rc = 0;

		signal(SIGXFSZ, SIG_IGN);
		if (fetch_open(&d, FETCH_MAILDIR, dir, err) < 0 ||
		    fetch_begin(d, err) < 0 || setrlimit(RLIMIT_FSIZE, &rl) < 0)
			_exit(10);
		memset(line, 'z', sizeof(line));
		for (int i = 0; i < 2000 && rc == 0; i++)
			rc = fetch_data(d, line, sizeof(line), true);
		if (rc == 0)
			_exit(11);
		rc = fetch_commit(d, err);
		fetch_close(&d);
		_exit(rc < 0 && strstr(err, "large") != NULL ? 0 : 12);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	assert_int_equal(str_fmt(sub, sizeof(sub), "%s/tmp", dir), 0);
	assert_int_equal(list_dir(sub, NULL, 0), 0);
	assert_int_equal(str_fmt(sub, sizeof(sub), "%s/new", dir), 0);
	assert_int_equal(list_dir(sub, NULL, 0), 0);
}

static void
test_mda_gets_whole_message(void **state)
{
	struct fetch_dest *d;
	char err[ERR_LEN], cmd[PATH_MAX + 32], out[PATH_MAX];

	(void)state;
	assert_int_equal(str_fmt(out, sizeof(out), "%s/out", tmpdir), 0);
	assert_int_equal(str_fmt(cmd, sizeof(cmd), "cat >> '%s'", out), 0);
	assert_int_equal(fetch_open(&d, FETCH_MDA, cmd, err), 0);
	assert_int_equal(fetch_begin(d, err), 0);
	assert_int_equal(feed(d, msg1, 7), 0);
	assert_int_equal(fetch_commit(d, err), 0);
	/* The spool is reused: the second message does not carry the first. */
	assert_int_equal(fetch_begin(d, err), 0);
	assert_int_equal(feed(d, "short\n", 7), 0);
	assert_int_equal(fetch_commit(d, err), 0);
	fetch_close(&d);
	assert_int_equal(strlen(tu_slurp(out, NULL)), sizeof(msg1) - 1 + 6);
	assert_string_equal(tu_slurp(out, NULL) + sizeof(msg1) - 1, "short\n");
}

static void
test_mda_failure_is_reported(void **state)
{
	struct fetch_dest *d;
	char err[ERR_LEN];

	(void)state;
	assert_int_equal(fetch_open(&d, FETCH_MDA, "cat >/dev/null; exit 75",
	    err), 0);
	assert_int_equal(fetch_begin(d, err), 0);
	assert_int_equal(feed(d, msg1, 1000), 0);
	assert_int_equal(fetch_commit(d, err), -1);
	assert_non_null(strstr(err, "exit status 75"));
	assert_int_equal(fetch_begin(d, err), 0);
	fetch_close(&d);
	assert_int_equal(fetch_open(&d, FETCH_MDA, "kill -9 $$", err), 0);
	assert_int_equal(fetch_begin(d, err), 0);
	assert_int_equal(fetch_commit(d, err), -1);
	assert_non_null(strstr(err, "signal 9"));
	fetch_close(&d);
}

/* Prepare and commit one message to cmd with a spool; the token. */
static int
mda_deliver(const char *cmd, char *token, size_t size, char *err)
{
	struct fetch_dest *d;
	char spool[PATH_MAX];
	int rc;

	assert_int_equal(str_fmt(spool, sizeof(spool), "%s/spool", tmpdir), 0);
	assert_int_equal(fetch_open(&d, FETCH_MDA, cmd, err), 0);
	assert_int_equal(fetch_set_spool(d, spool, err), 0);
	assert_int_equal(fetch_begin(d, err), 0);
	assert_int_equal(feed(d, msg1, 100), 0);
	assert_int_equal(fetch_prepare(d, token, size, err), 0);
	rc = fetch_commit(d, err);
	fetch_close(&d);
	return rc;
}

static int
mda_recover_token(const char *cmd, const char *token, char *err)
{
	struct fetch_dest *d;
	char spool[PATH_MAX];
	int rc;

	assert_int_equal(str_fmt(spool, sizeof(spool), "%s/spool", tmpdir), 0);
	assert_int_equal(fetch_open(&d, FETCH_MDA, cmd, err), 0);
	assert_int_equal(fetch_set_spool(d, spool, err), 0);
	rc = fetch_recover(d, token, err);
	fetch_close(&d);
	return rc;
}

static void
test_mda_outcome_survives_a_killed_postino(void **state)
{
	char err[ERR_LEN], token[PATH_MAX + 32], cmd[3 * PATH_MAX];
	char out[PATH_MAX], started[PATH_MAX], tokfile[PATH_MAX];
	int status;
	pid_t pid;

	(void)state;
	assert_int_equal(mda_deliver("cat >/dev/null", token, sizeof(token),
	    err), 0);
	assert_string_equal(token, "mda wait");
	assert_int_equal(mda_recover_token("true", token, err), 1);
	assert_int_equal(mda_deliver("cat >/dev/null; exit 3", token,
	    sizeof(token), err), -1);
	assert_int_equal(mda_recover_token("true", token, err), 0);

	/* Killed (-9) while the MDA runs: the next run waits and knows. */
	assert_int_equal(str_fmt(out, sizeof(out), "%s/out", tmpdir), 0);
	assert_int_equal(str_fmt(started, sizeof(started), "%s/started",
	    tmpdir), 0);
	assert_int_equal(str_fmt(tokfile, sizeof(tokfile), "%s/token",
	    tmpdir), 0);
	assert_int_equal(str_fmt(cmd, sizeof(cmd), "touch '%s'; sleep 1; "
	    "cat >> '%s'", started, out), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct fetch_dest *d;
		char spool[PATH_MAX];
		FILE *f;

		(void)str_fmt(spool, sizeof(spool), "%s/spool", tmpdir);
		if (fetch_open(&d, FETCH_MDA, cmd, err) < 0 ||
		    fetch_set_spool(d, spool, err) < 0 ||
		    fetch_begin(d, err) < 0 || feed(d, msg1, 100) < 0 ||
		    fetch_prepare(d, token, sizeof(token), err) < 0 ||
		    (f = fopen(tokfile, "w")) == NULL)
			_exit(1);
		fputs(token, f);
		fclose(f);
		(void)fetch_commit(d, err);
		_exit(2);
	}
	for (int i = 0; i < 500 && access(started, F_OK) < 0; i++)
		usleep(10000);
	assert_int_equal(access(started, F_OK), 0);
	assert_int_equal(kill(pid, SIGKILL), 0);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFSIGNALED(status));
	assert_string_equal(tu_slurp(tokfile, NULL), "mda wait");
	assert_int_equal(mda_recover_token("true", "mda wait", err), 1);
	assert_string_equal(tu_slurp(out, NULL), msg1);

	/* The supervisor died too: unknown, so delivered again. */
	assert_int_equal(str_fmt(out, sizeof(out), "%s/spool.mda", tmpdir), 0);
	assert_int_equal(truncate(out, 0), 0);
	assert_int_equal(mda_recover_token("true", "mda wait", err), 2);
	assert_non_null(strstr(err, "unknown"));
	/* Old state files: the MDA cannot be asked. */
	assert_int_equal(mda_recover_token("true", "mda", err), 0);
}

static void
test_mda_sender_and_recipient_are_quoted(void **state)
{
	struct fetch_dest *d;
	char err[ERR_LEN], cmd[2 * PATH_MAX], out[PATH_MAX], pwned[PATH_MAX];
	char msg[3 * PATH_MAX], want[3 * PATH_MAX];

	(void)state;
	assert_int_equal(str_fmt(out, sizeof(out), "%s/out", tmpdir), 0);
	assert_int_equal(str_fmt(pwned, sizeof(pwned), "%s/pwned", tmpdir), 0);
	/* A hostile sender: quotes, ;, $ are all valid address octets. */
	assert_int_equal(str_fmt(msg, sizeof(msg), "Return-Path: "
	    "<a';touch${IFS}%s;'@x>\nSubject: s\n\nbody\n", pwned), 0);
	assert_int_equal(str_fmt(cmd, sizeof(cmd), "printf '%%%%s|%%%%s|%%%%%%%%\\n' "
	    "%%F %%T > '%s'; cat > /dev/null", out), 0);
	assert_int_equal(fetch_open(&d, FETCH_MDA, cmd, err), 0);
	fetch_set_recipient(d, "bob's");
	assert_int_equal(fetch_begin(d, err), 0);
	assert_int_equal(feed(d, msg, 9), 0);
	assert_int_equal(fetch_commit(d, err), 0);
	assert_int_equal(str_fmt(want, sizeof(want),
	    "a';touch${IFS}%s;'@x|bob's|%%\n", pwned), 0);
	assert_string_equal(tu_slurp(out, NULL), want);
	assert_int_equal(access(pwned, F_OK), -1);
	/* No Return-Path (or one in the body): an empty sender. */
	assert_int_equal(fetch_begin(d, err), 0);
	assert_int_equal(feed(d, "Subject: s\n\nReturn-Path: <no@x>\n", 5),
	    0);
	assert_int_equal(fetch_commit(d, err), 0);
	assert_string_equal(tu_slurp(out, NULL), "|bob's|%\n");
	fetch_close(&d);
}

static void
test_bad_destinations(void **state)
{
	struct fetch_dest *d;
	char err[ERR_LEN], path[PATH_MAX];

	(void)state;
	assert_int_equal(fetch_open(&d, FETCH_MAILDIR, "/nonexistent/a/b",
	    err), -1);
	assert_null(d);
	assert_non_null(strstr(err, "/nonexistent"));
	/* An mbox that is a directory fails at commit, cleanly. */
	assert_int_equal(fetch_open(&d, FETCH_MBOX, tmpdir, err), 0);
	assert_int_equal(fetch_begin(d, err), 0);
	assert_int_equal(feed(d, msg1, 9), 0);
	assert_int_equal(fetch_commit(d, err), -1);
	fetch_close(&d);
	assert_int_equal(str_fmt(path, sizeof(path), "%s.lock", tmpdir), 0);
	assert_int_equal(access(path, F_OK), -1);
}

/*
 * The one Maildir writer is the store's: a prepared message is only a
 * token; a committed one is the file whose name carries that token, which
 * the store's probe finds in new/ or, moved by a reader, in cur/.
 */
static void
test_maildir_recover(void **state)
{
	struct fetch_dest *d;
	char err[ERR_LEN], dir[PATH_MAX], token[PATH_MAX + 32], want[32];
	char from[PATH_MAX * 2], to[PATH_MAX * 3], sub[PATH_MAX];
	char name[NAME_MAX + 1];

	(void)state;
	assert_int_equal(str_fmt(dir, sizeof(dir), "%s/Maildir", tmpdir), 0);
	assert_int_equal(fetch_open(&d, FETCH_MAILDIR, dir, err), 0);
	/* Prepared, never committed (killed): not delivered, tmp/ empty. */
	assert_int_equal(fetch_begin(d, err), 0);
	assert_int_equal(feed(d, msg1, 50), 0);
	assert_int_equal(fetch_prepare(d, token, sizeof(token), err), 0);
	assert_memory_equal(token, "maildir ", 8);
	assert_int_equal(strlen(token + 8), 12);
	assert_int_equal(strspn(token + 8, "0123456789abcdef"), 12);
	assert_int_equal(fetch_recover(d, token, err), 0);
	assert_int_equal(str_fmt(sub, sizeof(sub), "%s/tmp", dir), 0);
	assert_int_equal(list_dir(sub, NULL, 0), 0);
	fetch_abort(d);
	/* Committed: delivered, also once a reader moved it to cur/. */
	assert_int_equal(fetch_begin(d, err), 0);
	assert_int_equal(feed(d, msg1, 50), 0);
	assert_int_equal(fetch_prepare(d, token, sizeof(token), err), 0);
	assert_int_equal(fetch_commit(d, err), 0);
	assert_int_equal(fetch_sync(d, err), 0);
	assert_int_equal(fetch_recover(d, token, err), 1);
	assert_int_equal(str_fmt(sub, sizeof(sub), "%s/new", dir), 0);
	assert_int_equal(list_dir(sub, name, sizeof(name)), 1);
	assert_int_equal(str_fmt(want, sizeof(want), "R%s.", token + 8), 0);
	assert_non_null(strstr(name, want));
	assert_int_equal(str_fmt(from, sizeof(from), "%s/%s", sub, name), 0);
	assert_int_equal(str_fmt(to, sizeof(to), "%s/cur/%s:2,S", dir, name),
	    0);
	assert_int_equal(rename(from, to), 0);
	assert_int_equal(fetch_recover(d, token, err), 1);
	assert_int_equal(fetch_recover(d, "maildir 0123456789ab", err), 0);
	/* An older postino's pending file name: fetched again, said so. */
	assert_int_equal(fetch_recover(d, "maildir 1.M2P3Q4.h,S=5", err), 2);
	assert_int_equal(fetch_recover(d, "maildir ../x,S=1", err), -1);
	assert_int_equal(fetch_recover(d, "maildir x", err), -1);
	assert_int_equal(fetch_recover(d, "what", err), -1);
	assert_int_equal(fetch_recover(d, "mda", err), 0);
	fetch_close(&d);
}

/* This host's name as the store writes it into Maildir names. */
static void
store_host(char *out, size_t size)
{
	char host[256] = "localhost";
	size_t o = 0;

	(void)gethostname(host, sizeof(host) - 1);
	host[sizeof(host) - 1] = '\0';
	for (const char *h = host; *h != '\0' && o + 1 < size && o < 32;
	    h++) {
		unsigned char c = (unsigned char)*h;

		out[o++] = (c == '/' || c == ':' || c == ',' || c <= ' ' ||
		    c >= 0x7f) ? '_' : (char)c;
	}
	out[o] = '\0';
}

/*
 * Opening removes what killed appends of this host left in tmp/ (their
 * pid is gone) and nothing else: a live writer's file, another host's.
 */
static void
test_maildir_open_cleans_dead_tmp(void **state)
{
	struct fetch_dest *d;
	char err[ERR_LEN], dir[PATH_MAX], host[64], path[PATH_MAX * 2];
	const char *names[3];
	char dead[NAME_MAX], live[NAME_MAX], other[NAME_MAX];
	pid_t pid = fork();

	(void)state;
	assert_true(pid >= 0);
	if (pid == 0)
		_exit(0);
	assert_int_equal(waitpid(pid, NULL, 0), pid);
	store_host(host, sizeof(host));
	(void)snprintf(dead, sizeof(dead), "1.M2P%ldQ3R0123456789ab.%s",
	    (long)pid, host);
	(void)snprintf(live, sizeof(live), "1.M2P%ldQ3.%s", (long)getpid(),
	    host);
	(void)snprintf(other, sizeof(other), "1.M2P%ldQ3.%s-not", (long)pid,
	    host);
	names[0] = dead;
	names[1] = live;
	names[2] = other;
	assert_int_equal(str_fmt(dir, sizeof(dir), "%s/Clean", tmpdir), 0);
	assert_int_equal(fetch_open(&d, FETCH_MAILDIR, dir, err), 0);
	fetch_close(&d);
	for (size_t i = 0; i < 3; i++) {
		assert_int_equal(str_fmt(path, sizeof(path), "%s/tmp/%s", dir,
		    names[i]), 0);
		FILE *f = fopen(path, "w");

		assert_non_null(f);
		assert_int_equal(fclose(f), 0);
	}
	assert_int_equal(fetch_open(&d, FETCH_MAILDIR, dir, err), 0);
	fetch_close(&d);
	for (size_t i = 0; i < 3; i++) {
		assert_int_equal(str_fmt(path, sizeof(path), "%s/tmp/%s", dir,
		    names[i]), 0);
		assert_int_equal(access(path, F_OK), i == 0 ? -1 : 0);
	}
}

/* Append raw octets to path, as another program would. */
static void
append_raw(const char *path, const char *data, size_t len)
{
	FILE *f = fopen(path, "a");

	assert_non_null(f);
	assert_int_equal(fwrite(data, 1, len, f), len);
	assert_int_equal(fclose(f), 0);
}

/* Deliver msg1 with a spool at tmpdir/spool; the token into token. */
static struct fetch_dest *
deliver_with_token(const char *path, char *token, size_t size,
    unsigned long long *old_r, unsigned long long *len_r)
{
	struct fetch_dest *d;
	char err[ERR_LEN], spool[PATH_MAX];

	assert_int_equal(str_fmt(spool, sizeof(spool), "%s/spool", tmpdir), 0);
	assert_int_equal(fetch_open(&d, FETCH_MBOX, path, err), 0);
	assert_int_equal(fetch_set_spool(d, spool, err), 0);
	assert_int_equal(fetch_begin(d, err), 0);
	assert_int_equal(feed(d, msg1, 50), 0);
	assert_int_equal(fetch_prepare(d, token, size, err), 0);
	assert_int_equal(sscanf(token, "mbox %llu %llu", old_r, len_r), 2);
	assert_int_equal(fetch_commit(d, err), 0);
	return d;
}

static void
test_mbox_recover_truncates_only_its_own_partial(void **state)
{
	struct fetch_dest *d;
	char err[ERR_LEN], path[PATH_MAX], token[PATH_MAX + 32];
	static const char before[] = "From x@y Thu Jan  1 00:00:00 1970\n\nold\n";
	unsigned long long old, len;
	char *full;
	size_t n;

	(void)state;
	assert_int_equal(str_fmt(path, sizeof(path), "%s/mbox", tmpdir), 0);
	append_raw(path, before, strlen(before));
	d = deliver_with_token(path, token, sizeof(token), &old, &len);
	assert_int_equal(old, strlen(before));
	full = strdup(tu_slurp(path, &n));
	assert_int_equal(n, old + len);
	assert_int_equal(fetch_recover(d, token, err), 1);

	/* The same append cut short by a kill: taken back, not delivered. */
	assert_int_equal(truncate(path, (off_t)(old + len - 10)), 0);
	assert_int_equal(fetch_recover(d, token, err), 0);
	assert_string_equal(tu_slurp(path, NULL), before);

	/* Nothing written yet: not delivered, nothing touched. */
	assert_int_equal(fetch_recover(d, token, err), 0);
	assert_string_equal(tu_slurp(path, NULL), before);

	/*
	 * Cut short, then another program appended (shorter or longer than
	 * the rest of ours): not delivered, and the file is left alone.
	 */
	for (int big = 0; big < 2; big++) {
		char mta[4096];
		size_t mlen;

		append_raw(path, full + old, len / 2);
		mlen = (size_t)snprintf(mta, sizeof(mta), "\nFrom mta@x Thu "
		    "Jan  1 00:00:00 1970\n\n%s\n", big ? "" : "hi");
		if (big) {
			memset(mta + mlen, 'm', 3000);
			mlen += 3000;
			mta[mlen++] = '\n';
		}
		append_raw(path, mta, mlen);
		tu_slurp(path, &n);
		assert_int_equal(n, old + len / 2 + mlen);
		assert_int_equal(fetch_recover(d, token, err), 2);
		assert_non_null(strstr(err, "left as it is"));
		tu_slurp(path, &n);
		assert_int_equal(n, old + len / 2 + mlen);
		assert_int_equal(truncate(path, (off_t)old), 0);
	}

	/* Complete, then more mail after it: delivered. */
	append_raw(path, full + old, len);
	append_raw(path, "From z\n\nz\n", 10);
	assert_int_equal(fetch_recover(d, token, err), 1);

	/* Complete but changed (rewritten by a MUA): not proven. */
	assert_int_equal(truncate(path, (off_t)old), 0);
	full[old + len - 3] ^= 1;
	append_raw(path, full + old, len);
	assert_int_equal(fetch_recover(d, token, err), 2);

	/* A partial append without the spool to compare: left alone. */
	fetch_close(&d);
	assert_int_equal(fetch_open(&d, FETCH_MBOX, path, err), 0);
	assert_int_equal(truncate(path, (off_t)(old + 5)), 0);
	assert_int_equal(fetch_recover(d, token, err), 2);
	tu_slurp(path, &n);
	assert_int_equal(n, old + 5);

	/* Hostile or old-format tokens. */
	assert_int_equal(fetch_recover(d, "mbox 5 x", err), -1);
	assert_int_equal(fetch_recover(d, "mbox 5 9", err), -1);
	assert_int_equal(fetch_recover(d, "mbox 5 9 abc 0 From x", err), -1);
	free(full);
	fetch_close(&d);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_maildir_delivery, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(
		    test_maildir_abort_leaves_nothing, setup, teardown),
		cmocka_unit_test_setup_teardown(test_mbox_delivery_mboxrd,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_mbox_delivery_drops_x_uidl,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_mbox_failure_truncates_back, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_maildir_failure_leaves_nothing, setup, teardown),
		cmocka_unit_test_setup_teardown(test_mda_gets_whole_message,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_mda_failure_is_reported,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_mda_outcome_survives_a_killed_postino, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_mda_sender_and_recipient_are_quoted, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_destinations, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_maildir_recover, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(
		    test_maildir_open_cleans_dead_tmp, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_mbox_recover_truncates_only_its_own_partial, setup,
		    teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
