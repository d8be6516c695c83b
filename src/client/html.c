/*
 * html.h: HTML to text with links kept; an external converter when there
 * is one, the built-in one otherwise.
 */
#include "html.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../lib/ev.h"
#include "buf.h"

/* ---- entities ---- */

/* The HTML 4 set (and &apos;), sorted by strcmp for bsearch. */
static const struct entity {
	const char	*name;
	uint32_t	 cp;
} entities[] = {
	{ "AElig", 0xc6 }, { "Aacute", 0xc1 }, { "Acirc", 0xc2 },
	{ "Agrave", 0xc0 }, { "Alpha", 0x391 }, { "Aring", 0xc5 },
	{ "Atilde", 0xc3 }, { "Auml", 0xc4 }, { "Beta", 0x392 },
	{ "Ccedil", 0xc7 }, { "Chi", 0x3a7 }, { "Dagger", 0x2021 },
	{ "Delta", 0x394 }, { "ETH", 0xd0 }, { "Eacute", 0xc9 },
	{ "Ecirc", 0xca }, { "Egrave", 0xc8 }, { "Epsilon", 0x395 },
	{ "Eta", 0x397 }, { "Euml", 0xcb }, { "Gamma", 0x393 },
	{ "Iacute", 0xcd }, { "Icirc", 0xce }, { "Igrave", 0xcc },
	{ "Iota", 0x399 }, { "Iuml", 0xcf }, { "Kappa", 0x39a },
	{ "Lambda", 0x39b }, { "Mu", 0x39c }, { "Ntilde", 0xd1 },
	{ "Nu", 0x39d }, { "OElig", 0x152 }, { "Oacute", 0xd3 },
	{ "Ocirc", 0xd4 }, { "Ograve", 0xd2 }, { "Omega", 0x3a9 },
	{ "Omicron", 0x39f }, { "Oslash", 0xd8 }, { "Otilde", 0xd5 },
	{ "Ouml", 0xd6 }, { "Phi", 0x3a6 }, { "Pi", 0x3a0 },
	{ "Prime", 0x2033 }, { "Psi", 0x3a8 }, { "Rho", 0x3a1 },
	{ "Scaron", 0x160 }, { "Sigma", 0x3a3 }, { "THORN", 0xde },
	{ "Tau", 0x3a4 }, { "Theta", 0x398 }, { "Uacute", 0xda },
	{ "Ucirc", 0xdb }, { "Ugrave", 0xd9 }, { "Upsilon", 0x3a5 },
	{ "Uuml", 0xdc }, { "Xi", 0x39e }, { "Yacute", 0xdd },
	{ "Yuml", 0x178 }, { "Zeta", 0x396 }, { "aacute", 0xe1 },
	{ "acirc", 0xe2 }, { "acute", 0xb4 }, { "aelig", 0xe6 },
	{ "agrave", 0xe0 }, { "alefsym", 0x2135 }, { "alpha", 0x3b1 },
	{ "amp", 0x26 }, { "and", 0x2227 }, { "ang", 0x2220 },
	{ "apos", 0x27 }, { "aring", 0xe5 }, { "asymp", 0x2248 },
	{ "atilde", 0xe3 }, { "auml", 0xe4 }, { "bdquo", 0x201e },
	{ "beta", 0x3b2 }, { "brvbar", 0xa6 }, { "bull", 0x2022 },
	{ "cap", 0x2229 }, { "ccedil", 0xe7 }, { "cedil", 0xb8 },
	{ "cent", 0xa2 }, { "chi", 0x3c7 }, { "circ", 0x2c6 },
	{ "clubs", 0x2663 }, { "cong", 0x2245 }, { "copy", 0xa9 },
	{ "crarr", 0x21b5 }, { "cup", 0x222a }, { "curren", 0xa4 },
	{ "dArr", 0x21d3 }, { "dagger", 0x2020 }, { "darr", 0x2193 },
	{ "deg", 0xb0 }, { "delta", 0x3b4 }, { "diams", 0x2666 },
	{ "divide", 0xf7 }, { "eacute", 0xe9 }, { "ecirc", 0xea },
	{ "egrave", 0xe8 }, { "empty", 0x2205 }, { "emsp", 0x2003 },
	{ "ensp", 0x2002 }, { "epsilon", 0x3b5 }, { "equiv", 0x2261 },
	{ "eta", 0x3b7 }, { "eth", 0xf0 }, { "euml", 0xeb },
	{ "euro", 0x20ac }, { "exist", 0x2203 }, { "fnof", 0x192 },
	{ "forall", 0x2200 }, { "frac12", 0xbd }, { "frac14", 0xbc },
	{ "frac34", 0xbe }, { "frasl", 0x2044 }, { "gamma", 0x3b3 },
	{ "ge", 0x2265 }, { "gt", 0x3e }, { "hArr", 0x21d4 },
	{ "harr", 0x2194 }, { "hearts", 0x2665 }, { "hellip", 0x2026 },
	{ "iacute", 0xed }, { "icirc", 0xee }, { "iexcl", 0xa1 },
	{ "igrave", 0xec }, { "image", 0x2111 }, { "infin", 0x221e },
	{ "int", 0x222b }, { "iota", 0x3b9 }, { "iquest", 0xbf },
	{ "isin", 0x2208 }, { "iuml", 0xef }, { "kappa", 0x3ba },
	{ "lArr", 0x21d0 }, { "lambda", 0x3bb }, { "lang", 0x2329 },
	{ "laquo", 0xab }, { "larr", 0x2190 }, { "lceil", 0x2308 },
	{ "ldquo", 0x201c }, { "le", 0x2264 }, { "lfloor", 0x230a },
	{ "lowast", 0x2217 }, { "loz", 0x25ca }, { "lrm", 0x200e },
	{ "lsaquo", 0x2039 }, { "lsquo", 0x2018 }, { "lt", 0x3c },
	{ "macr", 0xaf }, { "mdash", 0x2014 }, { "micro", 0xb5 },
	{ "middot", 0xb7 }, { "minus", 0x2212 }, { "mu", 0x3bc },
	{ "nabla", 0x2207 }, { "nbsp", 0xa0 }, { "ndash", 0x2013 },
	{ "ne", 0x2260 }, { "ni", 0x220b }, { "not", 0xac },
	{ "notin", 0x2209 }, { "nsub", 0x2284 }, { "ntilde", 0xf1 },
	{ "nu", 0x3bd }, { "oacute", 0xf3 }, { "ocirc", 0xf4 },
	{ "oelig", 0x153 }, { "ograve", 0xf2 }, { "oline", 0x203e },
	{ "omega", 0x3c9 }, { "omicron", 0x3bf }, { "oplus", 0x2295 },
	{ "or", 0x2228 }, { "ordf", 0xaa }, { "ordm", 0xba },
	{ "oslash", 0xf8 }, { "otilde", 0xf5 }, { "otimes", 0x2297 },
	{ "ouml", 0xf6 }, { "para", 0xb6 }, { "part", 0x2202 },
	{ "permil", 0x2030 }, { "perp", 0x22a5 }, { "phi", 0x3c6 },
	{ "pi", 0x3c0 }, { "piv", 0x3d6 }, { "plusmn", 0xb1 },
	{ "pound", 0xa3 }, { "prime", 0x2032 }, { "prod", 0x220f },
	{ "prop", 0x221d }, { "psi", 0x3c8 }, { "quot", 0x22 },
	{ "rArr", 0x21d2 }, { "radic", 0x221a }, { "rang", 0x232a },
	{ "raquo", 0xbb }, { "rarr", 0x2192 }, { "rceil", 0x2309 },
	{ "rdquo", 0x201d }, { "real", 0x211c }, { "reg", 0xae },
	{ "rfloor", 0x230b }, { "rho", 0x3c1 }, { "rlm", 0x200f },
	{ "rsaquo", 0x203a }, { "rsquo", 0x2019 }, { "sbquo", 0x201a },
	{ "scaron", 0x161 }, { "sdot", 0x22c5 }, { "sect", 0xa7 },
	{ "shy", 0xad }, { "sigma", 0x3c3 }, { "sigmaf", 0x3c2 },
	{ "sim", 0x223c }, { "spades", 0x2660 }, { "sub", 0x2282 },
	{ "sube", 0x2286 }, { "sum", 0x2211 }, { "sup", 0x2283 },
	{ "sup1", 0xb9 }, { "sup2", 0xb2 }, { "sup3", 0xb3 },
	{ "supe", 0x2287 }, { "szlig", 0xdf }, { "tau", 0x3c4 },
	{ "there4", 0x2234 }, { "theta", 0x3b8 }, { "thetasym", 0x3d1 },
	{ "thinsp", 0x2009 }, { "thorn", 0xfe }, { "tilde", 0x2dc },
	{ "times", 0xd7 }, { "trade", 0x2122 }, { "uArr", 0x21d1 },
	{ "uacute", 0xfa }, { "uarr", 0x2191 }, { "ucirc", 0xfb },
	{ "ugrave", 0xf9 }, { "uml", 0xa8 }, { "upsih", 0x3d2 },
	{ "upsilon", 0x3c5 }, { "uuml", 0xfc }, { "weierp", 0x2118 },
	{ "xi", 0x3be }, { "yacute", 0xfd }, { "yen", 0xa5 }, { "yuml", 0xff },
	{ "zeta", 0x3b6 }, { "zwj", 0x200d }, { "zwnj", 0x200c },
};

