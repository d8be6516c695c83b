"""The postino client against the real postinod, Dovecot's POP3 service and
small fake servers written here (for drops and hostile replies).

What lands locally must be exactly the stored message with LF line ends
(clients_helpers.wire + lf); in an mbox with a From_ line and mboxrd
escaping. A fetch killed at any point and run again delivers every message
exactly once, deletes on the server only what is safely stored, and with
--keep never deletes. Every subprocess has a timeout; loopback only.
"""

import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time

import pytest

import clients_helpers as ch
from conftest import BUILD, HAVE_IPV6, IS_ROOT, SANITIZER_MARKS, free_port

POSTINO = os.path.join(BUILD, "postino")
USER, PASSWORD = ch.USER, ch.PASSWORD
TIMEOUT = 120


# ---------------------------------------------------------------------------
# Running postino
# ---------------------------------------------------------------------------

class Home:
    """A throw-away $HOME with its own state and config directories."""

    def __init__(self):
        self.path = tempfile.mkdtemp(prefix="postino-client-")
        os.chmod(self.path, 0o755)
        self.state = os.path.join(self.path, "state")
        self.maildir = os.path.join(self.path, "Maildir")
        self.mbox = os.path.join(self.path, "mbox")

    def env(self, password=PASSWORD, **extra):
        env = dict(os.environ)
        for k in ("POSTINO_PASSWORD", "XDG_CONFIG_HOME", "XDG_STATE_HOME"):
            env.pop(k, None)
        env.update(HOME=self.path, XDG_STATE_HOME=self.state,
                   XDG_CONFIG_HOME=os.path.join(self.path, "config"))
        if password is not None:
            env["POSTINO_PASSWORD"] = password
        env.setdefault("ASAN_OPTIONS", "detect_leaks=1")
        env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1")
        env.update(extra)
        return env

    def run(self, *args, password=PASSWORD, timeout=TIMEOUT, env=None,
            check_san=True):
        e = self.env(password)
        if env:
            e.update(env)
        cp = subprocess.run([POSTINO] + [str(a) for a in args],
                            stdin=subprocess.DEVNULL, capture_output=True,
                            env=e, timeout=timeout)
        if check_san:
            assert_no_sanitizer(cp.stderr)
        return cp

    def new_messages(self):
        new = os.path.join(self.maildir, "new")
        out = []
        for n in sorted(os.listdir(new)):
            with open(os.path.join(new, n), "rb") as f:
                out.append(f.read())
        return out

    def tmp_files(self):
        return os.listdir(os.path.join(self.maildir, "tmp"))

    def state_ids(self):
        d = os.path.join(self.state, "postino")
        if not os.path.isdir(d):
            return []
        files = [n for n in os.listdir(d) if not n.startswith(".")]
        if not files:
            return []
        assert len(files) == 1, files
        with open(os.path.join(d, files[0]), "rb") as f:
            data = f.read().decode()
        return replay_state(data)

    def cleanup(self):
        shutil.rmtree(self.path, ignore_errors=True)


def replay_state(data):
    """The ids a state journal (src/client/state.h, format 2) holds, in
    the order first recorded, then "pending ID TOKEN" for a delivery in
    flight. A last line without its newline is a torn record: ignored."""
    lines = data.split("\n")
    assert lines[0] == "# postino state 2", lines[:1]
    ids, pending = {}, None
    for rec in lines[1:-1]:
        kind, rest = rec[0], rec[1:]
        uid, _, arg = rest.partition(" ")
        if kind == "+":
            assert arg.isdigit(), rec
            ids.setdefault(uid, int(arg))
            if pending and pending[0] == uid:
                pending = None
        elif kind == "-":
            ids.pop(uid, None)
        elif kind == "?":
            pending = (uid, arg)
        elif kind == "~":
            if pending and pending[0] == uid:
                pending = None
        else:
            raise AssertionError("bad state record %r" % rec)
    out = list(ids)
    if pending:
        out.append("pending %s %s" % pending)
    return out


def assert_no_sanitizer(stderr):
    text = stderr.decode("utf-8", "replace")
    for mark in SANITIZER_MARKS:
        assert mark not in text, text[-4000:]


@pytest.fixture
def home():
    h = Home()
    yield h
    h.cleanup()


def local(msg):
    """A stored message as postino must store it: LF line ends, a final
    line end."""
    return ch.lf(ch.wire(msg))


def parse_mboxrd(data):
    """Split an mboxrd file; returns [(from_line, message)]. Each message
    is followed by an empty line, and a From_ line follows an empty line."""
    assert data.startswith(b"From "), data[:100]
    assert data.endswith(b"\n\n"), data[-100:]
    out = []
    for part in re.split(rb"(?<=\n)\n(?=From )", data[:-1]):
        first, _, body = part.partition(b"\n")
        body = re.sub(rb"^>(>*From )", rb"\1", body, flags=re.M)
        out.append((first, body))
    return out


def url(port, host="127.0.0.1", user=USER):
    if ":" in host:
        host = "[%s]" % host
    return "pop3://%s@%s:%d" % (user, host, port)


def server_snapshot(host, port, user=USER, password=PASSWORD):
    import poplib
    p = poplib.POP3(host, port, timeout=30)
    try:
        p.user(user)
        p.pass_(password)
        n, size = p.stat()
        uidl = sorted(p.uidl()[1])
        p.quit()
    finally:
        p.close()
    return n, size, uidl


# ---------------------------------------------------------------------------
# Dovecot, started from a config in a temporary directory
# ---------------------------------------------------------------------------

DOVECOT = shutil.which("dovecot") or "/usr/sbin/dovecot"


