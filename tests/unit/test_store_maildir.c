/*
 * Maildir backend: sizes, size cache, new/ served in place, locking, commit, reads.
 * Every test works in its own mkdtemp directory.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "testutil.h"
#include "../../src/lib/crlf.h"
#include "../../src/store/store.h"

struct fixture {
	char	 root[64];
	char	 md[128];
};

static int
setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	assert_int_equal(tu_tmpdir_make(f->root, sizeof(f->root), "store_maildir"),
	    0);
	snprintf(f->md, sizeof(f->md), "%s/Maildir", f->root);
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
make_maildir(const struct fixture *f)
{
	char p[256];

	assert_int_equal(mkdir(f->md, 0700), 0);
	snprintf(p, sizeof(p), "%s/new", f->md);
	assert_int_equal(mkdir(p, 0700), 0);
	snprintf(p, sizeof(p), "%s/cur", f->md);
	assert_int_equal(mkdir(p, 0700), 0);
	snprintf(p, sizeof(p), "%s/tmp", f->md);
	assert_int_equal(mkdir(p, 0700), 0);
}

static void
put(const struct fixture *f, const char *sub, const char *name,
    const void *data, size_t len)
{
	char p[512];
	FILE *fp;

	snprintf(p, sizeof(p), "%s/%s/%s", f->md, sub, name);
	fp = fopen(p, "w");
	assert_non_null(fp);
	assert_int_equal(fwrite(data, 1, len, fp), len);
	assert_int_equal(fclose(fp), 0);
}

static bool
exists(const struct fixture *f, const char *sub, const char *name)
{
	char p[512];
	struct stat st;

	snprintf(p, sizeof(p), "%s/%s/%s", f->md, sub, name);
	return lstat(p, &st) == 0;
}

/* What another Maildir reader does: rename a message, e.g. new/ -> cur/. */
static void
move(const struct fixture *f, const char *sub, const char *name,
    const char *tosub, const char *toname)
{
	char a[512], b[512];

	snprintf(a, sizeof(a), "%s/%s/%s", f->md, sub, name);
	snprintf(b, sizeof(b), "%s/%s/%s", f->md, tosub, toname);
	assert_int_equal(rename(a, b), 0);
}

static struct store_params
params(const struct fixture *f)
{
	return (struct store_params){
		.path = f->md, .max_messages = 1000, .max_bytes = 1 << 30,
	};
}

static enum store_result
open_md(const struct fixture *f, struct store **st, struct store_index *idx)
{
	struct store_params p = params(f);
	char err[ERR_LEN];

	return store_maildir_ops.open(st, &p, idx, err);
}

/* Whole message through the reader, len bytes per read() call. */
static size_t
read_all(struct store *st, unsigned int n, char *buf, size_t cap, size_t step)
{
	struct store_reader *r;
	char err[ERR_LEN];
	struct crlf_size cs;
	uint64_t size;
	size_t used = 0;
	ssize_t got;

	assert_int_equal(store_maildir_ops.read_open(st, n, &r, err), STORE_OK);
	while ((got = store_maildir_ops.read(r, buf + used,
	    step < cap - used ? step : cap - used)) > 0)
		used += (size_t)got;
	assert_int_equal(got, 0);
	/* As RETR does: the size its encoder counted, for the store to check. */
	crlf_size_init(&cs);
	crlf_size_feed(&cs, buf, used);
	assert_int_equal(crlf_size_finish(&cs, &size), 0);
	store_maildir_ops.read_size(r, size);
	store_maildir_ops.read_close(&r);
	assert_null(r);
	return used;
}

static void
test_lookup_finds_both_backends_and_rejects_others(void **state)
{
	(void)state;
	assert_ptr_equal(store_lookup("maildir"), &store_maildir_ops);
	assert_ptr_equal(store_lookup("mbox"), &store_mbox_ops);
	assert_null(store_lookup("Maildir"));
	assert_null(store_lookup(""));
	assert_null(store_lookup("mh"));
}

static void
test_missing_maildir_is_an_empty_mailbox(void **state)
{
	struct fixture *f = *state;
	struct store *st;
	struct store_index idx;
	struct store_reader *r;
	char err[ERR_LEN];

	assert_int_equal(open_md(f, &st, &idx), STORE_OK);
	assert_int_equal(idx.count, 0);
	assert_int_equal(idx.total_size, 0);
	assert_int_equal(store_maildir_ops.read_open(st, 1, &r, err),
	    STORE_PERMFAIL);
	assert_int_equal(store_maildir_ops.commit(st, &idx, err), STORE_OK);
	store_maildir_ops.close(&st, &idx);
	assert_null(st);
}

