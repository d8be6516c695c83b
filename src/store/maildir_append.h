/*
 * The Maildir append (store.h: store_maildir_ops.append, and .probe to
 * find a delivery by its token) for a caller that delivers in batches and
 * records each delivery's token before the append, so that after a kill
 * it can ask whether the message landed (postino fetch: its state file).
 * The one Maildir writer is store_maildir.c's; these are its two extra
 * steps: the Maildir made ready once, and new/ fsynced once per batch
 * (store_delivery.dir_sync_later).
 */
#ifndef POSTINO_MAILDIR_APPEND_H
#define POSTINO_MAILDIR_APPEND_H

#include "store.h"

/*
 * Create the Maildir at p->path (0700; its parent must exist) with tmp/,
 * new/ and cur/, and remove the files in tmp/ that appends on this
 * host left when they were killed (their pid is gone). STORE_OK, or an
 * error with err.
 */
enum store_result store_maildir_ready(const struct store_params *p,
    char *err);

/*
 * fsync new/ of the Maildir at p->path, so the renames of the appends made
 * with dir_sync_later are durable. STORE_OK, or an error with err.
 */
enum store_result store_maildir_sync(const struct store_params *p,
    char *err);

#endif
