/*
 * mbox backend: parsing and unescaping, sizes, UIDL stability, locking,
 * crash-safe commit. Every test works in its own mkdtemp directory.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "testutil.h"
#include "../../src/lib/crlf.h"
#include "../../src/store/store.h"

struct fixture {
	char	 root[64];
	char	 mbox[128];
};

static int
setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	assert_int_equal(tu_tmpdir_make(f->root, sizeof(f->root), "store_mbox"),
	    0);
	snprintf(f->mbox, sizeof(f->mbox), "%s/alice", f->root);
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

static void
write_file(const char *path, const void *data, size_t len)
{
	FILE *fp = fopen(path, "w");

	assert_non_null(fp);
	assert_int_equal(fwrite(data, 1, len, fp), len);
	assert_int_equal(fclose(fp), 0);
}

static void
append_file(const char *path, const char *data)
{
	FILE *fp = fopen(path, "a");

	assert_non_null(fp);
	assert_int_equal(fputs(data, fp) >= 0, 1);
	assert_int_equal(fclose(fp), 0);
}

/* Whole file, malloc'd, NUL-terminated; *len_r its length. */
static char *
slurp(const char *path, size_t *len_r)
{
	struct stat st;
	char *buf;
	FILE *fp = fopen(path, "r");

	assert_non_null(fp);
	assert_int_equal(fstat(fileno(fp), &st), 0);
	buf = malloc((size_t)st.st_size + 1);
	assert_non_null(buf);
	assert_int_equal(fread(buf, 1, (size_t)st.st_size, fp), st.st_size);
	buf[st.st_size] = '\0';
	fclose(fp);
	*len_r = (size_t)st.st_size;
	return buf;
}

static struct store_params
params(const struct fixture *f, bool mboxrd)
{
	return (struct store_params){
		.path = f->mbox, .max_messages = 100000, .max_bytes = 1 << 30,
		.mboxrd = mboxrd, .dotlock_stale = 300, .lock_wait = 1,
	};
}

static enum store_result
open_mb(const struct fixture *f, bool mboxrd, struct store **st,
    struct store_index *idx)
{
	struct store_params p = params(f, mboxrd);
	char err[ERR_LEN];
	enum store_result res = store_mbox_ops.open(st, &p, idx, err);

	if (res != STORE_OK)
		print_message("open: %s\n", err);
	return res;
}

/* Message n through the reader, step bytes per read() call; malloc'd. */
static char *
read_msg(struct store *st, unsigned int n, size_t step, size_t *len_r)
{
	struct store_reader *r;
	char err[ERR_LEN];
	size_t used = 0, cap = 256;
	char *buf = malloc(cap);
	ssize_t got;

	assert_non_null(buf);
	assert_int_equal(store_mbox_ops.read_open(st, n, &r, err), STORE_OK);
	for (;;) {
		if (cap - used < step) {
			cap = cap * 2 + step;
			buf = realloc(buf, cap);
			assert_non_null(buf);
		}
		got = store_mbox_ops.read(r, buf + used, step);
		assert_true(got >= 0);
		if (got == 0)
			break;
		used += (size_t)got;
	}
	store_mbox_ops.read_close(&r);
	assert_null(r);
	*len_r = used;
	return buf;
}

static uint64_t
crlf_of(const char *s, size_t len)
{
	struct crlf_size cs;
	uint64_t size;

	crlf_size_init(&cs);
	crlf_size_feed(&cs, s, len);
	assert_int_equal(crlf_size_finish(&cs, &size), 0);
	return size;
}

/*
 * Index and every message's content (read whole and one byte at a time)
 * match want[]; sizes are the CRLF size of the unescaped content.
 */
static void
check_messages(const struct fixture *f, bool mboxrd,
    const char *const *want, unsigned int nwant)
{
	struct store *st;
	struct store_index idx;
	static const size_t steps[] = { 1, 3, 65536 };

	assert_int_equal(open_mb(f, mboxrd, &st, &idx), STORE_OK);
	assert_int_equal(idx.count, nwant);
	for (unsigned int i = 0; i < nwant; i++) {
		assert_int_equal(idx.msgs[i].size,
		    crlf_of(want[i], strlen(want[i])));
		for (size_t s = 0; s < 3; s++) {
			size_t len;
			char *got = read_msg(st, i + 1, steps[s], &len);

			assert_int_equal(len, strlen(want[i]));
			assert_memory_equal(got, want[i], len);
			free(got);
		}
	}
	store_mbox_ops.close(&st, &idx);
}

