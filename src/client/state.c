#include "state.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../lib/fdio.h"
#include "pop3c.h"

struct state {
	char	  dir[PATH_MAX];
	char	  path[PATH_MAX];
	char	  tmp[PATH_MAX];
	char	  spool[PATH_MAX];
	int	  lock_fd;
	size_t	  n, cap;
	char	**ids;		/* sorted, for binary search */
	char	  pending_uid[POP3C_UID_MAX + 1];	/* "" when none */
	char	  pending_token[STATE_TOKEN_MAX + 1];
};

/* Longest key we encode into a file name (3 octets per escaped byte). */
#define STATE_KEY_MAX	200

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
		int c = strcmp(st->ids[mid], uid);

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
insert(struct state *st, const char *uid)
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
		char **v = reallocarray(st->ids, ncap, sizeof(*v));

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
	st->ids[at] = copy;
	st->n++;
	return 0;
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

/* "pending ID TOKEN"; 0 or -1. */
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

static int
load(struct state *st, char *err)
{
	char line[STATE_TOKEN_MAX + POP3C_UID_MAX + 16];
	unsigned long lineno = 0;
	FILE *f = fopen(st->path, "re");

	if (f == NULL) {
		if (errno == ENOENT)
			return 0;
		(void)str_fmt(err, ERR_LEN, "%s: %s", st->path,
		    strerror(errno));
		return -1;
	}
	while (fgets(line, sizeof(line), f) != NULL) {
		size_t len = strlen(line);

		lineno++;
		if (len > 0 && line[len - 1] == '\n')
			line[--len] = '\0';
		else if (!feof(f))
			goto corrupt;
		if (lineno == 1) {
			if (strcmp(line, STATE_MAGIC) != 0)
				goto corrupt;
			continue;
		}
		if (strchr(line, ' ') != NULL) {
			if (parse_pending(st, line) < 0)
				goto corrupt;
			continue;
		}
		if (!pop3c_valid_uid(line, len))
			goto corrupt;
		if (insert(st, line) < 0) {
			(void)str_fmt(err, ERR_LEN, "%s: %s", st->path,
			    strerror(errno));
			fclose(f);
			return -1;
		}
	}
	if (ferror(f)) {
		(void)str_fmt(err, ERR_LEN, "%s: read error", st->path);
		fclose(f);
		return -1;
	}
	fclose(f);
	return 0;
corrupt:
	(void)str_fmt(err, ERR_LEN, "%s: line %lu: corrupt state file "
	    "(fix or remove it; removing fetches every message again)",
	    st->path, lineno);
	fclose(f);
	return -1;
}

int
state_open(struct state **st_r, const char *dir, const char *key, char *err)
{
	struct state *st;
	char name[3 * STATE_KEY_MAX + 1], lock[PATH_MAX];

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
	st->lock_fd = -1;
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
	if (load(st, err) < 0)
		goto fail;
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

int
state_save(struct state *st, char *err)
{
	char buf[65536];
	size_t used = 0;
	int fd, dfd;

	fd = open(st->tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC |
	    O_NOFOLLOW, 0600);
	if (fd < 0)
		goto fail;
	memcpy(buf, STATE_MAGIC "\n", sizeof(STATE_MAGIC));
	used = sizeof(STATE_MAGIC);
	if (st->pending_uid[0] != '\0') {
		int n = snprintf(buf + used, sizeof(buf) - used,
		    "pending %s %s\n", st->pending_uid, st->pending_token);

		if (n < 0 || (size_t)n >= sizeof(buf) - used) {
			errno = ENAMETOOLONG;
			goto fail_fd;
		}
		used += (size_t)n;
	}
	for (size_t i = 0; i < st->n; i++) {
		size_t len = strlen(st->ids[i]);

		if (used + len + 1 > sizeof(buf)) {
			if (fd_write_all(fd, buf, used) < 0)
				goto fail_fd;
			used = 0;
		}
		memcpy(buf + used, st->ids[i], len);
		buf[used + len] = '\n';
		used += len + 1;
	}
	if (fd_write_all(fd, buf, used) < 0 || fsync(fd) < 0)
		goto fail_fd;
	if (close(fd) < 0) {
		fd = -1;
		goto fail_fd;
	}
	if (rename(st->tmp, st->path) < 0)
		goto fail;
	/* The rename is durable only once the directory is. */
	dfd = open(st->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0 || fsync(dfd) < 0) {
		if (dfd >= 0)
			close(dfd);
		goto fail;
	}
	close(dfd);
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

int
state_add(struct state *st, const char *uid, char *err)
{
	if (!pop3c_valid_uid(uid, strlen(uid))) {
		str_copy(err, ERR_LEN, "invalid message id");
		return -1;
	}
	if (insert(st, uid) < 0) {
		(void)str_fmt(err, ERR_LEN, "%s: %s", st->path,
		    strerror(errno));
		return -1;
	}
	if (strcmp(st->pending_uid, uid) == 0)
		st->pending_uid[0] = st->pending_token[0] = '\0';
	return state_save(st, err);
}

int
state_set_pending(struct state *st, const char *uid, const char *token,
    char *err)
{
	if (!pop3c_valid_uid(uid, strlen(uid)) || !valid_token(token)) {
		str_copy(err, ERR_LEN, "invalid pending delivery");
		return -1;
	}
	str_copy(st->pending_uid, sizeof(st->pending_uid), uid);
	str_copy(st->pending_token, sizeof(st->pending_token), token);
	return state_save(st, err);
}

int
state_clear_pending(struct state *st, char *err)
{
	st->pending_uid[0] = st->pending_token[0] = '\0';
	return state_save(st, err);
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
		if (keep(st->ids[i], arg))
			st->ids[o++] = st->ids[i];
		else
			free(st->ids[i]);
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
		free((*st)->ids[i]);
	free((*st)->ids);
	if ((*st)->lock_fd >= 0)
		close((*st)->lock_fd);
	free(*st);
	*st = NULL;
}
