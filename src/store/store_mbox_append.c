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

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

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

/* Open and lock; the path must still name the locked file. */
static enum store_result
mbox_open_locked(const struct store_params *p, struct mbox_lock *lk,
    const char *dir, int *fd_r, char *err)
{
	for (int tries = 0; tries < 3; tries++) {
		struct stat st;
		int fd = open(p->path, O_RDWR | O_APPEND | O_CREAT | O_NOFOLLOW |
		    O_CLOEXEC | O_NONBLOCK | O_NOCTTY, 0600);

		if (fd == -1 && errno == ENOENT && store_mkdirs(dir) == 0)
			fd = open(p->path, O_RDWR | O_APPEND | O_CREAT |
			    O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK | O_NOCTTY, 0600);
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

/* Append the From_ line, the quoted message and its closing blank line. */
static int
mbox_write_message(const struct store_params *p, int in,
    const struct store_delivery *d, int fd, int gap, char *err)
{
	char from[LINE_MAX], date[64];
	struct store_delivery dd = *d;
	uint64_t stored, crlfsize;
	bool ends_lf;
	time_t now = time(NULL);
	struct tm tm;

	localtime_r(&now, &tm);
	/* The asctime(3) form every mbox reader knows. */
	if (strftime(date, sizeof(date), "%a %b %e %H:%M:%S %Y", &tm) == 0 ||
	    str_fmt(from, sizeof(from), "%.*sFrom %s %s\n", gap, "\n\n",
	    d->return_path != NULL && d->return_path[0] != '\0' ?
	    d->return_path : "MAILER-DAEMON", date) < 0) {
		(void)str_copy(err, ERR_LEN, "From_ line too long");
		return -1;
	}
	/* An mbox is LF-only: its readers add the CRs. */
	dd.crlf = false;
	if (fd_write_all(fd, from, strlen(from)) < 0 ||
	    store_append_copy(in, fd, &dd, p->mboxrd ? STORE_ESCAPE_MBOXRD :
	    STORE_ESCAPE_MBOXO, &stored, &crlfsize, &ends_lf, err) < 0 ||
	    fd_write_all(fd, "\n\n", ends_lf ? 1 : 2) < 0) {
		if (err[0] == '\0')
			(void)str_fmt(err, ERR_LEN, "cannot write %s: %s",
			    p->path, strerror(errno));
		return -1;
	}
	return 0;
}

static enum store_result
mbox_append(const struct store_params *p, int in,
    const struct store_delivery *d, char *err)
{
	char journal[PATH_MAX], dir[PATH_MAX];
	struct mbox_lock lk;
	enum store_result res;
	struct stat st;
	int fd = -1, gap, journaled = 0;

	err[0] = '\0';
	if (journal_paths(p->path, journal, sizeof(journal), dir,
	    sizeof(dir)) < 0 || mbox_lock_init(&lk, p->path, p->dotlock_stale,
	    err) < 0) {
		(void)str_copy(err, ERR_LEN, "bad mbox path");
		return STORE_PERMFAIL;
	}
	if ((res = mbox_open_locked(p, &lk, dir, &fd, err)) != STORE_OK)
		return res;
	res = STORE_TEMPFAIL;
	if (store_mbox_recover(p->path, fd, err) < 0)
		goto out;
	if (fstat(fd, &st) == -1 || (gap = mbox_gap(fd, st.st_size)) < 0) {
		(void)str_fmt(err, ERR_LEN, "cannot read %s: %s", p->path,
		    strerror(errno));
		goto out;
	}
	/* Quota in octets of the file; an mbox has no cheap message count. */
	if (d->quota_bytes != 0 && (uint64_t)st.st_size >= d->quota_bytes) {
		(void)str_copy(err, ERR_LEN, "mailbox is over its quota");
		res = STORE_OVERQUOTA;
		goto out;
	}
	/* The journal first, then the message. */
	if ((journaled = journal_write(journal, dir, &st, err)) < 0)
		goto out;
	if (mbox_write_message(p, in, d, fd, gap, err) < 0)
		goto undo;
	if (d->quota_bytes != 0) {
		struct stat now_st;

		if (fstat(fd, &now_st) == 0 &&
		    (uint64_t)now_st.st_size > d->quota_bytes) {
			(void)str_copy(err, ERR_LEN, "message exceeds the quota");
			res = STORE_OVERQUOTA;
			goto undo;
		}
	}
	if (fsync(fd) == -1) {
		(void)str_fmt(err, ERR_LEN, "cannot fsync %s: %s", p->path,
		    strerror(errno));
		goto undo;
	}
	if (journaled && (unlink(journal) == -1 ||
	    store_fsync_dir(dir) == -1)) {
		/* The message is in; a journal left would cut it later. */
		(void)str_fmt(err, ERR_LEN, "cannot remove %s: %s", journal,
		    strerror(errno));
		goto undo;
	}
	res = STORE_OK;
	goto out;
undo:
	/* Take back the partial message: we still hold the locks. */
	if (ftruncate(fd, st.st_size) == -1 || fsync(fd) == -1)
		log_warn("mbox=%s cannot truncate back to %lld octets",
		    p->path, (long long)st.st_size);
	else if (journaled) {
		(void)unlink(journal);
		(void)store_fsync_dir(dir);
	}
out:
	mbox_lock_release(&lk);
	(void)close(fd);
	return res;
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
