/*
 * postino: fetch mail from a POP3 server (list, stat, fetch).
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "../lib/ev.h"
#include "../lib/net.h"
#include "../lib/version.h"
#include "account.h"
#include "client.h"
#include "daemon.h"
#include "fetch_loop.h"
#include "limits.h"
#include "pop3c.h"
#include "pop3c_tls.h"
#include "reader.h"
#include "state.h"

struct opts {
	const char	*cmd;
	const char	*account;
	enum account_tls tls;
	const char	*cafile;
	const char	*fingerprint;
	const char	*auth;
	int		 family;
	bool		 verbose, quiet, keep;
	const char	*maildir, *mbox, *mda;
	const char	*lmtp, *lmtp_recipient;	/* --lmtp ADDRESS */
	const char	*user;
	const char	*password_command;
	const char	*token_command;
	const char	*config;
	int		 timeout;
	bool		 all;		/* fetch every configured account */
	bool		 rebuild_state;
	bool		 delete_oversized;
	uint64_t	 max_size;	/* 0: the account's, or none */
	uint32_t	 max_messages;
	uint32_t	 keep_days;
	uint32_t	 daemon;	/* poll interval, seconds; 0: once */
	bool		 received;	/* add a Received: header */
	char		 config_path[PATH_MAX];	/* --config, or the default */
};

struct session {
	struct opts	*o;
	struct account	 a;
	enum pop3c_auth	 auth;
	struct pop3c_tls_params tls;
	const char	*hint;		/* the method tried, if others exist */
	char		 where[ACCOUNT_HOST_MAX + 16];	/* "host:port" */
	struct pop3c	*c;
	uint32_t	 login_delay;	/* the server's CAPA LOGIN-DELAY */
};

static mode_t user_umask = 022;

static void
usage(FILE *f)
{
	fprintf(f,
"usage: postino fetch [options] [fetch options] [ACCOUNT | --all]\n"
"       postino list  [options] [ACCOUNT]   # number, size, UIDL per message\n"
"       postino stat  [options] [ACCOUNT]   # \"N messages, B octets\"\n"
"       postino read  [options] [ACCOUNT]   # interactive reader (a terminal)\n"
"       postino --help | --version\n"
"ACCOUNT  [pop3://|pop3s://][user@]host[:port], or an account name from\n"
"         ~/.config/postino/config; fetch without one fetches every\n"
"         account there, the others use the one marked \"default yes\"\n"
"options  --tls=stls|implicit|no   (default stls; implicit for pop3s://;\n"
"                                  `no' is plaintext and must be asked for)\n"
"         --cafile FILE  --tls-fingerprint SHA256 (pin the certificate)\n"
"         --auth=scram-sha-256-plus|scram-sha-256|apop|cram-md5|plain|\n"
"                login|user|oauthbearer|xoauth2   (default: the strongest\n"
"                the server offers; OAuth 2.0 only when asked for)\n"
"         -4  -6  --user NAME  --password-command CMD\n"
"         --token-command CMD   (OAuth: prints the bearer token)\n"
"         --config FILE  --timeout SECS  --verbose  --quiet\n"
"fetch    --maildir DIR | --mbox FILE | --mda CMD | --lmtp unix:PATH|HOST:PORT\n"
"         (else the account's)  --lmtp-recipient NAME (default: you)\n"
"         --all  --keep  --keep-days N  --max-size BYTES[k|M|G]\n"
"         --delete-oversized  --max-messages N  --rebuild-state\n"
"         --received-header   (add a Received: line to each message)\n"
"         --daemon SECS   (poll every SECS; SIGHUP rereads the config)\n"
"password the first of: --password-command CMD, $POSTINO_PASSWORD, the\n"
"         account's password-command, ~/.netrc, a prompt on the terminal\n"
"exit     0 ok (also no new mail), 1 usage, 2 connection/network, 3 TLS,\n"
"         4 authentication, 5 mailbox in use or login delay, 6 local\n"
"         delivery failed (nothing lost), 7 server error or protocol\n"
"         violation; with several accounts, the status of the first\n"
"         that failed\n");
}

