"""`make deb` (debian/, debhelper), installed into a brand-new Debian 12
root: it creates the login user, enables the service and marks the
configuration a conffile; postinod started there exactly as the unit's
ExecStart (systemd does not run in a chroot: its RuntimeDirectory and
NOTIFY_SOCKET are made by hand) serves a POP3 login on loopback; an
upgrade keeps the administrator's configuration; a purge leaves nothing.

Timing on the 2-core CI machine: `make deb` about 15 s; the root from the
cache a few seconds; the first run also pays debootstrap and the package
downloads (tests/blackbox/roots.py)."""
import glob
import os
import poplib
import re
import shutil
import signal
import socket
import subprocess
import time

import pytest

from conftest import REPO
from roots import Root, needs_root

PASS = "secret"
MSG = b"From: a@example.org\nSubject: hi\n\nhello\n"


def version():
    with open(os.path.join(REPO, "src/lib/version.h")) as f:
        return re.search(r'POSTINO_VERSION\s+"([^"]+)"', f.read()).group(1)


@pytest.fixture(scope="module")
def debs():
    env = dict(os.environ)
    env.pop("MAKEFLAGS", None)
    env.pop("MAKELEVEL", None)
    r = subprocess.run(["make", "--no-print-directory", "-C", REPO, "deb"],
                       capture_output=True, text=True, timeout=900, env=env)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    out = {}
    for p in glob.glob(os.path.join(REPO, "build/deb/*_%s_*.deb" % version())):
        name = os.path.basename(p).split("_")[0]
        if not name.endswith("-dbgsym"):
            out[name] = p
    assert set(out) == {"postinod", "postino"}, out
    return out


