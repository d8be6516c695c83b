"""A hostile peer against the server's I/O after its move onto lib/iobuf
(session buffers, the implicit-TLS relay, LMTP): line limits, split and
pipelined input, half-closed and reset sockets, STLS injection, TLS
records split to single octets. Every loop is bounded; the server must
answer, stay bounded, and lose no mail and no QUIT."""

import os
import socket
import ssl
import time

import pytest

import conftest
from test_tls import TlsRaw, client_ctx, connect_mode

USER, PASS = "alice", "secret"
LINE_MAX = 512          # POP3_LINE_MAX (pop3.h), CRLF included


@pytest.fixture(autouse=True)
def small_quarantine(monkeypatch):
    """ASan keeps freed blocks (up to 256 MB) before reusing them: RSS
    would measure that, not our buffers. Leak checks stay on."""
    opts = os.environ.get("ASAN_OPTIONS", "detect_leaks=1")
    monkeypatch.setenv("ASAN_OPTIONS", opts + ":quarantine_size_mb=1")


@pytest.fixture
def srv(mailroot, postinod, certs):
    mailroot.add_user(USER, PASS)
    for i in range(3):
        mailroot.deliver_maildir(USER, b"Subject: m%d\n\nbody %d\n" % (i, i))
    return postinod(tls_cert=certs["cert"], tls_key=certs["key"],
                    listen_tls=["127.0.0.1:0"])



def stat(srv):
    r = srv.raw()
    r.expect(b"+OK")
    assert r.login(USER, PASS).startswith(b"+OK")
    n = int(r.cmd(b"STAT").split()[1])
    r.cmd(b"QUIT")
    r.close()
    return n


def count_after(srv, want, seconds=10):
    """STAT until it shows want messages (the last session may still be
    committing); what it showed last."""
    deadline = time.monotonic() + seconds
    while True:
        n = stat(srv)
        if n == want or time.monotonic() > deadline:
            return n
        time.sleep(0.1)


MODES = ["plain", "stls", "implicit"]


@pytest.mark.parametrize("mode", MODES)
def test_line_at_the_limit_is_taken_one_over_is_refused(srv, certs, mode):
    for split in (False, True):
        r = connect_mode(srv, certs, mode)
        # PASS takes the rest of its line: exactly LINE_MAX octets.
        assert r.cmd(b"USER " + USER.encode()).startswith(b"+OK")
        ok = b"PASS " + b"p" * (LINE_MAX - 7) + b"\r\n"
        assert len(ok) == LINE_MAX
        if split:
            for i in range(len(ok)):
                r.send(ok[i:i + 1])
        else:
            r.send(ok)
        assert r.line().startswith(b"-ERR [AUTH]")
        long = b"USER " + b"u" * (LINE_MAX - 6) + b"\r\n"
        r.send(long)
        assert r.line() == b"-ERR Line too long."
        assert r.closed_within(10)
        r.close()


class BioTls:
    """TLS over a socket through memory BIOs: what leaves, and when, is
    ours to say (several records, close_notify included, in one write)."""

    def __init__(self, sock, ctx, octets=False):
        self.sock = sock
        self.octets = octets
        self.inc, self.out = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.obj = ctx.wrap_bio(self.inc, self.out,
                                server_hostname="localhost")
        self.buf = b""
        for _ in range(100):
            try:
                self.obj.do_handshake()
                break
            except ssl.SSLWantReadError:
                self._send(self.out.read())
                self._feed()
        self._send(self.out.read())

    def _send(self, data):
        """All of data; an octet per TCP segment with octets."""
        if not self.octets:
            self.sock.sendall(data)
            return
        for i in range(len(data)):
            self.sock.sendall(data[i:i + 1])

    def _feed(self):
        d = self.sock.recv(65536)
        if not d:
            raise conftest.Closed("closed")
        self.inc.write(d)

    def line(self):
        for _ in range(1000):
            if b"\n" in self.buf:
                ln, self.buf = self.buf.split(b"\n", 1)
                return ln.rstrip(b"\r")
            try:
                self.buf += self.obj.read(65536)
            except ssl.SSLWantReadError:
                self._feed()
        raise AssertionError("no line")

    def cmd(self, line):
        self.obj.write(line + b"\r\n")
        self._send(self.out.read())
        return self.line()

    def send_then_close(self, data):
        """data, close_notify and the TCP FIN in one burst."""
        self.obj.write(data)
        try:
            self.obj.unwrap()
        except ssl.SSLWantReadError:
            pass
        self._send(self.out.read())
        self.sock.shutdown(socket.SHUT_WR)


