/*
 * postino fetch --daemon: poll accounts on a schedule until SIGTERM or
 * SIGINT; SIGHUP polls at once, with the account list read again.
 */
#ifndef POSTINO_DAEMON_H
#define POSTINO_DAEMON_H

#include <stddef.h>
#include <stdint.h>

#include "account.h"
#include "limits.h"


struct daemon_job {
	uint32_t	 interval;	/* seconds between polls */
	/* The accounts to poll: EXIT_OK with *n_r, else it said why. */
	int		(*names)(void *arg,
			    char (*names)[ACCOUNT_NAME_MAX + 1], size_t *n_r);
	/* Fetch one; 0 ok; *delay_r: the server's LOGIN-DELAY, if any. */
	int		(*fetch)(void *arg, const char *name,
			    uint32_t *delay_r);
	void		*arg;
};

/* Poll until told to stop; the exit code (0). */
int daemon_run(const struct daemon_job *job);

#endif
