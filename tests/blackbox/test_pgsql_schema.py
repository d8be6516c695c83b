"""mailbox = pgsql: the schema's versions in a real PostgreSQL
(pgsql_helpers.py): an older database is upgraded by postinod (once, with
two instances starting together) keeping every message and UIDL; a newer
one is refused; the shipped SQL gives what postinod creates; the check
waits in the mail worker's loop, never blocking its other sessions; and
login_delay, kept in the database, holds across instances.
Every socket has a timeout and every wait a bound; loopback only."""
import os
import signal
import smtplib
import subprocess
import threading
import time

from test_lmtp import lmtp_port
from test_pgsql_store import db  # noqa: F401 (fixture)
from test_pgsql_store import (PASS, USER, drop_schema, insert, load_schema,
                              rows, server, wait_for)

HERE = os.path.dirname(os.path.abspath(__file__))
STORE = os.path.join(HERE, "..", "..", "src", "store")
V1 = os.path.join(HERE, "data", "pgsql_schema_v1.sql")
SCHEMA_KEY = "8101551090716655943"      # store_pgsql.c: PG_SCHEMA_KEY
# login_delay: long enough for a refused login on a loaded machine.
DELAY = 5


def load(pg, *files):
    drop_schema(pg)
    for name in files:
        with open(name) as f:
            pg.psql(f.read())


def version(pg):
    return pg.psql("SELECT version FROM postino_schema_version").strip()


def dump(pg):
    """The postino objects as pg_dump sees them, its session keys left out."""
    r = pg._run(["pg_dump", "--schema-only", "--no-owner", "-h", pg.sock,
                 "-p", str(pg.port), "-U", "postgres", "-t", "postino_*",
                 "postgres"])
    return [ln for ln in r.stdout.decode().splitlines()
            if not ln.startswith(("\\restrict", "\\unrestrict"))]


class Holder:
    """A psql session that keeps a transaction open (and its locks)."""

    def __init__(self, pg, sql):
        argv = [os.path.join(pg.bin, "psql"), "-X", "-q", "-v",
                "ON_ERROR_STOP=1", "-h", pg.sock, "-p", str(pg.port), "-U",
                "postgres", "-d", "postgres"]
        kw = {}
        if pg.user is not None:
            kw = dict(user=pg.user.pw_uid, group=pg.user.pw_gid,
                      extra_groups=[])
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE,
                                     stdout=subprocess.DEVNULL, cwd=pg.top,
                                     **kw)
        self.send("BEGIN;\n" + sql + "\n")

    def send(self, sql):
        self.proc.stdin.write(sql.encode())
        self.proc.stdin.flush()

    def end(self):
        if self.proc.poll() is None:
            self.send("COMMIT;\n")
            self.proc.stdin.close()
            self.proc.wait(timeout=30)


def waiting_backends(pg):
    out = pg.psql("SELECT pid FROM pg_stat_activity WHERE application_name "
                  "= 'postinod-mail' AND wait_event_type = 'Lock'")
    return [int(x) for x in out.split()]


def test_a_v1_database_with_mail_is_upgraded_keeping_every_uidl(
        pg, mailroot, postinod):
    mailroot.add_user(USER, PASS)
    load(pg, V1)
    msgs = [b"Subject: one\n\nfirst\n", b"Subject: two\n\nsecond\n"]
    uidls = [insert(pg, USER, msgs[0]), insert(pg, USER, msgs[1], "kept-1")]
    try:
        srv = server(postinod, pg)
        p = srv.login(USER, PASS)
        assert [u.split()[1].decode() for u in p.uidl()[1]] == uidls
        assert b"\r\n".join(p.retr(2)[1]) == b"Subject: two\r\n\r\nsecond"
        p.quit()
        assert version(pg) == "2"
        assert rows(pg) == uidls
        assert "event=pgsql-schema-upgraded from=1 to=2" in srv.log()
        # The new table is there and used.
        assert pg.psql("SELECT count(*) FROM postino_mailbox").strip() == "0"
    finally:
        drop_schema(pg)


