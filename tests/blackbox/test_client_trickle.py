"""`postino` against servers that trickle: an octet a little within every
--timeout, so that no single read ever times out. A reply line must come
whole within the timeout, a message within the timeout and a second per
POP3C_MIN_RATE (1024) octets of it (src/client/limits.h); past that the
run ends as a timeout does (exit 2, "server too slow"), stores nothing
half and records nothing it did not store. A server slow but within the
rate is served. Loopback only; every loop and subprocess is bounded: a
client that waits past its bound is reported by the subprocess limit,
not hung."""

import time

import conftest  # noqa: F401  (the certs fixture)

from test_attack_client import no_partial_mail
from test_client import (FakeServer, Home, assert_no_sanitizer,  # noqa: F401
                         fake_msgs, fake_pop3, home, url)

# What each trickling server would take to finish its reply: far past
# every bound below, so an unbounded client fails the test.
TRICKLE_OCTETS = 400
TRICKLE_GAP = 0.5
# The subprocess limit; a bounded client ends within a few seconds of
# --timeout 2 even on a loaded machine.
WALL = 30
BOUND = 15


def trickle(conn, data):
    """data an octet at a time, TRICKLE_GAP apart, until the client goes."""
    for i in range(len(data)):
        conn.sendall(data[i:i + 1])
        time.sleep(TRICKLE_GAP)


def run(home, srv, *args, close=True):
    t0 = time.monotonic()
    try:
        cp = home.run(*args, "--tls=no", "--timeout", "2", url(srv.port),
                      timeout=WALL)
    finally:
        if close:
            srv.close()
    return cp, time.monotonic() - t0


def assert_too_slow(cp, took):
    err = cp.stderr.decode()
    assert cp.returncode == 2, err          # as a timeout: EXIT_NET
    assert "server too slow" in err, err
    assert took < BOUND, (took, err)


def test_trickled_greeting(home):
    def script(srv, conn, rf):
        trickle(conn, b"+OK " + b"x" * TRICKLE_OCTETS + b"\r\n")

    cp, took = run(home, FakeServer(script), "stat")
    assert_too_slow(cp, took)


def test_trickled_status_line(home):

    def script(srv, conn, rf):
        conn.sendall(b"+OK ready\r\n")
        while True:
            line = srv.cmd(rf)
            if line.upper() == b"STAT":
                trickle(conn, b"+OK 1 " + b"0" * TRICKLE_OCTETS + b"\r\n")
                return
            if line.upper() == b"CAPA":
                conn.sendall(b"+OK\r\nUSER\r\nUIDL\r\n.\r\n")
            else:
                conn.sendall(b"+OK\r\n")

    cp, took = run(home, FakeServer(script), "stat")
    assert_too_slow(cp, took)


def test_trickled_retr_body_stores_nothing_and_next_run_delivers_once(home):
    """The second message trickles: the first is stored and recorded, the
    second neither; the next run (same server, same account) then
    delivers only the second: the exactly-once machinery over a RETR
    aborted as too slow."""
    msgs = fake_msgs(2, 2000)
    trickled = []

    def slow_second_once(conn, n, m):
        if n == 2 and not trickled:
            trickled.append(n)
            conn.sendall(b"+OK\r\n")
            trickle(conn, (m * 4)[:TRICKLE_OCTETS])
            raise EOFError

    srv = FakeServer(fake_pop3(msgs, on_retr=slow_second_once),
                     connections=2)
    try:
        cp, took = run(home, srv, "fetch", "--maildir", home.maildir,
                       close=False)
        assert_too_slow(cp, took)
        no_partial_mail(home, 1)
        assert home.tmp_files() == []
        assert home.state_ids() == ["uid-1"]
        del srv.received[:]
    finally:
        cp, _ = run(home, srv, "fetch", "--maildir", home.maildir)
    assert cp.returncode == 0, cp.stderr.decode()
    assert home.new_messages() == [m.replace(b"\r\n", b"\n") for m in msgs]
    assert home.tmp_files() == []
    # Only message 2 was asked for again.
    assert [l for l in srv.received if l.startswith(b"RETR")] == [b"RETR 2"]


def test_trickled_list_line(home):
    """A LIST reply whose every line comes whole but the listing as a
    whole trickles: bounded too (the listing is a body)."""
    def script(srv, conn, rf):
        conn.sendall(b"+OK ready\r\n")
        while True:
            line = srv.cmd(rf)
            word = line.split(b" ")[0].upper()
            if word == b"LIST":
                conn.sendall(b"+OK\r\n")
                for i in range(1, TRICKLE_OCTETS):
                    conn.sendall(b"%d 100\r\n" % i)
                    time.sleep(TRICKLE_GAP)
                return
            if word == b"CAPA":
                conn.sendall(b"+OK\r\nUSER\r\nUIDL\r\n.\r\n")
            else:
                conn.sendall(b"+OK\r\n")

    cp, took = run(home, FakeServer(script), "fetch", "--maildir",
                   home.maildir)
    assert_too_slow(cp, took)
    no_partial_mail(home)


class Paced:
    """A connection whose large writes go out 512 octets every 0.25 s:
    2 KiB/s, twice POP3C_MIN_RATE."""

    def __init__(self, conn):
        self.conn = conn

    def sendall(self, data):
        if len(data) < 1000:
            return self.conn.sendall(data)
        for i in range(0, len(data), 512):
            self.conn.sendall(data[i:i + 512])
            time.sleep(0.25)

    def shutdown(self, how):
        self.conn.shutdown(how)


def test_slow_but_steady_server_is_served(home):
    """A greeting in two pieces 1 s apart (within the 2 s a line gets)
    and two messages of 8 KiB at 2 KiB/s: both fetched."""
    msgs = fake_msgs(2, 8192)
    base = fake_pop3(msgs, greeting=b" ready\r\n")

    def script(srv, conn, rf):
        conn.sendall(b"+OK fake")
        time.sleep(1)
        base(srv, Paced(conn), rf)

    cp, took = run(home, FakeServer(script), "fetch", "--keep",
                   "--maildir", home.maildir)
    assert cp.returncode == 0, cp.stderr.decode()
    assert home.new_messages() == [m.replace(b"\r\n", b"\n") for m in msgs]
    assert took > 5     # the server really was slow: 2 x 4 s of RETR
