/*
 * Maildir backend.
 *
 * open moves new/ into cur/ (as "<name>:2,"), scans cur/ once and sorts by
 * the delivery time leading the name, then by name. Sizes come from ",W=" in
 * the name (our deliveries, Dovecot), else from the size cache
 * <maildir>/postino-sizes ("<base name> <crlf size>\n" per line), else from
 * reading the file once; newly computed sizes are written back to the cache.
 *
 * UIDL: the one Dovecot or Courier gave the message when it served this
 * Maildir before (maildir_uidlist.h); else the base name (before ':') when
 * it is 1..70 characters in 0x21..0x7E; otherwise "x" followed by the
 * lower-case hex of the first 16 bytes of the SHA-256 of the base name,
 * which is stable as long as the name is.
 */
#include "store.h"
#include "store_lock.h"
#include "maildir_uidlist.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "../lib/crlf.h"
#include "../lib/log.h"

#define MD_LOCK_NAME	"postino-session.lock"
#define MD_CACHE_NAME	"postino-sizes"
#define MD_CACHE_TMP	"postino-sizes.tmp"
/* Base name, space, 20 digits, LF, NUL, with room to spot over-long lines. */
#define MD_CACHE_LINE	(NAME_MAX + 32)
/* 100,000 messages with long names fit in a few MB; more is not a cache. */
#define MD_CACHE_MAX	(64 * 1024 * 1024)
/* Derived UIDL: "x" + hex of this many bytes of SHA-256. */
#define MD_UIDL_HASH	16

enum md_size_src {
	MD_SIZE_W,		/* from ",W=" in the name: never cached */
	MD_SIZE_CACHE,
	MD_SIZE_READ,
};

struct md_msg {
	char		*name;		/* current name in cur/ */
	size_t		 baselen;	/* bytes before ':' */
	uint64_t	 stamp;		/* leading number: delivery time */
	uint64_t	 size;
	enum md_size_src src;
};

struct md_cache_ent {
	char		*base;
	uint64_t	 size;
	bool		 used;
};

struct maildir {
	char		 path[PATH_MAX];
	int		 lock_fd;
	int		 cur_fd;
	struct md_msg	*msgs;
	unsigned int	 count;
	size_t		 cap;
	struct md_cache_ent *cache;
	size_t		 ncache;
	bool		 cache_dirty;
	unsigned char	*iobuf;
	struct maildir_uidlist *legacy;	/* UIDLs of the previous server */
};

struct md_reader {
	int		 fd;
};

static bool
md_printable(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		if ((unsigned char)s[i] < 0x21 || (unsigned char)s[i] > 0x7e)
			return false;
	}
	return true;
}

static size_t
md_baselen(const char *name)
{
	const char *colon = strchr(name, ':');

	return colon != NULL ? (size_t)(colon - name) : strlen(name);
}

static uint64_t
md_stamp(const char *name)
{
	uint64_t v = 0;

	for (; *name >= '0' && *name <= '9'; name++) {
		if (__builtin_mul_overflow(v, 10, &v) ||
		    __builtin_add_overflow(v, (uint64_t)(*name - '0'), &v))
			return UINT64_MAX;
	}
	return v;
}

/*
 * The value of ",<key>=<digits>" in the first len bytes of name; 0, or -1
 * when absent or not a strict number.
 */
static int
md_name_field(const char *name, size_t len, char key, uint64_t *v_r)
{
	for (size_t i = 0; i + 3 <= len; i++) {
		char digits[24];
		size_t j, n;

		if (name[i] != ',' || name[i + 1] != key || name[i + 2] != '=')
			continue;
		for (j = i + 3; j < len && name[j] != ','; j++)
			;
		n = j - (i + 3);
		if (n == 0 || n >= sizeof(digits))
			return -1;
		memcpy(digits, name + i + 3, n);
		digits[n] = '\0';
		return str_parse_u64(digits, v_r);
	}
	return -1;
}

/* CRLF sizes lie in [st_size, 2 * st_size + 2]: anything else is corrupt. */
static bool
md_size_plausible(uint64_t size, off_t st_size)
{
	uint64_t raw = (uint64_t)st_size, max;

	if (st_size < 0 || size < raw)
		return false;
	if (__builtin_mul_overflow(raw, 2, &max) ||
	    __builtin_add_overflow(max, 2, &max))
		return true;
	return size <= max;
}

