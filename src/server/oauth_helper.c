#include "oauth_helper.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../lib/ev.h"
#include "../lib/ipc.h"
#include "../lib/log.h"
#include "limits.h"

/* The program's stdout, first line, into buf, until EOF or the deadline. */
static bool
read_answer(int fd, char *buf, size_t size, uint64_t deadline)
{
	size_t got = 0;

	for (;;) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		uint64_t now = ev_now_ms();
		ssize_t n;

		if (now >= deadline)
			return false;
		if (poll(&p, 1, (int)(deadline - now)) <= 0) {
			if (errno == EINTR)
				continue;
			return false;
		}
		n = read(fd, buf + got, size - 1 - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		got += (size_t)n;
		if (got == size - 1)
			break;
	}
	buf[got] = '\0';
	buf[strcspn(buf, "\r\n")] = '\0';
	return true;
}

static void
run_check(const char *cmd, const struct oauth_check *c,
    struct oauth_verdict *v)
{
	char out[AUTH_USER_MAX + 2];
	int in[2], op[2], status = 0;
	bool answered;
	sigset_t all;
	pid_t pid;

	v->result = AUTH_TEMPFAIL;
	if (pipe2(in, O_CLOEXEC) < 0)
		return;
	if (pipe2(op, O_CLOEXEC) < 0) {
		close(in[0]);
		close(in[1]);
		return;
	}
	pid = fork();
	if (pid == 0) {
		sigemptyset(&all);
		sigprocmask(SIG_SETMASK, &all, NULL);
		if (dup2(in[0], STDIN_FILENO) < 0 ||
		    dup2(op[1], STDOUT_FILENO) < 0)
			_exit(127);
		execl(cmd, cmd, c->user, (char *)NULL);
		_exit(127);
	}
	close(in[0]);
	close(op[1]);
	/* A token is far below a pipe's 64 KB: this write never blocks. */
	if (pid > 0 && write(in[1], c->token, c->tokenlen) !=
	    (ssize_t)c->tokenlen)
		log_warnx("event=oauth-check-failed reason=write");
	close(in[1]);
	answered = pid > 0 && read_answer(op[0], out, sizeof(out),
	    ev_now_ms() + OAUTH_CHECK_TIMEOUT_MS);
	close(op[0]);
	if (pid < 0)
		return;
	if (!answered) {
		log_warnx("event=oauth-check-failed reason=timeout");
		kill(pid, SIGKILL);
	}
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (!answered || !WIFEXITED(status))
		return;
	if (WEXITSTATUS(status) == 1) {
		v->result = AUTH_PERMFAIL;
	} else if (WEXITSTATUS(status) == 0 && out[0] != '\0' &&
	    str_copy(v->owner, sizeof(v->owner), out) == 0) {
		v->result = AUTH_OK;
	}
	explicit_bzero(out, sizeof(out));
}

static void __attribute__((noreturn))
helper_loop(int sock, const char *cmd)
{
	struct ipc_msg *msg = malloc(sizeof(*msg));
	struct oauth_check *c = malloc(sizeof(*c));
	struct oauth_verdict v;
	sigset_t all;

	sigemptyset(&all);
	sigprocmask(SIG_SETMASK, &all, NULL);
	signal(SIGTERM, SIG_DFL);
	signal(SIGINT, SIG_DFL);
	if (msg == NULL || c == NULL ||
	    fcntl(sock, F_SETFL, fcntl(sock, F_GETFL) & ~O_NONBLOCK) < 0)
		_exit(1);
	/* Ends when the auth role does: its end of the channel closes. */
	while (ipc_recv_sync(sock, msg) > 0) {
		if (msg->fd >= 0)
			close(msg->fd);
		if (msg->type != OAUTH_MSG_CHECK || msg->len != sizeof(*c))
			continue;
		memcpy(c, msg->data, sizeof(*c));
		explicit_bzero(msg->data, msg->len);
		memset(&v, 0, sizeof(v));
		v.id = c->id;
		c->user[sizeof(c->user) - 1] = '\0';
		if (c->tokenlen <= sizeof(c->token))
			run_check(cmd, c, &v);
		explicit_bzero(c, sizeof(*c));
		if (ipc_send_sync(sock, OAUTH_MSG_VERDICT, &v, sizeof(v), -1) <
		    0)
			break;
	}
	_exit(0);
}

pid_t
oauth_helper_start(const char *cmd, int *fd_r)
{
	int fds[2];
	pid_t pid;

	*fd_r = -1;
	if (ipc_pair(fds) < 0)
		return -1;
	pid = fork();
	if (pid < 0) {
		close(fds[0]);
		close(fds[1]);
		return -1;
	}
	if (pid == 0) {
		/* Nothing of the auth role's but the channel stays open. */
		for (int fd = 3; fd < 1024; fd++)
			if (fd != fds[1])
				close(fd);
		helper_loop(fds[1], cmd);
	}
	close(fds[1]);
	*fd_r = fds[0];
	return pid;
}
