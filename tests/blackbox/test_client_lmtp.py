"""postino fetch --lmtp (issue 13): delivery over LMTP (RFC 2033) into
postinod's own LMTP listener, Dovecot's lmtp and a scripted server here.

Messages arrive byte-exact (the receiving server's own trace headers
aside), a second run fetches nothing, a kill -9 during delivery loses
nothing and duplicates at most the one message whose 250 was not yet
recorded (the documented window), a 4xx leaves the message on the POP3
server for the next run, a 5xx is reported and the run goes on. Every
socket and subprocess has a timeout; loopback only.
"""

import os
import re
import signal
import socket
import subprocess
import threading
import time

import pytest

import clients_helpers as ch
from test_client import (POSTINO, Dovecot, home, local,  # noqa: F401
                         many_messages, seed_messages, seeded,
                         server_snapshot, url)
from test_client import dovecot  # noqa: F401  (the fixture)
from test_lmtp import lmtp_port

RCPT = "bob"


@pytest.fixture
def pop_and_lmtp(mailroot, postinod):
    """factory(msgs) -> (pop3 url, lmtp address): one postinod serving
    alice's messages over POP3 and delivering to bob over LMTP."""
    def factory(msgs, **config):
        mailroot.add_user(ch.USER, ch.PASSWORD)
        mailroot.add_user(RCPT, "bob-secret")
        for m in msgs:
            mailroot.deliver_maildir(ch.USER, m)
        config.setdefault("lmtp_listen", "127.0.0.1:0")
        config.setdefault("lmtp_return_path", False)
        config.setdefault("lmtp_delivered_to", False)
        srv = postinod(mailbox="maildir:~/Maildir", **config)
        return srv, url(srv.port, srv.host), "127.0.0.1:%d" % lmtp_port(srv)
    return factory


def bob_messages(mailroot):
    return sorted(mailroot.maildir_files(RCPT)[k][1]
                  for k in mailroot.maildir_files(RCPT))


def test_fetch_into_postinod_lmtp_byte_exact_then_nothing(
        home, mailroot, pop_and_lmtp):
    msgs = seed_messages()
    srv, pop, lmtp = pop_and_lmtp(msgs)
    args = ["fetch", "--tls=no", "--lmtp", lmtp, "--lmtp-recipient", RCPT,
            "--verbose", pop]
    cp = home.run(*args)
    assert cp.returncode == 0, cp.stderr
    assert bob_messages(mailroot) == sorted(local(m) for m in msgs)
    assert server_snapshot(srv.host, srv.port)[0] == 0
    assert len(home.state_ids()) == len(msgs)
    # The dialogue shows one LMTP delivery per message, none the second time.
    cp = home.run(*args)
    assert cp.returncode == 0, cp.stderr
    assert b"0 new messages fetched" in cp.stderr
    assert bob_messages(mailroot) == sorted(local(m) for m in msgs)


def test_fetch_lmtp_keep_second_run_fetches_nothing(
        home, mailroot, pop_and_lmtp):
    msgs = many_messages(20)
    srv, pop, lmtp = pop_and_lmtp(msgs)
    args = ["fetch", "--tls=no", "--keep", "--lmtp", lmtp,
            "--lmtp-recipient", RCPT, pop]
    for _ in range(2):
        cp = home.run(*args)
        assert cp.returncode == 0, cp.stderr
    assert bob_messages(mailroot) == sorted(local(m) for m in msgs)
    assert server_snapshot(srv.host, srv.port)[0] == 20


def test_config_keys_lmtp_and_recipient(home, mailroot, pop_and_lmtp):
    msgs = many_messages(3)
    srv, pop, lmtp = pop_and_lmtp(msgs)
    cfg = os.path.join(home.path, "config", "postino")
    os.makedirs(cfg)
    with open(os.path.join(cfg, "config"), "w") as f:
        f.write("account work\n url %s\n tls no\n lmtp %s\n"
                " lmtp-recipient %s\n" % (pop, lmtp, RCPT))
    cp = home.run("fetch", "work")
    assert cp.returncode == 0, cp.stderr
    assert bob_messages(mailroot) == sorted(local(m) for m in msgs)


