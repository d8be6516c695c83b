"""postino over TLS and with SASL, against the real postinod (STLS,
implicit TLS, each SASL mechanism on its own), Dovecot, and fake servers
written here for what a real server would not do: refuse STLS, inject
data after it, get the SCRAM server signature wrong, or skip it.

What must hold: the certificate is verified (CA, host name or IP, or a
pinned fingerprint) before a byte of the login goes out; a server without
STLS gets no password; one login method is tried, the strongest offered;
a SCRAM server that cannot prove it knows the password gets nothing more.
"""

import base64
import hashlib
import hmac
import os
import re
import ssl
import time

import pytest

from conftest import HAVE_IPV6, openssl
# home and dovecot are fixtures: imported so pytest finds them here.
from test_client import (FakeServer, dovecot, free_port, home,  # noqa: F401
                         local, seed_messages, server_snapshot)

USER, PASSWORD = "alice", "s3cret-Pass_42"
ALL = "PLAIN LOGIN CRAM-MD5 SCRAM-SHA-256 SCRAM-SHA-256-PLUS"
TIMEOUT = 120


def run(home, *args, password=PASSWORD, timeout=TIMEOUT):
    return home.run(*args, password=password, timeout=timeout)


def logins(srv):
    """The server's login log lines."""
    return [l for l in srv.log().splitlines() if "event=login " in l]


@pytest.fixture
def tls_server(mailroot, postinod, certs):
    """postinod with STLS on .port and implicit TLS on .port_tls, a
    {PLAIN} user (every mechanism can work) holding the seed messages."""

    def start(scheme="PLAIN", **config):
        mailroot.add_user(USER, PASSWORD, scheme=scheme)
        for m in seed_messages():
            mailroot.deliver_maildir(USER, m)
        config.setdefault("listen", "127.0.0.1:0")
        config.setdefault("listen_tls", "127.0.0.1:0")
        return postinod(tls_cert=config.pop("cert", certs["cert"]),
                        tls_key=config.pop("key", certs["key"]), **config)

    return start


def pop3(host, port, scheme="pop3"):
    if ":" in host:
        host = "[%s]" % host
    return "%s://%s@%s:%d" % (scheme, USER, host, port)


def cert_with_names(certs, name, san):
    """A certificate from the test CA for the given subjectAltName only."""
    d = certs["dir"]
    openssl("req", "-new", "-newkey", "ec", "-pkeyopt",
            "ec_paramgen_curve:prime256v1", "-nodes", "-subj",
            "/CN=" + name, "-keyout", name + ".key", "-out", name + ".csr",
            cwd=d)
    with open(os.path.join(d, name + ".ext"), "w") as f:
        f.write("subjectAltName=%s\n" % san)
    openssl("x509", "-req", "-in", name + ".csr", "-CA", "ca.pem", "-CAkey",
            "ca.key", "-CAcreateserial", "-days", "2", "-extfile",
            name + ".ext", "-out", name + ".pem", cwd=d)
    return os.path.join(d, name + ".pem"), os.path.join(d, name + ".key")


def self_signed(certs, name="selfsigned"):
    d = certs["dir"]
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt",
            "ec_paramgen_curve:prime256v1", "-nodes", "-subj", "/CN=" + name,
            "-addext", "subjectAltName=DNS:localhost", "-days", "2",
            "-keyout", name + ".key", "-out", name + ".pem", cwd=d)
    return os.path.join(d, name + ".pem"), os.path.join(d, name + ".key")


def other_ca(certs):
    d = os.path.join(certs["dir"], "other")
    os.mkdir(d)
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt",
            "ec_paramgen_curve:prime256v1", "-nodes", "-subj",
            "/CN=Other CA", "-days", "2", "-keyout", "ca.key", "-out",
            "ca.pem", cwd=d)
    return os.path.join(d, "ca.pem")


def sha256_fingerprint(pem_path, colons=True):
    with open(pem_path) as f:
        der = ssl.PEM_cert_to_DER_cert(f.read())
    h = hashlib.sha256(der).hexdigest().upper()
    if colons:
        return ":".join(h[i:i + 2] for i in range(0, len(h), 2))
    return h.lower()


