/*
 * SASL on the passwd-file backend: the RFC 7677 SCRAM-SHA-256 and RFC 2195
 * CRAM-MD5 examples, PLAIN and LOGIN, wrong passwords and unknown users
 * (SCRAM runs to the proof), a table of malformed messages, channel
 * binding for -PLUS and the "y" downgrade rule, response decoding, the
 * new passwd-file scheme, and postino-passwd -s SCRAM-SHA-256.
 *
 * The SCRAM client here is written against OpenSSL directly, not against
 * the library's own helpers, so a shared mistake cannot cancel out.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "testutil.h"
#include "../../src/auth/auth.h"
#include "../../src/auth/auth_hash.h"
#include "../../src/auth/sasl.h"

#define N_ELEM(a)	(sizeof(a) / sizeof((a)[0]))
#define BYTES(s)	(const unsigned char *)(s), sizeof(s) - 1
#define KEY_LEN		32

/* RFC 7677 sec. 3. */
#define R7677_CNONCE	"rOprNGfwEbeRWgbNEkqO"
#define R7677_SNONCE	"%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
#define R7677_SALT	"W22ZaJ0SNY7soEsUEjb6gQ=="
#define R7677_FINAL	"c=biws,r=" R7677_CNONCE R7677_SNONCE \
			",p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
#define R7677_V		"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="

/* RFC 2195 sec. 2. */
#define R2195_CHALLENGE	"<1896.697170952@postoffice.reston.mci.net>"
#define R2195_RESPONSE	"tim b913a602c7eda7a495b4e6e7334d3890"

/* SCRAM-SHA-256 secrets made once; PBKDF2 costs milliseconds. */
static char rfc_user[256], bob_hash[256];

struct fixture {
	char			 dir[64];
	char			 path[128];
	struct sasl_server	 srv;
	struct sasl_session	*s;
	unsigned char		 out[SASL_CHALLENGE_MAX + 1];
	size_t			 outlen;
	struct auth_user	 u;
};

static struct sasl_channel tls_cb = {
	.tls = true,
	.end_point_len = 32,
	.end_point = "end-point hash of our certificat",
	.exporter_len = 32,
	.exporter = "exporter bytes of this TLS sessi",
};

static const struct sasl_channel tls_no_cb = { .tls = true };

static int
group_setup(void **state)
{
	unsigned char salt[64];
	struct auth_scram k;
	char err[ERR_LEN], text[256];
	int n;

	(void)state;
	n = EVP_DecodeBlock(salt, (const unsigned char *)R7677_SALT,
	    sizeof(R7677_SALT) - 1);
	assert_int_equal(n, 18);	/* 16 octets and two of padding */
	assert_int_equal(auth_scram_derive("pencil", 6, 4096, salt, 16, &k), 0);
	assert_int_equal(auth_scram_format(&k, text, sizeof(text)), 0);
	assert_int_equal(snprintf(rfc_user, sizeof(rfc_user),
	    "{SCRAM-SHA-256}%s", text) < (int)sizeof(rfc_user), 1);
	assert_int_equal(auth_hash_make("$6$", 1000, "bob-pass", text,
	    sizeof(text), err), 0);
	assert_int_equal(snprintf(bob_hash, sizeof(bob_hash),
	    "{SHA512-CRYPT}%s", text) < (int)sizeof(bob_hash), 1);
	return 0;
}

static void
write_file(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	size_t len = strlen(text);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, len), (ssize_t)len);
	assert_int_equal(close(fd), 0);
}

/* A new mtime, so a rewrite is seen even within one clock tick. */
static void
bump_mtime(const char *path, time_t when)
{
	struct timespec ts[2] = { { when, 0 }, { when, 0 } };

	assert_int_equal(utimensat(AT_FDCWD, path, ts, 0), 0);
}

static int
setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	char err[ERR_LEN], *text;

	assert_non_null(f);
	assert_int_equal(str_copy(f->dir, sizeof(f->dir),
	    "/tmp/test_sasl.XXXXXX"), 0);
	assert_non_null(mkdtemp(f->dir));
	assert_int_equal(snprintf(f->path, sizeof(f->path), "%s/passwd",
	    f->dir) < (int)sizeof(f->path), 1);
	assert_true(asprintf(&text,
	    "user:%s:1000:1000::/home/user\n"
	    "tim:{PLAIN}tanstaaftanstaaf:1001:1001::/home/tim\n"
	    "alice:{PLAIN}alice pass:1002:1002\n"
	    "bob:%s:1003:1003\n"
	    "we,ird=name:{PLAIN}weird-pass:1004:1004\n"
	    "locked:*:1005:1005\n"
	    "locked-scram:{SCRAM-SHA-256}*:1006:1006\n"
	    "utf8:{PLAIN}p\xc3\xa9:1007:1007\n",
	    rfc_user, bob_hash) > 0);
	write_file(f->path, text);
	free(text);
	f->srv.ops = auth_lookup("passwd-file");
	assert_non_null(f->srv.ops);
	if (f->srv.ops->open(&f->srv.db, f->path, err) < 0)
		fail_msg("open: %s", err);
	f->srv.flags = SASL_ALLOW_CRAM_MD5;
	f->srv.hostname = "postoffice.reston.mci.net";
	memset(f->srv.secret, 0x5a, sizeof(f->srv.secret));
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;

	sasl_free(&f->s);
	assert_null(f->s);
	f->srv.ops->close(&f->srv.db);
	unlink(f->path);
	assert_int_equal(rmdir(f->dir), 0);
	free(f);
	return 0;
}

static void
start(struct fixture *f, const char *mech, const struct sasl_channel *ch)
{
	sasl_free(&f->s);
	if (sasl_start(&f->s, &f->srv, mech, ch) < 0)
		fail_msg("sasl_start %s: %s", mech, strerror(errno));
}

/* One step; the challenge is left NUL-terminated in f->out. */
static enum sasl_step
step(struct fixture *f, const void *in, size_t len)
{
	enum sasl_step r;

	r = sasl_step(f->s, in, len, f->out, sizeof(f->out) - 1, &f->outlen,
	    &f->u);
	assert_true(f->outlen < sizeof(f->out));
	f->out[f->outlen] = '\0';
	if (r != SASL_CONTINUE)
		assert_int_equal(f->outlen, 0);
	if (r != SASL_OK)
		assert_string_equal(f->u.name, "");
	return r;
}

static enum sasl_step
step_str(struct fixture *f, const char *in)
{
	return step(f, in, in != NULL ? strlen(in) : 0);
}

/* ---- an independent SCRAM-SHA-256 client ------------------------------ */

static void
b64(char *dst, const void *src, size_t len)
{
	EVP_EncodeBlock((unsigned char *)dst, src, (int)len);
}

static void
hmac(const void *key, size_t keylen, const void *data, size_t len,
    unsigned char out[KEY_LEN])
{
	unsigned int n = 0;

	assert_non_null(HMAC(EVP_sha256(), key, (int)keylen, data, len, out,
	    &n));
	assert_int_equal(n, KEY_LEN);
}

