#!/usr/bin/env python3
"""postino against mpop and fetchmail: wall time to fetch a whole maildrop.

Each client fetches every message of the same generated maildrop, keeping
it on the server (so one seeding serves every run), into a fresh local
store and a fresh UIDL state each time: postino and mpop into a Maildir,
fetchmail through an MDA (it has no Maildir delivery of its own; its MDA
is `cat > file`, forked per message, as fetchmail users run procmail or
maildrop). postino is also timed with the same MDA, for fetchmail's sake,
and with --lmtp into a second postinod's LMTP listener (postino-lmtp: one
LMTP connection and one fsynced Maildir delivery per message), and, when
asked with --clients postino-mbox, with --mbox (the store's mbox append:
locks, journal and one fsync per message).
Servers: postinod (this tree's build) and Dovecot's pop3 (needs root and
dovecot-pop3d), each serving a Maildir.

Usage: bench/client/bench.py [--build DIR] [--reps N] [--sets 2000x20480,10000x1024]
                             [--servers postinod,dovecot] [--clients ...]
Prints one line per run and a table of medians with the ratios
postino/mpop and postino/fetchmail. Not part of make check.
"""

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))


def parse_args():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.path.join(REPO, "build"))
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--sets", default="2000x20480,10000x1024")
    ap.add_argument("--servers", default="postinod,dovecot")
    ap.add_argument("--clients",
                    default="postino,mpop,fetchmail,postino-mda,postino-lmtp")
    return ap.parse_args()


ARGS = parse_args()
os.environ["POSTINO_BUILD"] = os.path.abspath(ARGS.build)
sys.path.insert(0, os.path.join(REPO, "tests", "blackbox"))
import conftest  # noqa: E402  (MailRoot, Server: the test harness)
import test_client  # noqa: E402  (Dovecot)

USER, PASSWORD = "bench", "bench-password"
POSTINO = os.path.join(ARGS.build, "postino")
TIMEOUT = 1800