static void
test_messages_are_split_and_unescaped(void **state)
{
	static const struct {
		const char *mbox;
		bool mboxrd;
		unsigned int n;
		const char *msgs[3];
	} cases[] = {
		{ "", false, 0, { NULL } },
		{ "From a@b Mon Jan  1 00:00:00 2024\nSubject: x\n\nbody\n",
		  false, 1, { "Subject: x\n\nbody\n" } },
		{ "From a\nS: 1\n\nb1\n\nFrom b\nS: 2\n\nb2\n\n", false, 2,
		  { "S: 1\n\nb1\n", "S: 2\n\nb2\n" } },
		{ "From a\n\n>From x\n>>From y\n>>>From z\n>Fro\n>\n"
		  "From in body\n>From", false, 1,
		  { "\nFrom x\n>>From y\n>>>From z\n>Fro\n>\nFrom in body\n"
		    ">From" } },
		{ "From a\n\n>From x\n>>From y\n>>>From z\n>Fro\n>\n"
		  "From in body\n>From", true, 1,
		  { "\nFrom x\n>From y\n>>From z\n>Fro\n>\nFrom in body\n"
		    ">From" } },
		{ "From a\nS: 1\n\nlast", false, 1, { "S: 1\n\nlast" } },
		{ "junk\n\nFrom a\nX: 1\n", false, 1, { "X: 1\n" } },
		{ "From a\r\nS: 1\r\n\r\nb\r\n\r\nFrom b\r\nS: 2\r\n", false, 2,
		  { "S: 1\r\n\r\nb\r\n", "S: 2\r\n" } },
		{ "From a\n\nFrom b\n\n", false, 2, { "", "" } },
		{ "From a\nX: 1\nFrom b\n", false, 1, { "X: 1\nFrom b\n" } },
		{ "From a\nX: 1\n\n\n\nFrom b\n", false, 2,
		  { "X: 1\n\n\n", "" } },
		{ "From a", false, 1, { "" } },
		{ "From x\nA: \0b\n\n\0\n", false, 1, { "A: " } },
	};
	struct fixture *f = *state;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		size_t len = strlen(cases[i].mbox);

		if (i == sizeof(cases) / sizeof(cases[0]) - 1)
			len = 16;	/* NUL bytes: nothing trusts strings */
		write_file(f->mbox, cases[i].mbox, len);
		if (i == sizeof(cases) / sizeof(cases[0]) - 1) {
			struct store *st;
			struct store_index idx;
			size_t got;
			char *m;

			assert_int_equal(open_mb(f, false, &st, &idx),
			    STORE_OK);
			assert_int_equal(idx.count, 1);
			m = read_msg(st, 1, 1, &got);
			assert_int_equal(got, 9);
			assert_memory_equal(m, "A: \0b\n\n\0\n", 9);
			assert_int_equal(idx.msgs[0].size, 12);
			free(m);
			store_mbox_ops.close(&st, &idx);
			continue;
		}
		check_messages(f, cases[i].mboxrd, cases[i].msgs, cases[i].n);
	}
}

static void
test_missing_mbox_is_an_empty_mailbox(void **state)
{
	struct fixture *f = *state;
	struct store *st;
	struct store_index idx;
	char err[ERR_LEN];

	assert_int_equal(open_mb(f, false, &st, &idx), STORE_OK);
	assert_int_equal(idx.count, 0);
	assert_int_equal(store_mbox_ops.commit(st, &idx, err), STORE_OK);
	store_mbox_ops.close(&st, &idx);
	assert_int_equal(access(f->mbox, F_OK), -1);
}

