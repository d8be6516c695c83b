#!/usr/bin/env python3
"""Postino benchmark: postinod against Dovecot on the same generated mail.

    bench/run.py [--quick | --smoke] [--build DIR] [--only S1,S3,...]

Generates (once, cached under build/bench/data) 1,200+ users with
SHA512-CRYPT hashes made by postino-passwd and Maildirs of realistic
messages with LF line ends, dot lines and ">From " lines, named as Postfix
names them (no ,S=). Each server gets its own tree of hard links to the same
files. Starts postinod and Debian's Dovecot (high-performance login mode, a
config in a temporary directory), each pinned to one core with taskset, the
load generator (bench/loadgen.c) on the other, and runs scenarios S1-S7;
then S1, S5 and S6's STLS S1 again with the password-verification cache on
in both servers (ids S1c, S5c, S6c; rows "... with auth cache (both)").

Per run it records the server's CPU (utime+stime of its whole process tree,
from /proc), its memory as PSS (smaps_rollup) and how much of each core
other processes used meanwhile (/proc/stat). A run where other work took
more than --max-foreign of a core, or the host stole time, is repeated (up
to --retries times; the least disturbed attempt is kept and flagged). Each
metric is the median of --runs runs; when the runs spread more than 25 %
two more are taken. Every attempt is one JSON line in
build/bench/results.jsonl; the table goes to stdout and build/bench/table.md.

Standard library only; every wait is bounded; loopback only.
"""

import argparse
import datetime
import json
import os
import platform
import random
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# postinod's index settle time (src/store/store_maildir.c), with a margin.
MAILDIR_SETTLE_S = 2.5
DATA_VERSION = "1"
HZ = os.sysconf("SC_CLK_TCK")
IS_ROOT = os.geteuid() == 0
SANITIZER_MARKS = ("AddressSanitizer", "LeakSanitizer", "runtime error:")
DOVECOT = shutil.which("dovecot") or "/usr/sbin/dovecot"

# users for S1/S4/S5 (each with the S5 mailbox), plus the S2 and S3 owners
N_HASHES = 1200
LOGIN_USER = "postino"
BUSY_RUNS = 8        # disturbed attempts in a row that stop retries
SERVER_NOFILE = 65536  # as root; else the hard limit
SOURCE_NETS = 256    # clients come from 127.1.0.0/16, one /24 per client
LMTP_USERS = 100     # S7 delivers into lm000 and into lm000..lm099
TREE_VERSION = "2"


def server_limit_ms(name):
    """A limit from postinod's src/server/limits.h, so it is written once."""
    with open(os.path.join(REPO, "src", "server", "limits.h")) as f:
        for line in f:
            w = line.split()
            if len(w) == 3 and w[0] == "#define" and w[1] == name:
                return int(w[2])
    raise SystemExit("bench: %s not in src/server/limits.h" % name)


# S4 takes its memory baseline this long after the previous sessions ended:
# a mail worker gives its free heap back MAIL_TRIM_MS after its last session
# (the held measurement cannot trim: every worker has sessions), so a
# baseline taken at once held the previous scenario's heap, which the held
# sessions then reused or the trim returned mid-run (1,000 idle sessions
# came out at -0.02 KB each after S3).
S4_SETTLE_S = server_limit_ms("MAIL_TRIM_MS") / 1000.0 + 1.0


T0 = time.monotonic()