def burst_then_close(srv, certs, mode, burst):
    """Log in over mode, send burst and end the client's stream (a FIN, or
    close_notify then a FIN over TLS). The reader of the replies."""
    if mode == "plain":
        r = srv.raw()
        r.expect(b"+OK")
        assert r.login(USER, PASS).startswith(b"+OK Logged in")
        r.send(burst)
        r.sock.shutdown(socket.SHUT_WR)
        return r
    sock = socket.create_connection(
        (srv.host, srv.port_tls if mode == "implicit" else srv.port),
        timeout=10)
    if mode == "stls":
        p = conftest.Raw.__new__(conftest.Raw)
        p.sock, p.buf, p.eof = sock, b"", False
        p.expect(b"+OK")
        assert p.cmd(b"STLS").startswith(b"+OK")
    r = BioTls(sock, client_ctx(certs))
    if mode == "implicit":
        assert r.line().startswith(b"+OK")
    assert r.cmd(b"USER " + USER.encode()).startswith(b"+OK")
    assert r.cmd(b"PASS " + PASS.encode()).startswith(b"+OK Logged")
    r.send_then_close(burst)
    return r


@pytest.mark.parametrize("mode", MODES)
def test_quit_then_half_close_commits(srv, certs, mode):
    """DELE, QUIT and the end of the client's stream in one burst: the QUIT
    was sent, so the deletion is committed (RFC 1939 sec. 6), whatever
    way the session is carried. The TLS relay used to drop the commands it
    had read when the same read pass met the client's close_notify."""
    sock = burst_then_close(srv, certs, mode, b"DELE 1\r\nQUIT\r\n").sock
    sock.close()
    assert count_after(srv, 2, 5) == 2, "the QUIT was lost"


@pytest.mark.parametrize("mode", MODES)
def test_flood_of_pipelined_commands_never_read_stays_bounded(
        mailroot, srv, certs, mode):
    """10,000 RETRs of a 4 KB message in one write, replies unread: 40 MB
    of output the server must not buffer: its memory stays flat (it stops
    reading), and it answers everything, in order, once we read."""
    mailroot.deliver_maildir(USER, b"Subject: four\n\n" +
                             (b"f" * 63 + b"\n") * 64)
    r = connect_mode(srv, certs, mode)
    assert r.login(USER, PASS).startswith(b"+OK Logged in, 4")
    pid = srv.mail_worker_pid()
    base = rss_kib(pid)
    flood = b"RETR 4\r\n" * 10000
    sent = 0
    r.sock.settimeout(2)
    deadline = time.monotonic() + 30
    while sent < len(flood) and time.monotonic() < deadline:
        try:
            sent += r.sock.send(flood[sent:sent + 8192])
        except (socket.timeout, ssl.SSLWantWriteError):
            break
    time.sleep(0.5)
    rss = rss_kib(pid)
    print("flood %s: sent %d of %d, RSS %d -> %d KiB" % (
        mode, sent, len(flood), base, rss))
    assert rss - base < 8 * 1024, "mail worker RSS %d -> %d KiB" % (base, rss)
    r.sock.settimeout(10)
    r.send(flood[sent:])
    n = 0
    for _ in range(10000 * 70):
        if r.line() == b".":
            n += 1
            if n == 10000:
                break
    assert n == 10000
    assert r.cmd(b"NOOP").startswith(b"+OK")
    r.close()


