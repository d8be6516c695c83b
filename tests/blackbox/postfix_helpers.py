"""A private Postfix instance for the end-to-end tests: its own main.cf and
master.cf in a temporary directory, its queue there too, SMTP on a free
loopback port, started and stopped by the test (postfix -c DIR)."""

import os
import shutil
import signal
import socket
import subprocess
import time

from conftest import free_port

POSTFIX = "/usr/sbin/postfix"

MASTER_CF = """\
{smtp_addr} inet n - n - - smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
local     unix  -       n       n       -       -       local
virtual   unix  -       n       n       -       -       virtual
lmtp      unix  -       -       n       -       -       lmtp
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
"""


class Postfix:
    def __init__(self, root, extra):
        self.dir = os.path.join(root, "postfix")
        os.makedirs(self.dir)
        os.chmod(self.dir, 0o755)
        self.queue = os.path.join(self.dir, "queue")
        self.data = os.path.join(self.dir, "data")
        self.log = os.path.join(self.dir, "maillog")
        os.makedirs(self.queue, 0o755)
        os.makedirs(self.data, 0o700)
        shutil.chown(self.data, "postfix", "postfix")
        self.port = free_port()
        conf = {
            "compatibility_level": "3.6",
            # postfix-files and friends stay where Debian put them
            "meta_directory": "/etc/postfix",
            "shlib_directory": "/usr/lib/postfix",
            "queue_directory": self.queue,
            "data_directory": self.data,
            "maillog_file": self.log,
            "maillog_file_prefixes": self.dir,
            "inet_interfaces": "loopback-only",
            "inet_protocols": "ipv4",
            "myhostname": "mx.test.example",
            "mydomain": "test.example",
            "mydestination": "",
            "mynetworks": "127.0.0.0/8",
            "relayhost": "",
            "alias_maps": "",
            "alias_database": "",
            "local_recipient_maps": "",
            "smtpd_recipient_restrictions":
                "permit_mynetworks, reject_unauth_destination",
            "smtputf8_enable": "no",
            "biff": "no",
            # one delivery attempt now, then retries soon (tests wait)
            "queue_run_delay": "1s",
            "minimal_backoff_time": "1s",
            "maximal_backoff_time": "2s",
            "lmtp_connection_cache_on_demand": "no",
        }
        conf.update(extra)
        with open(os.path.join(self.dir, "main.cf"), "w") as f:
            for k, v in conf.items():
                f.write("%s = %s\n" % (k, v))
        with open(os.path.join(self.dir, "master.cf"), "w") as f:
            f.write(MASTER_CF.format(smtp_addr="127.0.0.1:%d" % self.port))

    def postfix(self, *args, check=True):
        return subprocess.run([POSTFIX, "-c", self.dir] + list(args),
                              capture_output=True, timeout=60, check=check,
                              stdin=subprocess.DEVNULL)

    def start(self):
        self.postfix("start")
        deadline = time.monotonic() + 20
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), 1):
                    return self
            except OSError:
                if time.monotonic() > deadline:
                    raise AssertionError("postfix did not start:\n" +
                                         self.logtext())
                time.sleep(0.1)

    def stop(self):
        try:
            with open(os.path.join(self.queue, "pid", "master.pid")) as f:
                pid = int(f.read().strip())
        except (OSError, ValueError):
            pid = None
        self.postfix("stop", check=False)
        # postfix stop returns before the master is gone (its pid file stays)
        deadline = time.monotonic() + 10
        while pid is not None and time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.05)
        if pid is not None:
            os.kill(pid, signal.SIGKILL)

    def flush(self):
        self.postfix("flush", check=False)

    def logtext(self):
        try:
            with open(self.log, errors="replace") as f:
                return f.read()
        except OSError:
            return ""


def postfix_usable():
    return os.geteuid() == 0 and os.path.exists(POSTFIX) and \
        os.path.isdir("/usr/lib/postfix/sbin")
