/*
 * Delivery into a store: the shared copy step (headers, CRLF, mboxrd
 * escaping, sizes) and Maildir append (tmp/ -> new/ with ,S= and ,W=,
 * invisible to a session that is already open).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../../src/store/store.h"
#include "../../src/store/store_append.h"
#include "../../src/store/mbox_append.h"
#include "testutil.h"

struct fixture {
	char	root[128];
	char	md[192];
};

static int
setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	assert_int_equal(tu_tmpdir_make(f->root, sizeof(f->root), "append"), 0);
	snprintf(f->md, sizeof(f->md), "%s/home/u/Maildir", f->root);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(tu_tmpdir_remove(f->root), 0);
	free(f);
	return 0;
}

static int
memfd_with(const char *data, size_t len)
{
	int fd = memfd_create("test", MFD_CLOEXEC);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, data, len), (ssize_t)len);
	return fd;
}

/* Copy data through store_append_copy into a memfd; the result in out. */
static size_t
copy(const char *data, const struct store_delivery *d, enum store_escape esc,
    char *out, size_t size, uint64_t *crlf_r, bool *ends_lf_r)
{
	int in = memfd_with(data, strlen(data));
	int o = memfd_create("out", MFD_CLOEXEC);
	uint64_t stored, crlfsize;
	char err[ERR_LEN];
	bool ends_lf;
	ssize_t n;

	assert_int_equal(store_append_copy(in, o, d, esc, &stored, &crlfsize,
	    &ends_lf, err), 0);
	n = pread(o, out, size - 1, 0);
	assert_true(n >= 0);
	out[n] = '\0';
	assert_int_equal((uint64_t)n, stored);
	if (crlf_r)
		*crlf_r = crlfsize;
	if (ends_lf_r)
		*ends_lf_r = ends_lf;
	close(in);
	close(o);
	return (size_t)n;
}

static void
test_copy_adds_headers_and_keeps_the_rest(void **state)
{
	struct store_delivery d = { .return_path = "bob@example.org",
	    .delivered_to = "alice@example.org" };
	char out[256];
	uint64_t w;
	bool lf;

	(void)state;
	copy("Subject: x\n\nbody\r\n", &d, STORE_ESCAPE_NONE, out, sizeof(out),
	    &w, &lf);
	assert_string_equal(out, "Return-Path: <bob@example.org>\n"
	    "Delivered-To: alice@example.org\nSubject: x\n\nbody\r\n");
	/* Every LF counts as CRLF; the CRLF counts as itself. */
	assert_int_equal(w, strlen(out) + 4);
	assert_true(lf);
}

static void
test_copy_crlf_mode_and_null_sender(void **state)
{
	struct store_delivery d = { .return_path = "", .crlf = true };
	char out[256];
	uint64_t w;
	bool lf;

	(void)state;
	copy("a\nb", &d, STORE_ESCAPE_NONE, out, sizeof(out), &w, &lf);
	assert_string_equal(out, "Return-Path: <>\r\na\r\nb");
	assert_int_equal(w, strlen(out) + 2);	/* the final CRLF POP3 adds */
	assert_false(lf);
}

static void
test_copy_mboxrd_escapes_from_lines_only(void **state)
{
	static const struct {
		const char *in, *out;
	} cases[] = {
		{ "From x\n", ">From x\n" },
		{ ">From x\n", ">>From x\n" },
		{ ">>>From x\n", ">>>>From x\n" },
		{ "a\nFrom \nFrom", "a\n>From \nFrom" },
		{ "Fro\n>Fr\n>\n>>", "Fro\n>Fr\n>\n>>" },
		{ " From x\nFromage\n", " From x\nFromage\n" },
		{ "x From y\n", "x From y\n" },
		{ "", "" },
	};
	struct store_delivery d = { 0 };
	char out[256];

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		copy(cases[i].in, &d, STORE_ESCAPE_MBOXRD, out, sizeof(out),
		    NULL, NULL);
		assert_string_equal(out, cases[i].out);
	}
}