static void
test_sizes_count_every_line_end_as_crlf(void **state)
{
	static const struct {
		const char *data;
		uint64_t size;
	} cases[] = {
		{ "", 0 },
		{ "a\n", 3 },
		{ "a\r\n", 3 },
		{ "a\nb\r\nc\n", 9 },
		{ "no final newline", 18 },
		{ "x\r", 4 },
		{ "\n\n", 4 },
		{ "a\r\rb\n", 6 },
		{ "a\nb", 6 },
	};
	struct fixture *f = *state;
	struct store *st;
	struct store_index idx;
	char name[64], buf[64];

	make_maildir(f);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		snprintf(name, sizeof(name), "%zu.M%zu.host:2,", 100 + i, i);
		put(f, "cur", name, cases[i].data, strlen(cases[i].data));
	}
	assert_int_equal(open_md(f, &st, &idx), STORE_OK);
	assert_int_equal(idx.count, sizeof(cases) / sizeof(cases[0]));
	for (size_t i = 0; i < idx.count; i++) {
		size_t len;

		assert_int_equal(idx.msgs[i].size, cases[i].size);
		/* The reader yields the message as stored, in any chunking. */
		len = read_all(st, (unsigned int)i + 1, buf, sizeof(buf), 1);
		assert_int_equal(len, strlen(cases[i].data));
		assert_memory_equal(buf, cases[i].data, len);
	}
	store_maildir_ops.close(&st, &idx);
}

static void
test_w_field_is_reported_without_reading_the_file(void **state)
{
	struct fixture *f = *state;
	struct store *st;
	struct store_index idx;
	char p[256];

	make_maildir(f);
	/* Real CRLF size of "ab\ncd" is 8; the name says 9 (plausible). */
	put(f, "cur", "1000.M1.host,S=5,W=9:2,S", "ab\ncd", 5);
	/* Implausible W (> 2 * size + 2): computed instead. */
	put(f, "cur", "1001.M1.host,W=500:2,", "ab\ncd", 5);
	/*
	 * S= disagrees with the file: the name is believed all the same (no
	 * stat per message; Dovecot trusts its names the same way).
	 */
	put(f, "cur", "1002.M1.host,S=4,W=9:2,", "ab\ncd", 5);
	if (geteuid() != 0) {
		snprintf(p, sizeof(p), "%s/cur/1000.M1.host,S=5,W=9:2,S",
		    f->md);
		assert_int_equal(chmod(p, 0), 0);
	}
	assert_int_equal(open_md(f, &st, &idx), STORE_OK);
	assert_int_equal(idx.count, 3);
	assert_int_equal(idx.msgs[0].size, 9);
	assert_string_equal(idx.msgs[0].uidl, "1000.M1.host,S=5,W=9");
	assert_int_equal(idx.msgs[1].size, 8);
	assert_int_equal(idx.msgs[2].size, 9);
	assert_int_equal(idx.total_size, 26);
	store_maildir_ops.close(&st, &idx);
}

static char *
read_text(const char *path)
{
	static char buf[8192];
	FILE *fp = fopen(path, "r");
	size_t n;

	if (fp == NULL)
		return NULL;
	n = fread(buf, 1, sizeof(buf) - 1, fp);
	buf[n] = '\0';
	fclose(fp);
	return buf;
}

static void
write_text(const char *path, const char *text)
{
	FILE *fp = fopen(path, "w");

	assert_non_null(fp);
	assert_int_equal(fputs(text, fp) >= 0, 1);
	assert_int_equal(fclose(fp), 0);
}

static void
test_size_cache_is_trusted_until_a_read_disproves_it(void **state)
{
	struct fixture *f = *state;
	struct store *st;
	struct store_index idx;
	char cache[256], buf[64], *text;

	make_maildir(f);
	snprintf(cache, sizeof(cache), "%s/postino-sizes", f->md);
	put(f, "cur", "1.a:2,", "x\ny\n", 4);		/* 6 */
	put(f, "cur", "2.b:2,S", "hello\n", 6);		/* 7 */
	assert_int_equal(open_md(f, &st, &idx), STORE_OK);
	assert_int_equal(idx.msgs[0].size, 6);
	assert_int_equal(idx.msgs[1].size, 7);
	store_maildir_ops.close(&st, &idx);
	text = read_text(cache);
	assert_non_null(text);
	assert_non_null(strstr(text, "1.a 6\n"));
	assert_non_null(strstr(text, "2.b 7\n"));

	/*
	 * Cached values are reported even when the file could not hold them
	 * (99 for 6 octets): proof that the open neither read nor stat'ed the
	 * messages. Junk lines, repeated names and vanished files are dropped.
	 */
	write_text(cache, "1.a 5\n2.b 99\ngarbage\n 3\nbad -1\n"
	    "gone.c 12\n2.b 1\n");
	assert_int_equal(open_md(f, &st, &idx), STORE_OK);
	assert_int_equal(idx.msgs[0].size, 5);
	assert_int_equal(idx.msgs[1].size, 99);
	text = read_text(cache);
	assert_non_null(text);
	assert_string_equal(text, "1.a 5\n2.b 99\n");
	assert_false(exists(f, "", "postino-sizes.tmp"));
	/* Reading message 2 to its end finds the lie: the cache goes. */
	assert_int_equal(read_all(st, 2, buf, sizeof(buf), 2), 6);
	assert_false(exists(f, "", "postino-sizes"));
	store_maildir_ops.close(&st, &idx);

	/* The next session rebuilds it from the messages. */
	assert_int_equal(open_md(f, &st, &idx), STORE_OK);
	assert_int_equal(idx.msgs[0].size, 6);
	assert_int_equal(idx.msgs[1].size, 7);
	store_maildir_ops.close(&st, &idx);
	text = read_text(cache);
	assert_non_null(text);
	assert_string_equal(text, "1.a 6\n2.b 7\n");
}

