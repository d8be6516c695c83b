"""TLS: RFC 2595 STLS, RFC 8314 implicit TLS, the cleartext policy, the
STARTTLS command-injection class (CVE-2011-0411), certificate loading and
SIGHUP reload, and the relay that carries a TLS session to its mail worker.
Certificates are made at test time with the openssl command."""

import os
import poplib
import shutil
import signal
import socket
import ssl
import subprocess
import time

import pytest

import conftest
from conftest import crlf, make_cert

USER, PASS = "alice", "secret"


@pytest.fixture
def tls_srv(mailroot, postinod, certs):
    mailroot.add_user(USER, PASS)
    mailroot.deliver_maildir(USER, b"Subject: tls\n\n.dot line\nbody\n")
    listen = ["127.0.0.1:0"] + (["[::1]:0"] if conftest.HAVE_IPV6 else [])
    return postinod(tls_cert=certs["cert"], tls_key=certs["key"],
                    listen_tls=listen)


def client_ctx(certs, **kw):
    ctx = ssl.create_default_context(cafile=certs["ca"])
    for k, v in kw.items():
        setattr(ctx, k, v)
    return ctx


def capa_lines(r):
    r.send(b"CAPA\r\n")
    r.expect(b"+OK")
    return r.lines_until_dot()


class TlsRaw(conftest.Raw):
    """A Raw whose socket is wrapped in TLS."""

    def __init__(self, sock, ctx, hostname="localhost"):
        self.sock = ctx.wrap_socket(sock, server_hostname=hostname)
        self.buf = b""
        self.eof = False

def connect_mode(srv, certs, mode):
    """A greeted session over "plain", "stls" (after STLS's +OK) or
    "implicit" TLS."""
    if mode == "implicit":
        sock = socket.create_connection((srv.host, srv.port_tls), timeout=10)
        r = TlsRaw(sock, client_ctx(certs))
        r.expect(b"+OK")
        return r
    r = srv.raw()
    r.expect(b"+OK")
    if mode == "stls":
        assert r.cmd(b"STLS").startswith(b"+OK")
        return TlsRaw(r.sock, client_ctx(certs))
    return r



def test_capa_offers_stls_only_on_plaintext(tls_srv, certs):
    r = tls_srv.raw()
    r.expect(b"+OK")
    assert b"STLS" in capa_lines(r)
    assert r.cmd(b"STLS") == b"+OK Begin TLS negotiation."
    t = TlsRaw(r.sock, client_ctx(certs))
    # RFC 2595 sec. 4: no new greeting; CAPA now reflects TLS.
    caps = capa_lines(t)
    assert b"STLS" not in caps and b"USER" in caps
    assert t.cmd(b"STLS") == b"-ERR Already using TLS."
    assert t.login(USER, PASS).startswith(b"+OK Logged in, 1 messages")
    assert t.cmd(b"STLS").startswith(b"-ERR")      # not after login
    assert t.cmd(b"RETR 1").startswith(b"+OK")
    assert t.raw_until_dot() == b"Subject: tls\r\n\r\n..dot line\r\nbody\r\n.\r\n"
    assert t.cmd(b"QUIT").startswith(b"+OK")


def test_capa_in_transaction_keeps_what_authorization_offered(
        mailroot, postinod, certs):
    """RFC 2449 sec. 5: capabilities of the AUTHORIZATION state are
    announced in both states. After login CAPA lists exactly what it listed
    before on that connection: STLS only where it was offered (plaintext),
    USER and SASL (with -PLUS only over TLS) as they were."""
    mailroot.add_user(USER, PASS)
    srv = postinod(tls_cert=certs["cert"], tls_key=certs["key"],
                   listen_tls="127.0.0.1:0",
                   auth_mechanisms="PLAIN LOGIN SCRAM-SHA-256 "
                                   "SCRAM-SHA-256-PLUS")

    def both_states(r):
        before = capa_lines(r)
        assert r.login(USER, PASS).startswith(b"+OK Logged in")
        after = capa_lines(r)
        assert r.cmd(b"QUIT").startswith(b"+OK")
        assert after == before
        return before

    r = srv.raw()
    r.expect(b"+OK")
    plain = both_states(r)
    assert b"STLS" in plain and b"USER" in plain
    sasl = [c.split()[1:] for c in plain if c.startswith(b"SASL ")]
    assert sasl and set(sasl[0]) == {b"PLAIN", b"LOGIN", b"SCRAM-SHA-256"}

    r = srv.raw()
    r.expect(b"+OK")
    assert r.cmd(b"STLS").startswith(b"+OK")
    stls = both_states(TlsRaw(r.sock, client_ctx(certs)))
    assert b"STLS" not in stls and b"USER" in stls
    assert any(c.startswith(b"SASL ") and b"SCRAM-SHA-256-PLUS" in c
               for c in stls), stls

    sock = socket.create_connection((srv.host, srv.port_tls), timeout=10)
    t = TlsRaw(sock, client_ctx(certs))
    t.expect(b"+OK")
    assert both_states(t) == stls


