"""The real HAProxy (mode tcp) in front of two postinod instances that
serve one mail store (a Maildir root, or PostgreSQL: the cluster fixture
runs both), as DESIGN.md's "Many instances" describes: HAProxy
passes the client address with send-proxy-v2 (and send-proxy, v1); the
per-mailbox lock holds across instances; kill -9 of one loses nothing,
leaves no lock, and the other goes on serving."""

import os
import shutil
import socket
import ssl
import subprocess
import time

import pytest

import stores
from conftest import Raw, free_port

HAPROXY = shutil.which("haproxy") or "/usr/sbin/haproxy"
CLIENT = "127.0.0.5"        # the "real" client address the log must show

pytestmark = pytest.mark.skipif(not os.path.exists(HAPROXY),
                                reason="haproxy not installed "
                                "(tests/deps.sh installs it)")


def port_of(srv):
    return int(srv.addrs[0].rpartition(":")[2])


def can_connect(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


class HAProxy:
    """haproxy -db with frontends: "lb" (both instances), "a" and "b" (one
    each, v2), "v1" (instance a with send-proxy)."""

    def __init__(self, d, p1, p2, p_tls=None):
        self.dir = d
        self.proc = None
        names = ("lb", "a", "b", "v1") + (("tls",) if p_tls else ())
        for attempt in range(5):
            self.ports = {k: free_port() for k in names}
            cfg = """global
    maxconn 200
defaults
    mode tcp
    timeout connect 2s
    timeout client 30s
    timeout server 30s
    retries 2
    option redispatch
frontend lb
    bind 127.0.0.1:%(lb)d
    default_backend both
frontend a
    bind 127.0.0.1:%(a)d
    default_backend only_a
frontend b
    bind 127.0.0.1:%(b)d
    default_backend only_b
frontend v1
    bind 127.0.0.1:%(v1)d
    default_backend only_a_v1
backend both
    balance roundrobin
    server s1 127.0.0.1:%(p1)d send-proxy-v2
    server s2 127.0.0.1:%(p2)d send-proxy-v2
backend only_a
    server s1 127.0.0.1:%(p1)d send-proxy-v2
backend only_b
    server s2 127.0.0.1:%(p2)d send-proxy-v2
backend only_a_v1
    server s1 127.0.0.1:%(p1)d send-proxy
""" % dict(self.ports, p1=p1, p2=p2)
            if p_tls:
                cfg += """frontend tls
    bind 127.0.0.1:%d
    default_backend tls_a
backend tls_a
    server s1 127.0.0.1:%d send-proxy-v2
""" % (self.ports["tls"], p_tls)
            self.conf = os.path.join(d, "haproxy.cfg")
            with open(self.conf, "w") as f:
                f.write(cfg)
            self.log = open(os.path.join(d, "haproxy.log"), "ab")
            self.proc = subprocess.Popen([HAPROXY, "-db", "-f", self.conf],
                                         stdin=subprocess.DEVNULL,
                                         stdout=self.log, stderr=self.log)
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and self.proc.poll() is None:
                if all(can_connect(p) for p in self.ports.values()):
                    return
                time.sleep(0.05)
            # A port taken between free_port() and haproxy's bind: again.
            self.stop()
        raise AssertionError("haproxy did not start")

    def connect(self, name, timeout=10, wrap=None):
        r = Raw.__new__(Raw)
        r.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        r.sock.settimeout(timeout)
        r.sock.bind((CLIENT, 0))
        r.sock.connect(("127.0.0.1", self.ports[name]))
        if wrap is not None:
            r.sock = wrap(r.sock)
        r.buf = b""
        r.eof = False
        r.expect(b"+OK")
        return r

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.log.close()


@pytest.fixture(params=["maildir", "pgsql"])
def cluster(request, mailroot, postinod):
    """(s1, s2, hp); hp.store is the shared store (stores.py)."""
    st = (stores.MaildirStore(mailroot) if request.param == "maildir" else
          stores.PgsqlStore(request.getfixturevalue("pg")))
    mailroot.add_user("alice", "secret")
    mailroot.add_user("bob", "secret")
    for i in range(3):
        st.deliver("alice", b"Subject: m%d\r\n\r\nbody %d\r\n" % (i, i))
    conf = dict(listen=["127.0.0.1:0 proxy"],
                proxy_trusted_networks="127.0.0.1",
                login_workers=1, **st.config)
    s1 = postinod(**conf)
    s2 = postinod(**conf)
    hp = HAProxy(mailroot.path, port_of(s1), port_of(s2))
    hp.store = st
    yield s1, s2, hp
    hp.stop()
    if st.name == "pgsql":
        st.cleanup()


def login_after_kill(hp, name, user):
    """A Maildir lock dies with the killed process's files: at once. A
    pgsql lock dies when PostgreSQL sees the dead connection: soon."""
    deadline = time.monotonic() + (10 if hp.store.name == "pgsql" else 0)
    while True:
        r = hp.connect(name)
        reply = r.login(user, "secret")
        if not reply.startswith(b"-ERR [IN-USE]") or \
                time.monotonic() >= deadline:
            assert reply.startswith(b"+OK"), reply
            return r
        r.close()
        time.sleep(0.1)


def test_logins_through_haproxy_are_logged_with_the_client_address(cluster):
    s1, s2, hp = cluster
    for name, srv in (("a", s1), ("b", s2), ("v1", s1)):
        r = hp.connect(name)
        assert r.login("bob", "secret").startswith(b"+OK")
        assert r.cmd(b"QUIT").startswith(b"+OK")
        r.close()
        srv.wait_log('result=ok user="bob" method=USER ip=%s' % CLIENT)
    for srv in (s1, s2):
        assert "proxy=127.0.0.1" in srv.log()
        assert 'user="bob" method=USER ip=127.0.0.1' not in srv.log()
    # Round robin reaches both instances.
    for _ in range(4):
        r = hp.connect("lb")
        assert r.login("bob", "secret").startswith(b"+OK")
        r.cmd(b"QUIT")
        r.close()


def test_mailbox_held_through_one_instance_is_in_use_on_the_other(cluster):
    s1, s2, hp = cluster
    a = hp.connect("a")
    assert a.login("alice", "secret").startswith(b"+OK")
    b = hp.connect("b")
    assert b.cmd(b"USER alice").startswith(b"+OK")
    assert b.cmd(b"PASS secret").startswith(b"-ERR [IN-USE]")
    assert a.cmd(b"QUIT").startswith(b"+OK")
    a.close()
    b = hp.connect("b")
    assert b.login("alice", "secret").startswith(b"+OK")
    assert b.cmd(b"STAT").startswith(b"+OK 3 ")
    b.cmd(b"QUIT")


def test_kill9_of_one_instance_loses_nothing_and_the_other_serves(
        cluster, mailroot):
    s1, s2, hp = cluster
    before = hp.store.messages("alice")
    a = hp.connect("a")
    assert a.login("alice", "secret").startswith(b"+OK")
    assert a.cmd(b"RETR 1").startswith(b"+OK")
    a.lines_until_dot()
    assert a.cmd(b"DELE 1").startswith(b"+OK")
    assert a.cmd(b"DELE 2").startswith(b"+OK")
    s1.kill9()
    assert a.closed_within(seconds=10)
    # No lock left behind: the other instance opens the mailbox.
    b = login_after_kill(hp, "b", "alice")
    assert b.cmd(b"STAT").startswith(b"+OK 3 ")
    assert b.cmd(b"QUIT").startswith(b"+OK")
    b.close()
    assert sorted(hp.store.messages("alice")) == sorted(before)
    # The balanced frontend goes on serving from the survivor.
    for _ in range(4):
        r = hp.connect("lb")
        assert r.login("bob", "secret").startswith(b"+OK")
        r.cmd(b"QUIT")
        r.close()


def test_tls_passed_through_haproxy_terminates_in_postinod(mailroot, postinod,
                                                           certs):
    """mode tcp: HAProxy relays the TLS bytes after its header; postinod
    does the handshake with its own certificate and logs the client."""
    mailroot.add_user("bob", "secret")
    srv = postinod(listen=["127.0.0.1:0 proxy"],
                   listen_tls="127.0.0.1:0 proxy",
                   proxy_trusted_networks="127.0.0.1",
                   tls_cert=certs["cert"], tls_key=certs["key"])
    hp = HAProxy(mailroot.path, srv.port, srv.port, p_tls=srv.port_tls)
    try:
        ctx = ssl.create_default_context(cafile=certs["ca"])
        r = hp.connect("tls", wrap=lambda s: ctx.wrap_socket(
            s, server_hostname="localhost"))
        assert r.login("bob", "secret").startswith(b"+OK")
        assert r.cmd(b"QUIT").startswith(b"+OK")
        r.close()
        log = srv.wait_log('result=ok user="bob" method=USER ip=%s' % CLIENT)
        assert "tls=implicit proxy=127.0.0.1" in log
    finally:
        hp.stop()


def test_haproxy_outside_the_trusted_networks_is_refused(mailroot, postinod):
    """The same HAProxy, but postinod trusts another address: its header
    is never read and the client gets nothing."""
    mailroot.add_user("bob", "secret")
    srv = postinod(listen=["127.0.0.1:0 proxy"],
                   proxy_trusted_networks="127.0.0.9")
    hp = HAProxy(mailroot.path, srv.port, srv.port)
    try:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.settimeout(10)
        s.bind((CLIENT, 0))
        s.connect(("127.0.0.1", hp.ports["a"]))
        assert s.recv(100) == b""
        s.close()
        srv.wait_log("event=connection-refused reason=proxy-untrusted "
                     "ip=127.0.0.1")
        assert "event=connect " not in srv.log()
    finally:
        hp.stop()


def test_kill9_mid_update_keeps_every_undeleted_message(cluster, mailroot):
    """QUIT after DELE of half the mailbox, and kill -9 at once: whatever
    point UPDATE reached, no kept message is lost and no lock is left."""
    s1, s2, hp = cluster
    for i in range(150):
        hp.store.deliver("alice", b"Subject: k%d\r\n\r\n%d\r\n" % (i, i))
    a = hp.connect("a")
    assert a.login("alice", "secret").startswith(b"+OK")
    total = int(a.cmd(b"STAT").split()[1])
    uidl = {}
    a.send(b"UIDL\r\n")
    a.expect(b"+OK")
    for line in a.lines_until_dot():
        n, u = line.split()
        uidl[int(n)] = u.decode()
    half = total // 2
    for n in range(1, half + 1):
        assert a.cmd(b"DELE %d" % n).startswith(b"+OK")
    a.send(b"QUIT\r\n")
    s1.kill9()
    a.close()
    kept = {uidl[n] for n in range(half + 1, total + 1)}
    b = login_after_kill(hp, "b", "alice")
    b.send(b"UIDL\r\n")
    b.expect(b"+OK")
    now = {l.split()[1].decode() for l in b.lines_until_dot()}
    assert kept <= now, len(kept - now)
    assert b.cmd(b"QUIT").startswith(b"+OK")
