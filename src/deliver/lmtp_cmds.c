#include "lmtp_cmds.h"

#include <string.h>
#include <strings.h>

#include "../lib/str.h"

enum { ST_BOL, ST_MID, ST_CR, ST_DOT, ST_DOT_CR };

bool
lmtp_utf8_valid(const char *str, size_t len)
{
	const unsigned char *s = (const unsigned char *)str;

	for (size_t i = 0; i < len; ) {
		unsigned char c = s[i];
		size_t n;
		uint32_t cp;

		if (c < 0x80) {
			i++;
			continue;
		}
		if (c >= 0xc2 && c <= 0xdf) {
			n = 1;
			cp = c & 0x1f;
		} else if (c >= 0xe0 && c <= 0xef) {
			n = 2;
			cp = c & 0x0f;
		} else if (c >= 0xf0 && c <= 0xf4) {
			n = 3;
			cp = c & 0x07;
		} else
			return false;
		if (len - i <= n)
			return false;
		for (size_t k = 1; k <= n; k++) {
			if ((s[i + k] & 0xc0) != 0x80)
				return false;
			cp = (cp << 6) | (s[i + k] & 0x3f);
		}
		if ((n == 2 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
		    (n == 3 && (cp < 0x10000 || cp > 0x10ffff)))
			return false;
		i += n + 1;
	}
	return true;
}

/*
 * "<path>" at *pp: source route dropped (RFC 5321 sec. 4.1.1.3 says to
 * ignore it), quoted local parts kept as written. *pp ends after '>'.
 */
static const char *
parse_path(const char **pp, bool rcpt, bool *eight_r,
    char addr[LMTP_PATH_MAX + 1])
{
	const char *bad = rcpt ? "501 5.1.3 Bad recipient address syntax" :
	    "501 5.1.7 Bad sender address syntax";
	const char *p = *pp;
	bool quoted = false;
	size_t o = 0;

	*eight_r = false;
	while (*p == ' ')	/* "MAIL FROM: <x>": common, harmless */
		p++;
	if (*p++ != '<')
		return bad;
	if (*p == '@') {
		const char *colon = strchr(p, ':');

		if (colon == NULL || colon - p > LMTP_PATH_MAX)
			return bad;
		p = colon + 1;
	}
	for (;; p++) {
		unsigned char c = (unsigned char)*p;

		if (c == '\0')
			return bad;
		if (c == '>' && !quoted)
			break;
		if (c < 0x20 || c == 0x7f)
			return bad;
		if (!quoted && (c == ' ' || c == '<'))
			return bad;
		if (c == '"')
			quoted = !quoted;
		else if (c == '\\' && quoted) {
			if (o == LMTP_PATH_MAX || p[1] == '\0')
				return bad;
			addr[o++] = (char)c;
			c = (unsigned char)*++p;
			if (c < 0x20 || c == 0x7f)
				return bad;
		}
		if (c >= 0x80)
			*eight_r = true;
		if (o == LMTP_PATH_MAX)
			return rcpt ? "501 5.1.3 Recipient address too long" :
			    "501 5.1.7 Sender address too long";
		addr[o++] = (char)c;
	}
	addr[o] = '\0';
	p++;
	if (*p != '\0' && *p != ' ')
		return bad;
	if (*eight_r && !lmtp_utf8_valid(addr, o))
		return "553 5.6.7 Address is not valid UTF-8";
	if (o > 0 && (addr[0] == '@' || addr[o - 1] == '@'))
		return bad;
	*pp = p;
	return NULL;
}

/* "FROM:" / "TO:" without case; the rest after it. */
static const char *
skip_keyword(const char *args, const char *kw)
{
	size_t n = strlen(kw);

	return strncasecmp(args, kw, n) == 0 ? args + n : NULL;
}

const char *
lmtp_parse_mail(const char *args, uint64_t max_size, struct lmtp_mail *m)
{
	const char *p = skip_keyword(args, "FROM:"), *r;
	bool eight, seen_size = false, seen_body = false;
	unsigned int nparams = 0;

	*m = (struct lmtp_mail){ .body = LMTP_BODY_7BIT };
	if (p == NULL)
		return "501 5.5.4 Syntax: MAIL FROM:<address>";
	if ((r = parse_path(&p, false, &eight, m->addr)) != NULL)
		return r;
	while (*p != '\0') {
		char key[16], val[24];
		size_t klen, vlen;
		const char *eq;

		while (*p == ' ')
			p++;
		if (*p == '\0')
			break;
		if (++nparams > LMTP_PARAMS_MAX)
			return "501 5.5.4 Too many parameters";
		klen = strcspn(p, "= ");
		eq = p[klen] == '=' ? p + klen + 1 : NULL;
		vlen = eq != NULL ? strcspn(eq, " ") : 0;
		if (klen == 0 || klen >= sizeof(key))
			return "555 5.5.4 Unsupported parameter";
		memcpy(key, p, klen);
		key[klen] = '\0';
		if (eq != NULL) {
			if (vlen >= sizeof(val))
				return "501 5.5.4 Parameter value too long";
			memcpy(val, eq, vlen);
			val[vlen] = '\0';
			p = eq + vlen;
		} else
			p += klen;
		if (strcasecmp(key, "SIZE") == 0) {
			if (seen_size)
				return "501 5.5.4 Duplicate SIZE";
			seen_size = true;
			if (eq == NULL || str_parse_u64(val, &m->size) < 0)
				return "501 5.5.4 Syntax: SIZE=<octets>";
			/* RFC 1870 sec. 6.2: refuse at MAIL what cannot fit. */
			if (m->size > max_size)
				return "552 5.3.4 Message size exceeds fixed "
				    "maximum message size";
		} else if (strcasecmp(key, "BODY") == 0) {
			if (seen_body)
				return "501 5.5.4 Duplicate BODY";
			seen_body = true;
			if (eq != NULL && strcasecmp(val, "7BIT") == 0)
				m->body = LMTP_BODY_7BIT;
			else if (eq != NULL && strcasecmp(val, "8BITMIME") == 0)
				m->body = LMTP_BODY_8BITMIME;
			else
				return "501 5.5.4 Syntax: BODY=7BIT or "
				    "BODY=8BITMIME";
		} else if (strcasecmp(key, "SMTPUTF8") == 0) {
			if (eq != NULL || m->smtputf8)
				return "501 5.5.4 Syntax: SMTPUTF8 takes no value";
			m->smtputf8 = true;
		} else
			return "555 5.5.4 Unsupported parameter";
	}
	/* RFC 6531 sec. 3.4: a non-ASCII address needs SMTPUTF8. */
	if (eight && !m->smtputf8)
		return "553 5.6.7 Non-ASCII address without SMTPUTF8";
	return NULL;
}

const char *
lmtp_parse_rcpt(const char *args, bool utf8, char addr[LMTP_PATH_MAX + 1])
{
	const char *p = skip_keyword(args, "TO:"), *r;
	bool eight;

	if (p == NULL)
		return "501 5.5.4 Syntax: RCPT TO:<address>";
	if ((r = parse_path(&p, true, &eight, addr)) != NULL)
		return r;
	while (*p == ' ')
		p++;
	if (*p != '\0')
		return "555 5.5.4 Unsupported parameter";
	if (addr[0] == '\0')
		return "501 5.1.3 Empty recipient";
	if (eight && !utf8)
		return "553 5.6.7 Non-ASCII address without SMTPUTF8";
	return NULL;
}

const char *
lmtp_parse_bdat(const char *args, uint64_t *size_r, bool *last_r)
{
	char num[24];
	size_t n = strcspn(args, " ");
	const char *rest = args + n;

	if (n == 0 || n >= sizeof(num))
		return "501 5.5.4 Syntax: BDAT <octets> [LAST]";
	memcpy(num, args, n);
	num[n] = '\0';
	if (str_parse_u64(num, size_r) < 0)
		return "501 5.5.4 Syntax: BDAT <octets> [LAST]";
	while (*rest == ' ')
		rest++;
	*last_r = false;
	if (*rest == '\0')
		return NULL;
	if (strcasecmp(rest, "LAST") != 0)
		return "501 5.5.4 Syntax: BDAT <octets> [LAST]";
	*last_r = true;
	return NULL;
}

static bool
domain_listed(const char *domain, size_t dlen, const char *list)
{
	while (*list != '\0') {
		size_t n = strcspn(list, " \t,");

		if (n == dlen && strncasecmp(list, domain, n) == 0)
			return true;
		list += n;
		list += strspn(list, " \t,");
	}
	return false;
}

int
lmtp_rcpt_user(const char *addr, const char *delims, const char *local_domains,
    char *user, size_t size)
{
	const char *at = strrchr(addr, '@');
	size_t llen = at != NULL ? (size_t)(at - addr) : strlen(addr);
	size_t cut = strcspn(addr, delims[0] != '\0' ? delims : "");
	size_t dlen, o;

	/* "+detail" alone is a name, not a detail. */
	if (delims[0] != '\0' && cut > 0 && cut < llen)
		llen = cut;
	if (llen == 0 || llen >= size)
		return -1;
	memcpy(user, addr, llen);
	o = llen;
	if (at == NULL)
		dlen = 0;
	else
		dlen = strlen(at + 1);
	if (dlen > 0 && !domain_listed(at + 1, dlen, local_domains)) {
		if (o + 1 + dlen >= size)
			return -1;
		user[o++] = '@';
		for (size_t i = 0; i < dlen; i++) {
			char c = at[1 + i];

			user[o++] = c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
		}
	}
	user[o] = '\0';
	return 0;
}

void
lmtp_data_init(struct lmtp_data *d, bool dot)
{
	*d = (struct lmtp_data){ .dot = dot, .st = ST_BOL };
}

size_t
lmtp_data_feed(struct lmtp_data *d, const char *in, size_t len, char *out,
    size_t *outlen_r)
{
	size_t i, o = 0;

	for (i = 0; i < len && !d->done; i++) {
		char c = in[i];

		switch (d->st) {
		case ST_BOL:
			if (d->dot && c == '.') {
				d->st = ST_DOT;
				continue;
			}
			goto mid;
		case ST_DOT:
			if (c == '\r') {
				d->st = ST_DOT_CR;
				continue;
			}
			if (c == '\n') {
				d->done = true;
				continue;
			}
			goto mid;	/* the leading dot is dropped */
		case ST_DOT_CR:
			if (c == '\n') {
				d->done = true;
				continue;
			}
			goto cr;	/* ".<CR>x": the CR is data */
		case ST_CR:
		cr:
			if (c == '\n') {
				out[o++] = '\n';
				d->st = ST_BOL;
				continue;
			}
			out[o++] = '\r';
			if (c == '\r') {
				d->st = ST_CR;
				continue;
			}
			goto mid;
		default:
		mid:
			if (c == '\r') {
				d->st = ST_CR;
				continue;
			}
			out[o++] = c;
			d->st = c == '\n' ? ST_BOL : ST_MID;
			continue;
		}
	}
	*outlen_r = o;
	return i;
}

size_t
lmtp_data_finish(struct lmtp_data *d, char *out)
{
	if (d->st != ST_CR)
		return 0;
	d->st = ST_MID;
	out[0] = '\r';
	return 1;
}
