/*
 * Server side of SASL (RFC 4422) for POP3 AUTH (RFC 5034): PLAIN (RFC 4616),
 * LOGIN (draft-murchison-sasl-login), CRAM-MD5 (RFC 2195), SCRAM-SHA-256
 * and SCRAM-SHA-256-PLUS (RFC 5802, RFC 7677, channel bindings RFC 5929
 * tls-server-end-point and RFC 9266 tls-exporter), OAUTHBEARER (RFC 7628)
 * and XOAUTH2 with JWT access tokens checked against a public key
 * (jwt.h). A refused token gets RFC 7628 sec. 3.2.2's error challenge,
 * {"status":"invalid_token",...}; the client's answer to it (0x01, or an
 * empty line from XOAUTH2 clients) ends the exchange with SASL_FAIL, a
 * failed login like a wrong password.
 *
 * Runs in the auth role, the only process that sees secrets: the login
 * worker relays decoded client responses and the TLS channel-binding data,
 * and gets back challenges and a verdict.
 *
 * Built on OpenSSL 3 primitives (EVP digests, HMAC, PKCS5_PBKDF2_HMAC,
 * RAND_bytes), not on GNU SASL or Cyrus SASL: one crypto dependency for the
 * whole server, no plugin loading in the role that holds the secrets, and
 * full control of channel binding, whose data comes from our own TLS layer
 * across a process boundary.
 *
 * One exchange, as the POP3 server drives it (RFC 5034 sec. 4):
 *
 *	AUTH mech [initial-response]
 *	  sasl_start(); the mechanism is unknown or not offered: "-ERR".
 *	  sasl_step() with the decoded initial response, or in = NULL when
 *	  the command had none (sasl_decode_response(), initial = true).
 *	SASL_CONTINUE	send "+ " base64(out) ("+ " alone when *outlen_r is
 *			0), read one client line: "*" cancels ("-ERR",
 *			sasl_free()); otherwise decode it and sasl_step()
 *			again with in != NULL (an empty line: inlen 0).
 *	SASL_OK		"+OK": *user_r is the authenticated user.
 *	SASL_FAIL	"-ERR [AUTH]": wrong credentials, unknown user, or a
 *			refused request (proxy authorization, channel-binding
 *			mismatch or downgrade); a failed login attempt.
 *	SASL_BAD	"-ERR": the client broke the mechanism's grammar.
 *			No credential was checked; the exchange ends, the
 *			POP3 session goes on.
 *	SASL_TEMPFAIL	"-ERR [SYS/TEMP]": the database or OpenSSL failed.
 *
 * Only SASL_CONTINUE keeps the exchange alive; after any other result
 * sasl_step() returns SASL_BAD and the caller should sasl_free().
 *
 * Additional data with success (SCRAM's server-final-message) is sent the
 * way RFC 5034 sec. 4 asks: as one more "+ " challenge that the client
 * must answer with an empty line; only then is the result SASL_OK.
 *
 * Unknown users follow every mechanism to its end and fail where a wrong
 * password fails, with the same result and the same work: PLAIN and LOGIN
 * through auth_ops.verify (dummy hash), CRAM-MD5 with an HMAC over an
 * empty secret, SCRAM with a fake salt HMAC(secret, user) (stable for a
 * name, like a real user's) and 4096 iterations, failing at the proof.
 * Every SCRAM exchange, known user or not, costs one PBKDF2 of 4096
 * rounds, so timing tells no stored scheme apart either.
 */
#ifndef POSTINO_SASL_H
#define POSTINO_SASL_H

#include <stdbool.h>
#include <stddef.h>

#include "auth.h"
#include "jwt.h"
#include "sasl_mechs.h"

/*
 * Octets of one decoded client response. RFC 5034 sec. 4 leaves the size
 * to the server. The largest legitimate one is OAUTHBEARER's: a JWT of up
 * to JWT_MAX (7168) octets, Microsoft Entra ID's are 1.5-4 KB, and the
 * user, host and port; SCRAM and PLAIN need under 2 KB. The request that
 * carries it to the auth role must fit one IPC message (IPC_MAX, 8192).
 * 10240 base64 characters.
 */
