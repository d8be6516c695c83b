/*
 * lib/proxyproto: the PROXY protocol header parser. Every good header is
 * also fed one octet at a time and with trailing data (which must be left
 * untaken); every malformed one is refused, however it is split.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <cmocka.h>

#include "../../src/lib/cidr.h"
#include "../../src/lib/proxyproto.h"

#define N_ELEM(a)	(sizeof(a) / sizeof((a)[0]))
#define BYTES(s)	(const unsigned char *)(s), sizeof(s) - 1

#define V2SIG	"\r\n\r\n\0\r\nQUIT\n"

/* Feed len octets in pieces of step (0: all at once). */
static enum proxyproto_state
feed(const unsigned char *in, size_t len, size_t step, size_t *used_r,
    struct proxyproto_result *r)
{
	static struct proxyproto p;
	enum proxyproto_state st = PROXYPROTO_MORE;
	size_t pos = 0;

	proxyproto_init(&p);
	memset(r, 0, sizeof(*r));
	while (pos < len && st == PROXYPROTO_MORE) {
		size_t n = step == 0 || step > len - pos ? len - pos : step, u;

		st = proxyproto_feed(&p, in + pos, n, &u, r);
		assert_true(u <= n);
		if (st == PROXYPROTO_MORE)
			assert_int_equal(u, n);
		pos += u;
	}
	*used_r = pos;
	return st;
}

static void
check_v4(const struct proxyproto_result *r, const char *src, uint16_t sport,
    const char *dst, uint16_t dport)
{
	const struct sockaddr_in *s = (const struct sockaddr_in *)&r->src;
	const struct sockaddr_in *d = (const struct sockaddr_in *)&r->dst;
	char a[INET_ADDRSTRLEN];

	assert_true(r->has_addr);
	assert_int_equal(s->sin_family, AF_INET);
	inet_ntop(AF_INET, &s->sin_addr, a, sizeof(a));
	assert_string_equal(a, src);
	assert_int_equal(ntohs(s->sin_port), sport);
	inet_ntop(AF_INET, &d->sin_addr, a, sizeof(a));
	assert_string_equal(a, dst);
	assert_int_equal(ntohs(d->sin_port), dport);
}

/* Every good header: whole, octet by octet, and followed by data. */
static void
good(const unsigned char *hdr, size_t len, struct proxyproto_result *r)
{
	unsigned char buf[PROXYPROTO_MAX + 64];
	size_t steps[] = { 0, 1, 2, 7, 16 };

	for (size_t i = 0; i < N_ELEM(steps); i++) {
		size_t used;

		assert_int_equal(feed(hdr, len, steps[i], &used, r),
		    PROXYPROTO_DONE);
		assert_int_equal(used, len);
	}
	static const char after[] = "\x16\x03\x01" "USER x\r\n";

	memcpy(buf, hdr, len);
	memcpy(buf + len, after, sizeof(after) - 1);
	for (size_t i = 0; i < N_ELEM(steps); i++) {
		size_t used;

		assert_int_equal(feed(buf, len + sizeof(after) - 1, steps[i],
		    &used, r),
		    PROXYPROTO_DONE);
		assert_int_equal(used, len);
	}
}

static void
test_v1_tcp4_gives_client_address_and_takes_only_the_line(void **state)
{
	struct proxyproto_result r;

	(void)state;
	good(BYTES("PROXY TCP4 127.0.0.5 127.0.0.1 40000 110\r\n"), &r);
	assert_int_equal(r.version, 1);
	check_v4(&r, "127.0.0.5", 40000, "127.0.0.1", 110);
}

