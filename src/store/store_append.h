/*
 * The copy step every backend's append shares; not for use outside src/store.
 */
#ifndef POSTINO_STORE_APPEND_H
#define POSTINO_STORE_APPEND_H

#include <stdbool.h>
#include <stdint.h>

#include "store.h"
#include "mbox_append.h"

enum store_escape {
	STORE_ESCAPE_NONE,	/* Maildir: the bytes as they are */
	STORE_ESCAPE_MBOXRD,	/* mbox: ">*From " gains one '>' */
	STORE_ESCAPE_MBOXO,	/* mbox read as mboxo: only "From " is quoted */
};

/*
 * Write d's headers and then the message read from in (pread from offset 0)
 * to out at its current offset, with CRLF line ends when d->crlf, escaped
 * per esc. For an mbox (esc not NONE) every X-UIDL field of the message's
 * header is dropped and d->uidl, if set, written as "X-UIDL:" before the
 * other headers: the only X-UIDL an mbox message has is the one given. *stored_r: octets written; *crlf_r: the message's POP3 size (lib/
 * crlf.h) as a reader of the written bytes computes it; *ends_lf_r: the last
 * written octet is LF (an mbox needs one before the next From_ line).
 * 0, or -1 with err filled and errno kept (ENOSPC, EDQUOT).
 */
int store_append_copy(int in, int out, const struct store_delivery *d,
    enum store_escape esc, uint64_t *stored_r, uint64_t *crlf_r,
    bool *ends_lf_r, char *err);

/* The same octets to sink(arg, ...) instead of an fd (mbox_append.h). */
int store_append_copy_to(int in, store_sink_fn *sink, void *arg,
    const struct store_delivery *d, enum store_escape esc,
    uint64_t *stored_r, uint64_t *crlf_r, bool *ends_lf_r, char *err);

/*
 * Create dir and its missing parents (mode 0700, like a Maildir's owner
 * expects). 0, or -1 with errno.
 */
int store_mkdirs(const char *dir);

/*
 * mbox delivery (store_mbox_append.c): append under the MTA's locks
 * (mbox_lock.h), with a journal "<dir>/.<name>.postino-append" holding the
 * old size while the append runs, so the partial tail of an append killed
 * half-way is cut off by whoever takes the locks next.
 */
enum store_result store_mbox_append(const struct store_params *p, int in,
    const struct store_delivery *d, char *err);
/*
 * Is s (len octets) a UIDL an mbox keeps as "X-UIDL:" (1..STORE_UIDL_MAX
 * octets 0x21..0x7E)? The scan (store_mbox.c) and the append agree on it.
 */
bool store_mbox_uidl_valid(const char *s, size_t len);

/* The mbox's size against d->quota_bytes (store.h quota). */
enum store_result store_mbox_quota(const struct store_params *p,
    const struct store_delivery *d, char *err);

/*
 * With the mbox's locks held and fd open on it: if a journal is left by an
 * append that died, truncate the mbox back to the size it records (only
 * when it is still the same file and longer) and remove the journal.
 * 0, or -1 with err (the caller must not write then).
 */
int store_mbox_recover(const char *path, int fd, char *err);

#endif
