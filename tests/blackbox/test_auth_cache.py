"""The password-verification cache (auth_cache_size, auth_cache_ttl;
src/auth/auth_cache.c): a repeated login with the right password skips
the hash, a changed password (passwd-file or PostgreSQL) is never served
from it, and wrong passwords still pay the full hash and the penalty.

Hashes are told apart by the auth worker's CPU time from /proc (a hash
costs it the same CPU however loaded the machine is), never by wall
time; wall time is used only as a lower bound (the penalty)."""

import os
import subprocess
import time

from conftest import POSTINO_PASSWD, Raw, greeted, login_retry

FAIL = b"-ERR [AUTH] Authentication failed."
TICK = os.sysconf("SC_CLK_TCK")


def slow_hash(password, rounds):
    """SHA512-CRYPT at a chosen cost, made by postino-passwd."""
    r = subprocess.run([POSTINO_PASSWD, "-s", "SHA512-CRYPT", "-r",
                        str(rounds)], input=password.encode() + b"\n",
                       capture_output=True, timeout=60, check=True)
    return r.stdout.decode().strip()


def write_passwd(mailroot, users):
    """Replace the passwd-file at once (a new inode: the server re-reads)."""
    tmp = mailroot.passwd_file + ".new"
    with open(tmp, "w") as f:
        for name, secret in users.items():
            f.write("%s:%s::::%s::\n" % (name, secret, mailroot.home(name)))
    os.chmod(tmp, 0o644)
    os.replace(tmp, mailroot.passwd_file)


def auth_cpu(srv):
    """Seconds of CPU the (single) auth worker has used."""
    pids = srv.pids("auth")
    assert len(pids) == 1, pids
    with open("/proc/%d/stat" % pids[0]) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def login_quit(srv, user, password):
    r = login_retry(srv, user, password, allowed=b"-ERR [IN-USE]")
    assert r.cmd(b"QUIT").startswith(b"+OK")
    r.close()


def user_pass(r, user, password):
    assert r.cmd(b"USER " + user.encode()) == b"+OK"
    return r.cmd(b"PASS " + password.encode())


def change_password_after_a_hit(srv, change):
    """alice logs in twice with "old" (the second a hit), change() sets
    "new": "old" is refused at once, before and after "new" is cached."""
    login_quit(srv, "alice", "old")
    login_quit(srv, "alice", "old")     # a hit now
    change()
    for _ in range(2):
        r = greeted(srv)
        assert user_pass(r, "alice", "old") == FAIL
        r.close()
        login_quit(srv, "alice", "new")


def test_second_login_skips_the_hash(mailroot, postinod):
    mailroot.add_user("alice", "x")     # the home and its Maildir
    write_passwd(mailroot, {"alice": slow_hash("secret", 400000)})
    srv = postinod(auth_cache_size=100, auth_workers=1)
    t0 = auth_cpu(srv)
    login_quit(srv, "alice", "secret")
    miss = auth_cpu(srv) - t0
    t1 = auth_cpu(srv)
    for _ in range(5):
        login_quit(srv, "alice", "secret")
    hits = auth_cpu(srv) - t1
    # Without the cache these five cost five hashes, each about `miss`.
    assert miss >= 0.05, miss
    assert hits < miss / 2, (miss, hits)


def test_entry_expires_after_auth_cache_ttl(mailroot, postinod):
    mailroot.add_user("alice", "x")
    write_passwd(mailroot, {"alice": slow_hash("secret", 400000)})
    srv = postinod(auth_cache_size=100, auth_cache_ttl=1, auth_workers=1)
    t0 = auth_cpu(srv)
    login_quit(srv, "alice", "secret")
    miss = auth_cpu(srv) - t0
    time.sleep(2.2)     # the monotonic clock's whole seconds: > 1 s on
    t1 = auth_cpu(srv)
    login_quit(srv, "alice", "secret")
    again = auth_cpu(srv) - t1
    assert miss >= 0.05, miss
    assert again >= miss / 2, (miss, again)


def test_passwd_file_change_refuses_the_old_password_at_once(mailroot,
                                                             postinod):
    mailroot.add_user("alice", "old")
    srv = postinod(auth_cache_size=100, auth_cache_ttl=86400,
                   auth_fail_delay_ms=0)
    change_password_after_a_hit(srv, lambda: write_passwd(
        mailroot, {"alice": slow_hash("new", 5000)}))