@pytest.mark.parametrize("mode", ["plain", "stls"])
def test_cr_without_lf_and_nul(srv, certs, mode):
    r = connect_mode(srv, certs, mode)
    r.send(b"CAPA\rCAPA\r\n")
    assert r.line().startswith(b"-ERR")
    r.send(b"CA\x00PA\r\n")
    assert r.line() == b"-ERR Invalid command."
    assert r.cmd(b"USER x").startswith(b"+OK")
    r.close()


def test_stls_discards_pipelined_plaintext(srv, certs):
    r = srv.raw()
    r.expect(b"+OK")
    r.send(b"STLS\r\nUSER " + USER.encode() + b"\r\nPASS " +
           PASS.encode() + b"\r\n")
    assert r.line().startswith(b"+OK")
    t = TlsRaw(r.sock, client_ctx(certs))
    # Injected commands were dropped: the session is not logged in.
    assert t.cmd(b"STAT").startswith(b"-ERR")
    assert t.cmd(b"PASS " + PASS.encode()).startswith(b"-ERR")
    t.close()


@pytest.mark.parametrize("mode", ["stls", "implicit"])
def test_tls_records_split_one_octet_at_a_time(srv, certs, mode):
    """Every TLS record (the handshake's and the commands') reaches the
    server an octet per TCP segment; and a command sent an octet per
    record."""
    sock = socket.create_connection(
        (srv.host, srv.port_tls if mode == "implicit" else srv.port),
        timeout=10)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if mode == "stls":
        r = conftest.Raw.__new__(conftest.Raw)
        r.sock, r.buf, r.eof = sock, b"", False
        r.expect(b"+OK")
        assert r.cmd(b"STLS").startswith(b"+OK")
    t = BioTls(sock, client_ctx(certs), octets=True)
    if mode == "implicit":
        assert t.line().startswith(b"+OK")
    assert t.cmd(b"USER " + USER.encode()).startswith(b"+OK")
    assert t.cmd(b"PASS " + PASS.encode()).startswith(b"+OK Logged in")
    assert t.cmd(b"STAT").startswith(b"+OK 3")
    for c in b"LIST 2\r\n":
        t.obj.write(bytes([c]))
    t._send(t.out.read())
    assert t.line().startswith(b"+OK 2 ")
    assert t.cmd(b"QUIT").startswith(b"+OK")
    sock.close()


@pytest.mark.parametrize("mode", MODES)
def test_reset_mid_retr_keeps_mail(mailroot, postinod, certs, mode):
    mailroot.add_user(USER, PASS)
    mailroot.deliver_maildir(USER, b"Subject: big\n\n" +
                             (b"y" * 999 + b"\n") * 4000)
    srv = postinod(tls_cert=certs["cert"], tls_key=certs["key"],
                   listen_tls=["127.0.0.1:0"])
    r = connect_mode(srv, certs, mode)
    assert r.login(USER, PASS).startswith(b"+OK Logged in")
    r.send(b"DELE 1\r\nRETR 1\r\n")
    r.line()
    # RST: SO_LINGER 0 then close.
    r.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                      b"\x01\x00\x00\x00\x00\x00\x00\x00")
    sock = r.sock
    if mode != "plain":
        sock = socket.socket(fileno=os.dup(r.sock.fileno()))
        r.sock.close()
    sock.close()
    assert count_after(srv, 1) == 1
    assert srv.running()



def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        return int(f.read().split("VmRSS:")[1].split()[0])


