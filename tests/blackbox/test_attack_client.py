"""`postino fetch` against hostile POP3 servers scripted here, on
loopback (issues 9, 11 follow-up: pop3c moved onto lib/conn + iobuf).
Every case: a clear message, a non-zero exit, no hang, no crash, and no
message recorded as fetched that was not fully stored. Every loop and
every subprocess is bounded."""

import socket
import threading
import time

import pytest

import conftest  # noqa: F401  (the certs fixture)
from conftest import certs, mailroot  # noqa: F401

from test_client import (FakeServer, Home, assert_no_sanitizer,  # noqa: F401
                         fake_msgs, fake_pop3, home, url)

# Far below the test's own subprocess limit (test_client.TIMEOUT).
WALL = 60


def fetch(home, srv, *extra, timeout=5):
    t0 = time.monotonic()
    try:
        cp = home.run("fetch", "--tls=no", "--timeout", str(timeout),
                      "--maildir", home.maildir, *extra, url(srv.port),
                      timeout=WALL)
        took = time.monotonic() - t0
    finally:
        srv.close()
    return cp, took


def no_partial_mail(home, fetched=0):
    """Nothing half-stored, nothing recorded that did not land."""
    import os
    new = os.path.join(home.maildir, "new")
    landed = len(os.listdir(new)) if os.path.isdir(new) else 0
    assert landed == fetched
    assert len([i for i in home.state_ids() if not i.startswith("pending")]
               ) <= landed


def flood(conn, first, piece, total, then=b""):
    """first, then piece again and again up to total octets, then then."""
    conn.sendall(first)
    sent = 0
    while sent < total:
        conn.sendall(piece)
        sent += len(piece)
    if then:
        conn.sendall(then)


def test_greeting_of_a_megabyte_without_lf(home):
    def script(srv, conn, rf):
        flood(conn, b"+OK ", b"x" * 65536, 1 << 20)
        time.sleep(10)

    cp, took = fetch(home, FakeServer(script))
    err = cp.stderr.decode()
    assert cp.returncode == 7, err
    assert "line over" in err
    assert took < 10
    no_partial_mail(home)


def test_list_that_never_ends(home):
    """A LIST reply of endless valid lines: bounded by a message count or
    by size, not by the server's good will."""
    stop = threading.Event()

    def endless(conn, n):
        conn.sendall(b"+OK\r\n")
        i = 1
        while not stop.is_set() and i < 20000000:
            conn.sendall(b"".join(b"%d 100\r\n" % k
                                  for k in range(i, i + 10000)))
            i += 10000

    def script(srv, conn, rf):
        while True:
            line = srv.cmd(rf)
            word = line.split(b" ")[0].upper()
            if word in (b"LIST", b"UIDL", b"STAT"):
                conn.sendall(b"+OK 20000000 2000000000\r\n"
                             if word == b"STAT" else b"")
                if word != b"STAT":
                    endless(conn, 0)
                    return
            elif word == b"CAPA":
                conn.sendall(b"+OK\r\nUSER\r\nUIDL\r\n.\r\n")
            else:
                conn.sendall(b"+OK\r\n")

    srv = FakeServer(script)
    try:
        cp, took = fetch(home, srv)
    finally:
        stop.set()
    err = cp.stderr.decode()
    assert cp.returncode == 7, err
    assert took < WALL
    no_partial_mail(home)


@pytest.mark.parametrize("delta", [+5000, -5000])
def test_retr_longer_or_shorter_than_list_said(home, delta):
    msgs = fake_msgs(2, 20000)
    listed = b"".join(b"%d %d\r\n" % (i + 1, len(m) + delta)
                      for i, m in enumerate(msgs)) + b".\r\n"
    srv = FakeServer(fake_pop3(msgs, list_lines=listed))
    cp, took = fetch(home, srv)
    err = cp.stderr.decode()
    # The sizes LIST gives are a hint (RFC 1939 sec. 11): the message is
    # what RETR sent, stored whole.
    assert cp.returncode == 0, err
    assert home.new_messages() == [m.replace(b"\r\n", b"\n") for m in msgs]


