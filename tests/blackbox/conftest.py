"""Black-box test harness: the real postinod against a temporary mail root.

Standard library only (STYLE.md sec. 14). Every socket has a timeout, every
wait loop a bound; loopback only. The binaries come from $POSTINO_BUILD
(default: <repo>/build), e.g. POSTINO_BUILD=/work/main/build/asan.

Fixtures (a stable API; test_clients*.py imports them too):

``mailroot`` -> MailRoot, a fresh temporary directory (mode 0755 under /tmp,
so the unprivileged mail user can traverse it):
    .path                         the root directory
    .passwd_file                  the passwd-file postinod reads
    .chroot                       an empty directory for login_chroot
    .add_user(name, password, scheme="SHA512-CRYPT") -> name
                                  hashes with postino-passwd, appends
                                  ``name:{SCHEME}hash:::: home::`` (home =
                                  <root>/home/<name>), creates Maildir/
    .home(user)                   <root>/home/<user>
    .maildir(user)                <home>/Maildir (new/, cur/, tmp/ exist)
    .deliver_maildir(user, data: bytes, name=None) -> path
                                  writes tmp/<name>, renames into new/;
                                  names are unique when name is None
    .maildir_files(user) -> {base name (before ':'): (path, bytes)}
                                  every message in new/ and cur/
    .mbox(user)                   <root>/mail/<user> (use mailbox =
                                  MailRoot.MBOX_SPEC, i.e. mbox:<root>/mail/%u)
    .mbox_spec                    "mbox:<root>/mail/%u"
    .write_mbox(user, data: bytes)   replace the user's mbox file
    .append_mbox(user, data: bytes)  append to it (an MTA delivering)
    .read_mbox(user) -> bytes
  When running as root every file is chowned to nobody:nogroup, the mail
  user the servers are configured with.

``postinod`` -> a factory; ``srv = postinod(mailbox="maildir:~/Maildir",
**config)`` writes a config file, starts ``postinod -f -c FILE`` with stderr
to a log file and waits (bounded) for the ready file (written once every
login, lmtp and auth worker serves, i.e. has dropped root). Keyword arguments
become config keys (True/False -> yes/no, a list -> repeated lines,
``listen=[...]`` replaces the default listeners 127.0.0.1:0 and [::1]:0
when IPv6 is available). Test defaults: auth_fail_delay_ms = 50,
login_workers = 2; as root also mail_user = nobody, login_user = postino
(LOGIN_USER, a system user made if missing: the login role may not share
a uid with mail), auth_user = postino-auth (AUTH_USER, made the same
way), login_chroot = mailroot.chroot. ``postinod(start=False, ...)`` only writes
the config and returns the Server (call .start()). The Server object:
    .host ("127.0.0.1"), .port, .port6 (None without IPv6), .port_tls,
    .port6_tls (implicit-TLS listeners, "tls ADDR" lines of the ready
    file), .addrs (all lines of the ready file), .conf, .proc (Popen)
    .log() -> str                 stderr so far
    .wait_log(text, timeout=5) -> str   waits until text is in the log
    .pop3(timeout=10) -> poplib.POP3 connected to host:port
    .login(user, password) -> poplib.POP3 after USER/PASS
    .raw(timeout=10, ipv6=False, rcvbuf=None) -> Raw (below), connected
    .pids(role) -> [pid]          processes started with ``-R role``
    .mail_worker_pid(timeout=5) -> pid of a mail worker (after a login)
    .stop(timeout=15) -> exit status; SIGTERM, bounded wait, asserts 0
    .kill9() ; .start()
  Teardown always stops every server (SIGKILL to its process group if
  SIGTERM did not work) and fails the test when the log contains
  "AddressSanitizer", "LeakSanitizer", "runtime error:" or "seccomp
  refused" (a role's filter killed it over a call it needs).

Raw (a raw socket client):
    .send(data: bytes)
    .line() -> bytes              one line without CRLF (bare LF accepted);
                                  raises Closed (an EOFError) at EOF
    .lines_until_dot() -> [bytes] lines of a multi-line reply, as sent
                                  (still byte-stuffed), without the "."
    .raw_until_dot() -> bytes     the exact octets up to and including
                                  the terminating ".\\r\\n"
    .recv_exact(n) -> bytes
    .expect(prefix: bytes) -> bytes    reads a line, asserts the prefix
    .closed_within(seconds) -> bool    True when the peer closes in time
                                  (any data before the close is dropped)
    .cmd(line: bytes) -> bytes    send line + CRLF, return the reply line
    .login(user, password) -> bytes    greeting must have been read
    .close()

``certs`` -> {"dir", "ca", "cert", "key"}: a test CA (ca.pem) and a server
certificate for localhost, 127.0.0.1 and ::1 signed by it, made with the
openssl command; ``make_cert(dir, name, cn=...)`` makes another one.

``pop3_raw`` -> Raw connected to a default maildir server (user alice,
password "secret"), greeting not yet read.

``store`` -> one of the mail stores in stores.py, parametrized: a test
that takes it runs against maildir, mbox and pgsql (``postinod(
**store.config)``, ``store.deliver(user, data)``, ``store.messages(user)``).
``pg`` (pgsql_helpers.py) is the one PostgreSQL of the test session.
"""

