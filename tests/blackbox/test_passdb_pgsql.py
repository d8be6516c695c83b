"""passdb = pgsql against a real PostgreSQL (pgsql_helpers.py): the same
schemes and mechanisms as the passwd-file, the user name bound as $1 and
never interpolated, and a database outage giving [SYS/TEMP], never [AUTH],
until the database is back, without restarting postinod."""

import base64
import os
import time

import pytest

from conftest import greeted, make_hash
from test_proxyproto import raw_from, v1
from test_sasl import scram_client

FAIL_AUTH = b"-ERR [AUTH]"
USERS = {"alice": ("secret", "SHA512-CRYPT"),
         "bob": ("pencil", "SCRAM-SHA-256"),
         "carol": ("plainpw", "PLAIN"),
         "dave": ("yes", None)}          # {CRYPT}, yescrypt by default


def b64(b):
    return base64.b64encode(b)


def q(s):
    return "'" + s.replace("'", "''") + "'"


@pytest.fixture
def srv(mailroot, postinod, pg):
    pg.psql("DROP TABLE IF EXISTS users; CREATE TABLE users (name text "
            "PRIMARY KEY, password text, uid integer, gid integer, home text,"
            " quota text)")
    rows = []
    for user, (pw, scheme) in USERS.items():
        mailroot.add_user(user, pw)     # makes the home and its Maildir
        rows.append("(%s, %s, NULL, NULL, %s, 'x')" % (
            q(user), q(make_hash(pw, scheme) if scheme != "PLAIN"
                       else "{PLAIN}" + pw), q(mailroot.home(user))))
    # A locked user and one with uid 0: neither logs in.
    rows.append("('locked', '!', NULL, NULL, %s, NULL)" %
                q(mailroot.home("alice")))
    rows.append("('rooty', %s, 0, 0, %s, NULL)" %
                (q(make_hash("secret")), q(mailroot.home("alice"))))
    pg.psql("INSERT INTO users VALUES " + ", ".join(rows))
    # The passwd-file must not be what answers.
    with open(mailroot.passwd_file, "w") as f:
        f.write("")
    return postinod(passdb="pgsql", pgsql_conninfo=pg.conninfo,
                    pgsql_password_file=pg.password_file,
                    password_query="SELECT password, uid, gid, home, quota "
                    "FROM users WHERE name = $1",
                    auth_mechanisms="PLAIN LOGIN SCRAM-SHA-256",
                    auth_workers=2)


def user_pass(srv, user, pw):
    r = greeted(srv)
    r.cmd(b"USER " + user.encode())
    return r.cmd(b"PASS " + pw.encode())


def test_login_ok_wrong_and_unknown(srv):
    for user, (pw, _) in USERS.items():
        assert user_pass(srv, user, pw).startswith(b"+OK"), user
    assert user_pass(srv, "alice", "wrong").startswith(FAIL_AUTH)
    assert user_pass(srv, "nosuchuser", "secret").startswith(FAIL_AUTH)
    assert user_pass(srv, "locked", "x").startswith(FAIL_AUTH)
    assert user_pass(srv, "rooty", "secret").startswith(FAIL_AUTH)
    srv.wait_log('result=ok user="alice" method=USER')
    log = srv.wait_log('result=fail user="nosuchuser"')
    assert "passdb-connected backend=pgsql" in log


def test_each_auth_worker_has_its_own_connection(srv, pg):
    sql = ("SELECT count(*) FROM pg_stat_activity "
           "WHERE application_name = 'postinod-auth'")
    deadline = time.monotonic() + 10
    while pg.psql(sql).strip() != "2":
        assert time.monotonic() < deadline, pg.psql(sql)
        time.sleep(0.1)


def test_starts_while_the_database_is_down(mailroot, postinod, pg):
    mailroot.add_user("erin", "pw")
    pg.psql("CREATE TABLE IF NOT EXISTS users2 (name text, password text, "
            "home text); DELETE FROM users2; INSERT INTO users2 VALUES "
            "('erin', %s, %s)" % (q(make_hash("pw")), q(mailroot.home("erin"))))
    pg.stop()
    try:
        srv = postinod(passdb="pgsql", pgsql_conninfo=pg.conninfo,
                       pgsql_password_file=pg.password_file,
                       password_query="SELECT password, home FROM users2 "
                       "WHERE name = $1")
        assert user_pass(srv, "erin", "pw").startswith(b"-ERR [SYS/TEMP]")
    finally:
        pg.start()
    deadline = time.monotonic() + 20
    while not user_pass(srv, "erin", "pw").startswith(b"+OK"):
        assert time.monotonic() < deadline, "no recovery in 20 s"
        time.sleep(0.2)