def test_server_stalls_mid_retr(home):
    msgs = fake_msgs(2, 20000)

    def stall(conn, n, m):
        if n == 2:
            conn.sendall(b"+OK\r\n" + m[:5000])
            time.sleep(15)
            raise EOFError

    srv = FakeServer(fake_pop3(msgs, on_retr=stall))
    cp, took = fetch(home, srv, timeout=2)
    err = cp.stderr.decode()
    assert cp.returncode == 2, err
    assert "timed out" in err
    assert took < 12
    no_partial_mail(home, 1)
    assert home.state_ids() == ["uid-1"]


def test_unsolicited_replies_before_commands(home):
    """Replies queued before any command shift every later reply by one:
    the client must notice (a multi-line reply where a status line was
    due, or the reverse) and store nothing it cannot trust."""
    msgs = fake_msgs(2)
    script = fake_pop3(msgs, greeting=b"+OK fake ready\r\n+OK extra\r\n"
                       b"+OK extra\r\n")
    cp, took = fetch(home, FakeServer(script))
    assert cp.returncode != 0 or home.new_messages() == [
        m.replace(b"\r\n", b"\n") for m in msgs], cp.stderr.decode()
    assert took < WALL


def test_stls_answered_ok_then_plaintext(home):
    def script(srv, conn, rf):
        conn.sendall(b"+OK fake\r\n")
        while True:
            line = srv.cmd(rf)
            if line.upper() == b"CAPA":
                conn.sendall(b"+OK\r\nSTLS\r\nUSER\r\n.\r\n")
            elif line.upper() == b"STLS":
                conn.sendall(b"+OK go\r\n+OK not tls at all\r\n")
            else:
                conn.sendall(b"+OK\r\n")

    srv = FakeServer(script)
    t0 = time.monotonic()
    try:
        cp = home.run("fetch", "--tls=stls", "--timeout", "5",
                      "--maildir", home.maildir, url(srv.port),
                      timeout=WALL)
        took = time.monotonic() - t0
    finally:
        srv.close()
    err = cp.stderr.decode()
    # RFC 2595 sec. 4 injection: a protocol violation (7), said as such.
    assert cp.returncode == 7, err
    assert "after STLS's +OK" in err
    assert took < 12
    assert not any(l.startswith(b"PASS") for l in srv.received)


def test_mbox_quoting_survives_every_block_boundary(home):
    """From_ lines (and already quoted ones) at every offset around the
    client's read pieces and the store's write blocks, lines far longer
    than the input buffer, a dot-stuffed line split across pieces: the
    mbox gives back exactly what RETR sent."""
    from test_client import parse_mboxrd
    parts, k = [b"Subject: quoting\r\n\r\n"], 0
    size = 0
    while size < 300000:
        k += 1
        pad = b"p" * (k * 37 % 211)
        for ln in (pad, b"From x %d" % k, b">From y", b">>From z",
                   b"." + pad, b"From"):
            parts.append(ln + b"\r\n")
            size += len(ln) + 2
        if k % 40 == 0:
            parts.append(b"L" * (16384 + k) + b"\r\n")
            parts.append(b".From " + b"q" * 16380 + b"\r\n")
            size += 16384 + k + 16390
    msg = b"".join(parts)
    srv = FakeServer(fake_pop3([msg]))
    cp = home.run("fetch", "--tls=no", "--mbox", home.mbox, url(srv.port),
                  timeout=WALL)
    srv.close()
    assert cp.returncode == 0, cp.stderr.decode()
    with open(home.mbox, "rb") as f:
        ((_, body),) = parse_mboxrd(f.read())
    assert len(body) > 290000
    assert body == msg.replace(b"\r\n", b"\n")