/* The longest name above is 8 octets ("thetasym"); "&#x10FFFF;" is 10. */
#define ENTITY_MAX	12

static int
entity_cmp(const void *key, const void *elem)
{
	return strcmp(key, ((const struct entity *)elem)->name);
}

/* A numeric reference's digits s[0..len): its character, 0 when bad. */
static uint32_t
entity_number(const char *s, size_t len)
{
	bool hex = len > 0 && (s[0] == 'x' || s[0] == 'X');
	uint32_t v = 0;

	if (len == (hex ? 1u : 0u))
		return 0;
	for (size_t i = hex ? 1 : 0; i < len; i++) {
		int d;

		if (s[i] >= '0' && s[i] <= '9')
			d = s[i] - '0';
		else if (hex && s[i] >= 'a' && s[i] <= 'f')
			d = s[i] - 'a' + 10;
		else if (hex && s[i] >= 'A' && s[i] <= 'F')
			d = s[i] - 'A' + 10;
		else
			return 0;
		v = v * (hex ? 16 : 10) + (uint32_t)d;
		if (v > 0x10ffff)
			return REPLACEMENT;
	}
	if (v == 0 || (v >= 0xd800 && v <= 0xdfff))
		return REPLACEMENT;
	return v;
}

/* An entity at s ('&'): octets used (0: not one), *cp_r its character. */
static size_t
entity(const char *s, size_t len, uint32_t *cp_r)
{
	char name[ENTITY_MAX + 1];
	const struct entity *e;
	size_t end;

	for (end = 1; end < len && end <= ENTITY_MAX && s[end] != ';'; end++)
		;
	if (end >= len || s[end] != ';' || end < 2)
		return 0;
	if (s[1] == '#') {
		*cp_r = entity_number(s + 2, end - 2);
		return *cp_r == 0 ? 0 : end + 1;
	}
	memcpy(name, s + 1, end - 1);
	name[end - 1] = '\0';
	e = bsearch(name, entities, sizeof(entities) / sizeof(entities[0]),
	    sizeof(entities[0]), entity_cmp);
	if (e == NULL)
		return 0;
	/* A no-break space breaks here: the reader wraps at spaces. */
	*cp_r = e->cp == 0xa0 ? ' ' : e->cp;
	return end + 1;
}

