/*
 * POP3 grammar shared by the server and the client (RFC 1939, RFC 2449).
 * Knows nothing of sockets, storage or authentication.
 */
#ifndef POSTINO_POP3_H
#define POSTINO_POP3_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * RFC 2449 sec. 4: a command line is at most 255 octets; we allow 512
 * including CRLF like Dovecot.
 */
#define POP3_LINE_MAX	512
/*
 * RFC 1939 sec. 3: arguments are at most 40 characters (RFC 2449 lifts it
 * for AUTH: 255).
 */
#define POP3_ARG_MAX	255
#define POP3_ARGS_MAX	4
/* RFC 2449 sec. 4: keywords are 3-4 chars; room for X- extensions. */
#define POP3_KEYWORD_MAX 8

struct pop3_args {
	char		 keyword[POP3_KEYWORD_MAX + 1];	/* upper-cased */
	unsigned int	 argc;
	const char	*argv[POP3_ARGS_MAX];	/* into the caller's line */
};

enum pop3_parse_result {
	POP3_PARSE_OK = 0,
	POP3_PARSE_EMPTY,	/* empty line */
	POP3_PARSE_BAD,		/* see pop3_parse_line() */
};

/*
 * Split a command line in place. line holds len octets (CRLF or LF already
 * removed) and line[len] must be writable: the last word is NUL-terminated
 * there. Grammar (RFC 1939 sec. 3, RFC 2449 sec. 4): a keyword of 3 to
 * POP3_KEYWORD_MAX characters of [A-Za-z0-9-] (so X- extensions parse),
 * upper-cased into a->keyword, then arguments separated by spaces.
 * Tolerated like popa3d: leading spaces, runs of spaces, trailing spaces.
 * Only the space separates: a tab or any other control octet (0x00-0x1f,
 * 0x7f, including a stray CR or a NUL) makes the line BAD. Octets >= 0x80
 * are allowed in arguments (UTF-8 passwords), never in the keyword.
 * Returns POP3_PARSE_EMPTY for an empty or all-space line, POP3_PARSE_BAD
 * for a bad keyword, an argument over POP3_ARG_MAX octets, more than
 * POP3_ARGS_MAX arguments, or a line longer than POP3_LINE_MAX - 2 (the
 * limit counts the CRLF). On anything but OK, *a is argc 0, keyword "".
 */
enum pop3_parse_result pop3_parse_line(char *line, size_t len,
    struct pop3_args *a);

/*
 * A message number: 1..UINT32_MAX, digits only (no sign, space or other
 * noise; overflow is an error). Leading zeros are accepted and mean the
 * same number ("01" is 1, "00" is 0 and so refused): RFC 1939 only says
 * "a number", and popa3d and Dovecot read them the same way.
 * 0 and *n_r set, or -1 and *n_r untouched.
 */
int pop3_parse_msgnum(const char *s, unsigned int *n_r);

/* Digits of the largest uint64_t (18446744073709551615). */
#define POP3_U64_DIGITS	20
/*
 * v in decimal at dst (room for POP3_U64_DIGITS), no NUL; returns the
 * number of digits. For the numbers of STAT, LIST and UIDL lines: printf
 * parsed its format once per line, ~12 % of a warm 10,000-line listing.
 */
size_t pop3_put_u64(char *dst, uint64_t v);

/*
 * Streaming message encoder for RETR and TOP: turns stored bytes into the
 * wire form (RFC 1939 sec. 3, 11.3). A LF not preceded by CR becomes CRLF;
 * CRLF stays; a bare CR is passed on as an ordinary byte; every line that
 * starts with '.' gets another '.', the first line included; the message is
 * closed with CRLF if its last byte is not LF, then ".CRLF". An empty
 * message is ".CRLF" alone. Lines are counted by LF. With the stuffing dots
 * removed and without the final ".CRLF", RETR's output has exactly the size
 * lib/crlf.h computes for the same bytes.
 * TOP (top = true): the header lines, the blank line that ends them, then
 * at most body_lines lines; a message with no blank line is all header.
 * Input may be split at any byte: the output is the same as in one piece.
 * The fields are private.
 */
