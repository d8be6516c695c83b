/*
 * postinod.conf: "key = value" lines, '#' comments. Every key, its default
 * and its bounds are in one table in config.c and documented in
 * etc/postinod.conf; an unknown key or a bad value stops start-up with
 * "file:line: reason".
 */
#ifndef POSTINO_CONFIG_H
#define POSTINO_CONFIG_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/socket.h>

#include "../auth/sasl_mechs.h"
#include "../lib/cidr.h"
#include "../lib/net.h"
#include "../lib/str.h"

#define CONFIG_LISTEN_MAX	16
/* LMTP listeners: one unix socket for the MTA, maybe a port or two. */
#define CONFIG_LMTP_LISTEN_MAX	4
#define CONFIG_VALUE_MAX	PATH_MAX

struct config_listen {
	struct sockaddr_storage	ss;
	socklen_t		len;
	char			text[NET_ADDR_LEN];
	bool			proxy;	/* "ADDR:PORT proxy": PROXY protocol first */
};

struct config {
	struct config_listen listen[CONFIG_LISTEN_MAX];
	unsigned int	 nlisten;
	struct config_listen listen_tls[CONFIG_LISTEN_MAX];	/* implicit TLS */
	unsigned int	 nlisten_tls;
	char		 proxy_trusted_networks[1024];	/* as written */
	struct cidr_list proxy_trusted;			/* parsed */
	/* Front-ends that speak for many clients (webmail, a proxy) */
	char		 login_trusted_networks[1024];	/* as written */
	struct cidr_list login_trusted;			/* parsed */
	char		 tls_cert[CONFIG_VALUE_MAX];	/* "" = no TLS */
	char		 tls_key[CONFIG_VALUE_MAX];
	char		 tls_min_version[16];
	bool		 auth_allow_cleartext;
	bool		 auth_cleartext_loopback;	/* loopback counts as secure */
	char		 auth_mechanisms[128];		/* SASL offered, upper-case */
	unsigned int	 auth_mechs;	/* the same: SASL_MECH_BIT()s */
	/* OAUTHBEARER, XOAUTH2: JWT access tokens (src/auth/jwt.h) */
	char		 oauth2_jwt_key[CONFIG_VALUE_MAX];	/* "" = none */
	char		 oauth2_issuer[256];		/* "" = not checked */
	char		 oauth2_audience[256];		/* "" = not checked */
	char		 oauth2_user_claim[64];		/* "sub", "email" */
	char		 oauth2_token_command[CONFIG_VALUE_MAX];	/* "" = none */
	char		 mailbox[CONFIG_VALUE_MAX];	/* "maildir:PATH", "mbox:PATH", "pgsql:" */
	char		 passwd_file[CONFIG_VALUE_MAX];
	char		 passdb[16];			/* "passwd-file", "pgsql" */
	char		 pgsql_conninfo[CONFIG_VALUE_MAX];
	char		 pgsql_password_file[CONFIG_VALUE_MAX];	/* "" = none */
	unsigned int	 pgsql_pool;	/* idle mail store connections kept */
	char		 password_query[1024];		/* AUTH_PGSQL_QUERY_MAX */
	char		 mail_user[64];			/* "" = none */
	char		 mail_privileged_group[64];	/* "" = none */
	char		 login_user[64];
	char		 auth_user[64];			/* the auth role's user */
	char		 login_chroot[CONFIG_VALUE_MAX];
	char		 ready_file[CONFIG_VALUE_MAX];	/* "" = none */
	char		 greeting[128];
	unsigned int	 login_workers;
	unsigned int	 mail_workers;			/* per uid */
	unsigned int	 idle_timeout;			/* seconds */
	unsigned int	 login_timeout;			/* seconds */
	unsigned int	 auth_fail_delay_ms;
	unsigned int	 auth_workers;			/* 0 = one per CPU */
	unsigned int	 auth_cache_size;	/* users per auth worker, 0 = off */
	unsigned int	 auth_cache_ttl;		/* seconds */
	unsigned int	 auth_queue_per_network;	/* waiting per network */
	unsigned int	 auth_penalty_prefix4;		/* bits of an IPv4 network */
	unsigned int	 auth_penalty_prefix6;		/* bits of an IPv6 network */
	unsigned int	 max_bad_commands;
	unsigned int	 max_sessions;			/* per login worker */
	unsigned int	 login_delay;			/* seconds, 0 = off */
	bool		 apop;
	bool		 transcript;
	bool		 debug;
	bool		 mboxrd;
	unsigned int	 mbox_lock_wait;
	unsigned int	 mbox_dotlock_stale;
	unsigned int	 max_messages;
	uint64_t	 max_mailbox_size;		/* 0 = no limit */
	char		 pop3_uidl_format[64];		/* Dovecot's, for its uidlist */
	unsigned int	 max_connections_per_ip;	/* 0 = no limit */
	unsigned int	 max_connections_per_net;	/* 0 = no limit */
	unsigned int	 connection_prefix_ipv4;	/* bits of a "net" */
	unsigned int	 connection_prefix_ipv6;
	/* LMTP delivery (src/deliver/, DESIGN.md "Delivery") */
	struct config_listen lmtp_listen[CONFIG_LMTP_LISTEN_MAX];	/* ss is a
					   sockaddr_un for "unix:PATH" */
	unsigned int	 nlmtp_listen;
	unsigned int	 lmtp_socket_mode;
	char		 lmtp_socket_user[64];		/* "" = the master's */
	char		 lmtp_socket_group[64];
	bool		 lmtp_allow_remote;		/* non-loopback ADDR:PORT */
	char		 lmtp_hostname[256];		/* "" = gethostname() */
	uint64_t	 lmtp_max_message_size;
	unsigned int	 lmtp_max_recipients;
	char		 lmtp_local_domains[1024];	/* space-separated */
	char		 recipient_delimiter[16];	/* "" = none */
	bool		 lmtp_return_path;
	bool		 lmtp_delivered_to;
	bool		 mail_crlf;			/* store CRLF line ends */
	uint64_t	 lmtp_quota_bytes;		/* 0 = none */
	unsigned int	 lmtp_quota_messages;		/* 0 = none */
	bool		 lmtp_quota_temporary;		/* 452 4.2.2, not 552 */
	unsigned int	 lmtp_user_concurrency;		/* 0 = no limit */
};

