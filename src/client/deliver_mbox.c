/*
 * Delivery into an mbox (fetch.h) through the store's mbox append
 * (src/store/mbox_append.h: its locks, its writer, its journal), mboxrd,
 * proven or taken back after a kill by the token the state file keeps.
 */
#include "deliver.h"

#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../lib/fdio.h"

/* What the store needs to know of this mbox. */
static struct store_params
mbox_params(const struct fetch_dest *d)
{
	return (struct store_params){ .path = d->where, .mboxrd = true,
	    .dotlock_stale = FETCH_DOTLOCK_STALE, .lock_wait = FETCH_LOCK_WAIT };
}

/*
 * The message as fetched: the store adds the From_ line (with the sender
 * from its Return-Path), quotes, and drops any X-UIDL (a sender must not
 * choose its UIDL; store.h); no header is added.
 */
static const struct store_delivery mbox_delivery;

static void
mbox_unlock(struct fetch_dest *d)
{
	store_mbox_end(&d->txn);
}

static int
mbox_open(struct fetch_dest *d, char *err)
{
	(void)err;
	d->txn.fd = -1;
	return 0;
}

static int
mbox_prepare(struct fetch_dest *d, char *token, size_t size, char *err)
{
	struct store_params p = mbox_params(d);

	if (deliver_flush(d) < 0) {
		(void)str_fmt(err, ERR_LEN, "temporary file: %s",
		    strerror(errno));
		return -1;
	}
	if (store_mbox_begin(&d->txn, &p, d->sender, err) != STORE_OK)
		goto fail;
	/* The state file keeps the token before the append begins. */
	d->txn.token_is_journal = true;
	if (str_copy(token, size, "mbox ") < 0 ||
	    store_mbox_token(&d->txn, d->fd, &mbox_delivery, token + 5,
	    size - 5, err) < 0)
		goto fail;
	return 0;
fail:
	mbox_unlock(d);
	return -1;
}

#ifdef POSTINO_TEST_HOOKS
/* Test builds only: write up to d->kill_at octets, then die like kill -9. */
static int
put_then_die(void *arg, const void *p, size_t n)
{
	struct fetch_dest *d = arg;

	if (n >= d->kill_at) {
		(void)fd_write_all(d->txn.fd, p, (size_t)d->kill_at);
		raise(SIGKILL);
	}
	d->kill_at -= n;
	return fd_write_all(d->txn.fd, p, n);
}
#endif

static int
mbox_commit(struct fetch_dest *d, char *err)
{
	enum store_result r;

#ifdef POSTINO_TEST_HOOKS
	struct stat sb;

	/* Killed half-way through the Nth append, with the mbox locked. */
	if (d->kill_append > 0 && ++d->commits == d->kill_append &&
	    fstat(d->fd, &sb) == 0) {
		d->kill_at = strlen(d->txn.hdr) + (uint64_t)sb.st_size / 2;
		d->txn.put = put_then_die;
		d->txn.put_arg = d;
	}
#endif
	r = store_mbox_write(&d->txn, d->fd, &mbox_delivery, err);
	mbox_unlock(d);
	return r == STORE_OK ? 0 : -1;
}

/* The token without its "mbox " (store_mbox_prove: 1, 0, 2 or -1). */
static int
mbox_recover(struct fetch_dest *d, const char *token, char *err)
{
	struct store_params p = mbox_params(d);

	return store_mbox_prove(&p, d->spool_named ? d->fd : -1,
	    &mbox_delivery, token, err);
}

const struct deliver_ops deliver_mbox_ops = {
	.name = "mbox",
	.open = mbox_open,
	.prepare = mbox_prepare,
	.commit = mbox_commit,
	.recover = mbox_recover,
	.abort = mbox_unlock,
};
