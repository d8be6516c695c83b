"""End to end with a real Postfix in front: SMTP submission to virtual
users, Postfix's lmtp client into postinod's LMTP unix socket, the Maildirs
read back over POP3 (poplib, fetchmail) byte for byte; an unknown
recipient refused at SMTP time; and postino-deliver as Postfix's
mailbox_command. Needs root (Postfix starts as root) and the postfix
package (tests/deps.sh)."""

import os
import poplib
import pwd
import shutil
import smtplib
import subprocess
import time

import pytest

from conftest import BUILD, IS_ROOT
from postfix_helpers import Postfix, postfix_usable

pytestmark = pytest.mark.skipif(not postfix_usable(),
                                reason="needs root and postfix")

BODY = (b"From: Sender <sender@outside.example>\r\n"
        b"To: {rcpt}\r\n"
        b"Subject: over postfix to {rcpt}\r\n"
        b"Message-ID: <{n}@outside.example>\r\n"
        b"Date: Thu, 01 Jan 2026 00:00:00 +0000\r\n"
        b"\r\n"
        b"Hello {rcpt}.\r\n"
        b".leading dot\r\n"
        b"\xc3\xa9t\xc3\xa9 8bit\r\n")


def wait_for(pred, what, timeout=60, log=None):
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for %s\n%s"
                                 % (what, log() if log else ""))
        time.sleep(0.1)


def maildir_count(root, user):
    md = root.maildir(user)
    return sum(len(os.listdir(os.path.join(md, s))) for s in ("new", "cur"))


@pytest.fixture
def vusers(mailroot):
    for u in ("alice@example.org", "bob@example.org"):
        mailroot.add_user(u, "secret")
    return mailroot


def pop3_messages(srv, user):
    p = srv.login(user, "secret")
    out = []
    for n in range(1, p.stat()[0] + 1):
        resp, lines, octets = p.retr(n)
        out.append(b"\r\n".join(lines) + b"\r\n")
    p.quit()
    return out


def strip_added(msg):
    """The message without the header lines Postfix and postinod add."""
    head, _, body = msg.partition(b"\r\n\r\n")
    keep = [h for h in head.split(b"\r\n") if not h.lower().startswith(
        (b"return-path:", b"delivered-to:", b"received:", b"\t", b" "))]
    return b"\r\n".join(keep) + b"\r\n\r\n" + body


def test_postfix_lmtp_to_two_virtual_users(vusers, postinod):
    sock = os.path.join(vusers.path, "lmtp.sock")
    srv = postinod(lmtp_listen="unix:" + sock, lmtp_socket_user="postfix",
                   lmtp_socket_mode="0600")
    vmap = os.path.join(vusers.path, "vmailbox")
    with open(vmap, "w") as f:
        f.write("alice@example.org x\nbob@example.org x\n")
    pf = Postfix(vusers.path, {
        "virtual_mailbox_domains": "example.org",
        "virtual_mailbox_maps": "texthash:" + vmap,
        "virtual_transport": "lmtp:unix:" + sock,
    })
    pf.start()
    try:
        sent = {}
        with smtplib.SMTP("127.0.0.1", pf.port, timeout=30) as s:
            for n, rcpt in enumerate(["alice@example.org", "bob@example.org",
                                      "alice@example.org"]):
                body = BODY.replace(b"{rcpt}", rcpt.encode()).replace(
                    b"{n}", str(n).encode())
                assert s.sendmail("sender@outside.example", [rcpt], body) == {}
                sent.setdefault(rcpt, []).append(body)
            # unknown recipients are refused in the SMTP dialogue
            with pytest.raises(smtplib.SMTPRecipientsRefused) as e:
                s.sendmail("sender@outside.example", ["nobody@example.org"],
                           b"Subject: x\r\n\r\nx\r\n")
            code = e.value.recipients["nobody@example.org"][0]
            assert 500 <= code < 600
        for user in ("alice@example.org", "bob@example.org"):
            wait_for(lambda: maildir_count(vusers, user) == len(sent[user]),
                     "delivery to " + user, log=lambda: pf.logtext() +
                     srv.log())
        for user in ("alice@example.org", "bob@example.org"):
            got = pop3_messages(srv, user)
            # Postfix's queue manager picks queued messages in no set
            # order, and two deliveries in one second may sort either way.
            assert sorted(strip_added(m) for m in got) == sorted(sent[user])
            assert all(m.startswith(b"Return-Path: <sender@outside.example>"
                                    b"\r\nDelivered-To: " + user.encode())
                       for m in got)
        # postlogd writes its log asynchronously: wait for the line
        wait_for(lambda: "status=sent" in pf.logtext(), "the maillog",
                 log=pf.logtext)
        if shutil.which("fetchmail"):
            fetch_with_fetchmail(vusers, srv, "bob@example.org",
                                 sent["bob@example.org"])
        fetch_with_postino(vusers, srv, "alice@example.org",
                           sent["alice@example.org"])
    finally:
        pf.stop()


