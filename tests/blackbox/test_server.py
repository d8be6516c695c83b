"""The daemon as a whole: listeners (IPv4, IPv6, several), -t config
checks, SIGTERM, and the master restarting dead login and auth processes."""

import os
import re
import signal
import subprocess
import time

import pytest

from conftest import HAVE_IPV6, POSTINOD

USER, PASS = "alice", "secret"


def run_t(conf_path):
    return subprocess.run([POSTINOD, "-t", "-c", conf_path],
                          capture_output=True, timeout=30, text=True)


def write(mailroot, name, text):
    p = os.path.join(mailroot.path, name)
    with open(p, "w") as f:
        f.write(text)
    return p


@pytest.mark.skipif(not HAVE_IPV6, reason="no IPv6 loopback here")
def test_ipv6(mailroot, postinod):
    mailroot.add_user(USER, PASS)
    mailroot.deliver_maildir(USER, b"Subject: six\n\nv6\n")
    srv = postinod(listen=["[::1]:0"])
    assert srv.addrs == ["[::1]:%d" % srv.port6]
    r = srv.raw(ipv6=True)
    r.expect(b"+OK Postino ready")
    assert r.login(USER, PASS).startswith(b"+OK Logged in, 1 messages")
    assert r.cmd(b"QUIT").startswith(b"+OK")
    log = srv.wait_log("event=logout")
    assert re.search(r'event=login result=ok user="alice" method=USER ip=::1', log)


def test_default_listeners_v4_and_v6(mailroot, postinod):
    mailroot.add_user(USER, PASS)
    srv = postinod()
    assert srv.port
    r = srv.raw()
    r.expect(b"+OK")
    r.cmd(b"QUIT")
    if HAVE_IPV6:
        assert srv.port6
        r = srv.raw(ipv6=True)
        r.expect(b"+OK")
        r.cmd(b"QUIT")


def test_several_listen_lines(mailroot, postinod):
    mailroot.add_user(USER, PASS)
    srv = postinod(listen=["127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"])
    assert len(srv.addrs) == 3
    ports = {int(a.rsplit(":", 1)[1]) for a in srv.addrs}
    assert len(ports) == 3
    for port in ports:
        import poplib
        p = poplib.POP3("127.0.0.1", port, timeout=10)
        assert p.getwelcome() == b"+OK Postino ready"
        p.user(USER)
        assert p.pass_(PASS).startswith(b"+OK")
        p.quit()


def test_ready_file_written_atomically_and_removed(mailroot, postinod):
    srv = postinod()
    assert os.path.exists(srv.ready)
    assert not os.path.exists(srv.ready + ".tmp")
    for a in srv.addrs:
        assert re.fullmatch(r"(127\.0\.0\.1|\[::1\]):\d+", a), a
    srv.stop()
    assert not os.path.exists(srv.ready)


def test_check_config_ok(mailroot, postinod):
    srv = postinod(start=False, idle_timeout=77, apop=True)
    r = run_t(srv.conf)
    assert r.returncode == 0, r.stderr
    assert "idle_timeout = 77" in r.stdout
    assert "apop = yes" in r.stdout
    assert "listen = 127.0.0.1:0" in r.stdout
    # -t starts nothing.
    assert not os.path.exists(srv.ready)


@pytest.mark.parametrize("line,why", [
    ("no_such_key = 1", "unknown key"),
    ("idle_timeout = 0", "idle_timeout"),
    ("idle_timeout = 86401", "idle_timeout"),
    ("idle_timeout = -5", "idle_timeout"),
    ("idle_timeout = 10s", "idle_timeout"),
    ("idle_timeout = ", "idle_timeout"),
    ("max_bad_commands = 0", "max_bad_commands"),
    ("login_workers = 99999999999999999999", "login_workers"),
    ("apop = maybe", "apop"),
    ("mailbox = imap:/x", "mailbox"),
    ("mailbox = maildir:", "mailbox"),
    ("mailbox = maildir:/srv/../x/%u", "'.' or '..' in the path"),
    ("mailbox = mbox:./%u", "'.' or '..' in the path"),
    ("listen = not-an-address", "listen"),
    ("listen = 127.0.0.1:65536", "listen"),
    ("just some words", "key = value"),
    ("greeting = " + "g" * 200, "greeting"),
])
def test_check_config_bad(mailroot, line, why):
    conf = write(mailroot, "bad.conf",
                 "# comment\nlisten = 127.0.0.1:0\n\n%s\nidle_timeout = 5\n" % line)
    r = run_t(conf)
    assert r.returncode == 1, (line, r.stdout, r.stderr)
    assert r.stderr.startswith("postinod: %s:4: " % conf), r.stderr
    assert why in r.stderr, r.stderr
    # The daemon itself refuses to start the same way.
    r = subprocess.run([POSTINOD, "-f", "-c", conf], capture_output=True,
                       timeout=30, text=True)
    assert r.returncode == 1
    assert "%s:4:" % conf in r.stderr


def test_check_config_missing_file(mailroot):
    r = run_t(os.path.join(mailroot.path, "nope.conf"))
    assert r.returncode == 1
    assert "nope.conf" in r.stderr


