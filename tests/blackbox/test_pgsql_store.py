"""mailbox = pgsql: messages in a real PostgreSQL (pgsql_helpers.py): the
schema postinod creates or a DBA loads from src/store/pgsql_schema.sql,
one session per mailbox across instances (advisory locks), UPDATE in one
transaction, LMTP delivery acknowledged only after COMMIT, and outages
answered with [SYS/TEMP] and survived without a restart.
Every socket has a timeout and every loop a bound; loopback only."""
import os
import poplib
import signal
import smtplib
import subprocess
import time

import pytest

from conftest import POSTINOD, crlf, give_to_mail_user, make_hash
from test_client import dovecot  # noqa: F401 (fixture)
from test_lmtp import lmtp_port

USER, PASS = "alice", "secret"
HERE = os.path.dirname(os.path.abspath(__file__))
SCHEMA = os.path.join(HERE, "..", "..", "src", "store", "pgsql_schema.sql")


def drop_schema(pg):
    pg.psql("DROP TABLE IF EXISTS postino_message, postino_mailbox, "
            "postino_schema_version; "
            "DROP SEQUENCE IF EXISTS postino_uidl_seq; "
            "DROP FUNCTION IF EXISTS postino_test_slow() CASCADE")


def load_schema(pg):
    """As a DBA would: the shipped file, in one transaction."""
    drop_schema(pg)
    with open(SCHEMA) as f:
        pg.psql(f.read())


def insert(pg, mailbox, data, uidl=None):
    """A message as postinod stores it: pop3_size counts CRLF."""
    cols = "mailbox, pop3_size, stored_size, body"
    vals = "'%s', %d, %d, '\\x%s'::bytea" % (mailbox, len(crlf(data)),
                                            len(data), data.hex())
    if uidl is not None:
        cols += ", uidl"
        vals += ", '%s'" % uidl
    return pg.psql("INSERT INTO postino_message (%s) VALUES (%s) "
                   "RETURNING uidl" % (cols, vals)).strip()


def rows(pg, mailbox=USER):
    out = pg.psql("SELECT uidl FROM postino_message WHERE mailbox = '%s' "
                  "ORDER BY id" % mailbox)
    return [ln for ln in out.splitlines() if ln]


def server(postinod, pg, **config):
    config.setdefault("pgsql_conninfo", pg.conninfo)
    config.setdefault("pgsql_password_file", pg.password_file)
    return postinod(mailbox="pgsql:", **config)


@pytest.fixture
def db(pg, mailroot):
    mailroot.add_user(USER, PASS)
    load_schema(pg)
    yield pg
    drop_schema(pg)


def login_raw(srv):
    r = srv.raw()
    r.expect(b"+OK")
    r.send(b"USER %s\r\nPASS %s\r\n" % (USER.encode(), PASS.encode()))
    assert r.line().startswith(b"+OK")
    assert r.line().startswith(b"+OK Logged in")
    return r


def wait_for(pred, seconds=20):
    deadline = time.monotonic() + seconds
    while not pred():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


def test_postinod_creates_the_missing_schema(pg, mailroot, postinod):
    mailroot.add_user(USER, PASS)
    drop_schema(pg)
    srv = server(postinod, pg)
    p = srv.login(USER, PASS)
    assert p.stat() == (0, 0)
    p.quit()
    assert pg.psql("SELECT version FROM postino_schema_version").strip() == "2"
    assert "event=pgsql-schema-created" in srv.log()
    drop_schema(pg)


def test_refuses_a_newer_schema_with_sys_temp(db, postinod):
    db.psql("UPDATE postino_schema_version SET version = 99")
    srv = server(postinod, db)
    r = srv.raw()
    r.expect(b"+OK")
    r.send(b"USER alice\r\nPASS secret\r\n")
    assert r.line().startswith(b"+OK")
    assert r.line().startswith(b"-ERR [SYS/TEMP]")
    srv.wait_log("schema version 99")