class Dovecot:
    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="postino-dovecot-")
        os.chmod(self.dir, 0o755)
        self.port = free_port()
        self.home = os.path.join(self.dir, "home")
        os.mkdir(self.home, 0o755)
        self.passwd = os.path.join(self.dir, "passwd")
        with open(self.passwd, "w") as f:
            f.write("%s:{PLAIN}%s::::::\n" % (USER, PASSWORD))
        os.chmod(self.passwd, 0o644)
        login_user = "dovenull" if _user_exists("dovenull") else "nobody"
        internal = "dovecot" if _user_exists("dovecot") else "nobody"
        self.conf = os.path.join(self.dir, "dovecot.conf")
        with open(self.conf, "w") as f:
            f.write("""# written by tests/blackbox/test_client.py
protocols = pop3
listen = 127.0.0.1
base_dir = {d}/run
state_dir = {d}/state
log_path = /dev/stderr
info_log_path = /dev/stderr
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain
default_login_user = {login}
default_internal_user = {internal}
mail_location = maildir:~/Maildir
pop3_uidl_format = %08Xu%08Xv
passdb {{
  driver = passwd-file
  args = scheme=PLAIN {passwd}
}}
userdb {{
  driver = static
  args = uid=nobody gid={gid} home={home}/%u
}}
service pop3-login {{
  inet_listener pop3 {{
    address = 127.0.0.1
    port = {port}
  }}
}}
service imap-login {{
  inet_listener imap {{
    port = 0
  }}
}}
""".format(d=self.dir, login=login_user, internal=internal,
           passwd=self.passwd, home=self.home, port=self.port,
           gid=_nogroup()))
        self.maildir = os.path.join(self.home, USER, "Maildir")
        for sub in ("", "/new", "/cur", "/tmp"):
            os.makedirs(self.maildir + sub, exist_ok=True)
        self.logpath = os.path.join(self.dir, "log")
        self.proc = None
        self.seq = 0

    def deliver(self, data):
        self.seq += 1
        name = "%d.M%dP%d.test" % (int(time.time()), self.seq, os.getpid())
        tmp = os.path.join(self.maildir, "tmp", name)
        with open(tmp, "wb") as f:
            f.write(data)
        os.rename(tmp, os.path.join(self.maildir, "new", name))

    def start(self):
        _chown_tree(os.path.join(self.home, USER))
        self._log = open(self.logpath, "ab")
        self.proc = subprocess.Popen([DOVECOT, "-F", "-c", self.conf],
                                     stdin=subprocess.DEVNULL,
                                     stdout=self._log, stderr=self._log,
                                     start_new_session=True)
        deadline = time.monotonic() + 20
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port),
                                              timeout=2) as s:
                    if s.recv(100).startswith(b"+OK"):
                        return self
            except OSError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError("dovecot did not start:\n" + self.log())
            time.sleep(0.05)

    def log(self):
        with open(self.logpath, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        if self.proc is not None:
            self._log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def _user_exists(name):
    import pwd
    try:
        pwd.getpwnam(name)
        return True
    except KeyError:
        return False


def _nogroup():
    import grp
    try:
        grp.getgrnam("nogroup")
        return "nogroup"
    except KeyError:
        return "nobody"


def _chown_tree(path):
    import pwd
    pw = pwd.getpwnam("nobody")
    for root, dirs, files in os.walk(path):
        os.chown(root, pw.pw_uid, pw.pw_gid)
        for n in files:
            os.chown(os.path.join(root, n), pw.pw_uid, pw.pw_gid)


@pytest.fixture
def dovecot():
    if not IS_ROOT or not os.path.exists(DOVECOT):
        pytest.skip("Dovecot tests need root and dovecot-pop3d")
    servers = []

    def factory():
        d = Dovecot()
        servers.append(d)
        return d

    yield factory
    for d in servers:
        d.stop()


# ---------------------------------------------------------------------------
# A seeded server of either kind
# ---------------------------------------------------------------------------

def seeded(kind, mailroot, postinod, dovecot, msgs, store="maildir"):
    """Start a server holding msgs; returns (host, port)."""
    if kind == "postinod":
        mailroot.add_user(USER, PASSWORD)
        if store == "maildir":
            for m in msgs:
                mailroot.deliver_maildir(USER, m)
            srv = postinod(mailbox="maildir:~/Maildir")
        else:
            mailroot.write_mbox(USER, ch.mbox_bytes(msgs))
            srv = postinod(mailbox=mailroot.mbox_spec)
        return srv.host, srv.port
    d = dovecot()
    for m in msgs:
        d.deliver(m)
    d.start()
    return "127.0.0.1", d.port


SERVERS = ["postinod", "dovecot"]


def seed_messages(store="maildir"):
    return list(ch.seeds(store).values())


# ---------------------------------------------------------------------------
# Fetch: Maildir and mbox, keep and delete, both servers
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("keep", [False, True], ids=["delete", "keep"])
@pytest.mark.parametrize("kind", SERVERS)
def test_fetch_to_maildir(kind, keep, home, mailroot, postinod, dovecot):
    msgs = seed_messages()
    host, port = seeded(kind, mailroot, postinod, dovecot, msgs)
    before = server_snapshot(host, port)
    args = ["fetch", "--tls=no", "--maildir", home.maildir]
    if keep:
        args.append("--keep")
    cp = home.run(*(args + [url(port, host)]))
    assert cp.returncode == 0, cp.stderr
    assert sorted(home.new_messages()) == sorted(local(m) for m in msgs)
    assert home.tmp_files() == []
    names = os.listdir(os.path.join(home.maildir, "new"))
    for n in names:
        # The store's name: "...,S=<octets>,W=<CRLF size>".
        size = int(re.search(r",S=(\d+),W=\d+$", n).group(1))
        with open(os.path.join(home.maildir, "new", n), "rb") as f:
            assert len(f.read()) == size
    after = server_snapshot(host, port)
    if keep:
        assert after == before
        assert sorted(home.state_ids()) == sorted(
            u.split()[1].decode() for u in before[2])
    else:
        assert after[0] == 0
    # A second run: nothing new, nothing twice.
    cp = home.run(*(args + [url(port, host)]))
    assert cp.returncode == 0, cp.stderr
    assert len(home.new_messages()) == len(msgs)
    if not keep:
        assert home.state_ids() == []


@pytest.mark.parametrize("keep", [False, True], ids=["delete", "keep"])
@pytest.mark.parametrize("kind", SERVERS)
def test_fetch_to_mbox(kind, keep, home, mailroot, postinod, dovecot):
    msgs = seed_messages()
    host, port = seeded(kind, mailroot, postinod, dovecot, msgs)
    args = ["fetch", "--tls=no", "--mbox", home.mbox]
    if keep:
        args.append("--keep")
    cp = home.run(*(args + [url(port, host)]))
    assert cp.returncode == 0, cp.stderr
    with open(home.mbox, "rb") as f:
        data = f.read()
    got = parse_mboxrd(data)
    assert sorted(m for _, m in got) == sorted(local(m) for m in msgs)
    for first, _ in got:
        # Every seed has Return-Path: <sender@example.org>.
        assert re.match(rb"From sender@example\.org "
                        rb"\w{3} \w{3} [ \d]\d \d\d:\d\d:\d\d \d{4}$", first), first
    assert not os.path.exists(home.mbox + ".lock")
    after = server_snapshot(host, port)
    assert after[0] == (len(msgs) if keep else 0)
    cp = home.run(*(args + [url(port, host)]))
    assert cp.returncode == 0, cp.stderr
    with open(home.mbox, "rb") as f:
        assert f.read() == data


def test_fetch_from_mbox_spool(home, mailroot, postinod):
    """postinod serving an mbox spool: the round trip mbox -> POP3 ->
    Maildir gives back the messages as they were delivered."""
    msgs = seed_messages("mbox")
    host, port = seeded("postinod", mailroot, postinod, None, msgs, "mbox")
    cp = home.run("fetch", "--tls=no", "--maildir", home.maildir,
                  url(port, host))
    assert cp.returncode == 0, cp.stderr
    assert sorted(home.new_messages()) == sorted(local(m) for m in msgs)
    assert mailroot.read_mbox(USER) == b""


def test_fetch_over_ipv6_with_mda(home, mailroot, postinod):
    if not HAVE_IPV6:
        pytest.skip("no IPv6 loopback")
    mailroot.add_user(USER, PASSWORD)
    msgs = seed_messages()
    for m in msgs:
        mailroot.deliver_maildir(USER, m)
    srv = postinod()
    out = os.path.join(home.path, "mda-out")
    # The MDA stores each message in its own file.
    mda = "cat > %s/mda-$(date +%%s%%N)-$$" % home.path
    cp = home.run("fetch", "-6", "--tls=no", "--mda", mda,
                  url(srv.port6, "::1"))
    assert cp.returncode == 0, cp.stderr
    got = []
    for n in os.listdir(home.path):
        if n.startswith("mda-"):
            with open(os.path.join(home.path, n), "rb") as f:
                got.append(f.read())
    assert sorted(got) == sorted(local(m) for m in msgs)
    assert not os.path.exists(out)
    assert server_snapshot(srv.host, srv.port)[0] == 0


# ---------------------------------------------------------------------------
# Interrupted fetches resume without loss or duplicates
# ---------------------------------------------------------------------------

def many_messages(n):
    return [b"Return-Path: <s@example.org>\nSubject: message %d\n"
            b"Message-ID: <m%d@test>\n\n%s\n" % (i, i, b"body line\n" * (i % 50))
            for i in range(n)]


def local_store(home, dest):
    """Messages delivered so far, to the Maildir or the mbox."""
    if dest == "maildir":
        return home.new_messages()
    if not os.path.exists(home.mbox):
        return []
    with open(home.mbox, "rb") as f:
        return [m for _, m in parse_mboxrd(f.read())]


@pytest.mark.parametrize("keep,hook,dest", [
    (False, "POSTINO_TEST_KILL_AFTER", "maildir"),
    (True, "POSTINO_TEST_KILL_STORED", "maildir"),
    (False, "POSTINO_TEST_KILL_STORED", "mbox"),
    (True, "POSTINO_TEST_KILL_AFTER", "mbox"),
], ids=["delete-recorded-maildir", "keep-stored-maildir",
        "delete-stored-mbox", "keep-recorded-mbox"])
def test_resume_after_kill_hook(keep, hook, dest, home, mailroot, postinod):
    """Killed (SIGKILL) right after the 100th message was recorded, or
    after it was stored but before it was recorded: the rerun delivers
    every message exactly once."""
    msgs = many_messages(300)
    host, port = seeded("postinod", mailroot, postinod, None, msgs)
    args = ["fetch", "--tls=no", "--" + dest,
            home.maildir if dest == "maildir" else home.mbox]
    if keep:
        args.append("--keep")
    args.append(url(port, host))
    cp = home.run(*args, env={hook: "100"}, check_san=False)
    assert cp.returncode == -signal.SIGKILL, cp.stderr
    assert len(local_store(home, dest)) == 100
    lines = home.state_ids()
    pending = [l for l in lines if l.startswith("pending ")]
    if hook.endswith("AFTER"):
        assert (len(lines), pending) == (100, [])
    else:
        # Stored but not recorded: the state names it as in flight.
        assert len(lines) == 100 and len(pending) == 1
    if dest == "maildir":
        assert home.tmp_files() == []
    # Killed before QUIT: nothing was deleted.
    assert server_snapshot(host, port)[0] == 300
    cp = home.run(*args)
    assert cp.returncode == 0, cp.stderr
    assert sorted(local_store(home, dest)) == sorted(local(m) for m in msgs)
    assert server_snapshot(host, port)[0] == (300 if keep else 0)
    assert not any(l.startswith("pending ") for l in home.state_ids())


@pytest.mark.parametrize("keep", [False, True], ids=["delete", "keep"])
def test_resume_after_kill9(keep, home, mailroot, postinod):
    msgs = many_messages(300)
    host, port = seeded("postinod", mailroot, postinod, None, msgs)
    args = [POSTINO, "fetch", "--tls=no", "--maildir", home.maildir]
    if keep:
        args.append("--keep")
    args.append(url(port, host))
    p = subprocess.Popen(args, env=home.env(), stdin=subprocess.DEVNULL,
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    new = os.path.join(home.maildir, "new")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and p.poll() is None:
        if os.path.isdir(new) and len(os.listdir(new)) >= 30:
            break
        time.sleep(0.002)
    p.kill()
    p.wait(10)
    p.stderr.close()
    first = len(home.new_messages())
    assert 0 < first
    # tmp/ may hold the one message in flight; the next run must not
    # deliver it twice (it is not in new/, so it is fetched again).
    cp = home.run(*args[1:])
    assert cp.returncode == 0, cp.stderr
    assert sorted(home.new_messages()) == sorted(local(m) for m in msgs)
    assert server_snapshot(host, port)[0] == (300 if keep else 0)


@pytest.mark.parametrize("kind", SERVERS)
def test_fetch_is_pipelined_with_one_fsync_per_message(
        kind, home, mailroot, postinod, dovecot):
    """Speed (issue 13 finding 4): with PIPELINING the RETRs go out ahead
    of their replies, and a Maildir delivery costs one fsync per message
    plus two (new/ and the state journal) per batch of up to 100 messages
    or one second: the count of fsync calls is bounded accordingly (the
    old client made six per message)."""
    if shutil.which("strace") is None:
        pytest.skip("strace is not installed (tests/deps.sh)")
    n = 300
    msgs = many_messages(n)
    host, port = seeded(kind, mailroot, postinod, dovecot, msgs)
    trace = os.path.join(home.path, "strace.out")
    e = home.env()
    e["ASAN_OPTIONS"] = "detect_leaks=0"    # LeakSanitizer fails under ptrace
    t0 = time.monotonic()
    cp = subprocess.run(
        ["strace", "-f", "-qq", "-e", "trace=fsync,fdatasync", "-o", trace,
         POSTINO, "fetch", "--tls=no", "--keep", "--verbose",
         "--maildir", home.maildir, url(port, host)],
        stdin=subprocess.DEVNULL, capture_output=True, env=e,
        timeout=TIMEOUT)
    elapsed = time.monotonic() - t0
    assert cp.returncode == 0, cp.stderr[-3000:]
    assert sorted(home.new_messages()) == sorted(local(m) for m in msgs)
    with open(trace) as f:
        fsyncs = sum(1 for l in f if "fsync(" in l)
    batches = n // 100 + int(elapsed) + 2
    assert n <= fsyncs <= n + 2 * batches + 2, (fsyncs, elapsed)
    # The dialogue: RETR 2 is sent before RETR 1's reply is read.
    lines = [l for l in cp.stderr.decode().splitlines()
             if l.startswith(("C: ", "S: +OK", "S: -ERR"))]
    i = lines.index("C: RETR 1")
    assert lines[i + 1] == "C: RETR 2", lines[i:i + 4]


MTA_MESSAGES = {
    "short": b"From mta@example.org Thu Jan  1 00:00:00 1970\n"
             b"Subject: from the MTA\n\nshort\n\n",
    # Longer than the rest of the interrupted message: the mbox grows past
    # the end the dead run expected.
    "long": b"From mta@example.org Thu Jan  1 00:00:00 1970\n"
            b"Subject: from the MTA\n\n" + b"long line of mail\n" * 500 +
            b"\n",
}


def mta_append(path, data):
    """Append as an MTA that judged the dead run's dotlock stale: under
    an fcntl lock only."""
    import fcntl
    with open(path, "ab") as f:
        fcntl.lockf(f, fcntl.LOCK_EX)
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def mbox_lock_leftovers(home):
    d = os.path.dirname(home.mbox)
    return [n for n in os.listdir(d) if n.startswith("mbox.lock")]


@pytest.mark.parametrize("mta", ["none", "short", "long"])
def test_mbox_kill_mid_append_recovery_spares_other_mail(
        mta, home, mailroot, postinod):
    """Killed (SIGKILL) half-way through appending the 10th message, with
    the mbox locked. The next run starts at once (the dead run's dotlock
    names a pid that is gone) and leaves no lock files. With no other
    writer it takes back exactly the partial message; when another program
    appended after the kill, nothing is removed, that program's message
    survives, the problem is reported and the interrupted message is
    fetched again in full (never counted as delivered while partial)."""
    msgs = many_messages(20)
    host, port = seeded("postinod", mailroot, postinod, None, msgs)
    args = ["fetch", "--tls=no", "--mbox", home.mbox, url(port, host)]
    cp = home.run(*args, env={"POSTINO_TEST_KILL_APPEND": "10"},
                  check_san=False)
    assert cp.returncode == -signal.SIGKILL, cp.stderr
    # Killed holding the lock: the dotlock is there, with the dead pid.
    assert os.path.exists(home.mbox + ".lock")
    with open(home.mbox, "rb") as f:
        partial = f.read()
    # Nine messages and the start of the tenth.
    assert len(re.findall(rb"^From ", partial, re.M)) == 10
    assert not partial.endswith(b"\n\n")
    if mta != "none":
        mta_append(home.mbox, MTA_MESSAGES[mta])
    t0 = time.monotonic()
    cp = home.run(*args)
    elapsed = time.monotonic() - t0
    assert cp.returncode == 0, cp.stderr
    assert elapsed < 10, elapsed
    assert mbox_lock_leftovers(home) == []
    with open(home.mbox, "rb") as f:
        data = f.read()
    if mta == "none":
        assert "left as it is" not in cp.stderr.decode()
        got = parse_mboxrd(data)
        assert sorted(m for _, m in got) == sorted(local(m) for m in msgs)
    else:
        # Nothing before the kill point was touched, the other program's
        # message is intact, and every message is there in full, once.
        assert data.startswith(partial)
        assert data.count(MTA_MESSAGES[mta]) == 1
        for m in msgs:
            assert data.count(local(m)) == 1, m[:60]
        assert "left as it is" in cp.stderr.decode()
    assert server_snapshot(host, port)[0] == 0
    assert not any(l.startswith("pending ") for l in home.state_ids())


def mda_outputs(d):
    out = []
    for n in sorted(os.listdir(d)):
        with open(os.path.join(d, n), "rb") as f:
            out.append(f.read())
    return out


def test_mda_kill9_while_it_runs_delivers_once(home, mailroot, postinod):
    """Issue 13 finding 3: postino killed (-9) while the MDA delivers the
    5th message. The MDA finishes (its supervisor outlives postino and
    records the exit status); the next run waits for that outcome and
    counts the message as delivered: every message exactly once."""
    msgs = many_messages(10)
    host, port = seeded("postinod", mailroot, postinod, None, msgs)
    out = os.path.join(home.path, "out")
    os.mkdir(out)
    flag = os.path.join(home.path, "started")
    mda = ('f=$(mktemp %s/m.XXXXXX); cat > "$f"; '
           'if grep -q "^Subject: message 4$" "$f"; then touch %s; '
           'sleep 1; fi' % (out, flag))
    args = ["fetch", "--tls=no", "--mda", mda, url(port, host)]
    p = subprocess.Popen([POSTINO] + args, env=home.env(),
                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while not os.path.exists(flag) and time.monotonic() < deadline:
        assert p.poll() is None
        time.sleep(0.01)
    p.kill()
    p.wait(10)
    cp = home.run(*args)
    assert cp.returncode == 0, cp.stderr
    assert "delivered again" not in cp.stderr.decode()
    assert sorted(mda_outputs(out)) == sorted(local(m) for m in msgs)
    assert server_snapshot(host, port)[0] == 0


def run_on_pty(argv, env, cols, timeout=TIMEOUT):
    """argv with stderr on a pseudo-terminal cols wide; (rc, output)."""
    import fcntl
    import pty
    import select
    import struct
    import termios
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, cols, 0, 0))
    p = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL,
                         stdout=subprocess.DEVNULL, stderr=slave)
    os.close(slave)
    out = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r, _, _ = select.select([master], [], [], 1)
        if r:
            try:
                chunk = os.read(master, 65536)
            except OSError:         # EIO: the last writer closed it
                break
            if not chunk:
                break
            out += chunk
        elif p.poll() is not None:
            break
    os.close(master)
    return p.wait(10), out.decode("utf-8", "replace")


