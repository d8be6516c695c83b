/*
 * One epoll event loop per process: fd readiness, timers, signals.
 * Callbacks run one at a time; a callback may add or remove any fd or timer.
 */
#ifndef POSTINO_EV_H
#define POSTINO_EV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define EV_READ		1u
#define EV_WRITE	2u
/*
 * With EV_READ, for an fd other processes' loops watch too (a listening
 * socket shared by the login workers): a connection wakes one of them,
 * not all (EPOLLEXCLUSIVE); the others would only find accept() empty.
 */
#define EV_EXCLUSIVE	4u

struct ev;

typedef void ev_io_fn(struct ev *ev, int fd, unsigned int events, void *arg);
typedef void ev_timer_fn(struct ev *ev, void *arg);
typedef void ev_signal_fn(struct ev *ev, int signo, void *arg);

/* Embedded in its owner; zero it (or ev_timer_init) before first use. */
struct ev_timer {
	uint64_t	 when_ms;	/* monotonic deadline */
	size_t		 heap_pos;	/* 0 = not armed, else index + 1 */
	ev_timer_fn	*fn;
	void		*arg;
};

/* NULL on failure (errno set). */
struct ev *ev_new(void);
void ev_free(struct ev **ev);

/*
 * Watch fd for events (EV_READ|EV_WRITE, level-triggered); 0 keeps fd
 * registered but quiet. Replaces an earlier fn/arg. -1 on failure.
 */
int ev_io_set(struct ev *ev, int fd, unsigned int events, ev_io_fn *fn, void *arg);
/* Stop watching fd (call before closing it). */
void ev_io_del(struct ev *ev, int fd);

void ev_timer_init(struct ev_timer *t, ev_timer_fn *fn, void *arg);
/* (Re)arm t to fire once after ms milliseconds. */
int ev_timer_start(struct ev *ev, struct ev_timer *t, uint64_t ms);
void ev_timer_stop(struct ev *ev, struct ev_timer *t);
bool ev_timer_armed(const struct ev_timer *t);

/* Block signo and deliver it through the loop (signalfd). -1 on failure. */
int ev_signal(struct ev *ev, int signo, ev_signal_fn *fn, void *arg);

/* Run until ev_stop(); -1 on an epoll failure. */
int ev_run(struct ev *ev);
void ev_stop(struct ev *ev);
/* One turn: wait at most max_wait_ms (-1: until the next timer) and dispatch. */
int ev_run_once(struct ev *ev, int max_wait_ms);

/* The one clock for deadlines: CLOCK_MONOTONIC in milliseconds. */
uint64_t ev_now_ms(void);

#endif