/* Defaults, then the file. 0, or -1 with "file:line: reason" in err. */
int config_load(struct config *cf, const char *path, char *err);

/*
 * Prepare the configured mail store for this process (mailbox = pgsql:
 * reads pgsql_password_file, so call it before dropping privileges).
 * 0, or -1 with err.
 */
int config_store_setup(const struct config *cf, char *err);

struct auth_ops;
struct auth_db;
/*
 * Open the configured password database (passdb: passwd-file or pgsql),
 * the one way every program looks users up: postinod's auth role and
 * postino-deliver. passwd_path: the passwd-file to open (NULL: the
 * configured one); unused for pgsql. 0, or -1 with err naming the key.
 */
int config_passdb_open(const struct config *cf, const char *passwd_path,
    const struct auth_ops **ops_r, struct auth_db **db_r, char *err);

/* Print every key's name, one a line, in table order (--config-keys). */
void config_print_keys(FILE *out);

/*
 * The checks that need the system's user database and file system, run by
 * -t and by the master at start-up: no gid 0 for mail (mail_user's primary
 * group, mail_privileged_group); and, when started as root (as_root), a
 * login_user that exists, is not root and shares no uid with mail
 * (mail_user or a uid in the passwd-file), and a login_chroot that only
 * root can change and that is empty. 0, or -1 with err.
 */
int config_check(const struct config *cf, bool as_root, char *err);

/* Print every key with its current value, for -t. */
void config_dump(const struct config *cf);

#endif
