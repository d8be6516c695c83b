"""RFC 1939 behaviour against every store (the ``store`` fixture: maildir,
mbox, pgsql): every command, sizes, byte-exact RETR/TOP, UIDL, DELE/RSET/
QUIT semantics and PIPELINING (RFC 2449). What only a Maildir has (UIDL =
file name, new/ served in place) runs against Maildir alone."""

import os
import poplib
import time

import pytest
from conftest import crlf

USER, PASS = "alice", "secret"




def wire(data):
    """What RETR must put on the wire after "+OK ...\\r\\n": stuffed + dot."""
    out = b""
    for l in crlf(data).split(b"\r\n")[:-1] if data else []:
        out += (b"." + l if l.startswith(b".") else l) + b"\r\n"
    return out + b".\r\n"


# Messages with every kind of line ending the store must normalise.
SAMPLES = {
    "lf": b"From: a@example.org\nSubject: lf\n\nline one\nline two\n",
    "crlf": b"From: a@example.org\r\nSubject: crlf\r\n\r\nline one\r\nline two\r\n",
    "mixed": b"From: a@example.org\r\nSubject: mixed\n\r\nline one\nline two\r\nend\n",
    "nofinal": b"From: a@example.org\nSubject: nofinal\n\nno newline at the end",
    "emptybody": b"From: a@example.org\nSubject: empty body\n\n",
    "headersonly": b"From: a@example.org\nSubject: headers only\n",
    "dots": (b"From: a@example.org\nSubject: dots\n\n.starts with a dot\n"
             b".\nmiddle\n..x\n.\n"),
}


@pytest.fixture
def srv(mailroot, postinod, store):
    mailroot.add_user(USER, PASS)
    return postinod(**store.config)


@pytest.fixture
def maildir_srv(mailroot, postinod):
    mailroot.add_user(USER, PASS)
    return postinod()


def deliver_samples(store):
    names = []
    for key, data in SAMPLES.items():
        store.deliver(USER, data)
        names.append((key, data))
    return names


def login_raw(srv):
    r = srv.raw()
    r.expect(b"+OK")
    assert r.login(USER, PASS).startswith(b"+OK Logged in")
    return r


def test_greeting_and_login_reply(srv, store):
    store.deliver(USER, SAMPLES["lf"])
    store.deliver(USER, SAMPLES["crlf"])
    r = srv.raw()
    assert r.line() == b"+OK Postino ready"
    assert r.cmd(b"USER alice") == b"+OK"
    total = len(crlf(SAMPLES["lf"])) + len(crlf(SAMPLES["crlf"]))
    assert r.cmd(b"PASS secret") == (
        b"+OK Logged in, 2 messages (%d octets)." % total)
    assert r.cmd(b"QUIT").startswith(b"+OK")
    assert r.closed_within(5)


def test_sizes_equal_retr_octets(srv, store):
    names = deliver_samples(store)
    p = srv.login(USER, PASS)
    count, total = p.stat()
    assert count == len(names)
    resp, listing, _ = p.list()
    sizes = {}
    for entry in listing:
        n, size = entry.split()
        sizes[int(n)] = int(size)
    assert sorted(sizes) == list(range(1, len(names) + 1))
    for i, (key, data) in enumerate(names, 1):
        _, lines, octets = p.retr(i)
        assert octets == sizes[i], key
        assert octets == len(crlf(data)), key
        assert p.list(i).split() == [b"+OK", str(i).encode(),
                                     str(octets).encode()], key
        # poplib strips the stuffing; compare the content too.
        assert b"".join(l + b"\r\n" for l in lines) == crlf(data), key
    assert total == sum(sizes.values())
    p.quit()


def test_empty_file_message(srv, store):
    store.deliver(USER, b"")
    p = srv.login(USER, PASS)
    assert p.stat() == (1, 0)
    _, lines, octets = p.retr(1)
    assert (lines, octets) == ([], 0)
    p.quit()


def test_retr_wire_bytes_exact(srv, store):
    names = deliver_samples(store)
    r = login_raw(srv)
    for i, (key, data) in enumerate(names, 1):
        r.send(b"RETR %d\r\n" % i)
        assert r.line() == b"+OK %d octets" % len(crlf(data)), key
        assert r.raw_until_dot() == wire(data), key
    # The stuffing cases, spelled out.
    i = [k for k, _ in names].index("dots") + 1
    r.send(b"RETR %d\r\n" % i)
    r.line()
    body = r.raw_until_dot()
    assert b"\r\n..starts with a dot\r\n" in body
    assert b"\r\n..\r\nmiddle\r\n...x\r\n..\r\n.\r\n" in body
    r.cmd(b"QUIT")


