#include "reach.h"

#include <errno.h>
#include <limits.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../lib/priv.h"
#include "../lib/str.h"

struct reach_ids {
	uid_t	uid;
	gid_t	gid;
	gid_t	extra;		/* mail_privileged_group, or -1 */
};

/*
 * The mailbox root of one account: the path of "maildir:PATH" up to the
 * first component holding a %-variable (the part every user shares, or
 * the whole path), with a leading ~ replaced by home. 0, or -1 when it
 * cannot be known (no home for ~, too long).
 */
static int
mailbox_root(const char *spec, const char *home, char *out, size_t size)
{
	const char *path = strchr(spec, ':'), *pct;
	size_t n;

	if (path == NULL)
		return -1;
	path++;
	if (path[0] == '~') {
		if (home[0] != '/' || str_fmt(out, size, "%s%s", home,
		    path + 1) < 0)
			return -1;
	} else if (str_copy(out, size, path) < 0)
		return -1;
	pct = strchr(out, '%');
	if (pct != NULL) {
		n = (size_t)(pct - out);
		while (n > 0 && out[n - 1] != '/')
			n--;
		out[n] = '\0';
	}
	n = strlen(out);
	while (n > 1 && out[n - 1] == '/')
		out[--n] = '\0';
	return out[0] == '/' ? 0 : -1;
}

/*
 * In a child with the account's ids: the first directory on the way to
 * root (root included, when it exists) that cannot be searched, in bad.
 * 1 with bad filled, 0 when all can, -1 on failure (err filled).
 */
static int
walk_as(const struct reach_ids *id, const char *root, char *bad,
    size_t badsize, char *err)
{
	int pfd[2], status;
	char buf[PATH_MAX];
	ssize_t n;
	pid_t pid;

	if (pipe(pfd) < 0) {
		str_fmt(err, ERR_LEN, "pipe: %s", strerror(errno));
		return -1;
	}
	pid = fork();
	if (pid < 0) {
		str_fmt(err, ERR_LEN, "fork: %s", strerror(errno));
		close(pfd[0]);
		close(pfd[1]);
		return -1;
	}
	if (pid == 0) {
		char e[ERR_LEN], prefix[PATH_MAX];
		size_t len = strlen(root);

		close(pfd[0]);
		if (priv_drop(id->uid, id->gid, id->extra, NULL, e) < 0)
			_exit(2);
		for (size_t i = 1; i <= len; i++) {
			if (i < len && root[i] != '/')
				continue;
			memcpy(prefix, root, i);
			prefix[i] = '\0';
			if (i == len && access(prefix, F_OK) < 0 &&
			    errno == ENOENT)
				break;	/* made at the first delivery */
			if (access(prefix, X_OK) < 0) {
				(void)!write(pfd[1], prefix, i);
				_exit(1);
			}
		}
		_exit(0);
	}
	close(pfd[1]);
	n = read(pfd[0], buf, sizeof(buf) - 1);
	close(pfd[0]);
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR) {
			str_fmt(err, ERR_LEN, "waitpid: %s", strerror(errno));
			return -1;
		}
	if (!WIFEXITED(status) || WEXITSTATUS(status) > 1) {
		str_fmt(err, ERR_LEN, "cannot become uid %u gid %u",
		    (unsigned)id->uid, (unsigned)id->gid);
		return -1;
	}
	if (WEXITSTATUS(status) == 0)
		return 0;
	buf[n > 0 ? n : 0] = '\0';
	str_copy(bad, badsize, buf);
	return 1;
}

/* user:secret:uid:gid:gecos:home:... -> fields; false for a line to skip. */
static bool
split_line(char *line, char **field, size_t nfield)
{
	size_t i = 0;
	char *p = line;

	line[strcspn(line, "\r\n")] = '\0';
	if (line[0] == '\0' || line[0] == '#')
		return false;
	for (i = 0; i < nfield; i++) {
		field[i] = p;
		p = p != NULL ? strchr(p, ':') : NULL;
		if (p != NULL)
			*p++ = '\0';
	}
	for (i = 0; i < nfield; i++)
		if (field[i] == NULL)
			field[i] = (char *)"";
	return field[0][0] != '\0';
}

static int
account_ids(const struct config *cf, const char *uidf, const char *gidf,
    struct reach_ids *id)
{
	uid_t mu = 0;
	gid_t mg = 0;
	uint32_t v;
	bool mail_user = cf->mail_user[0] != '\0' &&
	    priv_user(cf->mail_user, &mu, &mg) == 0;

	if (uidf[0] != '\0') {
		if (str_parse_u32(uidf, &v) < 0 || v == 0)
			return -1;
		id->uid = v;
		id->gid = mail_user ? mg : v;
		if (gidf[0] != '\0') {
			if (str_parse_u32(gidf, &v) < 0 || v == 0)
				return -1;
			id->gid = v;
		}
	} else if (mail_user) {
		id->uid = mu;
		id->gid = mg;
	} else
		return -1;	/* the auth role refuses such an account */
	id->extra = (gid_t)-1;
	if (cf->mail_privileged_group[0] != '\0' &&
	    priv_group(cf->mail_privileged_group, &id->extra) < 0)
		id->extra = (gid_t)-1;
	return 0;
}

int
reach_check(const struct config *cf, FILE *out)
{
	char line[PATH_MAX + 1024], root[PATH_MAX], bad[PATH_MAX];
	char err[ERR_LEN], *f[6];
	unsigned int lines = 0, problems = 0;
	struct reach_ids id;
	struct stat st;
	FILE *fp;
	int r;

	/* Users in a database are not walked: there may be millions. */
	if (!priv_is_root() || strcmp(cf->passdb, "passwd-file") != 0)
		return 0;
	fp = fopen(cf->passwd_file, "re");
	if (fp == NULL) {
		fprintf(out, "postinod: passwd_file %s: %s\n", cf->passwd_file,
		    strerror(errno));
		return -1;
	}
	while (fgets(line, sizeof(line), fp) != NULL &&
	    lines++ < REACH_USERS_MAX && problems < REACH_REPORT_MAX) {
		if (strchr(line, '\n') == NULL && !feof(fp)) {
			int c;

			while ((c = getc(fp)) != EOF && c != '\n')
				;
			continue;	/* the auth role reports it */
		}
		if (!split_line(line, f, 6) || account_ids(cf, f[2], f[3],
		    &id) < 0 || mailbox_root(cf->mailbox, f[5], root,
		    sizeof(root)) < 0)
			continue;
		r = walk_as(&id, root, bad, sizeof(bad), err);
		if (r < 0) {
			fprintf(out, "postinod: checking %s: %s\n", f[0], err);
			fclose(fp);
			return -1;
		}
		if (r == 0)
			continue;
		problems++;
		fprintf(out, "postinod: user %s: mail uid %u cannot reach its "
		    "mailbox %s: no search permission on %s", f[0],
		    (unsigned)id.uid, root, bad);
		if (stat(bad, &st) == 0)
			fprintf(out, " (mode %04o, owner uid %u)",
			    (unsigned)(st.st_mode & 07777),
			    (unsigned)st.st_uid);
		fputc('\n', out);
	}
	fclose(fp);
	return (int)problems;
}