def test_a_delivery_upgrades_a_v1_database_too(pg, mailroot, postinod):
    """The deliver workers check in place (blocking, one delivery at a
    time): the same steps, the same result."""
    mailroot.add_user(USER, PASS)
    load(pg, V1)
    old = insert(pg, USER, b"Subject: old\n\nold\n")
    try:
        srv = server(postinod, pg, lmtp_listen="127.0.0.1:0")
        c = smtplib.LMTP("127.0.0.1", lmtp_port(srv), timeout=20)
        assert c.sendmail("bob@example.org", [USER],
                          b"Subject: new\r\n\r\nnew\r\n") == {}
        c.quit()
        assert version(pg) == "2"
        assert rows(pg)[0] == old and len(rows(pg)) == 2
        assert "event=pgsql-schema-upgraded from=1 to=2" in srv.log()
    finally:
        drop_schema(pg)


def _login(srv, user, out):
    try:
        r = srv.raw(timeout=30)
        r.expect(b"+OK")
        out[user] = r.login(user, PASS)
        r.cmd(b"QUIT")
    except Exception as e:      # noqa: BLE001 (reported by the assert)
        out[user] = repr(e)


def test_two_instances_upgrade_a_v1_database_once(pg, mailroot, postinod):
    """Both instances find version 1 while another holds the schema lock,
    so both wait for it; the first upgrades, the second finds version 2."""
    mailroot.add_user(USER, PASS)
    mailroot.add_user("bob", PASS)
    load(pg, V1)
    insert(pg, USER, b"Subject: a\n\na\n")
    insert(pg, "bob", b"Subject: b\n\nb\n")
    try:
        a = server(postinod, pg)
        b = server(postinod, pg)
        holder = Holder(pg, "SELECT pg_advisory_xact_lock(%s);" % SCHEMA_KEY)
        out = {}
        try:
            threads = [threading.Thread(target=_login, args=(s, u, out))
                       for s, u in ((a, USER), (b, "bob"))]
            for t in threads:
                t.start()
            wait_for(lambda: len(waiting_backends(pg)) == 2, seconds=20)
        finally:
            holder.end()
        for t in threads:
            t.join(40)
        assert out[USER].startswith(b"+OK Logged in, 1 messages"), out
        assert out["bob"].startswith(b"+OK Logged in, 1 messages"), out
        assert version(pg) == "2"
        logs = a.log() + b.log()
        assert logs.count("event=pgsql-schema-upgraded") == 1, logs
        assert pg.psql("SELECT count(*) FROM postino_schema_version"
                       ).strip() == "1"
    finally:
        drop_schema(pg)


def test_refuses_a_newer_schema_and_says_why(pg, mailroot, postinod):
    mailroot.add_user(USER, PASS)
    load_schema(pg)
    pg.psql("UPDATE postino_schema_version SET version = 99")
    try:
        srv = server(postinod, pg)
        r = srv.raw()
        r.expect(b"+OK")
        assert r.login(USER, PASS).startswith(b"-ERR [SYS/TEMP]")
        srv.wait_log("schema version 99 is newer than this postinod knows")
        assert version(pg) == "99"
    finally:
        drop_schema(pg)


def test_the_shipped_sql_is_the_schema_postinod_creates(pg, mailroot,
                                                        postinod):
    mailroot.add_user(USER, PASS)
    drop_schema(pg)
    try:
        srv = server(postinod, pg)
        srv.login(USER, PASS).quit()
        assert "event=pgsql-schema-created version=2" in srv.log()
        created = dump(pg)
        load(pg, os.path.join(STORE, "pgsql_schema.sql"))
        shipped = dump(pg)
        load(pg, V1, os.path.join(STORE, "pgsql_upgrade_2.sql"))
        upgraded = dump(pg)
        assert any("postino_mailbox" in ln for ln in created)
        assert created == shipped
        assert upgraded == shipped
        assert version(pg) == "2"
    finally:
        drop_schema(pg)