def test_kill9_during_lmtp_delivery_loses_nothing(
        home, mailroot, pop_and_lmtp):
    """Killed while delivering: the rerun completes the set; at most one
    message (250 received, not yet recorded) arrives twice."""
    msgs = many_messages(300)
    srv, pop, lmtp = pop_and_lmtp(msgs)
    args = [POSTINO, "fetch", "--tls=no", "--lmtp", lmtp,
            "--lmtp-recipient", RCPT, pop]
    p = subprocess.Popen(args, env=home.env(), stdin=subprocess.DEVNULL,
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    new = os.path.join(mailroot.maildir(RCPT), "new")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and p.poll() is None:
        if len(os.listdir(new)) >= 30:
            break
        time.sleep(0.002)
    p.kill()
    p.wait(10)
    p.stderr.close()
    first = len(bob_messages(mailroot))
    assert 0 < first < 300
    assert server_snapshot(srv.host, srv.port)[0] == 300
    cp = home.run(*args[1:])
    assert cp.returncode == 0, cp.stderr
    got = bob_messages(mailroot)
    want = sorted(local(m) for m in msgs)
    assert sorted(set(got)) == want
    assert len(got) - len(want) <= 1
    assert server_snapshot(srv.host, srv.port)[0] == 0


# ---------------------------------------------------------------------------
# A scripted LMTP server: what a real one would rarely say
# ---------------------------------------------------------------------------

class ScriptedLmtp:
    """One connection at a time; replies from `script` (a function from
    the message to the reply to its DATA); records every message."""

    def __init__(self, path, script, greeting=b"220 scripted LMTP\r\n",
                 per_connection=None, mail_reply=None):
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.bind(path)
        self.sock.listen(8)
        self.sock.settimeout(0.2)
        self.path = path
        self.script = script
        self.greeting = greeting
        self.got = []
        self.envelopes = []
        self.connections = 0
        # Messages a connection takes before the server closes it.
        self.per_connection = per_connection
        # mail_reply(connection's message count) -> MAIL's reply.
        self.mail_reply = mail_reply
        self.stop = False
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self):
        while not self.stop:
            try:
                c, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            self.connections += 1
            with c:
                c.settimeout(30)
                try:
                    self.session(c.makefile("rwb"))
                except (OSError, ValueError):
                    pass

    def session(self, f):
        if not self.greeting:
            return                  # closes without a word
        f.write(self.greeting)
        f.flush()
        env = []
        taken = 0
        while True:
            line = f.readline(4096)
            if not line:
                return
            cmd = line.rstrip(b"\r\n")
            verb = cmd.split(b" ")[0].split(b":")[0].upper()
            if verb == b"LHLO":
                f.write(b"250-scripted\r\n250-8BITMIME\r\n250 PIPELINING\r\n")
            elif verb == b"MAIL" and self.mail_reply is not None and \
                    not self.mail_reply(taken).startswith(b"250"):
                f.write(self.mail_reply(taken))
                f.flush()
                return
            elif verb in (b"MAIL", b"RCPT"):
                env.append(cmd)
                f.write(b"250 ok\r\n")
            elif verb == b"RSET":
                env = []
                f.write(b"250 reset\r\n")
            elif verb == b"DATA":
                f.write(b"354 go\r\n")
                f.flush()
                data = []
                while True:
                    l = f.readline(1 << 20)
                    if l in (b".\r\n", b""):
                        break
                    data.append(l[1:] if l.startswith(b".") else l)
                msg = b"".join(data)
                self.envelopes.append(env)
                env = []
                reply = self.script(msg)
                if reply.startswith(b"250"):
                    self.got.append(msg)
                f.write(reply)
                taken += 1
                if self.per_connection and taken >= self.per_connection:
                    f.flush()
                    return
            elif verb == b"QUIT":
                f.write(b"221 bye\r\n")
                f.flush()
                return
            else:
                f.write(b"500 what\r\n")
            f.flush()

    def close(self):
        self.stop = True
        self.thread.join(5)
        self.sock.close()


@pytest.fixture
def scripted(home):
    servers = []

    def factory(script, **kw):
        s = ScriptedLmtp(os.path.join(home.path, "lmtp%d.sock" %
                                      len(servers)), script, **kw)
        servers.append(s)
        return s
    yield factory
    for s in servers:
        s.close()


def test_scripted_lmtp_gets_crlf_dot_stuffed_with_envelope(
        home, mailroot, postinod, scripted):
    msgs = seed_messages()
    host, port = seeded("postinod", mailroot, postinod, None, msgs)
    s = scripted(lambda m: b"250 2.0.0 stored\r\n")
    cp = home.run("fetch", "--tls=no", "--lmtp", "unix:" + s.path,
                  "--lmtp-recipient", "carol@example.org", url(port, host))
    assert cp.returncode == 0, cp.stderr
    assert sorted(s.got) == sorted(local(m).replace(b"\n", b"\r\n")
                                   for m in msgs)
    for env in s.envelopes:
        assert env[0].startswith(b"MAIL FROM:<") and env[0].endswith(b">")
        assert env[1] == b"RCPT TO:<carol@example.org>"
    assert server_snapshot(host, port)[0] == 0


