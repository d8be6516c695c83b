/*
 * Delivery into an mbox (fetch.h): mboxrd, appended under the store's
 * locks (src/store/mbox_lock.h), proven or taken back after a kill.
 */
#include "deliver.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "../lib/fdio.h"

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
mbox_prepare(struct fetch_dest *d, char *token, size_t size, char *err)
{
	struct append_bytes ab;
	char date[64], hex[FETCH_DIGEST_HEX + 1];
	struct stat sb;
	struct tm tm;
	time_t now = time(NULL);

	if (deliver_flush(d) < 0 || fstat(d->fd, &sb) < 0) {
		(void)str_fmt(err, ERR_LEN, "temporary file: %s",
		    strerror(errno));
		return -1;
	}
	if (mbox_lock(d, true, &d->old_size, err) < 0)
		return -1;
	localtime_r(&now, &tm);
	/* The asctime(3) form every mbox reader knows. */
	if (strftime(date, sizeof(date), "%a %b %e %H:%M:%S %Y", &tm) == 0 ||
	    (d->gap = mbox_gap(d->mbox_fd, d->old_size)) < 0 ||
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

#ifdef POSTINO_TEST_HOOKS
	/* Test builds only: killed half-way through the Nth append. */
	if (d->kill_append > 0 && ++d->commits == d->kill_append &&
	    fstat(d->fd, &sb) == 0)
		limit = (uint64_t)sb.st_size / 2;
#else
	(void)sb;
#endif
	ok = fd_write_all(fd, d->from, strlen(d->from)) == 0 &&
	    deliver_copy_spool(d, fd, limit) == 0;
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

static int
mbox_open(struct fetch_dest *d, char *err)
{
	return mbox_lock_init(&d->lk, d->where, FETCH_DOTLOCK_STALE, err);
}

const struct deliver_ops deliver_mbox_ops = {
	.name = "mbox",
	.spooled = true,
	.escape_from = true,
	.open = mbox_open,
	.prepare = mbox_prepare,
	.commit = mbox_commit,
	.recover = mbox_recover,
	.abort = mbox_unlock,
};
