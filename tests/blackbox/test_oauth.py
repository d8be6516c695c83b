"""OAuth 2.0 in postinod (issue 13): SASL OAUTHBEARER (RFC 7628) and
XOAUTH2 with JWT access tokens checked against oauth2_jwt_key (RS256 and
ES256), offered only when configured and, like PLAIN, only where
cleartext logins are allowed or over TLS; a refused token gets RFC 7628's
error challenge and then -ERR [AUTH]. And postino end to end: fetch with
a token-command over STLS, and an expired token (exit 4, nothing fetched).

Tokens are signed here with python3-cryptography (tests/deps.sh)."""

import base64
import json
import os
import time

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import \
    decode_dss_signature

from conftest import pop3_size  # noqa: F401  (keeps conftest's helpers)
from test_client import home, local, seed_messages  # noqa: F401

USER, PASSWORD = "alice", "s3cret-Pass_42"
MECHS = "PLAIN OAUTHBEARER XOAUTH2"
TIMEOUT = 120


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class Signer:
    def __init__(self, kind):
        self.kind = kind
        if kind == "RS256":
            self.key = rsa.generate_private_key(public_exponent=65537,
                                                key_size=2048)
        else:
            self.key = ec.generate_private_key(ec.SECP256R1())

    def pem(self):
        return self.key.public_key().public_bytes(
            serialization.Encoding.PEM,
            serialization.PublicFormat.SubjectPublicKeyInfo)

    def token(self, alg=None, **claims):
        now = int(time.time())
        body = {"sub": USER, "exp": now + 600, "iat": now}
        body.update(claims)
        body = {k: v for k, v in body.items() if v is not None}
        head = {"alg": alg or self.kind, "typ": "JWT"}
        signing = (b64url(json.dumps(head).encode()) + "." +
                   b64url(json.dumps(body).encode()))
        if self.kind == "RS256":
            sig = self.key.sign(signing.encode(), padding.PKCS1v15(),
                                hashes.SHA256())
        else:
            r, s = decode_dss_signature(
                self.key.sign(signing.encode(), ec.ECDSA(hashes.SHA256())))
            sig = r.to_bytes(32, "big") + s.to_bytes(32, "big")
        return signing + "." + b64url(sig)


def oauthbearer(user, token, authzid=True):
    gs2 = "n,a=%s," % user if authzid else "n,,"
    return base64.b64encode(
        ("%s\x01host=localhost\x01port=110\x01auth=Bearer %s\x01\x01"
         % (gs2, token)).encode())


def xoauth2(user, token):
    return base64.b64encode(
        ("user=%s\x01auth=Bearer %s\x01\x01" % (user, token)).encode())


@pytest.fixture(params=["RS256", "ES256"])
def oauth_server(request, mailroot, postinod):
    signer = Signer(request.param)
    keyfile = os.path.join(mailroot.path, "jwt.pem")
    with open(keyfile, "wb") as f:
        f.write(signer.pem())
    os.chmod(keyfile, 0o644)
    mailroot.add_user(USER, PASSWORD)
    for m in seed_messages():
        mailroot.deliver_maildir(USER, m)
    srv = postinod(auth_mechanisms=MECHS, oauth2_jwt_key=keyfile,
                   oauth2_issuer="https://issuer.example",
                   oauth2_audience="pop3")
    srv.signer = signer
    return srv


def good(srv, **claims):
    claims.setdefault("iss", "https://issuer.example")
    claims.setdefault("aud", ["other", "pop3"])
    return srv.signer.token(**claims)


def auth_two_step(r, mech, response):
    r.send(b"AUTH " + mech + b"\r\n")
    assert r.line() == b"+ "
    r.send(response + b"\r\n")
    return r.line()


def test_capa_offers_oauth_on_loopback(oauth_server):
    r = oauth_server.raw()
    r.expect(b"+OK")
    r.send(b"CAPA\r\n")
    lines = r.lines_until_dot()
    assert b"SASL PLAIN OAUTHBEARER XOAUTH2" in lines, lines
    r.close()


@pytest.mark.parametrize("mech", [b"OAUTHBEARER", b"XOAUTH2"])
def test_valid_token_logs_in_two_step(oauth_server, mech):
    tok = good(oauth_server)
    resp = (oauthbearer if mech == b"OAUTHBEARER" else xoauth2)(USER, tok)
    assert len(resp) > 255             # a real token: two-step
    r = oauth_server.raw()
    r.expect(b"+OK")
    assert auth_two_step(r, mech, resp).startswith(b"+OK")
    r.send(b"STAT\r\n")
    assert r.line().startswith(b"+OK %d " % len(seed_messages()))
    r.close()


