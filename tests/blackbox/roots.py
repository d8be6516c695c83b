"""Fresh Debian 12 roots for the packaging tests (tests/root/fresh-root.sh):
a copy of a cached `debootstrap --variant=minbase bookworm` (+ git, make),
with /proc, /dev and apt's shared archive mounted while a test uses it.
Cold (no cache): debootstrap, about a minute with a near mirror; warm: a
tar extraction, a few seconds."""
import os
import shutil
import subprocess

import pytest

from conftest import REPO, IS_ROOT

SCRIPT = os.path.join(REPO, "tests", "root", "fresh-root.sh")
ROOTS = os.path.join(REPO, "build", "roots")

needs_root = pytest.mark.skipif(not IS_ROOT, reason="chroot needs root")


class Root:
    def __init__(self, name):
        # One per test run: two runs never share (or remove) a root.
        self.path = os.path.join(ROOTS, "%s-%d" % (name, os.getpid()))
        os.makedirs(ROOTS, exist_ok=True)
        self.sh("new")
        self.sh("enter")

    def sh(self, what, timeout=900):
        r = subprocess.run(["sh", SCRIPT, what, self.path],
                           capture_output=True, text=True, timeout=timeout)
        assert r.returncode == 0, "fresh-root.sh %s: %s" % (what, r.stderr)

    def __truediv__(self, rel):
        return os.path.join(self.path, rel.lstrip("/"))

    def run(self, cmd, timeout=600, check=True, env=None, **kw):
        """Run the shell command cmd inside the root; CompletedProcess."""
        e = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:"
                     "/sbin:/bin", "HOME": "/root", "LANG": "C.UTF-8",
             "DEBIAN_FRONTEND": "noninteractive"}
        e.update(env or {})
        r = subprocess.run(["chroot", self.path, "/bin/sh", "-c", cmd],
                           capture_output=True, text=True, timeout=timeout,
                           env=e, **kw)
        if check:
            assert r.returncode == 0, "%s:\n%s%s" % (cmd, r.stdout[-3000:],
                                                     r.stderr[-3000:])
        return r

    def files(self):
        """Every path in the root but the caches, logs and state that any
        package operation changes: what a purge must leave as it found."""
        skip = ("/proc", "/dev", "/sys", "/run", "/tmp", "/var/cache",
                "/var/lib/apt", "/var/lib/dpkg", "/var/log", "/root",
                "/var/tmp", "/srv", "/home")
        out = set()
        for top, dirs, names in os.walk(self.path):
            rel = "/" + os.path.relpath(top, self.path).lstrip(".")
            rel = rel.rstrip("/") or "/"
            if rel.startswith(skip):
                dirs[:] = []
                continue
            for n in names + dirs:
                out.add(os.path.join(rel, n))
        return out

    def close(self):
        self.sh("leave")
        out = subprocess.run(["grep", " %s/" % self.path, "/proc/self/mounts"],
                             capture_output=True, text=True).stdout
        assert out == "", "still mounted: " + out
        shutil.rmtree(self.path)