#define SASL_RESPONSE_MAX	7680
#define SASL_RESPONSE_B64_MAX	((SASL_RESPONSE_MAX + 2) / 3 * 4)
/*
 * Octets of one challenge before base64: "+ " and 504 characters and CRLF
 * stay within RFC 2449 sec. 4's 512-octet response line.
 */
#define SASL_CHALLENGE_MAX	378
/* Channel-binding data: a hash of at most SHA-512 (equals TLS_CB_MAX). */
#define SASL_CB_MAX		64
/* The server's secret for fake SCRAM salts of unknown users. */
#define SASL_SECRET_LEN		32
/*
 * "SCRAM-SHA-256-PLUS SCRAM-SHA-256 CRAM-MD5 PLAIN LOGIN OAUTHBEARER
 * XOAUTH2" (73) and the NUL, with room for one more name.
 */
#define SASL_MECHS_LEN		96
/* SCRAM client nonce: printable, no ','; RFC 5802 sets no bound. */
#define SASL_SCRAM_CNONCE_MAX	128
/* SCRAM server nonce: 24 random octets, 32 base64 characters. */
#define SASL_SCRAM_SNONCE_RAW	24
/* An injected server nonce or CRAM-MD5 challenge (tests only). */
#define SASL_NONCE_MAX		255

enum sasl_step {
	SASL_CONTINUE,
	SASL_OK,
	SASL_FAIL,
	SASL_BAD,
	SASL_TEMPFAIL,
	/*
	 * OAuth with a token command (SASL_OAUTH_EXTERNAL): the token
	 * waits for an outside check. sasl_oauth_pending() gives it; the
	 * verdict goes to sasl_oauth_resume(), which returns what
	 * sasl_step() would have. Never sent to a login worker.
	 */
	SASL_PENDING,
};

enum sasl_flags {
	/* Offer PLAIN and LOGIN without TLS too (as USER/PASS is). */
	SASL_ALLOW_PLAINTEXT	= 1 << 0,
	/* Offer CRAM-MD5: only {PLAIN} users can use it; MD5 is weak. */
	SASL_ALLOW_CRAM_MD5	= 1 << 1,
	/*
	 * Offer OAUTHBEARER and XOAUTH2: a token validator is configured.
	 * Bearer tokens are replayable like passwords: only over TLS,
	 * unless SASL_ALLOW_PLAINTEXT.
	 */
	SASL_ALLOW_OAUTH	= 1 << 2,
	/* OAuth tokens are checked outside (SASL_PENDING), not as JWTs. */
	SASL_OAUTH_EXTERNAL	= 1 << 3,
};

/*
 * The connection the exchange runs on. Binding data the login worker got
 * from tls_channel_binding(); a length of 0 means "not available". Any
 * binding available makes SCRAM-SHA-256-PLUS offered, and a client's "y"
 * flag a downgrade (RFC 5802 sec. 6). A NULL channel is plaintext.
 */
struct sasl_channel {
	bool		 tls;
	size_t		 end_point_len;		/* tls-server-end-point */
	unsigned char	 end_point[SASL_CB_MAX];
	size_t		 exporter_len;		/* tls-exporter */
	unsigned char	 exporter[SASL_CB_MAX];
};

/*
 * What every exchange of one auth role shares; it must outlive them.
 * secret: random, kept for the life of the master and handed to each auth
 * role it starts, so an unknown user's fake salt is as stable as a real
 * user's across auth restarts (a new one after a master restart only
 * changes every fake salt at once). hostname: the domain of CRAM-MD5
 * challenges (NULL or invalid: "postino").
 */