/* Lines and escapes that straddle the scanner's 64 KiB read blocks. */
static void
test_block_boundaries_do_not_change_parsing(void **state)
{
	struct fixture *f = *state;

	for (size_t shift = 0; shift < 8; shift++) {
		size_t body = 65536 - 7 - 4 - shift, len;
		char *mbox, *want[2];
		size_t pos = 0;

		mbox = malloc(70000 + 64);
		want[0] = malloc(70000);
		want[1] = malloc(64);
		assert_non_null(mbox);
		pos += (size_t)sprintf(mbox, "From a\n");
		memcpy(mbox + pos, "X: ", 3);
		memset(mbox + pos + 3, 'h', body - 3);
		pos += body;
		pos += (size_t)sprintf(mbox + pos,
		    "\n\n>From esc\n\nFrom b\nY: 2\n");
		len = pos;
		snprintf(want[0], 70000, "X: %.*s\n\nFrom esc\n",
		    (int)(body - 3), mbox + 10);
		strcpy(want[1], "Y: 2\n");
		write_file(f->mbox, mbox, len);
		check_messages(f, false, (const char *const *)want, 2);
		free(mbox);
		free(want[0]);
		free(want[1]);
	}
}

static void
test_overlong_header_lines_are_hashed_not_rejected(void **state)
{
	struct fixture *f = *state;
	struct store *st;
	struct store_index idx;
	size_t n = 1 << 20;
	char *mbox = malloc(n + 64), uidl[STORE_UIDL_MAX + 1];

	assert_non_null(mbox);
	strcpy(mbox, "From a\nSubject: ");
	memset(mbox + 16, 'a', n);
	strcpy(mbox + 16 + n, "\n\nbody\n");
	write_file(f->mbox, mbox, strlen(mbox));
	assert_int_equal(open_mb(f, false, &st, &idx), STORE_OK);
	assert_int_equal(idx.count, 1);
	assert_int_equal(idx.msgs[0].size, 9 + n + 2 + 2 + 6);
	strcpy(uidl, idx.msgs[0].uidl);
	store_mbox_ops.close(&st, &idx);
	/* A different byte far past any buffer changes the digest. */
	mbox[16 + n - 1] = 'b';
	write_file(f->mbox, mbox, strlen(mbox));
	assert_int_equal(open_mb(f, false, &st, &idx), STORE_OK);
	assert_string_not_equal(idx.msgs[0].uidl, uidl);
	store_mbox_ops.close(&st, &idx);
	free(mbox);
}

/*
 * Hostile mboxes built from the tokens that matter to the parser: every
 * size equals the CRLF size of what the reader yields, in any chunking.
 */
static void
test_random_mboxes_sizes_match_reader_output(void **state)
{
	static const char *const tok[] = {
		"From ", ">", ">>", "\n", "\r", "\r\n", "\n\n", "X-UIDL: a",
		"Status: O", ":", " ", "a", "Fro", "\t", "\0",
	};
	struct fixture *f = *state;
	char buf[4096];

	srand(4242);
	for (int iter = 0; iter < 400; iter++) {
		size_t len = 0;
		int ntok = rand() % 120;

		for (int t = 0; t < ntok; t++) {
			size_t k = (size_t)rand() % (sizeof(tok) / sizeof(*tok));
			size_t tl = k == 14 ? 1 : strlen(tok[k]);

			memcpy(buf + len, tok[k], tl);
			len += tl;
		}
		write_file(f->mbox, buf, len);
		for (int rd = 0; rd < 2; rd++) {
			struct store *st;
			struct store_index idx;
			uint64_t total = 0;

			assert_int_equal(open_mb(f, rd, &st, &idx), STORE_OK);
			for (unsigned int i = 0; i < idx.count; i++) {
				size_t n1, n2;
				char *m1 = read_msg(st, i + 1, 1, &n1);
				char *m2 = read_msg(st, i + 1, 7, &n2);

				assert_int_equal(n1, n2);
				assert_memory_equal(m1, m2, n1);
				assert_int_equal(idx.msgs[i].size,
				    crlf_of(m1, n1));
				assert_true(strlen(idx.msgs[i].uidl) >= 1);
				total += idx.msgs[i].size;
				free(m1);
				free(m2);
			}
			assert_int_equal(idx.total_size, total);
			store_mbox_ops.close(&st, &idx);
		}
	}
}

static const char three[] =
    "From alice@example.org Mon Jan  1 00:00:00 2024\n"
    "From: alice@example.org\nSubject: one\nMessage-ID: <1@x>\n\nbody 1\n\n"
    "From bob@example.org Mon Jan  1 00:00:01 2024\n"
    "From: bob@example.org\nSubject: two\nMessage-ID: <2@x>\n\nbody 2\n\n"
    "From carol@example.org Mon Jan  1 00:00:02 2024\n"
    "From: carol@example.org\nSubject: three\n\nbody 3\n";

