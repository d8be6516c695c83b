/*
 * Delivery through a command (fetch.h): /bin/sh -c CMD with the message
 * on its standard input, run by a supervisor that records the outcome.
 */
#include "deliver.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* Signals a terminal or a service manager sends the whole group. */
static const int mda_signals[] = { SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGPIPE };

/* Append v to the command in single quotes, so the shell takes it as is. */
static int
quote_arg(char *dst, size_t size, size_t *o, const char *v)
{
	if (*o + 1 >= size)
		return -1;
	dst[(*o)++] = '\'';
	for (; *v != '\0'; v++) {
		if (*v == '\'') {
			/* ' ends the quote, \' is a quote, ' starts again. */
			if (*o + 4 >= size)
				return -1;
			memcpy(dst + *o, "'\\''", 4);
			*o += 4;
		} else {
			if (*o + 1 >= size)
				return -1;
			dst[(*o)++] = *v;
		}
	}
	if (*o + 1 >= size)
		return -1;
	dst[(*o)++] = '\'';
	return 0;
}

/*
 * The MDA command with %F (the sender from Return-Path, "" when none), %T
 * (the recipient, fetch_set_recipient) and %% expanded, values quoted for
 * /bin/sh: a sender such as "a';rm -rf ~;'" stays one argument. 0 or -1.
 */
static int
mda_command(const struct fetch_dest *d, char *cmd, size_t size)
{
	size_t o = 0;

	for (const char *p = d->where; *p != '\0'; p++) {
		if (*p == '%' && (p[1] == 'F' || p[1] == 'T')) {
			if (quote_arg(cmd, size, &o, p[1] == 'F' ? d->sender :
			    d->recipient) < 0)
				return -1;
			p++;
			continue;
		}
		if (*p == '%' && p[1] == '%')
			p++;
		if (o + 1 >= size)
			return -1;
		cmd[o++] = *p;
	}
	cmd[o] = '\0';
	return 0;
}

/* In a child: the MDA, with the user's umask and default signals. */
static void
mda_exec(struct fetch_dest *d)
{
	for (size_t i = 0; i < sizeof(mda_signals) / sizeof(*mda_signals); i++)
		(void)signal(mda_signals[i], SIG_DFL);
	(void)umask(d->mda_umask);
	if (dup2(d->fd, STDIN_FILENO) < 0)
		_exit(127);
	execl("/bin/sh", "sh", "-c", d->cmd, (char *)NULL);
	_exit(127);
}

static int
wait_child(pid_t pid, int *status, char *err)
{
	while (waitpid(pid, status, 0) < 0) {
		if (errno != EINTR) {
			(void)str_fmt(err, ERR_LEN, "waitpid: %s",
			    strerror(errno));
			return -1;
		}
	}
	return 0;
}

/*
 * With a result file (fetch_set_spool): a supervisor process runs the
 * MDA and writes its wait status to the file, under an flock taken before
 * the fork. It ignores the signals a terminal sends its whole group, so
 * a postino killed in the middle (kill -9, Ctrl-C) leaves the MDA's
 * outcome on disk for the next run, which waits for the lock and reads
 * it: delivered exactly once. Only when the supervisor dies too (a kill
 * of the whole group or cgroup with SIGKILL, a power failure) is the
 * outcome unknown, and the message is delivered again.
 */
static int
mda_supervise(struct fetch_dest *d, int *status, char *err)
{
	char line[FETCH_MDA_RECORD + 1];
	pid_t pid;
	ssize_t n;

	pid = fork();
	if (pid < 0) {
		(void)str_fmt(err, ERR_LEN, "fork: %s", strerror(errno));
		return -1;
	}
	if (pid == 0) {
		pid_t mda;
		int st;

		unsigned int lo = (unsigned int)(d->fd < d->result_fd ? d->fd :
		    d->result_fd), hi = (unsigned int)(d->fd < d->result_fd ?
		    d->result_fd : d->fd);

		for (size_t i = 0; i < sizeof(mda_signals) /
		    sizeof(*mda_signals); i++)
			(void)signal(mda_signals[i], SIG_IGN);
		/*
		 * Only the spool and the result file: the state's lock, the
		 * server's socket and the rest must go with postino.
		 */
		if ((lo > 3 && close_range(3, lo - 1, 0) < 0) ||
		    (hi > lo + 1 && close_range(lo + 1, hi - 1, 0) < 0) ||
		    close_range(hi + 1, ~0U, 0) < 0)
			_exit(1);
		mda = fork();
		if (mda < 0)
			_exit(1);
		if (mda == 0)
			mda_exec(d);
		while (waitpid(mda, &st, 0) < 0)
			if (errno != EINTR)
				_exit(1);
		/*
		 * No fsync: a kill of postino leaves it in the page cache,
		 * which is what this is for; after a power failure an empty
		 * file means "unknown", delivered again (never lost).
		 */
		(void)str_fmt(line, sizeof(line), "status %-*d\n",
		    FETCH_MDA_RECORD - 8, st);
		if (pwrite(d->result_fd, line, FETCH_MDA_RECORD, 0) !=
		    FETCH_MDA_RECORD)
			_exit(1);
		_exit(0);
	}
	if (wait_child(pid, status, err) < 0)
		return -1;
	n = pread(d->result_fd, line, sizeof(line) - 1, 0);
	line[n > 0 ? n : 0] = '\0';
	if (sscanf(line, "status %d", status) != 1) {
		str_copy(err, ERR_LEN, "mda supervisor failed");
		return -1;
	}
	return 0;
}

