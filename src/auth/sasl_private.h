/*
 * Shared by sasl.c (dispatch, PLAIN, LOGIN, CRAM-MD5), sasl_scram.c and
 * sasl_oauth.c;
 * nothing outside src/auth/sasl*.c includes it.
 */
#ifndef POSTINO_SASL_PRIVATE_H
#define POSTINO_SASL_PRIVATE_H

#include "sasl.h"

typedef enum sasl_step sasl_mech_step_fn(struct sasl_session *s,
    const unsigned char *in, size_t inlen, unsigned char *out,
    size_t outsize, size_t *outlen_r, struct auth_user *user_r);

struct sasl_mech {
	enum sasl_mech_id	 id;
	bool			 plus;		/* SCRAM-SHA-256-PLUS */
	sasl_mech_step_fn	*step;
};

/* SCRAM's combined nonce: the client's part and our 32 characters. */
#define SASL_SCRAM_NONCE_MAX	(SASL_SCRAM_CNONCE_MAX + SASL_NONCE_MAX)

struct sasl_session {
	const struct sasl_server *srv;
	const struct sasl_mech	*mech;
	struct sasl_channel	 ch;		/* all zero on plaintext */
	unsigned int		 state;		/* the mechanism's own */
	bool			 started;	/* sasl_step() was called */
	bool			 done;		/* a final result was given */
	bool			 pending;	/* SASL_PENDING: awaits resume */
	char			 user[AUTH_USER_MAX + 1];
	/* SCRAM server nonce, or the CRAM-MD5 challenge. */
	char			 nonce[SASL_NONCE_MAX + 1];

	/* SCRAM: what the proof is checked against. */
	bool			 known;		/* keys are a real user's */
	struct auth_scram	 keys;
	struct auth_user	 found;
	const unsigned char	*cb;		/* into ch; NULL: none */
	size_t			 cblen;
	size_t			 firstlen;	/* client-first-message */
	size_t			 gs2len;	/* its gs2-header prefix */
	char			 first[SASL_RESPONSE_MAX];
	size_t			 sflen;
	char			 server_first[SASL_CHALLENGE_MAX];
	size_t			 fullnoncelen;
	char			 fullnonce[SASL_SCRAM_NONCE_MAX];
	unsigned char		 server_sig[AUTH_SCRAM_KEY_LEN];
};

/* The SCRAM server nonce: SASL_SCRAM_SNONCE_RAW random octets in base64. */
int sasl_scram_init(struct sasl_session *s);
/* OAUTHBEARER and XOAUTH2 (sasl_oauth.c). */
enum sasl_step sasl_oauth_step(struct sasl_session *s,
    const unsigned char *in, size_t inlen, unsigned char *out,
    size_t outsize, size_t *outlen_r, struct auth_user *user_r);
enum sasl_step sasl_scram_step(struct sasl_session *s,
    const unsigned char *in, size_t inlen, unsigned char *out,
    size_t outsize, size_t *outlen_r, struct auth_user *user_r);

#endif
