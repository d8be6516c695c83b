/*
 * Maildir backend.
 *
 * open scans new/ and cur/ once and sorts by the delivery time leading the
 * name, then by name. Mail in new/ is served where it is: moving it to cur/
 * cost a rename per message, most of a first login (DESIGN.md); another
 * reader may still move it, and a message not found where it was is looked
 * for by base name in both. Sizes come from ",S="
 * and ",W=" in the name (our deliveries, Dovecot), else from the size cache
 * <maildir>/postino-sizes ("<base name> <crlf size>\n" per line), else from
 * reading the file once; newly computed sizes are written back to the cache.
 * A message file never changes under its base name (Maildir), so neither
 * source needs a stat per message: a warm open is one readdir of each
 * directory and one read of the cache. What the name or the cache claims is checked when
 * the message is opened for RETR/TOP, which stats it anyway; a cache caught
 * lying there is dropped and rebuilt by the next session (DESIGN.md).
 *
 * UIDL: the one Dovecot or Courier gave the message when it served this
 * Maildir before (maildir_uidlist.h); else the base name (before ':') when
 * it is 1..70 characters in 0x21..0x7E; otherwise "x" followed by the
 * lower-case hex of the first 16 bytes of the SHA-256 of the base name,
 * which is stable as long as the name is.
 */
#include "store.h"
#include "store_append.h"
#include "store_lock.h"
#include "maildir_uidlist.h"
#include "maildir_append.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "../lib/crlf.h"
#include "../lib/log.h"

#define MD_LOCK_NAME	"postino-session.lock"
#define MD_CACHE_NAME	"postino-sizes"
#define MD_CACHE_TMP	"postino-sizes.tmp"
#define MD_INDEX_NAME	"postino-index"
#define MD_INDEX_TMP	"postino-index.tmp"
/*
 * After the stamp when neither uidlist file existed as the index was
 * written (an older postinod reading it rebuilds the index, as for any
 * header it does not know).
 */
#define MD_INDEX_NO_UIDLIST " no-uidlist"
/*
 * How old a directory's mtime must be before the scan for the index to
 * trust it later: far above the kernel's timestamp tick (a jiffy) and a
 * file system's coarsest (one second here and there).
 */
#define MD_INDEX_SETTLE_NS	(2ull * 1000 * 1000 * 1000)
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
	char		*name;		/* current name in new/ or cur/ */
	bool		 in_new;
	size_t		 baselen;	/* bytes before ':' */
	uint64_t	 stamp;		/* leading number: delivery time */
	uint64_t	 size;
	enum md_size_src src;
	unsigned char	 d_type;	/* from readdir; DT_UNKNOWN: stat it */
};

struct md_cache_ent {
	const char	*base;		/* into maildir.cache_buf */
	size_t		 len;
	uint64_t	 size;
	bool		 used;
};

struct maildir {
	char		*path;		/* < PATH_MAX; not 4 KiB per session */
	int		 lock_fd;
	/*
	 * new/ and cur/, open only during open, a read_open or a commit
	 * (md_dir, md_dirs_close): an idle session holds its lock fd alone,
	 * or 10,000 sessions run a worker out of fds. -1: not open.
	 */
	int		 cur_fd;
	int		 new_fd;
	struct md_msg	*msgs;
	unsigned int	 count;
	size_t		 cap;
	struct md_cache_ent *cache;
	size_t		 ncache;
	char		*cache_buf;	/* the cache file, parsed in place */
	uint32_t	*cache_slots;	/* hash of base names: index + 1 */
	size_t		 nslots;	/* a power of two, > 2 * ncache */
	bool		 cache_dirty;
	unsigned char	*iobuf;
	struct maildir_uidlist *legacy;	/* UIDLs of the previous server */
	/* Neither uidlist file existed when they were last looked for. */
	bool		 no_legacy;
	/* The maildir itself, while the open looks into it; else -1. */
	int		 dir_fd;
};

