"""Hostile and broken input on raw sockets, and the timers: bad numbers,
wrong states, long lines, NUL, bare LF, the bad-command limit, idle
timeouts, slow readers and clients that stop reading."""

import socket
import time

import pytest
from conftest import greeted, login_retry

USER, PASS = "alice", "secret"
MSG = b"Subject: one\n\nbody\n"
MSG_SIZE = len(MSG) + 3  # three LFs become CRLF


@pytest.fixture
def srv(mailroot, postinod):
    mailroot.add_user(USER, PASS)
    mailroot.deliver_maildir(USER, MSG)
    return postinod()


def logged_in(srv):
    r = greeted(srv)
    assert r.login(USER, PASS).startswith(b"+OK Logged in")
    return r


def test_unknown_command(srv):
    r = greeted(srv)
    for c in (b"XYZZY", b"HELO", b"AB", b"ABCDEFGHIJ", b"STLS", b"AUTHX PLAIN",
              b"US\xc3\x89R alice", b"RETR 1"):
        assert r.cmd(c).startswith(b"-ERR"), c
    assert r.cmd(b"QUIT").startswith(b"+OK")


def test_commands_are_case_insensitive(srv):
    r = greeted(srv)
    assert r.cmd(b"user alice") == b"+OK"
    assert r.cmd(b"pAsS secret").startswith(b"+OK Logged in")
    assert r.cmd(b"stat") == b"+OK 1 %d" % MSG_SIZE
    assert r.cmd(b"List 1") == b"+OK 1 %d" % MSG_SIZE
    assert r.cmd(b"quit").startswith(b"+OK")


def test_missing_and_extra_arguments(srv):
    r = greeted(srv)
    for c in (b"USER", b"USER a b", b"APOP", b"APOP a", b"CAPA x",
              b"QUIT now"):
        assert r.cmd(c).startswith(b"-ERR"), c
    assert r.cmd(b"USER alice") == b"+OK"
    assert r.cmd(b"PASS").startswith(b"-ERR")
    # The failed PASS used the USER up; a fresh pair works.
    assert r.login(USER, PASS).startswith(b"+OK Logged in")
    for c in (b"RETR", b"RETR 1 2", b"DELE", b"DELE 1 1", b"TOP", b"TOP 1",
              b"TOP 1 2 3", b"LIST 1 1", b"UIDL 1 1", b"STAT 1", b"NOOP 1",
              b"RSET 1", b"QUIT 1"):
        assert r.cmd(c).startswith(b"-ERR"), c
        # keep the bad-command counter low
        assert r.cmd(b"NOOP") == b"+OK"
    assert r.cmd(b"STAT") == b"+OK 1 %d" % MSG_SIZE


BAD_NUMBERS = [b"0", b"00", b"-1", b"+1", b"1x", b"x1", b"1.0", b"0x1",
               b"2", b"4294967295", b"4294967296", b"4294967297",
               b"18446744073709551616", b"18446744073709551617",
               b"99999999999999999999999999999999", b"\xef\xbc\x91"]


@pytest.mark.parametrize("cmd", [b"LIST", b"UIDL", b"RETR", b"DELE", b"TOP"])
def test_bad_message_numbers(srv, cmd):
    r = logged_in(srv)
    for n in BAD_NUMBERS:
        line = cmd + b" " + n + (b" 0" if cmd == b"TOP" else b"")
        reply = r.cmd(line)
        assert reply.startswith(b"-ERR"), (line, reply)
        assert r.cmd(b"NOOP") == b"+OK"
    # Whitespace other than the space separator is no part of a number.
    assert r.cmd(cmd + b" \t1" + (b" 0" if cmd == b"TOP" else b"")).startswith(b"-ERR")
    # Nothing above touched message 1 (4294967297 must not wrap to 1).
    assert r.cmd(b"STAT") == b"+OK 1 %d" % MSG_SIZE
    assert r.cmd(b"LIST 1") == b"+OK 1 %d" % MSG_SIZE
    # Runs of spaces are tolerated by design (pop3.h); they still mean 1.
    reply = r.cmd(b"LIST  1")
    assert reply == b"+OK 1 %d" % MSG_SIZE or reply.startswith(b"-ERR")
    assert r.cmd(b"QUIT") == b"+OK Bye, 0 deleted, 1 left."


