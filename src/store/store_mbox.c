/*
 * mbox backend (Debian /var/mail/USER, shared with the MTA).
 *
 * Locks: the session lock is an OFD lock on "<dir>/.<name>.postino-lock",
 * not on the mbox, so the MTA keeps delivering during a session; the scan
 * remembers the end offset it indexed and later mail waits for the next
 * session. Whenever the mbox itself is read for the scan or rewritten we also
 * take the MTA's locks: a dotlock "<path>.lock" and a classic fcntl lock.
 *
 * Messages start at a "From " line at the start of the file or after an
 * empty line. A message is its lines after the From_ line, without the one
 * empty line that separates it from the next From_ line (or ends the file);
 * ">From " lines lose their '>' (mboxo), and with mboxrd any ">+From " line
 * loses one '>'. Bytes before the first From_ line are no message but are
 * kept by commit.
 *
 * UIDL: a valid "X-UIDL:" header (1..70 characters 0x21..0x7E) if present;
 * otherwise the hex of the first 16 bytes of SHA-256 over the From_ line and
 * the header lines except those MUAs rewrite (Status, X-Status, X-Keywords,
 * X-UID, X-IMAP, X-IMAPbase, Content-Length, Lines, X-UIDL), each line
 * hashed without its CR and ending in LF. Limitation: two messages with the
 * same UIDL in one mailbox get "-2", "-3"... appended in file order, so
 * deleting the first of them changes the UIDL of the others.
 *
 * Commit writes "<dir>/.<name>.postino-new.<pid>" with the kept messages
 * byte for byte and all bytes after the scanned end, fsyncs it and renames it
 * over the mbox: a kill -9 leaves the old or the new mbox, never a mix.
 */
#include "store.h"
#include "store_append.h"
#include "store_lock.h"
#include "mbox_lock.h"

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "../lib/crlf.h"
#include "../lib/log.h"
#include "../lib/priv.h"

/* Longest line start we look at: a header name, ':' and a 70-byte X-UIDL. */
#define MBOX_PFX		160
#define MBOX_UIDL_HASH		16
#define MBOX_READ_BUF		8192
#define MBOX_TMP_INFIX		".postino-new."

struct mbox_msg {
	off_t		 from_off;	/* the From_ line */
	off_t		 body_off;	/* first byte of the content */
	off_t		 end_off;	/* end of the content */
	off_t		 next_off;	/* next From_ line, or scanned end */
	uint64_t	 size;
	char		 uidl[STORE_UIDL_MAX + 1];
};

struct mbox {
	char		 path[PATH_MAX];
	char		 dir[PATH_MAX];
	char		 name[NAME_MAX + 1];
	struct mbox_lock lk;		/* the MTA's locks */
	int		 lock_fd;	/* session lock */
	int		 fd;		/* the mbox while open, read or commit
					   work on it; -1 in an idle session */
	bool		 committed;
	dev_t		 dev;
	ino_t		 ino;
	off_t		 first_off;	/* first From_ line */
	off_t		 scan_end;
	bool		 mboxrd;
	unsigned int	 lock_wait;
	struct mbox_msg	*msgs;
	unsigned int	 count;
	size_t		 cap;
	unsigned char	*iobuf;
};

enum mbox_line {
	MBOX_L_JUNK,		/* before the first From_ line */
	MBOX_L_FROM,
	MBOX_L_HDR_IN,		/* header line that is hashed */
	MBOX_L_HDR_OUT,		/* header line MUAs rewrite */
	MBOX_L_BODY,
};

struct mbox_scan {
	struct mbox	*mb;
	const struct store_params *p;
	EVP_MD_CTX	*ctx;
	uint64_t	 total;
	char		*err;
	enum store_result res;

	/* the current line */
	off_t		 line_off;
	uint64_t	 line_len;	/* bytes so far, LF excluded */
	char		 pfx[MBOX_PFX];
	size_t		 pfx_len;
	bool		 classified;
	enum mbox_line	 kind;
	bool		 first_line;
	bool		 prev_empty;
	bool		 pending_cr;	/* hashed lines: CR held back */
	bool		 esc_done;
	bool		 esc_gt;
	unsigned int	 esc_match;

	/* the current message */
	bool		 in_msg;
	bool		 in_headers;
	bool		 hdr_in;	/* last header line was hashed */
	bool		 have_xuidl;
	char		 xuidl[STORE_UIDL_MAX + 1];
	struct mbox_msg	 cur;
	struct crlf_size cs, cs_before;	/* cs_before: before the last line */
	uint64_t	 nesc, nesc_before;
	off_t		 last_line_off;
	bool		 last_line_empty;
};

struct mbox_reader {
	int		 fd;
	off_t		 pos;
	off_t		 end;
	bool		 mboxrd;
	bool		 line_start;
	bool		 cand;		/* inside a possible ">+From " */
	uint64_t	 gt;
	unsigned int	 match;
	uint64_t	 emit_gt;	/* pending output: '>' bytes ... */
	unsigned int	 emit_pos, emit_len;	/* ... then "From "[pos..len) */
	size_t		 bpos, blen;
	unsigned char	 buf[MBOX_READ_BUF];
};

static const char mbox_from[] = "From ";

