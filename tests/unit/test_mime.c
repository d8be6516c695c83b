/*
 * mime: messages made displayable. RFC 2047 headers (a broken encoded-word
 * included), quoted-printable and base64 bodies, the part chosen from
 * multipart/alternative and multipart/mixed, attachments with decoded
 * sizes, charsets both ways, and the property the terminal depends on: no
 * control character or escape sequence from mail ever comes out.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../src/client/mime.h"

#define N_ELEM(a)	(sizeof(a) / sizeof((a)[0]))

/* True when s could go to a terminal: see mime.h. */
static bool
harmless(const char *s, size_t len, bool oneline)
{
	const unsigned char *u = (const unsigned char *)s;

	for (size_t i = 0; i < len; i++) {
		if (u[i] == '\t' || u[i] == '\n') {
			if (oneline)
				return false;
			continue;
		}
		if (u[i] < 0x20 || u[i] == 0x7f)
			return false;
		/* C1 controls in UTF-8: C2 80 .. C2 9F */
		if (u[i] == 0xc2 && i + 1 < len && u[i + 1] >= 0x80 &&
		    u[i + 1] <= 0x9f)
			return false;
		/* U+202A..U+202E, U+2066..U+2069 */
		if (u[i] == 0xe2 && i + 2 < len &&
		    ((u[i + 1] == 0x80 && u[i + 2] >= 0xaa &&
		    u[i + 2] <= 0xae) || (u[i + 1] == 0x81 &&
		    u[i + 2] >= 0xa6 && u[i + 2] <= 0xa9)))
			return false;
	}
	return true;
}

static void
assert_msg_harmless(const struct mime_msg *m)
{
	const char *hdr[] = { m->from, m->to, m->cc, m->date, m->subject,
	    m->from_short, m->date_short };

	for (size_t i = 0; i < N_ELEM(hdr); i++) {
		assert_non_null(hdr[i]);
		assert_true(harmless(hdr[i], strlen(hdr[i]), true));
	}
	assert_non_null(m->body);
	assert_int_equal(strlen(m->body), m->body_len);
	assert_true(harmless(m->body, m->body_len, false));
	for (size_t i = 0; i < m->n_att; i++) {
		assert_true(harmless(m->att[i].name, strlen(m->att[i].name),
		    true));
		assert_true(harmless(m->att[i].type, strlen(m->att[i].type),
		    true));
	}
}

static struct mime_msg *
parse_cs(const char *text, const char *codeset)
{
	struct mime_msg *m = NULL;
	char err[ERR_LEN];

	assert_int_equal(mime_parse(text, strlen(text), codeset, &m, err), 0);
	assert_non_null(m);
	assert_msg_harmless(m);
	return m;
}

static struct mime_msg *
parse(const char *text)
{
	return parse_cs(text, "UTF-8");
}

static int
setup(void **state)
{
	(void)state;
	/* HTML as the built-in converter makes it, w3m or not (test_html.c). */
	(void)setenv("POSTINO_HTML", "builtin", 1);
	mime_init();
	return 0;
}

static int
teardown(void **state)
{
	(void)state;
	mime_shutdown();
	return 0;
}

/* ---- headers ---- */

static void
test_rfc2047_words_are_decoded(void **state)
{
	struct mime_msg *m;

	(void)state;
	m = parse("From: =?ISO-8859-1?Q?Andr=E9?= Muller <andre@example.org>\n"
	    "To: =?UTF-8?B?QsO2Yg==?= <bob@example.org>, carol@example.org\n"
	    "Subject: =?UTF-8?B?SGVsbG8g?= =?UTF-8?Q?w=C3=B6rld?=\n"
	    "Date: Tue, 14 Nov 2023 22:13:20 +0100\n"
	    "\n"
	    "hi\n");
	assert_string_equal(m->from, "Andr\xc3\xa9 Muller <andre@example.org>");
	assert_string_equal(m->from_short, "Andr\xc3\xa9 Muller");
	assert_non_null(strstr(m->to, "B\xc3\xb6" "b <bob@example.org>"));
	assert_non_null(strstr(m->to, "carol@example.org"));
	/* Adjacent encoded-words join without the space between them. */
	assert_string_equal(m->subject, "Hello w\xc3\xb6rld");
	assert_string_equal(m->date, "Tue, 14 Nov 2023 22:13:20 +0100");
	assert_string_equal(m->date_short, "2023-11-14 22:13");
	assert_string_equal(m->body, "hi\n");
	assert_string_equal(m->cc, "");
	mime_free(&m);
	assert_null(m);
}