def test_leading_zeros_mean_the_same_number(srv):
    r = logged_in(srv)
    assert r.cmd(b"LIST 01") == b"+OK 1 %d" % MSG_SIZE
    assert r.cmd(b"LIST 0000000000000000000001") == b"+OK 1 %d" % MSG_SIZE
    r.cmd(b"QUIT")


def test_transaction_commands_before_login(srv):
    r = greeted(srv)
    for c in (b"STAT", b"LIST", b"LIST 1", b"UIDL", b"UIDL 1", b"RETR 1",
              b"TOP 1 0", b"DELE 1", b"RSET", b"NOOP"):
        reply = r.cmd(c)
        assert reply.startswith(b"-ERR"), (c, reply)
    # Half-logged-in is still not logged in.
    assert r.cmd(b"USER alice") == b"+OK"
    assert r.cmd(b"RETR 1").startswith(b"-ERR")
    assert r.cmd(b"STAT").startswith(b"-ERR")
    assert r.cmd(b"QUIT").startswith(b"+OK")
    assert r.closed_within(5)


def test_authorization_commands_after_login(srv):
    r = logged_in(srv)
    for c in (b"USER alice", b"PASS secret", b"APOP alice " + b"0" * 32):
        assert r.cmd(c).startswith(b"-ERR"), c
    assert r.cmd(b"STAT") == b"+OK 1 %d" % MSG_SIZE
    r.cmd(b"QUIT")


def test_pass_without_user(srv):
    r = greeted(srv)
    assert r.cmd(b"PASS secret").startswith(b"-ERR")
    assert r.cmd(b"STAT").startswith(b"-ERR")
    # USER, then PASS twice: the second has no USER any more.
    assert r.cmd(b"USER alice") == b"+OK"
    assert r.cmd(b"PASS wrong") == b"-ERR [AUTH] Authentication failed."
    assert r.cmd(b"PASS secret").startswith(b"-ERR")
    assert r.login(USER, PASS).startswith(b"+OK Logged in")
    r.cmd(b"QUIT")


def test_overlong_command_line_is_refused(srv):
    r = greeted(srv)
    r.send(b"USER " + b"a" * 600 + b"\r\n")
    assert r.line() == b"-ERR Line too long."
    assert r.closed_within(seconds=2)


def test_overlong_line_in_transaction(srv):
    r = logged_in(srv)
    r.send(b"NOOP " + b"1" * 600 + b"\r\n")
    assert r.line() == b"-ERR Line too long."
    assert r.closed_within(seconds=2)


def test_overlong_line_without_newline_is_refused(srv):
    r = greeted(srv)
    r.send(b"X" * 600)
    assert r.line() == b"-ERR Line too long."
    assert r.closed_within(seconds=2)


def test_overlong_line_sent_slowly(srv):
    r = greeted(srv)
    for _ in range(6):
        r.send(b"A" * 100)
        time.sleep(0.02)
    r.send(b"\r\n")
    assert r.line() == b"-ERR Line too long."
    assert r.closed_within(seconds=2)


def test_line_of_exactly_512_octets_is_accepted(srv):
    r = logged_in(srv)
    line = b"NOOP" + b" " * 506 + b"\r\n"
    assert len(line) == 512
    r.send(line)
    assert r.line() == b"+OK"
    r.send(b"NOOP" + b" " * 507 + b"\r\n")
    assert r.line() == b"-ERR Line too long."
    assert r.closed_within(seconds=2)


def test_nul_byte_is_refused_and_session_continues(srv):
    r = greeted(srv)
    assert r.cmd(b"US\x00ER alice").startswith(b"-ERR")
    assert r.cmd(b"USER al\x00ice").startswith(b"-ERR")
    assert r.cmd(b"\x00").startswith(b"-ERR")
    assert r.cmd(b"USER alice") == b"+OK"
    assert r.cmd(b"PASS secret\x00junk").startswith(b"-ERR")
    assert r.login(USER, PASS).startswith(b"+OK Logged in")
    assert r.cmd(b"RETR\x001").startswith(b"-ERR")
    assert r.cmd(b"STAT") == b"+OK 1 %d" % MSG_SIZE
    r.cmd(b"QUIT")