import hashlib
import itertools
import os
import poplib
import pwd
import grp
import shutil
import signal
import socket
import subprocess
import tempfile
import time

import pytest

import stores
# pg: a fixture, one per session; free_port: every module's, from here.
from pgsql_helpers import free_port, pg  # noqa: F401

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.environ.get("POSTINO_BUILD", os.path.join(REPO, "build"))
POSTINOD = os.path.join(BUILD, "postinod")
POSTINO_PASSWD = os.path.join(BUILD, "postino-passwd")

IS_ROOT = os.geteuid() == 0
SANITIZER_MARKS = ("AddressSanitizer", "LeakSanitizer", "runtime error:")

# The login role's own user: postinod refuses a login_user that also reads
# mail (finding 12 of issue 10), so as root the tests need one besides
# nobody. Made once, idempotently, like `useradd --system postino` in
# README.md.
LOGIN_USER = "postino"
# The auth role's own user (issue 10, finding 8), made the same way.
AUTH_USER = "postino-auth"


def ensure_login_user(name=LOGIN_USER):
    try:
        return pwd.getpwnam(name)
    except KeyError:
        pass
    subprocess.run(["useradd", "--system", "--no-create-home", "--home-dir",
                    "/nonexistent", "--shell", "/usr/sbin/nologin",
                    name], capture_output=True, timeout=60)
    # Another test run may have made it meanwhile: only its presence counts.
    return pwd.getpwnam(name)


if IS_ROOT:
    LOGIN_PW = ensure_login_user()
    AUTH_PW = ensure_login_user(AUTH_USER)
    MAIL_UID = pwd.getpwnam("nobody").pw_uid
    try:
        MAIL_GID = grp.getgrnam("nogroup").gr_gid
    except KeyError:
        MAIL_GID = pwd.getpwnam("nobody").pw_gid
else:
    MAIL_UID, MAIL_GID = os.getuid(), os.getgid()


def ipv6_available():
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


HAVE_IPV6 = ipv6_available()

_hash_cache = {}


def make_hash(password, scheme="SHA512-CRYPT"):
    """A passwd-file secret made by postino-passwd (cached per input)."""
    key = (password, scheme)
    if key not in _hash_cache:
        args = [POSTINO_PASSWD]
        if scheme is not None:
            args += ["-s", scheme]
        r = subprocess.run(args, input=password.encode() + b"\n",
                           capture_output=True, timeout=30)
        assert r.returncode == 0, r.stderr
        out = r.stdout.decode().strip()
        assert out.startswith("{"), out
        _hash_cache[key] = out
    return _hash_cache[key]


def give_to_mail_user(path):
    if IS_ROOT:
        os.chown(path, MAIL_UID, MAIL_GID)


def chown_tree(path):
    if not IS_ROOT:
        return
    for dirpath, dirnames, filenames in os.walk(path):
        os.chown(dirpath, MAIL_UID, MAIL_GID)
        for n in filenames:
            os.chown(os.path.join(dirpath, n), MAIL_UID, MAIL_GID)


