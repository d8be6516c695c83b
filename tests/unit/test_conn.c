/*
 * lib/conn: the plaintext stream's nonblocking contract on a socketpair
 * (bytes, EAGAIN, 0 at end of stream, EPIPE to a closed peer), and a TLS
 * object that leaves with conn_take_tls() turns the stream plaintext.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <cmocka.h>

#include "../../src/lib/conn.h"
#include "testutil.h"

static void
test_conn_plain_moves_bytes_and_says_eagain_then_eof(void **state)
{
	struct conn a, b;
	char buf[16];
	int sv[2];

	(void)state;
	tu_socketpair(sv);
	conn_init_plain(&a, sv[0]);
	conn_init_plain(&b, sv[1]);
	errno = 0;
	assert_int_equal(conn_read(&b, buf, sizeof(buf)), -1);
	assert_int_equal(errno, EAGAIN);
	assert_false(b.want_write);
	assert_int_equal(conn_write(&a, "+OK\r\n", 5), 5);
	assert_int_equal(conn_read(&b, buf, sizeof(buf)), 5);
	assert_memory_equal(buf, "+OK\r\n", 5);
	assert_false(conn_pending(&b));
	conn_shutdown(&a);
	conn_free(&a);
	close(sv[0]);
	assert_int_equal(conn_read(&b, buf, sizeof(buf)), 0);
	conn_free(&b);
	close(sv[1]);
}

static void
test_conn_plain_write_fills_then_eagain_then_epipe(void **state)
{
	static char big[1 << 16];
	struct conn a;
	int sv[2];
	ssize_t n;
	int i;

	(void)state;
	tu_socketpair(sv);
	conn_init_plain(&a, sv[0]);
	/* A socketpair's buffer is finite: writing must stop with EAGAIN. */
	for (i = 0; i < 1000; i++) {
		n = conn_write(&a, big, sizeof(big));
		if (n < 0)
			break;
		assert_true(n > 0);
	}
	assert_true(i < 1000);
	assert_int_equal(errno, EAGAIN);
	close(sv[1]);
	/* MSG_NOSIGNAL: a closed peer is EPIPE, not a SIGPIPE. */
	assert_int_equal(conn_write(&a, "x", 1), -1);
	assert_int_equal(errno, EPIPE);
	conn_free(&a);
	close(sv[0]);
}

static void
test_conn_take_tls_leaves_plaintext(void **state)
{
	struct conn c;
	int sv[2];
	char err[256];
	struct tls_ctx *ctx;
	struct tls_conn *tls;

	(void)state;
	tu_socketpair(sv);
	assert_int_equal(tls_init(err), 0);
	ctx = tls_client_ctx_new(NULL, "TLSv1.2", err);
	assert_non_null(ctx);
	tls = tls_client_conn_new(ctx, sv[0], "localhost", false);
	assert_non_null(tls);
	conn_init_tls(&c, sv[0], tls);
	assert_ptr_equal(conn_tls(&c), tls);
	/* Nothing from the peer yet: the TLS read waits, like a socket. */
	{
		char buf[8];

		assert_int_equal(conn_read(&c, buf, sizeof(buf)), -1);
		assert_int_equal(errno, EAGAIN);
	}
	assert_ptr_equal(conn_take_tls(&c), tls);
	assert_null(conn_tls(&c));
	assert_int_equal(conn_write(&c, "x", 1), 1);
	conn_free(&c);
	tls_conn_free(&tls);
	tls_ctx_free(&ctx);
	close(sv[0]);
	close(sv[1]);
}

/*
 * A TLS write before the handshake starts it: the ClientHello goes out
 * and the write can go on only once the server answers, so a caller
 * polling for writable would spin; want_read tells it to poll for input.
 */
static void
test_conn_tls_write_says_it_waits_to_read(void **state)
{
	struct conn c;
	int sv[2];
	char err[256], hello[5];
	struct tls_ctx *ctx;

	(void)state;
	tu_socketpair(sv);
	assert_int_equal(tls_init(err), 0);
	ctx = tls_client_ctx_new(NULL, "TLSv1.2", err);
	assert_non_null(ctx);
	conn_init_tls(&c, sv[0], tls_client_conn_new(ctx, sv[0], "localhost",
	    false));
	assert_non_null(conn_tls(&c));
	errno = 0;
	assert_int_equal(conn_write(&c, "CAPA\r\n", 6), -1);
	assert_int_equal(errno, EAGAIN);
	assert_true(c.want_read);
	assert_false(c.want_write);
	/* The ClientHello is on the wire: a TLS record, handshake type. */
	assert_int_equal(read(sv[1], hello, sizeof(hello)), 5);
	assert_int_equal(hello[0], 22);
	conn_free(&c);
	assert_null(conn_tls(&c));
	assert_false(c.want_read);
	tls_ctx_free(&ctx);
	close(sv[0]);
	close(sv[1]);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(
		    test_conn_plain_moves_bytes_and_says_eagain_then_eof),
		cmocka_unit_test(
		    test_conn_plain_write_fills_then_eagain_then_epipe),
		cmocka_unit_test(test_conn_take_tls_leaves_plaintext),
		cmocka_unit_test(test_conn_tls_write_says_it_waits_to_read),
	};

	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
