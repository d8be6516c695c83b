/*
 * The fetch algorithm: which messages are new (UIDL, else a digest of the
 * header), fetching them with pipelined RETRs into a destination
 * (fetch.h), recording each in the account's state (state.h) so that a
 * kill at any point neither loses nor, where the destination can tell,
 * duplicates one, and deleting on the server only what is durable here.
 * It knows nothing of options or accounts: main.c resolves those into a
 * struct fetch_job.
 */
#ifndef POSTINO_FETCH_LOOP_H
#define POSTINO_FETCH_LOOP_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "fetch.h"
#include "limits.h"
#include "pop3c.h"

/* Log in (the caller's account and options); an exit code (client.h). */
typedef int fetch_connect_fn(void *arg, struct pop3c **c_r);

struct fetch_job {
	const char	*server;	/* "host:port", for messages */
	const char	*host;		/* the server, for Received: */
	const char	*user;		/* the login: Received:, MDA %T */
	const char	*state_key;	/* the account's state (state_open) */
	bool		 rebuild_state;	/* record all, fetch nothing */
	enum fetch_kind	 kind;		/* unless rebuild_state */
	const char	*dest;		/* Maildir, mbox, command or LMTP */
	const char	*lmtp_rcpt;	/* LMTP: RCPT TO */
	mode_t		 mda_umask;
	bool		 keep, delete_oversized, received;
	bool		 quiet, verbose;
	uint64_t	 max_size;	/* 0: no limit */
	uint32_t	 max_messages, keep_days;
	fetch_connect_fn *connect;
	void		*connect_arg;
};

/* Run the job: an exit code (client.h). connect's session is the caller's. */
int fetch_loop_run(const struct fetch_job *job);

#endif
