/*
 * The seccomp filter: a listed call runs, an unlisted one never does (the
 * process ends with 128 + SIGSYS), open is read-only and socket AF_UNIX
 * only when the flags say so. Each case runs in a child process.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../../src/lib/sandbox.h"

static const int allowed[] = {
	SYS_read, SYS_close, SYS_getpid, SYS_brk, SYS_mmap, SYS_munmap,
	SYS_rt_sigprocmask, SYS_exit, SYS_fstat, SYS_newfstatat, SYS_lseek,
	SYS_futex,
};

enum probe { PROBE_GETPID, PROBE_GETSID, PROBE_OPEN_RO, PROBE_OPEN_RW,
	PROBE_UNIX, PROBE_INET };

/* The exit status of a child that installs the filter, then tries p. */
static int
run_probe(enum probe p)
{
	char err[ERR_LEN];
	int status = -1, fd;
	pid_t pid = fork();

	if (pid == 0) {
		if (sandbox_allow(allowed, sizeof(allowed) / sizeof(allowed[0]),
		    SANDBOX_OPEN_RDONLY | SANDBOX_SOCKET_UNIX, err) < 0)
			_exit(2);
		switch (p) {
		case PROBE_GETPID:
			_exit(syscall(SYS_getpid) > 0 ? 0 : 1);
		case PROBE_GETSID:
			_exit(syscall(SYS_getsid, 0) > 0 ? 0 : 1);
		case PROBE_OPEN_RO:
			fd = (int)syscall(SYS_openat, AT_FDCWD, "/dev/null",
			    O_RDONLY);
			_exit(fd >= 0 ? 0 : 1);
		case PROBE_OPEN_RW:
			fd = (int)syscall(SYS_openat, AT_FDCWD, "/dev/null",
			    O_RDWR);
			_exit(fd >= 0 ? 0 : 1);
		case PROBE_UNIX:
			fd = (int)syscall(SYS_socket, AF_UNIX, SOCK_DGRAM, 0);
			_exit(fd >= 0 ? 0 : 1);
		case PROBE_INET:
			fd = (int)syscall(SYS_socket, AF_INET, SOCK_STREAM, 0);
			_exit(fd >= 0 ? 0 : 1);
		}
		_exit(3);
	}
	assert_true(pid > 0);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	return WEXITSTATUS(status);
}

static void
test_listed_calls_run(void **state)
{
	(void)state;
	assert_int_equal(run_probe(PROBE_GETPID), 0);
	assert_int_equal(run_probe(PROBE_OPEN_RO), 0);
	assert_int_equal(run_probe(PROBE_UNIX), 0);
}

static void
test_anything_else_never_runs(void **state)
{
	(void)state;
	assert_int_equal(run_probe(PROBE_GETSID), 128 + SIGSYS);
	assert_int_equal(run_probe(PROBE_OPEN_RW), 128 + SIGSYS);
	assert_int_equal(run_probe(PROBE_INET), 128 + SIGSYS);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_listed_calls_run),
		cmocka_unit_test(test_anything_else_never_runs),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