def test_pgsql_update_refuses_the_old_password_at_once(mailroot, postinod,
                                                       pg):
    mailroot.add_user("alice", "x")
    pg.psql("DROP TABLE IF EXISTS users; CREATE TABLE users (name text "
            "PRIMARY KEY, password text, uid integer, gid integer, "
            "home text)")
    pg.psql("INSERT INTO users VALUES ('alice', '%s', NULL, NULL, '%s')"
            % (slow_hash("old", 5000), mailroot.home("alice")))
    with open(mailroot.passwd_file, "w") as f:
        f.write("")
    srv = postinod(passdb="pgsql", pgsql_conninfo=pg.conninfo,
                   pgsql_password_file=pg.password_file,
                   password_query="SELECT password, uid, gid, home FROM "
                   "users WHERE name = $1",
                   auth_cache_size=100, auth_fail_delay_ms=0)
    change_password_after_a_hit(srv, lambda: pg.psql(
        "UPDATE users SET password = '%s' WHERE name = 'alice'"
        % slow_hash("new", 5000)))


def tries(srv, user, passwords):
    """USER/PASS each password, three to a connection (the server closes
    after three failures); the replies."""
    out = []
    for i in range(0, len(passwords), 3):
        r = greeted(srv)
        for pw in passwords[i:i + 3]:
            out.append(user_pass(r, user, pw))
        r.close()
    return out


def test_1000_wrong_passwords_for_a_cached_user_each_pay_a_hash(mailroot,
                                                                postinod):
    mailroot.add_user("alice", "Right-horse-7")
    srv = postinod(auth_cache_size=100, auth_workers=1, auth_fail_delay_ms=0)
    login_quit(srv, "alice", "Right-horse-7")
    login_quit(srv, "alice", "Right-horse-7")
    # What a check costs that surely hashes: an unknown user's dummy,
    # alice's own SHA512-CRYPT (the commonest in the file).
    t0 = auth_cpu(srv)
    assert set(tries(srv, "nobody", ["g%d" % i for i in range(99)])) == {FAIL}
    per_hash = (auth_cpu(srv) - t0) / 99
    t1 = auth_cpu(srv)
    replies = tries(srv, "alice", ["Right-horse-%d" % i for i in range(8, 1008)]
                    [:999] + ["right-horse-7"])
    per_wrong = (auth_cpu(srv) - t1) / 1000
    assert len(replies) == 1000 and set(replies) == {FAIL}
    assert per_wrong >= 0.7 * per_hash, (per_wrong, per_hash)
    # The owner's login still works.
    login_quit(srv, "alice", "Right-horse-7")


def test_penalty_still_bites_for_a_cached_user(mailroot, postinod):
    """A network's failures delay its next check, the right password of
    a cached user included: the cache speeds only the hash."""
    mailroot.add_user("alice", "Right-horse-7")
    srv = postinod(auth_cache_size=100, auth_fail_delay_ms=1000)
    login_quit(srv, "alice", "Right-horse-7")
    login_quit(srv, "alice", "Right-horse-7")
    # A wrong guess from the network, and while its check runs the right
    # password from another connection of the same /24.
    a = Raw(srv.host, srv.port, source="127.0.7.1")
    a.expect(b"+OK")
    b = Raw(srv.host, srv.port, source="127.0.7.2")
    b.expect(b"+OK")
    assert a.cmd(b"USER alice") == b"+OK"
    assert b.cmd(b"USER alice") == b"+OK"
    t0 = time.monotonic()
    a.send(b"PASS wrong\r\n")
    time.sleep(0.3)     # so the guess reaches the auth worker first
    b.send(b"PASS Right-horse-7\r\n")
    assert b.line().startswith(b"+OK")
    # Checked no sooner than the failure's 1,000 ms allow (at once, it
    # would have come at about 0.3 s).
    assert time.monotonic() - t0 >= 0.9, time.monotonic() - t0
    assert a.line() == FAIL
    b.cmd(b"QUIT")
    a.close()
    b.close()