def test_microsoft_sized_token_grows_the_line_then_shrinks(oauth_server):
    # Entra ID tokens with group claims reach 4 KB: a 7 KB base64 line,
    # far over the 1 KB a command line may use.
    tok = good(oauth_server, groups=["g%04d" % i for i in range(400)])
    assert 4000 < len(tok) < 7168
    resp = xoauth2(USER, tok)
    assert len(resp) > 5000
    r = oauth_server.raw()
    r.expect(b"+OK")
    assert auth_two_step(r, b"XOAUTH2", resp).startswith(b"+OK")
    # Back to the command limit once the exchange is over.
    r.send(b"NOOP " + b"x" * 600 + b"\r\n")
    assert r.line().startswith(b"-ERR")
    r.close()


def test_overlong_sasl_line_is_refused_and_closed(oauth_server):
    r = oauth_server.raw()
    r.expect(b"+OK")
    r.send(b"AUTH XOAUTH2\r\n")
    assert r.line() == b"+ "
    r.send(b"A" * 12000 + b"\r\n")
    assert r.line().startswith(b"-ERR")
    assert r.closed_within(seconds=10)


def test_authzid_may_be_left_to_the_token(oauth_server):
    r = oauth_server.raw()
    r.expect(b"+OK")
    resp = oauthbearer(USER, good(oauth_server), authzid=False)
    assert auth_two_step(r, b"OAUTHBEARER", resp).startswith(b"+OK")
    r.close()


BAD_TOKENS = {
    "expired": dict(exp=int(time.time()) - 3600),
    "not yet valid": dict(nbf=int(time.time()) + 3600),
    "no exp": dict(exp=None),
    "wrong issuer": dict(iss="https://evil.example"),
    "wrong audience": dict(aud="imap"),
    "other user": dict(sub="bob"),
}


@pytest.mark.parametrize("why", sorted(BAD_TOKENS))
def test_refused_token_gets_error_challenge_then_err(oauth_server, why):
    tok = good(oauth_server, **BAD_TOKENS[why])
    r = oauth_server.raw()
    r.expect(b"+OK")
    line = auth_two_step(r, b"OAUTHBEARER", oauthbearer(USER, tok))
    assert line.startswith(b"+ "), (why, line)
    assert json.loads(base64.b64decode(line[2:]))["status"] == \
        "invalid_token"
    r.send(b"AQ==\r\n")
    assert r.line().startswith(b"-ERR [AUTH]")
    r.close()


def test_forged_and_alg_none_tokens_are_refused(oauth_server):
    tok = good(oauth_server)
    head, body, sig = tok.split(".")
    forged_body = b64url(json.dumps({"sub": USER, "exp": 2 ** 40,
                                     "iss": "https://issuer.example",
                                     "aud": "pop3"}).encode())
    none_head = b64url(b'{"alg":"none"}')
    hs_head = b64url(b'{"alg":"HS256"}')
    other = Signer(oauth_server.signer.kind)
    for bad in (head + "." + forged_body + "." + sig,
                none_head + "." + body + ".",
                none_head + "." + body + "." + sig,
                hs_head + "." + body + "." + sig,
                other.token(iss="https://issuer.example", aud="pop3")):
        r = oauth_server.raw()
        r.expect(b"+OK")
        line = auth_two_step(r, b"XOAUTH2", xoauth2(USER, bad))
        assert line.startswith(b"+ "), line
        r.send(b"\r\n")             # XOAUTH2 clients answer empty
        assert r.line().startswith(b"-ERR [AUTH]")
        r.close()


def test_malformed_response_is_a_bad_command(oauth_server):
    r = oauth_server.raw()
    r.expect(b"+OK")
    for junk in (b"bm90IGthdnBhaXJz",                        # no kvsep
                 base64.b64encode(b"p=tls-unique,,\x01auth=Bearer x\x01\x01"),
                 base64.b64encode(b"n,a=alice,\x01auth=Basic x\x01\x01")):
        r.send(b"AUTH OAUTHBEARER " + junk + b"\r\n")
        assert r.line().startswith(b"-ERR"), junk
    r.send(b"NOOP\r\n")              # the session goes on
    assert r.line().startswith(b"-ERR")
    r.close()