static int
md_cache_cmp(const void *a, const void *b)
{
	const struct md_cache_ent *x = a, *y = b;

	return strcmp(x->base, y->base);
}

/* A missing, unreadable or corrupt cache only costs reading the messages. */
static void
md_cache_load(struct maildir *md)
{
	char path[PATH_MAX], line[MD_CACHE_LINE];
	struct stat st;
	FILE *fp;
	int fd;
	size_t cap = 0;
	bool skipping = false;

	if (str_fmt(path, sizeof(path), "%s/%s", md->path, MD_CACHE_NAME) == -1)
		return;
	fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
	if (fd == -1) {
		if (errno != ENOENT)
			log_warn("maildir=%s size cache unreadable", md->path);
		return;
	}
	if (fstat(fd, &st) == -1 || !S_ISREG(st.st_mode) ||
	    st.st_size > MD_CACHE_MAX || (fp = fdopen(fd, "r")) == NULL) {
		(void)close(fd);
		md->cache_dirty = true;
		return;
	}
	while (fgets(line, sizeof(line), fp) != NULL) {
		size_t len = strlen(line);
		char *sp;
		uint64_t size;

		if (len == 0 || line[len - 1] != '\n') {
			/* Over-long (or NUL-holding) line: drop all of it. */
			skipping = true;
			md->cache_dirty = true;
			continue;
		}
		if (skipping) {
			skipping = false;
			continue;
		}
		line[--len] = '\0';
		sp = strrchr(line, ' ');
		if (sp == NULL || sp == line ||
		    str_parse_u64(sp + 1, &size) == -1 ||
		    !md_printable(line, (size_t)(sp - line))) {
			md->cache_dirty = true;
			continue;
		}
		*sp = '\0';
		if (md->ncache == cap) {
			size_t ncap = cap == 0 ? 256 : cap;
			struct md_cache_ent *n;

			if (__builtin_mul_overflow(ncap, 2, &ncap) ||
			    (n = reallocarray(md->cache, ncap,
			    sizeof(*n))) == NULL)
				break;
			md->cache = n;
			cap = ncap;
		}
		if ((md->cache[md->ncache].base = strdup(line)) == NULL)
			break;
		md->cache[md->ncache].size = size;
		md->cache[md->ncache].used = false;
		md->ncache++;
	}
	if (fclose(fp) == EOF)
		md->cache_dirty = true;
	if (md->ncache > 0)
		qsort(md->cache, md->ncache, sizeof(*md->cache), md_cache_cmp);
}

static struct md_cache_ent *
md_cache_find(struct maildir *md, const char *base)
{
	struct md_cache_ent key = { .base = (char *)base };

	if (md->ncache == 0)
		return NULL;
	return bsearch(&key, md->cache, md->ncache, sizeof(*md->cache),
	    md_cache_cmp);
}

static bool
md_cacheable(const struct md_msg *m)
{
	return m->src != MD_SIZE_W && m->baselen > 0 &&
	    md_printable(m->name, m->baselen);
}

/* Temp file, fsync, rename: a crash leaves the old cache or the new one. */
static void
md_cache_save(struct maildir *md)
{
	char path[PATH_MAX], tmp[PATH_MAX];
	size_t used = 0;
	int fd;

	if (str_fmt(path, sizeof(path), "%s/%s", md->path,
	    MD_CACHE_NAME) == -1 ||
	    str_fmt(tmp, sizeof(tmp), "%s/%s", md->path, MD_CACHE_TMP) == -1)
		return;
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC,
	    0600);
	if (fd == -1) {
		log_warn("maildir=%s cannot write size cache", md->path);
		return;
	}
	for (unsigned int i = 0; i < md->count; i++) {
		const struct md_msg *m = &md->msgs[i];
		char line[MD_CACHE_LINE];
		size_t len;

		if (!md_cacheable(m) || m->baselen > NAME_MAX)
			continue;
		if (str_fmt(line, sizeof(line), "%.*s %llu\n", (int)m->baselen,
		    m->name, (unsigned long long)m->size) == -1)
			continue;
		len = strlen(line);
		if (used + len > STORE_IOBUF) {
			if (fd_write_all(fd, md->iobuf, used) == -1)
				goto fail;
			used = 0;
		}
		memcpy(md->iobuf + used, line, len);
		used += len;
	}
	if (fd_write_all(fd, md->iobuf, used) == -1 || fsync(fd) == -1)
		goto fail;
	if (close(fd) == -1) {
		fd = -1;
		goto fail;
	}
	fd = -1;
	if (rename(tmp, path) == -1)
		goto fail;
	return;