/* Only a private file of the mail user is a cache. */
static void
test_size_cache_others_may_write_is_ignored(void **state)
{
	struct fixture *f = *state;
	struct store *st;
	struct store_index idx;
	char cache[256], *text;

	make_maildir(f);
	snprintf(cache, sizeof(cache), "%s/postino-sizes", f->md);
	put(f, "cur", "1.a:2,", "x\ny\n", 4);		/* 6 */
	write_text(cache, "1.a 9\n");
	assert_int_equal(chmod(cache, 0620), 0);
	assert_int_equal(open_md(f, &st, &idx), STORE_OK);
	assert_int_equal(idx.msgs[0].size, 6);
	store_maildir_ops.close(&st, &idx);
	/* Replaced by one of ours. */
	text = read_text(cache);
	assert_non_null(text);
	assert_string_equal(text, "1.a 6\n");
}

/* A cache can never lock its user out by claiming a huge mailbox. */
static void
test_size_cache_over_the_cap_is_not_believed(void **state)
{
	struct fixture *f = *state;
	struct store_params p = params(f);
	struct store *st;
	struct store_index idx;
	char cache[256], err[ERR_LEN], *text;

	make_maildir(f);
	snprintf(cache, sizeof(cache), "%s/postino-sizes", f->md);
	put(f, "cur", "1.a:2,", "x\ny\n", 4);		/* 6 */
	put(f, "cur", "2.b:2,", "z\n", 2);		/* 3 */
	write_text(cache, "1.a 18446744073709551615\n2.b 3\n");
	assert_int_equal(store_maildir_ops.open(&st, &p, &idx, err), STORE_OK);
	assert_int_equal(idx.msgs[0].size, 6);
	assert_int_equal(idx.total_size, 9);
	store_maildir_ops.close(&st, &idx);
	text = read_text(cache);
	assert_non_null(text);
	assert_string_equal(text, "1.a 6\n2.b 3\n");
	/* A mailbox really over the cap is still refused. */
	p.max_bytes = 8;
	assert_int_equal(store_maildir_ops.open(&st, &p, &idx, err),
	    STORE_PERMFAIL);
}

static void
test_overlong_cache_line_is_ignored(void **state)
{
	struct fixture *f = *state;
	struct store *st;
	struct store_index idx;
	char cache[256], *big;
	FILE *fp;

	make_maildir(f);
	put(f, "cur", "1.a:2,", "x\n", 2);
	snprintf(cache, sizeof(cache), "%s/postino-sizes", f->md);
	big = malloc(5000);
	assert_non_null(big);
	memset(big, 'a', 4999);
	big[4999] = '\0';
	fp = fopen(cache, "w");
	assert_non_null(fp);
	fprintf(fp, "%s 3\n1.a 4\n", big);
	assert_int_equal(fclose(fp), 0);
	free(big);
	assert_int_equal(open_md(f, &st, &idx), STORE_OK);
	assert_int_equal(idx.msgs[0].size, 4);
	store_maildir_ops.close(&st, &idx);
}

/*
 * Mail in new/ is served where it is (a rename per message was most of a
 * first login), with the UIDL it keeps if it moves to cur/ later.
 */
static void
test_new_mail_is_served_in_place_with_a_stable_uidl(void **state)
{
	struct fixture *f = *state;
	struct store *st;
	struct store_index idx;
	char buf[16];

	make_maildir(f);
	put(f, "new", "1700000000.M1P2.host", "a\n", 2);
	put(f, "new", "1700000001.M1P2.host:2,S", "b\n", 2);
	put(f, "cur", "1700000002.M1P2.host:2,", "c\n", 2);
	assert_int_equal(open_md(f, &st, &idx), STORE_OK);
	assert_int_equal(idx.count, 3);
	assert_string_equal(idx.msgs[0].uidl, "1700000000.M1P2.host");
	assert_string_equal(idx.msgs[1].uidl, "1700000001.M1P2.host");
	assert_string_equal(idx.msgs[2].uidl, "1700000002.M1P2.host");
	assert_true(exists(f, "new", "1700000000.M1P2.host"));
	assert_true(exists(f, "new", "1700000001.M1P2.host:2,S"));
	assert_int_equal(read_all(st, 1, buf, sizeof(buf), 4096), 2);
	assert_memory_equal(buf, "a\n", 2);
	store_maildir_ops.close(&st, &idx);
	/* Moved to cur/ by another reader: the same message, same UIDL. */
	move(f, "new", "1700000000.M1P2.host", "cur",
	    "1700000000.M1P2.host:2,S");
	assert_int_equal(open_md(f, &st, &idx), STORE_OK);
	assert_int_equal(idx.count, 3);
	assert_string_equal(idx.msgs[0].uidl, "1700000000.M1P2.host");
	store_maildir_ops.close(&st, &idx);
}

