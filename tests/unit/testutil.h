/*
 * What several unit-test programs need: a scratch directory, and running a
 * program of ours with input on stdin. Linked into every test program.
 */
#ifndef POSTINO_TESTUTIL_H
#define POSTINO_TESTUTIL_H

#include <stdbool.h>
#include <stddef.h>

struct ev;

/* mkdtemp "/tmp/postino-test-NAME.XXXXXX" into dir. 0, or -1. */
int tu_tmpdir_make(char *dir, size_t size, const char *name);
/* Remove dir and everything below it (no shell). 0, or -1. */
int tu_tmpdir_remove(const char *dir);

/*
 * Run argv[0] with inlen octets of input on stdin, stderr to /dev/null;
 * stdout goes to out (NUL-terminated, cut at outsize - 1). Its exit status;
 * a test failure when it did not exit normally.
 */
/* POSTINO_PASSWD_BIN, else postino-passwd beside this test's build
 * directory; NULL when neither is there. */
const char *tu_passwd_tool(void);

int tu_run_tool(const char *const argv[], const char *input, size_t inlen,
    char *out, size_t outsize);

/* A connected pair of nonblocking stream sockets (a test failure if not). */
/*
 * The whole file at path, NUL-terminated, in a static buffer of 1 MiB
 * that the next call overwrites (asserted: it exists and fits); its
 * length into *len_r unless NULL.
 */
char *tu_slurp(const char *path, size_t *len_r);

void tu_socketpair(int sv[2]);

/* A server loop under test and the test's end of its socket. */
struct tu_loop {
	struct ev	*ev;
	const bool	*stopped;	/* NULL, or true once the loop is done */
	int		 peer;
};

/*
 * Talk to the loop as its client: write len octets of buf to the peer
 * (none when 0), then turn the loop (unless stopped) and read what comes
 * back until nothing has come for patience rounds of 5 ms, the peer's
 * end is closed, or out is full. out is NUL-terminated (outsize - 1
 * octets at most); the octets read.
 */
size_t tu_exchange(const struct tu_loop *l, const void *buf, size_t len,
    char *out, size_t outsize, unsigned int patience);

#endif