class MailRoot:
    _seq = itertools.count()

    def __init__(self):
        self.path = tempfile.mkdtemp(prefix="postino-bb-", dir="/tmp")
        os.chmod(self.path, 0o755)
        self.passwd_file = os.path.join(self.path, "passwd")
        self.chroot = os.path.join(self.path, "empty")
        os.mkdir(self.chroot, 0o755)
        os.mkdir(os.path.join(self.path, "home"), 0o755)
        self.mail_dir = os.path.join(self.path, "mail")
        os.mkdir(self.mail_dir, 0o755)
        give_to_mail_user(self.mail_dir)
        self.mbox_spec = "mbox:" + self.mail_dir + "/%u"
        self.users = {}
        with open(self.passwd_file, "w"):
            pass
        os.chmod(self.passwd_file, 0o644)

    # -- users -------------------------------------------------------------
    def add_user(self, name, password, scheme="SHA512-CRYPT"):
        secret = make_hash(password, scheme)
        home = self.home(name)
        os.makedirs(home, exist_ok=True)
        for sub in ("new", "cur", "tmp"):
            os.makedirs(os.path.join(home, "Maildir", sub), exist_ok=True)
        chown_tree(home)
        with open(self.passwd_file, "a") as f:
            f.write("%s:%s::::%s::\n" % (name, secret, home))
        self.users[name] = password
        return name

    def home(self, user):
        return os.path.join(self.path, "home", user)

    # -- Maildir -----------------------------------------------------------
    def maildir(self, user):
        return os.path.join(self.home(user), "Maildir")

    def deliver_maildir(self, user, data, name=None):
        md = self.maildir(user)
        if name is None:
            # Sorted by time, then name: delivery order is message order.
            name = "%d.Q%08dP%d.postino-test" % (
                int(time.time()), next(self._seq), os.getpid())
        tmp = os.path.join(md, "tmp", name)
        with open(tmp, "wb") as f:
            f.write(data)
        give_to_mail_user(tmp)
        dst = os.path.join(md, "new", name)
        os.rename(tmp, dst)
        return dst

    def maildir_files(self, user):
        out = {}
        md = self.maildir(user)
        for sub in ("new", "cur"):
            for n in os.listdir(os.path.join(md, sub)):
                p = os.path.join(md, sub, n)
                with open(p, "rb") as f:
                    out[n.split(":", 1)[0]] = (p, f.read())
        return out

    # -- mbox --------------------------------------------------------------
    def mbox(self, user):
        return os.path.join(self.mail_dir, user)

    def write_mbox(self, user, data):
        p = self.mbox(user)
        tmp = p + ".test-tmp"
        with open(tmp, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o600)
        give_to_mail_user(tmp)
        os.rename(tmp, p)
        return p

    def append_mbox(self, user, data):
        p = self.mbox(user)
        with open(p, "ab") as f:
            f.write(data)
        give_to_mail_user(p)
        return p

    def read_mbox(self, user):
        with open(self.mbox(user), "rb") as f:
            return f.read()

    def cleanup(self):
        shutil.rmtree(self.path, ignore_errors=True)


class Closed(EOFError):
    pass


