"""postino's OAuth 2.0 login (issue 13) against a small scripted POP3
server: the exact bytes of XOAUTH2's two-step form (what Microsoft 365
requires), OAUTHBEARER's RFC 7628 response and its error handshake, the
token kept out of every output, the token-command errors."""

import base64
import os
import shlex
import socket
import subprocess
import tempfile
import threading

import pytest

from conftest import BUILD, SANITIZER_MARKS

POSTINO = os.path.join(BUILD, "postino")
USER = "alice@example.org"
# Real tokens are long: over RFC 2449's 255-octet line, so two-step.
TOKEN = "ya29." + "A1b2C3d4" * 150
EXIT_AUTH = 4
TIMEOUT = 60


class Scripted:
    """One connection: CAPA offers mechs; AUTH goes to on_auth(mech, arg,
    conn) which returns True for a login; then STAT and QUIT. Every line
    the client sent is kept in .lines, raw, with its CRLF."""

    def __init__(self, mechs, on_auth):
        self.mechs = mechs
        self.on_auth = on_auth
        self.lines = []
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(1)
        self.sock.settimeout(TIMEOUT)
        self.port = self.sock.getsockname()[1]
        self.error = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def readline(self):
        line = self.rf.readline(65536)
        self.lines.append(line)
        return line

    def send(self, text):
        self.conn.sendall(text.encode() + b"\r\n")

    def _run(self):
        try:
            self.conn, _ = self.sock.accept()
            self.conn.settimeout(TIMEOUT)
            self.rf = self.conn.makefile("rb")
            self.send("+OK scripted")
            for _ in range(20):
                line = self.readline()
                if not line:
                    return
                words = line.rstrip(b"\r\n").split(b" ")
                cmd = words[0].upper()
                if cmd == b"CAPA":
                    self.send("+OK\r\nUIDL\r\nSASL " + self.mechs + "\r\n.")
                elif cmd == b"AUTH":
                    arg = words[2] if len(words) > 2 else None
                    if not self.on_auth(self, words[1].decode(), arg):
                        return
                elif cmd == b"STAT":
                    self.send("+OK 0 0")
                elif cmd == b"QUIT":
                    self.send("+OK bye")
                    return
                else:
                    self.send("-ERR unknown")
        except Exception as e:      # reported by the test
            self.error = e
        finally:
            try:
                self.conn.close()
            except Exception:
                pass

    def join(self):
        self.thread.join(TIMEOUT)
        self.sock.close()
        assert self.error is None, self.error


def run(port, auth, token_cmd, *extra):
    home = tempfile.mkdtemp(prefix="postino-oauth-")
    env = dict(os.environ, HOME=home, XDG_CONFIG_HOME=home + "/c",
               XDG_STATE_HOME=home + "/s")
    env.pop("POSTINO_PASSWORD", None)
    cp = subprocess.run(
        [POSTINO, "stat", "--tls=no", "--auth", auth, "--token-command",
         token_cmd, "--verbose", *extra, f"pop3://{USER}@127.0.0.1:{port}"],
        stdin=subprocess.DEVNULL, capture_output=True, env=env,
        timeout=TIMEOUT)
    for m in SANITIZER_MARKS:
        assert m.encode() not in cp.stderr, cp.stderr.decode()
    assert TOKEN.encode() not in cp.stdout + cp.stderr
    assert base64.b64encode(TOKEN.encode())[:40] not in cp.stderr
    return cp


def printf_token():
    """A command that prints TOKEN (too long for a command line itself)."""
    fd, path = tempfile.mkstemp(prefix="postino-token-")
    os.write(fd, TOKEN.encode() + b"\n")
    os.close(fd)
    return "cat " + shlex.quote(path)


def xoauth2_two_step_only(srv, mech, arg):
    """Microsoft 365: the initial response on the AUTH line is refused."""
    if mech != "XOAUTH2" or arg is not None:
        srv.send("-ERR Protocol error")
        return False
    srv.send("+ ")
    resp = srv.readline()
    want = base64.b64encode(
        f"user={USER}\x01auth=Bearer {TOKEN}\x01\x01".encode())
    if resp != want + b"\r\n":
        srv.send("-ERR [AUTH] bad")
        return False
    srv.send("+OK logged in")
    return True