static void
get_uidls(const struct fixture *f, char uidls[][STORE_UIDL_MAX + 1],
    unsigned int n)
{
	struct store *st;
	struct store_index idx;

	assert_int_equal(open_mb(f, false, &st, &idx), STORE_OK);
	assert_int_equal(idx.count, n);
	for (unsigned int i = 0; i < n; i++) {
		strcpy(uidls[i], idx.msgs[i].uidl);
		assert_int_equal(strlen(uidls[i]), 32);
	}
	store_mbox_ops.close(&st, &idx);
}

static void
test_uidl_is_stable_across_reopen_commit_and_mua_rewrites(void **state)
{
	struct fixture *f = *state;
	char a[3][STORE_UIDL_MAX + 1], b[3][STORE_UIDL_MAX + 1];
	struct store *st;
	struct store_index idx;
	char err[ERR_LEN];
	char *text;
	size_t len;

	write_file(f->mbox, three, strlen(three));
	get_uidls(f, a, 3);
	assert_string_not_equal(a[0], a[1]);
	assert_string_not_equal(a[1], a[2]);
	get_uidls(f, b, 3);
	for (int i = 0; i < 3; i++)
		assert_string_equal(a[i], b[i]);

	/* An MUA adds Status/X-Status/Content-Length and CRLF line ends. */
	text = malloc(4096);
	assert_non_null(text);
	snprintf(text, 4096,
	    "From alice@example.org Mon Jan  1 00:00:00 2024\r\n"
	    "From: alice@example.org\r\nSubject: one\r\nStatus: RO\r\n"
	    "Message-ID: <1@x>\r\nX-Status: A\r\nContent-Length: 7\r\n"
	    "  continued\r\n\r\nbody 1\r\n\r\n%s",
	    strstr(three, "From bob"));
	write_file(f->mbox, text, strlen(text));
	get_uidls(f, b, 3);
	for (int i = 0; i < 3; i++)
		assert_string_equal(a[i], b[i]);
	free(text);

	/* Deleting the first one keeps the others' UIDLs. */
	assert_int_equal(open_mb(f, false, &st, &idx), STORE_OK);
	idx.msgs[0].deleted = true;
	assert_int_equal(store_mbox_ops.commit(st, &idx, err), STORE_OK);
	store_mbox_ops.close(&st, &idx);
	get_uidls(f, b, 2);
	assert_string_equal(b[0], a[1]);
	assert_string_equal(b[1], a[2]);
	text = slurp(f->mbox, &len);
	assert_string_equal(text, strstr(three, "From bob"));
	free(text);
}

static void
test_x_uidl_is_honoured_and_duplicates_get_suffixes(void **state)
{
	static const char mbox[] =
	    "From a\nX-UIDL:  abc123 \nSubject: 1\n\n1\n\n"
	    "From a\nX-UIDL: bad uidl with spaces\nSubject: 2\n\n2\n\n"
	    "From a\nSubject: same\n\nbody\n\n"
	    "From a\nSubject: same\n\nother body\n\n"
	    "From a\nSubject: same\nStatus: O\n\nthird\n\n"
	    "From a\nX-UIDL: abc123\n\ndup\n";
	struct fixture *f = *state;
	struct store *st;
	struct store_index idx;

	write_file(f->mbox, mbox, strlen(mbox));
	assert_int_equal(open_mb(f, false, &st, &idx), STORE_OK);
	assert_int_equal(idx.count, 6);
	assert_string_equal(idx.msgs[0].uidl, "abc123");
	assert_int_equal(strlen(idx.msgs[1].uidl), 32);
	assert_int_equal(strlen(idx.msgs[2].uidl), 32);
	assert_string_not_equal(idx.msgs[1].uidl, idx.msgs[2].uidl);
	assert_int_equal(strncmp(idx.msgs[3].uidl, idx.msgs[2].uidl, 32), 0);
	assert_string_equal(idx.msgs[3].uidl + 32, "-2");
	assert_string_equal(idx.msgs[4].uidl + 32, "-3");
	assert_string_equal(idx.msgs[5].uidl, "abc123-2");
	store_mbox_ops.close(&st, &idx);
}