def test_progress_fits_a_narrow_terminal_errors_on_their_own_line(
        home, mailroot, postinod):
    """Issue 13 finding 7: on a 40-column terminal every redraw of the
    progress bar fits the line (a wider one wraps and adds a line each
    time), and an error starts on a line of its own."""
    host, port = seeded("postinod", mailroot, postinod, None,
                        many_messages(6))
    mda = 'f=$(cat); case "$f" in *"Subject: message 3"*) exit 75;; esac'
    rc, out = run_on_pty([POSTINO, "fetch", "--tls=no", "--mda", mda,
                          url(port)], home.env(), 40)
    assert rc == 6, out
    bars = [seg for seg in re.split(r"[\r\n]", out)
            if re.search(r"\d+/6 messages", seg)]
    assert len(bars) >= 3, out
    for seg in bars:
        assert len(seg) < 40, (seg, out)
    i = out.index("postino: message 4: mda failed")
    assert out[i - 1] in "\r\n", repr(out[max(0, i - 60):i + 10])


def test_mda_runs_with_the_users_umask(home, mailroot, postinod):
    """Issue 13 finding 7: files the MDA creates get the user's umask,
    not postino's own 077."""
    host, port = seeded("postinod", mailroot, postinod, None,
                        many_messages(2))
    out = os.path.join(home.path, "out")
    os.mkdir(out)
    cp = subprocess.run(
        [POSTINO, "fetch", "--tls=no", "--mda",
         "cat > %s/m.$$" % out, url(port, host)],
        env=home.env(), stdin=subprocess.DEVNULL, capture_output=True,
        timeout=TIMEOUT, preexec_fn=lambda: os.umask(0o022))
    assert cp.returncode == 0, cp.stderr
    modes = [os.stat(os.path.join(out, n)).st_mode & 0o777
             for n in os.listdir(out)]
    assert modes == [0o644, 0o644], [oct(m) for m in modes]