def test_oauth_not_offered_without_configuration(mailroot, postinod):
    mailroot.add_user(USER, PASSWORD)
    srv = postinod(auth_mechanisms="PLAIN")
    r = srv.raw()
    r.expect(b"+OK")
    r.send(b"AUTH XOAUTH2\r\n")
    assert r.line().startswith(b"-ERR")
    r.close()


def test_oauth_mechanism_without_key_stops_startup(mailroot, postinod):
    srv = postinod(start=False, auth_mechanisms="PLAIN OAUTHBEARER")
    with pytest.raises(Exception):
        srv.start(timeout=10)
    assert "need oauth2_jwt_key" in srv.log()


# ---------------------------------------------------------------------------
# postino against postinod, over STLS
# ---------------------------------------------------------------------------

@pytest.fixture
def tls_oauth(mailroot, postinod, certs):
    signer = Signer("ES256")
    keyfile = os.path.join(mailroot.path, "jwt.pem")
    with open(keyfile, "wb") as f:
        f.write(signer.pem())
    os.chmod(keyfile, 0o644)
    mailroot.add_user(USER, PASSWORD)
    for m in seed_messages():
        mailroot.deliver_maildir(USER, m)
    srv = postinod(auth_mechanisms=MECHS, oauth2_jwt_key=keyfile,
                   tls_cert=certs["cert"], tls_key=certs["key"],
                   listen="127.0.0.1:0", listen_tls="127.0.0.1:0",
                   auth_cleartext_loopback="no")
    srv.signer = signer
    return srv


def token_cmd(home, token):
    path = os.path.join(home.path, "token")
    with open(path, "w") as f:
        f.write(token + "\n")
    return "cat " + path


@pytest.mark.parametrize("mech", ["oauthbearer", "xoauth2"])
def test_postino_fetches_with_a_token(tls_oauth, certs, home, mech):
    # A Microsoft-sized token (about 4 KB): two-step, one long line.
    tok = tls_oauth.signer.token(groups=["g%04d" % i for i in range(400)])
    assert len(tok) > 4000
    cmd = token_cmd(home, tok)
    cp = home.run("fetch", "-4", "--cafile", certs["ca"], "--auth", mech,
                  "--token-command", cmd, "--maildir", home.maildir,
                  "--verbose", "pop3://%s@localhost:%d" % (USER,
                                                           tls_oauth.port),
                  password=None, timeout=TIMEOUT)
    assert cp.returncode == 0, cp.stderr.decode()
    assert sorted(home.new_messages()) == sorted(local(m)
                                                 for m in seed_messages())
    assert b"C: AUTH %s\n" % mech.upper().encode() in cp.stderr
    assert tok[:30].encode() not in cp.stderr
    assert tok[-30:].encode() not in cp.stderr


def test_postino_expired_token_exit_4_nothing_fetched(tls_oauth, certs,
                                                      home):
    tok = tls_oauth.signer.token(exp=int(time.time()) - 3600)
    cp = home.run("fetch", "-4", "--cafile", certs["ca"], "--auth",
                  "oauthbearer", "--token-command", token_cmd(home, tok),
                  "--maildir", home.maildir,
                  "pop3://%s@localhost:%d" % (USER, tls_oauth.port),
                  password=None, timeout=TIMEOUT)
    assert cp.returncode == 4, cp.stderr.decode()
    assert b"invalid_token" in cp.stderr
    assert not os.path.isdir(os.path.join(home.maildir, "new")) or \
        home.new_messages() == []


def test_no_oauth_without_tls_when_loopback_is_not_trusted(tls_oauth):
    r = tls_oauth.raw()
    r.expect(b"+OK")
    r.send(b"CAPA\r\n")
    assert not any(b"OAUTHBEARER" in l for l in r.lines_until_dot())
    r.send(b"AUTH XOAUTH2\r\n")
    assert r.line().startswith(b"-ERR [AUTH] Plaintext")
    r.close()


