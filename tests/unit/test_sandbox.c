/*
 * The seccomp filter: a listed call runs, an unlisted one never does (the
 * process ends with 128 + SIGSYS), open is read-only and socket AF_UNIX
 * only when the flags say so; the login role's list (sandbox_enter) opens
 * nothing and makes no socket. Each case runs in a child process.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <linux/sockios.h>

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

enum login_probe { LP_GETPID, LP_SOCKETPAIR, LP_OUTQ, LP_OPEN_RO,
	LP_OPEN_CREAT, LP_SOCKET, LP_CONNECT, LP_EXEC, LP_FIONREAD };

/*
 * The exit status of a child under the login role's filter that tries p:
 * 0 when the call ran, 1 when it failed with EACCES without running.
 */
static int
run_login_probe(enum login_probe p)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	char err[ERR_LEN];
	int status = -1, sv[2], n;
	long r = -1;
	pid_t pid = fork();

	if (pid == 0) {
		if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0 ||
		    sandbox_enter(SANDBOX_ROLE_LOGIN, err) < 0)
			_exit(2);
		switch (p) {
		case LP_GETPID:
			r = syscall(SYS_getpid);
			break;
		case LP_SOCKETPAIR:
			r = syscall(SYS_socketpair, AF_UNIX, SOCK_STREAM, 0, sv);
			break;
		case LP_OUTQ:
			r = syscall(SYS_ioctl, sv[0], SIOCOUTQ, &n);
			break;
		case LP_OPEN_RO:
			r = syscall(SYS_openat, AT_FDCWD, "/dev/null", O_RDONLY);
			break;
		case LP_OPEN_CREAT:
			r = syscall(SYS_openat, AT_FDCWD, "/nonexistent/x",
			    O_WRONLY | O_CREAT, 0600);
			break;
		case LP_SOCKET:
			r = syscall(SYS_socket, AF_UNIX, SOCK_DGRAM, 0);
			break;
		case LP_CONNECT:
			str_copy(sun.sun_path, sizeof(sun.sun_path), "/dev/log");
			r = syscall(SYS_connect, sv[0], &sun, sizeof(sun));
			break;
		case LP_EXEC:
			r = syscall(SYS_execve, "/bin/true", NULL, NULL);
			break;
		case LP_FIONREAD:
			r = syscall(SYS_ioctl, sv[0], FIONREAD, &n);
			break;
		}
		_exit(r >= 0 ? 0 : errno == EACCES ? 1 : 3);
	}
	assert_true(pid > 0);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	return WEXITSTATUS(status);
}

static void
test_login_role_serves(void **state)
{
	(void)state;
	assert_int_equal(run_login_probe(LP_GETPID), 0);
	assert_int_equal(run_login_probe(LP_SOCKETPAIR), 0);
	assert_int_equal(run_login_probe(LP_OUTQ), 0);
}

static void
test_login_role_opens_no_file_and_runs_nothing(void **state)
{
	(void)state;
#if !defined(__SANITIZE_ADDRESS__)
	/* (Sanitizer builds may read /proc for LeakSanitizer at exit.) */
	assert_int_equal(run_login_probe(LP_OPEN_RO), 128 + SIGSYS);
	assert_int_equal(run_login_probe(LP_FIONREAD), 128 + SIGSYS);
#endif
	assert_int_equal(run_login_probe(LP_OPEN_CREAT), 128 + SIGSYS);
	assert_int_equal(run_login_probe(LP_EXEC), 128 + SIGSYS);
}

static void
test_login_role_makes_no_socket_and_connects_nowhere(void **state)
{
	(void)state;
	/* Refused without running, not killed: syslog() may try. */
	assert_int_equal(run_login_probe(LP_SOCKET), 1);
	assert_int_equal(run_login_probe(LP_CONNECT), 1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_listed_calls_run),
		cmocka_unit_test(test_anything_else_never_runs),
		cmocka_unit_test(test_login_role_serves),
		cmocka_unit_test(test_login_role_opens_no_file_and_runs_nothing),
		cmocka_unit_test(
		    test_login_role_makes_no_socket_and_connects_nowhere),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
