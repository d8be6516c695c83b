"""The mbox backend: From_ splitting, >From unescaping (mboxo and mboxrd),
sizes, UIDLs, the rewrite on UPDATE, mail appended during a session, the
session lock and the MTA's dotlock."""

import os
import time

import pytest
from conftest import crlf, login_retry

USER, PASS = "alice", "secret"


def block(n, body, extra_headers=b""):
    """One mbox message: From_ line, content, the separating empty line."""
    content = (b"From: sender%d@example.org\nSubject: message %d\n" % (n, n) +
               extra_headers + b"\n" + body)
    return (b"From sender%d@example.org Mon Jan  1 00:00:%02d 2024\n" % (n, n % 60)
            + content + b"\n"), content




@pytest.fixture
def mbox_srv(mailroot, postinod):
    mailroot.add_user(USER, PASS)

    def start(**kw):
        return postinod(mailbox=mailroot.mbox_spec, **kw)
    return start




def test_from_unescaping_mboxrd(mailroot, mbox_srv):
    body = (b"plain line\n>From the escaped line\n>>From twice escaped\n"
            b">>>From thrice\nFrom: a header-like body line\n> From not escaped\n"
            b">Fromage\n")
    b1, c1 = block(1, body)
    b2, c2 = block(2, b"second\n")
    mailroot.write_mbox(USER, b1 + b2)
    srv = mbox_srv(mboxrd=True)
    p = srv.login(USER, PASS)
    assert p.stat()[0] == 2
    _, lines, octets = p.retr(1)
    want = crlf(c1.replace(b"\n>From the", b"\nFrom the")
                .replace(b"\n>>From twice", b"\n>From twice")
                .replace(b"\n>>>From thrice", b"\n>>From thrice"))
    assert b"".join(l + b"\r\n" for l in lines) == want
    assert octets == len(want)
    assert int(p.list(1).split()[2]) == octets
    _, lines, octets = p.retr(2)
    assert b"".join(l + b"\r\n" for l in lines) == crlf(c2)
    assert int(p.list(2).split()[2]) == octets
    p.quit()


def test_from_unescaping_mboxo(mailroot, mbox_srv):
    body = b">From the escaped line\n>>From not unescaped in mboxo\n"
    b1, c1 = block(1, body)
    mailroot.write_mbox(USER, b1)
    srv = mbox_srv(mboxrd=False)
    p = srv.login(USER, PASS)
    _, lines, octets = p.retr(1)
    want = crlf(c1.replace(b"\n>From the", b"\nFrom the"))
    assert b"".join(l + b"\r\n" for l in lines) == want
    assert int(p.list(1).split()[2]) == octets == len(want)
    p.quit()


def test_sizes_and_wire_bytes(mailroot, mbox_srv):
    msgs = [block(1, b".dot first\n..two dots\n.\nend\n"),
            block(2, b"crlf body\r\nsecond\r\n", b"X-Crlf: yes\r\n"),
            block(3, b""),
            block(4, b"\n\nblank lines around\n\n")]
    mailroot.write_mbox(USER, b"".join(b for b, _ in msgs))
    srv = mbox_srv()
    r = srv.raw()
    r.expect(b"+OK")
    assert r.login(USER, PASS).startswith(b"+OK Logged in, 4 messages")
    r.send(b"LIST\r\n")
    r.expect(b"+OK")
    sizes = [int(l.split()[1]) for l in r.lines_until_dot()]
    for i, (_, content) in enumerate(msgs, 1):
        r.send(b"RETR %d\r\n" % i)
        assert r.line() == b"+OK %d octets" % len(crlf(content))
        wire = b"".join((b"." + l if l.startswith(b".") else l) + b"\r\n"
                        for l in crlf(content).split(b"\r\n")[:-1]) + b".\r\n"
        assert r.raw_until_dot() == wire, i
        assert sizes[i - 1] == len(crlf(content)), i
    r.send(b"TOP 1 0\r\n")
    r.expect(b"+OK")
    assert r.raw_until_dot() == (b"From: sender1@example.org\r\n"
                                 b"Subject: message 1\r\n\r\n.\r\n")
    r.cmd(b"QUIT")