def test_list_uidl_retr_dele_quit(db, postinod):
    msgs = [b"Subject: one\n\nfirst\n", b"Subject: two\r\n\r\nsecond",
            b"Subject: three\n\n.dot line\n"]
    uidls = [insert(db, USER, m) for m in msgs]
    insert(db, "bob", b"Subject: not alice's\n\nx\n")
    srv = server(postinod, db)
    p = srv.login(USER, PASS)
    assert p.stat() == (3, sum(len(crlf(m)) for m in msgs))
    assert [ln.split()[1].decode() for ln in p.uidl()[1]] == uidls
    for i, m in enumerate(msgs, 1):
        size = int(p.list(i).split()[2])
        resp, lines, octets = p.retr(i)
        assert octets == size == len(crlf(m))
        assert b"\r\n".join(lines) + b"\r\n" == crlf(m)
    p.dele(2)
    p.quit()
    assert rows(db) == [uidls[0], uidls[2]]
    assert len(rows(db, "bob")) == 1


def test_top_and_a_message_of_many_blocks(db, postinod):
    body = b"".join(b"line %06d %s\n" % (i, b"x" * 60) for i in range(6000))
    data = b"Subject: big\n\n" + body
    srv = server(postinod, db, lmtp_listen="127.0.0.1:0",
                 lmtp_return_path=False, lmtp_delivered_to=False)
    c = smtplib.LMTP("127.0.0.1", lmtp_port(srv), timeout=30)
    assert c.sendmail("bob@example.org", [USER], crlf(data)) == {}
    c.quit()
    p = srv.login(USER, PASS)
    resp, lines, octets = p.retr(1)
    assert octets == len(crlf(data)) and len(data) > 400000
    assert b"\r\n".join(lines) + b"\r\n" == crlf(data)
    resp, lines, octets = p.top(1, 2)
    assert lines == [b"Subject: big", b"", b"line 000000 " + b"x" * 60,
                     b"line 000001 " + b"x" * 60]
    p.quit()


def test_a_read_ahead_left_by_top_is_not_the_next_answer(db, postinod):
    """RETR and TOP ask for the next block before it is needed; TOP stops
    early, and the block still on its way must not be taken for the
    answer to the next RETR or to QUIT's DELETE."""
    head, line, n = b"Subject: big\n\n", b"line %s\n" % (b"y" * 60), 6000
    big = head + line * n        # several of the store's blocks
    # Built by the database: its hex would not fit in one psql argument.
    db.psql("INSERT INTO postino_message (mailbox, pop3_size, stored_size, "
            "body) VALUES ('%s', %d, %d, decode('%s' || repeat('%s', %d), "
            "'hex'))" % (USER, len(crlf(big)), len(big), head.hex(),
                         line.hex(), n))
    keep = insert(db, USER, b"Subject: small\n\nsmall\n")
    srv = server(postinod, db)
    p = srv.login(USER, PASS)
    for _ in range(3):
        assert p.top(1, 1)[1] == [b"Subject: big", b"", line[:-1]]
        assert p.retr(2)[1] == [b"Subject: small", b"", b"small"]
    assert b"\r\n".join(p.retr(1)[1]) + b"\r\n" == crlf(big)
    p.top(1, 0)
    p.dele(1)
    assert p.quit().startswith(b"+OK")
    assert rows(db) == [keep]


def test_uidls_are_never_reused(db, postinod):
    first = insert(db, USER, b"Subject: a\n\na\n")
    srv = server(postinod, db)
    p = srv.login(USER, PASS)
    p.dele(1)
    p.quit()
    second = insert(db, USER, b"Subject: b\n\nb\n")
    assert first != second and rows(db) == [second]


def test_a_migrated_uidl_is_kept(db, postinod):
    insert(db, USER, b"Subject: old\n\nold\n", uidl="1700000000.M1P2.host")
    srv = server(postinod, db)
    p = srv.login(USER, PASS)
    assert p.uidl(1).split()[2] == b"1700000000.M1P2.host"
    p.quit()


