"""Authentication (USER/PASS, APOP), its log lines and transcript, and the
per-mailbox session lock (RFC 2449 [IN-USE])."""

import re
import time

import pytest

from conftest import Raw, apop_digest, greeted, login_retry

USER, PASS = "alice", "secret"
FAIL = b"-ERR [AUTH] Authentication failed."
LOG_RE = (r'session=[0-9a-f]{16} event=login result=%s user="%s" '
          r'method=%s ip=127\.0\.0\.1')


@pytest.fixture
def srv(mailroot, postinod):
    mailroot.add_user(USER, PASS)
    mailroot.deliver_maildir(USER, b"Subject: x\n\ny\n")
    return postinod()


def greeted_from(srv, source):
    r = Raw(srv.host, srv.port, source=source)
    r.expect(b"+OK")
    return r


def timed_pass(r, user, password):
    assert r.cmd(b"USER " + user) == b"+OK"
    t0 = time.monotonic()
    reply = r.cmd(b"PASS " + password)
    return reply, time.monotonic() - t0


def test_wrong_password_and_unknown_user_look_the_same(mailroot, postinod):
    mailroot.add_user(USER, PASS)
    srv = postinod(auth_fail_delay_ms=300)
    r = greeted(srv)
    wrong, t_wrong = timed_pass(r, b"alice", b"wrong")
    unknown, t_unknown = timed_pass(r, b"nosuchuser", b"secret")
    empty, t_empty = timed_pass(r, b"alice", b"")
    assert wrong == unknown == FAIL
    assert empty.startswith(b"-ERR")
    assert t_wrong >= 0.25 and t_unknown >= 0.25, (t_wrong, t_unknown)
    # And the session goes on.
    assert r.login(USER, PASS).startswith(b"+OK Logged in")
    r.cmd(b"QUIT")


def test_failed_login_delay_is_per_connection(mailroot, postinod):
    """A pending delay must not stall clients of other networks on the
    same worker (its own network waits: the penalty is per network)."""
    mailroot.add_user(USER, PASS)
    srv = postinod(auth_fail_delay_ms=1500, login_workers=1)
    slow = greeted(srv)
    assert slow.cmd(b"USER alice") == b"+OK"
    slow.send(b"PASS wrong\r\n")
    time.sleep(0.1)
    t0 = time.monotonic()
    fast = greeted_from(srv, "127.0.1.1")
    assert fast.login(USER, PASS).startswith(b"+OK Logged in")
    assert time.monotonic() - t0 < 1.0
    assert slow.line() == FAIL
    fast.cmd(b"QUIT")


def test_login_log_lines(srv):
    r = greeted(srv)
    assert timed_pass(r, b"alice", b"bad")[0] == FAIL
    assert timed_pass(r, b"mallory", b"bad")[0] == FAIL
    assert r.login(USER, PASS).startswith(b"+OK")
    r.cmd(b"QUIT")
    log = srv.wait_log("event=logout")
    assert re.search(LOG_RE % ("fail", "alice", "USER"), log), log
    assert re.search(LOG_RE % ("fail", "mallory", "USER"), log), log
    assert re.search(LOG_RE % ("ok", "alice", "USER"), log), log
    assert re.search(r"session=[0-9a-f]{16} event=connect ip=127\.0\.0\.1", log)
    assert re.search(r'event=mailbox-open result=ok user="alice"', log)
    assert re.search(r'event=logout user="alice" .*deleted=0', log)
    # One session id from connect to logout.
    sid = re.search(LOG_RE % ("ok", "alice", "USER"), log).group(0).split()[0]
    assert "%s event=logout" % sid in log


def test_hostile_user_name_is_sanitized_in_log(srv):
    r = greeted(srv)
    assert r.cmd(b'USER a"b\xff\\z') == b"+OK"
    assert r.cmd(b"PASS x") == FAIL
    log = srv.wait_log("result=fail")
    line = [l for l in log.splitlines() if "result=fail" in l][0]
    # The quote cannot end the field early; the raw 0xff is not logged.
    assert re.search(r'user="[^"]*" method=USER ip=127\.0\.0\.1$', line), line
    r.cmd(b"QUIT")


def test_password_with_spaces(mailroot, postinod):
    mailroot.add_user("carol", "correct horse battery")
    srv = postinod()
    r = greeted(srv)
    assert timed_pass(r, b"carol", b"correct")[0] == FAIL
    assert r.login("carol", "correct horse battery").startswith(b"+OK Logged in")
    r.cmd(b"QUIT")


