/*
 * postino-migrate: copy one user's mailbox from one store to another
 * (Maildir, mbox and pgsql, either way) keeping every UIDL, so
 * a client that leaves mail on the server downloads nothing twice. The
 * source is opened as a POP3 session opens it (its session lock held, the
 * UIDLs it serves, Dovecot's dovecot-uidlist included); each message goes
 * in through the destination's delivery path with its UIDL. Nothing is
 * removed from the source; a message whose UIDL is already in the
 * destination is skipped, so an interrupted run is simply run again.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sysexits.h>
#include <unistd.h>

#include "../lib/fdio.h"
#include "../lib/log.h"
#include "../store/store_path.h"
#include "../store/store_pgsql.h"
#include "delivery.h"
#include "delivery_tool.h"

static const char manual[] =
"usage: postino-migrate [-c FILE] -d USER FROM TO\n"
"Copy USER's mailbox FROM one store TO another, keeping every UIDL.\n"
"FROM and TO are mailbox settings as in postinod.conf: maildir:PATH,\n"
"mbox:PATH or pgsql:[NAME] (pgsql_conninfo and pgsql_password_file from\n"
"the configuration). Into mbox each message gets its UIDL as its first\n"
"header, \"X-UIDL: UIDL\", which adds that line to its POP3 size.\n"
"  -c FILE       configuration (default /etc/postino/postinod.conf)\n"
"  -d USER       the user whose mailbox is copied\n"
"  -h, --help    print this text;  -V, --version  print the version\n"
"Nothing is removed from FROM; messages already in TO (same UIDL) are\n"
"skipped, so a run may be repeated. Stop postinod's POP3 service for the\n"
"user (or all) while it runs: FROM is locked as a POP3 session would be.\n"
"Exit status (sysexits.h): 0 copied, 75 try again later, 67 no such user,\n"
"73 a message could not be written, 64 usage, 78 configuration.\n";

/* Message msgnum of the source, as stored, into a fresh memfd. */
static int
spool_message(const struct store_ops *ops, struct store *st,
    unsigned int msgnum, char *err)
{
	static char buf[65536];
	struct store_reader *r;
	enum store_result res;
	ssize_t n;
	int fd = memfd_create("postino-migrate", MFD_CLOEXEC);

	if (fd < 0) {
		(void)str_fmt(err, ERR_LEN, "memfd: %s", strerror(errno));
		return -1;
	}
	if ((res = ops->read_open(st, msgnum, &r, err)) != STORE_OK) {
		close(fd);
		return -1;
	}
	while ((n = ops->read(r, buf, sizeof(buf))) > 0)
		if (fd_write_all(fd, buf, (size_t)n) < 0)
			break;
	if (n != 0)
		(void)str_fmt(err, ERR_LEN, "message %u: %s", msgnum,
		    strerror(errno));
	ops->read_close(&r);
	if (n != 0) {
		close(fd);
		return -1;
	}
	return fd;
}