def log(msg):
    print("bench [%4.0fs]: %s" % (time.monotonic() - T0, msg),
          file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------
# Generated mail
# ---------------------------------------------------------------------------

WORDS = ("the of and to in is that for it as was with be by on not he this "
         "are or his from at which but have an they you were her she there "
         "been one all we their has would when if so no will can more out "
         "mailbox server delivery message queue spool retrieve header body "
         "invoice meeting report tomorrow attached please thanks regards "
         "project budget review draft schedule update status").split()


def message(rng, size, seq):
    """One message of about size octets, LF line ends, as an MTA stores it."""
    user = rng.choice(("alice", "bob", "carol", "dave", "erin"))
    day = 1 + seq % 28
    hdr = [
        "Return-Path: <%s@example.org>" % user,
        "Delivered-To: bench@example.net",
        "Received: from mx.example.org (mx.example.org [192.0.2.%d])"
        % (1 + seq % 250),
        "\tby mail.example.net (Postfix) with ESMTPS id 4Q%08X"
        % (seq * 2654435761 % 2**32),
        "\tfor <bench@example.net>; Mon, %d Nov 2026 10:%02d:%02d +0000"
        % (day, seq % 60, seq * 7 % 60),
        "Received: by mx.example.org (Postfix, from userid 1000)",
        "\tid 8F2A%06X; Mon, %d Nov 2026 10:%02d:00 +0000"
        % (seq % 2**24, day, seq % 60),
        "Date: Mon, %d Nov 2026 10:%02d:00 +0000" % (day, seq % 60),
        "From: %s <%s@example.org>" % (user.capitalize(), user),
        "To: Bench <bench@example.net>",
        "Subject: %s %d" % (" ".join(rng.choice(WORDS) for _ in range(5)),
                            seq),
        "Message-ID: <%d.%d@example.org>" % (seq, rng.randrange(10**9)),
        "MIME-Version: 1.0",
        "Content-Type: text/plain; charset=utf-8",
        "Content-Transfer-Encoding: 8bit",
        "",
    ]
    out = "\n".join(hdr) + "\n"
    body = []
    n = len(out)
    special = [".", ".hidden dot line", "..double dot", ">From the archive",
               "From here on, a line an mbox would quote"]
    i = 0
    while n < size:
        if i % 23 == 5 and special:
            line = special.pop(0)
        else:
            line = " ".join(rng.choice(WORDS)
                            for _ in range(rng.randrange(6, 13)))
        body.append(line)
        n += len(line) + 1
        i += 1
    return (out + "\n".join(body) + "\n").encode()


def crlf_size(data):
    return len(data) + data.count(b"\n")


def postfix_name(rng, seq):
    return "%d.V%xI%xM%d.bench.example.net" % (
        1764000000 + seq, 0x803, rng.randrange(1, 2**32), rng.randrange(10**6))


class Data:
    """The generated users, messages and per-server mail trees."""

    def __init__(self, root, build, quick, smoke, n_held):
        self.root = root
        self.n_held = n_held         # S4's largest count of distinct users
        self.build = build
        self.smoke = smoke
        self.n_users = 4 if smoke else N_HASHES
        self.big_n = 50 if smoke else 10000
        self.mb_n = 3 if smoke else 100
        self.mb_size = 200000 if smoke else 1000000
        self.mb_users = 2 if smoke else 8
        self.s5_n = 5 if smoke else 20
        self.pool = os.path.join(root, "pool")

    # -- the pool: every message once, and the hashes ---------------------
    def ensure(self):
        stamp = os.path.join(self.root, "pool.done")
        want = "%s %d %d %d %d %d" % (DATA_VERSION, self.n_users, self.big_n,
                                      self.mb_n, self.mb_size, self.s5_n)
        if os.path.exists(stamp) and open(stamp).read() == want:
            self._load()
            return
        log("generating mail and %d password hashes under %s (cached)"
            % (self.n_users, self.root))
        shutil.rmtree(self.root, ignore_errors=True)
        os.makedirs(self.pool)
        rng = random.Random(11)
        self.sets = {}
        seq = 0
        for name, n, size in (("s5", self.s5_n, 50000),
                              ("big", self.big_n, 4000),
                              ("mb", self.mb_n, self.mb_size)):
            d = os.path.join(self.pool, name)
            os.makedirs(d)
            files = []
            for _ in range(n):
                data = message(rng, size, seq)
                fn = postfix_name(rng, seq)
                seq += 1
                with open(os.path.join(d, fn), "wb") as f:
                    f.write(data)
                files.append((fn, crlf_size(data)))
            self.sets[name] = files
        self._hashes()
        for dirpath, _, files in os.walk(self.pool):
            give(dirpath)
            for fn in files:
                os.chmod(os.path.join(dirpath, fn), 0o600)
                give(os.path.join(dirpath, fn))
        with open(os.path.join(self.root, "sets.json"), "w") as f:
            json.dump({"sets": self.sets, "users": self.users}, f)
        with open(stamp, "w") as f:
            f.write(want)

    def _hashes(self):
        passwd = os.path.join(self.build, "postino-passwd")
        self.users = []
        procs = []
        for i in range(self.n_users):
            pw = "pw%05d-%x" % (i, random.Random(i).randrange(2**32))
            self.users.append(["u%05d" % i, pw, None])
        # Two at a time: the machine is shared.
        for i in range(0, self.n_users, 2):
            procs = []
            for u in self.users[i:i + 2]:
                p = subprocess.Popen([passwd, "-s", "SHA512-CRYPT"],
                                     stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE)
                procs.append((u, p))
            for u, p in procs:
                out, _ = p.communicate((u[1] + "\n").encode(), timeout=30)
                h = out.decode().strip()
                if p.returncode != 0 or not h.startswith("{SHA512-CRYPT}"):
                    raise SystemExit("postino-passwd failed: %r" % h)
                u[2] = h

    def _load(self):
        with open(os.path.join(self.root, "sets.json")) as f:
            j = json.load(f)
        self.sets = j["sets"]
        self.users = j["users"]

    # -- the accounts ------------------------------------------------------
    def accounts(self, n_held=None):
        """[(user, password, hash, set)]: S1/S4/S5 users, big, mb1..mbN."""
        acc = [(u, p, h, "s5") for u, p, h in self.users]
        for i in range(len(self.users), n_held or self.n_held):
            # more S4 users: the same hashes again (each still costs one)
            _, p, h = self.users[i % len(self.users)]
            acc.append(("u%05d" % i, p, h, "s5"))
        acc.append(("big", self.users[0][1], self.users[0][2], "big"))
        for i in range(self.mb_users):
            u = self.users[1 + i]
            acc.append(("mb%d" % (i + 1), u[1], u[2], "mb"))
        for i in range(LMTP_USERS):         # S7: empty Maildirs
            u = self.users[i % len(self.users)]
            acc.append(("lm%03d" % i, u[1], u[2], None))
        return acc

    def octets(self, name):
        return len(self.sets[name]), sum(s for _, s in self.sets[name])

    def userfile(self, path, names):
        acc = {a[0]: a for a in self.accounts()}
        with open(path, "w") as f:
            for n in names:
                f.write("%s %s\n" % (n, acc[n][1]))
        return path

    def tree(self, server, n_held):
        """A mail root of hard links for one server (made once, reused)."""
        root = os.path.join(self.root, "mail-" + server)
        stamp = os.path.join(root, "done")
        want = "%s %d" % (TREE_VERSION, n_held)
        if os.path.exists(stamp):
            # a tree with more S4 users serves a smaller run as well
            have = open(stamp).read().split()
            if len(have) == 2 and have[0] == TREE_VERSION and \
                    int(have[1]) >= n_held:
                return root
        log("linking the mailboxes for %s" % server)
        shutil.rmtree(root, ignore_errors=True)
        os.makedirs(os.path.join(root, "home"))
        os.makedirs(os.path.join(root, "empty"))
        with open(os.path.join(root, "passwd"), "w") as f:
            for u, _, h, _ in self.accounts(n_held):
                f.write("%s:%s::::%s::\n" % (u, h, self.home(root, u)))
        for u, _, _, s in self.accounts(n_held):
            self.fill(root, u, s)
        for p in (root, os.path.join(root, "home"),
                  os.path.join(root, "empty")):
            os.chmod(p, 0o755)
        os.chmod(os.path.join(root, "passwd"), 0o644)
        with open(stamp, "w") as f:
            f.write(want)
        return root

    @staticmethod
    def home(root, user):
        return os.path.join(root, "home", user)

    def fill(self, root, user, setname):
        """(Re)creates the user's Maildir with the set's messages in new/."""
        home = self.home(root, user)
        shutil.rmtree(home, ignore_errors=True)
        md = os.path.join(home, "Maildir")
        for sub in ("new", "cur", "tmp"):
            os.makedirs(os.path.join(md, sub))
        new = os.path.join(md, "new")
        if setname is not None:
            src = os.path.join(self.pool, setname)
            for fn, _ in self.sets[setname]:
                os.link(os.path.join(src, fn), os.path.join(new, fn))
        for p in (home, md, new, os.path.join(md, "cur"),
                  os.path.join(md, "tmp")):
            os.chmod(p, 0o700)
            give(p)


def give(path):
    if IS_ROOT:
        os.chown(path, 65534, 65534)


def make_cert(d):
    cert, key = os.path.join(d, "cert.pem"), os.path.join(d, "key.pem")
    if not os.path.exists(cert):
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048",
                        "-nodes", "-days", "3650", "-subj", "/CN=localhost",
                        "-keyout", key, "-out", cert],
                       check=True, capture_output=True, timeout=60)
        os.chmod(key, 0o600)
    return cert, key


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---------------------------------------------------------------------------
# /proc accounting
# ---------------------------------------------------------------------------

def proc_stat(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            s = f.read()
    except OSError:
        return None
    rest = s[s.rindex(")") + 2:].split()
    # rest[0] = state (field 3); session is field 6, utime 14 .. cstime 17
    cpu = sum(int(x) for x in rest[11:13]) / HZ
    # The process's own time in ns: /proc/stat's ticks (1/HZ, 10 ms) made
    # S3's CPU per MB move in steps of ~5 %, more than a change to measure.
    # Single-threaded processes: the main thread's schedstat is all of it.
    try:
        with open("/proc/%d/schedstat" % pid) as f:
            cpu = int(f.read().split()[0]) / 1e9
    except (OSError, ValueError, IndexError):
        pass
    return {"ppid": int(rest[1]), "sid": int(rest[3]),
            "cpu": cpu + sum(int(x) for x in rest[13:15]) / HZ}


def tree_pids(sid):
    """The processes of one session id, or of each of a list of them."""
    sids = set(sid) if isinstance(sid, (list, tuple)) else {sid}
    out = []
    for n in os.listdir("/proc"):
        if n.isdigit():
            st = proc_stat(int(n))
            if st is not None and st["sid"] in sids:
                out.append(int(n))
    return out


def tree_cpu(sid):
    """CPU seconds of every process in the session, reaped children too."""
    total = 0.0
    for pid in tree_pids(sid):
        st = proc_stat(pid)
        if st is not None:
            total += st["cpu"]
    return total


def tree_pss_kb(sid):
    total = 0
    for pid in tree_pids(sid):
        try:
            with open("/proc/%d/smaps_rollup" % pid) as f:
                for line in f:
                    if line.startswith("Pss:"):
                        total += int(line.split()[1])
                        break
        except OSError:
            pass
    return total


def children_cpu():
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def cpu_times():
    """{cpuN: (busy user+nice+system, steal)} in seconds."""
    out = {}
    with open("/proc/stat") as f:
        for line in f:
            if line.startswith("cpu") and line[3].isdigit():
                v = [int(x) for x in line.split()[1:]]
                out[line.split()[0]] = ((v[0] + v[1] + v[2]) / HZ, v[7] / HZ)
    return out


# ---------------------------------------------------------------------------
# Servers
# ---------------------------------------------------------------------------

def raise_nofile():
    """Both servers get what a systemd unit would give them (LimitNOFILE):
    10,000 held sessions take two descriptors each in a mail process."""
    want = SERVER_NOFILE
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, want))
    except (ValueError, OSError):
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


