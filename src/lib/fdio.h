/*
 * Whole writes to a file descriptor: short writes continued, EINTR retried.
 */
#ifndef POSTINO_FDIO_H
#define POSTINO_FDIO_H

#include <stddef.h>

/* Write all len octets. 0, or -1 with errno (EIO for a write of 0). */
int fd_write_all(int fd, const void *buf, size_t len);

#endif
