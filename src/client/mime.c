/*
 * Message -> display text with GMime 3. GMime decodes; everything it hands
 * back is treated as hostile UTF-8 and goes through mime_display().
 */
#include "mime.h"

#include <errno.h>
#include <iconv.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <gmime/gmime.h>

#include "buf.h"
#include "html.h"

static bool
is_utf8_codeset(const char *codeset)
{
	return strcasecmp(codeset, "UTF-8") == 0 ||
	    strcasecmp(codeset, "UTF8") == 0;
}

/* Bidirectional embeddings, overrides and isolates: they reorder text. */
static bool
is_bidi_control(uint32_t cp)
{
	return (cp >= 0x202a && cp <= 0x202e) || (cp >= 0x2066 && cp <= 0x2069);
}

/* Valid, harmless UTF-8 (see mime.h) into b. */
static void
make_safe(struct buf *b, const char *utf8, size_t len, bool oneline)
{
	const unsigned char *s = (const unsigned char *)utf8;
	size_t i = 0;

	while (i < len) {
		uint32_t cp;
		size_t n = utf8_next(s + i, len - i, &cp);

		if (cp == '\t' || cp == '\n') {
			buf_addc(b, oneline ? ' ' : (char)cp);
		} else if (cp == '\r') {
			if (oneline)
				buf_addc(b, ' ');
			else if (i + 1 >= len || s[i + 1] != '\n')
				buf_add(b, "^M", 2);
		} else if (cp < 0x20) {
			buf_addc(b, '^');
			buf_addc(b, (char)(cp + 0x40));
		} else if (cp == 0x7f) {
			buf_add(b, "^?", 2);
		} else if ((cp >= 0x80 && cp <= 0x9f) || is_bidi_control(cp)) {
			buf_addc(b, '?');
		} else if (cp == REPLACEMENT) {
			buf_add_utf8(b, REPLACEMENT);
		} else {
			buf_add(b, s + i, n);
		}
		i += n;
	}
}

/* Safe UTF-8 to codeset with '?' for what it cannot hold; into out. */
static void
convert(struct buf *out, const char *in, size_t len, const char *codeset)
{
	iconv_t cd = iconv_open(codeset, "UTF-8");
	char *ip = (char *)in;
	size_t il = len;

	if (cd == (iconv_t)-1) {
		/* Unknown charset: ASCII is the safe subset of them all. */
		for (size_t i = 0; i < len; i++) {
			unsigned char c = (unsigned char)in[i];

			if (c < 0x80)
				buf_addc(out, (char)c);
			else if ((c & 0xc0) != 0x80)
				buf_addc(out, '?');
		}
		return;
	}
	for (;;) {
		char *op;
		size_t ol, room = il < 64 ? 64 : il * 2, r, skip;
		uint32_t cp;

		if (!buf_grow(out, room))
			break;
		op = out->p + out->len;
		ol = room;
		if (il == 0) {
			/* End: back to the initial shift state. */
			r = iconv(cd, NULL, NULL, &op, &ol);
			out->len += room - ol;
			if (r == (size_t)-1 && errno == E2BIG)
				continue;
			break;
		}
		r = iconv(cd, &ip, &il, &op, &ol);
		out->len += room - ol;
		if (r != (size_t)-1 || errno == E2BIG)
			continue;
		if (errno != EILSEQ)
			break;	/* EINVAL: a cut sequence, not in safe text */
		skip = utf8_next((unsigned char *)ip, il, &cp);
		ip += skip;
		il -= skip;
		buf_addc(out, '?');
	}
	iconv_close(cd);
}

char *
mime_display(const char *utf8, size_t len, const char *codeset, bool oneline,
    size_t *len_r)
{
	struct buf safe = { 0 }, out = { 0 };
	char *s;
	size_t n;

	buf_grow(&safe, len);
	make_safe(&safe, utf8, len, oneline);
	s = buf_take(&safe, &n);
	if (s == NULL)
		return NULL;
	if (codeset == NULL || is_utf8_codeset(codeset)) {
		if (len_r != NULL)
			*len_r = n;
		return s;
	}
	buf_grow(&out, n);
	convert(&out, s, n, codeset);
	free(s);
	/*
	 * A stateful charset (ISO-2022) would bring ESC back; an
	 * ASCII-compatible one never has control octets inside characters.
	 */
	for (size_t i = 0; !out.oom && i < out.len; i++) {
		unsigned char c = (unsigned char)out.p[i];

		if ((c < 0x20 && c != '\t' && c != '\n') || c == 0x7f)
			out.p[i] = '?';
	}
	return buf_take(&out, len_r);
}