def test_second_login_on_another_instance_is_in_use(db, postinod):
    insert(db, USER, b"Subject: a\n\na\n")
    a = server(postinod, db)
    b = server(postinod, db)
    held = login_raw(a)
    assert held.cmd(b"STAT").startswith(b"+OK 1 ")
    r = b.raw()
    r.expect(b"+OK")
    r.send(b"USER alice\r\nPASS secret\r\n")
    assert r.line().startswith(b"+OK")
    assert r.line().startswith(b"-ERR [IN-USE]")
    assert held.cmd(b"QUIT").startswith(b"+OK")
    p = b.login(USER, PASS)
    assert p.stat()[0] == 1
    p.quit()


def test_dropped_connection_deletes_nothing(db, postinod):
    for i in range(3):
        insert(db, USER, b"Subject: %d\n\nx\n" % i)
    srv = server(postinod, db)
    r = login_raw(srv)
    for i in (1, 2, 3):
        assert r.cmd(b"DELE %d" % i).startswith(b"+OK")
    r.close()
    # The lock goes with the session: the next login proves it ended.
    wait_for(lambda: _try_login(srv))
    assert len(rows(db)) == 3


def _try_login(srv):
    try:
        p = srv.login(USER, PASS)
    except poplib.error_proto:
        return False
    p.quit()
    return True


def test_kill9_mid_session_loses_nothing_and_leaves_no_lock(db, postinod):
    for i in range(3):
        insert(db, USER, b"Subject: %d\n\nx\n" % i)
    a = server(postinod, db)
    b = server(postinod, db)
    r = login_raw(a)
    assert r.cmd(b"DELE 1").startswith(b"+OK")
    a.kill9()
    # PostgreSQL sees the dead backend's socket close: the lock is gone.
    wait_for(lambda: _try_login(b))
    assert len(rows(db)) == 3


def test_lmtp_delivery_lands_in_pgsql(db, postinod):
    srv = server(postinod, db, lmtp_listen="127.0.0.1:0")
    c = smtplib.LMTP("127.0.0.1", lmtp_port(srv), timeout=20)
    msg = b"From: bob@example.org\r\nSubject: hi\r\n\r\nhello\r\n"
    assert c.sendmail("bob@example.org", [USER], msg) == {}
    c.quit()
    want = (b"Return-Path: <bob@example.org>\nDelivered-To: alice\n" +
            msg.replace(b"\r\n", b"\n"))
    body = db.psql("SELECT encode(body, 'hex'), pop3_size, stored_size, "
                   "token IS NOT NULL FROM postino_message").split("|")
    assert bytes.fromhex(body[0]) == want
    assert int(body[1]) == len(crlf(want)) and int(body[2]) == len(want)
    assert body[3].strip() == "t"
    p = srv.login(USER, PASS)
    assert p.retr(1)[2] == len(crlf(want))
    p.quit()


def test_lmtp_quota_counts_pgsql_rows(db, postinod):
    srv = server(postinod, db, lmtp_listen="127.0.0.1:0",
                 lmtp_quota_messages=1)
    c = smtplib.LMTP("127.0.0.1", lmtp_port(srv), timeout=20)
    assert c.sendmail("bob@example.org", [USER], b"Subject: 1\r\n\r\nx\r\n") \
        == {}
    with pytest.raises(smtplib.SMTPRecipientsRefused) as e:
        c.sendmail("bob@example.org", [USER], b"Subject: 2\r\n\r\nx\r\n")
    assert e.value.recipients[USER][0] == 552
    c.quit()
    assert len(rows(db)) == 1


def test_database_down_is_sys_temp_and_service_resumes(db, postinod):
    insert(db, USER, b"Subject: a\n\na\n")
    srv = server(postinod, db, lmtp_listen="127.0.0.1:0")
    # A pooled connection exists in the mail worker before the outage.
    p = srv.login(USER, PASS)
    p.quit()
    db.stop()
    try:
        r = srv.raw()
        r.expect(b"+OK")
        r.send(b"USER alice\r\nPASS secret\r\n")
        assert r.line().startswith(b"+OK")
        assert r.line().startswith(b"-ERR [SYS/TEMP]")
        r.close()
        c = smtplib.LMTP("127.0.0.1", lmtp_port(srv), timeout=30)
        with pytest.raises(smtplib.SMTPDataError) as e:
            c.sendmail("bob@example.org", [USER], b"Subject: b\r\n\r\nb\r\n")
        assert 400 <= e.value.smtp_code < 500
        c.close()
    finally:
        db.start()
    # Same postinod, no restart: logins and deliveries work again (an
    # MTA retries a 4xx; postinod fails fast for a second after an
    # outage instead of making each client wait for a connection).
    wait_for(lambda: _try_login(srv), seconds=30)
    wait_for(lambda: _try_deliver(srv, b"Subject: c\r\n\r\nc\r\n"),
             seconds=30)
    assert len(rows(db)) == 2


