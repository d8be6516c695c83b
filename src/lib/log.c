#include "log.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

static const char *log_ident = "postino";
static bool log_stderr = true;
static bool log_verbose;
/*
 * Our pid for stderr lines, asked once: a getpid per line was a system
 * call per logged event. A forked child forgets it (log_forget_pid).
 */
static pid_t log_pid;

static void
log_forget_pid(void)
{
	log_pid = 0;
}

void
log_init(const char *ident, bool to_stderr, bool debug)
{
	static bool atfork;

	if (!atfork && pthread_atfork(NULL, NULL, log_forget_pid) == 0)
		atfork = true;
	log_pid = 0;
	log_ident = ident;
	log_stderr = to_stderr;
	log_verbose = debug;
	if (!to_stderr)
		openlog(ident, LOG_PID | LOG_NDELAY, LOG_MAIL);
}

void
log_set_ident(const char *ident)
{
	log_ident = ident;
	if (!log_stderr) {
		closelog();
		openlog(ident, LOG_PID | LOG_NDELAY, LOG_MAIL);
	}
}

bool
log_debug_enabled(void)
{
	return log_verbose;
}

static void
log_emit(int prio, const char *fmt, va_list ap, const char *suffix)
{
	char line[2048];
	int saved = errno;

	vsnprintf(line, sizeof(line), fmt, ap);
	if (log_stderr) {
		/* One write per line, so lines from several processes never interleave. */
		char out[2200];
		int n;

		if (log_pid == 0)
			log_pid = getpid();
		n = snprintf(out, sizeof(out), "%s[%ld]: %s%s%s\n", log_ident,
		    (long)log_pid, line, suffix ? ": " : "", suffix ? suffix : "");
		if (n > 0) {
			size_t len = (size_t)n < sizeof(out) ? (size_t)n : sizeof(out) - 1;
			ssize_t w = write(STDERR_FILENO, out, len);
			(void)w;
		}
	} else {
		syslog(prio, "%s%s%s", line, suffix ? ": " : "", suffix ? suffix : "");
	}
	errno = saved;
}

#define LOG_FN(name, prio, with_errno)					\
void									\
name(const char *fmt, ...)						\
{									\
	const char *err = with_errno ? strerror(errno) : NULL;		\
	va_list ap;							\
	va_start(ap, fmt);						\
	log_emit(prio, fmt, ap, err);					\
	va_end(ap);							\
}

LOG_FN(log_warn, LOG_WARNING, 1)
LOG_FN(log_warnx, LOG_WARNING, 0)
LOG_FN(log_info, LOG_INFO, 0)

void
log_debug(const char *fmt, ...)
{
	va_list ap;

	if (!log_verbose)
		return;
	va_start(ap, fmt);
	log_emit(LOG_DEBUG, fmt, ap, NULL);
	va_end(ap);
}

void
fatal(const char *fmt, ...)
{
	const char *err = strerror(errno);
	va_list ap;

	va_start(ap, fmt);
	log_emit(LOG_CRIT, fmt, ap, err);
	va_end(ap);
	exit(1);
}

void
fatalx(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_emit(LOG_CRIT, fmt, ap, NULL);
	va_end(ap);
	exit(1);
}
