"""LMTP delivery (RFC 2033): smtplib.LMTP as the independent peer, raw
sockets for hostile input, POP3 (poplib) to read back what was stored.

Every socket has a timeout and every loop a bound; loopback only."""

import os
import random
import re
import signal
import smtplib
import socket
import stat
import subprocess
import threading
import time

import pytest

from conftest import IS_ROOT, LOGIN_USER, POSTINOD, Raw

MSG = (b"From: Bob <bob@example.org>\r\n"
       b"To: alice@example.org\r\n"
       b"Subject: hello\r\n"
       b"\r\n"
       b"first line\r\n"
       b".a line that starts with a dot\r\n"
       b"last line\r\n")


def lf(data):
    return data.replace(b"\r\n", b"\n")


def lmtp_addr(srv):
    for a in srv.addrs:
        if a.startswith("lmtp "):
            return a[5:]
    raise AssertionError("no lmtp line in the ready file: %r" % srv.addrs)


def lmtp_port(srv):
    return int(lmtp_addr(srv).rpartition(":")[2])


class Lmtp(Raw):
    """A raw LMTP client: reply() reads one (multi-line) reply."""

    def reply(self):
        lines = []
        for _ in range(100000):
            ln = self.line()
            assert len(ln) >= 3 and ln[:3].isdigit(), "bad reply %r" % ln
            lines.append(ln)
            if ln[3:4] != b"-":
                return int(ln[:3]), lines
        raise AssertionError("reply never ended")

    def code(self, line):
        self.send(line + b"\r\n")
        return self.reply()[0]

    def start(self, sender=b"<bob@example.org>", rcpts=(b"<alice>",)):
        assert self.reply()[0] == 220
        assert self.code(b"LHLO client.example.org") == 250
        assert self.code(b"MAIL FROM:" + sender) == 250
        for r in rcpts:
            assert self.code(b"RCPT TO:" + r) == 250


@pytest.fixture
def users(mailroot):
    for u in ("alice", "bob"):
        mailroot.add_user(u, "secret")
    return mailroot


@pytest.fixture
def lmtpd(users, postinod):
    """factory(**config) -> a server with an LMTP listener on loopback."""
    def factory(**config):
        config.setdefault("lmtp_listen", "127.0.0.1:0")
        return postinod(**config)
    return factory


def raw(srv, timeout=10):
    return Lmtp("127.0.0.1", lmtp_port(srv), timeout)


def client(srv, timeout=10):
    c = smtplib.LMTP("127.0.0.1", lmtp_port(srv), timeout=timeout)
    return c


def stored(mailroot, user):
    """{base name: bytes} of every message in new/ and cur/."""
    return {k: v[1] for k, v in mailroot.maildir_files(user).items()}


def only_message(mailroot, user):
    files = stored(mailroot, user)
    assert len(files) == 1, files
    return next(iter(files.items()))


# -- the happy path ---------------------------------------------------------

def test_lhlo_lists_every_extension(lmtpd):
    srv = lmtpd(lmtp_max_message_size=123456)
    r = raw(srv)
    assert r.reply()[0] == 220
    r.send(b"LHLO client.example.org\r\n")
    code, lines = r.reply()
    assert code == 250
    ext = {ln[4:].decode() for ln in lines[1:]}
    assert ext == {"PIPELINING", "ENHANCEDSTATUSCODES", "8BITMIME",
                   "SIZE 123456", "CHUNKING", "SMTPUTF8"}
    assert r.code(b"QUIT") == 221
    assert r.closed_within(5)


def test_delivery_stores_exact_bytes_and_pop3_sizes_match(lmtpd, users):
    srv = lmtpd()
    c = client(srv)
    assert c.sendmail("bob@example.org", ["alice"], MSG) == {}
    c.quit()
    name, data = only_message(users, "alice")
    want = (b"Return-Path: <bob@example.org>\n"
            b"Delivered-To: alice\n") + lf(MSG)
    assert data == want
    m = re.search(r",S=(\d+),W=(\d+)", name)
    assert m and int(m.group(1)) == len(want)
    crlf_size = len(want.replace(b"\n", b"\r\n"))
    assert int(m.group(2)) == crlf_size
    p = srv.login("alice", "secret")
    assert p.stat() == (1, crlf_size)
    resp, lines, octets = p.retr(1)
    assert octets == crlf_size
    assert b"\r\n".join(lines) + b"\r\n" == want.replace(b"\n", b"\r\n")
    p.quit()


def test_mail_crlf_stores_crlf_and_sizes_stay_exact(lmtpd, users):
    srv = lmtpd(mail_crlf=True)
    c = client(srv)
    c.sendmail("bob@example.org", ["alice"], MSG)
    c.quit()
    name, data = only_message(users, "alice")
    want = (b"Return-Path: <bob@example.org>\r\nDelivered-To: alice\r\n" + MSG)
    assert data == want
    assert ",S=%d,W=%d" % (len(want), len(want)) in name
    p = srv.login("alice", "secret")
    assert p.stat() == (1, len(want))
    p.quit()


