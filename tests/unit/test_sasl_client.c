/*
 * The client side of SASL on its own: SCRAM-SHA-256 against the RFC 7677
 * example (client nonce injected), CRAM-MD5 against RFC 2195's, PLAIN and
 * LOGIN, the SCRAM gs2 header for each channel, and hostile server
 * messages: a wrong or missing server signature, nonces that do not
 * extend ours, weak or absurd iteration counts, bad base64, NULs.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../src/lib/base64.h"
#include "../../src/client/sasl_client.h"

#define N_ELEM(a)	(sizeof(a) / sizeof((a)[0]))

/* RFC 7677 sec. 3. */
#define R7677_NONCE	"rOprNGfwEbeRWgbNEkqO"
#define R7677_FIRST	"n,,n=user,r=" R7677_NONCE
#define R7677_SFIRST	"r=" R7677_NONCE "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0," \
			"s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
#define R7677_FINAL	"c=biws,r=" R7677_NONCE \
			"%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0," \
			"p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
#define R7677_SFINAL	"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="

struct exch {
	struct sasl_client	*s;
	unsigned char		 out[SASL_CLIENT_OUT_MAX];
	size_t			 len;
	char			 err[ERR_LEN];
};

static void
start(struct exch *x, const struct sasl_client_params *p)
{
	memset(x, 0, sizeof(*x));
	assert_int_equal(sasl_client_new(&x->s, p, x->err), 0);
}

static enum sasl_client_result
step(struct exch *x, const char *in)
{
	return sasl_client_step(x->s, (const unsigned char *)in,
	    in != NULL ? strlen(in) : 0, x->out, &x->len, x->err);
}

static void
assert_out(const struct exch *x, const char *want)
{
	assert_int_equal(x->len, strlen(want));
	assert_memory_equal(x->out, want, x->len);
}

static void
scram_rfc7677(struct exch *x)
{
	struct sasl_client_params p = { .mech = SASL_CLIENT_SCRAM,
	    .user = "user", .pass = "pencil", .nonce = R7677_NONCE };

	start(x, &p);
	assert_true(sasl_client_has_initial(x->s));
	assert_int_equal(step(x, NULL), SASL_CLIENT_CONTINUE);
	assert_out(x, R7677_FIRST);
	assert_false(sasl_client_done(x->s));
	assert_int_equal(step(x, R7677_SFIRST), SASL_CLIENT_CONTINUE);
	assert_out(x, R7677_FINAL);
	assert_false(sasl_client_done(x->s));
}

static void
test_scram_rfc7677_example(void **state)
{
	struct exch x;

	(void)state;
	scram_rfc7677(&x);
	assert_int_equal(step(&x, R7677_SFINAL), SASL_CLIENT_CONTINUE);
	assert_int_equal(x.len, 0);		/* the empty final response */
	assert_true(sasl_client_done(x.s));
	/* Nothing more is expected. */
	assert_int_equal(step(&x, "v=x"), SASL_CLIENT_BAD);
	sasl_client_free(&x.s);
	assert_null(x.s);
}

static void
test_scram_server_signature_mismatch(void **state)
{
	static const char *const bad[] = {
		/* non-zero pad bits: a second spelling, refused */
		"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G5=",
		"v=7rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=",
		/* 31 octets */
		"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95A==",
		"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=,x=1",
		"v=", "v", "", "x=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=",
		"V=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=",
	};
	struct exch x;

	(void)state;
	for (size_t i = 0; i < N_ELEM(bad); i++) {
		scram_rfc7677(&x);
		assert_int_equal(step(&x, bad[i]), SASL_CLIENT_MISMATCH);
		assert_non_null(strstr(x.err, "server signature mismatch"));
		assert_false(sasl_client_done(x.s));
		assert_int_equal(x.len, 0);
		/* Dead: even the right signature no longer helps. */
		assert_int_equal(step(&x, R7677_SFINAL), SASL_CLIENT_BAD);
		assert_false(sasl_client_done(x.s));
		sasl_client_free(&x.s);
	}
	/* A signature for another password. */
	{
		struct sasl_client_params p = { .mech = SASL_CLIENT_SCRAM,
		    .user = "user", .pass = "pencil2", .nonce = R7677_NONCE };

		start(&x, &p);
		assert_int_equal(step(&x, NULL), SASL_CLIENT_CONTINUE);
		assert_int_equal(step(&x, R7677_SFIRST), SASL_CLIENT_CONTINUE);
		assert_int_equal(step(&x, R7677_SFINAL), SASL_CLIENT_MISMATCH);
		sasl_client_free(&x.s);
	}
}

