/*
 * TLS over a nonblocking socket with OpenSSL 3: server contexts built from
 * PEM held in memory (so a chrooted process needs no file access), the
 * record layer as read/write calls that say what they wait for, and the
 * channel-binding data SASL's -PLUS mechanisms need.
 */
#ifndef POSTINO_TLS_H
#define POSTINO_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "str.h"

/* tls-server-end-point data is a hash (at most SHA-512); exporter: 32. */
#define TLS_CB_MAX	64

struct tls_ctx;
struct tls_conn;

enum tls_io {
	TLS_IO_OK = 0,		/* the handshake finished */
	TLS_IO_WANT_READ = -2,	/* retry when the socket is readable */
	TLS_IO_WANT_WRITE = -3,	/* retry when the socket is writable */
	TLS_IO_EOF = -4,	/* the peer closed (cleanly or not) */
	TLS_IO_ERR = -5,	/* protocol or I/O error: drop the connection */
};

/*
 * Start OpenSSL now (its configuration file, where there is one, and its
 * random generator) rather than at the first context, so a process can
 * then run under a filter that allows no open (sandbox.h). Idempotent.
 * 0, or -1 with err filled.
 */
int tls_init(char *err);

/*
 * A server context from a PEM certificate chain and private key in memory
 * (pem may hold both). min_version: "TLSv1.2" or "TLSv1.3". Checks that key
 * and certificate match. NULL with err filled.
 */
struct tls_ctx *tls_ctx_new(const char *pem, size_t len,
    const char *min_version, char *err);
/* A client context verifying against the system store or cafile (may be NULL). */
struct tls_ctx *tls_client_ctx_new(const char *cafile, const char *min_version,
    char *err);
/* Contexts are reference-counted: connections keep theirs alive. */
void tls_ctx_free(struct tls_ctx **ctx);

/*
 * Wrap fd (not taken over: the caller closes it). A client connection is
 * tls_client_conn_new(ctx, fd, verify_host, true); verify_host must then
 * be set. NULL on failure.
 */
struct tls_conn *tls_conn_new(struct tls_ctx *ctx, int fd, bool server,
    const char *verify_host);
void tls_conn_free(struct tls_conn **c);

/*
 * A client connection over fd (not taken over) to host, as the user named
 * it: an IP literal (IPv6 without brackets) is checked against the
 * certificate's IP addresses and sent no SNI (RFC 6066 sec. 3); a name
 * gets SNI and RFC 6125 name checks. verify false: no certificate check at
 * all, for a caller that pins the certificate itself (tls_peer_sha256()).
 * NULL on failure.
 */
struct tls_conn *tls_client_conn_new(struct tls_ctx *ctx, int fd,
    const char *host, bool verify);
/* SHA-256 of the peer certificate's DER. 0, or -1 when there is none. */
int tls_peer_sha256(struct tls_conn *c, unsigned char out[32]);
/*
 * Why the last handshake or I/O failed, for people: "certificate verify
 * failed (unable to get local issuer certificate)", "wrong version
 * number", ... without OpenSSL's error codes.
 */
void tls_describe_error(struct tls_conn *c, char *buf, size_t size);
/* Did the handshake fail because the peer does not speak TLS at all? */
bool tls_peer_not_tls(const struct tls_conn *c);

/* Drive the handshake: TLS_IO_OK, WANT_READ, WANT_WRITE, or ERR. */
int tls_handshake(struct tls_conn *c);
/* Bytes read (> 0), or a negative enum tls_io. */
ssize_t tls_read(struct tls_conn *c, void *buf, size_t len);
/* Bytes written (> 0), or a negative enum tls_io. */
ssize_t tls_write(struct tls_conn *c, const void *buf, size_t len);
/* Decrypted bytes already buffered inside OpenSSL (epoll cannot see them). */
bool tls_pending(struct tls_conn *c);
/* Send close_notify, best effort. */
void tls_shutdown(struct tls_conn *c);

/* "TLSv1.3" etc. and the cipher, for logs. */
const char *tls_version(struct tls_conn *c);
const char *tls_cipher(struct tls_conn *c);
/* Why the last call failed, for logs. */
const char *tls_error(struct tls_conn *c);

/*
 * Channel binding (RFC 5929, RFC 9266): "tls-server-end-point" (the server
 * certificate's hash) or "tls-exporter" (TLS 1.3 only). Bytes written to
 * out (TLS_CB_MAX), or -1 when the type is not available on this connection.
 */
ssize_t tls_channel_binding(struct tls_conn *c, const char *type,
    unsigned char *out, size_t outsize);

#endif