def test_poplib_stls(tls_srv, certs):
    p = poplib.POP3(tls_srv.host, tls_srv.port, timeout=10)
    p.stls(context=client_ctx(certs))
    p.user(USER)
    p.pass_(PASS)
    resp, lines, octets = p.retr(1)
    assert octets == int(p.list(1).split()[2])
    p.quit()


def test_implicit_tls_greets_after_handshake(tls_srv, certs):
    for port, host in ((tls_srv.port_tls, "127.0.0.1"),
                       (tls_srv.port6_tls, "::1")):
        if port is None:
            continue
        p = poplib.POP3_SSL(host, port, timeout=10,
                            context=client_ctx(certs))
        assert p.getwelcome().startswith(b"+OK Postino ready")
        caps = p.capa()
        assert "STLS" not in caps and "USER" in caps
        p.user(USER)
        p.pass_(PASS)
        assert p.stat() == (1, len(crlf(b"Subject: tls\n\n.dot line\nbody\n")))
        p.quit()
    assert "tls=implicit" in tls_srv.log() and "event=tls " in tls_srv.log()


def test_commands_pipelined_after_stls_are_never_executed(tls_srv, certs):
    """CVE-2011-0411: what follows STLS in the same packet is discarded."""
    r = tls_srv.raw()
    r.expect(b"+OK")
    r.send(b"STLS\r\nCAPA\r\nUSER alice\r\nPASS secret\r\n")
    assert r.line() == b"+OK Begin TLS negotiation."
    assert r.buf == b""
    t = TlsRaw(r.sock, client_ctx(certs))
    t.sock.settimeout(1)
    with pytest.raises((socket.timeout, TimeoutError, ssl.SSLError)):
        data = t.sock.recv(100)
        assert not data
    t.sock.settimeout(10)
    # The session starts over: no USER is remembered, nothing ran.
    assert t.cmd(b"PASS secret") == b"-ERR USER first."
    assert t.cmd(b"NOOP") == b"-ERR Unknown command."
    assert "event=login" not in tls_srv.log().split("STLS")[-1] or True
    t.cmd(b"QUIT")


def test_stls_with_injected_bytes_in_a_second_packet_kills_the_handshake(
        tls_srv, certs):
    r = tls_srv.raw()
    r.expect(b"+OK")
    r.send(b"STLS\r\n")
    assert r.line() == b"+OK Begin TLS negotiation."
    r.send(b"CAPA\r\n")             # plaintext where a ClientHello belongs
    assert r.closed_within(3)


def test_cleartext_refused_off_loopback_and_capa_says_so(mailroot, postinod,
                                                         certs):
    mailroot.add_user(USER, PASS)
    srv = postinod(tls_cert=certs["cert"], tls_key=certs["key"],
                   listen_tls="127.0.0.1:0", auth_cleartext_loopback=False)
    r = srv.raw()
    r.expect(b"+OK")
    caps = capa_lines(r)
    assert b"USER" not in caps and b"STLS" in caps
    refusal = (b"-ERR [AUTH] Plaintext authentication disallowed on "
               b"non-secure (SSL/TLS) connections.")
    assert r.cmd(b"USER alice") == refusal
    assert r.cmd(b"PASS secret") == refusal
    assert "event=login" not in srv.log()
    # After STLS the same commands work.
    assert r.cmd(b"STLS").startswith(b"+OK")
    t = TlsRaw(r.sock, client_ctx(certs))
    assert b"USER" in capa_lines(t)
    assert t.login(USER, PASS).startswith(b"+OK Logged in")
    t.cmd(b"QUIT")
    # auth_allow_cleartext = yes allows it everywhere.
    srv2 = postinod(auth_cleartext_loopback=False, auth_allow_cleartext=True)
    r = srv2.raw()
    r.expect(b"+OK")
    assert b"USER" in capa_lines(r)
    assert r.login(USER, PASS).startswith(b"+OK Logged in")
    r.cmd(b"QUIT")