/* ---- GMime ---- */

void
mime_init(void)
{
	g_mime_init();
}

void
mime_shutdown(void)
{
	g_mime_shutdown();
}

struct walk {
	struct mime_msg	*m;
	const char	*codeset;
	GMimePart	*body[16];	/* text parts shown, in order */
	size_t		 n_body;
	GMimeObject	*att[MIME_ATTACH_MAX];
	size_t		 n_att, n_more;
};

static bool
is_type(GMimeObject *o, const char *type, const char *subtype)
{
	GMimeContentType *ct = g_mime_object_get_content_type(o);

	return ct != NULL && g_mime_content_type_is_type(ct, type, subtype);
}

static bool
is_attachment(GMimeObject *o)
{
	GMimeContentDisposition *d = g_mime_object_get_content_disposition(o);

	return d != NULL && g_mime_content_disposition_is_attachment(d);
}

static void
add_att(struct walk *w, GMimeObject *o)
{
	if (w->n_att < MIME_ATTACH_MAX)
		w->att[w->n_att++] = o;
	else
		w->n_more++;
}

static void walk(struct walk *w, GMimeObject *o, int depth);

/* The alternative to show: text/plain, else a multipart, else HTML. */
static GMimeObject *
pick_alternative(GMimeMultipart *mp)
{
	int n = g_mime_multipart_get_count(mp);
	GMimeObject *multi = NULL, *html = NULL;

	for (int i = 0; i < n; i++) {
		GMimeObject *c = g_mime_multipart_get_part(mp, i);

		if (is_type(c, "text", "plain") && !is_attachment(c))
			return c;
		if (GMIME_IS_MULTIPART(c) && multi == NULL)
			multi = c;
		if (is_type(c, "text", "html") && html == NULL)
			html = c;
	}
	if (multi != NULL)
		return multi;
	if (html != NULL)
		return html;
	return n > 0 ? g_mime_multipart_get_part(mp, 0) : NULL;
}

static void
walk(struct walk *w, GMimeObject *o, int depth)
{
	if (o == NULL || depth > MIME_DEPTH_MAX)
		return;
	if (GMIME_IS_MULTIPART(o)) {
		GMimeMultipart *mp = GMIME_MULTIPART(o);

		if (is_type(o, "multipart", "alternative")) {
			walk(w, pick_alternative(mp), depth + 1);
			return;
		}
		for (int i = 0; i < g_mime_multipart_get_count(mp); i++)
			walk(w, g_mime_multipart_get_part(mp, i), depth + 1);
		return;
	}
	if (!GMIME_IS_PART(o)) {	/* message/rfc822 and the like */
		add_att(w, o);
		return;
	}
	if (!is_attachment(o) && (is_type(o, "text", "plain") ||
	    is_type(o, "text", "html")) &&
	    w->n_body < sizeof(w->body) / sizeof(w->body[0])) {
		/* A first text part, or more inline parts of its kind. */
		if (w->n_body == 0 || (is_type(o, "text", "html") ==
		    is_type((GMimeObject *)w->body[0], "text", "html") &&
		    g_mime_part_get_filename(GMIME_PART(o)) == NULL)) {
			w->body[w->n_body++] = GMIME_PART(o);
			return;
		}
	}
	add_att(w, o);
}

/*
 * The decoded content of a text part as UTF-8 (maybe invalid), with its
 * length. Not converted and not valid UTF-8 while no charset said UTF-8:
 * read as ISO-8859-1, which maps every octet (to be made safe later).
 */