# ---------------------------------------------------------------------------
# Failures: credentials, locks, MDA, TLS, network
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("kind", SERVERS)
def test_bad_credentials_exit_4(kind, home, mailroot, postinod, dovecot):
    host, port = seeded(kind, mailroot, postinod, dovecot, seed_messages())
    cp = home.run("stat", "--tls=no", url(port, host), password="wrong")
    assert cp.returncode == 4, cp.stderr
    err = cp.stderr.decode()
    assert "postino: %s:%d: authentication failed for %s" % (
        host, port, USER) in err
    assert "wrong" not in err
    assert err.count("\n") == 1, err


def test_in_use_exit_5(home, mailroot, postinod):
    host, port = seeded("postinod", mailroot, postinod, None,
                        seed_messages())
    import poplib
    p = poplib.POP3(host, port, timeout=30)
    p.user(USER)
    p.pass_(PASSWORD)
    try:
        cp = home.run("fetch", "--tls=no", "--maildir", home.maildir,
                      url(port, host))
    finally:
        p.quit()
    assert cp.returncode == 5, cp.stderr
    assert "[IN-USE]" in cp.stderr.decode()
    assert home.new_messages() == []


def test_login_delay_exit_5(home, mailroot, postinod):
    mailroot.add_user(USER, PASSWORD)
    srv = postinod(login_delay=300)
    cp = home.run("stat", "--tls=no", url(srv.port))
    assert cp.returncode == 0, cp.stderr
    cp = home.run("stat", "--tls=no", url(srv.port))
    assert cp.returncode == 5, cp.stderr
    assert "LOGIN-DELAY" in cp.stderr.decode()