def test_retr_message_starting_with_dot(srv, store):
    data = b".first line is a dot line\n.\nX\n"
    store.deliver(USER, data)
    r = login_raw(srv)
    r.send(b"RETR 1\r\n")
    r.expect(b"+OK")
    assert r.raw_until_dot() == b"..first line is a dot line\r\n..\r\nX\r\n.\r\n"
    r.cmd(b"QUIT")


def test_top(srv, store):
    msg = b"From: a@b\nSubject: t\n\nbody 1\nbody 2\n.body 3\n"
    store.deliver(USER, msg)
    store.deliver(USER, SAMPLES["headersonly"])
    store.deliver(USER, SAMPLES["nofinal"])
    r = login_raw(srv)
    r.send(b"TOP 1 0\r\n")
    r.expect(b"+OK")
    assert r.raw_until_dot() == b"From: a@b\r\nSubject: t\r\n\r\n.\r\n"
    r.send(b"TOP 1 1\r\n")
    r.expect(b"+OK")
    assert r.raw_until_dot() == b"From: a@b\r\nSubject: t\r\n\r\nbody 1\r\n.\r\n"
    r.send(b"TOP 1 3\r\n")
    r.expect(b"+OK")
    assert r.raw_until_dot() == wire(msg)
    r.send(b"TOP 1 1000\r\n")
    r.expect(b"+OK")
    assert r.raw_until_dot() == wire(msg)
    r.send(b"TOP 1 18446744073709551615\r\n")
    r.expect(b"+OK")
    assert r.raw_until_dot() == wire(msg)
    # No body at all: TOP n 0 is the whole message.
    r.send(b"TOP 2 0\r\n")
    r.expect(b"+OK")
    assert r.raw_until_dot() == wire(SAMPLES["headersonly"])
    r.send(b"TOP 2 5\r\n")
    r.expect(b"+OK")
    assert r.raw_until_dot() == wire(SAMPLES["headersonly"])
    # The last line without a newline still ends in CRLF.
    r.send(b"TOP 3 1\r\n")
    r.expect(b"+OK")
    assert r.raw_until_dot() == wire(SAMPLES["nofinal"])
    r.send(b"TOP 3 0\r\n")
    r.expect(b"+OK")
    assert r.raw_until_dot() == b"From: a@example.org\r\nSubject: nofinal\r\n\r\n.\r\n"
    for bad in (b"TOP 1", b"TOP 1 -1", b"TOP 1 x", b"TOP 1 1 1", b"TOP 9 0",
                b"TOP 0 0"):
        assert r.cmd(bad).startswith(b"-ERR"), bad
    assert r.cmd(b"NOOP") == b"+OK"
    r.cmd(b"QUIT")


def test_top_with_poplib(srv, store):
    store.deliver(USER, SAMPLES["crlf"])
    p = srv.login(USER, PASS)
    _, lines, _ = p.top(1, 0)
    assert lines == [b"From: a@example.org", b"Subject: crlf", b""]
    _, lines, _ = p.top(1, 1)
    assert lines == [b"From: a@example.org", b"Subject: crlf", b"", b"line one"]
    p.quit()


def test_uidl_is_basename_and_stable(maildir_srv, mailroot):
    srv = maildir_srv
    bases = [os.path.basename(mailroot.deliver_maildir(USER, data))
             for data in SAMPLES.values()]
    expect = dict(enumerate(bases, 1))
    for _ in range(2):
        p = srv.login(USER, PASS)
        _, listing, _ = p.uidl()
        got = {int(e.split()[0]): e.split()[1].decode() for e in listing}
        assert got == expect
        for i, base in expect.items():
            assert p.uidl(i).split() == [b"+OK", str(i).encode(), base.encode()]
        p.quit()
    # Also after another message is deleted: numbers move, UIDLs do not.
    p = srv.login(USER, PASS)
    p.dele(1)
    p.quit()
    p = srv.login(USER, PASS)
    _, listing, _ = p.uidl()
    got = [e.split()[1].decode() for e in listing]
    assert got == [expect[i] for i in range(2, len(bases) + 1)]
    p.quit()