/*
 * From server-first sf, the client-final message for pass into final, and
 * the server-final message a real server must answer with into v.
 */
static void
client_final(const char *pass, const char *gs2, const unsigned char *cb,
    size_t cblen, const char *bare, const char *sf, char *final,
    size_t finalsize, char *v, size_t vsize)
{
	unsigned char salt[128], salted[KEY_LEN], ck[KEY_LEN], sk[KEY_LEN];
	unsigned char svk[KEY_LEN], sig[KEY_LEN], cbind[512];
	char nonce[512], salt64[256], cb64[1024], proof64[64], am[4096];
	char without[2048];
	unsigned int iter, n = 0;
	size_t saltlen, gs2len = strlen(gs2);
	int got;

	got = sscanf(sf, "r=%511[^,],s=%255[^,],i=%u", nonce, salt64, &iter);
	assert_int_equal(got, 3);
	saltlen = (size_t)EVP_DecodeBlock(salt, (unsigned char *)salt64,
	    (int)strlen(salt64));
	for (char *p = salt64 + strlen(salt64); p > salt64 && p[-1] == '=';
	    p--)
		saltlen--;
	assert_int_equal(PKCS5_PBKDF2_HMAC(pass, (int)strlen(pass), salt,
	    (int)saltlen, (int)iter, EVP_sha256(), KEY_LEN, salted), 1);
	hmac(salted, KEY_LEN, "Client Key", 10, ck);
	assert_int_equal(EVP_Digest(ck, KEY_LEN, sk, &n, EVP_sha256(), NULL),
	    1);
	hmac(salted, KEY_LEN, "Server Key", 10, svk);
	memcpy(cbind, gs2, gs2len);
	if (cblen > 0)
		memcpy(cbind + gs2len, cb, cblen);
	b64(cb64, cbind, gs2len + cblen);
	assert_true(snprintf(without, sizeof(without), "c=%s,r=%s", cb64,
	    nonce) < (int)sizeof(without));
	assert_true(snprintf(am, sizeof(am), "%s,%s,%s", bare, sf, without) <
	    (int)sizeof(am));
	hmac(sk, KEY_LEN, am, strlen(am), sig);
	for (size_t i = 0; i < KEY_LEN; i++)
		sig[i] ^= ck[i];
	b64(proof64, sig, KEY_LEN);
	assert_true(snprintf(final, finalsize, "%s,p=%s", without, proof64) <
	    (int)finalsize);
	hmac(svk, KEY_LEN, am, strlen(am), sig);
	b64(proof64, sig, KEY_LEN);
	assert_true(snprintf(v, vsize, "v=%s", proof64) < (int)vsize);
}

/*
 * A whole SCRAM exchange as a client: name is already escaped. Returns the
 * first result that is not SASL_CONTINUE; a server-final must carry the
 * ServerSignature this client computed.
 */
static enum sasl_step
scram(struct fixture *f, const char *mech, const struct sasl_channel *ch,
    const char *gs2, const unsigned char *cb, size_t cblen, const char *name,
    const char *pass)
{
	char bare[512], first[1024], final[1024], v[128];
	enum sasl_step r;

	start(f, mech, ch);
	assert_true(snprintf(bare, sizeof(bare), "n=%s,r=%s", name,
	    "fyko+d2lbbFgONRv9qkxdawL") < (int)sizeof(bare));
	assert_true(snprintf(first, sizeof(first), "%s%s", gs2, bare) <
	    (int)sizeof(first));
	if ((r = step_str(f, first)) != SASL_CONTINUE)
		return r;
	client_final(pass, gs2, cb, cblen, bare, (char *)f->out, final,
	    sizeof(final), v, sizeof(v));
	if ((r = step_str(f, final)) != SASL_CONTINUE)
		return r;
	assert_string_equal((char *)f->out, v);
	return step(f, "", 0);
}

static enum sasl_step
scram_plain(struct fixture *f, const char *name, const char *pass)
{
	return scram(f, "SCRAM-SHA-256", NULL, "n,,", NULL, 0, name, pass);
}

/* ---- mechanisms offered --------------------------------------------- */

static void
test_mechanisms_follow_channel_and_flags(void **state)
{
	static const struct {
		unsigned int			 flags;
		const struct sasl_channel	*ch;
		const char			*want;
	} cases[] = {
		{ 0, NULL, "SCRAM-SHA-256" },
		{ SASL_ALLOW_PLAINTEXT, NULL, "SCRAM-SHA-256 PLAIN LOGIN" },
		{ SASL_ALLOW_CRAM_MD5, NULL, "SCRAM-SHA-256 CRAM-MD5" },
		{ 0, &tls_no_cb, "SCRAM-SHA-256 PLAIN LOGIN" },
		{ SASL_ALLOW_CRAM_MD5 | SASL_ALLOW_PLAINTEXT, &tls_cb,
		    "SCRAM-SHA-256-PLUS SCRAM-SHA-256 CRAM-MD5 PLAIN LOGIN" },
	};
	char buf[SASL_MECHS_LEN];

	(void)state;
	for (size_t i = 0; i < N_ELEM(cases); i++) {
		assert_int_equal(sasl_mechanisms(buf, sizeof(buf),
		    cases[i].flags, cases[i].ch), 0);
		assert_string_equal(buf, cases[i].want);
	}
	assert_int_equal(sasl_mechanisms(buf, 20, SASL_ALLOW_CRAM_MD5,
	    &tls_cb), -1);
	assert_string_equal(buf, "");
}

static void
test_start_takes_only_what_is_offered(void **state)
{
	struct fixture *f = *state;
	static const struct {
		const char			*mech;
		const struct sasl_channel	*ch;
	} refused[] = {
		{ "SCRAM-SHA-1", &tls_cb }, { "GSSAPI", &tls_cb },
		{ "", &tls_cb }, { "SCRAM-SHA-256 ", &tls_cb },
		{ "SCRAM-SHA-256-PLUS", NULL },
		{ "SCRAM-SHA-256-PLUS", &tls_no_cb },
		{ "PLAIN", NULL }, { "LOGIN", NULL },
	};

	for (size_t i = 0; i < N_ELEM(refused); i++) {
		errno = 0;
		assert_int_equal(sasl_start(&f->s, &f->srv, refused[i].mech,
		    refused[i].ch), -1);
		assert_int_equal(errno, ENOENT);
		assert_null(f->s);
	}
	f->srv.flags = 0;
	assert_int_equal(sasl_start(&f->s, &f->srv, "CRAM-MD5", &tls_cb), -1);
	f->srv.flags = SASL_ALLOW_PLAINTEXT;
	start(f, "plain", NULL);
	assert_string_equal(sasl_mech_name(f->s), "PLAIN");
	start(f, "scram-sha-256-plus", &tls_cb);
	assert_string_equal(sasl_mech_name(f->s), "SCRAM-SHA-256-PLUS");
}

