/*
 * mbox delivery: append one message under the MTA's locks, with a From_
 * line, mboxrd (or mboxo) quoting, and the blank line the reader expects
 * after each message (store_mbox.c). A journal beside the mbox makes a
 * kill -9 half-way harmless: the next holder of the locks (a delivery, a
 * POP3 session's scan or commit) truncates the mbox back to where the
 * killed append started, so no partial message is ever read.
 */
#include "store.h"
#include "store_append.h"
#include "store_lock.h"
#include "mbox_lock.h"
#include "mbox_append.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "../lib/log.h"
#include "../lib/priv.h"

#define JOURNAL_SUFFIX	".postino-append"
/* "<inode> <size>\n": two 20-digit numbers. */
#define JOURNAL_MAX	64

/* "<dir>/.<name>.postino-append" and "<dir>" for path. */
static int
journal_paths(const char *path, char *journal, size_t jsize, char *dir,
    size_t dsize)
{
	const char *slash = strrchr(path, '/');
	const char *name = slash != NULL ? slash + 1 : path;

	if (name[0] == '\0')
		return -1;
	if (slash == NULL) {
		if (str_copy(dir, dsize, ".") < 0)
			return -1;
	} else if (slash == path) {
		if (str_copy(dir, dsize, "/") < 0)
			return -1;
	} else if (str_fmt(dir, dsize, "%.*s", (int)(slash - path), path) < 0)
		return -1;
	return str_fmt(journal, jsize, "%s/.%s%s", dir, name, JOURNAL_SUFFIX);
}

/*
 * Whether the octets of fd from start to end hold a line beginning "From "
 * after the first line that is not empty: a message another program (an
 * MTA) appended after the killed append. The killed append wrote its
 * From_ line in one write with the blank lines it owed, then a body in
 * which every such line is quoted (">From "), so this one is not ours.
 * 1 yes, 0 no, -1 on a read error.
 */
static int
tail_has_other_message(int fd, off_t start, off_t end)
{
	static const char from[] = "From ";
	enum { GAP, OURS, LINES } phase = GAP;
	char buf[65536];
	size_t matched = 0;
	bool line_start = false;

	while (start < end) {
		size_t want = end - start < (off_t)sizeof(buf) ?
		    (size_t)(end - start) : sizeof(buf);
		ssize_t n = pread(fd, buf, want, start);

		if (n <= 0)
			return -1;
		start += n;
		for (ssize_t i = 0; i < n; i++) {
			char c = buf[i];

			if (phase == GAP) {
				if (c != '\n')
					phase = OURS;
				continue;
			}
			if (c == '\n') {
				phase = LINES;
				line_start = true;
				matched = 0;
				continue;
			}
			if (phase == OURS || !line_start)
				continue;
			if (c != from[matched]) {
				line_start = false;
				continue;
			}
			if (++matched == sizeof(from) - 1)
				return 1;
		}
	}
	return 0;
}

/*
 * Cut the killed append's partial message, from start to end, off fd.
 * Not when another program (an MTA) appended after it: cutting would take
 * its message with ours, so the partial one stays, a damaged copy whose
 * sender retries (it got no 250) rather than lost mail, as postino's own
 * recovery does (issue 13, finding 1). 0, or -1 with err filled.
 */
static int
mbox_cut(const char *path, int fd, off_t start, off_t end, char *err)
{
	int other = tail_has_other_message(fd, start, end);

	if (other < 0) {
		(void)str_fmt(err, ERR_LEN, "cannot read %s: %s", path,
		    strerror(errno));
		return -1;
	}
	if (other > 0) {
		log_warnx("mbox=%s event=append-recovery-refused reason=\"a "
		    "message was appended after the partial one; left in "
		    "place\"", path);
		return 0;
	}
	if (ftruncate(fd, start) == -1 || fsync(fd) == -1) {
		(void)str_fmt(err, ERR_LEN, "cannot truncate %s: %s", path,
		    strerror(errno));
		return -1;
	}
	log_info("mbox=%s event=append-recovered cut=%llu", path,
	    (unsigned long long)(end - start));
	return 0;
}

