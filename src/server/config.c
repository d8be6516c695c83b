#include "config.h"

#include "../store/maildir_uidlist.h"
#include "../store/store_pgsql.h"
#include "../auth/auth_pgsql.h"
#include "limits.h"

#include <dirent.h>
#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

enum config_type {
	CT_STR, CT_UINT, CT_U64, CT_BOOL, CT_LISTEN, CT_LISTEN_TLS, CT_MAILBOX,
	CT_TLS_VERSION, CT_MECHS, CT_UIDL_FORMAT, CT_CIDRS, CT_PASSDB, CT_LMTP_LISTEN, CT_MODE,
};

struct config_key {
	const char	*name;
	enum config_type type;
	size_t		 off;
	size_t		 size;		/* CT_STR: buffer size */
	uint64_t	 min, max;	/* CT_UINT, CT_U64; CT_CIDRS: min is the
					   offset of the parsed list */
	const char	*def;
};

#define KEY(n, t, f, lo, hi, d) \
	{ #n, t, offsetof(struct config, f), sizeof(((struct config *)0)->f), lo, hi, d }

/* The bounds and their reasons are documented in etc/postinod.conf. */
static const struct config_key config_keys[] = {
	KEY(listen, CT_LISTEN, listen, 0, 0, NULL),
	KEY(listen_tls, CT_LISTEN_TLS, listen_tls, 0, 0, NULL),
	KEY(proxy_trusted_networks, CT_CIDRS, proxy_trusted_networks,
	    offsetof(struct config, proxy_trusted), 0, ""),
	KEY(login_trusted_networks, CT_CIDRS, login_trusted_networks,
	    offsetof(struct config, login_trusted), 0, ""),
	KEY(tls_cert, CT_STR, tls_cert, 0, 0, ""),
	KEY(tls_key, CT_STR, tls_key, 0, 0, ""),
	KEY(tls_min_version, CT_TLS_VERSION, tls_min_version, 0, 0, "TLSv1.2"),
	KEY(auth_allow_cleartext, CT_BOOL, auth_allow_cleartext, 0, 0, "no"),
	KEY(auth_cleartext_loopback, CT_BOOL, auth_cleartext_loopback, 0, 0,
	    "yes"),
	KEY(auth_mechanisms, CT_MECHS, auth_mechanisms, 0, 0, "PLAIN LOGIN"),
	KEY(oauth2_jwt_key, CT_STR, oauth2_jwt_key, 0, 0, ""),
	KEY(oauth2_issuer, CT_STR, oauth2_issuer, 0, 0, ""),
	KEY(oauth2_audience, CT_STR, oauth2_audience, 0, 0, ""),
	KEY(oauth2_user_claim, CT_STR, oauth2_user_claim, 0, 0, "sub"),
	KEY(oauth2_token_command, CT_STR, oauth2_token_command, 0, 0, ""),
	KEY(mailbox, CT_MAILBOX, mailbox, 0, 0, "maildir:~/Maildir"),
	KEY(passwd_file, CT_STR, passwd_file, 0, 0, "/etc/postino/passwd"),
	KEY(passdb, CT_PASSDB, passdb, 0, 0, "passwd-file"),
	KEY(pgsql_conninfo, CT_STR, pgsql_conninfo, 0, 0, ""),
	KEY(pgsql_password_file, CT_STR, pgsql_password_file, 0, 0, ""),
	KEY(pgsql_pool, CT_UINT, pgsql_pool, 0, STORE_PGSQL_POOL_MAX, "4"),
	KEY(password_query, CT_STR, password_query, 0, 0,
	    "SELECT password, uid, gid, home FROM users WHERE name = $1"),
	KEY(mail_user, CT_STR, mail_user, 0, 0, ""),
	KEY(mail_privileged_group, CT_STR, mail_privileged_group, 0, 0, ""),
	KEY(login_user, CT_STR, login_user, 0, 0, "postino"),
	KEY(auth_user, CT_STR, auth_user, 0, 0, "postino-auth"),
	KEY(login_chroot, CT_STR, login_chroot, 0, 0, "/run/postino/empty"),
	KEY(ready_file, CT_STR, ready_file, 0, 0, ""),
	KEY(greeting, CT_STR, greeting, 0, 0, "Postino ready"),
	KEY(login_workers, CT_UINT, login_workers, 0, 64, "0"),
	KEY(mail_workers, CT_UINT, mail_workers, 0, 64, "0"),
	KEY(idle_timeout, CT_UINT, idle_timeout, 1, 86400, "600"),
	KEY(login_timeout, CT_UINT, login_timeout, 1, 3600, "180"),
	/* The first delay, doubled per failure up to the same bound. */
	KEY(auth_fail_delay_ms, CT_UINT, auth_fail_delay_ms, 0, PENALTY_MAX_MS,
	    "1000"),
	KEY(auth_workers, CT_UINT, auth_workers, 0, 64, "0"),
	/* Off by default: the cache keeps a fast-to-test password digest. */
	KEY(auth_cache_size, CT_UINT, auth_cache_size, 0, AUTH_CACHE_SIZE_MAX,
	    "0"),
	KEY(auth_cache_ttl, CT_UINT, auth_cache_ttl, AUTH_CACHE_TTL_MIN,
	    AUTH_CACHE_TTL_MAX, "3600"),
	KEY(auth_queue_per_network, CT_UINT, auth_queue_per_network, 1, 1024,
	    "16"),
	KEY(auth_penalty_prefix4, CT_UINT, auth_penalty_prefix4, 8, 32, "24"),
	KEY(auth_penalty_prefix6, CT_UINT, auth_penalty_prefix6, 16, 128, "48"),
	KEY(max_bad_commands, CT_UINT, max_bad_commands, 1, 1000, "20"),
	KEY(max_sessions, CT_UINT, max_sessions, 1, 1000000, "20000"),
	KEY(login_delay, CT_UINT, login_delay, 0, 86400, "0"),
	KEY(apop, CT_BOOL, apop, 0, 0, "no"),
	KEY(transcript, CT_BOOL, transcript, 0, 0, "no"),
	KEY(debug, CT_BOOL, debug, 0, 0, "no"),
	KEY(mboxrd, CT_BOOL, mboxrd, 0, 0, "yes"),
	KEY(mbox_lock_wait, CT_UINT, mbox_lock_wait, 0, 60, "5"),
	KEY(mbox_dotlock_stale, CT_UINT, mbox_dotlock_stale, 10, 86400, "300"),
	KEY(max_messages, CT_UINT, max_messages, 1, 10000000, "1000000"),
	KEY(max_mailbox_size, CT_U64, max_mailbox_size, 0, UINT64_MAX, "0"),
	KEY(pop3_uidl_format, CT_UIDL_FORMAT, pop3_uidl_format, 0, 0,
	    MAILDIR_UIDLIST_FORMAT_DEFAULT),
	KEY(max_connections_per_ip, CT_UINT, max_connections_per_ip, 0,
	    1000000, "200"),
	KEY(max_connections_per_net, CT_UINT, max_connections_per_net, 0,
	    1000000, "1000"),
	KEY(connection_prefix_ipv4, CT_UINT, connection_prefix_ipv4, 1, 32,
	    "24"),
	KEY(connection_prefix_ipv6, CT_UINT, connection_prefix_ipv6, 1, 128,
	    "48"),
	KEY(lmtp_listen, CT_LMTP_LISTEN, lmtp_listen, 0, 0, NULL),
	KEY(lmtp_socket_mode, CT_MODE, lmtp_socket_mode, 0, 0777, "0660"),
	KEY(lmtp_socket_user, CT_STR, lmtp_socket_user, 0, 0, ""),
	KEY(lmtp_socket_group, CT_STR, lmtp_socket_group, 0, 0, ""),
	KEY(lmtp_allow_remote, CT_BOOL, lmtp_allow_remote, 0, 0, "no"),
	KEY(lmtp_hostname, CT_STR, lmtp_hostname, 0, 0, ""),
	KEY(lmtp_max_message_size, CT_U64, lmtp_max_message_size, 1024,
	    1024ull * 1024 * 1024, "52428800"),
	KEY(lmtp_max_recipients, CT_UINT, lmtp_max_recipients, 1, 10000, "100"),
	KEY(lmtp_local_domains, CT_STR, lmtp_local_domains, 0, 0, ""),
	KEY(recipient_delimiter, CT_STR, recipient_delimiter, 0, 0, "+"),
	KEY(lmtp_return_path, CT_BOOL, lmtp_return_path, 0, 0, "yes"),
	KEY(lmtp_delivered_to, CT_BOOL, lmtp_delivered_to, 0, 0, "yes"),
	KEY(mail_crlf, CT_BOOL, mail_crlf, 0, 0, "no"),
	KEY(lmtp_quota_bytes, CT_U64, lmtp_quota_bytes, 0, UINT64_MAX, "0"),
	KEY(lmtp_quota_messages, CT_UINT, lmtp_quota_messages, 0, 10000000,
	    "0"),
	KEY(lmtp_quota_temporary, CT_BOOL, lmtp_quota_temporary, 0, 0, "no"),
	KEY(lmtp_user_concurrency, CT_UINT, lmtp_user_concurrency, 0, 1000,
	    "10"),
	{ NULL, CT_STR, 0, 0, 0, 0, NULL }
};

/* mailbox: a layout and a path template without "." or "..". */
static int
set_mailbox(const struct config_key *k, const char *v, void *p,
    char *why)
{
	if (strncmp(v, "maildir:", 8) != 0 && strncmp(v, "mbox:", 5) != 0 &&
	    strncmp(v, "pgsql:", 6) != 0) {
		str_copy(why, ERR_LEN, "expected maildir:PATH, mbox:PATH "
		    "or pgsql:[NAME]");
		return -1;
	}
	/* pgsql: alone names each mailbox after its user. */
	if (strchr(v, ':')[1] == '\0' && strncmp(v, "pgsql:", 6) != 0) {
		str_copy(why, ERR_LEN, "empty path");
		return -1;
	}
	/*
	 * The mail role refuses an expanded path with a "." or ".."
	 * component (a user "x@.." must not climb out of %d); one in
	 * the template itself would fail every login, so say it now.
	 */
	for (const char *c = strchr(v, ':') + 1; *c != '\0';) {
		size_t n = strcspn(c, "/");

		if ((n == 1 && c[0] == '.') ||
		    (n == 2 && c[0] == '.' && c[1] == '.')) {
			str_copy(why, ERR_LEN, "'.' or '..' in the path");
			return -1;
		}
		c += n + (c[n] == '/');
	}
	if (str_copy(p, k->size, v) < 0) {
		str_copy(why, ERR_LEN, "path too long");
		return -1;
	}
	return 0;
}

/* A decimal number within the key's bounds. */
static int
set_number(const struct config_key *k, const char *v, void *p,
    char *why)
{
	uint64_t n;

	if (str_parse_u64(v, &n) < 0 || n < k->min || n > k->max) {
		str_fmt(why, ERR_LEN, "expected a number from %llu to %llu",
		    (unsigned long long)k->min, (unsigned long long)k->max);
		return -1;
	}
	if (k->type == CT_UINT)
		*(unsigned int *)p = (unsigned int)n;
	else
		*(uint64_t *)p = n;
	return 0;
}

/* listen, listen_tls: one more "ADDR:PORT [proxy]". */
static int
set_listen(struct config *cf, const struct config_key *k,
    const char *v, char *why)
{
	struct config_listen *l = k->type == CT_LISTEN ? cf->listen :
	    cf->listen_tls;
	unsigned int *n = k->type == CT_LISTEN ? &cf->nlisten :
	    &cf->nlisten_tls;

	if (*n == CONFIG_LISTEN_MAX) {
		str_fmt(why, ERR_LEN, "at most %d %s lines",
		    CONFIG_LISTEN_MAX, k->name);
		return -1;
	}
	char addr[NET_ADDR_LEN + 8];
	const char *sp = strpbrk(v, " \t");

	l += *n;
	memset(l, 0, sizeof(*l));
	/* "ADDR:PORT proxy": the PROXY protocol header comes first. */
	if (sp != NULL) {
		const char *w = sp + strspn(sp, " \t");

		if (strcmp(w, "proxy") != 0) {
			str_copy(why, ERR_LEN, "expected ADDR:PORT "
			    "[proxy]");
			return -1;
		}
		if ((size_t)(sp - v) >= sizeof(addr)) {
			str_copy(why, ERR_LEN, "address too long");
			return -1;
		}
		memcpy(addr, v, (size_t)(sp - v));
		addr[sp - v] = '\0';
		l->proxy = true;
	} else if (str_copy(addr, sizeof(addr), v) < 0) {
		str_copy(why, ERR_LEN, "address too long");
		return -1;
	}
	if (net_parse_addr(addr, &l->ss, &l->len, why) < 0)
		return -1;
	str_copy(l->text, sizeof(l->text), addr);
	(*n)++;
	return 0;
}

/* auth_mechanisms: known names, kept upper-case and as a bitmask. */
static int
set_mechs(struct config *cf, const struct config_key *k, const char *v,
    void *p, char *why)
{
	char out[128] = "";
	const char *w = v;

	/* Unknown names fail here, with the list of known ones. */
	if (sasl_mechs_parse(v, &cf->auth_mechs, why) < 0)
		return -1;
	while (*w != '\0') {
		size_t n = strcspn(w, " \t"), o = strlen(out);

		if (n == 0) {
			w++;
			continue;
		}
		if (str_fmt(out + o, sizeof(out) - o, "%s%s",
		    o > 0 ? " " : "",
		    sasl_mechs_name(sasl_mechs_lookup(w, n))) < 0) {
			str_copy(why, ERR_LEN, "too long");
			return -1;
		}
		w += n;
	}
	return str_copy(p, k->size, out);
}

/* lmtp_listen: one more "unix:/PATH" or "ADDR:PORT". */
static int
set_lmtp_listen(struct config *cf, const char *v, char *why)
{
	struct config_listen *l = &cf->lmtp_listen[cf->nlmtp_listen];

	if (cf->nlmtp_listen == CONFIG_LMTP_LISTEN_MAX) {
		str_fmt(why, ERR_LEN, "at most %d lmtp_listen lines",
		    CONFIG_LMTP_LISTEN_MAX);
		return -1;
	}
	memset(l, 0, sizeof(*l));
	if (strncmp(v, "unix:", 5) == 0) {
		struct sockaddr_un *sun = (struct sockaddr_un *)&l->ss;

		if (v[5] != '/' || str_copy(sun->sun_path,
		    sizeof(sun->sun_path), v + 5) < 0) {
			str_fmt(why, ERR_LEN, "expected unix:/PATH of "
			    "at most %zu octets",
			    sizeof(sun->sun_path) - 1);
			return -1;
		}
		sun->sun_family = AF_UNIX;
		l->len = sizeof(*sun);
	} else if (net_parse_addr(v, &l->ss, &l->len, why) < 0)
		return -1;
	(void)str_copy(l->text, sizeof(l->text), v);	/* for logs */
	cf->nlmtp_listen++;
	return 0;
}

/* An octal file mode such as 0660. */
static int
set_mode(const struct config_key *k, const char *v, void *p,
    char *why)
{
	unsigned long m;
	char *end;

	if (v[0] != '0' || strspn(v, "01234567") != strlen(v) ||
	    strlen(v) > 4 || (m = strtoul(v, &end, 8)) > k->max) {
		str_copy(why, ERR_LEN, "expected an octal mode such as "
		    "0660");
		return -1;
	}
	*(unsigned int *)p = (unsigned int)m;
	return 0;
}

static int
config_set(struct config *cf, const struct config_key *k, const char *v,
    char *why)
{
	void *p = (char *)cf + k->off;

	switch (k->type) {
	case CT_STR:
		if (str_copy(p, k->size, v) < 0) {
			str_fmt(why, ERR_LEN, "value longer than %zu octets",
			    k->size - 1);
			return -1;
		}
		return 0;
	case CT_MAILBOX:
		return set_mailbox(k, v, p, why);
	case CT_UINT:
	case CT_U64:
		return set_number(k, v, p, why);
	case CT_BOOL:
		if (strcmp(v, "yes") == 0)
			*(bool *)p = true;
		else if (strcmp(v, "no") == 0)
			*(bool *)p = false;
		else {
			str_copy(why, ERR_LEN, "expected yes or no");
			return -1;
		}
		return 0;
	case CT_LISTEN:
	case CT_LISTEN_TLS:
		return set_listen(cf, k, v, why);
	case CT_MECHS:
		return set_mechs(cf, k, v, p, why);
	case CT_PASSDB:
		if (strcmp(v, "passwd-file") != 0 && strcmp(v, "pgsql") != 0) {
			str_copy(why, ERR_LEN, "expected passwd-file or pgsql");
			return -1;
		}
		return str_copy(p, k->size, v);
	case CT_CIDRS:
		if (cidr_parse_list((struct cidr_list *)((char *)cf + k->min),
		    v, why) < 0)
			return -1;
		if (str_copy(p, k->size, v) < 0) {
			str_copy(why, ERR_LEN, "too long");
			return -1;
		}
		return 0;
	case CT_LMTP_LISTEN:
		return set_lmtp_listen(cf, v, why);
	case CT_MODE:
		return set_mode(k, v, p, why);
	case CT_UIDL_FORMAT:
		if (!maildir_uidlist_format_ok(v)) {
			str_copy(why, ERR_LEN, "expected %u, %v, %f (with a "
			    "width and X for hex, as %08Xu), %% and printable "
			    "text, at most 63 octets");
			return -1;
		}
		return str_copy(p, k->size, v);
	case CT_TLS_VERSION:
		if (strcmp(v, "TLSv1.2") != 0 && strcmp(v, "TLSv1.3") != 0) {
			str_copy(why, ERR_LEN, "expected TLSv1.2 or TLSv1.3");
			return -1;
		}
		return str_copy(p, k->size, v);
	}
	return -1;
}

static char *
trim(char *s)
{
	char *e;

	while (*s == ' ' || *s == '\t')
		s++;
	e = s + strlen(s);
	while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\n' ||
	    e[-1] == '\r'))
		*--e = '\0';
	return s;
}