struct md_reader {
	int		 fd;
	struct maildir	*md;
	struct md_msg	*m;
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

/* CRLF sizes lie in [raw, 2 * raw + 2]: anything else is corrupt. */
static bool
md_size_fits(uint64_t size, uint64_t raw)
{
	uint64_t max;

	if (size < raw)
		return false;
	if (__builtin_mul_overflow(raw, 2, &max) ||
	    __builtin_add_overflow(max, 2, &max))
		return true;
	return size <= max;
}

static uint32_t
md_hash(const char *s, size_t len)
{
	uint32_t h = 2166136261u;	/* FNV-1a */

	for (size_t i = 0; i < len; i++)
		h = (h ^ (unsigned char)s[i]) * 16777619u;
	return h;
}

static struct md_cache_ent *
md_cache_find(struct maildir *md, const char *base, size_t len)
{
	size_t mask = md->nslots - 1;

	if (md->nslots == 0)
		return NULL;
	for (size_t i = md_hash(base, len) & mask;; i = (i + 1) & mask) {
		uint32_t slot = md->cache_slots[i];
		struct md_cache_ent *ce;

		if (slot == 0)
			return NULL;
		ce = &md->cache[slot - 1];
		if (ce->len == len && memcmp(ce->base, base, len) == 0)
			return ce;
	}
}

/* Index the parsed entries; a second line for one name is dropped. */
static int
md_cache_index(struct maildir *md)
{
	size_t n = 16, kept = 0;

	while (n <= 2 * md->ncache)
		n *= 2;
	if ((md->cache_slots = calloc(n, sizeof(*md->cache_slots))) == NULL)
		return -1;
	md->nslots = n;
	for (size_t i = 0; i < md->ncache; i++) {
		struct md_cache_ent *ce = &md->cache[i];
		size_t j;

		if (md_cache_find(md, ce->base, ce->len) != NULL) {
			md->cache_dirty = true;
			continue;
		}
		md->cache[kept] = *ce;
		for (j = md_hash(ce->base, ce->len) & (n - 1);
		    md->cache_slots[j] != 0; j = (j + 1) & (n - 1))
			;
		md->cache_slots[j] = (uint32_t)++kept;
	}
	md->ncache = kept;
	return 0;
}

static void
md_cache_drop(struct maildir *md)
{
	free(md->cache);
	free(md->cache_buf);
	free(md->cache_slots);
	md->cache = NULL;
	md->cache_buf = NULL;
	md->cache_slots = NULL;
	md->ncache = md->nslots = 0;
}

/*
 * The cache is as trusted as the mail beside it, no more: only a regular
 * file of our own uid that no one else may write, at most MD_CACHE_MAX
 * octets, every line bounded and strictly parsed. A missing, foreign,
 * unreadable or corrupt cache only costs reading the messages.
 */
static void
md_cache_load(struct maildir *md)
{
	char path[PATH_MAX], *p, *end;
	struct stat st;
	size_t len = 0, cap = 0;
	int fd;

	if (str_fmt(path, sizeof(path), "%s/%s", md->path, MD_CACHE_NAME) == -1)
		return;
	fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
	if (fd == -1) {
		if (errno != ENOENT)
			log_warn("maildir=%s size cache unreadable", md->path);
		return;
	}
	if (fstat(fd, &st) == -1 || !S_ISREG(st.st_mode) ||
	    st.st_uid != geteuid() || (st.st_mode & (S_IWGRP | S_IWOTH)) ||
	    st.st_size > MD_CACHE_MAX ||
	    (md->cache_buf = malloc((size_t)st.st_size + 1)) == NULL) {
		log_warnx("maildir=%s size cache ignored: not a private file "
		    "of ours", md->path);
		(void)close(fd);
		md->cache_dirty = true;
		return;
	}
	/* Never past the size fstat saw: a growing file is cut there. */
	while (len < (size_t)st.st_size) {
		ssize_t n = read(fd, md->cache_buf + len,
		    (size_t)st.st_size - len);

		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		len += (size_t)n;
	}
	(void)close(fd);
	md->cache_buf[len] = '\0';
	for (p = md->cache_buf, end = p + len; p < end; ) {
		char *lf = memchr(p, '\n', (size_t)(end - p)), *sp;
		uint64_t size;

		if (lf == NULL) {
			/* A last line without LF: torn, drop it. */
			md->cache_dirty = true;
			break;
		}
		*lf = '\0';
		sp = memrchr(p, ' ', (size_t)(lf - p));
		if ((size_t)(lf - p) >= MD_CACHE_LINE || sp == NULL ||
		    sp == p || (size_t)(sp - p) > NAME_MAX ||
		    str_parse_u64(sp + 1, &size) == -1 ||
		    !md_printable(p, (size_t)(sp - p))) {
			md->cache_dirty = true;
			p = lf + 1;
			continue;
		}
		if (md->ncache == cap) {
			size_t ncap = cap == 0 ? 256 : cap;
			struct md_cache_ent *n;

			if (__builtin_mul_overflow(ncap, 2, &ncap) ||
			    ncap > UINT32_MAX / 2 ||
			    (n = reallocarray(md->cache, ncap,
			    sizeof(*n))) == NULL)
				break;
			md->cache = n;
			cap = ncap;
		}
		md->cache[md->ncache++] = (struct md_cache_ent){
			.base = p, .len = (size_t)(sp - p), .size = size,
		};
		p = lf + 1;
	}
	if (md_cache_index(md) == -1) {
		md_cache_drop(md);
		md->cache_dirty = true;
	}
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
md_read_size(struct maildir *md, int fd, off_t st_size, uint64_t *size_r)
{
	struct crlf_size cs;
	uint64_t got = 0;
	ssize_t n;

	crlf_size_init(&cs);
	/*
	 * A message file never changes (Maildir): once fstat's size is read,
	 * the read that would return 0 is skipped, one syscall per message.
	 */
	while (got < (uint64_t)st_size) {
		n = read(fd, md->iobuf, STORE_IOBUF);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1)
			return -1;
		if (n == 0)
			break;
		crlf_size_feed(&cs, md->iobuf, (size_t)n);
		got += (uint64_t)n;
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

/*
 * Dotfiles, non-regular files and names we cannot handle are not mail. The
 * type comes from readdir; only a file system that does not give it costs
 * a stat.
 */
static bool
md_is_mail(int dirfd, const char *name, unsigned char type)
{
	struct stat st;

	if (name[0] == '.' || strlen(name) > NAME_MAX)
		return false;
	if (type != DT_UNKNOWN)
		return type == DT_REG;
	if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) == -1)
		return false;
	return S_ISREG(st.st_mode);
}

/*
 * new/ or cur/, opened by path when not open yet (-1 and errno when it
 * cannot be, ENOENT for a missing new/). The mailbox is the worker's own
 * uid's, so a symlink swap of the path gains its owner nothing; the
 * directory itself and each message are still opened O_NOFOLLOW.
 */
static int
md_dir(struct maildir *md, bool in_new)
{
	int *fdp = in_new ? &md->new_fd : &md->cur_fd;
	char path[PATH_MAX];

	if (*fdp != -1)
		return *fdp;
	if (str_fmt(path, sizeof(path), "%s/%s", md->path,
	    in_new ? "new" : "cur") == -1) {
		errno = ENAMETOOLONG;
		return -1;
	}
	*fdp = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	return *fdp;
}

static int
md_fd(struct maildir *md, const struct md_msg *m)
{
	return md_dir(md, m->in_new);
}

/* Done with new/ and cur/ until the next read_open or commit. */
static void
md_dirs_close(struct maildir *md)
{
	(void)store_close_fd(&md->cur_fd);
	(void)store_close_fd(&md->new_fd);
}

static const char *
md_sub(const struct md_msg *m)
{
	return m->in_new ? "new" : "cur";
}

static enum store_result
md_add(struct maildir *md, const struct store_params *p, const char *name,
    bool in_new, char *err)
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
	m->in_new = in_new;
	md->count++;
	return STORE_OK;
}

/*
 * Size of m, without a stat when the name or the cache has it: ",S=" with
 * a ",W=" that fits it, else the cache (when use_cache), else ",W=" checked
 * against the file, else the file read once.
 */
static enum store_result
md_size(struct maildir *md, struct md_msg *m, bool use_cache, char *err)
{
	struct md_cache_ent *ce;
	struct stat st;
	uint64_t w, s;
	bool has_w, has_s;
	int fd;

	has_w = md_name_field(m->name, m->baselen, 'W', &w) == 0;
	has_s = md_name_field(m->name, m->baselen, 'S', &s) == 0;
	if (has_w && has_s && md_size_fits(w, s)) {
		m->size = w;
		m->src = MD_SIZE_W;
		return STORE_OK;
	}
	if (use_cache && (ce = md_cache_find(md, m->name, m->baselen)) != NULL) {
		ce->used = true;
		m->size = ce->size;
		m->src = MD_SIZE_CACHE;
		return STORE_OK;
	}
	/*
	 * Sizing is not reading the mail: no atime update (a journal write per
	 * message on the first login). Only the owner may ask, as we are.
	 */
	fd = openat(md_fd(md, m), m->name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC |
	    O_NONBLOCK | O_NOCTTY | O_NOATIME);
	if (fd == -1 && errno == EPERM)
		fd = openat(md_fd(md, m), m->name, O_RDONLY | O_NOFOLLOW |
		    O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
	if (fd == -1)
		return errno == ENOENT ? STORE_CHANGED : STORE_TEMPFAIL;
	if (fstat(fd, &st) == -1 || !S_ISREG(st.st_mode)) {
		(void)str_fmt(err, ERR_LEN, "cannot read %s/%s/%s: %s",
		    md->path, md_sub(m), m->name, strerror(errno));
		(void)close(fd);
		return STORE_TEMPFAIL;
	}
	if (has_w && !has_s && md_size_fits(w, (uint64_t)st.st_size)) {
		(void)close(fd);
		m->size = w;
		m->src = MD_SIZE_W;
		return STORE_OK;
	}
	if (md_read_size(md, fd, st.st_size, &m->size) == -1) {
		(void)str_fmt(err, ERR_LEN, "cannot read %s/%s/%s: %s",
		    md->path, md_sub(m), m->name, strerror(errno));
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
			    "%s/%s", md->path, md_sub(&md->msgs[i]),
			    md->msgs[i].name);
			free(md->msgs[i].name);
			continue;
		}
		md->msgs[out++] = md->msgs[i];
	}
	md->count = out;
}

