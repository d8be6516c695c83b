"""postino with several accounts (issue 13 finding 5): fetch without an
ACCOUNT (or --all) fetches every configured account, the default account
for list/stat, per-account keep, max-size, max-messages, keep-days,
--rebuild-state, --version and --daemon (a few short cycles, back-off,
LOGIN-DELAY, SIGHUP, SIGTERM). Loopback only; every wait is bounded.
"""

import os
import re
import signal
import subprocess
import time

import clients_helpers as ch
from conftest import REPO
# home is a fixture: imported so pytest finds it here.
from test_client import (POSTINO, PASSWORD, TIMEOUT, FakeServer,  # noqa: F401
                         home, local, many_messages, replay_state,
                         server_snapshot)

USER = ch.USER


def write_config(home, text):
    d = os.path.join(home.path, "config", "postino")
    os.makedirs(d, exist_ok=True)
    p = os.path.join(d, "config")
    with open(p, "w") as f:
        f.write(text)
    return p


def account(name, port, user, maildir, extra=""):
    return ("account %s\n  host 127.0.0.1\n  port %d\n  user %s\n  tls no\n"
            "  password-command echo %s\n  maildir %s\n%s"
            % (name, port, user, PASSWORD, maildir, extra))


def maildir_msgs(path):
    new = os.path.join(path, "new")
    if not os.path.isdir(new):
        return []
    out = []
    for n in sorted(os.listdir(new)):
        with open(os.path.join(new, n), "rb") as f:
            out.append(f.read())
    return out


def two_users(mailroot, postinod, n_alice=3, n_bob=2):
    mailroot.add_user(USER, PASSWORD)
    mailroot.add_user("bob", PASSWORD)
    a = many_messages(n_alice)
    b = [m.replace(b"Subject: message", b"Subject: bob message")
         for m in many_messages(n_bob)]
    for m in a:
        mailroot.deliver_maildir(USER, m)
    for m in b:
        mailroot.deliver_maildir("bob", m)
    return postinod(), a, b


def test_fetch_without_account_fetches_every_account(home, mailroot,
                                                      postinod):
    srv, a, b = two_users(mailroot, postinod)
    ma, mb = (os.path.join(home.path, x) for x in ("MA", "MB"))
    write_config(home, account("a", srv.port, USER, ma) +
                 account("b", srv.port, "bob", mb,
                         "  keep yes\n  default yes\n"))
    cp = home.run("fetch", password=None)
    assert cp.returncode == 0, cp.stderr
    assert sorted(maildir_msgs(ma)) == sorted(local(m) for m in a)
    assert sorted(maildir_msgs(mb)) == sorted(local(m) for m in b)
    # Per-account keep: a's mail is gone from the server, b's is kept.
    assert server_snapshot(srv.host, srv.port)[0] == 0
    assert server_snapshot(srv.host, srv.port, user="bob")[0] == len(b)
    # list/stat without ACCOUNT: the default one.
    cp = home.run("stat", password=None)
    assert cp.returncode == 0, cp.stderr
    assert cp.stdout.decode().startswith("%d messages" % len(b))
    # --all is the same, explicitly; nothing new.
    cp = home.run("fetch", "--all", password=None)
    assert cp.returncode == 0, cp.stderr
    assert len(maildir_msgs(mb)) == len(b)
    # --all with an ACCOUNT is a usage error.
    cp = home.run("fetch", "--all", "a", password=None)
    assert cp.returncode == 1, cp.stderr


def test_one_failing_account_does_not_stop_the_others(home, mailroot,
                                                      postinod):
    srv, a, b = two_users(mailroot, postinod)
    ma, mb = (os.path.join(home.path, x) for x in ("MA", "MB"))
    write_config(home, account("a", 1, USER, ma) +
                 account("b", srv.port, "bob", mb))
    cp = home.run("fetch", password=None)
    assert cp.returncode == 2, cp.stderr        # a: connection refused
    assert sorted(maildir_msgs(mb)) == sorted(local(m) for m in b)


def test_no_accounts_and_no_default_are_usage_errors(home):
    cp = home.run("fetch", "--maildir", home.maildir)
    assert cp.returncode == 1 and b"no accounts" in cp.stderr
    write_config(home, account("a", 1, USER, "/x") +
                 account("b", 1, USER, "/y"))
    cp = home.run("stat")
    assert cp.returncode == 1 and b"no default account" in cp.stderr
    write_config(home, account("a", 1, USER, "/x", "  default yes\n") +
                 account("b", 1, USER, "/y", "  default yes\n"))
    cp = home.run("stat")
    assert cp.returncode == 1 and b"more than one default" in cp.stderr


