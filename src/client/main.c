/*
 * postino: fetch mail from a POP3 server (list, stat, fetch).
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <poll.h>
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

#include "../lib/version.h"
#include "account.h"
#include "fetch.h"
#include "pop3c.h"
#include "pop3c_tls.h"
#include "reader.h"
#include "state.h"

/* Exit codes: part of the command-line contract (README, usage). */
enum {
	EXIT_OK		= 0,
	EXIT_USAGE	= 1,
	EXIT_NET	= 2,	/* connection or network failure */
	EXIT_TLS	= 3,
	EXIT_AUTH	= 4,
	EXIT_INUSE	= 5,	/* [IN-USE], [LOGIN-DELAY], local lock */
	EXIT_LOCAL	= 6,	/* local delivery failed; nothing lost */
	EXIT_PROTO	= 7,	/* the server erred or broke the protocol */
};

/* Seconds to wait for a connection or for the server to say anything. */
#define DEFAULT_TIMEOUT		60
#define MAX_TIMEOUT		3600
/*
 * Deliveries made durable together (new/ and the state journal fsynced):
 * a power failure may deliver again at most one batch; a kill, nothing.
 */
#define SYNC_EVERY_MSGS		100
/*
 * A greeting later than this gets a CAPA probe (pop3c_probe_capa): a
 * server waiting for a TLS handshake fails at once instead of at the
 * timeout. Real greetings take milliseconds.
 */
#define GREETING_PROBE_MS	2000
/* --daemon: the longest interval, and the longest back-off on failures. */
#define DAEMON_INTERVAL_MAX	86400
#define DAEMON_BACKOFF_MAX	3600
#define SYNC_EVERY_MS		1000

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
	const char	*user;
	const char	*password_command;
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
"                login|user   (default: the strongest the server offers)\n"
"         -4  -6  --user NAME  --password-command CMD\n"
"         --config FILE  --timeout SECS  --verbose  --quiet\n"
"fetch    --maildir DIR | --mbox FILE | --mda CMD   (else the account's)\n"
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

struct progress;
static struct progress *progress_shown;
static void progress_clear(struct progress *p);

static void
warnx_(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void
warnx_(const char *fmt, ...)
{
	char line[ERR_LEN * 3];
	va_list ap;

	va_start(ap, fmt);
	(void)vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	/* On a line of its own, not after the progress bar. */
	progress_clear(progress_shown);
	fprintf(stderr, "postino: %s\n", line);
}

static int
exit_for(enum pop3c_error e)
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
	return exit_for(e);
}