def test_missing_and_empty_mbox(mailroot, mbox_srv):
    srv = mbox_srv()
    p = srv.login(USER, PASS)
    assert p.stat() == (0, 0)
    p.quit()
    mailroot.write_mbox(USER, b"")
    p = srv.login(USER, PASS)
    assert p.stat() == (0, 0)
    p.quit()


def uidls(p):
    return [e.split()[1] for e in p.uidl()[1]]


def test_uidl_stable_and_x_uidl(mailroot, mbox_srv):
    msgs = [block(1, b"a\n"), block(2, b"b\n", b"X-UIDL: my-own-uidl-2\n"),
            block(3, b"c\n", b"Status: RO\n"), block(4, b"d\n")]
    mailroot.write_mbox(USER, b"".join(b for b, _ in msgs))
    srv = mbox_srv()
    p = srv.login(USER, PASS)
    first = uidls(p)
    p.quit()
    assert len(first) == 4 and len(set(first)) == 4
    assert first[1] == b"my-own-uidl-2"
    for u in first:
        assert 1 <= len(u) <= 70 and all(0x21 <= c <= 0x7e for c in u)
    p = srv.login(USER, PASS)
    assert uidls(p) == first
    p.dele(1)
    p.quit()
    p = srv.login(USER, PASS)
    assert uidls(p) == first[1:]
    p.quit()
    # An MUA rewriting Status: does not change the UIDL (store_mbox.c).
    data = mailroot.read_mbox(USER).replace(b"Status: RO\n", b"Status: O\n")
    mailroot.write_mbox(USER, data)
    p = srv.login(USER, PASS)
    assert uidls(p) == first[1:]
    p.quit()


def test_dele_quit_rewrites_keeping_others_and_appended_mail(mailroot, mbox_srv):
    prefix = b"junk before the first From_ line\n\n"
    msgs = [block(i, b"body %d\n>From x\n" % i) for i in range(1, 6)]
    mailroot.write_mbox(USER, prefix + b"".join(b for b, _ in msgs))
    srv = mbox_srv()
    p = srv.login(USER, PASS)
    assert p.stat()[0] == 5
    late, _ = block(6, b"arrived during the session\n")
    mailroot.append_mbox(USER, late)
    assert p.stat()[0] == 5
    p.dele(2)
    p.dele(5)
    assert p.quit().startswith(b"+OK")
    assert mailroot.read_mbox(USER) == (prefix + msgs[0][0] + msgs[2][0] +
                                        msgs[3][0] + late)
    p = srv.login(USER, PASS)
    assert p.stat()[0] == 4
    assert p.retr(4)[1][-1] == b"arrived during the session"
    p.quit()


def test_rset_and_drop_keep_the_file(mailroot, mbox_srv):
    msgs = [block(i, b"body %d\n" % i) for i in range(1, 4)]
    original = b"".join(b for b, _ in msgs)
    mailroot.write_mbox(USER, original)
    srv = mbox_srv()
    p = srv.login(USER, PASS)
    p.dele(1)
    p.rset()
    p.quit()
    assert mailroot.read_mbox(USER) == original
    r = srv.raw()
    r.expect(b"+OK")
    r.login(USER, PASS)
    assert r.cmd(b"DELE 2").startswith(b"+OK")
    r.close()
    r = login_retry(srv, USER, PASS)
    assert r.cmd(b"STAT").startswith(b"+OK 3 ")
    r.cmd(b"QUIT")
    assert mailroot.read_mbox(USER) == original


def test_delete_everything(mailroot, mbox_srv):
    msgs = [block(i, b"body %d\n" % i) for i in range(1, 4)]
    mailroot.write_mbox(USER, b"".join(b for b, _ in msgs))
    srv = mbox_srv()
    p = srv.login(USER, PASS)
    for i in (1, 2, 3):
        p.dele(i)
    p.quit()
    # Debian keeps an empty spool file; removing it is as good.
    assert (not os.path.exists(mailroot.mbox(USER)) or
            mailroot.read_mbox(USER) == b"")
    p = srv.login(USER, PASS)
    assert p.stat() == (0, 0)
    p.quit()


