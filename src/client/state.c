#include "state.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../lib/fdio.h"
#include "pop3c.h"

struct state_id {
	char		*uid;
	long long	 seen;		/* first seen, Unix seconds */
};

struct state {
	char		  dir[PATH_MAX];
	char		  path[PATH_MAX];
	char		  tmp[PATH_MAX];
	char		  spool[PATH_MAX];
	int		  lock_fd;
	int		  fd;		/* the journal, O_APPEND; -1 until open */
	size_t		  records;	/* lines in the journal */
	bool		  dirty;	/* records written since the last fsync */
	size_t		  n, cap;
	struct state_id	 *ids;		/* sorted, for binary search */
	char		  pending_uid[POP3C_UID_MAX + 1];	/* "" when none */
	char		  pending_token[STATE_TOKEN_MAX + 1];
};


int
state_default_dir(char *dir, size_t size, char *err)
{
	const char *x = getenv("XDG_STATE_HOME"), *home = getenv("HOME");

	/* XDG Base Directory: a relative value is invalid and ignored. */
	if (x != NULL && x[0] == '/') {
		if (str_fmt(dir, size, "%s/postino", x) < 0)
			goto toolong;
		return 0;
	}
	if (home == NULL || home[0] != '/') {
		str_copy(err, ERR_LEN, "HOME is not set: cannot find the "
		    "state directory");
		return -1;
	}
	if (str_fmt(dir, size, "%s/.local/state/postino", home) < 0)
		goto toolong;
	return 0;
toolong:
	str_copy(err, ERR_LEN, "state directory path too long");
	return -1;
}

/* mkdir -p with mode 0700 for what it creates. */
static int
mkdirs(const char *dir, char *err)
{
	char p[PATH_MAX];

	if (str_copy(p, sizeof(p), dir) < 0) {
		str_copy(err, ERR_LEN, "path too long");
		return -1;
	}
	for (char *s = p + 1;; s++) {
		bool end = *s == '\0';

		if (*s != '/' && !end)
			continue;
		*s = '\0';
		if (mkdir(p, 0700) < 0 && errno != EEXIST) {
			(void)str_fmt(err, ERR_LEN, "mkdir %s: %s", p,
			    strerror(errno));
			return -1;
		}
		if (end)
			return 0;
		*s = '/';
	}
}

/* Keep [A-Za-z0-9._@+-], write the rest as %XX: a safe, 1:1 file name. */
static int
encode_key(char *dst, size_t size, const char *key)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t o = 0, len = strlen(key);

	if (len == 0 || len > STATE_KEY_MAX)
		return -1;
	for (size_t i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)key[i];
		bool plain = (ch >= 'a' && ch <= 'z') ||
		    (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
		    ch == '_' || ch == '@' || ch == '+' || ch == '-' ||
		    (ch == '.' && i > 0);

		if (o + 4 > size)
			return -1;
		if (plain) {
			dst[o++] = (char)ch;
		} else {
			dst[o++] = '%';
			dst[o++] = hex[ch >> 4];
			dst[o++] = hex[ch & 15];
		}
	}
	dst[o] = '\0';
	return 0;
}

/* Index of uid, or where it would go (*found_r false). */
static size_t
find(const struct state *st, const char *uid, bool *found_r)
{
	size_t lo = 0, hi = st->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(st->ids[mid].uid, uid);

		if (c == 0) {
			*found_r = true;
			return mid;
		}
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	*found_r = false;
	return lo;
}

