/*
 * The one mbox locking implementation (postinod's mbox store and postino's
 * mbox delivery): the locks an MTA takes on a spool file, a dotlock
 * "<mbox>.lock" and a classic fcntl write lock on the whole file, in that
 * order (Debian policy 22.6, procmail, liblockfile, Dovecot's
 * mbox_lock_dotlock + fcntl).
 *
 * - The dotlock is created with our pid already in it (a unique file is
 *   linked to the lock name), so no kill ever leaves an empty lock. A lock
 *   whose owner pid no longer exists on this host is removed at once; any
 *   other lock is stale only after `stale` seconds without a change.
 * - When the spool directory may not be written (EACCES, EPERM, EROFS) the
 *   fcntl lock alone guards, as in Dovecot.
 * - When the fcntl lock is busy the dotlock is given back, so a program
 *   that locks in the other order is never kept waiting on us.
 *
 * mbox_lock_try() never sleeps, so an event loop can retry it from a timer;
 * mbox_lock_wait() polls it for a bounded time for callers that may block.
 */
#ifndef POSTINO_MBOX_LOCK_H
#define POSTINO_MBOX_LOCK_H

#include <limits.h>
#include <stdbool.h>
#include <sys/types.h>

#include "../lib/str.h"

/* procmail and liblockfile judge a dotlock stale after 300 s. */
#define MBOX_LOCK_STALE_DEFAULT	300
/* Poll interval of mbox_lock_wait(): short next to an MTA's append. */
#define MBOX_LOCK_POLL_MS	50

enum mbox_lock_result {
	MBOX_LOCK_OK,		/* both locks held */
	MBOX_LOCK_BUSY,		/* another program holds one; nothing held */
	MBOX_LOCK_ERROR,	/* err filled; nothing held */
};

struct mbox_lock {
	char		 path[PATH_MAX];	/* the mbox, for messages */
	char		 dotlock[PATH_MAX];
	unsigned int	 stale;
	int		 fd;		/* fcntl-locked fd (the caller's) */
	bool		 dotlocked;
	bool		 fcntl_locked;
	bool		 no_dotlock;	/* directory not writable */
	dev_t		 dotlock_dev;
	ino_t		 dotlock_ino;
};

/*
 * Prepare lk for the mbox at path; stale 0 means MBOX_LOCK_STALE_DEFAULT.
 * Takes nothing yet. 0, or -1 with err (path too long).
 */
int mbox_lock_init(struct mbox_lock *lk, const char *path, unsigned int stale,
    char *err);

/*
 * One attempt at both locks, fcntl on fd (the mbox, open for writing,
 * owned by the caller and kept open until mbox_lock_release()). Never
 * sleeps. A stale or dead-owner dotlock is removed (and logged).
 */
enum mbox_lock_result mbox_lock_try(struct mbox_lock *lk, int fd, char *err);

/*
 * mbox_lock_try() every MBOX_LOCK_POLL_MS until it is not BUSY or `wait`
 * seconds have passed (0: one attempt). BUSY at the end fills err.
 */
enum mbox_lock_result mbox_lock_wait(struct mbox_lock *lk, int fd,
    unsigned int wait, char *err);

/* Release what is held (the dotlock only if it is still ours). */
void mbox_lock_release(struct mbox_lock *lk);

/*
 * Does path still name the file open on fd? A writer that replaces the
 * mbox by rename (postinod's commit, some MUAs) may have done so while we
 * waited for the lock: then the caller must reopen and lock again.
 */
bool mbox_lock_same_file(int fd, const char *path);

/*
 * Empty lines (0, 1 or 2) an appender owes before its From_ line so that
 * the last message of the size octets of fd ends with an empty line; -1
 * on a read error. Both appenders (the store's and postino's) ask this.
 */
int mbox_gap(int fd, off_t size);

#endif