@pytest.mark.parametrize("mode", MODES)
def test_slow_reader_of_a_big_retr_is_bounded_and_times_out(
        mailroot, postinod, certs, mode):
    """A client that reads a 10 MB RETR an octet at a time: the server's
    memory stays flat (it reads the message as the socket drains), and
    once nothing moves for idle_timeout the session ends."""
    mailroot.add_user(USER, PASS)
    mailroot.deliver_maildir(USER, b"Subject: big\n\n" +
                             (b"z" * 1023 + b"\n") * 10240)
    srv = postinod(tls_cert=certs["cert"], tls_key=certs["key"],
                   listen_tls=["127.0.0.1:0"], idle_timeout=3)
    r = connect_mode(srv, certs, mode)
    assert r.login(USER, PASS).startswith(b"+OK Logged in")
    pid = srv.mail_worker_pid()
    base = rss_kib(pid)
    r.send(b"RETR 1\r\n")
    t0 = time.monotonic()
    got, peak = 0, base
    r.sock.settimeout(1)
    for _ in range(40):          # an octet per 0.1 s, while it lasts
        try:
            d = r.sock.recv(1)
        except (socket.timeout, ssl.SSLError, OSError):
            break
        if not d:
            break
        got += 1
        peak = max(peak, rss_kib(pid))
        time.sleep(0.1)
    print("slow reader %s: RSS %d -> peak %d KiB" % (mode, base, peak))
    assert peak - base < 8 * 1024, "RSS grew %d KiB" % (peak - base)
    # Then it stops reading altogether: the idle timeout ends the session.
    closed = False
    r.sock.settimeout(2)
    deadline = time.monotonic() + 40
    while time.monotonic() < deadline:
        # Drain slowly enough that no progress resets the timer for long.
        time.sleep(1)
        if srv.log().count("event=timeout") or \
                "reason=timeout" in srv.log():
            closed = True
            break
    assert closed, "no idle timeout after %.0f s" % (time.monotonic() - t0)
    r.close()


def test_thousand_idle_connections_then_all_at_once(mailroot, postinod):
    mailroot.add_user(USER, PASS)
    for i in range(3):
        mailroot.deliver_maildir(USER, b"Subject: m%d\n\nbody\n" % i)
    srv = postinod(max_connections_per_ip=2000, max_connections_per_net=2000)
    socks = []
    try:
        for _ in range(1000):
            s = socket.create_connection((srv.host, srv.port), timeout=30)
            socks.append(s)
        for s in socks:
            s.sendall(b"CAPA\r\n")
        ok = 0
        for s in socks:
            f = b""
            for _ in range(100):
                d = s.recv(4096)
                if not d:
                    break
                f += d
                if f.endswith(b"\r\n.\r\n"):
                    break
            ok += f.startswith(b"+OK") and f.endswith(b"\r\n.\r\n")
        assert ok == 1000
        print("1000 sessions: login workers RSS %s KiB" % [
            rss_kib(p) for p in srv.pids("login")])
    finally:
        for s in socks:
            s.close()
    assert srv.running()
    assert stat(srv) == 3


# -- LMTP ----------------------------------------------------------------
from test_lmtp import lmtpd, raw, stored, users  # noqa: E402,F401

LMTP_LINE_MAX = 2048    # lmtp_cmds.h, CRLF included
MSG = b"Subject: split\r\n\r\nfirst\r\n..dotted\r\nlast\r\n"


def send_octets(r, data, pause=0.0):
    r.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    for i in range(len(data)):
        r.sock.sendall(data[i:i + 1])
        if pause:
            time.sleep(pause)


def test_lmtp_line_at_and_over_the_limit(lmtpd):
    srv = lmtpd()
    for split in (False, True):
        r = raw(srv)
        assert r.reply()[0] == 220
        ok = b"NOOP " + b"n" * (LMTP_LINE_MAX - 7) + b"\r\n"
        assert len(ok) == LMTP_LINE_MAX
        if split:
            send_octets(r, ok)
        else:
            r.send(ok)
        assert r.reply()[0] == 250
        r.send(b"NOOP " + b"n" * (LMTP_LINE_MAX - 6) + b"\r\n")
        assert r.reply()[0] == 500
        assert r.closed_within(10)
        r.close()


def test_lmtp_data_and_its_dot_split_into_single_octets(lmtpd, users):
    srv = lmtpd()
    r = raw(srv)
    r.start()
    assert r.code(b"DATA") == 354
    # ".\r" then a pause: not the end until its LF, and "\r\n." + "x" is
    # a dotted line, not the end.
    send_octets(r, MSG + b".x\r\n")
    send_octets(r, b".\r", pause=0.05)
    time.sleep(0.5)
    r.sock.settimeout(0.5)
    with pytest.raises(socket.timeout):
        r.sock.recv(1)
    r.sock.settimeout(10)
    r.send(b"\n")
    assert r.reply()[0] == 250
    assert r.code(b"QUIT") == 221
    (body,) = stored(users, "alice").values()
    assert body.endswith(b"first\n.dotted\nlast\nx\n")