static enum store_result
md_scan_dir(struct maildir *md, const struct store_params *p, bool in_new,
    char *err)
{
	int fd = in_new ? md->new_fd : md->cur_fd;
	ssize_t n;

	/*
	 * Read the fd md_open has just opened, into the read buffer the open
	 * holds anyway: opendir would open it again, and fdopendir stat it,
	 * five system calls more per directory per login.
	 */
	while ((n = getdents64(fd, md->iobuf, STORE_IOBUF)) > 0) {
		for (size_t off = 0; off + sizeof(struct dirent64) -
		    sizeof(((struct dirent64 *)0)->d_name) <= (size_t)n;) {
			const struct dirent64 *de =
			    (const void *)(md->iobuf + off);
			enum store_result res;

			if (de->d_reclen == 0)
				break;
			off += de->d_reclen;
			if (md_is_mail(fd, de->d_name, de->d_type) &&
			    (res = md_add(md, p, de->d_name, in_new, err)) !=
			    STORE_OK)
				return res;
		}
	}
	if (n == -1) {
		(void)str_fmt(err, ERR_LEN, "cannot read %s/%s: %s", md->path,
		    in_new ? "new" : "cur", strerror(errno));
		return STORE_TEMPFAIL;
	}
	return STORE_OK;
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
	md_cache_drop(md);
	free(md->iobuf);
	maildir_uidlist_free(&md->legacy);
	(void)store_close_fd(&md->cur_fd);
	(void)store_close_fd(&md->new_fd);
	(void)store_close_fd(&md->dir_fd);
	free(md->path);
	(void)store_close_fd(&md->lock_fd);
	free(md);
}

/*
 * Size every message (dropping those that vanished) and check the caps. A
 * cache that would put the mailbox over a cap is not believed: the sizes
 * it gave are read again, so a bad cache can never lock a user out.
 */
static enum store_result
md_size_all(struct maildir *md, const struct store_params *p, uint64_t *total_r,
    char *err)
{
	bool use_cache = true;

	for (;;) {
		unsigned int out = 0;
		uint64_t total = 0;
		bool over = false, cached = false;

		for (unsigned int i = 0; i < md->count; i++) {
			struct md_msg *m = &md->msgs[i];
			enum store_result res = md_size(md, m, use_cache, err);

			if (res == STORE_CHANGED) {
				free(m->name);
				continue;
			}
			if (res != STORE_OK) {
				if (err[0] == '\0')
					(void)str_fmt(err, ERR_LEN,
					    "cannot stat %s/%s/%s: %s",
					    md->path, md_sub(m), m->name,
					    strerror(errno));
				/* Names past i are still owned by the array. */
				for (unsigned int j = i; j < md->count; j++)
					free(md->msgs[j].name);
				md->count = out;
				return res;
			}
			cached |= m->src == MD_SIZE_CACHE;
			if (__builtin_add_overflow(total, m->size, &total) ||
			    (p->max_bytes != 0 && total > p->max_bytes))
				over = true;
			md->msgs[out++] = *m;
		}
		md->count = out;
		if (over && cached) {
			log_warnx("maildir=%s size cache puts the mailbox over "
			    "its cap: reading the messages", md->path);
			use_cache = false;
			md->cache_dirty = true;
			continue;
		}
		if (over) {
			(void)str_fmt(err, ERR_LEN,
			    "mailbox is larger than %llu bytes",
			    (unsigned long long)p->max_bytes);
			return STORE_PERMFAIL;
		}
		*total_r = total;
		return STORE_OK;
	}
}

/*
 * The listing index <maildir>/postino-index: what the last full open
 * served (new/ or cur/, size and name per message, in served order) and
 * the inode and mtime of new/ and cur/ it was read at. An open whose
 * directories still have those serves it without reading them: a readdir
 * of 10,000 names, their sizes looked up and two sorts were most of a warm
 * login (issue 11, S2). Any change in a directory (delivery, rename,
 * unlink) moves its mtime. The clock the kernel stamps it with is coarse,
 * so the index is written only for directories whose mtime was
 * MD_INDEX_SETTLE_NS old before the scan: a change after the scan then
 * gets a later mtime. Trusted as the size cache is (md_cache_load); no
 * fsync: a torn or lost index is rebuilt by the next open. It also says
 * whether the uidlist files of Dovecot and Courier were missing: a warm
 * open then does not look for them (two opens per login); a uidlist put
 * there later is read once new/ or cur/ change (a delivery does).
 */
static int
md_index_stamp(const struct maildir *md, char *out, size_t outsize,
    struct timespec *newest_r)
{
	struct stat nst = { 0 }, cst;

	if (fstat(md->cur_fd, &cst) == -1 ||
	    (md->new_fd != -1 && fstat(md->new_fd, &nst) == -1))
		return -1;
	*newest_r = cst.st_mtim;
	if (md->new_fd != -1 && (nst.st_mtim.tv_sec > cst.st_mtim.tv_sec ||
	    (nst.st_mtim.tv_sec == cst.st_mtim.tv_sec &&
	    nst.st_mtim.tv_nsec > cst.st_mtim.tv_nsec)))
		*newest_r = nst.st_mtim;
	return str_fmt(out, outsize, "postino-index 1 %llu %lld.%09ld "
	    "%llu %lld.%09ld", (unsigned long long)nst.st_ino,
	    (long long)nst.st_mtim.tv_sec, nst.st_mtim.tv_nsec,
	    (unsigned long long)cst.st_ino, (long long)cst.st_mtim.tv_sec,
	    cst.st_mtim.tv_nsec);
}

/* The index file, whole, NUL-terminated; NULL when missing or not ours. */
static char *
md_index_read(const struct maildir *md, size_t *len_r)
{
	char *buf;
	struct stat st;
	size_t len = 0;
	int fd;

	fd = openat(md->dir_fd, MD_INDEX_NAME, O_RDONLY | O_NOFOLLOW |
	    O_CLOEXEC | O_NONBLOCK);
	if (fd == -1)
		return NULL;
	if (fstat(fd, &st) == -1 || !S_ISREG(st.st_mode) ||
	    st.st_uid != geteuid() || (st.st_mode & (S_IWGRP | S_IWOTH)) ||
	    st.st_size > MD_CACHE_MAX ||
	    (buf = malloc((size_t)st.st_size + 1)) == NULL) {
		(void)close(fd);
		return NULL;
	}
	while (len < (size_t)st.st_size) {
		ssize_t n = read(fd, buf + len, (size_t)st.st_size - len);

		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		len += (size_t)n;
	}
	(void)close(fd);
	buf[len] = '\0';
	*len_r = len;
	return buf;
}