def test_added_headers_can_be_turned_off(lmtpd, users):
    srv = lmtpd(lmtp_return_path=False, lmtp_delivered_to=False)
    c = client(srv)
    c.sendmail("bob@example.org", ["alice"], MSG)
    c.quit()
    assert only_message(users, "alice")[1] == lf(MSG)


def test_null_sender_and_utf8_addresses(lmtpd, users):
    srv = lmtpd()
    r = raw(srv)
    r.start(sender=b"<>")
    assert r.code(b"DATA") == 354
    r.send(b"Subject: bounce\r\n\r\nx\r\n.\r\n")
    assert r.reply()[0] == 250
    assert r.code(b"MAIL FROM:<j\xc3\xb6rg@example.org>") == 553
    assert r.code(b"MAIL FROM:<j\xc3\xb6rg@example.org> SMTPUTF8") == 250
    assert r.code(b"RCPT TO:<alice>") == 250
    assert r.code(b"DATA") == 354
    r.send(b"Subject: utf8\r\n\r\ny\r\n.\r\n")
    assert r.reply()[0] == 250
    # broken UTF-8 is refused even with SMTPUTF8
    assert r.code(b"MAIL FROM:<j\xc3@example.org> SMTPUTF8") in (501, 553)
    msgs = sorted(stored(users, "alice").values())
    assert any(m.startswith(b"Return-Path: <>\n") for m in msgs)
    assert any(m.startswith("Return-Path: <jörg@example.org>\n".encode())
               for m in msgs)


def test_one_reply_per_recipient_each_delivered_once(lmtpd, users):
    srv = lmtpd()
    r = raw(srv)
    r.start(rcpts=())
    assert r.code(b"RCPT TO:<alice>") == 250
    assert r.code(b"RCPT TO:<nosuchuser>") == 550
    assert r.code(b"RCPT TO:<bob>") == 250
    assert r.code(b"RCPT TO:<alice+news>") == 250     # same mailbox again
    assert r.code(b"DATA") == 354
    r.send(MSG + b".\r\n")
    replies = [r.reply() for _ in range(3)]
    assert [c for c, _ in replies] == [250, 250, 250]
    assert b"<alice>" in replies[0][1][0] and b"<bob>" in replies[1][1][0]
    assert b"<alice+news>" in replies[2][1][0]
    assert r.code(b"NOOP") == 250          # nothing more was queued
    assert len(stored(users, "alice")) == 1
    assert len(stored(users, "bob")) == 1


def test_recipient_forms(users, postinod):
    users.add_user("carol@example.org", "secret")
    srv = postinod(lmtp_listen="127.0.0.1:0",
                   lmtp_local_domains="example.com local.test",
                   recipient_delimiter="+-")
    r = raw(srv)
    r.start(rcpts=())
    ok = [b"<alice>", b"<alice@example.com>", b"<alice+tag@LOCAL.test>",
          b"<alice-x@example.com>", b"<carol@example.org>",
          b"<carol+x@EXAMPLE.ORG>", b"<@relay.example:bob@example.com>"]
    bad = [b"<alice@example.org>", b"<carol>", b"<carol@local.test>",
           b"<+alice>", b"<../alice>", b"<alice/../bob>", b"<.alice>"]
    for a in ok:
        assert r.code(b"RCPT TO:" + a) == 250, a
    for a in bad:
        assert r.code(b"RCPT TO:" + a) == 550, a
    assert r.code(b"DATA") == 354
    r.send(MSG + b".\r\n")
    assert [r.reply()[0] for _ in ok] == [250] * len(ok)
    assert len(stored(users, "alice")) == 1
    assert len(stored(users, "bob")) == 1
    # carol's maildir: ~/Maildir from her passwd-file line
    assert len(stored(users, "carol@example.org")) == 1


def test_bdat_chunks(lmtpd, users):
    srv = lmtpd()
    r = raw(srv)
    r.start()
    body = MSG
    a, b = body[:10], body[10:]
    r.send(b"BDAT %d\r\n" % len(a) + a)
    assert r.reply()[0] == 250
    r.send(b"BDAT %d LAST\r\n" % len(b) + b)
    assert r.reply()[0] == 250
    # DATA in a BDAT transaction is refused; BDAT 0 LAST is fine
    assert r.code(b"MAIL FROM:<bob@example.org>") == 250
    assert r.code(b"RCPT TO:<alice>") == 250
    r.send(b"BDAT 3\r\nab\r")
    assert r.reply()[0] == 250
    assert r.code(b"DATA") == 503
    r.send(b"BDAT 0 LAST\r\n")
    assert r.reply()[0] == 250
    msgs = sorted(stored(users, "alice").values(), key=len)
    assert msgs[0].endswith(b"\nab\r")       # a final bare CR is data
    assert msgs[1].endswith(lf(MSG))


def test_bdat_without_recipients_is_read_then_refused(lmtpd, users):
    srv = lmtpd()
    r = raw(srv)
    assert r.reply()[0] == 220
    assert r.code(b"LHLO x") == 250
    # the chunk holds what looks like commands: it must not run them
    chunk = b"RSET\r\nQUIT\r\n"
    r.send(b"BDAT %d LAST\r\n" % len(chunk) + chunk)
    assert r.reply()[0] == 503
    assert r.code(b"MAIL FROM:<bob@example.org>") == 250
    r.send(b"BDAT %d\r\n" % len(chunk) + chunk)
    assert r.reply()[0] == 503
    assert r.code(b"NOOP") == 250
    assert r.code(b"BDAT many") == 501
    assert r.reply()[0] == 421
    assert r.closed_within(5)
    assert stored(users, "alice") == {}


