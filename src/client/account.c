#include "account.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include "../auth/sasl_mechs.h"

static int
hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Percent-decode src[0..len) into dst; no NUL or control octets. */
static int
pct_decode(char *dst, size_t size, const char *src, size_t len)
{
	size_t o = 0;

	for (size_t i = 0; i < len; i++) {
		int ch = (unsigned char)src[i];

		if (ch == '%') {
			int h, l;

			if (i + 2 >= len)
				return -1;
			h = hexval((unsigned char)src[i + 1]);
			l = hexval((unsigned char)src[i + 2]);
			if (h < 0 || l < 0)
				return -1;
			ch = h * 16 + l;
			i += 2;
		}
		if (ch < 0x20 || ch == 0x7f || o + 1 >= size)
			return -1;
		dst[o++] = (char)ch;
	}
	dst[o] = '\0';
	return 0;
}

static bool
valid_hostname(const char *s)
{
	if (*s == '\0' || *s == '-' || *s == '.')
		return false;
	for (; *s != '\0'; s++)
		if (!isalnum((unsigned char)*s) && *s != '.' && *s != '-' &&
		    *s != '_')
			return false;
	return true;
}

static bool
valid_v6(const char *s)
{
	if (*s == '\0')
		return false;
	/* Hex, colons, dots for embedded IPv4, "%zone" names. */
	for (; *s != '\0'; s++)
		if (!isxdigit((unsigned char)*s) && *s != ':' && *s != '.' &&
		    *s != '%' && !isalnum((unsigned char)*s))
			return false;
	return true;
}

static int
parse_port(const char *s, char *port, size_t size)
{
	uint32_t p;

	if (str_parse_u32(s, &p) < 0 || p == 0 || p > 65535)
		return -1;
	return str_fmt(port, size, "%u", (unsigned int)p);
}

int
account_parse_url(struct account *a, const char *s, char *err)
{
	const char *rest = s, *at, *hp, *end;
	char hostport[ACCOUNT_HOST_MAX + 16];
	size_t len;

	memset(a, 0, sizeof(*a));
	a->family = AF_UNSPEC;
	a->keep = -1;
	if (strncasecmp(rest, "pop3://", 7) == 0) {
		rest += 7;
	} else if (strncasecmp(rest, "pop3s://", 8) == 0) {
		rest += 8;
		a->pop3s = true;
	} else if (strstr(rest, "://") != NULL) {
		(void)str_fmt(err, ERR_LEN, "%s: only pop3:// and pop3s:// "
		    "are supported", s);
		return -1;
	}
	len = strlen(rest);
	if (len > 0 && rest[len - 1] == '/')
		len--;
	at = memrchr(rest, '@', len);
	if (at != NULL) {
		if (at == rest || pct_decode(a->user, sizeof(a->user), rest,
		    (size_t)(at - rest)) < 0) {
			(void)str_fmt(err, ERR_LEN, "%s: bad user name", s);
			return -1;
		}
		hp = at + 1;
	} else {
		hp = rest;
	}
	end = rest + len;
	if ((size_t)(end - hp) >= sizeof(hostport))
		goto bad_host;
	memcpy(hostport, hp, (size_t)(end - hp));
	hostport[end - hp] = '\0';
	if (hostport[0] == '[') {
		char *close = strchr(hostport, ']');

		if (close == NULL)
			goto bad_host;
		*close = '\0';
		if (close[1] == ':') {
			if (parse_port(close + 2, a->port, sizeof(a->port)) < 0)
				goto bad_port;
		} else if (close[1] != '\0') {
			goto bad_host;
		}
		if (!valid_v6(hostport + 1) || str_copy(a->host,
		    sizeof(a->host), hostport + 1) < 0)
			goto bad_host;
	} else {
		char *colon = strchr(hostport, ':');

		if (colon != NULL) {
			*colon = '\0';
			if (parse_port(colon + 1, a->port, sizeof(a->port)) < 0)
				goto bad_port;
		}
		if (!valid_hostname(hostport) || str_copy(a->host,
		    sizeof(a->host), hostport) < 0)
			goto bad_host;
	}
	return 0;
bad_host:
	(void)str_fmt(err, ERR_LEN, "%s: bad host (use host, host:port or "
	    "[IPv6]:port)", s);
	return -1;
bad_port:
	(void)str_fmt(err, ERR_LEN, "%s: bad port (1-65535)", s);
	return -1;
}

