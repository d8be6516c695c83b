/*
 * A seccomp filter (seccomp(2), BPF) that lets a process make only the
 * system calls it names, for a role that must keep working after a bug
 * in it is exploited: whatever the attacker's code tries beyond the list
 * never runs. Linux x86-64 and aarch64; elsewhere sandbox_allow() fails.
 */
#ifndef POSTINO_SANDBOX_H
#define POSTINO_SANDBOX_H

#include <stddef.h>

#include "str.h"

enum sandbox_flags {
	/* open/openat only without O_WRONLY, O_RDWR, O_CREAT, O_TRUNC. */
	SANDBOX_OPEN_RDONLY	= 1 << 0,
	/* socket() only for AF_UNIX (syslog's /dev/log). */
	SANDBOX_SOCKET_UNIX	= 1 << 1,
	/*
	 * socket() and connect() never run but fail with EACCES instead of
	 * ending the process: glibc's syslog() tries to reconnect to
	 * /dev/log after syslogd restarted, which in a chroot fails anyway.
	 */
	SANDBOX_NET_EACCES	= 1 << 2,
	/* ioctl() only for SIOCOUTQ (bytes unsent on a socket). */
	SANDBOX_IOCTL_OUTQ	= 1 << 3,
};

/* The roles with a filter of their own, each with its allow list. */
enum sandbox_role {
	SANDBOX_ROLE_AUTH,
	SANDBOX_ROLE_LOGIN,
};

/*
 * Set no_new_privs and install a filter that allows the n system calls
 * in nrs (plus what flags allow), and for any other call neither runs it
 * nor returns: SIGSYS, whose handler logs the call's number and ends the
 * process (status 159 style: the master logs and restarts the role).
 * Builds with AddressSanitizer allow what it needs at exit too. 0, or -1
 * with err filled.
 */
int sandbox_allow(const int *nrs, size_t n, unsigned int flags, char *err);

/*
 * sandbox_allow() with the role's own list (sandbox.c says what each
 * role does once it serves, and so may do). Call it once the role has
 * dropped its privileges and done whatever needs a file: tzset(), the
 * syslog connection, tls_init(). 0, or -1 with err filled.
 */
int sandbox_enter(enum sandbox_role role, char *err);

#endif
