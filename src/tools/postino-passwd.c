/*
 * postino-passwd: print a password hash for postinod's passwd-file.
 * The password comes from the terminal (asked twice, no echo) or, when
 * stdin is not a terminal, from its first line. Never from argv.
 */
#include <crypt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include "../auth/auth.h"
#include "../lib/str.h"

static const struct {
	const char *name, *prefix, *label;
} schemes[] = {
	/* Dovecot has no YESCRYPT name: {CRYPT} hands it to crypt(3). */
	{ "YESCRYPT", "$y$", "{CRYPT}" },
	{ "SHA512-CRYPT", "$6$", "{SHA512-CRYPT}" },
	{ "BLF-CRYPT", "$2b$", "{BLF-CRYPT}" },
	{ "PLAIN", NULL, "{PLAIN}" },
};

static void
usage(void)
{
	fprintf(stderr,
	    "usage: postino-passwd [-s SCHEME] [-u USER]\n"
	    "  Reads a password (from the terminal twice, or the first line of\n"
	    "  stdin) and prints {SCHEME}hash for a passwd-file; with -u, a\n"
	    "  whole passwd-file line \"USER:{SCHEME}hash::::::\".\n"
	    "  SCHEME: YESCRYPT (default, printed as {CRYPT}), SHA512-CRYPT,\n"
	    "  BLF-CRYPT, PLAIN (plaintext; only for APOP users).\n");
	exit(2);
}

/* Read one line into buf; -1 on EOF or a line too long. */
static int
read_line(FILE *fp, char *buf, size_t size)
{
	size_t len;

	if (fgets(buf, (int)size, fp) == NULL)
		return -1;
	len = strlen(buf);
	if (len > 0 && buf[len - 1] == '\n')
		buf[--len] = '\0';
	else if (!feof(fp))
		return -1;
	if (len > 0 && buf[len - 1] == '\r')
		buf[--len] = '\0';
	return 0;
}

static int
prompt(const char *text, char *buf, size_t size)
{
	struct termios old, quiet;
	int r;

	fputs(text, stderr);
	fflush(stderr);
	if (tcgetattr(STDIN_FILENO, &old) < 0)
		return -1;
	quiet = old;
	quiet.c_lflag &= ~(tcflag_t)ECHO;
	tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet);
	r = read_line(stdin, buf, size);
	tcsetattr(STDIN_FILENO, TCSAFLUSH, &old);
	fputc('\n', stderr);
	return r;
}

int
main(int argc, char **argv)
{
	char pass[AUTH_PASS_MAX + 2], again[AUTH_PASS_MAX + 2];
	char setting[CRYPT_GENSALT_OUTPUT_SIZE];
	const char *scheme = "YESCRYPT", *user = NULL, *hash;
	struct crypt_data *cd;
	size_t si, n = sizeof(schemes) / sizeof(schemes[0]);
	int ch, status = 1;

	while ((ch = getopt(argc, argv, "s:u:h")) != -1) {
		switch (ch) {
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
	for (si = 0; si < n; si++)
		if (str_ieq(schemes[si].name, scheme))
			break;
	if (si == n) {
		fprintf(stderr, "postino-passwd: unknown scheme '%s'\n", scheme);
		usage();
	}
	if (user != NULL && (user[0] == '\0' || strlen(user) > AUTH_USER_MAX ||
	    strpbrk(user, ":/\n\r\t ") != NULL || user[0] == '.')) {
		fprintf(stderr, "postino-passwd: bad user name\n");
		return 1;
	}
	if (isatty(STDIN_FILENO)) {
		if (prompt("Password: ", pass, sizeof(pass)) < 0 ||
		    prompt("Retype password: ", again, sizeof(again)) < 0) {
			fprintf(stderr, "postino-passwd: no password read\n");
			goto out;
		}
		if (strcmp(pass, again) != 0) {
			fprintf(stderr, "postino-passwd: passwords differ\n");
			goto out;
		}
	} else if (read_line(stdin, pass, sizeof(pass)) < 0) {
		fprintf(stderr, "postino-passwd: no password line on stdin "
		    "(or longer than %d octets)\n", AUTH_PASS_MAX);
		goto out;
	}
	if (pass[0] == '\0' || strlen(pass) > AUTH_PASS_MAX) {
		fprintf(stderr, "postino-passwd: the password must be 1..%d "
		    "octets\n", AUTH_PASS_MAX);
		goto out;
	}
	if (schemes[si].prefix == NULL) {
		if (strchr(pass, ':') != NULL) {
			fprintf(stderr, "postino-passwd: a PLAIN password cannot "
			    "contain ':'\n");
			goto out;
		}
		hash = pass;
	} else {
		if (crypt_gensalt_rn(schemes[si].prefix, 0, NULL, 0, setting,
		    sizeof(setting)) == NULL) {
			perror("postino-passwd: crypt_gensalt");
			goto out;
		}
		cd = calloc(1, sizeof(*cd));
		if (cd == NULL) {
			perror("postino-passwd");
			goto out;
		}
		hash = crypt_rn(pass, setting, cd, sizeof(*cd));
		if (hash == NULL || hash[0] == '*') {
			perror("postino-passwd: crypt");
			free(cd);
			goto out;
		}
		str_copy(again, sizeof(again), hash);
		explicit_bzero(cd, sizeof(*cd));
		free(cd);
		hash = again;
	}
	printf("%s%s%s%s%s\n", user ? user : "", user ? ":" : "",
	    schemes[si].label, hash, user ? "::::::" : "");
	status = 0;
out:
	explicit_bzero(pass, sizeof(pass));
	explicit_bzero(again, sizeof(again));
	if (fflush(stdout) != 0)
		status = 1;
	return status;
}
