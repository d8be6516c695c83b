#!/usr/bin/env python3
"""Postino benchmark: two postinod on the pgsql store behind HAProxy, beside
one postinod on Maildir, on the same mail, in one run (issue 15).

    bench/pgsql.py [--quick] [--build DIR] [--runs N]

Uses bench/run.py's generated data, load generator and measuring (the same
Bench, Postinod and Data; see its docstring). Starts PostgreSQL 15 the way
the tests do (tests/blackbox/pgsql_helpers.py: initdb in a temporary
directory, a free loopback port, an unprivileged user, fsync off), copies
the S1 and S3 mailboxes into it with postino-migrate, and starts HAProxy
(send-proxy-v2, config in the temporary directory). Then measures, on the
same generated mailboxes:

  maildir        one postinod, Maildir, the load generator connects directly
  maildir+hap    one postinod, Maildir, through HAProxy (the proxy's cost)
  pgsql x2+hap   two postinod on mailbox = pgsql:, HAProxy round robin

S1: 50 clients connect+USER/PASS+QUIT over 100 distinct users (sessions/s
and server CPU per session); S3: RETR of 100 x 1 MB, 1 client and 8.

Placement (2 cores): everything on the server side -- the postinod
instances, HAProxy and every PostgreSQL process -- on --server-cpu (0); the
load generator alone on --gen-cpu (1). "Server CPU" is the CPU of all of
them together, so each column pays for what its deployment needs.
Not part of `make bench` (migrating 800 MB into PostgreSQL takes minutes);
`make bench-pgsql` runs it. Standard library only (plus the tests' helper);
every wait is bounded; loopback only.
"""

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

import run

sys.path.insert(0, os.path.join(run.REPO, "tests", "blackbox"))
import pgsql_helpers  # noqa: E402

HAPROXY = shutil.which("haproxy") or "/usr/sbin/haproxy"
SCHEMA = os.path.join(run.REPO, "src", "store", "pgsql_schema.sql")
S1_USERS = 100       # a multiple of the 50 clients: no two hold one user
S1_CLIENTS = 50
COLUMNS = ("maildir", "maildir+hap", "pgsql x2+hap")


def log(msg):
    run.log(msg)


class Group(run.Server):
    """Several process sessions measured as one server (run.Bench reads
    sid(), alive(), port and log())."""

    def __init__(self, name, port, members, sids):
        self.name, self.port, self.members, self._sids = \
            name, port, members, sids

    def sid(self):
        return self._sids

    def alive(self):
        return all(m.alive() for m in self.members)

    def stop(self):
        pass

    def log(self):
        return "\n".join(m.log() for m in self.members)


class HAProxy(run.Server):
    name = "haproxy"

    def __init__(self, d, cpu, backends):
        self.dir = d
        self.port = run.free_port()
        self.logpath = os.path.join(d, "haproxy.log")
        servers = "".join("    server s%d 127.0.0.1:%d send-proxy-v2\n"
                          % (i, p) for i, p in enumerate(backends))
        cfg = ("global\n    maxconn 4000\ndefaults\n    mode tcp\n"
               "    timeout connect 5s\n    timeout client 60s\n"
               "    timeout server 60s\n"
               "frontend pop3\n    bind 127.0.0.1:%d\n"
               "    default_backend mail\n"
               "backend mail\n    balance roundrobin\n%s"
               % (self.port, servers))
        self.conf = os.path.join(d, "haproxy-%d.cfg" % self.port)
        with open(self.conf, "w") as f:
            f.write(cfg)
        self.cmd = ["taskset", "-c", str(cpu), HAPROXY, "-db", "-f",
                    self.conf]

    def start(self):
        self._log = open(self.logpath, "ab")
        self.proc = subprocess.Popen(self.cmd, stdin=subprocess.DEVNULL,
                                     stdout=self._log, stderr=self._log,
                                     start_new_session=True)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and self.proc.poll() is None:
            try:
                socket.create_connection(("127.0.0.1", self.port),
                                         timeout=1).close()
                return self
            except OSError:
                time.sleep(0.05)
        raise SystemExit("haproxy did not start:\n" + self.log())

    def log(self):
        with open(self.logpath, "rb") as f:
            return f.read().decode("utf-8", "replace")[-5000:]


