#include "fetch.h"

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "../lib/fdio.h"
#include "../store/mbox_lock.h"
#include "deliver_lmtp.h"

struct fetch_dest {
	enum fetch_kind	 kind;
	char		 where[PATH_MAX];
	int		 dir_tmp, dir_new;	/* Maildir: open dirs */
	char		 host[128];		/* Maildir: escaped hostname */
	unsigned int	 seq;
	char		 name[PATH_MAX];	/* Maildir: base name in tmp/ */
	int		 fd;			/* message file or spool */
	char		 final[PATH_MAX];	/* Maildir: name in new/ */
	bool		 spool_named;		/* fetch_set_spool() */
	char		 result[PATH_MAX];	/* MDA: its outcome, for recovery */
	int		 result_fd;		/* MDA: locked while it runs */
	mode_t		 mda_umask;
	char		 recipient[FETCH_SENDER_MAX + 1];	/* MDA: %T */
	char		 cmd[FETCH_MDA_CMD_MAX];	/* MDA: %F, %T expanded */
	int		 mbox_fd;		/* mbox: locked once prepared */
	struct mbox_lock lk;			/* mbox: its locks */
	off_t		 old_size;		/* mbox: size before append */
	int		 gap;			/* mbox: '\n's before From_ */
	char		 from[FETCH_SENDER_MAX + 64];	/* mbox: gap, From_ */
	unsigned long	 commits;
	unsigned long	 kill_append;		/* test hook, see fetch_open */
	bool		 unsynced;		/* Maildir: renames to fsync */
	bool		 prepared;
	bool		 active;
	bool		 failed;
	bool		 refused;		/* LMTP: a 5xx for the message */
	int		 err_no;		/* errno of a failed write */
	uint64_t	 size;			/* stored octets */
	bool		 bol;			/* next piece starts a line */
	bool		 in_header;
	bool		 collecting;		/* mbox: gathering line head */
	size_t		 head_len;
	char		 head[FETCH_HEAD_MAX];
	char		 sender[FETCH_SENDER_MAX + 1];
	size_t		 used;
	char		 buf[FETCH_BUF_SIZE];
};

static int
flush(struct fetch_dest *d)
{
	if (d->used > 0 && fd_write_all(d->fd, d->buf, d->used) < 0)
		return -1;
	d->used = 0;
	return 0;
}

static int
put(struct fetch_dest *d, const char *data, size_t len)
{
	if (d->used + len > sizeof(d->buf)) {
		if (flush(d) < 0)
			return -1;
		if (len > sizeof(d->buf))
			return fd_write_all(d->fd, data, len);
	}
	memcpy(d->buf + d->used, data, len);
	d->used += len;
	return 0;
}

/* n octets at off, all of them; 0, or -1 (errno, or EIO at the end). */
static int
fd_pread_all(int fd, char *buf, size_t n, off_t off)
{
	while (n > 0) {
		ssize_t r = pread(fd, buf, n, off);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			if (r == 0)
				errno = EIO;
			return -1;
		}
		buf += r;
		n -= (size_t)r;
		off += r;
	}
	return 0;
}

/* Maildir spec: '/' and ':' in the hostname are written as octal escapes. */
static void
maildir_host(char *dst, size_t size)
{
	char h[64];
	size_t o = 0;

	if (gethostname(h, sizeof(h)) < 0)
		str_copy(h, sizeof(h), "localhost");
	h[sizeof(h) - 1] = '\0';
	for (const char *p = h; *p != '\0' && o + 5 < size; p++) {
		if (*p == '/' || *p == ':' || *p == ',') {
			(void)snprintf(dst + o, size - o, "\\%03o",
			    (unsigned char)*p);
			o += 4;
		} else {
			dst[o++] = *p;
		}
	}
	dst[o] = '\0';
}