fail:
	log_warn("maildir=%s cannot write size cache", md->path);
	if (fd != -1)
		(void)close(fd);
	(void)unlink(tmp);
}

/* The CRLF size of an open message file, read once. */
static int
md_read_size(struct maildir *md, int fd, uint64_t *size_r)
{
	struct crlf_size cs;
	ssize_t n;

	crlf_size_init(&cs);
	for (;;) {
		n = read(fd, md->iobuf, STORE_IOBUF);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1)
			return -1;
		if (n == 0)
			break;
		crlf_size_feed(&cs, md->iobuf, (size_t)n);
	}
	if (crlf_size_finish(&cs, size_r) == -1) {
		errno = EFBIG;
		return -1;
	}
	return 0;
}

static int
md_open_dir(int parent, const char *name)
{
	return openat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
	    O_CLOEXEC);
}

/* Dotfiles, non-regular files and names we cannot handle are not mail. */
static bool
md_is_mail(int dirfd, const char *name)
{
	struct stat st;

	if (name[0] == '.' || strlen(name) > NAME_MAX)
		return false;
	if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) == -1)
		return false;
	return S_ISREG(st.st_mode);
}

/* Maildir convention: a message seen by a reader moves to cur/ with ":2,". */
static enum store_result
md_move_new(struct maildir *md, int dirfd, char *err)
{
	struct dirent *de;
	DIR *dir;
	int fd;
	bool moved = false;

	fd = md_open_dir(dirfd, "new");
	if (fd == -1) {
		if (errno == ENOENT)
			return STORE_OK;
		(void)str_fmt(err, ERR_LEN, "cannot open %s/new: %s", md->path,
		    strerror(errno));
		return STORE_TEMPFAIL;
	}
	if ((dir = fdopendir(fd)) == NULL) {
		(void)close(fd);
		(void)str_fmt(err, ERR_LEN, "cannot read %s/new: %s", md->path,
		    strerror(errno));
		return STORE_TEMPFAIL;
	}
	while ((errno = 0, de = readdir(dir)) != NULL) {
		char target[NAME_MAX + 1];

		if (!md_is_mail(fd, de->d_name))
			continue;
		if (strchr(de->d_name, ':') != NULL) {
			if (str_copy(target, sizeof(target), de->d_name) == -1)
				continue;
		} else if (str_fmt(target, sizeof(target), "%s:2,",
		    de->d_name) == -1) {
			log_warnx("maildir=%s name too long to move: new/%s",
			    md->path, de->d_name);
			continue;
		}
		if (renameat2(fd, de->d_name, md->cur_fd, target,
		    RENAME_NOREPLACE) == -1) {
			if (errno == EINVAL &&
			    faccessat(md->cur_fd, target, F_OK,
			    AT_SYMLINK_NOFOLLOW) == -1 && errno == ENOENT &&
			    renameat(fd, de->d_name, md->cur_fd, target) == 0) {
				moved = true;
				continue;
			}
			/* Another reader moved it first: it is in cur/. */
			if (errno != ENOENT)
				log_warn("maildir=%s cannot move new/%s",
				    md->path, de->d_name);
			continue;
		}
		moved = true;
	}
	if (errno != 0) {
		(void)str_fmt(err, ERR_LEN, "cannot read %s/new: %s", md->path,
		    strerror(errno));
		(void)closedir(dir);
		return STORE_TEMPFAIL;
	}
	if (moved && (fsync(md->cur_fd) == -1 || fsync(fd) == -1))
		log_warn("maildir=%s fsync after moving new/", md->path);
	(void)closedir(dir);
	return STORE_OK;
}