/*
 * LMTP has no authentication (RFC 2033 sec. 5): anyone who reaches it can
 * deliver to any user, so by default only this host may.
 */
static bool
config_loopback(const struct sockaddr_storage *ss)
{
	if (ss->ss_family == AF_UNIX)
		return true;
	if (ss->ss_family == AF_INET)
		return (ntohl(((const struct sockaddr_in *)ss)->sin_addr.s_addr)
		    >> 24) == 127;
	if (ss->ss_family == AF_INET6) {
		const struct in6_addr *a =
		    &((const struct sockaddr_in6 *)ss)->sin6_addr;

		return IN6_IS_ADDR_LOOPBACK(a) ||
		    (IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 127);
	}
	return false;
}

/* Every "key = value" line of fp; seen: listen, listen_tls given. */
static int
config_read(struct config *cf, FILE *fp, const char *path, bool seen[2],
    char *err)
{
	char line[CONFIG_VALUE_MAX + 128], why[ERR_LEN];
	unsigned int lineno = 0;

	while (fgets(line, sizeof(line), fp) != NULL) {
		const struct config_key *k;
		char *key, *val, *eq;

		lineno++;
		if (strchr(line, '\n') == NULL && !feof(fp)) {
			str_fmt(err, ERR_LEN, "%s:%u: line too long", path, lineno);
			return -1;
		}
		key = trim(line);
		if (*key == '#' || *key == '\0')
			continue;
		eq = strchr(key, '=');
		if (eq == NULL) {
			str_fmt(err, ERR_LEN, "%s:%u: expected key = value",
			    path, lineno);
			return -1;
		}
		*eq = '\0';
		key = trim(key);
		val = trim(eq + 1);
		for (k = config_keys; k->name; k++)
			if (strcmp(k->name, key) == 0)
				break;
		if (k->name == NULL) {
			str_fmt(err, ERR_LEN, "%s:%u: unknown key '%.64s'",
			    path, lineno, key);
			return -1;
		}
		if (k->type == CT_LISTEN)
			seen[0] = true;
		if (k->type == CT_LISTEN_TLS)
			seen[1] = true;
		if (config_set(cf, k, val, why) < 0) {
			str_fmt(err, ERR_LEN, "%s:%u: %s: %s", path, lineno,
			    key, why);
			return -1;
		}
	}
	if (ferror(fp)) {
		str_fmt(err, ERR_LEN, "%s: read error", path);
		return -1;
	}
	return 0;
}

