/*
 * postinod: the POP3 server. The same binary is every role; the master
 * re-executes it with -R ROLE for each (see DESIGN.md).
 */
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../lib/log.h"
#include "../lib/version.h"
#include "config.h"
#include "reach.h"
#include "roles.h"

static const char usage_text[] =
    "usage: postinod [-fthV] [-c FILE]\n"
    "  -c, --config FILE  configuration file (default "
    "/etc/postino/postinod.conf)\n"
    "  -f, --foreground   stay in the foreground and log to stderr\n"
    "  -t, --test         check the configuration (and, as root, that every\n"
    "                     account's mail uid can reach its mailbox), print it\n"
    "                     and exit: 0 when it is usable, 1 when not\n"
    "  -h, --help         print this help and exit\n"
    "  -V, --version      print the version and exit\n"
    "  --config-keys      print every configuration key, one a line\n"
    "See postinod(8) and postinod.conf(5).\n";

static void __attribute__((noreturn))
usage(void)
{
	fputs(usage_text, stderr);
	exit(2);
}

static void
daemonize(void)
{
	int fd;

	switch (fork()) {
	case -1:
		fatal("fork");
	case 0:
		break;
	default:
		_exit(0);
	}
	if (setsid() < 0)
		fatal("setsid");
	if (chdir("/") < 0)
		fatal("chdir /");
	fd = open("/dev/null", O_RDWR);
	if (fd < 0)
		fatal("/dev/null");
	dup2(fd, STDIN_FILENO);
	dup2(fd, STDOUT_FILENO);
	dup2(fd, STDERR_FILENO);
	if (fd > STDERR_FILENO)
		close(fd);
}

/* Thousands of connections need thousands of descriptors: take what is allowed. */
static void
raise_fd_limit(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
			log_warn("raising the open-file limit");
	}
}

static unsigned int
id_arg(const char *s)
{
	uint32_t v;

	if (str_parse_u32(s, &v) < 0)
		usage();
	return v;
}

static const struct option longopts[] = {
	{ "config", required_argument, NULL, 'c' },
	{ "foreground", no_argument, NULL, 'f' },
	{ "test", no_argument, NULL, 't' },
	{ "help", no_argument, NULL, 'h' },
	{ "version", no_argument, NULL, 'V' },
	{ "config-keys", no_argument, NULL, 'K' },
	{ NULL, 0, NULL, 0 }
};

/* `postinod -t`: the configuration, as the server reads it, and reach. */
static int
test_config(struct config *cf, const char *path)
{
	char err[ERR_LEN];
	int r;

	if (config_check(cf, geteuid() == 0, err) < 0) {
		fprintf(stderr, "postinod: %s: %s\n", path, err);
		return 1;
	}
	config_dump(cf);
	fflush(stdout);
	r = reach_check(cf, stderr);
	return r == 0 ? 0 : 1;
}

/* postinod started again by the master as one of its roles (-R). */
static int
run_role(const struct config *cf, const char *role, unsigned int uid,
    unsigned int gid, unsigned int nlisten)
{
	if (strcmp(role, "auth") == 0)
		return authd_main(cf);
	if (strcmp(role, "login") == 0) {
		if (nlisten != cf->nlisten + cf->nlisten_tls)
			fatalx("the configuration changed since start-up; restart");
		return login_main(cf, nlisten);
	}
	if (strcmp(role, "mail") == 0)
		return mail_main(cf, uid, gid);
	if (strcmp(role, "lmtp") == 0)
		return lmtp_main(cf, nlisten);
	if (strcmp(role, "deliver") == 0)
		return deliver_main(cf, uid, gid);
	usage();
}

int
main(int argc, char **argv)
{
	const char *path = "/etc/postino/postinod.conf", *role = NULL;
	bool fg = false, test = false;
	unsigned int uid = 0, gid = 0, nlisten = 0;
	char err[ERR_LEN];
	struct config *cf;
	int ch;

	while ((ch = getopt_long(argc, argv, "c:fthVR:u:g:n:", longopts,
	    NULL)) != -1) {
		switch (ch) {
		case 'h':
			fputs(usage_text, stdout);
			return fflush(stdout) == 0 ? 0 : 1;
		case 'V':
			printf("postinod %s\n", POSTINO_VERSION);
			return fflush(stdout) == 0 ? 0 : 1;
		case 'K':
			config_print_keys(stdout);
			return fflush(stdout) == 0 ? 0 : 1;
		case 'c':
			path = optarg;
			break;
		case 'f':
			fg = true;
			break;
		case 't':
			test = true;
			break;
		case 'R':
			role = optarg;
			break;
		case 'u':
			uid = id_arg(optarg);
			break;
		case 'g':
			gid = id_arg(optarg);
			break;
		case 'n':
			nlisten = id_arg(optarg);
			break;
		default:
			usage();
		}
	}
	if (optind != argc)
		usage();
	umask(077);
	cf = malloc(sizeof(*cf));
	if (cf == NULL) {
		perror("postinod");
		return 1;
	}
	if (config_load(cf, path, err) < 0) {
		fprintf(stderr, "postinod: %s\n", err);
		free(cf);
		return 1;
	}
	if (test) {
		ch = test_config(cf, path);
		free(cf);
		return ch;
	}
	log_init("postinod", fg, cf->debug);
	if (role == NULL) {
		raise_fd_limit();
		int r;

		if (!fg)
			daemonize();
		r = master_main(cf, path, fg);
		free(cf);
		return r;
	}
	ch = run_role(cf, role, uid, gid, nlisten);
	free(cf);
	return ch;
}
