/*
 * Raw terminal: termios, signals, key decoding.
 */
#include "term.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <unistd.h>

#include "../lib/ev.h"

/* Alternate screen on, cursor hidden; and the way back. */
#define ENTER_SCREEN	"\033[?1049h\033[?25l\033[H\033[2J"
#define LEAVE_SCREEN	"\033[m\033[?25h\033[?1049l"

static struct termios saved;
static volatile sig_atomic_t active;	/* raw mode is on */
static volatile sig_atomic_t redraw;	/* SIGWINCH or back from a stop */
static bool handlers, atexit_done;

static unsigned char inbuf[64];
static size_t inlen;

static const int fatal_signals[] = { SIGINT, SIGTERM, SIGHUP, SIGQUIT };

bool
term_is_tty(void)
{
	return isatty(STDIN_FILENO) && isatty(STDOUT_FILENO);
}

/* Async-signal-safe: write(2) and tcsetattr(3) only. */
static void
write_all_raw(const char *s, size_t len)
{
	while (len > 0) {
		ssize_t n = write(STDOUT_FILENO, s, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return;
		s += n;
		len -= (size_t)n;
	}
}

static void
restore(void)
{
	if (!active)
		return;
	active = 0;
	write_all_raw(LEAVE_SCREEN, sizeof(LEAVE_SCREEN) - 1);
	(void)tcsetattr(STDIN_FILENO, TCSADRAIN, &saved);
}

static int
enter(void)
{
	struct termios raw = saved;

	raw.c_iflag &= ~(tcflag_t)(BRKINT | ICRNL | INPCK | ISTRIP | IXON);
	/* ISIG stays: ^C, ^\ and ^Z keep working, through the handlers. */
	raw.c_lflag &= ~(tcflag_t)(ECHO | ICANON | IEXTEN);
	raw.c_cc[VMIN] = 1;
	raw.c_cc[VTIME] = 0;
	if (tcsetattr(STDIN_FILENO, TCSADRAIN, &raw) < 0)
		return -1;
	active = 1;
	write_all_raw(ENTER_SCREEN, sizeof(ENTER_SCREEN) - 1);
	return 0;
}

static void
on_fatal(int sig)
{
	int e = errno;

	restore();
	/* SA_RESETHAND made the action the default: it ends us on return. */
	(void)raise(sig);
	errno = e;
}

static void on_tstp(int sig);

static void
set_handler(int sig, void (*fn)(int), int flags)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = fn;
	sa.sa_flags = flags;		/* no SA_RESTART: poll sees EINTR */
	sigemptyset(&sa.sa_mask);
	(void)sigaction(sig, &sa, NULL);
}

static void
on_tstp(int sig)
{
	int e = errno;
	sigset_t set;
	bool was = active;

	(void)sig;
	restore();
	set_handler(SIGTSTP, SIG_DFL, 0);
	sigemptyset(&set);
	sigaddset(&set, SIGTSTP);
	(void)sigprocmask(SIG_UNBLOCK, &set, NULL);
	(void)raise(SIGTSTP);
	/* Continued. */
	set_handler(SIGTSTP, on_tstp, 0);
	if (was)
		(void)enter();
	redraw = 1;
	errno = e;
}

static void
on_winch(int sig)
{
	(void)sig;
	redraw = 1;
}

static void
at_exit(void)
{
	restore();
}

int
term_open(char *err)
{
	if (!term_is_tty()) {
		(void)str_copy(err, ERR_LEN, "read needs a terminal");
		return -1;
	}
	if (tcgetattr(STDIN_FILENO, &saved) < 0) {
		(void)str_fmt(err, ERR_LEN, "terminal: %s", strerror(errno));
		return -1;
	}
	if (!atexit_done && atexit(at_exit) == 0)
		atexit_done = true;
	if (!handlers) {
		for (size_t i = 0; i < sizeof(fatal_signals) /
		    sizeof(fatal_signals[0]); i++)
			set_handler(fatal_signals[i], on_fatal, SA_RESETHAND);
		set_handler(SIGTSTP, on_tstp, 0);
		set_handler(SIGWINCH, on_winch, 0);
		handlers = true;
	}
	if (enter() < 0) {
		(void)str_fmt(err, ERR_LEN, "terminal: %s", strerror(errno));
		return -1;
	}
	inlen = 0;
	redraw = 0;
	return 0;
}

void
term_close(void)
{
	restore();
	if (handlers) {
		for (size_t i = 0; i < sizeof(fatal_signals) /
		    sizeof(fatal_signals[0]); i++)
			set_handler(fatal_signals[i], SIG_DFL, 0);
		set_handler(SIGTSTP, SIG_DFL, 0);
		set_handler(SIGWINCH, SIG_DFL, 0);
		handlers = false;
	}
}

