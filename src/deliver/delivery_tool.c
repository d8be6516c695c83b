#include "delivery_tool.h"

#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sysexits.h>

#include "../lib/log.h"
#include "../lib/version.h"
#include "delivery.h"

void
delivery_die(int code, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "%s: ", program_invocation_short_name);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(code);
}

void
delivery_tool_usage(const struct delivery_tool *t)
{
	delivery_die(EX_USAGE, "%s", t->usage);
}

/* -h and -V print and exit; the tool's own; -c and -d. */
static void
parse(const struct delivery_tool *t, int argc, char **argv,
    const char **conf, const char **user)
{
	static const struct option longopts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 }
	};
	char optstring[32];
	int ch;

	if (str_fmt(optstring, sizeof(optstring), "hVc:d:%s", t->options) < 0)
		delivery_die(EX_SOFTWARE, "too many options");
	/* One line on stderr (an MTA bounces with it): the usage alone. */
	opterr = 0;
	while ((ch = getopt_long(argc, argv, optstring, longopts, NULL)) !=
	    -1) {
		switch (ch) {
		case 'h':
			fputs(t->manual, stdout);
			exit(fflush(stdout) == 0 ? EX_OK : EX_IOERR);
		case 'V':
			printf("%s %s\n", program_invocation_short_name,
			    POSTINO_VERSION);
			exit(fflush(stdout) == 0 ? EX_OK : EX_IOERR);
		case 'c':
			*conf = optarg;
			break;
		case 'd':
			*user = optarg;
			break;
		case '?':
		case ':':
			delivery_tool_usage(t);
		default:
			t->option(ch, optarg);
		}
	}
	if (argc - optind != t->operands || *user == NULL)
		delivery_tool_usage(t);
}

/*
 * The account from the configured passdb. The backend's own messages (a
 * malformed passwd-file line, a database outage) go to the mail log, as
 * postinod's do: stderr is the one line for the MTA or the operator.
 */
static void
look_up(const struct delivery_tool *t, const struct config *cf,
    const char *user, struct auth_user *u)
{
	const struct auth_ops *ops;
	struct auth_db *db = NULL;
	enum auth_result ar;
	char err[ERR_LEN];

	if (!auth_name_valid(user))
		delivery_die(EX_NOUSER, "%s: no such user", user);
	log_init(program_invocation_short_name, false, false);
	if (config_passdb_open(cf, NULL, &ops, &db, err) < 0)
		delivery_die(EX_TEMPFAIL, "%s", err);
	ar = ops->lookup(db, user, u);
	ops->close(&db);
	if (ar == AUTH_PERMFAIL)
		delivery_die(EX_NOUSER, "%s: no such user", user);
	if (ar != AUTH_OK)
		delivery_die(EX_TEMPFAIL, "%s: user lookup failed", user);
	if (t->store_setup(cf, err) < 0)
		delivery_die(EX_TEMPFAIL, "%s", err);
}

struct config *
delivery_tool_start(const struct delivery_tool *t, int argc, char **argv,
    struct auth_user *u, int *first_r)
{
	const char *conf = "/etc/postino/postinod.conf", *user = NULL;
	struct config *cf;
	char err[ERR_LEN];

	parse(t, argc, argv, &conf, &user);
	umask(077);
	if ((cf = malloc(sizeof(*cf))) == NULL)
		delivery_die(EX_TEMPFAIL, "out of memory");
	if (config_load(cf, conf, err) < 0)
		delivery_die(EX_CONFIG, "%s", err);
	look_up(t, cf, user, u);
	/* Started as root (a pipe transport, an operator): the owner. */
	switch (delivery_become_owner(cf, u, err)) {
	case -1:
		delivery_die(EX_CONFIG, "%s: %s", user, err);
	case -2:
		delivery_die(EX_TEMPFAIL, "%s", err);
	}
	*first_r = optind;
	return cf;
}