/* ---- SCRAM-SHA-256 --------------------------------------------------- */

static void
test_scram_rfc7677_example(void **state)
{
	struct fixture *f = *state;

	for (int initial = 1; initial >= 0; initial--) {
		start(f, "SCRAM-SHA-256", NULL);
		assert_int_equal(sasl_set_nonce(f->s, R7677_SNONCE), 0);
		if (!initial) {
			/* No initial response: an empty challenge first. */
			assert_int_equal(step(f, NULL, 0), SASL_CONTINUE);
			assert_int_equal(f->outlen, 0);
		}
		assert_int_equal(step_str(f, "n,,n=user,r=" R7677_CNONCE),
		    SASL_CONTINUE);
		assert_string_equal((char *)f->out, "r=" R7677_CNONCE
		    R7677_SNONCE ",s=" R7677_SALT ",i=4096");
		assert_string_equal(sasl_user(f->s), "user");
		assert_int_equal(step_str(f, R7677_FINAL), SASL_CONTINUE);
		assert_string_equal((char *)f->out, R7677_V);
		assert_string_equal(f->u.name, "");
		/* RFC 5034 sec. 4: success data, then an empty response. */
		assert_int_equal(step(f, "", 0), SASL_OK);
		assert_string_equal(f->u.name, "user");
		assert_true(f->u.has_uid);
		assert_int_equal(f->u.uid, 1000);
		assert_string_equal(f->u.home, "/home/user");
		/* Over: whatever comes next is refused. */
		assert_int_equal(step(f, "", 0), SASL_BAD);
	}
}

static void
test_scram_answer_to_server_final_must_be_empty(void **state)
{
	struct fixture *f = *state;

	start(f, "SCRAM-SHA-256", NULL);
	assert_int_equal(sasl_set_nonce(f->s, R7677_SNONCE), 0);
	assert_int_equal(step_str(f, "n,,n=user,r=" R7677_CNONCE),
	    SASL_CONTINUE);
	assert_int_equal(step_str(f, R7677_FINAL), SASL_CONTINUE);
	assert_int_equal(step_str(f, R7677_FINAL), SASL_BAD);
	assert_int_equal(step(f, "", 0), SASL_BAD);
}

static void
test_scram_stored_and_plain_users_log_in(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(scram_plain(f, "user", "pencil"), SASL_OK);
	assert_string_equal(f->u.name, "user");
	/* {PLAIN} users: keys derived on the fly. */
	assert_int_equal(scram_plain(f, "alice", "alice pass"), SASL_OK);
	assert_string_equal(f->u.name, "alice");
	assert_int_equal(f->u.uid, 1002);
	/* RFC 5802 sec. 5.1: ',' and '=' in names travel escaped. */
	assert_int_equal(scram_plain(f, "we=2Cird=3Dname", "weird-pass"),
	    SASL_OK);
	assert_string_equal(f->u.name, "we,ird=name");
	assert_string_equal(sasl_user(f->s), "we,ird=name");
	/* An authzid equal to the user is no proxy. */
	assert_int_equal(scram(f, "SCRAM-SHA-256", NULL, "n,a=alice,", NULL,
	    0, "alice", "alice pass"), SASL_OK);
}

static void
test_scram_wrong_password_fails_at_the_proof(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(scram_plain(f, "user", "pencil "), SASL_FAIL);
	assert_int_equal(scram_plain(f, "user", "Pencil"), SASL_FAIL);
	assert_int_equal(scram_plain(f, "alice", "alice"), SASL_FAIL);
	assert_string_equal(sasl_user(f->s), "alice");
}

/* The salt and iteration count a user's server-first shows. */
static void
server_first_salt(struct fixture *f, const char *name, char *salt,
    size_t size)
{
	char first[512];
	const char *s;

	start(f, "SCRAM-SHA-256", NULL);
	assert_true(snprintf(first, sizeof(first), "n,,n=%s,r=abc", name) <
	    (int)sizeof(first));
	assert_int_equal(step_str(f, first), SASL_CONTINUE);
	s = strstr((char *)f->out, ",s=");
	assert_non_null(s);
	assert_int_equal(str_copy(salt, size, s + 3), 0);
}

static void
test_scram_unknown_users_run_to_the_proof(void **state)
{
	struct fixture *f = *state;
	static const char *const names[] = {
		"nobody", "bob", "locked", "locked-scram", "utf8",
		"n\xc3\xb6" "body", ".hidden", "a:b",
	};
	static const char *const pass[] = {
		"x", "bob-pass", "x", "x", "p\xc3\xa9", "x", "x", "x",
	};
	char a[256], b[256], c[256];

	for (size_t i = 0; i < N_ELEM(names); i++) {
		/* A salt and 4096 rounds, like a real user's... */
		server_first_salt(f, names[i], a, sizeof(a));
		assert_non_null(strstr(a, ",i=4096"));
		/* ...the same one the next time... */
		server_first_salt(f, names[i], b, sizeof(b));
		assert_string_equal(a, b);
		/* ...and a failure only at the proof. */
		assert_int_equal(scram_plain(f, names[i], pass[i]), SASL_FAIL);
	}
	/* Another name, another salt. */
	server_first_salt(f, "nobody2", c, sizeof(c));
	server_first_salt(f, "nobody", a, sizeof(a));
	assert_string_not_equal(a, c);
	/* A {PLAIN} user's salt is just as stable. */
	server_first_salt(f, "alice", a, sizeof(a));
	server_first_salt(f, "alice", b, sizeof(b));
	assert_string_equal(a, b);
}

