/*
 * postino read: list, view, pager. The screen is redrawn whole after each
 * key into one buffer and written at once; only display text (mime.h) and
 * our own ASCII go into it, each row cut to the width by wcwidth(3).
 */
#include "reader.h"

#include <errno.h>
#include <fcntl.h>
#include <langinfo.h>
#include <locale.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <wchar.h>

#include "../lib/fdio.h"
#include "mime.h"
#include "term.h"

#define KEY_CTRL_L	0x0c
#define KEY_ESC		0x1b

/* Tab stops in the view. */
#define TAB_WIDTH	8
/* Longest file name offered from the mail; longest path or command typed. */
#define SAVE_NAME_MAX	200
#define LINE_MAX_TYPED	1024
/* Longest search text; a line of the status bar is enough. */
#define SEARCH_MAX	200
/* Smallest window we draw in. */
#define MIN_ROWS	3
#define MIN_COLS	20

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
	char		 search[SEARCH_MAX + 1];	/* the last / text */
	char		 status[ERR_LEN * 2];	/* our ASCII or pop3c_errmsg */
	struct frame	 f;
	mode_t		 umask;		/* the user's, for saved files */
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

/* The headers of rows from..from+count not loaded yet. */
static enum step
load_rows(struct reader *r, size_t from, size_t count)
{
	for (size_t i = from; i < r->n && i - from < count; i++) {
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

static int
compose(struct reader *r)
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

		size_long(size, sizeof(size), m->att[i].size);
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
static int
note(struct reader *r, const char *line)
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

/* The message behind the view, if one is shown. */
static void
view_free(struct reader *r)
{
	free(r->raw);
	r->raw = NULL;
	r->raw_len = 0;
	mime_free(&r->msg);
}

static void
view_close(struct reader *r)
{
	view_free(r);
	free(r->text);
	r->text = NULL;
	r->text_len = 0;
	r->nrow = 0;
	r->mode = MODE_LIST;
}

/*
 * Message i, RETR'd and decoded into r->raw and r->msg; or, when it is
 * not to be shown (marked, too large, refused), why not in why.
 */
static enum step
fetch(struct reader *r, size_t i, char *why, size_t size)
{
	struct entry *e = &r->e[i];
	struct collect x = { .max = READER_MSG_MAX };
	char sz[32];

	why[0] = '\0';
	view_free(r);
	size_long(sz, sizeof(sz), e->size);
	if (e->deleted) {
		(void)str_fmt(why, size, "Message %u is marked for deletion; "
		    "u undeletes it.", (unsigned int)e->num);
	} else if (e->size > READER_MSG_MAX) {
		(void)str_fmt(why, size, "Message %u is %s: too large to show "
		    "here (the limit is %u MiB).", (unsigned int)e->num, sz,
		    READER_MSG_MAX / (1024 * 1024));
	} else if (pop3c_retr(r->c, e->num, 0, collect_data, &x, NULL) < 0) {
		free(x.p);
		if (!pop3c_usable(r->c))
			return STEP_SESSION;
		if (x.over)
			(void)str_fmt(why, size, "Message %u is over %u MiB: "
			    "too large to show here.", (unsigned int)e->num,
			    READER_MSG_MAX / (1024 * 1024));
		else
			(void)str_fmt(why, size, "Message %u: %s",
			    (unsigned int)e->num, pop3c_errmsg(r->c));
	} else {
		if (mime_parse(x.p != NULL ? x.p : "", x.len, r->codeset,
		    &r->msg, r->err) < 0) {
			free(x.p);
			return STEP_LOCAL;
		}
		r->raw = x.p;
		r->raw_len = x.len;
		if (!e->loaded && entry_set(e, r->msg) < 0) {
			(void)str_copy(r->err, sizeof(r->err),
			    "out of memory");
			return STEP_LOCAL;
		}
	}
	return STEP_GO;
}

static enum step
view_open(struct reader *r, size_t i)
{
	char why[ERR_LEN * 2];
	enum step s;

	r->cur = i;
	r->mode = MODE_VIEW;
	r->vtop = 0;
	s = fetch(r, i, why, sizeof(why));
	if (s == STEP_SESSION)
		view_close(r);		/* nothing to show: the list */
	if (s != STEP_GO)
		return s;
	if ((why[0] != '\0' ? note(r, why) : compose(r)) < 0 || wrap(r) < 0)
		return STEP_LOCAL;
	return STEP_GO;
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
	} else if (r->help) {
		draw_help(r);
	} else {
		if (r->mode == MODE_LIST) {
			draw_list(r);
			(void)str_copy(help, sizeof(help), "j/k move  Enter "
			    "open  d delete  u/U undelete  / search  q quit  "
			    "x quit, delete nothing  ? help");
		} else {
			size_t end = r->vtop + (size_t)page_rows(r);

			draw_view(r);
			(void)str_fmt(help, sizeof(help), "-- %s --  q back  "
			    "n/p next/prev  Space/b page  d delete  H header  "
			    "s save  ? help",
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
	    "deletion (QUIT deletes it; u undoes it).", (unsigned int)e->num);
	return STEP_GO;
}

/*
 * One message unmarked. POP3 has no command for it: RSET unmarks all,
 * then DELE marks the others again.
 */
static enum step
do_undelete_one(struct reader *r, size_t i)
{
	struct entry *e = &r->e[i];

	if (!e->deleted) {
		(void)str_fmt(r->status, sizeof(r->status), "Message %u is "
		    "not marked for deletion.", (unsigned int)e->num);
		return STEP_GO;
	}
	if (pop3c_rset(r->c) < 0) {
		if (!pop3c_usable(r->c))
			return STEP_SESSION;
		(void)str_copy(r->status, sizeof(r->status),
		    pop3c_errmsg(r->c));
		return STEP_GO;
	}
	e->deleted = false;
	r->ndel = 0;
	for (size_t j = 0; j < r->n; j++) {
		if (!r->e[j].deleted)
			continue;
		if (pop3c_dele(r->c, r->e[j].num) < 0) {
			if (!pop3c_usable(r->c))
				return STEP_SESSION;
			r->e[j].deleted = false;	/* the server says no */
			continue;
		}
		r->ndel++;
	}
	(void)str_fmt(r->status, sizeof(r->status), "Message %u is not "
	    "marked for deletion now.", (unsigned int)e->num);
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

/*
 * A line typed on the status row into buf (size > 1): 1 when Enter ended
 * it, 0 when Esc or ^G did, -1 on a terminal error. Backspace takes back
 * one character, ^U all. What is typed is shown as display text is:
 * controls never reach the screen (frame_text).
 */
static int
prompt_line(struct reader *r, const char *prompt, char *buf, size_t size)
{
	size_t len = strlen(buf);

	for (;;) {
		int k;

		(void)str_fmt(r->status, sizeof(r->status), "%s%s", prompt,
		    buf);
		k = ask(r);
		r->status[0] = '\0';
		if (k < 0 || k == TERM_KEY_EOF)
			return -1;
		if (k == '\r' || k == '\n')
			return 1;
		if (k == KEY_ESC || k == 0x07)
			return 0;
		if (k == 0x7f || k == 0x08) {
			while (len > 0 && ((unsigned char)buf[--len] & 0xc0) ==
			    0x80)
				;
			buf[len] = '\0';
		} else if (k == 0x15) {
			len = 0;
			buf[0] = '\0';
		} else if (k >= 0x20 && k <= 0xff && k != 0x7f &&
		    len + 1 < size) {
			buf[len++] = (char)k;
			buf[len] = '\0';
		}
	}
}

static bool
has_text(const char *s, const char *what)
{
	return s != NULL && strcasestr(s, what) != NULL;
}

/* The next list row after the cursor (wrapping) whose From or Subject has it. */
static enum step
search_list(struct reader *r)
{
	for (size_t k = 1; k <= r->n; k++) {
		size_t i = (r->cur + k) % r->n;
		enum step s;

		if (!r->e[i].loaded && (s = load_entry(r, i)) != STEP_GO)
			return s;
		if (has_text(r->e[i].subject, r->search) ||
		    has_text(r->e[i].from, r->search)) {
			r->cur = i;
			if (k == r->n)
				(void)str_copy(r->status, sizeof(r->status),
				    "The only match.");
			return STEP_GO;
		}
	}
	(void)str_fmt(r->status, sizeof(r->status), "Not found: %s",
	    r->search);
	return STEP_GO;
}

/* The next occurrence after the top row, as less(1) does (wrapping). */
static void
search_view(struct reader *r)
{
	size_t from = r->vtop < r->nrow ? r->row[r->vtop].off +
	    r->row[r->vtop].len : 0;
	const char *hit = NULL;

	if (r->text != NULL && from <= r->text_len)
		hit = strcasestr(r->text + from, r->search);
	if (hit == NULL && r->text != NULL)
		hit = strcasestr(r->text, r->search);
	if (hit == NULL) {
		(void)str_fmt(r->status, sizeof(r->status), "Not found: %s",
		    r->search);
		return;
	}
	for (r->vtop = 0; r->vtop + 1 < r->nrow &&
	    r->row[r->vtop + 1].off <= (size_t)(hit - r->text); r->vtop++)
		;
	if (r->vtop > view_max_top(r)) {
		(void)str_fmt(r->status, sizeof(r->status), "Found on line "
		    "%zu.", r->vtop + 1);
		r->vtop = view_max_top(r);
	}
}

/* `/` asks for the text (Enter alone: the last one), `N` searches again. */
static enum step
do_search(struct reader *r, bool ask_text)
{
	char text[SEARCH_MAX + 1] = "";
	int rc;

	if (ask_text) {
		rc = prompt_line(r, "Search for: ", text, sizeof(text));
		if (rc < 0) {
			(void)str_fmt(r->err, sizeof(r->err), "terminal: %s",
			    strerror(errno));
			return STEP_LOCAL;
		}
		if (rc == 0)
			return STEP_GO;
		if (text[0] != '\0')
			(void)str_copy(r->search, sizeof(r->search), text);
	}
	if (r->search[0] == '\0') {
		(void)str_copy(r->status, sizeof(r->status),
		    "No search yet: / searches.");
		return STEP_GO;
	}
	if (r->mode == MODE_LIST)
		return r->n > 0 ? search_list(r) : STEP_GO;
	search_view(r);
	return STEP_GO;
}

/* ---- attachments ---- */

/* Which attachment: the only one, else the one asked for; -1 none. */
static long
pick_attachment(struct reader *r, const char *what)
{
	char num[16] = "", prompt[64];
	uint32_t n;

	if (r->msg == NULL || r->msg->n_att == 0) {
		(void)str_copy(r->status, sizeof(r->status),
		    "This message has no attachment.");
		return -1;
	}
	if (r->msg->n_att == 1)
		return 0;
	(void)str_fmt(prompt, sizeof(prompt), "%s attachment (1-%zu): ",
	    what, r->msg->n_att);
	if (prompt_line(r, prompt, num, sizeof(num)) <= 0)
		return -1;
	if (str_parse_u32(num, &n) < 0 || n == 0 || n > r->msg->n_att) {
		(void)str_copy(r->status, sizeof(r->status),
		    "No such attachment.");
		return -1;
	}
	return (long)n - 1;
}

/*
 * The name the mail suggests, made a plain file name here: no directory
 * part, no control octet, no leading dot, dash or space (no "..", no
 * hidden file, no option), display text, at most SAVE_NAME_MAX octets;
 * "attachment-N" when nothing is left.
 */
static void
safe_name(const struct reader *r, const char *name, long i, char *out,
    size_t size)
{
	char tmp[SAVE_NAME_MAX + 1];
	const char *base = name;
	size_t n = 0;
	char *d;

	for (const char *p = name; *p != '\0'; p++)
		if (*p == '/' || *p == '\\')
			base = p + 1;
	for (const char *p = base; *p != '\0' && n < SAVE_NAME_MAX; p++) {
		unsigned char c = (unsigned char)*p;

		if (c < 0x20 || c == 0x7f || (n == 0 && (c == '.' ||
		    c == '-' || c == ' ')))
			continue;
		tmp[n++] = (char)c;
	}
	d = mime_display(tmp, n, r->codeset, true, NULL);
	if (d == NULL || d[0] == '\0')
		(void)str_fmt(out, size, "attachment-%ld", i + 1);
	else
		(void)str_copy(out, size, d);
	free(d);
}

/*
 * Create path with the user's umask, never through a symbolic link;
 * an existing file only after a yes. The fd, or -1 (status set).
 */
static int
create_file(struct reader *r, const char *path)
{
	int flags = O_WRONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC;
	mode_t old = umask(r->umask);
	struct stat st;
	int fd, k;

	fd = open(path, flags | O_CREAT | O_EXCL, 0666);
	(void)umask(old);
	if (fd < 0 && errno == EEXIST) {
		(void)str_fmt(r->status, sizeof(r->status), "%s exists: "
		    "replace it? y = replace, any other key = keep it", path);
		k = ask(r);
		r->status[0] = '\0';
		if (k != 'y' && k != 'Y') {
			(void)str_copy(r->status, sizeof(r->status),
			    "Not saved.");
			return -1;
		}
		fd = open(path, flags, 0);
		/* A FIFO or device is not replaced; a file is, on truncate. */
		if (fd >= 0 && (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) ||
		    ftruncate(fd, 0) < 0)) {
			(void)close(fd);
			(void)str_fmt(r->status, sizeof(r->status), "%s: not "
			    "a regular file; not saved.", path);
			return -1;
		}
	}
	if (fd < 0) {
		(void)str_fmt(r->status, sizeof(r->status), "%s: %s", path,
		    errno == ELOOP ? "a symbolic link; not saved" :
		    strerror(errno));
		return -1;
	}
	(void)fcntl(fd, F_SETFL, 0);		/* blocking again */
	return fd;
}

/* s: save an attachment, decoded, to a file the user names. */
static enum step
do_save(struct reader *r)
{
	char path[LINE_MAX_TYPED] = "", *data, *name;
	long i = pick_attachment(r, "Save");
	size_t len;
	int fd;

	if (i < 0)
		return STEP_GO;
	if (mime_attachment(r->raw, r->raw_len, (size_t)i, &data, &len, &name,
	    r->err) < 0) {
		(void)str_copy(r->status, sizeof(r->status), r->err);
		return STEP_GO;
	}
	safe_name(r, name, i, path, sizeof(path));
	if (prompt_line(r, "Save to file: ", path, sizeof(path)) <= 0 ||
	    path[0] == '\0')
		(void)str_copy(r->status, sizeof(r->status), "Not saved.");
	else if ((fd = create_file(r, path)) >= 0) {
		if (fd_write_all(fd, data, len) < 0 || close(fd) < 0)
			(void)str_fmt(r->status, sizeof(r->status), "%s: %s",
			    path, strerror(errno));
		else
			(void)str_fmt(r->status, sizeof(r->status), "Saved "
			    "%zu bytes to %s.", len, path);
	}
	free(data);
	free(name);
	return STEP_GO;
}

/* The command's wait status, or -1 (errno) when it could not start. */
static int
run_pipe(const struct reader *r, const char *cmd, const char *data,
    size_t len)
{
	int p[2], status;
	pid_t pid;

	if (pipe2(p, O_CLOEXEC) < 0)
		return -1;
	pid = fork();
	if (pid == 0) {
		/* The user's own command, so the user's shell is right. */
		if (dup2(p[0], STDIN_FILENO) < 0)
			_exit(127);
		(void)signal(SIGPIPE, SIG_DFL);
		(void)umask(r->umask);
		execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
		_exit(127);
	}
	(void)close(p[0]);
	if (pid < 0) {
		(void)close(p[1]);
		return -1;
	}
	/* SIGPIPE is ignored: a command that stops reading gives EPIPE. */
	(void)fd_write_all(p[1], data, len);
	(void)close(p[1]);
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return -1;
	return status;
}

/* After the command: its output stays on the screen until Enter. */
static void
wait_enter(const char *what)
{
	char line[256], c;

	(void)str_fmt(line, sizeof(line), "\n[%s; press Enter]", what);
	(void)term_write(line, strlen(line));
	for (size_t n = 0; n < 4096; n++)
		if (read(STDIN_FILENO, &c, 1) != 1 || c == '\n')
			break;
}

/* |: pipe an attachment, decoded, to a command the user types. */
static enum step
do_pipe(struct reader *r)
{
	char cmd[LINE_MAX_TYPED] = "", what[64], *data, *name;
	long i = pick_attachment(r, "Pipe");
	size_t len;
	int st;

	if (i < 0)
		return STEP_GO;
	if (prompt_line(r, "Pipe to command: ", cmd, sizeof(cmd)) <= 0 ||
	    cmd[0] == '\0') {
		(void)str_copy(r->status, sizeof(r->status), "Not piped.");
		return STEP_GO;
	}
	if (mime_attachment(r->raw, r->raw_len, (size_t)i, &data, &len, &name,
	    r->err) < 0) {
		(void)str_copy(r->status, sizeof(r->status), r->err);
		return STEP_GO;
	}
	term_pause();
	st = run_pipe(r, cmd, data, len);
	free(data);
	free(name);
	if (st < 0)
		(void)str_fmt(what, sizeof(what), "cannot run it: %s",
		    strerror(errno));
	else if (WIFEXITED(st))
		(void)str_fmt(what, sizeof(what), "exit status %d",
		    WEXITSTATUS(st));
	else
		(void)str_fmt(what, sizeof(what), "killed by signal %d",
		    WTERMSIG(st));
	wait_enter(what);
	if (term_resume(r->err) < 0)
		return STEP_LOCAL;
	term_size(&r->rows, &r->cols);
	if (rewrap(r) < 0)
		return STEP_LOCAL;
	r->clear = true;
	(void)str_fmt(r->status, sizeof(r->status), "Command: %s.", what);
	return STEP_GO;
}

/* H: the header as received, or the short one. */
static enum step
toggle_headers(struct reader *r)
{
	if (r->msg == NULL)
		return STEP_GO;
	r->full_headers = !r->full_headers;
	if (compose(r) < 0 || wrap(r) < 0)
		return STEP_LOCAL;
	r->vtop = 0;
	return STEP_GO;
}

/* QUIT, after RSET when keep: the marks committed, or none. */
static enum step
quit(struct reader *r, bool keep)
{
	if (keep && r->ndel > 0) {
		if (pop3c_rset(r->c) < 0)
			return STEP_SESSION;
		for (size_t i = 0; i < r->n; i++)
			r->e[i].deleted = false;
		r->ndel = 0;
	}
	if (pop3c_quit(r->c) < 0)
		return STEP_SESSION;
	r->committed = r->ndel;
	return STEP_DONE;
}

static enum step
do_quit(struct reader *r)
{
	if (r->ndel > 0) {
		int k;

		(void)str_fmt(r->status, sizeof(r->status), "Delete %zu "
		    "marked message%s on the server? y = delete and quit, "
		    "n = quit and keep them all, c/Esc = back", r->ndel,
		    r->ndel == 1 ? "" : "s");
		if (strlen(r->status) > (size_t)r->cols)	/* 80 columns */
			(void)str_fmt(r->status, sizeof(r->status), "Delete "
			    "%zu on the server? y = delete, quit  n = quit, "
			    "keep all  c/Esc = back", r->ndel);
		k = ask(r);
		r->status[0] = '\0';
		if (k == -1)
			return STEP_LOCAL;
		if (k != 'n' && k != 'N' && k != 'y' && k != 'Y') {
			(void)str_copy(r->status, sizeof(r->status),
			    "Not quitting.");
			return STEP_GO;
		}
		return quit(r, k == 'n' || k == 'N');
	}
	return quit(r, false);
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
		return r->n > 0 ? do_undelete_one(r, r->cur) : STEP_GO;
	case 'U':
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
	enum step s;

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
		if (!r->e[r->cur].deleted)
			return do_undelete_one(r, r->cur);	/* says so */
		s = do_undelete_one(r, r->cur);
		return s == STEP_GO ? view_open(r, r->cur) : s;
	case 'U':
		return do_undelete(r);
	case 'H':
		return toggle_headers(r);
	case 's':
		return do_save(r);
	case '|':
		return do_pipe(r);
	case 'Q':
		return do_quit(r);
	case 'x':
		return STEP_DONE;
	}
	return STEP_GO;
}

/* ---- the listing ---- */

static void
entries_free(struct entry **e, size_t n)
{
	for (size_t i = 0; *e != NULL && i < n; i++) {
		entry_clear(&(*e)[i]);
		free((*e)[i].uid);
	}
	free(*e);
	*e = NULL;
}

/* STAT for the title; LIST, and UIDL when there is one, as entries. */
static enum step
listing(struct reader *r, struct entry **e_r, size_t *n_r)
{
	struct pop3c_msg *msgs = NULL;
	struct entry *e = NULL;
	size_t n = 0;
	int rc = 1;

	*e_r = NULL;
	*n_r = 0;
	if (pop3c_stat(r->c, &r->count, &r->octets) < 0 ||
	    pop3c_list(r->c, &msgs, &n) < 0)
		return STEP_SESSION;
	if (n > 0 && (!pop3c_caps_known(r->c) ||
	    (pop3c_caps(r->c) & POP3C_CAP_UIDL)))
		rc = pop3c_uidl(r->c, msgs, n);
	if ((rc < 0 && !pop3c_usable(r->c)) ||
	    (n > 0 && (e = calloc(n, sizeof(*e))) == NULL)) {
		pop3c_msgs_free(&msgs, n);
		if (rc < 0 && !pop3c_usable(r->c))
			return STEP_SESSION;
		(void)str_copy(r->err, sizeof(r->err), "out of memory");
		return STEP_LOCAL;
	}
	for (size_t i = 0; i < n; i++) {
		e[i].num = msgs[i].num;
		e[i].size = msgs[i].size;
		if (rc == 0) {		/* all or none: a mark needs its uid */
			e[i].uid = msgs[i].uid;
			msgs[i].uid = NULL;
		}
	}
	pop3c_msgs_free(&msgs, n);
	*e_r = e;
	*n_r = n;
	return STEP_GO;
}

/* The title; the messages. */
static enum step
start(struct reader *r, const struct reader_opts *o)
{
	char title[ERR_LEN];

	(void)str_fmt(title, sizeof(title), "%s@%s", o->user, o->where);
	r->title = mime_display(title, strlen(title), r->codeset, true, NULL);
	if (r->title == NULL) {
		(void)str_copy(r->err, sizeof(r->err), "out of memory");
		return STEP_LOCAL;
	}
	r->has_top = !pop3c_caps_known(r->c) ||
	    (pop3c_caps(r->c) & POP3C_CAP_TOP);
	return listing(r, &r->e, &r->n);
}

/* ---- a dropped session ---- */

static int
entry_uid_cmp(const void *a, const void *b)
{
	return strcmp((*(struct entry *const *)a)->uid,
	    (*(struct entry *const *)b)->uid);
}

/*
 * The old entry that is new entry e: by UIDL (numbers may have moved);
 * without UIDL only when the listing is the very same (count and sizes).
 */
static struct entry *
old_entry(struct reader *r, struct entry **byuid, const struct entry *e,
    size_t i, bool same)
{
	struct entry key = { .uid = e->uid }, *kp = &key, **hit;

	if (byuid == NULL)
		return same ? &r->e[i] : NULL;
	if (e->uid == NULL)
		return NULL;
	hit = bsearch(&kp, byuid, r->n, sizeof(*byuid), entry_uid_cmp);
	return hit != NULL ? *hit : NULL;
}

/* Headers and marks carried from the old entries; the cursor follows. */
static size_t
carry(struct reader *r, struct entry *e, size_t n, struct entry **byuid)
{
	bool same = n == r->n;
	size_t cur = r->cur < n ? r->cur : n > 0 ? n - 1 : 0;

	for (size_t i = 0; same && i < n; i++)
		same = e[i].size == r->e[i].size;
	for (size_t i = 0; i < n; i++) {
		struct entry *o = old_entry(r, byuid, &e[i], i, same);

		if (o == NULL)
			continue;
		if (o->loaded) {
			e[i].from = o->from;
			e[i].subject = o->subject;
			e[i].date = o->date;
			e[i].loaded = true;
			o->from = o->subject = o->date = NULL;
			o->loaded = false;
		}
		e[i].deleted = o->deleted;
		if (o == &r->e[r->cur])
			cur = i;
	}
	return cur;
}

/*
 * After a new login: the new listing, the old marks carried over by UIDL
 * and marked again with DELE. A mark whose message is gone is dropped.
 */
static enum step
remap(struct reader *r)
{
	struct entry *e, **byuid = NULL;
	size_t n, before = r->ndel, cur;
	bool uids = r->n > 0;
	enum step s;

	r->has_top = !pop3c_caps_known(r->c) ||
	    (pop3c_caps(r->c) & POP3C_CAP_TOP);
	s = listing(r, &e, &n);
	if (s != STEP_GO)
		return s;
	for (size_t i = 0; i < r->n; i++)
		uids = uids && r->e[i].uid != NULL;
	if (uids && (byuid = calloc(r->n, sizeof(*byuid))) != NULL) {
		for (size_t i = 0; i < r->n; i++)
			byuid[i] = &r->e[i];
		qsort(byuid, r->n, sizeof(*byuid), entry_uid_cmp);
	}
	cur = carry(r, e, n, byuid);
	free(byuid);
	entries_free(&r->e, r->n);
	r->e = e;
	r->n = n;
	r->cur = cur;
	r->ndel = 0;
	for (size_t i = 0; i < n; i++)
		r->ndel += e[i].deleted;
	for (size_t i = 0; i < n; i++) {
		if (!e[i].deleted)
			continue;
		if (pop3c_dele(r->c, e[i].num) < 0) {
			if (!pop3c_usable(r->c))
				return STEP_SESSION;	/* marks kept */
			e[i].deleted = false;
			r->ndel--;
		}
	}
	(void)str_fmt(r->status, sizeof(r->status), "Reconnected to %s; "
	    "%zu of %zu marks kept.", r->title, r->ndel, before);
	return STEP_GO;
}

static void
lost(struct reader *r)
{
	r->dropped = true;
	(void)str_fmt(r->status, sizeof(r->status), "Connection lost; a key "
	    "reconnects (marks kept), x leaves: %s",
	    r->c != NULL ? pop3c_errmsg(r->c) : "?");
}

/* Log in again through o->reconnect, with the terminal given back. */
static enum step
reconnect(struct reader *r)
{
	static const char msg[] = "postino: the connection was lost; "
	    "connecting again\n";
	struct pop3c *c;

	term_pause();
	(void)term_write(msg, sizeof(msg) - 1);
	r->c = NULL;		/* o->reconnect frees it */
	c = r->o->reconnect(r->o->arg);
	if (c == NULL)
		wait_enter("could not connect again");
	if (term_resume(r->err) < 0)
		return STEP_LOCAL;
	term_size(&r->rows, &r->cols);
	if (r->mode == MODE_VIEW && rewrap(r) < 0)
		return STEP_LOCAL;
	r->clear = true;
	if (c == NULL) {
		(void)str_copy(r->status, sizeof(r->status), "Cannot "
		    "connect again. A key tries again (marks are kept); x "
		    "leaves, deleting nothing.");
		return STEP_GO;
	}
	r->c = c;
	r->dropped = false;
	if (r->mode == MODE_VIEW)
		view_close(r);		/* numbers may have moved */
	return remap(r);
}

/* A key while the session is gone: x leaves, any other reconnects. */
static enum step
dropped_key(struct reader *r, int k)
{
	enum step s;

	if (k == 'x')
		return STEP_DONE;
	s = reconnect(r);
	if (s == STEP_SESSION) {
		lost(r);
		return STEP_GO;
	}
	return s;
}

static enum step
run(struct reader *r)
{
	for (;;) {
		enum step s;
		int k;

		s = STEP_GO;
		if (r->mode == MODE_LIST) {
			list_keep_visible(r);
			if (!r->dropped)
				s = load_rows(r, r->top,
				    (size_t)page_rows(r));
		}
		if (s == STEP_SESSION && r->o->reconnect != NULL) {
			lost(r);
			s = STEP_GO;
		}
		if (s != STEP_GO)
			return s;
		if (draw(r) < 0)
			return STEP_LOCAL;
		k = term_key(READER_KEEPALIVE_MS);
		if (k == TERM_KEY_TIMEOUT) {
			uint32_t n;
			uint64_t size;

			if (!r->dropped && pop3c_stat(r->c, &n, &size) < 0 &&
			    !pop3c_usable(r->c)) {
				if (r->o->reconnect == NULL)
					return STEP_SESSION;
				lost(r);
			}
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
		if (r->help) {
			r->help = false;	/* any key leaves the help */
			continue;
		}
		if (k == KEY_CTRL_L) {
			r->clear = true;
			continue;
		}
		if (k == '?') {
			r->help = true;
			continue;
		}
		if (r->dropped)
			s = dropped_key(r, k);
		else if (k == '/' || k == 'N')
			s = do_search(r, k == '/');
		else
			s = r->mode == MODE_LIST ? list_key(r, k) :
			    view_key(r, k);
		if (s == STEP_SESSION && r->o->reconnect != NULL) {
			lost(r);
			s = STEP_GO;
		}
		if (s != STEP_GO)
			return s;
	}
}

int
reader_main(struct pop3c *c, const struct reader_opts *o)
{
	struct reader r = { .c = c, .o = o, .mode = MODE_LIST,
	    .umask = o->umask };
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
	entries_free(&r.e, r.n);
	view_free(&r);
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
