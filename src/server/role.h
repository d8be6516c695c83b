/*
 * The skeleton every role process of postinod shares: giving up root, the
 * seccomp filter, the event loop, SIGTERM and SIGINT, the channel to the
 * master (shutdown, the master's death, the ready report) and the channels
 * to the auth workers the master hands over. A process runs one role, so
 * the skeleton's state is the process's. The role keeps only what is its
 * own: its messages, its connections and how it finishes. The master
 * runs on the same loop, signals and run; it has no master to talk to,
 * keeps root (it never calls role_drop) and waits for more signals
 * (struct role's master and signals).
 */
#ifndef POSTINO_ROLE_H
#define POSTINO_ROLE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "../lib/ev.h"
#include "../lib/ipc.h"
#include "../lib/sandbox.h"

/* Whom a role started as root becomes. */
struct role_user {
	const char	*key;		/* its configuration key, for errors */
	const char	*name;		/* looked up; NULL: uid and gid below */
	uid_t		 uid;
	gid_t		 gid;
	const char	*extra_group;	/* kept aside (priv_group_raise), or "" */
	const char	*chroot;	/* NULL: none */
};

/*
 * Started as root: become u for good (fatal when that fails or u is root).
 * Not root: nothing (the demo and tests run every role as the caller).
 */
void role_drop(const struct role_user *u);

/* A signal a role waits for besides SIGTERM and SIGINT. */
struct role_signal {
	int		 signo;
	ev_signal_fn	*fn;
};

struct role {
	/*
	 * SIGTERM, SIGINT, MSG_SHUTDOWN and the master's death: finish what
	 * cannot be cut and stop the loop (ev_stop) when nothing is left.
	 * role_stop_signal() tells which signal, if one did.
	 */
	void	(*stop)(void);
	/* Any other message from the master; msg->fd is the role's. */
	void	(*master_msg)(struct ipc_msg *msg);
	/*
	 * A message from auth worker idx (msg->fd already closed), or NULL:
	 * that worker is gone (role_auth(idx) is NULL already). NULL: the
	 * role takes no channel to the auth workers.
	 */
	void	(*auth_msg)(unsigned int idx, struct ipc_msg *msg);
	/* A channel to an auth worker came up; NULL: nothing to do. */
	void	(*auth_up)(void);
	/* Enter the seccomp filter for sandbox once the loop is made. */
	bool		 sandboxed;
	enum sandbox_role sandbox;
	/*
	 * The master itself: it is no one's child, so no channel on
	 * ROLE_MASTER_FD; master_msg, auth_msg and auth_up stay NULL.
	 */
	bool		 master;
	/* More signals, ended by a zero signo (the master: SIGCHLD, SIGHUP). */
	const struct role_signal *signals;
};

/*
 * The loop with its signals, the master's channel on ROLE_MASTER_FD and
 * the filter. The role then arms its own timers and listeners and calls
 * role_run(); role_end() frees what this made. Fatal on failure.
 */
struct ev *role_start(const struct role *r);
/* Serve until the role stops the loop; -1 on an epoll failure (ev_run). */
int role_run(void);
void role_end(void);
/* The signal that called stop() (SIGTERM, SIGINT); 0 while none has. */
int role_stop_signal(void);

/* A message to the master; -1 as ipc_send(). */
int role_send(uint32_t type, const void *data, size_t len, int fd);
/* Tell the master this worker is ready, once; later calls do nothing. */
void role_ready(void);

/* How many auth workers the master announced: 0 before the first channel. */
unsigned int role_nauth(void);
/* The channel to auth worker idx; NULL while there is none. */
struct ipc *role_auth(unsigned int idx);
/* The next channel round-robin with its index; NULL when there is none. */
struct ipc *role_auth_next(unsigned int *idx_r);

#endif
