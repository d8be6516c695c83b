#!/usr/bin/python3
"""LMTP delivery rate: 4 KB messages from 8 connections (8 processes, one
connection each) into one Maildir and into 100, postinod side by side with
Dovecot's LMTP (dovecot-lmtpd) on the same machine in the same run.

    tests/perf/lmtp_rate.py [--build build] [--messages 2000]

Prints one line per server and case: messages/s, and checks that every
message is in the Maildirs. Loopback only; each server gets its own
temporary root. Both servers fsync every delivery (postinod always,
Dovecot with its default mail_fsync = optimized).
"""
import argparse
import multiprocessing
import os
import pwd
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(
    __file__))))
IS_ROOT = os.geteuid() == 0
USERS = ["lm%03d" % i for i in range(100)]
CONNS = 8


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def message(size=4096):
    rnd = random.Random(4)
    head = (b"From: bench <bench@example.org>\r\nTo: x@example.net\r\n"
            b"Subject: 4 KB\r\nMessage-ID: <bench@example.org>\r\n\r\n")
    body = b""
    while len(head) + len(body) < size - 80:
        body += bytes(rnd.choice(b"abcdefghij klmnop") for _ in range(76)) \
            + b"\r\n"
    return head + body


def make_root():
    root = tempfile.mkdtemp(prefix="lmtp-rate-", dir="/tmp")
    os.chmod(root, 0o755)
    with open(os.path.join(root, "passwd"), "w") as f:
        for u in USERS:
            f.write("%s:{PLAIN}x::::%s/home/%s::\n" % (u, root, u))
    os.mkdir(os.path.join(root, "empty"))
    return root


def reset_maildirs(root):
    nobody = pwd.getpwnam("nobody") if IS_ROOT else None
    home = os.path.join(root, "home")
    shutil.rmtree(home, ignore_errors=True)
    os.mkdir(home, 0o755)
    for u in USERS:
        for sub in ("new", "cur", "tmp"):
            d = os.path.join(home, u, "Maildir", sub)
            os.makedirs(d)
        if nobody:
            for dp, dn, fn in os.walk(os.path.join(home, u)):
                os.chown(dp, nobody.pw_uid, nobody.pw_gid)


def count(root):
    return sum(len(os.listdir(os.path.join(root, "home", u, "Maildir", s)))
               for u in USERS for s in ("new", "cur"))


def sender(args):
    port, msg, idx, n, users = args
    s = socket.create_connection(("127.0.0.1", port), timeout=60)
    f = s.makefile("rb")

    def reply():
        while True:
            ln = f.readline()
            if not ln:
                raise EOFError("closed")
            if ln[3:4] != b"-":
                return int(ln[:3])
    assert reply() == 220
    s.sendall(b"LHLO bench.example.org\r\n")
    assert reply() == 250
    data = msg.replace(b"\r\n.", b"\r\n..") + b".\r\n"
    for i in range(n):
        u = users[(idx + i * CONNS) % len(users)]
        # PIPELINING: envelope in one write, the message in another
        s.sendall(b"MAIL FROM:<bench@example.org>\r\nRCPT TO:<%s@example.net>"
                  b"\r\nDATA\r\n" % u.encode())
        assert reply() == 250 and reply() == 250 and reply() == 354
        s.sendall(data)
        r = reply()
        if r != 250:
            raise RuntimeError("delivery refused: %d" % r)
    s.sendall(b"QUIT\r\n")
    s.close()
    return n


def run_case(port, msg, n, users):
    per = n // CONNS
    jobs = [(port, msg, i, per, users) for i in range(CONNS)]
    with multiprocessing.Pool(CONNS) as pool:
        t = time.monotonic()
        done = sum(pool.map(sender, jobs))
        dt = time.monotonic() - t
    return done, dt