def test_sigterm_stops_cleanly(mailroot, postinod):
    mailroot.add_user(USER, PASS)
    mailroot.deliver_maildir(USER, b"Subject: a\n\nb\n")
    srv = postinod()
    idle = srv.raw()
    idle.expect(b"+OK")
    busy = srv.raw()
    busy.expect(b"+OK")
    assert busy.login(USER, PASS).startswith(b"+OK")
    assert busy.cmd(b"DELE 1").startswith(b"+OK")
    t0 = time.monotonic()
    assert srv.stop() == 0
    assert time.monotonic() - t0 < 10
    # Everyone is told and disconnected; no UPDATE without QUIT.
    assert idle.closed_within(2)
    assert busy.closed_within(2)
    assert len(mailroot.maildir_files(USER)) == 1
    assert not any(srv.pids(r) for r in ("auth", "login", "mail"))


def test_sigterm_with_nothing_going_on(mailroot, postinod):
    srv = postinod()
    srv.proc.send_signal(signal.SIGTERM)
    assert srv.proc.wait(10) == 0
    assert not any(srv.pids(r) for r in ("auth", "login", "mail"))


def wait_for(pred, seconds, what):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(0.05)
    raise AssertionError("timed out waiting for " + what)


def test_killed_login_worker_is_restarted(mailroot, postinod):
    mailroot.add_user(USER, PASS)
    srv = postinod(login_workers=1)
    old = wait_for(lambda: srv.pids("login"), 5, "a login worker")
    assert len(old) == 1
    os.kill(old[0], signal.SIGKILL)
    new = wait_for(lambda: [p for p in srv.pids("login") if p not in old],
                   10, "a new login worker")
    assert len(new) == 1
    # Connections work again (they queue in the listen backlog meanwhile).
    r = srv.raw()
    r.expect(b"+OK Postino ready")
    assert r.login(USER, PASS).startswith(b"+OK Logged in")
    r.cmd(b"QUIT")
    assert srv.running()


def test_auth_serves_every_channel_after_one_in_the_middle_goes(
        mailroot, postinod):
    """The auth role keeps its channels in a dense list: the one that goes
    (the first login worker's) is replaced by the last, and every channel,
    the moved one and the new worker's, still gets its verdicts."""
    mailroot.add_user(USER, PASS)
    srv = postinod(login_workers=3)
    old = wait_for(lambda: len(srv.pids("login")) == 3 and
                   sorted(srv.pids("login")), 5, "three login workers")
    os.kill(old[0], signal.SIGKILL)
    wait_for(lambda: len(set(srv.pids("login")) - set(old)) == 1, 10,
             "a new login worker")
    for _ in range(12):     # the kernel spreads them over the workers
        r = srv.raw()
        r.expect(b"+OK")
        assert r.login(USER, PASS).startswith(b"+OK Logged in")
        r.cmd(b"QUIT")
    assert srv.running()


def test_connection_during_login_worker_restart(mailroot, postinod):
    mailroot.add_user(USER, PASS)
    srv = postinod(login_workers=1)
    old = wait_for(lambda: srv.pids("login"), 5, "a login worker")
    os.kill(old[0], signal.SIGKILL)
    # Connect right away: the kernel queues it until the new worker accepts.
    r = srv.raw(timeout=10)
    r.expect(b"+OK")
    assert r.login(USER, PASS).startswith(b"+OK")
    r.cmd(b"QUIT")


def test_killed_auth_process_is_restarted(mailroot, postinod):
    mailroot.add_user(USER, PASS)
    srv = postinod()
    old = wait_for(lambda: srv.pids("auth"), 5, "the auth process")
    os.kill(old[0], signal.SIGKILL)
    wait_for(lambda: [p for p in srv.pids("auth") if p not in old], 10,
             "a new auth process")

    def login_ok():
        r = srv.raw()
        r.expect(b"+OK")
        reply = r.login(USER, PASS)
        r.close()
        return reply.startswith(b"+OK Logged in")
    wait_for(login_ok, 10, "a login after the auth restart")


def test_sessions_survive_login_worker_death(mailroot, postinod):
    """A logged-in session lives in the mail worker, not the login worker."""
    mailroot.add_user(USER, PASS)
    mailroot.deliver_maildir(USER, b"Subject: a\n\nb\n")
    srv = postinod(login_workers=1)
    r = srv.raw()
    r.expect(b"+OK")
    assert r.login(USER, PASS).startswith(b"+OK")
    for pid in srv.pids("login"):
        os.kill(pid, signal.SIGKILL)
    assert r.cmd(b"STAT").startswith(b"+OK 1 ")
    assert r.cmd(b"QUIT").startswith(b"+OK")


def test_unreadable_mailbox_fails_cleanly(mailroot, postinod):
    mailroot.add_user(USER, PASS)
    srv = postinod(mailbox="maildir:/nonexistent/%u/Maildir")
    r = srv.raw()
    r.expect(b"+OK")
    reply = r.login(USER, PASS)
    # Either an empty mailbox or a clear error; never a crash.
    assert reply.startswith(b"+OK Logged in, 0 messages") or \
        reply.startswith(b"-ERR [SYS/"), reply
    r.close()
    assert srv.running()
