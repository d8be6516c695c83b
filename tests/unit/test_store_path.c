/*
 * store/store_path: the one mailbox-path expansion of the mail and the
 * deliver roles. Every %-escape, ~, what is copied as written, and every
 * way out of the administrator's directory (issue 10, finding 6) refused:
 * "." and ".." from a name, a domain, a home or the template itself, a
 * '/' in a name, an empty domain, control bytes; and paths at, and one
 * past, the size of the buffer.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "../../src/store/store_path.h"

#define N_ELEM(a)	(sizeof(a) / sizeof((a)[0]))

static const struct {
	const char	*tmpl, *user, *home, *want;
} good[] = {
	{ "/srv/%u", "alice", "", "/srv/alice" },
	{ "/srv/vhosts/%d/%n", "bob@example.org", "",
	    "/srv/vhosts/example.org/bob" },
	{ "/srv/%u", "bob@example.org", "", "/srv/bob@example.org" },
	/* No domain: %d is empty, %n the whole name. */
	{ "/srv/d%d/%n", "carol", "", "/srv/d/carol" },
	{ "~/Maildir", "alice", "/home/alice", "/home/alice/Maildir" },
	{ "~", "alice", "/home/alice", "/home/alice" },
	/* ~ only at the start; elsewhere it is a byte like another. */
	{ "/srv/~%u", "alice", "", "/srv/~alice" },
	{ "/srv/%%u/%u", "alice", "", "/srv/%u/alice" },
	{ "/srv/100%%", "alice", "", "/srv/100%" },
	/* An unknown escape and a trailing '%' are copied as written. */
	{ "/srv/%x%u%", "alice", "", "/srv/%xalice%" },
	/* Dots inside a component are names, not steps up. */
	{ "/srv/%d/%n", "a.b@ex.ample", "", "/srv/ex.ample/a.b" },
};

static const struct {
	const char	*tmpl, *user, *home;
} bad[] = {
	/* The audit's finding: x@.. and /srv/vhosts/%d/%n. */
	{ "/srv/vhosts/%d/%n", "x@..", "" },
	{ "/srv/vhosts/%d/%n", "x@.", "" },
	{ "/srv/vhosts/%d/%n", "x@.hidden", "" },
	{ "/srv/vhosts/%d/%n", "x@...", "" },
	/* An empty domain would make /srv/vhosts//x, another domain's dir. */
	{ "/srv/vhosts/%d/%n", "x@", "" },
	{ "/srv/%u", "x@", "" },
	{ "/srv/%n", "..", "" },
	{ "/srv/%n", ".", "" },
	{ "/srv/%n", "..@example.org", "" },
	{ "/srv/%u", ".profile", "" },
	{ "/srv/%u", "a/../../etc", "" },
	{ "/srv/%u", "a/b", "" },
	{ "/srv/%d", "a@b/c", "" },
	{ "/srv/%u", "", "" },
	{ "/srv/%u", "a\nb", "" },
	{ "/srv/%u", "a\x7f", "" },
	/* A home or a template that steps up is refused too. */
	{ "~/Maildir", "alice", "/home/../etc" },
	{ "~/Maildir", "alice", "/home/alice/." },
	{ "~/Maildir", "alice", "/home/\talice" },
	{ "/srv/../%u", "alice", "" },
	{ "/srv/%u/..", "alice", "" },
	{ "..", "alice", "" },
	/* ~ without a home. */
	{ "~/Maildir", "alice", "" },
	{ "~/Maildir", "alice", NULL },
};

static void
test_escapes_expand(void **state)
{
	char out[256], err[ERR_LEN];

	(void)state;
	for (size_t i = 0; i < N_ELEM(good); i++) {
		err[0] = '\0';
		if (store_path_expand(good[i].tmpl, good[i].user, good[i].home,
		    out, sizeof(out), err) != 0)
			fail_msg("%s %s: %s", good[i].tmpl, good[i].user, err);
		assert_string_equal(out, good[i].want);
	}
}