def test_other_control_characters(srv):
    r = logged_in(srv)
    for c in (b"STAT\x7f", b"NOOP\x01", b"LIST\x0b1", b"NO\rOP"):
        assert r.cmd(c).startswith(b"-ERR"), c
        assert r.cmd(b"NOOP") == b"+OK"
    r.cmd(b"QUIT")


def test_bare_lf_end_to_end(srv):
    r = srv.raw()
    r.expect(b"+OK")
    r.send(b"USER alice\n")
    assert r.line() == b"+OK"
    r.send(b"PASS secret\n")
    assert r.line().startswith(b"+OK Logged in, 1 messages")
    r.send(b"STAT\n")
    assert r.line() == b"+OK 1 %d" % MSG_SIZE
    r.send(b"RETR 1\n")
    assert r.line() == b"+OK %d octets" % MSG_SIZE
    # The server still answers in CRLF.
    assert r.raw_until_dot() == b"Subject: one\r\n\r\nbody\r\n.\r\n"
    r.send(b"DELE 1\nQUIT\n")
    r.expect(b"+OK")
    assert r.line() == b"+OK Bye, 1 deleted, 0 left."
    assert r.closed_within(5)


def test_empty_line(srv):
    r = greeted(srv)
    assert r.cmd(b"").startswith(b"-ERR")
    assert r.cmd(b"   ").startswith(b"-ERR")
    r.send(b"\n")
    assert r.line().startswith(b"-ERR")
    assert r.cmd(b"USER alice") == b"+OK"
    r.cmd(b"QUIT")


def test_bad_command_limit_in_authorization(srv):
    r = greeted(srv)
    for i in range(19):
        assert r.cmd(b"BOGUS %d" % i).startswith(b"-ERR")
    # 19 do not close; a good command resets the count.
    r.send(b"CAPA\r\n")
    r.expect(b"+OK")
    r.lines_until_dot()
    for i in range(19):
        assert r.cmd(b"BOGUS %d" % i).startswith(b"-ERR")
    assert r.cmd(b"USER alice") == b"+OK"
    for i in range(19):
        assert r.cmd(b"BOGUS %d" % i).startswith(b"-ERR"), i
    assert r.cmd(b"BOGUS 20").startswith(b"-ERR")
    assert r.closed_within(5)
    assert "reason=bad-commands" in srv.wait_log("reason=bad-commands")


def test_bad_command_limit_in_transaction(srv):
    r = logged_in(srv)
    for i in range(19):
        assert r.cmd(b"RETR 99").startswith(b"-ERR")
    assert r.cmd(b"NOOP") == b"+OK"
    for i in range(19):
        assert r.cmd(b"LIST 0").startswith(b"-ERR")
    assert r.cmd(b"STAT").startswith(b"+OK")
    # 20 in one go, pipelined: answered, then closed without UPDATE.
    r.send(b"DELE 1\r\n" + b"DELE 5\r\n" * 20 + b"QUIT\r\n")
    assert r.line().startswith(b"+OK")
    for _ in range(20):
        assert r.line().startswith(b"-ERR")
    assert r.closed_within(5)
    r2 = login_retry(srv, USER, PASS)
    assert r2.cmd(b"STAT") == b"+OK 1 %d" % MSG_SIZE
    r2.cmd(b"QUIT")




# -- timers -----------------------------------------------------------------

def test_idle_timeout_in_authorization(mailroot, postinod):
    mailroot.add_user(USER, PASS)
    srv = postinod(idle_timeout=2)
    r = greeted(srv)
    t0 = time.monotonic()
    r.sock.settimeout(6)
    assert r.line() == b"-ERR Disconnected for inactivity."
    assert r.closed_within(2)
    assert 1.5 <= time.monotonic() - t0 <= 4.5


def test_idle_timeout_in_transaction(mailroot, postinod):
    mailroot.add_user(USER, PASS)
    srv = postinod(idle_timeout=2)
    r = logged_in(srv)
    # Activity keeps it alive.
    for _ in range(3):
        time.sleep(1)
        assert r.cmd(b"NOOP") == b"+OK"
    t0 = time.monotonic()
    r.sock.settimeout(6)
    assert r.line() == b"-ERR Disconnected for inactivity."
    assert r.closed_within(2)
    assert 1.5 <= time.monotonic() - t0 <= 4.5


