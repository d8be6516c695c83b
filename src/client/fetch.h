/*
 * Local delivery of fetched messages: Maildir, mbox, a command (MDA) or an
 * LMTP server; each kind is a table of operations in a file of its own
 * (deliver.h).
 * A message is given line by line (pieces of long lines allowed) as it
 * arrives, stored with LF line ends, and is durable when fetch_commit()
 * returns 0; until then nothing of it is visible to a mail reader.
 *
 * Every kind spools the message to an unlinked temporary file ($TMPDIR or
 * /tmp), or the file given to fetch_set_spool(), and delivers it from there:
 * - Maildir: by the store's Maildir append (src/store/maildir_append.h):
 *   tmp/ (O_EXCL), fsync, renamed into new/ as
 *   "SECS.MUSECPPIDQSEQRTOKEN.HOST,S=SIZE,W=CRLFSIZE" (TOKEN: 12 random
 *   hex digits, the delivery's token); new/ is fsynced by fetch_sync(),
 *   once for a batch of messages. The Maildir is created (0700, not
 *   its parents) by fetch_open.
 * - mbox: appended by the store's mbox
 *   append (src/store/mbox_append.h: the MTA's locks, FILE.lock with our
 *   pid and fcntl, and its journal), mboxrd style: a "From SENDER DATE"
 *   line (SENDER from Return-Path, else MAILER-DAEMON), every line
 *   matching ^>*From  gets one more '>', X-UIDL header fields are dropped
 *   (an mbox's UIDL is its X-UIDL: no sender may choose it), an empty
 *   line after the message; fsync. Any failure truncates the mbox back to
 *   its old size.
 * - MDA: "/bin/sh -c CMD" gets the whole
 *   message on its standard input, with the user's umask
 *   (fetch_set_mda_umask); exit status 0 means delivered. In CMD, %F
 *   is the sender (from Return-Path; "" when none), %T the recipient
 *   (fetch_set_recipient), both single-quoted for the shell, %% a %. A message is
 *   never streamed to the command half-received. With a spool file
 *   (fetch_set_spool) a supervisor process runs the command and records
 *   its exit status in SPOOL.mda, so a postino killed while the MDA runs
 *   learns the outcome in the next run: exactly once, as far as the MDA
 *   itself delivers all or nothing and says so in its exit status.
 * - LMTP: handed to an LMTP server (RFC 2033,
 *   deliver_lmtp.h) at "unix:PATH" or "HOST:PORT" for the recipient of
 *   fetch_set_recipient, with the Return-Path as envelope sender. It is
 *   delivered when the server said 250 after DATA; a 5xx reply is a
 *   refusal for good (fetch_refused), anything else a temporary failure.
 *   Only a kill between that 250 and the state's record delivers the
 *   message twice (the pending token "lmtp": fetch_recover says 0).
 */
#ifndef POSTINO_FETCH_H
#define POSTINO_FETCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "../lib/str.h"
#include "limits.h"

/* The MDA result record: "status N" padded, LF; rewritten in place. */
#define FETCH_MDA_RECORD	24

enum fetch_kind {
	FETCH_MAILDIR,
	FETCH_MBOX,
	FETCH_MDA,
	FETCH_LMTP,
};

struct fetch_dest;

/* where: the Maildir, the mbox file or the command. 0, or -1 with err. */
int fetch_open(struct fetch_dest **d_r, enum fetch_kind kind,
    const char *where, char *err);

/*
 * Spool messages to path (created 0600, kept) instead of an unlinked
 * temporary file, so that after a kill fetch_recover() can prove what a
 * partial mbox append consists of. Call before fetch_recover(). 0, or -1
 * with err.
 */
int fetch_set_spool(struct fetch_dest *d, const char *path, char *err);

/* %T in the MDA command, or LMTP's RCPT TO: the user the mail is for. */
void fetch_set_recipient(struct fetch_dest *d, const char *rcpt);

/* The umask the MDA runs with (postino itself runs with 077). */
void fetch_set_mda_umask(struct fetch_dest *d, mode_t mask);

/* Start a message. 0, or -1 with err. */
int fetch_begin(struct fetch_dest *d, char *err);

/*
 * A piece of a line (without its line end; eol on the last piece): the
 * pop3c_data_fn of a RETR. -1 when a write failed; fetch_commit() then
 * fails with the reason.
 */
int fetch_data(void *d, const char *data, size_t len, bool eol);

/*
 * Get the message ready to appear and say where it will, in token (for
 * state_set_pending; at most PATH_MAX + 32 octets): Maildir: "maildir
 * TOKEN", the token its file name will carry; mbox: the mbox is locked until commit
 * or abort, "mbox OLDSIZE LENGTH SHA256 GAP FROM_LINE" (the append's
 * length and digest, the empty lines before its From_ line and that line);
 * MDA: "mda wait" (with a spool file: its outcome will be recorded), or
 * "mda"; LMTP: "lmtp". 0, or -1 with err (the message is dropped).
 */
int fetch_prepare(struct fetch_dest *d, char *token, size_t size, char *err);

/*
 * Deliver the message (prepared first if it was not): visible to readers
 * and surviving a kill of postino; durable against a power failure once
 * fetch_sync() returned (an mbox append and an MDA are durable at once).
 * 0, or -1 with err and nothing delivered.
 */
int fetch_commit(struct fetch_dest *d, char *err);

/*
 * After fetch_commit() failed: did the destination refuse the message for
 * good (an LMTP 5xx), so that trying it again is pointless?
 */
bool fetch_refused(const struct fetch_dest *d);

/*
 * Make every committed message durable (Maildir: fsync new/). Call before
 * recording them durably. 0, or -1 with err.
 */
int fetch_sync(struct fetch_dest *d, char *err);

/*
 * After a crash: did the delivery token describes land? 1 yes (for an
 * mbox: the octets after the old end have the recorded length and digest);
 * 0 no (a partial mbox append is removed
 * only when the spool proves the octets after the old end are exactly a
 * prefix of it; "mda wait": the outcome its supervisor recorded, after
 * waiting up to FETCH_MDA_WAIT seconds for it; "mda" and "lmtp": unknown, so 0:
 * delivered again rather than lost); 2 unknown, err says why and the
 * message is to be fetched again, never counted as delivered: another
 * program wrote to the mbox after a partial append (nothing is touched),
 * or the MDA's supervisor was killed too; -1 error.
 */
int fetch_recover(struct fetch_dest *d, const char *token, char *err);

/* Drop the message in progress (nothing of it is left behind). */
void fetch_abort(struct fetch_dest *d);

/* Octets of the current message as stored (LF line ends, unescaped). */
uint64_t fetch_size(const struct fetch_dest *d);

/* Abort what is in progress and free; *d is set to NULL. */
void fetch_close(struct fetch_dest **d);

#endif