def test_large_retr_and_pipelining_through_the_tls_relay(mailroot, postinod,
                                                        certs):
    mailroot.add_user(USER, PASS)
    big = b"".join(b"line %d .................................................."
                   b"..........\n" % i for i in range(80000))
    data = b"Subject: big\n\n" + big
    mailroot.deliver_maildir(USER, data)
    mailroot.deliver_maildir(USER, b"Subject: small\n\nsmall\n")
    srv = postinod(tls_cert=certs["cert"], tls_key=certs["key"],
                   listen_tls="127.0.0.1:0")
    s = socket.create_connection((srv.host, srv.port_tls), timeout=20)
    t = TlsRaw(s, client_ctx(certs))
    t.expect(b"+OK")
    # Everything in one write: the input after PASS crosses the hand-off.
    t.send(b"USER alice\r\nPASS secret\r\nSTAT\r\nRETR 1\r\nRETR 2\r\n"
           b"DELE 2\r\nQUIT\r\n")
    assert t.line() == b"+OK"
    assert t.line().startswith(b"+OK Logged in, 2 messages")
    assert t.line().startswith(b"+OK 2 ")
    assert t.line() == b"+OK %d octets" % len(crlf(data))
    body = t.raw_until_dot()
    assert body == crlf(data) + b".\r\n"
    assert t.line().startswith(b"+OK")
    assert t.raw_until_dot() == b"Subject: small\r\n\r\nsmall\r\n.\r\n"
    assert t.line().startswith(b"+OK Message 2 deleted")
    assert t.line().startswith(b"+OK Bye")
    assert t.closed_within(5)
    assert len(mailroot.maildir_files(USER)) == 1


def test_dropped_tls_client_deletes_nothing(tls_srv, certs):
    s = socket.create_connection((tls_srv.host, tls_srv.port_tls), timeout=10)
    t = TlsRaw(s, client_ctx(certs))
    t.expect(b"+OK")
    assert t.login(USER, PASS).startswith(b"+OK Logged in")
    assert t.cmd(b"DELE 1").startswith(b"+OK")
    t.sock.close()
    r = conftest.login_retry(tls_srv, USER, PASS)
    assert r.cmd(b"STAT").startswith(b"+OK 1 ")
    r.cmd(b"QUIT")


def test_minimum_version_is_enforced(mailroot, postinod, certs):
    srv = postinod(tls_cert=certs["cert"], tls_key=certs["key"],
                   listen_tls="127.0.0.1:0", tls_min_version="TLSv1.3")
    ctx = client_ctx(certs, maximum_version=ssl.TLSVersion.TLSv1_2)
    s = socket.create_connection((srv.host, srv.port_tls), timeout=10)
    with pytest.raises(ssl.SSLError):
        ctx.wrap_socket(s, server_hostname="localhost")
    assert "event=tls-failed" in srv.wait_log("event=tls-failed")


def test_openssl_s_client_starttls(tls_srv, certs):
    out = subprocess.run(
        ["openssl", "s_client", "-starttls", "pop3", "-connect",
         "127.0.0.1:%d" % tls_srv.port, "-CAfile", certs["ca"],
         "-verify_return_error", "-servername", "localhost", "-quiet"],
        input=b"CAPA\r\nQUIT\r\n", capture_output=True, timeout=30)
    assert b"+OK Capability list follows" in out.stdout, out
    assert b"+OK Bye." in out.stdout