static enum store_result
md_add(struct maildir *md, const struct store_params *p, const char *name,
    char *err)
{
	struct md_msg *m;

	if (p->max_messages != 0 && md->count >= p->max_messages) {
		(void)str_fmt(err, ERR_LEN,
		    "mailbox has more than %u messages", p->max_messages);
		return STORE_PERMFAIL;
	}
	if (md->count == md->cap) {
		size_t ncap = md->cap == 0 ? 64 : md->cap;
		struct md_msg *n;

		if (__builtin_mul_overflow(ncap, 2, &ncap) || ncap > UINT_MAX ||
		    (n = reallocarray(md->msgs, ncap, sizeof(*n))) == NULL) {
			(void)str_copy(err, ERR_LEN, "out of memory");
			return STORE_TEMPFAIL;
		}
		md->msgs = n;
		md->cap = ncap;
	}
	m = &md->msgs[md->count];
	*m = (struct md_msg){ 0 };
	if ((m->name = strdup(name)) == NULL) {
		(void)str_copy(err, ERR_LEN, "out of memory");
		return STORE_TEMPFAIL;
	}
	m->baselen = md_baselen(name);
	m->stamp = md_stamp(name);
	md->count++;
	return STORE_OK;
}

/* Size of m: ",W=" when plausible, else the cache, else read the file. */
static enum store_result
md_size(struct maildir *md, struct md_msg *m, char *err)
{
	char base[NAME_MAX + 1];
	struct md_cache_ent *ce;
	struct stat st;
	uint64_t w, s;
	int fd;

	if (fstatat(md->cur_fd, m->name, &st, AT_SYMLINK_NOFOLLOW) == -1)
		return errno == ENOENT ? STORE_CHANGED : STORE_TEMPFAIL;
	if (md_name_field(m->name, m->baselen, 'W', &w) == 0 &&
	    md_size_plausible(w, st.st_size) &&
	    (md_name_field(m->name, m->baselen, 'S', &s) == -1 ||
	    s == (uint64_t)st.st_size)) {
		m->size = w;
		m->src = MD_SIZE_W;
		return STORE_OK;
	}
	memcpy(base, m->name, m->baselen);
	base[m->baselen] = '\0';
	ce = md_cache_find(md, base);
	if (ce != NULL && md_size_plausible(ce->size, st.st_size)) {
		ce->used = true;
		m->size = ce->size;
		m->src = MD_SIZE_CACHE;
		return STORE_OK;
	}
	fd = openat(md->cur_fd, m->name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC |
	    O_NONBLOCK | O_NOCTTY);
	if (fd == -1)
		return errno == ENOENT ? STORE_CHANGED : STORE_TEMPFAIL;
	if (fstat(fd, &st) == -1 || !S_ISREG(st.st_mode) ||
	    md_read_size(md, fd, &m->size) == -1) {
		(void)str_fmt(err, ERR_LEN, "cannot read %s/cur/%s: %s",
		    md->path, m->name, strerror(errno));
		(void)close(fd);
		return STORE_TEMPFAIL;
	}
	(void)close(fd);
	m->src = MD_SIZE_READ;
	if (md_cacheable(m))
		md->cache_dirty = true;
	return STORE_OK;
}

static int
md_cmp_base(const void *a, const void *b)
{
	const struct md_msg *x = a, *y = b;
	size_t n = x->baselen < y->baselen ? x->baselen : y->baselen;
	int c = memcmp(x->name, y->name, n);

	if (c != 0)
		return c;
	if (x->baselen != y->baselen)
		return x->baselen < y->baselen ? -1 : 1;
	return strcmp(x->name, y->name);
}

static int
md_cmp_order(const void *a, const void *b)
{
	const struct md_msg *x = a, *y = b;

	if (x->stamp != y->stamp)
		return x->stamp < y->stamp ? -1 : 1;
	return strcmp(x->name, y->name);
}

/*
 * Two files with one base name (the same message with two flag sets) would
 * give two messages one UIDL: keep the first by name, ignore the others.
 */
static void
md_dedup(struct maildir *md)
{
	unsigned int out = 0;

	if (md->count < 2)
		return;
	qsort(md->msgs, md->count, sizeof(*md->msgs), md_cmp_base);
	for (unsigned int i = 0; i < md->count; i++) {
		const struct md_msg *prev = out > 0 ? &md->msgs[out - 1] : NULL;

		if (prev != NULL && prev->baselen == md->msgs[i].baselen &&
		    memcmp(prev->name, md->msgs[i].name, prev->baselen) == 0) {
			log_warnx("maildir=%s duplicate base name ignored: "
			    "cur/%s", md->path, md->msgs[i].name);
			free(md->msgs[i].name);
			continue;
		}
		md->msgs[out++] = md->msgs[i];
	}
	md->count = out;
}