static void
test_v1_tcp6_and_unknown(void **state)
{
	struct proxyproto_result r;
	const struct sockaddr_in6 *s = (const struct sockaddr_in6 *)&r.src;
	char a[INET6_ADDRSTRLEN];

	(void)state;
	good(BYTES("PROXY TCP6 2001:db8::1 ::1 65535 0\r\n"), &r);
	assert_true(r.has_addr);
	assert_int_equal(s->sin6_family, AF_INET6);
	inet_ntop(AF_INET6, &s->sin6_addr, a, sizeof(a));
	assert_string_equal(a, "2001:db8::1");
	assert_int_equal(ntohs(s->sin6_port), 65535);
	good(BYTES("PROXY UNKNOWN\r\n"), &r);
	assert_false(r.has_addr);
	good(BYTES("PROXY UNKNOWN ffff:f...f:ffff ffff:f...f:ffff 65535 65535\r\n"),
	    &r);
	assert_false(r.has_addr);
}

static void
test_v1_malformed_is_refused(void **state)
{
	static const char *const bad[] = {
		"GET / HTTP/1.0\r\n",
		"USER alice\r\n",
		"proxy TCP4 1.2.3.4 5.6.7.8 1 2\r\n",
		"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n",		/* bare LF */
		"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\r\n",
		"PROXY  TCP4 1.2.3.4 5.6.7.8 1 2\r\n",		/* two spaces */
		"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 \r\n",		/* trailing space */
		"PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n",		/* missing port */
		"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n",		/* extra field */
		"PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n",
		"PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n",		/* leading zero */
		"PROXY TCP4 1.2.3.4 5.6.7.8 -1 2\r\n",
		"PROXY TCP4 1.2.3.4 5.6.7.8 +1 2\r\n",
		"PROXY TCP4 1.2.3.4 5.6.7.8 999999 2\r\n",
		"PROXY TCP4 1.2.3.256 5.6.7.8 1 2\r\n",
		"PROXY TCP4 ::1 ::1 1 2\r\n",			/* family mismatch */
		"PROXY TCP6 1.2.3.4 5.6.7.8 1 2\r\n",
		"PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n",
		"PROXY TCP4 1.2.3.4\t5.6.7.8 1 2\r\n",
		"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\0\r\n",
		"PROXY \r\n",
		"PROXY\r\n",
	};
	struct proxyproto_result r;

	(void)state;
	for (size_t i = 0; i < N_ELEM(bad); i++) {
		size_t len = strlen(bad[i]), used;

		/* The NUL case: its octets go on past strlen(). */
		if (len > 0 && bad[i][len - 1] != '\n')
			len += 3;
		for (size_t step = 0; step <= 1; step++) {
			enum proxyproto_state st = feed(
			    (const unsigned char *)bad[i], len, step, &used,
			    &r);

			if (st != PROXYPROTO_BAD)
				fail_msg("accepted: case %zu step %zu", i, step);
		}
	}
}

static void
test_v1_line_longer_than_107_is_refused_without_a_newline(void **state)
{
	unsigned char buf[300];
	struct proxyproto_result r;
	size_t used;

	(void)state;
	memcpy(buf, "PROXY UNKNOWN ", 14);
	memset(buf + 14, 'a', sizeof(buf) - 14);
	assert_int_equal(feed(buf, sizeof(buf), 1, &used, &r), PROXYPROTO_BAD);
	assert_int_equal(used, PROXYPROTO_V1_MAX);
	/* 107 octets with the CRLF is the most that is accepted. */
	memset(buf + 14, 'a', PROXYPROTO_V1_MAX - 16);
	memcpy(buf + PROXYPROTO_V1_MAX - 2, "\r\n", 2);
	good(buf, PROXYPROTO_V1_MAX, &r);
	memset(buf + 14, 'a', PROXYPROTO_V1_MAX - 15);
	memcpy(buf + PROXYPROTO_V1_MAX - 1, "\r\n", 2);
	assert_int_equal(feed(buf, PROXYPROTO_V1_MAX + 1, 0, &used, &r),
	    PROXYPROTO_BAD);
}

/* A v2 header: fixed part, then body of blen octets. */
static size_t
v2(unsigned char *out, unsigned char vercmd, unsigned char fam,
    const void *body, size_t blen)
{
	memcpy(out, V2SIG, 12);
	out[12] = vercmd;
	out[13] = fam;
	out[14] = (unsigned char)(blen >> 8);
	out[15] = (unsigned char)blen;
	memcpy(out + 16, body, blen);
	return 16 + blen;
}