static void
test_broken_encoded_words_stay_as_text(void **state)
{
	static const struct {
		const char	*subject;
		const char	*want;		/* a substring of the result */
	} cases[] = {
		{ "=?utf-8?q?unterminated", "unterminated" },
		{ "=?utf-8?b?!!!not-base64!!!?=", "" },
		{ "=?x-no-such-charset?q?abc?=", "abc" },
		{ "=?utf-8?x?abc?=", "abc" },
		{ "plain =?", "plain =?" },
		{ "=?utf-8?q?=FF=FE?=", "" },		/* invalid UTF-8 */
	};

	(void)state;
	for (size_t i = 0; i < N_ELEM(cases); i++) {
		char text[256];
		struct mime_msg *m;

		(void)snprintf(text, sizeof(text),
		    "From: a@example.org\nSubject: %s\n\nbody\n",
		    cases[i].subject);
		m = parse(text);
		assert_non_null(strstr(m->subject, cases[i].want));
		assert_string_equal(m->body, "body\n");
		mime_free(&m);
	}
}

static void
test_controls_in_headers_are_made_visible(void **state)
{
	struct mime_msg *m;

	(void)state;
	/* Raw and encoded ESC, BEL, C1 CSI and a bidi override. */
	m = parse("From: \"Eve\x1b[2J\" <eve@example.org>\n"
	    "To: =?utf-8?q?=1B]0;pwned=07?= <x@example.org>\n"
	    "Subject: =?utf-8?q?a=C2=9B31mb=E2=80=AEc?= \x1b[31mred\x7f\n"
	    "Date: \x1b[H\n"
	    "\n"
	    "x\n");
	assert_non_null(strstr(m->from, "Eve^[[2J"));
	assert_non_null(strstr(m->to, "^[]0;pwned^G"));
	assert_non_null(strstr(m->subject, "a?31mb?c"));
	assert_non_null(strstr(m->subject, "^[[31mred^?"));
	assert_non_null(strstr(m->date, "^[[H"));
	mime_free(&m);
}

static void
test_folded_header_is_one_line(void **state)
{
	struct mime_msg *m;

	(void)state;
	m = parse("Subject: first\n\tsecond\n =?utf-8?q?tab=09in?=\n\nx\n");
	assert_null(strchr(m->subject, '\n'));
	assert_null(strchr(m->subject, '\t'));
	assert_non_null(strstr(m->subject, "first"));
	assert_non_null(strstr(m->subject, "second"));
	mime_free(&m);
}

static void
test_header_only_as_from_top(void **state)
{
	struct mime_msg *m;

	(void)state;
	m = parse("From: bob@example.org\r\nSubject: only a header\r\n\r\n");
	assert_string_equal(m->from_short, "bob@example.org");
	assert_string_equal(m->subject, "only a header");
	assert_string_equal(m->date_short, "");
	assert_int_equal(m->body_len, 0);
	assert_int_equal(m->n_att, 0);
	mime_free(&m);
}

/* ---- bodies ---- */

static void
test_quoted_printable_body(void **state)
{
	struct mime_msg *m;

	(void)state;
	m = parse("Subject: qp\n"
	    "MIME-Version: 1.0\n"
	    "Content-Type: text/plain; charset=utf-8\n"
	    "Content-Transfer-Encoding: quoted-printable\n"
	    "\n"
	    "Gr=C3=BC=C3=9Fe, a soft=\n"
	    "break and =3D sign.\n"
	    "Escape: =1B[31m bell =07 csi =C2=9B\n");
	assert_string_equal(m->body, "Gr\xc3\xbc\xc3\x9f" "e, a softbreak "
	    "and = sign.\nEscape: ^[[31m bell ^G csi ?\n");
	assert_false(m->body_html);
	mime_free(&m);
}

static void
test_base64_body_with_crlf_and_nul(void **state)
{
	struct mime_msg *m;

	(void)state;
	/* "line one\r\nline\0two\r\nlone\rcr\r\n" */
	m = parse("Subject: b64\n"
	    "MIME-Version: 1.0\n"
	    "Content-Type: text/plain; charset=us-ascii\n"
	    "Content-Transfer-Encoding: base64\n"
	    "\n"
	    "bGluZSBvbmUNCmxpbmUAdHdvDQpsb25lDWNyDQo=\n");
	assert_string_equal(m->body, "line one\nline^@two\nlone^Mcr\n");
	mime_free(&m);
}

