#include "client.h"

#include <stdarg.h>
#include <stdio.h>

#include "../lib/str.h"
#include "progress.h"

void
client_warnx(const char *fmt, ...)
{
	char line[ERR_LEN * 3];
	va_list ap;

	va_start(ap, fmt);
	(void)vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	progress_clear_shown();
	fprintf(stderr, "postino: %s\n", line);
}

int
client_exit_for(enum pop3c_error e)
{
	switch (e) {
	case POP3C_ENET:
		return EXIT_NET;
	case POP3C_ETLS:
		return EXIT_TLS;
	case POP3C_EAUTH:
		return EXIT_AUTH;
	case POP3C_EINUSE:
		return EXIT_INUSE;
	case POP3C_ELOCAL:
		return EXIT_LOCAL;
	default:
		return EXIT_PROTO;
	}
}
