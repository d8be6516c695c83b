#include "tls.h"

#include <sys/socket.h>
#include <arpa/inet.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

struct tls_ctx {
	SSL_CTX	*ctx;
};

struct tls_conn {
	SSL		*ssl;
	bool		 server;
	unsigned long	 last_err;	/* OpenSSL error of the last failure */
	int		 last_errno;
	char		 err[ERR_LEN];
};

static void
ssl_error(char *err, const char *what)
{
	unsigned long e = ERR_get_error();
	char buf[200];

	if (e == 0) {
		str_fmt(err, ERR_LEN, "%s: %s", what,
		    errno ? strerror(errno) : "failed");
	} else {
		ERR_error_string_n(e, buf, sizeof(buf));
		str_fmt(err, ERR_LEN, "%s: %s", what, buf);
	}
	ERR_clear_error();
}

static int
min_proto(const char *name, int *v_r, char *err)
{
	if (name == NULL || strcmp(name, "TLSv1.2") == 0)
		*v_r = TLS1_2_VERSION;
	else if (strcmp(name, "TLSv1.3") == 0)
		*v_r = TLS1_3_VERSION;
	else {
		str_fmt(err, ERR_LEN, "TLS version '%s': expected TLSv1.2 or "
		    "TLSv1.3", name);
		return -1;
	}
	return 0;
}

static struct tls_ctx *
ctx_base(const SSL_METHOD *method, const char *min_version, char *err)
{
	struct tls_ctx *t;
	int v;

	if (min_proto(min_version, &v, err) < 0)
		return NULL;
	t = calloc(1, sizeof(*t));
	if (t == NULL) {
		str_copy(err, ERR_LEN, "out of memory");
		return NULL;
	}
	t->ctx = SSL_CTX_new(method);
	if (t->ctx == NULL) {
		ssl_error(err, "SSL_CTX_new");
		free(t);
		return NULL;
	}
	SSL_CTX_set_min_proto_version(t->ctx, v);
	/* OpenSSL 3's defaults: AEAD ciphers and forward secrecy first. */
	SSL_CTX_set_options(t->ctx, SSL_OP_NO_COMPRESSION |
	    SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
	SSL_CTX_set_mode(t->ctx, SSL_MODE_ENABLE_PARTIAL_WRITE |
	    SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER | SSL_MODE_RELEASE_BUFFERS);
	return t;
}

int
tls_init(char *err)
{
	unsigned char b;

	if (OPENSSL_init_ssl(OPENSSL_INIT_LOAD_CONFIG, NULL) != 1) {
		ssl_error(err, "OPENSSL_init_ssl");
		return -1;
	}
	if (RAND_bytes(&b, 1) != 1) {
		ssl_error(err, "RAND_bytes");
		return -1;
	}
	return 0;
}

struct tls_ctx *
tls_ctx_new(const char *pem, size_t len, const char *min_version, char *err)
{
	struct tls_ctx *t;
	BIO *bio;
	X509 *cert, *extra;
	EVP_PKEY *key;

	if (len > INT32_MAX) {
		str_copy(err, ERR_LEN, "certificate too large");
		return NULL;
	}
	t = ctx_base(TLS_server_method(), min_version, err);
	if (t == NULL)
		return NULL;
	SSL_CTX_set_session_cache_mode(t->ctx, SSL_SESS_CACHE_OFF);
	SSL_CTX_set_num_tickets(t->ctx, 0);
	bio = BIO_new_mem_buf(pem, (int)len);
	if (bio == NULL)
		goto fail;
	cert = PEM_read_bio_X509(bio, NULL, NULL, NULL);
	if (cert == NULL) {
		ssl_error(err, "no certificate in tls_cert");
		BIO_free(bio);
		goto fail_quiet;
	}
	if (SSL_CTX_use_certificate(t->ctx, cert) != 1) {
		X509_free(cert);
		BIO_free(bio);
		goto fail;
	}
	X509_free(cert);
	/* The rest of the chain, up to the key. */
	while ((extra = PEM_read_bio_X509(bio, NULL, NULL, NULL)) != NULL) {
		if (SSL_CTX_add0_chain_cert(t->ctx, extra) != 1) {
			X509_free(extra);
			BIO_free(bio);
			goto fail;
		}
	}
	ERR_clear_error();
	BIO_free(bio);
	bio = BIO_new_mem_buf(pem, (int)len);
	if (bio == NULL)
		goto fail;
	key = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL);
	BIO_free(bio);
	if (key == NULL) {
		ssl_error(err, "no private key in tls_key");
		goto fail_quiet;
	}
	if (SSL_CTX_use_PrivateKey(t->ctx, key) != 1) {
		EVP_PKEY_free(key);
		ssl_error(err, "tls_key does not match tls_cert");
		goto fail_quiet;
	}
	EVP_PKEY_free(key);
	if (SSL_CTX_check_private_key(t->ctx) != 1) {
		ssl_error(err, "tls_key does not match tls_cert");
		goto fail_quiet;
	}
	return t;
fail:
	ssl_error(err, "loading the certificate");
fail_quiet:
	SSL_CTX_free(t->ctx);
	free(t);
	return NULL;
}

