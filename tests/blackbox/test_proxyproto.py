"""PROXY protocol (v1 and v2) on listeners marked ``proxy``: raw headers
from this test, standing in for HAProxy (test_haproxy.py runs the real
one). The client address in the header drives logging and the per-address
limits; untrusted peers, malformed or late headers are refused; a plain
listener never reads a header."""

import socket
import ssl
import struct
import time

import pytest

from conftest import Closed, Raw

V2SIG = b"\r\n\r\n\x00\r\nQUIT\n"


def v1(src="192.0.2.7", sport=40000, dst="127.0.0.1", dport=110):
    return ("PROXY TCP4 %s %s %d %d\r\n" % (src, dst, sport, dport)).encode()


def v2(src="192.0.2.7", sport=40000, dst="127.0.0.1", dport=110,
       cmd=0x21, tlvs=b""):
    body = socket.inet_aton(src) + socket.inet_aton(dst) + \
        struct.pack("!HH", sport, dport) + tlvs
    return V2SIG + bytes([cmd, 0x11]) + struct.pack("!H", len(body)) + body


def v2_local():
    return V2SIG + bytes([0x20, 0x00, 0, 0])


def raw_from(port, src="127.0.0.1", timeout=10):
    """A Raw client bound to source address src (any 127/8 address)."""
    r = Raw.__new__(Raw)
    r.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    r.sock.settimeout(timeout)
    r.sock.bind((src, 0))
    r.sock.connect(("127.0.0.1", port))
    r.buf = b""
    r.eof = False
    return r


def ports(srv):
    """The proxy port (first listener) and the plain one (second)."""
    return [int(a.rpartition(":")[2]) for a in srv.addrs if
            not a.startswith("tls ")]


@pytest.fixture
def proxied(mailroot, postinod):
    mailroot.add_user("alice", "secret")
    srv = postinod(listen=["127.0.0.1:0 proxy", "127.0.0.1:0"],
                   proxy_trusted_networks="127.0.0.1/32, ::1",
                   auth_allow_cleartext=True)
    return srv


def test_remote_client_through_a_local_proxy_is_not_loopback(mailroot,
                                                              postinod):
    """The proxy's loopback address must not make a remote client's
    plaintext password acceptable (auth_cleartext_loopback)."""
    mailroot.add_user("alice", "secret")
    srv = postinod(listen=["127.0.0.1:0 proxy"],
                   proxy_trusted_networks="127.0.0.1")
    r = raw_from(ports(srv)[0])
    r.send(v1(src="192.0.2.8"))
    r.expect(b"+OK")
    assert r.cmd(b"USER alice").startswith(b"-ERR")
    r = raw_from(ports(srv)[0])
    r.send(v1(src="127.0.0.8"))
    r.expect(b"+OK")
    assert r.login("alice", "secret").startswith(b"+OK")


@pytest.mark.parametrize("header", [v1(), v2(),
                                    v2(tlvs=b"\x01\x00\x04pop3"
                                       b"\x05\x00\x03abc\x04\x00\x00")],
                         ids=["v1", "v2", "v2-tlvs"])
def test_header_address_is_the_client_in_the_log(proxied, header):
    pport, _ = ports(proxied)
    r = raw_from(pport)
    r.send(header)
    r.expect(b"+OK")
    assert r.login("alice", "secret").startswith(b"+OK")
    r.cmd(b"QUIT")
    log = proxied.wait_log('result=ok user="alice" method=USER '
                           'ip=192.0.2.7')
    assert "ip=192.0.2.7 port=40000 proxy=127.0.0.1" in log


def test_v2_ipv6_client_address(proxied):
    pport, _ = ports(proxied)
    src = socket.inet_pton(socket.AF_INET6, "2001:db8::7")
    dst = socket.inet_pton(socket.AF_INET6, "::1")
    body = src + dst + struct.pack("!HH", 5555, 110)
    r = raw_from(pport)
    r.send(V2SIG + b"\x21\x21" + struct.pack("!H", len(body)) + body)
    r.expect(b"+OK")
    assert r.login("alice", "secret").startswith(b"+OK")
    proxied.wait_log('user="alice" method=USER ip=2001:db8::7')