static char *
part_text(GMimePart *p, size_t *len_r)
{
	GMimeDataWrapper *dw = g_mime_part_get_content(p);
	const char *charset = g_mime_object_get_content_type_parameter(
	    GMIME_OBJECT(p), "charset");
	GMimeStream *mem, *filtered;
	GByteArray *ba;
	bool converted = false, utf8;
	char *text;

	if (dw == NULL) {
		*len_r = 0;
		return g_strdup("");
	}
	utf8 = charset != NULL && (g_ascii_strcasecmp(charset, "utf-8") == 0 ||
	    g_ascii_strcasecmp(charset, "utf8") == 0);
	mem = g_mime_stream_mem_new();
	filtered = g_mime_stream_filter_new(mem);
	if (charset != NULL && !utf8) {
		GMimeFilter *f = g_mime_filter_charset_new(charset, "UTF-8");

		if (f != NULL) {
			g_mime_stream_filter_add(GMIME_STREAM_FILTER(filtered),
			    f);
			g_object_unref(f);
			converted = true;
		}
	}
	(void)g_mime_data_wrapper_write_to_stream(dw, filtered);
	(void)g_mime_stream_flush(filtered);
	g_object_unref(filtered);
	ba = g_mime_stream_mem_get_byte_array(GMIME_STREAM_MEM(mem));
	if (!converted && !utf8 &&
	    !g_utf8_validate((const char *)ba->data, (gssize)ba->len, NULL)) {
		gsize out = 0;

		text = g_convert((const char *)ba->data, (gssize)ba->len,
		    "UTF-8", "ISO-8859-1", NULL, &out, NULL);
		if (text != NULL) {
			g_object_unref(mem);
			*len_r = out;
			return text;
		}
	}
	text = g_malloc(ba->len + 1);
	if (ba->len > 0)
		memcpy(text, ba->data, ba->len);
	text[ba->len] = '\0';
	*len_r = ba->len;
	g_object_unref(mem);
	return text;
}

/* Display text of a GLib string (NULL is ""); g_free()s it when owned. */
static char *
disp(struct walk *w, const char *s, bool oneline)
{
	return mime_display(s != NULL ? s : "", s != NULL ? strlen(s) : 0,
	    w->codeset, oneline, NULL);
}

static char *
disp_owned(struct walk *w, char *s)
{
	char *d = disp(w, s, true);

	g_free(s);
	return d;
}

static int
fill_body(struct walk *w)
{
	struct mime_msg *m = w->m;
	struct buf b = { 0 };

	m->body_html = w->n_body > 0 &&
	    is_type((GMimeObject *)w->body[0], "text", "html");
	for (size_t i = 0; i < w->n_body; i++) {
		size_t len, dlen;
		char *t = part_text(w->body[i], &len), *d;

		if (m->body_html) {
			char *plain = html_render(t, len, &m->html_via);

			g_free(t);
			if (plain == NULL)
				return -1;
			d = mime_display(plain, strlen(plain), w->codeset,
			    false, &dlen);
			free(plain);
		} else {
			d = mime_display(t, len, w->codeset, false, &dlen);
			g_free(t);
		}
		if (d == NULL)
			return -1;
		if (i > 0)
			buf_addc(&b, '\n');
		buf_add(&b, d, dlen);
		if (dlen > 0 && d[dlen - 1] != '\n')
			buf_addc(&b, '\n');
		free(d);
	}
	m->body_none = w->n_body == 0;
	m->body = buf_take(&b, &m->body_len);
	return m->body == NULL ? -1 : 0;
}

/* The decoded octets of o into out: a part's content, else o as text. */
static void
write_decoded(GMimeObject *o, GMimeStream *out)
{
	if (GMIME_IS_PART(o)) {
		GMimeDataWrapper *dw = g_mime_part_get_content(GMIME_PART(o));

		if (dw != NULL)
			(void)g_mime_data_wrapper_write_to_stream(dw, out);
	} else if (GMIME_IS_MESSAGE_PART(o)) {
		GMimeMessage *msg = g_mime_message_part_get_message(
		    GMIME_MESSAGE_PART(o));

		if (msg != NULL)
			(void)g_mime_object_write_to_stream(GMIME_OBJECT(msg),
			    NULL, out);
	} else {
		(void)g_mime_object_write_to_stream(o, NULL, out);
	}
}

/* The decoded size of o, counted without keeping the octets. */
static uint64_t
decoded_size(GMimeObject *o)
{
	GMimeStream *null = g_mime_stream_null_new();
	uint64_t n;

	write_decoded(o, null);
	n = GMIME_STREAM_NULL(null)->written;
	g_object_unref(null);
	return n;
}