int
account_parse_tls(const char *s, enum account_tls *tls_r)
{
	if (strcmp(s, "stls") == 0)
		*tls_r = ACCOUNT_TLS_STLS;
	else if (strcmp(s, "implicit") == 0)
		*tls_r = ACCOUNT_TLS_IMPLICIT;
	else if (strcmp(s, "no") == 0)
		*tls_r = ACCOUNT_TLS_NO;
	else
		return -1;
	return 0;
}

int
account_config_path(char *path, size_t size, char *err)
{
	const char *x = getenv("XDG_CONFIG_HOME"), *home = getenv("HOME");

	if (x != NULL && x[0] == '/')
		return str_fmt(path, size, "%s/postino/config", x) < 0 ?
		    (str_copy(err, ERR_LEN, "config path too long"), -1) : 0;
	if (home == NULL || home[0] != '/') {
		str_copy(err, ERR_LEN, "HOME is not set");
		return -1;
	}
	if (str_fmt(path, size, "%s/.config/postino/config", home) < 0) {
		str_copy(err, ERR_LEN, "config path too long");
		return -1;
	}
	return 0;
}

/* "~/x" -> "$HOME/x". */
static int
expand_path(char *dst, size_t size, const char *src)
{
	const char *home = getenv("HOME");

	if (strncmp(src, "~/", 2) == 0 && home != NULL)
		return str_fmt(dst, size, "%s/%s", home, src + 2);
	return str_copy(dst, size, src);
}

static bool
valid_name(const char *s)
{
	if (*s == '\0' || strlen(s) > ACCOUNT_NAME_MAX)
		return false;
	for (; *s != '\0'; s++)
		if (!isalnum((unsigned char)*s) && *s != '.' && *s != '_' &&
		    *s != '-')
			return false;
	return true;
}

/* One "key value" of an account block; -1 with why filled. */
static int
parse_bool(const char *val, bool *b)
{
	if (strcmp(val, "yes") == 0)
		*b = true;
	else if (strcmp(val, "no") == 0)
		*b = false;
	else
		return -1;
	return 0;
}

int
account_parse_size(const char *s, uint64_t *r)
{
	char digits[32];
	size_t len = strlen(s);
	unsigned int shift = 0;
	uint64_t v;

	if (len == 0 || len >= sizeof(digits))
		return -1;
	memcpy(digits, s, len + 1);
	switch (digits[len - 1]) {
	case 'k': case 'K': shift = 10; break;
	case 'M': shift = 20; break;
	case 'G': shift = 30; break;
	default: break;
	}
	if (shift != 0)
		digits[len - 1] = '\0';
	if (str_parse_u64(digits, &v) < 0 || v > (UINT64_MAX >> shift))
		return -1;
	*r = v << shift;
	return 0;
}

/* Where a key is not one's to set: config_key tries the next. */
#define KEY_UNKNOWN	1