def test_header_byte_at_a_time_and_pipelined_command(proxied):
    pport, _ = ports(proxied)
    r = raw_from(pport)
    for b in v2(src="198.51.100.3"):
        r.sock.send(bytes([b]))
    r.expect(b"+OK")
    r.close()
    # The header and a command in one segment: the command is kept.
    r = raw_from(pport)
    r.send(v1(src="198.51.100.4") + b"CAPA\r\n")
    r.expect(b"+OK")
    r.expect(b"+OK")
    assert b"UIDL" in b"".join(r.lines_until_dot())
    proxied.wait_log("ip=198.51.100.4 port=40000 proxy=127.0.0.1")


def test_local_command_is_a_health_check_with_the_proxy_address(proxied):
    pport, _ = ports(proxied)
    r = raw_from(pport)
    r.send(v2_local())
    r.expect(b"+OK")
    assert r.cmd(b"QUIT").startswith(b"+OK")
    proxied.wait_log("ip=127.0.0.1 port=")


def test_health_check_connect_and_close_is_not_logged(proxied):
    """HAProxy's plain `check` connects and closes; a partial header that
    ends early is logged."""
    pport, _ = ports(proxied)
    raw_from(pport).close()
    r = raw_from(pport)
    r.send(b"PROXY TCP4 1.2.3.4")
    r.close()
    proxied.wait_log("reason=proxy-closed ip=127.0.0.1")
    assert proxied.log().count("reason=proxy-closed") == 1


def test_untrusted_peer_is_refused_unanswered(proxied):
    pport, _ = ports(proxied)
    r = raw_from(pport, src="127.0.0.9")
    r.send(v2())
    assert r.closed_within(seconds=5)
    assert r.buf == b""
    proxied.wait_log("event=connection-refused reason=proxy-untrusted "
                     "ip=127.0.0.9")
    assert "ip=192.0.2.7" not in proxied.log()


@pytest.mark.parametrize("bad", [
    b"USER alice\r\n",
    b"PROXY TCP4 1.2.3.4 5.6.7.8 99999 2\r\n",
    b"PROXY TCP4 ::1 ::1 1 2\r\n",
    b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n",
    b"PROXY UNKNOWN " + b"a" * 200 + b"\r\n",
    V2SIG + b"\x21\x11\x00\x04abcd",           # address block too short
    V2SIG + b"\x21\x12" + struct.pack("!H", 12) + b"\0" * 12,   # UDP
    V2SIG + b"\x21\x11\xff\xff",                # 64 KiB: over the bound
    V2SIG + b"\x21\x11\x00\x10" + b"\0" * 12 + b"\x01\x00\x09x",  # TLV
    b"\x16\x03\x01\x00\x05hello",               # TLS with no header
], ids=["pop3", "port", "family", "bare-lf", "long-v1", "short-v2", "udp",
        "huge-v2", "tlv", "tls"])
def test_malformed_header_is_refused(proxied, bad):
    pport, _ = ports(proxied)
    r = raw_from(pport)
    r.send(bad)
    assert r.closed_within(seconds=5)
    assert r.buf == b""
    proxied.wait_log("event=proxy-header-refused reason=")


def test_no_header_in_time_is_closed(proxied):
    pport, _ = ports(proxied)
    r = raw_from(pport, timeout=15)
    r.send(b"PROXY TCP4 ")
    t = time.monotonic()
    assert r.closed_within(seconds=10)
    assert time.monotonic() - t >= 2
    proxied.wait_log("reason=proxy-timeout ip=127.0.0.1")


def test_plain_listener_never_reads_a_header(proxied):
    _, plain = ports(proxied)
    r = raw_from(plain)
    r.expect(b"+OK")
    r.send(v1())
    assert r.line().startswith(b"-ERR")
    assert "ip=192.0.2.7" not in proxied.log()