def _try_deliver(srv, msg):
    c = smtplib.LMTP("127.0.0.1", lmtp_port(srv), timeout=30)
    try:
        c.sendmail("bob@example.org", [USER], msg)
    except smtplib.SMTPDataError as e:
        assert 400 <= e.smtp_code < 500
        return False
    finally:
        c.close()
    return True


def test_config_refuses_pgsql_without_conninfo(mailroot, postinod):
    mailroot.add_user(USER, PASS)
    srv = postinod(mailbox="pgsql:", start=False)
    with pytest.raises(AssertionError) as e:
        srv.start()
    assert "mailbox = pgsql: needs pgsql_conninfo" in str(e.value)


# -- postino-migrate ----------------------------------------------------------

MIGRATE = os.path.join(os.path.dirname(POSTINOD), "postino-migrate")


def migrate(srv, src, dst, user=USER):
    r = subprocess.run([MIGRATE, "-c", srv.conf, "-d", user, src, dst],
                       capture_output=True, timeout=120)
    return r.returncode, r.stdout.decode() + r.stderr.decode()


def test_migrate_command_line(mailroot, postinod):
    """The start postino-migrate shares with postino-deliver
    (delivery_tool.c): -h, -V, usage and user errors with sysexits codes."""
    conf = postinod(start=False).conf
    for opt in ("-h", "--help"):
        r = subprocess.run([MIGRATE, opt], capture_output=True, timeout=30)
        assert r.returncode == 0 and r.stderr == b""
        assert r.stdout.startswith(b"usage: postino-migrate")
    r = subprocess.run([MIGRATE, "-V"], capture_output=True, timeout=30)
    assert r.returncode == 0 and r.stdout.startswith(b"postino-migrate ")
    for args, code in ((["-d", USER, "maildir:~/Maildir"], 64),
                       (["-x"], 64), (["-d", "nosuch", "pgsql:", "mbox:x"], 67),
                       (["-d", "../x", "pgsql:", "mbox:x"], 67)):
        r = subprocess.run([MIGRATE, "-c", conf] + args, capture_output=True,
                           timeout=30)
        assert r.returncode == code, (args, r.stderr)
        assert r.stderr.startswith(b"postino-migrate: ")
        assert r.stderr.count(b"\n") == 1


def uidl_list(srv):
    p = srv.login(USER, PASS)
    out = [ln.split()[1].decode() for ln in p.uidl()[1]]
    bodies = [b"\n".join(p.retr(n)[1]) for n in range(1, len(out) + 1)]
    p.quit()
    return out, bodies


def test_migration_there_and_back_keeps_every_uidl(db, mailroot, postinod):
    msgs = [b"Subject: %d\n\nbody %d\n" % (i, i) for i in range(5)]
    msgs.append(b"Subject: crlf\r\n\r\nline\r\nno final newline")
    for m in msgs:
        mailroot.deliver_maildir(USER, m)
    md = postinod()
    # A client that leaves mail on the server has seen these UIDLs.
    seen, bodies = uidl_list(md)
    md.stop()
    pg_srv = server(postinod, db)
    code, out = migrate(pg_srv, "maildir:~/Maildir", "pgsql:")
    assert code == 0 and "6 messages copied" in out, out
    assert uidl_list(pg_srv) == (seen, bodies)
    # Run again: nothing is added twice.
    code, out = migrate(pg_srv, "maildir:~/Maildir", "pgsql:")
    assert code == 0, out
    assert len(rows(db)) == 6
    # And back, into a new Maildir: the same UIDLs again.
    code, out = migrate(pg_srv, "pgsql:", "maildir:~/Maildir2")
    assert code == 0 and "6 messages copied" in out, out
    back = postinod(mailbox="maildir:~/Maildir2")
    assert uidl_list(back) == (seen, bodies)


