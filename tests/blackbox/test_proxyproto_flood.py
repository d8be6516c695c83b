"""A flood of malformed PROXY headers from a trusted address: each is
refused (event=proxy-header-refused), and the log lines are rate-limited
as every other refused connection (REFUSAL_LOGS_PER_SEC, 10 a second per
login process), the rest counted in `event=connection-refused
suppressed=N` lines, so a broken or hostile proxy cannot fill the disk
one line per connection. Loopback only; every wait bounded."""

import re
import socket
import struct
import time

from test_proxyproto import V2SIG, ports, raw_from  # noqa: F401

FLOOD = 1000
# A v2 header of version 3: refused as soon as its 16 octets are read.
BAD = V2SIG + b"\x31\x11" + struct.pack("!H", 12) + b"\0" * 12


def refused_and_closed(pport):
    s = socket.socket()
    s.settimeout(20)
    s.connect(("127.0.0.1", pport))
    try:
        s.sendall(BAD)
        assert s.recv(64) == b""
    except (BrokenPipeError, ConnectionResetError):
        pass
    finally:
        s.close()


def test_flood_of_bad_headers_logs_a_bounded_number_of_lines(mailroot,
                                                              postinod):
    # One login process: every refusal goes through one limiter, so the
    # lines logged and the counts of those held back add up exactly.
    srv = postinod(listen=["127.0.0.1:0 proxy", "127.0.0.1:0"],
                   proxy_trusted_networks="127.0.0.1/32",
                   login_workers=1)
    pport, _ = ports(srv)
    t0 = time.monotonic()
    for _ in range(FLOOD):
        refused_and_closed(pport)
    took = time.monotonic() - t0
    # One more in a later second logs the count of the last one's.
    time.sleep(1.2)
    refused_and_closed(pport)
    srv.wait_log("suppressed=")
    deadline = time.monotonic() + 10
    while True:
        log = srv.log()
        logged = log.count("event=proxy-header-refused reason=v2-version")
        held = sum(int(n) for n in re.findall(
            r"event=connection-refused suppressed=(\d+)", log))
        if logged + held == FLOOD + 1 or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert logged + held == FLOOD + 1, (logged, held)
    # 10 a second, over the seconds the flood took (and the one begun).
    assert logged <= 10 * (int(took) + 3), (logged, took)
    assert held >= FLOOD - 10 * (int(took) + 3), (held, took)
