/*
 * Mail storage behind one interface: Maildir, mbox and PostgreSQL (pgsql).
 *
 * A store is opened once per POP3 session, by a process that already runs as
 * the mailbox owner. Opening takes the session lock (one session per mailbox)
 * and scans the mailbox once: the index it fills is what the session sees, so
 * mail delivered later waits for the next session. Nothing is ever removed
 * except by store_commit(), which is the POP3 UPDATE state.
 *
 * Sizes are the octets RETR sends before byte-stuffing: every line end counted
 * as CRLF, plus a final CRLF when the stored message does not end in a newline
 * (see lib/crlf.h). UIDLs are 1..70 characters in 0x21..0x7E (RFC 1939 sec. 7),
 * stable forever and never reused.
 */
#ifndef POSTINO_STORE_H
#define POSTINO_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "../lib/str.h"

#define STORE_UIDL_MAX	70	/* RFC 1939 sec. 7 */
/* Hex digits of a delivery token: 48 random bits, unique per mailbox. */
#define STORE_TOKEN_LEN	12

enum store_result {
	STORE_OK = 0,
	STORE_PERMFAIL,		/* -ERR [SYS/PERM]: broken mailbox, over a cap */
	STORE_TEMPFAIL,		/* -ERR [SYS/TEMP]: I/O error, try later */
	STORE_LOCKED,		/* -ERR [IN-USE]: another session holds it */
	STORE_CHANGED,		/* mailbox changed under us: end the session */
	STORE_OVERQUOTA,	/* append: the message would exceed a quota */
	/*
	 * Another program (an MTA delivering) holds the mailbox's lock for a
	 * moment; nothing is held. The caller may try again soon, from a
	 * timer: stores never wait for a lock when lock_wait is 0.
	 */
	STORE_BUSY,
	/*
	 * The backend waits for its server (pgsql in an event loop): see
	 * store_ops.wait. Nothing else ever answers it.
	 */
	STORE_PENDING,
	/* open with login_delay: the last login was too recent (-ERR
	 * [LOGIN-DELAY]); nothing is held. Only pgsql answers it. */
	STORE_TOO_SOON,
};

/* Called from the event loop when a pending call can go on. */
typedef void store_ready_fn(void *arg);

struct store_params {
	const char	*path;		/* maildir directory, mbox file, or
					   pgsql mailbox name */
	unsigned int	 max_messages;	/* more than this: STORE_PERMFAIL */
	uint64_t	 max_bytes;	/* mailbox total over this: STORE_PERMFAIL */
	bool		 mboxrd;	/* mbox: unescape ">>From " too, not just ">From " */
	unsigned int	 dotlock_stale;	/* mbox: seconds after which a dotlock is stale */
	unsigned int	 lock_wait;	/* mbox: seconds to wait for the MTA's lock */
	/* maildir: Dovecot's pop3_uidl_format for its dovecot-uidlist; NULL:
	 * its default (maildir_uidlist.h) */
	const char	*uidl_format;
	/*
	 * pgsql: seconds between two logins (RFC 2449 LOGIN-DELAY), checked
	 * and stamped in the database when open takes the lock, so it holds
	 * across instances; 0: off. The other stores leave it to the caller
	 * (a stamp file beside the mailbox).
	 */
	unsigned int	 login_delay;
};

/*
 * One delivery (LMTP, postino-deliver). The message read from the caller's
 * fd has LF line ends (CRLF already folded; a lone CR is data). Header
 * values come from the protocol parser and hold no CR, LF or NUL.
 */
struct store_delivery {
	const char	*return_path;	/* "Return-Path: <...>"; NULL: none */
	const char	*delivered_to;	/* "Delivered-To: ..."; NULL: none */
	bool		 crlf;		/* store CRLF line ends, else LF */
	uint64_t	 quota_bytes;	/* 0: none; over it: STORE_OVERQUOTA */
	unsigned int	 quota_messages;	/* 0: none */
	const char	*token;		/* NULL, or STORE_TOKEN_LEN hex digits
					   to put into the stored name */
	/*
	 * maildir: no fsync of new/ after the rename; the caller delivers a
	 * batch and calls store_maildir_sync() (maildir_append.h) once
	 * before it counts any of it delivered (postino fetch: one fsync of
	 * new/ per batch, not per message). Ignored by the other backends.
	 */
	bool		 dir_sync_later;
	/*
	 * NULL, or the UIDL the message must keep (a migration, so clients
	 * that leave mail on the server download nothing twice): pgsql
	 * stores it, maildir makes it the file name, mbox writes it as the
	 * first header, "X-UIDL: <uidl>" (which adds its length to the POP3
	 * size; STORE_PERMFAIL for a UIDL an mbox cannot keep). pgsql and
	 * maildir answer STORE_OK for a UIDL already in the mailbox, not a
	 * second copy, so a migration may be run again; an mbox has no
	 * index to ask, so its caller skips those (postino-migrate holds it
	 * open as a session and reads them from its index). Without uidl, an
	 * mbox delivery drops any X-UIDL header the message brings: a sender
	 * does not choose its UIDL.
	 */
	const char	*uidl;
};