def test_login_opens_the_mailbox_from_the_home_column(srv, mailroot):
    mailroot.deliver_maildir("alice", b"Subject: hi\r\n\r\nbody\r\n")
    p = srv.login("alice", "secret")
    assert p.stat()[0] == 1
    p.quit()


def test_sasl_plain_and_scram(srv):
    r = greeted(srv)
    assert r.cmd(b"AUTH PLAIN " + b64(b"\0alice\0secret")).startswith(b"+OK")
    r = greeted(srv)
    assert r.cmd(b"AUTH PLAIN " + b64(b"\0alice\0nope")).startswith(
        FAIL_AUTH)
    r = greeted(srv)
    assert scram_client(r, "bob", "pencil").startswith(b"+OK")
    r = greeted(srv)
    assert scram_client(r, "carol", "plainpw").startswith(b"+OK")
    r = greeted(srv)
    assert scram_client(r, "bob", "wrong").startswith(b"-ERR")
    r = greeted(srv)
    # A crypt(3) hash cannot answer SCRAM.
    assert scram_client(r, "alice", "secret").startswith(b"-ERR")


@pytest.mark.parametrize("name", [
    "alice'--", "x'OR'1'='1", "alice'||'", "%", "_lice", "alice\\",
    "alice;DROP", "a\"b", "'); DROP TABLE users; --",
])
def test_sql_injection_in_the_user_name_is_inert(srv, pg, name):
    before = pg.psql("SELECT count(*) FROM users").strip()
    r = greeted(srv)
    reply = r.cmd(b"USER " + name.encode())
    if reply.startswith(b"+OK"):
        reply = r.cmd(b"PASS secret")
    assert reply.startswith(b"-ERR")
    assert not reply.startswith(b"-ERR [SYS/TEMP]")
    assert pg.psql("SELECT count(*) FROM users").strip() == before
    assert user_pass(srv, "alice", "secret").startswith(b"+OK")


def test_outage_is_sys_temp_and_recovers_without_restart(srv, pg):
    assert user_pass(srv, "alice", "secret").startswith(b"+OK")
    pg.stop()
    try:
        for user, pw in (("alice", "secret"), ("alice", "wrong"),
                         ("nosuchuser", "x")):
            reply = user_pass(srv, user, pw)
            assert reply.startswith(b"-ERR [SYS/TEMP]"), reply
        r = greeted(srv)
        assert r.cmd(b"AUTH PLAIN " + b64(b"\0alice\0secret")).startswith(
            b"-ERR [SYS/TEMP]")
        r = greeted(srv)
        assert scram_client(r, "bob", "pencil").startswith(b"-ERR [SYS/TEMP]")
        srv.wait_log("result=tempfail")
        assert "event=passdb-unavailable backend=pgsql" in srv.log()
    finally:
        pg.start()
    deadline = time.monotonic() + 20
    while True:
        reply = user_pass(srv, "alice", "secret")
        if reply.startswith(b"+OK"):
            break
        assert reply.startswith(b"-ERR [SYS/TEMP]"), reply
        assert time.monotonic() < deadline, "no recovery in 20 s"
        time.sleep(0.2)
    # Every auth worker reconnects (requests from several networks).
    for _ in range(6):
        assert user_pass(srv, "alice", "secret").startswith(b"+OK")
    assert user_pass(srv, "alice", "wrong").startswith(FAIL_AUTH)


def test_bad_query_is_sys_temp_not_auth(mailroot, postinod, pg):
    srv = postinod(passdb="pgsql", pgsql_conninfo=pg.conninfo,
                   pgsql_password_file=pg.password_file,
                   password_query="SELECT pw FROM nosuchtable WHERE n = $1")
    assert user_pass(srv, "alice", "secret").startswith(b"-ERR [SYS/TEMP]")
    srv.wait_log("event=passdb-query-failed backend=pgsql")