def test_rset_noop_vrfy_quit(lmtpd, users):
    srv = lmtpd()
    r = raw(srv)
    r.start()
    assert r.code(b"NOOP") == 250
    assert r.code(b"VRFY alice") == 252
    assert r.code(b"RSET") == 250
    assert r.code(b"DATA") == 503          # the transaction is gone
    assert r.code(b"QUIT") == 221
    assert r.closed_within(5)
    assert stored(users, "alice") == {}


# -- bad input ----------------------------------------------------------------

@pytest.mark.parametrize("line,code", [
    (b"HELO x", 500), (b"EHLO x", 500), (b"XYZZY", 500), (b"", 500),
    (b"LHLO", 501),
    (b"MAIL FROM:alice", 501), (b"MAIL TO:<a>", 501),
    (b"MAIL FROM:<a> FOO=1", 555), (b"MAIL FROM:<a> SIZE=1x", 501),
    (b"MAIL FROM:<a> SIZE=99999999999999999999999", 501),
    (b"MAIL FROM:<a> BODY=BINARYMIME", 501),
    (b"MAIL FROM:<a> SIZE=1 SIZE=2", 501),
    (b"MAIL FROM:<a b>", 501), (b"MAIL FROM:<a", 501),
    (b"MAIL FROM:<a>x", 501), (b"MAIL FROM:<\x01>", 501),
])
def test_malformed_commands(lmtpd, line, code):
    srv = lmtpd()
    r = raw(srv)
    assert r.reply()[0] == 220
    if not line.startswith((b"LHLO", b"HELO", b"EHLO")):
        assert r.code(b"LHLO x") == 250
    assert r.code(line) == code
    assert r.code(b"NOOP") == 250          # the connection goes on


@pytest.mark.parametrize("line,code", [
    (b"RCPT TO:alice", 501), (b"RCPT TO:<>", 501),
    (b"RCPT TO:<alice> NOTIFY=NEVER", 555),
    (b"RCPT TO:<\xc3\xa4lice>", 553),       # no SMTPUTF8 on MAIL
    (b"RCPT TO:<" + b"a" * 300 + b">", 501),
    (b"RCPT TO:<nosuchuser>", 550),
])
def test_malformed_recipients(lmtpd, line, code):
    srv = lmtpd()
    r = raw(srv)
    r.start(rcpts=())
    assert r.code(line) == code
    assert r.code(b"RCPT TO:<alice>") == 250


def test_commands_out_of_order(lmtpd, users):
    srv = lmtpd()
    r = raw(srv)
    assert r.reply()[0] == 220
    assert r.code(b"MAIL FROM:<a>") == 503          # before LHLO
    assert r.code(b"LHLO x") == 250
    assert r.code(b"RCPT TO:<alice>") == 503        # before MAIL
    assert r.code(b"DATA") == 503
    assert r.code(b"MAIL FROM:<a>") == 250
    assert r.code(b"MAIL FROM:<a>") == 503          # nested
    assert r.code(b"DATA") == 503                   # before any RCPT
    # the client's data after a refused DATA is read as commands: bad ones
    assert r.code(b"Subject: x") == 500
    assert r.code(b"DATA x") == 501
    assert r.code(b"RCPT TO:<nosuchuser>") == 550
    assert r.code(b"DATA") == 503                   # no valid recipient
    assert stored(users, "alice") == {}


def test_size_limits(lmtpd, users):
    srv = lmtpd(lmtp_max_message_size=4096)
    r = raw(srv)
    r.start(rcpts=())
    assert r.code(b"RSET") == 250
    assert r.code(b"MAIL FROM:<a> SIZE=4097") == 552
    assert r.code(b"MAIL FROM:<a> SIZE=100") == 250   # SIZE= lies
    assert r.code(b"RCPT TO:<alice>") == 250
    assert r.code(b"RCPT TO:<bob>") == 250
    assert r.code(b"DATA") == 354
    r.send(b"Subject: big\r\n\r\n" + (b"x" * 70 + b"\r\n") * 100 + b".\r\n")
    assert [r.reply()[0] for _ in range(2)] == [552, 552]
    assert r.code(b"NOOP") == 250
    assert stored(users, "alice") == {} and stored(users, "bob") == {}


def test_bare_lf_bare_cr_and_nul_in_data(lmtpd, users):
    srv = lmtpd()
    r = raw(srv)
    r.start()
    assert r.code(b"DATA") == 354
    r.send(b"Subject: x\n\nbare lf\nbare\rcr\r\nnul\x00byte\r\n..\n.\n")
    assert r.reply()[0] == 250
    data = only_message(users, "alice")[1]
    assert data.endswith(b"Subject: x\n\nbare lf\nbare\rcr\nnul\x00byte\n.\n")


