/*
 * Sockets: listen/accept over IPv4 and IPv6, addresses as text.
 */
#ifndef POSTINO_NET_H
#define POSTINO_NET_H

#include <netinet/in.h>
#include <stdint.h>
#include <sys/socket.h>

#include "str.h"

/* "[ffff:...:ffff]:65535" */
#define NET_ADDR_LEN	(INET6_ADDRSTRLEN + 8)

/*
 * Parse "ADDR:PORT", "[IPv6]:PORT" or "*:PORT" (every IPv4 address; "[::]"
 * for every IPv6 one) into ss. 0, or -1 with err filled.
 */
int net_parse_addr(const char *s, struct sockaddr_storage *ss, socklen_t *len_r,
    char *err);

/* A nonblocking, close-on-exec listening socket (IPv6 sockets are v6-only). */
int net_listen(const struct sockaddr_storage *ss, socklen_t len, int backlog,
    char *err);

/* "1.2.3.4:110" / "[::1]:110"; the port-less form in ip (may be NULL). */
void net_addr_str(const struct sockaddr_storage *ss, char *buf, size_t size,
    char *ip, size_t ipsize, uint16_t *port_r);

int net_set_nonblock(int fd);

/*
 * Turn Nagle off on a TCP socket (a no-op, 0, on anything else). Only for
 * writers that coalesce their own output into one write per reply: Nagle
 * would otherwise hold a reply's last partial segment until the peer's
 * delayed ACK (40 ms on Linux).
 */
int net_set_nodelay(int fd);

/*
 * poll(2) on fd for events until deadline (ev_now_ms(), ev.h): 0 ready,
 * -1 with errno (ETIMEDOUT when the deadline passed). For blocking I/O
 * with a deadline on a nonblocking socket (the client, delivery).
 */
int net_wait_fd(int fd, short events, uint64_t deadline);

/*
 * Connect to host:port (family AF_UNSPEC, AF_INET or AF_INET6), trying each
 * address in turn, each within timeout_ms. Returns the connected,
 * nonblocking, close-on-exec socket, or -1 with err (ERR_LEN: "HOST:PORT:
 * connection refused").
 */
int net_connect(const char *host, const char *port, int family,
    int timeout_ms, char *err);

#endif
