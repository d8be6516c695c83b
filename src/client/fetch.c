/*
 * What every destination kind needs (fetch.h): the buffer, the spool,
 * the sender and the start of each line; the kinds themselves are tables
 * of operations (deliver.h), one file each.
 */
#include "fetch.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../lib/fdio.h"
#include "deliver.h"

/* Indexed by enum fetch_kind. */
static const struct deliver_ops *const deliver_kinds[] = {
	[FETCH_MAILDIR] = &deliver_maildir_ops,
	[FETCH_MBOX] = &deliver_mbox_ops,
	[FETCH_MDA] = &deliver_mda_ops,
	[FETCH_LMTP] = &deliver_lmtp_ops,
};

int
deliver_flush(struct fetch_dest *d)
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
		if (deliver_flush(d) < 0)
			return -1;
		if (len > sizeof(d->buf))
			return fd_write_all(d->fd, data, len);
	}
	memcpy(d->buf + d->used, data, len);
	d->used += len;
	return 0;
}

/* An unlinked temporary file: every kind spools (deliver.h). */
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

int
fetch_open(struct fetch_dest **d_r, enum fetch_kind kind, const char *where,
    char *err)
{
	struct fetch_dest *d = calloc(1, sizeof(*d));

	*d_r = NULL;
	if (d == NULL) {
		str_copy(err, ERR_LEN, "out of memory");
		return -1;
	}
	d->kind = kind;
	d->ops = deliver_kinds[kind];
	d->fd = d->result_fd = -1;
	d->mda_umask = 022;
	if (str_copy(d->where, sizeof(d->where), where) < 0) {
		str_copy(err, ERR_LEN, "path too long");
		goto fail;
	}
	if ((d->fd = open_spool(err)) < 0)
		goto fail;
	if (d->ops->open != NULL && d->ops->open(d, err) < 0)
		goto fail;
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
	if (ftruncate(d->fd, 0) < 0 || lseek(d->fd, 0, SEEK_SET) < 0) {
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

/*
 * mbox and MDA: a header line's start may name the sender (the From_ line,
 * %F), so gather up to FETCH_HEAD_MAX octets of it first, whatever the
 * pieces. (The mbox's quoting is the store's, at the append.)
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
	/* In the header, the sender: mbox's From_ line, MDA's %F, LMTP. */
	if (d->bol && d->in_header) {
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

int
deliver_copy_spool(struct fetch_dest *d, int fd, uint64_t limit)
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

int
deliver_rewind_spool(struct fetch_dest *d, char *err)
{
	if (deliver_flush(d) < 0 || lseek(d->fd, 0, SEEK_SET) < 0) {
		(void)str_fmt(err, ERR_LEN, "temporary file: %s",
		    strerror(errno));
		return -1;
	}
	return 0;
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
	rc = d->ops->prepare(d, token, size, err);
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
	rc = d->ops->commit(d, err);
	d->active = d->prepared = false;
	d->used = 0;
	return rc;
}

/*
 * The token's first word names the kind that wrote it; a token of another
 * kind than this destination's (the destination changed since) did not
 * land here: 0, fetched again.
 */
int
fetch_recover(struct fetch_dest *d, const char *token, char *err)
{
	for (size_t i = 0; i < sizeof(deliver_kinds) / sizeof(*deliver_kinds);
	    i++) {
		const struct deliver_ops *k = deliver_kinds[i];
		size_t n = strlen(k->name);

		if (strncmp(token, k->name, n) != 0 ||
		    (token[n] != '\0' && token[n] != ' '))
			continue;
		if (k != d->ops)
			return 0;
		return k->recover(d, token[n] == ' ' ? token + n + 1 : "", err);
	}
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
	return d->ops->sync != NULL ? d->ops->sync(d, err) : 0;
}

void
fetch_abort(struct fetch_dest *d)
{
	if (!d->active)
		return;
	d->active = d->prepared = false;
	d->used = 0;
	if (d->ops->abort != NULL)
		d->ops->abort(d);
}

void
fetch_close(struct fetch_dest **d)
{
	if (*d == NULL)
		return;
	fetch_abort(*d);
	if ((*d)->ops->close != NULL)
		(*d)->ops->close(*d);
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
	free(*d);
	*d = NULL;
}
