/*
 * The PROXY protocol, versions 1 and 2 (haproxy doc/proxy-protocol.txt):
 * the header a trusted proxy (HAProxy's send-proxy / send-proxy-v2) puts in
 * front of a connection to say who the client is. Only the parser lives
 * here; who may send a header is the caller's business (cidr.h).
 *
 * The parser is incremental and never takes a byte past the end of the
 * header, so the caller can peek at the socket, feed what it saw, and
 * consume exactly the octets the parser used: what follows the header
 * (a TLS ClientHello, pipelined POP3) stays in the kernel for its reader.
 */
#ifndef POSTINO_PROXYPROTO_H
#define POSTINO_PROXYPROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* Spec sec. 2.1: a v1 line is at most 107 octets, CRLF included. */
#define PROXYPROTO_V1_MAX	107
/* The fixed part of a v2 header: signature, ver/cmd, family, length. */
#define PROXYPROTO_V2_FIXED	16
/*
 * Address block plus TLVs we accept after the fixed part. The format allows
 * 65535, but HAProxy's largest TLVs (unique id <= 128, SSL details, a
 * client certificate's CN) fit in a few hundred octets; 4 KiB leaves room
 * and bounds what a broken or hostile peer can make us hold.
 */
#define PROXYPROTO_V2_DATA_MAX	4096
#define PROXYPROTO_MAX		(PROXYPROTO_V2_FIXED + PROXYPROTO_V2_DATA_MAX)

enum proxyproto_state {
	PROXYPROTO_MORE,	/* every octet fed was used; feed more */
	PROXYPROTO_DONE,	/* header complete; the result is filled */
	PROXYPROTO_BAD,		/* malformed or unsupported: close */
};

struct proxyproto_result {
	/*
	 * false: v2 LOCAL (a health check) or v1 UNKNOWN / v2 UNSPEC: use the
	 * connection's own addresses (spec sec. 2.1, 2.2).
	 */
	bool			 has_addr;
	unsigned int		 version;	/* 1 or 2 */
	struct sockaddr_storage	 src, dst;	/* AF_INET(6), with ports */
	socklen_t		 srclen, dstlen;
};

struct proxyproto {
	size_t		 len;		/* octets of header taken so far */
	size_t		 want;		/* v2: the header's length; 0 unknown */
	unsigned int	 version;	/* 0 until the signature decides */
	enum proxyproto_state state;
	const char	*why;		/* BAD: a static reason, for the log */
	struct proxyproto_result res;	/* PROXYPROTO_DONE */
	unsigned char	 buf[PROXYPROTO_MAX];
};

void proxyproto_init(struct proxyproto *p);

/*
 * Take octets of data, up to the end of the header and not one past it;
 * *used_r says how many were taken. DONE fills r; BAD sets p->why. Once
 * DONE or BAD, further calls return the same and take nothing.
 */
enum proxyproto_state proxyproto_feed(struct proxyproto *p,
    const unsigned char *data, size_t len, size_t *used_r,
    struct proxyproto_result *r);

#endif
