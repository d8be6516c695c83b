/*
 * Giving up root for good.
 */
#ifndef POSTINO_PRIV_H
#define POSTINO_PRIV_H

#include <stdbool.h>
#include <sys/types.h>

#include "str.h"

/*
 * When running as root: refuse uid 0 and gid 0 (also as extra_gid), chroot
 * to dir (unless NULL), then setgroups to gid alone, setresgid (real and
 * effective gid, saved extra_gid unless it is (gid_t)-1: see
 * priv_group_raise), setresuid, and verify with getresuid/getresgid that
 * root cannot be regained. Not root: does nothing (the demo and tests run
 * every role as the caller). 0, or -1 with err filled.
 */
int priv_drop(uid_t uid, gid_t gid, gid_t extra_gid, const char *chroot_dir,
    char *err);

/*
 * The group priv_drop() kept aside (extra_gid, the saved group id) made
 * effective, and back: only around what needs it, such as creating a
 * dotlock or a new spool in a directory writable by that group (Dovecot's
 * mail_privileged_group), never while opening a mailbox. Nothing kept
 * aside: both do nothing. Lowering cannot fail short of a kernel bug
 * (fatal then: the process must not go on with the group).
 */
void priv_group_raise(void);
void priv_group_lower(void);

/* Look a group up in the system database. 0 or -1. */
int priv_group(const char *name, gid_t *gid_r);

/* Look a user up in the system database. 0 or -1. */
int priv_user(const char *name, uid_t *uid_r, gid_t *gid_r);

bool priv_is_root(void);

#endif
