/*
 * `postino read`: an interactive reader on a logged-in POP3 session.
 *
 * A list from LIST, with From, Subject and Date from TOP n 0 fetched as
 * rows come into view; a message view from RETR, decoded by mime.c; DELE
 * and RSET as marks; QUIT (after asking) commits the deletions, `x` leaves
 * without QUIT so nothing is deleted (RFC 1939 sec. 6). Nothing from the
 * server reaches the screen except as display text (mime.h).
 *
 * Keys (all on the `?` screen and in postino(1)): j/k move, Enter open,
 * d delete, u undelete this one, U all, / search, N next match, q quit
 * (asks first: y delete and quit, n quit and keep them all, c/Esc back),
 * x quit without QUIT; in a message also n/p next/previous, H the header
 * as received, s save and | pipe an attachment. A dropped session is made
 * again at the next key (reader_opts.reconnect), marks carried by UIDL.
 */
#ifndef POSTINO_READER_H
#define POSTINO_READER_H

#include <stdbool.h>
#include <sys/types.h>

#include "limits.h"
#include "pop3c.h"


struct reader_opts {
	const char	*user;		/* shown in the title line */
	const char	*where;		/* "host:port" */
	mode_t		 umask;		/* the user's, for saved files */
	/*
	 * After the session dropped: free the old one, connect and log in
	 * again as at the start (the terminal is the user's meanwhile, for
	 * a password prompt and the reason of a failure); the new session,
	 * or NULL. NULL here: a dropped session ends the reader.
	 */
	struct pop3c	*(*reconnect)(void *arg);
	void		*arg;
};

/* stdin and stdout are terminals: check before connecting. */
bool reader_has_terminal(void);

/*
 * Run the reader on c (logged in; not freed here: without QUIT, freeing
 * it closes the connection; after a reconnect, o->reconnect's session is
 * the one left open). Returns 0 when the user quit (QUIT answered
 * +OK, or x); -1 when the session failed: report pop3c_errmsg(c) (the
 * terminal is already restored); 1 on a local failure already reported
 * on stderr (no terminal, out of memory).
 */
int reader_main(struct pop3c *c, const struct reader_opts *o);

#endif
