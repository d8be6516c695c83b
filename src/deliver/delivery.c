#include "delivery.h"

#include <string.h>

int
delivery_mailbox_path(const struct config *cf, const struct auth_user *u,
    char *out, size_t size, const struct store_ops **ops_r, char *err)
{
	const char *spec = cf->mailbox, *colon = strchr(spec, ':');
	const char *at = strchr(u->name, '@');
	char backend[16];
	size_t o = 0;

	if (colon == NULL || (size_t)(colon - spec) >= sizeof(backend)) {
		str_copy(err, ERR_LEN, "bad mailbox setting");
		return -1;
	}
	memcpy(backend, spec, (size_t)(colon - spec));
	backend[colon - spec] = '\0';
	if ((*ops_r = store_lookup(backend)) == NULL) {
		str_fmt(err, ERR_LEN, "unknown mailbox format '%s'", backend);
		return -1;
	}
	if (u->name[0] == '.' || strchr(u->name, '/') != NULL ||
	    (at != NULL && (at[1] == '.' || at[1] == '\0'))) {
		str_copy(err, ERR_LEN, "user name not usable in a path");
		return -1;
	}
	for (const char *p = colon + 1; *p != '\0'; p++) {
		const char *add;
		size_t addlen;

		if (p == colon + 1 && *p == '~') {
			if (u->home[0] == '\0') {
				str_copy(err, ERR_LEN, "mailbox uses ~ but the "
				    "user has no home");
				return -1;
			}
			add = u->home;
			addlen = strlen(add);
		} else if (*p == '%' && (p[1] == 'u' || p[1] == 'n' ||
		    p[1] == 'd' || p[1] == '%')) {
			p++;
			add = *p == 'd' ? (at ? at + 1 : "") :
			    *p == '%' ? "%" : u->name;
			addlen = *p == 'n' && at ? (size_t)(at - u->name) :
			    strlen(add);
		} else {
			add = p;
			addlen = 1;
		}
		if (o + addlen >= size) {
			str_copy(err, ERR_LEN, "mailbox path too long");
			return -1;
		}
		memcpy(out + o, add, addlen);
		o += addlen;
	}
	out[o] = '\0';
	/* The same rule as the mail role's (mail.c): no "." or ".." anywhere. */
	for (const char *c = out; *c != '\0'; ) {
		size_t n = strcspn(c, "/");

		if ((n == 1 && c[0] == '.') || (n == 2 && c[0] == '.' &&
		    c[1] == '.')) {
			str_copy(err, ERR_LEN, "'.' or '..' in the mailbox path");
			return -1;
		}
		c += n + (c[n] == '/');
	}
	return 0;
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
	d->quota_bytes = cf->lmtp_quota_bytes;
	if (cf->max_mailbox_size != 0 && (d->quota_bytes == 0 ||
	    cf->max_mailbox_size < d->quota_bytes))
		d->quota_bytes = cf->max_mailbox_size;
	d->quota_messages = cf->lmtp_quota_messages;
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