def test_lmtp_one_connection_for_the_run(home, mailroot, postinod,
                                         scripted):
    msgs = many_messages(6)
    host, port = seeded("postinod", mailroot, postinod, None, msgs)
    s = scripted(lambda m: b"550 5.7.1 no\r\n" if b"message 3\r\n" in m
                 else b"250 ok\r\n")
    cp = home.run("fetch", "--tls=no", "--lmtp", "unix:" + s.path,
                  "--lmtp-recipient", RCPT, url(port, host))
    assert cp.returncode == 6, cp.stderr
    # One session: RSET after the refusal, the next message on it.
    assert (s.connections, len(s.got)) == (1, 5)


@pytest.mark.parametrize("how", ["closed", "421"])
def test_lmtp_session_the_server_ended_is_replaced(how, home, mailroot,
                                                  postinod, scripted):
    """A kept session the server closed (idle) or ends with 421 before
    the next message: that message goes on a new connection, once."""
    msgs = many_messages(5)
    host, port = seeded("postinod", mailroot, postinod, None, msgs)
    if how == "closed":
        s = scripted(lambda m: b"250 ok\r\n", per_connection=2)
    else:
        s = scripted(lambda m: b"250 ok\r\n", mail_reply=lambda n:
                     b"421 4.4.2 idle too long\r\n" if n >= 2 else
                     b"250 ok\r\n")
    cp = home.run("fetch", "--tls=no", "--lmtp", "unix:" + s.path,
                  "--lmtp-recipient", RCPT, url(port, host))
    assert cp.returncode == 0, cp.stderr
    assert sorted(s.got) == sorted(local(m).replace(b"\n", b"\r\n")
                                   for m in msgs)
    assert s.connections == 3
    assert server_snapshot(host, port)[0] == 0


def test_lmtp_4xx_keeps_message_for_next_run(home, mailroot, postinod,
                                             scripted):
    msgs = many_messages(5)
    host, port = seeded("postinod", mailroot, postinod, None, msgs)
    s = scripted(lambda m: b"452 4.2.2 mailbox full\r\n")
    args = ["fetch", "--tls=no", "--lmtp", "unix:" + s.path,
            "--lmtp-recipient", RCPT, url(port, host)]
    cp = home.run(*args)
    assert cp.returncode == 6, cp.stderr
    assert b"452 4.2.2 mailbox full" in cp.stderr
    assert s.got == [] and len(s.envelopes) == 1   # stopped at the first
    assert home.state_ids() == []
    assert server_snapshot(host, port)[0] == 5
    s.script = lambda m: b"250 ok\r\n"
    cp = home.run(*args)
    assert cp.returncode == 0, cp.stderr
    assert sorted(s.got) == sorted(local(m).replace(b"\n", b"\r\n")
                                   for m in msgs)
    assert server_snapshot(host, port)[0] == 0


def test_lmtp_5xx_is_reported_and_the_rest_delivered(
        home, mailroot, postinod, scripted):
    msgs = many_messages(5)
    host, port = seeded("postinod", mailroot, postinod, None, msgs)
    s = scripted(lambda m: b"550 5.7.1 no thanks\r\n"
                 if b"message 2\r\n" in m else b"250 ok\r\n")
    args = ["fetch", "--tls=no", "--lmtp", "unix:" + s.path,
            "--lmtp-recipient", RCPT, url(port, host)]
    cp = home.run(*args)
    assert cp.returncode == 6, cp.stderr
    assert b"550 5.7.1 no thanks" in cp.stderr
    assert b"1 message refused" in cp.stderr
    assert len(s.got) == 4
    # Only the refused one stays on the server, not recorded as fetched.
    n, _, uidl = server_snapshot(host, port)
    assert n == 1 and len(home.state_ids()) == 4


@pytest.mark.parametrize("greeting,why", [
    (b"421 4.3.2 shutting down\r\n", b"421 4.3.2 shutting down"),
    (b"220 " + b"x" * 600 + b"\r\n", b"a reply line over 512 octets"),
    (b"22O broken\r\n", b"a malformed reply"),
    (b"220-a\r\n250 b\r\n", b"a malformed reply"),
    (b"220-x\r\n" * 150 + b"220 ok\r\n", b"a reply of over 100 lines"),
    (b"", b"connection closed"),
], ids=["421", "long-line", "malformed", "mixed-codes", "endless",
        "silent-close"])