def test_failing_mda_exit_6_keeps_mail(home, mailroot, postinod):
    msgs = seed_messages()
    host, port = seeded("postinod", mailroot, postinod, None, msgs)
    before = server_snapshot(host, port)
    cp = home.run("fetch", "--tls=no", "--mda", "cat >/dev/null; exit 75",
                  url(port, host))
    assert cp.returncode == 6, cp.stderr
    assert "exit status 75" in cp.stderr.decode()
    assert server_snapshot(host, port) == before
    assert home.state_ids() == []


def test_state_locked_by_another_fetch_exit_5(home, mailroot, postinod):
    import fcntl
    host, port = seeded("postinod", mailroot, postinod, None,
                        seed_messages())
    d = os.path.join(home.state, "postino")
    os.makedirs(d)
    lock = os.path.join(d, ".%s@127.0.0.1%%3A%d.lock" % (USER, port))
    with open(lock, "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        cp = home.run("fetch", "--tls=no", "--maildir", home.maildir,
                      url(port, host))
    assert cp.returncode == 5, cp.stderr
    assert "another postino" in cp.stderr.decode()


def test_tls_is_required_unless_no_exit_3(home):
    """Without --tls=no a server that offers no STLS gets no password
    (more in test_client_tls.py)."""
    srv = FakeServer(fake_pop3(fake_msgs(1)))
    try:
        cp = home.run("stat", url(srv.port))
    finally:
        srv.close()
    assert cp.returncode == 3, cp.stderr
    assert "the server does not offer STLS" in cp.stderr.decode()
    assert srv.received == [b"CAPA"]