static const char *const mbox_volatile_hdrs[] = {
	"Status", "X-Status", "X-Keywords", "X-UID", "X-IMAP", "X-IMAPbase",
	"Content-Length", "Lines", "X-UIDL", NULL
};

bool
store_mbox_uidl_valid(const char *s, size_t len)
{
	if (len < 1 || len > STORE_UIDL_MAX)
		return false;
	for (size_t i = 0; i < len; i++) {
		if ((unsigned char)s[i] < 0x21 || (unsigned char)s[i] > 0x7e)
			return false;
	}
	return true;
}

static void
mbox_hash(struct mbox_scan *sc, const void *buf, size_t len)
{
	const char *p = buf;

	if (len == 0)
		return;
	if (sc->pending_cr) {
		(void)EVP_DigestUpdate(sc->ctx, "\r", 1);
		sc->pending_cr = false;
	}
	if (p[len - 1] == '\r') {
		sc->pending_cr = true;
		len--;
	}
	if (len > 0)
		(void)EVP_DigestUpdate(sc->ctx, p, len);
}

/* Is this content line an escaped From_ line? Fed the line bit by bit. */
static void
mbox_esc_feed(struct mbox_scan *sc, const char *p, size_t len)
{
	for (size_t i = 0; i < len && !sc->esc_done; i++) {
		char c = p[i];

		if (sc->esc_match == 0) {
			if (c == '>' && (!sc->esc_gt || sc->mb->mboxrd)) {
				sc->esc_gt = true;
			} else if (sc->esc_gt && c == 'F') {
				sc->esc_match = 1;
			} else {
				sc->esc_done = true;
			}
		} else if (c == mbox_from[sc->esc_match]) {
			if (++sc->esc_match == sizeof(mbox_from) - 1) {
				sc->esc_done = true;
				sc->nesc++;
			}
		} else {
			sc->esc_done = true;
		}
	}
}

static bool
mbox_hdr_volatile(const char *name, size_t len)
{
	for (size_t i = 0; mbox_volatile_hdrs[i] != NULL; i++) {
		if (strlen(mbox_volatile_hdrs[i]) == len &&
		    strncasecmp(name, mbox_volatile_hdrs[i], len) == 0)
			return true;
	}
	return false;
}

/* Classify a header line from its first bytes; remember a valid X-UIDL. */
static bool
mbox_hdr_hashed(struct mbox_scan *sc, bool complete)
{
	const char *colon = memchr(sc->pfx, ':', sc->pfx_len);
	size_t nlen, vstart, vend;

	if (colon == NULL)
		return true;
	nlen = (size_t)(colon - sc->pfx);
	while (nlen > 0 &&
	    (sc->pfx[nlen - 1] == ' ' || sc->pfx[nlen - 1] == '\t'))
		nlen--;
	if (!mbox_hdr_volatile(sc->pfx, nlen))
		return true;
	if (complete && !sc->have_xuidl && nlen == 6 &&
	    strncasecmp(sc->pfx, "X-UIDL", 6) == 0) {
		vstart = (size_t)(colon - sc->pfx) + 1;
		vend = sc->pfx_len;
		while (vstart < vend &&
		    (sc->pfx[vstart] == ' ' || sc->pfx[vstart] == '\t'))
			vstart++;
		while (vend > vstart && (sc->pfx[vend - 1] == '\r' ||
		    sc->pfx[vend - 1] == ' ' || sc->pfx[vend - 1] == '\t'))
			vend--;
		if (store_mbox_uidl_valid(sc->pfx + vstart, vend - vstart)) {
			memcpy(sc->xuidl, sc->pfx + vstart, vend - vstart);
			sc->xuidl[vend - vstart] = '\0';
			sc->have_xuidl = true;
		}
	}
	return false;
}

static int
mbox_msg_push(struct mbox_scan *sc)
{
	struct mbox *mb = sc->mb;

	if (sc->p->max_messages != 0 && mb->count >= sc->p->max_messages) {
		(void)str_fmt(sc->err, ERR_LEN,
		    "mailbox has more than %u messages", sc->p->max_messages);
		sc->res = STORE_PERMFAIL;
		return -1;
	}
	if (mb->count == mb->cap) {
		size_t ncap = mb->cap == 0 ? 64 : mb->cap;
		struct mbox_msg *n;

		if (__builtin_mul_overflow(ncap, 2, &ncap) || ncap > UINT_MAX ||
		    (n = reallocarray(mb->msgs, ncap, sizeof(*n))) == NULL) {
			(void)str_copy(sc->err, ERR_LEN, "out of memory");
			sc->res = STORE_TEMPFAIL;
			return -1;
		}
		mb->msgs = n;
		mb->cap = ncap;
	}
	mb->msgs[mb->count++] = sc->cur;
	return 0;
}