static void
test_latin1_body_to_utf8_and_back(void **state)
{
	static const char text[] =
	    "Subject: =?iso-8859-1?q?caf=E9?=\n"
	    "MIME-Version: 1.0\n"
	    "Content-Type: text/plain; charset=ISO-8859-1\n"
	    "Content-Transfer-Encoding: 8bit\n"
	    "\n"
	    "Caf\xe9 cr\xe8me \x80\x9b\n";
	struct mime_msg *m;

	(void)state;
	m = parse_cs(text, "UTF-8");
	/* 0x80 and 0x9b are C1 controls in ISO-8859-1: harmless '?' */
	assert_string_equal(m->body, "Caf\xc3\xa9 cr\xc3\xa8me ??\n");
	assert_string_equal(m->subject, "caf\xc3\xa9");
	mime_free(&m);

	m = parse_cs(text, "ISO-8859-1");
	assert_string_equal(m->body, "Caf\xe9 cr\xe8me ??\n");
	mime_free(&m);

	/* The C locale: what ASCII lacks becomes '?' */
	m = parse_cs(text, "ANSI_X3.4-1968");
	assert_string_equal(m->body, "Caf? cr?me ??\n");
	assert_string_equal(m->subject, "caf?");
	mime_free(&m);
}

static void
test_8bit_without_charset_is_read_as_latin1(void **state)
{
	struct mime_msg *m;

	(void)state;
	m = parse("Subject: x\n\nna\xefve\n");
	assert_string_equal(m->body, "na\xc3\xafve\n");
	mime_free(&m);
	/* Declared UTF-8 but invalid: U+FFFD, never the raw octet. */
	m = parse("Subject: x\nMIME-Version: 1.0\n"
	    "Content-Type: text/plain; charset=utf-8\n\nna\xefve\n");
	assert_string_equal(m->body, "na\xef\xbf\xbdve\n");
	mime_free(&m);
}

static void
test_unknown_charset_is_still_safe(void **state)
{
	struct mime_msg *m;

	(void)state;
	m = parse("Subject: x\nMIME-Version: 1.0\n"
	    "Content-Type: text/plain; charset=x-unheard-of\n\n"
	    "ok \x1b[0m\n");
	assert_string_equal(m->body, "ok ^[[0m\n");
	mime_free(&m);
	m = parse_cs("Subject: x\n\nplain \xc3\xa9\n", "X-NO-SUCH-CODESET");
	assert_true(harmless(m->body, m->body_len, false));
	mime_free(&m);
}

/* ---- structure ---- */

static void
test_alternative_prefers_plain(void **state)
{
	struct mime_msg *m;

	(void)state;
	m = parse("Subject: alt\n"
	    "MIME-Version: 1.0\n"
	    "Content-Type: multipart/alternative; boundary=\"b1\"\n"
	    "\n"
	    "--b1\n"
	    "Content-Type: text/html; charset=utf-8\n"
	    "\n"
	    "<p>the <b>HTML</b> one</p>\n"
	    "--b1\n"
	    "Content-Type: text/plain; charset=utf-8\n"
	    "\n"
	    "the plain one\n"
	    "--b1--\n");
	assert_string_equal(m->body, "the plain one\n");
	assert_false(m->body_html);
	assert_int_equal(m->n_att, 0);
	mime_free(&m);
}

static void
test_html_only_is_stripped(void **state)
{
	struct mime_msg *m;

	(void)state;
	m = parse("Subject: html\n"
	    "MIME-Version: 1.0\n"
	    "Content-Type: multipart/alternative; boundary=b2\n"
	    "\n"
	    "--b2\n"
	    "Content-Type: text/html; charset=iso-8859-1\n"
	    "Content-Transfer-Encoding: quoted-printable\n"
	    "\n"
	    "<html><head><title>t</title><style>p{color:red}</style></head>"
	    "<body><script>alert(1)</script><p>Caf=E9 &amp; <i>cr&egrave;me"
	    "</i><br>2 &lt; 3 &#27;[1m&#x41;</p><ul><li>one<li>two</ul>"
	    "<!-- <p>hidden</p> --></body></html>\n"
	    "--b2--\n");
	assert_true(m->body_html);
	assert_string_equal(m->body, "Caf\xc3\xa9 & cr\xc3\xa8me\n"
	    "2 < 3 ^[[1mA\n\n* one\n* two\n");
	mime_free(&m);
}