def assert_untouched(home, srv):
    """Nothing fetched, nothing deleted, no login attempted."""
    assert not os.path.exists(os.path.join(home.maildir, "new")) or \
        home.new_messages() == []
    assert home.state_ids() == []
    assert logins(srv) == []
    n = len(os.listdir(os.path.join(conftest_maildir(srv), "new")))
    assert n == len(seed_messages())


def conftest_maildir(srv):
    return os.path.join(srv.root.path, "home", USER, "Maildir")


# ---------------------------------------------------------------------------
# TLS against postinod
# ---------------------------------------------------------------------------

def test_fetch_over_stls_is_the_default(tls_server, certs, home):
    srv = tls_server(auth_mechanisms=ALL)
    cp = run(home, "fetch", "-4", "--cafile", certs["ca"], "--verbose",
             "--maildir", home.maildir, pop3("localhost", srv.port))
    assert cp.returncode == 0, cp.stderr
    assert sorted(home.new_messages()) == sorted(local(m)
                                                 for m in seed_messages())
    err = cp.stderr.decode()
    # STLS, then CAPA again (RFC 2595 sec. 4), then the login over TLS.
    assert re.search(r"C: STLS\nS: \+OK.*\npostino: TLSv1\.[23], \S+, "
                     r"certificate verified\nC: CAPA\n", err), err
    assert PASSWORD not in err
    [line] = logins(srv)
    assert "result=ok" in line and "method=SCRAM-SHA-256-PLUS" in line
    assert server_snapshot(srv.host, srv.port, USER, PASSWORD)[0] == 0


def test_fetch_over_implicit_tls_pop3s(tls_server, certs, home):
    srv = tls_server()
    cp = run(home, "fetch", "-4", "--keep", "--cafile", certs["ca"],
             "--maildir", home.maildir,
             pop3("localhost", srv.port_tls, "pop3s"))
    assert cp.returncode == 0, cp.stderr
    assert len(home.new_messages()) == len(seed_messages())
    assert "tls=implicit" in srv.log()
    # The same with --tls=implicit on a pop3:// URL, to an IP literal:
    # the certificate's IP address is checked.
    cp = run(home, "stat", "--tls=implicit", "--cafile", certs["ca"],
             pop3("127.0.0.1", srv.port_tls))
    assert cp.returncode == 0, cp.stderr
    assert cp.stdout.decode().startswith("%d messages" % len(seed_messages()))


def test_pop3s_defaults_to_port_995(home):
    cp = run(home, "stat", "--verbose", "--timeout", "2",
             "pop3s://alice@127.0.0.1")
    assert cp.returncode == 2, cp.stderr
    assert "127.0.0.1:995" in cp.stderr.decode()


@pytest.mark.parametrize("mode", ["stls", "implicit"])
def test_unknown_ca_exit_3_nothing_fetched(mode, tls_server, certs, home):
    srv = tls_server()
    port = srv.port if mode == "stls" else srv.port_tls
    cp = run(home, "fetch", "-4", "--tls=" + mode, "--cafile",
             other_ca(certs), "--maildir", home.maildir,
             pop3("localhost", port))
    assert cp.returncode == 3, cp.stderr
    assert cp.stderr.decode() == (
        "postino: localhost:%d: TLS: certificate verify failed "
        "(unable to get local issuer certificate); if this is the right "
        "certificate: --tls-fingerprint %s\n"
        % (port, sha256_fingerprint(certs["cert"])))
    assert_untouched(home, srv)


def test_system_store_does_not_trust_the_test_ca(tls_server, home):
    srv = tls_server()
    cp = run(home, "stat", "-4", pop3("localhost", srv.port_tls, "pop3s"))
    assert cp.returncode == 3, cp.stderr
    assert "certificate verify failed" in cp.stderr.decode()
    assert logins(srv) == []