/* End the current message; sep: the last line was the separator. */
static int
mbox_msg_end(struct mbox_scan *sc, bool sep, off_t next_off)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	uint64_t size;

	if (!sc->in_msg)
		return 0;
	sc->in_msg = false;
	sc->cur.end_off = next_off;
	if (sep) {
		sc->cs = sc->cs_before;
		sc->nesc = sc->nesc_before;
		sc->cur.end_off = sc->last_line_off;
	}
	sc->cur.next_off = next_off;
	/* Each unescape drops one '>' and never touches a line end. */
	if (crlf_size_finish(&sc->cs, &size) == -1 || size < sc->nesc) {
		(void)str_copy(sc->err, ERR_LEN, "message size overflow");
		sc->res = STORE_PERMFAIL;
		return -1;
	}
	sc->cur.size = size - sc->nesc;
	if (EVP_DigestFinal_ex(sc->ctx, md, &mdlen) != 1 ||
	    mdlen < MBOX_UIDL_HASH) {
		(void)str_copy(sc->err, ERR_LEN, "SHA-256 failed");
		sc->res = STORE_TEMPFAIL;
		return -1;
	}
	if (sc->have_xuidl)
		(void)str_copy(sc->cur.uidl, sizeof(sc->cur.uidl), sc->xuidl);
	else
		str_hex(sc->cur.uidl, md, MBOX_UIDL_HASH);
	if (__builtin_add_overflow(sc->total, sc->cur.size, &sc->total) ||
	    (sc->p->max_bytes != 0 && sc->total > sc->p->max_bytes)) {
		(void)str_fmt(sc->err, ERR_LEN,
		    "mailbox is larger than %llu bytes",
		    (unsigned long long)sc->p->max_bytes);
		sc->res = STORE_PERMFAIL;
		return -1;
	}
	return mbox_msg_push(sc);
}

static int
mbox_msg_start(struct mbox_scan *sc)
{
	sc->in_msg = true;
	sc->in_headers = true;
	sc->hdr_in = false;
	sc->have_xuidl = false;
	sc->cur = (struct mbox_msg){ .from_off = sc->line_off };
	crlf_size_init(&sc->cs);
	sc->cs_before = sc->cs;
	sc->nesc = sc->nesc_before = 0;
	sc->last_line_empty = false;
	sc->pending_cr = false;
	if (EVP_DigestInit_ex(sc->ctx, EVP_sha256(), NULL) != 1) {
		(void)str_copy(sc->err, ERR_LEN, "SHA-256 failed");
		sc->res = STORE_TEMPFAIL;
		return -1;
	}
	return 0;
}

/* Feed line bytes that follow the classified prefix. */
static void
mbox_line_more(struct mbox_scan *sc, const char *p, size_t len)
{
	switch (sc->kind) {
	case MBOX_L_JUNK:
		break;
	case MBOX_L_FROM:
		mbox_hash(sc, p, len);
		break;
	case MBOX_L_HDR_IN:
		mbox_hash(sc, p, len);
		/* FALLTHROUGH */
	case MBOX_L_HDR_OUT:
	case MBOX_L_BODY:
		crlf_size_feed(&sc->cs, p, len);
		mbox_esc_feed(sc, p, len);
		break;
	}
}

/* The line's first bytes are in pfx (all of it when complete). */
static int
mbox_classify(struct mbox_scan *sc, bool complete)
{
	bool empty = complete && (sc->pfx_len == 0 ||
	    (sc->pfx_len == 1 && sc->pfx[0] == '\r'));

	sc->classified = true;
	if (sc->pfx_len >= 5 && memcmp(sc->pfx, mbox_from, 5) == 0 &&
	    (sc->first_line || sc->prev_empty)) {
		if (mbox_msg_end(sc, sc->prev_empty, sc->line_off) == -1 ||
		    mbox_msg_start(sc) == -1)
			return -1;
		if (sc->mb->count == 0 && sc->mb->first_off == -1)
			sc->mb->first_off = sc->line_off;
		sc->kind = MBOX_L_FROM;
		mbox_hash(sc, sc->pfx, sc->pfx_len);
		return 0;
	}
	if (!sc->in_msg) {
		sc->kind = MBOX_L_JUNK;
		return 0;
	}
	sc->cs_before = sc->cs;
	sc->nesc_before = sc->nesc;
	sc->last_line_off = sc->line_off;
	sc->last_line_empty = empty;
	sc->esc_done = false;
	sc->esc_gt = false;
	sc->esc_match = 0;
	sc->kind = MBOX_L_BODY;
	if (sc->in_headers) {
		if (empty)
			sc->in_headers = false;
		else if (sc->pfx_len > 0 &&
		    (sc->pfx[0] == ' ' || sc->pfx[0] == '\t'))
			sc->kind = sc->hdr_in ? MBOX_L_HDR_IN : MBOX_L_HDR_OUT;
		else {
			sc->hdr_in = mbox_hdr_hashed(sc, complete);
			sc->kind = sc->hdr_in ? MBOX_L_HDR_IN : MBOX_L_HDR_OUT;
		}
	}
	mbox_line_more(sc, sc->pfx, sc->pfx_len);
	return 0;
}

static int
mbox_line_data(struct mbox_scan *sc, const char *p, size_t len)
{
	if (!sc->classified) {
		size_t take = MBOX_PFX - sc->pfx_len;

		if (take > len)
			take = len;
		memcpy(sc->pfx + sc->pfx_len, p, take);
		sc->pfx_len += take;
		sc->line_len += take;
		p += take;
		len -= take;
		if (sc->pfx_len == MBOX_PFX && mbox_classify(sc, false) == -1)
			return -1;
	}
	if (len > 0) {
		mbox_line_more(sc, p, len);
		sc->line_len += len;
	}
	return 0;
}

