#include "store_append.h"

#include <errno.h>
#include <limits.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../lib/crlf.h"
#include "../lib/fdio.h"
#include "store_lock.h"

/* "From " after any number of '>': mboxrd quoting (RFC 4155 sec. 2). */
#define FROM_LEN	5

struct writer {
	store_sink_fn	*sink;
	void		*arg;
	size_t		 len;
	uint64_t	 total;
	struct crlf_size cs;
	unsigned char	 buf[STORE_IOBUF];
};

static int
w_flush(struct writer *w)
{
	if (w->len > 0 && w->sink(w->arg, w->buf, w->len) < 0)
		return -1;
	w->len = 0;
	return 0;
}

static int
w_put(struct writer *w, const void *p, size_t n)
{
	if (__builtin_add_overflow(w->total, n, &w->total)) {
		errno = EFBIG;
		return -1;
	}
	crlf_size_feed(&w->cs, p, n);
	while (n > 0) {
		size_t k = sizeof(w->buf) - w->len;

		if (k > n)
			k = n;
		memcpy(w->buf + w->len, p, k);
		w->len += k;
		p = (const char *)p + k;
		n -= k;
		if (w->len == sizeof(w->buf) && w_flush(w) < 0)
			return -1;
	}
	return 0;
}

static int
w_header(struct writer *w, const char *name, const char *open,
    const char *value, const char *close, bool crlf)
{
	if (w_put(w, name, strlen(name)) < 0 || w_put(w, open, strlen(open)) < 0 ||
	    w_put(w, value, strlen(value)) < 0 ||
	    w_put(w, close, strlen(close)) < 0)
		return -1;
	return w_put(w, crlf ? "\r\n" : "\n", crlf ? 2 : 1);
}

/* Release a held-back line start: gt '>' and the first fs octets of "From ". */
static int
w_release(struct writer *w, unsigned int gt, size_t fs)
{
	for (unsigned int k = 0; k < gt; k++)
		if (w_put(w, ">", 1) < 0)
			return -1;
	return w_put(w, "From ", fs);
}

/*
 * mboxrd: a line start is held back while it may still become ">*From ":
 * gt '>' so far, then fs octets of "From ".
 */
struct line_start {
	bool		 holding;
	bool		 last_lf;
	unsigned int	 gt;
	size_t		 fs;
};

/*
 * Feed octet c to a held-back line start. Returns 1 when c was consumed,
 * 0 when the line start is settled and c is still to be written, -1 on a
 * write error.
 */
static int
hold_octet(struct writer *w, struct line_start *ls, unsigned char c,
    enum store_escape esc)
{
	if (c == '>' && ls->fs == 0 && ls->gt < UINT_MAX &&
	    esc == STORE_ESCAPE_MBOXRD) {
		ls->gt++;
		return 1;
	}
	if (c == (unsigned char)"From "[ls->fs]) {
		if (++ls->fs < FROM_LEN)
			return 1;
		/* One more '>' than it had. */
		if (w_release(w, ls->gt + 1, ls->fs) < 0)
			return -1;
		ls->holding = false;
		ls->last_lf = false;
		return 1;
	}
	if ((ls->gt > 0 || ls->fs > 0) && w_release(w, ls->gt, ls->fs) < 0)
		return -1;
	ls->holding = false;
	return 0;
}

/* Copy n octets read from the message, quoting and converting line ends. */
static int
copy_chunk(struct writer *w, struct line_start *ls, const unsigned char *buf,
    size_t n, enum store_escape esc, bool crlf)
{
	for (size_t i = 0; i < n; i++) {
		unsigned char c = buf[i];

		if (ls->holding) {
			int r = hold_octet(w, ls, c, esc);

			if (r < 0)
				return -1;
			if (r > 0)
				continue;
		}
		if (c != '\n') {
			/* Plain octets go out in runs, not one by one. */
			size_t j = i;

			while (j < n && buf[j] != '\n')
				j++;
			if (w_put(w, buf + i, j - i) < 0)
				return -1;
			ls->last_lf = false;
			i = j - 1;
			continue;
		}
		if (w_put(w, crlf ? "\r\n" : "\n", crlf ? 2 : 1) < 0)
			return -1;
		ls->last_lf = true;
		if (esc != STORE_ESCAPE_NONE)
			*ls = (struct line_start){ .holding = true,
			    .last_lf = true };
	}
	return 0;
}