/* Keys of the server connection: 0, -1 for a bad value or KEY_UNKNOWN. */
static int
connection_key(struct account *a, const char *key, const char *val)
{
	if (strcmp(key, "host") == 0) {
		if (!valid_hostname(val) && !valid_v6(val))
			return -1;
		return str_copy(a->host, sizeof(a->host), val);
	}
	if (strcmp(key, "port") == 0)
		return parse_port(val, a->port, sizeof(a->port));
	if (strcmp(key, "user") == 0)
		return strpbrk(val, "\r\n") != NULL ? -1 :
		    str_copy(a->user, sizeof(a->user), val);
	if (strcmp(key, "tls") == 0)
		return account_parse_tls(val, &a->tls);
	if (strcmp(key, "family") == 0) {
		if (strcmp(val, "4") == 0)
			a->family = AF_INET;
		else if (strcmp(val, "6") == 0)
			a->family = AF_INET6;
		else if (strcmp(val, "any") == 0)
			a->family = AF_UNSPEC;
		else
			return -1;
		return 0;
	}
	if (strcmp(key, "cafile") == 0)
		return expand_path(a->cafile, sizeof(a->cafile), val);
	if (strcmp(key, "tls-fingerprint") == 0)
		return str_copy(a->tls_fingerprint, sizeof(a->tls_fingerprint),
		    val);
	if (strcmp(key, "auth") == 0)
		return str_copy(a->auth, sizeof(a->auth), val);
	if (strcmp(key, "password-command") == 0)
		return str_copy(a->password_command,
		    sizeof(a->password_command), val);
	if (strcmp(key, "token-command") == 0)
		return str_copy(a->token_command, sizeof(a->token_command),
		    val);
	return KEY_UNKNOWN;
}

/* Keys of delivery and of what to fetch: 0, -1 or KEY_UNKNOWN. */
static int
delivery_key(struct account *a, const char *key, const char *val)
{
	bool b;

	if (strcmp(key, "maildir") == 0)
		return expand_path(a->maildir, sizeof(a->maildir), val);
	if (strcmp(key, "mbox") == 0)
		return expand_path(a->mbox, sizeof(a->mbox), val);
	if (strcmp(key, "mda") == 0)
		return str_copy(a->mda, sizeof(a->mda), val);
	if (strcmp(key, "lmtp") == 0)
		return str_copy(a->lmtp, sizeof(a->lmtp), val);
	if (strcmp(key, "lmtp-recipient") == 0)
		return str_copy(a->lmtp_recipient, sizeof(a->lmtp_recipient),
		    val);
	if (strcmp(key, "default") == 0)
		return parse_bool(val, &a->is_default);
	if (strcmp(key, "keep") == 0) {
		if (parse_bool(val, &b) < 0)
			return -1;
		a->keep = b;
		return 0;
	}
	if (strcmp(key, "keep-days") == 0)
		return str_parse_u32(val, &a->keep_days) < 0 ||
		    a->keep_days == 0 || a->keep_days > ACCOUNT_KEEP_DAYS_MAX ?
		    -1 : 0;
	if (strcmp(key, "max-size") == 0)
		return account_parse_size(val, &a->max_size) < 0 ||
		    a->max_size == 0 ? -1 : 0;
	if (strcmp(key, "received-header") == 0)
		return parse_bool(val, &a->received);
	if (strcmp(key, "delete-oversized") == 0)
		return parse_bool(val, &a->delete_oversized);
	if (strcmp(key, "max-messages") == 0)
		return str_parse_u32(val, &a->max_messages) < 0 ||
		    a->max_messages == 0 ? -1 : 0;
	return KEY_UNKNOWN;
}

static int
config_key(struct account *a, const char *key, const char *val, char *why)
{
	struct account u;
	int r;

	if (strcmp(key, "url") == 0) {
		/* Only what the URL says; other keys keep their values. */
		if (account_parse_url(&u, val, why) < 0)
			return -1;
		memcpy(a->host, u.host, sizeof(a->host));
		a->pop3s = u.pop3s;
		if (u.user[0] != '\0')
			memcpy(a->user, u.user, sizeof(a->user));
		if (u.port[0] != '\0')
			memcpy(a->port, u.port, sizeof(a->port));
		return 0;
	}
	if ((r = connection_key(a, key, val)) == KEY_UNKNOWN &&
	    (r = delivery_key(a, key, val)) == KEY_UNKNOWN) {
		(void)str_fmt(why, ERR_LEN, "unknown key \"%s\"", key);
		return -1;
	}
	if (r == 0)
		return 0;
	(void)str_fmt(why, ERR_LEN, "bad value for %s", key);
	return -1;
}

/*
 * Split a config line into its key and its value, trailing blanks cut.
 * False for a blank line or a comment.
 */