struct tls_ctx *
tls_client_ctx_new(const char *cafile, const char *min_version, char *err)
{
	struct tls_ctx *t = ctx_base(TLS_client_method(), min_version, err);

	if (t == NULL)
		return NULL;
	SSL_CTX_set_verify(t->ctx, SSL_VERIFY_PEER, NULL);
	if ((cafile != NULL ? SSL_CTX_load_verify_locations(t->ctx, cafile,
	    NULL) : SSL_CTX_set_default_verify_paths(t->ctx)) != 1) {
		ssl_error(err, cafile != NULL ? cafile : "system CA store");
		SSL_CTX_free(t->ctx);
		free(t);
		return NULL;
	}
	return t;
}

void
tls_ctx_free(struct tls_ctx **tp)
{
	if (*tp == NULL)
		return;
	SSL_CTX_free((*tp)->ctx);
	free(*tp);
	*tp = NULL;
}

/* A connection on fd in ctx, not yet told its side. */
static struct tls_conn *
conn_alloc(struct tls_ctx *ctx, int fd)
{
	struct tls_conn *c = calloc(1, sizeof(*c));

	if (c == NULL)
		return NULL;
	c->ssl = SSL_new(ctx->ctx);
	if (c->ssl == NULL || SSL_set_fd(c->ssl, fd) != 1) {
		SSL_free(c->ssl);
		free(c);
		ERR_clear_error();
		return NULL;
	}
	return c;
}

struct tls_conn *
tls_conn_new(struct tls_ctx *ctx, int fd, bool server, const char *verify_host)
{
	struct tls_conn *c;

	if (!server)
		return tls_client_conn_new(ctx, fd, verify_host, true);
	c = conn_alloc(ctx, fd);
	if (c == NULL)
		return NULL;
	c->server = true;
	SSL_set_accept_state(c->ssl);
	return c;
}

void
tls_conn_free(struct tls_conn **cp)
{
	if (*cp == NULL)
		return;
	SSL_free((*cp)->ssl);
	free(*cp);
	*cp = NULL;
}

struct tls_conn *
tls_client_conn_new(struct tls_ctx *ctx, int fd, const char *host, bool verify)
{
	struct tls_conn *c;
	unsigned char addr[sizeof(struct in6_addr)];
	bool ip;

	if (host == NULL)
		return NULL;
	c = conn_alloc(ctx, fd);
	if (c == NULL)
		return NULL;
	SSL_set_connect_state(c->ssl);
	ip = inet_pton(AF_INET, host, addr) == 1 ||
	    inet_pton(AF_INET6, host, addr) == 1;
	if (!ip && SSL_set_tlsext_host_name(c->ssl, host) != 1)
		goto fail;
	if (!verify)
		SSL_set_verify(c->ssl, SSL_VERIFY_NONE, NULL);
	else if (ip ? X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(c->ssl),
	    host) != 1 : SSL_set1_host(c->ssl, host) != 1)
		goto fail;
	return c;
fail:
	SSL_free(c->ssl);
	free(c);
	ERR_clear_error();
	return NULL;
}

int
tls_peer_sha256(struct tls_conn *c, unsigned char out[32])
{
	X509 *cert = SSL_get0_peer_certificate(c->ssl);
	STACK_OF(X509) *chain;
	unsigned int n = 0;

	/* A failed verification leaves the chain the server sent, leaf first. */
	if (cert == NULL && (chain = SSL_get_peer_cert_chain(c->ssl)) != NULL &&
	    sk_X509_num(chain) > 0)
		cert = sk_X509_value(chain, 0);

	if (cert == NULL || X509_digest(cert, EVP_sha256(), out, &n) != 1 ||
	    n != 32) {
		ERR_clear_error();
		return -1;
	}
	return 0;
}

bool
tls_peer_not_tls(const struct tls_conn *c)
{
	int r = ERR_GET_REASON(c->last_err);

	return ERR_GET_LIB(c->last_err) == ERR_LIB_SSL &&
	    (r == SSL_R_WRONG_VERSION_NUMBER ||
	    r == SSL_R_PACKET_LENGTH_TOO_LONG || r == SSL_R_HTTP_REQUEST ||
	    r == SSL_R_UNKNOWN_PROTOCOL);
}