def test_megabyte_line_in_data_is_kept(lmtpd, users):
    srv = lmtpd()
    r = raw(srv, timeout=30)
    r.start()
    assert r.code(b"DATA") == 354
    line = b"y" * (1024 * 1024)
    r.send(b"Subject: long\r\n\r\n" + line + b"\r\n.\r\n")
    assert r.reply()[0] == 250
    assert only_message(users, "alice")[1].endswith(b"\n\n" + line + b"\n")


def test_megabyte_command_line_is_refused(lmtpd):
    srv = lmtpd()
    r = raw(srv)
    assert r.reply()[0] == 220
    try:
        r.send(b"LHLO " + b"z" * (1024 * 1024) + b"\r\n")
    except (BrokenPipeError, ConnectionResetError):
        pass
    code, lines = r.reply()
    assert code == 500 and b"5.5.2" in lines[0]
    assert r.closed_within(5)


def test_nul_in_command(lmtpd):
    srv = lmtpd()
    r = raw(srv)
    assert r.reply()[0] == 220
    assert r.code(b"LHLO a\x00b") == 500
    assert r.code(b"LHLO ab") == 250


def test_too_many_bad_commands_close(lmtpd):
    srv = lmtpd()
    r = raw(srv)
    assert r.reply()[0] == 220
    codes = [r.code(b"BOGUS") for _ in range(19)]
    assert set(codes) == {500}
    r.send(b"BOGUS\r\n")
    assert r.reply()[0] == 500
    assert r.reply()[0] == 421
    assert r.closed_within(5)


def test_thousand_recipients_pipelined(lmtpd, users):
    srv = lmtpd()
    r = raw(srv, timeout=30)
    assert r.reply()[0] == 220
    r.send(b"LHLO x\r\nMAIL FROM:<bob@example.org>\r\n" +
           b"RCPT TO:<alice>\r\n" * 1000 + b"DATA\r\n")
    assert r.reply()[0] == 250
    assert r.reply()[0] == 250
    codes = [r.reply()[0] for _ in range(1000)]
    assert codes[:100] == [250] * 100           # RFC 5321 sec. 4.5.3.1.8
    assert set(codes[100:]) == {452}
    assert r.reply()[0] == 354
    r.send(MSG + b".\r\n")
    assert [r.reply()[0] for _ in range(100)] == [250] * 100
    assert r.code(b"NOOP") == 250
    assert len(stored(users, "alice")) == 1


def test_pipelined_transaction_in_one_write(lmtpd, users):
    srv = lmtpd()
    r = raw(srv)
    r.send(b"LHLO x\r\nMAIL FROM:<bob@example.org>\r\nRCPT TO:<alice>\r\n"
           b"RCPT TO:<nobody-here>\r\nRCPT TO:<bob>\r\nDATA\r\n" + MSG +
           b".\r\nRSET\r\nQUIT\r\n")
    codes = [r.reply()[0] for _ in range(10)]
    assert codes == [220, 250, 250, 250, 550, 250, 354, 250, 250, 250]
    assert r.reply()[0] == 221
    assert len(stored(users, "alice")) == 1 and len(stored(users, "bob")) == 1


def test_client_vanishing_mid_data_delivers_nothing(lmtpd, users):
    srv = lmtpd()
    for cut in (0, 5, len(MSG) - 1, len(MSG)):
        r = raw(srv)
        r.start()
        assert r.code(b"DATA") == 354
        r.send(MSG[:cut] + (b".\r" if cut == len(MSG) else b""))
        r.close()
    r = raw(srv)
    r.start()
    assert r.code(b"NOOP") == 250
    r.close()
    srv.wait_log("lmtp-aborted")
    md = users.maildir("alice")
    for sub in ("new", "cur", "tmp"):
        assert os.listdir(os.path.join(md, sub)) == [], sub