static int
open_dir(const char *base, const char *sub, char *err)
{
	char p[PATH_MAX];
	int fd;

	if (str_fmt(p, sizeof(p), "%s%s%s", base, sub[0] ? "/" : "", sub) < 0) {
		str_copy(err, ERR_LEN, "path too long");
		return -1;
	}
	if (mkdir(p, 0700) < 0 && errno != EEXIST) {
		(void)str_fmt(err, ERR_LEN, "mkdir %s: %s", p, strerror(errno));
		return -1;
	}
	fd = open(p, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		(void)str_fmt(err, ERR_LEN, "%s: %s", p, strerror(errno));
	return fd;
}

/* An unlinked temporary file for mbox and MDA deliveries. */
static int
open_spool(char *err)
{
	const char *dir = getenv("TMPDIR");
	char tmpl[PATH_MAX];
	int fd;

	if (dir == NULL || dir[0] != '/')
		dir = "/tmp";
	fd = open(dir, O_RDWR | O_TMPFILE | O_CLOEXEC, 0600);
	if (fd >= 0)
		return fd;
	/* Not every file system has O_TMPFILE. */
	if (str_fmt(tmpl, sizeof(tmpl), "%s/postino.XXXXXX", dir) < 0) {
		str_copy(err, ERR_LEN, "TMPDIR too long");
		return -1;
	}
	fd = mkostemp(tmpl, O_CLOEXEC);
	if (fd < 0) {
		(void)str_fmt(err, ERR_LEN, "temporary file in %s: %s", dir,
		    strerror(errno));
		return -1;
	}
	(void)unlink(tmpl);
	return fd;
}

/*
 * Files a killed postino left in tmp/: our names ("SECS.MUSECPPIDQSEQ.HOST")
 * with this host and a pid that no longer exists. Others' files and those
 * of live processes are left alone.
 */
static void
maildir_clean_tmp(struct fetch_dest *d)
{
	struct dirent *e;
	DIR *dir;
	int fd = dup(d->dir_tmp);

	if (fd < 0 || (dir = fdopendir(fd)) == NULL) {
		if (fd >= 0)
			close(fd);
		return;
	}
	while ((e = readdir(dir)) != NULL) {
		const char *m = strstr(e->d_name, ".M"), *p, *dot;
		char *end;
		long pid;

		if (m == NULL || (p = strchr(m, 'P')) == NULL)
			continue;
		pid = strtol(p + 1, &end, 10);
		if (*end != 'Q' || pid <= 0 ||
		    (dot = strchr(end, '.')) == NULL ||
		    strcmp(dot + 1, d->host) != 0)
			continue;
		if (kill((pid_t)pid, 0) < 0 && errno == ESRCH)
			(void)unlinkat(d->dir_tmp, e->d_name, 0);
	}
	closedir(dir);
}

int
fetch_open(struct fetch_dest **d_r, enum fetch_kind kind, const char *where,
    char *err)
{
	struct fetch_dest *d = calloc(1, sizeof(*d));
	int dcur;

	*d_r = NULL;
	if (d == NULL) {
		str_copy(err, ERR_LEN, "out of memory");
		return -1;
	}
	d->kind = kind;
	d->fd = d->dir_tmp = d->dir_new = d->mbox_fd = d->result_fd = -1;
	d->mda_umask = 022;
	if (str_copy(d->where, sizeof(d->where), where) < 0) {
		str_copy(err, ERR_LEN, "path too long");
		goto fail;
	}
	if (kind == FETCH_MAILDIR) {
		int top = open_dir(where, "", err);

		if (top < 0)
			goto fail;
		close(top);
		d->dir_tmp = open_dir(where, "tmp", err);
		d->dir_new = d->dir_tmp < 0 ? -1 : open_dir(where, "new", err);
		dcur = d->dir_new < 0 ? -1 : open_dir(where, "cur", err);
		if (dcur < 0)
			goto fail;
		close(dcur);
		maildir_host(d->host, sizeof(d->host));
		maildir_clean_tmp(d);
	} else {
		d->fd = open_spool(err);
		if (d->fd < 0)
			goto fail;
		if (kind == FETCH_LMTP && !deliver_lmtp_valid_addr(where, err))
			goto fail;
		if (kind == FETCH_MBOX && mbox_lock_init(&d->lk, where,
		    FETCH_DOTLOCK_STALE, err) < 0)
			goto fail;
	}
#ifdef POSTINO_TEST_HOOKS
	/*
	 * Test builds only (make SAN=1): die like kill -9 half-way through
	 * the Nth mbox append, with the mbox locked.
	 */
	{
		const char *v = getenv("POSTINO_TEST_KILL_APPEND");
		uint32_t n;

		if (v != NULL && str_parse_u32(v, &n) == 0)
			d->kill_append = n;
	}
#endif
	*d_r = d;
	return 0;
fail:
	fetch_close(&d);
	return -1;
}

int
fetch_set_spool(struct fetch_dest *d, const char *path, char *err)
{
	int fd;

	if (d->kind == FETCH_MAILDIR)
		return 0;
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY,
	    0600);
	if (fd < 0) {
		(void)str_fmt(err, ERR_LEN, "%s: %s", path, strerror(errno));
		return -1;
	}
	if (str_fmt(d->result, sizeof(d->result), "%s.mda", path) < 0) {
		close(fd);
		str_copy(err, ERR_LEN, "spool path too long");
		return -1;
	}
	close(d->fd);
	d->fd = fd;
	d->spool_named = true;
	return 0;
}

void
fetch_set_recipient(struct fetch_dest *d, const char *rcpt)
{
	if (str_copy(d->recipient, sizeof(d->recipient), rcpt) < 0)
		d->recipient[0] = '\0';
}

void
fetch_set_mda_umask(struct fetch_dest *d, mode_t mask)
{
	d->mda_umask = mask;
}

