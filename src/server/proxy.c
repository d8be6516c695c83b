#include "proxy.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../lib/conn.h"
#include "../lib/iobuf.h"
#include "../lib/list.h"
#include "../lib/log.h"
#include "../lib/net.h"
#include "limits.h"
#include "session.h"

struct proxy {
	struct proxy	*prev, *next;
	struct ev	*ev;
	struct conn	 net, plain;		/* the client; the mail worker */
	bool		 net_write_blocked;	/* the last write wanted the socket */
	bool		 mail_done;		/* the mail worker closed */
	/*
	 * The client ended its stream (close_notify or FIN): what it sent
	 * before (a QUIT) still reaches the mail worker, then its end.
	 */
	bool		 net_done;
	bool		 plain_shut;		/* ... and the end was passed on */
	unsigned int	 idle_ms;
	/*
	 * Its own idle timer: the mail side's cannot see a client that stopped
	 * reading behind a full relay, and the relay outlived the session.
	 */
	struct ev_timer	 timer;
	char		 id[SESSION_ID_LEN + 1];
	struct iobuf	 up, down;	/* client -> mail worker, and back */
	char		 up_buf[PROXY_BUF];
	char		 down_buf[PROXY_BUF];
};

static struct proxy *proxies;
static unsigned int nproxies;

static void proxy_io(struct ev *ev, int fd, unsigned int events, void *arg);

static void
proxy_free(struct proxy *p)
{
	ev_timer_stop(p->ev, &p->timer);
	ev_io_del(p->ev, p->net.fd);
	ev_io_del(p->ev, p->plain.fd);
	if (p->mail_done)
		conn_shutdown(&p->net);
	conn_free(&p->net);
	conn_free(&p->plain);
	close(p->net.fd);
	close(p->plain.fd);
	LIST_UNLINK(proxies, p);
	nproxies--;
	explicit_bzero(p, sizeof(*p));
	free(p);
}

/* Move what can move; false when the proxy is finished. */
static bool
pump(struct proxy *p, bool *progress_r)
{
	*progress_r = false;
	for (int round = 0; round < 16; round++) {
		bool moved = false;
		ssize_t n;

		/* client -> mail worker */
		while (!p->net_done && iobuf_space(&p->up) > 0) {
			n = iobuf_read(&p->up, &p->net);
			if (n < 0 && errno == EAGAIN)
				break;
			if (n < 0)
				return false;	/* broken: no UPDATE */
			if (n == 0) {
				p->net_done = true;
				break;
			}
			moved = true;
		}
		if (iobuf_len(&p->up) > 0) {
			n = iobuf_write(&p->up, &p->plain);
			if (n < 0 && errno != EAGAIN)
				return false;
			if (n > 0)
				moved = true;
		}
		if (p->net_done && !p->plain_shut && iobuf_len(&p->up) == 0) {
			/* The mail worker sees the client's end after its input. */
			(void)shutdown(p->plain.fd, SHUT_WR);
			p->plain_shut = true;
		}
		/* mail worker -> client */
		while (!p->mail_done && iobuf_space(&p->down) > 0) {
			n = iobuf_read(&p->down, &p->plain);
			if (n < 0 && errno == EAGAIN)
				break;
			if (n <= 0) {
				p->mail_done = true;
				break;
			}
			moved = true;
		}
		p->net_write_blocked = false;
		if (iobuf_len(&p->down) > 0) {
			n = iobuf_write(&p->down, &p->net);
			if (n < 0 && errno == EAGAIN)
				p->net_write_blocked = true;
			else if (n < 0)
				return false;
			else
				moved = true;
		}
		if (p->mail_done && iobuf_len(&p->down) == 0)
			return false;
		if (!moved)
			break;
		*progress_r = true;
	}
	return true;
}

static void
proxy_watch(struct proxy *p)
{
	unsigned int net = 0, plain = 0;

	if (!p->net_done && iobuf_space(&p->up) > 0)
		net |= EV_READ;
	if ((iobuf_len(&p->down) > 0 && p->net_write_blocked) ||
	    p->net.want_write)
		net |= EV_WRITE;
	if (!p->mail_done && iobuf_space(&p->down) > 0)
		plain |= EV_READ;
	if (iobuf_len(&p->up) > 0)
		plain |= EV_WRITE;
	ev_io_set(p->ev, p->net.fd, net, proxy_io, p);
	ev_io_set(p->ev, p->plain.fd, plain, proxy_io, p);
}

static void
proxy_io(struct ev *ev, int fd, unsigned int events, void *arg)
{
	struct proxy *p = arg;
	bool progress, was_done = p->mail_done;

	(void)ev;
	(void)fd;
	(void)events;
	if (!pump(p, &progress)) {
		proxy_free(p);
		return;
	}
	if (progress || p->mail_done != was_done || !ev_timer_armed(&p->timer))
		ev_timer_start(p->ev, &p->timer, p->mail_done &&
		    p->idle_ms > PROXY_DRAIN_MS ? PROXY_DRAIN_MS : p->idle_ms);
	proxy_watch(p);
}

static void
proxy_timeout(struct ev *ev, void *arg)
{
	struct proxy *p = arg;

	(void)ev;
	log_info("session=%s event=timeout state=relay mail_done=%s "
	    "unsent=%zu", p->id, p->mail_done ? "yes" : "no",
	    iobuf_len(&p->down));
	proxy_free(p);
}

int
proxy_start(struct ev *ev, struct tls_conn *tls, int net_fd, int plain_fd,
    const char *session_id, const void *pending, size_t len,
    unsigned int idle_ms)
{
	struct proxy *p;

	if (len > PROXY_BUF)
		return -1;
	p = calloc(1, sizeof(*p));
	if (p == NULL)
		return -1;
	p->ev = ev;
	conn_init_tls(&p->net, net_fd, tls);
	conn_init_plain(&p->plain, plain_fd);
	p->idle_ms = idle_ms;
	ev_timer_init(&p->timer, proxy_timeout, p);
	str_copy(p->id, sizeof(p->id), session_id);
	iobuf_init(&p->up, p->up_buf, sizeof(p->up_buf), 0, PROXY_BUF, 0);
	iobuf_init(&p->down, p->down_buf, sizeof(p->down_buf), 0, PROXY_BUF,
	    0);
	iobuf_add(&p->down, pending, len);
	if (net_set_nonblock(plain_fd) < 0) {
		free(p);
		return -1;
	}
	LIST_PUSH(proxies, p);
	nproxies++;
	proxy_io(ev, net_fd, EV_READ | EV_WRITE, p);
	return 0;
}

unsigned int
proxy_count(void)
{
	return nproxies;
}

void
proxy_close_all(void)
{
	while (proxies != NULL)
		proxy_free(proxies);
}