int
store_mbox_recover(const char *path, int fd, char *err)
{
	char journal[PATH_MAX], dir[PATH_MAX], buf[JOURNAL_MAX];
	unsigned long long ino, size;
	struct stat st;
	ssize_t n;
	int jfd;

	if (journal_paths(path, journal, sizeof(journal), dir,
	    sizeof(dir)) < 0) {
		(void)str_copy(err, ERR_LEN, "mbox path too long");
		return -1;
	}
	jfd = open(journal, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (jfd == -1)
		return errno == ENOENT ? 0 : (str_fmt(err, ERR_LEN,
		    "cannot read %s: %s", journal, strerror(errno)), -1);
	n = read(jfd, buf, sizeof(buf) - 1);
	(void)close(jfd);
	if (fstat(fd, &st) == -1) {
		(void)str_fmt(err, ERR_LEN, "cannot stat %s: %s", path,
		    strerror(errno));
		return -1;
	}
	buf[n > 0 ? n : 0] = '\0';
	/* A torn journal means the append never began: nothing to cut. */
	if (sscanf(buf, "%llu %llu\n", &ino, &size) == 2 &&
	    ino == (unsigned long long)st.st_ino &&
	    size < (unsigned long long)st.st_size &&
	    mbox_cut(path, fd, (off_t)size, st.st_size, err) < 0)
		return -1;
	if (unlink(journal) == -1 || store_fsync_dir(dir) == -1) {
		(void)str_fmt(err, ERR_LEN, "cannot remove %s: %s", journal,
		    strerror(errno));
		return -1;
	}
	return 0;
}

/*
 * Open and lock; the path must still name the locked file. Without create,
 * a missing mbox is STORE_OK with *fd_r -1.
 */
static enum store_result
mbox_open_locked(const struct store_params *p, struct mbox_lock *lk,
    const char *dir, bool create, int *fd_r, char *err)
{
	int flags = O_RDWR | O_APPEND | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK |
	    O_NOCTTY | (create ? O_CREAT : 0);

	*fd_r = -1;
	for (int tries = 0; tries < 3; tries++) {
		struct stat st;
		int fd = open(p->path, flags, 0600);

		if (fd == -1 && errno == ENOENT && !create)
			return STORE_OK;
		if (fd == -1 && errno == ENOENT && store_mkdirs(dir) == 0)
			fd = open(p->path, flags, 0600);
		if (fd == -1) {
			(void)str_fmt(err, ERR_LEN, "cannot open %s: %s",
			    p->path, strerror(errno));
			return errno == ELOOP ? STORE_PERMFAIL : STORE_TEMPFAIL;
		}
		if (fstat(fd, &st) == -1 || !S_ISREG(st.st_mode)) {
			(void)str_fmt(err, ERR_LEN, "%s is not a mailbox file",
			    p->path);
			(void)close(fd);
			return STORE_PERMFAIL;
		}
		switch (mbox_lock_wait(lk, fd, p->lock_wait, err)) {
		case MBOX_LOCK_OK:
			break;
		case MBOX_LOCK_BUSY:
			(void)close(fd);
			return STORE_LOCKED;
		default:
			(void)close(fd);
			return STORE_TEMPFAIL;
		}
		if (mbox_lock_same_file(fd, p->path)) {
			*fd_r = fd;
			return STORE_OK;
		}
		mbox_lock_release(lk);
		(void)close(fd);
	}
	(void)str_fmt(err, ERR_LEN, "%s keeps being replaced", p->path);
	return STORE_TEMPFAIL;
}

void
store_mbox_end(struct store_mbox_txn *t)
{
	mbox_lock_release(&t->lk);
	if (t->fd >= 0)
		(void)close(t->fd);
	t->fd = -1;
}

/*
 * Open and lock the mbox, cut a killed append's tail; t->old_size. Without
 * create, a missing mbox is STORE_OK with t->fd -1.
 */
static enum store_result
mbox_lock(struct store_mbox_txn *t, const struct store_params *p,
    bool create, char *err)
{
	enum store_result res;
	struct stat st;

	err[0] = '\0';
	*t = (struct store_mbox_txn){ .p = *p, .fd = -1 };
	if (journal_paths(p->path, t->journal, sizeof(t->journal), t->dir,
	    sizeof(t->dir)) < 0 || mbox_lock_init(&t->lk, p->path,
	    p->dotlock_stale, err) < 0) {
		(void)str_copy(err, ERR_LEN, "bad mbox path");
		return STORE_PERMFAIL;
	}
	res = mbox_open_locked(p, &t->lk, t->dir, create, &t->fd, err);
	if (res != STORE_OK || t->fd < 0)
		return res;
	if (store_mbox_recover(p->path, t->fd, err) < 0)
		return STORE_TEMPFAIL;
	if (fstat(t->fd, &st) == -1) {
		(void)str_fmt(err, ERR_LEN, "cannot stat %s: %s", p->path,
		    strerror(errno));
		return STORE_TEMPFAIL;
	}
	t->old_size = st.st_size;
	return STORE_OK;
}

enum store_result
store_mbox_begin(struct store_mbox_txn *t, const struct store_params *p,
    const char *sender, char *err)
{
	enum store_result res = mbox_lock(t, p, true, err);
	char date[64];
	time_t now = time(NULL);
	struct tm tm;
	int gap;

	if (res != STORE_OK)
		return res;
	if ((gap = mbox_gap(t->fd, t->old_size)) < 0) {
		(void)str_fmt(err, ERR_LEN, "cannot read %s: %s", p->path,
		    strerror(errno));
		return STORE_TEMPFAIL;
	}
	localtime_r(&now, &tm);
	/* The asctime(3) form every mbox reader knows. */
	if (strftime(date, sizeof(date), "%a %b %e %H:%M:%S %Y", &tm) == 0 ||
	    str_fmt(t->hdr, sizeof(t->hdr), "%.*sFrom %s %s\n", gap, "\n\n",
	    sender != NULL && sender[0] != '\0' ? sender : "MAILER-DAEMON",
	    date) < 0) {
		(void)str_copy(err, ERR_LEN, "From_ line too long");
		return STORE_PERMFAIL;
	}
	return STORE_OK;
}

/*
 * Everything an append writes after the old end, to sink: hdr (the empty
 * lines owed and the From_ line), the message, the empty line after it.
 * An mbox is LF-only: its readers add the CRs. *len_r: octets. 0, or -1.
 */
static int
mbox_emit(const char *hdr, int in, const struct store_delivery *d,
    bool mboxrd, store_sink_fn *sink, void *arg, uint64_t *len_r, char *err)
{
	struct store_delivery dd = *d;
	uint64_t stored, crlfsize;
	bool ends_lf;

	dd.crlf = false;
	err[0] = '\0';
	if (sink(arg, hdr, strlen(hdr)) < 0 ||
	    store_append_copy_to(in, sink, arg, &dd, mboxrd ?
	    STORE_ESCAPE_MBOXRD : STORE_ESCAPE_MBOXO, &stored, &crlfsize,
	    &ends_lf, err) < 0 || sink(arg, "\n\n", ends_lf ? 1 : 2) < 0) {
		if (err[0] == '\0')
			(void)str_fmt(err, ERR_LEN, "write: %s",
			    strerror(errno));
		return -1;
	}
	*len_r = strlen(hdr) + stored + (ends_lf ? 1 : 2);
	return 0;
}

static int
sink_sha256(void *arg, const void *p, size_t n)
{
	return EVP_DigestUpdate(arg, p, n) == 1 ? 0 : (errno = EIO, -1);
}

/* SHA-256 in hex of what mbox_emit gives, and its length. 0, or -1. */
static int
emit_digest(const char *hdr, int in, const struct store_delivery *d,
    bool mboxrd, uint64_t *len_r, char hex[STORE_MBOX_SHA_HEX + 1],
    char *err)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	int rc = -1;

	if (ctx == NULL || EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1) {
		(void)str_copy(err, ERR_LEN, "SHA-256 failed");
		goto out;
	}
	if (mbox_emit(hdr, in, d, mboxrd, sink_sha256, ctx, len_r, err) < 0)
		goto out;
	if (EVP_DigestFinal_ex(ctx, md, &mdlen) != 1 || mdlen != 32) {
		(void)str_copy(err, ERR_LEN, "SHA-256 failed");
		goto out;
	}
	str_hex(hex, md, mdlen);
	rc = 0;
out:
	EVP_MD_CTX_free(ctx);
	return rc;
}