static bool
split_key_value(char *line, char **key_r, char **val_r)
{
	char *key, *val, *p;
	size_t len;

	key = line + strspn(line, " \t");
	if (*key == '#' || *key == '\0')
		return false;
	p = key + strcspn(key, " \t");
	val = p + strspn(p, " \t");
	*p = '\0';
	for (len = strlen(val); len > 0 && (val[len - 1] == ' ' ||
	    val[len - 1] == '\t' || val[len - 1] == '\r'); len--)
		val[len - 1] = '\0';
	*key_r = key;
	*val_r = val;
	return true;
}

int
account_load(struct account *a, const char *path, const char *name,
    char *err)
{
	char line[ACCOUNT_CMD_MAX + 64], why[ERR_LEN];
	unsigned long lineno = 0;
	bool in_block = false, found = false;
	FILE *f;

	f = fopen(path, "re");
	if (f == NULL) {
		if (errno == ENOENT)
			return 0;
		(void)str_fmt(err, ERR_LEN, "%s: %s", path, strerror(errno));
		return -1;
	}
	while (fgets(line, sizeof(line), f) != NULL) {
		char *key, *val;
		size_t len = strlen(line);

		lineno++;
		if (lineno > ACCOUNT_FILE_MAX / 8) {
			str_copy(why, sizeof(why), "file too long");
			goto bad;
		}
		if (len > 0 && line[len - 1] == '\n')
			line[--len] = '\0';
		else if (!feof(f)) {
			str_copy(why, sizeof(why), "line too long");
			goto bad;
		}
		if (!split_key_value(line, &key, &val))
			continue;
		if (strcmp(key, "account") == 0) {
			if (!valid_name(val)) {
				str_copy(why, sizeof(why), "bad account name");
				goto bad;
			}
			if (found)
				break;
			in_block = strcmp(val, name) == 0;
			if (in_block) {
				memset(a, 0, sizeof(*a));
				a->family = AF_UNSPEC;
				a->keep = -1;
				str_copy(a->name, sizeof(a->name), val);
				found = true;
			}
			continue;
		}
		if (*val == '\0') {
			(void)str_fmt(why, sizeof(why), "%s needs a value",
			    key);
			goto bad;
		}
		if (!in_block) {
			struct account scratch = { 0 };

			/* Check keys of other blocks too: typos surface. */
			if (config_key(&scratch, key, val, why) < 0)
				goto bad;
			continue;
		}
		if (config_key(a, key, val, why) < 0)
			goto bad;
	}
	if (ferror(f)) {
		str_copy(why, sizeof(why), "read error");
		goto bad;
	}
	fclose(f);
	if (found && a->host[0] == '\0') {
		(void)str_fmt(err, ERR_LEN, "%s: account %s has no host", path,
		    name);
		return -1;
	}
	return found ? 1 : 0;
bad:
	(void)str_fmt(err, ERR_LEN, "%s:%lu: %s", path, lineno, why);
	fclose(f);
	return -1;
}