def test_transcript_never_logs_the_password(mailroot, postinod):
    secret = "Pw-zq8Xk2-unlikely"
    spaced = "two words-zq8Xk2"
    mailroot.add_user(USER, secret)
    mailroot.add_user("dave", spaced)
    mailroot.deliver_maildir(USER, b"Subject: x\n\ny\n")
    srv = postinod(transcript=True)
    r = greeted(srv)
    assert timed_pass(r, b"alice", secret.encode() + b"-wrong")[0] == FAIL
    assert r.login("dave", spaced).startswith(b"+OK")
    r.cmd(b"QUIT")
    r = greeted(srv)
    assert r.login(USER, secret).startswith(b"+OK Logged in")
    assert r.cmd(b"STAT").startswith(b"+OK 1 ")
    assert r.cmd(b"QUIT").startswith(b"+OK")
    log = srv.wait_log("S: +OK Bye")
    assert "zq8Xk2" not in log
    assert re.search(r"session=[0-9a-f]{16} C: USER alice", log)
    assert re.search(r"session=[0-9a-f]{16} C: PASS \*\*\*", log)
    assert re.search(r"session=[0-9a-f]{16} S: \+OK Logged in, 1 messages", log)
    assert re.search(r"session=[0-9a-f]{16} C: STAT", log)
    assert re.search(r"session=[0-9a-f]{16} S: \+OK 1 ", log)
    assert "S: -ERR [AUTH] Authentication failed." in log


def test_transcript_logs_each_listing_line(mailroot, postinod):
    """LIST and UIDL are the same on the wire with a transcript (a line at
    a time) as without (straight into the output buffer), and each listing
    line is logged."""
    mailroot.add_user(USER, PASS)
    for i in range(3):
        mailroot.deliver_maildir(USER, b"Subject: %d\n\n" % i + b"y" * i,
                                 name="100000000%d.M1P1.test" % i)
    wire = {}
    for transcript in (False, True):
        srv = postinod(transcript=transcript)
        r = greeted(srv)
        assert r.login(USER, PASS).startswith(b"+OK Logged in")
        wire[transcript] = []
        for c in (b"LIST", b"UIDL"):
            assert r.cmd(c).startswith(b"+OK")
            wire[transcript].append(r.lines_until_dot())
        assert r.cmd(b"QUIT").startswith(b"+OK")
        log = srv.wait_log("event=logout")
        srv.stop()
    assert wire[False] == wire[True]
    sizes, uids = wire[True]
    assert [l.split()[0] for l in sizes] == [b"1", b"2", b"3"]
    assert [l.split()[1] for l in uids] == [
        b"100000000%d.M1P1.test" % i for i in range(3)]
    for line in sizes + uids:
        assert "S: " + line.decode() + "\n" in log


def test_transcript_masks_pipelined_password(mailroot, postinod):
    """PASS pipelined with what follows: the secret is still masked."""
    secret = "Pipe-zq9Yy3"
    mailroot.add_user(USER, secret)
    srv = postinod(transcript=True)
    r = greeted(srv)
    r.send(b"USER alice\r\nPASS " + secret.encode() + b"\r\nSTAT\r\nQUIT\r\n")
    assert r.line() == b"+OK"
    assert r.line().startswith(b"+OK Logged in")
    assert r.line() == b"+OK 0 0"
    assert r.line().startswith(b"+OK Bye")
    log = srv.wait_log("S: +OK Bye")
    assert "zq9Yy3" not in log


def test_transcript_off_logs_no_commands(srv):
    r = greeted(srv)
    assert r.login(USER, PASS).startswith(b"+OK")
    r.cmd(b"QUIT")
    log = srv.wait_log("event=logout")
    assert " C: " not in log and " S: " not in log


def test_apop(mailroot, postinod):
    mailroot.add_user("bob", "tanstaaftanstaaf", scheme="PLAIN")
    mailroot.add_user(USER, PASS)
    mailroot.deliver_maildir("bob", b"Subject: apop\n\nhi\n")
    srv = postinod(apop=True)
    r = srv.raw()
    greeting = r.line()
    assert re.fullmatch(rb"\+OK Postino ready <[\x21-\x7e]+@[\x21-\x7e]+>",
                        greeting), greeting
    # A non-PLAIN user with the right digest (on its own connection: a
    # connection is closed after its third failed login).
    r0 = srv.raw()
    g0 = r0.line()
    assert r0.cmd(b"APOP alice " + apop_digest(g0, PASS).encode()) == FAIL
    r0.cmd(b"QUIT")
    # Wrong digest, unknown user.
    assert r.cmd(b"APOP bob " + b"0" * 32) == FAIL
    assert r.cmd(b"APOP nobody " + apop_digest(greeting, "x").encode()) == FAIL
    assert r.cmd(b"APOP bob short").startswith(b"-ERR")
    good = apop_digest(greeting, "tanstaaftanstaaf").encode()
    assert r.cmd(b"APOP bob " + good).startswith(b"+OK Logged in, 1 messages")
    assert r.cmd(b"RETR 1").startswith(b"+OK")
    assert r.raw_until_dot() == b"Subject: apop\r\n\r\nhi\r\n.\r\n"
    r.cmd(b"QUIT")
    log = srv.wait_log("event=logout")
    assert re.search(LOG_RE % ("ok", "bob", "APOP"), log)
    assert re.search(LOG_RE % ("fail", "bob", "APOP"), log)
    # The timestamp differs per connection: an old digest is no good.
    r = srv.raw()
    g2 = r.line()
    assert g2 != greeting
    assert r.cmd(b"APOP bob " + good) == FAIL
    # USER/PASS still works for a PLAIN user.
    assert r.login("bob", "tanstaaftanstaaf").startswith(b"+OK Logged in")
    r.cmd(b"QUIT")