static void
test_scram_server_error_is_a_refusal(void **state)
{
	struct exch x;

	(void)state;
	scram_rfc7677(&x);
	assert_int_equal(step(&x, "e=invalid-proof"), SASL_CLIENT_REFUSED);
	assert_false(sasl_client_done(x.s));
	sasl_client_free(&x.s);
}

static void
test_scram_hostile_server_first(void **state)
{
	static const char *const bad[] = {
		"",
		"e=unknown-user",
		"m=mandatory,r=" R7677_NONCE "x,"
		    "s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
		/* the nonce must extend ours, by at least one character */
		"r=" R7677_NONCE ",s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
		"r=XOprNGfwEbeRWgbNEkqOabc,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
		"r=rOprNG,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
		"r=" R7677_NONCE "a\x7f,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
		"r=" R7677_NONCE "a b,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
		/* salt */
		"r=" R7677_NONCE "x,i=4096",
		"r=" R7677_NONCE "x,s=,i=4096",
		"r=" R7677_NONCE "x,s=W22ZaJ0SNY7soEsUEjb6gQ,i=4096",
		"r=" R7677_NONCE "x,s=W22Z aJ0SNY7soEsUEjb6gQ==,i=4096",
		/* iterations: weak, absurd, not a number */
		"r=" R7677_NONCE "x,s=W22ZaJ0SNY7soEsUEjb6gQ==",
		"r=" R7677_NONCE "x,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=",
		"r=" R7677_NONCE "x,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=0",
		"r=" R7677_NONCE "x,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4095",
		"r=" R7677_NONCE "x,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=1000001",
		"r=" R7677_NONCE "x,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4294967297",
		"r=" R7677_NONCE "x,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=-4096",
		"r=" R7677_NONCE "x,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=+4096",
		"r=" R7677_NONCE "x,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096x",
		/* attribute order is fixed */
		"s=W22ZaJ0SNY7soEsUEjb6gQ==,r=" R7677_NONCE "x,i=4096",
	};
	struct sasl_client_params p = { .mech = SASL_CLIENT_SCRAM,
	    .user = "user", .pass = "pencil", .nonce = R7677_NONCE };
	struct exch x;

	(void)state;
	for (size_t i = 0; i < N_ELEM(bad); i++) {
		enum sasl_client_result r;

		start(&x, &p);
		assert_int_equal(step(&x, NULL), SASL_CLIENT_CONTINUE);
		r = step(&x, bad[i]);
		if (strncmp(bad[i], "e=", 2) == 0)
			assert_int_equal(r, SASL_CLIENT_REFUSED);
		else
			assert_int_equal(r, SASL_CLIENT_BAD);
		/* No proof leaves for a message we could not accept. */
		assert_int_equal(x.len, 0);
		assert_false(sasl_client_done(x.s));
		sasl_client_free(&x.s);
	}
}

static void
test_scram_nul_in_server_first(void **state)
{
	static const char sfirst[] = "r=" R7677_NONCE "%hv\0x,"
	    "s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
	struct sasl_client_params p = { .mech = SASL_CLIENT_SCRAM,
	    .user = "user", .pass = "pencil", .nonce = R7677_NONCE };
	struct exch x;

	(void)state;
	start(&x, &p);
	assert_int_equal(step(&x, NULL), SASL_CLIENT_CONTINUE);
	assert_int_equal(sasl_client_step(x.s, (const unsigned char *)sfirst,
	    sizeof(sfirst) - 1, x.out, &x.len, x.err), SASL_CLIENT_BAD);
	assert_int_equal(x.len, 0);
	sasl_client_free(&x.s);
}

static void
test_scram_extensions_after_i_are_ignored(void **state)
{
	struct sasl_client_params p = { .mech = SASL_CLIENT_SCRAM,
	    .user = "user", .pass = "pencil", .nonce = R7677_NONCE };
	struct exch x;

	(void)state;
	start(&x, &p);
	assert_int_equal(step(&x, NULL), SASL_CLIENT_CONTINUE);
	assert_int_equal(step(&x, R7677_SFIRST ",x=future"),
	    SASL_CLIENT_CONTINUE);
	/* A different AuthMessage: a different proof than RFC 7677's. */
	assert_int_equal(x.len, strlen(R7677_FINAL));
	assert_memory_not_equal(x.out, R7677_FINAL, x.len);
	sasl_client_free(&x.s);
}