def uidl_sizes(srv):
    p = srv.login(USER, PASS)
    out = [int(ln.split()[1]) for ln in p.list()[1]]
    p.quit()
    return out


def test_migration_into_mbox_and_back_keeps_every_uidl(db, mailroot,
                                                       postinod):
    """Maildir (a dovecot-uidlist) -> pgsql -> mbox -> Maildir: a client
    sees the same UIDLs all the way. Into the mbox each message gets its
    UIDL as its first header, "X-UIDL:" (replacing one it had), which
    its POP3 size counts; the rest is the same octet for octet. A second
    run adds nothing."""
    msgs = [b"Subject: 0\n\nbody 0\n",
            b"X-UIDL: its-own\nSubject: 1\n\nFrom the start\n>From x\n",
            b"Subject: 2\r\n\r\nline\r\n\r\n",
            b"Subject: 3\n\nnot in the uidlist\n"]
    names = ["17000000%02d.M1P1.host" % i for i in range(len(msgs))]
    for m, n in zip(msgs, names):
        mailroot.deliver_maildir(USER, m, name=n)
    uidlist = os.path.join(mailroot.maildir(USER), "dovecot-uidlist")
    with open(uidlist, "w") as f:
        f.write("3 V1700000000 N4\n1 :%s\n2 :%s\n3 Pkept.from-P :%s\n"
                % tuple(names[:3]))
    give_to_mail_user(uidlist)
    md = postinod()
    seen, bodies = uidl_list(md)
    sizes = uidl_sizes(md)
    md.stop()
    assert seen[:3] == ["000000016553f100", "000000026553f100",
                        "kept.from-P"]
    pg_srv = server(postinod, db)
    code, out = migrate(pg_srv, "maildir:~/Maildir", "pgsql:")
    assert code == 0 and "4 messages copied" in out, out
    code, out = migrate(pg_srv, "pgsql:", mailroot.mbox_spec)
    assert code == 0 and "4 messages copied" in out, out
    spool = mailroot.read_mbox(USER)
    code, out = migrate(pg_srv, "pgsql:", mailroot.mbox_spec)
    assert code == 0 and "4 messages copied" in out, out
    assert mailroot.read_mbox(USER) == spool
    assert spool.count(b"X-UIDL") == 4 and b"its-own" not in spool
    # What a client sees from the mbox: the same UIDLs, each message with
    # "X-UIDL: <its UIDL>" first and otherwise as before.
    want = [b"\n".join([b"X-UIDL: " + u.encode()] + [
        ln for ln in b.split(b"\n") if not ln.startswith(b"X-UIDL:")])
        for u, b in zip(seen, bodies)]
    mb = postinod(mailbox=mailroot.mbox_spec)
    assert uidl_list(mb) == (seen, want)
    added = [len("X-UIDL: %s\r\n" % u) for u in seen]
    added[1] -= len("X-UIDL: its-own\r\n")
    assert uidl_sizes(mb) == [s + a for s, a in zip(sizes, added)]
    mb.stop()
    code, out = migrate(pg_srv, mailroot.mbox_spec, "maildir:~/Maildir2")
    assert code == 0 and "4 messages copied" in out, out
    # A Maildir orders kept names by their leading number, not as before.
    back = postinod(mailbox="maildir:~/Maildir2")
    uidls, got = uidl_list(back)
    assert dict(zip(uidls, got)) == dict(zip(seen, want))


def test_migration_of_an_mbox_keeps_its_uidls(db, mailroot, postinod):
    mailroot.write_mbox(USER, b"".join(
        b"From a@b Mon Jan  1 00:00:0%d 2024\nSubject: %d\n\nbody\n\n" % (i, i)
        for i in range(3)))
    mb = postinod(mailbox=mailroot.mbox_spec)
    seen, bodies = uidl_list(mb)
    mb.stop()
    pg_srv = server(postinod, db)
    code, out = migrate(pg_srv, mailroot.mbox_spec, "pgsql:")
    assert code == 0 and "3 messages copied" in out, out
    assert uidl_list(pg_srv) == (seen, bodies)


