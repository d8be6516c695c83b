#include "progress.h"

#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

/* The bar on the screen, for progress_clear_shown(). */
static struct progress *progress_shown;

/* Columns of the terminal on stderr; 80 when it does not say. */
static unsigned int
term_columns(void)
{
	struct winsize ws;

	if (ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0)
		return ws.ws_col;
	return 80;
}

void
progress_clear_shown(void)
{
	struct progress *p = progress_shown;

	if (p == NULL || !p->drawn)
		return;
	fprintf(stderr, "\r%*s\r", (int)p->width, "");
	p->drawn = false;
}

/*
 * One line, redrawn in place with "\r": never wider than the terminal
 * less one column, or it would wrap and each redraw add a line.
 */
void
progress_draw(struct progress *p)
{
	char bar[21], line[160];
	unsigned int cols;
	size_t fill;
	int n;

	if (!p->on)
		return;
	fill = p->bytes_total == 0 ? 20 :
	    (size_t)((p->bytes_done > p->bytes_total ? p->bytes_total :
	    p->bytes_done) * 20 / p->bytes_total);
	memset(bar, '#', fill);
	memset(bar + fill, '.', 20 - fill);
	bar[20] = '\0';
	cols = term_columns();
	n = snprintf(line, sizeof(line), "postino: [%s] %zu/%zu messages, "
	    "%llu/%llu KiB", bar, p->msgs_done, p->msgs_total,
	    (unsigned long long)(p->bytes_done / 1024),
	    (unsigned long long)(p->bytes_total / 1024));
	if (n < 0)
		return;
	/* Narrow terminals: the counts first, the bar only if it fits. */
	if ((unsigned int)n >= cols)
		n = snprintf(line, sizeof(line), "%zu/%zu messages",
		    p->msgs_done, p->msgs_total);
	if (n < 0)
		return;
	if ((unsigned int)n >= cols)
		n = cols > 1 ? (int)cols - 1 : 0;
	line[n] = '\0';
	/* Pad over a longer previous line. */
	fprintf(stderr, "\r%-*s", p->drawn && p->width > (unsigned int)n ?
	    (int)p->width : n, line);
	p->width = (unsigned int)n > p->width || !p->drawn ? (unsigned int)n :
	    p->width;
	p->drawn = true;
	progress_shown = p;
	p->shown = p->bytes_done;
}

void
progress_bytes(struct progress *p, uint64_t n)
{
	p->bytes_done += n;
	if (p->on && p->bytes_done - p->shown >= PROGRESS_REDRAW_BYTES)
		progress_draw(p);
}

void
progress_end(struct progress *p)
{
	if (p->on && p->drawn)
		fputc('\n', stderr);
	p->drawn = false;
	progress_shown = NULL;
}
