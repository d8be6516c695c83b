#include "ipc.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

/* Bounds the memory a stuck peer can make us hold. */
#define IPC_QUEUE_MAX	4096

struct ipc_out {
	struct ipc_out	*next;
	uint32_t	 type;
	int		 fd;
	size_t		 len;
	unsigned char	 data[];
};

struct ipc {
	struct ev	*ev;
	int		 fd;
	ipc_msg_fn	*fn;
	void		*arg;
	struct ipc_out	*head, *tail;
	size_t		 queued;
	struct ipc_msg	 in;
};

int
ipc_pair(int fds[2])
{
	return socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC,
	    0, fds);
}

static int
ipc_sendmsg(int sock, uint32_t type, const void *data, size_t len, int fd)
{
	union {
		struct cmsghdr	hdr;
		char		buf[CMSG_SPACE(sizeof(int))];
	} cbuf;
	struct iovec iov[2] = {
		{ .iov_base = &type, .iov_len = sizeof(type) },
		{ .iov_base = (void *)data, .iov_len = len },
	};
	struct msghdr mh = { .msg_iov = iov, .msg_iovlen = 2 };
	ssize_t n;

	if (fd >= 0) {
		struct cmsghdr *c;

		memset(&cbuf, 0, sizeof(cbuf));
		mh.msg_control = cbuf.buf;
		mh.msg_controllen = sizeof(cbuf.buf);
		c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(c), &fd, sizeof(int));
	}
	do
		n = sendmsg(sock, &mh, MSG_NOSIGNAL);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -1;
	return 0;
}

static int
ipc_recvmsg(int sock, struct ipc_msg *msg)
{
	union {
		struct cmsghdr	hdr;
		char		buf[CMSG_SPACE(sizeof(int))];
	} cbuf;
	struct iovec iov[2] = {
		{ .iov_base = &msg->type, .iov_len = sizeof(msg->type) },
		{ .iov_base = msg->data, .iov_len = sizeof(msg->data) },
	};
	struct msghdr mh = {
		.msg_iov = iov, .msg_iovlen = 2,
		.msg_control = cbuf.buf, .msg_controllen = sizeof(cbuf.buf),
	};
	struct cmsghdr *c;
	ssize_t n;

	msg->fd = -1;
	do
		n = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC);
	while (n < 0 && errno == EINTR);
	if (n <= 0)
		return (int)n;
	for (c = CMSG_FIRSTHDR(&mh); c != NULL; c = CMSG_NXTHDR(&mh, c)) {
		if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS &&
		    c->cmsg_len == CMSG_LEN(sizeof(int)) && msg->fd < 0)
			memcpy(&msg->fd, CMSG_DATA(c), sizeof(int));
	}
	if ((mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) ||
	    (size_t)n < sizeof(msg->type)) {
		if (msg->fd >= 0)
			close(msg->fd);
		msg->fd = -1;
		errno = EPROTO;
		return -1;
	}
	msg->len = (size_t)n - sizeof(msg->type);
	return 1;
}

static void
ipc_flush(struct ipc *ipc)
{
	while (ipc->head != NULL) {
		struct ipc_out *o = ipc->head;

		if (ipc_sendmsg(ipc->fd, o->type, o->data, o->len, o->fd) < 0) {
			if (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS)
				break;
			/* The peer is gone; the read side reports it. */
		}
		ipc->head = o->next;
		if (ipc->head == NULL)
			ipc->tail = NULL;
		if (o->fd >= 0)
			close(o->fd);
		free(o);
		ipc->queued--;
	}
}

static void
ipc_event(struct ev *ev, int fd, unsigned int events, void *arg)
{
	struct ipc *ipc = arg;

	(void)ev;
	(void)fd;
	if (events & EV_WRITE)
		ipc_flush(ipc);
	ev_io_set(ipc->ev, ipc->fd, EV_READ | (ipc->head ? EV_WRITE : 0),
	    ipc_event, ipc);
	if (!(events & EV_READ))
		return;
	for (int i = 0; i < 64; i++) {
		int r = ipc_recvmsg(ipc->fd, &ipc->in);

		if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		if (r < 0 && errno == EPROTO)
			continue;
		if (r <= 0) {
			ev_io_del(ipc->ev, ipc->fd);
			ipc->fn(ipc, NULL, ipc->arg);
			return;
		}
		/* One message per wake-up: the callback may free ipc. */
		ipc->fn(ipc, &ipc->in, ipc->arg);
		return;
	}
}

struct ipc *
ipc_new(struct ev *ev, int fd, ipc_msg_fn *fn, void *arg)
{
	struct ipc *ipc = calloc(1, sizeof(*ipc));

	if (ipc == NULL)
		return NULL;
	ipc->ev = ev;
	ipc->fd = fd;
	ipc->fn = fn;
	ipc->arg = arg;
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
	if (ev_io_set(ev, fd, EV_READ, ipc_event, ipc) < 0) {
		free(ipc);
		return NULL;
	}
	return ipc;
}

void
ipc_free(struct ipc **ipcp)
{
	struct ipc *ipc = *ipcp;

	if (ipc == NULL)
		return;
	ev_io_del(ipc->ev, ipc->fd);
	close(ipc->fd);
	while (ipc->head != NULL) {
		struct ipc_out *o = ipc->head;

		ipc->head = o->next;
		if (o->fd >= 0)
			close(o->fd);
		free(o);
	}
	free(ipc);
	*ipcp = NULL;
}

int
ipc_fd(const struct ipc *ipc)
{
	return ipc->fd;
}

int
ipc_send(struct ipc *ipc, uint32_t type, const void *data, size_t len, int fd)
{
	struct ipc_out *o;

	if (len > IPC_MAX || ipc->queued >= IPC_QUEUE_MAX)
		return -1;
	if (ipc->head == NULL && ipc_sendmsg(ipc->fd, type, data, len, fd) == 0)
		return 0;
	if (ipc->head == NULL && errno != EAGAIN && errno != EWOULDBLOCK &&
	    errno != ENOBUFS)
		return -1;
	o = malloc(sizeof(*o) + len);
	if (o == NULL)
		return -1;
	o->next = NULL;
	o->type = type;
	o->len = len;
	memcpy(o->data, data, len);
	o->fd = fd >= 0 ? fcntl(fd, F_DUPFD_CLOEXEC, 0) : -1;
	if (fd >= 0 && o->fd < 0) {
		free(o);
		return -1;
	}
	if (ipc->tail != NULL)
		ipc->tail->next = o;
	else
		ipc->head = o;
	ipc->tail = o;
	ipc->queued++;
	ev_io_set(ipc->ev, ipc->fd, EV_READ | EV_WRITE, ipc_event, ipc);
	return 0;
}

int
ipc_send_sync(int sock, uint32_t type, const void *data, size_t len, int fd)
{
	if (len > IPC_MAX)
		return -1;
	return ipc_sendmsg(sock, type, data, len, fd);
}

int
ipc_recv_sync(int sock, struct ipc_msg *msg)
{
	return ipc_recvmsg(sock, msg);
}
