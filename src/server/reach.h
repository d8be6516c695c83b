/*
 * `postinod -t`: can every account's mail uid reach its mailbox root?
 * A mail process runs as the account's uid (the passwd-file's, else
 * mail_user), so a mailbox under a directory that uid cannot search
 * (Debian's /root is mode 0700) fails only at login, with the reason
 * in the server log. This finds it before start-up.
 */
#ifndef POSTINO_REACH_H
#define POSTINO_REACH_H

#include <stdio.h>

#include "config.h"
#include "limits.h"

/*
 * As root only (otherwise every role runs as the caller: 0). For each
 * account of passwd_file, the mailbox setting's directory part up to the
 * first %-variable, with ~ as the account's home, is walked as that
 * account's mail uid and gid; every directory that cannot be searched is
 * reported on out, one line each. Returns the number of problems (0 =
 * fine), or -1 when the check itself failed (also reported).
 */
int reach_check(const struct config *cf, FILE *out);

#endif