static const unsigned char addr4[12] = {
	127, 0, 0, 5, 127, 0, 0, 1, 0x9c, 0x40, 0, 110
};

static void
test_v2_proxy_tcp4_with_tlvs(void **state)
{
	unsigned char hdr[256], body[64];
	struct proxyproto_result r;
	size_t len;

	(void)state;
	len = v2(hdr, 0x21, 0x11, addr4, sizeof(addr4));
	good(hdr, len, &r);
	assert_int_equal(r.version, 2);
	check_v4(&r, "127.0.0.5", 40000, "127.0.0.1", 110);
	/* ALPN "pop3", an empty NOOP, unique id: skipped. */
	memcpy(body, addr4, 12);
	memcpy(body + 12, "\x01\x00\x04pop3\x04\x00\x00\x05\x00\x02id", 15);
	len = v2(hdr, 0x21, 0x11, body, 27);
	good(hdr, len, &r);
	check_v4(&r, "127.0.0.5", 40000, "127.0.0.1", 110);
}

static void
test_v2_proxy_tcp6(void **state)
{
	unsigned char hdr[64], body[36] = { 0 };
	struct proxyproto_result r;
	const struct sockaddr_in6 *s = (const struct sockaddr_in6 *)&r.src;

	(void)state;
	body[0] = 0x20;
	body[1] = 0x01;
	body[15] = 7;
	body[31] = 1;
	body[32] = 0x12;
	body[33] = 0x34;
	good(hdr, v2(hdr, 0x21, 0x21, body, 36), &r);
	assert_int_equal(s->sin6_family, AF_INET6);
	assert_int_equal(s->sin6_addr.s6_addr[15], 7);
	assert_int_equal(ntohs(s->sin6_port), 0x1234);
}

static void
test_v2_local_and_unspec_keep_the_real_address(void **state)
{
	unsigned char hdr[64];
	struct proxyproto_result r;

	(void)state;
	good(hdr, v2(hdr, 0x20, 0x00, "", 0), &r);
	assert_false(r.has_addr);
	/* LOCAL ignores whatever block it has, even an odd family. */
	good(hdr, v2(hdr, 0x20, 0x11, addr4, sizeof(addr4)), &r);
	assert_false(r.has_addr);
	good(hdr, v2(hdr, 0x20, 0x77, "xyz", 3), &r);
	assert_false(r.has_addr);
	good(hdr, v2(hdr, 0x21, 0x00, "", 0), &r);
	assert_false(r.has_addr);
}