@pytest.mark.parametrize("host,why", [
    ("localhost", "hostname mismatch"),
    ("127.0.0.1", "IP address mismatch"),
])
def test_name_mismatch_exit_3(host, why, tls_server, certs, home):
    cert, key = cert_with_names(certs, "other", "DNS:mail.example.org")
    srv = tls_server(cert=cert, key=key)
    for mode, port in (("stls", srv.port), ("implicit", srv.port_tls)):
        cp = run(home, "fetch", "-4", "--tls=" + mode, "--cafile",
                 certs["ca"], "--maildir", home.maildir, pop3(host, port))
        assert cp.returncode == 3, cp.stderr
        assert cp.stderr.decode() == (
            "postino: %s:%d: TLS: certificate verify failed (%s); if this "
            "is the right certificate: --tls-fingerprint %s\n"
            % (host, port, why, sha256_fingerprint(cert)))
    assert_untouched(home, srv)


def test_ipv6_literal_is_verified_as_an_address(mailroot, postinod, certs,
                                               home):
    if not HAVE_IPV6:
        pytest.skip("no IPv6 loopback")
    mailroot.add_user(USER, PASSWORD)
    srv = postinod(tls_cert=certs["cert"], tls_key=certs["key"],
                   listen="[::1]:0", listen_tls="[::1]:0")
    cp = run(home, "stat", "--cafile", certs["ca"],
             pop3("::1", srv.port6_tls, "pop3s"))
    assert cp.returncode == 0, cp.stderr


def test_pinned_fingerprint(tls_server, certs, home):
    cert, key = self_signed(certs)
    srv = tls_server(cert=cert, key=key)
    for fp in (sha256_fingerprint(cert), sha256_fingerprint(cert, False)):
        cp = run(home, "stat", "-4", "--tls-fingerprint", fp,
                 pop3("localhost", srv.port))
        assert cp.returncode == 0, cp.stderr
    # The pin replaces the CA check, not the encryption: the login went
    # over TLS.
    assert len(logins(srv)) == 2
    # Without the pin the self-signed certificate is refused.
    cp = run(home, "stat", "-4", "--cafile", certs["ca"],
             pop3("localhost", srv.port))
    assert cp.returncode == 3, cp.stderr


def test_self_signed_prints_the_fingerprint_to_pin(tls_server, certs, home):
    """Issue 13 finding 7: a certificate that does not verify is refused
    (exit 3) with its SHA-256 fingerprint, ready for --tls-fingerprint."""
    cert, key = self_signed(certs)
    srv = tls_server(cert=cert, key=key)
    cp = run(home, "stat", "-4", pop3("localhost", srv.port_tls, "pop3s"))
    assert cp.returncode == 3, cp.stderr
    err = cp.stderr.decode()
    m = re.search(r"--tls-fingerprint ([0-9A-F:]{95})$", err.strip())
    assert m and m.group(1) == sha256_fingerprint(cert), err
    assert logins(srv) == []
    cp = run(home, "stat", "-4", "--tls-fingerprint", m.group(1),
             pop3("localhost", srv.port_tls, "pop3s"))
    assert cp.returncode == 0, cp.stderr


def test_implicit_tls_to_a_plain_port_says_so(tls_server, home):
    """Issue 13 finding 7: pop3s:// to a plaintext POP3 port is exit 3 with
    a message that names the likely cause, not only OpenSSL's."""
    srv = tls_server()
    cp = run(home, "stat", "-4", pop3("localhost", srv.port, "pop3s"))
    assert cp.returncode == 3, cp.stderr
    assert "does not speak TLS on this port" in cp.stderr.decode()
    assert logins(srv) == []


def test_stls_to_an_implicit_tls_port_fails_fast(tls_server, certs, home):
    """Issue 13 finding 7: pop3:// (STLS) to a port that expects TLS at
    once fails within seconds (not at the 60 s timeout), saying what to
    use instead. postinod closes the connection on the early CAPA (exit
    2, a connection failure); a server answering with a TLS alert gives
    exit 3."""
    srv = tls_server()
    t0 = time.monotonic()
    cp = run(home, "stat", "-4", "--cafile", certs["ca"],
             pop3("localhost", srv.port_tls))
    assert time.monotonic() - t0 < 15
    assert cp.returncode == 2, cp.stderr
    assert "pop3s://" in cp.stderr.decode()
    assert logins(srv) == []


