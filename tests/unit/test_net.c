/*
 * lib/net: the one TCP connect (client and delivery) over IPv4 and IPv6,
 * and waiting on a socket with a deadline.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <cmocka.h>

#include "../../src/lib/ev.h"
#include "../../src/lib/net.h"

/* A listener on addr ("127.0.0.1:0"); its port into port. -1 if none. */
static int
listener(const char *addr, char port[8])
{
	struct sockaddr_storage ss;
	socklen_t len;
	char err[ERR_LEN], where[NET_ADDR_LEN];
	uint16_t p;
	int fd;

	if (net_parse_addr(addr, &ss, &len, err) < 0)
		return -1;
	fd = net_listen(&ss, len, 4, err);
	if (fd < 0)
		return -1;
	len = sizeof(ss);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&ss, &len), 0);
	net_addr_str(&ss, where, sizeof(where), NULL, 0, &p);
	(void)snprintf(port, 8, "%u", p);
	return fd;
}

static void
connect_to(const char *listen, const char *host, int family)
{
	char port[8], err[ERR_LEN];
	int l, fd;

	l = listener(listen, port);
	if (l < 0) {
		skip();		/* no such address family here */
		return;
	}
	fd = net_connect(host, port, family, 5000, err);
	assert_true(fd >= 0);
	/* Connected: writable at once. */
	assert_int_equal(net_wait_fd(fd, POLLOUT, ev_now_ms() + 5000), 0);
	close(fd);
	close(l);
}

static void
test_net_connect_ipv4(void **state)
{
	(void)state;
	connect_to("127.0.0.1:0", "127.0.0.1", AF_UNSPEC);
}

static void
test_net_connect_ipv6(void **state)
{
	(void)state;
	connect_to("[::1]:0", "::1", AF_INET6);
}

static void
test_net_connect_unknown_host_says_so(void **state)
{
	char err[ERR_LEN];

	(void)state;
	assert_int_equal(net_connect("no-such-host.invalid", "110", AF_UNSPEC,
	    2000, err), -1);
	assert_non_null(strstr(err, "no-such-host.invalid:110: "));
}

static void
test_net_wait_fd_times_out(void **state)
{
	int sv[2];

	(void)state;
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	errno = 0;
	assert_int_equal(net_wait_fd(sv[0], POLLIN, ev_now_ms() + 20), -1);
	assert_int_equal(errno, ETIMEDOUT);
	close(sv[0]);
	close(sv[1]);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_net_connect_ipv4),
		cmocka_unit_test(test_net_connect_ipv6),
		cmocka_unit_test(test_net_connect_unknown_host_says_so),
		cmocka_unit_test(test_net_wait_fd_times_out),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
