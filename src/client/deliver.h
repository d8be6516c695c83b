/*
 * Inside fetch.h: one table of operations per destination kind, each in
 * its own file (deliver_maildir.c, deliver_mbox.c, deliver_mda.c,
 * deliver_lmtp.c), and the state they share with fetch.c, which does
 * what every kind needs (buffering, the sender, mboxrd escaping, the
 * spool) and calls the table. Only the delivery files include this.
 */
#ifndef POSTINO_DELIVER_H
#define POSTINO_DELIVER_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "../store/mbox_append.h"
#include "deliver_lmtp.h"
#include "fetch.h"

struct deliver_ops;

struct fetch_dest {
	const struct deliver_ops *ops;
	enum fetch_kind	 kind;
	char		 where[PATH_MAX];
	int		 fd;			/* the spool */
	char		 token[STORE_TOKEN_LEN + 1];	/* Maildir: its append's */
	bool		 spool_named;		/* fetch_set_spool() */
	char		 result[PATH_MAX];	/* MDA: its outcome, for recovery */
	int		 result_fd;		/* MDA: locked while it runs */
	mode_t		 mda_umask;
	char		 recipient[FETCH_SENDER_MAX + 1];	/* MDA %T, LMTP */
	char		 cmd[FETCH_MDA_CMD_MAX];	/* MDA: %F, %T expanded */
	struct deliver_lmtp *lmtp;		/* LMTP: the session */
	struct store_mbox_txn txn;		/* mbox: locked once prepared */
	unsigned long	 commits;		/* mbox appends (test hook) */
	unsigned long	 kill_append;		/* test builds: see fetch_open */
	uint64_t	 kill_at;		/* test builds: octets left */
	bool		 unsynced;		/* Maildir: renames to fsync */
	bool		 prepared;
	bool		 active;
	bool		 failed;
	bool		 refused;		/* LMTP: a 5xx for the message */
	int		 err_no;		/* errno of a failed write */
	uint64_t	 size;			/* stored octets */
	bool		 bol;			/* next piece starts a line */
	bool		 in_header;
	bool		 collecting;		/* mbox: gathering line head */
	size_t		 head_len;
	char		 head[FETCH_HEAD_MAX];
	char		 sender[FETCH_SENDER_MAX + 1];
	size_t		 used;
	char		 buf[FETCH_BUF_SIZE];
};

/*
 * A destination kind; every kind gets the message in the spool (d->fd,
 * emptied by fetch_begin). NULL entries: nothing to do. The results are those of the fetch_* functions of
 * the same names; recover gets the token without its first word (name).
 */
struct deliver_ops {
	const char	*name;		/* first word of its tokens */
	int		(*open)(struct fetch_dest *d, char *err);
	int		(*prepare)(struct fetch_dest *d, char *token,
			    size_t size, char *err);
	int		(*commit)(struct fetch_dest *d, char *err);
	int		(*recover)(struct fetch_dest *d, const char *arg,
			    char *err);
	int		(*sync)(struct fetch_dest *d, char *err);
	void		(*abort)(struct fetch_dest *d);
	void		(*close)(struct fetch_dest *d);	/* at fetch_close */
};

extern const struct deliver_ops deliver_maildir_ops;
extern const struct deliver_ops deliver_mbox_ops;
extern const struct deliver_ops deliver_mda_ops;
extern const struct deliver_ops deliver_lmtp_ops;

/* The buffered octets to the file (d->fd). 0, or -1 with errno. */
int deliver_flush(struct fetch_dest *d);

/* Up to limit octets of the spool (from 0) into fd; 0, or -1 (errno). */
int deliver_copy_spool(struct fetch_dest *d, int fd, uint64_t limit);

/* Flushed and back at its start, for a reader: 0, or -1 with err. */
int deliver_rewind_spool(struct fetch_dest *d, char *err);

#endif
