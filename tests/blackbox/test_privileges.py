"""Privilege separation, seen from outside: which uid and root directory each
role runs with, and the same server started by an unprivileged user (where
LeakSanitizer also covers the login role, which a chroot hides from it)."""

import os
import pwd
import shutil

import pytest

import conftest

NOBODY = pwd.getpwnam("nobody")


def status_ids(pid, field):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(field + ":"):
                return [int(x) for x in line.split()[1:]]
    raise AssertionError("no %s in /proc/%d/status" % (field, pid))


def login_and_retr(srv):
    p = srv.login("alice", "secret")
    assert p.stat() == (1, len(b"Subject: a\r\n\r\nbody\r\n"))
    assert p.retr(1)[1] == [b"Subject: a", b"", b"body"]
    p.quit()


@pytest.mark.skipif(not conftest.IS_ROOT, reason="needs root to drop privileges")
def test_roles_run_with_least_privilege(mailroot, postinod):
    mailroot.add_user("alice", "secret")
    mailroot.deliver_maildir("alice", b"Subject: a\n\nbody\n")
    srv = postinod(auth_workers=2)
    login_and_retr(srv)
    logins = srv.pids("login")
    assert logins
    for pid in logins:
        # Network input is parsed by the login user, in the empty chroot.
        assert status_ids(pid, "Uid") == [conftest.LOGIN_PW.pw_uid] * 4
        assert status_ids(pid, "Gid") == [conftest.LOGIN_PW.pw_gid] * 4
        assert os.readlink("/proc/%d/root" % pid) == mailroot.chroot
        assert os.listdir(mailroot.chroot) == []
    mail = srv.mail_worker_pid()
    assert status_ids(mail, "Uid") == [NOBODY.pw_uid] * 4
    assert os.readlink("/proc/%d/root" % mail) == "/"
    # The master never parses network input: its only TCP sockets listen.
    r = srv.raw()
    r.expect(b"+OK")
    states = tcp_socket_states()
    for pid in [srv.proc.pid] + srv.pids("auth"):
        for inode in socket_inodes(pid):
            assert states.get(inode, "0A") == "0A", (pid, inode)
    r.close()
    assert len(srv.pids("auth")) == 2      # auth_workers


def socket_inodes(pid):
    out = []
    for fd in os.listdir("/proc/%d/fd" % pid):
        target = os.readlink("/proc/%d/fd/%s" % (pid, fd))
        if target.startswith("socket:["):
            out.append(target[8:-1])
    return out


def tcp_socket_states():
    states = {}
    for name in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(name) as f:
                next(f)
                for line in f:
                    cols = line.split()
                    states[cols[9]] = cols[3]
        except OSError:
            pass
    return states


@pytest.mark.skipif(not conftest.IS_ROOT, reason="run as root to start as nobody")
@pytest.mark.skipif(shutil.which("setpriv") is None, reason="no setpriv")
def test_unprivileged_start_runs_every_role_as_the_caller(mailroot, postinod,
                                                          monkeypatch):
    mailroot.add_user("alice", "secret")
    mailroot.deliver_maildir("alice", b"Subject: a\n\nbody\n")
    # Without root the server ignores login_user/mail_user/login_chroot.
    srv = postinod(start=False, mail_user=None, login_user=None,
                   login_chroot=None)
    os.chown(srv.dir, NOBODY.pw_uid, NOBODY.pw_gid)
    wrapper = os.path.join(srv.dir, "as-nobody")
    with open(wrapper, "w") as f:
        f.write("#!/bin/sh\nexec setpriv --reuid=nobody --regid=nogroup "
                "--clear-groups %s \"$@\"\n" % conftest.POSTINOD)
    os.chmod(wrapper, 0o755)
    monkeypatch.setattr(conftest, "POSTINOD", wrapper)
    srv.start()
    login_and_retr(srv)
    assert "mode=unprivileged" in srv.log()
    for role in ("auth", "login", "mail"):
        pids = srv.pids(role)
        assert pids, role
        for pid in pids:
            assert status_ids(pid, "Uid")[0] == NOBODY.pw_uid, role
            assert os.readlink("/proc/%d/root" % pid) == "/", role
    # Teardown stops it with SIGTERM and fails on any sanitizer report,
    # leaks of the login role included.
