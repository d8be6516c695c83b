/*
 * What every part of the postino command shares: its exit codes and its
 * way of saying what went wrong.
 */
#ifndef POSTINO_CLIENT_H
#define POSTINO_CLIENT_H

#include "pop3c.h"

/* Exit codes: part of the command-line contract (README, usage). */
enum {
	EXIT_OK		= 0,
	EXIT_USAGE	= 1,
	EXIT_NET	= 2,	/* connection or network failure */
	EXIT_TLS	= 3,
	EXIT_AUTH	= 4,
	EXIT_INUSE	= 5,	/* [IN-USE], [LOGIN-DELAY], local lock */
	EXIT_LOCAL	= 6,	/* local delivery failed; nothing lost */
	EXIT_PROTO	= 7,	/* the server erred or broke the protocol */
};

/* "postino: MESSAGE" on stderr, on a line of its own (not after a bar). */
void client_warnx(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* The exit code for a pop3c failure. */
int client_exit_for(enum pop3c_error e);

#endif