def pin_postgres(pg, cpu):
    """Every PostgreSQL process on the server core (children inherit)."""
    with open(os.path.join(pg.data, "postmaster.pid")) as f:
        pid = int(f.readline())
    subprocess.run(["taskset", "-a", "-p", "-c", str(cpu), str(pid)],
                   check=True, capture_output=True, timeout=10)
    for p in run.tree_pids(run.proc_stat(pid)["sid"]):
        subprocess.run(["taskset", "-a", "-p", "-c", str(cpu), str(p)],
                       capture_output=True, timeout=10)
    return run.proc_stat(pid)["sid"]


def migrate(build, conf, users):
    """postino-migrate each user's Maildir into pgsql, two at a time."""
    exe = os.path.join(build, "postino-migrate")
    t0 = time.monotonic()
    for i in range(0, len(users), 2):
        procs = [(u, subprocess.Popen(
            [exe, "-c", conf, "-d", u, "maildir:~/Maildir", "pgsql:"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT))
            for u in users[i:i + 2]]
        for u, p in procs:
            out, _ = p.communicate(timeout=600)
            if p.returncode != 0:
                raise SystemExit("postino-migrate %s: %s" % (u, out.decode()))
    return time.monotonic() - t0


def measure(b, srv, data, quick):
    dur = "2" if quick else "6"
    uf = data.userfile(os.path.join(b.out, "users-pg-s1.txt"),
                       ["u%05d" % i for i in range(S1_USERS)])
    b.runs(srv, "S1", b.loadgen_cmd(
        srv, "plain", "login", uf,
        ["-c", str(S1_CLIENTS), "-d", dur, "-l", "S1"]),
        lambda r: r.get("sessions_per_s", 0))
    n, o = data.octets("mb")
    for c in (1, 8):
        mf = data.userfile(os.path.join(b.out, "users-mb%d.txt" % c),
                           ["mb%d" % (i + 1) for i in range(c)])
        b.runs(srv, "S3-%dc" % c, b.loadgen_cmd(
            srv, "plain", "retr", mf,
            ["-c", str(c), "-n", str(c if quick or c > 1 else 2),
             "-E", str(n), "-B", str(o)]), lambda r: r.get("mb_per_s", 0))


ROWS = [("S1", "S1 %d clients login+QUIT: sessions/s" % S1_CLIENTS,
         lambda r: r["sessions_per_s"], "/s"),
        ("S1", "S1 server CPU per session", run.cpu_per("session"), "ms"),
        ("S3-1c", "S3 RETR 100 x 1 MB, 1 client: MB/s",
         lambda r: r["mb_per_s"], "MB/s"),
        ("S3-8c", "S3 RETR 100 x 1 MB, 8 clients: MB/s",
         lambda r: r["mb_per_s"], "MB/s"),
        ("S3-8c", "S3 server CPU per MB (8 clients)", run.cpu_per("mb"),
         "ms")]


def table(b):
    out = ["| scenario | " + " | ".join(COLUMNS) +
           " | hap/direct | pgsql/maildir |", "|---" * 6 + "|"]
    for key, label, f, unit in ROWS:
        v = [run.med(b.rows.get((key, c)), f) for c in COLUMNS]
        cells = [run.fmt(x, unit) for x in v]
        rat = ["%.2f" % (x / v[0]) if x is not None and v[0] else "-"
               for x in v[1:]]
        out.append("| %s | %s | %s |" % (label, " | ".join(cells),
                                         " | ".join(rat)))
    return "\n".join(out)


def start_pg(cpu):
    pg = pgsql_helpers.PG()
    sid = pin_postgres(pg, cpu)
    with open(SCHEMA) as f:
        pg.psql(f.read())
    return pg, sid


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", default=os.path.join(run.REPO, "build"))
    ap.add_argument("--quick", action="store_true", help="one short run each")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--retries", type=int, default=1)
    ap.add_argument("--max-foreign", type=float, default=0.10)
    ap.add_argument("--server-cpu", type=int, default=0)
    ap.add_argument("--gen-cpu", type=int, default=1)
    ap.add_argument("--timeout", type=float, default=300)
    ap.add_argument("--budget", type=float, default=1500)
    a = ap.parse_args()
    if a.quick:
        a.runs, a.retries = 1, 0
    if not os.path.exists(HAPROXY) or pgsql_helpers.pg_bindir() is None:
        raise SystemExit("bench/pgsql.py needs haproxy and postgresql "
                         "(tests/deps.sh installs them)")
    b = run.Bench(a)
    b.results = os.path.join(b.out, "results-pgsql.jsonl")
    tmp = tempfile.mkdtemp(prefix="postino-pgbench-", dir="/tmp")
    os.chmod(tmp, 0o755)
    for p in (os.path.join(run.REPO, "build"), b.out):
        os.chmod(p, os.stat(p).st_mode | 0o755)
    data = run.Data(os.path.join(b.out, "data"), b.build, a.quick, False,
                    1000)
    data.ensure()
    root = data.tree("postinod", 1000)
    cert, key = run.make_cert(tmp)
    started, pg = [], None
    t0 = time.monotonic()
    try:
        pg, pg_sid = start_pg(a.server_cpu)
        proxy = {"listen": "127.0.0.1:0 proxy",
                 "proxy_trusted_networks": "127.0.0.1"}
        pgconf = dict(proxy, mailbox="pgsql:", pgsql_conninfo=pg.conninfo,
                      pgsql_password_file=pg.password_file)

        def postinod(over):
            s = run.Postinod(b.build, root, cert, key, tmp, a.server_cpu,
                             False, over)
            started.append(s)
            return s

        pg1, pg2 = postinod(pgconf), postinod(pgconf)
        users = ["u%05d" % i for i in range(S1_USERS)] + \
            ["mb%d" % (i + 1) for i in range(data.mb_users)]
        log("migrating %d mailboxes into PostgreSQL" % len(users))
        secs = migrate(b.build, pg1.conf, users)
        b.notes.append("postino-migrate of %d mailboxes (%d x 20 x 50 KB, "
                       "%d x 100 x 1 MB): %.0f s" % (
                           len(users), S1_USERS, data.mb_users, secs))
        pg.psql("VACUUM ANALYZE")
        md = postinod({}).start()
        mdp = postinod(proxy).start()
        started += [HAProxy(tmp, a.server_cpu, [mdp.port]).start()]
        hap_md = started[-1]
        log("maildir, direct")
        measure(b, Group("maildir", md.port, [md], [md.sid()]), data,
                a.quick)
        log("maildir through HAProxy")
        measure(b, Group("maildir+hap", hap_md.port, [mdp, hap_md],
                         [mdp.sid(), hap_md.sid()]), data, a.quick)
        md.stop()
        mdp.stop()
        hap_md.stop()
        pg1.start()
        pg2.start()
        hap = HAProxy(tmp, a.server_cpu, [pg1.port, pg2.port]).start()
        started.append(hap)
        log("two pgsql instances through HAProxy")
        measure(b, Group("pgsql x2+hap", hap.port, [pg1, pg2, hap],
                         [pg1.sid(), pg2.sid(), hap.sid(), pg_sid]),
                data, a.quick)
    finally:
        failed = False
        for s in started:
            s.stop()
            marks = [m for m in run.SANITIZER_MARKS
                     if s.proc is not None and m in s.log()]
            if marks:
                log("%s log shows %s:\n%s" % (s.name, marks, s.log()))
                failed = True
        if pg is not None:
            pg.cleanup()
        shutil.rmtree(tmp, ignore_errors=True)
    failed = failed or any(r.get("errors") or r.get("rc")
                           for runs in b.rows.values() for r in runs)
    text = "%s, bench-pgsql, %s\n\n%s\n\nPlacement: postinod, HAProxy and " \
        "PostgreSQL on cpu%d, loadgen on cpu%d; server CPU = all of them.\n" \
        "%s\n" % (b.stamp, run.machine(), table(b), a.server_cpu, a.gen_cpu,
                  "\n".join(b.notes))
    print(text)
    with open(os.path.join(b.out, "table-pgsql.md"), "w") as f:
        f.write(text)
    log("done in %.0f s; runs in %s" % (time.monotonic() - t0, b.results))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