static void
test_copy_large_message_in_blocks(void **state)
{
	size_t len = 300000;
	char *data = malloc(len + 1), *out = malloc(2 * len + 64);
	struct store_delivery d = { .crlf = true };
	uint64_t w;

	(void)state;
	for (size_t i = 0; i < len; i++)
		data[i] = i % 100 == 99 ? '\n' : 'x';
	data[len] = '\0';
	assert_int_equal(copy(data, &d, STORE_ESCAPE_NONE, out, 2 * len + 64,
	    &w, NULL), len + len / 100);
	assert_int_equal(w, len + len / 100);
	free(data);
	free(out);
}

/*
 * An mbox message's X-UIDL is its UIDL: a delivery drops every X-UIDL
 * field of the header (whatever its case or blanks, with its continuation
 * lines) and keeps everything else, X-UIDL in the body included.
 */
static void
test_copy_mbox_drops_x_uidl_fields(void **state)
{
	static const struct {
		const char *in, *out;
	} cases[] = {
		{ "X-UIDL: victim\nSubject: s\n\nb\n", "Subject: s\n\nb\n" },
		{ "Subject: s\nx-uidl :\tv\n  more\n\tmore\nTo: t\n\nb\n",
		  "Subject: s\nTo: t\n\nb\n" },
		{ "X-UIDLs: v\nX-UID: 3\nX-UIDL\n\nX-UIDL: body\n",
		  "X-UIDLs: v\nX-UID: 3\nX-UIDL\n\nX-UIDL: body\n" },
		{ "\r\nX-UIDL: body\n", "\r\nX-UIDL: body\n" },
		{ "S: s\r\nX-UIDL: v\r\n\r\nb", "S: s\r\n\r\nb" },
		{ "From x\nX-UIDL: v\nFrom y\n\nFrom z\n",
		  ">From x\n>From y\n\n>From z\n" },
		{ "X-UIDL: no line end", "" },
		{ "X-UID", "X-UID" },
		{ "\r", "\r" },
	};
	struct store_delivery d = { 0 };
	char out[256];

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		copy(cases[i].in, &d, STORE_ESCAPE_MBOXRD, out, sizeof(out),
		    NULL, NULL);
		assert_string_equal(out, cases[i].out);
	}
	/* Maildir and pgsql keep the message as it is. */
	copy(cases[0].in, &d, STORE_ESCAPE_NONE, out, sizeof(out), NULL,
	    NULL);
	assert_string_equal(out, cases[0].in);
	/* A UIDL to keep comes first, before the envelope's headers. */
	d.uidl = "kept-1";
	d.return_path = "b@x";
	copy(cases[0].in, &d, STORE_ESCAPE_MBOXO, out, sizeof(out), NULL,
	    NULL);
	assert_string_equal(out, "X-UIDL: kept-1\nReturn-Path: <b@x>\n"
	    "Subject: s\n\nb\n");
}

/* The one file in dir (new/ of the maildir); its name in name. */
static void
only_file(const char *dir, char *name, size_t size)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	int n = 0;

	assert_non_null(d);
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		snprintf(name, size, "%s", de->d_name);
		n++;
	}
	closedir(d);
	assert_int_equal(n, 1);
}

static void
test_maildir_append_creates_and_names_with_sizes(void **state)
{
	struct fixture *f = *state;
	const struct store_ops *ops = store_lookup("maildir");
	struct store_params p = { .path = f->md };
	struct store_delivery d = { .return_path = "s@x", .delivered_to = "u" };
	const char *msg = "Subject: hi\n\nline\n";
	char dir[256], name[256], err[ERR_LEN], want[64];
	struct store_index idx;
	struct store *st;
	int fd = memfd_with(msg, strlen(msg));
	size_t stored = strlen("Return-Path: <s@x>\nDelivered-To: u\n") +
	    strlen(msg);

	assert_non_null(ops->append);
	assert_int_equal(ops->append(&p, fd, &d, err), STORE_OK);
	snprintf(dir, sizeof(dir), "%s/new", f->md);
	only_file(dir, name, sizeof(name));
	snprintf(want, sizeof(want), ",S=%zu,W=%zu", stored, stored + 5);
	assert_non_null(strstr(name, want));
	snprintf(dir, sizeof(dir), "%s/tmp", f->md);
	assert_int_equal(rmdir(dir), 0);	/* tmp/ left empty */
	assert_int_equal(mkdir(dir, 0700), 0);
	assert_int_equal(ops->open(&st, &p, &idx, err), STORE_OK);
	assert_int_equal(idx.count, 1);
	assert_int_equal(idx.msgs[0].size, stored + 5);
	ops->close(&st, &idx);
	close(fd);
}