def test_wrong_fingerprint_exit_3_no_login(tls_server, certs, home):
    srv = tls_server()
    wrong = sha256_fingerprint(certs["ca"])     # the CA's, not the server's
    for port, mode in ((srv.port, "stls"), (srv.port_tls, "implicit")):
        cp = run(home, "fetch", "-4", "--tls=" + mode, "--tls-fingerprint",
                 wrong, "--maildir", home.maildir, pop3("localhost", port))
        assert cp.returncode == 3, cp.stderr
        err = cp.stderr.decode()
        assert "TLS: certificate fingerprint mismatch (the server's " \
            "SHA-256 is %s)" % sha256_fingerprint(certs["cert"]) in err, err
    assert_untouched(home, srv)


def test_bad_fingerprint_or_auth_is_a_usage_error(home):
    for args in (["--tls-fingerprint", "AB:CD"],
                 ["--tls-fingerprint", "g" * 64],
                 ["--tls-fingerprint", "ab" * 33],
                 ["--tls=no", "--tls-fingerprint", "ab" * 32],
                 ["--auth=digest-md5"]):
        cp = run(home, "stat", *args, "alice@127.0.0.1:1")
        assert cp.returncode == 1, (args, cp.stderr)


def test_no_stls_offered_exit_3_and_no_password_sent(mailroot, postinod,
                                                     home):
    mailroot.add_user(USER, PASSWORD)
    srv = postinod(auth_mechanisms=ALL)         # no certificate: no STLS
    cp = run(home, "stat", "--verbose", pop3("127.0.0.1", srv.port))
    assert cp.returncode == 3, cp.stderr
    err = cp.stderr.decode()
    assert "TLS: the server does not offer STLS" in err
    sent = [l for l in err.splitlines() if l.startswith("C: ")]
    assert sent == ["C: CAPA"], sent
    time.sleep(0.2)
    assert logins(srv) == []


def stls_fake(reply):
    """A server offering STLS that answers it with reply, then reads on."""

    def script(srv, conn, rf):
        conn.sendall(b"+OK fake\r\n")
        while True:
            line = srv.cmd(rf)
            if line == b"CAPA":
                conn.sendall(b"+OK\r\nUSER\r\nSTLS\r\nSASL PLAIN\r\n.\r\n")
            elif line == b"STLS":
                if callable(reply):
                    reply(conn)
                else:
                    conn.sendall(reply)
            else:
                conn.sendall(b"-ERR no\r\n")

    return script


@pytest.mark.parametrize("reply,code,text", [
    (b"-ERR TLS is broken today\r\n", 3, "TLS: the server refused it"),
    # RFC 2595 sec. 4: nothing may follow +OK before the handshake; what
    # does is someone's injection.
    (b"+OK Begin TLS\r\n+OK Logged in\r\n", 7, "after STLS's +OK"),
    (lambda conn: (conn.sendall(b"+OK Begin TLS\r\n"), conn.recv(4096),
                   conn.sendall(b"not a TLS record\r\n" * 10)),
     3, "TLS: wrong version number"),
], ids=["refused", "injected", "garbage"])
def test_stls_refused_or_broken_never_falls_back(reply, code, text, home):
    srv = FakeServer(stls_fake(reply))
    try:
        cp = run(home, "stat", "--timeout", "5", pop3("127.0.0.1", srv.port))
    finally:
        srv.close()
    assert cp.returncode == code, cp.stderr
    assert text in cp.stderr.decode(), cp.stderr
    assert not any(l.split(b" ")[0] in (b"USER", b"PASS", b"AUTH", b"APOP")
                   for l in srv.received), srv.received


def test_tls_no_must_be_explicit_for_plaintext(mailroot, postinod, home):
    mailroot.add_user(USER, PASSWORD)
    srv = postinod()
    cp = run(home, "stat", "--tls=no", pop3("127.0.0.1", srv.port))
    assert cp.returncode == 0, cp.stderr
    cp = run(home, "stat", pop3("127.0.0.1", srv.port))
    assert cp.returncode == 3, cp.stderr


# ---------------------------------------------------------------------------
# SASL against postinod: each mechanism on its own, the choice, failures
# ---------------------------------------------------------------------------