/* The OAuth 2.0 keys: one validator, and a usable one. */
static int
config_oauth(const struct config *cf, const char *path, char *err)
{
	if ((cf->auth_mechs & (SASL_MECH_BIT(SASL_MECH_OAUTHBEARER) |
	    SASL_MECH_BIT(SASL_MECH_XOAUTH2))) && cf->oauth2_jwt_key[0] ==
	    '\0' && cf->oauth2_token_command[0] == '\0') {
		str_fmt(err, ERR_LEN, "%s: auth_mechanisms OAUTHBEARER and "
		    "XOAUTH2 need oauth2_jwt_key or oauth2_token_command (a "
		    "token validator)", path);
		return -1;
	}
	if (cf->oauth2_jwt_key[0] != '\0' &&
	    cf->oauth2_token_command[0] != '\0') {
		str_fmt(err, ERR_LEN, "%s: oauth2_jwt_key and "
		    "oauth2_token_command: set one", path);
		return -1;
	}
	if (cf->oauth2_token_command[0] != '\0' &&
	    cf->oauth2_token_command[0] != '/') {
		str_fmt(err, ERR_LEN, "%s: oauth2_token_command: an absolute "
		    "path (the program is run directly, not by a shell)", path);
		return -1;
	}
	if (cf->oauth2_user_claim[0] == '\0') {
		str_fmt(err, ERR_LEN, "%s: oauth2_user_claim: empty", path);
		return -1;
	}
	return 0;
}

