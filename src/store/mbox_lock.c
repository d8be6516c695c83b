#include "mbox_lock.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../lib/ev.h"
#include "../lib/fdio.h"
#include "../lib/log.h"

int
mbox_lock_init(struct mbox_lock *lk, const char *path, unsigned int stale,
    char *err)
{
	*lk = (struct mbox_lock){ .fd = -1 };
	lk->stale = stale != 0 ? stale : MBOX_LOCK_STALE_DEFAULT;
	if (str_copy(lk->path, sizeof(lk->path), path) == -1 ||
	    str_fmt(lk->dotlock, sizeof(lk->dotlock), "%s.lock", path) == -1) {
		(void)str_fmt(err, ERR_LEN, "mbox path too long");
		return -1;
	}
	return 0;
}

/* The directory of the dotlock, for O_TMPFILE. */
static int
lock_dir(const struct mbox_lock *lk, char *dir, size_t size)
{
	const char *slash = strrchr(lk->dotlock, '/');

	if (slash == NULL)
		return str_copy(dir, size, ".");
	if (slash == lk->dotlock)
		return str_copy(dir, size, "/");
	if ((size_t)(slash - lk->dotlock) >= size)
		return -1;
	memcpy(dir, lk->dotlock, (size_t)(slash - lk->dotlock));
	dir[slash - lk->dotlock] = '\0';
	return 0;
}

/*
 * Link the anonymous file on fd to the lock name. 0, or -1 with errno
 * (EEXIST: held; ENOSYS: this way is not available here).
 */
static int
link_tmpfile(int fd, const char *name)
{
	char proc[64];

	(void)str_fmt(proc, sizeof(proc), "/proc/self/fd/%d", fd);
	if (linkat(AT_FDCWD, proc, AT_FDCWD, name, AT_SYMLINK_FOLLOW) == 0)
		return 0;
	if (errno != EEXIST && errno != EACCES && errno != EPERM &&
	    errno != EROFS)
		errno = ENOSYS;	/* no /proc: use a named temporary file */
	return -1;
}

/*
 * Create the dotlock with our pid already in it. Preferred: an O_TMPFILE
 * file linked into place, so a kill at any moment leaves neither an empty
 * lock nor a temporary name behind. Where the file system has no
 * O_TMPFILE (NFS) or /proc is missing: a unique named file linked to the
 * lock name (liblockfile's way), then unlinked. 0 with st_r filled, -1
 * with errno (EEXIST: someone holds it).
 */
static int
dotlock_create(struct mbox_lock *lk, struct stat *st_r)
{
	char dir[PATH_MAX], tmp[PATH_MAX], pid[32];
	int fd, r = -1, saved;

	(void)str_fmt(pid, sizeof(pid), "%ld\n", (long)getpid());
	if (lock_dir(lk, dir, sizeof(dir)) == -1) {
		errno = ENAMETOOLONG;
		return -1;
	}
	fd = open(dir, O_TMPFILE | O_WRONLY | O_CLOEXEC, 0644);
	if (fd != -1) {
		if (fd_write_all(fd, pid, strlen(pid)) == 0 &&
		    fstat(fd, st_r) == 0 && link_tmpfile(fd, lk->dotlock) == 0)
			r = 0;
		saved = errno;
		(void)close(fd);
		errno = saved;
		if (r == 0 || errno != ENOSYS)
			return r;
	} else if (errno == EACCES || errno == EPERM || errno == EROFS) {
		return -1;
	}
	if (str_fmt(tmp, sizeof(tmp), "%s.%ld.postino-tmp", lk->dotlock,
	    (long)getpid()) == -1) {
		errno = ENAMETOOLONG;
		return -1;
	}
	(void)unlink(tmp);
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
	    0644);
	if (fd == -1)
		return -1;
	if (fd_write_all(fd, pid, strlen(pid)) == 0 &&
	    fstat(fd, st_r) == 0 && link(tmp, lk->dotlock) == 0)
		r = 0;
	saved = errno;
	(void)close(fd);
	(void)unlink(tmp);
	errno = saved;
	return r;
}

