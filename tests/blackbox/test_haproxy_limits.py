"""Per-address limits over all instances, where README's "Many instances"
puts them: HAProxy's stick-table (conn_rate, conn_cur, tcp-request
connection reject) in front of two postinod instances. The rules are read
from README.md, so the documented configuration is the tested one. Client
addresses are distinct loopback addresses (127.0.0.x)."""

import os
import re
import socket
import subprocess
import time

import pytest

from test_haproxy import HAPROXY, can_connect, free_port, port_of

pytestmark = pytest.mark.skipif(not os.path.exists(HAPROXY),
                                reason="haproxy not installed "
                                "(tests/deps.sh installs it)")

README = os.path.join(os.path.dirname(__file__), "..", "..", "README.md")


def documented_rules():
    """The stick-table and tcp-request lines of README's haproxy.cfg, and
    the rate and concurrency bounds they set."""
    with open(README) as f:
        text = f.read()
    rules = [ln.strip() for ln in text.splitlines()
             if re.match(r"\s+(stick-table|tcp-request connection) ", ln)]
    assert len(rules) == 4, rules
    rate = int(re.search(r"sc_conn_rate\(0\) gt (\d+)", text).group(1))
    cur = int(re.search(r"sc_conn_cur\(0\) gt (\d+)", text).group(1))
    period = int(re.search(r"conn_rate\((\d+)s\)", text).group(1))
    return rules, rate, cur, period


@pytest.fixture
def limited(mailroot, postinod):
    """(haproxy port, rate, cur, period, servers): the README rules in a
    frontend, two instances behind it; the instances' own per-address
    limits out of the way, so what refuses is HAProxy."""
    mailroot.add_user("alice", "secret")
    rules, rate, cur, period = documented_rules()
    conf = dict(listen=["127.0.0.1:0 proxy"],
                proxy_trusted_networks="127.0.0.1",
                max_connections_per_ip=1000, max_connections_per_net=1000)
    s1, s2 = postinod(**conf), postinod(**conf)
    proc = None
    for _ in range(5):
        port = free_port()
        cfg = ("global\n    maxconn 200\ndefaults\n    mode tcp\n"
               "    timeout connect 2s\n    timeout client 30s\n"
               "    timeout server 30s\nfrontend pop3\n"
               "    bind 127.0.0.1:%d\n" % port +
               "".join("    %s\n" % r for r in rules) +
               "    default_backend postino\nbackend postino\n"
               "    balance roundrobin\n"
               "    server a 127.0.0.1:%d send-proxy-v2\n"
               "    server b 127.0.0.1:%d send-proxy-v2\n"
               % (port_of(s1), port_of(s2)))
        path = os.path.join(mailroot.path, "haproxy-limits.cfg")
        with open(path, "w") as f:
            f.write(cfg)
        log = open(os.path.join(mailroot.path, "haproxy-limits.log"), "ab")
        proc = subprocess.Popen([HAPROXY, "-db", "-f", path],
                                stdin=subprocess.DEVNULL, stdout=log,
                                stderr=log)
        log.close()
        deadline = time.monotonic() + 10
        # A probe from an address no test uses, so it counts for none.
        while time.monotonic() < deadline and proc.poll() is None and \
                not can_connect(port):
            time.sleep(0.05)
        if proc.poll() is None:
            break
    assert proc is not None and proc.poll() is None, "haproxy did not start"
    yield port, rate, cur, period, (s1, s2)
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


def open_from(addr, port):
    """A connection from addr: (socket, True) with the greeting read, or
    (None, False) when it was closed unanswered."""
    s = socket.socket()
    s.settimeout(20)
    s.bind((addr, 0))
    try:
        s.connect(("127.0.0.1", port))
        data = s.recv(512)
    except ConnectionResetError:    # HAProxy may close before connect returns
        data = b""
    if data.startswith(b"+OK"):
        return s, True
    assert data == b"", data
    s.close()
    return None, False


def test_connection_rate_per_address_across_instances(limited):
    """The address that opens more than `rate` connections in the period
    is refused at accept, though its connections went to two instances;
    another address is served meanwhile."""
    port, rate, _, period, servers = limited
    t0 = time.monotonic()
    for i in range(rate):
        s, ok = open_from("127.0.0.2", port)
        assert ok, "connection %d of %d refused" % (i + 1, rate)
        s.close()
    s, ok = open_from("127.0.0.2", port)
    assert time.monotonic() - t0 < period, "too slow to prove the rate"
    assert not ok, "connection %d in the period was served" % (rate + 1)
    s, ok = open_from("127.0.0.3", port)
    assert ok
    s.sendall(b"USER alice\r\nPASS secret\r\n")
    assert b"+OK" in s.recv(512)
    s.close()
    for srv in servers:            # both instances saw the limited address
        srv.wait_log("ip=127.0.0.2")


def test_open_connections_per_address_across_instances(limited):
    """`cur` connections open at once from one address (spread over both
    instances) are the most: one more is refused, another address is not,
    and after one closes the address may open one again."""
    port, _, cur, _, _ = limited
    held = []
    for i in range(cur):
        s, ok = open_from("127.0.0.4", port)
        assert ok, "connection %d of %d refused" % (i + 1, cur)
        held.append(s)
    assert not open_from("127.0.0.4", port)[1]
    s, ok = open_from("127.0.0.5", port)
    assert ok
    s.close()
    held.pop().close()
    deadline = time.monotonic() + 10
    while True:
        s, ok = open_from("127.0.0.4", port)
        if ok:
            held.append(s)
            break
        assert time.monotonic() < deadline, "the closed one still counts"
        time.sleep(0.2)
    for s in held:
        s.close()
