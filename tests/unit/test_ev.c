/*
 * lib/ev: an EV_EXCLUSIVE watch of a listening socket shared by several
 * loops (the login workers) wakes one loop per connection, not all, and
 * survives the pause and resume the login role does under EMFILE.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <string.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "../../src/lib/ev.h"

static unsigned int woken;

static void
on_ready(struct ev *ev, int fd, unsigned int events, void *arg)
{
	(void)ev;
	(void)fd;
	(void)events;
	(void)arg;
	woken++;
}

static int
listener(struct sockaddr_in *sin)
{
	socklen_t len = sizeof(*sin);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);

	assert_true(fd >= 0);
	memset(sin, 0, sizeof(*sin));
	sin->sin_family = AF_INET;
	sin->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)sin, sizeof(*sin)), 0);
	assert_int_equal(listen(fd, 8), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)sin, &len), 0);
	return fd;
}

static int
connect_to(const struct sockaddr_in *sin)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	assert_true(fd >= 0);
	assert_int_equal(connect(fd, (const struct sockaddr *)sin,
	    sizeof(*sin)), 0);
	return fd;
}

/*
 * Processes that each block in their loop on lfd with events (the
 * kernel's exclusive wake-up only skips loops that are asleep in
 * epoll_wait): how many one connection wakes within WAIT_MS.
 */
#define LOOPS	3
#define WAIT_MS	1000

static unsigned int
loops_woken(unsigned int events, bool pause_first)
{
	struct sockaddr_in sin;
	int lfd = listener(&sin), cfd, ready[2], status;
	pid_t pids[LOOPS];
	unsigned int n = 0;
	char c;

	assert_int_equal(pipe(ready), 0);
	for (unsigned int i = 0; i < LOOPS; i++) {
		assert_true((pids[i] = fork()) >= 0);
		if (pids[i] == 0) {
			struct ev *loop = ev_new();

			if (loop == NULL ||
			    ev_io_set(loop, lfd, events, on_ready, NULL) < 0 ||
			    (pause_first && (ev_io_set(loop, lfd, 0, on_ready,
			    NULL) < 0 || ev_io_set(loop, lfd, events, on_ready,
			    NULL) < 0)))
				_exit(2);
			woken = 0;
			if (write(ready[1], "r", 1) != 1)
				_exit(2);
			(void)ev_run_once(loop, WAIT_MS);
			_exit(woken > 0);
		}
	}
	for (unsigned int i = 0; i < LOOPS; i++)
		assert_int_equal(read(ready[0], &c, 1), 1);
	/* Let the last of them reach epoll_wait. */
	usleep(200 * 1000);
	cfd = connect_to(&sin);
	for (unsigned int i = 0; i < LOOPS; i++) {
		assert_int_equal(waitpid(pids[i], &status, 0), pids[i]);
		assert_true(WIFEXITED(status) && WEXITSTATUS(status) <= 1);
		n += WEXITSTATUS(status);
	}
	close(cfd);
	close(lfd);
	close(ready[0]);
	close(ready[1]);
	return n;
}

static void
test_ev_shared_listener_wakes_every_loop(void **state)
{
	(void)state;
	assert_int_equal(loops_woken(EV_READ, false), LOOPS);
}

static void
test_ev_exclusive_listener_wakes_one_loop(void **state)
{
	(void)state;
	assert_int_equal(loops_woken(EV_READ | EV_EXCLUSIVE, false), 1);
}

static void
test_ev_exclusive_watch_pauses_and_resumes(void **state)
{
	(void)state;
	assert_int_equal(loops_woken(EV_READ | EV_EXCLUSIVE, true), 1);
}

static void
test_ev_paused_exclusive_watch_is_quiet(void **state)
{
	struct sockaddr_in sin;
	struct ev *loop = ev_new();
	int lfd = listener(&sin), cfd;

	(void)state;
	assert_non_null(loop);
	assert_int_equal(ev_io_set(loop, lfd, EV_READ | EV_EXCLUSIVE,
	    on_ready, NULL), 0);
	assert_int_equal(ev_io_set(loop, lfd, 0, on_ready, NULL), 0);
	woken = 0;
	cfd = connect_to(&sin);
	assert_true(ev_run_once(loop, 0) >= 0);
	assert_int_equal(woken, 0);
	assert_int_equal(ev_io_set(loop, lfd, EV_READ | EV_EXCLUSIVE,
	    on_ready, NULL), 0);
	assert_true(ev_run_once(loop, 0) >= 0);
	assert_int_equal(woken, 1);
	close(cfd);
	ev_free(&loop);
	close(lfd);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ev_shared_listener_wakes_every_loop),
		cmocka_unit_test(test_ev_exclusive_listener_wakes_one_loop),
		cmocka_unit_test(test_ev_exclusive_watch_pauses_and_resumes),
		cmocka_unit_test(test_ev_paused_exclusive_watch_is_quiet),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