def test_the_schema_check_does_not_block_the_worker(db, mailroot, postinod):
    """alice's login is the worker's first: its schema check waits for a
    table lock, and then its backend is stopped (SIGSTOP), so its reply
    never comes. bob, in the same worker, is served meanwhile: the check
    waits in the loop. It used to be a blocking query, which held the
    whole worker until the backend came back."""
    mailroot.add_user("bob", PASS)
    insert(db, "bob", b"Subject: b\n\nb\n")
    srv = server(postinod, db, mail_workers=1)
    holder = Holder(db, "LOCK TABLE postino_schema_version IN ACCESS "
                    "EXCLUSIVE MODE;")
    stopped = None
    try:
        wait_for(lambda: db.psql(
            "SELECT count(*) FROM pg_locks WHERE granted AND mode = "
            "'AccessExclusiveLock' AND relation = "
            "'postino_schema_version'::regclass").strip() == "1")
        alice = srv.raw(timeout=60)
        alice.expect(b"+OK")
        alice.send(b"USER alice\r\nPASS secret\r\n")
        assert alice.line().startswith(b"+OK")
        wait_for(lambda: len(waiting_backends(db)) == 1, seconds=20)
        stopped = waiting_backends(db)[0]
        os.kill(stopped, signal.SIGSTOP)
        holder.end()
        t0 = time.monotonic()
        bob = srv.raw(timeout=10)
        bob.expect(b"+OK")
        assert bob.login("bob", PASS).startswith(b"+OK Logged in, 1 "), \
            "bob waited for alice's schema check"
        assert bob.cmd(b"STAT").startswith(b"+OK 1 ")
        assert bob.cmd(b"QUIT").startswith(b"+OK")
        assert time.monotonic() - t0 < 8
        os.kill(stopped, signal.SIGCONT)
        stopped = None
        reply = alice.line()
        assert reply.startswith(b"+OK Logged in"), reply
        assert alice.cmd(b"QUIT").startswith(b"+OK")
    finally:
        if stopped is not None:
            os.kill(stopped, signal.SIGCONT)
        holder.end()


def test_login_delay_holds_across_instances(db, postinod):
    """RFC 2449 LOGIN-DELAY with pgsql: the last login's time is in the
    database, so a login through another instance is too soon as well."""
    a = server(postinod, db, login_delay=DELAY)
    b = server(postinod, db, login_delay=DELAY)
    r = a.raw()
    r.expect(b"+OK")
    r.send(b"CAPA\r\n")
    r.expect(b"+OK")
    assert b"LOGIN-DELAY %d" % DELAY in r.lines_until_dot()
    assert r.login(USER, PASS).startswith(b"+OK Logged in")
    t0 = time.monotonic()
    assert r.cmd(b"QUIT").startswith(b"+OK")
    r = b.raw()
    r.expect(b"+OK")
    reply = r.login(USER, PASS)
    assert reply.startswith(b"-ERR [LOGIN-DELAY] Wait %d seconds" % DELAY), \
        reply
    assert r.closed_within(2)
    assert time.monotonic() - t0 < DELAY, "too slow to test the delay"
    b.wait_log("event=login-delay")
    # Refused before the lock: nothing is held for the mailbox.
    assert db.psql("SELECT count(*) FROM pg_locks WHERE locktype = "
                   "'advisory'").strip() == "0"
    time.sleep(max(0.0, DELAY + 0.2 - (time.monotonic() - t0)))
    r = b.raw()
    r.expect(b"+OK")
    assert r.login(USER, PASS).startswith(b"+OK Logged in")
    assert r.cmd(b"QUIT").startswith(b"+OK")
    assert db.psql("SELECT count(*) FROM postino_mailbox WHERE mailbox = "
                   "'alice'").strip() == "1"
