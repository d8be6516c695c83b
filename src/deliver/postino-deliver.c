/*
 * postino-deliver: one message on stdin into one user's mailbox, for MTAs
 * that deliver through a program (Postfix mailbox_command or pipe,
 * OpenSMTPD mda, Exim pipe). The same code as the LMTP service's deliver
 * workers (src/deliver/delivery.c): same path, headers, locks and
 * durability. Exit status from sysexits.h, with one line on stderr that
 * the MTA puts into its bounce or log.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sysexits.h>
#include <unistd.h>

#include "../auth/auth.h"
#include "../lib/fdio.h"
#include "../store/store_pgsql.h"
#include "delivery.h"
#include "delivery_tool.h"
#include "lmtp_cmds.h"

static const char manual[] =
"usage: postino-deliver [-c FILE] [-f SENDER] [-a RECIPIENT] -d USER\n"
"Deliver one message from standard input into USER's mailbox, as postinod's\n"
"LMTP service does (same path, headers, locks and durability).\n"
"  -c FILE       configuration (default /etc/postino/postinod.conf)\n"
"  -d USER       the passwd-file user to deliver to\n"
"  -f SENDER     Return-Path (default $SENDER; none without either)\n"
"  -a RECIPIENT  Delivered-To (default $ORIGINAL_RECIPIENT, else USER)\n"
"  -h, --help    print this text;  -V, --version  print the version\n"
"A leading mbox \"From \" line is dropped. Exit status (sysexits.h): 0\n"
"delivered, 75 try again later (also a full mailbox with\n"
"lmtp_quota_temporary), 67 no such user, 73 mailbox cannot be written or\n"
"full, 65 message too big, 64 usage, 78 configuration; with one line on\n"
"stderr for the MTA's bounce.\n";

/*
 * stdin into a memfd with LF line ends (the LMTP decoder, BDAT mode:
 * no dot handling), at most max octets. A leading mbox "From " line (the
 * envelope Postfix's local(8) and procmail-style callers prepend) is not
 * part of the message and is dropped, as Dovecot's LDA does.
 */
static int
spool_stdin(uint64_t max)
{
	static char in[65536], out[65536 + 1];
	struct lmtp_data dec;
	uint64_t total = 0;
	size_t olen, skip = 0;
	ssize_t n;
	bool first = true, in_from = false;
	int fd = memfd_create("postino-deliver", MFD_CLOEXEC);

	if (fd < 0)
		delivery_die(EX_TEMPFAIL, "memfd_create: %s", strerror(errno));
	lmtp_data_init(&dec, false);
	for (;;) {
		n = read(STDIN_FILENO, in, sizeof(in));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			delivery_die(EX_TEMPFAIL, "reading the message: %s",
			    strerror(errno));
		skip = 0;
		if (first && n > 0) {
			/* "From " may arrive split: a short first read is rare */
			first = false;
			in_from = n >= 5 && memcmp(in, "From ", 5) == 0;
		}
		if (in_from) {
			char *lfp = memchr(in, '\n', (size_t)n);

			skip = lfp != NULL ? (size_t)(lfp - in) + 1 : (size_t)n;
			in_from = lfp == NULL;
		}
		if (n == 0)
			olen = lmtp_data_finish(&dec, out);
		else
			(void)lmtp_data_feed(&dec, in + skip, (size_t)n - skip,
			    out, &olen);
		if (__builtin_add_overflow(total, olen, &total) || total > max)
			delivery_die(EX_DATAERR,
			    "message larger than %llu octets",
			    (unsigned long long)max);
		if (fd_write_all(fd, out, olen) < 0)
			delivery_die(EX_TEMPFAIL, "spooling the message: %s",
			    strerror(errno));
		if (n == 0)
			return fd;
	}
}

/* A header value from the command line or the environment: one line. */
static const char *
header_value(const char *v, const char *what)
{
	if (v == NULL)
		return NULL;
	if (strlen(v) > LMTP_PATH_MAX || strpbrk(v, "\r\n<>") != NULL)
		delivery_die(EX_USAGE, "%s: not a usable address", what);
	return v;
}

/* -f and -a: the envelope, when not from the environment. */
static const char *opt_sender, *opt_rcpt;

static void
option(int ch, const char *arg)
{
	if (ch == 'f')
		opt_sender = arg;
	else
		opt_rcpt = arg;
}

static const struct delivery_tool tool = {
	.manual = manual,
	.usage = "usage: postino-deliver [-c FILE] [-f SENDER] [-a RECIPIENT] "
	    "-d USER",
	.options = "f:a:",
	.option = option,
	.operands = 0,
	.store_setup = config_store_setup,
};

int
main(int argc, char **argv)
{
	const char *sender = opt_sender, *rcpt;
	struct auth_user u;
	struct config *cf;
	enum store_result r;
	char err[ERR_LEN];
	bool quota_temporary;
	int fd, first;

	cf = delivery_tool_start(&tool, argc, argv, &u, &first);
	/* Postfix passes the envelope in the environment (local(8)). */
	sender = opt_sender != NULL ? opt_sender : getenv("SENDER");
	rcpt = opt_rcpt != NULL ? opt_rcpt : getenv("ORIGINAL_RECIPIENT");
	if (rcpt == NULL)
		rcpt = u.name;
	sender = header_value(sender, "sender");
	rcpt = header_value(rcpt, "recipient");
	fd = spool_stdin(cf->lmtp_max_message_size);
	r = delivery_run(cf, &u, fd, sender, rcpt, NULL, err);
	store_pgsql_shutdown();
	quota_temporary = cf->lmtp_quota_temporary;
	close(fd);
	free(cf);
	switch (r) {
	case STORE_OK:
		return EX_OK;
	case STORE_OVERQUOTA:
		/* As LMTP's 552 5.2.2, or 452 4.2.2 with lmtp_quota_temporary. */
		delivery_die(quota_temporary ? EX_TEMPFAIL : EX_CANTCREAT,
		    "%s: mailbox full", u.name);
	case STORE_PERMFAIL:
		delivery_die(EX_CANTCREAT, "%s: %s", u.name, err);
	default:
		delivery_die(EX_TEMPFAIL, "%s: %s", u.name, err);
	}
}
