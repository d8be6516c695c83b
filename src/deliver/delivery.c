#include "delivery.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../lib/priv.h"

#include "../store/store_path.h"

int
delivery_mailbox_path(const struct config *cf, const struct auth_user *u,
    char *out, size_t size, const struct store_ops **ops_r, char *err)
{
	/* The same expansion, and the same refusals, as the mail role's. */
	return store_path_resolve(cf->mailbox, u->name, u->home, out, size,
	    ops_r, err);
}

enum store_result
delivery_probe(const struct config *cf, const struct auth_user *u,
    const char *token, char *err)
{
	const struct store_ops *ops;
	struct store_params p = { 0 };
	char path[PATH_MAX];

	if (delivery_mailbox_path(cf, u, path, sizeof(path), &ops, err) < 0)
		return STORE_TEMPFAIL;
	if (ops->probe == NULL) {
		str_fmt(err, ERR_LEN, "%s keeps no delivery tokens", ops->name);
		return STORE_TEMPFAIL;
	}
	p.path = path;
	return ops->probe(&p, token, err);
}

/* The store, its parameters and the delivery settings for u. */
static int
delivery_setup(const struct config *cf, const struct auth_user *u,
    char path[PATH_MAX], const struct store_ops **ops_r,
    struct store_params *p, struct store_delivery *d, char *err)
{
	if (delivery_mailbox_path(cf, u, path, PATH_MAX, ops_r, err) < 0)
		return -1;
	*p = (struct store_params){ .path = path,
	    .max_messages = cf->max_messages, .max_bytes = cf->max_mailbox_size,
	    .mboxrd = cf->mboxrd, .dotlock_stale = cf->mbox_dotlock_stale,
	    .lock_wait = cf->mbox_lock_wait };
	*d = (struct store_delivery){ .crlf = cf->mail_crlf };
	/*
	 * The delivery quota, and never past the caps above which POP3
	 * refuses the login (max_mailbox_size, max_messages): mail must not
	 * lock its owner out.
	 */
	d->quota_bytes = u->quota.has_bytes ? u->quota.bytes :
	    cf->lmtp_quota_bytes;
	if (cf->max_mailbox_size != 0 && (d->quota_bytes == 0 ||
	    cf->max_mailbox_size < d->quota_bytes))
		d->quota_bytes = cf->max_mailbox_size;
	d->quota_messages = u->quota.has_messages ? u->quota.messages :
	    cf->lmtp_quota_messages;
	if (cf->max_messages != 0 && (d->quota_messages == 0 ||
	    cf->max_messages < d->quota_messages))
		d->quota_messages = cf->max_messages;
	return 0;
}

enum store_result
delivery_run(const struct config *cf, const struct auth_user *u, int fd,
    const char *sender, const char *rcpt, const char *token, char *err)
{
	const struct store_ops *ops;
	struct store_params p;
	struct store_delivery d;
	char path[PATH_MAX];

	if (delivery_setup(cf, u, path, &ops, &p, &d, err) < 0)
		return STORE_PERMFAIL;
	if (ops->append == NULL) {
		str_fmt(err, ERR_LEN, "%s: delivery not supported", ops->name);
		return STORE_TEMPFAIL;
	}
	d.return_path = cf->lmtp_return_path ? sender : NULL;
	d.delivered_to = cf->lmtp_delivered_to ? rcpt : NULL;
	d.token = token;
	return ops->append(&p, fd, &d, err);
}

bool
delivery_has_quota(const struct config *cf, const struct auth_user *u)
{
	uint64_t bytes = u->quota.has_bytes ? u->quota.bytes :
	    cf->lmtp_quota_bytes;
	unsigned int msgs = u->quota.has_messages ? u->quota.messages :
	    cf->lmtp_quota_messages;

	return bytes != 0 || msgs != 0;
}

enum store_result
delivery_quota(const struct config *cf, const struct auth_user *u, char *err)
{
	const struct store_ops *ops;
	struct store_params p;
	struct store_delivery d;
	char path[PATH_MAX];

	if (delivery_setup(cf, u, path, &ops, &p, &d, err) < 0)
		return STORE_TEMPFAIL;
	return ops->quota != NULL ? ops->quota(&p, &d, err) : STORE_OK;
}

void
delivery_reply(enum store_result r, bool quota_temporary, const char *rcpt,
    char *out, size_t size)
{
	const char *code, *text;

	switch (r) {
	case STORE_OK:
		code = "250 2.0.0";
		text = "Delivered";
		break;
	case STORE_OVERQUOTA:
		/* RFC 3463: 5.2.2 / 4.2.2, mailbox full. */
		code = quota_temporary ? "452 4.2.2" : "552 5.2.2";
		text = "Mailbox full";
		break;
	case STORE_PERMFAIL:
		code = "550 5.2.0";
		text = "Mailbox unavailable";
		break;
	case STORE_LOCKED:
	case STORE_BUSY:
		code = "451 4.2.0";
		text = "Mailbox busy, try again later";
		break;
	default:
		code = "451 4.3.0";
		text = "Temporary failure, try again later";
		break;
	}
	/* An address that does not fit is cut: the code is what counts. */
	(void)str_fmt(out, size, "%s <%s> %s", code, rcpt, text);
}

int
delivery_become_owner(const struct config *cf, const struct auth_user *u,
    char *err)
{
	uid_t uid = u->uid, mu;
	gid_t gid = u->gid, mg, extra = (gid_t)-1;

	if (!priv_is_root())
		return 0;
	if (!u->has_uid) {
		if (cf->mail_user[0] == '\0' ||
		    priv_user(cf->mail_user, &mu, &mg) < 0) {
			str_copy(err, ERR_LEN, "no uid in passwd_file and no "
			    "mail_user");
			return -1;
		}
		uid = mu;
		gid = u->has_gid ? u->gid : mg;
	} else if (!u->has_gid)
		gid = (gid_t)uid;
	if (cf->mail_privileged_group[0] != '\0' &&
	    priv_group(cf->mail_privileged_group, &extra) < 0) {
		str_copy(err, ERR_LEN, "mail_privileged_group: no such group");
		return -1;
	}
	return priv_drop(uid, gid, extra, NULL, err) < 0 ? -2 : 0;
}