static int
mda_commit(struct fetch_dest *d, char *err)
{
	int status, rc;
	pid_t pid;

	if (deliver_rewind_spool(d, err) < 0)
		return -1;
	if (mda_command(d, d->cmd, sizeof(d->cmd)) < 0) {
		str_copy(err, ERR_LEN, "mda command too long with %F/%T "
		    "expanded");
		return -1;
	}
	if (d->result_fd >= 0) {
		rc = mda_supervise(d, &status, err);
		if (rc < 0)
			return -1;
	} else {
		pid = fork();
		if (pid < 0) {
			(void)str_fmt(err, ERR_LEN, "fork: %s",
			    strerror(errno));
			return -1;
		}
		if (pid == 0)
			mda_exec(d);
		if (wait_child(pid, &status, err) < 0)
			return -1;
	}
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
		return 0;
	if (WIFEXITED(status))
		(void)str_fmt(err, ERR_LEN, "mda failed (exit status %d): %s",
		    WEXITSTATUS(status), d->where);
	else
		(void)str_fmt(err, ERR_LEN, "mda failed (signal %d): %s",
		    WTERMSIG(status), d->where);
	return -1;
}

/*
 * The result file, opened and locked once (after recovery read the last
 * run's), then rewritten in place for each message: a record of fixed
 * length, never truncated (ext4 flushes a file truncated to zero and
 * written again when it is closed, which would cost as much as an fsync).
 * Token "mda wait".
 */
static int
mda_prepare(struct fetch_dest *d, char *token, size_t size, char *err)
{
	char rec[FETCH_MDA_RECORD + 1];

	if (deliver_flush(d) < 0) {
		(void)str_fmt(err, ERR_LEN, "temporary file: %s",
		    strerror(errno));
		return -1;
	}
	if (!d->spool_named)
		return str_fmt(token, size, "mda");
	if (d->result_fd < 0) {
		d->result_fd = open(d->result, O_RDWR | O_CREAT | O_CLOEXEC |
		    O_NOFOLLOW, 0600);
		if (d->result_fd < 0 ||
		    flock(d->result_fd, LOCK_EX | LOCK_NB) < 0) {
			(void)str_fmt(err, ERR_LEN, "%s: %s", d->result,
			    strerror(errno));
			if (d->result_fd >= 0)
				close(d->result_fd);
			d->result_fd = -1;
			return -1;
		}
	}
	(void)str_fmt(rec, sizeof(rec), "%-*s\n", FETCH_MDA_RECORD - 1,
	    "unknown");
	if (pwrite(d->result_fd, rec, FETCH_MDA_RECORD, 0) !=
	    FETCH_MDA_RECORD) {
		(void)str_fmt(err, ERR_LEN, "%s: %s", d->result,
		    strerror(errno));
		return -1;
	}
	return str_fmt(token, size, "mda wait");
}

/*
 * "mda wait": the outcome a supervisor wrote (see mda_supervise), once it
 * let go of the lock (bounded wait: it may still be running the MDA).
 */
static int
mda_recover_wait(struct fetch_dest *d, char *err)
{
	char line[32];
	ssize_t n;
	int fd, status, tries = 0;

	if (!d->spool_named)
		return 0;
	fd = open(d->result, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0 && errno != ENOENT) {
		(void)str_fmt(err, ERR_LEN, "%s: %s", d->result,
		    strerror(errno));
		return -1;
	}
	while (fd >= 0 && flock(fd, LOCK_SH | LOCK_NB) < 0) {
		if (errno != EWOULDBLOCK ||
		    ++tries > FETCH_MDA_WAIT * 10) {
			(void)str_fmt(err, ERR_LEN, "%s: the mda of an "
			    "interrupted run is still running (%s)", d->where,
			    errno == EWOULDBLOCK ? "waited too long" :
			    strerror(errno));
			close(fd);
			return -1;
		}
		(void)nanosleep(&(struct timespec){ 0, 100000000L }, NULL);
	}
	n = fd >= 0 ? pread(fd, line, sizeof(line) - 1, 0) : 0;
	if (fd >= 0)
		close(fd);
	line[n > 0 ? n : 0] = '\0';
	if (sscanf(line, "status %d", &status) != 1) {
		(void)str_fmt(err, ERR_LEN, "the last run was interrupted "
		    "while the mda ran and its outcome is unknown; the "
		    "message it was given is delivered again");
		return 2;
	}
	return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 1 : 0;
}

/* "mda": unknown, delivered again (0); "mda wait": what was recorded. */
static int
mda_recover(struct fetch_dest *d, const char *arg, char *err)
{
	if (arg[0] == '\0')
		return 0;
	if (strcmp(arg, "wait") == 0)
		return mda_recover_wait(d, err);
	str_copy(err, ERR_LEN, "unknown pending delivery in the state file");
	return -1;
}

const struct deliver_ops deliver_mda_ops = {
	.name = "mda",
	.prepare = mda_prepare,
	.commit = mda_commit,
	.recover = mda_recover,
};
