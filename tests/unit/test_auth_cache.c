/*
 * The password-verification cache (src/auth/auth_cache.c) behind
 * auth_secret_verify(): auth_hash_count() tells a hit (no hash) from a
 * real check.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "../../src/auth/auth_cache.h"
#include "../../src/auth/auth_hash.h"

#define TTL	60

static uint64_t now_s = 1000;

static uint64_t
fake_clock(void)
{
	return now_s;
}

struct fixture {
	struct auth_dummy dummy;
	char	 hash[AUTH_HASH_MAX];		/* "right" */
	char	 hash2[AUTH_HASH_MAX];		/* "new", the changed one */
};

/* SHA512-CRYPT at its lowest cost: the tests count hashes, not time. */
static void
make_hash(const char *pass, char *out)
{
	char err[ERR_LEN];

	assert_int_equal(auth_hash_make("$6$", 1000, pass, out, AUTH_HASH_MAX,
	    err), 0);
}

static int
setup(void **state)
{
	static struct fixture f;
	char err[ERR_LEN];

	assert_int_equal(auth_dummy_init(&f.dummy, err), 0);
	make_hash("right", f.hash);
	make_hash("new", f.hash2);
	now_s = 1000;
	*state = &f;
	return 0;
}

static int
teardown(void **state)
{
	(void)state;
	auth_cache_free();
	return 0;
}

/* auth_secret_verify() of a crypt(3) user; *hashes_r: hashes it cost. */
static bool
check(struct fixture *f, const char *user, const char *secret,
    const char *pass, unsigned long *hashes_r)
{
	unsigned long before = auth_hash_count();
	bool ok = auth_secret_verify(&f->dummy, user, AUTH_SCHEME_CRYPT,
	    secret, pass);

	*hashes_r = auth_hash_count() - before;
	return ok;
}

static void
test_hit_skips_the_hash(void **state)
{
	struct fixture *f = *state;
	unsigned long n;

	assert_int_equal(auth_cache_init(4, TTL, fake_clock), 0);
	assert_true(check(f, "alice", f->hash, "right", &n));
	assert_int_equal(n, 1);
	assert_int_equal(auth_cache_count(), 1);
	for (int i = 0; i < 3; i++) {
		assert_true(check(f, "alice", f->hash, "right", &n));
		assert_int_equal(n, 0);
	}
	/* Another user with the same hash (and password) is its own entry. */
	assert_true(check(f, "bob", f->hash, "right", &n));
	assert_int_equal(n, 1);
}

static void
test_wrong_password_after_a_hit_pays_and_fails(void **state)
{
	struct fixture *f = *state;
	unsigned long n;

	assert_int_equal(auth_cache_init(4, TTL, fake_clock), 0);
	assert_true(check(f, "alice", f->hash, "right", &n));
	assert_true(check(f, "alice", f->hash, "right", &n));
	assert_int_equal(n, 0);
	for (int i = 0; i < 50; i++) {
		assert_false(check(f, "alice", f->hash, "wrong", &n));
		assert_int_equal(n, 1);
		assert_false(check(f, "alice", f->hash, "", &n));
		assert_int_equal(n, 1);
		assert_false(check(f, "alice", f->hash, "right ", &n));
		assert_int_equal(n, 1);
	}
	/* The failures did not evict the owner's entry. */
	assert_true(check(f, "alice", f->hash, "right", &n));
	assert_int_equal(n, 0);
}

static void
test_changed_stored_secret_misses(void **state)
{
	struct fixture *f = *state;
	unsigned long n;

	assert_int_equal(auth_cache_init(4, TTL, fake_clock), 0);
	assert_true(check(f, "alice", f->hash, "right", &n));
	/* The password changed: the old one fails at once, the new works. */
	assert_false(check(f, "alice", f->hash2, "right", &n));
	assert_int_equal(n, 1);
	assert_true(check(f, "alice", f->hash2, "new", &n));
	assert_int_equal(n, 1);
	assert_true(check(f, "alice", f->hash2, "new", &n));
	assert_int_equal(n, 0);
	/* Rehashed with the same password (a new salt): a miss, then a hit. */
	assert_true(check(f, "alice", f->hash, "right", &n));
	assert_int_equal(n, 1);
	assert_int_equal(auth_cache_count(), 1);
}

static void
test_entry_expires_after_ttl(void **state)
{
	struct fixture *f = *state;
	unsigned long n;

	assert_int_equal(auth_cache_init(4, TTL, fake_clock), 0);
	assert_true(check(f, "alice", f->hash, "right", &n));
	now_s += TTL - 1;
	assert_true(check(f, "alice", f->hash, "right", &n));
	assert_int_equal(n, 0);
	/* Hits do not extend it. */
	now_s += 1;
	assert_true(check(f, "alice", f->hash, "right", &n));
	assert_int_equal(n, 1);
	assert_int_equal(auth_cache_count(), 1);
	now_s += TTL - 1;
	assert_true(check(f, "alice", f->hash, "right", &n));
	assert_int_equal(n, 0);
}

