/*
 * One delivery into one user's mailbox, the same for the LMTP service's
 * deliver workers and for postino-deliver: mailbox path from the
 * configuration and the account, headers from the envelope, append through
 * the store. Runs as the mailbox owner, never as root.
 */
#ifndef POSTINO_DELIVERY_H
#define POSTINO_DELIVERY_H

#include "../auth/auth.h"
#include "../server/config.h"
#include "../store/store.h"

/*
 * Deliver the message in fd (LF line ends, see store.h) for u. sender:
 * the reverse-path for Return-Path ("" for <>, NULL: no header); rcpt:
 * the address for Delivered-To (NULL: no header); each also off when the
 * configuration says so. err filled unless STORE_OK.
 */
enum store_result delivery_run(const struct config *cf,
    const struct auth_user *u, int fd, const char *sender, const char *rcpt,
    const char *token, char *err);

/*
 * Was the delivery with this token stored in u's mailbox (store.h probe)?
 * STORE_OK yes, STORE_PERMFAIL no, STORE_TEMPFAIL unknown.
 */
enum store_result delivery_probe(const struct config *cf,
    const struct auth_user *u, const char *token, char *err);

/*
 * Expand cf->mailbox for u: "maildir:" or "mbox:", then %u, %n, %d, %%
 * and a leading ~ (store_path_resolve(), the one expansion the mail role
 * uses too). A user name that would leave the directory (".", "..",
 * "/") is refused. 0, or -1 with err.
 */
int delivery_mailbox_path(const struct config *cf, const struct auth_user *u,
    char *out, size_t size, const struct store_ops **ops_r, char *err);

/*
 * Has u a delivery quota: its own (auth_user quota_*), else the configured
 * lmtp_quota_bytes or lmtp_quota_messages? (max_mailbox_size and
 * max_messages bound every delivery too, but are not a reason to look.)
 */
bool delivery_has_quota(const struct config *cf, const struct auth_user *u);

/*
 * Is u's mailbox already at its quota? STORE_OVERQUOTA, STORE_OK, or
 * STORE_TEMPFAIL when it cannot be told (LMTP then accepts the RCPT and
 * the delivery checks again).
 */
enum store_result delivery_quota(const struct config *cf,
    const struct auth_user *u, char *err);

/*
 * Started as root (postino-deliver, postino-migrate): become u's mailbox
 * owner, its uid or mail_user's, with mail_privileged_group. 0 (also
 * when not root), -1 a configuration problem, -2 the drop failed; err
 * filled unless 0.
 */
int delivery_become_owner(const struct config *cf, const struct auth_user *u,
    char *err);

/*
 * The LMTP reply for a result (one line, no CRLF), for rcpt; a full mailbox
 * is 452 4.2.2 when quota_temporary, else 552 5.2.2.
 */
void delivery_reply(enum store_result r, bool quota_temporary,
    const char *rcpt, char *out, size_t size);

#endif