def test_refused_token_is_penalised_like_a_password(mailroot, postinod):
    signer = Signer("ES256")
    keyfile = os.path.join(mailroot.path, "jwt.pem")
    with open(keyfile, "wb") as f:
        f.write(signer.pem())
    os.chmod(keyfile, 0o644)
    mailroot.add_user(USER, PASSWORD)
    srv = postinod(auth_mechanisms=MECHS, oauth2_jwt_key=keyfile,
                   auth_fail_delay_ms=1000)
    r = srv.raw()
    r.expect(b"+OK")
    line = auth_two_step(r, b"OAUTHBEARER",
                         oauthbearer(USER, signer.token(sub="bob")))
    assert line.startswith(b"+ ")
    t0 = time.monotonic()
    r.send(b"AQ==\r\n")
    assert r.line().startswith(b"-ERR [AUTH]")
    assert time.monotonic() - t0 >= 0.9      # the failed-login delay
    # The -ERR came when the penalty ended: the right token now passes.
    line = auth_two_step(r, b"XOAUTH2", xoauth2(USER, signer.token()))
    assert line.startswith(b"+OK"), line
    r.close()
    log = srv.log()
    assert "method=OAUTHBEARER" in log and "method=XOAUTH2" in log, log


# ---------------------------------------------------------------------------
# oauth2_token_command: opaque tokens checked by the administrator's program
# ---------------------------------------------------------------------------

VALIDATOR = """#!/bin/sh
# argv[1]: the user the client claims ("" if none); stdin: the token.
read -r tok
[ -n "$2" ] && exit 9                   # one argument only
case "$tok" in
good-*) echo "${tok#good-}"; exit 0 ;;  # the token names its owner
slow-*) sleep 60; exit 0 ;;
down-*) exit 3 ;;
*) exit 1 ;;
esac
"""


@pytest.fixture
def cmd_server(mailroot, postinod):
    path = os.path.join(mailroot.path, "validator")
    with open(path, "w") as f:
        f.write(VALIDATOR)
    os.chmod(path, 0o755)
    mailroot.add_user(USER, PASSWORD)
    return postinod(auth_mechanisms=MECHS, oauth2_token_command=path,
                    auth_fail_delay_ms=50)


@pytest.mark.parametrize("mech,enc", [(b"OAUTHBEARER", oauthbearer),
                                      (b"XOAUTH2", xoauth2)])
def test_token_command_accepts_the_owners_token(cmd_server, mech, enc):
    r = cmd_server.raw()
    r.expect(b"+OK")
    assert auth_two_step(r, mech, enc(USER, "good-" + USER)).startswith(
        b"+OK")
    r.send(b"STAT\r\n")
    assert r.line().startswith(b"+OK")
    r.close()


@pytest.mark.parametrize("token,first", [
    ("good-bob", b"+ "),        # valid, someone else's: invalid_token
    ("junk", b"+ "),            # the program says invalid
    ("down-x", b"-ERR [SYS/TEMP]"),   # the program could not check
])
def test_token_command_refusals(cmd_server, token, first):
    r = cmd_server.raw()
    r.expect(b"+OK")
    line = auth_two_step(r, b"OAUTHBEARER", oauthbearer(USER, token))
    assert line.startswith(first), line
    if first == b"+ ":
        assert json.loads(base64.b64decode(line[2:]))["status"] == \
            "invalid_token"
        r.send(b"AQ==\r\n")
        assert r.line().startswith(b"-ERR [AUTH]")
    r.close()


def test_token_command_timeout_is_temporary_and_others_go_on(cmd_server):
    slow = cmd_server.raw(timeout=60)
    slow.expect(b"+OK")
    slow.send(b"AUTH XOAUTH2\r\n")
    assert slow.line() == b"+ "
    t0 = time.monotonic()
    slow.send(xoauth2(USER, "slow-1") + b"\r\n")
    # The helper is busy for up to 10 s; the server stays up and answers.
    other = cmd_server.raw()
    other.expect(b"+OK")
    other.send(b"CAPA\r\n")
    assert any(b"XOAUTH2" in l for l in other.lines_until_dot())
    other.close()
    assert slow.line().startswith(b"-ERR [SYS/TEMP]")
    assert 9 <= time.monotonic() - t0 < 40
    slow.close()
    # And the next check works.
    r = cmd_server.raw()
    r.expect(b"+OK")
    assert auth_two_step(r, b"XOAUTH2", xoauth2(USER, "good-" + USER)) \
        .startswith(b"+OK")
    r.close()


def test_token_command_and_jwt_key_exclude_each_other(mailroot, postinod):
    srv = postinod(start=False, auth_mechanisms="XOAUTH2",
                   oauth2_jwt_key="/k.pem", oauth2_token_command="/bin/true")
    with pytest.raises(Exception):
        srv.start(timeout=10)
    assert "set one" in srv.log()