int
store_mbox_token(struct store_mbox_txn *t, int in,
    const struct store_delivery *d, char *token, size_t size, char *err)
{
	char hex[STORE_MBOX_SHA_HEX + 1];
	size_t gap = strspn(t->hdr, "\n");
	uint64_t len;

	if (emit_digest(t->hdr, in, d, t->p.mboxrd, &len, hex, err) < 0)
		return -1;
	if (str_fmt(token, size, "%lld %llu %s %zu %.*s",
	    (long long)t->old_size, (unsigned long long)len, hex, gap,
	    (int)(strlen(t->hdr) - gap - 1), t->hdr + gap) < 0) {
		(void)str_copy(err, ERR_LEN, "delivery token too long");
		return -1;
	}
	return 0;
}

enum store_result
store_mbox_quota(const struct store_params *p, const struct store_delivery *d,
    char *err)
{
	struct stat st;

	if (d->quota_bytes == 0)
		return STORE_OK;
	if (stat(p->path, &st) == -1)
		return errno == ENOENT ? STORE_OK : STORE_TEMPFAIL;
	if ((uint64_t)st.st_size >= d->quota_bytes) {
		(void)str_copy(err, ERR_LEN, "mailbox is over its quota");
		return STORE_OVERQUOTA;
	}
	return STORE_OK;
}