struct pop3_encoder {
	uint64_t	 body_lines;	/* TOP: body lines allowed */
	uint64_t	 lines_sent;	/* TOP: body lines so far */
	uint64_t	 size;		/* octets out less stuffing dots */
	unsigned char	 line_len;	/* octets in the current line, max 2 */
	bool		 top;
	bool		 in_body;	/* saw the header/body separator */
	bool		 last_cr;	/* previous input byte was CR */
	bool		 done;		/* TOP limit reached: ignore the rest */
	bool		 cut;		/* TOP left octets out: size unknown */
	bool		 finished;	/* pop3_encoder_finish() was called */
};

/* Worst case per input byte: LF -> CRLF, or '.' at a line start -> "..". */
#define POP3_ENCODER_OUT_MAX(inlen)	(2 * (size_t)(inlen))
/* CRLF + ".CRLF" */
#define POP3_ENCODER_FINISH_MAX	5

void pop3_encoder_init(struct pop3_encoder *e, bool top, uint64_t body_lines);
/*
 * Encode in[0..inlen) into out, which must have room for
 * POP3_ENCODER_OUT_MAX(inlen) octets (2 * inlen; the old "2*inlen+2" is
 * also enough). Returns the octets written; the input is consumed whole.
 * A caller breaking the room requirement is a bug: nothing is written
 * past outsize and the process ends with fatalx().
 */
size_t pop3_encoder_feed(struct pop3_encoder *e, const void *in, size_t inlen,
    char *out, size_t outsize);
/*
 * The same for a fixed output buffer of any size: encodes the longest
 * prefix of in whose output fits (a byte is never split), sets *written_r
 * and returns the input octets consumed. Once TOP is full the rest of the
 * input counts as consumed. Consumes less than inlen only if out is full
 * (outsize - *written_r < 2), so any outsize >= 2 makes progress; this is
 * the call for filling what is left of an output buffer.
 */
size_t pop3_encoder_feed_some(struct pop3_encoder *e, const void *in,
    size_t inlen, char *out, size_t outsize, size_t *written_r);
/*
 * RETR's bulk loop looks at 64 input octets at a time with the widest
 * vectors the CPU has, at most max octets wide (AVX2 32, SSE2 16; 0 is
 * line by line, as TOP always is). Chosen on first use; tests and the fuzz
 * target call this to run every width. The output is the same at any
 * width. Returns the width now in use.
 */
size_t pop3_encoder_set_width(size_t max);
/* True once TOP has sent all lines it will: the caller may stop reading. */
bool pop3_encoder_full(const struct pop3_encoder *e);
/*
 * After pop3_encoder_finish(): the message's size as lib/crlf.h defines
 * it, counted while encoding so the octets need no second pass to check a
 * size given out earlier. -1 when TOP left part of the message out (the
 * whole was not seen), else 0 and *size_r set.
 */
int pop3_encoder_size(const struct pop3_encoder *e, uint64_t *size_r);
/*
 * Writes the ending (CRLF if needed, then ".CRLF"); returns octets
 * (<= POP3_ENCODER_FINISH_MAX). outsize must be at least
 * POP3_ENCODER_FINISH_MAX, else fatalx() as above.
 */
size_t pop3_encoder_finish(struct pop3_encoder *e, char *out, size_t outsize);

/*
 * Client side: undo byte-stuffing of one received line (without its CRLF,
 * *len octets, NUL-terminated again if shortened). Returns true when the
 * line is the terminating "." alone. Otherwise a leading '.' is removed
 * (RFC 1939 sec. 3: any line starting with '.', so ".." becomes "." and a
 * server's unstuffed ".x" becomes "x") and false is returned.
 */
bool pop3_unstuff_line(char *line, size_t *len);

/*
 * Client side: a response line (without CRLF). "+OK" or "-ERR" (upper case,
 * RFC 1939 sec. 3), then the end of the line or a space. Sets *ok_r and, if
 * text_r is not NULL, *text_r to the text after the space ("" if none).
 * 0, or -1 for anything else (outputs untouched).
 */
int pop3_parse_status(const char *line, bool *ok_r, const char **text_r);

/*
 * An RFC 2449 sec. 8 extended response code at the start of text (the part
 * after "-ERR "): "[IN-USE] ..." fills code with "IN-USE", "[SYS/TEMP]" with
 * "SYS/TEMP". Grammar: "[" level *("/" level) "]", a level being one or more
 * printable ASCII octets other than "/" and "]". 0, or -1 if there is none,
 * it is malformed, or it does not fit codesize (code is then "" if
 * codesize > 0).
 */
int pop3_resp_code(const char *text, char *code, size_t codesize);

#endif
