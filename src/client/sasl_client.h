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

#include "../lib/str.h"

/*
 * Octets of one response before base64: SCRAM's client-first with a
 * 255-octet name escaped (=2C, three octets each) and PLAIN with a
 * 255-octet name and password stay below it.
 */
#define SASL_CLIENT_OUT_MAX	1024
/* Channel-binding data: a hash of at most SHA-512 (as TLS_CB_MAX). */
#define SASL_CLIENT_CB_MAX	64
/*
 * RFC 7677 sec. 4: the iteration count SHOULD be at least 4096; a server
 * (or a man in the middle of a plaintext session) asking for fewer would
 * make our proof cheap to attack offline: refused. An upper bound keeps a
 * hostile server from pinning the CPU; PBKDF2 at 10^6 rounds takes well
 * under a second.
 */
#define SASL_CLIENT_SCRAM_ITER_MIN	4096
#define SASL_CLIENT_SCRAM_ITER_MAX	1000000
/* Salt octets we accept; servers use 16 to 32. */
#define SASL_CLIENT_SCRAM_SALT_MAX	128
/* Client nonce: 18 random octets, 24 base64 characters. */
#define SASL_CLIENT_NONCE_RAW	18
/* Nonces (ours injected by tests, or the server's whole one). */
#define SASL_CLIENT_NONCE_MAX	255

enum sasl_client_mech {
	SASL_CLIENT_SCRAM_PLUS,
	SASL_CLIENT_SCRAM,
	SASL_CLIENT_CRAM_MD5,
	SASL_CLIENT_PLAIN,
	SASL_CLIENT_LOGIN,
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
	const char		*pass;	/* the exchange */
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

/* Wipe and free; *s becomes NULL. NULL is fine. */
void sasl_client_free(struct sasl_client **s);

#endif