/* Kept short: option parsing below says warnx_ throughout. */
#define warnx_ client_warnx

/* Report the session's failure; returns the exit code. */
static int
session_fail(struct session *s)
{
	enum pop3c_error e = pop3c_error(s->c);

	if (e == POP3C_EAUTH && s->hint != NULL)
		warnx_("%s: authentication failed for %s: %s (postino tried "
		    "only %s, the strongest the server offers; --auth=METHOD "
		    "picks another)", s->where, s->a.user, pop3c_errmsg(s->c),
		    s->hint);
	else if (e == POP3C_EAUTH)
		warnx_("%s: authentication failed for %s: %s", s->where,
		    s->a.user, pop3c_errmsg(s->c));
	else
		warnx_("%s: %s", s->where, pop3c_errmsg(s->c));
	return client_exit_for(e);
}

enum { O_TLS = 256, O_CAFILE, O_FINGERPRINT, O_AUTH, O_MAILDIR,
    O_MBOX, O_MDA, O_USER, O_PWCMD, O_CONFIG, O_TIMEOUT, O_HELP,
    O_ALL, O_KEEPDAYS, O_MAXSIZE, O_DELOVER, O_MAXMSGS, O_REBUILD,
    O_DAEMON, O_VERSION, O_RECEIVED, O_TOKENCMD,
    O_LMTP, O_LMTP_RCPT };

static const struct option longopts[] = {
	{ "tls", required_argument, NULL, O_TLS },
	{ "cafile", required_argument, NULL, O_CAFILE },
	{ "tls-fingerprint", required_argument, NULL, O_FINGERPRINT },
	{ "auth", required_argument, NULL, O_AUTH },
	{ "maildir", required_argument, NULL, O_MAILDIR },
	{ "mbox", required_argument, NULL, O_MBOX },
	{ "mda", required_argument, NULL, O_MDA },
	{ "user", required_argument, NULL, O_USER },
	{ "password-command", required_argument, NULL, O_PWCMD },
	{ "token-command", required_argument, NULL, O_TOKENCMD },
	{ "config", required_argument, NULL, O_CONFIG },
	{ "timeout", required_argument, NULL, O_TIMEOUT },
	{ "keep", no_argument, NULL, 'k' },
	{ "verbose", no_argument, NULL, 'v' },
	{ "quiet", no_argument, NULL, 'q' },
	{ "help", no_argument, NULL, O_HELP },
	{ "version", no_argument, NULL, O_VERSION },
	{ "all", no_argument, NULL, O_ALL },
	{ "keep-days", required_argument, NULL, O_KEEPDAYS },
	{ "max-size", required_argument, NULL, O_MAXSIZE },
	{ "delete-oversized", no_argument, NULL, O_DELOVER },
	{ "max-messages", required_argument, NULL, O_MAXMSGS },
	{ "rebuild-state", no_argument, NULL, O_REBUILD },
	{ "daemon", required_argument, NULL, O_DAEMON },
	{ "received-header", no_argument, NULL, O_RECEIVED },
	{ "lmtp", required_argument, NULL, O_LMTP },
	{ "lmtp-recipient", required_argument, NULL, O_LMTP_RCPT },
	{ NULL, 0, NULL, 0 }
};

