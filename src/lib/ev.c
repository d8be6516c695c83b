#include "ev.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>

#define EV_BATCH	128
#define EV_SIGNALS	65

struct ev_io {
	ev_io_fn	*fn;
	void		*arg;
	unsigned int	 events;
	bool		 registered;
};

struct ev {
	int		  epfd;
	struct ev_io	 *ios;		/* indexed by fd */
	size_t		  nios;
	struct ev_timer	**heap;		/* min-heap on when_ms */
	size_t		  nheap, heap_cap;
	int		  sigfd;
	sigset_t	  sigmask;
	ev_signal_fn	 *sigfn[EV_SIGNALS];
	void		 *sigarg[EV_SIGNALS];
	bool		  stop;
};

uint64_t
ev_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

struct ev *
ev_new(void)
{
	struct ev *ev = calloc(1, sizeof(*ev));

	if (ev == NULL)
		return NULL;
	ev->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (ev->epfd < 0) {
		free(ev);
		return NULL;
	}
	ev->sigfd = -1;
	sigemptyset(&ev->sigmask);
	return ev;
}

void
ev_free(struct ev **evp)
{
	struct ev *ev = *evp;

	if (ev == NULL)
		return;
	close(ev->epfd);
	if (ev->sigfd >= 0)
		close(ev->sigfd);
	free(ev->ios);
	free(ev->heap);
	free(ev);
	*evp = NULL;
}

int
ev_io_set(struct ev *ev, int fd, unsigned int events, ev_io_fn *fn, void *arg)
{
	struct epoll_event ee = { 0 };
	struct ev_io *io;

	if (fd < 0)
		return -1;
	if ((size_t)fd >= ev->nios) {
		size_t n = ev->nios ? ev->nios : 64;
		struct ev_io *p;

		while (n <= (size_t)fd)
			n *= 2;
		p = realloc(ev->ios, n * sizeof(*p));
		if (p == NULL)
			return -1;
		memset(p + ev->nios, 0, (n - ev->nios) * sizeof(*p));
		ev->ios = p;
		ev->nios = n;
	}
	io = &ev->ios[fd];
	ee.data.fd = fd;
	if (events & EV_READ)
		ee.events |= EPOLLIN;
	if (events & EV_WRITE)
		ee.events |= EPOLLOUT;
	/* An exclusive watch with nothing to watch would be refused. */
	if ((events & EV_EXCLUSIVE) && ee.events != 0)
		ee.events |= EPOLLEXCLUSIVE;
	if (io->registered && io->events != events &&
	    ((io->events | events) & EV_EXCLUSIVE)) {
		/* The kernel takes no EPOLL_CTL_MOD of an exclusive watch. */
		epoll_ctl(ev->epfd, EPOLL_CTL_DEL, fd, NULL);
		io->registered = false;
	}
	if (io->registered) {
		if (io->events != events &&
		    epoll_ctl(ev->epfd, EPOLL_CTL_MOD, fd, &ee) < 0)
			return -1;
	} else if (epoll_ctl(ev->epfd, EPOLL_CTL_ADD, fd, &ee) < 0) {
		return -1;
	}
	io->registered = true;
	io->events = events;
	io->fn = fn;
	io->arg = arg;
	return 0;
}

void
ev_io_del(struct ev *ev, int fd)
{
	if (fd < 0 || (size_t)fd >= ev->nios || !ev->ios[fd].registered)
		return;
	epoll_ctl(ev->epfd, EPOLL_CTL_DEL, fd, NULL);
	ev->ios[fd] = (struct ev_io){ 0 };
}

/* Timers: a binary min-heap; heap_pos lets stop and re-arm run in O(log n). */

static void
heap_swap(struct ev *ev, size_t a, size_t b)
{
	struct ev_timer *t = ev->heap[a];

	ev->heap[a] = ev->heap[b];
	ev->heap[b] = t;
	ev->heap[a]->heap_pos = a + 1;
	ev->heap[b]->heap_pos = b + 1;
}

static void
heap_up(struct ev *ev, size_t i)
{
	while (i > 0) {
		size_t parent = (i - 1) / 2;

		if (ev->heap[parent]->when_ms <= ev->heap[i]->when_ms)
			break;
		heap_swap(ev, parent, i);
		i = parent;
	}
}

static void
heap_down(struct ev *ev, size_t i)
{
	for (;;) {
		size_t l = 2 * i + 1, r = l + 1, m = i;

		if (l < ev->nheap && ev->heap[l]->when_ms < ev->heap[m]->when_ms)
			m = l;
		if (r < ev->nheap && ev->heap[r]->when_ms < ev->heap[m]->when_ms)
			m = r;
		if (m == i)
			return;
		heap_swap(ev, i, m);
		i = m;
	}
}