def test_retr_far_longer_than_list_said_is_refused_unstored(home):
    """LIST says 100 octets, RETR sends 3 MB: past the bound (2x + 1 MiB)
    the reply is a protocol violation; nothing lands, nothing is marked
    fetched, nothing deleted."""
    msgs = [b"Subject: big\r\n\r\n" + b"b" * 78 + b"\r\n"] * 2
    big = b"Subject: big\r\n\r\n" + (b"b" * 998 + b"\r\n") * 3000
    listed = b"1 100\r\n2 100\r\n.\r\n"

    def bigger(conn, n, m):
        if n == 2:
            conn.sendall(b"+OK\r\n" + big + b".\r\n")
            raise EOFError

    srv = FakeServer(fake_pop3(msgs, list_lines=listed, on_retr=bigger))
    cp, took = fetch(home, srv)
    err = cp.stderr.decode()
    assert cp.returncode == 7, err
    assert "exceeds" in err
    assert home.state_ids() == ["uid-1"]
    no_partial_mail(home, 1)
    assert not any(l.startswith((b"DELE", b"QUIT")) for l in srv.received)


def test_tls_server_renegotiates_mid_retr(home, certs):
    """openssl s_server (TLS 1.2) asks for a renegotiation half-way through
    a RETR: the client refuses it (SSL_OP_NO_RENEGOTIATION) and either
    finishes the message or fails clearly; never a hang, never a message
    half stored or marked fetched."""
    import subprocess
    from test_client import free_port
    port = free_port()
    srv = subprocess.Popen(
        ["openssl", "s_server", "-accept", "127.0.0.1:%d" % port,
         "-cert", certs["cert"], "-key", certs["key"], "-tls1_2", "-crlf",
         "-ign_eof"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, bufsize=0)
    msg = b"Subject: reneg\n\n" + b"".join(b"line %d\n" % i
                                          for i in range(2000))
    half = msg[:len(msg) // 2]
    rest = msg[len(msg) // 2:]

    def say(data):
        srv.stdin.write(data)
        srv.stdin.flush()

    listening = threading.Event()
    log = []

    def serve():
        for _ in range(1000):
            ln = srv.stdout.readline()
            if not ln:
                return
            log.append(ln)
            word = ln.strip().split(b" ")[0].upper()
            if ln.startswith(b"ACCEPT"):
                listening.set()
            elif b"CIPHER is" in ln:
                say(b"+OK reneg ready\n")
            elif word == b"CAPA":
                say(b"+OK\nUSER\nUIDL\n.\n")
            elif word in (b"USER", b"PASS", b"NOOP"):
                say(b"+OK\n")
            elif word == b"STAT":
                say(b"+OK 1 %d\n" % len(msg))
            elif word == b"LIST":
                say(b"+OK\n1 %d\n.\n" % len(msg))
            elif word == b"UIDL":
                say(b"+OK\n1 uid-1\n.\n")
            elif word == b"RETR":
                say(b"+OK\n" + half)
                time.sleep(0.3)
                say(b"r\n")
                time.sleep(0.3)
                try:
                    say(rest + b".\n")
                except BrokenPipeError:
                    return      # s_server gave up on the refusal
            elif word in (b"DELE", b"QUIT"):
                say(b"+OK\n")

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    try:
        assert listening.wait(20), b"".join(log)
        t0 = time.monotonic()
        cp = home.run("fetch", "--tls=implicit", "--cafile", certs["ca"],
                      "--timeout", "5", "--keep", "--maildir", home.maildir,
                      "pop3s://%s@127.0.0.1:%d" % ("alice", port),
                      timeout=WALL)
        took = time.monotonic() - t0
    finally:
        srv.kill()
        srv.wait(5)
        t.join(5)
    err = cp.stderr.decode()
    assert took < 30
    if cp.returncode == 0:
        assert home.new_messages() == [msg]
        assert home.state_ids() == ["uid-1"]
    else:
        # A TLS failure, said as one (it was "read: protocol error", 2).
        assert cp.returncode == 3, err
        assert "TLS: " in err and "alert" in err, err
        no_partial_mail(home)