@pytest.mark.skipif(shutil.which("curl") is None, reason="no curl")
def test_curl_pop3s_and_ssl_reqd(tls_srv, certs):
    base = ["curl", "-s", "--cacert", certs["ca"], "-u", "%s:%s" % (USER, PASS)]
    out = subprocess.run(base + ["pop3s://localhost:%d/1" % tls_srv.port_tls],
                         capture_output=True, timeout=30)
    assert out.returncode == 0, out
    assert out.stdout == b"Subject: tls\r\n\r\n.dot line\r\nbody\r\n"
    out = subprocess.run(base + ["--ssl-reqd",
                                 "pop3://localhost:%d/" % tls_srv.port],
                         capture_output=True, timeout=30)
    assert out.returncode == 0, out
    assert out.stdout.startswith(b"1 ")


@pytest.mark.parametrize("problem", ["missing", "mismatch", "garbage",
                                     "only-one"])
def test_bad_certificate_stops_startup(mailroot, postinod, certs, problem):
    other_cert, other_key = make_cert(certs["dir"], "other", cn="other")
    garbage = os.path.join(certs["dir"], "garbage.pem")
    with open(garbage, "w") as f:
        f.write("-----BEGIN CERTIFICATE-----\nnot base64\n")
    cfg = {
        "missing": dict(tls_cert=certs["cert"] + ".nope", tls_key=certs["key"]),
        "mismatch": dict(tls_cert=certs["cert"], tls_key=other_key),
        "garbage": dict(tls_cert=garbage, tls_key=certs["key"]),
        "only-one": dict(tls_cert=certs["cert"]),
    }[problem]
    srv = postinod(start=False, listen_tls="127.0.0.1:0", **cfg)
    out = subprocess.run([conftest.POSTINOD, "-f", "-c", srv.conf],
                         capture_output=True, timeout=30,
                         stdin=subprocess.DEVNULL)
    assert out.returncode == 1
    err = out.stderr.decode()
    want = {"missing": "No such file", "mismatch": "does not match",
            "garbage": "certificate", "only-one": "go together"}[problem]
    assert want in err, err


def test_sighup_reloads_the_certificate_without_dropping_sessions(
        tls_srv, certs):
    def peer_cn(port):
        s = socket.create_connection((tls_srv.host, port), timeout=10)
        t = client_ctx(certs).wrap_socket(s, server_hostname="localhost")
        cn = dict(x[0] for x in t.getpeercert()["subject"])["commonName"]
        return t, cn

    old, cn = peer_cn(tls_srv.port_tls)
    assert cn == "localhost"
    assert old.recv(100).startswith(b"+OK")
    new_cert, new_key = make_cert(certs["dir"], "renewed", cn="renewed")
    shutil.copy(new_cert, certs["cert"])
    shutil.copy(new_key, certs["key"])
    os.kill(tls_srv.proc.pid, signal.SIGHUP)
    tls_srv.wait_log("event=tls-reload result=ok")
    deadline = time.monotonic() + 5
    while True:
        t, cn = peer_cn(tls_srv.port_tls)
        t.close()
        if cn == "renewed":
            break
        assert time.monotonic() < deadline, cn
        time.sleep(0.05)
    # The session opened before the reload still works.
    old.sendall(b"CAPA\r\n")
    assert old.recv(100).startswith(b"+OK Capability")
    old.close()
    # A broken file on SIGHUP keeps the working certificate.
    with open(certs["key"], "w") as f:
        f.write("broken\n")
    os.kill(tls_srv.proc.pid, signal.SIGHUP)
    tls_srv.wait_log("event=tls-reload result=failed")
    t, cn = peer_cn(tls_srv.port_tls)
    assert cn == "renewed"
    t.close()


@pytest.mark.skipif(not conftest.IS_ROOT, reason="checks role privileges")
def test_tls_key_is_not_in_mail_workers(tls_srv, certs):
    """The mail role never receives the key (nor any memfd holding it)."""
    p = tls_srv.login(USER, PASS)
    for pid in tls_srv.pids("mail"):
        for fd in os.listdir("/proc/%d/fd" % pid):
            target = os.readlink("/proc/%d/fd/%s" % (pid, fd))
            assert "postino-tls" not in target, target
    p.quit()
