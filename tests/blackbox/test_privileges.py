"""Privilege separation, seen from outside: which uid and root directory each
role runs with, and the same server started by an unprivileged user (where
LeakSanitizer also covers the login role, which a chroot hides from it)."""

import grp
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


DESIGN = os.path.join(conftest.REPO, "DESIGN.md")
COLUMNS = ("uid", "gid", "groups", "capabilities", "root", "seccomp")


def design_table():
    """{role: {column: cell}} from DESIGN.md's table of what the kernel
    says about each role (the one whose header has a seccomp column)."""
    with open(DESIGN) as f:
        lines = f.read().splitlines()
    for i, line in enumerate(lines):
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if cells[:1] == ["role"] and tuple(cells[1:]) == COLUMNS:
            rows = {}
            for row in lines[i + 2:]:
                if not row.startswith("|"):
                    break
                c = [x.strip() for x in row.strip().strip("|").split("|")]
                rows[c[0]] = dict(zip(COLUMNS, c[1:]))
            return rows
    raise AssertionError("DESIGN.md has no role | uid | ... | seccomp table")


def status(pid):
    out = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            k, _, v = line.partition(":")
            out[k] = v.split()
    return out


def config_value(srv, key):
    with open(srv.conf) as f:
        for line in f:
            k, _, v = line.partition("=")
            if k.strip() == key:
                return v.strip()
    raise AssertionError("%s is not in the test configuration" % key)


def expected(cell, column, srv, mailroot, caller):
    """What a DESIGN.md cell means for this server, as /proc shows it."""
    if cell == "caller":
        return caller["Uid" if column == "uid" else "Gid"][0]
    if cell == "caller's":
        return caller["Groups"] if column == "groups" else caller["CapEff"][0]
    if cell == "mail uid":
        return str(conftest.MAIL_UID)
    if cell.startswith("mail gid"):
        return str(conftest.MAIL_GID)
    if column == "uid":                     # a configuration key
        return str(pwd.getpwnam(config_value(srv, cell)).pw_uid)
    if column == "gid" and cell.endswith("'s group"):
        return str(pwd.getpwnam(config_value(srv, cell[:-8])).pw_gid)
    if column == "groups":
        return cell                         # checked against gid below
    if column == "capabilities":
        assert cell == "none", cell
        return "0000000000000000"
    if column == "root":
        return "/" if cell == "/" else config_value(srv, cell)
    if column == "seccomp":
        return {"none": "0", "strict": "1", "filter": "2"}[cell]
    raise AssertionError("cannot read DESIGN.md cell %r (%s)" % (cell, column))


def lmtp_deliver_one(srv):
    import smtplib
    (addr,) = [a[5:] for a in srv.addrs if a.startswith("lmtp ")]
    with smtplib.LMTP("127.0.0.1", int(addr.rpartition(":")[2]),
                      timeout=30) as c:
        assert c.sendmail("bob@example.org", ["alice"],
                          b"Subject: x\r\n\r\nx\r\n") == {}


@pytest.mark.skipif(not conftest.IS_ROOT, reason="needs root to drop privileges")
def test_every_role_runs_as_design_md_says(mailroot, postinod):
    """uid, gid, groups, capabilities, root directory and seccomp mode of
    every role, from /proc, against DESIGN.md's table."""
    table = design_table()
    assert set(table) >= {"master", "auth", "login", "mail"}, table
    mailroot.add_user("alice", "secret")
    mailroot.deliver_maildir("alice", b"Subject: a\n\nbody\n")
    srv = postinod(mail_privileged_group="mail", lmtp_listen="127.0.0.1:0")
    login_and_retr(srv)
    lmtp_deliver_one(srv)           # a deliver worker for its row
    caller = status(os.getpid())
    pids = {"master": [srv.proc.pid]}
    for role in table:
        if role != "master":
            pids[role] = srv.pids(role)
    pids["mail"] = pids["mail"] or [srv.mail_worker_pid()]
    for role, want in table.items():
        assert pids.get(role), "no %s process" % role
        for pid in pids[role]:
            st = status(pid)
            got = {
                "uid": st["Uid"], "gid": st["Gid"], "groups": st["Groups"],
                "capabilities": [st["CapEff"][0], st["CapPrm"][0]],
                "root": os.readlink("/proc/%d/root" % pid),
                "seccomp": st["Seccomp"][0],
            }
            for col in COLUMNS:
                exp = expected(want[col], col, srv, mailroot, caller)
                what = (role, col, want[col])
                if col == "gid" and " (saved: " in want[col]:
                    key = want[col].split(" (saved: ")[1].rstrip(")")
                    saved = str(grp.getgrnam(config_value(srv, key)).gr_gid)
                    assert got[col] == [exp, exp, saved, exp], (what,
                                                                got[col])
                elif col in ("uid", "gid"):
                    assert got[col] == [exp] * 4, (what, got[col])
                elif col == "groups" and want[col] != "caller's":
                    extra = want[col].split(" + ")[1:]
                    gids = {got["gid"][0]} | {
                        str(grp.getgrnam(config_value(srv, k)).gr_gid)
                        for k in extra}
                    assert set(got[col]) == gids, (what, got[col])
                elif col == "groups":
                    assert sorted(got[col]) == sorted(exp), (what, got[col])
                elif col == "capabilities":
                    assert got[col][0] == exp, (what, got[col])
                    if exp == "0000000000000000":
                        assert got[col][1] == exp, (what, got[col])
                else:
                    assert got[col] == exp, (what, got[col])
    assert os.listdir(mailroot.chroot) == []


@pytest.mark.skipif(not conftest.IS_ROOT, reason="needs root to drop privileges")
def test_ready_file_means_no_role_runs_as_root(mailroot, postinod):
    """The ready file is the start-up's end: the auth workers, which start
    as root to reach the passwd-file, have dropped to auth_user (and every
    login and lmtp worker to login_user) before it appears. Read at once,
    with no login first, /proc shows no role still at uid 0."""
    mailroot.add_user("alice", "secret")
    for _ in range(5):
        srv = postinod(auth_workers=2, lmtp_listen="127.0.0.1:0")
        roles = {r: srv.pids(r) for r in ("auth", "login", "lmtp")}
        for role, pids in roles.items():
            assert pids, role
            for pid in pids:
                st = status(pid)
                assert "0" not in st["Uid"] + st["Gid"], (role, st["Uid"])
                if role == "auth":
                    assert st["Seccomp"][0] == "2", role
        assert srv.stop() == 0


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
