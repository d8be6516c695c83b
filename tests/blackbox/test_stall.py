"""The small-write / delayed-ACK stall (issue 11): with the status line
and the body in separate writes and Nagle on, every RETR and LIST waited
~40 ms for the client's delayed ACK, whatever its size. Checked over
plaintext, STLS and implicit TLS (the login worker's relay).

The mechanism itself (status line and first block in one write, Nagle off)
is unit-tested in tests/unit/test_session.c; this is the end-to-end guard,
with a bound far above a normal reply and below the 40 ms stall: the
median of several replies, so one slow moment on a busy machine does not
count."""

import statistics
import time

import pytest

from test_tls import connect_mode

USER, PASS = "alice", "secret"
ROUNDS = 9
# A 4 KB RETR or a short LIST takes well under a millisecond; the stall
# was 40 ms (Linux's minimum delayed-ACK timeout) per reply.
MEDIAN_MAX = 0.020


@pytest.fixture
def stall_srv(mailroot, postinod, certs):
    mailroot.add_user(USER, PASS)
    body = b"Subject: s\n\n" + b"x" * 70 + b"\n"
    for _ in range(3):
        mailroot.deliver_maildir(USER, body * 55)     # ~4 KB each
    return postinod(tls_cert=certs["cert"], tls_key=certs["key"],
                    listen_tls=["127.0.0.1:0"])



@pytest.mark.parametrize("mode", ["plain", "stls", "implicit"])
def test_retr_and_list_do_not_wait_for_a_delayed_ack(stall_srv, certs, mode):
    r = connect_mode(stall_srv, certs, mode)
    assert r.login(USER, PASS).startswith(b"+OK Logged in")
    times = {b"RETR 2": [], b"LIST": []}
    for _ in range(ROUNDS):
        for cmd, t in times.items():
            t0 = time.monotonic()
            r.send(cmd + b"\r\n")
            r.expect(b"+OK")
            r.raw_until_dot()
            t.append(time.monotonic() - t0)
    assert r.cmd(b"QUIT").startswith(b"+OK")
    for cmd, t in times.items():
        med = statistics.median(t)
        assert med < MEDIAN_MAX, "%s over %s: median %.1f ms (%s)" % (
            cmd.decode(), mode, med * 1000,
            " ".join("%.1f" % (x * 1000) for x in t))