static enum store_result
md_scan_cur(struct maildir *md, const struct store_params *p, char *err)
{
	struct dirent *de;
	DIR *dir;
	int fd;
	enum store_result res = STORE_OK;

	fd = openat(md->cur_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd == -1 || (dir = fdopendir(fd)) == NULL) {
		(void)str_fmt(err, ERR_LEN, "cannot read %s/cur: %s", md->path,
		    strerror(errno));
		if (fd != -1)
			(void)close(fd);
		return STORE_TEMPFAIL;
	}
	while ((errno = 0, de = readdir(dir)) != NULL) {
		if (!md_is_mail(fd, de->d_name))
			continue;
		if ((res = md_add(md, p, de->d_name, err)) != STORE_OK)
			break;
	}
	if (res == STORE_OK && errno != 0) {
		(void)str_fmt(err, ERR_LEN, "cannot read %s/cur: %s", md->path,
		    strerror(errno));
		res = STORE_TEMPFAIL;
	}
	(void)closedir(dir);
	return res;
}

static void
md_uidl(const struct md_msg *m, char *uidl)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;

	if (m->baselen >= 1 && m->baselen <= STORE_UIDL_MAX &&
	    md_printable(m->name, m->baselen)) {
		memcpy(uidl, m->name, m->baselen);
		uidl[m->baselen] = '\0';
		return;
	}
	if (EVP_Digest(m->name, m->baselen, md, &mdlen, EVP_sha256(),
	    NULL) != 1 || mdlen < MD_UIDL_HASH)
		fatalx("SHA-256 failed");
	uidl[0] = 'x';
	str_hex(uidl + 1, md, MD_UIDL_HASH);
}

static void
md_free(struct maildir *md)
{
	for (unsigned int i = 0; i < md->count; i++)
		free(md->msgs[i].name);
	free(md->msgs);
	for (size_t i = 0; i < md->ncache; i++)
		free(md->cache[i].base);
	free(md->cache);
	free(md->iobuf);
	maildir_uidlist_free(&md->legacy);
	(void)store_close_fd(&md->cur_fd);
	(void)store_close_fd(&md->lock_fd);
	free(md);
}

/* Size every message (dropping those that vanished) and check the caps. */
static enum store_result
md_size_all(struct maildir *md, const struct store_params *p, uint64_t *total_r,
    char *err)
{
	unsigned int out = 0;
	uint64_t total = 0;

	for (unsigned int i = 0; i < md->count; i++) {
		enum store_result res = md_size(md, &md->msgs[i], err);

		if (res == STORE_CHANGED) {
			free(md->msgs[i].name);
			continue;
		}
		if (res != STORE_OK) {
			if (err[0] == '\0')
				(void)str_fmt(err, ERR_LEN,
				    "cannot stat %s/cur/%s: %s", md->path,
				    md->msgs[i].name, strerror(errno));
			/* Names past i are still owned by the array. */
			for (unsigned int j = i; j < md->count; j++)
				free(md->msgs[j].name);
			md->count = out;
			return res;
		}
		if (__builtin_add_overflow(total, md->msgs[i].size, &total) ||
		    (p->max_bytes != 0 && total > p->max_bytes)) {
			(void)str_fmt(err, ERR_LEN,
			    "mailbox is larger than %llu bytes",
			    (unsigned long long)p->max_bytes);
			for (unsigned int j = i; j < md->count; j++)
				free(md->msgs[j].name);
			md->count = out;
			return STORE_PERMFAIL;
		}
		md->msgs[out++] = md->msgs[i];
	}
	md->count = out;
	*total_r = total;
	return STORE_OK;
}

static enum store_result
md_open(struct store **st_r, const struct store_params *p,
    struct store_index *idx, char *err)
{
	char lock[PATH_MAX];
	struct maildir *md;
	struct stat st;
	enum store_result res;
	uint64_t total = 0;
	int dirfd = -1;