def test_postinod_package_carries_the_manual_pages(debs):
    r = subprocess.run(["dpkg-deb", "-c", debs["postinod"]],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    for page in ("man8/postinod.8.gz", "man8/postino-deliver.8.gz",
                 "man5/postinod.conf.5.gz", "man1/postino-passwd.1.gz"):
        assert "/usr/share/man/" + page in r.stdout, page


def test_lintian_is_clean(debs):
    r = subprocess.run(["lintian", "--fail-on", "error,warning",
                        # doc/postino.1 is packed only when doc/ has it.
                        "--suppress-tags", "no-manual-page",
                        debs["postinod"], debs["postino"]],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr


def bump(deb, tmp_path, new_version):
    """The same package as version new_version: an upgrade to test."""
    d = tmp_path / "repack"
    subprocess.run(["dpkg-deb", "-R", deb, str(d)], check=True, timeout=60)
    ctl = (d / "DEBIAN" / "control").read_text()
    (d / "DEBIAN" / "control").write_text(
        re.sub(r"^Version: .*$", "Version: " + new_version, ctl, flags=re.M))
    out = tmp_path / ("postinod_%s_amd64.deb" % new_version)
    subprocess.run(["dpkg-deb", "-b", str(d), str(out)], check=True,
                   capture_output=True, timeout=60)
    return str(out)


def start_as_the_unit(root, notify):
    """ExecStart of the installed unit, as systemd would run it."""
    with open(root / "lib/systemd/system/postinod.service") as f:
        unit = f.read()
    cmd = re.search(r"^ExecStart=(.*)$", unit, re.M).group(1).split()
    assert re.search(r"^RuntimeDirectory=postino$", unit, re.M)
    # Its capabilities and NoNewPrivileges, as systemd would set them.
    caps = re.search(r"^CapabilityBoundingSet=(.*)$", unit, re.M).group(1)
    assert re.search(r"^NoNewPrivileges=yes$", unit, re.M)
    cmd = ["setpriv", "--bounding-set", "-all," + ",".join(
        "+" + c[len("CAP_"):].lower() for c in caps.split()),
        "--no-new-privs"] + cmd
    os.makedirs(root / "run/postino", mode=0o755, exist_ok=True)
    return subprocess.Popen(
        ["chroot", root.path] + cmd, stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
             "NOTIFY_SOCKET": "/run/notify"},
        start_new_session=True)


@needs_root
def test_package_installs_serves_upgrades_and_purges(debs, tmp_path):
    root = Root("deb")
    proc = None
    try:
        for name, p in debs.items():
            shutil.copy(p, root / "tmp")
        # What the packages depend on stays after a purge, as it should:
        # install it first, then compare the root with that.
        deps = ", ".join(root.run("dpkg-deb -f /tmp/%s Depends" %
                                  os.path.basename(p)).stdout.strip()
                         for p in debs.values())
        root.run("apt-get satisfy -y -qq --no-install-recommends '%s'" % deps)
        before = root.files()
        root.run("apt-get install -y -qq --no-install-recommends "
                 "/tmp/%s /tmp/%s" % tuple(os.path.basename(debs[n])
                                            for n in ("postinod", "postino")))
        # Users, enablement, conffile.
        for user in ("postino", "postino-auth"):
            assert root.run("getent passwd " + user).stdout.split(":")[6] \
                .strip() == "/usr/sbin/nologin"
        assert os.path.islink(root / "etc/systemd/system/"
                              "multi-user.target.wants/postinod.service")
        conffiles = root.run("dpkg-query -W -f='${Conffiles}' postinod").stdout
        assert "/etc/postino/postinod.conf" in conffiles
        assert root.run("postinod --version").stdout == \
            "postinod %s\n" % version()
        assert root.run("man -w postinod 2>/dev/null || "
                        "test -e /usr/share/man/man8/postinod.8.gz",
                        check=False).returncode == 0

        # The administrator's part: an account, its Maildir, the config.
        root.run("useradd -m alice && mkdir -p /home/alice/Maildir/new "
                 "/home/alice/Maildir/cur /home/alice/Maildir/tmp && "
                 "printf 'From: a@example.org\\nSubject: hi\\n\\nhello\\n' "
                 "> /home/alice/Maildir/new/1.M1P1.host && "
                 "chown -R alice: /home/alice/Maildir && mkdir -p /srv/pop && "
                 "printf '%s\\n' | postino-passwd -u alice | "
                 "sed \"s/::::::/:$(id -u alice):$(id -g alice)::"
                 "\\/home\\/alice::/\" > /srv/pop/passwd && "
                 "chgrp postino-auth /srv/pop/passwd && "
                 "chmod 640 /srv/pop/passwd" % PASS)
        with open(root / "etc/postino/postinod.conf", "a") as f:
            f.write("listen = 127.0.0.1:0\nready_file = /run/postino/ready\n"
                    "passwd_file = /srv/pop/passwd\n")
        notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        notify.bind(root / "run/notify")
        notify.settimeout(30)
        proc = start_as_the_unit(root, notify)
        assert notify.recv(100) == b"READY=1"
        with open(root / "run/postino/ready") as f:
            port = int(f.readline().strip().rsplit(":", 1)[1])
        p = poplib.POP3("127.0.0.1", port, timeout=10)
        p.user("alice")
        p.pass_(PASS)
        assert p.stat() == (1, len(MSG) + MSG.count(b"\n"))
        assert b"\r\n".join(p.retr(1)[1]) + b"\r\n" == \
            MSG.replace(b"\n", b"\r\n")
        p.quit()
        os.killpg(proc.pid, signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
        log = proc.stdout.read().decode(errors="replace")
        assert "event=disconnect reason=quit" in log, log
        assert "mode=unprivileged" not in log, log
        proc = None
        notify.close()
        os.unlink(root / "run/notify")

        # Upgrade: the administrator's configuration stays.
        new = bump(debs["postinod"], tmp_path, version() + "+1")
        shutil.copy(new, root / "tmp")
        root.run("apt-get install -y -qq /tmp/%s" % os.path.basename(new))
        assert root.run("dpkg-query -W -f='${Version}' postinod").stdout == \
            version() + "+1"
        with open(root / "etc/postino/postinod.conf") as f:
            assert "passwd_file = /srv/pop/passwd" in f.read()
        assert os.path.islink(root / "etc/systemd/system/"
                              "multi-user.target.wants/postinod.service")

        # Purge: nothing of the packages is left.
        root.run("userdel -r alice 2>/dev/null; "
                 "apt-get purge -y -qq postinod postino")
        for user in ("postino", "postino-auth"):
            for db in ("passwd", "group"):
                assert root.run("getent %s %s" % (db, user),
                                check=False).returncode == 2, (db, user)
        # shadow's backups of the files useradd and userdel rewrote.
        backups = {"/etc/passwd-", "/etc/group-", "/etc/shadow-",
                   "/etc/gshadow-", "/etc/subuid-", "/etc/subgid-"}
        left = sorted(root.files() - before - backups)
        assert left == [], left
        gone = sorted(before - root.files())
        assert gone == [], gone
    finally:
        if proc is not None and proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        root.close()