def test_migration_keeps_dovecot_uidls(pg, mailroot, postinod, dovecot):
    """A site moved from Dovecot (test_adopt.py) and then onto PostgreSQL:
    the UIDLs Dovecot gave still hold."""
    from test_adopt import message, uidls_by_content
    from test_client import USER as DUSER, PASSWORD as DPASS
    load_schema(pg)
    d = dovecot()
    for i in range(4):
        d.deliver(message(i))
    d.start()
    before, order = uidls_by_content("127.0.0.1", d.port, DUSER, DPASS)
    os.killpg(d.proc.pid, signal.SIGTERM)
    d.proc.wait(15)
    with open(mailroot.passwd_file, "a") as f:
        f.write("%s:%s::::%s::\n" % (DUSER, make_hash(DPASS),
                                     os.path.join(d.home, DUSER)))
    srv = server(postinod, pg, pop3_uidl_format="%08Xu%08Xv")
    r = subprocess.run([MIGRATE, "-c", srv.conf, "-d", DUSER,
                        "maildir:~/Maildir", "pgsql:"],
                       capture_output=True, timeout=120)
    assert r.returncode == 0, r.stderr
    after, order_after = uidls_by_content(srv.host, srv.port, DUSER, DPASS)
    assert after == before and order_after == order
    drop_schema(pg)


def test_a_slow_query_does_not_block_other_sessions(db, mailroot, postinod):
    """alice's UPDATE takes 4 s (a trigger sleeps); bob, in the same mail
    worker, is served meanwhile: the worker's queries wait in its event
    loop, not in a blocking call."""
    mailroot.add_user("bob", PASS)
    insert(db, USER, b"Subject: a\n\na\n")
    insert(db, "bob", b"Subject: b\n\nb\n")
    db.psql("CREATE FUNCTION postino_test_slow() RETURNS trigger AS "
            "$$ BEGIN PERFORM pg_sleep(4); RETURN OLD; END $$ "
            "LANGUAGE plpgsql; CREATE TRIGGER postino_test_slow BEFORE "
            "DELETE ON postino_message FOR EACH ROW EXECUTE FUNCTION "
            "postino_test_slow()")
    try:
        srv = server(postinod, db, mail_workers=1)
        bob = srv.raw()
        bob.expect(b"+OK")
        assert bob.login("bob", PASS).startswith(b"+OK Logged in")
        alice = login_raw(srv)
        assert alice.cmd(b"DELE 1").startswith(b"+OK")
        alice.send(b"QUIT\r\n")
        time.sleep(0.5)
        t0 = time.monotonic()
        assert bob.cmd(b"STAT").startswith(b"+OK 1 ")
        bob.send(b"RETR 1\r\n")
        assert bob.line().startswith(b"+OK")
        assert bob.raw_until_dot() == b"Subject: b\r\n\r\nb\r\n.\r\n"
        assert time.monotonic() - t0 < 2
        assert alice.line() == b"+OK Bye, 1 deleted, 0 left."
        assert rows(db) == []
        assert bob.cmd(b"QUIT").startswith(b"+OK")
    finally:
        db.psql("DROP FUNCTION postino_test_slow() CASCADE")


def postmaster_pid(pg):
    with open(os.path.join(pg.data, "postmaster.pid")) as f:
        return int(f.readline())


