"""The PROXY header as an attacker (or a broken proxy) would send it, past
what test_proxyproto.py covers: v2 TLVs at the size bound and one octet
over, lengths that lie, a header in many tiny TCP segments, one that
trickles in slower than the 3 s bound (slowloris), and 1000 connections
from an address that may not send one."""

import socket
import struct
import time

import pytest

from test_proxyproto import V2SIG, ports, proxied, raw_from, v1, v2  # noqa

DATA_MAX = 4096           # PROXYPROTO_V2_DATA_MAX
ADDR4 = 12


def tlv(t, value):
    return bytes([t]) + struct.pack("!H", len(value)) + value


def v2_with_tlvs_totalling(data_len, src="192.0.2.44"):
    """A v2 TCP4 header whose address block plus TLVs are data_len octets:
    one unique-id TLV (0x05) of 128 and NOOP TLVs (0x04) for the rest."""
    rest = data_len - ADDR4
    tlvs = tlv(0x05, b"u" * 128)
    rest -= len(tlvs)
    while rest > 0:
        n = min(rest - 3, 1000)
        assert n >= 0
        tlvs += tlv(0x04, b"\0" * n)
        rest -= 3 + n
    h = v2(src=src, tlvs=tlvs)
    assert len(h) == 16 + data_len
    return h


def nodelay(r):
    r.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return r


def test_v2_at_the_size_bound_in_tiny_segments(proxied):
    """16 + 4096 octets, the largest header accepted, sent as 2-octet and
    then 41-octet segments with pauses between: the greeting follows and
    the log has the header's address; the pipelined command after the
    header in the last segment is the session's."""
    pport, _ = ports(proxied)
    h = v2_with_tlvs_totalling(DATA_MAX)
    r = nodelay(raw_from(pport))
    for i in range(0, 40, 2):                   # the signature, octet pairs
        r.send(h[i:i + 2])
        time.sleep(0.005)
    for i in range(40, len(h), 41):
        r.send(h[i:i + 41] + (b"CAPA\r\n" if i + 41 >= len(h) else b""))
        time.sleep(0.001)
    r.expect(b"+OK")
    assert r.line().startswith(b"+OK")           # CAPA's reply
    proxied.wait_log("event=connect ip=192.0.2.44")


@pytest.mark.parametrize("hdr,why", [
    (lambda: v2_with_tlvs_totalling(DATA_MAX + 3), "v2-too-long"),
    # a TLV claiming one octet more than the header holds
    (lambda: v2(tlvs=b"\x04\x00\x05" + b"\0" * 4), "v2-tlv"),
    # a TLV claiming 65535 octets inside a small header
    (lambda: v2(tlvs=b"\x04\xff\xff" + b"\0" * 8), "v2-tlv"),
    # two octets after the last TLV: not a TLV header
    (lambda: v2(tlvs=tlv(0x04, b"") + b"\0\0"), "v2-tlv"),
    # IPv6 family with an IPv4-sized block
    (lambda: V2SIG + b"\x21\x21" + struct.pack("!H", 12) + b"\0" * 12,
     "v2-short-address"),
    (lambda: V2SIG + b"\x31\x11" + struct.pack("!H", 12) + b"\0" * 12,
     "v2-version"),
    (lambda: V2SIG + b"\x2f\x11" + struct.pack("!H", 12) + b"\0" * 12,
     "v2-command"),
])
def test_v2_lying_lengths_are_refused(proxied, hdr, why):
    pport, _ = ports(proxied)
    r = raw_from(pport)
    r.send(hdr())
    assert r.closed_within(seconds=5)
    assert r.buf == b""
    proxied.wait_log("event=proxy-header-refused reason=%s" % why)


def test_v2_length_longer_than_what_is_sent_times_out(proxied):
    """The length says 4096, 100 octets come: the rest is waited for at
    most the 3 s bound, then the connection is closed unanswered."""
    pport, _ = ports(proxied)
    h = v2_with_tlvs_totalling(DATA_MAX)
    r = raw_from(pport, timeout=15)
    t = time.monotonic()
    r.send(h[:116])
    assert r.closed_within(seconds=10)
    assert 2 <= time.monotonic() - t < 9
    assert r.buf == b""
    proxied.wait_log("reason=proxy-timeout")


def test_slowloris_header_is_cut_at_the_bound(proxied):
    """An octet every 0.3 s keeps the connection busy but does not extend
    the 3 s the whole header may take."""
    pport, _ = ports(proxied)
    h = v1()
    r = nodelay(raw_from(pport, timeout=15))
    t = time.monotonic()
    closed = False
    for ch in h[:-1]:
        try:
            r.send(bytes([ch]))
        except (BrokenPipeError, ConnectionResetError):
            closed = True
            break
        time.sleep(0.3)
        if time.monotonic() - t > 8:
            break
    assert closed or r.closed_within(seconds=5)
    assert time.monotonic() - t < 9
    assert r.buf == b""
    proxied.wait_log("reason=proxy-timeout")


def test_thousand_untrusted_connections_with_headers(proxied):
    """1000 connections at once from an untrusted address, each sending a
    header: all closed unanswered, the log bounded (refusals are
    rate-limited), and a trusted client is served meanwhile and after."""
    pport, _ = ports(proxied)
    socks = []
    for i in range(1000):
        s = socket.socket()
        s.settimeout(20)
        s.bind(("127.0.0.9", 0))
        s.connect(("127.0.0.1", pport))
        try:
            s.sendall(v2(src="198.51.100.%d" % (i % 250 + 1)))
        except (BrokenPipeError, ConnectionResetError):
            pass
        socks.append(s)
        if i == 500:
            r = raw_from(pport)
            r.send(v1(src="192.0.2.77"))
            r.expect(b"+OK")
            r.close()
    for s in socks:
        try:
            assert s.recv(64) == b""
        except ConnectionResetError:
            pass
        s.close()
    r = raw_from(pport)
    r.send(v1(src="192.0.2.78"))
    r.expect(b"+OK")
    r.close()
    proxied.wait_log("event=connect ip=192.0.2.78")
    log = proxied.log()
    assert "198.51.100." not in log
    assert log.count("reason=proxy-untrusted") < 300, \
        log.count("reason=proxy-untrusted")


def test_a_client_cannot_add_its_own_header(proxied):
    """Behind the proxy's header, a client's own PROXY line is an unknown
    POP3 command: the address stays the proxy's word for it."""
    pport, _ = ports(proxied)
    r = raw_from(pport)
    r.send(v1(src="192.0.2.50") + v1(src="203.0.113.66"))
    r.expect(b"+OK")
    assert r.line().startswith(b"-ERR")
    r.send(b"USER alice\r\nPASS secret\r\n")
    assert r.line().startswith(b"+OK")
    assert r.line().startswith(b"+OK")
    proxied.wait_log('result=ok user="alice" method=USER ip=192.0.2.50')
    assert "203.0.113.66" not in proxied.log()
