/*
 * The token-check helper of the auth role (oauth2_token_command): opaque
 * OAuth tokens (or JWTs checked some other way) go to an administrator's
 * program. The auth role runs under a seccomp filter that forbids exec,
 * so it forks this helper first (after dropping to auth_user, before the
 * filter). The helper runs one check at a time: the program gets the
 * user name as its only argument and the token on stdin (never in argv
 * or the environment), and answers with its exit status and the first
 * line of its stdout:
 *	exit 0, a user name	the token is valid and belongs to that user
 *	exit 1			the token is invalid (a failed login)
 *	anything else		the check could not be made (try later)
 * A program that takes longer than OAUTH_CHECK_TIMEOUT_MS is killed: a
 * temporary failure.
 */
#ifndef POSTINO_OAUTH_HELPER_H
#define POSTINO_OAUTH_HELPER_H

#include <stdint.h>
#include <sys/types.h>

#include "../auth/auth.h"
#include "../auth/sasl.h"

enum oauth_helper_msg {
	OAUTH_MSG_CHECK = 1,	/* auth role -> helper */
	OAUTH_MSG_VERDICT,	/* helper -> auth role */
};

struct oauth_check {
	uint64_t	id;
	uint32_t	tokenlen;
	char		user[AUTH_USER_MAX + 1];	/* "" unknown */
	char		token[SASL_RESPONSE_MAX];
};

struct oauth_verdict {
	uint64_t	id;
	int32_t		result;				/* enum auth_result */
	char		owner[AUTH_USER_MAX + 1];	/* AUTH_OK */
};

_Static_assert(sizeof(struct oauth_check) <= 8192,
    "a check must fit one IPC message (IPC_MAX)");

/*
 * Fork the helper for program cmd: the caller's end of their channel in
 * *fd_r (nonblocking, close-on-exec). The helper's pid, or -1.
 */
pid_t oauth_helper_start(const char *cmd, int *fd_r);

#endif