static int
mbox_line_end(struct mbox_scan *sc, bool lf)
{
	bool empty;

	if (!sc->classified && mbox_classify(sc, lf) == -1)
		return -1;
	empty = lf && (sc->line_len == 0 ||
	    (sc->line_len == 1 && sc->pfx[0] == '\r'));
	if (sc->kind == MBOX_L_FROM || sc->kind == MBOX_L_HDR_IN) {
		if (lf) {
			sc->pending_cr = false;
			(void)EVP_DigestUpdate(sc->ctx, "\n", 1);
		} else if (sc->pending_cr) {
			sc->pending_cr = false;
			(void)EVP_DigestUpdate(sc->ctx, "\r", 1);
		}
	}
	if (lf && sc->kind != MBOX_L_JUNK && sc->kind != MBOX_L_FROM)
		crlf_size_feed(&sc->cs, "\n", 1);
	if (sc->kind == MBOX_L_FROM)
		sc->cur.body_off = sc->line_off + (off_t)sc->line_len +
		    (lf ? 1 : 0);
	sc->prev_empty = empty;
	sc->first_line = false;
	sc->line_off += (off_t)sc->line_len + (lf ? 1 : 0);
	sc->line_len = 0;
	sc->pfx_len = 0;
	sc->classified = false;
	return 0;
}

static int
mbox_scan_buf(struct mbox_scan *sc, const char *buf, size_t len)
{
	while (len > 0) {
		const char *nl = memchr(buf, '\n', len);
		size_t seg = nl != NULL ? (size_t)(nl - buf) : len;

		if (mbox_line_data(sc, buf, seg) == -1)
			return -1;
		if (nl == NULL)
			break;
		if (mbox_line_end(sc, true) == -1)
			return -1;
		buf += seg + 1;
		len -= seg + 1;
	}
	return 0;
}

static int
mbox_uidl_cmp(const void *a, const void *b, void *arg)
{
	const struct mbox_msg *msgs = arg;
	unsigned int x = *(const unsigned int *)a, y = *(const unsigned int *)b;
	int c = strcmp(msgs[x].uidl, msgs[y].uidl);

	if (c != 0)
		return c;
	return x < y ? -1 : x > y;
}

/* Later messages with an earlier message's UIDL get "-2", "-3", ... */
static int
mbox_uidl_dedup(struct mbox *mb)
{
	unsigned int *order;

	if (mb->count < 2)
		return 0;
	if ((order = reallocarray(NULL, mb->count, sizeof(*order))) == NULL)
		return -1;
	for (unsigned int i = 0; i < mb->count; i++)
		order[i] = i;
	qsort_r(order, mb->count, sizeof(*order), mbox_uidl_cmp, mb->msgs);
	for (unsigned int i = 0; i < mb->count;) {
		const char *head = mb->msgs[order[i]].uidl;
		unsigned int j = i + 1;

		for (; j < mb->count &&
		    strcmp(mb->msgs[order[j]].uidl, head) == 0; j++) {
			char *u = mb->msgs[order[j]].uidl;
			char suffix[16];
			size_t slen, keep;

			(void)str_fmt(suffix, sizeof(suffix), "-%u", j - i + 1);
			slen = strlen(suffix);
			keep = strlen(u);
			if (keep > STORE_UIDL_MAX - slen)
				keep = STORE_UIDL_MAX - slen;
			memcpy(u + keep, suffix, slen + 1);
		}
		i = j;
	}
	free(order);
	return 0;
}

static enum store_result
mbox_scan(struct mbox *mb, const struct store_params *p, uint64_t *total_r,
    char *err)
{
	struct mbox_scan sc = {
		.mb = mb, .p = p, .err = err, .res = STORE_OK,
		.first_line = true,
	};
	off_t off = 0;

	mb->first_off = -1;
	if ((sc.ctx = EVP_MD_CTX_new()) == NULL) {
		(void)str_copy(err, ERR_LEN, "out of memory");
		return STORE_TEMPFAIL;
	}
	for (;;) {
		ssize_t n = pread(mb->fd, mb->iobuf, STORE_IOBUF, off);

		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1) {
			(void)str_fmt(err, ERR_LEN, "cannot read %s: %s",
			    mb->path, strerror(errno));
			sc.res = STORE_TEMPFAIL;
			goto out;
		}
		if (n == 0)
			break;
		if (mbox_scan_buf(&sc, (const char *)mb->iobuf,
		    (size_t)n) == -1)
			goto out;
		off += n;
	}
	if ((sc.line_len > 0 && mbox_line_end(&sc, false) == -1) ||
	    mbox_msg_end(&sc, sc.last_line_empty && !sc.first_line &&
	    sc.prev_empty, off) == -1)
		goto out;
	mb->scan_end = off;
	if (mb->first_off == -1)
		mb->first_off = off;
	if (mbox_uidl_dedup(mb) == -1) {
		(void)str_copy(err, ERR_LEN, "out of memory");
		sc.res = STORE_TEMPFAIL;
		goto out;
	}
	*total_r = sc.total;
out:
	EVP_MD_CTX_free(sc.ctx);
	return sc.res;
}

/*
 * mail_privileged_group (priv.h) is effective only while a file is made or
 * removed in the spool directory (the dotlock, the session lock file, the
 * rewritten spool), never while a spool is opened: with Debian's /var/mail
 * (spools user:mail 0660) it must not open another user's spool.
 */