void
tls_describe_error(struct tls_conn *c, char *buf, size_t size)
{
	long v = SSL_get_verify_result(c->ssl);
	const char *r;

	if (v != X509_V_OK && SSL_get_verify_mode(c->ssl) != SSL_VERIFY_NONE) {
		(void)str_fmt(buf, size, "certificate verify failed (%s)",
		    X509_verify_cert_error_string(v));
		return;
	}
	r = c->last_err != 0 ? ERR_reason_error_string(c->last_err) : NULL;
	if (r != NULL)
		str_copy(buf, size, r);
	else if (c->last_errno != 0)
		str_copy(buf, size, strerror(c->last_errno));
	else
		str_copy(buf, size, "connection closed by the server");
}

static int
io_result(struct tls_conn *c, int r, const char *what)
{
	switch (SSL_get_error(c->ssl, r)) {
	case SSL_ERROR_WANT_READ:
		return TLS_IO_WANT_READ;
	case SSL_ERROR_WANT_WRITE:
		return TLS_IO_WANT_WRITE;
	case SSL_ERROR_ZERO_RETURN:
		return TLS_IO_EOF;
	case SSL_ERROR_SYSCALL:
		if (ERR_peek_error() == 0) {
			if (errno == 0 || errno == ECONNRESET || errno == EPIPE)
				return TLS_IO_EOF;
		}
		/* FALLTHROUGH */
	default:
		c->last_err = ERR_peek_last_error();
		c->last_errno = errno;
		ssl_error(c->err, what);
		return TLS_IO_ERR;
	}
}

int
tls_handshake(struct tls_conn *c)
{
	int r;

	ERR_clear_error();
	errno = 0;
	r = SSL_do_handshake(c->ssl);
	if (r == 1)
		return TLS_IO_OK;
	r = io_result(c, r, "handshake");
	return r == TLS_IO_EOF ? TLS_IO_ERR : r;
}

ssize_t
tls_read(struct tls_conn *c, void *buf, size_t len)
{
	size_t n = 0;
	int r;

	ERR_clear_error();
	errno = 0;
	r = SSL_read_ex(c->ssl, buf, len, &n);
	if (r == 1)
		return (ssize_t)n;
	return io_result(c, 0, "read");
}

ssize_t
tls_write(struct tls_conn *c, const void *buf, size_t len)
{
	size_t n = 0;
	int r;

	ERR_clear_error();
	errno = 0;
	r = SSL_write_ex(c->ssl, buf, len, &n);
	if (r == 1)
		return (ssize_t)n;
	return io_result(c, 0, "write");
}

bool
tls_pending(struct tls_conn *c)
{
	return SSL_pending(c->ssl) > 0;
}

void
tls_shutdown(struct tls_conn *c)
{
	ERR_clear_error();
	(void)SSL_shutdown(c->ssl);
	ERR_clear_error();
}

const char *
tls_version(struct tls_conn *c)
{
	return SSL_get_version(c->ssl);
}

const char *
tls_cipher(struct tls_conn *c)
{
	return SSL_get_cipher_name(c->ssl);
}

const char *
tls_error(struct tls_conn *c)
{
	return c->err[0] ? c->err : "unknown error";
}

ssize_t
tls_channel_binding(struct tls_conn *c, const char *type, unsigned char *out,
    size_t outsize)
{
	if (strcmp(type, "tls-exporter") == 0) {
		static const char label[] = "EXPORTER-Channel-Binding";

		/* RFC 9266: only defined for TLS 1.3. */
		if (SSL_version(c->ssl) != TLS1_3_VERSION || outsize < 32 ||
		    SSL_export_keying_material(c->ssl, out, 32, label,
		    sizeof(label) - 1, NULL, 0, 0) != 1)
			return -1;
		return 32;
	}
	if (strcmp(type, "tls-server-end-point") == 0) {
		/* RFC 5929 sec. 4.1: the certificate's hash, MD5/SHA-1 -> SHA-256. */
		X509 *cert = c->server ? SSL_get_certificate(c->ssl) :
		    SSL_get0_peer_certificate(c->ssl);
		const EVP_MD *md;
		unsigned int n = 0;
		int nid;

		if (cert == NULL ||
		    !OBJ_find_sigid_algs(X509_get_signature_nid(cert), &nid, NULL))
			return -1;
		md = (nid == NID_md5 || nid == NID_sha1) ? EVP_sha256() :
		    EVP_get_digestbynid(nid);
		if (md == NULL || (size_t)EVP_MD_get_size(md) > outsize ||
		    X509_digest(cert, md, out, &n) != 1)
			return -1;
		return (ssize_t)n;
	}
	return -1;
}
