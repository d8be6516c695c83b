/*
 * What postino fetch has delivered, per account: the unique ids (UIDLs) of
 * the messages already stored locally. The file is replaced atomically
 * (write a temporary, fsync, rename, fsync the directory) after every
 * delivered message, so a fetch killed at any moment resumes without loss
 * and without delivering a message twice. One fetch per account at a time:
 * a lock file beside the state file is held while it is open.
 *
 * Between "stored" and "recorded" a kill would deliver a message twice,
 * so the one delivery in flight is recorded first (state_set_pending) with
 * a token from fetch_prepare(); the next run asks the destination whether
 * it landed (fetch_recover) and records or forgets it.
 *
 * File format: a first line "# postino state 1", then one id per line
 * (1..POP3C_UID_MAX octets 0x21-0x7e), any order, and at most one line
 * "pending ID TOKEN" (ids have no spaces, so it cannot be an id).
 */
#ifndef POSTINO_STATE_H
#define POSTINO_STATE_H

#include <stdbool.h>
#include <stddef.h>

#include "../lib/str.h"

#define STATE_MAGIC	"# postino state 1"
/* A pending token: printable ASCII, no line end. */
#define STATE_TOKEN_MAX	1024

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
 * Record uid (and clear a pending delivery) and save durably before
 * returning. 0, or -1 with err.
 */
int state_add(struct state *st, const char *uid, char *err);

/* Record the delivery in flight, durably. 0, or -1 with err. */
int state_set_pending(struct state *st, const char *uid, const char *token,
    char *err);
/* Forget it (it did not land), durably. 0, or -1 with err. */
int state_clear_pending(struct state *st, char *err);
/* The pending id and token, or NULL when there is none. */
const char *state_pending_uid(const struct state *st);
const char *state_pending_token(const struct state *st);

/*
 * Drop every id keep() says no to (messages no longer on the server);
 * returns how many went. Saved by the next state_add or state_save.
 */
size_t state_prune(struct state *st, bool (*keep)(const char *uid, void *arg),
    void *arg);

/* Save now (after state_prune). 0, or -1 with err. */
int state_save(struct state *st, char *err);

/* Release the lock and free; *st is set to NULL. */
void state_close(struct state **st);

#endif