static void
test_mail_arriving_during_session_survives_commit(void **state)
{
	static const char later[] = "From dave\nSubject: later\n\nlate\n";
	struct fixture *f = *state;
	struct store *st;
	struct store_index idx;
	struct stat before, after;
	char err[ERR_LEN], *text, expect[2048];
	size_t len;
	DIR *d;
	struct dirent *de;
	int files = 0;

	write_file(f->mbox, three, strlen(three));
	assert_int_equal(chmod(f->mbox, 0640), 0);
	assert_int_equal(stat(f->mbox, &before), 0);
	assert_int_equal(open_mb(f, false, &st, &idx), STORE_OK);
	assert_int_equal(idx.count, 3);
	append_file(f->mbox, "\n");
	append_file(f->mbox, later);
	idx.msgs[1].deleted = true;
	assert_int_equal(store_mbox_ops.commit(st, &idx, err), STORE_OK);
	store_mbox_ops.close(&st, &idx);

	assert_int_equal(stat(f->mbox, &after), 0);
	assert_true(before.st_ino != after.st_ino);
	assert_int_equal(after.st_mode & 07777, 0640);
	text = slurp(f->mbox, &len);
	snprintf(expect, sizeof(expect), "%.*s%s\n%s",
	    (int)(strstr(three, "From bob") - three), three,
	    strstr(three, "From carol"), later);
	assert_string_equal(text, expect);
	free(text);

	/* Only the mbox and our session lock remain: no temp, no dotlock. */
	d = opendir(f->root);
	assert_non_null(d);
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.' && (de->d_name[1] == '\0' ||
		    strcmp(de->d_name, "..") == 0))
			continue;
		files++;
		assert_true(strcmp(de->d_name, "alice") == 0 ||
		    strcmp(de->d_name, ".alice.postino-lock") == 0);
	}
	closedir(d);
	assert_int_equal(files, 2);

	assert_int_equal(open_mb(f, false, &st, &idx), STORE_OK);
	assert_int_equal(idx.count, 3);
	store_mbox_ops.close(&st, &idx);
}

static void
test_commit_without_deletions_changes_nothing(void **state)
{
	struct fixture *f = *state;
	struct store *st;
	struct store_index idx;
	struct stat before, after;
	char err[ERR_LEN];

	write_file(f->mbox, three, strlen(three));
	assert_int_equal(stat(f->mbox, &before), 0);
	assert_int_equal(open_mb(f, false, &st, &idx), STORE_OK);
	assert_int_equal(store_mbox_ops.commit(st, &idx, err), STORE_OK);
	store_mbox_ops.close(&st, &idx);
	assert_int_equal(stat(f->mbox, &after), 0);
	assert_int_equal(before.st_ino, after.st_ino);
}

static void
test_deleting_everything_leaves_an_empty_file_with_its_mode(void **state)
{
	struct fixture *f = *state;
	struct store *st;
	struct store_index idx;
	struct stat sb;
	char err[ERR_LEN];

	write_file(f->mbox, three, strlen(three));
	assert_int_equal(chmod(f->mbox, 0660), 0);
	assert_int_equal(open_mb(f, false, &st, &idx), STORE_OK);
	for (unsigned int i = 0; i < idx.count; i++)
		idx.msgs[i].deleted = true;
	assert_int_equal(store_mbox_ops.commit(st, &idx, err), STORE_OK);
	store_mbox_ops.close(&st, &idx);
	assert_int_equal(stat(f->mbox, &sb), 0);
	assert_int_equal(sb.st_size, 0);
	assert_int_equal(sb.st_mode & 07777, 0660);
}

