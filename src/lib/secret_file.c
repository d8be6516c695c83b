#include "secret_file.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "str.h"

int
secret_file_read(const char *what, const char *path, char *buf,
    size_t size, char *err)
{
	struct stat st;
	ssize_t n;
	int fd;

	if (size == 0) {
		str_copy(err, ERR_LEN, "no room for a secret");
		return -1;
	}
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0) {
		str_fmt(err, ERR_LEN, "%s %s: %s", what, path,
		    strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) ||
	    (uint64_t)st.st_size >= size) {
		str_fmt(err, ERR_LEN, "%s %s: not a regular file of at most "
		    "%zu octets", what, path, size - 1);
		close(fd);
		return -1;
	}
	/* Started anyway (a restart must not fail on it), but said. */
	if ((st.st_mode & 077) != 0)
		log_warnx("event=%s-open path=\"%s\" mode=%04o: make it "
		    "0600", what, path, (unsigned int)(st.st_mode & 07777));
	n = read(fd, buf, size - 1);
	close(fd);
	if (n < 0) {
		str_fmt(err, ERR_LEN, "%s %s: %s", what, path,
		    strerror(errno));
		explicit_bzero(buf, size);
		return -1;
	}
	buf[n] = '\0';
	buf[strcspn(buf, "\r\n")] = '\0';
	return 0;
}