/* Each row: a fresh exchange fed first, and (if any) a final message. */
static void
test_scram_malformed_messages(void **state)
{
	struct fixture *f = *state;
	static const struct {
		const char	*first;
		size_t		 firstlen;	/* 0: strlen */
		enum sasl_step	 want;
	} firsts[] = {
		{ "", 0, SASL_BAD },
		{ "x,,n=user,r=abc", 0, SASL_BAD },
		{ "n,n=user,r=abc", 0, SASL_BAD },
		{ "n", 0, SASL_BAD },
		{ "n,", 0, SASL_BAD },
		{ "n,,", 0, SASL_BAD },
		{ "nn,,n=user,r=abc", 0, SASL_BAD },
		{ "p=,,n=user,r=abc", 0, SASL_BAD },
		{ "p=tls unique,,n=user,r=abc", 0, SASL_BAD },
		{ "n,b=user,n=user,r=abc", 0, SASL_BAD },
		{ "n,a=,n=user,r=abc", 0, SASL_BAD },
		{ "n,,r=abc", 0, SASL_BAD },
		{ "n,,n=user", 0, SASL_BAD },
		{ "n,,n=user,", 0, SASL_BAD },
		{ "n,,n=user,r=", 0, SASL_BAD },
		{ "n,,n=,r=abc", 0, SASL_BAD },
		{ "n,,N=user,r=abc", 0, SASL_BAD },
		{ "n,,n=us=2cer,r=abc", 0, SASL_BAD },
		{ "n,,n=us=2Xer,r=abc", 0, SASL_BAD },
		{ "n,,n=user=,r=abc", 0, SASL_BAD },
		{ "n,,n=user=3,r=abc", 0, SASL_BAD },
		{ "n,,r=abc,n=user", 0, SASL_BAD },
		{ "n,,n=user,r=abc,", 0, SASL_BAD },
		{ "n,,n=user,r=abc,x", 0, SASL_BAD },
		{ "n,,n=user,r=abc,x=", 0, SASL_BAD },
		{ "n,,n=user,r=abc,1=x", 0, SASL_BAD },
		{ "n,,n=user,r=a\x01" "bc", 0, SASL_BAD },
		{ "n,,n=user,r=a bc", 0, SASL_BAD },
		{ "n,,n=user,r=ab\xc3\xa9", 0, SASL_BAD },
		{ "n,,n=us\0er,r=abc", 16, SASL_BAD },
		{ "n,,n=user,r=abc\0", 16, SASL_BAD },
		/* Grammatical, refused: */
		{ "n,,m=x,n=user,r=abc", 0, SASL_FAIL },
		{ "n,a=tim,n=user,r=abc", 0, SASL_FAIL },
		{ "n,a=admin,n=user,r=abc", 0, SASL_FAIL },
		{ "p=tls-server-end-point,,n=user,r=abc", 0, SASL_BAD },
		/* Accepted: an extension is ignored. */
		{ "n,,n=user,r=abc,x=ext,y=more", 0, SASL_CONTINUE },
		{ "y,,n=user,r=abc", 0, SASL_CONTINUE },
	};
	static const struct {
		const char	*final;
		size_t		 finallen;
		enum sasl_step	 want;
	} finals[] = {
#define P "p=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="
		{ "", 0, SASL_BAD },
		{ "c=biws,r=abcSNONCE", 0, SASL_BAD },
		{ "c=biws,r=abcSNONCE,p=", 0, SASL_BAD },
		{ "c=biws,r=abcSNONCE,p=!!!!", 0, SASL_BAD },
		{ "c=biws,r=abcSNONCE,p=AAAA", 0, SASL_BAD },
		/* The proof without its padding. */
		{ "c=biws,r=abcSNONCE,p="
		    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", 0,
		    SASL_BAD },
		{ "c=biws,r=abcSNONCE," P ",", 0, SASL_BAD },
		{ "r=abcSNONCE,c=biws," P, 0, SASL_BAD },
		{ "c=biws," P, 0, SASL_BAD },
		{ "c=bi ws,r=abcSNONCE," P, 0, SASL_BAD },
		{ "c=biw,r=abcSNONCE," P, 0, SASL_BAD },
		{ "c=biws,r=abcSNONCE,x," P, 0, SASL_BAD },
		{ "c=biws,r=," P, 0, SASL_BAD },
		{ "c=biws,r=abc\0SNONCE," P, 66, SASL_BAD },
		{ "c=biws,,r=abcSNONCE," P, 0, SASL_BAD },
		/* Grammatical, refused: */
		{ "c=eSws,r=abcSNONCE," P, 0, SASL_FAIL },	/* "y,," */
		{ "c=,r=abcSNONCE," P, 0, SASL_FAIL },
		{ "c=biwsAA==,r=abcSNONCE," P, 0, SASL_FAIL },
		{ "c=biws,r=abcSNONCF," P, 0, SASL_FAIL },
		{ "c=biws,r=abc," P, 0, SASL_FAIL },
		{ "c=biws,r=abcSNONCEx," P, 0, SASL_FAIL },
		{ "c=biws,r=abcSNONCE," P, 0, SASL_FAIL },	/* the proof */
		{ "c=biws,r=abcSNONCE,x=ext," P, 0, SASL_FAIL },
#undef P
	};

	for (size_t i = 0; i < N_ELEM(firsts); i++) {
		size_t len = firsts[i].firstlen != 0 ? firsts[i].firstlen :
		    strlen(firsts[i].first);

		start(f, "SCRAM-SHA-256", NULL);
		if (step(f, firsts[i].first, len) != firsts[i].want)
			fail_msg("first message %zu: \"%s\"", i,
			    firsts[i].first);
	}
	for (size_t i = 0; i < N_ELEM(finals); i++) {
		size_t len = finals[i].finallen != 0 ? finals[i].finallen :
		    strlen(finals[i].final);

		start(f, "SCRAM-SHA-256", NULL);
		assert_int_equal(sasl_set_nonce(f->s, "SNONCE"), 0);
		assert_int_equal(step_str(f, "n,,n=user,r=abc"),
		    SASL_CONTINUE);
		if (step(f, finals[i].final, len) != finals[i].want)
			fail_msg("final message %zu: \"%s\"", i,
			    finals[i].final);
		assert_int_equal(step(f, "", 0), SASL_BAD);
	}
}

static void
test_scram_bounds_on_names_nonces_and_responses(void **state)
{
	struct fixture *f = *state;
	char msg[SASL_RESPONSE_MAX + 2];

	/* A 255-octet name is looked up; 256 octets are refused. */
	memcpy(msg, "n,,n=", 5);
	memset(msg + 5, 'u', 255);
	memcpy(msg + 260, ",r=abc", 7);
	start(f, "SCRAM-SHA-256", NULL);
	assert_int_equal(step_str(f, msg), SASL_CONTINUE);
	memset(msg + 5, 'u', 256);
	memcpy(msg + 261, ",r=abc", 7);
	start(f, "SCRAM-SHA-256", NULL);
	assert_int_equal(step_str(f, msg), SASL_BAD);
	/* Escapes count once they are decoded. */
	for (size_t i = 0; i < 255; i++)
		memcpy(msg + 5 + 3 * i, "=2C", 3);
	memcpy(msg + 5 + 3 * 255, ",r=abc", 7);
	start(f, "SCRAM-SHA-256", NULL);
	assert_int_equal(step_str(f, msg), SASL_CONTINUE);
	/* Client nonce: SASL_SCRAM_CNONCE_MAX characters and no more. */
	memcpy(msg, "n,,n=user,r=", 12);
	memset(msg + 12, 'x', SASL_SCRAM_CNONCE_MAX);
	msg[12 + SASL_SCRAM_CNONCE_MAX] = '\0';
	start(f, "SCRAM-SHA-256", NULL);
	assert_int_equal(step_str(f, msg), SASL_CONTINUE);
	assert_true(f->outlen <= SASL_CHALLENGE_MAX);
	memcpy(msg + 12 + SASL_SCRAM_CNONCE_MAX, "x", 2);
	start(f, "SCRAM-SHA-256", NULL);
	assert_int_equal(step_str(f, msg), SASL_BAD);
	/* A response over SASL_RESPONSE_MAX ends the exchange. */
	memcpy(msg, "n,,n=user,r=abc,x=", 18);
	memset(msg + 18, 'e', sizeof(msg) - 18);
	start(f, "SCRAM-SHA-256", NULL);
	assert_int_equal(step(f, msg, SASL_RESPONSE_MAX), SASL_CONTINUE);
	start(f, "SCRAM-SHA-256", NULL);
	assert_int_equal(step(f, msg, SASL_RESPONSE_MAX + 1), SASL_BAD);
	assert_int_equal(step_str(f, "n,,n=user,r=abc"), SASL_BAD);
}