static void
mbox_mta_unlock(struct mbox *mb)
{
	priv_group_raise();
	mbox_lock_release(&mb->lk);
	priv_group_lower();
}

/*
 * The MTA's locks (src/store/mbox_lock.h). Blocks the caller for up to
 * lock_wait seconds; with 0 (postinod's mail workers, whose event loop
 * must never wait) one attempt, and STORE_BUSY to try again later.
 */
static enum store_result
mbox_mta_lock(struct mbox *mb, char *err)
{
	enum mbox_lock_result r;

	priv_group_raise();
	r = mbox_lock_wait(&mb->lk, mb->fd, mb->lock_wait, err);
	priv_group_lower();
	switch (r) {
	case MBOX_LOCK_OK:
		return STORE_OK;
	case MBOX_LOCK_BUSY:
		(void)str_copy(err, ERR_LEN,
		    "mailbox is locked by another program");
		return STORE_BUSY;
	default:
		return STORE_TEMPFAIL;
	}
}

/* Temp files of a commit that was killed; we hold the session lock. */
static void
mbox_remove_stale_tmp(struct mbox *mb)
{
	char prefix[NAME_MAX + 32];
	struct dirent *de;
	DIR *dir;
	size_t plen;

	if (str_fmt(prefix, sizeof(prefix), ".%s%s", mb->name,
	    MBOX_TMP_INFIX) == -1 || (dir = opendir(mb->dir)) == NULL)
		return;
	plen = strlen(prefix);
	while ((de = readdir(dir)) != NULL) {
		if (strncmp(de->d_name, prefix, plen) != 0)
			continue;
		if (unlinkat(dirfd(dir), de->d_name, 0) == -1)
			log_warn("mbox=%s cannot remove %s", mb->path,
			    de->d_name);
		else
			log_info("mbox=%s removed stale %s", mb->path,
			    de->d_name);
	}
	(void)closedir(dir);
}

static int
mbox_split_path(struct mbox *mb, const char *path)
{
	const char *slash = strrchr(path, '/');
	const char *name = slash != NULL ? slash + 1 : path;

	if (str_copy(mb->path, sizeof(mb->path), path) == -1 ||
	    str_copy(mb->name, sizeof(mb->name), name) == -1 ||
	    mb->name[0] == '\0' || strcmp(mb->name, ".") == 0 ||
	    strcmp(mb->name, "..") == 0)
		return -1;
	if (slash == NULL)
		return str_copy(mb->dir, sizeof(mb->dir), ".");
	if (slash == path)
		return str_copy(mb->dir, sizeof(mb->dir), "/");
	if ((size_t)(slash - path) >= sizeof(mb->dir))
		return -1;
	memcpy(mb->dir, path, (size_t)(slash - path));
	mb->dir[slash - path] = '\0';
	return 0;
}

static void
mbox_free(struct mbox *mb)
{
	if (mb->fd != -1)
		mbox_mta_unlock(mb);
	(void)store_close_fd(&mb->fd);
	(void)store_close_fd(&mb->lock_fd);
	free(mb->msgs);
	free(mb->iobuf);
	free(mb);
}

/* Open the mbox and lock it for the scan; 1 when it does not exist. */
static int
mbox_open_locked(struct mbox *mb, enum store_result *res, char *err)
{
	for (int tries = 0; tries < 3; tries++) {
		struct stat fst, pst;

		mb->fd = open(mb->path, O_RDWR | O_NOFOLLOW | O_CLOEXEC |
		    O_NONBLOCK | O_NOCTTY);
		if (mb->fd == -1) {
			if (errno == ENOENT)
				return 1;
			(void)str_fmt(err, ERR_LEN, "cannot open %s: %s",
			    mb->path, strerror(errno));
			*res = STORE_TEMPFAIL;
			return -1;
		}
		if (fstat(mb->fd, &fst) == -1 || !S_ISREG(fst.st_mode)) {
			(void)str_fmt(err, ERR_LEN, "%s is not a mailbox file",
			    mb->path);
			*res = STORE_PERMFAIL;
			return -1;
		}
		if ((*res = mbox_mta_lock(mb, err)) != STORE_OK)
			return -1;
		/* Replaced while we waited for the lock: lock the new one. */
		if (stat(mb->path, &pst) == 0 && pst.st_dev == fst.st_dev &&
		    pst.st_ino == fst.st_ino) {
			mb->dev = fst.st_dev;
			mb->ino = fst.st_ino;
			return 0;
		}
		mbox_mta_unlock(mb);
		(void)store_close_fd(&mb->fd);
	}
	(void)str_fmt(err, ERR_LEN, "%s keeps changing", mb->path);
	*res = STORE_TEMPFAIL;
	return -1;
}

/* The session lock is a file in the spool directory: the group is raised. */
static enum store_result
mbox_session_lock(struct mbox *mb, const char *lock, char *err)
{
	enum store_result res;

	priv_group_raise();
	res = store_lock_session(AT_FDCWD, NULL, lock, &mb->lock_fd, err);
	if (res == STORE_OK)
		mbox_remove_stale_tmp(mb);
	priv_group_lower();
	return res;
}

static enum store_result
mbox_open(struct store **st_r, const struct store_params *p,
    struct store_index *idx, char *err)
{
	char lock[PATH_MAX];
	struct mbox *mb;
	enum store_result res;
	uint64_t total = 0;
	int r;

