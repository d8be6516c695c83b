/*
 * The command-line tools that write into a store, postino-deliver and
 * postino-migrate, start alike: -h, -V, -c FILE and -d USER beside their
 * own options, the configuration, the account looked up as the LMTP
 * service looks it up, the store prepared while still root (a pgsql
 * password file), then the mailbox owner's privileges. Each tool keeps only
 * what differs, in a struct delivery_tool.
 */
#ifndef POSTINO_DELIVERY_TOOL_H
#define POSTINO_DELIVERY_TOOL_H

#include <stdbool.h>

#include "../auth/auth.h"
#include "../server/config.h"

struct delivery_tool {
	const char	*manual;	/* -h, --help */
	const char	*usage;		/* the one line for a bad command line */
	const char	*options;	/* getopt letters of the tool's own */
	/* One of them with its argument (NULL when it takes none). */
	void		(*option)(int ch, const char *arg);
	int		 operands;	/* exactly this many after the options */
	/* Prepare the stores while still root; 0, or -1 with err. */
	int		(*store_setup)(const struct config *cf, char *err);
};

/*
 * Parse argv for t, load the configuration (umask 077 first), look -d USER
 * up and become its mailbox owner; on any failure one line on stderr and
 * the sysexits.h code (delivery_die). The configuration (free() it), u,
 * and the operands at argv + *first_r.
 */
struct config *delivery_tool_start(const struct delivery_tool *t, int argc,
    char **argv, struct auth_user *u, int *first_r);

/* "PROGRAM: usage: ..." and EX_USAGE. */
void delivery_tool_usage(const struct delivery_tool *t)
    __attribute__((noreturn));

/*
 * One line "PROGRAM: message" on stderr, then exit with code (sysexits.h).
 */
void delivery_die(int code, const char *fmt, ...)
    __attribute__((format(printf, 2, 3), noreturn));

#endif
