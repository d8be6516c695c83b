"""`make install` and the systemd pieces (issue 14): FHS paths under
DESTDIR, units that systemd-analyze accepts, sysusers.d and tmpfiles.d
entries that systemd's own tools apply to a root, and the Type=notify
readiness datagram (sd_notify's protocol, written without libsystemd).
No systemd runs here; tests/blackbox/test_deb.py starts the unit's
ExecStart in a fresh Debian root."""
import os
import poplib
import re
import shutil
import signal
import socket
import subprocess
import time

import pytest

from conftest import REPO, BUILD, IS_ROOT

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
        "usr/sbin/postino-migrate": 0o755,
        "usr/share/postino/pgsql_schema.sql": 0o644,
        "usr/share/postino/pgsql_upgrade_2.sql": 0o644,
        "usr/bin/postino": 0o755,
        "usr/share/man/man8/postinod.8": 0o644,
        "usr/share/man/man8/postino-deliver.8": 0o644,
        "usr/share/man/man8/postino-migrate.8": 0o644,
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
        "CAP_SETGID", "CAP_KILL"}
    for line in ("Type=notify", "NoNewPrivileges=yes",
                 "ExecReload=/bin/kill -HUP $MAINPID",
                 "SystemCallFilter=chroot seccomp", "ProtectSystem=full"):
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
    for user in ("postino", "postino-auth"):
        assert re.search(r"^%s:x:\d+:\d+:.*:/nonexistent:/usr/sbin/nologin$"
                         % user, (etc / "passwd").read_text(), re.M), user
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


def syscall_group(name, seen=None):
    """The system calls of a systemd-analyze syscall-filter group, nested
    groups expanded."""
    seen = set() if seen is None else seen
    if name in seen:
        return set()
    seen.add(name)
    out = subprocess.run(["systemd-analyze", "syscall-filter", name],
                         capture_output=True, text=True, timeout=60).stdout
    calls = set()
    for line in out.splitlines()[1:]:
        word = line.strip()
        if not word or word.startswith("#"):
            continue
        if word.startswith("@"):
            calls |= syscall_group(word, seen)
        else:
            calls.add(word)
    return calls


def serve_once(mailroot, postinod, wrapper):
    """Start the release build under wrapper (argv prefix), as the unit's
    ExecStart does, log in, RETR, DELE, QUIT, stop; its stderr."""
    prog = os.path.join(REPO, "build", "postinod")
    if not os.path.exists(prog):
        pytest.skip("needs the release build (make)")
    mailroot.add_user(USER, PASS)
    mailroot.deliver_maildir(USER, b"Subject: a\n\nb\n")
    srv = postinod(start=False)
    proc = subprocess.Popen(
        wrapper + [prog, "-f", "-c", srv.conf], stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while not os.path.exists(srv.ready):
            assert proc.poll() is None, proc.stderr.read()
            assert time.monotonic() < deadline
            time.sleep(0.05)
        port = int(open(srv.ready).readline().strip().rsplit(":", 1)[1])
        p = poplib.POP3("127.0.0.1", port, timeout=20)
        p.user(USER)
        p.pass_(PASS)
        p.retr(1)
        assert p.dele(1).startswith(b"+OK")
        assert p.quit().startswith(b"+OK")
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
    err = proc.stderr.read().decode(errors="replace")
    assert proc.returncode == 0, err
    assert mailroot.maildir_files(USER) == {}, err
    return err


def unit_lines(key):
    unit = open(os.path.join(REPO, "etc/systemd/postinod.service.in")).read()
    return re.findall(r"^%s=(.*)$" % key, unit, re.M)


@pytest.mark.skipif(shutil.which("strace") is None, reason="needs strace")
def test_the_unit_syscall_filter_allows_what_postinod_calls(mailroot,
                                                            postinod,
                                                            tmp_path):
    """Every system call of a start, a login with RETR and DELE, QUIT and a
    stop (all roles, the release build as the unit runs it) is in the
    unit's SystemCallFilter=, so seccomp never kills a role in production."""
    allowed = set()
    for v in unit_lines("SystemCallFilter"):
        for word in v.split():
            allowed |= syscall_group(word) if word.startswith("@") \
                else {word}
    assert "chroot" in allowed and "setresuid" in allowed
    trace = tmp_path / "trace"
    serve_once(mailroot, postinod, ["strace", "-f", "-qq", "-o", str(trace)])
    used = set(re.findall(r"^\d+\s+(\w+)\(", trace.read_text(), re.M))
    assert {"chroot", "setresuid", "epoll_wait", "sendmsg"} <= used
    # Before execve, strace itself runs in the child: not postinod's.
    assert used - allowed - {"execve"} == set(), sorted(used - allowed)


@pytest.mark.skipif(not IS_ROOT, reason="capabilities are root's")
def test_the_unit_capabilities_are_enough(mailroot, postinod):
    """The release build serves a session with only the unit's
    CapabilityBoundingSet= and NoNewPrivileges=, as systemd starts it."""
    caps = unit_lines("CapabilityBoundingSet")[0].split()
    bset = "-all," + ",".join("+" + c[len("CAP_"):].lower() for c in caps)
    serve_once(mailroot, postinod, ["setpriv", "--bounding-set", bset,
                                    "--no-new-privs"])