@pytest.mark.parametrize("conf,why", [
    ({"pgsql_conninfo": ""}, "needs pgsql_conninfo"),
    ({"pgsql_conninfo": "host=127.0.0.1 password=x"}, "no password="),
    ({"pgsql_conninfo": "host=127.0.0.1 nosuchkey=1"}, "pgsql_conninfo"),
    ({"password_query": "SELECT password FROM users"}, "no $1"),
    ({"passdb": "ldap"}, "expected passwd-file or pgsql"),
])
def test_bad_pgsql_config_stops_startup(mailroot, postinod, conf, why):
    cfg = dict(passdb="pgsql", pgsql_conninfo="host=127.0.0.1 dbname=x")
    cfg.update(conf)
    srv = postinod(start=False, **cfg)
    with pytest.raises(AssertionError) as e:
        srv.start(timeout=10)
    assert why in str(e.value)


def test_unknown_user_costs_a_hash_like_a_wrong_password(mailroot, postinod,
                                                          pg, srv):
    """Each attempt from its own network (a PROXY header), so no penalty
    grows; attempts interleaved, medians compared. Without the dummy hash
    an unknown user would answer in a few percent of a yescrypt check."""
    fast = postinod(listen=["127.0.0.1:0 proxy"],
                    proxy_trusted_networks="127.0.0.1",
                    auth_allow_cleartext=True, auth_fail_delay_ms=0,
                    passdb="pgsql", pgsql_conninfo=pg.conninfo,
                    pgsql_password_file=pg.password_file)
    port = int(fast.addrs[0].rpartition(":")[2])
    times = {"wrong": [], "unknown": []}
    for i in range(24):
        kind = "wrong" if i % 2 == 0 else "unknown"
        r = raw_from(port)
        r.send(v1(src="10.%d.%d.1" % (i // 200 + 1, i % 200)))
        r.expect(b"+OK")
        r.cmd(b"USER " + (b"dave" if kind == "wrong" else b"nobody%d" % i))
        t = time.monotonic()
        assert r.cmd(b"PASS bad").startswith(FAIL_AUTH)
        times[kind].append(time.monotonic() - t)
        r.close()
    # The first check of a worker may precede its learning the method.
    wrong = sorted(times["wrong"][2:])
    unknown = sorted(times["unknown"][2:])
    mw, mu = wrong[len(wrong) // 2], unknown[len(unknown) // 2]
    assert mu > 0.4 * mw and mw > 0.4 * mu, (wrong, unknown)


def test_open_password_file_is_warned_about(srv, mailroot, postinod, pg):
    loose = mailroot.path + "/pgsql-password-loose"
    with open(pg.password_file) as f, open(loose, "w") as g:
        g.write(f.read())
    os.chmod(loose, 0o644)
    srv2 = postinod(passdb="pgsql", pgsql_conninfo=pg.conninfo,
                    pgsql_password_file=loose)
    assert user_pass(srv2, "alice", "secret").startswith(b"+OK")
    srv2.wait_log("event=pgsql-password-file-open")
    assert "mode=0644: make it 0600" in srv2.log()


def test_postino_deliver_looks_users_up_in_pgsql(srv, mailroot, pg):
    """postino-deliver takes users from the configured passdb: with the
    passwd-file empty, a pgsql user gets the message, an unknown one is
    EX_NOUSER and a database outage EX_TEMPFAIL, never EX_NOUSER."""
    from test_deliver import run, EX_OK, EX_NOUSER, EX_TEMPFAIL
    rc, err = run(srv.conf, ["-d", "alice"])
    assert (rc, err) == (EX_OK, "")
    ((_, data),) = mailroot.maildir_files("alice").values()
    assert data.endswith(b"Subject: x\n\nbody\n")
    rc, err = run(srv.conf, ["-d", "nosuchuser"])
    assert rc == EX_NOUSER and err.count("\n") == 1, err
    rc, err = run(srv.conf, ["-d", "locked"])
    assert rc == EX_NOUSER, err
    pg.stop()
    try:
        rc, err = run(srv.conf, ["-d", "bob"])
        assert rc == EX_TEMPFAIL and err.count("\n") == 1, err
        assert err.startswith("postino-deliver: bob: ")
    finally:
        pg.start()
    assert mailroot.maildir_files("bob") == {}
    assert run(srv.conf, ["-d", "bob"])[0] == EX_OK