static void
test_maildir_append_during_session_waits_for_next(void **state)
{
	struct fixture *f = *state;
	const struct store_ops *ops = store_lookup("maildir");
	struct store_params p = { .path = f->md };
	struct store_delivery d = { 0 };
	char err[ERR_LEN], uidl1[STORE_UIDL_MAX + 1];
	struct store_index idx;
	struct store *st;
	int fd = memfd_with("x\n", 2);

	assert_int_equal(ops->append(&p, fd, &d, err), STORE_OK);
	assert_int_equal(ops->open(&st, &p, &idx, err), STORE_OK);
	assert_int_equal(idx.count, 1);
	strcpy(uidl1, idx.msgs[0].uidl);
	assert_int_equal(ops->append(&p, fd, &d, err), STORE_OK);
	assert_int_equal(ops->append(&p, fd, &d, err), STORE_OK);
	ops->close(&st, &idx);
	assert_int_equal(ops->open(&st, &p, &idx, err), STORE_OK);
	assert_int_equal(idx.count, 3);
	assert_string_equal(idx.msgs[0].uidl, uidl1);
	assert_string_not_equal(idx.msgs[1].uidl, idx.msgs[2].uidl);
	ops->close(&st, &idx);
	close(fd);
}

static void
test_maildir_probe_finds_a_delivery_by_its_token(void **state)
{
	struct fixture *f = *state;
	const struct store_ops *ops = store_lookup("maildir");
	struct store_params p = { .path = f->md };
	struct store_delivery d = { .token = "0123456789ab" };
	char err[ERR_LEN];
	struct store_index idx;
	struct store *st;
	int fd = memfd_with("x\n", 2);

	assert_int_equal(ops->probe(&p, "0123456789ab", err), STORE_PERMFAIL);
	assert_int_equal(ops->append(&p, fd, &d, err), STORE_OK);
	assert_int_equal(ops->probe(&p, "0123456789ab", err), STORE_OK);
	assert_int_equal(ops->probe(&p, "0123456789ac", err), STORE_PERMFAIL);
	assert_int_equal(ops->probe(&p, "123456789ab", err), STORE_TEMPFAIL);
	assert_int_equal(ops->probe(&p, "../../etc/pa", err), STORE_TEMPFAIL);
	/* still found once a POP3 session moved it to cur/ */
	assert_int_equal(ops->open(&st, &p, &idx, err), STORE_OK);
	ops->close(&st, &idx);
	assert_int_equal(ops->probe(&p, "0123456789ab", err), STORE_OK);
	assert_null(store_lookup("mbox")->probe);
	close(fd);
}

static void
test_maildir_append_refuses_a_file_as_mailbox(void **state)
{
	struct fixture *f = *state;
	const struct store_ops *ops = store_lookup("maildir");
	struct store_params p = { .path = f->root };
	struct store_delivery d = { 0 };
	char path[256], err[ERR_LEN];
	int fd = memfd_with("x\n", 2), t;

	snprintf(path, sizeof(path), "%s/file", f->root);
	t = open(path, O_WRONLY | O_CREAT, 0600);
	assert_true(t >= 0);
	close(t);
	p.path = path;
	assert_int_equal(ops->append(&p, fd, &d, err), STORE_PERMFAIL);
	assert_true(err[0] != '\0');
	close(fd);
}

static void
test_maildir_append_unwritable_is_temporary(void **state)
{
	struct fixture *f = *state;
	const struct store_ops *ops = store_lookup("maildir");
	struct store_params p = { .path = f->md };
	struct store_delivery d = { 0 };
	char dir[256], err[ERR_LEN];
	int fd = memfd_with("x\n", 2);

	if (geteuid() == 0)
		skip();		/* root writes anywhere */
	assert_int_equal(ops->append(&p, fd, &d, err), STORE_OK);
	snprintf(dir, sizeof(dir), "%s/tmp", f->md);
	assert_int_equal(chmod(dir, 0500), 0);
	assert_int_equal(ops->append(&p, fd, &d, err), STORE_TEMPFAIL);
	assert_int_equal(chmod(dir, 0700), 0);
	close(fd);
}

