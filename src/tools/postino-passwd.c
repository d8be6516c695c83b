/*
 * postino-passwd: print a password hash for postinod's passwd-file.
 * The password comes from the terminal (asked twice, no echo) or, when
 * stdin is not a terminal, from its first line. Never from argv, which
 * every local user can read in /proc.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include "../auth/auth.h"
#include "../auth/auth_hash.h"
#include "../lib/str.h"
#include "../lib/version.h"

#define PROG	"postino-passwd"

enum read_result { READ_OK, READ_EOF, READ_LONG, READ_NUL, READ_CR, READ_ERR };

/* method: a crypt(3) prefix, or one of these for the other schemes. */
#define METHOD_PLAIN	"plain"
#define METHOD_SCRAM	"scram"

/* cost_min..cost_max: what -r may give (crypt_gensalt(3)'s bounds). */
static const struct {
	const char *name, *method, *label;
	uint32_t cost_min, cost_max;
} schemes[] = {
	/* Dovecot has no YESCRYPT name: {CRYPT} hands the hash to crypt(3). */
	{ "YESCRYPT", "$y$", "{CRYPT}", 1, 11 },
	{ "SHA512-CRYPT", "$6$", "{SHA512-CRYPT}", 1000, 999999999 },
	{ "SHA256-CRYPT", "$5$", "{SHA256-CRYPT}", 1000, 999999999 },
	{ "BLF-CRYPT", "$2b$", "{BLF-CRYPT}", 4, 31 },
	{ "SCRAM-SHA-256", METHOD_SCRAM, "{SCRAM-SHA-256}", AUTH_SCRAM_ITER_MIN,
	    AUTH_SCRAM_ITER_MAX },
	{ "PLAIN", METHOD_PLAIN, "{PLAIN}", 0, 0 },
};

static const char manual[] =
"NAME\n"
"     postino-passwd - make a password hash for postinod's passwd-file\n"
"\n"
"SYNOPSIS\n"
"     postino-passwd [-hV] [-r rounds] [-s scheme] [-u user]\n"
"\n"
"DESCRIPTION\n"
"     Reads a password and prints its hash as {SCHEME}hash, ready for the\n"
"     second field of a passwd-file line:\n"
"\n"
"          user:{SCHEME}hash:uid:gid:gecos:home:shell:extra\n"
"\n"
"     The format is Dovecot's, so the file can be shared with Dovecot.\n"
"\n"
"     When standard input is a terminal, the password is asked twice\n"
"     with echo off, and the two must match. Otherwise the first line of\n"
"     standard input is the password (a final LF or CRLF is removed; the\n"
"     rest of the input is not read). The password is never taken from\n"
"     the command line, where other users could see it.\n"
"\n"
"     A password is 1 to 1024 octets and contains no NUL, CR or LF.\n"
"\n"
"OPTIONS\n"
"     -h, --help Print this text and exit.\n"
"     -V, --version\n"
"                Print the version and exit.\n"
"     -r rounds  The cost. SCRAM-SHA-256: PBKDF2 iterations, 4096 (the\n"
"                default, RFC 7677's minimum) to 10000000. The crypt(3)\n"
"                schemes: crypt_gensalt(3)'s count (SHA512-CRYPT and\n"
"                SHA256-CRYPT rounds, 1000 to 999999999; BLF-CRYPT\n"
"                log2 rounds, 4 to 31; YESCRYPT 1 to 11). PLAIN: none.\n"
"     -s scheme  The hash scheme, case-insensitive:\n"
"                YESCRYPT      the default; printed as {CRYPT}$y$...\n"
"                              because Dovecot knows yescrypt only\n"
"                              through {CRYPT} (crypt(3)).\n"
"                SHA512-CRYPT  {SHA512-CRYPT}$6$...\n"
"                SHA256-CRYPT  {SHA256-CRYPT}$5$...\n"
"                BLF-CRYPT     {BLF-CRYPT}$2b$... (bcrypt; only the\n"
"                              first 72 octets of a password count)\n"
"                SCRAM-SHA-256 {SCRAM-SHA-256}rounds,salt,storedkey,\n"
"                              serverkey (RFC 7677), Dovecot's format.\n"
"                              Lets SASL SCRAM-SHA-256 work without a\n"
"                              plaintext-equivalent secret; USER/PASS,\n"
"                              PLAIN and LOGIN work too. The password\n"
"                              must be printable ASCII (postinod does\n"
"                              not implement SASLprep).\n"
"                PLAIN         {PLAIN}password, stored in clear. Only\n"
"                              PLAIN users can log in with APOP and\n"
"                              CRAM-MD5; the password cannot contain\n"
"                              ':'.\n"
"     -u user    Print a whole passwd-file line, user:{SCHEME}hash::::::\n"
"                (fill in uid, gid and home as needed).\n"
"\n"
"     Salts come from the operating system's random generator through\n"
"     crypt_gensalt(3) (SCRAM-SHA-256: 16 octets from OpenSSL's\n"
"     RAND_bytes); without -r, the cost is libcrypt's default.\n"
"\n"
"EXIT STATUS\n"
"     0 when a hash was printed, 1 on any error (no password, passwords\n"
"     differ, bad password or user name, hashing failed), 2 on a usage\n"
"     error.\n"
"\n"
"EXAMPLES\n"
"     postino-passwd -u alice >> /etc/postino/passwd\n"
"     printf '%s\\n' \"$PW\" | postino-passwd -s SHA512-CRYPT\n";