/* ---- SCRAM-SHA-256-PLUS and channel binding --------------------------- */

static void
test_scram_plus_binds_the_channel(void **state)
{
	struct fixture *f = *state;
	struct sasl_channel only_exporter = tls_cb;
	unsigned char wrong[32];

	only_exporter.end_point_len = 0;
	memcpy(wrong, tls_cb.end_point, sizeof(wrong));
	wrong[31] ^= 1;
	/* The right data of either type passes. */
	assert_int_equal(scram(f, "SCRAM-SHA-256-PLUS", &tls_cb,
	    "p=tls-server-end-point,,", tls_cb.end_point,
	    tls_cb.end_point_len, "user", "pencil"), SASL_OK);
	assert_int_equal(scram(f, "SCRAM-SHA-256-PLUS", &tls_cb,
	    "p=tls-exporter,,", tls_cb.exporter, tls_cb.exporter_len, "alice",
	    "alice pass"), SASL_OK);
	assert_int_equal(scram(f, "SCRAM-SHA-256-PLUS", &tls_cb,
	    "p=tls-exporter,a=user,", tls_cb.exporter, tls_cb.exporter_len,
	    "user", "pencil"), SASL_OK);
	/* Another channel's data (a relaying attacker's) fails. */
	assert_int_equal(scram(f, "SCRAM-SHA-256-PLUS", &tls_cb,
	    "p=tls-server-end-point,,", wrong, sizeof(wrong), "user",
	    "pencil"), SASL_FAIL);
	assert_int_equal(scram(f, "SCRAM-SHA-256-PLUS", &tls_cb,
	    "p=tls-server-end-point,,", tls_cb.exporter, 32, "user",
	    "pencil"), SASL_FAIL);
	assert_int_equal(scram(f, "SCRAM-SHA-256-PLUS", &tls_cb,
	    "p=tls-server-end-point,,", NULL, 0, "user", "pencil"), SASL_FAIL);
	/* A type we do not have. */
	assert_int_equal(scram(f, "SCRAM-SHA-256-PLUS", &tls_cb,
	    "p=tls-unique,,", NULL, 0, "user", "pencil"), SASL_FAIL);
	assert_int_equal(scram(f, "SCRAM-SHA-256-PLUS", &only_exporter,
	    "p=tls-server-end-point,,", tls_cb.end_point, 32, "user",
	    "pencil"), SASL_FAIL);
	/* -PLUS without binding is a broken client. */
	assert_int_equal(scram(f, "SCRAM-SHA-256-PLUS", &tls_cb, "n,,", NULL,
	    0, "user", "pencil"), SASL_BAD);
	assert_int_equal(scram(f, "SCRAM-SHA-256-PLUS", &tls_cb, "y,,", NULL,
	    0, "user", "pencil"), SASL_BAD);
}

static void
test_scram_y_flag_downgrade_is_detected(void **state)
{
	struct fixture *f = *state;

	/* We offered -PLUS; a client that says it could bind was misled. */
	assert_int_equal(scram(f, "SCRAM-SHA-256", &tls_cb, "y,,", NULL, 0,
	    "user", "pencil"), SASL_FAIL);
	/* Nothing to bind to: "y" is honest. */
	assert_int_equal(scram(f, "SCRAM-SHA-256", &tls_no_cb, "y,,", NULL, 0,
	    "user", "pencil"), SASL_OK);
	assert_int_equal(scram_plain(f, "user", "pencil"), SASL_OK);
	assert_int_equal(scram(f, "SCRAM-SHA-256", NULL, "y,,", NULL, 0,
	    "user", "pencil"), SASL_OK);
	/* A client without binding support may use plain SCRAM anywhere. */
	assert_int_equal(scram(f, "SCRAM-SHA-256", &tls_cb, "n,,", NULL, 0,
	    "user", "pencil"), SASL_OK);
	/* Binding asked of the non-PLUS mechanism. */
	assert_int_equal(scram(f, "SCRAM-SHA-256", &tls_cb,
	    "p=tls-exporter,,", tls_cb.exporter, 32, "user", "pencil"),
	    SASL_BAD);
}

/* ---- PLAIN and LOGIN ------------------------------------------------- */

static void
test_plain_logs_in_every_scheme(void **state)
{
	struct fixture *f = *state;
	static const struct {
		const char	*msg;
		size_t		 len;
		const char	*user;
	} ok[] = {
#define M(x)	x, sizeof(x) - 1
		{ M("\0tim\0tanstaaftanstaaf"), "tim" },
		{ M("tim\0tim\0tanstaaftanstaaf"), "tim" },
		{ M("\0bob\0bob-pass"), "bob" },
		{ M("\0user\0pencil"), "user" },	/* {SCRAM-SHA-256} */
		{ M("\0utf8\0p\xc3\xa9"), "utf8" },	/* octets, as PASS */
#undef M
	};

	for (size_t i = 0; i < N_ELEM(ok); i++) {
		start(f, "PLAIN", &tls_no_cb);
		assert_int_equal(step(f, ok[i].msg, ok[i].len), SASL_OK);
		assert_string_equal(f->u.name, ok[i].user);
		assert_string_equal(sasl_user(f->s), ok[i].user);
	}
	/* No initial response: an empty challenge, then the message. */
	start(f, "PLAIN", &tls_no_cb);
	assert_int_equal(step(f, NULL, 0), SASL_CONTINUE);
	assert_int_equal(f->outlen, 0);
	assert_int_equal(step(f, BYTES("\0tim\0tanstaaftanstaaf")), SASL_OK);
	assert_int_equal(f->u.uid, 1001);
}