/* Another reader moves mail new/ -> cur/ during the session. */
static void
test_mail_moved_from_new_during_a_session_is_read_and_deleted(void **state)
{
	struct fixture *f = *state;
	struct store *st;
	struct store_index idx;
	char err[ERR_LEN], buf[16];

	make_maildir(f);
	put(f, "new", "1.a", "one\n", 4);
	put(f, "new", "2.b", "two\n", 4);
	assert_int_equal(open_md(f, &st, &idx), STORE_OK);
	assert_int_equal(idx.count, 2);
	move(f, "new", "1.a", "cur", "1.a:2,S");
	move(f, "new", "2.b", "cur", "2.b:2,");
	assert_int_equal(read_all(st, 1, buf, sizeof(buf), 4096), 4);
	assert_memory_equal(buf, "one\n", 4);
	idx.msgs[0].deleted = idx.msgs[1].deleted = true;
	assert_int_equal(store_maildir_ops.commit(st, &idx, err), STORE_OK);
	assert_false(exists(f, "cur", "1.a:2,S"));
	assert_false(exists(f, "cur", "2.b:2,"));
	store_maildir_ops.close(&st, &idx);
}

static void
test_tmp_dotfiles_and_non_regular_files_are_not_mail(void **state)
{
	struct fixture *f = *state;
	struct store *st;
	struct store_index idx;
	char p[256], t[256];

	make_maildir(f);
	put(f, "tmp", "1.tmp", "t\n", 2);
	put(f, "cur", ".hidden:2,", "h\n", 2);
	put(f, "new", ".hidden", "h\n", 2);
	put(f, "cur", "5.real:2,", "r\n", 2);
	snprintf(p, sizeof(p), "%s/cur/6.dir", f->md);
	assert_int_equal(mkdir(p, 0700), 0);
	snprintf(p, sizeof(p), "%s/cur/7.link:2,", f->md);
	snprintf(t, sizeof(t), "%s/cur/5.real:2,", f->md);
	assert_int_equal(symlink(t, p), 0);
	snprintf(p, sizeof(p), "%s/cur/8.fifo:2,", f->md);
	assert_int_equal(mkfifo(p, 0600), 0);
	assert_int_equal(open_md(f, &st, &idx), STORE_OK);
	assert_int_equal(idx.count, 1);
	assert_string_equal(idx.msgs[0].uidl, "5.real");
	assert_true(exists(f, "new", ".hidden"));
	assert_true(exists(f, "tmp", "1.tmp"));
	store_maildir_ops.close(&st, &idx);
}

static void
test_messages_are_ordered_by_delivery_time_then_name(void **state)
{
	static const char *const names[] = {
		"100.b:2,", "20.z:2,", "3.a:2,", "100.a:2,", "zzz:2,",
	};
	static const char *const order[] = {
		"zzz", "3.a", "20.z", "100.a", "100.b",
	};
	struct fixture *f = *state;
	struct store *st;
	struct store_index idx;

	make_maildir(f);
	for (size_t i = 0; i < 5; i++)
		put(f, "cur", names[i], "m\n", 2);
	assert_int_equal(open_md(f, &st, &idx), STORE_OK);
	assert_int_equal(idx.count, 5);
	for (size_t i = 0; i < 5; i++)
		assert_string_equal(idx.msgs[i].uidl, order[i]);
	store_maildir_ops.close(&st, &idx);
}

static void
test_unusable_base_names_get_a_stable_derived_uidl(void **state)
{
	struct fixture *f = *state;
	struct store *st;
	struct store_index idx;
	char longname[128], uidl[2][STORE_UIDL_MAX + 1];

	make_maildir(f);
	memset(longname, 'L', 80);
	strcpy(longname + 80, ":2,");
	put(f, "cur", "1 with space:2,", "a\n", 2);
	put(f, "cur", longname, "b\n", 2);
	put(f, "cur", "2\x01" "ctl:2,", "c\n", 2);
	assert_int_equal(open_md(f, &st, &idx), STORE_OK);
	assert_int_equal(idx.count, 3);
	for (unsigned int i = 0; i < idx.count; i++) {
		const char *u = idx.msgs[i].uidl;

		assert_int_equal(strlen(u), 33);
		assert_int_equal(u[0], 'x');
		assert_int_equal(strspn(u + 1, "0123456789abcdef"), 32);
	}
	assert_string_not_equal(idx.msgs[0].uidl, idx.msgs[1].uidl);
	strcpy(uidl[0], idx.msgs[0].uidl);
	strcpy(uidl[1], idx.msgs[2].uidl);
	store_maildir_ops.close(&st, &idx);
	assert_int_equal(open_md(f, &st, &idx), STORE_OK);
	assert_string_equal(idx.msgs[0].uidl, uidl[0]);
	assert_string_equal(idx.msgs[2].uidl, uidl[1]);
	store_maildir_ops.close(&st, &idx);
}

