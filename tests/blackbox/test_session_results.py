"""Results of commands that finish later (a verdict, a SASL step) are
counted by the session's dispatcher like any other (issue 9): the bad-
command limit and the disconnect reason are the same whichever way a bad
command arrives, and the transcript masks what the command table marks
secret, or every argument of a keyword it does not know."""
import base64

from test_disconnect_log import wait_disconnect

USER, PASS = "alice", "secret"
TOO_MANY = b"-ERR Too many bad commands."


def test_bad_base64_in_sasl_reaches_the_limit_at_once(mailroot, postinod):
    mailroot.add_user(USER, PASS)
    srv = postinod(max_bad_commands=2)
    r = srv.raw()
    r.expect(b"+OK")
    assert r.cmd(b"FOO").startswith(b"-ERR")
    assert r.cmd(b"AUTH PLAIN") == b"+ "
    assert r.cmd(b"!!!not-base64") == b"-ERR Invalid base64 data."
    # The second bad command: closed now, as after any other.
    assert r.line() == TOO_MANY
    assert r.closed_within(5)
    wait_disconnect(srv, "login", "bad-commands")


def test_bad_sasl_response_reaches_the_limit_at_once(mailroot, postinod):
    mailroot.add_user(USER, PASS)
    srv = postinod(max_bad_commands=2)
    r = srv.raw()
    r.expect(b"+OK")
    assert r.cmd(b"FOO").startswith(b"-ERR")
    # PLAIN without the NUL separators: the auth role calls it bad.
    bad = base64.b64encode(b"no separators here")
    assert r.cmd(b"AUTH PLAIN " + bad) == b"-ERR Invalid SASL response."
    assert r.line() == TOO_MANY
    assert r.closed_within(5)
    wait_disconnect(srv, "login", "bad-commands")


def test_failed_login_at_the_limit_logs_bad_commands(mailroot, postinod):
    mailroot.add_user(USER, PASS)
    # USER succeeds and resets the count: one failure is the limit.
    srv = postinod(max_bad_commands=1, auth_fail_delay_ms=0)
    r = srv.raw()
    r.expect(b"+OK")
    assert r.cmd(b"USER " + USER.encode()).startswith(b"+OK")
    assert r.cmd(b"PASS wrong").startswith(b"-ERR [AUTH]")
    assert r.line() == TOO_MANY
    assert r.closed_within(5)
    wait_disconnect(srv, "login", "bad-commands")


def test_transcript_masks_arguments_of_unknown_commands(mailroot, postinod):
    mailroot.add_user(USER, PASS)
    srv = postinod(transcript=True)
    r = srv.raw()
    r.expect(b"+OK")
    # A mistyped PASS, and PASS where the state has none: never logged.
    assert r.cmd(b"PASSWORD Zq7-typo-pw").startswith(b"-ERR")
    assert r.login(USER, PASS).startswith(b"+OK Logged in")
    assert r.cmd(b"PASS Zq7-late-pw").startswith(b"-ERR")
    assert r.cmd(b"STAT").startswith(b"+OK")
    r.cmd(b"QUIT")
    log = srv.wait_log("S: +OK Bye")
    assert "Zq7" not in log
    assert "C: PASSWORD ***" in log
    assert "C: STAT" in log
