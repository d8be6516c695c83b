"""One event=disconnect line for every session however it ends (issue 14):
in the login role before a login, in the mail role after it (the login
role logs nothing for a session it handed over)."""
import re
import socket
import time

USER, PASS = "alice", "secret"


def disconnects(srv, role):
    return re.findall(r"postinod/%s\[\d+\]: session=(\w+) event=disconnect "
                      r"reason=(\S+) ip=\S+ commands=(\d+) in=(\d+) "
                      r"out=(\d+) secs=(\d+)$" % role, srv.log(), re.M)


def wait_disconnect(srv, role, reason, timeout=10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = [d for d in disconnects(srv, role) if d[1] == reason]
        if found:
            return found
        time.sleep(0.02)
    raise AssertionError("no %s disconnect reason=%s:\n%s"
                         % (role, reason, srv.log()[-3000:]))


def session_of(srv, user=USER):
    m = re.findall(r"session=(\w+) event=mailbox-open result=ok user=\"%s\""
                   % user, srv.log())
    assert m
    return m[-1]


def logged_in(srv):
    r = srv.raw()
    r.expect(b"+OK")
    assert r.login(USER, PASS).startswith(b"+OK")
    srv.wait_log("event=mailbox-open result=ok")
    return r


def test_quit_before_and_after_login(mailroot, postinod):
    mailroot.add_user(USER, PASS)
    srv = postinod()
    r = srv.raw()
    r.expect(b"+OK")
    r.cmd(b"CAPA")
    r.lines_until_dot()
    assert r.cmd(b"QUIT").startswith(b"+OK")
    d = wait_disconnect(srv, "login", "quit")[0]
    assert d[2] == "2" and int(d[3]) == len(b"CAPA\r\nQUIT\r\n")
    assert int(d[4]) > 0

    r = logged_in(srv)
    sid = session_of(srv)
    assert r.cmd(b"STAT").startswith(b"+OK")
    assert r.cmd(b"QUIT").startswith(b"+OK")
    d = wait_disconnect(srv, "mail", "quit")[0]
    assert d[0] == sid and d[2] == "2"
    # The login role handed it over and says nothing about its end.
    assert sid not in [x[0] for x in disconnects(srv, "login")]


def test_client_closes_without_quit(mailroot, postinod):
    mailroot.add_user(USER, PASS)
    srv = postinod()
    r = srv.raw()
    r.expect(b"+OK")
    r.close()
    wait_disconnect(srv, "login", "client-closed")
    r = logged_in(srv)
    sid = session_of(srv)
    r.close()
    d = wait_disconnect(srv, "mail", "client-closed")[0]
    assert d[0] == sid


def test_timeouts(mailroot, postinod):
    mailroot.add_user(USER, PASS)
    srv = postinod(idle_timeout=1, login_timeout=1)
    early = srv.raw()
    early.expect(b"+OK")
    r = logged_in(srv)
    wait_disconnect(srv, "login", "timeout")
    wait_disconnect(srv, "mail", "timeout")
    assert early.closed_within(5) and r.closed_within(5)


def test_bad_commands(mailroot, postinod):
    srv = postinod(max_bad_commands=2)
    r = srv.raw()
    r.expect(b"+OK")
    r.send(b"FOO\r\nBAR\r\n")
    assert r.closed_within(5)
    d = wait_disconnect(srv, "login", "bad-commands")[0]
    assert d[2] == "2"


def test_shutdown(mailroot, postinod):
    mailroot.add_user(USER, PASS)
    srv = postinod()
    waiting = srv.raw()
    waiting.expect(b"+OK")
    r = logged_in(srv)
    sid = session_of(srv)
    assert srv.stop() == 0
    log = srv.log()
    assert re.search(r"postinod/mail\[\d+\]: session=%s event=disconnect "
                     r"reason=shutdown " % sid, log), log[-3000:]
    assert re.search(r"postinod/login\[\d+\]: session=\w+ event=disconnect "
                     r"reason=shutdown ", log), log[-3000:]
    waiting.close()
    r.close()


def test_connection_reset_is_logged(mailroot, postinod):
    mailroot.add_user(USER, PASS)
    srv = postinod()
    r = logged_in(srv)
    sid = session_of(srv)
    # RST instead of FIN: the read fails (an error, or the peer's close).
    r.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                      b"\x01\x00\x00\x00\x00\x00\x00\x00")
    r.close()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        ends = [d for d in disconnects(srv, "mail") if d[0] == sid]
        if ends:
            assert ends[0][1] in ("error", "client-closed")
            return
        time.sleep(0.02)
    raise AssertionError(srv.log()[-3000:])