/* The gs2 header and c= for each channel (RFC 5802 sec. 6, 7). */
static void
test_scram_gs2_header_per_channel(void **state)
{
	static const unsigned char cb[32] = { 1, 2, 3, 4 };
	static const struct {
		enum sasl_client_mech	 mech;
		bool			 tls, plus_offered;
		const char		*cb_type;
		const char		*gs2;
	} cases[] = {
		{ SASL_CLIENT_SCRAM, false, false, NULL, "n,," },
		{ SASL_CLIENT_SCRAM, false, true, NULL, "n,," },
		/* could bind, not offered: "y" lets a -PLUS server see it */
		{ SASL_CLIENT_SCRAM, true, false, NULL, "y,," },
		/* -PLUS offered but SCRAM-SHA-256 asked for: no binding */
		{ SASL_CLIENT_SCRAM, true, true, NULL, "n,," },
		{ SASL_CLIENT_SCRAM_PLUS, true, true, "tls-exporter",
		    "p=tls-exporter,," },
		{ SASL_CLIENT_SCRAM_PLUS, true, true, "tls-server-end-point",
		    "p=tls-server-end-point,," },
	};
	struct exch x;

	(void)state;
	for (size_t i = 0; i < N_ELEM(cases); i++) {
		struct sasl_client_params p = { .mech = cases[i].mech,
		    .user = "user", .pass = "pencil", .nonce = R7677_NONCE,
		    .tls = cases[i].tls, .plus_offered = cases[i].plus_offered,
		    .cb_type = cases[i].cb_type,
		    .cb_data = cases[i].cb_type != NULL ? cb : NULL,
		    .cb_len = cases[i].cb_type != NULL ? sizeof(cb) : 0 };
		unsigned char cbind[128];
		char want[512], b64[256];
		size_t gl = strlen(cases[i].gs2), cl;

		start(&x, &p);
		assert_int_equal(step(&x, NULL), SASL_CLIENT_CONTINUE);
		(void)snprintf(want, sizeof(want), "%sn=user,r=%s",
		    cases[i].gs2, R7677_NONCE);
		assert_out(&x, want);
		assert_int_equal(step(&x, R7677_SFIRST), SASL_CLIENT_CONTINUE);
		/* c= is base64 of the gs2 header and the binding data. */
		memcpy(cbind, cases[i].gs2, gl);
		cl = cases[i].cb_type != NULL ? sizeof(cb) : 0;
		memcpy(cbind + gl, cb, cl);
		assert_int_equal(base64_encode(b64, sizeof(b64), cbind,
		    gl + cl), 0);
		(void)snprintf(want, sizeof(want), "c=%s,r=", b64);
		assert_true(x.len > strlen(want));
		assert_memory_equal(x.out, want, strlen(want));
		sasl_client_free(&x.s);
	}
}

static void
test_scram_plus_needs_binding_data(void **state)
{
	struct sasl_client_params p = { .mech = SASL_CLIENT_SCRAM_PLUS,
	    .user = "user", .pass = "pencil", .tls = true,
	    .cb_type = "tls-exporter" };
	struct sasl_client *s = NULL;
	char err[ERR_LEN];

	(void)state;
	assert_int_equal(sasl_client_new(&s, &p, err), -1);
	assert_null(s);
}

static void
test_scram_saslname_escapes_comma_and_equals(void **state)
{
	struct sasl_client_params p = { .mech = SASL_CLIENT_SCRAM,
	    .user = "a,b=c", .pass = "pw", .nonce = "abc" };
	struct exch x;

	(void)state;
	start(&x, &p);
	assert_int_equal(step(&x, NULL), SASL_CLIENT_CONTINUE);
	assert_out(&x, "n,,n=a=2Cb=3Dc,r=abc");
	sasl_client_free(&x.s);
}

static void
test_scram_random_nonce(void **state)
{
	struct sasl_client_params p = { .mech = SASL_CLIENT_SCRAM,
	    .user = "u", .pass = "p" };
	struct exch x, y;

	(void)state;
	start(&x, &p);
	start(&y, &p);
	assert_int_equal(step(&x, NULL), SASL_CLIENT_CONTINUE);
	assert_int_equal(step(&y, NULL), SASL_CLIENT_CONTINUE);
	/* "n,,n=u,r=" and 24 base64 characters of 18 random octets */
	assert_int_equal(x.len, 9 + 24);
	assert_int_equal(y.len, 9 + 24);
	assert_memory_not_equal(x.out + 9, y.out + 9, 24);
	sasl_client_free(&x.s);
	sasl_client_free(&y.s);
}

