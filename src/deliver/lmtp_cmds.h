/*
 * LMTP (RFC 2033) grammar without I/O: command arguments, addresses,
 * parameters, recipient-to-user mapping and the DATA/BDAT decoder. Pure
 * functions on bounded input, so the unit tests and the fuzzer drive them
 * directly. Every error comes back as a complete reply line
 * ("501 5.5.4 ...") for the connection to send as it is.
 */
#ifndef POSTINO_LMTP_CMDS_H
#define POSTINO_LMTP_CMDS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * A command line, CRLF included. RFC 5321 sec. 4.5.3.1.4 gives 512; its
 * extensions (SIZE=, BODY=, SMTPUTF8) may lengthen MAIL, and an MTA sends
 * at most a path and a few parameters: 2048 is room for all of that.
 */
#define LMTP_LINE_MAX		2048
/* A reverse-path or forward-path, without the <>: RFC 5321 sec. 4.5.3.1.3. */
#define LMTP_PATH_MAX		256
/* At least 100 recipients must be accepted: RFC 5321 sec. 4.5.3.1.8. */
#define LMTP_RCPT_MIN		100
/* Parameters on one MAIL: far more than the three we know. */
#define LMTP_PARAMS_MAX		16

enum lmtp_body { LMTP_BODY_7BIT, LMTP_BODY_8BITMIME };

struct lmtp_mail {
	char		addr[LMTP_PATH_MAX + 1];	/* "" = null sender */
	uint64_t	size;			/* SIZE=, 0 when absent */
	enum lmtp_body	body;
	bool		smtputf8;
};

/*
 * "FROM:<addr> [params]" (the text after "MAIL "). max_size bounds SIZE=.
 * NULL on success, else the reply line.
 */
const char *lmtp_parse_mail(const char *args, uint64_t max_size,
    struct lmtp_mail *m);

/*
 * "TO:<addr>" (after "RCPT "); no parameters are offered, so any is
 * refused. utf8: the transaction declared SMTPUTF8 (RFC 6531), without
 * which 8-bit octets in the address are refused. NULL, or the reply line.
 */
const char *lmtp_parse_rcpt(const char *args, bool utf8,
    char addr[LMTP_PATH_MAX + 1]);

/*
 * "n [LAST]" (after "BDAT ", RFC 3030). NULL, or the reply line.
 */
const char *lmtp_parse_bdat(const char *args, uint64_t *size_r, bool *last_r);

/*
 * The passwd-file user for a recipient address: the local part without
 * anything from the first octet in delims on ("user+detail" -> "user"),
 * then "local@domain", or only "local" when the address has no domain or
 * its domain is one of local_domains (space-separated, case-insensitive).
 * The domain is lower-cased. 0, or -1 when the result is empty or does
 * not fit.
 */
int lmtp_rcpt_user(const char *addr, const char *delims,
    const char *local_domains, char *user, size_t size);

/* True when s is well-formed UTF-8 (no overlongs, no surrogates). */
bool lmtp_utf8_valid(const char *s, size_t len);

/*
 * The message decoder. DATA (RFC 5321 sec. 4.1.1.4): lines end in CRLF or
 * a bare LF; a line "." ends the message; a leading "." is removed
 * (sec. 4.5.2). BDAT: no end marker, no dot-unstuffing. In both, CRLF
 * becomes LF and a CR not followed by LF is kept as data.
 */
struct lmtp_data {
	bool		dot;		/* DATA: dots and the end marker */
	bool		done;		/* the end marker was seen */
	unsigned char	st;		/* private */
};

void lmtp_data_init(struct lmtp_data *d, bool dot);
/*
 * Decode up to len octets of in into out (room for len + 1 octets: a CR
 * held back from the previous call may come out). Returns the octets of
 * in consumed: fewer than len only when the end marker was seen (d->done);
 * the rest of in is the next command. *outlen_r: octets written to out.
 */
size_t lmtp_data_feed(struct lmtp_data *d, const char *in, size_t len,
    char *out, size_t *outlen_r);
/* BDAT LAST: flush a CR held back at the very end; octets written (0/1). */
size_t lmtp_data_finish(struct lmtp_data *d, char *out);

#endif