void
ev_timer_init(struct ev_timer *t, ev_timer_fn *fn, void *arg)
{
	*t = (struct ev_timer){ .fn = fn, .arg = arg };
}

bool
ev_timer_armed(const struct ev_timer *t)
{
	return t->heap_pos != 0;
}

void
ev_timer_stop(struct ev *ev, struct ev_timer *t)
{
	size_t i;

	if (t->heap_pos == 0)
		return;
	i = t->heap_pos - 1;
	t->heap_pos = 0;
	ev->nheap--;
	if (i == ev->nheap)
		return;
	ev->heap[i] = ev->heap[ev->nheap];
	ev->heap[i]->heap_pos = i + 1;
	heap_up(ev, i);
	heap_down(ev, i);
}

int
ev_timer_start(struct ev *ev, struct ev_timer *t, uint64_t ms)
{
	ev_timer_stop(ev, t);
	if (ev->nheap == ev->heap_cap) {
		size_t n = ev->heap_cap ? ev->heap_cap * 2 : 64;
		struct ev_timer **p = realloc(ev->heap, n * sizeof(*p));

		if (p == NULL)
			return -1;
		ev->heap = p;
		ev->heap_cap = n;
	}
	t->when_ms = ev_now_ms() + ms;
	ev->heap[ev->nheap] = t;
	t->heap_pos = ++ev->nheap;
	heap_up(ev, ev->nheap - 1);
	return 0;
}

static void
ev_signal_read(struct ev *ev, int fd, unsigned int events, void *arg)
{
	struct signalfd_siginfo si;

	(void)events;
	(void)arg;
	while (read(fd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
		if (si.ssi_signo < EV_SIGNALS && ev->sigfn[si.ssi_signo] != NULL)
			ev->sigfn[si.ssi_signo](ev, (int)si.ssi_signo,
			    ev->sigarg[si.ssi_signo]);
	}
}

int
ev_signal(struct ev *ev, int signo, ev_signal_fn *fn, void *arg)
{
	int fd;

	if (signo <= 0 || signo >= EV_SIGNALS)
		return -1;
	sigaddset(&ev->sigmask, signo);
	if (sigprocmask(SIG_BLOCK, &ev->sigmask, NULL) < 0)
		return -1;
	fd = signalfd(ev->sigfd, &ev->sigmask, SFD_NONBLOCK | SFD_CLOEXEC);
	if (fd < 0)
		return -1;
	if (ev->sigfd < 0 && ev_io_set(ev, fd, EV_READ, ev_signal_read, NULL) < 0) {
		close(fd);
		return -1;
	}
	ev->sigfd = fd;
	ev->sigfn[signo] = fn;
	ev->sigarg[signo] = arg;
	return 0;
}

void
ev_stop(struct ev *ev)
{
	ev->stop = true;
}

static void
ev_run_timers(struct ev *ev)
{
	uint64_t now = ev_now_ms();

	while (ev->nheap > 0 && ev->heap[0]->when_ms <= now) {
		struct ev_timer *t = ev->heap[0];

		ev_timer_stop(ev, t);
		t->fn(ev, t->arg);
		if (ev->stop)
			return;
	}
}

static int
ev_turn(struct ev *ev, int max_wait_ms)
{
	struct epoll_event ees[EV_BATCH];
	int timeout = max_wait_ms, n;

	if (ev->nheap > 0) {
		uint64_t now = ev_now_ms(), when = ev->heap[0]->when_ms;
		int due = when <= now ? 0 :
		    (when - now > 60000 ? 60000 : (int)(when - now));

		if (timeout < 0 || due < timeout)
			timeout = due;
	}
	n = epoll_wait(ev->epfd, ees, EV_BATCH, timeout);
	if (n < 0)
		return errno == EINTR ? 0 : -1;
	for (int i = 0; i < n && !ev->stop; i++) {
		int fd = ees[i].data.fd;
		unsigned int events = 0;
		struct ev_io *io;

		if ((size_t)fd >= ev->nios || !ev->ios[fd].registered)
			continue;
		io = &ev->ios[fd];
		if (ees[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR))
			events |= EV_READ;
		if (ees[i].events & (EPOLLOUT | EPOLLHUP | EPOLLERR))
			events |= EV_WRITE;
		events &= io->events;
		if (events != 0)
			io->fn(ev, fd, events, io->arg);
	}
	if (!ev->stop)
		ev_run_timers(ev);
	return 0;
}

int
ev_run(struct ev *ev)
{
	ev->stop = false;
	while (!ev->stop)
		if (ev_turn(ev, -1) < 0)
			return -1;
	return 0;
}

int
ev_run_once(struct ev *ev, int max_wait_ms)
{
	ev->stop = false;
	return ev_turn(ev, max_wait_ms);
}