static void
test_v2_malformed_is_refused(void **state)
{
	unsigned char hdr[128], body[64];
	struct proxyproto_result r;
	struct {
		unsigned char vercmd, fam;
		size_t blen;
		const char *tlv;	/* after a 12-octet IPv4 block */
		size_t tlvlen;
	} bad[] = {
		{ 0x11, 0x11, 12, NULL, 0 },	/* version 1 in a v2 frame */
		{ 0x31, 0x11, 12, NULL, 0 },	/* version 3 */
		{ 0x22, 0x11, 12, NULL, 0 },	/* command 2 */
		{ 0x2f, 0x11, 12, NULL, 0 },
		{ 0x21, 0x12, 12, NULL, 0 },	/* UDP over IPv4 */
		{ 0x21, 0x22, 36, NULL, 0 },	/* UDP over IPv6 */
		{ 0x21, 0x31, 216, NULL, 0 },	/* AF_UNIX stream */
		{ 0x21, 0x41, 12, NULL, 0 },	/* no such family */
		{ 0x21, 0x13, 12, NULL, 0 },
		{ 0x21, 0x11, 11, NULL, 0 },	/* block too short */
		{ 0x21, 0x21, 12, NULL, 0 },
		{ 0x21, 0x11, 0, NULL, 0 },
		{ 0x21, 0x11, 0, "\x01\x00\x05pop3", 7 },	/* TLV overruns */
		{ 0x21, 0x11, 0, "\x01\x00", 2 },		/* TLV header cut */
		{ 0x21, 0x11, 0, "\x01", 1 },
		{ 0x21, 0x11, 0, "\x04\x00\x00\x01\xff\xff", 6 },
	};

	(void)state;
	for (size_t i = 0; i < N_ELEM(bad); i++) {
		size_t blen = bad[i].blen, len, used;

		memset(body, 0, sizeof(body));
		if (bad[i].tlv != NULL) {
			memcpy(body, addr4, 12);
			memcpy(body + 12, bad[i].tlv, bad[i].tlvlen);
			blen = 12 + bad[i].tlvlen;
		}
		if (blen > sizeof(body)) {
			unsigned char big[256] = { 0 };

			len = v2(hdr, bad[i].vercmd, bad[i].fam, big, 0);
			hdr[14] = (unsigned char)(blen >> 8);
			hdr[15] = (unsigned char)blen;
			/* The fixed part alone cannot be judged: feed zeros. */
			unsigned char all[16 + 256];

			memcpy(all, hdr, 16);
			memcpy(all + 16, big, blen);
			len = 16 + blen;
			for (size_t step = 0; step <= 1; step++)
				assert_int_equal(feed(all, len, step, &used, &r),
				    PROXYPROTO_BAD);
			continue;
		}
		len = v2(hdr, bad[i].vercmd, bad[i].fam, body, blen);
		for (size_t step = 0; step <= 1; step++) {
			if (feed(hdr, len, step, &used, &r) != PROXYPROTO_BAD)
				fail_msg("accepted: case %zu step %zu", i, step);
		}
	}
}

static void
test_v2_length_over_the_bound_is_refused_after_the_fixed_part(void **state)
{
	unsigned char hdr[16];
	struct proxyproto_result r;
	size_t used;

	(void)state;
	v2(hdr, 0x21, 0x11, "", 0);
	hdr[14] = (PROXYPROTO_V2_DATA_MAX + 1) >> 8;
	hdr[15] = (PROXYPROTO_V2_DATA_MAX + 1) & 0xff;
	assert_int_equal(feed(hdr, 16, 1, &used, &r), PROXYPROTO_BAD);
	assert_int_equal(used, 16);
	hdr[14] = hdr[15] = 0xff;
	assert_int_equal(feed(hdr, 16, 0, &used, &r), PROXYPROTO_BAD);
}

static void
test_v2_signature_mismatch_is_refused_at_the_first_wrong_octet(void **state)
{
	unsigned char hdr[32];
	struct proxyproto_result r;
	size_t used;

	(void)state;
	for (size_t i = 0; i < 12; i++) {
		v2(hdr, 0x21, 0x11, addr4, 12);
		hdr[i] ^= 0x40;
		assert_int_equal(feed(hdr, 28, 1, &used, &r), PROXYPROTO_BAD);
		assert_int_equal(used, i + 1);
	}
	/* A TLS ClientHello sent where a header belongs. */
	assert_int_equal(feed(BYTES("\x16\x03\x01\x02\x00"), 1, &used, &r),
	    PROXYPROTO_BAD);
}

static void
test_done_and_bad_are_sticky(void **state)
{
	struct proxyproto p;
	struct proxyproto_result r;
	size_t used;

	(void)state;
	proxyproto_init(&p);
	assert_int_equal(proxyproto_feed(&p, BYTES("PROXY UNKNOWN\r\n"), &used,
	    &r), PROXYPROTO_DONE);
	assert_int_equal(proxyproto_feed(&p, BYTES("more"), &used, &r),
	    PROXYPROTO_DONE);
	assert_int_equal(used, 0);
	proxyproto_init(&p);
	assert_int_equal(proxyproto_feed(&p, BYTES("X"), &used, &r),
	    PROXYPROTO_BAD);
	assert_non_null(p.why);
	assert_int_equal(proxyproto_feed(&p, BYTES("PROXY"), &used, &r),
	    PROXYPROTO_BAD);
	assert_int_equal(used, 0);
}

