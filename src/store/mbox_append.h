/*
 * The mbox append in steps, for a caller that must record what it is about
 * to write before it writes (postino's delivery: its state file holds the
 * token, so that after a kill it can prove whether the message landed and
 * deliver it exactly once). The one writer: store_mbox_append (store.h
 * append, for LMTP and postino-deliver) is these steps without a token.
 *
 * What an append writes after the mbox's old end: the empty lines the last
 * message still owes (0..2), the From_ line, the message as
 * store_append_copy gives it (mboxrd or mboxo quoting, X-UIDL dropped or
 * set), and the empty line that ends it. The locks (mbox_lock.h) are held
 * from store_mbox_begin to store_mbox_end, with a journal beside the mbox
 * while the message is written, so a kill half-way is cut off by the next
 * holder of the locks (store_append.h store_mbox_recover).
 */
#ifndef POSTINO_MBOX_APPEND_H
#define POSTINO_MBOX_APPEND_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "mbox_lock.h"
#include "store.h"

/* Where octets go: 0, or -1 with errno. */
typedef int store_sink_fn(void *arg, const void *p, size_t n);

/* A sink writing to the fd *(int *)arg. */
int store_sink_fd(void *arg, const void *p, size_t n);

/* A SHA-256 in hex. */
#define STORE_MBOX_SHA_HEX	64
/* The empty lines owed and the From_ line: "\n\nFrom SENDER DATE\n". */
#define STORE_MBOX_HDR_MAX	(2 + 1024)	/* an address of 1000 octets */
/* A token: "OLD LEN SHA256 GAP FROM_LINE" (store_mbox_token). */
#define STORE_MBOX_TOKEN_MAX	(2 * 20 + 64 + 8 + STORE_MBOX_HDR_MAX)

struct store_mbox_txn {
	struct store_params p;		/* path: the caller's, kept */
	struct mbox_lock lk;
	int		 fd;		/* the mbox, locked; -1: none */
	off_t		 old_size;
	char		 hdr[STORE_MBOX_HDR_MAX];
	char		 journal[PATH_MAX];
	char		 dir[PATH_MAX];
	/* How the message reaches the mbox; NULL: store_sink_fd on fd. */
	store_sink_fn	*put;
	void		*put_arg;
	/*
	 * The caller records the token before store_mbox_write and
	 * asks store_mbox_prove after a kill (postino: its state file), so
	 * the token is the journal and no journal file is written: three
	 * fsyncs fewer per message (bench/client, postino-mbox). Until that
	 * caller runs again, a partial append it left is in the mbox.
	 */
	bool		 token_is_journal;
};

/*
 * Open (creating it and its directory if missing) and lock the mbox at
 * p->path, cut what a killed append left, and make the From_ line for
 * sender (NULL or "": MAILER-DAEMON). STORE_LOCKED when another program
 * kept the locks for p->lock_wait seconds; err filled unless STORE_OK.
 * Then store_mbox_end() in every case.
 */
enum store_result store_mbox_begin(struct store_mbox_txn *t,
    const struct store_params *p, const char *sender, char *err);

/*
 * With the locks held: "OLD LEN SHA256 GAP FROM_LINE" into token (size
 * STORE_MBOX_TOKEN_MAX is enough), the old size, the length and SHA-256
 * of the octets store_mbox_write will append for the message in fd in,
 * the empty lines owed and the From_ line. 0, or -1 with err.
 */
int store_mbox_token(struct store_mbox_txn *t, int in,
    const struct store_delivery *d, char *token, size_t size, char *err);

/*
 * With the locks held: append the message in fd in (pread from 0),
 * durably (fsync) before STORE_OK; on failure the mbox is cut back to its
 * old size. The locks stay held.
 */
enum store_result store_mbox_write(struct store_mbox_txn *t, int in,
    const struct store_delivery *d, char *err);

/* Release the locks and close; nothing else is undone. */
void store_mbox_end(struct store_mbox_txn *t);

/*
 * After a kill: did the append that token describes land in the mbox at
 * p->path? in: the same message (fd, pread from 0), or -1 when it is gone.
 * 1 yes: the octets after the old end have its length and digest (more
 * mail after them is fine); 0 no: the mbox ends where it ended (a partial
 * append is cut, by the journal, or when in proves that the octets after
 * the old end are a prefix of that very append and nothing else), or it
 * does not exist; 2 unknown, err says why: another program wrote after a
 * partial append, so nothing is touched; -1 error (err).
 */
int store_mbox_prove(const struct store_params *p, int in,
    const struct store_delivery *d, const char *token, char *err);

#endif