static void
test_mixed_lists_attachments_decoded(void **state)
{
	struct mime_msg *m;

	(void)state;
	m = parse("Subject: report\n"
	    "MIME-Version: 1.0\n"
	    "Content-Type: multipart/mixed; boundary=\"mix\"\n"
	    "\n"
	    "preamble\n"
	    "--mix\n"
	    "Content-Type: multipart/alternative; boundary=\"alt\"\n"
	    "\n"
	    "--alt\n"
	    "Content-Type: text/plain; charset=utf-8\n"
	    "\n"
	    "See the attachment.\n"
	    "--alt\n"
	    "Content-Type: text/html; charset=utf-8\n"
	    "\n"
	    "<p>See the attachment.</p>\n"
	    "--alt--\n"
	    "--mix\n"
	    "Content-Type: application/pdf; name=\"r.pdf\"\n"
	    "Content-Disposition: attachment;\n"
	    " filename*=UTF-8''r%C3%A9sum%C3%A9%1B.pdf\n"
	    "Content-Transfer-Encoding: base64\n"
	    "\n"
	    "AAECAwQFBgcICQ==\n"		/* 10 octets */
	    "--mix\n"
	    "Content-Type: text/plain; name=notes.txt\n"
	    "Content-Disposition: attachment\n"
	    "\n"
	    "not the body\n"
	    "--mix\n"
	    "Content-Type: message/rfc822\n"
	    "\n"
	    "Subject: =?utf-8?q?inner=1B?=\n"
	    "\n"
	    "inner body\n"
	    "--mix--\n");
	assert_string_equal(m->body, "See the attachment.\n");
	assert_int_equal(m->n_att, 3);
	assert_string_equal(m->att[0].name, "r\xc3\xa9sum\xc3\xa9^[.pdf");
	assert_string_equal(m->att[0].type, "application/pdf");
	assert_int_equal(m->att[0].size, 10);
	assert_string_equal(m->att[1].name, "notes.txt");
	assert_true(m->att[1].size >= strlen("not the body"));
	assert_true(m->att[1].size <= strlen("not the body\n"));
	assert_string_equal(m->att[2].name, "inner^[");
	assert_string_equal(m->att[2].type, "message/rfc822");
	assert_true(m->att[2].size > 20);
	mime_free(&m);
}

static void
test_no_text_part(void **state)
{
	struct mime_msg *m;

	(void)state;
	m = parse("Subject: img\n"
	    "MIME-Version: 1.0\n"
	    "Content-Type: image/png\n"
	    "Content-Transfer-Encoding: base64\n"
	    "\n"
	    "iVBORw0KGgo=\n");
	assert_true(m->body_none);
	assert_int_equal(m->body_len, 0);
	assert_int_equal(m->n_att, 1);
	assert_string_equal(m->att[0].name, "(no name)");
	assert_int_equal(m->att[0].size, 8);
	mime_free(&m);
}

static void
test_deep_nesting_is_bounded(void **state)
{
	size_t depth = 2000, cap = depth * 64 + 256, n = 0;
	char *text = malloc(cap);
	struct mime_msg *m = NULL;
	char err[ERR_LEN];

	(void)state;
	assert_non_null(text);
	n += (size_t)snprintf(text + n, cap - n, "Subject: deep\n"
	    "MIME-Version: 1.0\n");
	for (size_t i = 0; i < depth; i++)
		n += (size_t)snprintf(text + n, cap - n,
		    "Content-Type: multipart/mixed; boundary=b%zu\n\n--b%zu\n",
		    i, i);
	n += (size_t)snprintf(text + n, cap - n, "\ndeepest\n");
	assert_true(n < cap);
	assert_int_equal(mime_parse(text, n, "UTF-8", &m, err), 0);
	assert_msg_harmless(m);
	mime_free(&m);
	free(text);
}

/* Every prefix of a hostile message parses, and safely. */
static void
test_every_prefix_is_safe(void **state)
{
	static const char text[] =
	    "From: =?utf-8?q?=1B[2J?= <a@b>\r\n"
	    "Subject: =?utf-8?b?G1sybQ==?= x\r\n"
	    "MIME-Version: 1.0\r\n"
	    "Content-Type: multipart/mixed; boundary=\"z\"\r\n"
	    "\r\n"
	    "--z\r\n"
	    "Content-Type: text/plain; charset=utf-8\r\n"
	    "Content-Transfer-Encoding: quoted-printable\r\n"
	    "\r\n"
	    "=1B]52;c;AAAA=07 =C2=85 =E2=80=AE =\r\n"
	    "--z\r\n"
	    "Content-Type: text/html\r\n"
	    "Content-Disposition: attachment; filename=\"\x1b[7m.html\"\r\n"
	    "\r\n"
	    "<b>&#155;&#x1b;</b>\r\n"
	    "--z--\r\n";
	char err[ERR_LEN];

	(void)state;
	for (size_t len = 0; len <= sizeof(text) - 1; len++) {
		struct mime_msg *m = NULL;

		assert_int_equal(mime_parse(text, len, "UTF-8", &m, err), 0);
		assert_msg_harmless(m);
		mime_free(&m);
	}
}