static int
fill_attachments(struct walk *w)
{
	struct mime_msg *m = w->m;

	m->n_att_more = w->n_more;
	if (w->n_att == 0)
		return 0;
	m->att = calloc(w->n_att, sizeof(*m->att));
	if (m->att == NULL)
		return -1;
	for (size_t i = 0; i < w->n_att; i++) {
		GMimeObject *o = w->att[i];
		struct mime_attachment *a = &m->att[m->n_att++];
		GMimeContentType *ct = g_mime_object_get_content_type(o);
		const char *name = NULL;

		if (GMIME_IS_PART(o))
			name = g_mime_part_get_filename(GMIME_PART(o));
		if (name == NULL && GMIME_IS_MESSAGE_PART(o)) {
			GMimeMessage *msg = g_mime_message_part_get_message(
			    GMIME_MESSAGE_PART(o));

			name = msg != NULL ? g_mime_message_get_subject(msg) :
			    NULL;
		}
		a->name = disp(w, name != NULL ? name : "(no name)", true);
		a->type = ct != NULL ? disp_owned(w,
		    g_mime_content_type_get_mime_type(ct)) :
		    disp(w, "application/octet-stream", true);
		a->size = decoded_size(o);
		if (a->name == NULL || a->type == NULL)
			return -1;
	}
	return 0;
}

/* Display name of the first address, else the address; else the header. */
static char *
short_from(struct walk *w, GMimeMessage *msg)
{
	InternetAddressList *l = g_mime_message_get_from(msg);
	InternetAddress *ia = l != NULL && internet_address_list_length(l) > 0 ?
	    internet_address_list_get_address(l, 0) : NULL;
	const char *name = ia != NULL ? internet_address_get_name(ia) : NULL;

	if (name != NULL && name[0] != '\0')
		return disp(w, name, true);
	if (ia != NULL && INTERNET_ADDRESS_IS_MAILBOX(ia))
		return disp(w, internet_address_mailbox_get_addr(
		    INTERNET_ADDRESS_MAILBOX(ia)), true);
	return disp(w, g_mime_object_get_header(GMIME_OBJECT(msg), "From"),
	    true);
}

static char *
addresses(struct walk *w, GMimeMessage *msg, InternetAddressList *l,
    const char *header)
{
	char *s = l != NULL && internet_address_list_length(l) > 0 ?
	    internet_address_list_to_string(l, NULL, FALSE) : NULL;

	if (s == NULL || s[0] == '\0') {
		g_free(s);
		return disp(w, g_mime_object_get_header(GMIME_OBJECT(msg),
		    header), true);
	}
	return disp_owned(w, s);
}

static int
fill_headers(struct walk *w, GMimeMessage *msg)
{
	struct mime_msg *m = w->m;
	GDateTime *dt = g_mime_message_get_date(msg);

	m->from = addresses(w, msg, g_mime_message_get_from(msg), "From");
	m->to = addresses(w, msg, g_mime_message_get_to(msg), "To");
	m->cc = addresses(w, msg, g_mime_message_get_cc(msg), "Cc");
	m->subject = disp(w, g_mime_message_get_subject(msg), true);
	m->date = disp(w, g_mime_object_get_header(GMIME_OBJECT(msg), "Date"),
	    true);
	m->from_short = short_from(w, msg);
	if (dt != NULL)
		m->date_short = disp_owned(w, g_date_time_format(dt,
		    "%Y-%m-%d %H:%M"));
	else
		m->date_short = disp(w, m->date, true);
	return m->from == NULL || m->to == NULL || m->cc == NULL ||
	    m->subject == NULL || m->date == NULL || m->from_short == NULL ||
	    m->date_short == NULL ? -1 : 0;
}

/* GMime made nothing of it: every header field empty, the text as body. */
static int
fill_raw(struct walk *w, const char *data, size_t len)
{
	struct mime_msg *m = w->m;

	m->from = disp(w, "", true);
	m->to = disp(w, "", true);
	m->cc = disp(w, "", true);
	m->subject = disp(w, "", true);
	m->date = disp(w, "", true);
	m->from_short = disp(w, "", true);
	m->date_short = disp(w, "", true);
	m->body = mime_display(data, len, w->codeset, false, &m->body_len);
	return m->from == NULL || m->to == NULL || m->cc == NULL ||
	    m->subject == NULL || m->date == NULL || m->from_short == NULL ||
	    m->date_short == NULL || m->body == NULL ? -1 : 0;
}