class Server:
    proc = None
    name = "?"

    def sid(self):
        return self.proc.pid

    def stop(self):
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def alive(self):
        return self.proc is not None and self.proc.poll() is None


class Postinod(Server):
    name = "postinod"

    def __init__(self, build, root, cert, key, tmp, cpu, lmtp, over=None):
        """over: {setting: value} replacing or adding configuration lines
        (bench/pgsql.py: a pgsql mailbox, a PROXY listener)."""
        self.dir = tempfile.mkdtemp(prefix="postinod-", dir=tmp)
        os.chmod(self.dir, 0o755)
        self.ready = os.path.join(self.dir, "ready")
        self.logpath = os.path.join(self.dir, "log")
        conf = os.path.join(self.dir, "postinod.conf")
        lines = ["listen = 127.0.0.1:0", "listen_tls = 127.0.0.1:0",
                 "tls_cert = " + cert, "tls_key = " + key,
                 "passwd_file = " + os.path.join(root, "passwd"),
                 "mailbox = maildir:~/Maildir",
                 "ready_file = " + self.ready,
                 "max_sessions = 20000",
                 # one address stands for many clients here
                 "max_connections_per_ip = 0",
                 "max_connections_per_net = 0"]
        if lmtp:
            lines += ["lmtp_listen = 127.0.0.1:0",
                      "lmtp_local_domains = example.net"]
        if IS_ROOT:
            lines += ["mail_user = nobody",
                      "login_user = " + ensure_login_user(),
                      "login_chroot = " + os.path.join(root, "empty")]
        for k, v in (over or {}).items():
            lines = [l for l in lines if not l.startswith(k + " = ")]
            lines += [k + " = " + x for x in (v if isinstance(v, list)
                                              else [v])]
        self.conf = conf
        with open(conf, "w") as f:
            f.write("# written by bench/run.py\n" + "\n".join(lines) + "\n")
        self.cmd = ["taskset", "-c", str(cpu),
                    os.path.join(build, "postinod"), "-f", "-c", conf]

    def start(self):
        self._log = open(self.logpath, "ab")
        self.proc = subprocess.Popen(self.cmd, stdin=subprocess.DEVNULL,
                                     stdout=self._log, stderr=self._log,
                                     start_new_session=True,
                                     preexec_fn=raise_nofile)
        deadline = time.monotonic() + 30
        while not os.path.exists(self.ready):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("postinod did not start:\n" + self.log())
            time.sleep(0.05)
        time.sleep(0.1)
        with open(self.ready) as f:
            addrs = [l.strip() for l in f if l.strip()]
        self.port_lmtp = None
        for a in addrs:
            kind, _, addr = a.rpartition(" ")
            if not addr.startswith("127.0.0.1:"):
                continue
            port = int(addr.rpartition(":")[2])
            if kind == "tls":
                self.port_tls = port
            elif kind == "lmtp":
                self.port_lmtp = port
            elif kind == "":
                self.port = port
        return self

    def log(self):
        with open(self.logpath, "rb") as f:
            return f.read().decode("utf-8", "replace")[-20000:]


class Dovecot(Server):
    name = "dovecot"

    def __init__(self, root, cert, key, tmp, cpu, clients, cache=False):
        """cache: auth_cache_size = 10M, auth_cache_ttl = 1 hour, over the
        same users in a dict passdb: Dovecot 2.3's passwd-file passdb has
        no cache key (passdb-passwd-file.c sets no default_cache_key), so
        with it the settings change nothing. Even so a hit still costs
        the hash: a passdb that returns the stored hash (dict, SQL, LDAP)
        has that hash cached and checked again (auth-request.c, the
        {SHA1} of the plaintext is kept only for passdbs that return no
        password: PAM, bsdauth). Measured here: Dovecot's auth process
        spends 2.0 ms per S1 login with and without it."""
        self.dir = tempfile.mkdtemp(prefix="dovecot-", dir=tmp)
        os.chmod(self.dir, 0o755)
        self.port, self.port_tls = free_port(), free_port()
        self.port_lmtp = free_port()
        self.logpath = os.path.join(self.dir, "log")
        conf = os.path.join(self.dir, "dovecot.conf")
        lim = clients + 500
        login = "dovenull" if user_exists("dovenull") else "nobody"
        internal = "dovecot" if user_exists("dovecot") else "nobody"
        passdb = "driver = passwd-file\n  args = scheme=SHA512-CRYPT " + \
            os.path.join(root, "passwd")
        cache_conf = "auth_cache_size = 0"
        if cache:
            passdb = "driver = dict\n  args = " + self.dict_passdb(root)
            cache_conf = "auth_cache_size = 10M\nauth_cache_ttl = 1 hour"
        with open(conf, "w") as f:
            f.write("""# written by bench/run.py: high-performance login mode
protocols = pop3 lmtp
listen = 127.0.0.1
auth_username_format = %Ln
base_dir = {d}/run
state_dir = {d}/state
log_path = {d}/log
ssl = yes
ssl_cert = <{cert}
ssl_key = <{key}
disable_plaintext_auth = no
auth_mechanisms = plain
{cache_conf}
default_login_user = {login}
default_internal_user = {internal}
mail_location = maildir:~/Maildir
pop3_uidl_format = %08Xu%08Xv
default_process_limit = {lim}
default_client_limit = {lim2}
default_vsz_limit = 1G
passdb {{
  {passdb}
}}
userdb {{
  driver = static
  args = uid=nobody gid={gid} home={root}/home/%u
}}
service pop3-login {{
  inet_listener pop3 {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener pop3s {{
    address = 127.0.0.1
    port = {port_tls}
    ssl = yes
  }}
  service_count = 0
  process_min_avail = 1
  client_limit = {lim}
}}
service pop3 {{
  process_limit = {lim}
}}
service auth {{
  client_limit = {lim2}
}}
service anvil {{
  client_limit = {lim2}
}}
service lmtp {{
  inet_listener lmtp {{
    address = 127.0.0.1
    port = {port_lmtp}
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
protocol pop3 {{
  mail_max_userip_connections = 100
}}
""".format(d=self.dir, cert=cert, key=key, login=login, internal=internal,
           lim=lim, lim2=2 * lim + 100, passdb=passdb,
           cache_conf=cache_conf,
           gid=65534 if IS_ROOT else os.getgid(), root=root,
           port=self.port, port_tls=self.port_tls,
           port_lmtp=self.port_lmtp))
        self.cmd = ["taskset", "-c", str(cpu), DOVECOT, "-F", "-c", conf]

    def dict_passdb(self, root):
        """The passwd-file's users as a file dict; the dict passdb's
        configuration path."""
        users = os.path.join(self.dir, "users.dict")
        with open(os.path.join(root, "passwd")) as f, open(users, "w") as o:
            for line in f:
                name, secret = line.split(":")[:2]
                o.write("shared/passdb/%s\n%s\n" % (
                    name, json.dumps({"password": secret})))
        path = os.path.join(self.dir, "dict-auth.conf.ext")
        with open(path, "w") as f:
            f.write("uri = file:%s\ndefault_pass_scheme = SHA512-CRYPT\n"
                    "key passdb {\n  key = passdb/%%u\n  format = json\n}\n"
                    "passdb_objects = passdb\n" % users)
        return path

    def start(self):
        self._out = open(os.path.join(self.dir, "stdout"), "ab")
        self.proc = subprocess.Popen(self.cmd, stdin=subprocess.DEVNULL,
                                     stdout=self._out, stderr=self._out,
                                     start_new_session=True,
                                     preexec_fn=raise_nofile)
        deadline = time.monotonic() + 30
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port),
                                              timeout=2) as s:
                    if s.recv(100).startswith(b"+OK"):
                        break
            except OSError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("dovecot did not start:\n" + self.log())
            time.sleep(0.1)
        time.sleep(0.5)
        return self

    def log(self):
        out = ""
        for n in ("stdout", "log"):
            try:
                with open(os.path.join(self.dir, n), "rb") as f:
                    out += f.read().decode("utf-8", "replace")[-3000:]
            except OSError:
                pass
        return out