# Over TLS, a client that could bind but is not offered -PLUS sends the "y"
# flag (RFC 5802 sec. 6): postinod must accept it then (it once refused it
# as a downgrade because it handed SCRAM the binding data anyway).


@pytest.mark.parametrize("offered,expect", [
    ("SCRAM-SHA-256-PLUS", "SCRAM-SHA-256-PLUS"),
    ("SCRAM-SHA-256", "SCRAM-SHA-256"),
    ("CRAM-MD5", "CRAM-MD5"),
    ("PLAIN", "PLAIN"),
    ("LOGIN", "LOGIN"),
    (ALL, "SCRAM-SHA-256-PLUS"),
    ("PLAIN LOGIN CRAM-MD5 SCRAM-SHA-256", "SCRAM-SHA-256"),
    ("PLAIN LOGIN CRAM-MD5", "CRAM-MD5"),
    ("PLAIN LOGIN", "PLAIN"),
])
@pytest.mark.parametrize("mode", ["stls", "implicit"])
def test_strongest_offered_mechanism_is_used(offered, expect, mode,
                                             tls_server, certs, home):
    srv = tls_server(auth_mechanisms=offered)
    port = srv.port if mode == "stls" else srv.port_tls
    cp = run(home, "fetch", "-4", "--tls=" + mode, "--cafile", certs["ca"],
             "--verbose", "--maildir", home.maildir,
             pop3("localhost", port))
    assert cp.returncode == 0, cp.stderr
    assert len(home.new_messages()) == len(seed_messages())
    [line] = logins(srv)
    assert "result=ok" in line and "method=%s " % expect in line, line
    err = cp.stderr.decode()
    assert "(%s" % expect in err
    if expect == "SCRAM-SHA-256-PLUS":
        # RFC 9266: tls-exporter on TLS 1.3.
        assert "(SCRAM-SHA-256-PLUS, tls-exporter)" in err, err


def test_apop_and_user_when_no_sasl(tls_server, certs, home):
    srv = tls_server(apop=True)
    cp = run(home, "stat", "-4", "--cafile", certs["ca"],
             pop3("localhost", srv.port))
    assert cp.returncode == 0, cp.stderr
    # APOP is stronger than PLAIN (the server's default SASL list).
    assert "method=APOP " in logins(srv)[-1]
    for method, logged in (("user", "USER"), ("plain", "PLAIN"),
                           ("login", "LOGIN"), ("apop", "APOP")):
        cp = run(home, "stat", "-4", "--cafile", certs["ca"],
                 "--auth=" + method, pop3("localhost", srv.port))
        assert cp.returncode == 0, (method, cp.stderr)
        assert "method=%s " % logged in logins(srv)[-1]


def test_forced_method(tls_server, certs, home):
    srv = tls_server(auth_mechanisms=ALL)
    for method, logged in (("scram-sha-256", "SCRAM-SHA-256"),
                           ("CRAM-MD5", "CRAM-MD5"), ("plain", "PLAIN"),
                           ("user", "USER")):
        cp = run(home, "stat", "-4", "--cafile", certs["ca"],
                 "--auth=" + method, pop3("localhost", srv.port))
        assert cp.returncode == 0, (method, cp.stderr)
        assert "method=%s " % logged in logins(srv)[-1]


def test_failed_login_tries_one_method_only(tls_server, certs, home):
    srv = tls_server(auth_mechanisms=ALL, apop=True)
    cp = run(home, "stat", "-4", "--cafile", certs["ca"],
             pop3("localhost", srv.port), password="wrong")
    assert cp.returncode == 4, cp.stderr
    err = cp.stderr.decode()
    assert err.count("\n") == 1, err
    assert "authentication failed for alice" in err
    assert "--auth=METHOD" in err
    srv.wait_log("result=fail")
    time.sleep(0.3)
    [line] = logins(srv)
    assert "result=fail" in line and "method=SCRAM-SHA-256-PLUS" in line


