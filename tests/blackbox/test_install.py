"""`make install` and the systemd pieces (issue 14): FHS paths under
DESTDIR, units that systemd-analyze accepts, sysusers.d and tmpfiles.d
entries that systemd's own tools apply to a root, and the Type=notify
readiness datagram (sd_notify's protocol, written without libsystemd).
No systemd runs here; tests/blackbox/test_deb.py starts the unit's
ExecStart in a fresh Debian root."""
import os
import re
import shutil
import socket
import subprocess

import pytest

from conftest import REPO, BUILD

USER, PASS = "alice", "secret"


def make_install(tmp_path, *args):
    dest = tmp_path / "root"
    build = os.path.relpath(BUILD, REPO)
    env = dict(os.environ)
    env.pop("MAKEFLAGS", None)
    env.pop("MAKELEVEL", None)
    san = ["SAN=1"] if build.endswith("asan") else []
    r = subprocess.run(["make", "--no-print-directory", "-C", REPO,
                        "install", "DESTDIR=%s" % dest] + san + list(args),
                       capture_output=True, text=True, timeout=600, env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    return dest, r.stdout


def test_install_puts_files_in_fhs_places(tmp_path):
    dest, _ = make_install(tmp_path, "PREFIX=/usr")
    want = {
        "usr/sbin/postinod": 0o755, "usr/bin/postino-passwd": 0o755,
        "usr/sbin/postino-deliver": 0o755,
        "usr/bin/postino": 0o755,
        "usr/share/man/man8/postinod.8": 0o644,
        "usr/share/man/man5/postinod.conf.5": 0o644,
        "usr/share/man/man1/postino-passwd.1": 0o644,
        "etc/postino/postinod.conf": 0o644,
        "usr/lib/systemd/system/postinod.service": 0o644,
        "usr/lib/systemd/user/postino-fetch@.service": 0o644,
        "usr/lib/systemd/user/postino-fetch@.timer": 0o644,
        "usr/lib/sysusers.d/postino.conf": 0o644,
        "usr/lib/tmpfiles.d/postino.conf": 0o644,
    }
    for path, mode in want.items():
        st = os.stat(dest / path)
        assert st.st_mode & 0o777 == mode, path
    unit = (dest / "usr/lib/systemd/system/postinod.service").read_text()
    assert "ExecStart=/usr/sbin/postinod -f -c /etc/postino/postinod.conf" \
        in unit
    fetch = (dest / "usr/lib/systemd/user/postino-fetch@.service").read_text()
    assert "ExecStart=/usr/bin/postino fetch" in fetch


def test_install_keeps_an_existing_configuration(tmp_path):
    conf = tmp_path / "root/usr/local/etc/postino/postinod.conf"
    conf.parent.mkdir(parents=True)
    conf.write_text("# mine\n")
    dest, out = make_install(tmp_path)
    assert conf.read_text() == "# mine\n"
    assert "keeping" in out
    unit = (dest / "usr/local/lib/systemd/system/postinod.service").read_text()
    assert "ExecStart=/usr/local/sbin/postinod -f -c " \
        "/usr/local/etc/postino/postinod.conf" in unit


def test_units_pass_systemd_analyze_verify(tmp_path):
    dest, _ = make_install(tmp_path, "PREFIX=/usr")
    # verify wants the ExecStart binaries where the units say they are.
    units = []
    for d in ("system", "user"):
        for u in sorted((dest / "usr/lib/systemd" / d).iterdir()):
            text = u.read_text().replace("/usr/sbin/", "%s/usr/sbin/" % dest)
            text = text.replace("/usr/bin/", "%s/usr/bin/" % dest)
            name = u.name.replace("@.", "@demo.")
            (tmp_path / name).write_text(text)
            units.append(str(tmp_path / name))
    r = subprocess.run(["systemd-analyze", "verify", "--man=no"] + units,
                       capture_output=True, text=True, timeout=120,
                       cwd=tmp_path)
    problems = [l for l in (r.stdout + r.stderr).splitlines()
                if "postino" in l]
    assert r.returncode == 0 and not problems, r.stdout + r.stderr


def test_unit_hardening_keeps_what_privilege_separation_needs(tmp_path):
    unit = (REPO and open(os.path.join(
        REPO, "etc/systemd/postinod.service.in")).read())
    caps = re.search(r"^CapabilityBoundingSet=(.*)$", unit, re.M).group(1)
    assert set(caps.split()) == {
        "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_SETUID",
        "CAP_SETGID", "CAP_KILL", "CAP_DAC_READ_SEARCH"}
    for line in ("Type=notify", "NoNewPrivileges=yes",
                 "ExecReload=/bin/kill -HUP $MAINPID",
                 "SystemCallFilter=chroot", "ProtectSystem=full"):
        assert line in unit
    # Mail lives under /home: never hidden from the mail workers.
    assert "ProtectHome" not in unit


def test_sysusers_and_tmpfiles_apply_to_a_root(tmp_path):
    dest, _ = make_install(tmp_path, "PREFIX=/usr")
    etc = dest / "etc"
    for f in ("passwd", "group", "shadow", "gshadow"):
        shutil.copy2("/etc/" + f, etc / f) if os.path.exists("/etc/" + f) \
            else (etc / f).write_text("")
    r = subprocess.run(["systemd-sysusers", "--root=%s" % dest,
                        str(dest / "usr/lib/sysusers.d/postino.conf")],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert re.search(r"^postino:x:\d+:\d+:.*:/nonexistent:/usr/sbin/nologin$",
                     (etc / "passwd").read_text(), re.M)
    r = subprocess.run(["systemd-tmpfiles", "--create", "--root=%s" % dest,
                        str(dest / "usr/lib/tmpfiles.d/postino.conf")],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert os.stat(dest / "run/postino/empty").st_mode & 0o777 == 0o755


@pytest.mark.parametrize("abstract", [False, True])
def test_ready_and_stopping_are_notified(mailroot, postinod, tmp_path,
                                         monkeypatch, abstract):
    mailroot.add_user(USER, PASS)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    if abstract:
        name = "@postino-test-%d" % os.getpid()
        sock.bind("\0" + name[1:])
    else:
        name = str(tmp_path / "notify")
        sock.bind(name)
    sock.settimeout(15)
    monkeypatch.setenv("NOTIFY_SOCKET", name)
    srv = postinod(start=False)
    srv.start()
    msg = sock.recv(4096)
    assert msg == b"READY=1"
    # Sent when ready: the ports are bound and serving.
    assert os.path.exists(srv.ready)
    assert srv.login(USER, PASS).stat()[0] == 0
    # The roles never see the socket.
    for role in ("auth", "login", "mail"):
        for pid in srv.pids(role):
            with open("/proc/%d/environ" % pid, "rb") as f:
                assert b"NOTIFY_SOCKET" not in f.read()
    assert srv.stop() == 0
    assert sock.recv(4096) == b"STOPPING=1"
    sock.close()
