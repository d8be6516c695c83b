/*
 * Messages between postinod's processes over SOCK_SEQPACKET socketpairs:
 * one message = one packet = a type, a payload of at most IPC_MAX octets and
 * at most one file descriptor. The kernel keeps the boundaries, so there is
 * no framing to get wrong; the receiver still checks every payload's length
 * and trusts it no more than network input.
 */
#ifndef POSTINO_IPC_H
#define POSTINO_IPC_H

#include <stddef.h>
#include <stdint.h>

#include "ev.h"

#define IPC_MAX		8192

struct ipc_msg {
	uint32_t	type;
	size_t		len;
	int		fd;		/* -1 when none; the receiver owns it */
	unsigned char	data[IPC_MAX];
};

struct ipc;

/* A message arrived (msg->fd must be taken or closed), or the peer is gone (msg == NULL). */
typedef void ipc_msg_fn(struct ipc *ipc, struct ipc_msg *msg, void *arg);

/* Make a nonblocking, close-on-exec SEQPACKET pair. -1 on failure. */
int ipc_pair(int fds[2]);

/* Wrap fd (taken over) and watch it in ev. NULL on failure. */
struct ipc *ipc_new(struct ev *ev, int fd, ipc_msg_fn *fn, void *arg);
void ipc_free(struct ipc **ipc);
int ipc_fd(const struct ipc *ipc);

/*
 * Queue one message (fd is duplicated; the caller keeps its own, -1 for none)
 * and send what the socket takes now. -1 when len > IPC_MAX or memory ran out.
 */
int ipc_send(struct ipc *ipc, uint32_t type, const void *data, size_t len, int fd);

/* Blocking helpers for simple one-at-a-time peers (tests, start-up). */
int ipc_send_sync(int sock, uint32_t type, const void *data, size_t len, int fd);
/* 1 message read, 0 peer closed, -1 error. */
int ipc_recv_sync(int sock, struct ipc_msg *msg);

#endif