int
account_names(const char *path, char (*names)[ACCOUNT_NAME_MAX + 1],
    size_t max, size_t *n_r, char *default_name, char *err)
{
	struct account a;
	char line[ACCOUNT_CMD_MAX + 64];
	FILE *f;
	int rc;

	*n_r = 0;
	default_name[0] = '\0';
	f = fopen(path, "re");
	if (f == NULL) {
		if (errno == ENOENT)
			return 0;
		(void)str_fmt(err, ERR_LEN, "%s: %s", path, strerror(errno));
		return -1;
	}
	/* Names first (account_load checks every line of the file). */
	while (fgets(line, sizeof(line), f) != NULL) {
		char *key = line + strspn(line, " \t"), *val;
		size_t len;

		if (strncmp(key, "account", 7) != 0 ||
		    (key[7] != ' ' && key[7] != '\t'))
			continue;
		val = key + 7 + strspn(key + 7, " \t");
		len = strcspn(val, " \t\r\n");
		val[len] = '\0';
		if (*n_r == max) {
			(void)str_fmt(err, ERR_LEN, "%s: more than %zu "
			    "accounts", path, max);
			fclose(f);
			return -1;
		}
		if (str_copy(names[*n_r], sizeof(names[0]), val) < 0)
			names[*n_r][0] = '\0';	/* account_load says why */
		(*n_r)++;
	}
	fclose(f);
	for (size_t i = 0; i < *n_r; i++) {
		rc = account_load(&a, path, names[i], err);
		if (rc < 0)
			return -1;
		if (rc == 0) {
			(void)str_fmt(err, ERR_LEN, "%s: bad account name",
			    path);
			return -1;
		}
		for (size_t j = 0; j < i; j++) {
			if (strcmp(names[j], names[i]) == 0) {
				(void)str_fmt(err, ERR_LEN, "%s: account %s "
				    "twice", path, names[i]);
				return -1;
			}
		}
		if (a.is_default) {
			if (default_name[0] != '\0') {
				(void)str_fmt(err, ERR_LEN, "%s: more than one "
				    "default account", path);
				return -1;
			}
			str_copy(default_name, ACCOUNT_NAME_MAX + 1, a.name);
		}
	}
	explicit_bzero(&a, sizeof(a));
	return 0;
}

int
account_resolve(struct account *a, const char *arg, const char *config,
    char *err)
{
	if (config != NULL && valid_name(arg)) {
		int rc = account_load(a, config, arg, err);

		if (rc != 0)
			return rc < 0 ? -1 : 0;
	}
	return account_parse_url(a, arg, err);
}

void
account_finish(struct account *a)
{
	if (a->tls == ACCOUNT_TLS_DEFAULT)
		a->tls = a->pop3s ? ACCOUNT_TLS_IMPLICIT : ACCOUNT_TLS_STLS;
	if (a->port[0] == '\0')
		str_copy(a->port, sizeof(a->port),
		    a->tls == ACCOUNT_TLS_IMPLICIT ? "995" : "110");
}

int
account_key(const struct account *a, char *dst, size_t size)
{
	if (strchr(a->host, ':') != NULL)
		return str_fmt(dst, size, "%s@[%s]:%s", a->user, a->host,
		    a->port);
	return str_fmt(dst, size, "%s@%s:%s", a->user, a->host, a->port);
}

/* ---- .netrc ---- */

/*
 * Next token of a .netrc: blank-separated, or a "quoted string" with
 * backslash escapes (as curl reads it). NULL at the end.
 */
static const char *
netrc_token(const char **p, char *tok, size_t size)
{
	const char *s = *p;
	size_t o = 0;

	s += strspn(s, " \t\r\n");
	if (*s == '\0')
		return NULL;
	if (*s == '"') {
		for (s++; *s != '\0' && *s != '"'; s++) {
			if (*s == '\\' && s[1] != '\0')
				s++;
			if (o + 1 < size)
				tok[o++] = *s;
		}
		if (*s == '"')
			s++;
	} else {
		for (; *s != '\0' && !strchr(" \t\r\n", *s); s++)
			if (o + 1 < size)
				tok[o++] = *s;
	}
	tok[o] = '\0';
	*p = s;
	return tok;
}

/* The entry of a .netrc being read. */
struct netrc_entry {
	char	 login[ACCOUNT_USER_MAX + 1];
	char	 pw[ACCOUNT_PASS_MAX + 1];
	bool	 machine;	/* for our host, or "default" */
	bool	 have_pw;
};

/* Whether entry e gives a's password. */
static bool
netrc_fits(const struct account *a, const struct netrc_entry *e)
{
	return e->machine && e->have_pw && (a->user[0] == '\0' ||
	    e->login[0] == '\0' || strcmp(e->login, a->user) == 0);
}

/*
 * Read a .netrc whole into *text_r (NUL-terminated, *len_r octets). 1 when
 * read, 0 when there is none we may trust, -1 on error.
 */