def test_max_size_and_max_messages(home, mailroot, postinod):
    mailroot.add_user(USER, PASSWORD)
    small = many_messages(5)
    big = [b"Subject: big %d\nMessage-ID: <big%d@test>\n\n" % (i, i) +
           b"x" * 70 + b"\n" * 1 for i in range(2)]
    big = [m + b"y" * 5000 + b"\n" for m in big]
    for m in small[:2] + big[:1] + small[2:] + big[1:]:
        mailroot.deliver_maildir(USER, m)
    srv = postinod()
    md = os.path.join(home.path, "M")
    write_config(home, account("a", srv.port, USER, md,
                               "  max-size 4k\n  max-messages 3\n"))
    cp = home.run("fetch", "a", password=None)
    assert cp.returncode == 0, cp.stderr
    assert len(maildir_msgs(md)) == 3
    assert "2 messages over max-size (4096 octets) left on the server" \
        in cp.stderr.decode()
    cp = home.run("fetch", "a", password=None)
    assert cp.returncode == 0, cp.stderr
    assert sorted(maildir_msgs(md)) == sorted(local(m) for m in small)
    assert server_snapshot(srv.host, srv.port)[0] == 2
    # The option to delete them (on the command line here).
    cp = home.run("fetch", "--delete-oversized", "a", password=None)
    assert cp.returncode == 0, cp.stderr
    assert "deleted on the server unread" in cp.stderr.decode()
    assert server_snapshot(srv.host, srv.port)[0] == 0
    assert len(maildir_msgs(md)) == len(small)


def test_keep_days_deletes_after_first_seen(home, mailroot, postinod):
    mailroot.add_user(USER, PASSWORD)
    msgs = many_messages(3)
    for m in msgs:
        mailroot.deliver_maildir(USER, m)
    srv = postinod()
    md = os.path.join(home.path, "M")
    write_config(home, account("a", srv.port, USER, md, "  keep-days 2\n"))
    cp = home.run("fetch", "a", password=None)
    assert cp.returncode == 0, cp.stderr
    assert len(maildir_msgs(md)) == 3
    assert server_snapshot(srv.host, srv.port)[0] == 3    # kept for now
    # Make two of them three days old in the state.
    d = os.path.join(home.state, "postino")
    (name,) = [n for n in os.listdir(d) if not n.startswith(".")]
    path = os.path.join(d, name)
    with open(path) as f:
        lines = f.read().split("\n")
    old = int(time.time()) - 3 * 86400
    aged = 0
    for i, l in enumerate(lines):
        if l.startswith("+") and aged < 2:
            lines[i] = "%s %d" % (l.split(" ")[0], old)
            aged += 1
    with open(path, "w") as f:
        f.write("\n".join(lines))
    cp = home.run("fetch", "a", password=None)
    assert cp.returncode == 0, cp.stderr
    assert server_snapshot(srv.host, srv.port)[0] == 1
    assert len(maildir_msgs(md)) == 3          # nothing fetched twice


def test_rebuild_state_records_without_fetching(home, mailroot, postinod):
    mailroot.add_user(USER, PASSWORD)
    msgs = many_messages(4)
    for m in msgs:
        mailroot.deliver_maildir(USER, m)
    srv = postinod()
    url = "pop3://%s@127.0.0.1:%d" % (USER, srv.port)
    cp = home.run("fetch", "--tls=no", "--rebuild-state", url)
    assert cp.returncode == 0, cp.stderr
    assert "4 messages recorded as fetched" in cp.stderr.decode()
    assert len(home.state_ids()) == 4
    assert server_snapshot(srv.host, srv.port)[0] == 4    # nothing deleted
    new = b"Subject: after the switch\nMessage-ID: <new@test>\n\nhi\n"
    mailroot.deliver_maildir(USER, new)
    cp = home.run("fetch", "--tls=no", "--keep", "--maildir", home.maildir,
                  url)
    assert cp.returncode == 0, cp.stderr
    assert home.new_messages() == [local(new)]
    cp = home.run("fetch", "--rebuild-state", "--maildir", home.maildir, url)
    assert cp.returncode == 1


def test_version_and_help():
    with open(os.path.join(REPO, "src/lib/version.h")) as f:
        version = re.search(r'POSTINO_VERSION\s+"([^"]+)"', f.read()).group(1)
    for opt in ("--version", "-V"):
        cp = subprocess.run([POSTINO, opt], capture_output=True, timeout=30)
        assert (cp.returncode, cp.stdout) == (
            0, b"postino %s\n" % version.encode())
    cp = subprocess.run([POSTINO, "fetch", "--version"], capture_output=True,
                        timeout=30)
    assert cp.returncode == 0 and cp.stdout.startswith(b"postino ")
    cp = subprocess.run([POSTINO, "--help"], capture_output=True, timeout=30)
    assert cp.returncode == 0 and b"--daemon" in cp.stdout


def refusing_server():
    """A POP3 server that refuses every login; counts connections."""

    def script(srv, conn, rf):
        srv.connections = getattr(srv, "connections", 0) + 1
        conn.sendall(b"+OK fake\r\n")
        while True:
            word = srv.cmd(rf).split(b" ")[0].upper()
            if word == b"CAPA":
                conn.sendall(b"+OK\r\nUSER\r\n.\r\n")
            elif word == b"USER":
                conn.sendall(b"+OK\r\n")
            else:
                conn.sendall(b"-ERR [AUTH] no\r\n")
                return

    return FakeServer(script, connections=100)


