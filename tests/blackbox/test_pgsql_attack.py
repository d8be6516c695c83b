"""passdb = pgsql as an attacker sees it (issue 15's hostile review): user
names at the length bound and with octets a UTF-8 database cannot hold,
password_query results of the wrong shape. Whatever a client sends is a
wrong login ([AUTH], a hash paid), never [SYS/TEMP], never a crash; what
the database returns is checked as hostile too."""

import pytest

from conftest import make_hash
from test_passdb_pgsql import FAIL_AUTH, greeted, q, user_pass

LONG = "u" * 255          # AUTH_USER_MAX


@pytest.fixture
def adb(mailroot, pg):
    pg.psql("DROP TABLE IF EXISTS ausers; CREATE TABLE ausers (name text, "
            "password text, home text)")
    mailroot.add_user("alice", "secret")
    home = q(mailroot.home("alice"))
    rows = [("alice", q(make_hash("secret"))),
            (LONG, q(make_hash("secret"))),
            ("twice", q(make_hash("secret"))),
            ("twice", q(make_hash("secret"))),
            ("nullpw", "NULL"),
            ("emptypw", q(""))]
    pg.psql("INSERT INTO ausers VALUES " + ", ".join(
        "(%s, %s, %s)" % (q(n), pw, home) for n, pw in rows))
    with open(mailroot.passwd_file, "w") as f:
        f.write("")
    return mailroot


def start(postinod, pg, query="SELECT password, home FROM ausers "
          "WHERE name = $1", **kw):
    return postinod(passdb="pgsql", pgsql_conninfo=pg.conninfo,
                    pgsql_password_file=pg.password_file,
                    password_query=query, auth_fail_delay_ms=0, **kw)


def raw_user_pass(srv, user, pw=b"secret"):
    r = greeted(srv)
    reply = r.cmd(b"USER " + user)
    if reply.startswith(b"+OK"):
        reply = r.cmd(b"PASS " + pw)
    r.close()
    return reply


def test_user_name_at_and_over_the_length_bound(adb, pg, postinod):
    srv = start(postinod, pg)
    assert user_pass(srv, LONG, "secret").startswith(b"+OK")
    reply = raw_user_pass(srv, LONG.encode() + b"u")
    assert reply.startswith(b"-ERR") and not reply.startswith(
        b"-ERR [SYS/TEMP]"), reply


@pytest.mark.parametrize("name", [
    b"\xff", b"al\xc3ice", b"\xc0\xaf", b"\xed\xa0\x80", b"a\xf8\x88\x80\x80",
    b"\xe9l\xe8ve",
])
def test_octets_no_utf8_database_holds_are_a_wrong_login(adb, pg, postinod,
                                                         name):
    """PostgreSQL refuses a parameter that is not valid UTF-8 (SQLSTATE
    22021) before looking at the table: no such name can exist, so it is
    a failed login like any unknown user, not an outage, and the
    connection to the database survives it."""
    srv = start(postinod, pg, auth_workers=1)
    reply = raw_user_pass(srv, name)
    assert reply.startswith(FAIL_AUTH), reply
    srv.wait_log("result=fail")
    assert "passdb-query-failed" not in srv.log()
    assert user_pass(srv, "alice", "secret").startswith(b"+OK")
    assert srv.log().count("event=passdb-connected") == 1


def test_query_results_of_the_wrong_shape(adb, pg, postinod):
    """0 rows, 2 rows (logged, refused), a NULL or empty password: a
    failed login each; never [SYS/TEMP], never a crash."""
    srv = start(postinod, pg)
    for user in ("nobody", "twice", "nullpw", "emptypw"):
        assert user_pass(srv, user, "secret").startswith(FAIL_AUTH), user
        assert user_pass(srv, user, "").startswith(b"-ERR"), user
    srv.wait_log('event=passdb-ambiguous backend=pgsql user="twice"')
    assert user_pass(srv, "alice", "secret").startswith(b"+OK")


@pytest.mark.parametrize("query", [
    # extra columns, an odd order, a duplicated name: read by name
    "SELECT 1 AS x, home, password, 'y' AS uidx, NULL AS quota "
    "FROM ausers WHERE name = $1",
    "SELECT password, home, password AS password FROM ausers "
    "WHERE name = $1",
])
def test_extra_and_reordered_columns(adb, pg, postinod, query):
    srv = start(postinod, pg, query=query)
    assert user_pass(srv, "alice", "secret").startswith(b"+OK")
    assert user_pass(srv, "alice", "wrong").startswith(FAIL_AUTH)