int
fetch_begin(struct fetch_dest *d, char *err)
{
	if (d->active)
		fetch_abort(d);
	d->size = 0;
	d->used = 0;
	d->failed = false;
	d->refused = false;
	d->err_no = 0;
	d->bol = true;
	d->in_header = true;
	d->collecting = false;
	d->head_len = 0;
	d->sender[0] = '\0';
	if (d->kind == FETCH_MAILDIR) {
		struct timeval tv;

		/* Unique: time, microseconds, pid, a counter; O_EXCL checks. */
		for (int tries = 0;; tries++) {
			gettimeofday(&tv, NULL);
			if (str_fmt(d->name, sizeof(d->name),
			    "%lld.M%06ldP%ldQ%u.%s", (long long)tv.tv_sec,
			    (long)tv.tv_usec, (long)getpid(), ++d->seq,
			    d->host) < 0) {
				str_copy(err, ERR_LEN, "file name too long");
				return -1;
			}
			d->fd = openat(d->dir_tmp, d->name, O_WRONLY |
			    O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
			if (d->fd >= 0)
				break;
			if (errno != EEXIST || tries == 10) {
				(void)str_fmt(err, ERR_LEN, "%s/tmp/%s: %s",
				    d->where, d->name, strerror(errno));
				return -1;
			}
		}
	} else if (ftruncate(d->fd, 0) < 0 || lseek(d->fd, 0, SEEK_SET) < 0) {
		(void)str_fmt(err, ERR_LEN, "temporary file: %s",
		    strerror(errno));
		return -1;
	}
	d->active = true;
	return 0;
}

/* "Return-Path: <a@b>" -> "a@b"; "<>" -> "" (MAILER-DAEMON later). */
static void
take_sender(struct fetch_dest *d, const char *line, size_t len)
{
	const char *p = line + 12, *end = line + len, *lt, *gt;
	size_t n;

	while (p < end && (*p == ' ' || *p == '\t'))
		p++;
	lt = p < end && *p == '<' ? p + 1 : p;
	gt = memchr(lt, '>', (size_t)(end - lt));
	if (gt == NULL)
		gt = lt + strcspn(lt, " \t");
	if (gt > end)
		gt = end;
	n = (size_t)(gt - lt);
	if (n == 0 || n > FETCH_SENDER_MAX)
		return;
	for (size_t i = 0; i < n; i++)
		if (lt[i] <= 0x20 || lt[i] >= 0x7f)
			return;
	memcpy(d->sender, lt, n);
	d->sender[n] = '\0';
}

/* mboxrd: a line matching ^>*From  gets one more '>'. */
static bool
needs_escape(const char *data, size_t len)
{
	size_t i = 0;

	while (i < len && data[i] == '>')
		i++;
	return len - i >= 5 && memcmp(data + i, "From ", 5) == 0;
}

/*
 * mbox and MDA: the start of a line decides its escaping (mbox) and may
 * name the sender (the From_ line, %F), so gather up to FETCH_HEAD_MAX
 * octets of it first, whatever the pieces.
 */
static int
mbox_head(struct fetch_dest *d)
{
	if (d->in_header) {
		if (d->head_len == 0)
			d->in_header = false;
		else if (d->sender[0] == '\0' && d->head_len >= 12 &&
		    strncasecmp(d->head, "Return-Path:", 12) == 0)
			take_sender(d, d->head, d->head_len);
	}
	if (d->kind == FETCH_MBOX && needs_escape(d->head, d->head_len) &&
	    put(d, ">", 1) < 0)
		return -1;
	return put(d, d->head, d->head_len);
}

int
fetch_data(void *arg, const char *data, size_t len, bool eol)
{
	struct fetch_dest *d = arg;
	uint64_t add = (uint64_t)len + (eol ? 1 : 0);

	if (d->failed || !d->active)
		return -1;
	if (__builtin_add_overflow(d->size, add, &d->size)) {
		errno = EFBIG;
		goto fail;
	}
	/* mbox: escaping and the From_ sender; MDA: %F. */
	if (d->kind != FETCH_MAILDIR) {
		if (d->bol) {
			d->collecting = true;
			d->head_len = 0;
		}
		if (d->collecting) {
			size_t take = sizeof(d->head) - d->head_len;

			if (take > len)
				take = len;
			memcpy(d->head + d->head_len, data, take);
			d->head_len += take;
			data += take;
			len -= take;
			if (!eol && d->head_len < sizeof(d->head)) {
				d->bol = false;
				return 0;
			}
			d->collecting = false;
			if (mbox_head(d) < 0)
				goto fail;
		}
	}
	if (put(d, data, len) < 0 || (eol && put(d, "\n", 1) < 0))
		goto fail;
	d->bol = eol;
	return 0;
fail:
	d->failed = true;
	d->err_no = errno;
	return -1;
}

uint64_t
fetch_size(const struct fetch_dest *d)
{
	return d->size;
}

/* Copy up to limit octets of the spool into fd; 0 or -1 with errno. */
static int
copy_spool(struct fetch_dest *d, int fd, uint64_t limit)
{
	char buf[FETCH_BUF_SIZE];
	off_t off = 0;

	while (limit > 0) {
		size_t want = limit < sizeof(buf) ? (size_t)limit : sizeof(buf);
		ssize_t n = pread(d->fd, buf, want, off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		if (n == 0)
			return 0;
		if (fd_write_all(fd, buf, (size_t)n) < 0)
			return -1;
		off += n;
		limit -= (uint64_t)n;
	}
	return 0;
}

/* Empty lines owed before a new From_ line so the old message ends. */
static int
mbox_gap(int fd, off_t size, int *gap_r)
{
	char tail[2];

	*gap_r = 0;
	if (size == 0)
		return 0;
	if (pread(fd, tail, size >= 2 ? 2 : 1, size >= 2 ? size - 2 : 0) < 0)
		return -1;
	if (size >= 2 && tail[0] == '\n' && tail[1] == '\n')
		*gap_r = 0;
	else if (tail[size >= 2 ? 1 : 0] == '\n')
		*gap_r = 1;
	else
		*gap_r = 2;
	return 0;
}

static void
mbox_unlock(struct fetch_dest *d)
{
	mbox_lock_release(&d->lk);
	if (d->mbox_fd >= 0)
		close(d->mbox_fd);
	d->mbox_fd = -1;
}

/*
 * Open and lock the mbox (src/store/mbox_lock.h: the store's dotlock with
 * our pid and fcntl), making sure the path still names the locked file:
 * postinod and some MUAs replace an mbox by rename. *size_r its size.
 * 0; 1 when it does not exist and create is false; -1 with err.
 */
static int
mbox_lock(struct fetch_dest *d, bool create, off_t *size_r, char *err)
{
	struct stat sb;

	for (int tries = 0; tries < 3; tries++) {
		d->mbox_fd = open(d->where, O_RDWR | O_APPEND | O_CLOEXEC |
		    O_NOFOLLOW | O_NOCTTY | O_NONBLOCK | (create ? O_CREAT : 0),
		    0600);
		if (d->mbox_fd < 0) {
			if (!create && errno == ENOENT)
				return 1;
			(void)str_fmt(err, ERR_LEN, "%s: %s", d->where,
			    strerror(errno));
			return -1;
		}
		if (fstat(d->mbox_fd, &sb) < 0 || !S_ISREG(sb.st_mode)) {
			(void)str_fmt(err, ERR_LEN, "%s: not a regular file",
			    d->where);
			mbox_unlock(d);
			return -1;
		}
		if (mbox_lock_wait(&d->lk, d->mbox_fd, FETCH_LOCK_WAIT, err) !=
		    MBOX_LOCK_OK) {
			mbox_unlock(d);
			return -1;
		}
		if (mbox_lock_same_file(d->mbox_fd, d->where) &&
		    fstat(d->mbox_fd, &sb) == 0) {
			*size_r = sb.st_size;
			return 0;
		}
		mbox_unlock(d);
	}
	(void)str_fmt(err, ERR_LEN, "%s keeps being replaced", d->where);
	return -1;
}

/*
 * The octets an append writes, as one sequence: hdr (the empty lines and
 * the From_ line), then the spool, then one "\n". Reads n of them at pos.
 */
struct append_bytes {
	const char	*hdr;
	size_t		 hdr_len;
	uint64_t	 spool_len;
	uint64_t	 len;		/* all of it */
};

static int
append_read(struct fetch_dest *d, const struct append_bytes *ab, uint64_t pos,
    char *buf, size_t n)
{
	while (n > 0) {
		size_t take;

		if (pos < ab->hdr_len) {
			take = ab->hdr_len - (size_t)pos;
			take = take < n ? take : n;
			memcpy(buf, ab->hdr + pos, take);
		} else if (pos < ab->hdr_len + ab->spool_len) {
			uint64_t left = ab->hdr_len + ab->spool_len - pos;
			ssize_t r;

			take = left < n ? (size_t)left : n;
			r = pread(d->fd, buf, take, (off_t)(pos - ab->hdr_len));
			if (r < 0 && errno == EINTR)
				continue;
			if (r <= 0)
				return -1;
			take = (size_t)r;
		} else if (pos < ab->len) {
			*buf = '\n';
			take = 1;
		} else {
			return -1;
		}
		buf += take;
		pos += take;
		n -= take;
	}
	return 0;
}

/* SHA-256 in hex of len octets from fd at off (fd -1: of ab). 0 or -1. */
static int
digest_range(struct fetch_dest *d, const struct append_bytes *ab, int fd,
    uint64_t off, uint64_t len, char hex[FETCH_DIGEST_HEX + 1])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	char buf[FETCH_BUF_SIZE];
	unsigned int mdlen = 0;
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	int rc = -1;

	if (ctx == NULL || EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1)
		goto out;
	for (uint64_t done = 0; done < len;) {
		size_t n = len - done < sizeof(buf) ? (size_t)(len - done) :
		    sizeof(buf);

		if (fd < 0) {
			if (append_read(d, ab, done, buf, n) < 0)
				goto out;
		} else if (fd_pread_all(fd, buf, n, (off_t)(off + done)) < 0) {
			goto out;
		}
		if (EVP_DigestUpdate(ctx, buf, n) != 1)
			goto out;
		done += n;
	}
	if (EVP_DigestFinal_ex(ctx, md, &mdlen) != 1 || mdlen != 32)
		goto out;
	for (unsigned int i = 0; i < mdlen; i++)
		(void)snprintf(hex + 2 * i, 3, "%02x", md[i]);
	rc = 0;
out:
	EVP_MD_CTX_free(ctx);
	return rc;
}

/* Do the n octets of fd at off equal the append's first n? */
static bool
range_is_prefix(struct fetch_dest *d, const struct append_bytes *ab, int fd,
    uint64_t off, uint64_t n)
{
	char a[FETCH_BUF_SIZE / 2], b[FETCH_BUF_SIZE / 2];

	if (n > ab->len)
		return false;
	for (uint64_t done = 0; done < n;) {
		size_t k = n - done < sizeof(a) ? (size_t)(n - done) :
		    sizeof(a);

		if (fd_pread_all(fd, a, k, (off_t)(off + done)) < 0 ||
		    append_read(d, ab, done, b, k) < 0 || memcmp(a, b, k) != 0)
			return false;
		done += k;
	}
	return true;
}

static int
maildir_prepare(struct fetch_dest *d, char *token, size_t size, char *err)
{
	int fd = d->fd, rc = flush(d);

	d->fd = -1;
	if (rc < 0 || fsync(fd) < 0) {
		(void)str_fmt(err, ERR_LEN, "%s/tmp/%s: %s", d->where, d->name,
		    strerror(errno));
		close(fd);
		return -1;
	}
	if (close(fd) < 0) {
		(void)str_fmt(err, ERR_LEN, "%s/tmp/%s: close: %s", d->where,
		    d->name, strerror(errno));
		return -1;
	}
	if (str_fmt(d->final, sizeof(d->final), "%s,S=%llu", d->name,
	    (unsigned long long)d->size) < 0 ||
	    str_fmt(token, size, "maildir %s", d->final) < 0) {
		str_copy(err, ERR_LEN, "file name too long");
		return -1;
	}
	return 0;
}

/* The rename becomes durable with new/ itself, in fetch_sync(). */
static int
maildir_commit(struct fetch_dest *d, char *err)
{
	if (renameat(d->dir_tmp, d->name, d->dir_new, d->final) < 0) {
		(void)str_fmt(err, ERR_LEN, "%s/new/%s: %s", d->where, d->final,
		    strerror(errno));
		return -1;
	}
	d->unsynced = true;
	return 0;
}

static int
mbox_prepare(struct fetch_dest *d, char *token, size_t size, char *err)
{
	struct append_bytes ab;
	char date[64], hex[FETCH_DIGEST_HEX + 1];
	struct stat sb;
	struct tm tm;
	time_t now = time(NULL);

	if (flush(d) < 0 || fstat(d->fd, &sb) < 0) {
		(void)str_fmt(err, ERR_LEN, "temporary file: %s",
		    strerror(errno));
		return -1;
	}
	if (mbox_lock(d, true, &d->old_size, err) < 0)
		return -1;
	localtime_r(&now, &tm);
	/* The asctime(3) form every mbox reader knows. */
	if (strftime(date, sizeof(date), "%a %b %e %H:%M:%S %Y", &tm) == 0 ||
	    mbox_gap(d->mbox_fd, d->old_size, &d->gap) < 0 ||
	    str_fmt(d->from, sizeof(d->from), "%.*sFrom %s %s\n", d->gap,
	    "\n\n", d->sender[0] != '\0' ? d->sender : "MAILER-DAEMON",
	    date) < 0) {
		(void)str_fmt(err, ERR_LEN, "%s: %s", d->where,
		    strerror(errno));
		goto fail;
	}
	ab.hdr = d->from;
	ab.hdr_len = strlen(d->from);
	ab.spool_len = (uint64_t)sb.st_size;
	/*
	 * What recovery needs to prove that octets after the old end are
	 * this append and nothing else: its length and digest, and the
	 * From_ line (the spool holds the rest).
	 */
	if (__builtin_add_overflow(ab.hdr_len + 1, ab.spool_len, &ab.len) ||
	    ab.len > (uint64_t)(INT64_MAX - d->old_size)) {
		str_copy(err, ERR_LEN, "mbox too large");
		goto fail;
	}
	if (digest_range(d, &ab, -1, 0, ab.len, hex) < 0) {
		(void)str_fmt(err, ERR_LEN, "temporary file: %s",
		    strerror(errno));
		goto fail;
	}
	if (str_fmt(token, size, "mbox %lld %llu %s %d %.*s",
	    (long long)d->old_size, (unsigned long long)ab.len, hex, d->gap,
	    (int)(ab.hdr_len - (size_t)d->gap - 1), d->from + d->gap) < 0) {
		str_copy(err, ERR_LEN, "delivery token too long");
		goto fail;
	}
	return 0;
fail:
	mbox_unlock(d);
	return -1;
}

static int
mbox_commit(struct fetch_dest *d, char *err)
{
	int fd = d->mbox_fd, rc = 0;
	uint64_t limit = UINT64_MAX;
	struct stat sb;
	bool ok;

	if (d->kill_append > 0 && ++d->commits == d->kill_append &&
	    fstat(d->fd, &sb) == 0)
		limit = (uint64_t)sb.st_size / 2;
	ok = fd_write_all(fd, d->from, strlen(d->from)) == 0 &&
	    copy_spool(d, fd, limit) == 0;
	if (ok && limit != UINT64_MAX)
		raise(SIGKILL);		/* the test hook: killed half-way */
	if (!ok || fd_write_all(fd, "\n", 1) < 0 || fsync(fd) < 0) {
		(void)str_fmt(err, ERR_LEN, "%s: %s", d->where,
		    strerror(errno));
		/* Take back the partial message: we still hold the locks. */
		if (ftruncate(fd, d->old_size) < 0 || fsync(fd) < 0)
			(void)str_fmt(err, ERR_LEN, "%s: could not truncate "
			    "back to %lld octets: %s", d->where,
			    (long long)d->old_size, strerror(errno));
		rc = -1;
	}
	mbox_unlock(d);
	return rc;
}

/* Signals a terminal or a service manager sends the whole group. */
static const int mda_signals[] = { SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGPIPE };

/* Append v to the command in single quotes, so the shell takes it as is. */
static int
quote_arg(char *dst, size_t size, size_t *o, const char *v)
{
	if (*o + 1 >= size)
		return -1;
	dst[(*o)++] = '\'';
	for (; *v != '\0'; v++) {
		if (*v == '\'') {
			/* ' ends the quote, \' is a quote, ' starts again. */
			if (*o + 4 >= size)
				return -1;
			memcpy(dst + *o, "'\\''", 4);
			*o += 4;
		} else {
			if (*o + 1 >= size)
				return -1;
			dst[(*o)++] = *v;
		}
	}
	if (*o + 1 >= size)
		return -1;
	dst[(*o)++] = '\'';
	return 0;
}

/*
 * The MDA command with %F (the sender from Return-Path, "" when none), %T
 * (the recipient, fetch_set_recipient) and %% expanded, values quoted for
 * /bin/sh: a sender such as "a';rm -rf ~;'" stays one argument. 0 or -1.
 */
static int
mda_command(const struct fetch_dest *d, char *cmd, size_t size)
{
	size_t o = 0;

	for (const char *p = d->where; *p != '\0'; p++) {
		if (*p == '%' && (p[1] == 'F' || p[1] == 'T')) {
			if (quote_arg(cmd, size, &o, p[1] == 'F' ? d->sender :
			    d->recipient) < 0)
				return -1;
			p++;
			continue;
		}
		if (*p == '%' && p[1] == '%')
			p++;
		if (o + 1 >= size)
			return -1;
		cmd[o++] = *p;
	}
	cmd[o] = '\0';
	return 0;
}

/* In a child: the MDA, with the user's umask and default signals. */
static void
mda_exec(struct fetch_dest *d)
{
	for (size_t i = 0; i < sizeof(mda_signals) / sizeof(*mda_signals); i++)
		(void)signal(mda_signals[i], SIG_DFL);
	(void)umask(d->mda_umask);
	if (dup2(d->fd, STDIN_FILENO) < 0)
		_exit(127);
	execl("/bin/sh", "sh", "-c", d->cmd, (char *)NULL);
	_exit(127);
}

static int
wait_child(pid_t pid, int *status, char *err)
{
	while (waitpid(pid, status, 0) < 0) {
		if (errno != EINTR) {
			(void)str_fmt(err, ERR_LEN, "waitpid: %s",
			    strerror(errno));
			return -1;
		}
	}
	return 0;
}

/*
 * With a result file (fetch_set_spool): a supervisor process runs the
 * MDA and writes its wait status to the file, under an flock taken before
 * the fork. It ignores the signals a terminal sends its whole group, so
 * a postino killed in the middle (kill -9, Ctrl-C) leaves the MDA's
 * outcome on disk for the next run, which waits for the lock and reads
 * it: delivered exactly once. Only when the supervisor dies too (a kill
 * of the whole group or cgroup with SIGKILL, a power failure) is the
 * outcome unknown, and the message is delivered again.
 */
static int
mda_supervise(struct fetch_dest *d, int *status, char *err)
{
	char line[FETCH_MDA_RECORD + 1];
	pid_t pid;
	ssize_t n;

	pid = fork();
	if (pid < 0) {
		(void)str_fmt(err, ERR_LEN, "fork: %s", strerror(errno));
		return -1;
	}
	if (pid == 0) {
		pid_t mda;
		int st;

		unsigned int lo = (unsigned int)(d->fd < d->result_fd ? d->fd :
		    d->result_fd), hi = (unsigned int)(d->fd < d->result_fd ?
		    d->result_fd : d->fd);

		for (size_t i = 0; i < sizeof(mda_signals) /
		    sizeof(*mda_signals); i++)
			(void)signal(mda_signals[i], SIG_IGN);
		/*
		 * Only the spool and the result file: the state's lock, the
		 * server's socket and the rest must go with postino.
		 */
		if ((lo > 3 && close_range(3, lo - 1, 0) < 0) ||
		    (hi > lo + 1 && close_range(lo + 1, hi - 1, 0) < 0) ||
		    close_range(hi + 1, ~0U, 0) < 0)
			_exit(1);
		mda = fork();
		if (mda < 0)
			_exit(1);
		if (mda == 0)
			mda_exec(d);
		while (waitpid(mda, &st, 0) < 0)
			if (errno != EINTR)
				_exit(1);
		/*
		 * No fsync: a kill of postino leaves it in the page cache,
		 * which is what this is for; after a power failure an empty
		 * file means "unknown", delivered again (never lost).
		 */
		(void)str_fmt(line, sizeof(line), "status %-*d\n",
		    FETCH_MDA_RECORD - 8, st);
		if (pwrite(d->result_fd, line, FETCH_MDA_RECORD, 0) !=
		    FETCH_MDA_RECORD)
			_exit(1);
		_exit(0);
	}
	if (wait_child(pid, status, err) < 0)
		return -1;
	n = pread(d->result_fd, line, sizeof(line) - 1, 0);
	line[n > 0 ? n : 0] = '\0';
	if (sscanf(line, "status %d", status) != 1) {
		str_copy(err, ERR_LEN, "mda supervisor failed");
		return -1;
	}
	return 0;
}

static int
mda_commit(struct fetch_dest *d, char *err)
{
	int status, rc;
	pid_t pid;

	if (flush(d) < 0 || lseek(d->fd, 0, SEEK_SET) < 0) {
		(void)str_fmt(err, ERR_LEN, "temporary file: %s",
		    strerror(errno));
		return -1;
	}
	if (mda_command(d, d->cmd, sizeof(d->cmd)) < 0) {
		str_copy(err, ERR_LEN, "mda command too long with %F/%T "
		    "expanded");
		return -1;
	}
	if (d->result_fd >= 0) {
		rc = mda_supervise(d, &status, err);
		if (rc < 0)
			return -1;
	} else {
		pid = fork();
		if (pid < 0) {
			(void)str_fmt(err, ERR_LEN, "fork: %s",
			    strerror(errno));
			return -1;
		}
		if (pid == 0)
			mda_exec(d);
		if (wait_child(pid, &status, err) < 0)
			return -1;
	}
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
		return 0;
	if (WIFEXITED(status))
		(void)str_fmt(err, ERR_LEN, "mda failed (exit status %d): %s",
		    WEXITSTATUS(status), d->where);
	else
		(void)str_fmt(err, ERR_LEN, "mda failed (signal %d): %s",
		    WTERMSIG(status), d->where);
	return -1;
}

/*
 * The result file, opened and locked once (after recovery read the last
 * run's), then rewritten in place for each message: a record of fixed
 * length, never truncated (ext4 flushes a file truncated to zero and
 * written again when it is closed, which would cost as much as an fsync).
 * Token "mda wait".
 */
static int
mda_prepare(struct fetch_dest *d, char *token, size_t size, char *err)
{
	char rec[FETCH_MDA_RECORD + 1];

	if (flush(d) < 0) {
		(void)str_fmt(err, ERR_LEN, "temporary file: %s",
		    strerror(errno));
		return -1;
	}
	if (!d->spool_named)
		return str_fmt(token, size, "mda");
	if (d->result_fd < 0) {
		d->result_fd = open(d->result, O_RDWR | O_CREAT | O_CLOEXEC |
		    O_NOFOLLOW, 0600);
		if (d->result_fd < 0 ||
		    flock(d->result_fd, LOCK_EX | LOCK_NB) < 0) {
			(void)str_fmt(err, ERR_LEN, "%s: %s", d->result,
			    strerror(errno));
			if (d->result_fd >= 0)
				close(d->result_fd);
			d->result_fd = -1;
			return -1;
		}
	}
	(void)str_fmt(rec, sizeof(rec), "%-*s\n", FETCH_MDA_RECORD - 1,
	    "unknown");
	if (pwrite(d->result_fd, rec, FETCH_MDA_RECORD, 0) !=
	    FETCH_MDA_RECORD) {
		(void)str_fmt(err, ERR_LEN, "%s: %s", d->result,
		    strerror(errno));
		return -1;
	}
	return str_fmt(token, size, "mda wait");
}

/*
 * "mda wait": the outcome a supervisor wrote (see mda_supervise), once it
 * let go of the lock (bounded wait: it may still be running the MDA).
 */
static int
mda_recover(struct fetch_dest *d, char *err)
{
	char line[32];
	ssize_t n;
	int fd, status, tries = 0;

	if (!d->spool_named)
		return 0;
	fd = open(d->result, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0 && errno != ENOENT) {
		(void)str_fmt(err, ERR_LEN, "%s: %s", d->result,
		    strerror(errno));
		return -1;
	}
	while (fd >= 0 && flock(fd, LOCK_SH | LOCK_NB) < 0) {
		if (errno != EWOULDBLOCK ||
		    ++tries > FETCH_MDA_WAIT * 10) {
			(void)str_fmt(err, ERR_LEN, "%s: the mda of an "
			    "interrupted run is still running (%s)", d->where,
			    errno == EWOULDBLOCK ? "waited too long" :
			    strerror(errno));
			close(fd);
			return -1;
		}
		(void)nanosleep(&(struct timespec){ 0, 100000000L }, NULL);
	}
	n = fd >= 0 ? pread(fd, line, sizeof(line) - 1, 0) : 0;
	if (fd >= 0)
		close(fd);
	line[n > 0 ? n : 0] = '\0';
	if (sscanf(line, "status %d", &status) != 1) {
		(void)str_fmt(err, ERR_LEN, "the last run was interrupted "
		    "while the mda ran and its outcome is unknown; the "
		    "message it was given is delivered again");
		return 2;
	}
	return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 1 : 0;
}

/* LMTP: the spool complete; nothing tells after a kill if it landed. */
static int
lmtp_prepare(struct fetch_dest *d, char *token, size_t size, char *err)
{
	if (flush(d) < 0) {
		(void)str_fmt(err, ERR_LEN, "temporary file: %s",
		    strerror(errno));
		return -1;
	}
	return str_fmt(token, size, "lmtp");
}

int
fetch_prepare(struct fetch_dest *d, char *token, size_t size, char *err)
{
	int rc;

	if (!d->active || d->prepared) {
		str_copy(err, ERR_LEN, "no message to prepare");
		return -1;
	}
	if (d->failed) {
		(void)str_fmt(err, ERR_LEN, "%s: %s", d->where,
		    strerror(d->err_no));
		fetch_abort(d);
		return -1;
	}
	switch (d->kind) {
	case FETCH_MAILDIR:
		rc = maildir_prepare(d, token, size, err);
		break;
	case FETCH_MBOX:
		rc = mbox_prepare(d, token, size, err);
		break;
	case FETCH_LMTP:
		rc = lmtp_prepare(d, token, size, err);
		break;
	default:
		rc = mda_prepare(d, token, size, err);
		break;
	}
	if (rc < 0) {
		fetch_abort(d);
		return -1;
	}
	d->prepared = true;
	return 0;
}

int
fetch_commit(struct fetch_dest *d, char *err)
{
	char token[PATH_MAX + 32];
	int rc;

	if (!d->prepared && fetch_prepare(d, token, sizeof(token), err) < 0)
		return -1;
	switch (d->kind) {
	case FETCH_MAILDIR:
		rc = maildir_commit(d, err);
		if (rc < 0)
			(void)unlinkat(d->dir_tmp, d->name, 0);
		break;
	case FETCH_MBOX:
		rc = mbox_commit(d, err);
		break;
	case FETCH_LMTP:
		rc = deliver_lmtp_send(d->where, d->sender, d->recipient,
		    d->fd, err);
		d->refused = rc > 0;
		rc = rc != 0 ? -1 : 0;
		break;
	default:
		rc = mda_commit(d, err);
		break;
	}
	d->active = d->prepared = false;
	d->used = 0;
	return rc;
}

static int
maildir_recover(struct fetch_dest *d, const char *final, char *err)
{
	char tmpname[PATH_MAX];
	const char *s = strstr(final, ",S=");
	size_t len = strlen(final);
	struct dirent *e;
	DIR *cur;
	int fd, found = 0;

	if (s == NULL || strchr(final, '/') != NULL || final[0] == '.' ||
	    (size_t)(s - final) >= sizeof(tmpname)) {
		str_copy(err, ERR_LEN, "bad pending Maildir delivery");
		return -1;
	}
	memcpy(tmpname, final, (size_t)(s - final));
	tmpname[s - final] = '\0';
	/* Killed between prepare and rename: the file is still in tmp/. */
	(void)unlinkat(d->dir_tmp, tmpname, 0);
	/* Landed, but maybe not durable: fetch_sync() makes sure. */
	d->unsynced = true;
	if (faccessat(d->dir_new, final, F_OK, AT_SYMLINK_NOFOLLOW) == 0)
		return 1;
	/* A reader may have moved it to cur/ and added flags (":2,S"). */
	fd = openat(d->dir_new, "../cur", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0 || (cur = fdopendir(fd)) == NULL) {
		if (fd >= 0)
			close(fd);
		(void)str_fmt(err, ERR_LEN, "%s/cur: %s", d->where,
		    strerror(errno));
		return -1;
	}
	while ((e = readdir(cur)) != NULL && !found)
		found = strncmp(e->d_name, final, len) == 0 &&
		    (e->d_name[len] == '\0' || e->d_name[len] == ':');
	closedir(cur);
	return found;
}

/*
 * Token "OLD LEN DIGEST GAP FROM_LINE" (mbox_prepare). Whatever follows the
 * old end is removed only when it is proven to be a prefix of this very
 * append, octet for octet against the spool (whose length and digest
 * match the token), and nothing else: another program may have appended
 * after a kill, and its mail must survive.
 */
static int
mbox_recover(struct fetch_dest *d, const char *token, char *err)
{
	unsigned long long old, len;
	char hex[FETCH_DIGEST_HEX + 1], got[FETCH_DIGEST_HEX + 1];
	char hdr[sizeof(d->from)];
	struct append_bytes ab = { 0 };
	const char *from;
	bool have_spool = false;
	struct stat sb;
	off_t size;
	int n = -1, gap, rc;

	if (sscanf(token, "%llu %llu %64[0-9a-f] %d %n", &old, &len, hex,
	    &gap, &n) != 4 || n < 0 || strlen(hex) != FETCH_DIGEST_HEX ||
	    gap < 0 || gap > 2 || old > INT64_MAX || len > INT64_MAX - old) {
		str_copy(err, ERR_LEN, "bad pending mbox delivery");
		return -1;
	}
	from = token + n;
	if (strncmp(from, "From ", 5) != 0 ||
	    str_fmt(hdr, sizeof(hdr), "%.*s%s\n", gap, "\n\n", from) < 0 ||
	    len < strlen(hdr) + 1) {
		str_copy(err, ERR_LEN, "bad pending mbox delivery");
		return -1;
	}
	ab.hdr = hdr;
	ab.hdr_len = strlen(hdr);
	ab.spool_len = len - ab.hdr_len - 1;
	ab.len = len;
	if (d->spool_named && fstat(d->fd, &sb) == 0 &&
	    (uint64_t)sb.st_size == ab.spool_len &&
	    digest_range(d, &ab, -1, 0, len, got) == 0 &&
	    strcmp(got, hex) == 0)
		have_spool = true;
	rc = mbox_lock(d, false, &size, err);
	if (rc != 0)
		return rc < 0 ? -1 : 0;	/* no mbox: nothing of it is there */
	if ((unsigned long long)size == old) {
		rc = 0;
	} else if ((unsigned long long)size >= old + len &&
	    digest_range(d, &ab, d->mbox_fd, old, len, got) == 0 &&
	    strcmp(got, hex) == 0) {
		rc = 1;
	} else if ((unsigned long long)size > old &&
	    (unsigned long long)size < old + len && have_spool &&
	    range_is_prefix(d, &ab, d->mbox_fd, old, (uint64_t)size - old)) {
		/* Our partial append and nothing after it: take it back. */
		if (ftruncate(d->mbox_fd, (off_t)old) < 0 ||
		    fsync(d->mbox_fd) < 0) {
			(void)str_fmt(err, ERR_LEN, "%s: truncating a partial "
			    "message: %s", d->where, strerror(errno));
			rc = -1;
		} else {
			rc = 0;
		}
	} else {
		(void)str_fmt(err, ERR_LEN, "%s: a delivery interrupted at "
		    "offset %llu cannot be told apart from what was written "
		    "after it (%lld octets now); the mbox is left as it is "
		    "and the message will be fetched again", d->where, old,
		    (long long)size);
		rc = 2;
	}
	mbox_unlock(d);
	return rc;
}

int
fetch_recover(struct fetch_dest *d, const char *token, char *err)
{
	if (strncmp(token, "maildir ", 8) == 0)
		return d->kind == FETCH_MAILDIR ?
		    maildir_recover(d, token + 8, err) : 0;
	if (strncmp(token, "mbox ", 5) == 0)
		return d->kind == FETCH_MBOX ? mbox_recover(d, token + 5, err) :
		    0;
	if (strcmp(token, "mda") == 0 || strcmp(token, "lmtp") == 0)
		return 0;
	if (strcmp(token, "mda wait") == 0)
		return d->kind == FETCH_MDA ? mda_recover(d, err) : 0;
	str_copy(err, ERR_LEN, "unknown pending delivery in the state file");
	return -1;
}

bool
fetch_refused(const struct fetch_dest *d)
{
	return d->refused;
}

int
fetch_sync(struct fetch_dest *d, char *err)
{
	if (d->kind != FETCH_MAILDIR || !d->unsynced)
		return 0;
	if (fsync(d->dir_new) < 0) {
		(void)str_fmt(err, ERR_LEN, "%s/new: fsync: %s", d->where,
		    strerror(errno));
		return -1;
	}
	d->unsynced = false;
	return 0;
}

void
fetch_abort(struct fetch_dest *d)
{
	if (!d->active)
		return;
	d->active = d->prepared = false;
	d->used = 0;
	if (d->kind == FETCH_MAILDIR) {
		if (d->fd >= 0)
			close(d->fd);
		d->fd = -1;
		(void)unlinkat(d->dir_tmp, d->name, 0);
	}
	mbox_unlock(d);
}

void
fetch_close(struct fetch_dest **d)
{
	if (*d == NULL)
		return;
	fetch_abort(*d);
	/*
	 * Nothing is in flight any more: no copy of the last message stays
	 * behind. (A run killed before this keeps it for recovery.)
	 */
	if ((*d)->spool_named && (*d)->fd >= 0 && ftruncate((*d)->fd, 0) < 0)
		(*d)->err_no = errno;	/* only a stale copy: not worth a failure */
	if ((*d)->fd >= 0)
		close((*d)->fd);
	if ((*d)->result_fd >= 0)
		close((*d)->result_fd);
	if ((*d)->dir_tmp >= 0)
		close((*d)->dir_tmp);
	if ((*d)->dir_new >= 0)
		close((*d)->dir_new);
	free(*d);
	*d = NULL;
}