	*st_r = NULL;
	*idx = (struct store_index){ 0 };
	err[0] = '\0';
	if ((mb = calloc(1, sizeof(*mb))) == NULL) {
		(void)str_copy(err, ERR_LEN, "out of memory");
		return STORE_TEMPFAIL;
	}
	mb->lock_fd = mb->fd = -1;
	mb->mboxrd = p->mboxrd;
	mb->lock_wait = p->lock_wait;
	if (mbox_split_path(mb, p->path) == -1 ||
	    mbox_lock_init(&mb->lk, p->path, p->dotlock_stale, err) == -1 ||
	    str_fmt(lock, sizeof(lock), "%s/.%s.postino-lock", mb->dir,
	    mb->name) == -1) {
		(void)str_copy(err, ERR_LEN, "bad mbox path");
		res = STORE_PERMFAIL;
		goto fail;
	}
	if ((res = mbox_session_lock(mb, lock, err)) != STORE_OK)
		goto fail;
	if ((r = mbox_open_locked(mb, &res, err)) == -1)
		goto fail;
	if (r == 1) {
		*st_r = (struct store *)mb;
		return STORE_OK;
	}
	/* A delivery killed half-way left a tail: cut it before scanning. */
	priv_group_raise();	/* the journal is in the spool directory */
	r = store_mbox_recover(mb->path, mb->fd, err);
	priv_group_lower();
	if (r < 0) {
		mbox_mta_unlock(mb);
		res = STORE_TEMPFAIL;
		goto fail;
	}
	if ((mb->iobuf = malloc(STORE_IOBUF)) == NULL) {
		(void)str_copy(err, ERR_LEN, "out of memory");
		res = STORE_TEMPFAIL;
		goto fail;
	}
	res = mbox_scan(mb, p, &total, err);
	mbox_mta_unlock(mb);
	/*
	 * Neither is held for the session: an idle session costs no 64 KiB
	 * and no fd beyond its socket and session lock; read and commit open
	 * the mbox again and check it is the one scanned (mbox_reopen).
	 */
	free(mb->iobuf);
	mb->iobuf = NULL;
	(void)store_close_fd(&mb->fd);
	if (res != STORE_OK)
		goto fail;
	if (mb->count > 0 &&
	    (idx->msgs = calloc(mb->count, sizeof(*idx->msgs))) == NULL) {
		(void)str_copy(err, ERR_LEN, "out of memory");
		res = STORE_TEMPFAIL;
		goto fail;
	}
	for (unsigned int i = 0; i < mb->count; i++) {
		idx->msgs[i].size = mb->msgs[i].size;
		(void)str_copy(idx->msgs[i].uidl, sizeof(idx->msgs[i].uidl),
		    mb->msgs[i].uidl);
	}
	idx->count = mb->count;
	idx->total_size = total;
	*st_r = (struct store *)mb;
	return STORE_OK;
fail:
	mbox_free(mb);
	return res;
}

/* Open the mbox scanned at login again, into *fd_r. */
static enum store_result
mbox_reopen(struct mbox *mb, int *fd_r, char *err)
{
	*fd_r = open(mb->path, O_RDWR | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK |
	    O_NOCTTY);
	if (*fd_r == -1 && errno != ENOENT) {
		(void)str_fmt(err, ERR_LEN, "cannot open %s: %s", mb->path,
		    strerror(errno));
		return STORE_TEMPFAIL;
	}
	if (*fd_r == -1) {
		(void)str_copy(err, ERR_LEN, "mailbox changed");
		return STORE_CHANGED;
	}
	return STORE_OK;
}

/*
 * Does the mbox open on fd, and still at its path, hold what we indexed, at
 * least up to the From_ lines?
 */
static enum store_result
mbox_check(struct mbox *mb, int fd, bool all, unsigned int msgnum, char *err)
{
	struct stat pst, fst;

	if (mb->committed || stat(mb->path, &pst) == -1 ||
	    fstat(fd, &fst) == -1 || pst.st_dev != mb->dev ||
	    pst.st_ino != mb->ino || fst.st_dev != mb->dev ||
	    fst.st_ino != mb->ino || fst.st_size < mb->scan_end) {
		(void)str_copy(err, ERR_LEN, "mailbox changed");
		return STORE_CHANGED;
	}
	for (unsigned int i = all ? 0 : msgnum - 1;
	    i < (all ? mb->count : msgnum); i++) {
		off_t off = mb->msgs[i].from_off;
		char buf[6];
		size_t want = off > 0 ? 6 : 5;
		ssize_t n;

		do {
			n = pread(fd, buf, want, off > 0 ? off - 1 : 0);
		} while (n == -1 && errno == EINTR);
		if (n != (ssize_t)want ||
		    (off > 0 && buf[0] != '\n') ||
		    memcmp(buf + want - 5, mbox_from, 5) != 0) {
			(void)str_copy(err, ERR_LEN, "mailbox changed");
			return STORE_CHANGED;
		}
	}
	return STORE_OK;
}