/* ---- the built-in converter ---- */

struct html {
	const char	*s;		/* the input */
	size_t		 len;
	struct buf	 b;		/* the text */
	struct buf	 urls;		/* "[N] URL\n" lines */
	bool		 space;		/* white space pending */
	int		 nl;		/* newlines just written, 0..2 */
	unsigned int	 pre;		/* <pre> open (saturates) */
	size_t		 cells;		/* cells so far in this row */
	size_t		 link;		/* the open link's number, or 0 */
	size_t		 nlinks;
};

static void
put_char(struct html *h, uint32_t cp)
{
	if (h->space && h->nl == 0)
		buf_addc(&h->b, ' ');
	h->space = false;
	buf_add_utf8(&h->b, cp);
	h->nl = 0;
}

static void
put_str(struct html *h, const char *s)
{
	while (*s != '\0')
		put_char(h, (unsigned char)*s++);
}

/* Line ends until want of them are in a row (2: an empty line). */
static void
put_newline(struct html *h, int want)
{
	h->space = false;
	while (h->nl < want) {
		buf_addc(&h->b, '\n');
		h->nl++;
	}
}

static bool
prefix_ci(const char *s, size_t len, const char *p)
{
	size_t n = strlen(p);

	return len >= n && strncasecmp(s, p, n) == 0;
}