def test_lmtp_bdat_split_into_single_octets(lmtpd, users):
    srv = lmtpd()
    r = raw(srv)
    r.start()
    send_octets(r, b"BDAT %d LAST\r\n" % len(MSG) + MSG)
    assert r.reply()[0] == 250
    (body,) = stored(users, "alice").values()
    assert body.endswith(b"first\n..dotted\nlast\n")


def test_lmtp_pipelined_flood_never_read_stays_bounded(lmtpd):
    srv = lmtpd()
    r = raw(srv)
    assert r.reply()[0] == 220
    assert r.code(b"LHLO x") == 250
    pid = srv.pids("lmtp")[0]
    base = rss_kib(pid)
    r.sock.settimeout(0.5)
    flood = b"NOOP\r\n" * 10000
    sent = 0
    deadline = time.monotonic() + 20
    while sent < len(flood) and time.monotonic() < deadline:
        try:
            sent += r.sock.send(flood[sent:sent + 65536])
        except socket.timeout:
            break
    peak = rss_kib(pid)
    r.sock.settimeout(10)
    for _ in range(10000):
        assert r.reply()[0] == 250
    print("lmtp flood: RSS %d -> %d KiB" % (base, peak))
    assert peak - base < 8 * 1024
    assert r.code(b"QUIT") == 221


SASL_B64_MAX = 10240    # sasl.h SASL_RESPONSE_B64_MAX (7680 octets)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("split", [False, True])
def test_sasl_response_at_and_over_the_limit(srv, certs, mode, split):
    import base64
    at = base64.b64encode(b"\0" + USER.encode() + b"\0" +
                          b"w" * (7680 - 2 - len(USER)))
    assert len(at) == SASL_B64_MAX
    for resp, too_long in ((at, False), (at + b"A", True)):
        r = connect_mode(srv, certs, mode)
        assert r.cmd(b"AUTH PLAIN").startswith(b"+")
        if split:
            send_octets(r, resp[:1500] + b"\r\n"[:0])
            r.send(resp[1500:] + b"\r\n")
        else:
            r.send(resp + b"\r\n")
        ln = r.line()
        if too_long:
            assert ln == b"-ERR Line too long.", ln
            assert r.closed_within(10)
        else:
            # Taken whole and judged (a password that long is refused).
            assert ln.startswith(b"-ERR") and b"too long" not in ln, ln
            assert r.cmd(b"USER x").startswith(b"+OK")
        r.close()


@pytest.mark.parametrize("mode", ["stls", "implicit"])
def test_close_notify_mid_line_ends_cleanly(srv, certs, mode):
    for logged_in in (False, True):
        sock = socket.create_connection(
            (srv.host, srv.port_tls if mode == "implicit" else srv.port),
            timeout=10)
        if mode == "stls":
            r = conftest.Raw.__new__(conftest.Raw)
            r.sock, r.buf, r.eof = sock, b"", False
            r.expect(b"+OK")
            assert r.cmd(b"STLS").startswith(b"+OK")
        t = BioTls(sock, client_ctx(certs))
        if mode == "implicit":
            assert t.line().startswith(b"+OK")
        if logged_in:
            assert t.cmd(b"USER " + USER.encode()).startswith(b"+OK")
            assert t.cmd(b"PASS " + PASS.encode()).startswith(b"+OK Logged")
        t.send_then_close(b"DELE 1\r\nQUI")
        # The server ends the session: the socket reaches EOF.
        sock.settimeout(10)
        for _ in range(100):
            if not sock.recv(65536):
                break
        sock.close()
    srv.wait_log("reason=client-closed")
    assert count_after(srv, 3, 1) == 3
    assert srv.running()