/* A fetch option: 0 taken, -1 bad (said why), 1 not a fetch option. */
static int
parse_fetch_opt(int ch, const char *arg, struct opts *o)
{
	switch (ch) {
	case 'k':
		o->keep = true;
		return 0;
	case O_MAILDIR:
		o->maildir = arg;
		return 0;
	case O_MBOX:
		o->mbox = arg;
		return 0;
	case O_MDA:
		o->mda = arg;
		return 0;
	case O_LMTP:
		o->lmtp = arg;
		return 0;
	case O_LMTP_RCPT:
		o->lmtp_recipient = arg;
		return 0;
	case O_ALL:
		o->all = true;
		return 0;
	case O_KEEPDAYS:
		if (str_parse_u32(arg, &o->keep_days) == 0 &&
		    o->keep_days > 0 && o->keep_days <= ACCOUNT_KEEP_DAYS_MAX)
			return 0;
		warnx_("--keep-days: 1 to %d", ACCOUNT_KEEP_DAYS_MAX);
		return -1;
	case O_MAXSIZE:
		if (account_parse_size(arg, &o->max_size) == 0 &&
		    o->max_size > 0)
			return 0;
		warnx_("--max-size: a number of octets, k, M or G after it "
		    "allowed");
		return -1;
	case O_DELOVER:
		o->delete_oversized = true;
		return 0;
	case O_MAXMSGS:
		if (str_parse_u32(arg, &o->max_messages) == 0 &&
		    o->max_messages > 0)
			return 0;
		warnx_("--max-messages: a positive number");
		return -1;
	case O_REBUILD:
		o->rebuild_state = true;
		return 0;
	case O_RECEIVED:
		o->received = true;
		return 0;
	case O_DAEMON:
		if (str_parse_u32(arg, &o->daemon) == 0 && o->daemon > 0 &&
		    o->daemon <= DAEMON_INTERVAL_MAX)
			return 0;
		warnx_("--daemon: 1 to %d seconds", DAEMON_INTERVAL_MAX);
		return -1;
	default:
		return 1;
	}
}

/* Any other option: 0 taken, -1 bad (said why, or getopt did). */
static int
parse_opt(int ch, const char *arg, struct opts *o)
{
	uint32_t t;

	switch (ch) {
	case '4':
	case '6':
		o->family = ch == '4' ? AF_INET : AF_INET6;
		return 0;
	case 'v':
		o->verbose = true;
		return 0;
	case 'q':
		o->quiet = true;
		return 0;
	case O_TLS:
		if (account_parse_tls(arg, &o->tls) == 0)
			return 0;
		warnx_("--tls: use stls, implicit or no");
		return -1;
	case O_CAFILE:
		o->cafile = arg;
		return 0;
	case O_FINGERPRINT:
		o->fingerprint = arg;
		return 0;
	case O_AUTH:
		o->auth = arg;
		return 0;
	case O_USER:
		o->user = arg;
		return 0;
	case O_PWCMD:
		o->password_command = arg;
		return 0;
	case O_TOKENCMD:
		o->token_command = arg;
		return 0;
	case O_CONFIG:
		o->config = arg;
		return 0;
	case O_TIMEOUT:
		if (str_parse_u32(arg, &t) < 0 || t == 0 || t > MAX_TIMEOUT) {
			warnx_("--timeout: 1 to %d seconds", MAX_TIMEOUT);
			return -1;
		}
		o->timeout = (int)t;
		return 0;
	case O_HELP:
		usage(stdout);
		exit(EXIT_OK);
	case O_VERSION:
		printf("postino %s\n", POSTINO_VERSION);
		exit(EXIT_OK);
	default:
		return -1;
	}
}

static bool
has_fetch_opts(const struct opts *o)
{
	return o->keep || o->maildir || o->mbox || o->mda || o->all ||
	    o->keep_days || o->max_size || o->delete_oversized ||
	    o->max_messages || o->rebuild_state || o->daemon ||
	    o->received || o->lmtp || o->lmtp_recipient;
}

static int
parse_opts(int argc, char **argv, struct opts *o)
{
	int ch, rc;

	optind = 1;
	while ((ch = getopt_long(argc, argv, "46kvq", longopts, NULL)) != -1) {
		rc = parse_fetch_opt(ch, optarg, o);
		if (rc > 0)
			rc = parse_opt(ch, optarg, o);
		if (rc < 0)
			return -1;
	}
	if (optind < argc - 1) {
		warnx_("one ACCOUNT only");
		return -1;
	}
	o->account = optind == argc - 1 ? argv[optind] : NULL;
	if (strcmp(o->cmd, "fetch") != 0 && has_fetch_opts(o)) {
		warnx_("--keep, --maildir, --mbox, --mda and the other fetch "
		    "options are for fetch");
		return -1;
	}
	if (o->all && o->account != NULL) {
		warnx_("--all or an ACCOUNT, not both");
		return -1;
	}
	if (o->rebuild_state && (o->maildir || o->mbox || o->mda || o->lmtp)) {
		warnx_("--rebuild-state fetches nothing: no destination");
		return -1;
	}
	return 0;
}