int
mime_parse(const char *data, size_t len, const char *codeset,
    struct mime_msg **m_r, char *err)
{
	struct walk *w;
	GMimeStream *stream;
	GMimeParser *parser;
	GMimeMessage *msg;
	int rc;

	*m_r = NULL;
	w = calloc(1, sizeof(*w));
	if (w == NULL || (w->m = calloc(1, sizeof(*w->m))) == NULL) {
		free(w);
		(void)str_copy(err, ERR_LEN, "out of memory");
		return -1;
	}
	w->codeset = codeset;
	stream = g_mime_stream_mem_new_with_buffer(data, len);
	parser = g_mime_parser_new_with_stream(stream);
	g_object_unref(stream);
	g_mime_parser_set_format(parser, GMIME_FORMAT_MESSAGE);
	msg = g_mime_parser_construct_message(parser, NULL);
	g_object_unref(parser);
	if (msg == NULL) {
		rc = fill_raw(w, data, len);
	} else {
		walk(w, g_mime_message_get_mime_part(msg), 0);
		rc = fill_headers(w, msg) == 0 && fill_body(w) == 0 &&
		    fill_attachments(w) == 0 ? 0 : -1;
		g_object_unref(msg);
	}
	if (rc < 0) {
		mime_free(&w->m);
		free(w);
		(void)str_copy(err, ERR_LEN, "out of memory");
		return -1;
	}
	*m_r = w->m;
	free(w);
	return 0;
}

void
mime_free(struct mime_msg **m)
{
	struct mime_msg *p = *m;

	if (p == NULL)
		return;
	free(p->from);
	free(p->to);
	free(p->cc);
	free(p->date);
	free(p->subject);
	free(p->from_short);
	free(p->date_short);
	free(p->body);
	for (size_t i = 0; i < p->n_att; i++) {
		free(p->att[i].name);
		free(p->att[i].type);
	}
	free(p->att);
	free(p);
	*m = NULL;
}

/* The decoded octets of o: a part's content, else the object as text. */
static GByteArray *
decoded(GMimeObject *o, GMimeStream *mem)
{
	write_decoded(o, mem);
	return g_mime_stream_mem_get_byte_array(GMIME_STREAM_MEM(mem));
}

int
mime_attachment(const char *data, size_t len, size_t i, char **buf_r,
    size_t *len_r, char **name_r, char *err)
{
	struct walk *w = calloc(1, sizeof(*w));
	GMimeStream *stream;
	GMimeParser *parser;
	GMimeMessage *msg;
	const char *name = NULL;
	int rc = -1;

	*buf_r = *name_r = NULL;
	*len_r = 0;
	if (w == NULL) {
		(void)str_copy(err, ERR_LEN, "out of memory");
		return -1;
	}
	stream = g_mime_stream_mem_new_with_buffer(data, len);
	parser = g_mime_parser_new_with_stream(stream);
	g_object_unref(stream);
	g_mime_parser_set_format(parser, GMIME_FORMAT_MESSAGE);
	msg = g_mime_parser_construct_message(parser, NULL);
	g_object_unref(parser);
	if (msg != NULL)
		walk(w, g_mime_message_get_mime_part(msg), 0);
	if (msg == NULL || i >= w->n_att) {
		(void)str_copy(err, ERR_LEN, "no such attachment");
	} else {
		GMimeStream *mem = g_mime_stream_mem_new();
		GByteArray *ba = decoded(w->att[i], mem);

		if (GMIME_IS_PART(w->att[i]))
			name = g_mime_part_get_filename(GMIME_PART(w->att[i]));
		*buf_r = malloc(ba->len + 1);
		*name_r = strdup(name != NULL ? name : "");
		if (*buf_r == NULL || *name_r == NULL) {
			free(*buf_r);
			free(*name_r);
			*buf_r = *name_r = NULL;
			(void)str_copy(err, ERR_LEN, "out of memory");
		} else {
			if (ba->len > 0)
				memcpy(*buf_r, ba->data, ba->len);
			*len_r = ba->len;
			rc = 0;
		}
		g_object_unref(mem);
	}
	if (msg != NULL)
		g_object_unref(msg);
	free(w);
	return rc;
}