static void
test_second_open_in_same_process_is_locked_until_close(void **state)
{
	struct fixture *f = *state;
	struct store *st, *st2;
	struct store_index idx, idx2;
	struct store_params p = params(f);
	char err[ERR_LEN];

	make_maildir(f);
	put(f, "cur", "1.a:2,", "x\n", 2);
	assert_int_equal(open_md(f, &st, &idx), STORE_OK);
	assert_int_equal(store_maildir_ops.open(&st2, &p, &idx2, err),
	    STORE_LOCKED);
	assert_null(st2);
	assert_true(strlen(err) > 0);
	store_maildir_ops.close(&st, &idx);
	assert_int_equal(open_md(f, &st2, &idx2), STORE_OK);
	assert_int_equal(idx2.count, 1);
	store_maildir_ops.close(&st2, &idx2);
}

static void
test_commit_deletes_only_marked_and_keeps_later_mail(void **state)
{
	struct fixture *f = *state;
	struct store *st;
	struct store_index idx;
	char err[ERR_LEN], a[256], b[256];

	make_maildir(f);
	put(f, "cur", "1.a:2,", "1\n", 2);
	put(f, "cur", "2.b:2,", "2\n", 2);
	put(f, "cur", "3.c:2,", "3\n", 2);
	put(f, "cur", "4.d:2,", "4\n", 2);
	assert_int_equal(open_md(f, &st, &idx), STORE_OK);
	assert_int_equal(idx.count, 4);
	/* Delivered during the session, and a flag change by another MUA. */
	put(f, "new", "5.e", "5\n", 2);
	snprintf(a, sizeof(a), "%s/cur/3.c:2,", f->md);
	snprintf(b, sizeof(b), "%s/cur/3.c:2,S", f->md);
	assert_int_equal(rename(a, b), 0);
	/* Already gone: fine. */
	snprintf(a, sizeof(a), "%s/cur/4.d:2,", f->md);
	assert_int_equal(unlink(a), 0);
	idx.msgs[1].deleted = true;
	idx.msgs[2].deleted = true;
	idx.msgs[3].deleted = true;
	assert_int_equal(store_maildir_ops.commit(st, &idx, err), STORE_OK);
	store_maildir_ops.close(&st, &idx);
	assert_true(exists(f, "cur", "1.a:2,"));
	assert_false(exists(f, "cur", "2.b:2,"));
	assert_false(exists(f, "cur", "3.c:2,S"));
	assert_true(exists(f, "new", "5.e"));
	assert_int_equal(open_md(f, &st, &idx), STORE_OK);
	assert_int_equal(idx.count, 2);
	assert_string_equal(idx.msgs[0].uidl, "1.a");
	assert_string_equal(idx.msgs[1].uidl, "5.e");
	store_maildir_ops.close(&st, &idx);
}

static void
test_read_follows_renames_and_reports_vanished_as_changed(void **state)
{
	struct fixture *f = *state;
	struct store *st;
	struct store_index idx;
	struct store_reader *r;
	char err[ERR_LEN], a[256], b[256], buf[16];

	make_maildir(f);
	put(f, "cur", "1.a:2,", "one\n", 4);
	put(f, "cur", "2.b:2,", "two\n", 4);
	assert_int_equal(open_md(f, &st, &idx), STORE_OK);
	snprintf(a, sizeof(a), "%s/cur/1.a:2,", f->md);
	snprintf(b, sizeof(b), "%s/cur/1.a:2,RS", f->md);
	assert_int_equal(rename(a, b), 0);
	assert_int_equal(read_all(st, 1, buf, sizeof(buf), 4096), 4);
	assert_memory_equal(buf, "one\n", 4);
	snprintf(a, sizeof(a), "%s/cur/2.b:2,", f->md);
	assert_int_equal(unlink(a), 0);
	assert_int_equal(store_maildir_ops.read_open(st, 2, &r, err),
	    STORE_CHANGED);
	assert_null(r);
	assert_int_equal(store_maildir_ops.read_open(st, 0, &r, err),
	    STORE_PERMFAIL);
	assert_int_equal(store_maildir_ops.read_open(st, 3, &r, err),
	    STORE_PERMFAIL);
	store_maildir_ops.close(&st, &idx);
}

