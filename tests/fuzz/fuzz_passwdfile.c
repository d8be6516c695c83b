/*
 * libFuzzer target for the passwd-file parser (src/auth/auth_passwdfile.c):
 * the input is the whole file. Each run puts it in a fresh memfd dup'ed
 * onto one descriptor, so the backend sees a new inode and re-reads it on
 * the next lookup. Lookups only: no password hash is computed, so a
 * hostile cost in the input cannot stall the fuzzer.
 * Properties: no crash or overflow; a user found has a valid name, an
 * empty or absolute home, and is never uid or gid 0.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "../../src/auth/auth.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct auth_db *db;
static const struct auth_ops *ops;
static int dbfd = -1;

static void
init(void)
{
	char path[64], err[ERR_LEN];

	dbfd = memfd_create("fuzz-passwd", 0);
	if (dbfd < 0)
		abort();
	snprintf(path, sizeof(path), "/proc/self/fd/%d", dbfd);
	ops = auth_lookup("passwd-file");
	if (ops == NULL || ops->open(&db, path, err) < 0)
		abort();
}

static void
check(const char *name)
{
	struct auth_user u;
	struct auth_scram k;
	char buf[AUTH_PASS_MAX + 1];

	if (ops->lookup(db, name, &u) == AUTH_OK) {
		if (!auth_name_valid(u.name) || strcmp(u.name, name) != 0 ||
		    (u.home[0] != '\0' && u.home[0] != '/') ||
		    (u.has_uid && u.uid == 0) || (u.has_gid && u.gid == 0))
			abort();
	}
	(void)ops->scram_lookup(db, name, &k, &u);
	(void)ops->plain_secret(db, name, buf, sizeof(buf), &u);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char name[AUTH_USER_MAX + 1];
	size_t n;
	int fd;

	if (db == NULL)
		init();
	if (size > 65536)
		return 0;
	fd = memfd_create("fuzz-passwd", 0);
	if (fd < 0 || write(fd, data, size) != (ssize_t)size ||
	    dup2(fd, dbfd) < 0)
		abort();
	close(fd);
	/* The first field of the first line, and a few fixed names. */
	for (n = 0; n < size && n < AUTH_USER_MAX && data[n] != ':' &&
	    data[n] != '\n' && data[n] != '\0'; n++)
		;
	memcpy(name, data, n);
	name[n] = '\0';
	check(name);
	check("root");
	check("a");
	return 0;
}
