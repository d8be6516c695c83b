/*
 * Client side of SASL (RFC 4422) for POP3 AUTH (RFC 5034): PLAIN (RFC
 * 4616), LOGIN (draft-murchison-sasl-login), CRAM-MD5 (RFC 2195),
 * SCRAM-SHA-256 and SCRAM-SHA-256-PLUS (RFC 5802, RFC 7677; channel
 * bindings RFC 5929 tls-server-end-point, RFC 9266 tls-exporter).
 *
 * No I/O: pop3c drives it, base64 and line handling included. Every
 * server challenge is parsed strictly; the exchange ends at the first
 * thing that does not fit, and nothing secret is sent after a SCRAM
 * server-first message we cannot accept (a weak iteration count, a nonce
 * that does not extend ours).
 *
 * One exchange:
 *	sasl_client_new()
 *	if sasl_client_has_initial(): sasl_client_step(in = NULL) gives the
 *	    initial response
 *	for each "+ " challenge: sasl_client_step(decoded challenge) gives
 *	    the response to send, or a failure
 *	at "+OK": accept it only if sasl_client_done() -- for SCRAM that is
 *	    after the server's signature verified, so a server that skips it
 *	    never gets a session out of us
 *	sasl_client_free()
 */
#ifndef POSTINO_SASL_CLIENT_H
#define POSTINO_SASL_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "../auth/sasl_mechs.h"
#include "../lib/str.h"
#include "limits.h"

/* Channel-binding data: a hash of at most SHA-512 (as TLS_CB_MAX). */
#define SASL_CLIENT_CB_MAX	64
/* Client nonce: 18 random octets, 24 base64 characters. */
#define SASL_CLIENT_NONCE_RAW	18

/* The shared table's ids (sasl_mechs.h): names exist once. */
enum sasl_client_mech {
	SASL_CLIENT_SCRAM_PLUS = SASL_MECH_SCRAM_PLUS,
	SASL_CLIENT_SCRAM = SASL_MECH_SCRAM,
	SASL_CLIENT_CRAM_MD5 = SASL_MECH_CRAM_MD5,
	SASL_CLIENT_PLAIN = SASL_MECH_PLAIN,
	SASL_CLIENT_LOGIN = SASL_MECH_LOGIN,
	SASL_CLIENT_OAUTHBEARER = SASL_MECH_OAUTHBEARER,	/* RFC 7628 */
	SASL_CLIENT_XOAUTH2 = SASL_MECH_XOAUTH2,
};

enum sasl_client_result {
	SASL_CLIENT_CONTINUE,	/* send the response in out */
	SASL_CLIENT_BAD,	/* the server broke the mechanism: err */
	SASL_CLIENT_REFUSED,	/* SCRAM "e=": the server refused: err */
	SASL_CLIENT_MISMATCH,	/* SCRAM: the server signature is wrong */
};

struct sasl_client_params {
	enum sasl_client_mech	 mech;
	const char		*user;	/* kept by pointer: must outlive */
	const char		*pass;	/* the exchange; OAuth: the token */
	/* OAUTHBEARER: the server's name and port (RFC 7628 sec. 3.1). */
	const char		*host;
	const char		*port;
	/*
	 * SCRAM: the channel. cb_type and cb_data for -PLUS ("tls-exporter"
	 * or "tls-server-end-point"). For SCRAM-SHA-256, tls says whether
	 * we could bind (TLS is up) and plus_offered whether the server
	 * offered -PLUS: TLS without -PLUS sends "y" (RFC 5802 sec. 6), so
	 * a server that does offer it detects a downgrade.
	 */
	bool			 tls;
	bool			 plus_offered;
	const char		*cb_type;
	const unsigned char	*cb_data;
	size_t			 cb_len;
	/* Tests only: the SCRAM client nonce; NULL: RAND_bytes. */
	const char		*nonce;
};

struct sasl_client;

/* The mechanism's name in AUTH and CAPA ("SCRAM-SHA-256-PLUS"). */
const char *sasl_client_mech_name(enum sasl_client_mech mech);

/*
 * Start an exchange. 0, or -1 with err: a user or password with a NUL or
 * over 255 octets, -PLUS without binding data, no random numbers, memory.
 */
int sasl_client_new(struct sasl_client **s_r,
    const struct sasl_client_params *p, char *err);

/* Whether the mechanism begins with an initial response (PLAIN, SCRAM). */
bool sasl_client_has_initial(const struct sasl_client *s);

/*
 * The next response: in = NULL for the initial response, else the decoded
 * challenge (may hold NULs). out gets SASL_CLIENT_OUT_MAX octets at most;
 * *outlen_r may be 0 (an empty response). On failure err says why and the
 * exchange is over: every later call fails.
 */
enum sasl_client_result sasl_client_step(struct sasl_client *s,
    const unsigned char *in, size_t inlen, unsigned char *out,
    size_t *outlen_r, char *err);

/*
 * True when our side is complete and "+OK" may end the exchange: PLAIN,
 * CRAM-MD5 and LOGIN once their last response is out, SCRAM once the
 * server signature verified.
 */
bool sasl_client_done(const struct sasl_client *s);

/*
 * OAUTHBEARER and XOAUTH2: when the server answered the token with an
 * error challenge (RFC 7628 sec. 3.2.2, a JSON object), its "status"
 * ("invalid_token"), sanitised; "" otherwise. The step that got the
 * challenge returned the response that ends the exchange (RFC 7628 sec.
 * 3.2.3: a lone 0x01; XOAUTH2: an empty one); the server's "-ERR" follows.
 */
const char *sasl_client_oauth_status(const struct sasl_client *s);

/*
 * The OAUTHBEARER initial response (RFC 7628 sec. 3.1) for user, host,
 * port and token into out (size): "n,a=USER,^Ahost=H^Aport=P^Aauth=Bearer
 * T^A^A", the name escaped as RFC 5801 sec. 4 saslname; host or port NULL
 * leaves that pair out. XOAUTH2: "user=U^Aauth=Bearer T^A^A". The length,
 * or -1 when it does not fit or a field holds a NUL, 0x01 or newline.
 */
ssize_t sasl_client_oauthbearer(unsigned char *out, size_t size,
    const char *user, const char *host, const char *port, const char *token);
ssize_t sasl_client_xoauth2(unsigned char *out, size_t size,
    const char *user, const char *token);

/* Wipe and free; *s becomes NULL. NULL is fine. */
void sasl_client_free(struct sasl_client **s);

#endif