static enum store_result
mbox_read_open(struct store *st, unsigned int msgnum, struct store_reader **r_r,
    char *err)
{
	struct mbox *mb = (struct mbox *)st;
	struct mbox_reader *r;
	enum store_result res;
	int fd;

	*r_r = NULL;
	if (msgnum == 0 || msgnum > mb->count) {
		(void)str_fmt(err, ERR_LEN, "no message %u", msgnum);
		return STORE_PERMFAIL;
	}
	if ((res = mbox_reopen(mb, &fd, err)) != STORE_OK)
		return res;
	if ((res = mbox_check(mb, fd, false, msgnum, err)) != STORE_OK) {
		(void)close(fd);
		return res;
	}
	if ((r = calloc(1, sizeof(*r))) == NULL) {
		(void)close(fd);
		(void)str_copy(err, ERR_LEN, "out of memory");
		return STORE_TEMPFAIL;
	}
	r->fd = fd;	/* the reader's own, closed with it */
	r->pos = mb->msgs[msgnum - 1].body_off;
	r->end = mb->msgs[msgnum - 1].end_off;
	r->mboxrd = mb->mboxrd;
	r->line_start = true;
	*r_r = (struct store_reader *)r;
	return STORE_OK;
}

/* Stop holding a line start back: give out what it held, gt '>' first. */
static void
reader_give_back(struct mbox_reader *r, uint64_t gt)
{
	r->cand = false;
	r->emit_gt = gt;
	r->emit_pos = 0;
	r->emit_len = r->match;
}

/*
 * Refill the reader's buffer. Returns 1 when there is more to give out, 0 at
 * the end of the message, -1 on a read error.
 */
static int
reader_fill(struct mbox_reader *r)
{
	size_t want = sizeof(r->buf);
	ssize_t got;

	if (r->pos >= r->end) {
		if (!r->cand)
			return 0;
		/* The content ended inside "From": literal. */
		reader_give_back(r, r->gt);
		return 1;
	}
	if ((uint64_t)(r->end - r->pos) < want)
		want = (size_t)(r->end - r->pos);
	do {
		got = pread(r->fd, r->buf, want, r->pos);
	} while (got == -1 && errno == EINTR);
	if (got <= 0) {
		if (got == 0)
			errno = EIO;	/* truncated under us */
		return -1;
	}
	r->pos += got;
	r->blen = (size_t)got;
	r->bpos = 0;
	return 1;
}

/* Take octet c of a line start that may be a quoted ">+From ". */
static void
reader_unquote(struct mbox_reader *r, unsigned char c)
{
	if (r->match == 0 && c == '>' && r->mboxrd) {
		r->gt++;
		r->bpos++;
	} else if (c == (unsigned char)mbox_from[r->match]) {
		r->bpos++;
		if (++r->match == sizeof(mbox_from) - 1) {
			r->line_start = false;
			reader_give_back(r, r->gt - 1);
		}
	} else {
		/* Not an escape: give back what we held. */
		r->line_start = false;
		reader_give_back(r, r->gt);
	}
}

static ssize_t
mbox_read(struct store_reader *sr, void *out, size_t len)
{
	struct mbox_reader *r = (struct mbox_reader *)sr;
	unsigned char *o = out;
	size_t n = 0;

	while (n < len) {
		unsigned char c;

		if (r->emit_gt > 0) {
			size_t k = len - n;

			if (k > r->emit_gt)
				k = (size_t)r->emit_gt;
			memset(o + n, '>', k);
			n += k;
			r->emit_gt -= k;
			continue;
		}
		if (r->emit_pos < r->emit_len) {
			o[n++] = (unsigned char)mbox_from[r->emit_pos++];
			continue;
		}
		if (r->bpos == r->blen) {
			int more = reader_fill(r);

			if (more < 0)
				return n > 0 ? (ssize_t)n : -1;
			if (more == 0)
				break;
			continue;
		}
		c = r->buf[r->bpos];
		if (r->cand) {
			reader_unquote(r, c);
			continue;
		}
		if (r->line_start && c == '>') {
			r->cand = true;
			r->gt = 1;
			r->match = 0;
			r->bpos++;
			continue;
		}
		/*
		 * Plain bytes up to and including the next LF, as one run: a
		 * byte-by-byte copy here was most of an mbox RETR's CPU.
		 */
		{
			size_t k = r->blen - r->bpos;
			const unsigned char *lf;

			if (k > len - n)
				k = len - n;
			lf = memchr(r->buf + r->bpos, '\n', k);
			if (lf != NULL)
				k = (size_t)(lf - (r->buf + r->bpos)) + 1;
			memcpy(o + n, r->buf + r->bpos, k);
			n += k;
			r->bpos += k;
			r->line_start = lf != NULL;
		}
	}
	return (ssize_t)n;
}

static void
mbox_read_close(struct store_reader **sr)
{
	if (*sr != NULL)
		(void)close(((struct mbox_reader *)*sr)->fd);
	free(*sr);
	*sr = NULL;
}

static int
mbox_copy_range(struct mbox *mb, int out, off_t from, off_t to)
{
	if (mb->iobuf == NULL && (mb->iobuf = malloc(STORE_IOBUF)) == NULL)
		return -1;
	while (to < 0 || from < to) {
		size_t want = STORE_IOBUF;
		ssize_t n;

		if (to >= 0 && (uint64_t)(to - from) < want)
			want = (size_t)(to - from);
		n = pread(mb->fd, mb->iobuf, want, from);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1)
			return -1;
		if (n == 0) {
			if (to < 0)
				return 0;
			errno = EIO;
			return -1;
		}
		if (fd_write_all(out, mb->iobuf, (size_t)n) == -1)
			return -1;
		from += n;
	}
	return 0;
}

