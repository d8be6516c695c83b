"""`make run`'s demo (demo/make-demo.sh, demo/run.sh) and `postinod -t`'s
reachability check (issue 14).

The checkout is copied under pytest's temporary directory, which is mode
0700 like Debian's /root: as root, the mail process (nobody) cannot reach
it, which is exactly the newcomer's case. Listeners are moved to port 0 so
the test never collides with a real `make run` on 1110.
"""
import os
import poplib
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time

import pytest

from conftest import REPO, BUILD, IS_ROOT


def checkout(tmp_path):
    """A copy of what `make run` uses after `make`: demo/ and build/."""
    top = tmp_path / "co"
    (top / "build").mkdir(parents=True)
    shutil.copytree(os.path.join(REPO, "demo"), top / "demo")
    for prog in ("postinod", "postino-passwd", "postino"):
        shutil.copy2(os.path.join(BUILD, prog), top / "build" / prog)
    os.chmod(tmp_path, 0o700)
    return top


def make_demo(top, listen="127.0.0.1:0", listen_tls="127.0.0.1:0"):
    r = subprocess.run(["sh", "demo/make-demo.sh", "build"], cwd=top,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    conf = top / "build" / "demo" / "postinod.conf"
    lines = [l for l in conf.read_text().splitlines()
             if not l.startswith(("listen =", "listen_tls ="))]
    lines += ["listen = " + listen, "listen_tls = " + listen_tls]
    conf.write_text("\n".join(lines) + "\n")
    return r.stderr


@pytest.fixture
def demo_home():
    made = []
    yield made
    for top in made:
        if isinstance(top, str):
            shutil.rmtree(top, ignore_errors=True)
            continue
        try:
            home = (top / "build" / "demo" / "mail-home").read_text().strip()
        except FileNotFoundError:
            continue
        assert home.startswith("/var/tmp/postino-demo-")
        shutil.rmtree(home, ignore_errors=True)


def start_run(top):
    return subprocess.Popen(["sh", "demo/run.sh", "build"], cwd=top,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)


def read_banner(proc, seconds=30):
    """Lines of stdout up to the Ctrl-C line; [] if run.sh exited first."""
    out = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if line == "":
            return out
        out.append(line)
        if "Ctrl-C stops it" in line:
            return out
    raise AssertionError("no banner in %d s: %r" % (seconds, out))


def stop(proc):
    """Ctrl-C: SIGINT to the whole foreground group."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGINT)
    try:
        return proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        raise


def test_demo_works_from_a_0700_directory(tmp_path, demo_home):
    top = checkout(tmp_path)
    demo_home.append(top)
    note = make_demo(top)
    if IS_ROOT:
        assert "nobody cannot reach" in note and "/var/tmp/postino-demo-" in note
    proc = start_run(top)
    try:
        banner = "".join(read_banner(proc))
        ready = top / "build" / "demo" / "ready"
        # Printed after the ports were bound: the ready file is there.
        assert ready.exists(), banner
        port = int(re.search(r"port (\d+) \(plain", banner).group(1))
        tport = int(re.search(r"and (\d+) \(implicit", banner).group(1))
        assert "127.0.0.1:%d" % port in ready.read_text()
        # Only tools this machine has are named.
        for tool in ("curl", "telnet", "nc"):
            if re.search(r"^  %s:" % tool, banner, re.M):
                assert shutil.which(tool), tool
        assert "s_client -quiet" in banner
        # The client recipe works as printed (no localhost: a minimal
        # root has no /etc/hosts).
        line = re.search(r"postino:\s+(.*)$", banner, re.M).group(1)
        env = dict(os.environ, POSTINO_PASSWORD="demo")
        recipe = line.split()[1:]	# after POSTINO_PASSWORD=demo
        recipe[0] = str(top / recipe[0])
        r = subprocess.run(recipe, cwd=top, env=env, capture_output=True,
                           text=True, timeout=60)
        assert r.returncode == 0 and len(r.stdout.splitlines()) == 3, \
            r.stdout + r.stderr

        p = poplib.POP3("127.0.0.1", port, timeout=10)
        p.user("demo")
        p.pass_("demo")
        assert p.stat()[0] == 3
        assert p.retr(1)[0].startswith(b"+OK")
        p.quit()

        # The banner's openssl recipe gets through RETR (s_client's own
        # R and Q commands are off with -quiet).
        r = subprocess.run(
            ["openssl", "s_client", "-quiet", "-connect",
             "127.0.0.1:%d" % tport],
            input=b"USER demo\r\nPASS demo\r\nRETR 1\r\nQUIT\r\n",
            capture_output=True, timeout=30)
        assert b"+OK Bye" in r.stdout, r.stdout[-400:]
        assert b"\r\n.\r\n" in r.stdout
    finally:
        status = stop(proc)
    assert status == 0, proc.stderr.read()


def test_no_banner_when_the_port_is_taken(tmp_path, demo_home):
    top = checkout(tmp_path)
    demo_home.append(top)
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen(1)
    try:
        make_demo(top, listen="127.0.0.1:%d" % busy.getsockname()[1])
        proc = start_run(top)
        try:
            banner = read_banner(proc)
            status = proc.wait(timeout=30)
        finally:
            stop(proc)
    finally:
        busy.close()
    assert status != 0
    assert not any("serving" in l for l in banner), banner
    assert "did not start" in proc.stderr.read()


@pytest.mark.skipif(not IS_ROOT, reason="the mail uid is the caller's")
def test_postinod_t_reports_an_unreachable_mailbox(tmp_path, demo_home):
    top = checkout(tmp_path)
    demo_home.append(top)
    make_demo(top)
    d = top / "build" / "demo"
    base = tempfile.mkdtemp(prefix="postino-reach-")	# mode 0700
    demo_home.append(base)
    home = os.path.join(base, "home", "demo")
    os.makedirs(os.path.join(home, "Maildir"))
    pwfile = re.search(r"^passwd_file = (.*)$",
                       (d / "postinod.conf").read_text(), re.M).group(1)
    with open(pwfile) as f:
        pw = f.read().split(":")
    pw[5] = home
    with open(pwfile, "w") as f:
        f.write(":".join(pw))
    r = subprocess.run([str(top / "build" / "postinod"), "-t", "-c",
                        str(d / "postinod.conf")],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 1
    assert ("user demo: mail uid 65534 cannot reach its mailbox %s/Maildir: "
            "no search permission on %s (mode 0700" % (home, base)) \
        in r.stderr
    # run.sh refuses it before printing any banner.
    proc = start_run(top)
    banner = read_banner(proc)
    assert proc.wait(timeout=30) == 1 and banner == []
    assert "cannot reach" in proc.stderr.read()
    os.chmod(base, 0o755)
    r = subprocess.run([str(top / "build" / "postinod"), "-t", "-c",
                        str(d / "postinod.conf")],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