static void
test_caps_on_messages_and_bytes_are_permanent_failures(void **state)
{
	struct fixture *f = *state;
	struct store *st;
	struct store_index idx;
	struct store_params p = params(f);
	char err[ERR_LEN];

	make_maildir(f);
	put(f, "cur", "1.a:2,", "0123456789\n", 11);	/* 12 */
	put(f, "cur", "2.b:2,", "0123456789\n", 11);
	put(f, "cur", "3.c:2,", "0123456789\n", 11);
	p.max_messages = 2;
	assert_int_equal(store_maildir_ops.open(&st, &p, &idx, err),
	    STORE_PERMFAIL);
	assert_non_null(strstr(err, "messages"));
	assert_null(st);
	p.max_messages = 3;
	p.max_bytes = 35;
	assert_int_equal(store_maildir_ops.open(&st, &p, &idx, err),
	    STORE_PERMFAIL);
	assert_non_null(strstr(err, "bytes"));
	p.max_bytes = 36;
	assert_int_equal(store_maildir_ops.open(&st, &p, &idx, err), STORE_OK);
	assert_int_equal(idx.total_size, 36);
	store_maildir_ops.close(&st, &idx);
}

static void
test_duplicate_base_names_yield_one_message(void **state)
{
	struct fixture *f = *state;
	struct store *st;
	struct store_index idx;

	make_maildir(f);
	put(f, "cur", "1.a:2,", "x\n", 2);
	put(f, "cur", "1.a:2,S", "x\n", 2);
	assert_int_equal(open_md(f, &st, &idx), STORE_OK);
	assert_int_equal(idx.count, 1);
	assert_string_equal(idx.msgs[0].uidl, "1.a");
	store_maildir_ops.close(&st, &idx);
}

/*
 * An open session holds its index, not the 64 KiB read buffer that sizing
 * needs nor the parsed cache: with 1,000 idle sessions those were most of
 * a worker's memory. (Measured with glibc's mallinfo2; under ASan it
 * reads 0.)
 */
static void
test_open_session_does_not_hold_the_read_buffer(void **state)
{
	struct fixture *f = *state;
	struct store *st;
	struct store_index idx;
	size_t before;

	make_maildir(f);
	put(f, "new", "1.a", "x\ny\n", 4);
	for (int warm = 0; warm <= 1; warm++) {
		before = mallinfo2().uordblks;
		assert_int_equal(open_md(f, &st, &idx), STORE_OK);
		assert_int_equal(idx.count, 1);
		assert_true(mallinfo2().uordblks - before < 12 * 1024);
		store_maildir_ops.close(&st, &idx);
	}
}

/* Open fds of this process, counted in /proc/self/fd. */
static int
count_fds(void)
{
	struct dirent *de;
	DIR *dir = opendir("/proc/self/fd");
	int n = 0;

	assert_non_null(dir);
	while ((de = readdir(dir)) != NULL) {
		if (de->d_name[0] != '.')
			n++;
	}
	(void)closedir(dir);
	return n - 1;		/* the one opendir holds */
}

/*
 * An idle session holds its lock file and nothing else of the Maildir: with
 * new/ and cur/ held too, 10,000 sessions ran a worker out of fds (issue 11,
 * S4). Reads and UPDATE open what they need and close it again.
 */
static void
test_idle_session_holds_only_the_lock_fd(void **state)
{
	struct fixture *f = *state;
	struct store *st;
	struct store_index idx;
	char err[ERR_LEN], buf[16];
	int before;

	make_maildir(f);
	put(f, "new", "1.a", "one\n", 4);
	put(f, "cur", "2.b:2,", "two\n", 4);
	put(f, "cur", "3.c:2,", "six\n", 4);
	before = count_fds();
	assert_int_equal(open_md(f, &st, &idx), STORE_OK);
	assert_int_equal(idx.count, 3);
	assert_int_equal(count_fds(), before + 1);
	assert_int_equal(read_all(st, 1, buf, sizeof(buf), 4096), 4);
	assert_int_equal(read_all(st, 2, buf, sizeof(buf), 4096), 4);
	assert_int_equal(count_fds(), before + 1);
	idx.msgs[0].deleted = true;
	idx.msgs[1].deleted = true;
	assert_int_equal(store_maildir_ops.commit(st, &idx, err), STORE_OK);
	assert_int_equal(count_fds(), before + 1);
	store_maildir_ops.close(&st, &idx);
	assert_int_equal(count_fds(), before);
	assert_false(exists(f, "new", "1.a"));
	assert_false(exists(f, "cur", "2.b:2,"));
	assert_true(exists(f, "cur", "3.c:2,"));
}

/*
 * Set a directory's mtime to a fixed moment long ago, as if it had not
 * changed since; again after a change, as if the change had not moved it.
 */
static void
set_mtime(const struct fixture *f, const char *sub, time_t when)
{
	const struct timespec ts[2] = { { when, 0 }, { when, 0 } };
	char p[256];

	snprintf(p, sizeof(p), "%s/%s", f->md, sub);
	assert_int_equal(utimensat(AT_FDCWD, p, ts, 0), 0);
}

static void
age_dir(const struct fixture *f, const char *sub)
{
	set_mtime(f, sub, 1700000000);
}