def test_unix_socket_with_mode(users, postinod, tmp_path):
    sock = os.path.join(users.path, "lmtp.sock")
    srv = postinod(lmtp_listen="unix:" + sock, lmtp_socket_mode="0600")
    assert "lmtp unix:" + sock in srv.addrs
    st = os.stat(sock)
    assert stat.S_ISSOCK(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o600
    c = smtplib.LMTP(sock, timeout=10)
    assert c.sendmail("bob@example.org", ["alice"], MSG) == {}
    c.quit()
    assert len(stored(users, "alice")) == 1
    srv.stop()
    assert not os.path.exists(sock)


def test_remote_lmtp_listener_needs_opt_in(users, postinod):
    for addr, ok in (("0.0.0.0:2424", False), ("[::]:2424", False),
                     ("127.0.0.2:2424", True), ("unix:relative", False)):
        srv = postinod(start=False, lmtp_listen=addr)
        p = subprocess.run([POSTINOD, "-t", "-c", srv.conf],
                           capture_output=True, timeout=20)
        assert (p.returncode == 0) == ok, (addr, p.stderr)
    srv = postinod(start=False, lmtp_listen="0.0.0.0:2424",
                   lmtp_allow_remote=True)
    p = subprocess.run([POSTINOD, "-t", "-c", srv.conf], capture_output=True,
                       timeout=20)
    assert p.returncode == 0, p.stderr


def test_roles_and_privileges(lmtpd, users):
    srv = lmtpd()
    c = client(srv)
    c.sendmail("bob@example.org", ["alice"], MSG)
    c.quit()
    (lpid,) = srv.pids("lmtp")
    dpids = srv.pids("deliver")
    assert dpids
    if IS_ROOT:
        import pwd
        login = pwd.getpwnam(LOGIN_USER).pw_uid
        with open("/proc/%d/status" % lpid) as f:
            uids = [l for l in f if l.startswith("Uid:")][0].split()[1:]
        assert set(int(u) for u in uids) == {login}
        assert os.readlink("/proc/%d/root" % lpid) == users.chroot
        for d in dpids:
            with open("/proc/%d/status" % d) as f:
                uids = [l for l in f if l.startswith("Uid:")][0].split()[1:]
            assert 0 not in set(int(u) for u in uids)


# -- concurrency ----------------------------------------------------------------

def test_parallel_deliveries_wait_for_the_next_pop3_session(lmtpd, users):
    for i in range(3):
        users.deliver_maildir("alice", b"Subject: old %d\n\nold\n" % i)
    srv = lmtpd()
    p = srv.login("alice", "secret")
    before = p.stat()
    uidls = p.uidl()[1]
    errors = []

    def one(i):
        body = b"Subject: parallel %d\r\nMessage-ID: <%d@t>\r\n\r\nx\r\n" \
            % (i, i)
        # over lmtp_user_concurrency (10) the answer is 451: retry, as an
        # MTA does
        for attempt in range(100):
            try:
                c = client(srv, timeout=30)
                try:
                    assert c.sendmail("bob@example.org", ["alice"], body) == {}
                    return
                finally:
                    c.close()
            except smtplib.SMTPDataError as e:
                if e.smtp_code != 451:
                    errors.append(e)
                    return
                time.sleep(0.05)
            except Exception as e:       # reported below
                errors.append(e)
                return
        errors.append("no delivery after 100 attempts")

    ts = [threading.Thread(target=one, args=(i,)) for i in range(20)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(60)
    assert not errors, errors
    assert p.stat() == before              # the session sees none of them
    assert p.uidl()[1] == uidls
    p.quit()
    p = srv.login("alice", "secret")
    count, _ = p.stat()
    assert count == 23
    old = {u.split()[1] for u in uidls}
    now = {u.split()[1] for u in p.uidl()[1]}
    assert old <= now and len(now) == 23   # earlier UIDLs unchanged
    ids = []
    for n in range(1, 24):
        hdr = b"\n".join(p.top(n, 0)[1])
        m = re.search(rb"Message-ID: <(\d+)@t>", hdr)
        if m:
            ids.append(int(m.group(1)))
    assert sorted(ids) == list(range(20))  # each exactly once
    p.quit()


# -- crash safety ---------------------------------------------------------------

def _complete(name, data):
    """A stored message is whole: its size is its name's S= and it ends with
    the trailer every test message carries."""
    m = re.search(r",S=(\d+),W=(\d+)", name)
    return m is not None and int(m.group(1)) == len(data) and \
        data.endswith(b"\nEND-OF-MESSAGE\n")


def test_kill9_of_deliver_workers_never_leaves_a_partial_message(lmtpd, users):
    """Kill the delivering process at random moments, 200 times; retry every
    delivery that did not get 250, as an MTA does. No partial message is
    ever visible in new/, and every message is stored exactly once."""
    srv = lmtpd()
    md_new = os.path.join(users.maildir("alice"), "new")
    rnd = random.Random(12)
    kills = 0
    pending = {}
    deadline = time.monotonic() + 90
    i = 0
    while kills < 200:
        assert time.monotonic() < deadline, "too slow: %d kills" % kills
        i += 1
        size = rnd.choice((1000, 50000, 400000))
        body = (b"Subject: crash %d\r\nMessage-ID: <%d@crash>\r\n\r\n" % (i, i)
                + (b"z" * 77 + b"\r\n") * (size // 79) + b"END-OF-MESSAGE\r\n")
        pending[i] = body
        r = raw(srv, timeout=30)
        r.start()
        assert r.code(b"DATA") == 354
        r.send(body + b".\r\n")
        time.sleep(rnd.random() * 0.004)
        for pid in srv.pids("deliver"):
            try:
                os.kill(pid, signal.SIGKILL)
                kills += 1
            except ProcessLookupError:
                pass
        code = r.reply()[0]
        assert code in (250, 451), code
        r.close()
        if code == 250:
            del pending[i]
        for name in os.listdir(md_new):
            with open(os.path.join(md_new, name), "rb") as f:
                assert _complete(name, f.read()), name
    assert pending, "no kill interrupted a delivery: the test proves nothing"
    # the MTA's retry
    for n, body in sorted(pending.items()):
        mta_retry(srv, body)
    seen = {}
    for name, data in stored(users, "alice").items():
        assert _complete(name, data), name
        n = int(re.search(rb"Message-ID: <(\d+)@crash>", data).group(1))
        seen[n] = seen.get(n, 0) + 1
    # exactly once: a delivery whose worker died after storing is found by
    # its token (MSG_DELIVER_PROBE) and answered 250, so no retry copies it
    assert seen == {n: 1 for n in range(1, i + 1)}


# -- mbox ---------------------------------------------------------------------

def test_mbox_delivery_reads_back_over_pop3(users, postinod):
    srv = postinod(mailbox=users.mbox_spec, lmtp_listen="127.0.0.1:0")
    c = client(srv)
    body = MSG + b"From the start of a line\r\n>From quoted\r\n"
    # one recipient per transaction: smtplib reads one reply after DATA
    assert c.sendmail("bob@example.org", ["alice"], body) == {}
    assert c.sendmail("", ["alice"], b"Subject: second\r\n\r\nx") == {}
    c.quit()
    spool = users.read_mbox("alice")
    assert spool.startswith(b"From bob@example.org ")
    assert b"\n>From the start of a line\n>>From quoted\n\n" \
           b"From MAILER-DAEMON " in spool
    p = srv.login("alice", "secret")
    assert p.stat()[0] == 2
    lines = p.retr(1)[1]
    assert b"\r\n".join(lines) + b"\r\n" == (
        b"Return-Path: <bob@example.org>\r\nDelivered-To: alice\r\n" + body)
    assert p.retr(2)[1][-1] == b"x"
    p.quit()


def test_mbox_sender_cannot_choose_its_uidl(users, postinod):
    """An mbox message's X-UIDL header is its UIDL: a sender who sets one
    could take another message's UIDL (and after a deletion hide behind
    it), so delivery drops it (Dovecot tells MTAs to strip X-UIDL)."""
    srv = postinod(mailbox=users.mbox_spec, lmtp_listen="127.0.0.1:0")
    c = client(srv)
    assert c.sendmail("bob@example.org", ["alice"],
                      b"Subject: first\r\n\r\nx\r\n") == {}
    p = srv.login("alice", "secret")
    victim = p.uidl(1).split()[2]
    p.quit()
    forged = b"X-UIDL: " + victim + b"\r\nSubject: forged\r\n\r\ny\r\n"
    assert c.sendmail("bob@example.org", ["alice"], forged) == {}
    c.quit()
    assert b"X-UIDL" not in users.read_mbox("alice")
    p = srv.login("alice", "secret")
    uidls = [ln.split()[1] for ln in p.uidl()[1]]
    assert len(uidls) == 2 and uidls[0] == victim and uidls[1] != victim
    assert p.retr(2)[1][:2] == [b"Return-Path: <bob@example.org>",
                                b"Delivered-To: alice"]
    p.quit()


def mta_retry(srv, body, tries=20):
    """Sends body to alice as an MTA would: a 4xx (a deliver worker still
    being restarted after the kills: the master pauses a role that keeps
    dying) is retried later, a bounded number of times."""
    for _ in range(tries):
        c = client(srv, timeout=30)
        try:
            assert c.sendmail("bob@example.org", ["alice"], body) == {}
            return
        except smtplib.SMTPDataError as e:
            assert 400 <= e.smtp_code < 500, e
        finally:
            try:
                c.quit()
            except smtplib.SMTPException:
                pass
        time.sleep(0.5)
    raise AssertionError("still refused after %d tries" % tries)


def test_mbox_kill9_never_leaves_a_partial_message(users, postinod):
    """200 kills of the delivering process; the mbox read between kills
    (by POP3, which cuts a killed append's tail first) and at the end
    holds only whole messages; retries make every message arrive."""
    srv = postinod(mailbox=users.mbox_spec, lmtp_listen="127.0.0.1:0")
    rnd = random.Random(7)
    kills, i, pending = 0, 0, {}
    deadline = time.monotonic() + 90
    while kills < 200:
        assert time.monotonic() < deadline, "too slow: %d kills" % kills
        i += 1
        size = rnd.choice((1000, 50000, 400000))
        body = (b"Subject: crash %d\r\nMessage-ID: <%d@crash>\r\n\r\n" % (i, i)
                + (b"z" * 77 + b"\r\n") * (size // 79) + b"END-OF-MESSAGE\r\n")
        pending[i] = body
        r = raw(srv, timeout=30)
        r.start()
        assert r.code(b"DATA") == 354
        r.send(body + b".\r\n")
        time.sleep(rnd.random() * 0.004)
        for pid in srv.pids("deliver"):
            try:
                os.kill(pid, signal.SIGKILL)
                kills += 1
            except ProcessLookupError:
                pass
        code = r.reply()[0]
        assert code in (250, 451), code
        r.close()
        if code == 250:
            del pending[i]
        if i % 10 == 0:
            p = srv.login("alice", "secret")
            for n in range(1, p.stat()[0] + 1):
                assert p.top(n, 100000)[1][-1] == b"END-OF-MESSAGE"
            p.quit()
    assert pending, "no kill interrupted a delivery: the test proves nothing"
    for n, body in sorted(pending.items()):
        mta_retry(srv, body)
    p = srv.login("alice", "secret")
    seen = {}
    for n in range(1, p.stat()[0] + 1):
        lines = p.retr(n)[1]
        assert lines[-1] == b"END-OF-MESSAGE"
        k = int(re.search(rb"<(\d+)@crash>", b"\n".join(lines[:5])).group(1))
        seen[k] = seen.get(k, 0) + 1
    p.quit()
    assert sorted(seen) == list(range(1, i + 1))
    assert all(v <= 2 for v in seen.values())
    assert {k for k, v in seen.items() if v > 1} <= set(pending)
    assert "event=append-recovered" in srv.log()   # kills did land mid-write


# -- quotas and the per-user concurrency limit ---------------------------------

def deliver_one(srv, rcpt=b"<alice>", body=MSG):
    r = raw(srv, timeout=30)      # a worker may be spawned on a loaded host
    r.start(rcpts=(rcpt,))
    assert r.code(b"DATA") == 354
    r.send(body + b".\r\n")
    code, lines = r.reply()
    r.close()
    return code, lines[0]


@pytest.mark.parametrize("mailbox", ["maildir", "mbox"])
def test_quota_in_octets(users, postinod, mailbox):
    spec = users.mbox_spec if mailbox == "mbox" else "maildir:~/Maildir"
    srv = postinod(mailbox=spec, lmtp_listen="127.0.0.1:0",
                   lmtp_quota_bytes=len(MSG) * 2 + 200)
    assert deliver_one(srv)[0] == 250
    code, line = deliver_one(srv, body=MSG + b"x" * len(MSG) + b"\r\n")
    assert code == 552 and b"5.2.2" in line
    assert deliver_one(srv)[0] == 250            # still fits
    code, line = deliver_one(srv)
    assert code == 552                           # would go over
    p = srv.login("alice", "secret")
    assert p.stat()[0] == 2
    p.quit()


def test_quota_full_mailbox_refused_at_rcpt(users, postinod):
    users.deliver_maildir("alice", b"Subject: big\n\n" + b"x" * 5000)
    srv = postinod(lmtp_listen="127.0.0.1:0", lmtp_quota_bytes=5000)
    r = raw(srv)
    r.start(rcpts=())
    # the MTA learns at RCPT, before it sends the message
    r.send(b"RCPT TO:<alice>\r\n")
    code, lines = r.reply()
    assert code == 552 and b"5.2.2" in lines[0]
    assert r.code(b"RCPT TO:<bob>") == 250
    assert r.code(b"DATA") == 354
    r.send(MSG + b".\r\n")
    assert r.reply()[0] == 250
    assert len(stored(users, "alice")) == 1 and len(stored(users, "bob")) == 1


def test_quota_in_messages_and_temporary(users, postinod):
    srv = postinod(lmtp_listen="127.0.0.1:0", lmtp_quota_messages=2,
                   lmtp_quota_temporary=True)
    assert deliver_one(srv)[0] == 250
    assert deliver_one(srv)[0] == 250
    r = raw(srv)
    r.start(rcpts=())
    r.send(b"RCPT TO:<alice>\r\n")
    code, lines = r.reply()
    assert code == 452 and b"4.2.2" in lines[0]
    r.close()
    assert deliver_one(srv, rcpt=b"<bob>")[0] == 250   # others unaffected
    assert len(stored(users, "alice")) == 2


def set_extra(mailroot, user, extra):
    """Put extra into user's passwd-file extra field (the last one)."""
    with open(mailroot.passwd_file) as f:
        lines = f.read().splitlines()
    with open(mailroot.passwd_file, "w") as f:
        for ln in lines:
            if ln.split(":", 1)[0] == user:
                ln = ln + extra
            f.write(ln + "\n")


def test_per_user_quota_bytes_overrides_the_default(users, postinod):
    """quota_bytes=N in the passwd-file's extra field is alice's quota,
    with no lmtp_quota_bytes configured; bob has none."""
    set_extra(users, "alice", "userdb_mail=x quota_bytes=%d" %
              (len(MSG) * 2 + 200))
    srv = postinod(lmtp_listen="127.0.0.1:0")
    assert deliver_one(srv)[0] == 250
    code, line = deliver_one(srv, body=MSG + b"x" * len(MSG) + b"\r\n")
    assert code == 552 and b"5.2.2" in line
    assert deliver_one(srv)[0] == 250            # still fits
    users.deliver_maildir("alice", b"Subject: big\n\n" + b"x" * len(MSG))
    r = raw(srv)                                 # full: refused at RCPT
    r.start(rcpts=())
    r.send(b"RCPT TO:<alice>\r\n")
    code, lines = r.reply()
    assert code == 552 and b"5.2.2" in lines[0]
    r.close()
    for _ in range(3):
        assert deliver_one(srv, rcpt=b"<bob>")[0] == 250
    assert len(stored(users, "alice")) == 3


def test_per_user_quota_messages_and_temporary(users, postinod):
    """The account's quota_messages replaces lmtp_quota_messages, larger
    or 0 (no quota for that user); others keep the default."""
    users.add_user("carol", "secret")
    set_extra(users, "alice", "quota_messages=3")
    set_extra(users, "carol", "quota_messages=0")
    srv = postinod(lmtp_listen="127.0.0.1:0", lmtp_quota_messages=1,
                   lmtp_quota_temporary=True)
    for _ in range(3):
        assert deliver_one(srv)[0] == 250
        assert deliver_one(srv, rcpt=b"<carol>")[0] == 250
    code, line = deliver_one(srv, rcpt=b"<bob>")
    assert code == 250
    for rcpt in (b"<alice>", b"<bob>"):
        r = raw(srv)
        r.start(rcpts=())
        r.send(b"RCPT TO:" + rcpt + b"\r\n")
        code, lines = r.reply()
        assert code == 452 and b"4.2.2" in lines[0], lines
        r.close()
    assert deliver_one(srv, rcpt=b"<carol>")[0] == 250
    assert len(stored(users, "alice")) == 3
    assert len(stored(users, "bob")) == 1
    assert len(stored(users, "carol")) == 4


@pytest.mark.parametrize("extra", [
    "quota_bytes=100M", "quota_bytes=", "quota_messages=-1",
    "quota_bytes=1 quota_bytes=2", "quota_messages=10000001",
    "quota_bytes=99999999999999999999999",
])
def test_bad_quota_field_is_a_temporary_failure(users, postinod, extra):
    """A quota that cannot be read is never "no quota": that user's
    lookups fail temporarily (451 4.3.0, the MTA retries), with a log
    line; other users are unaffected."""
    set_extra(users, "alice", extra)
    srv = postinod(lmtp_listen="127.0.0.1:0")
    r = raw(srv)
    r.start(rcpts=())
    r.send(b"RCPT TO:<alice>\r\n")
    code, lines = r.reply()
    assert code == 451 and b"4.3.0" in lines[0], lines
    assert r.code(b"RCPT TO:<bob>") == 250
    assert r.code(b"DATA") == 354
    r.send(MSG + b".\r\n")
    assert r.reply()[0] == 250
    r.close()
    srv.wait_log('user "alice": extra field: ')
    assert stored(users, "alice") == {}
    p = srv.raw()                                # POP3: [SYS/TEMP] too
    p.expect(b"+OK")
    p.cmd(b"USER alice")
    assert p.cmd(b"PASS secret").startswith(b"-ERR [SYS/TEMP]")


def test_pop3_cap_bounds_delivery(users, postinod):
    """max_mailbox_size is where POP3 refuses the login: delivery stops
    there, so mail can never lock its owner out."""
    srv = postinod(lmtp_listen="127.0.0.1:0", max_messages=1)
    assert deliver_one(srv)[0] == 250
    assert deliver_one(srv)[0] == 552
    p = srv.login("alice", "secret")
    assert p.stat()[0] == 1
    p.quit()


def _hang_one_delivery(srv):
    """Stops the only deliver worker and starts a delivery to alice that
    it takes. None when the master routed that delivery to a new worker
    instead (its count of the first delivery had not come back yet: the
    250 reaches the client before the worker tells the master it is done),
    which the caller retries; else (worker pid, the waiting connection)."""
    (worker,) = srv.pids("deliver")
    os.kill(worker, signal.SIGSTOP)
    a = raw(srv, timeout=30)
    a.start()
    assert a.code(b"DATA") == 354
    a.send(MSG + b".\r\n")
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline:
        if len(srv.pids("deliver")) > 1:
            os.kill(worker, signal.SIGCONT)
            a.close()
            return None
        time.sleep(0.05)
    return worker, a


def test_per_user_concurrency_limit(lmtpd, users):
    for _ in range(5):
        before = (len(stored(users, "alice")), len(stored(users, "bob")))
        srv = lmtpd(lmtp_user_concurrency=1, mail_workers=2)
        assert deliver_one(srv)[0] == 250        # the worker now exists
        hung = _hang_one_delivery(srv)
        if hung is None:
            srv.stop()
            continue
        worker, a = hung
        try:
            # a second delivery to alice while the first runs: 451 4.4.5 ...
            code, line = deliver_one(srv)
            assert code == 451 and b"4.4.5" in line
            # ... and in one transaction to alice and bob, only alice's
            # recipient is refused (bob's goes to a second worker: read
            # the replies before the first one runs again)
            b = raw(srv, timeout=30)
            b.start(rcpts=(b"<alice>", b"<bob>"))
            assert b.code(b"DATA") == 354
            b.send(MSG + b".\r\n")
            assert [b.reply()[0] for _ in range(2)] == [451, 250]
        finally:
            os.kill(worker, signal.SIGCONT)
        assert a.reply()[0] == 250
        assert len(stored(users, "alice")) == before[0] + 2
        assert len(stored(users, "bob")) == before[1] + 1
        return
    raise AssertionError("the hung delivery never reached the stopped worker")


def test_worker_dying_after_storing_is_answered_250_once(users, postinod,
                                                         monkeypatch):
    """The deliver worker stores the message, then dies before it answers
    (a test hook: POSTINO_TEST_DELIVER_DIE_AFTER_STORE). The lmtp role asks
    a fresh worker for the delivery's token, finds it and answers 250: the
    MTA does not send it again."""
    monkeypatch.setenv("POSTINO_TEST_DELIVER_DIE_AFTER_STORE", "1")
    srv = postinod(lmtp_listen="127.0.0.1:0")
    for rcpt in (b"<alice>", b"<bob>", b"<alice>"):
        assert deliver_one(srv, rcpt)[0] == 250
    assert len(stored(users, "alice")) == 2
    assert len(stored(users, "bob")) == 1
    assert srv.log().count("result=stored") == 3