class Raw:
    """A client connection; from the address source when given (any of
    127.0.0.0/8 is loopback, so tests play many client networks)."""

    def __init__(self, host, port, timeout=10, family=socket.AF_INET,
                 rcvbuf=None, source=None):
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        if rcvbuf is not None:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(timeout)
        if source is not None:
            self.sock.bind((source, 0))
        self.sock.connect((host, port))
        self.buf = b""
        self.eof = False

    def _fill(self):
        if self.eof:
            raise Closed("connection closed")
        try:
            d = self.sock.recv(65536)
        except ConnectionResetError:
            d = b""
        if not d:
            self.eof = True
            raise Closed("connection closed; unread: %r" % self.buf[:200])
        self.buf += d

    def send(self, data):
        self.sock.sendall(data)

    def line(self):
        while b"\n" not in self.buf:
            self._fill()
        i = self.buf.index(b"\n")
        ln, self.buf = self.buf[:i], self.buf[i + 1:]
        if ln.endswith(b"\r"):
            ln = ln[:-1]
        return ln

    def recv_exact(self, n):
        while len(self.buf) < n:
            self._fill()
        d, self.buf = self.buf[:n], self.buf[n:]
        return d

    def lines_until_dot(self, limit=10000000):
        out = []
        for _ in range(limit):
            ln = self.line()
            if ln == b".":
                return out
            out.append(ln)
        raise AssertionError("no terminating dot")

    def raw_until_dot(self):
        start = 0
        while True:
            if self.buf.startswith(b".\r\n"):
                i = 0
            else:
                i = self.buf.find(b"\r\n.\r\n", start)
                if i >= 0:
                    i += 2
            if i >= 0:
                d, self.buf = self.buf[:i + 3], self.buf[i + 3:]
                return d
            start = max(0, len(self.buf) - 4)
            self._fill()

    def expect(self, prefix):
        ln = self.line()
        assert ln.startswith(prefix), "expected %r, got %r" % (prefix, ln)
        return ln

    def cmd(self, line):
        self.send(line + b"\r\n")
        return self.line()

    def login(self, user, password):
        assert self.cmd(b"USER " + user.encode()).startswith(b"+OK")
        return self.cmd(b"PASS " + password.encode())

    def closed_within(self, seconds):
        deadline = time.monotonic() + seconds
        self.buf = b""
        if self.eof:
            return True
        old = self.sock.gettimeout()
        try:
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self.sock.settimeout(left)
                try:
                    d = self.sock.recv(65536)
                except socket.timeout:
                    return False
                except ConnectionResetError:
                    d = b""
                if not d:
                    self.eof = True
                    return True
        finally:
            self.sock.settimeout(old)

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def _fmt_value(v):
    if v is True:
        return "yes"
    if v is False:
        return "no"
    return str(v)