/* What no single key can check: keys that go together or exclude. */
static int
config_combined(const struct config *cf, const char *path, char *err)
{
	char why[ERR_LEN];

	if ((cf->tls_cert[0] == '\0') != (cf->tls_key[0] == '\0')) {
		str_fmt(err, ERR_LEN, "%s: tls_cert and tls_key go together",
		    path);
		return -1;
	}
	if (config_oauth(cf, path, err) < 0)
		return -1;
	if (cf->nlisten_tls > 0 && cf->tls_cert[0] == '\0') {
		str_fmt(err, ERR_LEN, "%s: listen_tls needs tls_cert and "
		    "tls_key", path);
		return -1;
	}
	for (unsigned int i = 0; i < cf->nlisten + cf->nlisten_tls; i++) {
		const struct config_listen *l = i < cf->nlisten ?
		    &cf->listen[i] : &cf->listen_tls[i - cf->nlisten];

		/* A proxy listener trusting nobody would refuse everyone. */
		if (l->proxy && cf->proxy_trusted.n == 0) {
			str_fmt(err, ERR_LEN, "%s: listen %s proxy needs "
			    "proxy_trusted_networks", path, l->text);
			return -1;
		}
	}
	if (cf->nlisten + cf->nlisten_tls > CONFIG_LISTEN_MAX) {
		str_fmt(err, ERR_LEN, "%s: at most %d listen and listen_tls "
		    "lines together", path, CONFIG_LISTEN_MAX);
		return -1;
	}
	if (strcmp(cf->passdb, "pgsql") == 0 ||
	    strncmp(cf->mailbox, "pgsql:", 6) == 0) {
		struct auth_pgsql_conf pc = {
			.conninfo = cf->pgsql_conninfo,
			.password_file = cf->pgsql_password_file,
			.query = cf->password_query,
		};

		if (cf->pgsql_conninfo[0] == '\0') {
			str_fmt(err, ERR_LEN, "%s: %s needs pgsql_conninfo",
			    path, strcmp(cf->passdb, "pgsql") == 0 ?
			    "passdb = pgsql" : "mailbox = pgsql:");
			return -1;
		}
		if (auth_pgsql_check(&pc, why) < 0) {
			str_fmt(err, ERR_LEN, "%s: %s", path, why);
			return -1;
		}
	}
	for (unsigned int i = 0; i < cf->nlmtp_listen; i++) {
		if (!cf->lmtp_allow_remote &&
		    !config_loopback(&cf->lmtp_listen[i].ss)) {
			str_fmt(err, ERR_LEN, "%s: lmtp_listen = %s is not a "
			    "loopback address or unix socket (set "
			    "lmtp_allow_remote = yes to allow it)", path,
			    cf->lmtp_listen[i].text);
			return -1;
		}
	}
	return 0;
}