def test_a_database_that_does_not_answer_connects_blocks_no_one(
        db, mailroot, postinod):
    """The postmaster stopped (SIGSTOP): the kernel still completes the TCP
    handshake, nothing answers the startup packet. alice's login needs a
    new connection and waits for it in the mail worker's loop; bob, in
    the same worker on the connection his session holds, is served
    meanwhile; alice gets [SYS/TEMP] in a bounded time."""
    mailroot.add_user("bob", PASS)
    insert(db, "bob", b"Subject: b\n\nb\n")
    srv = server(postinod, db, mail_workers=1)
    bob = srv.raw()
    bob.expect(b"+OK")
    assert bob.login("bob", PASS).startswith(b"+OK Logged in")
    pid = postmaster_pid(db)
    os.kill(pid, signal.SIGSTOP)
    try:
        alice = srv.raw(timeout=30)
        alice.expect(b"+OK")
        t_alice = time.monotonic()
        alice.send(b"USER alice\r\nPASS secret\r\n")
        assert alice.line().startswith(b"+OK")
        time.sleep(1)
        t0 = time.monotonic()
        assert bob.cmd(b"STAT").startswith(b"+OK 1 ")
        bob.send(b"RETR 1\r\n")
        assert bob.line().startswith(b"+OK")
        assert bob.raw_until_dot() == b"Subject: b\r\n\r\nb\r\n.\r\n"
        assert time.monotonic() - t0 < 2
        assert alice.line().startswith(b"-ERR [SYS/TEMP]")
        assert time.monotonic() - t_alice < 20
        alice.close()
    finally:
        os.kill(pid, signal.SIGCONT)
    assert bob.cmd(b"QUIT").startswith(b"+OK")
    wait_for(lambda: _try_login(srv), seconds=30)


def test_a_query_the_database_never_answers_ends_only_its_session(
        db, mailroot, postinod):
    """bob's own backend stopped (SIGSTOP) after his login: the block his
    RETR asks for never comes. After the query timeout (35 s) his session
    is cut (its +OK is out) and its connection given up; alice, in the
    same worker, is served meanwhile. It used to wait for TCP to give up,
    which on loopback is never."""
    mailroot.add_user("bob", PASS)
    insert(db, "bob", b"Subject: b\n\n" + b"x" * 1000 + b"\n")
    insert(db, USER, b"Subject: a\n\na\n")
    srv = server(postinod, db, mail_workers=1)
    bob = srv.raw(timeout=90)
    bob.expect(b"+OK")
    assert bob.login("bob", PASS).startswith(b"+OK Logged in")
    # The session's connection is the one holding its advisory lock.
    backend = int(db.psql("SELECT pid FROM pg_locks WHERE locktype = "
                          "'advisory' AND granted").split()[0])
    os.kill(backend, signal.SIGSTOP)
    try:
        t0 = time.monotonic()
        bob.send(b"RETR 1\r\n")
        alice = login_raw(srv)
        assert alice.cmd(b"STAT").startswith(b"+OK 1 ")
        assert alice.cmd(b"QUIT").startswith(b"+OK")
        assert time.monotonic() - t0 < 10
        assert bob.closed_within(75), "the stuck session was never ended"
        assert time.monotonic() - t0 >= 30
    finally:
        os.kill(backend, signal.SIGCONT)
    assert "event=mailstore-timeout" in srv.log()
    wait_for(lambda: _try_login(srv), seconds=30)


def test_kill9_mid_update_loses_nothing_and_leaves_no_lock(db, postinod):
    """QUIT's DELETE is running (a trigger makes it take 3 s) when the
    instance dies: the DELETE is all or nothing, no other message goes,
    and the other instance serves the mailbox once PostgreSQL has let go
    of the dead session."""
    uidls = [insert(db, USER, b"Subject: %d\n\nx\n" % i) for i in range(3)]
    db.psql("CREATE FUNCTION postino_test_slow() RETURNS trigger AS "
            "$$ BEGIN PERFORM pg_sleep(3); RETURN OLD; END $$ "
            "LANGUAGE plpgsql; CREATE TRIGGER postino_test_slow BEFORE "
            "DELETE ON postino_message FOR EACH ROW EXECUTE FUNCTION "
            "postino_test_slow()")
    try:
        a = server(postinod, db)
        b = server(postinod, db)
        r = login_raw(a)
        assert r.cmd(b"DELE 2").startswith(b"+OK")
        r.send(b"QUIT\r\n")
        wait_for(lambda: db.psql(
            "SELECT count(*) FROM pg_stat_activity WHERE query LIKE "
            "'DELETE FROM postino_message%' AND state = 'active'").strip()
            == "1")
        a.kill9()
        wait_for(lambda: _try_login(b), seconds=30)
    finally:
        db.psql("DROP FUNCTION postino_test_slow() CASCADE")
    left = rows(db)
    assert left in ([uidls[0], uidls[2]], uidls), left