/* The account with the command line's overrides. EXIT_OK or an exit code. */
static int
setup_account(struct session *s, const char *name)
{
	struct opts *o = s->o;
	char err[ERR_LEN];
	const char *cfg = o->config_path[0] != '\0' ? o->config_path : NULL;

	if (account_resolve(&s->a, name, cfg, err) < 0) {
		warnx_("%s", err);
		return EXIT_USAGE;
	}
	if (o->tls != ACCOUNT_TLS_DEFAULT)
		s->a.tls = o->tls;
	if (o->family != AF_UNSPEC)
		s->a.family = o->family;
	if (o->user != NULL && str_copy(s->a.user, sizeof(s->a.user),
	    o->user) < 0) {
		warnx_("--user: too long");
		return EXIT_USAGE;
	}
	if (o->cafile != NULL && str_copy(s->a.cafile, sizeof(s->a.cafile),
	    o->cafile) < 0) {
		warnx_("--cafile: too long");
		return EXIT_USAGE;
	}
	if (o->password_command != NULL && str_copy(s->a.password_command,
	    sizeof(s->a.password_command), o->password_command) < 0) {
		warnx_("--password-command: too long");
		return EXIT_USAGE;
	}
	s->a.password_command_cli = o->password_command != NULL;
	if (o->token_command != NULL && str_copy(s->a.token_command,
	    sizeof(s->a.token_command), o->token_command) < 0) {
		warnx_("--token-command: too long");
		return EXIT_USAGE;
	}
	if ((o->fingerprint != NULL && str_copy(s->a.tls_fingerprint,
	    sizeof(s->a.tls_fingerprint), o->fingerprint) < 0) ||
	    (o->auth != NULL && str_copy(s->a.auth, sizeof(s->a.auth),
	    o->auth) < 0)) {
		warnx_("--tls-fingerprint or --auth: too long");
		return EXIT_USAGE;
	}
	account_finish(&s->a);
	s->auth = POP3C_AUTH_AUTO;
	if (s->a.auth[0] != '\0' && pop3c_auth_parse(s->a.auth, &s->auth) < 0) {
		warnx_("--auth: use scram-sha-256-plus, scram-sha-256, apop, "
		    "cram-md5, plain, login, user, oauthbearer or xoauth2");
		return EXIT_USAGE;
	}
	s->tls.host = s->a.host;
	s->tls.cafile = s->a.cafile[0] != '\0' ? s->a.cafile : NULL;
	s->tls.verbose = o->verbose;
	if (s->a.tls_fingerprint[0] != '\0') {
		if (pop3c_tls_parse_fingerprint(s->a.tls_fingerprint,
		    s->tls.pin) < 0) {
			warnx_("--tls-fingerprint: 64 hex digits (the SHA-256 "
			    "of the certificate), colons allowed");
			return EXIT_USAGE;
		}
		if (s->a.tls == ACCOUNT_TLS_NO) {
			warnx_("--tls-fingerprint needs TLS, not --tls=no");
			return EXIT_USAGE;
		}
		s->tls.pinned = true;
	}
	if (strchr(s->a.host, ':') != NULL)
		(void)str_fmt(s->where, sizeof(s->where), "[%s]:%s", s->a.host,
		    s->a.port);
	else
		(void)str_fmt(s->where, sizeof(s->where), "%s:%s", s->a.host,
		    s->a.port);
	return EXIT_OK;
}

/*
 * Connect, TLS (implicit, or STLS after the greeting), greet, CAPA, log
 * in. With TLS asked for, nothing but CAPA and STLS goes out before the
 * certificate checked out: a server without STLS is left, not logged in
 * to in plaintext. EXIT_OK or an exit code.
 */
