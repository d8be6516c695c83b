/*
 * The fetch's progress bar on a terminal: one line on stderr, redrawn in
 * place, counting messages and octets.
 */
#ifndef POSTINO_PROGRESS_H
#define POSTINO_PROGRESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "limits.h"

struct progress {
	bool		 on;
	bool		 drawn;		/* the bar is on the terminal's line */
	size_t		 msgs_done, msgs_total;
	uint64_t	 bytes_done, bytes_total;
	uint64_t	 shown;		/* bytes at the last redraw */
	unsigned int	 width;		/* of what was drawn */
};

/* Draw (or redraw) the bar, if it is on. */
void progress_draw(struct progress *p);

/* Octets received: redrawn every PROGRESS_REDRAW_BYTES. */
void progress_bytes(struct progress *p, uint64_t n);

/* The bar is done: end its line, forget it. */
void progress_end(struct progress *p);

/* Blank the bar on the screen (if any), so that a message has its line. */
void progress_clear_shown(void);

#endif