class Server:
    host = "127.0.0.1"

    def __init__(self, root, mailbox, config):
        self.root = root
        self.n = next(MailRoot._seq)
        self.dir = os.path.join(root.path, "srv%d" % self.n)
        os.mkdir(self.dir, 0o755)
        self.conf = os.path.join(self.dir, "postinod.conf")
        self.ready = os.path.join(self.dir, "ready")
        self.logpath = os.path.join(self.dir, "stderr.log")
        self.proc = None
        self.port = self.port6 = None
        self.addrs = []
        cfg = {
            "passwd_file": root.passwd_file,
            "mailbox": mailbox,
            "ready_file": self.ready,
            "auth_fail_delay_ms": 50,
            "login_workers": 2,
        }
        if IS_ROOT:
            cfg.update(mail_user="nobody", login_user=LOGIN_USER,
                       auth_user=AUTH_USER,
                       login_chroot=root.chroot)
        listen = config.pop("listen", None)
        if listen is None:
            listen = ["127.0.0.1:0"] + (["[::1]:0"] if HAVE_IPV6 else [])
        elif isinstance(listen, str):
            listen = [listen]
        cfg.update(config)
        lines = ["# written by tests/blackbox/conftest.py"]
        lines += ["listen = %s" % l for l in listen]
        for k, v in cfg.items():
            if isinstance(v, (list, tuple)):
                lines += ["%s = %s" % (k, _fmt_value(x)) for x in v]
            elif v is not None:
                lines.append("%s = %s" % (k, _fmt_value(v)))
        with open(self.conf, "w") as f:
            f.write("\n".join(lines) + "\n")
        os.chmod(self.conf, 0o644)
        self.listen = listen

    def start(self, timeout=20):
        assert self.proc is None or self.proc.poll() is not None
        if os.path.exists(self.ready):
            os.unlink(self.ready)
        env = dict(os.environ)
        env.setdefault("ASAN_OPTIONS", "detect_leaks=1")
        env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1")
        self._log = open(self.logpath, "ab")
        self.proc = subprocess.Popen([POSTINOD, "-f", "-c", self.conf],
                                     stdin=subprocess.DEVNULL,
                                     stdout=self._log, stderr=self._log,
                                     start_new_session=True, env=env)
        deadline = time.monotonic() + timeout
        while not os.path.exists(self.ready):
            if self.proc.poll() is not None:
                raise AssertionError("postinod exited with %s before ready:\n%s"
                                     % (self.proc.returncode, self.log()))
            if time.monotonic() > deadline:
                raise AssertionError("postinod not ready in %ss:\n%s"
                                     % (timeout, self.log()))
            time.sleep(0.02)
        with open(self.ready) as f:
            self.addrs = [l.strip() for l in f if l.strip()]
        self.port = self.port6 = self.port_tls = self.port6_tls = None
        for a in self.addrs:
            tls = a.startswith("tls ")
            host, _, port = a[4 if tls else 0:].rpartition(":")
            attr = {("127.0.0.1", False): "port", ("[::1]", False): "port6",
                    ("127.0.0.1", True): "port_tls",
                    ("[::1]", True): "port6_tls"}.get((host, tls))
            if attr is not None and getattr(self, attr) is None:
                setattr(self, attr, int(port))
        return self

    def log(self):
        with open(self.logpath, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def wait_log(self, text, timeout=5):
        deadline = time.monotonic() + timeout
        while True:
            s = self.log()
            if text in s:
                return s
            if time.monotonic() > deadline:
                raise AssertionError("%r not logged in %ss:\n%s"
                                     % (text, timeout, s[-4000:]))
            time.sleep(0.02)

    def pop3(self, timeout=10):
        return poplib.POP3(self.host, self.port, timeout=timeout)

    def login(self, user, password, timeout=10):
        p = self.pop3(timeout)
        p.user(user)
        p.pass_(password)
        return p

    def raw(self, timeout=10, ipv6=False, rcvbuf=None):
        if ipv6:
            assert self.port6 is not None
            return Raw("::1", self.port6, timeout, socket.AF_INET6, rcvbuf)
        return Raw(self.host, self.port, timeout, socket.AF_INET, rcvbuf)

    def pids(self, role):
        out = []
        for d in os.listdir("/proc"):
            if not d.isdigit():
                continue
            try:
                with open("/proc/%s/cmdline" % d, "rb") as f:
                    argv = f.read().split(b"\0")
            except OSError:
                continue
            if self.conf.encode() not in argv or b"-R" not in argv:
                continue
            i = argv.index(b"-R")
            if i + 1 < len(argv) and argv[i + 1] == role.encode():
                # skip zombies
                try:
                    with open("/proc/%s/stat" % d) as f:
                        if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                            continue
                except OSError:
                    continue
                out.append(int(d))
        return out

    def mail_worker_pid(self, timeout=5):
        deadline = time.monotonic() + timeout
        while True:
            p = self.pids("mail")
            if p:
                return p[0]
            if time.monotonic() > deadline:
                raise AssertionError("no mail worker")
            time.sleep(0.02)

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout=15):
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self._killgroup()
                self.proc.wait(5)
                raise AssertionError("postinod did not stop on SIGTERM in %ss"
                                     % timeout)
        self._reap_group()
        self._log.close()
        rc = self.proc.returncode
        assert rc == 0, "postinod exited with %s:\n%s" % (rc, self.log()[-4000:])
        return rc

    def kill9(self):
        self._killgroup()
        self.proc.wait(10)
        self._log.close()

    def _killgroup(self):
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass

    def _reap_group(self, timeout=10):
        """Children must be gone after the master exits; kill stragglers."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not any(self.pids(r) for r in ("auth", "login", "mail",
                                              "lmtp", "deliver")):
                return
            time.sleep(0.05)
        self._killgroup()

    def sanitizer_report(self):
        log = self.log()
        # A role's seccomp filter refused a call it makes (sandbox.c).
        for mark in SANITIZER_MARKS + ("seccomp refused",):
            if mark in log:
                i = log.index(mark)
                return log[max(0, i - 500):i + 3000]
        return None


@pytest.fixture
def mailroot():
    root = MailRoot()
    yield root
    root.cleanup()


@pytest.fixture
def postinod(mailroot):
    servers = []

    def factory(mailbox="maildir:~/Maildir", start=True, **config):
        srv = Server(mailroot, mailbox, dict(config))
        servers.append(srv)
        if start:
            srv.start()
        return srv

    yield factory
    problems = []
    for srv in servers:
        if srv.proc is None:
            continue
        try:
            if srv.proc.poll() is None:
                srv.stop()
        except AssertionError as e:
            problems.append(str(e))
        finally:
            if srv.proc.poll() is None:
                srv.kill9()
            srv._killgroup()
        rep = srv.sanitizer_report()
        if rep:
            problems.append("sanitizer report in postinod stderr:\n" + rep)
    if problems:
        pytest.fail("\n\n".join(problems), pytrace=False)


@pytest.fixture(params=["maildir", "mbox", "pgsql"])
def store(request, mailroot):
    if request.param == "maildir":
        yield stores.MaildirStore(mailroot)
    elif request.param == "mbox":
        yield stores.MboxStore(mailroot)
    else:
        st = stores.PgsqlStore(request.getfixturevalue("pg"))
        yield st
        st.cleanup()


@pytest.fixture
def pop3_raw(mailroot, postinod):
    mailroot.add_user("alice", "secret")
    srv = postinod()
    r = srv.raw()
    yield r
    r.close()


def greeted(srv):
    """A Raw to srv that has read the greeting."""
    r = srv.raw()
    r.expect(b"+OK")
    return r


def apop_digest(greeting, secret):
    """MD5 hex of the <timestamp> in a greeting line plus the secret."""
    if isinstance(greeting, bytes):
        greeting = greeting.decode()
    ts = greeting[greeting.index("<"):greeting.rindex(">") + 1]
    return hashlib.md5((ts + secret).encode()).hexdigest()


def pop3_size(p, n):
    """The octet count poplib's retr() reports for message n."""
    return p.retr(n)[2]