static void
test_every_way_out_is_refused(void **state)
{
	char out[256], err[ERR_LEN];

	(void)state;
	for (size_t i = 0; i < N_ELEM(bad); i++) {
		err[0] = '\0';
		if (store_path_expand(bad[i].tmpl, bad[i].user, bad[i].home,
		    out, sizeof(out), err) != -1)
			fail_msg("accepted %s %s: %s", bad[i].tmpl, bad[i].user,
			    out);
		assert_true(err[0] != '\0');
	}
}

/* "/m/" + name: fits with size = its length + 1, not with one less. */
static void
test_long_names_fit_exactly_or_are_refused(void **state)
{
	char user[4096], want[4100], out[4100], err[ERR_LEN];
	size_t lens[] = { 1, 40, 255, 256, 4000 };

	(void)state;
	for (size_t i = 0; i < N_ELEM(lens); i++) {
		size_t n = lens[i], total = 3 + n;

		memset(user, 'a', n);
		user[n] = '\0';
		memcpy(want, "/m/", 3);
		memcpy(want + 3, user, n + 1);
		assert_int_equal(store_path_expand("/m/%u", user, "", out,
		    total + 1, err), 0);
		assert_string_equal(out, want);
		assert_int_equal(store_path_expand("/m/%u", user, "", out,
		    total, err), -1);
		assert_string_equal(err, "mailbox path too long");
		/* A long home overflows the same way. */
		assert_int_equal(store_path_expand("~/x", "b", want, out,
		    total + 2, err), -1);
		assert_int_equal(store_path_expand("~/x", "b", want, out,
		    total + 3, err), 0);
	}
	assert_int_equal(store_path_expand("", "a", "", out, 0, err), -1);
	assert_int_equal(store_path_expand("", "a", "", out, 1, err), 0);
	assert_string_equal(out, "");
}

static void
test_resolve_names_the_backend(void **state)
{
	const struct store_ops *ops;
	char out[256], err[ERR_LEN];

	(void)state;
	assert_int_equal(store_path_resolve("maildir:~/Maildir", "alice",
	    "/home/alice", out, sizeof(out), &ops, err), 0);
	assert_ptr_equal(ops, store_lookup("maildir"));
	assert_string_equal(out, "/home/alice/Maildir");
	assert_int_equal(store_path_resolve("mbox:/var/mail/%u", "bob", "",
	    out, sizeof(out), &ops, err), 0);
	assert_ptr_equal(ops, store_lookup("mbox"));
	assert_string_equal(out, "/var/mail/bob");
	assert_int_equal(store_path_resolve("mh:/x/%u", "bob", "", out,
	    sizeof(out), &ops, err), -1);
	assert_int_equal(store_path_resolve("/var/mail/%u", "bob", "", out,
	    sizeof(out), &ops, err), -1);
	assert_int_equal(store_path_resolve("maildir:/srv/%d/%n", "x@..", "",
	    out, sizeof(out), &ops, err), -1);
}

/* pgsql: alone is the user's name; a template expands like a path. */
static void
test_pgsql_mailbox_is_named_after_the_user(void **state)
{
	const struct store_ops *ops;
	char out[256], err[ERR_LEN];

	(void)state;
	assert_int_equal(store_path_resolve("pgsql:", "alice@example.org", "",
	    out, sizeof(out), &ops, err), 0);
	assert_ptr_equal(ops, &store_pgsql_ops);
	assert_string_equal(out, "alice@example.org");
	assert_int_equal(store_path_resolve("pgsql:%d/%n", "alice@example.org",
	    "", out, sizeof(out), &ops, err), 0);
	assert_string_equal(out, "example.org/alice");
	assert_int_equal(store_path_resolve("pgsql:", "../x", "", out,
	    sizeof(out), &ops, err), -1);
	assert_int_equal(store_path_resolve("pgsql:%d/%n", "x@..", "", out,
	    sizeof(out), &ops, err), -1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_escapes_expand),
		cmocka_unit_test(test_every_way_out_is_refused),
		cmocka_unit_test(test_long_names_fit_exactly_or_are_refused),
		cmocka_unit_test(test_resolve_names_the_backend),
		cmocka_unit_test(test_pgsql_mailbox_is_named_after_the_user),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