/*
 * Note where the mbox ended, durably: from here on a kill leaves octets that
 * the next lock holder cuts off. Returns 1 when journaled, 0 when the spool
 * directory may not be written (mbox_lock.h falls back to fcntl alone
 * there, and there is no journal), -1 on error.
 */
static int
journal_write(const char *journal, const char *dir, const struct stat *st,
    char *err)
{
	char line[JOURNAL_MAX];
	int jfd;

	(void)str_fmt(line, sizeof(line), "%llu %llu\n",
	    (unsigned long long)st->st_ino, (unsigned long long)st->st_size);
	jfd = open(journal, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW |
	    O_CLOEXEC, 0600);
	if (jfd >= 0) {
		if (fd_write_all(jfd, line, strlen(line)) < 0 ||
		    fsync(jfd) == -1 || close(jfd) == -1 ||
		    store_fsync_dir(dir) == -1) {
			(void)str_fmt(err, ERR_LEN, "cannot write %s: %s",
			    journal, strerror(errno));
			(void)unlink(journal);
			return -1;
		}
		return 1;
	}
	if (errno != EACCES && errno != EPERM && errno != EROFS) {
		(void)str_fmt(err, ERR_LEN, "cannot create %s: %s", journal,
		    strerror(errno));
		return -1;
	}
	return 0;
}

enum store_result
store_mbox_write(struct store_mbox_txn *t, int in,
    const struct store_delivery *d, char *err)
{
	char why[ERR_LEN];
	struct stat st;
	uint64_t len;
	int journaled = 0;
	enum store_result res = STORE_TEMPFAIL;

	err[0] = '\0';
	if (fstat(t->fd, &st) == -1 || (!t->token_is_journal &&
	    (journaled = journal_write(t->journal, t->dir, &st, err)) < 0)) {
		if (err[0] == '\0')
			(void)str_fmt(err, ERR_LEN, "cannot stat %s: %s",
			    t->p.path, strerror(errno));
		return STORE_TEMPFAIL;
	}
	/* The journal first, then the message. */
	if (mbox_emit(t->hdr, in, d, t->p.mboxrd, t->put != NULL ? t->put :
	    store_sink_fd, t->put != NULL ? t->put_arg : &t->fd, &len,
	    why) < 0) {
		(void)str_fmt(err, ERR_LEN, "%s: %s", t->p.path, why);
		goto undo;
	}
	/* Quota in octets of the file; an mbox has no cheap message count. */
	if (d->quota_bytes != 0 &&
	    (uint64_t)t->old_size + len > d->quota_bytes) {
		(void)str_copy(err, ERR_LEN, "message exceeds the quota");
		res = STORE_OVERQUOTA;
		goto undo;
	}
	if (fsync(t->fd) == -1) {
		(void)str_fmt(err, ERR_LEN, "cannot fsync %s: %s", t->p.path,
		    strerror(errno));
		goto undo;
	}
	if (journaled && (unlink(t->journal) == -1 ||
	    store_fsync_dir(t->dir) == -1)) {
		/* The message is in; a journal left would cut it later. */
		(void)str_fmt(err, ERR_LEN, "cannot remove %s: %s", t->journal,
		    strerror(errno));
		goto undo;
	}
	return STORE_OK;
undo:
	/* Take back the partial message: we still hold the locks. */
	if (ftruncate(t->fd, t->old_size) == -1 || fsync(t->fd) == -1)
		log_warn("mbox=%s cannot truncate back to %lld octets",
		    t->p.path, (long long)t->old_size);
	else if (journaled) {
		(void)unlink(t->journal);
		(void)store_fsync_dir(t->dir);
	}
	return res;
}

