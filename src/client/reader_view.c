/*
 * postino read, the view: the screen is redrawn whole after each key into
 * one buffer and written at once; only display text (mime.h) and our own
 * ASCII go into it, each row cut to the width by wcwidth(3).
 */
#include "reader_int.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <wchar.h>

#include "term.h"

/* Tab stops in the view. */
#define TAB_WIDTH	8

static void
frame_add(struct reader *r, const char *s, size_t len)
{
	struct frame *f = &r->f;

	if (f->oom)
		return;
	if (f->len + len > f->cap) {
		size_t cap = f->cap < 4096 ? 4096 : f->cap;
		char *p;

		while (cap < f->len + len)
			cap *= 2;
		p = realloc(f->p, cap);
		if (p == NULL) {
			f->oom = true;
			return;
		}
		f->p = p;
		f->cap = cap;
	}
	memcpy(f->p + f->len, s, len);
	f->len += len;
}

static void
frame_str(struct reader *r, const char *s)
{
	frame_add(r, s, strlen(s));
}

static void
frame_fmt(struct reader *r, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
frame_fmt(struct reader *r, const char *fmt, ...)
{
	char line[512];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (n > 0)
		frame_add(r, line, (size_t)n < sizeof(line) ? (size_t)n :
		    sizeof(line) - 1);
}

/*
 * The character at s (len > 0) at column col: *n_r octets, *w_r columns.
 * A tab reaches the next tab stop. Returns false for what must not go to
 * the terminal as it is (invalid, unprintable): one octet, shown as '?'.
 */
static bool
char_at(const char *s, size_t len, int col, size_t *n_r, int *w_r)
{
	mbstate_t st;
	wchar_t wc;
	size_t n;
	int w;

	if (s[0] == '\t') {
		*n_r = 1;
		*w_r = TAB_WIDTH - col % TAB_WIDTH;
		return true;
	}
	memset(&st, 0, sizeof(st));
	n = mbrtowc(&wc, s, len, &st);
	if (n == 0 || n == (size_t)-1 || n == (size_t)-2 ||
	    (w = wcwidth(wc)) < 0) {
		*n_r = 1;
		*w_r = 1;
		return false;
	}
	*n_r = n;
	*w_r = w;
	return true;
}

/*
 * s[0..len) from column col (tab stops count from 0) up to column width,
 * padded with spaces when pad: the column reached.
 */
static int
frame_text_at(struct reader *r, const char *s, size_t len, int col,
    int width, bool pad)
{
	int used = col;
	size_t i = 0;

	while (i < len) {
		size_t n;
		int w;
		bool ok = char_at(s + i, len - i, used, &n, &w);

		if (used + w > width)
			break;
		if (!ok)
			frame_add(r, "?", 1);
		else if (s[i] == '\t')
			frame_add(r, "        ", (size_t)w);
		else
			frame_add(r, s + i, n);
		used += w;
		i += n;
	}
	while (pad && used < width) {
		frame_add(r, " ", 1);
		used++;
	}
	return used;
}

/* s[0..len) in at most width columns, padded with spaces when pad. */
static int
frame_text(struct reader *r, const char *s, size_t len, int width, bool pad)
{
	return frame_text_at(r, s, len, 0, width, pad);
}

/* A row of the view, the last search's matches in reverse video. */
static void
frame_row_marked(struct reader *r, const char *s, size_t len)
{
	size_t n = strlen(r->search), i = 0, seg = 0;
	int col = 0;

	while (n > 0 && i + n <= len) {
		if (strncasecmp(s + i, r->search, n) != 0) {
			i++;
			continue;
		}
		col = frame_text_at(r, s + seg, i - seg, col, r->cols, false);
		frame_str(r, "\033[7m");
		col = frame_text_at(r, s + i, n, col, r->cols, false);
		frame_str(r, "\033[m");
		i += n;
		seg = i;
	}
	(void)frame_text_at(r, s + seg, len - seg, col, r->cols, false);
}

static void
row_begin(struct reader *r, int y)
{
	frame_fmt(r, "\033[%d;1H", y);
}

static void
row_end(struct reader *r)
{
	frame_str(r, "\033[m\033[K");
}

/* A whole row in reverse video. */
static void
bar(struct reader *r, int y, const char *s)
{
	row_begin(r, y);
	frame_str(r, "\033[7m");
	frame_text(r, s, strlen(s), r->cols, true);
	row_end(r);
}

static void
size_short(char *dst, size_t size, uint64_t n)
{
	if (n < 10000)
		(void)str_fmt(dst, size, "%llu", (unsigned long long)n);
	else if (n < 10000ull * 1024)
		(void)str_fmt(dst, size, "%lluK",
		    (unsigned long long)((n + 1023) / 1024));
	else
		(void)str_fmt(dst, size, "%lluM", (unsigned long long)
		    ((n + 1024 * 1024 - 1) / (1024 * 1024)));
}

/* Rows between the title and the status line; at least one. */
int
reader_view_page_rows(const struct reader *r)
{
	return r->rows > READER_MIN_ROWS ? r->rows - 2 : 1;
}

struct text {
	char		*p;
	size_t		 len, cap;
	bool		 oom;
};

static void
text_add(struct text *t, const char *s)
{
	size_t len = strlen(s);

	if (t->oom)
		return;
	if (t->len + len + 1 > t->cap) {
		size_t cap = t->cap < 4096 ? 4096 : t->cap;
		char *p;

		while (cap < t->len + len + 1)
			cap *= 2;
		p = realloc(t->p, cap);
		if (p == NULL) {
			t->oom = true;
			return;
		}
		t->p = p;
		t->cap = cap;
	}
	memcpy(t->p + t->len, s, len + 1);
	t->len += len;
}

static void
text_field(struct text *t, const char *name, const char *value)
{
	text_add(t, name);
	text_add(t, value);
	text_add(t, "\n");
}

static int
text_done(struct reader *r, struct text *t)
{
	free(r->text);
	r->text = NULL;
	r->text_len = 0;
	if (t->oom) {
		free(t->p);
		(void)str_copy(r->err, sizeof(r->err), "out of memory");
		return -1;
	}
	r->text = t->p;
	r->text_len = t->len;
	return 0;
}

/* The header as received, as display text (controls made visible). */
static void
text_raw_header(struct reader *r, struct text *t)
{
	const char *end = r->raw_len > 0 ? memmem(r->raw, r->raw_len, "\n\n",
	    2) : NULL;
	size_t len = end != NULL ? (size_t)(end - r->raw) + 1 : r->raw_len;
	char *d = mime_display(r->raw != NULL ? r->raw : "", len, r->codeset,
	    false, NULL);

	if (d == NULL) {
		t->oom = true;
		return;
	}
	text_add(t, d);
	free(d);
}

int
reader_view_compose(struct reader *r)
{
	const struct mime_msg *m = r->msg;
	struct text t = { 0 };
	char size[32];

	if (r->full_headers) {
		text_raw_header(r, &t);
	} else {
		text_field(&t, "From: ", m->from);
		text_field(&t, "To: ", m->to);
		if (m->cc[0] != '\0')
			text_field(&t, "Cc: ", m->cc);
		text_field(&t, "Date: ", m->date);
		text_field(&t, "Subject: ", m->subject);
	}
	text_add(&t, "\n");
	if (m->body_html) {
		text_add(&t, "[HTML shown as text by ");
		text_add(&t, m->html_via);
		text_add(&t, "]\n\n");
	}
	if (m->body_none)
		text_add(&t, "[no text part]\n");
	else
		text_add(&t, m->body);
	if (m->n_att > 0 || m->n_att_more > 0)
		text_add(&t, "\n");
	for (size_t i = 0; i < m->n_att; i++) {
		char num[32];

		reader_model_size(size, sizeof(size), m->att[i].size);
		(void)str_fmt(num, sizeof(num), "[attachment %zu] ", i + 1);
		text_add(&t, num);
		text_add(&t, m->att[i].name);
		text_add(&t, " (");
		text_add(&t, size);
		text_add(&t, ", ");
		text_add(&t, m->att[i].type);
		text_add(&t, ")\n");
	}
	if (m->n_att_more > 0) {
		(void)str_fmt(size, sizeof(size), "%zu", m->n_att_more);
		text_add(&t, "[attachment] ... and ");
		text_add(&t, size);
		text_add(&t, " more\n");
	}
	return text_done(r, &t);
}

/* The view shows a line of ours instead of a message. */
int
reader_view_note(struct reader *r, const char *line)
{
	struct text t = { 0 };

	text_add(&t, line);
	text_add(&t, "\n");
	return text_done(r, &t);
}

static bool
row_add(struct reader *r, size_t off, size_t len)
{
	if (r->nrow == r->row_cap) {
		size_t cap = r->row_cap < 256 ? 256 : r->row_cap * 2;
		struct row *p = reallocarray(r->row, cap, sizeof(*p));

		if (p == NULL)
			return false;
		r->row = p;
		r->row_cap = cap;
	}
	r->row[r->nrow].off = off;
	r->row[r->nrow].len = len;
	r->nrow++;
	return true;
}

/*
 * Cut the text into rows of the window's width, at a space when a line
 * has one, else anywhere.
 */
int
reader_view_wrap(struct reader *r)
{
	const char *s = r->text;
	size_t i = 0;

	r->nrow = 0;
	while (i <= r->text_len) {
		const char *nl = memchr(s + i, '\n', r->text_len - i);
		size_t end = nl != NULL ? (size_t)(nl - s) : r->text_len;
		size_t start = i, space = 0;
		int col = 0;

		if (nl == NULL && i == r->text_len)
			break;		/* no row after the last line end */
		while (i < end) {
			size_t n;
			int w;

			(void)char_at(s + i, end - i, col, &n, &w);
			if (col + w > r->cols && col > 0) {
				if (space > start)
					i = space;
				if (!row_add(r, start, i - start))
					goto oom;
				start = i;
				space = 0;
				col = 0;
				continue;
			}
			col += w;
			i += n;
			if (s[i - 1] == ' ')
				space = i;
		}
		if (!row_add(r, start, end - start))
			goto oom;
		i = end + 1;
	}
	return 0;
oom:
	(void)str_copy(r->err, sizeof(r->err), "out of memory");
	return -1;
}

size_t
reader_view_max_top(const struct reader *r)
{
	size_t page = (size_t)reader_view_page_rows(r);

	return r->nrow > page ? r->nrow - page : 0;
}

/* Wrap again for a new width, keeping the first row's text in view. */
int
reader_view_rewrap(struct reader *r)
{
	size_t off = r->vtop < r->nrow ? r->row[r->vtop].off : 0;

	if (r->text == NULL)
		return 0;
	if (reader_view_wrap(r) < 0)
		return -1;
	r->vtop = 0;
	while (r->vtop + 1 < r->nrow && r->row[r->vtop + 1].off <= off)
		r->vtop++;
	if (r->vtop > reader_view_max_top(r))
		r->vtop = reader_view_max_top(r);
	return 0;
}

void
reader_view_keep_visible(struct reader *r)
{
	size_t page = (size_t)reader_view_page_rows(r);

	if (r->cur < r->top)
		r->top = r->cur;
	else if (r->cur >= r->top + page)
		r->top = r->cur - page + 1;
}

static void
draw_entry(struct reader *r, int y, size_t i, int numw)
{
	const struct entry *e = &r->e[i];
	bool sel = i == r->cur;
	char lead[32], size[16];
	int datew = 16, fromw, subjw, used;

	size_short(size, sizeof(size), e->size);
	(void)str_fmt(lead, sizeof(lead), "%c%c %*u  ", sel ? '>' : ' ',
	    e->deleted ? 'D' : ' ', numw, (unsigned int)e->num);
	fromw = r->cols / 4;
	if (fromw > 24)
		fromw = 24;
	subjw = r->cols - (int)strlen(lead) - datew - 2 - fromw - 2 - 7;
	if (subjw < 10) {
		datew = 0;
		subjw = r->cols - (int)strlen(lead) - fromw - 2 - 7;
	}
	if (subjw < 5) {
		fromw = 0;
		subjw = r->cols - (int)strlen(lead) - 7;
	}
	row_begin(r, y);
	if (sel)
		frame_str(r, "\033[7m");
	used = frame_text(r, lead, strlen(lead), r->cols, false);
	if (datew > 0) {
		frame_text(r, e->date, strlen(e->date), datew, true);
		frame_str(r, "  ");
		used += datew + 2;
	}
	if (fromw > 0) {
		frame_text(r, e->from, strlen(e->from), fromw, true);
		frame_str(r, "  ");
		used += fromw + 2;
	}
	if (subjw > 0) {
		frame_text(r, e->subject, strlen(e->subject), subjw, true);
		used += subjw;
	}
	if (used + 7 <= r->cols) {
		frame_fmt(r, " %6s", size);
		used += 7;
	}
	if (sel)
		while (used++ < r->cols)
			frame_str(r, " ");
	row_end(r);
}

static void
draw_list(struct reader *r)
{
	char title[ERR_LEN];
	int page = reader_view_page_rows(r), numw = 1;

	for (uint32_t n = r->n > 0 ? r->e[r->n - 1].num : 1; n >= 10; n /= 10)
		numw++;
	(void)str_fmt(title, sizeof(title), "postino: %s  %u messages, %llu "
	    "octets", r->title, (unsigned int)r->count,
	    (unsigned long long)r->octets);
	if (r->ndel > 0) {
		size_t len = strlen(title);

		(void)str_fmt(title + len, sizeof(title) - len,
		    ", %zu marked for deletion", r->ndel);
	}
	bar(r, 1, title);
	for (int y = 0; y < page; y++) {
		size_t i = r->top + (size_t)y;

		if (i < r->n) {
			draw_entry(r, y + 2, i, numw);
		} else {
			row_begin(r, y + 2);
			if (r->n == 0 && y == 0)
				frame_str(r, "  (no messages)");
			row_end(r);
		}
	}
}

static void
draw_view(struct reader *r)
{
	const struct entry *e = &r->e[r->cur];
	char title[ERR_LEN], size[32];
	int page = reader_view_page_rows(r);

	reader_model_size(size, sizeof(size), e->size);
	(void)str_fmt(title, sizeof(title), "Message %u (%zu of %zu)  %s%s",
	    (unsigned int)e->num, r->cur + 1, r->n, size,
	    e->deleted ? "  [marked for deletion]" : "");
	bar(r, 1, title);
	for (int y = 0; y < page; y++) {
		size_t i = r->vtop + (size_t)y;

		row_begin(r, y + 2);
		if (i < r->nrow)
			frame_row_marked(r, r->text + r->row[i].off,
			    r->row[i].len);
		row_end(r);
	}
}

/* `?`: every key, on one screen (any key leaves it). */
static const char *const help_text[] = {
	"postino read: keys",
	"",
	"In the list and in a message:",
	"  j k, Down Up      next, previous row (in a message: scroll)",
	"  Space b, PgDn PgUp  a page down, up;  g G, Home End  first, last",
	"  d                 mark the message for deletion (QUIT deletes it)",
	"  u                 unmark this message;  U  unmark all (RSET)",
	"  /                 search: subjects and senders in the list, the",
	"                    text in a message;  N  the next match",
	"  q                 quit (asks first when messages are marked)",
	"  x                 quit at once, delete nothing",
	"  ^L                redraw;  ?  this help",
	"In the list:  Enter, Right, l  open the message",
	"In a message:",
	"  q, Left, h        back to the list",
	"  n p               next, previous message not marked",
	"  H                 the full header as received, or the short one",
	"  s                 save an attachment to a file",
	"  |                 pipe an attachment to a command",
	"  Q                 quit, as q in the list",
	"A lost connection is made again at the next key; marks are kept.",
	"",
	"Any key: back.",
};

static void
draw_help(struct reader *r)
{
	size_t n = sizeof(help_text) / sizeof(help_text[0]);

	bar(r, 1, help_text[0]);
	for (int y = 2; y <= r->rows; y++) {
		size_t i = (size_t)y - 1;

		row_begin(r, y);
		if (i < n)
			frame_text(r, help_text[i], strlen(help_text[i]),
			    r->cols, false);
		row_end(r);
	}
}

int
reader_view_draw(struct reader *r)
{
	char help[ERR_LEN];
	int page = reader_view_page_rows(r);

	r->f.len = 0;
	r->f.oom = false;
	if (r->clear)
		frame_str(r, "\033[H\033[2J");
	r->clear = false;
	if (r->rows < READER_MIN_ROWS || r->cols < READER_MIN_COLS) {
		frame_str(r, "\033[H\033[2J");
		frame_text(r, "window too small", 16, r->cols, false);
	} else if (r->help) {
		draw_help(r);
	} else {
		if (r->mode == MODE_LIST) {
			draw_list(r);
			(void)str_copy(help, sizeof(help), "j/k move  Enter "
			    "open  d delete  u/U undelete  / search  q quit  "
			    "x quit, delete nothing  ? help");
		} else {
			size_t end = r->vtop + (size_t)page;

			draw_view(r);
			(void)str_fmt(help, sizeof(help), "-- %s --  q back  "
			    "n/p next/prev  Space/b page  d delete  H header  "
			    "s save  ? help", r->nrow <= (size_t)page ? "all" :
			    end >= r->nrow ? "end" : r->vtop == 0 ? "top" :
			    "more");
		}
		row_begin(r, r->rows);
		frame_text(r, r->status[0] ? r->status : help,
		    strlen(r->status[0] ? r->status : help), r->cols, false);
		row_end(r);
	}
	if (r->f.oom) {
		(void)str_copy(r->err, sizeof(r->err), "out of memory");
		return -1;
	}
	if (term_write(r->f.p, r->f.len) < 0) {
		(void)str_fmt(r->err, sizeof(r->err), "terminal: %s",
		    strerror(errno));
		return -1;
	}
	return 0;
}