def test_new_mail_is_served_in_place(maildir_srv, mailroot):
    """No rename per message at login (DESIGN.md): new/ stays as it is,
    UIDL is the base name, DELE + QUIT removes the file from new/."""
    srv = maildir_srv
    paths = [mailroot.deliver_maildir(USER, SAMPLES["lf"]) for _ in range(3)]
    md = mailroot.maildir(USER)
    p = srv.login(USER, PASS)
    assert sorted(os.listdir(os.path.join(md, "new"))) == sorted(
        os.path.basename(x) for x in paths)
    assert os.listdir(os.path.join(md, "cur")) == []
    _, listing, _ = p.uidl()
    assert [e.split()[1].decode() for e in listing] == [
        os.path.basename(x) for x in paths]
    p.dele(2)
    p.quit()
    assert sorted(os.listdir(os.path.join(md, "new"))) == sorted(
        os.path.basename(x) for x in (paths[0], paths[2]))


def test_dele_quit_removes_only_deleted(srv, store):
    datas = [b"Subject: m%d\n\nbody %d\n" % (i, i) for i in range(1, 6)]
    for d in datas:
        store.deliver(USER, d)
    p = srv.login(USER, PASS)
    assert p.dele(2).startswith(b"+OK")
    assert p.dele(4).startswith(b"+OK")
    assert p.stat() == (3, sum(len(crlf(datas[i])) for i in (0, 2, 4)))
    resp = p.quit()
    assert resp.startswith(b"+OK")
    assert store.messages(USER) == [datas[0], datas[2], datas[4]]
    assert "deleted=2" in srv.wait_log("deleted=2")


def test_dele_rset_quit_removes_nothing(srv, store):
    for i in range(3):
        store.deliver(USER, b"Subject: %d\n\nx\n" % i)
    p = srv.login(USER, PASS)
    p.dele(1)
    p.dele(3)
    assert p.stat()[0] == 1
    assert p.rset().startswith(b"+OK")
    assert p.stat()[0] == 3
    _, lines, _ = p.retr(1)
    assert lines[0] == b"Subject: 0"
    p.quit()
    assert len(store.messages(USER)) == 3


def test_dele_then_drop_removes_nothing(srv, store):
    for i in range(3):
        store.deliver(USER, b"Subject: %d\n\nx\n" % i)
    r = login_raw(srv)
    assert r.cmd(b"DELE 1").startswith(b"+OK")
    assert r.cmd(b"DELE 2").startswith(b"+OK")
    r.close()
    # The lock goes with the session: once a new login works, the old
    # session is over, and nothing may have been removed.
    deadline = time.monotonic() + 5
    while True:
        r2 = srv.raw()
        r2.expect(b"+OK")
        reply = r2.login(USER, PASS)
        if reply.startswith(b"+OK") or time.monotonic() > deadline:
            break
        r2.close()
        time.sleep(0.05)
    assert reply.startswith(b"+OK Logged in, 3 messages"), reply
    r2.cmd(b"QUIT")
    assert len(store.messages(USER)) == 3


def test_mail_delivered_during_session(srv, store):
    store.deliver(USER, b"Subject: old\n\nold\n")
    p = srv.login(USER, PASS)
    assert p.stat()[0] == 1
    late = b"Subject: late\n\nlate\n"
    store.deliver(USER, late)
    assert p.stat()[0] == 1
    assert len(p.list()[1]) == 1
    with pytest.raises(poplib.error_proto):
        p.retr(2)
    p.dele(1)
    p.quit()
    assert store.messages(USER) == [late]
    p = srv.login(USER, PASS)
    assert p.stat()[0] == 1
    assert p.retr(1)[1] == [b"Subject: late", b"", b"late"]
    p.quit()


def test_deleted_message_is_gone_for_every_command(srv, store):
    for i in range(3):
        store.deliver(USER, b"Subject: %d\n\nbody\n" % i)
    r = login_raw(srv)
    size = len(crlf(b"Subject: 1\n\nbody\n"))
    assert r.cmd(b"STAT") == b"+OK 3 %d" % (3 * size)
    assert r.cmd(b"DELE 2").startswith(b"+OK")
    for c in (b"RETR 2", b"LIST 2", b"UIDL 2", b"DELE 2", b"TOP 2 0"):
        assert r.cmd(c).startswith(b"-ERR"), c
    assert r.cmd(b"STAT") == b"+OK 2 %d" % (2 * size)
    r.send(b"LIST\r\n")
    r.expect(b"+OK")
    assert r.lines_until_dot() == [b"1 %d" % size, b"3 %d" % size]
    r.send(b"UIDL\r\n")
    r.expect(b"+OK")
    assert [l.split()[0] for l in r.lines_until_dot()] == [b"1", b"3"]
    assert r.cmd(b"LIST 3") == b"+OK 3 %d" % size
    r.cmd(b"QUIT")