def test_crypt_user_needs_a_password_sending_method(tls_server, certs, home):
    """A crypt(3) hash cannot answer SCRAM: the login fails with a hint,
    and --auth=plain works."""
    srv = tls_server(scheme="SHA512-CRYPT", auth_mechanisms=ALL)
    cp = run(home, "stat", "-4", "--cafile", certs["ca"],
             pop3("localhost", srv.port))
    assert cp.returncode == 4, cp.stderr
    assert "tried only SCRAM-SHA-256-PLUS" in cp.stderr.decode()
    cp = run(home, "stat", "-4", "--cafile", certs["ca"], "--auth=plain",
             pop3("localhost", srv.port))
    assert cp.returncode == 0, cp.stderr


def test_verbose_masks_auth_payloads(tls_server, certs, home):
    srv = tls_server(auth_mechanisms=ALL)
    secrets = [PASSWORD, base64.b64encode(PASSWORD.encode()).decode(),
               base64.b64encode(b"\0alice\0" + PASSWORD.encode()).decode()]
    for method, shown in (("plain", ["C: AUTH PLAIN ********"]),
                          ("login", ["C: AUTH LOGIN", "C: ********"]),
                          ("scram-sha-256-plus",
                           ["C: AUTH SCRAM-SHA-256-PLUS ********",
                            "C: ********"]),
                          ("cram-md5", ["C: AUTH CRAM-MD5", "C: ********"])):
        cp = run(home, "stat", "-4", "-v", "--cafile", certs["ca"],
                 "--auth=" + method, pop3("localhost", srv.port))
        assert cp.returncode == 0, cp.stderr
        err = cp.stderr.decode()
        for s in secrets:
            assert s not in err, (method, err)
        lines = err.splitlines()
        for s in shown:
            assert s in lines, (method, err)
        # Every client line after AUTH is masked (or an empty response).
        i = next(k for k, l in enumerate(lines) if l.startswith("C: AUTH"))
        for l in lines[i + 1:]:
            if l.startswith("C: ") and "STAT" not in l and "QUIT" not in l:
                assert l in ("C: ********", "C: "), (method, l)


def test_cleartext_methods_refused_without_tls_unless_no(tls_server, certs,
                                                         home):
    srv = tls_server(auth_mechanisms=ALL)
    # Over plaintext (--tls=no, asked for) the strongest is SCRAM.
    cp = run(home, "stat", "--tls=no", pop3("127.0.0.1", srv.port))
    assert cp.returncode == 0, cp.stderr
    assert "method=SCRAM-SHA-256 " in logins(srv)[-1]
    cp = run(home, "stat", "--tls=no", "--auth=plain",
             pop3("127.0.0.1", srv.port))
    assert cp.returncode == 0, cp.stderr
    assert "method=PLAIN " in logins(srv)[-1]
    # -PLUS needs TLS.
    cp = run(home, "stat", "--tls=no", "--auth=scram-sha-256-plus",
             pop3("127.0.0.1", srv.port))
    assert cp.returncode == 3, cp.stderr


# ---------------------------------------------------------------------------
# Fake SCRAM servers: a signature that does not verify, one that is missing
# ---------------------------------------------------------------------------