static enum store_result
mbox_append(const struct store_params *p, int in,
    const struct store_delivery *d, char *err)
{
	struct store_mbox_txn t;
	enum store_result res;

	res = store_mbox_begin(&t, p, d->return_path, err);
	/* Quota in octets of the file; an mbox has no cheap message count. */
	if (res == STORE_OK && d->quota_bytes != 0 &&
	    (uint64_t)t.old_size >= d->quota_bytes) {
		(void)str_copy(err, ERR_LEN, "mailbox is over its quota");
		res = STORE_OVERQUOTA;
	}
	if (res == STORE_OK)
		res = store_mbox_write(&t, in, d, err);
	store_mbox_end(&t);
	return res;
}

/* Compares what an append emits with the mbox at off, up to limit octets. */
struct prefix_cmp {
	int		 fd;
	off_t		 off;
	uint64_t	 pos, limit;
	bool		 differ;
};

static int
sink_cmp(void *arg, const void *p, size_t n)
{
	struct prefix_cmp *c = arg;
	char buf[16384];

	while (n > 0 && c->pos < c->limit) {
		size_t k = n < sizeof(buf) ? n : sizeof(buf);
		ssize_t r;

		if (k > c->limit - c->pos)
			k = (size_t)(c->limit - c->pos);
		r = pread(c->fd, buf, k, c->off + (off_t)c->pos);
		if (r <= 0 || memcmp(buf, p, (size_t)r) != 0) {
			c->differ = true;
			break;
		}
		c->pos += (uint64_t)r;
		p = (const char *)p + r;
		n -= (size_t)r;
	}
	/* Done either way: stop the copy early. */
	if (c->differ || c->pos == c->limit) {
		errno = 0;
		return -1;
	}
	return 0;
}

/* SHA-256 in hex of len octets of fd at off. 0, or -1. */
static int
range_digest(int fd, off_t off, uint64_t len, char hex[STORE_MBOX_SHA_HEX + 1])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	static char buf[65536];
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	int rc = -1;

	if (ctx == NULL || EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1)
		goto out;
	while (len > 0) {
		size_t k = len < sizeof(buf) ? (size_t)len : sizeof(buf);
		ssize_t r = pread(fd, buf, k, off);

		if (r <= 0 || EVP_DigestUpdate(ctx, buf, (size_t)r) != 1)
			goto out;
		off += r;
		len -= (uint64_t)r;
	}
	if (EVP_DigestFinal_ex(ctx, md, &mdlen) != 1 || mdlen != 32)
		goto out;
	str_hex(hex, md, mdlen);
	rc = 0;
out:
	EVP_MD_CTX_free(ctx);
	return rc;
}

/* A token of store_mbox_token: its numbers, digest and hdr. 0, or -1. */
static int
token_parse(const char *token, unsigned long long *old, unsigned long long *len,
    char hex[STORE_MBOX_SHA_HEX + 1], char hdr[STORE_MBOX_HDR_MAX])
{
	int n = -1, gap;

	if (sscanf(token, "%llu %llu %64[0-9a-f] %d %n", old, len, hex, &gap,
	    &n) != 4 || n < 0 || strlen(hex) != STORE_MBOX_SHA_HEX ||
	    gap < 0 || gap > 2 || *old > INT64_MAX || *len > INT64_MAX - *old ||
	    strncmp(token + n, "From ", 5) != 0 ||
	    str_fmt(hdr, STORE_MBOX_HDR_MAX, "%.*s%s\n", gap, "\n\n",
	    token + n) < 0 || *len < strlen(hdr) + 1)
		return -1;
	return 0;
}

