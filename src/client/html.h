/*
 * text/html made readable as text, links kept: each link's text is
 * followed by " [N]", and a list "[N] URL" comes under the text, so a
 * mail that is only HTML (a password reset) can still be acted on.
 *
 * html_render() uses a well-kept converter when the system has one (w3m,
 * else lynx), fed the HTML on stdin, with no shell, no terminal, no name
 * or URL from the mail on its command line, a time limit and an output
 * limit; otherwise, or when it fails, the built-in html_to_text(). The
 * environment variable POSTINO_HTML=builtin forces the built-in one.
 *
 * Input is UTF-8 (invalid sequences pass through); so is the output,
 * which is not yet display text: it goes through mime_display() like
 * every other text from mail.
 */
#ifndef POSTINO_HTML_H
#define POSTINO_HTML_H

#include <stddef.h>

#include "limits.h"


/*
 * The built-in converter: script, style and head dropped, block elements
 * as line breaks, table rows on lines with cells separated by " | ",
 * <pre> kept as it is, images as their alt text, the HTML 4 entities and
 * numeric references decoded, links numbered. Linear in len, no
 * recursion, so hostile nesting or unterminated tags and comments cost
 * nothing extra.
 * Allocated, NUL-terminated; NULL when out of memory.
 */
char *html_to_text(const char *html, size_t len);

/*
 * An external converter's text, else html_to_text()'s. *via_r names the
 * one used ("w3m", "lynx", "built-in"). NULL when out of memory.
 */
char *html_render(const char *html, size_t len, const char **via_r);

#endif
