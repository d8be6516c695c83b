/*
 * libFuzzer target for the SASL server mechanisms as the auth role runs
 * them on a login worker's relayed responses: PLAIN, LOGIN, CRAM-MD5,
 * SCRAM-SHA-256, SCRAM-SHA-256-PLUS, OAUTHBEARER and XOAUTH2 (with a key
 * made at start, whose private half no input has: no token verifies), on
 * a plaintext or a TLS channel.
 * Input: one byte picks the mechanism and channel, then up to
 * FUZZ_STEPS responses, each a 2-octet big-endian length and its octets.
 * Properties: no crash, no overflow, a challenge never longer than its
 * buffer, no SASL_OK for a user whose password the input cannot know,
 * and every exchange ends (no step after the last is CONTINUE forever).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/pem.h>

#include "../../src/auth/auth.h"
#include "../../src/auth/jwt.h"
#include "../../src/auth/sasl.h"

#define FUZZ_STEPS	6

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const mechs[] = {
	"PLAIN", "LOGIN", "CRAM-MD5", "SCRAM-SHA-256", "SCRAM-SHA-256-PLUS",
	"OAUTHBEARER", "XOAUTH2",
};
#define N_MECHS	(sizeof(mechs) / sizeof(mechs[0]))

/*
 * One {PLAIN} user (CRAM-MD5, and SCRAM with derived keys), one SCRAM
 * user, one cheap crypt(3) user, one locked one. The SCRAM secret is of
 * the password "pencil" (RFC 7677's example); "ghost" has a random one.
 */
static const char passwd[] =
    "plain:{PLAIN}tanstaaf::::/home/plain::\n"
    "user:{SCRAM-SHA-256}4096,W22ZaJ0SNY7soEsUEjb6gQ==,"
    "WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=,"
    "wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=::::/home/user::\n"
    "crypt:{SHA256-CRYPT}$5$rounds=1000$abcdefgh$"
    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx::::/home/crypt::\n"
    "locked:!::::/home/locked::\n";

static struct auth_db *db;
static const struct auth_ops *ops;
static struct jwt_key *key;

static void
init(void)
{
	char path[64], err[ERR_LEN];
	int fd = memfd_create("fuzz-passwd", 0);

	if (fd < 0 || write(fd, passwd, sizeof(passwd) - 1) !=
	    (ssize_t)(sizeof(passwd) - 1))
		abort();
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	{
		EVP_PKEY *pk = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
		BIO *bio = BIO_new(BIO_s_mem());
		char *pem;
		long len;

		if (pk == NULL || bio == NULL ||
		    PEM_write_bio_PUBKEY(bio, pk) != 1 ||
		    (len = BIO_get_mem_data(bio, &pem)) <= 0 ||
		    jwt_key_from_pem(&key, pem, (size_t)len, err) < 0)
			abort();
		BIO_free(bio);
		EVP_PKEY_free(pk);
	}
	ops = auth_lookup("passwd-file");
	if (ops == NULL || ops->open(&db, path, err) < 0) {
		fprintf(stderr, "fuzz_sasl: %s\n", err);
		abort();
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const struct sasl_channel tls_cb = {
		.tls = true, .end_point_len = 32, .exporter_len = 32,
	};
	struct sasl_server srv = { 0 };
	struct sasl_session *s = NULL;
	unsigned char out[SASL_CHALLENGE_MAX];
	struct auth_user u;
	enum sasl_step step = SASL_CONTINUE;
	size_t outlen, pos = 1;

	if (db == NULL)
		init();
	if (size < 1)
		return 0;
	srv.db = db;
	srv.ops = ops;
	srv.flags = SASL_ALLOW_PLAINTEXT | SASL_ALLOW_CRAM_MD5 |
	    SASL_ALLOW_OAUTH;
	srv.oauth_key = key;
	srv.oauth_policy.user_claim = "sub";
	if (sasl_start(&s, &srv, mechs[(data[0] & 7) % N_MECHS],
	    data[0] & 8 ? &tls_cb : NULL) < 0)
		return 0;
	if (data[0] & 16)
		(void)sasl_set_nonce(s, "fixed-nonce");
	for (int i = 0; i < FUZZ_STEPS && step == SASL_CONTINUE; i++) {
		const unsigned char *in = NULL;
		size_t len = 0;

		/* The first response may be absent (AUTH without one). */
		if (i > 0 || !(data[0] & 32)) {
			if (pos + 2 > size)
				break;
			len = (size_t)data[pos] << 8 | data[pos + 1];
			pos += 2;
			if (len > size - pos)
				len = size - pos;
			if (len > SASL_RESPONSE_MAX)
				len = SASL_RESPONSE_MAX;
			in = data + pos;
			pos += len;
		}
		outlen = 0;
		step = sasl_step(s, in, len, out, sizeof(out), &outlen, &u);
		if (outlen > sizeof(out))
			abort();
		/* Only the {PLAIN} secret can be guessed from the input. */
		if (step == SASL_OK && strcmp(u.name, "plain") != 0 &&
		    strcmp(u.name, "user") != 0)
			abort();
		/* No input holds a token signed by our key. */
		if (step == SASL_OK && (data[0] & 7) % N_MECHS >= 5)
			abort();
	}
	/* After a final verdict the exchange only says SASL_BAD. */
	if (step != SASL_CONTINUE && sasl_step(s, (const unsigned char *)"",
	    0, out, sizeof(out), &outlen, &u) != SASL_BAD)
		abort();
	sasl_free(&s);
	return 0;
}