/*
 * An mbox's X-UIDL header is its UIDL (store_mbox.c), so a sender must not
 * choose one: it could take another message's UIDL, and after that one is
 * deleted, hide behind it (Dovecot tells MTAs to strip X-UIDL). Every
 * X-UIDL field of the header is dropped, continuation lines with it. A
 * field's start is held back until it is known to be no X-UIDL: the name,
 * blanks and ':' as the mbox scanner reads them, within its prefix.
 */
#define XUIDL_HOLD	160	/* store_mbox.c MBOX_PFX */

struct hdr_filter {
	bool		 in_header;	/* the message's header is not over */
	bool		 line_start;
	bool		 in_line;	/* past the decision, up to the LF */
	bool		 dropping;	/* the current field is an X-UIDL */
	size_t		 held;
	unsigned char	 hold[XUIDL_HOLD];
};

/* The held octets decide: 1 an X-UIDL field, 0 not, -1 not yet. */
static int
held_is_xuidl(const struct hdr_filter *f)
{
	static const char name[] = "x-uidl";
	size_t n = f->held;

	for (size_t i = 0; i < n; i++) {
		unsigned char c = f->hold[i];

		if (i < sizeof(name) - 1) {
			if (c != (unsigned char)name[i] &&
			    c != (unsigned char)name[i] - ('a' - 'A'))
				return 0;
		} else if (c == ':') {
			return 1;
		} else if (c != ' ' && c != '\t') {
			return 0;
		}
	}
	/* Like the scanner: a name whose ':' is past its prefix is none. */
	return n == sizeof(f->hold) ? 0 : -1;
}

/* Octet c at a line start or of a held field start; see struct hdr_filter. */
static int
filter_line_start(struct writer *w, struct line_start *ls,
    struct hdr_filter *f, unsigned char c, enum store_escape esc, bool crlf)
{
	int is;

	if (f->held == 0 && (c == ' ' || c == '\t')) {
		/* A continuation line: part of the field before it. */
		f->line_start = false;
		f->in_line = true;
		return f->dropping ? 0 : copy_chunk(w, ls, &c, 1, esc, crlf);
	}
	f->hold[f->held++] = c;
	if (c == '\n') {
		/* An empty line (also "\r\n") ends the header. */
		if (f->held == 1 || (f->held == 2 && f->hold[0] == '\r'))
			f->in_header = false;
		f->dropping = false;
		is = 0;
	} else if (f->held == 1 && c == '\r') {
		return 0;	/* an empty "\r\n" line, or a field */
	} else if ((is = held_is_xuidl(f)) < 0) {
		return 0;
	}
	f->dropping = is == 1;
	f->line_start = c == '\n';
	f->in_line = c != '\n';
	if (!f->dropping && copy_chunk(w, ls, f->hold, f->held, esc,
	    crlf) < 0)
		return -1;
	f->held = 0;
	return 0;
}

/* n octets of the message through the X-UIDL filter (if on) to the copy. */
static int
filter_chunk(struct writer *w, struct line_start *ls, struct hdr_filter *f,
    const unsigned char *buf, size_t n, enum store_escape esc, bool crlf)
{
	size_t i = 0;

	while (i < n && f->in_header) {
		if (f->in_line) {
			const unsigned char *lf = memchr(buf + i, '\n', n - i);
			size_t k = lf != NULL ? (size_t)(lf - (buf + i)) + 1 :
			    n - i;

			if (!f->dropping &&
			    copy_chunk(w, ls, buf + i, k, esc, crlf) < 0)
				return -1;
			i += k;
			if (lf != NULL) {
				f->in_line = false;
				f->line_start = true;
			}
			continue;
		}
		if (filter_line_start(w, ls, f, buf[i++], esc, crlf) < 0)
			return -1;
	}
	return i < n ? copy_chunk(w, ls, buf + i, n - i, esc, crlf) : 0;
}