int
config_load(struct config *cf, const char *path, char *err)
{
	char why[ERR_LEN];
	bool seen[2] = { false, false };
	FILE *fp;
	long ncpu;

	memset(cf, 0, sizeof(*cf));
	for (const struct config_key *k = config_keys; k->name; k++) {
		if (k->def != NULL && config_set(cf, k, k->def, why) < 0) {
			str_fmt(err, ERR_LEN, "default of %s: %s", k->name, why);
			return -1;
		}
	}
	fp = fopen(path, "re");
	if (fp == NULL) {
		str_fmt(err, ERR_LEN, "%s: %s", path, strerror(errno));
		return -1;
	}
	if (config_read(cf, fp, path, seen, err) < 0) {
		fclose(fp);
		return -1;
	}
	fclose(fp);
	if (!seen[0]) {
		config_set(cf, &config_keys[0], "*:110", why);
		config_set(cf, &config_keys[0], "[::]:110", why);
	}
	/* RFC 8314: with a certificate, implicit TLS on 995 unless told otherwise. */
	if (!seen[1] && cf->tls_cert[0] != '\0') {
		config_set(cf, &config_keys[1], "*:995", why);
		config_set(cf, &config_keys[1], "[::]:995", why);
	}
	if (config_combined(cf, path, err) < 0)
		return -1;
	ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	ncpu = ncpu < 1 ? 1 : ncpu > 64 ? 64 : ncpu;
	if (cf->login_workers == 0)
		cf->login_workers = (unsigned int)ncpu;
	if (cf->mail_workers == 0)
		cf->mail_workers = (unsigned int)ncpu;
	if (cf->auth_workers == 0)
		cf->auth_workers = (unsigned int)ncpu;
	return 0;
}

