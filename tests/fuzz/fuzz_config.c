/*
 * libFuzzer target for the configuration parser (src/server/config.c):
 * any file either loads, with every bound the table promises, or is
 * refused with a reason; nothing overruns. The input reaches config_load
 * through a memfd, as a file would.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "../../src/server/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define STR_OK(f)	(memchr((f), '\0', sizeof(f)) != NULL)

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int fd = -1;
	static char path[64];
	struct config *cf;
	char err[ERR_LEN];

	if (fd < 0) {
		fd = memfd_create("fuzz-config", MFD_CLOEXEC);
		if (fd < 0)
			abort();
		snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	}
	if (ftruncate(fd, 0) < 0 || (size > 0 &&
	    pwrite(fd, data, size, 0) != (ssize_t)size))
		abort();
	cf = malloc(sizeof(*cf));
	if (cf == NULL)
		abort();
	memset(err, 'x', sizeof(err));
	if (config_load(cf, path, err) == 0) {
		if (cf->nlisten + cf->nlisten_tls > CONFIG_LISTEN_MAX ||
		    cf->nlisten == 0 || cf->login_workers < 1 ||
		    cf->login_workers > 64 || cf->idle_timeout < 1 ||
		    cf->max_sessions < 1 || cf->connection_prefix_ipv4 < 1 ||
		    cf->connection_prefix_ipv4 > 32 ||
		    cf->connection_prefix_ipv6 < 1 ||
		    cf->connection_prefix_ipv6 > 128 ||
		    !STR_OK(cf->mailbox) || !STR_OK(cf->login_user) ||
		    !STR_OK(cf->greeting) || !STR_OK(cf->auth_mechanisms) ||
		    (cf->tls_cert[0] == '\0') != (cf->tls_key[0] == '\0'))
			abort();
	} else if (memchr(err, '\0', sizeof(err)) == NULL || err[0] == '\0') {
		abort();
	}
	free(cf);
	return 0;
}