static int
netrc_read(const char *path, char **text_r, size_t *len_r, char *err)
{
	struct stat sb;
	char *text;
	size_t got = 0;
	ssize_t n;
	int fd;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		if (errno == ENOENT)
			return 0;
		(void)str_fmt(err, ERR_LEN, "%s: %s", path, strerror(errno));
		return -1;
	}
	if (fstat(fd, &sb) < 0 || !S_ISREG(sb.st_mode)) {
		close(fd);
		return 0;
	}
	/* Like ftp(1): a password file others can read is not trusted. */
	if ((sb.st_mode & 077) != 0 || sb.st_uid != geteuid()) {
		fprintf(stderr, "postino: warning: ignoring %s: readable or "
		    "writable by others, or not yours (chmod 600 it)\n", path);
		close(fd);
		return 0;
	}
	if (sb.st_size > ACCOUNT_FILE_MAX ||
	    (text = malloc((size_t)sb.st_size + 1)) == NULL) {
		(void)str_fmt(err, ERR_LEN, "%s: too large", path);
		close(fd);
		return -1;
	}
	while (got < (size_t)sb.st_size &&
	    (n = read(fd, text + got, (size_t)sb.st_size - got)) > 0)
		got += (size_t)n;
	close(fd);
	text[got] = '\0';
	*text_r = text;
	*len_r = got;
	return 1;
}

/* Find in a .netrc's text the entry for a into e. */
static void
netrc_find(const struct account *a, const char *text, struct netrc_entry *e)
{
	char tok[ACCOUNT_PASS_MAX + 2];
	const char *p = text;

	memset(e, 0, sizeof(*e));
	/* Each turn consumes a token of a bounded text. */
	while (netrc_token(&p, tok, sizeof(tok)) != NULL) {
		if (strcmp(tok, "machine") == 0 ||
		    strcmp(tok, "default") == 0) {
			bool def = tok[0] == 'd';

			/* A complete earlier entry wins. */
			if (netrc_fits(a, e))
				break;
			e->login[0] = e->pw[0] = '\0';
			e->have_pw = false;
			if (def) {
				e->machine = true;
			} else {
				e->machine = netrc_token(&p, tok, sizeof(tok))
				    != NULL && strcasecmp(tok, a->host) == 0;
			}
		} else if (strcmp(tok, "login") == 0) {
			if (netrc_token(&p, tok, sizeof(tok)) != NULL)
				str_copy(e->login, sizeof(e->login), tok);
		} else if (strcmp(tok, "password") == 0) {
			if (netrc_token(&p, tok, sizeof(tok)) != NULL) {
				str_copy(e->pw, sizeof(e->pw), tok);
				e->have_pw = true;
			}
		} else if (strcmp(tok, "account") == 0) {
			(void)netrc_token(&p, tok, sizeof(tok));
		} else if (strcmp(tok, "macdef") == 0) {
			/* A macro runs to the next empty line. */
			const char *m = strstr(p, "\n\n");

			p = m != NULL ? m + 2 : p + strlen(p);
		}
	}
	explicit_bzero(tok, sizeof(tok));
}

int
account_netrc(struct account *a, const char *path, char *pass, size_t size,
    char *err)
{
	struct netrc_entry e;
	char *text = NULL;
	size_t got = 0;
	int rc;

	if ((rc = netrc_read(path, &text, &got, err)) <= 0)
		return rc;
	rc = 0;
	netrc_find(a, text, &e);
	if (netrc_fits(a, &e)) {
		if (a->user[0] == '\0')
			str_copy(a->user, sizeof(a->user), e.login);
		rc = str_copy(pass, size, e.pw) < 0 ? -1 : 1;
		if (rc < 0)
			(void)str_fmt(err, ERR_LEN, "%s: password too long",
			    path);
	}
	explicit_bzero(&e, sizeof(e));
	explicit_bzero(text, got);
	free(text);
	return rc;
}

/* ---- password command and prompt ---- */

/*
 * Run cmd with /bin/sh; the first line of its stdout, without the line
 * end, into out (size > max). what names the secret in errors. 0 or -1.
 */