int
config_store_setup(const struct config *cf, char *err)
{
	struct store_pgsql_conf pc = {
		.conninfo = cf->pgsql_conninfo,
		.password_file = cf->pgsql_password_file,
		.pool = cf->pgsql_pool,
	};

	if (strncmp(cf->mailbox, "pgsql:", 6) != 0)
		return 0;
	return store_pgsql_configure(&pc, err);
}

int
config_passdb_open(const struct config *cf, const char *passwd_path,
    const struct auth_ops **ops_r, struct auth_db **db_r, char *err)
{
	char why[ERR_LEN];

	*db_r = NULL;
	if (strcmp(cf->passdb, "pgsql") == 0) {
		struct auth_pgsql_conf pc = {
			.conninfo = cf->pgsql_conninfo,
			.password_file = cf->pgsql_password_file,
			.query = cf->password_query,
		};

		/* Each process has its own connection (auth_pgsql.h). */
		auth_pgsql_configure(&pc);
		*ops_r = &auth_pgsql_ops;
		if ((*ops_r)->open(db_r, NULL, why) < 0) {
			str_fmt(err, ERR_LEN, "passdb pgsql: %s", why);
			return -1;
		}
		return 0;
	}
	*ops_r = auth_lookup("passwd-file");
	if (*ops_r == NULL) {
		str_copy(err, ERR_LEN, "passwd_file: no backend");
		return -1;
	}
	if ((*ops_r)->open(db_r, passwd_path != NULL ? passwd_path :
	    cf->passwd_file, why) < 0) {
		str_fmt(err, ERR_LEN, "passwd_file: %s", why);
		return -1;
	}
	return 0;
}

void
config_print_keys(FILE *out)
{
	for (const struct config_key *k = config_keys; k->name; k++)
		fprintf(out, "%s\n", k->name);
}