/* Where s[0..len) has p (case-insensitive), or len. */
static size_t
find_ci(const char *s, size_t len, const char *p)
{
	size_t n = strlen(p);

	for (size_t i = 0; i + n <= len; i++)
		if (strncasecmp(s + i, p, n) == 0)
			return i;
	return len;
}

static bool
isalnum_ascii(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9');
}

static bool
is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\f';
}

/* One tag's name and the attributes we use (a href, img alt). */
struct tag {
	char		 name[16];	/* lower case; "" when too long */
	bool		 closing;
	size_t		 href, href_len;	/* offsets in the input */
	bool		 has_href;
	size_t		 alt, alt_len;
};

/*
 * The tag at s[i] ('<' and a letter or '/'): fills t, returns the offset
 * after its '>' (or len when unterminated). Quoted values may hold '>'.
 */
static size_t
tag_parse(const struct html *h, size_t i, struct tag *t)
{
	const char *s = h->s;
	size_t len = h->len, n = 0, j = i + 1;

	memset(t, 0, sizeof(*t));
	if (j < len && s[j] == '/') {
		t->closing = true;
		j++;
	}
	while (j < len && (isalnum_ascii(s[j]))) {
		if (n < sizeof(t->name) - 1)
			t->name[n++] = (char)(s[j] | 0x20);
		else
			n = sizeof(t->name);	/* too long: none of ours */
		j++;
	}
	t->name[n < sizeof(t->name) ? n : 0] = '\0';
	while (j < len && s[j] != '>') {
		size_t a = j, alen, v = 0, vlen = 0;

		if (is_space(s[j]) || s[j] == '/') {
			j++;
			continue;
		}
		while (j < len && !is_space(s[j]) && s[j] != '=' &&
		    s[j] != '>' && s[j] != '/')
			j++;
		alen = j - a;
		if (alen == 0)
			j++;		/* a stray '=' */
		while (j < len && is_space(s[j]))
			j++;
		if (alen > 0 && j < len && s[j] == '=') {
			for (j++; j < len && is_space(s[j]); j++)
				;
			if (j < len && (s[j] == '"' || s[j] == '\'')) {
				char q = s[j++];

				v = j;
				while (j < len && s[j] != q)
					j++;
				vlen = j - v;
				if (j < len)
					j++;
			} else {
				v = j;
				while (j < len && !is_space(s[j]) &&
				    s[j] != '>')
					j++;
				vlen = j - v;
			}
		}
		if (alen == 4 && strncasecmp(s + a, "href", 4) == 0 &&
		    !t->has_href) {
			t->has_href = true;
			t->href = v;
			t->href_len = vlen;
		} else if (alen == 3 && strncasecmp(s + a, "alt", 3) == 0 &&
		    t->alt_len == 0) {
			t->alt = v;
			t->alt_len = vlen;
		}
	}
	return j < len ? j + 1 : len;
}

static bool
name_in(const char *name, const char *const *set, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(name, set[i]) == 0)
			return true;
	return false;
}

#define NAME_IN(name, set) \
	name_in(name, set, sizeof(set) / sizeof(set[0]))

/* The open link's mark after its text. */
static void
link_close(struct html *h)
{
	char mark[32];

	if (h->link == 0)
		return;
	(void)snprintf(mark, sizeof(mark), "[%zu]", h->link);
	if (h->nl == 0)
		h->space = true;
	put_str(h, mark);
	h->link = 0;
}