def test_noop_rset_quit_replies(srv, store):
    store.deliver(USER, b"Subject: 1\n\nbody\n")
    r = login_raw(srv)
    assert r.cmd(b"NOOP") == b"+OK"
    assert r.cmd(b"noop") == b"+OK"
    assert r.cmd(b"RSET").startswith(b"+OK")
    for c in (b"NOOP x", b"RSET x", b"STAT x", b"QUIT x", b"RETR",
              b"DELE", b"LIST 1 2", b"UIDL 1 2"):
        assert r.cmd(c).startswith(b"-ERR"), c
    assert r.cmd(b"QUIT") == b"+OK Bye, 0 deleted, 1 left."
    assert r.closed_within(5)


def test_quit_in_authorization(srv):
    r = srv.raw()
    r.expect(b"+OK")
    assert r.cmd(b"QUIT").startswith(b"+OK")
    assert r.closed_within(5)


def test_empty_mailbox(srv):
    p = srv.login(USER, PASS)
    assert p.stat() == (0, 0)
    assert p.list()[1] == []
    assert p.uidl()[1] == []
    with pytest.raises(poplib.error_proto):
        p.retr(1)
    p.quit()


def test_capa_before_and_after_login(srv):
    r = srv.raw()
    r.expect(b"+OK")
    r.send(b"CAPA\r\n")
    r.expect(b"+OK")
    before = r.lines_until_dot()
    for cap in (b"TOP", b"UIDL", b"RESP-CODES", b"AUTH-RESP-CODE",
                b"PIPELINING", b"EXPIRE NEVER", b"USER",
                b"IMPLEMENTATION Postino"):
        assert cap in before, cap
    assert not any(c.startswith(b"LOGIN-DELAY") for c in before)
    assert r.login(USER, PASS).startswith(b"+OK")
    r.send(b"CAPA\r\n")
    r.expect(b"+OK")
    after = r.lines_until_dot()
    # RFC 2449 sec. 5: what AUTHORIZATION offered is announced in both
    # states (USER and SASL used to disappear after login).
    assert after == before
    r.cmd(b"QUIT")


def test_capa_login_delay(mailroot, postinod):
    mailroot.add_user(USER, PASS)
    srv = postinod(login_delay=900)
    p = srv.pop3()
    caps = p.capa()
    assert caps.get("LOGIN-DELAY") == ["900"]
    p.quit()


def test_pipelining_across_login(srv, store):
    msgs = [b"Subject: one\n\nfirst\n", b"Subject: two\n\n.dot\n"]
    for m in msgs:
        store.deliver(USER, m)
    r = srv.raw()
    r.expect(b"+OK")
    r.send(b"USER alice\r\nPASS secret\r\nSTAT\r\nLIST\r\nUIDL\r\nRETR 1\r\n"
           b"RETR 2\r\nTOP 2 0\r\nDELE 1\r\nQUIT\r\n")
    s1, s2 = len(crlf(msgs[0])), len(crlf(msgs[1]))
    assert r.line() == b"+OK"
    assert r.line().startswith(b"+OK Logged in, 2 messages")
    assert r.line() == b"+OK 2 %d" % (s1 + s2)
    r.expect(b"+OK")
    assert r.lines_until_dot() == [b"1 %d" % s1, b"2 %d" % s2]
    r.expect(b"+OK")
    uidls = [ln.split() for ln in r.lines_until_dot()]
    assert [u[0] for u in uidls] == [b"1", b"2"] and uidls[0] != uidls[1]
    assert r.line() == b"+OK %d octets" % s1
    assert r.raw_until_dot() == wire(msgs[0])
    assert r.line() == b"+OK %d octets" % s2
    assert r.raw_until_dot() == wire(msgs[1])
    r.expect(b"+OK")
    assert r.raw_until_dot() == b"Subject: two\r\n\r\n.\r\n"
    r.expect(b"+OK")
    assert r.line() == b"+OK Bye, 1 deleted, 1 left."
    assert r.closed_within(5)
    assert store.messages(USER) == [msgs[1]]