static int
uidl_cmp(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/*
 * The UIDLs of an open mailbox, sorted for bsearch; NULL with err when
 * out of memory (none: a pointer still, to be freed).
 */
static const char **
uidls_sorted(const struct store_index *idx, char *err)
{
	const char **v = calloc(idx->count + 1, sizeof(*v));

	if (v == NULL) {
		(void)str_copy(err, ERR_LEN, "out of memory");
		return NULL;
	}
	for (unsigned int i = 0; i < idx->count; i++)
		v[i] = idx->msgs[i].uidl;
	qsort(v, idx->count, sizeof(*v), uidl_cmp);
	return v;
}

/* The UIDLs already in the destination, when its append does not skip. */
struct have {
	const char	**uidls;
	size_t		  count;
};

static bool
have_uidl(const struct have *h, const char *uidl)
{
	return h->uidls != NULL && bsearch(&uidl, h->uidls, h->count,
	    sizeof(*h->uidls), uidl_cmp) != NULL;
}

/*
 * Every message of the open source into to: the number copied (or already
 * there) in *done_r. The delivery keeps the bytes as they are stored: no
 * headers added (but an mbox's X-UIDL, store.h), no line ends changed.
 */
static enum store_result
copy_all(const struct store_ops *from, struct store *st,
    const struct store_index *idx, const struct store_ops *to,
    const struct store_params *top, const struct have *have,
    unsigned int *done_r, char *err)
{
	struct store_delivery d = { 0 };
	enum store_result r;
	int fd;

	*done_r = 0;
	for (unsigned int i = 0; i < idx->count; i++) {
		if (have_uidl(have, idx->msgs[i].uidl)) {
			(*done_r)++;
			continue;
		}
		if ((fd = spool_message(from, st, i + 1, err)) < 0)
			return STORE_TEMPFAIL;
		d.uidl = idx->msgs[i].uidl;
		r = to->append(top, fd, &d, err);
		close(fd);
		if (r != STORE_OK)
			return r;
		(*done_r)++;
	}
	return STORE_OK;
}

static int
exit_code(enum store_result r)
{
	return r == STORE_PERMFAIL || r == STORE_OVERQUOTA ? EX_CANTCREAT :
	    EX_TEMPFAIL;
}

/*
 * An mbox's append cannot tell whether a UIDL is in it already (store.h):
 * hold it as a POP3 session does, for the whole run, and skip the UIDLs
 * of its index. Another migration into it waits; deliveries go on.
 */
static void
open_have(const struct store_params *tp, struct store **tst_r,
    struct store_index *tidx, struct have *have)
{
	char err[ERR_LEN];
	enum store_result r = store_mbox_ops.open(tst_r, tp, tidx, err);

	if (r != STORE_OK)
		delivery_die(r == STORE_PERMFAIL ? EX_DATAERR : EX_TEMPFAIL,
		    "%s: %s", tp->path, err);
	if ((have->uidls = uidls_sorted(tidx, err)) == NULL)
		delivery_die(EX_TEMPFAIL, "%s", err);
	have->count = tidx->count;
}

static int
migrate(const struct config *cf, const struct auth_user *u, const char *from,
    const char *to)
{
	char fpath[PATH_MAX], tpath[PATH_MAX], err[ERR_LEN];
	const struct store_ops *fops, *tops;
	struct store_params fp = { 0 }, tp = { 0 };
	struct store_index idx, tidx;
	struct store *st = NULL, *tst = NULL;
	struct have have = { 0 };
	enum store_result r;
	unsigned int done = 0;

	if (store_path_resolve(from, u->name, u->home, fpath, sizeof(fpath),
	    &fops, err) < 0 || store_path_resolve(to, u->name, u->home, tpath,
	    sizeof(tpath), &tops, err) < 0)
		delivery_die(EX_USAGE, "%s", err);
	if (fops == tops && strcmp(fpath, tpath) == 0)
		delivery_die(EX_USAGE, "FROM and TO are the same mailbox");
	fp.path = fpath;
	fp.mboxrd = cf->mboxrd;
	fp.dotlock_stale = cf->mbox_dotlock_stale;
	fp.lock_wait = cf->mbox_lock_wait;
	fp.uidl_format = cf->pop3_uidl_format;
	tp = fp;
	tp.path = tpath;
	r = fops->open(&st, &fp, &idx, err);
	if (r != STORE_OK)
		delivery_die(r == STORE_PERMFAIL ? EX_DATAERR : EX_TEMPFAIL,
		    "%s: %s", fpath, err);
	if (tops == &store_mbox_ops)
		open_have(&tp, &tst, &tidx, &have);
	r = copy_all(fops, st, &idx, tops, &tp, &have, &done, err);
	fops->close(&st, &idx);
	if (tst != NULL)
		tops->close(&tst, &tidx);
	free(have.uidls);
	if (r != STORE_OK)
		delivery_die(exit_code(r),
		    "%s: %u of the messages copied, then: %s",
		    u->name, done, err);
	printf("%s: %u messages copied from %s to %s\n", u->name, done, from,
	    to);
	return fflush(stdout) == 0 ? EX_OK : EX_IOERR;
}

/* Either side may be pgsql, whatever the configured mailbox is. */
static int
store_setup(const struct config *cf, char *err)
{
	struct store_pgsql_conf pc = { .conninfo = cf->pgsql_conninfo,
	    .password_file = cf->pgsql_password_file, .pool = 1 };

	/* A bad conninfo or password file is the configuration's fault. */
	if (cf->pgsql_conninfo[0] != '\0' &&
	    store_pgsql_configure(&pc, err) < 0)
		delivery_die(EX_CONFIG, "%s", err);
	return 0;
}

static const struct delivery_tool tool = {
	.manual = manual,
	.usage = "usage: postino-migrate [-c FILE] -d USER FROM TO",
	.options = "",
	.operands = 2,
	.store_setup = store_setup,
};

int
main(int argc, char **argv)
{
	struct auth_user u;
	struct config *cf;
	int first, rc;

	cf = delivery_tool_start(&tool, argc, argv, &u, &first);
	rc = migrate(cf, &u, argv[first], argv[first + 1]);
	store_pgsql_shutdown();
	free(cf);
	return rc;
}
