/*
 * The per-network failed-login penalty: doubling, bound, forgetting,
 * isolation, aggregation by prefix, and the wait before the next check.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>

#include "../../src/server/penalty.h"

static int
setup(void **state)
{
	(void)state;
	penalty_reset();
	penalty_set_prefix(24, 48);
	return 0;
}

static void
test_delay_doubles_per_failure_up_to_the_bound(void **state)
{
	static const unsigned int want[] = {
		1000, 2000, 4000, 8000, PENALTY_MAX_MS, PENALTY_MAX_MS,
	};
	uint64_t now = 1000000;

	(void)state;
	assert_int_equal(penalty_peek("192.0.2.1", 1000, now), 1000);
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
		assert_int_equal(penalty_fail("192.0.2.1", 1000, now + i), want[i]);
	/* 70 more failures: still bounded, no overflow. */
	for (int i = 0; i < 70; i++)
		assert_int_equal(penalty_fail("192.0.2.1", 1000, now + 10 + i),
		    PENALTY_MAX_MS);
}

static void
test_addresses_are_independent(void **state)
{
	(void)state;
	penalty_fail("192.0.2.1", 500, 1);
	penalty_fail("192.0.2.1", 500, 2);
	assert_int_equal(penalty_peek("192.0.2.1", 500, 3), 2000);
	assert_int_equal(penalty_peek("192.0.3.1", 500, 3), 500);
	assert_int_equal(penalty_peek("2001:db8::1", 500, 3), 500);
}

static void
test_a_network_shares_one_penalty(void **state)
{
	char net[PENALTY_NET_LEN];

	(void)state;
	penalty_fail("192.0.2.1", 500, 1);
	/* Same /24, and the same address written as IPv4-mapped IPv6. */
	assert_int_equal(penalty_peek("192.0.2.254", 500, 2), 1000);
	assert_int_equal(penalty_peek("::ffff:192.0.2.9", 500, 2), 1000);
	assert_int_equal(penalty_route("192.0.2.1"), penalty_route("192.0.2.77"));
	penalty_fail("2001:db8:1:2::1", 500, 3);
	assert_int_equal(penalty_peek("2001:db8:1:ffff::9", 500, 4), 1000);
	assert_int_equal(penalty_peek("2001:db8:2::1", 500, 4), 500);
	penalty_net("2001:db8:1:2:3:4:5:6", net);
	assert_string_equal(net, "2001:db8:1::/48");
	penalty_net("198.51.100.200", net);
	assert_string_equal(net, "198.51.100.0/24");
	/* /32 and /128: every address on its own. */
	penalty_set_prefix(32, 128);
	assert_int_equal(penalty_peek("192.0.2.254", 500, 5), 500);
	penalty_net("198.51.100.200", net);
	assert_string_equal(net, "198.51.100.200/32");
	penalty_net("not an address", net);
	assert_string_equal(net, "not an address");
}

static void
test_the_next_check_waits_out_the_penalty(void **state)
{
	(void)state;
	assert_int_equal(penalty_wait("203.0.113.5", 1000, 100), 0);
	assert_int_equal(penalty_fail("203.0.113.5", 1000, 100), 1000);
	/* Any address of the network waits, whoever failed. */
	assert_int_equal(penalty_wait("203.0.113.6", 1000, 100), 1000);
	assert_int_equal(penalty_wait("203.0.113.6", 1000, 600), 500);
	assert_int_equal(penalty_wait("203.0.113.6", 1000, 1100), 0);
	assert_int_equal(penalty_fail("203.0.113.6", 1000, 1100), 2000);
	assert_int_equal(penalty_wait("203.0.113.5", 1000, 1100), 2000);
	penalty_success("203.0.113.77");
	assert_int_equal(penalty_wait("203.0.113.5", 1000, 1101), 0);
}

static void
test_success_and_quiet_time_forget(void **state)
{
	(void)state;
	penalty_fail("198.51.100.7", 1000, 1);
	penalty_fail("198.51.100.7", 1000, 2);
	penalty_success("198.51.100.7");
	assert_int_equal(penalty_fail("198.51.100.7", 1000, 3), 1000);
	assert_int_equal(penalty_fail("198.51.100.7", 1000, 4), 2000);
	assert_int_equal(penalty_peek("198.51.100.7", 1000,
	    4 + PENALTY_FORGET_MS), 1000);
}

static void
test_zero_base_means_no_delay(void **state)
{
	(void)state;
	for (int i = 0; i < 10; i++)
		assert_int_equal(penalty_fail("203.0.113.9", 0, (uint64_t)i), 0);
}

static void
test_a_full_table_forgets_the_oldest_not_the_newest(void **state)
{
	char ip[64];

	(void)state;
	penalty_set_prefix(32, 128);
	/* Many more addresses than slots: the table stays bounded and the
	 * most recent offender is still remembered. */
	for (unsigned int i = 0; i < 3 * PENALTY_SLOTS; i++) {
		snprintf(ip, sizeof(ip), "10.%u.%u.%u", i >> 16, (i >> 8) & 255,
		    i & 255);
		penalty_fail(ip, 100, 1000 + i);
	}
	penalty_fail(ip, 100, 1000 + 3 * PENALTY_SLOTS);
	assert_int_equal(penalty_peek(ip, 100, 1001 + 3 * PENALTY_SLOTS), 400);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_delay_doubles_per_failure_up_to_the_bound, setup),
		cmocka_unit_test_setup(test_addresses_are_independent, setup),
		cmocka_unit_test_setup(test_a_network_shares_one_penalty, setup),
		cmocka_unit_test_setup(test_the_next_check_waits_out_the_penalty, setup),
		cmocka_unit_test_setup(test_success_and_quiet_time_forget, setup),
		cmocka_unit_test_setup(test_zero_base_means_no_delay, setup),
		cmocka_unit_test_setup(test_a_full_table_forgets_the_oldest_not_the_newest, setup),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