static int
open_session(struct session *s)
{
	struct pop3c_transport tr = { 0 };
	char pass[ACCOUNT_SECRET_MAX + 1], err[ERR_LEN];
	const char *method = "";
	int fd, rc;

	if (account_password(&s->a, pass, sizeof(pass), err) < 0) {
		explicit_bzero(pass, sizeof(pass));
		warnx_("%s", err);
		return EXIT_AUTH;
	}
	fd = net_connect(s->a.host, s->a.port, s->a.family,
	    s->o->timeout * 1000, err);
	if (fd < 0) {
		explicit_bzero(pass, sizeof(pass));
		warnx_("%s", err);
		return EXIT_NET;
	}
	if (s->o->verbose)
		fprintf(stderr, "postino: connected to %s\n", s->where);
	if (s->a.tls == ACCOUNT_TLS_NO)
		rc = pop3c_fd_transport(&tr, fd, s->o->timeout * 1000);
	else
		rc = pop3c_tls_transport(&tr, fd, s->o->timeout * 1000,
		    &s->tls, s->a.tls == ACCOUNT_TLS_IMPLICIT, err);
	if (rc < 0) {
		explicit_bzero(pass, sizeof(pass));
		if (s->a.tls == ACCOUNT_TLS_NO) {
			warnx_("out of memory");
			return EXIT_LOCAL;
		}
		warnx_("%s: %s", s->where, err);
		return EXIT_TLS;
	}
	if ((s->c = pop3c_new(&tr)) == NULL) {
		explicit_bzero(pass, sizeof(pass));
		warnx_("out of memory");
		return EXIT_LOCAL;
	}
	pop3c_set_trace(s->c, s->o->verbose);
	(void)pop3c_set_peer(s->c, s->a.host, s->a.port);
	/* Silence where a greeting belongs: maybe a port that wants TLS. */
	rc = 0;
	if (s->a.tls != ACCOUNT_TLS_IMPLICIT && net_wait_fd(fd, POLLIN,
	    ev_now_ms() + GREETING_PROBE_MS) < 0 && errno == ETIMEDOUT)
		rc = pop3c_probe_capa(s->c);
	if (rc == 0)
		rc = pop3c_greeting(s->c) == 0 && pop3c_capa(s->c) >= 0 ? 0 :
		    -1;
	if (rc == 0 && s->a.tls == ACCOUNT_TLS_STLS) {
		if (!(pop3c_caps(s->c) & POP3C_CAP_STLS)) {
			explicit_bzero(pass, sizeof(pass));
			warnx_("%s: TLS: the server does not offer STLS; not "
			    "logging in without TLS (--tls=no would send the "
			    "password in plaintext)", s->where);
			return EXIT_TLS;
		}
		rc = pop3c_stls(s->c) == 0 && pop3c_capa(s->c) >= 0 ? 0 : -1;
	}
	if (rc == 0)
		rc = pop3c_login(s->c, s->a.user, pass, s->auth,
		    s->a.tls == ACCOUNT_TLS_NO, &method);
	explicit_bzero(pass, sizeof(pass));
	if (rc < 0) {
		/* Methods that need a secret the server may not keep. */
		s->hint = s->auth == POP3C_AUTH_AUTO && pop3c_usable(s->c) &&
		    (strncmp(method, "SCRAM", 5) == 0 ||
		    strcmp(method, "CRAM-MD5") == 0 ||
		    strcmp(method, "APOP") == 0) ? method : NULL;
		return session_fail(s);
	}
	if (s->o->verbose) {
		const char *cb = pop3c_channel_binding(s->c);

		fprintf(stderr, "postino: logged in as %s (%s%s%s)\n",
		    s->a.user, method, cb != NULL ? ", " : "",
		    cb != NULL ? cb : "");
	}
	return EXIT_OK;
}

static int
cmd_stat(struct session *s)
{
	uint32_t n;
	uint64_t size;

	if (pop3c_stat(s->c, &n, &size) < 0)
		return session_fail(s);
	if (pop3c_quit(s->c) < 0)
		return session_fail(s);
	printf("%u messages, %llu octets\n", (unsigned int)n,
	    (unsigned long long)size);
	return EXIT_OK;
}