static int
parse_opts(int argc, char **argv, struct opts *o)
{
	enum { O_TLS = 256, O_CAFILE, O_FINGERPRINT, O_AUTH, O_MAILDIR,
	    O_MBOX, O_MDA, O_USER, O_PWCMD, O_CONFIG, O_TIMEOUT, O_HELP,
	    O_ALL, O_KEEPDAYS, O_MAXSIZE, O_DELOVER, O_MAXMSGS, O_REBUILD,
	    O_DAEMON, O_VERSION, O_RECEIVED };
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
		{ NULL, 0, NULL, 0 }
	};
	uint32_t t;
	int ch;

	optind = 1;
	while ((ch = getopt_long(argc, argv, "46kvq", longopts, NULL)) != -1) {
		switch (ch) {
		case '4':
			o->family = AF_INET;
			break;
		case '6':
			o->family = AF_INET6;
			break;
		case 'k':
			o->keep = true;
			break;
		case 'v':
			o->verbose = true;
			break;
		case 'q':
			o->quiet = true;
			break;
		case O_TLS:
			if (account_parse_tls(optarg, &o->tls) < 0) {
				warnx_("--tls: use stls, implicit or no");
				return -1;
			}
			break;
		case O_CAFILE:
			o->cafile = optarg;
			break;
		case O_FINGERPRINT:
			o->fingerprint = optarg;
			break;
		case O_AUTH:
			o->auth = optarg;
			break;
		case O_MAILDIR:
			o->maildir = optarg;
			break;
		case O_MBOX:
			o->mbox = optarg;
			break;
		case O_MDA:
			o->mda = optarg;
			break;
		case O_USER:
			o->user = optarg;
			break;
		case O_PWCMD:
			o->password_command = optarg;
			break;
		case O_CONFIG:
			o->config = optarg;
			break;
		case O_TIMEOUT:
			if (str_parse_u32(optarg, &t) < 0 || t == 0 ||
			    t > MAX_TIMEOUT) {
				warnx_("--timeout: 1 to %d seconds",
				    MAX_TIMEOUT);
				return -1;
			}
			o->timeout = (int)t;
			break;
		case O_HELP:
			usage(stdout);
			exit(EXIT_OK);
		case O_VERSION:
			printf("postino %s\n", POSTINO_VERSION);
			exit(EXIT_OK);
		case O_ALL:
			o->all = true;
			break;
		case O_KEEPDAYS:
			if (str_parse_u32(optarg, &o->keep_days) < 0 ||
			    o->keep_days == 0 ||
			    o->keep_days > ACCOUNT_KEEP_DAYS_MAX) {
				warnx_("--keep-days: 1 to %d",
				    ACCOUNT_KEEP_DAYS_MAX);
				return -1;
			}
			break;
		case O_MAXSIZE:
			if (account_parse_size(optarg, &o->max_size) < 0 ||
			    o->max_size == 0) {
				warnx_("--max-size: a number of octets, "
				    "k, M or G after it allowed");
				return -1;
			}
			break;
		case O_DELOVER:
			o->delete_oversized = true;
			break;
		case O_MAXMSGS:
			if (str_parse_u32(optarg, &o->max_messages) < 0 ||
			    o->max_messages == 0) {
				warnx_("--max-messages: a positive number");
				return -1;
			}
			break;
		case O_REBUILD:
			o->rebuild_state = true;
			break;
		case O_RECEIVED:
			o->received = true;
			break;
		case O_DAEMON:
			if (str_parse_u32(optarg, &t) < 0 || t == 0 ||
			    t > DAEMON_INTERVAL_MAX) {
				warnx_("--daemon: 1 to %d seconds",
				    DAEMON_INTERVAL_MAX);
				return -1;
			}
			o->daemon = t;
			break;
		default:
			return -1;
		}
	}
	if (optind < argc - 1) {
		warnx_("one ACCOUNT only");
		return -1;
	}
	o->account = optind == argc - 1 ? argv[optind] : NULL;
	if (strcmp(o->cmd, "fetch") != 0 &&
	    (o->keep || o->maildir || o->mbox || o->mda || o->all ||
	    o->keep_days || o->max_size || o->delete_oversized ||
	    o->max_messages || o->rebuild_state || o->daemon ||
	    o->received)) {
		warnx_("--keep, --maildir, --mbox, --mda and the other fetch "
		    "options are for fetch");
		return -1;
	}
	if (o->all && o->account != NULL) {
		warnx_("--all or an ACCOUNT, not both");
		return -1;
	}
	if (o->rebuild_state && (o->maildir || o->mbox || o->mda)) {
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
		    "cram-md5, plain, login or user");
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
	char pass[ACCOUNT_PASS_MAX + 1], err[ERR_LEN];
	const char *method = "";
	int fd, rc;

	if (account_password(&s->a, pass, sizeof(pass), err) < 0) {
		explicit_bzero(pass, sizeof(pass));
		warnx_("%s", err);
		return EXIT_AUTH;
	}
	fd = pop3c_connect_tcp(s->a.host, s->a.port, s->a.family,
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
	/* Silence where a greeting belongs: maybe a port that wants TLS. */
	rc = 0;
	if (s->a.tls != ACCOUNT_TLS_IMPLICIT && pop3c_wait_fd(fd, POLLIN,
	    pop3c_now_ms() + GREETING_PROBE_MS) < 0 && errno == ETIMEDOUT)
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

/* ---- fetch ---- */

struct digest_ctx {
	EVP_MD_CTX	*md;
	bool		 failed;
};

static int
digest_data(void *arg, const char *data, size_t len, bool eol)
{
	struct digest_ctx *x = arg;

	if (!EVP_DigestUpdate(x->md, data, len) ||
	    (eol && !EVP_DigestUpdate(x->md, "\n", 1)))
		x->failed = true;
	return 0;
}

static int
cmp_uid_num(const void *a, const void *b)
{
	const struct pop3c_msg *x = *(const struct pop3c_msg *const *)a;
	const struct pop3c_msg *y = *(const struct pop3c_msg *const *)b;
	int c = strcmp(x->uid, y->uid);

	if (c != 0)
		return c;
	return x->num < y->num ? -1 : x->num > y->num;
}

/*
 * Commands to keep in flight: the server's PIPELINING (RFC 2449 sec. 6.6)
 * saves a round trip per message, and keeps a server that delays its last
 * small segment (Nagle against our delayed ACK) from stalling each one.
 */
static unsigned int
pipeline_window(struct session *s)
{
	return pop3c_caps(s->c) & POP3C_CAP_PIPELINING ? POP3C_PIPELINE_MAX :
	    1;
}

/*
 * No UIDL: a message's id is a digest of its size and header (TOP n 0),
 * plus its rank among messages with the same digest, so identical copies
 * stay apart. Weaker than UIDL: a server that rewrites headers makes
 * old messages look new.
 */
static int
digest_uids(struct session *s, struct pop3c_msg *msgs, size_t n)
{
	struct pop3c_msg **v;
	unsigned char md[EVP_MAX_MD_SIZE];
	char hex[2 * EVP_MAX_MD_SIZE + 1], size[32], id[POP3C_UID_MAX];
	unsigned int mdlen, *ranks;

	unsigned int window = pipeline_window(s);
	size_t sent = 0;

	warnx_("%s: the server has no UIDL; telling new messages from old by "
	    "size and a digest of the header (TOP)", s->where);
	for (size_t i = 0; i < n; i++) {
		struct digest_ctx x = { EVP_MD_CTX_new(), false };
		int rc = 0;

		while (rc == 0 && sent < n && sent - i < window)
			rc = pop3c_send_top(s->c, msgs[sent++].num, 0);
		if (rc < 0) {
			EVP_MD_CTX_free(x.md);
			return session_fail(s);
		}

		if (x.md == NULL || !EVP_DigestInit_ex(x.md, EVP_sha256(),
		    NULL)) {
			EVP_MD_CTX_free(x.md);
			warnx_("SHA-256 failed");
			return EXIT_LOCAL;
		}
		(void)str_fmt(size, sizeof(size), "%llu\n",
		    (unsigned long long)msgs[i].size);
		(void)EVP_DigestUpdate(x.md, size, strlen(size));
		/* The header of a message of this size cannot be larger. */
		rc = pop3c_recv_data(s->c, msgs[i].size + 65536, digest_data,
		    &x, NULL);
		mdlen = 0;
		if (rc == 0 && !EVP_DigestFinal_ex(x.md, md, &mdlen))
			x.failed = true;
		EVP_MD_CTX_free(x.md);
		if (rc < 0) {
			if (pop3c_error(s->c) == POP3C_ESERVER)
				warnx_("%s: the server has neither UIDL nor "
				    "TOP: cannot tell new messages from old",
				    s->where);
			return pop3c_error(s->c) == POP3C_ESERVER ?
			    EXIT_PROTO : session_fail(s);
		}
		if (x.failed) {
			warnx_("SHA-256 failed");
			return EXIT_LOCAL;
		}
		str_hex(hex, md, mdlen > 20 ? 20 : mdlen);
		msgs[i].uid = strdup(hex);
		if (msgs[i].uid == NULL) {
			warnx_("out of memory");
			return EXIT_LOCAL;
		}
	}
	if (n == 0)
		return EXIT_OK;
	v = calloc(n, sizeof(*v));
	if (v == NULL) {
		warnx_("out of memory");
		return EXIT_LOCAL;
	}
	for (size_t i = 0; i < n; i++)
		v[i] = &msgs[i];
	qsort(v, n, sizeof(*v), cmp_uid_num);
	/* Rank first, on the bare digests; then rename. */
	ranks = calloc(n, sizeof(*ranks));
	if (ranks == NULL) {
		free(v);
		warnx_("out of memory");
		return EXIT_LOCAL;
	}
	for (size_t i = 1; i < n; i++)
		if (strcmp(v[i - 1]->uid, v[i]->uid) == 0)
			ranks[i] = ranks[i - 1] + 1;
	for (size_t i = 0; i < n; i++) {
		char *u;

		(void)str_fmt(id, sizeof(id), "digest-%s-%u", v[i]->uid,
		    ranks[i]);
		u = strdup(id);
		if (u == NULL) {
			free(ranks);
			free(v);
			warnx_("out of memory");
			return EXIT_LOCAL;
		}
		free(v[i]->uid);
		v[i]->uid = u;
	}
	free(ranks);
	free(v);
	return EXIT_OK;
}

struct on_server {
	const char	**uids;		/* sorted */
	size_t		  n;
};

static int
cmp_str(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static bool
is_on_server(const char *uid, void *arg)
{
	struct on_server *os = arg;

	return os->n > 0 && bsearch(&uid, os->uids, os->n, sizeof(*os->uids),
	    cmp_str) != NULL;
}

struct progress {
	bool		 on;
	bool		 drawn;		/* the bar is on the terminal's line */
	size_t		 msgs_done, msgs_total;
	uint64_t	 bytes_done, bytes_total;
	uint64_t	 shown;		/* bytes at the last redraw */
	unsigned int	 width;		/* of what was drawn */
	struct fetch_dest *dest;
};

/* progress_shown: the bar on the screen, for warnx_() to clear first. */

/* Columns of the terminal on stderr; 80 when it does not say. */
static unsigned int
term_columns(void)
{
	struct winsize ws;

	if (ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0)
		return ws.ws_col;
	return 80;
}

/* Blank the bar's line, cursor at its start. */
static void
progress_clear(struct progress *p)
{
	if (p == NULL || !p->drawn)
		return;
	fprintf(stderr, "\r%*s\r", (int)p->width, "");
	p->drawn = false;
}

/*
 * One line, redrawn in place with "\r": never wider than the terminal
 * less one column, or it would wrap and each redraw add a line.
 */
static void
progress_draw(struct progress *p)
{
	char bar[21], line[160];
	unsigned int cols;
	size_t fill;
	int n;

	if (!p->on)
		return;
	fill = p->bytes_total == 0 ? 20 :
	    (size_t)((p->bytes_done > p->bytes_total ? p->bytes_total :
	    p->bytes_done) * 20 / p->bytes_total);
	memset(bar, '#', fill);
	memset(bar + fill, '.', 20 - fill);
	bar[20] = '\0';
	cols = term_columns();
	n = snprintf(line, sizeof(line), "postino: [%s] %zu/%zu messages, "
	    "%llu/%llu KiB", bar, p->msgs_done, p->msgs_total,
	    (unsigned long long)(p->bytes_done / 1024),
	    (unsigned long long)(p->bytes_total / 1024));
	if (n < 0)
		return;
	/* Narrow terminals: the counts first, the bar only if it fits. */
	if ((unsigned int)n >= cols)
		n = snprintf(line, sizeof(line), "%zu/%zu messages",
		    p->msgs_done, p->msgs_total);
	if (n < 0)
		return;
	if ((unsigned int)n >= cols)
		n = cols > 1 ? (int)cols - 1 : 0;
	line[n] = '\0';
	/* Pad over a longer previous line. */
	fprintf(stderr, "\r%-*s", p->drawn && p->width > (unsigned int)n ?
	    (int)p->width : n, line);
	p->width = (unsigned int)n > p->width || !p->drawn ? (unsigned int)n :
	    p->width;
	p->drawn = true;
	progress_shown = p;
	p->shown = p->bytes_done;
}

static int
progress_data(void *arg, const char *data, size_t len, bool eol)
{
	struct progress *p = arg;

	p->bytes_done += len + (eol ? 2 : 0);
	if (p->on && p->bytes_done - p->shown >= 65536)
		progress_draw(p);
	return fetch_data(p->dest, data, len, eol);
}

/*
 * Test hooks: die like kill -9 at the Nth delivery, after it is recorded
 * (POSTINO_TEST_KILL_AFTER=N) or after it is stored but before it is
 * recorded (POSTINO_TEST_KILL_STORED=N).
 */
static unsigned long
test_hook(const char *name)
{
	const char *v = getenv(name);
	uint32_t n;

	return v != NULL && str_parse_u32(v, &n) == 0 ? n : 0;
}

/* A delivery a killed run left pending: record or forget it. */
static int
recover_pending(struct state *st, struct fetch_dest *dest)
{
	const char *uid = state_pending_uid(st);
	char err[ERR_LEN];
	int rc;

	if (uid == NULL)
		return EXIT_OK;
	rc = fetch_recover(dest, state_pending_token(st), err);
	if (rc < 0) {
		warnx_("%s", err);
		return EXIT_LOCAL;
	}
	if (rc == 2)
		warnx_("%s", err);
	if (rc == 0 && strcmp(state_pending_token(st), "mda") == 0)
		warnx_("the last run was interrupted while the mda ran; the "
		    "message it was given is delivered again");
	if ((rc == 1 ? state_add(st, uid, err) :
	    state_clear_pending(st, err)) < 0 || fetch_sync(dest, err) < 0 ||
	    state_sync(st, err) < 0) {
		warnx_("%s", err);
		return EXIT_LOCAL;
	}
	return EXIT_OK;
}

/* Deliveries first, then the records of them. EXIT_OK or EXIT_LOCAL. */
static int
sync_batch(struct state *st, struct fetch_dest *dest)
{
	char err[ERR_LEN];

	if (fetch_sync(dest, err) < 0 || state_sync(st, err) < 0) {
		warnx_("%s", err);
		return EXIT_LOCAL;
	}
	return EXIT_OK;
}

static int
open_dest(struct session *s, struct fetch_dest **d_r)
{
	struct opts *o = s->o;
	const char *maildir = o->maildir, *mbox = o->mbox, *mda = o->mda;
	char err[ERR_LEN];
	int given = !!maildir + !!mbox + !!mda;

	if (given == 0) {
		maildir = s->a.maildir[0] ? s->a.maildir : NULL;
		mbox = s->a.mbox[0] ? s->a.mbox : NULL;
		mda = s->a.mda[0] ? s->a.mda : NULL;
		given = !!maildir + !!mbox + !!mda;
	}
	if (given != 1) {
		warnx_("fetch needs one of --maildir DIR, --mbox FILE, "
		    "--mda CMD");
		return EXIT_USAGE;
	}
	if (fetch_open(d_r, maildir ? FETCH_MAILDIR : mbox ? FETCH_MBOX :
	    FETCH_MDA, maildir ? maildir : mbox ? mbox : mda, err) < 0) {
		warnx_("%s", err);
		return EXIT_LOCAL;
	}
	return EXIT_OK;
}

/* 2x the listed size and 1 MiB of slack: servers' sizes are estimates. */
static uint64_t
retr_bound(uint64_t size)
{
	uint64_t b;

	if (__builtin_mul_overflow(size, 2, &b) ||
	    __builtin_add_overflow(b, 1024 * 1024, &b))
		return UINT64_MAX;
	return b;
}

/*
 * The Received: header (RFC 5322 sec. 3.6.7, RFC 5321 sec. 4.4) that
 * --received-header adds: which server, which program, for whom, when.
 * The user is named only when it is a plain address-like token.
 */
static int
add_received(struct session *s, struct fetch_dest *dest)
{
	char line[ACCOUNT_HOST_MAX + ACCOUNT_USER_MAX + 128], host[256];
	char date[64];
	time_t now = time(NULL);
	struct tm tm;
	bool plain = s->a.user[0] != '\0';

	for (const char *p = s->a.user; *p != '\0'; p++)
		if (*p <= 0x20 || *p >= 0x7f || strchr("<>()\\\",;", *p))
			plain = false;
	if (gethostname(host, sizeof(host)) < 0)
		str_copy(host, sizeof(host), "localhost");
	host[sizeof(host) - 1] = '\0';
	localtime_r(&now, &tm);
	if (strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S %z",
	    &tm) == 0)
		return -1;
	(void)str_fmt(line, sizeof(line), "Received: from %s", s->a.host);
	if (fetch_data(dest, line, strlen(line), true) < 0)
		return -1;
	(void)str_fmt(line, sizeof(line), "\tby %s with POP3 (postino %s)%s%s%s;",
	    host, POSTINO_VERSION, plain ? " for <" : "",
	    plain ? s->a.user : "", plain ? ">" : "");
	if (fetch_data(dest, line, strlen(line), true) < 0)
		return -1;
	(void)str_fmt(line, sizeof(line), "\t%s", date);
	return fetch_data(dest, line, strlen(line), true);
}

/*
 * --rebuild-state: record every message on the server as fetched without
 * downloading one (after switching from another fetcher), delete nothing.
 */
static int
rebuild_state(struct session *s, struct state *st, struct pop3c_msg *msgs,
    size_t n)
{
	char err[ERR_LEN];
	size_t added = 0;

	for (size_t i = 0; i < n; i++) {
		if (state_has(st, msgs[i].uid))
			continue;
		if (state_add(st, msgs[i].uid, err) < 0) {
			warnx_("%s", err);
			return EXIT_LOCAL;
		}
		added++;
	}
	if (state_sync(st, err) < 0) {
		warnx_("%s", err);
		return EXIT_LOCAL;
	}
	if (pop3c_quit(s->c) < 0)
		return session_fail(s);
	if (!s->o->quiet)
		fprintf(stderr, "postino: %s: %zu message%s recorded as "
		    "fetched (%zu in all)\n", s->where, added,
		    added == 1 ? "" : "s", state_count(st));
	return EXIT_OK;
}

static int
cmd_fetch(struct session *s)
{
	struct fetch_dest *dest = NULL;
	struct state *st = NULL;
	struct pop3c_msg *msgs = NULL;
	struct on_server os = { NULL, 0 };
	struct progress pg = { 0 };
	char dir[PATH_MAX], key[ACCOUNT_USER_MAX + ACCOUNT_HOST_MAX + 16];
	char err[ERR_LEN];
	size_t n = 0, delivered = 0, deleted = 0;
	unsigned long kill_after = test_hook("POSTINO_TEST_KILL_AFTER");
	unsigned long kill_stored = test_hook("POSTINO_TEST_KILL_STORED");
	char token[PATH_MAX + 32];
	unsigned int window, unsynced = 0;
	uint64_t synced_at = pop3c_now_ms();
	bool synced = true;
	int rc, result = EXIT_OK;
	struct opts *o = s->o;
	bool *want = NULL, *del = NULL, keep;
	size_t nwant = 0, oversized = 0, later = 0;
	uint64_t max_size = o->max_size ? o->max_size : s->a.max_size;
	uint32_t max_messages = o->max_messages ? o->max_messages :
	    s->a.max_messages;
	uint32_t keep_days = o->keep_days ? o->keep_days : s->a.keep_days;
	bool delete_oversized = o->delete_oversized || s->a.delete_oversized;
	long long now;

	/* The account's settings, unless the command line has its own. */
	keep = o->keep || s->a.keep == 1 || keep_days > 0;
	if (!o->rebuild_state) {
		rc = open_dest(s, &dest);
		if (rc != EXIT_OK)
			return rc;
	}
	if (state_default_dir(dir, sizeof(dir), err) < 0 ||
	    account_key(&s->a, key, sizeof(key)) < 0) {
		warnx_("%s", err);
		fetch_close(&dest);
		return EXIT_LOCAL;
	}
	rc = state_open(&st, dir, key, err);
	if (rc != 0) {
		warnx_("%s", err);
		fetch_close(&dest);
		return rc > 0 ? EXIT_INUSE : EXIT_LOCAL;
	}
	if (dest != NULL) {
		fetch_set_mda_umask(dest, user_umask);
		fetch_set_recipient(dest, s->a.user);
		if (fetch_set_spool(dest, state_spool_path(st), err) < 0) {
			warnx_("%s", err);
			rc = EXIT_LOCAL;
			goto out;
		}
		rc = recover_pending(st, dest);
		if (rc != EXIT_OK)
			goto out;
	} else if (state_clear_pending(st, err) < 0) {
		/* --rebuild-state: what is on the server counts anyway. */
		warnx_("%s", err);
		rc = EXIT_LOCAL;
		goto out;
	}
	rc = open_session(s);
	if (rc != EXIT_OK)
		goto out;
	if (pop3c_list(s->c, &msgs, &n) < 0) {
		rc = session_fail(s);
		goto out;
	}
	rc = get_uids(s, msgs, n);
	if (rc < 0) {
		rc = session_fail(s);
		goto out;
	}
	rc = rc > 0 ? digest_uids(s, msgs, n) : EXIT_OK;
	if (rc != EXIT_OK)
		goto out;

	/* Forget what the server no longer has; it cannot come back. */
	os.uids = n > 0 ? calloc(n, sizeof(*os.uids)) : NULL;
	if (n > 0 && os.uids == NULL) {
		warnx_("out of memory");
		rc = EXIT_LOCAL;
		goto out;
	}
	for (size_t i = 0; i < n; i++)
		os.uids[i] = msgs[i].uid;
	os.n = n;
	if (n > 0)
		qsort(os.uids, n, sizeof(*os.uids), cmp_str);
	if (state_prune(st, is_on_server, &os) > 0 && state_save(st, err) < 0) {
		warnx_("%s", err);
		rc = EXIT_LOCAL;
		goto out;
	}

	if (o->rebuild_state) {
		rc = rebuild_state(s, st, msgs, n);
		goto out;
	}
	/* What to fetch now (want) and what to delete after (del). */
	want = n > 0 ? calloc(n, sizeof(*want)) : NULL;
	del = n > 0 ? calloc(n, sizeof(*del)) : NULL;
	if (n > 0 && (want == NULL || del == NULL)) {
		warnx_("out of memory");
		rc = EXIT_LOCAL;
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		if (state_has(st, msgs[i].uid))
			continue;
		if (max_size > 0 && msgs[i].size > max_size) {
			oversized++;
			del[i] = delete_oversized;
			continue;
		}
		if (max_messages > 0 && nwant >= max_messages) {
			later++;
			continue;
		}
		want[i] = true;
		nwant++;
	}

	window = pipeline_window(s);
	pg.on = isatty(STDERR_FILENO) && !s->o->quiet && !s->o->verbose;
	pg.dest = dest;
	for (size_t i = 0; i < n; i++) {
		if (want[i]) {
			pg.msgs_total++;
			if (__builtin_add_overflow(pg.bytes_total, msgs[i].size,
			    &pg.bytes_total))
				pg.bytes_total = UINT64_MAX;
		}
	}
	progress_draw(&pg);

	for (size_t i = 0, next = 0, ahead = 0; i < n; i++) {
		struct pop3c_msg *m = &msgs[i];

		if (!want[i])
			continue;
		/* RETRs in flight: this one and up to the window after it. */
		if (next <= i) {
			next = i;
			ahead = 0;
		}
		while (next < n && ahead < window) {
			if (want[next]) {
				if (pop3c_send_retr(s->c, msgs[next].num) < 0)
					break;
				ahead++;
			}
			next++;
		}
		if (ahead == 0) {
			result = session_fail(s);
			break;
		}
		ahead--;
		if (fetch_begin(dest, err) < 0) {
			warnx_("%s", err);
			result = EXIT_LOCAL;
			break;
		}
		/* A failure here shows in fetch_prepare/commit's error. */
		if (o->received || s->a.received)
			(void)add_received(s, dest);
		if (pop3c_recv_data(s->c, retr_bound(m->size), progress_data,
		    &pg, NULL) < 0) {
			if (pop3c_error(s->c) == POP3C_ELOCAL) {
				/* commit reports why the write failed */
				if (fetch_commit(dest, err) < 0)
					warnx_("%s", err);
				result = EXIT_LOCAL;
				break;
			}
			fetch_abort(dest);
			result = session_fail(s);
			break;
		}
		/*
		 * Pending first: a kill between commit and state_add must
		 * not deliver the message twice.
		 */
		if (fetch_prepare(dest, token, sizeof(token), err) < 0 ||
		    state_set_pending(st, m->uid, token, err) < 0) {
			fetch_abort(dest);
			warnx_("message %u: %s", (unsigned int)m->num, err);
			result = EXIT_LOCAL;
			break;
		}
		if (fetch_commit(dest, err) < 0) {
			char err2[ERR_LEN];

			warnx_("message %u: %s", (unsigned int)m->num, err);
			if (state_clear_pending(st, err2) < 0)
				warnx_("%s", err2);
			result = EXIT_LOCAL;
			break;
		}
		if (kill_stored > 0 && delivered + 1 == kill_stored)
			raise(SIGKILL);
		/* Delivered: now it counts, durably at the next sync. */
		if (state_add(st, m->uid, err) < 0) {
			warnx_("%s (message %u was delivered; it may be "
			    "delivered again)", err, (unsigned int)m->num);
			result = EXIT_LOCAL;
			break;
		}
		delivered++;
		pg.msgs_done++;
		progress_draw(&pg);
		if (kill_after > 0 && delivered == kill_after)
			raise(SIGKILL);
		if (++unsynced >= SYNC_EVERY_MSGS ||
		    pop3c_now_ms() - synced_at >= SYNC_EVERY_MS) {
			if (sync_batch(st, dest) != EXIT_OK) {
				result = EXIT_LOCAL;
				synced = false;
				break;
			}
			unsynced = 0;
			synced_at = pop3c_now_ms();
		}
	}
	if (pg.on && pg.drawn)
		fputc('\n', stderr);
	progress_shown = NULL;
	/* Nothing is deleted on the server before it is durable here. */
	if (synced && sync_batch(st, dest) != EXIT_OK) {
		result = EXIT_LOCAL;
		synced = false;
	}
	/* RETRs sent ahead of a failure: read their replies away. */
	if (pop3c_outstanding(s->c) > 0)
		(void)pop3c_drain_replies(s->c);

	/* The connection is gone: QUIT is impossible and nothing is deleted. */
	if (!pop3c_usable(s->c)) {
		rc = result;
		goto out;
	}
	/*
	 * Delete what is safely here (kept: once older than keep-days), and
	 * oversized messages when asked to. Nothing before the sync above.
	 */
	now = time(NULL);
	for (size_t i = 0; i < n && synced; i++) {
		long long seen = state_first_seen(st, msgs[i].uid);

		if (seen >= 0 && (!keep || (keep_days > 0 &&
		    now - seen >= (long long)keep_days * 86400)))
			del[i] = true;
	}
	for (size_t i = 0, next = 0; i < n && synced; i++) {
		if (!del[i])
			continue;
		for (; next < n && pop3c_outstanding(s->c) < window; next++)
			if (del[next] &&
			    pop3c_send_dele(s->c, msgs[next].num) < 0)
				break;
		if (pop3c_recv_status(s->c) < 0) {
			rc = session_fail(s);
			if (!pop3c_usable(s->c))
				goto out;
			result = rc;
			continue;
		}
		deleted++;
	}
	if (pop3c_quit(s->c) < 0) {
		rc = session_fail(s);
		goto out;
	}
	if (pg.on || s->o->verbose)
		fprintf(stderr, "postino: %zu new message%s fetched, %zu "
		    "deleted on the server\n", delivered,
		    delivered == 1 ? "" : "s", deleted);
	if (oversized > 0 && !o->quiet)
		warnx_("%s: %zu message%s over max-size (%llu octets) %s",
		    s->where, oversized, oversized == 1 ? "" : "s",
		    (unsigned long long)max_size, delete_oversized ?
		    "deleted on the server unread" : "left on the server");
	if (later > 0 && (pg.on || o->verbose))
		fprintf(stderr, "postino: %zu more wait for the next run "
		    "(max-messages %u)\n", later, (unsigned int)max_messages);
	rc = result;
out:
	progress_shown = NULL;
	free(want);
	free(del);
	free(os.uids);
	pop3c_msgs_free(&msgs, n);
	fetch_close(&dest);
	state_close(&st);
	return rc;
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

/* --daemon: SIGHUP polls at once with the config reread; SIGTERM stops. */
static volatile sig_atomic_t daemon_hup, daemon_stop;

static void
daemon_signal(int signo)
{
	if (signo == SIGHUP)
		daemon_hup = 1;
	else
		daemon_stop = 1;
}

struct daemon_acct {
	char		 name[ACCOUNT_NAME_MAX + 1];
	uint64_t	 next_ms;	/* when to poll it next */
	uint32_t	 backoff;	/* seconds after the last failure */
};

/*
 * Poll every account (or the one given) every o->daemon seconds. An
 * account that fails waits twice as long each time (up to
 * DAEMON_BACKOFF_MAX), and never less than the LOGIN-DELAY its server
 * announced. The configuration is read again before every round, so
 * SIGHUP (which starts a round at once) picks up an edited file.
 */
static int
run_daemon(struct opts *o)
{
	static char names[ACCOUNT_MAX_ACCOUNTS][ACCOUNT_NAME_MAX + 1];
	static struct daemon_acct acct[ACCOUNT_MAX_ACCOUNTS];
	struct sigaction sa = { .sa_handler = daemon_signal };
	size_t n, nacct = 0;

	sigemptyset(&sa.sa_mask);
	(void)sigaction(SIGHUP, &sa, NULL);
	(void)sigaction(SIGTERM, &sa, NULL);
	(void)sigaction(SIGINT, &sa, NULL);
	if (o->account != NULL && strlen(o->account) > ACCOUNT_NAME_MAX) {
		warnx_("--daemon: the ACCOUNT must be a name or a short URL");
		return EXIT_USAGE;
	}
	while (!daemon_stop) {
		static struct daemon_acct prev[ACCOUNT_MAX_ACCOUNTS];
		uint64_t now = pop3c_now_ms(), wake;
		size_t nprev = nacct;

		daemon_hup = 0;
		if (fetch_names(o, names, &n) != EXIT_OK) {
			/* A bad edit: keep the last good list, say so. */
			n = 0;
			for (size_t i = 0; i < nacct; i++)
				(void)str_copy(names[n++], sizeof(names[0]),
				    acct[i].name);
		}
		/* Carry each account's schedule over by name. */
		memcpy(prev, acct, nprev * sizeof(*prev));
		for (size_t i = 0; i < n; i++) {
			acct[i] = (struct daemon_acct){ .next_ms = now };
			(void)str_copy(acct[i].name, sizeof(acct[i].name),
			    names[i]);
			for (size_t j = 0; j < nprev; j++)
				if (strcmp(prev[j].name, names[i]) == 0)
					acct[i] = prev[j];
		}
		nacct = n;
		for (size_t i = 0; i < nacct && !daemon_stop; i++) {
			uint32_t delay = 0, wait;
			int rc;

			if (acct[i].next_ms > pop3c_now_ms())
				continue;
			rc = fetch_one(o, acct[i].name, &delay);
			if (rc == EXIT_OK) {
				acct[i].backoff = 0;
				wait = o->daemon;
			} else {
				acct[i].backoff = acct[i].backoff == 0 ?
				    o->daemon : acct[i].backoff * 2;
				if (acct[i].backoff > DAEMON_BACKOFF_MAX)
					acct[i].backoff = DAEMON_BACKOFF_MAX;
				wait = acct[i].backoff < o->daemon ?
				    o->daemon : acct[i].backoff;
			}
			if (delay > wait)
				wait = delay;
			acct[i].next_ms = pop3c_now_ms() + (uint64_t)wait * 1000;
		}
		wake = UINT64_MAX;
		for (size_t i = 0; i < nacct; i++)
			if (acct[i].next_ms < wake)
				wake = acct[i].next_ms;
		if (nacct == 0)
			wake = pop3c_now_ms() + (uint64_t)o->daemon * 1000;
		/* Sleep in short steps: signals end it early. */
		while (!daemon_stop && !daemon_hup && pop3c_now_ms() < wake)
			(void)nanosleep(&(struct timespec){ 0, 100000000L },
			    NULL);
	}
	return EXIT_OK;
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