def test_connection_refused_exit_2(home):
    port = free_port()
    cp = home.run("stat", "--tls=no", url(port))
    assert cp.returncode == 2
    assert cp.stderr.decode() == (
        "postino: 127.0.0.1:%d: connection refused\n" % port)


def test_usage_errors_exit_1(home):
    for args in ([], ["frobnicate", "h"], ["stat"], ["stat", "a", "b"],
                 ["fetch", "--tls=no", "h"], ["list", "--keep", "h"],
                 ["stat", "--tls=maybe", "h"], ["stat", "host:99999"],
                 ["fetch", "--maildir", "x", "--mbox", "y", "h"]):
        cp = home.run(*args)
        assert cp.returncode == 1, (args, cp.stderr)
        assert cp.stderr.startswith(b"postino: ") or cp.stderr.startswith(
            b"usage"), cp.stderr


# ---------------------------------------------------------------------------
# list and stat output
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("kind", SERVERS)
def test_list_and_stat_output(kind, home, mailroot, postinod, dovecot):
    msgs = seed_messages()
    host, port = seeded(kind, mailroot, postinod, dovecot, msgs)
    import poplib
    p = poplib.POP3(host, port, timeout=30)
    p.user(USER)
    p.pass_(PASSWORD)
    n, size = p.stat()
    listing = [l.decode().split() for l in p.list()[1]]
    uidl = dict(l.decode().split() for l in p.uidl()[1])
    p.quit()
    cp = home.run("stat", "--tls=no", url(port, host))
    assert cp.returncode == 0, cp.stderr
    assert cp.stdout.decode() == "%d messages, %d octets\n" % (n, size)
    assert cp.stderr == b""
    cp = home.run("list", "--tls=no", url(port, host))
    assert cp.returncode == 0, cp.stderr
    want = "".join("%s %s %s\n" % (num, sz, uidl[num]) for num, sz in listing)
    assert cp.stdout.decode() == want
    assert len(cp.stdout.splitlines()) == len(msgs)


def test_verbose_masks_secrets_and_apop(home, mailroot, postinod):
    mailroot.add_user(USER, PASSWORD, scheme="PLAIN")
    srv = postinod(apop=True)
    cp = home.run("stat", "--tls=no", "--verbose", url(srv.port))
    assert cp.returncode == 0, cp.stderr
    err = cp.stderr.decode()
    assert PASSWORD not in err
    assert "C: APOP %s ********" % USER in err
    assert "(APOP)" in err
    srv2 = postinod()
    cp = home.run("stat", "--tls=no", "-v", "--auth=user", url(srv2.port))
    err = cp.stderr.decode()
    assert cp.returncode == 0, err
    assert "C: PASS ********" in err and PASSWORD not in err
    # Without --auth: SASL PLAIN, the strongest postinod offers by default.
    cp = home.run("stat", "--tls=no", "-v", url(srv2.port))
    err = cp.stderr.decode()
    assert cp.returncode == 0, err
    assert "C: AUTH PLAIN ********" in err and PASSWORD not in err


def test_named_account_and_netrc(home, mailroot, postinod):
    msgs = seed_messages()
    host, port = seeded("postinod", mailroot, postinod, None, msgs)
    cfg = os.path.join(home.path, "config", "postino")
    os.makedirs(cfg)
    with open(os.path.join(cfg, "config"), "w") as f:
        f.write("account test\n  host 127.0.0.1\n  port %d\n  user %s\n"
                "  tls no\n  maildir %s\n" % (port, USER, home.maildir))
    netrc = os.path.join(home.path, ".netrc")
    with open(netrc, "w") as f:
        f.write("machine 127.0.0.1 login %s password %s\n" % (USER, PASSWORD))
    os.chmod(netrc, 0o600)
    cp = home.run("fetch", "--keep", "test", password=None)
    assert cp.returncode == 0, cp.stderr
    assert len(home.new_messages()) == len(msgs)
    # --password-command when neither env nor netrc has it.
    os.unlink(netrc)
    cp = home.run("stat", "--password-command", "echo %s" % PASSWORD, "test",
                  password=None)
    assert cp.returncode == 0, cp.stderr
    cp = home.run("stat", "--password-command", "echo nope", "test",
                  password=None)
    assert cp.returncode == 4, cp.stderr