def test_pipelining_many_noops_one_send(srv, store):
    """More pipelined input than the server reads at once (4096 octets)."""
    store.deliver(USER, b"Subject: x\n\ny\n")
    r = login_raw(srv)
    n = 2000
    r.send(b"NOOP\r\n" * n + b"QUIT\r\n")
    for i in range(n):
        assert r.line() == b"+OK", i
    assert r.line().startswith(b"+OK Bye")
    assert r.closed_within(5)


def test_pipelined_retr_burst(srv, store):
    data = b"Subject: x\n\nsmall\n"
    store.deliver(USER, data)
    r = login_raw(srv)
    r.sock.settimeout(5)
    n = 100
    r.send(b"RETR 1\r\n" * n + b"QUIT\r\n")
    for i in range(n):
        assert r.line() == b"+OK %d octets" % len(crlf(data)), i
        assert r.raw_until_dot() == wire(data), i
    assert r.line().startswith(b"+OK Bye")


def test_pipelining_many_commands_one_send(srv, store):
    """Large replies and more input than one read: every reply, in order."""
    data = b"Subject: x\n\n" + b"y" * 100000 + b"\n"
    store.deliver(USER, data)
    r = login_raw(srv)
    r.sock.settimeout(5)
    n = 300
    r.send(b"".join(b"LIST 1\r\nRETR 1\r\nNOOP\r\n" for _ in range(n)) +
           b"QUIT\r\n")
    size = len(crlf(data))
    for _ in range(n):
        assert r.line() == b"+OK 1 %d" % size
        assert r.line() == b"+OK %d octets" % size
        assert len(r.raw_until_dot()) == size + 3
        assert r.line() == b"+OK"
    assert r.line().startswith(b"+OK Bye")
    assert r.closed_within(5)


def test_pipelined_wrong_password_then_retry(srv, store):
    store.deliver(USER, b"Subject: a\n\nb\n")
    r = srv.raw()
    r.expect(b"+OK")
    r.send(b"USER alice\r\nPASS wrong\r\nUSER alice\r\nPASS secret\r\nSTAT\r\n"
           b"QUIT\r\n")
    assert r.line() == b"+OK"
    assert r.line() == b"-ERR [AUTH] Authentication failed."
    assert r.line() == b"+OK"
    assert r.line().startswith(b"+OK Logged in, 1 messages")
    assert r.line().startswith(b"+OK 1 ")
    assert r.line().startswith(b"+OK Bye")


def test_large_message_retr(srv, store):
    body = b"".join(b"line %07d %s\n" % (i, b"." * (i % 7)) for i in range(200000))
    body += b".\n..\n"
    data = b"Subject: big\n\n" + body
    store.deliver(USER, data)
    p = srv.login(USER, PASS)
    p.sock.settimeout(5)
    assert p.list(1).split()[2] == str(len(crlf(data))).encode()
    _, lines, octets = p.retr(1)
    assert octets == len(crlf(data))
    assert b"".join(l + b"\r\n" for l in lines) == crlf(data)
    p.quit()


def test_retr_that_finds_a_cached_size_wrong_drops_the_cache(maildir_srv,
                                                             mailroot):
    """The size RETR counts while encoding checks the one LIST gave from
    the size cache (DESIGN.md): a lie is still sent as the +OK size, the
    octets are the file's, and the cache and index go so the next session
    sizes from the files."""
    srv = maildir_srv
    data = SAMPLES["dots"]
    name = os.path.basename(mailroot.deliver_maildir(USER, data))
    md = mailroot.maildir(USER)
    p = srv.login(USER, PASS)
    p.quit()
    cache = os.path.join(md, "postino-sizes")
    with open(cache) as f:
        assert "%s %d\n" % (name, len(crlf(data))) in f.read()
    index = os.path.join(md, "postino-index")
    if os.path.exists(index):
        os.unlink(index)
    with open(cache, "w") as f:       # keeps the owner and the mode
        f.write("%s 99\n" % name)
    r = login_raw(srv)
    assert r.cmd(b"LIST 1") == b"+OK 1 99"
    r.send(b"RETR 1\r\n")
    assert r.line() == b"+OK 99 octets"
    assert r.raw_until_dot() == wire(data)
    deadline = time.monotonic() + 10
    while os.path.exists(cache) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not os.path.exists(cache)
    assert r.cmd(b"QUIT").startswith(b"+OK")
    p = srv.login(USER, PASS)
    assert p.list(1).split()[2] == str(len(crlf(data))).encode()
    p.quit()
