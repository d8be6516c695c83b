/*
 * Connections per address and per network, summed over the regions of
 * several login workers: limits, prefixes, IPv4-mapped addresses, release.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../src/server/connlimit.h"

#define SLOTS	3
#define ENTRIES	1024

static uint64_t table[SLOTS * ENTRIES];
static const unsigned char secret[CONNLIMIT_SECRET_LEN] = "0123456789abcdef";

static void
as_worker(uint32_t slot, unsigned int max_ip, unsigned int max_net)
{
	struct connlimit_conf c = { max_ip, max_net, 24, 48 };

	/* Setup clears the region: keep the others' counts as they are. */
	assert_int_equal(connlimit_setup(table, SLOTS, slot, ENTRIES, secret,
	    &c), 0);
}

static struct sockaddr_storage
addr(const char *text)
{
	struct sockaddr_storage ss;

	memset(&ss, 0, sizeof(ss));
	if (strchr(text, ':') != NULL) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;

		s6->sin6_family = AF_INET6;
		assert_int_equal(inet_pton(AF_INET6, text, &s6->sin6_addr), 1);
	} else {
		struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;

		s4->sin_family = AF_INET;
		assert_int_equal(inet_pton(AF_INET, text, &s4->sin_addr), 1);
	}
	return ss;
}

static enum connlimit_result
take(const char *text, struct connlimit_ref *ref)
{
	struct sockaddr_storage ss = addr(text);

	return connlimit_acquire((struct sockaddr *)&ss, ref);
}

static int
setup(void **state)
{
	(void)state;
	memset(table, 0, sizeof(table));
	return 0;
}

static void
test_limit_per_address_counts_every_worker(void **state)
{
	struct connlimit_ref r[4];

	(void)state;
	as_worker(0, 3, 0);
	assert_int_equal(take("192.0.2.1", &r[0]), CONNLIMIT_OK);
	assert_int_equal(take("192.0.2.1", &r[1]), CONNLIMIT_OK);
	as_worker(1, 3, 0);
	assert_int_equal(take("192.0.2.1", &r[2]), CONNLIMIT_OK);
	assert_int_equal(take("192.0.2.1", &r[3]), CONNLIMIT_IP);
	assert_int_equal(take("192.0.2.2", &r[3]), CONNLIMIT_OK);
	connlimit_release(&r[2]);
	assert_int_equal(take("192.0.2.1", &r[2]), CONNLIMIT_OK);
	/* A restarted worker 0 forgets what its predecessor counted. */
	as_worker(0, 3, 0);
	assert_int_equal(take("192.0.2.1", &r[0]), CONNLIMIT_OK);
}

static void
test_networks_follow_the_prefix(void **state)
{
	struct connlimit_ref r;
	unsigned int ip, net;
	struct sockaddr_storage ss;

	(void)state;
	as_worker(2, 0, 2);
	assert_int_equal(take("198.51.100.1", &r), CONNLIMIT_OK);
	assert_int_equal(take("198.51.100.200", &r), CONNLIMIT_OK);
	assert_int_equal(take("198.51.100.7", &r), CONNLIMIT_NET);
	assert_int_equal(take("198.51.101.7", &r), CONNLIMIT_OK);
	/* An IPv4-mapped IPv6 address is its IPv4 address. */
	assert_int_equal(take("::ffff:198.51.100.9", &r), CONNLIMIT_NET);
	ss = addr("::ffff:198.51.100.1");
	connlimit_count((struct sockaddr *)&ss, &ip, &net);
	assert_int_equal(ip, 1);
	assert_int_equal(net, 2);
	/* IPv6: one /48. */
	assert_int_equal(take("2001:db8:1:1::1", &r), CONNLIMIT_OK);
	assert_int_equal(take("2001:db8:1:ffff::2", &r), CONNLIMIT_OK);
	assert_int_equal(take("2001:db8:1:2::3", &r), CONNLIMIT_NET);
	assert_int_equal(take("2001:db8:2::3", &r), CONNLIMIT_OK);
}

static void
test_release_is_idempotent_and_frees_entries(void **state)
{
	struct connlimit_ref r;
	unsigned int ip, net;
	struct sockaddr_storage ss = addr("203.0.113.5");

	(void)state;
	as_worker(1, 1, 0);
	/* Many keys come and go: entries are reused, never exhausted. */
	for (int i = 0; i < 10 * ENTRIES; i++) {
		char text[32];

		snprintf(text, sizeof(text), "10.%d.%d.1", (i >> 8) & 255,
		    i & 255);
		assert_int_equal(take(text, &r), CONNLIMIT_OK);
		connlimit_release(&r);
		connlimit_release(&r);
	}
	assert_int_equal(take("203.0.113.5", &r), CONNLIMIT_OK);
	connlimit_count((struct sockaddr *)&ss, &ip, &net);
	assert_int_equal(ip, 1);
	connlimit_release(&r);
	connlimit_count((struct sockaddr *)&ss, &ip, &net);
	assert_int_equal(ip, 0);
	assert_int_equal(net, 0);
}

static void
test_bad_geometry_is_refused(void **state)
{
	struct connlimit_conf c = { 1, 1, 24, 48 };

	(void)state;
	assert_int_equal(connlimit_setup(table, SLOTS, SLOTS, ENTRIES, secret,
	    &c), -1);
	assert_int_equal(connlimit_setup(table, SLOTS, 0, 1000, secret, &c), -1);
	c.prefix4 = 33;
	assert_int_equal(connlimit_setup(table, SLOTS, 0, ENTRIES, secret,
	    &c), -1);
	assert_true(connlimit_entries(20000) >= 8 * 20000);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_limit_per_address_counts_every_worker, setup),
		cmocka_unit_test_setup(test_networks_follow_the_prefix, setup),
		cmocka_unit_test_setup(test_release_is_idempotent_and_frees_entries, setup),
		cmocka_unit_test_setup(test_bad_geometry_is_refused, setup),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