static void
test_plain_refuses_bad_messages_and_credentials(void **state)
{
	struct fixture *f = *state;
	static const struct {
		const char	*msg;
		size_t		 len;
		enum sasl_step	 want;
	} cases[] = {
#define M(x)	x, sizeof(x) - 1
		{ M(""), SASL_BAD },
		{ M("tim"), SASL_BAD },
		{ M("\0tim"), SASL_BAD },
		{ M("\0tim\0"), SASL_BAD },
		{ M("\0\0tanstaaftanstaaf"), SASL_BAD },
		{ M("\0tim\0tanstaaf\0tanstaaf"), SASL_BAD },
		{ M("\0tim\0tanstaaftanstaaf\0"), SASL_BAD },
		{ M("\0tim\0tanstaaftanstaa"), SASL_FAIL },
		{ M("\0tim\0Tanstaaftanstaaf"), SASL_FAIL },
		{ M("\0nobody\0tanstaaftanstaaf"), SASL_FAIL },
		{ M("\0locked\0x"), SASL_FAIL },
		{ M("\0bob\0bob-pas"), SASL_FAIL },
		{ M("\0user\0pencil "), SASL_FAIL },
		/* No proxy authorization. */
		{ M("admin\0tim\0tanstaaftanstaaf"), SASL_FAIL },
		{ M("Tim\0tim\0tanstaaftanstaaf"), SASL_FAIL },
#undef M
	};
	char big[AUTH_PASS_MAX + 16];

	for (size_t i = 0; i < N_ELEM(cases); i++) {
		start(f, "PLAIN", &tls_no_cb);
		if (step(f, cases[i].msg, cases[i].len) != cases[i].want)
			fail_msg("case %zu", i);
	}
	/* Bounds: a 256-octet name, a 1025-octet password. */
	memset(big, 'a', sizeof(big));
	big[0] = '\0';
	big[257] = '\0';
	start(f, "PLAIN", &tls_no_cb);
	assert_int_equal(step(f, big, 260), SASL_BAD);
	big[257] = 'a';
	memcpy(big, "\0tim\0", 5);
	start(f, "PLAIN", &tls_no_cb);
	assert_int_equal(step(f, big, 5 + AUTH_PASS_MAX), SASL_FAIL);
	start(f, "PLAIN", &tls_no_cb);
	assert_int_equal(step(f, big, 5 + AUTH_PASS_MAX + 1), SASL_BAD);
}

static void
test_login_asks_for_name_then_password(void **state)
{
	struct fixture *f = *state;

	start(f, "LOGIN", &tls_no_cb);
	assert_int_equal(step(f, NULL, 0), SASL_CONTINUE);
	assert_string_equal((char *)f->out, "Username:");
	assert_int_equal(step_str(f, "bob"), SASL_CONTINUE);
	assert_string_equal((char *)f->out, "Password:");
	assert_string_equal(sasl_user(f->s), "bob");
	assert_int_equal(step_str(f, "bob-pass"), SASL_OK);
	assert_string_equal(f->u.name, "bob");
	/* The name as an initial response; "=" (empty) is no name. */
	start(f, "LOGIN", &tls_no_cb);
	assert_int_equal(step_str(f, "tim"), SASL_CONTINUE);
	assert_string_equal((char *)f->out, "Password:");
	assert_int_equal(step_str(f, "tanstaaftanstaaf"), SASL_OK);
	start(f, "LOGIN", &tls_no_cb);
	assert_int_equal(step(f, "", 0), SASL_CONTINUE);
	assert_string_equal((char *)f->out, "Username:");
	/* Failures. */
	start(f, "LOGIN", &tls_no_cb);
	assert_int_equal(step_str(f, "tim"), SASL_CONTINUE);
	assert_int_equal(step_str(f, "tanstaaf"), SASL_FAIL);
	start(f, "LOGIN", &tls_no_cb);
	assert_int_equal(step_str(f, "nobody"), SASL_CONTINUE);
	assert_int_equal(step_str(f, "tanstaaf"), SASL_FAIL);
	start(f, "LOGIN", &tls_no_cb);
	assert_int_equal(step(f, NULL, 0), SASL_CONTINUE);
	assert_int_equal(step(f, "", 0), SASL_BAD);
	start(f, "LOGIN", &tls_no_cb);
	assert_int_equal(step(f, BYTES("t\0m")), SASL_BAD);
	start(f, "LOGIN", &tls_no_cb);
	assert_int_equal(step_str(f, "tim"), SASL_CONTINUE);
	assert_int_equal(step(f, BYTES("tanstaaf\0tanstaaf")), SASL_BAD);
}

/* ---- CRAM-MD5 -------------------------------------------------------- */

static void
test_cram_md5_rfc2195_example(void **state)
{
	struct fixture *f = *state;
	static const char *const responses[] = {
		R2195_RESPONSE, "tim B913A602C7EDA7A495B4E6E7334D3890",
	};

	for (size_t i = 0; i < N_ELEM(responses); i++) {
		start(f, "CRAM-MD5", NULL);
		assert_int_equal(sasl_set_nonce(f->s, R2195_CHALLENGE), 0);
		assert_int_equal(step(f, NULL, 0), SASL_CONTINUE);
		assert_string_equal((char *)f->out, R2195_CHALLENGE);
		assert_int_equal(step_str(f, responses[i]), SASL_OK);
		assert_string_equal(f->u.name, "tim");
		assert_string_equal(f->u.home, "/home/tim");
	}
}

static void
test_cram_md5_refuses_and_fails(void **state)
{
	struct fixture *f = *state;
	static const struct {
		const char	*resp;
		enum sasl_step	 want;
	} cases[] = {
		{ "", SASL_BAD },
		{ "tim", SASL_BAD },
		{ "timb913a602c7eda7a495b4e6e7334d3890", SASL_BAD },
		{ " b913a602c7eda7a495b4e6e7334d3890", SASL_BAD },
		{ "tim b913a602c7eda7a495b4e6e7334d389", SASL_BAD },
		{ "tim b913a602c7eda7a495b4e6e7334d38900", SASL_BAD },
		{ "tim g913a602c7eda7a495b4e6e7334d3890", SASL_BAD },
		{ "tim b913a602c7eda7a495b4e6e7334d3891", SASL_FAIL },
		{ "tim  b913a602c7eda7a495b4e6e7334d3890", SASL_FAIL },
		{ "Tim b913a602c7eda7a495b4e6e7334d3890", SASL_FAIL },
		{ "nobody b913a602c7eda7a495b4e6e7334d3890", SASL_FAIL },
		/* Not {PLAIN}: CRAM-MD5 cannot work for them. */
		{ "bob b913a602c7eda7a495b4e6e7334d3890", SASL_FAIL },
		{ "user b913a602c7eda7a495b4e6e7334d3890", SASL_FAIL },
	};
	const char *p;

	for (size_t i = 0; i < N_ELEM(cases); i++) {
		start(f, "CRAM-MD5", NULL);
		assert_int_equal(sasl_set_nonce(f->s, R2195_CHALLENGE), 0);
		assert_int_equal(step(f, NULL, 0), SASL_CONTINUE);
		if (step_str(f, cases[i].resp) != cases[i].want)
			fail_msg("case %zu: \"%s\"", i, cases[i].resp);
	}
	/* RFC 2195: no initial response, not even an empty one. */
	start(f, "CRAM-MD5", NULL);
	assert_int_equal(step(f, "", 0), SASL_BAD);
	/* A fresh challenge is <digits.digits@host>, never the same twice. */
	start(f, "CRAM-MD5", NULL);
	assert_int_equal(step(f, NULL, 0), SASL_CONTINUE);
	p = (char *)f->out;
	assert_true(p[0] == '<' && p[1] >= '0' && p[1] <= '9');
	assert_non_null(strstr(p, "@postoffice.reston.mci.net>"));
	assert_int_equal(strspn(p + 1, "0123456789."), strcspn(p, "@") - 1);
	{
		char first[SASL_CHALLENGE_MAX];

		assert_int_equal(str_copy(first, sizeof(first), p), 0);
		start(f, "CRAM-MD5", NULL);
		assert_int_equal(step(f, NULL, 0), SASL_CONTINUE);
		assert_string_not_equal(first, (char *)f->out);
	}
	/* A hostname that could break the msg-id is not used. */
	f->srv.hostname = "evil>host";
	start(f, "CRAM-MD5", NULL);
	assert_int_equal(step(f, NULL, 0), SASL_CONTINUE);
	assert_non_null(strstr((char *)f->out, "@postino>"));
}