/* Restored by the signal handler when a prompt is interrupted. */
static struct termios saved_tty;
static volatile sig_atomic_t tty_quiet;

static void
usage(void)
{
	fprintf(stderr, "usage: " PROG " [-hV] [-r rounds] [-s scheme] "
	    "[-u user]\n"
	    "       " PROG " -h for the manual\n");
	exit(2);
}

static void
restore_tty(int sig)
{
	if (tty_quiet)
		(void)tcsetattr(STDIN_FILENO, TCSAFLUSH, &saved_tty);
	signal(sig, SIG_DFL);
	raise(sig);
}

/*
 * Read one line into buf (size > AUTH_PASS_MAX + 1), without its LF or
 * CRLF. A CR anywhere else, a NUL or more than AUTH_PASS_MAX octets are
 * refused; the rest of the line is not read.
 */
static enum read_result
read_pass(FILE *fp, char *buf, size_t size)
{
	size_t len = 0;
	int c;

	while ((c = getc(fp)) != EOF && c != '\n') {
		if (c == '\0')
			return READ_NUL;
		/* One octet more than allowed: room for a CR before the LF. */
		if (len > AUTH_PASS_MAX || len + 1 >= size)
			return READ_LONG;
		buf[len++] = (char)c;
	}
	if (ferror(fp))
		return READ_ERR;
	if (c == EOF && len == 0)
		return READ_EOF;
	if (len > 0 && buf[len - 1] == '\r')
		len--;
	buf[len] = '\0';
	if (memchr(buf, '\r', len) != NULL)
		return READ_CR;
	if (len > AUTH_PASS_MAX)
		return READ_LONG;
	return READ_OK;
}

static enum read_result
prompt(const char *text, char *buf, size_t size)
{
	struct termios quiet;
	enum read_result r;

	fputs(text, stderr);
	fflush(stderr);
	if (tcgetattr(STDIN_FILENO, &saved_tty) < 0)
		return READ_ERR;
	quiet = saved_tty;
	quiet.c_lflag &= ~(tcflag_t)ECHO;
	quiet.c_lflag |= ECHONL;
	tty_quiet = 1;
	if (tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet) < 0) {
		tty_quiet = 0;
		return READ_ERR;
	}
	r = read_pass(stdin, buf, size);
	(void)tcsetattr(STDIN_FILENO, TCSAFLUSH, &saved_tty);
	tty_quiet = 0;
	return r;
}

static int
report(enum read_result r)
{
	switch (r) {
	case READ_OK:
		return 0;
	case READ_EOF:
		fprintf(stderr, PROG ": no password given\n");
		break;
	case READ_LONG:
		fprintf(stderr, PROG ": password longer than %d octets\n",
		    AUTH_PASS_MAX);
		break;
	case READ_NUL:
		fprintf(stderr, PROG ": password contains a NUL byte\n");
		break;
	case READ_CR:
		fprintf(stderr, PROG ": password contains a CR\n");
		break;
	case READ_ERR:
		fprintf(stderr, PROG ": reading the password: %s\n",
		    strerror(errno));
		break;
	}
	return -1;
}

static int
get_password(char *pass, char *again, size_t size)
{
	struct sigaction sa;

	if (!isatty(STDIN_FILENO))
		return report(read_pass(stdin, pass, size));
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = restore_tty;
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGINT, &sa, NULL) < 0 ||
	    sigaction(SIGTERM, &sa, NULL) < 0 ||
	    sigaction(SIGHUP, &sa, NULL) < 0 ||
	    sigaction(SIGQUIT, &sa, NULL) < 0) {
		fprintf(stderr, PROG ": sigaction: %s\n", strerror(errno));
		return -1;
	}
	if (report(prompt("Password: ", pass, size)) < 0 ||
	    report(prompt("Retype password: ", again, size)) < 0)
		return -1;
	if (strcmp(pass, again) != 0) {
		fprintf(stderr, PROG ": passwords differ\n");
		return -1;
	}
	return 0;
}

/*
 * The scheme named by -s and its cost from -r (NULL: the default), into
 * *si_r, *cost_r (crypt(3)) or *iter_r (SCRAM). 0, or the exit status 2.
 */