def test_unusable_column_values_are_refused(adb, pg, postinod):
    """A home that is not absolute, a uid that is no number: the row is
    refused (logged), the user cannot log in, others can."""
    srv = start(postinod, pg, query="SELECT password, CASE WHEN name = "
                "'alice' THEN home ELSE 'relative/x' END AS home, CASE WHEN "
                "name = 'twice' THEN '-1' ELSE NULL END AS uid FROM ausers "
                "WHERE name = $1")
    assert user_pass(srv, "alice", "secret").startswith(b"+OK")
    assert user_pass(srv, LONG, "secret").startswith(FAIL_AUTH)
    srv.wait_log("event=passdb-bad-row")


def test_mailbox_name_at_the_length_bound_in_the_pgsql_store(mailroot, pg,
                                                             postinod):
    """A 255-octet user (AUTH_USER_MAX) is a 255-octet mailbox key: LMTP
    delivers into it, POP3 reads it back, holds its lock (a second
    session is [IN-USE]) and deletes from it; its neighbour one octet
    shorter is another mailbox."""
    import stores
    from test_lmtp import deliver_one
    st = stores.PgsqlStore(pg)
    try:
        mailroot.add_user(LONG, "secret")
        mailroot.add_user(LONG[:-1], "secret")
        srv = postinod(lmtp_listen="127.0.0.1:0", **st.config)
        assert deliver_one(srv, rcpt=b"<" + LONG.encode() + b">")[0] == 250
        assert len(st.messages(LONG)) == 1 and st.messages(LONG[:-1]) == []
        p = srv.login(LONG, "secret")
        assert p.stat()[0] == 1
        assert user_pass(srv, LONG, "secret").startswith(b"-ERR [IN-USE]")
        p.dele(1)
        p.quit()
        assert st.messages(LONG) == []
    finally:
        st.cleanup()


def test_a_database_that_stops_answering_holds_no_login(adb, pg, postinod):
    """The auth worker's backend stops (SIGSTOP: a frozen or vanished
    database host, which TCP waits out for many minutes; on loopback,
    forever). statement_timeout is the server's and never fires. The
    login gets [SYS/TEMP] in bounded time, the dead connection is dropped,
    and the next login is served on a new one. It used to hang every
    login of that worker until the client gave up."""
    import os
    import signal
    import time
    srv = start(postinod, pg, auth_workers=1)
    assert user_pass(srv, "alice", "secret").startswith(b"+OK")
    backend = int(pg.psql("SELECT pid FROM pg_stat_activity WHERE "
                          "application_name = 'postinod-auth'").split()[0])
    os.kill(backend, signal.SIGSTOP)
    try:
        r = greeted(srv)
        r.sock.settimeout(60)
        t = time.monotonic()
        assert r.cmd(b"USER alice").startswith(b"+OK")
        assert r.cmd(b"PASS secret").startswith(b"-ERR [SYS/TEMP]")
        assert time.monotonic() - t < 30
        srv.wait_log("event=passdb-query-timeout backend=pgsql")
        deadline = time.monotonic() + 30
        while not user_pass(srv, "alice", "secret").startswith(b"+OK"):
            assert time.monotonic() < deadline, "no new connection"
            time.sleep(0.2)
    finally:
        os.kill(backend, signal.SIGCONT)


def test_a_postmaster_that_stops_answering_holds_no_login(adb, pg, postinod):
    """The postmaster stopped (SIGSTOP): the kernel completes the TCP
    handshake and nothing answers the startup packet. A login that needs
    a new connection gets [SYS/TEMP] within connect_timeout's bound."""
    import os
    import signal
    import time
    with open(os.path.join(pg.data, "postmaster.pid")) as f:
        pid = int(f.readline())
    srv = start(postinod, pg, auth_workers=1)
    assert user_pass(srv, "alice", "secret").startswith(b"+OK")
    pg.psql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE "
            "application_name = 'postinod-auth'")
    os.kill(pid, signal.SIGSTOP)
    try:
        r = greeted(srv)
        r.sock.settimeout(60)
        t = time.monotonic()
        assert r.cmd(b"USER alice").startswith(b"+OK")
        assert r.cmd(b"PASS secret").startswith(b"-ERR [SYS/TEMP]")
        assert time.monotonic() - t < 30
    finally:
        os.kill(pid, signal.SIGCONT)
    deadline = time.monotonic() + 30
    while not user_pass(srv, "alice", "secret").startswith(b"+OK"):
        assert time.monotonic() < deadline, "no recovery"
        time.sleep(0.2)