/* One "<N|C> <size> <name>" line into md->msgs; -1 when it is not one. */
static int
md_index_line(struct maildir *md, char *line, uint64_t *total)
{
	char *sp, *name;
	struct md_msg *m;
	uint64_t size;

	if ((line[0] != 'N' && line[0] != 'C') || line[1] != ' ' ||
	    (sp = strchr(line + 2, ' ')) == NULL)
		return -1;
	*sp = '\0';
	name = sp + 1;
	if (str_parse_u64(line + 2, &size) == -1 || name[0] == '\0' ||
	    name[0] == '.' || strlen(name) > NAME_MAX ||
	    strchr(name, '/') != NULL || md->count == md->cap ||
	    __builtin_add_overflow(*total, size, total))
		return -1;
	m = &md->msgs[md->count];
	*m = (struct md_msg){ .in_new = line[0] == 'N', .size = size,
	    .src = MD_SIZE_CACHE };
	if ((m->name = strdup(name)) == NULL)
		return -1;
	m->baselen = md_baselen(name);
	m->stamp = md_stamp(name);
	md->count++;
	return 0;
}

/*
 * Serve the index when its stamp is the directories' now: 1, with the
 * messages in md->msgs, their total in *total_r and md->no_legacy set; 0
 * when it cannot be used (missing, stale, corrupt, over a cap), with
 * md->msgs empty.
 */
static int
md_index_load(struct maildir *md, const struct store_params *p,
    const char *stamp, uint64_t *total_r)
{
	size_t len, slen = strlen(stamp), flen = strlen(MD_INDEX_NO_UIDLIST);
	char *buf = md_index_read(md, &len), *line, *lf, *end;
	uint64_t want, total = 0;
	bool no_legacy;
	int ok = 0;

	if (buf == NULL)
		return 0;
	end = buf + len;
	if (strncmp(buf, stamp, slen) != 0 ||
	    (lf = memchr(buf, '\n', len)) == NULL)
		goto out;
	*lf = '\0';
	no_legacy = strncmp(buf + slen, MD_INDEX_NO_UIDLIST, flen) == 0;
	if (no_legacy)
		slen += flen;
	if (buf[slen] != ' ' || str_parse_u64(buf + slen + 1, &want) == -1 ||
	    want > UINT_MAX / 2 || (p->max_messages != 0 &&
	    want > p->max_messages) || (want > 0 && (md->msgs =
	    calloc((size_t)want, sizeof(*md->msgs))) == NULL))
		goto out;
	md->cap = (size_t)want;
	for (line = lf + 1; line < end; line = lf + 1) {
		if ((lf = memchr(line, '\n', (size_t)(end - line))) == NULL)
			break;		/* torn */
		*lf = '\0';
		if (md_index_line(md, line, &total) == -1)
			break;
	}
	ok = line == end && md->count == want &&
	    (p->max_bytes == 0 || total <= p->max_bytes);
	if (ok) {
		*total_r = total;
		md->no_legacy = no_legacy;
	}
out:
	if (!ok) {
		for (unsigned int i = 0; i < md->count; i++)
			free(md->msgs[i].name);
		free(md->msgs);
		md->msgs = NULL;
		md->count = 0;
		md->cap = 0;
	}
	free(buf);
	return ok;
}

/* Temp file and rename, as the size cache, but no fsync (see above). */
static void
md_index_save(struct maildir *md, const char *stamp)
{
	char path[PATH_MAX], tmp[PATH_MAX], line[MD_CACHE_LINE];
	size_t used;
	int fd;

	if (str_fmt(path, sizeof(path), "%s/%s", md->path,
	    MD_INDEX_NAME) == -1 || str_fmt(tmp, sizeof(tmp), "%s/%s",
	    md->path, MD_INDEX_TMP) == -1 ||
	    str_fmt((char *)md->iobuf, STORE_IOBUF, "%s%s %u\n", stamp,
	    md->no_legacy ? MD_INDEX_NO_UIDLIST : "", md->count) == -1)
		return;
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC,
	    0600);
	if (fd == -1)
		return;
	used = strlen((char *)md->iobuf);
	for (unsigned int i = 0; i < md->count; i++) {
		const struct md_msg *m = &md->msgs[i];
		size_t len;

		/* A name the format cannot carry: no index this time. */
		if (strchr(m->name, '\n') != NULL || str_fmt(line,
		    sizeof(line), "%c %llu %s\n", m->in_new ? 'N' : 'C',
		    (unsigned long long)m->size, m->name) == -1)
			goto fail;
		len = strlen(line);
		if (used + len > STORE_IOBUF) {
			if (fd_write_all(fd, md->iobuf, used) == -1)
				goto fail;
			used = 0;
		}
		memcpy(md->iobuf + used, line, len);
		used += len;
	}
	if (fd_write_all(fd, md->iobuf, used) == -1)
		goto fail;
	if (close(fd) == -1) {
		fd = -1;
		goto fail;
	}
	fd = -1;
	if (rename(tmp, path) == 0)
		return;
fail:
	if (fd != -1)
		(void)close(fd);
	(void)unlink(tmp);
}

/* Read new/ and cur/ and size what is there: the open without an index. */
static enum store_result
md_scan_all(struct maildir *md, const struct store_params *p,
    uint64_t *total_r, char *err)
{
	enum store_result res;

	md_cache_load(md);
	/*
	 * new/ first: a message another reader moves to cur/ meanwhile is
	 * then seen twice (and counted once), never missed.
	 */
	if ((md->new_fd != -1 && (res = md_scan_dir(md, p, true, err)) !=
	    STORE_OK) || (res = md_scan_dir(md, p, false, err)) != STORE_OK)
		return res;
	md_dedup(md);
	if ((res = md_size_all(md, p, total_r, err)) != STORE_OK)
		return res;
	if (md->count > 1)
		qsort(md->msgs, md->count, sizeof(*md->msgs), md_cmp_order);
	for (size_t i = 0; i < md->ncache; i++) {
		if (!md->cache[i].used)
			md->cache_dirty = true;
	}
	if (md->cache_dirty)
		md_cache_save(md);
	return STORE_OK;
}

/*
 * The messages, in served order: from the index when the directories have
 * not changed since it was written, else from the directories (and then a
 * new index when they had settled).
 */
