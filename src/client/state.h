/*
 * What postino fetch has delivered, per account: the unique ids (UIDLs) of
 * the messages already stored locally, each with the time it was first
 * recorded. One fetch per account at a time: a lock file beside the state
 * file is held while it is open.
 *
 * The file is an append-only journal, one record per line, each written
 * with one write(2): a kill -9 leaves every record whole or absent, and
 * a record torn by a power failure (the last line without its newline)
 * is ignored and cut off. state_sync() makes what was appended durable;
 * the caller syncs once per batch of deliveries, after making the
 * deliveries themselves durable. A journal that grew past twice its live
 * records (plus STATE_COMPACT_SLACK) is rewritten atomically at open
 * (write a temporary, fsync, rename, fsync the directory), as is a file
 * in the old format, and state_save() does the same on demand.
 *
 * Between "stored" and "recorded" a kill would deliver a message twice,
 * so the one delivery in flight is recorded first (state_set_pending) with
 * a token from fetch_prepare(); the next run asks the destination whether
 * it landed (fetch_recover) and records or forgets it.
 *
 * Format 2: a first line "# postino state 2", then records:
 *   +ID SECONDS   delivered; SECONDS: Unix time first recorded
 *   -ID           forgotten (accepted; postino rewrites the file instead)
 *   ?ID TOKEN     delivery in flight (the last one counts)
 *   ~ID           the delivery in flight did not land
 * where ID is 1..POP3C_UID_MAX octets 0x21-0x7e. Format 1 ("# postino
 * state 1", one id per line, at most one "pending ID TOKEN") is read and
 * rewritten as format 2.
 */
#ifndef POSTINO_STATE_H
#define POSTINO_STATE_H

#include <stdbool.h>
#include <stddef.h>

#include "../lib/str.h"
#include "limits.h"

#define STATE_MAGIC	"# postino state 2"
#define STATE_MAGIC_V1	"# postino state 1"

struct state;

/*
 * The state directory: $XDG_STATE_HOME/postino, else
 * $HOME/.local/state/postino. 0, or -1 with err.
 */
int state_default_dir(char *dir, size_t size, char *err);

/*
 * Open the state of account key (any text, e.g. "alice@host:110"; it is
 * encoded into a file name) in dir, creating dir (0700) as needed, taking
 * the account's lock and loading the ids. 0 opened, 1 another process
 * holds the lock, -1 failure (a corrupt file is a failure, never an empty
 * state: that would deliver every message again). err filled unless 0.
 */
int state_open(struct state **st_r, const char *dir, const char *key,
    char *err);

/* The state file's path (for messages). */
const char *state_path(const struct state *st);
/*
 * A file beside the state, private to the account (its lock is held), for
 * fetch_set_spool(): it outlives a kill, so recovery can compare.
 */
const char *state_spool_path(const struct state *st);
size_t state_count(const struct state *st);
bool state_has(const struct state *st, const char *uid);

/*
 * Record uid (and clear a pending delivery): appended, durable at the
 * next state_sync(). 0, or -1 with err.
 */
int state_add(struct state *st, const char *uid, char *err);

/* Record the delivery in flight (appended). 0, or -1 with err. */
int state_set_pending(struct state *st, const char *uid, const char *token,
    char *err);
/* Forget it (it did not land; appended). 0, or -1 with err. */
int state_clear_pending(struct state *st, char *err);

/* fsync what was appended since the last sync. 0, or -1 with err. */
int state_sync(struct state *st, char *err);

/* When uid was first recorded (Unix seconds), or -1 if it is not. */
long long state_first_seen(const struct state *st, const char *uid);
/* The pending id and token, or NULL when there is none. */
const char *state_pending_uid(const struct state *st);
const char *state_pending_token(const struct state *st);

/*
 * Drop every id keep() says no to (messages no longer on the server);
 * returns how many went. Saved by the next state_add or state_save.
 */
size_t state_prune(struct state *st, bool (*keep)(const char *uid, void *arg),
    void *arg);

/* Rewrite the file now, durably (after state_prune). 0, or -1 with err. */
int state_save(struct state *st, char *err);

/* Release the lock and free; *st is set to NULL. */
void state_close(struct state **st);

#endif