/* ---- the driver's contract -------------------------------------------- */

static void
test_response_lines_decode_strictly(void **state)
{
	unsigned char out[SASL_RESPONSE_MAX];
	static unsigned char raw[SASL_RESPONSE_MAX + 1];
	static char line[SASL_RESPONSE_B64_MAX + 8];
	size_t len;

	(void)state;
	assert_int_equal(sasl_decode_response("=", 1, true, out, sizeof(out),
	    &len), 0);
	assert_int_equal(len, 0);
	assert_int_equal(sasl_decode_response("", 0, false, out, sizeof(out),
	    &len), 0);
	assert_int_equal(len, 0);
	assert_int_equal(sasl_decode_response("*", 1, false, out, sizeof(out),
	    &len), 1);
	assert_int_equal(sasl_decode_response("*", 1, true, out, sizeof(out),
	    &len), -1);
	assert_int_equal(sasl_decode_response("=", 1, false, out, sizeof(out),
	    &len), -1);
	assert_int_equal(sasl_decode_response("AHRpbQB0YW5zdGFhZg==", 20,
	    true, out, sizeof(out), &len), 0);
	assert_int_equal(len, 13);
	assert_memory_equal(out, "\0tim\0tanstaaf", 13);
	assert_int_equal(sasl_decode_response("AHRpbQB0YW5zdGFhZg", 18,
	    false, out, sizeof(out), &len), -1);
	assert_int_equal(sasl_decode_response("AHRp bQB0", 9, false, out,
	    sizeof(out), &len), -1);
	/* SASL_RESPONSE_MAX octets decode; one more do not. */
	memset(raw, 'x', sizeof(raw));
	assert_int_equal(base64_encode(line, sizeof(line), raw,
	    SASL_RESPONSE_MAX), 0);
	assert_int_equal(sasl_decode_response(line, strlen(line), false, out,
	    sizeof(out), &len), 0);
	assert_int_equal(len, SASL_RESPONSE_MAX);
	assert_int_equal(base64_encode(line, sizeof(line), raw,
	    SASL_RESPONSE_MAX + 1), 0);
	assert_int_equal(sasl_decode_response(line, strlen(line), false, out,
	    sizeof(out), &len), -1);
	memset(line, 'A', sizeof(line));
	assert_int_equal(sasl_decode_response(line, SASL_RESPONSE_B64_MAX + 4,
	    false, out, sizeof(out), &len), -1);
}

static void
test_exchange_ends_after_a_verdict(void **state)
{
	struct fixture *f = *state;
	unsigned char small[SASL_CHALLENGE_MAX - 1];

	start(f, "PLAIN", &tls_no_cb);
	assert_int_equal(step(f, BYTES("\0tim\0wrong")), SASL_FAIL);
	assert_int_equal(step(f, BYTES("\0tim\0tanstaaftanstaaf")), SASL_BAD);
	/* A too-small output buffer is the caller's bug, never a crash. */
	start(f, "SCRAM-SHA-256", NULL);
	assert_int_equal(sasl_step(f->s, BYTES("n,,n=user,r=abc"), small,
	    sizeof(small), &f->outlen, &f->u), SASL_TEMPFAIL);
	assert_int_equal(f->outlen, 0);
	/* Injected nonces: once, before the first step, printable. */
	start(f, "SCRAM-SHA-256", NULL);
	assert_int_equal(sasl_set_nonce(f->s, "a,b"), -1);
	assert_int_equal(sasl_set_nonce(f->s, "a b"), -1);
	assert_int_equal(sasl_set_nonce(f->s, ""), -1);
	assert_int_equal(step(f, NULL, 0), SASL_CONTINUE);
	assert_int_equal(sasl_set_nonce(f->s, "abc"), -1);
	start(f, "PLAIN", &tls_no_cb);
	assert_int_equal(sasl_set_nonce(f->s, "abc"), -1);
	sasl_free(&f->s);
	sasl_free(&f->s);
	assert_null(f->s);
}

static void
test_unreadable_database_is_a_temporary_failure(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(unlink(f->path), 0);
	assert_int_equal(scram_plain(f, "user", "pencil"), SASL_TEMPFAIL);
	start(f, "PLAIN", &tls_no_cb);
	assert_int_equal(step(f, BYTES("\0tim\0tanstaaftanstaaf")),
	    SASL_TEMPFAIL);
	start(f, "CRAM-MD5", NULL);
	assert_int_equal(step(f, NULL, 0), SASL_CONTINUE);
	assert_int_equal(step_str(f, R2195_RESPONSE), SASL_TEMPFAIL);
	write_file(f->path, "tim:{PLAIN}tanstaaftanstaaf\n");
	bump_mtime(f->path, 1600000000);
	assert_int_equal(scram_plain(f, "tim", "tanstaaftanstaaf"), SASL_OK);
}

/* ---- the passwd-file scheme and postino-passwd ------------------------ */