void
config_dump(const struct config *cf)
{
	for (const struct config_key *k = config_keys; k->name; k++) {
		const void *p = (const char *)cf + k->off;

		switch (k->type) {
		case CT_LISTEN:
			for (unsigned int i = 0; i < cf->nlisten; i++)
				printf("listen = %s%s\n", cf->listen[i].text,
				    cf->listen[i].proxy ? " proxy" : "");
			break;
		case CT_LISTEN_TLS:
			for (unsigned int i = 0; i < cf->nlisten_tls; i++)
				printf("listen_tls = %s%s\n",
				    cf->listen_tls[i].text,
				    cf->listen_tls[i].proxy ? " proxy" : "");
			break;
		case CT_LMTP_LISTEN:
			for (unsigned int i = 0; i < cf->nlmtp_listen; i++) {
				const struct config_listen *l =
				    &cf->lmtp_listen[i];

				if (l->ss.ss_family == AF_UNIX)
					printf("lmtp_listen = unix:%s\n",
					    ((const struct sockaddr_un *)
					    &l->ss)->sun_path);
				else
					printf("lmtp_listen = %s\n", l->text);
			}
			break;
		case CT_MODE:
			printf("%s = 0%o\n", k->name, *(const unsigned int *)p);
			break;
		case CT_TLS_VERSION:
		case CT_UIDL_FORMAT:
		case CT_MECHS:
		case CT_CIDRS:
		case CT_PASSDB:
		case CT_STR:
		case CT_MAILBOX:
			printf("%s = %s\n", k->name, (const char *)p);
			break;
		case CT_UINT:
			printf("%s = %u\n", k->name, *(const unsigned int *)p);
			break;
		case CT_U64:
			printf("%s = %llu\n", k->name,
			    (unsigned long long)*(const uint64_t *)p);
			break;
		case CT_BOOL:
			printf("%s = %s\n", k->name, *(const bool *)p ? "yes" : "no");
			break;
		}
	}
}

/*
 * A directory a login worker is locked into must be one only root can
 * change, up to /, or a compromised worker's files could appear in it, and
 * empty, or it would give the worker something to read (OpenSSH's
 * ChrootDirectory rule). A parent writable by others is accepted only with
 * the sticky bit (/tmp): there nobody but root can rename root's entry.
 */
static int
check_chroot(const char *dir, char *err)
{
	char path[CONFIG_VALUE_MAX];
	struct stat st;
	DIR *d;
	struct dirent *de;
	char *slash;
	bool self = true;

	if (dir[0] != '/') {
		str_fmt(err, ERR_LEN, "login_chroot %s: not an absolute path",
		    dir);
		return -1;
	}
	/* Symbolic links (/var/run) are judged by where they lead. */
	if (realpath(dir, path) == NULL &&
	    str_copy(path, sizeof(path), dir) < 0) {
		str_copy(err, ERR_LEN, "login_chroot: path too long");
		return -1;
	}
	for (;;) {
		if (lstat(path[0] == '\0' ? "/" : path, &st) < 0) {
			/* The master creates a missing login_chroot. */
			if (errno != ENOENT || !self) {
				str_fmt(err, ERR_LEN, "login_chroot: %s: %s",
				    path, strerror(errno));
				return -1;
			}
		} else if (!S_ISDIR(st.st_mode)) {
			str_fmt(err, ERR_LEN, "login_chroot: %s is not a "
			    "directory", path);
			return -1;
		} else if (st.st_uid != 0 || ((st.st_mode & 022) != 0 &&
		    (self || (st.st_mode & S_ISVTX) == 0))) {
			str_fmt(err, ERR_LEN, "login_chroot: %s must be owned "
			    "by root and writable by nobody else", path);
			return -1;
		}
		if (path[0] == '\0')
			break;
		slash = strrchr(path, '/');
		*slash = '\0';
		self = false;
	}
	d = opendir(dir);
	if (d == NULL) {
		if (errno == ENOENT)
			return 0;
		str_fmt(err, ERR_LEN, "login_chroot %s: %s", dir,
		    strerror(errno));
		return -1;
	}
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
			break;
	}
	closedir(d);
	if (de != NULL) {
		str_fmt(err, ERR_LEN, "login_chroot %s is not empty", dir);
		return -1;
	}
	return 0;
}

/* Whether the passwd-file gives any account this uid (field 3). */
static bool
passwd_file_has_uid(const char *path, uid_t uid)
{
	char line[4096];
	bool found = false;
	FILE *fp = fopen(path, "re");

	if (fp == NULL)
		return false;	/* the auth role reports it */
	while (!found && fgets(line, sizeof(line), fp) != NULL) {
		char *f = line, *end;
		uint32_t v;

		for (int i = 0; i < 2 && f != NULL; i++)
			f = strchr(f, ':') ? strchr(f, ':') + 1 : NULL;
		if (f == NULL)
			continue;
		end = f + strcspn(f, ":\n");
		*end = '\0';
		found = str_parse_u32(f, &v) == 0 && v == uid;
	}
	fclose(fp);
	return found;
}

/*
 * The auth role's user (issue 10, finding 8): not root, not the login
 * role's (which parses network input) nor a mail uid, and able to read
 * passwd_file, which it re-reads when it changes.
 */
/* The permission bits st grants uid with primary group gid (no ACLs). */
static bool
may_access(const struct stat *st, uid_t uid, gid_t gid, mode_t u, mode_t g,
    mode_t o)
{
	if (st->st_uid == uid)
		return (st->st_mode & u) != 0;
	if (st->st_gid == gid)
		return (st->st_mode & g) != 0;
	return (st->st_mode & o) != 0;
}