struct sasl_server {
	struct auth_db		*db;
	const struct auth_ops	*ops;
	unsigned int		 flags;		/* enum sasl_flags */
	const char		*hostname;
	unsigned char		 secret[SASL_SECRET_LEN];
	/*
	 * OAUTHBEARER, XOAUTH2 (with SASL_ALLOW_OAUTH): the key tokens must
	 * be signed with, and what their claims must say (now is ignored:
	 * each check takes the time itself).
	 */
	const struct jwt_key	*oauth_key;
	struct jwt_policy	 oauth_policy;
};

struct sasl_session;

/*
 * The mechanisms offered on channel ch (NULL: plaintext) with flags, best
 * first, space-separated, for CAPA's SASL line (RFC 2449 sec. 6.3); the
 * same list sasl_start() accepts. 0, or -1 when size is too small
 * (SASL_MECHS_LEN always suffices).
 */
int sasl_mechanisms(char *buf, size_t size, unsigned int flags,
    const struct sasl_channel *ch);

/*
 * Begin an exchange of mechanism mech (ASCII case-insensitive) on channel
 * ch (copied; NULL: plaintext). 0 with *s_r set; -1 with *s_r NULL and
 * errno ENOENT (mechanism unknown or not offered on this channel), ENOMEM,
 * or EIO (no random numbers).
 */
int sasl_start(struct sasl_session **s_r, const struct sasl_server *srv,
    const char *mech, const struct sasl_channel *ch);

/*
 * Feed one decoded client response: in/inlen (may hold NULs), in = NULL
 * only on the first call when AUTH had no initial response. A challenge
 * goes to out (outsize >= SASL_CHALLENGE_MAX; raw octets, the caller
 * base64-encodes them) with its length in *outlen_r (0 otherwise).
 * *user_r is filled on SASL_OK only and zeroed otherwise.
 */
enum sasl_step sasl_step(struct sasl_session *s, const unsigned char *in,
    size_t inlen, unsigned char *out, size_t outsize, size_t *outlen_r,
    struct auth_user *user_r);

/*
 * After SASL_PENDING: the token (len octets, not NUL-terminated) and the
 * user it must belong to ("" when OAUTHBEARER left the authzid out).
 */
void sasl_oauth_pending(const struct sasl_session *s, const char **token_r,
    size_t *len_r, const char **user_r);

/*
 * The outside check's verdict for a SASL_PENDING exchange: AUTH_OK with
 * owner, the user the token belongs to; AUTH_PERMFAIL (invalid);
 * AUTH_TEMPFAIL (the check could not run). The same results and outputs
 * as sasl_step(); SASL_BAD when nothing was pending.
 */
enum sasl_step sasl_oauth_resume(struct sasl_session *s,
    enum auth_result verdict, const char *owner, unsigned char *out,
    size_t outsize, size_t *outlen_r, struct auth_user *user_r);

/* End an exchange, wiping its secrets; *s becomes NULL. NULL is fine. */
void sasl_free(struct sasl_session **s);

/* The mechanism's name as advertised ("SCRAM-SHA-256"). */
const char *sasl_mech_name(const struct sasl_session *s);

/*
 * The user name the client claimed so far ("" before it sent one), for
 * logs (sanitise it: it is client input), whatever the verdict.
 */
const char *sasl_user(const struct sasl_session *s);

/*
 * Decode one client line (without CRLF) into out (outsize >=
 * SASL_RESPONSE_MAX).
 * initial: the AUTH command's initial-response argument, where "=" means
 * an empty response (RFC 5034 sec. 4); otherwise a continuation line,
 * where an empty line is an empty response and "*" cancels.
 * 0 with *outlen_r set, 1 for a cancel, -1 for bad base64 or a response
 * over SASL_RESPONSE_MAX octets (reply "-ERR" and end the exchange).
 */
int sasl_decode_response(const char *line, size_t linelen, bool initial,
    unsigned char *out, size_t outsize, size_t *outlen_r);

/*
 * Tests only: replace the random part of the next challenge, before the
 * first sasl_step(): the SCRAM server nonce (printable ASCII without ',')
 * or the whole CRAM-MD5 challenge ("<...>"). 0, or -1 if refused.
 */
int sasl_set_nonce(struct sasl_session *s, const char *nonce);

#endif