/* Write the new mbox into the open temp file fd. */
static int
mbox_write_new(struct mbox *mb, const struct store_index *idx, int fd,
    const struct stat *st)
{
	if (mbox_copy_range(mb, fd, 0, mb->first_off) == -1)
		return -1;
	for (unsigned int i = 0; i < mb->count; i++) {
		if (!idx->msgs[i].deleted &&
		    mbox_copy_range(mb, fd, mb->msgs[i].from_off,
		    mb->msgs[i].next_off) == -1)
			return -1;
	}
	/* Mail the MTA delivered during the session. */
	if (mbox_copy_range(mb, fd, mb->scan_end, -1) == -1 || fsync(fd) == -1)
		return -1;
	if (geteuid() == 0 && fchown(fd, st->st_uid, st->st_gid) == -1)
		return -1;
	return fchmod(fd, st->st_mode & 07777);
}

/* Write the new mbox to tmp and rename it over the old one. */
static int
mbox_replace(struct mbox *mb, const struct store_index *idx, const char *tmp,
    const struct stat *sb, char *err)
{
	int fd = -1;

	for (int tries = 0; tries < 2 && fd == -1; tries++) {
		fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW |
		    O_CLOEXEC, 0600);
		if (fd == -1 && (errno != EEXIST || unlink(tmp) == -1))
			break;
	}
	if (fd == -1) {
		(void)str_fmt(err, ERR_LEN, "cannot create %s: %s", tmp,
		    strerror(errno));
		return -1;
	}
	if (mbox_write_new(mb, idx, fd, sb) == -1) {
		(void)str_fmt(err, ERR_LEN, "cannot write %s: %s", tmp,
		    strerror(errno));
		(void)close(fd);
		(void)unlink(tmp);
		return -1;
	}
	if (close(fd) == -1 || rename(tmp, mb->path) == -1) {
		(void)str_fmt(err, ERR_LEN, "cannot replace %s: %s", mb->path,
		    strerror(errno));
		(void)unlink(tmp);
		return -1;
	}
	return 0;
}

static enum store_result
mbox_commit(struct store *st, const struct store_index *idx, char *err)
{
	struct mbox *mb = (struct mbox *)st;
	char tmp[PATH_MAX];
	struct stat sb;
	enum store_result res;
	bool any = false;
	int recovered;

	if (idx->count != mb->count) {
		(void)str_copy(err, ERR_LEN,
		    "index does not match the mailbox");
		return STORE_PERMFAIL;
	}
	for (unsigned int i = 0; i < idx->count; i++)
		any |= idx->msgs[i].deleted;
	if (!any)
		return STORE_OK;
	if (str_fmt(tmp, sizeof(tmp), "%s/.%s%s%ld", mb->dir, mb->name,
	    MBOX_TMP_INFIX, (long)getpid()) == -1) {
		(void)str_copy(err, ERR_LEN, "mbox path too long");
		return STORE_PERMFAIL;
	}
	if ((res = mbox_reopen(mb, &mb->fd, err)) != STORE_OK)
		return res;
	if ((res = mbox_mta_lock(mb, err)) != STORE_OK) {
		(void)store_close_fd(&mb->fd);
		return res;
	}
	if ((res = mbox_check(mb, mb->fd, true, 0, err)) != STORE_OK)
		goto out;
	/* ... and the tail a delivery killed during this session left. */
	priv_group_raise();
	recovered = store_mbox_recover(mb->path, mb->fd, err);
	priv_group_lower();
	if (recovered < 0) {
		res = STORE_TEMPFAIL;
		goto out;
	}
	res = STORE_TEMPFAIL;
	if (fstat(mb->fd, &sb) == -1) {
		(void)str_fmt(err, ERR_LEN, "cannot stat %s: %s", mb->path,
		    strerror(errno));
		goto out;
	}
	priv_group_raise();
	if (mbox_replace(mb, idx, tmp, &sb, err) == -1)
		goto out;
	mb->committed = true;
	res = STORE_OK;
	if (store_fsync_dir(mb->dir) == -1) {
		(void)str_fmt(err, ERR_LEN, "cannot fsync %s: %s", mb->dir,
		    strerror(errno));
		res = STORE_TEMPFAIL;
	}
out:
	priv_group_lower();
	mbox_mta_unlock(mb);
	free(mb->iobuf);
	mb->iobuf = NULL;
	(void)store_close_fd(&mb->fd);
	return res;
}

static void
mbox_close(struct store **st, struct store_index *idx)
{
	if (*st != NULL)
		mbox_free((struct mbox *)*st);
	*st = NULL;
	if (idx != NULL) {
		free(idx->msgs);
		*idx = (struct store_index){ 0 };
	}
}

const struct store_ops store_mbox_ops = {
	.name = "mbox",
	.open = mbox_open,
	.append = store_mbox_append,
	.quota = store_mbox_quota,
	.read_open = mbox_read_open,
	.read = mbox_read,
	.read_close = mbox_read_close,
	.commit = mbox_commit,
	.close = mbox_close,
};