def test_mbox_second_login_in_use(mailroot, mbox_srv):
    mailroot.write_mbox(USER, block(1, b"x\n")[0])
    srv = mbox_srv()
    first = srv.raw()
    first.expect(b"+OK")
    assert first.login(USER, PASS).startswith(b"+OK Logged in")
    second = srv.raw()
    second.expect(b"+OK")
    t0 = time.monotonic()
    reply = second.login(USER, PASS)
    assert reply.startswith(b"-ERR [IN-USE]"), reply
    assert time.monotonic() - t0 < 0.9
    assert second.closed_within(2)
    assert first.cmd(b"QUIT").startswith(b"+OK")
    r = login_retry(srv, USER, PASS)
    r.cmd(b"QUIT")
    first = srv.raw()
    first.expect(b"+OK")
    first.login(USER, PASS)
    first.close()
    r = login_retry(srv, USER, PASS)
    r.cmd(b"QUIT")


def test_mta_dotlock_is_respected(mailroot, mbox_srv):
    original = block(1, b"x\n")[0] + block(2, b"y\n")[0]
    mailroot.write_mbox(USER, original)
    srv = mbox_srv(mbox_lock_wait=1)
    lock = mailroot.mbox(USER) + ".lock"
    with open(lock, "w"):
        pass
    try:
        r = srv.raw()
        r.expect(b"+OK")
        t0 = time.monotonic()
        reply = r.login(USER, PASS)
        assert reply.startswith(b"-ERR"), reply
        assert 0.8 <= time.monotonic() - t0 < 5
    finally:
        os.unlink(lock)
    p = srv.login(USER, PASS)
    assert p.stat()[0] == 2
    p.dele(1)
    p.quit()
    assert mailroot.read_mbox(USER) == block(2, b"y\n")[0]
    assert not os.path.exists(lock)


def test_stale_dotlock_is_removed(mailroot, mbox_srv):
    mailroot.write_mbox(USER, block(1, b"x\n")[0])
    srv = mbox_srv(mbox_lock_wait=2, mbox_dotlock_stale=10)
    lock = mailroot.mbox(USER) + ".lock"
    with open(lock, "w"):
        pass
    old = time.time() - 3600
    os.utime(lock, (old, old))
    p = srv.login(USER, PASS)
    assert p.stat()[0] == 1
    p.quit()


def mailbox_fds(pid, mailroot):
    """The mail files (spools, Maildirs, lock files) pid holds open."""
    roots = (mailroot.mail_dir + "/", os.path.join(mailroot.path, "home/"))
    out = []
    for fd in os.listdir("/proc/%d/fd" % pid):
        try:
            target = os.readlink("/proc/%d/fd/%s" % (pid, fd))
        except OSError:
            continue            # closed while we looked
        if target.startswith(roots):
            out.append(target)
    return sorted(out)


@pytest.mark.parametrize("backend", ["mbox", "maildir"])
def test_idle_session_holds_only_its_session_lock(mailroot, mbox_srv,
                                                  postinod, backend):
    """Between commands a session holds its socket and its session lock,
    nothing of the mailbox: with the spool held too (3 fds a session), a
    mail worker's fds ran out at a third fewer idle sessions (issue 11)."""
    b1, c1 = block(1, b"one\n")
    b2, _ = block(2, b"two\n")
    if backend == "mbox":
        mailroot.write_mbox(USER, b1 + b2)
        srv = mbox_srv()
    else:
        mailroot.deliver_maildir(USER, c1)
        mailroot.deliver_maildir(USER, b"Subject: two\n\ntwo\n")
        srv = postinod()
    p = srv.login(USER, PASS)
    assert p.stat()[0] == 2
    _, lines, _ = p.retr(1)
    assert b"".join(l + b"\r\n" for l in lines) == crlf(c1)
    pid = srv.mail_worker_pid()
    held = mailbox_fds(pid, mailroot)
    assert len(held) == 1 and "lock" in os.path.basename(held[0]), held
    p.dele(1)
    p.quit()
    assert mailbox_fds(pid, mailroot) == []
    p = srv.login(USER, PASS)
    assert p.stat()[0] == 1
    p.quit()