/* Insert without saving. 0, or -1 (out of memory or too many ids). */
static int
insert(struct state *st, const char *uid, long long seen)
{
	bool found;
	size_t at = find(st, uid, &found);
	char *copy;

	if (found)
		return 0;
	if (st->n >= POP3C_MESSAGES_MAX) {
		errno = EFBIG;
		return -1;
	}
	if (st->n == st->cap) {
		size_t ncap = st->cap == 0 ? 64 : st->cap * 2;
		struct state_id *v = reallocarray(st->ids, ncap, sizeof(*v));

		if (v == NULL)
			return -1;
		st->ids = v;
		st->cap = ncap;
	}
	copy = strdup(uid);
	if (copy == NULL)
		return -1;
	memmove(st->ids + at + 1, st->ids + at,
	    (st->n - at) * sizeof(*st->ids));
	st->ids[at].uid = copy;
	st->ids[at].seen = seen;
	st->n++;
	return 0;
}

static void
forget(struct state *st, const char *uid)
{
	bool found;
	size_t at = find(st, uid, &found);

	if (!found)
		return;
	free(st->ids[at].uid);
	memmove(st->ids + at, st->ids + at + 1,
	    (st->n - at - 1) * sizeof(*st->ids));
	st->n--;
}

static bool
valid_token(const char *s)
{
	if (strlen(s) > STATE_TOKEN_MAX)
		return false;
	for (; *s != '\0'; s++)
		if (*s < 0x20 || *s > 0x7e)
			return false;
	return true;
}

/* "pending ID TOKEN" (format 1); 0 or -1. */
static int
parse_pending(struct state *st, char *line)
{
	char *id, *sp;

	if (strncmp(line, "pending ", 8) != 0 || st->pending_uid[0] != '\0')
		return -1;
	id = line + 8;
	sp = strchr(id, ' ');
	if (sp == NULL)
		return -1;
	*sp = '\0';
	if (!pop3c_valid_uid(id, strlen(id)) || !valid_token(sp + 1))
		return -1;
	str_copy(st->pending_uid, sizeof(st->pending_uid), id);
	str_copy(st->pending_token, sizeof(st->pending_token), sp + 1);
	return 0;
}

/* Format 1: one id per line, at most one "pending ID TOKEN". */
static int
load_v1_line(struct state *st, char *line, size_t len, long long now)
{
	if (strchr(line, ' ') != NULL)
		return parse_pending(st, line);
	if (!pop3c_valid_uid(line, len))
		return -1;
	return insert(st, line, now) < 0 ? -2 : 0;
}

/* Format 2: one journal record (see state.h). 0, -1 corrupt, -2 errno. */
static int
load_v2_line(struct state *st, char *line)
{
	char *uid = line + 1, *arg = strchr(uid, ' ');
	uint64_t seen = 0;

	if (arg != NULL)
		*arg++ = '\0';
	if (!pop3c_valid_uid(uid, strlen(uid)))
		return -1;
	switch (line[0]) {
	case '+':
		if (arg == NULL || str_parse_u64(arg, &seen) < 0 ||
		    seen > INT64_MAX)
			return -1;
		if (strcmp(st->pending_uid, uid) == 0)
			st->pending_uid[0] = st->pending_token[0] = '\0';
		return insert(st, uid, (long long)seen) < 0 ? -2 : 0;
	case '-':
		if (arg != NULL)
			return -1;
		forget(st, uid);
		return 0;
	case '?':
		if (arg == NULL || !valid_token(arg))
			return -1;
		str_copy(st->pending_uid, sizeof(st->pending_uid), uid);
		str_copy(st->pending_token, sizeof(st->pending_token), arg);
		return 0;
	case '~':
		if (arg != NULL)
			return -1;
		if (strcmp(st->pending_uid, uid) == 0)
			st->pending_uid[0] = st->pending_token[0] = '\0';
		return 0;
	default:
		return -1;
	}
}

/*
 * Read the file. A last line without its newline is a record torn by a
 * crash: ignored, and *good_r (the octets up to it) lets the caller cut
 * it off before appending. Any other bad line is corruption.
 * 1 to be written afresh (no file, or format 1), 0 format 2, -1 error.
 */