static void
test_read_after_mbox_replaced_or_truncated_is_changed(void **state)
{
	struct fixture *f = *state;
	struct store *st;
	struct store_index idx;
	struct store_reader *r;
	char err[ERR_LEN], other[256];

	write_file(f->mbox, three, strlen(three));
	assert_int_equal(open_mb(f, false, &st, &idx), STORE_OK);
	assert_int_equal(truncate(f->mbox, 10), 0);
	assert_int_equal(store_mbox_ops.read_open(st, 1, &r, err),
	    STORE_CHANGED);
	idx.msgs[0].deleted = true;
	assert_int_equal(store_mbox_ops.commit(st, &idx, err), STORE_CHANGED);
	store_mbox_ops.close(&st, &idx);

	write_file(f->mbox, three, strlen(three));
	assert_int_equal(open_mb(f, false, &st, &idx), STORE_OK);
	snprintf(other, sizeof(other), "%s/other", f->root);
	write_file(other, three, strlen(three));
	assert_int_equal(rename(other, f->mbox), 0);
	assert_int_equal(store_mbox_ops.read_open(st, 2, &r, err),
	    STORE_CHANGED);
	assert_null(r);
	assert_int_equal(store_mbox_ops.read_open(st, 4, &r, err),
	    STORE_PERMFAIL);
	store_mbox_ops.close(&st, &idx);

	/* Rewritten in place with shifted offsets: the From_ check sees it. */
	assert_int_equal(open_mb(f, false, &st, &idx), STORE_OK);
	{
		char *shifted = malloc(strlen(three) + 2);

		assert_non_null(shifted);
		shifted[0] = 'X';
		strcpy(shifted + 1, three);
		write_file(f->mbox, shifted, strlen(shifted));
		free(shifted);
	}
	assert_int_equal(store_mbox_ops.read_open(st, 2, &r, err),
	    STORE_CHANGED);
	store_mbox_ops.close(&st, &idx);
}

static void
test_second_open_in_same_process_is_locked_until_close(void **state)
{
	struct fixture *f = *state;
	struct store *st, *st2;
	struct store_index idx, idx2;

	write_file(f->mbox, three, strlen(three));
	assert_int_equal(open_mb(f, false, &st, &idx), STORE_OK);
	assert_int_equal(open_mb(f, false, &st2, &idx2), STORE_LOCKED);
	assert_null(st2);
	store_mbox_ops.close(&st, &idx);
	assert_int_equal(open_mb(f, false, &st2, &idx2), STORE_OK);
	store_mbox_ops.close(&st2, &idx2);
}

static void
test_fresh_dotlock_of_a_dead_process_is_removed(void **state)
{
	struct fixture *f = *state;
	struct store *st;
	struct store_index idx;
	char lock[256], pidline[32];
	pid_t dead = fork();

	assert_true(dead >= 0);
	if (dead == 0)
		_exit(0);
	assert_int_equal(waitpid(dead, NULL, 0), dead);
	write_file(f->mbox, three, strlen(three));
	snprintf(lock, sizeof(lock), "%s.lock", f->mbox);
	snprintf(pidline, sizeof(pidline), "%ld\n", (long)dead);
	write_file(lock, pidline, strlen(pidline));
	assert_int_equal(open_mb(f, false, &st, &idx), STORE_OK);
	assert_int_equal(idx.count, 3);
	store_mbox_ops.close(&st, &idx);
	assert_int_equal(access(lock, F_OK), -1);
}

