/*
 * The terminal of `postino read`, without curses: raw keyboard input on
 * stdin, the alternate screen on stdout. One terminal per process, so the
 * state is global (the signal handlers need it).
 *
 * The terminal is restored on every way out: term_close(), exit() (an
 * atexit handler), and SIGINT, SIGTERM, SIGHUP, SIGQUIT, which restore it
 * and then take their default action (the process ends; a POP3 session
 * ended without QUIT deletes nothing, RFC 1939 sec. 6). SIGTSTP restores
 * it, stops, and on SIGCONT takes the terminal back and asks for a
 * redraw; so does SIGWINCH.
 */
#ifndef POSTINO_TERM_H
#define POSTINO_TERM_H

#include <stdbool.h>
#include <stddef.h>

#include "../lib/str.h"
#include "limits.h"


/* term_key(): a byte 0-255, or one of these. */
enum term_key {
	TERM_KEY_UP = 0x100,
	TERM_KEY_DOWN,
	TERM_KEY_LEFT,
	TERM_KEY_RIGHT,
	TERM_KEY_PGUP,
	TERM_KEY_PGDN,
	TERM_KEY_HOME,
	TERM_KEY_END,
	TERM_KEY_RESIZE,	/* size changed or back from a stop: redraw */
	TERM_KEY_TIMEOUT,	/* nothing within the timeout */
	TERM_KEY_EOF,		/* the terminal is gone */
};

/* stdin and stdout are both terminals. */
bool term_is_tty(void);

/* Raw mode, the alternate screen, the handlers. 0, or -1 with err. */
int term_open(char *err);
/* Back to the saved mode and the normal screen; idempotent. */
void term_close(void);

/*
 * Give the terminal back for a while (a command the user runs): its
 * saved mode and the normal screen; term_resume() takes it again. The
 * handlers stay. 0, or -1 with err.
 */
void term_pause(void);
int term_resume(char *err);

/* The window size; 24x80 when the terminal does not say. */
void term_size(int *rows_r, int *cols_r);

/*
 * Next key, waiting at most timeout_ms (< 0: no limit). Escape sequences
 * of cursor and paging keys are decoded; unknown ones are dropped.
 * -1 on a read error (errno).
 */
int term_key(int timeout_ms);

/* Write all of buf to the terminal: 0, or -1 (errno). */
int term_write(const void *buf, size_t len);

#endif
