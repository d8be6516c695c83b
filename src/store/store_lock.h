/*
 * Helpers shared by the store backends; not for use outside src/store.
 */
#ifndef POSTINO_STORE_LOCK_H
#define POSTINO_STORE_LOCK_H

#include <stddef.h>

#include "store.h"

/* Read buffer of the backends: big enough for throughput, small per session. */
#define STORE_IOBUF	65536

/*
 * Take the session lock: an OFD write lock on name (created 0600 if
 * needed) in the directory dirfd (AT_FDCWD: name is a path), shown in
 * errors as dir/name (dir NULL: name alone),
 * non-blocking. OFD locks belong to the open file description, so a second
 * session of the same process conflicts too, and the lock dies with the fd
 * or the process. STORE_OK with the fd in *fd_r, STORE_LOCKED when another
 * session holds it, STORE_TEMPFAIL otherwise (err filled).
 */
enum store_result store_lock_session(int dirfd, const char *dir,
    const char *name, int *fd_r, char *err);

#include "../lib/fdio.h"	/* fd_write_all() */

/* fsync the directory dir; 0, or -1 with errno. */
int store_fsync_dir(const char *dir);

/* Close *fd if open and set it to -1; -1 with errno if close failed. */
int store_close_fd(int *fd);

#endif