static void
test_stale_dotlock_removed_fresh_one_waits_then_tempfails(void **state)
{
	struct fixture *f = *state;
	struct store *st;
	struct store_index idx;
	struct store_params p = params(f, false);
	struct timespec t0, t1;
	struct timespec old[2] = { { 1000, 0 }, { 1000, 0 } };
	char lock[256], err[ERR_LEN], pidline[32];
	double waited;

	write_file(f->mbox, three, strlen(three));
	snprintf(lock, sizeof(lock), "%s.lock", f->mbox);
	write_file(lock, "12345\n", 6);
	assert_int_equal(utimensat(AT_FDCWD, lock, old, 0), 0);
	assert_int_equal(open_mb(f, false, &st, &idx), STORE_OK);
	assert_int_equal(idx.count, 3);
	store_mbox_ops.close(&st, &idx);
	assert_int_equal(access(lock, F_OK), -1);

	/* A fresh dotlock of a live process (our parent) must be waited for. */
	snprintf(pidline, sizeof(pidline), "%ld\n", (long)getppid());
	write_file(lock, pidline, strlen(pidline));
	p.lock_wait = 1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	assert_int_equal(store_mbox_ops.open(&st, &p, &idx, err),
	    STORE_BUSY);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	waited = (double)(t1.tv_sec - t0.tv_sec) +
	    (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	assert_true(waited >= 1.0 && waited < 5.0);
	assert_non_null(strstr(err, "locked by another program"));
	assert_null(st);
	/* Someone else's lock is left alone. */
	assert_int_equal(access(lock, F_OK), 0);
	assert_int_equal(unlink(lock), 0);
	/* The session lock was released on failure. */
	assert_int_equal(open_mb(f, false, &st, &idx), STORE_OK);
	store_mbox_ops.close(&st, &idx);
}

static void
test_fcntl_lock_of_another_process_makes_open_busy(void **state)
{
	struct fixture *f = *state;
	struct store *st;
	struct store_index idx;
	int ready[2], done[2], status;
	pid_t pid;
	char c;

	write_file(f->mbox, three, strlen(three));
	assert_int_equal(pipe(ready), 0);
	assert_int_equal(pipe(done), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET };
		int fd = open(f->mbox, O_RDWR);

		if (fd == -1 || fcntl(fd, F_SETLK, &fl) == -1)
			_exit(1);
		if (write(ready[1], "x", 1) != 1 || read(done[0], &c, 1) != 1)
			_exit(1);
		_exit(0);
	}
	assert_int_equal(read(ready[0], &c, 1), 1);
	assert_int_equal(open_mb(f, false, &st, &idx), STORE_BUSY);
	assert_int_equal(write(done[1], "x", 1), 1);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	close(ready[0]);
	close(ready[1]);
	close(done[0]);
	close(done[1]);
	/* The dotlock we took while waiting is gone. */
	assert_int_equal(open_mb(f, false, &st, &idx), STORE_OK);
	store_mbox_ops.close(&st, &idx);
}

static void
test_caps_on_messages_and_bytes_are_permanent_failures(void **state)
{
	struct fixture *f = *state;
	struct store *st;
	struct store_index idx;
	struct store_params p = params(f, false);
	char err[ERR_LEN];

	write_file(f->mbox, three, strlen(three));
	p.max_messages = 2;
	assert_int_equal(store_mbox_ops.open(&st, &p, &idx, err),
	    STORE_PERMFAIL);
	assert_non_null(strstr(err, "messages"));
	p.max_messages = 3;
	p.max_bytes = 50;
	assert_int_equal(store_mbox_ops.open(&st, &p, &idx, err),
	    STORE_PERMFAIL);
	assert_non_null(strstr(err, "bytes"));
	p.max_bytes = 1000;
	assert_int_equal(store_mbox_ops.open(&st, &p, &idx, err), STORE_OK);
	store_mbox_ops.close(&st, &idx);
}

static void
test_stale_commit_temp_file_is_removed_at_open(void **state)
{
	struct fixture *f = *state;
	struct store *st;
	struct store_index idx;
	char tmp[256];

	write_file(f->mbox, three, strlen(three));
	snprintf(tmp, sizeof(tmp), "%s/.alice.postino-new.99999", f->root);
	write_file(tmp, "partial", 7);
	assert_int_equal(open_mb(f, false, &st, &idx), STORE_OK);
	assert_int_equal(access(tmp, F_OK), -1);
	store_mbox_ops.close(&st, &idx);
}

/*
 * kill -9 a committing child at random moments: the mbox is always
 * exactly the old or exactly the new content.
 */