def log_excerpt(text):
    """The first lines that are not routine, else the last ones."""
    lines = text.splitlines()
    odd = [l for l in lines if "result=ok" not in l and "result=gone" not in l
           and "event=disconnect" not in l and "event=connect" not in l
           and "event=logout" not in l]
    return odd[:15] if odd else lines[-15:]


def ensure_login_user():
    """postinod's login role needs a user of its own (as the tests make)."""
    if not user_exists(LOGIN_USER):
        subprocess.run(["useradd", "--system", "--no-create-home",
                        "--home-dir", "/nonexistent", "--shell",
                        "/usr/sbin/nologin", LOGIN_USER],
                       capture_output=True, timeout=60)
    return LOGIN_USER if user_exists(LOGIN_USER) else "nobody"


def user_exists(name):
    import pwd
    try:
        pwd.getpwnam(name)
        return True
    except KeyError:
        return False


# ---------------------------------------------------------------------------
# One measured run
# ---------------------------------------------------------------------------

class Bench:
    def __init__(self, args):
        self.args = args
        self.build = os.path.abspath(args.build)
        self.out = os.path.join(REPO, "build", "bench")
        os.makedirs(self.out, exist_ok=True)
        self.results = os.path.join(self.out, "results.jsonl")
        self.loadgen = os.path.join(self.build, "loadgen")
        self.stamp = datetime.datetime.now(datetime.timezone.utc).strftime(
            "%Y-%m-%dT%H:%M:%SZ")
        self.rows = {}       # (key, server) -> [run dicts]
        self.notes = []
        self.t0 = time.monotonic()
        self.attempts = 0
        self.repeated = 0
        self.recent = []     # was each of the last attempts disturbed?
        self.busy_noted = False
        self.short = False   # the time budget is running out

    def busy(self):
        """The last BUSY_RUNS attempts were all disturbed: retrying while
        the machine stays this busy only costs time. The first quiet run
        lets retries resume."""
        b = len(self.recent) == BUSY_RUNS and all(self.recent)
        if b and not self.busy_noted:
            self.busy_noted = True
            self.notes.append("the machine was busy throughout: after %d "
                              "disturbed runs in a row, disturbed runs were "
                              "kept (flagged) rather than repeated until a "
                              "quiet one" % BUSY_RUNS)
        return b

    def late(self):
        """Past 60 % of --budget: no more retries or extra runs."""
        if not self.short and \
                time.monotonic() - self.t0 > 0.6 * self.args.budget:
            self.short = True
            self.notes.append("time budget: later scenarios got no retries "
                              "or extra runs")
        return self.short

    def loadgen_cmd(self, srv, mode, scen, users, extra):
        port = srv.port_tls if mode == "tls" else srv.port
        return ["taskset", "-c", str(self.args.gen_cpu), self.loadgen,
                "-p", str(port), "-m", mode, "-s", scen, "-u", users,
                "-S", str(SOURCE_NETS)] + extra

    def attempt(self, srv, key, cmd, hold=None):
        """Runs loadgen once; returns the run dict (loadgen's JSON + ours)."""
        sid = srv.sid()
        pss = base = None
        if hold:
            time.sleep(S4_SETTLE_S)
            base = tree_pss_kb(sid)
        g0 = children_cpu()
        c0, t0 = tree_cpu(sid), cpu_times()
        w0 = time.monotonic()
        p = subprocess.Popen(cmd, stdout=subprocess.PIPE,
                             stdin=subprocess.PIPE if hold else None,
                             stderr=subprocess.PIPE, text=True)
        if hold:
            line = p.stdout.readline()   # "HELD n" or the JSON line on failure
            if line.startswith("HELD"):
                time.sleep(1.0)
                pss = tree_pss_kb(sid)
                p.stdin.write("\n")
                p.stdin.flush()
            else:
                rest = line
        try:
            out, err = p.communicate(timeout=self.args.timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            out, err = p.communicate(timeout=10)
        wall = time.monotonic() - w0
        c1, t1 = tree_cpu(sid), cpu_times()
        if hold and pss is None:
            out = rest + out
        lines = [l for l in out.splitlines() if l.startswith("{")]
        r = json.loads(lines[-1]) if lines else {
            "errors": 1, "error": "loadgen: " + err.strip()[-300:]}
        r["rc"] = p.returncode
        srv_cpu = c1 - c0
        gen_cpu = children_cpu() - g0
        r.update(key=key, server=srv.name, when=self.stamp,
                 server_cpu_s=round(srv_cpu, 3), gen_cpu_s=round(gen_cpu, 3),
                 wall_s=round(wall, 3))
        # Other work on the two cores while this ran (our own excluded).
        sc, gc = "cpu%d" % self.args.server_cpu, "cpu%d" % self.args.gen_cpu
        fs = max(0.0, (t1[sc][0] - t0[sc][0]) - srv_cpu)
        fg = max(0.0, (t1[gc][0] - t0[gc][0]) - gen_cpu)
        steal = sum(t1[c][1] - t0[c][1] for c in t1)
        r["foreign_server_core"] = round(fs / wall, 3)
        r["foreign_gen_core"] = round(fg / wall, 3)
        r["steal"] = round(steal / wall, 3)
        r["disturbance"] = round(max(fs / wall, fg / wall, steal / wall), 3)
        if pss is not None:
            r["pss_held_kb"], r["pss_base_kb"] = pss, base
            r["pss_per_conn_kb"] = round((pss - base) / hold, 2)
        if not srv.alive():
            r["errors"] = r.get("errors", 0) + 1
            r["error"] = "%s died: %s" % (srv.name, srv.log()[-500:])
        return r

    def run(self, srv, key, cmd, hold=None, prepare=None):
        """The best of up to 1+retries attempts: an undisturbed run."""
        best = None
        for i in range(1 + self.args.retries):
            if prepare:
                prepare()
            r = self.attempt(srv, key, cmd, hold)
            r["attempt"] = i + 1
            self.attempts += 1
            self.repeated += 1 if i > 0 else 0
            with open(self.results, "a") as f:
                f.write(json.dumps(r, sort_keys=True) + "\n")
            if r.get("errors") or r.get("rc"):
                log("%s %s FAILED: %s\n%s log, last lines:\n%s" % (
                    srv.name, key, r.get("error"), srv.name,
                    "\n".join(log_excerpt(srv.log()))))
                return r
            if best is None or r["disturbance"] < best["disturbance"]:
                best = r
            self.recent = (self.recent + [
                r["disturbance"] > self.args.max_foreign])[-BUSY_RUNS:]
            if r["disturbance"] <= self.args.max_foreign or \
                    i == self.args.retries or self.late() or self.busy():
                break
            log("%s %s: disturbed run (other work %.0f%% / %.0f%% of the "
                "cores, steal %.0f%%), again" % (
                    srv.name, key, 100 * r["foreign_server_core"],
                    100 * r["foreign_gen_core"], 100 * r["steal"]))
            time.sleep(1)
        best["disturbed"] = best["disturbance"] > self.args.max_foreign
        return best

    def runs(self, srv, key, cmd, metric, hold=None, prepare=None, n=None):
        n = n or self.args.runs
        if time.monotonic() - self.t0 > 0.85 * self.args.budget and n > 1:
            n = 1
            if "one run" not in "".join(self.notes):
                self.notes.append("time budget: from %s (%s) on, one run "
                                  "per scenario" % (key, srv.name))
        out = []
        for _ in range(n):
            r = self.run(srv, key, cmd, hold, prepare)
            out.append(r)
            if r.get("errors") or r.get("rc"):
                break
        vals = [metric(r) for r in out if not r.get("errors")]
        if len(vals) >= 3 and len(out) == n and not self.late() and \
                statistics.median(vals) > 0 \
                and (max(vals) - min(vals)) / statistics.median(vals) > 0.25:
            log("%s %s: runs spread %.0f%%, two more" % (
                srv.name, key, 100 * (max(vals) - min(vals))
                / statistics.median(vals)))
            for _ in range(2):
                r = self.run(srv, key, cmd, hold, prepare)
                out.append(r)
                if r.get("errors"):
                    break
        self.rows[(key, srv.name)] = out
        ok = [r for r in out if not r.get("errors") and not r.get("rc")]
        if ok:
            log("%s %s: %s" % (srv.name, key, ", ".join(
                "%.4g" % metric(r) for r in ok)))
        return out


# ---------------------------------------------------------------------------
# Scenarios
# ---------------------------------------------------------------------------

def scenarios(b, srv, data, root, only, quick, smoke):
    a = b.args
    users_s5 = [u[0] for u in data.users]
    uf = os.path.join(b.out, "users-s5.txt")
    data.userfile(uf, users_s5)
    dur = "1" if smoke else ("2" if quick else "6")
    modes = ["plain"] if smoke else ["plain", "stls", "tls"]
    s5n, s5o = data.octets("s5")

    def want(s):
        return only is None or s in only

    def rate(r):
        return r.get("sessions_per_s", 0)

    def mbps(r):
        return r.get("mb_per_s", 0)

    # S1: connect + USER/PASS + QUIT, 50 clients, distinct users
    for mode in modes:
        key = "S1" if mode == "plain" else "S6-S1-" + mode
        if not (want("S1") if mode == "plain" else want("S6")):
            continue
        if quick and mode == "tls":
            continue
        b.runs(srv, key, b.loadgen_cmd(
            srv, mode, "login", uf,
            ["-c", "4" if smoke else "50", "-d", dur, "-l", key]), rate,
            n=1 if smoke else None)

    if smoke:
        mf = data.userfile(os.path.join(b.out, "users-mb.txt"),
                           ["mb%d" % (i + 1) for i in range(data.mb_users)])
        n, o = data.octets("mb")
        for mode in ("plain", "stls", "tls"):
            b.runs(srv, "smoke-retr-" + mode, b.loadgen_cmd(
                srv, mode, "retr", mf, ["-c", "2", "-n", "4", "-E", str(n),
                                        "-B", str(o)]), mbps, n=1)
        return

    # S2: login+STAT+LIST+UIDL on 10,000 x 4 KB; cold = fresh delivery
    if want("S2"):
        bf = data.userfile(os.path.join(b.out, "users-big.txt"), ["big"])
        n, o = data.octets("big")
        cmd = b.loadgen_cmd(srv, "plain", "list", bf,
                            ["-n", "1", "-E", str(n), "-B", str(o)])
        sess = lambda r: r["steps"]["session"]["p50_ms"]  # noqa: E731
        b.runs(srv, "S2-cold", cmd, sess,
               prepare=lambda: data.fill(root, "big", "big"))
        # Warm is a mailbox checked again later, not within the same
        # second it was filled: postinod writes its index only for
        # directories older than MD_INDEX_SETTLE_NS (2 s; a change in the
        # same timestamp tick could otherwise go unseen). So wait that out
        # and open the mailbox once, unmeasured, for both servers alike:
        # the warm rows no longer depend on how fast the cold runs ended.
        time.sleep(MAILDIR_SETTLE_S)
        w = subprocess.run(cmd, capture_output=True, text=True,
                           timeout=b.args.timeout)
        log("%s S2 warm-up session: rc %d" % (srv.name, w.returncode))
        b.runs(srv, "S2-warm", cmd, sess)

    # S3: RETR 100 x 1 MB, 1 client and 8 clients
    for mode in modes:
        key = "S3" if mode == "plain" else "S6-S3-" + mode
        if not (want("S3") if mode == "plain" else want("S6")):
            continue
        if quick and mode == "tls":
            continue
        n, o = data.octets("mb")
        for c in (1, 8):
            mf = data.userfile(os.path.join(b.out, "users-mb%d.txt" % c),
                               ["mb%d" % (i + 1) for i in range(c)])
            b.runs(srv, "%s-%dc" % (key, c), b.loadgen_cmd(
                srv, mode, "retr", mf,
                ["-c", str(c), "-n", str(c if quick or c > 1 else 2),
                 "-E", str(n), "-B", str(o)]), mbps)

    # S4: idle logged-in clients; PSS per connection
    if want("S4"):
        held = [1000]
        if data.n_held >= 10000 and (srv.name == "postinod" or
                                     a.s4_10k_dovecot):
            held.append(10000)
        for h in held:
            hf = data.userfile(os.path.join(b.out, "users-s4-%d.txt" % h),
                               ["u%05d" % i for i in range(h)])
            out = b.runs(srv, "S4-%d" % h, b.loadgen_cmd(
                srv, "plain", "hold", hf,
                ["-c", str(h), "-R", "100", "-w", "120", "-T", "120"]),
                lambda r: r.get("pss_per_conn_kb", 0), hold=h,
                n=1 if quick or h > 1000 else None)
            time.sleep(2)

    # S5: 200 clients LIST+UIDL+RETR 20 x 50 KB
    if want("S5"):
        b.runs(srv, "S5", b.loadgen_cmd(
            srv, "plain", "full", uf,
            ["-c", "200", "-d", dur, "-r", "20", "-E", str(s5n),
             "-B", str(s5o), "-R", "200"]), rate)


# The same logins with the password-verification cache on in both servers
# (postinod auth_cache_size, Dovecot auth_cache_size = 10M; see Dovecot for
# why Dovecot's still hashes): ids S1c, S5c and S6c (S6's STLS S1), rows
# "... with auth cache (both)".
CACHED = ("S1c", "S5c", "S6c")
# Every bench user fits, in each auth worker.
POSTINOD_CACHE = {"auth_cache_size": "20000", "auth_cache_ttl": "3600"}


def wants_cached(only, quick, smoke):
    return not quick and not smoke and (
        only is None or any(c in only for c in CACHED))


def scenarios_cached(b, srv, data, only):
    """S1, S6 STLS S1 and S5 against a server with its cache on, after
    one unmeasured pass that logs every user in once (each user always
    comes from the same client, so from the same network and auth
    worker): what a server sees once its users have logged in within
    the TTL."""
    uf = os.path.join(b.out, "users-s5.txt")
    data.userfile(uf, [u[0] for u in data.users])
    s5n, s5o = data.octets("s5")

    def want(s):
        return only is None or s in only

    def rate(r):
        return r.get("sessions_per_s", 0)

    warm = b.loadgen_cmd(srv, "plain", "login", uf,
                         ["-c", "50", "-n", str(len(data.users)),
                          "-l", "warm-up"])
    w = subprocess.run(warm, capture_output=True, text=True,
                       timeout=b.args.timeout)
    log("%s auth cache warm-up: rc %d, %s" % (
        srv.name, w.returncode, (w.stdout.strip().splitlines() or [""])[-1]
        [:160]))
    for mode, key, sid in (("plain", "S1c", "S1c"),
                           ("stls", "S6-S1-stls-c", "S6c")):
        if want(sid):
            b.runs(srv, key, b.loadgen_cmd(
                srv, mode, "login", uf, ["-c", "50", "-d", "6", "-l", key]),
                rate)
    if want("S5c"):
        b.runs(srv, "S5c", b.loadgen_cmd(
            srv, "plain", "full", uf,
            ["-c", "200", "-d", "6", "-r", "20", "-E", str(s5n),
             "-B", str(s5o), "-R", "200"]), rate)


def scenario_s7(b, srv, data, root, quick):
    """S7: LMTP deliveries of 4 KB messages into one Maildir and into 100."""
    msg = message(random.Random(7), 4000, 7)
    mf = os.path.join(b.out, "lmtp-msg.eml")
    with open(mf, "wb") as f:
        f.write(msg)
    n = 300 if quick else 1000
    for nrcpt in (1, LMTP_USERS):
        users = ["lm%03d" % i for i in range(nrcpt)]

        def reset(users=users):
            for u in users:
                data.fill(root, u, None)
        cmd = ["taskset", "-c", str(b.args.gen_cpu), sys.executable,
               os.path.abspath(__file__), "--lmtp-gen",
               "%d:%s:%d:%s" % (srv.port_lmtp, mf, n, ",".join(users))]
        out = b.runs(srv, "S7-%d" % nrcpt, cmd,
                     lambda r: r.get("sessions_per_s", 0), prepare=reset,
                     n=1 if quick else None)
        for r in out:        # every delivery must be in the Maildirs
            got = sum(len(os.listdir(os.path.join(
                data.home(root, u), "Maildir", d)))
                for u in users for d in ("new", "cur"))
            if not r.get("errors") and got != n:
                r["errors"] = 1
                r["error"] = "%d messages in the Maildirs, %d delivered" % (
                    got, n)
                log("%s S7: %s" % (srv.name, r["error"]))


def lmtp_gen(spec):
    """The S7 load: 4 connections, n deliveries round-robin over users."""
    import smtplib
    import threading
    port, mf, n, users = spec.split(":")
    port, n, users = int(port), int(n), users.split(",")
    with open(mf, "rb") as f:
        msg = f.read()
    lat, errs, lock = [], [], threading.Lock()
    nxt = iter(range(n))

    def worker():
        try:
            c = smtplib.LMTP("127.0.0.1", port, timeout=60)
            c.ehlo("bench.example.org")
            while True:
                with lock:
                    i = next(nxt, None)
                if i is None or errs:
                    break
                t = time.monotonic()
                r = c.sendmail("sender@example.org",
                               ["%s@example.net" % users[i % len(users)]],
                               msg)
                if r:
                    raise RuntimeError("refused: %r" % r)
                with lock:
                    lat.append(time.monotonic() - t)
            c.quit()
        except Exception as e:  # noqa: BLE001 -- reported, fails the run
            with lock:
                errs.append(repr(e)[:200])
    t0 = time.monotonic()
    ths = [threading.Thread(target=worker) for _ in range(4)]
    for t in ths:
        t.start()
    for t in ths:
        t.join(600)
    el = time.monotonic() - t0
    lat.sort()

    def pct(p):
        return 1000 * lat[int(p * (len(lat) - 1) + 0.5)] if lat else 0
    r = {"tool": "lmtp-gen", "scenario": "lmtp", "mode": "plain",
         "clients": 4, "sessions": len(lat), "errors": len(errs),
         "elapsed_s": round(el, 4),
         "sessions_per_s": round(len(lat) / el, 3) if el > 0 else 0,
         "retr_bytes": 0, "steps": {"deliver": {
             "n": len(lat), "p50_ms": round(pct(0.5), 3),
             "p99_ms": round(pct(0.99), 3)}}}
    if errs:
        r["error"] = errs[0]
    print(json.dumps(r), flush=True)
    return 1 if errs else 0


def lmtp_supported(build, tmp):
    d = tempfile.mkdtemp(prefix="lmtp-probe-", dir=tmp)
    os.chmod(d, 0o755)       # the auth role's user checks the passwd-file
    conf = os.path.join(d, "c.conf")
    with open(conf, "w") as f:
        f.write("listen = 127.0.0.1:0\nlmtp_listen = 127.0.0.1:0\n"
                "passwd_file = %s/passwd\n" % d)
    open(os.path.join(d, "passwd"), "w").close()
    r = subprocess.run([os.path.join(build, "postinod"), "-t", "-c", conf],
                       capture_output=True, text=True, timeout=20)
    shutil.rmtree(d, ignore_errors=True)
    out = (r.stderr or r.stdout).strip()
    # Only an unknown key means no LMTP; any other complaint is the probe's.
    return "unknown key 'lmtp_listen'" not in out, out


# ---------------------------------------------------------------------------
# The table
# ---------------------------------------------------------------------------

def med(runs, f):
    vals = []
    for r in runs or []:
        if r.get("errors") or r.get("rc"):
            continue
        try:
            v = f(r)
        except (KeyError, ZeroDivisionError, TypeError):
            continue
        if v is not None:
            vals.append(v)
    return statistics.median(vals) if vals else None


def step(name, p="p50_ms"):
    return lambda r: r["steps"][name][p]


def cpu_per(unit):
    if unit == "session":
        return lambda r: 1000 * r["server_cpu_s"] / r["sessions"]
    return lambda r: 1000 * r["server_cpu_s"] / (r["retr_bytes"] / 1e6)


ROWS = [
    # key, label, metric, unit, better ("hi" or "lo"), target
    ("S1", "S1 50 clients connect+USER/PASS+QUIT: sessions/s",
     lambda r: r["sessions_per_s"], "/s", "hi", ">= 13x"),
    ("S1", "S1 server CPU per session", cpu_per("session"), "ms", "lo",
     "<= 1.25 ms"),
    ("S1", "S1 login p99", step("login", "p99_ms"), "ms", "lo", ""),
    ("S1c", "S1 sessions/s with auth cache (both)",
     lambda r: r["sessions_per_s"], "/s", "hi", ""),
    ("S1c", "S1 server CPU per session with auth cache (both)",
     cpu_per("session"), "ms", "lo", ""),
    ("S1c", "S1 login p99 with auth cache (both)", step("login", "p99_ms"),
     "ms", "lo", ""),
    ("S2-cold", "S2 cold: login+STAT+LIST+UIDL, 10,000 x 4 KB (session)",
     step("session"), "ms", "lo", "<= 0.25"),
    ("S2-cold", "S2 cold: login step", step("login"), "ms", "lo", ""),
    ("S2-cold", "S2 cold: STAT+LIST+UIDL step", step("list"), "ms", "lo", ""),
    ("S2-warm", "S2 warm: the same session again", step("session"), "ms",
     "lo", "<= 0.33"),
    ("S2-warm", "S2 warm: login step", step("login"), "ms", "lo", ""),
    ("S2-warm", "S2 warm: STAT+LIST+UIDL step", step("list"), "ms", "lo", ""),
    ("S3-1c", "S3 1 client RETR 100 x 1 MB: MB/s",
     lambda r: r["mb_per_s"], "MB/s", "hi", ">= 3x"),
    ("S3-1c", "S3 1 client RETR p50", step("retr"), "ms", "lo", ""),
    ("S3-8c", "S3 8 clients: MB/s", lambda r: r["mb_per_s"], "MB/s", "hi",
     ">= 3x"),
    ("S3-8c", "S3 8 clients RETR p50", step("retr"), "ms", "lo", ""),
    ("S3-1c", "S3 server CPU per MB (1 client)", cpu_per("MB"), "ms", "lo",
     "<= 1/3"),
    ("S3-8c", "S3 server CPU per MB (8 clients)", cpu_per("MB"), "ms", "lo",
     "<= 1/3"),
    ("S4-1000", "S4 1,000 idle logged-in clients: PSS per connection",
     lambda r: r["pss_per_conn_kb"], "KB", "lo", "<= 1/40"),
    ("S4-10000", "S4 10,000 idle logged-in clients: PSS per connection",
     lambda r: r["pss_per_conn_kb"], "KB", "lo", "<= 1/40"),
    ("S5", "S5 200 clients LIST+UIDL+RETR 20 x 50 KB: sessions/s",
     lambda r: r["sessions_per_s"], "/s", "hi", ">= 10x"),
    ("S5", "S5 login p99", step("login", "p99_ms"), "ms", "lo", "<= 1/30"),
    ("S5", "S5 RETR p50", step("retr"), "ms", "lo", ""),
    ("S5", "S5 server CPU per session", cpu_per("session"), "ms", "lo", ""),
    ("S5c", "S5 sessions/s with auth cache (both)",
     lambda r: r["sessions_per_s"], "/s", "hi", ""),
    ("S5c", "S5 login p99 with auth cache (both)", step("login", "p99_ms"),
     "ms", "lo", ""),
    ("S5c", "S5 server CPU per session with auth cache (both)",
     cpu_per("session"), "ms", "lo", ""),
]
for _m in ("stls", "tls"):
    ROWS += [
        ("S6-S1-" + _m, "S6 %s: S1 sessions/s" % _m.upper(),
         lambda r: r["sessions_per_s"], "/s", "hi", ">= 10x"),
        ("S6-S1-" + _m, "S6 %s: S1 server CPU per session" % _m.upper(),
         cpu_per("session"), "ms", "lo", ""),
        ("S6-S3-%s-1c" % _m, "S6 %s: S3 1 client MB/s" % _m.upper(),
         lambda r: r["mb_per_s"], "MB/s", "hi", ">= 3x"),
        ("S6-S3-%s-8c" % _m, "S6 %s: S3 8 clients MB/s" % _m.upper(),
         lambda r: r["mb_per_s"], "MB/s", "hi", ">= 4x"),
    ]
    if _m == "stls":
        ROWS += [
            ("S6-S1-stls-c", "S6 STLS: S1 sessions/s with auth cache (both)",
             lambda r: r["sessions_per_s"], "/s", "hi", ""),
            ("S6-S1-stls-c", "S6 STLS: S1 server CPU per session with auth "
             "cache (both)", cpu_per("session"), "ms", "lo", ""),
        ]

ROWS += [
    ("S7-1", "S7 LMTP 4 KB into one Maildir: deliveries/s",
     lambda r: r["sessions_per_s"], "/s", "hi", ""),
    ("S7-1", "S7 server CPU per delivery (one Maildir)", cpu_per("session"),
     "ms", "lo", ""),
    ("S7-100", "S7 LMTP 4 KB into 100 Maildirs: deliveries/s",
     lambda r: r["sessions_per_s"], "/s", "hi", ""),
    ("S7-100", "S7 server CPU per delivery (100 Maildirs)",
     cpu_per("session"), "ms", "lo", ""),
]

def fmt(v, unit):
    if v is None:
        return "-"
    if unit in ("/s", "MB/s"):
        return "%.1f" % v if v < 1000 else "%.0f" % v
    if v >= 100:
        return "{:,.0f} {}".format(v, unit)
    return "%.3g %s" % (v, unit)


def table(b):
    out = ["| scenario | Dovecot | postinod | postinod/dovecot | target | "
           "runs, spread (max-min)/median, disturbed |",
           "|---|---|---|---|---|---|"]
    for key, label, f, unit, better, target in ROWS:
        pr, dr = b.rows.get((key, "postinod")), b.rows.get((key, "dovecot"))
        if pr is None and dr is None:
            continue
        if key == "S4-10000" and dr is None:
            dr = b.rows.get(("S4-1000", "dovecot"))
            label += " (Dovecot: at 1,000)"
        p, d = med(pr, f), med(dr, f)
        if p and d:
            ratio = p / d
            rs = ("%.2fx" % ratio) if better == "hi" or ratio >= 0.1 \
                else "1/%.0f" % (1 / ratio)
            if better == "lo" and ratio >= 0.1:
                rs = "%.2f" % ratio
        else:
            rs = "-"
        fails = [r.get("error") for r in (pr or []) + (dr or [])
                 if r.get("errors") or r.get("rc")]
        noise = []
        for name, rr in (("p", pr), ("d", dr)):
            vals = []
            for r in rr or []:
                try:
                    vals.append(f(r))
                except (KeyError, ZeroDivisionError, TypeError):
                    pass
            if vals:
                m = statistics.median(vals)
                sp = (max(vals) - min(vals)) / m * 100 if m else 0
                dist = sum(1 for r in rr if r.get("disturbed"))
                noise.append("%s %d, %.0f%%%s" % (
                    name, len(vals), sp, ", %d dist." % dist if dist else ""))
        if fails:
            noise.append("FAILED: %s" % str(fails[0])[:80])
        out.append("| %s | %s | %s | %s | %s | %s |" % (
            label, fmt(d, unit), fmt(p, unit), rs, target, "; ".join(noise)))
    return "\n".join(out)


def machine():
    def ver(cmd):
        try:
            return subprocess.run(cmd, capture_output=True, text=True,
                                  timeout=10).stdout.strip().splitlines()[0]
        except (OSError, IndexError, subprocess.TimeoutExpired):
            return "?"
    try:
        with open("/etc/debian_version") as f:
            deb = "Debian " + f.read().strip()
    except OSError:
        deb = platform.platform()
    model = "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return "%d cores (%s), %s, kernel %s, Dovecot %s, %s" % (
        os.cpu_count(), model, deb, platform.release(),
        ver([DOVECOT, "--version"]).split()[0], ver(["openssl", "version"]))