def test_third_failed_login_closes_the_connection(srv):
    r = greeted(srv)
    for i in range(2):
        assert r.cmd(b"USER alice") == b"+OK"
        assert r.cmd(b"PASS wrong%d" % i) == FAIL
    assert r.cmd(b"USER alice") == b"+OK"
    assert r.cmd(b"PASS wrong") == FAIL
    assert r.closed_within(2)
    log = srv.wait_log("reason=auth-failures")
    assert "failures=3" in log
    # Other connections are not affected.
    assert greeted(srv).login(USER, PASS).startswith(b"+OK Logged in")


def test_apop_disabled(srv, mailroot):
    r = srv.raw()
    greeting = r.line()
    assert greeting == b"+OK Postino ready"
    assert r.cmd(b"APOP alice " + b"0" * 32).startswith(b"-ERR")
    r.cmd(b"QUIT")


def test_poplib_apop(mailroot, postinod):
    mailroot.add_user("bob", "tanstaaf", scheme="PLAIN")
    srv = postinod(apop=True)
    p = srv.pop3()
    assert p.apop("bob", "tanstaaf").startswith(b"+OK")
    assert p.stat() == (0, 0)
    p.quit()


# -- the session lock --------------------------------------------------------

def test_second_login_gets_in_use(srv):
    first = greeted(srv)
    assert first.login(USER, PASS).startswith(b"+OK Logged in")
    second = greeted(srv)
    assert second.cmd(b"USER alice") == b"+OK"
    t0 = time.monotonic()
    reply = second.cmd(b"PASS secret")
    elapsed = time.monotonic() - t0
    assert reply.startswith(b"-ERR [IN-USE]"), reply
    assert elapsed < 0.9, elapsed
    assert second.closed_within(2)
    # The first session is unharmed.
    assert first.cmd(b"STAT").startswith(b"+OK 1 ")
    assert first.cmd(b"QUIT").startswith(b"+OK")
    assert first.closed_within(5)
    third = greeted(srv)
    assert third.login(USER, PASS).startswith(b"+OK Logged in")
    third.cmd(b"QUIT")
    assert "event=mailbox-open result=in-use" in srv.log()




def test_lock_dies_with_dropped_connection(srv):
    first = greeted(srv)
    assert first.login(USER, PASS).startswith(b"+OK Logged in")
    first.close()
    r = login_retry(srv, USER, PASS, allowed=b"-ERR [IN-USE]")
    r.cmd(b"QUIT")


def test_other_users_are_not_locked_out(mailroot, postinod):
    mailroot.add_user(USER, PASS)
    mailroot.add_user("erin", "pw2")
    srv = postinod()
    a = greeted(srv)
    assert a.login(USER, PASS).startswith(b"+OK")
    b = greeted(srv)
    assert b.login("erin", "pw2").startswith(b"+OK")
    a.cmd(b"QUIT")
    b.cmd(b"QUIT")


def test_failure_penalty_grows_per_address_and_resets_on_success(mailroot,
                                                                   postinod):
    mailroot.add_user(USER, PASS)
    srv = postinod(auth_fail_delay_ms=150)
    took = []
    for i in range(3):
        # A new connection each time: the penalty follows the address.
        r = greeted(srv)
        assert r.cmd(b"USER alice") == b"+OK"
        t0 = time.monotonic()
        assert r.cmd(b"PASS wrong") == FAIL
        took.append(time.monotonic() - t0)
        r.cmd(b"QUIT")
    assert took[0] >= 0.14 and took[1] >= 0.29 and took[2] >= 0.59, took
    assert took[2] < 2.0, took
    assert greeted(srv).login(USER, PASS).startswith(b"+OK Logged in")
    r = greeted(srv)
    assert r.cmd(b"USER alice") == b"+OK"
    t0 = time.monotonic()
    assert r.cmd(b"PASS wrong") == FAIL
    assert time.monotonic() - t0 < 0.29      # back to the base delay