static enum store_result
md_list(struct maildir *md, const struct store_params *p, uint64_t *total_r,
    char *err)
{
	char stamp[160];
	struct timespec now, newest;
	enum store_result res;
	bool stamped;

	(void)clock_gettime(CLOCK_REALTIME, &now);
	stamped = md_index_stamp(md, stamp, sizeof(stamp), &newest) == 0;
	if (stamped && md_index_load(md, p, stamp, total_r)) {
		md_dirs_close(md);
		if (md->no_legacy)
			return STORE_OK;
		md->legacy = maildir_uidlist_load(md->dir_fd, p->uidl_format,
		    &md->no_legacy);
		/* An older postinod's index: said once, not looked up again. */
		if (md->no_legacy)
			md_index_save(md, stamp);
		return STORE_OK;
	}
	md->legacy = maildir_uidlist_load(md->dir_fd, p->uidl_format,
	    &md->no_legacy);
	res = md_scan_all(md, p, total_r, err);
	md_dirs_close(md);
	if (res == STORE_OK && stamped && (uint64_t)newest.tv_sec *
	    1000000000ull + (uint64_t)newest.tv_nsec + MD_INDEX_SETTLE_NS <=
	    (uint64_t)now.tv_sec * 1000000000ull + (uint64_t)now.tv_nsec)
		md_index_save(md, stamp);
	return res;
}

/* Open cur/ (made if missing) and new/. */
static enum store_result
md_open_subdirs(struct maildir *md, char *err)
{
	int dirfd = md->dir_fd;

	if ((md->cur_fd = md_open_dir(dirfd, "cur")) == -1 &&
	    (errno != ENOENT || mkdirat(dirfd, "cur", 0700) == -1 ||
	    (md->cur_fd = md_open_dir(dirfd, "cur")) == -1)) {
		(void)str_fmt(err, ERR_LEN, "cannot open %s/cur: %s", md->path,
		    strerror(errno));
		return STORE_TEMPFAIL;
	}
	if ((md->new_fd = md_open_dir(dirfd, "new")) == -1 && errno != ENOENT) {
		(void)str_fmt(err, ERR_LEN, "cannot open %s/new: %s", md->path,
		    strerror(errno));
		return STORE_TEMPFAIL;
	}
	return STORE_OK;
}