def test_password_precedence(home, mailroot, postinod):
    """Issue 13 finding 6: the most specific source wins: --password-command
    on the command line, then $POSTINO_PASSWORD, then the account's
    password-command, then ~/.netrc (a stale one must not shadow the
    account's command)."""
    host, port = seeded("postinod", mailroot, postinod, None,
                        seed_messages())
    cfg = os.path.join(home.path, "config", "postino")
    os.makedirs(cfg)
    with open(os.path.join(cfg, "config"), "w") as f:
        f.write("account test\n  host 127.0.0.1\n  port %d\n  user %s\n"
                "  tls no\n  password-command echo %s\n"
                % (port, USER, PASSWORD))
    netrc = os.path.join(home.path, ".netrc")
    with open(netrc, "w") as f:
        f.write("machine 127.0.0.1 login %s password stale\n" % USER)
    os.chmod(netrc, 0o600)
    # The account's command beats the stale .netrc.
    cp = home.run("stat", "test", password=None)
    assert cp.returncode == 0, cp.stderr
    # The environment beats the account's command...
    cp = home.run("stat", "test", password="wrong")
    assert cp.returncode == 4, cp.stderr
    # ...and an explicit --password-command beats the environment.
    cp = home.run("stat", "--tls=no", "--password-command",
                  "echo %s" % PASSWORD, url(port), password="wrong")
    assert cp.returncode == 0, cp.stderr
    cp = home.run("stat", "--password-command", "echo nope", "test",
                  password=PASSWORD)
    assert cp.returncode == 4, cp.stderr


# ---------------------------------------------------------------------------
# Fake servers: drops and hostile replies
# ---------------------------------------------------------------------------

class FakeServer:
    """One-connection-at-a-time POP3 server in a thread. script(conn, rf)
    runs the dialogue for each connection (rf: a binary file for reading
    lines); it may raise to drop the connection."""

    def __init__(self, script, connections=1):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(4)
        self.sock.settimeout(30)
        self.port = self.sock.getsockname()[1]
        self.script = script
        self.received = []
        self.errors = []
        self.thread = threading.Thread(target=self._run, args=(connections,),
                                       daemon=True)
        self.thread.start()

    def _run(self, connections):
        for _ in range(connections):
            try:
                conn, _ = self.sock.accept()
            except OSError as e:
                self.errors.append(e)
                return
            conn.settimeout(30)
            rf = conn.makefile("rb")
            try:
                self.script(self, conn, rf)
            except (OSError, EOFError):
                pass
            finally:
                rf.close()
                conn.close()

    def cmd(self, rf):
        line = rf.readline(1024)
        if not line:
            raise EOFError
        line = line.rstrip(b"\r\n")
        self.received.append(line)
        return line

    def close(self):
        self.sock.close()
        self.thread.join(30)


def fake_pop3(messages, uidl=True, top=True, on_retr=None, list_lines=None,
              greeting=b"+OK fake ready\r\n", greeting_delay=0):
    """A script serving messages (bytes with CRLF line ends, unstuffed)."""

    def script(srv, conn, rf):
        time.sleep(greeting_delay)
        conn.sendall(greeting)
        while True:
            line = srv.cmd(rf)
            word = line.split(b" ")[0].upper()
            args = line.split(b" ")[1:]
            if word == b"CAPA":
                caps = b"USER\r\n" + (b"UIDL\r\n" if uidl else b"") + \
                    (b"TOP\r\n" if top else b"")
                conn.sendall(b"+OK\r\n" + caps + b".\r\n")
            elif word in (b"USER", b"PASS", b"NOOP"):
                conn.sendall(b"+OK\r\n")
            elif word == b"STAT":
                conn.sendall(b"+OK %d %d\r\n" % (
                    len(messages), sum(len(m) for m in messages)))
            elif word == b"LIST":
                body = list_lines if list_lines is not None else b"".join(
                    b"%d %d\r\n" % (i + 1, len(m))
                    for i, m in enumerate(messages)) + b".\r\n"
                conn.sendall(b"+OK\r\n" + body)
                if list_lines is not None and not body.endswith(b".\r\n"):
                    conn.shutdown(socket.SHUT_WR)
                    raise EOFError
            elif word == b"UIDL" and uidl:
                conn.sendall(b"+OK\r\n" + b"".join(
                    b"%d uid-%d\r\n" % (i + 1, i + 1)
                    for i in range(len(messages))) + b".\r\n")
            elif word in (b"RETR", b"TOP") and (top or word == b"RETR"):
                n = int(args[0])
                m = messages[n - 1]
                if word == b"TOP":
                    m = m.split(b"\r\n\r\n", 1)[0] + b"\r\n\r\n"
                if on_retr is not None and word == b"RETR":
                    on_retr(conn, n, m)
                stuffed = re.sub(rb"^\.", b"..", m, flags=re.M)
                conn.sendall(b"+OK\r\n" + stuffed + b".\r\n")
            elif word == b"DELE":
                conn.sendall(b"+OK\r\n")
            elif word == b"QUIT":
                conn.sendall(b"+OK bye\r\n")
                return
            else:
                conn.sendall(b"-ERR unknown\r\n")

    return script