static int
check_auth_user(const struct config *cf, uid_t login_uid, bool have_mail_uid,
    uid_t mail_uid, char *err)
{
	struct passwd *pw = getpwnam(cf->auth_user);
	char dir[PATH_MAX], *slash;
	struct stat st;
	uid_t uid;
	gid_t gid;

	if (pw == NULL) {
		str_fmt(err, ERR_LEN, "auth_user: no such user '%s'",
		    cf->auth_user);
		return -1;
	}
	uid = pw->pw_uid;
	gid = pw->pw_gid;
	if (uid == 0 || gid == 0) {
		str_fmt(err, ERR_LEN, "auth_user '%s' has uid or group 0",
		    cf->auth_user);
		return -1;
	}
	if (uid == login_uid || (have_mail_uid && uid == mail_uid) ||
	    passwd_file_has_uid(cf->passwd_file, uid)) {
		str_fmt(err, ERR_LEN, "auth_user '%s' (uid %u) is also the "
		    "login_user or reads mail: give the auth role a user of "
		    "its own", cf->auth_user, (unsigned)uid);
		return -1;
	}
	if (strcmp(cf->passdb, "passwd-file") != 0 ||
	    stat(cf->passwd_file, &st) < 0)
		return 0;	/* the auth role reports it */
	if (!may_access(&st, uid, gid, S_IRUSR, S_IRGRP, S_IROTH)) {
		str_fmt(err, ERR_LEN, "passwd_file %s is not readable by "
		    "auth_user '%s': chgrp it to group %u and chmod 640",
		    cf->passwd_file, cf->auth_user, (unsigned)gid);
		return -1;
	}
	/*
	 * The auth role works in the file's directory (authd.c), so that one
	 * must let it look the file up; the ones above need not.
	 */
	if (str_copy(dir, sizeof(dir), cf->passwd_file) < 0 ||
	    (slash = strrchr(dir, '/')) == NULL)
		return 0;
	*slash = '\0';
	if (stat(dir[0] != '\0' ? dir : "/", &st) < 0)
		return 0;
	if (!may_access(&st, uid, gid, S_IXUSR, S_IXGRP, S_IXOTH)) {
		str_fmt(err, ERR_LEN, "passwd_file: auth_user '%s' cannot "
		    "search %s: chgrp it to group %u", cf->auth_user,
		    dir[0] != '\0' ? dir : "/", (unsigned)gid);
		return -1;
	}
	return 0;
}

int
config_check(const struct config *cf, bool as_root, char *err)
{
	struct passwd *pw;
	struct group *gr;
	uid_t mail_uid = 0, login_uid;
	bool have_mail_uid = false;

	if (cf->mail_user[0] != '\0') {
		if ((pw = getpwnam(cf->mail_user)) == NULL) {
			str_fmt(err, ERR_LEN, "mail_user: no such user '%s'",
			    cf->mail_user);
			return -1;
		}
		/* Group root opens most of the system; mail never needs it. */
		if (pw->pw_uid == 0 || pw->pw_gid == 0) {
			str_fmt(err, ERR_LEN, "mail_user '%s' has uid or group "
			    "0: mail is never read as root", cf->mail_user);
			return -1;
		}
		mail_uid = pw->pw_uid;
		have_mail_uid = true;
	}
	if (cf->mail_privileged_group[0] != '\0') {
		if ((gr = getgrnam(cf->mail_privileged_group)) == NULL) {
			str_fmt(err, ERR_LEN, "mail_privileged_group: no such "
			    "group '%s'", cf->mail_privileged_group);
			return -1;
		}
		if (gr->gr_gid == 0) {
			str_fmt(err, ERR_LEN, "mail_privileged_group '%s' is "
			    "group 0: mail is never read as root",
			    cf->mail_privileged_group);
			return -1;
		}
	}
	if (!as_root)
		return 0;
	if ((pw = getpwnam(cf->login_user)) == NULL) {
		str_fmt(err, ERR_LEN, "login_user: no such user '%s'",
		    cf->login_user);
		return -1;
	}
	login_uid = pw->pw_uid;
	if (login_uid == 0 || pw->pw_gid == 0) {
		str_fmt(err, ERR_LEN, "login_user '%s' has uid or group 0",
		    cf->login_user);
		return -1;
	}
	/*
	 * A login worker parses network input; sharing a uid with mail would
	 * let a compromised one read, or signal, the mail workers.
	 */
	if ((have_mail_uid && mail_uid == login_uid) ||
	    passwd_file_has_uid(cf->passwd_file, login_uid)) {
		str_fmt(err, ERR_LEN, "login_user '%s' (uid %u) also reads "
		    "mail: give the login role a user of its own",
		    cf->login_user, (unsigned)login_uid);
		return -1;
	}
	if (check_auth_user(cf, login_uid, have_mail_uid, mail_uid, err) < 0)
		return -1;
	return check_chroot(cf->login_chroot, err);
}