def crlf(data):
    """The message as POP3 defines it: every line ends in CRLF (unstuffed)."""
    if not data:
        return b""
    lines = data.split(b"\n")
    if lines[-1] == b"":
        lines.pop()
    return b"".join((l[:-1] if l.endswith(b"\r") else l) + b"\r\n"
                    for l in lines)


def login_retry(srv, user, password, seconds=5, allowed=b"-ERR"):
    """Log in, retrying while a replied -ERR starts with `allowed` (an
    ended or killed session may hold the lock a moment); a Raw after
    "+OK Logged in", or AssertionError with the last reply and the log."""
    deadline = time.monotonic() + seconds
    last = None
    while time.monotonic() < deadline:
        try:
            r = srv.raw()
            r.expect(b"+OK")
            last = r.login(user, password)
            if last.startswith(b"+OK Logged in"):
                return r
            assert last.startswith(allowed), last
            r.close()
        except (OSError, EOFError) as e:
            last = repr(e)
        time.sleep(0.05)
    raise AssertionError("no login in %ss: %r\n%s"
                         % (seconds, last, srv.log()[-3000:]))


# -- certificates for TLS tests, made at test time -----------------------------

def openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, timeout=60,
                   stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)


def make_cert(d, name, cn="localhost", ca=("ca.pem", "ca.key")):
    """A key and a certificate for localhost/127.0.0.1/::1 signed by the CA."""
    openssl("req", "-new", "-newkey", "ec", "-pkeyopt",
            "ec_paramgen_curve:prime256v1", "-nodes", "-subj", "/CN=" + cn,
            "-keyout", name + ".key", "-out", name + ".csr", cwd=d)
    with open(os.path.join(d, name + ".ext"), "w") as f:
        f.write("subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1\n")
    openssl("x509", "-req", "-in", name + ".csr", "-CA", ca[0], "-CAkey",
            ca[1], "-CAcreateserial", "-days", "2", "-extfile", name + ".ext",
            "-out", name + ".pem", cwd=d)
    return os.path.join(d, name + ".pem"), os.path.join(d, name + ".key")


@pytest.fixture
def certs(mailroot):
    d = os.path.join(mailroot.path, "certs")
    os.mkdir(d)
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt",
            "ec_paramgen_curve:prime256v1", "-nodes", "-subj", "/CN=Test CA",
            "-days", "2", "-keyout", "ca.key", "-out", "ca.pem", cwd=d)
    cert, key = make_cert(d, "server")
    return {"dir": d, "ca": os.path.join(d, "ca.pem"), "cert": cert,
            "key": key}
