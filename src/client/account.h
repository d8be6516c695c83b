/*
 * Which server and mailbox postino talks to, and the password for it.
 *
 * An ACCOUNT argument is an account name from the configuration file, or
 * [pop3://|pop3s://][user@]host[:port] with an IPv6 address in brackets
 * ("pop3://alice@[::1]:1110"); the user may be percent-encoded
 * ("alice%40example.org@host") and the last '@' separates it.
 *
 * The configuration file ($XDG_CONFIG_HOME/postino/config, else
 * ~/.config/postino/config) holds named accounts:
 *
 *	# comment
 *	account work			# starts a block; [A-Za-z0-9._-]+
 *	url pop3s://alice@pop.example.org	# or host/port/user:
 *	host pop.example.org
 *	port 995
 *	user alice
 *	tls implicit			# stls, implicit or no
 *	cafile /etc/ssl/certs/corp.pem
 *	tls-fingerprint AB:CD:...	# SHA-256 of the certificate (pin)
 *	auth scram-sha-256		# force one login method
 *	family 4			# 4, 6 or any
 *	password-command pass show mail/work
 *	token-command oama access alice@example.org	# with auth oauthbearer
 *					# or xoauth2: prints the token
 *	maildir ~/Mail/work		# fetch's default destination,
 *	mbox ~/mbox			# one of these four
 *	mda /usr/bin/procmail -d alice
 *	lmtp unix:/run/dovecot/lmtp	# or HOST:PORT (RFC 2033)
 *	lmtp-recipient alice		# RCPT TO (default: the local user)
 *	default yes			# the account of list/stat/read
 *					# without ACCOUNT (one at most)
 *	keep yes			# leave fetched mail on the server
 *	keep-days 30			# with keep: delete it after 30 days
 *	max-size 10485760		# skip larger messages (k, M, G)
 *	delete-oversized yes		# and delete them on the server
 *	max-messages 500		# at most this many per run
 *	received-header yes		# add a Received: line
 *
 * Passwords never come from the command line or the file itself. Sources,
 * the most specific first: a --password-command given on the command line
 * (password_command_cli), $POSTINO_PASSWORD, the account's
 * password-command in the configuration file (first line of its stdout;
 * exit status 0 required), ~/.netrc ("machine HOST login USER password
 * PASS"; ignored with a warning when others can read it, like ftp(1)),
 * a prompt on /dev/tty with echo off. Only the first source that is set
 * is asked: a failing command is an error, not a reason to try the next.
 *
 * With auth oauthbearer or xoauth2 the secret is an OAuth 2.0 bearer
 * token, and its only source is the token command (--token-command, else
 * the account's token-command): the first line of its stdout, at most
 * OAUTH_TOKEN_MAX octets, exit status 0 required. Refreshers such as
 * oama or mutt_oauth2.py print a fresh token there.
 */
#ifndef POSTINO_ACCOUNT_H
#define POSTINO_ACCOUNT_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../lib/str.h"
#include "limits.h"

/* RFC 1035: a name is at most 253 octets; 255 leaves room for brackets. */
#define ACCOUNT_HOST_MAX	255
/* RFC 2449 sec. 4 lets arguments be 255 octets (postinod's limit too). */
#define ACCOUNT_USER_MAX	255
#define ACCOUNT_PASS_MAX	255
/* What account_password() may fill: a password or a token. */
#define ACCOUNT_SECRET_MAX	OAUTH_TOKEN_MAX
/* 32 octets as hex with a colon between each two: 95 characters. */
#define ACCOUNT_FINGERPRINT_MAX	95
/* "scram-sha-256-plus" is the longest --auth method. */
#define ACCOUNT_AUTH_MAX	32

enum account_tls {
	ACCOUNT_TLS_DEFAULT = 0,	/* stls; implicit for pop3s:// */
	ACCOUNT_TLS_NO,
	ACCOUNT_TLS_STLS,
	ACCOUNT_TLS_IMPLICIT,
};