static int
first_line_of(const char *cmd, const char *what, size_t max, char *out,
    size_t size, char *err)
{
	char *buf = malloc(max + 2);
	size_t got = 0;
	int p[2], status, rc = -1;
	pid_t pid;

	if (buf == NULL) {
		str_copy(err, ERR_LEN, "out of memory");
		return -1;
	}
	if (pipe2(p, O_CLOEXEC) < 0) {
		(void)str_fmt(err, ERR_LEN, "pipe: %s", strerror(errno));
		free(buf);
		return -1;
	}
	pid = fork();
	if (pid < 0) {
		(void)str_fmt(err, ERR_LEN, "fork: %s", strerror(errno));
		close(p[0]);
		close(p[1]);
		free(buf);
		return -1;
	}
	if (pid == 0) {
		if (dup2(p[1], STDOUT_FILENO) < 0)
			_exit(127);
		execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
		_exit(127);
	}
	close(p[1]);
	/* The first line only; the buffer bounds what we read. */
	while (got < max + 1 && memchr(buf, '\n', got) == NULL) {
		ssize_t n = read(p[0], buf + got, max + 1 - got);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	close(p[0]);
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	buf[got] = '\0';
	buf[strcspn(buf, "\r\n")] = '\0';
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		(void)str_fmt(err, ERR_LEN, "%s command failed (%s %d)", what,
		    WIFEXITED(status) ? "exit status" : "signal",
		    WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
	else if (buf[0] == '\0')
		(void)str_fmt(err, ERR_LEN, "%s command printed no %s", what,
		    what);
	else if (strlen(buf) > max || str_copy(out, size, buf) < 0)
		(void)str_fmt(err, ERR_LEN, "%s command printed a %s too long "
		    "(over %zu octets)", what, what, max);
	else
		rc = 0;
	if (rc < 0)
		explicit_bzero(out, size);
	explicit_bzero(buf, max + 2);
	free(buf);
	return rc;
}

int
account_password_command(const char *cmd, char *pass, size_t size,
    char *err)
{
	return first_line_of(cmd, "password", ACCOUNT_PASS_MAX, pass, size,
	    err);
}

int
account_token_command(const char *cmd, char *token, size_t size, char *err)
{
	return first_line_of(cmd, "token", OAUTH_TOKEN_MAX, token, size,
	    err);
}

bool
account_oauth(const struct account *a)
{
	int id = sasl_mechs_lookup(a->auth, strlen(a->auth));

	return id == SASL_MECH_OAUTHBEARER || id == SASL_MECH_XOAUTH2;
}

/* A signal during the prompt: noted, so the echo comes back before it acts. */
static volatile sig_atomic_t prompt_signal;

static void
prompt_catch(int signo)
{
	prompt_signal = signo;
}

int
account_password_prompt(const char *prompt, char *pass, size_t size,
    char *err)
{
	static const int sigs[] = { SIGINT, SIGTERM, SIGHUP, SIGQUIT };
	struct sigaction sa = { .sa_handler = prompt_catch }, saved[4];
	struct termios old, quiet;
	char buf[ACCOUNT_PASS_MAX + 2];
	size_t got = 0;
	int fd, rc = -1;

	fd = open("/dev/tty", O_RDWR | O_CLOEXEC | O_NOCTTY);
	if (fd < 0) {
		str_copy(err, ERR_LEN, "no password: set POSTINO_PASSWORD, "
		    "use ~/.netrc or --password-command (no terminal to ask "
		    "on)");
		return -1;
	}
	if (tcgetattr(fd, &old) < 0) {
		(void)str_fmt(err, ERR_LEN, "/dev/tty: %s", strerror(errno));
		close(fd);
		return -1;
	}
	quiet = old;
	quiet.c_lflag &= ~(tcflag_t)(ECHO | ECHONL);
	quiet.c_lflag |= ICANON;
	(void)!write(fd, prompt, strlen(prompt));
	/* No SA_RESTART: read(2) returns EINTR and the loop ends. */
	sigemptyset(&sa.sa_mask);
	prompt_signal = 0;
	for (size_t i = 0; i < 4; i++)
		(void)sigaction(sigs[i], &sa, &saved[i]);
	if (tcsetattr(fd, TCSAFLUSH, &quiet) < 0) {
		(void)str_fmt(err, ERR_LEN, "/dev/tty: %s", strerror(errno));
		for (size_t i = 0; i < 4; i++)
			(void)sigaction(sigs[i], &saved[i], NULL);
		close(fd);
		return -1;
	}
	while (got < sizeof(buf) - 1 && prompt_signal == 0) {
		ssize_t n = read(fd, buf + got, 1);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0 || buf[got] == '\n')
			break;
		got++;
	}
	buf[got] = '\0';
	(void)tcsetattr(fd, TCSAFLUSH, &old);
	(void)!write(fd, "\n", 1);
	close(fd);
	for (size_t i = 0; i < 4; i++)
		(void)sigaction(sigs[i], &saved[i], NULL);
	if (prompt_signal != 0) {
		/* The terminal echoes again; now the signal does what it does. */
		explicit_bzero(buf, sizeof(buf));
		raise(prompt_signal);
		str_copy(err, ERR_LEN, "interrupted");
		return -1;
	}
	if (got == 0)
		str_copy(err, ERR_LEN, "no password given");
	else if (str_copy(pass, size, buf) < 0)
		str_copy(err, ERR_LEN, "password too long");
	else
		rc = 0;
	explicit_bzero(buf, sizeof(buf));
	return rc;
}

/* The login name when no user was given, like fetchmail. */
static int
default_user(struct account *a, char *err)
{
	struct passwd *pw;

	if (a->user[0] != '\0')
		return 0;
	pw = getpwuid(getuid());
	if (pw == NULL || str_copy(a->user, sizeof(a->user), pw->pw_name) < 0) {
		str_copy(err, ERR_LEN, "no user name: use user@host or --user");
		return -1;
	}
	return 0;
}

int
account_password(struct account *a, char *pass, size_t size, char *err)
{
	const char *env = getenv("POSTINO_PASSWORD"), *home = getenv("HOME");
	char netrc[PATH_MAX], prompt[ACCOUNT_USER_MAX + ACCOUNT_HOST_MAX + 32];
	int rc = 0;

	pass[0] = '\0';
	/* OAuth 2.0: the secret is a token, and only a command gives one. */
	if (account_oauth(a) || a->token_command[0] != '\0') {
		if (!account_oauth(a)) {
			str_copy(err, ERR_LEN, "token-command needs --auth "
			    "oauthbearer or xoauth2");
			return -1;
		}
		if (a->token_command[0] == '\0') {
			(void)str_fmt(err, ERR_LEN, "--auth %s needs a "
			    "token-command (or --token-command)", a->auth);
			return -1;
		}
		if (default_user(a, err) < 0)
			return -1;
		return account_token_command(a->token_command, pass, size,
		    err);
	}
	/* What was asked for on this command line wins. */
	if (a->password_command_cli && a->password_command[0] != '\0') {
		if (default_user(a, err) < 0)
			return -1;
		return account_password_command(a->password_command, pass,
		    size, err);
	}
	if (env != NULL && env[0] != '\0') {
		if (str_copy(pass, size, env) < 0) {
			str_copy(err, ERR_LEN, "POSTINO_PASSWORD too long");
			return -1;
		}
		return default_user(a, err);
	}
	/* The account's own command is more specific than a .netrc. */
	if (a->password_command[0] != '\0') {
		if (default_user(a, err) < 0)
			return -1;
		return account_password_command(a->password_command, pass,
		    size, err);
	}
	if (home != NULL && home[0] == '/' &&
	    str_fmt(netrc, sizeof(netrc), "%s/.netrc", home) == 0)
		rc = account_netrc(a, netrc, pass, size, err);
	if (rc < 0)
		return -1;
	if (default_user(a, err) < 0)
		return -1;
	if (rc > 0)
		return 0;
	(void)str_fmt(prompt, sizeof(prompt), "Password for %s@%s: ", a->user,
	    a->host);
	return account_password_prompt(prompt, pass, size, err);
}