static void
test_mbox_append_from_line_escaping_and_separator(void **state)
{
	struct fixture *f = *state;
	const struct store_ops *ops = store_lookup("mbox");
	char path[256], err[ERR_LEN];
	struct store_params p = { .path = path, .mboxrd = true, .lock_wait = 1 };
	struct store_delivery d = { .return_path = "bob@x", .crlf = true };
	struct store_index idx;
	struct store *st;
	const char *m1 = "Subject: one\n\nFrom here\n>From there\n";
	int fd1 = memfd_with(m1, strlen(m1)), fd2 = memfd_with("no lf", 5);
	char *data;

	snprintf(path, sizeof(path), "%s/spool/alice", f->root);
	assert_non_null(ops->append);
	assert_int_equal(ops->append(&p, fd1, &d, err), STORE_OK);
	d.return_path = "";
	assert_int_equal(ops->append(&p, fd2, &d, err), STORE_OK);
	data = tu_slurp(path, NULL);
	assert_non_null(strstr(data, "From bob@x "));
	assert_non_null(strstr(data, "\nReturn-Path: <bob@x>\nSubject: one\n\n"
	    ">From here\n>>From there\n\nFrom MAILER-DAEMON "));
	assert_non_null(strstr(data, "\nReturn-Path: <>\nno lf\n\n"));
	assert_null(strchr(data, '\r'));	/* an mbox is LF-only */
	assert_int_equal(ops->open(&st, &p, &idx, err), STORE_OK);
	assert_int_equal(idx.count, 2);
	assert_int_equal(idx.msgs[0].size, strlen("Return-Path: <bob@x>\n") +
	    strlen(m1) + 5);	/* five LFs counted as CRLF */
	ops->close(&st, &idx);
	close(fd1);
	close(fd2);
}

static void
test_mbox_killed_append_is_cut_by_the_next_lock_holder(void **state)
{
	struct fixture *f = *state;
	const struct store_ops *ops = store_lookup("mbox");
	char path[256], journal[300], line[64], err[ERR_LEN];
	struct store_params p = { .path = path, .mboxrd = true, .lock_wait = 1 };
	struct store_delivery d = { 0 };
	struct store_index idx;
	struct store *st;
	struct stat sb;
	size_t len;
	int fd = memfd_with("Subject: a\n\nA\n", 14), t;

	snprintf(path, sizeof(path), "%s/alice", f->root);
	snprintf(journal, sizeof(journal), "%s/.alice.postino-append", f->root);
	assert_int_equal(ops->append(&p, fd, &d, err), STORE_OK);
	assert_int_equal(stat(path, &sb), 0);
	assert_int_equal(access(journal, F_OK), -1);
	/* What a kill -9 half-way leaves: the journal and a partial tail. */
	snprintf(line, sizeof(line), "%llu %lld\n",
	    (unsigned long long)sb.st_ino, (long long)sb.st_size);
	t = open(journal, O_WRONLY | O_CREAT, 0600);
	assert_int_equal(write(t, line, strlen(line)), (ssize_t)strlen(line));
	close(t);
	t = open(path, O_WRONLY | O_APPEND);
	assert_int_equal(write(t, "From x Thu Jan  1 00:00:00 2026\nSubj", 36),
	    36);
	close(t);
	/* A POP3 session's open cuts it before the scan. */
	assert_int_equal(ops->open(&st, &p, &idx, err), STORE_OK);
	assert_int_equal(idx.count, 1);
	ops->close(&st, &idx);
	tu_slurp(path, &len);
	assert_int_equal(len, (size_t)sb.st_size);
	assert_int_equal(access(journal, F_OK), -1);
	/* The same from the next delivery; a journal for another file is
	 * dropped without cutting. */
	t = open(journal, O_WRONLY | O_CREAT, 0600);
	assert_int_equal(write(t, "1 0\n", 4), 4);
	close(t);
	assert_int_equal(ops->append(&p, fd, &d, err), STORE_OK);
	assert_int_equal(ops->open(&st, &p, &idx, err), STORE_OK);
	assert_int_equal(idx.count, 2);
	ops->close(&st, &idx);
	close(fd);
}

/*
 * A killed append's partial message, and after it a message another
 * program (an MTA) appended under the locks: the recovery must not cut the
 * MTA's message with ours (it used to truncate to the journal's size).
 */
