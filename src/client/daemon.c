#include "daemon.h"

#include <signal.h>
#include <string.h>
#include <time.h>

#include "../lib/ev.h"

#include "client.h"

static volatile sig_atomic_t daemon_hup, daemon_stop;

static void
daemon_signal(int signo)
{
	if (signo == SIGHUP)
		daemon_hup = 1;
	else
		daemon_stop = 1;
}

struct daemon_acct {
	char		 name[ACCOUNT_NAME_MAX + 1];
	uint64_t	 next_ms;	/* when to poll it next */
	uint32_t	 backoff;	/* seconds after the last failure */
};

/*
 * The account list read again; each account's schedule carried over by
 * name. A bad edit keeps the last good list (the names callback said why).
 */
static size_t
daemon_reload(const struct daemon_job *job, struct daemon_acct *acct,
    size_t nacct)
{
	static char names[ACCOUNT_MAX_ACCOUNTS][ACCOUNT_NAME_MAX + 1];
	static struct daemon_acct prev[ACCOUNT_MAX_ACCOUNTS];
	uint64_t now = ev_now_ms();
	size_t n;

	if (job->names(job->arg, names, &n) != EXIT_OK) {
		n = 0;
		for (size_t i = 0; i < nacct; i++)
			(void)str_copy(names[n++], sizeof(names[0]),
			    acct[i].name);
	}
	memcpy(prev, acct, nacct * sizeof(*prev));
	for (size_t i = 0; i < n; i++) {
		acct[i] = (struct daemon_acct){ .next_ms = now };
		(void)str_copy(acct[i].name, sizeof(acct[i].name), names[i]);
		for (size_t j = 0; j < nacct; j++)
			if (strcmp(prev[j].name, names[i]) == 0)
				acct[i] = prev[j];
	}
	return n;
}

/*
 * Poll one account and schedule the next: an account that fails waits
 * twice as long each time (up to DAEMON_BACKOFF_MAX), and never less than
 * the LOGIN-DELAY its server announced.
 */
static void
daemon_poll(const struct daemon_job *job, struct daemon_acct *a)
{
	uint32_t delay = 0, wait;

	if (job->fetch(job->arg, a->name, &delay) == EXIT_OK) {
		a->backoff = 0;
		wait = job->interval;
	} else {
		a->backoff = a->backoff == 0 ? job->interval : a->backoff * 2;
		if (a->backoff > DAEMON_BACKOFF_MAX)
			a->backoff = DAEMON_BACKOFF_MAX;
		wait = a->backoff < job->interval ? job->interval : a->backoff;
	}
	if (delay > wait)
		wait = delay;
	a->next_ms = ev_now_ms() + (uint64_t)wait * 1000;
}

/*
 * The configuration is read again before every round, so SIGHUP (which
 * starts a round at once) picks up an edited file.
 */
int
daemon_run(const struct daemon_job *job)
{
	static struct daemon_acct acct[ACCOUNT_MAX_ACCOUNTS];
	struct sigaction sa = { .sa_handler = daemon_signal };
	size_t nacct = 0;

	sigemptyset(&sa.sa_mask);
	(void)sigaction(SIGHUP, &sa, NULL);
	(void)sigaction(SIGTERM, &sa, NULL);
	(void)sigaction(SIGINT, &sa, NULL);
	while (!daemon_stop) {
		uint64_t wake = UINT64_MAX;

		daemon_hup = 0;
		nacct = daemon_reload(job, acct, nacct);
		for (size_t i = 0; i < nacct && !daemon_stop; i++)
			if (acct[i].next_ms <= ev_now_ms())
				daemon_poll(job, &acct[i]);
		for (size_t i = 0; i < nacct; i++)
			if (acct[i].next_ms < wake)
				wake = acct[i].next_ms;
		if (nacct == 0)
			wake = ev_now_ms() + (uint64_t)job->interval * 1000;
		/* Sleep in short steps: signals end it early. */
		while (!daemon_stop && !daemon_hup && ev_now_ms() < wake)
			(void)nanosleep(&(struct timespec){ 0,
			    DAEMON_TICK_MS * 1000000L }, NULL);
	}
	return EXIT_OK;
}