def message(i, size):
    head = (b"Return-Path: <sender%d@example.org>\r\n"
            b"From: Sender %d <sender%d@example.org>\r\n"
            b"To: bench@example.org\r\n"
            b"Subject: benchmark message %d\r\n"
            b"Message-ID: <bench-%d@example.org>\r\n"
            b"Date: Mon, 1 Jan 2024 00:00:00 +0000\r\n\r\n"
            % (i, i, i, i, i))
    line = b"The quick brown fox jumps over the lazy dog, message %08d.\r\n" % i
    body = line * max(1, (size - len(head)) // len(line))
    return head + body


class Work:
    def __init__(self):
        self.path = tempfile.mkdtemp(prefix="postino-bench-")
        os.chmod(self.path, 0o755)

    def env(self):
        env = dict(os.environ)
        env.update(HOME=self.path, XDG_STATE_HOME=os.path.join(self.path, "state"),
                   XDG_CONFIG_HOME=os.path.join(self.path, "config"),
                   POSTINO_PASSWORD=PASSWORD, FETCHMAILHOME=self.path,
                   FETCHMAILUSER=__import__("pwd").getpwuid(os.getuid()).pw_name)
        return env

    def secret(self, name, text):
        p = os.path.join(self.path, name)
        fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(text)
        return p

    def mda(self):
        out = os.path.join(self.path, "out")
        os.makedirs(out, exist_ok=True)
        p = os.path.join(self.path, "mda.sh")
        with open(p, "w") as f:
            f.write('#!/bin/sh\nexec cat > "$(mktemp %s/msg.XXXXXXXX)"\n' % out)
        os.chmod(p, 0o755)
        return p, out

    def cleanup(self):
        shutil.rmtree(self.path, ignore_errors=True)


def count(d):
    if os.path.isfile(d):
        # An mbox: a message starts at a From_ line after an empty line.
        with open(d, "rb") as f:
            data = f.read()
        return data.startswith(b"From ") + data.count(b"\n\nFrom ")
    return len(os.listdir(d)) if os.path.isdir(d) else 0


def run_postino(port, work, mda=False, mbox=False):
    md = os.path.join(work.path, "Maildir")
    argv = [POSTINO, "fetch", "--tls=no", "--keep", "--quiet"]
    if mbox:
        out = os.path.join(work.path, "mbox")
        argv += ["--mbox", out]
    elif mda:
        script, out = work.mda()
        argv += ["--mda", script]
    else:
        argv += ["--maildir", md]
        out = os.path.join(md, "new")
    argv.append("pop3://%s@127.0.0.1:%d" % (USER, port))
    return argv, out


class LmtpTarget:
    """A postinod with an LMTP listener delivering to one user's Maildir,
    started once, emptied before each run."""
    server = None

    @classmethod
    def get(cls):
        if cls.server is None:
            root = conftest.MailRoot()
            root.add_user("rcpt", "rcpt-password")
            srv = conftest.Server(root, "maildir:~/Maildir",
                                  {"lmtp_listen": "127.0.0.1:0",
                                   "lmtp_return_path": False,
                                   "lmtp_delivered_to": False})
            srv.start()
            (addr,) = [a[5:] for a in srv.addrs if a.startswith("lmtp ")]
            cls.server = (root, srv, addr,
                          os.path.join(root.maildir("rcpt"), "new"))
        root, srv, addr, new = cls.server
        for n in os.listdir(new):
            os.unlink(os.path.join(new, n))
        return addr, new

    @classmethod
    def stop(cls):
        if cls.server is not None:
            cls.server[1].stop()
            cls.server[0].cleanup()
            cls.server = None


def run_postino_lmtp(port, work):
    addr, new = LmtpTarget.get()
    return [POSTINO, "fetch", "--tls=no", "--keep", "--quiet", "--lmtp", addr,
            "--lmtp-recipient", "rcpt",
            "pop3://%s@127.0.0.1:%d" % (USER, port)], new


def run_mpop(port, work):
    md = os.path.join(work.path, "Maildir")
    for s in ("new", "cur", "tmp"):
        os.makedirs(os.path.join(md, s))
    conf = work.secret("mpoprc", (
        "defaults\ntimeout 300\naccount default\nhost 127.0.0.1\nport %d\n"
        "user %s\npassword %s\nauth user\ntls off\ndelivery maildir %s\n"
        "uidls_file %s\nonly_new off\nkeep on\nreceived_header off\n")
        % (port, USER, PASSWORD, md, os.path.join(work.path, "uidls")))
    return ["mpop", "--file=" + conf, "--quiet", "default"], \
        os.path.join(md, "new")


def run_fetchmail(port, work):
    script, out = work.mda()
    rc = work.secret("fetchmailrc", (
        "set no syslog\nset invisible\nset no bouncemail\n"
        "poll 127.0.0.1 with protocol POP3 service %d timeout 300\n"
        "    auth password\n"
        '    user "%s" there with password "%s" is "%s" here\n'
        "    sslproto ''\n    fetchall\n    keep\n    no rewrite\n"
        '    mda "%s"\n') % (port, USER, PASSWORD,
                             work.env()["FETCHMAILUSER"], script))
    return ["fetchmail", "-f", rc, "--nosyslog", "-s"], out


CLIENTS = {
    "postino": lambda port, w: run_postino(port, w),
    "postino-mda": lambda port, w: run_postino(port, w, mda=True),
    "postino-mbox": lambda port, w: run_postino(port, w, mbox=True),
    "postino-lmtp": run_postino_lmtp,
    "mpop": run_mpop,
    "fetchmail": run_fetchmail,
}


def time_client(name, port, n):
    work = Work()
    try:
        argv, out = CLIENTS[name](port, work)
        t0 = time.monotonic()
        cp = subprocess.run(argv, env=work.env(), stdin=subprocess.DEVNULL,
                            capture_output=True, timeout=TIMEOUT)
        dt = time.monotonic() - t0
        got = count(out)
        if cp.returncode != 0 or got != n:
            raise SystemExit("%s failed (exit %d, %d of %d messages):\n%s"
                             % (name, cp.returncode, got, n,
                                cp.stderr.decode(errors="replace")[-2000:]))
        return dt
    finally:
        work.cleanup()


def start_server(kind, n, size):
    if kind == "postinod":
        root = conftest.MailRoot()
        root.add_user(USER, PASSWORD)
        md = root.maildir(USER)
        for i in range(n):
            name = "%d.B%08d.bench" % (1700000000 + i, i)
            with open(os.path.join(md, "new", name), "wb") as f:
                f.write(message(i, size))
        conftest.chown_tree(md)
        srv = conftest.Server(root, "maildir:~/Maildir", {})
        srv.start()
        return srv.port, lambda: (srv.stop(), root.cleanup())
    test_client.USER, test_client.PASSWORD = USER, PASSWORD
    d = test_client.Dovecot()
    for i in range(n):
        name = "%d.B%08d.bench" % (1700000000 + i, i)
        with open(os.path.join(d.maildir, "new", name), "wb") as f:
            f.write(message(i, size))
    d.start()
    return d.port, d.stop


def warm(port):
    """One full session first: the server builds its index, the page
    cache holds the maildrop; every client then meets the same server."""
    import poplib
    p = poplib.POP3("127.0.0.1", port, timeout=600)
    p.user(USER)
    p.pass_(PASSWORD)
    p.uidl()
    p.quit()


def main():
    rows = []
    for spec in ARGS.sets.split(","):
        n, size = (int(x) for x in spec.split("x"))
        for kind in ARGS.servers.split(","):
            if kind == "dovecot" and (os.geteuid() != 0 or
                                      not os.path.exists(test_client.DOVECOT)):
                print("skip dovecot (needs root and dovecot-pop3d)")
                continue
            port, stop = start_server(kind, n, size)
            try:
                warm(port)
                med = {}
                for c in ARGS.clients.split(","):
                    if c in ("mpop", "fetchmail") and not shutil.which(c):
                        continue
                    times = [time_client(c, port, n) for _ in range(ARGS.reps)]
                    med[c] = statistics.median(times)
                    print("%-8s %6d x %6d B  %-12s %s" % (
                        kind, n, size, c,
                        " ".join("%.2f" % t for t in times)), flush=True)
                rows.append((kind, spec, med))
            finally:
                stop()
    LmtpTarget.stop()
    print()
    print("| server | set | postino | postino --mda | mpop | fetchmail | "
          "postino/mpop | postino/fetchmail | postino --mda/fetchmail |")
    print("|---|---|---|---|---|---|---|---|---|")
    for kind, spec, m in rows:
        def f(k):
            return "%.2f s" % m[k] if k in m else "-"

        def r(a, b):
            return "%.2f" % (m[a] / m[b]) if a in m and b in m else "-"
        print("| %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
            kind, spec.replace("x", " × ") + " B", f("postino"),
            f("postino-mda"), f("mpop"), f("fetchmail"),
            r("postino", "mpop"), r("postino", "fetchmail"),
            r("postino-mda", "fetchmail")))
    if any("postino-lmtp" in m for _, _, m in rows):
        print()
        print("| server | set | postino | postino --mda | postino --lmtp |")
        print("|---|---|---|---|---|")
        for kind, spec, m in rows:
            print("| %s | %s | %s |" % (kind, spec.replace("x", " × ") + " B",
                  " | ".join("%.2f s" % m[k] if k in m else "-" for k in
                             ("postino", "postino-mda", "postino-lmtp"))))


if __name__ == "__main__":
    main()
