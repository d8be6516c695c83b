/*
 * The mailbox path of a user, from the `mailbox` setting: one expansion
 * for every role that opens a mailbox (the mail role, the deliver role,
 * postino-deliver), so they can never disagree on where, or on what is
 * refused.
 */
#ifndef POSTINO_STORE_PATH_H
#define POSTINO_STORE_PATH_H

#include <stddef.h>

#include "store.h"

/*
 * Expand tmpl for user (a login name, "local" or "local@domain") into out
 * (size bytes, NUL included): %u is the whole name, %n the part before
 * '@', %d the part after it ("" without one), %% a '%'; a leading ~ is
 * home. Any other byte, a '%' before any other byte included, is copied.
 *
 * The result may only go down from what the administrator wrote (issue
 * 10, finding 6: "x@.." must not make /srv/vhosts/%d/%n serve /srv/x):
 * refused are a user name that starts with '.', holds a '/' or a control
 * byte, or whose domain is empty or starts with '.'; ~ without a home;
 * a "." or ".." component anywhere in the result; a control byte in it;
 * a result that does not fit. 0, or -1 with err filled (no secret in it).
 */
int store_path_expand(const char *tmpl, const char *user, const char *home,
    char *out, size_t size, char *err);

/*
 * spec is the whole setting, "FORMAT:TEMPLATE" ("maildir:~/Maildir"):
 * the backend's ops in *ops_r, and TEMPLATE expanded as above ("pgsql:"
 * with no template is "pgsql:%u"). 0, or -1 with err filled.
 */
int store_path_resolve(const char *spec, const char *user, const char *home,
    char *out, size_t size, const struct store_ops **ops_r, char *err);

#endif