/* A link's URL into the list: entities decoded, white space dropped. */
static void
link_open(struct html *h, const struct tag *t)
{
	const char *u = h->s + t->href;
	size_t i = 0, used = 0;
	char num[32];

	link_close(h);
	while (i < t->href_len && is_space(u[i]))
		i++;
	if (i == t->href_len || u[i] == '#' || h->nlinks >= HTML_LINKS_MAX)
		return;
	h->link = ++h->nlinks;
	(void)snprintf(num, sizeof(num), "[%zu] ", h->link);
	buf_add(&h->urls, num, strlen(num));
	while (i < t->href_len && used < HTML_URL_MAX) {
		uint32_t cp;
		size_t n = u[i] == '&' ? entity(u + i, t->href_len - i, &cp) :
		    0;

		if (n > 0) {
			buf_add_utf8(&h->urls, cp);
			i += n;
		} else if (is_space(u[i])) {
			i++;
			continue;
		} else {
			buf_addc(&h->urls, u[i++]);
		}
		used++;
	}
	if (i < t->href_len)
		buf_add(&h->urls, "...", 3);
	buf_addc(&h->urls, '\n');
}

/* After <script>, <style> or <head>: past its end tag (or the end). */
static size_t
skip_raw(const struct html *h, size_t i, const char *name)
{
	char end[sizeof(((struct tag *)0)->name) + 2];

	(void)snprintf(end, sizeof(end), "</%s", name);
	i += find_ci(h->s + i, h->len - i, end);
	while (i < h->len && h->s[i] != '>')
		i++;
	return i < h->len ? i + 1 : h->len;
}

/* An image is its alt text (a button in a link is often only that). */
static void
alt_text(struct html *h, const struct tag *t)
{
	const char *a = h->s + t->alt;
	size_t i = 0;

	while (i < t->alt_len) {
		uint32_t cp;
		size_t n = a[i] == '&' ? entity(a + i, t->alt_len - i, &cp) :
		    0;

		if (n > 0) {
			put_char(h, cp);
			i += n;
		} else if (is_space(a[i])) {
			h->space = true;
			i++;
		} else {
			n = utf8_next((const unsigned char *)a + i,
			    t->alt_len - i, &cp);
			put_char(h, cp);
			i += n;
		}
	}
}

static void
element(struct html *h, const struct tag *t)
{
	static const char *const blocks[] = { "p", "div", "h1", "h2", "h3",
	    "h4", "h5", "h6", "table", "ul", "ol", "dl", "blockquote", "hr",
	    "title", "body", "section", "article", "header", "footer", "nav",
	    "main", "aside", "form", "fieldset", "address", "figure",
	    "center" };
	static const char *const breaks[] = { "br", "li", "dt", "dd",
	    "option", "caption" };
	const char *n = t->name;

	if (strcmp(n, "a") == 0) {
		if (t->closing)
			link_close(h);
		else if (t->has_href)
			link_open(h, t);
	} else if (strcmp(n, "img") == 0) {
		alt_text(h, t);
	} else if (strcmp(n, "tr") == 0) {
		put_newline(h, 1);
		h->cells = 0;
	} else if ((strcmp(n, "td") == 0 || strcmp(n, "th") == 0) &&
	    !t->closing) {
		if (h->cells++ > 0 && h->nl == 0) {
			h->space = false;
			put_str(h, " | ");
		}
	} else if (strcmp(n, "pre") == 0) {
		put_newline(h, 2);
		if (t->closing)
			h->pre -= h->pre > 0;
		else if (h->pre < UINT_MAX)
			h->pre++;
	} else if (NAME_IN(n, breaks)) {
		put_newline(h, h->nl + 1 > 2 ? 2 : h->nl + 1);
		if (!t->closing && strcmp(n, "li") == 0) {
			put_char(h, '*');
			h->space = true;
		}
	} else if (NAME_IN(n, blocks)) {
		put_newline(h, 2);
	}
}

/* Text in <pre>: white space as it is. */
static void
pre_char(struct html *h, char c)
{
	if (c == '\r')
		return;
	h->space = false;
	buf_addc(&h->b, c);
	h->nl = c == '\n' ? (h->nl < 2 ? h->nl + 1 : 2) : 0;
}