	*st_r = NULL;
	*idx = (struct store_index){ 0 };
	err[0] = '\0';
	if ((md = calloc(1, sizeof(*md))) == NULL) {
		(void)str_copy(err, ERR_LEN, "out of memory");
		return STORE_TEMPFAIL;
	}
	md->lock_fd = md->cur_fd = -1;
	if (str_copy(md->path, sizeof(md->path), p->path) == -1 ||
	    str_fmt(lock, sizeof(lock), "%s/%s", p->path, MD_LOCK_NAME) == -1) {
		(void)str_copy(err, ERR_LEN, "maildir path too long");
		res = STORE_PERMFAIL;
		goto fail;
	}
	if (stat(md->path, &st) == -1) {
		if (errno == ENOENT) {
			/* No maildir yet: an empty mailbox, nothing to lock. */
			*st_r = (struct store *)md;
			return STORE_OK;
		}
		(void)str_fmt(err, ERR_LEN, "cannot stat %s: %s", md->path,
		    strerror(errno));
		res = STORE_TEMPFAIL;
		goto fail;
	}
	if (!S_ISDIR(st.st_mode)) {
		(void)str_fmt(err, ERR_LEN, "%s is not a maildir", md->path);
		res = STORE_PERMFAIL;
		goto fail;
	}
	if ((res = store_lock_session(lock, &md->lock_fd, err)) != STORE_OK)
		goto fail;
	if ((md->iobuf = malloc(STORE_IOBUF)) == NULL) {
		(void)str_copy(err, ERR_LEN, "out of memory");
		res = STORE_TEMPFAIL;
		goto fail;
	}
	dirfd = open(md->path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dirfd == -1 || ((md->cur_fd = md_open_dir(dirfd, "cur")) == -1 &&
	    (errno != ENOENT || mkdirat(dirfd, "cur", 0700) == -1 ||
	    (md->cur_fd = md_open_dir(dirfd, "cur")) == -1))) {
		(void)str_fmt(err, ERR_LEN, "cannot open %s/cur: %s", md->path,
		    strerror(errno));
		res = STORE_TEMPFAIL;
		goto fail;
	}
	if ((res = md_move_new(md, dirfd, err)) != STORE_OK)
		goto fail;
	md->legacy = maildir_uidlist_load(dirfd);
	(void)close(dirfd);
	dirfd = -1;
	md_cache_load(md);
	if ((res = md_scan_cur(md, p, err)) != STORE_OK)
		goto fail;
	md_dedup(md);
	if ((res = md_size_all(md, p, &total, err)) != STORE_OK)
		goto fail;
	if (md->count > 1)
		qsort(md->msgs, md->count, sizeof(*md->msgs), md_cmp_order);
	for (size_t i = 0; i < md->ncache; i++) {
		if (!md->cache[i].used)
			md->cache_dirty = true;
	}
	if (md->cache_dirty)
		md_cache_save(md);
	if (md->count > 0 &&
	    (idx->msgs = calloc(md->count, sizeof(*idx->msgs))) == NULL) {
		(void)str_copy(err, ERR_LEN, "out of memory");
		res = STORE_TEMPFAIL;
		goto fail;
	}
	for (unsigned int i = 0; i < md->count; i++) {
		idx->msgs[i].size = md->msgs[i].size;
		if (!maildir_uidlist_find(md->legacy, md->msgs[i].name,
		    md->msgs[i].baselen, idx->msgs[i].uidl))
			md_uidl(&md->msgs[i], idx->msgs[i].uidl);
	}
	maildir_uidlist_free(&md->legacy);
	idx->count = md->count;
	idx->total_size = total;
	*st_r = (struct store *)md;
	return STORE_OK;
fail:
	if (dirfd != -1)
		(void)close(dirfd);
	md_free(md);
	return res;
}

/* m was renamed (flags changed by another client): find it by base name. */
static int
md_find_base(struct maildir *md, struct md_msg *m)
{
	struct dirent *de;
	DIR *dir;
	int fd, rc = -1;

	fd = openat(md->cur_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd == -1)
		return -1;
	if ((dir = fdopendir(fd)) == NULL) {
		(void)close(fd);
		return -1;
	}
	while ((de = readdir(dir)) != NULL) {
		char *name;

		if (strncmp(de->d_name, m->name, m->baselen) != 0 ||
		    (de->d_name[m->baselen] != ':' &&
		    de->d_name[m->baselen] != '\0') ||
		    !md_is_mail(fd, de->d_name))
			continue;
		if ((name = strdup(de->d_name)) == NULL)
			break;
		free(m->name);
		m->name = name;
		rc = 0;
		break;
	}
	(void)closedir(dir);
	return rc;
}