int
store_sink_fd(void *arg, const void *p, size_t n)
{
	return fd_write_all(*(const int *)arg, p, n);
}

int
store_append_copy(int in, int out, const struct store_delivery *d,
    enum store_escape esc, uint64_t *stored_r, uint64_t *crlf_r,
    bool *ends_lf_r, char *err)
{
	return store_append_copy_to(in, store_sink_fd, &out, d, esc, stored_r,
	    crlf_r, ends_lf_r, err);
}

int
store_append_copy_to(int in, store_sink_fn *sink, void *arg,
    const struct store_delivery *d, enum store_escape esc,
    uint64_t *stored_r, uint64_t *crlf_r, bool *ends_lf_r, char *err)
{
	static struct writer w;	/* 64 KiB: not on the stack */
	unsigned char buf[16384];
	struct line_start ls = { .holding = esc != STORE_ESCAPE_NONE };
	off_t off = 0;
	ssize_t n;

	/* Only an mbox (escaped) gives X-UIDL a meaning. */
	struct hdr_filter f = { .in_header = esc != STORE_ESCAPE_NONE,
	    .line_start = true };

	w = (struct writer){ .sink = sink, .arg = arg };
	crlf_size_init(&w.cs);
	if ((esc != STORE_ESCAPE_NONE && d->uidl != NULL &&
	    w_header(&w, "X-UIDL: ", "", d->uidl, "", d->crlf) < 0) ||
	    (d->return_path != NULL &&
	    w_header(&w, "Return-Path: ", "<", d->return_path, ">", d->crlf) < 0) ||
	    (d->delivered_to != NULL &&
	    w_header(&w, "Delivered-To: ", "", d->delivered_to, "", d->crlf) < 0))
		goto fail;
	ls.last_lf = w.total > 0;
	while ((n = pread(in, buf, sizeof(buf), off)) != 0) {
		if (n < 0) {
			if (errno == EINTR)
				continue;
			goto fail;
		}
		off += n;
		if (filter_chunk(&w, &ls, &f, buf, (size_t)n, esc,
		    d->crlf) < 0)
			goto fail;
	}
	/* A field start the message ended in: not an X-UIDL (no ':'). */
	if (f.held > 0 && copy_chunk(&w, &ls, f.hold, f.held, esc,
	    d->crlf) < 0)
		goto fail;
	if (ls.holding && (ls.gt > 0 || ls.fs > 0)) {
		if (w_release(&w, ls.gt, ls.fs) < 0)
			goto fail;
		ls.last_lf = false;
	}
	if (w_flush(&w) < 0)
		goto fail;
	*stored_r = w.total;
	*ends_lf_r = ls.last_lf;
	if (crlf_size_finish(&w.cs, crlf_r) < 0) {
		errno = EFBIG;
		goto fail;
	}
	return 0;
fail:
	(void)str_fmt(err, ERR_LEN, "write: %s", strerror(errno));
	return -1;
}

int
store_mkdirs(const char *dir)
{
	char p[PATH_MAX];
	size_t len;

	if (str_copy(p, sizeof(p), dir) < 0) {
		errno = ENAMETOOLONG;
		return -1;
	}
	len = strlen(p);
	for (size_t i = 1; i <= len; i++) {
		if (p[i] != '/' && p[i] != '\0')
			continue;
		p[i] = '\0';
		if (mkdir(p, 0700) < 0 && errno != EEXIST)
			return -1;
		if (i < len)
			p[i] = '/';
	}
	return 0;
}
