/*
 * The mail role in two parts: mailbox.c, the role (the hand-off, the
 * ticket's redemption, opening the mailbox, the lock retry, the idle
 * timers, LOGIN-DELAY), and mailbox_cmds.c, the TRANSACTION commands, the
 * multi-line replies and UPDATE. The commands reach the role only through
 * the calls below, so a test can run them on a socketpair with its own.
 */
#ifndef POSTINO_MAILBOX_H
#define POSTINO_MAILBOX_H

#include <stdbool.h>
#include <stdint.h>

#include "../auth/auth.h"
#include "../lib/ev.h"
#include "../pop3/pop3.h"
#include "../store/store.h"
#include "config.h"
#include "rolemsg.h"
#include "session.h"

struct mail_conn {
	struct session		 s;
	struct mail_conn	*prev, *next;
	uint64_t		 req;		/* pending ticket redemption */
	unsigned int		 auth_idx;	/* the auth worker redeeming it */
	/*
	 * What the session keeps of its hand-off (whose buffers, 6 KiB, are
	 * spent once the session starts: an idle session is kept small).
	 */
	char			 user[AUTH_USER_MAX + 1];
	uint32_t		 capa;
	char			 sasl[SASL_MECHS_LEN];
	const struct store_ops	*sops;
	struct store		*st;
	struct store_index	 idx;
	/* the multi-line reply in progress */
	enum { MORE_NONE, MORE_LIST, MORE_UIDL, MORE_BODY } more_kind;
	unsigned int		 cursor;
	struct store_reader	*reader;
	struct pop3_encoder	 enc;
	/* RETR/TOP: a block read whole, encoded as the output has room */
	char			*body_in;	/* RETR_BLOCK octets */
	size_t			 body_pos, body_len;
	unsigned int		 retrieved;
	uint64_t		 retrieved_bytes;
	/*
	 * Waiting for an mbox lock another program holds: the open (with the
	 * account kept here) or QUIT's UPDATE is retried from a timer until
	 * lock_deadline, so no other session of this worker waits with it.
	 */
	struct ev_timer		 lock_retry;
	uint64_t		 lock_deadline;	/* ev_now_ms(); 0: not waiting */
	struct msg_account	*acct;
	bool			 quitting;
	/* RETR/TOP waits for a block from the store (store.h wait). */
	bool			 body_waiting;
};

/* --- mailbox.c: what the commands ask of the role ---------------------- */

/*
 * A lock another program holds is worth another try: true when the retry
 * timer is set (it calls mailbox_update again for a quitting session).
 */
bool mailbox_lock_retry_later(struct mail_conn *c);
/* The store_ops.wait callback: a pending store call of c can go on. */
void mailbox_store_ready(void *arg);

/* --- mailbox_cmds.c: the TRANSACTION and UPDATE states ------------------ */

/* The commands (RFC 1939 sec. 5 and 6, RFC 2449's CAPA). */
extern const struct session_cmd mailbox_commands[];
/* Before the first command: cf for the commands. */
void mailbox_cmds_init(const struct config *cf);
/* session_ops.more: the next part of LIST, UIDL, RETR or TOP. */
void mailbox_more(struct session *s);
/*
 * QUIT's UPDATE (RFC 1939 sec. 6). False while it waits for the mbox lock
 * or the store, true when the reply is queued and the mailbox given back.
 */
bool mailbox_update(struct mail_conn *c);
/* c is closing without UPDATE: the reader and the store, nothing deleted. */
void mailbox_release(struct mail_conn *c);
/* The count and size of the messages not marked deleted. */
void mailbox_live_totals(const struct mail_conn *c, unsigned int *count_r,
    uint64_t *size_r);
/* The -ERR for a store failure r, with its RFC 2449/3206 response code. */
void mailbox_reply_store_error(struct session *s, enum store_result r,
    const char *err);

#endif
