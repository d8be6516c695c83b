/*
 * postinod: the POP3 server. The same binary is every role; the master
 * re-executes it with -R ROLE for each (see DESIGN.md).
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../lib/log.h"
#include "config.h"
#include "roles.h"

static void
usage(void)
{
	fprintf(stderr, "usage: postinod [-f] [-t] [-c FILE]\n"
	    "  -c FILE  configuration file (default /etc/postino/postinod.conf)\n"
	    "  -f       stay in the foreground and log to stderr\n"
	    "  -t       check the configuration, print it and exit\n");
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

int
main(int argc, char **argv)
{
	const char *path = "/etc/postino/postinod.conf", *role = NULL;
	bool fg = false, test = false;
	unsigned int uid = 0, gid = 0, nlisten = 0;
	char err[ERR_LEN];
	struct config *cf;
	int ch;

	while ((ch = getopt(argc, argv, "c:ftR:u:g:n:")) != -1) {
		switch (ch) {
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
		config_dump(cf);
		free(cf);
		return 0;
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
	if (strcmp(role, "auth") == 0)
		ch = authd_main(cf);
	else if (strcmp(role, "login") == 0) {
		if (nlisten != cf->nlisten + cf->nlisten_tls)
			fatalx("the configuration changed since start-up; restart");
		ch = login_main(cf, nlisten);
	} else if (strcmp(role, "mail") == 0)
		ch = mail_main(cf, uid, gid);
	else if (strcmp(role, "lmtp") == 0)
		ch = lmtp_main(cf, nlisten);
	else if (strcmp(role, "deliver") == 0)
		ch = deliver_main(cf, uid, gid);
	else
		usage();
	free(cf);
	return ch;
}
