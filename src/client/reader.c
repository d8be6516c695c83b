/*
 * postino read: list, view, pager. The screen is redrawn whole after each
 * key into one buffer and written at once; only display text (mime.h) and
 * our own ASCII go into it, each row cut to the width by wcwidth(3).
 */
#include "reader.h"

#include <errno.h>
#include <langinfo.h>
#include <locale.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <wchar.h>

#include "mime.h"
#include "term.h"

#define KEY_CTRL_L	0x0c
#define KEY_ESC		0x1b

/* Tab stops in the view. */
#define TAB_WIDTH	8
/* Smallest window we draw in. */
#define MIN_ROWS	3
#define MIN_COLS	20

struct entry {
	uint32_t	 num;
	uint64_t	 size;
	bool		 deleted;
	bool		 loaded;	/* from, subject, date are set */
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
	struct pop3c	*c;
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
	char		 status[ERR_LEN * 2];	/* our ASCII or pop3c_errmsg */
	struct frame	 f;
	size_t		 committed;	/* deletions QUIT committed */
	char		 err[ERR_LEN];
};

bool
reader_has_terminal(void)
{
	return term_is_tty();
}

/* ---- the frame ---- */

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

/* s[0..len) in at most width columns, padded with spaces when pad. */
static int
frame_text(struct reader *r, const char *s, size_t len, int width, bool pad)
{
	int used = 0;
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

/* ---- sizes ---- */

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

static void
size_long(char *dst, size_t size, uint64_t n)
{
	if (n < 1024)
		(void)str_fmt(dst, size, "%llu byte%s", (unsigned long long)n,
		    n == 1 ? "" : "s");
	else if (n < 1024 * 1024)
		(void)str_fmt(dst, size, "%.1f KiB", (double)n / 1024);
	else
		(void)str_fmt(dst, size, "%.1f MiB", (double)n / (1024 * 1024));
}

/* ---- fetching ---- */

struct collect {
	char		*p;
	size_t		 len, cap, max;
	bool		 over;		/* more than max: stopped */
};

static int
collect_data(void *arg, const char *data, size_t len, bool eol)
{
	struct collect *x = arg;
	size_t need = len + (eol ? 1 : 0);

	if (x->over || need > x->max - x->len) {
		x->over = true;
		return -1;
	}
	if (x->len + need > x->cap) {
		size_t cap = x->cap < 8192 ? 8192 : x->cap;
		char *p;

		while (cap < x->len + need)
			cap *= 2;
		if (cap > x->max)
			cap = x->max;
		p = realloc(x->p, cap);
		if (p == NULL)
			return -1;
		x->p = p;
		x->cap = cap;
	}
	memcpy(x->p + x->len, data, len);
	x->len += len;
	if (eol)
		x->p[x->len++] = '\n';
	return 0;
}

static void
entry_clear(struct entry *e)
{
	free(e->from);
	free(e->subject);
	free(e->date);
	e->from = e->subject = e->date = NULL;
	e->loaded = false;
}

/* From our own ASCII text. -1 out of memory. */
static int
entry_note(struct entry *e, const char *subject)
{
	entry_clear(e);
	e->from = strdup("?");
	e->subject = strdup(subject);
	e->date = strdup("");
	e->loaded = true;
	return e->from && e->subject && e->date ? 0 : -1;
}

static int
entry_set(struct entry *e, const struct mime_msg *m)
{
	entry_clear(e);
	e->from = strdup(m->from_short);
	e->subject = strdup(m->subject);
	e->date = strdup(m->date_short);
	e->loaded = true;
	return e->from && e->subject && e->date ? 0 : -1;
}

/* From, Subject, Date of message i from TOP n 0. */
static enum step
load_entry(struct reader *r, size_t i)
{
	struct entry *e = &r->e[i];
	struct collect x = { .max = READER_HEADER_MAX };
	struct mime_msg *m = NULL;
	int rc;

	if (!r->has_top)
		return entry_note(e, "") < 0 ? STEP_LOCAL : STEP_GO;
	rc = pop3c_top(r->c, e->num, 0, 0, collect_data, &x, NULL);
	if (rc < 0) {
		free(x.p);
		if (!pop3c_usable(r->c))
			return STEP_SESSION;
		if (entry_note(e, x.over ? "(header too large)" :
		    "(no header: TOP failed)") < 0)
			goto oom;
		return STEP_GO;
	}
	rc = mime_parse(x.p != NULL ? x.p : "", x.len, r->codeset, &m, r->err);
	free(x.p);
	if (rc < 0)
		return STEP_LOCAL;
	rc = entry_set(e, m);
	mime_free(&m);
	if (rc < 0)
		goto oom;
	return STEP_GO;
oom:
	(void)str_copy(r->err, sizeof(r->err), "out of memory");
	return STEP_LOCAL;
}

/* Rows between the title and the status line; at least one. */
static int
page_rows(const struct reader *r)
{
	return r->rows > MIN_ROWS ? r->rows - 2 : 1;
}

static enum step
load_visible(struct reader *r)
{
	for (size_t i = r->top; i < r->n && i < r->top + (size_t)page_rows(r);
	    i++) {
		enum step s;

		if (r->e[i].loaded)
			continue;
		s = load_entry(r, i);
		if (s != STEP_GO)
			return s;
	}
	return STEP_GO;
}

/* ---- the view's text ---- */

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

static int
compose(struct reader *r, const struct mime_msg *m)
{
	struct text t = { 0 };
	char size[32];

	text_field(&t, "From: ", m->from);
	text_field(&t, "To: ", m->to);
	if (m->cc[0] != '\0')
		text_field(&t, "Cc: ", m->cc);
	text_field(&t, "Date: ", m->date);
	text_field(&t, "Subject: ", m->subject);
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
		size_long(size, sizeof(size), m->att[i].size);
		text_add(&t, "[attachment] ");
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

static int
note(struct reader *r, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* The view shows a line of ours instead of a message. */
static int
note(struct reader *r, const char *fmt, ...)
{
	struct text t = { 0 };
	char line[ERR_LEN * 2];
	va_list ap;

	va_start(ap, fmt);
	(void)vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
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
static int
wrap(struct reader *r)
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

static size_t
view_max_top(const struct reader *r)
{
	size_t page = (size_t)page_rows(r);

	return r->nrow > page ? r->nrow - page : 0;
}

/* Wrap again for a new width, keeping the first row's text in view. */
static int
rewrap(struct reader *r)
{
	size_t off = r->vtop < r->nrow ? r->row[r->vtop].off : 0;

	if (r->text == NULL)
		return 0;
	if (wrap(r) < 0)
		return -1;
	r->vtop = 0;
	while (r->vtop + 1 < r->nrow && r->row[r->vtop + 1].off <= off)
		r->vtop++;
	if (r->vtop > view_max_top(r))
		r->vtop = view_max_top(r);
	return 0;
}

static enum step
view_open(struct reader *r, size_t i)
{
	struct entry *e = &r->e[i];
	struct collect x = { .max = READER_MSG_MAX };
	struct mime_msg *m = NULL;
	char size[32];
	int rc;

	r->cur = i;
	r->mode = MODE_VIEW;
	r->vtop = 0;
	size_long(size, sizeof(size), e->size);
	if (e->deleted) {
		rc = note(r, "Message %u is marked for deletion; u undeletes "
		    "all messages (RSET).", (unsigned int)e->num);
	} else if (e->size > READER_MSG_MAX) {
		rc = note(r, "Message %u is %s: too large to show here (the "
		    "limit is %u MiB).", (unsigned int)e->num, size,
		    READER_MSG_MAX / (1024 * 1024));
	} else if (pop3c_retr(r->c, e->num, 0, collect_data, &x, NULL) < 0) {
		free(x.p);
		if (!pop3c_usable(r->c))
			return STEP_SESSION;
		if (x.over)
			rc = note(r, "Message %u is over %u MiB: too large to "
			    "show here.", (unsigned int)e->num,
			    READER_MSG_MAX / (1024 * 1024));
		else
			rc = note(r, "Message %u: %s", (unsigned int)e->num,
			    pop3c_errmsg(r->c));
	} else {
		rc = mime_parse(x.p != NULL ? x.p : "", x.len, r->codeset, &m,
		    r->err);
		free(x.p);
		if (rc < 0)
			return STEP_LOCAL;
		rc = compose(r, m);
		if (rc == 0 && !e->loaded && entry_set(e, m) < 0) {
			(void)str_copy(r->err, sizeof(r->err),
			    "out of memory");
			rc = -1;
		}
		mime_free(&m);
	}
	if (rc < 0 || wrap(r) < 0)
		return STEP_LOCAL;
	return STEP_GO;
}

static void
view_close(struct reader *r)
{
	free(r->text);
	r->text = NULL;
	r->text_len = 0;
	r->nrow = 0;
	r->mode = MODE_LIST;
}

/* ---- drawing ---- */

static void
list_keep_visible(struct reader *r)
{
	size_t page = (size_t)page_rows(r);

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
	int page = page_rows(r), numw = 1;

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
	int page = page_rows(r);

	size_long(size, sizeof(size), e->size);
	(void)str_fmt(title, sizeof(title), "Message %u (%zu of %zu)  %s%s",
	    (unsigned int)e->num, r->cur + 1, r->n, size,
	    e->deleted ? "  [marked for deletion]" : "");
	bar(r, 1, title);
	for (int y = 0; y < page; y++) {
		size_t i = r->vtop + (size_t)y;

		row_begin(r, y + 2);
		if (i < r->nrow)
			frame_text(r, r->text + r->row[i].off, r->row[i].len,
			    r->cols, false);
		row_end(r);
	}
}

static int
draw(struct reader *r)
{
	char help[ERR_LEN];

	r->f.len = 0;
	r->f.oom = false;
	if (r->clear)
		frame_str(r, "\033[H\033[2J");
	r->clear = false;
	if (r->rows < MIN_ROWS || r->cols < MIN_COLS) {
		frame_str(r, "\033[H\033[2J");
		frame_text(r, "window too small", 16, r->cols, false);
	} else {
		if (r->mode == MODE_LIST) {
			draw_list(r);
			(void)str_copy(help, sizeof(help), "j/k move  Enter "
			    "open  d delete  u undelete all  q quit  x quit, "
			    "delete nothing");
		} else {
			size_t end = r->vtop + (size_t)page_rows(r);

			draw_view(r);
			(void)str_fmt(help, sizeof(help), "-- %s --  q back  "
			    "n/p next/prev  Space/b page  d delete  x quit",
			    r->nrow <= (size_t)page_rows(r) ? "all" :
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

/* ---- commands ---- */

static enum step
do_delete(struct reader *r, size_t i)
{
	struct entry *e = &r->e[i];

	if (e->deleted) {
		(void)str_fmt(r->status, sizeof(r->status), "Message %u is "
		    "already marked for deletion.", (unsigned int)e->num);
		return STEP_GO;
	}
	if (pop3c_dele(r->c, e->num) < 0) {
		if (!pop3c_usable(r->c))
			return STEP_SESSION;
		(void)str_copy(r->status, sizeof(r->status),
		    pop3c_errmsg(r->c));
		return STEP_GO;
	}
	e->deleted = true;
	r->ndel++;
	(void)str_fmt(r->status, sizeof(r->status), "Message %u marked for "
	    "deletion (QUIT deletes it; u undoes all).", (unsigned int)e->num);
	return STEP_GO;
}

static enum step
do_undelete(struct reader *r)
{
	if (pop3c_rset(r->c) < 0) {
		if (!pop3c_usable(r->c))
			return STEP_SESSION;
		(void)str_copy(r->status, sizeof(r->status),
		    pop3c_errmsg(r->c));
		return STEP_GO;
	}
	for (size_t i = 0; i < r->n; i++)
		r->e[i].deleted = false;
	r->ndel = 0;
	(void)str_copy(r->status, sizeof(r->status),
	    "No message is marked for deletion now (RSET).");
	return STEP_GO;
}

/* A key for a question, redrawing through resizes. */
static int
ask(struct reader *r)
{
	for (;;) {
		int k;

		if (draw(r) < 0)
			return -1;
		k = term_key(-1);
		if (k != TERM_KEY_RESIZE)
			return k;
		term_size(&r->rows, &r->cols);
		if (r->mode == MODE_VIEW && rewrap(r) < 0)
			return -1;
	}
}

static enum step
do_quit(struct reader *r)
{
	if (r->ndel > 0) {
		int k;

		(void)str_fmt(r->status, sizeof(r->status), "Delete %zu "
		    "message%s? (y/n) ", r->ndel, r->ndel == 1 ? "" : "s");
		k = ask(r);
		r->status[0] = '\0';
		if (k == -1)
			return STEP_LOCAL;
		if (k == 'n' || k == 'N') {
			if (pop3c_rset(r->c) < 0)
				return STEP_SESSION;
			r->ndel = 0;
		} else if (k != 'y' && k != 'Y') {
			(void)str_copy(r->status, sizeof(r->status),
			    "Not quitting.");
			return STEP_GO;
		}
	}
	if (pop3c_quit(r->c) < 0)
		return STEP_SESSION;
	r->committed = r->ndel;
	return STEP_DONE;
}

static size_t
next_undeleted(const struct reader *r, size_t from, int dir)
{
	size_t i = from;

	while (dir > 0 ? i + 1 < r->n : i > 0) {
		i = dir > 0 ? i + 1 : i - 1;
		if (!r->e[i].deleted)
			return i;
	}
	return r->n;
}

static size_t
clamp_add(size_t pos, long delta, size_t n)
{
	if (n == 0)
		return 0;
	if (delta < 0)
		return (size_t)-delta > pos ? 0 : pos - (size_t)-delta;
	return pos + (size_t)delta >= n ? n - 1 : pos + (size_t)delta;
}

static enum step
list_key(struct reader *r, int k)
{
	long page = page_rows(r);

	switch (k) {
	case 'j':
	case TERM_KEY_DOWN:
		r->cur = clamp_add(r->cur, 1, r->n);
		break;
	case 'k':
	case TERM_KEY_UP:
		r->cur = clamp_add(r->cur, -1, r->n);
		break;
	case ' ':
	case TERM_KEY_PGDN:
		r->cur = clamp_add(r->cur, page, r->n);
		break;
	case 'b':
	case TERM_KEY_PGUP:
		r->cur = clamp_add(r->cur, -page, r->n);
		break;
	case 'g':
	case TERM_KEY_HOME:
		r->cur = 0;
		break;
	case 'G':
	case TERM_KEY_END:
		r->cur = r->n > 0 ? r->n - 1 : 0;
		break;
	case '\r':
	case '\n':
	case 'l':
	case TERM_KEY_RIGHT:
		if (r->n > 0)
			return view_open(r, r->cur);
		break;
	case 'd':
		if (r->n > 0) {
			enum step s = do_delete(r, r->cur);

			if (s != STEP_GO)
				return s;
			r->cur = clamp_add(r->cur, 1, r->n);
		}
		break;
	case 'u':
		return do_undelete(r);
	case 'q':
	case 'Q':
		return do_quit(r);
	case 'x':
		return STEP_DONE;
	}
	return STEP_GO;
}

static enum step
view_key(struct reader *r, int k)
{
	long page = page_rows(r);
	size_t max = view_max_top(r), i;

	switch (k) {
	case 'j':
	case TERM_KEY_DOWN:
	case '\r':
	case '\n':
		r->vtop = clamp_add(r->vtop, 1, max + 1);
		break;
	case 'k':
	case TERM_KEY_UP:
		r->vtop = clamp_add(r->vtop, -1, max + 1);
		break;
	case ' ':
	case TERM_KEY_PGDN:
		r->vtop = clamp_add(r->vtop, page, max + 1);
		break;
	case 'b':
	case TERM_KEY_PGUP:
		r->vtop = clamp_add(r->vtop, -page, max + 1);
		break;
	case 'g':
	case TERM_KEY_HOME:
		r->vtop = 0;
		break;
	case 'G':
	case TERM_KEY_END:
		r->vtop = max;
		break;
	case 'q':
	case 'h':
	case TERM_KEY_LEFT:
		view_close(r);
		break;
	case 'n':
	case 'p':
		i = next_undeleted(r, r->cur, k == 'n' ? 1 : -1);
		if (i == r->n) {
			(void)str_copy(r->status, sizeof(r->status), k == 'n' ?
			    "No next message." : "No previous message.");
			break;
		}
		return view_open(r, i);
	case 'd':
		return do_delete(r, r->cur);
	case 'u':
		return do_undelete(r);
	case 'Q':
		return do_quit(r);
	case 'x':
		return STEP_DONE;
	}
	return STEP_GO;
}

static enum step
run(struct reader *r)
{
	for (;;) {
		enum step s;
		int k;

		if (r->mode == MODE_LIST) {
			list_keep_visible(r);
			s = load_visible(r);
			if (s != STEP_GO)
				return s;
		}
		if (draw(r) < 0)
			return STEP_LOCAL;
		k = term_key(READER_KEEPALIVE_MS);
		if (k == TERM_KEY_TIMEOUT) {
			uint32_t n;
			uint64_t size;

			if (pop3c_stat(r->c, &n, &size) < 0 &&
			    !pop3c_usable(r->c))
				return STEP_SESSION;
			continue;
		}
		if (k == TERM_KEY_RESIZE) {
			term_size(&r->rows, &r->cols);
			if (r->mode == MODE_VIEW && rewrap(r) < 0)
				return STEP_LOCAL;
			continue;
		}
		if (k == TERM_KEY_EOF)
			return STEP_DONE;	/* like x: no QUIT */
		if (k < 0) {
			(void)str_fmt(r->err, sizeof(r->err), "terminal: %s",
			    strerror(errno));
			return STEP_LOCAL;
		}
		r->status[0] = '\0';
		if (k == KEY_CTRL_L) {
			r->clear = true;
			continue;
		}
		s = r->mode == MODE_LIST ? list_key(r, k) : view_key(r, k);
		if (s != STEP_GO)
			return s;
	}
}

/* Messages from LIST; the title from STAT. */
static enum step
start(struct reader *r, const struct reader_opts *o)
{
	struct pop3c_msg *msgs = NULL;
	char title[ERR_LEN];
	size_t n = 0;

	(void)str_fmt(title, sizeof(title), "%s@%s", o->user, o->where);
	r->title = mime_display(title, strlen(title), r->codeset, true, NULL);
	if (r->title == NULL)
		goto oom;
	r->has_top = !pop3c_caps_known(r->c) ||
	    (pop3c_caps(r->c) & POP3C_CAP_TOP);
	if (pop3c_stat(r->c, &r->count, &r->octets) < 0 ||
	    pop3c_list(r->c, &msgs, &n) < 0)
		return STEP_SESSION;
	if (n > 0 && (r->e = calloc(n, sizeof(*r->e))) == NULL) {
		pop3c_msgs_free(&msgs, n);
		goto oom;
	}
	for (size_t i = 0; i < n; i++) {
		r->e[i].num = msgs[i].num;
		r->e[i].size = msgs[i].size;
	}
	r->n = n;
	pop3c_msgs_free(&msgs, n);
	return STEP_GO;
oom:
	(void)str_copy(r->err, sizeof(r->err), "out of memory");
	return STEP_LOCAL;
}

int
reader_main(struct pop3c *c, const struct reader_opts *o)
{
	struct reader r = { .c = c, .mode = MODE_LIST };
	enum step s;

	if (!term_is_tty()) {
		fprintf(stderr, "postino: read needs a terminal\n");
		return 1;
	}
	(void)setlocale(LC_CTYPE, "");
	r.codeset = nl_langinfo(CODESET);
	mime_init();
	s = start(&r, o);
	if (s == STEP_GO && term_open(r.err) < 0)
		s = STEP_LOCAL;
	if (s == STEP_GO) {
		term_size(&r.rows, &r.cols);
		s = run(&r);
	}
	term_close();
	for (size_t i = 0; i < r.n; i++)
		entry_clear(&r.e[i]);
	free(r.e);
	free(r.text);
	free(r.row);
	free(r.f.p);
	free(r.title);
	mime_shutdown();
	switch (s) {
	case STEP_SESSION:
		return -1;
	case STEP_LOCAL:
		fprintf(stderr, "postino: %s\n", r.err);
		return 1;
	default:
		if (r.committed > 0)
			fprintf(stderr, "postino: %zu message%s deleted on "
			    "%s\n", r.committed, r.committed == 1 ? "" : "s",
			    o->where);
		return 0;
	}
}