class Postinod:
    name = "postinod"

    def __init__(self, build, root, extra=()):
        self.root = root
        self.ready = os.path.join(root, "ready")
        conf = os.path.join(root, "postinod.conf")
        lines = ["listen = 127.0.0.1:0", "lmtp_listen = 127.0.0.1:0",
                 "passwd_file = %s/passwd" % root,
                 "mailbox = maildir:~/Maildir", "ready_file = " + self.ready,
                 "lmtp_local_domains = example.net",
                 "lmtp_user_concurrency = 0"] + list(extra)
        if IS_ROOT:
            lines += ["mail_user = nobody", "login_user = postino",
                      "login_chroot = %s/empty" % root]
        with open(conf, "w") as f:
            f.write("\n".join(lines) + "\n")
        self.cmd = [os.path.join(build, "postinod"), "-f", "-c", conf]

    def start(self):
        self.log = open(os.path.join(self.root, "log"), "ab")
        self.proc = subprocess.Popen(self.cmd, stdout=self.log,
                                     stderr=self.log, start_new_session=True)
        deadline = time.monotonic() + 20
        while not os.path.exists(self.ready):
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise SystemExit("postinod did not start")
            time.sleep(0.05)
        with open(self.ready) as f:
            for ln in f:
                if ln.startswith("lmtp "):
                    self.port = int(ln.rsplit(":", 1)[1])

    def stop(self):
        self.proc.terminate()
        self.proc.wait(20)


class Dovecot:
    name = "dovecot"

    def __init__(self, root):
        self.root = root
        self.port = free_port()
        conf = os.path.join(root, "dovecot.conf")
        nobody = "nobody"
        with open(conf, "w") as f:
            f.write("""protocols = lmtp
listen = 127.0.0.1
base_dir = {r}/run
state_dir = {r}/state
log_path = {r}/dovecot.log
ssl = no
auth_username_format = %Ln
default_login_user = {nb}
default_internal_user = {nb}
mail_location = maildir:~/Maildir
passdb {{
  driver = passwd-file
  args = {r}/passwd
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={r}/home/%n
}}
service lmtp {{
  inet_listener lmtp {{
    address = 127.0.0.1
    port = {port}
  }}
}}
service imap-login {{
  inet_listener imap {{
    port = 0
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
""".format(r=root, nb=nobody, port=self.port,
           uid=pwd.getpwnam("nobody").pw_uid if IS_ROOT else os.getuid(),
           gid=pwd.getpwnam("nobody").pw_gid if IS_ROOT else os.getgid()))
        self.cmd = ["/usr/sbin/dovecot", "-F", "-c", conf]

    def start(self):
        self.log = open(os.path.join(self.root, "stdout"), "ab")
        self.proc = subprocess.Popen(self.cmd, stdout=self.log,
                                     stderr=self.log, start_new_session=True)
        deadline = time.monotonic() + 20
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), 2) as s:
                    if s.recv(100).startswith(b"220"):
                        return
            except OSError:
                pass
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise SystemExit("dovecot did not start")
            time.sleep(0.05)

    def stop(self):
        self.proc.terminate()
        self.proc.wait(20)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.path.join(REPO, "build"))
    ap.add_argument("--messages", type=int, default=2000)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--set", action="append", default=[],
                    help="an extra postinod.conf line, e.g. mail_workers=8")
    ap.add_argument("--only", choices=("postinod", "dovecot"))
    a = ap.parse_args()
    msg = message()
    print("lmtp_rate: %d messages of %d octets, %d connections, %d cores"
          % (a.messages, len(msg), CONNS, os.cpu_count()))
    extra = [kv.replace("=", " = ", 1) for kv in a.set]
    for make in (lambda r: Postinod(a.build, r, extra), Dovecot):
        root = make_root()
        srv = make(root)
        if a.only and srv.name != a.only:
            shutil.rmtree(root, ignore_errors=True)
            continue
        srv.start()
        try:
            for nusers in (1, 100):
                best = 0
                for _ in range(a.rounds):
                    reset_maildirs(root)
                    done, dt = run_case(srv.port, msg, a.messages,
                                        USERS[:nusers])
                    got = count(root)
                    if got != done:
                        raise SystemExit("%s: %d delivered, %d stored" % (
                            srv.name, done, got))
                    best = max(best, done / dt)
                print("%-8s into %3d Maildir%s: %6.0f messages/s" % (
                    srv.name, nusers, "s" if nusers > 1 else " ", best))
                sys.stdout.flush()
        finally:
            srv.stop()
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