static void
test_lru_bound_of_n_entries(void **state)
{
	struct fixture *f = *state;
	char user[16];
	unsigned long n;

	assert_int_equal(auth_cache_init(3, TTL, fake_clock), 0);
	for (int i = 0; i < 3; i++) {
		snprintf(user, sizeof(user), "u%d", i);
		assert_true(check(f, user, f->hash, "right", &n));
	}
	/* u0 used last: u1 is now the least recent. */
	assert_true(check(f, "u0", f->hash, "right", &n));
	assert_int_equal(n, 0);
	assert_true(check(f, "u3", f->hash, "right", &n));
	assert_int_equal(n, 1);
	assert_int_equal(auth_cache_count(), 3);
	assert_true(check(f, "u0", f->hash, "right", &n));
	assert_int_equal(n, 0);
	assert_true(check(f, "u2", f->hash, "right", &n));
	assert_int_equal(n, 0);
	assert_true(check(f, "u3", f->hash, "right", &n));
	assert_int_equal(n, 0);
	assert_true(check(f, "u1", f->hash, "right", &n));
	assert_int_equal(n, 1);
	assert_int_equal(auth_cache_count(), 3);
	/* Many more users than slots: never more than N held. */
	for (int i = 0; i < 200; i++) {
		snprintf(user, sizeof(user), "m%d", i);
		auth_cache_put(user, f->hash, "right");
		assert_true(auth_cache_count() <= 3);
	}
	assert_true(check(f, "m199", f->hash, "right", &n));
	assert_int_equal(n, 0);
	assert_true(check(f, "u1", f->hash, "right", &n));
	assert_int_equal(n, 1);
}

static void
test_size_zero_never_caches(void **state)
{
	struct fixture *f = *state;
	unsigned long n;

	assert_int_equal(auth_cache_init(0, TTL, fake_clock), 0);
	for (int i = 0; i < 3; i++) {
		assert_true(check(f, "alice", f->hash, "right", &n));
		assert_int_equal(n, 1);
	}
	assert_int_equal(auth_cache_count(), 0);
	/* Freed, it is off too. */
	auth_cache_free();
	assert_true(check(f, "alice", f->hash, "right", &n));
	assert_int_equal(n, 1);
}

static void
test_scram_and_plain_secrets_and_locked_users(void **state)
{
	struct fixture *f = *state;
	char text[AUTH_SCRAM_TEXT_MAX + 1], err[ERR_LEN];
	struct auth_scram k;
	unsigned long before;

	assert_int_equal(auth_cache_init(4, TTL, fake_clock), 0);
	assert_int_equal(auth_scram_make("right", AUTH_SCRAM_ITER_MIN, &k,
	    err), 0);
	assert_int_equal(auth_scram_format(&k, text, sizeof(text)), 0);
	before = auth_hash_count();
	assert_true(auth_secret_verify(&f->dummy, "carol", AUTH_SCHEME_SCRAM,
	    text, "right"));
	assert_int_equal(auth_hash_count() - before, 1);
	assert_true(auth_secret_verify(&f->dummy, "carol", AUTH_SCHEME_SCRAM,
	    text, "right"));
	assert_int_equal(auth_hash_count() - before, 1);
	assert_false(auth_secret_verify(&f->dummy, "carol", AUTH_SCHEME_SCRAM,
	    text, "wrong"));
	assert_int_equal(auth_hash_count() - before, 2);
	/* {PLAIN} pays the dummy hash on a miss, nothing on a hit. */
	assert_true(auth_secret_verify(&f->dummy, "dave", AUTH_SCHEME_PLAIN,
	    "right", "right"));
	assert_int_equal(auth_hash_count() - before, 3);
	assert_true(auth_secret_verify(&f->dummy, "dave", AUTH_SCHEME_PLAIN,
	    "right", "right"));
	assert_int_equal(auth_hash_count() - before, 3);
	/* A locked user pays and fails, even with a cached secret's twin. */
	assert_false(auth_secret_verify(&f->dummy, "dave", AUTH_SCHEME_LOCKED,
	    "right", "right"));
	assert_int_equal(auth_hash_count() - before, 4);
	explicit_bzero(&k, sizeof(k));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_hit_skips_the_hash,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_wrong_password_after_a_hit_pays_and_fails,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_changed_stored_secret_misses, setup, teardown),
		cmocka_unit_test_setup_teardown(test_entry_expires_after_ttl,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_lru_bound_of_n_entries,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_size_zero_never_caches,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_scram_and_plain_secrets_and_locked_users,
		    setup, teardown),
	};

	printf("# auth cache entry: %zu bytes\n", auth_cache_entry_size());
	return cmocka_run_group_tests(tests, NULL, NULL);
}