static void
test_scram_injected_nonce_must_be_printable(void **state)
{
	static const char *const bad[] = { "", "a,b", "a b", "\x01" };
	struct sasl_client *s = NULL;
	char err[ERR_LEN];

	(void)state;
	for (size_t i = 0; i < N_ELEM(bad); i++) {
		struct sasl_client_params p = { .mech = SASL_CLIENT_SCRAM,
		    .user = "u", .pass = "p", .nonce = bad[i] };

		assert_int_equal(sasl_client_new(&s, &p, err), -1);
	}
}

static void
test_cram_md5_rfc2195_example(void **state)
{
	struct sasl_client_params p = { .mech = SASL_CLIENT_CRAM_MD5,
	    .user = "tim", .pass = "tanstaaftanstaaf" };
	struct exch x;

	(void)state;
	start(&x, &p);
	assert_false(sasl_client_has_initial(x.s));
	assert_int_equal(step(&x,
	    "<1896.697170952@postoffice.reston.mci.net>"),
	    SASL_CLIENT_CONTINUE);
	assert_out(&x, "tim b913a602c7eda7a495b4e6e7334d3890");
	assert_true(sasl_client_done(x.s));
	assert_int_equal(step(&x, "<again@x>"), SASL_CLIENT_BAD);
	sasl_client_free(&x.s);

	/* An empty challenge is not one. */
	start(&x, &p);
	assert_int_equal(step(&x, ""), SASL_CLIENT_BAD);
	assert_int_equal(x.len, 0);
	sasl_client_free(&x.s);
}

static void
test_plain_and_login(void **state)
{
	struct sasl_client_params p = { .mech = SASL_CLIENT_PLAIN,
	    .user = "tim", .pass = "tanstaaftanstaaf" };
	struct exch x;

	(void)state;
	start(&x, &p);
	assert_true(sasl_client_has_initial(x.s));
	assert_int_equal(step(&x, NULL), SASL_CLIENT_CONTINUE);
	assert_int_equal(x.len, 21);
	assert_memory_equal(x.out, "\0tim\0tanstaaftanstaaf", 21);
	assert_true(sasl_client_done(x.s));
	/* PLAIN takes no challenge. */
	assert_int_equal(step(&x, "more?"), SASL_CLIENT_BAD);
	sasl_client_free(&x.s);

	p.mech = SASL_CLIENT_LOGIN;
	start(&x, &p);
	assert_false(sasl_client_has_initial(x.s));
	assert_int_equal(step(&x, "Username:"), SASL_CLIENT_CONTINUE);
	assert_out(&x, "tim");
	assert_false(sasl_client_done(x.s));
	/* The prompt's text does not matter, only its place. */
	assert_int_equal(step(&x, "Username:"), SASL_CLIENT_CONTINUE);
	assert_out(&x, "tanstaaftanstaaf");
	assert_true(sasl_client_done(x.s));
	assert_int_equal(step(&x, "Password:"), SASL_CLIENT_BAD);
	assert_int_equal(x.len, 0);
	sasl_client_free(&x.s);
}

static void
test_long_or_missing_credentials_are_refused(void **state)
{
	char big[300];
	struct sasl_client *s = NULL;
	char err[ERR_LEN];

	(void)state;
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	for (int m = SASL_CLIENT_SCRAM_PLUS; m <= SASL_CLIENT_LOGIN; m++) {
		struct sasl_client_params p = {
		    .mech = (enum sasl_client_mech)m, .user = big,
		    .pass = "p" };

		assert_int_equal(sasl_client_new(&s, &p, err), -1);
		p.user = "u";
		p.pass = big;
		assert_int_equal(sasl_client_new(&s, &p, err), -1);
		p.pass = NULL;
		assert_int_equal(sasl_client_new(&s, &p, err), -1);
	}
	assert_null(s);
}