def stop_server(srv):
    """Close a FakeServer still waiting in accept(): shutdown wakes it."""
    import socket
    try:
        srv.sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    srv.close()


def wait_for(pred, seconds):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.05)
    return pred()


def test_daemon_polls_backs_off_rereads_on_hup_and_stops(home, mailroot,
                                                         postinod):
    srv, a, b = two_users(mailroot, postinod)
    bad = refusing_server()
    ma, mb = (os.path.join(home.path, x) for x in ("MA", "MB"))
    cfg = write_config(home, account("a", srv.port, USER, ma) +
                       account("bad", bad.port, USER,
                               os.path.join(home.path, "MX")))
    p = subprocess.Popen([POSTINO, "fetch", "--daemon", "1"],
                         env=home.env(password=None),
                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE)
    try:
        assert wait_for(lambda: len(maildir_msgs(ma)) == len(a), 20)
        # New mail is picked up by a later cycle.
        late = b"Subject: late\nMessage-ID: <late@test>\n\nlate\n"
        mailroot.deliver_maildir(USER, late)
        assert wait_for(lambda: local(late) in maildir_msgs(ma), 20)
        # The refusing account backs off: 1 s, 2 s, 4 s... not every
        # second.
        t0 = time.monotonic()
        n0 = getattr(bad, "connections", 0)
        time.sleep(4)
        tried = getattr(bad, "connections", 0) - n0
        assert 0 <= tried <= 2, (tried, time.monotonic() - t0)
        # SIGHUP: the edited configuration counts at once.
        with open(cfg, "a") as f:
            f.write(account("b", srv.port, "bob", mb))
        p.send_signal(signal.SIGHUP)
        assert wait_for(lambda: len(maildir_msgs(mb)) == len(b), 20)
        p.send_signal(signal.SIGTERM)
        assert p.wait(30) == 0
    finally:
        if p.poll() is None:
            p.kill()
            p.wait(10)
        err = p.stderr.read().decode()
        p.stderr.close()
        stop_server(bad)
    assert "AddressSanitizer" not in err and "runtime error" not in err, err


def test_daemon_honours_login_delay(home):
    def script(srv, conn, rf):
        srv.times = getattr(srv, "times", []) + [time.monotonic()]
        conn.sendall(b"+OK fake\r\n")
        while True:
            word = srv.cmd(rf).split(b" ")[0].upper()
            if word == b"CAPA":
                conn.sendall(b"+OK\r\nUSER\r\nUIDL\r\nLOGIN-DELAY 3\r\n"
                             b".\r\n")
            elif word in (b"USER", b"PASS"):
                conn.sendall(b"+OK\r\n")
            elif word == b"LIST":
                conn.sendall(b"+OK\r\n.\r\n")
            elif word == b"UIDL":
                conn.sendall(b"+OK\r\n.\r\n")
            elif word == b"QUIT":
                conn.sendall(b"+OK\r\n")
                return
            else:
                conn.sendall(b"-ERR\r\n")

    srv = FakeServer(script, connections=100)
    md = os.path.join(home.path, "M")
    write_config(home, account("a", srv.port, USER, md))
    p = subprocess.Popen([POSTINO, "fetch", "--daemon", "1", "a"],
                         env=home.env(password=None),
                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
    try:
        assert wait_for(lambda: len(getattr(srv, "times", [])) >= 2, 20)
        p.send_signal(signal.SIGTERM)
        assert p.wait(30) == 0
    finally:
        if p.poll() is None:
            p.kill()
            p.wait(10)
        stop_server(srv)
    t = srv.times
    assert all(t[i + 1] - t[i] >= 2.9 for i in range(len(t) - 1)), t


def test_received_header_is_optional(home, mailroot, postinod):
    mailroot.add_user(USER, PASSWORD)
    msgs = many_messages(2)
    for m in msgs:
        mailroot.deliver_maildir(USER, m)
    srv = postinod()
    url = "pop3://%s@127.0.0.1:%d" % (USER, srv.port)
    cp = home.run("fetch", "--tls=no", "--keep", "--received-header",
                  "--maildir", home.maildir, url)
    assert cp.returncode == 0, cp.stderr
    got = sorted(home.new_messages())
    want = sorted(local(m) for m in msgs)
    for g, w in zip(sorted(got, key=lambda x: x[-60:]),
                    sorted(want, key=lambda x: x[-60:])):
        assert re.match(rb"Received: from 127\.0\.0\.1\n\tby \S+ with POP3 "
                        rb"\(postino [\w.]+\) for <%s>;\n\t\w{3}, \d\d \w{3} "
                        rb"\d{4} \d\d:\d\d:\d\d [+-]\d{4}\n" % USER.encode(), g), g
        assert g.endswith(w)
    # Without it, the message as it was.
    md2 = os.path.join(home.path, "M2")
    cp = home.run("fetch", "--tls=no", "--keep", "--maildir", md2,
                  "--config", "/nonexistent", url.replace("pop3://", "pop3://"),
                  env={"XDG_STATE_HOME": os.path.join(home.path, "s2")})
    assert cp.returncode == 0, cp.stderr
    assert sorted(maildir_msgs(md2)) == want
