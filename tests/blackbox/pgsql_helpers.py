"""A real PostgreSQL for the tests: initdb into a temporary directory as an
unprivileged user (``postgres`` if it exists, else nobody, when run as
root), on a free loopback port with its socket in that directory, started
once per test session and removed after. Password authentication over TCP
(scram-sha-256), trust over the socket for the test's own psql.

``pg`` (session fixture) -> PG:
    .port, .password, .password_file (0600, root's: postinod reads it)
    .conninfo                    "host=127.0.0.1 port=... dbname=postgres user=postgres"
    .psql(sql) -> str            run SQL, output unaligned, tuples only
    .stop() ; .start()           pg_ctl stop -m fast / start -w (bounded)
"""

import glob
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile

import pytest

IS_ROOT = os.geteuid() == 0


def pg_bindir():
    dirs = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return os.path.dirname(dirs[-1]) if dirs else None


def free_port():
    """A loopback TCP port free a moment ago, for a program given a port
    (conftest.free_port: pgsql_helpers is imported first)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PG:
    def __init__(self):
        self.bin = pg_bindir()
        self.top = tempfile.mkdtemp(prefix="postino-pg-")
        self.data = os.path.join(self.top, "data")
        self.sock = os.path.join(self.top, "sock")
        self.user = None
        if IS_ROOT:
            for name in ("postgres", "nobody"):
                try:
                    self.user = pwd.getpwnam(name)
                    break
                except KeyError:
                    pass
        os.chmod(self.top, 0o755)
        os.mkdir(self.sock, 0o755)
        if self.user is not None:
            os.chown(self.sock, self.user.pw_uid, self.user.pw_gid)
            # initdb makes data itself; its parent must be writable.
            os.chown(self.top, self.user.pw_uid, self.user.pw_gid)
        self.password = secrets.token_hex(12)
        pw_initdb = os.path.join(self.sock, "pw")
        with open(pw_initdb, "w") as f:
            f.write(self.password + "\n")
        if self.user is not None:
            os.chown(pw_initdb, self.user.pw_uid, self.user.pw_gid)
        self._run(["initdb", "-D", self.data, "-U", "postgres", "-E", "UTF8",
                   "--no-locale", "--auth-local=trust",
                   "--auth-host=scram-sha-256", "--pwfile", pw_initdb])
        os.unlink(pw_initdb)
        # Root's file, as a real deployment would have it.
        self.password_file = os.path.join(self.top, "pgsql-password")
        with open(self.password_file, "w") as f:
            f.write(self.password + "\n")
        os.chmod(self.password_file, 0o600)
        self.port = free_port()
        self.conninfo = ("host=127.0.0.1 port=%d dbname=postgres "
                         "user=postgres" % self.port)
        self.start()

    def _run(self, argv, timeout=120, check=True):
        argv = [os.path.join(self.bin, argv[0])] + argv[1:]
        kw = {}
        if self.user is not None:
            kw = dict(user=self.user.pw_uid, group=self.user.pw_gid,
                      extra_groups=[])
        r = subprocess.run(argv, capture_output=True, timeout=timeout,
                           cwd=self.top, **kw)
        if check and r.returncode != 0:
            raise AssertionError("%s: %s%s" % (argv[0], r.stdout.decode(),
                                               r.stderr.decode()))
        return r

    def start(self):
        self._run(["pg_ctl", "-D", self.data, "-w", "-t", "60", "-l",
                   os.path.join(self.data, "log"), "-o",
                   "-p %d -k %s -c listen_addresses=127.0.0.1 "
                   "-c fsync=off" % (self.port, self.sock), "start"])

    def stop(self):
        self._run(["pg_ctl", "-D", self.data, "-w", "-t", "60", "-m", "fast",
                   "stop"])

    def psql(self, sql):
        r = self._run(["psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",
                       "-h", self.sock, "-p", str(self.port), "-U",
                       "postgres", "-d", "postgres", "-c", sql])
        return r.stdout.decode()

    def cleanup(self):
        self._run(["pg_ctl", "-D", self.data, "-w", "-t", "60", "-m",
                   "immediate", "stop"], check=False)
        shutil.rmtree(self.top, ignore_errors=True)


@pytest.fixture(scope="session")
def pg():
    if pg_bindir() is None:
        pytest.skip("PostgreSQL not installed (tests/deps.sh installs it)")
    p = PG()
    try:
        yield p
    finally:
        p.cleanup()