# ---------------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", default=os.path.join(REPO, "build"))
    ap.add_argument("--quick", action="store_true",
                    help="one run each, shorter, no implicit TLS (< 3 min)")
    ap.add_argument("--smoke", action="store_true",
                    help="tiny data, postinod only (make check)")
    ap.add_argument("--only", help="comma-separated: S1,S2,S3,S4,S5,S6,S7;"
                    " S1c,S5c,S6c: S1, S5 and S6 STLS S1 with the auth "
                    "cache on in both servers")
    ap.add_argument("--servers", default="postinod,dovecot")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--retries", type=int, default=2,
                    help="extra attempts for a disturbed run")
    ap.add_argument("--max-foreign", type=float, default=0.10,
                    help="share of a core other work may take in a run")
    ap.add_argument("--server-cpu", type=int, default=0)
    ap.add_argument("--gen-cpu", type=int, default=1)
    ap.add_argument("--no-s4-10k", dest="s4_10k", action="store_false",
                    help="do not hold 10,000 clients too (10,000 users; "
                    "postinod only unless --s4-10k-dovecot; not in --quick)")
    ap.add_argument("--s4-10k-dovecot", action="store_true",
                    help="Dovecot too: 10,000 pop3 processes, ~7 GB")
    ap.add_argument("--timeout", type=float, default=300)
    ap.add_argument("--budget", type=float,
                    help="seconds; retries stop at 60 %% of it "
                    "and at 85 %% one run per scenario is taken "
                    "(default 1320, --quick 120)")
    ap.add_argument("--lmtp-gen", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.lmtp_gen:
        return lmtp_gen(a.lmtp_gen)
    if a.budget is None:
        a.budget = 120 if a.quick else 1320
    if a.quick:
        a.runs, a.retries = 1, 1
    if a.smoke:
        a.runs, a.retries = 1, 0
    if os.cpu_count() < 2:
        a.gen_cpu = a.server_cpu
    only = set(a.only.split(",")) if a.only else None
    b = Bench(a)
    if not os.access(b.loadgen, os.X_OK):
        raise SystemExit("bench: build %s first (make bench-build)"
                         % b.loadgen)
    t0 = time.monotonic()
    tmp = tempfile.mkdtemp(prefix="postino-bench-", dir="/tmp")
    os.chmod(tmp, 0o755)
    droot = os.path.join(tmp, "data") if a.smoke else \
        os.path.join(b.out, "data")
    if a.smoke:
        b.results = os.path.join(tmp, "results.jsonl")
    if not a.smoke:
        # the mail trees must be reachable by the mail user
        for p in (os.path.join(REPO, "build"), b.out):
            os.chmod(p, os.stat(p).st_mode | 0o755)
    data = Data(droot, b.build, a.quick, a.smoke,
                10000 if a.s4_10k and not a.quick and not a.smoke else 1000)
    data.ensure()
    cert, key = make_cert(b.out)
    os.chmod(b.out, 0o755)
    shutil.copy(cert, os.path.join(tmp, "cert.pem"))
    shutil.copy(key, os.path.join(tmp, "key.pem"))
    cert, key = os.path.join(tmp, "cert.pem"), os.path.join(tmp, "key.pem")
    servers = ["postinod"] if a.smoke else a.servers.split(",")
    if "dovecot" in servers and (not IS_ROOT or not os.path.exists(DOVECOT)):
        log("Dovecot needs root and dovecot-pop3d: postinod only")
        servers.remove("dovecot")
    failed = False
    lmtp, why = lmtp_supported(b.build, tmp)
    if not a.smoke and (only is None or "S7" in only) and not lmtp:
        b.notes.append("S7 for postinod skipped (Dovecot's is measured): "
                       "postinod does not support lmtp_listen "
                       "(%s)" % why.splitlines()[-1][:120])
    try:
        for name in servers:
            # Dovecot holds 10,000 only when asked (10,000 processes)
            root = data.tree(name, data.n_held if name == "postinod" or
                             a.s4_10k_dovecot else 1000)
            if name == "postinod":
                srv = Postinod(b.build, root, cert, key, tmp, a.server_cpu,
                               lmtp)
            else:
                srv = Dovecot(root, cert, key, tmp, a.server_cpu, 11000)
            log("starting %s" % name)
            srv.start()
            try:
                scenarios(b, srv, data, root, only, a.quick, a.smoke)
                # Dovecot's S7 is measured anyway, as the reference.
                if (lmtp or name == "dovecot") and not a.smoke and \
                        (only is None or "S7" in only):
                    scenario_s7(b, srv, data, root, a.quick)
            finally:
                srv.stop()
            marks = [m for m in SANITIZER_MARKS if m in srv.log()]
            if marks:
                log("%s log shows %s:\n%s" % (name, marks, srv.log()))
                failed = True
            time.sleep(1)
            if not wants_cached(only, a.quick, a.smoke):
                continue
            if name == "postinod":
                srv = Postinod(b.build, root, cert, key, tmp, a.server_cpu,
                               False, over=POSTINOD_CACHE)
            else:
                srv = Dovecot(root, cert, key, tmp, a.server_cpu, 11000,
                              cache=True)
            log("starting %s with its auth cache" % name)
            srv.start()
            try:
                scenarios_cached(b, srv, data, only)
            finally:
                srv.stop()
            if any(m in srv.log() for m in SANITIZER_MARKS):
                log("%s log:\n%s" % (name, srv.log()))
                failed = True
            time.sleep(1)
    finally:
        if os.environ.get("BENCH_KEEP"):
            log("kept %s (BENCH_KEEP)" % tmp)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    for runs in b.rows.values():
        if any(r.get("errors") or r.get("rc") for r in runs):
            failed = True
    t = table(b)
    dist = [r for runs in b.rows.values() for r in runs]
    noise = ("%d runs kept of %d (%d repeated because disturbed); "
             "disturbance of the kept runs (largest share of a core taken "
             "by other work, or steal): median %.0f%%, max %.0f%%; %d still "
             "over %.0f%% after up to %d retries" % (
                 len(dist), b.attempts, b.repeated,
                 100 * (med(dist, lambda r: r["disturbance"]) or 0),
                 100 * max([r.get("disturbance", 0) for r in dist] or [0]),
                 sum(1 for r in dist if r.get("disturbed")),
                 100 * a.max_foreign, a.retries))
    head = "%s, %s, %s\n\n" % (
        b.stamp, "bench-quick" if a.quick else
        ("smoke" if a.smoke else "bench"), machine())
    text = head + t + "\n\n" + noise + "\n" + "".join(
        "\n" + n for n in b.notes) + "\n"
    print(text)
    if not a.smoke:
        with open(os.path.join(b.out, "table.md"), "w") as f:
            f.write(text)
    log("done in %.0f s; runs in %s" % (time.monotonic() - t0, b.results))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