struct store_msg {
	uint64_t	size;
	char		uidl[STORE_UIDL_MAX + 1];
	bool		deleted;	/* set by the session (DELE); read by commit */
};

struct store_index {
	struct store_msg *msgs;		/* msgs[0] is message 1 */
	unsigned int	  count;
	uint64_t	  total_size;
};

struct store;
struct store_reader;

struct store_ops {
	const char *name;	/* "maildir", "mbox", "pgsql" */
	/*
	 * Lock the mailbox for this session and scan it into idx (allocated by
	 * the store, freed by close). A missing mailbox is an empty one.
	 */
	enum store_result (*open)(struct store **st_r, const struct store_params *p,
	    struct store_index *idx, char *err);
	/*
	 * Start reading message msgnum (1-based). The reader yields the
	 * message as stored (mbox: without the From_ line and separator, with
	 * From-escaping undone); the caller normalises line ends.
	 * STORE_CHANGED when the message vanished or changed since open.
	 */
	enum store_result (*read_open)(struct store *st, unsigned int msgnum,
	    struct store_reader **r_r, char *err);
	/* Bytes read into buf, 0 at the end of the message, -1 on error (errno). */
	ssize_t (*read)(struct store_reader *r, void *buf, size_t len);
	/*
	 * NULL, or: the caller read the message to its end and its size
	 * (lib/crlf.h) came to size. A store that gave out a size without
	 * reading the message (a cache) checks it here and drops what lied.
	 * The caller counts while it converts line ends anyway: sizing in
	 * read() was a second pass over every octet of a RETR.
	 */
	void (*read_size)(struct store_reader *r, uint64_t size);
	void (*read_close)(struct store_reader **r);
	/*
	 * UPDATE: remove the messages marked deleted. Crash-safe: a kill -9 at any
	 * moment loses no undeleted message and corrupts nothing; mail that arrived
	 * during the session is kept.
	 */
	enum store_result (*commit)(struct store *st, const struct store_index *idx,
	    char *err);
	/*
	 * Release the session lock and free everything, idx->msgs included;
	 * also cancels a pending call.
	 */
	void (*close)(struct store **st, struct store_index *idx);
	/*
	 * NULL, or (pgsql) how a backend that waits for a server says when:
	 * open and commit may answer STORE_PENDING and read -1 with errno
	 * EAGAIN. Then wait(st, fn, arg) (st: for open, what it left in
	 * *st_r), and fn(arg) is called from the event loop when the same
	 * call, made again with the same arguments, goes on. Such a backend's
	 * commit is called at every QUIT, and ends the session lock itself
	 * (before the reply can bring the client back).
	 */
	void (*wait)(struct store *st, store_ready_fn *fn, void *arg);
	/*
	 * Deliver the message in fd (read with pread from offset 0 to EOF;
	 * the fd's offset is not used) into the mailbox at p->path, creating
	 * the mailbox if it is missing. Takes no session lock: a POP3 session
	 * holding the mailbox does not see the message, the next one does.
	 * Durable before STORE_OK (file and directory fsynced); on any failure
	 * nothing of the message is visible to a reader. STORE_TEMPFAIL for
	 * I/O errors and lock timeouts, STORE_PERMFAIL for a broken mailbox,
	 * STORE_OVERQUOTA when d's quota would be exceeded. err filled unless
	 * STORE_OK. The session lock is deliberately not part of st: append
	 * works on the path alone, so it needs no open().
	 */
	enum store_result (*append)(const struct store_params *p, int fd,
	    const struct store_delivery *d, char *err);
	/*
	 * Is the message appended with this token in the mailbox (new/ or
	 * cur/)? STORE_OK when it is, STORE_PERMFAIL when not, STORE_TEMPFAIL
	 * when that cannot be told (or the backend keeps no tokens: mbox).
	 * For a delivery whose process died between storing and answering.
	 */
	enum store_result (*probe)(const struct store_params *p,
	    const char *token, char *err);
	/*
	 * Is the mailbox already at d's quota (store_delivery.quota_*)?
	 * STORE_OVERQUOTA when it is, STORE_OK when a message may still fit,
	 * STORE_TEMPFAIL when it cannot be told. LMTP asks at RCPT.
	 */
	enum store_result (*quota)(const struct store_params *p,
	    const struct store_delivery *d, char *err);
};

/* The backend named name ("maildir", "mbox"), or NULL. */
const struct store_ops *store_lookup(const char *name);

/* The backends themselves, for store_lookup() and the unit tests. */
extern const struct store_ops store_maildir_ops;
extern const struct store_ops store_mbox_ops;
extern const struct store_ops store_pgsql_ops;	/* store_pgsql.h */

#endif