static unsigned int
count_open(const struct fixture *f)
{
	struct store *st;
	struct store_index idx;
	unsigned int n;

	assert_int_equal(open_md(f, &st, &idx), STORE_OK);
	n = idx.count;
	store_maildir_ops.close(&st, &idx);
	return n;
}

/*
 * A warm open serves the index while new/ and cur/ keep the mtimes it was
 * written at, without reading them (issue 11, S2): a file slipped in with
 * the mtime put back is not seen. Any real change moves an mtime and is.
 */
static void
test_index_serves_unchanged_directories(void **state)
{
	struct fixture *f = *state;
	char buf[16];
	struct store *st;
	struct store_index idx;

	make_maildir(f);
	put(f, "new", "1.a", "one\n", 4);
	put(f, "cur", "2.b:2,S", "two!\n", 5);
	age_dir(f, "new");
	age_dir(f, "cur");
	assert_int_equal(count_open(f), 2);	/* scans, writes the index */
	put(f, "cur", "3.c:2,", "six\n", 4);
	age_dir(f, "cur");
	assert_int_equal(open_md(f, &st, &idx), STORE_OK);
	assert_int_equal(idx.count, 2);
	assert_int_equal(idx.msgs[0].size, 5);
	assert_int_equal(idx.msgs[1].size, 6);
	assert_string_equal(idx.msgs[1].uidl, "2.b");
	assert_int_equal(read_all(st, 2, buf, sizeof(buf), 4096), 5);
	store_maildir_ops.close(&st, &idx);
	/* A delivery, a deletion: the mtimes move, the index is not used. */
	put(f, "new", "4.d", "four\n", 5);
	assert_int_equal(count_open(f), 4);
	move(f, "new", "1.a", "tmp", "1.a");
	assert_int_equal(count_open(f), 3);
}

/* Changed within the settle time: no index, as a change in the same tick
 * of the kernel's clock would not move the mtime. */
static void
test_index_is_not_written_for_fresh_directories(void **state)
{
	struct fixture *f = *state;
	char p[256];
	struct stat st;

	make_maildir(f);
	put(f, "new", "1.a", "one\n", 4);
	assert_int_equal(count_open(f), 1);
	snprintf(p, sizeof(p), "%s/postino-index", f->md);
	assert_int_equal(lstat(p, &st), -1);
	age_dir(f, "new");
	age_dir(f, "cur");
	assert_int_equal(count_open(f), 1);
	assert_int_equal(lstat(p, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
}

/* A torn, foreign or garbled index costs a scan, never a wrong listing. */
static void
test_index_that_is_not_right_is_ignored(void **state)
{
	static const char *bad[] = {
		"", "garbage\n", "C 5 2.b:2,S\n",
	};
	struct fixture *f = *state;
	char p[256], head[256];
	FILE *fp;

	make_maildir(f);
	put(f, "new", "1.a", "one\n", 4);
	put(f, "cur", "2.b:2,S", "two!\n", 5);
	age_dir(f, "new");
	age_dir(f, "cur");
	assert_int_equal(count_open(f), 2);
	snprintf(p, sizeof(p), "%s/postino-index", f->md);
	fp = fopen(p, "r");
	assert_non_null(fp);
	assert_non_null(fgets(head, sizeof(head), fp));
	assert_int_equal(fclose(fp), 0);
	*strrchr(head, ' ') = '\0';	/* the stamp, without the count */
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]) + 3; i++) {
		fp = fopen(p, "w");
		assert_non_null(fp);
		if (i < sizeof(bad) / sizeof(bad[0]))
			fprintf(fp, "%s", bad[i]);
		else if (i == sizeof(bad) / sizeof(bad[0]))	/* torn */
			fprintf(fp, "%s 2\nN 4 1.a\nC 5 2.b:2,", head);
		else if (i == sizeof(bad) / sizeof(bad[0]) + 1)	/* short */
			fprintf(fp, "%s 3\nN 4 1.a\nC 5 2.b:2,S\n", head);
		else						/* a path */
			fprintf(fp, "%s 2\nN 4 ../1.a\nC 5 2.b:2,S\n", head);
		assert_int_equal(fclose(fp), 0);
		assert_int_equal(chmod(p, 0600), 0);
		assert_int_equal(count_open(f), 2);
		/* The scan after a bad index wrote a good one again. */
		assert_int_equal(count_open(f), 2);
	}
	assert_int_equal(chmod(p, 0666), 0);
	put(f, "cur", "3.c:2,", "six\n", 4);
	age_dir(f, "cur");
	/* Writable by others: not believed, so the slipped-in file is seen. */
	assert_int_equal(count_open(f), 3);
}

static const char *
first_uidl(const struct fixture *f, unsigned int count)
{
	static char uidl[STORE_UIDL_MAX + 1];
	struct store *st;
	struct store_index idx;

	assert_int_equal(open_md(f, &st, &idx), STORE_OK);
	assert_int_equal(idx.count, count);
	memcpy(uidl, idx.msgs[0].uidl, sizeof(uidl));
	store_maildir_ops.close(&st, &idx);
	return uidl;
}