def fake_msgs(n, size=2000):
    out = []
    for i in range(n):
        body = b"".join(b"line %d of message %d\r\n" % (k, i)
                        for k in range(size // 30))
        out.append(b"Subject: fake %d\r\n\r\n.dot line\r\n" % i + body)
    return out


def test_drop_mid_retr(home):
    msgs = fake_msgs(3, 200000)

    def drop_on_second(conn, n, m):
        if n == 2:
            conn.sendall(b"+OK\r\n" + m[:len(m) // 2])
            conn.shutdown(socket.SHUT_RDWR)
            raise EOFError

    srv = FakeServer(fake_pop3(msgs, on_retr=drop_on_second))
    try:
        cp = home.run("fetch", "--tls=no", "--maildir", home.maildir,
                      url(srv.port))
    finally:
        srv.close()
    # A connection failure, exit 2 as documented (issue 13 finding 7).
    assert cp.returncode == 2, cp.stderr
    assert "cut short" in cp.stderr.decode()
    assert home.new_messages() == [msgs[0].replace(b"\r\n", b"\n")]
    assert home.tmp_files() == []
    assert home.state_ids() == ["uid-1"]
    assert not any(l.startswith((b"DELE", b"QUIT")) for l in srv.received)


def test_no_uidl_falls_back_to_digests(home):
    msgs = fake_msgs(4)
    msgs.append(msgs[0])        # an identical copy is still its own message
    srv = FakeServer(fake_pop3(msgs, uidl=False), connections=2)
    try:
        args = ("fetch", "--tls=no", "--keep", "--maildir", home.maildir,
                url(srv.port))
        cp = home.run(*args)
        assert cp.returncode == 0, cp.stderr
        assert "no UIDL" in cp.stderr.decode()
        assert len(home.new_messages()) == 5
        ids = home.state_ids()
        assert len(set(ids)) == 5 and all(i.startswith("digest-") for i in ids)
        cp = home.run(*args)
        assert cp.returncode == 0, cp.stderr
        assert len(home.new_messages()) == 5
    finally:
        srv.close()


HOSTILE = {
    "overlong_greeting": dict(greeting=b"+OK " + b"x" * 100000 + b"\r\n"),
    "endless_greeting": dict(greeting=b"+OK " + b"x" * 1000000),
    "huge_list_size": dict(list_lines=b"1 99999999999999999999\r\n.\r\n"),
    "negative_list_size": dict(list_lines=b"1 -1\r\n.\r\n"),
    "overlong_list_line": dict(list_lines=b"1 " + b"9" * 10000 + b"\r\n.\r\n"),
    "garbage_greeting": dict(greeting=b"HTTP/1.0 400 Bad\r\n"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_server_exit_7(case, home):
    srv = FakeServer(fake_pop3(fake_msgs(2), **HOSTILE[case]))
    try:
        cp = home.run("fetch", "--tls=no", "--maildir", home.maildir,
                      url(srv.port), timeout=60)
    finally:
        srv.close()
    assert cp.returncode == 7, cp.stderr
    err = cp.stderr.decode()
    assert err.startswith("postino: 127.0.0.1:%d: " % srv.port), err
    assert len(err) < 400 and err.count("\n") == 1, err
    assert home.new_messages() == []
    assert home.state_ids() == []


def test_list_cut_short_is_a_connection_failure_exit_2(home):
    srv = FakeServer(fake_pop3(fake_msgs(2),
                               list_lines=b"1 10\r\n2 20\r\n"))
    try:
        cp = home.run("fetch", "--tls=no", "--maildir", home.maildir,
                      url(srv.port), "--timeout", "5", timeout=60)
    finally:
        srv.close()
    assert cp.returncode == 2, cp.stderr
    assert home.new_messages() == []


def test_connect_timeout_says_connect(home):
    """Issue 13 finding 7: a connection that is never accepted (a listener
    whose backlog is full drops the SYNs) is reported as a connect
    timeout, exit 2, not as a server that stopped talking."""
    lsn = socket.socket()
    lsn.bind(("127.0.0.1", 0))
    lsn.listen(0)
    port = lsn.getsockname()[1]
    fill = []
    try:
        for _ in range(4):
            c = socket.socket()
            c.setblocking(False)
            try:
                c.connect(("127.0.0.1", port))
            except BlockingIOError:
                pass
            fill.append(c)
        time.sleep(0.2)
        cp = home.run("stat", "--tls=no", "--timeout", "2", url(port),
                      timeout=60)
    finally:
        for c in fill:
            c.close()
        lsn.close()
    assert cp.returncode == 2, cp.stderr
    err = cp.stderr.decode()
    assert "connect: no answer within 2 s" in err, err


def test_slow_greeting_gets_one_early_capa(home):
    """The probe for implicit-TLS ports (a CAPA sent when no greeting came
    within 2 s) does not disturb a POP3 server that is merely slow."""
    srv = FakeServer(fake_pop3(fake_msgs(2), greeting_delay=3))
    try:
        cp = home.run("stat", "--tls=no", url(srv.port), timeout=60)
    finally:
        srv.close()
    assert cp.returncode == 0, cp.stderr
    assert cp.stdout.startswith(b"2 messages")
    assert srv.received.count(b"CAPA") == 1, srv.received


def test_server_that_stops_talking_times_out(home):
    def silent(srv, conn, rf):
        conn.sendall(b"+OK hi\r\n")
        rf.readline()
        time.sleep(5)

    srv = FakeServer(silent)
    try:
        t0 = time.monotonic()
        cp = home.run("stat", "--tls=no", "--timeout", "1", url(srv.port),
                      timeout=30)
        assert time.monotonic() - t0 < 4
    finally:
        srv.close()
    assert cp.returncode == 2, cp.stderr
    assert "timed out" in cp.stderr.decode()


@pytest.mark.skipif(shutil.which("script") is None, reason="no script(1)")
def test_progress_bar_on_a_terminal_and_quiet_in_scripts(home, mailroot,
                                                         postinod):
    msgs = seed_messages()
    host, port = seeded("postinod", mailroot, postinod, None, msgs)
    # On a terminal (script(1) gives postino a pty): a progress line.
    cmd = " ".join(shlex.quote(a) for a in [
        POSTINO, "fetch", "--tls=no", "--keep", "--maildir", home.maildir,
        url(port, host)])
    cp = subprocess.run(["script", "-qec", cmd, "/dev/null"],
                        stdin=subprocess.DEVNULL, capture_output=True,
                        env=home.env(), timeout=TIMEOUT)
    assert cp.returncode == 0, cp
    assert_no_sanitizer(cp.stdout)
    n = len(msgs)
    assert re.search(rb"postino: \[#{20}\] %d/%d messages" % (n, n),
                     cp.stdout), cp.stdout[-500:]
    # In a script (stderr not a terminal): nothing at all on success.
    shutil.rmtree(home.state)
    shutil.rmtree(home.maildir)
    cp = home.run("fetch", "--tls=no", "--keep", "--maildir", home.maildir,
                  url(port, host))
    assert cp.returncode == 0 and cp.stderr == b"" and cp.stdout == b"", cp