def scram_fake(password, mode, mech=b"SCRAM-SHA-256", gs2=b"n,,", cb=b""):
    """A server offering only mech. mode: "good", "bad-signature",
    "no-signature", "low-iterations". The client must send the gs2 header
    gs2 and, in c=, gs2 + cb (RFC 5802 sec. 7)."""

    def b64(b):
        return base64.b64encode(b)

    def script(srv, conn, rf):
        conn.sendall(b"+OK fake\r\n")
        while True:
            line = srv.cmd(rf)
            word = line.split(b" ")[0].upper()
            if word == b"CAPA":
                conn.sendall(b"+OK\r\nUIDL\r\nSASL " + mech + b"\r\n.\r\n")
            elif word == b"AUTH":
                assert line.split(b" ")[1] == mech, line
                first = base64.b64decode(line.split(b" ")[2])
                assert first.startswith(gs2), first
                bare = first[len(gs2):]
                cnonce = dict(kv.split(b"=", 1)
                              for kv in bare.split(b","))[b"r"]
                salt = os.urandom(16)
                it = 1024 if mode == "low-iterations" else 4096
                sfirst = b"r=%s%s,s=%s,i=%d" % (cnonce, b"srvnonce", b64(salt),
                                                it)
                conn.sendall(b"+ " + b64(sfirst) + b"\r\n")
                final = base64.b64decode(srv.cmd(rf))
                without_proof = final[:final.index(b",p=")]
                if not final.startswith(b"c=" + b64(gs2 + cb) + b","):
                    conn.sendall(b"-ERR [AUTH] channel binding\r\n")
                    continue
                auth_msg = bare + b"," + sfirst + b"," + without_proof
                salted = hashlib.pbkdf2_hmac("sha256", password.encode(),
                                             salt, it)
                skey = hmac.new(salted, b"Server Key", "sha256").digest()
                sig = hmac.new(skey, auth_msg, "sha256").digest()
                if mode == "bad-signature":
                    sig = bytes([sig[0] ^ 1]) + sig[1:]
                if mode == "no-signature":
                    conn.sendall(b"+OK Logged in\r\n")
                    continue
                conn.sendall(b"+ " + b64(b"v=" + b64(sig)) + b"\r\n")
                if srv.cmd(rf) != b"":
                    raise EOFError
                conn.sendall(b"+OK Logged in\r\n")
            elif word == b"STAT":
                conn.sendall(b"+OK 0 0\r\n")
            elif word == b"QUIT":
                conn.sendall(b"+OK bye\r\n")
                return
            else:
                conn.sendall(b"-ERR no\r\n")

    return script


@pytest.mark.parametrize("mode,code,text", [
    ("good", 0, ""),
    ("bad-signature", 4, "server signature mismatch"),
    ("no-signature", 4, "server signature mismatch"),
    ("low-iterations", 7, "iteration count 1024 refused"),
])
def test_scram_server_must_prove_itself(mode, code, text, home):
    srv = FakeServer(scram_fake(PASSWORD, mode))
    try:
        cp = run(home, "stat", "--tls=no", "--timeout", "10",
                 pop3("127.0.0.1", srv.port))
    finally:
        srv.close()
    assert cp.returncode == code, cp.stderr
    assert text in cp.stderr.decode()
    words = [l.split(b" ")[0] for l in srv.received]
    if code == 0:
        assert words[-2:] == [b"STAT", b"QUIT"]
    else:
        # Nothing after the failed exchange: no STAT, no QUIT.
        assert b"STAT" not in words and b"QUIT" not in words, words
    if mode == "low-iterations":
        # No proof was sent for a cheap-to-crack iteration count.
        assert len(words) == 2, srv.received


# ---------------------------------------------------------------------------
# Timeouts over TLS
# ---------------------------------------------------------------------------

def tls_fake(certs, script, maximum_version=None):
    """A FakeServer whose connections are implicit TLS."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(certs["cert"], certs["key"])
    if maximum_version is not None:
        ctx.maximum_version = maximum_version

    def wrapped(srv, conn, rf):
        rf.close()
        t = ctx.wrap_socket(conn, server_side=True)
        trf = t.makefile("rb")
        try:
            script(srv, t, trf)
        finally:
            trf.close()
            t.close()

    return wrapped


def test_silent_server_times_out_over_tls(certs, home):
    def silent(srv, conn, rf):
        conn.sendall(b"+OK hi\r\n")
        srv.cmd(rf)                     # CAPA
        time.sleep(5)

    srv = FakeServer(tls_fake(certs, silent))
    try:
        t0 = time.monotonic()
        cp = run(home, "stat", "-4", "--timeout", "1", "--cafile",
                 certs["ca"], pop3("localhost", srv.port, "pop3s"),
                 timeout=30)
        assert time.monotonic() - t0 < 4
    finally:
        srv.close()
    assert cp.returncode == 2, cp.stderr
    assert "timed out" in cp.stderr.decode()


def test_server_that_never_handshakes_times_out(home):
    def mute(srv, conn, rf):
        time.sleep(5)

    srv = FakeServer(mute)
    try:
        t0 = time.monotonic()
        cp = run(home, "stat", "--timeout", "1",
                 pop3("127.0.0.1", srv.port, "pop3s"), timeout=30)
        assert time.monotonic() - t0 < 4
    finally:
        srv.close()
    assert cp.returncode == 3, cp.stderr
    assert "TLS: timed out during the handshake" in cp.stderr.decode()


# ---------------------------------------------------------------------------
# Dovecot as an independent peer over TLS
# ---------------------------------------------------------------------------

def test_dovecot_stls_and_implicit(dovecot, certs, home):
    d = dovecot()
    d.port_tls = free_port()
    for m in seed_messages():
        d.deliver(m)
    with open(d.conf) as f:
        conf = f.read()
    conf = conf.replace("ssl = no\n", "ssl = required\nssl_cert = <%s\n"
                        "ssl_key = <%s\n" % (certs["cert"], certs["key"]))
    conf = conf.replace("auth_mechanisms = plain\n",
                        "auth_mechanisms = plain login cram-md5 "
                        "scram-sha-256\n")
    conf = conf.replace("""    port = %d
  }