static int
load(struct state *st, off_t *good_r, char *err)
{
	char line[STATE_TOKEN_MAX + POP3C_UID_MAX + 16];
	unsigned long lineno = 0;
	long long now = (long long)time(NULL);
	int version = 2, rc;
	FILE *f = fopen(st->path, "re");

	*good_r = 0;
	if (f == NULL) {
		if (errno == ENOENT)
			return 1;
		(void)str_fmt(err, ERR_LEN, "%s: %s", st->path,
		    strerror(errno));
		return -1;
	}
	while (fgets(line, sizeof(line), f) != NULL) {
		size_t len = strlen(line);

		lineno++;
		if (len > 0 && line[len - 1] == '\n') {
			line[--len] = '\0';
		} else if (!feof(f)) {
			goto corrupt;
		} else if (version == 2) {
			/* Torn by a crash; at the start only the magic can be. */
			if (lineno == 1 && strncmp(line, STATE_MAGIC, len) != 0)
				goto corrupt;
			break;
		}
		if (lineno == 1) {
			if (strcmp(line, STATE_MAGIC_V1) == 0)
				version = 1;
			else if (strcmp(line, STATE_MAGIC) != 0)
				goto corrupt;
		} else {
			rc = version == 1 ? load_v1_line(st, line, len, now) :
			    len < 2 ? -1 : load_v2_line(st, line);
			if (rc == -1)
				goto corrupt;
			if (rc == -2) {
				(void)str_fmt(err, ERR_LEN, "%s: %s",
				    st->path, strerror(errno));
				fclose(f);
				return -1;
			}
		}
		st->records++;
		*good_r = ftello(f);
	}
	if (ferror(f)) {
		(void)str_fmt(err, ERR_LEN, "%s: read error", st->path);
		fclose(f);
		return -1;
	}
	fclose(f);
	/* An empty file, or only a torn first line: a crash at creation. */
	if (lineno == 0 || *good_r == 0)
		return 1;
	return version == 1 ? 1 : 0;
corrupt:
	(void)str_fmt(err, ERR_LEN, "%s: line %lu: corrupt state file "
	    "(fix or remove it; removing fetches every message again)",
	    st->path, lineno);
	fclose(f);
	return -1;
}

/* Open the journal for appending, cut after its last whole record. */
static int
open_journal(struct state *st, off_t good, char *err)
{
	st->fd = open(st->path, O_WRONLY | O_APPEND | O_CLOEXEC | O_NOFOLLOW);
	if (st->fd < 0 || ftruncate(st->fd, good) < 0) {
		(void)str_fmt(err, ERR_LEN, "%s: %s", st->path,
		    strerror(errno));
		return -1;
	}
	return 0;
}

int
state_open(struct state **st_r, const char *dir, const char *key, char *err)
{
	struct state *st;
	char name[3 * STATE_KEY_MAX + 1], lock[PATH_MAX];
	off_t good;
	int rc;

	*st_r = NULL;
	if (encode_key(name, sizeof(name), key) < 0) {
		str_copy(err, ERR_LEN,
		    "account name too long for a state file");
		return -1;
	}
	st = calloc(1, sizeof(*st));
	if (st == NULL) {
		str_copy(err, ERR_LEN, "out of memory");
		return -1;
	}
	st->lock_fd = st->fd = -1;
	if (str_copy(st->dir, sizeof(st->dir), dir) < 0 ||
	    str_fmt(st->path, sizeof(st->path), "%s/%s", dir, name) < 0 ||
	    str_fmt(st->tmp, sizeof(st->tmp), "%s/.%s.tmp", dir, name) < 0 ||
	    str_fmt(st->spool, sizeof(st->spool), "%s/.%s.spool", dir,
	    name) < 0 ||
	    str_fmt(lock, sizeof(lock), "%s/.%s.lock", dir, name) < 0) {
		str_copy(err, ERR_LEN, "state path too long");
		goto fail;
	}
	if (mkdirs(dir, err) < 0)
		goto fail;
	st->lock_fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW,
	    0600);
	if (st->lock_fd < 0) {
		(void)str_fmt(err, ERR_LEN, "%s: %s", lock, strerror(errno));
		goto fail;
	}
	/* flock: released by the kernel if we are killed. */
	if (flock(st->lock_fd, LOCK_EX | LOCK_NB) < 0) {
		if (errno == EWOULDBLOCK) {
			(void)str_fmt(err, ERR_LEN, "another postino is "
			    "fetching this account (lock %s)", lock);
			state_close(&st);
			return 1;
		}
		(void)str_fmt(err, ERR_LEN, "lock %s: %s", lock,
		    strerror(errno));
		goto fail;
	}
	st->fd = -1;
	if ((rc = load(st, &good, err)) < 0)
		goto fail;
	/*
	 * A new or old-format file is written afresh; a journal that grew
	 * well past its live records is compacted.
	 */
	if (rc == 1 && st->n == 0 && st->pending_uid[0] == '\0') {
		/* Written with the first record: a failed run leaves none. */
	} else if (rc == 1 || st->records > 2 * st->n + STATE_COMPACT_SLACK) {
		if (state_save(st, err) < 0)
			goto fail;
	} else if (open_journal(st, good, err) < 0) {
		goto fail;
	}
	*st_r = st;
	return 0;