struct account {
	char			name[ACCOUNT_NAME_MAX + 1]; /* "" for URLs */
	char			user[ACCOUNT_USER_MAX + 1];	/* "" unset */
	char			host[ACCOUNT_HOST_MAX + 1]; /* no brackets */
	char			port[6];			/* "" unset */
	bool			pop3s;		/* scheme was pop3s:// */
	enum account_tls	tls;
	int			family;		/* AF_UNSPEC, AF_INET[6] */
	char			cafile[PATH_MAX];
	/* SHA-256 pin as given ("" unset); checked where it is used. */
	char			tls_fingerprint[ACCOUNT_FINGERPRINT_MAX + 1];
	char			auth[ACCOUNT_AUTH_MAX + 1];	/* "" auto */
	char			password_command[ACCOUNT_CMD_MAX];
	bool			password_command_cli;	/* given as --password-command */
	char			token_command[ACCOUNT_CMD_MAX];	/* "" unset */
	char			maildir[PATH_MAX];
	char			mbox[PATH_MAX];
	char			mda[ACCOUNT_CMD_MAX];
	char			lmtp[PATH_MAX];		/* LMTP address */
	char			lmtp_recipient[ACCOUNT_USER_MAX + 1];
	bool			is_default;
	int			keep;		/* -1 unset, 0 no, 1 yes */
	uint32_t		keep_days;	/* 0: for ever */
	uint64_t		max_size;	/* 0: no limit */
	bool			delete_oversized;
	uint32_t		max_messages;	/* 0: no limit */
	bool			received;	/* add a Received: header */
};

/* Parse a URL-form ACCOUNT into a (zeroed first). 0, or -1 with err. */
int account_parse_url(struct account *a, const char *s, char *err);

/* Parse "stls", "implicit", "no". 0 or -1. */
int account_parse_tls(const char *s, enum account_tls *tls_r);

/* The default configuration file path. 0, or -1 with err. */
int account_config_path(char *path, size_t size, char *err);

/*
 * Fill a from account name in the configuration file at path. 1 found,
 * 0 no such account (or no file), -1 a bad file ("FILE:LINE: why").
 */
int account_load(struct account *a, const char *path, const char *name,
    char *err);

/*
 * The account names of the configuration file at path, in file order,
 * into names (up to max), and the one marked "default yes" into
 * default_name ("" when none). 0 with *n_r (0 when there is no file), or
 * -1 with err (a bad file, more than max accounts, two defaults).
 */
int account_names(const char *path, char (*names)[ACCOUNT_NAME_MAX + 1],
    size_t max, size_t *n_r, char *default_name, char *err);

/* A size with an optional k, M or G suffix (powers of 1024). 0 or -1. */
int account_parse_size(const char *s, uint64_t *r);

/*
 * An ACCOUNT argument: a configured name, else a URL. config may be NULL
 * (no configuration file). 0, or -1 with err.
 */
int account_resolve(struct account *a, const char *arg, const char *config,
    char *err);

/*
 * Defaults after the command line had its say: TLS mode from the scheme,
 * port 110 (995 with implicit TLS).
 */
void account_finish(struct account *a);

/* "user@host:port" (IPv6 in brackets): the key of the state file. */
int account_key(const struct account *a, char *dst, size_t size);

/*
 * Look host (and user, if set) up in a .netrc file. 1 found (pass and,
 * when a->user was empty, a->user filled), 0 not there / no file /
 * ignored for its permissions (warning printed), -1 error.
 */
int account_netrc(struct account *a, const char *path, char *pass,
    size_t size, char *err);

/* Run cmd with /bin/sh, take the first line of its stdout. 0 or -1. */
int account_password_command(const char *cmd, char *pass, size_t size,
    char *err);

/* The same for token-command: a line of up to OAUTH_TOKEN_MAX octets. */
int account_token_command(const char *cmd, char *token, size_t size,
    char *err);

/* Whether a->auth names OAUTHBEARER or XOAUTH2 (any case). */
bool account_oauth(const struct account *a);

/* Ask on /dev/tty with echo off. 0 or -1. */
int account_password_prompt(const char *prompt, char *pass, size_t size,
    char *err);

/*
 * The password from the first source that has one (see above), or for
 * OAuth the token (size ACCOUNT_SECRET_MAX + 1 holds either); fills
 * a->user from .netrc or the login name when still empty. The caller
 * wipes pass with explicit_bzero. 0, or -1 with err (also for a
 * token-command without OAuth or OAuth without one).
 */
int account_password(struct account *a, char *pass, size_t size, char *err);

#endif