static void
test_cidr_list_parses_and_matches(void **state)
{
	struct cidr_list l;
	struct sockaddr_in sin = { .sin_family = AF_INET };
	struct sockaddr_in6 sin6 = { .sin6_family = AF_INET6 };
	char err[ERR_LEN];

	(void)state;
	assert_int_equal(cidr_parse_list(&l, "127.0.0.0/8, 10.1.0.0/16 "
	    "2001:db8::/32\t::1", err), 0);
	assert_int_equal(l.n, 4);
	inet_pton(AF_INET, "127.9.8.7", &sin.sin_addr);
	assert_true(cidr_match(&l, (struct sockaddr *)&sin));
	inet_pton(AF_INET, "10.2.0.1", &sin.sin_addr);
	assert_false(cidr_match(&l, (struct sockaddr *)&sin));
	inet_pton(AF_INET6, "::ffff:10.1.200.3", &sin6.sin6_addr);
	assert_true(cidr_match(&l, (struct sockaddr *)&sin6));
	inet_pton(AF_INET6, "2001:db8:ffff::1", &sin6.sin6_addr);
	assert_true(cidr_match(&l, (struct sockaddr *)&sin6));
	inet_pton(AF_INET6, "::2", &sin6.sin6_addr);
	assert_false(cidr_match(&l, (struct sockaddr *)&sin6));
	assert_int_equal(cidr_parse_list(&l, "", err), 0);
	assert_false(cidr_match(&l, (struct sockaddr *)&sin6));
	assert_int_equal(cidr_parse_list(&l, "0.0.0.0/0", err), 0);
	assert_true(cidr_match(&l, (struct sockaddr *)&sin));
	assert_false(cidr_match(&l, (struct sockaddr *)&sin6));
}

static void
test_cidr_list_refuses_bad_ranges(void **state)
{
	static const char *const bad[] = {
		"10.0.0.1/8", "10.0.0.0/33", "::/129", "10.0.0.0/", "10.0.0/8",
		"10.0.0.0/-1", "10.0.0.0/+8", "10.0.0.0/8x", "host.example",
		"1.2.3.4/ 8", "::1/128/1",
		"ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255/128xxxxxxxxxx",
	};
	struct cidr_list l;
	char err[ERR_LEN], many[40 * 12] = "";

	(void)state;
	for (size_t i = 0; i < N_ELEM(bad); i++)
		if (cidr_parse_list(&l, bad[i], err) == 0)
			fail_msg("accepted '%s'", bad[i]);
	for (int i = 0; i <= CIDR_LIST_MAX; i++)
		strcat(many, "10.0.0.1 ");
	assert_int_equal(cidr_parse_list(&l, many, err), -1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_v1_tcp4_gives_client_address_and_takes_only_the_line),
		cmocka_unit_test(test_v1_tcp6_and_unknown),
		cmocka_unit_test(test_v1_malformed_is_refused),
		cmocka_unit_test(test_v1_line_longer_than_107_is_refused_without_a_newline),
		cmocka_unit_test(test_v2_proxy_tcp4_with_tlvs),
		cmocka_unit_test(test_v2_proxy_tcp6),
		cmocka_unit_test(test_v2_local_and_unspec_keep_the_real_address),
		cmocka_unit_test(test_v2_malformed_is_refused),
		cmocka_unit_test(test_v2_length_over_the_bound_is_refused_after_the_fixed_part),
		cmocka_unit_test(test_v2_signature_mismatch_is_refused_at_the_first_wrong_octet),
		cmocka_unit_test(test_done_and_bad_are_sticky),
		cmocka_unit_test(test_cidr_list_parses_and_matches),
		cmocka_unit_test(test_cidr_list_refuses_bad_ranges),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