def test_database_restart_under_load(db, postinod):
    """Sessions run in a loop while PostgreSQL stops and starts again: a
    login meanwhile gets [SYS/TEMP] (or a session in progress is cut), no
    reply is ever wrong, nothing is lost, and the same postinod serves
    again afterwards."""
    import threading
    msgs = [b"Subject: %d\n\n%s\n" % (i, b"x" * (i * 1000)) for i in range(8)]
    for m in msgs:
        insert(db, USER, m)
    srv = server(postinod, db)
    pid = srv.proc.pid
    seen = {"ok": 0, "temp": 0, "cut": 0, "bad": []}
    stop = threading.Event()

    def one_session():
        r = srv.raw(timeout=20)
        try:
            r.expect(b"+OK")
            reply = r.login(USER, PASS)
            if reply.startswith(b"-ERR [SYS/TEMP]"):
                seen["temp"] += 1
                return
            if not reply.startswith(b"+OK Logged in, 8 messages"):
                seen["bad"].append(reply)
                return
            for i, m in enumerate(msgs, 1):
                r.send(b"RETR %d\r\n" % i)
                if not r.line().startswith(b"+OK"):
                    seen["bad"].append(b"RETR reply")
                    return
                if r.raw_until_dot() != crlf(m) + b".\r\n":
                    seen["bad"].append(b"RETR body")
                    return
            assert r.cmd(b"QUIT").startswith(b"+OK")
            seen["ok"] += 1
        except (EOFError, OSError):
            seen["cut"] += 1
        finally:
            r.close()

    def load():
        deadline = time.monotonic() + 90
        while not stop.is_set() and time.monotonic() < deadline:
            one_session()

    t = threading.Thread(target=load)
    t.start()
    try:
        wait_for(lambda: seen["ok"] >= 3)
        db.stop()
        wait_for(lambda: seen["temp"] + seen["cut"] >= 1, seconds=30)
    finally:
        db.start()
    ok_before = seen["ok"]
    try:
        wait_for(lambda: seen["ok"] >= ok_before + 3, seconds=60)
    finally:
        stop.set()
        t.join(120)
    assert seen["bad"] == [], seen
    assert srv.proc.pid == pid and srv.proc.poll() is None
    assert len(rows(db)) == len(msgs)


def test_lmtp_database_dies_before_commit_is_4xx(db, postinod):
    """The database goes down while the delivery's INSERT runs (a trigger
    holds it for 3 s): LMTP answers 4xx, never 250, and no row is left."""
    db.psql("CREATE FUNCTION postino_test_slow() RETURNS trigger AS "
            "$$ BEGIN PERFORM pg_sleep(3); RETURN NEW; END $$ "
            "LANGUAGE plpgsql; CREATE TRIGGER postino_test_slow BEFORE "
            "INSERT ON postino_message FOR EACH ROW EXECUTE FUNCTION "
            "postino_test_slow()")
    srv = server(postinod, db, lmtp_listen="127.0.0.1:0")
    result = {}

    def send():
        c = smtplib.LMTP("127.0.0.1", lmtp_port(srv), timeout=60)
        try:
            c.sendmail("bob@example.org", [USER], b"Subject: x\r\n\r\nx\r\n")
            result["code"] = 250
        except smtplib.SMTPDataError as e:
            result["code"] = e.smtp_code
        finally:
            c.close()

    import threading
    t = threading.Thread(target=send)
    t.start()
    try:
        wait_for(lambda: db.psql(
            "SELECT count(*) FROM pg_stat_activity WHERE query LIKE "
            "'COPY postino_message%' AND state = 'active'").strip() == "1")
        db.stop()
        t.join(60)
    finally:
        db.start()
    assert 400 <= result.get("code", 0) < 500, result
    assert rows(db) == []
