/*
 * What several unit-test programs need: a scratch directory, and running a
 * program of ours with input on stdin. Linked into every test program.
 */
#ifndef POSTINO_TESTUTIL_H
#define POSTINO_TESTUTIL_H

#include <stddef.h>

/* mkdtemp "/tmp/postino-test-NAME.XXXXXX" into dir. 0, or -1. */
int tu_tmpdir_make(char *dir, size_t size, const char *name);
/* Remove dir and everything below it (no shell). 0, or -1. */
int tu_tmpdir_remove(const char *dir);

/*
 * Run argv[0] with inlen octets of input on stdin, stderr to /dev/null;
 * stdout goes to out (NUL-terminated, cut at outsize - 1). Its exit status;
 * a test failure when it did not exit normally.
 */
int tu_run_tool(const char *const argv[], const char *input, size_t inlen,
    char *out, size_t outsize);

#endif
