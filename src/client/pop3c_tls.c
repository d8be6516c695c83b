#include "pop3c_tls.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "../lib/conn.h"
#include "../lib/ev.h"
#include "../lib/net.h"
#include "../lib/tls.h"

struct tls_tr {
	struct conn		 conn;		/* plaintext until the handshake */
	int			 timeout_ms;
	struct tls_ctx		*ctx;
	bool			 started;	/* a handshake was tried */
	struct pop3c_tls_params	 p;
	char			 host[256];
};

int
pop3c_tls_parse_fingerprint(const char *s,
    unsigned char out[POP3C_TLS_SHA256_LEN])
{
	size_t n = 0;

	while (*s != '\0') {
		int hi, lo;

		if (n == POP3C_TLS_SHA256_LEN)
			return -1;
		if (n > 0 && *s == ':')
			s++;
		hi = OPENSSL_hexchar2int((unsigned char)s[0]);
		lo = hi < 0 ? -1 : OPENSSL_hexchar2int((unsigned char)s[1]);
		if (hi < 0 || lo < 0)
			return -1;
		out[n++] = (unsigned char)(hi << 4 | lo);
		s += 2;
	}
	return n == POP3C_TLS_SHA256_LEN ? 0 : -1;
}

/* Wait for what OpenSSL wants until deadline; 0, or -1 with errno. */
static int
wait_io(int fd, int want, uint64_t deadline)
{
	return net_wait_fd(fd, want == TLS_IO_WANT_WRITE ? POLLOUT : POLLIN,
	    deadline);
}

static void
tt_close(void *arg)
{
	struct tls_tr *x = arg;

	if (conn_tls(&x->conn) != NULL)
		conn_shutdown(&x->conn);
	conn_free(&x->conn);
	tls_ctx_free(&x->ctx);
	if (x->conn.fd >= 0)
		close(x->conn.fd);
	explicit_bzero(x, sizeof(*x));
	free(x);
}

static ssize_t
tt_channel_binding(void *arg, const char *type, unsigned char *out,
    size_t size)
{
	struct tls_tr *x = arg;
	struct tls_conn *tls = conn_tls(&x->conn);

	return tls != NULL ? tls_channel_binding(tls, type, out, size) : -1;
}

static void
fingerprint_text(char *dst, const unsigned char *md)
{
	static const char hex[] = "0123456789ABCDEF";

	for (size_t i = 0; i < POP3C_TLS_SHA256_LEN; i++) {
		*dst++ = hex[md[i] >> 4];
		*dst++ = hex[md[i] & 15];
		if (i + 1 < POP3C_TLS_SHA256_LEN)
			*dst++ = ':';
	}
	*dst = '\0';
}

/* The handshake on tls within timeout_ms; 0, or -1 with err saying why. */
static int
handshake(struct tls_tr *x, struct tls_conn *tls, char *err)
{
	uint64_t deadline = ev_now_ms() + (uint64_t)x->timeout_ms;
	unsigned char md[POP3C_TLS_SHA256_LEN];
	char why[200], fp[3 * POP3C_TLS_SHA256_LEN];

	for (;;) {
		int r = tls_handshake(tls);

		if (r == TLS_IO_OK)
			return 0;
		if (r != TLS_IO_WANT_READ && r != TLS_IO_WANT_WRITE) {
			tls_describe_error(tls, why, sizeof(why));
			if (tls_peer_not_tls(tls))
				(void)str_fmt(err, ERR_LEN, "TLS: %s: the "
				    "server does not speak TLS on this port "
				    "(plain POP3? then use pop3:// or "
				    "--tls=stls)", why);
			else if (strncmp(why, "certificate verify", 18) == 0 &&
			    tls_peer_sha256(tls, md) == 0) {
				/* What to pin, if the user trusts it. */
				fingerprint_text(fp, md);
				(void)str_fmt(err, ERR_LEN, "TLS: %s; if this "
				    "is the right certificate: "
				    "--tls-fingerprint %s", why, fp);
			} else
				(void)str_fmt(err, ERR_LEN, "TLS: %s", why);
			return -1;
		}
		if (wait_io(x->conn.fd, r, deadline) < 0) {
			(void)str_fmt(err, ERR_LEN, "TLS: %s during the "
			    "handshake", errno == ETIMEDOUT ? "timed out" :
			    strerror(errno));
			return -1;
		}
	}
}

