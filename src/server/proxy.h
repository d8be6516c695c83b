/*
 * After a TLS client logs in, its connection stays in the login worker (the
 * only process holding the TLS key) and this relay copies plaintext between
 * it and a socketpair whose other end the mail worker serves as if it were
 * the client. Bounded buffers both ways: a side that stops reading stops
 * the other side's reads, nothing grows.
 */
#ifndef POSTINO_PROXY_H
#define POSTINO_PROXY_H

#include <stddef.h>

#include "../lib/ev.h"
#include "../lib/tls.h"

/*
 * Take over tls and net_fd (the client) and plain_fd (to the mail worker);
 * pending: output still owed to the client, sent first. The relay ends when
 * nothing moved either way for idle_ms, or, once the mail worker has
 * closed, when the rest did not reach the client within a few seconds.
 * -1 on failure (nothing taken over).
 */
int proxy_start(struct ev *ev, struct tls_conn *tls, int net_fd, int plain_fd,
    const char *session_id, const void *pending, size_t len,
    unsigned int idle_ms);
unsigned int proxy_count(void);
void proxy_close_all(void);

#endif