static void
test_passwd_file_scram_lines_are_checked(void **state)
{
	struct fixture *f = *state;
	struct auth_scram k;
	struct auth_user u;
	char *text, *good;
	unsigned long before;
	/* head, then the first keep characters of the keys, then tail. */
	static const struct {
		const char	*head;
		int		 keep;		/* -1: all */
		const char	*tail;
	} bad[] = {
		{ "4095,W22ZaJ0SNY7soEsUEjb6gQ==,", -1, "" },
		{ "10000001,W22ZaJ0SNY7soEsUEjb6gQ==,", -1, "" },
		{ "+4096,W22ZaJ0SNY7soEsUEjb6gQ==,", -1, "" },
		{ "4096,,", -1, "" },
		{ "4096,W22ZaJ0SNY7soEsUEjb6gQ=,", -1, "" },
		{ "4096,W22ZaJ0SNY7soEsUEjb6gQ==,", -1, "," },
		{ "4096,W22ZaJ0SNY7soEsUEjb6gQ==,", 43, "" },
		{ "4096,W22ZaJ0SNY7soEsUEjb6gQ==,", 88, "" },
		{ "4096,W22ZaJ0SNY7soEsUEjb6gQ==,", -1, "A" },
	};

	/* The keys part of the RFC user's secret. */
	good = strchr(rfc_user, ',');
	good = strchr(good + 1, ',') + 1;
	for (size_t i = 0; i < N_ELEM(bad); i++) {
		char secret[512];

		assert_true(snprintf(secret, sizeof(secret), "%s%.*s%s",
		    bad[i].head, bad[i].keep < 0 ? (int)strlen(good) :
		    bad[i].keep, good, bad[i].tail) < (int)sizeof(secret));
		assert_true(asprintf(&text, "x:{SCRAM-SHA-256}%s\n", secret) >
		    0);
		write_file(f->path, text);
		free(text);
		bump_mtime(f->path, 1600000000 + (time_t)i);
		assert_int_equal(f->srv.ops->verify(f->srv.db, "x", "pencil",
		    &u), AUTH_PERMFAIL);
		assert_int_equal(f->srv.ops->scram_lookup(f->srv.db, "x", &k,
		    &u), AUTH_PERMFAIL);
		assert_int_equal(scram_plain(f, "x", "pencil"), SASL_FAIL);
	}
	/* Mostly SCRAM users: unknown ones pay a SCRAM check. */
	assert_true(asprintf(&text, "a:%s\nb:%s\nc:%s\n", rfc_user, rfc_user,
	    bob_hash) > 0);
	write_file(f->path, text);
	free(text);
	bump_mtime(f->path, 1700000000);
	before = auth_hash_count();
	assert_int_equal(f->srv.ops->verify(f->srv.db, "a", "pencil", &u),
	    AUTH_OK);
	assert_int_equal(f->srv.ops->verify(f->srv.db, "zz", "pencil", &u),
	    AUTH_PERMFAIL);
	assert_int_equal(auth_hash_count() - before, 2);
	assert_int_equal(f->srv.ops->scram_lookup(f->srv.db, "a", &k, &u),
	    AUTH_OK);
	assert_int_equal(k.iter, 4096);
	assert_int_equal(k.saltlen, 16);
	assert_string_equal(u.name, "a");
	assert_int_equal(f->srv.ops->scram_lookup(f->srv.db, "c", &k, &u),
	    AUTH_PERMFAIL);
	assert_string_equal(u.name, "");
}

static void
test_postino_passwd_scram_output_verifies(void **state)
{
	struct fixture *f = *state;
	static const struct {
		const char	*rounds;
		const char	*iter;
	} cases[] = {
		{ NULL, ",i=4096" }, { "4096", ",i=4096" },
		{ "5000", ",i=5000" },
	};
	const char *tool = tu_passwd_tool();
	char out[1024], salt[256], *nl, *text;
	struct auth_user u;

	if (tool == NULL)
		skip();
	for (size_t i = 0; i < N_ELEM(cases); i++) {
		const char *argv[] = { tool, "-s", "scram-sha-256", "-u",
		    "carol", "-r", cases[i].rounds, NULL };

		if (cases[i].rounds == NULL)
			argv[5] = NULL;
		assert_int_equal(tu_run_tool(argv, "s3cret pass\n", 12, out,
		    sizeof(out)), 0);
		assert_memory_equal(out, "carol:{SCRAM-SHA-256}", 21);
		nl = strchr(out, '\n');
		assert_non_null(nl);
		assert_string_equal(nl, "\n");
		assert_true(asprintf(&text, "%s", out) > 0);
		write_file(f->path, text);
		free(text);
		bump_mtime(f->path, 1600000000 + (time_t)i);
		assert_int_equal(scram_plain(f, "carol", "s3cret pass"),
		    SASL_OK);
		assert_int_equal(scram_plain(f, "carol", "s3cret pasS"),
		    SASL_FAIL);
		server_first_salt(f, "carol", salt, sizeof(salt));
		assert_non_null(strstr(salt, cases[i].iter));
		/* USER/PASS and PLAIN check the same secret. */
		assert_int_equal(f->srv.ops->verify(f->srv.db, "carol",
		    "s3cret pass", &u), AUTH_OK);
		assert_int_equal(f->srv.ops->verify(f->srv.db, "carol",
		    "s3cret", &u), AUTH_PERMFAIL);
	}
}

static void
test_postino_passwd_scram_refuses_bad_input(void **state)
{
	static const struct {
		const char	*rounds, *scheme, *input;
		int		 status;
	} cases[] = {
		{ "4095", "SCRAM-SHA-256", "pw\n", 2 },
		{ "10000001", "SCRAM-SHA-256", "pw\n", 2 },
		{ "4096x", "SCRAM-SHA-256", "pw\n", 2 },
		{ "-4096", "SCRAM-SHA-256", "pw\n", 2 },
		{ "", "SCRAM-SHA-256", "pw\n", 2 },
		{ "5000", "PLAIN", "pw\n", 2 },
		{ "5000", "YESCRYPT", "pw\n", 2 },
		{ "3", "BLF-CRYPT", "pw\n", 2 },
		{ "999", "SHA512-CRYPT", "pw\n", 2 },
		{ NULL, "SCRAM-SHA-256", "p\xc3\xa9\n", 1 },
		{ NULL, "SCRAM-SHA-256", "p\tw\n", 1 },
		{ NULL, "SCRAM-SHA-256", "\n", 1 },
	};
	const char *tool = tu_passwd_tool();
	char out[1024];

	(void)state;
	if (tool == NULL)
		skip();
	for (size_t i = 0; i < N_ELEM(cases); i++) {
		const char *argv[] = { tool, "-s", cases[i].scheme, "-r",
		    cases[i].rounds, NULL };

		if (cases[i].rounds == NULL)
			argv[3] = NULL;
		if (tu_run_tool(argv, cases[i].input, strlen(cases[i].input), out,
		    sizeof(out)) !=
		    cases[i].status)
			fail_msg("case %zu", i);
		assert_string_equal(out, "");
	}
}

int
main(void)
{
#define T(t) cmocka_unit_test_setup_teardown(t, setup, teardown)
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_mechanisms_follow_channel_and_flags),
		T(test_start_takes_only_what_is_offered),
		T(test_scram_rfc7677_example),
		T(test_scram_answer_to_server_final_must_be_empty),
		T(test_scram_stored_and_plain_users_log_in),
		T(test_scram_wrong_password_fails_at_the_proof),
		T(test_scram_unknown_users_run_to_the_proof),
		T(test_scram_malformed_messages),
		T(test_scram_bounds_on_names_nonces_and_responses),
		T(test_scram_plus_binds_the_channel),
		T(test_scram_y_flag_downgrade_is_detected),
		T(test_plain_logs_in_every_scheme),
		T(test_plain_refuses_bad_messages_and_credentials),
		T(test_login_asks_for_name_then_password),
		T(test_cram_md5_rfc2195_example),
		T(test_cram_md5_refuses_and_fails),
		cmocka_unit_test(test_response_lines_decode_strictly),
		T(test_exchange_ends_after_a_verdict),
		T(test_unreadable_database_is_a_temporary_failure),
		T(test_passwd_file_scram_lines_are_checked),
		T(test_postino_passwd_scram_output_verifies),
		cmocka_unit_test(test_postino_passwd_scram_refuses_bad_input),
	};
#undef T

	return cmocka_run_group_tests(tests, group_setup, NULL);
}