static void
test_mbox_recovery_keeps_a_message_appended_after_the_partial_one(
    void **state)
{
	struct fixture *f = *state;
	const struct store_ops *ops = store_lookup("mbox");
	static const char partial[] = "\nFrom x Thu Jan  1 00:00:00 2026\n"
	    "Subject: killed\n\nhalf of it\n>From quoted\nFrom";
	static const char mta[] = "\n\nFrom mta@example.org Thu Jan  1 "
	    "00:00:01 2026\nSubject: from the MTA\n\nkeep me\n\n";
	char path[256], journal[300], line[64], err[ERR_LEN], *data;
	struct store_params p = { .path = path, .mboxrd = true, .lock_wait = 1 };
	struct store_delivery d = { 0 };
	struct store_index idx;
	struct store *st;
	struct stat sb;
	size_t len;
	int fd = memfd_with("Subject: a\n\nA\n", 14), t;

	snprintf(path, sizeof(path), "%s/alice", f->root);
	snprintf(journal, sizeof(journal), "%s/.alice.postino-append", f->root);
	assert_int_equal(ops->append(&p, fd, &d, err), STORE_OK);
	assert_int_equal(stat(path, &sb), 0);
	snprintf(line, sizeof(line), "%llu %lld\n",
	    (unsigned long long)sb.st_ino, (long long)sb.st_size);
	t = open(journal, O_WRONLY | O_CREAT, 0600);
	assert_int_equal(write(t, line, strlen(line)), (ssize_t)strlen(line));
	close(t);
	t = open(path, O_WRONLY | O_APPEND);
	assert_int_equal(write(t, partial, strlen(partial)),
	    (ssize_t)strlen(partial));
	assert_int_equal(write(t, mta, strlen(mta)), (ssize_t)strlen(mta));
	close(t);
	assert_int_equal(ops->open(&st, &p, &idx, err), STORE_OK);
	ops->close(&st, &idx);
	data = tu_slurp(path, &len);
	assert_int_equal(len, (size_t)sb.st_size + strlen(partial) +
	    strlen(mta));
	assert_non_null(memmem(data, len, "keep me", 7));
	assert_int_equal(access(journal, F_OK), -1);
	close(fd);
}

/*
 * A sender cannot choose its UIDL in an mbox (it could take another
 * message's, and hide behind it once that one is deleted); a migration
 * keeps the UIDL it gives, and one an mbox cannot keep is refused with
 * nothing written.
 */
static void
test_mbox_append_uidl_is_ours_not_the_senders(void **state)
{
	struct fixture *f = *state;
	const struct store_ops *ops = store_lookup("mbox");
	static const char m[] = "X-UIDL: victim\nSubject: s\n\nbody\n";
	char path[256], err[ERR_LEN], *data;
	struct store_params p = { .path = path, .mboxrd = true, .lock_wait = 1 };
	struct store_delivery d = { 0 };
	struct store_index idx;
	struct store *st;
	size_t len, len2;
	int fd = memfd_with(m, strlen(m));

	snprintf(path, sizeof(path), "%s/alice", f->root);
	assert_int_equal(ops->append(&p, fd, &d, err), STORE_OK);
	d.uidl = "migrated.1";
	assert_int_equal(ops->append(&p, fd, &d, err), STORE_OK);
	assert_int_equal(ops->open(&st, &p, &idx, err), STORE_OK);
	assert_int_equal(idx.count, 2);
	assert_string_not_equal(idx.msgs[0].uidl, "victim");
	assert_string_equal(idx.msgs[1].uidl, "migrated.1");
	/* The kept header counts in the POP3 size, CRLF and all. */
	assert_int_equal(idx.msgs[1].size, idx.msgs[0].size +
	    strlen("X-UIDL: migrated.1\r\n"));
	ops->close(&st, &idx);
	data = tu_slurp(path, &len);
	assert_null(memmem(data, len, "victim", 6));
	d.uidl = "has space";
	assert_int_equal(ops->append(&p, fd, &d, err), STORE_PERMFAIL);
	assert_non_null(strstr(err, "X-UIDL"));
	d.uidl = "";
	assert_int_equal(ops->append(&p, fd, &d, err), STORE_PERMFAIL);
	(void)tu_slurp(path, &len2);
	assert_int_equal(len2, len);
	close(fd);
}