/* The markup at s[i] ('<'): offset after it. */
static size_t
markup(struct html *h, size_t i)
{
	const char *s = h->s;
	size_t len = h->len;
	struct tag t;

	if (prefix_ci(s + i, len - i, "<!--")) {
		size_t e = find_ci(s + i + 4, len - i - 4, "-->");

		return e < len - i - 4 ? i + 4 + e + 3 : len;
	}
	if (i + 1 < len && (s[i + 1] == '!' || s[i + 1] == '?')) {
		while (i < len && s[i] != '>')
			i++;
		return i < len ? i + 1 : len;
	}
	if (!(i + 1 < len && (isalnum_ascii(s[i + 1]) || (s[i + 1] == '/' &&
	    i + 2 < len && isalnum_ascii(s[i + 2]))))) {
		put_char(h, '<');	/* "a < b" */
		return i + 1;
	}
	i = tag_parse(h, i, &t);
	if (!t.closing && (strcmp(t.name, "script") == 0 ||
	    strcmp(t.name, "style") == 0 || strcmp(t.name, "head") == 0))
		return skip_raw(h, i, t.name);
	element(h, &t);
	return i;
}

char *
html_to_text(const char *html, size_t len)
{
	struct html h = { .s = html, .len = len, .nl = 2 };
	size_t i = 0;
	char *urls;

	while (i < len && !h.b.oom) {
		char c = html[i];
		uint32_t cp;
		size_t n;

		if (c == '<') {
			i = markup(&h, i);
		} else if (c == '&') {
			n = entity(html + i, len - i, &cp);
			put_char(&h, n > 0 ? cp : '&');
			i += n > 0 ? n : 1;
		} else if (h.pre > 0 && is_space(c)) {
			pre_char(&h, c);
			i++;
		} else if (is_space(c)) {
			h.space = true;
			i++;
		} else {
			n = utf8_next((const unsigned char *)html + i, len - i,
			    &cp);
			put_char(&h, cp);
			i += n;
		}
	}
	link_close(&h);
	/* One line end at the end, none for nothing; then the links. */
	while (h.b.len > 0 && h.b.p[h.b.len - 1] == '\n')
		h.b.len--;
	if (h.b.len > 0)
		buf_addc(&h.b, '\n');
	urls = buf_take(&h.urls, NULL);
	if (urls != NULL && urls[0] != '\0') {
		buf_add(&h.b, "\nLinks:\n", 8);
		buf_add(&h.b, urls, strlen(urls));
	}
	if (urls == NULL)
		h.b.oom = true;
	free(urls);
	return buf_take(&h.b, NULL);
}

/* ---- external converters ---- */

struct converter {
	const char	*name;
	const char	*argv[16];
};

/*
 * The HTML comes on stdin, the text goes to stdout; nothing on the
 * command line comes from the mail. w3m numbers links as "[N]text" with
 * a "References:" list; lynx likewise. 78 columns: the reader re-wraps.
 */
static const struct converter converters[] = {
	{ "w3m", { "w3m", "-dump", "-T", "text/html", "-I", "UTF-8", "-O",
	    "UTF-8", "-cols", "78", "-o", "display_link_number=1", NULL } },
	{ "lynx", { "lynx", "-dump", "-stdin", "-force_html",
	    "-assume_charset=utf-8", "-display_charset=utf-8", "-width=78",
	    "-noreferer", NULL } },
};

/* name in $PATH (else /usr/bin:/bin) as an executable: path_r filled. */
static bool
find_program(const char *name, char *path_r, size_t size)
{
	const char *path = getenv("PATH");
	const char *p;

	if (path == NULL || path[0] == '\0')
		path = "/usr/bin:/bin";
	for (p = path; ; ) {
		const char *colon = strchr(p, ':');
		size_t n = colon != NULL ? (size_t)(colon - p) : strlen(p);
		int w = snprintf(path_r, size, "%.*s/%s", (int)n, p, name);

		/* An empty entry, the current directory, is not searched. */
		if (n > 0 && p[0] == '/' && w > 0 && (size_t)w < size &&
		    access(path_r, X_OK) == 0)
			return true;
		if (colon == NULL)
			return false;
		p = colon + 1;
	}
}

