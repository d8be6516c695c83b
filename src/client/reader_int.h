/*
 * Inside `postino read` (reader.h is its face): the state the three parts
 * share, and what each offers the others.
 *
 *   reader_model.c  the session: the listing (LIST, UIDL), headers (TOP),
 *                   a message (RETR), marks (DELE, RSET), QUIT, and the
 *                   listing again after a reconnect, marks carried
 *   reader_view.c   the screen: a message composed as display text and
 *                   wrapped, the list, the help, drawn into one frame
 *   reader.c        keys, prompts, search, attachments, reconnecting
 *
 * The view reads the model; the model never draws; reader.c drives both.
 */
#ifndef POSTINO_READER_INT_H
#define POSTINO_READER_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "../lib/str.h"
#include "mime.h"
#include "pop3c.h"
#include "reader.h"


struct entry {
	uint32_t	 num;
	uint64_t	 size;
	bool		 deleted;
	bool		 loaded;	/* from, subject, date are set */
	char		*uid;		/* from UIDL; NULL without */
	char		*from, *subject, *date;		/* display text */
};

/* A screen row of the view: text[off..off+len). */
struct row {
	size_t		 off, len;
};

enum mode {
	MODE_LIST,
	MODE_VIEW,
};

/* What a key did. */
enum step {
	STEP_GO,		/* go on */
	STEP_DONE,		/* the user quit */
	STEP_SESSION,		/* the session failed: pop3c_errmsg() */
	STEP_LOCAL,		/* local failure, r->err set */
};

struct frame {
	char		*p;
	size_t		 len, cap;
	bool		 oom;
};

struct reader {
	struct pop3c	*c;		/* NULL while reconnecting failed */
	const struct reader_opts *o;
	bool		 dropped;	/* the session is gone: reconnect */
	const char	*codeset;
	char		*title;		/* display text: "user@host:port" */
	uint32_t	 count;		/* from STAT */
	uint64_t	 octets;
	struct entry	*e;
	size_t		 n, ndel;
	size_t		 cur, top;	/* list: cursor, first row shown */
	bool		 has_top;	/* TOP may work */
	int		 rows, cols;
	enum mode	 mode;
	bool		 clear;		/* clear the screen before drawing */
	char		*text;		/* view: display text */
	size_t		 text_len;
	struct row	*row;
	size_t		 nrow, row_cap;
	size_t		 vtop;		/* view: first row shown */
	char		*raw;		/* view: the message as received */
	size_t		 raw_len;
	struct mime_msg	*msg;		/* view: raw decoded */
	bool		 full_headers;	/* view: the header as received */
	bool		 help;		/* the help screen is up */
	char		 search[READER_SEARCH_MAX + 1];	/* the last / text */
	char		 status[ERR_LEN * 2];	/* our ASCII or pop3c_errmsg */
	struct frame	 f;
	mode_t		 umask;		/* the user's, for saved files */
	size_t		 committed;	/* deletions QUIT committed */
	char		 err[ERR_LEN];
};

/* ---- reader_model.c ---- */

/* The title; STAT, LIST and UIDL into r->e. */
enum step reader_model_start(struct reader *r, const struct reader_opts *o);
void reader_model_free_entries(struct entry **e, size_t n);
/* From, Subject, Date of message i (TOP n 0); of rows not loaded yet. */
enum step reader_model_load_entry(struct reader *r, size_t i);
enum step reader_model_load_rows(struct reader *r, size_t from,
    size_t count);
/*
 * Message i into r->raw and r->msg; or, when it is not to be shown, the
 * reason in why (size octets). reader_model_forget() drops it.
 */
enum step reader_model_fetch(struct reader *r, size_t i, char *why,
    size_t size);
void reader_model_forget(struct reader *r);
/* Marks: DELE; RSET and DELE of the others again; RSET. Status set. */
enum step reader_model_delete(struct reader *r, size_t i);
enum step reader_model_undelete_one(struct reader *r, size_t i);
enum step reader_model_undelete_all(struct reader *r);
/* QUIT, after RSET when keep: STEP_DONE, or the session failed. */
enum step reader_model_quit(struct reader *r, bool keep);
/* On a new session (r->c): the listing again, marks carried by UIDL. */
enum step reader_model_remap(struct reader *r);
/* "1.5 KiB" */
void reader_model_size(char *dst, size_t size, uint64_t n);

/* ---- reader_view.c ---- */

/* Rows between the title and the status line; at least one. */
int reader_view_page_rows(const struct reader *r);
/* The view's text: r->msg composed, or a line of ours. 0, -1 (r->err). */
int reader_view_compose(struct reader *r);
int reader_view_note(struct reader *r, const char *line);
/* The text cut into rows of the width; again, keeping the top row. */
int reader_view_wrap(struct reader *r);
int reader_view_rewrap(struct reader *r);
size_t reader_view_max_top(const struct reader *r);
/* The list scrolled so the cursor is on it. */
void reader_view_keep_visible(struct reader *r);
/* The whole screen, written at once. 0, or -1 (r->err). */
int reader_view_draw(struct reader *r);

#endif