void
term_pause(void)
{
	restore();
}

int
term_resume(char *err)
{
	if (enter() < 0) {
		(void)str_fmt(err, ERR_LEN, "terminal: %s", strerror(errno));
		return -1;
	}
	inlen = 0;
	return 0;
}

void
term_size(int *rows_r, int *cols_r)
{
	struct winsize ws;

	if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_row > 0 &&
	    ws.ws_col > 0) {
		*rows_r = ws.ws_row;
		*cols_r = ws.ws_col;
	} else {
		*rows_r = 24;
		*cols_r = 80;
	}
}

int
term_write(const void *buf, size_t len)
{
	const char *p = buf;

	while (len > 0) {
		ssize_t n = write(STDOUT_FILENO, p, len);

		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (n <= 0)
			return -1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/*
 * More input within timeout_ms (< 0: none): 1 read some, 0 timeout,
 * TERM_KEY_RESIZE (only when asked: not inside an escape sequence),
 * TERM_KEY_EOF, or -1 (errno).
 */
static int
fill(int timeout_ms, bool resize)
{
	long long deadline = timeout_ms < 0 ? -1 :
	    (long long)ev_now_ms() + timeout_ms;

	for (;;) {
		struct pollfd p = { .fd = STDIN_FILENO, .events = POLLIN };
		int wait = -1, n;
		ssize_t r;

		if (resize && redraw) {
			redraw = 0;
			return TERM_KEY_RESIZE;
		}
		if (deadline >= 0) {
			long long left = deadline - (long long)ev_now_ms();

			if (left <= 0)
				return 0;
			wait = (int)left;
		}
		n = poll(&p, 1, wait);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		if (n == 0)
			continue;	/* the deadline check returns */
		r = read(STDIN_FILENO, inbuf + inlen, sizeof(inbuf) - inlen);
		if (r < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (r < 0)
			return -1;
		if (r == 0)
			return TERM_KEY_EOF;
		inlen += (size_t)r;
		return 1;
	}
}

static void
consume(size_t n)
{
	memmove(inbuf, inbuf + n, inlen - n);
	inlen -= n;
}

/* A CSI or SS3 sequence at inbuf[0] of n octets: its key, or 0. */
static int
decode(size_t n)
{
	unsigned char fin = inbuf[n - 1];

	switch (fin) {
	case 'A':
		return TERM_KEY_UP;
	case 'B':
		return TERM_KEY_DOWN;
	case 'C':
		return TERM_KEY_RIGHT;
	case 'D':
		return TERM_KEY_LEFT;
	case 'H':
		return TERM_KEY_HOME;
	case 'F':
		return TERM_KEY_END;
	case '~':
		if (n == 4) {
			switch (inbuf[2]) {
			case '1':
			case '7':
				return TERM_KEY_HOME;
			case '4':
			case '8':
				return TERM_KEY_END;
			case '5':
				return TERM_KEY_PGUP;
			case '6':
				return TERM_KEY_PGDN;
			}
		}
		return 0;
	default:
		return 0;
	}
}

int
term_key(int timeout_ms)
{
	for (;;) {
		int rc;

		if (inlen == 0) {
			rc = fill(timeout_ms, true);
			if (rc == 0)
				return TERM_KEY_TIMEOUT;
			if (rc != 1)
				return rc;
		}
		if (inbuf[0] != 0x1b) {
			int c = inbuf[0];

			consume(1);
			return c;
		}
		/* ESC: a key of its own, or the start of a sequence. */
		while (inlen < 2) {
			rc = fill(TERM_ESC_WAIT_MS, false);
			if (rc == 0) {
				consume(1);
				return 0x1b;
			}
			if (rc < 0 || rc == TERM_KEY_EOF)
				return rc;
		}
		if (inbuf[1] != '[' && inbuf[1] != 'O') {
			consume(1);
			return 0x1b;
		}
		for (size_t i = 2;; i++) {
			while (i >= inlen) {
				rc = fill(TERM_ESC_WAIT_MS, false);
				if (rc == 0) {
					consume(inlen);	/* cut: drop it */
					break;
				}
				if (rc < 0 || rc == TERM_KEY_EOF)
					return rc;
			}
			if (inlen == 0)
				break;
			if (inbuf[i] >= 0x40 && inbuf[i] <= 0x7e) {
				int key = decode(i + 1);

				consume(i + 1);
				if (key != 0)
					return key;
				break;
			}
			if (i + 1 >= sizeof(inbuf)) {
				consume(inlen);
				break;
			}
		}
	}
}