""" % d.port, """    port = %d
  }
  inet_listener pop3s {
    address = 127.0.0.1
    port = %d
    ssl = yes
  }
""" % (d.port, d.port_tls))
    with open(d.conf, "w") as f:
        f.write(conf)
    d.start()
    cp = run(home, "fetch", "-4", "--keep", "--cafile", certs["ca"], "-v",
             "--maildir", home.maildir, pop3("localhost", d.port))
    assert cp.returncode == 0, cp.stderr
    assert len(home.new_messages()) == len(seed_messages())
    err = cp.stderr.decode()
    # Dovecot 2.3 has no -PLUS: SCRAM-SHA-256 with the "y" flag.
    assert "(SCRAM-SHA-256)" in err, err
    cp = run(home, "stat", "-4", "--cafile", certs["ca"],
             pop3("localhost", d.port_tls, "pop3s"))
    assert cp.returncode == 0, cp.stderr
    cp = run(home, "stat", "-4", "--cafile", certs["ca"], "--auth=cram-md5",
             pop3("localhost", d.port_tls, "pop3s"))
    assert cp.returncode == 0, cp.stderr


def test_named_account_with_pin_and_auth(tls_server, certs, home):
    cert, key = self_signed(certs)
    srv = tls_server(cert=cert, key=key, auth_mechanisms=ALL)
    cfg = os.path.join(home.path, "config", "postino")
    os.makedirs(cfg)
    with open(os.path.join(cfg, "config"), "w") as f:
        f.write("account pinned\n  url pop3s://%s@localhost:%d\n"
                "  family 4\n  tls-fingerprint %s\n  auth cram-md5\n"
                "  maildir %s\n" % (USER, srv.port_tls,
                                    sha256_fingerprint(cert, False),
                                    home.maildir))
    cp = run(home, "fetch", "--keep", "pinned")
    assert cp.returncode == 0, cp.stderr
    assert len(home.new_messages()) == len(seed_messages())
    assert "method=CRAM-MD5 " in logins(srv)[-1]
    # The command line wins over the file.
    cp = run(home, "stat", "--auth=scram-sha-256-plus", "pinned")
    assert cp.returncode == 0, cp.stderr
    assert "method=SCRAM-SHA-256-PLUS " in logins(srv)[-1]


def test_scram_plus_tls_server_end_point_on_tls12(certs, home):
    """TLS 1.2 has no tls-exporter: -PLUS binds to the certificate's hash
    (RFC 5929 sec. 4.1), checked by a SCRAM server written here."""
    with open(certs["cert"]) as f:
        end_point = hashlib.sha256(ssl.PEM_cert_to_DER_cert(f.read())).digest()
    script = scram_fake(PASSWORD, "good", mech=b"SCRAM-SHA-256-PLUS",
                        gs2=b"p=tls-server-end-point,,", cb=end_point)
    ctx_max = ssl.TLSVersion.TLSv1_2
    srv = FakeServer(tls_fake(certs, script, maximum_version=ctx_max))
    try:
        cp = run(home, "stat", "-4", "-v", "--cafile", certs["ca"],
                 pop3("localhost", srv.port, "pop3s"))
    finally:
        srv.close()
    assert cp.returncode == 0, cp.stderr
    err = cp.stderr.decode()
    assert "TLSv1.2" in err
    assert "(SCRAM-SHA-256-PLUS, tls-server-end-point)" in err, err
