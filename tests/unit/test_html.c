/*
 * html.c: the built-in converter (links numbered and listed, tables,
 * entities, hostile markup) and the choice of an external converter
 * (fed on stdin, its failure falling back to the built-in one).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../../src/client/html.h"
#define N_ELEM(a)	(sizeof(a) / sizeof((a)[0]))

static void
test_html_table(void **state)
{
	static const struct {
		const char	*in;
		const char	*out;
	} cases[] = {
		{ "", "" },
		{ "a  b\n\n c", "a b c\n" },
		{ "a<br>b<br/><br>c", "a\nb\n\nc\n" },
		{ "<p>one</p><p>two</p>", "one\n\ntwo\n" },
		{ "1 < 2 > 0", "1 < 2 > 0\n" },
		{ "&amp;&lt;&gt;&quot;&apos;&#39;&nbsp;&#65;&#x42;&bogus;&",
		    "&<>\"'' AB&bogus;&\n" },
		{ "&#0;&#1114112;&#xd800;&#99999999999;", "\xef\xbf\xbd"
		    "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\n" },
		{ "&hellip;&mdash;&rsquo;&eacute;&Eacute;&thetasym;&euro;",
		    "\xe2\x80\xa6\xe2\x80\x94\xe2\x80\x99\xc3\xa9\xc3\x89"
		    "\xcf\x91\xe2\x82\xac\n" },
		{ "<SCRIPT>x</SCRIPT>y<STYLE>z", "y\n" },
		{ "<!-- unterminated", "" },
		{ "<a href=\"x\">link</a", "link [1]\n\nLinks:\n[1] x\n" },
		/* A password reset: the link survives, entities decoded. */
		{ "<p>Reset: <a HREF='https://ex.org/r?a=1&amp;b=2'>click "
		    "here</a>.</p>", "Reset: click here [1].\n\nLinks:\n"
		    "[1] https://ex.org/r?a=1&b=2\n" },
		{ "<a href=#top>top</a> <a>none</a> <a href=\"\">e</a>",
		    "top none e\n" },
		{ "<a title=\"a > b\" href=u1>x</a><a href=u2>y</a>",
		    "x [1]y [2]\n\nLinks:\n[1] u1\n[2] u2\n" },
		/* Cells separated, rows on lines. */
		{ "<table><tr><th>Name</th><th>Value</th></tr><tr><td>a</td>"
		    "<td>1</td><td>x</td></tr></table>after",
		    "Name | Value\na | 1 | x\n\nafter\n" },
		{ "<pre>  a\n    b</pre>c", "  a\n    b\n\nc\n" },
		{ "<ul><li>one<li>two</ul>", "* one\n* two\n" },
		/* An image button in a link: its alt text is the link's. */
		{ "<a href=u><img src=x.png alt=\"Reset &amp; go\"></a>",
		    "Reset & go [1]\n\nLinks:\n[1] u\n" },
		{ "<img alt=''>x", "x\n" },
		{ "<div attr=\"unterminated>text", "" },
		{ "<averyveryverylongelementname>t", "t\n" },
	};

	(void)state;
	for (size_t i = 0; i < N_ELEM(cases); i++) {
		char *s = html_to_text(cases[i].in, strlen(cases[i].in));

		assert_non_null(s);
		if (strcmp(s, cases[i].out) != 0)
			fail_msg("case %zu: got \"%s\"", i, s);
		free(s);
	}
}

static char *
repeat(const char *s, size_t n)
{
	size_t len = strlen(s);
	char *p = malloc(len * n + 1);

	assert_non_null(p);
	for (size_t i = 0; i < n; i++)
		memcpy(p + i * len, s, len);
	p[len * n] = '\0';
	return p;
}

static void
test_hostile_markup_is_bounded(void **state)
{
	char *in, *s;

	(void)state;
	/* Nesting a million deep: no recursion, so no stack to exhaust. */
	in = repeat("<div><span><td>", 1000000);
	s = html_to_text(in, strlen(in));
	assert_non_null(s);
	assert_true(strlen(s) < 4 * strlen(in));
	free(s);
	free(in);
	/* More links than we list: the rest keep their text only. */
	in = repeat("<a href=u>t</a>", HTML_LINKS_MAX + 5);
	s = html_to_text(in, strlen(in));
	assert_non_null(s);
	assert_non_null(strstr(s, "[1000] u\n"));
	assert_null(strstr(s, "[1001]"));
	free(s);
	free(in);
	/* A huge URL is listed cut. */
	in = repeat("x", HTML_URL_MAX * 4);
	{
		size_t n = strlen(in) + 32;
		char *a = malloc(n);

		assert_non_null(a);
		(void)snprintf(a, n, "<a href=%s>t</a>", in);
		s = html_to_text(a, strlen(a));
		assert_non_null(s);
		assert_true(strlen(s) < HTML_URL_MAX + 64);
		assert_non_null(strstr(s, "x...\n"));
		free(s);
		free(a);
	}
	free(in);
}