/* For the reader: the session again after it dropped, or NULL (told). */
static struct pop3c *
read_reconnect(void *arg)
{
	struct session *s = arg;

	pop3c_free(&s->c);
	if (open_session(s) != EXIT_OK)
		pop3c_free(&s->c);
	return s->c;
}

/* The reader; -1 from it is a session failure, 1 a local one (reported). */
static int
cmd_read(struct session *s)
{
	struct reader_opts ro = { .user = s->a.user, .where = s->where,
	    .umask = user_umask, .reconnect = read_reconnect, .arg = s };
	int rc = reader_main(s->c, &ro);

	return rc < 0 ? session_fail(s) : rc > 0 ? EXIT_LOCAL : EXIT_OK;
}

/* UIDL unless CAPA says there is none. 0 uids filled, 1 none, -1 error. */
static int
get_uids(struct session *s, struct pop3c_msg *msgs, size_t n)
{
	if (pop3c_caps_known(s->c) && !(pop3c_caps(s->c) & POP3C_CAP_UIDL))
		return 1;
	return pop3c_uidl(s->c, msgs, n);
}

static int
cmd_list(struct session *s)
{
	struct pop3c_msg *msgs;
	size_t n;
	int rc;

	if (pop3c_list(s->c, &msgs, &n) < 0)
		return session_fail(s);
	rc = get_uids(s, msgs, n);
	if (rc < 0 || pop3c_quit(s->c) < 0) {
		pop3c_msgs_free(&msgs, n);
		return session_fail(s);
	}
	for (size_t i = 0; i < n; i++)
		printf("%u %llu %s\n", (unsigned int)msgs[i].num,
		    (unsigned long long)msgs[i].size,
		    msgs[i].uid != NULL ? msgs[i].uid : "-");
	pop3c_msgs_free(&msgs, n);
	if (fflush(stdout) != 0) {
		warnx_("stdout: %s", strerror(errno));
		return EXIT_LOCAL;
	}
	return EXIT_OK;
}

/* ---- fetch: the algorithm is fetch_loop.c ---- */

static int
fetch_connect(void *arg, struct pop3c **c_r)
{
	struct session *s = arg;
	int rc = open_session(s);

	*c_r = s->c;
	return rc;
}

/*
 * LMTP's RCPT TO: --lmtp-recipient, the account's lmtp-recipient, else the
 * user postino runs as (the local mailbox a fetchmail-style setup means).
 */
static int
lmtp_recipient(struct session *s, struct fetch_job *job)
{
	const struct passwd *pw;

	job->lmtp_rcpt = s->o->lmtp_recipient ? s->o->lmtp_recipient :
	    s->a.lmtp_recipient[0] ? s->a.lmtp_recipient : NULL;
	if (job->lmtp_rcpt == NULL && (pw = getpwuid(getuid())) != NULL)
		job->lmtp_rcpt = pw->pw_name;
	if (job->lmtp_rcpt == NULL || job->lmtp_rcpt[0] == '\0' ||
	    strlen(job->lmtp_rcpt) > ACCOUNT_USER_MAX ||
	    strpbrk(job->lmtp_rcpt, " \t\r\n<>") != NULL) {
		warnx_("--lmtp-recipient: an address or user name (no "
		    "spaces or angle brackets), up to %d octets",
		    ACCOUNT_USER_MAX);
		return EXIT_USAGE;
	}
	return EXIT_OK;
}

/* The destination: the command line's, else the account's; exactly one. */
static int
fetch_destination(struct session *s, struct fetch_job *job)
{
	struct opts *o = s->o;
	const char *maildir = o->maildir, *mbox = o->mbox, *mda = o->mda;
	const char *lmtp = o->lmtp;
	int given = !!maildir + !!mbox + !!mda + !!lmtp;

	if (given == 0) {
		maildir = s->a.maildir[0] ? s->a.maildir : NULL;
		mbox = s->a.mbox[0] ? s->a.mbox : NULL;
		mda = s->a.mda[0] ? s->a.mda : NULL;
		lmtp = s->a.lmtp[0] ? s->a.lmtp : NULL;
		given = !!maildir + !!mbox + !!mda + !!lmtp;
	}
	if (given != 1) {
		warnx_("fetch needs one of --maildir DIR, --mbox FILE, "
		    "--mda CMD, --lmtp ADDRESS");
		return EXIT_USAGE;
	}
	job->kind = maildir ? FETCH_MAILDIR : mbox ? FETCH_MBOX : mda ?
	    FETCH_MDA : FETCH_LMTP;
	job->dest = maildir ? maildir : mbox ? mbox : mda ? mda : lmtp;
	return lmtp != NULL ? lmtp_recipient(s, job) : EXIT_OK;
}