/* RFC 7628 sec. 4.1's example, with our user and an escaped name. */
static void
test_oauthbearer_initial_response(void **state)
{
	static const char want[] = "n,a=user@example.com,\001host=server."
	    "example.com\001port=143\001auth=Bearer vF9dft4qmTc2Nvb3RlckBhbHR"
	    "hdmlzdGEuY29tCg==\001\001";
	struct sasl_client_params p = { .mech = SASL_CLIENT_OAUTHBEARER,
	    .user = "user@example.com", .host = "server.example.com",
	    .port = "143", .pass = "vF9dft4qmTc2Nvb3RlckBhbHRhdmlzdGEuY29tCg==" };
	unsigned char out[SASL_CLIENT_OUT_MAX];
	struct exch x;

	(void)state;
	start(&x, &p);
	assert_true(sasl_client_has_initial(x.s));
	assert_int_equal(step(&x, NULL), SASL_CLIENT_CONTINUE);
	assert_out(&x, want);
	assert_true(sasl_client_done(x.s));
	assert_string_equal(sasl_client_oauth_status(x.s), "");
	sasl_client_free(&x.s);
	/* RFC 5801 saslname: ',' and '=' escaped; no host or port: omitted. */
	assert_int_equal(sasl_client_oauthbearer(out, sizeof(out), "a,b=c",
	    NULL, NULL, "T"), 30);
	assert_memory_equal(out, "n,a=a=2Cb=3Dc,\001auth=Bearer T\001\001", 30);
	/* A kvsep or line end in a field would forge another pair. */
	assert_int_equal(sasl_client_oauthbearer(out, sizeof(out), "u",
	    NULL, NULL, "T\001auth=x"), -1);
	assert_int_equal(sasl_client_oauthbearer(out, sizeof(out), "u",
	    "h\r\n", NULL, "T"), -1);
	assert_int_equal(sasl_client_xoauth2(out, sizeof(out), "u\001", "T"),
	    -1);
}

/* Google's XOAUTH2 documentation: user=...^Aauth=Bearer ...^A^A. */
static void
test_xoauth2_initial_response(void **state)
{
	static const char want[] = "user=someuser@example.com\001auth=Bearer "
	    "ya29.vF9dft4qmTc2Nvb3RlckBhdHRhdmlzdGEuY29tCg\001\001";
	struct sasl_client_params p = { .mech = SASL_CLIENT_XOAUTH2,
	    .user = "someuser@example.com",
	    .pass = "ya29.vF9dft4qmTc2Nvb3RlckBhdHRhdmlzdGEuY29tCg" };
	struct exch x;

	(void)state;
	start(&x, &p);
	assert_int_equal(step(&x, NULL), SASL_CLIENT_CONTINUE);
	assert_out(&x, want);
	assert_true(sasl_client_done(x.s));
	sasl_client_free(&x.s);
}

/*
 * RFC 7628 sec. 3.2.2-3.2.3: a refused token comes back as a JSON error
 * challenge; OAUTHBEARER answers a lone 0x01, XOAUTH2 an empty line, and
 * the status is kept for the user. "+OK" after that is not success.
 */
static void
test_oauth_error_challenge(void **state)
{
	static const char json[] = "{\"status\":\"invalid_token\","
	    "\"schemes\":\"bearer\",\"scope\":\"mail\"}";
	struct sasl_client_params p = { .mech = SASL_CLIENT_OAUTHBEARER,
	    .user = "u", .pass = "tok" };
	struct exch x;

	(void)state;
	start(&x, &p);
	assert_int_equal(step(&x, NULL), SASL_CLIENT_CONTINUE);
	assert_int_equal(step(&x, json), SASL_CLIENT_CONTINUE);
	assert_out(&x, "\001");
	assert_false(sasl_client_done(x.s));
	assert_string_equal(sasl_client_oauth_status(x.s), "invalid_token");
	/* One error challenge, no more. */
	assert_int_equal(step(&x, json), SASL_CLIENT_BAD);
	sasl_client_free(&x.s);

	p.mech = SASL_CLIENT_XOAUTH2;
	start(&x, &p);
	assert_int_equal(step(&x, NULL), SASL_CLIENT_CONTINUE);
	assert_int_equal(step(&x, "{\"status\" : \"401\"}"),
	    SASL_CLIENT_CONTINUE);
	assert_int_equal(x.len, 0);
	assert_string_equal(sasl_client_oauth_status(x.s), "401");
	sasl_client_free(&x.s);

	/* Garbage, escapes, control characters: "unknown" or sanitised. */
	start(&x, &p);
	assert_int_equal(step(&x, NULL), SASL_CLIENT_CONTINUE);
	assert_int_equal(step(&x, "not json"), SASL_CLIENT_CONTINUE);
	assert_string_equal(sasl_client_oauth_status(x.s), "unknown");
	sasl_client_free(&x.s);
	start(&x, &p);
	assert_int_equal(step(&x, NULL), SASL_CLIENT_CONTINUE);
	assert_int_equal(step(&x, "{\"status\":\"a\\\"b\"}"),
	    SASL_CLIENT_CONTINUE);
	assert_string_equal(sasl_client_oauth_status(x.s), "unknown");
	sasl_client_free(&x.s);
	start(&x, &p);
	assert_int_equal(step(&x, NULL), SASL_CLIENT_CONTINUE);
	assert_int_equal(step(&x, "{\"status\":\"\033[2J\"}"),
	    SASL_CLIENT_CONTINUE);
	assert_null(strchr(sasl_client_oauth_status(x.s), '\033'));
	sasl_client_free(&x.s);
}

