"""Configured features end to end: mailbox path templates, LOGIN-DELAY,
many concurrent connections, mail workers retiring, syslog mode."""

import os
import resource
import socket
import subprocess
import time

import pytest

import conftest


def test_mailbox_template_expands_user_local_part_and_domain(mailroot, postinod):
    mailroot.add_user("bob@example.org", "secret")
    base = os.path.join(mailroot.path, "vmail")
    md = os.path.join(base, "example.org", "bob", "Maildir")
    for sub in ("new", "cur", "tmp"):
        os.makedirs(os.path.join(md, sub))
    with open(os.path.join(md, "new", "1.x.host"), "wb") as f:
        f.write(b"Subject: v\n\nvirtual\n")
    conftest.chown_tree(base)
    srv = postinod(mailbox="maildir:%s/%%d/%%n/Maildir" % base)
    p = srv.login("bob@example.org", "secret")
    assert p.retr(1)[1] == [b"Subject: v", b"", b"virtual"]
    p.quit()


def test_mailbox_template_refuses_path_tricks(mailroot, postinod):
    # A user name is never a path: '/' and a leading '.' are refused at login.
    srv = postinod(mailbox="maildir:%s/%%u" % mailroot.path)
    for name in (b"../etc", b"a/b", b".hidden"):
        r = srv.raw()
        r.expect(b"+OK")
        assert r.cmd(b"USER " + name) == b"+OK"
        assert r.cmd(b"PASS x").startswith(b"-ERR [AUTH]")
        r.cmd(b"QUIT")


def test_login_delay_is_advertised_and_enforced(mailroot, postinod):
    mailroot.add_user("alice", "secret")
    srv = postinod(login_delay=3)
    r = srv.raw()
    r.expect(b"+OK")
    r.send(b"CAPA\r\n")
    r.expect(b"+OK")
    assert b"LOGIN-DELAY 3" in r.lines_until_dot()
    assert r.login("alice", "secret").startswith(b"+OK Logged in")
    r.cmd(b"QUIT")
    r = srv.raw()
    r.expect(b"+OK")
    reply = r.login("alice", "secret")
    assert reply.startswith(b"-ERR [LOGIN-DELAY]"), reply
    assert r.closed_within(2)
    time.sleep(3.2)
    r = srv.raw()
    r.expect(b"+OK")
    assert r.login("alice", "secret").startswith(b"+OK Logged in")
    r.cmd(b"QUIT")


def test_no_login_delay_capability_by_default(mailroot, postinod):
    srv = postinod()
    r = srv.raw()
    r.expect(b"+OK")
    r.send(b"CAPA\r\n")
    r.expect(b"+OK")
    assert not [l for l in r.lines_until_dot() if l.startswith(b"LOGIN-DELAY")]


def test_two_thousand_concurrent_connections(mailroot, postinod):
    mailroot.add_user("alice", "secret")
    mailroot.deliver_maildir("alice", b"Subject: c\n\nconcurrent\n")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard < 4500:
        pytest.skip("open-file limit %d is too low for the test" % hard)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, 4500), hard))
    srv = postinod()
    socks = []
    try:
        for i in range(2000):
            # 100 from each of 20 networks: under the per-address and
            # per-network limits (test_limits.py tests those).
            s = socket.create_connection((srv.host, srv.port), timeout=20,
                                         source_address=("127.5.%d.1"
                                                         % (i // 100), 0))
            socks.append(s)
        for s in socks:
            assert s.recv(64).startswith(b"+OK")
        # Every idle connection still answers, and a login still works.
        for s in socks[::100]:
            s.sendall(b"CAPA\r\n")
            assert s.recv(4096).startswith(b"+OK Capability")
        p = srv.login("alice", "secret")
        assert p.stat()[0] == 1
        p.quit()
    finally:
        for s in socks:
            s.close()
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_daemon_mode_logs_to_syslog_and_stops_on_sigterm(mailroot, postinod):
    mailroot.add_user("alice", "secret")
    srv = postinod(start=False)
    # Without -f postinod detaches; find it through its ready file.
    subprocess.run([conftest.POSTINOD, "-c", srv.conf], check=True,
                   stdin=subprocess.DEVNULL, timeout=20)
    deadline = time.monotonic() + 20
    while not os.path.exists(srv.ready):
        assert time.monotonic() < deadline, "daemon never became ready"
        time.sleep(0.05)
    with open(srv.ready) as f:
        port = int(f.readline().rsplit(":", 1)[1])
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    assert s.recv(64).startswith(b"+OK")
    s.close()
    master = [int(p) for p in os.listdir("/proc") if p.isdigit()
              and _cmdline(p) == [conftest.POSTINOD, "-c", srv.conf]]
    assert len(master) == 1
    # Detached: a new session, no controlling terminal, cwd "/".
    with open("/proc/%d/stat" % master[0]) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    assert int(fields[3]) == master[0]        # session leader (setsid)
    assert os.readlink("/proc/%d/cwd" % master[0]) == "/"
    os.kill(master[0], 15)
    deadline = time.monotonic() + 20
    while os.path.exists("/proc/%d" % master[0]) and \
            _state(master[0]) != "Z":
        assert time.monotonic() < deadline, "daemon did not stop"
        time.sleep(0.05)
    assert not os.path.exists(srv.ready)


def _cmdline(pid):
    try:
        with open("/proc/%s/cmdline" % pid, "rb") as f:
            return [a.decode() for a in f.read().split(b"\0") if a]
    except OSError:
        return []


def _state(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "Z"


@pytest.mark.skipif(not conftest.IS_ROOT, reason="needs root to build the spool")
def test_debian_style_spool_needs_the_mail_group(mailroot, postinod):
    import grp
    import pwd
    mail_gid = grp.getgrnam("mail").gr_gid
    nobody = pwd.getpwnam("nobody").pw_uid
    mailroot.add_user("alice", "secret")
    spool = os.path.join(mailroot.path, "spool")
    os.mkdir(spool)
    os.chown(spool, 0, mail_gid)
    os.chmod(spool, 0o2775)
    box = os.path.join(spool, "alice")
    with open(box, "wb") as f:
        f.write(b"From a@b Mon Nov 23 10:00:00 2026\nSubject: 1\n\none\n\n"
                b"From a@b Mon Nov 23 11:00:00 2026\nSubject: 2\n\ntwo\n")
    os.chown(box, nobody, mail_gid)
    os.chmod(box, 0o660)
    spec = "mbox:%s/%%u" % spool

    # Without the group the mail user cannot lock or rewrite the spool:
    # the login fails cleanly and nothing is touched.
    srv = postinod(mailbox=spec)
    r = srv.raw()
    r.expect(b"+OK")
    assert r.login("alice", "secret").startswith(b"-ERR [SYS/TEMP]")
    srv.stop()

    srv = postinod(mailbox=spec, mail_privileged_group="mail")
    p = srv.login("alice", "secret")
    assert p.stat()[0] == 2
    p.dele(1)
    p.quit()
    with open(box, "rb") as f:
        assert f.read() == (b"From a@b Mon Nov 23 11:00:00 2026\n"
                            b"Subject: 2\n\ntwo\n")
    st = os.stat(box)
    assert (st.st_uid, st.st_gid, st.st_mode & 0o7777) == \
        (nobody, mail_gid, 0o660)
    assert not os.path.exists(box + ".lock")
