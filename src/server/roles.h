/*
 * postinod's roles; each is a process with its own event loop (DESIGN.md).
 * A role's main function takes the channel to the master on fd ROLE_MASTER_FD
 * and returns the process's exit code.
 */
#ifndef POSTINO_ROLES_H
#define POSTINO_ROLES_H

#include <sys/types.h>

#include "config.h"

#define ROLE_MASTER_FD	3	/* channel to the master */
#define ROLE_LISTEN_FD	4	/* login: first listening socket */

int master_main(const struct config *cf, const char *conf_path, bool foreground);
int authd_main(const struct config *cf);
int login_main(const struct config *cf, unsigned int nlisten);
/* mailbox.c: TRANSACTION and UPDATE for one uid (mailbox.h). */
int mail_main(const struct config *cf, uid_t uid, gid_t gid);
/* src/deliver/: the LMTP service and the per-uid delivery workers. */
int lmtp_main(const struct config *cf, unsigned int nlisten);
int deliver_main(const struct config *cf, uid_t uid, gid_t gid);

#endif