def test_xoauth2_two_step_sends_exact_bytes():
    srv = Scripted("XOAUTH2 PLAIN", xoauth2_two_step_only)
    cp = run(srv.port, "xoauth2", printf_token())
    srv.join()
    assert cp.returncode == 0, cp.stderr.decode()
    assert b"0 messages" in cp.stdout
    want = base64.b64encode(
        f"user={USER}\x01auth=Bearer {TOKEN}\x01\x01".encode()) + b"\r\n"
    assert srv.lines[1] == b"AUTH XOAUTH2\r\n"
    assert srv.lines[2] == want


def test_short_token_goes_on_the_auth_line():
    seen = {}

    def one_line(srv, mech, arg):
        seen["arg"] = arg
        srv.send("+OK")
        return True

    srv = Scripted("XOAUTH2", one_line)
    cp = run(srv.port, "xoauth2", "echo short")
    srv.join()
    assert cp.returncode == 0, cp.stderr.decode()
    assert base64.b64decode(seen["arg"]) == \
        f"user={USER}\x01auth=Bearer short\x01\x01".encode()


def oauthbearer_refuses(srv, mech, arg):
    """RFC 7628 sec. 3.2.2: an error challenge, then -ERR after 0x01."""
    assert mech == "OAUTHBEARER" and arg is None
    srv.send("+ ")
    srv.readline()
    srv.send("+ " + base64.b64encode(
        b'{"status":"invalid_token","schemes":"bearer"}').decode())
    srv.readline()
    srv.send("-ERR [AUTH] token refused")
    return True


def test_oauthbearer_error_challenge_gets_kvsep_and_exit_4():
    srv = Scripted("OAUTHBEARER", oauthbearer_refuses)
    cp = run(srv.port, "oauthbearer", printf_token())
    srv.join()
    assert cp.returncode == EXIT_AUTH, cp.stderr.decode()
    assert b"invalid_token" in cp.stderr
    gs2 = f"n,a={USER},\x01host=127.0.0.1\x01port={srv.port}\x01".encode()
    assert srv.lines[1] == b"AUTH OAUTHBEARER\r\n"
    assert base64.b64decode(srv.lines[2]) == \
        gs2 + f"auth=Bearer {TOKEN}\x01\x01".encode()
    assert srv.lines[3] == b"AQ==\r\n"        # the lone 0x01
    assert b"STAT\r\n" not in srv.lines


@pytest.mark.parametrize("cmd,why", [
    ("exit 3", b"token command failed (exit status 3)"),
    ("true", b"printed no token"),
    ("head -c 20000 /dev/zero | tr '\\0' x; true", b"token too long"),
])
def test_token_command_failures_send_nothing(cmd, why):
    def never(srv, mech, arg):
        raise AssertionError("AUTH sent")

    srv = Scripted("XOAUTH2", never)
    cp = run(srv.port, "xoauth2", cmd)
    assert cp.returncode == EXIT_AUTH
    assert why in cp.stderr, cp.stderr.decode()
    # The client never connected: stop the listener.
    srv.sock.close()


def test_oauth_needs_tls_unless_asked():
    def never(srv, mech, arg):
        raise AssertionError("AUTH sent")

    srv = Scripted("XOAUTH2", never)
    home = tempfile.mkdtemp(prefix="postino-oauth-")
    env = dict(os.environ, HOME=home)
    env.pop("POSTINO_PASSWORD", None)
    cp = subprocess.run(
        [POSTINO, "stat", "--tls=stls", "--auth", "xoauth2",
         "--token-command", "echo t", f"pop3://{USER}@127.0.0.1:{srv.port}"],
        stdin=subprocess.DEVNULL, capture_output=True, env=env,
        timeout=TIMEOUT)
    srv.join()
    assert cp.returncode == 3, cp.stderr.decode()      # EXIT_TLS
    assert not any(l.startswith(b"AUTH") for l in srv.lines)