static void
test_kill_during_commit_leaves_old_or_new_mbox(void **state)
{
	struct fixture *f = *state;
	size_t nmsg = 3000, cap = nmsg * 200, oldlen = 0, newlen = 0, len;
	char *old = malloc(cap), *new = malloc(cap), *text, lock[256];
	int olds = 0, news = 0;

	assert_non_null(old);
	assert_non_null(new);
	for (size_t i = 0; i < nmsg; i++) {
		char m[200];
		int n = snprintf(m, sizeof(m), "From u%zu Mon Jan  1 2024\n"
		    "Subject: message %zu\n\n%s body %zu\n\n", i, i,
		    i % 7 == 0 ? ">From escaped" : "plain", i);

		memcpy(old + oldlen, m, (size_t)n);
		oldlen += (size_t)n;
		if (i % 2 == 0) {
			memcpy(new + newlen, m, (size_t)n);
			newlen += (size_t)n;
		}
	}
	snprintf(lock, sizeof(lock), "%s.lock", f->mbox);
	srand(12345);
	for (int iter = 0; iter < 25; iter++) {
		pid_t pid;
		int status;

		write_file(f->mbox, old, oldlen);
		pid = fork();
		assert_true(pid >= 0);
		if (pid == 0) {
			struct store *st;
			struct store_index idx;
			struct store_params p = params(f, false);
			char err[ERR_LEN];

			if (store_mbox_ops.open(&st, &p, &idx, err) != STORE_OK)
				_exit(2);
			for (unsigned int i = 0; i < idx.count; i++)
				idx.msgs[i].deleted = i % 2 == 1;
			_exit(store_mbox_ops.commit(st, &idx, err) == STORE_OK ?
			    0 : 3);
		}
		(void)usleep((useconds_t)(rand() % 20000));
		(void)kill(pid, SIGKILL);
		assert_int_equal(waitpid(pid, &status, 0), pid);
		if (WIFEXITED(status))
			assert_int_equal(WEXITSTATUS(status), 0);
		/* A killed child leaves its dotlock: stale for the MTA. */
		(void)unlink(lock);
		text = slurp(f->mbox, &len);
		if (len == oldlen && memcmp(text, old, len) == 0) {
			olds++;
		} else {
			assert_int_equal(len, newlen);
			assert_memory_equal(text, new, len);
			news++;
		}
		free(text);
	}
	print_message("kill test: %d old, %d new\n", olds, news);
	/* Whatever the child left behind, the next open cleans it up. */
	{
		struct store *st;
		struct store_index idx;
		DIR *d;
		struct dirent *de;

		assert_int_equal(open_mb(f, false, &st, &idx), STORE_OK);
		store_mbox_ops.close(&st, &idx);
		d = opendir(f->root);
		assert_non_null(d);
		while ((de = readdir(d)) != NULL)
			assert_null(strstr(de->d_name, "postino-new"));
		closedir(d);
	}
	free(old);
	free(new);
}

/*
 * An open session holds its index, not the 64 KiB read buffer the scan
 * needs (commit takes one again). Measured with glibc's mallinfo2; under
 * ASan it reads 0.
 */
static void
test_open_session_does_not_hold_the_read_buffer(void **state)
{
	struct fixture *f = *state;
	struct store *st;
	struct store_index idx;
	char err[ERR_LEN];
	size_t before;

	write_file(f->mbox, three, strlen(three));
	before = mallinfo2().uordblks;
	assert_int_equal(open_mb(f, false, &st, &idx), STORE_OK);
	assert_int_equal(idx.count, 3);
	assert_true(mallinfo2().uordblks - before < 32 * 1024);
	/* ... and commit still has one. */
	idx.msgs[0].deleted = true;
	assert_int_equal(store_mbox_ops.commit(st, &idx, err), STORE_OK);
	store_mbox_ops.close(&st, &idx);
	assert_int_equal(open_mb(f, false, &st, &idx), STORE_OK);
	assert_int_equal(idx.count, 2);
	store_mbox_ops.close(&st, &idx);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
		T(test_messages_are_split_and_unescaped),
		T(test_missing_mbox_is_an_empty_mailbox),
		T(test_block_boundaries_do_not_change_parsing),
		T(test_overlong_header_lines_are_hashed_not_rejected),
		T(test_random_mboxes_sizes_match_reader_output),
		T(test_uidl_is_stable_across_reopen_commit_and_mua_rewrites),
		T(test_x_uidl_is_honoured_and_duplicates_get_suffixes),
		T(test_mail_arriving_during_session_survives_commit),
		T(test_commit_without_deletions_changes_nothing),
		T(test_deleting_everything_leaves_an_empty_file_with_its_mode),
		T(test_read_after_mbox_replaced_or_truncated_is_changed),
		T(test_second_open_in_same_process_is_locked_until_close),
		T(test_stale_dotlock_removed_fresh_one_waits_then_tempfails),
		T(test_fresh_dotlock_of_a_dead_process_is_removed),
		T(test_fcntl_lock_of_another_process_makes_open_busy),
		T(test_caps_on_messages_and_bytes_are_permanent_failures),
		T(test_stale_commit_temp_file_is_removed_at_open),
		T(test_kill_during_commit_leaves_old_or_new_mbox),
		T(test_open_session_does_not_hold_the_read_buffer),
#undef T
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
