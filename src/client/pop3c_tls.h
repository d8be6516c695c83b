/*
 * TLS under a pop3c session: implicit TLS (RFC 8314, pop3s) or STLS (RFC
 * 2595) over a connected socket, with the certificate checked before a
 * byte of POP3 crosses it.
 *
 * Verification is on by default: the chain against the system CA store
 * (or cafile), and the name the user gave: a DNS name against the
 * certificate's names (RFC 6125), an IP literal against its IP addresses.
 * A pinned SHA-256 fingerprint replaces the CA check (self-signed servers)
 * but must match the certificate's DER exactly.
 */
#ifndef POSTINO_POP3C_TLS_H
#define POSTINO_POP3C_TLS_H

#include <stdbool.h>

#include "pop3c.h"

#define POP3C_TLS_SHA256_LEN	32

struct pop3c_tls_params {
	const char	*host;		/* as the user named it, no brackets */
	const char	*cafile;	/* NULL: the system store */
	bool		 pinned;	/* check pin, not the CAs */
	unsigned char	 pin[POP3C_TLS_SHA256_LEN];
	bool		 verbose;	/* say on stderr what was negotiated */
};

/*
 * "AB:CD:..." or "abcd..." (64 hex digits, either case, a colon allowed
 * between any two octets) into out. 0, or -1.
 */
int pop3c_tls_parse_fingerprint(const char *s,
    unsigned char out[POP3C_TLS_SHA256_LEN]);

/*
 * A transport over fd (taken over: closed by the transport, or here on
 * failure) whose reads and writes time out after timeout_ms of silence,
 * like pop3c_fd_transport(). implicit: the TLS handshake happens now,
 * within timeout_ms; otherwise the stream stays plaintext until
 * pop3c_stls() calls its starttls. 0, or -1 with err ("TLS: certificate
 * verify failed (unable to get local issuer certificate)").
 */
int pop3c_tls_transport(struct pop3c_transport *tr, int fd, int timeout_ms,
    const struct pop3c_tls_params *p, bool implicit, char *err);

#endif