def test_per_address_limit_counts_the_header_address(mailroot, postinod):
    mailroot.add_user("alice", "secret")
    srv = postinod(listen=["127.0.0.1:0 proxy"],
                   proxy_trusted_networks="127.0.0.0/8",
                   max_connections_per_ip=2, max_connections_per_net=0)
    pport = ports(srv)[0]
    held = []
    for _ in range(2):
        r = raw_from(pport)
        r.send(v2(src="203.0.113.5"))
        r.expect(b"+OK")
        held.append(r)
    r = raw_from(pport)
    r.send(v2(src="203.0.113.5"))
    assert r.line().startswith(b"-ERR [SYS/TEMP]")
    srv.wait_log("reason=per-ip ip=203.0.113.5 limit=2")
    # Another client behind the same proxy is not affected.
    r = raw_from(pport)
    r.send(v2(src="203.0.113.6"))
    r.expect(b"+OK")
    for h in held:
        h.close()


def test_implicit_tls_behind_a_proxy_terminates_here(mailroot, postinod,
                                                      certs):
    mailroot.add_user("alice", "secret")
    srv = postinod(listen=["127.0.0.1:0"],
                   listen_tls="127.0.0.1:0 proxy",
                   proxy_trusted_networks="127.0.0.1",
                   tls_cert=certs["cert"], tls_key=certs["key"])
    s = socket.create_connection(("127.0.0.1", srv.port_tls), timeout=10)
    s.sendall(v2(src="192.0.2.44", dport=995))
    ctx = ssl.create_default_context(cafile=certs["ca"])
    t = ctx.wrap_socket(s, server_hostname="localhost")
    f = t.makefile("rb")
    assert f.readline().startswith(b"+OK")
    t.sendall(b"USER alice\r\n")
    assert f.readline().startswith(b"+OK")
    t.sendall(b"PASS secret\r\n")
    assert f.readline().startswith(b"+OK")
    t.sendall(b"QUIT\r\n")
    assert f.readline().startswith(b"+OK")
    t.close()
    srv.wait_log('result=ok user="alice" method=USER ip=192.0.2.44')


def test_proxy_listener_without_trusted_networks_stops_startup(mailroot,
                                                               postinod):
    srv = postinod(start=False, listen=["127.0.0.1:0 proxy"])
    with pytest.raises(AssertionError) as e:
        srv.start(timeout=10)
    assert "needs proxy_trusted_networks" in str(e.value)


@pytest.mark.parametrize("conf", [
    {"listen": ["127.0.0.1:0 proxi"], "proxy_trusted_networks": "127.0.0.1"},
    {"listen": ["127.0.0.1:0"], "proxy_trusted_networks": "10.0.0.1/8"},
    {"listen": ["127.0.0.1:0"], "proxy_trusted_networks": "example.com"},
])
def test_bad_proxy_config_stops_startup(mailroot, postinod, conf):
    srv = postinod(start=False, **conf)
    with pytest.raises(AssertionError):
        srv.start(timeout=10)


def test_penalties_follow_the_header_address(mailroot, postinod):
    """Every connection comes from the proxy (127.0.0.1); a failure from
    one client network must hold back that network only."""
    mailroot.add_user("alice", "secret")
    srv = postinod(listen=["127.0.0.1:0 proxy"],
                   proxy_trusted_networks="127.0.0.1",
                   auth_allow_cleartext=True, auth_fail_delay_ms=15000,
                   login_timeout=5)
    port = ports(srv)[0]
    r = raw_from(port)
    r.send(v2(src="198.51.100.1"))
    r.expect(b"+OK")
    assert r.cmd(b"USER alice").startswith(b"+OK")
    r.send(b"PASS wrong\r\n")
    srv.wait_log('result=fail user="alice" method=USER ip=198.51.100.1')
    # Same /24: refused at once, the penalty outlasting its login time.
    r2 = raw_from(port)
    r2.send(v2(src="198.51.100.2"))
    r2.expect(b"+OK")
    assert r2.cmd(b"USER alice").startswith(b"+OK")
    assert r2.cmd(b"PASS secret").startswith(b"-ERR [SYS/TEMP]")
    srv.wait_log('result=penalty user="alice" method=USER ip=198.51.100.2')
    # Another network behind the same proxy logs in at once.
    r3 = raw_from(port)
    r3.send(v2(src="203.0.113.9"))
    r3.expect(b"+OK")
    t = time.monotonic()
    assert r3.login("alice", "secret").startswith(b"+OK")
    assert time.monotonic() - t < 5
    for c in (r, r2, r3):
        c.close()
