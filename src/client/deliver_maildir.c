/*
 * Delivery into a Maildir (fetch.h): tmp/ with O_EXCL, fsync, rename
 * into new/; new/ fsynced once per batch (fetch_sync).
 */
#include "deliver.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

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

static int
maildir_prepare(struct fetch_dest *d, char *token, size_t size, char *err)
{
	int fd = d->fd, rc = deliver_flush(d);

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
		(void)unlinkat(d->dir_tmp, d->name, 0);
		return -1;
	}
	d->unsynced = true;
	return 0;
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

/* The Maildir and its three directories, created (0700) if missing. */
static int
maildir_open(struct fetch_dest *d, char *err)
{
	int top = open_dir(d->where, "", err), dcur;

	if (top < 0)
		return -1;
	close(top);
	d->dir_tmp = open_dir(d->where, "tmp", err);
	d->dir_new = d->dir_tmp < 0 ? -1 : open_dir(d->where, "new", err);
	dcur = d->dir_new < 0 ? -1 : open_dir(d->where, "cur", err);
	if (dcur < 0)
		return -1;
	close(dcur);
	maildir_host(d->host, sizeof(d->host));
	maildir_clean_tmp(d);
	return 0;
}

/* A new file in tmp/. Unique: time, microseconds, pid, a counter. */
static int
maildir_begin(struct fetch_dest *d, char *err)
{
	struct timeval tv;

	for (int tries = 0;; tries++) {
		gettimeofday(&tv, NULL);
		if (str_fmt(d->name, sizeof(d->name), "%lld.M%06ldP%ldQ%u.%s",
		    (long long)tv.tv_sec, (long)tv.tv_usec, (long)getpid(),
		    ++d->seq, d->host) < 0) {
			str_copy(err, ERR_LEN, "file name too long");
			return -1;
		}
		d->fd = openat(d->dir_tmp, d->name, O_WRONLY | O_CREAT |
		    O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
		if (d->fd >= 0)
			return 0;
		/* O_EXCL checks; a clash is retried with a new counter. */
		if (errno != EEXIST || tries == 10) {
			(void)str_fmt(err, ERR_LEN, "%s/tmp/%s: %s", d->where,
			    d->name, strerror(errno));
			return -1;
		}
	}
}

static int
maildir_sync(struct fetch_dest *d, char *err)
{
	if (!d->unsynced)
		return 0;
	if (fsync(d->dir_new) < 0) {
		(void)str_fmt(err, ERR_LEN, "%s/new: fsync: %s", d->where,
		    strerror(errno));
		return -1;
	}
	d->unsynced = false;
	return 0;
}

static void
maildir_abort(struct fetch_dest *d)
{
	if (d->fd >= 0)
		close(d->fd);
	d->fd = -1;
	(void)unlinkat(d->dir_tmp, d->name, 0);
}

const struct deliver_ops deliver_maildir_ops = {
	.name = "maildir",
	.open = maildir_open,
	.begin = maildir_begin,
	.prepare = maildir_prepare,
	.commit = maildir_commit,
	.recover = maildir_recover,
	.sync = maildir_sync,
	.abort = maildir_abort,
};
