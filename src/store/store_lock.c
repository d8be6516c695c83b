#include "store_lock.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "../lib/log.h"

enum store_result
store_lock_session(int dirfd, const char *dir, const char *name, int *fd_r,
    char *err)
{
	struct flock fl = { 0 };
	int fd;

	fd = openat(dirfd, name, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC,
	    0600);
	if (fd == -1) {
		(void)str_fmt(err, ERR_LEN, "cannot open session lock %s%s%s: %s",
		    dir != NULL ? dir : "", dir != NULL ? "/" : "", name,
		    strerror(errno));
		return STORE_TEMPFAIL;
	}
	fl.l_type = F_WRLCK;
	fl.l_whence = SEEK_SET;
	fl.l_start = 0;
	fl.l_len = 0;
	if (fcntl(fd, F_OFD_SETLK, &fl) == -1) {
		int saved = errno;

		(void)close(fd);
		if (saved == EAGAIN || saved == EACCES) {
			(void)str_copy(err, ERR_LEN,
			    "mailbox is in use by another session");
			return STORE_LOCKED;
		}
		(void)str_fmt(err, ERR_LEN, "cannot lock %s%s%s: %s",
		    dir != NULL ? dir : "", dir != NULL ? "/" : "", name,
		    strerror(saved));
		return STORE_TEMPFAIL;
	}
	*fd_r = fd;
	return STORE_OK;
}

int
store_fsync_dir(const char *dir)
{
	int fd, rc = 0;

	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd == -1)
		return -1;
	if (fsync(fd) == -1)
		rc = -1;
	if (close(fd) == -1)
		rc = -1;
	return rc;
}

int
store_close_fd(int *fd)
{
	int rc = 0;

	if (*fd != -1) {
		if (close(*fd) == -1)
			rc = -1;
		*fd = -1;
	}
	return rc;
}
