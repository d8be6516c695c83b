/*
 * A message made displayable, with GMime 3: RFC 2047 headers decoded, the
 * text body chosen (text/plain, else text/html made text by html.h),
 * its transfer encoding undone and its charset converted, attachments
 * listed by name and decoded size.
 *
 * Every string this module returns is "display text": valid in the
 * terminal's charset (the codeset argument, nl_langinfo(CODESET) after
 * setlocale), and harmless on a terminal: no C0 or C1 control, no DEL, no
 * bidirectional override, so mail cannot move the cursor, retitle the
 * window, redefine keys or hide text. Tab and newline survive in bodies
 * only; a header value is one line. Controls become caret notation (ESC
 * is "^[", DEL "^?"), C1 controls and bidi overrides '?', invalid UTF-8
 * U+FFFD, characters the terminal's charset lacks '?'.
 */
#ifndef POSTINO_MIME_H
#define POSTINO_MIME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../lib/str.h"
#include "limits.h"


struct mime_attachment {
	char		*name;		/* display text, never NULL */
	char		*type;		/* "image/png", display text */
	uint64_t	 size;		/* decoded octets */
};

struct mime_msg {
	/* Header fields as display text, one line each, "" when absent. */
	char		*from, *to, *cc, *date, *subject;
	char		*from_short;	/* display name, else address */
	char		*date_short;	/* "YYYY-MM-DD HH:MM", else Date */
	/* Display text, lines ending in "\n"; NUL-terminated. */
	char		*body;
	size_t		 body_len;
	bool		 body_html;	/* rendered from text/html */
	const char	*html_via;	/* by what (html.h), when body_html */
	bool		 body_none;	/* no text part at all */
	struct mime_attachment *att;
	size_t		 n_att;
	size_t		 n_att_more;	/* over MIME_ATTACH_MAX, not listed */
};

/* Once per process, before mime_parse; mime_shutdown at the end. */
void mime_init(void);
void mime_shutdown(void);

/*
 * Parse a message as received (LF or CRLF line ends; a header alone, as
 * from TOP n 0, is a message with an empty body). Never fails on bad
 * MIME: what cannot be parsed is shown as text. 0, or -1 when out of
 * memory (err set). *m_r is freed with mime_free.
 */
int mime_parse(const char *data, size_t len, const char *codeset,
    struct mime_msg **m_r, char *err);
void mime_free(struct mime_msg **m);

/*
 * UTF-8 text (invalid sequences allowed) to display text in codeset;
 * oneline turns tab, CR and LF into spaces (a header), otherwise CRLF
 * becomes LF and a lone CR "^M". Returns a NUL-terminated allocated
 * string, its length in *len_r (may be NULL); NULL when out of memory.
 */
char *mime_display(const char *utf8, size_t len, const char *codeset,
    bool oneline, size_t *len_r);

/*
 * Attachment i (0-based, as listed in mime_msg.att) of the message data
 * (as given to mime_parse): its decoded octets in *buf_r (allocated, with
 * *len_r), and the file name the mail suggests in *name_r (allocated, ""
 * when none): raw UTF-8 from the sender, hostile, never a path to use as
 * it is. 0, or -1 with err (no such attachment, out of memory).
 */
int mime_attachment(const char *data, size_t len, size_t i, char **buf_r,
    size_t *len_r, char **name_r, char *err);

#endif