/* ---- the primitives ---- */

static void
test_display_table(void **state)
{
	static const struct {
		const char	*in;
		size_t		 len;
		bool		 oneline;
		const char	*out;
	} cases[] = {
		{ "a\tb\nc", 5, false, "a\tb\nc" },
		{ "a\tb\nc", 5, true, "a b c" },
		{ "a\r\nb\rc", 6, false, "a\nb^Mc" },
		{ "a\r\nb", 4, true, "a  b" },
		{ "\x1b[0m", 4, false, "^[[0m" },
		{ "x\0y", 3, false, "x^@y" },
		{ "\x7f", 1, false, "^?" },
		{ "\xc2\x9b" "1m", 4, false, "?1m" },
		{ "\xe2\x80\xae" "abc", 6, false, "?abc" },
		{ "\xe2\x81\xa6" "x", 4, false, "?x" },
		{ "\xff", 1, false, "\xef\xbf\xbd" },
		{ "\xc0\xaf", 2, false, "\xef\xbf\xbd\xef\xbf\xbd" },
		{ "\xed\xa0\x80", 3, false,
		    "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd" },
		{ "\xe2\x82", 2, false, "\xef\xbf\xbd\xef\xbf\xbd" },
		{ "\xf0\x9f\x93\xa7", 4, false, "\xf0\x9f\x93\xa7" },
		{ "", 0, false, "" },
	};

	(void)state;
	for (size_t i = 0; i < N_ELEM(cases); i++) {
		size_t len;
		char *s = mime_display(cases[i].in, cases[i].len, "UTF-8",
		    cases[i].oneline, &len);

		assert_non_null(s);
		assert_string_equal(s, cases[i].out);
		assert_int_equal(len, strlen(cases[i].out));
		free(s);
	}
}

static void
test_display_to_8bit_codesets(void **state)
{
	char *s;

	(void)state;
	s = mime_display("\xc3\xa9\xe2\x82\xac\x1b", 6, "ISO-8859-1", false,
	    NULL);
	assert_string_equal(s, "\xe9?^[");
	free(s);
	s = mime_display("\xc3\xa9\xe2\x82\xac", 5, "ISO-8859-15", false, NULL);
	assert_string_equal(s, "\xe9\xa4");
	free(s);
	s = mime_display("\xf0\x9f\x93\xa7 ok", 7, "ANSI_X3.4-1968", false,
	    NULL);
	assert_string_equal(s, "? ok");
	free(s);
	/* A stateful charset cannot smuggle ESC back in. */
	s = mime_display("\xe6\x97\xa5", 3, "ISO-2022-JP", false, NULL);
	assert_non_null(s);
	assert_null(strchr(s, '\x1b'));
	free(s);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rfc2047_words_are_decoded),
		cmocka_unit_test(test_broken_encoded_words_stay_as_text),
		cmocka_unit_test(test_controls_in_headers_are_made_visible),
		cmocka_unit_test(test_folded_header_is_one_line),
		cmocka_unit_test(test_header_only_as_from_top),
		cmocka_unit_test(test_quoted_printable_body),
		cmocka_unit_test(test_base64_body_with_crlf_and_nul),
		cmocka_unit_test(test_latin1_body_to_utf8_and_back),
		cmocka_unit_test(test_8bit_without_charset_is_read_as_latin1),
		cmocka_unit_test(test_unknown_charset_is_still_safe),
		cmocka_unit_test(test_alternative_prefers_plain),
		cmocka_unit_test(test_html_only_is_stripped),
		cmocka_unit_test(test_mixed_lists_attachments_decoded),
		cmocka_unit_test(test_no_text_part),
		cmocka_unit_test(test_deep_nesting_is_bounded),
		cmocka_unit_test(test_every_prefix_is_safe),
		cmocka_unit_test(test_display_table),
		cmocka_unit_test(test_display_to_8bit_codesets),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