def fetch_with_fetchmail(root, srv, user, want):
    home = os.path.join(root.path, "fm")
    os.makedirs(home, exist_ok=True)
    rc = os.path.join(home, "fetchmailrc")
    out = os.path.join(home, "out.mbox")
    with open(rc, "w") as f:
        f.write('poll 127.0.0.1 service %d protocol pop3 auth password '
                'user "%s" password "secret" sslproto "" keep fetchall '
                'mda "cat >> %s"\n' % (srv.port, user, out))
    os.chmod(rc, 0o600)
    env = dict(os.environ, HOME=home, FETCHMAILHOME=home)
    p = subprocess.run(["fetchmail", "--fetchmailrc", rc, "--nosyslog",
                        "--nodetach", "--pidfile",
                        os.path.join(home, "fetchmail.pid")],
                       capture_output=True, timeout=60, env=env,
                       stdin=subprocess.DEVNULL)
    assert p.returncode == 0, p.stderr.decode(errors="replace")
    with open(out, "rb") as f:
        got = f.read()
    for body in want:
        tail = body.split(b"\r\n\r\n", 1)[1].replace(b"\r\n", b"\n")
        assert tail in got


def fetch_with_postino(root, srv, user, want):
    """Our own client fetches into a Maildir: the bodies arrive intact."""
    home = os.path.join(root.path, "pc")
    md = os.path.join(home, "Mail")
    os.makedirs(home, exist_ok=True)
    env = dict(os.environ, HOME=home, XDG_STATE_HOME=home,
               XDG_CONFIG_HOME=home, POSTINO_PASSWORD="secret")
    p = subprocess.run([os.path.join(BUILD, "postino"), "fetch", "--tls=no",
                        "--keep", "--maildir", md, "--user", user,
                        "--timeout", "30", "127.0.0.1:%d" % srv.port],
                       capture_output=True, timeout=60, env=env,
                       stdin=subprocess.DEVNULL)
    assert p.returncode == 0, p.stderr.decode(errors="replace")
    got = []
    for sub in ("new", "cur"):
        for n in os.listdir(os.path.join(md, sub)):
            with open(os.path.join(md, sub, n), "rb") as f:
                got.append(f.read())
    assert len(got) == len(want)
    for body in want:
        tail = body.split(b"\r\n\r\n", 1)[1].replace(b"\r\n", b"\n")
        assert sum(g.endswith(b"\n\n" + tail) for g in got) >= 1


def test_postfix_mailbox_command_postino_deliver(mailroot, postinod):
    """Postfix's local(8) pipes each message to postino-deliver as the
    recipient's system user; the user is in the passwd-file too."""
    name = "pdtest"
    if not any(p.pw_name == name for p in pwd.getpwall()):
        subprocess.run(["useradd", "--system", "--no-create-home", "-d",
                        mailroot.home(name), name], check=True)
    pw = pwd.getpwnam(name)
    mailroot.add_user(name, "secret")
    with open(mailroot.passwd_file) as f:
        lines = f.read().replace("%s:" % name, "%s:" % name, 1)
    # the passwd-file line: this user's uid and gid, readable by it
    lines = "\n".join(
        (l.split(":")[0] == name and
         ":".join(l.split(":")[:2] + [str(pw.pw_uid), str(pw.pw_gid)] +
                  l.split(":")[4:])) or l for l in lines.split("\n"))
    with open(mailroot.passwd_file, "w") as f:
        f.write(lines)
    subprocess.run(["chown", "-R", "%d:%d" % (pw.pw_uid, pw.pw_gid),
                    mailroot.home(name)], check=True)
    srv = postinod(start=False)
    os.chmod(srv.conf, 0o644)
    pf = Postfix(mailroot.path, {
        "mydestination": "localhost",
        "mailbox_command": "%s -c %s -d $USER" % (
            os.path.join(BUILD, "postino-deliver"), srv.conf),
        "home_mailbox": "",
    })
    pf.start()
    try:
        body = b"From: a@b\r\nSubject: via mailbox_command\r\n\r\nhi\r\n"
        with smtplib.SMTP("127.0.0.1", pf.port, timeout=30) as s:
            s.sendmail("a@outside.example", [name + "@localhost"], body)
        wait_for(lambda: maildir_count(mailroot, name) == 1, "delivery",
                 log=pf.logtext)
        (path, data), = mailroot.maildir_files(name).values()
        assert data.startswith(b"Return-Path: <a@outside.example>\n")
        # local(8)'s From_ envelope line is dropped, its own headers kept
        assert b"\nFrom " not in data
        assert b"\nSubject: via mailbox_command\n" in data
        assert data.endswith(b"\n\nhi\n")
        assert os.stat(path).st_uid == pw.pw_uid
    finally:
        pf.stop()
