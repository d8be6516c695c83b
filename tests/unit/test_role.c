/*
 * role.c's skeleton as the master uses it: no channel on ROLE_MASTER_FD
 * (it has no master), its own signals through the loop, and SIGTERM to
 * stop() with the signal role_stop_signal() names.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <signal.h>
#include <unistd.h>

#include "../../src/server/role.h"
#include "../../src/server/roles.h"

static struct ev *loop;
static int stops, hups;

static void
stop(void)
{
	stops++;
	ev_stop(loop);
}

static void
on_hup(struct ev *e, int signo, void *arg)
{
	(void)e;
	(void)arg;
	assert_int_equal(signo, SIGHUP);
	hups++;
}

static void
test_the_master_runs_on_the_skeleton_without_a_master(void **state)
{
	static const struct role_signal signals[] = {
		{ SIGHUP, on_hup },
		{ 0, NULL },
	};
	static const struct role master = {
		.stop = stop,
		.master = true,
		.signals = signals,
	};

	(void)state;
	/* Nothing on the master's fd: a role would die here (fatal). */
	close(ROLE_MASTER_FD);
	loop = role_start(&master);
	assert_non_null(loop);
	assert_int_equal(role_stop_signal(), 0);
	assert_int_equal(raise(SIGHUP), 0);
	for (int i = 0; i < 100 && hups == 0; i++)
		assert_int_equal(ev_run_once(loop, 50), 0);
	assert_int_equal(hups, 1);
	assert_int_equal(stops, 0);
	/* Pending already, so the first turn stops; the alarm bounds a bug. */
	assert_int_equal(raise(SIGTERM), 0);
	alarm(30);
	assert_int_equal(role_run(), 0);
	alarm(0);
	assert_int_equal(stops, 1);
	assert_int_equal(role_stop_signal(), SIGTERM);
	assert_int_equal(role_nauth(), 0);
	assert_null(role_auth_next(&(unsigned int){ 0 }));
	role_end();
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_the_master_runs_on_the_skeleton_without_a_master),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
