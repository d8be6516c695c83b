/*
 * Delivery of a fetched message over LMTP (RFC 2033) to a local server:
 * LHLO, then per message MAIL FROM, one RCPT TO, DATA (CRLF line ends,
 * dot-stuffed) and the one reply the recipient gets, on one connection
 * for the whole run. No pipelining, no BDAT.
 *
 * Exactly once: the caller records the message as fetched only after the
 * 250 for DATA. What LMTP cannot close is the window between that 250
 * and the record: a postino killed in it finds the delivery pending and
 * delivers the message again (a duplicate, never a loss). The server
 * assigns its own delivery ids; LMTP has no way to say "this one, once".
 */
#ifndef POSTINO_DELIVER_LMTP_H
#define POSTINO_DELIVER_LMTP_H

#include <stdbool.h>
#include <stddef.h>

#include "../lib/str.h"
#include "limits.h"

/* One reply line, CRLF included: RFC 5321 sec. 4.5.3.1.5 (512). */
#define DELIVER_LMTP_LINE_MAX		512
/*
 * Waits, RFC 5321 sec. 4.5.3.2: 5 minutes for a command's reply (the
 * greeting, MAIL, RCPT, DATA), 10 for the end of DATA's (the server may
 * be storing a large message), the same for each write.
 */
#define DELIVER_LMTP_CMD_MS		(300 * 1000)
#define DELIVER_LMTP_DATA_MS		(600 * 1000)

/*
 * Is addr a well-formed LMTP address? false with err saying why. The
 * address is only looked up (or its socket connected) at delivery.
 */
bool deliver_lmtp_valid_addr(const char *addr, char *err);

/* A session with the server, kept from one message to the next. */
struct deliver_lmtp;

/*
 * Deliver the message in fd (read from offset 0 to its end; LF line ends,
 * as fetch.c spools it) to rcpt at addr, the envelope sender being sender
 * ("" for the null sender "<>"), over the session *s (opened when NULL,
 * and once more when a kept one turns out closed before the message went
 * out). 0 delivered (250 after DATA); 1 refused for good (a 5xx reply),
 * err has the reply; -1 not delivered, to be tried again (a 4xx reply,
 * or connection, timeout or protocol failure), err says which.
 */
int deliver_lmtp_send(struct deliver_lmtp **s, const char *addr,
    const char *sender, const char *rcpt, int fd, char *err);

/* QUIT and close; *s is set to NULL. */
void deliver_lmtp_close(struct deliver_lmtp **s);

#endif