static int
choose_scheme(const char *scheme, const char *rounds, size_t *si_r,
    uint32_t *cost_r, uint32_t *iter_r)
{
	size_t si, n = sizeof(schemes) / sizeof(schemes[0]);

	for (si = 0; si < n; si++)
		if (str_ieq(schemes[si].name, scheme))
			break;
	if (si == n) {
		fprintf(stderr, PROG ": unknown scheme \"%s\"; choose "
		    "YESCRYPT, SHA512-CRYPT, SHA256-CRYPT, BLF-CRYPT, "
		    "SCRAM-SHA-256 or PLAIN\n", scheme);
		return 2;
	}
	if (rounds != NULL && strcmp(schemes[si].method, METHOD_PLAIN) == 0) {
		fprintf(stderr, PROG ": -r: PLAIN has no cost\n");
		return 2;
	}
	if (rounds != NULL && (str_parse_u32(rounds, cost_r) < 0 ||
	    *cost_r < schemes[si].cost_min || *cost_r > schemes[si].cost_max)) {
		fprintf(stderr, PROG ": -r: rounds of %s must be a number "
		    "from %u to %u\n", schemes[si].name,
		    (unsigned)schemes[si].cost_min,
		    (unsigned)schemes[si].cost_max);
		return 2;
	}
	if (rounds != NULL && strcmp(schemes[si].method, METHOD_SCRAM) == 0) {
		*iter_r = *cost_r;
		*cost_r = 0;
	}
	*si_r = si;
	return 0;
}

/*
 * What goes after the scheme's label for pass: pass itself (PLAIN) or its
 * hash, made into hash (size octets) with keys as scratch. NULL on error.
 */
static const char *
make_secret(size_t si, const char *pass, uint32_t cost, uint32_t iter,
    char *hash, size_t size, struct auth_scram *keys)
{
	char err[ERR_LEN];

	err[0] = '\0';
	if (strcmp(schemes[si].method, METHOD_PLAIN) == 0) {
		if (strchr(pass, ':') != NULL) {
			fprintf(stderr, PROG ": a PLAIN password cannot "
			    "contain ':' (the passwd-file field separator)\n");
			return NULL;
		}
		return pass;
	}
	if (strcmp(schemes[si].method, METHOD_SCRAM) == 0) {
		/* What the server's SCRAM could never match is refused. */
		if (!auth_scram_pass_ok(pass, strlen(pass))) {
			fprintf(stderr, PROG ": a SCRAM-SHA-256 password must "
			    "be printable ASCII (no SASLprep)\n");
			return NULL;
		}
		if (auth_scram_make(pass, iter, keys, err) < 0 ||
		    auth_scram_format(keys, hash, size) < 0) {
			fprintf(stderr, PROG ": %s\n", err[0] != '\0' ? err :
			    "SCRAM secret longer than its buffer");
			return NULL;
		}
		return hash;
	}
	if (auth_hash_make(schemes[si].method, cost, pass, hash, size,
	    err) < 0) {
		fprintf(stderr, PROG ": %s\n", err);
		return NULL;
	}
	return hash;
}

int
main(int argc, char **argv)
{
	char pass[AUTH_PASS_MAX + 2], again[AUTH_PASS_MAX + 2];
	char hash[AUTH_HASH_MAX];
	const char *scheme = "YESCRYPT", *user = NULL, *secret, *rounds = NULL;
	size_t si;
	uint32_t iter = AUTH_SCRAM_ITER_DEFAULT, cost = 0;
	struct auth_scram keys;
	int ch, status = 1;

	static const struct option longopts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 }
	};

	while ((ch = getopt_long(argc, argv, "hVr:s:u:", longopts, NULL)) !=
	    -1) {
		switch (ch) {
		case 'h':
			fputs(manual, stdout);
			return fflush(stdout) == 0 ? 0 : 1;
		case 'V':
			printf(PROG " %s\n", POSTINO_VERSION);
			return fflush(stdout) == 0 ? 0 : 1;
		case 'r':
			rounds = optarg;
			break;
		case 's':
			scheme = optarg;
			break;
		case 'u':
			user = optarg;
			break;
		default:
			usage();
		}
	}
	if (optind != argc)
		usage();
	if ((ch = choose_scheme(scheme, rounds, &si, &cost, &iter)) != 0)
		return ch;
	if (user != NULL && !auth_name_valid(user)) {
		fprintf(stderr, PROG ": bad user name: 1..%d octets, no space, "
		    "control character, ':' or '/', no leading '.'\n",
		    AUTH_USER_MAX);
		return 1;
	}
	memset(again, 0, sizeof(again));
	memset(hash, 0, sizeof(hash));
	memset(&keys, 0, sizeof(keys));
	if (get_password(pass, again, sizeof(pass)) < 0)
		goto out;
	if (pass[0] == '\0') {
		fprintf(stderr, PROG ": empty password\n");
		goto out;
	}
	secret = make_secret(si, pass, cost, iter, hash, sizeof(hash), &keys);
	if (secret == NULL)
		goto out;
	if (user != NULL)
		printf("%s:%s%s::::::\n", user, schemes[si].label, secret);
	else
		printf("%s%s\n", schemes[si].label, secret);
	if (fflush(stdout) != 0 || ferror(stdout))
		fprintf(stderr, PROG ": writing the hash: %s\n",
		    strerror(errno));
	else
		status = 0;
out:
	explicit_bzero(pass, sizeof(pass));
	explicit_bzero(again, sizeof(again));
	explicit_bzero(hash, sizeof(hash));
	explicit_bzero(&keys, sizeof(keys));
	return status;
}