/*
 * The octets after old are the start of the append of in (whose digest
 * matches), and nothing else: cut them. 0 cut, 2 not ours, -1 error.
 */
static int
cut_own_partial(struct store_mbox_txn *t, int in,
    const struct store_delivery *d, const char *hdr, unsigned long long old,
    unsigned long long len, const char *hex, char *err)
{
	struct prefix_cmp c = { .fd = t->fd, .off = (off_t)old,
	    .limit = (uint64_t)t->old_size - old };
	char got[STORE_MBOX_SHA_HEX + 1], why[ERR_LEN];
	uint64_t glen;

	if (in < 0 || emit_digest(hdr, in, d, t->p.mboxrd, &glen, got,
	    why) < 0 || glen != len || strcmp(got, hex) != 0)
		return 2;
	(void)mbox_emit(hdr, in, d, t->p.mboxrd, sink_cmp, &c, &glen, why);
	if (c.differ || c.pos != c.limit)
		return 2;
	if (ftruncate(t->fd, (off_t)old) == -1 || fsync(t->fd) == -1) {
		(void)str_fmt(err, ERR_LEN, "%s: truncating a partial message: "
		    "%s", t->p.path, strerror(errno));
		return -1;
	}
	return 0;
}

int
store_mbox_prove(const struct store_params *p, int in,
    const struct store_delivery *d, const char *token, char *err)
{
	char hex[STORE_MBOX_SHA_HEX + 1], got[STORE_MBOX_SHA_HEX + 1];
	char hdr[STORE_MBOX_HDR_MAX];
	unsigned long long old, len, size;
	struct store_mbox_txn t;
	int rc;

	if (token_parse(token, &old, &len, hex, hdr) < 0) {
		(void)str_copy(err, ERR_LEN, "bad pending mbox delivery");
		return -1;
	}
	if (mbox_lock(&t, p, false, err) != STORE_OK) {
		store_mbox_end(&t);
		return -1;
	}
	size = (unsigned long long)t.old_size;
	if (t.fd < 0 || size == old)
		rc = 0;		/* nothing of it is there */
	else if (size >= old + len && range_digest(t.fd, (off_t)old, len,
	    got) == 0 && strcmp(got, hex) == 0)
		rc = 1;
	else if (size > old && size < old + len)
		rc = cut_own_partial(&t, in, d, hdr, old, len, hex, err);
	else
		rc = 2;
	if (rc == 2)
		(void)str_fmt(err, ERR_LEN, "%s: a delivery interrupted at "
		    "offset %llu cannot be told apart from what was written "
		    "after it (%llu octets now); the mbox is left as it is "
		    "and the message will be fetched again", p->path, old,
		    size);
	store_mbox_end(&t);
	return rc;
}

enum store_result
store_mbox_append(const struct store_params *p, int in,
    const struct store_delivery *d, char *err)
{
	enum store_result r;

	/*
	 * A UIDL to keep becomes the message's first header, "X-UIDL:",
	 * which the scan takes as its UIDL; one it would not take is
	 * refused rather than written and silently lost.
	 */
	if (d->uidl != NULL && !store_mbox_uidl_valid(d->uidl,
	    strlen(d->uidl))) {
		(void)str_fmt(err, ERR_LEN, "a UIDL of %zu octets that is not "
		    "1..%d octets 0x21..0x7E cannot be an mbox's X-UIDL",
		    strlen(d->uidl), STORE_UIDL_MAX);
		return STORE_PERMFAIL;
	}
	/*
	 * The spool, its dotlock and journal are created in the spool
	 * directory, which may need mail_privileged_group (priv.h); the spool
	 * written is the recipient's own.
	 */
	priv_group_raise();
	r = mbox_append(p, in, d, err);
	priv_group_lower();
	return r;
}