fail:
	state_close(&st);
	return -1;
}

const char *
state_path(const struct state *st)
{
	return st->path;
}

const char *
state_spool_path(const struct state *st)
{
	return st->spool;
}

size_t
state_count(const struct state *st)
{
	return st->n;
}

bool
state_has(const struct state *st, const char *uid)
{
	bool found;

	(void)find(st, uid, &found);
	return found;
}

/*
 * Write the live records to a new file (fsync, rename, fsync the
 * directory) and append to it from now on: compaction.
 */
int
state_save(struct state *st, char *err)
{
	char buf[65536];
	size_t used;
	int fd, dfd, n;

	fd = open(st->tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC |
	    O_NOFOLLOW, 0600);
	if (fd < 0)
		goto fail;
	memcpy(buf, STATE_MAGIC "\n", sizeof(STATE_MAGIC));
	used = sizeof(STATE_MAGIC);
	st->records = 0;
	for (size_t i = 0; i <= st->n; i++) {
		if (i < st->n)
			n = snprintf(buf + used, sizeof(buf) - used,
			    "+%s %lld\n", st->ids[i].uid, st->ids[i].seen);
		else if (st->pending_uid[0] != '\0')
			n = snprintf(buf + used, sizeof(buf) - used,
			    "?%s %s\n", st->pending_uid, st->pending_token);
		else
			break;
		if (n < 0 || (size_t)n >= sizeof(buf) - used) {
			/* A record is far below the buffer: flush, retry. */
			if (used == 0 || fd_write_all(fd, buf, used) < 0)
				goto fail_fd;
			used = 0;
			i--;
			continue;
		}
		used += (size_t)n;
		st->records++;
	}
	if (fd_write_all(fd, buf, used) < 0 || fsync(fd) < 0)
		goto fail_fd;
	if (rename(st->tmp, st->path) < 0)
		goto fail_fd;
	/* The rename is durable only once the directory is. */
	dfd = open(st->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0 || fsync(dfd) < 0) {
		if (dfd >= 0)
			close(dfd);
		goto fail_fd;
	}
	close(dfd);
	if (st->fd >= 0)
		close(st->fd);
	/* The descriptor we wrote is the journal now (O_APPEND from here). */
	if (fcntl(fd, F_SETFL, O_APPEND) < 0) {
		st->fd = -1;
		goto fail_fd;
	}
	st->fd = fd;
	st->dirty = false;
	return 0;
fail_fd:
	if (fd >= 0) {
		int e = errno;

		close(fd);
		errno = e;
	}
fail:
	(void)str_fmt(err, ERR_LEN, "saving %s: %s", st->path,
	    strerror(errno));
	(void)unlink(st->tmp);
	return -1;
}