/* The account's settings, unless the command line has its own. */
static int
cmd_fetch(struct session *s)
{
	struct opts *o = s->o;
	char key[ACCOUNT_USER_MAX + ACCOUNT_HOST_MAX + 16];
	struct fetch_job job = {
		.server = s->where,
		.host = s->a.host,
		.user = s->a.user,
		.state_key = key,
		.rebuild_state = o->rebuild_state,
		.mda_umask = user_umask,
		.keep = o->keep || s->a.keep == 1,
		.delete_oversized = o->delete_oversized ||
		    s->a.delete_oversized,
		.received = o->received || s->a.received,
		.quiet = o->quiet,
		.verbose = o->verbose,
		.max_size = o->max_size ? o->max_size : s->a.max_size,
		.max_messages = o->max_messages ? o->max_messages :
		    s->a.max_messages,
		.keep_days = o->keep_days ? o->keep_days : s->a.keep_days,
		.connect = fetch_connect,
		.connect_arg = s,
	};
	int rc;

	if (!o->rebuild_state && (rc = fetch_destination(s, &job)) != EXIT_OK)
		return rc;
	if (account_key(&s->a, key, sizeof(key)) < 0) {
		warnx_("the account's name is too long for a state file");
		return EXIT_LOCAL;
	}
	return fetch_loop_run(&job);
}

/* One account's fetch. *delay_r: the server's LOGIN-DELAY, if it said. */
static int
fetch_one(struct opts *o, const char *name, uint32_t *delay_r)
{
	struct session s = { .o = o };
	int rc;

	rc = setup_account(&s, name);
	if (rc == EXIT_OK)
		rc = cmd_fetch(&s);
	if (delay_r != NULL)
		*delay_r = s.c != NULL ? pop3c_login_delay(s.c) : 0;
	pop3c_free(&s.c);
	explicit_bzero(&s.a, sizeof(s.a));
	return rc;
}

/*
 * The accounts a fetch is for: the one given, else every account of the
 * configuration file. EXIT_OK with *n_r, or EXIT_USAGE (said why).
 */
static int
fetch_names(struct opts *o, char (*names)[ACCOUNT_NAME_MAX + 1],
    size_t *n_r)
{
	char def[ACCOUNT_NAME_MAX + 1], err[ERR_LEN];

	if (o->account != NULL) {
		if (str_copy(names[0], sizeof(names[0]), o->account) < 0) {
			/* A URL, longer than a name: resolved at use. */
			*n_r = 0;
			return EXIT_OK;
		}
		*n_r = 1;
		return EXIT_OK;
	}
	if (account_names(o->config_path, names, ACCOUNT_MAX_ACCOUNTS, n_r,
	    def, err) < 0) {
		warnx_("%s", err);
		return EXIT_USAGE;
	}
	if (*n_r == 0) {
		warnx_("no ACCOUNT given and no accounts in %s",
		    o->config_path);
		return EXIT_USAGE;
	}
	return EXIT_OK;
}

/* Each account in turn; the first failure's exit code, after all ran. */
static int
fetch_all(struct opts *o)
{
	static char names[ACCOUNT_MAX_ACCOUNTS][ACCOUNT_NAME_MAX + 1];
	size_t n;
	int rc, first = EXIT_OK;

	if (o->account != NULL && strlen(o->account) > ACCOUNT_NAME_MAX)
		return fetch_one(o, o->account, NULL);
	if ((rc = fetch_names(o, names, &n)) != EXIT_OK)
		return rc;
	for (size_t i = 0; i < n; i++) {
		rc = fetch_one(o, names[i], NULL);
		if (first == EXIT_OK)
			first = rc;
	}
	return first;
}