def test_lmtp_server_trouble_is_temporary(greeting, why, home, mailroot,
                                          postinod, scripted):
    msgs = many_messages(2)
    host, port = seeded("postinod", mailroot, postinod, None, msgs)
    s = scripted(lambda m: b"250 ok\r\n", greeting=greeting)
    cp = home.run("fetch", "--tls=no", "--lmtp", "unix:" + s.path,
                  "--lmtp-recipient", RCPT, url(port, host))
    assert cp.returncode == 6, cp.stderr
    assert why in cp.stderr, cp.stderr
    assert server_snapshot(host, port)[0] == 2
    assert home.state_ids() == []


def test_lmtp_nobody_listening(home, mailroot, postinod):
    msgs = many_messages(1)
    host, port = seeded("postinod", mailroot, postinod, None, msgs)
    cp = home.run("fetch", "--tls=no", "--lmtp",
                  "unix:" + os.path.join(home.path, "none.sock"),
                  "--lmtp-recipient", RCPT, url(port, host))
    assert cp.returncode == 6, cp.stderr
    assert b"none.sock" in cp.stderr
    assert server_snapshot(host, port)[0] == 1


@pytest.mark.parametrize("args,why", [
    (["--lmtp", "localhost"], b"HOST:PORT"),
    (["--lmtp", "unix:relative"], b"absolute path"),
    (["--lmtp", "h:99999"], b"HOST:PORT"),
    (["--lmtp", "h:24", "--lmtp-recipient", "a b"], b"--lmtp-recipient"),
    (["--lmtp", "h:24", "--maildir", "/tmp/x"], b"one of"),
], ids=["no-port", "relative", "bad-port", "space-rcpt", "two-dests"])
def test_lmtp_bad_arguments(args, why, home):
    cp = home.run("fetch", "--tls=no", *args, "pop3://a@127.0.0.1:9")
    assert cp.returncode in (1, 6), cp.stderr
    assert why in cp.stderr, cp.stderr


def test_lmtp_recipient_is_for_fetch_only(home):
    cp = home.run("list", "--lmtp-recipient", "x", "pop3://a@127.0.0.1:9")
    assert cp.returncode == 1


# ---------------------------------------------------------------------------
# Dovecot's lmtp
# ---------------------------------------------------------------------------

class DovecotLmtp(Dovecot):
    """The tests' Dovecot with its lmtp service on a loopback port."""

    def __init__(self):
        super().__init__()
        from test_client import free_port
        self.lmtp_port = free_port()
        with open(self.conf) as f:
            conf = f.read()
        conf = conf.replace("protocols = pop3\n", "protocols = pop3 lmtp\n")
        conf += """service lmtp {{
  inet_listener lmtp {{
    address = 127.0.0.1
    port = {port}
  }}
}}
protocol lmtp {{
  lmtp_add_received_header = no
}}
""".format(port=self.lmtp_port)
        with open(self.conf, "w") as f:
            f.write(conf)


@pytest.fixture
def dovecot_lmtp():
    from test_client import DOVECOT, IS_ROOT
    if not IS_ROOT or not os.path.exists(DOVECOT) or \
            not os.path.exists("/usr/lib/dovecot/lmtp"):
        pytest.skip("needs root, dovecot-pop3d and dovecot-lmtpd")
    d = DovecotLmtp()
    yield d
    d.stop()


def untraced(data):
    """data without the trace lines (Return-Path, Delivered-To) at its
    top: Dovecot replaces and adds those."""
    while re.match(rb"(Return-Path|Delivered-To): [^\n]*\n", data):
        data = data.split(b"\n", 1)[1]
    return data


def dovecot_stored(d):
    """Messages in Dovecot's Maildir for alice, untraced."""
    out = []
    for sub in ("new", "cur"):
        for n in sorted(os.listdir(os.path.join(d.maildir, sub))):
            with open(os.path.join(d.maildir, sub, n), "rb") as f:
                out.append(untraced(f.read()))
    return sorted(out)


def test_fetch_into_dovecot_lmtp(home, mailroot, postinod, dovecot_lmtp):
    msgs = seed_messages() + [b"Subject: dots\n\n.\n..\n.x\nend\n"]
    host, port = seeded("postinod", mailroot, postinod, None, msgs)
    dovecot_lmtp.start()
    args = ["fetch", "--tls=no", "--lmtp",
            "127.0.0.1:%d" % dovecot_lmtp.lmtp_port,
            "--lmtp-recipient", ch.USER, url(port, host)]
    cp = home.run(*args)
    assert cp.returncode == 0, (cp.stderr, dovecot_lmtp.log()[-3000:])
    # Byte-exact below the trace lines at the top.
    assert dovecot_stored(dovecot_lmtp) == sorted(untraced(local(m))
                                                  for m in msgs)
    cp = home.run(*args)
    assert cp.returncode == 0, cp.stderr
    assert len(dovecot_stored(dovecot_lmtp)) == len(msgs)
    assert server_snapshot(host, port)[0] == 0
