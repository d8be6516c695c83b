#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <libgen.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testutil.h"
#include "../../src/lib/ev.h"

int
tu_tmpdir_make(char *dir, size_t size, const char *name)
{
	int n = snprintf(dir, size, "/tmp/postino-test-%s.XXXXXX", name);

	if (n < 0 || (size_t)n >= size)
		return -1;
	return mkdtemp(dir) == NULL ? -1 : 0;
}

static int
remove_one(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	(void)st;
	(void)type;
	(void)ftw;
	return remove(path);
}

int
tu_tmpdir_remove(const char *dir)
{
	return nftw(dir, remove_one, 16, FTW_DEPTH | FTW_PHYS);
}

char *
tu_slurp(const char *path, size_t *len_r)
{
	static char buf[1 << 20];
	FILE *f = fopen(path, "r");
	size_t n;

	assert_non_null(f);
	n = fread(buf, 1, sizeof(buf), f);
	assert_false(ferror(f));
	assert_true(n < sizeof(buf));
	buf[n] = '\0';
	fclose(f);
	if (len_r != NULL)
		*len_r = n;
	return buf;
}

const char *
tu_passwd_tool(void)
{
	static char path[PATH_MAX];
	char self[PATH_MAX];
	const char *env = getenv("POSTINO_PASSWD_BIN");
	ssize_t n;

	if (env != NULL && env[0] != '\0')
		return env;
	n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (n <= 0)
		return NULL;
	self[n] = '\0';
	if (snprintf(path, sizeof(path), "%s/../postino-passwd",
	    dirname(self)) >= (int)sizeof(path) || access(path, X_OK) < 0)
		return NULL;
	return path;
}

int
tu_run_tool(const char *const argv[], const char *input, size_t inlen,
    char *out, size_t outsize)
{
	int in[2], res[2], status, devnull;
	size_t got = 0;
	ssize_t n;
	pid_t pid;

	assert_int_equal(pipe(in), 0);
	assert_int_equal(pipe(res), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		devnull = open("/dev/null", O_WRONLY);
		if (dup2(in[0], 0) < 0 || dup2(res[1], 1) < 0 ||
		    devnull < 0 || dup2(devnull, 2) < 0)
			_exit(127);
		close(in[1]);
		close(res[0]);
		execv(argv[0], (char *const *)argv);
		_exit(127);
	}
	close(in[0]);
	close(res[1]);
	/*
	 * Small inputs fit in the pipe, so no deadlock; a tool that exits
	 * before reading makes this fail with EPIPE. SIGPIPE is ignored here,
	 * not by each caller: test_sasl did not, and died when the tool was
	 * quicker than this write (seen once under load).
	 */
	signal(SIGPIPE, SIG_IGN);
	n = write(in[1], input, inlen);
	assert_true(n == (ssize_t)inlen || (n < 0 && errno == EPIPE));
	close(in[1]);
	while ((n = read(res[0], out + got, outsize - 1 - got)) > 0)
		got += (size_t)n;
	out[got] = '\0';
	close(res[0]);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	return WEXITSTATUS(status);
}

void
tu_socketpair(int sv[2])
{
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0,
	    sv), 0);
}

size_t
tu_exchange(const struct tu_loop *l, const void *buf, size_t len, char *out,
    size_t outsize, unsigned int patience)
{
	size_t got = 0;

	if (len > 0)
		assert_int_equal(write(l->peer, buf, len), (ssize_t)len);
	for (unsigned int idle = 0; idle < patience && got + 1 < outsize;) {
		struct pollfd pfd = { .fd = l->peer, .events = POLLIN };
		ssize_t n;

		if (l->stopped == NULL || !*l->stopped)
			ev_run_once(l->ev, 5);
		if (poll(&pfd, 1, 5) != 1) {
			idle++;
			continue;
		}
		n = read(l->peer, out + got, outsize - 1 - got);
		if (n == 0)
			break;
		if (n < 0) {
			idle++;
			continue;
		}
		got += (size_t)n;
		idle = 0;
	}
	out[got] = '\0';
	return got;
}
