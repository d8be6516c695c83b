#include "net.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <netinet/tcp.h>
#include <string.h>
#include <unistd.h>

#include "ev.h"

int
net_parse_addr(const char *s, struct sockaddr_storage *ss, socklen_t *len_r,
    char *err)
{
	char host[INET6_ADDRSTRLEN + 1];
	const char *colon, *hstart, *hend;
	uint32_t port;

	memset(ss, 0, sizeof(*ss));
	if (s[0] == '[') {
		hstart = s + 1;
		hend = strchr(hstart, ']');
		if (hend == NULL || hend[1] != ':') {
			str_fmt(err, ERR_LEN, "'%s': expected [IPv6]:PORT", s);
			return -1;
		}
		colon = hend + 1;
	} else {
		hstart = s;
		colon = strrchr(s, ':');
		if (colon == NULL) {
			str_fmt(err, ERR_LEN, "'%s': expected ADDRESS:PORT", s);
			return -1;
		}
		hend = colon;
	}
	if (str_parse_u32(colon + 1, &port) < 0 || port > 65535) {
		str_fmt(err, ERR_LEN, "'%s': port must be 0..65535", s);
		return -1;
	}
	if ((size_t)(hend - hstart) >= sizeof(host)) {
		str_fmt(err, ERR_LEN, "'%s': address too long", s);
		return -1;
	}
	memcpy(host, hstart, (size_t)(hend - hstart));
	host[hend - hstart] = '\0';
	if (s[0] == '[') {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;

		if (inet_pton(AF_INET6, host, &sin6->sin6_addr) != 1) {
			str_fmt(err, ERR_LEN, "'%s': bad IPv6 address", s);
			return -1;
		}
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons((uint16_t)port);
		*len_r = sizeof(*sin6);
	} else {
		struct sockaddr_in *sin = (struct sockaddr_in *)ss;

		if (strcmp(host, "*") == 0)
			sin->sin_addr.s_addr = htonl(INADDR_ANY);
		else if (inet_pton(AF_INET, host, &sin->sin_addr) != 1) {
			str_fmt(err, ERR_LEN, "'%s': bad IPv4 address "
			    "(write IPv6 as [ADDR]:PORT)", s);
			return -1;
		}
		sin->sin_family = AF_INET;
		sin->sin_port = htons((uint16_t)port);
		*len_r = sizeof(*sin);
	}
	return 0;
}

int
net_set_nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);

	/* accept4(SOCK_NONBLOCK) and a handed-off fd are already set. */
	if (fl < 0 || ((fl & O_NONBLOCK) == 0 &&
	    fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0))
		return -1;
	return 0;
}

int
net_set_nodelay(int fd)
{
	int on = 1;

	/* Socketpairs (the TLS relay, the tests) have no Nagle to turn off. */
	if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on)) < 0 &&
	    errno != EOPNOTSUPP && errno != ENOPROTOOPT)
		return -1;
	return 0;
}

int
net_listen(const struct sockaddr_storage *ss, socklen_t len, int backlog,
    char *err)
{
	char addr[NET_ADDR_LEN];
	int fd, on = 1;

	net_addr_str(ss, addr, sizeof(addr), NULL, 0, NULL);
	fd = socket(ss->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		str_fmt(err, ERR_LEN, "socket for %s: %s", addr, strerror(errno));
		return -1;
	}
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
	if (ss->ss_family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof(on));
	if (bind(fd, (const struct sockaddr *)ss, len) < 0 ||
	    listen(fd, backlog) < 0) {
		str_fmt(err, ERR_LEN, "listen on %s: %s", addr, strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

void
net_addr_str(const struct sockaddr_storage *ss, char *buf, size_t size,
    char *ip, size_t ipsize, uint16_t *port_r)
{
	char host[INET6_ADDRSTRLEN] = "?";
	uint16_t port = 0;

	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *sin = (const struct sockaddr_in *)ss;

		inet_ntop(AF_INET, &sin->sin_addr, host, sizeof(host));
		port = ntohs(sin->sin_port);
		str_fmt(buf, size, "%s:%u", host, port);
	} else if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)ss;

		inet_ntop(AF_INET6, &sin6->sin6_addr, host, sizeof(host));
		port = ntohs(sin6->sin6_port);
		str_fmt(buf, size, "[%s]:%u", host, port);
	} else {
		str_copy(buf, size, "unix");
	}
	if (ip != NULL)
		str_copy(ip, ipsize, host);
	if (port_r != NULL)
		*port_r = port;
}

int
net_wait_fd(int fd, short events, uint64_t deadline)
{
	for (;;) {
		struct pollfd p = { .fd = fd, .events = events };
		uint64_t now = ev_now_ms();
		int n;

		if (now >= deadline) {
			errno = ETIMEDOUT;
			return -1;
		}
		n = poll(&p, 1, (int)(deadline - now));
		if (n > 0)
			return 0;
		if (n < 0 && errno != EINTR)
			return -1;
	}
}

static void
host_port(char *dst, size_t size, const char *host, const char *port)
{
	if (strchr(host, ':') != NULL)
		(void)str_fmt(dst, size, "[%s]:%s", host, port);
	else
		(void)str_fmt(dst, size, "%s:%s", host, port);
}

static int
connect_one(const struct addrinfo *ai, int timeout_ms)
{
	int fd, e;
	socklen_t elen = sizeof(e);

	fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK |
	    SOCK_CLOEXEC, ai->ai_protocol);
	if (fd < 0)
		return -1;
	if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
		return fd;
	if (errno != EINPROGRESS)
		goto fail;
	if (net_wait_fd(fd, POLLOUT, ev_now_ms() + (uint64_t)timeout_ms) < 0)
		goto fail;
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &elen) < 0)
		goto fail;
	if (e != 0) {
		errno = e;
		goto fail;
	}
	return fd;
fail:
	e = errno;
	close(fd);
	errno = e;
	return -1;
}

int
net_connect(const char *host, const char *port, int family,
    int timeout_ms, char *err)
{
	struct addrinfo hints = { 0 }, *res, *ai;
	char where[600], why[128];
	int fd = -1, e = 0, rc;

	host_port(where, sizeof(where), host, port);
	hints.ai_family = family;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_ADDRCONFIG;
	rc = getaddrinfo(host, port, &hints, &res);
	if (rc == EAI_ADDRFAMILY || rc == EAI_NONAME) {
		/* AI_ADDRCONFIG hides ::1 on hosts with only loopback IPv6. */
		hints.ai_flags = 0;
		rc = getaddrinfo(host, port, &hints, &res);
	}
	if (rc != 0) {
		(void)str_fmt(err, ERR_LEN, "%s: %s", where,
		    rc == EAI_SYSTEM ? strerror(errno) : gai_strerror(rc));
		return -1;
	}
	for (ai = res; ai != NULL; ai = ai->ai_next) {
		fd = connect_one(ai, timeout_ms);
		if (fd >= 0)
			break;
		e = errno;
	}
	freeaddrinfo(res);
	if (fd < 0) {
		str_errno(why, sizeof(why), e == ETIMEDOUT ? ETIMEDOUT : e);
		if (e == ETIMEDOUT)
			(void)str_fmt(why, sizeof(why), "connect: no answer "
			    "within %d s (the server or a firewall drops the "
			    "connection)", (timeout_ms + 999) / 1000);
		(void)str_fmt(err, ERR_LEN, "%s: %s", where, why);
		return -1;
	}
	return fd;
}