static int
daemon_names(void *arg, char (*names)[ACCOUNT_NAME_MAX + 1], size_t *n_r)
{
	return fetch_names(arg, names, n_r);
}

static int
daemon_fetch(void *arg, const char *name, uint32_t *delay_r)
{
	return fetch_one(arg, name, delay_r);
}

/* --daemon: every account (or the one given) every o->daemon seconds. */
static int
run_daemon(struct opts *o)
{
	struct daemon_job job = { o->daemon, daemon_names, daemon_fetch, o };

	if (o->account != NULL && strlen(o->account) > ACCOUNT_NAME_MAX) {
		warnx_("--daemon: the ACCOUNT must be a name or a short URL");
		return EXIT_USAGE;
	}
	return daemon_run(&job);
}

int
main(int argc, char **argv)
{
	struct opts o = { .family = AF_UNSPEC, .timeout = DEFAULT_TIMEOUT };
	struct session s = { .o = &o };
	char err[ERR_LEN], def[ACCOUNT_NAME_MAX + 1];
	static char names[ACCOUNT_MAX_ACCOUNTS][ACCOUNT_NAME_MAX + 1];
	size_t n;
	int rc;

	/* A dead peer must be a write error, not a fatal signal. */
	signal(SIGPIPE, SIG_IGN);
	/* Ours: state, spool, mbox. The MDA gets the user's back. */
	user_umask = umask(077);
	if (argc < 2 || strcmp(argv[1], "--help") == 0 ||
	    strcmp(argv[1], "-h") == 0) {
		usage(argc < 2 ? stderr : stdout);
		return argc < 2 ? EXIT_USAGE : EXIT_OK;
	}
	if (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "-V") == 0) {
		printf("postino %s\n", POSTINO_VERSION);
		return EXIT_OK;
	}
	o.cmd = argv[1];
	if (strcmp(o.cmd, "fetch") != 0 && strcmp(o.cmd, "list") != 0 &&
	    strcmp(o.cmd, "stat") != 0 && strcmp(o.cmd, "read") != 0) {
		warnx_("unknown command \"%s\"", o.cmd);
		usage(stderr);
		return EXIT_USAGE;
	}
	if (parse_opts(argc - 1, argv + 1, &o) < 0) {
		usage(stderr);
		return EXIT_USAGE;
	}
	if (o.config != NULL) {
		if (str_copy(o.config_path, sizeof(o.config_path),
		    o.config) < 0) {
			warnx_("--config: too long");
			return EXIT_USAGE;
		}
	} else if (account_config_path(o.config_path, sizeof(o.config_path),
	    err) < 0) {
		o.config_path[0] = '\0';
	}
	if (strcmp(o.cmd, "read") == 0 && !reader_has_terminal()) {
		warnx_("read needs a terminal");
		return EXIT_USAGE;
	}
	if (strcmp(o.cmd, "fetch") == 0)
		return o.daemon > 0 ? run_daemon(&o) : fetch_all(&o);
	if (o.account == NULL) {
		if (account_names(o.config_path, names, ACCOUNT_MAX_ACCOUNTS,
		    &n, def, err) < 0) {
			warnx_("%s", err);
			return EXIT_USAGE;
		}
		if (def[0] == '\0' && n != 1) {
			warnx_("no ACCOUNT given and no default account (\"default "
			    "yes\") in %s", o.config_path);
			return EXIT_USAGE;
		}
		o.account = def[0] != '\0' ? def : names[0];
	}
	rc = setup_account(&s, o.account);
	if (rc != EXIT_OK)
		return rc;
	rc = open_session(&s);
	if (rc == EXIT_OK)
		rc = strcmp(o.cmd, "stat") == 0 ? cmd_stat(&s) :
		    strcmp(o.cmd, "read") == 0 ? cmd_read(&s) : cmd_list(&s);
	pop3c_free(&s.c);
	explicit_bzero(&s.a, sizeof(s.a));
	return rc;
}