static enum store_result
md_read_open(struct store *st, unsigned int msgnum, struct store_reader **r_r,
    char *err)
{
	struct maildir *md = (struct maildir *)st;
	struct md_reader *r;
	struct md_msg *m;
	struct stat sb;
	int fd;

	*r_r = NULL;
	if (msgnum == 0 || msgnum > md->count) {
		(void)str_fmt(err, ERR_LEN, "no message %u", msgnum);
		return STORE_PERMFAIL;
	}
	m = &md->msgs[msgnum - 1];
	for (int tries = 0;; tries++) {
		fd = openat(md->cur_fd, m->name, O_RDONLY | O_NOFOLLOW |
		    O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
		if (fd != -1 || errno != ENOENT || tries > 0)
			break;
		if (md_find_base(md, m) == -1)
			break;
	}
	if (fd == -1) {
		(void)str_fmt(err, ERR_LEN, "message %u (%s): %s", msgnum,
		    m->name, strerror(errno));
		return errno == ENOENT ? STORE_CHANGED : STORE_TEMPFAIL;
	}
	if (fstat(fd, &sb) == -1 || !S_ISREG(sb.st_mode)) {
		(void)close(fd);
		(void)str_fmt(err, ERR_LEN, "message %u changed", msgnum);
		return STORE_CHANGED;
	}
	if ((r = malloc(sizeof(*r))) == NULL) {
		(void)close(fd);
		(void)str_copy(err, ERR_LEN, "out of memory");
		return STORE_TEMPFAIL;
	}
	r->fd = fd;
	*r_r = (struct store_reader *)r;
	return STORE_OK;
}

static ssize_t
md_read(struct store_reader *sr, void *buf, size_t len)
{
	struct md_reader *r = (struct md_reader *)sr;
	ssize_t n;

	do {
		n = read(r->fd, buf, len);
	} while (n == -1 && errno == EINTR);
	return n;
}

static void
md_read_close(struct store_reader **sr)
{
	struct md_reader *r = (struct md_reader *)*sr;

	if (r == NULL)
		return;
	(void)close(r->fd);
	free(r);
	*sr = NULL;
}

static enum store_result
md_commit(struct store *st, const struct store_index *idx, char *err)
{
	struct maildir *md = (struct maildir *)st;
	enum store_result res = STORE_OK;
	bool any = false;

	if (idx->count != md->count) {
		(void)str_copy(err, ERR_LEN,
		    "index does not match the mailbox");
		return STORE_PERMFAIL;
	}
	for (unsigned int i = 0; i < md->count; i++) {
		struct md_msg *m = &md->msgs[i];

		if (!idx->msgs[i].deleted)
			continue;
		if (unlinkat(md->cur_fd, m->name, 0) == 0) {
			any = true;
			continue;
		}
		if (errno == ENOENT && (md_find_base(md, m) == -1 ||
		    unlinkat(md->cur_fd, m->name, 0) == 0 || errno == ENOENT)) {
			any = true;
			continue;
		}
		(void)str_fmt(err, ERR_LEN, "cannot delete %s/cur/%s: %s",
		    md->path, m->name, strerror(errno));
		res = STORE_TEMPFAIL;
	}
	if (any && fsync(md->cur_fd) == -1) {
		(void)str_fmt(err, ERR_LEN, "cannot fsync %s/cur: %s", md->path,
		    strerror(errno));
		res = STORE_TEMPFAIL;
	}
	return res;
}

static void
md_close(struct store **st, struct store_index *idx)
{
	if (*st != NULL)
		md_free((struct maildir *)*st);
	*st = NULL;
	if (idx != NULL) {
		free(idx->msgs);
		*idx = (struct store_index){ 0 };
	}
}

const struct store_ops store_maildir_ops = {
	.name = "maildir",
	.open = md_open,
	.read_open = md_read_open,
	.read = md_read,
	.read_close = md_read_close,
	.commit = md_commit,
	.close = md_close,
};
