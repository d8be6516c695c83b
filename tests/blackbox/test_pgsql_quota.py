"""Per-user delivery quotas with passdb = pgsql (pgsql_helpers.py): the
password_query's optional quota_bytes / quota_messages columns are what
the passwd-file's extra field is (test_lmtp.py's quota tests): NULL is the
configured default, 0 no quota, a value the passwd-file would refuse makes
that user's lookups fail temporarily (451 4.3.0, [SYS/TEMP]), never
unlimited."""

import pytest

from conftest import make_hash
from test_lmtp import MSG, deliver_one, raw, stored

QUERY = ("SELECT password, home, quota_bytes, quota_messages FROM qusers "
         "WHERE name = $1")


def q(s):
    return "'" + s.replace("'", "''") + "'"


@pytest.fixture
def qdb(mailroot, pg):
    """alice, bob, carol in a users table with text quota columns (text,
    so the tests can put in what a careless DBA could); the passwd-file
    empty, so PostgreSQL alone answers."""
    pg.psql("DROP TABLE IF EXISTS qusers; CREATE TABLE qusers (name text "
            "PRIMARY KEY, password text, home text, quota_bytes text, "
            "quota_messages text)")
    rows = []
    for user in ("alice", "bob", "carol"):
        mailroot.add_user(user, "secret")
        rows.append("(%s, %s, %s, NULL, NULL)" % (
            q(user), q(make_hash("secret")), q(mailroot.home(user))))
    pg.psql("INSERT INTO qusers VALUES " + ", ".join(rows))
    with open(mailroot.passwd_file, "w") as f:
        f.write("")
    return mailroot


def set_quota(pg, user, column, value):
    v = "NULL" if value is None else q(value)
    pg.psql("UPDATE qusers SET %s = %s WHERE name = %s" % (column, v, q(user)))


def start(postinod, pg, **kw):
    return postinod(passdb="pgsql", pgsql_conninfo=pg.conninfo,
                    pgsql_password_file=pg.password_file,
                    password_query=QUERY, lmtp_listen="127.0.0.1:0", **kw)


def rcpt(srv, user):
    r = raw(srv, timeout=30)
    r.start(rcpts=())
    r.send(b"RCPT TO:<" + user + b">\r\n")
    code, lines = r.reply()
    r.close()
    return code, lines[0]


@pytest.mark.parametrize("temporary", [False, True])
def test_quota_messages_column(qdb, pg, postinod, temporary):
    """alice's quota_messages=2 stops the third delivery (552 5.2.2, or
    452 4.2.2 with lmtp_quota_temporary), at RCPT; carol's 0 is no quota
    against a default of 1; bob's NULL is that default."""
    set_quota(pg, "alice", "quota_messages", "2")
    set_quota(pg, "carol", "quota_messages", "0")
    srv = start(postinod, pg, lmtp_quota_messages=1,
                lmtp_quota_temporary=temporary)
    want = (452, b"4.2.2") if temporary else (552, b"5.2.2")
    for _ in range(2):
        assert deliver_one(srv)[0] == 250
        assert deliver_one(srv, rcpt=b"<carol>")[0] == 250
    code, line = rcpt(srv, b"alice")
    assert code == want[0] and want[1] in line, line
    assert deliver_one(srv, rcpt=b"<bob>")[0] == 250
    code, line = rcpt(srv, b"bob")                 # NULL: the default, 1
    assert code == want[0] and want[1] in line, line
    assert deliver_one(srv, rcpt=b"<carol>")[0] == 250
    assert len(stored(qdb, "alice")) == 2
    assert len(stored(qdb, "bob")) == 1
    assert len(stored(qdb, "carol")) == 3


def test_quota_bytes_column_checked_at_data(qdb, pg, postinod):
    """quota_bytes from the column, with no lmtp_quota_bytes: a message
    that would go over is refused at DATA, a smaller one still fits."""
    set_quota(pg, "alice", "quota_bytes", str(len(MSG) * 2 + 200))
    srv = start(postinod, pg)
    assert deliver_one(srv)[0] == 250
    code, line = deliver_one(srv, body=MSG + b"x" * len(MSG) + b"\r\n")
    assert code == 552 and b"5.2.2" in line
    assert deliver_one(srv)[0] == 250
    assert deliver_one(srv)[0] == 552
    for _ in range(3):
        assert deliver_one(srv, rcpt=b"<bob>")[0] == 250
    assert len(stored(qdb, "alice")) == 2


@pytest.mark.parametrize("column,value", [
    ("quota_bytes", "100M"), ("quota_bytes", ""), ("quota_messages", "-1"),
    ("quota_messages", "10000001"), ("quota_bytes", " 1"),
    ("quota_bytes", "99999999999999999999999"), ("quota_messages", "1.0"),
    ("quota_bytes", "0" * 20 + "1"),
])
def test_bad_quota_column_is_a_temporary_failure(qdb, pg, postinod, column,
                                                 value):
    """As the passwd-file's extra field: 451 4.3.0 at RCPT (the MTA
    retries), [SYS/TEMP] at login, a log line naming the user and why;
    other users unaffected."""
    set_quota(pg, "alice", column, value)
    srv = start(postinod, pg)
    code, line = rcpt(srv, b"alice")
    assert code == 451 and b"4.3.0" in line, line
    assert deliver_one(srv, rcpt=b"<bob>")[0] == 250
    log = srv.wait_log('event=passdb-bad-row backend=pgsql user="alice"')
    assert "lookup fails temporarily" in log
    assert stored(qdb, "alice") == {}
    p = srv.raw()
    p.expect(b"+OK")
    p.cmd(b"USER alice")
    assert p.cmd(b"PASS secret").startswith(b"-ERR [SYS/TEMP]")
    assert srv.login("bob", "secret").stat()[0] == 1


def test_integer_columns_and_postino_deliver(qdb, pg, postinod):
    """Real integer columns (bigint, integer) read the same; postino-deliver
    looks the quota up in PostgreSQL too (EX_CANTCREAT when full)."""
    from test_deliver import run, EX_OK, EX_CANTCREAT
    pg.psql("ALTER TABLE qusers ALTER quota_bytes TYPE bigint USING "
            "quota_bytes::bigint, ALTER quota_messages TYPE integer USING "
            "quota_messages::integer; UPDATE qusers SET quota_messages = 1 "
            "WHERE name = 'alice'")
    srv = start(postinod, pg)
    assert run(srv.conf, ["-d", "alice"])[0] == EX_OK
    rc, err = run(srv.conf, ["-d", "alice"])
    assert rc == EX_CANTCREAT, err
    assert run(srv.conf, ["-d", "bob"])[0] == EX_OK
    assert run(srv.conf, ["-d", "bob"])[0] == EX_OK
    assert len(stored(qdb, "alice")) == 1


def test_quota_column_with_the_pgsql_store(qdb, pg, postinod):
    """Issue 15's whole deployment: users and mail in PostgreSQL. The
    deliver worker counts alice's rows against her column's quota."""
    import stores
    st = stores.PgsqlStore(pg)
    try:
        set_quota(pg, "alice", "quota_messages", "2")
        srv = start(postinod, pg, mailbox=st.config["mailbox"])
        assert deliver_one(srv)[0] == 250
        assert deliver_one(srv)[0] == 250
        code, line = rcpt(srv, b"alice")
        assert code == 552 and b"5.2.2" in line, line
        for _ in range(3):
            assert deliver_one(srv, rcpt=b"<bob>")[0] == 250
        assert len(st.messages("alice")) == 2
        assert len(st.messages("bob")) == 3
    finally:
        st.cleanup()
