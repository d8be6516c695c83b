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

#endif