@pytest.mark.parametrize("mode", ["stls", "implicit"])
def test_client_renegotiation_is_refused_without_harm(srv, certs, mode):
    """TLS 1.2 renegotiation asked by the client (openssl s_client's R
    command), logged in and before: refused (SSL_OP_NO_RENEGOTIATION);
    the session goes on or ends, the server stays up and well."""
    import subprocess
    port = srv.port_tls if mode == "implicit" else srv.port
    argv = ["openssl", "s_client", "-connect", "127.0.0.1:%d" % port,
            "-tls1_2", "-crlf", "-CAfile", certs["ca"]]
    if mode == "stls":
        argv += ["-starttls", "pop3"]
    p = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT)
    try:
        script = b"USER %s\nPASS %s\nR\nSTAT\nR\nSTAT\nQUIT\n" % (
            USER.encode(), PASS.encode())
        for ln in script.splitlines(keepends=True):
            try:
                p.stdin.write(ln)
                p.stdin.flush()
            except BrokenPipeError:
                break           # s_client gave up: the refusal was fatal
            time.sleep(0.3)
        out, _ = p.communicate(timeout=20)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait(5)
    out = out.decode("utf-8", "replace")
    assert "RENEGOTIATING" in out, out[-2000:]
    assert srv.running()
    assert stat(srv) == 3


def test_lmtp_pipelined_transaction_then_half_close(lmtpd, users):
    """A whole transaction, QUIT and the client's FIN in one burst (RFC
    2920 pipelining; `nc -N`): the message is delivered once and the
    client still gets its replies, which it is waiting for."""
    srv = lmtpd()
    r = raw(srv)
    assert r.reply()[0] == 220
    r.send(b"LHLO x\r\nMAIL FROM:<bob@example.org>\r\nRCPT TO:<alice>\r\n"
           b"DATA\r\n" + MSG + b".\r\nQUIT\r\n")
    r.sock.shutdown(socket.SHUT_WR)
    codes = []
    for _ in range(6):
        try:
            codes.append(r.reply()[0])
        except conftest.Closed:
            break
    r.close()
    deadline = time.monotonic() + 5
    while not stored(users, "alice") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(stored(users, "alice")) == 1, (codes, srv.log()[-1500:])
    assert codes == [250, 250, 250, 354, 250, 221], codes


def test_lmtp_fin_mid_message_delivers_nothing(lmtpd, users):
    srv = lmtpd()
    r = raw(srv)
    r.start()
    r.send(b"DATA\r\n" + MSG[:20])
    r.sock.shutdown(socket.SHUT_WR)
    assert r.reply()[0] == 354
    assert r.closed_within(10)
    srv.wait_log("client gone mid-message")
    assert stored(users, "alice") == {}


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("delay", [0.0, 0.5])
def test_retr_dele_quit_then_half_close_answers_all(mailroot, postinod,
                                                    certs, mode, delay):
    """RETR of a 1 MB message, DELE, QUIT and the client's FIN in one
    burst (a script piping into `nc -N`): the reply to RETR is still being
    written when the FIN is read, and the commands behind it must run."""
    mailroot.add_user(USER, PASS)
    mailroot.deliver_maildir(USER, b"Subject: big\n\n" +
                             (b"y" * 999 + b"\n") * 1000)
    mailroot.deliver_maildir(USER, b"Subject: small\n\nsmall\n")
    srv = postinod(tls_cert=certs["cert"], tls_key=certs["key"],
                   listen_tls=["127.0.0.1:0"])
    burst = b"RETR 1\r\nDELE 1\r\nQUIT\r\n"
    r = burst_then_close(srv, certs, mode, burst)
    time.sleep(delay)           # the FIN is read while RETR is going out
    assert r.line().startswith(b"+OK")
    for _ in range(1100):
        if r.line() == b".":
            break
    try:
        tail = [r.line(), r.line()]
    except conftest.Closed:
        tail = "closed"
    r.sock.close()
    assert count_after(srv, 1, 5) == 1, "DELE and QUIT were dropped"
    assert tail[0].startswith(b"+OK") and tail[1].startswith(b"+OK"), tail