/*
 * The mbox append in steps (mbox_append.h), as postino's delivery uses
 * it: the token proves a whole append after a kill; one whose journal was
 * still there is cut by the store (not delivered, fetched again); a
 * partial one without the message to compare is left alone.
 */
static void
test_mbox_token_proves_an_append_after_a_kill(void **state)
{
	struct fixture *f = *state;
	static const char m[] = "Return-Path: <s@x>\nSubject: s\n\nFrom b\n";
	char path[256], journal[300], line[64], err[ERR_LEN];
	char token[STORE_MBOX_TOKEN_MAX];
	struct store_params p = { .path = path, .mboxrd = true, .lock_wait = 1 };
	struct store_delivery d = { 0 };
	struct store_mbox_txn t;
	unsigned long long old, len;
	struct stat sb;
	int fd = memfd_with(m, strlen(m)), j;

	snprintf(path, sizeof(path), "%s/alice", f->root);
	snprintf(journal, sizeof(journal), "%s/.alice.postino-append", f->root);
	assert_int_equal(store_mbox_ops.append(&p, fd, &d, err), STORE_OK);
	assert_int_equal(store_mbox_begin(&t, &p, "s@x", err), STORE_OK);
	assert_int_equal(store_mbox_token(&t, fd, &d, token, sizeof(token),
	    err), 0);
	assert_int_equal(sscanf(token, "%llu %llu", &old, &len), 2);
	assert_int_equal(old, (unsigned long long)t.old_size);
	assert_non_null(strstr(token, " From s@x "));
	assert_int_equal(store_mbox_write(&t, fd, &d, err), STORE_OK);
	store_mbox_end(&t);
	assert_int_equal(stat(path, &sb), 0);
	assert_int_equal((unsigned long long)sb.st_size, old + len);
	assert_int_equal(store_mbox_prove(&p, -1, &d, token, err), 1);
	/* Killed before its journal was removed: cut, so not delivered. */
	snprintf(line, sizeof(line), "%llu %llu\n",
	    (unsigned long long)sb.st_ino, old);
	j = open(journal, O_WRONLY | O_CREAT, 0600);
	assert_int_equal(write(j, line, strlen(line)), (ssize_t)strlen(line));
	close(j);
	assert_int_equal(store_mbox_prove(&p, fd, &d, token, err), 0);
	assert_int_equal(stat(path, &sb), 0);
	assert_int_equal((unsigned long long)sb.st_size, old);
	/* No journal (a spool directory we may not write) and no message to
	 * compare: a partial tail is not ours to judge. */
	j = open(path, O_WRONLY | O_APPEND);
	assert_int_equal(write(j, "From s@x", 8), 8);
	close(j);
	assert_int_equal(store_mbox_prove(&p, -1, &d, token, err), 2);
	assert_non_null(strstr(err, "left as it is"));
	/* With it: proven a prefix of this very append, and cut. */
	assert_int_equal(store_mbox_prove(&p, fd, &d, token, err), 0);
	assert_int_equal(stat(path, &sb), 0);
	assert_int_equal((unsigned long long)sb.st_size, old);
	assert_int_equal(store_mbox_prove(&p, fd, &d, "1 2 x 0 From", err), -1);
	close(fd);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_copy_adds_headers_and_keeps_the_rest),
		cmocka_unit_test(test_copy_crlf_mode_and_null_sender),
		cmocka_unit_test(test_copy_mboxrd_escapes_from_lines_only),
		cmocka_unit_test(test_copy_large_message_in_blocks),
		cmocka_unit_test(test_copy_mbox_drops_x_uidl_fields),
		cmocka_unit_test_setup_teardown(
		    test_maildir_append_creates_and_names_with_sizes, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(
		    test_maildir_append_during_session_waits_for_next, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(
		    test_maildir_probe_finds_a_delivery_by_its_token, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(
		    test_maildir_append_refuses_a_file_as_mailbox, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(
		    test_maildir_append_unwritable_is_temporary, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(
		    test_mbox_append_from_line_escaping_and_separator, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(
		    test_mbox_killed_append_is_cut_by_the_next_lock_holder,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_mbox_recovery_keeps_a_message_appended_after_the_partial_one,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_mbox_append_uidl_is_ours_not_the_senders, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(
		    test_mbox_token_proves_an_append_after_a_kill, setup,
		    teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