/* Tokens up to OAUTH_TOKEN_MAX octets; one more is refused. */
static void
test_oauth_token_bound(void **state)
{
	char *tok = malloc(OAUTH_TOKEN_MAX + 2);
	struct sasl_client_params p = { .mech = SASL_CLIENT_OAUTHBEARER,
	    .user = "u", .host = "h", .port = "995" };
	struct exch x;
	char err[ERR_LEN];
	struct sasl_client *s = NULL;

	(void)state;
	assert_non_null(tok);
	memset(tok, 'A', OAUTH_TOKEN_MAX);
	tok[OAUTH_TOKEN_MAX] = '\0';
	p.pass = tok;
	start(&x, &p);
	assert_int_equal(step(&x, NULL), SASL_CLIENT_CONTINUE);
	assert_true(x.len > OAUTH_TOKEN_MAX);
	sasl_client_free(&x.s);
	tok[OAUTH_TOKEN_MAX] = 'A';
	tok[OAUTH_TOKEN_MAX + 1] = '\0';
	assert_int_equal(sasl_client_new(&s, &p, err), -1);
	assert_null(s);
	/* A password-sized limit still holds for the others. */
	tok[300] = '\0';
	p.mech = SASL_CLIENT_PLAIN;
	assert_int_equal(sasl_client_new(&s, &p, err), -1);
	free(tok);
}

static void
test_mechanism_names(void **state)
{
	(void)state;
	assert_string_equal(sasl_client_mech_name(SASL_CLIENT_SCRAM_PLUS),
	    "SCRAM-SHA-256-PLUS");
	assert_string_equal(sasl_client_mech_name(SASL_CLIENT_LOGIN), "LOGIN");
	/* From the shared table, not a copy. */
	for (int m = 0; m < SASL_MECH_COUNT; m++)
		assert_string_equal(sasl_client_mech_name(
		    (enum sasl_client_mech)m),
		    sasl_mechs_name((enum sasl_mech_id)m));
	assert_string_equal(sasl_client_mech_name(SASL_CLIENT_XOAUTH2),
	    "XOAUTH2");
	assert_string_equal(sasl_client_mech_name((enum sasl_client_mech)99),
	    "?");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_scram_rfc7677_example),
		cmocka_unit_test(test_scram_server_signature_mismatch),
		cmocka_unit_test(test_scram_server_error_is_a_refusal),
		cmocka_unit_test(test_scram_hostile_server_first),
		cmocka_unit_test(test_scram_nul_in_server_first),
		cmocka_unit_test(test_scram_extensions_after_i_are_ignored),
		cmocka_unit_test(test_scram_gs2_header_per_channel),
		cmocka_unit_test(test_scram_plus_needs_binding_data),
		cmocka_unit_test(test_scram_saslname_escapes_comma_and_equals),
		cmocka_unit_test(test_scram_random_nonce),
		cmocka_unit_test(test_scram_injected_nonce_must_be_printable),
		cmocka_unit_test(test_cram_md5_rfc2195_example),
		cmocka_unit_test(test_plain_and_login),
		cmocka_unit_test(test_long_or_missing_credentials_are_refused),
		cmocka_unit_test(test_oauthbearer_initial_response),
		cmocka_unit_test(test_xoauth2_initial_response),
		cmocka_unit_test(test_oauth_error_challenge),
		cmocka_unit_test(test_oauth_token_bound),
		cmocka_unit_test(test_mechanism_names),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