/*
 * The index remembers that neither Dovecot's nor Courier's uidlist was
 * there, so a warm open does not look for them (two opens per login,
 * issue 11 S1). A uidlist put there later is read once new/ or cur/
 * change (a delivery does), and from then on at every open.
 */
static void
test_index_remembers_there_was_no_uidlist(void **state)
{
	struct fixture *f = *state;
	char p[256], head[256];
	FILE *fp;

	make_maildir(f);
	put(f, "cur", "1.a:2,S", "one\n", 4);
	age_dir(f, "new");
	age_dir(f, "cur");
	assert_string_equal(first_uidl(f, 1), "1.a");	/* writes the index */
	snprintf(p, sizeof(p), "%s/dovecot-uidlist", f->md);
	fp = fopen(p, "w");
	assert_non_null(fp);
	fprintf(fp, "3 V1 N2\n1 Pdove1 :1.a\n");
	assert_int_equal(fclose(fp), 0);
	assert_string_equal(first_uidl(f, 1), "1.a");
	put(f, "new", "2.b", "two\n", 4);
	set_mtime(f, "new", 1700000100);
	assert_string_equal(first_uidl(f, 2), "dove1");	/* a new index */
	assert_string_equal(first_uidl(f, 2), "dove1");	/* served from it */
	snprintf(p, sizeof(p), "%s/postino-index", f->md);
	fp = fopen(p, "r");
	assert_non_null(fp);
	assert_non_null(fgets(head, sizeof(head), fp));
	assert_int_equal(fclose(fp), 0);
	assert_null(strstr(head, "no-uidlist"));
}

/* The first line of the index, "" when there is none. */
static const char *
index_head(const struct fixture *f)
{
	static char head[256];
	char p[256];
	FILE *fp;

	head[0] = '\0';
	snprintf(p, sizeof(p), "%s/postino-index", f->md);
	if ((fp = fopen(p, "r")) != NULL) {
		if (fgets(head, sizeof(head), fp) == NULL)
			head[0] = '\0';
		assert_int_equal(fclose(fp), 0);
	}
	return head;
}

/* An older postinod's index (no word on uidlists) is said once. */
static void
test_index_of_an_older_postinod_learns_there_is_no_uidlist(void **state)
{
	struct fixture *f = *state;
	char p[256], old[256], *flag;
	FILE *fp;

	make_maildir(f);
	put(f, "cur", "1.a:2,S", "one\n", 4);
	age_dir(f, "new");
	age_dir(f, "cur");
	assert_int_equal(count_open(f), 1);
	snprintf(old, sizeof(old), "%s", index_head(f));
	assert_non_null(flag = strstr(old, " no-uidlist"));
	memmove(flag, flag + strlen(" no-uidlist"),
	    strlen(flag + strlen(" no-uidlist")) + 1);
	snprintf(p, sizeof(p), "%s/postino-index", f->md);
	fp = fopen(p, "w");
	assert_non_null(fp);
	fprintf(fp, "%sC 5 1.a:2,S\n", old);
	assert_int_equal(fclose(fp), 0);
	assert_int_equal(chmod(p, 0600), 0);
	assert_string_equal(index_head(f), old);
	assert_int_equal(count_open(f), 1);
	assert_non_null(strstr(index_head(f), " no-uidlist "));
	assert_string_equal(first_uidl(f, 1), "1.a");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(
		    test_lookup_finds_both_backends_and_rejects_others),
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
		T(test_missing_maildir_is_an_empty_mailbox),
		T(test_sizes_count_every_line_end_as_crlf),
		T(test_w_field_is_reported_without_reading_the_file),
		T(test_size_cache_is_trusted_until_a_read_disproves_it),
		T(test_size_cache_others_may_write_is_ignored),
		T(test_size_cache_over_the_cap_is_not_believed),
		T(test_overlong_cache_line_is_ignored),
		T(test_new_mail_is_served_in_place_with_a_stable_uidl),
		T(test_mail_moved_from_new_during_a_session_is_read_and_deleted),
		T(test_tmp_dotfiles_and_non_regular_files_are_not_mail),
		T(test_messages_are_ordered_by_delivery_time_then_name),
		T(test_unusable_base_names_get_a_stable_derived_uidl),
		T(test_second_open_in_same_process_is_locked_until_close),
		T(test_commit_deletes_only_marked_and_keeps_later_mail),
		T(test_read_follows_renames_and_reports_vanished_as_changed),
		T(test_caps_on_messages_and_bytes_are_permanent_failures),
		T(test_duplicate_base_names_yield_one_message),
		T(test_open_session_does_not_hold_the_read_buffer),
		T(test_idle_session_holds_only_the_lock_fd),
		T(test_index_serves_unchanged_directories),
		T(test_index_is_not_written_for_fresh_directories),
		T(test_index_that_is_not_right_is_ignored),
		T(test_index_remembers_there_was_no_uidlist),
		T(test_index_of_an_older_postinod_learns_there_is_no_uidlist),
#undef T
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