/* In the child: stdin, stdout, no terminal, no other fd; never returns. */
static void
child(const char *path, const struct converter *cv, int in, int out)
{
	int null = open("/dev/null", O_WRONLY);

	(void)setsid();		/* no controlling terminal to draw on */
	if (dup2(in, 0) < 0 || dup2(out, 1) < 0 || null < 0 ||
	    dup2(null, 2) < 0)
		_exit(127);
	(void)close_range(3, ~0u, 0);
	(void)signal(SIGPIPE, SIG_DFL);
	execv(path, (char *const *)cv->argv);
	_exit(127);
}

/* The child's output; false on timeout, overflow, failure (then killed). */
static bool
pump(int to, int from, const char *html, size_t len, struct buf *out)
{
	uint64_t deadline = ev_now_ms() + HTML_CONVERT_MS;
	size_t sent = 0;
	char chunk[16384];

	if (len == 0) {
		(void)close(to);
		to = -1;
	}
	for (;;) {
		struct pollfd p[2] = { { .fd = from, .events = POLLIN },
		    { .fd = to, .events = POLLOUT } };
		uint64_t now = ev_now_ms();
		ssize_t n;

		if (now >= deadline)
			break;
		if (poll(p, to >= 0 ? 2 : 1, (int)(deadline - now)) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (to >= 0 && p[1].revents != 0) {
			n = write(to, html + sent, len - sent);
			if (n > 0)
				sent += (size_t)n;
			if ((n < 0 && errno != EAGAIN && errno != EINTR) ||
			    sent == len) {
				(void)close(to);
				to = -1;
			}
		}
		if (p[0].revents == 0)
			continue;
		n = read(from, chunk, sizeof(chunk));
		if (n == 0) {
			if (to >= 0)
				(void)close(to);
			return !out->oom;
		}
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			continue;
		if (n < 0 || out->len + (size_t)n > HTML_CONVERT_OUT_MAX)
			break;
		buf_add(out, chunk, (size_t)n);
	}
	if (to >= 0)
		(void)close(to);
	return false;
}

/* What one converter made of the HTML; NULL when it failed. */
static char *
convert(const char *path, const struct converter *cv, const char *html,
    size_t len)
{
	struct buf out = { 0 };
	int in[2], res[2], status;
	bool ok;
	pid_t pid;

	if (pipe2(in, O_CLOEXEC) < 0)
		return NULL;
	if (pipe2(res, O_CLOEXEC) < 0) {
		(void)close(in[0]);
		(void)close(in[1]);
		return NULL;
	}
	pid = fork();
	if (pid == 0)
		child(path, cv, in[0], res[1]);
	(void)close(in[0]);
	(void)close(res[1]);
	if (pid > 0 && fcntl(in[1], F_SETFL, O_NONBLOCK) == 0) {
		ok = pump(in[1], res[0], html, len, &out); /* closes in[1] */
	} else {
		ok = false;
		(void)close(in[1]);
	}
	(void)close(res[0]);
	if (pid > 0) {
		if (!ok)
			(void)kill(pid, SIGKILL);
		while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
			;
		ok = ok && WIFEXITED(status) && WEXITSTATUS(status) == 0;
	}
	if (!ok) {
		free(out.p);
		return NULL;
	}
	return buf_take(&out, NULL);
}

char *
html_render(const char *html, size_t len, const char **via_r)
{
	const char *force = getenv("POSTINO_HTML");
	char path[PATH_MAX];

	if (force == NULL || strcmp(force, "builtin") != 0) {
		for (size_t i = 0; i < sizeof(converters) /
		    sizeof(converters[0]); i++) {
			char *t;

			if (!find_program(converters[i].name, path,
			    sizeof(path)))
				continue;
			t = convert(path, &converters[i], html, len);
			if (t != NULL) {
				*via_r = converters[i].name;
				return t;
			}
		}
	}
	*via_r = "built-in";
	return html_to_text(html, len);
}