/* The pid a dotlock names, or 0 when it names none. */
static pid_t
dotlock_owner(const struct mbox_lock *lk)
{
	char buf[32];
	uint32_t pid;
	ssize_t n;
	int fd;

	fd = open(lk->dotlock, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
	if (fd == -1)
		return 0;
	n = read(fd, buf, sizeof(buf) - 1);
	(void)close(fd);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	if (buf[n - 1] == '\n')
		buf[n - 1] = '\0';
	if (str_parse_u32(buf, &pid) == -1 || pid == 0 || pid > INT32_MAX)
		return 0;
	return (pid_t)pid;
}

/*
 * A dotlock whose writer left its pid (as liblockfile, procmail and we do)
 * and is gone on this host is stale at once: a kill -9 must not keep the
 * mailbox locked for the stale time. An empty or unreadable lock, or a
 * live pid, proves nothing.
 */
static bool
dotlock_owner_dead(const struct mbox_lock *lk)
{
	pid_t pid = dotlock_owner(lk);

	return pid != 0 && kill(pid, 0) == -1 && errno == ESRCH;
}

/* OK, BUSY, or ERROR with err. */
static enum mbox_lock_result
dotlock_try(struct mbox_lock *lk, char *err)
{
	if (lk->no_dotlock)
		return MBOX_LOCK_OK;
	/* Bounded: a lock that keeps reappearing is simply busy. */
	for (int tries = 0; tries < 3; tries++) {
		struct stat st;

		if (dotlock_create(lk, &st) == 0) {
			lk->dotlock_dev = st.st_dev;
			lk->dotlock_ino = st.st_ino;
			lk->dotlocked = true;
			return MBOX_LOCK_OK;
		}
		if (errno == EACCES || errno == EPERM || errno == EROFS) {
			log_debug("mbox=%s no dotlock: %s", lk->path,
			    strerror(errno));
			lk->no_dotlock = true;
			return MBOX_LOCK_OK;
		}
		if (errno != EEXIST)
			break;
		if (lstat(lk->dotlock, &st) == -1) {
			if (errno == ENOENT)
				continue;
			break;
		}
		bool old = time(NULL) - st.st_mtime > (time_t)lk->stale;

		if (!old && !dotlock_owner_dead(lk))
			return MBOX_LOCK_BUSY;
		log_warnx("mbox=%s removing stale dotlock %s (%s)", lk->path,
		    lk->dotlock, old ? "too old" : "its owner is gone");
		if (unlink(lk->dotlock) == -1 && errno != ENOENT)
			break;
	}
	if (errno == EEXIST)
		return MBOX_LOCK_BUSY;
	(void)str_fmt(err, ERR_LEN, "cannot create dotlock %s: %s",
	    lk->dotlock, strerror(errno));
	return MBOX_LOCK_ERROR;
}

static void
dotlock_release(struct mbox_lock *lk)
{
	struct stat st;

	if (!lk->dotlocked)
		return;
	lk->dotlocked = false;
	/*
	 * Not ours any more if someone judged it stale and took it over: a
	 * new lock may reuse our inode number, so its pid must be ours too.
	 */
	if (lstat(lk->dotlock, &st) == 0 && st.st_dev == lk->dotlock_dev &&
	    st.st_ino == lk->dotlock_ino && dotlock_owner(lk) == getpid() &&
	    unlink(lk->dotlock) == -1)
		log_warn("mbox=%s cannot remove dotlock", lk->path);
}

enum mbox_lock_result
mbox_lock_try(struct mbox_lock *lk, int fd, char *err)
{
	struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET };
	enum mbox_lock_result r;

	if (lk->dotlocked || lk->fcntl_locked) {
		(void)str_copy(err, ERR_LEN, "mbox lock taken twice");
		return MBOX_LOCK_ERROR;
	}
	if ((r = dotlock_try(lk, err)) != MBOX_LOCK_OK)
		return r;
	if (fcntl(fd, F_SETLK, &fl) == 0) {
		lk->fd = fd;
		lk->fcntl_locked = true;
		return MBOX_LOCK_OK;
	}
	if (errno == EAGAIN || errno == EACCES) {
		dotlock_release(lk);
		return MBOX_LOCK_BUSY;
	}
	(void)str_fmt(err, ERR_LEN, "cannot lock %s: %s", lk->path,
	    strerror(errno));
	dotlock_release(lk);
	return MBOX_LOCK_ERROR;
}

enum mbox_lock_result
mbox_lock_wait(struct mbox_lock *lk, int fd, unsigned int wait, char *err)
{
	uint64_t end = ev_now_ms() + (uint64_t)wait * 1000;
	enum mbox_lock_result r;

	while ((r = mbox_lock_try(lk, fd, err)) == MBOX_LOCK_BUSY &&
	    ev_now_ms() < end)
		(void)nanosleep(&(struct timespec){ 0,
		    MBOX_LOCK_POLL_MS * 1000000L }, NULL);
	if (r == MBOX_LOCK_BUSY)
		(void)str_fmt(err, ERR_LEN, "%s is locked by another program",
		    lk->path);
	return r;
}

void
mbox_lock_release(struct mbox_lock *lk)
{
	struct flock fl = { .l_type = F_UNLCK, .l_whence = SEEK_SET };

	if (lk->fcntl_locked && fcntl(lk->fd, F_SETLK, &fl) == -1)
		log_warn("mbox=%s cannot unlock", lk->path);
	lk->fcntl_locked = false;
	lk->fd = -1;
	dotlock_release(lk);
}

bool
mbox_lock_same_file(int fd, const char *path)
{
	struct stat fst, pst;

	return fstat(fd, &fst) == 0 && stat(path, &pst) == 0 &&
	    fst.st_dev == pst.st_dev && fst.st_ino == pst.st_ino;
}

/* Empty lines owed before a From_ line so that the last message ends. */
int
mbox_gap(int fd, off_t size)
{
	char tail[2];

	if (size == 0)
		return 0;
	if (pread(fd, tail, size >= 2 ? 2 : 1, size >= 2 ? size - 2 : 0) < 0)
		return -1;
	if (size >= 2 && tail[0] == '\n' && tail[1] == '\n')
		return 0;
	return tail[size >= 2 ? 1 : 0] == '\n' ? 1 : 2;
}