/* The session's index of the listed messages, UIDLs kept from a uidlist. */
static enum store_result
md_index_fill(struct maildir *md, struct store_index *idx, uint64_t total,
    char *err)
{
	if (md->count > 0 &&
	    (idx->msgs = calloc(md->count, sizeof(*idx->msgs))) == NULL) {
		(void)str_copy(err, ERR_LEN, "out of memory");
		return STORE_TEMPFAIL;
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
	return STORE_OK;
}

static enum store_result
md_open(struct store **st_r, const struct store_params *p,
    struct store_index *idx, char *err)
{
	struct maildir *md;
	enum store_result res;
	uint64_t total = 0;

	*st_r = NULL;
	*idx = (struct store_index){ 0 };
	err[0] = '\0';
	if ((md = calloc(1, sizeof(*md))) == NULL) {
		(void)str_copy(err, ERR_LEN, "out of memory");
		return STORE_TEMPFAIL;
	}
	md->lock_fd = md->cur_fd = md->new_fd = md->dir_fd = -1;
	if (strlen(p->path) + sizeof("/" MD_LOCK_NAME) > PATH_MAX) {
		(void)str_copy(err, ERR_LEN, "maildir path too long");
		res = STORE_PERMFAIL;
		goto fail;
	}
	if ((md->path = strdup(p->path)) == NULL) {
		(void)str_copy(err, ERR_LEN, "out of memory");
		res = STORE_TEMPFAIL;
		goto fail;
	}
	/* Opened once: the lock, the index and new/ and cur/ are found in it. */
	md->dir_fd = open(md->path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (md->dir_fd == -1) {
		if (errno == ENOENT) {
			/* No maildir yet: an empty mailbox, nothing to lock. */
			*st_r = (struct store *)md;
			return STORE_OK;
		}
		if (errno == ENOTDIR) {
			(void)str_fmt(err, ERR_LEN, "%s is not a maildir",
			    md->path);
			res = STORE_PERMFAIL;
		} else {
			(void)str_fmt(err, ERR_LEN, "cannot open %s: %s",
			    md->path, strerror(errno));
			res = STORE_TEMPFAIL;
		}
		goto fail;
	}
	if ((res = store_lock_session(md->dir_fd, md->path, MD_LOCK_NAME,
	    &md->lock_fd, err)) != STORE_OK)
		goto fail;
	if ((md->iobuf = malloc(STORE_IOBUF)) == NULL) {
		(void)str_copy(err, ERR_LEN, "out of memory");
		res = STORE_TEMPFAIL;
		goto fail;
	}
	if ((res = md_open_subdirs(md, err)) != STORE_OK ||
	    (res = md_list(md, p, &total, err)) != STORE_OK)
		goto fail;
	(void)store_close_fd(&md->dir_fd);
	/*
	 * Only the open needs these: an idle session holds its index, not
	 * 64 KiB of read buffer or the whole cache.
	 */
	free(md->iobuf);
	md->iobuf = NULL;
	md_cache_drop(md);
	if ((res = md_index_fill(md, idx, total, err)) != STORE_OK)
		goto fail;
	*st_r = (struct store *)md;
	return STORE_OK;
fail:
	md_free(md);
	return res;
}

/* m was renamed (flags changed by another client): find it by base name. */
static int
md_find_base(struct maildir *md, struct md_msg *m)
{
	/* cur/ first: where another reader moves mail to. */
	for (int in_new = 0; in_new <= 1; in_new++) {
		struct dirent *de;
		DIR *dir;
		int fd;

		fd = openat(md_dir(md, in_new), ".", O_RDONLY | O_DIRECTORY |
		    O_CLOEXEC);
		if (fd == -1)
			continue;
		if ((dir = fdopendir(fd)) == NULL) {
			(void)close(fd);
			continue;
		}
		while ((de = readdir(dir)) != NULL) {
			char *name;

			if (strncmp(de->d_name, m->name, m->baselen) != 0 ||
			    (de->d_name[m->baselen] != ':' &&
			    de->d_name[m->baselen] != '\0') ||
			    !md_is_mail(fd, de->d_name, de->d_type))
				continue;
			if ((name = strdup(de->d_name)) == NULL)
				break;
			free(m->name);
			m->name = name;
			m->in_new = in_new;
			(void)closedir(dir);
			return 0;
		}
		(void)closedir(dir);
	}
	return -1;
}

static enum store_result
md_read_open(struct store *st, unsigned int msgnum, struct store_reader **r_r,
    char *err)
{
	struct maildir *md = (struct maildir *)st;
	struct md_reader *r;
	struct md_msg *m;
	struct stat sb;
	int fd, saved;

	*r_r = NULL;
	if (msgnum == 0 || msgnum > md->count) {
		(void)str_fmt(err, ERR_LEN, "no message %u", msgnum);
		return STORE_PERMFAIL;
	}
	m = &md->msgs[msgnum - 1];
	for (int tries = 0;; tries++) {
		fd = openat(md_fd(md, m), m->name, O_RDONLY | O_NOFOLLOW |
		    O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
		if (fd != -1 || errno != ENOENT || tries > 0)
			break;
		if (md_find_base(md, m) == -1)
			break;
	}
	saved = errno;
	md_dirs_close(md);
	errno = saved;
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
	r->md = md;
	r->m = m;
	*r_r = (struct store_reader *)r;
	return STORE_OK;
}

/*
 * A message read to its end checks the size the session was given: a
 * wrong cached size drops the cache, so the next session rebuilds it from
 * the messages; a wrong ",W=" can only be reported.
 */
static void
md_check_size(struct store_reader *sr, uint64_t real)
{
	struct md_reader *r = (struct md_reader *)sr;
	struct maildir *md = r->md;
	struct md_msg *m = r->m;
	char path[PATH_MAX];

	if (real == m->size)
		return;
	log_warnx("maildir=%s size of %s/%s was %llu, is %llu (from %s)",
	    md->path, md_sub(m), m->name, (unsigned long long)m->size,
	    (unsigned long long)real, m->src == MD_SIZE_CACHE ? "the cache" :
	    m->src == MD_SIZE_W ? "its name" : "the file");
	if (m->src == MD_SIZE_CACHE &&
	    str_fmt(path, sizeof(path), "%s/%s", md->path, MD_CACHE_NAME) == 0 &&
	    unlink(path) == -1 && errno != ENOENT)
		log_warn("maildir=%s cannot remove size cache", md->path);
	/* The index carries sizes too: the next open reads the directories. */
	if (m->src == MD_SIZE_CACHE &&
	    str_fmt(path, sizeof(path), "%s/%s", md->path, MD_INDEX_NAME) == 0 &&
	    unlink(path) == -1 && errno != ENOENT)
		log_warn("maildir=%s cannot remove index", md->path);
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
	bool any[2] = { false, false };		/* cur/, new/ changed */

	if (idx->count != md->count) {
		(void)str_copy(err, ERR_LEN,
		    "index does not match the mailbox");
		return STORE_PERMFAIL;
	}
	for (unsigned int i = 0; i < md->count; i++) {
		struct md_msg *m = &md->msgs[i];

		if (!idx->msgs[i].deleted)
			continue;
		if (unlinkat(md_fd(md, m), m->name, 0) == 0) {
			any[m->in_new] = true;
			continue;
		}
		if (errno == ENOENT && (md_find_base(md, m) == -1 ||
		    unlinkat(md_fd(md, m), m->name, 0) == 0 ||
		    errno == ENOENT)) {
			any[m->in_new] = true;
			continue;
		}
		(void)str_fmt(err, ERR_LEN, "cannot delete %s/%s/%s: %s",
		    md->path, md_sub(m), m->name, strerror(errno));
		res = STORE_TEMPFAIL;
	}
	for (int in_new = 0; in_new <= 1; in_new++) {
		int fd = in_new ? md->new_fd : md->cur_fd;

		if (any[in_new] && fd != -1 && fsync(fd) == -1) {
			(void)str_fmt(err, ERR_LEN, "cannot fsync %s/%s: %s",
			    md->path, in_new ? "new" : "cur", strerror(errno));
			res = STORE_TEMPFAIL;
		}
	}
	md_dirs_close(md);
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

/* Tries at a unique name before giving up: each clash means a reused pid. */
#define MD_APPEND_TRIES	8
/* Host part of a delivered name: enough to tell machines apart. */
#define MD_HOST_MAX	32

/* This host's name, with the octets a Maildir name must not hold replaced. */
static void
md_hostname(char *out, size_t size)
{
	char host[256] = "localhost";
	size_t o = 0;

	(void)gethostname(host, sizeof(host) - 1);
	host[sizeof(host) - 1] = '\0';
	for (const char *h = host; *h != '\0' && o + 1 < size &&
	    o < MD_HOST_MAX; h++) {
		unsigned char c = (unsigned char)*h;

		out[o++] = (c == '/' || c == ':' || c == ',' || c <= ' ' ||
		    c >= 0x7f) ? '_' : (char)c;
	}
	out[o] = '\0';
}

/*
 * Octets and messages in new/ and cur/, for a delivery quota: sizes from
 * ",S=" in the names (our deliveries, Dovecot's), else one fstatat.
 */
static enum store_result
md_usage(int dfd, uint64_t *bytes_r, unsigned int *count_r, char *err)
{
	static const char *const subs[] = { "new", "cur" };

	*bytes_r = 0;
	*count_r = 0;
	for (size_t i = 0; i < 2; i++) {
		struct dirent *de;
		DIR *dir;
		int fd = md_open_dir(dfd, subs[i]);

		if (fd == -1 || (dir = fdopendir(fd)) == NULL) {
			if (fd != -1)
				(void)close(fd);
			(void)str_fmt(err, ERR_LEN, "cannot read %s for the "
			    "quota: %s", subs[i], strerror(errno));
			return STORE_TEMPFAIL;
		}
		while ((de = readdir(dir)) != NULL) {
			uint64_t size;
			struct stat st;

			if (de->d_name[0] == '.')
				continue;
			if (md_name_field(de->d_name, md_baselen(de->d_name),
			    'S', &size) == -1) {
				if (fstatat(fd, de->d_name, &st,
				    AT_SYMLINK_NOFOLLOW) == -1)
					continue;	/* moved meanwhile */
				size = (uint64_t)st.st_size;
			}
			if (__builtin_add_overflow(*bytes_r, size, bytes_r))
				*bytes_r = UINT64_MAX;
			if (*count_r < UINT_MAX)
				(*count_r)++;
		}
		(void)closedir(dir);
	}
	return STORE_OK;
}

/*
 * A migrated message's name is its UIDL (a Maildir UIDL is the name), so
 * it must be one: no '/', no ':' (flags follow it), no leading '.'.
 * STORE_OK: already in new/ (nothing to do); STORE_PERMFAIL with err
 * empty: name is in uniq, go on; else with err filled.
 */
static enum store_result
md_kept_name(const struct store_params *p, const char *uidl, int newfd,
    char uniq[NAME_MAX + 1], char *err)
{
	struct stat st;

	if (uidl[0] == '.' || strpbrk(uidl, "/:") != NULL ||
	    str_copy(uniq, NAME_MAX + 1, uidl) < 0) {
		(void)str_fmt(err, ERR_LEN, "UIDL not usable as a file name "
		    "in %s", p->path);
		return STORE_PERMFAIL;
	}
	if (fstatat(newfd, uidl, &st, AT_SYMLINK_NOFOLLOW) == 0)
		return STORE_OK;
	return STORE_PERMFAIL;
}

/*
 * Open the maildir (made by a first delivery, as MTAs' local agents do)
 * and its tmp/ and new/ for a delivery; the caller closes what is open.
 */
static enum store_result
md_deliver_dirs(const struct store_params *p, int *dfd_r, int *tmpfd_r,
    int *newfd_r, char *err)
{
	int dfd;

	if ((dfd = open(p->path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1 &&
	    errno == ENOENT && store_mkdirs(p->path) == 0)
		dfd = open(p->path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd == -1) {
		(void)str_fmt(err, ERR_LEN, "cannot open %s: %s", p->path,
		    strerror(errno));
		return errno == ENOTDIR ? STORE_PERMFAIL : STORE_TEMPFAIL;
	}
	*dfd_r = dfd;
	for (const char *sub = "tmp"; sub != NULL;
	    sub = sub[0] == 't' ? "new" : sub[0] == 'n' ? "cur" : NULL) {
		if (mkdirat(dfd, sub, 0700) == -1 && errno != EEXIST) {
			(void)str_fmt(err, ERR_LEN, "cannot create %s/%s: %s",
			    p->path, sub, strerror(errno));
			return STORE_TEMPFAIL;
		}
	}
	if ((*tmpfd_r = md_open_dir(dfd, "tmp")) == -1 ||
	    (*newfd_r = md_open_dir(dfd, "new")) == -1) {
		(void)str_fmt(err, ERR_LEN, "cannot open %s/tmp or new: %s",
		    p->path, strerror(errno));
		return errno == ENOTDIR || errno == ELOOP ? STORE_PERMFAIL :
		    STORE_TEMPFAIL;
	}
	return STORE_OK;
}

/*
 * Create the message's file in tmp/, its name into uniq: the kept UIDL of
 * a migrated message, else a new unique name. STORE_OK with *fd_r -1: the
 * kept message is in new/ already.
 */
static enum store_result
md_tmp_create(const struct store_params *p, const struct store_delivery *d,
    int tmpfd, int newfd, char uniq[NAME_MAX + 1], int *fd_r, char *err)
{
	static unsigned int seq;
	char host[MD_HOST_MAX + 1];
	enum store_result res;
	int fd = -1;

	*fd_r = -1;
	md_hostname(host, sizeof(host));
	if (d->uidl != NULL) {
		res = md_kept_name(p, d->uidl, newfd, uniq, err);
		if (res != STORE_PERMFAIL || err[0] != '\0')
			return res;
		fd = openat(tmpfd, uniq, O_WRONLY | O_CREAT | O_EXCL |
		    O_NOFOLLOW | O_CLOEXEC, 0600);
		if (fd == -1) {
			(void)str_fmt(err, ERR_LEN, "cannot create %s/tmp/%s: %s",
			    p->path, uniq, strerror(errno));
			return STORE_TEMPFAIL;
		}
	}
	for (int i = 0; fd == -1; i++) {
		struct timeval tv;

		if (i == MD_APPEND_TRIES) {
			(void)str_fmt(err, ERR_LEN, "no unique name in %s/tmp",
			    p->path);
			return STORE_TEMPFAIL;
		}
		(void)gettimeofday(&tv, NULL);
		if (str_fmt(uniq, NAME_MAX + 1, "%lld.M%06ldP%ldQ%u%s%s.%s",
		    (long long)tv.tv_sec, (long)tv.tv_usec, (long)getpid(),
		    ++seq, d->token != NULL ? "R" : "",
		    d->token != NULL ? d->token : "", host) < 0)
			return STORE_TEMPFAIL;
		fd = openat(tmpfd, uniq, O_WRONLY | O_CREAT | O_EXCL |
		    O_NOFOLLOW | O_CLOEXEC, 0600);
		if (fd == -1 && errno != EEXIST) {
			(void)str_fmt(err, ERR_LEN, "cannot create %s/tmp/%s: %s",
			    p->path, uniq, strerror(errno));
			return STORE_TEMPFAIL;
		}
	}
	*fd_r = fd;
	return STORE_OK;
}

/*
 * Deliver into tmp/ under a unique name (O_EXCL), fsync, then rename into
 * new/ as "<unique>,S=<stored>,W=<crlf size>" and fsync new/ (unless the
 * caller does, d->dir_sync_later) [qmail's maildir delivery, Dovecot's
 * maildir-save.c]. A kill at any moment leaves
 * at most a file in tmp/, never a partial one in new/.
 */
static enum store_result
md_append(const struct store_params *p, int in, const struct store_delivery *d,
    char *err)
{
	char dir[PATH_MAX], uniq[NAME_MAX + 1], final[NAME_MAX + 1];
	uint64_t stored = 0, crlfsize = 0, used = 0;
	unsigned int nmsgs = 0;
	enum store_result res = STORE_TEMPFAIL;
	int dfd = -1, tmpfd = -1, newfd = -1, fd = -1;
	bool ends_lf;

	err[0] = '\0';
	if (str_fmt(dir, sizeof(dir), "%s/tmp", p->path) < 0) {
		(void)str_copy(err, ERR_LEN, "maildir path too long");
		return STORE_PERMFAIL;
	}
	if ((res = md_deliver_dirs(p, &dfd, &tmpfd, &newfd, err)) != STORE_OK)
		goto out;
	if ((d->quota_bytes != 0 || d->quota_messages != 0) &&
	    (res = md_usage(dfd, &used, &nmsgs, err)) != STORE_OK)
		goto out;
	res = STORE_TEMPFAIL;
	if ((d->quota_bytes != 0 && used >= d->quota_bytes) ||
	    (d->quota_messages != 0 && nmsgs >= d->quota_messages)) {
		(void)str_fmt(err, ERR_LEN, "mailbox is over its quota "
		    "(%llu octets, %u messages)", (unsigned long long)used,
		    nmsgs);
		res = STORE_OVERQUOTA;
		goto out;
	}
	/* A kept message already in new/ is delivered: fd stays -1. */
	if ((res = md_tmp_create(p, d, tmpfd, newfd, uniq, &fd, err)) !=
	    STORE_OK || fd == -1)
		goto out;
	res = STORE_TEMPFAIL;
	if (store_append_copy(in, fd, d, STORE_ESCAPE_NONE, &stored, &crlfsize,
	    &ends_lf, err) < 0)
		goto unlink;
	if (d->quota_bytes != 0 && (stored > d->quota_bytes ||
	    used > d->quota_bytes - stored)) {
		(void)str_copy(err, ERR_LEN, "message exceeds the quota");
		res = STORE_OVERQUOTA;
		(void)unlinkat(tmpfd, uniq, 0);
		goto out;
	}
	if (fsync(fd) == -1 || store_close_fd(&fd) == -1) {
		(void)str_fmt(err, ERR_LEN, "fsync %s/tmp/%s: %s", p->path,
		    uniq, strerror(errno));
		goto unlink;
	}
	if ((d->uidl != NULL ? str_copy(final, sizeof(final), uniq) :
	    str_fmt(final, sizeof(final), "%s,S=%llu,W=%llu", uniq,
	    (unsigned long long)stored, (unsigned long long)crlfsize)) < 0 ||
	    renameat2(tmpfd, uniq, newfd, final, RENAME_NOREPLACE) == -1) {
		(void)str_fmt(err, ERR_LEN, "rename into %s/new: %s", p->path,
		    strerror(errno));
		goto unlink;
	}
	if (!d->dir_sync_later && fsync(newfd) == -1) {
		/*
		 * The name is in new/, possibly not on disk: take it back so
		 * the MTA's retry cannot make a second copy.
		 */
		(void)str_fmt(err, ERR_LEN, "fsync %s/new: %s", p->path,
		    strerror(errno));
		(void)unlinkat(newfd, final, 0);
		goto out;
	}
	res = STORE_OK;
	goto out;
unlink:
	if (errno == EDQUOT || errno == ENOSPC)
		res = STORE_TEMPFAIL;
	(void)unlinkat(tmpfd, uniq, 0);
out:
	(void)store_close_fd(&fd);
	(void)store_close_fd(&tmpfd);
	(void)store_close_fd(&newfd);
	(void)store_close_fd(&dfd);
	return res;
}

static enum store_result
md_quota(const struct store_params *p, const struct store_delivery *d,
    char *err)
{
	enum store_result res;
	unsigned int n;
	uint64_t used;
	int dfd;

	if (d->quota_bytes == 0 && d->quota_messages == 0)
		return STORE_OK;
	dfd = open(p->path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd == -1)
		return errno == ENOENT ? STORE_OK : STORE_TEMPFAIL;
	res = md_usage(dfd, &used, &n, err);
	(void)close(dfd);
	if (res != STORE_OK)
		return res;
	if ((d->quota_bytes != 0 && used >= d->quota_bytes) ||
	    (d->quota_messages != 0 && n >= d->quota_messages)) {
		(void)str_fmt(err, ERR_LEN, "mailbox is over its quota "
		    "(%llu octets, %u messages)", (unsigned long long)used, n);
		return STORE_OVERQUOTA;
	}
	return STORE_OK;
}

/* The token as our names carry it: "R<token>." after the Q field. */
static bool
md_has_token(const char *name, const char *token)
{
	const char *r = strstr(name, token);

	return r != NULL && r > name && r[-1] == 'R' &&
	    r[strlen(token)] == '.';
}

static enum store_result
md_probe(const struct store_params *p, const char *token, char *err)
{
	static const char *const subs[] = { "new", "cur" };
	int dfd;

	if (strlen(token) != STORE_TOKEN_LEN ||
	    strspn(token, "0123456789abcdef") != STORE_TOKEN_LEN) {
		(void)str_copy(err, ERR_LEN, "bad token");
		return STORE_TEMPFAIL;
	}
	dfd = open(p->path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd == -1) {
		(void)str_fmt(err, ERR_LEN, "cannot open %s: %s", p->path,
		    strerror(errno));
		return errno == ENOENT ? STORE_PERMFAIL : STORE_TEMPFAIL;
	}
	for (size_t i = 0; i < 2; i++) {
		struct dirent *de;
		DIR *dir;
		int fd = md_open_dir(dfd, subs[i]);

		if (fd == -1 || (dir = fdopendir(fd)) == NULL) {
			if (fd != -1)
				(void)close(fd);
			if (errno == ENOENT)
				continue;
			(void)str_fmt(err, ERR_LEN, "cannot read %s/%s: %s",
			    p->path, subs[i], strerror(errno));
			(void)close(dfd);
			return STORE_TEMPFAIL;
		}
		while ((de = readdir(dir)) != NULL) {
			if (md_has_token(de->d_name, token)) {
				(void)closedir(dir);
				(void)close(dfd);
				return STORE_OK;
			}
		}
		(void)closedir(dir);
	}
	(void)close(dfd);
	(void)str_copy(err, ERR_LEN, "not delivered");
	return STORE_PERMFAIL;
}

/*
 * Files in tmp/ that appends of this host left when they were killed:
 * named by md_tmp_create with a pid that is gone. Other hosts' files and
 * those of live processes (still writing) are left alone.
 */
static void
md_clean_tmp(int tmpfd)
{
	char host[MD_HOST_MAX + 1];
	struct dirent *de;
	DIR *dir;
	int fd = dup(tmpfd);

	if (fd == -1 || (dir = fdopendir(fd)) == NULL) {
		if (fd != -1)
			(void)close(fd);
		return;
	}
	md_hostname(host, sizeof(host));
	while ((de = readdir(dir)) != NULL) {
		const char *m = strstr(de->d_name, ".M"), *p, *dot;
		char *end;
		long pid;

		if (m == NULL || (p = strchr(m, 'P')) == NULL ||
		    p[1] < '1' || p[1] > '9')
			continue;
		errno = 0;
		pid = strtol(p + 1, &end, 10);
		if (errno != 0 || *end != 'Q' || pid > INT_MAX ||
		    (dot = strchr(end, '.')) == NULL ||
		    strcmp(dot + 1, host) != 0)
			continue;
		if (kill((pid_t)pid, 0) == -1 && errno == ESRCH)
			(void)unlinkat(tmpfd, de->d_name, 0);
	}
	(void)closedir(dir);
}

enum store_result
store_maildir_ready(const struct store_params *p, char *err)
{
	int dfd = -1, tmpfd = -1, newfd = -1;
	enum store_result res;

	err[0] = '\0';
	/* Not its parents: a mistyped path should fail, not grow a tree. */
	if (mkdir(p->path, 0700) == -1 && errno != EEXIST) {
		(void)str_fmt(err, ERR_LEN, "cannot create %s: %s", p->path,
		    strerror(errno));
		return errno == ENOENT || errno == ENOTDIR ? STORE_PERMFAIL :
		    STORE_TEMPFAIL;
	}
	res = md_deliver_dirs(p, &dfd, &tmpfd, &newfd, err);
	if (res == STORE_OK)
		md_clean_tmp(tmpfd);
	(void)store_close_fd(&tmpfd);
	(void)store_close_fd(&newfd);
	(void)store_close_fd(&dfd);
	return res;
}

enum store_result
store_maildir_sync(const struct store_params *p, char *err)
{
	char dir[PATH_MAX];
	int fd;

	if (str_fmt(dir, sizeof(dir), "%s/new", p->path) < 0) {
		(void)str_copy(err, ERR_LEN, "maildir path too long");
		return STORE_PERMFAIL;
	}
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd == -1 || fsync(fd) == -1) {
		(void)str_fmt(err, ERR_LEN, "fsync %s: %s", dir,
		    strerror(errno));
		(void)store_close_fd(&fd);
		return STORE_TEMPFAIL;
	}
	(void)store_close_fd(&fd);
	return STORE_OK;
}

const struct store_ops store_maildir_ops = {
	.name = "maildir",
	.open = md_open,
	.read_open = md_read_open,
	.read = md_read,
	.read_size = md_check_size,
	.read_close = md_read_close,
	.commit = md_commit,
	.close = md_close,
	.append = md_append,
	.probe = md_probe,
	.quota = md_quota,
};
