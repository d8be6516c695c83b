/*
 * The cryptographic primitives of POP3 and SASL, one copy for the server
 * (src/auth) and the client (src/client): HMAC (RFC 2104) on OpenSSL 3's
 * EVP_MAC, the SCRAM-SHA-256 keys and signatures (RFC 5802 sec. 3, RFC
 * 7677), the APOP digest (RFC 1939 sec. 7), the CRAM-MD5 digest (RFC 2195
 * sec. 2) and the SCRAM nonce grammar. No I/O and no state; every
 * function wipes its own intermediate secrets. Booleans are false only
 * when OpenSSL fails (or, for the predicates, when the input is refused).
 */
#ifndef POSTINO_CRYPTO_H
#define POSTINO_CRYPTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Octets of SHA-256 and so of every SCRAM-SHA-256 key and signature. */
#define CRYPTO_SHA256_LEN	32
/* Hex digits of an MD5 digest: APOP and CRAM-MD5 answers. */
#define CRYPTO_MD5_HEX_LEN	32

/* One piece of a message that is MACed as the concatenation of pieces. */
struct crypto_part {
	const void	*p;
	size_t		 len;
};

/*
 * HMAC-SHA-256(key, parts[0] || ... || parts[n-1]) into out. The SCRAM
 * signatures are this over the AuthMessage's pieces.
 */
bool crypto_hmac_sha256(const void *key, size_t keylen,
    const struct crypto_part *parts, size_t n,
    unsigned char out[CRYPTO_SHA256_LEN]);

/* HMAC-MD5(key, msg) into out (16 octets). */
bool crypto_hmac_md5(const void *key, size_t keylen, const void *msg,
    size_t msglen, unsigned char out[16]);

/* SHA-256(msg) into out. */
bool crypto_sha256(const void *msg, size_t len,
    unsigned char out[CRYPTO_SHA256_LEN]);

/*
 * RFC 5802 sec. 3: SaltedPassword = Hi(pass, salt, iter) (PBKDF2 with
 * HMAC-SHA-256), then ClientKey = HMAC(SaltedPassword, "Client Key"),
 * StoredKey = H(ClientKey), ServerKey = HMAC(SaltedPassword, "Server
 * Key"). client_key_r may be NULL (a server keeps no ClientKey). The
 * caller bounds iter and the lengths; on false every output is wiped.
 */
bool crypto_scram_keys(const char *pass, size_t passlen,
    const unsigned char *salt, size_t saltlen, uint32_t iter,
    unsigned char client_key_r[CRYPTO_SHA256_LEN],
    unsigned char stored_key_r[CRYPTO_SHA256_LEN],
    unsigned char server_key_r[CRYPTO_SHA256_LEN]);

/*
 * Printable ASCII but ',' (RFC 5802 sec. 7, "printable"), 1..max
 * characters: the grammar of a SCRAM nonce, ours or the peer's.
 */
bool crypto_scram_nonce_ok(const char *p, size_t len, size_t max);

/*
 * APOP (RFC 1939 sec. 7): MD5(timestamp secret) in lower-case hex into
 * hex (CRYPTO_MD5_HEX_LEN + 1 with the NUL).
 */
bool crypto_apop_digest(const char *timestamp, const char *secret,
    char hex[CRYPTO_MD5_HEX_LEN + 1]);

/*
 * CRAM-MD5 (RFC 2195 sec. 2): HMAC-MD5(secret, challenge) in lower-case
 * hex into hex. The challenge may hold any octet (the client gets it
 * from the network).
 */
bool crypto_cram_digest(const char *secret, const void *challenge,
    size_t chlen, char hex[CRYPTO_MD5_HEX_LEN + 1]);

/*
 * A peer's MD5 answer (APOP, CRAM-MD5): exactly CRYPTO_MD5_HEX_LEN hex
 * digits at p (len octets), either case, into want in lower case. False
 * for any other length or character.
 */
bool crypto_md5_hex_parse(const char *p, size_t len,
    char want[CRYPTO_MD5_HEX_LEN + 1]);

/*
 * a and b equal, in a time that depends on neither their content nor
 * their lengths (both are hashed first). False also if OpenSSL fails.
 */
bool crypto_secret_equal(const char *a, const char *b);

#endif