/* A pinned certificate replaces the CA check: it must match exactly. */
static int
check_pin(const struct tls_tr *x, struct tls_conn *tls, char *err)
{
	unsigned char md[POP3C_TLS_SHA256_LEN];
	char fp[3 * POP3C_TLS_SHA256_LEN];

	if (tls_peer_sha256(tls, md) < 0) {
		str_copy(err, ERR_LEN, "TLS: the server sent no certificate");
		return -1;
	}
	if (CRYPTO_memcmp(md, x->p.pin, sizeof(md)) != 0) {
		fingerprint_text(fp, md);
		(void)str_fmt(err, ERR_LEN, "TLS: certificate fingerprint "
		    "mismatch (the server's SHA-256 is %s)", fp);
		return -1;
	}
	return 0;
}

static int
tt_starttls(void *arg, char *err)
{
	struct tls_tr *x = arg;
	struct tls_conn *tls;

	if (x->started) {
		str_copy(err, ERR_LEN, "TLS: already started");
		return -1;
	}
	x->started = true;
	tls = tls_client_conn_new(x->ctx, x->conn.fd, x->host, !x->p.pinned);
	if (tls == NULL) {
		(void)str_fmt(err, ERR_LEN, "TLS: cannot set up a connection "
		    "to verify \"%s\"", x->host);
		return -1;
	}
	if (handshake(x, tls, err) < 0 ||
	    (x->p.pinned && check_pin(x, tls, err) < 0)) {
		/* Not up: no close_notify over it either. */
		tls_conn_free(&tls);
		return -1;
	}
	conn_init_tls(&x->conn, x->conn.fd, tls);
	if (x->p.verbose)
		fprintf(stderr, "postino: %s, %s, certificate %s\n",
		    tls_version(tls), tls_cipher(tls),
		    x->p.pinned ? "matches the pinned fingerprint" :
		    "verified");
	return 0;
}

int
pop3c_tls_transport(struct pop3c_transport *tr, int fd, int timeout_ms,
    const struct pop3c_tls_params *p, bool implicit, char *err)
{
	struct tls_tr *x = calloc(1, sizeof(*x));
	char why[ERR_LEN];

	if (x == NULL) {
		close(fd);
		str_copy(err, ERR_LEN, "out of memory");
		return -1;
	}
	(void)net_set_nonblock(fd);
	conn_init_plain(&x->conn, fd);
	x->timeout_ms = timeout_ms > 0 ? timeout_ms : 1;
	x->p = *p;
	if (str_copy(x->host, sizeof(x->host), p->host) < 0) {
		str_copy(err, ERR_LEN, "TLS: host name too long");
		goto fail;
	}
	x->ctx = tls_client_ctx_new(p->cafile, "TLSv1.2", why);
	if (x->ctx == NULL) {
		(void)str_fmt(err, ERR_LEN, "TLS: %s", why);
		goto fail;
	}
	memset(tr, 0, sizeof(*tr));
	tr->conn = &x->conn;
	tr->timeout_ms = x->timeout_ms;
	tr->close = tt_close;
	tr->ctx = x;
	tr->starttls = tt_starttls;
	tr->channel_binding = tt_channel_binding;
	if (implicit) {
		if (tt_starttls(x, err) < 0)
			goto fail;
		tr->starttls = NULL;
		tr->tls = true;
	}
	return 0;
fail:
	tt_close(x);
	return -1;
}