/* A fake converter named name in dir, made when dir is "". */
static void
fake_named(char *dir, size_t size, const char *name, const char *script)
{
	char path[512];
	FILE *f;

	if (dir[0] == '\0') {
		(void)snprintf(dir, size, "/tmp/postino-html-XXXXXX");
		assert_non_null(mkdtemp(dir));
	}
	(void)snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "w");
	assert_non_null(f);
	fputs(script, f);
	assert_int_equal(fclose(f), 0);
	assert_int_equal(chmod(path, 0700), 0);
	assert_int_equal(setenv("PATH", dir, 1), 0);
}

/* A directory holding one fake "w3m", which is all PATH will find. */
static void
fake_converter(char *dir, size_t size, const char *script)
{
	dir[0] = '\0';
	fake_named(dir, size, "w3m", script);
}

static void
fake_remove(const char *dir)
{
	char path[512];

	(void)snprintf(path, sizeof(path), "%s/w3m", dir);
	(void)unlink(path);
	(void)snprintf(path, sizeof(path), "%s/lynx", dir);
	(void)unlink(path);
	(void)rmdir(dir);
}

static void
test_external_converter_gets_stdin_only(void **state)
{
	const char *html = "<p>from <b>stdin</b></p>";
	const char *via;
	char dir[64], *s;

	(void)state;
	(void)unsetenv("POSTINO_HTML");
	/* It echoes its arguments and what came on stdin. */
	fake_converter(dir, sizeof(dir), "#!/bin/sh\necho \"args: $*\"\n"
	    "/bin/cat\n[ -t 2 ] && echo tty\nexit 0\n");
	s = html_render(html, strlen(html), &via);
	assert_non_null(s);
	assert_string_equal(via, "w3m");
	assert_string_equal(s, "args: -dump -T text/html -I UTF-8 -O UTF-8 "
	    "-cols 78 -o display_link_number=1\n<p>from <b>stdin</b></p>");
	free(s);
	/* Forced to the built-in one. */
	assert_int_equal(setenv("POSTINO_HTML", "builtin", 1), 0);
	s = html_render(html, strlen(html), &via);
	assert_string_equal(via, "built-in");
	assert_string_equal(s, "from stdin\n");
	free(s);
	(void)unsetenv("POSTINO_HTML");
	fake_remove(dir);
}

static void
test_failing_converter_falls_back(void **state)
{
	const char *html = "<p>x</p>";
	const char *via;
	char dir[64], *s;

	(void)state;
	(void)unsetenv("POSTINO_HTML");
	fake_converter(dir, sizeof(dir), "#!/bin/sh\necho partial\nexit 3\n");
	s = html_render(html, strlen(html), &via);
	assert_string_equal(via, "built-in");
	assert_string_equal(s, "x\n");
	free(s);
	fake_remove(dir);
	/* One that floods: killed at the output limit. */
	fake_converter(dir, sizeof(dir), "#!/bin/sh\nexec /usr/bin/yes "
	    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\n");
	s = html_render(html, strlen(html), &via);
	assert_string_equal(via, "built-in");
	assert_string_equal(s, "x\n");
	free(s);
	fake_remove(dir);
}

static void
test_lynx_when_w3m_fails(void **state)
{
	const char *html = "<p>x</p>";
	const char *via;
	char dir[64], *s;

	(void)state;
	(void)unsetenv("POSTINO_HTML");
	fake_converter(dir, sizeof(dir), "#!/bin/sh\nexit 1\n");
	fake_named(dir, sizeof(dir), "lynx", "#!/bin/sh\n/bin/cat >/dev/null\n"
	    "echo \"lynx $*\"\n");
	s = html_render(html, strlen(html), &via);
	assert_non_null(s);
	assert_string_equal(via, "lynx");
	assert_string_equal(s, "lynx -dump -stdin -force_html "
	    "-assume_charset=utf-8 -display_charset=utf-8 -width=78 "
	    "-noreferer\n");
	free(s);
	fake_remove(dir);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_html_table),
		cmocka_unit_test(test_hostile_markup_is_bounded),
		cmocka_unit_test(test_external_converter_gets_stdin_only),
		cmocka_unit_test(test_failing_converter_falls_back),
		cmocka_unit_test(test_lynx_when_w3m_fails),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