def test_login_timeout(mailroot, postinod):
    mailroot.add_user(USER, PASS)
    srv = postinod(login_timeout=2)
    r = greeted(srv)
    r.sock.settimeout(6)
    t0 = time.monotonic()
    # Busy but never logging in.
    lines = []
    while time.monotonic() - t0 < 5:
        r.send(b"CAPA\r\n")
        try:
            ln = r.line()
        except EOFError:
            break
        lines.append(ln)
        if ln.startswith(b"-ERR Disconnected"):
            break
        r.lines_until_dot()
        time.sleep(0.2)
    assert lines[-1].startswith(b"-ERR Disconnected"), lines[-3:]
    assert r.closed_within(2)
    assert time.monotonic() - t0 < 4.5


def test_slow_reader_is_not_disconnected(mailroot, postinod):
    mailroot.add_user(USER, PASS)
    line = b"x" * 78 + b"\n"
    data = b"Subject: big\n\n" + line * (5 * 1024 * 1024 // len(line))
    mailroot.deliver_maildir(USER, data)
    srv = postinod(idle_timeout=2)
    r = srv.raw(rcvbuf=4096)
    r.expect(b"+OK")
    assert r.login(USER, PASS).startswith(b"+OK")
    size = len(data) + data.count(b"\n")
    r.send(b"RETR 1\r\n")
    assert r.line() == b"+OK %d octets" % size
    want = size + 3
    got = len(r.buf)
    r.buf = b""
    # About 1.2 MB/s: more than 4 s in all, never a pause near 2 s.
    rate = 1.2e6
    t0 = time.monotonic()
    tail = b""
    while got < want:
        ahead = got / rate - (time.monotonic() - t0)
        if ahead > 0:
            time.sleep(min(ahead, 0.05))
        d = r.sock.recv(min(8192, want - got))
        assert d, "closed after %d of %d octets" % (got, want)
        got += len(d)
        tail = (tail + d)[-256:]
        assert time.monotonic() - t0 < 30
    assert time.monotonic() - t0 > 3
    assert tail.endswith(b"\r\n" + line.rstrip(b"\n") + b"\r\n.\r\n")
    assert r.cmd(b"NOOP") == b"+OK"
    r.cmd(b"QUIT")


def _rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for l in f:
            if l.startswith("VmRSS:"):
                return int(l.split()[1])
    raise AssertionError("no VmRSS")


def test_stalled_reader_does_not_grow_server_memory(mailroot, postinod):
    mailroot.add_user(USER, PASS)
    line = b"y" * 98 + b"\n"
    data = b"Subject: huge\n\n" + line * (50 * 1024 * 1024 // len(line))
    mailroot.deliver_maildir(USER, data)
    srv = postinod(mail_workers=1)
    r = srv.raw(rcvbuf=4096)
    r.expect(b"+OK")
    assert r.login(USER, PASS).startswith(b"+OK")
    pid = srv.mail_worker_pid()
    assert r.cmd(b"NOOP") == b"+OK"
    before = _rss_kb(pid)
    r.send(b"RETR 1\r\n")
    assert r.line().startswith(b"+OK")
    # Give the server every chance to read the message into memory.
    peak = before
    for _ in range(20):
        time.sleep(0.1)
        peak = max(peak, _rss_kb(pid))
    assert peak - before < 20 * 1024, (before, peak)
    # Dropping such a client ends the session and frees the mailbox.
    r.close()
    r = login_retry(srv, USER, PASS)
    assert r.cmd(b"STAT").startswith(b"+OK 1 ")
    r.cmd(b"QUIT")


def test_client_reset_mid_retr(mailroot, postinod):
    """A client that vanishes during a long RETR costs nothing."""
    mailroot.add_user(USER, PASS)
    data = b"Subject: big\n\n" + b"z" * 2000000 + b"\n"
    mailroot.deliver_maildir(USER, data)
    srv = postinod()
    for _ in range(5):
        r = srv.raw()
        r.expect(b"+OK")
        r.login(USER, PASS)
        r.send(b"RETR 1\r\n")
        r.recv_exact(1000)
        r.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                          b"\x01\x00\x00\x00\x00\x00\x00\x00")
        r.close()
    r = login_retry(srv, USER, PASS)
    assert r.cmd(b"STAT").startswith(b"+OK 1 ")
    r.cmd(b"QUIT")
