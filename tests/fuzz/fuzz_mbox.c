/*
 * libFuzzer target for the mbox parser: any file content opens or fails
 * cleanly, every message reads back exactly its LIST size (after CRLF
 * normalisation), and UIDLs are valid and unique.
 */
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../src/lib/crlf.h"
#include "../../src/store/store.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char dir[64];
static char path[128];

static void
cleanup(void)
{
	char lock[160];

	unlink(path);
	snprintf(lock, sizeof(lock), "%s/.box.postino-lock", dir);
	unlink(lock);
	rmdir(dir);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const struct store_ops *ops = store_lookup("mbox");
	struct store_params p = { .max_messages = 100000, .mboxrd = true,
	    .dotlock_stale = 300, .lock_wait = 0 };
	char err[ERR_LEN];
	struct store_index idx;
	struct store *st;
	int fd;

	if (size > 1 << 16)
		return 0;
	if (dir[0] == '\0') {
		/* One working directory per process, reused: nothing piles up. */
		snprintf(dir, sizeof(dir), "/tmp/postino-fuzz-mbox.%ld",
		    (long)getpid());
		if (mkdir(dir, 0700) != 0 && errno != EEXIST)
			abort();
		atexit(cleanup);
	}
	snprintf(path, sizeof(path), "%s/box", dir);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (fd < 0 || write(fd, data, size) != (ssize_t)size || close(fd) != 0)
		abort();
	p.mboxrd = size > 0 && (data[0] & 1);
	p.path = path;
	if (ops->open(&st, &p, &idx, err) != STORE_OK)
		return 0;
	for (unsigned int i = 0; i < idx.count; i++) {
		struct store_reader *r;
		struct crlf_size cs;
		char buf[4096];
		uint64_t got;
		ssize_t n;

		for (unsigned int j = 0; j < i; j++)
			if (strcmp(idx.msgs[i].uidl, idx.msgs[j].uidl) == 0)
				abort();
		if (ops->read_open(st, i + 1, &r, err) != STORE_OK)
			abort();
		crlf_size_init(&cs);
		while ((n = ops->read(r, buf, sizeof(buf))) > 0)
			crlf_size_feed(&cs, buf, (size_t)n);
		if (n < 0 || crlf_size_finish(&cs, &got) != 0 ||
		    got != idx.msgs[i].size)
			abort();
		ops->read_close(&r);
	}
	ops->close(&st, &idx);
	return 0;
}
