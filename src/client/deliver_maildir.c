/*
 * Delivery into a Maildir (fetch.h) through the store's Maildir append
 * (store.h append and probe, src/store/maildir_append.h), the one Maildir
 * writer: the message is spooled, then the store writes it to tmp/,
 * fsyncs it and renames it into new/; new/ is fsynced once per batch
 * (fetch_sync). The token the state file keeps before the append is the
 * random one the store puts into the file name ("R<token>"), so after a
 * kill the store's probe tells whether the message landed.
 */
#include "deliver.h"

#include <errno.h>
#include <string.h>
#include <sys/random.h>

#include "../store/maildir_append.h"

/* What the store needs to know of this Maildir. */
static struct store_params
maildir_params(const struct fetch_dest *d)
{
	return (struct store_params){ .path = d->where };
}

/*
 * Made (0700) if missing, so a bad path fails before anything is
 * fetched; what killed runs left in tmp/ is removed.
 */
static int
maildir_open(struct fetch_dest *d, char *err)
{
	struct store_params p = maildir_params(d);

	return store_maildir_ready(&p, err) == STORE_OK ? 0 : -1;
}

/* "maildir TOKEN": a new random token, for commit to put into the name. */
static int
maildir_prepare(struct fetch_dest *d, char *token, size_t size, char *err)
{
	unsigned char rnd[STORE_TOKEN_LEN / 2];

	if (deliver_flush(d) < 0) {
		(void)str_fmt(err, ERR_LEN, "temporary file: %s",
		    strerror(errno));
		return -1;
	}
	if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd)) {
		(void)str_fmt(err, ERR_LEN, "getrandom: %s", strerror(errno));
		return -1;
	}
	str_hex(d->token, rnd, sizeof(rnd));
	if (str_fmt(token, size, "maildir %s", d->token) < 0) {
		str_copy(err, ERR_LEN, "token too long");
		return -1;
	}
	return 0;
}

/*
 * The message as fetched (LF line ends, no header added), named
 * "SECS.MUSECPPIDQSEQR<token>.HOST,S=SIZE,W=CRLFSIZE"; the rename becomes
 * durable with new/ itself, in fetch_sync().
 */
static int
maildir_commit(struct fetch_dest *d, char *err)
{
	struct store_params p = maildir_params(d);
	struct store_delivery sd = { .token = d->token,
	    .dir_sync_later = true };

	if (store_maildir_ops.append(&p, d->fd, &sd, err) != STORE_OK)
		return -1;
	d->unsynced = true;
	return 0;
}

/*
 * The token without its "maildir ": 1 in new/ or cur/, 0 not, -1 error.
 * A postino before the store's append kept the file name instead
 * ("NAME,S=SIZE"), which no probe can find: 2, fetched again, said so.
 */
static int
maildir_recover(struct fetch_dest *d, const char *token, char *err)
{
	struct store_params p = maildir_params(d);

	if (strstr(token, ",S=") != NULL && strchr(token, '/') == NULL) {
		(void)str_fmt(err, ERR_LEN, "a delivery an older postino left "
		    "pending is fetched again: if %s is in %s/new or cur, "
		    "the message is there twice", token, d->where);
		return 2;
	}
	switch (store_maildir_ops.probe(&p, token, err)) {
	case STORE_OK:
		/* Landed, but maybe not durable: fetch_sync() makes sure. */
		d->unsynced = true;
		return 1;
	case STORE_PERMFAIL:
		return 0;
	default:
		return -1;
	}
}

static int
maildir_sync(struct fetch_dest *d, char *err)
{
	struct store_params p = maildir_params(d);

	if (!d->unsynced)
		return 0;
	if (store_maildir_sync(&p, err) != STORE_OK)
		return -1;
	d->unsynced = false;
	return 0;
}

const struct deliver_ops deliver_maildir_ops = {
	.name = "maildir",
	.open = maildir_open,
	.prepare = maildir_prepare,
	.commit = maildir_commit,
	.recover = maildir_recover,
	.sync = maildir_sync,
};
