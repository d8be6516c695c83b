#!/usr/bin/python3
"""Ad-hoc latency probe for the server's download path (issue 11).

Not a benchmark (bench/ is): a quick before/after check on one machine.
Starts postinod from $POSTINO_BUILD (default build/) on a temporary mail
root with the conftest.py helpers, then times, over loopback:
  - login (USER/PASS to "+OK Logged in") to an N-message Maildir, cold
    (first session after delivery) and warm (the next ones),
  - LIST and UIDL of that mailbox,
  - RETR of a 1 MB and a 4 KB message,
  - the mail workers' CPU time per MB over 100 RETRs of the 1 MB message.
Prints the median of ROUNDS. Usage:
  POSTINO_BUILD=build python3 tests/perf/pop3_timing.py [N] [ROUNDS]
"""
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "blackbox"))
import conftest  # noqa: E402


def body(size):
    line = b"x" * 70 + b"\n"
    hdr = b"From: a@example.org\nSubject: t\n\n"
    return hdr + line * ((size - len(hdr)) // len(line))


def session(srv, user):
    r = srv.raw(timeout=30)
    r.expect(b"+OK")
    t0 = time.monotonic()
    assert r.login(user, "secret").startswith(b"+OK"), "login"
    return r, time.monotonic() - t0


def timed(r, cmd, multi=True):
    t0 = time.monotonic()
    r.send(cmd + b"\r\n")
    r.expect(b"+OK")
    if multi:
        r.raw_until_dot()
    return time.monotonic() - t0


def cpu_seconds(pids):
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime + stime
    return total / tick


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 10000
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    root = conftest.MailRoot()
    srv = None
    try:
        root.add_user("big", "secret")
        root.add_user("small", "secret")
        data = body(4096)
        for _ in range(n):
            root.deliver_maildir("big", data)
        root.deliver_maildir("small", body(1 << 20))
        root.deliver_maildir("small", data)
        srv = conftest.Server(root, "maildir:~/Maildir", {})
        srv.start()
        res = {}
        r, t = session(srv, "big")
        res["login cold (ms)"] = [t]
        r.cmd(b"QUIT")
        r.close()
        for _ in range(rounds):
            r, t = session(srv, "big")
            res.setdefault("login warm (ms)", []).append(t)
            res.setdefault("LIST (ms)", []).append(timed(r, b"LIST"))
            res.setdefault("UIDL (ms)", []).append(timed(r, b"UIDL"))
            r.cmd(b"QUIT")
            r.close()
        r, _ = session(srv, "small")
        for _ in range(rounds):
            res.setdefault("RETR 1 MB (ms)", []).append(timed(r, b"RETR 1"))
            res.setdefault("RETR 4 KB (ms)", []).append(timed(r, b"RETR 2"))
            res.setdefault("STAT (ms)", []).append(timed(r, b"STAT", False))
        pids = srv.pids("mail")
        c0, t0 = cpu_seconds(pids), time.monotonic()
        for _ in range(100):
            timed(r, b"RETR 1")
        c1, t1 = cpu_seconds(pids), time.monotonic()
        r.cmd(b"QUIT")
        r.close()
        print("RETR 100 x 1 MB: %.1f MB/s, mail worker CPU %.2f ms/MB" % (
            100 / (t1 - t0), (c1 - c0) * 1000 / 100))
        for k, v in res.items():
            print("%-18s median %8.2f  min %8.2f" % (
                k, 1000 * statistics.median(v), 1000 * min(v)))
    finally:
        if srv is not None:
            srv.stop()
        root.cleanup()


if __name__ == "__main__":
    main()