/* Append one record: one write(2), so a kill leaves it whole or absent. */
static int
append(struct state *st, char *err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int
append(struct state *st, char *err, const char *fmt, ...)
{
	char rec[STATE_TOKEN_MAX + POP3C_UID_MAX + 16];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(rec, sizeof(rec), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(rec)) {
		str_copy(err, ERR_LEN, "state record too long");
		return -1;
	}
	if (st->fd < 0 && state_save(st, err) < 0)
		return -1;
	if (fd_write_all(st->fd, rec, (size_t)n) < 0) {
		(void)str_fmt(err, ERR_LEN, "%s: %s", st->path,
		    strerror(errno));
		return -1;
	}
	st->records++;
	st->dirty = true;
	return 0;
}

int
state_sync(struct state *st, char *err)
{
	if (!st->dirty)
		return 0;
	if (fsync(st->fd) < 0) {
		(void)str_fmt(err, ERR_LEN, "%s: fsync: %s", st->path,
		    strerror(errno));
		return -1;
	}
	st->dirty = false;
	return 0;
}

int
state_add(struct state *st, const char *uid, char *err)
{
	long long now = (long long)time(NULL);

	if (!pop3c_valid_uid(uid, strlen(uid))) {
		str_copy(err, ERR_LEN, "invalid message id");
		return -1;
	}
	if (state_has(st, uid))
		return 0;
	if (append(st, err, "+%s %lld\n", uid, now) < 0)
		return -1;
	if (insert(st, uid, now) < 0) {
		(void)str_fmt(err, ERR_LEN, "%s: %s", st->path,
		    strerror(errno));
		return -1;
	}
	if (strcmp(st->pending_uid, uid) == 0)
		st->pending_uid[0] = st->pending_token[0] = '\0';
	return 0;
}

int
state_set_pending(struct state *st, const char *uid, const char *token,
    char *err)
{
	if (!pop3c_valid_uid(uid, strlen(uid)) || !valid_token(token)) {
		str_copy(err, ERR_LEN, "invalid pending delivery");
		return -1;
	}
	if (append(st, err, "?%s %s\n", uid, token) < 0)
		return -1;
	str_copy(st->pending_uid, sizeof(st->pending_uid), uid);
	str_copy(st->pending_token, sizeof(st->pending_token), token);
	return 0;
}

int
state_clear_pending(struct state *st, char *err)
{
	if (st->pending_uid[0] == '\0')
		return 0;
	if (append(st, err, "~%s\n", st->pending_uid) < 0)
		return -1;
	st->pending_uid[0] = st->pending_token[0] = '\0';
	return 0;
}

long long
state_first_seen(const struct state *st, const char *uid)
{
	bool found;
	size_t at = find(st, uid, &found);

	return found ? st->ids[at].seen : -1;
}

const char *
state_pending_uid(const struct state *st)
{
	return st->pending_uid[0] != '\0' ? st->pending_uid : NULL;
}

const char *
state_pending_token(const struct state *st)
{
	return st->pending_uid[0] != '\0' ? st->pending_token : NULL;
}

size_t
state_prune(struct state *st, bool (*keep)(const char *uid, void *arg),
    void *arg)
{
	size_t o = 0, dropped;

	for (size_t i = 0; i < st->n; i++) {
		if (keep(st->ids[i].uid, arg))
			st->ids[o++] = st->ids[i];
		else
			free(st->ids[i].uid);
	}
	dropped = st->n - o;
	st->n = o;
	return dropped;
}

void
state_close(struct state **st)
{
	if (*st == NULL)
		return;
	for (size_t i = 0; i < (*st)->n; i++)
		free((*st)->ids[i].uid);
	free((*st)->ids);
	if ((*st)->fd >= 0)
		close((*st)->fd);
	if ((*st)->lock_fd >= 0)
		close((*st)->lock_fd);
	free(*st);
	*st = NULL;
}
